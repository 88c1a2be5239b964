//! The Outlook integration through the conformance scenarios, against its fake
//! (`integrations/outlook/fake/`), on SQLite and PostgreSQL. Outlook has a change feed
//! (a delta round per folder), edits (flag, read state, categories), expiring tokens
//! and a fetch per message; a message deleted for good never comes back with its id,
//! so the restore scenario checks that no restore exists. The subject is in
//! `support/`.

mod support;

use support::OutlookSubject;
use tributary_conformance::conformance_tests;

conformance_tests!(OutlookSubject);
