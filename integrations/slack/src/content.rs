//! A Slack message as stored content: its id, version, timestamp and fields.
//!
//! Every top-level message and every thread reply is one item, with the external id
//! `<channel id>:<ts>` (a `ts` is unique within its conversation, and ids of one
//! conversation sort by time, which the reconcile's range reads rely on). Its version
//! is a hash of the message exactly as Slack sent it, so an edit, a new reaction, a new
//! reply (the parent's `latest_reply` and `reply_count`) or a file change makes a new
//! version and is stored again, while an unchanged message never is. The version also
//! says what the item is: `m.<hash>` for a top-level message, `r.<thread ts>.<hash>`
//! for a reply (a reconcile compares top-level messages only; a thread re-read its own
//! replies).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// The sync-state key of the member names (`{user id: name}`).
pub const USERS: &str = "users";

/// A conversation as the content names it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelInfo {
    /// `C…`, `G…` or `D…`.
    pub id: String,
    /// The channel's name, or for a DM the other member's id.
    pub name: String,
    /// `public_channel`, `private_channel`, `mpim` or `im`.
    pub kind: String,
}

/// The external id of message `ts` of `channel`.
pub fn item_id(channel: &str, ts: &str) -> String {
    format!("{channel}:{ts}")
}

/// A message's `ts`, if it has a usable one (`<seconds>.<digits>`).
pub fn ts_of(message: &Map<String, Value>) -> Option<&str> {
    message
        .get("ts")
        .and_then(Value::as_str)
        .filter(|ts| valid_ts(ts))
}

/// Whether `ts` looks like a Slack timestamp: digits, one dot, digits (bounded, so a
/// hostile value cannot make an id of any size).
pub fn valid_ts(ts: &str) -> bool {
    let Some((secs, micros)) = ts.split_once('.') else {
        return false;
    };
    (1..=12).contains(&secs.len())
        && (1..=9).contains(&micros.len())
        && secs.bytes().all(|b| b.is_ascii_digit())
        && micros.bytes().all(|b| b.is_ascii_digit())
}

/// The thread a message belongs to, when it is a reply (its `thread_ts` differs from
/// its `ts`).
pub fn reply_parent(message: &Map<String, Value>) -> Option<&str> {
    let ts = ts_of(message)?;
    message
        .get("thread_ts")
        .and_then(Value::as_str)
        .filter(|parent| *parent != ts && valid_ts(parent))
}

/// Whether a message is the placeholder Slack leaves for a deleted thread parent that
/// still has replies.
pub fn is_tombstone(message: &Map<String, Value>) -> bool {
    message.get("subtype").and_then(Value::as_str) == Some("tombstone")
}

/// A thread parent's reply count.
pub fn reply_count(message: &Map<String, Value>) -> u64 {
    message
        .get("reply_count")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// The version of a message as sent (see the module docs).
pub fn version(message: &Map<String, Value>) -> String {
    let hash = fnv1a(
        serde_json::to_string(message)
            .unwrap_or_default()
            .as_bytes(),
    );
    match reply_parent(message) {
        Some(parent) => format!("r.{parent}.{hash:016x}"),
        None => format!("m.{hash:016x}"),
    }
}

/// Whether a stored version is a top-level message's (or unknown: stored before
/// versions, or by something else, counted as top-level).
pub fn is_top_level_version(version: Option<&str>) -> bool {
    !version.is_some_and(|v| v.starts_with("r."))
}

/// Whether a stored version is a reply of thread `thread_ts`.
pub fn is_reply_version_of(version: Option<&str>, thread_ts: &str) -> bool {
    version
        .and_then(|v| v.strip_prefix("r."))
        .and_then(|rest| rest.strip_prefix(thread_ts))
        .is_some_and(|rest| rest.starts_with('.'))
}

/// 64-bit FNV-1a: a fast, stable hash (the version only needs to change when the
/// message does).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// When a message was posted: its `ts` as a time.
pub fn timestamp(ts: &str) -> Option<DateTime<Utc>> {
    let (secs, frac) = ts.split_once('.')?;
    let secs: i64 = secs.parse().ok()?;
    let micros: u32 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    DateTime::from_timestamp(secs, micros * 1000)
}

/// The stored content of `message` in `channel` (see `docs/integrations/slack.md`).
pub fn message_content(
    message: &Map<String, Value>,
    channel: &ChannelInfo,
    users: Option<&Map<String, Value>>,
    workspace_url: Option<&str>,
) -> Value {
    let text = |key: &str| message.get(key).and_then(Value::as_str);
    let ts = text("ts").unwrap_or_default();
    let parent = reply_parent(message);
    let user_id = text("user").or(text("bot_id"));
    let user_name = user_id
        .and_then(|id| users.and_then(|u| u.get(id)).and_then(Value::as_str))
        .or_else(|| {
            message
                .get("user_profile")
                .and_then(|p| p.get("display_name"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
        })
        .or(text("username"));
    let edited = message.get("edited").map(|e| {
        json!({
            "user": e.get("user").and_then(Value::as_str),
            "ts": e.get("ts").and_then(Value::as_str),
        })
    });
    let reactions: Vec<Value> = list(message, "reactions")
        .map(|r| {
            json!({
                "name": r.get("name").and_then(Value::as_str),
                "count": r.get("count").and_then(Value::as_u64),
                "users": r.get("users").cloned().unwrap_or(Value::Array(Vec::new())),
            })
        })
        .collect();
    let files: Vec<Value> = list(message, "files")
        .map(|f| {
            json!({
                "id": f.get("id").and_then(Value::as_str),
                "name": f.get("name").and_then(Value::as_str),
                "title": f.get("title").and_then(Value::as_str),
                "mimetype": f.get("mimetype").and_then(Value::as_str),
                "filetype": f.get("filetype").and_then(Value::as_str),
                "size": f.get("size").and_then(Value::as_u64),
                "permalink": f.get("permalink").and_then(Value::as_str),
            })
        })
        .collect();
    json!({
        "channel": {"id": channel.id, "name": channel.name, "type": channel.kind},
        "ts": ts,
        "threadTs": text("thread_ts"),
        "isReply": parent.is_some(),
        "user": {"id": user_id, "name": user_name},
        "text": text("text").unwrap_or_default(),
        "subtype": text("subtype"),
        "edited": edited,
        "replyCount": message.get("reply_count").and_then(Value::as_u64),
        "latestReply": text("latest_reply"),
        "reactions": reactions,
        "files": files,
        "permalink": workspace_url.map(|url| permalink(url, &channel.id, ts, parent)),
    })
}

/// The entries of an array field that are objects.
fn list<'a>(
    message: &'a Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a Map<String, Value>> {
    message
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// A message's link in the workspace: `https://acme.slack.com/archives/C1/p1712345678000200`
/// (with `thread_ts` and `cid` for a reply), as Slack's `chat.getPermalink` builds it.
pub fn permalink(workspace_url: &str, channel: &str, ts: &str, parent: Option<&str>) -> String {
    let base = workspace_url.trim_end_matches('/');
    let digits: String = ts.chars().filter(char::is_ascii_digit).collect();
    match parent {
        Some(thread) => {
            format!("{base}/archives/{channel}/p{digits}?thread_ts={thread}&cid={channel}")
        }
        None => format!("{base}/archives/{channel}/p{digits}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn versions_change_with_the_message_and_name_replies() {
        let parent = message(json!({"type": "message", "ts": "1700000000.000100",
            "thread_ts": "1700000000.000100", "reply_count": 1, "text": "hi"}));
        let v = version(&parent);
        assert!(v.starts_with("m."), "{v}");
        assert!(is_top_level_version(Some(&v)));
        let mut edited = parent.clone();
        edited.insert(
            "edited".into(),
            json!({"user": "U1", "ts": "1700000100.000000"}),
        );
        assert_ne!(version(&edited), v);
        assert_eq!(version(&parent.clone()), v);
        let reply = message(json!({"ts": "1700000001.000200", "thread_ts": "1700000000.000100"}));
        let r = version(&reply);
        assert!(is_reply_version_of(Some(&r), "1700000000.000100"), "{r}");
        assert!(!is_reply_version_of(Some(&r), "1700000000.00010"));
        assert!(!is_top_level_version(Some(&r)));
    }

    #[test]
    fn hostile_timestamps_are_refused() {
        for ts in ["", "1", "1.", ".1", "1.2.3", "abc.def", &"9".repeat(40)] {
            assert!(!valid_ts(ts), "{ts}");
        }
        assert!(valid_ts("1712345678.000200"));
        assert_eq!(
            timestamp("1712345678.000200").unwrap().timestamp_micros(),
            1_712_345_678_000_200
        );
        assert!(timestamp("99999999999999.1").is_none());
    }

    #[test]
    fn content_names_the_author_and_links_the_message() {
        let channel = ChannelInfo {
            id: "C1".into(),
            name: "general".into(),
            kind: "public_channel".into(),
        };
        let users = message(json!({"U1": "Ada"}));
        let reply = message(
            json!({"ts": "1700000001.000200", "thread_ts": "1700000000.000100",
            "user": "U1", "text": "yes", "reactions": [{"name": "tada", "count": 2, "users": ["U1", "U2"]}],
            "files": [{"id": "F1", "name": "a.png", "size": 10, "url_private": "secret"}]}),
        );
        let c = message_content(
            &reply,
            &channel,
            Some(&users),
            Some("https://acme.slack.com/"),
        );
        assert_eq!(c["user"]["name"], "Ada");
        assert_eq!(c["isReply"], true);
        assert_eq!(c["reactions"][0]["count"], 2);
        assert_eq!(c["files"][0]["name"], "a.png");
        assert!(c["files"][0].get("url_private").is_none());
        assert_eq!(
            c["permalink"],
            "https://acme.slack.com/archives/C1/p1700000001000200?thread_ts=1700000000.000100&cid=C1"
        );
    }
}
