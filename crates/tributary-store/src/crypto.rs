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
//! `TRIBUTARY_SECRET_KEY` (base64 of 32 bytes) when set, otherwise a key file of 32
//! raw bytes, mode 0600. [`KeySource::load`] never creates a key file by itself: a
//! missing file gives a [`NewKeyFile`], a fresh key its caller writes
//! ([`NewKeyFile::create`]) only once it has checked that the database holds no
//! credentials sealed with the lost key ([`KeyCheck`]); otherwise a new key would make
//! every stored account undecryptable. Neither `Debug` of [`Cipher`], [`KeySource`]
//! nor [`NewKeyFile`] ever prints key bytes.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// A key file holding exactly 32 raw bytes. When missing, [`KeySource::load`]
    /// offers a [`NewKeyFile`] to create (mode 0600, parent directories included); an
    /// existing file is never overwritten.
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

    /// Loads the key: [`LoadedKey::Ready`] when the variable is set or the key file
    /// exists, [`LoadedKey::Missing`] (nothing written yet) when the key file does not
    /// exist. A malformed key or an unreadable file is an error.
    pub fn load(&self) -> Result<LoadedKey, StoreError> {
        match self {
            KeySource::Base64(text) => Ok(LoadedKey::Ready(Cipher::from_key(&decode_base64_key(
                text,
            )?))),
            KeySource::File(path) => Ok(match read_key_file(path)? {
                Some(key) => LoadedKey::Ready(Cipher::from_key(&key)),
                None => LoadedKey::Missing(NewKeyFile {
                    path: path.clone(),
                    key: random_key(),
                }),
            }),
        }
    }

    /// Names the source for messages: `TRIBUTARY_SECRET_KEY` or `key file PATH`.
    pub fn describe(&self) -> String {
        match self {
            KeySource::Base64(_) => SECRET_KEY_ENV.to_owned(),
            KeySource::File(path) => format!("key file {}", path.display()),
        }
    }
}

/// What [`KeySource::load`] found.
#[derive(Debug)]
pub enum LoadedKey {
    /// The key exists.
    Ready(Cipher),
    /// The key file does not exist; here is a fresh key for it, not yet written.
    Missing(NewKeyFile),
}

/// A fresh random key for a key file that does not exist yet. Nothing is written until
/// [`NewKeyFile::create`]; `Debug` shows the path only.
pub struct NewKeyFile {
    path: PathBuf,
    key: [u8; KEY_LEN],
}

impl fmt::Debug for NewKeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKeyFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl NewKeyFile {
    /// Where the key file would be created.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A cipher with the new key (usable before the file is written: a store opened
    /// with it can be checked for credentials first).
    pub fn cipher(&self) -> Cipher {
        Cipher::from_key(&self.key)
    }

    /// Writes the key file (mode 0600, parent directories included) and returns its
    /// cipher. Never overwrites: when the file appeared meanwhile (another process
    /// created it), that file's key is returned instead, with `created == false`.
    pub fn create(self) -> Result<CreatedKey, StoreError> {
        match create_key_file(&self.path, &self.key)? {
            None => {
                tracing::info!(path = %self.path.display(), "created a new secret key file");
                Ok(CreatedKey {
                    cipher: Cipher::from_key(&self.key),
                    created: true,
                })
            }
            Some(existing) => Ok(CreatedKey {
                cipher: Cipher::from_key(&existing),
                created: false,
            }),
        }
    }
}

/// The result of [`NewKeyFile::create`].
#[derive(Debug)]
pub struct CreatedKey {
    /// The key now in the file.
    pub cipher: Cipher,
    /// Whether this call wrote it (false: another process had just created the file,
    /// and `cipher` holds that key, not the one [`NewKeyFile::cipher`] gave).
    pub created: bool,
}

/// How a store's key fares against the stored credentials ([`crate::Store::check_key`]):
/// only accounts that are not unlinked count (an unlinked account's credentials are
/// never read again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCheck {
    /// Accounts (not unlinked) holding encrypted credentials.
    pub accounts: u64,
    /// The ids of the newest of them that were tried, newest first.
    pub checked: Vec<i64>,
    /// Those of `checked` whose credentials this key does not decrypt.
    pub undecryptable: Vec<i64>,
}

impl KeyCheck {
    /// Tries `cipher` on `rows` (id, stored credentials), newest first.
    pub fn run(cipher: &Cipher, accounts: u64, rows: &[(i64, Vec<u8>)]) -> KeyCheck {
        KeyCheck {
            accounts,
            checked: rows.iter().map(|(id, _)| *id).collect(),
            undecryptable: rows
                .iter()
                .filter(|(_, stored)| cipher.decrypt(stored).is_err())
                .map(|(id, _)| *id)
                .collect(),
        }
    }

    /// No account holds credentials: a new key loses nothing.
    pub fn no_credentials(&self) -> bool {
        self.accounts == 0 && self.checked.is_empty()
    }

    /// Every account tried fails to decrypt (and at least one was tried): the key is
    /// not the one the credentials were stored with.
    pub fn wrong_key(&self) -> bool {
        !self.checked.is_empty() && self.undecryptable.len() == self.checked.len()
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
    /// The key, or why there is none ([`Cipher::without_key`]).
    aead: Result<XChaCha20Poly1305, Arc<str>>,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.aead {
            Ok(_) => f.write_str("Cipher(XChaCha20-Poly1305, key: <redacted>)"),
            Err(_) => f.write_str("Cipher(no key)"),
        }
    }
}

impl Cipher {
    /// A cipher with this key.
    pub fn from_key(key: &[u8; KEY_LEN]) -> Cipher {
        Cipher {
            aead: Ok(XChaCha20Poly1305::new(key.into())),
        }
    }

    /// A cipher without a key, for work that never touches credentials (listing
    /// content or jobs while the key is missing): every encryption and decryption fails
    /// with [`StoreError::Crypto`] carrying `reason`.
    pub fn without_key(reason: impl Into<String>) -> Cipher {
        Cipher {
            aead: Err(Arc::from(reason.into())),
        }
    }

    /// A cipher with the existing key of `source`; a missing key file is an error
    /// naming it (nothing is created: see [`KeySource::load`]).
    pub fn load(source: &KeySource) -> Result<Cipher, StoreError> {
        match source.load()? {
            LoadedKey::Ready(cipher) => Ok(cipher),
            LoadedKey::Missing(new) => Err(StoreError::Crypto(format!(
                "key file {} does not exist",
                new.path().display()
            ))),
        }
    }

    fn aead(&self) -> Result<&XChaCha20Poly1305, StoreError> {
        self.aead
            .as_ref()
            .map_err(|reason| StoreError::Crypto(reason.to_string()))
    }

    /// A cipher with a fresh random key (tests).
    pub fn random_for_tests() -> Cipher {
        Cipher::from_key(&random_key())
    }

    /// Encrypts `plaintext` into the stored form (version, nonce, ciphertext).
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .aead()?
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
        self.aead()?
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

/// The key in `path`, `None` when the file does not exist.
fn read_key_file(path: &Path) -> Result<Option<[u8; KEY_LEN]>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => <[u8; KEY_LEN]>::try_from(bytes.as_slice())
            .map(Some)
            .map_err(|_| {
                StoreError::Crypto(format!(
                    "key file {} holds {} bytes, expected exactly {KEY_LEN}",
                    path.display(),
                    bytes.len()
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Crypto(format!(
            "cannot read key file {}: {e}",
            path.display()
        ))),
    }
}

/// Writes `key` to `path` unless the file exists; returns the existing file's key
/// (`Some`) when it does, `None` when this call wrote it.
fn create_key_file(path: &Path, key: &[u8; KEY_LEN]) -> Result<Option<[u8; KEY_LEN]>, StoreError> {
    if let Some(existing) = read_key_file(path)? {
        return Ok(Some(existing));
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
        file.write_all(key)?;
        file.sync_all()
    };
    let linked = write_tmp().and_then(|()| std::fs::hard_link(&tmp, path));
    // Best effort: the temporary name is only a stepping stone.
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match read_key_file(path)? {
            Some(existing) => Ok(Some(existing)),
            None => Err(StoreError::Crypto(format!(
                "key file {} vanished while it was being created",
                path.display()
            ))),
        },
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
    fn key_file_created_0600_only_when_asked_and_reused() {
        let dir = temp_dir();
        let path = dir.join("nested").join("secret.key");
        let source = KeySource::File(path.clone());
        // Loading never creates the file.
        let e = Cipher::load(&source).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let LoadedKey::Missing(new) = source.load().unwrap() else {
            panic!("the key file does not exist yet");
        };
        assert!(!path.exists(), "loading wrote the key file");
        assert_eq!(new.path(), path);
        let before = new.cipher().encrypt(b"early").unwrap();
        let created = new.create().unwrap();
        assert!(created.created);
        assert_eq!(created.cipher.decrypt(&before).unwrap(), b"early");
        let first = created.cipher;
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
        assert!(matches!(source.load().unwrap(), LoadedKey::Ready(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_key_file_created_meanwhile_wins() {
        let dir = temp_dir();
        let path = dir.join("secret.key");
        let source = KeySource::File(path.clone());
        let (LoadedKey::Missing(a), LoadedKey::Missing(b)) =
            (source.load().unwrap(), source.load().unwrap())
        else {
            panic!("the key file does not exist yet");
        };
        let sealed_by_b = b.cipher().encrypt(b"b").unwrap();
        let a = a.create().unwrap();
        assert!(a.created);
        let b = b.create().unwrap();
        assert!(
            !b.created,
            "the second creation must not overwrite the first"
        );
        assert!(
            b.cipher.decrypt(&sealed_by_b).is_err(),
            "b's own key was dropped"
        );
        let sealed = a.cipher.encrypt(b"a").unwrap();
        assert_eq!(b.cipher.decrypt(&sealed).unwrap(), b"a");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cipher_without_key_refuses_with_its_reason() {
        let c = Cipher::without_key("no key: key file /x is missing");
        let e = c.encrypt(b"x").unwrap_err();
        assert!(e.to_string().contains("key file /x is missing"), "{e}");
        let sealed = Cipher::random_for_tests().encrypt(b"x").unwrap();
        assert!(matches!(c.decrypt(&sealed), Err(StoreError::Crypto(_))));
        assert_eq!(format!("{c:?}"), "Cipher(no key)");
    }

    #[test]
    fn key_check_tells_a_wrong_key_from_a_mixed_one() {
        let right = Cipher::random_for_tests();
        let other = Cipher::random_for_tests();
        let rows = vec![
            (3, right.encrypt(b"c").unwrap()),
            (2, other.encrypt(b"b").unwrap()),
            (1, right.encrypt(b"a").unwrap()),
        ];
        let check = KeyCheck::run(&right, 3, &rows);
        assert_eq!(check.checked, [3, 2, 1]);
        assert_eq!(check.undecryptable, [2]);
        assert!(!check.wrong_key() && !check.no_credentials());
        let wrong = KeyCheck::run(&Cipher::random_for_tests(), 3, &rows);
        assert_eq!(wrong.undecryptable, [3, 2, 1]);
        assert!(wrong.wrong_key());
        let empty = KeyCheck::run(&right, 0, &[]);
        assert!(empty.no_credentials() && !empty.wrong_key());
    }

    #[test]
    fn sources_describe_themselves_without_the_key() {
        let b64 = generate_base64_key();
        assert_eq!(KeySource::Base64(b64.clone()).describe(), SECRET_KEY_ENV);
        assert_eq!(
            KeySource::File(PathBuf::from("/k/secret.key")).describe(),
            "key file /k/secret.key"
        );
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
