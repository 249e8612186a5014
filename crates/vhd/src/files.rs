//! Path-level operations on VHD files: create, snapshot (a new child of a parent file), relink,
//! opening a chain by following parent locators relative to each child's directory (as blktap
//! and libvhdi do), and coalescing a child file into its parent.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::chain::Chain;
use crate::coalesce::coalesce;
use crate::disk::Disk;
use crate::error::{Result, VhdError};
use crate::footer::vhd_time_from_unix;
use crate::io::FileIo;
use crate::locator::{relative_path, ParentLink, PlatformCode};

/// Creates a new dynamic VHD file of `size` bytes; fails if the file exists.
pub fn create_dynamic_file(path: &Path, size: u64) -> Result<Disk<FileIo>> {
    Disk::create_dynamic(FileIo::create_new(path)?, size)
}

/// Creates a new fixed VHD file of `size` bytes; fails if the file exists.
pub fn create_fixed_file(path: &Path, size: u64) -> Result<Disk<FileIo>> {
    Disk::create_fixed(FileIo::create_new(path)?, size)
}

/// Opens a VHD file for reading and writing.
pub fn open_file(path: &Path) -> Result<Disk<FileIo>> {
    Disk::open(FileIo::open(path)?)
}

fn path_string(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| VhdError::InvalidPath(path.display().to_string()))
}

/// Describes `parent_path` as seen from a child at `child_path` (which need not exist yet):
/// uuid, modification time, file name, relative and absolute paths.
pub fn link_for(child_path: &Path, parent_path: &Path) -> Result<ParentLink> {
    let parent_abs = std::fs::canonicalize(parent_path)?;
    let child_dir = match child_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::canonicalize(dir)?,
        _ => std::env::current_dir()?,
    };
    let parent = Disk::open(FileIo::open_read_only(&parent_abs)?)?;
    let modified = std::fs::metadata(&parent_abs)?
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map(|since| since.as_secs())
        .unwrap_or(0);
    let name = parent_abs
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| VhdError::InvalidPath(parent_abs.display().to_string()))?
        .to_owned();
    Ok(ParentLink {
        uuid: parent.uuid(),
        timestamp: vhd_time_from_unix(modified),
        name,
        relative: relative_path(&child_dir, &parent_abs)?,
        absolute: path_string(&parent_abs)?,
    })
}

/// `snapshot`: creates `child_path` as a new differencing disk of the same size on top of
/// `parent_path`. Refused when the parent's chain is already at the depth limit.
pub fn snapshot(parent_path: &Path, child_path: &Path) -> Result<Disk<FileIo>> {
    let chain = open_chain(parent_path, false)?;
    if chain.depth() >= crate::MAX_CHAIN_DEPTH {
        return Err(VhdError::ChainTooDeep {
            max: crate::MAX_CHAIN_DEPTH,
        });
    }
    let size = chain.size();
    drop(chain);
    let link = link_for(child_path, parent_path)?;
    Disk::create_differencing(FileIo::create_new(child_path)?, size, &link)
}

/// `relink`: points the differencing disk at `child_path` to the VHD at `parent_path`.
pub fn relink(child_path: &Path, parent_path: &Path) -> Result<()> {
    let link = link_for(child_path, parent_path)?;
    let mut child = open_file(child_path)?;
    child.set_parent(&link)?;
    child.flush()
}

/// Finds the parent file of the differencing disk `child` stored at `child_path`: each locator
/// in slot order (absolute as is, relative to the child's directory), then the parent unicode
/// name in the child's directory. The first candidate carrying the right uuid wins.
pub fn resolve_parent(child_path: &Path, child: &Disk<FileIo>) -> Result<PathBuf> {
    let expected = child
        .parent_uuid()
        .ok_or(VhdError::WrongDiskType(child.disk_type().name()))?;
    let dir = child_path.parent().unwrap_or(Path::new("."));
    let mut candidates: Vec<PathBuf> = Vec::new();
    for (code, path) in child.parent_locators()? {
        let path = Path::new(&path);
        if path.is_absolute() {
            candidates.push(path.to_path_buf());
        } else if code != PlatformCode::W2ku || !path.as_os_str().is_empty() {
            candidates.push(dir.join(path));
        }
    }
    if let Some(name) = child.parent_name().filter(|name| !name.is_empty()) {
        candidates.push(dir.join(name));
    }
    let mut mismatch = None;
    for candidate in &candidates {
        let Ok(io) = FileIo::open_read_only(candidate) else {
            continue;
        };
        match Disk::open(io) {
            Ok(parent) if parent.uuid() == expected => return Ok(candidate.clone()),
            Ok(parent) => mismatch = Some(parent.uuid()),
            Err(_) => continue,
        }
    }
    match mismatch {
        Some(found) => Err(VhdError::ParentUuidMismatch { expected, found }),
        None => Err(VhdError::ParentNotFound {
            tried: candidates
                .iter()
                .map(|path| path.display().to_string())
                .collect(),
        }),
    }
}

/// Opens the chain rooted at the file `path` (leaf read-write when `writable`, ancestors
/// read-only), following parent locators.
pub fn open_chain(path: &Path, writable: bool) -> Result<Chain<FileIo>> {
    let io = if writable {
        FileIo::open(path)?
    } else {
        FileIo::open_read_only(path)?
    };
    let leaf = Disk::open(io)?;
    let mut current = path.to_path_buf();
    Chain::open_with(leaf, |child| {
        let parent_path = resolve_parent(&current, child)?;
        let parent = Disk::open(FileIo::open_read_only(&parent_path)?)?;
        current = parent_path;
        Ok(parent)
    })
}

/// `coalesce`: copies the sectors of the child file into its parent file; returns bytes copied.
pub fn coalesce_file(child_path: &Path) -> Result<u64> {
    let child = Disk::open(FileIo::open_read_only(child_path)?)?;
    let parent_path = resolve_parent(child_path, &child)?;
    let mut parent = open_file(&parent_path)?;
    coalesce(&child, &mut parent)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn snapshot_and_chain_open_through_relative_locators() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.vhd");
        let child = dir.path().join("child.vhd");
        let mut disk = create_dynamic_file(&base, 4 << 20).unwrap();
        disk.write_at(1000, b"base").unwrap();
        drop(disk);
        snapshot(&base, &child).unwrap();
        // Move both files: only the relative locators still lead to the parent.
        let moved = dir.path().join("moved");
        std::fs::create_dir(&moved).unwrap();
        std::fs::rename(&base, moved.join("base.vhd")).unwrap();
        std::fs::rename(&child, moved.join("child.vhd")).unwrap();
        let chain = open_chain(&moved.join("child.vhd"), false).unwrap();
        let mut buf = [0u8; 4];
        chain.read_at(1000, &mut buf).unwrap();
        assert_eq!(&buf, b"base");
    }

    #[test]
    fn missing_parent_reports_candidates() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.vhd");
        let child = dir.path().join("child.vhd");
        drop(create_dynamic_file(&base, 2 << 20).unwrap());
        drop(snapshot(&base, &child).unwrap());
        std::fs::remove_file(&base).unwrap();
        let err = open_chain(&child, false).unwrap_err();
        assert!(matches!(err, VhdError::ParentNotFound { ref tried } if !tried.is_empty()));
    }

    #[test]
    fn relink_switches_to_a_copy_with_the_same_uuid() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.vhd");
        let copy = dir.path().join("copy.vhd");
        let child = dir.path().join("child.vhd");
        drop(create_dynamic_file(&base, 2 << 20).unwrap());
        drop(snapshot(&base, &child).unwrap());
        std::fs::copy(&base, &copy).unwrap();
        std::fs::remove_file(&base).unwrap();
        relink(&child, &copy).unwrap();
        let chain = open_chain(&child, false).unwrap();
        assert_eq!(chain.depth(), 2);
        assert_eq!(chain.leaf().parent_name().as_deref(), Some("copy.vhd"));
    }
}
