//! What the fake answers, checked against Google's published discovery document: only
//! declared properties, with the declared JSON types (`int64`/`uint64` as strings,
//! `byte` as base64, `int32`/`uint32` in range, enums respected).
//!
//! The document is the copy vendored with the Gmail integration,
//! `integrations/gmail/spec/gmail-v1-discovery.json` (its README names its origin,
//! licence and revision), read through a path inside the repository.

use base64::Engine as _;
use serde_json::{Value, json};
use tributary_google_fake::discovery::{Checker, assert_conforms};

use super::{SIMPLE, Setup, reply_to_simple, setup};

fn discovery() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../spec/gmail-v1-discovery.json"
    );
    let text = std::fs::read_to_string(path).expect("the vendored discovery document is readable");
    serde_json::from_str(&text).expect("the discovery document is json")
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
