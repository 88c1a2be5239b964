//! A folder tree kept in the account's sync state, and the paths resolved from it.
//!
//! File services give each item only its parent's id; an item's path (`/Projects/2026
//! plans/notes.txt`) is the names of its folders from the top. A file integration keeps
//! every folder it can see as `id → (name, parent)` under one sync-state key
//! (`{id: [name, parent or null]}`), updated by the task that follows the change feed
//! (one at a time per account, so concurrent jobs never overwrite each other's map),
//! and resolves paths from it.
//!
//! Size: about 60 bytes per folder in the account's sync state; a drive with 100,000
//! folders keeps about 6 MB there. Jobs read it in place (the sync state is shared by
//! the jobs of a claim): a download looks up the few folders above its file, and only
//! the tasks that change the map copy it.
//!
//! Provider data is hostile until proven otherwise: a walk up the tree stops after
//! [`MAX_DEPTH`] folders and at the first folder seen twice (a cycle), and a parent
//! the map does not hold is reported ([`Walk::Missing`]) for the caller to look up,
//! or ends the path there.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};

/// The deepest folder chain a path follows.
pub const MAX_DEPTH: usize = 64;

/// One folder: its name and its parent's id (none at the top of a drive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// The folder's name (or the drive's, for a drive's root; empty for a root that
    /// does not show in paths).
    pub name: String,
    /// The parent folder's id.
    pub parent: Option<String>,
}

/// Every folder the account can see, by id: the map of the job's sync state, read one
/// entry at a time (a job needs a handful of them, and the map is shared by the jobs
/// of a claim, so it is never copied whole), and what this job changed in it.
#[derive(Debug, Clone, Default)]
pub struct FolderMap {
    /// The sync state holding the map as of the job's claim.
    base: Arc<Map<String, Value>>,
    /// The sync-state key of the map.
    key: String,
    /// Folders this job added or changed (`Some`) or removed (`None`).
    overlay: BTreeMap<String, Option<Folder>>,
}

impl PartialEq for FolderMap {
    fn eq(&self, other: &FolderMap) -> bool {
        self.entries() == other.entries()
    }
}

/// A stored entry, `[name, parent]`; anything else is skipped (a hand-edited or
/// corrupt state must not stop the account).
fn entry(value: &Value) -> Option<Folder> {
    let name = value.get(0)?.as_str()?.to_owned();
    let parent = value.get(1).and_then(Value::as_str).map(str::to_owned);
    Some(Folder { name, parent })
}

impl FolderMap {
    /// The map stored under `key` in `sync_state` (empty when there is none yet).
    pub fn from_sync_state(sync_state: &Arc<Map<String, Value>>, key: &str) -> FolderMap {
        FolderMap {
            base: sync_state.clone(),
            key: key.to_owned(),
            overlay: BTreeMap::new(),
        }
    }

    /// Whether the sync state holds a map under `key` at all.
    pub fn stored(sync_state: &Map<String, Value>, key: &str) -> bool {
        sync_state.contains_key(key)
    }

    fn base_entry(&self, id: &str) -> Option<Folder> {
        self.base.get(&self.key)?.get(id).and_then(entry)
    }

    /// Every folder, as a map (for writing it back, and comparing).
    fn entries(&self) -> BTreeMap<String, Folder> {
        let mut all: BTreeMap<String, Folder> = match self.base.get(&self.key) {
            Some(Value::Object(stored)) => stored
                .iter()
                .filter_map(|(id, v)| Some((id.clone(), entry(v)?)))
                .collect(),
            _ => BTreeMap::new(),
        };
        for (id, folder) in &self.overlay {
            match folder {
                Some(folder) => all.insert(id.clone(), folder.clone()),
                None => all.remove(id),
            };
        }
        all
    }

    /// The map as stored: `{id: [name, parent or null]}`.
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.entries()
                .into_iter()
                .map(|(id, f)| (id, json!([f.name, f.parent])))
                .collect(),
        )
    }

    /// One folder.
    pub fn get(&self, id: &str) -> Option<Folder> {
        match self.overlay.get(id) {
            Some(folder) => folder.clone(),
            None => self.base_entry(id),
        }
    }

    /// Adds or replaces a folder.
    pub fn insert(&mut self, id: &str, folder: Folder) {
        self.overlay.insert(id.to_owned(), Some(folder));
    }

    /// Removes a folder.
    pub fn remove(&mut self, id: &str) {
        self.overlay.insert(id.to_owned(), None);
    }

    /// How many folders it holds.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids whose entry differs between `self` and `other` (renamed, moved, added
    /// or removed folders), sorted.
    pub fn changed_since(&self, other: &FolderMap) -> Vec<String> {
        if Arc::ptr_eq(&self.base, &other.base) && self.key == other.key && other.overlay.is_empty()
        {
            // The same claim's map: only what this job changed can differ.
            return self
                .overlay
                .iter()
                .filter(|(id, folder)| **folder != self.base_entry(id))
                .map(|(id, _)| id.clone())
                .collect();
        }
        let (mine, theirs) = (self.entries(), other.entries());
        let mut ids: Vec<String> = mine
            .iter()
            .filter(|(id, f)| theirs.get(*id) != Some(f))
            .map(|(id, _)| id.clone())
            .chain(theirs.keys().filter(|id| !mine.contains_key(*id)).cloned())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The folders held both before and now whose entry changed since `before`:
    /// renamed or moved, so that the paths of everything below them changed.
    pub fn moved_since(&self, before: &FolderMap) -> Vec<String> {
        self.changed_since(before)
            .into_iter()
            .filter(|id| before.get(id).is_some() && self.get(id).is_some())
            .collect()
    }

    /// How many folders lie above folder `id` in the map (0 at the top, or for a
    /// folder it does not hold), at most [`MAX_DEPTH`], cycles counted once.
    pub fn depth(&self, id: &str) -> usize {
        let mut seen = HashSet::new();
        let mut next = self.get(id).and_then(|f| f.parent);
        let mut depth = 0;
        while let Some(parent) = next.take() {
            if depth >= MAX_DEPTH || !seen.insert(parent.clone()) {
                break;
            }
            let Some(folder) = self.get(&parent) else {
                break;
            };
            depth += 1;
            next = folder.parent;
        }
        depth
    }

    /// The path of an item named `name` in the folder `parent`: the names from the
    /// top down to `name` (folders with an empty name, a root that does not show in
    /// paths, leave no segment). Folders come from the map, then from `looked_up`
    /// (folders found by asking the service; `None` for one that cannot be seen, which
    /// starts the path below it). A folder in neither is [`Walk::Missing`] for the
    /// caller to look up, unless `give_up` (then it starts the path too). Stops at
    /// [`MAX_DEPTH`] folders and at a cycle.
    pub fn walk(
        &self,
        looked_up: &BTreeMap<String, Option<Folder>>,
        parent: Option<&str>,
        name: &str,
        give_up: bool,
    ) -> Walk {
        let mut names = vec![name.to_owned()];
        let mut seen = HashSet::new();
        let mut next = parent.map(str::to_owned);
        let mut depth = 0usize;
        while let Some(id) = next.take() {
            if depth >= MAX_DEPTH || !seen.insert(id.clone()) {
                tracing::warn!(folder_id = %id, "folder chain too deep or circular; path cut");
                break;
            }
            depth += 1;
            let folder = match self.get(&id) {
                Some(folder) => folder,
                None => match looked_up.get(&id) {
                    Some(Some(folder)) => folder.clone(),
                    Some(None) => break,
                    None if give_up => break,
                    None => return Walk::Missing(id),
                },
            };
            if !folder.name.is_empty() {
                names.push(folder.name);
            }
            next = folder.parent;
        }
        names.reverse();
        Walk::Path(format!("/{}", names.join("/")))
    }
}

/// The answer of [`FolderMap::walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Walk {
    /// The path.
    Path(String),
    /// This folder must be looked up first.
    Missing(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "folders";

    fn folder(name: &str, parent: Option<&str>) -> Folder {
        Folder {
            name: name.into(),
            parent: parent.map(Into::into),
        }
    }

    fn path(
        map: &FolderMap,
        looked_up: &BTreeMap<String, Option<Folder>>,
        parent: &str,
        name: &str,
    ) -> Walk {
        map.walk(looked_up, Some(parent), name, false)
    }

    #[test]
    fn paths_walk_up_to_the_top() {
        let mut map = FolderMap::default();
        map.insert("root", folder("My Drive", None));
        map.insert("a", folder("Projects", Some("root")));
        map.insert("b", folder("2026 plans", Some("a")));
        let none = BTreeMap::new();
        assert_eq!(
            path(&map, &none, "b", "notes.txt"),
            Walk::Path("/My Drive/Projects/2026 plans/notes.txt".into())
        );
        assert_eq!(
            map.walk(&none, None, "orphan", false),
            Walk::Path("/orphan".into())
        );
        // A parent the map lacks must be looked up; one nobody can see ends the path.
        assert_eq!(path(&map, &none, "new", "x"), Walk::Missing("new".into()));
        let mut looked_up = BTreeMap::new();
        looked_up.insert("new".to_owned(), Some(folder("Fresh", Some("a"))));
        looked_up.insert("hidden".to_owned(), None);
        assert_eq!(
            path(&map, &looked_up, "new", "x"),
            Walk::Path("/My Drive/Projects/Fresh/x".into())
        );
        assert_eq!(
            path(&map, &looked_up, "hidden", "y"),
            Walk::Path("/y".into())
        );
        assert_eq!(
            map.walk(&none, Some("gone"), "z", true),
            Walk::Path("/z".into())
        );
        // A root without a name leaves no segment.
        let mut bare = FolderMap::default();
        bare.insert("r", folder("", None));
        bare.insert("d", folder("Docs", Some("r")));
        assert_eq!(
            path(&bare, &none, "d", "a.md"),
            Walk::Path("/Docs/a.md".into())
        );
        assert_eq!(bare.walk(&none, None, "", false), Walk::Path("/".into()));
        assert_eq!(
            (bare.depth("d"), bare.depth("r"), bare.depth("x")),
            (1, 0, 0)
        );
    }

    #[test]
    fn cycles_and_depth_are_bounded() {
        let none = BTreeMap::new();
        let mut map = FolderMap::default();
        map.insert("a", folder("A", Some("b")));
        map.insert("b", folder("B", Some("a")));
        assert_eq!(path(&map, &none, "a", "f"), Walk::Path("/B/A/f".into()));
        assert!(map.depth("a") <= 2);
        let mut deep = FolderMap::default();
        for i in 0..500 {
            deep.insert(&format!("d{i}"), folder("d", Some(&format!("d{}", i + 1))));
        }
        let Walk::Path(cut) = path(&deep, &none, "d0", "f") else {
            panic!("a walk of known folders needs no lookup");
        };
        assert_eq!(cut.matches('/').count(), MAX_DEPTH + 1, "{cut}");
        assert_eq!(deep.depth("d0"), MAX_DEPTH);
    }

    #[test]
    fn the_map_round_trips_and_reports_changes() {
        let mut map = FolderMap::default();
        map.insert("root", folder("My Drive", None));
        map.insert("a", folder("A", Some("root")));
        let mut state = Map::new();
        state.insert(KEY.into(), map.to_value());
        let state = Arc::new(state);
        assert!(FolderMap::stored(&state, KEY));
        let stored = FolderMap::from_sync_state(&state, KEY);
        assert_eq!(stored, map);
        let mut edited = stored.clone();
        edited.insert("a", folder("A2", Some("root")));
        assert_eq!(edited.changed_since(&stored), ["a"]);
        assert_eq!(edited.moved_since(&stored), ["a"]);
        edited.insert("a", folder("A", Some("root")));
        assert!(edited.changed_since(&stored).is_empty(), "back as stored");
        let mut later = map.clone();
        later.insert("a", folder("A renamed", Some("root")));
        later.insert("c", folder("C", Some("a")));
        later.remove("root");
        assert_eq!(later.changed_since(&map), ["a", "c", "root"]);
        assert_eq!(
            later.moved_since(&map),
            ["a"],
            "added and removed did not move"
        );
        // Entries of the wrong shape are skipped, not fatal.
        let mut bad = Map::new();
        bad.insert(KEY.into(), json!({"x": 7, "y": ["Y", null]}));
        assert_eq!(FolderMap::from_sync_state(&Arc::new(bad), KEY).len(), 1);
    }
}
