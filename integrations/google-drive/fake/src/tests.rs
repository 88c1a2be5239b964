//! End-to-end tests of the fake over loopback HTTP: every answer's shape against the
//! vendored discovery document, and Drive's documented behaviour.

#![allow(clippy::unwrap_used)]

use md5::{Digest, Md5};
use serde_json::Value;
use tributary_google_fake::discovery::{Checker, assert_conforms};

use crate::{DriveConfig, DriveHandle, FakeDrive, Fault, FileBody, NewFile};

fn discovery() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../spec/drive-v3-discovery.json"
    );
    let text = std::fs::read_to_string(path).expect("the vendored discovery document is readable");
    serde_json::from_str(&text).expect("the discovery document is json")
}

struct Setup {
    fake: FakeDrive,
    http: reqwest::Client,
    token: String,
}

async fn setup(config: DriveConfig) -> Setup {
    tributary_sdk::http::install_crypto_provider();
    let fake = FakeDrive::start(config).await.unwrap();
    let token = fake.handle().issue_access_token();
    Setup {
        fake,
        http: reqwest::Client::new(),
        token,
    }
}

fn tree(files: usize) -> DriveConfig {
    DriveConfig {
        files,
        folders: files / 10,
        shared_drives: 2,
        seed: 7,
        ..DriveConfig::default()
    }
}

impl Setup {
    async fn export(&self, id: &str, mime: &str) -> (u16, Value) {
        self.get(
            &format!("drive/v3/files/{id}/export"),
            &[("mimeType", mime)],
        )
        .await
    }

    fn drive(&self) -> &DriveHandle {
        self.fake.handle()
    }

    /// GET `path?query` with the token: (status, body as JSON or text).
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let url = format!("{}{path}", self.fake.base_url());
        let response = self
            .http
            .get(url)
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn ok(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let (status, value) = self.get(path, query).await;
        assert_eq!(status, 200, "{path} {query:?}: {value}");
        value
    }

    /// Every page of `files.list` with `query` and `pageSize`.
    async fn list_all(&self, query: &[(&str, &str)], size: &str) -> Vec<Value> {
        let mut files = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            q.push(("pageSize", size));
            if let Some(t) = &token {
                q.push(("pageToken", t));
            }
            let page = self.ok("drive/v3/files", &q).await;
            files.extend(page["files"].as_array().unwrap().iter().cloned());
            match page["nextPageToken"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => return files,
            }
        }
    }
}

const ALL_DRIVES: [(&str, &str); 3] = [
    ("corpora", "allDrives"),
    ("includeItemsFromAllDrives", "true"),
    ("supportsAllDrives", "true"),
];

fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut q = ALL_DRIVES.to_vec();
    q.extend_from_slice(extra);
    q
}

fn reason(error: &Value) -> &str {
    error["error"]["errors"][0]["reason"].as_str().unwrap_or("")
}

#[tokio::test]
async fn every_answer_has_the_discovery_shapes() {
    let s = setup(tree(60)).await;
    let checker = Checker::new(&discovery());
    let list = s.ok("drive/v3/files", &with(&[("fields", "*")])).await;
    assert_conforms(&checker, &list, "FileList");
    let id = list["files"][0]["id"].as_str().unwrap().to_owned();
    let file = s
        .ok(
            &format!("drive/v3/files/{id}"),
            &[("fields", "*"), ("supportsAllDrives", "true")],
        )
        .await;
    assert_conforms(&checker, &file, "File");
    let start = s.ok("drive/v3/changes/startPageToken", &[]).await;
    assert_conforms(&checker, &start, "StartPageToken");
    s.drive()
        .edit(&id, FileBody::Bytes(b"new".to_vec()))
        .unwrap_or_else(|_| {
            s.drive().touch(&id).unwrap();
        });
    let other = list["files"][1]["id"].as_str().unwrap().to_owned();
    s.drive().delete(&other).unwrap();
    let token = start["startPageToken"].as_str().unwrap();
    let changes = s
        .ok(
            "drive/v3/changes",
            &[
                ("pageToken", token),
                ("includeItemsFromAllDrives", "true"),
                ("supportsAllDrives", "true"),
                ("fields", "*"),
            ],
        )
        .await;
    assert_conforms(&checker, &changes, "ChangeList");
    // The edit, and the deletion (of a folder: of everything under it too).
    assert!(
        changes["changes"].as_array().unwrap().len() >= 2,
        "{changes}"
    );
    let drives = s.ok("drive/v3/drives", &[("fields", "*")]).await;
    assert_conforms(&checker, &drives, "DriveList");
    let drive_id = drives["drives"][0]["id"].as_str().unwrap().to_owned();
    assert_conforms(
        &checker,
        &s.ok(&format!("drive/v3/drives/{drive_id}"), &[]).await,
        "Drive",
    );
    assert_conforms(
        &checker,
        &s.ok("drive/v3/about", &[("fields", "*")]).await,
        "About",
    );
}

#[tokio::test]
async fn default_and_selected_fields() {
    let s = setup(tree(10)).await;
    let list = s.ok("drive/v3/files", &with(&[])).await;
    let keys: Vec<&String> = list["files"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "kind", "mimeType", "name"]);
    let list = s
        .ok(
            "drive/v3/files",
            &with(&[
                ("fields", "nextPageToken,files(id,owners(displayName))"),
                ("pageSize", "2"),
            ]),
        )
        .await;
    assert!(list.get("kind").is_none(), "{list}");
    assert!(list["nextPageToken"].is_string());
    let (status, error) = s
        .get("drive/v3/files", &with(&[("fields", "files(")]))
        .await;
    assert_eq!((status, reason(&error)), (400, "invalidParameter"));
}

#[tokio::test]
async fn shared_drives_need_both_flags() {
    let s = setup(tree(80)).await;
    let everything = s
        .list_all(
            &with(&[("fields", "nextPageToken,files(id,driveId)")]),
            "1000",
        )
        .await;
    let shared: Vec<&Value> = everything
        .iter()
        .filter(|f| f["driveId"].is_string())
        .collect();
    assert!(!shared.is_empty() && shared.len() < everything.len());
    let mine = s
        .list_all(&[("fields", "nextPageToken,files(id,driveId)")], "1000")
        .await;
    assert!(mine.iter().all(|f| f["driveId"].is_null()));
    assert_eq!(mine.len() + shared.len(), everything.len());
    let id = shared[0]["id"].as_str().unwrap();
    let (status, error) = s.get(&format!("drive/v3/files/{id}"), &[]).await;
    assert_eq!((status, reason(&error)), (404, "notFound"), "{error}");
    assert_eq!(error["error"]["message"], format!("File not found: {id}."));
    let (status, _) = s
        .get(
            &format!("drive/v3/files/{id}"),
            &[("supportsAllDrives", "true")],
        )
        .await;
    assert_eq!(status, 200);
    let (status, error) = s.get("drive/v3/files", &[("corpora", "allDrives")]).await;
    assert_eq!(status, 403, "{error}");
}

#[tokio::test]
async fn queries_order_and_keyset_pages() {
    let s = setup(tree(120)).await;
    let drive = s.drive();
    let folder = drive.create_folder("Q", None).unwrap();
    let inside = drive
        .create_file(NewFile {
            name: "it's here.txt".into(),
            mime_type: "text/plain".into(),
            parent: Some(folder.clone()),
            body: FileBody::Bytes(b"x".to_vec()),
        })
        .unwrap();
    let q = format!("'{folder}' in parents and trashed = false");
    let found = s.list_all(&with(&[("q", &q)]), "10").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], inside);
    let q = r"name = 'it\'s here.txt' and mimeType != 'application/vnd.google-apps.folder'";
    assert_eq!(s.list_all(&with(&[("q", q)]), "10").await.len(), 1);
    let (status, error) = s
        .get("drive/v3/files", &with(&[("q", "starred = true")]))
        .await;
    assert_eq!((status, reason(&error)), (400, "invalid"));
    assert_eq!(error["error"]["errors"][0]["location"], "q");

    // Newest first, and every page exact while other files change: a file edited
    // during the walk jumps ahead of the cursor (seen before or not at all, never
    // twice); every file left alone is seen once.
    let before: Vec<String> = drive.snapshot().into_keys().collect();
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut edited = Vec::new();
    let mut round = 0;
    loop {
        let mut query = with(&[
            ("orderBy", "modifiedTime desc"),
            ("q", "trashed = false"),
            ("fields", "nextPageToken,files(id,modifiedTime)"),
        ]);
        query.push(("pageSize", "9"));
        if let Some(t) = &token {
            query.push(("pageToken", t));
        }
        let page = s.ok("drive/v3/files", &query).await;
        let times: Vec<&str> = page["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["modifiedTime"].as_str().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
        seen.extend(
            page["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["id"].as_str().unwrap().to_owned()),
        );
        let victim = before[(round * 13) % before.len()].clone();
        if drive.touch(&victim).is_ok() {
            edited.push(victim);
        }
        round += 1;
        match page["nextPageToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a file was listed twice");
    for id in before.iter().filter(|id| !edited.contains(id)) {
        assert!(seen.contains(id), "{id} was never listed");
    }
}

#[tokio::test]
async fn changes_coalesce_and_report_removals() {
    let s = setup(tree(50)).await;
    let drive = s.drive();
    let token = drive.page_token();
    let snapshot = drive.snapshot();
    let files: Vec<&String> = snapshot
        .values()
        .filter(|f| !f.is_folder && f.drive_id.is_none())
        .map(|f| &f.id)
        .collect();
    for _ in 0..3 {
        drive.touch(files[0]).unwrap();
    }
    drive.delete(files[1]).unwrap();
    drive.unshare(files[2]).unwrap();
    drive.trash(files[3]).unwrap();
    let folder = drive.create_folder("Parent", None).unwrap();
    let child = drive
        .create_file(NewFile {
            name: "child.txt".into(),
            mime_type: "text/plain".into(),
            parent: Some(folder.clone()),
            body: FileBody::Bytes(b"c".to_vec()),
        })
        .unwrap();
    let after_create = drive.page_token();
    drive.trash(&folder).unwrap();
    let all = s
        .ok(
            "drive/v3/changes",
            &[("pageToken", &token), ("fields", "*")],
        )
        .await;
    let changes = all["changes"].as_array().unwrap();
    let of = |id: &str| {
        changes
            .iter()
            .filter(|c| c["fileId"] == id)
            .collect::<Vec<_>>()
    };
    assert_eq!(of(files[0]).len(), 1, "coalesced");
    assert_eq!(of(files[1])[0]["removed"], true);
    assert!(of(files[1])[0].get("file").is_none());
    assert_eq!(of(files[2])[0]["removed"], true);
    assert_eq!(of(files[3])[0]["file"]["trashed"], true);
    assert!(all["newStartPageToken"].is_string() && all.get("nextPageToken").is_none());
    // Trashing a folder reports what lies under it too.
    let later = s
        .ok(
            "drive/v3/changes",
            &[("pageToken", &after_create), ("fields", "*")],
        )
        .await;
    let ids: Vec<&str> = later["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["fileId"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&folder.as_str()) && ids.contains(&child.as_str()),
        "{ids:?}"
    );
    assert_eq!(later["changes"][1]["file"]["explicitlyTrashed"], false);
    // Pages: nextPageToken on every page but the last.
    let first = s
        .ok(
            "drive/v3/changes",
            &[("pageToken", &token), ("pageSize", "2")],
        )
        .await;
    assert!(first["nextPageToken"].is_string() && first.get("newStartPageToken").is_none());
    // An expired token is refused as an invalid value.
    drive.expire_page_tokens();
    let (status, error) = s.get("drive/v3/changes", &[("pageToken", &token)]).await;
    assert_eq!((status, reason(&error)), (400, "invalid"));
    assert_eq!(error["error"]["errors"][0]["location"], "pageToken");
}

#[tokio::test]
async fn exports_downloads_and_their_limits() {
    let s = setup(DriveConfig {
        export_limit_bytes: 1_000,
        ..tree(0)
    })
    .await;
    let drive = s.drive();
    let create = |name: &str, mime: &str, body: FileBody| {
        drive
            .create_file(NewFile {
                name: name.into(),
                mime_type: mime.into(),
                parent: None,
                body,
            })
            .unwrap()
    };
    let doc = create(
        "Doc",
        "application/vnd.google-apps.document",
        FileBody::Bytes(b"hello doc".to_vec()),
    );
    let big = create(
        "Big",
        "application/vnd.google-apps.document",
        FileBody::Bytes(vec![b'a'; 2_000]),
    );
    let sheet = create(
        "Sheet",
        "application/vnd.google-apps.spreadsheet",
        FileBody::Bytes(b"a,b\n1,2\n".to_vec()),
    );
    let video = create(
        "v.mp4",
        "video/mp4",
        FileBody::Generated {
            len: 50 * 1024 * 1024,
            seed: 3,
        },
    );
    assert_eq!(
        s.export(&doc, "text/plain").await,
        (200, Value::String("hello doc".into()))
    );
    assert_eq!(s.export(&sheet, "text/csv").await.0, 200);
    let (status, error) = s.export(&sheet, "text/plain").await;
    assert_eq!((status, reason(&error)), (400, "badRequest"));
    let (status, error) = s.export(&big, "text/plain").await;
    assert_eq!((status, reason(&error)), (403, "exportSizeLimitExceeded"));
    let (status, error) = s.export(&video, "text/plain").await;
    assert_eq!((status, reason(&error)), (403, "fileNotExportable"));
    let (status, error) = s
        .get(&format!("drive/v3/files/{doc}"), &[("alt", "media")])
        .await;
    assert_eq!((status, reason(&error)), (403, "fileNotDownloadable"));

    // 50 MB streamed: its length and MD5 are the metadata's.
    let meta = s
        .ok(
            &format!("drive/v3/files/{video}"),
            &[("fields", "size,md5Checksum")],
        )
        .await;
    let url = format!("{}drive/v3/files/{video}?alt=media", s.fake.base_url());
    let mut response = s.http.get(url).bearer_auth(&s.token).send().await.unwrap();
    let mut md5 = Md5::new();
    let mut total = 0usize;
    while let Some(chunk) = response.chunk().await.unwrap() {
        total += chunk.len();
        md5.update(&chunk);
    }
    let hex: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(meta["size"], total.to_string());
    assert_eq!(meta["md5Checksum"], hex);
}

#[tokio::test]
async fn errors_are_googles() {
    let s = setup(tree(5)).await;
    let url = format!("{}drive/v3/files", s.fake.base_url());
    let response = s.http.get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(reason(&body), "authError");
    assert_eq!(body["error"]["code"], 401);
    s.drive().fail_next(1, Fault::RateLimited);
    let (status, error) = s.get("drive/v3/files", &[]).await;
    assert_eq!((status, reason(&error)), (429, "rateLimitExceeded"));
    s.drive().fail_next(1, Fault::UserRateLimited);
    let (status, error) = s.get("drive/v3/files", &[]).await;
    assert_eq!((status, reason(&error)), (403, "userRateLimitExceeded"));
    s.drive().fail_next(1, Fault::ServerError);
    let (status, error) = s.get("drive/v3/files", &[]).await;
    assert_eq!((status, reason(&error)), (500, "backendError"));
    let (status, error) = s.get("drive/v3/about", &[]).await;
    assert_eq!((status, reason(&error)), (400, "required"));
    // The token endpoint is Google's (the shared crate's), and counts its grants.
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", "fake-client-id.apps.googleusercontent.com"),
        ("client_secret", "fake-client-secret"),
        ("refresh_token", "1//fake-drive-refresh-token"),
    ];
    let token: Value = s
        .http
        .post(s.fake.token_url())
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(s.drive().counters().tokens_issued, 1);
}

#[test]
fn a_generated_tree_of_5000_files_is_quick_and_complete() {
    let drive = DriveHandle::new(DriveConfig {
        files: 5_000,
        folders: 300,
        shared_drives: 2,
        ..DriveConfig::default()
    });
    let snapshot = drive.snapshot();
    assert_eq!(snapshot.len(), 5_300);
    assert!(
        snapshot
            .values()
            .any(|f| f.path.starts_with("/Shared drive 1/"))
    );
    assert!(
        snapshot.values().any(|f| f.path.matches('/').count() >= 4),
        "some depth"
    );
}
