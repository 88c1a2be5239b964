//! The Google Drive task types, in their stored `{type, payload}` form.
//!
//! The type strings (`start`, `listFiles`, `downloadFile`, `refreshFolder`,
//! `checkChanges`) and the payload field names are stored in the job queue, so they
//! are spelled out with `rename_all` and must never change.

use serde::{Deserialize, Serialize};
use tributary_sdk::TaskType;

/// One unit of Drive work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "camelCase")]
pub enum DriveTask {
    /// The scheduled entry point: on the first run records the changes cursor and the
    /// folder tree, then lists the most recently modified files.
    Start,
    /// Lists one page of files (all drives), most recently modified first, and
    /// downloads those not stored at the version listed.
    #[serde(rename_all = "camelCase")]
    ListFiles {
        /// The page to list; `None` for the first page.
        #[serde(default)]
        page_token: Option<String>,
        /// How many pages in a row before this one had nothing new (the early stop).
        #[serde(default)]
        consecutive_empty_pages: u32,
    },
    /// Fetches one file's metadata and text and stores it (or its deletion).
    #[serde(rename_all = "camelCase")]
    DownloadFile {
        /// The Drive file id.
        file_id: String,
    },
    /// Stores again what lies under a folder that was renamed or moved (their paths
    /// changed): one page of its children, and a task per subfolder.
    #[serde(rename_all = "camelCase")]
    RefreshFolder {
        /// The folder whose children to refresh.
        folder_id: String,
        /// The page of children to list; `None` for the first.
        #[serde(default)]
        page_token: Option<String>,
        /// How far below the renamed or moved folder this one is (bounded, so a
        /// folder graph with a cycle cannot queue work forever).
        #[serde(default)]
        depth: u32,
    },
    /// Applies one page of the changes since the stored cursor, and queues the next
    /// page when there is one.
    CheckChanges,
}

impl TaskType for DriveTask {
    fn item_id(&self) -> Option<&str> {
        match self {
            DriveTask::DownloadFile { file_id } => Some(file_id),
            _ => None,
        }
    }
}

impl DriveTask {
    /// The task that downloads file `id`.
    pub fn download(id: impl Into<String>) -> DriveTask {
        DriveTask::DownloadFile { file_id: id.into() }
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
            (DriveTask::Start, json!({"type": "start", "payload": null})),
            (
                DriveTask::ListFiles {
                    page_token: Some("p2".into()),
                    consecutive_empty_pages: 1,
                },
                json!({"type": "listFiles", "payload": {"pageToken": "p2", "consecutiveEmptyPages": 1}}),
            ),
            (
                DriveTask::download("f1"),
                json!({"type": "downloadFile", "payload": {"fileId": "f1"}}),
            ),
            (
                DriveTask::RefreshFolder {
                    folder_id: "d1".into(),
                    page_token: None,
                    depth: 2,
                },
                json!({"type": "refreshFolder", "payload": {"folderId": "d1", "pageToken": null, "depth": 2}}),
            ),
            (
                DriveTask::CheckChanges,
                json!({"type": "checkChanges", "payload": null}),
            ),
        ];
        for (typed, stored) in cases {
            let task = Task::from_typed(&typed).unwrap();
            assert_eq!(task.to_json(), stored);
            let back = Task::from_json(&stored).unwrap();
            assert_eq!(back.decode::<DriveTask>().unwrap(), typed);
        }
    }

    #[test]
    fn download_names_its_item_and_bad_tasks_are_permanent() {
        let task = Task::from_typed(&DriveTask::download("f1")).unwrap();
        assert_eq!(task.item_id.as_deref(), Some("f1"));
        let bad = Task::new("downloadFile", json!({"fileId": 7})).decode::<DriveTask>();
        assert_eq!(bad.unwrap_err().class(), ErrorClass::Permanent);
        let unknown = Task::new("uploadFile", json!({})).decode::<DriveTask>();
        assert_eq!(unknown.unwrap_err().class(), ErrorClass::Permanent);
    }
}
