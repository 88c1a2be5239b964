//! File contents and the generated drive.
//!
//! A file's body is either bytes a test gave ([`Body::Stored`]) or a *recipe* (kind,
//! seed, target length) that makes the same bytes every time it is read
//! ([`Body::Generated`]), so a generated drive of many files holds a few numbers per
//! file instead of their bytes. Text recipes write real text of their kind (prose,
//! Markdown, JSON that parses, CSV, Rust and Python source); the binary recipe writes
//! random bytes after the format's magic number. A generated body ends at a whole
//! unit (a sentence, a JSON document, a row) at or after its target length.
//!
//! MIME types come from the name's extension, as OneDrive derives them
//! ([`mime_for`]); [`is_text_mime`] says which of them a reader treats as text.

use std::borrow::Cow;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng as _, RngCore as _, SeedableRng as _};
use serde_json::json;

use crate::DriveContentConfig;
use crate::drive::{Drive, Key};

/// What a generated body is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recipe {
    Prose,
    Markdown,
    Json,
    Csv,
    Rust,
    Python,
    /// Random bytes after a magic number.
    Binary(&'static [u8]),
}

/// A file's content.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// These bytes.
    Stored(Arc<[u8]>),
    /// Made on every read.
    Generated {
        recipe: Recipe,
        seed: u64,
        target: usize,
    },
}

impl Body {
    /// The bytes.
    pub(crate) fn bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Body::Stored(bytes) => Cow::Borrowed(bytes),
            Body::Generated {
                recipe,
                seed,
                target,
            } => Cow::Owned(generate(*recipe, *seed, *target)),
        }
    }
}

/// The MIME type OneDrive gives a file of this name.
pub(crate) fn mime_for(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "md" | "markdown" => "text/markdown",
        "json" => "application/json",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/x-yaml",
        "rs" => "text/x-rust",
        "py" => "text/x-python",
        "js" => "text/javascript",
        "ts" => "text/x-typescript",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// Whether a MIME type is one a reader takes as text.
pub(crate) fn is_text_mime(mime: &str) -> bool {
    mime.starts_with("text/")
        || matches!(
            mime,
            "application/json" | "application/xml" | "application/x-yaml"
        )
}

const WORDS: &[&str] = &[
    "budget",
    "quarter",
    "review",
    "design",
    "launch",
    "river",
    "harbor",
    "meadow",
    "signal",
    "ledger",
    "invoice",
    "draft",
    "summary",
    "roadmap",
    "cluster",
    "garden",
    "lantern",
    "orbit",
    "pioneer",
    "canvas",
    "beacon",
    "timber",
    "summit",
    "copper",
    "delta",
    "ember",
    "falcon",
    "glacier",
    "horizon",
    "island",
    "jasmine",
    "kernel",
    "lattice",
    "marble",
    "nectar",
    "oasis",
    "pepper",
    "quartz",
    "rocket",
    "saffron",
    "thunder",
    "umbrella",
    "velvet",
    "willow",
    "yonder",
    "zephyr",
    "archive",
    "billing",
    "contract",
    "dataset",
    "estimate",
    "forecast",
    "guideline",
    "handbook",
    "inventory",
    "journal",
    "keynote",
    "milestone",
    "notebook",
    "outline",
    "proposal",
    "question",
    "schedule",
    "template",
];

const SENTENCES: &[&str] = &[
    "The team agreed to revisit the numbers before the next review.",
    "Please keep this document up to date as the plan changes.",
    "Shipping dates depend on the vendor confirming the order.",
    "These notes summarise what was decided in the planning session.",
    "The forecast assumes demand grows steadily through the year.",
    "Open questions are listed at the end of each section.",
    "Costs were lower than expected thanks to the new supplier.",
    "A second pass over the draft caught several small mistakes.",
    "Everyone should read the guideline before starting the work.",
    "The archive keeps every version, so nothing is ever lost.",
    "Results from the pilot look promising but need more data.",
    "Travel is booked, and the itinerary is attached below.",
];

const FOLDER_NAMES: &[&str] = &[
    "Projects",
    "Invoices",
    "Photos",
    "Reports",
    "Notes",
    "Archive",
    "Designs",
    "Research",
    "Shared",
    "Travel",
    "Recipes",
    "Drafts",
    "Contracts",
    "Receipts",
    "Presentations",
    "Music",
    "Backups",
    "Clients",
    "Taxes",
    "Ideas",
];

fn word(rng: &mut StdRng) -> &'static str {
    WORDS[rng.random_range(0..WORDS.len())]
}

fn sentence(rng: &mut StdRng) -> &'static str {
    SENTENCES[rng.random_range(0..SENTENCES.len())]
}

fn paragraph(rng: &mut StdRng) -> String {
    (0..rng.random_range(2..6))
        .map(|_| sentence(rng))
        .collect::<Vec<_>>()
        .join(" ")
}

fn title(rng: &mut StdRng) -> String {
    let (a, b) = (word(rng), word(rng));
    let mut t = String::new();
    for (i, w) in [a, b].iter().enumerate() {
        if i > 0 {
            t.push(' ');
        }
        let mut chars = w.chars();
        if let Some(first) = chars.next() {
            t.extend(first.to_uppercase());
            t.push_str(chars.as_str());
        }
    }
    t
}

/// The bytes of a recipe: the same for the same (recipe, seed, target).
pub(crate) fn generate(recipe: Recipe, seed: u64, target: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = String::new();
    match recipe {
        Recipe::Binary(magic) => {
            let mut bytes = vec![0u8; target.max(magic.len())];
            rng.fill_bytes(&mut bytes);
            bytes[..magic.len()].copy_from_slice(magic);
            return bytes;
        }
        Recipe::Prose => {
            while out.len() < target {
                out.push_str(&paragraph(&mut rng));
                out.push_str("\n\n");
            }
        }
        Recipe::Markdown => {
            out.push_str(&format!("# {}\n\n", title(&mut rng)));
            while out.len() < target {
                out.push_str(&format!(
                    "## {}\n\n{}\n\n",
                    title(&mut rng),
                    paragraph(&mut rng)
                ));
                for _ in 0..rng.random_range(1..4) {
                    out.push_str(&format!("- {}\n", sentence(&mut rng)));
                }
                out.push('\n');
            }
        }
        Recipe::Json => {
            // The compact length of the rows so far: the pretty document is longer.
            let mut rows = Vec::new();
            let mut length = 0;
            while rows.is_empty() || length < target {
                let row = json!({
                    "id": rows.len() + 1,
                    "name": title(&mut rng),
                    "tags": [word(&mut rng), word(&mut rng)],
                    "quantity": rng.random_range(1..500),
                    "note": sentence(&mut rng),
                });
                length += row.to_string().len() + 1;
                rows.push(row);
            }
            let value = json!({"title": "export", "items": rows});
            out = serde_json::to_string_pretty(&value).unwrap_or_default();
            out.push('\n');
        }
        Recipe::Csv => {
            out.push_str("id,name,quantity,price,owner\n");
            let mut n = 0;
            while out.len() < target {
                n += 1;
                out.push_str(&format!(
                    "{n},{},{},{}.{:02},{}\n",
                    title(&mut rng),
                    rng.random_range(1..1000),
                    rng.random_range(1..500),
                    rng.random_range(0..100),
                    word(&mut rng),
                ));
            }
        }
        Recipe::Rust => {
            out.push_str(&format!("//! {}\n\n", sentence(&mut rng)));
            while out.len() < target {
                out.push_str(&format!(
                    "/// {}\npub fn {}_{}(value: u64) -> u64 {{\n    value.wrapping_mul({}) + {}\n}}\n\n",
                    sentence(&mut rng),
                    word(&mut rng),
                    word(&mut rng),
                    rng.random_range(2..100),
                    rng.random_range(0..1000),
                ));
            }
        }
        Recipe::Python => {
            out.push_str(&format!("\"\"\"{}\"\"\"\n\n", sentence(&mut rng)));
            while out.len() < target {
                out.push_str(&format!(
                    "def {}_{}(value):\n    \"\"\"{}\"\"\"\n    return value * {} + {}\n\n\n",
                    word(&mut rng),
                    word(&mut rng),
                    sentence(&mut rng),
                    rng.random_range(2..100),
                    rng.random_range(0..1000),
                ));
            }
        }
    }
    out.into_bytes()
}

/// The text recipes with the extensions they go by.
const TEXT_KINDS: &[(Recipe, &str)] = &[
    (Recipe::Prose, "txt"),
    (Recipe::Markdown, "md"),
    (Recipe::Json, "json"),
    (Recipe::Csv, "csv"),
    (Recipe::Rust, "rs"),
    (Recipe::Python, "py"),
];

/// The binary kinds: extension and magic number.
const BINARY_KINDS: &[(&str, &[u8])] = &[
    ("png", b"\x89PNG\r\n\x1a\n"),
    ("jpg", b"\xff\xd8\xff\xe0"),
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
    ("zip", b"PK\x03\x04"),
    ("docx", b"PK\x03\x04"),
    ("bin", b""),
];

/// A generated file: its name and body (not yet placed).
pub(crate) struct Generated {
    pub(crate) name: String,
    pub(crate) body: Body,
}

/// A small generated file, text with probability `text_share`.
pub(crate) fn generated_file(rng: &mut StdRng, text_share: f64, n: u64) -> Generated {
    let seed = rng.random::<u64>();
    let stem = format!("{}-{} {n}", word(rng), word(rng));
    if rng.random_bool(text_share.clamp(0.0, 1.0)) {
        let (recipe, ext) = TEXT_KINDS[rng.random_range(0..TEXT_KINDS.len())];
        let target = rng.random_range(120..6000);
        Generated {
            name: format!("{stem}.{ext}"),
            body: Body::Generated {
                recipe,
                seed,
                target,
            },
        }
    } else {
        let (ext, magic) = BINARY_KINDS[rng.random_range(0..BINARY_KINDS.len())];
        let target = rng.random_range(256..16_384);
        Generated {
            name: format!("{stem}.{ext}"),
            body: Body::Generated {
                recipe: Recipe::Binary(magic),
                seed,
                target,
            },
        }
    }
}

/// A large text file of about `bytes` bytes.
fn large_file(rng: &mut StdRng, bytes: usize, n: u64) -> Generated {
    let (recipe, ext) = TEXT_KINDS[(n as usize) % 4];
    Generated {
        name: format!("large {} {n}.{ext}", word(rng)),
        body: Body::Generated {
            recipe,
            seed: rng.random(),
            target: bytes,
        },
    }
}

/// Fills an empty drive as `config` says, with times spread over the days before
/// `now_ms`.
pub(crate) fn generate_drive(drive: &mut Drive, config: &DriveContentConfig, now_ms: i64) {
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x6765_6e65_7261_7465);
    let span_ms = i64::from(config.days.max(1)) * 86_400_000;
    let start_ms = now_ms - span_ms;
    let max_depth = config.max_depth.max(1);
    // (key, depth) of every folder, the root first.
    let mut folders: Vec<(Key, usize)> = vec![(drive.root, 0)];
    for i in 0..config.folders {
        let candidates: Vec<(Key, usize)> = folders
            .iter()
            .copied()
            .filter(|(_, depth)| *depth < max_depth)
            .collect();
        // Prefer the top levels a little, so the tree is neither flat nor a chain.
        let (parent, depth) = if rng.random_bool(0.3) {
            (drive.root, 0)
        } else {
            candidates[rng.random_range(0..candidates.len())]
        };
        let base = FOLDER_NAMES[rng.random_range(0..FOLDER_NAMES.len())];
        let name = drive.free_name(parent, base);
        let created = start_ms + span_ms * i as i64 / (config.folders.max(1) as i64 * 2);
        let Some(parent_id) = drive.items.get(&parent).map(|p| p.id.clone()) else {
            continue;
        };
        if let Ok(key) = drive.create_folder(&parent_id, &name, created) {
            folders.push((key, depth + 1));
        }
    }
    for i in 0..config.files {
        let n = i as u64 + 1;
        let generated = if i < config.large_files {
            large_file(&mut rng, config.large_file_bytes, n)
        } else {
            generated_file(&mut rng, config.text_share, n)
        };
        let (folder, _) = folders[rng.random_range(0..folders.len())];
        let name = drive.free_name(folder, &generated.name);
        let folder_created = drive.items.get(&folder).map_or(start_ms, |f| f.created_ms);
        let created = (start_ms + rng.random_range(0..span_ms.max(2) / 2)).max(folder_created);
        let modified = created + rng.random_range(0..(now_ms - created).max(1));
        let mime = mime_for(&name).to_owned();
        let file = drive.file_data(generated.body, mime);
        let Some(folder_id) = drive.items.get(&folder).map(|f| f.id.clone()) else {
            continue;
        };
        let _ = drive.create_file(&folder_id, &name, file, created, modified);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn recipes_are_deterministic_and_of_their_kind() {
        for (recipe, _) in TEXT_KINDS {
            let a = generate(*recipe, 9, 3000);
            assert_eq!(a, generate(*recipe, 9, 3000));
            assert!(a.len() >= 3000, "{recipe:?}");
            assert!(std::str::from_utf8(&a).is_ok(), "{recipe:?} is text");
        }
        let json = generate(Recipe::Json, 3, 10_000);
        let parsed: Value = serde_json::from_slice(&json).unwrap();
        assert!(parsed["items"].as_array().is_some_and(|a| !a.is_empty()));
        let png = generate(Recipe::Binary(b"\x89PNG\r\n\x1a\n"), 1, 500);
        assert_eq!(png.len(), 500);
        assert!(png.starts_with(b"\x89PNG"));
        assert!(std::str::from_utf8(&png).is_err());
    }

    #[test]
    fn mime_types_come_from_extensions() {
        assert_eq!(mime_for("a.TXT"), "text/plain");
        assert_eq!(mime_for("notes.md"), "text/markdown");
        assert_eq!(mime_for("x.json"), "application/json");
        assert_eq!(mime_for("noext"), "application/octet-stream");
        assert!(is_text_mime("text/x-rust"));
        assert!(is_text_mime("application/json"));
        assert!(!is_text_mime("image/png"));
    }
}
