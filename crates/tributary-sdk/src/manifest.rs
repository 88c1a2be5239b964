//! `manifest.json`: what an integration declares about itself.
//!
//! ```json
//! {
//!   "domain": "gmail",
//!   "name": "Gmail",
//!   "version": "1.0.0",
//!   "description": "Mail from a Gmail mailbox",
//!   "author": "Tributary",
//!   "taskTypes": ["start", "getEmailList", "downloadEmail", "checkHistory"],
//!   "credentials": [
//!     {"name": "clientId", "secret": false},
//!     {"name": "refreshToken", "secret": true}
//!   ],
//!   "schedule": {"startEverySeconds": 60, "historyTask": "checkHistory", "historyEverySeconds": 120},
//!   "settings": [
//!     {"name": "pageSize", "type": "integer", "default": 50, "minimum": 1, "maximum": 500}
//!   ],
//!   "oauth": {
//!     "authorizationUrl": "https://accounts.google.com/o/oauth2/v2/auth",
//!     "tokenUrl": "https://oauth2.googleapis.com/token",
//!     "scopes": ["https://www.googleapis.com/auth/gmail.readonly"]
//!   },
//!   "limits": {
//!     "requestsPerSecond": 200,
//!     "concurrentJobsPerAccount": 8,
//!     "budgets": [
//!       {"name": "perUser", "scope": "account", "windowSeconds": 60, "capacity": 15000,
//!        "costs": {"users.messages.get": 5, "users.history.list": 2}, "defaultCost": 5}
//!     ]
//!   }
//! }
//! ```
//!
//! # Rate budgets
//! `limits.budgets` states a service's quotas in its own units: within any
//! `windowSeconds`, the requests charged to one budget key may cost at most `capacity`
//! units. The key is the account for `scope: "account"` (a per-user quota) and the
//! whole deployment for `scope: "project"` (a per-project quota, shared by every
//! process on PostgreSQL). A request costs `costs[class]` units, its class being the
//! name an integration passes to [`crate::http::HttpClient::send_as`] or
//! [`crate::http::HttpClient::permit`] (a method name such as `users.messages.get`), and
//! `defaultCost` (1 when absent) for any other class; a `defaultCost` of 0 makes a
//! budget apply to the classes in `costs` only. With `perClass: true` every class has a
//! quota of its own under the budget (Slack's limits are per method: each of
//! `conversations.history` and `conversations.replies` may be called 50 times a
//! minute), so the key also names the class. Every request is charged to every budget
//! before it is sent; [`Budget::burst`] and [`Budget::refill_per_window`] give the
//! token bucket the engine keeps, whose burst plus one window of refill stays below
//! the capacity (for a quota of one request a minute: one request every 67 s). Names
//! are unique, windows and capacities positive, costs in `costs` positive, and no cost
//! larger than the capacity (such a request could never be sent at all).
//!
//! Validation happens once, when the registry is built, and a bad manifest is rejected
//! with a message naming the file and the field.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The default interval between two `start` jobs of one account.
pub const DEFAULT_START_EVERY_SECONDS: u64 = 60;

/// A parsed and validated `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// The integration's stable identifier (`gmail`): lowercase letters, digits, `-`, `_`.
    pub domain: String,
    /// Human-readable name.
    pub name: String,
    /// Semantic version of the integration.
    pub version: String,
    /// One sentence on what it syncs.
    #[serde(default)]
    pub description: String,
    /// Who maintains it.
    #[serde(default)]
    pub author: String,
    /// Every task type the integration runs; `start` first.
    pub task_types: Vec<String>,
    /// The credential fields a user provides when linking an account.
    #[serde(default)]
    pub credentials: Vec<CredentialField>,
    /// The non-secret settings an account may be linked with, with their types and
    /// defaults (the one place a default is written; see [`crate::kit::settings`]).
    #[serde(default)]
    pub settings: Vec<SettingField>,
    /// How a user grants access, when the service uses OAuth 2.0.
    #[serde(default)]
    pub oauth: Option<OAuthEndpoints>,
    /// Scheduling hints.
    #[serde(default)]
    pub schedule: Schedule,
    /// Limits that keep one process within the service's quotas.
    #[serde(default)]
    pub limits: Limits,
}

/// One credential field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialField {
    /// The field's key in the credentials object.
    pub name: String,
    /// Whether the value is a secret (never printed, even in listings).
    #[serde(default)]
    pub secret: bool,
    /// Whether linking fails without it (default true).
    #[serde(default = "yes")]
    pub required: bool,
    /// What the field is.
    #[serde(default)]
    pub description: String,
}

fn yes() -> bool {
    true
}

/// One setting field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingField {
    /// The field's key in the settings object.
    pub name: String,
    /// The JSON type of its value.
    #[serde(rename = "type")]
    pub kind: SettingKind,
    /// The value when the account was linked without it; `None` for a setting that is
    /// optional with no value, or required (see `required`).
    #[serde(default)]
    pub default: Option<Value>,
    /// Whether linking fails without it (default false: settings have defaults).
    #[serde(default)]
    pub required: bool,
    /// The smallest value, for an integer.
    #[serde(default)]
    pub minimum: Option<i64>,
    /// The largest value, for an integer.
    #[serde(default)]
    pub maximum: Option<i64>,
    /// What the field is.
    #[serde(default)]
    pub description: String,
}

/// The type of a setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SettingKind {
    /// A JSON string.
    String,
    /// An absolute `http` or `https` URL, as a JSON string.
    Url,
    /// A JSON integer, within `minimum`..=`maximum` when given.
    Integer,
    /// `true` or `false`.
    Boolean,
}

impl SettingField {
    /// Why `value` is not a valid value of this field, if it is not.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        match self.kind {
            SettingKind::String if value.is_string() => Ok(()),
            SettingKind::Boolean if value.is_boolean() => Ok(()),
            SettingKind::Url => match value.as_str().map(url::Url::parse) {
                Some(Ok(url)) if matches!(url.scheme(), "http" | "https") => Ok(()),
                _ => Err(format!("expected an absolute http(s) url, found {value}")),
            },
            SettingKind::Integer => {
                let n = value
                    .as_i64()
                    .ok_or_else(|| format!("expected an integer, found {value}"))?;
                let low = self.minimum.unwrap_or(i64::MIN);
                let high = self.maximum.unwrap_or(i64::MAX);
                if (low..=high).contains(&n) {
                    Ok(())
                } else {
                    Err(format!("must be from {low} to {high}, found {n}"))
                }
            }
            SettingKind::String => Err(format!("expected a string, found {value}")),
            SettingKind::Boolean => Err(format!("expected true or false, found {value}")),
        }
    }
}

/// The OAuth 2.0 authorization-code flow of a service (RFC 6749 §4.1, with PKCE):
/// enough for `tributary auth <domain>` to obtain a refresh token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuthEndpoints {
    /// Where the user's browser is sent to grant access.
    pub authorization_url: String,
    /// The token endpoint: the code is exchanged here, and refresh tokens are used
    /// here (unless a `tokenUrl` setting overrides it).
    pub token_url: String,
    /// The scopes to ask for.
    pub scopes: Vec<String>,
    /// Extra query parameters of the authorization request (Google needs
    /// `access_type=offline` and `prompt=consent` to return a refresh token).
    #[serde(default)]
    pub authorization_params: std::collections::BTreeMap<String, String>,
    /// The authorization request's parameter that carries the scopes (`scope`; Slack
    /// asks for a user token's scopes in `user_scope`).
    #[serde(default = "default_scope_parameter")]
    pub scope_parameter: String,
    /// What separates the scopes in it (a space; Slack takes commas).
    #[serde(default = "default_scope_separator")]
    pub scope_separator: String,
    /// The object of the token endpoint's answer that holds the tokens, when they are
    /// not at its top level (Slack's user token is in `authed_user`).
    #[serde(default)]
    pub token_field: Option<String>,
    /// The credential field names the flow fills in (defaults: `clientId`,
    /// `clientSecret`, `refreshToken`).
    #[serde(default)]
    pub credential_fields: OAuthCredentialFields,
}

fn default_scope_parameter() -> String {
    "scope".into()
}

fn default_scope_separator() -> String {
    " ".into()
}

/// Which credential fields hold what the OAuth flow produces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuthCredentialFields {
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: String,
    /// The refresh token.
    pub refresh_token: String,
}

impl Default for OAuthCredentialFields {
    fn default() -> Self {
        OAuthCredentialFields {
            client_id: "clientId".into(),
            client_secret: "clientSecret".into(),
            refresh_token: "refreshToken".into(),
        }
    }
}

/// Scheduling hints of an integration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schedule {
    /// Seconds between two `start` jobs of one account.
    #[serde(default = "default_start_every")]
    pub start_every_seconds: u64,
    /// The task type that checks the service's history/delta API, if the integration
    /// has one.
    #[serde(default)]
    pub history_task: Option<String>,
    /// Seconds between two history checks of one account.
    #[serde(default)]
    pub history_every_seconds: Option<u64>,
}

fn default_start_every() -> u64 {
    DEFAULT_START_EVERY_SECONDS
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            start_every_seconds: DEFAULT_START_EVERY_SECONDS,
            history_task: None,
            history_every_seconds: None,
        }
    }
}

/// Limits that keep one process within a service's quotas. The engine may be
/// configured tighter or looser per deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Requests per second to the service, across all accounts of this process
    /// (no limit when absent).
    #[serde(default)]
    pub requests_per_second: Option<u32>,
    /// Jobs of one account running at once (the engine's default when absent).
    #[serde(default)]
    pub concurrent_jobs_per_account: Option<u32>,
    /// The service's quotas in its own units (see the module docs).
    #[serde(default)]
    pub budgets: Vec<Budget>,
}

/// Whom a budget's quota applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BudgetScope {
    /// Each linked account has its own quota (Gmail's per-user limit).
    Account,
    /// One quota for the whole deployment (Gmail's per-project limit).
    Project,
}

/// One quota of a service: at most `capacity` units per `window_seconds` per key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Budget {
    /// Unique among the integration's budgets (`perUser`).
    pub name: String,
    /// Per account or per project.
    pub scope: BudgetScope,
    /// The length of the service's window, in seconds.
    pub window_seconds: u64,
    /// The units the service allows per key within any window.
    pub capacity: u64,
    /// Units per request class.
    #[serde(default)]
    pub costs: std::collections::BTreeMap<String, u64>,
    /// Units of a request whose class is not in `costs`; 0: such requests are not
    /// charged to this budget.
    #[serde(default = "one")]
    pub default_cost: u64,
    /// Whether each request class has its own quota under this budget (a per-method
    /// limit) rather than all classes sharing one.
    #[serde(default)]
    pub per_class: bool,
}

fn one() -> u64 {
    1
}

impl Budget {
    /// The units a request of `class` costs.
    pub fn cost(&self, class: &str) -> u64 {
        self.costs.get(class).copied().unwrap_or(self.default_cost)
    }

    /// The most units one request costs.
    pub fn max_cost(&self) -> u64 {
        self.costs
            .values()
            .copied()
            .chain([self.default_cost])
            .max()
            .unwrap_or(self.default_cost)
    }

    /// The bucket's size: a twentieth of the capacity, or the largest cost if more.
    pub fn burst(&self) -> u64 {
        (self.capacity / 20).max(self.max_cost())
    }

    /// The units the bucket refills over one window: the capacity less the burst and
    /// a fiftieth held back for the difference between when a request leaves and when
    /// the service counts it. So the units sent within any window (at most the burst
    /// plus one window of refill) stay under the capacity, and the long-run rate is
    /// 93 % of it for small costs.
    ///
    /// A quota too small for that margin (one request a minute, where the burst is the
    /// whole capacity) refills 0.9 units a window instead: less than one unit comes
    /// back within any window, so the bound still holds.
    pub fn refill_per_window(&self) -> f64 {
        let refill = self
            .capacity
            .saturating_sub(self.burst())
            .saturating_sub(self.capacity / 50);
        if refill >= 1 { refill as f64 } else { 0.9 }
    }

    /// [`Budget::refill_per_window`] per second.
    pub fn refill_per_second(&self) -> f64 {
        self.refill_per_window() / self.window_seconds as f64
    }

    fn validate(&self, at: &str, earlier: &[Budget]) -> Result<(), (String, String)> {
        if self.name.trim().is_empty() {
            return Err((format!("{at}.name"), "must not be empty".into()));
        }
        if earlier.iter().any(|b| b.name == self.name) {
            return Err((
                format!("{at}.name"),
                format!("`{}` is listed twice", self.name),
            ));
        }
        if self.default_cost == 0 && self.costs.is_empty() {
            return Err((
                format!("{at}.defaultCost"),
                "is 0 and no class has a cost: the budget would charge nothing".into(),
            ));
        }
        for (field, value) in [
            ("windowSeconds", self.window_seconds),
            ("capacity", self.capacity),
        ] {
            if value == 0 {
                return Err((format!("{at}.{field}"), "must be at least 1".into()));
            }
        }
        let costs = self
            .costs
            .iter()
            .map(|(class, &cost)| (format!("{at}.costs.{class}"), cost))
            .chain([(format!("{at}.defaultCost"), self.default_cost)]);
        for (field, cost) in costs {
            if cost == 0 && !field.ends_with(".defaultCost") {
                return Err((field, "must be at least 1".into()));
            }
            if cost > self.capacity {
                return Err((
                    field,
                    format!(
                        "{cost} units is more than the capacity ({}): such a request could never be sent",
                        self.capacity
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A manifest that could not be loaded, naming the file and the field at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid manifest {file}: field `{field}`: {problem}")]
pub struct ManifestError {
    /// The manifest's path (as given by the integration).
    pub file: String,
    /// The field at fault (`taskTypes[0]`, or `(document)` for a syntax error).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl Manifest {
    /// Parses and validates manifest text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Manifest, ManifestError> {
        let err = |field: &str, problem: String| ManifestError {
            file: file.to_owned(),
            field: field.to_owned(),
            problem,
        };
        let manifest: Manifest = serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            // serde names the field in its message ("missing field `domain`").
            let field = message
                .split('`')
                .nth(1)
                .filter(|_| message.contains("field"))
                .unwrap_or("(document)");
            err(field, message.clone())
        })?;
        manifest
            .validate()
            .map_err(|(field, problem)| err(&field, problem))?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let valid_domain = !self.domain.is_empty()
            && self
                .domain
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_domain {
            return Err((
                "domain".into(),
                format!(
                    "`{}` must be non-empty lowercase letters, digits, `-` or `_`",
                    self.domain
                ),
            ));
        }
        if self.name.trim().is_empty() {
            return Err(("name".into(), "must not be empty".into()));
        }
        if self.version.trim().is_empty() {
            return Err(("version".into(), "must not be empty".into()));
        }
        match self.task_types.first() {
            Some(first) if first == "start" => {}
            Some(first) => {
                return Err((
                    "taskTypes[0]".into(),
                    format!("the first task type must be `start`, found `{first}`"),
                ));
            }
            None => {
                return Err((
                    "taskTypes".into(),
                    "must list the task types, starting with `start`".into(),
                ));
            }
        }
        for (i, t) in self.task_types.iter().enumerate() {
            if t.trim().is_empty() {
                return Err((format!("taskTypes[{i}]"), "must not be empty".into()));
            }
            if self.task_types[..i].contains(t) {
                return Err((format!("taskTypes[{i}]"), format!("`{t}` is listed twice")));
            }
        }
        for (i, c) in self.credentials.iter().enumerate() {
            if c.name.trim().is_empty() {
                return Err((format!("credentials[{i}].name"), "must not be empty".into()));
            }
            if self.credentials[..i].iter().any(|o| o.name == c.name) {
                return Err((
                    format!("credentials[{i}].name"),
                    format!("`{}` is listed twice", c.name),
                ));
            }
        }
        for (i, f) in self.settings.iter().enumerate() {
            if f.name.trim().is_empty() {
                return Err((format!("settings[{i}].name"), "must not be empty".into()));
            }
            if self.settings[..i].iter().any(|o| o.name == f.name) {
                return Err((
                    format!("settings[{i}].name"),
                    format!("`{}` is listed twice", f.name),
                ));
            }
            if let Some(default) = &f.default {
                f.check(default)
                    .map_err(|problem| (format!("settings[{i}].default"), problem))?;
                if f.required {
                    return Err((
                        format!("settings[{i}].required"),
                        "a setting with a default is not required".into(),
                    ));
                }
            }
        }
        if let Some(oauth) = &self.oauth {
            for (field, url) in [
                ("oauth.authorizationUrl", &oauth.authorization_url),
                ("oauth.tokenUrl", &oauth.token_url),
            ] {
                match url::Url::parse(url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                    _ => {
                        return Err((
                            field.into(),
                            format!("`{url}` is not an absolute http(s) url"),
                        ));
                    }
                }
            }
            let fields = &oauth.credential_fields;
            for name in [
                &fields.client_id,
                &fields.client_secret,
                &fields.refresh_token,
            ] {
                if !self.credentials.iter().any(|c| &c.name == name) {
                    return Err((
                        "oauth.credentialFields".into(),
                        format!("`{name}` is not one of the credential fields"),
                    ));
                }
            }
        }
        if self.limits.requests_per_second == Some(0) {
            return Err((
                "limits.requestsPerSecond".into(),
                "must be at least 1".into(),
            ));
        }
        if self.limits.concurrent_jobs_per_account == Some(0) {
            return Err((
                "limits.concurrentJobsPerAccount".into(),
                "must be at least 1".into(),
            ));
        }
        for (i, budget) in self.limits.budgets.iter().enumerate() {
            budget.validate(&format!("limits.budgets[{i}]"), &self.limits.budgets[..i])?;
        }
        if self.schedule.start_every_seconds == 0 {
            return Err((
                "schedule.startEverySeconds".into(),
                "must be at least 1".into(),
            ));
        }
        match (
            &self.schedule.history_task,
            self.schedule.history_every_seconds,
        ) {
            (Some(task), _) if !self.task_types.contains(task) => {
                return Err((
                    "schedule.historyTask".into(),
                    format!("`{task}` is not one of taskTypes"),
                ));
            }
            (Some(_), Some(0)) => {
                return Err((
                    "schedule.historyEverySeconds".into(),
                    "must be at least 1".into(),
                ));
            }
            (None, Some(_)) => {
                return Err((
                    "schedule.historyEverySeconds".into(),
                    "is set but schedule.historyTask is not".into(),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Seconds between history checks, when the integration declares a history task
    /// (default 120).
    pub fn history_every_seconds(&self) -> Option<u64> {
        self.schedule
            .history_task
            .as_ref()
            .map(|_| self.schedule.history_every_seconds.unwrap_or(120))
    }

    /// Whether `task_type` is one of the declared task types.
    pub fn has_task_type(&self, task_type: &str) -> bool {
        self.task_types.iter().any(|t| t == task_type)
    }

    /// The setting field `name`, if declared.
    pub fn setting(&self, name: &str) -> Option<&SettingField> {
        self.settings.iter().find(|f| f.name == name)
    }

    /// The names of the secret credential fields.
    pub fn secret_fields(&self) -> impl Iterator<Item = &str> {
        self.credentials
            .iter()
            .filter(|c| c.secret)
            .map(|c| c.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
        "domain": "example", "name": "Example", "version": "1.0.0",
        "taskTypes": ["start", "list", "fetch"],
        "credentials": [{"name": "token", "secret": true}],
        "schedule": {"startEverySeconds": 30, "historyTask": "list"}
    }"#;

    #[test]
    fn parses_a_good_manifest_with_defaults() {
        let m = Manifest::parse("example/manifest.json", GOOD).unwrap();
        assert_eq!(m.domain, "example");
        assert_eq!(m.schedule.start_every_seconds, 30);
        assert_eq!(m.history_every_seconds(), Some(120));
        assert!(m.credentials[0].required);
        assert_eq!(m.secret_fields().collect::<Vec<_>>(), vec!["token"]);
    }

    fn error_of(text: &str) -> ManifestError {
        Manifest::parse("integrations/x/manifest.json", text).unwrap_err()
    }

    #[test]
    fn start_must_come_first() {
        let e = error_of(&GOOD.replace(r#"["start", "list", "fetch"]"#, r#"["list", "start"]"#));
        assert_eq!(e.field, "taskTypes[0]");
        let text = e.to_string();
        assert!(text.contains("integrations/x/manifest.json"), "{text}");
        assert!(text.contains("taskTypes[0]"), "{text}");
    }

    #[test]
    fn missing_field_is_named() {
        let e = error_of(r#"{"name": "X", "version": "1", "taskTypes": ["start"]}"#);
        assert_eq!(e.field, "domain", "{e}");
    }

    #[test]
    fn unknown_field_is_named() {
        let e = error_of(&GOOD.replace("\"author\"", "\"x\"").replace(
            "\"version\": \"1.0.0\",",
            "\"version\": \"1.0.0\", \"tasktypes\": [],",
        ));
        assert_eq!(e.field, "tasktypes", "{e}");
    }

    #[test]
    fn wrong_type_names_document_position() {
        let e = error_of(&GOOD.replace(
            r#""taskTypes": ["start", "list", "fetch"]"#,
            r#""taskTypes": "start""#,
        ));
        assert!(e.to_string().contains("manifest.json"), "{e}");
    }

    #[test]
    fn history_task_must_be_declared() {
        let e = error_of(&GOOD.replace(r#""historyTask": "list""#, r#""historyTask": "nope""#));
        assert_eq!(e.field, "schedule.historyTask");
    }

    #[test]
    fn bad_domain_rejected() {
        let e = error_of(&GOOD.replace(r#""domain": "example""#, r#""domain": "Ex ample""#));
        assert_eq!(e.field, "domain");
    }

    fn with_budgets(budgets: &str) -> String {
        GOOD.replace(
            r#""schedule":"#,
            &format!(r#""limits": {{"budgets": {budgets}}}, "schedule":"#),
        )
    }

    const PER_USER: &str = r#"{"name": "perUser", "scope": "account", "windowSeconds": 60,
        "capacity": 15000, "costs": {"users.messages.get": 5, "users.history.list": 2}}"#;

    #[test]
    fn budgets_parse_with_costs_and_bucket() {
        let m = Manifest::parse("x", &with_budgets(&format!("[{PER_USER}]"))).unwrap();
        let b = &m.limits.budgets[0];
        assert_eq!(b.scope, BudgetScope::Account);
        assert_eq!(b.cost("users.messages.get"), 5);
        assert_eq!(b.cost("users.history.list"), 2);
        assert_eq!(b.cost("anything else"), 1);
        assert_eq!(b.burst(), 750);
        assert_eq!(b.refill_per_window(), (15000 - 750 - 300) as f64);
        assert!(b.burst() as f64 + b.refill_per_window() <= b.capacity as f64);
        assert!(b.refill_per_window() >= 0.9 * b.capacity as f64);
        assert!(!b.per_class);
    }

    #[test]
    fn per_method_budgets_charge_only_their_classes_and_tiny_ones_still_refill() {
        let tier = r#"{"name": "tier1", "scope": "account", "windowSeconds": 60,
            "capacity": 1, "perClass": true, "defaultCost": 0,
            "costs": {"conversations.history": 1}}"#;
        let m = Manifest::parse("x", &with_budgets(&format!("[{tier}]"))).unwrap();
        let b = &m.limits.budgets[0];
        assert!(b.per_class);
        assert_eq!(b.cost("conversations.history"), 1);
        assert_eq!(b.cost("users.list"), 0);
        assert_eq!(b.burst(), 1);
        // Less than a unit comes back within a window: still one request per window.
        assert!(b.refill_per_window() < 1.0 && b.refill_per_window() > 0.0);
        let empty = tier.replace(r#""conversations.history": 1"#, "");
        let e = error_of(&with_budgets(&format!("[{empty}]")));
        assert_eq!(e.field, "limits.budgets[0].defaultCost");
    }

    #[test]
    fn budget_mistakes_are_named() {
        let twice = with_budgets(&format!("[{PER_USER}, {PER_USER}]"));
        assert_eq!(error_of(&twice).field, "limits.budgets[1].name");
        let zero = with_budgets(&format!("[{}]", PER_USER.replace("60", "0")));
        assert_eq!(error_of(&zero).field, "limits.budgets[0].windowSeconds");
        let huge = with_budgets(&format!("[{}]", PER_USER.replace(": 5,", ": 20000,")));
        let e = error_of(&huge);
        assert_eq!(e.field, "limits.budgets[0].costs.users.messages.get");
        assert!(e.problem.contains("more than the capacity"), "{e}");
        let free = with_budgets(&format!("[{}]", PER_USER.replace(": 2}", ": 0}")));
        assert_eq!(
            error_of(&free).field,
            "limits.budgets[0].costs.users.history.list"
        );
        let scope = with_budgets(&format!("[{}]", PER_USER.replace("account", "user")));
        assert!(error_of(&scope).problem.contains("unknown variant"));
    }

    #[test]
    fn syntax_error_is_reported() {
        let e = error_of("{ not json");
        assert_eq!(e.field, "(document)");
    }
}
