//! The ISO SR over a temp directory: scans pick up new files, forget removed ones and keep
//! uuids stable; attach hands out the image file read-only.

#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use std::sync::Arc;

use sm::{DataPath, DeviceConfig, MemoryDb, SrContext, SrDriver, StorageDb, VdiId};
use sm_iso::IsoDriver;

#[test]
fn scan_tracks_added_and_removed_images() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(MemoryDb::new());
    let driver = IsoDriver::new(db.clone());
    let mut config = DeviceConfig::new();
    config.insert("location".into(), dir.path().display().to_string());
    let sr = SrContext::new("iso-sr", config);
    driver.sr_create(&sr, 0).unwrap();
    driver.sr_attach(&sr).unwrap();

    std::fs::write(dir.path().join("debian.iso"), vec![1u8; 4096]).unwrap();
    std::fs::write(dir.path().join("readme.txt"), b"not an image").unwrap();
    let first = driver.sr_scan(&sr).unwrap();
    assert_eq!(first.vdis.len(), 1);
    let debian = first.vdis[0].clone();
    assert_eq!(debian.location, "debian.iso");
    assert_eq!(debian.virtual_size, 4096);
    assert!(debian.read_only);

    let named = "7b0b4f47-6e0a-4a3e-9c0e-1d2f3a4b5c6d.iso";
    std::fs::write(dir.path().join(named), vec![2u8; 512]).unwrap();
    let second = driver.sr_scan(&sr).unwrap();
    assert_eq!(second.vdis.len(), 2);
    let again = second
        .vdis
        .iter()
        .find(|v| v.location == "debian.iso")
        .unwrap();
    assert_eq!(again.uuid, debian.uuid, "uuid stable across scans");
    assert!(second
        .vdis
        .iter()
        .any(|v| v.uuid == "7b0b4f47-6e0a-4a3e-9c0e-1d2f3a4b5c6d"));

    let attached = driver
        .vdi_attach(
            &sr,
            &VdiId {
                uuid: debian.uuid.clone(),
                location: debian.location.clone(),
            },
            false,
        )
        .unwrap();
    assert!(attached.read_only);
    assert_eq!(
        attached.data_path,
        DataPath::File {
            path: dir.path().join("debian.iso")
        }
    );

    std::fs::remove_file(dir.path().join("debian.iso")).unwrap();
    let third = driver.sr_scan(&sr).unwrap();
    assert_eq!(third.vdis.len(), 1);
    assert!(
        db.vdi("iso-sr", &debian.uuid).unwrap().is_none(),
        "removed image forgotten"
    );
}

#[test]
fn missing_location_and_directory_give_iso_codes() {
    let driver = IsoDriver::new(Arc::new(MemoryDb::new()));
    let err = driver
        .sr_attach(&SrContext::new("s", DeviceConfig::new()))
        .unwrap_err();
    assert_eq!(err.code.number(), 220);
    let mut config = DeviceConfig::new();
    config.insert("location".into(), "/nonexistent-iso-dir".into());
    let err = driver.sr_attach(&SrContext::new("s", config)).unwrap_err();
    assert_eq!(err.code.number(), 226);
}
