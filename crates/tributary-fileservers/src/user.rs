//! A throw-away system user with a password, deleted on drop.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::util::{describe, random_alnum, random_lower, run};

/// Marker in the GECOS field: `tributary-fileservers pid=<pid>`, so users left
/// by a killed test process can be found and removed by a later start.
const MARKER: &str = "tributary-fileservers pid=";

/// A system user made for one server.
#[derive(Debug)]
pub(crate) struct TestUser {
    pub(crate) name: String,
    pub(crate) password: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl TestUser {
    /// Adds `<prefix>-<random>` (e.g. `tributary-ftp-k3x9q2`) with home
    /// `home` (not created), shell /bin/sh and a random password.
    pub(crate) fn create(server: &'static str, prefix: &str, home: &Path) -> Result<Self> {
        remove_stale_users();
        let name = format!("{prefix}-{}", random_lower(8));
        let password = random_alnum(20);
        let mut add = Command::new("useradd");
        add.args(["--no-create-home", "--user-group", "--shell", "/bin/sh"])
            .arg("--home-dir")
            .arg(home)
            .arg("--comment")
            .arg(format!("{MARKER}{}", std::process::id()))
            .arg(&name);
        retry_locked(server, &mut add)?;
        let mut user = TestUser {
            name,
            password,
            uid: 0,
            gid: 0,
        };
        // From here on, drop deletes the user if anything fails.
        user.set_password(server)?;
        let (uid, gid) = lookup(&user.name).ok_or_else(|| Error::Command {
            server,
            command: "reading /etc/passwd".into(),
            detail: format!("user {} not found after useradd", user.name),
            log_tail: String::new(),
        })?;
        user.uid = uid;
        user.gid = gid;
        Ok(user)
    }

    fn set_password(&self, server: &'static str) -> Result<()> {
        for attempt in 0..20 {
            let mut cmd = Command::new("chpasswd");
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let command = describe(&cmd);
            let fail = |detail: String, tail: String| Error::Command {
                server,
                command: command.clone(),
                detail,
                log_tail: tail,
            };
            let mut child = cmd
                .spawn()
                .map_err(|e| fail(format!("could not run: {e}"), String::new()))?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin
                    .write_all(format!("{}:{}\n", self.name, self.password).as_bytes())
                    .map_err(|e| fail(format!("writing to it: {e}"), String::new()))?;
            }
            let out = child
                .wait_with_output()
                .map_err(|e| fail(format!("waiting for it: {e}"), String::new()))?;
            if out.status.success() {
                return Ok(());
            }
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if attempt < 19 && err.contains("lock") {
                std::thread::sleep(Duration::from_millis(100 + 50 * attempt));
                continue;
            }
            return Err(fail(format!("exited with {}", out.status), err));
        }
        Ok(())
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        delete_user(&self.name);
    }
}

/// Runs a shadow-utils command, retrying while another process holds the
/// passwd lock (tests run in parallel; useradd/userdel exit 10 then).
fn retry_locked(server: &'static str, cmd: &mut Command) -> Result<()> {
    let mut last = None;
    for attempt in 0..20u64 {
        match run(server, cmd) {
            Ok(_) => return Ok(()),
            Err(Error::Command { log_tail, .. }) if log_tail.contains("lock") && attempt < 19 => {
                last = Some(log_tail);
                std::thread::sleep(Duration::from_millis(100 + 50 * attempt));
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Command {
        server,
        command: describe(cmd),
        detail: "the passwd lock stayed busy".into(),
        log_tail: last.unwrap_or_default(),
    })
}

fn delete_user(name: &str) {
    let mut del = Command::new("userdel");
    del.arg(name);
    if let Err(e) = retry_locked("userdel", &mut del) {
        tracing::warn!(user = name, error = %e, "could not delete test user");
    }
}

fn passwd_lines() -> Vec<Vec<String>> {
    fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').map(str::to_owned).collect())
        .filter(|f: &Vec<String>| f.len() >= 7)
        .collect()
}

fn lookup(name: &str) -> Option<(u32, u32)> {
    passwd_lines()
        .into_iter()
        .find(|f| f[0] == name)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
}

/// Deletes users carrying our marker whose creating process is gone.
fn remove_stale_users() {
    for f in passwd_lines() {
        let Some(pid) = f[4].strip_prefix(MARKER) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            tracing::info!(user = %f[0], "removing a test user left by a dead process");
            delete_user(&f[0]);
        }
    }
}

/// Gives the whole tree under `root` (root included) to `uid:gid`, so the
/// test user can read and write it.
pub(crate) fn chown_tree(root: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(root, Some(uid), Some(gid))
        .map_err(|e| Error::io("chown", root, e))?;
    if root.is_dir() && !root.is_symlink() {
        let entries = fs::read_dir(root).map_err(|e| Error::io("listing", root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", root, e))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}
