//! The mailbox: folders, messages, their two kinds of ids, and the change log delta
//! rounds are computed from.
//!
//! Every change takes the next number of a mailbox-wide sequence (`seq`). A message
//! keeps the sequence number of its last change (`changed_seq`) and of its arrival in
//! its current folder (`arrived_seq`); a message leaving a folder (moved out, or
//! deleted for good) leaves a [`Departure`] in that folder's log with the ids it had
//! there. A delta round of a folder from a watermark W to W2 is then: the messages in
//! the folder with `W < changed_seq ≤ W2` (their latest state), and the departures
//! with `W < seq ≤ W2` of messages not back in the folder by W2.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::{
    FlagStatus, Importance, MailboxConfig, NewAttachment, NewMessage, OutlookFakeError, Recipient,
    RemovedReason,
};

/// The well-known folders every mailbox has: (well-known name, display name). The
/// first is the root (`msgfolderroot`), whose children `/me/mailFolders` lists.
pub(crate) const WELL_KNOWN: [(&str, &str); 8] = [
    ("msgfolderroot", "Top of Information Store"),
    ("inbox", "Inbox"),
    ("drafts", "Drafts"),
    ("sentitems", "Sent Items"),
    ("deleteditems", "Deleted Items"),
    ("archive", "Archive"),
    ("junkemail", "Junk Email"),
    ("outbox", "Outbox"),
];

/// A folder's key: its index.
pub(crate) type FolderKey = usize;

/// A folder's messages in Graph's default order: newest received first.
pub(crate) type SortKey = (Reverse<i64>, Reverse<u64>);

#[derive(Debug)]
pub(crate) struct Folder {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) parent: Option<FolderKey>,
    pub(crate) well_known: Option<&'static str>,
    pub(crate) children: Vec<FolderKey>,
    /// Bumped by forgetting the folder's delta tokens: older tokens answer 410.
    pub(crate) epoch: u64,
    pub(crate) messages: BTreeSet<SortKey>,
}

#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) content_type: String,
    pub(crate) is_inline: bool,
    pub(crate) content_id: Option<String>,
    pub(crate) content: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) key: u64,
    pub(crate) immutable_id: String,
    pub(crate) mutable_id: String,
    pub(crate) id_generation: u32,
    pub(crate) folder: FolderKey,
    pub(crate) arrived_seq: u64,
    pub(crate) changed_seq: u64,
    pub(crate) version: u32,
    pub(crate) created: DateTime<Utc>,
    pub(crate) modified: DateTime<Utc>,
    pub(crate) received: DateTime<Utc>,
    pub(crate) sent: DateTime<Utc>,
    pub(crate) subject: String,
    pub(crate) body_text: String,
    pub(crate) body_html: String,
    pub(crate) importance: Importance,
    pub(crate) conversation_id: String,
    pub(crate) internet_message_id: String,
    pub(crate) is_read: bool,
    pub(crate) is_draft: bool,
    pub(crate) from: Recipient,
    pub(crate) to: Vec<Recipient>,
    pub(crate) cc: Vec<Recipient>,
    pub(crate) bcc: Vec<Recipient>,
    pub(crate) flag: FlagStatus,
    pub(crate) categories: Vec<String>,
    pub(crate) attachments: Vec<Attachment>,
}

impl Message {
    pub(crate) fn sort_key(&self) -> SortKey {
        (Reverse(self.received.timestamp()), Reverse(self.key))
    }

    pub(crate) fn change_key(&self) -> String {
        let mut raw = Vec::with_capacity(16);
        raw.extend_from_slice(&[0x16, 0, 0, 0]);
        raw.extend_from_slice(&self.key.to_be_bytes());
        raw.extend_from_slice(&self.version.to_be_bytes());
        format!("CQAAAB{}", STANDARD.encode(raw))
    }

    pub(crate) fn has_attachments(&self) -> bool {
        self.attachments.iter().any(|a| !a.is_inline)
    }

    pub(crate) fn body_preview(&self) -> String {
        let flat: String = self
            .body_text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        flat.chars().take(255).collect()
    }
}

/// A message leaving a folder.
#[derive(Debug, Clone)]
pub(crate) struct Departure {
    pub(crate) folder: FolderKey,
    pub(crate) key: u64,
    pub(crate) seq: u64,
    pub(crate) reason: RemovedReason,
    pub(crate) mutable_id: String,
    pub(crate) immutable_id: String,
}

/// The mailbox's whole state.
#[derive(Debug)]
pub(crate) struct Mailbox {
    pub(crate) owner: Recipient,
    pub(crate) tag: String,
    pub(crate) folders: Vec<Folder>,
    folder_index: HashMap<String, FolderKey>,
    pub(crate) messages: HashMap<u64, Message>,
    mutable_index: HashMap<String, u64>,
    immutable_index: HashMap<String, u64>,
    pub(crate) departures: Vec<Departure>,
    pub(crate) seq: u64,
    next_key: u64,
    next_conversation: u64,
    pub(crate) move_out_reason: RemovedReason,
    pub(crate) rng: StdRng,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The time every stored time is truncated to: whole seconds, as Graph shows them.
fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

impl Mailbox {
    /// An empty mailbox (well-known folders only).
    pub(crate) fn new(owner: Recipient, seed: u64, move_out_reason: RemovedReason) -> Mailbox {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x006f_7574_6c6f_6f6b);
        let tag = b64(&rng.random::<[u8; 6]>());
        let mut mailbox = Mailbox {
            owner,
            tag,
            folders: Vec::new(),
            folder_index: HashMap::new(),
            messages: HashMap::new(),
            mutable_index: HashMap::new(),
            immutable_index: HashMap::new(),
            departures: Vec::new(),
            seq: 0,
            next_key: 1,
            next_conversation: 1,
            move_out_reason,
            rng,
        };
        for (i, (well_known, name)) in WELL_KNOWN.iter().enumerate() {
            let parent = (i > 0).then_some(0);
            mailbox.add_folder(name, parent, Some(well_known));
        }
        mailbox
    }

    fn add_folder(
        &mut self,
        name: &str,
        parent: Option<FolderKey>,
        well_known: Option<&'static str>,
    ) -> FolderKey {
        let key = self.folders.len();
        let id = format!(
            "AAMkAD{}AAEu{}AAA=",
            self.tag,
            b64(&(key as u32).to_be_bytes())
        );
        self.folder_index.insert(id.clone(), key);
        self.folders.push(Folder {
            id,
            name: name.to_owned(),
            parent,
            well_known,
            children: Vec::new(),
            epoch: 0,
            messages: BTreeSet::new(),
        });
        if let Some(parent) = parent.and_then(|p| self.folders.get_mut(p)) {
            parent.children.push(key);
        }
        key
    }

    /// A folder by id or well-known name (case-insensitive).
    pub(crate) fn folder_key(&self, id_or_name: &str) -> Option<FolderKey> {
        if let Some(key) = self.folder_index.get(id_or_name) {
            return Some(*key);
        }
        self.folders.iter().position(|f| {
            f.well_known
                .is_some_and(|w| w.eq_ignore_ascii_case(id_or_name))
        })
    }

    pub(crate) fn well_known(&self, name: &str) -> FolderKey {
        self.folder_key(name).unwrap_or(0)
    }

    /// Whether a string has the shape of this mailbox's folder or message ids.
    pub(crate) fn looks_like_id(&self, id: &str) -> bool {
        (id.starts_with("AAMkAD") || id.starts_with("AAkALg")) && id.len() > 12
    }

    /// A message by either kind of id.
    pub(crate) fn message_key(&self, id: &str) -> Option<u64> {
        self.mutable_index
            .get(id)
            .or_else(|| self.immutable_index.get(id))
            .copied()
    }

    pub(crate) fn message(&self, id: &str) -> Option<&Message> {
        self.message_key(id).and_then(|k| self.messages.get(&k))
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn mutable_id(&self, key: u64, generation: u32) -> String {
        let mut raw = key.to_be_bytes().to_vec();
        raw.extend_from_slice(&generation.to_be_bytes());
        format!("AAMkAD{}BGAAA{}AAA=", self.tag, b64(&raw))
    }

    fn immutable_id(&self, key: u64) -> String {
        format!(
            "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A{}{}AAA=",
            self.tag,
            b64(&key.to_be_bytes())
        )
    }

    pub(crate) fn new_conversation(&mut self) -> String {
        let n = self.next_conversation;
        self.next_conversation += 1;
        format!("AAQkAD{}QAQ{}=", self.tag, b64(&n.to_be_bytes()))
    }

    /// Creates a folder under `parent` (the root when `None`).
    pub(crate) fn create_folder(
        &mut self,
        name: &str,
        parent: Option<&str>,
    ) -> Result<FolderKey, OutlookFakeError> {
        let parent = match parent {
            None => 0,
            Some(p) => self
                .folder_key(p)
                .ok_or_else(|| OutlookFakeError::FolderNotFound(p.to_owned()))?,
        };
        let taken = self.folders[parent]
            .children
            .iter()
            .any(|c| self.folders[*c].name.eq_ignore_ascii_case(name));
        if taken || name.trim().is_empty() {
            return Err(OutlookFakeError::Invalid(format!(
                "a folder named {name:?} cannot be created there"
            )));
        }
        self.next_seq();
        Ok(self.add_folder(name, Some(parent), None))
    }

    /// Stores a new message in `folder`; returns its key.
    pub(crate) fn insert(&mut self, new: NewMessage, folder: FolderKey, now: DateTime<Utc>) -> u64 {
        let seq = self.next_seq();
        let key = self.next_key;
        self.next_key += 1;
        let received = whole_seconds(new.received.unwrap_or(now));
        let conversation_id = match new.conversation_id {
            Some(c) => c,
            None => self.new_conversation(),
        };
        let attachments = new
            .attachments
            .into_iter()
            .enumerate()
            .map(|(i, a)| self.attachment(key, i, a))
            .collect();
        let internet_message_id = new
            .internet_message_id
            .unwrap_or_else(|| format!("<{}.{key}@fake.outlook.example>", self.tag.to_lowercase()));
        let body_html = new
            .body_html
            .unwrap_or_else(|| crate::json::html_of_text(&new.body_text));
        let is_draft = self.folders[folder].well_known == Some("drafts");
        let message = Message {
            key,
            immutable_id: self.immutable_id(key),
            mutable_id: self.mutable_id(key, 0),
            id_generation: 0,
            folder,
            arrived_seq: seq,
            changed_seq: seq,
            version: 1,
            created: received,
            modified: received,
            received,
            sent: received - ChronoDuration::seconds(2),
            subject: new.subject,
            body_text: new.body_text,
            body_html,
            importance: new.importance,
            conversation_id,
            internet_message_id,
            is_read: new.is_read,
            is_draft,
            from: new.from,
            to: new.to,
            cc: new.cc,
            bcc: new.bcc,
            flag: new.flag,
            categories: new.categories,
            attachments,
        };
        self.mutable_index.insert(message.mutable_id.clone(), key);
        self.immutable_index
            .insert(message.immutable_id.clone(), key);
        self.folders[folder].messages.insert(message.sort_key());
        self.messages.insert(key, message);
        key
    }

    fn attachment(&self, key: u64, index: usize, new: NewAttachment) -> Attachment {
        let mut raw = key.to_be_bytes().to_vec();
        raw.extend_from_slice(&(index as u32).to_be_bytes());
        Attachment {
            id: format!("AAMkAD{}BEgAQA{}=", self.tag, b64(&raw)),
            name: new.name,
            content_type: new.content_type,
            is_inline: new.is_inline,
            content_id: new.content_id,
            content: new.content,
        }
    }

    /// Applies `change` to a message: a new version, modified now.
    pub(crate) fn update(
        &mut self,
        id: &str,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut Message),
    ) -> Result<u64, OutlookFakeError> {
        let key = self
            .message_key(id)
            .ok_or_else(|| OutlookFakeError::MessageNotFound(id.to_owned()))?;
        let seq = self.next_seq();
        let message = self
            .messages
            .get_mut(&key)
            .ok_or_else(|| OutlookFakeError::MessageNotFound(id.to_owned()))?;
        change(message);
        message.changed_seq = seq;
        message.version += 1;
        message.modified = whole_seconds(now).max(message.modified);
        Ok(key)
    }

    /// Moves a message: it leaves its folder (a departure there) and arrives in
    /// `folder` with a new mutable id. Moving to its own folder changes nothing.
    pub(crate) fn move_to(
        &mut self,
        id: &str,
        folder: FolderKey,
        now: DateTime<Utc>,
    ) -> Result<u64, OutlookFakeError> {
        let key = self
            .message_key(id)
            .ok_or_else(|| OutlookFakeError::MessageNotFound(id.to_owned()))?;
        let current = self
            .messages
            .get(&key)
            .map(|m| m.folder)
            .ok_or_else(|| OutlookFakeError::MessageNotFound(id.to_owned()))?;
        if current == folder {
            return Ok(key);
        }
        if folder == 0 {
            return Err(OutlookFakeError::Invalid(
                "messages cannot be moved to the root folder".to_owned(),
            ));
        }
        let seq = self.next_seq();
        let reason = self.move_out_reason;
        let Some(message) = self.messages.get_mut(&key) else {
            return Err(OutlookFakeError::MessageNotFound(id.to_owned()));
        };
        let departure = Departure {
            folder: current,
            key,
            seq,
            reason,
            mutable_id: message.mutable_id.clone(),
            immutable_id: message.immutable_id.clone(),
        };
        let sort_key = message.sort_key();
        message.id_generation += 1;
        let generation = message.id_generation;
        let old_id = std::mem::take(&mut message.mutable_id);
        let is_draft = self.folders[folder].well_known == Some("drafts");
        let new_id = self.mutable_id(key, generation);
        let Some(message) = self.messages.get_mut(&key) else {
            return Err(OutlookFakeError::MessageNotFound(id.to_owned()));
        };
        message.mutable_id = new_id.clone();
        message.folder = folder;
        message.arrived_seq = seq;
        message.changed_seq = seq;
        message.version += 1;
        message.is_draft = is_draft && message.is_draft;
        message.modified = whole_seconds(now).max(message.modified);
        self.mutable_index.remove(&old_id);
        self.mutable_index.insert(new_id, key);
        self.folders[current].messages.remove(&sort_key);
        self.folders[folder].messages.insert(sort_key);
        self.departures.push(departure);
        Ok(key)
    }

    /// Deletes a message for good.
    pub(crate) fn purge(&mut self, id: &str) -> Result<(), OutlookFakeError> {
        let key = self
            .message_key(id)
            .ok_or_else(|| OutlookFakeError::MessageNotFound(id.to_owned()))?;
        let seq = self.next_seq();
        let Some(message) = self.messages.remove(&key) else {
            return Err(OutlookFakeError::MessageNotFound(id.to_owned()));
        };
        self.mutable_index.remove(&message.mutable_id);
        self.immutable_index.remove(&message.immutable_id);
        self.folders[message.folder]
            .messages
            .remove(&message.sort_key());
        self.departures.push(Departure {
            folder: message.folder,
            key,
            seq,
            reason: RemovedReason::Deleted,
            mutable_id: message.mutable_id,
            immutable_id: message.immutable_id,
        });
        Ok(())
    }

    /// The folder's path of display names from the top (`/Inbox/Projects`).
    pub(crate) fn folder_path(&self, folder: FolderKey) -> String {
        let mut names = Vec::new();
        let mut at = Some(folder);
        while let Some(key) = at.filter(|k| *k != 0) {
            names.push(self.folders[key].name.as_str());
            at = self.folders[key].parent;
        }
        names.reverse();
        format!("/{}", names.join("/"))
    }

    pub(crate) fn unread_count(&self, folder: FolderKey) -> usize {
        self.folders[folder]
            .messages
            .iter()
            .filter(|(_, Reverse(key))| self.messages.get(key).is_some_and(|m| !m.is_read))
            .count()
    }
}

// ---------------------------------------------------------------------------------
// Generation.

const CORRESPONDENTS: [(&str, &str); 16] = [
    ("Alex Wilber", "alexw@contoso.example"),
    ("Megan Bowen", "meganb@contoso.example"),
    ("Adele Vance", "adelev@contoso.example"),
    ("Lee Gu", "leeg@contoso.example"),
    ("Nestor Wilke", "nestorw@contoso.example"),
    ("Isaiah Langer", "isaiahl@contoso.example"),
    ("Pradeep Gupta", "pradeepg@fabrikam.example"),
    ("Lidia Holloway", "lidiah@fabrikam.example"),
    ("Joni Sherman", "jonis@fabrikam.example"),
    ("Grady Archie", "gradya@northwind.example"),
    ("Henrietta Mueller", "henriettam@northwind.example"),
    ("Johanna Lorenz", "johannal@northwind.example"),
    ("Miriam Graham", "miriamg@adatum.example"),
    ("Diego Siciliani", "diegos@adatum.example"),
    ("Zoë Lefèvre", "zoe.lefevre@exemple.example"),
    ("田中 花子", "hanako.tanaka@example.jp"),
];

const WORDS: [&str; 24] = [
    "Projects",
    "Budget",
    "Roadmap",
    "Invoices",
    "Design review",
    "Q3 planning",
    "Hiring",
    "Travel",
    "Newsletters",
    "Customers",
    "Legal",
    "Receipts",
    "Team",
    "Vendors",
    "Réunions",
    "Conférences",
    "会议",
    "Support",
    "Releases",
    "Marketing",
    "Research",
    "Family",
    "Contracts",
    "Reports",
];

const TOPICS: [&str; 16] = [
    "Quarterly numbers",
    "Lunch on Friday?",
    "Contract renewal",
    "Release notes for 2.4",
    "Your invoice is ready",
    "Meeting notes",
    "Design review follow-up",
    "Travel itinerary",
    "Welcome aboard",
    "Weekly status",
    "Budget approval needed",
    "Customer escalation",
    "Draft proposal",
    "Offsite agenda",
    "Résumé des décisions",
    "次回の打ち合わせ",
];

const SENTENCES: [&str; 12] = [
    "Please find the latest figures below.",
    "Let me know if anything looks off.",
    "We agreed to revisit this next week.",
    "Thanks for the quick turnaround on this.",
    "The deadline moved to the end of the month.",
    "I have attached the documents we discussed.",
    "Could you review the open items before Thursday?",
    "Everything is on track for the launch.",
    "The customer asked for a short call tomorrow.",
    "Merci pour votre retour rapide.",
    "ご確認よろしくお願いします。",
    "See the notes from the last meeting for context.",
];

/// Outlook's default category names.
pub(crate) const CATEGORIES: [&str; 6] = [
    "Red category",
    "Orange category",
    "Yellow category",
    "Green category",
    "Blue category",
    "Purple category",
];

pub(crate) fn correspondent(rng: &mut StdRng) -> Recipient {
    let (name, address) = CORRESPONDENTS[rng.random_range(0..CORRESPONDENTS.len())];
    Recipient::new(name, address)
}

/// A generated message (not yet placed).
pub(crate) fn generated_message(
    rng: &mut StdRng,
    owner: &Recipient,
    sent_by_owner: bool,
    attachment_rate: f64,
    n: u64,
) -> NewMessage {
    let topic = TOPICS[rng.random_range(0..TOPICS.len())];
    let subject = if rng.random_bool(0.3) {
        format!("RE: {topic}")
    } else {
        format!("{topic} #{n}")
    };
    let paragraphs: Vec<String> = (0..rng.random_range(1..4))
        .map(|_| {
            (0..rng.random_range(2..5))
                .map(|_| SENTENCES[rng.random_range(0..SENTENCES.len())])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let other = correspondent(rng);
    let (from, to) = if sent_by_owner {
        (owner.clone(), vec![other])
    } else {
        (other, vec![owner.clone()])
    };
    let cc = if rng.random_bool(0.25) {
        vec![correspondent(rng)]
    } else {
        Vec::new()
    };
    let body_text = format!(
        "Hello,\r\n\r\n{}\r\n\r\nBest regards,\r\n{}",
        paragraphs.join("\r\n\r\n"),
        from.name
    );
    let mut attachments = Vec::new();
    let mut inline_cid = None;
    if rng.random_bool(attachment_rate.clamp(0.0, 1.0)) {
        for i in 0..rng.random_range(1..=3) {
            let attachment = generated_attachment(rng, n, i);
            if attachment.is_inline {
                inline_cid = attachment.content_id.clone();
            }
            attachments.push(attachment);
        }
    }
    let mut body_html = crate::json::html_of_text(&body_text);
    if let Some(cid) = inline_cid {
        body_html = body_html.replace(
            "</body>",
            &format!("<p><img src=\"cid:{cid}\" alt=\"image\"></p></body>"),
        );
    }
    let roll: f64 = rng.random();
    NewMessage {
        subject,
        body_text,
        body_html: Some(body_html),
        from,
        to,
        cc,
        bcc: Vec::new(),
        importance: if roll < 0.07 {
            Importance::High
        } else if roll < 0.10 {
            Importance::Low
        } else {
            Importance::Normal
        },
        is_read: sent_by_owner || rng.random_bool(0.8),
        flag: match rng.random_range(0..100) {
            0..5 => FlagStatus::Flagged,
            5..8 => FlagStatus::Complete,
            _ => FlagStatus::NotFlagged,
        },
        categories: if rng.random_bool(0.1) {
            vec![CATEGORIES[rng.random_range(0..CATEGORIES.len())].to_owned()]
        } else {
            Vec::new()
        },
        attachments,
        received: None,
        conversation_id: None,
        internet_message_id: None,
        folder: None,
    }
}

fn generated_attachment(rng: &mut StdRng, n: u64, i: usize) -> NewAttachment {
    let len = rng.random_range(200..6_000);
    match rng.random_range(0..4) {
        0 => NewAttachment {
            name: format!("report-{n}-{i}.pdf"),
            content_type: "application/pdf".to_owned(),
            is_inline: false,
            content_id: None,
            content: {
                let mut bytes = b"%PDF-1.4\n".to_vec();
                bytes.extend((0..len).map(|_| rng.random::<u8>()));
                bytes
            },
        },
        1 => NewAttachment {
            name: format!("notes-{n}-{i}.txt"),
            content_type: "text/plain".to_owned(),
            is_inline: false,
            content_id: None,
            content: (0..len / 60)
                .map(|_| SENTENCES[rng.random_range(0..SENTENCES.len())])
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes(),
        },
        2 => NewAttachment {
            name: format!("data-{n}-{i}.csv"),
            content_type: "text/csv".to_owned(),
            is_inline: false,
            content_id: None,
            content: {
                let mut csv = String::from("id,amount\n");
                for row in 0..(len / 20) {
                    csv.push_str(&format!("{row},{}\n", rng.random_range(1..10_000)));
                }
                csv.into_bytes()
            },
        },
        _ => NewAttachment {
            name: format!("image{n}{i}.png"),
            content_type: "image/png".to_owned(),
            is_inline: true,
            content_id: Some(format!("image{n}{i}@fake.outlook.example")),
            content: {
                let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
                bytes.extend((0..len).map(|_| rng.random::<u8>()));
                bytes
            },
        },
    }
}

/// Fills a mailbox as `config` asks, outside the change log (every message at seq 0).
pub(crate) fn generate(mailbox: &mut Mailbox, config: &MailboxConfig, now: DateTime<Utc>) {
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x0067_656e_6572_6174);
    let mut user_folders = Vec::new();
    for i in 0..config.folders {
        let top_level = user_folders.is_empty() || rng.random_bool(0.35);
        let parent = if top_level {
            0
        } else if rng.random_bool(0.3) {
            mailbox.well_known(if rng.random_bool(0.5) {
                "inbox"
            } else {
                "archive"
            })
        } else {
            user_folders[rng.random_range(0..user_folders.len())]
        };
        let word = WORDS[rng.random_range(0..WORDS.len())];
        let taken = |name: &str, mailbox: &Mailbox| {
            mailbox.folders[parent]
                .children
                .iter()
                .any(|c| mailbox.folders[*c].name.eq_ignore_ascii_case(name))
        };
        let name = if taken(word, mailbox) {
            format!("{word} {}", i + 1)
        } else {
            word.to_owned()
        };
        user_folders.push(mailbox.add_folder(&name, Some(parent), None));
    }
    // Where messages go, by weight.
    let mut places: Vec<(FolderKey, f64)> = vec![
        (mailbox.well_known("inbox"), 40.0),
        (mailbox.well_known("sentitems"), 12.0),
        (mailbox.well_known("archive"), 10.0),
        (mailbox.well_known("drafts"), 2.0),
    ];
    if config.include_deleted_and_junk {
        places.push((mailbox.well_known("deleteditems"), 3.0));
        places.push((mailbox.well_known("junkemail"), 3.0));
    }
    if user_folders.is_empty() {
        places[0].1 += 36.0;
    } else {
        let each = 36.0 / user_folders.len() as f64;
        places.extend(user_folders.iter().map(|f| (*f, each)));
    }
    let total: f64 = places.iter().map(|(_, w)| w).sum();
    let span = i64::from(config.days.max(1)) * 86_400;
    let mut offsets: Vec<i64> = (0..config.messages)
        .map(|_| rng.random_range(60..span))
        .collect();
    // Oldest first, so keys grow with time.
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    let owner = mailbox.owner.clone();
    let sent = mailbox.well_known("sentitems");
    let mut conversations: Vec<String> = Vec::new();
    for (n, offset) in offsets.into_iter().enumerate() {
        let mut roll = rng.random_range(0.0..total);
        let mut folder = places[0].0;
        for (place, weight) in &places {
            if roll < *weight {
                folder = *place;
                break;
            }
            roll -= weight;
        }
        let mut message = generated_message(
            &mut rng,
            &owner,
            folder == sent,
            config.attachment_rate,
            n as u64 + 1,
        );
        message.received = Some(now - ChronoDuration::seconds(offset));
        if !conversations.is_empty() && message.subject.starts_with("RE: ") {
            message.conversation_id =
                Some(conversations[rng.random_range(0..conversations.len())].clone());
        } else {
            let conversation = mailbox.new_conversation();
            if conversations.len() < 500 {
                conversations.push(conversation.clone());
            }
            message.conversation_id = Some(conversation);
        }
        let key = mailbox.insert(message, folder, now);
        let drafts = folder == mailbox.well_known("drafts");
        if let Some(m) = mailbox.messages.get_mut(&key) {
            m.arrived_seq = 0;
            m.changed_seq = 0;
            m.is_read |= drafts;
        }
    }
    mailbox.seq = 0;
}
