//! The fake as the Outlook integration's [`tributary_sdk::Fake`], found through the
//! registry by `tributary fake outlook` and `tributary demo`.
//!
//! `items` is the number of messages a sync stores, spread over Inbox, Sent Items,
//! Archive, Drafts and `clamp(items / 200, 3, 60)` user folders (top-level and
//! nested); none in Deleted Items or Junk Email, so every message is one a sync of
//! every folder holds. New items (deliveries and [`RunningFake::add_item`]) arrive in
//! the Inbox. External ids in [`FakeTruth`] are immutable ids.
//!
//! The link is every Graph fake's ([`fake_link`]): settings `baseUrl` (the Graph
//! root, `http://127.0.0.1:PORT/v1.0`) and `tokenUrl`
//! (`http://127.0.0.1:PORT/common/oauth2/v2.0/token`); credentials `clientId`,
//! `clientSecret`, `refreshToken` (the grant's current one: refresh tokens rotate and
//! a used one dies) and `accessToken`.

use std::collections::BTreeMap;

use tributary_msgraph_fake::standalone::{fake_link, graph_config, request_counts};
use tributary_sdk::{Fake, FakeLink, FakeOptions, FakeTruth, RunningFake, async_trait};
use tributary_testkit::serving::Deliveries;

use crate::{FakeOutlook, Grant, MailboxConfig, OutlookConfig};

/// The Outlook fake, for `Registration::with_fake`.
pub fn fake() -> OutlookFake {
    OutlookFake
}

/// The [`Fake`] of the Outlook integration.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutlookFake;

/// The config a standalone fake of `options` runs with.
pub fn config_for(options: &FakeOptions) -> OutlookConfig {
    OutlookConfig {
        graph: graph_config(options),
        mailbox: MailboxConfig {
            folders: (options.items / 200).clamp(3, 60),
            messages: options.items,
            attachment_rate: 0.1,
            seed: options.seed,
            ..MailboxConfig::default()
        },
        ..OutlookConfig::default()
    }
}

#[async_trait]
impl Fake for OutlookFake {
    async fn start(&self, options: FakeOptions) -> std::io::Result<Box<dyn RunningFake>> {
        let fake = FakeOutlook::start_on(options.listen, config_for(&options)).await?;
        let grant = fake.handle().mail_grant();
        let handle = fake.handle().clone();
        let deliveries = options
            .deliver_every
            .and_then(|every| Deliveries::every(every, move || drop(handle.generate_message())));
        Ok(Box::new(RunningOutlook {
            fake,
            grant,
            _deliveries: deliveries,
        }))
    }
}

struct RunningOutlook {
    fake: FakeOutlook,
    grant: Grant,
    _deliveries: Option<Deliveries>,
}

#[async_trait]
impl RunningFake for RunningOutlook {
    fn describe(&self) -> String {
        let handle = self.fake.handle();
        format!(
            "Outlook serving {} messages in {} folders for {}",
            handle.message_count(),
            handle.folders().len() - 1,
            handle.owner().address
        )
    }

    fn item_name(&self) -> &'static str {
        "message"
    }

    fn link(&self) -> FakeLink {
        fake_link(self.fake.handle().graph(), &self.grant, self.fake.urls())
    }

    fn truth(&self) -> FakeTruth {
        FakeTruth {
            synced: self.fake.handle().messages().into_keys().collect(),
            left_out: 0,
        }
    }

    fn add_item(&self) -> Option<String> {
        Some(self.fake.handle().generate_message().immutable_id)
    }

    fn request_counts(&self) -> BTreeMap<String, u64> {
        request_counts(self.fake.handle().graph())
    }

    async fn stop(self: Box<Self>) -> std::io::Result<()> {
        self.fake.stop().await
    }
}
