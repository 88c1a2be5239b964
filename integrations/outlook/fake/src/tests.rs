//! The mail fake over real HTTP: folders, messages, attachments, delta rounds, ids,
//! 410 resyncs, throttling and errors.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet};
use std::ops::Deref;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tributary_msgraph_fake::testing::{
    TestClient, check_standalone_link, flat, ids, refresh, send_held, start_standalone,
};

use crate::{
    Deleted, FakeOutlook, FlagStatus, Grant, MailboxConfig, NewAttachment, NewMessage,
    OutlookConfig, Recipient, RemovedReason, ThrottleConfig,
};

struct Setup {
    fake: FakeOutlook,
    client: TestClient,
    grant: Grant,
}

/// A setup is first of all a client of its mailbox's Graph root: `s.get(…)`, `s.http`.
impl Deref for Setup {
    type Target = TestClient;

    fn deref(&self) -> &TestClient {
        &self.client
    }
}

const IMMUTABLE: (&str, &str) = ("Prefer", "IdType=\"ImmutableId\"");

/// The inbox's delta function.
const INBOX_DELTA: &str = "/me/mailFolders/inbox/messages/delta";

fn config(folders: usize, messages: usize) -> OutlookConfig {
    OutlookConfig {
        mailbox: MailboxConfig {
            folders,
            messages,
            attachment_rate: 0.3,
            seed: 7,
            ..MailboxConfig::default()
        },
        ..OutlookConfig::default()
    }
}

async fn setup(config: OutlookConfig) -> Setup {
    let fake = FakeOutlook::start(config).await.unwrap();
    let grant = fake.handle().mail_grant();
    let client = TestClient::new(fake.base_url(), &grant.access_token);
    Setup {
        fake,
        client,
        grant,
    }
}

fn sender() -> Recipient {
    Recipient::new("Alex Wilber", "alexw@contoso.example")
}

impl Setup {
    /// A whole delta round from `start`: its pages and the delta link.
    async fn round(&self, start: &str, headers: &[(&str, &str)]) -> (Vec<Vec<Value>>, String) {
        self.delta_round(start, headers, "$skiptoken=", "$deltatoken=")
            .await
    }

    /// A whole delta round of a folder's messages (`?…` options in `query`).
    async fn folder_round(
        &self,
        folder: &str,
        query: &str,
        headers: &[(&str, &str)],
    ) -> (Vec<Vec<Value>>, String) {
        let start = format!("/me/mailFolders/{folder}/messages/delta{query}");
        self.round(&start, headers).await
    }

    fn ids_in(&self, well_known: &str) -> BTreeSet<(String, String)> {
        let folder = self.fake.handle().folder_id(well_known).unwrap();
        self.fake
            .handle()
            .messages()
            .into_values()
            .filter(|m| m.folder_id == folder)
            .map(|m| (m.id, m.immutable_id))
            .collect()
    }
}

/// The names of an object's members.
fn keys_of(object: &Value) -> BTreeSet<&str> {
    object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn removed(items: &[Value]) -> Vec<(String, String)> {
    items
        .iter()
        .filter(|v| v.get("@removed").is_some())
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_owned(),
                v["@removed"]["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn listed(items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .filter(|v| v.get("@removed").is_none())
        .cloned()
        .collect()
}

#[tokio::test]
async fn folders_are_listed_paged_and_named() {
    let s = setup(config(12, 0)).await;
    let truth = s.fake.handle().folders();
    let root = truth[0].id.clone();
    let top_level: BTreeSet<String> = truth
        .iter()
        .filter(|f| f.parent_id.as_deref() == Some(root.as_str()))
        .map(|f| f.id.clone())
        .collect();
    assert!(
        top_level.len() > 7,
        "well-known folders and some user folders"
    );

    let mut seen = BTreeSet::new();
    let mut url = "/me/mailFolders?$top=4".to_owned();
    let mut pages = 0;
    loop {
        let page = s.ok(&url, &[]).await;
        pages += 1;
        for folder in page.values() {
            for field in [
                "id",
                "displayName",
                "parentFolderId",
                "childFolderCount",
                "unreadItemCount",
                "totalItemCount",
                "isHidden",
            ] {
                assert!(folder.get(field).is_some(), "{field} in {folder}");
            }
            assert_eq!(folder["parentFolderId"], root.as_str());
            assert!(seen.insert(folder["id"].as_str().unwrap().to_owned()));
        }
        match page.body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, top_level);
    assert_eq!(pages, top_level.len().div_ceil(4));

    // Well-known names stand for ids.
    let inbox = s.ok("/me/mailFolders/Inbox", &[]).await;
    assert_eq!(inbox.body["displayName"], "Inbox");
    assert_eq!(
        inbox.body["id"],
        s.fake.handle().folder_id("inbox").unwrap().as_str()
    );
    // Child folders.
    let parent = truth
        .iter()
        .find(|f| {
            truth
                .iter()
                .any(|c| c.parent_id.as_deref() == Some(f.id.as_str()))
                && f.id != root
        })
        .unwrap();
    let children: BTreeSet<String> = truth
        .iter()
        .filter(|c| c.parent_id.as_deref() == Some(parent.id.as_str()))
        .map(|c| c.id.clone())
        .collect();
    let listed = s
        .ok(
            &format!("/me/mailFolders/{}/childFolders?$top=1000", parent.id),
            &[],
        )
        .await;
    assert_eq!(
        ids(&listed.values()).into_iter().collect::<BTreeSet<_>>(),
        children
    );
    let selected = s.ok("/me/mailFolders?$select=displayName", &[]).await;
    let first = &selected.values()[0];
    assert!(first.get("displayName").is_some() && first.get("totalItemCount").is_none());
}

#[tokio::test]
async fn messages_are_paged_newest_first_and_selected() {
    let s = setup(config(2, 60)).await;
    let inbox = s.ids_in("inbox");
    assert!(inbox.len() > 10, "{}", inbox.len());
    let mut got = Vec::new();
    let mut url =
        "/me/mailFolders/inbox/messages?$top=7&$select=subject,receivedDateTime".to_owned();
    loop {
        let page = s.ok(&url, &[]).await;
        let values = page.values();
        assert!(values.len() <= 7);
        for m in &values {
            let keys = keys_of(m);
            assert_eq!(
                keys,
                BTreeSet::from(["@odata.etag", "id", "subject", "receivedDateTime"]),
                "{m}"
            );
        }
        got.extend(values);
        match page.body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(
                    next.contains("%24skip=") || next.contains("$skip="),
                    "{next}"
                );
                url = next.to_owned();
            }
            None => break,
        }
    }
    let got_ids: BTreeSet<String> = ids(&got).into_iter().collect();
    assert_eq!(got_ids, inbox.iter().map(|(id, _)| id.clone()).collect());
    let times: Vec<&str> = got
        .iter()
        .map(|m| m["receivedDateTime"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    // Default page size, counts, ascending order and bad options.
    let page = s
        .ok("/me/mailFolders/inbox/messages?$count=true", &[])
        .await;
    assert_eq!(page.values().len(), 10);
    assert_eq!(page.body["@odata.count"], inbox.len());
    let asc = s
        .ok(
            "/me/mailFolders/inbox/messages?$orderby=receivedDateTime asc&$top=2",
            &[],
        )
        .await;
    assert!(
        asc.values()[0]["receivedDateTime"].as_str()
            <= asc.values()[1]["receivedDateTime"].as_str()
    );
    let bad = s.get("/me/mailFolders/inbox/messages?$select=nope").await;
    assert_eq!((bad.status, bad.code()), (400, "RequestBroker--ParseUri"));
    let bad = s.get("/me/mailFolders/inbox/messages?$top=many").await;
    assert_eq!(bad.status, 400);
    let capped = s.ok("/me/messages?$top=5000", &[]).await;
    assert_eq!(capped.values().len(), 60);
}

#[tokio::test]
async fn a_message_has_graphs_fields_and_bodies() {
    let s = setup(config(0, 0)).await;
    let mut new = NewMessage::new("Hello <there>", sender(), "First line\r\n\r\nSecond & last");
    new.to = vec![Recipient::new("Test User", "tester@example.com")];
    new.cc = vec![Recipient::new("Lee Gu", "leeg@contoso.example")];
    new.categories = vec!["Blue category".to_owned()];
    new.flag = FlagStatus::Flagged;
    let ids = s.fake.handle().deliver(new).unwrap();
    let message = s.ok(&format!("/me/messages/{}", ids.id), &[]).await;
    let m = &message.body;
    for field in [
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "receivedDateTime",
        "sentDateTime",
        "hasAttachments",
        "internetMessageId",
        "subject",
        "bodyPreview",
        "importance",
        "parentFolderId",
        "conversationId",
        "isRead",
        "isDraft",
        "webLink",
        "body",
        "sender",
        "from",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "flag",
    ] {
        assert!(m.get(field).is_some(), "{field} in {m}");
    }
    assert!(m.get("uniqueBody").is_none(), "returned only on $select");
    assert_eq!(m["id"], ids.id.as_str());
    assert_eq!(m["subject"], "Hello <there>");
    assert_eq!(
        m["from"]["emailAddress"]["address"],
        "alexw@contoso.example"
    );
    assert_eq!(m["toRecipients"][0]["emailAddress"]["name"], "Test User");
    assert_eq!(
        m["ccRecipients"][0]["emailAddress"]["address"],
        "leeg@contoso.example"
    );
    assert_eq!(m["flag"]["flagStatus"], "flagged");
    assert_eq!(m["categories"][0], "Blue category");
    assert_eq!(m["isRead"], false);
    assert_eq!(m["hasAttachments"], false);
    assert_eq!(
        m["parentFolderId"],
        s.fake.handle().folder_id("inbox").unwrap().as_str()
    );
    assert_eq!(m["body"]["contentType"], "html");
    assert!(
        m["body"]["content"]
            .as_str()
            .unwrap()
            .contains("Second &amp; last")
    );
    assert_eq!(m["bodyPreview"], "First line Second & last");
    assert!(m["receivedDateTime"].as_str().unwrap().ends_with('Z'));
    assert!(message.header("preference-applied").is_none());

    let text = s
        .ok(
            &format!("/me/messages/{}", ids.id),
            &[("Prefer", "outlook.body-content-type=\"text\"")],
        )
        .await;
    assert_eq!(text.body["body"]["contentType"], "text");
    assert_eq!(
        text.body["body"]["content"],
        "First line\r\n\r\nSecond & last"
    );
    assert_eq!(
        text.header("preference-applied"),
        Some("outlook.body-content-type=\"text\"")
    );

    let selected = s
        .ok(
            &format!("/me/messages/{}?$select=subject,uniqueBody", ids.id),
            &[],
        )
        .await;
    let keys = keys_of(&selected.body);
    assert_eq!(
        keys,
        BTreeSet::from([
            "@odata.context",
            "@odata.etag",
            "id",
            "subject",
            "uniqueBody"
        ])
    );

    // Every change is a new version.
    let before = s.fake.handle().message(&ids.id).unwrap();
    s.fake.handle().set_read(&ids.id, true).unwrap();
    let after = s.fake.handle().message(&ids.id).unwrap();
    assert_ne!(before.change_key, after.change_key);
    assert!(after.is_read);
}

#[tokio::test]
async fn attachments_and_mime_are_served() {
    let s = setup(config(0, 0)).await;
    let mut new = NewMessage::new("Files", sender(), "See attached");
    new.attachments = vec![
        NewAttachment {
            name: "q3.csv".to_owned(),
            content_type: "text/csv".to_owned(),
            is_inline: false,
            content_id: None,
            content: b"a,b\n1,2\n".to_vec(),
        },
        NewAttachment {
            name: "logo.png".to_owned(),
            content_type: "image/png".to_owned(),
            is_inline: true,
            content_id: Some("logo@x".to_owned()),
            content: vec![0x89, b'P', b'N', b'G', 0, 1, 2],
        },
    ];
    let ids = s.fake.handle().deliver(new).unwrap();
    let message = s.ok(&format!("/me/messages/{}", ids.id), &[]).await;
    assert_eq!(message.body["hasAttachments"], true);
    let list = s
        .ok(&format!("/me/messages/{}/attachments", ids.id), &[])
        .await;
    let attachments = list.values();
    assert_eq!(attachments.len(), 2);
    let csv = &attachments[0];
    assert_eq!(csv["@odata.type"], "#microsoft.graph.fileAttachment");
    assert_eq!(csv["name"], "q3.csv");
    assert_eq!(csv["contentType"], "text/csv");
    assert_eq!(csv["size"], 8);
    assert_eq!(csv["isInline"], false);
    assert_eq!(
        STANDARD
            .decode(csv["contentBytes"].as_str().unwrap())
            .unwrap(),
        b"a,b\n1,2\n"
    );
    assert_eq!(attachments[1]["isInline"], true);
    assert_eq!(attachments[1]["contentId"], "logo@x");
    let one = s
        .ok(
            &format!(
                "/me/messages/{}/attachments/{}?$select=name,size",
                ids.id,
                csv["id"].as_str().unwrap()
            ),
            &[],
        )
        .await;
    assert_eq!(one.body["name"], "q3.csv");
    assert!(one.body.get("contentBytes").is_none());
    let expanded = s
        .ok(&format!("/me/messages/{}?$expand=attachments", ids.id), &[])
        .await;
    assert_eq!(expanded.body["attachments"].as_array().unwrap().len(), 2);
    let mime = s.ok(&format!("/me/messages/{}/$value", ids.id), &[]).await;
    let text = mime.body.as_str().unwrap();
    assert!(text.contains("Subject: Files\r\n"));
    assert!(text.contains("Content-Disposition: attachment; filename=\"q3.csv\""));
    assert!(text.contains("Content-ID: <logo@x>"));
    // Only inline attachments: hasAttachments is false.
    let mut inline_only = NewMessage::new("Inline", sender(), "x");
    inline_only.attachments = vec![NewAttachment {
        name: "a.png".to_owned(),
        content_type: "image/png".to_owned(),
        is_inline: true,
        content_id: Some("a@x".to_owned()),
        content: vec![1],
    }];
    let inline = s.fake.handle().deliver(inline_only).unwrap();
    let m = s.ok(&format!("/me/messages/{}", inline.id), &[]).await;
    assert_eq!(m.body["hasAttachments"], false);
}

#[tokio::test]
async fn the_first_delta_round_pages_by_maxpagesize() {
    let s = setup(config(0, 0)).await;
    for i in 0..23 {
        s.fake
            .handle()
            .deliver(NewMessage::new(&format!("m{i}"), sender(), "x"))
            .unwrap();
    }
    let prefer = [("Prefer", "odata.maxpagesize=5")];
    let first = s.ok(INBOX_DELTA, &prefer).await;
    assert_eq!(
        first.header("preference-applied"),
        Some("odata.maxpagesize=5")
    );
    assert_eq!(first.values()[0]["@odata.type"], "#microsoft.graph.message");
    let (pages, delta) = s.folder_round("inbox", "", &prefer).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![5, 5, 5, 5, 3]);
    let got: Vec<String> = ids(&flat(&pages));
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique.len(), 23, "no item twice");
    assert_eq!(
        unique,
        s.ids_in("inbox").into_iter().map(|(id, _)| id).collect()
    );
    assert!(delta.starts_with(&s.fake.base_url()));

    // Without the header, pages of 10, as Graph's default.
    let (pages, _) = s.folder_round("inbox", "", &[]).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 10, 3]
    );
    // The other spellings of the function.
    for spelling in [
        "delta()",
        "microsoft.graph.delta()",
        "microsoft.graph.delta",
    ] {
        let (pages, _) = s
            .round(
                &format!("/me/mailFolders/inbox/messages/{spelling}"),
                &[("Prefer", "odata.maxpagesize=50")],
            )
            .await;
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![23],
            "{spelling}"
        );
    }
    // Nothing changed: the next round is one empty page.
    let (pages, again) = s.round(&delta, &prefer).await;
    assert_eq!(pages, vec![Vec::<Value>::new()]);
    assert!(again.contains("$deltatoken="));
}

#[tokio::test]
async fn select_is_encoded_into_the_links() {
    let s = setup(config(0, 12)).await;
    let prefer = [("Prefer", "odata.maxpagesize=4")];
    let (pages, delta) = s
        .folder_round("inbox", "?$select=subject,isRead", &prefer)
        .await;
    assert!(pages.len() >= 2);
    for item in flat(&pages) {
        let keys = keys_of(&item);
        assert_eq!(
            keys,
            BTreeSet::from(["@odata.etag", "@odata.type", "id", "subject", "isRead"]),
            "{item}"
        );
    }
    let any = s.ids_in("inbox").into_iter().next().unwrap().0;
    s.fake.handle().set_read(&any, false).unwrap();
    s.fake.handle().set_subject(&any, "Renamed").unwrap();
    let (pages, _) = s.round(&delta, &prefer).await;
    let items = flat(&pages);
    assert_eq!(items.len(), 1, "coalesced: {items:?}");
    assert_eq!(items[0]["subject"], "Renamed");
    assert_eq!(items[0]["isRead"], false);
    assert!(items[0].get("body").is_none());
}

#[tokio::test]
async fn later_rounds_report_creates_updates_deletes_and_moves() {
    let s = setup(config(0, 0)).await;
    let handle = s.fake.handle();
    let a = handle.deliver(NewMessage::new("a", sender(), "x")).unwrap();
    let b = handle.deliver(NewMessage::new("b", sender(), "x")).unwrap();
    let c = handle.deliver(NewMessage::new("c", sender(), "x")).unwrap();
    let d = handle.deliver(NewMessage::new("d", sender(), "x")).unwrap();
    let (_, inbox_delta) = s.folder_round("inbox", "", &[]).await;
    let (archive_pages, archive_delta) = s.folder_round("archive", "", &[]).await;
    assert!(flat(&archive_pages).is_empty());
    let (_, deleted_delta) = s.folder_round("deleteditems", "", &[]).await;

    let e = handle.deliver(NewMessage::new("e", sender(), "x")).unwrap();
    handle.set_read(&a.id, true).unwrap();
    handle.set_flag(&a.id, FlagStatus::Complete).unwrap();
    handle.set_categories(&a.id, &["Red category"]).unwrap();
    let moved = handle.move_message(&b.id, "archive").unwrap();
    assert_ne!(moved.id, b.id, "a move changes the default id");
    assert_eq!(moved.immutable_id, b.immutable_id);
    let trashed = match handle.delete_message(&c.id).unwrap() {
        Deleted::MovedToDeletedItems(ids) => ids,
        Deleted::Purged => panic!("c was in the inbox"),
    };
    handle.purge_message(&d.id).unwrap();

    let (pages, inbox_delta) = s.round(&inbox_delta, &[]).await;
    let items = flat(&pages);
    let listed_ids: Vec<String> = ids(&listed(&items));
    assert_eq!(
        listed_ids.iter().filter(|i| **i == a.id).count(),
        1,
        "coalesced"
    );
    assert!(listed_ids.contains(&e.id));
    assert_eq!(listed_ids.len(), 2, "{items:?}");
    let a_now = listed(&items)
        .into_iter()
        .find(|m| m["id"] == a.id.as_str())
        .unwrap();
    assert_eq!(a_now["isRead"], true);
    assert_eq!(a_now["flag"]["flagStatus"], "complete");
    assert_eq!(a_now["categories"][0], "Red category");
    let gone: BTreeSet<(String, String)> = removed(&items).into_iter().collect();
    assert_eq!(
        gone,
        BTreeSet::from([
            (b.id.clone(), "changed".to_owned()),
            (c.id.clone(), "changed".to_owned()),
            (d.id.clone(), "deleted".to_owned()),
        ])
    );
    let shape = items.iter().find(|v| v["id"] == d.id.as_str()).unwrap();
    assert_eq!(shape["@odata.type"], "#microsoft.graph.message");
    assert_eq!(shape.as_object().unwrap().len(), 3, "{shape}");

    // The destination folders list the moved messages, with their new ids.
    let (pages, _) = s.round(&archive_delta, &[]).await;
    assert_eq!(ids(&flat(&pages)), vec![moved.id.clone()]);
    let (pages, deleted_delta) = s.round(&deleted_delta, &[]).await;
    assert_eq!(ids(&flat(&pages)), vec![trashed.id.clone()]);

    // Deleting from Deleted Items is for good.
    assert_eq!(handle.delete_message(&trashed.id).unwrap(), Deleted::Purged);
    let (pages, _) = s.round(&deleted_delta, &[]).await;
    assert_eq!(
        removed(&flat(&pages)),
        vec![(trashed.id.clone(), "deleted".to_owned())]
    );
    assert!(handle.message(&trashed.immutable_id).is_none());
    // An old default id is gone.
    let old = s.get(&format!("/me/messages/{}", b.id)).await;
    assert_eq!((old.status, old.code()), (404, "ErrorItemNotFound"));

    // Nothing new since: an empty round.
    let (pages, _) = s.round(&inbox_delta, &[]).await;
    assert!(flat(&pages).is_empty());
}

#[tokio::test]
async fn immutable_ids_survive_moves_and_default_ids_do_not() {
    let s = setup(config(0, 0)).await;
    let handle = s.fake.handle();
    let m = handle
        .deliver(NewMessage::new("keep", sender(), "x"))
        .unwrap();
    let prefer = [IMMUTABLE];
    let (pages, inbox_delta) = s.folder_round("inbox", "", &prefer).await;
    assert_eq!(ids(&flat(&pages)), vec![m.immutable_id.clone()]);
    let (_, archive_delta) = s.folder_round("archive", "", &prefer).await;
    let first = s.ok("/me/mailFolders/inbox/messages", &prefer).await;
    assert_eq!(
        first.header("preference-applied"),
        Some("IdType=\"ImmutableId\"")
    );
    assert_eq!(first.values()[0]["id"], m.immutable_id.as_str());

    let moved = handle.move_message(&m.immutable_id, "archive").unwrap();
    let (pages, _) = s.round(&inbox_delta, &prefer).await;
    assert_eq!(
        removed(&flat(&pages)),
        vec![(m.immutable_id.clone(), "changed".to_owned())]
    );
    let (pages, _) = s.round(&archive_delta, &prefer).await;
    assert_eq!(
        ids(&flat(&pages)),
        vec![m.immutable_id.clone()],
        "the same id after the move"
    );

    // The same links without the header answer default ids, which changed.
    let (pages, _) = s.round(&inbox_delta, &[]).await;
    assert_eq!(
        removed(&flat(&pages)),
        vec![(m.id.clone(), "changed".to_owned())]
    );
    let (pages, _) = s.round(&archive_delta, &[]).await;
    assert_eq!(ids(&flat(&pages)), vec![moved.id.clone()]);
    assert_ne!(moved.id, m.id);
    // Both kinds find the message.
    let by_immutable = s.ok(&format!("/me/messages/{}", m.immutable_id), &[]).await;
    assert_eq!(by_immutable.body["id"], moved.id.as_str());
}

#[tokio::test]
async fn a_message_that_left_and_came_back_shows_both_ways_with_default_ids() {
    let s = setup(config(0, 0)).await;
    let handle = s.fake.handle();
    let m = handle
        .deliver(NewMessage::new("roundtrip", sender(), "x"))
        .unwrap();
    let (_, delta) = s.folder_round("inbox", "", &[]).await;
    handle.move_message(&m.id, "archive").unwrap();
    let back = handle.move_message(&m.immutable_id, "inbox").unwrap();
    let (pages, _) = s.round(&delta, &[]).await;
    let items = flat(&pages);
    assert_eq!(removed(&items), vec![(m.id.clone(), "changed".to_owned())]);
    assert_eq!(ids(&listed(&items)), vec![back.id.clone()]);
    let (pages, _) = s.round(&delta, &[IMMUTABLE]).await;
    let items = flat(&pages);
    assert!(removed(&items).is_empty(), "{items:?}");
    assert_eq!(ids(&listed(&items)), vec![m.immutable_id.clone()]);
}

#[tokio::test]
async fn forgotten_tokens_answer_410_with_a_fresh_location() {
    let s = setup(config(0, 15)).await;
    let prefer = [("Prefer", "odata.maxpagesize=4")];
    let (_, delta) = s.folder_round("inbox", "?$select=subject", &prefer).await;
    let (_, archive_delta) = s.folder_round("archive", "", &prefer).await;
    let first = s.ok(INBOX_DELTA, &prefer).await;
    let skip = first.body["@odata.nextLink"].as_str().unwrap().to_owned();
    assert!(s.fake.handle().forget_delta_tokens("inbox"));

    let gone = s.get(&delta).await;
    assert_eq!(gone.status, 410);
    assert_eq!(gone.code(), "syncStateNotFound");
    assert!(gone.body["error"]["innerError"]["request-id"].is_string());
    let location = gone.header("location").unwrap().to_owned();
    let inbox_id = s.fake.handle().folder_id("inbox").unwrap();
    assert!(location.starts_with(&format!(
        "{}/me/mailFolders/{inbox_id}/messages/delta",
        s.fake.base_url()
    )));
    assert!(!location.contains("token"), "{location}");
    let skipped = s.get(&skip).await;
    assert_eq!(skipped.status, 410);
    // The location starts a new full round, with the round's options.
    let (pages, _) = s.round(&location, &prefer).await;
    let items = flat(&pages);
    assert_eq!(items.len(), s.ids_in("inbox").len());
    assert!(
        items
            .iter()
            .all(|m| m.get("subject").is_some() && m.get("body").is_none())
    );
    // Another folder's tokens still work.
    assert_eq!(s.get(&archive_delta).await.status, 200);
    s.fake.handle().forget_all_delta_tokens();
    assert_eq!(s.get(&archive_delta).await.status, 410);
    // A token that is not one is a 400.
    let bad = s.get(&format!("{INBOX_DELTA}?$deltatoken=garbage")).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn resync_code_and_move_out_reason_are_configurable() {
    let s = setup(OutlookConfig {
        resync_code: "resyncRequired",
        move_out_reason: RemovedReason::Deleted,
        ..config(0, 0)
    })
    .await;
    let m = s
        .fake
        .handle()
        .deliver(NewMessage::new("x", sender(), "x"))
        .unwrap();
    let (_, delta) = s.folder_round("inbox", "", &[]).await;
    s.fake.handle().move_message(&m.id, "archive").unwrap();
    let (pages, _) = s.round(&delta, &[]).await;
    assert_eq!(
        removed(&flat(&pages)),
        vec![(m.id.clone(), "deleted".to_owned())]
    );
    s.fake.handle().forget_delta_tokens("inbox");
    assert_eq!(s.get(&delta).await.code(), "resyncRequired");
}

#[tokio::test]
async fn replays_send_an_item_twice() {
    let s = setup(config(0, 8)).await;
    s.fake.handle().replay_next_delta_pages(1);
    let (pages, _) = s
        .folder_round("inbox", "", &[("Prefer", "odata.maxpagesize=100")])
        .await;
    let got = ids(&flat(&pages));
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(got.len(), unique.len() + 1, "one replay: {got:?}");
    s.fake.handle().set_delta_replay_rate(1.0);
    let (pages, _) = s.folder_round("inbox", "", &[]).await;
    let got = ids(&flat(&pages));
    assert_eq!(got.len(), 2 * s.ids_in("inbox").len());
}

#[tokio::test]
async fn change_type_filters_later_rounds() {
    let s = setup(config(0, 0)).await;
    let handle = s.fake.handle();
    let old = handle
        .deliver(NewMessage::new("old", sender(), "x"))
        .unwrap();
    let gone = handle
        .deliver(NewMessage::new("gone", sender(), "x"))
        .unwrap();
    let (pages, created_delta) = s.folder_round("inbox", "?changeType=created", &[]).await;
    assert_eq!(flat(&pages).len(), 2, "the first round lists everything");
    let (_, updated_delta) = s.folder_round("inbox", "?changeType=updated", &[]).await;
    let (_, deleted_delta) = s.folder_round("inbox", "?changeType=deleted", &[]).await;
    let new = handle
        .deliver(NewMessage::new("new", sender(), "x"))
        .unwrap();
    handle.set_read(&old.id, true).unwrap();
    handle.purge_message(&gone.id).unwrap();
    let (pages, _) = s.round(&created_delta, &[]).await;
    assert_eq!(ids(&flat(&pages)), vec![new.id.clone()]);
    let (pages, _) = s.round(&updated_delta, &[]).await;
    assert_eq!(ids(&flat(&pages)), vec![old.id.clone()]);
    let (pages, _) = s.round(&deleted_delta, &[]).await;
    assert_eq!(
        removed(&flat(&pages)),
        vec![(gone.id.clone(), "deleted".to_owned())]
    );
    let bad = s.get(&format!("{INBOX_DELTA}?changeType=sideways")).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn changes_during_a_round_are_not_lost() {
    let s = setup(config(0, 30)).await;
    let handle = s.fake.handle();
    let prefer = [("Prefer", "odata.maxpagesize=7")];
    let first = s.ok(INBOX_DELTA, &prefer).await;
    let mut seen: Vec<Value> = first.values();
    // Mail arrives and changes while the first round is paged.
    let late = handle
        .deliver(NewMessage::new("late", sender(), "x"))
        .unwrap();
    let (rest, delta) = s
        .round(first.body["@odata.nextLink"].as_str().unwrap(), &prefer)
        .await;
    seen.extend(flat(&rest));
    let (pages, _) = s.round(&delta, &prefer).await;
    seen.extend(flat(&pages));
    let all: BTreeSet<String> = ids(&seen).into_iter().collect();
    let truth: BTreeSet<String> = s.ids_in("inbox").into_iter().map(|(id, _)| id).collect();
    assert_eq!(all, truth);
    assert!(all.contains(&late.id));
}

#[tokio::test]
async fn errors_come_in_graphs_envelope() {
    let s = setup(config(0, 3)).await;
    let missing = s.anonymous("/me/mailFolders", &[]).await;
    assert_eq!(missing.status, 401);
    let body = &missing.body;
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert!(body["error"]["innerError"]["request-id"].is_string());

    let unknown = s.get("/me/messages/AAMkADnotamessageAAA=").await;
    assert_eq!((unknown.status, unknown.code()), (404, "ErrorItemNotFound"));
    assert!(unknown.body["error"]["message"].is_string());
    assert!(unknown.body["error"]["innerError"]["date"].is_string());
    assert_eq!(
        unknown.body["error"]["innerError"]["request-id"].as_str(),
        unknown.header("request-id")
    );
    let malformed = s.get("/me/messages/nonsense").await;
    assert_eq!(
        (malformed.status, malformed.code()),
        (400, "ErrorInvalidIdMalformed")
    );
    let folder = s.get("/me/mailFolders/nosuchfolder/messages").await;
    assert_eq!(folder.status, 400);
    let filter = s.get("/me/messages?$filter=isRead eq false").await;
    assert_eq!(filter.status, 400);

    // Another user's token has no mailbox here; a token without mail scopes is denied.
    let graph = s.fake.handle().graph();
    let other = graph.add_user("Other", "other@example.com");
    let other_grant = graph.mint_grant_for(&other.id, &["Mail.Read"]).unwrap();
    let response = s.get_as("/me/mailFolders", &other_grant.access_token).await;
    assert_eq!(response.status, 404);
    let body = &response.body;
    assert_eq!(body["error"]["code"], "MailboxNotEnabledForRESTAPI");
    let narrow = graph.mint_grant(&["User.Read"]);
    let response = s.get_as("/me/mailFolders", &narrow.access_token).await;
    assert_eq!(response.status, 403);

    // An expired token is 401 again, and a refresh gives a working one.
    graph.expire_access_tokens();
    let expired = s.get("/me/mailFolders").await;
    assert_eq!(
        (expired.status, expired.code()),
        (401, "InvalidAuthenticationToken")
    );
    let refresh_token = s.grant.refresh_token.as_deref().unwrap();
    let (id, secret) = (graph.client_id(), graph.client_secret());
    let refreshed = refresh(&s.http, &s.fake.token_url(), refresh_token, &id, &secret).await;
    let token = refreshed.body["access_token"].as_str().unwrap();
    let again = s.get_as("/me/mailFolders", token).await;
    assert_eq!(again.status, 200);
    assert!(!graph.is_live_refresh_token(s.grant.refresh_token.as_deref().unwrap()));
}

#[tokio::test]
async fn the_mailbox_is_throttled_on_rate_and_concurrency() {
    let mut cfg = config(0, 5);
    cfg.graph.throttle = ThrottleConfig {
        requests_per_window: 6,
        time_scale: 60.0,
        ..ThrottleConfig::default()
    };
    let s = setup(cfg).await;
    let graph = s.fake.handle().graph();
    let owner = s.fake.handle().owner().id;
    for _ in 0..6 {
        assert_eq!(s.get("/me/mailFolders/inbox/messages").await.status, 200);
    }
    let throttled = s.get("/me/mailFolders/inbox/messages").await;
    assert_eq!(
        (throttled.status, throttled.code()),
        (429, "ApplicationThrottled")
    );
    let retry: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    // 10 minutes of throttle clock are 10 real seconds at this time scale.
    assert!((1..=10).contains(&retry), "{retry}");
    assert_eq!(graph.counters().unauthorized, 0);
    // Once the window has passed, the mailbox is admitted again.
    graph.advance(Duration::from_secs(600));
    assert_eq!(s.get("/me/mailFolders/inbox/messages").await.status, 200);
    assert_eq!(graph.mailbox_counters(&owner).rate_limited, 1);

    graph.set_throttle(ThrottleConfig::default());
    let gate = graph.gate();
    gate.hold("/delta");
    let delta = s.url(INBOX_DELTA);
    let held = send_held(&s.http, &gate, &delta, &s.grant.access_token, 4).await;
    let fifth = s.get("/me/messages").await;
    assert_eq!((fifth.status, fifth.code()), (429, "ApplicationThrottled"));
    assert!(fifth.header("retry-after").is_some());
    gate.release();
    for task in held {
        assert_eq!(task.await.unwrap(), 200);
    }
    let counters = graph.mailbox_counters(&owner);
    assert_eq!(counters.peak_in_flight, 4);
    assert_eq!(counters.peak_attempted, 5);
    assert_eq!(counters.concurrency_limited, 1);
    assert!(graph.counters().calls("message.delta") >= 4);
    assert!(graph.counters().calls("message.list") >= 8);
}

#[tokio::test]
async fn faults_hit_the_mail_routes() {
    let s = setup(config(0, 3)).await;
    let graph = s.fake.handle().graph();
    graph.fail_next(
        "/messages/delta",
        1,
        crate::Fault::Unavailable {
            retry_after_secs: Some(2),
        },
    );
    let faulted = s.get(INBOX_DELTA).await;
    assert_eq!(
        (faulted.status, faulted.code()),
        (503, "serviceNotAvailable")
    );
    assert_eq!(faulted.header("retry-after"), Some("2"));
    assert_eq!(s.get(INBOX_DELTA).await.status, 200);
}

#[tokio::test]
async fn generated_mailboxes_are_deterministic() {
    let a = crate::OutlookHandle::new(config(9, 300));
    let b = crate::OutlookHandle::new(config(9, 300));
    let subjects = |h: &crate::OutlookHandle| {
        h.messages()
            .into_values()
            .map(|m| (m.immutable_id, m.subject, m.folder_path))
            .collect::<Vec<_>>()
    };
    assert_eq!(subjects(&a), subjects(&b));
    assert_eq!(a.message_count(), 300);
    assert_eq!(a.folders().len(), 1 + 7 + 9);
    let truth = a.messages();
    assert!(truth.values().any(|m| m.has_attachments));
    assert!(
        truth.values().any(|m| m.folder_well_known.is_none()),
        "some mail in user folders"
    );
    assert!(
        truth
            .values()
            .all(|m| !matches!(m.folder_well_known, Some("deleteditems" | "junkemail")))
    );
    let nested = a
        .folders()
        .into_iter()
        .any(|f| f.path.matches('/').count() >= 2);
    assert!(nested, "some child folders");
}

#[tokio::test]
async fn the_standalone_fake_links_and_grows() {
    let running = start_standalone(&crate::fake(), 40).await;
    assert_eq!(running.truth().synced.len(), 40);
    let checked = check_standalone_link(running.as_ref()).await;
    let access = checked.link.credentials.get("accessToken").unwrap();
    let graph = TestClient::new(&checked.base_url, access);
    assert_eq!(graph.get("/me/mailFolders").await.status, 200);
    let added = running.add_item().unwrap();
    assert!(running.truth().synced.contains(&added));
    assert_eq!(running.truth().synced.len(), 41);
    assert!(running.request_counts().contains_key("mailFolder.list"));
    assert!(running.describe().contains("41 messages"));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn mail_and_other_graph_routes_share_one_server_and_one_throttle() {
    use axum::Extension;
    use axum::routing::get;
    use tributary_msgraph_fake::{Caller, GraphConfig, GraphHandle, GraphRoutes, GraphUrls, odata};
    use tributary_testkit::serving::LoopbackServer;

    async fn drive(Extension(caller): Extension<Caller>) -> axum::response::Response {
        odata::json_response(
            axum::http::StatusCode::OK,
            &serde_json::json!({"owner": caller.user.id}),
        )
    }

    tributary_sdk::http::install_crypto_provider();
    let graph = GraphHandle::new(GraphConfig::default());
    let mail = crate::OutlookHandle::with_graph(graph.clone(), config(0, 3));
    let drive_routes = GraphRoutes::new().route("drive.get", "/v1.0/me/drive", get(drive));
    let server = LoopbackServer::start(graph.router(mail.graph_routes().merge(drive_routes))).await;
    let urls = GraphUrls::new(server.addr());
    let root = urls.base_url();
    let http = reqwest::Client::new();

    // One token endpoint for both APIs.
    let grant = graph.mint_grant(&["Mail.Read", "Files.Read"]);
    let refresh_token = grant.refresh_token.as_deref().unwrap();
    let (id, secret) = (graph.client_id(), graph.client_secret());
    let refreshed = refresh(&http, &urls.token_url(), refresh_token, &id, &secret).await;
    let token = refreshed.body["access_token"].as_str().unwrap().to_owned();
    let status = |path: &str| {
        let request = http.get(format!("{root}{path}")).bearer_auth(&token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/me/drive").await, 200);
    assert_eq!(status("/me/mailFolders").await, 200);

    // One concurrency limit for the mailbox, whichever API the requests go to.
    let gate = graph.gate();
    gate.hold("/me/drive");
    let held = send_held(&http, &gate, &format!("{root}/me/drive"), &token, 4).await;
    assert_eq!(status("/me/mailFolders/inbox/messages").await, 429);
    gate.release();
    for task in held {
        assert_eq!(task.await.unwrap(), 200);
    }
    let counters = graph.counters();
    assert_eq!(counters.calls("drive.get"), 5);
    assert_eq!(counters.calls("message.list"), 1);
    assert_eq!(graph.peak_concurrency(&graph.user().id), 5);
}
