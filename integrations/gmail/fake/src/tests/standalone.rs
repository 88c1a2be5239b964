//! The fake through the SDK's generic interface, as `tributary fake gmail` and the
//! demo start it.

use std::time::Duration;

use tributary_sdk::{Fake as _, FakeOptions};

use super::{http_client, reply};
use crate::standalone::synced;

#[tokio::test]
async fn starts_with_the_items_to_sync_and_links_with_what_it_tells() {
    let fake = crate::fake()
        .start(FakeOptions {
            items: 300,
            seed: 9,
            ..FakeOptions::default()
        })
        .await
        .expect("the fake starts");
    let truth = fake.truth();
    // The generator files some mail in spam and trash: topped up to 300 outside them.
    assert_eq!(truth.synced.len(), 300);
    assert!(truth.left_out > 0, "no message in spam or trash");
    assert_eq!(fake.item_name(), "message");
    assert_eq!(
        fake.describe(),
        "Gmail serving 300 messages for tester@example.com"
    );

    let link = fake.link();
    assert_eq!(
        link.settings["baseUrl"].as_str(),
        Some(link.base_url.as_str())
    );
    let token_url = link.settings["tokenUrl"].as_str().expect("a token URL");
    assert!(link.endpoints.iter().any(|(_, url)| url == token_url));
    // The credentials it tells are the ones its token endpoint accepts.
    let grant = [
        ("grant_type", "refresh_token"),
        ("client_id", link.credentials.get("clientId").expect("id")),
        (
            "client_secret",
            link.credentials.get("clientSecret").expect("secret"),
        ),
        (
            "refresh_token",
            link.credentials.get("refreshToken").expect("token"),
        ),
    ];
    let answer = reply(
        http_client()
            .post(token_url)
            .form(&grant)
            .send()
            .await
            .expect("token request"),
    )
    .await;
    assert!(answer.status.is_success(), "{}", answer.text);
    let access = answer.json["access_token"].as_str().expect("access token");
    let list = http_client()
        .get(format!("{}gmail/v1/users/me/messages", link.base_url))
        .bearer_auth(access)
        .send()
        .await
        .expect("list");
    assert!(list.status().is_success());
    assert_eq!(
        fake.request_counts().get("users.messages.list").copied(),
        Some(1)
    );

    let added = fake.add_item().expect("a new message");
    let after = fake.truth();
    assert!(after.synced.contains(&added));
    assert_eq!(after.synced.len(), 301);
    fake.stop().await.expect("stops");
}

#[tokio::test]
async fn delivers_synced_mail_on_its_period() {
    let fake = crate::fake()
        .start(FakeOptions {
            items: 5,
            deliver_every: Some(Duration::from_millis(20)),
            ..FakeOptions::default()
        })
        .await
        .expect("the fake starts");
    // Bounded wait for three deliveries (no assertion on how long they take).
    for _ in 0..2000 {
        if fake.truth().synced.len() >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(fake.truth().synced.len() >= 8, "fewer than 3 deliveries");
    fake.stop().await.expect("stops");
}

#[test]
fn spam_and_trash_are_not_synced() {
    let message = |labels: &[&str]| crate::MessageTruth {
        thread_id: "t".into(),
        label_ids: labels.iter().map(|l| (*l).to_owned()).collect(),
        subject: String::new(),
        internal_date: 0,
        history_id: 1,
    };
    assert!(synced(&message(&["INBOX", "UNREAD"])));
    assert!(!synced(&message(&["SPAM"])));
    assert!(!synced(&message(&["INBOX", "TRASH"])));
}
