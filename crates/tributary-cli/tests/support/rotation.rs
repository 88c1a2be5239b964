//! Refresh-token rotation through SIGKILLed workers, for any integration whose fake
//! rotates refresh tokens (`slack_processes.rs`, `graph_processes.rs`).
//!
//! The provider hands out a new refresh token at every refresh and revokes the old one
//! at once; its access tokens live a moment, so a long sync refreshes again and again.
//! Workers (`tributary run`) are started and killed with SIGKILL, each after a few more
//! refreshes, until the wanted number; after each kill the account must still be
//! active. What the test checks at the end (the last worker's sync, the stored token)
//! is its own.

use std::time::Duration;

use tributary_store::UserIntegrationStatus;

use super::{Db, TempDir, Worker, now_ms, wait_until};

/// What the rotation driver needs to know of the fake and the account.
pub struct Rotation<'a> {
    /// The account (user integration) being synced.
    pub ui: i64,
    /// The refreshes the fake has answered so far.
    pub refreshes: &'a dyn Fn() -> u64,
    /// Whether the fake would still accept this refresh token.
    pub is_live: &'a dyn Fn(&str) -> bool,
    /// Adds an item at the fake; called while waiting for the next refreshes, before
    /// the account's next start is enqueued (deduplicated while one is pending).
    pub add_item: &'a dyn Fn(),
    /// Spawns a worker process logging to the given file.
    pub spawn: &'a dyn Fn(&std::path::Path) -> Worker,
}

/// Starts and SIGKILLs workers until the fake has answered `target` refreshes; how
/// many workers were killed. Each kill happens once the newest refresh token is
/// stored (a kill in the moment between the token endpoint's answer and that write
/// cannot be survived, as the old token is revoked by then; the engine saves the new
/// pair before using it, so that moment is one write long).
pub async fn kill_between_refreshes(db: &Db, rotation: &Rotation<'_>, target: u64) -> u32 {
    let logs = TempDir::new("rotation");
    let log = logs.path().join("workers.log");
    let mut kills = 0u32;
    while (rotation.refreshes)() < target {
        let next = (rotation.refreshes)() + 5;
        let mut worker = (rotation.spawn)(&log);
        let what = format!("refresh {next} (after {kills} kills)");
        wait_until(&what, Duration::from_secs(120), || {
            worker.assert_running("before the kill");
            let done = (rotation.refreshes)() >= next;
            let store = db.store.clone();
            async move {
                if !done {
                    (rotation.add_item)();
                    let start = tributary_engine::worker::start_job(rotation.ui, 10, now_ms());
                    store.enqueue(&[start], now_ms()).await.expect("start");
                }
                done
            }
        })
        .await;
        // Kill at different moments of the work.
        tokio::time::sleep(Duration::from_millis(40 * u64::from(kills % 5))).await;
        wait_until(
            "the newest refresh token saved",
            Duration::from_secs(30),
            || {
                let store = db.store.clone();
                async move {
                    let account = store
                        .get_user_integration(rotation.ui)
                        .await
                        .expect("account");
                    account
                        .credentials
                        .get("refreshToken")
                        .is_some_and(|t| (rotation.is_live)(t))
                }
            },
        )
        .await;
        worker.kill();
        kills += 1;
        let account = db
            .store
            .get_user_integration(rotation.ui)
            .await
            .expect("account");
        assert_eq!(
            account.status,
            UserIntegrationStatus::Active,
            "after kill {kills}: {:?}",
            account.last_error
        );
    }
    kills
}
