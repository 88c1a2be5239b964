//! A thin typed client for the Drive API v3 methods this integration calls.
//!
//! It follows Google's discovery document (vendored as
//! `integrations/google-drive/spec/drive-v3-discovery.json`): method paths under
//! `drive/v3/`, the parameter names, and the `File`, `FileList`, `ChangeList`,
//! `StartPageToken` and `DriveList` schemas below carry the discovery names. Every call
//! sets `supportsAllDrives=true`, and every listing `includeItemsFromAllDrives=true`, so
//! shared drives are seen; every call names the `fields` it needs (Drive v3 returns only
//! a few fields by default).
//!
//! Failures are classified by Google's error body ([`tributary_google::classify_error`]:
//! 403 `userRateLimitExceeded` / `rateLimitExceeded` and 429 are rate limited, 5xx
//! transient, 401 refreshed once by the kit and then auth). A 404 is an answer for the
//! calls that return `Option` (the file vanished; the changes cursor is no longer
//! valid), and so is a 403 `exportSizeLimitExceeded` ([`Export::TooLarge`]).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tributary_sdk::IntegrationError;
use tributary_sdk::http::{BodyLimit, HttpResponse, MAX_JSON_DEPTH, json_depth};
use tributary_sdk::kit::bearer::BearerClient;
use url::Url;

/// The largest page `files.list` and `changes.list` accept (`pageSize`).
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The MIME type of a folder.
pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";

/// The file fields the integration stores (`fields` of every file it reads).
pub const FILE_FIELDS: &str = "id,name,mimeType,parents,driveId,owners(displayName,emailAddress),\
createdTime,modifiedTime,version,size,md5Checksum,webViewLink,trashed";

/// The fields of a parent looked up to resolve a path.
const PARENT_FIELDS: &str = "id,name,parents,driveId,mimeType";

/// A Drive API client for the authenticated user, living for one job.
#[derive(Debug)]
pub struct DriveClient {
    api: BearerClient,
    /// `{baseUrl}drive/v3/`, the prefix of every method's path.
    base: Url,
}

impl DriveClient {
    /// A client for the API at `base_url` (`https://www.googleapis.com/` in production,
    /// a loopback fake in tests), authorized by `api`.
    pub fn new(api: BearerClient, base_url: &str) -> Result<DriveClient, IntegrationError> {
        Ok(DriveClient {
            api: api.with_error_hook(tributary_google::classify_error),
            base: tributary_google::api_base("google drive", base_url, "drive/v3/")?,
        })
    }

    /// `changes.getStartPageToken`: the cursor of "now" for `changes.list`.
    pub async fn start_page_token(&mut self) -> Result<String, IntegrationError> {
        let url = self.url(
            &["changes", "startPageToken"],
            &[("supportsAllDrives", "true"), ("fields", "startPageToken")],
        );
        let token: StartPageToken = self.get_json("changes.getStartPageToken", url).await?;
        Ok(token.start_page_token)
    }

    /// `files.get` of `root`: My Drive's root folder (its id and name).
    pub async fn root_folder(&mut self) -> Result<File, IntegrationError> {
        let url = self.url(&["files", "root"], &[("fields", "id,name")]);
        self.get_json("files.get", url).await
    }

    /// `drives.list`: one page of the shared drives the user is a member of.
    pub async fn list_drives(
        &mut self,
        page_token: Option<&str>,
    ) -> Result<DriveList, IntegrationError> {
        let mut query = vec![
            ("pageSize", "100"),
            ("fields", "nextPageToken,drives(id,name)"),
        ];
        if let Some(token) = page_token {
            query.push(("pageToken", token));
        }
        let url = self.url(&["drives"], &query);
        self.get_json("drives.list", url).await
    }

    /// `files.list` over every drive: one page of the files matching `q`, most
    /// recently modified first, with the stored fields.
    pub async fn list_files(
        &mut self,
        q: &str,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<FileList, IntegrationError> {
        let page_size = page_size.clamp(1, MAX_PAGE_SIZE).to_string();
        let fields = format!("nextPageToken,incompleteSearch,files({FILE_FIELDS})");
        let mut query = vec![
            ("q", q),
            ("orderBy", "modifiedTime desc"),
            ("pageSize", page_size.as_str()),
            ("corpora", "allDrives"),
            ("includeItemsFromAllDrives", "true"),
            ("supportsAllDrives", "true"),
            ("fields", fields.as_str()),
        ];
        if let Some(token) = page_token {
            query.push(("pageToken", token));
        }
        let url = self.url(&["files"], &query);
        let list: FileList = self.get_json("files.list", url).await?;
        if list.incomplete_search {
            tracing::warn!(
                q,
                "drive files.list says its search over all drives was incomplete; the \
                 changes feed still covers every drive"
            );
        }
        Ok(list)
    }

    /// `files.get` with the stored fields; `None` when the file no longer exists (or
    /// the user lost access to it).
    pub async fn get_file(&mut self, id: &str) -> Result<Option<File>, IntegrationError> {
        let url = self.url(
            &["files", id],
            &[("fields", FILE_FIELDS), ("supportsAllDrives", "true")],
        );
        self.get_json_opt("files.get", url).await
    }

    /// `files.get` of a folder, with what a path needs; `None` when it cannot be seen.
    pub async fn get_parent(&mut self, id: &str) -> Result<Option<File>, IntegrationError> {
        let url = self.url(
            &["files", id],
            &[("fields", PARENT_FIELDS), ("supportsAllDrives", "true")],
        );
        self.get_json_opt("files.get", url).await
    }

    /// `files.get` with `alt=media`: the first `limit` bytes of the file's content.
    /// `None` when the file vanished.
    pub async fn download(
        &mut self,
        id: &str,
        limit: usize,
    ) -> Result<Option<Text>, IntegrationError> {
        let url = self.url(
            &["files", id],
            &[
                ("alt", "media"),
                ("supportsAllDrives", "true"),
                ("acknowledgeAbuse", "false"),
            ],
        );
        let Some(response) = self.get_limited("files.get", url, limit).await? else {
            return Ok(None);
        };
        Ok(Some(Text::from_response(response)))
    }

    /// `files.export` to `mime_type`: the first `limit` bytes of the export.
    pub async fn export(
        &mut self,
        id: &str,
        mime_type: &str,
        limit: usize,
    ) -> Result<Export, IntegrationError> {
        const METHOD: &str = "files.export";
        let url = self.url(&["files", id, "export"], &[("mimeType", mime_type)]);
        let response = self
            .api
            .send_limited(METHOD, BodyLimit::Prefix(limit), |http| {
                http.get(url.clone())
            })
            .await?;
        let status = response.status.as_u16();
        if status == 404 {
            return Ok(Export::Gone);
        }
        if status == 403
            && tributary_google::error_reasons(&response)
                .iter()
                .any(|r| r == "exportSizeLimitExceeded")
        {
            return Ok(Export::TooLarge);
        }
        if !response.status.is_success() {
            return Err(self.api.error(METHOD, &response));
        }
        Ok(Export::Text(Text::from_response(response)))
    }

    /// `changes.list`: one page of the changes after `page_token`. `None` when Drive no
    /// longer accepts the token (400 or 404): the caller compares everything instead.
    pub async fn list_changes(
        &mut self,
        page_token: &str,
        page_size: u32,
    ) -> Result<Option<ChangeList>, IntegrationError> {
        const METHOD: &str = "changes.list";
        let page_size = page_size.clamp(1, MAX_PAGE_SIZE).to_string();
        let fields = format!(
            "nextPageToken,newStartPageToken,changes(changeType,removed,fileId,time,driveId,\
             file({FILE_FIELDS}))"
        );
        let url = self.url(
            &["changes"],
            &[
                ("pageToken", page_token),
                ("pageSize", page_size.as_str()),
                ("includeRemoved", "true"),
                ("includeItemsFromAllDrives", "true"),
                ("supportsAllDrives", "true"),
                ("fields", fields.as_str()),
            ],
        );
        let response = self.api.send(METHOD, |http| http.get(url.clone())).await?;
        if matches!(response.status.as_u16(), 400 | 404) {
            tracing::info!(
                status = response.status.as_u16(),
                "drive refused the changes cursor"
            );
            return Ok(None);
        }
        if !response.status.is_success() {
            return Err(self.api.error(METHOD, &response));
        }
        decode(METHOD, &response).map(Some)
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        tributary_google::method_url(&self.base, segments, query)
    }

    /// GETs `url` and decodes a 2xx JSON body; a 404 is an error.
    async fn get_json<T: DeserializeOwned>(
        &mut self,
        method: &str,
        url: Url,
    ) -> Result<T, IntegrationError> {
        let response = self
            .api
            .send_ok(method, |http| http.get(url.clone()))
            .await?;
        decode(method, &response)
    }

    /// GETs `url` and decodes a 2xx JSON body; `None` on 404.
    async fn get_json_opt<T: DeserializeOwned>(
        &mut self,
        method: &str,
        url: Url,
    ) -> Result<Option<T>, IntegrationError> {
        let response = self.api.send(method, |http| http.get(url.clone())).await?;
        if response.status.as_u16() == 404 {
            return Ok(None);
        }
        if !response.status.is_success() {
            return Err(self.api.error(method, &response));
        }
        decode(method, &response).map(Some)
    }

    /// GETs the first `limit` bytes of `url`'s body; `None` on 404.
    async fn get_limited(
        &mut self,
        method: &str,
        url: Url,
        limit: usize,
    ) -> Result<Option<HttpResponse>, IntegrationError> {
        let response = self
            .api
            .send_limited(method, BodyLimit::Prefix(limit), |http| {
                http.get(url.clone())
            })
            .await?;
        if response.status.as_u16() == 404 {
            return Ok(None);
        }
        if !response.status.is_success() {
            return Err(self.api.error(method, &response));
        }
        Ok(Some(response))
    }
}

/// Decodes a JSON body, refusing one nested deeper than the SDK allows (a hostile
/// answer) as a permanent error.
fn decode<T: DeserializeOwned>(
    method: &str,
    response: &HttpResponse,
) -> Result<T, IntegrationError> {
    if json_depth(&response.body) > MAX_JSON_DEPTH {
        return Err(IntegrationError::permanent(format!(
            "google drive {method}: the answer is nested deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    response
        .json()
        .map_err(|e| e.context(format!("google drive {method}")))
}

/// The first bytes of a download or an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    /// The bytes read.
    pub bytes: Vec<u8>,
    /// Whether the content went on beyond them.
    pub truncated: bool,
}

impl Text {
    fn from_response(response: HttpResponse) -> Text {
        Text {
            truncated: response.truncated,
            bytes: response.body,
        }
    }
}

/// What `files.export` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// The export's first bytes.
    Text(Text),
    /// 403 `exportSizeLimitExceeded`: Drive does not export files this large.
    TooLarge,
    /// 404: the file vanished.
    Gone,
}

// Response schemas: each struct names its discovery schema and holds the fields the
// integration reads. `Serialize` lets the discovery test walk them.

/// Discovery schema `StartPageToken`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartPageToken {
    /// The starting page token for listing future changes.
    pub start_page_token: String,
}

/// Discovery schema `DriveList`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveList {
    /// The page's shared drives.
    #[serde(default)]
    pub drives: Vec<Drive>,
    /// The next page, if there is one.
    pub next_page_token: Option<String>,
}

/// Discovery schema `Drive` (a shared drive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drive {
    /// The drive's id, also the id of its root folder.
    pub id: String,
    /// The drive's name.
    #[serde(default)]
    pub name: String,
}

/// Discovery schema `FileList`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileList {
    /// The page's files.
    #[serde(default)]
    pub files: Vec<File>,
    /// The next page, if there is one.
    pub next_page_token: Option<String>,
    /// Whether the search over all drives was incomplete.
    #[serde(default)]
    pub incomplete_search: bool,
}

/// Discovery schema `File`, with the stored fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct File {
    /// The file id.
    pub id: String,
    /// The file's name (not unique, may contain `/`).
    #[serde(default)]
    pub name: String,
    /// The MIME type (Google's own types for Docs, Sheets, folders...).
    #[serde(default)]
    pub mime_type: String,
    /// The parent folder (Drive gives a file one parent).
    #[serde(default)]
    pub parents: Vec<String>,
    /// The shared drive holding the file, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drive_id: Option<String>,
    /// The owners (My Drive files only).
    #[serde(default)]
    pub owners: Vec<User>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_time: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified_time: Option<String>,
    /// A number that grows with every change to the file (int64 as a string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Bytes of content (int64 as a string); absent for Google Docs and folders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// MD5 of the content, for files with binary content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5_checksum: Option<String>,
    /// Where a user opens the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_view_link: Option<String>,
    /// Whether the file is in the trash (itself or through a folder).
    #[serde(default)]
    pub trashed: bool,
}

impl File {
    /// Whether this is a folder.
    pub fn is_folder(&self) -> bool {
        self.mime_type == FOLDER_MIME
    }
}

/// Discovery schema `User`, as the owners name it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user's name.
    #[serde(default)]
    pub display_name: String,
    /// The user's address, when visible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
}

/// Discovery schema `ChangeList`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeList {
    /// The page's changes.
    #[serde(default)]
    pub changes: Vec<Change>,
    /// The next page of this walk, if there is one.
    pub next_page_token: Option<String>,
    /// The cursor for the next walk, on the last page only.
    pub new_start_page_token: Option<String>,
}

/// Discovery schema `Change`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// `file` or `drive`.
    #[serde(default)]
    pub change_type: String,
    /// The file was removed from the user's view (deleted, or access lost).
    #[serde(default)]
    pub removed: bool,
    /// The changed file's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// The file as it is now (absent when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<File>,
    /// When the change happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}
