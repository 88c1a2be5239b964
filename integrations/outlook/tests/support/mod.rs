//! The Outlook fake as a conformance subject, shared by the conformance scenarios and
//! the Outlook acceptance tests.
//!
//! The projection compared with the fake's truth is what a reader of a stored message
//! sees: its folder's path, subject, text body, read state, flag, categories,
//! `changeKey`, and the names of its attachments (listed when `hasAttachments`). The
//! truth is every message of the mailbox by immutable id, as the fake holds it
//! (`OutlookHandle::messages`), never the integration's mapping.
//!
//! In front of the fake's router sits a probe (a middleware of these tests) that, for
//! API requests only (under `/v1.0/`, never the token endpoint):
//! - counts requests without `Prefer: IdType="ImmutableId"`, and delta requests
//!   without `Prefer: odata.maxpagesize`;
//! - logs each delta request (its folder, and whether it carried `$deltatoken`): a
//!   delta request without one is a page of a round's listing (a first round, or the
//!   next pages of any round), counted with the list calls;
//! - answers a share of requests with Graph's 429 (`activityLimitReached`,
//!   `Retry-After: 1`), 500 (`generalException`) or 503 (`serviceNotAvailable`).
//!
//! Access tokens that die after a number of requests (the scenarios' "token expiry
//! mid-sync") are the Graph fake's own (`expire_access_tokens_after`).
//!
//! Mutations: an edit changes the flag, the read state or the categories (in turn); a
//! deletion removes the message for good (what a sync must then not hold: a message
//! moved to Deleted Items is still in the mailbox). A removed message never comes back
//! with its immutable id, so the subject declares no restore.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // test support: a panic is how a test fails

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tributary_conformance::{Capabilities, ConformanceSubject, FaultRates};
use tributary_msgraph_fake::{GraphUrls, ThrottleConfig};
use tributary_outlook_fake::{
    FlagStatus, Grant, MailboxConfig, OutlookConfig, OutlookHandle, RefreshRotation,
};
use tributary_sdk::serde_json::{Map, Value, json};
use tributary_sdk::{Credentials, ManifestError, Registration};
use tributary_testkit::serving::{LoopbackServer, ResponseGate};

/// The scopes the integration asks for.
pub const SCOPES: &[&str] = &["offline_access", "Mail.Read"];

/// One delta request the probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaRequest {
    /// The folder id of the path.
    pub folder: String,
    /// Whether the query carried `$deltatoken` (a round from a stored delta link).
    pub from_delta_link: bool,
}

#[derive(Debug)]
struct ProbeState {
    deltas: Vec<DeltaRequest>,
    rates: FaultRates,
    rng: StdRng,
    injected: u64,
    corrupt: Option<String>,
    without_immutable_ids: u64,
    deltas_without_page_size: u64,
}

/// The probe in front of the fake (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Probe {
    state: Arc<Mutex<ProbeState>>,
    graph: tributary_msgraph_fake::GraphHandle,
}

impl Probe {
    fn new(graph: tributary_msgraph_fake::GraphHandle) -> Probe {
        Probe {
            state: Arc::new(Mutex::new(ProbeState {
                deltas: Vec::new(),
                rates: FaultRates::NONE,
                rng: StdRng::seed_from_u64(0),
                injected: 0,
                corrupt: None,
                without_immutable_ids: 0,
                deltas_without_page_size: 0,
            })),
            graph,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ProbeState> {
        lock(&self.state)
    }

    /// The delta requests seen since the last reset.
    pub fn deltas(&self) -> Vec<DeltaRequest> {
        self.lock().deltas.clone()
    }

    /// Delta requests that read a listing (no `$deltatoken`).
    pub fn delta_listings(&self) -> u64 {
        self.lock()
            .deltas
            .iter()
            .filter(|d| !d.from_delta_link)
            .count() as u64
    }

    fn reset(&self) {
        let mut state = self.lock();
        state.deltas.clear();
        state.without_immutable_ids = 0;
        state.deltas_without_page_size = 0;
    }

    /// API requests since the last reset without `Prefer: IdType="ImmutableId"`.
    pub fn without_immutable_ids(&self) -> u64 {
        self.lock().without_immutable_ids
    }

    /// Delta requests since the last reset without `Prefer: odata.maxpagesize`.
    pub fn deltas_without_page_size(&self) -> u64 {
        self.lock().deltas_without_page_size
    }

    /// Answers every fetch of message `id` (`GET /v1.0/me/messages/{id}`) with a 200
    /// whose JSON is not a message (`subject` a number) from now on.
    pub fn corrupt_message(&self, id: &str) {
        self.lock().corrupt = Some(format!("/v1.0/me/messages/{id}"));
    }
}

/// The folder id of a delta path (`/v1.0/me/mailFolders/{id}/messages/delta`).
fn delta_folder(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v1.0/me/mailFolders/")?;
    let (folder, tail) = rest.split_once('/')?;
    tail.starts_with("messages/")
        .then(|| tail.contains("delta"))
        .filter(|d| *d)
        .map(|_| folder.to_owned())
}

async fn probe(State(probe): State<Probe>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if !path.starts_with("/v1.0/") {
        return next.run(request).await;
    }
    let query = request.uri().query().unwrap_or("").to_owned();
    let prefer: String = request
        .headers()
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let fault = {
        let mut state = probe.lock();
        if !prefer.contains("IdType=\"ImmutableId\"") {
            state.without_immutable_ids += 1;
        }
        if delta_folder(&path).is_some() && !prefer.contains("odata.maxpagesize=") {
            state.deltas_without_page_size += 1;
        }
        if let Some(folder) = delta_folder(&path) {
            let from_delta_link = query.contains("deltatoken");
            state.deltas.push(DeltaRequest {
                folder,
                from_delta_link,
            });
        }
        let FaultRates {
            rate_limited,
            server_error,
            ..
        } = state.rates;
        let roll: f64 = if rate_limited > 0.0 || server_error > 0.0 {
            state.rng.random()
        } else {
            1.0
        };
        let fault = if roll < rate_limited {
            Some(StatusCode::TOO_MANY_REQUESTS)
        } else if roll < rate_limited + server_error {
            Some(if state.rng.random_bool(0.5) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            })
        } else {
            None
        };
        if fault.is_some() {
            state.injected += 1;
        }
        fault
    };
    let Some(status) = fault else {
        let corrupt = probe.lock().corrupt.as_deref() == Some(path.as_str());
        let response = next.run(request).await;
        return if corrupt {
            corrupted(response).await
        } else {
            response
        };
    };
    let code = match status {
        StatusCode::TOO_MANY_REQUESTS => "activityLimitReached",
        StatusCode::SERVICE_UNAVAILABLE => "serviceNotAvailable",
        _ => "generalException",
    };
    let body = json!({"error": {"code": code, "message": "injected fault",
        "innerError": {"request-id": "00000000-0000-4000-8000-000000000000"}}});
    let json = [(header::CONTENT_TYPE, "application/json")];
    if status == StatusCode::TOO_MANY_REQUESTS {
        (status, [(header::RETRY_AFTER, "1")], json, body.to_string()).into_response()
    } else {
        (status, json, body.to_string()).into_response()
    }
}

/// `response` with its JSON's `subject` made a number (no longer a message).
async fn corrupted(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20).await.unwrap();
    let mut value: Value = tributary_sdk::serde_json::from_slice(&bytes).unwrap();
    value["subject"] = Value::from(12_345);
    let mut response = Response::from_parts(parts, axum::body::Body::from(value.to_string()));
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

/// A fake Outlook mailbox driven by the scenarios, served behind the probe.
pub struct OutlookSubject {
    /// The mailbox.
    pub fake: OutlookHandle,
    /// Its server.
    pub server: LoopbackServer,
    /// The probe in front of it.
    pub probe: Probe,
    gate: ResponseGate,
    /// The grant the account is linked with (replaced on re-authorization).
    grant: Mutex<Grant>,
    /// Whether the credentials carry the grant's access token.
    pub with_access_token: bool,
    /// Edits so far.
    edits: AtomicU64,
    /// Settings added to the ones pointing at the fake (set before linking).
    pub extra_settings: Mutex<Map<String, Value>>,
}

/// What must match between a message and its stored content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailItem {
    pub folder_path: String,
    pub subject: String,
    pub body_text: String,
    pub is_read: bool,
    pub flag: String,
    pub categories: Vec<String>,
    pub change_key: String,
    pub attachment_names: Vec<String>,
}

impl OutlookSubject {
    /// The configuration of a mailbox of `messages` messages over the well-known
    /// folders and `folders` user folders, with the rate limit off (the scenarios'
    /// engines retry on a manual clock) and Microsoft's refresh token behaviour.
    pub fn config(messages: usize, folders: usize, seed: u64) -> OutlookConfig {
        let mut config = OutlookConfig {
            mailbox: MailboxConfig {
                folders,
                messages,
                attachment_rate: 0.1,
                seed,
                ..MailboxConfig::default()
            },
            ..OutlookConfig::default()
        };
        config.graph.seed = seed;
        config.graph.refresh_rotation = RefreshRotation::KeepOld;
        config.graph.throttle = ThrottleConfig {
            enforce_rate: false,
            ..ThrottleConfig::default()
        };
        config
    }

    /// A mailbox from `config`, served on a loopback port.
    pub async fn with_config(config: OutlookConfig) -> OutlookSubject {
        let fake = tokio::task::spawn_blocking(move || OutlookHandle::new(config))
            .await
            .expect("generate the mailbox");
        let probe = Probe::new(fake.graph().clone());
        let router = fake
            .router()
            .layer(middleware::from_fn_with_state(probe.clone(), self::probe));
        let server = LoopbackServer::start(router).await;
        let grant = fake.graph().mint_grant(SCOPES);
        OutlookSubject {
            gate: fake.graph().gate(),
            fake,
            server,
            probe,
            grant: Mutex::new(grant),
            with_access_token: false,
            edits: AtomicU64::new(0),
            extra_settings: Mutex::new(Map::new()),
        }
    }

    /// The URLs of the server.
    pub fn urls(&self) -> GraphUrls {
        GraphUrls::new(self.server.addr())
    }

    /// Adds a setting (before linking).
    pub fn set(&self, key: &str, value: Value) {
        lock(&self.extra_settings).insert(key.into(), value);
    }

    /// The mailbox owner's id (the throttle's key).
    pub fn user_id(&self) -> String {
        self.fake.owner().id
    }

    /// The grant's current refresh token.
    pub fn current_refresh_token(&self) -> Option<String> {
        let id = lock(&self.grant).grant_id;
        self.fake.graph().current_refresh_token(id)
    }
}

impl ConformanceSubject for OutlookSubject {
    type Projection = MailItem;

    const CAPABILITIES: Capabilities = Capabilities {
        history: true,
        edits: true,
        // A message deleted for good never comes back with its immutable id.
        restore: false,
        expiring_tokens: true,
        item_fetches: true,
    };

    const FULL_SYNC_ITEMS: usize = 2_000;

    fn registration() -> Result<Registration, ManifestError> {
        tributary_outlook::registration()
    }

    async fn start(items: usize, seed: u64) -> OutlookSubject {
        OutlookSubject::with_config(OutlookSubject::config(items, 2, seed)).await
    }

    fn credentials(&self) -> Credentials {
        let grant = lock(&self.grant).clone();
        let graph = self.fake.graph();
        let mut credentials = Credentials::default();
        credentials.set("clientId", graph.client_id());
        credentials.set("clientSecret", graph.client_secret());
        let refresh = graph
            .current_refresh_token(grant.grant_id)
            .or(grant.refresh_token.clone())
            .unwrap_or_default();
        credentials.set("refreshToken", refresh);
        if self.with_access_token {
            credentials.set("accessToken", grant.access_token);
        }
        credentials
    }

    fn settings(&self) -> Map<String, Value> {
        let urls = self.urls();
        let mut settings = Map::new();
        settings.insert("baseUrl".into(), Value::String(urls.base_url()));
        settings.insert("tokenUrl".into(), Value::String(urls.token_url()));
        // Small pages, so that the scenarios' folders span several.
        settings.insert("pageSize".into(), Value::from(20));
        for (key, value) in lock(&self.extra_settings).iter() {
            settings.insert(key.clone(), value.clone());
        }
        settings
    }

    fn add_item(&self) -> String {
        self.fake.generate_message().immutable_id
    }

    fn edit_item(&self, id: &str) -> bool {
        let n = self.edits.fetch_add(1, Ordering::Relaxed);
        let message = self.fake.message(id).expect("the edited message exists");
        let result = match n % 3 {
            0 => self.fake.set_flag(
                id,
                match message.flag {
                    FlagStatus::NotFlagged => FlagStatus::Flagged,
                    FlagStatus::Flagged => FlagStatus::Complete,
                    FlagStatus::Complete => FlagStatus::NotFlagged,
                },
            ),
            1 => self.fake.set_read(id, !message.is_read),
            _ => self.fake.set_categories(id, &[&format!("Category {n}")]),
        };
        result.unwrap_or_else(|e| panic!("edit {id}: {e}"));
        true
    }

    fn delete_item(&self, id: &str) {
        self.fake
            .purge_message(id)
            .unwrap_or_else(|e| panic!("delete {id}: {e}"));
    }

    fn restore_item(&self) -> Option<String> {
        None
    }

    fn truth(&self) -> BTreeMap<String, MailItem> {
        self.fake
            .messages()
            .into_iter()
            .map(|(id, m)| {
                let item = MailItem {
                    folder_path: m.folder_path,
                    subject: m.subject,
                    body_text: m.body_text,
                    is_read: m.is_read,
                    flag: m.flag.as_str().to_owned(),
                    categories: m.categories,
                    change_key: m.change_key,
                    attachment_names: if m.has_attachments {
                        m.attachment_names
                    } else {
                        Vec::new()
                    },
                };
                (id, item)
            })
            .collect()
    }

    fn project(content: &Value) -> MailItem {
        let text = |v: &Value| v.as_str().unwrap_or("<missing>").to_owned();
        MailItem {
            folder_path: text(&content["folder"]["path"]),
            subject: text(&content["subject"]),
            body_text: text(&content["body"]["text"]),
            is_read: content["isRead"].as_bool().unwrap_or(false),
            flag: text(&content["flag"]),
            categories: content["categories"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect(),
            change_key: text(&content["changeKey"]),
            attachment_names: content["attachments"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| text(&a["name"]))
                .collect(),
        }
    }

    fn list_calls(&self) -> u64 {
        let counters = self.fake.graph().counters();
        counters.calls("message.list")
            + counters.calls("message.listAll")
            + self.probe.delta_listings()
    }

    fn fetch_calls(&self) -> u64 {
        self.fake.graph().counters().calls("message.get")
    }

    fn reset_counters(&self) {
        self.fake.graph().reset_counters();
        self.probe.reset();
    }

    fn set_fault_rates(&self, rates: FaultRates) {
        let mut state = self.probe.lock();
        state.rates = rates;
        state.rng = StdRng::seed_from_u64(rates.seed);
    }

    fn faults_injected(&self) -> u64 {
        self.probe.lock().injected
    }

    fn expire_tokens_after_calls(&self, calls: u64) -> bool {
        if calls == 0 {
            self.fake.graph().expire_access_tokens();
        } else {
            self.fake.graph().expire_access_tokens_after(calls);
        }
        true
    }

    fn tokens_issued(&self) -> u64 {
        self.fake.graph().refreshes()
    }

    fn revoke_credentials(&self) {
        let token = lock(&self.grant).access_token.clone();
        assert!(
            self.fake.graph().revoke_grant(&token),
            "the grant was not known"
        );
    }

    fn reauthorize(&self) -> Credentials {
        *lock(&self.grant) = self.fake.graph().mint_grant(SCOPES);
        self.credentials()
    }

    fn expire_history_cursor(&self) {
        self.fake.forget_all_delta_tokens();
    }

    fn response_gate(&self) -> &ResponseGate {
        &self.gate
    }

    fn fetch_path(&self, id: &str) -> String {
        format!("/me/messages/{id}")
    }
}

/// Locks a mutex, poisoned or not.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
