//! Just enough encoding to write realistic mail: a few charsets (with hand-written
//! tables for the characters the generator uses), RFC 2047 encoded words,
//! quoted-printable and wrapped base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A charset the generator writes messages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// Plain ASCII.
    UsAscii,
    /// UTF-8.
    Utf8,
    /// ISO-8859-1 (Latin-1).
    Latin1,
    /// Windows-1252: Latin-1 plus curly quotes, dashes, the euro sign and friends.
    Windows1252,
    /// ISO-2022-JP, here limited to ASCII, kana and Japanese punctuation.
    Iso2022Jp,
}

impl Charset {
    /// The MIME name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Charset::UsAscii => "us-ascii",
            Charset::Utf8 => "UTF-8",
            Charset::Latin1 => "ISO-8859-1",
            Charset::Windows1252 => "windows-1252",
            Charset::Iso2022Jp => "ISO-2022-JP",
        }
    }

    /// `text` in this charset; a character it cannot hold becomes `?`.
    pub(crate) fn encode(self, text: &str) -> Vec<u8> {
        match self {
            Charset::Utf8 => text.as_bytes().to_vec(),
            Charset::UsAscii => text
                .chars()
                .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
                .collect(),
            Charset::Latin1 => text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect(),
            Charset::Windows1252 => text.chars().map(windows_1252_byte).collect(),
            Charset::Iso2022Jp => encode_iso_2022_jp(text),
        }
    }
}

fn windows_1252_byte(c: char) -> u8 {
    match c {
        '€' => 0x80,
        '‚' => 0x82,
        '„' => 0x84,
        '…' => 0x85,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '™' => 0x99,
        c => match u8::try_from(u32::from(c)) {
            Ok(b) if !(0x80..0xa0).contains(&b) => b,
            _ => b'?',
        },
    }
}

/// The JIS X 0208 code of a kana or a piece of Japanese punctuation.
fn jis_x_0208(c: char) -> Option<u16> {
    let code = u32::from(c);
    let jis = match c {
        '\u{3041}'..='\u{3093}' => 0x2421 + (code - 0x3041),
        '\u{30a1}'..='\u{30f6}' => 0x2521 + (code - 0x30a1),
        '\u{3000}' => 0x2121,
        '、' => 0x2122,
        '。' => 0x2123,
        '・' => 0x2126,
        '？' => 0x2129,
        '！' => 0x212a,
        'ー' => 0x213c,
        '（' => 0x214a,
        '）' => 0x214b,
        '「' => 0x2156,
        '」' => 0x2157,
        _ => return None,
    };
    u16::try_from(jis).ok()
}

const ESC_JIS: &[u8] = b"\x1b$B";
const ESC_ASCII: &[u8] = b"\x1b(B";

/// ISO-2022-JP (RFC 1468): ASCII and JIS X 0208 runs switched by escape sequences,
/// always ending in ASCII.
fn encode_iso_2022_jp(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2);
    let mut in_jis = false;
    for c in text.chars() {
        if c.is_ascii() {
            if in_jis {
                out.extend_from_slice(ESC_ASCII);
                in_jis = false;
            }
            out.push(c as u8);
            continue;
        }
        match jis_x_0208(c) {
            Some(code) => {
                if !in_jis {
                    out.extend_from_slice(ESC_JIS);
                    in_jis = true;
                }
                out.extend_from_slice(&code.to_be_bytes());
            }
            None => {
                if in_jis {
                    out.extend_from_slice(ESC_ASCII);
                    in_jis = false;
                }
                out.push(b'?');
            }
        }
    }
    if in_jis {
        out.extend_from_slice(ESC_ASCII);
    }
    out
}

/// A header value: as is when it is ASCII, otherwise RFC 2047 encoded words (B for
/// UTF-8 and ISO-2022-JP, Q for the Latin charsets), folded between words.
pub(crate) fn encode_header(charset: Charset, text: &str) -> String {
    if text.is_ascii() {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let words: Vec<String> = chars
        .chunks(14)
        .map(|chunk| {
            let piece: String = chunk.iter().collect();
            let bytes = charset.encode(&piece);
            match charset {
                Charset::Latin1 | Charset::Windows1252 => {
                    format!("=?{}?Q?{}?=", charset.name(), q_encode(&bytes))
                }
                _ => format!("=?{}?B?{}?=", charset.name(), STANDARD.encode(bytes)),
            }
        })
        .collect();
    words.join("\r\n ")
}

fn q_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            b' ' => out.push('_'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
                out.push(b as char)
            }
            _ => push_hex_escape(&mut out, b),
        }
    }
    out
}

/// `=XX`, the escape of quoted-printable and of RFC 2047's Q encoding.
fn push_hex_escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('=');
    out.push(HEX[usize::from(byte >> 4)] as char);
    out.push(HEX[usize::from(byte & 0x0f)] as char);
}

/// Quoted-printable (RFC 2045 §6.7) of text whose lines end in `\n`: hard line breaks
/// become CRLF, lines are wrapped at 76 columns with soft breaks.
pub(crate) fn quoted_printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3 / 2);
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if index > 0 {
            out.push_str("\r\n");
        }
        let mut column = 0;
        for (position, &b) in line.iter().enumerate() {
            let last = position + 1 == line.len();
            let literal = matches!(b, b'!'..=b'<' | b'>'..=b'~') || (b == b' ' && !last);
            let width = if literal { 1 } else { 3 };
            if column + width > 75 {
                out.push_str("=\r\n");
                column = 0;
            }
            if literal {
                out.push(b as char);
            } else {
                push_hex_escape(&mut out, b);
            }
            column += width;
        }
    }
    out
}

/// Base64 in lines of 76 characters, CRLF-terminated.
pub(crate) fn base64_lines(bytes: &[u8]) -> String {
    let encoded = STANDARD.encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    let mut rest = encoded.as_str();
    while !rest.is_empty() {
        // Base64 is ASCII, so any byte index is a char boundary.
        let (line, tail) = rest.split_at(rest.len().min(76));
        out.push_str(line);
        out.push_str("\r\n");
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn decode_subject(header: &str) -> String {
        let raw = format!("Subject: {header}\r\n\r\nbody\r\n");
        MessageParser::default()
            .parse(raw.as_bytes())
            .and_then(|m| m.subject().map(str::to_owned))
            .unwrap_or_default()
    }

    #[test]
    fn encoded_words_round_trip_through_a_real_parser() {
        for (charset, text) in [
            (Charset::Utf8, "Grüße aus Köln 🚀 und noch etwas mehr Text"),
            (Charset::Latin1, "Café et croissants à 10h"),
            (Charset::Windows1252, "“Final” numbers – Q3 € budget"),
            (
                Charset::Iso2022Jp,
                "こんにちは、ミーティングのおしらせ（ごぜん）",
            ),
        ] {
            let header = encode_header(charset, text);
            assert!(header.is_ascii(), "{header}");
            assert_eq!(decode_subject(&header), text, "{charset:?}");
        }
    }

    #[test]
    fn iso_2022_jp_switches_modes_and_ends_in_ascii() {
        let bytes = Charset::Iso2022Jp.encode("aあb");
        assert_eq!(bytes, b"a\x1b$B\x24\x22\x1b(Bb".to_vec());
        assert_eq!(Charset::Iso2022Jp.encode("漢"), b"?".to_vec());
    }

    #[test]
    fn latin_charsets_use_single_bytes() {
        assert_eq!(Charset::Latin1.encode("é€"), vec![0xe9, b'?']);
        assert_eq!(Charset::Windows1252.encode("é€“"), vec![0xe9, 0x80, 0x93]);
    }

    #[test]
    fn quoted_printable_wraps_and_escapes() {
        let text = format!("{}\nend =x \n", "é".repeat(40));
        let encoded = quoted_printable(text.as_bytes());
        assert!(encoded.lines().all(|line| line.len() <= 76), "{encoded}");
        assert!(encoded.contains("end =3Dx=20\r\n"));
        let decoded =
            mail_parser::decoders::quoted_printable::quoted_printable_decode(encoded.as_bytes());
        assert_eq!(
            decoded.map(|d| String::from_utf8_lossy(&d).replace("\r\n", "\n")),
            Some(text)
        );
    }
}
