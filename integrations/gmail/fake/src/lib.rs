//! A stateful fake of the Gmail API v1, on loopback HTTP, speaking Gmail's wire format.
//!
//! The fake follows Google's published discovery document
//! (`spec/google/gmail-v1-discovery.json`): the same paths under the server root
//! (`gmail/v1/users/{userId}/...`, `upload/gmail/v1/...`), the same parameters, the
//! same JSON field names and types (64-bit numbers as strings, bytes as padded
//! base64url), Google's error body, and Google's OAuth 2.0 token endpoint. A client
//! configured with a base URL and the discovery paths works against both this fake and
//! `https://gmail.googleapis.com/`. A test in this module checks every response shape
//! against the discovery schemas.
//!
//! # What it serves
//!
//! | method | path |
//! |---|---|
//! | `users.getProfile` | `GET gmail/v1/users/{userId}/profile` |
//! | `users.labels.list` | `GET gmail/v1/users/{userId}/labels` |
//! | `users.messages.list` | `GET gmail/v1/users/{userId}/messages` |
//! | `users.messages.get` | `GET gmail/v1/users/{userId}/messages/{id}` |
//! | `users.messages.insert` | `POST gmail/v1/users/{userId}/messages` (JSON `raw`) or `POST upload/gmail/v1/users/{userId}/messages?uploadType=media\|multipart` |
//! | `users.messages.import` | the same with `/import` |
//! | `users.messages.delete` | `DELETE gmail/v1/users/{userId}/messages/{id}` |
//! | `users.messages.trash`, `untrash`, `modify` | `POST gmail/v1/users/{userId}/messages/{id}/{trash,untrash,modify}` |
//! | `users.messages.attachments.get` | `GET gmail/v1/users/{userId}/messages/{messageId}/attachments/{id}` |
//! | `users.history.list` | `GET gmail/v1/users/{userId}/history` |
//! | OAuth 2.0 | `GET /authorize` (and `/o/oauth2/v2/auth`), `POST /token`, `POST /revoke` |
//!
//! `userId` is `me` or the mailbox address. The API takes the access token as
//! `Authorization: Bearer` (or the `access_token` parameter).
//!
//! # Behaviour worth knowing
//!
//! - `messages.list` is newest first by `internalDate`; `maxResults` defaults to 100
//!   and is capped at 500; `labelIds` must all match; `SPAM` and `TRASH` are left out
//!   unless `includeSpamTrash=true` or asked for by `labelIds`. Page tokens are keyset
//!   positions, so paging is exact while messages are added or deleted elsewhere.
//!   `resultSizeEstimate` is an estimate (from per-label counts), as Gmail's is.
//!   **The `q` search parameter is ignored**, as is the standard `fields` parameter
//!   (responses are always whole).
//! - `messages.get` supports `format=full|raw|metadata|minimal` and `metadataHeaders`.
//!   The `payload` is the real MIME tree: part ids `""`, `"0"`, `"0.1"`, ...; header
//!   values raw as in the source (encoded words not decoded), unfolded; `body.data`
//!   the part's bytes after undoing the transfer encoding, in the part's own charset,
//!   as padded base64url; parts with a file name carry an `attachmentId` instead; a
//!   `message/rfc822` part has the embedded message's root part as its only child.
//! - Every change writes one history record and moves the `historyId` forward by a
//!   small random step. `history.list` answers 404 (Google's body, reason `notFound`)
//!   for a `startHistoryId` older than the retained history: the last
//!   [`GmailConfig::history_retention`] records, or what
//!   [`GmailHandle::expire_history_before`] left.
//! - `messages.trash` adds `TRASH` (dropping `SPAM`); the other labels stay.
//! - `insert` and `import` take `deleted`, `neverMarkSpam` and `processForCalendar` and
//!   ignore them; `internalDateSource` is honoured (`receivedTime` by default for
//!   insert, `dateHeader` for import). Threading follows `threadId` when given and
//!   known, else `In-Reply-To`/`References`; subjects are not compared.
//! - Faults ([`FaultConfig`], [`GmailHandle::fail_next`]) apply to API requests only,
//!   not to the OAuth endpoints.
//! - With a quota ([`GmailConfig::quota`], [`UserQuota::GOOGLE`] for Google's 15,000
//!   units per minute), each authenticated request costs its method's units
//!   ([`GmailMethod::quota_units`]) in a sliding window; one that would overflow it is
//!   answered 403 `userRateLimitExceeded`, as Gmail does, and counted
//!   ([`Counters::quota_exceeded`]; [`Counters::quota_units`] counts what was spent).
//!
//! # Through the registry
//!
//! [`fake()`] is the fake as the integration's [`tributary_sdk::Fake`] (the
//! `tributary` binary attaches it with `Registration::with_fake`), which
//! `tributary fake gmail` and `tributary demo` start: see [`standalone`].
//!
//! # Use in tests
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use tributary_gmail_fake::{FakeGmail, GmailConfig, GmailMethod};
//!
//! let fake = FakeGmail::start(GmailConfig { messages: 500, ..GmailConfig::default() }).await?;
//! let base_url = fake.base_url(); // http://127.0.0.1:PORT/
//! let token_url = fake.token_url();
//! let credentials = fake.credentials();
//! // ... run a sync against base_url with credentials ...
//! fake.insert_raw(b"Subject: hi\r\n\r\nhello\r\n", &["INBOX", "UNREAD"]).ok();
//! assert!(fake.calls(GmailMethod::MessagesList) <= 4);
//! let truth = fake.snapshot();
//! # let _ = (base_url, token_url, credentials, truth);
//! # Ok(())
//! # }
//! ```

mod charset;
use tributary_google_fake::error;
mod faults;
pub mod generator;
mod mailbox;
mod mime;
use tributary_google_fake::oauth;
mod quota;
mod server;
pub mod standalone;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tributary_testkit::serving::LoopbackServer;

pub use faults::{Counters, Fault, FaultConfig, GmailMethod};
pub use mailbox::MessageTruth;
pub use quota::UserQuota;
pub use standalone::{GmailFake, fake};
pub use tributary_google_fake::oauth::TestCredentials;

use generator::Generator;
use mailbox::{Mailbox, NewMessage, Source, format_id, parse_id};
use oauth::TokenStore;

/// What a fake mailbox starts with.
#[derive(Clone)]
pub struct GmailConfig {
    /// The mailbox address (`users.getProfile`'s `emailAddress`; also a valid
    /// `userId`).
    pub email: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: String,
    /// A refresh token the token endpoint accepts from the start.
    pub refresh_token: String,
    /// The scope the token endpoint reports.
    pub scope: String,
    /// How long an access token lives (Google: about an hour).
    pub access_token_lifetime: Duration,
    /// How many generated messages the mailbox starts with.
    pub messages: usize,
    /// The seed of the generator, the history id steps and the fault RNG.
    pub seed: u64,
    /// The newest generated message's `internalDate` (epoch ms); now when `None`.
    pub newest_message_ms: Option<i64>,
    /// How far back the generated messages reach.
    pub generated_span: Duration,
    /// How many history records are kept; older start ids answer 404.
    pub history_retention: usize,
    /// Injected faults from the start.
    pub faults: FaultConfig,
    /// The per-user quota enforced ([`UserQuota::GOOGLE`] is Google's); none when
    /// `None` (the default).
    pub quota: Option<UserQuota>,
    /// The largest request body accepted (uploads).
    pub max_upload_bytes: usize,
}

impl Default for GmailConfig {
    fn default() -> GmailConfig {
        GmailConfig {
            email: "tester@example.com".to_owned(),
            client_id: "fake-client-id.apps.googleusercontent.com".to_owned(),
            client_secret: "fake-client-secret".to_owned(),
            refresh_token: "1//fake-refresh-token".to_owned(),
            scope: "https://www.googleapis.com/auth/gmail.readonly".to_owned(),
            access_token_lifetime: Duration::from_secs(3599),
            messages: 0,
            seed: 42,
            newest_message_ms: None,
            generated_span: Duration::from_secs(2 * 365 * 24 * 3600),
            history_retention: 100_000,
            faults: FaultConfig::default(),
            quota: None,
            max_upload_bytes: 50 * 1024 * 1024,
        }
    }
}

impl std::fmt::Debug for GmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GmailConfig")
            .field("email", &self.email)
            .field("client_id", &self.client_id)
            .field("messages", &self.messages)
            .field("seed", &self.seed)
            .field("history_retention", &self.history_retention)
            .field("faults", &self.faults)
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

/// Why a hook refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GmailFakeError {
    /// No message has this id.
    #[error("no message with id {0}")]
    NotFound(String),
    /// No label has this id.
    #[error("unknown label id {0}")]
    UnknownLabel(String),
    /// The bytes are not an RFC 822 message.
    #[error("not an rfc 822 message: {0}")]
    InvalidMessage(String),
    /// The fake holds at most 128 labels.
    #[error("the fake holds at most 128 labels")]
    TooManyLabels,
    /// The id is not a Gmail message id.
    #[error("invalid message id {0}")]
    InvalidId(String),
}

/// The state behind a fake.
struct Shared {
    email: String,
    seed: u64,
    max_upload_bytes: usize,
    credentials: TestCredentials,
    mailbox: Mutex<Mailbox>,
    tokens: Mutex<TokenStore>,
    faults: Mutex<faults::Faults>,
    quota: Mutex<quota::QuotaWindow>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind; carry on.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn mailbox(&self) -> MutexGuard<'_, Mailbox> {
        lock(&self.mailbox)
    }

    fn tokens(&self) -> MutexGuard<'_, TokenStore> {
        lock(&self.tokens)
    }

    fn faults(&self) -> MutexGuard<'_, faults::Faults> {
        lock(&self.faults)
    }

    fn quota(&self) -> MutexGuard<'_, quota::QuotaWindow> {
        lock(&self.quota)
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl tributary_google_fake::endpoints::OAuthHost for GmailHandle {
    fn with_tokens<R>(&self, f: impl FnOnce(&mut TokenStore) -> R) -> R {
        f(&mut self.shared.tokens())
    }

    fn token_issued(&self) {
        self.shared.faults().counters.tokens_issued += 1;
    }
}

/// A fake mailbox with its authorization server: the state and the hooks. Cheap to
/// clone; every clone is the same mailbox. Serve it with [`serve`] or run it with
/// [`FakeGmail::start`].
#[derive(Clone)]
pub struct GmailHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GmailHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GmailHandle")
            .field("email", &self.shared.email)
            .finish_non_exhaustive()
    }
}

impl GmailHandle {
    /// Builds the mailbox (generating `config.messages` messages, outside the history)
    /// and the authorization server.
    pub fn new(config: GmailConfig) -> GmailHandle {
        let mut mailbox = Mailbox::new(&config.email, config.seed, config.history_retention);
        if config.messages > 0 {
            let newest = config.newest_message_ms.unwrap_or_else(now_ms);
            let span = i64::try_from(config.generated_span.as_millis()).unwrap_or(i64::MAX);
            let generator = Generator::spread(
                config.seed,
                &config.email,
                config.messages as u64,
                newest,
                span,
            );
            mailbox.insert_generated(generator, config.messages as u64, false);
        }
        let tokens = TokenStore::new(
            &config.client_id,
            &config.client_secret,
            &config.refresh_token,
            &config.scope,
            config.access_token_lifetime,
            config.seed,
        );
        GmailHandle {
            shared: Arc::new(Shared {
                email: config.email.clone(),
                seed: config.seed,
                max_upload_bytes: config.max_upload_bytes,
                credentials: TestCredentials {
                    client_id: config.client_id.clone(),
                    client_secret: config.client_secret.clone(),
                    refresh_token: config.refresh_token.clone(),
                },
                mailbox: Mutex::new(mailbox),
                tokens: Mutex::new(tokens),
                faults: Mutex::new(faults::Faults::new(config.faults.clone(), config.seed)),
                quota: Mutex::new(quota::QuotaWindow::new(config.quota)),
            }),
        }
    }

    /// The axum router serving this mailbox.
    pub fn router(&self) -> axum::Router {
        server::router(self.clone())
    }

    /// The mailbox address.
    pub fn email(&self) -> &str {
        &self.shared.email
    }

    /// The client id, client secret and refresh token the fake accepts.
    pub fn credentials(&self) -> TestCredentials {
        self.shared.credentials.clone()
    }

    /// Parses and stores a source. `use_date_header` takes `internalDate` from the
    /// `Date` header (falling back to now); `at` overrides both.
    fn store_raw(
        &self,
        raw: Vec<u8>,
        label_ids: &[&str],
        thread: Option<u64>,
        use_date_header: bool,
        at: Option<i64>,
    ) -> Result<Value, GmailFakeError> {
        let summary = mime::summarize(&raw)
            .ok_or_else(|| GmailFakeError::InvalidMessage("no header found".to_owned()))?;
        let internal_date = at.unwrap_or_else(|| {
            if use_date_header {
                summary.date_ms.unwrap_or_else(now_ms)
            } else {
                now_ms()
            }
        });
        let mut mailbox = self.shared.mailbox();
        let labels = mailbox.label_set(label_ids)?;
        let id = mailbox.insert(
            NewMessage {
                source: Source::Raw(raw.into()),
                internal_date,
                labels,
                subject: summary.subject,
                snippet: summary.snippet,
                message_id: summary.message_id,
                parent_ids: summary.parent_ids,
                thread,
            },
            true,
        );
        let thread = mailbox.get(id).map_or(id, |m| m.thread);
        Ok(mailbox.reference_json(id, thread, labels))
    }

    /// Delivers a message now (as `messages.insert` would) and returns its id.
    pub fn insert_raw(&self, raw: &[u8], label_ids: &[&str]) -> Result<String, GmailFakeError> {
        self.insert_raw_at(raw, label_ids, now_ms())
    }

    /// Delivers a message with the given `internalDate` and returns its id.
    pub fn insert_raw_at(
        &self,
        raw: &[u8],
        label_ids: &[&str],
        internal_date_ms: i64,
    ) -> Result<String, GmailFakeError> {
        let value = self.store_raw(raw.to_vec(), label_ids, None, false, Some(internal_date_ms))?;
        Ok(value["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Delivers `count` new generated messages, newer than everything in the mailbox,
    /// each with a `messagesAdded` history record. Returns their ids, oldest first.
    pub fn generate(&self, count: usize) -> Vec<String> {
        let mut mailbox = self.shared.mailbox();
        let count_ms = i64::try_from(count)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        let first = (now_ms() - count_ms).max(mailbox.newest_date().map_or(i64::MIN, |d| d + 1000));
        let batch_seed = self.shared.seed ^ (mailbox.history_id().rotate_left(17));
        let generator = Generator::new(batch_seed, &self.shared.email, first, 1000);
        mailbox
            .insert_generated(generator, count as u64, true)
            .into_iter()
            .map(format_id)
            .collect()
    }

    fn id(id: &str) -> Result<u64, GmailFakeError> {
        parse_id(id).ok_or_else(|| GmailFakeError::InvalidId(id.to_owned()))
    }

    /// Deletes a message for good (`messagesDeleted` in history).
    pub fn delete(&self, id: &str) -> Result<(), GmailFakeError> {
        self.shared.mailbox().delete(Self::id(id)?)
    }

    /// Moves a message to the trash.
    pub fn trash(&self, id: &str) -> Result<(), GmailFakeError> {
        self.shared.mailbox().trash(Self::id(id)?).map(drop)
    }

    /// Takes a message out of the trash.
    pub fn untrash(&self, id: &str) -> Result<(), GmailFakeError> {
        self.shared.mailbox().untrash(Self::id(id)?).map(drop)
    }

    /// Adds and removes labels on a message.
    pub fn modify_labels(
        &self,
        id: &str,
        add: &[&str],
        remove: &[&str],
    ) -> Result<(), GmailFakeError> {
        let id = Self::id(id)?;
        let mut mailbox = self.shared.mailbox();
        let add = mailbox.label_set(add)?;
        let remove = mailbox.label_set(remove)?;
        mailbox.modify(id, add, remove).map(drop)
    }

    /// Creates a user label (or finds the one with this name) and returns its id.
    pub fn create_label(&self, name: &str) -> Result<String, GmailFakeError> {
        self.shared.mailbox().create_label(name)
    }

    /// Every message: id → thread, labels, subject, date. The truth a synced database
    /// must converge to.
    pub fn snapshot(&self) -> BTreeMap<String, MessageTruth> {
        self.shared.mailbox().snapshot()
    }

    /// Message ids, newest first (the order of `messages.list` with no filter and
    /// `includeSpamTrash=true`).
    pub fn ids_newest_first(&self) -> Vec<String> {
        self.shared.mailbox().ids_newest_first()
    }

    /// The RFC 822 source of a message.
    pub fn raw(&self, id: &str) -> Option<Vec<u8>> {
        let id = parse_id(id)?;
        let source = {
            let mailbox = self.shared.mailbox();
            let message = mailbox.get(id)?;
            mailbox.source(message)
        };
        Some(source.bytes().to_vec())
    }

    /// The mailbox's current `historyId`.
    pub fn history_id(&self) -> u64 {
        self.shared.mailbox().history_id()
    }

    /// Expires history before `history_id`: `history.list` with an older
    /// `startHistoryId` answers 404.
    pub fn expire_history_before(&self, history_id: u64) {
        self.shared.mailbox().expire_history_before(history_id);
    }

    /// Keeps only the last `records` history records.
    pub fn set_history_retention(&self, records: usize) {
        self.shared.mailbox().set_retention(records);
    }

    /// A valid access token, without going through the token endpoint.
    pub fn issue_access_token(&self) -> String {
        self.shared.tokens().issue_access_token(None).access_token
    }

    /// A new refresh token the token endpoint accepts.
    pub fn issue_refresh_token(&self) -> String {
        self.shared.tokens().issue_refresh_token()
    }

    /// Revokes a refresh token and the access tokens issued from it; the token
    /// endpoint then answers `invalid_grant`. Returns whether the token was live.
    pub fn revoke_refresh_token(&self, token: &str) -> bool {
        self.shared.tokens().revoke_refresh_token(token)
    }

    /// Expires every access token issued so far.
    pub fn expire_access_tokens(&self) {
        self.shared.tokens().expire_access_tokens();
    }

    /// Sets the lifetime of access tokens issued from now on.
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        self.shared.tokens().set_lifetime(lifetime);
    }

    /// Lets the next `calls` API requests through, then expires every access token:
    /// a token that runs out in the middle of a sync.
    pub fn expire_tokens_after_calls(&self, calls: u64) {
        self.shared.faults().expire_tokens_after(calls);
    }

    /// Makes `/authorize` redirect with `error=access_denied`, as when the user
    /// declines consent (or, with `false`, consent again).
    pub fn set_deny_consent(&self, deny: bool) {
        self.shared.tokens().set_deny_consent(deny);
    }

    /// Replaces the fault rates and latency.
    pub fn set_faults(&self, config: FaultConfig) {
        self.shared.faults().set_config(config);
    }

    /// Enforces `quota` from now on (`None`: no quota), with an empty window.
    pub fn set_quota(&self, quota: Option<UserQuota>) {
        self.shared.quota().set(quota);
    }

    /// Reseeds the fault RNG, to replay a sequence of faults.
    pub fn reseed_faults(&self, seed: u64) {
        self.shared.faults().reseed(seed);
    }

    /// Answers the next `count` API requests with `fault`, before any drawn fault.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        self.shared.faults().fail_next(count, fault);
    }

    /// A copy of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.faults().counters.clone()
    }

    /// Requests to one method so far.
    pub fn calls(&self, method: GmailMethod) -> u64 {
        self.shared.faults().counters.calls(method)
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        self.shared.faults().counters = Counters::default();
    }
}

/// Serves `handle` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    handle: GmailHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tributary_testkit::serving::serve(listener, handle.router(), shutdown).await
}

/// A fake Gmail running on a loopback port. Dereferences to its [`GmailHandle`] for
/// the hooks; stops when dropped (or with [`FakeGmail::stop`]).
#[derive(Debug)]
pub struct FakeGmail {
    handle: GmailHandle,
    server: LoopbackServer,
}

impl FakeGmail {
    /// Builds the mailbox and serves it on `127.0.0.1` at a free port.
    pub async fn start(config: GmailConfig) -> std::io::Result<FakeGmail> {
        FakeGmail::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Builds the mailbox and serves it on `addr` (the standalone mode's `--listen`).
    pub async fn start_on(addr: SocketAddr, config: GmailConfig) -> std::io::Result<FakeGmail> {
        let listener = TcpListener::bind(addr).await?;
        // Generating a large mailbox takes CPU time: keep it off the async workers.
        let handle = tokio::task::spawn_blocking(move || GmailHandle::new(config))
            .await
            .map_err(std::io::Error::other)?;
        let server = LoopbackServer::serve(listener, handle.router());
        Ok(FakeGmail { handle, server })
    }

    /// The state and hooks.
    pub fn handle(&self) -> &GmailHandle {
        &self.handle
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The server root, with a trailing slash: `http://127.0.0.1:PORT/`. API paths
    /// (`gmail/v1/users/me/...`) are relative to it, as to
    /// `https://gmail.googleapis.com/`.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr())
    }

    /// The token endpoint (Google's `https://oauth2.googleapis.com/token`).
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr())
    }

    /// The authorization endpoint (Google's
    /// `https://accounts.google.com/o/oauth2/v2/auth`).
    pub fn authorize_url(&self) -> String {
        format!("http://{}/authorize", self.addr())
    }

    /// The revocation endpoint (Google's `https://oauth2.googleapis.com/revoke`).
    pub fn revoke_url(&self) -> String {
        format!("http://{}/revoke", self.addr())
    }

    /// What the standalone mode prints: the test credentials in the shape of the
    /// Gmail integration's credential fields, and its settings.
    ///
    /// ```json
    /// {"credentials": {"clientId": "...", "clientSecret": "...", "refreshToken": "..."},
    ///  "settings": {"baseUrl": "http://127.0.0.1:PORT/", "tokenUrl": "http://127.0.0.1:PORT/token"}}
    /// ```
    pub fn standalone_info(&self) -> Value {
        let credentials = self.handle.credentials();
        json!({
            "credentials": {
                "clientId": credentials.client_id,
                "clientSecret": credentials.client_secret,
                "refreshToken": credentials.refresh_token,
            },
            "settings": {
                "baseUrl": self.base_url(),
                "tokenUrl": self.token_url(),
            },
        })
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(self) -> std::io::Result<()> {
        self.server.stop().await
    }
}

impl std::ops::Deref for FakeGmail {
    type Target = GmailHandle;

    fn deref(&self) -> &GmailHandle {
        &self.handle
    }
}
