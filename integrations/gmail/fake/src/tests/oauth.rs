//! The token endpoint, the authorization endpoint with PKCE, expiry and revocation.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;

use super::{Reply, Setup, assert_google_error, reply, setup};
use tributary_google_fake::oauth::{TokenStore, sha256};

async fn token_request(s: &Setup, form: &[(&str, &str)]) -> Reply {
    let response = s
        .http
        .post(s.fake.token_url())
        .form(form)
        .send()
        .await
        .expect("request is sent");
    reply(response).await
}

async fn refresh(s: &Setup, refresh_token: &str) -> Reply {
    let credentials = s.fake.credentials();
    token_request(
        s,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &credentials.client_id),
            ("client_secret", &credentials.client_secret),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

async fn profile_with(s: &Setup, token: &str) -> StatusCode {
    s.http
        .get(s.api("profile"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request is sent")
        .status()
}

#[tokio::test]
async fn refresh_grant_issues_working_tokens() {
    let s = setup(0).await;
    let credentials = s.fake.credentials();
    let granted = refresh(&s, &credentials.refresh_token).await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.text);
    assert_eq!(granted.json["token_type"], "Bearer");
    assert_eq!(granted.json["expires_in"], 3599);
    assert_eq!(
        granted.json["scope"],
        "https://www.googleapis.com/auth/gmail.readonly"
    );
    assert!(granted.json.get("refresh_token").is_none());
    assert_eq!(
        granted
            .headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let access = granted.json["access_token"].as_str().unwrap_or_default();
    assert_eq!(profile_with(&s, access).await, StatusCode::OK);

    // HTTP Basic client authentication works too.
    let basic = s
        .http
        .post(s.fake.token_url())
        .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", credentials.refresh_token.as_str()),
        ])
        .send()
        .await
        .expect("request is sent");
    assert_eq!(basic.status(), StatusCode::OK);
    assert_eq!(s.fake.counters().tokens_issued, 2);
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let s = setup(0).await;
    let credentials = s.fake.credentials();
    let unknown = refresh(&s, "1//made-up").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json["error"], "invalid_grant");
    assert!(unknown.json["error_description"].is_string());

    let wrong_secret = token_request(
        &s,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &credentials.client_id),
            ("client_secret", "wrong"),
            ("refresh_token", &credentials.refresh_token),
        ],
    )
    .await;
    assert_eq!(wrong_secret.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_secret.json["error"], "invalid_client");
    let wrong_client = token_request(
        &s,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "someone-else"),
            ("client_secret", &credentials.client_secret),
            ("refresh_token", &credentials.refresh_token),
        ],
    )
    .await;
    assert_eq!(wrong_client.json["error"], "invalid_client");

    let no_grant = token_request(&s, &[("client_id", &credentials.client_id)]).await;
    assert_eq!(no_grant.json["error"], "invalid_request");
    let other_grant = token_request(&s, &[("grant_type", "password")]).await;
    assert_eq!(other_grant.json["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn revoked_refresh_tokens_stop_working() {
    let s = setup(0).await;
    let credentials = s.fake.credentials();
    let granted = refresh(&s, &credentials.refresh_token).await;
    let access = granted.json["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(s.fake.revoke_refresh_token(&credentials.refresh_token));
    let refused = refresh(&s, &credentials.refresh_token).await;
    assert_eq!(refused.json["error"], "invalid_grant");
    // Access tokens issued from it are revoked with it.
    assert_eq!(profile_with(&s, &access).await, StatusCode::UNAUTHORIZED);
    // Tokens from other grants keep working.
    assert_eq!(profile_with(&s, &s.token).await, StatusCode::OK);

    // The revocation endpoint does the same for a fresh refresh token.
    let other = s.fake.issue_refresh_token();
    let revoked = s
        .http
        .post(s.fake.revoke_url())
        .form(&[("token", other.as_str())])
        .send()
        .await
        .expect("request is sent");
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(refresh(&s, &other).await.json["error"], "invalid_grant");
    let again = s
        .http
        .post(s.fake.revoke_url())
        .form(&[("token", other.as_str())])
        .send()
        .await
        .expect("request is sent");
    assert_eq!(reply(again).await.json["error"], "invalid_token");
}

#[tokio::test]
async fn expired_access_tokens_are_refused_until_refreshed() {
    let s = setup(0).await;
    s.fake.expire_access_tokens();
    let expired = s.get("profile").await;
    assert_google_error(&expired, 401, "UNAUTHENTICATED");
    let credentials = s.fake.credentials();
    let granted = refresh(&s, &credentials.refresh_token).await;
    let fresh = granted.json["access_token"].as_str().unwrap_or_default();
    assert_eq!(profile_with(&s, fresh).await, StatusCode::OK);

    // A token that runs out in the middle of a sync.
    s.fake.expire_tokens_after_calls(2);
    assert_eq!(profile_with(&s, fresh).await, StatusCode::OK);
    assert_eq!(profile_with(&s, fresh).await, StatusCode::OK);
    assert_eq!(profile_with(&s, fresh).await, StatusCode::UNAUTHORIZED);
    let again = refresh(&s, &credentials.refresh_token).await;
    let renewed = again.json["access_token"].as_str().unwrap_or_default();
    assert_eq!(profile_with(&s, renewed).await, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn access_tokens_expire_with_their_lifetime() {
    let mut store = TokenStore::new(
        "client",
        "secret",
        "1//refresh",
        "scope",
        Duration::from_secs(60),
        7,
    );
    let issued = store.issue_access_token(Some("1//refresh"));
    assert_eq!(issued.expires_in, 60);
    assert!(store.is_valid(&issued.access_token));
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(store.is_valid(&issued.access_token));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(!store.is_valid(&issued.access_token));
    store.set_lifetime(Duration::from_secs(5));
    let short = store.issue_access_token(None);
    assert_eq!(short.expires_in, 5);
}

fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location)
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

async fn authorize(s: &Setup, params: &[(&str, &str)]) -> Reply {
    let response = s
        .http
        .get(s.fake.authorize_url())
        .query(params)
        .send()
        .await
        .expect("request is sent");
    reply(response).await
}

#[tokio::test]
async fn authorization_code_with_pkce() {
    let s = setup(0).await;
    let credentials = s.fake.credentials();
    let verifier = "a-very-long-random-verifier-string-of-at-least-43-characters";
    let challenge = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
    let redirect = "http://127.0.0.1:9/callback";
    let params = [
        ("client_id", credentials.client_id.as_str()),
        ("redirect_uri", redirect),
        ("response_type", "code"),
        ("scope", "https://www.googleapis.com/auth/gmail.readonly"),
        ("state", "xyz-123"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("access_type", "offline"),
    ];
    let consent = authorize(&s, &params).await;
    assert_eq!(consent.status, StatusCode::FOUND);
    let location = consent
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(location.starts_with("http://127.0.0.1:9/callback?"));
    let query = query_of(&location);
    assert_eq!(query.get("state").map(String::as_str), Some("xyz-123"));
    let code = query.get("code").cloned().unwrap_or_default();

    let exchange = |code: String, verifier: &'static str| {
        let s = &s;
        let credentials = credentials.clone();
        async move {
            token_request(
                s,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect),
                    ("client_id", &credentials.client_id),
                    ("client_secret", &credentials.client_secret),
                    ("code_verifier", verifier),
                ],
            )
            .await
        }
    };
    let granted = exchange(code.clone(), verifier).await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.text);
    let refresh_token = granted.json["refresh_token"].as_str().unwrap_or_default();
    let access = granted.json["access_token"].as_str().unwrap_or_default();
    assert_eq!(profile_with(&s, access).await, StatusCode::OK);
    assert_eq!(refresh(&s, refresh_token).await.status, StatusCode::OK);
    // A code is single-use.
    assert_eq!(
        exchange(code, verifier).await.json["error"],
        "invalid_grant"
    );

    // A wrong verifier fails.
    let consent = authorize(&s, &params).await;
    let location = consent
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let code = query_of(&location).get("code").cloned().unwrap_or_default();
    let wrong = exchange(code, "not-the-verifier-used-for-the-challenge-at-all-xx").await;
    assert_eq!(wrong.json["error"], "invalid_grant");

    // Declined consent comes back as an error on the redirect.
    s.fake.set_deny_consent(true);
    let declined = authorize(&s, &params).await;
    let location = declined
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let query = query_of(&location);
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(query.get("state").map(String::as_str), Some("xyz-123"));
    s.fake.set_deny_consent(false);

    // Only loopback redirects, and only for the known client.
    let mut elsewhere = params;
    elsewhere[1] = ("redirect_uri", "https://evil.example/cb");
    let refused = authorize(&s, &elsewhere).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json["error"], "redirect_uri_mismatch");
    let mut stranger = params;
    stranger[0] = ("client_id", "stranger");
    assert_eq!(
        authorize(&s, &stranger).await.json["error"],
        "invalid_client"
    );
}
