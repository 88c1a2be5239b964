//! Google Drive with the real `tributary` binary as worker processes (issue 12, c): a
//! worker killed with SIGKILL in the middle of a 20-page `changes.list` walk. Each page
//! is committed with the cursor of the next one, so the worker that takes over resumes
//! at the last committed page: every change is applied, none is read again beyond the
//! page that was in flight, and the database ends equal to the fake's truth.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{
    Db, assert_all_jobs_completed, now_ms, postgres_db, spawn_worker, sqlite_db, terminate,
    wait_for_idle,
};
use tributary_google_drive_fake::{DriveConfig, DriveMethod, FakeDrive, FaultConfig, FileBody};
use tributary_sdk::Credentials;
use tributary_sdk::serde_json::{Map, Value};
use tributary_store::{ContentQuery, NewUserIntegration};

/// Changes per `changes.list` page: 200 edits make a walk of 20 pages.
const CHANGES_PAGE: i64 = 10;
const EDITS: usize = 200;

async fn changes_walk_survives_sigkill(db: Db) {
    tributary_sdk::http::install_crypto_provider();
    let fake = FakeDrive::start(DriveConfig {
        files: 400,
        folders: 20,
        shared_drives: 2,
        seed: 31,
        // Each request takes a moment, so the walk is still going when the test kills.
        faults: FaultConfig {
            latency: Duration::from_millis(20),
            ..FaultConfig::default()
        },
        ..DriveConfig::default()
    })
    .await
    .expect("fake drive");
    let drive = fake.handle();
    let issued = drive.credentials();
    let mut credentials = Credentials::default();
    credentials.set("clientId", issued.client_id);
    credentials.set("clientSecret", issued.client_secret);
    credentials.set("refreshToken", issued.refresh_token);
    let mut settings = Map::new();
    settings.insert("baseUrl".into(), Value::String(fake.base_url()));
    settings.insert("tokenUrl".into(), Value::String(fake.token_url()));
    settings.insert("changesPageSize".into(), Value::from(CHANGES_PAGE));
    let user = db.store.create_user("drive-user").await.expect("user");
    let ui = db
        .store
        .create_user_integration(NewUserIntegration {
            user_id: user.id,
            integration_domain: "google-drive".into(),
            credentials,
            settings,
        })
        .await
        .expect("link")
        .id;

    // The first sync, to the end.
    db.store
        .enqueue(
            &[tributary_engine::worker::start_job(ui, 10, now_ms())],
            now_ms(),
        )
        .await
        .expect("start");
    let mut worker = spawn_worker(&db, 4, 2);
    wait_for_idle(db.store.as_ref(), Duration::from_secs(300)).await;
    terminate(&mut worker);
    assert_eq!(stored(&db, ui).await, truth(drive), "after the first sync");

    // 200 edits: a changes walk of 20 pages. Kill the worker once it read 8 of them.
    let files: Vec<String> = drive
        .snapshot()
        .into_values()
        .filter(|f| !f.is_folder)
        .map(|f| f.id)
        .take(EDITS)
        .collect();
    assert_eq!(files.len(), EDITS);
    for (i, id) in files.iter().enumerate() {
        drive
            .edit(id, FileBody::Bytes(format!("edit {i}\n").into_bytes()))
            .expect("edit");
    }
    drive.reset_counters();
    db.store
        .enqueue(
            &[tributary_engine::worker::history_job(
                ui,
                "checkChanges",
                10,
                now_ms(),
            )],
            now_ms(),
        )
        .await
        .expect("history check");
    let mut worker = spawn_worker(&db, 4, 2);
    support::wait_until("8 changes pages read", Duration::from_secs(120), || async {
        drive.calls(DriveMethod::ChangesList) >= 8
    })
    .await;
    worker.kill().expect("SIGKILL");
    worker.wait().expect("reap");
    let read_before_kill = drive.calls(DriveMethod::ChangesList);
    assert!(
        read_before_kill < 20,
        "the walk ended before the kill ({read_before_kill} pages): make it longer"
    );

    // Another worker takes over once the killed one's leases expire.
    let mut worker = spawn_worker(&db, 4, 2);
    wait_for_idle(db.store.as_ref(), Duration::from_secs(300)).await;
    terminate(&mut worker);
    assert_eq!(
        stored(&db, ui).await,
        truth(drive),
        "after the walk resumed"
    );
    assert_all_jobs_completed(db.store.as_ref(), ui).await;
    // 20 pages, plus the one in flight when the worker died (read again: its commit
    // never happened; one changes check runs at a time), plus one check the scheduler
    // may have started at start-up. A walk that started over would read 28 or more.
    let pages = drive.calls(DriveMethod::ChangesList);
    eprintln!("changes pages: {read_before_kill} before the kill, {pages} in all");
    assert!(
        pages <= 22,
        "{pages} changes pages read for a walk of 20: the walk started over"
    );
    fake.stop().await.expect("stop the fake");
}

/// The stored items as (path, version, text).
async fn stored(db: &Db, ui: i64) -> BTreeMap<String, (String, String, Option<String>)> {
    let items = db
        .store
        .list_content(&ContentQuery {
            user_integration_id: Some(ui),
            limit: Some(100_000),
            ..ContentQuery::default()
        })
        .await
        .expect("content");
    items
        .into_iter()
        .map(|item| {
            let c = &item.content;
            let text = |key: &str| c[key].as_str().unwrap_or("<missing>").to_owned();
            let value = (
                text("path"),
                text("version"),
                c["text"].as_str().map(str::to_owned),
            );
            (item.external_id, value)
        })
        .collect()
}

/// The fake's visible files and folders as (path, version, text).
fn truth(
    drive: &tributary_google_drive_fake::DriveHandle,
) -> BTreeMap<String, (String, String, Option<String>)> {
    drive
        .snapshot()
        .into_iter()
        .map(|(id, f)| (id, (f.path, f.version.to_string(), f.text)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_changes_walk_survives_sigkill() {
    changes_walk_survives_sigkill(sqlite_db().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_changes_walk_survives_sigkill() {
    if let Some(db) = postgres_db().await {
        changes_walk_survives_sigkill(db).await;
    }
}
