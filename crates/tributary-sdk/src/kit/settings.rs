//! Typed settings and credentials: an integration declares them as serde structs, and
//! the kit turns the account's JSON into them, with errors that name the field.
//!
//! Defaults live in the manifest only (`settings[].default`): [`decode_settings`] fills in
//! every declared default the account does not set, then deserializes. The struct
//! therefore has no serde defaults of its own, and `deny_unknown_fields` on it turns a
//! misspelt setting into an error at link time instead of a silently ignored value.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::manifest::Manifest;
use crate::{Credentials, IntegrationError};

/// The account's `settings` as `S`, after the manifest's defaults are filled in and
/// every declared field is checked against its declared type (so a value out of its
/// range fails here, naming the field). Errors are permanent: relinking with other
/// settings is the fix.
pub fn decode_settings<S: DeserializeOwned>(
    manifest: &Manifest,
    given: &Map<String, Value>,
) -> Result<S, IntegrationError> {
    let mut merged = given.clone();
    for field in &manifest.settings {
        match merged.get(&field.name) {
            None | Some(Value::Null) => {
                merged.remove(&field.name);
                if let Some(default) = &field.default {
                    merged.insert(field.name.clone(), default.clone());
                }
            }
            Some(value) => field.check(value).map_err(|problem| {
                IntegrationError::permanent(format!(
                    "invalid {} setting `{}`: {problem}",
                    manifest.domain, field.name
                ))
            })?,
        }
    }
    decode(Value::Object(merged)).map_err(|(path, problem)| {
        IntegrationError::permanent(format!(
            "invalid {} settings: `{path}`: {problem}",
            manifest.domain
        ))
    })
}

/// The account's credentials as `C`. An empty string counts as absent (a required
/// field given as `""` is missing). The message names the field but never a value.
pub fn decode_credentials<C: DeserializeOwned>(
    manifest: &Manifest,
    given: &Credentials,
) -> Result<C, IntegrationError> {
    let mut fields = given.as_map().clone();
    fields.retain(|_, v| v.as_str() != Some(""));
    decode(Value::Object(fields)).map_err(|(path, problem)| {
        // serde's messages quote the offending value for some errors (an invalid
        // type); a credential's value is a secret, so only the field is named then.
        let problem =
            if problem.starts_with("missing field") || problem.starts_with("unknown field") {
                problem
            } else {
                "has an invalid value".to_owned()
            };
        IntegrationError::permanent(format!(
            "invalid {} credentials: `{path}`: {problem}",
            manifest.domain
        ))
    })
}

/// Deserializes `value`, reporting the path of the field at fault and serde's message.
fn decode<T: DeserializeOwned>(value: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // A missing field is reported at its parent: name the field itself.
        let path = match (path.as_str(), missing_field(&inner)) {
            (".", Some(field)) => field.to_owned(),
            (_, Some(field)) => format!("{path}.{field}"),
            _ => path,
        };
        (path, inner)
    })
}

/// The field named by serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Example {
        base_url: String,
        page_size: u32,
        label: Option<String>,
    }

    fn manifest() -> Manifest {
        Manifest::parse(
            "example/manifest.json",
            r#"{"domain": "example", "name": "Example", "version": "1",
                "taskTypes": ["start"],
                "settings": [
                  {"name": "baseUrl", "type": "url", "default": "https://example.com/"},
                  {"name": "pageSize", "type": "integer", "default": 50, "minimum": 1, "maximum": 500},
                  {"name": "label", "type": "string"}
                ]}"#,
        )
        .unwrap()
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn defaults_come_from_the_manifest() {
        let s: Example = decode_settings(&manifest(), &Map::new()).unwrap();
        assert_eq!(
            s,
            Example {
                base_url: "https://example.com/".into(),
                page_size: 50,
                label: None,
            }
        );
        let s: Example = decode_settings(
            &manifest(),
            &map(serde_json::json!({"pageSize": 7, "label": "x"})),
        )
        .unwrap();
        assert_eq!((s.page_size, s.label.as_deref()), (7, Some("x")));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (serde_json::json!({"pageSize": 0}), "pageSize"),
            (serde_json::json!({"pageSize": "50"}), "pageSize"),
            (serde_json::json!({"baseUrl": "ftp://x"}), "baseUrl"),
            (serde_json::json!({"pagesize": 5}), "pagesize"),
        ];
        for (given, field) in cases {
            let e = decode_settings::<Example>(&manifest(), &map(given)).unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
            assert_eq!(e.class(), crate::ErrorClass::Permanent);
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Secret {
        refresh_token: String,
        client_id: String,
    }

    #[test]
    fn credential_errors_name_the_field_never_the_value() {
        let given = Credentials::new(map(serde_json::json!({"refreshToken": "s3cret"})));
        let e = decode_credentials::<Secret>(&manifest(), &given).unwrap_err();
        assert!(e.to_string().contains("clientId"), "{e}");
        let given = Credentials::new(map(
            serde_json::json!({"refreshToken": "s3cret", "clientId": ""}),
        ));
        let e = decode_credentials::<Secret>(&manifest(), &given).unwrap_err();
        assert!(e.to_string().contains("missing field `clientId`"), "{e}");
        let given = Credentials::new(map(
            serde_json::json!({"refreshToken": 12345, "clientId": "c"}),
        ));
        let e = decode_credentials::<Secret>(&manifest(), &given).unwrap_err();
        assert!(e.to_string().contains("refreshToken"), "{e}");
        assert!(!e.to_string().contains("12345"), "{e}");
    }
}
