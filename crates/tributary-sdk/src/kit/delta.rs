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
        Ok(FullComparison {
            stored: ctx.content_exists.stored_ids().await?,
            listed: HashSet::new(),
            fetches: 0,
        })
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
