//! Google's JSON error body, as every Google REST API returns it:
//!
//! ```json
//! {"error": {"code": 404, "message": "...", "status": "NOT_FOUND",
//!            "errors": [{"message": "...", "domain": "global", "reason": "notFound"}]}}
//! ```
//!
//! `code` repeats the HTTP status, `status` is the canonical gRPC status name for it,
//! and each item of `errors` carries the legacy `domain` and `reason` that clients
//! switch on (`rateLimitExceeded`, `userRateLimitExceeded`, `backendError`,
//! `authError`, ...). A 401 also names where the credential was expected
//! (`location`/`locationType`), and a 429 carries a `Retry-After` header.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One API error, rendered as Google's error body.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    domain: &'static str,
    reason: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
    location: Option<(&'static str, &'static str)>,
}

impl ApiError {
    /// An error with its status, `domain`, `reason` and message.
    pub fn new(
        status: StatusCode,
        domain: &'static str,
        reason: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            domain,
            reason,
            message: message.into(),
            retry_after_secs: None,
            location: None,
        }
    }

    /// 400 with reason `invalidArgument`: a bad parameter or body.
    pub fn invalid_argument(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "global",
            "invalidArgument",
            message,
        )
    }

    /// 400 with reason `badRequest`: a request the API cannot process at all.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "global", "badRequest", message)
    }

    /// 400 for a parameter that is required and missing.
    pub fn missing_parameter(name: &'static str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "global",
            "required",
            format!("required parameter is missing: {name}"),
        )
        .at(name, "parameter")
    }

    /// 401: no access token, or one that is unknown, expired or revoked.
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "global", "authError", message)
            .at("Authorization", "header")
    }

    /// 403 for a mailbox other than the authenticated user's.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "global", "forbidden", message)
    }

    /// 404 with reason `notFound`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "global", "notFound", message)
    }

    /// 405 for a known path with an unsupported HTTP method.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "global",
            "httpMethodNotAllowed",
            "http method not allowed on this resource",
        )
    }

    /// 413 for an upload over the size limit.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "global",
            "uploadTooLarge",
            format!("request body is larger than the {limit} byte limit"),
        )
    }

    /// 429 with reason `rateLimitExceeded` and a `Retry-After` of `secs`.
    pub fn rate_limited(secs: u64) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "usageLimits",
            "rateLimitExceeded",
            "rate limit exceeded for this user",
        );
        error.retry_after_secs = Some(secs);
        error
    }

    /// 403 with reason `userRateLimitExceeded`, the other way Gmail reports quota.
    pub fn user_rate_limited(secs: u64) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::FORBIDDEN,
            "usageLimits",
            "userRateLimitExceeded",
            "user rate limit exceeded",
        );
        error.retry_after_secs = Some(secs);
        error
    }

    /// 403 `userRateLimitExceeded` for the per-user quota, as Gmail words it (no
    /// `Retry-After`: Google's guide says to back off exponentially).
    pub fn user_quota_exceeded() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "usageLimits",
            "userRateLimitExceeded",
            "User Rate Limit Exceeded",
        )
    }

    /// 500 with reason `backendError`.
    pub fn backend_error() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "global",
            "backendError",
            "backend error",
        )
    }

    /// 503 with reason `backendError`.
    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "global",
            "backendError",
            "the service is currently unavailable",
        )
    }

    /// Names where the rejected credential or parameter was expected (`location`, `locationType`).
    pub fn at(mut self, location: &'static str, location_type: &'static str) -> ApiError {
        self.location = Some((location, location_type));
        self
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut item = json!({
            "message": self.message,
            "domain": self.domain,
            "reason": self.reason,
        });
        if let Some((location, location_type)) = self.location {
            item["location"] = json!(location);
            item["locationType"] = json!(location_type);
        }
        json!({
            "error": {
                "code": self.status.as_u16(),
                "message": self.message,
                "errors": [item],
                "status": canonical_status(self.status),
            }
        })
    }
}

/// The canonical (gRPC) status name Google puts in `error.status`.
fn canonical_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 | 413 => "FAILED_PRECONDITION",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=UTF-8"),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
                ),
            );
        }
        response
    }
}
