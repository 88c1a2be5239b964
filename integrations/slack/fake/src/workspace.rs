//! The workspace: users, conversations, messages and threads, how they are generated,
//! changed by the hooks, and rendered as Slack's JSON.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::Rng as _;
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use serde_json::{Map, Value, json};

use crate::{ConversationKind, ConversationTruth, MessageTruth, SlackConfig, SlackFakeError};

/// The user Slack shows tombstones as.
pub(crate) const SLACKBOT: &str = "USLACKBOT";

const MICROS: u64 = 1_000_000;
const DAY: u64 = 24 * 3600 * MICROS;
const HOUR: u64 = 3600 * MICROS;

/// `"<secs>.<6 digits>"`.
pub(crate) fn fmt_ts(micros: u64) -> String {
    format!("{}.{:06}", micros / MICROS, micros % MICROS)
}

/// A ts (or a bound like `"0"`, `"1700000000"`, `"1700000000.5"`) in microseconds.
pub(crate) fn parse_ts(s: &str) -> Option<u64> {
    let s = s.trim();
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let mut digits: String = frac.chars().take(6).collect();
    while digits.len() < 6 {
        digits.push('0');
    }
    let frac: u64 = digits.parse().ok()?;
    secs.checked_mul(MICROS)?.checked_add(frac)
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// `n` random uppercase letters and digits.
pub(crate) fn alnum(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
        .collect()
}

/// `n` random lowercase hex digits.
pub(crate) fn hex(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16u32), 16).unwrap_or('0'))
        .collect()
}

/// A workspace member.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) real_name: String,
    pub(crate) display_name: String,
}

/// A file attached to a message.
#[derive(Debug, Clone)]
pub(crate) struct File {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) title: String,
    pub(crate) mimetype: &'static str,
    pub(crate) filetype: &'static str,
    pub(crate) size: u64,
    pub(crate) created: u64,
}

/// A message or reply.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) ts: u64,
    pub(crate) user: String,
    pub(crate) text: String,
    pub(crate) edited: Option<(String, u64)>,
    pub(crate) reactions: Vec<(String, Vec<String>)>,
    pub(crate) files: Vec<File>,
    /// A deleted parent kept for its replies.
    pub(crate) tombstone: bool,
}

impl Message {
    fn new(ts: u64, user: &str, text: &str) -> Message {
        Message {
            ts,
            user: user.to_owned(),
            text: text.to_owned(),
            edited: None,
            reactions: Vec::new(),
            files: Vec::new(),
            tombstone: false,
        }
    }
}

/// A conversation.
#[derive(Debug, Clone)]
pub(crate) struct Conversation {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) kind: ConversationKind,
    pub(crate) created: u64,
    pub(crate) updated: u64,
    pub(crate) archived: bool,
    pub(crate) removed: bool,
    pub(crate) members: BTreeSet<String>,
    /// For a DM: the other user.
    pub(crate) im_user: Option<String>,
    pub(crate) creator: String,
    /// Top-level messages (tombstones included) by ts.
    pub(crate) top: BTreeMap<u64, Message>,
    /// Replies by parent ts, then by ts.
    pub(crate) replies: BTreeMap<u64, BTreeMap<u64, Message>>,
    /// Reply ts → parent ts.
    pub(crate) reply_parent: HashMap<u64, u64>,
    /// The greatest ts ever used here.
    pub(crate) max_ts: u64,
}

impl Conversation {
    fn ts_used(&self, ts: u64) -> bool {
        self.top.contains_key(&ts) || self.reply_parent.contains_key(&ts)
    }

    /// The first unused ts at or after `ts`.
    fn free_ts(&self, mut ts: u64) -> u64 {
        while self.ts_used(ts) {
            ts += 1;
        }
        ts
    }

    /// The ts a new message at `now` gets: after every ts before.
    fn next_ts(&self, now: u64) -> u64 {
        now.max(self.max_ts + 1)
    }

    fn insert_top(&mut self, msg: Message) {
        self.max_ts = self.max_ts.max(msg.ts);
        self.top.insert(msg.ts, msg);
    }

    fn insert_reply(&mut self, parent: u64, msg: Message) {
        self.max_ts = self.max_ts.max(msg.ts);
        self.reply_parent.insert(msg.ts, parent);
        self.replies.entry(parent).or_default().insert(msg.ts, msg);
    }

    /// The live replies of a parent, oldest first.
    pub(crate) fn thread(&self, parent: u64) -> impl Iterator<Item = &Message> {
        self.replies
            .get(&parent)
            .into_iter()
            .flat_map(|r| r.values())
    }

    fn reply_count(&self, parent: u64) -> usize {
        self.replies.get(&parent).map_or(0, BTreeMap::len)
    }

    fn message_mut(&mut self, ts: u64) -> Option<&mut Message> {
        if let Some(parent) = self.reply_parent.get(&ts).copied() {
            return self.replies.get_mut(&parent).and_then(|r| r.get_mut(&ts));
        }
        self.top.get_mut(&ts).filter(|m| !m.tombstone)
    }

    /// Whether `user` may read it (listed, history), ignoring scopes.
    pub(crate) fn visible_to(&self, user: &str) -> bool {
        !self.removed && (self.kind == ConversationKind::Public || self.members.contains(user))
    }
}

/// The workspace.
pub(crate) struct Workspace {
    pub(crate) team_id: String,
    pub(crate) team_name: String,
    pub(crate) domain: String,
    pub(crate) installer: String,
    pub(crate) users: BTreeMap<String, User>,
    pub(crate) conversations: BTreeMap<String, Conversation>,
    /// Conversation ids, busiest first (for deliveries).
    pub(crate) busy: Vec<String>,
    rng: StdRng,
}

const FIRST_NAMES: [&str; 24] = [
    "Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Alan", "Radia",
    "Edsger", "Hedy", "Donald", "Karen", "Niklaus", "Sophie", "Tim", "Jean", "Guido", "Anita",
    "Zoë", "José", "Øyvind", "美咲",
];
const LAST_NAMES: [&str; 12] = [
    "Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen",
    "Turing", "Perlman", "Dijkstra", "Lamarr",
];
const CHANNEL_WORDS: [&str; 20] = [
    "random",
    "eng",
    "design",
    "ops",
    "sales",
    "support",
    "marketing",
    "backend",
    "frontend",
    "incidents",
    "hiring",
    "product",
    "data",
    "infra",
    "mobile",
    "releases",
    "qa",
    "legal",
    "social",
    "announcements",
];
const WORDS: [&str; 32] = [
    "deploy",
    "the",
    "review",
    "is",
    "ready",
    "for",
    "a",
    "look",
    "we",
    "should",
    "ship",
    "tomorrow",
    "meeting",
    "notes",
    "are",
    "in",
    "the",
    "doc",
    "thanks",
    "agreed",
    "café",
    "naïve",
    "ünïcödé",
    "🚀",
    "let's",
    "sync",
    "later",
    "LGTM",
    "blocked",
    "on",
    "CI",
    "again",
];
const EMOJI: [&str; 8] = [
    "thumbsup",
    "tada",
    "eyes",
    "heart",
    "white_check_mark",
    "joy",
    "rocket",
    "pray",
];
const FILE_KINDS: [(&str, &str, &str); 5] = [
    ("png", "image/png", "screenshot"),
    ("pdf", "application/pdf", "report"),
    ("txt", "text/plain", "notes"),
    ("csv", "text/csv", "export"),
    ("zip", "application/zip", "logs"),
];

impl Workspace {
    /// An empty workspace with its installer.
    fn empty(rng: &mut StdRng) -> Workspace {
        let team_id = format!("T0{}", alnum(rng, 8));
        let mut ws = Workspace {
            team_id,
            team_name: "Tributary Fake".to_owned(),
            domain: "tributary-fake".to_owned(),
            installer: String::new(),
            users: BTreeMap::new(),
            conversations: BTreeMap::new(),
            busy: Vec::new(),
            rng: rng.clone(),
        };
        let installer = ws.insert_user("tester", "Test User", "Test User");
        ws.installer = installer;
        ws
    }

    /// The workspace `config` asks for, generated from `rng` with `now` (micros) as
    /// the present.
    pub(crate) fn generate(config: &SlackConfig, rng: &mut StdRng, now: u64) -> Workspace {
        let mut ws = Workspace::empty(rng);
        for i in 1..config.users.max(1) {
            let first = FIRST_NAMES[i % FIRST_NAMES.len()];
            let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
            let real = format!("{first} {last}");
            let name = format!("{}.{}{}", first.to_lowercase(), last.to_lowercase(), i);
            ws.insert_user(&name, &real, first);
        }
        let user_ids: Vec<String> = ws.users.keys().cloned().collect();
        let others: Vec<String> = user_ids
            .iter()
            .filter(|u| **u != ws.installer)
            .cloned()
            .collect();
        let channels = if config.messages > 0 {
            config.channels.max(1)
        } else {
            config.channels
        };
        let installer = ws.installer.clone();
        let mut readable = Vec::new();
        for i in 0..channels {
            let roll: f64 = rng.random();
            let kind = if i == 0 || others.is_empty() || roll < 0.55 {
                ConversationKind::Public
            } else if roll < 0.72 {
                ConversationKind::Private
            } else if roll < 0.88 {
                ConversationKind::Im
            } else {
                ConversationKind::Mpim
            };
            let member = i == 0
                || match kind {
                    ConversationKind::Public => rng.random_bool(0.85),
                    ConversationKind::Private => rng.random_bool(0.7),
                    ConversationKind::Mpim => rng.random_bool(0.85),
                    ConversationKind::Im => true,
                };
            let mut members = BTreeSet::new();
            if member {
                members.insert(installer.clone());
            }
            let mut im_user = None;
            let name = match kind {
                ConversationKind::Im => {
                    let other = others[i % others.len()].clone();
                    members.insert(other.clone());
                    im_user = Some(other.clone());
                    other
                }
                ConversationKind::Mpim => {
                    let mut picked: Vec<String> = others.clone();
                    picked.shuffle(rng);
                    picked.truncate(rng.random_range(2..=3usize).min(picked.len()));
                    let mut names = vec![ws.users[&installer].name.clone()];
                    for u in &picked {
                        members.insert(u.clone());
                        names.push(ws.users[u].name.clone());
                    }
                    format!("mpdm-{}-1", names.join("--"))
                }
                _ => {
                    let count = rng.random_range(1..=others.len().clamp(1, 30));
                    let mut picked: Vec<String> = others.clone();
                    picked.shuffle(rng);
                    members.extend(picked.into_iter().take(count));
                    if i == 0 {
                        members.extend(user_ids.iter().cloned());
                        "general".to_owned()
                    } else {
                        format!(
                            "{}-{i}",
                            CHANNEL_WORDS[rng.random_range(0..CHANNEL_WORDS.len())]
                        )
                    }
                }
            };
            let created = now - 90 * DAY - rng.random_range(0..300 * DAY);
            let id = ws.insert_conversation(kind, &name, created, members, im_user);
            if member {
                readable.push(id);
            } else {
                // A few messages nobody syncing can read.
                for _ in 0..rng.random_range(0..=3) {
                    let ts = now - rng.random_range(HOUR..90 * DAY);
                    ws.generated_top(&id, ts, now, rng);
                }
            }
        }
        readable.shuffle(rng);
        ws.busy = readable.clone();
        if readable.is_empty() {
            return ws;
        }
        // Zipf-like weights: a few busy conversations, many quiet ones.
        let weights: Vec<f64> = (0..readable.len())
            .map(|rank| 1.0 / ((rank + 1) as f64).powf(1.1))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut acc = 0.0;
        for w in &weights {
            acc += w / total;
            cumulative.push(acc);
        }
        let mut counts = vec![0usize; readable.len()];
        for _ in 0..config.messages {
            let x: f64 = rng.random();
            let at = cumulative
                .partition_point(|c| *c < x)
                .min(readable.len() - 1);
            counts[at] += 1;
        }
        let busiest = 3.min(readable.len());
        let mut parents: Vec<(String, u64)> = Vec::with_capacity(config.messages);
        for (rank, (id, count)) in readable.iter().zip(&counts).enumerate() {
            let recent = if rank < busiest { count / 5 } else { 0 };
            let mut times: Vec<u64> = (0..*count)
                .map(|k| {
                    if k < recent {
                        now - rng.random_range(MICROS..6 * HOUR)
                    } else {
                        now - rng.random_range(6 * HOUR..90 * DAY)
                    }
                })
                .collect();
            times.sort_unstable();
            for t in times {
                let ts = ws.generated_top(id, t, now, rng);
                parents.push((id.clone(), ts));
            }
        }
        if config.replies > 0 && !parents.is_empty() {
            let threads = (config.replies / 3).clamp(1, parents.len());
            parents.shuffle(rng);
            parents.truncate(threads);
            for _ in 0..config.replies {
                let (id, parent) = parents[rng.random_range(0..parents.len())].clone();
                ws.generated_reply(&id, parent, now, rng);
            }
        }
        ws
    }

    fn insert_user(&mut self, name: &str, real_name: &str, display_name: &str) -> String {
        let id = loop {
            let id = format!("U0{}", alnum(&mut self.rng, 9));
            if !self.users.contains_key(&id) {
                break id;
            }
        };
        self.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                name: name.to_owned(),
                real_name: real_name.to_owned(),
                display_name: display_name.to_owned(),
            },
        );
        id
    }

    fn insert_conversation(
        &mut self,
        kind: ConversationKind,
        name: &str,
        created: u64,
        members: BTreeSet<String>,
        im_user: Option<String>,
    ) -> String {
        let prefix = match kind {
            ConversationKind::Public => 'C',
            ConversationKind::Private | ConversationKind::Mpim => 'G',
            ConversationKind::Im => 'D',
        };
        let id = loop {
            let id = format!("{prefix}0{}", alnum(&mut self.rng, 9));
            if !self.conversations.contains_key(&id) {
                break id;
            }
        };
        let creator = members
            .iter()
            .next()
            .cloned()
            .unwrap_or_else(|| self.installer.clone());
        self.conversations.insert(
            id.clone(),
            Conversation {
                id: id.clone(),
                name: name.to_owned(),
                kind,
                created: created / MICROS,
                updated: created / 1000,
                archived: false,
                removed: false,
                members,
                im_user,
                creator,
                top: BTreeMap::new(),
                replies: BTreeMap::new(),
                reply_parent: HashMap::new(),
                max_ts: created,
            },
        );
        id
    }

    fn random_text(rng: &mut StdRng, mention: Option<&str>) -> String {
        let n = rng.random_range(3..14);
        let mut words: Vec<String> = (0..n)
            .map(|_| WORDS[rng.random_range(0..WORDS.len())].to_owned())
            .collect();
        if let Some(user) = mention {
            words.insert(0, format!("<@{user}>"));
        }
        let mut text = words.join(" ");
        if let Some(first) = text.get(0..1) {
            let upper = first.to_uppercase();
            text.replace_range(0..1, &upper);
        }
        text
    }

    /// A generated message with its decorations, from the members of `conv`.
    fn generated_message(&mut self, conv: &str, ts: u64, now: u64, rng: &mut StdRng) -> Message {
        let members: Vec<String> = self
            .conversations
            .get(conv)
            .map(|c| c.members.iter().cloned().collect())
            .unwrap_or_default();
        let pick = |rng: &mut StdRng| -> String {
            if members.is_empty() {
                SLACKBOT.to_owned()
            } else {
                members[rng.random_range(0..members.len())].clone()
            }
        };
        let user = pick(rng);
        let mention = rng.random_bool(0.1).then(|| pick(rng));
        let mut msg = Message::new(ts, &user, &Workspace::random_text(rng, mention.as_deref()));
        if rng.random_bool(0.06) {
            let at = (ts + rng.random_range(MICROS..2 * DAY))
                .min(now)
                .max(ts + 1);
            msg.edited = Some((user.clone(), at));
        }
        if rng.random_bool(0.1) {
            for _ in 0..rng.random_range(1..=2) {
                let name = EMOJI[rng.random_range(0..EMOJI.len())].to_owned();
                let reactor = pick(rng);
                add_reaction(&mut msg, &name, &reactor);
            }
        }
        if rng.random_bool(0.05) {
            let (ext, mime, stem) = FILE_KINDS[rng.random_range(0..FILE_KINDS.len())];
            msg.files.push(File {
                id: format!("F0{}", alnum(rng, 9)),
                name: format!("{stem}-{}.{ext}", rng.random_range(1..1000)),
                title: stem.to_owned(),
                mimetype: mime,
                filetype: ext,
                size: rng.random_range(100..5_000_000),
                created: ts / MICROS,
            });
        }
        msg
    }

    fn generated_top(&mut self, conv: &str, ts: u64, now: u64, rng: &mut StdRng) -> u64 {
        let Some(free) = self.conversations.get(conv).map(|c| c.free_ts(ts)) else {
            return ts;
        };
        let msg = self.generated_message(conv, free, now, rng);
        if let Some(c) = self.conversations.get_mut(conv) {
            c.insert_top(msg);
        }
        free
    }

    fn generated_reply(&mut self, conv: &str, parent: u64, now: u64, rng: &mut StdRng) {
        let Some(c) = self.conversations.get(conv) else {
            return;
        };
        let span = now.saturating_sub(parent).clamp(2, 2 * DAY);
        let ts = c.free_ts(parent + rng.random_range(1..span));
        let mut msg = self.generated_message(conv, ts, now, rng);
        if let Some((_, edited)) = msg.edited.as_mut() {
            *edited = (*edited).max(ts + 1);
        }
        if let Some(c) = self.conversations.get_mut(conv) {
            c.insert_reply(parent, msg);
        }
    }

    /// A delivery: a generated message in one of the busiest readable conversations.
    pub(crate) fn generate_message(&mut self, now: u64) -> Option<(String, String)> {
        let candidates: Vec<String> = self
            .busy
            .iter()
            .filter(|id| {
                self.conversations.get(*id).is_some_and(|c| {
                    !c.removed && !c.archived && c.members.contains(&self.installer)
                })
            })
            .take(3)
            .cloned()
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let mut rng = self.rng.clone();
        let id = candidates[rng.random_range(0..candidates.len())].clone();
        let ts = self.conversations.get(&id)?.next_ts(now);
        let mut msg = self.generated_message(&id, ts, now, &mut rng);
        msg.edited = None;
        self.rng = rng;
        self.conversations.get_mut(&id)?.insert_top(msg);
        Some((id, fmt_ts(ts)))
    }

    pub(crate) fn add_user(&mut self, display_name: &str) -> String {
        let name = display_name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '.' })
            .collect::<String>();
        self.insert_user(&name, display_name, display_name)
    }

    pub(crate) fn create_conversation(&mut self, kind: ConversationKind, name: &str) -> String {
        let now = crate::now_micros();
        let installer = self.installer.clone();
        let mut members = BTreeSet::from([installer.clone()]);
        let mut im_user = None;
        if kind == ConversationKind::Im {
            let other = if self.users.contains_key(name) {
                name.to_owned()
            } else {
                self.add_user(name)
            };
            members.insert(other.clone());
            im_user = Some(other);
        }
        let id = self.insert_conversation(kind, name, now, members, im_user);
        self.busy.push(id.clone());
        id
    }

    fn conversation_mut(&mut self, id: &str) -> Result<&mut Conversation, SlackFakeError> {
        self.conversations
            .get_mut(id)
            .filter(|c| !c.removed)
            .ok_or_else(|| SlackFakeError::ChannelNotFound(id.to_owned()))
    }

    pub(crate) fn set_member(&mut self, id: &str, member: bool) -> Result<(), SlackFakeError> {
        let installer = self.installer.clone();
        let c = self.conversation_mut(id)?;
        if member {
            c.members.insert(installer);
        } else {
            c.members.remove(&installer);
        }
        Ok(())
    }

    pub(crate) fn post(
        &mut self,
        id: &str,
        thread: Option<u64>,
        user: &str,
        text: &str,
        now: u64,
    ) -> Result<u64, SlackFakeError> {
        if !self.users.contains_key(user) {
            return Err(SlackFakeError::UserNotFound(user.to_owned()));
        }
        let c = self.conversation_mut(id)?;
        if c.archived {
            return Err(SlackFakeError::Archived(id.to_owned()));
        }
        let ts = c.next_ts(now);
        match thread {
            None => c.insert_top(Message::new(ts, user, text)),
            Some(t) => {
                let parent = c.reply_parent.get(&t).copied().unwrap_or(t);
                if !c.top.contains_key(&parent) {
                    return Err(SlackFakeError::MessageNotFound(fmt_ts(t)));
                }
                c.insert_reply(parent, Message::new(ts, user, text));
            }
        }
        c.updated = now / 1000;
        Ok(ts)
    }

    pub(crate) fn edit(
        &mut self,
        id: &str,
        ts: u64,
        text: &str,
        now: u64,
    ) -> Result<(), SlackFakeError> {
        let c = self.conversation_mut(id)?;
        let msg = c
            .message_mut(ts)
            .ok_or_else(|| SlackFakeError::MessageNotFound(fmt_ts(ts)))?;
        let at = now
            .max(ts + 1)
            .max(msg.edited.as_ref().map_or(0, |e| e.1 + 1));
        msg.text = text.to_owned();
        msg.edited = Some((msg.user.clone(), at));
        Ok(())
    }

    pub(crate) fn delete(&mut self, id: &str, ts: u64) -> Result<(), SlackFakeError> {
        let c = self.conversation_mut(id)?;
        if let Some(parent) = c.reply_parent.remove(&ts) {
            if let Some(thread) = c.replies.get_mut(&parent) {
                thread.remove(&ts);
                if thread.is_empty() {
                    c.replies.remove(&parent);
                    if c.top.get(&parent).is_some_and(|m| m.tombstone) {
                        c.top.remove(&parent);
                    }
                }
            }
            return Ok(());
        }
        let replies = c.reply_count(ts);
        match c.top.get_mut(&ts) {
            Some(msg) if !msg.tombstone => {
                if replies > 0 {
                    msg.tombstone = true;
                } else {
                    c.top.remove(&ts);
                }
                Ok(())
            }
            _ => Err(SlackFakeError::MessageNotFound(fmt_ts(ts))),
        }
    }

    pub(crate) fn react(
        &mut self,
        id: &str,
        ts: u64,
        name: &str,
        user: &str,
    ) -> Result<(), SlackFakeError> {
        if !self.users.contains_key(user) {
            return Err(SlackFakeError::UserNotFound(user.to_owned()));
        }
        let c = self.conversation_mut(id)?;
        let msg = c
            .message_mut(ts)
            .ok_or_else(|| SlackFakeError::MessageNotFound(fmt_ts(ts)))?;
        add_reaction(msg, name, user);
        Ok(())
    }

    pub(crate) fn archive(&mut self, id: &str) -> Result<(), SlackFakeError> {
        let c = self.conversation_mut(id)?;
        c.archived = true;
        c.updated = crate::now_micros() / 1000;
        Ok(())
    }

    pub(crate) fn remove(&mut self, id: &str) -> Result<(), SlackFakeError> {
        self.conversation_mut(id)?.removed = true;
        Ok(())
    }

    pub(crate) fn snapshot(&self) -> Vec<MessageTruth> {
        let mut out = Vec::new();
        for c in self.conversations.values() {
            if c.removed || !c.members.contains(&self.installer) {
                continue;
            }
            for msg in c.top.values() {
                let replies: Vec<&Message> = c.thread(msg.ts).collect();
                if !msg.tombstone {
                    let latest = replies.last().map(|r| fmt_ts(r.ts));
                    out.push(truth(
                        c,
                        msg,
                        (!replies.is_empty()).then(|| fmt_ts(msg.ts)),
                        replies.len(),
                        latest,
                        false,
                    ));
                }
                for r in replies {
                    out.push(truth(c, r, Some(fmt_ts(msg.ts)), 0, None, true));
                }
            }
        }
        out
    }

    pub(crate) fn conversation_truths(&self) -> Vec<ConversationTruth> {
        self.conversations
            .values()
            .map(|c| ConversationTruth {
                id: c.id.clone(),
                name: c.name.clone(),
                kind: c.kind,
                archived: c.archived,
                is_member: c.members.contains(&self.installer),
                removed: c.removed,
            })
            .collect()
    }

    /// Slack's conversation object, as `user` sees it.
    pub(crate) fn conversation_json(&self, c: &Conversation, user: &str) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), json!(c.id));
        let im = c.kind == ConversationKind::Im;
        if !im {
            o.insert("name".into(), json!(c.name));
            o.insert("name_normalized".into(), json!(c.name));
        }
        o.insert("created".into(), json!(c.created));
        o.insert("updated".into(), json!(c.updated));
        o.insert("is_archived".into(), json!(c.archived));
        o.insert(
            "is_channel".into(),
            json!(c.kind == ConversationKind::Public),
        );
        o.insert(
            "is_group".into(),
            json!(c.kind == ConversationKind::Private),
        );
        o.insert("is_im".into(), json!(im));
        o.insert("is_mpim".into(), json!(c.kind == ConversationKind::Mpim));
        o.insert(
            "is_private".into(),
            json!(c.kind != ConversationKind::Public),
        );
        o.insert("is_member".into(), json!(c.members.contains(user)));
        o.insert("is_shared".into(), json!(false));
        o.insert("is_ext_shared".into(), json!(false));
        o.insert("is_org_shared".into(), json!(false));
        o.insert("context_team_id".into(), json!(self.team_id));
        if im {
            o.insert("user".into(), json!(c.im_user));
            o.insert("is_user_deleted".into(), json!(false));
            o.insert("priority".into(), json!(0));
        } else {
            o.insert("is_general".into(), json!(c.name == "general"));
            o.insert("creator".into(), json!(c.creator));
            o.insert("num_members".into(), json!(c.members.len()));
            o.insert(
                "topic".into(),
                json!({"value": "", "creator": "", "last_set": 0}),
            );
            o.insert(
                "purpose".into(),
                json!({"value": "", "creator": "", "last_set": 0}),
            );
            o.insert("previous_names".into(), json!([]));
        }
        Value::Object(o)
    }

    /// Slack's user object.
    pub(crate) fn user_json(&self, u: &User) -> Value {
        json!({
            "id": u.id,
            "team_id": self.team_id,
            "name": u.name,
            "deleted": false,
            "real_name": u.real_name,
            "tz": "Europe/London",
            "tz_label": "British Summer Time",
            "tz_offset": 3600,
            "is_admin": u.id == self.installer,
            "is_owner": u.id == self.installer,
            "is_bot": false,
            "is_app_user": false,
            "updated": 1_700_000_000,
            "profile": {
                "display_name": u.display_name,
                "display_name_normalized": u.display_name,
                "real_name": u.real_name,
                "real_name_normalized": u.real_name,
                "team": self.team_id,
            },
        })
    }

    /// Slack's message object of a top-level message (or tombstone).
    pub(crate) fn top_json(&self, c: &Conversation, msg: &Message) -> Value {
        let mut o = if msg.tombstone {
            let mut o = Map::new();
            o.insert("type".into(), json!("message"));
            o.insert("subtype".into(), json!("tombstone"));
            o.insert("text".into(), json!("This message was deleted."));
            o.insert("user".into(), json!(SLACKBOT));
            o.insert("hidden".into(), json!(true));
            o.insert("ts".into(), json!(fmt_ts(msg.ts)));
            o
        } else {
            self.body_json(msg)
        };
        let replies: Vec<&Message> = c.thread(msg.ts).collect();
        if !replies.is_empty() {
            let mut users: Vec<&str> = Vec::new();
            for r in &replies {
                if !users.contains(&r.user.as_str()) {
                    users.push(&r.user);
                }
            }
            o.insert("thread_ts".into(), json!(fmt_ts(msg.ts)));
            o.insert("reply_count".into(), json!(replies.len()));
            o.insert("reply_users_count".into(), json!(users.len()));
            o.insert("reply_users".into(), json!(users));
            o.insert(
                "latest_reply".into(),
                json!(replies.last().map(|r| fmt_ts(r.ts))),
            );
            o.insert("is_locked".into(), json!(false));
            o.insert("subscribed".into(), json!(false));
        }
        Value::Object(o)
    }

    /// Slack's message object of a reply.
    pub(crate) fn reply_json(&self, c: &Conversation, parent: u64, msg: &Message) -> Value {
        let mut o = self.body_json(msg);
        o.insert("thread_ts".into(), json!(fmt_ts(parent)));
        if let Some(p) = c.top.get(&parent) {
            o.insert("parent_user_id".into(), json!(p.user));
        }
        Value::Object(o)
    }

    fn body_json(&self, msg: &Message) -> Map<String, Value> {
        let mut o = Map::new();
        o.insert("type".into(), json!("message"));
        o.insert("user".into(), json!(msg.user));
        o.insert("text".into(), json!(msg.text));
        o.insert("ts".into(), json!(fmt_ts(msg.ts)));
        o.insert("team".into(), json!(self.team_id));
        if let Some((user, ts)) = &msg.edited {
            o.insert("edited".into(), json!({"user": user, "ts": fmt_ts(*ts)}));
        }
        if !msg.reactions.is_empty() {
            let reactions: Vec<Value> = msg
                .reactions
                .iter()
                .map(|(name, users)| json!({"name": name, "users": users, "count": users.len()}))
                .collect();
            o.insert("reactions".into(), Value::Array(reactions));
        }
        if !msg.files.is_empty() {
            let files: Vec<Value> = msg
                .files
                .iter()
                .map(|f| {
                    json!({
                        "id": f.id,
                        "created": f.created,
                        "timestamp": f.created,
                        "name": f.name,
                        "title": f.title,
                        "mimetype": f.mimetype,
                        "filetype": f.filetype,
                        "user": msg.user,
                        "size": f.size,
                        "mode": "hosted",
                        "is_external": false,
                        "url_private": format!("https://files.slack.com/files-pri/{}-{}/{}", self.team_id, f.id, f.name),
                        "url_private_download": format!("https://files.slack.com/files-pri/{}-{}/download/{}", self.team_id, f.id, f.name),
                        "permalink": format!("https://{}.slack.com/files/{}/{}/{}", self.domain, msg.user, f.id, f.name),
                    })
                })
                .collect();
            o.insert("files".into(), Value::Array(files));
            o.insert("upload".into(), json!(false));
        }
        o
    }
}

fn add_reaction(msg: &mut Message, name: &str, user: &str) {
    match msg.reactions.iter_mut().find(|(n, _)| n == name) {
        Some((_, users)) => {
            if !users.iter().any(|u| u == user) {
                users.push(user.to_owned());
            }
        }
        None => msg.reactions.push((name.to_owned(), vec![user.to_owned()])),
    }
}

fn truth(
    c: &Conversation,
    msg: &Message,
    thread_ts: Option<String>,
    reply_count: usize,
    latest_reply: Option<String>,
    is_reply: bool,
) -> MessageTruth {
    MessageTruth {
        channel: c.id.clone(),
        ts: fmt_ts(msg.ts),
        thread_ts,
        user: msg.user.clone(),
        text: msg.text.clone(),
        edited_ts: msg.edited.as_ref().map(|e| fmt_ts(e.1)),
        reply_count: u32::try_from(reply_count).unwrap_or(u32::MAX),
        latest_reply,
        reactions: msg
            .reactions
            .iter()
            .map(|(n, u)| (n.clone(), u32::try_from(u.len()).unwrap_or(u32::MAX)))
            .collect(),
        file_names: msg.files.iter().map(|f| f.name.clone()).collect(),
        is_reply,
    }
}
