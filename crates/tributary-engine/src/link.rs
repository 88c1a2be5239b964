//! Linking an account: the credentials are checked with the integration's
//! `validate_authentication` before anything is stored.

use std::sync::Arc;

use serde_json::{Map, Value};
use tributary_sdk::http::HttpClient;
use tributary_sdk::integration::NothingExists;
use tributary_sdk::oauth::TokenCache;
use tributary_sdk::{Credentials, IntegrationContext, IntegrationError, Registry, UnknownDomain};
use tributary_store::{NewUserIntegration, Store, StoreError, UserIntegration};

/// Why linking failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No such integration.
    #[error(transparent)]
    UnknownDomain(#[from] UnknownDomain),
    /// A required credential field is missing.
    #[error("credentials for `{domain}` lack the required field `{field}`")]
    MissingCredential {
        /// The integration.
        domain: String,
        /// The missing field.
        field: String,
    },
    /// The service refused the credentials, or could not be reached to check them.
    #[error("credentials for `{domain}` were not accepted: {source}")]
    Rejected {
        /// The integration.
        domain: String,
        /// What the integration reported.
        source: IntegrationError,
    },
    /// Storing failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks credentials against the service without storing anything.
pub async fn validate_credentials(
    registry: &Registry,
    domain: &str,
    credentials: &Credentials,
    settings: &Map<String, Value>,
) -> Result<(), LinkError> {
    let registration = registry.get(domain)?;
    for field in registration
        .manifest
        .credentials
        .iter()
        .filter(|f| f.required)
    {
        if credentials.get(&field.name).is_none_or(str::is_empty) {
            return Err(LinkError::MissingCredential {
                domain: domain.to_owned(),
                field: field.name.clone(),
            });
        }
    }
    let rejected = |source| LinkError::Rejected {
        domain: domain.to_owned(),
        source,
    };
    let context = IntegrationContext {
        user_integration_id: 0,
        credentials: credentials.clone(),
        settings: settings.clone(),
        sync_state: Map::new(),
        content_exists: Arc::new(NothingExists),
        http: HttpClient::new().map_err(rejected)?,
        tokens: TokenCache::new(),
    };
    let mut integration = (registration.construct)(context).map_err(rejected)?;
    let result = match integration.initialize().await {
        Ok(()) => integration.validate_authentication().await,
        Err(e) => Err(e),
    };
    integration.shutdown().await;
    result.map_err(rejected)
}

/// Validates the credentials, then stores the linked account (active, encrypted).
pub async fn link_account(
    store: &dyn Store,
    registry: &Registry,
    user_id: i64,
    domain: &str,
    credentials: Credentials,
    settings: Map<String, Value>,
) -> Result<UserIntegration, LinkError> {
    store.get_user(user_id).await?;
    validate_credentials(registry, domain, &credentials, &settings).await?;
    Ok(store
        .create_user_integration(NewUserIntegration {
            user_id,
            integration_domain: domain.to_owned(),
            credentials,
            settings,
        })
        .await?)
}
