//! Turns an RFC 822 source into the `Message` JSON that `messages.get` (`format=full`)
//! returns for it, so decoding tests can start from real-world literals.
//!
//! Following the discovery document's `MessagePart`: header values stay raw (only
//! unfolded), multipart and message/rfc822 parts carry `parts`, and a leaf's
//! `body.data` is base64url of its bytes after transfer decoding, still in the part's
//! charset. Attachments get an `attachmentId` instead of inline data. Part ids follow
//! Gmail's scheme: `""` for the root, then `0`, `1`, `1.0`, ...

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Encoding, MessageParser, MimeHeaders, PartType};
use serde_json::{Value, json};

/// The API's `Message` JSON for the RFC 822 source `raw`.
pub fn api_message_json(id: &str, raw: &[u8]) -> Value {
    let message = MessageParser::default()
        .parse(raw)
        .expect("the test source parses as a message");
    json!({
        "id": id,
        "threadId": format!("thread-{id}"),
        "labelIds": ["INBOX"],
        "snippet": "",
        "historyId": "1",
        "internalDate": "1700000000000",
        "sizeEstimate": raw.len(),
        "payload": part_json(&message, 0, String::new()),
    })
}

fn part_json(message: &mail_parser::Message<'_>, index: u32, part_id: String) -> Value {
    let raw = message.raw_message.as_ref();
    let part = &message.parts[index as usize];
    let headers: Vec<Value> = part
        .headers
        .iter()
        .map(|h| {
            let value = raw
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            let value = String::from_utf8_lossy(value).replace(['\r', '\n'], "");
            json!({"name": h.name.as_str(), "value": value.trim()})
        })
        .collect();
    let mime_type = part
        .content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        })
        .unwrap_or_else(|| "text/plain".into());
    let filename = part.attachment_name().unwrap_or_default().to_owned();
    let is_attachment = !filename.is_empty()
        || part
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
    let child_id = |n: usize| {
        if part_id.is_empty() {
            n.to_string()
        } else {
            format!("{part_id}.{n}")
        }
    };
    let (body, parts) = match &part.body {
        PartType::Multipart(children) => (
            json!({"size": 0}),
            children
                .iter()
                .enumerate()
                .map(|(n, &child)| part_json(message, child, child_id(n)))
                .collect(),
        ),
        PartType::Message(nested) => (
            json!({
                "size": part.offset_end.saturating_sub(part.offset_body),
                "attachmentId": format!("att-{part_id}"),
            }),
            vec![part_json(nested, 0, child_id(0))],
        ),
        _ => {
            let encoded = raw
                .get(part.offset_body as usize..part.offset_end as usize)
                .unwrap_or_default();
            let bytes = match part.encoding {
                Encoding::QuotedPrintable => quoted_printable_decode(encoded),
                Encoding::Base64 => base64_decode(encoded),
                Encoding::None => None,
            }
            .unwrap_or_else(|| encoded.to_vec());
            let body = if is_attachment {
                json!({"size": bytes.len(), "attachmentId": format!("att-{part_id}")})
            } else {
                json!({"size": bytes.len(), "data": URL_SAFE.encode(&bytes)})
            };
            (body, Vec::new())
        }
    };
    json!({
        "partId": part_id,
        "mimeType": mime_type,
        "filename": filename,
        "headers": headers,
        "body": body,
        "parts": parts,
    })
}
