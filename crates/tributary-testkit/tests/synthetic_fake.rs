//! The synthetic source through the SDK's generic fake interface (what
//! `tributary fake synthetic` starts when the test doubles are registered).

use std::time::Duration;

use tributary_sdk::http::HttpClient;
use tributary_sdk::{Fake as _, FakeOptions};

#[tokio::test]
async fn starts_links_counts_and_adds_items() {
    let fake = tributary_testkit::synthetic::fake()
        .start(FakeOptions {
            items: 12,
            seed: 3,
            ..FakeOptions::default()
        })
        .await
        .expect("the fake starts");
    let truth = fake.truth();
    assert_eq!(truth.synced.len(), 12);
    assert_eq!(truth.left_out, 0);
    assert_eq!(fake.describe(), "synthetic source serving 12 items");

    let link = fake.link();
    assert_eq!(
        link.settings["baseUrl"].as_str(),
        Some(link.base_url.as_str())
    );
    let token = link.credentials.get("token").expect("a token").to_owned();
    let http = HttpClient::new().expect("client");
    let request = http
        .get(format!("{}/items", link.base_url))
        .bearer_auth(&token);
    let response = http.send(request).await.expect("the token is accepted");
    assert_eq!(response.status.as_u16(), 200);
    assert_eq!(fake.request_counts().get("list").copied(), Some(1));

    let added = fake.add_item().expect("an item");
    assert!(fake.truth().synced.contains(&added));
    fake.stop().await.expect("stops");
}

#[tokio::test]
async fn delivers_items_on_its_period() {
    let fake = tributary_testkit::synthetic::fake()
        .start(FakeOptions {
            items: 1,
            deliver_every: Some(Duration::from_millis(20)),
            ..FakeOptions::default()
        })
        .await
        .expect("the fake starts");
    // Bounded wait for two deliveries (no assertion on how long they take).
    for _ in 0..2000 {
        if fake.truth().synced.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(fake.truth().synced.len() >= 3, "fewer than 2 deliveries");
    fake.stop().await.expect("stops");
}
