//! Property tests: random, hostile MIME trees (as Gmail's `MessagePart` values)
//! through the whole mapping.
//!
//! The trees mix every kind of part (`text/*`, binary, `message/rfc822` and other
//! `message/*`, every common `multipart/*`, empty and invalid types), nest up to about
//! 100 levels, and carry absent, empty and invalid bodies, invalid base64, unknown
//! charsets, repeated and malformed headers and 8-bit text in header values and
//! bodies. Whatever the tree, the mapping returns, and:
//! - every address the generator wrote on any `To` or `Cc` line is in `to` / `cc`, in
//!   order;
//! - the body never holds text from inside a file attachment, nor from below
//!   [`MAX_MIME_DEPTH`];
//! - `skippedParts` is the number of parts below the cap (so it is set exactly when
//!   the tree is deeper than the cap), and the attachments are the outermost
//!   attachment parts within the cap;
//! - a leading text part is the body; the first `Subject` and `From` lines win;
//! - the stored text grows at most linearly with the input.
//!
//! The models below (attachment, level) restate the rules of `mime`'s docs, written
//! separately: recursive, which is fine for trees that are at most ~110 levels deep.

#![allow(clippy::unwrap_used)] // a test binary: a panic is how a test fails

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use tributary_gmail::client::{Message, MessagePart, MessagePartBody, MessagePartHeader};
use tributary_gmail::mapping::{EmailContent, NO_SUBJECT, email_content, message_output};
use tributary_gmail::mime::MAX_MIME_DEPTH;

/// Text put in every text part inside a file attachment: never in the body.
const ATTACHED: &str = "XATTACHEDX";
/// Text put in every part below the depth cap: never in the body.
const TOO_DEEP: &str = "XTOODEEPX";

/// Cases per property: enough variety per run while the suite stays fast in debug.
const CASES: u32 = 96;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        // A failure prints its minimal input; the test writes nothing into the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn header(name: &str, value: &str) -> MessagePartHeader {
    MessagePartHeader {
        name: name.into(),
        value: value.into(),
    }
}

const MIME_TYPES: [&str; 22] = [
    "text/plain",
    "TEXT/PLAIN",
    "text/html",
    "Text/HTML",
    "text/calendar",
    "text/x-unknown",
    "application/octet-stream",
    "application/pdf",
    "image/png",
    "message/rfc822",
    "MESSAGE/RFC822",
    "message/delivery-status",
    "message/global",
    "message/partial",
    "multipart/mixed",
    "multipart/alternative",
    "multipart/related",
    "multipart/digest",
    "multipart/report",
    "multipart/signed",
    "",
    "not a type",
];

const CONTAINER_TYPES: [&str; 8] = [
    "multipart/mixed",
    "multipart/alternative",
    "multipart/related",
    "multipart/digest",
    "multipart/report",
    "multipart/signed",
    "message/rfc822",
    "message/global",
];

fn mime_type() -> impl Strategy<Value = String> {
    proptest::sample::select(&MIME_TYPES[..]).prop_map(String::from)
}

fn container_type() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(&CONTAINER_TYPES[..]).prop_map(String::from),
        1 => mime_type(),
    ]
}

/// Body bytes: lowercase words, line breaks and 8-bit bytes (never upper case, so
/// they cannot spell the markers).
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![
            6 => b'a'..=b'z',
            2 => Just(b' '),
            1 => prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'\t')],
            2 => 0x80u8..=0xff,
            1 => 0u8..0x20,
        ],
        0..48,
    )
}

fn body_data() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(String::new())),
        4 => body_bytes().prop_map(|b| Some(URL_SAFE.encode(b))),
        2 => body_bytes().prop_map(|b| Some(URL_SAFE_NO_PAD.encode(b))),
        // Standard alphabet, stray characters, bad lengths: mostly invalid base64url.
        2 => "[a-z0-9+/=!*. -]{1,24}".prop_map(Some),
    ]
}

fn body() -> impl Strategy<Value = MessagePartBody> {
    (
        body_data(),
        option::weighted(0.2, "[a-z0-9_-]{1,12}"),
        0u64..1_000_000,
    )
        .prop_map(|(data, attachment_id, size)| MessagePartBody {
            attachment_id,
            size,
            data,
        })
}

/// A header of a part: content types with known, unknown and broken charsets,
/// dispositions, and noise (any printable text, 8-bit included, folded or not).
fn part_header() -> impl Strategy<Value = MessagePartHeader> {
    let content_type = proptest::sample::select(
        &[
            "text/plain; charset=utf-8",
            "text/plain; charset=\"ISO-8859-1\"",
            "text/html; charset=windows-1252",
            "text/plain; charset=x-unknown-charset",
            "text/plain; charset=utf-16",
            "text/plain; charset=utf-7",
            "text/plain; charset=iso-2022-jp",
            "text/plain; charset=shift_jis",
            "text/plain; charset=koi8-r",
            "text/plain; charset=",
            "text/plain; charset",
            "text/plain;;;charset==\"",
            "multipart/mixed; boundary=\"b\"",
            "",
        ][..],
    );
    let disposition = proptest::sample::select(
        &[
            "attachment",
            "ATTACHMENT; filename=\"a.txt\"",
            "  attachment;filename*=UTF-8''%C3%A9.txt",
            "inline",
            "inline; filename=b.txt",
            "",
            "garbage;;",
        ][..],
    );
    let name = proptest::sample::select(
        &[
            "Content-Type",
            "content-type",
            "CONTENT-TYPE",
            "Content-Disposition",
        ][..],
    );
    prop_oneof![
        3 => (name, content_type).prop_map(|(n, v)| header(n, v)),
        2 => disposition.prop_map(|v| header("Content-Disposition", v)),
        2 => ("[A-Za-z-]{0,12}", noise()).prop_map(|(n, v)| header(&n, &v)),
    ]
}

/// Any printable text, 8-bit included, with folding, encoded words in unknown or
/// broken charsets, and stray syntax.
fn noise() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\PC{0,24}",
        1 => Just("=?x-unknown?B?w6k=?= =?UTF-8?B?!!!?= =?utf-8?q?caf=E9?=".to_owned()),
        1 => Just("a\r\n\tb\r\n c".to_owned()),
        1 => Just("\"unterminated <x@example.com".to_owned()),
        1 => Just("<<>>,,;:;\\".to_owned()),
        1 => Just("undisclosed-recipients:;".to_owned()),
        1 => Just("Zoë Ünïcødé 日本語 <zoe@例え.jp>".to_owned()),
    ]
}

fn filename() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(String::new()),
        1 => Just("  ".to_owned()),
        2 => "[a-z]{1,8}\\.(txt|pdf|eml)",
        1 => Just("=?UTF-8?B?w6l0w6k=?=.pdf".to_owned()),
        1 => "\\PC{1,10}",
    ]
}

fn leaf() -> impl Strategy<Value = MessagePart> {
    (mime_type(), filename(), vec(part_header(), 0..3), body()).prop_map(
        |(mime_type, filename, headers, body)| MessagePart {
            mime_type,
            filename,
            headers,
            body,
            ..MessagePart::default()
        },
    )
}

/// A chain of `0..=94` containers around a leaf, each container with a leaf of its
/// own after the chain's next link (a comb): the deep trees, with parts at every
/// level, so that any error in where the cap falls shows.
fn deep_leaf() -> impl Strategy<Value = MessagePart> {
    // Mostly multiparts: an attached message or a file stops the walks for
    // attachments (not the body's), so most chains must be free of them to go deep.
    let link = prop_oneof![
        18 => proptest::sample::select(&CONTAINER_TYPES[..6]).prop_map(String::from),
        1 => Just("message/rfc822".to_owned()),
        1 => mime_type(),
    ];
    // Side leaves that matter if read: text with data, files.
    let side = prop_oneof![
        2 => (body_bytes(), prop_oneof![Just("text/plain"), Just("text/html")]).prop_map(
            |(bytes, mime_type)| MessagePart {
                mime_type: mime_type.into(),
                body: MessagePartBody {
                    attachment_id: None,
                    size: bytes.len() as u64,
                    data: Some(URL_SAFE.encode(format!("side {}", String::from_utf8_lossy(&bytes)))),
                },
                ..MessagePart::default()
            }
        ),
        1 => "[a-z]{1,8}\\.pdf".prop_map(|filename| MessagePart {
            mime_type: "application/pdf".into(),
            filename,
            ..MessagePart::default()
        }),
        1 => leaf(),
    ];
    (leaf(), vec((link, option::of(side)), 0..=94)).prop_map(|(leaf, chain)| {
        chain
            .into_iter()
            .fold(leaf, |inner, (mime_type, side)| MessagePart {
                mime_type,
                parts: std::iter::once(inner).chain(side).collect(),
                ..MessagePart::default()
            })
    })
}

/// A tree: up to 6 levels of containers over leaves, some of which are deep chains.
fn tree() -> impl Strategy<Value = MessagePart> {
    let leaves = prop_oneof![5 => leaf(), 1 => deep_leaf()];
    leaves.prop_recursive(6, 48, 4, |inner| {
        (
            container_type(),
            filename(),
            vec(part_header(), 0..3),
            body(),
            vec(inner, 0..5),
        )
            .prop_map(|(mime_type, filename, headers, body, parts)| MessagePart {
                mime_type,
                filename,
                headers,
                body,
                parts,
                ..MessagePart::default()
            })
    })
}

/// One address as written on a header line, and the address itself.
fn address() -> impl Strategy<Value = (String, String)> {
    let email = (
        "[a-z0-9][a-z0-9._+-]{0,9}",
        "[a-z]{1,8}",
        prop_oneof![Just("com"), Just("org")],
    )
        .prop_map(|(local, domain, tld)| format!("{local}@{domain}.example.{tld}"));
    let name = prop_oneof![
        "[A-Za-z][A-Za-z ]{0,10}",
        "[a-zà-ÿ一-龥][a-zà-ÿ一-龥 ]{0,6}"
    ];
    (email, name, 0..7u8).prop_map(|(email, name, form)| {
        let name = name.trim().to_owned();
        let written = match form {
            0 => email.clone(),
            1 => format!("<{email}>"),
            2 => format!("{name} <{email}>"),
            3 => format!("\"{name}, Jr.\" <{email}>"),
            4 => format!("=?UTF-8?B?{}?= <{email}>", URL_SAFE.encode(name.as_bytes())),
            5 => format!("=?x-unknown?Q?{}?= <{email}>", name.replace(' ', "_")),
            _ => format!("{email} (a comment)"),
        };
        (written, email)
    })
}

/// The lines of one address header: well-formed lines (with their addresses) and
/// noise lines (whose addresses, if any, are not promised).
fn address_lines() -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
    let good = vec(address(), 1..4).prop_map(|addresses| {
        let line = addresses
            .iter()
            .map(|(written, _)| written.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        (
            line,
            addresses.into_iter().map(|(_, email)| email).collect(),
        )
    });
    let bad = noise().prop_map(|line| (line, Vec::new()));
    vec(prop_oneof![3 => good, 1 => bad], 0..4)
}

/// The first `Subject` or `From` line: plain text whose value is known, or noise;
/// then more lines, which must not win.
fn first_and_more(plain: &'static str) -> impl Strategy<Value = (Option<String>, Vec<String>)> {
    (
        option::of(prop_oneof![
            2 => plain.prop_map(|s| (s.clone(), Some(s))),
            1 => noise().prop_map(|s| (s, None)),
        ]),
        vec(noise(), 0..3),
    )
        .prop_map(|(first, more)| match first {
            None => (None, more),
            Some((written, known)) => {
                let mut lines = vec![written];
                lines.extend(more);
                (known, lines)
            }
        })
}

#[derive(Debug, Clone)]
struct Case {
    message: Message,
    to: Vec<Vec<String>>,
    cc: Vec<Vec<String>>,
    subject: Option<String>,
    from: Option<String>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        tree(),
        address_lines(),
        address_lines(),
        first_and_more("[a-z]{1,8}( [a-z]{1,8}){0,3}"),
        first_and_more("[a-z]{1,8}@[a-z]{1,8}\\.example\\.com"),
        "[a-z &#;0-9x]{0,30}",
        option::of(prop_oneof!["[0-9]{1,13}", "\\PC{0,8}"]),
        any::<bool>(),
    )
        .prop_map(
            |(
                mut payload,
                to,
                cc,
                (subject, subjects),
                (from, froms),
                snippet,
                date,
                junk_first,
            )| {
                let mut headers = Vec::new();
                if junk_first {
                    headers.push(header("X-Mailer", "Mutt\u{fffd}\u{a0}8bit"));
                }
                headers.extend(to.iter().map(|(line, _)| header("To", line)));
                headers.extend(cc.iter().map(|(line, _)| header("CC", line)));
                headers.extend(subjects.iter().map(|line| header("Subject", line)));
                headers.extend(froms.iter().map(|line| header("from", line)));
                // Interleaved: the root's own part headers come after the addresses.
                headers.append(&mut payload.headers);
                payload.headers = headers;
                mark(&mut payload, 1, false, true);
                Case {
                    message: Message {
                        id: "m1".into(),
                        thread_id: "t1".into(),
                        label_ids: vec!["INBOX".into()],
                        snippet,
                        internal_date: date,
                        payload: Some(payload),
                    },
                    to: to.into_iter().map(|(_, emails)| emails).collect(),
                    cc: cc.into_iter().map(|(_, emails)| emails).collect(),
                    subject,
                    from,
                }
            },
        )
}

/// The model of an attached message: `message/rfc822`, named or not.
fn is_message(part: &MessagePart) -> bool {
    part.mime_type.eq_ignore_ascii_case("message/rfc822")
}

/// The model of a file attachment: a part other than an attached message with a file
/// name, or `Content-Disposition: attachment`.
fn is_file(part: &MessagePart) -> bool {
    if is_message(part) {
        return false;
    }
    let disposed = part
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-disposition"))
        .take(1)
        .any(|h| {
            h.value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("attachment")
        });
    !part.filename.trim().is_empty() || disposed
}

/// The model of an attachment: a file, or an attached message.
fn is_attachment(part: &MessagePart) -> bool {
    is_file(part) || is_message(part)
}

/// Puts a marker into every part with data inside a (non-root) file attachment or
/// below the depth cap, so that the body can be checked not to contain them.
fn mark(part: &mut MessagePart, level: usize, in_file: bool, root: bool) {
    let in_file = in_file || (!root && is_file(part));
    let marker = if level > MAX_MIME_DEPTH {
        Some(TOO_DEEP)
    } else if in_file {
        Some(ATTACHED)
    } else {
        None
    };
    if let Some(marker) = marker
        && part.body.data.is_some()
    {
        let text = format!("{marker} {marker}");
        part.body.data = Some(URL_SAFE.encode(text));
    }
    for child in &mut part.parts {
        mark(child, level + 1, in_file, false);
    }
}

fn count_deeper(part: &MessagePart, level: usize) -> usize {
    usize::from(level > MAX_MIME_DEPTH)
        + part
            .parts
            .iter()
            .map(|child| count_deeper(child, level + 1))
            .sum::<usize>()
}

/// The model of the attachment list: outermost attachments within the cap.
fn model_attachments<'a>(part: &'a MessagePart, level: usize, found: &mut Vec<&'a MessagePart>) {
    if level > MAX_MIME_DEPTH {
        return;
    }
    if is_attachment(part) {
        found.push(part);
        return;
    }
    for child in &part.parts {
        model_attachments(child, level + 1, found);
    }
}

/// Asserts that `emails` occur in `rendered` in this order.
fn assert_in_order(rendered: &str, emails: &[Vec<String>], field: &str) {
    let mut from = 0;
    for email in emails.iter().flatten() {
        match rendered[from..].find(email.as_str()) {
            Some(at) => from += at + email.len(),
            None => panic!("{field}: {email} missing (in order) from {rendered:?}"),
        }
    }
}

/// The length of the stored text, unescaped: what the mapping allocates for it.
fn stored_text_len(content: &EmailContent) -> usize {
    [
        &content.subject,
        &content.from,
        &content.to,
        &content.cc,
        &content.date,
        &content.body,
        &content.thread_id,
        &content.snippet,
    ]
    .iter()
    .map(|s| s.len())
    .sum::<usize>()
        + content.label_ids.iter().map(String::len).sum::<usize>()
        + content
            .attachments
            .iter()
            .map(|a| {
                a.filename.len()
                    + a.mime_type.len()
                    + a.attachment_id.as_ref().map_or(0, String::len)
            })
            .sum::<usize>()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_tree_maps_and_keeps_its_promises(case in case()) {
        let output = message_output(&case.message);
        prop_assert!(output.is_ok(), "{:?}", output.err());
        let content = email_content(&case.message);
        let payload = case.message.payload.as_ref().unwrap();

        assert_in_order(&content.to, &case.to, "to");
        assert_in_order(&content.cc, &case.cc, "cc");
        prop_assert!(!content.body.contains(ATTACHED), "body from an attachment: {:?}", content.body);
        prop_assert!(!content.body.contains(TOO_DEEP), "body from below the cap: {:?}", content.body);

        let deeper = count_deeper(payload, 1);
        prop_assert_eq!(content.skipped_parts, deeper);

        let mut attachments = Vec::new();
        model_attachments(payload, 1, &mut attachments);
        prop_assert_eq!(content.attachment_count, attachments.len());
        prop_assert_eq!(content.attachments.len(), attachments.len());
        prop_assert_eq!(content.has_attachments, !attachments.is_empty());
        for (stored, part) in content.attachments.iter().zip(&attachments) {
            prop_assert_eq!(&stored.mime_type, &part.mime_type);
            prop_assert_eq!(stored.size, part.body.size);
        }

        match &case.subject {
            Some(subject) => prop_assert_eq!(&content.subject, subject),
            None => prop_assert!(!content.subject.is_empty()),
        }
        if let Some(from) = &case.from {
            prop_assert_eq!(&content.from, from);
        }
        if content.subject != NO_SUBJECT {
            prop_assert!(!content.subject.trim().is_empty());
        }

        let input = serde_json::to_string(&case.message).unwrap().len();
        let stored = stored_text_len(&content);
        prop_assert!(stored <= 3 * input + 256, "{stored} bytes of text from {input} bytes of input");
    }

    #[test]
    fn a_leading_text_part_is_the_body(
        case in case(),
        words in vec("[a-z]{1,8}", 1..6),
        charset in prop_oneof![Just(None), Just(Some("utf-8")), Just(Some("US-ASCII"))],
    ) {
        let text = words.join(" ");
        let mut message = case.message;
        let mut rest = message.payload.take().unwrap();
        let mut lead = MessagePart {
            mime_type: "text/plain".into(),
            body: MessagePartBody {
                attachment_id: None,
                size: text.len() as u64,
                data: Some(URL_SAFE.encode(format!("\r\n{text}\r\n"))),
            },
            ..MessagePart::default()
        };
        if let Some(charset) = charset {
            lead.headers.push(header("Content-Type", &format!("text/plain; charset={charset}")));
        }
        // The root keeps the address headers; its old content becomes the second part.
        let headers = std::mem::take(&mut rest.headers);
        message.payload = Some(MessagePart {
            mime_type: "multipart/mixed".into(),
            headers,
            parts: vec![lead, rest],
            ..MessagePart::default()
        });
        let content = email_content(&message);
        prop_assert_eq!(&content.body, &text);
        assert_in_order(&content.to, &case.to, "to");
    }
}
