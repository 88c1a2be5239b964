//! The folder tree, kept in the account's sync state, and the paths resolved from it.
//!
//! A file's `path` is the names of its folders from the top (`/My Drive/Projects/a.txt`,
//! `/<shared drive>/Specs/b.md`). Drive gives each file only its parent's id, so the
//! integration keeps every folder it can see as `id → (name, parent)` under the sync
//! state key [`FOLDERS`]: the first `start` lists all folders (and names My Drive's
//! root and each shared drive's root), and the changes feed keeps the map current.
//! Only those two tasks write it (the first `start`, then `checkChanges`, which runs
//! one at a time per account), so concurrent jobs never overwrite each other's map.
//!
//! Size: about 60 bytes per folder in the account's sync state; a drive with 100,000
//! folders keeps about 6 MB there. Jobs read it in place (the sync state is shared by
//! the jobs of a claim): a download looks up the few folders above its file, and only
//! the tasks that change the map copy it.
//!
//! Provider data is hostile until proven otherwise: a walk up the tree stops after
//! [`MAX_DEPTH`] folders and at the first folder seen twice (a cycle), and a parent
//! the map does not hold (a folder created since the last changes check, or one the
//! user cannot see) is looked up or ends the path there.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};

/// The sync-state key of the folder map.
pub const FOLDERS: &str = "folders";

/// The deepest folder chain a path follows.
pub const MAX_DEPTH: usize = 64;

/// One folder: its name and its parent's id (none at the top of a drive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// The folder's name (or the drive's, for a drive's root).
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
    /// The map stored in `sync_state` (empty when there is none yet).
    pub fn from_sync_state(sync_state: &Arc<Map<String, Value>>) -> FolderMap {
        FolderMap {
            base: sync_state.clone(),
            overlay: BTreeMap::new(),
        }
    }

    /// Whether the sync state holds a map at all.
    pub fn stored(sync_state: &Map<String, Value>) -> bool {
        sync_state.contains_key(FOLDERS)
    }

    fn base_entry(&self, id: &str) -> Option<Folder> {
        self.base.get(FOLDERS)?.get(id).and_then(entry)
    }

    /// Every folder, as a map (for writing it back, and comparing).
    fn entries(&self) -> BTreeMap<String, Folder> {
        let mut all: BTreeMap<String, Folder> = match self.base.get(FOLDERS) {
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
        if Arc::ptr_eq(&self.base, &other.base) && other.overlay.is_empty() {
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

    /// The path of an item named `name` in the folder `parent`: the names from the
    /// top down to `name`. Folders come from the map, then from `looked_up` (folders
    /// found by asking Drive; `None` for one that cannot be seen, which starts the path
    /// below it). A folder in neither is [`Walk::Missing`] for the caller to look up,
    /// unless `give_up` (then it starts the path too). Stops at [`MAX_DEPTH`] folders
    /// and at a cycle.
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
        while let Some(id) = next.take() {
            if names.len() > MAX_DEPTH || !seen.insert(id.clone()) {
                tracing::warn!(folder_id = %id, "drive folder chain too deep or circular; path cut");
                break;
            }
            let folder = match self.get(&id) {
                Some(folder) => folder,
                None => match looked_up.get(&id) {
                    Some(Some(folder)) => folder.clone(),
                    Some(None) => break,
                    None if give_up => break,
                    None => return Walk::Missing(id),
                },
            };
            names.push(folder.name);
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
    }

    #[test]
    fn cycles_and_depth_are_bounded() {
        let none = BTreeMap::new();
        let mut map = FolderMap::default();
        map.insert("a", folder("A", Some("b")));
        map.insert("b", folder("B", Some("a")));
        assert_eq!(path(&map, &none, "a", "f"), Walk::Path("/B/A/f".into()));
        let mut deep = FolderMap::default();
        for i in 0..500 {
            deep.insert(&format!("d{i}"), folder("d", Some(&format!("d{}", i + 1))));
        }
        let Walk::Path(cut) = path(&deep, &none, "d0", "f") else {
            panic!("a walk of known folders needs no lookup");
        };
        assert_eq!(cut.matches('/').count(), MAX_DEPTH + 1, "{cut}");
    }

    #[test]
    fn the_map_round_trips_and_reports_changes() {
        let mut map = FolderMap::default();
        map.insert("root", folder("My Drive", None));
        map.insert("a", folder("A", Some("root")));
        let mut state = Map::new();
        state.insert(FOLDERS.into(), map.to_value());
        let state = Arc::new(state);
        let stored = FolderMap::from_sync_state(&state);
        assert_eq!(stored, map);
        let mut edited = stored.clone();
        edited.insert("a", folder("A2", Some("root")));
        assert_eq!(edited.changed_since(&stored), ["a"]);
        edited.insert("a", folder("A", Some("root")));
        assert!(edited.changed_since(&stored).is_empty(), "back as stored");
        let mut later = map.clone();
        later.insert("a", folder("A renamed", Some("root")));
        later.insert("c", folder("C", Some("a")));
        later.remove("root");
        assert_eq!(later.changed_since(&map), ["a", "c", "root"]);
        // Entries of the wrong shape are skipped, not fatal.
        let mut bad = Map::new();
        bad.insert(FOLDERS.into(), json!({"x": 7, "y": ["Y", null]}));
        assert_eq!(FolderMap::from_sync_state(&Arc::new(bad)).len(), 1);
    }
}
