//! Outputs: the content items a task produces, in the `{code, id, timestamp, content}`
//! shape of the specification.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One content item (or a deletion marker) produced by a task.
///
/// `id` is the item's id in the external system: the store keys content by
/// `(user integration, id)`, so the same item produced twice is stored once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// HTTP-style status: 2xx is content to store; anything else reports a failure for
    /// this item, which the engine logs, counts (`item_errors`) and stores as a marker
    /// `{"failed": true, "code": <code>, "error": <content>}` in place of the content, so
    /// the item is known (not fetched again by every listing) and a reader sees why.
    pub code: u16,
    /// The item's unique id in the external system.
    pub id: String,
    /// When the item was created in the external system, if known.
    pub timestamp: Option<DateTime<Utc>>,
    /// The integration-defined content; `{"action": "delete"}` marks a deletion.
    pub content: Value,
}

impl Output {
    /// A successfully fetched item.
    pub fn item(id: impl Into<String>, timestamp: Option<DateTime<Utc>>, content: Value) -> Self {
        Output {
            code: 200,
            id: id.into(),
            timestamp,
            content,
        }
    }

    /// A marker saying the item `id` was deleted in the external system.
    pub fn deleted(id: impl Into<String>) -> Self {
        Output {
            code: 200,
            id: id.into(),
            timestamp: None,
            content: serde_json::json!({ "action": "delete" }),
        }
    }

    /// A failure to fetch or decode the item `id` (the guide's `code: 500` output): the
    /// page it belongs to goes on, and the item is stored as a failure marker. Use it for
    /// what retrying cannot fix (content that does not decode, an item the service
    /// refuses to serve); return an error from the task for what a retry may fix.
    pub fn failed(id: impl Into<String>, code: u16, message: impl Into<String>) -> Self {
        Output {
            code,
            id: id.into(),
            timestamp: None,
            content: serde_json::json!({ "error": message.into() }),
        }
    }

    /// Whether this output marks a deletion.
    pub fn is_delete(&self) -> bool {
        self.content.get("action").and_then(Value::as_str) == Some("delete")
    }

    /// Whether this output carries content to store (a 2xx code).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_marker_is_recognised() {
        assert!(Output::deleted("a").is_delete());
        assert!(Output::deleted("a").is_success());
        assert!(!Output::item("a", None, serde_json::json!({"action": "keep"})).is_delete());
        assert!(!Output::failed("a", 500, "boom").is_success());
    }
}
