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
//! `textStatus: exportTooLarge`.

use serde_json::{Value, json};

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

/// MIME types outside `text/*` whose content is text.
const TEXT_MIME_TYPES: [&str; 14] = [
    "application/json",
    "application/ld+json",
    "application/xml",
    "application/xhtml+xml",
    "application/javascript",
    "application/x-javascript",
    "application/typescript",
    "application/x-yaml",
    "application/yaml",
    "application/toml",
    "application/x-sh",
    "application/sql",
    "application/x-python",
    "application/x-httpd-php",
];

/// File name extensions of text (source code, markup, configuration), for files Drive
/// types as `application/octet-stream` or by guess.
const TEXT_EXTENSIONS: [&str; 40] = [
    "txt", "md", "markdown", "rst", "csv", "tsv", "json", "jsonl", "xml", "yaml", "yml", "toml",
    "ini", "cfg", "conf", "log", "html", "htm", "css", "js", "mjs", "ts", "tsx", "jsx", "py", "rs",
    "go", "java", "kt", "c", "h", "cpp", "hpp", "cs", "rb", "php", "sh", "sql", "swift", "tex",
];

/// Where the text of a file of `mime_type` named `name` comes from.
pub fn text_source(mime_type: &str, name: &str) -> TextSource {
    match mime_type {
        "application/vnd.google-apps.document" | "application/vnd.google-apps.presentation" => {
            return TextSource::Export("text/plain");
        }
        "application/vnd.google-apps.spreadsheet" => return TextSource::Export("text/csv"),
        m if m.starts_with("application/vnd.google-apps.") => return TextSource::None,
        m if m.starts_with("text/") || TEXT_MIME_TYPES.contains(&m) => {
            return TextSource::Media;
        }
        _ => {}
    }
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    let generic = matches!(
        mime_type,
        "application/octet-stream" | "" | "application/x-unknown"
    );
    match extension {
        Some(ext) if generic && TEXT_EXTENSIONS.contains(&ext.as_str()) => TextSource::Media,
        _ => TextSource::None,
    }
}

/// What became of a file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileText {
    /// All of it.
    Complete(String),
    /// Its first `maxTextBytes`.
    Truncated(String),
    /// Drive refused the export as too large.
    ExportTooLarge,
    /// The file has no text (a binary, a folder, a Form).
    None,
}

impl FileText {
    /// The text of `bytes`, cut at a character boundary when `truncated` (invalid
    /// UTF-8 elsewhere becomes U+FFFD).
    pub fn from_bytes(bytes: &[u8], truncated: bool) -> FileText {
        let whole = if truncated {
            // The cut may split a character: keep what ends on a boundary.
            match std::str::from_utf8(bytes) {
                Ok(_) => bytes,
                Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
                Err(_) => bytes,
            }
        } else {
            bytes
        };
        let text = String::from_utf8_lossy(whole).into_owned();
        if truncated {
            FileText::Truncated(text)
        } else {
            FileText::Complete(text)
        }
    }
}

/// The stored content of `file` at `path` with `text` (see the crate docs for the
/// shape).
pub fn file_content(file: &File, path: &str, text: FileText) -> Value {
    let (text, status) = match text {
        FileText::Complete(t) => (Value::String(t), "complete"),
        FileText::Truncated(t) => (Value::String(t), "truncated"),
        FileText::ExportTooLarge => (Value::Null, "exportTooLarge"),
        FileText::None => (Value::Null, "none"),
    };
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
    fn a_cut_text_ends_on_a_character() {
        let bytes = "héé".as_bytes();
        assert_eq!(
            FileText::from_bytes(&bytes[..4], true),
            FileText::Truncated("hé".into())
        );
        assert_eq!(
            FileText::from_bytes(bytes, false),
            FileText::Complete("héé".into())
        );
        assert_eq!(
            FileText::from_bytes(b"a\xffb", false),
            FileText::Complete("a\u{fffd}b".into())
        );
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
        let content = file_content(&file, "/My Drive/a.txt", FileText::ExportTooLarge);
        assert_eq!(content["path"], "/My Drive/a.txt");
        assert_eq!(content["size"], 12);
        assert_eq!(content["textStatus"], "exportTooLarge");
        assert!(content["text"].is_null());
        assert!(created(&file).is_some());
    }
}
