//! `history.list` across mutations, its filters and paging, and expiry.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{SIMPLE, Setup, assert_google_error, reply_to_simple, setup};

fn records(reply: &Value) -> Vec<Value> {
    reply["history"].as_array().cloned().unwrap_or_default()
}

/// The kinds of change in a record, in a fixed order.
fn kinds(record: &Value) -> Vec<&'static str> {
    [
        "messagesAdded",
        "messagesDeleted",
        "labelsAdded",
        "labelsRemoved",
    ]
    .into_iter()
    .filter(|kind| record.get(*kind).is_some())
    .collect()
}

async fn start_id(s: &Setup) -> String {
    let profile = s.get("profile").await;
    profile.json["historyId"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn history_follows_every_change() {
    let s = setup(20).await;
    let start = start_id(&s).await;
    let nothing = s.get(&format!("history?startHistoryId={start}")).await;
    assert_eq!(nothing.status, StatusCode::OK, "{}", nothing.text);
    assert!(nothing.json.get("history").is_none());
    assert_eq!(nothing.json["historyId"], start.as_str());
    assert!(nothing.json.get("nextPageToken").is_none());

    let id = s
        .fake
        .insert_raw(SIMPLE.as_bytes(), &["INBOX", "UNREAD"])
        .expect("insert");
    let reply_id = s
        .fake
        .insert_raw(reply_to_simple(1).as_bytes(), &["INBOX"])
        .expect("insert");
    s.fake
        .modify_labels(&id, &["STARRED"], &["UNREAD"])
        .expect("modify");
    s.fake.trash(&reply_id).expect("trash");
    s.fake.delete(&id).expect("delete");

    let all = s.get(&format!("history?startHistoryId={start}")).await;
    let history = records(&all.json);
    let observed: Vec<Vec<&str>> = history.iter().map(kinds).collect();
    assert_eq!(
        observed,
        vec![
            vec!["messagesAdded"],
            vec!["messagesAdded"],
            vec!["labelsAdded", "labelsRemoved"],
            vec!["labelsAdded"],
            vec!["messagesDeleted"],
        ]
    );
    // Ids increase, the last is the mailbox's, and each record names its message.
    let ids: Vec<u64> = history
        .iter()
        .filter_map(|r| r["id"].as_str()?.parse().ok())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(all.json["historyId"], s.fake.history_id().to_string());
    assert_eq!(ids.last().copied(), Some(s.fake.history_id()));
    let added = &history[0]["messagesAdded"][0]["message"];
    assert_eq!(added["id"], id.as_str());
    assert_eq!(added["threadId"], id.as_str());
    assert_eq!(added["labelIds"], json!(["INBOX", "UNREAD"]));
    assert_eq!(history[0]["messages"], json!([{"id": id, "threadId": id}]));
    assert_eq!(
        history[1]["messagesAdded"][0]["message"]["threadId"],
        id.as_str()
    );
    assert_eq!(history[2]["labelsAdded"][0]["labelIds"], json!(["STARRED"]));
    assert_eq!(
        history[2]["labelsRemoved"][0]["labelIds"],
        json!(["UNREAD"])
    );
    assert_eq!(history[3]["labelsAdded"][0]["labelIds"], json!(["TRASH"]));
    assert_eq!(
        history[4]["messagesDeleted"][0]["message"]["id"],
        id.as_str()
    );

    // A message's historyId is the record that last changed it.
    let trashed = s.get(&format!("messages/{reply_id}?format=minimal")).await;
    assert_eq!(trashed.json["historyId"], history[3]["id"]);

    // Resuming from the middle returns only what came after.
    let middle = history[1]["id"].as_str().unwrap_or_default();
    let rest = s.get(&format!("history?startHistoryId={middle}")).await;
    assert_eq!(records(&rest.json).len(), 3);

    // historyTypes and labelId filters.
    let deletions = s
        .get(&format!(
            "history?startHistoryId={start}&historyTypes=messageDeleted"
        ))
        .await;
    assert_eq!(
        records(&deletions.json)
            .iter()
            .map(kinds)
            .collect::<Vec<_>>(),
        vec![vec!["messagesDeleted"]]
    );
    let label_changes = s
        .get(&format!(
            "history?startHistoryId={start}&historyTypes=labelAdded&historyTypes=labelRemoved"
        ))
        .await;
    assert_eq!(records(&label_changes.json).len(), 2);
    let starred = s
        .get(&format!("history?startHistoryId={start}&labelId=STARRED"))
        .await;
    // The modify (adds STARRED) and the deletion (of a starred message).
    assert_eq!(records(&starred.json).len(), 2);
}

#[tokio::test]
async fn history_pages_with_tokens() {
    let s = setup(0).await;
    let start = start_id(&s).await;
    let ids = s.fake.generate(7);
    let mut token: Option<String> = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let mut path = format!("history?startHistoryId={start}&maxResults=3");
        if let Some(token) = &token {
            path.push_str(&format!("&pageToken={token}"));
        }
        let page = s.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        pages += 1;
        for record in records(&page.json) {
            seen.push(
                record["messagesAdded"][0]["message"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        match page.json["nextPageToken"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
    let bad = s
        .get(&format!("history?startHistoryId={start}&pageToken=nope"))
        .await;
    assert_google_error(&bad, 400, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn old_start_ids_answer_404_after_expiry() {
    let s = setup(5).await;
    let start = start_id(&s).await;
    // Mail that predates the history (the generated mailbox) is not in it, and an id
    // before it is already expired.
    let older = start.parse::<u64>().unwrap_or_default() - 1;
    let too_old = s.get(&format!("history?startHistoryId={older}")).await;
    assert_eq!(assert_google_error(&too_old, 404, "NOT_FOUND"), "notFound");

    s.fake.generate(3);
    let fine = s.get(&format!("history?startHistoryId={start}")).await;
    assert_eq!(records(&fine.json).len(), 3);

    // Retention by record count.
    s.fake.set_history_retention(2);
    let expired = s.get(&format!("history?startHistoryId={start}")).await;
    assert_google_error(&expired, 404, "NOT_FOUND");
    let recent = s.fake.history_id();
    let ok = s.get(&format!("history?startHistoryId={recent}")).await;
    assert_eq!(ok.status, StatusCode::OK);

    // Retention by hook.
    s.fake.generate(1);
    s.fake.expire_history_before(s.fake.history_id());
    let expired = s.get(&format!("history?startHistoryId={recent}")).await;
    assert_google_error(&expired, 404, "NOT_FOUND");

    let missing = s.get("history").await;
    assert_google_error(&missing, 400, "INVALID_ARGUMENT");
    let not_a_number = s.get("history?startHistoryId=abc").await;
    assert_google_error(&not_a_number, 400, "INVALID_ARGUMENT");
    let bad_type = s
        .get(&format!(
            "history?startHistoryId={recent}&historyTypes=everything"
        ))
        .await;
    assert_google_error(&bad_type, 400, "INVALID_ARGUMENT");
}
