//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Why a file tree or a server could not be built, started or stopped.
///
/// Server errors name the server, the command and, where there is one, the
/// tail of its log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server's binary is not installed.
    #[error(
        "{server}: binary not found (looked at {looked}); install the Debian package `{package}`"
    )]
    MissingBinary {
        /// The server (`vsftpd`, `proftpd`, `sshd`, `openssl`...).
        server: &'static str,
        /// The paths that were tried.
        looked: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// The servers need root: they add a system user and switch to it.
    #[error(
        "{server}: needs root (it adds a system user and switches to it); running as uid {uid}"
    )]
    NotRoot {
        /// The server.
        server: &'static str,
        /// The current uid.
        uid: u32,
    },
    /// A command failed, or a server exited or never answered.
    #[error("{server}: `{command}`: {detail}{}", log_section(.log_tail))]
    Command {
        /// The server (or tool) concerned.
        server: &'static str,
        /// The command line that was run.
        command: String,
        /// What went wrong.
        detail: String,
        /// The last lines of its output or log, possibly empty.
        log_tail: String,
    },
    /// A file-system operation failed.
    #[error("{context}: {path}: {source}", path = .path.display())]
    Io {
        /// What was being done.
        context: String,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A tree path was absolute, empty or escaped the tree with `..`.
    #[error("invalid tree path {path:?}: {reason}")]
    BadPath {
        /// The path as given.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
}

fn log_section(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- log tail ---\n{tail}")
    }
}

impl Error {
    pub(crate) fn io(
        context: impl Into<String>,
        path: impl Into<PathBuf>,
        source: io::Error,
    ) -> Self {
        Error::Io {
            context: context.into(),
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
