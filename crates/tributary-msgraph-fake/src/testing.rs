//! Helpers for tests of the Graph fakes over real HTTP, shared by this crate's tests
//! and the Outlook and OneDrive fakes' (the `testing` feature, for dev-dependencies):
//!
//! - [`Answer`]: a response read whole (status, headers, bytes, JSON body);
//! - [`TestClient`]: GETs of Graph paths or links with a bearer token, and whole delta
//!   rounds ([`TestClient::delta_round`]);
//! - [`post_token`] and [`refresh`]: the identity platform's token endpoint;
//! - [`send_held`]: concurrent requests held at the [`ResponseGate`];
//! - [`start_standalone`] and [`check_standalone_link`]: a standalone fake and the
//!   checks every Graph fake's link passes;
//! - [`ids`] and [`flat`]: what tests read from pages.
//!
//! They are for tests: they panic on what a test must not meet (a failed connection, an
//! item without an id, a link without a setting).

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::task::JoinHandle;
use tributary_sdk::{Fake, FakeLink, FakeOptions, RunningFake};

use crate::ResponseGate;

/// One answer, read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON; a body that is not JSON as a JSON string (lossy UTF-8).
    pub body: Value,
    /// The body's bytes.
    pub bytes: Vec<u8>,
}

impl Answer {
    /// Reads a response whole.
    ///
    /// # Panics
    /// When the body cannot be read.
    pub async fn read(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .expect("the body of an answer")
            .to_vec();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            headers,
            body,
            bytes,
        }
    }

    /// A header's value, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Graph's `error.code` (`""` when there is none).
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The items of a collection page (`value`; none when it has no `value`).
    pub fn values(&self) -> Vec<Value> {
        self.body["value"].as_array().cloned().unwrap_or_default()
    }
}

/// An HTTP client for tests: it does not follow redirects (a test reads the 302s), and
/// the TLS crypto provider is installed.
///
/// # Panics
/// When the client cannot be built.
pub fn http_client() -> reqwest::Client {
    tributary_sdk::http::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// A test's client of one Graph server: Graph paths (`/me/...`) are taken under its
/// Graph root, absolute links as they are, and requests carry its bearer token.
#[derive(Debug, Clone)]
pub struct TestClient {
    /// The HTTP client ([`http_client`]).
    pub http: reqwest::Client,
    /// What paths are taken under: the Graph root, `http://127.0.0.1:PORT/v1.0` (or
    /// the origin, for paths that start with `/v1.0` themselves).
    pub base_url: String,
    /// The bearer token requests carry.
    pub access_token: String,
}

impl TestClient {
    /// A client of the Graph root `base_url` with this token.
    pub fn new(base_url: impl Into<String>, access_token: impl Into<String>) -> TestClient {
        TestClient {
            http: http_client(),
            base_url: base_url.into(),
            access_token: access_token.into(),
        }
    }

    /// The URL of a Graph path (`/me/...`) or of an absolute link.
    pub fn url(&self, target: &str) -> String {
        if target.starts_with("http") {
            target.to_owned()
        } else {
            format!("{}{target}", self.base_url)
        }
    }

    /// GETs `target` with the bearer token and these headers.
    ///
    /// # Panics
    /// When the request fails.
    pub async fn get_with(&self, target: &str, headers: &[(&str, &str)]) -> Answer {
        self.get_by(target, Some(&self.access_token), headers).await
    }

    /// GETs `target` with the bearer token.
    pub async fn get(&self, target: &str) -> Answer {
        self.get_with(target, &[]).await
    }

    /// GETs `target` with another bearer token.
    pub async fn get_as(&self, target: &str, access_token: &str) -> Answer {
        self.get_by(target, Some(access_token), &[]).await
    }

    /// GETs `target` without any `Authorization` header (a download URL, or a request
    /// the pipeline must refuse).
    pub async fn anonymous(&self, target: &str, headers: &[(&str, &str)]) -> Answer {
        self.get_by(target, None, headers).await
    }

    /// [`TestClient::get_with`], which must answer 200.
    ///
    /// # Panics
    /// When the answer is not a 200.
    pub async fn ok(&self, target: &str, headers: &[(&str, &str)]) -> Answer {
        let answer = self.get_with(target, headers).await;
        assert_eq!(answer.status, 200, "{target}: {}", answer.body);
        answer
    }

    /// GETs `target` with `token` (`None`: no `Authorization` header) and these
    /// headers.
    ///
    /// # Panics
    /// When the request fails.
    pub async fn get_by(
        &self,
        target: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.http.get(self.url(target));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Answer::read(request.send().await.expect("a request to the fake")).await
    }

    /// A whole delta round from `start`: its pages and the delta link. Every page must
    /// answer 200 with exactly one link: an `@odata.nextLink` containing `next_has`,
    /// or, on the last page, an `@odata.deltaLink` containing `delta_has`.
    ///
    /// # Panics
    /// When a page breaks those rules, or after 1,000 pages.
    pub async fn delta_round(
        &self,
        start: &str,
        headers: &[(&str, &str)],
        next_has: &str,
        delta_has: &str,
    ) -> (Vec<Vec<Value>>, String) {
        let mut pages = Vec::new();
        let mut url = start.to_owned();
        loop {
            let page = self.ok(&url, headers).await;
            let next = page.body["@odata.nextLink"].as_str().map(str::to_owned);
            let delta = page.body["@odata.deltaLink"].as_str().map(str::to_owned);
            assert!(
                next.is_some() != delta.is_some(),
                "exactly one link: {}",
                page.body
            );
            pages.push(page.values());
            match (next, delta) {
                (Some(next), None) => {
                    assert!(next.contains(next_has), "{next}");
                    url = next;
                }
                (None, Some(delta)) => {
                    assert!(delta.contains(delta_has), "{delta}");
                    return (pages, delta);
                }
                _ => unreachable!(),
            }
            assert!(pages.len() < 1000, "a round that never ends");
        }
    }
}

/// POSTs `form` to the token endpoint `token_url`.
///
/// # Panics
/// When the request fails.
pub async fn post_token(http: &reqwest::Client, token_url: &str, form: &[(&str, &str)]) -> Answer {
    let response = http
        .post(token_url)
        .form(form)
        .send()
        .await
        .expect("a request to the token endpoint");
    Answer::read(response).await
}

/// A `refresh_token` grant at `token_url`, the client's id and secret in the form.
pub async fn refresh(
    http: &reqwest::Client,
    token_url: &str,
    refresh_token: &str,
    client_id: &str,
    client_secret: &str,
) -> Answer {
    post_token(
        http,
        token_url,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
            ("client_secret", client_secret),
        ],
    )
    .await
}

/// GETs `url` with `access_token` `count` times at once, each on its own task, and
/// waits until `gate` holds them all (the gate must already hold what `url` matches);
/// the tasks end with the statuses once the gate is released.
///
/// # Panics
/// A task panics when its request fails.
pub async fn send_held(
    http: &reqwest::Client,
    gate: &ResponseGate,
    url: &str,
    access_token: &str,
    count: usize,
) -> Vec<JoinHandle<u16>> {
    let mut held = Vec::new();
    for _ in 0..count {
        let request = http.get(url).bearer_auth(access_token);
        held.push(tokio::spawn(async move {
            request
                .send()
                .await
                .expect("a request to the fake")
                .status()
                .as_u16()
        }));
    }
    while gate.held() < count {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    held
}

/// Starts `fake` standalone, holding `items` items to sync.
///
/// # Panics
/// When it does not start.
pub async fn start_standalone(fake: &dyn Fake, items: usize) -> Box<dyn RunningFake> {
    tributary_sdk::http::install_crypto_provider();
    fake.start(FakeOptions {
        items,
        ..FakeOptions::default()
    })
    .await
    .expect("the standalone fake starts")
}

/// What [`check_standalone_link`] read and did.
#[derive(Debug, Clone)]
pub struct CheckedLink {
    /// The link as it was first read.
    pub link: FakeLink,
    /// Its `baseUrl` setting: the Graph root.
    pub base_url: String,
    /// The token endpoint's answer to a refresh with the link's credentials.
    pub refreshed: Value,
}

/// Checks the link of a running standalone Graph fake: `baseUrl` is a Graph root
/// (`…/v1.0`), `tokenUrl` the `common` token endpoint, the link's credentials refresh
/// there, and the link then carries the rotated refresh token.
///
/// # Panics
/// When one of those does not hold.
pub async fn check_standalone_link(running: &dyn RunningFake) -> CheckedLink {
    let link = running.link();
    let setting = |name: &str| {
        link.settings[name]
            .as_str()
            .unwrap_or_else(|| panic!("the {name} setting"))
            .to_owned()
    };
    let credential = |name: &str| {
        link.credentials
            .get(name)
            .unwrap_or_else(|| panic!("the {name} credential"))
    };
    let base_url = setting("baseUrl");
    assert!(base_url.ends_with("/v1.0"));
    let token_url = setting("tokenUrl");
    assert!(token_url.ends_with("/common/oauth2/v2.0/token"));
    let refreshed = refresh(
        &http_client(),
        &token_url,
        credential("refreshToken"),
        credential("clientId"),
        credential("clientSecret"),
    )
    .await
    .body;
    let rotated = refreshed["refresh_token"]
        .as_str()
        .expect("a rotated refresh token");
    assert_eq!(
        running.link().credentials.get("refreshToken"),
        Some(rotated)
    );
    CheckedLink {
        link,
        base_url,
        refreshed,
    }
}

/// The `id` of every item.
///
/// # Panics
/// When an item has no string `id`.
pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().expect("an item with an id").to_owned())
        .collect()
}

/// The items of every page, in order.
pub fn flat(pages: &[Vec<Value>]) -> Vec<Value> {
    pages.iter().flatten().cloned().collect()
}
