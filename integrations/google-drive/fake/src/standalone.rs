//! The fake as the Google Drive integration's [`tributary_sdk::Fake`], found through
//! the registry by `tributary fake google-drive` and `tributary demo`.
//!
//! `items` is the number of items a sync stores: files and folders (about one folder
//! for every 16 items), over My Drive and two shared drives. New items (deliveries and
//! [`RunningFake::add_item`]) are generated files.

use std::collections::BTreeMap;

use tributary_sdk::{
    Credentials, Fake, FakeLink, FakeOptions, FakeTruth, RunningFake, async_trait,
};
use tributary_testkit::serving::Deliveries;

use crate::{DriveConfig, DriveHandle, FakeDrive, FaultConfig};

/// The Drive fake, for `Registration::with_fake`.
pub fn fake() -> DriveFake {
    DriveFake
}

/// The [`Fake`] of the Google Drive integration.
#[derive(Debug, Clone, Copy, Default)]
pub struct DriveFake;

#[async_trait]
impl Fake for DriveFake {
    async fn start(&self, options: FakeOptions) -> std::io::Result<Box<dyn RunningFake>> {
        let folders = if options.items == 0 {
            0
        } else {
            (options.items / 16).max(1)
        };
        let fake = FakeDrive::start_on(
            options.listen,
            DriveConfig {
                files: options.items - folders,
                folders,
                shared_drives: 2,
                seed: options.seed,
                faults: FaultConfig {
                    latency: options.latency,
                    ..FaultConfig::default()
                },
                ..DriveConfig::default()
            },
        )
        .await?;
        let handle = fake.handle().clone();
        let deliveries = options
            .deliver_every
            .and_then(|every| Deliveries::every(every, move || drop(handle.generate_file())));
        Ok(Box::new(RunningDrive {
            fake,
            items: options.items,
            _deliveries: deliveries,
        }))
    }
}

struct RunningDrive {
    fake: FakeDrive,
    items: usize,
    _deliveries: Option<Deliveries>,
}

#[async_trait]
impl RunningFake for RunningDrive {
    fn describe(&self) -> String {
        format!(
            "Google Drive serving {} files and folders over My Drive and {} shared drives",
            self.items,
            self.fake.handle().shared_drives().len()
        )
    }

    fn item_name(&self) -> &'static str {
        "file"
    }

    fn link(&self) -> FakeLink {
        let handle: &DriveHandle = self.fake.handle();
        let issued = handle.credentials();
        let mut credentials = Credentials::default();
        credentials.set("clientId", issued.client_id);
        credentials.set("clientSecret", issued.client_secret);
        credentials.set("refreshToken", issued.refresh_token);
        let base_url = self.fake.base_url();
        let mut settings = tributary_sdk::serde_json::Map::new();
        settings.insert("baseUrl".into(), base_url.clone().into());
        settings.insert("tokenUrl".into(), self.fake.token_url().into());
        FakeLink {
            base_url: base_url.clone(),
            endpoints: vec![
                ("token".into(), self.fake.token_url()),
                ("authorize".into(), format!("{base_url}authorize")),
            ],
            settings,
            credentials,
        }
    }

    fn truth(&self) -> FakeTruth {
        FakeTruth {
            synced: self.fake.handle().snapshot().into_keys().collect(),
            left_out: 0,
        }
    }

    fn add_item(&self) -> Option<String> {
        Some(self.fake.handle().generate_file())
    }

    fn request_counts(&self) -> BTreeMap<String, u64> {
        self.fake
            .handle()
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
