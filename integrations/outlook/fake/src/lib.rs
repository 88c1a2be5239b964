//! A stateful fake of Microsoft Graph v1.0's Outlook mail API, on loopback HTTP,
//! speaking Graph's wire format, for the `outlook` integration's tests and `tributary
//! fake outlook`.
//!
//! The fake follows Microsoft's published reference (the Graph v1.0 OpenAPI and CSDL
//! descriptions of `message`, `mailFolder` and `fileAttachment`, the message delta and
//! throttling pages, the identity platform's OAuth 2.0 pages), collected with their
//! wire facts in the project's shared spec folder. What every Graph fake shares (the
//! token endpoint, the error envelope, per-mailbox throttling, faults, the request
//! pipeline) is `tributary-msgraph-fake`; this crate is the mailbox and its routes.
//!
//! # What it serves
//!
//! | operation (counters) | request |
//! |---|---|
//! | `mailFolder.list` | `GET /v1.0/me/mailFolders` (top-level folders) |
//! | `mailFolder.get` | `GET /v1.0/me/mailFolders/{id}` |
//! | `mailFolder.childFolders` | `GET /v1.0/me/mailFolders/{id}/childFolders` |
//! | `message.list` | `GET /v1.0/me/mailFolders/{id}/messages` |
//! | `message.delta` | `GET /v1.0/me/mailFolders/{id}/messages/delta` (also `delta()`, `microsoft.graph.delta` and `microsoft.graph.delta()`) |
//! | `message.listAll` | `GET /v1.0/me/messages` (every folder) |
//! | `message.get` | `GET /v1.0/me/messages/{id}` |
//! | `message.value` | `GET /v1.0/me/messages/{id}/$value` (RFC 5322 MIME) |
//! | `attachment.list` | `GET /v1.0/me/messages/{id}/attachments` |
//! | `attachment.get` | `GET /v1.0/me/messages/{id}/attachments/{id}` |
//! | `me.get` | `GET /v1.0/me` (from `tributary-msgraph-fake`) |
//! | identity platform | `GET /{tenant}/oauth2/v2.0/authorize`, `POST /{tenant}/oauth2/v2.0/token` |
//!
//! Every request needs a bearer token of the mailbox's owner holding `Mail.Read`,
//! `Mail.ReadWrite` or `Mail.ReadBasic` (403 `ErrorAccessDenied` otherwise; a token
//! of another user of the tenant gets 404 `MailboxNotEnabledForRESTAPI`).
//!
//! # Behaviour worth knowing
//!
//! - **Folders.** The well-known folders (`msgfolderroot`, `inbox`, `drafts`,
//!   `sentitems`, `deleteditems`, `archive`, `junkemail`, `outbox`) are usable in
//!   place of ids (case-insensitive). `/me/mailFolders` lists the root's children;
//!   `childFolders` a folder's. Folder ids never change. Lists are paged by `$top`
//!   (default 10, at most 1,000) and `$skip`, with `@odata.nextLink`; `$select`,
//!   `$count=true` and `includeHiddenFolders` (no folder is hidden) are accepted.
//! - **Messages.** `$top` (default 10, at most 1,000), `$skip` with
//!   `@odata.nextLink`, `$orderby=receivedDateTime desc` (the default) or `asc`,
//!   `$select` (`id` always; `uniqueBody` and `internetMessageHeaders` only when
//!   selected), `$expand=attachments`, `$count=true`. `$filter` and `$search` are
//!   refused with 400: the fake does not evaluate them.
//! - **Ids.** Every message has a mutable id (Exchange's default: it changes when the
//!   message moves) and an immutable one (never changes). A request with `Prefer:
//!   IdType="ImmutableId"` is answered with immutable ids, any other with mutable ids;
//!   both kinds are accepted in paths either way. A moved message's old mutable id is
//!   404. Ids are case-sensitive.
//! - **Bodies** are HTML unless `Prefer: outlook.body-content-type="text"`. Honoured
//!   preferences are listed in `Preference-Applied`.
//! - **Delta** (per folder). The first round lists every message now in the folder,
//!   newest first, in pages of `Prefer: odata.maxpagesize` (else the first request's
//!   `$top`, else 10; at most 1,000) with `@odata.nextLink` (`$skiptoken`), the last
//!   page with `@odata.deltaLink` (`$deltatoken`), never both. Query options
//!   (`$select`, `changeType=created|updated|deleted`, `$top`) are read on the first
//!   request only and travel in the tokens. A later round returns each message
//!   created, changed or moved in since the previous round once, in its latest state,
//!   and `{"@odata.type": "#microsoft.graph.message", "id", "@removed": {"reason"}}`
//!   for each message gone: `deleted` when deleted for good, and for a message moved
//!   out [`OutlookConfig::move_out_reason`] (default `changed`; Microsoft's note on
//!   delta says `deleted`, so it is configurable), while the destination folder's
//!   round lists it as a message. The removed id is the one the request's id kind
//!   gives (the mutable id the message had in that folder, or its immutable id). With
//!   mutable ids a message that left and came back shows as removed (old id) and
//!   listed (new id). Replays (an item twice in a page) happen at
//!   [`OutlookConfig::delta_replay_rate`] or on demand
//!   ([`OutlookHandle::replay_next_delta_pages`]). A token of a folder whose tokens
//!   were forgotten ([`OutlookHandle::forget_delta_tokens`]) answers 410 Gone with
//!   code [`OutlookConfig::resync_code`] (default `syncStateNotFound`) and a
//!   `Location`: a fresh initial delta URL of the folder (with the round's options).
//! - **Deleting** ([`OutlookHandle::delete_message`]) moves a message to Deleted Items,
//!   as Outlook does; deleting it from Deleted Items removes it for good.
//! - Throttling (10,000 requests per 10 minutes and 4 concurrent requests per
//!   mailbox), faults, latency, the gate, token rotation and the counters are
//!   `tributary-msgraph-fake`'s: reach them with [`OutlookHandle::graph`].

mod delta;
mod json;
mod mailbox;
mod server;
pub mod standalone;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tokio::net::TcpListener;
use tributary_msgraph_fake::{GraphHandle, GraphRoutes, GraphUrls, GraphUser};
use tributary_testkit::serving::LoopbackServer;

pub use standalone::{OutlookFake, fake};
pub use tributary_msgraph_fake::{Fault, Grant, GraphConfig, RefreshRotation, ThrottleConfig};

use mailbox::Mailbox;

/// The scopes a full mail sync takes (with a refresh token).
pub const MAIL_SCOPES: &[&str] = &["offline_access", "User.Read", "Mail.Read"];

/// A recipient: `{"emailAddress": {"name", "address"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recipient {
    /// The display name.
    pub name: String,
    /// The address.
    pub address: String,
}

impl Recipient {
    /// A recipient with this name and address.
    pub fn new(name: &str, address: &str) -> Recipient {
        Recipient {
            name: name.to_owned(),
            address: address.to_owned(),
        }
    }
}

/// A message's follow-up flag (`flag.flagStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FlagStatus {
    /// `notFlagged`.
    #[default]
    NotFlagged,
    /// `flagged`.
    Flagged,
    /// `complete`.
    Complete,
}

impl FlagStatus {
    /// Graph's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagStatus::NotFlagged => "notFlagged",
            FlagStatus::Flagged => "flagged",
            FlagStatus::Complete => "complete",
        }
    }
}

/// A message's importance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Importance {
    /// `low`.
    Low,
    /// `normal`.
    #[default]
    Normal,
    /// `high`.
    High,
}

impl Importance {
    /// Graph's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Importance::Low => "low",
            Importance::Normal => "normal",
            Importance::High => "high",
        }
    }
}

/// The `@removed.reason` of a message gone from a folder's delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemovedReason {
    /// `deleted`: gone for good.
    Deleted,
    /// `changed`: gone from this folder, still in the mailbox.
    Changed,
}

impl RemovedReason {
    /// Graph's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RemovedReason::Deleted => "deleted",
            RemovedReason::Changed => "changed",
        }
    }
}

/// The delta function's `changeType` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeType {
    /// `created`: messages new to the folder.
    Created,
    /// `updated`: messages changed in the folder.
    Updated,
    /// `deleted`: messages gone from the folder.
    Deleted,
}

impl ChangeType {
    /// Graph's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Created => "created",
            ChangeType::Updated => "updated",
            ChangeType::Deleted => "deleted",
        }
    }

    /// The type a name gives (case-insensitive).
    pub fn parse(name: &str) -> Option<ChangeType> {
        [
            ChangeType::Created,
            ChangeType::Updated,
            ChangeType::Deleted,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(name))
    }
}

/// A file attachment of a new message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttachment {
    /// The file name.
    pub name: String,
    /// Its MIME type.
    pub content_type: String,
    /// Whether it is inline (then it does not count for `hasAttachments`).
    pub is_inline: bool,
    /// Its `contentId` (for inline images referenced as `cid:` in the body).
    pub content_id: Option<String>,
    /// The bytes.
    pub content: Vec<u8>,
}

/// A message to deliver with [`OutlookHandle::deliver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The subject.
    pub subject: String,
    /// The text body.
    pub body_text: String,
    /// The HTML body (made from the text when `None`).
    pub body_html: Option<String>,
    /// The sender (`from` and `sender`).
    pub from: Recipient,
    /// `toRecipients`.
    pub to: Vec<Recipient>,
    /// `ccRecipients`.
    pub cc: Vec<Recipient>,
    /// `bccRecipients`.
    pub bcc: Vec<Recipient>,
    /// The importance.
    pub importance: Importance,
    /// Whether it is read.
    pub is_read: bool,
    /// The follow-up flag.
    pub flag: FlagStatus,
    /// The categories.
    pub categories: Vec<String>,
    /// Its file attachments.
    pub attachments: Vec<NewAttachment>,
    /// When it was received (now when `None`).
    pub received: Option<chrono::DateTime<chrono::Utc>>,
    /// Its conversation (a new one when `None`).
    pub conversation_id: Option<String>,
    /// Its RFC 5322 Message-ID (one is made when `None`).
    pub internet_message_id: Option<String>,
    /// The folder (id or well-known name) it arrives in; the inbox when `None`.
    pub folder: Option<String>,
}

impl NewMessage {
    /// A plain unread message from `from` with this subject and text, to the inbox.
    pub fn new(subject: &str, from: Recipient, body_text: &str) -> NewMessage {
        NewMessage {
            subject: subject.to_owned(),
            body_text: body_text.to_owned(),
            body_html: None,
            from,
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            importance: Importance::Normal,
            is_read: false,
            flag: FlagStatus::NotFlagged,
            categories: Vec::new(),
            attachments: Vec::new(),
            received: None,
            conversation_id: None,
            internet_message_id: None,
            folder: None,
        }
    }
}

/// A message's two ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageIds {
    /// The (mutable) default id it has now.
    pub id: String,
    /// Its immutable id.
    pub immutable_id: String,
}

/// One message as the fake holds it: what a sync must end up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTruth {
    /// The immutable id.
    pub immutable_id: String,
    /// The current mutable id.
    pub id: String,
    /// The folder's id.
    pub folder_id: String,
    /// The folder's well-known name, if it has one.
    pub folder_well_known: Option<&'static str>,
    /// The folder's path of display names (`/Inbox/Projects`).
    pub folder_path: String,
    /// The subject.
    pub subject: String,
    /// The text body.
    pub body_text: String,
    /// The sender's address.
    pub from: String,
    /// Whether it is read.
    pub is_read: bool,
    /// Whether it is a draft.
    pub is_draft: bool,
    /// The follow-up flag.
    pub flag: FlagStatus,
    /// The categories.
    pub categories: Vec<String>,
    /// `changeKey` (changes with every change).
    pub change_key: String,
    /// `receivedDateTime`.
    pub received: String,
    /// `lastModifiedDateTime`.
    pub last_modified: String,
    /// `hasAttachments`.
    pub has_attachments: bool,
    /// The names of its attachments, inline ones included.
    pub attachment_names: Vec<String>,
    /// `internetMessageId`.
    pub internet_message_id: String,
    /// `conversationId`.
    pub conversation_id: String,
}

/// One mail folder as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderTruth {
    /// The id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The parent's id (`None` for the root).
    pub parent_id: Option<String>,
    /// The well-known name, if it has one.
    pub well_known: Option<&'static str>,
    /// The path of display names (`/Inbox/Projects`; `/` for the root).
    pub path: String,
    /// Messages in it.
    pub messages: usize,
}

/// What [`OutlookHandle::delete_message`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// Moved to Deleted Items; its ids now.
    MovedToDeletedItems(MessageIds),
    /// It was in Deleted Items: gone for good.
    Purged,
}

/// What a generated mailbox holds.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxConfig {
    /// User folders besides the well-known ones, top-level and child folders (some
    /// under Inbox and Archive, some under other user folders).
    pub folders: usize,
    /// Messages, spread over Inbox (most), Sent Items, Archive, Drafts and the user
    /// folders (and Deleted Items and Junk Email with
    /// [`MailboxConfig::include_deleted_and_junk`]).
    pub messages: usize,
    /// Share of messages with 1 to 3 attachments (PDF, text, CSV, an inline image).
    pub attachment_rate: f64,
    /// Received times spread over this many days before now.
    pub days: u32,
    /// Whether messages are also generated in Deleted Items and Junk Email.
    pub include_deleted_and_junk: bool,
    /// The generator's seed (the same seed, the same mailbox).
    pub seed: u64,
}

impl Default for MailboxConfig {
    fn default() -> MailboxConfig {
        MailboxConfig {
            folders: 0,
            messages: 0,
            attachment_rate: 0.1,
            days: 365,
            include_deleted_and_junk: false,
            seed: 42,
        }
    }
}

/// What a fake Outlook mailbox starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlookConfig {
    /// The tenant: client, user, tokens, throttle, latency (ignored by
    /// [`OutlookHandle::with_graph`], which is given one).
    pub graph: GraphConfig,
    /// The generated content.
    pub mailbox: MailboxConfig,
    /// The `@removed.reason` of a message moved out of a folder.
    pub move_out_reason: RemovedReason,
    /// Probability that a message of a delta page is sent twice in it.
    pub delta_replay_rate: f64,
    /// The `error.code` of a 410 for a forgotten delta token: `syncStateNotFound` or
    /// `resyncRequired`.
    pub resync_code: &'static str,
}

impl Default for OutlookConfig {
    fn default() -> OutlookConfig {
        OutlookConfig {
            graph: GraphConfig::default(),
            mailbox: MailboxConfig::default(),
            move_out_reason: RemovedReason::Changed,
            delta_replay_rate: 0.0,
            resync_code: "syncStateNotFound",
        }
    }
}

/// Why a hook refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutlookFakeError {
    /// No message has this id (of either kind).
    #[error("no message with id {0}")]
    MessageNotFound(String),
    /// No folder has this id or well-known name.
    #[error("no folder {0}")]
    FolderNotFound(String),
    /// The change makes no sense.
    #[error("{0}")]
    Invalid(String),
}

/// Everything behind the handle's lock.
pub(crate) struct Inner {
    pub(crate) mailbox: Mailbox,
    pub(crate) replay_rate: f64,
    pub(crate) forced_replays: usize,
    generator: StdRng,
    generated: u64,
    attachment_rate: f64,
}

pub(crate) struct Shared {
    pub(crate) graph: GraphHandle,
    pub(crate) owner: GraphUser,
    pub(crate) resync_code: &'static str,
    pub(crate) inner: Mutex<Inner>,
}

/// A fake Outlook mailbox with its Graph tenant: the state and the hooks. Cheap to
/// clone; every clone is the same mailbox. Serve it with [`OutlookHandle::router`]
/// (or mount [`OutlookHandle::graph_routes`] with other Graph routes) or run it with
/// [`FakeOutlook::start`].
///
/// Hooks take a message's id of either kind and act as a user in Outlook would:
/// each change is one new version (a new `changeKey` and `lastModifiedDateTime`).
#[derive(Clone)]
pub struct OutlookHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for OutlookHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutlookHandle")
            .field("owner", &self.shared.owner.address)
            .finish_non_exhaustive()
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

impl OutlookHandle {
    /// A tenant of `config.graph` and the mailbox of its first user, generated as
    /// `config.mailbox` says (outside any delta round: a first round lists it all).
    pub fn new(config: OutlookConfig) -> OutlookHandle {
        let graph = GraphHandle::new(config.graph.clone());
        OutlookHandle::with_graph(graph, config)
    }

    /// The mailbox of `graph`'s first user, on a tenant shared with other Graph fakes
    /// (`config.graph` is not used).
    pub fn with_graph(graph: GraphHandle, config: OutlookConfig) -> OutlookHandle {
        let owner = graph.user();
        let mut mailbox = Mailbox::new(
            Recipient::new(&owner.display_name, &owner.address),
            config.mailbox.seed,
            config.move_out_reason,
        );
        mailbox::generate(&mut mailbox, &config.mailbox, now());
        OutlookHandle {
            shared: Arc::new(Shared {
                graph,
                owner,
                resync_code: config.resync_code,
                inner: Mutex::new(Inner {
                    mailbox,
                    replay_rate: config.delta_replay_rate,
                    forced_replays: 0,
                    generator: StdRng::seed_from_u64(config.mailbox.seed ^ 0x006e_6577),
                    generated: config.mailbox.messages as u64,
                    attachment_rate: config.mailbox.attachment_rate,
                }),
            }),
        }
    }

    pub(crate) fn inner(&self) -> MutexGuard<'_, Inner> {
        self.shared
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The tenant: tokens, throttle, faults, latency, gate and counters.
    pub fn graph(&self) -> &GraphHandle {
        &self.shared.graph
    }

    /// The mailbox's owner.
    pub fn owner(&self) -> GraphUser {
        self.shared.owner.clone()
    }

    /// The mail routes, to mount with [`GraphHandle::router`] (alone, or merged with
    /// another Graph API's routes on one server).
    pub fn graph_routes(&self) -> GraphRoutes {
        server::routes(self)
    }

    /// The axum router: the mail API behind the tenant's pipeline, and the identity
    /// platform's endpoints.
    pub fn router(&self) -> axum::Router {
        self.graph().router(self.graph_routes())
    }

    /// A grant of the owner with [`MAIL_SCOPES`].
    pub fn mail_grant(&self) -> Grant {
        self.graph().mint_grant(MAIL_SCOPES)
    }

    /// A folder's id by id or well-known name (`inbox`).
    pub fn folder_id(&self, id_or_name: &str) -> Option<String> {
        let inner = self.inner();
        let key = inner.mailbox.folder_key(id_or_name)?;
        Some(inner.mailbox.folders[key].id.clone())
    }

    /// Creates a user folder under `parent` (a folder id or well-known name; the root,
    /// that is top-level, when `None`); returns its id.
    pub fn create_folder(
        &self,
        name: &str,
        parent: Option<&str>,
    ) -> Result<String, OutlookFakeError> {
        let mut inner = self.inner();
        let key = inner.mailbox.create_folder(name, parent)?;
        Ok(inner.mailbox.folders[key].id.clone())
    }

    /// Delivers a message (to `message.folder`, the inbox by default).
    pub fn deliver(&self, message: NewMessage) -> Result<MessageIds, OutlookFakeError> {
        let mut inner = self.inner();
        let folder = match message.folder.as_deref() {
            None => inner.mailbox.well_known("inbox"),
            Some(f) => inner
                .mailbox
                .folder_key(f)
                .filter(|k| *k != 0)
                .ok_or_else(|| OutlookFakeError::FolderNotFound(f.to_owned()))?,
        };
        let key = inner.mailbox.insert(message, folder, now());
        Ok(ids_of(&inner.mailbox, key))
    }

    /// Delivers a generated message to the inbox, received now.
    pub fn generate_message(&self) -> MessageIds {
        let mut inner = self.inner();
        inner.generated += 1;
        let n = inner.generated;
        let owner = inner.mailbox.owner.clone();
        let rate = inner.attachment_rate;
        let message = mailbox::generated_message(&mut inner.generator, &owner, false, rate, n);
        let inbox = inner.mailbox.well_known("inbox");
        let key = inner.mailbox.insert(message, inbox, now());
        ids_of(&inner.mailbox, key)
    }

    /// Moves a message to a folder (id or well-known name): a new mutable id, the same
    /// immutable id.
    pub fn move_message(&self, id: &str, folder: &str) -> Result<MessageIds, OutlookFakeError> {
        let mut inner = self.inner();
        let target = inner
            .mailbox
            .folder_key(folder)
            .ok_or_else(|| OutlookFakeError::FolderNotFound(folder.to_owned()))?;
        let key = inner.mailbox.move_to(id, target, now())?;
        Ok(ids_of(&inner.mailbox, key))
    }

    /// Sets a message's follow-up flag.
    pub fn set_flag(&self, id: &str, flag: FlagStatus) -> Result<(), OutlookFakeError> {
        self.inner()
            .mailbox
            .update(id, now(), |m| m.flag = flag)
            .map(drop)
    }

    /// Marks a message read or unread.
    pub fn set_read(&self, id: &str, read: bool) -> Result<(), OutlookFakeError> {
        self.inner()
            .mailbox
            .update(id, now(), |m| m.is_read = read)
            .map(drop)
    }

    /// Replaces a message's categories.
    pub fn set_categories(&self, id: &str, categories: &[&str]) -> Result<(), OutlookFakeError> {
        let categories: Vec<String> = categories.iter().map(|c| (*c).to_owned()).collect();
        self.inner()
            .mailbox
            .update(id, now(), |m| m.categories = categories)
            .map(drop)
    }

    /// Changes a message's subject (as editing a draft would).
    pub fn set_subject(&self, id: &str, subject: &str) -> Result<(), OutlookFakeError> {
        self.inner()
            .mailbox
            .update(id, now(), |m| m.subject = subject.to_owned())
            .map(drop)
    }

    /// Deletes a message as Outlook does: to Deleted Items, or for good when it is
    /// there already.
    pub fn delete_message(&self, id: &str) -> Result<Deleted, OutlookFakeError> {
        let mut inner = self.inner();
        let deleted_items = inner.mailbox.well_known("deleteditems");
        let message = inner
            .mailbox
            .message(id)
            .ok_or_else(|| OutlookFakeError::MessageNotFound(id.to_owned()))?;
        if message.folder == deleted_items {
            inner.mailbox.purge(id)?;
            Ok(Deleted::Purged)
        } else {
            let key = inner.mailbox.move_to(id, deleted_items, now())?;
            Ok(Deleted::MovedToDeletedItems(ids_of(&inner.mailbox, key)))
        }
    }

    /// Deletes a message for good, wherever it is (a hard delete).
    pub fn purge_message(&self, id: &str) -> Result<(), OutlookFakeError> {
        self.inner().mailbox.purge(id)
    }

    /// The folder's delta and skip tokens handed out so far answer 410 Gone from now
    /// on; false when there is no such folder.
    pub fn forget_delta_tokens(&self, folder: &str) -> bool {
        let mut inner = self.inner();
        match inner.mailbox.folder_key(folder) {
            Some(key) => {
                inner.mailbox.folders[key].epoch += 1;
                true
            }
            None => false,
        }
    }

    /// Every folder's delta tokens answer 410 Gone from now on.
    pub fn forget_all_delta_tokens(&self) {
        for folder in &mut self.inner().mailbox.folders {
            folder.epoch += 1;
        }
    }

    /// The next `pages` delta pages that list a message send their first message
    /// twice (a replay).
    pub fn replay_next_delta_pages(&self, pages: usize) {
        self.inner().forced_replays += pages;
    }

    /// The probability that a message of a delta page is sent twice in it.
    pub fn set_delta_replay_rate(&self, rate: f64) {
        self.inner().replay_rate = rate;
    }

    /// Every message by immutable id: what a full sync of every folder must hold.
    pub fn messages(&self) -> BTreeMap<String, MessageTruth> {
        let inner = self.inner();
        inner
            .mailbox
            .messages
            .values()
            .map(|m| (m.immutable_id.clone(), truth_of(&inner.mailbox, m)))
            .collect()
    }

    /// One message by either kind of id.
    pub fn message(&self, id: &str) -> Option<MessageTruth> {
        let inner = self.inner();
        inner
            .mailbox
            .message(id)
            .map(|m| truth_of(&inner.mailbox, m))
    }

    /// How many messages the mailbox holds.
    pub fn message_count(&self) -> usize {
        self.inner().mailbox.messages.len()
    }

    /// Every folder, the root first, in creation order.
    pub fn folders(&self) -> Vec<FolderTruth> {
        let inner = self.inner();
        let mailbox = &inner.mailbox;
        mailbox
            .folders
            .iter()
            .enumerate()
            .map(|(key, f)| FolderTruth {
                id: f.id.clone(),
                name: f.name.clone(),
                parent_id: f.parent.map(|p| mailbox.folders[p].id.clone()),
                well_known: f.well_known,
                path: mailbox.folder_path(key),
                messages: f.messages.len(),
            })
            .collect()
    }
}

fn ids_of(mailbox: &Mailbox, key: u64) -> MessageIds {
    mailbox
        .messages
        .get(&key)
        .map(|m| MessageIds {
            id: m.mutable_id.clone(),
            immutable_id: m.immutable_id.clone(),
        })
        .unwrap_or_else(|| MessageIds {
            id: String::new(),
            immutable_id: String::new(),
        })
}

fn truth_of(mailbox: &Mailbox, m: &mailbox::Message) -> MessageTruth {
    let folder = &mailbox.folders[m.folder];
    MessageTruth {
        immutable_id: m.immutable_id.clone(),
        id: m.mutable_id.clone(),
        folder_id: folder.id.clone(),
        folder_well_known: folder.well_known,
        folder_path: mailbox.folder_path(m.folder),
        subject: m.subject.clone(),
        body_text: m.body_text.clone(),
        from: m.from.address.clone(),
        is_read: m.is_read,
        is_draft: m.is_draft,
        flag: m.flag,
        categories: m.categories.clone(),
        change_key: m.change_key(),
        received: json::time(m.received),
        last_modified: json::time(m.modified),
        has_attachments: m.has_attachments(),
        attachment_names: m.attachments.iter().map(|a| a.name.clone()).collect(),
        internet_message_id: m.internet_message_id.clone(),
        conversation_id: m.conversation_id.clone(),
    }
}

/// An [`OutlookHandle`] served on a loopback port.
#[derive(Debug)]
pub struct FakeOutlook {
    handle: OutlookHandle,
    server: LoopbackServer,
}

impl FakeOutlook {
    /// Starts a mailbox on a free loopback port.
    pub async fn start(config: OutlookConfig) -> std::io::Result<FakeOutlook> {
        FakeOutlook::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts a mailbox on `addr`.
    pub async fn start_on(addr: SocketAddr, config: OutlookConfig) -> std::io::Result<FakeOutlook> {
        let handle = tokio::task::spawn_blocking(move || OutlookHandle::new(config))
            .await
            .map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(addr).await?;
        let server = LoopbackServer::serve(listener, handle.router());
        Ok(FakeOutlook { handle, server })
    }

    /// The mailbox's state and hooks.
    pub fn handle(&self) -> &OutlookHandle {
        &self.handle
    }

    /// The URLs of the server: the Graph root, the token and authorize endpoints.
    pub fn urls(&self) -> GraphUrls {
        GraphUrls::new(self.server.addr())
    }

    /// `http://127.0.0.1:PORT/v1.0`: the Graph root, the `baseUrl` setting.
    pub fn base_url(&self) -> String {
        self.urls().base_url()
    }

    /// `http://127.0.0.1:PORT/common/oauth2/v2.0/token`, the `tokenUrl` setting.
    pub fn token_url(&self) -> String {
        self.urls().token_url()
    }

    /// `http://127.0.0.1:PORT/common/oauth2/v2.0/authorize`.
    pub fn authorize_url(&self) -> String {
        self.urls().authorize_url()
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Stops serving.
    pub async fn stop(self) -> std::io::Result<()> {
        self.server.stop().await
    }
}
