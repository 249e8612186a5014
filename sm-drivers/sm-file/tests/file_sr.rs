//! The file SR for real in a temp dir: the full driver walk through the NBD data path, probe,
//! error codes, and GC crash safety (a simulated crash at every journal step, then a restart).

#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

#[path = "common/walk.rs"]
mod walk;

use std::path::Path;
use std::sync::Arc;

use sm::{DeviceConfig, MemoryDb, SmError, SrContext, SrDriver, VdiCreate};
use sm_file::gc::{collect, collect_with, GcPoint};
use sm_file::{FileDriver, FileSubstrate, VhdConfig, VhdSr};

const MIB: u64 = 1 << 20;

fn file_sr(dir: &Path) -> (FileDriver, SrContext, Arc<MemoryDb>) {
    let db = Arc::new(MemoryDb::new());
    let driver = FileDriver::new(
        FileSubstrate,
        VhdConfig {
            socket_dir: dir.join("sockets"),
        },
        db.clone(),
    );
    let mut config = DeviceConfig::new();
    config.insert("location".into(), dir.join("sr").display().to_string());
    let sr = SrContext::new(uuid::Uuid::new_v4().to_string(), config);
    (driver, sr, db)
}

#[test]
fn file_sr_full_walk() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, sr, db) = file_sr(dir.path());
    walk::walk(&driver, &sr, &db);
    assert!(
        !dir.path().join("sr").exists(),
        "empty SR directory removed"
    );
}

#[test]
fn probe_finds_the_sr_and_create_refuses_a_used_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, sr, _db) = file_sr(dir.path());
    driver.sr_create(&sr, 0).unwrap();
    let found = driver
        .sr_probe(&sr.device_config, &Default::default())
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].uuid, sr.sr_uuid);
    let err = driver.sr_create(&sr, 0).unwrap_err();
    assert_eq!(err.code.number(), 42);
    let missing = driver
        .sr_create(&SrContext::new("x", DeviceConfig::new()), 0)
        .unwrap_err();
    assert_eq!(missing.code.number(), 94);
}

#[test]
fn vdi_operations_on_unattached_sr_or_missing_vdi_fail_with_backend_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, sr, _db) = file_sr(dir.path());
    driver.sr_create(&sr, 0).unwrap();
    let err = driver.vdi_create(&sr, &VdiCreate::default()).unwrap_err();
    assert_eq!(err.code.number(), 47);
    driver.sr_attach(&sr).unwrap();
    let size = driver.vdi_create(&sr, &VdiCreate::default()).unwrap_err();
    assert_eq!(size.code.number(), 79);
    let missing = sm::VdiId::by_uuid(uuid::Uuid::new_v4().to_string());
    let err = driver.vdi_delete(&sr, &missing).unwrap_err();
    assert_eq!(err.xapi_mapping(), sm::XapiMapping::VdiMissing);
}

/// Builds base ─┬─ mid ─┬─ leaf  (mid hidden, base hidden; mid is base's only child)
///              and leaf is mid's only child after the sibling is deleted.
fn chain_needing_gc(dir: &Path, db: Arc<MemoryDb>) -> (String, Vec<u8>) {
    std::fs::create_dir_all(dir.join("sr")).unwrap();
    let sr_uuid = uuid::Uuid::new_v4().to_string();
    VhdSr::initialise(&dir.join("sr"), &sr_uuid).unwrap();
    let sr = VhdSr::open(&dir.join("sr"), &sr_uuid, &dir.join("s"), "file", db).unwrap();
    let a = sr
        .vdi_create(&VdiCreate {
            virtual_size: 8 * MIB,
            ..VdiCreate::default()
        })
        .unwrap()
        .uuid;
    let path = dir.join("sr").join(format!("{a}.vhd"));
    let mut expected = vec![0u8; (8 * MIB) as usize];
    let mut write = |offset: usize, byte: u8, len: usize| {
        let mut chain = vhd::open_chain(&path, true).unwrap();
        chain.write_at(offset as u64, &vec![byte; len]).unwrap();
        chain.flush().unwrap();
        expected[offset..offset + len].fill(byte);
    };
    write(0, 1, 3 << 20);
    let s1 = sr.vdi_snapshot(&a, true).unwrap().uuid;
    write(1 << 20, 2, 1 << 20);
    let s2 = sr.vdi_snapshot(&a, true).unwrap().uuid;
    write(2 << 20, 3, 4096);
    write(6 << 20, 4, 512);
    sr.vdi_delete(&s1).unwrap();
    sr.vdi_delete(&s2).unwrap();
    (a, expected)
}

fn read_all(dir: &Path, uuid: &str) -> Vec<u8> {
    let chain = vhd::open_chain(&dir.join("sr").join(format!("{uuid}.vhd")), false).unwrap();
    let mut buf = vec![0u8; chain.size() as usize];
    chain.read_at(0, &mut buf).unwrap();
    buf
}

#[test]
fn gc_crash_at_every_journal_step_loses_nothing() {
    // Count the crash points of an uninterrupted run first.
    let counting = tempfile::tempdir().unwrap();
    let db = Arc::new(MemoryDb::new());
    let (a, expected) = chain_needing_gc(counting.path(), db.clone());
    let sr_dir = counting.path().join("sr");
    let sr_uuid = sm_file_sr_uuid(&sr_dir);
    let sr = VhdSr::open(&sr_dir, &sr_uuid, &counting.path().join("s"), "file", db).unwrap();
    let mut points = Vec::new();
    let report = collect_with(&sr, true, &mut |p| {
        points.push(p);
        Ok(())
    })
    .unwrap();
    assert_eq!(report.coalesced.len(), 1, "{report:?}");
    assert_eq!(report.leaf_coalesced.len(), 1, "{report:?}");
    assert!(points.contains(&GcPoint::Relinked) && points.contains(&GcPoint::Replaced));
    assert_eq!(read_all(counting.path(), &a), expected);

    for crash_at in 0..points.len() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(MemoryDb::new());
        let (a, expected) = chain_needing_gc(dir.path(), db.clone());
        let sr_dir = dir.path().join("sr");
        let sr_uuid = sm_file_sr_uuid(&sr_dir);
        let sr = VhdSr::open(&sr_dir, &sr_uuid, &dir.path().join("s"), "file", db.clone()).unwrap();
        let mut seen = 0;
        let crashed = collect_with(&sr, true, &mut |_| {
            seen += 1;
            if seen > crash_at {
                Err(SmError::new(sm::ErrorCode::Other(999), "simulated crash"))
            } else {
                Ok(())
            }
        });
        assert!(crashed.is_err(), "crash point {crash_at} reached");
        drop(sr);
        // Mid-crash the visible data is already intact.
        assert_eq!(
            read_all(dir.path(), &a),
            expected,
            "after crash at {crash_at}"
        );
        // Restart: attach recovers, a new pass finishes the work.
        let sr = VhdSr::open(&sr_dir, &sr_uuid, &dir.path().join("s"), "file", db).unwrap();
        collect(&sr, true).unwrap();
        assert_eq!(
            read_all(dir.path(), &a),
            expected,
            "after recovery from {crash_at}"
        );
        let vhds: Vec<_> = std::fs::read_dir(&sr_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".vhd") || n.starts_with(".journal-"))
            .collect();
        assert_eq!(vhds, vec![format!("{a}.vhd")], "crash at {crash_at}");
        let chain = vhd::open_chain(&sr_dir.join(format!("{a}.vhd")), false).unwrap();
        assert_eq!(chain.depth(), 1);
        assert!(chain.check().unwrap().is_ok());
    }
}

fn sm_file_sr_uuid(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join(sm_file::METADATA_FILE)).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["sr_uuid"].as_str().unwrap().to_owned()
}

#[test]
fn interrupted_snapshot_is_rolled_back_on_attach() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(MemoryDb::new());
    std::fs::create_dir_all(dir.path().join("sr")).unwrap();
    let sr_dir = dir.path().join("sr");
    VhdSr::initialise(&sr_dir, "sr").unwrap();
    let sr = VhdSr::open(&sr_dir, "sr", &dir.path().join("s"), "file", db.clone()).unwrap();
    let a = sr
        .vdi_create(&VdiCreate {
            virtual_size: 4 * MIB,
            ..VdiCreate::default()
        })
        .unwrap()
        .uuid;
    drop(sr);
    let a_path = sr_dir.join(format!("{a}.vhd"));
    let mut chain = vhd::open_chain(&a_path, true).unwrap();
    chain.write_at(0, &[5u8; 4096]).unwrap();
    chain.flush().unwrap();
    drop(chain);
    // Simulate a crash after the leaf was renamed to the base and one child was made.
    let base = uuid::Uuid::new_v4().to_string();
    let new = uuid::Uuid::new_v4().to_string();
    let journal = format!(r#"{{"op":"snapshot","leaf":"{a}","base":"{base}","new":"{new}"}}"#);
    std::fs::write(sr_dir.join(format!(".journal-{a}")), journal).unwrap();
    let base_path = sr_dir.join(format!("{base}.vhd"));
    std::fs::rename(&a_path, &base_path).unwrap();
    let mut disk = vhd::open_file(&base_path).unwrap();
    disk.set_hidden(true).unwrap();
    disk.flush().unwrap();
    drop(disk);
    drop(vhd::snapshot(&base_path, &a_path).unwrap());

    let _sr = VhdSr::open(&sr_dir, "sr", &dir.path().join("s"), "file", db).unwrap();
    assert!(!base_path.exists());
    let disk = vhd::open_file(&a_path).unwrap();
    assert!(!disk.hidden());
    assert_eq!(disk.parent_uuid(), None);
    let mut buf = [0u8; 4096];
    disk.read_at(0, &mut buf).unwrap();
    assert_eq!(buf, [5u8; 4096]);
    assert!(!sr_dir.join(format!(".journal-{a}")).exists());
}
