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
//! The map itself, its bounded walks (at most [`MAX_DEPTH`] folders, a cycle ends the
//! walk) and its size are the SDK kit's ([`tributary_sdk::kit::folders`]): a parent
//! the map does not hold (a folder created since the last changes check, or one the
//! user cannot see) is looked up or ends the path there.

pub use tributary_sdk::kit::folders::{Folder, FolderMap, MAX_DEPTH, Walk};

/// The sync-state key of the folder map.
pub const FOLDERS: &str = "folders";
