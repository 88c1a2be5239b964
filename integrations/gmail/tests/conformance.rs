//! The Gmail integration through the conformance scenarios, against its fake
//! (`integrations/gmail/fake/`), on SQLite and PostgreSQL. Gmail declares every
//! capability, so every scenario runs.
//!
//! The projection compared with the fake's truth is a message's labels (as a set) and
//! its subject. The synced mailbox is what `messages.list` returns without
//! `includeSpamTrash`, so messages in the trash or spam are not part of the truth. The
//! truth is written from Gmail's documented behaviour, never from the integration's
//! own constants.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tributary_conformance::{Capabilities, ConformanceSubject, FaultRates, conformance_tests};
use tributary_gmail_fake::{FaultConfig, GmailConfig, GmailHandle, GmailMethod};
use tributary_sdk::serde_json::{Map, Value};
use tributary_sdk::{Credentials, ManifestError, Registration};
use tributary_testkit::serving::{LoopbackServer, ResponseGate};

conformance_tests!(GmailSubject);

/// The label an edit toggles.
const EDIT_LABEL: &str = "STARRED";

/// Labels whose messages `messages.list` leaves out unless `includeSpamTrash` is set
/// (Gmail API reference): a synced mailbox holds none of them.
const LEFT_OUT_LABELS: [&str; 2] = ["SPAM", "TRASH"];

/// The subject a reader of the database sees for a message without one.
const NO_SUBJECT: &str = "(No Subject)";

/// A fake mailbox driven by the scenarios, served behind a response gate.
struct GmailSubject {
    fake: GmailHandle,
    server: LoopbackServer,
    gate: ResponseGate,
    /// The refresh token the account is linked with (changes on re-authorization).
    refresh_token: Mutex<String>,
    /// Deletions so far: every other one moves the message to the trash instead of
    /// deleting it for good (both leave the synced mailbox).
    deletions: AtomicU64,
    /// Messages moved to the trash, oldest first: what a restore takes out again.
    trashed: Mutex<Vec<String>>,
}

/// What must match between a message and its stored content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mail {
    /// Label ids, sorted.
    labels: Vec<String>,
    subject: String,
}

impl ConformanceSubject for GmailSubject {
    type Projection = Mail;

    const CAPABILITIES: Capabilities = Capabilities::ALL;

    const FULL_SYNC_ITEMS: usize = 5_000;

    fn registration() -> Result<Registration, ManifestError> {
        tributary_gmail::registration()
    }

    async fn start(items: usize, seed: u64) -> GmailSubject {
        let config = GmailConfig {
            messages: items,
            seed,
            ..GmailConfig::default()
        };
        // Generating a large mailbox takes CPU time: keep it off the async workers.
        let fake = tokio::task::spawn_blocking(move || GmailHandle::new(config))
            .await
            .expect("generate the mailbox");
        let gate = ResponseGate::new();
        let server = LoopbackServer::start(gate.layer(fake.router())).await;
        let refresh_token = fake.credentials().refresh_token;
        GmailSubject {
            fake,
            server,
            gate,
            refresh_token: Mutex::new(refresh_token),
            deletions: AtomicU64::new(0),
            trashed: Mutex::new(Vec::new()),
        }
    }

    fn credentials(&self) -> Credentials {
        let issued = self.fake.credentials();
        let mut credentials = Credentials::default();
        credentials.set("clientId", issued.client_id);
        credentials.set("clientSecret", issued.client_secret);
        credentials.set("refreshToken", self.refresh_token().clone());
        credentials
    }

    fn settings(&self) -> Map<String, Value> {
        let mut settings = Map::new();
        let base_url = self.server.base_url();
        settings.insert("tokenUrl".into(), Value::String(format!("{base_url}token")));
        settings.insert("baseUrl".into(), Value::String(base_url));
        settings
    }

    fn add_item(&self) -> String {
        self.fake.generate(1).remove(0)
    }

    fn edit_item(&self, id: &str) -> bool {
        let starred = self
            .fake
            .snapshot()
            .get(id)
            .is_some_and(|m| m.label_ids.iter().any(|l| l == EDIT_LABEL));
        let result = if starred {
            self.fake.modify_labels(id, &[], &[EDIT_LABEL])
        } else {
            self.fake.modify_labels(id, &[EDIT_LABEL], &[])
        };
        result.unwrap_or_else(|e| panic!("relabel {id}: {e}"));
        true
    }

    fn delete_item(&self, id: &str) {
        let result = if self
            .deletions
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(2)
        {
            self.fake.delete(id)
        } else {
            lock(&self.trashed).push(id.to_owned());
            self.fake.trash(id)
        };
        result.unwrap_or_else(|e| panic!("delete {id}: {e}"));
    }

    fn restore_item(&self) -> Option<String> {
        let mut trashed = lock(&self.trashed);
        if trashed.is_empty() {
            return None;
        }
        let id = trashed.remove(0);
        self.fake
            .untrash(&id)
            .unwrap_or_else(|e| panic!("untrash {id}: {e}"));
        Some(id)
    }

    fn truth(&self) -> BTreeMap<String, Mail> {
        self.fake
            .snapshot()
            .into_iter()
            .filter(|(_, m)| {
                !m.label_ids
                    .iter()
                    .any(|l| LEFT_OUT_LABELS.contains(&l.as_str()))
            })
            .map(|(id, m)| {
                let subject = if m.subject.is_empty() {
                    NO_SUBJECT.to_owned()
                } else {
                    m.subject
                };
                (id, Mail::new(m.label_ids, subject))
            })
            .collect()
    }

    fn project(content: &Value) -> Mail {
        let labels = content["labelIds"]
            .as_array()
            .map(|labels| {
                labels
                    .iter()
                    .map(|l| l.as_str().unwrap_or("<not a string>").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let subject = content["subject"]
            .as_str()
            .unwrap_or("<missing>")
            .to_owned();
        Mail::new(labels, subject)
    }

    fn list_calls(&self) -> u64 {
        self.fake.calls(GmailMethod::MessagesList)
    }

    fn fetch_calls(&self) -> u64 {
        self.fake.calls(GmailMethod::MessagesGet)
    }

    fn reset_counters(&self) {
        self.fake.reset_counters();
    }

    fn set_fault_rates(&self, rates: FaultRates) {
        self.fake.set_faults(FaultConfig {
            server_error_rate: rates.server_error,
            rate_limit_rate: rates.rate_limited,
            ..FaultConfig::default()
        });
        self.fake.reseed_faults(rates.seed);
    }

    fn faults_injected(&self) -> u64 {
        self.fake.counters().faults
    }

    fn expire_tokens_after_calls(&self, calls: u64) -> bool {
        self.fake.expire_tokens_after_calls(calls);
        true
    }

    fn tokens_issued(&self) -> u64 {
        self.fake.counters().tokens_issued
    }

    fn revoke_credentials(&self) {
        let token = self.refresh_token().clone();
        assert!(
            self.fake.revoke_refresh_token(&token),
            "the refresh token was not live"
        );
    }

    fn reauthorize(&self) -> Credentials {
        *self.refresh_token() = self.fake.issue_refresh_token();
        self.credentials()
    }

    fn expire_history_cursor(&self) {
        self.fake.expire_history_before(self.fake.history_id());
    }

    fn response_gate(&self) -> &ResponseGate {
        &self.gate
    }

    fn fetch_path(&self, id: &str) -> String {
        format!("/messages/{id}")
    }
}

impl GmailSubject {
    fn refresh_token(&self) -> MutexGuard<'_, String> {
        lock(&self.refresh_token)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Mail {
    fn new(mut labels: Vec<String>, subject: String) -> Mail {
        labels.sort();
        Mail { labels, subject }
    }
}

/// Every message of the Gmail crate's two MIME corpora (bounces, digests, forwards, a
/// top-level `message/rfc822` with empty text, repeated address lines, broken
/// boundaries, deep nesting...) goes through the fake and the whole engine into the
/// store: each is stored once, nothing fails, the account stays active.
async fn corpus_syncs_through_the_engine(h: tributary_conformance::Harness) {
    let subject = GmailSubject::start(0, 5).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut inserted = Vec::new();
    for folder in ["corpus", "mime"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(folder))
            .expect("corpus folder")
            .map(|entry| entry.expect("corpus entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        for path in files {
            let raw = std::fs::read(&path).expect("corpus message");
            let id = subject
                .fake
                .insert_raw(&raw, &["INBOX"])
                .unwrap_or_else(|e| panic!("insert {}: {e}", path.display()));
            inserted.push(id);
        }
    }
    assert!(inserted.len() >= 80, "{} corpus messages", inserted.len());
    let ui = h.link(&subject, "corpus-user").await.id;
    let engine = h.engine(4);
    h.sync(&engine, ui).await;
    h.assert_no_failed_jobs(ui).await;
    let stored = h.content(ui, false).await;
    for id in &inserted {
        let item = stored
            .get(id)
            .unwrap_or_else(|| panic!("{id} was not stored"));
        assert!(
            item.content.get("failed").is_none(),
            "{id} was stored as a failure: {}",
            item.content
        );
    }
    let account = h.account(ui).await;
    assert_eq!(
        account.status,
        tributary_store::UserIntegrationStatus::Active
    );
}

#[test]
fn sqlite_corpus_syncs_through_the_engine() {
    tributary_conformance::run_scenario::<GmailSubject, _, _>(
        tributary_conformance::Backend::Sqlite,
        corpus_syncs_through_the_engine,
    );
}

#[test]
fn postgres_corpus_syncs_through_the_engine() {
    tributary_conformance::run_scenario::<GmailSubject, _, _>(
        tributary_conformance::Backend::Postgres,
        corpus_syncs_through_the_engine,
    );
}
