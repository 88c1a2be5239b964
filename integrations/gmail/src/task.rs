//! The Gmail task types, in their stored `{type, payload}` form.
//!
//! The type strings (`start`, `getEmailList`, `downloadEmail`, `checkHistory`) and the
//! payload field names are stored in the job queue, so they are spelled out here with
//! `rename_all` and must never change: a rename would strand every queued job.

use serde::{Deserialize, Serialize};
use tributary_sdk::TaskType;

/// One unit of Gmail work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "camelCase")]
pub enum GmailTask {
    /// The scheduled entry point: records a history cursor on the first run, then lists
    /// the newest page of mail.
    Start,
    /// Lists one page of message ids, newest first, and downloads the unknown ones.
    #[serde(rename_all = "camelCase")]
    GetEmailList {
        /// The page to list; `None` for the newest page.
        #[serde(default)]
        page_token: Option<String>,
        /// How many pages in a row before this one had nothing new (the early stop).
        #[serde(default)]
        consecutive_empty_pages: u32,
    },
    /// Fetches one message and turns it into content (or a deletion marker).
    #[serde(rename_all = "camelCase")]
    DownloadEmail {
        /// The Gmail message id.
        email_id: String,
    },
    /// Applies the mailbox history since the stored `lastHistoryId`.
    CheckHistory,
}

impl TaskType for GmailTask {
    fn item_id(&self) -> Option<&str> {
        match self {
            GmailTask::DownloadEmail { email_id } => Some(email_id),
            _ => None,
        }
    }
}

impl GmailTask {
    /// The task that downloads message `id`.
    pub fn download(id: impl Into<String>) -> GmailTask {
        GmailTask::DownloadEmail {
            email_id: id.into(),
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
            (GmailTask::Start, json!({"type": "start", "payload": null})),
            (
                GmailTask::GetEmailList {
                    page_token: Some("p2".into()),
                    consecutive_empty_pages: 1,
                },
                json!({"type": "getEmailList", "payload": {"pageToken": "p2", "consecutiveEmptyPages": 1}}),
            ),
            (
                GmailTask::download("18c2"),
                json!({"type": "downloadEmail", "payload": {"emailId": "18c2"}}),
            ),
            (
                GmailTask::CheckHistory,
                json!({"type": "checkHistory", "payload": null}),
            ),
        ];
        for (typed, stored) in cases {
            let task = Task::from_typed(&typed).unwrap();
            assert_eq!(task.to_json(), stored);
            let back = Task::from_json(&stored).unwrap();
            assert_eq!(back.decode::<GmailTask>().unwrap(), typed);
        }
    }

    #[test]
    fn download_names_its_item() {
        let task = Task::from_typed(&GmailTask::download("m1")).unwrap();
        assert_eq!(task.item_id.as_deref(), Some("m1"));
        assert_eq!(Task::from_typed(&GmailTask::Start).unwrap().item_id, None);
    }

    #[test]
    fn list_payload_fields_are_optional() {
        let task = Task::new("getEmailList", json!({}));
        assert_eq!(
            task.decode::<GmailTask>().unwrap(),
            GmailTask::GetEmailList {
                page_token: None,
                consecutive_empty_pages: 0
            }
        );
    }

    #[test]
    fn bad_tasks_are_permanent_errors() {
        let unknown = Task::new("sendEmail", json!({})).decode::<GmailTask>();
        assert_eq!(unknown.unwrap_err().class(), ErrorClass::Permanent);
        let bad = Task::new("downloadEmail", json!({"emailId": 7})).decode::<GmailTask>();
        assert_eq!(bad.unwrap_err().class(), ErrorClass::Permanent);
        let missing = Task::new("downloadEmail", json!({})).decode::<GmailTask>();
        assert_eq!(missing.unwrap_err().class(), ErrorClass::Permanent);
    }
}
