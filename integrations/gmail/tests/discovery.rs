//! The client against Google's discovery document for the Gmail API: every request it
//! sends uses a documented path and documented query parameters with valid values,
//! and every field its response structs read exists, with the right type, in the
//! schema the method returns.
//!
//! The document is vendored in the crate, `spec/gmail-v1-discovery.json` (its README
//! names its origin, licence and revision).

#![allow(clippy::unwrap_used)] // a test binary: a panic is how a test fails

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tributary_gmail::GmailTask;
use tributary_gmail::client::{ListHistoryResponse, ListMessagesResponse, Message, Profile};
use tributary_sdk::Task;

use support::stub::Stub;
use support::{Known, context, credentials, run, task};

fn discovery() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec/gmail-v1-discovery.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Every method of the document, with its resource path (`users.messages.get`).
fn methods(doc: &Value) -> Vec<&Value> {
    fn walk<'a>(resource: &'a Value, found: &mut Vec<&'a Value>) {
        if let Some(methods) = resource["methods"].as_object() {
            found.extend(methods.values());
        }
        if let Some(resources) = resource["resources"].as_object() {
            resources.values().for_each(|r| walk(r, found));
        }
    }
    let mut found = Vec::new();
    walk(doc, &mut found);
    found
}

/// Whether a request path matches a discovery path template such as
/// `gmail/v1/users/{userId}/messages/{id}`.
fn path_matches(template: &str, path: &str) -> bool {
    let template: Vec<&str> = template.split('/').collect();
    let path: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    template.len() == path.len()
        && template.iter().zip(&path).all(|(t, p)| {
            if t.starts_with('{') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

fn check_value(name: &str, declared: &Value, value: &str) {
    if let Some(allowed) = declared["enum"].as_array() {
        assert!(
            allowed.iter().any(|a| a == value),
            "`{name}={value}` is not one of {allowed:?}"
        );
    }
    match declared["type"].as_str() {
        Some("integer") => {
            let n: i64 = value
                .parse()
                .unwrap_or_else(|_| panic!("`{name}={value}` is not an integer"));
            if let Some(max) = declared["maximum"].as_str() {
                assert!(
                    n <= max.parse::<i64>().unwrap(),
                    "`{name}={value}` above {max}"
                );
            }
        }
        Some("boolean") => assert!(
            value == "true" || value == "false",
            "`{name}={value}` is not a boolean"
        ),
        _ => {}
    }
}

/// Runs every task type (and validation) against the stub and returns what it saw.
async fn exercise_every_call() -> Vec<support::stub::Request> {
    let stub = Stub::start().await;
    {
        let mut state = stub.state();
        state.add_messages(1, 3);
        state.history_page_size = 1;
        state.history = Some(vec![
            json!({"id": "1001", "messagesAdded": [{"message": {"id": "m4"}}]}),
            json!({"id": "1002", "messagesDeleted": [{"message": {"id": "m1"}}]}),
        ]);
    }
    let fresh = || {
        context(
            &stub,
            credentials(Some("at-0"), "rt"),
            json!({}),
            Known::new(&[]),
        )
    };
    let synced = || {
        context(
            &stub,
            credentials(Some("at-0"), "rt"),
            json!({"lastHistoryId": "900"}),
            Known::new(&[]),
        )
    };
    run(fresh(), &Task::start()).await.unwrap();
    let next_page = GmailTask::GetEmailList {
        page_token: Some("offset-1".into()),
        consecutive_empty_pages: 0,
    };
    run(synced(), &task(next_page)).await.unwrap();
    run(synced(), &task(GmailTask::download("m2")))
        .await
        .unwrap();
    run(synced(), &task(GmailTask::CheckHistory)).await.unwrap();
    stub.state().history = None;
    run(synced(), &task(GmailTask::CheckHistory)).await.unwrap();
    let registration = tributary_gmail::registration().unwrap();
    let mut integration = (registration.construct)(synced()).unwrap();
    integration.validate_authentication().await.unwrap();
    stub.state().requests.clone()
}

#[tokio::test]
async fn requests_use_documented_paths_and_parameters() {
    let doc = discovery();
    let methods = methods(&doc);
    let global = doc["parameters"].as_object().unwrap();
    let mut used = BTreeSet::new();

    for request in exercise_every_call().await {
        let method = methods
            .iter()
            .filter(|m| m["httpMethod"] == "GET")
            .find(|m| path_matches(m["flatPath"].as_str().unwrap(), &request.path))
            .unwrap_or_else(|| panic!("no documented GET method has path {}", request.path));
        let id = method["id"].as_str().unwrap();
        used.insert(id.to_owned());
        assert!(
            request.path.starts_with("/gmail/v1/users/me/"),
            "userId is `me`: {}",
            request.path
        );
        let declared = method["parameters"].as_object().unwrap();
        for (name, value) in &request.query {
            let parameter = declared
                .get(name)
                .or_else(|| global.get(name))
                .unwrap_or_else(|| panic!("{id} has no parameter `{name}`"));
            assert_eq!(
                parameter["location"], "query",
                "{id} `{name}` is not a query parameter"
            );
            check_value(name, parameter, value);
            let repeats = request.query.iter().filter(|(n, _)| n == name).count();
            assert!(
                repeats == 1 || parameter["repeated"] == true,
                "{id} `{name}` is sent {repeats} times but is not repeated"
            );
        }
    }

    let expected: BTreeSet<String> = [
        "gmail.users.getProfile",
        "gmail.users.labels.list",
        "gmail.users.messages.list",
        "gmail.users.messages.get",
        "gmail.users.history.list",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(used, expected);
}

/// A value for every property of `schema`, following `$ref`s (arrays stop growing a
/// few levels down, so the recursive `MessagePart` ends).
fn sample(doc: &Value, schema: &Value, depth: usize) -> Value {
    if let Some(name) = schema["$ref"].as_str() {
        return sample(doc, &doc["schemas"][name], depth + 1);
    }
    match schema["type"].as_str() {
        Some("object") => Value::Object(
            schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), sample(doc, v, depth + 1)))
                .collect(),
        ),
        Some("array") if depth > 8 => json!([]),
        Some("array") => json!([sample(doc, &schema["items"], depth + 1)]),
        Some("integer") => json!(7),
        Some("number") => json!(0.5),
        Some("boolean") => json!(true),
        _ => match schema["format"].as_str() {
            Some("int64" | "uint64") => json!("1700000000000"),
            Some("byte") => json!("SGVsbG8"),
            _ => json!("text"),
        },
    }
}

/// Asserts that every field of `value` (our struct, serialized) is a property of
/// `schema` with a compatible type.
fn assert_documented(doc: &Value, schema: &Value, value: &Value, at: &str) {
    if let Some(name) = schema["$ref"].as_str() {
        return assert_documented(doc, &doc["schemas"][name], value, at);
    }
    let kind = schema["type"].as_str().unwrap_or_default();
    match value {
        Value::Null => {} // an absent optional field
        Value::Object(fields) => {
            assert_eq!(kind, "object", "{at} is an object in our struct");
            for (name, field) in fields {
                let property = &schema["properties"][name];
                assert!(!property.is_null(), "{at}.{name} is not in the schema");
                assert_documented(doc, property, field, &format!("{at}.{name}"));
            }
        }
        Value::Array(items) => {
            assert_eq!(kind, "array", "{at} is an array in our struct");
            for item in items {
                assert_documented(doc, &schema["items"], item, &format!("{at}[]"));
            }
        }
        Value::String(_) => assert_eq!(kind, "string", "{at} is a string in our struct"),
        Value::Number(_) => assert!(
            kind == "integer" || kind == "number",
            "{at} is a number in our struct, {kind} in the schema"
        ),
        Value::Bool(_) => assert_eq!(kind, "boolean", "{at} is a boolean in our struct"),
    }
}

/// Our struct reads the schema's sample, and everything it holds is documented.
fn check_schema<T: DeserializeOwned + Serialize>(doc: &Value, schema_name: &str) {
    let schema = &doc["schemas"][schema_name];
    assert!(schema.is_object(), "no schema {schema_name}");
    let sample = sample(doc, schema, 0);
    let parsed: T = serde_json::from_value(sample.clone())
        .unwrap_or_else(|e| panic!("{schema_name} sample does not parse: {e}\n{sample:#}"));
    let ours = serde_json::to_value(&parsed).unwrap();
    assert_documented(doc, schema, &ours, schema_name);
}

#[test]
fn response_structs_read_documented_fields() {
    let doc = discovery();
    check_schema::<Profile>(&doc, "Profile");
    check_schema::<ListMessagesResponse>(&doc, "ListMessagesResponse");
    check_schema::<Message>(&doc, "Message");
    check_schema::<ListHistoryResponse>(&doc, "ListHistoryResponse");
}

#[test]
fn the_check_catches_an_undocumented_field() {
    let doc = discovery();
    let result = std::panic::catch_unwind(|| {
        assert_documented(
            &doc,
            &json!({"$ref": "Profile"}),
            &json!({"historyId": "1", "historyID": "1"}),
            "Profile",
        )
    });
    assert!(result.is_err());
}
