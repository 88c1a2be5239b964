//! The identity platform: refresh with rotation persisted, and its refusals.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use tributary_sdk::serde_json::{Value, json};
use tributary_sdk::{ErrorClass, Task};

use crate::support::{class_of, credentials, grant_account, link, outlook, serve, settings};

/// The first request of a job holding an unknown access token: a 401 and a refresh.
const STALE: &str = "EwBstale.token";

#[tokio::test]
async fn a_rotated_refresh_token_is_saved_the_moment_it_is_issued() {
    let fake = outlook(0).await;
    let graph = fake.handle().graph();
    let grant = fake.handle().mail_grant();
    let old = grant.refresh_token.clone().unwrap();
    let mut linked = grant_account(&fake, &grant, Some(STALE), true);
    linked.client.get_json::<Value>("me", &[]).await.unwrap();
    // The fake revokes a used refresh token: only the new one works from now on.
    assert!(!graph.is_live_refresh_token(&old));
    let current = graph.current_refresh_token(grant.grant_id).unwrap();
    let saved = linked.sink.as_ref().unwrap().saved();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].get("refreshToken"), Some(current.as_str()));
    assert!(graph.is_current_refresh_token(saved[0].get("refreshToken").unwrap()));
    assert!(saved[0].get("accessToken").is_some_and(|t| t != STALE));
    assert!(saved[0].get("accessTokenExpiresAt").is_some());
    // The client id and secret are kept.
    assert_eq!(saved[0].get("clientId"), Some(graph.client_id().as_str()));
}

#[tokio::test]
async fn a_rotation_without_a_sink_is_returned_with_the_job() {
    let fake = outlook(0).await;
    let graph = fake.handle().graph();
    let grant = fake.handle().mail_grant();
    let mut linked = grant_account(&fake, &grant, Some(STALE), false);
    let result = linked.integration.run_task(&Task::start()).await.unwrap();
    let returned = result.credentials.expect("the refreshed credentials");
    let current = graph.current_refresh_token(grant.grant_id).unwrap();
    assert_eq!(returned.get("refreshToken"), Some(current.as_str()));
    assert_eq!(graph.refreshes(), 1);
    // A job that fails after its refresh still hands them back.
    let mut stored = credentials(&fake, &grant, Some(STALE));
    stored.set("refreshToken", current.clone());
    let mut linked = link(settings(&fake), stored, false);
    graph.fail_next("/me", 1, tributary_msgraph_fake::Fault::InternalError);
    assert!(linked.integration.run_task(&Task::start()).await.is_err());
    let after = linked
        .integration
        .credentials_after_failure()
        .expect("kept");
    let newest = graph.current_refresh_token(grant.grant_id).unwrap();
    assert_ne!(newest, current);
    assert_eq!(after.get("refreshToken"), Some(newest.as_str()));
}

#[tokio::test]
async fn a_revoked_or_replaced_grant_needs_a_new_sign_in() {
    let fake = outlook(0).await;
    let graph = fake.handle().graph();
    // Revoked (AADSTS50173).
    let grant = fake.handle().mail_grant();
    assert!(graph.revoke_grant(&grant.access_token));
    let mut linked = grant_account(&fake, &grant, None, false);
    let error = linked.client.get_json::<Value>("me", &[]).await;
    let message = format!("{error:?}");
    assert_eq!(class_of(error), ErrorClass::Auth);
    assert!(
        message.contains("invalid_grant") && message.contains("AADSTS50173"),
        "{message}"
    );
    // A refresh token that rotation replaced (AADSTS70008).
    let grant = fake.handle().mail_grant();
    let mut first = grant_account(&fake, &grant, None, false);
    first.client.get_json::<Value>("me", &[]).await.unwrap();
    let mut stale = grant_account(&fake, &grant, None, false);
    let error = stale.client.get_json::<Value>("me", &[]).await;
    let message = format!("{error:?}");
    assert_eq!(class_of(error), ErrorClass::Auth);
    assert!(message.contains("AADSTS70008"), "{message}");
}

#[tokio::test]
async fn a_wrong_client_secret_is_an_auth_error() {
    let fake = outlook(0).await;
    let grant = fake.handle().mail_grant();
    let mut wrong = credentials(&fake, &grant, None);
    wrong.set("clientSecret", "not-the-secret");
    let mut linked = link(settings(&fake), wrong, false);
    let error = linked.client.get_json::<Value>("me", &[]).await;
    let message = format!("{error:?}");
    assert_eq!(class_of(error), ErrorClass::Auth);
    assert!(message.contains("invalid_client"), "{message}");
    assert_eq!(fake.handle().graph().counters().token_errors, 1);
}

#[tokio::test]
async fn a_busy_identity_platform_is_transient() {
    let fake = outlook(0).await;
    let grant = fake.handle().mail_grant();
    // A token endpoint that is temporarily unavailable, then one that fails outright.
    let busy = axum::Router::new()
        .route(
            "/common/oauth2/v2.0/token",
            axum::routing::post(|| async {
                (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": "temporarily_unavailable",
                        "error_description": "AADSTS90033: A transient error has occurred.",
                        "error_codes": [90033]})),
                )
                    .into_response()
            }),
        )
        .route(
            "/broken/oauth2/v2.0/token",
            axum::routing::post(|| async { (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>") }),
        );
    let addr = serve(busy).await;
    for tenant in ["common", "broken"] {
        let mut settings = settings(&fake);
        settings.insert(
            "tokenUrl".into(),
            Value::String(format!("http://{addr}/{tenant}/oauth2/v2.0/token")),
        );
        let mut linked = link(settings, credentials(&fake, &grant, None), false);
        let error = linked.client.get_json::<Value>("me", &[]).await;
        assert_eq!(class_of(error), ErrorClass::Transient, "{tenant}");
    }
    // No request reached Graph without a token.
    assert_eq!(fake.handle().graph().counters().calls("me.get"), 0);
}
