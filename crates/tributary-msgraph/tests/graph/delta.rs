//! Delta rounds of a mail folder against the Outlook fake, one page per call.

use std::collections::BTreeSet;

use serde::Deserialize;
use tributary_msgraph::{DeltaItem, DeltaPage, GraphClient, Prefer, RemovedReason, RoundProgress};

use crate::support::{mail_account, outlook};

#[derive(Debug, Clone, Deserialize)]
struct Message {
    id: String,
    #[serde(default)]
    subject: String,
}

fn initial(client: &GraphClient) -> String {
    client
        .url(
            &["me", "mailFolders", "inbox", "messages", "delta"],
            &[("$select", "subject")],
        )
        .to_string()
}

/// Reads a whole round page by page, as tasks would: every link taken from the page
/// before. The pages and the delta link.
async fn round(
    client: &mut GraphClient,
    start: &str,
    size: u32,
) -> (Vec<DeltaPage<Message>>, String) {
    let mut pages = Vec::new();
    let mut link = start.to_owned();
    loop {
        let page: DeltaPage<Message> = client
            .delta_page(&link, Prefer::page_size(size))
            .await
            .expect("a delta page");
        let progress = page.progress.clone();
        pages.push(page);
        match progress {
            RoundProgress::Continues { next_link } => link = next_link,
            RoundProgress::Ended { delta_link } => return (pages, delta_link),
        }
        assert!(pages.len() < 100, "the round does not end");
    }
}

fn ids(page: &DeltaPage<Message>) -> Vec<String> {
    page.items
        .iter()
        .map(|item| item.id(|m| &m.id).to_owned())
        .collect()
}

#[tokio::test]
async fn a_round_is_read_one_page_per_call_up_to_the_delta_link() {
    let fake = outlook(17).await;
    let graph = fake.handle().graph().clone();
    let (linked, _) = mail_account(&fake);
    let mut client = linked.client.with_immutable_ids();
    let start = initial(&client);
    let (pages, delta_link) = round(&mut client, &start, 7).await;
    // Pages of the size asked for (the fake's default is 10), one request each, and
    // only the last one ends the round.
    let sizes: Vec<usize> = pages.iter().map(|p| p.items.len()).collect();
    assert_eq!(sizes, [7, 7, 3]);
    assert_eq!(graph.counters().calls("message.delta"), 3);
    let ended: Vec<bool> = pages.iter().map(DeltaPage::ends_round).collect();
    assert_eq!(ended, [false, false, true]);
    assert!(
        pages[..2]
            .iter()
            .all(|p| p.next_link().is_some() && p.delta_link().is_none())
    );
    assert!(delta_link.contains("deltatoken"), "{delta_link}");
    // Every message once, by immutable id on every page (the preference is per request).
    let seen: BTreeSet<String> = pages.iter().flat_map(ids).collect();
    let truth: BTreeSet<String> = fake.handle().messages().into_keys().collect();
    assert_eq!(seen, truth);
    assert!(pages.iter().flat_map(|p| &p.items).all(|item| matches!(
        item,
        DeltaItem::Item(m) if !m.subject.is_empty()
    )));

    // The next round: what changed since, removals typed by reason.
    let mut messages = fake.handle().messages().into_values();
    let moved = messages.next().unwrap();
    let purged = messages.next().unwrap();
    let edited = messages.next().unwrap();
    fake.handle().delete_message(&moved.immutable_id).unwrap();
    fake.handle().purge_message(&purged.immutable_id).unwrap();
    fake.handle()
        .set_subject(&edited.immutable_id, "edited")
        .unwrap();
    let (pages, next_delta) = round(&mut client, &delta_link, 50).await;
    assert_eq!(pages.len(), 1);
    assert_ne!(next_delta, delta_link);
    let mut changes: Vec<(String, String)> = pages[0]
        .items
        .iter()
        .map(|item| match item {
            DeltaItem::Item(m) => (m.id.clone(), m.subject.clone()),
            DeltaItem::Removed { id, reason } => (id.clone(), format!("{reason:?}")),
        })
        .collect();
    changes.sort();
    let mut expected = vec![
        (
            moved.immutable_id.clone(),
            format!("{:?}", RemovedReason::Changed),
        ),
        (
            purged.immutable_id.clone(),
            format!("{:?}", RemovedReason::Deleted),
        ),
        (edited.immutable_id.clone(), "edited".to_owned()),
    ];
    expected.sort();
    assert_eq!(changes, expected);
    // A round with nothing new still ends with a delta link.
    let (pages, _) = round(&mut client, &next_delta, 50).await;
    assert!(pages.len() == 1 && pages[0].items.is_empty());
}

#[tokio::test]
async fn without_immutable_ids_the_round_answers_default_ids() {
    let fake = outlook(3).await;
    let (linked, _) = mail_account(&fake);
    let mut client = linked.client;
    let start = initial(&client);
    let (pages, _) = round(&mut client, &start, 50).await;
    let seen: BTreeSet<String> = pages.iter().flat_map(ids).collect();
    let mutable: BTreeSet<String> = fake
        .handle()
        .messages()
        .into_values()
        .map(|m| m.id)
        .collect();
    assert_eq!(seen, mutable);
}

#[tokio::test]
async fn a_replayed_item_counts_once_in_its_latest_state() {
    let fake = outlook(4).await;
    fake.handle().replay_next_delta_pages(1);
    let (linked, _) = mail_account(&fake);
    let mut client = linked.client.with_immutable_ids();
    let start = initial(&client);
    let page: DeltaPage<Message> = client
        .delta_page(&start, Prefer::page_size(50))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 5, "one replay");
    let latest = page.latest_by_id(|m| &m.id);
    assert_eq!(latest.len(), 4);
}
