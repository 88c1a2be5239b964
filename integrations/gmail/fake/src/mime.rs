//! From an RFC 822 source to what Gmail shows of it: the `MessagePart` tree, header
//! lists, the snippet, attachment bodies, and the facts the mailbox keeps (subject,
//! `Message-ID`, threading headers, `Date`).
//!
//! The source is parsed with `mail-parser` for structure; the bytes Gmail reports are
//! then read back from the source itself, so they are exactly what the message holds:
//!
//! - header names and values are raw (encoded words are not decoded), with folding
//!   line breaks removed;
//! - a body's `data` is its content after undoing the transfer encoding (base64,
//!   quoted-printable), in the part's own charset, never converted to UTF-8;
//! - part ids follow Gmail: the root is `""`, its children `"0"`, `"1"`, ..., their
//!   children `"1.0"`, ...; a `message/rfc822` part has the embedded message's root as
//!   its single child;
//! - a part with a file name gets an `attachmentId` instead of `data`.
//!
//! Nothing is cached: trees are built on demand from the stored source, which keeps a
//! large mailbox small in memory.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Encoding, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use serde_json::{Value, json};

/// How many characters of text a snippet keeps (before HTML escaping).
const SNIPPET_CHARS: usize = 200;

/// What the mailbox keeps from a message's source.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    /// `Message-ID` without angle brackets.
    pub(crate) message_id: Option<String>,
    /// The ids named by `In-Reply-To` and `References`, without angle brackets.
    pub(crate) parent_ids: Vec<String>,
    /// The decoded subject (empty when there is none).
    pub(crate) subject: String,
    /// The `Date` header, in epoch milliseconds.
    pub(crate) date_ms: Option<i64>,
    /// Gmail's snippet: the start of the text, whitespace collapsed, HTML-escaped.
    pub(crate) snippet: String,
}

/// Parses a source; `None` when it has no header at all (not a message).
pub(crate) fn summarize(raw: &[u8]) -> Option<Summary> {
    let message = MessageParser::default().parse(raw)?;
    if message
        .parts
        .first()
        .is_none_or(|root| root.headers.is_empty())
    {
        return None;
    }
    let mut parent_ids = ids_of(message.in_reply_to());
    for id in ids_of(message.references()) {
        if !parent_ids.contains(&id) {
            parent_ids.push(id);
        }
    }
    let text = message.body_text(0).unwrap_or_default();
    Some(Summary {
        message_id: message.message_id().map(str::to_owned),
        parent_ids,
        subject: message.subject().unwrap_or_default().to_owned(),
        date_ms: message.date().map(|d| d.to_timestamp() * 1000),
        snippet: snippet_of(&text),
    })
}

fn ids_of(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![id.to_string()],
        HeaderValue::TextList(ids) => ids.iter().map(|id| id.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// Gmail's snippet of a text: whitespace runs collapsed to one space, cut to
/// [`SNIPPET_CHARS`] characters, then HTML-escaped.
pub(crate) fn snippet_of(text: &str) -> String {
    let mut snippet = String::new();
    let mut chars = 0;
    for word in text.split_whitespace() {
        if chars >= SNIPPET_CHARS {
            break;
        }
        if !snippet.is_empty() {
            snippet.push(' ');
            chars += 1;
        }
        for c in word.chars() {
            if chars >= SNIPPET_CHARS {
                break;
            }
            match c {
                '&' => snippet.push_str("&amp;"),
                '<' => snippet.push_str("&lt;"),
                '>' => snippet.push_str("&gt;"),
                '"' => snippet.push_str("&quot;"),
                '\'' => snippet.push_str("&#39;"),
                c => snippet.push(c),
            }
            chars += 1;
        }
    }
    snippet
}

/// The opaque `attachmentId` of a part. It names the message and the part, so it stays
/// valid as long as the message exists.
pub(crate) fn attachment_id(message_id: &str, part_id: &str) -> String {
    format!(
        "ANGjdJ{}",
        URL_SAFE_NO_PAD.encode(format!("{message_id}/{part_id}"))
    )
}

/// The message id and part id inside an `attachmentId`, if it is one of ours.
pub(crate) fn parse_attachment_id(attachment_id: &str) -> Option<(String, String)> {
    let encoded = attachment_id.strip_prefix("ANGjdJ")?;
    let decoded = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (message, part) = decoded.split_once('/')?;
    Some((message.to_owned(), part.to_owned()))
}

/// Base64url with padding, the encoding Gmail uses for `raw` and `body.data`.
pub(crate) fn encode_base64url(bytes: &[u8]) -> String {
    URL_SAFE.encode(bytes)
}

/// The `payload` of `format=full`: the whole part tree with inline body data.
pub(crate) fn full_payload(raw: &[u8], message_id: &str) -> Value {
    match MessageParser::default().parse(raw) {
        Some(message) if !message.parts.is_empty() => {
            let walker = Walker { message_id };
            walker.part(&message, 0, String::new(), false)
        }
        _ => unparsed_payload(raw),
    }
}

/// The `payload` of `format=metadata`: the root part's MIME type and headers, only
/// the named headers (case-insensitively) when `only` is not empty.
pub(crate) fn metadata_payload(raw: &[u8], only: &[String]) -> Value {
    let Some(message) = MessageParser::default().parse_headers(raw) else {
        return json!({"mimeType": "text/plain", "headers": []});
    };
    let Some(root) = message.parts.first() else {
        return json!({"mimeType": "text/plain", "headers": []});
    };
    let headers: Vec<Value> = raw_headers(&message.raw_message, root)
        .into_iter()
        .filter(|(name, _)| only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(name)))
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    json!({"mimeType": mime_type(root, false), "headers": headers})
}

/// The decoded body of the part with Gmail part id `part_id`, for
/// `messages.attachments.get`.
pub(crate) fn part_body(raw: &[u8], part_id: &str) -> Option<Vec<u8>> {
    let message = MessageParser::default().parse(raw)?;
    find_part(&message, 0, "", part_id)
}

fn find_part(message: &Message<'_>, index: usize, id: &str, wanted: &str) -> Option<Vec<u8>> {
    let part = message.parts.get(index)?;
    if id == wanted {
        return match &part.body {
            PartType::Multipart(_) => None,
            _ => Some(decoded_body(&message.raw_message, part)),
        };
    }
    // Only descend into a child whose id is a prefix of the wanted one.
    let rest = if id.is_empty() {
        wanted
    } else {
        wanted.strip_prefix(id)?.strip_prefix('.')?
    };
    let position: usize = rest.split('.').next()?.parse().ok()?;
    let child_id = child_part_id(id, position);
    match &part.body {
        PartType::Multipart(children) => {
            let child = *children.get(position)? as usize;
            find_part(message, child, &child_id, wanted)
        }
        PartType::Message(nested) if position == 0 => find_part(nested, 0, &child_id, wanted),
        _ => None,
    }
}

fn child_part_id(parent: &str, position: usize) -> String {
    if parent.is_empty() {
        position.to_string()
    } else {
        format!("{parent}.{position}")
    }
}

struct Walker<'a> {
    message_id: &'a str,
}

impl Walker<'_> {
    fn part(&self, message: &Message<'_>, index: usize, id: String, in_digest: bool) -> Value {
        let Some(part) = message.parts.get(index) else {
            return json!({"partId": id, "mimeType": "text/plain", "filename": "", "headers": [], "body": {"size": 0}});
        };
        let buffer: &[u8] = &message.raw_message;
        let headers: Vec<Value> = raw_headers(buffer, part)
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        let mime = mime_type(part, in_digest);
        let filename = part.attachment_name().unwrap_or_default().to_owned();
        let mut node = json!({
            "partId": id,
            "mimeType": mime,
            "filename": filename,
            "headers": headers,
        });
        match &part.body {
            PartType::Multipart(children) => {
                let digest = mime == "multipart/digest";
                let parts: Vec<Value> = children
                    .iter()
                    .enumerate()
                    .map(|(position, &child)| {
                        self.part(
                            message,
                            child as usize,
                            child_part_id(&id, position),
                            digest,
                        )
                    })
                    .collect();
                node["body"] = json!({"size": 0});
                node["parts"] = Value::Array(parts);
            }
            PartType::Message(nested) => {
                let size = decoded_body(buffer, part).len();
                node["body"] = self.body_reference(&id, &filename, size);
                node["parts"] = json!([self.part(nested, 0, child_part_id(&id, 0), false)]);
            }
            _ => {
                let bytes = decoded_body(buffer, part);
                node["body"] = if filename.is_empty() {
                    if bytes.is_empty() {
                        json!({"size": 0})
                    } else {
                        json!({"size": bytes.len(), "data": encode_base64url(&bytes)})
                    }
                } else {
                    self.body_reference(&id, &filename, bytes.len())
                };
            }
        }
        node
    }

    fn body_reference(&self, part_id: &str, filename: &str, size: usize) -> Value {
        if filename.is_empty() {
            json!({"size": size})
        } else {
            json!({"attachmentId": attachment_id(self.message_id, part_id), "size": size})
        }
    }
}

/// A payload for a source `mail-parser` could not read at all: one text part.
fn unparsed_payload(raw: &[u8]) -> Value {
    let mut body = json!({"size": raw.len()});
    if !raw.is_empty() {
        body["data"] = json!(encode_base64url(raw));
    }
    json!({"partId": "", "mimeType": "text/plain", "filename": "", "headers": [], "body": body})
}

/// `type/subtype` in lower case; `text/plain` when there is no `Content-Type` (and
/// `message/rfc822` inside a `multipart/digest`, as RFC 2046 says).
fn mime_type(part: &mail_parser::MessagePart<'_>, in_digest: bool) -> String {
    match part.content_type() {
        Some(content_type) => match content_type.subtype() {
            Some(subtype) => format!(
                "{}/{}",
                content_type.ctype().to_ascii_lowercase(),
                subtype.to_ascii_lowercase()
            ),
            None => content_type.ctype().to_ascii_lowercase(),
        },
        None if in_digest => "message/rfc822".to_owned(),
        None => "text/plain".to_owned(),
    }
}

/// A part's headers in source order: the name as written, the value raw with folding
/// line breaks removed and surrounding whitespace trimmed.
fn raw_headers(buffer: &[u8], part: &mail_parser::MessagePart<'_>) -> Vec<(String, String)> {
    part.headers
        .iter()
        .filter_map(|header| {
            let field = header.offset_field as usize;
            let start = header.offset_start as usize;
            let end = header.offset_end as usize;
            let name = buffer.get(field..start.checked_sub(1)?)?;
            let value = buffer.get(start..end)?;
            let name = String::from_utf8_lossy(name).trim().to_owned();
            Some((name, unfold(value)))
        })
        .collect()
}

fn unfold(value: &[u8]) -> String {
    let unfolded: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    String::from_utf8_lossy(&unfolded).trim().to_owned()
}

/// A leaf part's content with the transfer encoding undone; the charset is untouched.
fn decoded_body(buffer: &[u8], part: &mail_parser::MessagePart<'_>) -> Vec<u8> {
    let start = part.offset_body as usize;
    let end = (part.offset_end as usize).max(start);
    let Some(encoded) = buffer.get(start..end) else {
        return Vec::new();
    };
    if part.is_encoding_problem {
        return encoded.to_vec();
    }
    match part.encoding {
        Encoding::Base64 => base64_decode(encoded).unwrap_or_else(|| encoded.to_vec()),
        Encoding::QuotedPrintable => {
            quoted_printable_decode(encoded).unwrap_or_else(|| encoded.to_vec())
        }
        Encoding::None => encoded.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NESTED: &str = "From: Ann <ann@example.com>\r\n\
To: bob@example.com\r\n\
Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n\
Message-ID: <outer@example.com>\r\n\
In-Reply-To: <parent@example.com>\r\n\
References: <root@example.com>\r\n <parent@example.com>\r\n\
Date: Tue, 1 Oct 2024 10:00:00 +0000\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed;\r\n\tboundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
\r\n\
--alt\r\n\
Content-Type: text/plain; charset=ISO-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Caf=E9 cr=E8me & <tea>\r\n\
--alt\r\n\
Content-Type: text/html; charset=UTF-8\r\n\
\r\n\
<p>Café</p>\r\n\
--alt--\r\n\
\r\n\
--outer\r\n\
Content-Type: application/pdf; name=\"a.pdf\"\r\n\
Content-Disposition: attachment; filename=\"a.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKAAEC\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: Carl <carl@example.com>\r\n\
Subject: inner\r\n\
\r\n\
inner body\r\n\
--outer--\r\n";

    fn payload() -> Value {
        full_payload(NESTED.as_bytes(), "18c0ffee")
    }

    fn data(value: &Value) -> Vec<u8> {
        let data = value["body"]["data"].as_str().unwrap_or_default();
        URL_SAFE.decode(data).unwrap_or_default()
    }

    #[test]
    fn tree_has_gmail_part_ids_and_mime_types() {
        let root = payload();
        assert_eq!(root["partId"], "");
        assert_eq!(root["mimeType"], "multipart/mixed");
        assert_eq!(root["body"], json!({"size": 0}));
        let parts = root["parts"].as_array().cloned().unwrap_or_default();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0]["partId"], "0");
        assert_eq!(parts[0]["mimeType"], "multipart/alternative");
        assert_eq!(parts[0]["parts"][0]["partId"], "0.0");
        assert_eq!(parts[0]["parts"][1]["partId"], "0.1");
        assert_eq!(parts[1]["partId"], "1");
        assert_eq!(parts[1]["mimeType"], "application/pdf");
        assert_eq!(parts[2]["mimeType"], "message/rfc822");
        assert_eq!(parts[2]["parts"][0]["partId"], "2.0");
        assert_eq!(parts[2]["parts"][0]["mimeType"], "text/plain");
    }

    #[test]
    fn headers_are_raw_and_unfolded() {
        let root = payload();
        let headers = root["headers"].as_array().cloned().unwrap_or_default();
        let get = |name: &str| {
            headers
                .iter()
                .find(|h| h["name"] == name)
                .map(|h| h["value"].clone())
        };
        assert_eq!(get("Subject"), Some(json!("=?UTF-8?B?R3LDvMOfZQ==?=")));
        assert_eq!(
            get("References"),
            Some(json!("<root@example.com> <parent@example.com>"))
        );
        assert_eq!(
            get("Content-Type"),
            Some(json!("multipart/mixed;\tboundary=\"outer\""))
        );
        assert_eq!(headers[0]["name"], "From");
    }

    #[test]
    fn bodies_keep_their_charset_and_lose_the_transfer_encoding() {
        let root = payload();
        let latin = &root["parts"][0]["parts"][0];
        assert_eq!(data(latin), b"Caf\xe9 cr\xe8me & <tea>".to_vec());
        assert_eq!(latin["body"]["size"], 18);
        let html = &root["parts"][0]["parts"][1];
        assert_eq!(data(html), "<p>Café</p>".as_bytes().to_vec());
        let inner = &root["parts"][2]["parts"][0];
        assert_eq!(data(inner), b"inner body".to_vec());
    }

    #[test]
    fn attachments_are_referenced_and_fetchable() {
        let root = payload();
        let pdf = &root["parts"][1];
        assert_eq!(pdf["filename"], "a.pdf");
        assert!(pdf["body"].get("data").is_none());
        let id = pdf["body"]["attachmentId"].as_str().unwrap_or_default();
        assert_eq!(
            parse_attachment_id(id),
            Some(("18c0ffee".to_owned(), "1".to_owned()))
        );
        let bytes = part_body(NESTED.as_bytes(), "1").unwrap_or_default();
        assert_eq!(bytes, b"%PDF-1.4\n\x00\x01\x02".to_vec());
        assert_eq!(pdf["body"]["size"], bytes.len());
        assert_eq!(
            part_body(NESTED.as_bytes(), "2.0"),
            Some(b"inner body".to_vec())
        );
        assert_eq!(part_body(NESTED.as_bytes(), "7"), None);
        assert_eq!(part_body(NESTED.as_bytes(), "0"), None);
    }

    #[test]
    fn summary_reads_threading_headers_subject_and_snippet() {
        let summary = summarize(NESTED.as_bytes()).unwrap_or_default();
        assert_eq!(summary.message_id.as_deref(), Some("outer@example.com"));
        assert_eq!(
            summary.parent_ids,
            vec![
                "parent@example.com".to_owned(),
                "root@example.com".to_owned()
            ]
        );
        assert_eq!(summary.subject, "Grüße");
        assert_eq!(summary.date_ms, Some(1_727_776_800_000));
        assert_eq!(summary.snippet, "Café crème &amp; &lt;tea&gt;");
    }

    #[test]
    fn metadata_filters_headers_case_insensitively() {
        let meta = metadata_payload(NESTED.as_bytes(), &["subject".to_owned()]);
        assert_eq!(meta["mimeType"], "multipart/mixed");
        assert_eq!(
            meta["headers"],
            json!([{"name": "Subject", "value": "=?UTF-8?B?R3LDvMOfZQ==?="}])
        );
        let all = metadata_payload(NESTED.as_bytes(), &[]);
        assert_eq!(all["headers"].as_array().map(Vec::len), Some(9));
    }

    #[test]
    fn not_a_message_has_no_summary() {
        assert!(summarize(b"").is_none());
    }

    #[test]
    fn snippet_is_cut_and_collapsed() {
        let text = format!("a  b\n\n{}", "x".repeat(500));
        let snippet = snippet_of(&text);
        assert!(snippet.starts_with("a b x"));
        assert_eq!(snippet.chars().count(), SNIPPET_CHARS);
    }
}
