//! Graph's error envelope, as every Microsoft Graph v1.0 endpoint answers a failure:
//!
//! ```json
//! {"error": {"code": "ErrorItemNotFound", "message": "...",
//!            "innerError": {"date": "2026-01-05T10:00:00", "request-id": "…",
//!                           "client-request-id": "…"}}}
//! ```
//!
//! Clients branch on `code` (never on `message`). `request-id` is the id the fake gave
//! the request (also sent as the `request-id` header); `client-request-id` echoes the
//! request's `client-request-id` header, or repeats `request-id` when there was none,
//! as Graph does. A 429 or 503 may carry `Retry-After` (seconds), a 410 from a delta
//! function a `Location` with a fresh initial delta URL (and, from a drive, an
//! `innerError.code` saying how to resync), and a 401 a `WWW-Authenticate: Bearer`
//! challenge.
//!
//! A handler returns a [`GraphError`]; its response carries the error itself as an
//! extension, and the request pipeline ([`crate::pipeline`]) renders the body again
//! with the request's own ids. Served outside the pipeline, the body gets fresh ids.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One Graph API error, rendered as Graph's error envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    status: StatusCode,
    code: String,
    message: String,
    retry_after_secs: Option<u64>,
    location: Option<String>,
    inner_code: Option<String>,
}

impl GraphError {
    /// An error with its HTTP status, Graph `code` and message.
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code: code.into(),
            message: message.into(),
            retry_after_secs: None,
            location: None,
            inner_code: None,
        }
    }

    /// 400 `BadRequest`: a request Graph cannot parse (an unknown segment, a bad
    /// parameter value).
    pub fn bad_request(message: impl Into<String>) -> GraphError {
        GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 400 `BadRequest` for a path whose parameters do not parse.
    pub fn invalid_path() -> GraphError {
        GraphError::bad_request("The request path is not valid.")
    }

    /// 400 `RequestBroker--ParseUri`: a query option naming a property the type does
    /// not have (`$select=nope`).
    pub fn unknown_property(property: &str, type_name: &str) -> GraphError {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "RequestBroker--ParseUri",
            format!("Could not find a property named '{property}' on type '{type_name}'."),
        )
    }

    /// 401 `InvalidAuthenticationToken`: no bearer token, or one that is unknown,
    /// expired or revoked.
    pub fn invalid_authentication_token(message: impl Into<String>) -> GraphError {
        GraphError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    }

    /// 403 `ErrorAccessDenied`: the token lacks every scope the request takes.
    pub fn access_denied() -> GraphError {
        GraphError::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )
    }

    /// 404 with this code (`ErrorItemNotFound` for Outlook items, `itemNotFound` for
    /// drive items).
    pub fn not_found(code: impl Into<String>, message: impl Into<String>) -> GraphError {
        GraphError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 405 for a known path with a method it does not serve.
    pub fn method_not_allowed() -> GraphError {
        GraphError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadRequest",
            "The HTTP method is not supported on this resource.",
        )
    }

    /// 410 `Gone` from a delta function whose token the service no longer knows, with
    /// `code` (`syncStateNotFound`, `resyncRequired`) and `Location`: a fresh initial
    /// delta URL.
    pub fn gone(code: impl Into<String>, message: impl Into<String>, location: String) -> Self {
        GraphError::new(StatusCode::GONE, code, message).with_location(location)
    }

    /// 429 with this code and `Retry-After`.
    pub fn throttled(
        code: impl Into<String>,
        message: impl Into<String>,
        retry_after: u64,
    ) -> Self {
        GraphError::new(StatusCode::TOO_MANY_REQUESTS, code, message).with_retry_after(retry_after)
    }

    /// 500 `generalException`.
    pub fn internal() -> GraphError {
        GraphError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "generalException",
            "An internal server error occurred while processing the request.",
        )
    }

    /// 503 `serviceNotAvailable`, with `Retry-After` when given.
    pub fn service_unavailable(retry_after: Option<u64>) -> GraphError {
        let error = GraphError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "serviceNotAvailable",
            "The service is temporarily unavailable. Try again later.",
        );
        match retry_after {
            Some(secs) => error.with_retry_after(secs),
            None => error,
        }
    }

    /// Adds `Retry-After: secs`.
    pub fn with_retry_after(mut self, secs: u64) -> GraphError {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Adds a `Location` header.
    pub fn with_location(mut self, location: String) -> GraphError {
        self.location = Some(location);
        self
    }

    /// Adds `error.innerError.code`: a more precise code under `code` (a drive's 410
    /// `resyncRequired` with `resyncChangesApplyDifferences`).
    pub fn with_inner_code(mut self, code: impl Into<String>) -> GraphError {
        self.inner_code = Some(code.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Graph's `error.code`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Graph's `error.message`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `Retry-After` seconds, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// The envelope, with the request's ids.
    pub fn body(&self, request_id: &str, client_request_id: &str) -> Value {
        let mut body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                }
            }
        });
        if let Some(code) = &self.inner_code {
            body["error"]["innerError"]["code"] = Value::String(code.clone());
        }
        body
    }

    /// The response, with the request's ids in the body.
    pub fn render(&self, request_id: &str, client_request_id: &str) -> Response {
        let body = self.body(request_id, client_request_id).to_string();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(location) = self
            .location
            .as_deref()
            .and_then(|l| HeaderValue::from_str(l).ok())
        {
            headers.insert(header::LOCATION, location);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"\", error=\"invalid_token\""),
            );
        }
        response.extensions_mut().insert(self.clone());
        response
    }
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for GraphError {}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let id = crate::new_guid();
        self.render(&id, &id)
    }
}
