//! OData collection pages: `{"value": [...], "@odata.nextLink": "…"}`, and on the last
//! page of a delta round `{"value": [...], "@odata.deltaLink": "…"}`.
//!
//! `value` is required (a collection answer without it is not one). A page never
//! carries both links; a list's last page carries neither. The links are full URLs
//! whose tokens are opaque: they are kept as given, once checked to point at the base
//! URL's origin ([`crate::GraphClient`] does that before a [`Page`] exists, so a link
//! in a page is safe to store in a task payload and to follow later).

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tributary_sdk::IntegrationError;

use crate::GraphError;

/// One page of a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The page's items, in the server's order.
    pub items: Vec<T>,
    /// `@odata.nextLink`: the next page of this listing or round.
    pub next_link: Option<String>,
    /// `@odata.deltaLink`: the round is over; GET this later for what changed since.
    pub delta_link: Option<String>,
}

/// A page as it is on the wire.
#[derive(Deserialize)]
struct WirePage<T> {
    value: Option<Vec<T>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

/// Decodes a page's body (depth already checked by the caller). The links come back
/// as they are, to be resolved and checked by the client.
pub(crate) fn decode_page<T: DeserializeOwned>(body: &[u8]) -> Result<Page<T>, GraphError> {
    let wire: WirePage<T> = serde_json::from_slice(body).map_err(decode_error)?;
    let Some(items) = wire.value else {
        return Err(IntegrationError::permanent(
            "the answer is not a collection page: it has no `value` array",
        )
        .into());
    };
    if wire.next_link.is_some() && wire.delta_link.is_some() {
        return Err(IntegrationError::permanent(
            "the page carries both @odata.nextLink and @odata.deltaLink",
        )
        .into());
    }
    Ok(Page {
        items,
        next_link: wire.next_link,
        delta_link: wire.delta_link,
    })
}

/// A body that is not JSON (cut short, garbled) usually comes right on a retry; one of
/// the wrong shape does not.
pub(crate) fn decode_error(e: serde_json::Error) -> GraphError {
    use serde_json::error::Category;
    let message = format!("malformed answer: {e}");
    match e.classify() {
        Category::Io | Category::Syntax | Category::Eof => IntegrationError::transient(message),
        Category::Data => IntegrationError::permanent(message),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use tributary_sdk::ErrorClass;

    fn class(e: GraphError) -> ErrorClass {
        e.into_integration().class()
    }

    #[test]
    fn value_and_links_are_read() {
        let page: Page<Value> = decode_page(
            br#"{"@odata.context": "x", "value": [{"id": "a"}, {"id": "b"}],
                "@odata.nextLink": "https://graph.microsoft.com/v1.0/me/x?$skiptoken=1"}"#,
        )
        .unwrap();
        assert_eq!(page.items.len(), 2);
        assert!(page.next_link.is_some() && page.delta_link.is_none());
        let last: Page<Value> = decode_page(br#"{"value": []}"#).unwrap();
        assert!(last.items.is_empty() && last.next_link.is_none() && last.delta_link.is_none());
    }

    #[test]
    fn a_page_without_value_or_with_both_links_is_refused() {
        assert_eq!(
            class(decode_page::<Value>(br#"{"id": "not a page"}"#).unwrap_err()),
            ErrorClass::Permanent
        );
        assert_eq!(
            class(decode_page::<Value>(br#"{"value": null}"#).unwrap_err()),
            ErrorClass::Permanent
        );
        assert_eq!(
            class(decode_page::<Value>(br#"{"value": {"id": 1}}"#).unwrap_err()),
            ErrorClass::Permanent
        );
        let both = br#"{"value": [], "@odata.nextLink": "https://g/1", "@odata.deltaLink": "https://g/2"}"#;
        assert_eq!(
            class(decode_page::<Value>(both).unwrap_err()),
            ErrorClass::Permanent
        );
        assert_eq!(
            class(decode_page::<Value>(br#"{"value": [1, 2"#).unwrap_err()),
            ErrorClass::Transient
        );
    }
}
