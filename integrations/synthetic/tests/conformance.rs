//! The synthetic integration through the conformance scenarios, against the test kit's
//! synthetic source (served with a fault layer in front), on SQLite and PostgreSQL.
//!
//! The synthetic source has a static bearer token and no token endpoint: it declares
//! no expiring tokens, so the token scenarios check that absence and are skipped.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tributary_conformance::{Capabilities, ConformanceSubject, FaultRates, conformance_tests};
use tributary_sdk::serde_json::{Map, Value};
use tributary_sdk::{Credentials, ManifestError, Registration};
use tributary_testkit::fault_layer::FaultInjector;
use tributary_testkit::serving::{LoopbackServer, ResponseGate};
use tributary_testkit::synthetic::{Source, SourceConfig, router};

conformance_tests!(SyntheticSubject);

/// A synthetic source on a loopback port, behind a fault layer and a response gate.
struct SyntheticSubject {
    source: Source,
    faults: FaultInjector,
    gate: ResponseGate,
    server: LoopbackServer,
    /// Deleted ids, oldest first: what a restore adds back.
    deleted: Mutex<Vec<String>>,
}

/// What must match between an item and its stored content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    title: String,
    body: String,
    version: u64,
}

impl SyntheticSubject {
    fn deleted(&self) -> MutexGuard<'_, Vec<String>> {
        self.deleted.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ConformanceSubject for SyntheticSubject {
    type Projection = Item;

    const CAPABILITIES: Capabilities = Capabilities {
        expiring_tokens: false,
        ..Capabilities::ALL
    };

    const FULL_SYNC_ITEMS: usize = 2_000;

    fn registration() -> Result<Registration, ManifestError> {
        tributary_synthetic::registration()
    }

    async fn start(items: usize, seed: u64) -> SyntheticSubject {
        // Small change pages, so that a burst of changes spans several of them.
        let source = Source::new(&SourceConfig {
            max_changes_per_response: 100,
            ..SourceConfig::new(items, seed, format!("token-{seed}"))
        });
        let faults = FaultInjector::new();
        let gate = ResponseGate::new();
        let server = LoopbackServer::start(gate.layer(faults.layer(router(source.clone())))).await;
        SyntheticSubject {
            source,
            faults,
            gate,
            server,
            deleted: Mutex::new(Vec::new()),
        }
    }

    fn credentials(&self) -> Credentials {
        let mut credentials = Credentials::default();
        credentials.set("token", self.source.token().unwrap_or_default());
        credentials
    }

    fn settings(&self) -> Map<String, Value> {
        let mut settings = Map::new();
        settings.insert(
            "baseUrl".into(),
            Value::String(format!("http://{}", self.server.addr())),
        );
        settings
    }

    fn add_item(&self) -> String {
        self.source.add_items(1).remove(0)
    }

    fn edit_item(&self, id: &str) -> bool {
        assert!(self.source.edit(id), "edit {id}: no such item");
        true
    }

    fn delete_item(&self, id: &str) {
        assert!(self.source.delete(id), "delete {id}: no such item");
        self.deleted().push(id.to_owned());
    }

    fn restore_item(&self) -> Option<String> {
        let mut deleted = self.deleted();
        if deleted.is_empty() {
            return None;
        }
        let id = deleted.remove(0);
        assert!(
            self.source.add_item_with_id(&id),
            "restore {id}: the id exists"
        );
        Some(id)
    }

    fn truth(&self) -> BTreeMap<String, Item> {
        self.source
            .ids()
            .into_iter()
            .filter_map(|id| {
                let item = self.source.item(&id)?;
                Some((
                    id,
                    Item {
                        title: item.title,
                        body: item.body,
                        version: item.version,
                    },
                ))
            })
            .collect()
    }

    fn project(content: &Value) -> Item {
        Item {
            title: content["title"].as_str().unwrap_or("<missing>").to_owned(),
            body: content["body"].as_str().unwrap_or("<missing>").to_owned(),
            version: content["version"].as_u64().unwrap_or(0),
        }
    }

    fn list_calls(&self) -> u64 {
        self.source.counts().list_calls
    }

    fn fetch_calls(&self) -> u64 {
        self.source.counts().item_fetches
    }

    fn reset_counters(&self) {
        self.source.reset_counters();
    }

    fn set_fault_rates(&self, rates: FaultRates) {
        self.faults.set_rates(rates);
    }

    fn faults_injected(&self) -> u64 {
        self.faults.injected()
    }

    fn expire_tokens_after_calls(&self, _calls: u64) -> bool {
        false
    }

    fn tokens_issued(&self) -> u64 {
        0
    }

    fn revoke_credentials(&self) {
        self.source.revoke_token();
    }

    fn reauthorize(&self) -> Credentials {
        self.source.set_token("token-reauthorized");
        self.credentials()
    }

    fn expire_history_cursor(&self) {
        self.source.expire_cursors();
    }

    fn response_gate(&self) -> &ResponseGate {
        &self.gate
    }

    fn fetch_path(&self, id: &str) -> String {
        format!("/items/{id}")
    }
}
