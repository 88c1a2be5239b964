//! What every request carries, where the token may go, and downloads.

use axum::Extension;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tributary_msgraph::{GraphError, Prefer};
use tributary_msgraph_fake::{Caller, GraphRoutes};
use tributary_sdk::ErrorClass;
use tributary_sdk::http::HttpClient;
use tributary_sdk::serde_json::{Value, json};

use crate::support::{class_of, graph_account, mail_account, outlook, recording_server};

#[tokio::test]
async fn immutable_ids_and_text_bodies_reach_the_server_only_when_asked() {
    let fake = outlook(1).await;
    let truth = fake.handle().messages().into_values().next().unwrap();
    assert_ne!(truth.id, truth.immutable_id);
    let (linked, _) = mail_account(&fake);
    let mut plain = linked.client;
    let by_mutable_id = plain.url(&["me", "messages", &truth.id], &[]);
    let message: Value = plain.get_json(by_mutable_id.as_str(), &[]).await.unwrap();
    assert_eq!(message["id"], truth.id.as_str());
    assert_eq!(message["body"]["contentType"], "html");

    let (linked, _) = mail_account(&fake);
    let mut mail = linked.client.with_immutable_ids();
    // Either kind of id finds the message; the answer has the kind asked for.
    let message: Value = mail.get_json(by_mutable_id.as_str(), &[]).await.unwrap();
    assert_eq!(message["id"], truth.immutable_id.as_str());
    assert_eq!(message["body"]["contentType"], "html");
    let message: Value = mail
        .get_json_with(
            by_mutable_id.as_str(),
            &[],
            Prefer::default().with_text_body(),
        )
        .await
        .unwrap();
    assert_eq!(message["id"], truth.immutable_id.as_str());
    assert_eq!(message["body"]["contentType"], "text");
    assert_eq!(message["body"]["content"], truth.body_text.as_str());
    assert_eq!(
        mail.prefer_header(Prefer::page_size(25).with_text_body())
            .as_deref(),
        Some("IdType=\"ImmutableId\", odata.maxpagesize=25, outlook.body-content-type=\"text\"")
    );
}

#[tokio::test]
async fn a_link_to_another_origin_is_refused_before_anything_is_sent() {
    let (other, seen) = recording_server(b"{}".to_vec()).await;
    let foreign = format!("http://{other}/v1.0/me/things?$skiptoken=stolen");
    let next = foreign.clone();
    let routes = GraphRoutes::new()
        .route(
            "hostile.list",
            "/v1.0/me/hostile",
            get(move || {
                let next = next.clone();
                async move { axum::Json(json!({"value": [{"id": "a"}], "@odata.nextLink": next})) }
            }),
        )
        .route(
            "hostile.delta",
            "/v1.0/me/hostile/delta",
            get(move || {
                let delta = format!("http://{other}/v1.0/me/hostile/delta?$deltatoken=stolen");
                async move { axum::Json(json!({"value": [], "@odata.deltaLink": delta})) }
            }),
        );
    let (graph, addr, linked) = graph_account(routes).await;
    let mut client = linked.client;
    // A link given directly.
    assert_eq!(
        class_of(client.get_json::<Value>(&foreign, &[]).await),
        ErrorClass::Permanent
    );
    // The same host on another port, or another scheme, is another origin too.
    let other_port = format!("http://{}:{}/v1.0/me", addr.ip(), other.port());
    assert_eq!(
        class_of(client.get_json::<Value>(&other_port, &[]).await),
        ErrorClass::Permanent
    );
    let other_scheme = format!("https://{addr}/v1.0/me");
    assert_eq!(
        class_of(client.get_json::<Value>(&other_scheme, &[]).await),
        ErrorClass::Permanent
    );
    // A page whose links lead elsewhere is refused as it is read: its links are never
    // stored to be followed later.
    let page = client
        .get_page::<Value>("me/hostile", &[], Prefer::default())
        .await;
    assert_eq!(class_of(page), ErrorClass::Permanent);
    let delta = client
        .delta_page::<Value>("me/hostile/delta", Prefer::default())
        .await;
    assert_eq!(class_of(delta), ErrorClass::Permanent);
    assert!(seen.requests().is_empty(), "{:?}", seen.requests());
    // The base URL's own origin is fine, absolute or not.
    let own = format!("http://{addr}/v1.0/me");
    assert!(client.get_json::<Value>(&own, &[]).await.is_ok());
    assert_eq!(graph.counters().calls("hostile.list"), 1);
}

#[tokio::test]
async fn a_download_redirected_to_another_origin_does_not_carry_the_token() {
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (download_host, seen) = recording_server(content.clone()).await;
    let routes = GraphRoutes::new().route(
        "driveItem.content",
        "/v1.0/me/drive/items/{id}/content",
        get(move |Path(id): Path<String>| async move {
            let location =
                format!("http://{download_host}/download/{id}?tempauth=pre-authenticated");
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }),
    );
    let (graph, _addr, linked) = graph_account(routes).await;
    let mut client = linked.client.with_immutable_ids();
    let target = client.url(&["me", "drive", "items", "item-1", "content"], &[]);
    let download = client
        .get_bytes(target.as_str(), &[], 1 << 20)
        .await
        .unwrap();
    assert_eq!(download.bytes, content);
    assert!(!download.truncated);
    assert_eq!(
        download.content_type.as_deref(),
        Some("application/octet-stream")
    );
    // Graph was asked with the token (its pipeline admits nothing else)...
    let counters = graph.counters();
    assert_eq!(
        (counters.calls("driveItem.content"), counters.unauthorized),
        (1, 0)
    );
    // ...and the download host never saw it.
    let requests = seen.requests();
    assert_eq!(requests.len(), 1);
    let (target_seen, headers) = &requests[0];
    assert_eq!(target_seen, "/download/item-1?tempauth=pre-authenticated");
    assert!(headers.get(header::AUTHORIZATION).is_none(), "{headers:?}");
    assert!(
        headers
            .values()
            .all(|v| !v.as_bytes().starts_with(b"Bearer")),
        "{headers:?}"
    );
    // The cap: no more than asked is kept, and the cut is said.
    let capped = client.get_bytes(target.as_str(), &[], 1000).await.unwrap();
    assert_eq!(capped.bytes, content[..1000]);
    assert!(capped.truncated);
}

/// The recording server does see an `Authorization` header that is sent to it: the
/// download test's "never saw it" is not an artefact of the recorder.
#[tokio::test]
async fn the_recorder_sees_an_authorization_header_when_there_is_one() {
    let (addr, seen) = recording_server(Vec::new()).await;
    let http = HttpClient::new().unwrap();
    http.send(http.get(format!("http://{addr}/x")).bearer_auth("secret"))
        .await
        .unwrap();
    let requests = seen.requests();
    assert_eq!(
        requests[0]
            .1
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        Some(&b"Bearer secret"[..])
    );
}

#[tokio::test]
async fn a_message_source_downloads_from_graph_itself() {
    let fake = outlook(2).await;
    let mut messages = fake.handle().messages().into_values();
    let truth = messages.next().unwrap();
    let purged = messages.next().unwrap();
    fake.handle().purge_message(&purged.immutable_id).unwrap();
    let (linked, _) = mail_account(&fake);
    let mut client = linked.client.with_immutable_ids();
    let target = client.url(&["me", "messages", &truth.immutable_id, "$value"], &[]);
    let mime = client
        .get_bytes(target.as_str(), &[], 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&mime.bytes);
    assert!(text.contains(&truth.subject), "{text}");
    assert!(!mime.truncated);
    // A message that is gone is "not found" for a download too, even under a limit
    // smaller than the error body.
    let gone = client.url(&["me", "messages", &purged.immutable_id, "$value"], &[]);
    match client.get_bytes(gone.as_str(), &[], 10).await {
        Err(GraphError::NotFound(_)) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

#[tokio::test]
async fn answers_that_are_not_what_was_asked_are_refused() {
    let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
    let routes = GraphRoutes::new()
        .route(
            "deep.get",
            "/v1.0/me/deep",
            get(move || {
                let deep = deep.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], deep) }
            }),
        )
        .route(
            "entity.get",
            "/v1.0/me/entity",
            get(|| async { axum::Json(json!({"id": "x"})) }),
        )
        .route(
            "both.get",
            "/v1.0/me/both",
            get(|Extension(caller): Extension<Caller>| async move {
                let next = caller.url("/me/both?$skiptoken=1");
                let delta = caller.url("/me/both?$deltatoken=1");
                axum::Json(json!({"value": [], "@odata.nextLink": next, "@odata.deltaLink": delta}))
            }),
        )
        .route(
            "garbled.get",
            "/v1.0/me/garbled",
            get(|| async { Response::new(axum::body::Body::from("{\"value\": [1, 2")) }),
        );
    let (_graph, _addr, linked) = graph_account(routes).await;
    let mut client = linked.client;
    assert_eq!(
        class_of(client.get_json::<Value>("me/deep", &[]).await),
        ErrorClass::Permanent
    );
    let no_value = client
        .get_page::<Value>("me/entity", &[], Prefer::default())
        .await;
    assert_eq!(class_of(no_value), ErrorClass::Permanent);
    let both = client
        .get_page::<Value>("me/both", &[], Prefer::default())
        .await;
    assert_eq!(class_of(both), ErrorClass::Permanent);
    let garbled = client
        .get_page::<Value>("me/garbled", &[], Prefer::default())
        .await;
    assert_eq!(class_of(garbled), ErrorClass::Transient);
}
