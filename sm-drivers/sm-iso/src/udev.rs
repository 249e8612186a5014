//! The `udev` SR type: physical devices a host exposes to guests as is (upstream keeps
//! symlinks to removable block devices and CD drives in `/dev/xapi/block` and `/dev/xapi/cd`).
//! Every entry of the `device_config:location` directory that is a block device (or, for hosts
//! and tests without spare devices, a regular file) is one VDI whose location is the entry's
//! name. The SR cannot create, delete, snapshot or clone: the devices are not ours. The daemon
//! refuses `VDI.destroy` on these VDIs with `VDI_IS_A_PHYSICAL_DEVICE`, as upstream does.

use std::collections::BTreeMap;
use std::io::Seek;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sm::{
    AttachResult, Capability, ConfigKey, DataPath, DriverInfo, ErrorCode, ScanResult, SmError,
    SmResult, SrContext, SrDriver, StorageDb, VdiId, VdiInfo,
};

/// The SR type name.
pub const SR_TYPE: &str = "udev";

/// Where upstream keeps removable block devices, used when `device_config:location` is unset.
pub const DEFAULT_LOCATION: &str = "/dev/xapi/block";

/// What the `udev` driver can do: scan and attach, never create or delete.
pub const CAPABILITIES: [Capability; 6] = [
    Capability::SrScan,
    Capability::SrAttach,
    Capability::SrDetach,
    Capability::VdiAttach,
    Capability::VdiDetach,
    Capability::VdiUpdate,
];

/// The `udev` driver.
pub struct UdevDriver {
    db: Arc<dyn StorageDb>,
}

impl std::fmt::Debug for UdevDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdevDriver").finish_non_exhaustive()
    }
}

fn directory(sr: &SrContext) -> SmResult<PathBuf> {
    let dir = PathBuf::from(sr.config(crate::LOCATION).unwrap_or(DEFAULT_LOCATION));
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(SmError::new(
            ErrorCode::SrUnavailable,
            format!("no device directory {}", dir.display()),
        ))
    }
}

/// The size of the device or file at `path` (block devices report 0 as their length, so
/// seek to the end instead).
fn device_size(path: &Path) -> Option<u64> {
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(std::io::SeekFrom::End(0)).ok()
}

/// The entries of `dir` that are devices (following symlinks), with their sizes.
fn devices(dir: &Path) -> SmResult<Vec<(String, u64)>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| SmError::io(ErrorCode::SrScan, "listing", &e))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.file_type().is_block_device() || meta.is_file() {
            out.push((name, device_size(&path).unwrap_or(0)));
        }
    }
    out.sort();
    Ok(out)
}

fn checked_name(location: &str) -> SmResult<&str> {
    if location.is_empty() || location.contains('/') || location.starts_with('.') {
        return Err(SmError::new(
            ErrorCode::InvalidArg,
            format!("bad device name {location:?}"),
        ));
    }
    Ok(location)
}

impl UdevDriver {
    /// A udev driver recording VDIs in `db`.
    pub fn new(db: Arc<dyn StorageDb>) -> Self {
        Self { db }
    }

    fn info_for(&self, sr: &SrContext, name: &str, size: u64) -> SmResult<VdiInfo> {
        let known = self.db.vdi_by_location(&sr.sr_uuid, name)?;
        let mut info = known.unwrap_or_default();
        if info.uuid.is_empty() {
            info.uuid = uuid::Uuid::new_v4().to_string();
        }
        info.location = name.to_owned();
        if info.name_label.is_empty() {
            info.name_label = name.to_owned();
        }
        info.virtual_size = size;
        info.physical_utilisation = size;
        info.vdi_type = "user".into();
        info.managed = true;
        info.sm_config.insert("type".into(), "block".into());
        Ok(info)
    }
}

impl SrDriver for UdevDriver {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            sr_type: SR_TYPE,
            name: "udev",
            description: "Removable block devices and CD drives handed to guests as they are",
            vendor: "xapi-rs",
            copyright: "(C) xapi-rs contributors",
            version: "1.0",
            required_api_version: "1.0",
            capabilities: CAPABILITIES.to_vec(),
            configuration: vec![ConfigKey {
                key: crate::LOCATION,
                description: "directory of device nodes or symlinks (default /dev/xapi/block)",
            }],
        }
    }

    fn sr_create(&self, sr: &SrContext, _physical_size: u64) -> SmResult<()> {
        directory(sr).map(|_| ())
    }

    fn sr_delete(&self, _sr: &SrContext) -> SmResult<()> {
        // The devices belong to the host; deleting the SR leaves them.
        Ok(())
    }

    fn sr_attach(&self, sr: &SrContext) -> SmResult<()> {
        directory(sr).map(|_| ())
    }

    fn sr_detach(&self, _sr: &SrContext) -> SmResult<()> {
        Ok(())
    }

    fn sr_scan(&self, sr: &SrContext) -> SmResult<ScanResult> {
        let entries = devices(&directory(sr)?)?;
        crate::scan_entries(&*self.db, sr, entries, |name, size| {
            self.info_for(sr, name, size)
        })
    }

    fn vdi_attach(&self, sr: &SrContext, vdi: &VdiId, writable: bool) -> SmResult<AttachResult> {
        let path = directory(sr)?.join(checked_name(&vdi.location)?);
        if !path.exists() {
            return Err(SmError::vdi_missing(&vdi.uuid));
        }
        Ok(AttachResult {
            data_path: DataPath::File { path },
            read_only: !writable,
            xenstore_data: BTreeMap::new(),
        })
    }

    fn vdi_activate(&self, sr: &SrContext, vdi: &VdiId, writable: bool) -> SmResult<AttachResult> {
        self.vdi_attach(sr, vdi, writable)
    }

    fn vdi_deactivate(&self, _sr: &SrContext, _vdi: &VdiId) -> SmResult<()> {
        Ok(())
    }

    fn vdi_detach(&self, _sr: &SrContext, _vdi: &VdiId) -> SmResult<()> {
        Ok(())
    }

    fn vdi_update(&self, _sr: &SrContext, _vdi: &VdiId) -> SmResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_lists_files_and_skips_dot_entries_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sdb"), vec![0u8; 4096]).unwrap();
        std::fs::write(dir.path().join(".hidden"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert_eq!(devices(dir.path()).unwrap(), vec![("sdb".to_owned(), 4096)]);
    }

    #[test]
    fn device_names_cannot_leave_the_directory() {
        assert!(checked_name("../sda").is_err());
        assert!(checked_name("sdb").is_ok());
    }

    #[test]
    fn a_missing_directory_is_unavailable() {
        let mut config = sm::DeviceConfig::new();
        config.insert(crate::LOCATION.into(), "/nonexistent/xapi-rs-udev".into());
        let e = directory(&SrContext::new("sr", config)).unwrap_err();
        assert_eq!(e.code, ErrorCode::SrUnavailable);
    }
}
