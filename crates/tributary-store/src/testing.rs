//! Throw-away, migrated databases for tests (this crate's and the engine's).
//!
//! - [`sqlite_test_store`]: a fresh SQLite file in the temp directory; the guard deletes
//!   it (and its WAL files) when dropped.
//! - [`postgres_test_store`]: a fresh, uniquely named database on the server named by
//!   `TRIBUTARY_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//!   returned as a [`PgTestDb`] (store, URL, guard) that drops the database
//!   (`WITH (FORCE)`) when dropped. When the server cannot be
//!   reached it returns `None` (the test should print that it skipped), except when
//!   the environment variable `CI` is `true`: then it panics, so CI fails instead of
//!   silently skipping.
//!
//! Each database gets its own random secret key; the guards expose it (and the
//! database URL) so a test can open the same database again, or hand both to a worker
//! process through `TRIBUTARY_SECRET_KEY` and `--database-url`.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::crypto::KEY_LEN;
use crate::{Cipher, Store};

/// The environment variable naming the PostgreSQL server for tests.
pub const TEST_POSTGRES_URL_ENV: &str = "TRIBUTARY_TEST_POSTGRES_URL";
/// The server used when [`TEST_POSTGRES_URL_ENV`] is not set.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A process-unique random token (no external randomness crate needed).
fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(d.as_nanos());
    }
    format!("{}_{:016x}", std::process::id(), hasher.finish())
}

/// A fresh random key and its base64 form.
fn test_key() -> ([u8; KEY_LEN], String) {
    let key = crate::crypto::random_key();
    (key, BASE64.encode(key))
}

/// Deletes a test SQLite database when dropped. `Debug` shows the path, never the key.
pub struct SqliteTestGuard {
    path: PathBuf,
    key_base64: String,
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for SqliteTestGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTestGuard")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteTestGuard {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database URL (`sqlite://PATH`).
    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    /// The secret key the store encrypts credentials with, base64 (the form
    /// `TRIBUTARY_SECRET_KEY` takes).
    pub fn secret_key_base64(&self) -> &str {
        &self.key_base64
    }

    /// A cipher with the store's key (to open the database again).
    pub fn cipher(&self) -> Cipher {
        Cipher::from_key(&self.key)
    }
}

impl Drop for SqliteTestGuard {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    }
}

/// A fresh SQLite database path in the temp directory (no file yet: opening a store
/// creates it), not migrated, and the guard that deletes it (a test that builds a
/// database as an older release did).
pub fn sqlite_test_database() -> SqliteTestGuard {
    let path = std::env::temp_dir().join(format!("tributary_test_{}.sqlite", unique_token()));
    let (key, key_base64) = test_key();
    SqliteTestGuard {
        path,
        key_base64,
        key,
    }
}

/// A migrated SQLite store in a fresh temp file, and the guard that deletes it.
///
/// # Panics
/// When the temp directory is unusable (a broken test environment).
pub async fn sqlite_test_store() -> (Arc<dyn Store>, SqliteTestGuard) {
    let guard = sqlite_test_database();
    let store = crate::sqlite::SqliteStore::connect(&guard.url(), guard.cipher())
        .await
        .unwrap_or_else(|e| panic!("cannot open test database {}: {e}", guard.path.display()));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("cannot migrate test database {}: {e}", guard.path.display()));
    (Arc::new(store), guard)
}

/// A migrated test PostgreSQL database: the store, its URL, and the guard that drops
/// the database when this value is dropped.
pub struct PgTestDb {
    /// The migrated store.
    pub store: Arc<dyn Store>,
    /// The URL of the test database (hand it to worker processes).
    pub url: String,
    /// Drops the database; declared last so that it is dropped after `store`.
    pub guard: PgTestGuard,
}

impl std::fmt::Debug for PgTestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTestDb")
            .field("backend", &self.store.backend())
            .field("database", &self.guard.database)
            .finish_non_exhaustive()
    }
}

impl PgTestDb {
    /// The secret key the store encrypts credentials with, base64 (the form
    /// `TRIBUTARY_SECRET_KEY` takes).
    pub fn secret_key_base64(&self) -> &str {
        &self.guard.key_base64
    }

    /// A cipher with the store's key (to open more connections to the database).
    pub fn cipher(&self) -> Cipher {
        self.guard.cipher()
    }
}

/// Drops a test PostgreSQL database (`WITH (FORCE)`, closing every connection to it)
/// when dropped. `Debug` shows the database name, never the key or the server URL.
pub struct PgTestGuard {
    admin_url: String,
    url: String,
    database: String,
    key_base64: String,
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for PgTestGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTestGuard")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl PgTestGuard {
    /// The URL of the test database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The test database's name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The secret key the store encrypts credentials with, base64.
    pub fn secret_key_base64(&self) -> &str {
        &self.key_base64
    }

    /// A cipher with the store's key.
    pub fn cipher(&self) -> Cipher {
        Cipher::from_key(&self.key)
    }
}

impl Drop for PgTestGuard {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let database = self.database.clone();
        // Drop may run inside or outside a runtime: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                // The name is ours (letters, digits, underscores): safe to splice in.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
                conn.close().await.map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.database),
            Err(_) => eprintln!("could not drop test database {}: panicked", self.database),
        }
    }
}

/// `url` with its database name replaced by `database` (query string kept).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A fresh, empty (not migrated) PostgreSQL database as [`postgres_test_store`] makes
/// it, and the guard that drops it; `None` when the server is unreachable (a test that
/// builds a database as an older release did).
///
/// # Panics
/// As [`postgres_test_store`].
pub async fn postgres_test_database() -> Option<PgTestGuard> {
    use sqlx::Connection as _;

    let admin_url = std::env::var(TEST_POSTGRES_URL_ENV)
        .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_owned());
    let connected = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sqlx::PgConnection::connect(&admin_url),
    )
    .await;
    let mut admin = match connected {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return unreachable_postgres(&e.to_string()),
        Err(_) => return unreachable_postgres("timed out after 10 s"),
    };
    let database = format!("tributary_test_{}", unique_token());
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{database}\""
    )))
    .execute(&mut admin)
    .await
    .unwrap_or_else(|e| panic!("cannot create test database {database}: {e}"));
    let _ = admin.close().await;
    let (key, key_base64) = test_key();
    Some(PgTestGuard {
        url: with_database(&admin_url, &database),
        admin_url,
        database,
        key_base64,
        key,
    })
}

/// A migrated PostgreSQL store on a fresh, uniquely named database
/// (`tributary_test_<pid>_<random>`) of the server named by
/// `TRIBUTARY_TEST_POSTGRES_URL` (default [`DEFAULT_TEST_POSTGRES_URL`]), with its URL;
/// dropping the returned value drops the database. `None` when the server is
/// unreachable, so the test can print that it skipped.
///
/// # Panics
/// When the server is unreachable and the environment variable `CI` is `true` (CI must
/// fail, not skip), or when the server is reachable but the database cannot be created
/// or migrated.
pub async fn postgres_test_store() -> Option<PgTestDb> {
    let guard = postgres_test_database().await?;
    let store = crate::postgres::PgStore::connect(&guard.url, guard.cipher())
        .await
        .unwrap_or_else(|e| panic!("cannot open test database {}: {e}", guard.database));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("cannot migrate test database {}: {e}", guard.database));
    Some(PgTestDb {
        store: Arc::new(store),
        url: guard.url.clone(),
        guard,
    })
}

fn unreachable_postgres<T>(why: &str) -> Option<T> {
    // The URL is not printed: it may hold a password.
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "PostgreSQL for tests ({TEST_POSTGRES_URL_ENV}) is unreachable: {why}; \
             CI=true, so this fails instead of skipping"
        );
    }
    eprintln!("PostgreSQL for tests ({TEST_POSTGRES_URL_ENV}) is unreachable: {why}");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "t3"),
            "postgres://h:5432/t3"
        );
    }

    #[test]
    fn tokens_are_unique() {
        assert_ne!(unique_token(), unique_token());
    }
}
