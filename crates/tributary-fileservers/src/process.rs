//! A server child process: spawn in its own process group, wait for its
//! banner on a port it owns, stop and reap it.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::util::{describe, log_tail};

/// How long a server may take to answer its first banner. Generous: the
/// machine has 2 shared cores. This bounds a wait, it asserts nothing.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// A running server.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    server: &'static str,
    command: String,
    child: Option<Child>,
    logs: Vec<PathBuf>,
}

/// What a failed start looked like: `retry` when the port was taken.
pub(crate) struct StartFailure {
    pub(crate) error: Error,
    pub(crate) port_taken: bool,
}

impl ServerProcess {
    /// Spawns `cmd` with stdout and stderr to `output_log`; `logs` are the
    /// server's own log files, whose tails go into errors.
    pub(crate) fn spawn(
        server: &'static str,
        mut cmd: Command,
        output_log: PathBuf,
        mut logs: Vec<PathBuf>,
    ) -> Result<Self> {
        let command = describe(&cmd);
        let out = File::create(&output_log)
            .map_err(|e| Error::io("creating the server's output log", &output_log, e))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::io("cloning the server's output log", &output_log, e))?;
        // vsftpd writes its fatal "500 OOPS" to fd 0 (its control socket in
        // inetd mode), so stdin is the log too; no server reads it.
        let input = out
            .try_clone()
            .map_err(|e| Error::io("cloning the server's output log", &output_log, e))?;
        cmd.stdin(input).stdout(out).stderr(err).process_group(0);
        let child = cmd.spawn().map_err(|e| Error::Command {
            server,
            command: command.clone(),
            detail: format!("could not start: {e}"),
            log_tail: String::new(),
        })?;
        logs.insert(0, output_log);
        Ok(ServerProcess {
            server,
            command,
            child: Some(child),
            logs,
        })
    }

    fn fail(&self, detail: String) -> Error {
        Error::Command {
            server: self.server,
            command: self.command.clone(),
            detail,
            log_tail: log_tail(&self.logs, 30),
        }
    }

    /// Waits until this very process listens on `port` (checked through
    /// /proc, so another test's server on a colliding port is not mistaken
    /// for ours) and a connection reads a first line starting with `banner`.
    /// Returns that line.
    pub(crate) fn wait_ready(
        &mut self,
        port: u16,
        banner: &str,
    ) -> std::result::Result<String, StartFailure> {
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let tail = log_tail(&self.logs, 30);
                let port_taken = tail.contains("in use") || tail.contains("could not bind");
                self.child = None;
                return Err(StartFailure {
                    error: self.fail(format!("exited before it was ready ({status})")),
                    port_taken,
                });
            }
            let pid = self.child.as_ref().map(Child::id).unwrap_or(0);
            if owns_listener(pid, port) {
                match read_banner(port) {
                    Ok(line) if line.starts_with(banner) => return Ok(line),
                    Ok(line) => {
                        return Err(StartFailure {
                            error: self.fail(format!(
                                "first line on port {port} is {line:?}, expected {banner:?}..."
                            )),
                            port_taken: false,
                        });
                    }
                    Err(_) => {}
                }
            }
            if Instant::now() > deadline {
                return Err(StartFailure {
                    error: self.fail(format!(
                        "no {banner:?} banner on 127.0.0.1:{port} within {READY_LIMIT:?}"
                    )),
                    port_taken: false,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the whole process group (TERM, then KILL) and reaps the leader.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id();
        if child.try_wait().ok().flatten().is_none() {
            signal_group("TERM", pgid);
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Session processes forked by the server share its group.
        signal_group("KILL", pgid);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal_group(signal: &str, pgid: u32) {
    if pgid == 0 {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn read_banner(port: u16) -> std::io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

/// Whether process `pid` holds a socket listening on 127.0.0.1:`port`.
fn owns_listener(pid: u32, port: u16) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let want = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            (f.len() > 9 && f[1] == want && f[3] == "0A").then(|| f[9].to_owned())
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .map(|t| {
                let t = t.to_string_lossy();
                inodes.iter().any(|i| t == format!("socket:[{i}]"))
            })
            .unwrap_or(false)
    })
}
