//! Credentials encrypted at rest.
//!
//! A [`Cipher`] seals credentials with XChaCha20-Poly1305 (an AEAD cipher: a wrong key
//! or a tampered row fails to decrypt instead of yielding garbage). The stored bytes are
//!
//! ```text
//! version (1 byte, currently 1) | nonce (24 random bytes) | ciphertext + 16-byte tag
//! ```
//!
//! The 192-bit nonce is drawn at random for every encryption, so a key can seal any
//! number of values without the risk of nonce reuse that a 96-bit nonce carries.
//!
//! The key comes from a [`KeySource`]: the environment variable
//! `TRIBUTARY_SECRET_KEY` (base64 of 32 bytes) when set, otherwise a key file that is
//! created with 32 random bytes and mode 0600 on first run and reused afterwards.
//! Neither `Debug` of [`Cipher`] nor of [`KeySource`] ever prints key bytes.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use tributary_sdk::Credentials;

use crate::StoreError;

/// The environment variable holding the base64 secret key.
pub const SECRET_KEY_ENV: &str = "TRIBUTARY_SECRET_KEY";

/// Length of a secret key in bytes.
pub const KEY_LEN: usize = 32;

/// The format version written as the first stored byte.
const VERSION: u8 = 1;
/// Length of an XChaCha20 nonce.
const NONCE_LEN: usize = 24;
/// Associated data binding ciphertexts to their purpose.
const AAD: &[u8] = b"tributary credentials v1";

/// Where the secret key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// A base64-encoded 32-byte key (the value of `TRIBUTARY_SECRET_KEY`).
    Base64(String),
    /// A key file holding exactly 32 raw bytes, created (mode 0600, parent directories
    /// included) with a random key when missing. An existing file is never overwritten.
    File(PathBuf),
}

impl KeySource {
    /// The key from `TRIBUTARY_SECRET_KEY` when that variable is set (even to a bad
    /// value, which [`Cipher::load`] then reports), else the key file at `key_file`.
    pub fn from_env_or_file(key_file: impl Into<PathBuf>) -> KeySource {
        match std::env::var(SECRET_KEY_ENV) {
            Ok(value) => KeySource::Base64(value),
            Err(_) => KeySource::File(key_file.into()),
        }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Base64(_) => f.write_str("KeySource::Base64(<redacted>)"),
            KeySource::File(path) => f.debug_tuple("KeySource::File").field(path).finish(),
        }
    }
}

/// Encrypts and decrypts credentials. Cheap to clone; `Debug` never shows the key.
#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(XChaCha20-Poly1305, key: <redacted>)")
    }
}

impl Cipher {
    /// A cipher with this key.
    pub fn from_key(key: &[u8; KEY_LEN]) -> Cipher {
        Cipher {
            aead: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// A cipher with the key from `source` (creating the key file when missing).
    pub fn load(source: &KeySource) -> Result<Cipher, StoreError> {
        let key = match source {
            KeySource::Base64(text) => decode_base64_key(text)?,
            KeySource::File(path) => load_or_create_key_file(path)?,
        };
        Ok(Cipher::from_key(&key))
    }

    /// A cipher with a fresh random key (tests).
    pub fn random_for_tests() -> Cipher {
        Cipher::from_key(&random_key())
    }

    /// Encrypts `plaintext` into the stored form (version, nonce, ciphertext).
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: AAD,
                },
            )
            .map_err(|_| StoreError::Crypto("encryption failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts the stored form; a wrong key or corrupt bytes are
    /// [`StoreError::Crypto`].
    pub fn decrypt(&self, stored: &[u8]) -> Result<Vec<u8>, StoreError> {
        let Some((&version, rest)) = stored.split_first() else {
            return Err(StoreError::Crypto("stored credentials are empty".into()));
        };
        if version != VERSION {
            return Err(StoreError::Crypto(format!(
                "stored credentials have unknown format version {version}"
            )));
        }
        if rest.len() < NONCE_LEN + 16 {
            return Err(StoreError::Crypto(
                "stored credentials are truncated".into(),
            ));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        self.aead
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: AAD,
                },
            )
            .map_err(|_| {
                StoreError::Crypto(
                    "cannot decrypt stored credentials: wrong secret key or corrupt row".into(),
                )
            })
    }

    /// Encrypts credentials (as their JSON text).
    pub fn encrypt_credentials(&self, credentials: &Credentials) -> Result<Vec<u8>, StoreError> {
        self.encrypt(credentials.to_json_string().as_bytes())
    }

    /// Decrypts credentials stored by [`Cipher::encrypt_credentials`].
    pub fn decrypt_credentials(&self, stored: &[u8]) -> Result<Credentials, StoreError> {
        let plain = self.decrypt(stored)?;
        let text = std::str::from_utf8(&plain)
            .map_err(|_| StoreError::Crypto("decrypted credentials are not UTF-8".into()))?;
        // The SDK's message names the JSON position only, never the content.
        Credentials::from_json_str(text)
            .map_err(|e| StoreError::Crypto(format!("decrypted credentials: {}", e.message())))
    }
}

/// 32 random bytes.
pub(crate) fn random_key() -> [u8; KEY_LEN] {
    let key = XChaCha20Poly1305::generate_key(&mut OsRng);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(&key);
    out
}

/// A fresh random key, base64-encoded (for `TRIBUTARY_SECRET_KEY`).
pub fn generate_base64_key() -> String {
    BASE64.encode(random_key())
}

fn decode_base64_key(text: &str) -> Result<[u8; KEY_LEN], StoreError> {
    let bytes = BASE64.decode(text.trim()).map_err(|_| {
        StoreError::Crypto(format!(
            "{SECRET_KEY_ENV} is not valid base64 (expected the base64 encoding of {KEY_LEN} bytes)"
        ))
    })?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        StoreError::Crypto(format!(
            "{SECRET_KEY_ENV} decodes to {} bytes, expected {KEY_LEN}",
            bytes.len()
        ))
    })
}

fn load_or_create_key_file(path: &Path) -> Result<[u8; KEY_LEN], StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            return <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
                StoreError::Crypto(format!(
                    "key file {} holds {} bytes, expected exactly {KEY_LEN}",
                    path.display(),
                    bytes.len()
                ))
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(StoreError::Crypto(format!(
                "cannot read key file {}: {e}",
                path.display()
            )));
        }
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            StoreError::Crypto(format!(
                "cannot create key directory {}: {e}",
                parent.display()
            ))
        })?;
    }
    // Write the key to a private temporary file, then hard-link it into place: the link
    // fails when the file already exists, so an existing key is never overwritten and a
    // concurrent process never sees a half-written file.
    let key = random_key();
    let tmp = path.with_extension(format!(
        "tmp-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let write_tmp = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(&key)?;
        file.sync_all()
    };
    let linked = write_tmp().and_then(|()| std::fs::hard_link(&tmp, path));
    // Best effort: the temporary name is only a stepping stone.
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created a new secret key file");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key_file(path),
        Err(e) => Err(StoreError::Crypto(format!(
            "cannot create key file {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!(
            "tributary-crypto-test-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ))
    }

    #[test]
    fn round_trip() {
        let c = Cipher::random_for_tests();
        let sealed = c.encrypt(b"hello").unwrap();
        assert_eq!(sealed[0], VERSION);
        assert_eq!(sealed.len(), 1 + NONCE_LEN + 5 + 16);
        assert_eq!(c.decrypt(&sealed).unwrap(), b"hello");
        // A fresh nonce every time.
        assert_ne!(c.encrypt(b"hello").unwrap(), sealed);
    }

    #[test]
    fn credentials_round_trip_and_ciphertext_hides_plaintext() {
        let c = Cipher::random_for_tests();
        let creds =
            Credentials::from_json_str(r#"{"refreshToken":"very-secret-token-123"}"#).unwrap();
        let sealed = c.encrypt_credentials(&creds).unwrap();
        let needle = b"very-secret-token-123";
        assert!(!sealed.windows(needle.len()).any(|w| w == needle));
        assert_eq!(c.decrypt_credentials(&sealed).unwrap(), creds);
    }

    #[test]
    fn wrong_key_fails_with_crypto_error() {
        let a = Cipher::random_for_tests();
        let b = Cipher::random_for_tests();
        let sealed = a.encrypt(b"secret").unwrap();
        assert!(matches!(b.decrypt(&sealed), Err(StoreError::Crypto(_))));
    }

    #[test]
    fn corrupt_rows_fail_with_crypto_error() {
        let c = Cipher::random_for_tests();
        let mut sealed = c.encrypt(b"secret").unwrap();
        assert!(matches!(c.decrypt(&[]), Err(StoreError::Crypto(_))));
        assert!(matches!(
            c.decrypt(&sealed[..10]),
            Err(StoreError::Crypto(_))
        ));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(c.decrypt(&sealed), Err(StoreError::Crypto(_))));
        sealed[0] = 9;
        let e = c.decrypt(&sealed).unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let key = [7u8; KEY_LEN];
        let c = Cipher::from_key(&key);
        let b64 = BASE64.encode(key);
        let printed = format!("{c:?} {c:#?} {:?}", KeySource::Base64(b64.clone()));
        assert!(!printed.contains(&b64));
        assert!(!printed.contains("7, 7"));
        assert!(printed.contains("redacted"));
    }

    #[test]
    fn base64_key_source() {
        let key = [3u8; KEY_LEN];
        let from_b64 = Cipher::load(&KeySource::Base64(BASE64.encode(key))).unwrap();
        let sealed = Cipher::from_key(&key).encrypt(b"x").unwrap();
        assert_eq!(from_b64.decrypt(&sealed).unwrap(), b"x");

        let e = Cipher::load(&KeySource::Base64("not base64!".into())).unwrap_err();
        assert!(matches!(e, StoreError::Crypto(_)));
        assert!(e.to_string().contains(SECRET_KEY_ENV), "{e}");
        let e = Cipher::load(&KeySource::Base64(BASE64.encode([1u8; 16]))).unwrap_err();
        assert!(e.to_string().contains("16 bytes"), "{e}");
        assert!(Cipher::load(&KeySource::Base64(generate_base64_key())).is_ok());
    }

    #[test]
    fn key_file_created_0600_and_reused() {
        let dir = temp_dir();
        let path = dir.join("nested").join("secret.key");
        let first = Cipher::load(&KeySource::File(path.clone())).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), KEY_LEN);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = first.encrypt(b"kept").unwrap();
        let second = Cipher::load(&KeySource::File(path.clone())).unwrap();
        assert_eq!(second.decrypt(&sealed).unwrap(), b"kept");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "never overwritten");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_file_of_wrong_size_is_an_error() {
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("short.key");
        std::fs::write(&path, b"too short").unwrap();
        let e = Cipher::load(&KeySource::File(path.clone())).unwrap_err();
        assert!(matches!(e, StoreError::Crypto(_)));
        assert!(e.to_string().contains("expected exactly 32"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"too short");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
