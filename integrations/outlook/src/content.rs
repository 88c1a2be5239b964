//! A message as Graph sends it, and as it is stored.
//!
//! # Versions
//! Every listing (`messages`, `messages/delta`) and every fetch reads the message's
//! `changeKey` (Exchange changes it with every change: read state, flag, categories,
//! a move) and `parentFolderId`, and the item is asked about and stored at the
//! version `"{changeKey}|{parentFolderId}"` ([`version`]), `lastModifiedDateTime`
//! standing in for a missing `changeKey`. An unchanged message is therefore never
//! fetched or written again, a changed one always is, and the stored version says
//! which folder the stored copy is in ([`folder_of_version`]): what the comparison
//! of one folder after an expired delta link reads, as the store keeps no other
//! per-folder index. Graph's ids are base64 (`+`, `/`, `=`, `-`, `_`), never `|`.
//!
//! # Stored content
//! [`message_content`] writes one JSON object per message, every field always present
//! (`null` or empty when Graph gives nothing):
//!
//! | field | from |
//! |---|---|
//! | `id` | the immutable message id (the item's external id) |
//! | `subject` | `subject` |
//! | `from` | `from.emailAddress` as `{name, address}`, or `null` |
//! | `toRecipients`, `ccRecipients`, `bccRecipients` | lists of `{name, address}` |
//! | `receivedDateTime`, `sentDateTime` | as Graph writes them (also the item's timestamp: `receivedDateTime`) |
//! | `conversationId`, `internetMessageId` | as given |
//! | `folder` | `{id, name, path}`: the folder's display name and its path of display names (`/Inbox/Projects`) |
//! | `categories` | `categories` |
//! | `isRead`, `isDraft`, `importance` | as given (`importance` `normal` when absent) |
//! | `flag` | `flag.flagStatus` (`notFlagged`, `flagged`, `complete`) |
//! | `hasAttachments` | `hasAttachments` (false when the message has inline attachments only) |
//! | `attachments` | with `hasAttachments` only: `{name, size, contentType, isInline}` of each, at most [`MAX_ATTACHMENTS`] |
//! | `body` | `{contentType: "text", text, truncated}`: the text body (`Prefer: outlook.body-content-type="text"`), cut at `maxBodyBytes` |
//! | `changeKey`, `lastModifiedDateTime` | the version read |

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

/// The most attachments listed in one message's content.
pub const MAX_ATTACHMENTS: usize = 250;

/// What separates the change stamp from the folder id in a version.
const VERSION_SEPARATOR: char = '|';

/// The properties a fetch selects.
pub const MESSAGE_SELECT: &str = "id,changeKey,lastModifiedDateTime,parentFolderId,subject,from,\
toRecipients,ccRecipients,bccRecipients,receivedDateTime,sentDateTime,conversationId,\
internetMessageId,categories,isRead,isDraft,importance,flag,hasAttachments,body";

/// The properties a listing or a delta round selects: enough to know the version.
pub const LISTING_SELECT: &str =
    "id,changeKey,lastModifiedDateTime,parentFolderId,receivedDateTime";

/// The properties of an attachment listing.
pub const ATTACHMENT_SELECT: &str = "name,size,contentType,isInline";

/// `emailAddress` of a recipient.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddress {
    /// The display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The address.
    #[serde(default)]
    pub address: Option<String>,
}

/// A recipient: `{"emailAddress": {...}}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    /// Its address.
    #[serde(default)]
    pub email_address: Option<EmailAddress>,
}

/// `body`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    /// `text` or `html`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// The body.
    #[serde(default)]
    pub content: Option<String>,
}

/// `flag`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowupFlag {
    /// `notFlagged`, `flagged` or `complete`.
    #[serde(default)]
    pub flag_status: Option<String>,
}

/// A message as a fetch reads it (every property optional but the id: a property of
/// the wrong type makes the message undecodable, a failure of that item only).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)] // Graph's own property names, listed in the module docs.
pub struct Message {
    pub id: String,
    #[serde(default)]
    pub change_key: Option<String>,
    #[serde(default)]
    pub last_modified_date_time: Option<String>,
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub from: Option<Recipient>,
    #[serde(default)]
    pub to_recipients: Option<Vec<Recipient>>,
    #[serde(default)]
    pub cc_recipients: Option<Vec<Recipient>>,
    #[serde(default)]
    pub bcc_recipients: Option<Vec<Recipient>>,
    #[serde(default)]
    pub received_date_time: Option<String>,
    #[serde(default)]
    pub sent_date_time: Option<String>,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub internet_message_id: Option<String>,
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    #[serde(default)]
    pub is_read: Option<bool>,
    #[serde(default)]
    pub is_draft: Option<bool>,
    #[serde(default)]
    pub importance: Option<String>,
    #[serde(default)]
    pub flag: Option<FollowupFlag>,
    #[serde(default)]
    pub has_attachments: Option<bool>,
    #[serde(default)]
    pub body: Option<ItemBody>,
}

/// One attachment as its listing reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The file name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its size in bytes.
    #[serde(default)]
    pub size: Option<i64>,
    /// Its MIME type.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Whether it is inline.
    #[serde(default)]
    pub is_inline: Option<bool>,
}

/// The folder a message is in, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderInfo {
    /// The folder id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its path of display names (`/Inbox/Projects`).
    pub path: String,
}

/// The version of a message (see the module docs): its `changeKey` (else
/// `lastModifiedDateTime`) and its folder.
pub fn version(change_key: Option<&str>, last_modified: Option<&str>, folder_id: &str) -> String {
    let stamp = change_key
        .filter(|s| !s.is_empty())
        .or(last_modified.filter(|s| !s.is_empty()))
        .unwrap_or_default();
    format!("{stamp}{VERSION_SEPARATOR}{folder_id}")
}

/// The folder a stored version says the message is in.
pub fn folder_of_version(version: &str) -> Option<&str> {
    version
        .rsplit_once(VERSION_SEPARATOR)
        .map(|(_, folder)| folder)
        .filter(|folder| !folder.is_empty())
}

/// The version of a listed or delta entry (a JSON object with the listing's
/// properties), `listed_in` standing in for a missing `parentFolderId`.
pub fn version_of_entry(entry: &Value, listed_in: &str) -> String {
    let text = |key: &str| entry.get(key).and_then(Value::as_str);
    version(
        text("changeKey"),
        text("lastModifiedDateTime"),
        text("parentFolderId").unwrap_or(listed_in),
    )
}

impl Message {
    /// The message's version, in `fallback_folder` when Graph did not say which.
    pub fn version(&self, fallback_folder: &str) -> String {
        version(
            self.change_key.as_deref(),
            self.last_modified_date_time.as_deref(),
            self.parent_folder_id.as_deref().unwrap_or(fallback_folder),
        )
    }

    /// `receivedDateTime`, the item's timestamp.
    pub fn received(&self) -> Option<DateTime<Utc>> {
        self.received_date_time
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    }
}

fn address(recipient: &Recipient) -> Value {
    let email = recipient.email_address.clone().unwrap_or_default();
    json!({"name": email.name, "address": email.address})
}

fn addresses(list: Option<&Vec<Recipient>>) -> Value {
    Value::Array(list.into_iter().flatten().map(address).collect())
}

/// `text` cut to at most `max_bytes` bytes at a character boundary, and whether it was
/// cut.
pub fn cut_text(text: &str, max_bytes: usize) -> (&str, bool) {
    if text.len() <= max_bytes {
        return (text, false);
    }
    let mut end = max_bytes;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// The stored content of `message` in `folder`, with its attachments (listed only
/// when `hasAttachments`; see the module docs).
pub fn message_content(
    message: &Message,
    folder: &FolderInfo,
    attachments: &[Attachment],
    max_body_bytes: usize,
) -> Value {
    let body_text = message
        .body
        .as_ref()
        .and_then(|b| b.content.as_deref())
        .unwrap_or_default();
    let (text, truncated) = cut_text(body_text, max_body_bytes);
    let body_type = message
        .body
        .as_ref()
        .and_then(|b| b.content_type.as_deref())
        .unwrap_or("text");
    let has_attachments = message.has_attachments.unwrap_or(false);
    let attachments: Vec<Value> = if has_attachments {
        attachments
            .iter()
            .take(MAX_ATTACHMENTS)
            .map(|a| {
                json!({
                    "name": a.name,
                    "size": a.size,
                    "contentType": a.content_type,
                    "isInline": a.is_inline.unwrap_or(false),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "id": message.id,
        "subject": message.subject,
        "from": message.from.as_ref().map(address),
        "toRecipients": addresses(message.to_recipients.as_ref()),
        "ccRecipients": addresses(message.cc_recipients.as_ref()),
        "bccRecipients": addresses(message.bcc_recipients.as_ref()),
        "receivedDateTime": message.received_date_time,
        "sentDateTime": message.sent_date_time,
        "conversationId": message.conversation_id,
        "internetMessageId": message.internet_message_id,
        "folder": {"id": folder.id, "name": folder.name, "path": folder.path},
        "categories": message.categories.clone().unwrap_or_default(),
        "isRead": message.is_read.unwrap_or(false),
        "isDraft": message.is_draft.unwrap_or(false),
        "importance": message.importance.as_deref().unwrap_or("normal"),
        "flag": message
            .flag
            .as_ref()
            .and_then(|f| f.flag_status.as_deref())
            .unwrap_or("notFlagged"),
        "hasAttachments": has_attachments,
        "attachments": attachments,
        "body": {"contentType": body_type, "text": text, "truncated": truncated},
        "changeKey": message.change_key,
        "lastModifiedDateTime": message.last_modified_date_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        serde_json::from_value(json!({
            "id": "AAkALg=",
            "changeKey": "CQAAABYAAAC",
            "lastModifiedDateTime": "2026-03-01T10:00:00Z",
            "parentFolderId": "AAMkAD-inbox=",
            "subject": "Quarterly numbers",
            "from": {"emailAddress": {"name": "Ada", "address": "ada@example.com"}},
            "toRecipients": [{"emailAddress": {"name": "Me", "address": "me@example.com"}}],
            "ccRecipients": [],
            "bccRecipients": null,
            "receivedDateTime": "2026-03-01T09:59:00Z",
            "sentDateTime": "2026-03-01T09:58:00Z",
            "conversationId": "AAQkAD=",
            "internetMessageId": "<1@example.com>",
            "categories": ["Blue"],
            "isRead": true,
            "isDraft": false,
            "importance": "high",
            "flag": {"flagStatus": "flagged"},
            "hasAttachments": true,
            "body": {"contentType": "text", "content": "héllo world"}
        }))
        .unwrap()
    }

    #[test]
    fn versions_carry_the_stamp_and_the_folder() {
        let m = message();
        assert_eq!(m.version("x"), "CQAAABYAAAC|AAMkAD-inbox=");
        assert_eq!(folder_of_version(&m.version("x")), Some("AAMkAD-inbox="));
        assert_eq!(version(None, Some("2026"), "f"), "2026|f");
        assert_eq!(version(Some(""), None, "f"), "|f");
        assert_eq!(folder_of_version("abc"), None);
        assert_eq!(folder_of_version("abc|"), None);
        let entry = json!({"id": "m", "changeKey": "k"});
        assert_eq!(version_of_entry(&entry, "listed"), "k|listed");
        assert_eq!(m.received().map(|t| t.timestamp()), Some(1_772_359_140));
    }

    #[test]
    fn content_has_every_field_and_attachments_only_with_has_attachments() {
        let folder = FolderInfo {
            id: "AAMkAD-inbox=".into(),
            name: "Inbox".into(),
            path: "/Inbox".into(),
        };
        let attachments = vec![Attachment {
            name: Some("a.pdf".into()),
            size: Some(12),
            content_type: Some("application/pdf".into()),
            is_inline: Some(false),
        }];
        let content = message_content(&message(), &folder, &attachments, 6);
        assert_eq!(
            content["from"],
            json!({"name": "Ada", "address": "ada@example.com"})
        );
        assert_eq!(content["bccRecipients"], json!([]));
        assert_eq!(content["folder"]["path"], "/Inbox");
        assert_eq!(content["flag"], "flagged");
        assert_eq!(content["attachments"][0]["name"], "a.pdf");
        // Cut at a character boundary: "hé" is 3 bytes, "hél" 4... 6 bytes is "héllo".
        assert_eq!(content["body"]["text"], "héllo");
        assert_eq!(content["body"]["truncated"], true);
        let mut plain = message();
        plain.has_attachments = Some(false);
        let content = message_content(&plain, &folder, &attachments, 1 << 20);
        assert_eq!(content["attachments"], json!([]));
        assert_eq!(content["body"]["truncated"], false);
        let bare: Message = serde_json::from_value(json!({"id": "x"})).unwrap();
        let content = message_content(&bare, &folder, &[], 10);
        assert_eq!(content["importance"], "normal");
        assert_eq!(content["flag"], "notFlagged");
        assert_eq!(content["from"], Value::Null);
    }

    #[test]
    fn a_property_of_the_wrong_type_is_undecodable() {
        let bad = serde_json::from_value::<Message>(json!({"id": "x", "subject": 7}));
        assert!(bad.is_err());
        assert!(serde_json::from_value::<Message>(json!({"subject": "no id"})).is_err());
    }

    #[test]
    fn cutting_never_splits_a_character() {
        assert_eq!(cut_text("ééé", 3), ("é", true));
        assert_eq!(cut_text("abc", 3), ("abc", false));
        assert_eq!(cut_text("abc", 0), ("", true));
    }
}
