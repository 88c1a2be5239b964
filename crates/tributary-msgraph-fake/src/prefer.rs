//! The `Prefer` request header (RFC 7240) as Graph reads it, and the
//! `Preference-Applied` answer.
//!
//! A request may carry several `Prefer` headers, each a comma-separated list of
//! `name`, `name=value` or `name="value"` preferences; names are compared without
//! regard to case. The ones Graph's mail and drive APIs know:
//!
//! - `odata.maxpagesize=N`: at most N items per page (delta and lists);
//! - `IdType="ImmutableId"` (or `"RestId"`): the kind of Outlook item ids to answer
//!   with, for this request only;
//! - `outlook.body-content-type="text"` (or `"html"`): the format of message bodies;
//! - `odata.track-changes`: from the early Outlook delta flow, accepted and echoed.
//!
//! Unknown preferences are ignored, as RFC 7240 asks.

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;

/// The format of an item body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyType {
    /// `text`.
    Text,
    /// `html`.
    Html,
}

impl BodyType {
    /// Graph's name: `text` or `html`.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyType::Text => "text",
            BodyType::Html => "html",
        }
    }
}

/// The preferences of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefer {
    /// `odata.maxpagesize`, when it parsed as a positive number.
    pub max_page_size: Option<usize>,
    /// `IdType="ImmutableId"`.
    pub immutable_ids: bool,
    /// `outlook.body-content-type`, when it named `text` or `html`.
    pub body_content_type: Option<BodyType>,
    /// `odata.track-changes`.
    pub track_changes: bool,
}

impl Prefer {
    /// Reads every `Prefer` header of a request.
    pub fn from_headers(headers: &HeaderMap) -> Prefer {
        let mut prefer = Prefer::default();
        for value in headers.get_all("prefer") {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let item = item.trim();
                let (name, value) = match item.split_once('=') {
                    Some((name, value)) => (name.trim(), Some(unquote(value.trim()))),
                    None => (item, None),
                };
                prefer.apply(name, value);
            }
        }
        prefer
    }

    /// The size of a page that `odata.maxpagesize` may set: it, else `top` (a `$top`
    /// the round carries), else `default`; from 1 to `max`.
    pub fn page_size(&self, top: Option<usize>, default: usize, max: usize) -> usize {
        self.max_page_size.or(top).unwrap_or(default).clamp(1, max)
    }

    fn apply(&mut self, name: &str, value: Option<&str>) {
        if name.eq_ignore_ascii_case("odata.maxpagesize") {
            self.max_page_size = value
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|n| *n > 0);
        } else if name.eq_ignore_ascii_case("IdType") {
            self.immutable_ids = value.is_some_and(|v| v.eq_ignore_ascii_case("ImmutableId"));
        } else if name.eq_ignore_ascii_case("outlook.body-content-type") {
            self.body_content_type = match value {
                Some(v) if v.eq_ignore_ascii_case("text") => Some(BodyType::Text),
                Some(v) if v.eq_ignore_ascii_case("html") => Some(BodyType::Html),
                _ => None,
            };
        } else if name.eq_ignore_ascii_case("odata.track-changes") {
            self.track_changes = true;
        }
    }
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// The preferences a response honoured, for its `Preference-Applied` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied(Vec<String>);

impl Applied {
    /// Nothing applied yet.
    pub fn new() -> Applied {
        Applied::default()
    }

    /// Records one applied preference, written as it goes in the header
    /// (`odata.maxpagesize=50`, `IdType="ImmutableId"`).
    pub fn push(&mut self, preference: impl Into<String>) {
        self.0.push(preference.into());
    }

    /// Records `odata.maxpagesize` (at most `max`) when the request asked for a page
    /// size.
    pub fn push_max_page_size(&mut self, prefer: &Prefer, max: usize) {
        if let Some(asked) = prefer.max_page_size {
            self.push(format!("odata.maxpagesize={}", asked.min(max)));
        }
    }

    /// `response` with the `Preference-Applied` header, when something was applied.
    pub fn apply(&self, mut response: Response) -> Response {
        if let Some(value) = self.header_value() {
            response.headers_mut().insert("preference-applied", value);
        }
        response
    }

    /// The header value, or `None` when nothing was applied.
    pub fn header_value(&self) -> Option<HeaderValue> {
        if self.0.is_empty() {
            return None;
        }
        HeaderValue::from_str(&self.0.join(", ")).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_headers_and_lists_are_read() {
        let mut headers = HeaderMap::new();
        headers.append(
            "prefer",
            HeaderValue::from_static("odata.maxpagesize=25, IdType=\"ImmutableId\""),
        );
        headers.append(
            "Prefer",
            HeaderValue::from_static("outlook.body-content-type=\"text\""),
        );
        let prefer = Prefer::from_headers(&headers);
        assert_eq!(prefer.max_page_size, Some(25));
        assert!(prefer.immutable_ids);
        assert_eq!(prefer.body_content_type, Some(BodyType::Text));
        assert!(!prefer.track_changes);
    }

    #[test]
    fn page_sizes_and_applied_preferences() {
        let asked = Prefer {
            max_page_size: Some(5000),
            ..Prefer::default()
        };
        assert_eq!(asked.page_size(Some(7), 10, 1000), 1000);
        assert_eq!(Prefer::default().page_size(Some(7), 10, 1000), 7);
        assert_eq!(Prefer::default().page_size(None, 10, 1000), 10);
        assert_eq!(Prefer::default().page_size(Some(0), 10, 1000), 1);
        let mut applied = Applied::new();
        applied.push_max_page_size(&Prefer::default(), 1000);
        assert!(applied.apply(Response::default()).headers().is_empty());
        applied.push_max_page_size(&asked, 1000);
        let response = applied.apply(Response::default());
        assert_eq!(
            response
                .headers()
                .get("preference-applied")
                .map(HeaderValue::as_bytes),
            Some(&b"odata.maxpagesize=1000"[..])
        );
    }

    #[test]
    fn bad_values_are_ignored() {
        let mut headers = HeaderMap::new();
        headers.append(
            "prefer",
            HeaderValue::from_static(
                "odata.maxpagesize=zero, IdType=\"RestId\", odata.track-changes",
            ),
        );
        let prefer = Prefer::from_headers(&headers);
        assert_eq!(prefer.max_page_size, None);
        assert!(!prefer.immutable_ids);
        assert!(prefer.track_changes);
    }
}
