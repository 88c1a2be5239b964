//! A stateful fake of Microsoft Graph v1.0's OneDrive API, on loopback HTTP, speaking
//! Graph's wire format, for the `onedrive` integration's tests and `tributary fake
//! onedrive`.
//!
//! The fake follows Microsoft's published reference (the Graph v1.0 OpenAPI, CSDL and
//! TypeScript descriptions of `drive` and `driveItem` collected in the project's
//! shared spec folder, and the driveItem delta, download and resource pages). What
//! every Graph fake shares (the token endpoint, the error envelope, per-user
//! throttling, faults, the request pipeline) is `tributary-msgraph-fake`; this crate
//! is the drive and its routes, and it can share a tenant (one token endpoint, one
//! throttle) with the Outlook mail fake: see [`OneDriveHandle::with_graph`].
//!
//! # What it serves
//!
//! Each route has a `/me/drive/…` form and a `/drives/{drive-id}/…` form (the
//! drive's own id only). `{item}` is an item id or `root`.
//!
//! | operation (counters) | request |
//! |---|---|
//! | `drive.get` | `GET /v1.0/me/drive` |
//! | `driveItem.get` | `GET /v1.0/me/drive/root`, `GET /v1.0/me/drive/items/{item}` |
//! | `driveItem.children` | `GET /v1.0/me/drive/root/children`, `GET /v1.0/me/drive/items/{item}/children` |
//! | `driveItem.content` | `GET /v1.0/me/drive/items/{item}/content` (302 to a download URL) |
//! | `driveItem.delta` | `GET /v1.0/me/drive/root/delta` (also `delta()`, `microsoft.graph.delta`, `microsoft.graph.delta()`, `delta(token='…')`) |
//! | `driveItem.byPath` | `GET /v1.0/me/drive/root:/{path}:` and `…:/children`, `…:/content` (up to 16 segments) |
//! | `me.get` | `GET /v1.0/me` (from `tributary-msgraph-fake`) |
//! | identity platform | `GET /{tenant}/oauth2/v2.0/authorize`, `POST /{tenant}/oauth2/v2.0/token` |
//! | download URLs | `GET /download/{token}`: pre-authenticated, outside the Graph pipeline ([`OneDriveHandle::download_router`]) |
//!
//! Every Graph request needs a bearer token of the drive's owner holding `Files.Read`,
//! `Files.ReadWrite`, `Files.Read.All`, `Files.ReadWrite.All`, `Sites.Read.All` or
//! `Sites.ReadWrite.All` (403 `accessDenied` otherwise). Another user of the tenant
//! gets 404 `ResourceNotFound` from `/me/drive` (they have no drive) and 403
//! `accessDenied` from `/drives/{id}`; an unknown drive id is 404 `itemNotFound`.
//!
//! # Behaviour worth knowing
//!
//! - **Items.** Ids look like the drive type's (`01` and 32 base-32 characters on
//!   business drives, `{CID}!{n}` on personal ones). Names are unique in a folder
//!   without regard to case; paths are matched the same way. `eTag` changes with
//!   every change of an item; a file's `cTag` only with its content; a folder's `cTag`
//!   with anything below it. On business drives folders have no `cTag` (as the
//!   reference says). A folder's `size` is the total of the files below it, its
//!   `folder.childCount` its direct children. `file.hashes` holds `quickXorHash`
//!   (business) or `quickXorHash` and `sha1Hash` (personal), computed from the bytes
//!   served. `parentReference` carries `driveId`, `driveType`, `id` and, outside
//!   delta, `path` (`/drive/root:/a/b`, percent-encoded; `/drives/{id}/root:…` for
//!   the `/drives` form). `@microsoft.graph.downloadUrl` is on files of `GET` items
//!   and children unless a `$select` leaves it out, and in delta only when `$select`
//!   names it.
//! - **Children** are sorted by name (`$orderby=name` or `name desc`), paged by `$top`
//!   (default 200, at most 1,000) with `@odata.nextLink` (`$skiptoken`, a keyset:
//!   exact while the folder changes). `$select` is checked against driveItem's
//!   properties; `$filter`, `$search` and `$expand` are refused with 400.
//! - **Delta** (the root only). The first round lists every item that exists now,
//!   the root included, in the order [`OneDriveConfig::delta_order`] says (creation
//!   order, or a deterministic shuffle where children often come before their
//!   folders: Graph promises no order), in pages of `Prefer: odata.maxpagesize`, else
//!   the first request's `$top`, else 200 (at most 1,000), each with
//!   `@odata.nextLink`, the last with `@odata.deltaLink`. Links carry the state as
//!   the `token` function parameter (`…/root/delta?token=…`, or
//!   `…/root/delta(token='…')` with [`DeltaLinkStyle::Function`]); `$select` and
//!   `$top` travel in it. A later round returns each item changed since once, in its
//!   latest state, and with it the folders above it (each once too) unless the request
//!   has the `deltaExcludeParent` header; what is below a renamed or moved folder is not
//!   reported (its path changed, the items did not: track items by id). Deleted items carry the `deleted` facet
//!   (`{"state": "deleted"}` on business drives, `{}` on personal ones); deleting a
//!   folder deletes, and reports, everything below it, the folder first. As the
//!   reference's table says, delta items on business drives have no `cTag` and
//!   deleted ones no `name`; on personal drives deleted items have no `cTag` nor
//!   `size`. `parentReference` has no `path` in delta. `token=latest` answers an empty
//!   page and a deltaLink for now; a timestamp token (`token=2024-01-01T00:00:00Z`)
//!   works on business drives only. After [`OneDriveHandle::forget_delta_tokens`] a
//!   token answers 410 Gone with a `Location` that starts a fresh first round (with the
//!   same `$select` and `$top`) and the codes [`OneDriveConfig::resync`] and
//!   [`OneDriveConfig::resync_report`] say. A token that is not one of this drive's is
//!   400 `invalidRequest`.
//! - **Content.** `/content` of a file answers 302 Found with `Location`: a download
//!   URL on this server under `/download/` (or on a second listener, see
//!   [`DownloadHost`]), that takes no `Authorization` header and records whether it got
//!   one ([`DriveCounters::download_requests_with_authorization`]). It serves the
//!   file's current bytes, honours one `Range` (206, or 416 beyond the end; several
//!   ranges are ignored for a 200) and expires after
//!   [`OneDriveConfig::download_url_lifetime`] (default 1 hour) or
//!   [`OneDriveHandle::expire_download_urls`], then answering
//!   [`OneDriveConfig::expired_download_status`] (default 401). `If-None-Match` with
//!   the item's eTag or cTag answers 304, on `/content` and on the download URL. A
//!   folder's `/content` is 404 `itemNotFound`.
//! - Throttling, faults, latency, the gate, token rotation and the per-operation
//!   counters are `tributary-msgraph-fake`'s: reach them with
//!   [`OneDriveHandle::graph`]. Download URLs are outside the pipeline: no token, no
//!   throttle, their own faults ([`OneDriveHandle::fail_next_downloads`]).

mod content;
mod delta;
mod download;
mod drive;
mod hashes;
mod json;
mod server;
pub mod standalone;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::net::TcpListener;
use tributary_msgraph_fake::{GraphHandle, GraphRoutes, GraphUrls, GraphUser};
use tributary_testkit::serving::LoopbackServer;

pub use standalone::{OneDriveFake, fake};
pub use tributary_msgraph_fake::{Fault, Grant, GraphConfig, RefreshRotation, ThrottleConfig};

use drive::{Drive, Item, Key};

/// The scopes a full drive sync takes (with a refresh token).
pub const FILES_SCOPES: &[&str] = &["offline_access", "User.Read", "Files.Read"];

/// The kind of drive, which decides ids, hashes and what delta leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DriveType {
    /// OneDrive for Business (`business`).
    #[default]
    Business,
    /// OneDrive personal (`personal`).
    Personal,
}

impl DriveType {
    /// Graph's name.
    pub fn as_str(self) -> &'static str {
        match self {
            DriveType::Business => "business",
            DriveType::Personal => "personal",
        }
    }
}

/// What a 410 Gone tells the client to do about its local state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ResyncKind {
    /// `resyncChangesApplyDifferences`: take the server's version, deletes included.
    #[default]
    ApplyDifferences,
    /// `resyncChangesUploadDifferences`: keep local items the server did not return.
    UploadDifferences,
}

impl ResyncKind {
    /// Graph's code.
    pub fn code(self) -> &'static str {
        match self {
            ResyncKind::ApplyDifferences => "resyncChangesApplyDifferences",
            ResyncKind::UploadDifferences => "resyncChangesUploadDifferences",
        }
    }
}

/// Where the 410 Gone's envelope puts the [`ResyncKind`]'s code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ResyncReport {
    /// `error.code` is `resyncRequired` and `error.innerError.code` the kind's code.
    #[default]
    Nested,
    /// `error.code` is the kind's code (as the delta reference's table reads).
    TopLevel,
    /// `error.code` is `resyncRequired`, no inner code (as answers have been seen).
    CodeOnly,
}

/// The order of a first delta round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeltaOrder {
    /// Creation order: the root first, folders usually before what they hold.
    #[default]
    Created,
    /// A fixed shuffle: children often come before their folders.
    Shuffled,
}

/// How delta links carry their token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeltaLinkStyle {
    /// `…/root/delta?token=…`.
    #[default]
    Query,
    /// `…/root/delta(token='…')`.
    Function,
}

/// Where download URLs point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DownloadHost {
    /// The server the request came to, under `/download/` (it must serve
    /// [`OneDriveHandle::download_router`], as [`OneDriveHandle::router`] does).
    #[default]
    SameServer,
    /// A second listener of [`FakeOneDrive`] on this address (port 0: a free one):
    /// another host for the client, which must not send its token there.
    SeparateListener(SocketAddr),
}

/// What a generated drive holds.
#[derive(Debug, Clone, PartialEq)]
pub struct DriveContentConfig {
    /// Folders, nested up to [`DriveContentConfig::max_depth`] below the root.
    pub folders: usize,
    /// Files (the large ones included), spread over the root and the folders.
    pub files: usize,
    /// How deep folders go (1: only in the root).
    pub max_depth: usize,
    /// The share of small files that are text (prose, Markdown, JSON, CSV, Rust and
    /// Python source); the others are binary (PNG, JPEG, PDF, ZIP, DOCX, BIN).
    pub text_share: f64,
    /// How many of the files are large text files.
    pub large_files: usize,
    /// The size of a large file (at least; it ends at a whole unit of its kind).
    pub large_file_bytes: usize,
    /// Times are spread over this many days before now.
    pub days: u32,
    /// The generator's seed (the same seed, the same drive).
    pub seed: u64,
}

impl Default for DriveContentConfig {
    fn default() -> DriveContentConfig {
        DriveContentConfig {
            folders: 0,
            files: 0,
            max_depth: 3,
            text_share: 0.6,
            large_files: 0,
            large_file_bytes: 2 * 1024 * 1024,
            days: 365,
            seed: 42,
        }
    }
}

/// What a fake OneDrive starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct OneDriveConfig {
    /// The tenant: client, user, tokens, throttle, latency (not used by
    /// [`OneDriveHandle::with_graph`]).
    pub graph: GraphConfig,
    /// Business or personal.
    pub drive_type: DriveType,
    /// The generated content.
    pub content: DriveContentConfig,
    /// The order of first delta rounds.
    pub delta_order: DeltaOrder,
    /// How delta links carry their token.
    pub delta_link_style: DeltaLinkStyle,
    /// What a 410 for a forgotten token asks for.
    pub resync: ResyncKind,
    /// How the 410 says it.
    pub resync_report: ResyncReport,
    /// How long a download URL works (Graph: about an hour).
    pub download_url_lifetime: Duration,
    /// What an expired or unknown download URL answers: 401 (what clients report), or
    /// 403, 410.
    pub expired_download_status: StatusCode,
    /// Where download URLs point.
    pub download_host: DownloadHost,
    /// The drive's quota, in bytes.
    pub quota_total: u64,
}

impl Default for OneDriveConfig {
    fn default() -> OneDriveConfig {
        OneDriveConfig {
            graph: GraphConfig::default(),
            drive_type: DriveType::Business,
            content: DriveContentConfig::default(),
            delta_order: DeltaOrder::Created,
            delta_link_style: DeltaLinkStyle::Query,
            resync: ResyncKind::ApplyDifferences,
            resync_report: ResyncReport::Nested,
            download_url_lifetime: Duration::from_secs(3600),
            expired_download_status: StatusCode::UNAUTHORIZED,
            download_host: DownloadHost::SameServer,
            quota_total: 1024 * 1024 * 1024 * 1024,
        }
    }
}

/// Why a hook refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OneDriveFakeError {
    /// No live item has this id (or, for a restore, no deleted one).
    #[error("no item with id {0}")]
    ItemNotFound(String),
    /// The item is not a folder.
    #[error("{0} is not a folder")]
    NotAFolder(String),
    /// The item is not a file.
    #[error("{0} is not a file")]
    NotAFile(String),
    /// The folder has an item of this name (names are compared without regard to case).
    #[error("an item named {0} exists in the folder")]
    NameAlreadyExists(String),
    /// OneDrive does not take this name.
    #[error("{0:?} is not a valid name")]
    InvalidName(String),
    /// The change makes no sense (the root, a folder into itself...).
    #[error("{0}")]
    Invalid(String),
}

/// A file to create with [`OneDriveHandle::create_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Its name.
    pub name: String,
    /// The folder's id; the root when `None`.
    pub parent: Option<String>,
    /// The bytes.
    pub content: Vec<u8>,
    /// Its MIME type; from the name's extension when `None`.
    pub mime_type: Option<String>,
}

impl NewFile {
    /// A file of this name and content in the root.
    pub fn new(name: &str, content: impl Into<Vec<u8>>) -> NewFile {
        NewFile {
            name: name.to_owned(),
            parent: None,
            content: content.into(),
            mime_type: None,
        }
    }

    /// The same file in the folder `parent`.
    pub fn in_folder(mut self, parent: &str) -> NewFile {
        self.parent = Some(parent.to_owned());
        self
    }
}

/// One live item as the fake holds it: what a sync must end up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemTruth {
    /// The id.
    pub id: String,
    /// The name (`root` for the root).
    pub name: String,
    /// `/a/b.txt` (`/` for the root).
    pub path: String,
    /// The folder's id (`None` for the root).
    pub parent_id: Option<String>,
    /// Whether it is a folder.
    pub is_folder: bool,
    /// A file's length; a folder's: the files below it.
    pub size: u64,
    /// `eTag`.
    pub etag: String,
    /// `cTag` (also for folders of business drives, which Graph does not show).
    pub ctag: String,
    /// A file's MIME type.
    pub mime_type: Option<String>,
    /// Whether a file's MIME type is text-like.
    pub is_text: bool,
    /// A file's `quickXorHash`.
    pub quick_xor_hash: Option<String>,
    /// A file's `sha1Hash` (personal drives).
    pub sha1_hash: Option<String>,
    /// `createdDateTime`.
    pub created: String,
    /// `lastModifiedDateTime`.
    pub last_modified: String,
    /// A folder's direct children.
    pub child_count: Option<usize>,
    /// A file's bytes.
    pub content: Option<Vec<u8>>,
}

/// What the drive's routes and download URLs counted (the per-operation request
/// counts are [`GraphHandle::counters`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriveCounters {
    /// Delta requests that passed the access checks, whatever their answer.
    pub delta_requests: u64,
    /// 410 Gone answers to forgotten tokens.
    pub resyncs: u64,
    /// `/content` requests answered with a redirect.
    pub content_redirects: u64,
    /// 304 answers (on `/content` and on download URLs).
    pub not_modified: u64,
    /// Requests to download URLs, whatever their answer.
    pub download_requests: u64,
    /// Requests to download URLs that carried an `Authorization` header (a client
    /// should never send its token there).
    pub download_requests_with_authorization: u64,
    /// Downloads answered with bytes (200 or 206).
    pub downloads: u64,
    /// Of those, 206 answers.
    pub partial_downloads: u64,
    /// Bytes sent by download URLs.
    pub download_bytes: u64,
    /// Download URLs refused as expired or unknown.
    pub expired_downloads: u64,
}

/// Everything behind the handle's lock.
pub(crate) struct Inner {
    pub(crate) drive: Drive,
    pub(crate) counters: DriveCounters,
    /// `http://HOST` of download URLs, when not the request's own server.
    pub(crate) download_base: Option<String>,
    /// Download URLs of older epochs are refused.
    pub(crate) download_epoch: u64,
    /// Added to the download clock.
    pub(crate) advanced: Duration,
    /// Faults for download URLs: (answers left, fault).
    pub(crate) download_faults: Vec<(usize, Fault)>,
    generator: StdRng,
    generated: u64,
    text_share: f64,
}

pub(crate) struct Shared {
    pub(crate) graph: GraphHandle,
    pub(crate) owner: GraphUser,
    pub(crate) resync: ResyncKind,
    pub(crate) resync_report: ResyncReport,
    pub(crate) link_style: DeltaLinkStyle,
    pub(crate) download_lifetime: Duration,
    pub(crate) expired_status: StatusCode,
    pub(crate) quota_total: u64,
    /// Signs download URLs.
    pub(crate) secret: [u8; 16],
    /// The download clock's zero.
    pub(crate) started: tokio::time::Instant,
    pub(crate) inner: Mutex<Inner>,
}

/// A fake OneDrive with its Graph tenant: the state and the hooks. Cheap to clone;
/// every clone is the same drive. Serve it with [`OneDriveHandle::router`] (or mount
/// [`OneDriveHandle::graph_routes`] with other Graph routes, and
/// [`OneDriveHandle::download_router`]) or run it with [`FakeOneDrive::start`].
///
/// Hooks take item ids (`root` is not an alias here: use
/// [`OneDriveHandle::root_id`]) and act as a user in OneDrive would: each change is one
/// new version of the item (a new eTag and `lastModifiedDateTime`).
#[derive(Clone)]
pub struct OneDriveHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for OneDriveHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneDriveHandle")
            .field("owner", &self.shared.owner.address)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl OneDriveHandle {
    /// A tenant of `config.graph` and the drive of its first user, generated as
    /// `config.content` says.
    pub fn new(config: OneDriveConfig) -> OneDriveHandle {
        let graph = GraphHandle::new(config.graph.clone());
        OneDriveHandle::with_graph(graph, config)
    }

    /// The drive of `graph`'s first user, on a tenant shared with other Graph fakes
    /// (`config.graph` is not used).
    pub fn with_graph(graph: GraphHandle, config: OneDriveConfig) -> OneDriveHandle {
        let owner = graph.user();
        let now = now_ms();
        let born = now - (i64::from(config.content.days) + 1) * 86_400_000;
        let mut drive = Drive::new(
            config.drive_type,
            config.content.seed,
            config.delta_order,
            born,
        );
        content::generate_drive(&mut drive, &config.content, now);
        drive.start_recording(now);
        let mut rng = StdRng::seed_from_u64(config.content.seed ^ 0x7365_6372_6574);
        let secret: [u8; 16] = rng.random();
        OneDriveHandle {
            shared: Arc::new(Shared {
                graph,
                owner,
                resync: config.resync,
                resync_report: config.resync_report,
                link_style: config.delta_link_style,
                download_lifetime: config.download_url_lifetime,
                expired_status: config.expired_download_status,
                quota_total: config.quota_total,
                secret,
                started: tokio::time::Instant::now(),
                inner: Mutex::new(Inner {
                    drive,
                    counters: DriveCounters::default(),
                    download_base: None,
                    download_epoch: 0,
                    advanced: Duration::ZERO,
                    download_faults: Vec::new(),
                    generator: StdRng::seed_from_u64(config.content.seed ^ 0x006e_6577),
                    generated: config.content.files as u64,
                    text_share: config.content.text_share,
                }),
            }),
        }
    }

    pub(crate) fn inner(&self) -> MutexGuard<'_, Inner> {
        self.shared
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The tenant: tokens, throttle, faults, latency, gate and counters.
    pub fn graph(&self) -> &GraphHandle {
        &self.shared.graph
    }

    /// The drive's owner.
    pub fn owner(&self) -> GraphUser {
        self.shared.owner.clone()
    }

    /// The drive's id.
    pub fn drive_id(&self) -> String {
        self.inner().drive.drive_id.clone()
    }

    /// Business or personal.
    pub fn drive_type(&self) -> DriveType {
        self.inner().drive.drive_type
    }

    /// The root's id.
    pub fn root_id(&self) -> String {
        let inner = self.inner();
        inner
            .drive
            .items
            .get(&inner.drive.root)
            .map(|root| root.id.clone())
            .unwrap_or_default()
    }

    /// The drive routes, to mount with [`GraphHandle::router`] (alone, or merged with
    /// another Graph API's routes on one server). Download URLs need
    /// [`OneDriveHandle::download_router`] too.
    pub fn graph_routes(&self) -> GraphRoutes {
        server::routes(self)
    }

    /// The pre-authenticated download URLs' routes (`/download/{token}`), outside the
    /// Graph pipeline: merge them onto the Graph server (the default
    /// [`DownloadHost::SameServer`]) or serve them on another listener and say so with
    /// [`OneDriveHandle::set_download_base`].
    pub fn download_router(&self) -> axum::Router {
        download::router(self)
    }

    /// The axum router: the drive API behind the tenant's pipeline, the identity
    /// platform's endpoints and the download URLs.
    pub fn router(&self) -> axum::Router {
        self.router_with(GraphRoutes::new())
    }

    /// [`OneDriveHandle::router`] with another Graph API's routes on the same server
    /// (`drive.router_with(mail.graph_routes())`).
    pub fn router_with(&self, other: GraphRoutes) -> axum::Router {
        self.graph()
            .router(self.graph_routes().merge(other))
            .merge(self.download_router())
    }

    /// Download URLs point to `base` (`http://127.0.0.1:PORT`) from now on; `None`:
    /// to the server each request came to.
    pub fn set_download_base(&self, base: Option<String>) {
        self.inner().download_base = base.map(|b| b.trim_end_matches('/').to_owned());
    }

    /// A grant of the owner with [`FILES_SCOPES`].
    pub fn files_grant(&self) -> Grant {
        self.graph().mint_grant(FILES_SCOPES)
    }

    fn parent_or_root(inner: &Inner, parent: Option<&str>) -> String {
        match parent {
            Some(id) => id.to_owned(),
            None => inner
                .drive
                .items
                .get(&inner.drive.root)
                .map(|root| root.id.clone())
                .unwrap_or_default(),
        }
    }

    /// Creates a folder in `parent` (the root when `None`); returns its id.
    pub fn create_folder(
        &self,
        name: &str,
        parent: Option<&str>,
    ) -> Result<String, OneDriveFakeError> {
        let mut inner = self.inner();
        let parent = Self::parent_or_root(&inner, parent);
        let now = inner.drive.tick(now_ms());
        let key = inner.drive.create_folder(&parent, name, now)?;
        Ok(id_of(&inner.drive, key))
    }

    /// Creates a file; returns its id.
    pub fn create_file(&self, file: NewFile) -> Result<String, OneDriveFakeError> {
        let mut inner = self.inner();
        let parent = Self::parent_or_root(&inner, file.parent.as_deref());
        let mime = file
            .mime_type
            .unwrap_or_else(|| content::mime_for(&file.name).to_owned());
        let data = inner.drive.file_data(Drive::stored(file.content), mime);
        let now = inner.drive.tick(now_ms());
        let key = inner
            .drive
            .create_file(&parent, &file.name, data, now, now)?;
        Ok(id_of(&inner.drive, key))
    }

    /// Creates a generated file (text or binary, as the config's text share says) in a
    /// folder picked at random, or the root; returns its id.
    pub fn generate_file(&self) -> String {
        let mut inner = self.inner();
        inner.generated += 1;
        let n = inner.generated;
        let share = inner.text_share;
        let generated = content::generated_file(&mut inner.generator, share, n);
        let folders: Vec<Key> = inner
            .drive
            .items
            .values()
            .filter(|item| item.is_folder())
            .map(|item| item.key)
            .collect();
        let pick = inner.generator.random_range(0..folders.len().max(1));
        let folder = folders.get(pick).copied().unwrap_or(inner.drive.root);
        let name = inner.drive.free_name(folder, &generated.name);
        let mime = content::mime_for(&name).to_owned();
        let data = inner.drive.file_data(generated.body, mime);
        let folder_id = id_of(&inner.drive, folder);
        let now = inner.drive.tick(now_ms());
        match inner.drive.create_file(&folder_id, &name, data, now, now) {
            Ok(key) => id_of(&inner.drive, key),
            Err(_) => String::new(),
        }
    }

    /// Replaces a file's content (a new eTag, cTag, size, hashes and
    /// `lastModifiedDateTime`; the MIME type stays).
    pub fn edit_file(
        &self,
        id: &str,
        content: impl Into<Vec<u8>>,
    ) -> Result<(), OneDriveFakeError> {
        let mut inner = self.inner();
        let key = inner
            .drive
            .key_of(id)
            .ok_or_else(|| OneDriveFakeError::ItemNotFound(id.to_owned()))?;
        let mime = inner
            .drive
            .items
            .get(&key)
            .and_then(Item::file)
            .map(|f| f.mime_type.clone())
            .ok_or_else(|| OneDriveFakeError::NotAFile(id.to_owned()))?;
        let data = inner.drive.file_data(Drive::stored(content.into()), mime);
        let now = inner.drive.tick(now_ms());
        inner.drive.set_content(id, data, now)
    }

    /// Renames an item (not the root).
    pub fn rename(&self, id: &str, name: &str) -> Result<(), OneDriveFakeError> {
        let mut inner = self.inner();
        let now = inner.drive.tick(now_ms());
        inner.drive.rename(id, name, now)
    }

    /// Moves an item (not the root) into the folder `folder`.
    pub fn move_item(&self, id: &str, folder: &str) -> Result<(), OneDriveFakeError> {
        let mut inner = self.inner();
        let now = inner.drive.tick(now_ms());
        inner.drive.move_to(id, folder, now)
    }

    /// Deletes an item (not the root) and everything below it, to the recycle bin;
    /// returns the ids deleted, the item first.
    pub fn delete(&self, id: &str) -> Result<Vec<String>, OneDriveFakeError> {
        let mut inner = self.inner();
        let now = inner.drive.tick(now_ms());
        inner.drive.delete(id, now)
    }

    /// Restores a deleted item where it was, with what was deleted with it; returns
    /// the ids restored. Its folder must be live and its name free there.
    pub fn restore(&self, id: &str) -> Result<Vec<String>, OneDriveFakeError> {
        let mut inner = self.inner();
        let now = inner.drive.tick(now_ms());
        inner.drive.restore(id, now)
    }

    /// Every delta token handed out so far answers 410 Gone from now on.
    pub fn forget_delta_tokens(&self) {
        self.inner().drive.epoch += 1;
    }

    /// Every download URL handed out so far is refused from now on.
    pub fn expire_download_urls(&self) {
        self.inner().download_epoch += 1;
    }

    /// Moves the download clock forward, and the tenant's token and throttle clocks
    /// ([`GraphHandle::advance`]).
    pub fn advance(&self, by: Duration) {
        {
            let mut inner = self.inner();
            inner.advanced = inner.advanced.saturating_add(by);
        }
        self.graph().advance(by);
    }

    /// Answers the next `count` download-URL requests with `fault`.
    pub fn fail_next_downloads(&self, count: usize, fault: Fault) {
        if count > 0 {
            self.inner().download_faults.push((count, fault));
        }
    }

    /// Every live item by id, the root included: what a full sync must hold.
    pub fn items(&self) -> BTreeMap<String, ItemTruth> {
        let inner = self.inner();
        inner
            .drive
            .items
            .values()
            .map(|item| (item.id.clone(), truth_of(&inner.drive, item)))
            .collect()
    }

    /// One live item.
    pub fn item(&self, id: &str) -> Option<ItemTruth> {
        let inner = self.inner();
        let key = inner.drive.key_of(id)?;
        inner
            .drive
            .items
            .get(&key)
            .map(|item| truth_of(&inner.drive, item))
    }

    /// The live item at `/a/b` (names compared without regard to case).
    pub fn item_by_path(&self, path: &str) -> Option<ItemTruth> {
        let inner = self.inner();
        let names: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let key = inner.drive.resolve(&names)?;
        inner
            .drive
            .items
            .get(&key)
            .map(|item| truth_of(&inner.drive, item))
    }

    /// The ids of every live file.
    pub fn file_ids(&self) -> BTreeSet<String> {
        self.inner()
            .drive
            .items
            .values()
            .filter(|item| !item.is_folder())
            .map(|item| item.id.clone())
            .collect()
    }

    /// The ids of every live folder, the root included.
    pub fn folder_ids(&self) -> BTreeSet<String> {
        self.inner()
            .drive
            .items
            .values()
            .filter(|item| item.is_folder())
            .map(|item| item.id.clone())
            .collect()
    }

    /// The ids in the recycle bin.
    pub fn deleted_ids(&self) -> BTreeSet<String> {
        self.inner()
            .drive
            .deleted
            .values()
            .map(|t| t.item.id.clone())
            .collect()
    }

    /// What the drive's routes and download URLs counted.
    pub fn counters(&self) -> DriveCounters {
        self.inner().counters.clone()
    }

    /// Sets the drive's counters back to zero (not the tenant's).
    pub fn reset_counters(&self) {
        self.inner().counters = DriveCounters::default();
    }
}

fn id_of(drive: &Drive, key: Key) -> String {
    drive
        .items
        .get(&key)
        .map(|item| item.id.clone())
        .unwrap_or_default()
}

fn truth_of(drive: &Drive, item: &Item) -> ItemTruth {
    let file = item.file();
    ItemTruth {
        id: item.id.clone(),
        name: item.name.clone(),
        path: drive.path_of(item.key),
        parent_id: item.parent.map(|p| id_of(drive, p)),
        is_folder: item.is_folder(),
        size: item.size,
        etag: item.etag(),
        ctag: item.ctag(),
        mime_type: file.map(|f| f.mime_type.clone()),
        is_text: file.is_some_and(|f| content::is_text_mime(&f.mime_type)),
        quick_xor_hash: file.map(|f| f.quick_xor.clone()),
        sha1_hash: file.and_then(|f| f.sha1.clone()),
        created: json::time(item.created_ms),
        last_modified: json::time(item.modified_ms),
        child_count: item.children().map(BTreeSet::len),
        content: file.map(|f| f.body.bytes().into_owned()),
    }
}

/// A [`OneDriveHandle`] served on a loopback port (and its download URLs on a second
/// one, with [`DownloadHost::SeparateListener`]).
#[derive(Debug)]
pub struct FakeOneDrive {
    handle: OneDriveHandle,
    server: LoopbackServer,
    downloads: Option<LoopbackServer>,
}

impl FakeOneDrive {
    /// Starts a drive on a free loopback port.
    pub async fn start(config: OneDriveConfig) -> std::io::Result<FakeOneDrive> {
        FakeOneDrive::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts a drive on `addr`.
    pub async fn start_on(
        addr: SocketAddr,
        config: OneDriveConfig,
    ) -> std::io::Result<FakeOneDrive> {
        let host = config.download_host;
        let handle = tokio::task::spawn_blocking(move || OneDriveHandle::new(config))
            .await
            .map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(addr).await?;
        let (router, downloads) = match host {
            DownloadHost::SameServer => (handle.router(), None),
            DownloadHost::SeparateListener(download_addr) => {
                let download_listener = TcpListener::bind(download_addr).await?;
                let downloads = LoopbackServer::serve(download_listener, handle.download_router());
                handle.set_download_base(Some(format!("http://{}", downloads.addr())));
                (
                    handle.graph().router(handle.graph_routes()),
                    Some(downloads),
                )
            }
        };
        let server = LoopbackServer::serve(listener, router);
        Ok(FakeOneDrive {
            handle,
            server,
            downloads,
        })
    }

    /// The drive's state and hooks.
    pub fn handle(&self) -> &OneDriveHandle {
        &self.handle
    }

    /// The URLs of the server: the Graph root, the token and authorize endpoints.
    pub fn urls(&self) -> GraphUrls {
        GraphUrls::new(self.server.addr())
    }

    /// `http://127.0.0.1:PORT/v1.0`: the Graph root, the `baseUrl` setting.
    pub fn base_url(&self) -> String {
        self.urls().base_url()
    }

    /// `http://127.0.0.1:PORT/common/oauth2/v2.0/token`, the `tokenUrl` setting.
    pub fn token_url(&self) -> String {
        self.urls().token_url()
    }

    /// `http://127.0.0.1:PORT/common/oauth2/v2.0/authorize`.
    pub fn authorize_url(&self) -> String {
        self.urls().authorize_url()
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The download listener's address, with [`DownloadHost::SeparateListener`].
    pub fn download_addr(&self) -> Option<SocketAddr> {
        self.downloads.as_ref().map(LoopbackServer::addr)
    }

    /// Stops serving.
    pub async fn stop(self) -> std::io::Result<()> {
        if let Some(downloads) = self.downloads {
            downloads.stop().await?;
        }
        self.server.stop().await
    }
}
