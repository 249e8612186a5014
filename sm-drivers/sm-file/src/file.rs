//! The `file` SR type: VHD files in a local directory named by `device_config:location` (the
//! embedded default's local SR). Owns only where the directory is; `VhdDriver` does the rest.

use std::path::PathBuf;

use sm::{
    Capability, ConfigKey, DeviceConfig, DriverInfo, ErrorCode, ProbedSr, SmError, SmResult,
    SrContext,
};

use crate::driver::{Substrate, VhdDriver};
use crate::meta::SrMeta;

/// The `file` driver.
pub type FileDriver = VhdDriver<FileSubstrate>;

/// `device_config:location` of a file SR.
pub const LOCATION: &str = "location";

/// Upstream FileSR's capabilities that this driver implements, plus activate/deactivate,
/// which start and stop the NBD data path here.
pub const CAPABILITIES: [Capability; 13] = [
    Capability::SrProbe,
    Capability::SrUpdate,
    Capability::VdiCreate,
    Capability::VdiDelete,
    Capability::VdiAttach,
    Capability::VdiDetach,
    Capability::VdiActivate,
    Capability::VdiDeactivate,
    Capability::VdiClone,
    Capability::VdiSnapshot,
    Capability::VdiResize,
    Capability::VdiGenerateConfig,
    Capability::AtomicPause,
];

/// Finds the directory of a file SR.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileSubstrate;

fn location(device_config: &DeviceConfig) -> SmResult<PathBuf> {
    device_config
        .get(LOCATION)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| SmError::code(ErrorCode::ConfigLocationMissing))
}

impl Substrate for FileSubstrate {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            sr_type: "file",
            name: "Local Path VHD",
            description: "SR plugin which represents disks as VHD files stored on a local path",
            vendor: "xapi-rs",
            copyright: "(C) xapi-rs contributors",
            version: "1.0",
            required_api_version: "1.0",
            capabilities: CAPABILITIES.to_vec(),
            configuration: vec![ConfigKey {
                key: LOCATION,
                description: "local directory path (required)",
            }],
        }
    }

    fn storage_type(&self) -> &'static str {
        "file"
    }

    fn create(&self, sr: &SrContext) -> SmResult<()> {
        let dir = location(&sr.device_config)?;
        match std::fs::read_dir(&dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(SmError::new(ErrorCode::SrExists, "directory is not empty"));
                }
                Ok(())
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(&dir)
                .map_err(|e| SmError::io(ErrorCode::FileSrCreate, "creating directory", &e)),
            Err(err) => Err(SmError::io(
                ErrorCode::FileSrCreate,
                "reading directory",
                &err,
            )),
        }
    }

    fn mount(&self, sr: &SrContext) -> SmResult<PathBuf> {
        let dir = location(&sr.device_config)?;
        if !dir.is_dir() {
            return Err(SmError::new(
                ErrorCode::SrUnavailable,
                format!("no directory {}", dir.display()),
            ));
        }
        Ok(dir)
    }

    fn unmount(&self, _sr: &SrContext) -> SmResult<()> {
        Ok(())
    }

    fn destroy(&self, sr: &SrContext) -> SmResult<()> {
        let dir = location(&sr.device_config)?;
        // Compatibility: upstream leaves the directory itself; we remove it only when empty.
        let _ = std::fs::remove_dir(dir);
        Ok(())
    }

    fn probe(&self, device_config: &DeviceConfig) -> SmResult<Vec<ProbedSr>> {
        let dir = location(device_config)?;
        Ok(SrMeta::load(&dir)?
            .into_iter()
            .map(|meta| ProbedSr {
                uuid: meta.sr_uuid,
                size: None,
                aux: [("location".to_owned(), dir.display().to_string())].into(),
            })
            .collect())
    }
}
