//! The integration SDK: everything an integration author needs, and nothing else.
//!
//! An integration is a plugin for one external service (Gmail, Slack, an FTP server...).
//! It turns *tasks* (`{type, payload}`) into *outputs* (content items to store) and
//! *child tasks* (more work: the next page, one download per new item). The engine owns
//! the queue, the database and the retries; the integration only talks to its service.
//!
//! Module map:
//! - [`integration`]: the [`Integration`] trait and the per-job [`IntegrationContext`].
//! - [`task`]: [`Task`], the stored `{type, payload}` form, and [`TaskType`], the typed form.
//! - [`output`]: [`Output`], an item, a deletion or a failure.
//! - [`result`]: [`TaskResult`], everything one task run produces.
//! - [`error`]: [`IntegrationError`], whose variant tells the engine what to do next.
//! - [`credentials`]: [`Credentials`], a secret-redacting map of credential fields.
//! - [`manifest`]: `manifest.json` parsing and validation.
//! - [`registry`]: [`Registration`] and [`Registry`], the list of known integrations.
//! - [`fake`]: [`Fake`], an integration's stand-in service, attached to its registration.
//! - [`http`]: a thin HTTP client that maps status codes to error classes.
//! - [`oauth`]: the OAuth2 refresh-token grant and the access tokens jobs share.
//! - [`kit`]: typed integrations: settings, credentials, OAuth, listings, deltas,
//!   registration checked against the manifest.
//!
//! Integrations depend on this crate only, never on the store, the engine or the CLI.

pub mod credentials;
pub mod error;
pub mod fake;
pub mod http;
pub mod integration;
pub mod kit;
pub mod manifest;
pub mod oauth;
pub mod output;
pub mod registry;
pub mod result;
pub mod task;

pub use async_trait::async_trait;
pub use credentials::Credentials;
pub use error::{ErrorClass, IntegrationError};
pub use fake::{Fake, FakeLink, FakeOptions, FakeTruth, RunningFake};
pub use integration::{ContentExists, CredentialSink, Integration, IntegrationContext, ItemRef};
pub use kit::{Job, TypedIntegration};
pub use manifest::{Budget, BudgetScope, Limits, Manifest, ManifestError};
pub use output::Output;
pub use registry::{NoFake, Registration, Registry, UnknownDomain};
pub use result::TaskResult;
pub use task::{Task, TaskType};

/// Re-exported so integrations use the same JSON and time types as the engine.
pub use chrono;
pub use serde_json;

/// Number of consecutive list pages with nothing new after which a list task stops
/// paginating (the early-stop rule every list task follows).
pub const MAX_EMPTY_PAGES: u32 = 3;

/// The highest (numerically largest) priority a job can have; deeper generations stay here.
pub const LOWEST_PRIORITY: i16 = 10;

/// The priority of `start` and history-check jobs: they run before everything else.
pub const HIGHEST_PRIORITY: i16 = 1;
