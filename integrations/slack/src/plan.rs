//! The budget planner: which conversations a `start` polls, and which it reconciles.
//!
//! Slack gives each app about 50 `conversations.history` calls a minute per workspace
//! (1 under the 2025 limits), whatever the number of conversations, so a sync of 500
//! channels cannot read each of them every minute. Each `start` (every minute) shares
//! out a number of polls ([`crate::settings::SlackSettings::polls_per_start`], half of
//! a minute's history calls by default; the other half is for reconciles and backfill
//! pages), carrying a fraction over to the next start:
//!
//! - A conversation's *poll interval* follows its activity: a tenth of the age of its
//!   newest message, at least `pollEverySeconds` (60 s) and at most `idlePollSeconds`
//!   (1 h). A channel whose last message is 5 minutes old is polled every minute; one
//!   quiet for a day, every 1 h.
//! - A conversation is *due* when its interval has passed since its last poll.
//! - Due conversations that have been polled before go first, most active first (up to
//!   four fifths of the polls), then conversations never polled (a new channel, or the
//!   first sync), then the rest of the due ones by how overdue they are. So a new
//!   message in an active channel never waits behind the first reads of hundreds of
//!   quiet channels.
//! - Reconciles (re-reading the last `reconcileDays` for edits and deletions, every
//!   `reconcileEverySeconds`; and the whole history every `fullReadEveryHours`) get a
//!   quarter of the poll rate, most overdue first.
//!
//! The planner is a pure function of the stored plan and the clock, so it is tested
//! here without a service.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The sync-state key of the plan (`{conversation id: [polled, reconciled, read in
/// full]}`, unix seconds, 0 for never).
pub const PLAN: &str = "plan";

/// The sync-state key of the unspent fraction of polls and reconciles.
pub const CREDIT: &str = "planCredit";

/// The most of an unspent allowance a start carries to the next: less than one read.
const MAX_CARRY: f64 = 0.999_999;

/// When a conversation was last planned for each kind of read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Planned {
    /// The last poll queued (unix seconds; 0: never).
    pub polled: i64,
    /// The last reconcile of the window queued.
    pub reconciled: i64,
    /// The last full read queued.
    pub read_in_full: i64,
}

/// A conversation the planner may choose.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its id.
    pub id: String,
    /// When its newest message known was posted (unix seconds), if any is.
    pub newest: Option<i64>,
}

/// The planner's knobs (from the settings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// Polls per start, on average.
    pub polls_per_start: f64,
    /// The shortest poll interval.
    pub min_interval: i64,
    /// The longest poll interval.
    pub max_interval: i64,
    /// How often the reconcile window is read again.
    pub reconcile_every: i64,
    /// How often the whole history is read again (0: never).
    pub full_every: i64,
}

/// What one start queues.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Choice {
    /// The conversations to poll, in order.
    pub polls: Vec<String>,
    /// The conversations to reconcile, and whether in full.
    pub reconciles: Vec<(String, bool)>,
}

/// The unspent fractions carried from one start to the next.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Credit {
    /// Polls.
    pub polls: f64,
    /// Reconciles.
    pub reconciles: f64,
}

impl Credit {
    /// The stored credit (none when absent or unreadable).
    pub fn from_value(value: Option<&Value>) -> Credit {
        let get = |i: usize| {
            value
                .and_then(|v| v.get(i))
                .and_then(Value::as_f64)
                .filter(|f| f.is_finite() && *f >= 0.0)
                .unwrap_or(0.0)
        };
        Credit {
            polls: get(0),
            reconciles: get(1),
        }
    }

    /// The stored form.
    pub fn to_value(self) -> Value {
        json!([self.polls, self.reconciles])
    }
}

/// Reads the stored plan; entries that do not decode count as never planned.
pub fn plan_from_value(value: Option<&Value>) -> BTreeMap<String, Planned> {
    let Some(Value::Object(map)) = value else {
        return BTreeMap::new();
    };
    map.iter()
        .map(|(id, entry)| {
            let at = |i: usize| entry.get(i).and_then(Value::as_i64).unwrap_or(0);
            (
                id.clone(),
                Planned {
                    polled: at(0),
                    reconciled: at(1),
                    read_in_full: at(2),
                },
            )
        })
        .collect()
}

/// The stored form of a plan.
pub fn plan_to_value(plan: &BTreeMap<String, Planned>) -> Value {
    Value::Object(
        plan.iter()
            .map(|(id, p)| (id.clone(), json!([p.polled, p.reconciled, p.read_in_full])))
            .collect(),
    )
}

/// The poll interval of a conversation whose newest message is `newest`, at `now`.
pub fn poll_interval(rules: &Rules, newest: Option<i64>, now: i64) -> i64 {
    let age = newest.map_or(rules.max_interval * 10, |t| (now - t).max(0));
    (age / 10).clamp(
        rules.min_interval,
        rules.max_interval.max(rules.min_interval),
    )
}

/// Chooses what this start queues, and updates `plan` and `credit` as if it was queued
/// at `now`. `plan` keeps only the candidates (conversations gone from the list drop
/// out).
pub fn choose(
    rules: &Rules,
    candidates: &[Candidate],
    plan: &mut BTreeMap<String, Planned>,
    credit: &mut Credit,
    now: i64,
) -> Choice {
    plan.retain(|id, _| candidates.iter().any(|c| &c.id == id));
    let mut choice = Choice::default();

    // Polls.
    let allowance = credit.polls + rules.polls_per_start.max(0.0);
    let slots = allowance.floor() as usize;
    let mut known: Vec<(i64, f64, &Candidate)> = Vec::new();
    let mut fresh: Vec<&Candidate> = Vec::new();
    for candidate in candidates {
        let planned = plan.get(&candidate.id).copied().unwrap_or_default();
        if planned.polled == 0 {
            fresh.push(candidate);
            continue;
        }
        let interval = poll_interval(rules, candidate.newest, now);
        let since = now - planned.polled;
        if since >= interval {
            known.push((interval, since as f64 / interval.max(1) as f64, candidate));
        }
    }
    // Most active (shortest interval) first, then most overdue.
    known.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let active_share = if fresh.is_empty() {
        slots
    } else {
        (slots * 4).div_ceil(5)
    };
    let mut picked: Vec<&Candidate> = known.iter().take(active_share).map(|k| k.2).collect();
    let rest_known: Vec<&Candidate> = known.iter().skip(active_share).map(|k| k.2).collect();
    for candidate in fresh.into_iter().chain(rest_known) {
        if picked.len() >= slots {
            break;
        }
        picked.push(candidate);
    }
    // Only a fraction carries over: a start with nothing due saves no polls for later.
    credit.polls = (allowance - picked.len() as f64).clamp(0.0, MAX_CARRY);
    for candidate in picked {
        let entry = plan.entry(candidate.id.clone()).or_default();
        if entry.polled == 0 {
            // A first poll reads the whole history: it is a full read too.
            entry.reconciled = now;
            entry.read_in_full = now;
        }
        entry.polled = now;
        choice.polls.push(candidate.id.clone());
    }

    // Reconciles: only of conversations polled before (a first poll reads everything).
    let rate = rules.polls_per_start.max(0.0) / 4.0;
    let allowance = credit.reconciles + rate;
    let slots = allowance.floor() as usize;
    let mut due: Vec<(i64, &String, bool)> = Vec::new();
    for (id, planned) in plan.iter() {
        if planned.polled == 0 {
            continue;
        }
        let full_due = rules.full_every > 0 && now - planned.read_in_full >= rules.full_every;
        let window_due = now - planned.reconciled >= rules.reconcile_every;
        if full_due || window_due {
            due.push((now - planned.reconciled, id, full_due));
        }
    }
    due.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let chosen: Vec<(String, bool)> = due
        .into_iter()
        .take(slots)
        .map(|(_, id, full)| (id.clone(), full))
        .collect();
    credit.reconciles = (allowance - chosen.len() as f64).clamp(0.0, MAX_CARRY);
    for (id, full) in &chosen {
        let entry = plan.entry(id.clone()).or_default();
        entry.reconciled = now;
        if *full {
            entry.read_in_full = now;
        }
    }
    choice.reconciles = chosen;
    choice
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        polls_per_start: 25.0,
        min_interval: 60,
        max_interval: 3600,
        reconcile_every: 3600,
        full_every: 86_400,
    };

    fn channels(n: usize, newest: impl Fn(usize) -> Option<i64>) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                id: format!("C{i:04}"),
                newest: newest(i),
            })
            .collect()
    }

    #[test]
    fn intervals_follow_activity() {
        let now = 1_000_000;
        assert_eq!(poll_interval(&RULES, Some(now - 300), now), 60);
        assert_eq!(poll_interval(&RULES, Some(now - 6_000), now), 600);
        assert_eq!(poll_interval(&RULES, Some(now - 86_400), now), 3600);
        assert_eq!(poll_interval(&RULES, None, now), 3600);
    }

    /// 500 channels, 10 of them active: after the first reads, every active channel is
    /// polled at every start, within the budget, while the quiet ones share the rest.
    #[test]
    fn active_channels_are_polled_every_start_among_500() {
        let mut now = 10_000_000;
        let active = |i: usize| i.is_multiple_of(50);
        let mut plan = BTreeMap::new();
        let mut credit = Credit::default();
        let mut last_poll: BTreeMap<String, i64> = BTreeMap::new();
        let mut worst_gap = 0;
        for minute in 0..120 {
            let list = channels(500, |i| {
                if active(i) {
                    Some(now - 30)
                } else {
                    Some(now - 5 * 86_400 - i as i64)
                }
            });
            let choice = choose(&RULES, &list, &mut plan, &mut credit, now);
            assert!(choice.polls.len() <= 25, "{} polls", choice.polls.len());
            for id in &choice.polls {
                if let Some(before) = last_poll.insert(id.clone(), now)
                    && minute > 30
                    && list
                        .iter()
                        .any(|c| &c.id == id && c.newest == Some(now - 30))
                {
                    worst_gap = worst_gap.max(now - before);
                }
            }
            now += 60;
        }
        assert_eq!(
            worst_gap, 60,
            "an active channel waited {worst_gap} s between polls"
        );
        // Every channel was read at least once within the two hours.
        assert_eq!(last_poll.len(), 500);
    }

    #[test]
    fn a_fraction_carries_over_under_the_limited_profile() {
        let rules = Rules {
            polls_per_start: 0.5,
            ..RULES
        };
        let list = channels(3, |_| Some(0));
        let (mut plan, mut credit) = (BTreeMap::new(), Credit::default());
        let polls: usize = (0..10)
            .map(|m| {
                choose(&rules, &list, &mut plan, &mut credit, 1_000 + m * 60)
                    .polls
                    .len()
            })
            .sum();
        assert_eq!(polls, 5);
    }

    #[test]
    fn reconciles_come_after_an_hour_and_full_reads_after_a_day() {
        let list = channels(2, |_| Some(0));
        let (mut plan, mut credit) = (BTreeMap::new(), Credit::default());
        let first = choose(&RULES, &list, &mut plan, &mut credit, 100_000);
        assert_eq!(first.polls.len(), 2);
        assert!(first.reconciles.is_empty());
        let soon = choose(&RULES, &list, &mut plan, &mut credit, 100_060);
        assert!(soon.reconciles.is_empty(), "{soon:?}");
        // The first poll read everything: an hour later the window is read again.
        let later = choose(&RULES, &list, &mut plan, &mut credit, 100_000 + 3_600);
        assert_eq!(later.reconciles.len(), 2, "{later:?} {plan:?}");
        assert!(later.reconciles.iter().all(|(_, full)| !*full), "{later:?}");
        let day = choose(&RULES, &list, &mut plan, &mut credit, 100_000 + 86_400);
        assert_eq!(day.reconciles.len(), 2);
        assert!(day.reconciles.iter().all(|(_, full)| *full), "{day:?}");
    }

    #[test]
    fn the_plan_round_trips_and_drops_vanished_conversations() {
        let mut plan = BTreeMap::new();
        plan.insert(
            "C1".to_owned(),
            Planned {
                polled: 5,
                reconciled: 6,
                read_in_full: 7,
            },
        );
        plan.insert("Cgone".to_owned(), Planned::default());
        let back = plan_from_value(Some(&plan_to_value(&plan)));
        assert_eq!(back, plan);
        let mut credit = Credit::default();
        choose(&RULES, &channels(0, |_| None), &mut plan, &mut credit, 10);
        assert!(plan.is_empty());
        assert_eq!(
            Credit::from_value(Some(&json!([1.5, "x"]))),
            Credit {
                polls: 1.5,
                reconciles: 0.0
            }
        );
    }
}
