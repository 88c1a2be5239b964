//! A thin HTTP client for integrations: one shared connection pool, the engine's
//! per-domain rate limit applied to every request, bounded response bodies, and the
//! mapping from HTTP status codes to [`IntegrationError`] classes.
//!
//! | status | class |
//! |---|---|
//! | 401 | auth |
//! | 408, 5xx | transient |
//! | 429 | rate limited, with the `Retry-After` wait when given |
//! | other 4xx | permanent |
//!
//! Services whose error bodies say more (Google's 403 `rateLimitExceeded`) inspect
//! [`HttpResponse`] themselves before falling back to [`HttpResponse::error_for_status`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use reqwest::StatusCode;
pub use reqwest::header::HeaderMap;
use reqwest::header::RETRY_AFTER;
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;

use crate::IntegrationError;

/// The default cap on one response body (larger bodies fail with a clear error rather
/// than exhausting memory).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Waits until one more request to a service may be sent (the engine's rate limits).
#[async_trait::async_trait]
pub trait RequestGate: Send + Sync {
    /// Returns when the next request of kind `class` (a method name such as
    /// `users.messages.get`, or [`DEFAULT_CLASS`]) may go.
    async fn acquire(&self, class: &str);
}

/// The class of a request sent without one ([`HttpClient::send`]).
pub const DEFAULT_CLASS: &str = "request";

/// Installs the process-wide TLS crypto provider (ring). Idempotent; called by
/// [`HttpClient::new`], and by the binary at start-up.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client shared by the integrations of one engine.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    gate: Option<Arc<dyn RequestGate>>,
    max_body_bytes: usize,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("rate_limited", &self.gate.is_some())
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl HttpClient {
    /// A client with sensible timeouts (10 s to connect, 60 s per request) and no rate
    /// limit.
    pub fn new() -> Result<HttpClient, IntegrationError> {
        install_crypto_provider();
        let inner = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .user_agent(concat!("tributary/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                IntegrationError::permanent(format!("failed to build http client: {e}"))
            })?;
        Ok(HttpClient {
            inner,
            gate: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        })
    }

    /// The same client (same pool) with every request passing through `gate` first.
    pub fn with_gate(&self, gate: Arc<dyn RequestGate>) -> HttpClient {
        HttpClient {
            gate: Some(gate),
            ..self.clone()
        }
    }

    /// The same client with a different response size cap.
    pub fn with_max_body_bytes(&self, max_body_bytes: usize) -> HttpClient {
        HttpClient {
            max_body_bytes,
            ..self.clone()
        }
    }

    /// Starts a request.
    pub fn request(&self, method: Method, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.inner.request(method, url)
    }

    /// Starts a GET request.
    pub fn get(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.inner.get(url)
    }

    /// Starts a POST request.
    pub fn post(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.inner.post(url)
    }

    /// Waits for the rate limits' permission to make one call of kind `class`: what
    /// every request sent through this client does first, and what an integration
    /// speaking another protocol (IMAP, FTP, SFTP) calls before each command.
    pub async fn permit(&self, class: &str) {
        if let Some(gate) = &self.gate {
            gate.acquire(class).await;
        }
    }

    /// Sends a request after the rate-limit gate and reads the whole (bounded) body.
    /// Any status is returned as is; a network failure or timeout is transient.
    pub async fn send(&self, request: RequestBuilder) -> Result<HttpResponse, IntegrationError> {
        self.send_as(DEFAULT_CLASS, request).await
    }

    /// [`HttpClient::send`] for a request of kind `class` (see [`HttpClient::permit`]).
    pub async fn send_as(
        &self,
        class: &str,
        request: RequestBuilder,
    ) -> Result<HttpResponse, IntegrationError> {
        self.send_limited(class, request, BodyLimit::Whole).await
    }

    /// [`HttpClient::send_as`], reading the body as `limit` says: whole (up to the
    /// client's cap), or only its first bytes, for content that is kept only up to a
    /// size (the rest is never read or held: the connection is dropped, and
    /// [`HttpResponse::truncated`] says so).
    pub async fn send_limited(
        &self,
        class: &str,
        request: RequestBuilder,
        limit: BodyLimit,
    ) -> Result<HttpResponse, IntegrationError> {
        self.permit(class).await;
        let mut response = request.send().await.map_err(network_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let prefix = match limit {
            BodyLimit::Whole => None,
            BodyLimit::Prefix(bytes) => Some(bytes.min(self.max_body_bytes)),
        };
        if prefix.is_none()
            && let Some(len) = response.content_length()
            && len > self.max_body_bytes as u64
        {
            return Err(too_large(self.max_body_bytes));
        }
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(network_error)? {
            match prefix {
                Some(keep) if body.len() + chunk.len() > keep => {
                    body.extend_from_slice(&chunk[..keep - body.len()]);
                    truncated = true;
                    break;
                }
                None if body.len() + chunk.len() > self.max_body_bytes => {
                    return Err(too_large(self.max_body_bytes));
                }
                _ => body.extend_from_slice(&chunk),
            }
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
            truncated,
        })
    }

    /// Sends a request and fails with the classified error unless the status is 2xx.
    pub async fn send_ok(&self, request: RequestBuilder) -> Result<HttpResponse, IntegrationError> {
        let response = self.send(request).await?;
        if response.status.is_success() {
            Ok(response)
        } else {
            Err(response.error_for_status())
        }
    }

    /// Sends a request and decodes a 2xx JSON body.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, IntegrationError> {
        self.send_ok(request).await?.json()
    }
}

fn network_error(e: reqwest::Error) -> IntegrationError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // reqwest's Display names the URL but never headers or bodies, so no secret leaks.
    IntegrationError::transient(format!("{what}: {e}"))
}

fn too_large(limit: usize) -> IntegrationError {
    IntegrationError::permanent(format!("response body larger than the {limit}-byte limit"))
}

/// How much of a response body [`HttpClient::send_limited`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// The whole body; one larger than the client's cap is an error.
    Whole,
    /// At most this many bytes (and never more than the client's cap); the rest is
    /// left unread.
    Prefix(usize),
}

/// A response with its body read (whole, unless [`HttpResponse::truncated`]).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body bytes.
    pub body: Vec<u8>,
    /// Whether the body went on beyond a [`BodyLimit::Prefix`] and was cut there.
    pub truncated: bool,
}

impl HttpResponse {
    /// Decodes the body as JSON; a body that does not parse is a transient error (a
    /// truncated or garbled response usually comes right on a retry).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, IntegrationError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            IntegrationError::transient(format!(
                "malformed JSON response (status {}): {e}",
                self.status.as_u16()
            ))
        })
    }

    /// The body as text (lossy), for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `Retry-After` wait, if the header is present and valid.
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
    }

    /// The classified error for a non-2xx status (see the module table).
    pub fn error_for_status(&self) -> IntegrationError {
        let mut snippet = self.text();
        if snippet.len() > 300 {
            let cut = (0..=300)
                .rev()
                .find(|&i| snippet.is_char_boundary(i))
                .unwrap_or(0);
            snippet.truncate(cut);
            snippet.push('…');
        }
        let message = format!("http {}: {}", self.status.as_u16(), snippet.trim());
        classify_status(self.status, self.retry_after(), message)
    }
}

/// Maps a status code to an error class (see the module table).
pub fn classify_status(
    status: StatusCode,
    retry_after: Option<Duration>,
    message: String,
) -> IntegrationError {
    match status.as_u16() {
        401 => IntegrationError::auth(message),
        429 => IntegrationError::rate_limited(message, retry_after),
        408 | 500..=599 => IntegrationError::transient(message),
        _ => IntegrationError::permanent(message),
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
/// A date in the past means "now" (zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The deepest JSON nesting a response may have to be decoded: serde_json refuses
/// documents nested deeper than 128 levels (its guard against stack overflows), and
/// a hostile document nested deeper (a MIME tree hundreds of levels deep) is
/// better refused or fetched in a flatter form than failed on.
pub const MAX_JSON_DEPTH: usize = 120;

/// The deepest nesting of objects and arrays in a JSON document, by one pass over its
/// bytes (strings skipped, escapes honoured); malformed input just gives some number.
pub fn json_depth(body: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in body {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth(b"{}"), 1);
        assert_eq!(json_depth(br#"{"a": [1, {"b": "[[[{{{"}], "c": "\"{"}"#), 3);
        assert_eq!(json_depth(b"not json"), 0);
        let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
        assert_eq!(json_depth(deep.as_bytes()), 500);
    }
    use crate::ErrorClass;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn statuses_map_to_classes() {
        let c =
            |s: u16| classify_status(StatusCode::from_u16(s).unwrap(), None, "m".into()).class();
        assert_eq!(c(401), ErrorClass::Auth);
        assert_eq!(c(429), ErrorClass::RateLimited);
        assert_eq!(c(500), ErrorClass::Transient);
        assert_eq!(c(503), ErrorClass::Transient);
        assert_eq!(c(408), ErrorClass::Transient);
        assert_eq!(c(400), ErrorClass::Permanent);
        assert_eq!(c(404), ErrorClass::Permanent);
    }

    async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    /// A prefix read stops after the bytes it keeps: the server's endless body is never
    /// read whole (the test would not end if it were), and the cut is reported.
    #[tokio::test]
    async fn a_prefix_read_stops_early_and_says_so() {
        let endless = || async {
            let chunks = futures::stream::repeat_with(|| {
                Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; 64 * 1024]))
            });
            axum::body::Body::from_stream(chunks)
        };
        let app = axum::Router::new()
            .route("/endless", axum::routing::get(endless))
            .route("/short", axum::routing::get(|| async { "hello" }));
        let base = serve(app).await;
        let client = HttpClient::new().unwrap();
        let url = format!("{base}/endless");
        let cut = client
            .send_limited("r", client.get(&url), BodyLimit::Prefix(100_000))
            .await
            .unwrap();
        assert_eq!(cut.body.len(), 100_000);
        assert!(cut.truncated);
        let url = format!("{base}/short");
        for limit in [BodyLimit::Prefix(5), BodyLimit::Prefix(6), BodyLimit::Whole] {
            let whole = client
                .send_limited("r", client.get(&url), limit)
                .await
                .unwrap();
            assert_eq!(
                (whole.body.as_slice(), whole.truncated),
                (&b"hello"[..], false)
            );
        }
        let short = client
            .send_limited("r", client.get(&url), BodyLimit::Prefix(4))
            .await
            .unwrap();
        assert_eq!(
            (short.body.as_slice(), short.truncated),
            (&b"hell"[..], true)
        );
    }

    #[tokio::test]
    async fn client_maps_a_real_429_with_retry_after() {
        use axum::http::HeaderValue;
        use axum::response::IntoResponse;
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|| async {
                let mut r = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("7"));
                r
            }),
        );
        let base = serve(app).await;
        let client = HttpClient::new().unwrap();
        let err = client.send_ok(client.get(&base)).await.unwrap_err();
        match err {
            IntegrationError::RateLimited {
                retry_after,
                message,
            } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
                assert!(message.contains("429"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn oversized_body_is_a_clear_error() {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "x".repeat(5000) }));
        let base = serve(app).await;
        let client = HttpClient::new().unwrap().with_max_body_bytes(1000);
        let err = client.send(client.get(&base)).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(err.message().contains("1000-byte limit"));
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = HttpClient::new().unwrap();
        let err = client
            .send(client.get(format!("http://{addr}/")))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Transient);
    }
}
