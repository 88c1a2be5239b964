//! Logic shared by both backends: time conversion, output preparation, job
//! preparation and the fair-queueing scheme.
//!
//! # Fairness
//!
//! Within one priority, jobs of different accounts must interleave so that one huge
//! backfill never starves another account (DESIGN.md invariant 4). The queue uses
//! start-time fair queueing with integer tags:
//!
//! - Every job carries a tag, `jobs.fair_seq`. `claim` takes available jobs in
//!   `(priority, fair_seq, id)` order, which the partial index `jobs_claim_idx` serves
//!   directly (an index scan, no sort, no window function).
//! - The queue's *virtual time* per priority, `job_fair_frontier.seq`, is the largest
//!   tag claimed so far at that priority (updated by `claim`, monotone).
//! - Each account keeps a counter per priority, `job_fair_counters.next_seq`. A batch of
//!   `n` jobs enqueued for account A at priority p gets the tags
//!   `base, base + 1, ..., base + n - 1` with `base = max(A's counter, frontier(p))`,
//!   and A's counter becomes `base + n`.
//!
//! Consequences: two accounts that enqueue a backfill at the same time get the same
//! run of tags and are claimed alternately (1:1), however many jobs each one has; an
//! account that has been idle starts at the current virtual time, so it neither jumps
//! ahead of the jobs already waiting by more than its fair share, nor waits behind an
//! entire backlog; and an account that enqueues a lot gets tags far in the future and
//! waits for its turn, while others enqueueing later slot in between.
//! Jobs that go back to the queue (retry, lease expiry, release) keep their tag, so a
//! retried job runs as soon as it is due. When a paused account is resumed
//! (`set_user_integration_status(.., Active, ..)`), its waiting jobs are moved up to the
//! current virtual time, so a backlog kept during a long pause does not monopolise the
//! queue afterwards. Scheduled `start` and history jobs (priority 1, at most one of each
//! per account) are tagged with the virtual time itself, which makes them first come,
//! first served.
//!
//! ## Discovery runs ahead
//!
//! Only jobs that fetch one item ([`JobKind::Fetch`]: `task.item_id` set) take a place at the end of their
//! account's line. Every other job (a list page, a directory walk, a history check) is
//! tagged with the virtual time itself: it runs before the item fetches already queued
//! at its priority, first come first served with other accounts' discovery jobs. So a
//! backfill lists ahead of its downloads, its queued fetches count as known to
//! `content_exists`, and a `start` during a long backfill stops after a few pages
//! instead of walking the whole backlog again (DESIGN.md invariant 5). Discovery jobs
//! of different accounts alternate at the virtual time, and item fetches stay fairly
//! interleaved.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};
use tributary_sdk::{ItemRef, Output};

use crate::{
    Cipher, CompletionReport, DUE_CHECK_EVERY_MS, DomainSchedule, JobCompletion, JobKind, JobLease,
    Millis, NewJob, StoreError, UserIntegrationStatus,
};

/// The format SQLite stores timestamps in: fixed width, so text order is time order.
pub(crate) const SQLITE_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// `ms` as a UTC time.
pub(crate) fn ms_to_dt(ms: Millis) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("time out of range: {ms} ms since 1970")))
}

/// `dt` truncated to whole milliseconds (both backends store millisecond precision).
pub(crate) fn truncate_ms(dt: DateTime<Utc>) -> DateTime<Utc> {
    let ms = dt.timestamp_millis();
    Utc.timestamp_millis_opt(ms).single().unwrap_or(dt)
}

/// The current time, in milliseconds precision.
pub(crate) fn now_dt() -> DateTime<Utc> {
    truncate_ms(Utc::now())
}

/// `dt` in SQLite's stored text form.
pub(crate) fn sqlite_time(dt: DateTime<Utc>) -> String {
    truncate_ms(dt).format(SQLITE_TIME_FORMAT).to_string()
}

/// Merges `patch` into `state` at the top level: keys of the patch replace stored
/// keys (a `null` value is stored as `null`), other stored keys are kept. This is
/// exactly PostgreSQL's `jsonb || jsonb` on two objects.
pub(crate) fn merge_top_level(state: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        state.insert(k.clone(), v.clone());
    }
}

/// Replaces NUL characters (which PostgreSQL cannot store in `text` or `jsonb`) with
/// U+FFFD, on both backends so that both store the same thing.
pub(crate) fn clean_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// [`clean_text`] applied to every string and key of a JSON value.
pub(crate) fn clean_json(value: &Value) -> std::borrow::Cow<'_, Value> {
    fn dirty(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(a) => a.iter().any(dirty),
            Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || dirty(v)),
            _ => false,
        }
    }
    fn clean(v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(clean_text(s).into_owned()),
            Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (clean_text(k).into_owned(), clean(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    if dirty(value) {
        std::borrow::Cow::Owned(clean(value))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// [`clean_json`] of a JSON object.
pub(crate) fn clean_object(map: &Map<String, Value>) -> Map<String, Value> {
    match clean_json(&Value::Object(map.clone())).into_owned() {
        Value::Object(m) => m,
        _ => map.clone(),
    }
}

/// A JSON object decoded from a stored column.
pub(crate) fn object_from_value(
    value: Value,
    what: &str,
) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        other => Err(StoreError::Corrupt(format!(
            "{what} is not a JSON object but {}",
            json_kind(&other)
        ))),
    }
}

/// A JSON object decoded from stored text.
pub(crate) fn object_from_text(text: &str, what: &str) -> Result<Map<String, Value>, StoreError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("{what} is not valid JSON: {e}")))?;
    object_from_value(value, what)
}

/// Any JSON value decoded from stored text.
pub(crate) fn value_from_text(text: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("{what} is not valid JSON: {e}")))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Maps a unique violation when a dead or failed job is made available again to a
/// clear conflict.
pub(crate) fn retry_conflict(e: sqlx::Error, id: i64) -> StoreError {
    if matches!(&e, sqlx::Error::Database(d) if d.is_unique_violation()) {
        StoreError::Conflict(format!(
            "job {id} cannot be retried: a pending job with the same dedupe key exists"
        ))
    } else {
        StoreError::Database(e)
    }
}

/// The ids to look up for `content_exists` (cleaned as stored), each with the caller's
/// spelling to report back.
pub(crate) fn lookup_items(items: &[ItemRef]) -> (Vec<String>, HashMap<String, AskedItem>) {
    let mut cleaned = Vec::with_capacity(items.len());
    let mut asked = HashMap::with_capacity(items.len());
    for item in items {
        let c = clean_text(&item.id).into_owned();
        asked.insert(
            c.clone(),
            AskedItem {
                id: item.id.clone(),
                version: item.version.as_deref().map(|v| clean_text(v).into_owned()),
            },
        );
        cleaned.push(c);
    }
    (cleaned, asked)
}

/// An item asked about by `known_items`: its id as given, and its version cleaned (the
/// NUL rule, as stored).
pub(crate) struct AskedItem {
    pub id: String,
    pub version: Option<String>,
}

/// What the known-id query found for one cleaned id: a live stored row at a version
/// (`any_version` false), or a pending or given-up fetch (`any_version` true).
pub(crate) type KnownRow = (String, Option<String>, bool);

/// The ids (as given) of the asked items that `rows` make known: stored at the
/// version asked, or (with `jobs`) named by a pending or given-up fetch.
pub(crate) fn known_of(
    rows: Vec<KnownRow>,
    asked: &HashMap<String, AskedItem>,
    jobs: bool,
) -> HashSet<String> {
    rows.into_iter()
        .filter_map(|(id, version, from_jobs)| {
            let item = asked.get(&id)?;
            let known = if from_jobs {
                jobs
            } else {
                item.version.is_none() || version == item.version
            };
            known.then(|| item.id.clone())
        })
        .collect()
}

/// A row that does not exist.
pub(crate) fn not_found(what: &'static str, id: i64) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_string(),
    }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

/// Maps a foreign-key violation while enqueueing for `accounts` to "user integration
/// not found", naming them.
pub(crate) fn unknown_account(e: sqlx::Error, accounts: &[i64]) -> StoreError {
    if is_foreign_key_violation(&e) {
        let mut ids = accounts.to_vec();
        ids.sort_unstable();
        ids.dedup();
        StoreError::NotFound {
            what: "user integration",
            id: ids
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
        }
    } else {
        StoreError::Database(e)
    }
}

/// Decrypts the stored credentials of account `id`. An unlinked account's credentials
/// are never used again: when they do not decrypt (their key was lost and replaced),
/// the account still reads, with none.
pub(crate) fn open_credentials(
    cipher: &Cipher,
    id: i64,
    status: &str,
    sealed: &[u8],
) -> Result<tributary_sdk::Credentials, StoreError> {
    match cipher.decrypt_credentials(sealed) {
        Ok(credentials) => Ok(credentials),
        Err(_) if status == UserIntegrationStatus::Unlinked.as_str() => {
            Ok(tributary_sdk::Credentials::default())
        }
        Err(e) => Err(StoreError::Crypto(format!(
            "user integration {id}: {}",
            match e {
                StoreError::Crypto(m) => m,
                other => other.to_string(),
            }
        ))),
    }
}

/// The schedules a tick records: one per domain (the first wins), their text cleaned
/// (the NUL rule).
pub(crate) fn distinct_schedules(schedules: &[DomainSchedule]) -> Vec<DomainSchedule> {
    let mut seen = HashSet::new();
    schedules
        .iter()
        .filter(|s| seen.insert(s.domain.as_str()))
        .map(|s| DomainSchedule {
            domain: clean_text(&s.domain).into_owned(),
            history: s
                .history
                .as_ref()
                .map(|(task, every)| (clean_text(task).into_owned(), *every)),
            ..s.clone()
        })
        .collect()
}

/// One empty report per completion, in the batch's order.
pub(crate) fn blank_reports(completions: &[JobCompletion]) -> Vec<CompletionReport> {
    completions
        .iter()
        .map(|c| CompletionReport {
            job_id: c.lease.job_id,
            ..CompletionReport::default()
        })
        .collect()
}

/// The leases of a batch, each once, in (job, attempt) order: what the fence checks.
pub(crate) fn distinct_leases(completions: &[JobCompletion]) -> Vec<JobLease> {
    let mut leases: Vec<JobLease> = completions.iter().map(|c| c.lease).collect();
    leases.sort_unstable_by_key(|l| (l.job_id, l.attempt));
    leases.dedup();
    leases
}

/// The completions the fence let through (`fenced`: (job, attempt) → its account), in
/// `order`, each marked applied in `reports`. A lease completed twice in one batch
/// applies once; a completion naming another account than its job's is a conflict.
pub(crate) fn applied_completions(
    completions: &[JobCompletion],
    order: &[usize],
    mut fenced: HashMap<(i64, i32), i64>,
    reports: &mut [CompletionReport],
) -> Result<Vec<usize>, StoreError> {
    let mut applied = Vec::with_capacity(fenced.len());
    for &i in order {
        let c = &completions[i];
        let Some(job_account) = fenced.remove(&(c.lease.job_id, c.lease.attempt)) else {
            continue;
        };
        if job_account != c.user_integration_id {
            return Err(StoreError::Conflict(format!(
                "job {} belongs to user integration {job_account}, not {}",
                c.lease.job_id, c.user_integration_id
            )));
        }
        reports[i].applied = true;
        applied.push(i);
    }
    Ok(applied)
}

/// The order in which a batch of completions is applied: by account, then in the
/// order given. Accounts in a fixed order keep concurrent PostgreSQL transactions from
/// deadlocking; within an account the caller's order decides which of two outputs for
/// the same item, or of two sync-state patches, comes last.
pub(crate) fn completion_order(completions: &[JobCompletion]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..completions.len()).collect();
    order.sort_by_key(|&i| (completions[i].user_integration_id, i));
    order
}

/// What the applied completions of one account do to the account row.
#[derive(Debug)]
pub(crate) struct AccountEffects<'a> {
    pub user_integration_id: i64,
    /// The patches merged in order (`None` when no completion had one).
    pub patch: Option<Map<String, Value>>,
    /// The last rotated credentials, if any.
    pub credentials: Option<&'a tributary_sdk::Credentials>,
}

/// Groups the applied completions (`applied`, in [`completion_order`]) by account.
pub(crate) fn account_effects<'a>(
    completions: &'a [JobCompletion],
    applied: &[usize],
) -> Vec<AccountEffects<'a>> {
    let mut out: Vec<AccountEffects<'a>> = Vec::new();
    for &i in applied {
        let c = &completions[i];
        if out.last().map(|e| e.user_integration_id) != Some(c.user_integration_id) {
            out.push(AccountEffects {
                user_integration_id: c.user_integration_id,
                patch: None,
                credentials: None,
            });
        }
        let Some(effects) = out.last_mut() else {
            continue;
        };
        if let Some(patch) = &c.sync_state_patch {
            let merged = effects.patch.get_or_insert_with(Map::new);
            merge_top_level(merged, &clean_object(patch));
        }
        if let Some(creds) = &c.credentials {
            effects.credentials = Some(creds);
        }
    }
    out
}

/// A content output ready to store.
#[derive(Debug, Clone)]
pub(crate) struct PreparedItem<'a> {
    pub external_id: String,
    pub timestamp: Option<DateTime<Utc>>,
    /// Borrowed from the output unless it had to be cleaned.
    pub content: std::borrow::Cow<'a, Value>,
    /// `content` as compact JSON text (what SQLite stores; its length is the size).
    pub text: String,
    /// The item's version, cleaned.
    pub version: Option<String>,
}

impl PreparedItem<'_> {
    pub fn size(&self) -> i64 {
        i64::try_from(self.text.len()).unwrap_or(i64::MAX)
    }
}

/// The effects of one job's outputs: items to upsert and ids to soft-delete.
#[derive(Debug, Default)]
pub(crate) struct PreparedOutputs<'a> {
    /// Sorted by external id (a fixed lock order on PostgreSQL).
    pub items: Vec<PreparedItem<'a>>,
    /// Sorted.
    pub deletes: Vec<String>,
}

/// Keeps the items and deletions (the engine turns failures into marker items before
/// they reach the store), the last one per id wins, sorted by id.
pub(crate) fn prepare_outputs(outputs: &[Output]) -> PreparedOutputs<'_> {
    let mut last: HashMap<String, &Output> = HashMap::new();
    for o in outputs.iter().filter(|o| !o.is_failure()) {
        last.insert(clean_text(o.id()).into_owned(), o);
    }
    let mut prepared = PreparedOutputs::default();
    for (id, o) in last {
        match o {
            Output::Deleted { .. } => prepared.deletes.push(id),
            Output::Item {
                timestamp,
                content,
                version,
                ..
            } => {
                let content = clean_json(content);
                prepared.items.push(PreparedItem {
                    external_id: id,
                    timestamp: timestamp.map(truncate_ms),
                    text: content.to_string(),
                    content,
                    version: version.as_deref().map(|v| clean_text(v).into_owned()),
                });
            }
            Output::Failed { .. } => {}
        }
    }
    prepared
        .items
        .sort_by(|a, b| a.external_id.cmp(&b.external_id));
    prepared.deletes.sort();
    prepared
}

/// One item of a batched content write, and the completion it came from.
pub(crate) struct ContentRow<'a> {
    /// Index of the completion in the batch (its report).
    pub job: usize,
    pub user_id: i64,
    pub account: i64,
    /// The account's domain, cleaned (the NUL rule).
    pub domain: std::borrow::Cow<'a, str>,
    pub item: &'a PreparedItem<'a>,
}

/// The items of consecutive completions that can be written together: no account and
/// external id twice. A completion touching an id already here (the same item twice in
/// one batch) must wait for this segment to be written, so the jobs' order holds.
#[derive(Default)]
pub(crate) struct ContentSegment<'a> {
    rows: Vec<ContentRow<'a>>,
    keys: HashSet<(i64, &'a str)>,
}

impl<'a> ContentSegment<'a> {
    /// Whether `outputs` of `account` (items or deletes) name an id already here.
    pub fn clashes(&self, account: i64, outputs: &PreparedOutputs<'_>) -> bool {
        outputs
            .items
            .iter()
            .map(|item| item.external_id.as_str())
            .chain(outputs.deletes.iter().map(String::as_str))
            .any(|id| self.keys.contains(&(account, id)))
    }

    /// Adds the items of completion `job` (`c`).
    pub fn push(&mut self, job: usize, c: &'a JobCompletion, outputs: &'a PreparedOutputs<'a>) {
        for item in &outputs.items {
            self.keys
                .insert((c.user_integration_id, item.external_id.as_str()));
            self.rows.push(ContentRow {
                job,
                user_id: c.user_id,
                account: c.user_integration_id,
                domain: clean_text(&c.integration_domain),
                item,
            });
        }
    }

    /// The rows gathered so far, leaving the segment empty.
    pub fn take(&mut self) -> Vec<ContentRow<'a>> {
        self.keys.clear();
        std::mem::take(&mut self.rows)
    }
}

/// A job ready to insert, with its fair-queueing tag assigned later.
#[derive(Debug, Clone)]
pub(crate) struct PreparedJob {
    pub user_integration_id: i64,
    pub task_type: String,
    pub payload_text: String,
    pub item_id: Option<String>,
    pub dedupe_key: Option<String>,
    pub priority: i16,
    pub max_attempts: i32,
    pub run_at: Millis,
    /// Position within its (account, priority) group.
    pub offset: i64,
    /// Tagged at the queue's virtual time instead of at the end of its account's line
    /// (a job that fetches no single item: see "Discovery runs ahead" above).
    pub at_frontier: bool,
}

impl PreparedJob {
    /// Its fair-queueing tag: the virtual time of its priority for a discovery job,
    /// else its place in its group after the group's first tag (`bases`).
    pub fn tag(&self, bases: &HashMap<FairGroup, i64>, frontiers: &HashMap<i16, i64>) -> i64 {
        if self.at_frontier {
            frontiers.get(&self.priority).copied().unwrap_or(0)
        } else {
            let group = FairGroup {
                user_integration_id: self.user_integration_id,
                priority: self.priority,
            };
            bases.get(&group).copied().unwrap_or(0) + self.offset
        }
    }
}

/// One (account, priority) group of a batch: how many jobs it enqueues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FairGroup {
    pub user_integration_id: i64,
    pub priority: i16,
}

/// Prepares a batch: payload text, dedupe keys, and each job's offset in its group.
/// Returns the jobs (in input order) and the group sizes (in first-seen order).
///
/// The groups are sorted by (account, priority): taking the fairness counters' row
/// locks in one global order keeps concurrent transactions from deadlocking.
pub(crate) fn prepare_jobs(jobs: &[NewJob]) -> (Vec<PreparedJob>, Vec<(FairGroup, i64)>) {
    let mut groups: Vec<(FairGroup, i64)> = Vec::new();
    let mut index: HashMap<FairGroup, usize> = HashMap::new();
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let at_frontier = job.kind() == JobKind::Discovery;
        let offset = if at_frontier {
            0
        } else {
            let group = FairGroup {
                user_integration_id: job.user_integration_id,
                priority: job.priority,
            };
            let slot = *index.entry(group).or_insert_with(|| {
                groups.push((group, 0));
                groups.len() - 1
            });
            groups[slot].1 += 1;
            groups[slot].1 - 1
        };
        out.push(PreparedJob {
            user_integration_id: job.user_integration_id,
            task_type: clean_text(&job.task.task_type).into_owned(),
            payload_text: clean_json(&job.task.payload).to_string(),
            item_id: job
                .task
                .item_id
                .as_deref()
                .map(|i| clean_text(i).into_owned()),
            dedupe_key: job
                .effective_dedupe_key()
                .map(|k| clean_text(&k).into_owned()),
            priority: job.priority,
            max_attempts: job.max_attempts,
            run_at: job.run_at,
            offset,
            at_frontier,
        });
    }
    groups.sort_by_key(|(g, _)| (g.user_integration_id, g.priority));
    (out, groups)
}

/// How many rows of `columns` binds fit in one statement under `max_binds`.
pub(crate) fn chunk_rows(columns: usize, max_binds: usize) -> usize {
    (max_binds / columns.max(1)).max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use tributary_sdk::Task;

    #[test]
    fn due_gate_looks_at_most_every_interval_unless_told() {
        let gate = DueGate::default();
        assert!(gate.open(1_000), "the first claim looks");
        gate.looked(1_000, false);
        assert!(!gate.open(1_000));
        assert!(!gate.open(1_000 + DUE_CHECK_EVERY_MS - 1));
        assert!(gate.open(1_000 + DUE_CHECK_EVERY_MS));
        assert!(gate.open(999), "a clock that went back");
        gate.looked(2_000, true);
        assert!(gate.open(2_000), "the last look found more than it took");
        gate.looked(3_000, false);
        gate.reopen();
        assert!(
            gate.open(3_000),
            "a new account, a resumed one, or a full tick"
        );
    }

    #[test]
    fn outputs_keep_last_success_per_id_sorted() {
        let outputs = [
            Output::item("b", None, json!({"v": 1})),
            Output::item("a", None, json!({"v": 1})),
            Output::failed("c", 500, "boom"),
            Output::item("b", None, json!({"v": 2})),
            Output::deleted("d"),
            Output::deleted("a"),
        ];
        let p = prepare_outputs(&outputs);
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.items[0].external_id, "b");
        assert_eq!(*p.items[0].content, json!({"v": 2}));
        assert_eq!(p.items[0].size(), r#"{"v":2}"#.len() as i64);
        assert_eq!(p.deletes, vec!["a".to_owned(), "d".to_owned()]);
    }

    #[test]
    fn top_level_merge_replaces_keys_and_keeps_others() {
        let mut state = json!({"a": {"x": 1}, "b": 2}).as_object().cloned().unwrap();
        let patch = json!({"a": {"y": 2}, "c": null})
            .as_object()
            .cloned()
            .unwrap();
        merge_top_level(&mut state, &patch);
        assert_eq!(
            Value::Object(state),
            json!({"a": {"y": 2}, "b": 2, "c": null})
        );
    }

    #[test]
    fn jobs_are_grouped_with_offsets_and_item_dedupe_keys() {
        let job = |uid, prio, item: Option<&str>| NewJob {
            user_integration_id: uid,
            task: Task {
                task_type: "t".into(),
                payload: Value::Null,
                item_id: item.map(str::to_owned),
                dedupe_key: None,
            },
            priority: prio,
            dedupe_key: None,
            max_attempts: 3,
            run_at: 0,
        };
        let (jobs, groups) = prepare_jobs(&[
            job(1, 2, Some("x")),
            job(2, 2, Some("y")),
            job(1, 2, None),
            job(1, 2, Some("z")),
            job(1, 3, Some("w")),
        ]);
        // Item fetches queue in their (account, priority) group; discovery jobs (no
        // item) are tagged at the virtual time and take no place in a group.
        assert_eq!(
            jobs.iter()
                .map(|j| (j.offset, j.at_frontier))
                .collect::<Vec<_>>(),
            vec![(0, false), (0, false), (0, true), (1, false), (0, false)]
        );
        assert_eq!(jobs[0].dedupe_key.as_deref(), Some("item:x"));
        assert_eq!(jobs[2].dedupe_key, None);
        assert_eq!(
            groups.iter().map(|g| g.1).collect::<Vec<_>>(),
            vec![2, 1, 1]
        );
    }

    #[test]
    fn nul_characters_are_replaced_everywhere() {
        let v = json!({"a\0": ["x\0y", 1, {"k": "\0"}], "ok": "fine"});
        let cleaned = clean_json(&v).into_owned();
        assert_eq!(
            cleaned,
            json!({"a\u{FFFD}": ["x\u{FFFD}y", 1, {"k": "\u{FFFD}"}], "ok": "fine"})
        );
        assert!(matches!(
            clean_json(&json!({"a": "b"})),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(clean_text("a\0b"), "a\u{FFFD}b");
    }

    #[test]
    fn sqlite_time_is_fixed_width_and_ordered() {
        let a = sqlite_time(ms_to_dt(1_000).unwrap());
        let b = sqlite_time(ms_to_dt(1_001).unwrap());
        assert_eq!(a, "1970-01-01T00:00:01.000Z");
        assert_eq!(a.len(), b.len());
        assert!(a < b);
    }
}

/// The two kinds of scheduled job a due account turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DueKind {
    /// The account's `start`.
    Start,
    /// The account's history check.
    History,
}

/// When a claim looks for due accounts to turn into jobs: at most every
/// [`DUE_CHECK_EVERY_MS`], at once when the last look found more than it took or a tick
/// asked for it, and whenever the clock moved backwards (tests drive their own).
#[derive(Debug, Default)]
pub(crate) struct DueGate {
    /// When the last look was, and whether it came back full.
    last: std::sync::Mutex<Option<(Millis, bool)>>,
}

impl DueGate {
    /// Whether a claim at `now` should look.
    pub fn open(&self, now: Millis) -> bool {
        let last = *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match last {
            None => true,
            Some((at, full)) => full || now < at || now >= at.saturating_add(DUE_CHECK_EVERY_MS),
        }
    }

    /// Whether a claim at `now` for `scope` (one account, or all) looks: a scoped claim
    /// always does.
    pub fn should_look(&self, now: Millis, scope: Option<i64>) -> bool {
        scope.is_some() || self.open(now)
    }

    /// Records the look of a claim for `scope` (only an unscoped one counts).
    pub fn looked_for(&self, now: Millis, scope: Option<i64>, full: bool) {
        if scope.is_none() {
            self.looked(now, full);
        }
    }

    /// Records a look at `now`; `full` when it found as many due accounts as it took.
    pub fn looked(&self, now: Millis, full: bool) {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((now, full));
    }

    /// Makes the next claim look (a tick left due accounts for the claims).
    pub fn reopen(&self) {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}
