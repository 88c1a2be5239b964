//! The Microsoft identity platform (v2.0 endpoints), as far as the Graph integrations
//! use it: where the token endpoint of a tenant is, and what its answers mean.
//!
//! The refresh itself is the SDK's, written once for every OAuth service:
//! [`tributary_sdk::kit::Job::bearer_client`] refreshes through
//! [`tributary_sdk::oauth::RefreshTokenGrant`] (a form `POST` of
//! `grant_type=refresh_token`, `refresh_token`, `client_id` and `client_secret`),
//! retries a refused access token once, shares tokens between the account's jobs and
//! persists what it refreshed. That covers the identity platform:
//!
//! - **Rotation.** Every refresh answers a new refresh token, which must replace the
//!   old one. The bearer session saves it at once through the engine's credential
//!   sink when there is one, and in any case with the job's commit (or with
//!   `credentials_after_failure` when the job fails), as for Slack.
//! - **Errors** `{error, error_description, error_codes[], timestamp, trace_id,
//!   correlation_id}`: the SDK reads `error` (and prints the description, whose
//!   `AADSTS` number names the cause):
//!
//! | `error` | class |
//! |---|---|
//! | `invalid_grant` (`AADSTS70008` expired, `AADSTS50173` revoked, `AADSTS700082` inactive, `AADSTS65001` consent missing) | auth: the user must sign in again |
//! | `invalid_client`, `unauthorized_client` | auth: the app registration's credentials are wrong |
//! | `temporarily_unavailable`, `server_error`, any 5xx | transient |
//! | anything else (`invalid_request`, `invalid_scope`...) | permanent |
//!
//! - **Scope.** The refresh sends no `scope`: the identity platform documents it as
//!   optional and, without it, issues a token for the scopes the user consented to
//!   (Graph's, for an app that asked for Graph scopes only). Asking for them again on
//!   every refresh would turn a grant narrowed by an administrator into a refusal.

use tributary_sdk::IntegrationError;

/// Where the identity platform lives.
pub const LOGIN_ORIGIN: &str = "https://login.microsoftonline.com";

/// The tenant a multi-tenant app signs users in with: work, school and personal
/// Microsoft accounts.
pub const DEFAULT_TENANT: &str = "common";

/// The longest tenant accepted (a DNS name at most).
const MAX_TENANT_CHARS: usize = 253;

/// The token endpoint of `tenant`: `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
/// `tenant` is `common`, `organizations`, `consumers`, a tenant id (a GUID) or a
/// verified domain (`contoso.onmicrosoft.com`); anything else is a permanent error (it
/// goes into the URL's path).
pub fn token_url(tenant: &str) -> Result<String, IntegrationError> {
    endpoint(tenant, "token")
}

/// The authorize endpoint of `tenant` (see [`token_url`]), where a user consents.
pub fn authorize_url(tenant: &str) -> Result<String, IntegrationError> {
    endpoint(tenant, "authorize")
}

fn endpoint(tenant: &str, name: &str) -> Result<String, IntegrationError> {
    check_tenant(tenant)?;
    Ok(format!("{LOGIN_ORIGIN}/{tenant}/oauth2/v2.0/{name}"))
}

/// Refuses a tenant that is not a plain name: letters, digits, `-`, `_` and `.`.
pub(crate) fn check_tenant(tenant: &str) -> Result<(), IntegrationError> {
    let plain = !tenant.is_empty()
        && tenant.len() <= MAX_TENANT_CHARS
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !tenant.starts_with('.');
    if plain {
        Ok(())
    } else {
        Err(IntegrationError::permanent(format!(
            "invalid microsoft graph tenant `{}`: expected common, organizations, consumers, a tenant id or a domain",
            tenant.chars().take(80).collect::<String>()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_url_comes_from_the_tenant() {
        assert_eq!(
            token_url(DEFAULT_TENANT).unwrap(),
            "https://login.microsoftonline.com/common/oauth2/v2.0/token"
        );
        assert_eq!(
            token_url("4f6b7e21-3c1d-4a8e-9b2f-5d0c6a7e8f91").unwrap(),
            "https://login.microsoftonline.com/4f6b7e21-3c1d-4a8e-9b2f-5d0c6a7e8f91/oauth2/v2.0/token"
        );
        assert_eq!(
            authorize_url("contoso.onmicrosoft.com").unwrap(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
        );
        for bad in [
            "",
            "a/b",
            "..",
            "common?x=1",
            "évil",
            "a b",
            &"x".repeat(300),
        ] {
            assert!(token_url(bad).is_err(), "{bad}");
        }
    }
}
