//! The VHD files of an SR directory as a forest: each `<uuid>.vhd` with its hidden flag, sizes
//! and parent (found through the parent locators, named by the parent file's uuid). Read-only:
//! building the tree never writes a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sm::{ErrorCode, SmError, SmResult};
use vhd::{BlockIo, Disk, FileIo};

/// Extension of VDI files.
pub const EXTENSION: &str = "vhd";

/// One VHD file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The VDI uuid (file stem).
    pub uuid: String,
    /// The blktap hidden flag.
    pub hidden: bool,
    /// Virtual size in bytes.
    pub virtual_size: u64,
    /// File size in bytes.
    pub physical_size: u64,
    /// Parent VDI uuid, for differencing disks.
    pub parent: Option<String>,
    /// Child VDI uuids.
    pub children: Vec<String>,
}

/// The path of VDI `uuid` in `dir`.
pub fn vhd_path(dir: &Path, uuid: &str) -> PathBuf {
    dir.join(format!("{uuid}.{EXTENSION}"))
}

/// Checks that `uuid` is a well-formed uuid (so it is safe as a file name).
pub fn checked_uuid(uuid: &str) -> SmResult<&str> {
    uuid::Uuid::parse_str(uuid)
        .map(|_| uuid)
        .map_err(|_| SmError::new(ErrorCode::InvalidArg, format!("not a VDI uuid: {uuid:?}")))
}

/// Maps a VHD library error to the backend code `code`.
pub fn vhd_error(code: ErrorCode, context: &str, err: vhd::VhdError) -> SmError {
    match err {
        vhd::VhdError::ChainTooDeep { .. } => SmError::code(ErrorCode::SnapshotChainTooLong),
        err => SmError::new(code, format!("{context}: {err}")),
    }
}

/// Reads one VHD file's node (children left empty).
pub fn read_node(dir: &Path, uuid: &str) -> SmResult<Node> {
    let path = vhd_path(dir, uuid);
    let load = |err| vhd_error(ErrorCode::VdiLoad, uuid, err);
    let io = FileIo::open_read_only(&path).map_err(|e| load(e.into()))?;
    let disk = Disk::open(io).map_err(load)?;
    let parent = match disk.parent_uuid() {
        None => None,
        Some(_) => {
            let parent_path = vhd::resolve_parent(&path, &disk).map_err(load)?;
            let stem = parent_path
                .file_stem()
                .and_then(|s| s.to_str())
                .ok_or_else(|| SmError::new(ErrorCode::VdiLoad, "parent file name"))?;
            Some(stem.to_owned())
        }
    };
    Ok(Node {
        uuid: uuid.to_owned(),
        hidden: disk.hidden(),
        virtual_size: disk.size(),
        physical_size: disk.io().len().map_err(|e| load(e.into()))?,
        parent,
        children: Vec::new(),
    })
}

/// Uuids of every `<uuid>.vhd` file in `dir`.
pub fn list(dir: &Path) -> SmResult<Vec<String>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| SmError::io(ErrorCode::SrScan, "listing SR", &e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SmError::io(ErrorCode::SrScan, "listing SR", &e))?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
            continue;
        }
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            if checked_uuid(stem).is_ok() {
                out.push(stem.to_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The whole forest of `dir`, by uuid.
pub fn build(dir: &Path) -> SmResult<BTreeMap<String, Node>> {
    let mut nodes = BTreeMap::new();
    for uuid in list(dir)? {
        nodes.insert(uuid.clone(), read_node(dir, &uuid)?);
    }
    let links: Vec<(String, String)> = nodes
        .values()
        .filter_map(|n| n.parent.clone().map(|p| (p, n.uuid.clone())))
        .collect();
    for (parent, child) in links {
        if let Some(node) = nodes.get_mut(&parent) {
            node.children.push(child);
        }
    }
    Ok(nodes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn forest_links_children_to_parents() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            uuid::Uuid::new_v4().to_string(),
            uuid::Uuid::new_v4().to_string(),
        );
        drop(vhd::create_dynamic_file(&vhd_path(dir.path(), &a), 2 << 20).unwrap());
        drop(vhd::snapshot(&vhd_path(dir.path(), &a), &vhd_path(dir.path(), &b)).unwrap());
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let nodes = build(dir.path()).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[&b].parent.as_deref(), Some(a.as_str()));
        assert_eq!(nodes[&a].children, vec![b]);
    }

    #[test]
    fn path_traversal_uuid_is_refused() {
        assert!(checked_uuid("../etc/passwd").is_err());
        assert!(checked_uuid("7b0b4f47-6e0a-4a3e-9c0e-1d2f3a4b5c6d").is_ok());
    }
}
