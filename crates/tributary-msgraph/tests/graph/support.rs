//! A probe integration built with the kit, so that the tests get a [`GraphClient`]
//! exactly as an integration does (the kit's bearer client, its token cache, its
//! credential sink and its refreshed-credentials slot), and small servers for what the
//! fakes do not serve.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tributary_msgraph::{GraphClient, GraphSettings};
use tributary_msgraph_fake::{GraphConfig, GraphHandle, GraphRoutes, GraphUrls};
use tributary_outlook_fake::{FakeOutlook, Grant, NewMessage, OutlookConfig, Recipient};
use tributary_sdk::http::HttpClient;
use tributary_sdk::integration::NothingExists;
use tributary_sdk::kit::bearer::OAuthCredentials;
use tributary_sdk::kit::{Job, TypedIntegration, registration};
use tributary_sdk::oauth::TokenCache;
use tributary_sdk::serde_json::{Map, Value};
use tributary_sdk::{
    CredentialSink, Credentials, Integration, IntegrationContext, IntegrationError, TaskResult,
    TaskType,
};

const MANIFEST: &str = r#"{
  "domain": "msgraph-probe",
  "name": "Graph probe",
  "version": "0.1.0",
  "taskTypes": ["start"],
  "credentials": [
    {"name": "clientId"},
    {"name": "clientSecret", "secret": true},
    {"name": "refreshToken", "secret": true},
    {"name": "accessToken", "secret": true, "required": false},
    {"name": "accessTokenExpiresAt", "required": false}
  ],
  "settings": [
    {"name": "baseUrl", "type": "url", "default": "https://graph.microsoft.com/v1.0"},
    {"name": "tokenUrl", "type": "url"},
    {"name": "tenant", "type": "string", "default": "common"},
    {"name": "pageSize", "type": "integer", "default": 100, "minimum": 1, "maximum": 1000}
  ],
  "limits": {"budgets": [
    {"name": "perMailbox", "scope": "account", "windowSeconds": 600, "capacity": 10000,
     "costs": {"graph": 1}, "defaultCost": 1}
  ]}
}"#;

/// The probe's one task.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "camelCase")]
pub enum ProbeTask {
    /// GETs `/me`.
    Start,
}

impl TaskType for ProbeTask {}

thread_local! {
    /// The client the last probe built on this thread, for the test to take.
    static BUILT: RefCell<Option<GraphClient>> = const { RefCell::new(None) };
}

/// An integration whose instance hands its Graph client to the test.
struct Probe {
    client: GraphClient,
}

#[tributary_sdk::async_trait]
impl TypedIntegration for Probe {
    type Task = ProbeTask;
    type Settings = GraphSettings;
    type Credentials = OAuthCredentials;

    fn new(job: Job<GraphSettings, OAuthCredentials>) -> Result<Self, IntegrationError> {
        let for_test = GraphClient::connect(&job, &job.credentials, &job.settings)?;
        BUILT.with(|built| *built.borrow_mut() = Some(for_test));
        Ok(Probe {
            client: GraphClient::connect(&job, &job.credentials, &job.settings)?,
        })
    }

    async fn validate_authentication(&mut self) -> Result<(), IntegrationError> {
        self.client.get_json::<Value>("me", &[]).await?;
        Ok(())
    }

    async fn run(&mut self, _task: ProbeTask) -> Result<TaskResult, IntegrationError> {
        self.client.get_json::<Value>("me", &[]).await?;
        Ok(TaskResult::new())
    }
}

/// Credentials the engine was asked to save, in order.
#[derive(Default)]
pub struct RecordingSink {
    saved: Mutex<Vec<Credentials>>,
}

impl RecordingSink {
    /// Everything saved so far.
    pub fn saved(&self) -> Vec<Credentials> {
        self.saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[tributary_sdk::async_trait]
impl CredentialSink for RecordingSink {
    async fn save(&self, credentials: &Credentials) -> Result<(), IntegrationError> {
        self.saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(credentials.clone());
        Ok(())
    }
}

/// A linked probe account: the integration instance (the kit's adapter) and the
/// client it built.
pub struct Linked {
    pub integration: Box<dyn Integration>,
    pub client: GraphClient,
    pub sink: Option<Arc<RecordingSink>>,
}

/// Builds the probe's instance for one job with these settings and credentials;
/// with a credential sink when `sink`.
pub fn link(settings: Map<String, Value>, credentials: Credentials, sink: bool) -> Linked {
    let registration = registration::<Probe>("msgraph-probe/manifest.json", MANIFEST)
        .expect("the probe's manifest matches its types");
    let sink = sink.then(|| Arc::new(RecordingSink::default()));
    let ctx = IntegrationContext {
        user_integration_id: 1,
        credentials,
        settings,
        sync_state: Arc::new(Map::new()),
        content_exists: Arc::new(NothingExists),
        http: HttpClient::new().expect("an http client"),
        tokens: TokenCache::new(),
        credential_sink: sink.clone().map(|s| s as Arc<dyn CredentialSink>),
    };
    let integration = (registration.construct)(ctx).expect("the probe builds");
    let client = BUILT
        .with(|built| built.borrow_mut().take())
        .expect("the probe handed over its client");
    Linked {
        integration,
        client,
        sink,
    }
}

/// A mailbox fake with `messages` plain messages delivered to the inbox.
pub async fn outlook(messages: usize) -> FakeOutlook {
    let fake = FakeOutlook::start(OutlookConfig::default())
        .await
        .expect("the fake starts");
    for n in 0..messages {
        fake.handle()
            .deliver(NewMessage::new(
                &format!("message {n}"),
                Recipient::new("Sender", "sender@example.com"),
                &format!("text of message {n}"),
            ))
            .expect("delivered");
    }
    fake
}

/// The settings pointing at `fake`.
pub fn settings(fake: &FakeOutlook) -> Map<String, Value> {
    fake.urls().settings()
}

/// The credentials of `grant`, with `access_token` stored (`None`: none stored).
pub fn credentials(fake: &FakeOutlook, grant: &Grant, access_token: Option<&str>) -> Credentials {
    graph_credentials(fake.handle().graph(), grant, access_token)
}

/// [`credentials`] for a grant of any Graph tenant.
pub fn graph_credentials(
    graph: &GraphHandle,
    grant: &Grant,
    access_token: Option<&str>,
) -> Credentials {
    let mut credentials = Credentials::default();
    credentials.set("clientId", graph.client_id());
    credentials.set("clientSecret", graph.client_secret());
    credentials.set(
        "refreshToken",
        grant
            .refresh_token
            .clone()
            .expect("a grant with offline_access"),
    );
    if let Some(token) = access_token {
        credentials.set("accessToken", token);
    }
    credentials
}

/// A Graph tenant serving `routes`, and a probe linked to it with a live grant.
pub async fn graph_account(routes: GraphRoutes) -> (GraphHandle, SocketAddr, Linked) {
    let graph = GraphHandle::new(GraphConfig::default());
    let addr = serve(graph.router(routes)).await;
    let grant = graph.mint_grant(&["offline_access", "User.Read", "Files.Read"]);
    let linked = link(
        GraphUrls::new(addr).settings(),
        graph_credentials(&graph, &grant, Some(&grant.access_token)),
        false,
    );
    (graph, addr, linked)
}

/// A probe linked to `fake` with the credentials of `grant` (and `access_token`
/// stored), with a credential sink when `sink`.
pub fn grant_account(
    fake: &FakeOutlook,
    grant: &Grant,
    access_token: Option<&str>,
    sink: bool,
) -> Linked {
    link(settings(fake), credentials(fake, grant, access_token), sink)
}

/// A linked probe on `fake`'s mailbox with a fresh mail grant and its live access
/// token, without a credential sink.
pub fn mail_account(fake: &FakeOutlook) -> (Linked, Grant) {
    let grant = fake.handle().mail_grant();
    let linked = grant_account(fake, &grant, Some(&grant.access_token), false);
    (linked, grant)
}

/// What a recording server saw.
#[derive(Default)]
pub struct Seen {
    requests: Mutex<Vec<(String, HeaderMap)>>,
}

impl Seen {
    /// Every request's path and query, and headers.
    pub fn requests(&self) -> Vec<(String, HeaderMap)> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn record(&self, target: String, headers: HeaderMap) {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((target, headers));
    }
}

/// Serves `router` on a free loopback port (until the test's runtime ends).
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A server on another origin that answers `body` to every request and records it.
pub async fn recording_server(body: Vec<u8>) -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let recorder = seen.clone();
    let body = Arc::new(body);
    let router = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap| {
        let recorder = recorder.clone();
        let body = body.clone();
        async move {
            let target = uri
                .path_and_query()
                .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
            recorder.record(target, headers);
            (
                [("content-type", "application/octet-stream")],
                body.as_ref().clone(),
            )
        }
    });
    (serve(router).await, seen)
}

/// The error class of a result's error.
pub fn class_of<T: std::fmt::Debug>(
    result: Result<T, tributary_msgraph::GraphError>,
) -> tributary_sdk::ErrorClass {
    match result {
        Err(tributary_msgraph::GraphError::Failed(e)) => e.class(),
        other => panic!("expected a classified failure, got {other:?}"),
    }
}
