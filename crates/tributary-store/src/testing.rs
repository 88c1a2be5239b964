//! Throw-away, migrated databases for tests (this crate's and the engine's).
//!
//! - [`sqlite_test_store`]: a fresh SQLite file in the temp directory; the guard deletes
//!   it (and its WAL files) when dropped.
//! - [`postgres_test_store`]: a fresh, uniquely named database on the server named by
//!   `TRIBUTARY_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//!   the guard drops it (`WITH (FORCE)`) when dropped. When the server cannot be
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

/// Deletes a test SQLite database when dropped.
#[derive(Debug)]
pub struct SqliteTestGuard {
    path: PathBuf,
    key_base64: String,
    key: [u8; KEY_LEN],
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

/// A migrated SQLite store in a fresh temp file, and the guard that deletes it.
///
/// # Panics
/// When the temp directory is unusable (a broken test environment).
pub async fn sqlite_test_store() -> (Arc<dyn Store>, SqliteTestGuard) {
    let path = std::env::temp_dir().join(format!("tributary_test_{}.sqlite", unique_token()));
    let (key, key_base64) = test_key();
    let guard = SqliteTestGuard {
        path,
        key_base64,
        key,
    };
    let store = crate::sqlite::SqliteStore::connect(&guard.url(), guard.cipher())
        .await
        .unwrap_or_else(|e| panic!("cannot open test database {}: {e}", guard.path.display()));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("cannot migrate test database {}: {e}", guard.path.display()));
    (Arc::new(store), guard)
}
