//! A directory tree on disk, built from a spec, listed back and mutated.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::util::TempDir;

/// One entry of a [`TreeSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum SpecEntry {
    Dir(String),
    File(String, Vec<u8>),
    Sparse(String, u64),
}

/// What to build: directories, files with given bytes, sparse files.
///
/// Paths are relative, `/`-separated, and may hold any UTF-8 (spaces,
/// non-ASCII). Parent directories are created as needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeSpec {
    entries: Vec<SpecEntry>,
}

impl TreeSpec {
    /// An empty spec.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory (possibly empty).
    pub fn dir(mut self, path: &str) -> Self {
        self.entries.push(SpecEntry::Dir(path.to_owned()));
        self
    }

    /// Adds a file holding `contents`.
    pub fn file(mut self, path: &str, contents: impl AsRef<[u8]>) -> Self {
        self.entries
            .push(SpecEntry::File(path.to_owned(), contents.as_ref().to_vec()));
        self
    }

    /// Adds a sparse file of `len` bytes (zeros, no blocks written; via
    /// `set_len`).
    pub fn sparse(mut self, path: &str, len: u64) -> Self {
        self.entries.push(SpecEntry::Sparse(path.to_owned(), len));
        self
    }
}

/// Whether a listed entry is a directory or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
}

/// One entry as listed by [`FileTree::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// Relative, `/`-separated path.
    pub path: String,
    /// Directory or file.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Last modification time.
    pub mtime: SystemTime,
}

/// A directory tree on disk.
///
/// Made by [`FileTree::build`] in a directory you own, or by
/// [`FileTree::temp`] in a temporary directory removed on drop.
#[derive(Debug)]
pub struct FileTree {
    root: PathBuf,
    _temp: Option<TempDir>,
}

impl FileTree {
    /// Builds `spec` under `root` (created if missing).
    pub fn build(root: impl Into<PathBuf>, spec: &TreeSpec) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| Error::io("creating tree root", &root, e))?;
        let tree = FileTree { root, _temp: None };
        tree.apply(spec)?;
        Ok(tree)
    }

    /// Builds `spec` in a new temporary directory, removed when the tree is
    /// dropped.
    pub fn temp(spec: &TreeSpec) -> Result<Self> {
        let temp = TempDir::new("tributary-tree")?;
        let root = temp.path().join("root");
        let mut tree = FileTree::build(root, spec)?;
        crate::util::set_mode(&tree.root, 0o755)?;
        tree._temp = Some(temp);
        Ok(tree)
    }

    /// The tree's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Applies more of a spec to the existing tree.
    pub fn apply(&self, spec: &TreeSpec) -> Result<()> {
        for entry in &spec.entries {
            match entry {
                SpecEntry::Dir(p) => self.add_dir(p)?,
                SpecEntry::File(p, bytes) => self.add_file(p, bytes)?,
                SpecEntry::Sparse(p, len) => self.add_sparse(p, *len)?,
            }
        }
        Ok(())
    }

    /// The absolute path of relative `path`, refusing absolute paths, empty
    /// paths and `..`.
    pub fn path(&self, path: &str) -> Result<PathBuf> {
        let rel = Path::new(path);
        if path.is_empty() {
            return Err(Error::BadPath {
                path: path.into(),
                reason: "empty",
            });
        }
        for c in rel.components() {
            match c {
                Component::Normal(_) | Component::CurDir => {}
                Component::ParentDir => {
                    return Err(Error::BadPath {
                        path: path.into(),
                        reason: "contains ..",
                    });
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(Error::BadPath {
                        path: path.into(),
                        reason: "absolute",
                    });
                }
            }
        }
        Ok(self.root.join(rel))
    }

    fn parent_dirs(&self, full: &Path) -> Result<()> {
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("creating parent", parent, e))?;
        }
        Ok(())
    }

    /// Creates a directory (and its parents).
    pub fn add_dir(&self, path: &str) -> Result<()> {
        let full = self.path(path)?;
        fs::create_dir_all(&full).map_err(|e| Error::io("creating directory", &full, e))
    }

    /// Creates (or replaces) a file holding `contents`.
    pub fn add_file(&self, path: &str, contents: &[u8]) -> Result<()> {
        let full = self.path(path)?;
        self.parent_dirs(&full)?;
        let mut f = File::create(&full).map_err(|e| Error::io("creating file", &full, e))?;
        f.write_all(contents)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io("writing file", &full, e))
    }

    /// Creates a sparse file of `len` bytes.
    pub fn add_sparse(&self, path: &str, len: u64) -> Result<()> {
        let full = self.path(path)?;
        self.parent_dirs(&full)?;
        let f = File::create(&full).map_err(|e| Error::io("creating file", &full, e))?;
        f.set_len(len)
            .map_err(|e| Error::io("extending sparse file", &full, e))
    }

    /// Replaces an existing file's contents with `contents` of the SAME
    /// length, and moves its mtime at least 2 s past the old one (so even a
    /// server with 1-second or 2-second mtimes shows a change).
    pub fn modify_same_size(&self, path: &str, contents: &[u8]) -> Result<()> {
        let full = self.path(path)?;
        let meta = fs::metadata(&full).map_err(|e| Error::io("reading metadata", &full, e))?;
        if meta.len() != contents.len() as u64 {
            return Err(Error::io(
                "modifying in place",
                &full,
                std::io::Error::other(format!(
                    "new contents are {} bytes, the file has {}",
                    contents.len(),
                    meta.len()
                )),
            ));
        }
        let old = meta
            .modified()
            .map_err(|e| Error::io("reading mtime", &full, e))?;
        let mut f = OpenOptions::new()
            .write(true)
            .open(&full)
            .map_err(|e| Error::io("opening", &full, e))?;
        f.write_all(contents)
            .map_err(|e| Error::io("writing", &full, e))?;
        let new = std::cmp::max(SystemTime::now(), old + Duration::from_secs(2));
        f.set_modified(new)
            .map_err(|e| Error::io("setting mtime", &full, e))
    }

    /// Replaces an existing file's contents (any size, typically a new one).
    pub fn modify(&self, path: &str, contents: &[u8]) -> Result<()> {
        let full = self.path(path)?;
        if !full.is_file() {
            return Err(Error::io(
                "modifying",
                &full,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        self.add_file(path, contents)
    }

    /// Sets a file's or directory's mtime.
    pub fn set_mtime(&self, path: &str, mtime: SystemTime) -> Result<()> {
        let full = self.path(path)?;
        let f = File::open(&full).map_err(|e| Error::io("opening", &full, e))?;
        f.set_modified(mtime)
            .map_err(|e| Error::io("setting mtime", &full, e))
    }

    /// Deletes a file.
    pub fn delete(&self, path: &str) -> Result<()> {
        let full = self.path(path)?;
        fs::remove_file(&full).map_err(|e| Error::io("deleting file", &full, e))
    }

    /// Deletes a directory and everything under it.
    pub fn delete_dir(&self, path: &str) -> Result<()> {
        let full = self.path(path)?;
        fs::remove_dir_all(&full).map_err(|e| Error::io("deleting directory", &full, e))
    }

    /// Renames (moves) a file or directory; the destination's parents are
    /// created.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        let src = self.path(from)?;
        let dst = self.path(to)?;
        self.parent_dirs(&dst)?;
        fs::rename(&src, &dst).map_err(|e| Error::io("renaming", &src, e))
    }

    /// Bytes actually allocated on disk for `path` (blocks × 512).
    pub fn disk_usage(&self, path: &str) -> Result<u64> {
        let full = self.path(path)?;
        let meta = fs::metadata(&full).map_err(|e| Error::io("reading metadata", &full, e))?;
        Ok(meta.blocks() * 512)
    }

    /// Every entry under the root (the root itself excluded), sorted by path.
    /// Symlinks and special files are skipped.
    pub fn list(&self) -> Result<Vec<EntryInfo>> {
        let mut out = Vec::new();
        walk(&self.root, "", &mut out)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// The names of the root's direct children, sorted.
    pub fn top_level(&self) -> Result<Vec<String>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|e| !e.path.contains('/'))
            .map(|e| e.path)
            .collect())
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<EntryInfo>) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
        let path = entry.path();
        let meta =
            fs::symlink_metadata(&path).map_err(|e| Error::io("reading metadata", &path, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let mtime = meta
            .modified()
            .map_err(|e| Error::io("reading mtime", &path, e))?;
        if meta.is_dir() {
            out.push(EntryInfo {
                path: rel.clone(),
                kind: EntryKind::Dir,
                size: 0,
                mtime,
            });
            walk(&path, &rel, out)?;
        } else if meta.is_file() {
            out.push(EntryInfo {
                path: rel,
                kind: EntryKind::File,
                size: meta.len(),
                mtime,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TreeSpec {
        TreeSpec::new()
            .dir("empty dir")
            .file("hello.txt", b"hello")
            .file("docs/r\u{e9}sum\u{e9} final.txt", "caf\u{e9}")
            .file("docs/\u{65e5}\u{672c}/deep.bin", [0u8, 1, 2, 255])
            .sparse("big.img", 1 << 20)
    }

    #[test]
    fn builds_and_lists_back() -> Result<()> {
        let tree = FileTree::temp(&spec())?;
        let list = tree.list()?;
        let paths: Vec<(&str, EntryKind, u64)> = list
            .iter()
            .map(|e| (e.path.as_str(), e.kind, e.size))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("big.img", EntryKind::File, 1 << 20),
                ("docs", EntryKind::Dir, 0),
                ("docs/r\u{e9}sum\u{e9} final.txt", EntryKind::File, 5),
                ("docs/\u{65e5}\u{672c}", EntryKind::Dir, 0),
                ("docs/\u{65e5}\u{672c}/deep.bin", EntryKind::File, 4),
                ("empty dir", EntryKind::Dir, 0),
                ("hello.txt", EntryKind::File, 5),
            ]
        );
        assert_eq!(
            fs::read(tree.path("docs/\u{65e5}\u{672c}/deep.bin")?).ok(),
            Some(vec![0u8, 1, 2, 255])
        );
        assert_eq!(
            tree.top_level()?,
            vec!["big.img", "docs", "empty dir", "hello.txt"]
        );
        Ok(())
    }

    #[test]
    fn mutations_show_in_the_listing() -> Result<()> {
        let tree = FileTree::temp(&spec())?;
        let before = tree.list()?;
        let find = |l: &[EntryInfo], p: &str| l.iter().find(|e| e.path == p).cloned();

        tree.modify_same_size("hello.txt", b"HELLO")?;
        tree.modify("docs/r\u{e9}sum\u{e9} final.txt", b"a longer body")?;
        tree.add_file("new/added file.txt", b"x")?;
        tree.delete("big.img")?;
        tree.rename("empty dir", "renamed dir")?;
        tree.delete_dir("docs/\u{65e5}\u{672c}")?;
        let after = tree.list()?;

        let (old, new) = (
            find(&before, "hello.txt").ok_or(Error::BadPath {
                path: "hello.txt".into(),
                reason: "missing before",
            })?,
            find(&after, "hello.txt").ok_or(Error::BadPath {
                path: "hello.txt".into(),
                reason: "missing after",
            })?,
        );
        assert_eq!(old.size, new.size);
        assert!(
            new.mtime > old.mtime,
            "same-size modify must move the mtime"
        );
        assert_eq!(
            fs::read(tree.path("hello.txt")?).ok(),
            Some(b"HELLO".to_vec())
        );
        assert_eq!(
            find(&after, "docs/r\u{e9}sum\u{e9} final.txt").map(|e| e.size),
            Some(13)
        );
        let paths: Vec<&str> = after.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "docs",
                "docs/r\u{e9}sum\u{e9} final.txt",
                "hello.txt",
                "new",
                "new/added file.txt",
                "renamed dir",
            ]
        );
        Ok(())
    }

    #[test]
    fn same_size_modify_refuses_a_new_size() -> Result<()> {
        let tree = FileTree::temp(&spec())?;
        assert!(tree.modify_same_size("hello.txt", b"too long").is_err());
        assert!(tree.modify("missing.txt", b"x").is_err());
        Ok(())
    }

    #[test]
    fn refuses_paths_outside_the_tree() -> Result<()> {
        let tree = FileTree::temp(&TreeSpec::new())?;
        assert!(matches!(
            tree.add_file("../escape", b"x"),
            Err(Error::BadPath { .. })
        ));
        assert!(matches!(
            tree.add_file("/etc/x", b"x"),
            Err(Error::BadPath { .. })
        ));
        assert!(matches!(tree.path(""), Err(Error::BadPath { .. })));
        Ok(())
    }

    #[test]
    fn two_gigabyte_sparse_file_takes_no_real_disk() -> Result<()> {
        let tree = FileTree::temp(&TreeSpec::new().sparse("huge.bin", 2 << 30))?;
        let listed = tree.list()?;
        assert_eq!(listed.first().map(|e| e.size), Some(2 << 30));
        let used = tree.disk_usage("huge.bin")?;
        assert!(used < 1 << 20, "sparse file uses {used} bytes on disk");
        Ok(())
    }

    #[test]
    fn temp_tree_is_removed_on_drop() -> Result<()> {
        let tree = FileTree::temp(&spec())?;
        let root = tree.root().to_path_buf();
        assert!(root.is_dir());
        drop(tree);
        assert!(!root.exists());
        Ok(())
    }
}
