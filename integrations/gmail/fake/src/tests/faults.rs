//! Fault injection (deterministic with a seed) and call counters.

use std::time::Duration;

use reqwest::StatusCode;

use super::super::{Fault, FaultConfig, GmailConfig, GmailMethod, UserQuota};
use super::{assert_google_error, setup, setup_with};

fn faulty(seed: u64) -> GmailConfig {
    GmailConfig {
        seed,
        messages: 3,
        newest_message_ms: Some(1_760_000_000_000),
        faults: FaultConfig {
            server_error_rate: 0.2,
            rate_limit_rate: 0.2,
            user_rate_limit_rate: 0.1,
            retry_after: Duration::from_secs(7),
            ..FaultConfig::default()
        },
        ..GmailConfig::default()
    }
}

async fn statuses(seed: u64) -> Vec<u16> {
    let s = setup_with(faulty(seed)).await;
    let mut statuses = Vec::new();
    for _ in 0..60 {
        statuses.push(s.get("messages").await.status.as_u16());
    }
    statuses
}

#[tokio::test]
async fn drawn_faults_repeat_with_the_seed() {
    let first = statuses(11).await;
    let second = statuses(11).await;
    assert_eq!(first, second);
    let other = statuses(12).await;
    assert_ne!(first, other);
    // Every kind shows up at these rates, and so do successes.
    for code in [200, 429, 403] {
        assert!(first.contains(&code), "{code} missing from {first:?}");
    }
    assert!(first.iter().any(|c| *c == 500 || *c == 503));
}

#[tokio::test]
async fn fault_bodies_are_googles() {
    let s = setup(3).await;
    s.fake.fail_next(1, Fault::RateLimited);
    s.fake.fail_next(1, Fault::UserRateLimited);
    s.fake.fail_next(1, Fault::ServerError);
    s.fake.fail_next(1, Fault::Unavailable);
    s.fake.set_faults(FaultConfig {
        retry_after: Duration::from_secs(7),
        ..FaultConfig::default()
    });

    let limited = s.get("messages").await;
    assert_eq!(
        assert_google_error(&limited, 429, "RESOURCE_EXHAUSTED"),
        "rateLimitExceeded"
    );
    assert_eq!(limited.json["error"]["errors"][0]["domain"], "usageLimits");
    assert_eq!(
        limited
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    let user_limited = s.get("messages").await;
    assert_eq!(
        assert_google_error(&user_limited, 403, "PERMISSION_DENIED"),
        "userRateLimitExceeded"
    );
    let backend = s.get("messages").await;
    assert_eq!(
        assert_google_error(&backend, 500, "INTERNAL"),
        "backendError"
    );
    let unavailable = s.get("messages").await;
    assert_eq!(
        assert_google_error(&unavailable, 503, "UNAVAILABLE"),
        "backendError"
    );
    assert_eq!(s.get("messages").await.status, StatusCode::OK);
    let counters = s.fake.counters();
    assert_eq!(counters.faults, 4);
    assert_eq!(counters.calls(GmailMethod::MessagesList), 5);
}

#[tokio::test]
async fn truncated_bodies_are_not_json() {
    let s = setup(5).await;
    s.fake.fail_next(1, Fault::TruncatedBody);
    let cut = s.get("messages").await;
    assert_eq!(cut.status, StatusCode::OK);
    assert!(!cut.text.is_empty());
    assert!(serde_json::from_str::<serde_json::Value>(&cut.text).is_err());
    let whole = s.get("messages").await;
    assert!(whole.json.is_object());
}

#[tokio::test(start_paused = true)]
async fn latency_delays_every_request() {
    let s = setup(1).await;
    s.fake.set_faults(FaultConfig {
        latency: Duration::from_secs(30),
        ..FaultConfig::default()
    });
    let started = tokio::time::Instant::now();
    let reply = s.get("profile").await;
    assert_eq!(reply.status, StatusCode::OK);
    // Tokio's paused clock jumps over the sleep: no real waiting.
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test]
async fn counters_count_calls_per_method() {
    let s = setup(10).await;
    s.get("profile").await;
    s.get("labels").await;
    let ids = s.list_all("maxResults=4").await;
    for id in ids.iter().take(2) {
        s.get(&format!("messages/{id}")).await;
    }
    let start = s.fake.history_id();
    s.get(&format!("history?startHistoryId={start}")).await;
    assert_eq!(s.fake.calls(GmailMethod::GetProfile), 1);
    assert_eq!(s.fake.calls(GmailMethod::LabelsList), 1);
    assert_eq!(
        s.fake.calls(GmailMethod::MessagesList),
        ids.len().div_ceil(4) as u64
    );
    assert_eq!(s.fake.calls(GmailMethod::MessagesGet), 2);
    assert_eq!(s.fake.calls(GmailMethod::HistoryList), 1);
    assert_eq!(s.fake.counters().faults, 0);
    s.fake.reset_counters();
    assert_eq!(s.fake.counters().total_calls(), 0);
    assert_eq!(GmailMethod::MessagesList.name(), "users.messages.list");
}

#[tokio::test]
async fn the_user_quota_refuses_what_overflows_its_window_as_gmail_does() {
    let s = setup(3).await;
    s.fake.set_quota(Some(UserQuota {
        capacity: 12,
        window: Duration::from_secs(3600),
    }));
    // labels.list 1, messages.list 5, history.list 2: 8 units; one more list is 13.
    assert_eq!(s.get("labels").await.status, StatusCode::OK);
    assert_eq!(s.get("messages").await.status, StatusCode::OK);
    let start = s.fake.history_id();
    let history = format!("history?startHistoryId={start}");
    assert_eq!(s.get(&history).await.status, StatusCode::OK);
    let refused = s.get("messages").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let reason = assert_google_error(&refused, 403, "PERMISSION_DENIED");
    assert_eq!(reason, "userRateLimitExceeded");
    assert_eq!(refused.json["error"]["errors"][0]["domain"], "usageLimits");
    // What still fits goes through: 4 units are left.
    assert_eq!(s.get(&history).await.status, StatusCode::OK);
    assert_eq!(s.get(&history).await.status, StatusCode::OK);
    assert_eq!(s.get("labels").await.status, StatusCode::FORBIDDEN);
    let counters = s.fake.counters();
    assert_eq!(counters.quota_exceeded, 2);
    assert_eq!(counters.quota_units, 12);
    assert_eq!(counters.quota_peak, 12);
    s.fake.set_quota(None);
    assert_eq!(s.get("messages").await.status, StatusCode::OK);
}
