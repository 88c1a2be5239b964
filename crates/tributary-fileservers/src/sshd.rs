//! OpenSSH's sshd with `internal-sftp`, password and public-key login.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::process::ServerProcess;
use crate::user::{TestUser, chown_tree};
use crate::util::{TempDir, find_binary, free_port, require_root, run, write_file};
use crate::vsftpd::START_ATTEMPTS;

const SERVER: &str = "sshd";

/// How to run sshd.
#[derive(Debug, Clone, Default)]
pub struct SshdOptions {
    /// Leave the tree owned by its current owner instead of giving it to the
    /// SFTP user.
    pub keep_tree_owner: bool,
}

/// A running sshd serving SFTP only (`ForceCommand internal-sftp`), starting
/// sessions in the tree's root. Stopped, its user deleted and its files
/// removed on drop.
#[derive(Debug)]
pub struct Sshd {
    // Field order is drop order.
    process: ServerProcess,
    user: TestUser,
    temp: TempDir,
    binary: PathBuf,
    port: u16,
    banner: String,
    host_public_key: String,
}

impl Sshd {
    /// Starts sshd on 127.0.0.1 with a fresh ed25519 host key, a new user
    /// (password and an ed25519 client key, see [`Sshd::client_key_path`]),
    /// and waits for its `SSH-2.0-` banner.
    pub fn start(tree_root: &Path, options: SshdOptions) -> Result<Self> {
        let binary = find_binary(SERVER, &[PathBuf::from("/usr/sbin/sshd")], "openssh-server")?;
        require_root(SERVER)?;
        find_binary(
            SERVER,
            &[PathBuf::from("/usr/bin/ssh-keygen")],
            "openssh-client",
        )?;
        // sshd's privilege separation directory, normally made by its init
        // script; harmless to create.
        fs::create_dir_all("/run/sshd").map_err(|e| Error::io("creating", "/run/sshd", e))?;
        let tree_root = tree_root
            .canonicalize()
            .map_err(|e| Error::io("resolving the tree root", tree_root, e))?;
        let temp = TempDir::new("tributary-sshd")?;
        let user = TestUser::create(SERVER, "tributary-sftp", &tree_root)?;
        if !options.keep_tree_owner {
            chown_tree(&tree_root, user.uid, user.gid)?;
        }
        let t = temp.path();
        keygen(&t.join("client_ed25519"), &user.name)?;
        let client_pub = fs::read(t.join("client_ed25519.pub"))
            .map_err(|e| Error::io("reading", t.join("client_ed25519.pub"), e))?;
        write_file(&t.join("authorized_keys"), &client_pub)?;
        let host_public_key = new_host_key(t)?;
        let conf = format!(
            "ListenAddress 127.0.0.1\nHostKey {t}/host_ed25519\nPidFile {t}/sshd.pid\n\
             AuthorizedKeysFile {t}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication yes\nPermitEmptyPasswords no\nPubkeyAuthentication yes\n\
             KbdInteractiveAuthentication no\nPermitRootLogin no\nAllowUsers {user}\n\
             AllowTcpForwarding no\nAllowAgentForwarding no\nX11Forwarding no\nPermitTTY no\n\
             UseDNS no\nPrintMotd no\nLogLevel VERBOSE\nMaxStartups 100\n\
             Subsystem sftp internal-sftp -d {root}\nForceCommand internal-sftp -d {root}\n",
            t = t.display(),
            user = user.name,
            root = tree_root.display(),
        );
        write_file(&t.join("sshd_config"), conf.as_bytes())?;

        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match launch(&binary, t, port) {
                Ok((process, banner)) => {
                    return Ok(Sshd {
                        process,
                        user,
                        temp,
                        binary,
                        port,
                        banner,
                        host_public_key,
                    });
                }
                Err((e, true)) => last = Some(e),
                Err((e, false)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Command {
            server: SERVER,
            command: binary.display().to_string(),
            detail: "could not start".into(),
            log_tail: String::new(),
        }))
    }

    /// Stops sshd, replaces its host key with a new one and starts it again
    /// on the same port. Clients that remember the old key must refuse it.
    ///
    /// Fails (naming sshd and its log) if another process took the port in
    /// between.
    pub fn restart_with_new_host_key(&mut self) -> Result<()> {
        self.process.stop();
        self.host_public_key = new_host_key(self.temp.path())?;
        let (process, banner) =
            launch(&self.binary, self.temp.path(), self.port).map_err(|(e, _)| e)?;
        self.process = process;
        self.banner = banner;
        Ok(())
    }

    /// The address (127.0.0.1:port).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user.name
    }

    /// The user's password.
    pub fn password(&self) -> &str {
        &self.user.password
    }

    /// The client's private key (OpenSSH format, ed25519, no passphrase),
    /// listed in the server's authorized keys.
    pub fn client_key_path(&self) -> PathBuf {
        self.temp.path().join("client_ed25519")
    }

    /// The client's public key file.
    pub fn client_public_key_path(&self) -> PathBuf {
        self.temp.path().join("client_ed25519.pub")
    }

    /// The host's public key, as in a `.pub` file: `ssh-ed25519 AAAA... comment`.
    pub fn host_public_key(&self) -> &str {
        &self.host_public_key
    }

    /// The host key's fingerprint as OpenSSH prints it: `SHA256:<base64>`.
    pub fn host_key_fingerprint(&self) -> String {
        fingerprint(&self.host_public_key).unwrap_or_default()
    }

    /// A `known_hosts` line for this server: `[127.0.0.1]:port ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self) -> String {
        let mut f = self.host_public_key.split_whitespace();
        let (kind, blob) = (f.next().unwrap_or_default(), f.next().unwrap_or_default());
        format!("[127.0.0.1]:{} {kind} {blob}", self.port)
    }

    /// The `SSH-2.0-...` line read when the server came up.
    pub fn banner(&self) -> &str {
        &self.banner
    }

    /// The server's temporary directory (config, keys, logs).
    pub fn temp_dir(&self) -> &Path {
        self.temp.path()
    }

    /// Stops the server now (also done on drop).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

fn launch(
    binary: &Path,
    dir: &Path,
    port: u16,
) -> std::result::Result<(ServerProcess, String), (Error, bool)> {
    let mut cmd = Command::new(binary);
    cmd.arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .arg("-p")
        .arg(port.to_string());
    let mut process = ServerProcess::spawn(SERVER, cmd, dir.join("sshd.log"), Vec::new())
        .map_err(|e| (e, false))?;
    match process.wait_ready(port, "SSH-2.0-") {
        Ok(banner) => Ok((process, banner)),
        Err(f) => Err((f.error, f.port_taken)),
    }
}

fn keygen(path: &Path, comment: &str) -> Result<()> {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    run(
        SERVER,
        Command::new("/usr/bin/ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
    )
    .map(|_| ())
}

/// Makes `dir/host_ed25519` anew; returns its public key line.
fn new_host_key(dir: &Path) -> Result<String> {
    let key = dir.join("host_ed25519");
    keygen(&key, "tributary-test-host")?;
    let public = dir.join("host_ed25519.pub");
    fs::read_to_string(&public)
        .map(|s| s.trim().to_owned())
        .map_err(|e| Error::io("reading", public, e))
}

/// `SHA256:<unpadded base64 of SHA-256 of the key blob>`, as `ssh-keygen -l`.
fn fingerprint(public_key_line: &str) -> Option<String> {
    let blob = public_key_line.split_whitespace().nth(1)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let digest = Sha256::digest(raw);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    ))
}
