//! The synthetic source over real loopback HTTP: wire format, pagination, change log,
//! authentication, fault injection and counters.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use tributary_sdk::http::{HttpClient, HttpResponse};
use tributary_testkit::synthetic::{Fault, SourceConfig, SourceServer};

const TOKEN: &str = "tok-3f9a";

async fn start(items: usize) -> SourceServer {
    SourceServer::start(SourceConfig::new(items, 11, TOKEN))
        .await
        .expect("server starts")
}

fn client() -> HttpClient {
    HttpClient::new().expect("client")
}

/// GET `path_and_query` with the given bearer token (none: no header).
async fn get_as(server: &SourceServer, path_and_query: &str, token: Option<&str>) -> HttpResponse {
    let http = client();
    let mut request = http.get(format!("{}{path_and_query}", server.base_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    http.send(request)
        .await
        .expect("request reaches the server")
}

async fn get(server: &SourceServer, path_and_query: &str) -> HttpResponse {
    get_as(server, path_and_query, Some(TOKEN)).await
}

fn json(response: &HttpResponse) -> Value {
    response.json::<Value>().expect("JSON body")
}

fn ids_of(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items array")
        .iter()
        .map(|entry| entry["id"].as_str().expect("id").to_owned())
        .collect()
}

fn next_token(page: &Value) -> Option<String> {
    page.get("nextPageToken")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn assert_error(response: &HttpResponse, status: u16) -> Value {
    assert_eq!(response.status.as_u16(), status, "{}", response.text());
    let body = json(response);
    assert_eq!(body["error"]["code"], status, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn lists_newest_first_with_default_page_size() {
    let server = start(120).await;
    let first = json(&get(&server, "/items").await);
    let ids = ids_of(&first);
    assert_eq!(ids.len(), 50);
    assert_eq!(ids[0], "item-0000120");
    assert_eq!(ids[49], "item-0000071");
    assert_eq!(first["items"][0]["version"], 1);

    let mut all = ids;
    let mut token = next_token(&first);
    let mut pages = 1;
    while let Some(t) = token {
        let page = json(&get(&server, &format!("/items?pageToken={t}")).await);
        all.extend(ids_of(&page));
        token = next_token(&page);
        pages += 1;
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (1..=120).rev().map(|n| format!("item-{n:07}")).collect();
    assert_eq!(all, expected);
    assert_eq!(server.counts().list_calls, 3);
}

#[tokio::test]
async fn page_size_is_clamped_and_bad_input_is_a_json_400() {
    let server = start(600).await;
    let page = json(&get(&server, "/items?pageSize=1000").await);
    assert_eq!(ids_of(&page).len(), 500);
    let page = json(&get(&server, "/items?pageSize=7").await);
    assert_eq!(ids_of(&page).len(), 7);

    assert_error(&get(&server, "/items?pageSize=0").await, 400);
    assert_error(&get(&server, "/items?pageSize=lots").await, 400);
    let body = assert_error(&get(&server, "/items?pageToken=garbage").await, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("pageToken")),
        "{body}"
    );
    assert_error(&get(&server, "/nowhere").await, 404);
}

#[tokio::test]
async fn pagination_stays_exact_while_items_are_added_and_deleted() {
    let server = start(200).await;
    let initial = server.ids();
    let mut seen: Vec<String> = Vec::new();
    let mut deleted_unseen: HashSet<String> = HashSet::new();
    let mut token: Option<String> = None;
    let mut round = 0;
    loop {
        let path = match &token {
            Some(t) => format!("/items?pageSize=30&pageToken={t}"),
            None => "/items?pageSize=30".to_owned(),
        };
        let page = json(&get(&server, &path).await);
        seen.extend(ids_of(&page));
        token = next_token(&page);
        let Some(_) = token else { break };

        // Mutate between pages: newer items, a deleted item already seen, a deleted
        // item not yet seen, an edit of an item not yet seen.
        server.add_items(4);
        let seen_victim = seen[seen.len() / 2].clone();
        if server.item(&seen_victim).is_some() {
            assert!(server.delete(&seen_victim));
        }
        let unseen: Vec<String> = initial
            .iter()
            .filter(|id| !seen.contains(id) && !deleted_unseen.contains(*id))
            .cloned()
            .collect();
        if let Some(victim) = unseen.get(round * 3 % unseen.len().max(1)) {
            assert!(server.delete(victim));
            deleted_unseen.insert(victim.clone());
        }
        if let Some(edited) = unseen.last() {
            server.edit(edited);
        }
        round += 1;
    }
    let expected: Vec<String> = initial
        .iter()
        .filter(|id| !deleted_unseen.contains(*id))
        .cloned()
        .collect();
    assert!(round >= 5, "the walk took {round} pages");
    assert!(!deleted_unseen.is_empty());
    assert_eq!(seen, expected, "every item exactly once, in order");
}

#[tokio::test]
async fn fetches_full_items_and_answers_404_for_unknown_or_deleted() {
    let server = start(5).await;
    let response = get(&server, "/items/item-0000003").await;
    assert_eq!(response.status.as_u16(), 200);
    let item = json(&response);
    assert_eq!(item["id"], "item-0000003");
    assert_eq!(item["seq"], 3);
    assert_eq!(item["version"], 1);
    assert!(item["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(item["body"].as_str().is_some_and(|b| !b.is_empty()));
    let created = item["createdAt"].as_str().expect("createdAt");
    assert!(
        tributary_sdk::chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );

    assert!(server.edit("item-0000003"));
    let edited = json(&get(&server, "/items/item-0000003").await);
    assert_eq!(edited["version"], 2);
    assert_ne!(edited["body"], item["body"]);

    assert_error(&get(&server, "/items/item-9999999").await, 404);
    assert!(server.delete("item-0000003"));
    assert!(!server.delete("item-0000003"));
    assert!(!server.edit("item-0000003"));
    assert_error(&get(&server, "/items/item-0000003").await, 404);

    assert!(server.add_item_with_id("odd id/with slash"));
    let odd = json(&get(&server, "/items/odd%20id%2Fwith%20slash").await);
    assert_eq!(odd["id"], "odd id/with slash");
    assert_eq!(server.fetches_of("odd id/with slash"), 1);
}

#[tokio::test]
async fn requests_without_the_right_token_get_401() {
    let server = start(3).await;
    for token in [None, Some("wrong"), Some("")] {
        let response = get_as(&server, "/items", token).await;
        let body = assert_error(&response, 401);
        assert!(response.headers.contains_key("www-authenticate"));
        assert!(!body.to_string().contains(TOKEN));
    }
    assert_eq!(server.counts().rejected_auth, 3);

    assert_eq!(get(&server, "/cursor").await.status.as_u16(), 200);
    server.revoke_token();
    assert_error(&get(&server, "/cursor").await, 401);
    assert!(server.credentials().get("token").is_some_and(str::is_empty));
    server.set_token("fresh");
    assert_error(&get(&server, "/cursor").await, 401);
    let response = get_as(&server, "/cursor", Some("fresh")).await;
    assert_eq!(response.status.as_u16(), 200);
    assert_eq!(server.credentials().get("token"), Some("fresh"));
}

#[tokio::test]
async fn change_log_reports_adds_edits_and_deletes_in_order() {
    let server = start(10).await;
    let cursor = json(&get(&server, "/cursor").await)["cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    assert_eq!(cursor, server.cursor());
    let empty = json(&get(&server, &format!("/changes?cursor={cursor}")).await);
    assert_eq!(empty["changes"], serde_json::json!([]));
    assert_eq!(empty["cursor"], cursor.as_str());
    assert_eq!(empty["hasMore"], false);

    let added = server.add_items(1);
    assert!(server.edit("item-0000002"));
    assert!(server.delete("item-0000004"));
    let page = json(&get(&server, &format!("/changes?cursor={cursor}")).await);
    assert_eq!(
        page["changes"],
        serde_json::json!([
            {"kind": "added", "id": added[0]},
            {"kind": "edited", "id": "item-0000002"},
            {"kind": "deleted", "id": "item-0000004"},
        ])
    );
    let next = page["cursor"].as_str().expect("cursor").to_owned();
    assert_ne!(next, cursor);
    assert_eq!(next, server.cursor());
    let after = json(&get(&server, &format!("/changes?cursor={next}")).await);
    assert_eq!(after["changes"], serde_json::json!([]));
    assert_eq!(server.counts().change_calls, 3);
    assert_eq!(server.counts().cursor_calls, 1);
}

#[tokio::test]
async fn change_log_pages_with_has_more() {
    let config = SourceConfig {
        max_changes_per_response: 2,
        ..SourceConfig::new(3, 1, TOKEN)
    };
    let server = SourceServer::start(config).await.expect("server");
    let mut cursor = server.cursor();
    server.add_items(5);
    let mut ids = Vec::new();
    let mut calls = 0;
    loop {
        let page = json(&get(&server, &format!("/changes?cursor={cursor}")).await);
        calls += 1;
        for change in page["changes"].as_array().expect("changes") {
            ids.push(change["id"].as_str().expect("id").to_owned());
        }
        cursor = page["cursor"].as_str().expect("cursor").to_owned();
        if page["hasMore"] != true {
            break;
        }
    }
    assert_eq!(calls, 3);
    assert_eq!(ids.len(), 5);
    assert_eq!(cursor, server.cursor());
}

#[tokio::test]
async fn old_cursors_expire_with_410_and_bad_ones_get_400() {
    let config = SourceConfig {
        change_retention: 3,
        ..SourceConfig::new(10, 1, TOKEN)
    };
    let server = SourceServer::start(config).await.expect("server");
    let oldest = server.cursor();
    server.add_items(2);
    let middle = server.cursor();
    server.add_items(2);
    // Four changes, three kept: the first cursor lost one change, the second none.
    let body = assert_error(
        &get(&server, &format!("/changes?cursor={oldest}")).await,
        410,
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired"))
    );
    let page = json(&get(&server, &format!("/changes?cursor={middle}")).await);
    assert_eq!(page["changes"].as_array().map(Vec::len), Some(2));

    let current = server.cursor();
    server.expire_cursors();
    assert_error(
        &get(&server, &format!("/changes?cursor={middle}")).await,
        410,
    );
    let page = json(&get(&server, &format!("/changes?cursor={current}")).await);
    assert_eq!(page["changes"], serde_json::json!([]));

    assert_error(&get(&server, "/changes").await, 400);
    assert_error(&get(&server, "/changes?cursor=nonsense").await, 400);
    assert_error(&get(&server, "/changes?cursor=c1.ffff").await, 400);
}

#[tokio::test]
async fn fail_next_then_recovers() {
    let server = start(3).await;
    server.fail_next(2, Fault::unavailable());
    assert_error(&get(&server, "/items").await, 503);
    assert_error(&get(&server, "/cursor").await, 503);
    assert_eq!(get(&server, "/items").await.status.as_u16(), 200);
    assert_eq!(server.counts().injected_faults, 2);
}

#[tokio::test]
async fn fail_next_on_a_path_prefix_only_hits_that_path() {
    let server = start(3).await;
    server.fail_next_on("/changes", 1, Fault::internal_error());
    assert_eq!(get(&server, "/items").await.status.as_u16(), 200);
    assert_eq!(get(&server, "/cursor").await.status.as_u16(), 200);
    let cursor = server.cursor();
    assert_error(
        &get(&server, &format!("/changes?cursor={cursor}")).await,
        500,
    );
    assert_eq!(
        get(&server, &format!("/changes?cursor={cursor}"))
            .await
            .status
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn rate_limit_fault_carries_retry_after() {
    let server = start(3).await;
    server.fail_next(1, Fault::rate_limited(7));
    let response = get(&server, "/items").await;
    assert_error(&response, 429);
    assert_eq!(response.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn unauthorized_fault_answers_401_even_with_the_right_token() {
    let server = start(3).await;
    server.fail_next(1, Fault::unauthorized());
    let response = get(&server, "/cursor").await;
    assert_error(&response, 401);
    assert!(response.headers.contains_key("www-authenticate"));
    assert_eq!(get(&server, "/cursor").await.status.as_u16(), 200);
}

#[tokio::test]
async fn truncated_fault_cuts_the_body() {
    let server = start(3).await;
    server.fail_next(1, Fault::truncated());
    let response = get(&server, "/items/item-0000001").await;
    assert_eq!(response.status.as_u16(), 200);
    assert!(response.json::<Value>().is_err(), "{}", response.text());
    assert!(!response.body.is_empty());
}

#[tokio::test]
async fn random_failures_are_reproducible_with_a_seed() {
    async fn pattern(seed: u64) -> Vec<u16> {
        let server = start(3).await;
        server.set_failure_rate(0.5, seed, Fault::unavailable());
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(get(&server, "/cursor").await.status.as_u16());
        }
        statuses
    }
    let a = pattern(5).await;
    let b = pattern(5).await;
    let c = pattern(6).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.contains(&200) && a.contains(&503), "{a:?}");
    assert!(a.iter().all(|s| *s == 200 || *s == 503));
}

#[tokio::test]
async fn an_always_failing_item_fails_until_cleared() {
    let server = start(3).await;
    server.fail_item_always("item-0000002");
    for _ in 0..3 {
        assert_error(&get(&server, "/items/item-0000002").await, 500);
    }
    assert_eq!(
        get(&server, "/items/item-0000001").await.status.as_u16(),
        200
    );
    assert_eq!(server.fetches_of("item-0000002"), 3);
    server.clear_faults();
    assert_eq!(
        get(&server, "/items/item-0000002").await.status.as_u16(),
        200
    );
}

#[tokio::test]
async fn counts_requests_and_detects_concurrent_fetches_of_one_item() {
    let server = start(5).await;
    get(&server, "/items/item-0000001").await;
    get(&server, "/items/item-0000001").await;
    assert_eq!(server.max_concurrent_fetches(), 1);

    // With a delay on every answer, two simultaneous fetches overlap at the server.
    server.set_latency(Some(Duration::from_millis(400)));
    let (a, b) = tokio::join!(
        get(&server, "/items/item-0000002"),
        get(&server, "/items/item-0000002")
    );
    assert_eq!(a.status.as_u16(), 200);
    assert_eq!(b.status.as_u16(), 200);
    assert_eq!(server.max_concurrent_fetches_of("item-0000002"), 2);
    assert_eq!(server.max_concurrent_fetches_of("item-0000001"), 1);
    assert_eq!(server.max_concurrent_fetches(), 2);
    server.set_latency(None);

    get(&server, "/items").await;
    get(&server, "/cursor").await;
    let counts = server.counts();
    assert_eq!(counts.item_fetches, 4);
    assert_eq!(counts.list_calls, 1);
    assert_eq!(counts.cursor_calls, 1);
    assert_eq!(counts.total, 6);
    assert_eq!(server.fetches_of("item-0000002"), 2);
    assert_eq!(server.fetch_counts().len(), 2);

    server.reset_counters();
    assert_eq!(server.counts(), Default::default());
    assert_eq!(server.max_concurrent_fetches(), 0);
    assert_eq!(server.fetches_of("item-0000002"), 0);
}

#[tokio::test]
async fn serve_runs_on_a_given_listener_until_shutdown() {
    use tributary_testkit::synthetic::{Source, serve};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let source = Source::new(&SourceConfig::new(2, 1, TOKEN));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, source.clone(), async move {
        let _ = rx.await;
    }));
    let http = client();
    let response = http
        .send(http.get(format!("http://{addr}/items")).bearer_auth(TOKEN))
        .await
        .expect("response");
    assert_eq!(ids_of(&json(&response)).len(), 2);
    assert_eq!(source.counts().list_calls, 1);
    drop(http);
    tx.send(()).expect("server still running");
    task.await.expect("joined").expect("served cleanly");
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let server = start(2).await;
    let base = server.base_url();
    server.shutdown().await.expect("clean shutdown");
    let http = client();
    let err = http
        .send(http.get(format!("{base}/items")).bearer_auth(TOKEN))
        .await
        .expect_err("nothing listens any more");
    assert_eq!(err.class(), tributary_sdk::ErrorClass::Transient);
}
