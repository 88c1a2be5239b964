//! Tasks: the unit of work, stored as `{type, payload}` JSON.
//!
//! An integration declares its tasks as a serde enum, adjacently tagged so that it
//! reads and writes exactly the stored shape:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use tributary_sdk::{Task, TaskType};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! #[serde(tag = "type", content = "payload", rename_all = "camelCase")]
//! enum ExampleTask {
//!     Start,
//!     #[serde(rename_all = "camelCase")]
//!     ListItems { page_token: Option<String> },
//!     #[serde(rename_all = "camelCase")]
//!     FetchItem { item_id: String },
//! }
//!
//! impl TaskType for ExampleTask {
//!     fn item_id(&self) -> Option<&str> {
//!         match self {
//!             ExampleTask::FetchItem { item_id } => Some(item_id),
//!             _ => None,
//!         }
//!     }
//! }
//!
//! let task = Task::from_typed(&ExampleTask::FetchItem { item_id: "m1".into() }).unwrap();
//! assert_eq!(task.task_type, "fetchItem");
//! assert_eq!(task.item_id.as_deref(), Some("m1"));
//! assert_eq!(task.decode::<ExampleTask>().unwrap(), ExampleTask::FetchItem { item_id: "m1".into() });
//! ```
//!
//! The type strings are stored in the database, so they are stable identifiers: name
//! them explicitly (`rename_all`), never derive them from Rust type names by accident.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::IntegrationError;

/// A task in its stored form: a type name, a JSON payload, and (for tasks that fetch
/// exactly one item) that item's external id.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The task type, one of the manifest's `taskTypes` (`start`, `getEmailList`, ...).
    pub task_type: String,
    /// The task's parameters; `null` when it has none.
    pub payload: Value,
    /// The external id of the single item this task fetches, if it fetches one.
    ///
    /// The engine never enqueues a second task for an item that already has one
    /// pending, and `content_exists` counts such an item as known.
    pub item_id: Option<String>,
    /// A key that keeps at most one such task pending per account
    /// ([`TaskType::dedupe_key`]): a second one is not enqueued while the first waits.
    /// Only read when the task is enqueued.
    pub dedupe_key: Option<String>,
}

/// A typed task enum of one integration (see the module docs for the expected shape).
pub trait TaskType: Serialize + DeserializeOwned + Send + Sync {
    /// The external id of the one item this task fetches, if any.
    fn item_id(&self) -> Option<&str> {
        None
    }

    /// A key naming the work this task does, when two pending tasks with the same key
    /// would do the same work (`poll:C024BE91L`: the next poll of one channel): while
    /// one is pending, the engine enqueues no other. Tasks that fetch an item are
    /// already deduplicated by their [`TaskType::item_id`].
    fn dedupe_key(&self) -> Option<String> {
        None
    }
}

impl Task {
    /// The `start` task, which every integration supports.
    pub fn start() -> Task {
        Task::new("start", Value::Null)
    }

    /// A task with this type and payload, fetching no single item.
    pub fn new(task_type: impl Into<String>, payload: Value) -> Task {
        Task {
            task_type: task_type.into(),
            payload,
            item_id: None,
            dedupe_key: None,
        }
    }

    /// The stored form of a typed task.
    pub fn from_typed<T: TaskType>(typed: &T) -> Result<Task, IntegrationError> {
        let value = serde_json::to_value(typed)
            .map_err(|e| IntegrationError::permanent(format!("failed to serialize task: {e}")))?;
        let mut task = Task::from_json(&value)?;
        task.item_id = typed.item_id().map(str::to_owned);
        task.dedupe_key = typed.dedupe_key();
        Ok(task)
    }

    /// Parses the stored `{type, payload}` JSON (without the item id, which is stored
    /// beside it).
    pub fn from_json(value: &Value) -> Result<Task, IntegrationError> {
        let task_type = value
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| IntegrationError::permanent("task has no string field `type`"))?;
        Ok(Task::new(
            task_type,
            value.get("payload").cloned().unwrap_or(Value::Null),
        ))
    }

    /// The stored `{type, payload}` JSON.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "type": self.task_type, "payload": self.payload })
    }

    /// Decodes this task into the integration's typed enum.
    ///
    /// An unknown type or a payload of the wrong shape is a permanent error naming the
    /// type and what serde found wrong: such a task can never succeed.
    pub fn decode<T: TaskType>(&self) -> Result<T, IntegrationError> {
        // A task without parameters may be stored with a `null` or `{}` payload; serde's
        // adjacently tagged unit variants accept only a missing payload, so drop it.
        let mut value = serde_json::Map::new();
        value.insert("type".into(), Value::String(self.task_type.clone()));
        let empty = match &self.payload {
            Value::Null => true,
            Value::Object(map) => map.is_empty(),
            _ => false,
        };
        if !empty {
            value.insert("payload".into(), self.payload.clone());
        }
        match serde_json::from_value::<T>(Value::Object(value.clone())) {
            Ok(typed) => Ok(typed),
            // A variant with only optional fields wants `{}` rather than nothing.
            Err(_) if empty => {
                value.insert("payload".into(), Value::Object(serde_json::Map::new()));
                serde_json::from_value::<T>(Value::Object(value)).map_err(|e| self.bad_task(e))
            }
            Err(e) => Err(self.bad_task(e)),
        }
    }

    fn bad_task(&self, e: serde_json::Error) -> IntegrationError {
        IntegrationError::permanent(format!(
            "invalid task `{}` with payload {}: {e}",
            self.task_type, self.payload
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "payload", rename_all = "camelCase")]
    enum T {
        Start,
        #[serde(rename_all = "camelCase")]
        List {
            page_token: Option<String>,
            #[serde(default)]
            empty_pages: u32,
        },
        #[serde(rename_all = "camelCase")]
        Fetch {
            id: String,
        },
    }
    impl TaskType for T {
        fn item_id(&self) -> Option<&str> {
            match self {
                T::Fetch { id } => Some(id),
                _ => None,
            }
        }
    }

    #[test]
    fn round_trips_through_stored_json() {
        for typed in [
            T::Start,
            T::List {
                page_token: Some("p2".into()),
                empty_pages: 1,
            },
            T::Fetch { id: "x".into() },
        ] {
            let task = Task::from_typed(&typed).unwrap();
            let stored = task.to_json();
            let back = Task::from_json(&stored).unwrap();
            assert_eq!(back.decode::<T>().unwrap(), typed);
        }
    }

    #[test]
    fn start_decodes_from_null_or_empty_payload() {
        assert_eq!(Task::start().decode::<T>().unwrap(), T::Start);
        let t = Task::new("start", serde_json::json!({}));
        assert_eq!(t.decode::<T>().unwrap(), T::Start);
    }

    #[test]
    fn optional_only_variant_decodes_from_missing_payload() {
        let t = Task::new("list", Value::Null);
        assert_eq!(
            t.decode::<T>().unwrap(),
            T::List {
                page_token: None,
                empty_pages: 0
            }
        );
    }

    #[test]
    fn unknown_type_is_permanent_and_names_it() {
        let err = Task::new("explode", Value::Null).decode::<T>().unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::Permanent);
        assert!(err.message().contains("explode"), "{}", err.message());
    }

    #[test]
    fn malformed_payload_is_permanent() {
        let err = Task::new("fetch", serde_json::json!({"id": 42}))
            .decode::<T>()
            .unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::Permanent);
        assert!(err.message().contains("fetch"), "{}", err.message());
    }

    #[test]
    fn stored_json_without_type_is_rejected() {
        assert!(Task::from_json(&serde_json::json!({"payload": {}})).is_err());
    }
}
