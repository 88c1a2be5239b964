//! A stateful fake of the Slack Web API, on loopback HTTP, speaking Slack's wire format.
//!
//! The fake follows Slack's published reference as collected in
//! `integrations/slack/spec/` (its `README.md` lists the wire facts and their sources;
//! `response-types/*.d.ts`, from `@slack/web-api` 8.2.0, give the field names;
//! `slack-web-openapi-subset.json`, Slack's 2020 OpenAPI spec, gives parameters and
//! error codes), and the method pages on docs.slack.dev where those are silent. It was
//! written from the reference, never from our client. The crate's tests check that
//! every key it emits is declared in the SDK's response types.
//!
//! # What it serves
//!
//! | method | path |
//! |---|---|
//! | `auth.test` | `GET/POST api/auth.test` |
//! | `conversations.list`, `.info`, `.members` | `GET/POST api/conversations.*` |
//! | `conversations.history`, `.replies` | `GET/POST api/conversations.*` |
//! | `users.list`, `users.info` | `GET/POST api/users.*` |
//! | `oauth.v2.access` (code and refresh grants) | `POST api/oauth.v2.access` |
//! | the OAuth v2 authorize page (approves at once) | `GET oauth/v2/authorize` |
//!
//! Parameters come from the query string or an `application/x-www-form-urlencoded`
//! body; the token from `Authorization: Bearer` or a `token` field. Every answer is
//! HTTP 200 with `{"ok": true, ...}` or `{"ok": false, "error": "..."}` (`needed` and
//! `provided` on `missing_scope`), except rate limits: 429, `Retry-After: <seconds>`,
//! `{"ok": false, "error": "ratelimited"}`. Answers to a token carry `x-oauth-scopes`
//! (the token's scopes) and `x-accepted-oauth-scopes` (what the method takes), as
//! Slack's do. Any other method is `unknown_method`.
//!
//! # Behaviour worth knowing
//!
//! - One workspace (team), one installing user ([`SlackHandle::installer`]); every
//!   token ([`SlackHandle::grant`], the OAuth flow) is that user's. Private channels,
//!   multi-person DMs and DMs are visible (listed, readable) only while the installer
//!   is a member; a public channel is listed always, but reading one the installer is
//!   not in answers `not_in_channel` (as for a bot token). A removed conversation is
//!   `channel_not_found` everywhere; an archived one stays readable.
//! - Errors: no token `not_authed`; an unknown one `invalid_auth`; a revoked one
//!   `token_revoked`; an expired one `token_expired` (the code Slack's clients report
//!   for rotated tokens; the README notes `invalid_auth` also occurs). Scopes are
//!   checked per conversation kind: `channels:*` (public), `groups:*` (private),
//!   `mpim:*`, `im:*`, `:read` for `conversations.list/info/members` and `:history`
//!   for `conversations.history/replies`. `conversations.list` with a requested type
//!   whose scope is missing answers `missing_scope` with every missing scope in
//!   `needed` (Slack's documented answer for a missing scope; whether Slack instead
//!   drops the type silently for some token kinds could not be confirmed).
//! - Pagination is by opaque cursors (base64 of `next_ts:<ts>`, `team:<id>`,
//!   `user:<id>`, as Slack's look), keyset positions that stay exact while messages
//!   come and go; `response_metadata.next_cursor` is `""` on the last page.
//!   `conversations.history`: top-level messages (and tombstones) newest first, `limit`
//!   100 by default, at most 999; `oldest`/`latest`/`inclusive` as documented.
//!   `conversations.replies`: the thread's parent first (on the first page only, as
//!   Slack does), then the replies oldest first, `limit` 1000 by default and at most;
//!   the bounds apply to the replies; a reply's ts finds its whole thread; an
//!   unthreaded ts gives just that message. `conversations.list`: `types` defaults to
//!   `public_channel`, `limit` 100 by default, at most 1000; `users.list` without
//!   `limit` gives everyone (Slack's default 0).
//! - A deleted thread parent with replies stays as a tombstone (`subtype:
//!   "tombstone"`, `user: "USLACKBOT"`, `hidden: true`, its thread fields kept); a
//!   parent without replies, or a reply, disappears. When its last reply goes, a
//!   tombstone goes too. An edit keeps the ts and sets `edited {user, ts}`.
//! - Rate limits, per method for the workspace, over a sliding window of 60 s of the
//!   *rate clock* (real time × `time_scale`, plus [`SlackHandle::advance`]): see
//!   [`limit_per_window`]. Tier 2 (20): `conversations.list`, `users.list`; Tier 3
//!   (50): `conversations.history/replies/info/members`; Tier 4 (100): `users.info`.
//!   Slack's pages give `auth.test` and `oauth.v2.access` as Special / Tier 4: the fake
//!   uses 100. [`RateProfile::Limited2025`] is the regime Slack announced on
//!   2025-05-29 for commercially distributed non-Marketplace apps: `conversations.history`
//!   and `conversations.replies` at 1 request per window and `limit` 15 by default and
//!   at most. The changelog keeps Marketplace apps and internal (customer-built) apps at
//!   Tier 3, so [`RateProfile::Marketplace`] is the same as [`RateProfile::Internal`]
//!   for every method here. A rate-limited call is not executed; `Retry-After` is the
//!   whole real seconds until the oldest call of the window leaves it (at least 1).
//!   Failed calls (errors) count in the window; auth failures do not.
//! - Tokens: `xoxp-…` (user) and `xoxb-…` (bot, only when the authorize request asked
//!   for bot `scope`; it acts with the installer's view). With rotation on, they are
//!   `xoxe.xoxp-1-…`, expire after `access_token_lifetime` of the *token clock* (real
//!   time plus [`SlackHandle::advance`]) and come with a refresh token `xoxe-1-…`;
//!   refreshing (`grant_type=refresh_token`) gives a new access token and a new
//!   refresh token and revokes the old refresh token at once (`invalid_refresh_token`
//!   when reused); an access token issued before keeps working until it expires.
//!   [`SlackHandle::revoke`] revokes the whole grant (as an uninstall does): its access
//!   tokens answer `token_revoked` and its refresh token `invalid_refresh_token`.
//! - OAuth v2: `oauth/v2/authorize` approves at once with a 302 to
//!   `redirect_uri?code=…&state=…`; `oauth.v2.access` takes the client credentials by
//!   HTTP Basic or `client_id`/`client_secret` fields (`invalid_client_id`,
//!   `bad_client_secret`), the code once (`invalid_code` after), the same
//!   `redirect_uri` (`bad_redirect_uri`) and, when the authorize request had a
//!   `code_challenge` (S256 or plain), the matching `code_verifier`
//!   (`invalid_code_verifier`; Slack's PKCE error code is not in the reference).
//! - Generated data: `messages` over the conversations the installer is in, a few busy
//!   ones and many quiet ones (Zipf-like), spread over the last 90 days, with the
//!   busiest also holding messages from the last hours; `replies` in threads (about 3
//!   replies a thread); some messages edited, with reactions or a file. Conversations
//!   the installer is not in get up to 3 messages of their own (no sync can read them;
//!   they are not in [`SlackHandle::snapshot`]). With `messages > 0` and no channels,
//!   one (`general`) is made.
//! - Faults ([`SlackHandle::fail_next`]) apply to a method's next requests before
//!   anything else, auth included. [`SlackHandle::calls`] counts every request to a
//!   served method, faults, errors and 429s included.

mod rate;
mod server;
pub mod standalone;
mod workspace;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tokio::net::TcpListener;
use tributary_testkit::serving::LoopbackServer;

pub use rate::limit_per_window;
pub use standalone::{SlackFake, fake};

use workspace::Workspace;

/// Every user scope the fake knows: a full grant for a sync.
pub const ALL_SCOPES: &[&str] = &[
    "channels:read",
    "channels:history",
    "groups:read",
    "groups:history",
    "im:read",
    "im:history",
    "mpim:read",
    "mpim:history",
    "users:read",
];

/// Which of Slack's rate-limit regimes the fake applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RateProfile {
    /// An internal (customer-built, not distributed) app: the published tiers.
    #[default]
    Internal,
    /// A Marketplace-approved app: the same tiers as [`RateProfile::Internal`] for
    /// these methods (Slack's 2025-05-29 changelog exempts both).
    Marketplace,
    /// A commercially distributed app not approved for the Marketplace, from
    /// 2025-05-29: `conversations.history` and `conversations.replies` at 1 request a
    /// minute, `limit` 15 by default and at most.
    Limited2025,
}

impl RateProfile {
    /// The profile's name: `internal`, `marketplace`, `limited-2025`.
    pub fn as_str(self) -> &'static str {
        match self {
            RateProfile::Internal => "internal",
            RateProfile::Marketplace => "marketplace",
            RateProfile::Limited2025 => "limited-2025",
        }
    }
}

impl std::fmt::Display for RateProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RateProfile {
    type Err = SlackFakeError;

    fn from_str(s: &str) -> Result<RateProfile, SlackFakeError> {
        match s {
            "internal" => Ok(RateProfile::Internal),
            "marketplace" => Ok(RateProfile::Marketplace),
            "limited-2025" => Ok(RateProfile::Limited2025),
            other => Err(SlackFakeError::Invalid(format!(
                "unknown rate profile {other:?} (internal, marketplace, limited-2025)"
            ))),
        }
    }
}

/// The kind of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConversationKind {
    /// A public channel (`public_channel`, id `C…`).
    Public,
    /// A private channel (`private_channel`, id `G…`).
    Private,
    /// A multi-person direct message (`mpim`, id `G…`).
    Mpim,
    /// A direct message (`im`, id `D…`).
    Im,
}

impl ConversationKind {
    /// Slack's name of the type in `conversations.list?types=`.
    pub fn slack_type(self) -> &'static str {
        match self {
            ConversationKind::Public => "public_channel",
            ConversationKind::Private => "private_channel",
            ConversationKind::Mpim => "mpim",
            ConversationKind::Im => "im",
        }
    }

    /// The kind named by a `types` entry.
    pub fn from_slack_type(name: &str) -> Option<ConversationKind> {
        match name {
            "public_channel" => Some(ConversationKind::Public),
            "private_channel" => Some(ConversationKind::Private),
            "mpim" => Some(ConversationKind::Mpim),
            "im" => Some(ConversationKind::Im),
            _ => None,
        }
    }

    /// The scope reading the kind's metadata takes (`channels:read`...).
    pub fn read_scope(self) -> &'static str {
        match self {
            ConversationKind::Public => "channels:read",
            ConversationKind::Private => "groups:read",
            ConversationKind::Mpim => "mpim:read",
            ConversationKind::Im => "im:read",
        }
    }

    /// The scope reading the kind's messages takes (`channels:history`...).
    pub fn history_scope(self) -> &'static str {
        match self {
            ConversationKind::Public => "channels:history",
            ConversationKind::Private => "groups:history",
            ConversationKind::Mpim => "mpim:history",
            ConversationKind::Im => "im:history",
        }
    }
}

/// What a fake workspace starts with.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// Generated conversations (public and private channels, DMs, multi-person DMs).
    pub channels: usize,
    /// Generated top-level messages, over the conversations the installer is in.
    pub messages: usize,
    /// Generated thread replies, on some of those messages.
    pub replies: usize,
    /// Workspace members (at least 1: the installing user).
    pub users: usize,
    /// The seed of the generator, the ids and the tokens.
    pub seed: u64,
    /// The rate-limit regime.
    pub profile: RateProfile,
    /// `false`: never a 429 for rate (the counters still count).
    pub enforce_limits: bool,
    /// The rate windows are 60 s / `time_scale` of real time.
    pub time_scale: f64,
    /// Added to every API answer.
    pub latency: Duration,
    /// Token rotation: access tokens expire and come with refresh tokens.
    pub rotation: bool,
    /// How long an access token lives with rotation (Slack: 12 hours).
    pub access_token_lifetime: Duration,
}

impl Default for SlackConfig {
    fn default() -> SlackConfig {
        SlackConfig {
            channels: 0,
            messages: 0,
            replies: 0,
            users: 0,
            seed: 42,
            profile: RateProfile::Internal,
            enforce_limits: true,
            time_scale: 1.0,
            latency: Duration::ZERO,
            rotation: false,
            access_token_lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

/// Why a hook refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackFakeError {
    /// No (live) conversation has this id.
    #[error("no conversation {0}")]
    ChannelNotFound(String),
    /// No (live) message has this ts in the conversation.
    #[error("no message {0}")]
    MessageNotFound(String),
    /// No user has this id.
    #[error("no user {0}")]
    UserNotFound(String),
    /// The conversation is archived.
    #[error("conversation {0} is archived")]
    Archived(String),
    /// The request makes no sense.
    #[error("{0}")]
    Invalid(String),
}

/// An injected fault for [`SlackHandle::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// This HTTP status with the body `{}`.
    Status(u16),
    /// HTTP 200 with `{"ok": false, "error": <this>}`.
    Error(&'static str),
    /// A 429 with this `Retry-After`.
    RateLimited {
        /// The `Retry-After` header's seconds.
        retry_after_secs: u64,
    },
}

/// A token handed out by [`SlackHandle::grant`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The user token (`xoxp-…`, or `xoxe.xoxp-1-…` with rotation).
    pub access_token: String,
    /// With rotation, its refresh token (`xoxe-1-…`).
    pub refresh_token: Option<String>,
    /// The token's scopes.
    pub scopes: Vec<String>,
}

/// One message or reply as a full sync must hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTruth {
    /// The conversation id.
    pub channel: String,
    /// Its ts.
    pub ts: String,
    /// The thread's ts: the parent's for a reply, its own for a parent with replies.
    pub thread_ts: Option<String>,
    /// The author's user id.
    pub user: String,
    /// The text.
    pub text: String,
    /// The ts of its last edit.
    pub edited_ts: Option<String>,
    /// Replies (parents).
    pub reply_count: u32,
    /// The newest reply's ts (parents with replies).
    pub latest_reply: Option<String>,
    /// Reactions as (name, count).
    pub reactions: Vec<(String, u32)>,
    /// The names of its files.
    pub file_names: Vec<String>,
    /// Whether it is a thread reply.
    pub is_reply: bool,
}

/// One conversation as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationTruth {
    /// The id (`C…`, `G…`, `D…`).
    pub id: String,
    /// Its name (for a DM: the name it was created with, or the other user's id).
    pub name: String,
    /// Its kind.
    pub kind: ConversationKind,
    /// Whether it is archived.
    pub archived: bool,
    /// Whether the installer is a member.
    pub is_member: bool,
    /// Whether it was removed (answers `channel_not_found`).
    pub removed: bool,
}

/// Per-method request counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests per method (everything answered: results, errors, faults, 429s).
    pub calls: BTreeMap<String, u64>,
    /// 429s served per method (rate limits and injected ones).
    pub rate_limited: BTreeMap<String, u64>,
    /// Successful `refresh_token` grants.
    pub refreshes: u64,
}

/// The tokens of one authorization.
#[derive(Debug, Clone)]
pub(crate) struct GrantState {
    pub(crate) scopes: Vec<String>,
    pub(crate) bot: bool,
    pub(crate) revoked: bool,
}

/// One access token.
#[derive(Debug, Clone)]
pub(crate) struct AccessToken {
    pub(crate) grant: usize,
    /// Token clock seconds at which it expires (rotation only).
    pub(crate) expires_at: Option<f64>,
    /// Set by [`SlackHandle::expire_access_tokens`].
    pub(crate) expired: bool,
}

/// An authorization code from the authorize page.
#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub(crate) user_scopes: Vec<String>,
    pub(crate) bot_scopes: Vec<String>,
    pub(crate) redirect_uri: Option<String>,
    pub(crate) challenge: Option<(String, String)>,
    pub(crate) used: bool,
}

/// Everything behind the handle's lock.
pub(crate) struct State {
    pub(crate) ws: Workspace,
    pub(crate) grants: Vec<GrantState>,
    pub(crate) access: HashMap<String, AccessToken>,
    /// Refresh token → (grant, live).
    pub(crate) refresh: HashMap<String, (usize, bool)>,
    pub(crate) codes: HashMap<String, AuthCode>,
    pub(crate) rates: rate::Rates,
    pub(crate) faults: HashMap<String, VecDeque<Fault>>,
    pub(crate) counters: Counters,
    /// How far [`SlackHandle::advance`] moved the clocks.
    pub(crate) advanced: Duration,
    pub(crate) token_rng: StdRng,
    /// API calls still answered before every access token expires
    /// ([`SlackHandle::expire_tokens_after_calls`]).
    pub(crate) expire_after: Option<u64>,
}

pub(crate) struct Shared {
    pub(crate) config: SlackConfig,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) app_id: String,
    pub(crate) started: Instant,
    pub(crate) state: Mutex<State>,
}

/// A fake Slack workspace with its OAuth server: the state and the hooks. Cheap to
/// clone; every clone is the same workspace. Serve it with [`SlackHandle::router`] or
/// run it with [`FakeSlack::start`].
#[derive(Clone)]
pub struct SlackHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for SlackHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackHandle")
            .field("team_id", &self.team_id())
            .finish_non_exhaustive()
    }
}

/// Now as a Slack ts in microseconds.
pub(crate) fn now_micros() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0)
}

impl SlackHandle {
    /// Builds the workspace (generating what `config` asks for) and the OAuth server.
    pub fn new(config: SlackConfig) -> SlackHandle {
        let mut rng = StdRng::seed_from_u64(config.seed ^ 0x0073_6c61_636b);
        let ws = Workspace::generate(&config, &mut rng, now_micros());
        let client_id = format!(
            "{}.{}",
            rand::Rng::random_range(&mut rng, 1_000_000_000_000u64..9_999_999_999_999),
            rand::Rng::random_range(&mut rng, 1_000_000_000_000u64..9_999_999_999_999)
        );
        let client_secret = workspace::hex(&mut rng, 32);
        let app_id = format!("A0{}", workspace::alnum(&mut rng, 9));
        let token_rng = StdRng::seed_from_u64(config.seed ^ 0x746f_6b65_6e73);
        SlackHandle {
            shared: Arc::new(Shared {
                config,
                client_id,
                client_secret,
                app_id,
                started: Instant::now(),
                state: Mutex::new(State {
                    ws,
                    grants: Vec::new(),
                    access: HashMap::new(),
                    refresh: HashMap::new(),
                    codes: HashMap::new(),
                    rates: rate::Rates::default(),
                    faults: HashMap::new(),
                    counters: Counters::default(),
                    advanced: Duration::ZERO,
                    expire_after: None,
                    token_rng,
                }),
            }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn config(&self) -> &SlackConfig {
        &self.shared.config
    }

    /// The axum router serving the Web API (`/api/<method>`) and the authorize page.
    pub fn router(&self) -> axum::Router {
        server::router(self.clone())
    }

    /// The OAuth client id `oauth.v2.access` accepts.
    pub fn client_id(&self) -> String {
        self.shared.client_id.clone()
    }

    /// The OAuth client secret `oauth.v2.access` accepts.
    pub fn client_secret(&self) -> String {
        self.shared.client_secret.clone()
    }

    /// The app's id (`app_id` of `oauth.v2.access`).
    pub fn app_id(&self) -> String {
        self.shared.app_id.clone()
    }

    /// The workspace's id (`T…`).
    pub fn team_id(&self) -> String {
        self.state().ws.team_id.clone()
    }

    /// The installing user's id: the user every token belongs to.
    pub fn installer(&self) -> String {
        self.state().ws.installer.clone()
    }

    /// A user token with exactly these scopes (and with rotation its refresh token).
    /// `grant(ALL_SCOPES)` for a full grant.
    pub fn grant(&self, scopes: &[&str]) -> Grant {
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        let mut state = self.state();
        let issued = self.issue(&mut state, scopes.clone(), false);
        Grant {
            access_token: issued.0,
            refresh_token: issued.1,
            scopes,
        }
    }

    /// Issues a new grant: (access token, refresh token with rotation).
    pub(crate) fn issue(
        &self,
        state: &mut State,
        scopes: Vec<String>,
        bot: bool,
    ) -> (String, Option<String>) {
        state.grants.push(GrantState {
            scopes,
            bot,
            revoked: false,
        });
        let grant = state.grants.len() - 1;
        let access = self.new_access_token(state, grant);
        let refresh = self.config().rotation.then(|| {
            let token = format!("xoxe-1-{}", workspace::alnum(&mut state.token_rng, 40));
            state.refresh.insert(token.clone(), (grant, true));
            token
        });
        (access, refresh)
    }

    /// A new access token of `grant`.
    pub(crate) fn new_access_token(&self, state: &mut State, grant: usize) -> String {
        let bot = state.grants.get(grant).is_some_and(|g| g.bot);
        let kind = if bot { "xoxb" } else { "xoxp" };
        let rng = &mut state.token_rng;
        let token = if self.config().rotation {
            format!("xoxe.{kind}-1-{}", workspace::alnum(rng, 48))
        } else {
            format!(
                "{kind}-{}-{}-{}-{}",
                rand::Rng::random_range(rng, 1_000_000_000u64..9_999_999_999),
                rand::Rng::random_range(rng, 1_000_000_000u64..9_999_999_999),
                rand::Rng::random_range(rng, 1_000_000_000u64..9_999_999_999),
                workspace::hex(rng, 32)
            )
        };
        let expires_at = self
            .config()
            .rotation
            .then(|| self.token_now(state) + self.config().access_token_lifetime.as_secs_f64());
        state.access.insert(
            token.clone(),
            AccessToken {
                grant,
                expires_at,
                expired: false,
            },
        );
        token
    }

    /// The token clock: real seconds since the start plus [`SlackHandle::advance`].
    pub(crate) fn token_now(&self, state: &State) -> f64 {
        (self.shared.started.elapsed() + state.advanced).as_secs_f64()
    }

    /// The rate clock: real seconds since the start × `time_scale`, plus
    /// [`SlackHandle::advance`].
    pub(crate) fn rate_now(&self, state: &State) -> f64 {
        self.shared.started.elapsed().as_secs_f64() * self.time_scale()
            + state.advanced.as_secs_f64()
    }

    pub(crate) fn time_scale(&self) -> f64 {
        let scale = self.config().time_scale;
        if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        }
    }

    /// Adds a workspace member; returns the user id (`U…`).
    pub fn add_user(&self, display_name: &str) -> String {
        self.state().ws.add_user(display_name)
    }

    /// Creates a conversation the installer is a member of; returns its id (`C…` public,
    /// `G…` private or multi-person DM, `D…` DM). For a DM, `name` is the other user's
    /// id when it is one, otherwise a new user with that display name is added.
    pub fn create_conversation(&self, kind: ConversationKind, name: &str) -> String {
        self.state().ws.create_conversation(kind, name)
    }

    /// Makes the installer a member of the conversation, or not.
    pub fn set_member(&self, channel: &str, member: bool) -> Result<(), SlackFakeError> {
        self.state().ws.set_member(channel, member)
    }

    /// Posts a top-level message; returns its ts, greater than every ts before in the
    /// conversation.
    pub fn post(&self, channel: &str, user: &str, text: &str) -> Result<String, SlackFakeError> {
        self.state()
            .ws
            .post(channel, None, user, text, now_micros())
            .map(workspace::fmt_ts)
    }

    /// Posts a reply in the thread of `thread_ts` (a reply's ts means its thread);
    /// returns its ts.
    pub fn reply(
        &self,
        channel: &str,
        thread_ts: &str,
        user: &str,
        text: &str,
    ) -> Result<String, SlackFakeError> {
        let parent = workspace::parse_ts(thread_ts)
            .ok_or_else(|| SlackFakeError::MessageNotFound(thread_ts.to_owned()))?;
        self.state()
            .ws
            .post(channel, Some(parent), user, text, now_micros())
            .map(workspace::fmt_ts)
    }

    /// Edits a message or reply: new text, same ts, `edited {user, ts}` set.
    pub fn edit(&self, channel: &str, ts: &str, text: &str) -> Result<(), SlackFakeError> {
        let ts =
            workspace::parse_ts(ts).ok_or_else(|| SlackFakeError::MessageNotFound(ts.into()))?;
        self.state().ws.edit(channel, ts, text, now_micros())
    }

    /// Deletes a message or reply; a parent with replies becomes a tombstone.
    pub fn delete(&self, channel: &str, ts: &str) -> Result<(), SlackFakeError> {
        let ts =
            workspace::parse_ts(ts).ok_or_else(|| SlackFakeError::MessageNotFound(ts.into()))?;
        self.state().ws.delete(channel, ts)
    }

    /// Adds `user`'s reaction `name` to a message or reply.
    pub fn react(
        &self,
        channel: &str,
        ts: &str,
        name: &str,
        user: &str,
    ) -> Result<(), SlackFakeError> {
        let ts =
            workspace::parse_ts(ts).ok_or_else(|| SlackFakeError::MessageNotFound(ts.into()))?;
        self.state().ws.react(channel, ts, name, user)
    }

    /// Archives a conversation (still listed and readable, `is_archived: true`).
    pub fn archive(&self, channel: &str) -> Result<(), SlackFakeError> {
        self.state().ws.archive(channel)
    }

    /// Removes a conversation: `channel_not_found` from now on, not listed.
    pub fn remove_conversation(&self, channel: &str) -> Result<(), SlackFakeError> {
        self.state().ws.remove(channel)
    }

    /// Revokes the grant of this access (or refresh) token, as an uninstall does: its
    /// access tokens answer `token_revoked`, its refresh token `invalid_refresh_token`.
    pub fn revoke(&self, access_token: &str) {
        let mut state = self.state();
        let grant = state
            .access
            .get(access_token)
            .map(|t| t.grant)
            .or_else(|| state.refresh.get(access_token).map(|r| r.0));
        if let Some(grant) = grant {
            if let Some(g) = state.grants.get_mut(grant) {
                g.revoked = true;
            }
            for (_, (g, live)) in state.refresh.iter_mut() {
                if *g == grant {
                    *live = false;
                }
            }
        }
    }

    /// Whether `refresh_token` is a refresh token the token endpoint would accept now.
    pub fn is_live_refresh_token(&self, refresh_token: &str) -> bool {
        self.state()
            .refresh
            .get(refresh_token)
            .is_some_and(|(_, live)| *live)
    }

    /// Every access token issued so far answers `token_expired` from now on.
    pub fn expire_access_tokens(&self) {
        for token in self.state().access.values_mut() {
            token.expired = true;
        }
    }

    /// Lets `calls` more Web API calls through (token requests not counted), then
    /// expires every access token issued so far, as an hour running out mid-sync.
    pub fn expire_tokens_after_calls(&self, calls: u64) {
        self.state().expire_after = Some(calls);
    }

    /// Every live message and reply of the conversations a full sync reads (not
    /// removed, the installer a member; archived ones included). Tombstoned parents
    /// are left out, their replies are in.
    pub fn snapshot(&self) -> Vec<MessageTruth> {
        self.state().ws.snapshot()
    }

    /// Every conversation, removed ones included.
    pub fn conversations(&self) -> Vec<ConversationTruth> {
        self.state().ws.conversation_truths()
    }

    /// Requests to `method` (`"conversations.history"`) so far.
    pub fn calls(&self, method: &str) -> u64 {
        self.state()
            .counters
            .calls
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// 429s served for `method` so far.
    pub fn rate_limited(&self, method: &str) -> u64 {
        self.state()
            .counters
            .rate_limited
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// 429s served so far, all methods.
    pub fn total_rate_limited(&self) -> u64 {
        self.state().counters.rate_limited.values().sum()
    }

    /// Successful `refresh_token` grants so far.
    pub fn refreshes(&self) -> u64 {
        self.state().counters.refreshes
    }

    /// Everything counted so far.
    pub fn counters(&self) -> Counters {
        self.state().counters.clone()
    }

    /// Answers the next `count` requests to `method` with `fault`.
    pub fn fail_next(&self, method: &str, count: usize, fault: Fault) {
        let mut state = self.state();
        let queue = state.faults.entry(method.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(fault, count));
    }

    /// Sets the counters back to zero (not the rate windows).
    pub fn reset_counters(&self) {
        self.state().counters = Counters::default();
    }

    /// Moves the rate clock and the token clock forward by `by` (`advance(60 s)` lets
    /// a full rate window pass, whatever the `time_scale`).
    pub fn advance(&self, by: Duration) {
        let mut state = self.state();
        state.advanced = state.advanced.saturating_add(by);
    }

    /// Posts a generated message in one of the busiest conversations the installer is
    /// in (a delivery); returns (channel, ts), or `None` without such a conversation.
    pub fn generate_message(&self) -> Option<(String, String)> {
        self.state().ws.generate_message(now_micros())
    }
}

/// A [`SlackHandle`] served on a loopback port.
#[derive(Debug)]
pub struct FakeSlack {
    handle: SlackHandle,
    server: LoopbackServer,
}

impl FakeSlack {
    /// Starts a workspace on a free loopback port.
    pub async fn start(config: SlackConfig) -> std::io::Result<FakeSlack> {
        FakeSlack::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts a workspace on `addr`.
    pub async fn start_on(addr: SocketAddr, config: SlackConfig) -> std::io::Result<FakeSlack> {
        let handle = tokio::task::spawn_blocking(move || SlackHandle::new(config))
            .await
            .map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(addr).await?;
        let server = LoopbackServer::serve(listener, handle.router());
        Ok(FakeSlack { handle, server })
    }

    /// The workspace's state and hooks.
    pub fn handle(&self) -> &SlackHandle {
        &self.handle
    }

    /// `http://127.0.0.1:PORT/api/`: a method is this plus its name.
    pub fn base_url(&self) -> String {
        format!("{}api/", self.server.base_url())
    }

    /// The token endpoint: `base_url() + "oauth.v2.access"`.
    pub fn token_url(&self) -> String {
        format!("{}oauth.v2.access", self.base_url())
    }

    /// The authorize page: `http://127.0.0.1:PORT/oauth/v2/authorize`.
    pub fn authorize_url(&self) -> String {
        format!("{}oauth/v2/authorize", self.server.base_url())
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Stops serving.
    pub async fn stop(self) -> std::io::Result<()> {
        self.server.stop().await
    }
}
