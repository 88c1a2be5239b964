//! The Slack fake as a subject of the conformance harness (its link, sync and truth
//! helpers on SQLite and PostgreSQL), shared by the Slack tests.
//!
//! The projection compared with the fake's truth is what a reader of a message needs
//! and a sync must keep exact: the text, whether it is a reply and of which thread, its
//! author, its last edit, its reply count and latest reply, its reactions and its file
//! names. The truth is the fake's own snapshot of every live message and reply (never
//! computed from the integration's code).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tributary_conformance::{Capabilities, ConformanceSubject, FaultRates, Harness};
use tributary_engine::{Engine, EngineConfig};
use tributary_sdk::serde_json::{Map, Value};
use tributary_sdk::{Credentials, ManifestError, Registration};
use tributary_slack_fake::{ALL_SCOPES, Grant, RateProfile, SlackConfig, SlackHandle};
use tributary_testkit::fault_layer::FaultInjector;
use tributary_testkit::serving::{LoopbackServer, ResponseGate};

/// How much faster than real time the fake's rate windows (and the engine's budgets)
/// run in the tests: Slack's per-minute limits pass in a fraction of a second.
pub const TIME_SCALE: f64 = 200.0;

/// How much faster the fake's clock runs than the engine's budgets: its rate windows
/// are a tenth shorter. At 200 times Slack's speed a minute's window is 300 ms, and a
/// loaded machine delays requests by tens of milliseconds, which would push a
/// window's calls into the next one; the margin stands for that jitter, which at
/// Slack's real speed is nothing beside a minute.
pub const FAKE_CLOCK_AHEAD: f64 = 1.1;

/// A fake Slack workspace driven by the tests, served behind a response gate.
pub struct SlackSubject {
    pub fake: SlackHandle,
    pub server: LoopbackServer,
    gate: ResponseGate,
    faults: FaultInjector,
    /// The grant the account is linked with.
    grant: Mutex<Grant>,
    /// Settings added to the ones pointing at the fake (set before linking).
    pub extra_settings: Mutex<Map<String, Value>>,
    /// Posts and edits so far (each writes different text).
    changes: AtomicU64,
}

/// What must match between a fake message and its stored content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackItem {
    pub text: String,
    pub thread_ts: Option<String>,
    pub is_reply: bool,
    pub user: String,
    pub edited_ts: Option<String>,
    pub reply_count: u64,
    pub latest_reply: Option<String>,
    pub reactions: Vec<(String, u64)>,
    pub files: Vec<String>,
}

impl SlackSubject {
    /// A fake workspace from `config`, with a full grant (token rotation as
    /// configured).
    pub async fn with_config(config: SlackConfig) -> SlackSubject {
        SlackSubject::with_scopes(config, ALL_SCOPES).await
    }

    /// A fake workspace from `config` whose account is granted `scopes` only.
    pub async fn with_scopes(config: SlackConfig, scopes: &[&str]) -> SlackSubject {
        let fake = SlackHandle::new(config);
        let gate = ResponseGate::new();
        let faults = FaultInjector::new();
        let server = LoopbackServer::start(gate.layer(faults.layer(fake.router()))).await;
        let grant = fake.grant(scopes);
        SlackSubject {
            fake,
            server,
            gate,
            faults,
            grant: Mutex::new(grant),
            extra_settings: Mutex::new(Map::new()),
            changes: AtomicU64::new(0),
        }
    }

    /// The configuration of a generated workspace with rate limits on a fast clock.
    pub fn config(channels: usize, messages: usize, replies: usize, seed: u64) -> SlackConfig {
        SlackConfig {
            channels,
            messages,
            replies,
            users: 12,
            seed,
            time_scale: TIME_SCALE * FAKE_CLOCK_AHEAD,
            ..SlackConfig::default()
        }
    }

    /// Adds a setting (before linking).
    pub fn set(&self, key: &str, value: Value) {
        lock(&self.extra_settings).insert(key.into(), value);
    }

    /// The conversations the installer can read, by id.
    pub fn readable(&self) -> Vec<String> {
        self.fake
            .conversations()
            .into_iter()
            .filter(|c| c.is_member && !c.removed && !c.archived)
            .map(|c| c.id)
            .collect()
    }

    /// Calls of the history methods so far.
    pub fn history_calls(&self) -> u64 {
        self.fake.calls("conversations.history") + self.fake.calls("conversations.replies")
    }
}

/// An engine for the Slack tests: the harness's, with the budgets enforced on the
/// fake's fast clock.
pub fn engine(h: &Harness, workers: usize) -> Engine {
    h.engine_with(EngineConfig {
        enforce_budgets: true,
        budget_time_scale: TIME_SCALE,
        ..tributary_conformance::harness::engine_config(workers)
    })
}

/// The settings of an account on the fast clock: every conversation due at every
/// start, reconciles only when a test asks.
pub fn fast_settings(subject: &SlackSubject) {
    subject.set("pollEverySeconds", Value::from(0));
    subject.set("idlePollSeconds", Value::from(0));
    subject.set("pollsPerStart", Value::from(100_000));
    subject.set("reconcileEverySeconds", Value::from(604_800));
    subject.set("fullReadEveryHours", Value::from(0));
}

impl ConformanceSubject for SlackSubject {
    type Projection = SlackItem;

    // Messages arrive on history pages, not through a history feed or fetches one by
    // one: the Slack tests drive the harness themselves.
    const CAPABILITIES: Capabilities = Capabilities {
        history: false,
        edits: true,
        restore: false,
        expiring_tokens: true,
        item_fetches: false,
    };
    const FULL_SYNC_ITEMS: usize = 2_000;

    fn registration() -> Result<Registration, ManifestError> {
        tributary_slack::registration()
    }

    async fn start(items: usize, seed: u64) -> SlackSubject {
        // Rotation on, so access tokens expire and are refreshed (12 h by default).
        // Rate limits off: the scenarios run the harness's engine, whose budgets are
        // off and whose clock is manual, so a 429's retry would come at once, real
        // time, still inside the fake's window; tests/slack.rs runs the limits with
        // the budgets on.
        let replies = items / 8;
        SlackSubject::with_config(SlackConfig {
            rotation: true,
            enforce_limits: false,
            ..SlackSubject::config((items / 200).clamp(2, 50), items - replies, replies, seed)
        })
        .await
    }

    fn credentials(&self) -> Credentials {
        let grant = lock(&self.grant).clone();
        let mut credentials = Credentials::default();
        credentials.set("accessToken", grant.access_token);
        if let Some(refresh) = grant.refresh_token {
            credentials.set("refreshToken", refresh);
            credentials.set("clientId", self.fake.client_id());
            credentials.set("clientSecret", self.fake.client_secret());
        }
        credentials
    }

    fn settings(&self) -> Map<String, Value> {
        let mut settings = Map::new();
        let base_url = format!("{}api/", self.server.base_url());
        settings.insert(
            "tokenUrl".into(),
            Value::String(format!("{base_url}oauth.v2.access")),
        );
        settings.insert("baseUrl".into(), Value::String(base_url));
        settings.insert("pageSize".into(), Value::from(100));
        for (key, value) in lock(&self.extra_settings).iter() {
            settings.insert(key.clone(), value.clone());
        }
        settings
    }

    fn add_item(&self) -> String {
        let channel = self
            .readable()
            .into_iter()
            .next()
            .expect("a readable channel");
        let n = self.changes.fetch_add(1, Ordering::Relaxed);
        let ts = self
            .fake
            .post(
                &channel,
                &self.fake.installer(),
                &format!("new message {n}"),
            )
            .expect("post");
        format!("{channel}:{ts}")
    }

    fn edit_item(&self, id: &str) -> bool {
        let (channel, ts) = id.split_once(':').expect("a message id");
        let n = self.changes.fetch_add(1, Ordering::Relaxed);
        self.fake
            .edit(channel, ts, &format!("edited {n}"))
            .expect("edit");
        true
    }

    fn delete_item(&self, id: &str) {
        let (channel, ts) = id.split_once(':').expect("a message id");
        self.fake.delete(channel, ts).expect("delete");
    }

    fn restore_item(&self) -> Option<String> {
        None
    }

    fn truth(&self) -> BTreeMap<String, SlackItem> {
        self.fake
            .snapshot()
            .into_iter()
            .map(|m| {
                let item = SlackItem {
                    text: m.text,
                    thread_ts: m.thread_ts,
                    is_reply: m.is_reply,
                    user: m.user,
                    edited_ts: m.edited_ts,
                    reply_count: u64::from(m.reply_count),
                    latest_reply: m.latest_reply,
                    reactions: m
                        .reactions
                        .into_iter()
                        .map(|(name, count)| (name, u64::from(count)))
                        .collect(),
                    files: m.file_names,
                };
                (format!("{}:{}", m.channel, m.ts), item)
            })
            .collect()
    }

    fn project(content: &Value) -> SlackItem {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        SlackItem {
            text: text(&content["text"]).unwrap_or_default(),
            thread_ts: text(&content["threadTs"]),
            is_reply: content["isReply"].as_bool().unwrap_or(false),
            user: text(&content["user"]["id"]).unwrap_or_default(),
            edited_ts: text(&content["edited"]["ts"]),
            reply_count: content["replyCount"].as_u64().unwrap_or(0),
            latest_reply: text(&content["latestReply"]),
            reactions: content["reactions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    (
                        text(&r["name"]).unwrap_or_default(),
                        r["count"].as_u64().unwrap_or(0),
                    )
                })
                .collect(),
            files: content["files"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| text(&f["name"]))
                .collect(),
        }
    }

    fn list_calls(&self) -> u64 {
        self.fake.calls("conversations.history") + self.fake.calls("conversations.list")
    }

    fn fetch_calls(&self) -> u64 {
        self.fake.calls("conversations.replies")
    }

    fn reset_counters(&self) {
        self.fake.reset_counters();
    }

    fn set_fault_rates(&self, rates: FaultRates) {
        self.faults.set_rates(rates);
    }

    fn faults_injected(&self) -> u64 {
        self.faults.injected()
    }

    fn expire_tokens_after_calls(&self, calls: u64) -> bool {
        // Slack reads up to `pageSize` messages a call: a call count given in items
        // (the harness's "halfway") is turned into calls of a default page.
        self.fake.expire_tokens_after_calls(calls / 200);
        true
    }

    fn resync_list_calls(&self) -> u64 {
        // `conversations.list`, then at most 4 history calls per conversation.
        1 + 4 * self.readable().len() as u64
    }

    fn tokens_issued(&self) -> u64 {
        self.fake.refreshes()
    }

    fn revoke_credentials(&self) {
        let token = lock(&self.grant).access_token.clone();
        self.fake.revoke(&token);
    }

    fn reauthorize(&self) -> Credentials {
        *lock(&self.grant) = self.fake.grant(ALL_SCOPES);
        self.credentials()
    }

    fn expire_history_cursor(&self) {}

    fn response_gate(&self) -> &ResponseGate {
        &self.gate
    }

    fn fetch_path(&self, _id: &str) -> String {
        "/api/conversations.replies".into()
    }
}

/// Waits real time for the fake's rate windows to pass (`minutes` of its clock).
pub async fn let_windows_pass(minutes: u64) {
    tokio::time::sleep(Duration::from_secs_f64(minutes as f64 * 60.0 / TIME_SCALE)).await;
}

/// The profile's name as a setting value.
pub fn profile_setting(profile: RateProfile) -> Value {
    Value::String(profile.as_str().into())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
