//! OData query options and answers, as Graph's collections use them.
//!
//! - [`QueryOptions`]: the query string, read once; the system options are found with
//!   or without their `$` (`$select` or `select`), and a repeated one is a 400.
//! - `$select`: a comma-separated list of property names of the type, compared without
//!   regard to case and answered with the type's spelling; an unknown name is 400
//!   `RequestBroker--ParseUri`. [`select_fields`] keeps the selected ones of a JSON
//!   object (plus the ones always returned, such as `id` and the `@odata.*`
//!   annotations).
//! - `$top` / `$skip`: non-negative integers; `$top` is capped at the collection's
//!   limit (1,000 for messages and folders) so no request makes the fake allocate
//!   more than that.
//! - [`collection`] / [`json_response`]: `{"@odata.context", "value", "@odata.nextLink"}`
//!   and Graph's JSON content type.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::error::GraphError;

/// Graph's JSON content type.
pub const JSON_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// A request's query string, parsed once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOptions(Vec<(String, String)>);

impl QueryOptions {
    /// Parses a raw query string (`None`: empty).
    pub fn parse(raw: Option<&str>) -> QueryOptions {
        QueryOptions(
            raw.map(|raw| {
                url::form_urlencoded::parse(raw.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    /// The value of a parameter given exactly by `name` (a custom option such as
    /// `changeType`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of the system option `$name` (also accepted without `$`); 400 when it
    /// is given twice.
    pub fn system(&self, name: &str) -> Result<Option<&str>, GraphError> {
        let dollar = format!("${name}");
        let mut found = self
            .0
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(&dollar) || key.eq_ignore_ascii_case(name));
        let first = found.next().map(|(_, value)| value.as_str());
        if found.next().is_some() {
            return Err(GraphError::bad_request(format!(
                "Query option '${name}' was specified more than once, but it must be specified at most once."
            )));
        }
        Ok(first)
    }

    /// Every parameter, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// `$select` against the type's selectable properties: `None` when absent, else
    /// the named properties with the type's spelling.
    pub fn select(
        &self,
        properties: &[&'static str],
        type_name: &str,
    ) -> Result<Option<Vec<&'static str>>, GraphError> {
        match self.system("select")? {
            None => Ok(None),
            Some(raw) => parse_select(raw, properties, type_name).map(Some),
        }
    }

    /// `$top`: `default` when absent, at most `max`; 400 when it is not a
    /// non-negative integer.
    pub fn top(&self, default: usize, max: usize) -> Result<usize, GraphError> {
        match self.system("top")? {
            None => Ok(default.min(max)),
            Some(raw) => parse_count(raw, "$top").map(|n| n.min(max)),
        }
    }

    /// `$skip`: 0 when absent; 400 when it is not a non-negative integer.
    pub fn skip(&self) -> Result<usize, GraphError> {
        match self.system("skip")? {
            None => Ok(0),
            Some(raw) => parse_count(raw, "$skip"),
        }
    }

    /// `$top` as the first request of a round gives it, for the links to carry: `None`
    /// when absent, else from 1 to `max`; 400 when it is not a non-negative integer.
    pub fn first_top(&self, max: usize) -> Result<Option<usize>, GraphError> {
        match self.system("top")? {
            None => Ok(None),
            Some(_) => Ok(Some(self.top(max, max)?.max(1))),
        }
    }

    /// 400 `BadRequest` when one of the system `options` (`filter`, `search`...) is
    /// given: the fake does not evaluate them.
    pub fn refuse(&self, options: &[&str]) -> Result<(), GraphError> {
        for option in options {
            if self.system(option)?.is_some() {
                return Err(GraphError::bad_request(format!(
                    "The query option '${option}' is not supported by this fake."
                )));
            }
        }
        Ok(())
    }

    /// `$orderby` of a collection that sorts by `property` only: `None` when absent,
    /// else whether it is descending (`asc` when no direction is given). Any other
    /// ordering is a 400 whose message `unsupported` words from the raw value; a
    /// direction other than `asc` or `desc` is a 400 too.
    pub fn order_by(
        &self,
        property: &str,
        unsupported: impl FnOnce(&str) -> String,
    ) -> Result<Option<bool>, GraphError> {
        let Some(raw) = self.system("orderby")? else {
            return Ok(None);
        };
        let mut words = raw.split_whitespace();
        let named = words.next().unwrap_or("");
        let direction = words.next().unwrap_or("asc");
        if !named.eq_ignore_ascii_case(property) || words.next().is_some() {
            return Err(GraphError::bad_request(unsupported(raw)));
        }
        if direction.eq_ignore_ascii_case("desc") {
            Ok(Some(true))
        } else if direction.eq_ignore_ascii_case("asc") {
            Ok(Some(false))
        } else {
            Err(GraphError::bad_request(format!(
                "Invalid $orderby direction '{direction}'."
            )))
        }
    }

    /// Every parameter but the system options `dropped` (with or without `$`, in any
    /// case), in order: what a next page's link keeps before it adds its own.
    pub fn pairs_without(&self, dropped: &[&str]) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(key, _)| {
                let key = key.trim_start_matches('$');
                !dropped.iter().any(|d| key.eq_ignore_ascii_case(d))
            })
            .cloned()
            .collect()
    }

    /// `$count=true`.
    pub fn count(&self) -> Result<bool, GraphError> {
        match self.system("count")? {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(GraphError::bad_request(format!(
                "The value '{v}' is not valid for the query option '$count'."
            ))),
        }
    }
}

fn parse_count(raw: &str, option: &str) -> Result<usize, GraphError> {
    raw.trim().parse::<usize>().map_err(|_| {
        GraphError::bad_request(format!(
            "Invalid value '{raw}' for the query option '{option}': a non-negative integer is expected."
        ))
    })
}

/// Parses a `$select` list against `properties` (case-insensitive).
pub fn parse_select(
    raw: &str,
    properties: &[&'static str],
    type_name: &str,
) -> Result<Vec<&'static str>, GraphError> {
    let mut selected = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let found = properties
            .iter()
            .find(|p| p.eq_ignore_ascii_case(name))
            .ok_or_else(|| GraphError::unknown_property(name, type_name))?;
        if !selected.contains(found) {
            selected.push(*found);
        }
    }
    Ok(selected)
}

/// Keeps of `object` the `selected` properties, the `always` ones and every
/// `@odata.*` annotation; everything when `selected` is `None`.
pub fn select_fields(
    object: Map<String, Value>,
    selected: Option<&[&str]>,
    always: &[&str],
) -> Map<String, Value> {
    let Some(selected) = selected else {
        return object;
    };
    object
        .into_iter()
        .filter(|(key, _)| {
            key.starts_with('@')
                || always.contains(&key.as_str())
                || selected.contains(&key.as_str())
        })
        .collect()
}

/// One page of `items` (in their order): at most `size` of them, and, when more follow,
/// the position the next page starts after (`position_of` the page's last item). The
/// items are read one past the page, no further.
pub fn keyset_page<T, P>(
    items: impl IntoIterator<Item = T>,
    size: usize,
    position_of: impl FnOnce(&T) -> P,
) -> (Vec<T>, Option<P>) {
    let mut page: Vec<T> = items.into_iter().take(size + 1).collect();
    let more = page.len() > size;
    page.truncate(size);
    let next = if more {
        page.last().map(position_of)
    } else {
        None
    };
    (page, next)
}

/// A collection page: `@odata.context`, `value`, and `@odata.nextLink` when there is
/// more.
pub fn collection(context: &str, value: Vec<Value>, next_link: Option<String>) -> Value {
    let mut page = Map::new();
    page.insert("@odata.context".into(), Value::String(context.to_owned()));
    page.insert("value".into(), Value::Array(value));
    if let Some(next) = next_link {
        page.insert("@odata.nextLink".into(), Value::String(next));
    }
    Value::Object(page)
}

/// A JSON answer with Graph's content type.
pub fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}

/// `url` with its query parameters replaced by `pairs` (a next page's link). `$` and
/// `,` stay as they are (`$skiptoken=`, `$select=a,b`), as in Graph's links.
pub fn link_with_query(url: &str, pairs: &[(String, String)]) -> String {
    let base = url.split(['?', '#']).next().unwrap_or(url);
    if pairs.is_empty() {
        return base.to_owned();
    }
    let encode = |s: &str| {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace("%24", "$")
            .replace("%2C", ",")
    };
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("{base}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_is_case_insensitive_and_checked() {
        let q = QueryOptions::parse(Some("$select=Subject,isRead"));
        let selected = q.select(&["subject", "isRead", "body"], "microsoft.graph.message");
        assert_eq!(selected.ok().flatten(), Some(vec!["subject", "isRead"]));
        let q = QueryOptions::parse(Some("$select=nope"));
        let error = q.select(&["subject"], "microsoft.graph.message").err();
        assert_eq!(
            error.map(|e| e.code().to_owned()).as_deref(),
            Some("RequestBroker--ParseUri")
        );
    }

    #[test]
    fn top_is_capped_and_checked() {
        let q = QueryOptions::parse(Some("$top=5000"));
        assert_eq!(q.top(10, 1000).ok(), Some(1000));
        let q = QueryOptions::parse(Some("top=-1"));
        assert!(q.top(10, 1000).is_err());
        let q = QueryOptions::parse(Some("$top=1&$top=2"));
        assert!(q.top(10, 1000).is_err());
        assert_eq!(QueryOptions::parse(None).top(10, 1000).ok(), Some(10));
    }

    #[test]
    fn orderby_takes_one_property_and_a_direction() {
        let unsupported = |raw: &str| format!("not {raw}");
        let order = |q: &str| QueryOptions::parse(Some(q)).order_by("name", unsupported);
        assert_eq!(
            QueryOptions::parse(None).order_by("name", unsupported),
            Ok(None)
        );
        assert_eq!(order("$orderby=Name"), Ok(Some(false)));
        assert_eq!(order("$orderby=name DESC"), Ok(Some(true)));
        let other = order("$orderby=size").err();
        assert_eq!(other.as_ref().map(GraphError::message), Some("not size"));
        assert!(order("$orderby=name sideways").is_err());
        assert!(order("$orderby=name desc x").is_err());
    }

    #[test]
    fn refused_options_and_dropped_pairs() {
        let q = QueryOptions::parse(Some("$Filter=x&$top=3&skip=2&a=b"));
        assert!(q.refuse(&["search"]).is_ok());
        assert_eq!(
            q.refuse(&["search", "filter"]).map_err(|e| e.status()),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            q.pairs_without(&["top", "skip"]),
            vec![
                ("$Filter".to_owned(), "x".to_owned()),
                ("a".to_owned(), "b".to_owned())
            ]
        );
        assert_eq!(q.first_top(2), Ok(Some(2)));
        assert_eq!(
            QueryOptions::parse(Some("$top=0")).first_top(10),
            Ok(Some(1))
        );
        assert_eq!(QueryOptions::parse(None).first_top(10), Ok(None));
    }

    #[test]
    fn keyset_pages_end_where_the_next_starts() {
        assert_eq!(keyset_page(1..=5, 2, |n| *n), (vec![1, 2], Some(2)));
        assert_eq!(keyset_page(1..=2, 2, |n| *n), (vec![1, 2], None));
        assert_eq!(keyset_page(1..=3, 0, |n| *n), (vec![], None));
    }

    #[test]
    fn links_keep_dollars_and_commas() {
        let link = link_with_query(
            "http://h/v1.0/me/x?old=1",
            &[
                ("$select".into(), "a,b".into()),
                ("$skiptoken".into(), "t=+/".into()),
            ],
        );
        assert_eq!(link, "http://h/v1.0/me/x?$select=a,b&$skiptoken=t%3D%2B%2F");
        let parsed = QueryOptions::parse(link.split_once('?').map(|(_, q)| q));
        assert_eq!(parsed.system("skiptoken").ok().flatten(), Some("t=+/"));
    }
}
