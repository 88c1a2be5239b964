//! `messages.list`: order, filters, page sizes and exact paging under concurrent
//! changes.

use std::collections::HashSet;

use reqwest::StatusCode;

use super::{SIMPLE, assert_google_error, setup};

#[tokio::test]
async fn listing_is_newest_first_and_complete() {
    let s = setup(250).await;
    let truth = s.fake.snapshot();
    let visible: Vec<String> = s
        .fake
        .ids_newest_first()
        .into_iter()
        .filter(|id| {
            let labels = &truth[id].label_ids;
            !labels.iter().any(|l| l == "SPAM" || l == "TRASH")
        })
        .collect();
    let listed = s.list_all("maxResults=40").await;
    assert_eq!(listed, visible);
    // Newest first by internalDate.
    let dates: Vec<i64> = listed.iter().map(|id| truth[id].internal_date).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));

    let first = s.get("messages").await;
    assert_eq!(first.json["messages"].as_array().map(Vec::len), Some(100));
    assert_eq!(first.json["resultSizeEstimate"], visible.len());
    // Items are {id, threadId} and nothing else.
    let item = first.json["messages"][0]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["id", "threadId"]);

    let everything = s.list_all("includeSpamTrash=true&maxResults=500").await;
    assert_eq!(everything, s.fake.ids_newest_first());
    let single = s.get("messages?maxResults=500").await;
    assert!(single.json.get("nextPageToken").is_none());
}

#[tokio::test]
async fn label_filters_and_parameter_errors() {
    let s = setup(200).await;
    let truth = s.fake.snapshot();
    let with = |labels: &[&str]| -> HashSet<String> {
        truth
            .iter()
            .filter(|(_, t)| labels.iter().all(|l| t.label_ids.iter().any(|x| x == l)))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let inbox_unread: HashSet<String> = s
        .list_all("labelIds=INBOX&labelIds=UNREAD")
        .await
        .into_iter()
        .collect();
    assert_eq!(inbox_unread, with(&["INBOX", "UNREAD"]));
    assert!(!inbox_unread.is_empty());
    // Naming TRASH lists trashed mail even without includeSpamTrash.
    let trash: HashSet<String> = s.list_all("labelIds=TRASH").await.into_iter().collect();
    assert_eq!(trash, with(&["TRASH"]));

    let empty = s.get("messages?labelIds=DRAFT").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.json.get("messages").is_none());
    assert_eq!(empty.json["resultSizeEstimate"], 0);

    let capped = s
        .get("messages?maxResults=1000&includeSpamTrash=true")
        .await;
    assert_eq!(capped.json["messages"].as_array().map(Vec::len), Some(200));

    for bad in [
        "messages?labelIds=NOPE",
        "messages?maxResults=ten",
        "messages?includeSpamTrash=maybe",
        "messages?pageToken=garbage",
    ] {
        let reply = s.get(bad).await;
        assert_google_error(&reply, 400, "INVALID_ARGUMENT");
    }
    // A page token belongs to its query.
    let page = s.get("messages?maxResults=5").await;
    let token = page.json["nextPageToken"].as_str().unwrap_or_default();
    let mismatched = s
        .get(&format!(
            "messages?maxResults=5&labelIds=INBOX&pageToken={token}"
        ))
        .await;
    assert_google_error(&mismatched, 400, "INVALID_ARGUMENT");
    // `q` is accepted and ignored.
    let searched = s.get("messages?q=from:nobody").await;
    assert_eq!(searched.status, StatusCode::OK);
}

#[tokio::test]
async fn paging_is_exact_while_messages_come_and_go() {
    let s = setup(120).await;
    let before = s.list_all("includeSpamTrash=true&maxResults=500").await;
    assert_eq!(before.len(), 120);

    let page = s.get("messages?includeSpamTrash=true&maxResults=30").await;
    let mut seen: Vec<String> = page.json["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect();
    let mut token = page.json["nextPageToken"].as_str().map(str::to_owned);

    // Between pages: new mail arrives (newer than everything), some already-listed and
    // some not-yet-listed messages are deleted.
    s.fake
        .insert_raw(SIMPLE.as_bytes(), &["INBOX"])
        .expect("insert");
    s.fake.generate(5);
    let deleted_seen = before[3].clone();
    let deleted_ahead = [before[45].clone(), before[90].clone(), before[119].clone()];
    s.fake.delete(&deleted_seen).expect("delete");
    for id in &deleted_ahead {
        s.fake.delete(id).expect("delete");
    }

    let mut pages = 1;
    while let Some(next) = token {
        let page = s
            .get(&format!(
                "messages?includeSpamTrash=true&maxResults=30&pageToken={next}"
            ))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        seen.extend(
            page.json["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["id"].as_str().map(str::to_owned)),
        );
        token = page.json["nextPageToken"].as_str().map(str::to_owned);
        pages += 1;
        // Another change in the middle of the walk.
        if pages == 3 {
            s.fake.generate(2);
        }
    }
    // Exactly the original messages, in order, minus those deleted before the walk
    // reached them: nothing skipped, nothing twice, nothing new.
    let expected: Vec<String> = before
        .iter()
        .filter(|id| !deleted_ahead.contains(id))
        .cloned()
        .collect();
    assert_eq!(seen, expected);
}
