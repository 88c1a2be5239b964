//! The drive and driveItem resources as Graph writes them.

use serde_json::{Map, Value, json};
use tributary_msgraph_fake::GraphUser;
use tributary_msgraph_fake::odata::select_fields;

use crate::DriveType;
use crate::download::Minter;
use crate::drive::{Drive, Item, Node, Tombstone};

/// driveItem's properties, as `$select` takes them (the fake fills the first ones;
/// selecting the others is allowed and gives nothing).
pub(crate) const ITEM_PROPERTIES: &[&str] = &[
    "id",
    "name",
    "eTag",
    "cTag",
    "createdDateTime",
    "lastModifiedDateTime",
    "size",
    "webUrl",
    "parentReference",
    "file",
    "folder",
    "root",
    "createdBy",
    "lastModifiedBy",
    "fileSystemInfo",
    "deleted",
    "@microsoft.graph.downloadUrl",
    "description",
    "audio",
    "bundle",
    "content",
    "image",
    "location",
    "malware",
    "package",
    "pendingOperations",
    "photo",
    "publication",
    "remoteItem",
    "retentionLabel",
    "searchResult",
    "shared",
    "sharepointIds",
    "specialFolder",
    "video",
    "webDavUrl",
    "analytics",
    "children",
    "createdByUser",
    "lastModifiedByUser",
    "listItem",
    "permissions",
    "subscriptions",
    "thumbnails",
    "versions",
    "workbook",
];

/// drive's properties, as `$select` takes them.
pub(crate) const DRIVE_PROPERTIES: &[&str] = &[
    "id",
    "name",
    "driveType",
    "owner",
    "quota",
    "createdDateTime",
    "lastModifiedDateTime",
    "description",
    "webUrl",
    "createdBy",
    "lastModifiedBy",
    "sharePointIds",
    "system",
    "bundles",
    "following",
    "items",
    "list",
    "root",
    "special",
];

/// The download URL annotation.
pub(crate) const DOWNLOAD_URL: &str = "@microsoft.graph.downloadUrl";

/// Graph's time format for drive items: UTC with milliseconds.
pub(crate) fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Percent-encodes one path segment (everything but RFC 3986's unreserved characters).
pub(crate) fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// How a request addressed the drive: its links and `parentReference.path` follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Base {
    /// `/me/drive`.
    Me,
    /// `/drives/{id}`.
    Drive(String),
}

impl Base {
    /// `/me/drive` or `/drives/{id}`, for links.
    pub(crate) fn prefix(&self) -> String {
        match self {
            Base::Me => "/me/drive".to_owned(),
            Base::Drive(id) => format!("/drives/{}", encode_segment(id)),
        }
    }

    /// `/drive/root:` or `/drives/{id}/root:`, the start of `parentReference.path`.
    fn path_root(&self) -> String {
        match self {
            Base::Me => "/drive/root:".to_owned(),
            Base::Drive(id) => format!("/drives/{id}/root:"),
        }
    }
}

/// How to render items for one request.
pub(crate) struct View<'a> {
    pub(crate) base: &'a Base,
    pub(crate) owner: &'a GraphUser,
    /// In a delta page: no `parentReference.path`, the delta omissions, `@odata.type`.
    pub(crate) delta: bool,
    pub(crate) select: Option<&'a [&'static str]>,
    /// Mints download URLs for files that get one.
    pub(crate) minter: Option<&'a Minter>,
    /// Whether files get a download URL when `$select` does not say.
    pub(crate) download_by_default: bool,
}

impl View<'_> {
    fn wants_download_url(&self) -> bool {
        match self.select {
            None => self.download_by_default,
            Some(selected) => selected.contains(&DOWNLOAD_URL),
        }
    }

    fn finish(&self, object: Map<String, Value>) -> Map<String, Value> {
        let always: &[&str] = if self.delta {
            &["id", "deleted"]
        } else {
            &["id"]
        };
        select_fields(object, self.select, always)
    }
}

fn identity(drive: &Drive, owner: &GraphUser) -> Value {
    match drive.drive_type {
        DriveType::Business => json!({"user": {
            "email": owner.address,
            "id": owner.id,
            "displayName": owner.display_name,
        }}),
        DriveType::Personal => json!({"user": {
            "id": drive.drive_id,
            "displayName": owner.display_name,
        }}),
    }
}

/// The address part of a business drive's web URLs.
fn personal_site(owner: &GraphUser) -> String {
    owner.address.replace(['@', '.'], "_")
}

fn web_url(drive: &Drive, owner: &GraphUser, item: &Item) -> String {
    match drive.drive_type {
        DriveType::Business => {
            let path: String = drive
                .names_to(item.key)
                .iter()
                .map(|name| format!("/{}", encode_segment(name)))
                .collect();
            format!(
                "https://contoso-my.sharepoint.example/personal/{}/Documents{path}",
                personal_site(owner)
            )
        }
        DriveType::Personal => format!(
            "https://onedrive.live.example/redir?resid={}",
            encode_segment(&item.id)
        ),
    }
}

fn parent_reference(drive: &Drive, item: &Item, view: &View<'_>) -> Value {
    let mut reference = Map::new();
    reference.insert("driveId".into(), Value::String(drive.drive_id.clone()));
    reference.insert(
        "driveType".into(),
        Value::String(drive.drive_type.as_str().to_owned()),
    );
    if let Some(parent) = item.parent.and_then(|p| drive.items.get(&p)) {
        reference.insert("id".into(), Value::String(parent.id.clone()));
        if !view.delta {
            let path: String = drive
                .names_to(parent.key)
                .iter()
                .map(|name| format!("/{}", encode_segment(name)))
                .collect();
            reference.insert(
                "path".into(),
                Value::String(format!("{}{path}", view.base.path_root())),
            );
        }
    }
    Value::Object(reference)
}

fn file_facet(item: &Item) -> Option<Value> {
    let file = item.file()?;
    let mut hashes = Map::new();
    hashes.insert("quickXorHash".into(), Value::String(file.quick_xor.clone()));
    if let Some(sha1) = &file.sha1 {
        hashes.insert("sha1Hash".into(), Value::String(sha1.clone()));
    }
    Some(json!({"mimeType": file.mime_type, "hashes": hashes}))
}

/// The driveItem resource of a live item.
pub(crate) fn item(drive: &Drive, item: &Item, view: &View<'_>) -> Value {
    let mut object = Map::new();
    if view.delta {
        object.insert(
            "@odata.type".into(),
            Value::String("#microsoft.graph.driveItem".to_owned()),
        );
    }
    object.insert("id".into(), Value::String(item.id.clone()));
    object.insert("name".into(), Value::String(item.name.clone()));
    object.insert("eTag".into(), Value::String(item.etag()));
    let show_ctag = match drive.drive_type {
        DriveType::Business => !view.delta && !item.is_folder(),
        DriveType::Personal => true,
    };
    if show_ctag {
        object.insert("cTag".into(), Value::String(item.ctag()));
    }
    object.insert(
        "createdDateTime".into(),
        Value::String(time(item.created_ms)),
    );
    object.insert(
        "lastModifiedDateTime".into(),
        Value::String(time(item.modified_ms)),
    );
    object.insert("size".into(), Value::from(item.size));
    object.insert(
        "webUrl".into(),
        Value::String(web_url(drive, view.owner, item)),
    );
    object.insert("createdBy".into(), identity(drive, view.owner));
    object.insert("lastModifiedBy".into(), identity(drive, view.owner));
    object.insert(
        "parentReference".into(),
        parent_reference(drive, item, view),
    );
    object.insert(
        "fileSystemInfo".into(),
        json!({
            "createdDateTime": time(item.fs_created_ms),
            "lastModifiedDateTime": time(item.fs_modified_ms),
        }),
    );
    match &item.node {
        Node::Folder { children } => {
            object.insert("folder".into(), json!({"childCount": children.len()}));
        }
        Node::File(_) => {
            if let Some(facet) = file_facet(item) {
                object.insert("file".into(), facet);
            }
        }
    }
    if item.parent.is_none() {
        object.insert("root".into(), json!({}));
    }
    let mut object = view.finish(object);
    if item.file().is_some()
        && view.wants_download_url()
        && let Some(minter) = view.minter
    {
        object.insert(DOWNLOAD_URL.into(), Value::String(minter.url(item)));
    }
    Value::Object(object)
}

/// A deleted item as delta reports it.
pub(crate) fn deleted(drive: &Drive, tombstone: &Tombstone, view: &View<'_>) -> Value {
    let item = &tombstone.item;
    let mut object = Map::new();
    object.insert(
        "@odata.type".into(),
        Value::String("#microsoft.graph.driveItem".to_owned()),
    );
    object.insert("id".into(), Value::String(item.id.clone()));
    object.insert("eTag".into(), Value::String(item.etag()));
    object.insert(
        "createdDateTime".into(),
        Value::String(time(item.created_ms)),
    );
    object.insert(
        "lastModifiedDateTime".into(),
        Value::String(time(tombstone.deleted_ms)),
    );
    match drive.drive_type {
        DriveType::Business => {
            object.insert("deleted".into(), json!({"state": "deleted"}));
            object.insert("size".into(), Value::from(item.size));
        }
        DriveType::Personal => {
            object.insert("deleted".into(), json!({}));
            object.insert("name".into(), Value::String(item.name.clone()));
        }
    }
    let mut reference = Map::new();
    reference.insert("driveId".into(), Value::String(drive.drive_id.clone()));
    reference.insert(
        "driveType".into(),
        Value::String(drive.drive_type.as_str().to_owned()),
    );
    if let Some(parent) = item.parent {
        let parent_id = drive
            .items
            .get(&parent)
            .map(|p| p.id.clone())
            .or_else(|| drive.deleted.get(&parent).map(|t| t.item.id.clone()));
        if let Some(id) = parent_id {
            reference.insert("id".into(), Value::String(id));
        }
    }
    object.insert("parentReference".into(), Value::Object(reference));
    match &item.node {
        Node::Folder { .. } => {
            object.insert("folder".into(), json!({"childCount": 0}));
        }
        Node::File(_) => {
            if let Some(facet) = file_facet(item) {
                object.insert("file".into(), facet);
            }
        }
    }
    Value::Object(view.finish(object))
}

/// The drive resource.
pub(crate) fn drive(drive: &Drive, owner: &GraphUser, quota_total: u64) -> Map<String, Value> {
    let used = drive.items.get(&drive.root).map_or(0, |root| root.size);
    let deleted = drive.deleted_bytes();
    let mut object = Map::new();
    object.insert("id".into(), Value::String(drive.drive_id.clone()));
    object.insert(
        "driveType".into(),
        Value::String(drive.drive_type.as_str().to_owned()),
    );
    object.insert("name".into(), Value::String("OneDrive".to_owned()));
    object.insert("description".into(), Value::String(String::new()));
    object.insert(
        "createdDateTime".into(),
        Value::String(time(drive.created_ms)),
    );
    let modified = drive
        .items
        .get(&drive.root)
        .map_or(drive.created_ms, |root| root.modified_ms);
    object.insert("lastModifiedDateTime".into(), Value::String(time(modified)));
    let web = match drive.drive_type {
        DriveType::Business => format!(
            "https://contoso-my.sharepoint.example/personal/{}/Documents",
            personal_site(owner)
        ),
        DriveType::Personal => format!("https://onedrive.live.example/?cid={}", drive.drive_id),
    };
    object.insert("webUrl".into(), Value::String(web));
    object.insert("owner".into(), identity(drive, owner));
    object.insert("createdBy".into(), identity(drive, owner));
    object.insert("lastModifiedBy".into(), identity(drive, owner));
    object.insert(
        "quota".into(),
        json!({
            "deleted": deleted,
            "remaining": quota_total.saturating_sub(used + deleted),
            "state": "normal",
            "total": quota_total,
            "used": used + deleted,
        }),
    );
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("My Files"), "My%20Files");
        assert_eq!(encode_segment("a#b%c"), "a%23b%25c");
        assert_eq!(encode_segment("naïve"), "na%C3%AFve");
        assert_eq!(encode_segment("x-y_z.txt~"), "x-y_z.txt~");
    }

    #[test]
    fn times_have_milliseconds() {
        assert_eq!(time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
