//! The Drive fake as a conformance subject, shared by the conformance scenarios and
//! the Drive-specific tests.
//!
//! The projection compared with the fake's truth is an item's path, MIME type, Drive
//! version and text. The truth is every visible, untrashed file and folder, as the
//! fake computes it from its own tree (never from the integration's code).
//!
//! Mutations keep to one item, as the scenarios expect: an edit of a file changes its
//! content; an edit of a folder changes its metadata only (its name and place stay,
//! so nothing under it moves); deleting a folder first moves what it holds to its
//! parent (as a user emptying it would), then removes it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tributary_conformance::{Capabilities, ConformanceSubject, FaultRates};
use tributary_google_drive_fake::{DriveConfig, DriveHandle, DriveMethod, FaultConfig, FileBody};
use tributary_sdk::serde_json::{Map, Value};
use tributary_sdk::{Credentials, ManifestError, Registration};
use tributary_testkit::serving::{LoopbackServer, ResponseGate};

/// A fake Drive driven by the scenarios, served behind a response gate.
pub struct DriveSubject {
    pub fake: DriveHandle,
    pub server: LoopbackServer,
    gate: ResponseGate,
    /// The refresh token the account is linked with (changes on re-authorization).
    refresh_token: Mutex<String>,
    /// Deletions so far: they rotate between deleting, trashing and unsharing.
    deletions: AtomicU64,
    /// Edits so far (each edit writes different bytes).
    edits: AtomicU64,
    /// Items moved to the trash, oldest first: what a restore takes out again.
    trashed: Mutex<Vec<String>>,
    /// Settings added to the ones pointing at the fake (set before linking).
    pub extra_settings: Mutex<Map<String, Value>>,
}

/// What must match between a Drive item and its stored content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveItem {
    pub path: String,
    pub mime_type: String,
    pub version: String,
    pub text: Option<String>,
}

impl DriveSubject {
    /// A fake with `files` files in `folders` folders over My Drive and two shared
    /// drives.
    pub async fn with_tree(files: usize, folders: usize, seed: u64) -> DriveSubject {
        let config = DriveConfig {
            files,
            folders,
            shared_drives: 2,
            seed,
            ..DriveConfig::default()
        };
        let fake = tokio::task::spawn_blocking(move || DriveHandle::new(config))
            .await
            .expect("generate the drive");
        let gate = ResponseGate::new();
        let server = LoopbackServer::start(gate.layer(fake.router())).await;
        let refresh_token = fake.credentials().refresh_token;
        DriveSubject {
            fake,
            server,
            gate,
            refresh_token: Mutex::new(refresh_token),
            deletions: AtomicU64::new(0),
            edits: AtomicU64::new(0),
            trashed: Mutex::new(Vec::new()),
            extra_settings: Mutex::new(Map::new()),
        }
    }

    /// Moves `id` to the trash, for a later [`ConformanceSubject::restore_item`].
    pub fn trash_for_later(&self, id: &str) -> Result<(), String> {
        self.fake.trash(id).map_err(|e| e.to_string())?;
        lock(&self.trashed).push(id.to_owned());
        Ok(())
    }

    fn refresh_token(&self) -> MutexGuard<'_, String> {
        lock(&self.refresh_token)
    }

    /// Moves what folder `id` holds into its parent.
    fn empty_folder(&self, id: &str) {
        let snapshot = self.fake.snapshot();
        let Some(parent) = snapshot.get(id).and_then(|f| f.parents.first().cloned()) else {
            return;
        };
        for child in snapshot
            .values()
            .filter(|f| f.parents.iter().any(|p| p == id))
        {
            self.fake
                .move_to(&child.id, &parent)
                .unwrap_or_else(|e| panic!("move {} out of {id}: {e}", child.id));
        }
    }
}

impl ConformanceSubject for DriveSubject {
    type Projection = DriveItem;

    const CAPABILITIES: Capabilities = Capabilities::ALL;

    const FULL_SYNC_ITEMS: usize = 5_000;

    fn registration() -> Result<Registration, ManifestError> {
        tributary_google_drive::registration()
    }

    async fn start(items: usize, seed: u64) -> DriveSubject {
        let folders = (items / 16).max(1);
        DriveSubject::with_tree(items - folders.min(items), folders, seed).await
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
        // Small pages, so that the scenarios' drives span many of them.
        settings.insert("pageSize".into(), Value::from(50));
        settings.insert("backfillPageSize".into(), Value::from(100));
        for (key, value) in lock(&self.extra_settings).iter() {
            settings.insert(key.clone(), value.clone());
        }
        settings
    }

    fn add_item(&self) -> String {
        self.fake.generate_file()
    }

    fn edit_item(&self, id: &str) -> bool {
        let n = self.edits.fetch_add(1, Ordering::Relaxed);
        let is_folder = self.fake.snapshot().get(id).is_some_and(|f| f.is_folder);
        let result = if is_folder {
            self.fake.touch(id)
        } else {
            self.fake.edit(
                id,
                FileBody::Bytes(format!("edited text {n}\n").into_bytes()),
            )
        };
        result.unwrap_or_else(|e| panic!("edit {id}: {e}"));
        true
    }

    fn delete_item(&self, id: &str) {
        if self.fake.snapshot().get(id).is_some_and(|f| f.is_folder) {
            self.empty_folder(id);
        }
        let result = match self.deletions.fetch_add(1, Ordering::Relaxed) % 3 {
            0 => {
                lock(&self.trashed).push(id.to_owned());
                self.fake.trash(id)
            }
            1 => self.fake.delete(id),
            _ => self.fake.unshare(id),
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

    fn truth(&self) -> BTreeMap<String, DriveItem> {
        self.fake
            .snapshot()
            .into_iter()
            .map(|(id, f)| {
                let item = DriveItem {
                    path: f.path,
                    mime_type: f.mime_type,
                    version: f.version.to_string(),
                    text: f.text,
                };
                (id, item)
            })
            .collect()
    }

    fn project(content: &Value) -> DriveItem {
        let text = |key: &str| content[key].as_str().unwrap_or("<missing>").to_owned();
        DriveItem {
            path: text("path"),
            mime_type: text("mimeType"),
            version: text("version"),
            text: content["text"].as_str().map(str::to_owned),
        }
    }

    fn list_calls(&self) -> u64 {
        self.fake.calls(DriveMethod::FilesList) + self.fake.calls(DriveMethod::DrivesList)
    }

    fn fetch_calls(&self) -> u64 {
        self.fake.item_fetches()
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
        self.fake.expire_page_tokens();
    }

    fn response_gate(&self) -> &ResponseGate {
        &self.gate
    }

    fn fetch_path(&self, id: &str) -> String {
        format!("/files/{id}")
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
