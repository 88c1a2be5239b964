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

    let linked = f
        .app
        .link(
            user.id,
            "synthetic",
            credentials(TOKEN),
            f.server.settings(),
        )
        .await
        .expect("link");
    assert_eq!(linked.status, S::Active);
    assert_eq!(linked.credentials.get("token"), Some(TOKEN));
}

#[tokio::test]
async fn status_changes_follow_the_rules() {
    let f = fixture().await;
    let user = f.app.store().create_user("bob").await.expect("user");
    let id = f
        .app
        .link(
            user.id,
            "synthetic",
            credentials(TOKEN),
            f.server.settings(),
        )
        .await
        .expect("link")
        .id;

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
