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

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};
use tributary_sdk::Output;

use crate::{Millis, NewJob, StoreError};

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

/// A content output ready to store.
#[derive(Debug, Clone)]
pub(crate) struct PreparedItem {
    pub external_id: String,
    pub timestamp: Option<DateTime<Utc>>,
    pub content: Value,
    /// `content` as compact JSON text (what SQLite stores; its length is the size).
    pub text: String,
}

impl PreparedItem {
    pub fn size(&self) -> i64 {
        i64::try_from(self.text.len()).unwrap_or(i64::MAX)
    }
}

/// The effects of one job's outputs: items to upsert and ids to soft-delete.
#[derive(Debug, Default)]
pub(crate) struct PreparedOutputs {
    /// Sorted by external id (a fixed lock order on PostgreSQL).
    pub items: Vec<PreparedItem>,
    /// Sorted.
    pub deletes: Vec<String>,
}

/// Keeps the 2xx outputs, the last one per id wins, sorted by id.
pub(crate) fn prepare_outputs(outputs: &[Output]) -> PreparedOutputs {
    let mut last: HashMap<&str, &Output> = HashMap::new();
    for o in outputs.iter().filter(|o| o.is_success()) {
        last.insert(o.id.as_str(), o);
    }
    let mut prepared = PreparedOutputs::default();
    for (id, o) in last {
        if o.is_delete() {
            prepared.deletes.push(id.to_owned());
        } else {
            prepared.items.push(PreparedItem {
                external_id: id.to_owned(),
                timestamp: o.timestamp.map(truncate_ms),
                text: o.content.to_string(),
                content: o.content.clone(),
            });
        }
    }
    prepared
        .items
        .sort_by(|a, b| a.external_id.cmp(&b.external_id));
    prepared.deletes.sort();
    prepared
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
}

/// One (account, priority) group of a batch: how many jobs it enqueues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FairGroup {
    pub user_integration_id: i64,
    pub priority: i16,
}

/// The dedupe key a job is stored with: its own, or `item:<id>` for a task that names
/// an item (so that an item is never fetched by two pending jobs).
pub(crate) fn effective_dedupe_key(job: &NewJob) -> Option<String> {
    job.dedupe_key
        .clone()
        .or_else(|| job.task.item_id.as_ref().map(|id| format!("item:{id}")))
}

/// Prepares a batch: payload text, dedupe keys, and each job's offset in its group.
/// Returns the jobs (in input order) and the group sizes (in first-seen order).
pub(crate) fn prepare_jobs(jobs: &[NewJob]) -> (Vec<PreparedJob>, Vec<(FairGroup, i64)>) {
    let mut groups: Vec<(FairGroup, i64)> = Vec::new();
    let mut index: HashMap<FairGroup, usize> = HashMap::new();
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let group = FairGroup {
            user_integration_id: job.user_integration_id,
            priority: job.priority,
        };
        let slot = *index.entry(group).or_insert_with(|| {
            groups.push((group, 0));
            groups.len() - 1
        });
        let offset = groups[slot].1;
        groups[slot].1 += 1;
        out.push(PreparedJob {
            user_integration_id: job.user_integration_id,
            task_type: job.task.task_type.clone(),
            payload_text: job.task.payload.to_string(),
            item_id: job.task.item_id.clone(),
            dedupe_key: effective_dedupe_key(job),
            priority: job.priority,
            max_attempts: job.max_attempts,
            run_at: job.run_at,
            offset,
        });
    }
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
    fn outputs_keep_last_success_per_id_sorted() {
        let p = prepare_outputs(&[
            Output::item("b", None, json!({"v": 1})),
            Output::item("a", None, json!({"v": 1})),
            Output::failed("c", 500, "boom"),
            Output::item("b", None, json!({"v": 2})),
            Output::deleted("d"),
            Output::deleted("a"),
        ]);
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.items[0].external_id, "b");
        assert_eq!(p.items[0].content, json!({"v": 2}));
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
            },
            priority: prio,
            dedupe_key: None,
            max_attempts: 3,
            run_at: 0,
        };
        let (jobs, groups) = prepare_jobs(&[
            job(1, 2, Some("x")),
            job(2, 2, None),
            job(1, 2, None),
            job(1, 3, None),
        ]);
        assert_eq!(
            jobs.iter().map(|j| j.offset).collect::<Vec<_>>(),
            vec![0, 0, 1, 0]
        );
        assert_eq!(jobs[0].dedupe_key.as_deref(), Some("item:x"));
        assert_eq!(jobs[1].dedupe_key, None);
        assert_eq!(
            groups.iter().map(|g| g.1).collect::<Vec<_>>(),
            vec![2, 1, 1]
        );
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
