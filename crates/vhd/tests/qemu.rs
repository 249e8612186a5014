//! Cross-checks against qemu's independent `vpc` driver: images we write must pass
//! `qemu-img check` and convert to the same raw bytes; images qemu writes must read correctly.
//! Needs `qemu-img` (Debian package `qemu-utils`); fails when it is missing.

#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

mod common;

use std::path::Path;

use common::{pattern, run, s, tool};
use vhd::{
    coalesce_file, create_dynamic_file, create_fixed_file, open_chain, open_file, snapshot, Disk,
    FileIo,
};

const MIB: u64 = 1 << 20;

/// Writes the same odd-offset patterns into `disk` and into `model`.
fn write_patterns(disk: &mut Disk<FileIo>, model: &mut [u8]) {
    let writes: [(u64, usize, u32); 6] = [
        (0, 512, 1),
        (1234, 777, 2),
        (2 * MIB - 100, 300, 3),
        (5 * MIB + 17, 3 * MIB as usize, 4),
        (model.len() as u64 - 1000, 1000, 5),
        (1300, 10, 6),
    ];
    for (offset, len, seed) in writes {
        let data = pattern(len, seed);
        disk.write_at(offset, &data).unwrap();
        model[offset as usize..offset as usize + len].copy_from_slice(&data);
    }
    disk.flush().unwrap();
}

fn qemu_info_json(qemu_img: &Path, image: &Path) -> String {
    let out = run(qemu_img, &["info", "-f", "vpc", "--output=json", s(image)]);
    String::from_utf8(out.stdout).unwrap()
}

/// `qemu-img check -f vpc`: qemu's vpc driver has no check routine (exit 63, "does not support
/// checks"), which is accepted; any other failure is not. The byte comparison after
/// `convert` is the real cross-check.
fn qemu_check(qemu_img: &Path, image: &Path) {
    let out = std::process::Command::new(qemu_img)
        .args(["check", "-f", "vpc", s(image)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("does not support checks"),
        "qemu-img check failed: {stderr}"
    );
}

fn convert_to_raw(qemu_img: &Path, image: &Path, raw: &Path) -> Vec<u8> {
    run(
        qemu_img,
        &["convert", "-f", "vpc", "-O", "raw", s(image), s(raw)],
    );
    std::fs::read(raw).unwrap()
}

fn ours_to_qemu(kind: &str) {
    let qemu_img = tool("qemu-img", "qemu-utils");
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("ours.vhd");
    let size = 20 * MIB;
    let mut disk = match kind {
        "dynamic" => create_dynamic_file(&image, size).unwrap(),
        _ => create_fixed_file(&image, size).unwrap(),
    };
    let mut model = vec![0u8; size as usize];
    write_patterns(&mut disk, &mut model);
    drop(disk);

    let info = qemu_info_json(&qemu_img, &image);
    assert!(
        info.contains(&format!("\"virtual-size\": {size}")),
        "qemu reports another size: {info}"
    );
    qemu_check(&qemu_img, &image);
    let raw = convert_to_raw(&qemu_img, &image, &dir.path().join("out.raw"));
    assert_eq!(raw.len(), model.len());
    assert!(raw == model, "qemu reads different bytes than we wrote");
}

#[test]
fn dynamic_image_we_write_reads_identically_in_qemu() {
    ours_to_qemu("dynamic");
}

#[test]
fn fixed_image_we_write_reads_identically_in_qemu() {
    ours_to_qemu("fixed");
}

#[test]
fn qemu_dynamic_image_reads_and_writes_with_ours() {
    let qemu_img = tool("qemu-img", "qemu-utils");
    let dir = tempfile::tempdir().unwrap();
    let raw_in = dir.path().join("in.raw");
    let image = dir.path().join("qemu.vhd");
    // qemu rounds 30 MiB up to its CHS geometry and stores that in Current Size.
    run(
        &qemu_img,
        &[
            "create",
            "-f",
            "vpc",
            "-o",
            "subformat=dynamic",
            s(&image),
            "30M",
        ],
    );
    let mut disk = open_file(&image).unwrap();
    let size = disk.size();
    assert!(size >= 30 * MIB, "size {size}");
    assert_eq!(size, disk.chs_size());
    let mut model = vec![0u8; size as usize];
    write_patterns(&mut disk, &mut model);
    drop(disk);
    assert!(vhd::check(&FileIo::open(&image).unwrap()).unwrap().is_ok());
    qemu_check(&qemu_img, &image);
    let raw = convert_to_raw(&qemu_img, &image, &raw_in);
    assert!(
        raw == model,
        "qemu reads different bytes than we wrote into its image"
    );

    // And data qemu writes reads back through ours.
    let source = dir.path().join("source.raw");
    let data = pattern(9 * MIB as usize, 99);
    std::fs::write(&source, &data).unwrap();
    let converted = dir.path().join("converted.vhd");
    run(
        &qemu_img,
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "vpc",
            "-o",
            "subformat=dynamic",
            s(&source),
            s(&converted),
        ],
    );
    let disk = open_file(&converted).unwrap();
    assert!(disk.size() >= data.len() as u64);
    let mut back = vec![0u8; disk.size() as usize];
    disk.read_at(0, &mut back).unwrap();
    assert!(back[..data.len()] == data[..]);
    assert!(back[data.len()..].iter().all(|b| *b == 0));
}

#[test]
fn grown_image_still_passes_qemu_check() {
    let qemu_img = tool("qemu-img", "qemu-utils");
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("grow.vhd");
    let mut disk = create_dynamic_file(&image, 4 * MIB).unwrap();
    disk.write_at(MIB + 3, &pattern(5000, 7)).unwrap();
    disk.resize(600 * MIB).unwrap();
    disk.write_at(599 * MIB, &pattern(4096, 8)).unwrap();
    drop(disk);
    qemu_check(&qemu_img, &image);
    let info = qemu_info_json(&qemu_img, &image);
    assert!(
        info.contains(&format!("\"virtual-size\": {}", 600 * MIB)),
        "{info}"
    );
    let raw = convert_to_raw(&qemu_img, &image, &dir.path().join("g.raw"));
    assert_eq!(
        &raw[(MIB + 3) as usize..(MIB + 3) as usize + 5000],
        &pattern(5000, 7)[..]
    );
    assert_eq!(
        &raw[(599 * MIB) as usize..(599 * MIB) as usize + 4096],
        &pattern(4096, 8)[..]
    );
}

#[test]
fn coalesced_chain_reads_identically_in_qemu() {
    let qemu_img = tool("qemu-img", "qemu-utils");
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.vhd");
    let leaf = dir.path().join("leaf.vhd");
    let size = 10 * MIB;
    let mut model = vec![0u8; size as usize];
    let mut disk = create_dynamic_file(&base, size).unwrap();
    write_patterns(&mut disk, &mut model);
    drop(disk);
    snapshot(&base, &leaf).unwrap();
    let mut chain = open_chain(&leaf, true).unwrap();
    for (offset, len, seed) in [
        (700u64, 5000usize, 11u32),
        (4 * MIB - 3, 2 * MIB as usize, 12),
    ] {
        let data = pattern(len, seed);
        chain.write_at(offset, &data).unwrap();
        model[offset as usize..offset as usize + len].copy_from_slice(&data);
    }
    chain.flush().unwrap();
    drop(chain);
    let copied = coalesce_file(&leaf).unwrap();
    assert!(copied >= 5000 + 2 * MIB, "copied {copied}");
    let raw = convert_to_raw(&qemu_img, &base, &dir.path().join("base.raw"));
    assert!(
        raw == model,
        "coalesced parent differs from the chain's content"
    );
    assert!(vhd::check(&FileIo::open(&base).unwrap()).unwrap().is_ok());
}
