//! The PostgreSQL backend (being written: only the SQLite backend works in this commit).

use crate::{Cipher, StoreError};

/// The PostgreSQL store.
#[derive(Debug)]
pub struct PgStore {
    _cipher: Cipher,
}

impl PgStore {
    /// Connects to `url` (not implemented yet).
    pub async fn connect(url: &str, cipher: Cipher) -> Result<PgStore, StoreError> {
        let _ = cipher;
        Err(StoreError::UnsupportedUrl(format!(
            "{url} (the PostgreSQL backend is not implemented yet)"
        )))
    }
}
