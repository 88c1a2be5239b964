//! What every Google integration (Gmail, Google Drive) shares, written once: reading
//! Google's error bodies, and the API base URL a setting gives.
//!
//! # Errors
//! Google explains a failure in its body, `{"error": {"code", "message", "errors":
//! [{"reason", ...}], "status"}}`, and the reason matters more than the status:
//!
//! | response | class |
//! |---|---|
//! | 429, `RESOURCE_EXHAUSTED`, or a 403 whose reason is `rateLimitExceeded`, `userRateLimitExceeded`, `dailyLimitExceeded` or `quotaExceeded` | rate limited, after `Retry-After` when given |
//! | 401 (after the kit's one refresh), any other 403 (missing scope, domain policy) | auth: the user must grant access again |
//! | 408, 5xx | transient |
//! | other 4xx | permanent |
//!
//! A body that is not Google's is classified by its status alone.

use serde::Deserialize;
use tributary_sdk::IntegrationError;
use tributary_sdk::http::{HttpResponse, classify_status};
use url::Url;

/// The 403 reasons that mean "slow down" rather than "forbidden".
pub const RATE_LIMIT_REASONS: [&str; 4] = [
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "dailyLimitExceeded",
    "quotaExceeded",
];

/// Google's error body.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorReason>,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct ErrorReason {
    #[serde(default)]
    reason: String,
}

/// The reasons of a Google error body (`errors[].reason`), empty when the body is not
/// Google's: for callers that treat one reason specially (Drive's
/// `exportSizeLimitExceeded`).
pub fn error_reasons(response: &HttpResponse) -> Vec<String> {
    serde_json::from_slice::<ErrorBody>(&response.body)
        .map(|b| b.error.errors.into_iter().map(|e| e.reason).collect())
        .unwrap_or_default()
}

/// Classifies a non-2xx response by Google's error body (see the crate docs); the
/// kit's bearer client takes it as its error hook.
pub fn classify_error(response: &HttpResponse) -> IntegrationError {
    let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(&response.body) else {
        return response.error_for_status();
    };
    let status = response.status.as_u16();
    let reasons: Vec<&str> = error
        .errors
        .iter()
        .map(|e| e.reason.as_str())
        .filter(|r| !r.is_empty())
        .collect();
    let message = if reasons.is_empty() {
        format!("http {status}: {}", error.message)
    } else {
        format!("http {status} ({}): {}", reasons.join(", "), error.message)
    };
    let rate_limited = status == 429
        || error.status == "RESOURCE_EXHAUSTED"
        || reasons.iter().any(|r| RATE_LIMIT_REASONS.contains(r));
    if rate_limited {
        return IntegrationError::rate_limited(message, response.retry_after());
    }
    match status {
        401 | 403 => IntegrationError::auth(message),
        _ => classify_status(response.status, response.retry_after(), message),
    }
}

/// The base URL of a Google API (a `baseUrl` setting: Google's host in production, a
/// fake's in tests) joined with `prefix` (`gmail/v1/users/me/`), read as a directory:
/// a missing trailing slash is added, so `http://host/prefix` keeps its prefix.
/// `service` names the API in errors, which are permanent.
pub fn api_base(service: &str, base_url: &str, prefix: &str) -> Result<Url, IntegrationError> {
    let invalid = |why: String| {
        IntegrationError::permanent(format!("invalid {service} base url `{base_url}`: {why}"))
    };
    let mut url = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https".into()));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.join(prefix).map_err(|e| invalid(e.to_string()))
}

/// The URL of a method under `base` (from [`api_base`]), with path segments escaped.
pub fn method_url(base: &Url, segments: &[&str], query: &[(&str, &str)]) -> Url {
    let mut url = base.clone();
    // `api_base` accepts only http(s) URLs, which always have path segments.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_sdk::ErrorClass;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status: tributary_sdk::http::StatusCode::from_u16(status).unwrap(),
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn google(status: u16, reason: &str, grpc: &str) -> HttpResponse {
        let body = serde_json::json!({"error": {"code": status, "message": "m",
            "errors": [{"reason": reason, "domain": "global"}], "status": grpc}});
        response(status, &body.to_string())
    }

    #[test]
    fn reasons_decide_over_status() {
        let cases = [
            (
                google(403, "userRateLimitExceeded", "PERMISSION_DENIED"),
                ErrorClass::RateLimited,
            ),
            (
                google(403, "insufficientPermissions", "PERMISSION_DENIED"),
                ErrorClass::Auth,
            ),
            (
                google(429, "rateLimitExceeded", "RESOURCE_EXHAUSTED"),
                ErrorClass::RateLimited,
            ),
            (
                google(401, "authError", "UNAUTHENTICATED"),
                ErrorClass::Auth,
            ),
            (
                google(400, "invalidArgument", "INVALID_ARGUMENT"),
                ErrorClass::Permanent,
            ),
            (
                google(503, "backendError", "UNAVAILABLE"),
                ErrorClass::Transient,
            ),
            (
                response(403, "<html>not google</html>"),
                ErrorClass::Permanent,
            ),
        ];
        for (response, class) in cases {
            let error = classify_error(&response);
            assert_eq!(error.class(), class, "{error}");
        }
        assert_eq!(
            error_reasons(&google(403, "exportSizeLimitExceeded", "")),
            ["exportSizeLimitExceeded"]
        );
    }

    #[test]
    fn base_url_is_a_directory_and_keeps_its_prefix() {
        let base = api_base(
            "gmail",
            "http://127.0.0.1:9000/fake/api",
            "gmail/v1/users/me/",
        );
        assert_eq!(
            method_url(&base.unwrap(), &["messages", "m 1"], &[("format", "full")]).as_str(),
            "http://127.0.0.1:9000/fake/api/gmail/v1/users/me/messages/m%201?format=full"
        );
        for bad in [
            "",
            "gmail.googleapis.com",
            "mailto:me@example.com",
            "ftp://host/",
        ] {
            let error = api_base("gmail", bad, "gmail/v1/").unwrap_err();
            assert_eq!(error.class(), ErrorClass::Permanent, "{bad}");
        }
    }
}
