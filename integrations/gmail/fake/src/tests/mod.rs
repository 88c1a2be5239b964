//! End-to-end tests of the fake over loopback HTTP, and the discovery-schema check.

mod api;
mod faults;
mod generated;
mod history;
mod oauth;
mod paging;
mod schema;
mod standalone;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::{FakeGmail, GmailConfig};

/// A running fake and a client holding a valid access token.
pub(super) struct Setup {
    pub(super) fake: FakeGmail,
    pub(super) http: reqwest::Client,
    pub(super) token: String,
}

/// A response: status, headers and the body as JSON (`Null` when it is not JSON).
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) text: String,
    pub(super) json: Value,
}

pub(super) fn http_client() -> reqwest::Client {
    tributary_sdk::http::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

pub(super) async fn setup(messages: usize) -> Setup {
    setup_with(GmailConfig {
        messages,
        newest_message_ms: Some(1_760_000_000_000),
        ..GmailConfig::default()
    })
    .await
}

pub(super) async fn setup_with(config: GmailConfig) -> Setup {
    let fake = FakeGmail::start(config).await.expect("fake gmail starts");
    let token = fake.issue_access_token();
    Setup {
        fake,
        http: http_client(),
        token,
    }
}

pub(super) async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

impl Setup {
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{}", self.fake.base_url(), path.trim_start_matches('/'))
    }

    pub(super) fn api(&self, path: &str) -> String {
        self.url(&format!("gmail/v1/users/me/{path}"))
    }

    pub(super) async fn get(&self, path: &str) -> Reply {
        let response = self
            .http
            .get(self.api(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request is sent");
        reply(response).await
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> Reply {
        let response = self
            .http
            .post(self.api(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request is sent");
        reply(response).await
    }

    pub(super) async fn delete(&self, path: &str) -> Reply {
        let response = self
            .http
            .delete(self.api(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request is sent");
        reply(response).await
    }

    /// Every id `messages.list` returns for `query`, following page tokens.
    pub(super) async fn list_all(&self, query: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("messages?{query}");
            if let Some(token) = &token {
                path.push_str(&format!("&pageToken={token}"));
            }
            let page = self.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.text);
            for message in page.json["messages"].as_array().into_iter().flatten() {
                ids.push(message["id"].as_str().unwrap_or_default().to_owned());
            }
            match page.json["nextPageToken"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => return ids,
            }
        }
    }
}

/// Asserts Google's error body shape and returns the first `errors[].reason`.
pub(super) fn assert_google_error(reply: &Reply, code: u16, status: &str) -> String {
    assert_eq!(reply.status.as_u16(), code, "{}", reply.text);
    let error = &reply.json["error"];
    assert_eq!(error["code"], code, "{}", reply.text);
    assert_eq!(error["status"], status, "{}", reply.text);
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    let first = &error["errors"][0];
    assert!(first["message"].is_string() && first["domain"].is_string());
    first["reason"].as_str().unwrap_or_default().to_owned()
}

pub(super) const SIMPLE: &str = "From: Ann <ann@example.com>\r\n\
To: tester@example.com\r\n\
Subject: Hello there\r\n\
Message-ID: <hello-1@example.com>\r\n\
Date: Wed, 2 Oct 2024 09:00:00 +0000\r\n\
Content-Type: text/plain; charset=UTF-8\r\n\
\r\n\
Just saying hello.\r\n";

pub(super) fn reply_to_simple(n: u32) -> String {
    format!(
        "From: Bob <bob@example.com>\r\n\
To: tester@example.com\r\n\
Subject: Re: Hello there\r\n\
Message-ID: <hello-reply-{n}@example.com>\r\n\
In-Reply-To: <hello-1@example.com>\r\n\
References: <hello-1@example.com>\r\n\
Date: Wed, 2 Oct 2024 10:00:00 +0000\r\n\
\r\n\
Hello back {n}.\r\n"
    )
}
