//! From a Gmail API message to the stored content item.
//!
//! The content shape is the integration's public contract with whoever reads the
//! database, so it is a typed struct ([`EmailContent`]) rather than ad-hoc JSON: field
//! names are camelCase like the rest of the stored JSON, and every field is always
//! present (empty when the message lacks it) so readers need no null checks.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use tributary_sdk::{IntegrationError, Output};

use crate::client::{FetchedMessage, Message, MessagePart};
use crate::mime;

/// The subject stored for a message without one (or with an empty one).
pub const NO_SUBJECT: &str = "(No Subject)";

/// Labels whose messages are outside the synced mailbox: the full listing skips them
/// (`includeSpamTrash=false`), so a message that moves there counts as deleted, and
/// one that moves back is restored.
pub const EXCLUDED_LABELS: [&str; 2] = ["TRASH", "SPAM"];

/// The stored content of one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailContent {
    /// The decoded subject, or [`NO_SUBJECT`].
    pub subject: String,
    /// The decoded `From` header, `Name <address>` form.
    pub from: String,
    /// The decoded `To` header, addresses separated by `, `. A message with several
    /// `To` lines has the addresses of all of them, in order (repeats kept).
    pub to: String,
    /// The decoded `Cc` header, addresses separated by `, `; all `Cc` lines, like `to`.
    pub cc: String,
    /// The `Date` header as written.
    pub date: String,
    /// The text: `text/plain` preferred, else the HTML part as text, else the text of
    /// the first attached message (see [`mime::body_text`]).
    pub body: String,
    /// How many MIME parts are nested deeper than [`mime::MAX_MIME_DEPTH`] levels and
    /// so were not read: `body` and `attachments` leave them out. 0 for any real
    /// message; more means the stored content is incomplete.
    pub skipped_parts: usize,
    /// The Gmail thread id.
    pub thread_id: String,
    /// The Gmail label ids.
    pub label_ids: Vec<String>,
    /// Gmail's short preview of the text, entities decoded.
    pub snippet: String,
    /// Whether the message has attachments.
    pub has_attachments: bool,
    /// How many attachments it has.
    pub attachment_count: usize,
    /// The attachments' metadata (their bytes are not downloaded).
    pub attachments: Vec<Attachment>,
}

/// Metadata of one attachment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The file name; empty for an unnamed part (often an attached message).
    pub filename: String,
    /// The MIME type, e.g. `application/pdf` or `message/rfc822`.
    pub mime_type: String,
    /// The size in bytes.
    pub size: u64,
    /// The id for `messages.attachments.get`; absent when Gmail inlined the bytes.
    pub attachment_id: Option<String>,
}

/// The content item for a downloaded message, timestamped with `internalDate` (when
/// Gmail received it), or the `Date` header when that is missing.
pub fn message_output(message: &Message) -> Result<Output, IntegrationError> {
    content_output(message, email_content(message))
}

/// [`message_output`] for a download whose deepest parts were left out (a tree too
/// deep to decode): they count in `skippedParts` too.
pub fn fetched_output(fetched: &FetchedMessage) -> Result<Output, IntegrationError> {
    let mut content = email_content(&fetched.message);
    content.skipped_parts = content.skipped_parts.saturating_add(fetched.parts_left_out);
    content_output(&fetched.message, content)
}

fn content_output(message: &Message, content: EmailContent) -> Result<Output, IntegrationError> {
    let content = serde_json::to_value(content).map_err(|e| {
        IntegrationError::permanent(format!(
            "failed to serialize gmail message {}: {e}",
            message.id
        ))
    })?;
    Ok(Output::item(&message.id, timestamp(message), content))
}

/// Whether the message is in the trash or spam, and so outside the synced mailbox.
pub fn is_excluded(message: &Message) -> bool {
    message
        .label_ids
        .iter()
        .any(|label| EXCLUDED_LABELS.contains(&label.as_str()))
}

/// Decodes a message into its content. `Subject`, `From` and `Date` come from the
/// first header of that name (RFC 5322 allows one of each); `To` and `Cc` from every
/// line of that name.
pub fn email_content(message: &Message) -> EmailContent {
    let empty = MessagePart::default();
    let payload = message.payload.as_ref().unwrap_or(&empty);
    let header = |name| mime::header(&payload.headers, name);
    let subject = header("Subject").map(mime::decode_text).unwrap_or_default();
    let attachments: Vec<Attachment> = mime::attachment_parts(payload)
        .into_iter()
        .map(|part| Attachment {
            filename: mime::decode_text(&part.filename),
            mime_type: part.mime_type.clone(),
            size: part.body.size,
            attachment_id: part.body.attachment_id.clone(),
        })
        .collect();
    EmailContent {
        subject: if subject.is_empty() {
            NO_SUBJECT.to_owned()
        } else {
            subject
        },
        from: header("From")
            .map(mime::decode_addresses)
            .unwrap_or_default(),
        to: mime::decode_address_lines(&payload.headers, "To"),
        cc: mime::decode_address_lines(&payload.headers, "Cc"),
        date: header("Date").map(str::trim).unwrap_or_default().to_owned(),
        body: mime::body_text(payload),
        skipped_parts: mime::skipped_parts(payload),
        thread_id: message.thread_id.clone(),
        label_ids: message.label_ids.clone(),
        snippet: mime::decode_entities(&message.snippet).into_owned(),
        has_attachments: !attachments.is_empty(),
        attachment_count: attachments.len(),
        attachments,
    }
}

/// When the message was received: `internalDate` (epoch milliseconds), else the
/// `Date` header; `None` when neither is usable.
pub fn timestamp(message: &Message) -> Option<DateTime<Utc>> {
    let internal = message
        .internal_date
        .as_deref()
        .and_then(|ms| ms.trim().parse::<i64>().ok())
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
    internal.or_else(|| {
        let payload = message.payload.as_ref()?;
        let date = mime::header(&payload.headers, "Date")?;
        let parsed = mail_parser::DateTime::parse_rfc822(&format!("{date}\n"))
            .filter(mail_parser::DateTime::is_valid)?;
        Utc.timestamp_opt(parsed.to_timestamp(), 0).single()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{MessagePartBody, MessagePartHeader};

    fn part(mime_type: &str, headers: &[(&str, &str)], data: &str) -> MessagePart {
        use base64::Engine as _;
        MessagePart {
            mime_type: mime_type.into(),
            headers: headers
                .iter()
                .map(|(name, value)| MessagePartHeader {
                    name: (*name).into(),
                    value: (*value).into(),
                })
                .collect(),
            body: MessagePartBody {
                size: data.len() as u64,
                data: Some(base64::engine::general_purpose::URL_SAFE.encode(data)),
                attachment_id: None,
            },
            ..MessagePart::default()
        }
    }

    #[test]
    fn maps_a_simple_message() {
        let message = Message {
            id: "m1".into(),
            thread_id: "t1".into(),
            label_ids: vec!["INBOX".into()],
            snippet: "It&#39;s here".into(),
            internal_date: Some("1700000000123".into()),
            payload: Some(part(
                "text/plain",
                &[
                    ("From", "a@example.com"),
                    ("Date", "Tue, 14 Nov 2023 22:13:20 +0000"),
                ],
                "Hi\r\nthere\r\n",
            )),
        };
        let output = message_output(&message).unwrap();
        assert_eq!(output.id(), "m1");
        assert_eq!(
            output.timestamp().unwrap().timestamp_millis(),
            1_700_000_000_123
        );
        assert_eq!(
            *output.content(),
            serde_json::json!({
                "subject": "(No Subject)", "from": "a@example.com", "to": "", "cc": "",
                "date": "Tue, 14 Nov 2023 22:13:20 +0000", "body": "Hi\nthere",
                "skippedParts": 0,
                "threadId": "t1", "labelIds": ["INBOX"], "snippet": "It's here",
                "hasAttachments": false, "attachmentCount": 0, "attachments": []
            })
        );
    }

    #[test]
    fn timestamp_falls_back_to_the_date_header() {
        let mut message = Message {
            payload: Some(part(
                "text/plain",
                &[("Date", "Tue, 14 Nov 2023 22:13:20 +0000")],
                "",
            )),
            internal_date: Some("not a number".into()),
            ..Message::default()
        };
        assert_eq!(timestamp(&message).unwrap().timestamp(), 1_700_000_000);
        message.payload = None;
        assert_eq!(timestamp(&message), None);
    }

    #[test]
    fn trash_and_spam_are_excluded() {
        let mut message = Message::default();
        assert!(!is_excluded(&message));
        message.label_ids = vec!["UNREAD".into(), "TRASH".into()];
        assert!(is_excluded(&message));
    }
}
