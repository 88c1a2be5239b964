//! [`Credentials`]: the credential fields of one linked account.
//!
//! Credentials are a flat JSON object (`{"clientId": ..., "refreshToken": ...}`) whose
//! fields the manifest declares. They are encrypted at rest by the store and never
//! logged: `Debug` prints field names only, never values.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::IntegrationError;

/// Credential fields of one account. `Debug` redacts every value.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credentials(Map<String, Value>);

impl Credentials {
    /// Wraps a JSON object of credential fields.
    pub fn new(fields: Map<String, Value>) -> Self {
        Credentials(fields)
    }

    /// Parses credentials from JSON text, which must be an object.
    pub fn from_json_str(text: &str) -> Result<Self, IntegrationError> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            // serde_json's message names line and column, never the content.
            IntegrationError::permanent(format!("credentials are not valid JSON: {e}"))
        })?;
        match value {
            Value::Object(map) => Ok(Credentials(map)),
            _ => Err(IntegrationError::permanent(
                "credentials must be a JSON object of fields",
            )),
        }
    }

    /// A string field, or `None` when absent or not a string.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).and_then(Value::as_str)
    }

    /// A required string field; a missing or empty one is a permanent error naming it.
    pub fn require(&self, field: &str) -> Result<&str, IntegrationError> {
        match self.get(field) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(IntegrationError::permanent(format!(
                "credential field `{field}` is missing or not a non-empty string"
            ))),
        }
    }

    /// Sets a field.
    pub fn set(&mut self, field: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(field.into(), value.into());
    }

    /// Removes a field, if present.
    pub fn remove(&mut self, field: &str) {
        self.0.remove(field);
    }

    /// The underlying JSON object (for the store, which encrypts it).
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The credentials as JSON text (for the store, which encrypts it).
    pub fn to_json_string(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for key in self.0.keys() {
            map.entry(key, &"<redacted>");
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_values() {
        let c = Credentials::from_json_str(r#"{"refreshToken":"s3cr3t-value","clientId":"abc"}"#)
            .unwrap();
        let printed = format!("{c:?} {c:#?}");
        assert!(!printed.contains("s3cr3t-value"));
        assert!(!printed.contains("abc\""));
        assert!(printed.contains("refreshToken"));
    }

    #[test]
    fn require_names_the_missing_field() {
        let c = Credentials::from_json_str("{}").unwrap();
        let e = c.require("refreshToken").unwrap_err();
        assert!(e.message().contains("refreshToken"));
    }

    #[test]
    fn rejects_non_objects() {
        assert!(Credentials::from_json_str("[1,2]").is_err());
        assert!(Credentials::from_json_str("{not json").is_err());
    }
}
