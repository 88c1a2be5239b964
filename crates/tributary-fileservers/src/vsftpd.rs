//! Debian's vsftpd: plain FTP or explicit FTPS, chrooted to a tree.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::process::ServerProcess;
use crate::user::{TestUser, chown_tree};
use crate::util::{
    TempDir, find_binary, free_port, free_range, hex, require_root, run, write_file,
};

const SERVER: &str = "vsftpd";
/// How many passive ports each server gets.
pub(crate) const PASV_PORTS: u16 = 10;
/// How many times a start is retried when another process took the port.
pub(crate) const START_ATTEMPTS: usize = 5;

/// How to run vsftpd.
#[derive(Debug, Clone, Default)]
pub struct VsftpdOptions {
    /// Explicit FTPS (`AUTH TLS`): `ssl_enable=YES`, `require_ssl_reuse=YES`,
    /// logins and data forced onto TLS, with a fresh self-signed certificate.
    pub ftps: bool,
    /// Leave the tree owned by its current owner instead of giving it to the
    /// FTP user (the user then may not be able to write).
    pub keep_tree_owner: bool,
}

/// A running vsftpd. Stopped, its user deleted and its files removed on drop.
#[derive(Debug)]
pub struct Vsftpd {
    // Field order is drop order: the server, then its user, then its files.
    process: ServerProcess,
    user: TestUser,
    temp: TempDir,
    port: u16,
    pasv: (u16, u16),
    banner: String,
    cert: Option<PathBuf>,
    cert_sha256: Option<[u8; 32]>,
}

impl Vsftpd {
    /// Starts vsftpd on 127.0.0.1 serving `tree_root` (chrooted) to a new
    /// local user, and waits for its `220` banner.
    pub fn start(tree_root: &Path, options: VsftpdOptions) -> Result<Self> {
        let binary = find_binary(SERVER, &[PathBuf::from("/usr/sbin/vsftpd")], "vsftpd")?;
        require_root(SERVER)?;
        if !Path::new("/etc/pam.d/vsftpd").is_file() {
            return Err(Error::MissingBinary {
                server: SERVER,
                looked: "/etc/pam.d/vsftpd".into(),
                package: "vsftpd",
            });
        }
        let tree_root = tree_root
            .canonicalize()
            .map_err(|e| Error::io("resolving the tree root", tree_root, e))?;
        let temp = TempDir::new("tributary-vsftpd")?;
        let user = TestUser::create(SERVER, "tributary-ftp", &tree_root)?;
        if !options.keep_tree_owner {
            chown_tree(&tree_root, user.uid, user.gid)?;
        }
        let empty = temp.path().join("empty");
        std::fs::create_dir(&empty).map_err(|e| Error::io("creating", &empty, e))?;

        let (cert, cert_sha256) = if options.ftps {
            let (c, k, fp) = self_signed_cert(SERVER, temp.path())?;
            (Some((c, k)), Some(fp))
        } else {
            (None, None)
        };

        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            let pasv_min = free_range(PASV_PORTS)?;
            let pasv = (pasv_min, pasv_min + PASV_PORTS - 1);
            let log = temp.path().join("vsftpd.log");
            let mut conf = format!(
                "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
                 background=NO\nanonymous_enable=NO\nlocal_enable=YES\nwrite_enable=YES\n\
                 local_umask=022\nchroot_local_user=YES\nallow_writeable_chroot=YES\n\
                 local_root={root}\nuserlist_enable=NO\npam_service_name=vsftpd\n\
                 secure_chroot_dir={empty}\npasv_enable=YES\npasv_address=127.0.0.1\n\
                 pasv_min_port={pmin}\npasv_max_port={pmax}\nport_enable=YES\n\
                 seccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\nuse_localtime=NO\n\
                 utf8_filesystem=YES\nxferlog_enable=YES\nxferlog_std_format=NO\n\
                 vsftpd_log_file={log}\nlog_ftp_protocol=YES\ndirmessage_enable=NO\n\
                 max_per_ip=0\nmax_clients=0\n",
                root = tree_root.display(),
                empty = empty.display(),
                pmin = pasv.0,
                pmax = pasv.1,
                log = log.display(),
            );
            if let Some((c, k)) = &cert {
                conf.push_str(&format!(
                    "ssl_enable=YES\nrsa_cert_file={}\nrsa_private_key_file={}\n\
                     require_ssl_reuse=YES\nforce_local_logins_ssl=YES\n\
                     force_local_data_ssl=YES\nallow_anon_ssl=NO\nssl_ciphers=HIGH\n",
                    c.display(),
                    k.display()
                ));
            }
            let conf_path = temp.path().join("vsftpd.conf");
            write_file(&conf_path, conf.as_bytes())?;
            let mut cmd = Command::new(&binary);
            cmd.arg(&conf_path);
            let mut process =
                ServerProcess::spawn(SERVER, cmd, temp.path().join("stderr.log"), vec![log])?;
            match process.wait_ready(port, "220") {
                Ok(banner) => {
                    return Ok(Vsftpd {
                        process,
                        user,
                        temp,
                        port,
                        pasv,
                        banner,
                        cert: cert.map(|(c, _)| c),
                        cert_sha256,
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

    /// The PEM certificate, when started with FTPS.
    pub fn cert_path(&self) -> Option<&Path> {
        self.cert.as_deref()
    }

    /// SHA-256 of the certificate's DER, when started with FTPS.
    pub fn cert_sha256(&self) -> Option<[u8; 32]> {
        self.cert_sha256
    }

    /// The certificate's SHA-256 fingerprint as lowercase hex.
    pub fn cert_sha256_hex(&self) -> Option<String> {
        self.cert_sha256.map(|d| hex(&d))
    }

    /// The server's temporary directory (config, logs, certificate).
    pub fn temp_dir(&self) -> &Path {
        self.temp.path()
    }

    /// Stops the server now (also done on drop).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// Generates a self-signed certificate for 127.0.0.1/localhost in `dir`.
/// Returns the certificate path, the key path and the SHA-256 of its DER.
pub(crate) fn self_signed_cert(
    server: &'static str,
    dir: &Path,
) -> Result<(PathBuf, PathBuf, [u8; 32])> {
    let openssl = find_binary("openssl", &[PathBuf::from("/usr/bin/openssl")], "openssl")?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    run(
        server,
        Command::new(openssl)
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    )?;
    crate::util::set_mode(&key, 0o600)?;
    let pem = std::fs::read_to_string(&cert).map_err(|e| Error::io("reading", &cert, e))?;
    let der = pem_body(&pem).ok_or_else(|| Error::Command {
        server,
        command: "reading the certificate".into(),
        detail: format!("{} holds no PEM CERTIFICATE block", cert.display()),
        log_tail: String::new(),
    })?;
    let digest: [u8; 32] = Sha256::digest(&der).into();
    Ok((cert, key, digest))
}

fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = pem[start..].find("-----END CERTIFICATE-----")? + start;
    let b64: String = pem[start..end].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}
