//! The start-up key check ([`Store::check_key`]) and accounts whose credentials a key
//! cannot read, on SQLite (`sqlite::<name>`) and PostgreSQL (`postgres::<name>`; skipped
//! without a server, except under `CI=true`).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::Map;
use tributary_sdk::Credentials;
use tributary_store::crypto::KeySource;
use tributary_store::{
    Cipher, LoadedKey, NewUserIntegration, Store, StoreError, UserIntegrationStatus,
};

struct Ctx {
    store: Arc<dyn Store>,
    url: String,
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, guard) = tributary_store::testing::sqlite_test_store().await;
                    super::$name(&super::Ctx { store, url: guard.url() }).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = tributary_store::testing::postgres_test_store().await else {
                        println!("skipped: PostgreSQL is not reachable");
                        return;
                    };
                    super::$name(&super::Ctx { store: db.store.clone(), url: db.url.clone() })
                        .await;
                }
            )*
        }
    };
}

on_both_backends!(
    key_check_counts_and_tries_the_newest_accounts,
    a_new_key_sees_the_credentials_of_the_lost_one,
    unlinked_accounts_read_without_their_credentials,
);

async fn link(store: &dyn Store, user_ref: &str) -> i64 {
    let user = store.create_user(user_ref).await.unwrap();
    let mut credentials = Credentials::default();
    credentials.set("refreshToken", "secret-refresh-token");
    store
        .create_user_integration(NewUserIntegration {
            user_id: user.id,
            integration_domain: "gmail".into(),
            credentials,
            settings: Map::new(),
        })
        .await
        .unwrap()
        .id
}

async fn reopen(ctx: &Ctx, cipher: Cipher) -> Arc<dyn Store> {
    tributary_store::connect(&ctx.url, cipher).await.unwrap()
}

async fn key_check_counts_and_tries_the_newest_accounts(ctx: &Ctx) {
    let empty = ctx.store.check_key(16).await.unwrap();
    assert!(empty.no_credentials(), "{empty:?}");
    assert!(!empty.wrong_key());

    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(link(ctx.store.as_ref(), &format!("u{i}")).await);
    }
    let check = ctx.store.check_key(3).await.unwrap();
    assert_eq!(check.accounts, 5);
    let newest: Vec<i64> = ids.iter().rev().take(3).copied().collect();
    assert_eq!(check.checked, newest, "the newest first");
    assert!(check.undecryptable.is_empty(), "{check:?}");
    assert!(!check.no_credentials() && !check.wrong_key());

    // Another key: every account tried fails.
    let other = reopen(ctx, Cipher::random_for_tests()).await;
    let wrong = other.check_key(16).await.unwrap();
    assert_eq!(wrong.accounts, 5);
    assert_eq!(wrong.undecryptable.len(), 5);
    assert!(wrong.wrong_key(), "{wrong:?}");

    // Unlinked accounts do not count: their credentials are never read again.
    for &id in &ids {
        ctx.store
            .set_user_integration_status(id, UserIntegrationStatus::Unlinked, None)
            .await
            .unwrap();
    }
    let after = other.check_key(16).await.unwrap();
    assert!(after.no_credentials(), "{after:?}");
}

/// What the binary does when the key file is missing: the fresh key (not yet written)
/// opens the store, which still reports the accounts sealed with the lost key.
async fn a_new_key_sees_the_credentials_of_the_lost_one(ctx: &Ctx) {
    let id = link(ctx.store.as_ref(), "alice").await;
    let dir = std::env::temp_dir().join(format!("tributary-keys-{}", rand::random::<u64>()));
    let path = dir.join("secret.key");
    let LoadedKey::Missing(new) = KeySource::File(path.clone()).load().unwrap() else {
        panic!("no key file was written");
    };
    let store = reopen(ctx, new.cipher()).await;
    let check = store.check_key(16).await.unwrap();
    assert!(!check.no_credentials());
    assert_eq!(check.accounts, 1);
    assert_eq!(check.checked, [id]);
    assert!(check.wrong_key());
    assert!(!path.exists(), "checking wrote the key file");
    assert!(matches!(
        store.get_user_integration(id).await,
        Err(StoreError::Crypto(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

async fn unlinked_accounts_read_without_their_credentials(ctx: &Ctx) {
    let kept = link(ctx.store.as_ref(), "kept").await;
    let retired = link(ctx.store.as_ref(), "retired").await;
    let other = reopen(ctx, Cipher::without_key("no key: the key file is missing")).await;
    // Unlinking reads no credentials.
    other
        .set_user_integration_status(retired, UserIntegrationStatus::Unlinked, None)
        .await
        .unwrap();
    let account = other.get_user_integration(retired).await.unwrap();
    assert_eq!(account.status, UserIntegrationStatus::Unlinked);
    assert_eq!(account.credentials, Credentials::default());
    let e = other.get_user_integration(kept).await.unwrap_err();
    assert!(e.to_string().contains("the key file is missing"), "{e}");
    // With the right key the unlinked account keeps its credentials.
    let own = ctx.store.get_user_integration(retired).await.unwrap();
    assert_eq!(
        own.credentials.get("refreshToken"),
        Some("secret-refresh-token")
    );
}
