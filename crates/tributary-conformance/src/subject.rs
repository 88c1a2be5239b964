//! [`ConformanceSubject`]: what an integration provides to run through the scenarios.
//!
//! A subject is one running fake of the integration's service plus the knowledge of
//! how to drive it: the credentials and settings that point the integration at it,
//! the three mutations every service has (add an item, change one in place, delete
//! one), the truth to compare the database with, a list-call counter, and the hooks
//! for faults, token expiry, revocation and history-cursor expiry.
//!
//! The truth is compared through a *projection*: the part of an item that both the
//! fake and the stored content know and that a sync must keep exact (for Gmail the
//! labels and the subject; for the synthetic source the version and body). The
//! projection of stored content must be computed the way a reader of the database
//! would read it, not by re-running the integration's own mapping.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;

use serde_json::{Map, Value};
use tributary_sdk::{Credentials, ManifestError, Registration};

use tributary_testkit::fault_layer::FaultRates;
use tributary_testkit::serving::ResponseGate;

/// What a subject's service can do, beyond listing, fetching and deleting items
/// (which every service does). The macro [`crate::conformance_tests!`] stamps every
/// scenario for every subject: a scenario that needs a capability the subject declares
/// absent checks that it is truly absent and prints that it was skipped, and the
/// scenarios that only touch a capability in passing leave that part out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The integration reads the service's change history (its manifest names a
    /// history task), so changes arrive between two `start`s and a cursor can expire.
    pub history: bool,
    /// Items change in place at the service, keeping their id (Gmail: labels).
    pub edits: bool,
    /// A deleted item can come back with the same id (Gmail: out of the trash).
    pub restore: bool,
    /// Access tokens expire and are refreshed at a token endpoint (OAuth2).
    pub expiring_tokens: bool,
    /// Each item is fetched by a job of its own, which names the item (Gmail's
    /// messages, Drive's files); false when the list pages carry the items whole
    /// (Slack's history pages), and the scenarios then leave out what they check of
    /// fetch jobs.
    pub item_fetches: bool,
}

impl Capabilities {
    /// Every capability.
    pub const ALL: Capabilities = Capabilities {
        history: true,
        edits: true,
        restore: true,
        expiring_tokens: true,
        item_fetches: true,
    };

    /// Whether `capability` is declared.
    pub fn has(self, capability: Capability) -> bool {
        match capability {
            Capability::History => self.history,
            Capability::Edits => self.edits,
            Capability::Restore => self.restore,
            Capability::ExpiringTokens => self.expiring_tokens,
        }
    }
}

/// One of the [`Capabilities`], as a scenario requires it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// [`Capabilities::history`].
    History,
    /// [`Capabilities::edits`].
    Edits,
    /// [`Capabilities::restore`].
    Restore,
    /// [`Capabilities::expiring_tokens`].
    ExpiringTokens,
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Capability::History => "history",
            Capability::Edits => "edits",
            Capability::Restore => "restore",
            Capability::ExpiringTokens => "expiring tokens",
        })
    }
}

/// An integration's fake, driven by the conformance scenarios.
///
/// Every method but [`ConformanceSubject::start`] is synchronous: fakes keep their
/// state in memory and change it directly.
pub trait ConformanceSubject: Send + Sync + Sized + 'static {
    /// One item's comparable projection (see the module docs).
    type Projection: Debug + Clone + PartialEq + Send;

    /// What the service can do (see [`Capabilities`]).
    const CAPABILITIES: Capabilities;

    /// How many items the full-sync scenario syncs.
    const FULL_SYNC_ITEMS: usize;

    /// How many items the re-sync scenario starts with: enough pages that a walk
    /// through all of them would exceed the 4 list calls it allows.
    const RESYNC_ITEMS: usize = 600;

    /// How many items the other scenarios start with.
    const ITEMS: usize = 150;

    /// The most list calls a `start` with nothing new may make: 4, or more for a
    /// service listed per container (Slack: one history call per conversation).
    fn resync_list_calls(&self) -> u64 {
        4
    }

    /// The integration's registration (its manifest names the domain and the history
    /// task type).
    fn registration() -> Result<Registration, ManifestError>;

    /// Starts a fake holding `items` items, generated from `seed`.
    fn start(items: usize, seed: u64) -> impl Future<Output = Self> + Send;

    /// The credentials that link an account to this fake.
    fn credentials(&self) -> Credentials;

    /// The settings that point the integration at this fake.
    fn settings(&self) -> Map<String, Value>;

    // ---- mutations ----

    /// Adds one item, newer than every other; returns its external id.
    fn add_item(&self) -> String;

    /// Changes item `id` in place so that its projection changes (for Gmail a label
    /// change); returns false when the service has no edits
    /// ([`Capabilities::edits`]).
    fn edit_item(&self, id: &str) -> bool;

    /// Removes item `id` from what a sync must hold.
    fn delete_item(&self, id: &str);

    /// Brings back an item that [`ConformanceSubject::delete_item`] removed, with the
    /// same external id (Gmail: out of the trash); returns its id, or `None` when no
    /// removed item can come back (always `None` without [`Capabilities::restore`]).
    fn restore_item(&self) -> Option<String>;

    // ---- truth ----

    /// Every item a sync must hold, as external id → projection.
    fn truth(&self) -> BTreeMap<String, Self::Projection>;

    /// The projection of one stored item's content.
    fn project(content: &Value) -> Self::Projection;

    // ---- counters ----

    /// Requests that list items (pages of ids) so far.
    fn list_calls(&self) -> u64;

    /// Requests that fetch one item so far.
    fn fetch_calls(&self) -> u64;

    /// Sets the counters back to zero.
    fn reset_counters(&self);

    // ---- faults and credentials ----

    /// Answers API requests with faults at these rates from now on
    /// ([`FaultRates::NONE`] stops them).
    fn set_fault_rates(&self, rates: FaultRates);

    /// API requests answered with an injected fault so far.
    fn faults_injected(&self) -> u64;

    /// Lets `calls` more API requests through, then expires every access token, as a
    /// token running out in the middle of a sync. Returns false when the service has
    /// no expiring tokens ([`Capabilities::expiring_tokens`]).
    fn expire_tokens_after_calls(&self, calls: u64) -> bool;

    /// Tokens the fake's token endpoint issued so far (0 without one).
    fn tokens_issued(&self) -> u64;

    /// Revokes the linked credentials for good: the user must authorize again.
    fn revoke_credentials(&self);

    /// Authorizes again after [`ConformanceSubject::revoke_credentials`]; returns the
    /// new credentials.
    fn reauthorize(&self) -> Credentials;

    /// Forgets the change history: a stored history cursor is now too old (only called
    /// with [`Capabilities::history`]).
    fn expire_history_cursor(&self);

    // ---- races ----

    /// The gate in front of the fake's responses (serve the fake through
    /// [`ResponseGate::layer`]).
    fn response_gate(&self) -> &ResponseGate;

    /// A fragment of the path of the request that fetches item `id`, and of no other
    /// request the integration sends (for Gmail `/messages/{id}`).
    fn fetch_path(&self, id: &str) -> String;
}
