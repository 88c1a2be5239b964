//! The Slack task types, in their stored `{type, payload}` form.
//!
//! The type strings (`start`, `pollConversation`, `fetchReplies`, `reconcile`) and the
//! payload field names are stored in the job queue, so they are spelled out with
//! `rename_all` and must never change.

use serde::{Deserialize, Serialize};
use tributary_sdk::TaskType;

/// One unit of Slack work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "camelCase")]
pub enum SlackTask {
    /// The scheduled entry point: reads the token's scopes, the conversation list and
    /// (now and then) the member names, and queues the polls and reconciles the budget
    /// planner chooses.
    Start,
    /// Reads one page of a conversation's newest messages, down to the newest one seen
    /// before (or the whole history, the first time), and stores what is new or changed.
    #[serde(rename_all = "camelCase")]
    PollConversation {
        /// The conversation.
        channel: String,
        /// Only messages after this ts (the newest seen when the poll began); `None` on
        /// the first page, which reads it from the sync state.
        #[serde(default)]
        oldest: Option<String>,
        /// The page to read; `None` for the first.
        #[serde(default)]
        cursor: Option<String>,
        /// Pages in a row before this one with nothing new (the early stop of a walk
        /// without a known newest message).
        #[serde(default)]
        consecutive_empty_pages: u32,
    },
    /// Reads one page of a thread and stores its replies that are new or changed; on a
    /// re-read of a thread already stored, soft-deletes the replies that vanished.
    #[serde(rename_all = "camelCase")]
    FetchReplies {
        /// The conversation.
        channel: String,
        /// The parent's ts.
        thread_ts: String,
        /// The page to read; `None` for the first.
        #[serde(default)]
        cursor: Option<String>,
        /// Whether the thread was stored before (then vanished replies are looked for).
        #[serde(default)]
        reread: bool,
    },
    /// Reads one page of a conversation's history from `oldest` (the reconcile window,
    /// or `0` for the whole history), stores what changed and soft-deletes the messages
    /// of the page's time range that vanished.
    #[serde(rename_all = "camelCase")]
    Reconcile {
        /// The conversation.
        channel: String,
        /// The oldest ts of the range read (exclusive).
        oldest: String,
        /// The page to read; `None` for the first.
        #[serde(default)]
        cursor: Option<String>,
        /// The ts the previous page ended at (this page covers what is older); `None`
        /// on the first page.
        #[serde(default)]
        upper: Option<String>,
    },
}

impl TaskType for SlackTask {
    fn dedupe_key(&self) -> Option<String> {
        // One pending first page per conversation and thread: a planner that queues a
        // poll while the last one still waits (a slow budget) adds nothing.
        match self {
            SlackTask::PollConversation {
                channel,
                cursor: None,
                ..
            } => Some(format!("poll:{channel}")),
            SlackTask::FetchReplies {
                channel,
                thread_ts,
                cursor: None,
                ..
            } => Some(format!("replies:{channel}:{thread_ts}")),
            SlackTask::Reconcile {
                channel,
                cursor: None,
                ..
            } => Some(format!("reconcile:{channel}")),
            _ => None,
        }
    }
}

impl SlackTask {
    /// The first poll page of `channel`.
    pub fn poll(channel: &str) -> SlackTask {
        SlackTask::PollConversation {
            channel: channel.to_owned(),
            oldest: None,
            cursor: None,
            consecutive_empty_pages: 0,
        }
    }

    /// The first page of thread `thread_ts`.
    pub fn replies(channel: &str, thread_ts: &str, reread: bool) -> SlackTask {
        SlackTask::FetchReplies {
            channel: channel.to_owned(),
            thread_ts: thread_ts.to_owned(),
            cursor: None,
            reread,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_sdk::Task;

    #[test]
    fn first_pages_are_deduplicated_and_continuations_are_not() {
        let poll = Task::from_typed(&SlackTask::poll("C1")).unwrap();
        assert_eq!(poll.task_type, "pollConversation");
        assert_eq!(poll.dedupe_key.as_deref(), Some("poll:C1"));
        let next = SlackTask::PollConversation {
            channel: "C1".into(),
            oldest: Some("1.000001".into()),
            cursor: Some("dXNlcjpVMDYxTkZUVDI=".into()),
            consecutive_empty_pages: 1,
        };
        assert_eq!(Task::from_typed(&next).unwrap().dedupe_key, None);
        let back: SlackTask = Task::from_typed(&next).unwrap().decode().unwrap();
        assert_eq!(back, next);
        assert_eq!(
            Task::from_typed(&SlackTask::replies("C1", "1.2", false))
                .unwrap()
                .dedupe_key
                .as_deref(),
            Some("replies:C1:1.2")
        );
    }
}
