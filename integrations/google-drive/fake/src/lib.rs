//! A stateful fake of the Google Drive API v3, on loopback HTTP, speaking Drive's wire
//! format.
//!
//! The fake follows Google's published discovery document
//! (`integrations/google-drive/spec/drive-v3-discovery.json`) and reference: the same
//! paths under the server root (`drive/v3/...`), parameter names, JSON field names and
//! types (int64 as strings, RFC 3339 times with milliseconds), Google's error body, and
//! Google's OAuth 2.0 endpoints (shared with the Gmail fake, `tributary-google-fake`).
//! The crate's tests check every response shape against the discovery schemas.
//!
//! # What it serves
//!
//! | method | path |
//! |---|---|
//! | `files.list` | `GET drive/v3/files` |
//! | `files.get` (and `alt=media`) | `GET drive/v3/files/{fileId}` |
//! | `files.export` | `GET drive/v3/files/{fileId}/export` |
//! | `changes.getStartPageToken` | `GET drive/v3/changes/startPageToken` |
//! | `changes.list` | `GET drive/v3/changes` |
//! | `drives.list`, `drives.get` | `GET drive/v3/drives`, `GET drive/v3/drives/{driveId}` |
//! | `about.get` | `GET drive/v3/about` |
//! | OAuth 2.0 | `GET /authorize` (and `/o/oauth2/v2/auth`), `POST /token`, `POST /revoke` |
//!
//! # Behaviour worth knowing
//!
//! - Without `fields`, a file has only `kind`, `id`, `name` and `mimeType`, and a
//!   listing only `kind`, `incompleteSearch`, `files` and `nextPageToken` (Drive v3's
//!   defaults); `fields` selects with Google's partial-response syntax.
//! - Shared-drive items are listed (files and changes) only with both
//!   `includeItemsFromAllDrives=true` and `supportsAllDrives=true`, and `files.get`
//!   finds one only with `supportsAllDrives=true` (404 otherwise), as Drive does.
//! - `files.list`: the query-language subset of [`query`](crate), `orderBy` on
//!   `modifiedTime`, `createdTime`, `name` (and `folder`), `desc` allowed; `pageSize`
//!   100 by default, at most 1,000; page tokens are keyset positions, exact while files
//!   change. `corpora`: `user` (My Drive), `drive` (with `driveId`), `allDrives`.
//! - Every change to a file moves its `version` up; trashing, untrashing, deleting or
//!   unsharing a folder changes everything under it too, a change each. `changes.list`
//!   answers each file's latest change after the token (coalesced), `removed: true` for
//!   a deleted or unshared one; `nextPageToken` on every page but the last, which has
//!   `newStartPageToken`. A token from before [`DriveHandle::expire_page_tokens`]
//!   answers 400 (`invalid`, location `pageToken`).
//! - `files.export`: Docs to `text/plain`, `text/html`, `application/pdf`...; Sheets to
//!   `text/csv`...; Slides to `text/plain`...; over the export limit (10 MB) 403
//!   `exportSizeLimitExceeded`; an unsupported conversion 400 `badRequest`.
//!   `alt=media` on a Google type is 403 `fileNotDownloadable`; media is streamed from
//!   the body (a generated body is never held in memory).
//! - Faults ([`FaultConfig`], [`DriveHandle::fail_next`]) apply to API requests only.

mod drive;
mod fields;
mod query;
mod server;
pub mod standalone;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::net::TcpListener;
use tributary_google_fake::oauth::TokenStore;
use tributary_testkit::serving::LoopbackServer;

pub use standalone::{DriveFake, fake};
pub use tributary_google_fake::faults::{Fault, FaultConfig};
pub use tributary_google_fake::oauth::TestCredentials;

use drive::Drive;

/// What the fake counted, per [`DriveMethod`].
pub type Counters = tributary_google_fake::faults::Counters<DriveMethod>;

type Faults = tributary_google_fake::faults::Faults<DriveMethod>;

/// One Drive API method, as counted by the fake (the discovery document's method ids
/// without `drive.`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriveMethod {
    /// `files.list`.
    FilesList,
    /// `files.get` of metadata.
    FilesGet,
    /// `files.get` with `alt=media`.
    FilesGetMedia,
    /// `files.export`.
    FilesExport,
    /// `changes.getStartPageToken`.
    ChangesGetStartPageToken,
    /// `changes.list`.
    ChangesList,
    /// `drives.list`.
    DrivesList,
    /// `drives.get`.
    DrivesGet,
    /// `about.get`.
    AboutGet,
}

impl DriveMethod {
    /// The discovery document's name of the method (`files.list`).
    pub fn name(self) -> &'static str {
        match self {
            DriveMethod::FilesList => "files.list",
            DriveMethod::FilesGet => "files.get",
            DriveMethod::FilesGetMedia => "files.get (alt=media)",
            DriveMethod::FilesExport => "files.export",
            DriveMethod::ChangesGetStartPageToken => "changes.getStartPageToken",
            DriveMethod::ChangesList => "changes.list",
            DriveMethod::DrivesList => "drives.list",
            DriveMethod::DrivesGet => "drives.get",
            DriveMethod::AboutGet => "about.get",
        }
    }
}

/// A file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileBody {
    /// These bytes.
    Bytes(Vec<u8>),
    /// `len` bytes made from `seed` when read (printable ASCII lines), never held in
    /// memory whole.
    Generated {
        /// How many bytes.
        len: u64,
        /// What they are made from.
        seed: u64,
    },
    /// No content (folders, shortcuts).
    None,
}

impl FileBody {
    /// The content's length.
    pub fn len(&self) -> u64 {
        match self {
            FileBody::Bytes(b) => b.len() as u64,
            FileBody::Generated { len, .. } => *len,
            FileBody::None => 0,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `count` bytes from `offset` (fewer at the end).
    pub fn bytes(&self, offset: u64, count: u64) -> Vec<u8> {
        let end = offset.saturating_add(count).min(self.len());
        if offset >= end {
            return Vec::new();
        }
        match self {
            FileBody::Bytes(b) => b[offset as usize..end as usize].to_vec(),
            FileBody::Generated { seed, .. } => {
                (offset..end).map(|i| generated_byte(*seed, i)).collect()
            }
            FileBody::None => Vec::new(),
        }
    }
}

/// Byte `i` of a generated body: lowercase letters and spaces, a newline every 64.
fn generated_byte(seed: u64, i: u64) -> u8 {
    if i % 64 == 63 {
        return b'\n';
    }
    let mut x = seed ^ (i / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    let v = (x >> ((i % 8) * 8)) as u8 % 27;
    if v == 26 { b' ' } else { b'a' + v }
}

/// A file to create with [`DriveHandle::create_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Its name.
    pub name: String,
    /// Its MIME type (a Google type for Docs, Sheets, Slides, folders).
    pub mime_type: String,
    /// The folder (or a shared drive's id) it goes in; My Drive's root when `None`.
    pub parent: Option<String>,
    /// Its content (for a Google Doc, Sheet or Slides: the text its export gives).
    pub body: FileBody,
}

/// One visible, untrashed item as a sync must hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTruth {
    /// The file id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its MIME type.
    pub mime_type: String,
    /// `/` + the names from the top (`My Drive` or the shared drive's name).
    pub path: String,
    /// Its parent.
    pub parents: Vec<String>,
    /// The shared drive holding it.
    pub drive_id: Option<String>,
    /// Drive's version.
    pub version: i64,
    /// RFC 3339.
    pub modified_time: String,
    /// RFC 3339.
    pub created_time: String,
    /// Bytes of content (files with content of their own).
    pub size: Option<u64>,
    /// MD5 of the content (files with content of their own).
    pub md5_checksum: Option<String>,
    /// Whether it is a folder.
    pub is_folder: bool,
    /// The text a reader should get: the export of a Doc, Sheet or Slides (when under
    /// the export limit), the content of a text file; `None` otherwise.
    pub text: Option<String>,
}

/// What a fake drive starts with.
#[derive(Clone)]
pub struct DriveConfig {
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: String,
    /// A refresh token the token endpoint accepts from the start.
    pub refresh_token: String,
    /// The scope the token endpoint reports.
    pub scope: String,
    /// How long an access token lives (Google: about an hour).
    pub access_token_lifetime: Duration,
    /// Generated files (not folders).
    pub files: usize,
    /// Generated folders.
    pub folders: usize,
    /// Generated shared drives (items are spread over My Drive and these).
    pub shared_drives: usize,
    /// The seed of the generator, the ids and the fault RNG.
    pub seed: u64,
    /// Injected faults from the start.
    pub faults: FaultConfig,
    /// The largest export Drive gives (10 MB).
    pub export_limit_bytes: u64,
    /// The user's name and address (`owners`, `about.user`).
    pub user_name: String,
    /// The user's address.
    pub user_email: String,
}

impl Default for DriveConfig {
    fn default() -> DriveConfig {
        DriveConfig {
            client_id: "fake-client-id.apps.googleusercontent.com".to_owned(),
            client_secret: "fake-client-secret".to_owned(),
            refresh_token: "1//fake-drive-refresh-token".to_owned(),
            scope: "https://www.googleapis.com/auth/drive.readonly".to_owned(),
            access_token_lifetime: Duration::from_secs(3599),
            files: 0,
            folders: 0,
            shared_drives: 0,
            seed: 42,
            faults: FaultConfig::default(),
            export_limit_bytes: 10 * 1024 * 1024,
            user_name: "Test User".to_owned(),
            user_email: "tester@example.com".to_owned(),
        }
    }
}

impl std::fmt::Debug for DriveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriveConfig")
            .field("files", &self.files)
            .field("folders", &self.folders)
            .field("shared_drives", &self.shared_drives)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// Why a hook refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriveFakeError {
    /// No file has this id.
    #[error("no file with id {0}")]
    NotFound(String),
    /// The parent is not a folder.
    #[error("{0} is not a folder")]
    NotAFolder(String),
    /// The change makes no sense (a drive's root, a folder into itself...).
    #[error("{0}")]
    Invalid(String),
}

struct Shared {
    credentials: TestCredentials,
    export_limit: u64,
    drive: Mutex<Drive>,
    tokens: Mutex<TokenStore>,
    faults: Mutex<Faults>,
    generator: Mutex<StdRng>,
    media_bytes: AtomicU64,
    item_gets: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A fake drive with its authorization server: the state and the hooks. Cheap to
/// clone; every clone is the same drive. Serve it with [`DriveHandle::router`] or run
/// it with [`FakeDrive::start`].
#[derive(Clone)]
pub struct DriveHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DriveHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriveHandle").finish_non_exhaustive()
    }
}

impl tributary_google_fake::endpoints::OAuthHost for DriveHandle {
    fn with_tokens<R>(&self, f: impl FnOnce(&mut TokenStore) -> R) -> R {
        f(&mut lock(&self.shared.tokens))
    }

    fn token_issued(&self) {
        self.faults().counters.tokens_issued += 1;
    }
}

/// Folder and file names the generator draws from.
const WORDS: [&str; 24] = [
    "Projects",
    "Budget",
    "Roadmap",
    "Notes",
    "Design",
    "Q3 review",
    "Hiring",
    "Archive",
    "Specs",
    "Ops",
    "Marketing",
    "Research",
    "Données",
    "Présentations",
    "会议",
    "Legal",
    "Drafts",
    "Team photos",
    "Invoices",
    "2026",
    "Clients",
    "Backups",
    "Ideas",
    "Reports",
];

/// The kinds of generated files: MIME type, extension (empty for Google types), and
/// whether the body is text.
const KINDS: [(&str, &str); 12] = [
    ("application/vnd.google-apps.document", ""),
    ("application/vnd.google-apps.spreadsheet", ""),
    ("application/vnd.google-apps.presentation", ""),
    ("text/plain", "txt"),
    ("text/markdown", "md"),
    ("text/csv", "csv"),
    ("application/json", "json"),
    ("text/x-python", "py"),
    ("application/pdf", "pdf"),
    ("image/png", "png"),
    ("application/zip", "zip"),
    ("application/vnd.google-apps.form", ""),
];

impl DriveHandle {
    /// Builds the drive (generating `config.files` files in `config.folders` folders
    /// over My Drive and `config.shared_drives` shared drives, outside the changes
    /// feed) and the authorization server.
    pub fn new(config: DriveConfig) -> DriveHandle {
        let mut drive = Drive::new(config.seed, &config.user_name, &config.user_email);
        let mut rng = StdRng::seed_from_u64(config.seed ^ 0x0067_656e);
        let now = now_ms();
        for i in 0..config.shared_drives {
            drive.add_shared_drive(&format!("Shared drive {}", i + 1));
        }
        let span: i64 = 2 * 365 * 24 * 3600 * 1000;
        for i in 0..config.folders {
            let places = drive.places();
            // Mostly near the top, sometimes deeper (depth grows as folders are added).
            let parent = places[rng.random_range(0..places.len())].clone();
            let name = format!("{} {}", WORDS[rng.random_range(0..WORDS.len())], i);
            let created = now - span + rng.random_range(0..span / 2);
            let _ = drive.create(
                &name,
                drive::FOLDER,
                Some(&parent),
                FileBody::None,
                (created, created),
                false,
            );
        }
        let places = drive.places();
        for i in 0..config.files {
            let parent = places[rng.random_range(0..places.len())].clone();
            let (name, mime, body) = generated_file(&mut rng, i);
            let created = now - span + rng.random_range(0..span);
            let modified = created + rng.random_range(0..(now - created).max(1));
            let _ = drive.create(&name, mime, Some(&parent), body, (created, modified), false);
        }
        drive.clock_ms = now;
        let tokens = TokenStore::new(
            &config.client_id,
            &config.client_secret,
            &config.refresh_token,
            &config.scope,
            config.access_token_lifetime,
            config.seed,
        );
        DriveHandle {
            shared: Arc::new(Shared {
                credentials: TestCredentials {
                    client_id: config.client_id.clone(),
                    client_secret: config.client_secret.clone(),
                    refresh_token: config.refresh_token.clone(),
                },
                export_limit: config.export_limit_bytes,
                drive: Mutex::new(drive),
                tokens: Mutex::new(tokens),
                faults: Mutex::new(Faults::new(config.faults.clone(), config.seed)),
                generator: Mutex::new(StdRng::seed_from_u64(config.seed ^ 0x006e_6577)),
                media_bytes: AtomicU64::new(0),
                item_gets: AtomicU64::new(0),
            }),
        }
    }

    fn drive(&self) -> MutexGuard<'_, Drive> {
        lock(&self.shared.drive)
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.shared.faults)
    }

    /// The axum router serving the API and the OAuth endpoints.
    pub fn router(&self) -> axum::Router {
        server::router(self.clone())
    }

    /// The credentials the token endpoint accepts.
    pub fn credentials(&self) -> TestCredentials {
        self.shared.credentials.clone()
    }

    /// My Drive's root folder id.
    pub fn root_folder_id(&self) -> String {
        self.drive().root_id.clone()
    }

    /// The shared drives, as (id, name).
    pub fn shared_drives(&self) -> Vec<(String, String)> {
        self.drive()
            .drives
            .iter()
            .map(|(id, name)| (id.clone(), name.clone()))
            .collect()
    }

    /// Creates a folder (in My Drive's root when `parent` is `None`); returns its id.
    pub fn create_folder(
        &self,
        name: &str,
        parent: Option<&str>,
    ) -> Result<String, DriveFakeError> {
        let mut drive = self.drive();
        let now = drive.tick(now_ms());
        drive.create(
            name,
            drive::FOLDER,
            parent,
            FileBody::None,
            (now, now),
            true,
        )
    }

    /// Creates a file; returns its id.
    pub fn create_file(&self, file: NewFile) -> Result<String, DriveFakeError> {
        let mut drive = self.drive();
        let now = drive.tick(now_ms());
        drive.create(
            &file.name,
            &file.mime_type,
            file.parent.as_deref(),
            file.body,
            (now, now),
            true,
        )
    }

    /// Creates one generated file in a random folder, modified now; returns its id.
    pub fn generate_file(&self) -> String {
        let mut rng = lock(&self.shared.generator);
        let mut drive = self.drive();
        let places = drive.places();
        let parent = places[rng.random_range(0..places.len())].clone();
        let n = drive.nodes.len();
        let (name, mime, body) = generated_file(&mut rng, n);
        let now = drive.tick(now_ms());
        match drive.create(&name, mime, Some(&parent), body, (now, now), true) {
            Ok(id) => id,
            Err(_) => drive
                .create(
                    &name,
                    mime,
                    None,
                    FileBody::Bytes(b"x".to_vec()),
                    (now, now),
                    true,
                )
                .unwrap_or_default(),
        }
    }

    /// Replaces a file's content (a new version).
    pub fn edit(&self, id: &str, body: FileBody) -> Result<(), DriveFakeError> {
        let mut drive = self.drive();
        let now = drive.tick(now_ms());
        drive.edit(id, body, now)
    }

    /// Changes an item's metadata only (a new version; name and place unchanged).
    pub fn touch(&self, id: &str) -> Result<(), DriveFakeError> {
        let mut drive = self.drive();
        let now = drive.tick(now_ms());
        drive.touch(id, now)
    }

    /// Renames an item.
    pub fn rename(&self, id: &str, name: &str) -> Result<(), DriveFakeError> {
        let mut drive = self.drive();
        let now = drive.tick(now_ms());
        drive.rename(id, name, now)
    }

    /// Moves an item into folder `new_parent` (or a shared drive's root).
    pub fn move_to(&self, id: &str, new_parent: &str) -> Result<(), DriveFakeError> {
        let mut drive = self.drive();
        let now = drive.tick(now_ms());
        drive.move_to(id, new_parent, now)
    }

    /// Moves an item (and what lies under it) to the trash.
    pub fn trash(&self, id: &str) -> Result<(), DriveFakeError> {
        let mut drive = self.drive();
        let now = drive.tick(now_ms());
        drive.trash(id, now)
    }

    /// Takes an item out of the trash.
    pub fn untrash(&self, id: &str) -> Result<(), DriveFakeError> {
        let mut drive = self.drive();
        let now = drive.tick(now_ms());
        drive.untrash(id, now)
    }

    /// Deletes an item (and what lies under it) for good.
    pub fn delete(&self, id: &str) -> Result<(), DriveFakeError> {
        let mut drive = self.drive();
        let now = drive.tick(now_ms());
        drive.delete(id, now)
    }

    /// The user loses access to an item (and what lies under it).
    pub fn unshare(&self, id: &str) -> Result<(), DriveFakeError> {
        let mut drive = self.drive();
        let now = drive.tick(now_ms());
        drive.unshare(id, now)
    }

    /// Every visible, untrashed file and folder.
    pub fn snapshot(&self) -> BTreeMap<String, FileTruth> {
        self.drive().snapshot(self.shared.export_limit)
    }

    /// Makes every changes page token handed out so far invalid.
    pub fn expire_page_tokens(&self) {
        let mut drive = self.drive();
        drive.valid_from = drive.next_seq;
    }

    /// The current start page token.
    pub fn page_token(&self) -> String {
        self.drive().next_seq.to_string()
    }

    /// A new access token for the configured refresh token.
    pub fn issue_access_token(&self) -> String {
        let refresh = self.shared.credentials.refresh_token.clone();
        lock(&self.shared.tokens)
            .issue_access_token(Some(&refresh))
            .access_token
    }

    /// A new refresh token (a new authorization).
    pub fn issue_refresh_token(&self) -> String {
        lock(&self.shared.tokens).issue_refresh_token()
    }

    /// Revokes a refresh token and its access tokens; false when it was not live.
    pub fn revoke_refresh_token(&self, token: &str) -> bool {
        lock(&self.shared.tokens).revoke_refresh_token(token)
    }

    /// Expires every access token now.
    pub fn expire_access_tokens(&self) {
        lock(&self.shared.tokens).expire_access_tokens();
    }

    /// Lets `calls` more API requests through, then expires every access token.
    pub fn expire_tokens_after_calls(&self, calls: u64) {
        self.faults().expire_tokens_after(calls);
    }

    /// How long access tokens issued from now on live.
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        lock(&self.shared.tokens).set_lifetime(lifetime);
    }

    /// Replaces the fault rates.
    pub fn set_faults(&self, config: FaultConfig) {
        self.faults().set_config(config);
    }

    /// Reseeds the fault RNG.
    pub fn reseed_faults(&self, seed: u64) {
        self.faults().reseed(seed);
    }

    /// Answers the next `count` API requests with `fault`.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        self.faults().fail_next(count, fault);
    }

    /// What was counted so far.
    pub fn counters(&self) -> Counters {
        self.faults().counters.clone()
    }

    /// Requests to `method` so far.
    pub fn calls(&self, method: DriveMethod) -> u64 {
        self.faults().counters.calls(method)
    }

    /// Content bytes served by `alt=media` and exports so far.
    pub fn media_bytes_served(&self) -> u64 {
        self.shared.media_bytes.load(Ordering::Relaxed)
    }

    /// `files.get` requests for the metadata of a file or folder (not of `root`) so far:
    /// the fetches of items.
    pub fn item_fetches(&self) -> u64 {
        self.shared.item_gets.load(Ordering::Relaxed)
    }

    /// Sets the counters back to zero.
    pub fn reset_counters(&self) {
        self.faults().counters = Counters::default();
        self.shared.media_bytes.store(0, Ordering::Relaxed);
        self.shared.item_gets.store(0, Ordering::Relaxed);
    }
}

/// A generated file: name, MIME type and a small body.
fn generated_file(rng: &mut StdRng, i: usize) -> (String, &'static str, FileBody) {
    let (mime, ext) = KINDS[rng.random_range(0..KINDS.len())];
    let word = WORDS[rng.random_range(0..WORDS.len())];
    let name = if ext.is_empty() {
        format!("{word} {i}")
    } else {
        format!("{} {i}.{ext}", word.to_lowercase())
    };
    let text = format!("{word} file {i}\nline two of {i}\n");
    let body = match mime {
        "application/vnd.google-apps.form" => FileBody::None,
        "application/pdf" | "image/png" | "application/zip" => FileBody::Generated {
            len: rng.random_range(1_000..20_000),
            seed: rng.random(),
        },
        "application/json" => {
            FileBody::Bytes(format!("{{\"n\": {i}, \"word\": \"{word}\"}}").into_bytes())
        }
        _ => FileBody::Bytes(text.into_bytes()),
    };
    (name, mime, body)
}

/// A [`DriveHandle`] served on a loopback port.
#[derive(Debug)]
pub struct FakeDrive {
    handle: DriveHandle,
    server: LoopbackServer,
}

impl FakeDrive {
    /// Starts a drive on a free loopback port.
    pub async fn start(config: DriveConfig) -> std::io::Result<FakeDrive> {
        FakeDrive::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts a drive on `addr`.
    pub async fn start_on(addr: SocketAddr, config: DriveConfig) -> std::io::Result<FakeDrive> {
        let handle = tokio::task::spawn_blocking(move || DriveHandle::new(config))
            .await
            .map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(addr).await?;
        let server = LoopbackServer::serve(listener, handle.router());
        Ok(FakeDrive { handle, server })
    }

    /// The drive's state and hooks.
    pub fn handle(&self) -> &DriveHandle {
        &self.handle
    }

    /// `http://127.0.0.1:PORT/`, the `baseUrl` setting.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}token", self.server.base_url())
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Stops serving.
    pub async fn stop(self) -> std::io::Result<()> {
        self.server.stop().await
    }
}
