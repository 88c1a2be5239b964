//! A small tmpfs mounted by the test (root only): a real filesystem that fills up
//! (ENOSPC) and can be made read-only, for the SQLite disk-full and read-only tests.
//! Dropping it unmounts it and removes the mount point, also when the test panics.
//!
//! Mounting needs root (CAP_SYS_ADMIN): otherwise the test skips with a message,
//! except under `CI=true`, where it fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{TempDir, is_root, skip};

/// A mounted tmpfs.
pub struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_mib` MiB on a fresh temp directory; `None` when not
    /// root or when the mount fails (skipped; under `CI=true` this panics instead).
    pub fn mount(size_mib: u64) -> Option<Tmpfs> {
        if !is_root() {
            return skip("mounting a tmpfs (disk full, read-only) needs root");
        }
        let dir = TempDir::new("tmpfs");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_mib}m,mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        if !out.status.success() {
            return skip(&format!(
                "cannot mount a tmpfs on {}: {}",
                dir.path().display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Some(Tmpfs { dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts it read-only (`true`) or read-write. Read-only fails while any file
    /// on it is open for writing (the kernel answers EBUSY): stop the processes that
    /// write to it first.
    pub fn set_read_only(&self, read_only: bool) {
        let mode = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        let out = Command::new("mount")
            .args(["-o", mode])
            .arg(self.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -o {mode} {} failed: {}",
            self.path().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// Fills the free space with one file (ENOSPC from here on); its path, to remove
    /// it when the space should return.
    pub fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler file");
        // Big writes first, then page-sized ones for the last bytes.
        for chunk in [1 << 20, 4096] {
            let block = vec![0u8; chunk];
            while file.write_all(&block).is_ok() {}
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // A process of a failed test may still hold a file: retry, then detach.
        for _ in 0..20 {
            let unmounted = Command::new("umount")
                .arg(self.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if unmounted {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}
