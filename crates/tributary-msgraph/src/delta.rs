//! Delta rounds, one page at a time.
//!
//! A round starts at the delta function's URL with its query options (`$select`,
//! `changeType`, ... go on this first request only: Graph carries them in its links),
//! or at the `@odata.deltaLink` the previous round ended with. Each page ends with
//! exactly one link: `@odata.nextLink` (the round goes on, even after an empty page)
//! or `@odata.deltaLink` (the round is over).
//!
//! [`GraphClient::delta_page`] fetches ONE page per call and says which of the two it
//! was ([`RoundProgress`]), so that each page is committed on its own: the caller puts
//! the next link in the payload of the task that reads the next page, and writes the
//! delta link to its sync state only with the last page, when everything before it is
//! committed. A loop that read the whole round before committing would lose the round
//! to any failure in the middle, and would store a delta link ahead of the items.
//!
//! When the server no longer knows a link, [`GraphClient::delta_page`] answers
//! [`GraphError::ResyncRequired`]: start a new round from
//! [`crate::Resync::restart_link`] and reconcile by a full comparison
//! (`tributary_sdk::kit::delta::FullComparison`).
//!
//! Items come as [`DeltaItem`]s: an item in its current state (created, changed, or
//! moved in), or `{"id", "@removed": {"reason"}}`. Mail reports removals that way;
//! OneDrive reports deleted items with the `deleted` facet instead, which the drive
//! item type reads. The same item may come more than once in a round; the last one
//! counts ([`DeltaPage::latest_by_id`]).

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde_json::Value;
use tributary_sdk::IntegrationError;

use crate::GraphError;
use crate::client::{GraphClient, Prefer};
use crate::page::Page;

/// Why an item left the delta feed (`@removed.reason`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RemovedReason {
    /// `deleted`: gone for good.
    Deleted,
    /// `changed`: gone from what this feed covers (deleted but restorable, or moved
    /// out of the tracked folder); it may show up elsewhere.
    Changed,
    /// A reason Graph does not document (kept as given; empty when absent).
    Other(String),
}

impl RemovedReason {
    fn parse(reason: Option<&str>) -> RemovedReason {
        match reason {
            Some(r) if r.eq_ignore_ascii_case("deleted") => RemovedReason::Deleted,
            Some(r) if r.eq_ignore_ascii_case("changed") => RemovedReason::Changed,
            other => RemovedReason::Other(other.unwrap_or_default().chars().take(64).collect()),
        }
    }
}

/// One entry of a delta page.
#[derive(Debug, Clone, PartialEq)]
pub enum DeltaItem<T> {
    /// The item in its current state.
    Item(T),
    /// The item left the feed.
    Removed {
        /// Its id (of the kind the request asked for: immutable or not).
        id: String,
        /// Why.
        reason: RemovedReason,
    },
}

impl<T> DeltaItem<T> {
    /// The entry's id: `id_of` for an item, the removed id otherwise.
    pub fn id<'a>(&'a self, id_of: impl Fn(&'a T) -> &'a str) -> &'a str {
        match self {
            DeltaItem::Item(item) => id_of(item),
            DeltaItem::Removed { id, .. } => id,
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for DeltaItem<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let Some(removed) = value.get("@removed") else {
            return T::deserialize(value)
                .map(DeltaItem::Item)
                .map_err(D::Error::custom);
        };
        let reason = RemovedReason::parse(removed.get("reason").and_then(Value::as_str));
        let id = value
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| D::Error::custom("a removed item without an id"))?;
        Ok(DeltaItem::Removed {
            id: id.to_owned(),
            reason,
        })
    }
}

/// Where a round stands after a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundProgress {
    /// More pages: the link of the next one (for the payload of the next task).
    Continues {
        /// `@odata.nextLink`.
        next_link: String,
    },
    /// The round is over: the link of the next round (for the sync state, written
    /// with this page).
    Ended {
        /// `@odata.deltaLink`.
        delta_link: String,
    },
}

/// One page of a delta round.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaPage<T> {
    /// The page's entries, in the server's order.
    pub items: Vec<DeltaItem<T>>,
    /// What comes next.
    pub progress: RoundProgress,
}

impl<T> DeltaPage<T> {
    /// A delta page from a collection page: exactly one of its links must be there.
    pub fn from_page(page: Page<DeltaItem<T>>) -> Result<DeltaPage<T>, GraphError> {
        let progress = match (page.next_link, page.delta_link) {
            (Some(next_link), None) => RoundProgress::Continues { next_link },
            (None, Some(delta_link)) => RoundProgress::Ended { delta_link },
            (Some(_), Some(_)) => {
                return Err(IntegrationError::permanent(
                    "the delta page carries both @odata.nextLink and @odata.deltaLink",
                )
                .into());
            }
            (None, None) => {
                return Err(IntegrationError::permanent(
                    "the delta page carries neither @odata.nextLink nor @odata.deltaLink",
                )
                .into());
            }
        };
        Ok(DeltaPage {
            items: page.items,
            progress,
        })
    }

    /// Whether this page ended the round.
    pub fn ends_round(&self) -> bool {
        matches!(self.progress, RoundProgress::Ended { .. })
    }

    /// The next page's link, while the round goes on.
    pub fn next_link(&self) -> Option<&str> {
        match &self.progress {
            RoundProgress::Continues { next_link } => Some(next_link),
            RoundProgress::Ended { .. } => None,
        }
    }

    /// The next round's link, on the last page.
    pub fn delta_link(&self) -> Option<&str> {
        match &self.progress {
            RoundProgress::Ended { delta_link } => Some(delta_link),
            RoundProgress::Continues { .. } => None,
        }
    }

    /// The entries with each id's last one only (a replayed item counts once, in its
    /// latest state), in the order of those last ones.
    pub fn latest_by_id(self, id_of: impl Fn(&T) -> &str) -> Vec<DeltaItem<T>> {
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(self.items.len());
        for (index, item) in self.items.iter().enumerate() {
            last.insert(item.id(&id_of), index);
        }
        let keep: Vec<bool> = self
            .items
            .iter()
            .enumerate()
            .map(|(index, item)| last.get(item.id(&id_of)) == Some(&index))
            .collect();
        drop(last);
        self.items
            .into_iter()
            .zip(keep)
            .filter_map(|(item, keep)| keep.then_some(item))
            .collect()
    }
}

impl GraphClient {
    /// Reads one page of a delta round from `link`: the delta function's URL (or path
    /// under the base URL) with the round's query options for a first round, else a
    /// next or delta link exactly as Graph gave it. `prefer` says how large a page to
    /// ask for (`Prefer: odata.maxpagesize`) and how to write mail bodies.
    pub async fn delta_page<T: DeserializeOwned>(
        &mut self,
        link: &str,
        prefer: Prefer,
    ) -> Result<DeltaPage<T>, GraphError> {
        let page: Page<DeltaItem<T>> = self.get_page(link, &[], prefer).await?;
        DeltaPage::from_page(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::decode_page;

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    struct Message {
        id: String,
        #[serde(default)]
        subject: String,
    }

    fn page(body: &str) -> Result<DeltaPage<Message>, GraphError> {
        DeltaPage::from_page(decode_page(body.as_bytes())?)
    }

    #[test]
    fn removed_items_are_typed_and_items_decoded() {
        let p = page(
            r##"{"value": [
                {"@odata.type": "#microsoft.graph.message", "id": "m1", "subject": "hi"},
                {"@odata.type": "#microsoft.graph.message", "id": "m2", "@removed": {"reason": "deleted"}},
                {"id": "m3", "@removed": {"reason": "changed"}},
                {"id": "m4", "@removed": {}}
            ], "@odata.nextLink": "https://graph.microsoft.com/v1.0/x?$skiptoken=a"}"##,
        )
        .unwrap();
        assert_eq!(
            p.items,
            vec![
                DeltaItem::Item(Message {
                    id: "m1".into(),
                    subject: "hi".into()
                }),
                DeltaItem::Removed {
                    id: "m2".into(),
                    reason: RemovedReason::Deleted
                },
                DeltaItem::Removed {
                    id: "m3".into(),
                    reason: RemovedReason::Changed
                },
                DeltaItem::Removed {
                    id: "m4".into(),
                    reason: RemovedReason::Other(String::new())
                },
            ]
        );
        assert!(!p.ends_round());
        assert_eq!(
            p.next_link(),
            Some("https://graph.microsoft.com/v1.0/x?$skiptoken=a")
        );
        assert_eq!(p.delta_link(), None);
    }

    #[test]
    fn a_delta_page_has_exactly_one_link() {
        let last =
            page(r##"{"value": [], "@odata.deltaLink": "https://g/d?$deltatoken=1"}"##).unwrap();
        assert!(last.ends_round());
        assert_eq!(last.delta_link(), Some("https://g/d?$deltatoken=1"));
        assert!(page(r##"{"value": []}"##).is_err());
        assert!(page(r##"{"value": [{"@removed": {"reason": "deleted"}}], "@odata.deltaLink": "https://g/d"}"##).is_err());
    }

    #[test]
    fn the_last_of_each_id_counts() {
        let p = page(
            r##"{"value": [
                {"id": "a", "subject": "first"}, {"id": "b", "subject": "b"},
                {"id": "a", "subject": "second"}, {"id": "b", "@removed": {"reason": "deleted"}}
            ], "@odata.deltaLink": "https://g/d"}"##,
        )
        .unwrap();
        let latest = p.latest_by_id(|m| &m.id);
        assert_eq!(
            latest,
            vec![
                DeltaItem::Item(Message {
                    id: "a".into(),
                    subject: "second".into()
                }),
                DeltaItem::Removed {
                    id: "b".into(),
                    reason: RemovedReason::Deleted
                },
            ]
        );
    }
}
