//! The synthetic source and its integration.
//!
//! - [`server`]: a deterministic, stateful loopback HTTP server ([`SourceServer`]) with
//!   hooks to add, edit and delete items, inject faults and read request counters.
//! - [`integration`]: the `synthetic` integration, which syncs that server through the
//!   SDK exactly as an integration for a real service would.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use tributary_testkit::synthetic::{SourceConfig, SourceServer};
//! let server = SourceServer::start(SourceConfig::new(1_000, 42, "token")).await?;
//! let settings = server.settings(); // {"baseUrl": "http://127.0.0.1:<port>"}
//! server.add_items(3);
//! assert_eq!(server.snapshot().len(), 1_003);
//! # Ok(()) }
//! ```

pub mod integration;
pub mod server;

pub use integration::{CURSOR_KEY, SyntheticIntegration, SyntheticTask, registration};
pub use server::{
    ChangeKind, DEFAULT_PAGE_SIZE, Fault, Item, ListCall, MAX_PAGE_SIZE, RequestCounts, Source,
    SourceConfig, SourceServer, router, serve,
};
