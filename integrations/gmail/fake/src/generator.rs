//! A deterministic generator of realistic mail.
//!
//! Message `i` of a [`Generator`] is a pure function of the seed and `i`. Building a
//! mailbox takes only each message's [`MessagePlan`] (labels, date, thread, subject,
//! text), which is cheap; the fake keeps `(batch, i)` and writes the source again
//! when a client asks for it. 100,000 messages build in a few seconds (unoptimized)
//! and take about 50 MB.
//!
//! What the messages hold, so a sync engine meets what real mailboxes hold:
//!
//! - threads: about 40% of messages reply to one of the five before them, with
//!   `In-Reply-To`, `References` and a `Re:` subject; some replies are from the mailbox
//!   owner (`SENT`);
//! - structures: single `text/plain`; `multipart/alternative` (text and HTML);
//!   `multipart/mixed` with PDF-, PNG- or CSV-like attachments (one with an RFC 2231
//!   non-ASCII file name); `multipart/related` HTML with an inline image; a forwarded
//!   `message/rfc822`;
//! - charsets: UTF-8 (accents, Cyrillic, CJK, emoji), ISO-8859-1, Windows-1252 and
//!   ISO-2022-JP, in bodies and as RFC 2047 encoded words in headers;
//! - transfer encodings: 7bit, 8bit, quoted-printable and base64;
//! - labels: `INBOX`, `UNREAD` (more often on recent mail), `IMPORTANT`, `STARRED`,
//!   one `CATEGORY_*`, the user labels of [`USER_LABELS`], and a little `SPAM` and
//!   `TRASH`;
//! - `internalDate` increasing with `i` (newest last), the `Date` header a little
//!   earlier in one of several time zones.

use chrono::{FixedOffset, Offset as _, TimeZone as _, Utc};
use rand::rngs::StdRng;
use rand::{Rng as _, RngCore as _, SeedableRng as _};

use super::charset::{Charset, base64_lines, encode_header, quoted_printable};

/// The user labels generated messages carry, as `(id, name)`; a fake mailbox creates
/// them at start.
pub const USER_LABELS: [(&str, &str); 4] = [
    ("Label_1", "Work"),
    ("Label_2", "Receipts"),
    ("Label_3", "Travel/2024"),
    ("Label_4", "Ünïcödé"),
];

/// How far back a reply may point, and how long a `References` chain may be walked.
const MAX_REPLY_DISTANCE: u64 = 5;
const MAX_THREAD_DEPTH: usize = 200;

/// One generated message.
#[derive(Debug, Clone)]
pub struct GeneratedMessage {
    /// The RFC 822 source.
    pub raw: Vec<u8>,
    /// Gmail label ids.
    pub label_ids: Vec<&'static str>,
    /// `internalDate`, epoch milliseconds.
    pub internal_date_ms: i64,
    /// The index of the message this one replies to, if it is a reply.
    pub parent: Option<u64>,
    /// The decoded subject.
    pub subject: String,
    /// The decoded text of the first `text/plain` part (what the snippet is made of).
    pub text: String,
    /// `Message-ID` without angle brackets.
    pub message_id: String,
}

/// Message `index` without its source (see [`Generator::plan`]).
#[derive(Debug, Clone)]
pub struct MessagePlan {
    /// Gmail label ids.
    pub label_ids: Vec<&'static str>,
    /// `internalDate`, epoch milliseconds.
    pub internal_date_ms: i64,
    /// The index of the message this one replies to, if it is a reply.
    pub parent: Option<u64>,
    /// The decoded subject.
    pub subject: String,
    /// The decoded text of the first `text/plain` part.
    pub text: String,
    /// `Message-ID` without angle brackets.
    pub message_id: String,
}

/// A plan and what writing its source needs.
struct Draft {
    plan: MessagePlan,
    ancestors: Vec<u64>,
    topic: Topic,
    from_me: bool,
    rng: StdRng,
}

/// Writes message `i` of a deterministic mailbox.
#[derive(Debug, Clone)]
pub struct Generator {
    seed: u64,
    mailbox: String,
    first_date_ms: i64,
    step_ms: i64,
}

impl Generator {
    /// A generator whose message `i` has an `internalDate` in
    /// `[first_date_ms + i * step_ms, first_date_ms + i * step_ms + step_ms / 2)`,
    /// addressed to (or sent by) `mailbox`.
    pub fn new(seed: u64, mailbox: &str, first_date_ms: i64, step_ms: i64) -> Generator {
        Generator {
            seed,
            mailbox: mailbox.to_owned(),
            first_date_ms,
            step_ms: step_ms.max(1),
        }
    }

    /// A generator for `count` messages spread evenly over the `span_ms` before
    /// `newest_ms`.
    pub fn spread(seed: u64, mailbox: &str, count: u64, newest_ms: i64, span_ms: i64) -> Generator {
        let count = i64::try_from(count.max(1)).unwrap_or(i64::MAX);
        let step = (span_ms / count).max(1);
        Generator::new(seed, mailbox, newest_ms - step * count, step)
    }

    fn stream(&self, index: u64, stream: u64) -> StdRng {
        StdRng::seed_from_u64(mix(
            self.seed ^ mix(index.wrapping_mul(8).wrapping_add(stream))
        ))
    }

    /// The index message `index` replies to, if it is a reply.
    pub fn parent(&self, index: u64) -> Option<u64> {
        if index == 0 {
            return None;
        }
        let mut rng = self.stream(index, 0);
        if !rng.random_bool(0.4) {
            return None;
        }
        Some(index - rng.random_range(1..=index.min(MAX_REPLY_DISTANCE)))
    }

    /// The ancestors of `index`, the thread's root first.
    fn ancestors(&self, index: u64) -> Vec<u64> {
        let mut chain = Vec::new();
        let mut current = index;
        while let Some(parent) = self.parent(current) {
            chain.push(parent);
            current = parent;
            if chain.len() >= MAX_THREAD_DEPTH {
                break;
            }
        }
        chain.reverse();
        chain
    }

    fn message_id(&self, index: u64) -> String {
        let tag = mix(self.seed.wrapping_add(index));
        format!("{tag:016x}.{index}@mail.example.net")
    }

    fn internal_date(&self, index: u64) -> i64 {
        let jitter_range = (self.step_ms / 2).max(1);
        let jitter = self.stream(index, 3).random_range(0..jitter_range);
        let index = i64::try_from(index).unwrap_or(i64::MAX);
        self.first_date_ms
            .saturating_add(index.saturating_mul(self.step_ms))
            .saturating_add(jitter)
    }

    /// Everything about message `index` but its source: cheap, so a large mailbox
    /// can be built from plans and sources written only when asked for.
    pub fn plan(&self, index: u64) -> MessagePlan {
        self.draft(index).plan
    }

    fn draft(&self, index: u64) -> Draft {
        let ancestors = self.ancestors(index);
        let root = ancestors.first().copied().unwrap_or(index);
        let topic = Topic::of(&mut self.stream(root, 1));
        let mut rng = self.stream(index, 2);
        let reply = !ancestors.is_empty();
        let from_me = reply && rng.random_bool(0.3);
        let subject = if reply {
            format!("Re: {}", topic.subject)
        } else {
            topic.subject.clone()
        };
        let signer = if from_me {
            "Test User"
        } else {
            topic.contact.0
        };
        let text = body_text(&mut rng, topic.bank, signer, reply);
        Draft {
            plan: MessagePlan {
                label_ids: labels(&mut self.stream(index, 4), from_me),
                internal_date_ms: self.internal_date(index),
                parent: ancestors.last().copied(),
                subject,
                text,
                message_id: self.message_id(index),
            },
            ancestors,
            topic,
            from_me,
            rng,
        }
    }

    /// Writes message `index`.
    pub fn message(&self, index: u64) -> GeneratedMessage {
        let Draft {
            plan,
            ancestors,
            topic,
            from_me,
            mut rng,
        } = self.draft(index);
        let MessagePlan {
            label_ids,
            internal_date_ms,
            parent,
            subject,
            text,
            message_id,
        } = plan;
        let me = Person {
            name: "Test User",
            address: self.mailbox.clone(),
        };
        let contact = Person {
            name: topic.contact.0,
            address: topic.contact.1.to_owned(),
        };
        let (from, to) = if from_me {
            (&me, &contact)
        } else {
            (&contact, &me)
        };
        let structure = Structure::pick(&mut rng);

        let mut raw = Vec::with_capacity(2048);
        let sent_ms = internal_date_ms - rng.random_range(2_000..600_000);
        let date = rfc2822_date(sent_ms, rng.random_range(0..ZONES.len()));
        if !from_me {
            push_line(&mut raw, &format!("Delivered-To: {}", self.mailbox));
            push_line(
                &mut raw,
                &format!(
                    "Received: from mail.example.net (mail.example.net. [192.0.2.{}])\r\n        by mx.google.com with ESMTPS id {:x}\r\n        for <{}>; {date}",
                    rng.random_range(1..255),
                    rng.random::<u64>(),
                    self.mailbox
                ),
            );
        }
        push_line(&mut raw, "MIME-Version: 1.0");
        push_line(&mut raw, &format!("Date: {date}"));
        push_line(&mut raw, &format!("Message-ID: <{message_id}>"));
        if let Some(&parent) = ancestors.last() {
            push_line(
                &mut raw,
                &format!("In-Reply-To: <{}>", self.message_id(parent)),
            );
            let references: Vec<String> = ancestors
                .iter()
                .map(|&a| format!("<{}>", self.message_id(a)))
                .collect();
            push_line(
                &mut raw,
                &format!("References: {}", references.join("\r\n ")),
            );
        }
        let charset = topic.bank.charset;
        push_line(
            &mut raw,
            &format!("Subject: {}", encode_header(charset, &subject)),
        );
        push_line(&mut raw, &format!("From: {}", from.header(charset)));
        push_line(&mut raw, &format!("To: {}", to.header(charset)));
        if rng.random_bool(0.15) {
            push_line(&mut raw, "Cc: Team <team@example.org>");
        }
        if rng.random_bool(0.2) {
            push_line(&mut raw, "X-Mailer: Fake Mail Client 2.1");
        }
        let html = html_of(&text);
        let mut writer = BodyWriter {
            rng: &mut rng,
            charset,
        };
        match structure {
            Structure::Plain => writer.text_leaf(&mut raw, "plain", &text),
            Structure::Alternative => writer.alternative(&mut raw, &text, &html),
            Structure::Attachments => {
                let boundary = writer.boundary();
                push_line(
                    &mut raw,
                    &format!("Content-Type: multipart/mixed; boundary=\"{boundary}\""),
                );
                raw.extend_from_slice(b"\r\n");
                open_part(&mut raw, &boundary);
                if writer.rng.random_bool(0.5) {
                    writer.alternative(&mut raw, &text, &html);
                } else {
                    writer.text_leaf(&mut raw, "plain", &text);
                }
                for _ in 0..writer.rng.random_range(1..=2) {
                    open_part(&mut raw, &boundary);
                    writer.attachment(&mut raw, index);
                }
                close_multipart(&mut raw, &boundary);
            }
            Structure::Related => {
                let outer = writer.boundary();
                let inner = writer.boundary();
                push_line(
                    &mut raw,
                    &format!("Content-Type: multipart/alternative; boundary=\"{outer}\""),
                );
                raw.extend_from_slice(b"\r\n");
                open_part(&mut raw, &outer);
                writer.text_leaf(&mut raw, "plain", &text);
                open_part(&mut raw, &outer);
                push_line(
                    &mut raw,
                    &format!("Content-Type: multipart/related; boundary=\"{inner}\""),
                );
                raw.extend_from_slice(b"\r\n");
                open_part(&mut raw, &inner);
                let html = html.replace(
                    "</body>",
                    "<img src=\"cid:logo@example.net\" alt=\"logo\"></body>",
                );
                writer.text_leaf(&mut raw, "html", &html);
                open_part(&mut raw, &inner);
                push_line(&mut raw, "Content-Type: image/png; name=\"logo.png\"");
                push_line(
                    &mut raw,
                    "Content-Disposition: inline; filename=\"logo.png\"",
                );
                push_line(&mut raw, "Content-ID: <logo@example.net>");
                push_line(&mut raw, "Content-Transfer-Encoding: base64");
                raw.extend_from_slice(b"\r\n");
                let png = png_like(writer.rng);
                raw.extend_from_slice(base64_lines(&png).as_bytes());
                close_multipart(&mut raw, &inner);
                close_multipart(&mut raw, &outer);
            }
            Structure::Forward => {
                let boundary = writer.boundary();
                push_line(
                    &mut raw,
                    &format!("Content-Type: multipart/mixed; boundary=\"{boundary}\""),
                );
                raw.extend_from_slice(b"\r\n");
                open_part(&mut raw, &boundary);
                writer.text_leaf(&mut raw, "plain", &text);
                open_part(&mut raw, &boundary);
                push_line(&mut raw, "Content-Type: message/rfc822");
                push_line(&mut raw, "Content-Disposition: inline");
                raw.extend_from_slice(b"\r\n");
                let nested_date = rfc2822_date(sent_ms - 86_400_000, 0);
                push_line(&mut raw, "From: Old Sender <old.sender@example.org>");
                push_line(&mut raw, &format!("To: {}", self.mailbox));
                push_line(&mut raw, "Subject: The original message");
                push_line(&mut raw, &format!("Date: {nested_date}"));
                push_line(&mut raw, &format!("Message-ID: <fwd.{message_id}>"));
                push_line(&mut raw, "Content-Type: text/plain; charset=UTF-8");
                push_line(&mut raw, "Content-Transfer-Encoding: 8bit");
                raw.extend_from_slice(b"\r\n");
                raw.extend_from_slice("This is the forwarded text — déjà vu.\r\n".as_bytes());
                close_multipart(&mut raw, &boundary);
            }
        }

        GeneratedMessage {
            raw,
            label_ids,
            internal_date_ms,
            parent,
            subject,
            text,
            message_id,
        }
    }
}

/// SplitMix64's finalizer: spreads nearby integers over the whole range.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Person {
    name: &'static str,
    address: String,
}

impl Person {
    fn header(&self, charset: Charset) -> String {
        if self.name.is_ascii() {
            format!("\"{}\" <{}>", self.name, self.address)
        } else {
            format!("{} <{}>", encode_header(charset, self.name), self.address)
        }
    }
}

/// What every message of a thread shares.
struct Topic {
    bank: &'static Bank,
    subject: String,
    contact: (&'static str, &'static str),
}

impl Topic {
    fn of(rng: &mut StdRng) -> Topic {
        let roll = rng.random_range(0..100);
        let bank = match roll {
            0..=29 => &ASCII_BANK,
            30..=59 => &UTF8_BANK,
            60..=71 => &LATIN1_BANK,
            72..=85 => &WINDOWS_1252_BANK,
            _ => &JAPANESE_BANK,
        };
        let template = bank.subjects[rng.random_range(0..bank.subjects.len())];
        let subject = template.replace("{n}", &rng.random_range(100..10_000).to_string());
        let contact = bank.names[rng.random_range(0..bank.names.len())];
        Topic {
            bank,
            subject,
            contact,
        }
    }
}

/// Text in one charset: subjects, sentences and correspondents' names.
struct Bank {
    charset: Charset,
    subjects: &'static [&'static str],
    sentences: &'static [&'static str],
    names: &'static [(&'static str, &'static str)],
}

static ASCII_BANK: Bank = Bank {
    charset: Charset::UsAscii,
    subjects: &[
        "Lunch on Thursday?",
        "Invoice #{n}",
        "Build failed on main",
        "Weekly sync notes",
        "Your order #{n} has shipped",
        "Quick question about the API",
        "Offsite agenda",
        "Password reset requested",
    ],
    sentences: &[
        "Let me know if that works for you.",
        "I attached the latest numbers.",
        "Can we move the call to 3pm?",
        "Thanks for the quick turnaround!",
        "The deploy went out this morning & looks fine.",
        "See the notes below <draft>.",
    ],
    names: &[
        ("Ann Lee", "ann.lee@example.com"),
        ("Bob Stone", "bob@example.org"),
        ("Build Bot", "ci@builds.example.com"),
        ("Shop", "orders@shop.example"),
    ],
};

static UTF8_BANK: Bank = Bank {
    charset: Charset::Utf8,
    subjects: &[
        "Grüße aus Köln: Projektplan 🚀",
        "Réunion de lundi — ordre du jour",
        "Отчёт за квартал {n}",
        "会議の議事録（第{n}回）",
        "Quarterly review ✅",
        "Café ☕ on Friday?",
    ],
    sentences: &[
        "Das Meeting ist auf Dienstag verschoben.",
        "Les résultats sont prêts, ça marche ?",
        "Привет! Как дела с отчётом?",
        "来週の予定を確認してください。",
        "Looks good to me 👍",
        "Naïve café owners love crème brûlée.",
    ],
    names: &[
        ("Jürgen Müller", "juergen@example.de"),
        ("François Dupont", "f.dupont@example.fr"),
        ("Дмитрий Иванов", "dmitry@example.ru"),
        ("Zoë O'Brien", "zoe@example.ie"),
    ],
};

static LATIN1_BANK: Bank = Bank {
    charset: Charset::Latin1,
    subjects: &[
        "Café et croissants à 10h",
        "Reunión del equipo: señal verde",
        "Grüße vom Bodensee",
        "Årsrapport {n}",
    ],
    sentences: &[
        "Voilà le résumé de la réunion.",
        "¿Podemos hablar mañana por la mañana?",
        "Schöne Grüße aus München.",
        "Déjà vu: the façade needs work.",
    ],
    names: &[
        ("José Núñez", "jose@example.es"),
        ("Renée Lefèvre", "renee@example.fr"),
    ],
};

static WINDOWS_1252_BANK: Bank = Bank {
    charset: Charset::Windows1252,
    subjects: &[
        "“Final” numbers – Q3 € budget",
        "Re-check the … appendix",
        "Smart quotes ‘test’ — done™",
    ],
    sentences: &[
        "The “final” price is €{n} – not negotiable.",
        "We’re almost there… one more review.",
        "Bullet • points — and dashes – everywhere.",
    ],
    names: &[
        ("Chloë Brontë", "chloe@example.co.uk"),
        ("Office Desk", "desk@example.com"),
    ],
};

static JAPANESE_BANK: Bank = Bank {
    charset: Charset::Iso2022Jp,
    subjects: &[
        "こんにちは、ミーティングのおしらせ",
        "ありがとうございます",
        "スケジュールのかくにん",
        "プロジェクトのしんちょく（{n}）",
    ],
    sentences: &[
        "こんにちは。らいしゅうのミーティングについて。",
        "よろしくおねがいします。",
        "しりょうをおくります。かくにんしてください。",
        "ありがとうございました！",
    ],
    names: &[
        ("ヤマダ ハナコ", "hanako@example.jp"),
        ("サトウ タロウ", "taro@example.jp"),
    ],
};

const FILLER: [&str; 40] = [
    "project", "update", "timeline", "review", "budget", "client", "draft", "meeting", "numbers",
    "release", "feedback", "schedule", "notes", "plan", "design", "report", "team", "launch",
    "issue", "fix", "next", "week", "today", "tomorrow", "quick", "final", "check", "please",
    "thanks", "again", "soon", "agenda", "shared", "folder", "call", "slides", "invoice", "order",
    "status", "question",
];

fn body_text(rng: &mut StdRng, bank: &Bank, signer: &str, reply: bool) -> String {
    let mut text = String::from("Hi,\n\n");
    for _ in 0..rng.random_range(1..=3) {
        let mut paragraph = Vec::new();
        for _ in 0..rng.random_range(1..=3) {
            if rng.random_bool(0.5) {
                let sentence = bank.sentences[rng.random_range(0..bank.sentences.len())];
                paragraph.push(sentence.replace("{n}", &rng.random_range(10..999).to_string()));
            } else {
                let words: Vec<&str> = (0..rng.random_range(5..12))
                    .map(|_| FILLER[rng.random_range(0..FILLER.len())])
                    .collect();
                let mut sentence = words.join(" ");
                if let Some(first) = sentence.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                sentence.push('.');
                paragraph.push(sentence);
            }
        }
        text.push_str(&paragraph.join(" "));
        text.push_str("\n\n");
    }
    if reply {
        let quoted = bank.sentences[rng.random_range(0..bank.sentences.len())];
        text.push_str(&format!("> {}\n\n", quoted.replace("{n}", "1")));
    }
    text.push_str(&format!("-- \n{signer}\n"));
    text
}

fn html_of(text: &str) -> String {
    let mut html = String::from("<html><body>");
    for paragraph in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        let escaped = paragraph
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('\n', "<br>");
        html.push_str(&format!("<p>{escaped}</p>"));
    }
    html.push_str("</body></html>\n");
    html
}

#[derive(Debug, Clone, Copy)]
enum Structure {
    Plain,
    Alternative,
    Attachments,
    Related,
    Forward,
}

impl Structure {
    fn pick(rng: &mut StdRng) -> Structure {
        match rng.random_range(0..100) {
            0..=39 => Structure::Plain,
            40..=67 => Structure::Alternative,
            68..=87 => Structure::Attachments,
            88..=93 => Structure::Related,
            _ => Structure::Forward,
        }
    }
}

struct BodyWriter<'a> {
    rng: &'a mut StdRng,
    charset: Charset,
}

impl BodyWriter<'_> {
    fn boundary(&mut self) -> String {
        format!("000000000000{:016x}", self.rng.random::<u64>())
    }

    /// Headers and body of one text part, in the thread's charset with a transfer
    /// encoding that suits it.
    fn text_leaf(&mut self, raw: &mut Vec<u8>, subtype: &str, text: &str) {
        let charset = self.charset;
        push_line(
            raw,
            &format!(
                "Content-Type: text/{subtype}; charset=\"{}\"",
                charset.name()
            ),
        );
        let encoding = match charset {
            Charset::UsAscii | Charset::Iso2022Jp => "7bit",
            Charset::Utf8 => ["base64", "quoted-printable", "8bit"][self.rng.random_range(0..3)],
            Charset::Latin1 | Charset::Windows1252 => {
                ["quoted-printable", "8bit"][self.rng.random_range(0..2)]
            }
        };
        push_line(raw, &format!("Content-Transfer-Encoding: {encoding}"));
        raw.extend_from_slice(b"\r\n");
        // Encode line by line, so ISO-2022-JP returns to ASCII at every line end.
        let mut bytes = Vec::with_capacity(text.len() + 64);
        for line in text.lines() {
            bytes.extend_from_slice(&charset.encode(line));
            bytes.push(b'\n');
        }
        match encoding {
            "base64" => raw.extend_from_slice(base64_lines(&bytes).as_bytes()),
            "quoted-printable" => {
                raw.extend_from_slice(quoted_printable(&bytes).as_bytes());
            }
            _ => {
                for line in bytes.split(|&b| b == b'\n') {
                    raw.extend_from_slice(line);
                    raw.extend_from_slice(b"\r\n");
                }
                raw.truncate(raw.len() - 2);
            }
        }
    }

    fn alternative(&mut self, raw: &mut Vec<u8>, text: &str, html: &str) {
        let boundary = self.boundary();
        push_line(
            raw,
            &format!("Content-Type: multipart/alternative; boundary=\"{boundary}\""),
        );
        raw.extend_from_slice(b"\r\n");
        open_part(raw, &boundary);
        self.text_leaf(raw, "plain", text);
        open_part(raw, &boundary);
        self.text_leaf(raw, "html", html);
        close_multipart(raw, &boundary);
    }

    fn attachment(&mut self, raw: &mut Vec<u8>, index: u64) {
        match self.rng.random_range(0..4) {
            0 => {
                push_line(raw, "Content-Type: application/pdf; name=\"report-q3.pdf\"");
                push_line(
                    raw,
                    "Content-Disposition: attachment; filename=\"report-q3.pdf\"",
                );
                push_line(raw, "Content-Transfer-Encoding: base64");
                raw.extend_from_slice(b"\r\n");
                let pdf = pdf_like(self.rng);
                raw.extend_from_slice(base64_lines(&pdf).as_bytes());
            }
            1 => {
                push_line(
                    raw,
                    "Content-Type: application/pdf; name=\"=?UTF-8?B?csOpc3Vtw6kucGRm?=\"",
                );
                push_line(
                    raw,
                    "Content-Disposition: attachment;\r\n filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
                );
                push_line(raw, "Content-Transfer-Encoding: base64");
                raw.extend_from_slice(b"\r\n");
                let pdf = pdf_like(self.rng);
                raw.extend_from_slice(base64_lines(&pdf).as_bytes());
            }
            2 => {
                let name = format!("screenshot-{index}.png");
                push_line(raw, &format!("Content-Type: image/png; name=\"{name}\""));
                push_line(
                    raw,
                    &format!("Content-Disposition: attachment; filename=\"{name}\""),
                );
                push_line(raw, "Content-Transfer-Encoding: base64");
                raw.extend_from_slice(b"\r\n");
                let png = png_like(self.rng);
                raw.extend_from_slice(base64_lines(&png).as_bytes());
            }
            _ => {
                push_line(
                    raw,
                    "Content-Type: text/csv; charset=UTF-8; name=\"data.csv\"",
                );
                push_line(
                    raw,
                    "Content-Disposition: attachment; filename=\"data.csv\"",
                );
                push_line(raw, "Content-Transfer-Encoding: quoted-printable");
                raw.extend_from_slice(b"\r\n");
                let mut csv = String::from("date,amount,note\n");
                for row in 0..self.rng.random_range(3..20) {
                    csv.push_str(&format!(
                        "2024-01-{:02},{}.{:02},Zahlung für Büro {row}\n",
                        row % 28 + 1,
                        self.rng.random_range(1..900),
                        self.rng.random_range(0..100)
                    ));
                }
                raw.extend_from_slice(quoted_printable(csv.as_bytes()).as_bytes());
            }
        }
    }
}

fn pdf_like(rng: &mut StdRng) -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\nstream\n".to_vec();
    let len = rng.random_range(512..4096);
    push_random_bytes(rng, &mut pdf, len);
    pdf.extend_from_slice(b"\nendstream\n%%EOF\n");
    pdf
}

fn png_like(rng: &mut StdRng) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x40\x00\x00\x00\x40\x08\x06\x00\x00\x00".to_vec();
    let len = rng.random_range(256..3072);
    push_random_bytes(rng, &mut png, len);
    png.extend_from_slice(b"\x00\x00\x00\x00IEND\xae\x42\x60\x82");
    png
}

fn push_random_bytes(rng: &mut StdRng, out: &mut Vec<u8>, count: usize) {
    let start = out.len();
    out.resize(start + count, 0);
    rng.fill_bytes(&mut out[start..]);
}

fn labels(rng: &mut StdRng, from_me: bool) -> Vec<&'static str> {
    let mut labels = Vec::new();
    if from_me {
        labels.push("SENT");
        if rng.random_bool(0.1) {
            labels.push("IMPORTANT");
        }
        return labels;
    }
    let roll = rng.random_range(0..100);
    if roll == 0 {
        labels.push("SPAM");
    } else if roll == 1 {
        labels.push("TRASH");
    } else if roll < 92 {
        labels.push("INBOX");
    }
    if rng.random_bool(0.35) {
        labels.push("UNREAD");
    }
    if rng.random_bool(0.2) {
        labels.push("IMPORTANT");
    }
    if rng.random_bool(0.05) {
        labels.push("STARRED");
    }
    labels.push(match rng.random_range(0..100) {
        0..=49 => "CATEGORY_PERSONAL",
        50..=69 => "CATEGORY_UPDATES",
        70..=84 => "CATEGORY_PROMOTIONS",
        85..=94 => "CATEGORY_SOCIAL",
        _ => "CATEGORY_FORUMS",
    });
    for (id, _) in USER_LABELS {
        if rng.random_bool(0.06) {
            labels.push(id);
        }
    }
    labels
}

const ZONES: [i32; 7] = [
    0,
    3600,
    7200,
    -5 * 3600,
    -7 * 3600,
    9 * 3600,
    5 * 3600 + 1800,
];

fn rfc2822_date(epoch_ms: i64, zone: usize) -> String {
    let offset = FixedOffset::east_opt(ZONES[zone % ZONES.len()]).unwrap_or_else(|| Utc.fix());
    match offset.timestamp_millis_opt(epoch_ms).single() {
        Some(date) => date.format("%a, %-d %b %Y %H:%M:%S %z").to_string(),
        None => "Thu, 1 Jan 1970 00:00:00 +0000".to_owned(),
    }
}

fn push_line(raw: &mut Vec<u8>, line: &str) {
    raw.extend_from_slice(line.as_bytes());
    raw.extend_from_slice(b"\r\n");
}

fn open_part(raw: &mut Vec<u8>, boundary: &str) {
    raw.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
}

fn close_multipart(raw: &mut Vec<u8>, boundary: &str) {
    raw.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
}
