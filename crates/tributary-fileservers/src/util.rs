//! Small helpers: temporary directories, random names, free ports, commands.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::Rng;
use rand::distr::Alphanumeric;

use crate::error::{Error, Result};

/// A directory under the system temp dir, removed (recursively) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/<prefix>-<random>` with mode 0755 (servers that switch
    /// to the test user must be able to traverse it).
    pub fn new(prefix: &str) -> Result<Self> {
        let base = std::env::temp_dir();
        for _ in 0..16 {
            let path = base.join(format!("{prefix}-{}", random_lower(10)));
            match fs::create_dir(&path) {
                Ok(()) => {
                    set_mode(&path, 0o755)?;
                    return Ok(TempDir { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("creating a temporary directory", path, e)),
            }
        }
        Err(Error::io(
            "creating a temporary directory",
            base,
            io::Error::other("16 random names were all taken"),
        ))
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove temporary directory");
        }
    }
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("setting permissions", path, e))
}

/// `n` random lowercase letters and digits.
pub(crate) fn random_lower(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect()
}

/// `n` random letters and digits (for passwords).
pub(crate) fn random_alnum(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

fn port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A random loopback port that is free now, below Linux's ephemeral range
/// (so outgoing connections don't take it) and above the usual services.
pub(crate) fn free_port() -> Result<u16> {
    free_range(1)
}

/// The first of `len` consecutive loopback ports that are all free now.
pub(crate) fn free_range(len: u16) -> Result<u16> {
    let mut rng = rand::rng();
    for _ in 0..200 {
        let base: u16 = rng.random_range(20_000..32_000 - len);
        if (base..base + len).all(port_free) {
            return Ok(base);
        }
    }
    Err(Error::io(
        "finding free loopback ports",
        "127.0.0.1",
        io::Error::other(format!("no {len} consecutive free ports in 200 tries")),
    ))
}

/// The uid this process runs as.
pub(crate) fn current_uid() -> u32 {
    fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

pub(crate) fn require_root(server: &'static str) -> Result<()> {
    match current_uid() {
        0 => Ok(()),
        uid => Err(Error::NotRoot { server, uid }),
    }
}

/// The first path that exists, or a [`Error::MissingBinary`].
pub(crate) fn find_binary(
    server: &'static str,
    candidates: &[PathBuf],
    package: &'static str,
) -> Result<PathBuf> {
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| Error::MissingBinary {
            server,
            looked: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            package,
        })
}

/// A command line as one string, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command to completion; a non-zero exit is an error carrying its
/// output. Returns stdout.
pub(crate) fn run(server: &'static str, cmd: &mut Command) -> Result<String> {
    let command = describe(cmd);
    let out = cmd.output().map_err(|e| Error::Command {
        server,
        command: command.clone(),
        detail: format!("could not run: {e}"),
        log_tail: String::new(),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            server,
            command,
            detail: format!("exited with {}", out.status),
            log_tail: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// The last `lines` lines of each file, headed by its name.
pub(crate) fn log_tail(files: &[PathBuf], lines: usize) -> String {
    let mut out = String::new();
    for f in files {
        let Ok(bytes) = fs::read(f) else { continue };
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().collect();
        if all.is_empty() {
            continue;
        }
        let from = all.len().saturating_sub(lines);
        out.push_str(&format!("[{}]\n", f.display()));
        for l in &all[from..] {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

pub(crate) fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    fs::write(path, contents).map_err(|e| Error::io("writing", path, e))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
