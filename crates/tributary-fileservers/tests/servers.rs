//! Starts each real server and talks to it over plain std TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use tributary_fileservers::{
    FileTree, ProFtpd, ProFtpdOptions, Sshd, SshdOptions, TreeSpec, Vsftpd, VsftpdOptions,
    require_or_skip,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn spec() -> TreeSpec {
    TreeSpec::new()
        .file("hello.txt", b"hello world\n")
        .file("with space.txt", b"spaced")
        .file("docs/caf\u{e9}.md", "# caf\u{e9}\n")
        .dir("empty")
        .sparse("big.bin", 5 << 20)
}

/// A minimal FTP control connection.
struct Ftp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Ftp {
    fn connect(addr: SocketAddr) -> Result<(Self, (u16, String)), Box<dyn std::error::Error>> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let writer = stream.try_clone()?;
        let mut ftp = Ftp {
            reader: BufReader::new(stream),
            writer,
        };
        let banner = ftp.reply()?;
        Ok((ftp, banner))
    }

    /// Reads one (possibly multi-line) reply: code and full text.
    fn reply(&mut self) -> Result<(u16, String), Box<dyn std::error::Error>> {
        let mut text = String::new();
        let mut first = String::new();
        if self.reader.read_line(&mut first)? == 0 {
            return Err("connection closed".into());
        }
        text.push_str(&first);
        let code: u16 = first.get(..3).ok_or("short reply")?.parse()?;
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            loop {
                let mut line = String::new();
                if self.reader.read_line(&mut line)? == 0 {
                    return Err("connection closed in a multi-line reply".into());
                }
                text.push_str(&line);
                if line.starts_with(&end) {
                    break;
                }
            }
        }
        Ok((code, text))
    }

    fn cmd(&mut self, line: &str) -> Result<(u16, String), Box<dyn std::error::Error>> {
        self.writer.write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    fn expect(&mut self, line: &str, code: u16) -> Result<String, Box<dyn std::error::Error>> {
        let (got, text) = self.cmd(line)?;
        if got != code {
            return Err(format!("{line}: expected {code}, got {text:?}").into());
        }
        Ok(text)
    }

    fn login(&mut self, user: &str, password: &str) -> TestResult {
        self.expect(&format!("USER {user}"), 331)?;
        self.expect(&format!("PASS {password}"), 230)?;
        Ok(())
    }

    /// Opens a passive data connection (PASV, or EPSV when `extended`).
    fn passive(&mut self, extended: bool) -> Result<TcpStream, Box<dyn std::error::Error>> {
        let port = if extended {
            let text = self.expect("EPSV", 229)?;
            // 229 Entering Extended Passive Mode (|||port|)
            let inner = text.split('(').nth(1).ok_or("no ( in EPSV reply")?;
            inner
                .split('|')
                .nth(3)
                .ok_or("bad EPSV reply")?
                .parse::<u16>()?
        } else {
            let text = self.expect("PASV", 227)?;
            // 227 Entering Passive Mode (h1,h2,h3,h4,p1,p2).
            let inner = text
                .split('(')
                .nth(1)
                .and_then(|s| s.split(')').next())
                .ok_or("bad PASV reply")?;
            let nums: Vec<u16> = inner
                .split(',')
                .map(|n| n.trim().parse())
                .collect::<Result<_, _>>()?;
            if nums.len() != 6 || nums[..4] != [127, 0, 0, 1] {
                return Err(format!("unexpected PASV address in {text:?}").into());
            }
            nums[4] * 256 + nums[5]
        };
        let data = TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            Duration::from_secs(10),
        )?;
        data.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(data)
    }

    /// Runs a listing command over a passive data connection.
    fn listing(
        &mut self,
        command: &str,
        extended: bool,
    ) -> Result<String, Box<dyn std::error::Error>> {
        let mut data = self.passive(extended)?;
        let (code, text) = self.cmd(command)?;
        if code != 150 && code != 125 {
            return Err(format!("{command}: expected 150, got {text:?}").into());
        }
        let mut body = Vec::new();
        data.read_to_end(&mut body)?;
        drop(data);
        let (code, text) = self.reply()?;
        if code != 226 {
            return Err(format!("{command}: expected 226, got {text:?}").into());
        }
        Ok(String::from_utf8(body)?)
    }
}

fn assert_lists_top_entries(listing: &str, tree: &FileTree) -> TestResult {
    for name in tree.top_level()? {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {name}"))
                || l.ends_with(&format!(";{name}"))
                || l.ends_with(&format!("; {name}"))),
            "{name:?} missing from listing:\n{listing}"
        );
    }
    Ok(())
}

#[test]
fn vsftpd_plain_login_feat_pwd_and_list() -> TestResult {
    let tree = FileTree::temp(&spec())?;
    let Some(server) = require_or_skip(
        "vsftpd",
        Vsftpd::start(tree.root(), VsftpdOptions::default()),
    ) else {
        return Ok(());
    };
    assert!(server.banner().starts_with("220"), "{}", server.banner());
    let (mut ftp, (code, banner)) = Ftp::connect(server.addr())?;
    assert_eq!(code, 220, "{banner}");
    assert!(banner.contains("vsFTPd"), "{banner}");
    ftp.login(server.user(), server.password())?;

    let feat = ftp.expect("FEAT", 211)?;
    assert!(feat.contains("EPSV") && feat.contains("PASV"), "{feat}");
    assert!(
        !feat.contains("MLS"),
        "vsftpd advertises no MLSD/MLST: {feat}"
    );
    let (code, text) = ftp.cmd("MLSD")?;
    assert_eq!(code, 500, "vsftpd answers MLSD with 500: {text}");

    let pwd = ftp.expect("PWD", 257)?;
    assert!(pwd.contains("\"/\""), "chrooted to the tree: {pwd}");
    ftp.expect("TYPE I", 200)?;
    let listing = ftp.listing("LIST", false)?;
    assert_lists_top_entries(&listing, &tree)?;
    let listing = ftp.listing("LIST docs", true)?;
    assert!(listing.contains("caf\u{e9}.md"), "{listing}");
    ftp.expect("QUIT", 221)?;
    Ok(())
}

#[test]
fn vsftpd_rejects_a_wrong_password() -> TestResult {
    let tree = FileTree::temp(&spec())?;
    let Some(server) = require_or_skip(
        "vsftpd",
        Vsftpd::start(tree.root(), VsftpdOptions::default()),
    ) else {
        return Ok(());
    };
    let (mut ftp, _) = Ftp::connect(server.addr())?;
    ftp.expect(&format!("USER {}", server.user()), 331)?;
    let (code, text) = ftp.cmd("PASS not-the-password")?;
    assert_eq!(code, 530, "{text}");
    Ok(())
}

#[test]
fn vsftpd_ftps_answers_auth_tls_and_exposes_its_certificate() -> TestResult {
    let tree = FileTree::temp(&spec())?;
    let Some(server) = require_or_skip(
        "vsftpd (FTPS)",
        Vsftpd::start(
            tree.root(),
            VsftpdOptions {
                ftps: true,
                ..Default::default()
            },
        ),
    ) else {
        return Ok(());
    };
    let cert = server.cert_path().ok_or("no certificate path")?;
    let hex = server.cert_sha256_hex().ok_or("no fingerprint")?;
    // Cross-check our DER fingerprint against openssl's own.
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()?;
    let theirs = String::from_utf8(out.stdout)?
        .split('=')
        .nth(1)
        .ok_or("no = in openssl output")?
        .trim()
        .replace(':', "")
        .to_lowercase();
    assert_eq!(hex, theirs);

    let (mut ftp, (code, _)) = Ftp::connect(server.addr())?;
    assert_eq!(code, 220);
    let feat = ftp.expect("FEAT", 211)?;
    assert!(feat.contains("AUTH TLS"), "{feat}");
    ftp.expect("AUTH TLS", 234)?;
    drop(ftp);

    // A plain-text login is refused: TLS is required (vsftpd then hangs up).
    let (mut plain, _) = Ftp::connect(server.addr())?;
    let (code, text) = plain.cmd(&format!("USER {}", server.user()))?;
    assert_eq!(code, 530, "{text}");
    Ok(())
}

#[test]
fn proftpd_login_feat_mlsd_pwd_and_list() -> TestResult {
    let tree = FileTree::temp(&spec())?;
    let Some(server) = require_or_skip(
        "proftpd",
        ProFtpd::start(tree.root(), ProFtpdOptions::default()),
    ) else {
        return Ok(());
    };
    let (mut ftp, (code, banner)) = Ftp::connect(server.addr())?;
    assert_eq!(code, 220, "{banner}");
    assert!(banner.contains("ProFTPD"), "{banner}");
    ftp.login(server.user(), server.password())?;

    let feat = ftp.expect("FEAT", 211)?;
    assert!(
        feat.contains(" MLST "),
        "ProFTPD advertises MLST/MLSD: {feat}"
    );
    let pwd = ftp.expect("PWD", 257)?;
    assert!(pwd.contains("\"/\""), "chrooted to the tree: {pwd}");
    ftp.expect("TYPE I", 200)?;

    let listing = ftp.listing("LIST", false)?;
    assert_lists_top_entries(&listing, &tree)?;
    let mlsd = ftp.listing("MLSD", true)?;
    assert_lists_top_entries(&mlsd, &tree)?;
    let big = mlsd
        .lines()
        .find(|l| l.ends_with(" big.bin"))
        .ok_or("big.bin missing from MLSD")?;
    assert!(big.to_lowercase().contains("size=5242880;"), "{big}");
    assert!(big.to_lowercase().contains("type=file;"), "{big}");
    ftp.expect("QUIT", 221)?;
    Ok(())
}

fn ssh_banner(addr: SocketAddr) -> Result<String, Box<dyn std::error::Error>> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

fn keygen_fingerprint(
    pub_line: &str,
    dir: &std::path::Path,
) -> Result<String, Box<dyn std::error::Error>> {
    let file = dir.join("check.pub");
    std::fs::write(&file, format!("{pub_line}\n"))?;
    let out = Command::new("ssh-keygen").arg("-lf").arg(&file).output()?;
    std::fs::remove_file(&file)?;
    Ok(String::from_utf8(out.stdout)?
        .split_whitespace()
        .nth(1)
        .ok_or("no fingerprint in ssh-keygen -l output")?
        .to_owned())
}

#[test]
fn sshd_banner_keys_and_restart_with_new_host_key() -> TestResult {
    let tree = FileTree::temp(&spec())?;
    let Some(mut server) =
        require_or_skip("sshd", Sshd::start(tree.root(), SshdOptions::default()))
    else {
        return Ok(());
    };
    let banner = ssh_banner(server.addr())?;
    assert!(banner.starts_with("SSH-2.0-OpenSSH"), "{banner}");
    assert!(server.client_key_path().is_file());
    assert!(server.host_public_key().starts_with("ssh-ed25519 "));
    let first = server.host_key_fingerprint();
    assert!(first.starts_with("SHA256:"), "{first}");
    assert_eq!(
        first,
        keygen_fingerprint(server.host_public_key(), server.temp_dir())?
    );
    assert!(server.known_hosts_line().starts_with(&format!(
        "[127.0.0.1]:{} ssh-ed25519 ",
        server.addr().port()
    )));

    let addr = server.addr();
    server.restart_with_new_host_key()?;
    assert_eq!(server.addr(), addr, "restart keeps the port");
    let second = server.host_key_fingerprint();
    assert_ne!(first, second, "a restart must bring a new host key");
    assert_eq!(
        second,
        keygen_fingerprint(server.host_public_key(), server.temp_dir())?
    );
    let banner = ssh_banner(server.addr())?;
    assert!(banner.starts_with("SSH-2.0-OpenSSH"), "{banner}");
    Ok(())
}

#[test]
fn dropping_a_server_removes_its_user_process_and_files() -> TestResult {
    let tree = FileTree::temp(&spec())?;
    let Some(server) = require_or_skip(
        "vsftpd",
        Vsftpd::start(tree.root(), VsftpdOptions::default()),
    ) else {
        return Ok(());
    };
    let user = server.user().to_owned();
    let temp = server.temp_dir().to_path_buf();
    let addr = server.addr();
    assert!(std::fs::read_to_string("/etc/passwd")?.contains(&format!("\n{user}:")));
    drop(server);
    assert!(!std::fs::read_to_string("/etc/passwd")?.contains(&format!("\n{user}:")));
    assert!(!temp.exists(), "{} still exists", temp.display());
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
        "still listening on {addr}"
    );
    Ok(())
}

/// Runs OpenSSH's own `sftp` client in batch mode (`ls -1`) against the
/// server, trusting only `known_hosts`. Authenticates with the client key,
/// or with the password through `SSH_ASKPASS` when `key` is false.
fn sftp_ls(
    server: &Sshd,
    known_hosts: &str,
    key: bool,
) -> Result<std::process::Output, Box<dyn std::error::Error>> {
    let dir = server.temp_dir();
    let kh = dir.join(format!("known_hosts-{}", if key { "key" } else { "pw" }));
    std::fs::write(&kh, format!("{known_hosts}\n"))?;
    let batch = dir.join("batch");
    std::fs::write(&batch, "ls -1\n")?;
    let mut cmd = Command::new("/usr/bin/sftp");
    cmd.arg("-b")
        .arg(&batch)
        .arg("-P")
        .arg(server.addr().port().to_string())
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", kh.display()))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ])
        .args(["-o", "ConnectTimeout=20"]);
    if key {
        cmd.arg("-o")
            .arg(format!(
                "IdentityFile={}",
                server.client_key_path().display()
            ))
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "PreferredAuthentications=publickey",
            ]);
    } else {
        let askpass = dir.join("askpass.sh");
        std::fs::write(
            &askpass,
            format!("#!/bin/sh\necho '{}'\n", server.password()),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700))?;
        // -b turns off password prompts; use a batch on stdin instead.
        cmd = Command::new("/usr/bin/sftp");
        cmd.arg("-P")
            .arg(server.addr().port().to_string())
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", kh.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
            ])
            .args([
                "-o",
                "ConnectTimeout=20",
                "-o",
                "PreferredAuthentications=password",
            ])
            .args(["-o", "PubkeyAuthentication=no"])
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(std::fs::File::open(&batch)?);
    }
    cmd.arg(format!("{}@127.0.0.1", server.user()));
    Ok(cmd.output()?)
}

#[test]
fn sshd_serves_the_tree_over_sftp_with_key_and_password() -> TestResult {
    if !std::path::Path::new("/usr/bin/sftp").is_file() {
        eprintln!("SKIPPED: /usr/bin/sftp missing (Debian package openssh-client)");
        return Ok(());
    }
    let tree = FileTree::temp(&spec())?;
    let Some(mut server) =
        require_or_skip("sshd", Sshd::start(tree.root(), SshdOptions::default()))
    else {
        return Ok(());
    };
    for key in [true, false] {
        let out = sftp_ls(&server, &server.known_hosts_line(), key)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "sftp (key: {key}) failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for name in tree.top_level()? {
            assert!(
                stdout.lines().any(|l| l.trim() == name),
                "{name:?} missing (key: {key}):\n{stdout}"
            );
        }
    }
    // After a new host key, the old known_hosts line is refused.
    let old = server.known_hosts_line();
    server.restart_with_new_host_key()?;
    let out = sftp_ls(&server, &old, true)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a changed host key must be refused");
    assert!(
        stderr.contains("HOST IDENTIFICATION HAS CHANGED"),
        "{stderr}"
    );
    Ok(())
}
