//! A private PostgreSQL cluster for one test: `initdb` in a temp directory, `pg_ctl`
//! to start it on a free loopback port (its unix socket in the same directory), and
//! to stop it (`-m immediate`, as a crash would) and start it again mid-test.
//!
//! PostgreSQL refuses to run as root: when the test runs as root, `initdb` and
//! `pg_ctl` run as the `postgres` user (`runuser`) on a directory it owns. The
//! binaries are looked for on `PATH`, then under `/usr/lib/postgresql/*/bin` (newest
//! version first). When they are missing the test skips with a message, except under
//! `CI=true`, where it fails. Dropping the cluster stops it and removes the directory,
//! also when the test panics.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{TempDir, is_root, skip};

/// A running (or stopped) private cluster.
pub struct PgCluster {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    as_postgres: bool,
}

impl PgCluster {
    /// Creates and starts a cluster; `None` when the PostgreSQL server binaries are
    /// not installed (skipped; under `CI=true` this panics instead).
    pub fn start() -> Option<PgCluster> {
        let Some(bin) = find_bin_dir() else {
            return skip(
                "initdb and pg_ctl (PostgreSQL server binaries) are not on PATH nor under \
                 /usr/lib/postgresql/*/bin: the PostgreSQL restart tests need them",
            );
        };
        let as_postgres = is_root();
        if as_postgres && !command_exists("runuser") {
            return skip(
                "running as root, and runuser (to run PostgreSQL as `postgres`) is missing",
            );
        }
        let dir = TempDir::new("pgcluster");
        if as_postgres {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .expect("run chown");
            if !chown.status.success() {
                return skip(&format!(
                    "running as root, and the temp dir cannot be given to the `postgres` \
                     user: {}",
                    String::from_utf8_lossy(&chown.stderr).trim()
                ));
            }
        }
        let mut cluster = PgCluster {
            bin,
            dir,
            port: 0,
            as_postgres,
        };
        let data = cluster.data();
        let initdb = cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        );
        assert!(
            initdb.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );
        // A free port can be taken between our look and the server's bind: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = free_port();
            match cluster.try_start() {
                Ok(()) => return Some(cluster),
                Err(e) => last = e,
            }
        }
        panic!("the private PostgreSQL cluster did not start: {last}");
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: no checkpoint, clients
    /// cut off, as a crash would); the next start runs crash recovery.
    pub fn stop_immediate(&self) {
        let out = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "60"]);
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server again on the same port.
    pub fn restart(&self) {
        if let Err(e) = self.try_start() {
            panic!("the private PostgreSQL cluster did not start again: {e}");
        }
    }

    fn try_start(&self) -> Result<(), String> {
        let socket_dir = self.dir.path();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c fsync=off -c full_page_writes=off -c max_connections=100",
            self.port,
            path_str(socket_dir)
        );
        let log = self.dir.path().join("server.log");
        let out = self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            path_str(&log),
            "-o",
            &options,
        ]);
        if out.status.success() {
            Ok(())
        } else {
            let server_log = std::fs::read_to_string(&log).unwrap_or_default();
            Err(format!(
                "{}{}; server log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                super::tail(&server_log)
            ))
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let data = self.data();
        let mut all = vec!["-D", path_str(&data)];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    /// Runs one of the server binaries (as `postgres` when we are root).
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command
            .args(args)
            // The server's working directory must be readable by it.
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "30"]);
        }
    }
}

/// The directory holding both `initdb` and `pg_ctl`.
fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    on_path
        .into_iter()
        .chain(versioned.into_iter().map(|(_, p)| p))
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn command_exists(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}
