//! The synthetic source: a deterministic, stateful loopback HTTP server holding items
//! in memory ([`SourceServer`]), with hooks to add, edit and delete items, inject
//! faults and read request counters. The `synthetic` integration
//! (`integrations/synthetic/`) syncs it through the SDK exactly as an integration for a
//! real service would; [`fake`] is its fake for the registry.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use tributary_testkit::synthetic::{SourceConfig, SourceServer};
//! let server = SourceServer::start(SourceConfig::new(1_000, 42, "token")).await?;
//! let settings = server.settings(); // {"baseUrl": "http://127.0.0.1:<port>"}
//! server.add_items(3);
//! assert_eq!(server.snapshot().len(), 1_003);
//! # Ok(()) }
//! ```
//!
//! Wire format (every request needs `Authorization: Bearer <token>`):
//!
//! | request | answer |
//! |---|---|
//! | `GET /items?pageSize=N&pageToken=T` | `{"items":[{"id","version"}..], "nextPageToken"?}`, newest first |
//! | `GET /items/{id}` | `{"id","seq","createdAt","title","body","version"}`, or 404 |
//! | `GET /changes?cursor=C` | `{"changes":[{"kind","id"}..], "cursor", "hasMore"}`, or 410 when `C` expired |
//! | `GET /cursor` | `{"cursor"}`: the position of the newest change |
//!
//! Errors answer `{"error": {"code": <status>, "message": "..."}}`.
//!
//! List page tokens are keyset tokens (they encode the last sequence number returned),
//! so a walk through the pages stays exact while items are added (new items sort
//! before the walk's position) or deleted (they simply stop appearing).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Bound;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tributary_sdk::{Credentials, FakeLink, FakeOptions, FakeTruth, RunningFake};

use crate::serving::{Deliveries, LoopbackServer};

/// The default number of ids per list page.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest list page the server hands out; larger `pageSize` values are clamped.
pub const MAX_PAGE_SIZE: usize = 500;

/// How the synthetic source is set up.
#[derive(Clone)]
pub struct SourceConfig {
    /// How many items to generate at start (ids `item-0000001` upwards, the highest
    /// sequence number being the newest).
    pub items: usize,
    /// Seed of the item generator: the same config always yields the same items.
    pub seed: u64,
    /// The bearer token every request must carry.
    pub token: String,
    /// How many changes the change log keeps; a cursor older than the oldest kept
    /// change answers 410 Gone.
    pub change_retention: usize,
    /// The most changes one `GET /changes` answer holds (`hasMore` says when more wait).
    pub max_changes_per_response: usize,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            items: 0,
            seed: 0,
            token: "synthetic-test-token".into(),
            change_retention: 10_000,
            max_changes_per_response: 1_000,
        }
    }
}

impl SourceConfig {
    /// A config with `items` generated items, this seed and this token, and default
    /// change-log settings.
    pub fn new(items: usize, seed: u64, token: impl Into<String>) -> Self {
        SourceConfig {
            items,
            seed,
            token: token.into(),
            ..SourceConfig::default()
        }
    }
}

impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceConfig")
            .field("items", &self.items)
            .field("seed", &self.seed)
            .field("token", &"<redacted>")
            .field("change_retention", &self.change_retention)
            .field("max_changes_per_response", &self.max_changes_per_response)
            .finish()
    }
}

/// One item of the synthetic source, as `GET /items/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// The external id (`item-0000042`).
    pub id: String,
    /// The ordering key: a higher sequence number is a newer item.
    pub seq: u64,
    /// When the item was created (deterministic: derived from `seq`).
    pub created_at: DateTime<Utc>,
    /// A short generated title.
    pub title: String,
    /// A generated body; every edit changes it.
    pub body: String,
    /// Starts at 1; every edit adds 1.
    pub version: u64,
}

/// What happened to an item, as the change log reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The item appeared (or reappeared after a deletion).
    Added,
    /// The item's body and version changed.
    Edited,
    /// The item was deleted.
    Deleted,
}

/// A failure the server injects instead of answering normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The status to answer with.
    pub status: u16,
    /// The `Retry-After` header value in seconds, if any.
    pub retry_after_secs: Option<u64>,
    /// When set, the request is answered normally but the body is cut in half
    /// (a truncated response); `status` is then ignored.
    pub truncate: bool,
}

impl Fault {
    /// Answers with this status and a JSON error body.
    pub fn status(status: u16) -> Fault {
        Fault {
            status,
            retry_after_secs: None,
            truncate: false,
        }
    }

    /// 500 Internal Server Error.
    pub fn internal_error() -> Fault {
        Fault::status(500)
    }

    /// 503 Service Unavailable.
    pub fn unavailable() -> Fault {
        Fault::status(503)
    }

    /// 429 Too Many Requests with `Retry-After: <seconds>`.
    pub fn rate_limited(retry_after_secs: u64) -> Fault {
        Fault {
            status: 429,
            retry_after_secs: Some(retry_after_secs),
            truncate: false,
        }
    }

    /// 401 Unauthorized, as if the token had expired.
    pub fn unauthorized() -> Fault {
        Fault::status(401)
    }

    /// The normal answer with its body cut in half.
    pub fn truncated() -> Fault {
        Fault {
            status: 200,
            retry_after_secs: None,
            truncate: true,
        }
    }
}

/// Requests the server received, by endpoint. Every request counts, including those
/// refused for authentication or answered with an injected fault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// All requests.
    pub total: u64,
    /// `GET /items` (list pages).
    pub list_calls: u64,
    /// `GET /items/{id}` (single item fetches).
    pub item_fetches: u64,
    /// `GET /changes`.
    pub change_calls: u64,
    /// `GET /cursor`.
    pub cursor_calls: u64,
    /// Requests refused with 401 because of a missing or wrong token.
    pub rejected_auth: u64,
    /// Requests answered with an injected fault (including always-failing items).
    pub injected_faults: u64,
}

struct FaultRule {
    path_prefix: Option<String>,
    remaining: u64,
    fault: Fault,
}

struct RandomFaults {
    rate: f64,
    rng: StdRng,
    fault: Fault,
}

#[derive(Default)]
struct InFlight {
    current: u32,
    max: u32,
}

struct ChangeEntry {
    kind: ChangeKind,
    id: String,
}

struct State {
    token: Option<String>,
    items: BTreeMap<u64, Item>,
    seq_of: HashMap<String, u64>,
    next_seq: u64,
    generator: StdRng,
    /// Change log; the entry at index `i` has position `log_start + i`.
    log: VecDeque<ChangeEntry>,
    log_start: u64,
    retention: usize,
    max_changes: usize,
    fault_rules: Vec<FaultRule>,
    random_faults: Option<RandomFaults>,
    failing_items: HashSet<String>,
    stalled_items: HashMap<String, Duration>,
    latency: Option<Duration>,
    counts: RequestCounts,
    list_log: Vec<ListCall>,
    fetches: HashMap<String, u64>,
    in_flight: HashMap<String, InFlight>,
}

const WORDS: &[&str] = &[
    "river", "stone", "delta", "harbor", "meadow", "signal", "lantern", "orchard", "copper",
    "willow", "summit", "canyon", "ember", "glacier", "prairie", "quartz", "sparrow", "tide",
    "valley", "beacon", "cedar", "falcon", "granite", "horizon", "island", "juniper", "kestrel",
    "lagoon", "marble", "nectar", "opal", "pebble", "quill", "ripple", "saffron", "thistle",
    "umber", "violet", "wander", "yarrow", "zephyr", "archive", "budget", "memo", "report",
    "meeting", "draft", "invoice", "schedule", "review",
];

/// The creation time of the item with sequence number 1; each later item is one minute
/// newer.
fn created_at(seq: u64) -> DateTime<Utc> {
    let base = DateTime::from_timestamp(1_704_067_200, 0).unwrap_or_default(); // 2024-01-01
    i64::try_from(seq)
        .ok()
        .and_then(chrono::TimeDelta::try_minutes)
        .and_then(|offset| base.checked_add_signed(offset))
        .unwrap_or(base)
}

fn words(rng: &mut StdRng, min: usize, max: usize) -> String {
    let n = rng.random_range(min..=max);
    (0..n)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

impl State {
    fn new(config: &SourceConfig) -> State {
        let mut state = State {
            token: Some(config.token.clone()),
            items: BTreeMap::new(),
            seq_of: HashMap::new(),
            next_seq: 1,
            generator: StdRng::seed_from_u64(config.seed),
            log: VecDeque::new(),
            log_start: 0,
            retention: config.change_retention,
            max_changes: config.max_changes_per_response.max(1),
            fault_rules: Vec::new(),
            random_faults: None,
            failing_items: HashSet::new(),
            stalled_items: HashMap::new(),
            latency: None,
            counts: RequestCounts::default(),
            list_log: Vec::new(),
            fetches: HashMap::new(),
            in_flight: HashMap::new(),
        };
        for _ in 0..config.items {
            state.insert_new(None);
        }
        state
    }

    /// The position of the next change (the current cursor).
    fn log_end(&self) -> u64 {
        self.log_start + self.log.len() as u64
    }

    fn record(&mut self, kind: ChangeKind, id: &str) {
        self.log.push_back(ChangeEntry {
            kind,
            id: id.to_owned(),
        });
        while self.log.len() > self.retention {
            self.log.pop_front();
            self.log_start += 1;
        }
    }

    /// Creates an item with the next sequence number; `id` defaults to a generated one.
    fn insert_new(&mut self, id: Option<String>) -> String {
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = id.unwrap_or_else(|| {
            let base = format!("item-{seq:07}");
            let mut candidate = base.clone();
            let mut n = 1;
            while self.seq_of.contains_key(&candidate) {
                candidate = format!("{base}-{n}");
                n += 1;
            }
            candidate
        });
        let mut title = words(&mut self.generator, 2, 5);
        if let Some(first) = title.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        let body = words(&mut self.generator, 12, 40);
        self.items.insert(
            seq,
            Item {
                id: id.clone(),
                seq,
                created_at: created_at(seq),
                title,
                body,
                version: 1,
            },
        );
        self.seq_of.insert(id.clone(), seq);
        id
    }

    fn item(&self, id: &str) -> Option<&Item> {
        self.seq_of.get(id).and_then(|seq| self.items.get(seq))
    }

    fn cursor(&self) -> String {
        encode_cursor(self.log_end())
    }
}

fn encode_page_token(seq: u64) -> String {
    format!("pt1.{seq:x}")
}

fn decode_page_token(token: &str) -> Option<u64> {
    u64::from_str_radix(token.strip_prefix("pt1.")?, 16).ok()
}

fn encode_cursor(position: u64) -> String {
    format!("c1.{position:x}")
}

fn decode_cursor(cursor: &str) -> Option<u64> {
    u64::from_str_radix(cursor.strip_prefix("c1.")?, 16).ok()
}

/// A handle on the source's state: hooks to change the items, inject faults and read
/// counters. Cheap to clone; every clone sees the same state.
#[derive(Clone)]
pub struct Source {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Source")
            .field("items", &state.items.len())
            .field("cursor", &state.cursor())
            .finish_non_exhaustive()
    }
}

impl Source {
    /// A source with the items the config generates.
    pub fn new(config: &SourceConfig) -> Source {
        Source {
            state: Arc::new(Mutex::new(State::new(config))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ---- items -----------------------------------------------------------------

    /// Adds `n` generated items, each newer than every existing item; returns their ids.
    pub fn add_items(&self, n: usize) -> Vec<String> {
        let mut state = self.lock();
        (0..n)
            .map(|_| {
                let id = state.insert_new(None);
                state.record(ChangeKind::Added, &id);
                id
            })
            .collect()
    }

    /// Adds one item (the newest) with this id; false when an item with this id exists.
    /// An id that was deleted before comes back as a new item.
    pub fn add_item_with_id(&self, id: &str) -> bool {
        let mut state = self.lock();
        if state.seq_of.contains_key(id) {
            return false;
        }
        let id = state.insert_new(Some(id.to_owned()));
        state.record(ChangeKind::Added, &id);
        true
    }

    /// Edits an item: new body, version + 1. False when there is no such item.
    pub fn edit(&self, id: &str) -> bool {
        let mut state = self.lock();
        let Some(seq) = state.seq_of.get(id).copied() else {
            return false;
        };
        let body = words(&mut state.generator, 12, 40);
        let Some(item) = state.items.get_mut(&seq) else {
            return false;
        };
        item.version += 1;
        item.body = format!("{body} (edit {})", item.version);
        state.record(ChangeKind::Edited, id);
        true
    }

    /// Deletes an item. False when there is no such item.
    pub fn delete(&self, id: &str) -> bool {
        let mut state = self.lock();
        let Some(seq) = state.seq_of.remove(id) else {
            return false;
        };
        state.items.remove(&seq);
        state.record(ChangeKind::Deleted, id);
        true
    }

    /// The current items as id → version: the truth a synced copy must converge to.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.lock()
            .items
            .values()
            .map(|item| (item.id.clone(), item.version))
            .collect()
    }

    /// One item, if it exists.
    pub fn item(&self, id: &str) -> Option<Item> {
        self.lock().item(id).cloned()
    }

    /// Every current id, newest first.
    pub fn ids(&self) -> Vec<String> {
        self.lock()
            .items
            .values()
            .rev()
            .map(|item| item.id.clone())
            .collect()
    }

    /// How many items exist.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether no item exists.
    pub fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    // ---- change log and auth ---------------------------------------------------------

    /// The current change-log cursor (what `GET /cursor` answers).
    pub fn cursor(&self) -> String {
        self.lock().cursor()
    }

    /// Forgets the whole change log: every cursor older than the current one answers
    /// 410 Gone from now on. Note that an integration falling back to an id comparison
    /// sees additions and deletions, not edits made before the expiry.
    pub fn expire_cursors(&self) {
        let mut state = self.lock();
        state.log_start = state.log_end();
        state.log.clear();
    }

    /// Refuses every request from now on (401) until [`Source::set_token`].
    pub fn revoke_token(&self) {
        self.lock().token = None;
    }

    /// Accepts this bearer token from now on (and no other).
    pub fn set_token(&self, token: impl Into<String>) {
        self.lock().token = Some(token.into());
    }

    /// The token currently accepted, if any (for building credentials; never print it).
    pub fn token(&self) -> Option<String> {
        self.lock().token.clone()
    }

    // ---- faults ------------------------------------------------------------------

    /// Answers the next `n` requests (any path) with `fault`.
    pub fn fail_next(&self, n: u64, fault: Fault) {
        self.lock().fault_rules.push(FaultRule {
            path_prefix: None,
            remaining: n,
            fault,
        });
    }

    /// Answers the next `n` requests whose path starts with `path_prefix` (`/items`,
    /// `/changes`, `/items/item-0000003`) with `fault`.
    pub fn fail_next_on(&self, path_prefix: impl Into<String>, n: u64, fault: Fault) {
        self.lock().fault_rules.push(FaultRule {
            path_prefix: Some(path_prefix.into()),
            remaining: n,
            fault,
        });
    }

    /// Answers each request with `fault` with probability `rate` (0 to 1), drawn from
    /// a generator seeded with `seed`: the same sequence of requests fails the same way.
    pub fn set_failure_rate(&self, rate: f64, seed: u64, fault: Fault) {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        self.lock().random_faults = Some(RandomFaults {
            rate,
            rng: StdRng::seed_from_u64(seed),
            fault,
        });
    }

    /// Makes every fetch of item `id` fail with 500, for as long as it is set.
    pub fn fail_item_always(&self, id: impl Into<String>) {
        self.lock().failing_items.insert(id.into());
    }

    /// Holds every fetch of item `id` this long before answering (a worker that hangs
    /// on one item, or one that a test kills while it fetches that item).
    pub fn stall_item(&self, id: impl Into<String>, delay: Duration) {
        self.lock().stalled_items.insert(id.into(), delay);
    }

    /// Waits this long before answering each request (`None`: no delay).
    pub fn set_latency(&self, latency: Option<Duration>) {
        self.lock().latency = latency;
    }

    /// Removes every injected fault, the failure rate, the failing and stalled items and
    /// the latency.
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.fault_rules.clear();
        state.random_faults = None;
        state.failing_items.clear();
        state.stalled_items.clear();
        state.latency = None;
    }

    // ---- counters ----------------------------------------------------------------

    /// Requests received so far, by endpoint.
    pub fn counts(&self) -> RequestCounts {
        self.lock().counts
    }

    /// How many times item `id` was requested.
    pub fn fetches_of(&self, id: &str) -> u64 {
        self.lock().fetches.get(id).copied().unwrap_or(0)
    }

    /// Request counts of every item requested at least once.
    pub fn fetch_counts(&self) -> HashMap<String, u64> {
        self.lock().fetches.clone()
    }

    /// The most requests for one same item that were ever in flight at once, over all
    /// items (1 when no item was ever fetched by two workers at the same time, 0 when
    /// no item was fetched).
    pub fn max_concurrent_fetches(&self) -> u32 {
        self.lock()
            .in_flight
            .values()
            .map(|f| f.max)
            .max()
            .unwrap_or(0)
    }

    /// The most requests for item `id` that were ever in flight at once.
    pub fn max_concurrent_fetches_of(&self, id: &str) -> u32 {
        self.lock().in_flight.get(id).map(|f| f.max).unwrap_or(0)
    }

    /// Every list call answered so far, in order (see [`ListCall`]).
    pub fn list_log(&self) -> Vec<ListCall> {
        self.lock().list_log.clone()
    }

    /// Zeroes every counter (request counts, the list log, per-item fetches, the
    /// concurrency maxima).
    pub fn reset_counters(&self) {
        let mut state = self.lock();
        state.counts = RequestCounts::default();
        state.list_log.clear();
        state.fetches.clear();
        state.in_flight.retain(|_, f| {
            f.max = f.current;
            f.current > 0
        });
    }

    // ---- request handling ------------------------------------------------------------

    /// Counts a request, starts its in-flight tracking and picks its fault, if any.
    fn begin(&self, endpoint: &Endpoint, path: &str) -> (Option<Duration>, Option<Fault>) {
        let mut state = self.lock();
        state.counts.total += 1;
        match endpoint {
            Endpoint::List => state.counts.list_calls += 1,
            Endpoint::Item(id) => {
                state.counts.item_fetches += 1;
                *state.fetches.entry(id.clone()).or_default() += 1;
                let flight = state.in_flight.entry(id.clone()).or_default();
                flight.current += 1;
                flight.max = flight.max.max(flight.current);
            }
            Endpoint::Changes => state.counts.change_calls += 1,
            Endpoint::Cursor => state.counts.cursor_calls += 1,
            Endpoint::Other => {}
        }
        let mut fault = None;
        if let Some(rule) = state.fault_rules.iter_mut().find(|rule| {
            rule.remaining > 0
                && rule
                    .path_prefix
                    .as_deref()
                    .is_none_or(|prefix| path.starts_with(prefix))
        }) {
            rule.remaining -= 1;
            fault = Some(rule.fault.clone());
        }
        state.fault_rules.retain(|rule| rule.remaining > 0);
        if fault.is_none()
            && let Some(random) = state.random_faults.as_mut()
            && random.rng.random_bool(random.rate)
        {
            fault = Some(random.fault.clone());
        }
        if fault.is_some() {
            state.counts.injected_faults += 1;
        }
        let stall = match endpoint {
            Endpoint::Item(id) => state.stalled_items.get(id).copied(),
            _ => None,
        };
        (stall.max(state.latency), fault)
    }

    fn finish_fetch(&self, id: &str) {
        let mut state = self.lock();
        if let Some(flight) = state.in_flight.get_mut(id) {
            flight.current = flight.current.saturating_sub(1);
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let mut state = self.lock();
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = matches!((given, state.token.as_deref()), (Some(g), Some(t)) if g == t);
        if !ok {
            state.counts.rejected_auth += 1;
        }
        ok
    }
}

/// Decrements the in-flight count of an item fetch when the request ends (also when
/// the client goes away mid-request).
struct FetchGuard {
    source: Source,
    id: String,
}

impl Drop for FetchGuard {
    fn drop(&mut self) {
        self.source.finish_fetch(&self.id);
    }
}

enum Endpoint {
    List,
    Item(String),
    Changes,
    Cursor,
    Other,
}

impl Endpoint {
    fn of(path: &str) -> Endpoint {
        match path {
            "/items" => Endpoint::List,
            "/changes" => Endpoint::Changes,
            "/cursor" => Endpoint::Cursor,
            _ => match path.strip_prefix("/items/") {
                Some(rest) if !rest.is_empty() && !rest.contains('/') => {
                    Endpoint::Item(percent_decode(rest).unwrap_or_else(|| rest.to_owned()))
                }
                _ => Endpoint::Other,
            },
        }
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A JSON error answer: `{"error": {"code": status, "message": message}}`.
fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "code": status.as_u16(), "message": message.into() } });
    (status, axum::Json(body)).into_response()
}

fn fault_response(fault: &Fault) -> Response {
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match status.as_u16() {
        401 => "the access token expired or was revoked".to_owned(),
        429 => "too many requests, slow down".to_owned(),
        _ => format!("injected failure ({})", status.as_u16()),
    };
    let mut response = error_response(status, message);
    if let Some(secs) = fault.retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    response
}

async fn truncate(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            let cut = bytes.slice(..bytes.len() / 2);
            let mut parts = parts;
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, axum::body::Body::from(cut))
        }
        Err(_) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "failed to read body"),
    }
}

/// Counting, latency, fault injection and authentication, in that order, around every
/// request.
async fn gate(AxumState(source): AxumState<Source>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let endpoint = Endpoint::of(&path);
    let _guard = match &endpoint {
        Endpoint::Item(id) => Some(FetchGuard {
            source: source.clone(),
            id: id.clone(),
        }),
        _ => None,
    };
    let (latency, fault) = source.begin(&endpoint, &path);
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    let truncated = match &fault {
        Some(fault) if fault.truncate => true,
        Some(fault) => return fault_response(fault),
        None => false,
    };
    if !source.authorized(request.headers()) {
        let mut response =
            error_response(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let response = next.run(request).await;
    if truncated {
        truncate(response).await
    } else {
        response
    }
}

/// One answered list call: where in the newest-first order its page started, so tests
/// can tell a walk of the newest pages from a backfill deep in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCall {
    /// How many current items are newer than the page's first item (0 for the first
    /// page).
    pub depth: usize,
    /// How many items the page returned.
    pub returned: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListEntry {
    id: String,
    version: u64,
}

async fn list_items(
    AxumState(source): AxumState<Source>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error_response(StatusCode::BAD_REQUEST, "malformed query string");
    };
    let page_size = match query.get("pageSize") {
        None => DEFAULT_PAGE_SIZE,
        Some(text) => match text.parse::<usize>() {
            Ok(0) | Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "pageSize must be a positive integer",
                );
            }
            Ok(n) => n.min(MAX_PAGE_SIZE),
        },
    };
    let before = match query.get("pageToken").map(String::as_str) {
        None | Some("") => None,
        Some(token) => match decode_page_token(token) {
            Some(seq) => Some(seq),
            None => return error_response(StatusCode::BAD_REQUEST, "invalid pageToken"),
        },
    };
    let mut state = source.lock();
    let upper = before.map_or(Bound::Unbounded, Bound::Excluded);
    let depth = before.map_or(0, |seq| state.items.range(seq..).count());
    let page: Vec<&Item> = state
        .items
        .range((Bound::Unbounded, upper))
        .rev()
        .take(page_size)
        .map(|(_, item)| item)
        .collect();
    let next = page.last().and_then(|last| {
        state
            .items
            .range(..last.seq)
            .next_back()
            .map(|_| encode_page_token(last.seq))
    });
    let items: Vec<ListEntry> = page
        .iter()
        .map(|item| ListEntry {
            id: item.id.clone(),
            version: item.version,
        })
        .collect();
    state.list_log.push(ListCall {
        depth,
        returned: items.len(),
    });
    drop(state);
    let mut body = Map::new();
    body.insert("items".into(), json!(items));
    if let Some(next) = next {
        body.insert("nextPageToken".into(), Value::String(next));
    }
    axum::Json(Value::Object(body)).into_response()
}

async fn get_item(
    AxumState(source): AxumState<Source>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return error_response(StatusCode::BAD_REQUEST, "malformed item id");
    };
    let mut state = source.lock();
    if state.failing_items.contains(&id) {
        state.counts.injected_faults += 1;
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("item {id} cannot be read (injected)"),
        );
    }
    match state.item(&id) {
        Some(item) => axum::Json(item).into_response(),
        None => error_response(StatusCode::NOT_FOUND, format!("item {id} not found")),
    }
}

async fn get_changes(
    AxumState(source): AxumState<Source>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error_response(StatusCode::BAD_REQUEST, "malformed query string");
    };
    let Some(cursor) = query.get("cursor") else {
        return error_response(StatusCode::BAD_REQUEST, "the cursor parameter is required");
    };
    let Some(position) = decode_cursor(cursor) else {
        return error_response(StatusCode::BAD_REQUEST, "invalid cursor");
    };
    let state = source.lock();
    if position > state.log_end() {
        return error_response(StatusCode::BAD_REQUEST, "unknown cursor");
    }
    if position < state.log_start {
        return error_response(
            StatusCode::GONE,
            "the cursor has expired; list all items and take a new cursor",
        );
    }
    let from = usize::try_from(position - state.log_start).unwrap_or(usize::MAX);
    let changes: Vec<Value> = state
        .log
        .iter()
        .skip(from)
        .take(state.max_changes)
        .map(|c| json!({ "kind": c.kind, "id": c.id }))
        .collect();
    let next = position + changes.len() as u64;
    axum::Json(json!({
        "changes": changes,
        "cursor": encode_cursor(next),
        "hasMore": next < state.log_end(),
    }))
    .into_response()
}

async fn get_cursor(AxumState(source): AxumState<Source>) -> Response {
    let cursor = source.cursor();
    axum::Json(json!({ "cursor": cursor })).into_response()
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "no such endpoint")
}

/// The router of the synthetic source, serving `source`.
pub fn router(source: Source) -> Router {
    Router::new()
        .route("/items", get(list_items))
        .route("/items/{id}", get(get_item))
        .route("/changes", get(get_changes))
        .route("/cursor", get(get_cursor))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(source.clone(), gate))
        .with_state(source)
}

/// Serves `source` on `listener` until `shutdown` completes, then finishes the
/// requests in flight and returns.
pub async fn serve(
    listener: TcpListener,
    source: Source,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::serving::serve(listener, router(source), shutdown).await
}

/// A running synthetic source on a loopback port. Dereferences to its [`Source`], so
/// the hooks are called on the server directly (`server.add_items(3)`).
///
/// Dropping it stops the server.
pub struct SourceServer {
    source: Source,
    server: LoopbackServer,
}

impl std::fmt::Debug for SourceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceServer")
            .field("addr", &self.server.addr())
            .field("source", &self.source)
            .finish()
    }
}

impl SourceServer {
    /// Generates the config's items and serves them on `127.0.0.1` at a free port.
    pub async fn start(config: SourceConfig) -> std::io::Result<SourceServer> {
        SourceServer::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Generates the config's items and serves them on `addr`.
    pub async fn start_on(addr: SocketAddr, config: SourceConfig) -> std::io::Result<SourceServer> {
        let listener = TcpListener::bind(addr).await?;
        let source = Source::new(&config);
        let server = LoopbackServer::serve(listener, router(source.clone()));
        Ok(SourceServer { source, server })
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// A handle on the state, to keep after the server is moved.
    pub fn source(&self) -> Source {
        self.source.clone()
    }

    /// The settings a synthetic-integration account needs: `{"baseUrl": ...}`.
    pub fn settings(&self) -> Map<String, Value> {
        let mut settings = Map::new();
        settings.insert("baseUrl".into(), Value::String(self.base_url()));
        settings
    }

    /// Credentials carrying the currently accepted token: `{"token": ...}` (empty
    /// when the token is revoked).
    pub fn credentials(&self) -> Credentials {
        let mut credentials = Credentials::default();
        credentials.set("token", self.source.token().unwrap_or_default());
        credentials
    }

    /// Stops accepting connections, finishes the requests in flight and waits for the
    /// server task.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.server.stop().await
    }
}

impl Deref for SourceServer {
    type Target = Source;

    fn deref(&self) -> &Source {
        &self.source
    }
}

/// The synthetic source as the `synthetic` integration's fake, for the registry
/// (`tributary fake synthetic` in tests, with the test doubles registered).
pub fn fake() -> SyntheticFake {
    SyntheticFake
}

/// The [`tributary_sdk::Fake`] of the synthetic source: items generated from the seed,
/// a token derived from it, the latency and deliveries asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyntheticFake;

#[tributary_sdk::async_trait]
impl tributary_sdk::Fake for SyntheticFake {
    async fn start(&self, options: FakeOptions) -> std::io::Result<Box<dyn RunningFake>> {
        let config = SourceConfig::new(
            options.items,
            options.seed,
            format!("token-{}", options.seed),
        );
        let server = SourceServer::start_on(options.listen, config).await?;
        if !options.latency.is_zero() {
            server.set_latency(Some(options.latency));
        }
        let source = server.source();
        let deliveries = options
            .deliver_every
            .and_then(|every| Deliveries::every(every, move || drop(source.add_items(1))));
        Ok(Box::new(RunningSynthetic {
            server,
            _deliveries: deliveries,
        }))
    }
}

/// A running [`SyntheticFake`].
struct RunningSynthetic {
    server: SourceServer,
    _deliveries: Option<Deliveries>,
}

#[tributary_sdk::async_trait]
impl RunningFake for RunningSynthetic {
    fn describe(&self) -> String {
        format!("synthetic source serving {} items", self.server.len())
    }

    fn item_name(&self) -> &'static str {
        "item"
    }

    fn link(&self) -> FakeLink {
        FakeLink {
            base_url: self.server.base_url(),
            endpoints: Vec::new(),
            settings: self.server.settings(),
            credentials: self.server.credentials(),
        }
    }

    fn truth(&self) -> FakeTruth {
        FakeTruth {
            synced: self.server.ids().into_iter().collect(),
            left_out: 0,
        }
    }

    fn add_item(&self) -> Option<String> {
        self.server.add_items(1).pop()
    }

    fn request_counts(&self) -> BTreeMap<String, u64> {
        let counts = self.server.counts();
        [
            ("list", counts.list_calls),
            ("item", counts.item_fetches),
            ("changes", counts.change_calls),
            ("cursor", counts.cursor_calls),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| (name.to_owned(), n))
        .collect()
    }

    async fn stop(self: Box<Self>) -> std::io::Result<()> {
        self.server.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_page_token(&encode_page_token(1234)), Some(1234));
        assert_eq!(decode_cursor(&encode_cursor(0)), Some(0));
        assert_eq!(decode_page_token("garbage"), None);
        assert_eq!(decode_page_token("pt1.zz"), None);
        assert_eq!(decode_cursor("pt1.10"), None);
    }

    #[test]
    fn generation_is_deterministic() {
        let a = Source::new(&SourceConfig::new(20, 7, "t"));
        let b = Source::new(&SourceConfig::new(20, 7, "t"));
        let c = Source::new(&SourceConfig::new(20, 8, "t"));
        assert_eq!(a.item("item-0000005"), b.item("item-0000005"));
        assert_ne!(a.item("item-0000005"), c.item("item-0000005"));
        assert_eq!(a.ids().first().map(String::as_str), Some("item-0000020"));
        let first = a.item("item-0000001").map(|i| i.created_at);
        let last = a.item("item-0000020").map(|i| i.created_at);
        assert!(first < last);
    }

    #[test]
    fn generated_ids_avoid_custom_ones() {
        let s = Source::new(&SourceConfig::new(0, 1, "t"));
        assert!(s.add_item_with_id("item-0000002"));
        assert!(!s.add_item_with_id("item-0000002"));
        let ids = s.add_items(1);
        assert_eq!(ids, vec!["item-0000002-1".to_owned()]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("a%2").as_deref(), None);
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
    }

    #[test]
    fn debug_hides_the_token() {
        let config = SourceConfig::new(1, 1, "very-secret-token");
        assert!(!format!("{config:?}").contains("very-secret-token"));
    }
}
