//! The `iso` SR type: CD images (`*.iso`, `*.img`) in a local directory
//! (`device_config:location`), one read-only VDI per file. A scan picks up new files and
//! forgets removed ones; a file named `<uuid>.iso` keeps that uuid, others keep the uuid the
//! storage database already has for their location (the VDI location is the file name).
//! Attaching hands out the file itself. Never writes into an image. The `udev` type (devices
//! handed to guests as they are) lives in [`udev`]: it is the same directory-of-entries shape.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sm::{
    AttachResult, Capability, ConfigKey, DataPath, DriverInfo, ErrorCode, ScanResult, SmError,
    SmResult, SrContext, SrDriver, SrStats, StorageDb, VdiCreate, VdiId, VdiInfo,
};

pub mod udev;

/// `device_config:location`: the directory holding the images.
pub const LOCATION: &str = "location";

/// Upstream ISOSR's capabilities.
pub const CAPABILITIES: [Capability; 7] = [
    Capability::VdiCreate,
    Capability::VdiDelete,
    Capability::VdiAttach,
    Capability::VdiDetach,
    Capability::SrScan,
    Capability::SrAttach,
    Capability::SrDetach,
];

/// The `iso` driver.
pub struct IsoDriver {
    db: std::sync::Arc<dyn StorageDb>,
}

impl std::fmt::Debug for IsoDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsoDriver").finish_non_exhaustive()
    }
}

fn location(sr: &SrContext) -> SmResult<PathBuf> {
    sr.config(LOCATION)
        .map(PathBuf::from)
        .ok_or_else(|| SmError::code(ErrorCode::IsoDconfMissingLocation))
}

fn directory(sr: &SrContext) -> SmResult<PathBuf> {
    let dir = location(sr)?;
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(SmError::new(
            ErrorCode::IsoLocalPath,
            format!("no directory {}", dir.display()),
        ))
    }
}

/// Whether `name` is an image file name (`.iso` or `.img`, any case).
pub fn is_image(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".iso") || lower.ends_with(".img")
}

fn uuid_from_name(name: &str) -> Option<String> {
    let stem = name.get(..name.len().checked_sub(4)?)?;
    uuid::Uuid::parse_str(stem).ok().map(|u| u.to_string())
}

/// Checks that `location` is a plain file name inside the library.
fn checked_name(location: &str) -> SmResult<&str> {
    if location.is_empty() || location.contains('/') || location.starts_with('.') {
        return Err(SmError::new(
            ErrorCode::InvalidArg,
            format!("bad ISO name {location:?}"),
        ));
    }
    Ok(location)
}

fn images(dir: &Path) -> SmResult<Vec<(String, u64)>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| SmError::io(ErrorCode::SrScan, "listing", &e))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            // Upstream ignores names that are not valid UTF-8 as well.
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if is_image(&name) && meta.is_file() {
            out.push((name, meta.len()));
        }
    }
    out.sort();
    Ok(out)
}

/// The scan both read-only drivers share: every entry of the SR's directory becomes (or stays)
/// a VDI, records of entries that went away are forgotten, and the SR's size is what it holds.
pub(crate) fn scan_entries(
    db: &dyn StorageDb,
    sr: &SrContext,
    entries: Vec<(String, u64)>,
    info_for: impl Fn(&str, u64) -> SmResult<VdiInfo>,
) -> SmResult<ScanResult> {
    let mut vdis = Vec::new();
    for (name, size) in entries {
        let info = info_for(&name, size)?;
        db.record_vdi(&sr.sr_uuid, &info)?;
        vdis.push(info);
    }
    for known in db.vdis(&sr.sr_uuid)? {
        if !vdis.iter().any(|v| v.uuid == known.uuid) {
            db.forget_vdi(&sr.sr_uuid, &known.uuid)?;
        }
    }
    let total = vdis.iter().map(|v| v.virtual_size).sum();
    Ok(ScanResult {
        stats: SrStats {
            physical_size: total,
            physical_utilisation: total,
            virtual_allocation: total,
        },
        vdis,
    })
}

impl IsoDriver {
    /// An ISO driver recording VDIs in `db`.
    pub fn new(db: std::sync::Arc<dyn StorageDb>) -> Self {
        Self { db }
    }

    fn info_for(&self, sr: &SrContext, name: &str, size: u64) -> SmResult<VdiInfo> {
        let known = self.db.vdi_by_location(&sr.sr_uuid, name)?;
        let uuid = uuid_from_name(name)
            .or_else(|| known.as_ref().map(|v| v.uuid.clone()))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut info = known.unwrap_or_default();
        info.uuid = uuid;
        info.location = name.to_owned();
        if info.name_label.is_empty() {
            info.name_label = name.to_owned();
        }
        info.virtual_size = size;
        info.physical_utilisation = size;
        info.vdi_type = "user".into();
        info.read_only = !info.sm_config.contains_key("created");
        info.managed = true;
        Ok(info)
    }
}

impl SrDriver for IsoDriver {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            sr_type: "iso",
            name: "ISO",
            description: "Handles CD images stored as files in iso format",
            vendor: "xapi-rs",
            copyright: "(C) xapi-rs contributors",
            version: "1.0",
            required_api_version: "1.0",
            capabilities: CAPABILITIES.to_vec(),
            configuration: vec![
                ConfigKey {
                    key: LOCATION,
                    description: "path to the directory of images (required)",
                },
                ConfigKey {
                    key: "legacy_mode",
                    description: "the location is a local directory (always the case here)",
                },
            ],
        }
    }

    fn sr_create(&self, sr: &SrContext, _physical_size: u64) -> SmResult<()> {
        directory(sr).map(|_| ())
    }

    fn sr_delete(&self, _sr: &SrContext) -> SmResult<()> {
        // The library's files belong to the operator; deleting the SR leaves them.
        Ok(())
    }

    fn sr_attach(&self, sr: &SrContext) -> SmResult<()> {
        directory(sr).map(|_| ())
    }

    fn sr_detach(&self, _sr: &SrContext) -> SmResult<()> {
        Ok(())
    }

    fn sr_scan(&self, sr: &SrContext) -> SmResult<ScanResult> {
        let entries = images(&directory(sr)?)?;
        scan_entries(&*self.db, sr, entries, |name, size| {
            self.info_for(sr, name, size)
        })
    }

    fn vdi_create(&self, sr: &SrContext, request: &VdiCreate) -> SmResult<VdiInfo> {
        let dir = directory(sr)?;
        let uuid = request
            .uuid
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let name = match request.sm_config.get("path") {
            Some(path) if is_image(path) => checked_name(path)?.to_owned(),
            Some(_) => return Err(SmError::code(ErrorCode::IsoMustHaveIsoExtension)),
            None => format!("{uuid}.img"),
        };
        let path = dir.join(&name);
        let file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| SmError::io(ErrorCode::VdiCreate, "creating image", &e))?;
        file.set_len(request.virtual_size)
            .map_err(|e| SmError::io(ErrorCode::VdiCreate, "sizing image", &e))?;
        let mut sm_config = request.sm_config.clone();
        sm_config.insert("created".into(), "true".into());
        let info = VdiInfo {
            uuid,
            location: name,
            name_label: request.name_label.clone(),
            name_description: request.name_description.clone(),
            virtual_size: request.virtual_size,
            vdi_type: "user".into(),
            managed: true,
            sm_config,
            ..VdiInfo::default()
        };
        self.db.record_vdi(&sr.sr_uuid, &info)?;
        Ok(info)
    }

    fn vdi_delete(&self, sr: &SrContext, vdi: &VdiId) -> SmResult<()> {
        let path = directory(sr)?.join(checked_name(&vdi.location)?);
        std::fs::remove_file(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SmError::vdi_missing(&vdi.uuid),
            _ => SmError::io(ErrorCode::VdiRemove, "removing image", &e),
        })?;
        self.db.forget_vdi(&sr.sr_uuid, &vdi.uuid)
    }

    fn vdi_attach(&self, sr: &SrContext, vdi: &VdiId, _writable: bool) -> SmResult<AttachResult> {
        let path = directory(sr)?.join(checked_name(&vdi.location)?);
        if !path.is_file() {
            return Err(SmError::vdi_missing(&vdi.uuid));
        }
        Ok(AttachResult {
            data_path: DataPath::File { path },
            read_only: true,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_recognised_case_insensitively() {
        assert!(is_image("debian.ISO") && is_image("floppy.img"));
        assert!(!is_image("notes.txt") && !is_image("iso"));
    }

    #[test]
    fn uuid_named_files_keep_their_uuid() {
        let name = "7b0b4f47-6e0a-4a3e-9c0e-1d2f3a4b5c6d.iso";
        assert_eq!(
            uuid_from_name(name).as_deref(),
            Some("7b0b4f47-6e0a-4a3e-9c0e-1d2f3a4b5c6d")
        );
        assert_eq!(uuid_from_name("debian.iso"), None);
    }

    #[test]
    fn names_leaving_the_library_are_refused() {
        assert!(checked_name("../x.iso").is_err());
        assert!(checked_name(".hidden.iso").is_err());
        assert!(checked_name("ok.iso").is_ok());
    }
}
