//! The fake as the Gmail integration's [`tributary_sdk::Fake`], found through the
//! registry by `tributary fake gmail` and `tributary demo`.
//!
//! `items` is the number of messages to sync: the generator files about 2% of what it
//! generates in spam or trash, which `messages.list` leaves out, so the mailbox is
//! topped up until `items` messages are outside them. New mail ([`RunningFake::add_item`]
//! and the periodic deliveries) is always mail a sync stores.

use std::collections::BTreeMap;

use tributary_sdk::{
    Credentials, Fake, FakeLink, FakeOptions, FakeTruth, RunningFake, async_trait,
};
use tributary_testkit::serving::Deliveries;

use crate::{FakeGmail, FaultConfig, GmailConfig, GmailHandle, MessageTruth};

/// The Gmail fake, for `Registration::with_fake`.
pub fn fake() -> GmailFake {
    GmailFake
}

/// The [`Fake`] of the Gmail integration: a [`FakeGmail`] with the default account.
#[derive(Debug, Clone, Copy, Default)]
pub struct GmailFake;

#[async_trait]
impl Fake for GmailFake {
    async fn start(&self, options: FakeOptions) -> std::io::Result<Box<dyn RunningFake>> {
        let fake = FakeGmail::start_on(
            options.listen,
            GmailConfig {
                messages: options.items,
                seed: options.seed,
                faults: FaultConfig {
                    latency: options.latency,
                    ..FaultConfig::default()
                },
                ..GmailConfig::default()
            },
        )
        .await?;
        let handle = fake.handle().clone();
        let wanted = options.items;
        tokio::task::spawn_blocking(move || top_up(&handle, wanted))
            .await
            .map_err(std::io::Error::other)?;
        let handle = fake.handle().clone();
        let deliveries = options
            .deliver_every
            .and_then(|every| Deliveries::every(every, move || drop(deliver(&handle))));
        Ok(Box::new(RunningGmail {
            fake,
            items: options.items,
            _deliveries: deliveries,
        }))
    }
}

/// Whether a sync stores this message: `messages.list` without `includeSpamTrash`
/// leaves out spam and trash.
pub fn synced(message: &MessageTruth) -> bool {
    !message
        .label_ids
        .iter()
        .any(|l| l == "SPAM" || l == "TRASH")
}

/// Generates messages until `wanted` are outside spam and trash.
fn top_up(handle: &GmailHandle, wanted: usize) {
    loop {
        let have = handle.snapshot().values().filter(|m| synced(m)).count();
        if have >= wanted {
            return;
        }
        handle.generate(wanted - have);
    }
}

/// Delivers one new message a sync stores (one the generator files in spam or trash
/// stays, and another one is delivered); `None` after ten such in a row.
fn deliver(handle: &GmailHandle) -> Option<String> {
    for _ in 0..10 {
        let ids = handle.generate(1);
        let snapshot = handle.snapshot();
        if let Some(id) = ids
            .into_iter()
            .find(|id| snapshot.get(id).is_some_and(synced))
        {
            return Some(id);
        }
    }
    None
}

/// A running [`GmailFake`].
struct RunningGmail {
    fake: FakeGmail,
    items: usize,
    _deliveries: Option<Deliveries>,
}

#[async_trait]
impl RunningFake for RunningGmail {
    fn describe(&self) -> String {
        format!(
            "Gmail serving {} messages for {}",
            self.items,
            self.fake.email()
        )
    }

    fn item_name(&self) -> &'static str {
        "message"
    }

    fn link(&self) -> FakeLink {
        let info = self.fake.standalone_info();
        let object = |key: &str| info[key].as_object().cloned().unwrap_or_default();
        FakeLink {
            base_url: self.fake.base_url(),
            endpoints: vec![
                ("token URL".to_owned(), self.fake.token_url()),
                ("authorize URL".to_owned(), self.fake.authorize_url()),
            ],
            settings: object("settings"),
            credentials: Credentials::new(object("credentials")),
        }
    }

    fn truth(&self) -> FakeTruth {
        let mut truth = FakeTruth::default();
        for (id, message) in self.fake.snapshot() {
            if synced(&message) {
                truth.synced.insert(id);
            } else {
                truth.left_out += 1;
            }
        }
        truth
    }

    fn add_item(&self) -> Option<String> {
        deliver(self.fake.handle())
    }

    fn request_counts(&self) -> BTreeMap<String, u64> {
        self.fake
            .counters()
            .calls
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(method, n)| (method.name().to_owned(), n))
            .collect()
    }

    async fn stop(self: Box<Self>) -> std::io::Result<()> {
        self.fake.stop().await
    }
}
