//! Linking an account: the credentials are checked against the manifest's credential
//! fields, then with the service (`validate_authentication`), and only then stored.

use std::sync::Arc;

use serde_json::{Map, Value};
use tributary_sdk::http::HttpClient;
use tributary_sdk::integration::NothingExists;
use tributary_sdk::oauth::TokenCache;
use tributary_sdk::{Credentials, IntegrationContext, Manifest};
use tributary_store::{NewUserIntegration, UserIntegration};

use crate::App;
use crate::error::{AppError, CredentialProblem, CredentialsError};

/// Checks credential fields against `manifest`: every field is one the manifest
/// declares and holds a string, and every required field is present and not blank.
/// The error names the field, never a value.
pub fn check_credentials(
    manifest: &Manifest,
    fields: &Map<String, Value>,
) -> Result<(), CredentialsError> {
    let fail = |problem| CredentialsError {
        domain: manifest.domain.clone(),
        problem,
    };
    let known: Vec<&str> = manifest
        .credentials
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    for (key, value) in fields {
        if !known.contains(&key.as_str()) {
            return Err(fail(CredentialProblem::UnknownField {
                field: key.clone(),
                expected: known.iter().map(|&k| k.to_owned()).collect(),
            }));
        }
        if !value.is_string() {
            return Err(fail(CredentialProblem::NotAString { field: key.clone() }));
        }
    }
    for field in manifest.credentials.iter().filter(|f| f.required) {
        match fields.get(&field.name).and_then(Value::as_str) {
            Some(v) if !v.trim().is_empty() => {}
            Some(_) => {
                return Err(fail(CredentialProblem::Empty {
                    field: field.name.clone(),
                }));
            }
            None => {
                return Err(fail(CredentialProblem::Missing {
                    field: field.name.clone(),
                }));
            }
        }
    }
    Ok(())
}

impl App {
    /// Checks `credentials` against the manifest of `domain`, then with the service
    /// (the integration's `initialize` and `validate_authentication`), storing
    /// nothing. Settings are checked by the integration's constructor.
    pub async fn validate(
        &self,
        domain: &str,
        credentials: &Credentials,
        settings: &Map<String, Value>,
    ) -> Result<(), AppError> {
        let registration = self.registry.get(domain)?;
        check_credentials(&registration.manifest, credentials.as_map())?;
        let rejected = |source| AppError::Rejected {
            domain: domain.to_owned(),
            source,
        };
        let context = IntegrationContext {
            user_integration_id: 0,
            credentials: credentials.clone(),
            settings: settings.clone(),
            sync_state: Default::default(),
            content_exists: Arc::new(NothingExists),
            http: HttpClient::new().map_err(rejected)?,
            credential_sink: None,
            tokens: TokenCache::new(),
        };
        let mut integration =
            (registration.construct)(context).map_err(|source| AppError::Invalid {
                domain: domain.to_owned(),
                source,
            })?;
        let result = match integration.initialize().await {
            Ok(()) => integration.validate_authentication().await,
            Err(e) => Err(e),
        };
        integration.shutdown().await;
        result.map_err(rejected)
    }

    /// Links an account of `user_id` at `domain`: the user must exist, the credentials
    /// pass [`App::validate`], then the account is stored `active` (credentials
    /// encrypted) and due for its first sync at once.
    pub async fn link(
        &self,
        user_id: i64,
        domain: &str,
        credentials: Credentials,
        settings: Map<String, Value>,
    ) -> Result<UserIntegration, AppError> {
        self.store
            .get_user(user_id)
            .await
            .map_err(|e| AppError::store(e, || format!("failed to load user {user_id}")))?;
        self.validate(domain, &credentials, &settings).await?;
        self.store
            .create_user_integration(NewUserIntegration {
                user_id,
                integration_domain: domain.to_owned(),
                credentials,
                settings,
            })
            .await
            .map_err(|e| AppError::store(e, || "failed to store the linked account".to_owned()))
    }
}
