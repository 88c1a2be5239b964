//! Slack token rotation with the real `tributary` binary as worker processes (issue 13,
//! d): access tokens that live a moment, so a long sync refreshes again and again, each
//! refresh handing out a new refresh token and revoking the old one at once; workers
//! are killed with SIGKILL between refreshes. The account must never be left holding a
//! dead refresh token: after 50 refreshes and the kills, a last worker finishes the sync
//! with the stored credentials, and the database equals the fake's truth.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::rotation::{Rotation, kill_between_refreshes};
use support::{Db, Worker, now_ms, postgres_db, sqlite_db, wait_for_idle, worker_command};
use tributary_sdk::Credentials;
use tributary_sdk::serde_json::{Map, Value};
use tributary_slack_fake::{ALL_SCOPES, FakeSlack, SlackConfig};
use tributary_store::{ContentQuery, NewUserIntegration, UserIntegrationStatus};

/// The fake's rate clock and the workers' budgets run this much faster than real time.
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
    let fake = FakeSlack::start(SlackConfig {
        channels: 6,
        messages: 2_000,
        replies: 200,
        users: 10,
        seed: 13,
        time_scale: TIME_SCALE,
        rotation: true,
        access_token_lifetime: Duration::from_secs(1),
        latency: Duration::from_millis(5),
        ..SlackConfig::default()
    })
    .await
    .expect("fake slack");
    let slack = fake.handle();
    let grant = slack.grant(ALL_SCOPES);
    let mut credentials = Credentials::default();
    credentials.set("accessToken", grant.access_token);
    credentials.set("refreshToken", grant.refresh_token.expect("rotation"));
    credentials.set("clientId", slack.client_id());
    credentials.set("clientSecret", slack.client_secret());
    let mut settings = Map::new();
    settings.insert("baseUrl".into(), Value::String(fake.base_url()));
    settings.insert("tokenUrl".into(), Value::String(fake.token_url()));
    for (key, value) in [
        ("pageSize", 25),
        ("pollEverySeconds", 0),
        ("idlePollSeconds", 0),
        ("pollsPerStart", 100_000),
        ("reconcileEverySeconds", 604_800),
        ("fullReadEveryHours", 0),
    ] {
        settings.insert(key.into(), Value::from(value));
    }
    let user = db.store.create_user("slack-user").await.expect("user");
    let ui = db
        .store
        .create_user_integration(NewUserIntegration {
            user_id: user.id,
            integration_domain: "slack".into(),
            credentials,
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

    let channels: Vec<String> = slack
        .conversations()
        .into_iter()
        .filter(|c| c.is_member && !c.archived)
        .map(|c| c.id)
        .collect();
    // Workers killed with SIGKILL, each after a few more refreshes, until 50 refreshes.
    let kills = kill_between_refreshes(
        &db,
        &Rotation {
            ui,
            refreshes: &|| slack.refreshes(),
            is_live: &|token| slack.is_live_refresh_token(token),
            add_item: &|| {
                let channel = &channels[(now_ms() as usize / 100) % channels.len()];
                let _ = slack.post(channel, &slack.installer(), "more");
            },
            spawn: &|log| spawn_worker(&db, log),
        },
        REFRESHES,
    )
    .await;

    // A last worker finishes with whatever the database holds.
    let logs = support::TempDir::new("slack-rotation");
    let mut worker = spawn_worker(&db, &logs.path().join("last.log"));
    wait_for_idle(db.store.as_ref(), Duration::from_secs(300)).await;
    worker.terminate(Duration::from_secs(30)).await;
    let account = db.store.get_user_integration(ui).await.expect("account");
    assert_eq!(
        account.status,
        UserIntegrationStatus::Active,
        "{:?}",
        account.last_error
    );
    eprintln!("{} refreshes, {kills} kills", slack.refreshes());
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
    let truth: BTreeSet<String> = slack
        .snapshot()
        .into_iter()
        .map(|m| format!("{}:{}", m.channel, m.ts))
        .collect();
    assert_eq!(stored.len(), truth.len(), "stored messages");
    assert_eq!(stored, truth);

    // The stored refresh token is the live one: refreshing with it works.
    let refresh = account
        .credentials
        .get("refreshToken")
        .expect("a refresh token")
        .to_owned();
    let answer: Value = reqwest::Client::new()
        .post(fake.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", slack.client_id().as_str()),
            ("client_secret", slack.client_secret().as_str()),
        ])
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["ok"], true, "{answer}");
    fake.stop().await.expect("stop the fake");
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
