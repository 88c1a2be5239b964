//! The real-world regression corpus: raw RFC 5322 messages in `tests/corpus/*.eml`,
//! each with `*.json` beside it, written by `tests/corpus/generate.py` from Python's
//! standard `email` package alone: the `messages.get` (`format=full`) JSON Gmail would
//! serve for the message, and the fields the mapping must produce, worked out without
//! any of our code.
//!
//! `every_corpus_message_maps_to_its_expected_fields` maps each message's JSON and
//! compares field by field, naming the message on failure. `the_committed_json_is_what_
//! the_script_produces` runs the script again (when `python3` is there; under
//! `CI=true` its absence is a failure) so that the expectations stay honest.
//!
//! To add a case, write `NN-name.eml` (invented people, `example.com` / `example.org`),
//! run `python3 tests/corpus/generate.py`, and commit both files.

#![allow(clippy::unwrap_used)] // a test binary: a panic is how a test fails

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;
use tributary_gmail::client::Message;
use tributary_gmail::mapping::{EmailContent, email_content, message_output};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// One generated file.
#[derive(Deserialize)]
struct Case {
    message: Message,
    expected: Expected,
}

/// The fields the mapping must produce, as the script worked them out.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Expected {
    subject: String,
    from: Vec<Mailbox>,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    date: String,
    body: Body,
    attachments: Vec<ExpectedAttachment>,
    skipped_parts: usize,
    snippet: String,
    label_ids: Vec<String>,
    timestamp_millis: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mailbox {
    name: String,
    address: String,
}

/// The body: exact for text from a `text/plain` part (or none); for HTML, the text
/// without any whitespace, since line breaks and spacing are the mapping's choice.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    from: Option<String>,
    text: Option<String>,
    compact: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExpectedAttachment {
    filename: String,
    mime_type: String,
}

fn without_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Checks that `rendered` (a `From`/`To`/`Cc` field) holds each mailbox in order:
/// its address, preceded (after the previous one) by its display name. Names are
/// compared without whitespace: Python keeps the folding space between adjacent
/// encoded words of a display name, which RFC 2047 (6.2) says to drop.
fn check_mailboxes(field: &str, rendered: &str, expected: &[Mailbox], problems: &mut Vec<String>) {
    if expected.is_empty() != rendered.is_empty() {
        problems.push(format!(
            "{field}: expected {} addresses, got {rendered:?}",
            expected.len()
        ));
        return;
    }
    let mut from = 0;
    for mailbox in expected {
        let Some(at) = rendered[from..].find(&mailbox.address) else {
            problems.push(format!(
                "{field}: {} missing (in order) from {rendered:?}",
                mailbox.address
            ));
            return;
        };
        let before = without_whitespace(&rendered[from..from + at]).replace("\\\"", "\"");
        if !before.contains(&without_whitespace(&mailbox.name)) {
            problems.push(format!(
                "{field}: name {:?} of {} missing from {rendered:?}",
                mailbox.name, mailbox.address
            ));
        }
        from += at + mailbox.address.len();
    }
}

/// Every difference between what the mapping stored and what the script expects.
fn compare(case: &Case) -> Vec<String> {
    let content: EmailContent = email_content(&case.message);
    let expected = &case.expected;
    let mut problems = Vec::new();
    let same = |field: &str, got: &dyn std::fmt::Debug, want: &dyn std::fmt::Debug| {
        let (got, want) = (format!("{got:?}"), format!("{want:?}"));
        (got != want).then(|| format!("{field}: expected {want}, got {got}"))
    };
    problems.extend(same("subject", &content.subject, &expected.subject));
    problems.extend(same("date", &content.date, &expected.date));
    problems.extend(same("snippet", &content.snippet, &expected.snippet));
    problems.extend(same("labelIds", &content.label_ids, &expected.label_ids));
    problems.extend(same(
        "threadId",
        &content.thread_id,
        &format!("thread-{}", case.message.id),
    ));
    problems.extend(same(
        "skippedParts",
        &content.skipped_parts,
        &expected.skipped_parts,
    ));
    let names: Vec<(&str, &str)> = content
        .attachments
        .iter()
        .map(|a| (a.filename.as_str(), a.mime_type.as_str()))
        .collect();
    let want: Vec<(&str, &str)> = expected
        .attachments
        .iter()
        .map(|a| (a.filename.as_str(), a.mime_type.as_str()))
        .collect();
    problems.extend(same("attachments", &names, &want));
    problems.extend(same(
        "attachmentCount",
        &content.attachment_count,
        &want.len(),
    ));
    problems.extend(same(
        "hasAttachments",
        &content.has_attachments,
        &!want.is_empty(),
    ));
    match (
        &expected.body.from,
        &expected.body.compact,
        &expected.body.text,
    ) {
        (Some(html), Some(compact), None) if html == "text/html" => problems.extend(same(
            "body (HTML, without whitespace)",
            &without_whitespace(&content.body),
            compact,
        )),
        (_, None, Some(text)) => problems.extend(same("body", &content.body, text)),
        _ => problems.push("the expected body is malformed".into()),
    }
    let timestamp = message_output(&case.message)
        .map(|output| output.timestamp().map(|t| t.timestamp_millis()));
    problems.extend(same(
        "timestamp",
        &timestamp.ok().flatten(),
        &Some(expected.timestamp_millis),
    ));
    check_mailboxes("from", &content.from, &expected.from, &mut problems);
    check_mailboxes("to", &content.to, &expected.to, &mut problems);
    check_mailboxes("cc", &content.cc, &expected.cc, &mut problems);
    problems
}

/// The corpus's file names (without extension) with the given extension.
fn stems(extension: &str) -> Vec<String> {
    let mut stems: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    stems.sort();
    stems
}

#[test]
fn every_corpus_message_maps_to_its_expected_fields() {
    let messages = stems("eml");
    assert!(
        messages.len() >= 40,
        "the corpus has {} messages",
        messages.len()
    );
    assert_eq!(
        stems("json"),
        messages,
        "every message has its generated JSON, and nothing else is there"
    );
    let mut failures = Vec::new();
    for name in &messages {
        let path = corpus_dir().join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        let case: Case =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(&case.message.id, name, "{name}: the message id is its name");
        failures.extend(compare(&case).into_iter().map(|p| format!("{name}: {p}")));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_comparison_catches_differences() {
    let path = corpus_dir().join("02-repeated-to-cc.json");
    let text = std::fs::read_to_string(path).unwrap();
    let mut case: Case = serde_json::from_str(&text).unwrap();
    assert!(compare(&case).is_empty());
    case.expected.cc.swap(0, 1);
    case.expected.subject.push('!');
    case.expected.body.text = Some("other".into());
    case.expected.attachments.push(ExpectedAttachment {
        filename: "x.pdf".into(),
        mime_type: "application/pdf".into(),
    });
    let problems = compare(&case);
    for field in ["cc:", "subject:", "body:", "attachments:"] {
        assert!(
            problems.iter().any(|p| p.starts_with(field)),
            "{field} {problems:#?}"
        );
    }
}

/// Whether `python3` runs here.
fn python() -> Option<Command> {
    let works = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    works.then(|| Command::new("python3"))
}

#[test]
fn the_committed_json_is_what_the_script_produces() {
    let Some(mut python) = python() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 is needed to check the corpus expectations under CI"
        );
        eprintln!("skipped: no python3 to check tests/corpus/*.json against generate.py");
        return;
    };
    let output = python
        .current_dir(corpus_dir())
        .args(["-B", "generate.py", "--print"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONIOENCODING", "utf-8")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "generate.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated: BTreeMap<String, String> = serde_json::from_slice(&output.stdout).unwrap();
    let committed: Vec<String> = stems("json")
        .into_iter()
        .map(|stem| format!("{stem}.json"))
        .collect();
    assert_eq!(
        generated.keys().cloned().collect::<Vec<_>>(),
        committed,
        "the script writes exactly the committed files"
    );
    let stale: Vec<&String> = generated
        .iter()
        .filter(|(name, text)| {
            std::fs::read_to_string(corpus_dir().join(name))
                .ok()
                .as_ref()
                != Some(*text)
        })
        .map(|(name, _)| name)
        .collect();
    assert!(
        stale.is_empty(),
        "out of date, run `python3 tests/corpus/generate.py`: {stale:?}"
    );
    // The expectations parse as what the mapping test reads.
    for text in generated.values() {
        let value: Value = serde_json::from_str(text).unwrap();
        assert!(value["expected"].is_object() && value["message"]["payload"].is_object());
    }
}
