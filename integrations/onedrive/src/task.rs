//! The OneDrive task types, in their stored `{type, payload}` form.
//!
//! The type strings (`start`, `syncDelta`, `fetchItem`, `refreshFolder`,
//! `checkChanges`) and the payload field names are stored in the job queue, so they
//! are spelled out with `rename_all` and must never change. Fields added later take
//! `#[serde(default)]`, so that queued jobs still decode.

use serde::{Deserialize, Serialize};
use tributary_sdk::TaskType;

/// The dedupe key of the task that opens a delta round: at most one is pending per
/// account, so two rounds never start from one delta link at once.
pub const OPEN_ROUND_KEY: &str = "openDeltaRound";

/// One unit of OneDrive work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "camelCase")]
pub enum OneDriveTask {
    /// The scheduled entry point: queues the opening of a delta round (the first
    /// round, the backfill, on the first run), with a look at the top of the drive.
    Start,
    /// Reads one page of a delta round: with `next_link`, the page a previous page
    /// handed out; without, a new round from the stored delta link (or the first
    /// round), unless a round is in progress.
    #[serde(rename_all = "camelCase")]
    SyncDelta {
        /// The `@odata.nextLink` of the page to read; `None`: open a round.
        #[serde(default)]
        next_link: Option<String>,
        /// Whether the round is the drive's first (it lists every item): its pages
        /// skip items whose fetch is already queued.
        #[serde(default)]
        initial_round: bool,
        /// Whether to list the first page of the drive's root folder too (`start`'s
        /// look at the top of the drive), once a first round exists.
        #[serde(default)]
        list_root: bool,
    },
    /// Fetches one item's metadata (and a text-like file's text) and stores it, or
    /// its deletion.
    #[serde(rename_all = "camelCase")]
    FetchItem {
        /// The drive item id.
        item_id: String,
    },
    /// Stores again what lies in a folder that was renamed or moved (their paths
    /// changed): one page of its children, and a task per subfolder.
    #[serde(rename_all = "camelCase")]
    RefreshFolder {
        /// The folder whose children to refresh.
        folder_id: String,
        /// The `@odata.nextLink` of the page of children to list; `None` for the first.
        #[serde(default)]
        next_link: Option<String>,
        /// How far below the renamed or moved folder this one is (bounded, so that a
        /// folder graph with a cycle cannot queue work forever).
        #[serde(default)]
        depth: u32,
    },
    /// The history check: queues the opening of a delta round from the stored delta
    /// link.
    CheckChanges,
}

impl TaskType for OneDriveTask {
    fn item_id(&self) -> Option<&str> {
        match self {
            OneDriveTask::FetchItem { item_id } => Some(item_id),
            _ => None,
        }
    }

    fn dedupe_key(&self) -> Option<String> {
        match self {
            OneDriveTask::SyncDelta {
                next_link: None, ..
            } => Some(OPEN_ROUND_KEY.to_owned()),
            _ => None,
        }
    }
}

impl OneDriveTask {
    /// The task that fetches item `id`.
    pub fn fetch(id: impl Into<String>) -> OneDriveTask {
        OneDriveTask::FetchItem { item_id: id.into() }
    }

    /// The task that opens a delta round (`list_root`: with a look at the root).
    pub fn open_round(list_root: bool) -> OneDriveTask {
        OneDriveTask::SyncDelta {
            next_link: None,
            initial_round: false,
            list_root,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tributary_sdk::{ErrorClass, Task};

    #[test]
    fn stored_shapes_are_stable() {
        let cases = [
            (
                OneDriveTask::Start,
                json!({"type": "start", "payload": null}),
            ),
            (
                OneDriveTask::SyncDelta {
                    next_link: Some("https://g/next".into()),
                    initial_round: true,
                    list_root: false,
                },
                json!({"type": "syncDelta", "payload": {
                    "nextLink": "https://g/next", "initialRound": true, "listRoot": false}}),
            ),
            (
                OneDriveTask::fetch("01ABC"),
                json!({"type": "fetchItem", "payload": {"itemId": "01ABC"}}),
            ),
            (
                OneDriveTask::RefreshFolder {
                    folder_id: "d1".into(),
                    next_link: None,
                    depth: 2,
                },
                json!({"type": "refreshFolder", "payload": {"folderId": "d1", "nextLink": null, "depth": 2}}),
            ),
            (
                OneDriveTask::CheckChanges,
                json!({"type": "checkChanges", "payload": null}),
            ),
        ];
        for (typed, stored) in cases {
            let task = Task::from_typed(&typed).unwrap();
            assert_eq!(task.to_json(), stored);
            let back = Task::from_json(&stored).unwrap();
            assert_eq!(back.decode::<OneDriveTask>().unwrap(), typed);
        }
        let short = Task::new("syncDelta", json!({}));
        assert_eq!(
            short.decode::<OneDriveTask>().unwrap(),
            OneDriveTask::open_round(false)
        );
    }

    #[test]
    fn fetches_name_their_item_and_round_openings_are_deduplicated() {
        let task = Task::from_typed(&OneDriveTask::fetch("i1")).unwrap();
        assert_eq!(task.item_id.as_deref(), Some("i1"));
        let open = Task::from_typed(&OneDriveTask::open_round(true)).unwrap();
        assert_eq!(open.dedupe_key.as_deref(), Some(OPEN_ROUND_KEY));
        let next = Task::from_typed(&OneDriveTask::SyncDelta {
            next_link: Some("https://g/n".into()),
            initial_round: false,
            list_root: false,
        })
        .unwrap();
        assert_eq!(next.dedupe_key, None);
        let bad = Task::new("fetchItem", json!({"itemId": 7})).decode::<OneDriveTask>();
        assert_eq!(bad.unwrap_err().class(), ErrorClass::Permanent);
        let unknown = Task::new("uploadFile", json!({})).decode::<OneDriveTask>();
        assert_eq!(unknown.unwrap_err().class(), ErrorClass::Permanent);
    }
}
