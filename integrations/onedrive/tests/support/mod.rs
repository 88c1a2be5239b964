//! The OneDrive fake as a conformance subject, shared by the conformance scenarios and
//! the OneDrive acceptance tests.
//!
//! The projection compared with the fake's truth is what a reader of a stored item
//! sees: its path, whether it is a folder, its eTag, its MIME type and its text (the
//! file's bytes as UTF-8 for text-like files, cut at `maxTextBytes`; none for binaries
//! and folders). The truth is every item below the drive's root as the fake holds it
//! (`OneDriveHandle::items`), never the integration's mapping.
//!
//! Download URLs are served on a second listener (another port: another origin), as
//! Graph's are on another host, so that a bearer token sent there would be a token
//! sent to another host; the fake records it (`download_requests_with_authorization`).
//!
//! In front of the Graph routes sits a probe (a middleware of these tests) that, for
//! API requests only (under `/v1.0/`, never the token endpoint nor the downloads):
//! - logs each delta request as a listing (no token: a first round's first page; a
//!   first-round token: its next pages) or a change round (a delta or changes token,
//!   decoded from the fake's token format);
//! - can answer one item's fetch with JSON that is not a drive item.
//!
//! Access tokens that die after a number of requests (the scenarios' "token expiry
//! mid-sync", and a token's life counted in requests) are the Graph fake's own
//! (`expire_access_tokens_after`, `expire_access_tokens_every`).
//!
//! In front of everything, the testkit's fault layer answers a share of requests with
//! 429 (`Retry-After: 1`), 500 or 503 when a scenario asks for faults.
//!
//! Mutations: an edit of a file replaces its content; an edit of a folder renames it
//! and back (its eTag changes, nothing below it moves). Deleting a folder first moves
//! what it holds to its parent (as a user emptying it would), then deletes it, so that
//! a deletion removes one item. A deleted item comes back with its id from the recycle
//! bin (a restore).

#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // test support: a panic is how a test fails

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use base64::Engine as _;
use tributary_conformance::{Capabilities, ConformanceSubject, FaultRates};
use tributary_msgraph_fake::standalone::fake_link;
use tributary_msgraph_fake::{GraphUrls, ThrottleConfig};
use tributary_onedrive_fake::{
    DriveContentConfig, Grant, OneDriveConfig, OneDriveHandle, RefreshRotation,
};
use tributary_sdk::serde_json::{Map, Value};
use tributary_sdk::{Credentials, ManifestError, Registration};
use tributary_testkit::fault_layer::FaultInjector;
use tributary_testkit::serving::{LoopbackServer, ResponseGate};

/// The scopes the integration asks for.
pub const SCOPES: &[&str] = &["offline_access", "Files.Read"];

/// The integration's default `maxTextBytes`.
pub const DEFAULT_MAX_TEXT_BYTES: usize = 1024 * 1024;

/// One delta request the probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaRequest {
    /// A page of a first round (a listing of every item).
    Listing,
    /// A page of a round of changes, from a delta link or its next links.
    Changes,
}

#[derive(Debug)]
struct ProbeState {
    deltas: Vec<DeltaRequest>,
    corrupt: Option<String>,
    deltas_without_page_size: u64,
    contents: Vec<String>,
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
                corrupt: None,
                deltas_without_page_size: 0,
                contents: Vec::new(),
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

    /// Delta requests that read a first round since the last reset.
    pub fn delta_listings(&self) -> u64 {
        self.lock()
            .deltas
            .iter()
            .filter(|d| **d == DeltaRequest::Listing)
            .count() as u64
    }

    /// Delta requests since the last reset without `Prefer: odata.maxpagesize`.
    pub fn deltas_without_page_size(&self) -> u64 {
        self.lock().deltas_without_page_size
    }

    /// The item ids whose content was asked for (`…/items/{id}/content`) since the
    /// last reset.
    pub fn content_requests(&self) -> Vec<String> {
        self.lock().contents.clone()
    }

    fn reset(&self) {
        let mut state = self.lock();
        state.deltas.clear();
        state.deltas_without_page_size = 0;
        state.contents.clear();
    }

    /// Answers every fetch of item `id` (`GET /v1.0/me/drive/items/{id}`) with a 200
    /// whose JSON is not a drive item (`size` a string) from now on.
    pub fn corrupt_item(&self, id: &str) {
        self.lock().corrupt = Some(format!("/v1.0/me/drive/items/{id}"));
    }
}

/// What a delta request reads, from its token (the fake's tokens are base64url of
/// `v1;tag;epoch;from;kind;…`, kind `i` for a first round).
fn classify_delta(path: &str, query: &str) -> Option<DeltaRequest> {
    let (_, function) = path.split_once("/root/")?;
    if !function.contains("delta") {
        return None;
    }
    let in_path = function
        .split_once("token='")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(token, _)| token.to_owned());
    let in_query = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(str::to_owned);
    let Some(token) = in_path.or(in_query) else {
        return Some(DeltaRequest::Listing);
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches("%3D").trim_end_matches('='))
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default();
    let kind = raw.split(';').nth(4).unwrap_or("");
    Some(if kind == "i" {
        DeltaRequest::Listing
    } else {
        DeltaRequest::Changes
    })
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
    let corrupt = {
        let mut state = probe.lock();
        if let Some(kind) = classify_delta(&path, &query) {
            state.deltas.push(kind);
            if !prefer.contains("odata.maxpagesize=") {
                state.deltas_without_page_size += 1;
            }
        }
        if let Some(id) = path
            .strip_prefix("/v1.0/me/drive/items/")
            .and_then(|rest| rest.strip_suffix("/content"))
        {
            state.contents.push(id.to_owned());
        }
        state.corrupt.as_deref() == Some(path.as_str())
    };
    let response = next.run(request).await;
    if corrupt {
        corrupted(response).await
    } else {
        response
    }
}

/// `response` with its JSON's `size` made a string (no longer a drive item).
async fn corrupted(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20).await.unwrap();
    let mut value: Value = tributary_sdk::serde_json::from_slice(&bytes).unwrap();
    value["size"] = Value::from("very big");
    let mut response = Response::from_parts(parts, axum::body::Body::from(value.to_string()));
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

/// A fake OneDrive driven by the scenarios, served behind the probe, its download URLs
/// on a second listener.
pub struct OneDriveSubject {
    /// The drive.
    pub fake: OneDriveHandle,
    /// The Graph server.
    pub server: LoopbackServer,
    /// The download URLs' server (another origin).
    pub downloads: LoopbackServer,
    /// The probe in front of the Graph routes.
    pub probe: Probe,
    faults: FaultInjector,
    gate: ResponseGate,
    /// The grant the account is linked with (replaced on re-authorization).
    grant: Mutex<Grant>,
    /// Whether the credentials carry the grant's access token.
    pub with_access_token: bool,
    /// Edits so far.
    edits: AtomicU64,
    /// Deleted items, oldest first: what a restore takes out of the recycle bin.
    deleted: Mutex<Vec<String>>,
    /// Settings added to the ones pointing at the fake (set before linking).
    pub extra_settings: Mutex<Map<String, Value>>,
}

/// What must match between a drive item and its stored content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveEntry {
    pub path: String,
    pub is_folder: bool,
    pub etag: String,
    pub mime_type: Option<String>,
    pub text: Option<String>,
}

impl OneDriveSubject {
    /// The configuration of a business drive of `files` files in `folders` folders,
    /// with the rate limit off (the scenarios' engines retry on a manual clock) and
    /// refresh tokens that stay valid when used.
    pub fn config(files: usize, folders: usize, seed: u64) -> OneDriveConfig {
        let mut config = OneDriveConfig {
            content: DriveContentConfig {
                files,
                folders,
                seed,
                ..DriveContentConfig::default()
            },
            ..OneDriveConfig::default()
        };
        config.graph.seed = seed;
        config.graph.refresh_rotation = RefreshRotation::KeepOld;
        config.graph.throttle = ThrottleConfig {
            enforce_rate: false,
            ..ThrottleConfig::default()
        };
        config
    }

    /// A drive from `config`, served on two loopback ports.
    pub async fn with_config(config: OneDriveConfig) -> OneDriveSubject {
        let fake = tokio::task::spawn_blocking(move || OneDriveHandle::new(config))
            .await
            .expect("generate the drive");
        let downloads = LoopbackServer::start(fake.download_router()).await;
        fake.set_download_base(Some(downloads.base_url()));
        let probe = Probe::new(fake.graph().clone());
        let faults = FaultInjector::new();
        let router = fake
            .graph()
            .router(fake.graph_routes())
            .layer(middleware::from_fn_with_state(probe.clone(), self::probe));
        let server = LoopbackServer::start(faults.layer(router)).await;
        let grant = fake.graph().mint_grant(SCOPES);
        OneDriveSubject {
            gate: fake.graph().gate(),
            fake,
            server,
            downloads,
            probe,
            faults,
            grant: Mutex::new(grant),
            with_access_token: false,
            edits: AtomicU64::new(0),
            deleted: Mutex::new(Vec::new()),
            extra_settings: Mutex::new(Map::new()),
        }
    }

    /// The URLs of the Graph server.
    pub fn urls(&self) -> GraphUrls {
        GraphUrls::new(self.server.addr())
    }

    /// Adds a setting (before linking).
    pub fn set(&self, key: &str, value: Value) {
        lock(&self.extra_settings).insert(key.into(), value);
    }

    /// The drive owner's id (the throttle's key).
    pub fn user_id(&self) -> String {
        self.fake.owner().id
    }

    /// The `maxTextBytes` the account is linked with.
    pub fn max_text_bytes(&self) -> usize {
        lock(&self.extra_settings)
            .get("maxTextBytes")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(DEFAULT_MAX_TEXT_BYTES)
    }

    /// The ids of the items directly in folder `id`.
    pub fn children_of(&self, id: &str) -> Vec<String> {
        self.fake
            .items()
            .into_values()
            .filter(|item| item.parent_id.as_deref() == Some(id))
            .map(|item| item.id)
            .collect()
    }
}

/// The text a sync stores of `bytes` under a limit of `max` bytes.
pub fn expected_text(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut cut = &bytes[..max];
    while std::str::from_utf8(cut).is_err_and(|e| e.error_len().is_none()) && !cut.is_empty() {
        cut = &cut[..cut.len() - 1];
    }
    String::from_utf8_lossy(cut).into_owned()
}

impl ConformanceSubject for OneDriveSubject {
    type Projection = DriveEntry;

    const CAPABILITIES: Capabilities = Capabilities::ALL;

    const FULL_SYNC_ITEMS: usize = 1_000;

    fn registration() -> Result<Registration, ManifestError> {
        tributary_onedrive::registration()
    }

    async fn start(items: usize, seed: u64) -> OneDriveSubject {
        let folders = (items / 20).clamp(2, 30);
        OneDriveSubject::with_config(OneDriveSubject::config(items, folders, seed)).await
    }

    fn credentials(&self) -> Credentials {
        let grant = lock(&self.grant).clone();
        let mut credentials = fake_link(self.fake.graph(), &grant, self.urls()).credentials;
        if !self.with_access_token {
            credentials.remove("accessToken");
        }
        credentials
    }

    fn settings(&self) -> Map<String, Value> {
        let mut settings = self.urls().settings();
        // Small pages, so that the scenarios' rounds span several.
        settings.insert("pageSize".into(), Value::from(20));
        for (key, value) in lock(&self.extra_settings).iter() {
            settings.insert(key.clone(), value.clone());
        }
        settings
    }

    fn add_item(&self) -> String {
        let id = self.fake.generate_file();
        assert!(!id.is_empty(), "the fake generated no file");
        id
    }

    fn edit_item(&self, id: &str) -> bool {
        let n = self.edits.fetch_add(1, Ordering::Relaxed);
        let item = self.fake.item(id).expect("the edited item exists");
        let result = if item.is_folder {
            self.fake
                .rename(id, &format!("{} (renaming {n})", item.name))
                .and_then(|()| self.fake.rename(id, &item.name))
        } else {
            self.fake
                .edit_file(id, format!("edit {n} of {}\nnew text é\n", item.name))
        };
        result.unwrap_or_else(|e| panic!("edit {id}: {e}"));
        true
    }

    fn delete_item(&self, id: &str) {
        let item = self.fake.item(id).expect("the deleted item exists");
        if item.is_folder {
            let parent = item
                .parent_id
                .clone()
                .unwrap_or_else(|| self.fake.root_id());
            for child in self.children_of(id) {
                if self.fake.move_item(&child, &parent).is_err() {
                    // A name taken in the parent: the child goes under another name.
                    let name = self.fake.item(&child).unwrap().name;
                    self.fake
                        .rename(&child, &format!("{name} (moved)"))
                        .unwrap();
                    self.fake.move_item(&child, &parent).unwrap();
                }
            }
        }
        self.fake
            .delete(id)
            .unwrap_or_else(|e| panic!("delete {id}: {e}"));
        lock(&self.deleted).push(id.to_owned());
    }

    fn restore_item(&self) -> Option<String> {
        let mut deleted = lock(&self.deleted);
        let position = deleted
            .iter()
            .position(|id| self.fake.restore(id).is_ok())?;
        Some(deleted.remove(position))
    }

    fn truth(&self) -> BTreeMap<String, DriveEntry> {
        let max = self.max_text_bytes();
        self.fake
            .items()
            .into_iter()
            .filter(|(_, item)| item.parent_id.is_some())
            .map(|(id, item)| {
                let text = if item.is_text {
                    item.content
                        .as_deref()
                        .map(|bytes| expected_text(bytes, max))
                } else {
                    None
                };
                let entry = DriveEntry {
                    path: item.path,
                    is_folder: item.is_folder,
                    etag: item.etag,
                    mime_type: item.mime_type,
                    text,
                };
                (id, entry)
            })
            .collect()
    }

    fn project(content: &Value) -> DriveEntry {
        let text = |v: &Value| v.as_str().unwrap_or("<missing>").to_owned();
        DriveEntry {
            path: text(&content["path"]),
            is_folder: content["isFolder"].as_bool().unwrap_or(false),
            etag: text(&content["eTag"]),
            mime_type: content["mimeType"].as_str().map(str::to_owned),
            text: content["text"].as_str().map(str::to_owned),
        }
    }

    fn list_calls(&self) -> u64 {
        self.fake.graph().counters().calls("driveItem.children") + self.probe.delta_listings()
    }

    fn fetch_calls(&self) -> u64 {
        self.fake.graph().counters().calls("driveItem.get")
    }

    fn reset_counters(&self) {
        self.fake.graph().reset_counters();
        self.fake.reset_counters();
        self.probe.reset();
    }

    fn set_fault_rates(&self, rates: FaultRates) {
        self.faults.set_rates(rates);
    }

    fn faults_injected(&self) -> u64 {
        self.faults.injected()
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
        self.fake.forget_delta_tokens();
    }

    fn response_gate(&self) -> &ResponseGate {
        &self.gate
    }

    fn fetch_path(&self, id: &str) -> String {
        format!("/me/drive/items/{id}")
    }
}

/// Locks a mutex, poisoned or not.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
