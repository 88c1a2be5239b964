//! The drive's state: a tree of folders and files under one root, the recycle bin of
//! deleted items, and the change indices delta rounds read.
//!
//! Every item has a *key* (a number that never changes and is never reused) besides its
//! Graph id. Changes are numbered by one drive-wide sequence; each item remembers the
//! sequence of its latest change twice:
//!
//! - `own_seq`: the latest change of the item itself (created, content edited,
//!   renamed, moved, deleted, restored);
//! - `tree_seq`: the latest change of the item or of anything below it (a folder
//!   whose child changed has changed too, as Graph's delta reports a changed item's
//!   ancestors unless the request says `deltaExcludeParent`).
//!
//! Two ordered indices, `own_changes` and `tree_changes`, map each item's current
//! sequence to its key, so a round of changes `(from, to]` is a range of one of them and
//! each item is in it once, in its latest state, whatever happened to it in between.
//! A deleted item keeps its key in both indices (at its deletion's sequence) and lives
//! on in `deleted`, from where a round reports it with the `deleted` facet and
//! [`Drive::restore`] brings it back.
//!
//! eTag and cTag follow Graph's rules: a file's eTag changes with every change of it
//! and its cTag only with its content; a folder's eTag changes with its own properties
//! (name, place) and its cTag with anything below it (and with its own changes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::content::Body;
use crate::hashes;
use crate::{DeltaOrder, DriveType, OneDriveFakeError};

/// An item's key.
pub(crate) type Key = u64;

/// A file's content and what is known about it.
#[derive(Debug, Clone)]
pub(crate) struct FileData {
    pub(crate) body: Body,
    pub(crate) len: u64,
    pub(crate) mime_type: String,
    pub(crate) quick_xor: String,
    /// Personal drives only.
    pub(crate) sha1: Option<String>,
}

/// A folder's children or a file's content.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Folder { children: BTreeSet<Key> },
    File(FileData),
}

/// One item of the drive.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) key: Key,
    pub(crate) id: String,
    /// The GUID inside its eTag and cTag.
    pub(crate) guid: String,
    pub(crate) name: String,
    /// `None` for the root.
    pub(crate) parent: Option<Key>,
    pub(crate) node: Node,
    pub(crate) created_ms: i64,
    pub(crate) modified_ms: i64,
    /// `fileSystemInfo`: the times a client's file system gave the item.
    pub(crate) fs_created_ms: i64,
    pub(crate) fs_modified_ms: i64,
    pub(crate) etag_version: u64,
    pub(crate) ctag_version: u64,
    pub(crate) own_seq: u64,
    pub(crate) tree_seq: u64,
    /// A file's length; a folder's: every file below it.
    pub(crate) size: u64,
    /// Where the first delta round lists it.
    pub(crate) order: u64,
}

impl Item {
    pub(crate) fn is_folder(&self) -> bool {
        matches!(self.node, Node::Folder { .. })
    }

    pub(crate) fn file(&self) -> Option<&FileData> {
        match &self.node {
            Node::File(file) => Some(file),
            Node::Folder { .. } => None,
        }
    }

    pub(crate) fn children(&self) -> Option<&BTreeSet<Key>> {
        match &self.node {
            Node::Folder { children } => Some(children),
            Node::File(_) => None,
        }
    }

    /// `"{GUID},N"`.
    pub(crate) fn etag(&self) -> String {
        format!("\"{{{}}},{}\"", self.guid, self.etag_version)
    }

    /// `"c:{GUID},N"`.
    pub(crate) fn ctag(&self) -> String {
        format!("\"c:{{{}}},{}\"", self.guid, self.ctag_version)
    }
}

/// A deleted item, in the recycle bin.
#[derive(Debug, Clone)]
pub(crate) struct Tombstone {
    /// The item as it was (a folder keeps the children deleted with it).
    pub(crate) item: Item,
    pub(crate) deleted_ms: i64,
    /// The deletion it was part of.
    pub(crate) group: u64,
}

/// The drive.
#[derive(Debug)]
pub(crate) struct Drive {
    pub(crate) drive_type: DriveType,
    pub(crate) drive_id: String,
    /// Marks this drive's tokens (another fake's tokens are malformed here).
    pub(crate) tag: String,
    pub(crate) root: Key,
    pub(crate) created_ms: i64,
    pub(crate) items: BTreeMap<Key, Item>,
    ids: HashMap<String, Key>,
    pub(crate) deleted: BTreeMap<Key, Tombstone>,
    deleted_ids: HashMap<String, Key>,
    /// Live items by (order, key): the first round's listing.
    pub(crate) order: BTreeSet<(u64, Key)>,
    pub(crate) tree_changes: BTreeMap<u64, Key>,
    pub(crate) own_changes: BTreeMap<u64, Key>,
    /// (time, sequence reached) after each change since the start, for timestamp
    /// tokens; times never go back.
    events: Vec<(i64, u64)>,
    recording: bool,
    /// The latest sequence handed out.
    pub(crate) seq: u64,
    /// Tokens of older epochs are forgotten (410).
    pub(crate) epoch: u64,
    delta_order: DeltaOrder,
    order_seed: u64,
    next_key: Key,
    next_personal_id: u64,
    next_group: u64,
    clock_ms: i64,
    rng: StdRng,
}

/// Characters OneDrive does not take in a name.
const FORBIDDEN: &[char] = &['"', '*', ':', '<', '>', '?', '/', '\\', '|'];

/// Refuses a name OneDrive would refuse.
pub(crate) fn check_name(name: &str) -> Result<(), OneDriveFakeError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name
            .chars()
            .any(|c| FORBIDDEN.contains(&c) || c.is_control())
        || name.ends_with(' ')
        || name.ends_with('.');
    if bad {
        Err(OneDriveFakeError::InvalidName(name.to_owned()))
    } else {
        Ok(())
    }
}

/// A 64-bit mix (splitmix64's finalizer): a deterministic shuffle of keys.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Drive {
    /// An empty drive (its root only), created at `now_ms`.
    pub(crate) fn new(
        drive_type: DriveType,
        seed: u64,
        delta_order: DeltaOrder,
        now_ms: i64,
    ) -> Drive {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6f6e_6564_7269_7665);
        let drive_id = match drive_type {
            DriveType::Business => {
                const ALPHABET: &[u8] =
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                let mut id = "b!".to_owned();
                for _ in 0..64 {
                    id.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
                }
                id
            }
            DriveType::Personal => format!("{:016x}", rng.random::<u64>()),
        };
        // Not from the seed: two fakes of one seed must not take each other's tokens.
        let tag: String = (0..8)
            .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
            .collect();
        let mut drive = Drive {
            drive_type,
            drive_id,
            tag,
            root: 0,
            created_ms: now_ms,
            items: BTreeMap::new(),
            ids: HashMap::new(),
            deleted: BTreeMap::new(),
            deleted_ids: HashMap::new(),
            order: BTreeSet::new(),
            tree_changes: BTreeMap::new(),
            own_changes: BTreeMap::new(),
            events: Vec::new(),
            recording: false,
            seq: 0,
            epoch: 0,
            delta_order,
            order_seed: rng.random(),
            next_key: 0,
            next_personal_id: 101,
            next_group: 0,
            clock_ms: now_ms,
            rng,
        };
        let root = drive.insert(
            None,
            "root".to_owned(),
            Node::Folder {
                children: BTreeSet::new(),
            },
            now_ms,
            now_ms,
        );
        drive.root = root;
        drive
    }

    /// A time after every time handed out before, at least now.
    pub(crate) fn tick(&mut self, now_ms: i64) -> i64 {
        self.clock_ms = now_ms.max(self.clock_ms + 1);
        self.clock_ms
    }

    /// Records that the changes up to now happened at `time_ms` (once recording).
    fn record_event(&mut self, time_ms: i64) {
        if !self.recording {
            return;
        }
        let time_ms = self
            .events
            .last()
            .map_or(time_ms, |(last, _)| time_ms.max(*last));
        self.events.push((time_ms, self.seq));
    }

    /// From now on changes are recorded with their times: what came before (the
    /// generated content) happened "before `now_ms`", whatever times the items show.
    pub(crate) fn start_recording(&mut self, now_ms: i64) {
        self.recording = true;
        self.record_event(now_ms);
    }

    /// The sequence the drive had reached at `time_ms` (0 before the start).
    pub(crate) fn seq_at(&self, time_ms: i64) -> u64 {
        let reached = self.events.partition_point(|(t, _)| *t <= time_ms);
        match reached {
            0 => 0,
            n => self.events[n - 1].1,
        }
    }

    fn new_item_id(&mut self) -> String {
        match self.drive_type {
            DriveType::Business => {
                const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
                let mut id = "01".to_owned();
                for _ in 0..32 {
                    id.push(BASE32[self.rng.random_range(0..BASE32.len())] as char);
                }
                id
            }
            DriveType::Personal => {
                let n = self.next_personal_id;
                self.next_personal_id += 1;
                format!("{}!{n}", self.drive_id.to_uppercase())
            }
        }
    }

    fn new_guid(&mut self) -> String {
        tributary_msgraph_fake::format_guid(&format!("{:032X}", self.rng.random::<u128>()))
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Marks an item as changed itself.
    fn touch_own(&mut self, key: Key) {
        let seq = self.next_seq();
        if let Some(item) = self.items.get_mut(&key) {
            self.own_changes.remove(&item.own_seq);
            self.tree_changes.remove(&item.tree_seq);
            item.own_seq = seq;
            item.tree_seq = seq;
            self.own_changes.insert(seq, key);
            self.tree_changes.insert(seq, key);
        }
    }

    /// Every folder from `from` up to the root changed below: its size moves by
    /// `size_delta`, its cTag and modification time change.
    fn touch_ancestors(&mut self, from: Option<Key>, size_delta: i128, now_ms: i64) {
        let mut cursor = from;
        while let Some(key) = cursor {
            let seq = self.next_seq();
            let Some(item) = self.items.get_mut(&key) else {
                break;
            };
            item.size = u64::try_from((i128::from(item.size) + size_delta).max(0)).unwrap_or(0);
            item.ctag_version += 1;
            item.modified_ms = item.modified_ms.max(now_ms);
            self.tree_changes.remove(&item.tree_seq);
            item.tree_seq = seq;
            self.tree_changes.insert(seq, key);
            cursor = item.parent;
        }
    }

    /// Adds an item (no checks); returns its key.
    fn insert(
        &mut self,
        parent: Option<Key>,
        name: String,
        node: Node,
        created_ms: i64,
        modified_ms: i64,
    ) -> Key {
        let key = self.next_key;
        self.next_key += 1;
        let id = self.new_item_id();
        let guid = self.new_guid();
        let size = match &node {
            Node::File(file) => file.len,
            Node::Folder { .. } => 0,
        };
        let order = match self.delta_order {
            DeltaOrder::Created => key,
            DeltaOrder::Shuffled => mix(key ^ self.order_seed),
        };
        let item = Item {
            key,
            id: id.clone(),
            guid,
            name,
            parent,
            node,
            created_ms,
            modified_ms,
            fs_created_ms: created_ms,
            fs_modified_ms: modified_ms,
            etag_version: 1,
            ctag_version: 1,
            own_seq: 0,
            tree_seq: 0,
            size,
            order,
        };
        self.items.insert(key, item);
        self.ids.insert(id, key);
        self.order.insert((order, key));
        self.touch_own(key);
        if let Some(parent) = parent
            && let Some(Node::Folder { children }) =
                self.items.get_mut(&parent).map(|p| &mut p.node)
        {
            children.insert(key);
        }
        self.touch_ancestors(parent, i128::from(size), modified_ms);
        key
    }

    /// The key of a live item's id.
    pub(crate) fn key_of(&self, id: &str) -> Option<Key> {
        self.ids.get(id).copied()
    }

    fn live(&self, id: &str) -> Result<Key, OneDriveFakeError> {
        self.key_of(id)
            .ok_or_else(|| OneDriveFakeError::ItemNotFound(id.to_owned()))
    }

    fn folder(&self, id: &str) -> Result<Key, OneDriveFakeError> {
        let key = self.live(id)?;
        if self.items.get(&key).is_some_and(Item::is_folder) {
            Ok(key)
        } else {
            Err(OneDriveFakeError::NotAFolder(id.to_owned()))
        }
    }

    /// Refuses `name` in `folder` when a child other than `except` has it (names are
    /// unique in a folder, without regard to case).
    fn check_free(
        &self,
        folder: Key,
        name: &str,
        except: Option<Key>,
    ) -> Result<(), OneDriveFakeError> {
        let taken = self
            .items
            .get(&folder)
            .and_then(Item::children)
            .is_some_and(|children| {
                children.iter().any(|child| {
                    Some(*child) != except
                        && self
                            .items
                            .get(child)
                            .is_some_and(|c| c.name.eq_ignore_ascii_case(name))
                })
            });
        if taken {
            Err(OneDriveFakeError::NameAlreadyExists(name.to_owned()))
        } else {
            Ok(())
        }
    }

    /// A name not taken in `folder`: `name`, else `stem (2).ext`, `stem (3).ext`...
    pub(crate) fn free_name(&self, folder: Key, name: &str) -> String {
        if self.check_free(folder, name, None).is_ok() {
            return name.to_owned();
        }
        let (stem, ext) = match name.rfind('.') {
            Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
            _ => (name, ""),
        };
        (2..)
            .map(|n| format!("{stem} ({n}){ext}"))
            .find(|candidate| self.check_free(folder, candidate, None).is_ok())
            .unwrap_or_else(|| name.to_owned())
    }

    /// The file facts of new content.
    pub(crate) fn file_data(&self, body: Body, mime_type: String) -> FileData {
        let bytes = body.bytes();
        let quick_xor = hashes::quick_xor_hash(&bytes);
        let sha1 = match self.drive_type {
            DriveType::Personal => Some(hashes::sha1_hex(&bytes)),
            DriveType::Business => None,
        };
        let len = bytes.len() as u64;
        FileData {
            body,
            len,
            mime_type,
            quick_xor,
            sha1,
        }
    }

    /// Creates a folder in `parent` (an id); returns its key.
    pub(crate) fn create_folder(
        &mut self,
        parent: &str,
        name: &str,
        created_ms: i64,
    ) -> Result<Key, OneDriveFakeError> {
        check_name(name)?;
        let parent = self.folder(parent)?;
        self.check_free(parent, name, None)?;
        let node = Node::Folder {
            children: BTreeSet::new(),
        };
        let key = self.insert(Some(parent), name.to_owned(), node, created_ms, created_ms);
        self.record_event(created_ms);
        Ok(key)
    }

    /// Creates a file in `parent` (an id); returns its key.
    pub(crate) fn create_file(
        &mut self,
        parent: &str,
        name: &str,
        file: FileData,
        created_ms: i64,
        modified_ms: i64,
    ) -> Result<Key, OneDriveFakeError> {
        check_name(name)?;
        let parent = self.folder(parent)?;
        self.check_free(parent, name, None)?;
        let key = self.insert(
            Some(parent),
            name.to_owned(),
            Node::File(file),
            created_ms,
            modified_ms.max(created_ms),
        );
        self.record_event(modified_ms.max(created_ms));
        Ok(key)
    }

    /// Replaces a file's content.
    pub(crate) fn set_content(
        &mut self,
        id: &str,
        file: FileData,
        now_ms: i64,
    ) -> Result<(), OneDriveFakeError> {
        let key = self.live(id)?;
        let item = self
            .items
            .get_mut(&key)
            .ok_or_else(|| OneDriveFakeError::ItemNotFound(id.to_owned()))?;
        let Node::File(old) = &mut item.node else {
            return Err(OneDriveFakeError::NotAFile(id.to_owned()));
        };
        let delta = i128::from(file.len) - i128::from(old.len);
        *old = file;
        item.size = old.len;
        item.etag_version += 1;
        item.ctag_version += 1;
        item.modified_ms = now_ms;
        item.fs_modified_ms = now_ms;
        let parent = item.parent;
        self.touch_own(key);
        self.touch_ancestors(parent, delta, now_ms);
        self.record_event(now_ms);
        Ok(())
    }

    /// Renames an item (not the root).
    pub(crate) fn rename(
        &mut self,
        id: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<(), OneDriveFakeError> {
        check_name(name)?;
        let key = self.live(id)?;
        let parent = self.movable_parent(key, id)?;
        self.check_free(parent, name, Some(key))?;
        if let Some(item) = self.items.get_mut(&key) {
            item.name = name.to_owned();
            item.etag_version += 1;
            if item.is_folder() {
                item.ctag_version += 1;
            }
            item.modified_ms = now_ms;
        }
        self.touch_own(key);
        self.touch_ancestors(Some(parent), 0, now_ms);
        self.record_event(now_ms);
        Ok(())
    }

    fn movable_parent(&self, key: Key, id: &str) -> Result<Key, OneDriveFakeError> {
        self.items
            .get(&key)
            .and_then(|item| item.parent)
            .ok_or_else(|| OneDriveFakeError::Invalid(format!("{id} is the drive's root")))
    }

    /// Whether `key` is `ancestor` or below it.
    fn is_within(&self, key: Key, ancestor: Key) -> bool {
        let mut cursor = Some(key);
        while let Some(k) = cursor {
            if k == ancestor {
                return true;
            }
            cursor = self.items.get(&k).and_then(|item| item.parent);
        }
        false
    }

    /// Moves an item (not the root) into another folder.
    pub(crate) fn move_to(
        &mut self,
        id: &str,
        folder: &str,
        now_ms: i64,
    ) -> Result<(), OneDriveFakeError> {
        let key = self.live(id)?;
        let old_parent = self.movable_parent(key, id)?;
        let target = self.folder(folder)?;
        if self.is_within(target, key) {
            return Err(OneDriveFakeError::Invalid(format!(
                "{id} cannot move into itself or below itself"
            )));
        }
        let (name, size) = match self.items.get(&key) {
            Some(item) => (item.name.clone(), item.size),
            None => return Err(OneDriveFakeError::ItemNotFound(id.to_owned())),
        };
        self.check_free(target, &name, Some(key))?;
        if let Some(Node::Folder { children }) =
            self.items.get_mut(&old_parent).map(|p| &mut p.node)
        {
            children.remove(&key);
        }
        if let Some(Node::Folder { children }) = self.items.get_mut(&target).map(|p| &mut p.node) {
            children.insert(key);
        }
        if let Some(item) = self.items.get_mut(&key) {
            item.parent = Some(target);
            item.etag_version += 1;
            if item.is_folder() {
                item.ctag_version += 1;
            }
            item.modified_ms = now_ms;
        }
        self.touch_own(key);
        self.touch_ancestors(Some(old_parent), -i128::from(size), now_ms);
        self.touch_ancestors(Some(target), i128::from(size), now_ms);
        self.record_event(now_ms);
        Ok(())
    }

    /// The keys of `key` and everything below it, parents before children.
    fn subtree(&self, key: Key) -> Vec<Key> {
        let mut out = Vec::new();
        let mut stack = vec![key];
        while let Some(k) = stack.pop() {
            out.push(k);
            if let Some(children) = self.items.get(&k).and_then(Item::children) {
                stack.extend(children.iter().rev());
            }
        }
        out
    }

    /// Deletes an item (not the root) and everything below it; returns their ids,
    /// the item first.
    pub(crate) fn delete(
        &mut self,
        id: &str,
        now_ms: i64,
    ) -> Result<Vec<String>, OneDriveFakeError> {
        let key = self.live(id)?;
        let parent = self.movable_parent(key, id)?;
        let size = self.items.get(&key).map_or(0, |item| item.size);
        let group = self.next_group;
        self.next_group += 1;
        let mut ids = Vec::new();
        for k in self.subtree(key) {
            let seq = self.next_seq();
            let Some(mut item) = self.items.remove(&k) else {
                continue;
            };
            self.ids.remove(&item.id);
            self.order.remove(&(item.order, k));
            self.own_changes.remove(&item.own_seq);
            self.tree_changes.remove(&item.tree_seq);
            item.own_seq = seq;
            item.tree_seq = seq;
            self.own_changes.insert(seq, k);
            self.tree_changes.insert(seq, k);
            ids.push(item.id.clone());
            self.deleted_ids.insert(item.id.clone(), k);
            self.deleted.insert(
                k,
                Tombstone {
                    item,
                    deleted_ms: now_ms,
                    group,
                },
            );
        }
        if let Some(Node::Folder { children }) = self.items.get_mut(&parent).map(|p| &mut p.node) {
            children.remove(&key);
        }
        self.touch_ancestors(Some(parent), -i128::from(size), now_ms);
        self.record_event(now_ms);
        Ok(ids)
    }

    /// Brings a deleted item back where it was, with what was deleted with it below
    /// it; returns their ids. Its folder must be live, and its name free there.
    pub(crate) fn restore(
        &mut self,
        id: &str,
        now_ms: i64,
    ) -> Result<Vec<String>, OneDriveFakeError> {
        let key = *self
            .deleted_ids
            .get(id)
            .ok_or_else(|| OneDriveFakeError::ItemNotFound(id.to_owned()))?;
        let (parent, name, group, size) = match self.deleted.get(&key) {
            Some(t) => (t.item.parent, t.item.name.clone(), t.group, t.item.size),
            None => return Err(OneDriveFakeError::ItemNotFound(id.to_owned())),
        };
        let parent = parent
            .filter(|p| self.items.get(p).is_some_and(Item::is_folder))
            .ok_or_else(|| {
                OneDriveFakeError::Invalid(format!(
                    "the folder of {id} is deleted: restore it first"
                ))
            })?;
        self.check_free(parent, &name, None)?;
        let mut ids = Vec::new();
        let mut stack = vec![key];
        while let Some(k) = stack.pop() {
            let Some(tombstone) = self.deleted.get(&k).filter(|t| t.group == group) else {
                continue;
            };
            let item = tombstone.item.clone();
            self.deleted.remove(&k);
            self.deleted_ids.remove(&item.id);
            if let Some(children) = item.children() {
                stack.extend(children.iter().rev());
            }
            self.ids.insert(item.id.clone(), k);
            self.order.insert((item.order, k));
            ids.push(item.id.clone());
            self.items.insert(k, item);
            self.touch_own(k);
        }
        if let Some(Node::Folder { children }) = self.items.get_mut(&parent).map(|p| &mut p.node) {
            children.insert(key);
        }
        self.touch_ancestors(Some(parent), i128::from(size), now_ms);
        self.record_event(now_ms);
        Ok(ids)
    }

    /// `/a/b` of an item (`/` for the root), from the root's children down.
    pub(crate) fn path_of(&self, key: Key) -> String {
        let mut names = Vec::new();
        let mut cursor = Some(key);
        while let Some(k) = cursor {
            let Some(item) = self.items.get(&k) else {
                break;
            };
            if item.parent.is_some() {
                names.push(item.name.as_str());
            }
            cursor = item.parent;
        }
        names.reverse();
        format!("/{}", names.join("/"))
    }

    /// The names from the root's children down to `key`.
    pub(crate) fn names_to(&self, key: Key) -> Vec<String> {
        let path = self.path_of(key);
        path.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The item at a path of names below the root (compared without regard to case).
    pub(crate) fn resolve(&self, names: &[String]) -> Option<Key> {
        let mut key = self.root;
        for name in names {
            let children = self.items.get(&key)?.children()?;
            key = *children.iter().find(|c| {
                self.items
                    .get(c)
                    .is_some_and(|item| item.name.eq_ignore_ascii_case(name))
            })?;
        }
        Some(key)
    }

    /// Total size of the files in the recycle bin.
    pub(crate) fn deleted_bytes(&self) -> u64 {
        self.deleted
            .values()
            .filter_map(|t| t.item.file().map(|f| f.len))
            .sum()
    }

    /// A stored body for `bytes`.
    pub(crate) fn stored(bytes: Vec<u8>) -> Body {
        Body::Stored(Arc::from(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive() -> Drive {
        Drive::new(DriveType::Business, 1, DeltaOrder::Created, 1_000)
    }

    fn root_id(drive: &Drive) -> String {
        drive.items[&drive.root].id.clone()
    }

    /// A folder `name` made in the folder `parent` (an id) at 2,000 ms: its key and id.
    fn folder(drive: &mut Drive, parent: &str, name: &str) -> (Key, String) {
        let key = drive.create_folder(parent, name, 2_000).unwrap();
        (key, drive.items[&key].id.clone())
    }

    fn file(drive: &Drive, text: &str) -> FileData {
        drive.file_data(
            Drive::stored(text.as_bytes().to_vec()),
            "text/plain".to_owned(),
        )
    }

    #[test]
    fn sizes_and_tags_follow_the_tree() {
        let mut d = drive();
        let root_id = root_id(&d);
        let (a, a_id) = folder(&mut d, &root_id, "a");
        let f = file(&d, "hello");
        let x = d.create_file(&a_id, "x.txt", f, 3_000, 3_000).unwrap();
        let x_id = d.items[&x].id.clone();
        assert_eq!(d.items[&d.root].size, 5);
        assert_eq!(d.items[&a].size, 5);
        let (a_etag, a_ctag) = (d.items[&a].etag(), d.items[&a].ctag());
        let (x_etag, x_ctag) = (d.items[&x].etag(), d.items[&x].ctag());

        d.rename(&x_id, "y.txt", 4_000).unwrap();
        assert_ne!(d.items[&x].etag(), x_etag);
        assert_eq!(d.items[&x].ctag(), x_ctag, "a rename keeps the file's cTag");
        assert_eq!(
            d.items[&a].etag(),
            a_etag,
            "a child's change keeps the folder's eTag"
        );
        assert_ne!(d.items[&a].ctag(), a_ctag, "and changes its cTag");

        let f = file(&d, "hello, world");
        d.set_content(&x_id, f, 5_000).unwrap();
        assert_ne!(d.items[&x].ctag(), x_ctag);
        assert_eq!(d.items[&d.root].size, 12);
        assert_eq!(d.path_of(x), "/a/y.txt");
        assert_eq!(d.resolve(&["A".into(), "Y.TXT".into()]), Some(x));
    }

    #[test]
    fn names_are_unique_per_folder_and_checked() {
        let mut d = drive();
        let root_id = root_id(&d);
        d.create_folder(&root_id, "Docs", 2_000).unwrap();
        assert_eq!(
            d.create_folder(&root_id, "docs", 2_000),
            Err(OneDriveFakeError::NameAlreadyExists("docs".into()))
        );
        for bad in ["", "a:b", "x?", "trailing.", "..", "tab\there"] {
            assert!(d.create_folder(&root_id, bad, 2_000).is_err(), "{bad:?}");
        }
        assert_eq!(d.free_name(d.root, "Docs"), "Docs (2)");
    }

    #[test]
    fn a_deleted_folder_takes_its_children_and_comes_back_with_them() {
        let mut d = drive();
        let root_id = root_id(&d);
        let (_, a_id) = folder(&mut d, &root_id, "a");
        let (_, b_id) = folder(&mut d, &a_id, "b");
        let f = file(&d, "abc");
        let x = d.create_file(&b_id, "x", f, 2_000, 2_000).unwrap();
        let x_id = d.items[&x].id.clone();
        let deleted = d.delete(&a_id, 3_000).unwrap();
        assert_eq!(deleted, vec![a_id.clone(), b_id.clone(), x_id.clone()]);
        assert_eq!(d.items.len(), 1);
        assert_eq!(d.items[&d.root].size, 0);
        assert!(d.delete(&a_id, 3_000).is_err());
        let restored = d.restore(&a_id, 4_000).unwrap();
        assert_eq!(restored.len(), 3);
        assert_eq!(d.path_of(x), "/a/b/x");
        assert_eq!(d.items[&d.root].size, 3);
        assert!(d.deleted.is_empty());
    }

    #[test]
    fn moves_refuse_cycles_and_the_root() {
        let mut d = drive();
        let root_id = root_id(&d);
        let (_, a_id) = folder(&mut d, &root_id, "a");
        let (b, b_id) = folder(&mut d, &a_id, "b");
        assert!(d.move_to(&a_id, &b_id, 3_000).is_err());
        assert!(d.move_to(&root_id, &a_id, 3_000).is_err());
        d.move_to(&b_id, &root_id, 3_000).unwrap();
        assert_eq!(d.path_of(b), "/b");
    }

    #[test]
    fn each_item_is_in_the_change_index_once() {
        let mut d = drive();
        let root_id = root_id(&d);
        let (a, a_id) = folder(&mut d, &root_id, "a");
        for i in 0..5 {
            d.rename(&a_id, &format!("a{i}"), 3_000 + i).unwrap();
        }
        assert_eq!(d.tree_changes.len(), d.items.len());
        assert_eq!(d.own_changes.len(), d.items.len());
        assert_eq!(d.tree_changes.values().filter(|k| **k == a).count(), 1);
    }
}
