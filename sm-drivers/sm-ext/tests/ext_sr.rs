//! The ext SR for real: a loop device over a temp file (`losetup`), `mkfs.ext4`, a real mount,
//! and the full driver walk through the NBD data path. Needs root, util-linux, e2fsprogs,
//! mount and qemu-utils (CI has them); fails loudly otherwise.

#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

#[path = "../../sm-file/tests/common/walk.rs"]
mod walk;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use sm::{DeviceConfig, MemoryDb, SrContext, SrDriver};
use sm_ext::{ExtDriver, ExtSubstrate};
use sm_file::VhdConfig;

/// A loop device over a sparse file; detached (after unmounting `mount_base/*`) on drop.
struct LoopDevice {
    device: PathBuf,
    mount_base: PathBuf,
    _backing: tempfile::TempDir,
}

impl LoopDevice {
    fn new(size: u64, mount_base: &Path) -> Self {
        let backing = tempfile::tempdir().unwrap();
        let file = backing.path().join("disk.img");
        std::fs::File::create(&file).unwrap().set_len(size).unwrap();
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&file)
            .output()
            .expect("losetup runs");
        assert!(
            out.status.success(),
            "losetup failed (root needed): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let device = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Self {
            device,
            mount_base: mount_base.to_path_buf(),
            _backing: backing,
        }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.mount_base) {
            for entry in entries.flatten() {
                let _ = Command::new("umount").arg(entry.path()).output();
            }
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.device).output();
    }
}

fn ext_sr(work: &Path, device: &Path) -> (ExtDriver, SrContext, Arc<MemoryDb>) {
    let db = Arc::new(MemoryDb::new());
    let driver = ExtDriver::new(
        ExtSubstrate::new(work.join("sr-mount")),
        VhdConfig {
            socket_dir: work.join("sockets"),
        },
        db.clone(),
    );
    let mut config = DeviceConfig::new();
    config.insert("device".into(), device.display().to_string());
    (
        driver,
        SrContext::new(uuid::Uuid::new_v4().to_string(), config),
        db,
    )
}

#[test]
fn ext_sr_on_a_loop_device_full_walk() {
    let work = tempfile::tempdir().unwrap();
    let device = LoopDevice::new(256 << 20, &work.path().join("sr-mount"));
    let (driver, sr, db) = ext_sr(work.path(), &device.device);

    // Probe before create finds nothing on the blank device.
    assert!(driver
        .sr_probe(&sr.device_config, &Default::default())
        .unwrap()
        .is_empty());
    driver.sr_create(&sr, 0).unwrap();
    let found = driver
        .sr_probe(&sr.device_config, &Default::default())
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].uuid, sr.sr_uuid);

    driver.sr_attach(&sr).unwrap();
    let mount_point = work.path().join("sr-mount").join(&sr.sr_uuid);
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        mounts.contains(&mount_point.canonicalize().unwrap().display().to_string()),
        "SR is mounted"
    );
    let stats = driver.sr_update(&sr).unwrap();
    assert!(stats.physical_size > 200 << 20 && stats.physical_size <= 256 << 20);
    driver.sr_detach(&sr).unwrap();
    assert!(!mount_point.exists(), "mount point removed on detach");

    // The walk creates the SR afresh (mkfs again) and ends with sr_delete.
    walk::walk(&driver, &sr, &db);
    assert!(driver
        .sr_probe(&sr.device_config, &Default::default())
        .unwrap()
        .is_empty());
}
