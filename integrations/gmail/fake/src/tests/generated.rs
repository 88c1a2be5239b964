//! The generated mailbox: deterministic, realistic, and what the API serves of it.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use mail_parser::MessageParser;

use super::super::generator::Generator;
use super::super::mime::{snippet_of, summarize};
use super::super::{GmailConfig, GmailHandle};
use super::setup;

const NEWEST: i64 = 1_760_000_000_000;

fn sample(seed: u64, count: u64) -> Vec<super::super::generator::GeneratedMessage> {
    let generator = Generator::spread(seed, "tester@example.com", count, NEWEST, 86_400_000 * 365);
    (0..count).map(|i| generator.message(i)).collect()
}

#[test]
fn generation_is_deterministic_per_seed() {
    let first = sample(5, 40);
    let again = sample(5, 40);
    let other = sample(6, 40);
    assert!(
        first
            .iter()
            .zip(&again)
            .all(|(a, b)| a.raw == b.raw && a.label_ids == b.label_ids)
    );
    assert!(first.iter().zip(&other).any(|(a, b)| a.raw != b.raw));
    // A plan is the message without its source.
    let generator = Generator::spread(5, "tester@example.com", 40, NEWEST, 86_400_000 * 365);
    for (index, message) in first.iter().enumerate() {
        let plan = generator.plan(index as u64);
        assert_eq!(plan.subject, message.subject);
        assert_eq!(plan.text, message.text);
        assert_eq!(plan.label_ids, message.label_ids);
        assert_eq!(plan.internal_date_ms, message.internal_date_ms);
        assert_eq!(plan.parent, message.parent);
    }
    // Newest last, all in the past of the anchor.
    assert!(
        first
            .windows(2)
            .all(|w| w[0].internal_date_ms < w[1].internal_date_ms)
    );
    assert!(first.iter().all(|m| m.internal_date_ms <= NEWEST));
}

#[test]
fn generated_mail_is_varied_and_parses() {
    let messages = sample(9, 400);
    let mut seen: HashSet<&str> = HashSet::new();
    for message in &messages {
        let raw = String::from_utf8_lossy(&message.raw);
        let lower = raw.to_ascii_lowercase();
        for marker in [
            "charset=\"utf-8\"",
            "charset=\"iso-8859-1\"",
            "charset=\"windows-1252\"",
            "charset=\"iso-2022-jp\"",
            "quoted-printable",
            "content-transfer-encoding: base64",
            "content-transfer-encoding: 8bit",
            "multipart/alternative",
            "multipart/mixed",
            "multipart/related",
            "message/rfc822",
            "application/pdf",
            "image/png",
            "filename*=utf-8''",
            "in-reply-to:",
            "=?iso-2022-jp?b?",
            "=?iso-8859-1?q?",
        ] {
            if lower.contains(marker) {
                seen.insert(marker);
            }
        }
        // What the mailbox stores without parsing equals what parsing finds.
        let summary = summarize(&message.raw).expect("generated mail parses");
        assert_eq!(summary.subject, message.subject);
        assert_eq!(summary.snippet, snippet_of(&message.text), "{raw}");
        assert_eq!(
            summary.message_id.as_deref(),
            Some(message.message_id.as_str())
        );
        assert!(!message.label_ids.is_empty());
    }
    assert_eq!(seen.len(), 17, "missing variety, saw only {seen:?}");
    let replies = messages.iter().filter(|m| m.parent.is_some()).count();
    assert!(replies > 80 && replies < 250, "{replies} replies");
    let sent = messages
        .iter()
        .filter(|m| m.label_ids.contains(&"SENT"))
        .count();
    assert!(sent > 10);
}

#[test]
fn replies_reference_their_thread() {
    let generator = Generator::spread(3, "tester@example.com", 200, NEWEST, 86_400_000);
    for index in 0..200 {
        let message = generator.message(index);
        let Some(parent) = message.parent else {
            continue;
        };
        let parent = generator.message(parent);
        let parsed = MessageParser::default()
            .parse(&message.raw)
            .expect("generated mail parses");
        let in_reply_to = parsed
            .in_reply_to()
            .as_text()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(in_reply_to, parent.message_id);
        assert!(message.subject.starts_with("Re: "));
        assert!(
            message
                .subject
                .ends_with(parent.subject.trim_start_matches("Re: "))
        );
    }
}

#[tokio::test]
async fn the_api_serves_threads_and_charsets_of_generated_mail() {
    let s = setup(150).await;
    let truth = s.fake.snapshot();
    // Threads: several messages share a thread id, which is its first message's id.
    let mut threads: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, message) in &truth {
        threads
            .entry(message.thread_id.as_str())
            .or_default()
            .push(id);
    }
    assert!(threads.values().any(|members| members.len() >= 3));
    for (thread, members) in &threads {
        assert!(
            members.contains(thread),
            "thread {thread} is named after a member"
        );
    }

    // An ISO-2022-JP text part comes back with its own bytes, not converted.
    let mut found = false;
    for id in s.fake.ids_newest_first() {
        let message = s.get(&format!("messages/{id}")).await;
        let mut stack = vec![message.json["payload"].clone()];
        while let Some(part) = stack.pop() {
            stack.extend(part["parts"].as_array().cloned().unwrap_or_default());
            let is_jp_text = part["mimeType"] == "text/plain"
                && part["headers"].as_array().into_iter().flatten().any(|h| {
                    h["name"] == "Content-Type"
                        && h["value"]
                            .as_str()
                            .unwrap_or_default()
                            .contains("ISO-2022-JP")
                });
            if !is_jp_text {
                continue;
            }
            let data = URL_SAFE
                .decode(part["body"]["data"].as_str().unwrap_or_default())
                .expect("padded base64url");
            assert!(data.windows(3).any(|w| w == b"\x1b$B"));
            assert!(data.is_ascii());
            let subject = message.json["payload"]["headers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|h| h["name"] == "Subject")
                .and_then(|h| h["value"].as_str())
                .unwrap_or_default()
                .to_owned();
            assert!(subject.contains("=?ISO-2022-JP?B?"), "{subject}");
            found = true;
        }
        if found {
            break;
        }
    }
    assert!(found, "150 messages include an ISO-2022-JP one");
}

#[test]
fn a_large_mailbox_builds_from_plans() {
    // 100,000 messages: only plans are built; sources are written on demand.
    let handle = GmailHandle::new(GmailConfig {
        messages: 100_000,
        newest_message_ms: Some(NEWEST),
        ..GmailConfig::default()
    });
    let ids = handle.ids_newest_first();
    assert_eq!(ids.len(), 100_000);
    // Sources are written again on demand, identical each time.
    let newest = &ids[0];
    assert_eq!(handle.raw(newest), handle.raw(newest));
    assert!(handle.raw(newest).is_some_and(|raw| raw.len() > 200));
}
