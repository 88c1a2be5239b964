//! The shared pieces over loopback HTTP, with a small API mounted behind the pipeline.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use axum::Extension;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tributary_testkit::serving::LoopbackServer;

use crate::testing::{self, Answer, TestClient, post_token, send_held};
use crate::{
    Caller, Fault, GraphConfig, GraphError, GraphHandle, GraphRoutes, GraphUrls, RefreshRotation,
    ThrottleConfig, odata,
};

async fn echo(Extension(caller): Extension<Caller>) -> Result<Response, GraphError> {
    caller.require_any_scope(&["Mail.Read", "Files.Read"])?;
    Ok(odata::json_response(
        StatusCode::OK,
        &json!({"user": caller.user.id, "root": caller.graph_root, "maxpagesize": caller.prefer.max_page_size}),
    ))
}

fn routes() -> GraphRoutes {
    GraphRoutes::new()
        .route("test.echo", "/v1.0/me/test", get(echo))
        .route("test.slow", "/v1.0/me/slow", get(echo))
}

struct Setup {
    graph: GraphHandle,
    server: LoopbackServer,
    /// A client of the server's origin (paths start with `/v1.0` or the tenant).
    client: TestClient,
}

async fn setup(config: GraphConfig) -> Setup {
    let graph = GraphHandle::new(config);
    let server = LoopbackServer::start(graph.router(routes())).await;
    let client = TestClient::new(GraphUrls::new(server.addr()).origin(), "");
    Setup {
        graph,
        server,
        client,
    }
}

impl Setup {
    fn url(&self, path: &str) -> String {
        self.client.url(path)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.get_with(path, token, &[]).await
    }

    async fn get_with(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Answer {
        self.client.get_by(path, token, headers).await
    }

    /// The status of a GET with this token.
    async fn status(&self, path: &str, token: &str) -> u16 {
        self.get(path, Some(token)).await.status
    }

    async fn token(&self, form: &[(&str, &str)]) -> Answer {
        post_token(
            &self.client.http,
            &self.url("/common/oauth2/v2.0/token"),
            form,
        )
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> Answer {
        let token_url = self.url("/common/oauth2/v2.0/token");
        let id = self.graph.client_id();
        let secret = self.graph.client_secret();
        testing::refresh(&self.client.http, &token_url, refresh_token, &id, &secret).await
    }

    /// Authorizes `Mail.Read` with the PKCE challenge of `right`, then redeems the
    /// code with this redirect URI and verifier.
    async fn redeem_new_code(&self, redirect_uri: &str, verifier: &str) -> Answer {
        let (_, params) = self.authorize("Mail.Read", &challenge_of("right")).await;
        let code = params.get("code").unwrap().clone();
        let (id, secret) = (self.graph.client_id(), self.graph.client_secret());
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("client_id", &id),
            ("client_secret", &secret),
            ("code_verifier", verifier),
        ])
        .await
    }

    /// The authorize endpoint with PKCE: the code it redirects with.
    async fn authorize(&self, scope: &str, challenge: &str) -> (u16, HashMap<String, String>) {
        let response = self
            .client
            .http
            .get(self.url("/common/oauth2/v2.0/authorize"))
            .query(&[
                ("client_id", self.graph.client_id().as_str()),
                ("response_type", "code"),
                ("redirect_uri", CALLBACK),
                ("scope", scope),
                ("state", "st-1"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let params = url::Url::parse(&location)
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default();
        (status, params)
    }
}

/// The redirect URI of the tests' authorize requests.
const CALLBACK: &str = "http://127.0.0.1:9999/callback";

fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[tokio::test]
async fn the_code_flow_issues_rotating_refresh_tokens() {
    let s = setup(GraphConfig {
        access_token_lifetime: Duration::from_secs(1234),
        ..GraphConfig::default()
    })
    .await;
    let verifier = "a-verifier-of-enough-length-for-pkce-0123456789";
    let (status, params) = s
        .authorize(
            "offline_access https://graph.microsoft.com/Mail.Read",
            &challenge_of(verifier),
        )
        .await;
    assert_eq!(status, 302);
    assert_eq!(params.get("state").map(String::as_str), Some("st-1"));
    let code = params.get("code").unwrap().clone();
    let (id, secret) = (s.graph.client_id(), s.graph.client_secret());
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("code_verifier", verifier),
        ("scope", "offline_access Mail.Read"),
    ];
    let first = s.token(&form).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["token_type"], "Bearer");
    assert_eq!(first.body["expires_in"], 1234);
    assert_eq!(first.body["scope"], "Mail.Read");
    let access = first.body["access_token"].as_str().unwrap().to_owned();
    let refresh = first.body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(s.status("/v1.0/me/test", &access).await, 200);

    // The code is good once.
    let again = s.token(&form).await;
    assert_eq!(
        (again.status, again.body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(again.body["error_codes"], json!([54005]));

    // A refresh rotates: a new refresh token, and the old one dies.
    let second = s.refresh(&refresh).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let rotated = second.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, refresh);
    assert!(s.graph.is_current_refresh_token(&rotated));
    assert!(!s.graph.is_live_refresh_token(&refresh));
    let reused = s.refresh(&refresh).await;
    assert_eq!(reused.status, 400);
    assert_eq!(reused.body["error"], "invalid_grant");
    assert_eq!(reused.body["error_codes"], json!([70008]));
    for field in [
        "error_description",
        "timestamp",
        "trace_id",
        "correlation_id",
    ] {
        assert!(reused.body[field].is_string(), "{field} in {}", reused.body);
    }
    assert!(
        reused.body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS70008: ")
    );
    assert_eq!(s.refresh(&rotated).await.status, 200);
    assert_eq!(s.graph.refreshes(), 2);
    assert_eq!(s.graph.counters().code_grants, 1);
}

#[tokio::test]
async fn a_wrong_verifier_or_redirect_is_refused() {
    let s = setup(GraphConfig::default()).await;
    let wrong = s.redeem_new_code(CALLBACK, "wrong").await;
    assert_eq!(wrong.body["error_codes"], json!([501481]));
    let redirect = s.redeem_new_code("http://127.0.0.1:1/other", "right").await;
    assert_eq!(redirect.body["error"], "invalid_grant");
    // Without offline_access there is no refresh token.
    let ok = s.redeem_new_code(CALLBACK, "right").await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.get("refresh_token").is_none(), "{}", ok.body);
    // Declined consent comes back to the app as an error.
    s.graph.set_deny_consent(true);
    let (status, params) = s.authorize("Mail.Read", &challenge_of("right")).await;
    assert_eq!(status, 302);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(params.get("state").map(String::as_str), Some("st-1"));
}

#[tokio::test]
async fn client_and_tenant_errors_have_their_status() {
    let s = setup(GraphConfig::default()).await;
    let grant = s.graph.mint_grant(&["Mail.Read"]);
    let refresh = grant.refresh_token.unwrap();
    let id = s.graph.client_id();
    let bad_secret = s
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &id),
            ("client_secret", "nope"),
        ])
        .await;
    assert_eq!(
        (bad_secret.status, bad_secret.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert_eq!(bad_secret.body["error_codes"], json!([7000215]));
    let unknown = s.refresh("M.C5fake_garbage").await;
    assert_eq!(
        (unknown.status, unknown.body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let response = s
        .client
        .http
        .post(s.url("/nosuchtenant/oauth2/v2.0/token"))
        .header("client-request-id", "my-correlation")
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    let tenant = Answer::read(response).await;
    assert_eq!(tenant.status, 400);
    assert_eq!(tenant.body["error_codes"], json!([90002]));
    assert_eq!(tenant.body["correlation_id"], "my-correlation");
    // Revoked grants: refresh is invalid_grant 50173, the access token 401.
    assert!(s.graph.revoke_grant(&refresh));
    let revoked = s.refresh(&refresh).await;
    assert_eq!(revoked.body["error_codes"], json!([50173]));
    assert_eq!(s.status("/v1.0/me/test", &grant.access_token).await, 401);
    // Scope beyond the grant.
    let other = s.graph.mint_grant(&["Mail.Read"]);
    let wider = s
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", other.refresh_token.as_deref().unwrap()),
            ("client_id", &id),
            ("client_secret", &s.graph.client_secret()),
            ("scope", "Mail.ReadWrite"),
        ])
        .await;
    assert_eq!(wider.body["error_codes"], json!([65001]));
}

#[tokio::test]
async fn keep_old_rotation_leaves_used_tokens_working() {
    let s = setup(GraphConfig {
        refresh_rotation: RefreshRotation::KeepOld,
        ..GraphConfig::default()
    })
    .await;
    let grant = s.graph.mint_grant(&["Mail.Read"]);
    let old = grant.refresh_token.unwrap();
    let first = s.refresh(&old).await;
    let new = first.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(s.graph.is_live_refresh_token(&old));
    assert!(!s.graph.is_current_refresh_token(&old));
    assert_eq!(s.graph.current_refresh_token(grant.grant_id), Some(new));
    assert_eq!(s.refresh(&old).await.status, 200);
}

#[tokio::test]
async fn bad_tokens_get_the_graph_envelope() {
    let s = setup(GraphConfig::default()).await;
    let missing = s.get("/v1.0/me/test", None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.code(), "InvalidAuthenticationToken");
    assert!(
        missing
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    let request_id = missing.header("request-id").unwrap().to_owned();
    assert_eq!(
        missing.body["error"]["innerError"]["request-id"],
        request_id.as_str()
    );
    assert!(missing.body["error"]["innerError"]["date"].is_string());
    assert!(missing.body["error"]["message"].is_string());

    let grant = s.graph.mint_grant(&["Mail.Read"]);
    let correlated = [("client-request-id", "abc-123")];
    let token = Some(grant.access_token.as_str());
    let ok = s.get_with("/v1.0/me/test", token, &correlated).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("client-request-id"), Some("abc-123"));
    assert_eq!(ok.body["user"], s.graph.user().id.as_str());
    assert_eq!(
        ok.body["root"],
        format!("http://{}/v1.0", s.server.addr()).as_str()
    );

    s.graph.expire_access_tokens();
    let expired = s.get("/v1.0/me/test", Some(&grant.access_token)).await;
    assert_eq!(
        (expired.status, expired.code()),
        (401, "InvalidAuthenticationToken")
    );
    assert_eq!(s.graph.counters().unauthorized, 2);

    // Time expires tokens too.
    let grant = s.graph.mint_grant(&["Mail.Read"]);
    s.graph.advance(Duration::from_secs(3600));
    assert_eq!(s.status("/v1.0/me/test", &grant.access_token).await, 401);

    // A token without the scope the route takes.
    let narrow = s.graph.mint_grant(&["User.Read"]);
    let denied = s.get("/v1.0/me/test", Some(&narrow.access_token)).await;
    assert_eq!((denied.status, denied.code()), (403, "ErrorAccessDenied"));
    let me = s
        .get("/v1.0/me?$select=displayName", Some(&narrow.access_token))
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["displayName"], "Test User");
    assert_eq!(me.body["id"], s.graph.user().id.as_str());
    assert!(me.body.get("mail").is_none());
}

#[tokio::test]
async fn tokens_can_die_after_a_number_of_requests() {
    let s = setup(GraphConfig::default()).await;
    // Once, after two more requests: the third finds its token expired.
    let grant = s.graph.mint_grant(&["Mail.Read"]);
    s.graph.expire_access_tokens_after(2);
    for _ in 0..2 {
        assert_eq!(s.status("/v1.0/me/test", &grant.access_token).await, 200);
    }
    assert_eq!(s.status("/v1.0/me/test", &grant.access_token).await, 401);
    // Tokens issued later live again until the next count.
    let grant = s.graph.mint_grant(&["Mail.Read"]);
    assert_eq!(s.status("/v1.0/me/test", &grant.access_token).await, 200);
    // Every third request from now on: the 1st and 2nd pass, the 3rd is refused.
    s.graph.expire_access_tokens_every(Some(3));
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let grant = s.graph.mint_grant(&["Mail.Read"]);
        for _ in 0..3 {
            statuses.push(s.status("/v1.0/me/test", &grant.access_token).await);
        }
    }
    assert_eq!(statuses, [200, 200, 401, 200, 200, 401]);
    s.graph.expire_access_tokens_every(None);
    let grant = s.graph.mint_grant(&["Mail.Read"]);
    for _ in 0..4 {
        assert_eq!(s.status("/v1.0/me/test", &grant.access_token).await, 200);
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_get_the_envelope() {
    let s = setup(GraphConfig::default()).await;
    let grant = s.graph.mint_grant(&["Mail.Read"]);
    let unknown = s.get("/v1.0/me/nothing", Some(&grant.access_token)).await;
    assert_eq!((unknown.status, unknown.code()), (400, "BadRequest"));
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing")
    );
    let response = s
        .client
        .http
        .delete(s.url("/v1.0/me/test"))
        .bearer_auth(&grant.access_token)
        .send()
        .await
        .unwrap();
    let wrong_method = Answer::read(response).await;
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.body["error"]["code"].is_string());
    let outside = s.get("/elsewhere", None).await;
    assert_eq!(outside.status, 404);
}

#[tokio::test]
async fn the_rate_budget_throttles_each_mailbox() {
    let s = setup(GraphConfig {
        throttle: ThrottleConfig {
            requests_per_window: 3,
            window: Duration::from_secs(600),
            time_scale: 60.0,
            ..ThrottleConfig::default()
        },
        ..GraphConfig::default()
    })
    .await;
    let grant = s.graph.mint_grant(&["Mail.Read"]);
    for _ in 0..3 {
        assert_eq!(s.status("/v1.0/me/test", &grant.access_token).await, 200);
    }
    let throttled = s.get("/v1.0/me/test", Some(&grant.access_token)).await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.code(), "ApplicationThrottled");
    let retry: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    // 600 s of throttle clock at 60x is about 10 real seconds.
    assert!((1..=10).contains(&retry), "{retry}");

    // Another mailbox is not throttled.
    let other = s.graph.add_user("Other User", "other@example.com");
    let other_grant = s.graph.mint_grant_for(&other.id, &["Mail.Read"]).unwrap();
    assert_eq!(
        s.status("/v1.0/me/test", &other_grant.access_token).await,
        200
    );

    // Once the window has passed, the first mailbox is admitted again.
    s.graph.advance(Duration::from_secs(601));
    assert_eq!(s.status("/v1.0/me/test", &grant.access_token).await, 200);
    let counters = s.graph.mailbox_counters(&grant.user_id);
    assert_eq!(counters.rate_limited, 1);
    assert_eq!(counters.admitted, 4);
    assert_eq!(s.graph.mailbox_counters(&other.id).admitted, 1);
    assert_eq!(s.graph.counters().throttled, 1);
    assert_eq!(s.graph.counters().calls("test.echo"), 6);
}

#[tokio::test]
async fn concurrency_over_four_is_throttled_and_measured() {
    let s = setup(GraphConfig::default()).await;
    let grant = s.graph.mint_grant(&["Mail.Read"]);
    let gate = s.graph.gate();
    gate.hold("/v1.0/me/slow");
    let slow = s.url("/v1.0/me/slow");
    let held = send_held(&s.client.http, &gate, &slow, &grant.access_token, 4).await;
    assert_eq!(s.graph.mailbox_counters(&grant.user_id).in_flight, 4);
    let fifth = s.get("/v1.0/me/test", Some(&grant.access_token)).await;
    assert_eq!(fifth.status, 429);
    assert_eq!(fifth.code(), "ApplicationThrottled");
    assert!(
        fifth.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MailboxConcurrency")
    );
    assert_eq!(fifth.header("retry-after"), Some("1"));
    gate.release();
    for task in held {
        assert_eq!(task.await.unwrap(), 200);
    }
    let counters = s.graph.mailbox_counters(&grant.user_id);
    assert_eq!(counters.peak_in_flight, 4);
    assert_eq!(counters.peak_attempted, 5);
    assert_eq!(counters.concurrency_limited, 1);
    assert_eq!(counters.in_flight, 0);
    assert_eq!(s.graph.peak_concurrency(&grant.user_id), 5);

    // Without enforcement the peak shows what a client really sent.
    s.graph.set_throttle(ThrottleConfig {
        enforce_concurrency: false,
        ..ThrottleConfig::default()
    });
    s.graph.reset_counters();
    gate.hold("/v1.0/me/slow");
    let held = send_held(&s.client.http, &gate, &slow, &grant.access_token, 6).await;
    gate.release();
    for task in held {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(s.graph.peak_concurrency(&grant.user_id), 6);
}

#[tokio::test]
async fn latency_keeps_requests_in_flight() {
    let s = setup(GraphConfig {
        latency: Duration::from_millis(800),
        ..GraphConfig::default()
    })
    .await;
    let grant = s.graph.mint_grant(&["Mail.Read"]);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let request = s
            .client
            .http
            .get(s.url("/v1.0/me/test"))
            .bearer_auth(&grant.access_token);
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 200, 200, 200, 429, 429]);
    assert_eq!(s.graph.mailbox_counters(&grant.user_id).peak_in_flight, 4);
}

#[tokio::test]
async fn faults_answer_the_matching_requests() {
    let s = setup(GraphConfig::default()).await;
    let grant = s.graph.mint_grant(&["Mail.Read"]);
    s.graph.fail_next(
        "/v1.0/me/slow",
        2,
        Fault::Unavailable {
            retry_after_secs: Some(7),
        },
    );
    s.graph.fail_next("", 1, Fault::InternalError);
    let unavailable = s.get("/v1.0/me/slow?x=1", Some(&grant.access_token)).await;
    assert_eq!(
        (unavailable.status, unavailable.code()),
        (503, "serviceNotAvailable")
    );
    assert_eq!(unavailable.header("retry-after"), Some("7"));
    let internal = s.get("/v1.0/me/test", Some(&grant.access_token)).await;
    assert_eq!(
        (internal.status, internal.code()),
        (500, "generalException")
    );
    assert_eq!(s.status("/v1.0/me/test", &grant.access_token).await, 200);
    assert_eq!(s.status("/v1.0/me/slow", &grant.access_token).await, 503);
    assert_eq!(s.status("/v1.0/me/slow", &grant.access_token).await, 200);
    s.graph.fail_next(
        "test",
        1,
        Fault::Error(GraphError::throttled(
            "activityLimitReached",
            "slow down",
            9,
        )),
    );
    let custom = s.get("/v1.0/me/test", Some(&grant.access_token)).await;
    assert_eq!(
        (custom.status, custom.code()),
        (429, "activityLimitReached")
    );
    assert_eq!(custom.header("retry-after"), Some("9"));
    assert_eq!(s.graph.counters().faults, 4);
    assert_eq!(s.graph.pending_faults(), 0);
    // Faults come after authentication.
    s.graph.fail_next("", 1, Fault::InternalError);
    assert_eq!(s.get("/v1.0/me/test", None).await.status, 401);
    assert_eq!(s.graph.pending_faults(), 1);
}

#[tokio::test]
async fn prefer_reaches_the_route() {
    let s = setup(GraphConfig::default()).await;
    let grant = s.graph.mint_grant(&["Files.Read"]);
    let prefer = [("Prefer", "odata.maxpagesize=7")];
    let token = Some(grant.access_token.as_str());
    let answer = s.get_with("/v1.0/me/test", token, &prefer).await;
    assert_eq!(answer.body["maxpagesize"], 7);
}
