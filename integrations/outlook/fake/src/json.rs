//! Graph's JSON for messages, mail folders and attachments, field by field as the
//! `message`, `mailFolder` and `fileAttachment` resources name them, and the raw MIME
//! of `/$value`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tributary_msgraph_fake::BodyType;
use tributary_msgraph_fake::odata::select_fields;

use crate::Recipient;
use crate::mailbox::{Attachment, Folder, Mailbox, Message};

/// The properties of a message `$select` takes.
pub(crate) const MESSAGE_PROPERTIES: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "uniqueBody",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
    "internetMessageHeaders",
];

/// Properties returned only when `$select` names them.
const SELECT_ONLY: &[&str] = &["uniqueBody", "internetMessageHeaders"];

/// The properties of a mail folder `$select` takes.
pub(crate) const FOLDER_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "parentFolderId",
    "childFolderCount",
    "unreadItemCount",
    "totalItemCount",
    "isHidden",
];

/// The properties of an attachment `$select` takes.
pub(crate) const ATTACHMENT_PROPERTIES: &[&str] = &[
    "id",
    "lastModifiedDateTime",
    "name",
    "contentType",
    "size",
    "isInline",
    "contentId",
    "contentLocation",
    "contentBytes",
];

/// How one request wants items rendered.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub(crate) immutable_ids: bool,
    pub(crate) body_type: BodyType,
    pub(crate) select: Option<Vec<&'static str>>,
    pub(crate) expand_attachments: bool,
}

/// Graph's time format: whole seconds, UTC, `Z`.
pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn recipient(r: &Recipient) -> Value {
    json!({"emailAddress": {"name": r.name, "address": r.address}})
}

fn recipients(list: &[Recipient]) -> Value {
    Value::Array(list.iter().map(recipient).collect())
}

/// HTML-escapes text.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// The HTML body Outlook would store for a text body.
pub(crate) fn html_of_text(text: &str) -> String {
    let paragraphs: String = text
        .split("\r\n\r\n")
        .map(|p| format!("<p>{}</p>", escape(p).replace("\r\n", "<br>")))
        .collect();
    format!(
        "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body><div>{paragraphs}</div></body></html>"
    )
}

fn id_of(message: &Message, view: &View) -> String {
    if view.immutable_ids {
        message.immutable_id.clone()
    } else {
        message.mutable_id.clone()
    }
}

/// The message resource.
pub(crate) fn message(mailbox: &Mailbox, message: &Message, view: &View) -> Value {
    let folder: &Folder = &mailbox.folders[message.folder];
    let id = id_of(message, view);
    let body = match view.body_type {
        BodyType::Text => json!({"contentType": "text", "content": message.body_text}),
        BodyType::Html => json!({"contentType": "html", "content": message.body_html}),
    };
    let encoded_id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    let mut index = vec![0x01_u8, 0xd0];
    index.extend_from_slice(&message.key.to_be_bytes());
    let mut object = Map::new();
    object.insert(
        "@odata.etag".into(),
        Value::String(format!("W/\"{}\"", message.change_key())),
    );
    let fields: [(&str, Value); 29] = [
        ("id", Value::String(id)),
        ("createdDateTime", Value::String(time(message.created))),
        (
            "lastModifiedDateTime",
            Value::String(time(message.modified)),
        ),
        ("changeKey", Value::String(message.change_key())),
        ("categories", json!(message.categories)),
        ("receivedDateTime", Value::String(time(message.received))),
        ("sentDateTime", Value::String(time(message.sent))),
        ("hasAttachments", Value::Bool(message.has_attachments())),
        (
            "internetMessageId",
            Value::String(message.internet_message_id.clone()),
        ),
        ("subject", Value::String(message.subject.clone())),
        ("bodyPreview", Value::String(message.body_preview())),
        (
            "importance",
            Value::String(message.importance.as_str().to_owned()),
        ),
        ("parentFolderId", Value::String(folder.id.clone())),
        (
            "conversationId",
            Value::String(message.conversation_id.clone()),
        ),
        ("conversationIndex", Value::String(STANDARD.encode(index))),
        ("isDeliveryReceiptRequested", Value::Bool(false)),
        ("isReadReceiptRequested", Value::Bool(false)),
        ("isRead", Value::Bool(message.is_read)),
        ("isDraft", Value::Bool(message.is_draft)),
        (
            "webLink",
            Value::String(format!(
                "https://outlook.office365.com/owa/?ItemID={encoded_id}&exvsurl=1&viewmodel=ReadMessageItem"
            )),
        ),
        (
            "inferenceClassification",
            Value::String("focused".to_owned()),
        ),
        ("body", body.clone()),
        ("sender", recipient(&message.from)),
        ("from", recipient(&message.from)),
        ("toRecipients", recipients(&message.to)),
        ("ccRecipients", recipients(&message.cc)),
        ("bccRecipients", recipients(&message.bcc)),
        ("replyTo", Value::Array(Vec::new())),
        ("flag", json!({"flagStatus": message.flag.as_str()})),
    ];
    for (name, value) in fields {
        object.insert(name.into(), value);
    }
    if let Some(select) = &view.select {
        if select.contains(&"uniqueBody") {
            object.insert("uniqueBody".into(), body);
        }
        if select.contains(&"internetMessageHeaders") {
            object.insert("internetMessageHeaders".into(), headers(message));
        }
    }
    let mut object = select_fields(object, view.select.as_deref(), &["id"]);
    if view.select.is_none() {
        for name in SELECT_ONLY {
            object.remove(*name);
        }
    }
    if view.expand_attachments {
        let list: Vec<Value> = message
            .attachments
            .iter()
            .map(|a| attachment(message, a, None))
            .collect();
        object.insert("attachments".into(), Value::Array(list));
    }
    Value::Object(object)
}

fn headers(message: &Message) -> Value {
    let list = [
        ("Message-ID", message.internet_message_id.clone()),
        ("Date", message.sent.to_rfc2822()),
        ("From", mime_address(&message.from)),
        (
            "To",
            message
                .to
                .iter()
                .map(mime_address)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("Subject", message.subject.clone()),
        ("MIME-Version", "1.0".to_owned()),
    ];
    Value::Array(
        list.into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect(),
    )
}

/// A removed message in a delta page.
pub(crate) fn removed(id: &str, reason: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.message",
        "id": id,
        "@removed": {"reason": reason},
    })
}

/// The mailFolder resource.
pub(crate) fn folder(mailbox: &Mailbox, key: usize, select: Option<&[&str]>) -> Value {
    let folder: &Folder = &mailbox.folders[key];
    let parent_id = match folder.parent {
        Some(parent) => mailbox.folders[parent].id.clone(),
        // The root's parent is outside the mail folders' tree.
        None => format!("AAMkAD{}AAEBAAA=", mailbox.tag),
    };
    let mut object = Map::new();
    object.insert("id".into(), Value::String(folder.id.clone()));
    object.insert("displayName".into(), Value::String(folder.name.clone()));
    object.insert("parentFolderId".into(), Value::String(parent_id));
    object.insert("childFolderCount".into(), json!(folder.children.len()));
    object.insert("unreadItemCount".into(), json!(mailbox.unread_count(key)));
    object.insert("totalItemCount".into(), json!(folder.messages.len()));
    object.insert("isHidden".into(), Value::Bool(false));
    Value::Object(select_fields(object, select, &["id"]))
}

/// The fileAttachment resource.
pub(crate) fn attachment(message: &Message, a: &Attachment, select: Option<&[&str]>) -> Value {
    let mut object = Map::new();
    object.insert(
        "@odata.type".into(),
        Value::String("#microsoft.graph.fileAttachment".to_owned()),
    );
    object.insert(
        "@odata.mediaContentType".into(),
        Value::String(a.content_type.clone()),
    );
    object.insert("id".into(), Value::String(a.id.clone()));
    object.insert(
        "lastModifiedDateTime".into(),
        Value::String(time(message.created)),
    );
    object.insert("name".into(), Value::String(a.name.clone()));
    object.insert("contentType".into(), Value::String(a.content_type.clone()));
    object.insert("size".into(), json!(a.content.len()));
    object.insert("isInline".into(), Value::Bool(a.is_inline));
    object.insert("contentId".into(), json!(a.content_id));
    object.insert("contentLocation".into(), Value::Null);
    object.insert(
        "contentBytes".into(),
        Value::String(STANDARD.encode(&a.content)),
    );
    Value::Object(select_fields(object, select, &["id"]))
}

fn mime_header_text(text: &str) -> String {
    if text.is_ascii() {
        text.to_owned()
    } else {
        format!("=?utf-8?B?{}?=", STANDARD.encode(text.as_bytes()))
    }
}

fn mime_address(r: &Recipient) -> String {
    if r.name.is_empty() {
        format!("<{}>", r.address)
    } else if r.name.is_ascii() {
        format!("\"{}\" <{}>", r.name.replace('"', "'"), r.address)
    } else {
        format!("{} <{}>", mime_header_text(&r.name), r.address)
    }
}

fn base64_lines(bytes: &[u8]) -> String {
    let encoded = STANDARD.encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push_str("\r\n");
    }
    out
}

/// The message as RFC 5322 MIME (`GET /me/messages/{id}/$value`).
pub(crate) fn mime(message: &Message) -> String {
    let mixed = format!("_mixed_{}_", message.key);
    let alternative = format!("_alt_{}_", message.key);
    let mut out = String::new();
    out.push_str(&format!("From: {}\r\n", mime_address(&message.from)));
    if !message.to.is_empty() {
        let to: Vec<String> = message.to.iter().map(mime_address).collect();
        out.push_str(&format!("To: {}\r\n", to.join(", ")));
    }
    if !message.cc.is_empty() {
        let cc: Vec<String> = message.cc.iter().map(mime_address).collect();
        out.push_str(&format!("Cc: {}\r\n", cc.join(", ")));
    }
    out.push_str(&format!(
        "Subject: {}\r\n",
        mime_header_text(&message.subject)
    ));
    out.push_str(&format!("Date: {}\r\n", message.sent.to_rfc2822()));
    out.push_str(&format!("Message-ID: {}\r\n", message.internet_message_id));
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{mixed}\"\r\n\r\n"
    ));
    out.push_str(&format!("--{mixed}\r\n"));
    out.push_str(&format!(
        "Content-Type: multipart/alternative; boundary=\"{alternative}\"\r\n\r\n"
    ));
    for (kind, body) in [("plain", &message.body_text), ("html", &message.body_html)] {
        out.push_str(&format!("--{alternative}\r\n"));
        out.push_str(&format!("Content-Type: text/{kind}; charset=\"utf-8\"\r\n"));
        out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        out.push_str(&base64_lines(body.as_bytes()));
    }
    out.push_str(&format!("--{alternative}--\r\n"));
    for a in &message.attachments {
        out.push_str(&format!("--{mixed}\r\n"));
        let name = mime_header_text(&a.name);
        out.push_str(&format!(
            "Content-Type: {}; name=\"{name}\"\r\n",
            a.content_type
        ));
        let disposition = if a.is_inline { "inline" } else { "attachment" };
        out.push_str(&format!(
            "Content-Disposition: {disposition}; filename=\"{name}\"\r\n"
        ));
        if let Some(cid) = &a.content_id {
            out.push_str(&format!("Content-ID: <{cid}>\r\n"));
        }
        out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        out.push_str(&base64_lines(&a.content));
    }
    out.push_str(&format!("--{mixed}--\r\n"));
    out
}
