//! Every error mapping, against the Graph fake's real answers and injected faults.

use std::time::Duration;

use axum::http::StatusCode;
use tributary_msgraph::{GraphError, Prefer, ResyncKind};
use tributary_msgraph_fake::{Fault, GraphError as FakeError, ThrottleConfig};
use tributary_sdk::serde_json::Value;
use tributary_sdk::{ErrorClass, IntegrationError};

use crate::support::{class_of, grant_account, mail_account, outlook};

fn retry_after<T: std::fmt::Debug>(result: Result<T, GraphError>) -> Option<Duration> {
    match result {
        Err(GraphError::Failed(IntegrationError::RateLimited { retry_after, .. })) => retry_after,
        other => panic!("expected rate limited, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_token_is_refreshed_and_the_request_retried_once() {
    let fake = outlook(1).await;
    let graph = fake.handle().graph();
    let grant = fake.handle().mail_grant();
    // The stored access token is not one the tenant knows (expired, or from before).
    let mut linked = grant_account(&fake, &grant, Some("EwBstale.token"), false);
    let me: Value = linked.client.get_json("me", &[]).await.unwrap();
    assert_eq!(me["mail"], "tester@example.com");
    let counters = graph.counters();
    assert_eq!(counters.unauthorized, 1, "{counters:?}");
    assert_eq!(counters.refreshes, 1, "{counters:?}");
    assert_eq!(counters.calls("me.get"), 2, "{counters:?}");
}

#[tokio::test]
async fn a_token_refused_again_after_the_refresh_is_an_auth_error() {
    let fake = outlook(1).await;
    let graph = fake.handle().graph();
    let (mut linked, _grant) = mail_account(&fake);
    let refused = Fault::Error(FakeError::invalid_authentication_token(
        "Access token validation failure.",
    ));
    graph.fail_next("/me", 2, refused);
    let result = linked.client.get_json::<Value>("me", &[]).await;
    assert_eq!(class_of(result), ErrorClass::Auth);
    // One refresh, two requests: the retry happened once and only once.
    assert_eq!(graph.refreshes(), 1);
    assert_eq!(graph.counters().calls("me.get"), 2);
    assert_eq!(graph.pending_faults(), 0);
}

#[tokio::test]
async fn access_denied_is_permanent_for_the_resource_not_an_auth_error() {
    let fake = outlook(1).await;
    // A grant without any mail scope: the fake answers 403 ErrorAccessDenied.
    let grant = fake
        .handle()
        .graph()
        .mint_grant(&["offline_access", "User.Read"]);
    let mut linked = grant_account(&fake, &grant, Some(&grant.access_token), false);
    let denied = linked.client.get_json::<Value>("me/mailFolders", &[]).await;
    assert_eq!(class_of(denied), ErrorClass::Permanent);
    // The account still works for what it may read.
    assert!(linked.client.get_json::<Value>("me", &[]).await.is_ok());
    // OneDrive's spelling too.
    let (mut linked, _) = mail_account(&fake);
    fake.handle().graph().fail_next(
        "/me",
        1,
        Fault::Error(FakeError::new(StatusCode::FORBIDDEN, "accessDenied", "no")),
    );
    assert_eq!(
        class_of(linked.client.get_json::<Value>("me", &[]).await),
        ErrorClass::Permanent
    );
}

#[tokio::test]
async fn a_missing_item_is_not_found_and_other_404s_are_not() {
    let fake = outlook(1).await;
    let (mut linked, _) = mail_account(&fake);
    // A well-formed id of a message deleted for good (a malformed one is a 400).
    let gone = fake.handle().messages().into_values().next().unwrap();
    fake.handle().purge_message(&gone.immutable_id).unwrap();
    let url = linked.client.url(&["me", "messages", &gone.id], &[]);
    match linked.client.get_json::<Value>(url.as_str(), &[]).await {
        Err(GraphError::NotFound(body)) => {
            assert_eq!(body.code.as_deref(), Some("ErrorItemNotFound"));
            assert!(body.request_id.is_some(), "{body:?}");
        }
        other => panic!("expected not found, got {other:?}"),
    }
    // A token of another user of the tenant: 404 MailboxNotEnabledForRESTAPI is about
    // the account, not the item, and must never read as a deletion.
    let other = fake.handle().graph().add_user("Other", "other@example.com");
    let grant = fake
        .handle()
        .graph()
        .mint_grant_for(&other.id, tributary_outlook_fake::MAIL_SCOPES)
        .unwrap();
    let mut linked = grant_account(&fake, &grant, Some(&grant.access_token), false);
    let result = linked.client.get_json::<Value>("me/mailFolders", &[]).await;
    assert_eq!(class_of(result), ErrorClass::Permanent);
}

#[tokio::test]
async fn an_expired_delta_link_asks_for_a_resync_with_a_fresh_location() {
    let fake = outlook(3).await;
    let (mut linked, _) = mail_account(&fake);
    let initial = linked
        .client
        .url(
            &["me", "mailFolders", "inbox", "messages", "delta"],
            &[("$select", "subject")],
        )
        .to_string();
    let page = linked
        .client
        .delta_page::<Value>(&initial, Prefer::page_size(50))
        .await
        .unwrap();
    let delta_link = page.delta_link().unwrap().to_owned();
    assert!(fake.handle().forget_delta_tokens("inbox"));
    let resync = match linked
        .client
        .delta_page::<Value>(&delta_link, Prefer::default())
        .await
    {
        Err(GraphError::ResyncRequired(resync)) => resync,
        other => panic!("expected a resync, got {other:?}"),
    };
    assert_eq!(resync.status, 410);
    assert_eq!(resync.kind, ResyncKind::Reset);
    assert_eq!(resync.code.as_deref(), Some("syncStateNotFound"));
    let location = resync.location.clone().expect("the fake sends a Location");
    assert!(location.starts_with(&fake.base_url()), "{location}");
    // The Location is a new first round, with the round's options.
    let again = linked
        .client
        .delta_page::<Value>(resync.restart_link(&initial), Prefer::page_size(50))
        .await
        .unwrap();
    assert_eq!(again.items.len(), 3);
    assert!(again.ends_round());
    // As the engine sees an unhandled one.
    let e = IntegrationError::from(GraphError::ResyncRequired(resync));
    assert_eq!(e.class(), ErrorClass::Permanent);
}

#[tokio::test]
async fn drive_resync_codes_and_foreign_locations() {
    let fake = outlook(1).await;
    let graph = fake.handle().graph();
    let (mut linked, _) = mail_account(&fake);
    for (code, kind) in [
        (
            "resyncChangesApplyDifferences",
            ResyncKind::ApplyServerDifferences,
        ),
        (
            "resyncChangesUploadDifferences",
            ResyncKind::UploadLocalDifferences,
        ),
        ("resyncRequired", ResyncKind::Reset),
    ] {
        // A Location on another origin is dropped: the caller restarts from its own.
        let gone = FakeError::gone(
            code,
            "resync",
            "http://evil.example/v1.0/me/drive/root/delta".into(),
        );
        graph.fail_next("/me", 1, Fault::Error(gone));
        match linked.client.get_json::<Value>("me", &[]).await {
            Err(GraphError::ResyncRequired(resync)) => {
                assert_eq!(resync.kind, kind, "{code}");
                assert_eq!(resync.location, None, "{code}");
                assert_eq!(
                    resync.restart_link("me/drive/root/delta"),
                    "me/drive/root/delta"
                );
            }
            other => panic!("{code}: expected a resync, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn throttling_is_rate_limited_after_retry_after() {
    let fake = outlook(1).await;
    let graph = fake.handle().graph();
    let (mut linked, _) = mail_account(&fake);
    graph.fail_next(
        "/me",
        1,
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
    );
    assert_eq!(
        retry_after(linked.client.get_json::<Value>("me", &[]).await),
        Some(Duration::from_secs(7))
    );
    graph.fail_next(
        "/me",
        1,
        Fault::Unavailable {
            retry_after_secs: Some(3),
        },
    );
    assert_eq!(
        retry_after(linked.client.get_json::<Value>("me", &[]).await),
        Some(Duration::from_secs(3))
    );
    // The mailbox's own budget: 429 ApplicationThrottled with the wait until the
    // window frees a request.
    graph.set_throttle(ThrottleConfig {
        requests_per_window: 2,
        ..ThrottleConfig::default()
    });
    graph.clear_rate_windows();
    for _ in 0..2 {
        linked.client.get_json::<Value>("me", &[]).await.unwrap();
    }
    let wait =
        retry_after(linked.client.get_json::<Value>("me", &[]).await).expect("a Retry-After");
    assert!(
        wait >= Duration::from_secs(1) && wait <= Duration::from_secs(600),
        "{wait:?}"
    );
    assert_eq!(graph.counters().throttled, 1);
}

#[tokio::test]
async fn server_failures_are_transient() {
    let fake = outlook(1).await;
    let graph = fake.handle().graph();
    let (mut linked, _) = mail_account(&fake);
    graph.fail_next(
        "/me",
        1,
        Fault::Unavailable {
            retry_after_secs: None,
        },
    );
    assert_eq!(
        class_of(linked.client.get_json::<Value>("me", &[]).await),
        ErrorClass::Transient
    );
    graph.fail_next("/me", 1, Fault::InternalError);
    assert_eq!(
        class_of(linked.client.get_json::<Value>("me", &[]).await),
        ErrorClass::Transient
    );
    // And a bad request is permanent.
    let result = linked
        .client
        .get_json::<Value>("me/mailFolders", &[("$select", "noSuchProperty")])
        .await;
    assert_eq!(class_of(result), ErrorClass::Permanent);
    assert!(linked.client.get_json::<Value>("me", &[]).await.is_ok());
}
