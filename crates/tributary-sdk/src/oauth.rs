//! The OAuth2 refresh-token grant (RFC 6749 §6) against a configurable token URL.
//!
//! Error responses follow RFC 6749 §5.2: `invalid_grant` (a revoked or expired refresh
//! token) and `invalid_client` mean the user must authorize again, so they are
//! [`IntegrationError::Auth`], never retried; 5xx and network failures are transient.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Deserialize;

use crate::IntegrationError;
use crate::http::HttpClient;

/// What is needed to refresh an access token.
#[derive(Clone)]
pub struct RefreshTokenGrant {
    /// The token endpoint, e.g. `https://oauth2.googleapis.com/token`.
    pub token_url: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: String,
    /// The refresh token.
    pub refresh_token: String,
}

impl std::fmt::Debug for RefreshTokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshTokenGrant")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A fresh access token.
#[derive(Clone, PartialEq)]
pub struct AccessToken {
    /// The bearer token.
    pub access_token: String,
    /// When it expires (with a safety margin already subtracted), if the server said.
    pub expires_at: Option<DateTime<Utc>>,
    /// A new refresh token, when the server rotated it: persist it.
    pub rotated_refresh_token: Option<String>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .field("rotated", &self.rotated_refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// Whether the token is still usable at `now`.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl RefreshTokenGrant {
    /// Exchanges the refresh token for an access token.
    pub async fn refresh(&self, http: &HttpClient) -> Result<AccessToken, IntegrationError> {
        let request = http.post(&self.token_url).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", self.refresh_token.as_str()),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
        ]);
        let response = http
            .send(request)
            .await
            .map_err(|e| e.context("failed to refresh oauth2 token"))?;
        if response.status.is_success() {
            let token: TokenResponse = response
                .json()
                .map_err(|e| e.context("failed to refresh oauth2 token"))?;
            let now = Utc::now();
            return Ok(AccessToken {
                access_token: token.access_token,
                // Refresh a minute early so a token never expires mid-request.
                expires_at: token
                    .expires_in
                    .map(|s| now + ChronoDuration::seconds((s - 60).max(0))),
                rotated_refresh_token: token.refresh_token.filter(|t| *t != self.refresh_token),
            });
        }
        if let Ok(body) = serde_json::from_slice::<TokenErrorResponse>(&response.body) {
            let detail = match &body.error_description {
                Some(d) => format!("{}: {d}", body.error),
                None => body.error.clone(),
            };
            let message = format!("token endpoint refused the refresh token ({detail})");
            return Err(match body.error.as_str() {
                "invalid_grant" | "invalid_client" | "unauthorized_client" => {
                    IntegrationError::auth(message)
                }
                "temporarily_unavailable" | "server_error" => IntegrationError::transient(message),
                _ if response.status.is_server_error() => IntegrationError::transient(message),
                _ => IntegrationError::permanent(message),
            });
        }
        Err(response
            .error_for_status()
            .context("failed to refresh oauth2 token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use axum::extract::Form;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use std::collections::HashMap;

    async fn token_endpoint(Form(form): Form<HashMap<String, String>>) -> axum::response::Response {
        if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error": "unsupported_grant_type"})),
            )
                .into_response();
        }
        match form.get("refresh_token").map(String::as_str) {
            Some("good") => axum::Json(serde_json::json!({
                "access_token": "at-1", "expires_in": 3600, "token_type": "Bearer"
            }))
            .into_response(),
            Some("rotate") => axum::Json(serde_json::json!({
                "access_token": "at-2", "expires_in": 3600, "token_type": "Bearer", "refresh_token": "rotated"
            }))
            .into_response(),
            Some("flaky") => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
            _ => (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})),
            )
                .into_response(),
        }
    }

    async fn grant(refresh_token: &str) -> Result<AccessToken, IntegrationError> {
        let app = axum::Router::new().route("/token", axum::routing::post(token_endpoint));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let g = RefreshTokenGrant {
            token_url: format!("http://{addr}/token"),
            client_id: "cid".into(),
            client_secret: "csecret".into(),
            refresh_token: refresh_token.into(),
        };
        g.refresh(&HttpClient::new().unwrap()).await
    }

    #[tokio::test]
    async fn refresh_succeeds_and_reports_rotation() {
        let t = grant("good").await.unwrap();
        assert_eq!(t.access_token, "at-1");
        assert!(t.rotated_refresh_token.is_none());
        assert!(t.is_valid_at(Utc::now()));
        let t = grant("rotate").await.unwrap();
        assert_eq!(t.rotated_refresh_token.as_deref(), Some("rotated"));
    }

    #[tokio::test]
    async fn revoked_token_is_auth_error() {
        let e = grant("revoked").await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Auth);
        assert!(e.message().contains("invalid_grant"));
        assert!(!e.message().contains("revoked\""));
    }

    #[tokio::test]
    async fn server_error_is_transient() {
        assert_eq!(
            grant("flaky").await.unwrap_err().class(),
            ErrorClass::Transient
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let g = RefreshTokenGrant {
            token_url: "u".into(),
            client_id: "cid".into(),
            client_secret: "topsecret".into(),
            refresh_token: "rt-secret".into(),
        };
        let s = format!("{g:?}");
        assert!(!s.contains("topsecret") && !s.contains("rt-secret"));
    }
}
