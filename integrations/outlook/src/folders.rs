//! The mail folder tree: read from Graph, kept in the sync state, and the order in
//! which `start` lists folders.
//!
//! The tree is read from `GET /me/mailFolders` (the top-level folders, paged by
//! `@odata.nextLink`) and `GET /me/mailFolders/{id}/childFolders` for every folder
//! whose `childFolderCount` is not 0, depth first, at most [`MAX_FOLDERS`] folders
//! and [`MAX_DEPTH`] levels. The Inbox (`GET /me/mailFolders/inbox`, the well-known
//! name) comes first; the others follow in the tree's order.
//!
//! The sync state keeps it under [`FOLDERS`]:
//! `{"rootId": "…", "list": [{"id", "name", "path"}, …]}` (about 150 bytes a folder).
//! A fetch reads its message's folder from it in place ([`lookup`]).

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tributary_msgraph::{GraphClient, GraphError, Prefer};
use tributary_sdk::IntegrationError;

use crate::content::FolderInfo;

/// The sync-state key of the folder tree.
pub const FOLDERS: &str = "folders";

/// The most folders a mailbox is synced with (Exchange's own limit is lower).
pub const MAX_FOLDERS: usize = 10_000;

/// The deepest folder nesting followed.
pub const MAX_DEPTH: usize = 64;

/// The most pages one folder listing is read for.
const MAX_FOLDER_PAGES: usize = 1_000;

/// Folders per page of a folder listing.
const FOLDER_PAGE: &str = "100";

/// The properties a folder listing selects.
const FOLDER_SELECT: &str = "id,displayName,parentFolderId,childFolderCount";

/// A folder as Graph lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireFolder {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    parent_folder_id: Option<String>,
    #[serde(default)]
    child_folder_count: Option<i64>,
}

/// The folder tree, Inbox first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderMap {
    /// The id of the root folder (`msgfolderroot`, the top-level folders' parent).
    pub root_id: Option<String>,
    /// Every folder, Inbox first, then in the tree's order (depth first).
    pub folders: Vec<FolderInfo>,
}

impl FolderMap {
    /// The map stored in the sync state, if one is (and is readable).
    pub fn from_sync_state(state: &Map<String, Value>) -> Option<FolderMap> {
        let stored = state.get(FOLDERS)?;
        let list = stored.get("list")?.as_array()?;
        let folders = list
            .iter()
            .take(MAX_FOLDERS)
            .filter_map(folder_of_value)
            .collect();
        Some(FolderMap {
            root_id: stored
                .get("rootId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            folders,
        })
    }

    /// The map as the sync state stores it.
    pub fn to_value(&self) -> Value {
        let list: Vec<Value> = self
            .folders
            .iter()
            .map(|f| json!({"id": f.id, "name": f.name, "path": f.path}))
            .collect();
        json!({"rootId": self.root_id, "list": list})
    }

    /// The folder `id`, if the map has it.
    pub fn get(&self, id: &str) -> Option<&FolderInfo> {
        self.folders.iter().find(|f| f.id == id)
    }

    /// The folder after `id` in the listing order (`None` after the last, or when
    /// `id` is not in the map).
    pub fn after(&self, id: &str) -> Option<&FolderInfo> {
        let at = self.folders.iter().position(|f| f.id == id)?;
        self.folders.get(at + 1)
    }

    /// The ids of the map's folders.
    pub fn ids(&self) -> HashSet<&str> {
        self.folders.iter().map(|f| f.id.as_str()).collect()
    }
}

fn folder_of_value(value: &Value) -> Option<FolderInfo> {
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    Some(FolderInfo {
        id: text("id")?,
        name: text("name").unwrap_or_default(),
        path: text("path").unwrap_or_default(),
    })
}

/// The folder `id` as the stored map has it, read in place.
pub fn lookup(state: &Map<String, Value>, id: &str) -> Option<FolderInfo> {
    state
        .get(FOLDERS)?
        .get("list")?
        .as_array()?
        .iter()
        .find(|f| f.get("id").and_then(Value::as_str) == Some(id))
        .and_then(folder_of_value)
}

/// The stored root id, read in place.
pub fn stored_root(state: &Map<String, Value>) -> Option<&str> {
    state.get(FOLDERS)?.get("rootId")?.as_str()
}

/// `parent` / `name`: `/Inbox/Projects`.
fn child_path(parent: Option<&str>, name: &str) -> String {
    format!("{}/{name}", parent.unwrap_or(""))
}

/// Reads every page of a folder listing at `target`.
async fn folder_pages(
    graph: &mut GraphClient,
    target: &str,
    query: &[(&str, &str)],
) -> Result<Vec<WireFolder>, IntegrationError> {
    let mut folders = Vec::new();
    let mut page = graph
        .get_page::<WireFolder>(target, query, Prefer::default())
        .await?;
    for _ in 0..MAX_FOLDER_PAGES {
        folders.append(&mut page.items);
        if folders.len() > MAX_FOLDERS {
            return Err(too_many_folders());
        }
        let Some(next) = page.next_link.take() else {
            return Ok(folders);
        };
        page = graph
            .get_page::<WireFolder>(&next, &[], Prefer::default())
            .await?;
    }
    Err(IntegrationError::permanent(format!(
        "outlook folder listing handed out more than {MAX_FOLDER_PAGES} pages"
    )))
}

fn too_many_folders() -> IntegrationError {
    IntegrationError::permanent(format!(
        "the mailbox has more than {MAX_FOLDERS} mail folders"
    ))
}

/// Reads the whole folder tree (see the module docs).
pub async fn read_tree(graph: &mut GraphClient) -> Result<FolderMap, IntegrationError> {
    let inbox: WireFolder = graph
        .get_json("me/mailFolders/inbox", &[("$select", "id")])
        .await?;
    let query = [("$top", FOLDER_PAGE), ("$select", FOLDER_SELECT)];
    let top = folder_pages(graph, "me/mailFolders", &query).await?;
    let root_id = top.iter().find_map(|f| f.parent_folder_id.clone());
    let mut seen: HashSet<String> = HashSet::new();
    let mut ordered: Vec<FolderInfo> = Vec::new();
    // Depth first: a stack of (folder, its parent's path, depth), children pushed in
    // reverse so that they come out in the listed order.
    let mut stack: Vec<(WireFolder, Option<String>, usize)> =
        top.into_iter().rev().map(|f| (f, None, 0)).collect();
    while let Some((folder, parent_path, depth)) = stack.pop() {
        if !seen.insert(folder.id.clone()) {
            continue;
        }
        let name = folder.display_name.clone().unwrap_or_default();
        let path = child_path(parent_path.as_deref(), &name);
        if folder.child_folder_count.unwrap_or(0) > 0 {
            if depth + 1 >= MAX_DEPTH {
                tracing::warn!(
                    depth,
                    "outlook mail folders nested too deeply; deeper folders are not synced"
                );
            } else {
                let target = graph
                    .url(&["me", "mailFolders", &folder.id, "childFolders"], &[])
                    .to_string();
                let children = folder_pages(graph, &target, &query).await?;
                for child in children.into_iter().rev() {
                    stack.push((child, Some(path.clone()), depth + 1));
                }
            }
        }
        ordered.push(FolderInfo {
            id: folder.id,
            name,
            path,
        });
        if ordered.len() > MAX_FOLDERS {
            return Err(too_many_folders());
        }
    }
    // The Inbox first.
    if let Some(at) = ordered.iter().position(|f| f.id == inbox.id) {
        let inbox = ordered.remove(at);
        ordered.insert(0, inbox);
    }
    Ok(FolderMap {
        root_id,
        folders: ordered,
    })
}

/// The folder `id` (not in the stored map: created since the tree was read), with its
/// path, from its ancestors' `GET /me/mailFolders/{id}`; `known` and `root_id` end the
/// walk early. A folder Graph no longer knows is named by its id.
pub async fn look_up(
    graph: &mut GraphClient,
    id: &str,
    known: impl Fn(&str) -> Option<FolderInfo>,
    root_id: Option<&str>,
) -> Result<FolderInfo, IntegrationError> {
    let mut names: Vec<String> = Vec::new();
    let mut prefix: Option<String> = None;
    let mut current = id.to_owned();
    for _ in 0..MAX_DEPTH {
        let target = graph.url(&["me", "mailFolders", &current], &[]).to_string();
        let folder: WireFolder = match graph.get_json(&target, &[("$select", FOLDER_SELECT)]).await
        {
            Ok(folder) => folder,
            Err(GraphError::NotFound(_)) if names.is_empty() => {
                return Ok(FolderInfo {
                    id: id.to_owned(),
                    name: String::new(),
                    path: String::new(),
                });
            }
            Err(GraphError::NotFound(_)) => break,
            Err(other) => return Err(other.into()),
        };
        names.push(folder.display_name.unwrap_or_default());
        match folder.parent_folder_id {
            Some(parent) if Some(parent.as_str()) != root_id => {
                if let Some(found) = known(&parent) {
                    prefix = Some(found.path);
                    break;
                }
                current = parent;
            }
            _ => break,
        }
    }
    let mut path = prefix.unwrap_or_default();
    for name in names.iter().rev() {
        path = child_path(Some(&path), name);
    }
    Ok(FolderInfo {
        id: id.to_owned(),
        name: names.first().cloned().unwrap_or_default(),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> FolderMap {
        FolderMap {
            root_id: Some("root".into()),
            folders: vec![
                FolderInfo {
                    id: "inbox".into(),
                    name: "Inbox".into(),
                    path: "/Inbox".into(),
                },
                FolderInfo {
                    id: "p".into(),
                    name: "Projects".into(),
                    path: "/Inbox/Projects".into(),
                },
            ],
        }
    }

    #[test]
    fn the_map_round_trips_through_the_sync_state() {
        let mut state = Map::new();
        state.insert(FOLDERS.into(), map().to_value());
        assert_eq!(FolderMap::from_sync_state(&state), Some(map()));
        assert_eq!(
            lookup(&state, "p").map(|f| f.path),
            Some("/Inbox/Projects".into())
        );
        assert_eq!(lookup(&state, "nope"), None);
        assert_eq!(stored_root(&state), Some("root"));
        assert_eq!(FolderMap::from_sync_state(&Map::new()), None);
        state.insert(FOLDERS.into(), json!("garbage"));
        assert_eq!(FolderMap::from_sync_state(&state), None);
    }

    #[test]
    fn folders_follow_each_other_in_order() {
        let map = map();
        assert_eq!(map.after("inbox").map(|f| f.id.as_str()), Some("p"));
        assert_eq!(map.after("p"), None);
        assert_eq!(map.after("gone"), None);
        assert_eq!(child_path(None, "Inbox"), "/Inbox");
        assert_eq!(child_path(Some("/Inbox"), "A"), "/Inbox/A");
    }
}
