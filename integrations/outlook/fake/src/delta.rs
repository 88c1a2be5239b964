//! Delta rounds of a folder's messages: the state tokens and the pages.
//!
//! A token is opaque to clients: base64url of the round's state, which carries
//! everything the round needs: the mailbox, the folder and its token epoch, the
//! watermark, the position reached and the query options of the first request
//! (`$select`, `changeType`, `$top`). Nothing about id kinds is in it: `Prefer:
//! IdType` applies per request. Three kinds:
//!
//! - `$deltatoken` (in `@odata.deltaLink`): "changes after watermark W"; a request
//!   with it starts a round from W to the mailbox's sequence now (W2);
//! - `$skiptoken` of a first round (in `@odata.nextLink`): the watermark the round
//!   started at and the last (receivedDateTime, key) served: the first round lists the
//!   folder's messages newest first by keyset, so it stays exact while mail changes;
//! - `$skiptoken` of a later round: W, W2 and the last (sequence, key) served.
//!
//! A token whose folder epoch is older than the folder's (after
//! [`crate::OutlookHandle::forget_delta_tokens`]) answers 410.

use std::collections::HashMap;
use std::ops::Bound;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tributary_msgraph_fake::odata::keyset_page;

use crate::ChangeType;
use crate::mailbox::{FolderKey, Mailbox, SortKey};

/// Where a token puts its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A new round of changes after `from`.
    Delta,
    /// The first round, after the position.
    Initial,
    /// A round of changes from `from` to `to`, after the position.
    Changes { to: u64 },
}

/// The state a token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) tag: String,
    pub(crate) folder: FolderKey,
    pub(crate) epoch: u64,
    pub(crate) kind: Kind,
    pub(crate) from: u64,
    /// Initial: (receivedDateTime seconds, key); changes: (sequence, key).
    pub(crate) position: Option<(i64, u64)>,
    pub(crate) select: Option<Vec<&'static str>>,
    pub(crate) change_type: Option<ChangeType>,
    pub(crate) top: Option<usize>,
}

impl Token {
    pub(crate) fn encode(&self) -> String {
        let (kind, to) = match self.kind {
            Kind::Delta => ("d", 0),
            Kind::Initial => ("i", 0),
            Kind::Changes { to } => ("c", to),
        };
        let (p1, p2) = self.position.map_or_else(
            || ("-".to_owned(), "-".to_owned()),
            |(a, b)| (a.to_string(), b.to_string()),
        );
        let select = self
            .select
            .as_ref()
            .map_or_else(|| "-".to_owned(), |s| s.join(","));
        let change = self.change_type.map_or("-", ChangeType::as_str);
        let top = self.top.map_or_else(|| "-".to_owned(), |t| t.to_string());
        let raw = format!(
            "v1.{}.{}.{}.{kind}.{}.{to}.{p1}.{p2}.{select}.{change}.{top}",
            self.tag, self.folder, self.epoch, self.from
        );
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Reads a token; `None` when it is not one of ours.
    pub(crate) fn decode(token: &str, properties: &[&'static str]) -> Option<Token> {
        let raw = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let parts: Vec<&str> = raw.split('.').collect();
        let [
            version,
            tag,
            folder,
            epoch,
            kind,
            from,
            to,
            p1,
            p2,
            select,
            change,
            top,
        ] = parts.as_slice()
        else {
            return None;
        };
        if *version != "v1" {
            return None;
        }
        let optional = |s: &str| (s != "-").then(|| s.to_owned());
        let kind = match *kind {
            "d" => Kind::Delta,
            "i" => Kind::Initial,
            "c" => Kind::Changes {
                to: to.parse().ok()?,
            },
            _ => return None,
        };
        let position = match (optional(p1), optional(p2)) {
            (Some(a), Some(b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            (None, None) => None,
            _ => return None,
        };
        let select = match optional(select) {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(|name| properties.iter().find(|p| **p == name).copied())
                    .collect::<Option<Vec<_>>>()?,
            ),
        };
        let change_type = match optional(change) {
            None => None,
            Some(c) => Some(ChangeType::parse(&c)?),
        };
        let top = match optional(top) {
            None => None,
            Some(t) => Some(t.parse().ok()?),
        };
        Some(Token {
            tag: (*tag).to_owned(),
            folder: folder.parse().ok()?,
            epoch: epoch.parse().ok()?,
            kind,
            from: from.parse().ok()?,
            position,
            select,
            change_type,
            top,
        })
    }
}

/// One item of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// A message in its current state.
    Message(u64),
    /// A message gone from the folder: its id (as the request asked) and reason.
    Removed { id: String, reason: &'static str },
}

/// A first-round page: up to `size` messages after `position`, and the position of
/// the last one when there are more.
pub(crate) fn initial_page(
    mailbox: &Mailbox,
    folder: FolderKey,
    position: Option<(i64, u64)>,
    size: usize,
) -> (Vec<Item>, Option<(i64, u64)>) {
    let set = &mailbox.folders[folder].messages;
    let start: Bound<SortKey> = match position {
        None => Bound::Unbounded,
        Some((received, key)) => {
            Bound::Excluded((std::cmp::Reverse(received), std::cmp::Reverse(key)))
        }
    };
    let messages = set.range((start, Bound::Unbounded)).copied();
    let (keys, next) = keyset_page(messages, size, |(r, k): &SortKey| (r.0, k.0));
    (
        keys.into_iter().map(|(_, k)| Item::Message(k.0)).collect(),
        next,
    )
}

/// Every change of `folder` in `(from, to]`, ordered by (sequence, key).
pub(crate) fn changes(
    mailbox: &Mailbox,
    folder: FolderKey,
    from: u64,
    to: u64,
    change_type: Option<ChangeType>,
    immutable_ids: bool,
) -> Vec<((u64, u64), Item)> {
    let wants = |t: ChangeType| change_type.is_none_or(|c| c == t);
    let mut entries = Vec::new();
    for (_, key) in &mailbox.folders[folder].messages {
        let Some(message) = mailbox.messages.get(&key.0) else {
            continue;
        };
        if message.changed_seq <= from || message.changed_seq > to {
            continue;
        }
        let kind = if message.arrived_seq > from {
            ChangeType::Created
        } else {
            ChangeType::Updated
        };
        if wants(kind) {
            entries.push((
                (message.changed_seq, message.key),
                Item::Message(message.key),
            ));
        }
    }
    if wants(ChangeType::Deleted) {
        // The departures in range, per message: the first one has the ids the client
        // knew (as of `from`), the last one the reason.
        let start = mailbox.departures.partition_point(|d| d.seq <= from);
        let mut by_key: HashMap<u64, (usize, usize)> = HashMap::new();
        for (i, departure) in mailbox.departures.iter().enumerate().skip(start) {
            if departure.seq > to {
                break;
            }
            if departure.folder == folder {
                by_key
                    .entry(departure.key)
                    .and_modify(|(_, last)| *last = i)
                    .or_insert((i, i));
            }
        }
        for (key, (first, last)) in by_key {
            let first = &mailbox.departures[first];
            let last = &mailbox.departures[last];
            let back = mailbox
                .messages
                .get(&key)
                .filter(|m| m.folder == folder && m.changed_seq <= to);
            let id = match back {
                // Back in the folder by `to`: listed as a message; with mutable ids the
                // id the client knew is gone all the same.
                Some(message) if immutable_ids || first.mutable_id == message.mutable_id => {
                    continue;
                }
                Some(_) => first.mutable_id.clone(),
                None if immutable_ids => first.immutable_id.clone(),
                None => first.mutable_id.clone(),
            };
            entries.push((
                (last.seq, key),
                Item::Removed {
                    id,
                    reason: last.reason.as_str(),
                },
            ));
        }
    }
    entries.sort_by_key(|(position, _)| *position);
    entries
}

/// A page of `entries` after `position`: the items, and the position of the last one
/// when there are more.
pub(crate) fn changes_page(
    entries: Vec<((u64, u64), Item)>,
    position: Option<(u64, u64)>,
    size: usize,
) -> (Vec<Item>, Option<(u64, u64)>) {
    let after = entries
        .into_iter()
        .filter(|(p, _)| position.is_none_or(|after| *p > after));
    let (page, next) = keyset_page(after, size, |(p, _)| *p);
    (page.into_iter().map(|(_, item)| item).collect(), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let properties: &[&'static str] = &["subject", "isRead"];
        let token = Token {
            tag: "Ab-_9x".to_owned(),
            folder: 3,
            epoch: 2,
            kind: Kind::Changes { to: 99 },
            from: 40,
            position: Some((-5, 7)),
            select: Some(vec!["subject", "isRead"]),
            change_type: Some(ChangeType::Updated),
            top: Some(25),
        };
        assert_eq!(Token::decode(&token.encode(), properties), Some(token));
        let plain = Token {
            tag: "x".to_owned(),
            folder: 0,
            epoch: 0,
            kind: Kind::Delta,
            from: 0,
            position: None,
            select: None,
            change_type: None,
            top: None,
        };
        assert_eq!(Token::decode(&plain.encode(), properties), Some(plain));
        assert_eq!(Token::decode("not a token", properties), None);
        assert_eq!(
            Token::decode(&URL_SAFE_NO_PAD.encode("v1.a.b"), properties),
            None
        );
    }
}
