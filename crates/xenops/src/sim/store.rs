//! The simulated host's state file: the domain table as JSON, replaced atomically (write a
//! temporary file, optionally fsync it, rename it over the old one) on every change.
//!
//! The file stands for memory inside the hypervisor, which outlives the daemon but not the
//! machine: it records the kernel boot id, and a file from another boot is treated as a host
//! that rebooted (no domains). That is also why fsync is optional: after a power loss the
//! domains are gone anyway, and the rename alone is atomic against a killed daemon.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, XenopsError};

/// Where the table lives and how hard to push it to disk.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    fsync: bool,
}

impl Store {
    /// A store at `path`; `fsync` makes every write durable before it is renamed into place.
    pub fn new(path: &Path, fsync: bool) -> Self {
        Store {
            path: path.to_path_buf(),
            fsync,
        }
    }

    /// The file's contents, or `None` when it does not exist yet.
    pub fn load(&self) -> Result<Option<Vec<u8>>> {
        match fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(XenopsError::Io(e)),
        }
    }

    /// Replace the file's contents with `bytes`, atomically.
    pub fn save(&self, bytes: &[u8]) -> Result<()> {
        write_atomically(&self.path, bytes, self.fsync)
    }
}

/// Write `bytes` to `path` through a temporary sibling and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8], fsync: bool) -> Result<()> {
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .ok_or_else(|| XenopsError::State(format!("{} does not name a file", path.display())))?;
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    if fsync {
        file.sync_all()?;
    }
    drop(file);
    fs::rename(&tmp, path)?;
    if fsync {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

/// The running kernel's boot id, when the platform has one.
pub fn current_boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&dir.path().join("sim.json"), true);
        assert_eq!(store.load().unwrap(), None);
        store.save(b"one").unwrap();
        store.save(b"two").unwrap();
        assert_eq!(store.load().unwrap().as_deref(), Some(&b"two"[..]));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["sim.json"]);
    }
}
