//! Outlook's rotating refresh tokens with the real `tributary` binary as worker
//! processes (issue 14, f), as `slack_processes.rs` does for Slack: the fake's
//! identity platform revokes a refresh token the moment it is used (stricter than
//! Microsoft, which keeps the old one valid a while) and issues access tokens that
//! live a second; workers are killed with SIGKILL between refreshes. After 50
//! refreshes and the kills, a last worker finishes the sync with the stored
//! credentials: the account is active, the database equals the mailbox, and the
//! stored refresh token is the grant's newest.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::rotation::{Rotation, kill_between_refreshes};
use support::{Db, TempDir, Worker, now_ms, postgres_db, sqlite_db, wait_for_idle, worker_command};
use tributary_outlook_fake::{FakeOutlook, MailboxConfig, OutlookConfig, RefreshRotation};
use tributary_sdk::serde_json::Value;
use tributary_store::{ContentQuery, NewUserIntegration, UserIntegrationStatus};

/// The fake's throttle clock and the workers' budgets run this much faster than real
/// time (the 10,000 requests per 10 minutes then allow about 1,700 a second).
const TIME_SCALE: f64 = 100.0;
const REFRESHES: u64 = 50;

fn spawn_worker(db: &Db, log: &std::path::Path) -> Worker {
    let mut command = worker_command(&db.url, &db.key, 4, 2);
    command
        .env("TRIBUTARY_TEST_BUDGET_TIME_SCALE", TIME_SCALE.to_string())
        .env("TRIBUTARY_LOG", "warn");
    Worker::spawn(command, log)
}

async fn rotation_survives_sigkills(db: Db) {
    tributary_sdk::http::install_crypto_provider();
    let mut config = OutlookConfig {
        mailbox: MailboxConfig {
            folders: 4,
            messages: 3_000,
            seed: 14,
            ..MailboxConfig::default()
        },
        ..OutlookConfig::default()
    };
    config.graph.refresh_rotation = RefreshRotation::RevokeOnUse;
    config.graph.access_token_lifetime = Duration::from_secs(1);
    config.graph.latency = Duration::from_millis(5);
    config.graph.throttle.time_scale = TIME_SCALE;
    let fake = FakeOutlook::start(config).await.expect("fake outlook");
    let outlook = fake.handle().clone();
    let graph = outlook.graph().clone();
    let grant = outlook.mail_grant();
    let link = link_credentials(&fake, &grant);
    let user = db.store.create_user("outlook-user").await.expect("user");
    let mut settings = fake.urls().settings();
    settings.insert("pageSize".into(), Value::from(25));
    let ui = db
        .store
        .create_user_integration(NewUserIntegration {
            user_id: user.id,
            integration_domain: "outlook".into(),
            credentials: link,
            settings,
        })
        .await
        .expect("link")
        .id;
    db.store
        .enqueue(
            &[tributary_engine::worker::start_job(ui, 10, now_ms())],
            now_ms(),
        )
        .await
        .expect("start");

    let kills = kill_between_refreshes(
        &db,
        &Rotation {
            ui,
            refreshes: &|| graph.refreshes(),
            is_live: &|token| graph.is_live_refresh_token(token),
            add_item: &|| drop(outlook.generate_message()),
            spawn: &|log| spawn_worker(&db, log),
        },
        REFRESHES,
    )
    .await;

    // A last worker finishes with whatever the database holds: the start it has, then
    // a history check of every folder.
    let logs = TempDir::new("outlook-rotation");
    let mut worker = spawn_worker(&db, &logs.path().join("last.log"));
    wait_for_idle(db.store.as_ref(), Duration::from_secs(300)).await;
    db.store
        .enqueue(
            &[tributary_engine::worker::history_job(
                ui,
                "checkMail",
                10,
                now_ms(),
            )],
            now_ms(),
        )
        .await
        .expect("history check");
    wait_for_idle(db.store.as_ref(), Duration::from_secs(300)).await;
    worker.terminate(Duration::from_secs(30)).await;
    let account = db.store.get_user_integration(ui).await.expect("account");
    assert_eq!(
        account.status,
        UserIntegrationStatus::Active,
        "{:?}",
        account.last_error
    );
    eprintln!("{} refreshes, {kills} kills", graph.refreshes());
    let stored: BTreeSet<String> = db
        .store
        .list_content(&ContentQuery {
            user_integration_id: Some(ui),
            limit: Some(100_000),
            ..ContentQuery::default()
        })
        .await
        .expect("content")
        .into_iter()
        .map(|item| item.external_id)
        .collect();
    let truth: BTreeSet<String> = outlook.messages().into_keys().collect();
    assert_eq!(stored.len(), truth.len(), "stored messages");
    assert_eq!(stored, truth);
    let refresh = account
        .credentials
        .get("refreshToken")
        .expect("a refresh token");
    assert!(
        graph.is_current_refresh_token(refresh),
        "the stored refresh token is not the grant's newest"
    );
    fake.stop().await.expect("stop the fake");
}

/// The credentials a user would link with: the app's client id and secret, the grant's
/// refresh and access tokens.
fn link_credentials(
    fake: &FakeOutlook,
    grant: &tributary_outlook_fake::Grant,
) -> tributary_sdk::Credentials {
    let graph = fake.handle().graph();
    let mut credentials = tributary_sdk::Credentials::default();
    credentials.set("clientId", graph.client_id());
    credentials.set("clientSecret", graph.client_secret());
    credentials.set(
        "refreshToken",
        grant.refresh_token.clone().expect("a refresh token"),
    );
    credentials.set("accessToken", grant.access_token.clone());
    credentials
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rotation_survives_sigkills() {
    rotation_survives_sigkills(sqlite_db().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rotation_survives_sigkills() {
    if let Some(db) = postgres_db().await {
        rotation_survives_sigkills(db).await;
    }
}
