//! What the fake answers, checked against Google's published discovery document: only
//! declared properties, with the declared JSON types (`int64`/`uint64` as strings,
//! `byte` as base64, `int32`/`uint32` in range, enums respected).
//!
//! The document is the copy vendored with the Gmail integration,
//! `integrations/gmail/spec/gmail-v1-discovery.json` (its README names its origin,
//! licence and revision), read through a path inside the repository.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value, json};

use super::{SIMPLE, Setup, reply_to_simple, setup};

fn discovery() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../spec/gmail-v1-discovery.json"
    );
    let text = std::fs::read_to_string(path).expect("the vendored discovery document is readable");
    serde_json::from_str(&text).expect("the discovery document is json")
}

/// A checker of JSON values against the discovery document's `schemas`.
struct Checker {
    schemas: Map<String, Value>,
}

impl Checker {
    fn new(document: &Value) -> Checker {
        Checker {
            schemas: document["schemas"]
                .as_object()
                .cloned()
                .expect("the document has schemas"),
        }
    }

    /// Every mismatch between `value` and the schema named `name`.
    fn check_named(&self, value: &Value, name: &str) -> Vec<String> {
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

fn assert_conforms(checker: &Checker, value: &Value, schema: &str) {
    let errors = checker.check_named(value, schema);
    assert!(
        errors.is_empty(),
        "{schema} mismatches: {errors:#?}\n{value:#}"
    );
}

#[test]
fn the_checker_catches_what_it_should() {
    let checker = Checker::new(&discovery());
    let good = json!({"id": "18c", "threadId": "18c", "historyId": "12", "sizeEstimate": 5});
    assert!(checker.check_named(&good, "Message").is_empty());
    let errors = checker.check_named(
        &json!({"id": "1", "historyId": 12, "sizeEstimate": "5", "extra": true}),
        "Message",
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
    let nested = checker.check_named(
        &json!({"payload": {"parts": [{"body": {"data": "***", "size": 1}}]}}),
        "Message",
    );
    assert_eq!(nested.len(), 1, "{nested:#?}");
    let labels = checker.check_named(
        &json!({"labels": [{"type": "other"}]}),
        "ListLabelsResponse",
    );
    assert_eq!(labels.len(), 1, "{labels:#?}");
}

async fn conforms(s: &Setup, checker: &Checker, path: &str, schema: &str) -> Value {
    let reply = s.get(path).await;
    assert!(reply.status.is_success(), "{path}: {}", reply.text);
    assert_conforms(checker, &reply.json, schema);
    reply.json
}

#[tokio::test]
async fn every_response_matches_the_discovery_schemas() {
    let checker = Checker::new(&discovery());
    let s = setup(80).await;
    let start = s.fake.history_id();

    conforms(&s, &checker, "profile", "Profile").await;
    conforms(&s, &checker, "labels", "ListLabelsResponse").await;
    let page = conforms(
        &s,
        &checker,
        "messages?maxResults=10",
        "ListMessagesResponse",
    )
    .await;
    assert!(page.get("nextPageToken").is_some());

    // Every generated message in every format, and each attachment.
    let mut attachments = 0;
    for id in s.fake.ids_newest_first() {
        let full = conforms(&s, &checker, &format!("messages/{id}"), "Message").await;
        for format in ["raw", "metadata", "minimal"] {
            conforms(
                &s,
                &checker,
                &format!("messages/{id}?format={format}"),
                "Message",
            )
            .await;
        }
        let mut stack = vec![full["payload"].clone()];
        while let Some(part) = stack.pop() {
            if let Some(attachment) = part["body"]["attachmentId"].as_str() {
                conforms(
                    &s,
                    &checker,
                    &format!("messages/{id}/attachments/{attachment}"),
                    "MessagePartBody",
                )
                .await;
                attachments += 1;
            }
            stack.extend(part["parts"].as_array().cloned().unwrap_or_default());
        }
    }
    assert!(
        attachments > 5,
        "only {attachments} attachments in 80 messages"
    );

    // Every kind of history record, and a paged history response.
    let id = s
        .fake
        .insert_raw(SIMPLE.as_bytes(), &["INBOX"])
        .expect("insert");
    s.fake
        .insert_raw(reply_to_simple(1).as_bytes(), &["INBOX"])
        .expect("insert");
    let modified = s
        .post(
            &format!("messages/{id}/modify"),
            json!({"addLabelIds": ["STARRED"], "removeLabelIds": ["INBOX"]}),
        )
        .await;
    assert_conforms(&checker, &modified.json, "Message");
    let trashed = s.post(&format!("messages/{id}/trash"), json!({})).await;
    assert_conforms(&checker, &trashed.json, "Message");
    s.fake.delete(&id).expect("delete");
    let history = conforms(
        &s,
        &checker,
        &format!("history?startHistoryId={start}&maxResults=3"),
        "ListHistoryResponse",
    )
    .await;
    assert!(history.get("nextPageToken").is_some());
    let all = conforms(
        &s,
        &checker,
        &format!("history?startHistoryId={start}"),
        "ListHistoryResponse",
    )
    .await;
    assert_eq!(all["history"].as_array().map(Vec::len), Some(5));

    let inserted = s
        .post(
            "messages",
            json!({"raw": base64::engine::general_purpose::URL_SAFE.encode(SIMPLE)}),
        )
        .await;
    assert_conforms(&checker, &inserted.json, "Message");
}
