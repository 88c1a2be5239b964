//! Decoding what `messages.get` (`format=full`) returns into readable text.
//!
//! Gmail parses the MIME structure for us but leaves the text encoded as the sender
//! wrote it:
//! - header values are raw, so a subject may be RFC 2047 encoded words
//!   (`=?ISO-2022-JP?B?...?=`) in any charset, and address headers may also be folded,
//!   quoted or broken;
//! - a part's `body.data` is base64url of the bytes *after* transfer decoding
//!   (quoted-printable and base64 are undone) but *before* charset decoding, so a
//!   Latin-1 or Shift-JIS body arrives as Latin-1 or Shift-JIS bytes.
//!
//! Header values go through mail-parser's field parsers (the same code that parses
//! whole RFC 5322 messages), and bodies through its charset decoders, so every charset
//! encoding_rs knows is handled. Fetching `format=full` rather than `raw` keeps one
//! request per message while still giving attachment ids, which `raw` lacks.
//!
//! Everything here is total: malformed input yields the best text available (the raw
//! value, lossy UTF-8), never an error or a panic.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::parsers::MessageStream;
use mail_parser::{Addr, Address, HeaderValue};

use crate::client::{MessagePart, MessagePartHeader};

/// The value of the first header called `name` (case-insensitive), undecoded.
pub fn header<'a>(headers: &'a [MessagePartHeader], name: &str) -> Option<&'a str> {
    header_values(headers, name).next()
}

/// The values of every header called `name` (case-insensitive), in message order,
/// undecoded. Mailing-list software and old clients write `To:` or `Cc:` several
/// times; each line is one entry in Gmail's `headers`.
pub fn header_values<'a>(
    headers: &'a [MessagePartHeader],
    name: &str,
) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Every address of every header line called `name` (`To`, `Cc`), decoded as by
/// [`decode_addresses`] and joined with `, ` in message order. Addresses repeated
/// across lines are kept as written: dropping one would need a notion of "the same
/// address" (case, display names, groups) that the reader can apply better.
pub fn decode_address_lines(headers: &[MessagePartHeader], name: &str) -> String {
    header_values(headers, name)
        .map(decode_addresses)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decodes an unstructured header value (a subject): encoded words in any charset,
/// and each run of whitespace (folding leaves tabs and line breaks) read as one space.
pub fn decode_text(raw: &str) -> String {
    let line = header_line(raw);
    let decoded = match MessageStream::new(line.as_bytes()).parse_unstructured() {
        HeaderValue::Text(text) => text.into_owned(),
        _ => raw.to_owned(),
    };
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decodes an address header (`From`, `To`, `Cc`) into display form:
/// `Ana Núñez <ana@example.com>, bob@example.com`. A header that does not parse as
/// addresses is returned as decoded text, so nothing is lost.
pub fn decode_addresses(raw: &str) -> String {
    let line = header_line(raw);
    let rendered = match MessageStream::new(line.as_bytes()).parse_address() {
        HeaderValue::Address(Address::List(list)) => join_addresses(&list),
        HeaderValue::Address(Address::Group(groups)) => groups
            .iter()
            .map(|group| {
                let members = join_addresses(&group.addresses);
                match group.name.as_deref().map(str::trim) {
                    Some(name) if !name.is_empty() && members.is_empty() => format!("{name}:;"),
                    Some(name) if !name.is_empty() => format!("{name}: {members};"),
                    _ => members,
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    };
    if rendered.is_empty() {
        decode_text(raw)
    } else {
        rendered
    }
}

/// A header value as one header line for mail-parser's field parsers, which read up
/// to the end of the line. Line breaks inside the value become spaces, so a value
/// that carries folding (or a stray newline) cannot end the field early.
fn header_line(raw: &str) -> String {
    let mut line = raw.replace(['\r', '\n'], " ");
    line.push('\n');
    line
}

fn join_addresses(list: &[Addr<'_>]) -> String {
    list.iter()
        .filter_map(render_address)
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_address(addr: &Addr<'_>) -> Option<String> {
    let name = addr
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let email = addr
        .address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    match (name, email) {
        (Some(name), Some(email)) if name != email => {
            Some(format!("{} <{email}>", quote_display_name(name)))
        }
        (_, Some(email)) => Some(email.to_owned()),
        (Some(name), None) => Some(name.to_owned()),
        (None, None) => None,
    }
}

/// Quotes a display name that would otherwise read as address syntax
/// (`"Doe, Jane" <jane@example.com>`).
fn quote_display_name(name: &str) -> Cow<'_, str> {
    if name.contains([',', ';', ':', '<', '>', '@', '"', '(', ')', '[', ']', '\\']) {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        Cow::Owned(format!("\"{escaped}\""))
    } else {
        Cow::Borrowed(name)
    }
}

/// How many levels of MIME nesting are read, the root part being level 1.
///
/// Every walk of the tree is iterative (an explicit stack), so the cap is not there
/// for the call stack: it says how much of a tree is read at all. Real mail nests a
/// few levels (a forward of a forward inside a digest stays under 10), so 32 is far
/// beyond anything a mail client writes, and still below the 63 part levels that
/// serde_json's nesting limit (128) lets a `messages.get` response carry, so a tree
/// deep enough to reach the cap can still arrive and be mapped. Parts below the cap
/// are neither read for the body nor listed as attachments; [`skipped_parts`] counts
/// them, and the stored content says so (`skippedParts`).
pub const MAX_MIME_DEPTH: usize = 32;

/// A depth-first walk, in document order, of the parts under a root (the root
/// first), each with its level in the whole message (the payload is level 1).
/// It enters a part's children only when `enter` says so and the children are within
/// [`MAX_MIME_DEPTH`]. Iterative, so it ends on any tree, however deep or wide.
struct Walk<'a, F> {
    stack: Vec<(&'a MessagePart, usize)>,
    enter: F,
}

impl<'a, F: FnMut(&'a MessagePart) -> bool> Walk<'a, F> {
    fn new(root: &'a MessagePart, level: usize, enter: F) -> Self {
        Walk {
            stack: vec![(root, level)],
            enter,
        }
    }
}

impl<'a, F: FnMut(&'a MessagePart) -> bool> Iterator for Walk<'a, F> {
    type Item = (&'a MessagePart, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let (part, level) = self.stack.pop()?;
        if level < MAX_MIME_DEPTH && (self.enter)(part) {
            // Reversed, so that the first child is popped first.
            self.stack
                .extend(part.parts.iter().rev().map(|child| (child, level + 1)));
        }
        Some((part, level))
    }
}

/// The message's text: the first non-empty `text/plain` part, else the first
/// `text/html` part as text, else the text of the first attached message (a
/// forward-as-attachment with no text of its own), found the same way, in document
/// order. Attachments are never read as the body, except that the payload itself is
/// always read: a message whose top-level part is `message/rfc822` has the text of
/// the message it encloses, and one whose only part is a named text part has that
/// text (and lists it as an attachment too). Parts below [`MAX_MIME_DEPTH`] are not
/// read.
pub fn body_text(payload: &MessagePart) -> String {
    // The messages whose own text to try, on a stack: a scope's attached messages are
    // pushed in reverse, so the first is tried next, and its own attached messages
    // before its siblings: the same order as a recursive depth-first search.
    let mut scopes = vec![(payload, 1)];
    while let Some((scope, level)) = scopes.pop() {
        if let Some(text) = first_text(scope, level, "text/plain") {
            return normalize_newlines(&text);
        }
        if let Some(html) = first_text(scope, level, "text/html") {
            let text = html_to_text(&html);
            if !text.is_empty() {
                return text;
            }
        }
        let first = scopes.len();
        scopes.extend(attachments_within(scope, level).filter(|(part, _)| is_message(part)));
        scopes[first..].reverse();
    }
    String::new()
}

/// The first non-empty text part of `mime_type` in `scope`, not looking inside
/// attachments or attached messages (other than `scope` itself).
fn first_text(scope: &MessagePart, level: usize, mime_type: &str) -> Option<String> {
    let in_scope = |part: &MessagePart| std::ptr::eq(part, scope) || !is_attachment(part);
    Walk::new(scope, level, in_scope)
        .filter(|(part, _)| in_scope(part) && part.mime_type.eq_ignore_ascii_case(mime_type))
        .find_map(|(part, _)| part_text(part).filter(|text| !text.trim().is_empty()))
}

/// The outermost attachments strictly inside `scope`, with their levels.
fn attachments_within(
    scope: &MessagePart,
    level: usize,
) -> impl Iterator<Item = (&MessagePart, usize)> {
    let in_scope = move |part: &MessagePart| std::ptr::eq(part, scope) || !is_attachment(part);
    Walk::new(scope, level, in_scope).filter(move |(part, _)| !in_scope(part))
}

/// The parts that are attachments, outermost first: files (a file name or
/// `Content-Disposition: attachment`) and attached messages. Parts inside an
/// attachment are part of it and not listed; nor are parts below [`MAX_MIME_DEPTH`].
/// A payload that is itself an attachment (a top-level `message/rfc822`, a lone
/// named file) is the one attachment.
pub fn attachment_parts(payload: &MessagePart) -> Vec<&MessagePart> {
    Walk::new(payload, 1, |part| !is_attachment(part))
        .filter(|(part, _)| is_attachment(part))
        .map(|(part, _)| part)
        .collect()
}

/// How many parts lie below [`MAX_MIME_DEPTH`] levels, and so were not read: 0 for
/// any real message.
pub fn skipped_parts(payload: &MessagePart) -> usize {
    let mut skipped = 0;
    // Its own stack rather than `Walk`, which stops at the cap.
    let mut stack = vec![(payload, 1)];
    while let Some((part, level)) = stack.pop() {
        if level > MAX_MIME_DEPTH {
            skipped += 1;
        }
        stack.extend(part.parts.iter().map(|child| (child, level + 1)));
    }
    skipped
}

fn is_attachment(part: &MessagePart) -> bool {
    let disposition_attachment = header(&part.headers, "Content-Disposition").is_some_and(|d| {
        d.trim_start()
            .get(..10)
            .is_some_and(|d| d.eq_ignore_ascii_case("attachment"))
    });
    !part.filename.trim().is_empty() || disposition_attachment || is_message(part)
}

fn is_message(part: &MessagePart) -> bool {
    part.mime_type.eq_ignore_ascii_case("message/rfc822")
}

/// The text of one part, decoded from its charset; `None` when the part has no inline
/// data (an empty part, or a large one Gmail only serves as an attachment).
pub fn part_text(part: &MessagePart) -> Option<String> {
    let data = part.body.data.as_deref()?;
    let bytes = match base64url().decode(data.trim()) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::debug!(part_id = %part.part_id, %error, "undecodable gmail part body");
            return None;
        }
    };
    Some(decode_charset(&bytes, charset(part).as_deref()))
}

/// Gmail's base64url, with or without padding.
fn base64url() -> GeneralPurpose {
    GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

/// The `charset` parameter of the part's `Content-Type`, if any.
fn charset(part: &MessagePart) -> Option<String> {
    let value = header(&part.headers, "Content-Type")?;
    let line = header_line(value);
    match MessageStream::new(line.as_bytes()).parse_content_type() {
        HeaderValue::ContentType(content_type) => content_type
            .attribute("charset")
            .map(|c| c.trim().to_ascii_lowercase()),
        _ => None,
    }
}

/// Decodes body bytes to UTF-8.
///
/// A declared charset is honoured. UTF-8, US-ASCII and a missing or unknown charset are
/// read as UTF-8 when the bytes are valid UTF-8 and as Windows-1252 otherwise: 8-bit
/// text with a wrong or missing label is nearly always Latin-1 or its Windows superset,
/// and guessing that beats replacement characters.
pub fn decode_charset(bytes: &[u8], charset: Option<&str>) -> String {
    let utf8_family = matches!(
        charset,
        None | Some("utf-8" | "utf8" | "us-ascii" | "ascii")
    );
    if !utf8_family && let Some(decode) = charset.and_then(|c| charset_decoder(c.as_bytes())) {
        return decode(bytes);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => match charset_decoder(b"windows-1252") {
            Some(decode) => decode(bytes),
            None => String::from_utf8_lossy(bytes).into_owned(),
        },
    }
}

fn normalize_newlines(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .trim()
        .to_owned()
}

/// Turns an HTML body into plain text: tags, comments, scripts and styles removed,
/// entities decoded, whitespace collapsed, block elements on their own lines.
pub fn html_to_text(html: &str) -> String {
    let mut text = PlainText::default();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        text.push(&rest[..start]);
        rest = &rest[start..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let Some(end) = rest.find('>') else {
            // An unterminated tag runs to the end of the document.
            rest = "";
            break;
        };
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        let name = tag_name(tag);
        let closing = tag.starts_with('/');
        match name.as_str() {
            "script" | "style" | "title" | "template" if !closing => {
                rest = skip_past_closing_tag(rest, &name);
            }
            "br" => text.line_break(),
            "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "blockquote" => text.end_line(2),
            "div" | "li" | "tr" | "table" | "ul" | "ol" | "hr" | "pre" | "section" | "article"
            | "header" | "footer" => text.end_line(1),
            "td" | "th" => text.push(" "),
            _ => {}
        }
    }
    text.push(rest);
    text.finish()
}

fn tag_name(tag: &str) -> String {
    tag.trim_start_matches('/')
        .split(|c: char| c.is_whitespace() || c == '/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The rest of the document after `</name>` (any case); empty when the element is
/// never closed. One forward scan, no copy: the whole conversion stays linear however
/// many elements are skipped.
fn skip_past_closing_tag<'a>(rest: &'a str, name: &str) -> &'a str {
    let mut from = 0;
    while let Some(offset) = rest[from..].find("</") {
        // `</` is ASCII, so `after` is a character boundary.
        let after = from + offset + 2;
        let named = rest
            .as_bytes()
            .get(after..after + name.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()));
        if named {
            return match rest[after..].find('>') {
                Some(end) => &rest[after + end + 1..],
                None => "",
            };
        }
        from = after;
    }
    ""
}

/// Accumulates text with collapsed whitespace and at most one blank line in a row:
/// block elements end a line, paragraphs and headings a paragraph.
#[derive(Default)]
struct PlainText {
    out: String,
    pending_space: bool,
}

impl PlainText {
    fn push(&mut self, raw: &str) {
        for c in decode_entities(raw).chars() {
            if matches!(c, '\u{200b}'..='\u{200d}' | '\u{feff}' | '\u{ad}') {
                continue; // invisible: zero-width spaces and joiners, soft hyphens
            }
            if c.is_whitespace() {
                self.pending_space = true;
                continue;
            }
            if self.pending_space && !self.out.is_empty() && !self.out.ends_with('\n') {
                self.out.push(' ');
            }
            self.pending_space = false;
            self.out.push(c);
        }
    }

    /// A `<br>`: one more line break, up to one blank line.
    fn line_break(&mut self) {
        let newlines = self.trailing_newlines();
        self.end_line(newlines + 1);
    }

    /// The edge of a block: the text so far ends with at least `newlines` line breaks
    /// (at most 2, one blank line), unless there is no text yet.
    fn end_line(&mut self, newlines: usize) {
        self.pending_space = false;
        if self.out.is_empty() {
            return;
        }
        for _ in self.trailing_newlines()..newlines.min(2) {
            self.out.push('\n');
        }
    }

    fn trailing_newlines(&self) -> usize {
        self.out.len() - self.out.trim_end_matches('\n').len()
    }

    fn finish(self) -> String {
        self.out.trim().to_owned()
    }
}

/// Decodes HTML character references: named ones for Latin-1 and common punctuation,
/// and numeric ones (`&#233;`, `&#xE9;`). Unknown references are left as written.
pub fn decode_entities(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        match character_reference(rest) {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The character `text` (starting with `&`) refers to, and the reference's length.
fn character_reference(text: &str) -> Option<(char, usize)> {
    let (semicolon, _) = text.char_indices().take(34).find(|&(_, c)| c == ';')?;
    let name = &text[1..semicolon];
    let c = match name.strip_prefix('#') {
        Some(number) => {
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
                .filter(|&c| c != '\0')
                .unwrap_or('\u{fffd}')
        }
        None => named_entity(name)?,
    };
    Some((c, semicolon + 1))
}

fn named_entity(name: &str) -> Option<char> {
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "ndash" => '–',
        "mdash" => '—',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "bull" => '•',
        "hellip" => '…',
        "trade" => '™',
        "euro" => '€',
        "dagger" => '†',
        "permil" => '‰',
        "thinsp" | "ensp" | "emsp" => ' ',
        "zwnj" => '\u{200c}',
        "zwj" => '\u{200d}',
        _ => {
            let offset = LATIN1_ENTITIES.iter().position(|&n| n == name)?;
            char::from_u32(0xa0 + u32::try_from(offset).ok()?)?
        }
    };
    Some(c)
}

/// The HTML 4 names of U+00A0 to U+00FF, in code point order.
const LATIN1_ENTITIES: [&str; 96] = [
    "nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect", "uml", "copy", "ordf",
    "laquo", "not", "shy", "reg", "macr", "deg", "plusmn", "sup2", "sup3", "acute", "micro",
    "para", "middot", "cedil", "sup1", "ordm", "raquo", "frac14", "frac12", "frac34", "iquest",
    "Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig", "Ccedil", "Egrave", "Eacute",
    "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml", "ETH", "Ntilde", "Ograve", "Oacute",
    "Ocirc", "Otilde", "Ouml", "times", "Oslash", "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute",
    "THORN", "szlig", "agrave", "aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil",
    "egrave", "eacute", "ecirc", "euml", "igrave", "iacute", "icirc", "iuml", "eth", "ntilde",
    "ograve", "oacute", "ocirc", "otilde", "ouml", "divide", "oslash", "ugrave", "uacute", "ucirc",
    "uuml", "yacute", "thorn", "yuml",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_in_several_charsets() {
        assert_eq!(decode_text("=?UTF-8?B?SGVsbG8g8J+Ri4==?="), "Hello 👋");
        assert_eq!(decode_text("=?ISO-8859-1?Q?Caf=E9_cr=E8me?="), "Café crème");
        assert_eq!(
            decode_text("=?windows-1252?Q?=93quoted=94_=80?="),
            "\u{201c}quoted\u{201d} €"
        );
        assert_eq!(decode_text("=?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?="), "日本語");
        // Whitespace between adjacent encoded words is not text (RFC 2047 §6.2).
        assert_eq!(decode_text("=?UTF-8?Q?a?=\r\n =?UTF-8?Q?b?="), "ab");
        assert_eq!(decode_text("plain \t subject "), "plain subject");
    }

    #[test]
    fn malformed_encoded_words_stay_readable() {
        assert_eq!(decode_text("=?UTF-8?X?abc?="), "=?UTF-8?X?abc?=");
        assert_eq!(decode_text("=?UTF-8?B?not base64"), "=?UTF-8?B?not base64");
        assert_eq!(decode_text(""), "");
    }

    #[test]
    fn addresses_render_decoded_and_quoted() {
        assert_eq!(
            decode_addresses("=?UTF-8?Q?Ana_N=C3=BA=C3=B1ez?= <ana@example.com>, bob@example.com"),
            "Ana Núñez <ana@example.com>, bob@example.com"
        );
        assert_eq!(
            decode_addresses("\"Doe, Jane\" <jane@example.com>"),
            "\"Doe, Jane\" <jane@example.com>"
        );
        assert_eq!(
            decode_addresses("undisclosed-recipients:;"),
            "undisclosed-recipients:;"
        );
        assert_eq!(decode_addresses(""), "");
    }

    #[test]
    fn charsets_and_fallbacks() {
        assert_eq!(decode_charset(b"caf\xe9", Some("iso-8859-1")), "café");
        assert_eq!(decode_charset(b"\x93hi\x94", Some("windows-1252")), "“hi”");
        assert_eq!(decode_charset("café".as_bytes(), None), "café");
        // Mislabelled Latin-1 is read as Windows-1252, not as replacement characters.
        assert_eq!(decode_charset(b"caf\xe9", Some("utf-8")), "café");
        assert_eq!(decode_charset(b"caf\xe9", Some("x-unknown")), "café");
    }

    #[test]
    fn html_becomes_plain_text() {
        let html = "<html><head><title>T</title><style>p{color:red}</style></head>\
            <body><p>Hello&nbsp;<b>World</b> &amp; friends</p>\
            <!-- hidden --><script>alert('x')</script>\
            <div>Line&#160;two&hellip;</div>caf&eacute; &#x263A; &bogus;</body></html>";
        assert_eq!(
            html_to_text(html),
            "Hello World & friends\n\nLine two…\ncafé ☺ &bogus;"
        );
        assert_eq!(html_to_text("a<br>b<br><br><br>c"), "a\nb\n\nc");
        assert_eq!(
            html_to_text("<div><div>one</div></div><div>two</div><p>three</p>four"),
            "one\ntwo\n\nthree\n\nfour"
        );
        assert_eq!(html_to_text("<td>a</td><td>b</td>"), "a b");
        assert_eq!(html_to_text("unterminated <b"), "unterminated");
        assert_eq!(html_to_text("<SCRIPT>x</SCRIPT>ok"), "ok");
        assert_eq!(
            html_to_text("&#0; &#x110000; &#xZZ;"),
            "\u{fffd} \u{fffd} &#xZZ;"
        );
    }

    #[test]
    fn entity_scan_is_bounded_and_utf8_safe() {
        let long = format!("&{};", "é".repeat(40));
        assert_eq!(decode_entities(&long), long);
        assert_eq!(decode_entities("a & b"), "a & b");
        assert_eq!(decode_entities("&AElig;&yuml;"), "Æÿ");
    }

    fn leaf(mime_type: &str, text: &str) -> MessagePart {
        use base64::engine::general_purpose::URL_SAFE;
        MessagePart {
            mime_type: mime_type.into(),
            body: crate::client::MessagePartBody {
                size: text.len() as u64,
                data: Some(URL_SAFE.encode(text)),
                attachment_id: None,
            },
            ..MessagePart::default()
        }
    }

    fn container(mime_type: &str, parts: Vec<MessagePart>) -> MessagePart {
        MessagePart {
            mime_type: mime_type.into(),
            parts,
            ..MessagePart::default()
        }
    }

    fn with_header(mut part: MessagePart, name: &str, value: &str) -> MessagePart {
        part.headers.push(MessagePartHeader {
            name: name.into(),
            value: value.into(),
        });
        part
    }

    /// `levels` parts, each the only child of the one before, the innermost `inner`.
    fn chain(levels: usize, mime_type: &str, inner: MessagePart) -> MessagePart {
        (1..levels).fold(inner, |part, _| container(mime_type, vec![part]))
    }

    #[test]
    fn a_top_level_attached_message_with_empty_text_maps() {
        let empty = container("message/rfc822", vec![leaf("text/plain", " \r\n")]);
        assert_eq!(body_text(&empty), "");
        assert_eq!(attachment_parts(&empty).len(), 1);
        let bare = container("message/rfc822", Vec::new());
        assert_eq!(body_text(&bare), "");
        // Its inner message's text is the body, wherever it sits.
        let inner = container(
            "message/rfc822",
            vec![container(
                "multipart/mixed",
                vec![
                    leaf("text/plain", ""),
                    container("message/rfc822", vec![leaf("text/plain", "deep text")]),
                ],
            )],
        );
        assert_eq!(body_text(&inner), "deep text");
    }

    #[test]
    fn attached_messages_are_read_in_document_order() {
        let message = container(
            "multipart/mixed",
            vec![
                leaf("text/plain", "   "),
                container(
                    "message/rfc822",
                    vec![container(
                        "multipart/mixed",
                        vec![container(
                            "message/rfc822",
                            vec![leaf("text/html", "<p>first</p>")],
                        )],
                    )],
                ),
                container("message/rfc822", vec![leaf("text/plain", "second")]),
            ],
        );
        assert_eq!(body_text(&message), "first");
        // The message's own text wins over any attached message's.
        let mut own = message.clone();
        own.parts.push(leaf("text/html", "<b>own</b>"));
        assert_eq!(body_text(&own), "own");
    }

    #[test]
    fn file_attachments_are_never_the_body() {
        let named = MessagePart {
            filename: "notes.txt".into(),
            ..leaf("text/plain", "secret notes")
        };
        let disposed = with_header(
            leaf("text/plain", "more notes"),
            "Content-Disposition",
            " ATTACHMENT; x=1",
        );
        let message = container(
            "multipart/mixed",
            vec![named, disposed, leaf("text/html", "<i>shown</i>")],
        );
        assert_eq!(body_text(&message), "shown");
        assert_eq!(attachment_parts(&message).len(), 2);
    }

    #[test]
    fn nesting_beyond_the_cap_is_skipped_and_counted() {
        for mime_type in ["multipart/mixed", "message/rfc822"] {
            let deep = chain(
                MAX_MIME_DEPTH + 5,
                mime_type,
                leaf("text/plain", "too deep"),
            );
            assert_eq!(body_text(&deep), "", "{mime_type}");
            assert_eq!(skipped_parts(&deep), 5, "{mime_type}");
            let at_cap = chain(MAX_MIME_DEPTH, mime_type, leaf("text/plain", "just fits"));
            assert_eq!(body_text(&at_cap), "just fits", "{mime_type}");
            assert_eq!(skipped_parts(&at_cap), 0, "{mime_type}");
        }
        let file = MessagePart {
            filename: "a.bin".into(),
            ..leaf("application/octet-stream", "")
        };
        let deep_file = chain(MAX_MIME_DEPTH + 1, "multipart/mixed", file.clone());
        assert!(attachment_parts(&deep_file).is_empty());
        let file_at_cap = chain(MAX_MIME_DEPTH, "multipart/mixed", file);
        assert_eq!(attachment_parts(&file_at_cap).len(), 1);
    }

    #[test]
    fn very_deep_trees_end_without_exhausting_the_stack() {
        // Far deeper than any recursion could go on a test thread's stack.
        let deep = chain(200_000, "message/rfc822", leaf("text/plain", "x"));
        assert_eq!(body_text(&deep), "");
        assert_eq!(skipped_parts(&deep), 200_000 - MAX_MIME_DEPTH);
        assert_eq!(attachment_parts(&deep).len(), 1);
        // Dropping it recursively would overflow; unlink it level by level.
        let mut next = Some(deep);
        while let Some(mut part) = next {
            next = part.parts.pop();
        }
    }

    #[test]
    fn every_address_line_is_kept() {
        let headers = with_header(
            with_header(
                with_header(
                    with_header(
                        MessagePart::default(),
                        "To",
                        "a@example.com, B <b@example.com>",
                    ),
                    "cc",
                    "c@example.com",
                ),
                "TO",
                "=?UTF-8?Q?D=C3=A9?= <d@example.com>",
            ),
            "To",
            "a@example.com",
        )
        .headers;
        assert_eq!(
            decode_address_lines(&headers, "To"),
            "a@example.com, B <b@example.com>, Dé <d@example.com>, a@example.com"
        );
        assert_eq!(decode_address_lines(&headers, "Cc"), "c@example.com");
        assert_eq!(decode_address_lines(&headers, "Bcc"), "");
        assert_eq!(
            header(&headers, "to"),
            Some("a@example.com, B <b@example.com>")
        );
    }

    #[test]
    fn skipped_elements_close_in_any_case() {
        assert_eq!(html_to_text("<Style>a</sTyLe>b<script>c</scripT >d"), "bd");
        assert_eq!(html_to_text("<script>a</b></scriptx>c"), "c");
        assert_eq!(html_to_text("<style>é</s</style>ok"), "ok");
        assert_eq!(html_to_text("<title>never closed"), "");
        let many = "<style>x</style>y".repeat(10_000);
        assert_eq!(html_to_text(&many), "y".repeat(10_000));
    }
}
