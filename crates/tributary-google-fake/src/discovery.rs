//! Checking what a fake answers against Google's published discovery document: only
//! declared properties, with the declared JSON types (`int64`/`uint64` as strings,
//! `byte` as base64, `int32`/`uint32` in range, enums respected). Each fake's tests
//! read the document vendored with its integration.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value, json};

/// A checker of JSON values against the discovery document's `schemas`.
pub struct Checker {
    schemas: Map<String, Value>,
}

impl Checker {
    /// A checker of the document's schemas.
    pub fn new(document: &Value) -> Checker {
        Checker {
            schemas: document["schemas"]
                .as_object()
                .cloned()
                .expect("the document has schemas"),
        }
    }

    /// Every mismatch between `value` and the schema named `name`.
    pub fn check_named(&self, value: &Value, name: &str) -> Vec<String> {
        let mut errors = Vec::new();
        match self.schemas.get(name) {
            Some(schema) => self.check(value, schema, name, &mut errors),
            None => errors.push(format!("no schema named {name}")),
        }
        errors
    }

    fn check(&self, value: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            match self.schemas.get(reference) {
                Some(target) => self.check(value, target, path, errors),
                None => errors.push(format!("{path}: unknown $ref {reference}")),
            }
            return;
        }
        let kind = schema.get("type").and_then(Value::as_str).unwrap_or("any");
        let format = schema.get("format").and_then(Value::as_str);
        match kind {
            "object" => {
                let Some(object) = value.as_object() else {
                    errors.push(format!("{path}: expected an object, got {value}"));
                    return;
                };
                let properties = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties");
                for (key, item) in object {
                    let child = format!("{path}.{key}");
                    match (properties.and_then(|p| p.get(key)), additional) {
                        (Some(property), _) => self.check(item, property, &child, errors),
                        (None, Some(additional)) => self.check(item, additional, &child, errors),
                        (None, None) => errors.push(format!("{child}: not declared by the schema")),
                    }
                }
            }
            "array" => {
                let Some(items) = value.as_array() else {
                    errors.push(format!("{path}: expected an array, got {value}"));
                    return;
                };
                let item_schema = schema.get("items").cloned().unwrap_or(json!({}));
                for (index, item) in items.iter().enumerate() {
                    self.check(item, &item_schema, &format!("{path}[{index}]"), errors);
                }
            }
            "string" => {
                let Some(text) = value.as_str() else {
                    errors.push(format!("{path}: expected a string, got {value}"));
                    return;
                };
                let valid = match format {
                    Some("int64") => text.parse::<i64>().is_ok(),
                    Some("uint64") => text.parse::<u64>().is_ok(),
                    Some("byte") => {
                        let lenient = GeneralPurpose::new(
                            &alphabet::URL_SAFE,
                            GeneralPurposeConfig::new()
                                .with_decode_padding_mode(DecodePaddingMode::Indifferent),
                        );
                        lenient
                            .decode(text.replace('+', "-").replace('/', "_"))
                            .is_ok()
                    }
                    _ => true,
                };
                if !valid {
                    errors.push(format!("{path}: {text:?} is not a {format:?} string"));
                }
                if let Some(choices) = schema.get("enum").and_then(Value::as_array)
                    && !choices.iter().any(|c| c == value)
                {
                    errors.push(format!("{path}: {text:?} is not one of {choices:?}"));
                }
            }
            "integer" => {
                let in_range = match format {
                    Some("int32") => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                    Some("uint32") => value.as_u64().is_some_and(|n| u32::try_from(n).is_ok()),
                    _ => value.is_i64() || value.is_u64(),
                };
                if !in_range {
                    errors.push(format!(
                        "{path}: {value} is not an integer of format {format:?}"
                    ));
                }
            }
            "number" if !value.is_number() => {
                errors.push(format!("{path}: expected a number, got {value}"));
            }
            "boolean" if !value.is_boolean() => {
                errors.push(format!("{path}: expected a boolean, got {value}"));
            }
            _ => {}
        }
    }
}

/// Panics with every mismatch unless `value` conforms to the schema named `schema`.
pub fn assert_conforms(checker: &Checker, value: &Value, schema: &str) {
    let errors = checker.check_named(value, schema);
    assert!(
        errors.is_empty(),
        "{schema} mismatches: {errors:#?}\n{value:#}"
    );
}
