//! The type names a task enum accepts, read from serde itself.
//!
//! Deserializing a task whose `type` no variant has makes serde report the unknown
//! variant together with the list of expected names. [`task_types`] provokes exactly
//! that with an error type of its own that keeps the list, so the manifest can be
//! checked against the enum when the integration registers.

use serde::de::value::MapDeserializer;
use serde::de::{DeserializeOwned, Error};

/// An error that keeps the variant names serde expected.
#[derive(Debug)]
struct Probe(Option<&'static [&'static str]>);

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("task type probe")
    }
}

impl std::error::Error for Probe {}

impl Error for Probe {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        Probe(None)
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        Probe(Some(expected))
    }
}

/// The `type` names of the task enum `T` (tagged with `tag = "type"`), or `None` when
/// serde does not reveal them (a task type that is not such an enum).
pub fn task_types<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let probe = [("type", "\u{0}not a task type"), ("payload", "")];
    let map = MapDeserializer::<_, Probe>::new(probe.into_iter());
    match T::deserialize(map) {
        Err(Probe(found)) => found,
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "type", content = "payload", rename_all = "camelCase")]
    enum Adjacent {
        Start,
        #[serde(rename_all = "camelCase")]
        ListItems {
            page_token: Option<String>,
        },
        FetchItem(String),
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "camelCase")]
    enum Internal {
        Start,
        Other { x: u32 },
    }

    #[test]
    fn reads_the_variant_names() {
        assert_eq!(
            super::task_types::<Adjacent>(),
            Some(&["start", "listItems", "fetchItem"][..])
        );
        assert_eq!(
            super::task_types::<Internal>(),
            Some(&["start", "other"][..])
        );
        assert_eq!(super::task_types::<String>(), None);
    }
}
