//! Outputs: what a task says about one item, keyed by the item's id in the external
//! system.
//!
//! An output is one of three distinct cases: content to store, a deletion, or a failure
//! to fetch the item for good. They are separate variants, so no content can be taken
//! for a deletion: a Slack message or a Graph resource whose JSON has a top-level
//! `"action": "delete"` field is content like any other.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// What one task produced about one item.
///
/// The id is the item's id in the external system: the store keys content by
/// `(user integration, id)`, so the same item produced twice is stored once.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Content to store (insert, or update when it changed).
    Item {
        /// The item's unique id in the external system.
        id: String,
        /// When the item was created in the external system, if known.
        timestamp: Option<DateTime<Utc>>,
        /// The integration-defined content.
        content: Value,
        /// The version of the item stored (see [`crate::ItemRef`]), for a service with
        /// versions.
        version: Option<String>,
    },
    /// The item was deleted in the external system (or left the synced set): the
    /// stored row is soft-deleted.
    Deleted {
        /// The item's unique id in the external system.
        id: String,
    },
    /// The item could not be fetched or decoded, for good (the guide's non-2xx output):
    /// the engine logs it, counts it (`item_errors`) and stores the marker
    /// `{"failed": true, "code": <code>, "error": {"error": <error>}}` in place of the
    /// content (the shape stored since before outputs were typed), so
    /// the item is known (not fetched again by every listing) and a reader sees why.
    Failed {
        /// The item's unique id in the external system.
        id: String,
        /// An HTTP-style status saying what went wrong (for example 502: the service
        /// answered with something that is not the documented format).
        code: u16,
        /// What went wrong.
        error: String,
        /// The version that failed, for a service with versions: a listing at this
        /// version does not queue the item again, a newer version does.
        version: Option<String>,
    },
}

impl Output {
    /// A successfully fetched item.
    pub fn item(id: impl Into<String>, timestamp: Option<DateTime<Utc>>, content: Value) -> Self {
        Output::Item {
            id: id.into(),
            timestamp,
            content,
            version: None,
        }
    }

    /// A deletion of the item `id` in the external system.
    pub fn deleted(id: impl Into<String>) -> Self {
        Output::Deleted { id: id.into() }
    }

    /// A failure to fetch or decode the item `id`: the page it belongs to goes on, and
    /// the item is stored as a failure marker. Use it for what retrying cannot fix
    /// (content that does not decode, an item the service refuses to serve); return an
    /// error from the task for what a retry may fix.
    pub fn failed(id: impl Into<String>, code: u16, message: impl Into<String>) -> Self {
        Output::Failed {
            id: id.into(),
            code,
            error: message.into(),
            version: None,
        }
    }

    /// The same item or failure, at `version` (a deletion has no version and is
    /// returned unchanged).
    pub fn with_version(mut self, new: impl Into<String>) -> Self {
        match &mut self {
            Output::Item { version, .. } | Output::Failed { version, .. } => {
                *version = Some(new.into());
            }
            Output::Deleted { .. } => {}
        }
        self
    }

    /// The version of an item or failure, when it has one.
    pub fn version(&self) -> Option<&str> {
        match self {
            Output::Item { version, .. } | Output::Failed { version, .. } => version.as_deref(),
            Output::Deleted { .. } => None,
        }
    }

    /// The item's id in the external system.
    pub fn id(&self) -> &str {
        match self {
            Output::Item { id, .. } | Output::Deleted { id } | Output::Failed { id, .. } => id,
        }
    }

    /// Whether this output is a deletion.
    pub fn is_delete(&self) -> bool {
        matches!(self, Output::Deleted { .. })
    }

    /// Whether this output reports a failure.
    pub fn is_failure(&self) -> bool {
        matches!(self, Output::Failed { .. })
    }

    /// The content to store, for an item; `null` for a deletion or a failure.
    pub fn content(&self) -> &Value {
        static NULL: Value = Value::Null;
        match self {
            Output::Item { content, .. } => content,
            _ => &NULL,
        }
    }

    /// The item's creation time, for an item that has one.
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        match self {
            Output::Item { timestamp, .. } => *timestamp,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_cases_are_distinct() {
        assert!(Output::deleted("a").is_delete());
        assert!(!Output::deleted("a").is_failure());
        assert!(Output::failed("a", 500, "boom").is_failure());
        assert_eq!(Output::failed("a", 500, "boom").id(), "a");
        // Content that looks like the old deletion marker is content.
        let item = Output::item("a", None, serde_json::json!({"action": "delete"}));
        assert!(!item.is_delete());
        assert_eq!(item.content(), &serde_json::json!({"action": "delete"}));
        assert!(Output::deleted("a").content().is_null());
    }

    #[test]
    fn versions_belong_to_items_and_failures() {
        let item = Output::item("a", None, serde_json::json!({})).with_version("7");
        assert_eq!(item.version(), Some("7"));
        assert_eq!(
            Output::failed("a", 502, "x").with_version("8").version(),
            Some("8")
        );
        assert_eq!(Output::deleted("a").with_version("9").version(), None);
        assert_eq!(
            Output::item("a", None, serde_json::json!({})).version(),
            None
        );
    }
}
