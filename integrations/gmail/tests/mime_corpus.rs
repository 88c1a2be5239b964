//! The MIME corpus: real-world shaped RFC 822 sources in `tests/mime/*.eml`, each with
//! the content fields it must decode to in `*.expected.json` beside it.
//!
//! Each source goes through the same shape Gmail serves (`support::rfc822` turns it
//! into `messages.get` JSON) and then through the integration's mapping. An expected
//! file lists only the fields its case is about; objects match when every listed
//! field matches, arrays element by element.
//!
//! To add a case, drop `NN-name.eml` and `NN-name.expected.json` into `tests/mime/`.

#![allow(clippy::unwrap_used)] // a test binary: a panic is how a test fails

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use tributary_gmail::client::Message;
use tributary_gmail::mapping::email_content;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mime")
}

/// Why `actual` does not match `expected`, if it does not.
fn mismatch(expected: &Value, actual: &Value, at: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Object(fields), Value::Object(actual_fields)) => {
            fields.iter().find_map(|(k, v)| {
                let path = format!("{at}.{k}");
                match actual_fields.get(k) {
                    Some(actual) => mismatch(v, actual, &path),
                    None => Some(format!("{path} is missing")),
                }
            })
        }
        (Value::Array(items), Value::Array(actual_items)) if items.len() == actual_items.len() => {
            items
                .iter()
                .zip(actual_items)
                .enumerate()
                .find_map(|(i, (e, a))| mismatch(e, a, &format!("{at}[{i}]")))
        }
        _ if expected == actual => None,
        _ => Some(format!("{at}: expected {expected}, got {actual}")),
    }
}

fn decode(name: &str, raw: &[u8]) -> Value {
    let json = support::rfc822::api_message_json(name, raw);
    let message: Message = serde_json::from_value(json).unwrap();
    serde_json::to_value(email_content(&message)).unwrap()
}

#[test]
fn every_corpus_message_decodes_to_its_expected_fields() {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "eml"))
        .collect();
    sources.sort();
    assert!(
        sources.len() >= 30,
        "the corpus has {} messages",
        sources.len()
    );

    let mut failures = Vec::new();
    for source in &sources {
        let name = source.file_stem().unwrap().to_string_lossy().into_owned();
        let expected_path = source.with_extension("expected.json");
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display())),
        )
        .unwrap();
        let actual = decode(&name, &std::fs::read(source).unwrap());
        if let Some(why) = mismatch(&expected, &actual, &name) {
            failures.push(format!("{why}\n  decoded: {actual}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_expectation_has_a_source() {
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".expected.json") {
            assert!(
                corpus_dir().join(format!("{stem}.eml")).exists(),
                "{name} has no source"
            );
        } else {
            assert!(
                name.ends_with(".eml"),
                "unexpected file {name} in the corpus"
            );
        }
    }
}

#[test]
fn the_matcher_reports_differences() {
    let actual = serde_json::json!({"subject": "a", "attachments": [{"filename": "x", "size": 1}]});
    assert_eq!(
        mismatch(&serde_json::json!({"subject": "a"}), &actual, "m"),
        None
    );
    assert!(mismatch(&serde_json::json!({"subject": "b"}), &actual, "m").is_some());
    assert!(mismatch(&serde_json::json!({"attachments": []}), &actual, "m").is_some());
    assert!(
        mismatch(
            &serde_json::json!({"attachments": [{"size": 2}]}),
            &actual,
            "m"
        )
        .is_some()
    );
    assert!(mismatch(&serde_json::json!({"missing": 1}), &actual, "m").is_some());
}
