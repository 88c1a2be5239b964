//! The fake as the OneDrive integration's [`tributary_sdk::Fake`], found through the
//! registry by `tributary fake onedrive` and `tributary demo`.
//!
//! `items` is the number of files a sync stores, spread over the root and
//! `clamp(items / 20, 2, 200)` folders up to three levels deep; about 60% are text
//! (prose, Markdown, JSON, CSV, source code), the rest binary. External ids in
//! [`FakeTruth`] are the item ids of every file and folder below the root (the
//! `onedrive` integration stores folders as items too; the root is the drive, not an
//! item). New items ([`RunningFake::add_item`] and deliveries) are generated files in
//! a random folder.
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

use crate::{DriveContentConfig, FakeOneDrive, Grant, OneDriveConfig};

/// The OneDrive fake, for `Registration::with_fake`.
pub fn fake() -> OneDriveFake {
    OneDriveFake
}

/// The [`Fake`] of the OneDrive integration.
#[derive(Debug, Clone, Copy, Default)]
pub struct OneDriveFake;

/// The config a standalone fake of `options` runs with.
pub fn config_for(options: &FakeOptions) -> OneDriveConfig {
    OneDriveConfig {
        graph: graph_config(options),
        content: DriveContentConfig {
            folders: (options.items / 20).clamp(2, 200),
            files: options.items,
            seed: options.seed,
            ..DriveContentConfig::default()
        },
        ..OneDriveConfig::default()
    }
}

#[async_trait]
impl Fake for OneDriveFake {
    async fn start(&self, options: FakeOptions) -> std::io::Result<Box<dyn RunningFake>> {
        let fake = FakeOneDrive::start_on(options.listen, config_for(&options)).await?;
        let grant = fake.handle().files_grant();
        let handle = fake.handle().clone();
        let deliveries = options
            .deliver_every
            .and_then(|every| Deliveries::every(every, move || drop(handle.generate_file())));
        Ok(Box::new(RunningOneDrive {
            fake,
            grant,
            _deliveries: deliveries,
        }))
    }
}

struct RunningOneDrive {
    fake: FakeOneDrive,
    grant: Grant,
    _deliveries: Option<Deliveries>,
}

#[async_trait]
impl RunningFake for RunningOneDrive {
    fn describe(&self) -> String {
        let handle = self.fake.handle();
        format!(
            "OneDrive ({}) serving {} files in {} folders for {}",
            handle.drive_type().as_str(),
            handle.file_ids().len(),
            handle.folder_ids().len().saturating_sub(1),
            handle.owner().address
        )
    }

    fn item_name(&self) -> &'static str {
        "file"
    }

    fn link(&self) -> FakeLink {
        fake_link(self.fake.handle().graph(), &self.grant, self.fake.urls())
    }

    fn truth(&self) -> FakeTruth {
        let handle = self.fake.handle();
        let root = handle.root_id();
        let mut synced = handle.file_ids();
        synced.extend(handle.folder_ids().into_iter().filter(|id| *id != root));
        FakeTruth {
            synced,
            left_out: 0,
        }
    }

    fn add_item(&self) -> Option<String> {
        let id = self.fake.handle().generate_file();
        (!id.is_empty()).then_some(id)
    }

    fn request_counts(&self) -> BTreeMap<String, u64> {
        let handle = self.fake.handle();
        let mut counts = request_counts(handle.graph());
        let downloads = handle.counters().download_requests;
        if downloads > 0 {
            counts.insert("download".to_owned(), downloads);
        }
        counts
    }

    async fn stop(self: Box<Self>) -> std::io::Result<()> {
        self.fake.stop().await
    }
}
