//! Paged listings with the early-stop rule.
//!
//! A list task reads one page of items, newest first, fetches what is unknown (new, or
//! listed at a version other than the stored one: see [`crate::ItemRef`]), and queues
//! the next page unless [`MAX_EMPTY_PAGES`] pages in a row had nothing new: a routine
//! `start` stops after a few pages, and a backfill walks everything once. [`page`] owns
//! that rule; the integration only turns its answer into tasks.

use crate::{IntegrationContext, IntegrationError, ItemRef, MAX_EMPTY_PAGES};

/// What to do after one listed page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPage {
    /// The page's ids not known yet (at the version listed), in the page's order: one
    /// fetch task each.
    pub new_ids: Vec<String>,
    /// The next page to list, unless the listing ends here.
    pub next: Option<NextPage>,
}

/// The next page of a listing and the count the rule carries to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextPage {
    /// The service's token for the next page.
    pub token: String,
    /// Pages in a row that had nothing new, this one included: store it in the next
    /// page's task and pass it back to [`page`].
    pub consecutive_empty_pages: u32,
}

/// Applies the rule to one page: `listed` are its items (ids, or [`ItemRef`]s with
/// their versions), `next_token` the service's token
/// for the page after it (`None` on the last page), and `empty_pages_before` the count
/// the previous page carried (0 for the first page). Asks `content_exists` once.
pub async fn page<T: Into<ItemRef>>(
    ctx: &IntegrationContext,
    listed: Vec<T>,
    next_token: Option<String>,
    empty_pages_before: u32,
) -> Result<ListedPage, IntegrationError> {
    let listed = listed.into_iter().map(Into::into).collect();
    let new_ids: Vec<String> = ctx
        .unknown(listed)
        .await?
        .into_iter()
        .map(|item| item.id)
        .collect();
    let empty = if new_ids.is_empty() {
        empty_pages_before.saturating_add(1)
    } else {
        0
    };
    let next = match next_token {
        Some(token) if empty < MAX_EMPTY_PAGES => Some(NextPage {
            token,
            consecutive_empty_pages: empty,
        }),
        Some(_) => {
            tracing::debug!(empty_pages = empty, "listing stopped: nothing new");
            None
        }
        None => None,
    };
    Ok(ListedPage { new_ids, next })
}
