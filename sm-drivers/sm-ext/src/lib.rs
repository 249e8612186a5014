//! The `ext` SR type: a local block device (`device_config:device`) formatted ext4 by
//! `mkfs.ext4` at `sr_create` and mounted at `<mount base>/<sr-uuid>` (the daemon passes
//! `<state-dir>/sr-mount`) while attached. The VHD-file logic is `sm-file`'s, shared through
//! its `Substrate` trait; this crate owns only formatting, mounting and probing the device.
//!
//! Compatibility: upstream's EXT SR puts the filesystem inside an LVM volume on the device;
//! we format the device directly, so `lvm2` is not needed.

use std::path::{Path, PathBuf};
use std::process::Command;

use sm::{
    Capability, ConfigKey, DeviceConfig, DriverInfo, ErrorCode, ProbedSr, SmError, SmResult,
    SrContext,
};
use sm_file::{Substrate, VhdDriver};
use tracing::info;

/// The `ext` driver.
pub type ExtDriver = VhdDriver<ExtSubstrate>;

/// `device_config:device`: the block device holding the SR.
pub const DEVICE: &str = "device";

/// Upstream EXTSR's capabilities that this driver implements.
pub const CAPABILITIES: [Capability; 15] = [
    Capability::SrProbe,
    Capability::SrUpdate,
    Capability::VdiCreate,
    Capability::VdiDelete,
    Capability::VdiAttach,
    Capability::VdiDetach,
    Capability::VdiUpdate,
    Capability::VdiClone,
    Capability::VdiSnapshot,
    Capability::VdiResize,
    Capability::VdiGenerateConfig,
    Capability::AtomicPause,
    Capability::VdiActivate,
    Capability::VdiDeactivate,
    Capability::ThinProvisioning,
];

/// Upstream's code for a filesystem creation failure (`LVMFilesystem`).
const FILESYSTEM_FAILED: ErrorCode = ErrorCode::Other(57);
/// Upstream's code for a mount failure (`LVMMount`).
const MOUNT_FAILED: ErrorCode = ErrorCode::Other(52);

/// Formats and mounts an ext SR's device.
#[derive(Debug, Clone)]
pub struct ExtSubstrate {
    mount_base: PathBuf,
}

impl ExtSubstrate {
    /// Mounts SRs under `mount_base/<sr-uuid>`.
    pub fn new(mount_base: impl Into<PathBuf>) -> Self {
        Self {
            mount_base: mount_base.into(),
        }
    }

    /// Where SR `sr_uuid` is mounted.
    pub fn mount_point(&self, sr_uuid: &str) -> PathBuf {
        self.mount_base.join(sr_uuid)
    }
}

fn device(device_config: &DeviceConfig) -> SmResult<PathBuf> {
    let device = device_config
        .get(DEVICE)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| SmError::code(ErrorCode::ConfigDeviceMissing))?;
    if !device.exists() {
        return Err(SmError::new(
            ErrorCode::ConfigDeviceInvalid,
            format!("no device {}", device.display()),
        ));
    }
    Ok(device)
}

fn run(code: ErrorCode, program: &str, args: &[&std::ffi::OsStr]) -> SmResult<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| SmError::io(code, program, &e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SmError::new(
            code,
            format!(
                "{program} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ))
    }
}

fn is_mounted(dir: &Path) -> bool {
    let Ok(canonical) = dir.canonicalize() else {
        return false;
    };
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = canonical.to_string_lossy();
    table
        .lines()
        .any(|line| line.split_whitespace().nth(4) == Some(target.as_ref()))
}

impl Substrate for ExtSubstrate {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            sr_type: "ext",
            name: "Local EXT4 VHD",
            description:
                "SR plugin which represents disks as VHD files stored on a local EXT4 filesystem",
            vendor: "xapi-rs",
            copyright: "(C) xapi-rs contributors",
            version: "1.0",
            required_api_version: "1.0",
            capabilities: CAPABILITIES.to_vec(),
            configuration: vec![ConfigKey {
                key: DEVICE,
                description: "local device path (required) (e.g. /dev/sda3)",
            }],
        }
    }

    fn storage_type(&self) -> &'static str {
        "ext"
    }

    fn create(&self, sr: &SrContext) -> SmResult<()> {
        let device = device(&sr.device_config)?;
        if is_mounted(&self.mount_point(&sr.sr_uuid)) {
            return Err(SmError::code(ErrorCode::SrExists));
        }
        run(
            FILESYSTEM_FAILED,
            "mkfs.ext4",
            &["-F".as_ref(), "-q".as_ref(), device.as_os_str()],
        )?;
        info!(sr = %sr.sr_uuid, device = %device.display(), "ext4 filesystem created");
        Ok(())
    }

    fn mount(&self, sr: &SrContext) -> SmResult<PathBuf> {
        let device = device(&sr.device_config)?;
        let dir = self.mount_point(&sr.sr_uuid);
        std::fs::create_dir_all(&dir).map_err(|e| SmError::io(MOUNT_FAILED, "mount point", &e))?;
        if !is_mounted(&dir) {
            run(
                MOUNT_FAILED,
                "mount",
                &[device.as_os_str(), dir.as_os_str()],
            )?;
        }
        Ok(dir)
    }

    fn unmount(&self, sr: &SrContext) -> SmResult<()> {
        let dir = self.mount_point(&sr.sr_uuid);
        if is_mounted(&dir) {
            run(ErrorCode::SrInUse, "umount", &[dir.as_os_str()])?;
        }
        match std::fs::remove_dir(&dir) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(SmError::io(
                ErrorCode::SrInUse,
                "removing mount point",
                &err,
            )),
        }
    }

    fn destroy(&self, sr: &SrContext) -> SmResult<()> {
        let device = device(&sr.device_config)?;
        // Erase the filesystem signature so a later probe no longer finds the SR.
        run(
            ErrorCode::Other(63),
            "wipefs",
            &["-a".as_ref(), "-q".as_ref(), device.as_os_str()],
        )
    }

    fn probe(&self, device_config: &DeviceConfig) -> SmResult<Vec<ProbedSr>> {
        let device = device(device_config)?;
        let dir = self
            .mount_base
            .join(format!(".probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| SmError::io(MOUNT_FAILED, "probe mount", &e))?;
        let mounted = run(
            MOUNT_FAILED,
            "mount",
            &[
                "-o".as_ref(),
                "ro".as_ref(),
                device.as_os_str(),
                dir.as_os_str(),
            ],
        );
        let found = match mounted {
            // An unformatted device holds no SR.
            Err(_) => Ok(Vec::new()),
            Ok(()) => {
                let meta = sm_file_meta(&dir);
                let _ = run(ErrorCode::SrInUse, "umount", &[dir.as_os_str()]);
                meta.map(|uuid| {
                    uuid.into_iter()
                        .map(|uuid| ProbedSr {
                            uuid,
                            size: None,
                            aux: [("device".to_owned(), device.display().to_string())].into(),
                        })
                        .collect()
                })
            }
        };
        let _ = std::fs::remove_dir(&dir);
        found
    }
}

fn sm_file_meta(dir: &Path) -> SmResult<Option<String>> {
    let path = dir.join(sm_file::METADATA_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(SmError::io(
                ErrorCode::MetadataError,
                "reading metadata",
                &err,
            ))
        }
    };
    // The sidecar is sm-file's; only its `sr_uuid` field matters here.
    let uuid = text
        .split("\"sr_uuid\"")
        .nth(1)
        .and_then(|rest| rest.split('"').nth(1))
        .map(str::to_owned);
    Ok(uuid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn missing_or_absent_device_gives_upstream_codes() {
        assert_eq!(device(&DeviceConfig::new()).unwrap_err().code.number(), 90);
        let mut config = DeviceConfig::new();
        config.insert(DEVICE.into(), "/dev/does-not-exist-xyz".into());
        assert_eq!(device(&config).unwrap_err().code.number(), 91);
    }

    #[test]
    fn sidecar_sr_uuid_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(sm_file::METADATA_FILE),
            "{\n  \"sr_uuid\": \"abc-1\",\n  \"vdis\": {}\n}",
        )
        .unwrap();
        assert_eq!(sm_file_meta(dir.path()).unwrap().as_deref(), Some("abc-1"));
    }
}
