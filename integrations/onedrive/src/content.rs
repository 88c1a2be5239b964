//! A drive item as Graph sends it, its version, and its stored shape.
//!
//! # Stored content
//! One item per file and per folder below the drive's root (the root itself is the
//! drive, not an item), keyed by the item id, timestamped with `createdDateTime`:
//!
//! | field | what |
//! |---|---|
//! | `id`, `name` | the item's id and name |
//! | `path` | `/Documents/2026/plan.md`: the names from the root down (the root is `/`) |
//! | `parentId`, `parents` | the folder holding it (`parents`: that id alone, as Google Drive's items have it) |
//! | `driveId`, `driveType` | the drive (`business` or `personal`) |
//! | `isFolder` | whether it is a folder |
//! | `eTag` | Graph's eTag: the item's version |
//! | `createdDateTime`, `webUrl` | as Graph gives them |
//! | files only: `size`, `mimeType`, `hashes` (`quickXorHash`, `sha1Hash`, `sha256Hash` when given), `cTag`, `lastModifiedDateTime` | the file's content and its times |
//! | `text`, `textStatus` | a text-like file's text up to `maxTextBytes` (`complete` or `truncated`); `null` and `none` for binaries and folders |
//!
//! # Versions
//! An item is stored at its `eTag`, which Graph changes with every change of the item
//! itself (content, name, place), so "stored at this version" means "stored as it
//! is". A folder's `size`, `cTag`, child count and modification time change with what
//! lies below it while its `eTag` does not: its stored content leaves them out, so a
//! file added deep down rewrites that file only, not every folder above it. A folder
//! that is renamed or moved changes the paths below it without changing their eTags:
//! those are refreshed (see [`crate::integration`]).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tributary_sdk::kit::text::FileText;

/// What the delta query selects: enough for versions, deletions and the folder map.
pub const DELTA_SELECT: &str = "id,name,eTag,parentReference,file,folder,root,deleted";

/// What an item fetch selects: everything the stored content holds.
pub const ITEM_SELECT: &str = "id,name,eTag,cTag,size,createdDateTime,lastModifiedDateTime,webUrl,parentReference,file,folder,root,deleted";

/// What a folder listing selects (versions, and the folders' own refreshes).
pub const CHILDREN_SELECT: &str = "id,name,eTag,parentReference,file,folder";

/// The longest name or path segment kept (OneDrive allows 400 characters in a path).
const MAX_NAME_CHARS: usize = 1024;

/// A driveItem as Graph sends it (only what a sync reads; everything optional but the
/// id, so that a sparse or odd item still decodes).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveItem {
    /// The item id.
    pub id: String,
    /// Its name (absent on deleted items of business drives).
    #[serde(default)]
    pub name: Option<String>,
    /// Changes with every change of the item.
    #[serde(default, rename = "eTag")]
    pub e_tag: Option<String>,
    /// Changes with the content (and, for folders, with what is below).
    #[serde(default, rename = "cTag")]
    pub c_tag: Option<String>,
    /// Bytes (for a folder, of everything below it).
    #[serde(default)]
    pub size: Option<u64>,
    /// RFC 3339.
    #[serde(default)]
    pub created_date_time: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub last_modified_date_time: Option<String>,
    /// Where a person opens it.
    #[serde(default)]
    pub web_url: Option<String>,
    /// Its folder.
    #[serde(default)]
    pub parent_reference: Option<ParentReference>,
    /// The file facet: the item is a file.
    #[serde(default)]
    pub file: Option<FileFacet>,
    /// The folder facet: the item is a folder.
    #[serde(default)]
    pub folder: Option<Value>,
    /// The root facet: the item is the drive's root.
    #[serde(default)]
    pub root: Option<Value>,
    /// The deleted facet: the item is gone.
    #[serde(default)]
    pub deleted: Option<Value>,
}

/// `parentReference`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// The drive.
    #[serde(default)]
    pub drive_id: Option<String>,
    /// `business`, `personal` or `documentLibrary`.
    #[serde(default)]
    pub drive_type: Option<String>,
    /// The folder's id.
    #[serde(default)]
    pub id: Option<String>,
    /// The folder's path, `/drive/root:/a/b` (percent-encoded; not in delta pages).
    #[serde(default)]
    pub path: Option<String>,
}

/// The file facet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileFacet {
    /// The MIME type Graph detected.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// The content's hashes.
    #[serde(default)]
    pub hashes: Option<Hashes>,
}

/// `file.hashes`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hashes {
    /// OneDrive's own hash (every drive).
    #[serde(default)]
    pub quick_xor_hash: Option<String>,
    /// SHA-1 (personal drives).
    #[serde(default)]
    pub sha1_hash: Option<String>,
    /// SHA-256 (some drives).
    #[serde(default)]
    pub sha256_hash: Option<String>,
}

impl DriveItem {
    /// Whether it is a folder (the root included).
    pub fn is_folder(&self) -> bool {
        self.folder.is_some() || self.root.is_some()
    }

    /// Whether it is the drive's root.
    pub fn is_root(&self) -> bool {
        self.root.is_some()
    }

    /// Whether it carries the deleted facet.
    pub fn is_deleted(&self) -> bool {
        self.deleted.is_some()
    }

    /// Its name, cut to a sane length (empty when Graph gave none).
    pub fn name(&self) -> String {
        self.name
            .as_deref()
            .unwrap_or_default()
            .chars()
            .take(MAX_NAME_CHARS)
            .collect()
    }

    /// Its parent folder's id.
    pub fn parent_id(&self) -> Option<&str> {
        self.parent_reference
            .as_ref()
            .and_then(|p| p.id.as_deref())
            .filter(|id| !id.is_empty())
    }

    /// The version it is stored at: its eTag (see the module docs), else its
    /// modification time, else nothing.
    pub fn version(&self) -> Option<&str> {
        self.e_tag
            .as_deref()
            .or(self.last_modified_date_time.as_deref())
    }

    /// Its MIME type (`""` for folders and untyped files).
    pub fn mime_type(&self) -> &str {
        self.file
            .as_ref()
            .and_then(|f| f.mime_type.as_deref())
            .unwrap_or_default()
    }

    /// The item's timestamp: `createdDateTime`, when valid.
    pub fn created(&self) -> Option<DateTime<Utc>> {
        self.created_date_time
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    }

    /// The path of the item from its `parentReference.path` (outside delta pages):
    /// `/drive/root:/a%20b` and name `c` give `/a b/c`. `None` when there is no path,
    /// or it is not one below a root.
    pub fn path_from_reference(&self) -> Option<String> {
        let raw = self.parent_reference.as_ref()?.path.as_deref()?;
        let (_, below) = raw.split_once("root:")?;
        let decoded = percent_decode(below)?;
        let parent = decoded.trim_end_matches('/');
        Some(format!("{parent}/{}", self.name()))
    }
}

/// Decodes `%XX` escapes; `None` when the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The stored content of `item` at `path` with `text` (see the module docs).
pub fn item_content(item: &DriveItem, path: &str, text: FileText) -> Value {
    let (text, status) = text.into_parts();
    let parent = item.parent_id();
    let reference = item.parent_reference.as_ref();
    let mut content = json!({
        "id": item.id,
        "name": item.name(),
        "path": path,
        "parentId": parent,
        "parents": parent.into_iter().collect::<Vec<_>>(),
        "driveId": reference.and_then(|r| r.drive_id.as_deref()),
        "driveType": reference.and_then(|r| r.drive_type.as_deref()),
        "isFolder": item.is_folder(),
        "eTag": item.e_tag,
        "createdDateTime": item.created_date_time,
        "webUrl": item.web_url,
        "text": text,
        "textStatus": status,
    });
    if !item.is_folder()
        && let Value::Object(fields) = &mut content
    {
        let hashes = item.file.as_ref().and_then(|f| f.hashes.as_ref());
        let mut hash_fields = Map::new();
        for (name, value) in [
            (
                "quickXorHash",
                hashes.and_then(|h| h.quick_xor_hash.as_ref()),
            ),
            ("sha1Hash", hashes.and_then(|h| h.sha1_hash.as_ref())),
            ("sha256Hash", hashes.and_then(|h| h.sha256_hash.as_ref())),
        ] {
            if let Some(value) = value {
                hash_fields.insert(name.to_owned(), Value::String(value.clone()));
            }
        }
        fields.insert("size".into(), json!(item.size));
        fields.insert("mimeType".into(), json!(item.mime_type()));
        fields.insert("hashes".into(), Value::Object(hash_fields));
        fields.insert("cTag".into(), json!(item.c_tag));
        fields.insert(
            "lastModifiedDateTime".into(),
            json!(item.last_modified_date_time),
        );
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(value: Value) -> DriveItem {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn items_decode_leniently_and_know_what_they_are() {
        let file = item(json!({
            "id": "01A", "name": "plan.md", "eTag": "\"{X},3\"", "cTag": "\"c:{X},2\"",
            "size": 12, "createdDateTime": "2026-01-02T03:04:05.678Z",
            "parentReference": {"driveId": "d", "driveType": "business", "id": "01P",
                "path": "/drive/root:/Team%20Notes/2026"},
            "file": {"mimeType": "text/markdown", "hashes": {"quickXorHash": "q=="}}
        }));
        assert!(!file.is_folder() && !file.is_deleted());
        assert_eq!(file.version(), Some("\"{X},3\""));
        assert_eq!(file.parent_id(), Some("01P"));
        assert_eq!(
            file.path_from_reference().as_deref(),
            Some("/Team Notes/2026/plan.md")
        );
        assert!(file.created().is_some());
        let gone = item(json!({"id": "01B", "deleted": {"state": "deleted"}}));
        assert!(gone.is_deleted() && gone.name().is_empty());
        let personal_gone = item(json!({"id": "01C", "deleted": {}}));
        assert!(personal_gone.is_deleted());
        let root =
            item(json!({"id": "01R", "name": "root", "root": {}, "folder": {"childCount": 2}}));
        assert!(root.is_root() && root.is_folder());
        let in_root = item(json!({"id": "x", "name": "a b",
            "parentReference": {"path": "/drive/root:"}}));
        assert_eq!(in_root.path_from_reference().as_deref(), Some("/a b"));
        let odd = item(json!({"id": "y", "name": "n", "parentReference": {"path": "%ff%fe"}}));
        assert_eq!(odd.path_from_reference(), None);
        assert!(serde_json::from_value::<DriveItem>(json!({"name": "no id"})).is_err());
        assert!(serde_json::from_value::<DriveItem>(json!({"id": "z", "size": "big"})).is_err());
    }

    #[test]
    fn content_holds_files_whole_and_folders_without_what_changes_below() {
        let file = item(json!({
            "id": "01A", "name": "plan.md", "eTag": "e", "cTag": "c", "size": 12,
            "parentReference": {"driveId": "d", "id": "01P"},
            "file": {"mimeType": "text/markdown", "hashes": {"quickXorHash": "q=="}}
        }));
        let content = item_content(&file, "/plan.md", FileText::Truncated("# Pl".into()));
        assert_eq!(content["path"], "/plan.md");
        assert_eq!(content["parents"], json!(["01P"]));
        assert_eq!(content["hashes"]["quickXorHash"], "q==");
        assert_eq!(content["textStatus"], "truncated");
        assert_eq!(content["size"], 12);
        let folder = item(
            json!({"id": "01F", "name": "Docs", "eTag": "e", "cTag": "c",
            "size": 99, "folder": {"childCount": 3}}),
        );
        let content = item_content(&folder, "/Docs", FileText::None);
        assert_eq!(content["isFolder"], true);
        assert_eq!(content["textStatus"], "none");
        for below in ["size", "cTag", "lastModifiedDateTime", "childCount"] {
            assert!(content.get(below).is_none(), "{below} in {content}");
        }
    }
}
