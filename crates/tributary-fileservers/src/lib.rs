//! Test support for Tributary's FTP/FTPS and SFTP integrations: real
//! open-source servers started on free loopback ports with temporary
//! configurations, users and file trees.
//!
//! * [`FileTree`] builds a directory tree from a [`TreeSpec`], lists it back
//!   ([`FileTree::list`]) and mutates it, so a test can compare a sync against
//!   the truth on disk.
//! * [`Vsftpd`] runs Debian's vsftpd (plain FTP or explicit FTPS); vsftpd has
//!   no MLSD, so clients must fall back to `LIST`.
//! * [`ProFtpd`] runs ProFTPD (plain FTP, MLSD/MLST).
//! * [`Sshd`] runs OpenSSH's sshd with `internal-sftp`, password and
//!   public-key authentication, and can restart with a new host key.
//!
//! Every server runs in the foreground as a child process in its own process
//! group; [`Drop`] stops the group, reaps it, deletes the system user it made
//! and removes its temporary directory.
//!
//! The servers need root (they create a system user and switch to it). Use
//! [`require_or_skip`] so a test skips when a server cannot start on a
//! developer's machine but fails under `CI=true`.
//!
//! Debian packages: `vsftpd`, `openssh-server`, `openssl` from apt, and
//! ProFTPD from `proftpd-core`. Debian's FTP servers conflict with one another
//! (they all provide `ftp-server`), so ProFTPD is looked up at
//! `/usr/sbin/proftpd`, then `$TRIBUTARY_PROFTPD`, then
//! [`PROFTPD_EXTRACTED`] where `apt-get download proftpd-core` and
//! `dpkg-deb -x` put it next to an installed vsftpd.
//! `install-servers.sh` in this crate does all of that (idempotent, as root).

mod error;
mod process;
mod proftpd;
mod sshd;
mod tree;
mod user;
mod util;
mod vsftpd;

pub use error::Error;
pub use proftpd::{PROFTPD_EXTRACTED, ProFtpd, ProFtpdOptions};
pub use sshd::{Sshd, SshdOptions};
pub use tree::{EntryInfo, EntryKind, FileTree, TreeSpec};
pub use util::TempDir;
pub use vsftpd::{Vsftpd, VsftpdOptions};

/// Unwraps the result of starting a server, or decides to skip the test.
///
/// Under `CI=true` a server that cannot start is a test failure: this panics
/// with the reason. Anywhere else it prints why the test is skipped (naming
/// `what`) and returns `None`, so the test can `return` early:
///
/// ```no_run
/// # use tributary_fileservers::*;
/// let tree = FileTree::temp(&TreeSpec::new().file("a.txt", b"hi")).expect("tree");
/// let Some(server) = require_or_skip("vsftpd", Vsftpd::start(tree.root(), VsftpdOptions::default())) else {
///     return;
/// };
/// # drop(server);
/// ```
pub fn require_or_skip<T>(what: &str, result: Result<T, Error>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            if is_ci() {
                panic!("{what}: server required under CI=true but could not start: {err}");
            }
            eprintln!("SKIPPED {what}: {err}");
            None
        }
    }
}

/// Whether `CI` is set to `true` (or `1`) in the environment.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}
