//! The fake as the Slack integration's [`tributary_sdk::Fake`], found through the
//! registry by `tributary fake slack` and `tributary demo`.
//!
//! `items` is the number of items a sync stores: messages and thread replies (about
//! one reply for every seven messages), over `max(1, items / 400)` conversations (at
//! most 500) of a 20-member workspace. New items (deliveries and
//! [`RunningFake::add_item`]) are messages posted in one of the busiest conversations.
//! The link's credentials are a full user grant ([`crate::ALL_SCOPES`]).

use std::collections::BTreeMap;

use tributary_sdk::{
    Credentials, Fake, FakeLink, FakeOptions, FakeTruth, RunningFake, async_trait,
};
use tributary_testkit::serving::Deliveries;

use crate::{ALL_SCOPES, FakeSlack, Grant, SlackConfig};

/// The Slack fake, for `Registration::with_fake`.
pub fn fake() -> SlackFake {
    SlackFake
}

/// The [`Fake`] of the Slack integration.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlackFake;

/// The config a standalone fake of `options` runs with.
pub fn config_for(options: &FakeOptions) -> SlackConfig {
    let replies = options.items / 8;
    SlackConfig {
        channels: (options.items / 400).clamp(1, 500),
        messages: options.items - replies,
        replies,
        users: 20,
        seed: options.seed,
        latency: options.latency,
        // Token rotation on, as Slack recommends for new apps: the link then carries a
        // refresh token, and the printed client id and secret let `tributary auth
        // slack` run the OAuth flow against the fake.
        rotation: true,
        ..SlackConfig::default()
    }
}

#[async_trait]
impl Fake for SlackFake {
    async fn start(&self, options: FakeOptions) -> std::io::Result<Box<dyn RunningFake>> {
        let config = config_for(&options);
        let rotation = config.rotation;
        let fake = FakeSlack::start_on(options.listen, config).await?;
        let grant = fake.handle().grant(ALL_SCOPES);
        let handle = fake.handle().clone();
        let deliveries = options
            .deliver_every
            .and_then(|every| Deliveries::every(every, move || drop(handle.generate_message())));
        Ok(Box::new(RunningSlack {
            fake,
            grant,
            rotation,
            _deliveries: deliveries,
        }))
    }
}

struct RunningSlack {
    fake: FakeSlack,
    grant: Grant,
    rotation: bool,
    _deliveries: Option<Deliveries>,
}

#[async_trait]
impl RunningFake for RunningSlack {
    fn describe(&self) -> String {
        let handle = self.fake.handle();
        let conversations = handle.conversations().iter().filter(|c| !c.removed).count();
        format!(
            "Slack workspace {} serving {} messages and replies in {} conversations for user {}",
            handle.team_id(),
            handle.snapshot().len(),
            conversations,
            handle.installer()
        )
    }

    fn item_name(&self) -> &'static str {
        "message"
    }

    fn link(&self) -> FakeLink {
        let handle = self.fake.handle();
        let mut credentials = Credentials::default();
        credentials.set("accessToken", self.grant.access_token.clone());
        if self.rotation {
            if let Some(refresh) = &self.grant.refresh_token {
                credentials.set("refreshToken", refresh.clone());
            }
            credentials.set("clientId", handle.client_id());
            credentials.set("clientSecret", handle.client_secret());
        }
        let base_url = self.fake.base_url();
        let mut settings = tributary_sdk::serde_json::Map::new();
        settings.insert("baseUrl".into(), base_url.clone().into());
        settings.insert("tokenUrl".into(), self.fake.token_url().into());
        FakeLink {
            base_url,
            endpoints: vec![
                ("token".into(), self.fake.token_url()),
                ("authorize".into(), self.fake.authorize_url()),
            ],
            settings,
            credentials,
        }
    }

    fn truth(&self) -> FakeTruth {
        FakeTruth {
            synced: self
                .fake
                .handle()
                .snapshot()
                .into_iter()
                .map(|m| format!("{}:{}", m.channel, m.ts))
                .collect(),
            left_out: 0,
        }
    }

    fn add_item(&self) -> Option<String> {
        self.fake
            .handle()
            .generate_message()
            .map(|(channel, ts)| format!("{channel}:{ts}"))
    }

    fn request_counts(&self) -> BTreeMap<String, u64> {
        self.fake
            .handle()
            .counters()
            .calls
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    async fn stop(self: Box<Self>) -> std::io::Result<()> {
        self.fake.stop().await
    }
}
