//! The Outlook task types, in their stored `{type, payload}` form.
//!
//! The type strings (`start`, `listMessages`, `syncFolder`, `fetchMessage`,
//! `checkMail`) and the payload field names are stored in the job queue, so they are
//! spelled out with `rename_all` and must never change. Fields added later take
//! `#[serde(default)]`, so that queued jobs still decode.

use serde::{Deserialize, Serialize};
use tributary_sdk::TaskType;

/// One unit of Outlook work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "camelCase")]
pub enum OutlookTask {
    /// The scheduled entry point: on the first run reads the folder tree and opens a
    /// delta round in every folder (its first page), then lists the Inbox's newest
    /// messages.
    Start,
    /// Lists one page of a folder's messages, newest first, fetching those not stored
    /// at the version listed; queues the next page, or the first page of the next
    /// folder, until three pages in a row had nothing new.
    #[serde(rename_all = "camelCase")]
    ListMessages {
        /// The folder listed.
        folder_id: String,
        /// The `@odata.nextLink` of the page to list; `None` for the folder's first.
        #[serde(default)]
        next_link: Option<String>,
        /// Pages in a row before this one (in this folder or the ones before it) that
        /// had nothing new: the early stop.
        #[serde(default)]
        consecutive_empty_pages: u32,
    },
    /// Reads one page of a folder's delta round: from the stored delta link when
    /// `next_link` is `None`, else from the link the previous page handed out.
    #[serde(rename_all = "camelCase")]
    SyncFolder {
        /// The folder whose messages the round follows.
        folder_id: String,
        /// The `@odata.nextLink` of the page to read; `None`: start a round at the
        /// stored `@odata.deltaLink` (or a first round when there is none).
        #[serde(default)]
        next_link: Option<String>,
        /// Whether the round is the folder's first (it lists every message): its
        /// pages skip messages whose fetch is already queued.
        #[serde(default)]
        initial_round: bool,
    },
    /// Fetches one message (and its attachment names) and stores it, or its deletion.
    #[serde(rename_all = "camelCase")]
    FetchMessage {
        /// The immutable message id.
        message_id: String,
    },
    /// The history check: reads the folder tree and starts a delta round in every
    /// folder that has none in progress.
    CheckMail,
}

impl TaskType for OutlookTask {
    fn item_id(&self) -> Option<&str> {
        match self {
            OutlookTask::FetchMessage { message_id } => Some(message_id),
            _ => None,
        }
    }
}

impl OutlookTask {
    /// The task that fetches message `id`.
    pub fn fetch(id: impl Into<String>) -> OutlookTask {
        OutlookTask::FetchMessage {
            message_id: id.into(),
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
                OutlookTask::Start,
                json!({"type": "start", "payload": null}),
            ),
            (
                OutlookTask::ListMessages {
                    folder_id: "f1".into(),
                    next_link: Some("https://g/next".into()),
                    consecutive_empty_pages: 1,
                },
                json!({"type": "listMessages", "payload": {
                    "folderId": "f1", "nextLink": "https://g/next", "consecutiveEmptyPages": 1}}),
            ),
            (
                OutlookTask::SyncFolder {
                    folder_id: "f1".into(),
                    next_link: None,
                    initial_round: false,
                },
                json!({"type": "syncFolder", "payload": {
                    "folderId": "f1", "nextLink": null, "initialRound": false}}),
            ),
            (
                OutlookTask::fetch("m1"),
                json!({"type": "fetchMessage", "payload": {"messageId": "m1"}}),
            ),
            (
                OutlookTask::CheckMail,
                json!({"type": "checkMail", "payload": null}),
            ),
        ];
        for (typed, stored) in cases {
            let task = Task::from_typed(&typed).unwrap();
            assert_eq!(task.to_json(), stored);
            let back = Task::from_json(&stored).unwrap();
            assert_eq!(back.decode::<OutlookTask>().unwrap(), typed);
        }
        // Fields with defaults may be absent.
        let short = Task::new("syncFolder", json!({"folderId": "f2"}));
        assert_eq!(
            short.decode::<OutlookTask>().unwrap(),
            OutlookTask::SyncFolder {
                folder_id: "f2".into(),
                next_link: None,
                initial_round: false
            }
        );
    }

    #[test]
    fn fetch_names_its_item_and_bad_tasks_are_permanent() {
        let task = Task::from_typed(&OutlookTask::fetch("m1")).unwrap();
        assert_eq!(task.item_id.as_deref(), Some("m1"));
        let list = Task::from_typed(&OutlookTask::CheckMail).unwrap();
        assert_eq!(list.item_id, None);
        let bad = Task::new("fetchMessage", json!({"messageId": 7})).decode::<OutlookTask>();
        assert_eq!(bad.unwrap_err().class(), ErrorClass::Permanent);
        let unknown = Task::new("sendMail", json!({})).decode::<OutlookTask>();
        assert_eq!(unknown.unwrap_err().class(), ErrorClass::Permanent);
    }
}
