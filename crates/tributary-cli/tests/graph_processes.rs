//! Microsoft Graph's rotating refresh tokens with the real `tributary` binary as worker
//! processes (issue 14, f), for Outlook and OneDrive, as `slack_processes.rs` does for
//! Slack: the fake's identity platform revokes a refresh token the moment it is used
//! (stricter than Microsoft, which keeps the old one valid a while) and issues access
//! tokens that live a second; workers are killed with SIGKILL between refreshes.
//! After 50 refreshes and the kills, a last worker finishes the sync with the stored
//! credentials: the account is active, the database equals the fake's truth, and the
//! stored refresh token is the grant's newest.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::rotation::{Rotation, kill_between_refreshes};
use support::{Db, TempDir, Worker, now_ms, postgres_db, sqlite_db, wait_for_idle, worker_command};
use tributary_onedrive_fake::{DriveContentConfig, FakeOneDrive, OneDriveConfig};
use tributary_outlook_fake::{
    FakeOutlook, Grant, GraphConfig, MailboxConfig, OutlookConfig, RefreshRotation,
};
use tributary_sdk::Credentials;
use tributary_sdk::serde_json::{Map, Value};
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

/// One Graph fake's account, as the rotation run sees it.
struct Account<'a> {
    domain: &'a str,
    /// What to link with: the app's client id and secret, a grant's tokens.
    credentials: Credentials,
    settings: Map<String, Value>,
    history_task: &'a str,
    refreshes: &'a dyn Fn() -> u64,
    is_live: &'a dyn Fn(&str) -> bool,
    is_current: &'a dyn Fn(&str) -> bool,
    add_item: &'a dyn Fn(),
    truth: &'a dyn Fn() -> BTreeSet<String>,
}

/// The credentials a user would link with.
fn credentials(client_id: String, client_secret: String, grant: Grant) -> Credentials {
    let mut credentials = Credentials::default();
    credentials.set("clientId", client_id);
    credentials.set("clientSecret", client_secret);
    credentials.set(
        "refreshToken",
        grant.refresh_token.expect("a refresh token"),
    );
    credentials.set("accessToken", grant.access_token);
    credentials
}

/// The tenant settings both fakes take: revoke-on-use rotation, one-second access
/// tokens, a little latency, the throttle's clock as fast as the budgets'.
fn tenant(graph: &mut GraphConfig) {
    graph.refresh_rotation = RefreshRotation::RevokeOnUse;
    graph.access_token_lifetime = Duration::from_secs(1);
    graph.latency = Duration::from_millis(5);
    graph.throttle.time_scale = TIME_SCALE;
}

async fn rotation_survives_sigkills(db: Db, account: Account<'_>) {
    let user = db.store.create_user("graph-user").await.expect("user");
    let ui = db
        .store
        .create_user_integration(NewUserIntegration {
            user_id: user.id,
            integration_domain: account.domain.into(),
            credentials: account.credentials,
            settings: account.settings,
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
            refreshes: account.refreshes,
            is_live: account.is_live,
            add_item: account.add_item,
            spawn: &|log| spawn_worker(&db, log),
        },
        REFRESHES,
    )
    .await;

    // A last worker finishes with whatever the database holds: the start it has, then
    // a history check.
    let logs = TempDir::new("graph-rotation");
    let mut worker = spawn_worker(&db, &logs.path().join("last.log"));
    wait_for_idle(db.store.as_ref(), Duration::from_secs(300)).await;
    db.store
        .enqueue(
            &[tributary_engine::worker::history_job(
                ui,
                account.history_task,
                10,
                now_ms(),
            )],
            now_ms(),
        )
        .await
        .expect("history check");
    wait_for_idle(db.store.as_ref(), Duration::from_secs(300)).await;
    worker.terminate(Duration::from_secs(30)).await;
    let stored_account = db.store.get_user_integration(ui).await.expect("account");
    assert_eq!(
        stored_account.status,
        UserIntegrationStatus::Active,
        "{:?}",
        stored_account.last_error
    );
    eprintln!(
        "{}: {} refreshes, {kills} kills",
        account.domain,
        (account.refreshes)()
    );
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
    let truth = (account.truth)();
    assert_eq!(stored.len(), truth.len(), "stored items");
    assert_eq!(stored, truth);
    let refresh = stored_account
        .credentials
        .get("refreshToken")
        .expect("a refresh token");
    assert!(
        (account.is_current)(refresh),
        "the stored refresh token is not the grant's newest"
    );
}

async fn outlook(db: Db) {
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
    tenant(&mut config.graph);
    let fake = FakeOutlook::start(config).await.expect("fake outlook");
    let mail = fake.handle().clone();
    let graph = mail.graph().clone();
    let mut settings = fake.urls().settings();
    settings.insert("pageSize".into(), Value::from(25));
    let account = Account {
        domain: "outlook",
        credentials: credentials(graph.client_id(), graph.client_secret(), mail.mail_grant()),
        settings,
        history_task: "checkMail",
        refreshes: &|| graph.refreshes(),
        is_live: &|token| graph.is_live_refresh_token(token),
        is_current: &|token| graph.is_current_refresh_token(token),
        add_item: &|| drop(mail.generate_message()),
        truth: &|| mail.messages().into_keys().collect(),
    };
    rotation_survives_sigkills(db, account).await;
    fake.stop().await.expect("stop the fake");
}

async fn onedrive(db: Db) {
    tributary_sdk::http::install_crypto_provider();
    let mut config = OneDriveConfig {
        content: DriveContentConfig {
            folders: 60,
            files: 2_000,
            seed: 14,
            ..DriveContentConfig::default()
        },
        ..OneDriveConfig::default()
    };
    tenant(&mut config.graph);
    let fake = FakeOneDrive::start(config).await.expect("fake onedrive");
    let drive = fake.handle().clone();
    let graph = drive.graph().clone();
    let mut settings = fake.urls().settings();
    settings.insert("pageSize".into(), Value::from(25));
    let account = Account {
        domain: "onedrive",
        credentials: credentials(
            graph.client_id(),
            graph.client_secret(),
            drive.files_grant(),
        ),
        settings,
        history_task: "checkChanges",
        refreshes: &|| graph.refreshes(),
        is_live: &|token| graph.is_live_refresh_token(token),
        is_current: &|token| graph.is_current_refresh_token(token),
        add_item: &|| drop(drive.generate_file()),
        // Files and folders, the root left out (what a sync stores).
        truth: &|| {
            let root = drive.root_id();
            let mut all = drive.file_ids();
            all.extend(drive.folder_ids().into_iter().filter(|id| *id != root));
            all
        },
    };
    rotation_survives_sigkills(db, account).await;
    fake.stop().await.expect("stop the fake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_outlook_rotation_survives_sigkills() {
    outlook(sqlite_db().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outlook_rotation_survives_sigkills() {
    if let Some(db) = postgres_db().await {
        outlook(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_onedrive_rotation_survives_sigkills() {
    onedrive(sqlite_db().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_onedrive_rotation_survives_sigkills() {
    if let Some(db) = postgres_db().await {
        onedrive(db).await;
    }
}
