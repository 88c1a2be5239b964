//! The Slack integration through the conformance scenarios, against its fake
//! (`integrations/slack/fake/`), on SQLite and PostgreSQL. Slack has no change feed
//! (new messages, edits and deletions are found by re-reading history, which
//! `tests/slack.rs` covers) and no per-item fetch, so the scenarios that need a history
//! task are skipped (the harness checks that the manifest truly names none) and the
//! others leave out what they check of fetch jobs. The subject is in `support/`.

mod support;

use support::SlackSubject;
use tributary_conformance::conformance_tests;

conformance_tests!(SlackSubject);
