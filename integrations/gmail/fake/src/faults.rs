//! The Gmail API methods the fake counts; fault injection and counters are the shared
//! Google fake's (`tributary_google_fake::faults`).

pub use tributary_google_fake::faults::{Fault, FaultConfig};

/// What the fake counted, per [`GmailMethod`].
pub type Counters = tributary_google_fake::faults::Counters<GmailMethod>;

/// The fault injector of the Gmail fake.
pub(crate) type Faults = tributary_google_fake::faults::Faults<GmailMethod>;

/// One Gmail API method, as counted by the fake (the names are the discovery
/// document's method ids without the `gmail.` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GmailMethod {
    /// `users.getProfile`.
    GetProfile,
    /// `users.labels.list`.
    LabelsList,
    /// `users.messages.list`.
    MessagesList,
    /// `users.messages.get`.
    MessagesGet,
    /// `users.messages.insert`.
    MessagesInsert,
    /// `users.messages.import`.
    MessagesImport,
    /// `users.messages.delete`.
    MessagesDelete,
    /// `users.messages.trash`.
    MessagesTrash,
    /// `users.messages.untrash`.
    MessagesUntrash,
    /// `users.messages.modify`.
    MessagesModify,
    /// `users.messages.attachments.get`.
    AttachmentsGet,
    /// `users.history.list`.
    HistoryList,
}

impl GmailMethod {
    /// The discovery method id without `gmail.`, e.g. `users.messages.list`.
    pub fn name(self) -> &'static str {
        match self {
            GmailMethod::GetProfile => "users.getProfile",
            GmailMethod::LabelsList => "users.labels.list",
            GmailMethod::MessagesList => "users.messages.list",
            GmailMethod::MessagesGet => "users.messages.get",
            GmailMethod::MessagesInsert => "users.messages.insert",
            GmailMethod::MessagesImport => "users.messages.import",
            GmailMethod::MessagesDelete => "users.messages.delete",
            GmailMethod::MessagesTrash => "users.messages.trash",
            GmailMethod::MessagesUntrash => "users.messages.untrash",
            GmailMethod::MessagesModify => "users.messages.modify",
            GmailMethod::AttachmentsGet => "users.messages.attachments.get",
            GmailMethod::HistoryList => "users.history.list",
        }
    }
}
