//! The integration kit: write an integration as typed Rust, and get the scaffolding
//! every integration needs from here.
//!
//! An integration implements [`TypedIntegration`]: it names its task enum, its
//! settings and its credentials as serde types, builds itself from a [`Job`], and runs
//! one typed task at a time. [`registration`] turns it into a [`Registration`] in one
//! call, after checking its manifest against the task enum (every variant declared,
//! nothing else) and against the settings type (the declared defaults decode).
//!
//! What the kit does so that the integration does not:
//! - decodes the account's settings (the manifest's defaults filled in) and credentials
//!   into the integration's types, with errors naming the field ([`settings`]);
//! - OAuth 2.0: [`Job::bearer_client`] gives an HTTP client that refreshes, retries once
//!   on 401 and shares the access token with the account's other jobs; whatever it
//!   refreshed is persisted with the job's commit, on success and on failure
//!   ([`bearer`]);
//! - the early-stop rule of paged listings ([`listing`]) and the full comparison after
//!   a delta cursor expired ([`delta`]);
//! - for file services, the folder tree kept in the sync state with bounded path walks
//!   ([`folders`]), and which files are text and how a text is cut at a size
//!   ([`text`]);
//! - the rate permit for protocols other than HTTP ([`Job::permit`]).
//!
//! The tutorial (`docs/tutorial.md`) builds an integration with it step by step.

pub mod bearer;
pub mod delta;
pub mod folders;
pub mod listing;
mod probe;
pub mod settings;
pub mod text;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::manifest::Manifest;
use crate::oauth::AccessToken;
use crate::{
    Credentials, Integration, IntegrationContext, IntegrationError, ManifestError, Registration,
    Task, TaskResult, TaskType,
};
use bearer::{
    ACCESS_TOKEN, ACCESS_TOKEN_EXPIRES_AT, BearerClient, OAuthCredentials, REFRESH_TOKEN,
};

pub use probe::task_types;

/// An integration written with the kit (see the module docs).
#[async_trait::async_trait]
pub trait TypedIntegration: Send + Sized + 'static {
    /// The task enum (see [`crate::task`] for its shape).
    type Task: TaskType;
    /// The account's settings; use `#[serde(rename_all = "camelCase",
    /// deny_unknown_fields)]` and no serde defaults (the manifest holds them).
    type Settings: DeserializeOwned + Send;
    /// The account's credentials ([`OAuthCredentials`] for an OAuth service).
    type Credentials: DeserializeOwned + Send;

    /// Builds the job's instance. An error here fails the job (or the link) before any
    /// task runs: invalid settings are permanent errors.
    fn new(job: Job<Self::Settings, Self::Credentials>) -> Result<Self, IntegrationError>;

    /// Checks that the credentials work with one cheap, authenticated call.
    async fn validate_authentication(&mut self) -> Result<(), IntegrationError>;

    /// Runs one task.
    async fn run(&mut self, task: Self::Task) -> Result<TaskResult, IntegrationError>;
}

/// What one job's instance is built from: the engine's context and the account's
/// decoded settings and credentials.
pub struct Job<S, C> {
    /// The engine's context (sync state, `content_exists`, the HTTP client...).
    pub ctx: IntegrationContext,
    /// The account's settings, defaults filled in.
    pub settings: S,
    /// The account's credentials.
    pub credentials: C,
    manifest: Arc<Manifest>,
    refreshed: bearer::RefreshedSlot,
}

impl<S, C> std::fmt::Debug for Job<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("domain", &self.manifest.domain)
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

impl<S, C> Job<S, C> {
    /// An HTTP client authorized by the account's OAuth grant at `token_url` (see
    /// [`bearer`]); what it refreshes is persisted by the kit.
    pub fn bearer_client(&self, token_url: &str, credentials: &OAuthCredentials) -> BearerClient {
        BearerClient::new(
            self.ctx.http.clone(),
            &self.ctx.tokens,
            token_url,
            credentials,
            self.refreshed.clone(),
            &self.manifest.domain,
            self.ctx
                .credential_sink
                .clone()
                .map(|sink| (sink, self.ctx.credentials.clone())),
        )
    }

    /// The manifest's token URL, when it declares an OAuth flow.
    pub fn oauth_token_url(&self) -> Option<&str> {
        self.manifest.oauth.as_ref().map(|o| o.token_url.as_str())
    }

    /// The token URL to refresh at: `setting` (a `tokenUrl` setting, pointing at a fake
    /// in tests) or else the manifest's; an error when there is neither.
    pub fn token_url(&self, setting: Option<&str>) -> Result<String, IntegrationError> {
        setting
            .or(self.oauth_token_url())
            .map(str::to_owned)
            .ok_or_else(|| {
                IntegrationError::permanent(format!(
                    "the {} manifest has no oauth token url and no tokenUrl setting is given",
                    self.manifest.domain
                ))
            })
    }

    /// Waits for the rate limits' permission to make one call of kind `class`: for
    /// integrations that speak another protocol than HTTP (IMAP, FTP, SFTP), before
    /// each command. HTTP requests through the context's client wait by themselves.
    pub async fn permit(&self, class: &str) {
        self.ctx.http.permit(class).await;
    }
}

/// The [`Registration`] of `T`, from its manifest text (`manifest_file` names it in
/// errors). Fails when the manifest does not match the types: a task type without a
/// variant or the other way round, or declared setting defaults `T::Settings` cannot
/// decode.
pub fn registration<T: TypedIntegration>(
    manifest_file: &str,
    manifest_text: &str,
) -> Result<Registration, ManifestError> {
    let manifest = Arc::new(Manifest::parse(manifest_file, manifest_text)?);
    let err = |field: &str, problem: String| ManifestError {
        file: manifest_file.to_owned(),
        field: field.to_owned(),
        problem,
    };
    let Some(variants) = task_types::<T::Task>() else {
        return Err(err(
            "taskTypes",
            "the task type is not an enum tagged with `type` whose names can be checked".into(),
        ));
    };
    let declared: BTreeSet<&str> = manifest.task_types.iter().map(String::as_str).collect();
    let variants: BTreeSet<&str> = variants.iter().copied().collect();
    let missing: Vec<&str> = variants.difference(&declared).copied().collect();
    let extra: Vec<&str> = declared.difference(&variants).copied().collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(err(
            "taskTypes",
            format!(
                "must list exactly the task enum's types; not listed: [{}], not in the enum: [{}]",
                missing.join(", "),
                extra.join(", ")
            ),
        ));
    }
    check_setting_defaults::<T::Settings>(&manifest).map_err(|p| err("settings", p))?;
    let construct_manifest = manifest.clone();
    Ok(Registration {
        manifest: (*manifest).clone(),
        construct: Arc::new(move |ctx| construct::<T>(&construct_manifest, ctx)),
        fake: None,
    })
}

/// The settings an account linked with nothing but the required ones gets must decode:
/// a declared default of the wrong type, or a field the type does not have, is a
/// mistake of the integration, found when it registers.
fn check_setting_defaults<S: DeserializeOwned>(manifest: &Manifest) -> Result<(), String> {
    match settings::decode_settings::<S>(manifest, &serde_json::Map::new()) {
        Ok(_) => Ok(()),
        Err(e) => {
            let message = e.message().to_owned();
            let required_missing = manifest
                .settings
                .iter()
                .filter(|f| f.required)
                .any(|f| message.contains(&format!("missing field `{}`", f.name)));
            if required_missing {
                Ok(())
            } else {
                Err(format!("the declared defaults do not decode: {message}"))
            }
        }
    }
}

fn construct<T: TypedIntegration>(
    manifest: &Arc<Manifest>,
    ctx: IntegrationContext,
) -> Result<Box<dyn Integration>, IntegrationError> {
    let settings = settings::decode_settings::<T::Settings>(manifest, &ctx.settings)?;
    let credentials = settings::decode_credentials::<T::Credentials>(manifest, &ctx.credentials)?;
    let refreshed: bearer::RefreshedSlot = Arc::new(Mutex::new(None));
    let stored = ctx.credentials.clone();
    let inner = T::new(Job {
        ctx,
        settings,
        credentials,
        manifest: manifest.clone(),
        refreshed: refreshed.clone(),
    })?;
    Ok(Box::new(Adapter {
        inner,
        refreshed,
        stored,
    }))
}

/// Runs a [`TypedIntegration`] as an [`Integration`].
struct Adapter<T> {
    inner: T,
    refreshed: bearer::RefreshedSlot,
    /// The credentials the job started from, to which a refresh is applied.
    stored: Credentials,
}

impl<T> Adapter<T> {
    /// The credentials to persist when the job refreshed its access token.
    fn refreshed_credentials(&self) -> Option<Credentials> {
        let token: AccessToken = self
            .refreshed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        Some(with_refresh(&self.stored, &token))
    }
}

/// `stored` with a refreshed token applied: the access token, its expiry, and the
/// rotated refresh token if there is one.
fn with_refresh(stored: &Credentials, token: &AccessToken) -> Credentials {
    let mut credentials = stored.clone();
    credentials.set(ACCESS_TOKEN, token.access_token.clone());
    match token.expires_at {
        Some(at) => credentials.set(ACCESS_TOKEN_EXPIRES_AT, at.to_rfc3339()),
        None => credentials.remove(ACCESS_TOKEN_EXPIRES_AT),
    }
    if let Some(rotated) = &token.rotated_refresh_token {
        credentials.set(REFRESH_TOKEN, Value::String(rotated.clone()));
    }
    credentials
}

#[async_trait::async_trait]
impl<T: TypedIntegration> Integration for Adapter<T> {
    async fn validate_authentication(&mut self) -> Result<(), IntegrationError> {
        self.inner.validate_authentication().await
    }

    async fn run_task(&mut self, task: &Task) -> Result<TaskResult, IntegrationError> {
        let typed = task.decode::<T::Task>()?;
        let mut result = self.inner.run(typed).await?;
        if result.credentials.is_none() {
            result.credentials = self.refreshed_credentials();
        }
        Ok(result)
    }

    fn credentials_after_failure(&self) -> Option<Credentials> {
        self.refreshed_credentials()
    }
}
