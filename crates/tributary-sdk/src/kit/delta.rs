//! The fallback of a delta API whose cursor expired: compare every id the service lists
//! with every id stored.
//!
//! A history or changes API answers "what changed since cursor X" until X is too old;
//! then the only way back to a correct copy is a full comparison. [`FullComparison`]
//! owns its order, which is what makes it safe while other jobs run and the source
//! keeps changing:
//! 1. the integration reads the service's *new* cursor first, so a change made while
//!    the comparison lists is either seen by the listing or found after the cursor;
//! 2. [`FullComparison::begin`] reads the stored ids before anything is listed, so an
//!    item stored meanwhile by another job is not mistaken for one that vanished;
//! 3. each listed page goes through [`FullComparison::listed`], which says which ids to
//!    fetch (the unknown ones);
//! 4. [`FullComparison::finish`] soft-deletes what was stored and not listed, and
//!    records the new cursor, all in the one result the job commits.
//!
//! A service whose cursors cover part of an account (a mail folder's delta) compares
//! that part: [`FullComparison::of`] starts from the part's stored ids, and
//! [`FullComparison::vanished`] hands the unlisted ones back for the integration to
//! decide (a message missing from one folder may have moved to another).

use std::collections::HashSet;

use serde_json::Value;

use crate::{IntegrationContext, IntegrationError, ItemRef, Output, TaskResult};

/// A full comparison in progress (see the module docs).
#[derive(Debug)]
pub struct FullComparison {
    stored: Vec<String>,
    listed: HashSet<String>,
    fetches: usize,
}

impl FullComparison {
    /// Reads the account's stored ids. Call it after reading the new cursor and before
    /// listing.
    pub async fn begin(ctx: &IntegrationContext) -> Result<FullComparison, IntegrationError> {
        Ok(FullComparison::of(ctx.content_exists.stored_ids().await?))
    }

    /// A comparison of part of an account, whose stored ids are `stored` (read, as in
    /// [`FullComparison::begin`], after the new cursor and before listing).
    pub fn of(stored: Vec<String>) -> FullComparison {
        FullComparison {
            stored,
            listed: HashSet::new(),
            fetches: 0,
        }
    }

    /// How many listed ids were found unknown so far.
    pub fn fetches(&self) -> usize {
        self.fetches
    }

    /// How many distinct ids were listed so far.
    pub fn listed_count(&self) -> usize {
        self.listed.len()
    }

    /// The stored ids that were not listed, for an integration that decides itself
    /// what becomes of them (instead of [`FullComparison::finish`]'s soft deletes).
    pub fn vanished(self) -> Vec<String> {
        let listed = self.listed;
        self.stored
            .into_iter()
            .filter(|id| !listed.contains(id))
            .collect()
    }

    /// Records one listed page (ids, or [`ItemRef`]s with the versions listed); returns
    /// its ids that are not known at those versions (to fetch).
    pub async fn listed<T: Into<ItemRef>>(
        &mut self,
        ctx: &IntegrationContext,
        items: Vec<T>,
    ) -> Result<Vec<String>, IntegrationError> {
        let items: Vec<ItemRef> = items.into_iter().map(Into::into).collect();
        self.listed.extend(items.iter().map(|item| item.id.clone()));
        let new: Vec<String> = ctx
            .unknown(items)
            .await?
            .into_iter()
            .map(|item| item.id)
            .collect();
        self.fetches += new.len();
        Ok(new)
    }

    /// Adds a deletion for every stored id that was not listed, and the new cursor
    /// under `cursor_key`, to `result`.
    pub fn finish(self, result: &mut TaskResult, cursor_key: &str, cursor: Value) {
        let mut deleted = 0usize;
        for id in self.stored {
            if !self.listed.contains(&id) {
                result.push_output(Output::deleted(id));
                deleted += 1;
            }
        }
        tracing::info!(
            listed = self.listed.len(),
            deleted,
            fetches = self.fetches,
            "full comparison done"
        );
        result.set_sync_state(cursor_key, cursor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_comparison_hands_back_what_was_not_listed() {
        let mut comparison = FullComparison::of(vec!["a".into(), "b".into(), "c".into()]);
        comparison.listed.extend(["b".to_owned(), "d".to_owned()]);
        assert_eq!(comparison.listed_count(), 2);
        assert_eq!(comparison.vanished(), ["a", "c"]);
    }
}
