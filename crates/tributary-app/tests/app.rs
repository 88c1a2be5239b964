//! The application layer against a real store (SQLite) and the synthetic integration's
//! source on loopback.

use std::sync::Arc;

use serde_json::{Map, json};
use tributary_app::{App, AppError, CredentialProblem, StatusChange};
use tributary_sdk::{Credentials, Registry};
use tributary_store::{UserIntegrationStatus as S, testing};
use tributary_testkit::synthetic::{SourceConfig, SourceServer};

const TOKEN: &str = "app-test-token-5f1e";

struct Fixture {
    app: App,
    server: SourceServer,
    _db: testing::SqliteTestGuard,
}

async fn fixture() -> Fixture {
    let (store, db) = testing::sqlite_test_store().await;
    let registry = Registry::new([tributary_synthetic::registration()]).expect("registry");
    let server = SourceServer::start(SourceConfig::new(3, 7, TOKEN))
        .await
        .expect("source");
    Fixture {
        app: App::new(store, Arc::new(registry)),
        server,
        _db: db,
    }
}

fn credentials(token: &str) -> Credentials {
    let mut c = Credentials::default();
    c.set("token", token);
    c
}

/// Links a synthetic account of `user` with good credentials.
async fn link(f: &Fixture, user: i64) -> tributary_store::UserIntegration {
    f.app
        .link(user, "synthetic", credentials(TOKEN), f.server.settings())
        .await
        .expect("link")
}

#[tokio::test]
async fn link_checks_the_manifest_then_the_service_then_stores() {
    let f = fixture().await;
    let user = f.app.store().create_user("alice").await.expect("user");

    // A field the manifest does not declare: named, nothing stored.
    let mut typo = Map::new();
    typo.insert("tokne".into(), json!("x"));
    let e = f
        .app
        .link(
            user.id,
            "synthetic",
            Credentials::new(typo),
            f.server.settings(),
        )
        .await
        .unwrap_err();
    match &e {
        AppError::Credentials(c) => assert_eq!(
            c.problem,
            CredentialProblem::UnknownField {
                field: "tokne".into(),
                expected: vec!["token".into()]
            }
        ),
        other => panic!("expected a credentials error, got {other:?}"),
    }
    // A blank required field.
    let e = f
        .app
        .link(user.id, "synthetic", credentials("  "), f.server.settings())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, AppError::Credentials(c) if c.problem == CredentialProblem::Empty { field: "token".into() }),
        "{e:?}"
    );
    // A token the service refuses.
    let e = f
        .app
        .link(
            user.id,
            "synthetic",
            credentials("wrong"),
            f.server.settings(),
        )
        .await
        .unwrap_err();
    assert!(matches!(&e, AppError::Rejected { .. }), "{e:?}");
    assert!(!e.to_string().contains("wrong\""), "{e}");
    // Settings the integration refuses: set-up error, not the service's.
    let mut bad = f.server.settings();
    bad.insert("pageSize".into(), json!(0));
    let e = f
        .app
        .link(user.id, "synthetic", credentials(TOKEN), bad)
        .await
        .unwrap_err();
    assert!(matches!(&e, AppError::Invalid { .. }), "{e:?}");
    // An unknown user, an unknown domain.
    let e = f
        .app
        .link(999, "synthetic", credentials(TOKEN), f.server.settings())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            AppError::NotFound {
                what: "user",
                id: 999
            }
        ),
        "{e:?}"
    );
    let e = f
        .app
        .link(user.id, "nowhere", credentials(TOKEN), Map::new())
        .await
        .unwrap_err();
    assert!(matches!(e, AppError::UnknownDomain(_)), "{e:?}");
    assert!(
        f.app
            .store()
            .list_user_integrations(None)
            .await
            .expect("list")
            .is_empty()
    );

    let linked = link(&f, user.id).await;
    assert_eq!(linked.status, S::Active);
    assert_eq!(linked.credentials.get("token"), Some(TOKEN));
}

#[tokio::test]
async fn status_changes_follow_the_rules() {
    let f = fixture().await;
    let user = f.app.store().create_user("bob").await.expect("user");
    let id = link(&f, user.id).await.id;

    let paused = f.app.pause(id).await.expect("pause");
    assert_eq!((paused.before, paused.after), (S::Active, S::Paused));
    assert!(paused.changed());
    let again = f.app.pause(id).await.expect("pause again");
    assert!(!again.changed(), "{again:?}");
    assert_eq!(again.after, S::Paused);

    // A stopped account resumes, and says what it was.
    f.app
        .store()
        .set_user_integration_status(id, S::NeedsReauth, Some("revoked"))
        .await
        .expect("needs reauth");
    let resumed = f.app.resume(id).await.expect("resume");
    assert_eq!((resumed.before, resumed.after), (S::NeedsReauth, S::Active));
    assert_eq!(
        f.app
            .store()
            .get_user_integration(id)
            .await
            .expect("load")
            .status,
        S::Active
    );

    let unlinked = f.app.unlink(id).await.expect("unlink");
    assert_eq!(unlinked.after, S::Unlinked);
    assert!(!f.app.unlink(id).await.expect("unlink again").changed());
    for change in [StatusChange::Pause, StatusChange::Resume] {
        let e = f.app.change_status(id, change).await.unwrap_err();
        assert!(
            matches!(e, AppError::Unlinked { id: i } if i == id),
            "{e:?}"
        );
    }
    // The overview shows what the changes did, and names an unknown user.
    let listed = f.app.overview(Some(user.id)).await.expect("overview");
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id, listed[0].status), (id, S::Unlinked));
    let e = f.app.overview(Some(user.id + 100)).await.unwrap_err();
    assert!(
        matches!(e, AppError::NotFound { what: "user", .. }),
        "{e:?}"
    );
    let e = f.app.pause(id + 100).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("user integration {} not found", id + 100)
    );
}

#[test]
fn credential_messages_name_the_source_and_the_field() {
    let error = tributary_app::CredentialsError {
        domain: "gmail".into(),
        problem: CredentialProblem::Missing {
            field: "refreshToken".into(),
        },
    };
    assert_eq!(
        error.describe("stdin"),
        "stdin lacks the required field `refreshToken` for gmail"
    );
    assert_eq!(
        error.to_string(),
        "the credentials object lacks the required field `refreshToken` for gmail"
    );
}

mod oauth {
    use super::*;
    use tributary_app::oauth::{ClientField, FlowOverrides, OAuthClient, OAuthError};

    fn gmail_app(f: &Fixture) -> App {
        let registry = Registry::new([
            tributary_synthetic::registration(),
            tributary_gmail::registration(),
        ])
        .expect("registry");
        App::new(f.app.store().clone(), Arc::new(registry))
    }

    fn client(secret: &str) -> OAuthClient {
        OAuthClient {
            id: "client-1".into(),
            secret: secret.into(),
        }
    }

    #[tokio::test]
    async fn the_consent_url_comes_from_the_manifest() {
        let f = fixture().await;
        let app = gmail_app(&f);
        let redirect = "http://127.0.0.1:9/";
        let start = || {
            app.oauth_start(
                "gmail",
                client("s3cret"),
                &FlowOverrides::default(),
                redirect,
            )
            .expect("start")
        };
        let pending = start();
        let url = pending.consent_url();
        let manifest = &app.registry().get("gmail").expect("gmail").manifest;
        let oauth = manifest.oauth.as_ref().expect("gmail uses OAuth");
        assert!(url.as_str().starts_with(&oauth.authorization_url), "{url}");
        let query: std::collections::BTreeMap<String, String> =
            url.query_pairs().into_owned().collect();
        assert_eq!(query["client_id"], "client-1");
        assert_eq!(query["redirect_uri"], redirect);
        assert_eq!(query["scope"], oauth.scopes.join(" "));
        assert_eq!(query["state"], pending.state());
        assert_eq!(query["code_challenge_method"], "S256");
        for (key, value) in &oauth.authorization_params {
            assert_eq!(&query[key], value);
        }
        assert!(
            !url.as_str().contains("s3cret"),
            "the secret stays out of the URL"
        );
        assert!(!format!("{pending:?}").contains("s3cret"));
        // Two flows never share a state.
        assert_ne!(start().state(), pending.state());

        // Overrides replace the endpoints and the scopes.
        let overrides = FlowOverrides {
            authorization_url: Some("http://127.0.0.1:9/authorize".into()),
            token_url: Some("http://127.0.0.1:9/token".into()),
            scopes: vec!["one".into(), "two".into()],
        };
        let pending = app
            .oauth_start("gmail", client("s"), &overrides, redirect)
            .expect("start");
        assert!(
            pending
                .consent_url()
                .as_str()
                .starts_with("http://127.0.0.1:9/authorize?")
        );
        assert!(pending.consent_url().as_str().contains("scope=one+two"));
    }

    #[tokio::test]
    async fn the_flow_refuses_what_cannot_work() {
        let f = fixture().await;
        let app = gmail_app(&f);
        let none = FlowOverrides::default();
        let e = app
            .oauth_start("synthetic", client("s"), &none, "http://127.0.0.1:9/")
            .unwrap_err();
        assert!(
            matches!(&e, AppError::OAuth(OAuthError::NotOAuth { fields, .. }) if fields == &["token"]),
            "{e:?}"
        );
        let e = app
            .oauth_start("gmail", client(" "), &none, "http://127.0.0.1:9/")
            .unwrap_err();
        assert!(
            matches!(
                e,
                AppError::OAuth(OAuthError::EmptyClient(ClientField::Secret))
            ),
            "{e:?}"
        );
        let bad = FlowOverrides {
            token_url: Some("not a url".into()),
            ..FlowOverrides::default()
        };
        let e = app
            .oauth_start("gmail", client("s"), &bad, "http://127.0.0.1:9/")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("the token url `not a url` is not a URL"),
            "{e}"
        );

        // A token endpoint nobody listens on: the exchange names it.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let closed = format!("http://{}/token", listener.local_addr().expect("addr"));
        drop(listener);
        let pending = app
            .oauth_start(
                "gmail",
                client("s"),
                &FlowOverrides {
                    token_url: Some(closed.clone()),
                    ..FlowOverrides::default()
                },
                "http://127.0.0.1:9/",
            )
            .expect("start");
        let e = app.oauth_finish(pending, "code").await.unwrap_err();
        assert!(
            matches!(&e, AppError::OAuth(OAuthError::Unreachable { url, .. }) if url == &closed),
            "{e:?}"
        );
    }
}
