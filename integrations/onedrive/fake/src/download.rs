//! Pre-authenticated download URLs: `GET /download/{token}`, outside the Graph
//! pipeline, as OneDrive's content hosts are.
//!
//! A token is base64url of `key.expires.epoch.mac`: the item's key, when the URL stops
//! working (milliseconds on the download clock: Tokio's clock since the start plus
//! [`crate::OneDriveHandle::advance`]), the download epoch it was minted in
//! ([`crate::OneDriveHandle::expire_download_urls`] starts a new one) and a SHA-256 MAC
//! of those under the drive's secret, so a client cannot make or alter one. The URL
//! serves the item's current bytes while it is a live file.
//!
//! Like the real hosts the URL needs no `Authorization` header and ignores one; the
//! fake counts requests that carried one, so a client's tests can prove it never
//! forwards its bearer token to another host. A refused URL (expired, forgotten,
//! altered) answers [`crate::OneDriveConfig::expired_download_status`] with an
//! `unauthenticated` error body; an item gone since is 404 `itemNotFound`.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tributary_msgraph_fake::GraphError;

use crate::drive::{Item, Key};
use crate::json::encode_segment;
use crate::{Inner, OneDriveHandle};

/// Makes download URLs for one request.
#[derive(Debug, Clone)]
pub(crate) struct Minter {
    /// `http://HOST`.
    base: String,
    secret: [u8; 16],
    expires_ms: u64,
    epoch: u64,
}

fn mac(secret: &[u8; 16], payload: &str) -> String {
    let digest = Sha256::new()
        .chain_update(secret)
        .chain_update(payload.as_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl Minter {
    /// A download URL of `item`.
    pub(crate) fn url(&self, item: &Item) -> String {
        let payload = format!("{}.{}.{}", item.key, self.expires_ms, self.epoch);
        let token = URL_SAFE_NO_PAD.encode(format!("{payload}.{}", mac(&self.secret, &payload)));
        format!("{}/download/{token}", self.base)
    }
}

impl OneDriveHandle {
    /// Milliseconds on the download clock.
    pub(crate) fn download_now_ms(&self, inner: &Inner) -> u64 {
        let elapsed = self.shared.started.elapsed() + inner.advanced;
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    /// The minter of a request whose Graph root is `graph_root` (`http://HOST/v1.0`).
    pub(crate) fn minter(&self, inner: &Inner, graph_root: &str) -> Minter {
        let base = inner.download_base.clone().unwrap_or_else(|| {
            graph_root
                .strip_suffix("/v1.0")
                .unwrap_or(graph_root)
                .to_owned()
        });
        let lifetime = u64::try_from(self.shared.download_lifetime.as_millis()).unwrap_or(u64::MAX);
        Minter {
            base,
            secret: self.shared.secret,
            expires_ms: self.download_now_ms(inner).saturating_add(lifetime),
            epoch: inner.download_epoch,
        }
    }

    /// The item key of a token that is still good, or `None`.
    fn check_token(&self, inner: &Inner, token: &str) -> Option<Key> {
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (payload, signature) = raw.rsplit_once('.')?;
        if mac(&self.shared.secret, payload) != signature {
            return None;
        }
        let mut parts = payload.split('.');
        let key: Key = parts.next()?.parse().ok()?;
        let expires: u64 = parts.next()?.parse().ok()?;
        let epoch: u64 = parts.next()?.parse().ok()?;
        let live = epoch == inner.download_epoch && self.download_now_ms(inner) < expires;
        live.then_some(key)
    }
}

pub(crate) fn router(handle: &OneDriveHandle) -> Router {
    Router::new().route(
        "/download/{token}",
        get(serve_download).with_state(handle.clone()),
    )
}

/// The entity tags of an `If-None-Match` value, without `W/` and quotes. Graph's tags
/// hold commas (`"{GUID},3"`), so the list is split outside quotes only; an unquoted
/// value is taken whole.
fn entity_tags(value: &str) -> Vec<&str> {
    let mut tags = Vec::new();
    let mut rest = value.trim();
    loop {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        if let Some(after) = rest.strip_prefix('*') {
            tags.push("*");
            rest = after;
            continue;
        }
        let tag = rest.strip_prefix("W/").unwrap_or(rest);
        match tag.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => {
                    tags.push(&quoted[..end]);
                    rest = &quoted[end + 1..];
                }
                None => {
                    tags.push(quoted);
                    break;
                }
            },
            None => {
                tags.push(tag.trim());
                break;
            }
        }
    }
    tags
}

/// Whether `If-None-Match` names one of `tags` (or is `*`).
pub(crate) fn none_match(headers: &HeaderMap, tags: &[String]) -> bool {
    let bare = |tag: &str| {
        let tag = tag.trim();
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        tag.trim_matches('"').to_owned()
    };
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(entity_tags)
        .any(|asked| asked == "*" || tags.iter().any(|tag| bare(tag) == asked))
}

/// One byte range of `Range` against a length: `Some(Ok((start, end)))` inclusive,
/// `Some(Err(()))` when unsatisfiable, `None` when the header is absent, malformed or
/// asks several ranges (then the whole content is served).
fn range(headers: &HeaderMap, len: u64) -> Option<Result<(u64, u64), ()>> {
    let value = headers.get(header::RANGE)?.to_str().ok()?.trim();
    let spec = value.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 || len == 0 {
            return Some(Err(()));
        }
        return Some(Ok((len.saturating_sub(suffix), len - 1)));
    }
    let start: u64 = first.parse().ok()?;
    let end: u64 = if last.is_empty() {
        u64::MAX
    } else {
        last.parse().ok()?
    };
    if end < start {
        return None;
    }
    if start >= len {
        return Some(Err(()));
    }
    Some(Ok((start, end.min(len - 1))))
}

fn refused(status: StatusCode, inner_code: &str) -> Response {
    let body = json!({
        "error": {
            "code": "unauthenticated",
            "message": "The download URL is not valid or has expired: ask Graph for a new one.",
            "innerError": {"code": inner_code},
        }
    });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `Content-Disposition` for a file name.
fn disposition(name: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "attachment; filename*=UTF-8''{}",
        encode_segment(name)
    ))
    .ok()
}

async fn serve_download(
    State(handle): State<OneDriveHandle>,
    token: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Response {
    let mut inner = handle.inner();
    inner.counters.download_requests += 1;
    if headers.contains_key(header::AUTHORIZATION) {
        inner.counters.download_requests_with_authorization += 1;
    }
    if let Some(index) = inner.download_faults.iter().position(|(left, _)| *left > 0) {
        let fault = inner.download_faults[index].1.clone();
        inner.download_faults[index].0 -= 1;
        if inner.download_faults[index].0 == 0 {
            inner.download_faults.remove(index);
        }
        return fault.to_error().into_response();
    }
    let key = token
        .ok()
        .and_then(|Path(token)| handle.check_token(&inner, &token));
    let Some(key) = key else {
        inner.counters.expired_downloads += 1;
        return refused(handle.shared.expired_status, "expiredToken");
    };
    let Some(item) = inner.drive.items.get(&key) else {
        return GraphError::not_found("itemNotFound", "The resource could not be found.")
            .into_response();
    };
    let Some(file) = item.file() else {
        return GraphError::not_found(
            "itemNotFound",
            "The specified item does not exist, or does not have content.",
        )
        .into_response();
    };
    let etag = item.etag();
    if none_match(&headers, &[etag.clone(), item.ctag()]) {
        inner.counters.not_modified += 1;
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(value) = HeaderValue::from_str(&etag) {
            response.headers_mut().insert(header::ETAG, value);
        }
        return response;
    }
    let (source, name, len) = (file.body.clone(), item.name.clone(), file.len);
    let range = match range(&headers, len) {
        Some(Err(())) => {
            let mut response = GraphError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "invalidRange",
                "The specified byte range is invalid or unavailable.",
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return response;
        }
        Some(Ok(range)) => Some(range),
        None => None,
    };
    // Generated bodies are made on every read: not while holding the drive.
    drop(inner);
    let bytes = source.bytes();
    let (status, body, content_range) = match range {
        Some((start, end)) => {
            let slice = bytes
                .get(
                    usize::try_from(start).unwrap_or(usize::MAX)
                        ..=usize::try_from(end).unwrap_or(usize::MAX),
                )
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            (
                StatusCode::PARTIAL_CONTENT,
                slice,
                Some(format!("bytes {start}-{end}/{len}")),
            )
        }
        None => (StatusCode::OK, bytes.into_owned(), None),
    };
    let mut inner = handle.inner();
    inner.counters.downloads += 1;
    if status == StatusCode::PARTIAL_CONTENT {
        inner.counters.partial_downloads += 1;
    }
    inner.counters.download_bytes += body.len() as u64;
    drop(inner);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    if let Some(value) = disposition(&name) {
        out.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Some(value) = content_range.and_then(|r| HeaderValue::from_str(&r).ok()) {
        out.insert(header::CONTENT_RANGE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_range(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(range(&with_range("bytes=0-9"), 100), Some(Ok((0, 9))));
        assert_eq!(range(&with_range("bytes=90-"), 100), Some(Ok((90, 99))));
        assert_eq!(range(&with_range("bytes=-10"), 100), Some(Ok((90, 99))));
        assert_eq!(range(&with_range("bytes=50-500"), 100), Some(Ok((50, 99))));
        assert_eq!(range(&with_range("bytes=100-"), 100), Some(Err(())));
        assert_eq!(range(&with_range("bytes=0-1,5-6"), 100), None);
        assert_eq!(range(&with_range("items=0-1"), 100), None);
        assert_eq!(range(&with_range("bytes=9-2"), 100), None);
        assert_eq!(range(&HeaderMap::new(), 100), None);
    }

    #[test]
    fn if_none_match_compares_bare_tags() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("W/\"x\", \"{A},2\""),
        );
        assert!(none_match(&headers, &["\"{A},2\"".to_owned()]));
        assert!(!none_match(&headers, &["\"{A},3\"".to_owned()]));
        assert!(!none_match(&HeaderMap::new(), &["\"{A},2\"".to_owned()]));
        assert_eq!(entity_tags("{A},2"), ["{A},2"]);
        assert_eq!(entity_tags("*"), ["*"]);
        assert_eq!(entity_tags("\"a\",W/\"b,c\""), ["a", "b,c"]);
    }
}
