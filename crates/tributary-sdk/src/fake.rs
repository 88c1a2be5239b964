//! Fakes of the services integrations talk to, found through the registry.
//!
//! An integration may ship a *fake*: a stand-in for its service, served on a loopback
//! address, that a user can link an account to without an account at the real
//! service. `tributary fake <domain>` serves it standalone and `tributary demo` syncs
//! one. The fake lives in its integration's folder as a crate of its own (for Gmail
//! `integrations/gmail/fake/`), implements [`Fake`], and the binary's registry line
//! attaches it to the registration with [`crate::Registration::with_fake`]:
//!
//! ```text
//! tributary_gmail::registration().map(|r| r.with_fake(tributary_gmail_fake::fake())),
//! ```
//!
//! The interface is deliberately small and generic: a fake starts from
//! [`FakeOptions`] (where to listen, a seed, how many items, a delivery period, a
//! latency) and, once running ([`RunningFake`]), says what linking an account to it
//! takes ([`FakeLink`]), what a sync must hold ([`FakeTruth`]), and adds items while it
//! runs. Anything service-specific (labels, threads, OAuth consent...) stays in the
//! fake's own API, for its tests.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::Credentials;

/// How a fake starts. Every field has a meaning for every fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeOptions {
    /// The address to serve on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The seed of the generated items (the same seed, the same items).
    pub seed: u64,
    /// How many items a sync must find at the start.
    pub items: usize,
    /// Adds a new item this often while running; `None` never does.
    pub deliver_every: Option<Duration>,
    /// How long the fake takes to answer each API request, as a remote service would.
    pub latency: Duration,
}

impl Default for FakeOptions {
    fn default() -> FakeOptions {
        FakeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 42,
            items: 0,
            deliver_every: None,
            latency: Duration::ZERO,
        }
    }
}

/// What a user needs to link an account to a running fake.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeLink {
    /// The service's base URL, as the integration's settings take it.
    pub base_url: String,
    /// Other endpoints worth printing, as (label, URL): for an OAuth service its token
    /// and authorization endpoints.
    pub endpoints: Vec<(String, String)>,
    /// The settings that point the integration at the fake (`tributary link
    /// --setting`).
    pub settings: Map<String, Value>,
    /// The credentials the fake accepts (`tributary link --credentials`).
    pub credentials: Credentials,
}

/// What a sync of a fake's account must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeTruth {
    /// The external ids of the items a sync stores.
    pub synced: BTreeSet<String>,
    /// Items the fake holds that a sync leaves out (for Gmail: spam and trash).
    pub left_out: usize,
}

/// A fake of one integration's service: starts running instances.
///
/// The fake's crate exposes one function returning it (`fake()`), which the registry
/// line passes to [`crate::Registration::with_fake`].
#[async_trait::async_trait]
pub trait Fake: Send + Sync + 'static {
    /// Starts a fake on `options.listen` holding `options.items` items to sync.
    async fn start(&self, options: FakeOptions) -> std::io::Result<Box<dyn RunningFake>>;
}

/// A running fake. It stops when dropped, or with [`RunningFake::stop`].
#[async_trait::async_trait]
pub trait RunningFake: Send + Sync {
    /// One line saying what is served, e.g. `Gmail serving 1000 messages for
    /// tester@example.com`.
    fn describe(&self) -> String;

    /// What one item is called, singular (e.g. `message`).
    fn item_name(&self) -> &'static str;

    /// The settings and credentials that link an account to it, and its URLs.
    fn link(&self) -> FakeLink;

    /// What a sync must hold now.
    fn truth(&self) -> FakeTruth;

    /// Adds one item a sync stores, newer than every other; returns its external id,
    /// or `None` when the fake could not add one.
    fn add_item(&self) -> Option<String>;

    /// API requests answered so far, by the service's name of the request (only the
    /// ones asked at least once).
    fn request_counts(&self) -> BTreeMap<String, u64>;

    /// Stops serving and waits for the server to finish.
    async fn stop(self: Box<Self>) -> std::io::Result<()>;
}

/// A fake shared by the registrations that carry it.
pub type SharedFake = Arc<dyn Fake>;
