//! A Drive file as stored content, and which of its bytes become text.
//!
//! | file | text |
//! |---|---|
//! | Google Docs, Google Slides | exported as `text/plain` |
//! | Google Sheets | exported as `text/csv` (Drive exports the first sheet) |
//! | other Google types (Forms, Drawings, shortcuts, folders...) | none |
//! | `text/*`, JSON, XML, YAML, JavaScript, shell, SQL, or a source-code / Markdown name | the file's bytes as UTF-8 |
//! | anything else (PDF, images, archives...) | none: metadata only |
//!
//! At most `maxTextBytes` of a text are read (never the whole file); beyond it the
//! text is cut at a character boundary and `textStatus` says `truncated`. An export
//! Drive refuses as too large (403 `exportSizeLimitExceeded`) is stored with
//! `textStatus: exportTooLarge`. Which files are text, and the cut, are the SDK kit's
//! ([`tributary_sdk::kit::text`]), shared with the other file integrations.

use serde_json::{Value, json};
use tributary_sdk::kit::text;
pub use tributary_sdk::kit::text::FileText;

use crate::client::File;

/// Where a file's text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextSource {
    /// `files.export` to this MIME type.
    Export(&'static str),
    /// The file's own bytes (`alt=media`).
    Media,
    /// No text: metadata only.
    None,
}

/// Where the text of a file of `mime_type` named `name` comes from.
pub fn text_source(mime_type: &str, name: &str) -> TextSource {
    match mime_type {
        "application/vnd.google-apps.document" | "application/vnd.google-apps.presentation" => {
            TextSource::Export("text/plain")
        }
        "application/vnd.google-apps.spreadsheet" => TextSource::Export("text/csv"),
        m if m.starts_with("application/vnd.google-apps.") => TextSource::None,
        m if text::is_text(m, name) => TextSource::Media,
        _ => TextSource::None,
    }
}

/// What an export Drive refuses as too large leaves of a file's text.
pub const EXPORT_TOO_LARGE: FileText = FileText::Unavailable("exportTooLarge");

/// The stored content of `file` at `path` with `text` (see the crate docs for the
/// shape).
pub fn file_content(file: &File, path: &str, text: FileText) -> Value {
    let (text, status) = text.into_parts();
    let owners: Vec<Value> = file
        .owners
        .iter()
        .map(|o| json!({"displayName": o.display_name, "emailAddress": o.email_address}))
        .collect();
    json!({
        "id": file.id,
        "name": file.name,
        "mimeType": file.mime_type,
        "path": path,
        "parents": file.parents,
        "driveId": file.drive_id,
        "owners": owners,
        "createdTime": file.created_time,
        "modifiedTime": file.modified_time,
        "version": file.version,
        "size": file.size.as_deref().and_then(|s| s.parse::<u64>().ok()),
        "md5Checksum": file.md5_checksum,
        "webViewLink": file.web_view_link,
        "trashed": file.trashed,
        "isFolder": file.is_folder(),
        "text": text,
        "textStatus": status,
    })
}

/// The item's timestamp: `createdTime` (RFC 3339), when Drive gave a valid one.
pub fn created(file: &File) -> Option<chrono::DateTime<chrono::Utc>> {
    file.created_time
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_comes_from_exports_media_or_nowhere() {
        let cases = [
            (
                "application/vnd.google-apps.document",
                "Plan",
                TextSource::Export("text/plain"),
            ),
            (
                "application/vnd.google-apps.presentation",
                "Deck",
                TextSource::Export("text/plain"),
            ),
            (
                "application/vnd.google-apps.spreadsheet",
                "Budget",
                TextSource::Export("text/csv"),
            ),
            (
                "application/vnd.google-apps.form",
                "Survey",
                TextSource::None,
            ),
            (
                "application/vnd.google-apps.folder",
                "Dir",
                TextSource::None,
            ),
            ("text/plain", "a", TextSource::Media),
            ("text/markdown", "README.md", TextSource::Media),
            ("application/json", "data", TextSource::Media),
            ("application/octet-stream", "main.rs", TextSource::Media),
            ("application/octet-stream", "blob.bin", TextSource::None),
            ("application/pdf", "paper.txt", TextSource::None),
            ("image/png", "shot.png", TextSource::None),
        ];
        for (mime, name, source) in cases {
            assert_eq!(text_source(mime, name), source, "{mime} {name}");
        }
    }

    #[test]
    fn content_carries_the_metadata_and_the_text_status() {
        let file = File {
            id: "f1".into(),
            name: "a.txt".into(),
            mime_type: "text/plain".into(),
            parents: vec!["root".into()],
            size: Some("12".into()),
            version: Some("3".into()),
            created_time: Some("2026-01-02T03:04:05.678Z".into()),
            ..File::default()
        };
        let content = file_content(&file, "/My Drive/a.txt", EXPORT_TOO_LARGE);
        assert_eq!(content["path"], "/My Drive/a.txt");
        assert_eq!(content["size"], 12);
        assert_eq!(content["textStatus"], "exportTooLarge");
        assert!(content["text"].is_null());
        assert!(created(&file).is_some());
    }
}
