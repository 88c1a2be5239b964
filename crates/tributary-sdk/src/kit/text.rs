//! The text of stored files: which files are text, and a text cut at a size.
//!
//! A file sync stores a file's text when the file is text-like and its metadata
//! only otherwise (images, archives, PDFs). Text-like means a `text/*` MIME type, one
//! of [`TEXT_MIME_TYPES`], or a name ending in one of [`TEXT_EXTENSIONS`] on a file the
//! service types generically (`application/octet-stream`, or no type at all).
//!
//! At most a configured number of bytes of a text is read; beyond it the text is cut
//! at a character boundary and marked truncated ([`FileText::Truncated`], stored as
//! `textStatus: "truncated"`).

use serde_json::Value;

/// MIME types outside `text/*` whose content is text.
pub const TEXT_MIME_TYPES: [&str; 14] = [
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

/// File name extensions of text (source code, markup, configuration), for files a
/// service types generically.
pub const TEXT_EXTENSIONS: [&str; 40] = [
    "txt", "md", "markdown", "rst", "csv", "tsv", "json", "jsonl", "xml", "yaml", "yml", "toml",
    "ini", "cfg", "conf", "log", "html", "htm", "css", "js", "mjs", "ts", "tsx", "jsx", "py", "rs",
    "go", "java", "kt", "c", "h", "cpp", "hpp", "cs", "rb", "php", "sh", "sql", "swift", "tex",
];

/// MIME types that say nothing about the content.
const GENERIC_MIME_TYPES: [&str; 3] = ["application/octet-stream", "", "application/x-unknown"];

/// Whether a file of `mime_type` named `name` is text-like (see the module docs).
pub fn is_text(mime_type: &str, name: &str) -> bool {
    let mime = mime_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime.starts_with("text/") || TEXT_MIME_TYPES.contains(&mime.as_str()) {
        return true;
    }
    if !GENERIC_MIME_TYPES.contains(&mime.as_str()) {
        return false;
    }
    name.rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .is_some_and(|ext| TEXT_EXTENSIONS.contains(&ext.as_str()))
}

/// What became of a file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileText {
    /// All of it.
    Complete(String),
    /// Its first bytes, up to the limit, cut at a character boundary.
    Truncated(String),
    /// The service would not hand it out; the status says why (`exportTooLarge`).
    Unavailable(&'static str),
    /// The file has no text (a binary, a folder).
    None,
}

impl FileText {
    /// The text of `bytes`, cut at a character boundary when `truncated` (invalid
    /// UTF-8 elsewhere becomes U+FFFD).
    pub fn from_bytes(bytes: &[u8], truncated: bool) -> FileText {
        let whole = if truncated {
            // The cut may split a character: keep what ends on a boundary.
            match std::str::from_utf8(bytes) {
                Err(e) if e.error_len().is_none() => bytes.get(..e.valid_up_to()).unwrap_or(bytes),
                _ => bytes,
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

    /// The stored `text` (a string, or `null`) and `textStatus` (`complete`,
    /// `truncated`, `none`, or the reason of [`FileText::Unavailable`]).
    pub fn into_parts(self) -> (Value, &'static str) {
        match self {
            FileText::Complete(t) => (Value::String(t), "complete"),
            FileText::Truncated(t) => (Value::String(t), "truncated"),
            FileText::Unavailable(status) => (Value::Null, status),
            FileText::None => (Value::Null, "none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_like_files_by_type_or_generic_type_and_extension() {
        let cases = [
            ("text/plain", "a", true),
            ("text/markdown", "README.md", true),
            ("text/plain; charset=utf-8", "a", true),
            ("application/json", "data", true),
            ("application/octet-stream", "main.rs", true),
            ("", "notes.TXT", true),
            ("application/octet-stream", "blob.bin", false),
            ("application/pdf", "paper.txt", false),
            ("image/png", "shot.png", false),
        ];
        for (mime, name, text) in cases {
            assert_eq!(is_text(mime, name), text, "{mime} {name}");
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
        assert_eq!(
            FileText::Truncated("x".into()).into_parts(),
            (Value::String("x".into()), "truncated")
        );
        assert_eq!(
            FileText::Unavailable("exportTooLarge").into_parts(),
            (Value::Null, "exportTooLarge")
        );
        assert_eq!(FileText::None.into_parts(), (Value::Null, "none"));
    }
}
