//! What the standalone Graph fakes (`tributary fake outlook`, `tributary fake
//! onedrive`) share: the tenant they start with, the link that points an integration
//! at a running fake, and its request counts.

use std::collections::BTreeMap;

use tributary_sdk::{Credentials, FakeLink, FakeOptions};

use crate::{Grant, GraphConfig, GraphHandle, GraphUrls};

/// The tenant of a standalone Graph fake started with `options`: the default tenant
/// with the options' seed and latency.
pub fn graph_config(options: &FakeOptions) -> GraphConfig {
    GraphConfig {
        seed: options.seed,
        latency: options.latency,
        ..GraphConfig::default()
    }
}

/// The link of a standalone Graph fake served at `urls`, for the account of `grant`:
///
/// - settings `baseUrl` (the Graph root, `http://127.0.0.1:PORT/v1.0`) and `tokenUrl`
///   (`http://127.0.0.1:PORT/common/oauth2/v2.0/token`);
/// - credentials `clientId` and `clientSecret` (the tenant's client), `refreshToken`
///   (the grant's current one, read now: refresh tokens rotate and a used one may be
///   dead) and `accessToken` (the grant's first);
/// - the endpoints worth printing: `token` and `authorize`.
pub fn fake_link(graph: &GraphHandle, grant: &Grant, urls: GraphUrls) -> FakeLink {
    let mut credentials = Credentials::default();
    credentials.set("clientId", graph.client_id());
    credentials.set("clientSecret", graph.client_secret());
    let refresh = graph
        .current_refresh_token(grant.grant_id)
        .or_else(|| grant.refresh_token.clone())
        .unwrap_or_default();
    credentials.set("refreshToken", refresh);
    credentials.set("accessToken", grant.access_token.clone());
    FakeLink {
        base_url: urls.base_url(),
        endpoints: vec![
            ("token".into(), urls.token_url()),
            ("authorize".into(), urls.authorize_url()),
        ],
        settings: urls.settings(),
        credentials,
    }
}

/// The requests a standalone Graph fake answered, per operation name, the operations
/// never called left out (`RunningFake::request_counts`).
pub fn request_counts(graph: &GraphHandle) -> BTreeMap<String, u64> {
    graph
        .counters()
        .calls
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
}
