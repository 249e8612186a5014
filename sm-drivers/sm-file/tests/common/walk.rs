//! The driver walk shared by the file and ext SR tests: create → attach → write through the NBD
//! data path with qemu-io → snapshot → clone → delete snapshot → GC → leaf-coalesce → verify
//! contents unchanged → detach → delete. Needs `qemu-io` (Debian `qemu-utils`).

#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::BTreeMap;
use std::process::Command;

use sm::{DataPath, MemoryDb, SrContext, SrDriver, StorageDb, VdiCreate, VdiId};

const MIB: u64 = 1 << 20;

/// Runs qemu-io commands against an attach result's NBD export; panics on failure or on a
/// pattern mismatch.
pub fn qemu_io(path: &DataPath, commands: &[&str]) {
    run_qemu_io(path, commands, false);
}

/// [`qemu_io`] opening the export read-only.
pub fn qemu_io_read_only(path: &DataPath, commands: &[&str]) {
    run_qemu_io(path, commands, true);
}

fn run_qemu_io(path: &DataPath, commands: &[&str], read_only: bool) {
    let uri = path.nbd_uri().expect("an NBD data path");
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", "raw"]);
    if read_only {
        cmd.arg("-r");
    }
    for c in commands {
        cmd.args(["-c", c]);
    }
    let out = cmd.arg(&uri).output().expect("qemu-io runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "qemu-io {commands:?} failed: {text}");
    assert!(
        !text.contains("verification failed"),
        "{commands:?}: {text}"
    );
}

fn activate(driver: &dyn SrDriver, sr: &SrContext, vdi: &VdiId, writable: bool) -> DataPath {
    driver.vdi_attach(sr, vdi, writable).unwrap();
    driver.vdi_activate(sr, vdi, writable).unwrap().data_path
}

fn release(driver: &dyn SrDriver, sr: &SrContext, vdi: &VdiId) {
    driver.vdi_deactivate(sr, vdi).unwrap();
    driver.vdi_detach(sr, vdi).unwrap();
}

/// The full walk on a freshly created SR described by `sr`.
pub fn walk(driver: &dyn SrDriver, sr: &SrContext, db: &MemoryDb) {
    let none = BTreeMap::new();
    driver.sr_create(sr, 0).unwrap();
    driver.sr_attach(sr).unwrap();

    let a = driver
        .vdi_create(
            sr,
            &VdiCreate {
                name_label: "disk A".into(),
                virtual_size: 64 * MIB,
                vdi_type: "user".into(),
                ..VdiCreate::default()
            },
        )
        .unwrap();
    assert_eq!(
        db.vdi(&sr.sr_uuid, &a.uuid).unwrap().unwrap().name_label,
        "disk A"
    );
    let a_id = VdiId::by_uuid(&a.uuid);
    let a_path = activate(driver, sr, &a_id, true);
    qemu_io(
        &a_path,
        &["write -P 0x11 0 4M", "write -P 0x22 10M 1M", "flush"],
    );

    // Snapshot while active: the export pauses and continues on the new leaf.
    let s = driver.vdi_snapshot(sr, &a_id, &none).unwrap();
    assert!(s.is_a_snapshot && s.read_only);
    assert_eq!(s.snapshot_of.as_deref(), Some(a.uuid.as_str()));
    qemu_io(&a_path, &["write -P 0x33 0 1M", "read -P 0x11 1M 3M"]);

    let c = driver.vdi_clone(sr, &a_id, &none).unwrap();
    assert!(!c.is_a_snapshot && !c.read_only);
    let s_id = VdiId::by_uuid(&s.uuid);
    let c_id = VdiId::by_uuid(&c.uuid);
    let s_path = activate(driver, sr, &s_id, false);
    qemu_io_read_only(&s_path, &["read -P 0x11 0 4M", "read -P 0x22 10M 1M"]);
    release(driver, sr, &s_id);
    let c_path = activate(driver, sr, &c_id, true);
    qemu_io(&c_path, &["read -P 0x33 0 1M", "write -P 0x44 20M 1M"]);
    release(driver, sr, &c_id);

    // Delete the snapshot: the clone's hidden base is now its parent's only child.
    driver.vdi_delete(sr, &s_id).unwrap();
    assert!(db.vdi(&sr.sr_uuid, &s.uuid).unwrap().is_none());
    let report = driver.sr_gc(sr).unwrap();
    assert_eq!(report.coalesced.len(), 1, "{report:?}");
    assert!(report.leaf_coalesced.is_empty(), "{report:?}");

    // Delete the clone: A is now its parent's only child and is leaf-coalesced while active.
    driver.vdi_delete(sr, &c_id).unwrap();
    let report = driver.sr_gc(sr).unwrap();
    assert_eq!(report.leaf_coalesced.len(), 1, "{report:?}");
    assert_eq!(report.leaf_coalesced[0].0, a.uuid);

    qemu_io(
        &a_path,
        &[
            "read -P 0x33 0 1M",
            "read -P 0x11 1M 3M",
            "read -P 0x22 10M 1M",
            "read -P 0 20M 1M",
        ],
    );
    let scan = driver.sr_scan(sr).unwrap();
    assert_eq!(scan.vdis.len(), 1, "{:?}", scan.vdis);
    assert_eq!(scan.vdis[0].uuid, a.uuid);
    assert_eq!(scan.vdis[0].parent, None);
    assert_eq!(scan.vdis[0].name_label, "disk A");
    assert_eq!(scan.stats.virtual_allocation, 64 * MIB);
    assert!(scan.stats.physical_size > 0);

    // Not empty, not detachable while in use.
    assert_eq!(driver.sr_detach(sr).unwrap_err().code.number(), 16);
    release(driver, sr, &a_id);
    assert_eq!(driver.sr_delete(sr).unwrap_err().code.number(), 39);
    driver.sr_attach(sr).unwrap();
    driver.vdi_delete(sr, &a_id).unwrap();
    driver.sr_detach(sr).unwrap();
    driver.sr_delete(sr).unwrap();
    assert!(db.vdis(&sr.sr_uuid).unwrap().is_empty());
}
