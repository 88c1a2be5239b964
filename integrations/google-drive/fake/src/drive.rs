//! The fake's state: a tree of files and folders in My Drive and in shared drives, and
//! the changes feed.
//!
//! Each node has one parent (Drive gives a file a single parent). A node is *trashed*
//! when it or a folder above it was explicitly trashed, and *visible* unless it or a
//! folder above it was unshared from the user. Every mutation records one change per
//! file it touched (a folder's trash, untrash, deletion and unsharing touch everything
//! under it, as Drive reports them); `changes.list` coalesces them, answering each
//! file's latest change after the page token only.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::{DriveFakeError, FileBody, FileTruth};

/// The MIME type of a folder.
pub const FOLDER: &str = "application/vnd.google-apps.folder";

/// A node of the tree (a drive's root, a folder or a file).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub id: String,
    pub name: String,
    pub mime_type: String,
    /// `None` for a drive's root.
    pub parent: Option<String>,
    /// The shared drive holding it.
    pub drive_id: Option<String>,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub version: i64,
    pub body: FileBody,
    /// The content's length and MD5, for files with content (not Google types).
    pub size: Option<u64>,
    pub md5: Option<String>,
    pub explicitly_trashed: bool,
    /// Unshared from the user: neither it nor anything under it can be seen.
    pub unshared: bool,
}

impl Node {
    pub fn is_folder(&self) -> bool {
        self.mime_type == FOLDER
    }

    pub fn is_root(&self) -> bool {
        self.parent.is_none()
    }

    /// Whether the node is one of Google's own types (no bytes of its own).
    pub fn is_google_type(&self) -> bool {
        self.mime_type.starts_with("application/vnd.google-apps.")
    }
}

/// A recorded change: which file, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChangeRecord {
    pub seq: u64,
    pub time_ms: i64,
}

/// The tree and the changes feed.
#[derive(Debug)]
pub(crate) struct Drive {
    pub nodes: BTreeMap<String, Node>,
    pub root_id: String,
    /// Shared drives: id (also its root's id) → name.
    pub drives: BTreeMap<String, String>,
    /// Each file's latest change (coalescing happens here: only the latest is kept).
    pub latest_change: BTreeMap<String, ChangeRecord>,
    /// The next change sequence number (a start page token is one of these).
    pub next_seq: u64,
    /// Page tokens below this are no longer accepted.
    pub valid_from: u64,
    /// The last timestamp handed out (times only move forward).
    pub clock_ms: i64,
    pub owner_name: String,
    pub owner_email: String,
    rng: StdRng,
    next_id: u64,
}

impl Drive {
    pub fn new(seed: u64, owner_name: &str, owner_email: &str) -> Drive {
        let mut drive = Drive {
            nodes: BTreeMap::new(),
            root_id: String::new(),
            drives: BTreeMap::new(),
            latest_change: BTreeMap::new(),
            next_seq: 1,
            valid_from: 0,
            clock_ms: 0,
            owner_name: owner_name.to_owned(),
            owner_email: owner_email.to_owned(),
            rng: StdRng::seed_from_u64(seed ^ 0x0064_7269_7665),
            next_id: 0,
        };
        let root = drive.new_id("0A");
        drive.root_id = root.clone();
        drive.insert_root(&root, "My Drive", None);
        drive
    }

    /// A Drive-like id: `prefix` and 30 more characters of `[A-Za-z0-9_-]`.
    pub fn new_id(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        self.next_id += 1;
        let mut id = prefix.to_owned();
        for _ in 0..30 {
            id.push(ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char);
        }
        id
    }

    /// A time after every time handed out before, at least `at_least`.
    pub fn tick(&mut self, at_least: i64) -> i64 {
        self.clock_ms = (self.clock_ms + 1).max(at_least);
        self.clock_ms
    }

    fn insert_root(&mut self, id: &str, name: &str, drive_id: Option<&str>) {
        self.nodes.insert(
            id.to_owned(),
            Node {
                id: id.to_owned(),
                name: name.to_owned(),
                mime_type: FOLDER.to_owned(),
                parent: None,
                drive_id: drive_id.map(str::to_owned),
                created_ms: 0,
                modified_ms: 0,
                version: 1,
                body: FileBody::None,
                size: None,
                md5: None,
                explicitly_trashed: false,
                unshared: false,
            },
        );
    }

    /// Adds a shared drive; returns its id.
    pub fn add_shared_drive(&mut self, name: &str) -> String {
        let id = self.new_id("0AD");
        self.drives.insert(id.clone(), name.to_owned());
        self.insert_root(&id, name, Some(&id));
        id
    }

    /// Records a change of `id` now.
    pub fn record(&mut self, id: &str, time_ms: i64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.latest_change
            .insert(id.to_owned(), ChangeRecord { seq, time_ms });
    }

    /// Adds a node under `parent` (My Drive's root when `None`), created and modified
    /// at the two times given.
    pub fn create(
        &mut self,
        name: &str,
        mime_type: &str,
        parent: Option<&str>,
        body: FileBody,
        (created_ms, modified_ms): (i64, i64),
        record: bool,
    ) -> Result<String, DriveFakeError> {
        let parent = parent.map_or_else(|| self.root_id.clone(), str::to_owned);
        let drive_id = {
            let folder = self.live(&parent)?;
            if !folder.is_folder() {
                return Err(DriveFakeError::NotAFolder(parent));
            }
            folder.drive_id.clone()
        };
        let id = self.new_id("1");
        let (size, md5) = if mime_type.starts_with("application/vnd.google-apps.") {
            (None, None)
        } else {
            content_digest(&body)
        };
        let version = i64::from(self.rng.random_range(1..50u32));
        self.nodes.insert(
            id.clone(),
            Node {
                id: id.clone(),
                name: name.to_owned(),
                mime_type: mime_type.to_owned(),
                parent: Some(parent),
                drive_id,
                created_ms,
                modified_ms,
                version,
                body,
                size,
                md5,
                explicitly_trashed: false,
                unshared: false,
            },
        );
        if record {
            self.record(&id, modified_ms);
        }
        Ok(id)
    }

    /// A node that exists (trashed or not, visible or not), not a drive's root.
    pub fn live(&self, id: &str) -> Result<&Node, DriveFakeError> {
        self.nodes
            .get(id)
            .ok_or_else(|| DriveFakeError::NotFound(id.to_owned()))
    }

    fn live_mut(&mut self, id: &str) -> Result<&mut Node, DriveFakeError> {
        self.nodes
            .get_mut(id)
            .ok_or_else(|| DriveFakeError::NotFound(id.to_owned()))
    }

    fn not_root(&self, id: &str) -> Result<(), DriveFakeError> {
        if self.live(id)?.is_root() {
            return Err(DriveFakeError::Invalid(format!("{id} is a drive's root")));
        }
        Ok(())
    }

    /// `id` and everything under it, `id` first.
    pub fn subtree(&self, id: &str) -> Vec<String> {
        let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for node in self.nodes.values() {
            if let Some(parent) = &node.parent {
                children.entry(parent).or_default().push(&node.id);
            }
        }
        let mut out = vec![id.to_owned()];
        let mut i = 0;
        while i < out.len() {
            if let Some(kids) = children.get(out[i].as_str()) {
                out.extend(kids.iter().map(|k| (*k).to_owned()));
            }
            i += 1;
        }
        out
    }

    /// A change to one node's metadata: new version and modification time, recorded.
    fn bump(&mut self, id: &str, now: i64) -> Result<(), DriveFakeError> {
        let node = self.live_mut(id)?;
        node.version += 1;
        node.modified_ms = now;
        self.record(id, now);
        Ok(())
    }

    pub fn edit(&mut self, id: &str, body: FileBody, now: i64) -> Result<(), DriveFakeError> {
        self.not_root(id)?;
        let node = self.live_mut(id)?;
        if node.is_folder() {
            return Err(DriveFakeError::Invalid(format!("{id} is a folder")));
        }
        if !node.is_google_type() {
            let (size, md5) = content_digest(&body);
            node.size = size;
            node.md5 = md5;
        }
        node.body = body;
        self.bump(id, now)
    }

    pub fn touch(&mut self, id: &str, now: i64) -> Result<(), DriveFakeError> {
        self.not_root(id)?;
        self.bump(id, now)
    }

    pub fn rename(&mut self, id: &str, name: &str, now: i64) -> Result<(), DriveFakeError> {
        self.not_root(id)?;
        self.live_mut(id)?.name = name.to_owned();
        self.bump(id, now)
    }

    pub fn move_to(&mut self, id: &str, parent: &str, now: i64) -> Result<(), DriveFakeError> {
        self.not_root(id)?;
        let target = self.live(parent)?;
        if !target.is_folder() {
            return Err(DriveFakeError::NotAFolder(parent.to_owned()));
        }
        let drive_id = target.drive_id.clone();
        if self.subtree(id).iter().any(|n| n == parent) {
            return Err(DriveFakeError::Invalid(format!(
                "cannot move {id} into itself or below itself"
            )));
        }
        let moved = self.subtree(id);
        for node in &moved {
            self.live_mut(node)?.drive_id = drive_id.clone();
        }
        self.live_mut(id)?.parent = Some(parent.to_owned());
        self.bump(id, now)
    }

    /// Trashes `id` (and so what lies under it): a change for each.
    pub fn trash(&mut self, id: &str, now: i64) -> Result<(), DriveFakeError> {
        self.not_root(id)?;
        self.live_mut(id)?.explicitly_trashed = true;
        for node in self.subtree(id) {
            self.bump(&node, now)?;
        }
        Ok(())
    }

    pub fn untrash(&mut self, id: &str, now: i64) -> Result<(), DriveFakeError> {
        self.not_root(id)?;
        self.live_mut(id)?.explicitly_trashed = false;
        for node in self.subtree(id) {
            self.bump(&node, now)?;
        }
        Ok(())
    }

    /// Deletes `id` and what lies under it for good: a removal for each.
    pub fn delete(&mut self, id: &str, now: i64) -> Result<(), DriveFakeError> {
        self.not_root(id)?;
        for node in self.subtree(id) {
            self.nodes.remove(&node);
            self.record(&node, now);
        }
        Ok(())
    }

    /// The user loses access to `id` and what lies under it: a removal for each.
    pub fn unshare(&mut self, id: &str, now: i64) -> Result<(), DriveFakeError> {
        self.not_root(id)?;
        self.live_mut(id)?.unshared = true;
        for node in self.subtree(id) {
            self.record(&node, now);
        }
        Ok(())
    }

    /// Whether `id` or a folder above it is trashed, and whether the user can see it.
    pub fn state(&self, id: &str) -> Option<(bool, bool)> {
        let mut trashed = false;
        let mut visible = true;
        let mut next = Some(id);
        let mut steps = 0;
        while let Some(at) = next {
            let node = self.nodes.get(at)?;
            trashed |= node.explicitly_trashed;
            visible &= !node.unshared;
            next = node.parent.as_deref();
            steps += 1;
            if steps > 10_000 {
                break;
            }
        }
        Some((trashed, visible))
    }

    /// `/` + the names from the top (the drive's name) down to the node.
    pub fn path(&self, id: &str) -> String {
        let mut names = Vec::new();
        let mut next = Some(id);
        while let Some(at) = next {
            let Some(node) = self.nodes.get(at) else {
                break;
            };
            names.push(node.name.as_str());
            next = node.parent.as_deref();
            if names.len() > 10_000 {
                break;
            }
        }
        names.reverse();
        format!("/{}", names.join("/"))
    }

    /// Every visible, untrashed file and folder (drive roots left out).
    pub fn snapshot(&self, export_limit: u64) -> BTreeMap<String, FileTruth> {
        self.nodes
            .values()
            .filter(|n| !n.is_root())
            .filter(|n| self.state(&n.id) == Some((false, true)))
            .map(|n| {
                let truth = FileTruth {
                    id: n.id.clone(),
                    name: n.name.clone(),
                    mime_type: n.mime_type.clone(),
                    path: self.path(&n.id),
                    parents: n.parent.iter().cloned().collect(),
                    drive_id: n.drive_id.clone(),
                    version: n.version,
                    modified_time: rfc3339(n.modified_ms),
                    created_time: rfc3339(n.created_ms),
                    size: n.size,
                    md5_checksum: n.md5.clone(),
                    is_folder: n.is_folder(),
                    text: truth_text(n, export_limit),
                };
                (n.id.clone(), truth)
            })
            .collect()
    }

    /// Ids of the nodes a listing may show, in the id order.
    pub fn listable(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values().filter(|n| !n.is_root())
    }

    /// The ids of the folders (not roots), for generators.
    pub fn folder_ids(&self) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.is_folder() && !n.is_root() && self.state(&n.id) == Some((false, true)))
            .map(|n| n.id.clone())
            .collect()
    }

    /// Every visible place a file can go: My Drive's root, shared drives' roots, folders.
    pub fn places(&self) -> Vec<String> {
        let mut places: Vec<String> = vec![self.root_id.clone()];
        places.extend(self.drives.keys().cloned());
        places.extend(self.folder_ids());
        places
    }

    /// The files changed since `seq`, as (latest change, id), oldest first.
    pub fn changes_since(&self, seq: u64) -> Vec<(ChangeRecord, String)> {
        let mut changed: Vec<(ChangeRecord, String)> = self
            .latest_change
            .iter()
            .filter(|(_, c)| c.seq >= seq)
            .map(|(id, c)| (*c, id.clone()))
            .collect();
        changed.sort_by_key(|(c, _)| c.seq);
        changed
    }
}

/// What a reader gets as a node's text: the export of a Doc, Sheet or Slides (when
/// Drive exports it), the bytes of a text file; `None` otherwise.
fn truth_text(node: &Node, export_limit: u64) -> Option<String> {
    let exported = matches!(
        node.mime_type.as_str(),
        "application/vnd.google-apps.document"
            | "application/vnd.google-apps.spreadsheet"
            | "application/vnd.google-apps.presentation"
    );
    let text_file = node.mime_type.starts_with("text/")
        || matches!(
            node.mime_type.as_str(),
            "application/json" | "application/xml"
        );
    if exported && node.body.len() > export_limit {
        return None;
    }
    (exported || text_file)
        .then(|| String::from_utf8_lossy(&node.body.bytes(0, node.body.len())).into_owned())
}

/// The length and MD5 (hex) of a body.
pub(crate) fn content_digest(body: &FileBody) -> (Option<u64>, Option<String>) {
    let mut md5 = Md5::new();
    let len = body.len();
    let mut at = 0;
    while at < len {
        let chunk = body.bytes(at, (len - at).min(1 << 20));
        md5.update(&chunk);
        at += chunk.len() as u64;
        if chunk.is_empty() {
            break;
        }
    }
    let digest = md5.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    (Some(len), Some(hex))
}

/// RFC 3339 with milliseconds and `Z`, as Drive writes times.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
