//! Intent journals: a small file `.journal-<uuid>` written (and fsynced) before a multi-file
//! change to the SR (snapshot, coalesce, leaf-coalesce) and removed after it, so that a crash
//! at any point is completed or rolled back by the next attach or GC pass. Owns the file
//! format only; the recovery logic lives with each operation.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sm::{ErrorCode, SmError, SmResult};

/// Prefix of journal file names in the SR directory.
pub const PREFIX: &str = ".journal-";

/// One interrupted operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Intent {
    /// Snapshot or clone of `leaf`: `leaf.vhd` becomes the hidden `base.vhd`, and `leaf.vhd`
    /// and `new.vhd` are created as its children. Rolled back when interrupted.
    Snapshot {
        /// The VDI snapshotted.
        leaf: String,
        /// The uuid the old leaf file is renamed to.
        base: String,
        /// The new VDI.
        new: String,
    },
    /// Coalesce of the hidden `child` into its only-child-holding hidden `parent`, then relink
    /// of `child`'s children to `parent` and deletion of `child`. Completed when interrupted.
    Coalesce {
        /// The hidden node merged away.
        child: String,
        /// Its parent, which receives the data.
        parent: String,
    },
    /// Leaf-coalesce of `leaf` into its hidden `parent`, which then replaces `leaf.vhd`.
    /// Completed when interrupted.
    LeafCoalesce {
        /// The visible VDI.
        leaf: String,
        /// Its hidden parent.
        parent: String,
    },
}

impl Intent {
    fn key(&self) -> &str {
        match self {
            Self::Snapshot { leaf, .. } | Self::LeafCoalesce { leaf, .. } => leaf,
            Self::Coalesce { child, .. } => child,
        }
    }
}

fn journal_error(context: &str, err: impl std::fmt::Display) -> SmError {
    SmError::new(ErrorCode::MetadataError, format!("{context}: {err}"))
}

/// The journal file for `intent` in `dir`.
pub fn path_for(dir: &Path, intent: &Intent) -> PathBuf {
    dir.join(format!("{PREFIX}{}", intent.key()))
}

/// Records `intent` durably before the operation starts.
pub fn begin(dir: &Path, intent: &Intent) -> SmResult<PathBuf> {
    let path = path_for(dir, intent);
    let text = serde_json::to_vec(intent).map_err(|e| journal_error("encoding journal", e))?;
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| journal_error("writing journal", e))?;
    Ok(path)
}

/// Removes the journal once the operation is complete.
pub fn end(path: &Path) -> SmResult<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(journal_error("removing journal", err)),
    }
}

/// Every journal left in `dir`, with its path.
pub fn pending(dir: &Path) -> SmResult<Vec<(PathBuf, Intent)>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| journal_error("listing journals", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| journal_error("listing journals", e))?;
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let text = std::fs::read(entry.path()).map_err(|e| journal_error("reading journal", e))?;
        match serde_json::from_slice(&text) {
            Ok(intent) => out.push((entry.path(), intent)),
            // A journal torn by a crash while it was written: its operation never started.
            Err(_) => end(&entry.path())?,
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn begun_journals_are_pending_until_ended() {
        let dir = tempfile::tempdir().unwrap();
        let intent = Intent::Coalesce {
            child: "c".into(),
            parent: "p".into(),
        };
        let path = begin(dir.path(), &intent).unwrap();
        assert_eq!(pending(dir.path()).unwrap(), vec![(path.clone(), intent)]);
        end(&path).unwrap();
        assert!(pending(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn torn_journal_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("{PREFIX}x")), b"{\"op\":").unwrap();
        assert!(pending(dir.path()).unwrap().is_empty());
        assert!(!dir.path().join(format!("{PREFIX}x")).exists());
    }
}
