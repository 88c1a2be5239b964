//! The drive fake over real HTTP: the drive and its items, children, paths, delta
//! rounds, 410 resyncs, content redirects and download URLs, errors, and a server
//! shared with the mail fake.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::time::Duration;

use serde_json::Value;
use tributary_msgraph_fake::testing::{
    TestClient, check_standalone_link, flat, ids, refresh, start_standalone,
};

use crate::{
    DeltaLinkStyle, DeltaOrder, DownloadHost, DriveContentConfig, DriveType, FakeOneDrive, Fault,
    NewFile, OneDriveConfig, OneDriveHandle, ResyncKind, ResyncReport,
};

struct Setup {
    fake: FakeOneDrive,
    client: TestClient,
}

/// A setup is first of all a client of its drive's Graph root: `s.get(…)`, `s.http`.
impl Deref for Setup {
    type Target = TestClient;

    fn deref(&self) -> &TestClient {
        &self.client
    }
}

fn config(drive_type: DriveType, folders: usize, files: usize) -> OneDriveConfig {
    OneDriveConfig {
        drive_type,
        content: DriveContentConfig {
            folders,
            files,
            seed: 7,
            ..DriveContentConfig::default()
        },
        ..OneDriveConfig::default()
    }
}

async fn setup(config: OneDriveConfig) -> Setup {
    let fake = FakeOneDrive::start(config).await.unwrap();
    let grant = fake.handle().files_grant();
    let client = TestClient::new(fake.base_url(), &grant.access_token);
    Setup { fake, client }
}

impl Setup {
    fn handle(&self) -> &OneDriveHandle {
        self.fake.handle()
    }

    /// A whole delta round from `start`: its pages and the delta link.
    async fn round(&self, start: &str, headers: &[(&str, &str)]) -> (Vec<Vec<Value>>, String) {
        let link = "/root/delta?token=";
        self.delta_round(start, headers, link, link).await
    }

    /// The download URL `/content` redirects to.
    async fn download_url(&self, id: &str) -> String {
        let answer = self.get(&format!("/me/drive/items/{id}/content")).await;
        assert_eq!(answer.status, 302, "{}", answer.body);
        answer.header("location").unwrap().to_owned()
    }
}

fn by_id(items: &[Value]) -> BTreeMap<String, Value> {
    items
        .iter()
        .map(|v| (v["id"].as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

/// The id of a generated file that is a direct child of a folder other than the root.
fn nested_file(handle: &OneDriveHandle) -> String {
    let root = handle.root_id();
    handle
        .items()
        .into_values()
        .find(|i| !i.is_folder && i.parent_id.as_deref() != Some(root.as_str()))
        .unwrap()
        .id
}

#[tokio::test]
async fn the_drive_and_its_items_have_graphs_fields() {
    let s = setup(config(DriveType::Business, 4, 20)).await;
    let h = s.handle();
    let drive = s.ok("/me/drive", &[]).await.body;
    assert_eq!(drive["id"], h.drive_id());
    assert!(h.drive_id().starts_with("b!"));
    assert_eq!(drive["driveType"], "business");
    assert_eq!(drive["owner"]["user"]["id"], h.owner().id);
    let used = drive["quota"]["used"].as_u64().unwrap();
    let total_size: u64 = h
        .items()
        .values()
        .filter(|i| !i.is_folder)
        .map(|i| i.size)
        .sum();
    assert_eq!(used, total_size);
    assert_eq!(drive["quota"]["state"], "normal");

    let root = s.ok("/me/drive/root", &[]).await.body;
    assert_eq!(root["id"], h.root_id());
    assert_eq!(root["root"], serde_json::json!({}));
    assert_eq!(root["size"].as_u64(), Some(total_size));
    assert!(root["folder"]["childCount"].as_u64().unwrap() > 0);
    assert!(root.get("cTag").is_none(), "business folders have no cTag");
    assert!(root["parentReference"].get("id").is_none());
    assert_eq!(
        s.ok("/me/drive/items/root", &[]).await.body["id"],
        root["id"]
    );

    // A file two levels down: every field, its path percent-encoded.
    let folder = h.create_folder("Team Docs", None).unwrap();
    let inner = h.create_folder("Q1 #plans", Some(&folder)).unwrap();
    let id = h
        .create_file(NewFile::new("notes.md", "# Notes\n\nhello").in_folder(&inner))
        .unwrap();
    let truth = h.item(&id).unwrap();
    let item = s.ok(&format!("/me/drive/items/{id}"), &[]).await.body;
    assert_eq!(item["name"], "notes.md");
    assert_eq!(item["size"], 14);
    assert_eq!(item["eTag"], truth.etag.as_str());
    assert_eq!(item["cTag"], truth.ctag.as_str());
    assert_eq!(item["file"]["mimeType"], "text/markdown");
    assert_eq!(
        item["file"]["hashes"]["quickXorHash"],
        crate::hashes::quick_xor_hash(b"# Notes\n\nhello").as_str()
    );
    assert!(item["file"]["hashes"].get("sha1Hash").is_none());
    assert_eq!(item["parentReference"]["id"], inner.as_str());
    assert_eq!(item["parentReference"]["driveId"], h.drive_id().as_str());
    assert_eq!(item["parentReference"]["driveType"], "business");
    assert_eq!(
        item["parentReference"]["path"],
        "/drive/root:/Team%20Docs/Q1%20%23plans"
    );
    assert_eq!(item["createdBy"]["user"]["displayName"], "Test User");
    assert_eq!(item["lastModifiedBy"]["user"]["id"], h.owner().id.as_str());
    assert!(item["fileSystemInfo"]["lastModifiedDateTime"].is_string());
    assert_eq!(item["lastModifiedDateTime"], truth.last_modified.as_str());
    assert!(
        item["webUrl"]
            .as_str()
            .unwrap()
            .ends_with("/Team%20Docs/Q1%20%23plans/notes.md")
    );
    assert!(item["@microsoft.graph.downloadUrl"].as_str().is_some());
    let folder_json = s.ok(&format!("/me/drive/items/{inner}"), &[]).await.body;
    assert_eq!(folder_json["folder"]["childCount"], 1);
    assert_eq!(folder_json["size"], 14);
    assert_eq!(
        folder_json["parentReference"]["path"],
        "/drive/root:/Team%20Docs"
    );

    // The /drives/{id} form, with its own path prefix.
    let via_drive = s
        .ok(&format!("/drives/{}/items/{id}", h.drive_id()), &[])
        .await
        .body;
    assert_eq!(via_drive["id"], id.as_str());
    assert_eq!(
        via_drive["parentReference"]["path"],
        format!("/drives/{}/root:/Team%20Docs/Q1%20%23plans", h.drive_id()).as_str()
    );

    // $select keeps what it names (and id).
    let selected = s
        .ok(&format!("/me/drive/items/{id}?$select=name,size"), &[])
        .await
        .body;
    assert_eq!(selected["name"], "notes.md");
    assert!(selected.get("eTag").is_none());
    assert!(selected.get("@microsoft.graph.downloadUrl").is_none());
    assert_eq!(selected["id"], id.as_str());
    let with_url = s
        .ok(
            &format!("/me/drive/items/{id}?select=id,@microsoft.graph.downloadUrl"),
            &[],
        )
        .await
        .body;
    assert!(with_url["@microsoft.graph.downloadUrl"].is_string());
    assert!(with_url.get("name").is_none());
    let bad = s.get(&format!("/me/drive/items/{id}?$select=nope")).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn personal_drives_have_sha1_ids_with_cids_and_folder_ctags() {
    let s = setup(config(DriveType::Personal, 2, 6)).await;
    let h = s.handle();
    assert_eq!(h.drive_id().len(), 16);
    let id = h.create_file(NewFile::new("a.txt", "abc")).unwrap();
    assert!(id.contains('!'), "{id}");
    assert!(id.starts_with(&h.drive_id().to_uppercase()));
    let item = s.ok(&format!("/me/drive/items/{id}"), &[]).await.body;
    assert_eq!(
        item["file"]["hashes"]["sha1Hash"],
        "A9993E364706816ABA3E25717850C26C9CD0D89D"
    );
    assert!(item["file"]["hashes"]["quickXorHash"].is_string());
    let root = s.ok("/me/drive/root", &[]).await.body;
    assert!(root["cTag"].is_string());
    assert_eq!(s.ok("/me/drive", &[]).await.body["driveType"], "personal");
}

#[tokio::test]
async fn children_are_paged_by_name_and_addressed_by_path() {
    let s = setup(config(DriveType::Business, 0, 0)).await;
    let h = s.handle();
    let folder = h.create_folder("Box", None).unwrap();
    let names = [
        "e.txt", "B.txt", "a.txt", "d.txt", "C.txt", "f.txt", "g.txt",
    ];
    for name in names {
        h.create_file(NewFile::new(name, name).in_folder(&folder))
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut url = format!("/me/drive/items/{folder}/children?$top=3&$select=name");
    let mut pages = 0;
    loop {
        let page = s.ok(&url, &[]).await;
        pages += 1;
        for item in page.values() {
            assert!(item.get("size").is_none(), "selected away");
            seen.push(item["name"].as_str().unwrap().to_owned());
        }
        match page.body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.contains("$skiptoken="), "{next}");
                assert!(next.contains("$select=name"), "{next}");
                url = next.to_owned();
                if pages == 1 {
                    // A child added mid-listing, after the position: it is listed.
                    h.create_file(NewFile::new("zz.txt", "z").in_folder(&folder))
                        .unwrap();
                }
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        [
            "a.txt", "B.txt", "C.txt", "d.txt", "e.txt", "f.txt", "g.txt", "zz.txt"
        ]
    );
    let desc = s
        .ok(
            &format!("/me/drive/items/{folder}/children?$orderby=name desc&$top=2"),
            &[],
        )
        .await;
    assert_eq!(
        desc.values()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["zz.txt", "g.txt"]
    );
    assert_eq!(
        s.get(&format!("/me/drive/items/{folder}/children?$orderby=size"))
            .await
            .status,
        400
    );
    let root_children = s.ok("/me/drive/root/children", &[]).await;
    assert_eq!(ids(&root_children.values()), std::slice::from_ref(&folder));

    // Paths: case-insensitive names, `:` ends the path, /children and /content after it.
    let by_path = s.ok("/me/drive/root:/box/D.TXT:", &[]).await.body;
    assert_eq!(by_path["name"], "d.txt");
    let no_colon = s.ok("/me/drive/root:/Box/d.txt", &[]).await.body;
    assert_eq!(no_colon["id"], by_path["id"]);
    let children = s.ok("/me/drive/root:/Box:/children?$top=1", &[]).await;
    assert_eq!(children.values().len(), 1);
    assert!(children.body["@odata.nextLink"].is_string());
    let content = s.get("/me/drive/root:/Box/a.txt:/content").await;
    assert_eq!(content.status, 302);
    let missing = s.get("/me/drive/root:/Box/nope.txt:").await;
    assert_eq!((missing.status, missing.code()), (404, "itemNotFound"));
    let space = h.create_folder("Two words", None).unwrap();
    let found = s.ok("/me/drive/root:/Two%20words:", &[]).await.body;
    assert_eq!(found["id"], space.as_str());
    let drive_form = s
        .ok(&format!("/drives/{}/root:/Box/a.txt:", h.drive_id()), &[])
        .await
        .body;
    assert_eq!(drive_form["name"], "a.txt");
    let counters = h.graph().counters();
    assert!(counters.calls("driveItem.byPath") >= 6);
    assert!(counters.calls("driveItem.children") >= 4);
}

#[tokio::test]
async fn the_first_delta_round_lists_every_item_in_pages() {
    let s = setup(config(DriveType::Business, 12, 90)).await;
    let h = s.handle();
    let (pages, delta) = s
        .round(
            "/me/drive/root/delta",
            &[("Prefer", "odata.maxpagesize=25")],
        )
        .await;
    let all: Vec<Value> = flat(&pages);
    let expected: BTreeSet<String> = h.items().into_keys().collect();
    assert_eq!(all.len(), expected.len(), "each item once");
    assert_eq!(ids(&all).into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(pages.len(), expected.len().div_ceil(25));
    assert!(pages[..pages.len() - 1].iter().all(|p| p.len() == 25));
    assert!(ids(&all).contains(&h.root_id()), "the root too");
    for item in &all {
        assert!(item["parentReference"].get("path").is_none(), "{item}");
        assert!(item.get("cTag").is_none(), "business delta has no cTag");
        assert!(item.get("@microsoft.graph.downloadUrl").is_none());
        assert_eq!(item["@odata.type"], "#microsoft.graph.driveItem");
        if item.get("root").is_none() {
            assert!(item["parentReference"]["id"].is_string(), "{item}");
        }
    }
    // The same item by GET has the path.
    let file = nested_file(h);
    let got = s.ok(&format!("/me/drive/items/{file}"), &[]).await.body;
    assert!(
        got["parentReference"]["path"]
            .as_str()
            .unwrap()
            .starts_with("/drive/root:/")
    );

    // Nothing changed: the delta link gives an empty page and a new delta link.
    let empty = s.ok(&delta, &[]).await;
    assert!(empty.values().is_empty());
    assert!(empty.body["@odata.deltaLink"].is_string());
    assert_eq!(h.counters().delta_requests, pages.len() as u64 + 1);

    // $top on the first request travels in the links; so does $select, which may ask
    // for download URLs.
    let first = s
        .ok(
            "/me/drive/root/delta()?$top=40&$select=name,@microsoft.graph.downloadUrl",
            &[],
        )
        .await;
    assert_eq!(first.values().len(), 40);
    let next = first.body["@odata.nextLink"].as_str().unwrap().to_owned();
    let second = s.ok(&next, &[]).await;
    assert_eq!(second.values().len(), 40);
    let folders = h.folder_ids();
    for item in second.values() {
        assert!(item.get("size").is_none(), "{item}");
        assert!(item.get("name").is_some());
        let is_folder = folders.contains(item["id"].as_str().unwrap());
        assert_eq!(
            item["@microsoft.graph.downloadUrl"].is_string(),
            !is_folder,
            "{item}"
        );
    }
    // Other spellings of the function and of its parameter.
    let token = next.split("token=").nth(1).unwrap().to_owned();
    for spelling in [
        format!("/me/drive/root/delta(token='{token}')"),
        format!("/me/drive/root/microsoft.graph.delta(token='{token}')"),
        format!("/me/drive/root/microsoft.graph.delta()?token={token}"),
        format!("/drives/{}/root/delta?token={token}", h.drive_id()),
    ] {
        let page = s.ok(&spelling, &[]).await;
        assert_eq!(ids(&page.values()), ids(&second.values()), "{spelling}");
    }
    assert_eq!(s.get("/me/drive/root/deltas").await.status, 400);
}

#[tokio::test]
async fn a_shuffled_first_round_can_list_children_before_their_folders() {
    let mut c = config(DriveType::Business, 30, 60);
    c.delta_order = DeltaOrder::Shuffled;
    c.delta_link_style = DeltaLinkStyle::Function;
    let s = setup(c).await;
    let first = s.ok("/me/drive/root/delta", &[]).await;
    assert!(
        first.body["@odata.deltaLink"]
            .as_str()
            .unwrap()
            .contains("/root/delta(token='")
    );
    let listed = ids(&first.values());
    let position: BTreeMap<&str, usize> = listed
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let child_first = first.values().iter().any(|item| {
        item["parentReference"]["id"]
            .as_str()
            .and_then(|parent| position.get(parent))
            .is_some_and(|parent_at| position[item["id"].as_str().unwrap()] < *parent_at)
    });
    assert!(child_first, "some child comes before its folder");
    assert_eq!(listed.len(), s.handle().items().len());
}

#[tokio::test]
async fn later_rounds_show_each_change_once_in_its_latest_state() {
    let s = setup(config(DriveType::Personal, 0, 0)).await;
    let h = s.handle();
    let root = h.root_id();
    let docs = h.create_folder("Docs", None).unwrap();
    let old = h.create_folder("Old", None).unwrap();
    let old_sub = h.create_folder("Sub", Some(&old)).unwrap();
    let old_file = h
        .create_file(NewFile::new("o.txt", "old").in_folder(&old_sub))
        .unwrap();
    let edited = h
        .create_file(NewFile::new("e.txt", "v1").in_folder(&docs))
        .unwrap();
    let renamed = h.create_file(NewFile::new("r.txt", "r")).unwrap();
    let moved = h.create_file(NewFile::new("m.txt", "m")).unwrap();
    let untouched = h.create_file(NewFile::new("u.txt", "u")).unwrap();
    let (_, delta) = s.round("/me/drive/root/delta", &[]).await;
    let before = h.item(&edited).unwrap();

    h.edit_file(&edited, "version two").unwrap();
    h.edit_file(&edited, "version three").unwrap();
    h.rename(&renamed, "first.txt").unwrap();
    h.rename(&renamed, "second.txt").unwrap();
    h.move_item(&moved, &docs).unwrap();
    let deleted = h.delete(&old).unwrap();
    assert_eq!(deleted, [old.clone(), old_sub.clone(), old_file.clone()]);
    let created = h.create_file(NewFile::new("n.json", "{}")).unwrap();

    let (pages, next_delta) = s.round(&delta, &[("Prefer", "odata.maxpagesize=2")]).await;
    let changes = flat(&pages);
    let listed = ids(&changes);
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "each item once: {listed:?}");
    let expected: BTreeSet<String> = [
        &root, &docs, &edited, &renamed, &moved, &old, &old_sub, &old_file, &created,
    ]
    .into_iter()
    .cloned()
    .collect();
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(!listed.contains(&untouched));
    let changes = by_id(&changes);

    let e = &changes[&edited];
    let truth = h.item(&edited).unwrap();
    assert_ne!(before.etag, truth.etag);
    assert_ne!(before.ctag, truth.ctag);
    assert_eq!(e["eTag"], truth.etag.as_str());
    assert_eq!(e["cTag"], truth.ctag.as_str());
    assert_eq!(e["size"], 13);
    assert_eq!(e["lastModifiedDateTime"], truth.last_modified.as_str());
    assert!(truth.last_modified > before.last_modified);
    assert_eq!(
        e["file"]["hashes"]["sha1Hash"],
        crate::hashes::sha1_hex(b"version three").as_str()
    );
    assert_eq!(
        e["file"]["hashes"]["quickXorHash"],
        crate::hashes::quick_xor_hash(b"version three").as_str()
    );
    assert_eq!(changes[&renamed]["name"], "second.txt");
    assert_eq!(changes[&moved]["parentReference"]["id"], docs.as_str());
    assert!(changes[&moved]["parentReference"].get("path").is_none());
    assert!(changes[&created].get("deleted").is_none());
    for gone in [&old, &old_sub, &old_file] {
        let item = &changes[gone];
        assert_eq!(item["deleted"], serde_json::json!({}), "personal: {item}");
        assert!(item.get("cTag").is_none(), "{item}");
        assert!(item.get("size").is_none(), "{item}");
        assert!(item["name"].is_string(), "personal keeps the name: {item}");
    }
    assert!(changes[&old_file]["file"].is_object());
    assert!(changes[&old]["folder"].is_object());
    // The folder comes before what was deleted with it.
    let at = |id: &String| listed.iter().position(|l| l == id).unwrap();
    assert!(at(&old) < at(&old_sub) && at(&old_sub) < at(&old_file));
    assert!(
        changes[&docs]["cTag"].is_string(),
        "personal delta has cTags"
    );
    assert_eq!(changes[&docs]["folder"]["childCount"], 2);

    // Nothing after: empty. A later change: only it and its folders.
    let quiet = s.ok(&next_delta, &[]).await;
    assert!(quiet.values().is_empty());
    h.edit_file(&moved, "mm").unwrap();
    let (pages, _) = s.round(&next_delta, &[]).await;
    let listed: BTreeSet<String> = ids(&flat(&pages)).into_iter().collect();
    assert_eq!(
        listed,
        [&root, &docs, &moved].into_iter().cloned().collect()
    );
    let (pages, _) = s
        .round(&next_delta, &[("deltaExcludeParent", "true")])
        .await;
    assert_eq!(ids(&flat(&pages)), std::slice::from_ref(&moved));
    // A restored folder comes back live, with what was deleted with it.
    h.restore(&old).unwrap();
    let (pages, _) = s.round(&next_delta, &[]).await;
    let back = by_id(&flat(&pages));
    for id in [&old, &old_sub, &old_file] {
        assert!(back[id].get("deleted").is_none(), "{}", back[id]);
    }
}

#[tokio::test]
async fn business_delta_omits_names_of_deleted_items() {
    let s = setup(config(DriveType::Business, 0, 0)).await;
    let h = s.handle();
    let folder = h.create_folder("F", None).unwrap();
    let file = h
        .create_file(NewFile::new("x.bin", vec![0u8, 1, 2, 3]).in_folder(&folder))
        .unwrap();
    let (_, delta) = s.round("/me/drive/root/delta", &[]).await;
    h.delete(&folder).unwrap();
    let (pages, _) = s.round(&delta, &[]).await;
    let changes = by_id(&flat(&pages));
    for id in [&folder, &file] {
        let item = &changes[id];
        assert_eq!(item["deleted"]["state"], "deleted", "{item}");
        assert!(item.get("name").is_none(), "{item}");
        assert!(item.get("cTag").is_none(), "{item}");
        assert!(item["parentReference"]["id"].is_string(), "{item}");
    }
    assert_eq!(changes[&file]["size"], 4);
    assert_eq!(changes[&file]["parentReference"]["id"], folder.as_str());
    assert_eq!(s.get(&format!("/me/drive/items/{file}")).await.status, 404);
}

#[tokio::test]
async fn token_latest_skips_what_exists_and_timestamps_work_on_business() {
    let s = setup(config(DriveType::Business, 5, 30)).await;
    let h = s.handle();
    let latest = s.ok("/me/drive/root/delta?token=latest", &[]).await;
    assert!(latest.values().is_empty());
    assert!(latest.body.get("@odata.nextLink").is_none());
    let delta = latest.body["@odata.deltaLink"].as_str().unwrap().to_owned();
    let mark = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let new = h.create_file(NewFile::new("fresh.txt", "new")).unwrap();
    let (pages, _) = s.round(&delta, &[]).await;
    assert_eq!(
        ids(&flat(&pages)).into_iter().collect::<BTreeSet<_>>(),
        [h.root_id(), new.clone()].into_iter().collect()
    );
    let since = mark.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let (pages, _) = s
        .round(&format!("/me/drive/root/delta?token={since}"), &[])
        .await;
    assert!(ids(&flat(&pages)).contains(&new));
    assert_eq!(flat(&pages).len(), 2);

    let personal = setup(config(DriveType::Personal, 0, 1)).await;
    let refused = personal
        .get(&format!("/me/drive/root/delta?token={since}"))
        .await;
    assert_eq!((refused.status, refused.code()), (400, "invalidRequest"));
}

#[tokio::test]
async fn forgotten_tokens_answer_410_with_a_fresh_location() {
    let s = setup(config(DriveType::Business, 3, 12)).await;
    let h = s.handle();
    let first = s.ok("/me/drive/root/delta?$top=5&$select=name", &[]).await;
    let next = first.body["@odata.nextLink"].as_str().unwrap().to_owned();
    let (_, delta) = s.round(&next, &[]).await;
    h.forget_delta_tokens();
    for stale in [&delta, &next] {
        let gone = s
            .get_with(stale, &[("client-request-id", "my-request-1")])
            .await;
        assert_eq!(gone.status, 410, "{}", gone.body);
        assert_eq!(gone.code(), "resyncRequired");
        let inner = &gone.body["error"]["innerError"];
        assert_eq!(inner["code"], "resyncChangesApplyDifferences");
        assert_eq!(inner["client-request-id"], "my-request-1");
        assert_eq!(inner["request-id"], gone.header("request-id").unwrap());
        let location = gone.header("location").unwrap().to_owned();
        assert!(
            location.contains("/me/drive/root/delta?token="),
            "{location}"
        );
        // The Location starts a whole first round, with the first request's options.
        let (pages, _) = s.round(&location, &[]).await;
        let all = flat(&pages);
        assert_eq!(all.len(), h.items().len());
        assert_eq!(pages[0].len(), 5);
        assert!(all.iter().all(|v| v.get("size").is_none()));
    }
    assert_eq!(h.counters().resyncs, 2);
    let malformed = s.get("/me/drive/root/delta?token=bm90LW91cnM").await;
    assert_eq!(
        (malformed.status, malformed.code()),
        (400, "invalidRequest")
    );
    let twice = s.get("/me/drive/root/delta(token='a')?token=b").await;
    assert_eq!(twice.status, 400);

    let mut c = config(DriveType::Business, 0, 2);
    c.resync = ResyncKind::UploadDifferences;
    c.resync_report = ResyncReport::TopLevel;
    let other = setup(c).await;
    let (_, delta) = other.round("/me/drive/root/delta", &[]).await;
    other.handle().forget_delta_tokens();
    let gone = other.get(&delta).await;
    assert_eq!(
        (gone.status, gone.code()),
        (410, "resyncChangesUploadDifferences")
    );
    assert!(gone.body["error"]["innerError"].get("code").is_none());
    // Tokens of another drive are malformed here.
    let token = delta.split("token=").nth(1).unwrap();
    let foreign = s.get(&format!("/me/drive/root/delta?token={token}")).await;
    assert_eq!(foreign.status, 400);
}

#[tokio::test]
async fn changes_during_a_first_round_are_in_the_next_one() {
    let s = setup(config(DriveType::Business, 4, 40)).await;
    let h = s.handle();
    let prefer = [("Prefer", "odata.maxpagesize=10")];
    let first = s.ok("/me/drive/root/delta", &prefer).await;
    let listed_first: BTreeSet<String> = ids(&first.values()).into_iter().collect();
    // Delete an item not listed yet, create one, edit one already listed.
    let later = h
        .file_ids()
        .into_iter()
        .rev()
        .find(|id| !listed_first.contains(id))
        .unwrap();
    h.delete(&later).unwrap();
    let created = h.create_file(NewFile::new("during.txt", "x")).unwrap();
    let early = first
        .values()
        .into_iter()
        .find(|v| v.get("file").is_some())
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .unwrap();
    h.edit_file(&early, "edited during the round").unwrap();
    let (rest, delta) = s
        .round(first.body["@odata.nextLink"].as_str().unwrap(), &prefer)
        .await;
    let rest_ids: BTreeSet<String> = ids(&flat(&rest)).into_iter().collect();
    assert!(!rest_ids.contains(&later), "deleted before it was reached");
    let (pages, _) = s.round(&delta, &[]).await;
    let next = by_id(&flat(&pages));
    assert!(next[&later]["deleted"].is_object());
    assert!(next[&created].get("deleted").is_none());
    assert_eq!(next[&early]["size"], 23);
}

#[tokio::test]
async fn content_redirects_to_a_download_url_that_needs_no_token() {
    let s = setup(config(DriveType::Business, 2, 10)).await;
    let h = s.handle();
    let body: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let id = h
        .create_file(NewFile::new("data.bin", body.clone()))
        .unwrap();
    let location = s.download_url(&id).await;
    let server = s.fake.addr().to_string();
    assert!(
        location.starts_with(&format!("http://{server}/download/")),
        "{location}"
    );
    assert!(!location.contains("/v1.0/"));

    let full = s.anonymous(&location, &[]).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.bytes, body);
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    let counters = h.counters();
    assert_eq!(counters.download_requests, 1);
    assert_eq!(counters.download_requests_with_authorization, 0);
    assert_eq!(counters.content_redirects, 1);
    assert_eq!(counters.download_bytes, 1000);
    // Sending the bearer token along is not refused, but it is seen.
    let leaked = s.get(&location).await;
    assert_eq!(leaked.status, 200);
    assert_eq!(h.counters().download_requests_with_authorization, 1);

    let part = s.anonymous(&location, &[("Range", "bytes=10-19")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.bytes, body[10..20]);
    assert_eq!(part.header("content-range"), Some("bytes 10-19/1000"));
    let tail = s.anonymous(&location, &[("Range", "bytes=-4")]).await;
    assert_eq!(tail.bytes, body[996..]);
    let beyond = s.anonymous(&location, &[("Range", "bytes=5000-")]).await;
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), Some("bytes */1000"));
    assert_eq!(h.counters().partial_downloads, 2);

    // If-None-Match with the current eTag or cTag: 304; with an old one: a redirect.
    let truth = h.item(&id).unwrap();
    let content = format!("/me/drive/items/{id}/content");
    for tag in [&truth.etag, &truth.ctag] {
        let same = s.get_with(&content, &[("If-None-Match", tag)]).await;
        assert_eq!(same.status, 304, "{tag}");
    }
    let on_url = s
        .anonymous(&location, &[("If-None-Match", &truth.etag)])
        .await;
    assert_eq!(on_url.status, 304);
    h.edit_file(&id, "new bytes").unwrap();
    let changed = s
        .get_with(&content, &[("If-None-Match", &truth.etag)])
        .await;
    assert_eq!(changed.status, 302);
    assert_eq!(h.counters().not_modified, 3);
    // The old URL serves the current bytes.
    assert_eq!(s.anonymous(&location, &[]).await.bytes, b"new bytes");

    let folder = h.create_folder("Dir", None).unwrap();
    let not_a_file = s.get(&format!("/me/drive/items/{folder}/content")).await;
    assert_eq!(
        (not_a_file.status, not_a_file.code()),
        (404, "itemNotFound")
    );
    assert_eq!(s.get("/me/drive/root/content").await.status, 404);
    h.delete(&id).unwrap();
    assert_eq!(s.anonymous(&location, &[]).await.status, 404);
}

#[tokio::test]
async fn download_urls_expire() {
    let mut c = config(DriveType::Business, 0, 0);
    c.download_url_lifetime = Duration::from_secs(300);
    let s = setup(c).await;
    let h = s.handle();
    let id = h.create_file(NewFile::new("a.txt", "abc")).unwrap();
    let url = s.download_url(&id).await;
    assert_eq!(s.anonymous(&url, &[]).await.status, 200);
    h.advance(Duration::from_secs(299));
    assert_eq!(s.anonymous(&url, &[]).await.status, 200);
    h.advance(Duration::from_secs(2));
    let expired = s.anonymous(&url, &[]).await;
    assert_eq!((expired.status, expired.code()), (401, "unauthenticated"));
    assert_eq!(h.counters().expired_downloads, 1);
    // A fresh one works until the hook forgets every URL.
    let fresh = s.download_url(&id).await;
    assert_eq!(s.anonymous(&fresh, &[]).await.status, 200);
    h.expire_download_urls();
    assert_eq!(s.anonymous(&fresh, &[]).await.status, 401);
    // An altered token is refused too.
    let url = s.download_url(&id).await;
    let at = url.len() - 5;
    let swap = if &url[at..=at] == "B" { "C" } else { "B" };
    let altered = format!("{}{swap}{}", &url[..at], &url[at + 1..]);
    assert_eq!(s.anonymous(&altered, &[]).await.status, 401);

    let mut c = config(DriveType::Business, 0, 0);
    c.expired_download_status = axum::http::StatusCode::FORBIDDEN;
    let other = setup(c).await;
    let id = other
        .handle()
        .create_file(NewFile::new("b.txt", "b"))
        .unwrap();
    let url = other.download_url(&id).await;
    other.handle().expire_download_urls();
    assert_eq!(other.anonymous(&url, &[]).await.status, 403);
}

#[tokio::test]
async fn downloads_can_come_from_another_listener() {
    let mut c = config(DriveType::Business, 0, 0);
    c.download_host =
        DownloadHost::SeparateListener(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let s = setup(c).await;
    let h = s.handle();
    let id = h.create_file(NewFile::new("a.txt", "abc")).unwrap();
    let url = s.download_url(&id).await;
    let downloads = s.fake.download_addr().unwrap();
    assert_ne!(downloads, s.fake.addr());
    assert!(
        url.starts_with(&format!("http://{downloads}/download/")),
        "{url}"
    );
    assert_eq!(s.anonymous(&url, &[]).await.bytes, b"abc");
    // The Graph server does not serve downloads.
    let path = url.split_once("/download/").unwrap().1;
    let on_graph = s
        .anonymous(&format!("http://{}/download/{path}", s.fake.addr()), &[])
        .await;
    assert_eq!(on_graph.status, 404);
    let item = s.ok(&format!("/me/drive/items/{id}"), &[]).await.body;
    assert!(
        item["@microsoft.graph.downloadUrl"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{downloads}/"))
    );
    s.fake.stop().await.unwrap();
}

#[tokio::test]
async fn errors_come_in_graphs_envelope() {
    let s = setup(config(DriveType::Business, 1, 3)).await;
    let h = s.handle();
    let anonymous = s.anonymous(&s.url("/me/drive"), &[]).await;
    assert_eq!(
        (anonymous.status, anonymous.code()),
        (401, "InvalidAuthenticationToken")
    );
    let mail_only = h.graph().mint_grant(&["User.Read", "Mail.Read"]);
    let denied = s.get_as("/me/drive/root", &mail_only.access_token).await;
    assert_eq!((denied.status, denied.code()), (403, "accessDenied"));
    let missing = s.get("/me/drive/items/01NOPE").await;
    assert_eq!((missing.status, missing.code()), (404, "itemNotFound"));
    assert!(missing.body["error"]["innerError"]["request-id"].is_string());
    let other_drive = s.get("/drives/b!nope/root").await;
    assert_eq!(other_drive.status, 404);
    let unknown = s.get("/me/drive/root/nonsense").await;
    assert_eq!((unknown.status, unknown.code()), (400, "BadRequest"));
    let bad_top = s.get("/me/drive/root/children?$top=-1").await;
    assert_eq!(bad_top.status, 400);
    let expand = s.get("/me/drive/root?$expand=children").await;
    assert_eq!(expand.status, 400);
    let filter = s.get("/me/drive/root/delta?$filter=name eq 'x'").await;
    assert_eq!(filter.status, 400);

    // Another user of the tenant has no drive here.
    let other = h.graph().add_user("Other", "other@example.com");
    let grant = h
        .graph()
        .mint_grant_for(&other.id, &["Files.Read"])
        .unwrap();
    let theirs = s.get_as("/me/drive", &grant.access_token).await;
    assert_eq!((theirs.status, theirs.code()), (404, "ResourceNotFound"));
    let by_id = s
        .get_as(&format!("/drives/{}", h.drive_id()), &grant.access_token)
        .await;
    assert_eq!(by_id.status, 403);
}

#[tokio::test]
async fn faults_and_throttling_come_from_the_pipeline() {
    let s = setup(config(DriveType::Business, 1, 3)).await;
    let h = s.handle();
    h.graph().fail_next(
        "/root/delta",
        1,
        Fault::Unavailable {
            retry_after_secs: Some(2),
        },
    );
    let faulted = s.get("/me/drive/root/delta").await;
    assert_eq!(
        (faulted.status, faulted.code()),
        (503, "serviceNotAvailable")
    );
    assert_eq!(faulted.header("retry-after"), Some("2"));
    assert_eq!(s.get("/me/drive/root/delta").await.status, 200);

    let id = h.file_ids().into_iter().next().unwrap();
    let url = s.download_url(&id).await;
    h.fail_next_downloads(1, Fault::InternalError);
    assert_eq!(s.anonymous(&url, &[]).await.status, 500);
    assert_eq!(s.anonymous(&url, &[]).await.status, 200);

    h.graph().set_throttle(crate::ThrottleConfig {
        requests_per_window: 2,
        ..crate::ThrottleConfig::default()
    });
    h.graph().clear_rate_windows();
    assert_eq!(s.get("/me/drive").await.status, 200);
    assert_eq!(s.get("/me/drive").await.status, 200);
    let throttled = s.get("/me/drive").await;
    assert_eq!(throttled.status, 429);
    assert!(throttled.header("retry-after").is_some());
    // Download URLs are not behind the throttle.
    assert_eq!(s.anonymous(&url, &[]).await.status, 200);
}

#[tokio::test]
async fn hooks_refuse_what_onedrive_refuses() {
    let h = OneDriveHandle::new(config(DriveType::Business, 0, 0));
    let a = h.create_folder("A", None).unwrap();
    let b = h.create_folder("B", Some(&a)).unwrap();
    let f = h
        .create_file(NewFile::new("f.txt", "f").in_folder(&b))
        .unwrap();
    use crate::OneDriveFakeError as E;
    assert_eq!(
        h.create_folder("a", None),
        Err(E::NameAlreadyExists("a".into()))
    );
    assert!(matches!(
        h.create_folder("x:y", None),
        Err(E::InvalidName(_))
    ));
    assert!(matches!(h.move_item(&a, &b), Err(E::Invalid(_))));
    assert!(matches!(h.delete(&h.root_id()), Err(E::Invalid(_))));
    assert!(matches!(h.edit_file(&a, "x"), Err(E::NotAFile(_))));
    assert!(matches!(h.move_item(&a, &f), Err(E::NotAFolder(_))));
    assert!(matches!(h.rename("nope", "x"), Err(E::ItemNotFound(_))));
    h.delete(&a).unwrap();
    assert_eq!(h.deleted_ids().len(), 3);
    assert!(h.item(&f).is_none());
    h.create_folder("A", None).unwrap();
    assert_eq!(h.restore(&a), Err(E::NameAlreadyExists("A".into())));
    let truth = h.item_by_path("/a").unwrap();
    assert!(truth.is_folder);
}

#[tokio::test]
async fn generated_drives_are_deterministic_and_mixed() {
    let mut c = config(DriveType::Business, 15, 120);
    c.content.large_files = 2;
    c.content.large_file_bytes = 300_000;
    c.content.max_depth = 2;
    let a = OneDriveHandle::new(c.clone());
    let b = OneDriveHandle::new(c.clone());
    let shape = |h: &OneDriveHandle| {
        h.items()
            .into_values()
            .map(|i| (i.path, i.size, i.quick_xor_hash))
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&a), shape(&b));
    assert_eq!(a.file_ids().len(), 120);
    assert_eq!(a.folder_ids().len(), 16);
    let items = a.items();
    let files: Vec<_> = items.values().filter(|i| !i.is_folder).collect();
    let text = files.iter().filter(|f| f.is_text).count();
    assert!(text > 30 && text < 110, "a mix: {text} text files");
    for file in &files {
        let content = file.content.as_ref().unwrap();
        assert_eq!(content.len() as u64, file.size);
        assert_eq!(
            file.quick_xor_hash.as_deref(),
            Some(crate::hashes::quick_xor_hash(content).as_str())
        );
        if file.is_text {
            assert!(std::str::from_utf8(content).is_ok(), "{}", file.path);
        }
        if file.mime_type.as_deref() == Some("application/json") {
            assert!(
                serde_json::from_slice::<Value>(content).is_ok(),
                "{}",
                file.path
            );
        }
    }
    let large = files.iter().filter(|f| f.size >= 300_000).count();
    assert_eq!(large, 2);
    assert!(
        items
            .values()
            .filter(|i| i.is_folder)
            .all(|f| f.path.matches('/').count() <= 2)
    );
    assert!(
        items
            .values()
            .any(|i| i.is_folder && i.path.matches('/').count() == 2)
    );
}

#[tokio::test]
async fn the_standalone_fake_links_and_grows() {
    let running = start_standalone(&crate::fake(), 50).await;
    // 50 files and 2 folders below the root: what the integration stores.
    assert_eq!(running.truth().synced.len(), 52);
    let checked = check_standalone_link(running.as_ref()).await;
    let access = checked.refreshed["access_token"].as_str().unwrap();
    let graph = TestClient::new(&checked.base_url, access);
    assert_eq!(graph.get("/me/drive/root/delta").await.status, 200);
    let added = running.add_item().unwrap();
    assert!(running.truth().synced.contains(&added));
    assert_eq!(running.truth().synced.len(), 53);
    assert!(running.request_counts().contains_key("driveItem.delta"));
    assert!(
        running.describe().contains("51 files"),
        "{}",
        running.describe()
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn mail_and_drive_share_one_server_and_one_token_endpoint() {
    use tributary_msgraph_fake::testing::http_client;
    use tributary_msgraph_fake::{GraphConfig, GraphHandle, GraphUrls};
    use tributary_outlook_fake::{MailboxConfig, OutlookConfig, OutlookHandle};
    use tributary_testkit::serving::LoopbackServer;

    tributary_sdk::http::install_crypto_provider();
    let graph = GraphHandle::new(GraphConfig::default());
    let mail = OutlookHandle::with_graph(
        graph.clone(),
        OutlookConfig {
            mailbox: MailboxConfig {
                messages: 3,
                ..MailboxConfig::default()
            },
            ..OutlookConfig::default()
        },
    );
    let drive = OneDriveHandle::with_graph(graph.clone(), config(DriveType::Business, 1, 4));
    let router = graph
        .router(mail.graph_routes().merge(drive.graph_routes()))
        .merge(drive.download_router());
    let server = LoopbackServer::start(router).await;
    let urls = GraphUrls::new(server.addr());
    let root = urls.base_url();
    let http = http_client();

    let grant = graph.mint_grant(&["offline_access", "Mail.Read", "Files.Read"]);
    let refresh_token = grant.refresh_token.as_deref().unwrap();
    let (id, secret) = (graph.client_id(), graph.client_secret());
    let refreshed = refresh(&http, &urls.token_url(), refresh_token, &id, &secret).await;
    let token = refreshed.body["access_token"].as_str().unwrap().to_owned();
    let get = |path: String| {
        let request = http.get(format!("{root}{path}")).bearer_auth(&token);
        async move { request.send().await.unwrap() }
    };
    assert_eq!(get("/me/mailFolders".into()).await.status(), 200);
    assert_eq!(get("/me/drive/root/delta".into()).await.status(), 200);
    let me: Value = get("/me/drive".into()).await.json().await.unwrap();
    assert_eq!(me["owner"]["user"]["id"], mail.owner().id.as_str());

    // The download URL is on the same server and needs no token.
    let file = drive.file_ids().into_iter().next().unwrap();
    let redirect = get(format!("/me/drive/items/{file}/content")).await;
    assert_eq!(redirect.status(), 302);
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("http://{}/download/", server.addr())));
    let bytes = http
        .get(&location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(Some(bytes.to_vec()), drive.item(&file).unwrap().content);
    assert_eq!(drive.counters().download_requests_with_authorization, 0);

    let counters = graph.counters();
    assert_eq!(counters.calls("mailFolder.list"), 1);
    assert_eq!(counters.calls("driveItem.delta"), 1);
    assert_eq!(counters.calls("drive.get"), 1);
    assert_eq!(counters.calls("driveItem.content"), 1);
    assert_eq!(counters.refreshes, 1);
    // One throttle budget for both APIs.
    assert_eq!(graph.mailbox_counters(&graph.user().id).admitted, 4);
}
