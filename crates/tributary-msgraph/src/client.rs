//! [`GraphClient`]: the one Microsoft Graph client, over the kit's bearer client.
//!
//! What every request gets:
//! - the account's bearer token, refreshed and retried once on a 401 by the kit;
//! - one `Prefer` header with the preferences that apply, comma-separated:
//!   `IdType="ImmutableId"` on every request of a client that asked for immutable ids
//!   (mail: Graph applies it per request, so a request without it would answer ids of
//!   the other kind), `odata.maxpagesize=N` and `outlook.body-content-type="text"`
//!   when the call asks ([`Prefer`]);
//! - its request class for the engine's rate budgets ([`REQUEST_CLASS`] unless set);
//! - classification of failures ([`crate::error`]).
//!
//! # Where the token goes
//! A target is a path under the base URL or an absolute URL. Absolute URLs (the links
//! of pages, a resync's `Location`) are used as given, but only on the base URL's
//! origin (scheme, host and port): a link elsewhere is refused before anything is
//! sent, so that a hostile or broken answer cannot have the bearer token sent to
//! another host. Links in pages are checked when the page is read, so a stored link is
//! one that was checked.
//!
//! Content downloads ([`GraphClient::get_bytes`]) are different: Graph answers
//! `/content` with a 302 to a pre-authenticated URL on another host. The SDK's HTTP
//! client (reqwest, default redirect policy: up to 10 hops) follows it, and reqwest
//! removes `Authorization` (and cookies) from a redirected request whose scheme, host
//! or port differ from the previous one's; the tests prove the token never reaches the
//! download host. Bodies are read up to the caller's limit and no further. A failure of
//! the download host is classified by its status like any answer; a 401 there (an
//! expired download URL) makes the kit refresh once and ask Graph again, which hands
//! out a fresh URL.

use serde::de::DeserializeOwned;
use tributary_sdk::IntegrationError;
use tributary_sdk::http::{BodyLimit, HttpResponse, MAX_JSON_DEPTH, json_depth};
use tributary_sdk::kit::Job;
use tributary_sdk::kit::bearer::{BearerClient, OAuthCredentials};
use url::Url;

use crate::error::{GraphError, MAX_ERROR_BODY_BYTES, classify, classify_error};
use crate::page::{Page, decode_error, decode_page};
use crate::settings::{GraphSettings, MAX_PAGE_SIZE};

/// The request class of Graph calls for the engine's rate budgets (a manifest's
/// `limits.budgets[].costs` key).
pub const REQUEST_CLASS: &str = "graph";

/// The longest target or link accepted (Graph's skip tokens run to a few kilobytes).
pub const MAX_LINK_CHARS: usize = 16 * 1024;

/// The preferences of one call that the caller chooses (immutable ids are the
/// client's: see [`GraphClient::with_immutable_ids`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prefer {
    /// `odata.maxpagesize`: at most this many items per page (1 to
    /// [`MAX_PAGE_SIZE`]).
    pub max_page_size: Option<u32>,
    /// `outlook.body-content-type="text"`: message bodies as text rather than HTML.
    pub text_body: bool,
}

impl Prefer {
    /// Pages of at most `size` items.
    pub fn page_size(size: u32) -> Prefer {
        Prefer {
            max_page_size: Some(size),
            text_body: false,
        }
    }

    /// The same preferences, asking for text bodies.
    #[must_use]
    pub fn with_text_body(mut self) -> Prefer {
        self.text_body = true;
        self
    }
}

/// The first bytes of a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// The bytes read (at most the limit asked for).
    pub bytes: Vec<u8>,
    /// Whether the content went on beyond them.
    pub truncated: bool,
    /// The `Content-Type` of the answer, if any.
    pub content_type: Option<String>,
}

/// A Graph client for one job (see the module docs).
#[derive(Debug)]
pub struct GraphClient {
    api: BearerClient,
    /// The base URL as a directory (`https://graph.microsoft.com/v1.0/`).
    base: Url,
    immutable_ids: bool,
    class: String,
}

impl GraphClient {
    /// A client for the Graph root of `settings`, authorized by `api` (from
    /// [`Job::bearer_client`] at [`GraphSettings::token_endpoint`]).
    pub fn new(
        api: BearerClient,
        settings: &GraphSettings,
    ) -> Result<GraphClient, IntegrationError> {
        Ok(GraphClient {
            api: api.with_error_hook(classify_error),
            base: settings.base()?,
            immutable_ids: false,
            class: REQUEST_CLASS.to_owned(),
        })
    }

    /// The client of a job: its bearer client for `credentials` at the token endpoint
    /// of `settings`, then [`GraphClient::new`].
    pub fn connect<S, C>(
        job: &Job<S, C>,
        credentials: &OAuthCredentials,
        settings: &GraphSettings,
    ) -> Result<GraphClient, IntegrationError> {
        let token_url = settings.token_endpoint()?;
        GraphClient::new(job.bearer_client(&token_url, credentials), settings)
    }

    /// The same client sending `Prefer: IdType="ImmutableId"` on every request (mail:
    /// ids that survive moves between folders).
    #[must_use]
    pub fn with_immutable_ids(mut self) -> GraphClient {
        self.immutable_ids = true;
        self
    }

    /// The same client charging its requests to `class` in the rate budgets.
    #[must_use]
    pub fn with_request_class(mut self, class: impl Into<String>) -> GraphClient {
        self.class = class.into();
        self
    }

    /// The base URL, as a directory.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `segments` under the base URL, each escaped as one path segment (ids may hold
    /// `/`, `+` or `=`), with `query`: `url(&["me", "messages", id], &[])`.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        // The base is an http(s) URL (checked in `new`), which always has segments.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// The URL of `target` (an absolute URL, or a path under the base URL) with
    /// `query` added; a permanent error when it is not on the base URL's origin.
    pub fn resolve(&self, target: &str, query: &[(&str, &str)]) -> Result<Url, GraphError> {
        resolve_target(&self.base, target, query)
    }

    /// The `Prefer` header value for a call with `prefer`, if any preference applies.
    pub fn prefer_header(&self, prefer: Prefer) -> Option<String> {
        prefer_value(self.immutable_ids, prefer)
    }

    /// GETs `target` with `query` and decodes the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(
        &mut self,
        target: &str,
        query: &[(&str, &str)],
    ) -> Result<T, GraphError> {
        self.get_json_with(target, query, Prefer::default()).await
    }

    /// [`GraphClient::get_json`] with the call's preferences.
    pub async fn get_json_with<T: DeserializeOwned>(
        &mut self,
        target: &str,
        query: &[(&str, &str)],
        prefer: Prefer,
    ) -> Result<T, GraphError> {
        let url = self.resolve(target, query)?;
        let response = self.fetch(&url, prefer, BodyLimit::Whole).await?;
        decode_json(&response).map_err(|e| e.context(describe(&url)))
    }

    /// GETs one page of a collection (see [`crate::page`]): its links resolved
    /// against the request and checked to be on the base URL's origin.
    pub async fn get_page<T: DeserializeOwned>(
        &mut self,
        target: &str,
        query: &[(&str, &str)],
        prefer: Prefer,
    ) -> Result<Page<T>, GraphError> {
        let url = self.resolve(target, query)?;
        let response = self.fetch(&url, prefer, BodyLimit::Whole).await?;
        let mut page: Page<T> = check_depth(&response)
            .and_then(|()| decode_page(&response.body))
            .map_err(|e| e.context(describe(&url)))?;
        page.next_link = self.link(&url, page.next_link.take(), "@odata.nextLink")?;
        page.delta_link = self.link(&url, page.delta_link.take(), "@odata.deltaLink")?;
        Ok(page)
    }

    /// GETs content (`/me/messages/{id}/$value`, `/me/drive/items/{id}/content`),
    /// following redirects to a download host without the bearer token (see the module
    /// docs); at most `max_bytes` of the body are read.
    pub async fn get_bytes(
        &mut self,
        target: &str,
        query: &[(&str, &str)],
        max_bytes: usize,
    ) -> Result<Download, GraphError> {
        let url = self.resolve(target, query)?;
        // Read enough of a failure's body to classify it, even under a tiny limit.
        let read = max_bytes.max(MAX_ERROR_BODY_BYTES);
        let response = self
            .fetch(&url, Prefer::default(), BodyLimit::Prefix(read))
            .await?;
        let content_type = response
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut bytes = response.body;
        let mut truncated = response.truncated;
        if bytes.len() > max_bytes {
            bytes.truncate(max_bytes);
            truncated = true;
        }
        Ok(Download {
            bytes,
            truncated,
            content_type,
        })
    }

    /// Sends one authorized GET; a non-2xx answer is the classified error.
    async fn fetch(
        &mut self,
        url: &Url,
        prefer: Prefer,
        limit: BodyLimit,
    ) -> Result<HttpResponse, GraphError> {
        let header = self.prefer_header(prefer);
        let response = self
            .api
            .send_limited(&self.class, limit, |http| {
                let request = http.get(url.clone());
                match &header {
                    Some(value) => request.header("Prefer", value.as_str()),
                    None => request,
                }
            })
            .await?;
        if response.status.is_success() {
            return Ok(response);
        }
        Err(self.failure(url, &response).context(describe(url)))
    }

    /// The classified error of a failed answer to a request for `url`; a resync's
    /// `Location` resolved, and dropped when it leads off the base URL's origin.
    fn failure(&self, url: &Url, response: &HttpResponse) -> GraphError {
        let mut error = classify(response);
        if let GraphError::ResyncRequired(resync) = &mut error
            && let Some(location) = resync.location.take()
        {
            match url.join(&location) {
                Ok(fresh)
                    if check_origin(&self.base, &fresh).is_ok()
                        && location.len() <= MAX_LINK_CHARS =>
                {
                    resync.location = Some(fresh.to_string());
                }
                _ => tracing::warn!(
                    "ignoring the Location of a graph resync answer: not a url on the base url's origin"
                ),
            }
        }
        error
    }

    /// A page's link, resolved against the request's URL and checked.
    fn link(
        &self,
        request: &Url,
        link: Option<String>,
        name: &str,
    ) -> Result<Option<String>, GraphError> {
        let Some(link) = link else { return Ok(None) };
        let refused = |why: String| -> GraphError {
            IntegrationError::permanent(format!(
                "{}: refusing its {name}: {why}",
                describe(request)
            ))
            .into()
        };
        if link.len() > MAX_LINK_CHARS {
            return Err(refused(format!("{} bytes long", link.len())));
        }
        let url = request.join(&link).map_err(|e| refused(e.to_string()))?;
        check_origin(&self.base, &url)
            .map_err(|e| refused(e.into_integration().message().to_owned()))?;
        Ok(Some(url.to_string()))
    }
}

/// The URL of `target` under `base` (see [`GraphClient::resolve`]).
fn resolve_target(base: &Url, target: &str, query: &[(&str, &str)]) -> Result<Url, GraphError> {
    if target.len() > MAX_LINK_CHARS {
        return Err(IntegrationError::permanent(format!(
            "refusing a graph target of {} bytes (at most {MAX_LINK_CHARS})",
            target.len()
        ))
        .into());
    }
    let mut url = match Url::parse(target) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => base
            .join(target.trim_start_matches('/'))
            .map_err(|e| invalid_target(&e))?,
        Err(e) => return Err(invalid_target(&e)),
    };
    // Checked after joining: a "relative" `\\host/x` or `http:host` lands elsewhere.
    check_origin(base, &url)?;
    url.set_fragment(None);
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    Ok(url)
}

/// The `Prefer` value (see [`GraphClient::prefer_header`]).
fn prefer_value(immutable_ids: bool, prefer: Prefer) -> Option<String> {
    let mut parts: Vec<String> = Vec::with_capacity(3);
    if immutable_ids {
        parts.push("IdType=\"ImmutableId\"".to_owned());
    }
    if let Some(size) = prefer.max_page_size {
        parts.push(format!(
            "odata.maxpagesize={}",
            size.clamp(1, MAX_PAGE_SIZE)
        ));
    }
    if prefer.text_body {
        parts.push("outlook.body-content-type=\"text\"".to_owned());
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// A permanent error unless `url` is on `base`'s origin (scheme, host and port).
fn check_origin(base: &Url, url: &Url) -> Result<(), GraphError> {
    if url.origin() == base.origin() {
        return Ok(());
    }
    Err(IntegrationError::permanent(format!(
        "refusing to send the graph token to {}: not the origin of the base url ({})",
        url.origin().ascii_serialization(),
        base.origin().ascii_serialization()
    ))
    .into())
}

/// `microsoft graph GET /v1.0/me/messages`, for errors (the path only: queries carry
/// tokens and filters nobody needs in an error).
fn describe(url: &Url) -> String {
    format!("microsoft graph GET {}", url.path())
}

fn invalid_target(e: &url::ParseError) -> GraphError {
    IntegrationError::permanent(format!("invalid graph target: {e}")).into()
}

/// Refuses a body nested deeper than the SDK's guard (a hostile answer).
fn check_depth(response: &HttpResponse) -> Result<(), GraphError> {
    if json_depth(&response.body) > MAX_JSON_DEPTH {
        return Err(IntegrationError::permanent(format!(
            "the answer is nested deeper than {MAX_JSON_DEPTH} levels"
        ))
        .into());
    }
    Ok(())
}

fn decode_json<T: DeserializeOwned>(response: &HttpResponse) -> Result<T, GraphError> {
    check_depth(response)?;
    serde_json::from_slice(&response.body).map_err(decode_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://graph.microsoft.com/v1.0/").unwrap()
    }

    #[test]
    fn paths_join_under_the_base_and_links_stay_as_given() {
        let base = base();
        let at = |t: &str, q: &[(&str, &str)]| resolve_target(&base, t, q).map(|u| u.to_string());
        assert_eq!(
            at("me/mailFolders", &[("$top", "50")]).unwrap(),
            "https://graph.microsoft.com/v1.0/me/mailFolders?%24top=50"
        );
        assert_eq!(
            at("/me/drive/root/delta", &[]).unwrap(),
            "https://graph.microsoft.com/v1.0/me/drive/root/delta"
        );
        let link = "https://graph.microsoft.com/v1.0/me/mailFolders/AAMk/messages/delta?$skiptoken=Ab-c_d%3D%3D";
        assert_eq!(at(link, &[]).unwrap(), link);
        let drive = "https://graph.microsoft.com/v1.0/me/drive/root/delta(token='MzslMjM0OzE')";
        assert_eq!(at(drive, &[]).unwrap(), drive);
        // The default port is the same origin.
        assert!(at("https://graph.microsoft.com:443/v1.0/me", &[]).is_ok());
    }

    #[test]
    fn other_origins_are_refused_however_they_are_written() {
        let base = base();
        for target in [
            "https://evil.example/v1.0/me",
            "http://graph.microsoft.com/v1.0/me",
            "https://graph.microsoft.com:8443/v1.0/me",
            "https://graph.microsoft.com.evil.example/v1.0/me",
            "//evil.example/x",
            "\\\\evil.example/x",
            "http:evil.example",
            "file:///etc/passwd",
            "javascript:alert(1)",
        ] {
            match resolve_target(&base, target, &[]) {
                Err(e) => assert_eq!(
                    e.into_integration().class(),
                    tributary_sdk::ErrorClass::Permanent,
                    "{target}"
                ),
                // A scheme-relative path is read as a path under the base.
                Ok(url) => assert_eq!(url.origin(), base.origin(), "{target} -> {url}"),
            }
        }
        assert!(resolve_target(&base, "https://evil.example/", &[]).is_err());
        assert!(resolve_target(&base, &"a".repeat(MAX_LINK_CHARS + 1), &[]).is_err());
    }

    #[test]
    fn preferences_combine_in_one_header() {
        assert_eq!(prefer_value(false, Prefer::default()), None);
        assert_eq!(
            prefer_value(true, Prefer::default()).as_deref(),
            Some("IdType=\"ImmutableId\"")
        );
        assert_eq!(
            prefer_value(true, Prefer::page_size(50).with_text_body()).as_deref(),
            Some(
                "IdType=\"ImmutableId\", odata.maxpagesize=50, outlook.body-content-type=\"text\""
            )
        );
        assert_eq!(
            prefer_value(false, Prefer::page_size(0)).as_deref(),
            Some("odata.maxpagesize=1")
        );
        assert_eq!(
            prefer_value(false, Prefer::page_size(1_000_000)).as_deref(),
            Some("odata.maxpagesize=1000")
        );
    }
}
