//! The mailbox: messages, labels, threads and history, with Gmail's rules.
//!
//! - Message ids are lowercase hex built from the `internalDate` and a sequence
//!   number, so they look like Gmail's and sort like them.
//! - `messages.list` order is newest first by `(internalDate, id)`; a page token is a
//!   position in that order (keyset), so a page boundary does not move when messages
//!   are inserted or deleted elsewhere.
//! - Every change (add, delete, label change) writes one history record and moves the
//!   mailbox `historyId` forward by a small random step: ids increase but are not
//!   contiguous, as Gmail's documentation warns.
//! - History is kept for the last `retention` records, or from the id given to
//!   [`Mailbox::expire_history_before`]; a `startHistoryId` before that is expired.
//! - A message joins the thread of the message its `In-Reply-To`/`References` name
//!   (or the `threadId` given on insert); otherwise it starts a thread whose id is its
//!   own id. Gmail also compares subjects; the fake does not.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{Hash as _, Hasher as _};
use std::ops::Bound;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};

use super::GmailFakeError;
use super::generator::{Generator, USER_LABELS};
use super::mime::snippet_of;

/// A set of labels, one bit per index into the mailbox's label table.
pub(crate) type LabelSet = u128;

/// The most labels one fake mailbox holds (the width of [`LabelSet`]).
const MAX_LABELS: usize = 128;

/// Gmail's system labels, in the order `labels.list` returns them.
const SYSTEM_LABELS: [&str; 14] = [
    "CHAT",
    "SENT",
    "INBOX",
    "IMPORTANT",
    "TRASH",
    "DRAFT",
    "SPAM",
    "CATEGORY_FORUMS",
    "CATEGORY_UPDATES",
    "CATEGORY_PERSONAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_SOCIAL",
    "STARRED",
    "UNREAD",
];

const SPAM: usize = 6;
const TRASH: usize = 4;

fn bit(index: usize) -> LabelSet {
    1u128 << index
}

/// A label in the table.
#[derive(Debug, Clone)]
struct LabelDef {
    id: String,
    name: String,
    system: bool,
}

/// Where a message's RFC 822 source lives.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// Inserted through the API or a hook: the bytes themselves.
    Raw(Arc<[u8]>),
    /// Written by a generator: the bytes are written again on demand.
    Generated { batch: usize, index: u64 },
}

/// A source ready to be materialized outside the mailbox lock.
#[derive(Debug, Clone)]
pub(crate) enum SourceRef {
    /// The stored bytes.
    Raw(Arc<[u8]>),
    /// A generator and the index to write.
    Generated(Arc<Generator>, u64),
}

impl SourceRef {
    /// The RFC 822 bytes.
    pub(crate) fn bytes(&self) -> Arc<[u8]> {
        match self {
            SourceRef::Raw(bytes) => Arc::clone(bytes),
            SourceRef::Generated(generator, index) => generator.message(*index).raw.into(),
        }
    }
}

/// One message as the mailbox keeps it.
#[derive(Debug, Clone)]
pub(crate) struct StoredMessage {
    pub(crate) id: u64,
    pub(crate) thread: u64,
    pub(crate) internal_date: i64,
    pub(crate) history_id: u64,
    pub(crate) labels: LabelSet,
    pub(crate) snippet: Box<str>,
    pub(crate) subject: Box<str>,
    pub(crate) source: Source,
}

/// What is needed to add a message.
#[derive(Debug, Clone)]
pub(crate) struct NewMessage {
    pub(crate) source: Source,
    pub(crate) internal_date: i64,
    pub(crate) labels: LabelSet,
    pub(crate) subject: String,
    pub(crate) snippet: String,
    pub(crate) message_id: Option<String>,
    pub(crate) parent_ids: Vec<String>,
    pub(crate) thread: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Added,
    Deleted,
    Labels { added: LabelSet, removed: LabelSet },
}

#[derive(Debug, Clone)]
struct HistoryRecord {
    id: u64,
    message: u64,
    thread: u64,
    labels: LabelSet,
    change: Change,
}

/// Which history record kinds a `history.list` call wants (`historyTypes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistoryTypes {
    pub(crate) added: bool,
    pub(crate) deleted: bool,
    pub(crate) labels_added: bool,
    pub(crate) labels_removed: bool,
}

impl HistoryTypes {
    /// Every kind (what an absent `historyTypes` means).
    pub(crate) const ALL: HistoryTypes = HistoryTypes {
        added: true,
        deleted: true,
        labels_added: true,
        labels_removed: true,
    };
}

/// A `messages.list` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListFilter {
    pub(crate) required: LabelSet,
    pub(crate) include_spam_trash: bool,
}

impl ListFilter {
    fn matches(&self, labels: LabelSet) -> bool {
        if labels & self.required != self.required {
            return false;
        }
        // SPAM and TRASH hide a message unless asked for, by the flag or by name.
        let hidden = (bit(SPAM) | bit(TRASH)) & !self.required;
        self.include_spam_trash || labels & hidden == 0
    }
}

/// One page of history.
#[derive(Debug)]
pub(crate) struct HistoryPage {
    pub(crate) records: Vec<Value>,
    /// The id of the last record scanned, when more records follow.
    pub(crate) next_after: Option<u64>,
}

/// One page of `messages.list`.
#[derive(Debug)]
pub(crate) struct MessagePage {
    /// `(id, threadId)`, newest first.
    pub(crate) items: Vec<(u64, u64)>,
    /// The keyset position of the last item, when more messages match.
    pub(crate) next_after: Option<(i64, u64)>,
}

/// A `startHistoryId` (or a page position) older than the retained history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistoryExpired;

/// The truth about one message, for convergence checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTruth {
    /// The thread id.
    pub thread_id: String,
    /// Label ids, in the mailbox's label order.
    pub label_ids: Vec<String>,
    /// The decoded subject.
    pub subject: String,
    /// `internalDate`, epoch milliseconds.
    pub internal_date: i64,
    /// The id of the last history record that changed the message.
    pub history_id: u64,
}

/// The mailbox.
#[derive(Debug)]
pub(crate) struct Mailbox {
    email: String,
    labels: Vec<LabelDef>,
    label_counts: Vec<u32>,
    messages: HashMap<u64, StoredMessage>,
    order: BTreeSet<(i64, u64)>,
    threads: HashMap<u64, u32>,
    message_id_threads: HashMap<u64, u64>,
    history: VecDeque<HistoryRecord>,
    history_id: u64,
    history_floor: u64,
    retention: usize,
    batches: Vec<Arc<Generator>>,
    next_sequence: u64,
    rng: StdRng,
}

impl Mailbox {
    /// An empty mailbox with the system labels and [`USER_LABELS`].
    pub(crate) fn new(email: &str, seed: u64, retention: usize) -> Mailbox {
        let mut labels: Vec<LabelDef> = SYSTEM_LABELS
            .iter()
            .map(|id| LabelDef {
                id: (*id).to_owned(),
                name: (*id).to_owned(),
                system: true,
            })
            .collect();
        labels.extend(USER_LABELS.iter().map(|(id, name)| LabelDef {
            id: (*id).to_owned(),
            name: (*name).to_owned(),
            system: false,
        }));
        let mut rng = StdRng::seed_from_u64(seed ^ 0x006d_6169_6c62_6f78);
        let history_id = rng.random_range(1_000..100_000);
        Mailbox {
            email: email.to_owned(),
            label_counts: vec![0; labels.len()],
            labels,
            messages: HashMap::new(),
            order: BTreeSet::new(),
            threads: HashMap::new(),
            message_id_threads: HashMap::new(),
            history: VecDeque::new(),
            history_id,
            history_floor: history_id,
            retention: retention.max(1),
            batches: Vec::new(),
            next_sequence: 0,
            rng,
        }
    }

    /// The current `historyId`.
    pub(crate) fn history_id(&self) -> u64 {
        self.history_id
    }

    /// `users.getProfile`.
    pub(crate) fn profile(&self) -> Value {
        json!({
            "emailAddress": self.email,
            "messagesTotal": self.messages.len(),
            "threadsTotal": self.threads.len(),
            "historyId": self.history_id.to_string(),
        })
    }

    /// `users.labels.list`.
    pub(crate) fn labels_json(&self) -> Value {
        let labels: Vec<Value> = self
            .labels
            .iter()
            .map(|label| {
                if label.system {
                    json!({"id": label.id, "name": label.name, "type": "system"})
                } else {
                    json!({
                        "id": label.id,
                        "name": label.name,
                        "messageListVisibility": "show",
                        "labelListVisibility": "labelShow",
                        "type": "user",
                    })
                }
            })
            .collect();
        json!({ "labels": labels })
    }

    /// Adds a user label and returns its id (`Label_N`).
    pub(crate) fn create_label(&mut self, name: &str) -> Result<String, GmailFakeError> {
        if let Some(existing) = self.labels.iter().find(|l| l.name == name) {
            return Ok(existing.id.clone());
        }
        if self.labels.len() >= MAX_LABELS {
            return Err(GmailFakeError::TooManyLabels);
        }
        let number = self.labels.iter().filter(|l| !l.system).count() + 1;
        let id = format!("Label_{number}");
        self.labels.push(LabelDef {
            id: id.clone(),
            name: name.to_owned(),
            system: false,
        });
        self.label_counts.push(0);
        Ok(id)
    }

    /// The set of the named label ids; an unknown id is an error.
    pub(crate) fn label_set<S: AsRef<str>>(&self, ids: &[S]) -> Result<LabelSet, GmailFakeError> {
        let mut set = 0;
        for id in ids {
            let id = id.as_ref();
            let index = self
                .labels
                .iter()
                .position(|l| l.id == id)
                .ok_or_else(|| GmailFakeError::UnknownLabel(id.to_owned()))?;
            set |= bit(index);
        }
        Ok(set)
    }

    /// The label ids in a set, in table order.
    pub(crate) fn label_ids(&self, set: LabelSet) -> Vec<String> {
        self.labels
            .iter()
            .enumerate()
            .filter(|(index, _)| set & bit(*index) != 0)
            .map(|(_, label)| label.id.clone())
            .collect()
    }

    /// `{id, threadId, labelIds}` of a message, `labelIds` left out when empty as
    /// Google's JSON does for empty lists.
    pub(crate) fn reference_json(&self, id: u64, thread: u64, labels: LabelSet) -> Value {
        let mut value = json!({"id": format_id(id), "threadId": format_id(thread)});
        let ids = self.label_ids(labels);
        if !ids.is_empty() {
            value["labelIds"] = json!(ids);
        }
        value
    }

    /// A message.
    pub(crate) fn get(&self, id: u64) -> Option<&StoredMessage> {
        self.messages.get(&id)
    }

    /// Where a message's source is.
    pub(crate) fn source(&self, message: &StoredMessage) -> SourceRef {
        match &message.source {
            Source::Raw(bytes) => SourceRef::Raw(Arc::clone(bytes)),
            Source::Generated { batch, index } => match self.batches.get(*batch) {
                Some(generator) => SourceRef::Generated(Arc::clone(generator), *index),
                None => SourceRef::Raw(Arc::from(&b""[..])),
            },
        }
    }

    fn bump_history(&mut self) -> u64 {
        self.history_id += 1 + self.rng.random_range(0..3);
        self.history_id
    }

    fn record(&mut self, message: &StoredMessage, change: Change) {
        self.history.push_back(HistoryRecord {
            id: message.history_id,
            message: message.id,
            thread: message.thread,
            labels: message.labels,
            change,
        });
        while self.history.len() > self.retention {
            if let Some(dropped) = self.history.pop_front() {
                self.history_floor = self.history_floor.max(dropped.id);
            }
        }
    }

    fn count_labels(&mut self, labels: LabelSet, delta: i64) {
        for (index, count) in self.label_counts.iter_mut().enumerate() {
            if labels & bit(index) != 0 {
                *count = u32::try_from(i64::from(*count) + delta).unwrap_or(0);
            }
        }
    }

    fn new_id(&mut self, internal_date: i64) -> u64 {
        loop {
            let millis = u64::try_from(internal_date.max(0)).unwrap_or(0);
            let id = (millis << 20) | (self.next_sequence & 0xf_ffff);
            self.next_sequence += 1;
            if !self.messages.contains_key(&id) {
                return id;
            }
        }
    }

    /// Adds a message; with `record_history` it also writes a `messagesAdded` record.
    pub(crate) fn insert(&mut self, new: NewMessage, record_history: bool) -> u64 {
        let id = self.new_id(new.internal_date);
        let thread = new
            .thread
            .filter(|t| self.threads.contains_key(t))
            .or_else(|| {
                new.parent_ids.iter().find_map(|parent| {
                    self.message_id_threads
                        .get(&hash_message_id(parent))
                        .copied()
                        .filter(|t| self.threads.contains_key(t))
                })
            })
            .unwrap_or(id);
        if let Some(message_id) = &new.message_id {
            self.message_id_threads
                .insert(hash_message_id(message_id), thread);
        }
        let history_id = if record_history {
            self.bump_history()
        } else {
            self.history_id
        };
        let message = StoredMessage {
            id,
            thread,
            internal_date: new.internal_date,
            history_id,
            labels: new.labels,
            snippet: new.snippet.into(),
            subject: new.subject.into(),
            source: new.source,
        };
        *self.threads.entry(thread).or_insert(0) += 1;
        self.count_labels(message.labels, 1);
        self.order.insert((message.internal_date, id));
        if record_history {
            self.record(&message, Change::Added);
        }
        self.messages.insert(id, message);
        id
    }

    /// Adds `count` messages written by `generator`. Replies join their parent's
    /// thread. Without `record_history` the messages predate the retained history, as
    /// the mail already in an account does.
    pub(crate) fn insert_generated(
        &mut self,
        generator: Generator,
        count: u64,
        record_history: bool,
    ) -> Vec<u64> {
        let generator = Arc::new(generator);
        let batch = self.batches.len();
        self.batches.push(Arc::clone(&generator));
        let mut ids: Vec<u64> = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        for index in 0..count {
            // Only the plan: sources are written when a client asks for them.
            let message = generator.plan(index);
            let thread = message
                .parent
                .and_then(|parent| ids.get(usize::try_from(parent).ok()?))
                .and_then(|parent_id| self.messages.get(parent_id))
                .map(|parent| parent.thread);
            let labels = self.label_set(&message.label_ids).unwrap_or(0);
            let id = self.insert(
                NewMessage {
                    source: Source::Generated { batch, index },
                    internal_date: message.internal_date_ms,
                    labels,
                    subject: message.subject,
                    snippet: snippet_of(&message.text),
                    message_id: Some(message.message_id),
                    parent_ids: Vec::new(),
                    thread,
                },
                record_history,
            );
            ids.push(id);
        }
        ids
    }

    /// Deletes a message for good (`messages.delete`).
    pub(crate) fn delete(&mut self, id: u64) -> Result<(), GmailFakeError> {
        let Some(mut message) = self.messages.remove(&id) else {
            return Err(GmailFakeError::NotFound(format_id(id)));
        };
        self.order.remove(&(message.internal_date, id));
        if let Some(count) = self.threads.get_mut(&message.thread) {
            *count -= 1;
            if *count == 0 {
                self.threads.remove(&message.thread);
            }
        }
        self.count_labels(message.labels, -1);
        message.history_id = self.bump_history();
        self.record(&message, Change::Deleted);
        Ok(())
    }

    /// Adds and removes labels (`messages.modify`, `trash`, `untrash`). A change that
    /// changes nothing writes no history.
    pub(crate) fn modify(
        &mut self,
        id: u64,
        add: LabelSet,
        remove: LabelSet,
    ) -> Result<Value, GmailFakeError> {
        let Some(current) = self.messages.get(&id).map(|m| m.labels) else {
            return Err(GmailFakeError::NotFound(format_id(id)));
        };
        let labels = (current | add) & !remove;
        let added = labels & !current;
        let removed = current & !labels;
        if added != 0 || removed != 0 {
            let history_id = self.bump_history();
            self.count_labels(added, 1);
            self.count_labels(removed, -1);
            if let Some(message) = self.messages.get_mut(&id) {
                message.labels = labels;
                message.history_id = history_id;
            }
            if let Some(message) = self.messages.get(&id).cloned() {
                self.record(&message, Change::Labels { added, removed });
            }
        }
        let thread = self.messages.get(&id).map_or(id, |m| m.thread);
        Ok(self.reference_json(id, thread, labels))
    }

    /// `messages.trash`: adds `TRASH` (and drops `SPAM`).
    pub(crate) fn trash(&mut self, id: u64) -> Result<Value, GmailFakeError> {
        self.modify(id, bit(TRASH), bit(SPAM))
    }

    /// `messages.untrash`: removes `TRASH`.
    pub(crate) fn untrash(&mut self, id: u64) -> Result<Value, GmailFakeError> {
        self.modify(id, 0, bit(TRASH))
    }

    /// One page of `messages.list`: messages newest first after the keyset position
    /// `after`, and the position to continue from when more match.
    pub(crate) fn list(
        &self,
        filter: ListFilter,
        max: usize,
        after: Option<(i64, u64)>,
    ) -> MessagePage {
        let upper = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page = Vec::with_capacity(max.min(512));
        let mut last = None;
        for key in self.order.range((Bound::Unbounded, upper)).rev() {
            let Some(message) = self.messages.get(&key.1) else {
                continue;
            };
            if !filter.matches(message.labels) {
                continue;
            }
            if page.len() == max {
                return MessagePage {
                    items: page,
                    next_after: last,
                };
            }
            page.push((message.id, message.thread));
            last = Some(*key);
        }
        MessagePage {
            items: page,
            next_after: None,
        }
    }

    /// `resultSizeEstimate`: from per-label counts, like Gmail an estimate.
    pub(crate) fn estimate(&self, filter: ListFilter) -> usize {
        let count = |index: usize| self.label_counts.get(index).copied().unwrap_or(0) as usize;
        if filter.required == 0 {
            if filter.include_spam_trash {
                self.messages.len()
            } else {
                self.messages
                    .len()
                    .saturating_sub(count(SPAM) + count(TRASH))
            }
        } else {
            (0..self.labels.len())
                .filter(|index| filter.required & bit(*index) != 0)
                .map(count)
                .min()
                .unwrap_or(0)
        }
    }

    /// One page of `history.list`: records after `start` (and after `after`, the
    /// page position), of the wanted kinds, touching `label` when given.
    pub(crate) fn history(
        &self,
        start: u64,
        after: Option<u64>,
        types: HistoryTypes,
        label: Option<LabelSet>,
        max: usize,
    ) -> Result<HistoryPage, HistoryExpired> {
        let from = after.unwrap_or(start).max(start);
        if start < self.history_floor || from < self.history_floor {
            return Err(HistoryExpired);
        }
        let first = self.history.partition_point(|r| r.id <= from);
        let mut records = Vec::new();
        let mut last_id = None;
        for record in self.history.range(first..) {
            if let Some(label) = label {
                let touched = match record.change {
                    Change::Labels { added, removed } => added | removed,
                    _ => 0,
                };
                if (record.labels | touched) & label == 0 {
                    continue;
                }
            }
            let Some(value) = self.history_json(record, types) else {
                continue;
            };
            if records.len() == max {
                return Ok(HistoryPage {
                    records,
                    next_after: last_id,
                });
            }
            records.push(value);
            last_id = Some(record.id);
        }
        Ok(HistoryPage {
            records,
            next_after: None,
        })
    }

    fn history_json(&self, record: &HistoryRecord, types: HistoryTypes) -> Option<Value> {
        let message = self.reference_json(record.message, record.thread, record.labels);
        let mut value = json!({
            "id": record.id.to_string(),
            "messages": [{"id": format_id(record.message), "threadId": format_id(record.thread)}],
        });
        let mut any = false;
        match record.change {
            Change::Added if types.added => {
                value["messagesAdded"] = json!([{ "message": message }]);
                any = true;
            }
            Change::Deleted if types.deleted => {
                value["messagesDeleted"] = json!([{ "message": message }]);
                any = true;
            }
            Change::Labels { added, removed } => {
                if added != 0 && types.labels_added {
                    value["labelsAdded"] =
                        json!([{ "message": message, "labelIds": self.label_ids(added) }]);
                    any = true;
                }
                if removed != 0 && types.labels_removed {
                    value["labelsRemoved"] =
                        json!([{ "message": message, "labelIds": self.label_ids(removed) }]);
                    any = true;
                }
            }
            _ => {}
        }
        any.then_some(value)
    }

    /// Forgets history before `history_id`: a `startHistoryId` below it is expired.
    pub(crate) fn expire_history_before(&mut self, history_id: u64) {
        self.history_floor = self.history_floor.max(history_id);
        while self.history.front().is_some_and(|r| r.id <= history_id) {
            self.history.pop_front();
        }
    }

    /// Keeps only the last `records` history records from now on.
    pub(crate) fn set_retention(&mut self, records: usize) {
        self.retention = records.max(1);
        while self.history.len() > self.retention {
            if let Some(dropped) = self.history.pop_front() {
                self.history_floor = self.history_floor.max(dropped.id);
            }
        }
    }

    /// Every message, for convergence checks.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, MessageTruth> {
        self.messages
            .values()
            .map(|m| {
                (
                    format_id(m.id),
                    MessageTruth {
                        thread_id: format_id(m.thread),
                        label_ids: self.label_ids(m.labels),
                        subject: m.subject.to_string(),
                        internal_date: m.internal_date,
                        history_id: m.history_id,
                    },
                )
            })
            .collect()
    }

    /// The newest message's `internalDate`.
    pub(crate) fn newest_date(&self) -> Option<i64> {
        self.order.last().map(|(date, _)| *date)
    }

    /// Ids, newest first.
    pub(crate) fn ids_newest_first(&self) -> Vec<String> {
        self.order
            .iter()
            .rev()
            .map(|(_, id)| format_id(*id))
            .collect()
    }
}

/// A message or thread id as Gmail writes it.
pub(crate) fn format_id(id: u64) -> String {
    format!("{id:x}")
}

/// A message or thread id from a request; `None` when it cannot be one of ours.
pub(crate) fn parse_id(id: &str) -> Option<u64> {
    if id.is_empty() || id.len() > 16 {
        return None;
    }
    u64::from_str_radix(id, 16).ok()
}

fn hash_message_id(message_id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    message_id.trim().trim_matches(['<', '>']).hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_message(mailbox: &Mailbox, date: i64, labels: &[&str]) -> NewMessage {
        NewMessage {
            source: Source::Raw(Arc::from(&b"Subject: x\r\n\r\nbody"[..])),
            internal_date: date,
            labels: mailbox.label_set(labels).unwrap_or(0),
            subject: "x".into(),
            snippet: "body".into(),
            message_id: None,
            parent_ids: Vec::new(),
            thread: None,
        }
    }

    #[test]
    fn list_is_newest_first_and_hides_spam_and_trash() {
        let mut mailbox = Mailbox::new("me@example.com", 1, 100);
        let a = mailbox.insert(new_message(&mailbox, 1_000, &["INBOX"]), true);
        let b = mailbox.insert(new_message(&mailbox, 3_000, &["INBOX"]), true);
        let c = mailbox.insert(new_message(&mailbox, 2_000, &["SPAM"]), true);
        let all = ListFilter {
            required: 0,
            include_spam_trash: false,
        };
        let page = mailbox.list(all, 10, None);
        assert_eq!(
            page.items.iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![b, a]
        );
        assert_eq!(page.next_after, None);
        let spam = ListFilter {
            required: bit(SPAM),
            include_spam_trash: false,
        };
        assert_eq!(mailbox.list(spam, 10, None).items, vec![(c, c)]);
        assert_eq!(mailbox.estimate(all), 2);
    }

    #[test]
    fn history_expires_with_retention() {
        let mut mailbox = Mailbox::new("me@example.com", 1, 2);
        let start = mailbox.history_id();
        let id = mailbox.insert(new_message(&mailbox, 1, &[]), true);
        let page = mailbox.history(start, None, HistoryTypes::ALL, None, 100);
        assert_eq!(page.map(|p| p.records.len()).ok(), Some(1));
        mailbox.modify(id, bit(2), 0).ok();
        mailbox.modify(id, 0, bit(2)).ok();
        assert!(
            mailbox
                .history(start, None, HistoryTypes::ALL, None, 100)
                .is_err()
        );
    }

    #[test]
    fn ids_round_trip() {
        assert_eq!(parse_id(&format_id(0x18c0_ffee)), Some(0x18c0_ffee));
        assert_eq!(parse_id("xyz"), None);
        assert_eq!(parse_id(""), None);
    }
}
