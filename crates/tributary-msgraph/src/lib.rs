//! What every Microsoft Graph integration (Outlook mail, OneDrive) shares, written
//! once: an integration depends on the SDK and this crate only, as the Google
//! integrations depend on `tributary-google`.
//!
//! Module map:
//! - [`settings`]: [`GraphSettings`], the `baseUrl`, `tokenUrl`, `tenant` and `pageSize`
//!   settings both integrations take;
//! - [`oauth`]: the identity platform's endpoints of a tenant, and what its token
//!   endpoint's answers mean (the refresh itself is the SDK kit's);
//! - [`error`]: Graph's error envelope and [`GraphError`], the outcomes a sync handles
//!   (not found, resync required) apart from the engine's error classes;
//! - [`client`]: [`GraphClient`], GETs over the kit's bearer client with `Prefer`
//!   headers, origin-checked links and bounded downloads;
//! - [`page`]: [`Page`], one page of a collection;
//! - [`delta`]: delta rounds one page per call ([`GraphClient::delta_page`]),
//!   [`DeltaItem`] and `@removed`.
//!
//! # Using it
//!
//! ```no_run
//! use serde::Deserialize;
//! use tributary_msgraph::{DeltaItem, GraphClient, GraphError, GraphSettings, Prefer, RoundProgress};
//! use tributary_sdk::kit::Job;
//! use tributary_sdk::kit::bearer::OAuthCredentials;
//! use tributary_sdk::{IntegrationError, TaskResult};
//!
//! #[derive(Deserialize)]
//! struct Message {
//!     id: String,
//!     #[serde(default)]
//!     subject: Option<String>,
//! }
//!
//! // Built once per job, in `TypedIntegration::new`.
//! fn client(
//!     job: &Job<GraphSettings, OAuthCredentials>,
//! ) -> Result<GraphClient, IntegrationError> {
//!     Ok(GraphClient::connect(job, &job.credentials, &job.settings)?.with_immutable_ids())
//! }
//!
//! // One task reads one page: `link` is the folder's initial delta URL, the stored
//! // delta link, or the next link this task's payload carries.
//! async fn delta_task(
//!     graph: &mut GraphClient,
//!     folder: &str,
//!     link: Option<&str>,
//!     page_size: u32,
//! ) -> Result<TaskResult, IntegrationError> {
//!     let initial = graph
//!         .url(&["me", "mailFolders", folder, "messages", "delta"], &[("$select", "subject")])
//!         .to_string();
//!     let prefer = Prefer::page_size(page_size).with_text_body();
//!     let page = match graph.delta_page::<Message>(link.unwrap_or(&initial), prefer).await {
//!         Ok(page) => page,
//!         Err(GraphError::ResyncRequired(resync)) => {
//!             // Drop the stored delta link; start a new round at
//!             // `resync.restart_link(&initial)` with a full comparison.
//!             let _restart = resync.restart_link(&initial);
//!             return Ok(TaskResult::new());
//!         }
//!         Err(other) => return Err(other.into()),
//!     };
//!     let mut result = TaskResult::new();
//!     let progress = page.progress.clone();
//!     for item in page.latest_by_id(|m| &m.id) {
//!         match item {
//!             DeltaItem::Item(_message) => { /* an output */ }
//!             DeltaItem::Removed { id: _, reason: _ } => { /* a deletion */ }
//!         }
//!     }
//!     match progress {
//!         // The next page is the next task's: its payload carries `next_link`.
//!         RoundProgress::Continues { next_link: _ } => {}
//!         // Only the last page moves the stored cursor.
//!         RoundProgress::Ended { delta_link } => result.set_sync_state("deltaLink", delta_link.into()),
//!     }
//!     Ok(result)
//! }
//! ```
//!
//! A single item is read with [`GraphClient::get_json`]; on
//! [`GraphError::NotFound`] it is gone (a soft delete), any other error goes to the
//! engine with `?` (`GraphError` converts into `IntegrationError`).

pub mod client;
pub mod delta;
pub mod error;
pub mod oauth;
pub mod page;
pub mod settings;

pub use client::{Download, GraphClient, Prefer, REQUEST_CLASS};
pub use delta::{DeltaItem, DeltaPage, RemovedReason, RoundProgress};
pub use error::{ErrorBody, GraphError, Resync, ResyncKind, classify, classify_error};
pub use page::Page;
pub use settings::GraphSettings;
