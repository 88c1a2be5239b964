//! Delta rounds of the drive: the state tokens and the pages.
//!
//! A token is opaque to clients: base64url of the round's state, which carries
//! everything the round needs: the drive's tag and token epoch, the watermark, the
//! position reached and the first request's `$select` and `$top`. Three kinds:
//!
//! - a *delta* token (in `@odata.deltaLink`): "changes after sequence W"; a request with
//!   it starts a round of the changes in `(W, W2]`, W2 the drive's sequence then;
//! - a *first-round* token (in a first round's `@odata.nextLink`): the sequence the
//!   round started at and the last (order, key) listed: the first round lists live
//!   items by keyset, so it stays exact while the drive changes (what changes meanwhile
//!   is in the next round);
//! - a *changes* token (in a later round's `@odata.nextLink`): W, W2 and the last
//!   sequence listed.
//!
//! A token of an older epoch than the drive's (after
//! [`crate::OneDriveHandle::forget_delta_tokens`]) answers 410.

use std::ops::Bound;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tributary_msgraph_fake::odata::keyset_page;

use crate::drive::{Drive, Key};

/// Where a token puts its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A new round of the changes after `from`.
    Delta,
    /// The first round, after (order, key).
    Initial { after: Option<(u64, Key)> },
    /// A round of the changes in `(from, to]`, after the sequence.
    Changes { to: u64, after: Option<u64> },
}

/// The state a token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) tag: String,
    pub(crate) epoch: u64,
    pub(crate) from: u64,
    pub(crate) kind: Kind,
    pub(crate) select: Option<Vec<&'static str>>,
    pub(crate) top: Option<usize>,
}

impl Token {
    pub(crate) fn encode(&self) -> String {
        let (kind, to, a, b) = match self.kind {
            Kind::Delta => ("d", 0, None, None),
            Kind::Initial { after } => ("i", 0, after.map(|p| p.0), after.map(|p| p.1)),
            Kind::Changes { to, after } => ("c", to, after, None),
        };
        let number = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let select = self
            .select
            .as_ref()
            .map_or_else(|| "-".to_owned(), |s| s.join(","));
        let top = self.top.map_or_else(|| "-".to_owned(), |t| t.to_string());
        let raw = format!(
            "v1;{};{};{};{kind};{to};{};{};{select};{top}",
            self.tag,
            self.epoch,
            self.from,
            number(a),
            number(b)
        );
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Reads a token; `None` when it is not one of ours.
    pub(crate) fn decode(token: &str, properties: &[&'static str]) -> Option<Token> {
        let raw = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let parts: Vec<&str> = raw.split(';').collect();
        let [version, tag, epoch, from, kind, to, a, b, select, top] = parts.as_slice() else {
            return None;
        };
        if *version != "v1" {
            return None;
        }
        let optional = |s: &str| -> Option<Option<u64>> {
            if s == "-" {
                Some(None)
            } else {
                s.parse().ok().map(Some)
            }
        };
        let (a, b) = (optional(a)?, optional(b)?);
        let kind = match *kind {
            "d" => Kind::Delta,
            "i" => Kind::Initial {
                after: match (a, b) {
                    (Some(order), Some(key)) => Some((order, key)),
                    (None, None) => None,
                    _ => return None,
                },
            },
            "c" => Kind::Changes {
                to: to.parse().ok()?,
                after: a,
            },
            _ => return None,
        };
        let select = match *select {
            "-" => None,
            list => Some(
                list.split(',')
                    .map(|name| properties.iter().find(|p| **p == name).copied())
                    .collect::<Option<Vec<_>>>()?,
            ),
        };
        let top = match *top {
            "-" => None,
            t => Some(t.parse().ok()?),
        };
        Some(Token {
            tag: (*tag).to_owned(),
            epoch: epoch.parse().ok()?,
            from: from.parse().ok()?,
            kind,
            select,
            top,
        })
    }
}

/// One entry of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A live item, in its current state.
    Live(Key),
    /// A deleted one.
    Deleted(Key),
}

/// A first-round page: up to `size` live items after `after`, and the position of the
/// last one when there are more.
pub(crate) fn initial_page(
    drive: &Drive,
    after: Option<(u64, Key)>,
    size: usize,
) -> (Vec<Entry>, Option<(u64, Key)>) {
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let items = drive.order.range((start, Bound::Unbounded)).copied();
    let (page, next) = keyset_page(items, size, |position| *position);
    (
        page.into_iter().map(|(_, key)| Entry::Live(key)).collect(),
        next,
    )
}

/// A page of the changes in `(from, to]` after the sequence `after`: up to `size`
/// entries, and the sequence of the last one when there are more. With
/// `exclude_parents`, only items that changed themselves.
pub(crate) fn changes_page(
    drive: &Drive,
    from: u64,
    to: u64,
    after: Option<u64>,
    size: usize,
    exclude_parents: bool,
) -> (Vec<Entry>, Option<u64>) {
    let index = if exclude_parents {
        &drive.own_changes
    } else {
        &drive.tree_changes
    };
    let start = after.unwrap_or(from).max(from);
    if start >= to {
        return (Vec::new(), None);
    }
    let changes = index.range(start + 1..=to).map(|(seq, key)| (*seq, *key));
    let (page, next) = keyset_page(changes, size, |(seq, _)| *seq);
    let entries = page
        .into_iter()
        .filter_map(|(_, key)| {
            if drive.items.contains_key(&key) {
                Some(Entry::Live(key))
            } else if drive.deleted.contains_key(&key) {
                Some(Entry::Deleted(key))
            } else {
                None
            }
        })
        .collect();
    (entries, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let properties: &[&'static str] = &["name", "size"];
        let tokens = [
            Token {
                tag: "abcdef".to_owned(),
                epoch: 2,
                from: 40,
                kind: Kind::Changes {
                    to: 99,
                    after: Some(57),
                },
                select: Some(vec!["name", "size"]),
                top: Some(25),
            },
            Token {
                tag: "x".to_owned(),
                epoch: 0,
                from: 7,
                kind: Kind::Initial {
                    after: Some((u64::MAX, 3)),
                },
                select: None,
                top: None,
            },
            Token {
                tag: "x".to_owned(),
                epoch: 1,
                from: 0,
                kind: Kind::Delta,
                select: None,
                top: Some(1),
            },
        ];
        for token in tokens {
            assert_eq!(Token::decode(&token.encode(), properties), Some(token));
        }
        assert_eq!(Token::decode("not a token", properties), None);
        assert_eq!(
            Token::decode(&URL_SAFE_NO_PAD.encode("v1;a;b"), properties),
            None
        );
        let unknown = URL_SAFE_NO_PAD.encode("v1;x;0;0;d;0;-;-;nope;-");
        assert_eq!(Token::decode(&unknown, properties), None);
    }
}
