//! What the fakes of Microsoft Graph v1.0 share, written once: the Microsoft identity
//! platform's authorize and token endpoints ([`identity`]), Graph's error envelope
//! ([`error`]), Outlook's per-mailbox throttling ([`throttle`]), fault injection
//! ([`faults`]), the `Prefer` header ([`prefer`]), OData query options and pages
//! ([`odata`]), and the request pipeline that puts them in front of an API's routes
//! ([`pipeline`]). The Outlook mail fake (`integrations/outlook/fake`) and the OneDrive
//! fake each bring only their own routes.
//!
//! # Mounting an API
//!
//! A [`GraphHandle`] is the shared state: users, grants and tokens, throttle windows,
//! queued faults, counters and a [`ResponseGate`]. An integration fake describes its
//! routes as [`GraphRoutes`]: each one an *operation name* (what the counters call
//! it, e.g. `message.delta`), an axum path under `/v1.0` and a `MethodRouter` whose
//! state is already applied. [`GraphHandle::router`] turns them into one axum
//! [`Router`]:
//!
//! ```text
//! /{tenant}/oauth2/v2.0/authorize   GET   identity platform (no pipeline)
//! /{tenant}/oauth2/v2.0/token       POST  identity platform (no pipeline)
//! /v1.0/me                          GET   the token's user (operation `me.get`)
//! /v1.0/...                         the mounted routes, each behind the pipeline:
//!                                   ids → count → auth → throttle → latency → faults
//!                                   → gate → route
//! anything else                     400 BadRequest (under /v1.0) or 404, Graph's envelope
//! ```
//!
//! A handler reads the caller with `Extension<Caller>` ([`Caller`]: user, scopes,
//! `Prefer`, the Graph root for links) and answers `Result<Response, GraphError>`; the
//! pipeline writes the request's ids into error bodies. Mail and drive routes are
//! served by ONE server behind one token endpoint and one per-mailbox throttle by
//! merging their route sets before building the router:
//!
//! ```no_run
//! use axum::routing::get;
//! use tributary_msgraph_fake::{GraphConfig, GraphHandle, GraphRoutes};
//!
//! # async fn mail() -> &'static str { "{}" }
//! # async fn drive() -> &'static str { "{}" }
//! let graph = GraphHandle::new(GraphConfig::default());
//! let mail_routes = GraphRoutes::new().route("mailFolder.list", "/v1.0/me/mailFolders", get(mail));
//! let drive_routes = GraphRoutes::new().route("drive.get", "/v1.0/me/drive", get(drive));
//! let router: axum::Router = graph.router(mail_routes.merge(drive_routes));
//! ```
//!
//! (An integration fake exposes its routes as a function of its own handle, e.g.
//! `OutlookHandle::graph_routes()`, and builds its handle over a [`GraphHandle`] it
//! is given, so two fakes can share one.) Two routes must not have the same path.
//!
//! # Clocks
//!
//! Access tokens live on the *token clock* (Tokio's clock since the start, plus
//! [`GraphHandle::advance`]); throttle windows on the *throttle clock* (the same
//! elapsed time × [`ThrottleConfig::time_scale`], plus [`GraphHandle::advance`]).
//! Both follow `tokio::time::pause`/`advance` in tests that use them.
//!
//! # Users
//!
//! The fake starts with one user (the config's name and address); more can be added
//! ([`GraphHandle::add_user`]), each with its own throttle budget. The authorize
//! endpoint signs in the first user unless told otherwise
//! ([`GraphHandle::set_signed_in_user`]).
//!
//! # Serving and linking
//!
//! [`GraphUrls`] makes the URLs of a server from its address (the Graph root, the
//! token and authorize endpoints, the `baseUrl`/`tokenUrl` settings), and
//! [`standalone`] what the standalone Graph fakes share (their link, their request
//! counts). Handlers take their state, caller and query with
//! [`pipeline::GraphRequest`], their path parameters with [`pipeline::GraphPath`].
//!
//! # Testing
//!
//! The `testing` feature adds the module `tributary_msgraph_fake::testing`: what the
//! Graph fakes' tests share (answers read whole, a bearer client that walks delta
//! rounds, token refreshes, requests held at the gate, checks of a standalone link).
//! Take it as a dev-dependency:
//! `tributary-msgraph-fake = { workspace = true, features = ["testing"] }`.

pub mod error;
pub mod faults;
pub mod identity;
pub mod odata;
pub mod pipeline;
pub mod prefer;
pub mod standalone;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod throttle;
pub mod urls;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::RawQuery;
use axum::http::{StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};
pub use tributary_testkit::serving::ResponseGate;

pub use error::GraphError;
pub use faults::Fault;
pub use identity::{Grant, IdentityError, RefreshRotation};
pub use pipeline::Caller;
pub use prefer::{Applied, BodyType, Prefer};
pub use throttle::{MailboxCounters, ThrottleConfig};
pub use urls::GraphUrls;

use identity::{ClientApp, Identity, TokenCheck};
use throttle::{Refusal, Throttle};

/// A fresh GUID (random, version 4 layout), for request ids and trace ids.
pub fn new_guid() -> String {
    let v: u128 = rand::random();
    let v = (v & !(0xf000_u128 << 64)) | (0x4000_u128 << 64);
    format_guid(&format!("{v:032x}"))
}

/// 32 hex digits (`{:032x}` or `{:032X}` of a `u128`) in a GUID's 8-4-4-4-12 groups.
///
/// # Panics
/// When `hex` is shorter than 32 bytes or splits a character.
pub fn format_guid(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn seeded_guid(rng: &mut StdRng) -> String {
    format_guid(&format!("{:032x}", rng.random::<u128>()))
}

/// One user (mailbox) of the fake tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GraphUser {
    /// The user's object id (a GUID).
    pub id: String,
    /// The display name.
    pub display_name: String,
    /// The address: `mail` and `userPrincipalName`.
    pub address: String,
}

/// What a fake Graph tenant starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphConfig {
    /// The tenant id (a GUID), accepted in `/{tenant}/oauth2/v2.0/...` besides
    /// `common`, `organizations` and `consumers`.
    pub tenant_id: String,
    /// The app registration's client id.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// What `https://graph.microsoft.com/.default` grants.
    pub default_scopes: Vec<String>,
    /// The first user's display name.
    pub user_name: String,
    /// The first user's address.
    pub user_address: String,
    /// How long an access token lives (`expires_in`; Microsoft: about an hour).
    pub access_token_lifetime: Duration,
    /// What becomes of a used refresh token. Default [`RefreshRotation::RevokeOnUse`]
    /// (it dies, so tests prove the rotated one was saved); Microsoft's own behaviour
    /// is [`RefreshRotation::KeepOld`].
    pub refresh_rotation: RefreshRotation,
    /// Per-mailbox limits.
    pub throttle: ThrottleConfig,
    /// Added to every API request once admitted.
    pub latency: Duration,
    /// The seed of ids and tokens.
    pub seed: u64,
}

impl Default for GraphConfig {
    fn default() -> GraphConfig {
        GraphConfig {
            tenant_id: "4f6b7e21-3c1d-4a8e-9b2f-5d0c6a7e8f91".to_owned(),
            client_id: "8c2b3f4a-1d5e-4c6f-9a7b-0e1f2a3b4c5d".to_owned(),
            client_secret: "fake~graph~client~secret".to_owned(),
            default_scopes: ["User.Read", "Mail.Read", "Files.Read"]
                .map(str::to_owned)
                .to_vec(),
            user_name: "Test User".to_owned(),
            user_address: "tester@example.com".to_owned(),
            access_token_lifetime: Duration::from_secs(3599),
            refresh_rotation: RefreshRotation::RevokeOnUse,
            throttle: ThrottleConfig::default(),
            latency: Duration::ZERO,
            seed: 42,
        }
    }
}

/// What the fake counted (per mailbox: [`GraphHandle::mailbox_counters`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphCounters {
    /// API requests per operation name, whatever their answer.
    pub calls: BTreeMap<String, u64>,
    /// 401s for a missing, unknown, expired or revoked access token.
    pub unauthorized: u64,
    /// 429s from the throttle (rate and concurrency, every mailbox).
    pub throttled: u64,
    /// Requests answered with an injected fault.
    pub faults: u64,
    /// Successful `authorization_code` redemptions.
    pub code_grants: u64,
    /// Successful `refresh_token` grants.
    pub refreshes: u64,
    /// Token-endpoint errors.
    pub token_errors: u64,
}

impl GraphCounters {
    /// Requests to `operation`.
    pub fn calls(&self, operation: &str) -> u64 {
        self.calls.get(operation).copied().unwrap_or(0)
    }

    /// Requests to every operation.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }
}

struct GraphState {
    identity: Identity,
    throttle: Throttle,
    faults: faults::Faults,
    counters: GraphCounters,
    users: Vec<GraphUser>,
    advanced: Duration,
    latency: Duration,
    rng: StdRng,
    expiry: RequestExpiry,
}

/// Access tokens that die after a number of API requests rather than a time (so that
/// a test's refreshes do not depend on the machine's speed).
#[derive(Debug, Default)]
struct RequestExpiry {
    /// Requests left before every token expires once.
    after: Option<u64>,
    /// Every token expires at each this-many-th request.
    every: Option<u64>,
    /// Requests since `every` was set.
    seen: u64,
}

struct Shared {
    config: GraphConfig,
    started: tokio::time::Instant,
    gate: ResponseGate,
    state: Mutex<GraphState>,
}

/// A fake Graph tenant: its identity platform, throttle, faults and counters. Cheap to
/// clone; every clone is the same tenant.
#[derive(Clone)]
pub struct GraphHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GraphHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphHandle")
            .field("tenant_id", &self.shared.config.tenant_id)
            .finish_non_exhaustive()
    }
}

/// An admitted request's place in its mailbox's concurrency count; gives it back when
/// dropped.
pub(crate) struct InFlight {
    graph: GraphHandle,
    mailbox: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.graph.state().throttle.release(&self.mailbox);
    }
}

/// The routes of one Graph API, to mount with [`GraphHandle::router`].
#[derive(Default)]
pub struct GraphRoutes {
    routes: Vec<(String, String, MethodRouter)>,
}

impl std::fmt::Debug for GraphRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|(op, path, _)| (op, path)))
            .finish()
    }
}

impl GraphRoutes {
    /// No routes.
    pub fn new() -> GraphRoutes {
        GraphRoutes::default()
    }

    /// Adds a route: its operation name (for the counters), its axum path (under
    /// `/v1.0`) and its handlers, state applied.
    pub fn route(
        mut self,
        operation: impl Into<String>,
        path: impl Into<String>,
        method_router: MethodRouter,
    ) -> GraphRoutes {
        self.routes
            .push((operation.into(), path.into(), method_router));
        self
    }

    /// Both sets of routes (for one server of several APIs).
    pub fn merge(mut self, other: GraphRoutes) -> GraphRoutes {
        self.routes.extend(other.routes);
        self
    }

    /// Every (operation, path).
    pub fn operations(&self) -> Vec<(String, String)> {
        self.routes
            .iter()
            .map(|(op, path, _)| (op.clone(), path.clone()))
            .collect()
    }
}

impl GraphHandle {
    /// A tenant with one user and the client of `config`.
    pub fn new(config: GraphConfig) -> GraphHandle {
        let mut rng = StdRng::seed_from_u64(config.seed ^ 0x0067_7261_7068);
        let user = GraphUser {
            id: seeded_guid(&mut rng),
            display_name: config.user_name.clone(),
            address: config.user_address.clone(),
        };
        let state = GraphState {
            identity: Identity::new(
                config.seed,
                config.access_token_lifetime,
                config.refresh_rotation,
            ),
            throttle: Throttle::new(config.throttle.clone()),
            faults: faults::Faults::default(),
            counters: GraphCounters::default(),
            users: vec![user],
            advanced: Duration::ZERO,
            expiry: RequestExpiry::default(),
            latency: config.latency,
            rng,
        };
        GraphHandle {
            shared: Arc::new(Shared {
                config,
                started: tokio::time::Instant::now(),
                gate: ResponseGate::new(),
                state: Mutex::new(state),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, GraphState> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The token clock: seconds since the start plus [`GraphHandle::advance`].
    fn token_now(&self, state: &GraphState) -> f64 {
        (self.shared.started.elapsed() + state.advanced).as_secs_f64()
    }

    /// The throttle clock: seconds since the start × `time_scale`, plus
    /// [`GraphHandle::advance`].
    fn throttle_now(&self, state: &GraphState) -> f64 {
        self.shared.started.elapsed().as_secs_f64() * state.throttle.config.effective_time_scale()
            + state.advanced.as_secs_f64()
    }

    pub(crate) fn client_app(&self) -> ClientApp {
        let config = &self.shared.config;
        ClientApp {
            tenant_id: config.tenant_id.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            default_scopes: config.default_scopes.clone(),
        }
    }

    pub(crate) fn with_identity<R>(&self, f: impl FnOnce(&mut Identity, f64) -> R) -> R {
        let mut state = self.state();
        let now = self.token_now(&state);
        f(&mut state.identity, now)
    }

    pub(crate) fn count_token_grant(&self, refreshed: bool) {
        let mut state = self.state();
        if refreshed {
            state.counters.refreshes += 1;
        } else {
            state.counters.code_grants += 1;
        }
    }

    pub(crate) fn count_token_error(&self) {
        self.state().counters.token_errors += 1;
    }

    /// Counts an API request of `operation`; expires the access tokens when a request
    /// count set by [`GraphHandle::expire_access_tokens_after`] or
    /// [`GraphHandle::expire_access_tokens_every`] says so (before the request's own
    /// token is checked).
    pub(crate) fn count_call(&self, operation: &str) {
        let mut state = self.state();
        *state
            .counters
            .calls
            .entry(operation.to_owned())
            .or_insert(0) += 1;
        let mut expire = false;
        match state.expiry.after {
            Some(0) => {
                state.expiry.after = None;
                expire = true;
            }
            Some(left) => state.expiry.after = Some(left - 1),
            None => {}
        }
        if let Some(every) = state.expiry.every {
            state.expiry.seen += 1;
            expire |= state.expiry.seen.is_multiple_of(every);
        }
        if expire {
            state.identity.expire_access_tokens();
        }
    }

    pub(crate) fn latency(&self) -> Duration {
        self.state().latency
    }

    /// The user and scopes of a bearer token, or the 401 to answer.
    pub(crate) fn authenticate(
        &self,
        token: Option<&str>,
    ) -> Result<(GraphUser, Vec<String>), GraphError> {
        let mut state = self.state();
        let now = self.token_now(&state);
        let message = match state.identity.check(token, now) {
            TokenCheck::Valid { user, scopes } => match state.users.get(user) {
                Some(user) => return Ok((user.clone(), scopes)),
                None => "Access token validation failure: the user was not found.",
            },
            TokenCheck::Missing => "Access token is empty.",
            TokenCheck::Unknown => {
                "IDX14100: JWT is not well formed: the token is not one this tenant issued."
            }
            TokenCheck::Expired => "Lifetime validation failed, the token is expired.",
            TokenCheck::Revoked => {
                "Access token has been revoked: the grant behind it was revoked."
            }
        };
        state.counters.unauthorized += 1;
        Err(GraphError::invalid_authentication_token(message))
    }

    /// Admits a request of `mailbox` through the throttle, or the 429 to answer.
    pub(crate) fn admit(&self, mailbox: &str) -> Result<InFlight, GraphError> {
        let mut state = self.state();
        let now = self.throttle_now(&state);
        match state.throttle.admit(mailbox, now) {
            Ok(()) => Ok(InFlight {
                graph: self.clone(),
                mailbox: mailbox.to_owned(),
            }),
            Err(refusal) => {
                state.counters.throttled += 1;
                Err(match refusal {
                    Refusal::Rate { retry_after_secs } => GraphError::throttled(
                        state.throttle.config.rate_limit_code,
                        "Application is over its RequestRate limit for this mailbox.",
                        retry_after_secs,
                    ),
                    Refusal::Concurrency => GraphError::throttled(
                        "ApplicationThrottled",
                        "Application is over its MailboxConcurrency limit.",
                        1,
                    ),
                })
            }
        }
    }

    pub(crate) fn take_fault(&self, target: &str) -> Option<Fault> {
        let mut state = self.state();
        let fault = state.faults.take(target);
        if fault.is_some() {
            state.counters.faults += 1;
        }
        fault
    }

    /// The axum router: the identity platform's endpoints, `GET /v1.0/me`, and `routes`
    /// behind the pipeline (see the crate docs).
    ///
    /// # Panics
    /// When two routes have the same path (as axum does).
    pub fn router(&self, routes: GraphRoutes) -> Router {
        let me = get(me).with_state(());
        let routes = routes.merge(GraphRoutes::new().route("me.get", "/v1.0/me", me));
        let mut api = Router::new();
        let mut operations = Vec::new();
        for (operation, path, method_router) in routes.routes {
            operations.push((operation, pipeline::pattern(&path)));
            api = api.route(&path, method_router);
        }
        let api = api.method_not_allowed_fallback(method_not_allowed);
        let api = self.shared.gate.layer(api);
        let api = api.route_layer(middleware::from_fn_with_state(
            pipeline::ApiState {
                graph: self.clone(),
                operations: Arc::new(operations),
            },
            pipeline::pipeline,
        ));
        let identity = Router::new()
            .route(
                "/{tenant}/oauth2/v2.0/token",
                post(identity::token_endpoint),
            )
            .route(
                "/{tenant}/oauth2/v2.0/authorize",
                get(identity::authorize_endpoint),
            )
            .with_state(self.clone());
        api.merge(identity).fallback(unknown_resource)
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> String {
        self.shared.config.tenant_id.clone()
    }

    /// The client id the endpoints accept.
    pub fn client_id(&self) -> String {
        self.shared.config.client_id.clone()
    }

    /// The client secret the token endpoint accepts.
    pub fn client_secret(&self) -> String {
        self.shared.config.client_secret.clone()
    }

    /// The first user: the one the fake started with.
    pub fn user(&self) -> GraphUser {
        self.state().users[0].clone()
    }

    /// Every user.
    pub fn users(&self) -> Vec<GraphUser> {
        self.state().users.clone()
    }

    /// Adds a user (a mailbox with its own throttle budget).
    pub fn add_user(&self, display_name: &str, address: &str) -> GraphUser {
        let mut state = self.state();
        let user = GraphUser {
            id: seeded_guid(&mut state.rng),
            display_name: display_name.to_owned(),
            address: address.to_owned(),
        };
        state.users.push(user.clone());
        user
    }

    fn user_index(state: &GraphState, user_id: &str) -> Option<usize> {
        state.users.iter().position(|u| u.id == user_id)
    }

    /// A grant of the first user with these scopes (`Mail.Read`...): a live access
    /// token and a refresh token (as if `offline_access` had been consented).
    pub fn mint_grant(&self, scopes: &[&str]) -> Grant {
        let mut state = self.state();
        self.mint(&mut state, 0, scopes)
    }

    /// A grant of the user `user_id`; `None` when there is no such user.
    pub fn mint_grant_for(&self, user_id: &str, scopes: &[&str]) -> Option<Grant> {
        let mut state = self.state();
        let user = Self::user_index(&state, user_id)?;
        Some(self.mint(&mut state, user, scopes))
    }

    fn mint(&self, state: &mut GraphState, user: usize, scopes: &[&str]) -> Grant {
        let now = self.token_now(state);
        let scopes = identity::parse_scopes(&scopes.join(" "), &self.shared.config.default_scopes);
        let (grant_id, access, refresh) = state.identity.create_grant(user, scopes, true, now);
        Grant {
            grant_id,
            user_id: state
                .users
                .get(user)
                .map(|u| u.id.clone())
                .unwrap_or_default(),
            access_token: access,
            refresh_token: refresh,
            scopes: state.identity.grant_scopes(grant_id),
            expires_in: state.identity.lifetime.as_secs(),
        }
    }

    /// The newest refresh token of a grant (after rotations); `None` once revoked.
    pub fn current_refresh_token(&self, grant_id: usize) -> Option<String> {
        self.state().identity.current_refresh_token(grant_id)
    }

    /// The user a grant belongs to.
    pub fn grant_user(&self, grant_id: usize) -> Option<GraphUser> {
        let state = self.state();
        let user = state.identity.grant_user(grant_id)?;
        state.users.get(user).cloned()
    }

    /// Whether the token endpoint would accept `refresh_token` now.
    pub fn is_live_refresh_token(&self, refresh_token: &str) -> bool {
        self.state().identity.is_live_refresh_token(refresh_token)
    }

    /// Whether `refresh_token` is live and the newest of its grant.
    pub fn is_current_refresh_token(&self, refresh_token: &str) -> bool {
        self.state()
            .identity
            .is_current_refresh_token(refresh_token)
    }

    /// Revokes the grant behind an access or refresh token (its access tokens answer
    /// 401, its refresh tokens `invalid_grant` AADSTS50173); false when unknown.
    pub fn revoke_grant(&self, token: &str) -> bool {
        self.state().identity.revoke(token)
    }

    /// Every access token issued so far is expired from now on.
    pub fn expire_access_tokens(&self) {
        self.state().identity.expire_access_tokens();
    }

    /// Every access token issued by then expires once `calls` more API requests have
    /// arrived (0: at the next one). Replaces an earlier count.
    pub fn expire_access_tokens_after(&self, calls: u64) {
        self.state().expiry.after = Some(calls);
    }

    /// From now on, every access token issued by then expires at each `calls`-th API
    /// request (a token's life counted in requests, not time); `None` stops it.
    pub fn expire_access_tokens_every(&self, calls: Option<u64>) {
        let mut state = self.state();
        state.expiry.every = calls.map(|n| n.max(1));
        state.expiry.seen = 0;
    }

    /// The lifetime of access tokens issued from now on.
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        self.state().identity.lifetime = lifetime;
    }

    /// What becomes of refresh tokens used from now on.
    pub fn set_refresh_rotation(&self, rotation: RefreshRotation) {
        self.state().identity.rotation = rotation;
    }

    /// Makes the authorize endpoint answer `access_denied` (or consent again).
    pub fn set_deny_consent(&self, deny: bool) {
        self.state().identity.deny_consent = deny;
    }

    /// Who the authorize endpoint signs in; false when there is no such user.
    pub fn set_signed_in_user(&self, user_id: &str) -> bool {
        let mut state = self.state();
        match Self::user_index(&state, user_id) {
            Some(index) => {
                state.identity.signed_in = index;
                true
            }
            None => false,
        }
    }

    /// Successful `refresh_token` grants so far.
    pub fn refreshes(&self) -> u64 {
        self.state().counters.refreshes
    }

    /// Everything counted so far.
    pub fn counters(&self) -> GraphCounters {
        self.state().counters.clone()
    }

    /// What happened at one mailbox so far (zeros for one never seen).
    pub fn mailbox_counters(&self, user_id: &str) -> MailboxCounters {
        self.state()
            .throttle
            .counters
            .get(user_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The most requests that were at the mailbox at once, refused ones included:
    /// what a client sent concurrently at its worst.
    pub fn peak_concurrency(&self, user_id: &str) -> u32 {
        self.mailbox_counters(user_id).peak_attempted
    }

    /// Sets every counter back to zero (not the throttle windows).
    pub fn reset_counters(&self) {
        let mut state = self.state();
        state.counters = GraphCounters::default();
        state.throttle.reset_counters();
    }

    /// Replaces the per-mailbox limits (the windows are kept).
    pub fn set_throttle(&self, config: ThrottleConfig) {
        self.state().throttle.config = config;
    }

    /// The per-mailbox limits.
    pub fn throttle_config(&self) -> ThrottleConfig {
        self.state().throttle.config.clone()
    }

    /// Empties every mailbox's rate window.
    pub fn clear_rate_windows(&self) {
        self.state().throttle.clear_windows();
    }

    /// Moves the token clock and the throttle clock forward (`advance(10 min)` lets a
    /// whole rate window pass, whatever the `time_scale`).
    pub fn advance(&self, by: Duration) {
        let mut state = self.state();
        state.advanced = state.advanced.saturating_add(by);
    }

    /// Answers the next `count` API requests whose path and query contain `fragment`
    /// (`""`: every request) with `fault`, after authentication and throttling.
    pub fn fail_next(&self, fragment: &str, count: usize, fault: Fault) {
        self.state().faults.push(fragment, count, fault);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Faulted answers still queued.
    pub fn pending_faults(&self) -> usize {
        self.state().faults.pending()
    }

    /// Adds `latency` to every admitted API request from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// The gate in front of every mounted route: `gate().hold("/delta")` holds the
    /// answers of matching requests (computed, still in flight) until `release()`.
    pub fn gate(&self) -> ResponseGate {
        self.shared.gate.clone()
    }

    /// The token endpoint's path for `tenant` (`/common/oauth2/v2.0/token`).
    pub fn token_path(tenant: &str) -> String {
        format!("/{tenant}/oauth2/v2.0/token")
    }

    /// The authorize endpoint's path for `tenant`.
    pub fn authorize_path(tenant: &str) -> String {
        format!("/{tenant}/oauth2/v2.0/authorize")
    }
}

/// The properties of `/me` that `$select` takes.
const USER_PROPERTIES: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// `GET /v1.0/me`.
async fn me(
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Response, GraphError> {
    let query = odata::QueryOptions::parse(raw.as_deref());
    let select = query.select(USER_PROPERTIES, "microsoft.graph.user")?;
    let user = &caller.user;
    let (given, surname) = user
        .display_name
        .split_once(' ')
        .unwrap_or((user.display_name.as_str(), ""));
    let body = json!({
        "@odata.context": caller.url("/$metadata#users/$entity"),
        "businessPhones": [],
        "displayName": user.display_name,
        "givenName": given,
        "jobTitle": Value::Null,
        "mail": user.address,
        "mobilePhone": Value::Null,
        "officeLocation": Value::Null,
        "preferredLanguage": "en-US",
        "surname": surname,
        "userPrincipalName": user.address,
        "id": user.id,
    });
    let body = match body {
        Value::Object(map) => Value::Object(odata::select_fields(map, select.as_deref(), &["id"])),
        other => other,
    };
    Ok(odata::json_response(StatusCode::OK, &body))
}

async fn method_not_allowed() -> Response {
    GraphError::method_not_allowed().into_response()
}

async fn unknown_resource(uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/v1.0/") || path == "/v1.0" {
        let segment = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        GraphError::bad_request(format!("Resource not found for the segment '{segment}'."))
            .into_response()
    } else {
        GraphError::not_found("NotFound", "The requested resource does not exist.").into_response()
    }
}
