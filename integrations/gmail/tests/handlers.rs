//! The task handlers against a Gmail API stub: listing, downloads, history, tokens and
//! error classes, run through the same lifecycle the engine drives.

#![allow(clippy::unwrap_used)] // a test binary: a panic is how a test fails

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use tributary_gmail::GmailTask;
use tributary_sdk::{ErrorClass, IntegrationError, Output, Task};

use support::stub::{Fault, Refresh, Stub};
use support::{
    Known, child_tasks, context, context_with_settings, credentials, downloads, run, task,
};

const CURSOR: &str = "900";

/// A context with a stored access token and history cursor.
fn synced(stub: &Stub, known: std::sync::Arc<Known>) -> tributary_sdk::IntegrationContext {
    context(
        stub,
        credentials(Some("at-0"), "rt"),
        json!({"lastHistoryId": CURSOR}),
        known,
    )
}

fn list(page_token: Option<&str>, consecutive_empty_pages: u32) -> GmailTask {
    GmailTask::GetEmailList {
        page_token: page_token.map(str::to_owned),
        consecutive_empty_pages,
    }
}

fn paths(stub: &Stub) -> Vec<String> {
    stub.state()
        .requests
        .iter()
        .map(|r| r.path.clone())
        .collect()
}

// ---------------------------------------------------------------- start and listing

#[tokio::test]
async fn first_start_records_the_cursor_before_listing_newest_first() {
    let stub = Stub::start().await;
    stub.state().add_messages(1, 3);
    let ctx = context(
        &stub,
        credentials(Some("at-0"), "rt"),
        json!({}),
        Known::new(&[]),
    );

    let result = run(ctx, &Task::start()).await.unwrap();

    assert_eq!(
        result.sync_state.as_ref().unwrap()["lastHistoryId"],
        json!("1000")
    );
    assert_eq!(
        paths(&stub),
        ["/gmail/v1/users/me/profile", "/gmail/v1/users/me/messages"]
    );
    assert_eq!(child_tasks(&result), downloads(&["m3", "m2", "m1"]));
    assert!(result.outputs.is_empty());
    assert!(
        result.credentials.is_none(),
        "no refresh, nothing to persist"
    );
}

#[tokio::test]
async fn later_starts_keep_the_cursor() {
    let stub = Stub::start().await;
    stub.state().add_messages(1, 2);

    let result = run(synced(&stub, Known::new(&["m1"])), &Task::start())
        .await
        .unwrap();

    assert!(result.sync_state.is_none());
    assert_eq!(paths(&stub), ["/gmail/v1/users/me/messages"]);
    assert_eq!(child_tasks(&result), downloads(&["m2"]));
}

#[tokio::test]
async fn a_page_downloads_only_unknown_ids_after_one_lookup() {
    let stub = Stub::start().await;
    stub.state().add_messages(1, 5);
    let known = Known::new(&["m5", "m3"]);
    let ctx = context_with_settings(
        &stub,
        credentials(Some("at-0"), "rt"),
        json!({"lastHistoryId": CURSOR}),
        known.clone(),
        json!({"pageSize": 3}),
    );

    let result = run(ctx, &task(list(None, 0))).await.unwrap();

    assert_eq!(known.lookups(), 1);
    let mut expected = downloads(&["m4"]);
    expected.push(list(Some("offset-3"), 0));
    assert_eq!(child_tasks(&result), expected);
    let request = &stub.state().requests[0];
    assert_eq!(request.param("maxResults"), Some("3"));
    assert_eq!(request.param("pageToken"), None);
}

#[tokio::test]
async fn later_pages_of_a_listing_use_the_backfill_page_size() {
    let stub = Stub::start().await;
    stub.state().add_messages(1, 5);
    for (settings, expected) in [
        (json!({"pageSize": 3}), "500"),
        (json!({"pageSize": 3, "backfillPageSize": 2}), "2"),
    ] {
        let ctx = context_with_settings(
            &stub,
            credentials(Some("at-0"), "rt"),
            json!({"lastHistoryId": CURSOR}),
            Known::new(&[]),
            settings,
        );
        run(ctx, &task(list(Some("offset-3"), 0))).await.unwrap();
        let state = stub.state();
        let request = state.requests.last().unwrap();
        assert_eq!(request.param("maxResults"), Some(expected));
        assert_eq!(request.param("pageToken"), Some("offset-3"));
    }
}

/// Follows list tasks from `start` until none is left; returns the list tasks run.
async fn follow_listing(stub: &Stub, known: std::sync::Arc<Known>) -> Vec<GmailTask> {
    let mut next = Some(Task::start());
    let mut ran = Vec::new();
    while let Some(current) = next.take() {
        ran.push(current.decode::<GmailTask>().unwrap());
        let ctx = context_with_settings(
            stub,
            credentials(Some("at-0"), "rt"),
            json!({"lastHistoryId": CURSOR}),
            known.clone(),
            json!({"pageSize": 2, "backfillPageSize": 2}),
        );
        let result = run(ctx, &current).await.unwrap();
        next = result
            .tasks
            .into_iter()
            .find(|t| t.task_type == "getEmailList");
    }
    ran
}

#[tokio::test]
async fn listing_stops_after_three_pages_with_nothing_new() {
    let stub = Stub::start().await;
    stub.state().add_messages(1, 20);
    let all: Vec<String> = (1..=20).map(|n| format!("m{n}")).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();

    let ran = follow_listing(&stub, Known::new(&all)).await;

    assert_eq!(
        ran,
        [
            GmailTask::Start,
            list(Some("offset-2"), 1),
            list(Some("offset-4"), 2)
        ]
    );
    assert_eq!(stub.state().requests_to("/messages").len(), 3);
}

#[tokio::test]
async fn something_new_resets_the_empty_page_count() {
    let stub = Stub::start().await;
    stub.state().add_messages(1, 8);
    // Newest first: m8 m7 | m6 m5 | m4 m3 | m2 m1; only m5 is unknown.
    let known = Known::new(&["m8", "m7", "m6", "m4", "m3", "m2", "m1"]);

    let ran = follow_listing(&stub, known).await;

    assert_eq!(
        ran,
        [
            GmailTask::Start,
            list(Some("offset-2"), 1),
            list(Some("offset-4"), 0),
            list(Some("offset-6"), 1),
        ]
    );
}

#[tokio::test]
async fn an_empty_mailbox_lists_once() {
    let stub = Stub::start().await;
    let result = run(synced(&stub, Known::new(&[])), &Task::start())
        .await
        .unwrap();
    assert!(result.tasks.is_empty());
    assert_eq!(stub.state().requests.len(), 1);
}

// ---------------------------------------------------------------- downloads

#[tokio::test]
async fn a_download_stores_the_decoded_message() {
    let stub = Stub::start().await;
    stub.state().add_messages(1, 1);

    let result = run(
        synced(&stub, Known::new(&[])),
        &task(GmailTask::download("m1")),
    )
    .await
    .unwrap();

    assert!(result.tasks.is_empty());
    let [output] = result.outputs.as_slice() else {
        panic!("expected one output, got {:?}", result.outputs)
    };
    assert!(matches!(output, Output::Item { .. }), "{output:?}");
    assert_eq!(output.id(), "m1");
    assert_eq!(
        output.timestamp().unwrap().timestamp_millis(),
        1_700_000_000_000
    );
    assert_eq!(output.content()["subject"], "Message m1");
    assert_eq!(output.content()["from"], "Sender <sender@example.com>");
    assert_eq!(output.content()["body"], "Body of m1.");
    assert_eq!(output.content()["threadId"], "thread-m1");
    assert_eq!(output.content()["labelIds"], json!(["INBOX"]));
    let request = &stub.state().requests[0];
    assert_eq!(request.path, "/gmail/v1/users/me/messages/m1");
    assert_eq!(request.param("format"), Some("full"));
}

#[tokio::test]
async fn a_message_too_deep_to_decode_is_stored_with_its_headers() {
    let stub = Stub::start().await;
    stub.state().add_message("deep", &["INBOX"]);
    // 100 nested multiparts: deeper than JSON decoding allows (two levels each).
    let mut part = json!({"partId": "x", "mimeType": "text/plain", "filename": "",
        "headers": [], "body": {"size": 4, "data": "ZGVlcA"}});
    for level in 0..100 {
        part = json!({"partId": level.to_string(), "mimeType": "multipart/mixed",
            "filename": "", "headers": [], "body": {"size": 0}, "parts": [part]});
    }
    let payload = {
        let mut state = stub.state();
        let message = &mut state.messages[0];
        message["payload"]["parts"] = json!([part]);
        message["payload"]["mimeType"] = json!("multipart/mixed");
        message["payload"].clone()
    };
    assert!(tributary_sdk::http::json_depth(payload.to_string().as_bytes()) > 200);
    let result = run(
        synced(&stub, Known::new(&[])),
        &task(GmailTask::download("deep")),
    )
    .await
    .unwrap();
    let content = result.outputs[0].content();
    assert_eq!(content["subject"], "Message deep");
    assert_eq!(content["from"], "Sender <sender@example.com>");
    assert_eq!(
        content["skippedParts"], 102,
        "every part of the full response"
    );
    assert_eq!(content["body"], "");
    let formats: Vec<_> = stub
        .state()
        .requests_to("/messages/deep")
        .iter()
        .map(|r| r.param("format").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(formats, ["full", "metadata"]);
}

#[tokio::test]
async fn a_message_deleted_before_its_download_is_a_deletion() {
    let stub = Stub::start().await;
    let result = run(
        synced(&stub, Known::new(&[])),
        &task(GmailTask::download("gone")),
    )
    .await
    .unwrap();
    assert_eq!(result.outputs, [Output::deleted("gone")]);
}

#[tokio::test]
async fn a_message_in_trash_or_spam_is_a_deletion() {
    let stub = Stub::start().await;
    stub.state().add_message("t1", &["TRASH"]);
    stub.state().add_message("s1", &["SPAM", "UNREAD"]);
    for id in ["t1", "s1"] {
        let result = run(
            synced(&stub, Known::new(&[])),
            &task(GmailTask::download(id)),
        )
        .await
        .unwrap();
        assert_eq!(result.outputs, [Output::deleted(id)]);
    }
}

#[tokio::test]
async fn odd_message_ids_are_escaped_in_the_path() {
    let stub = Stub::start().await;
    let result = run(
        synced(&stub, Known::new(&[])),
        &task(GmailTask::download("a/b?c")),
    )
    .await
    .unwrap();
    assert_eq!(result.outputs, [Output::deleted("a/b?c")]);
    assert_eq!(
        stub.state().requests[0].path,
        "/gmail/v1/users/me/messages/a%2Fb%3Fc"
    );
}

// ---------------------------------------------------------------- history

fn history_entry(id: u64, kind: &str, message_id: &str) -> Value {
    let mut change = json!({"message": {"id": message_id, "threadId": "t"}});
    if kind.starts_with("labels") {
        change["labelIds"] = json!(["STARRED"]);
    }
    json!({"id": id.to_string(), "messages": [{"id": message_id}], kind: [change]})
}

#[tokio::test]
async fn history_becomes_downloads_deletions_and_refreshes() {
    let stub = Stub::start().await;
    {
        let mut state = stub.state();
        state.history_id = 1006;
        state.history_page_size = 2;
        state.history = Some(vec![
            history_entry(1001, "messagesAdded", "new"),
            history_entry(1002, "messagesAdded", "already-fetched"),
            history_entry(1003, "messagesDeleted", "deleted"),
            history_entry(1004, "labelsAdded", "starred"),
            history_entry(1005, "labelsRemoved", "read"),
            history_entry(1006, "messagesAdded", "added-then-deleted"),
            history_entry(1006, "messagesDeleted", "added-then-deleted"),
        ]);
    }
    let known = Known::new(&["already-fetched", "deleted", "starred", "read"]);

    let result = run(synced(&stub, known), &task(GmailTask::CheckHistory))
        .await
        .unwrap();

    assert_eq!(
        result.outputs,
        [
            Output::deleted("added-then-deleted"),
            Output::deleted("deleted")
        ]
    );
    assert_eq!(child_tasks(&result), downloads(&["read", "starred", "new"]));
    assert_eq!(
        result.sync_state.as_ref().unwrap()["lastHistoryId"],
        json!("1006")
    );

    let requests = stub.state().requests_to("/history");
    assert_eq!(requests.len(), 4, "seven records in pages of two");
    assert!(
        requests
            .iter()
            .all(|r| r.param("startHistoryId") == Some(CURSOR))
    );
    assert_eq!(requests[0].param("pageToken"), None);
    assert_eq!(requests[1].param("pageToken"), Some("history-2"));
    let types: Vec<&str> = requests[0]
        .query
        .iter()
        .filter(|(k, _)| k == "historyTypes")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "messageAdded",
            "messageDeleted",
            "labelAdded",
            "labelRemoved"
        ]
    );
}

#[tokio::test]
async fn quiet_history_only_advances_the_cursor() {
    let stub = Stub::start().await;
    stub.state().history = Some(Vec::new());
    stub.state().history_id = 950;
    let result = run(
        synced(&stub, Known::new(&[])),
        &task(GmailTask::CheckHistory),
    )
    .await
    .unwrap();
    assert!(result.outputs.is_empty() && result.tasks.is_empty());
    assert_eq!(
        result.sync_state.as_ref().unwrap()["lastHistoryId"],
        json!("950")
    );
}

#[tokio::test]
async fn an_expired_cursor_falls_back_to_a_full_comparison() {
    let stub = Stub::start().await;
    {
        let mut state = stub.state();
        state.add_messages(1, 3);
        state.add_message("trashed", &["TRASH"]);
        state.history = None;
        state.history_id = 2000;
    }
    let known = Known::new(&["m1", "m2", "vanished", "trashed"]);

    let result = run(synced(&stub, known), &task(GmailTask::CheckHistory))
        .await
        .unwrap();

    assert_eq!(
        result.outputs,
        [Output::deleted("trashed"), Output::deleted("vanished")]
    );
    assert_eq!(child_tasks(&result), downloads(&["m3"]));
    assert_eq!(
        result.sync_state.as_ref().unwrap()["lastHistoryId"],
        json!("2000")
    );
    assert_eq!(
        paths(&stub),
        [
            "/gmail/v1/users/me/history",
            "/gmail/v1/users/me/profile",
            "/gmail/v1/users/me/messages"
        ]
    );
    let listing = &stub.state().requests_to("/messages")[0];
    assert_eq!(listing.param("maxResults"), Some("500"));
    assert_eq!(listing.param("includeSpamTrash"), Some("false"));
}

#[tokio::test]
async fn the_full_comparison_pages_through_the_whole_mailbox() {
    let stub = Stub::start().await;
    stub.state().add_messages(1, 1203);
    let known = Known::new(&["m1", "m1203"]);

    let result = run(synced(&stub, known.clone()), &task(GmailTask::CheckHistory))
        .await
        .unwrap();

    assert!(result.outputs.is_empty());
    assert_eq!(result.tasks.len(), 1201);
    assert_eq!(stub.state().requests_to("/messages").len(), 3);
    assert_eq!(known.lookups(), 3, "one lookup per page");
}

#[tokio::test]
async fn history_without_a_cursor_waits_for_the_first_start() {
    let stub = Stub::start().await;
    let ctx = context(
        &stub,
        credentials(Some("at-0"), "rt"),
        json!({}),
        Known::new(&[]),
    );
    let result = run(ctx, &task(GmailTask::CheckHistory)).await.unwrap();
    assert!(result.outputs.is_empty() && result.tasks.is_empty() && result.sync_state.is_none());
    assert!(stub.state().requests.is_empty());
}

// ---------------------------------------------------------------- tokens

#[tokio::test]
async fn a_missing_access_token_is_refreshed_and_persisted() {
    let stub = Stub::start().await;
    stub.state().add_messages(1, 1);
    let ctx = context(&stub, credentials(None, "rt"), json!({}), Known::new(&[]));

    let result = run(ctx, &task(GmailTask::download("m1"))).await.unwrap();

    assert_eq!(result.outputs.len(), 1);
    let saved = result
        .credentials
        .expect("refreshed credentials to persist");
    assert_eq!(saved.get("accessToken"), Some("at-1"));
    assert_eq!(saved.get("refreshToken"), Some("rt"));
    assert_eq!(saved.get("clientId"), Some("client-id"));
    assert_eq!(stub.state().token_requests, 1);
}

#[tokio::test]
async fn a_refused_access_token_is_refreshed_once_and_the_call_retried() {
    let stub = Stub::start().await;
    stub.state().add_messages(1, 1);
    let ctx = context(
        &stub,
        credentials(Some("expired"), "rt"),
        json!({}),
        Known::new(&[]),
    );

    let result = run(ctx, &task(GmailTask::download("m1"))).await.unwrap();

    assert_eq!(result.outputs[0].content()["subject"], "Message m1");
    assert_eq!(stub.state().requests.len(), 2);
    assert_eq!(stub.state().token_requests, 1);
    assert_eq!(result.credentials.unwrap().get("accessToken"), Some("at-1"));
}

#[tokio::test]
async fn a_token_refreshed_before_a_failure_is_still_offered_for_persisting() {
    let stub = Stub::start().await;
    stub.state().add_messages(1, 1);
    stub.state()
        .faults
        .push_back(Fault::google(503, "UNAVAILABLE", "backendError", None));
    let ctx = context(&stub, credentials(None, "rt"), json!({}), Known::new(&[]));
    let registration = tributary_gmail::registration().unwrap();
    let mut integration = (registration.construct)(ctx).unwrap();
    integration.initialize().await.unwrap();

    let error = integration
        .run_task(&task(GmailTask::download("m1")))
        .await
        .unwrap_err();

    assert_eq!(error.class(), ErrorClass::Transient, "{error}");
    assert_eq!(stub.state().token_requests, 1);
    let saved = integration
        .credentials_after_failure()
        .expect("refreshed credentials to persist");
    assert_eq!(saved.get("accessToken"), Some("at-1"));
    integration.shutdown().await;
}

#[tokio::test]
async fn a_rotated_refresh_token_is_persisted() {
    let stub = Stub::start().await;
    stub.state()
        .refresh_tokens
        .insert("rt-old".into(), Refresh::Rotate("rt-new".into()));
    let ctx = context(
        &stub,
        credentials(None, "rt-old"),
        json!({}),
        Known::new(&[]),
    );

    let result = run(ctx, &task(GmailTask::download("m1"))).await.unwrap();

    let saved = result.credentials.unwrap();
    assert_eq!(saved.get("refreshToken"), Some("rt-new"));
    assert_eq!(saved.get("accessToken"), Some("at-1"));
}

#[tokio::test]
async fn a_revoked_refresh_token_needs_reauthorization() {
    let stub = Stub::start().await;
    let ctx = context(
        &stub,
        credentials(Some("expired"), "revoked"),
        json!({}),
        Known::new(&[]),
    );

    let error = run(ctx, &Task::start()).await.unwrap_err();

    assert_eq!(error.class(), ErrorClass::Auth, "{error}");
    assert!(error.message().contains("invalid_grant"), "{error}");
    assert!(
        !error.message().contains("revoked\""),
        "no token in errors: {error}"
    );
    assert_eq!(stub.state().token_requests, 1, "no retry loop");
}

#[tokio::test]
async fn a_token_refused_right_after_refresh_is_an_auth_error() {
    let stub = Stub::start().await;
    stub.state().faults.extend([
        Fault::google(401, "UNAUTHENTICATED", "authError", None),
        Fault::google(401, "UNAUTHENTICATED", "authError", None),
    ]);

    let error = run(synced(&stub, Known::new(&[])), &Task::start())
        .await
        .unwrap_err();

    assert_eq!(error.class(), ErrorClass::Auth, "{error}");
    assert_eq!(stub.state().token_requests, 1);
    assert_eq!(stub.state().requests.len(), 2);
}

#[tokio::test]
async fn validation_lists_labels() {
    let stub = Stub::start().await;
    let registration = tributary_gmail::registration().unwrap();

    let mut good = (registration.construct)(synced(&stub, Known::new(&[]))).unwrap();
    good.initialize().await.unwrap();
    good.validate_authentication().await.unwrap();
    assert_eq!(paths(&stub), ["/gmail/v1/users/me/labels"]);

    let ctx = context(
        &stub,
        credentials(Some("expired"), "revoked"),
        json!({}),
        Known::new(&[]),
    );
    let mut bad = (registration.construct)(ctx).unwrap();
    bad.initialize().await.unwrap();
    let error = bad.validate_authentication().await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Auth);
}

// ---------------------------------------------------------------- error classes

async fn fail_with(fault: Fault) -> IntegrationError {
    let stub = Stub::start().await;
    stub.state().faults.push_back(fault);
    run(synced(&stub, Known::new(&[])), &Task::start())
        .await
        .unwrap_err()
}

fn retry_after(error: &IntegrationError) -> Option<Duration> {
    match error {
        IntegrationError::RateLimited { retry_after, .. } => *retry_after,
        other => panic!("expected a rate limit, got {other:?}"),
    }
}

#[tokio::test]
async fn quota_403s_are_rate_limits_with_the_servers_wait() {
    let error = fail_with(Fault::google(
        403,
        "PERMISSION_DENIED",
        "rateLimitExceeded",
        Some("17"),
    ))
    .await;
    assert_eq!(retry_after(&error), Some(Duration::from_secs(17)));
    assert!(error.message().contains("rateLimitExceeded"), "{error}");

    let error = fail_with(Fault::google(
        403,
        "PERMISSION_DENIED",
        "userRateLimitExceeded",
        None,
    ))
    .await;
    assert_eq!(retry_after(&error), None);
}

#[tokio::test]
async fn a_429_is_a_rate_limit() {
    let error = fail_with(Fault::google(
        429,
        "RESOURCE_EXHAUSTED",
        "rateLimitExceeded",
        Some("3"),
    ))
    .await;
    assert_eq!(retry_after(&error), Some(Duration::from_secs(3)));
    let error = fail_with(Fault::raw(429, "Too Many Requests")).await;
    assert_eq!(error.class(), ErrorClass::RateLimited);
}

#[tokio::test]
async fn server_errors_are_transient() {
    let error = fail_with(Fault::google(503, "UNAVAILABLE", "backendError", None)).await;
    assert_eq!(error.class(), ErrorClass::Transient, "{error}");
    let error = fail_with(Fault::raw(502, "<html>Bad Gateway</html>")).await;
    assert_eq!(error.class(), ErrorClass::Transient, "{error}");
}

#[tokio::test]
async fn other_403s_need_reauthorization_and_400s_are_permanent() {
    let error = fail_with(Fault::google(
        403,
        "PERMISSION_DENIED",
        "insufficientPermissions",
        None,
    ))
    .await;
    assert_eq!(error.class(), ErrorClass::Auth, "{error}");
    let error = fail_with(Fault::google(
        400,
        "INVALID_ARGUMENT",
        "invalidArgument",
        None,
    ))
    .await;
    assert_eq!(error.class(), ErrorClass::Permanent, "{error}");
}

#[tokio::test]
async fn malformed_responses_are_clear_errors() {
    for body in [
        "{\"messages\": [{\"id\": 1",
        "{\"messages\": \"none\"}",
        "[]",
    ] {
        let error = fail_with(Fault::raw(200, body)).await;
        assert_eq!(error.class(), ErrorClass::Transient, "{error}");
        assert!(error.message().contains("malformed JSON"), "{error}");
        assert!(error.message().contains("users.messages.list"), "{error}");
    }
}

#[tokio::test]
async fn unknown_tasks_and_bad_payloads_are_permanent() {
    let stub = Stub::start().await;
    for bad in [
        Task::new("sendEmail", json!({})),
        Task::new("downloadEmail", json!({"emailId": 42})),
        Task::new("getEmailList", json!({"consecutiveEmptyPages": "three"})),
    ] {
        let error = run(synced(&stub, Known::new(&[])), &bad).await.unwrap_err();
        assert_eq!(error.class(), ErrorClass::Permanent, "{error}");
    }
    assert!(stub.state().requests.is_empty());
}

#[tokio::test]
async fn bad_settings_and_credentials_are_permanent() {
    let stub = Stub::start().await;
    let registration = tributary_gmail::registration().unwrap();
    let cases = [
        (
            credentials(Some("at-0"), "rt"),
            json!({"baseUrl": "ftp://example.com/"}),
        ),
        (
            credentials(Some("at-0"), "rt"),
            json!({"tokenUrl": "not a url"}),
        ),
        (credentials(Some("at-0"), "rt"), json!({"pageSize": 0})),
        (json!({"clientId": "c", "refreshToken": "rt"}), json!({})),
    ];
    for (credentials, settings) in cases {
        let ctx = context_with_settings(&stub, credentials, json!({}), Known::new(&[]), settings);
        let error = (registration.construct)(ctx)
            .err()
            .expect("construction fails");
        assert_eq!(error.class(), ErrorClass::Permanent, "{error}");
    }
}
