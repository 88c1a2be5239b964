//! Tributary's application layer: what the CLI and the HTTP API do with accounts,
//! written once. [`App`] holds the store and the integration registry and offers:
//!
//! - [`App::link`]: the credentials checked against the manifest
//!   ([`check_credentials`]), then with the service, then stored;
//! - [`App::pause`], [`App::resume`], [`App::unlink`]: the status rules (see
//!   [`status`]);
//! - [`App::overview`]: every account with its item counts, pending jobs and last
//!   error in one store query, listing accounts whose credentials do not decrypt
//!   instead of failing;
//! - [`App::oauth_start`] / [`App::oauth_finish`]: the OAuth code flow with PKCE from
//!   the manifest, up to the credentials to link (see [`oauth`]).
//!
//! Errors are an [`AppError`] enum, for each front end to render (one line on the
//! CLI's stderr, a status code over HTTP). Nothing here prints, parses arguments or
//! reads files: reading a credentials file, a loopback listener, tables and JSON
//! output belong to the front ends.

mod error;
mod link;
pub mod oauth;
mod overview;
pub mod status;

use std::sync::Arc;

use tributary_sdk::Registry;
use tributary_store::Store;

pub use error::{AppError, CredentialProblem, CredentialsError};
pub use link::check_credentials;
pub use status::{StatusChange, StatusChanged};
pub use tributary_store::{AccountOverview, AccountScope};

/// The application over one store and one registry (cheap to clone).
#[derive(Clone)]
pub struct App {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("backend", &self.store.backend())
            .field("domains", &self.registry.domains().collect::<Vec<_>>())
            .finish()
    }
}

impl App {
    /// The application over `store`, running `registry`'s integrations.
    pub fn new(store: Arc<dyn Store>, registry: Arc<Registry>) -> App {
        App { store, registry }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The integration registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }
}
