//! ProFTPD: plain FTP with MLSD/MLST, chrooted to a tree.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::process::ServerProcess;
use crate::user::{TestUser, chown_tree};
use crate::util::{TempDir, find_binary, free_port, free_range, require_root, write_file};
use crate::vsftpd::{PASV_PORTS, START_ATTEMPTS};

const SERVER: &str = "proftpd";

/// Where `dpkg-deb -x proftpd-core_*.deb` is expected to have unpacked
/// ProFTPD when it cannot be installed beside vsftpd (Debian's FTP servers
/// conflict): the binary is `<this>/usr/sbin/proftpd`.
pub const PROFTPD_EXTRACTED: &str = "/opt/tributary-fileservers/proftpd";

/// How to run ProFTPD.
#[derive(Debug, Clone, Default)]
pub struct ProFtpdOptions {
    /// Leave the tree owned by its current owner instead of giving it to the
    /// FTP user.
    pub keep_tree_owner: bool,
}

/// A running ProFTPD. Stopped, its user deleted and its files removed on drop.
#[derive(Debug)]
pub struct ProFtpd {
    // Field order is drop order.
    process: ServerProcess,
    user: TestUser,
    temp: TempDir,
    port: u16,
    pasv: (u16, u16),
    banner: String,
}

fn candidates() -> Vec<PathBuf> {
    let mut c = vec![PathBuf::from("/usr/sbin/proftpd")];
    if let Some(p) = std::env::var_os("TRIBUTARY_PROFTPD") {
        c.push(PathBuf::from(p));
    }
    c.push(Path::new(PROFTPD_EXTRACTED).join("usr/sbin/proftpd"));
    c
}

impl ProFtpd {
    /// Starts ProFTPD on 127.0.0.1 serving `tree_root` (chrooted) to a new
    /// local user (checked against /etc/shadow, no PAM), and waits for its
    /// `220` banner.
    pub fn start(tree_root: &Path, options: ProFtpdOptions) -> Result<Self> {
        let binary = find_binary(SERVER, &candidates(), "proftpd-core")?;
        require_root(SERVER)?;
        let tree_root = tree_root
            .canonicalize()
            .map_err(|e| Error::io("resolving the tree root", tree_root, e))?;
        let temp = TempDir::new("tributary-proftpd")?;
        let user = TestUser::create(SERVER, "tributary-ftp", &tree_root)?;
        if !options.keep_tree_owner {
            chown_tree(&tree_root, user.uid, user.gid)?;
        }
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            let pasv_min = free_range(PASV_PORTS)?;
            let pasv = (pasv_min, pasv_min + PASV_PORTS - 1);
            let t = temp.path().display();
            let log = temp.path().join("system.log");
            let conf = format!(
                "ServerName \"tributary-proftpd\"\nServerType standalone\nDefaultServer on\n\
                 Port {port}\nDefaultAddress 127.0.0.1\nSocketBindTight on\nUseIPv6 off\n\
                 User nobody\nGroup nogroup\nUmask 022\nMaxInstances 50\n\
                 PidFile {t}/proftpd.pid\nScoreboardFile {t}/proftpd.scoreboard\n\
                 DelayEngine off\nControlsEngine off\nWtmpLog off\nUseReverseDNS off\n\
                 SystemLog {log}\nTransferLog none\nAuthPAM off\n\
                 AuthOrder mod_auth_unix.c\nRequireValidShell off\nDefaultRoot {root}\n\
                 PassivePorts {pmin} {pmax}\nAllowOverwrite on\nTimesGMT on\n\
                 UseSendfile off\nUseFtpUsers off\n\
                 <Directory />\n  AllowOverwrite on\n</Directory>\n",
                log = log.display(),
                root = tree_root.display(),
                pmin = pasv.0,
                pmax = pasv.1,
            );
            let conf_path = temp.path().join("proftpd.conf");
            write_file(&conf_path, conf.as_bytes())?;
            let mut cmd = Command::new(&binary);
            cmd.arg("--nodaemon").arg("--config").arg(&conf_path);
            let mut process =
                ServerProcess::spawn(SERVER, cmd, temp.path().join("stderr.log"), vec![log])?;
            match process.wait_ready(port, "220") {
                Ok(banner) => {
                    return Ok(ProFtpd {
                        process,
                        user,
                        temp,
                        port,
                        pasv,
                        banner,
                    });
                }
                Err(f) if f.port_taken => last = Some(f.error),
                Err(f) => return Err(f.error),
            }
        }
        Err(last.unwrap_or_else(|| Error::Command {
            server: SERVER,
            command: binary.display().to_string(),
            detail: "could not start".into(),
            log_tail: String::new(),
        }))
    }

    /// The control connection's address (127.0.0.1:port).
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

    /// The passive port range (inclusive).
    pub fn passive_ports(&self) -> (u16, u16) {
        self.pasv
    }

    /// The `220` line read when the server came up.
    pub fn banner(&self) -> &str {
        &self.banner
    }

    /// The server's temporary directory (config, logs).
    pub fn temp_dir(&self) -> &Path {
        self.temp.path()
    }

    /// Stops the server now (also done on drop).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}
