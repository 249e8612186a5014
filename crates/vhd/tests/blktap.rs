//! Cross-checks against blktap's `vhd-util`, the tool XenServer's storage manager drives: it must
//! accept our images (check, hidden flag, chain depth, parent resolution, coalesce) and we must
//! read and extend its images. vhd-util has no Debian package, so these tests are ignored by
//! default; build it from xapi-project/blktap, put it on PATH (or set `VHD_UTIL`) and run
//! `cargo test -p vhd --test blktap -- --ignored`.

#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

mod common;

use std::path::{Path, PathBuf};

use common::{pattern, run, s, tool};
use vhd::{create_dynamic_file, create_fixed_file, open_chain, open_file, snapshot};

const MIB: u64 = 1 << 20;

fn vhd_util() -> PathBuf {
    match std::env::var_os("VHD_UTIL") {
        Some(path) => PathBuf::from(path),
        None => tool("vhd-util", "none: build vhd-util from xapi-project/blktap"),
    }
}

fn stdout(program: &Path, args: &[&str]) -> String {
    String::from_utf8(run(program, args).stdout).unwrap()
}

#[test]
#[ignore = "needs blktap's vhd-util, which has no Debian package"]
fn vhd_util_accepts_our_images() {
    let util = vhd_util();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.vhd");
    let leaf = dir.path().join("leaf.vhd");
    let fixed = dir.path().join("fixed.vhd");
    let mut disk = create_dynamic_file(&base, 10 * MIB).unwrap();
    disk.write_at(0, &pattern(2 * MIB as usize, 1)).unwrap();
    disk.set_hidden(true).unwrap();
    drop(disk);
    drop(create_fixed_file(&fixed, 4 * MIB).unwrap());
    snapshot(&base, &leaf).unwrap();
    let mut chain = open_chain(&leaf, true).unwrap();
    chain.write_at(1000, &pattern(100, 2)).unwrap();
    drop(chain);

    for image in [&base, &leaf] {
        let out = stdout(&util, &["check", "-n", s(image)]);
        assert!(out.contains("is valid"), "{out}");
    }
    // For fixed disks vhd-util checks only the footer and says nothing; failure is the status.
    run(&util, &["check", "-n", s(&fixed)]);
    let out = stdout(&util, &["query", "-n", s(&base), "-f"]);
    assert!(out.contains("hidden: 1"), "{out}");
    let out = stdout(&util, &["query", "-n", s(&leaf), "-p", "-d"]);
    assert!(out.contains("base.vhd"), "{out}");
    assert!(out.contains("chain depth: 2"), "{out}");

    let mut expected = vec![0u8; 10 * MIB as usize];
    open_chain(&leaf, false)
        .unwrap()
        .read_at(0, &mut expected)
        .unwrap();
    run(&util, &["coalesce", "-n", s(&leaf)]);
    let mut coalesced = vec![0u8; expected.len()];
    open_file(&base)
        .unwrap()
        .read_at(0, &mut coalesced)
        .unwrap();
    assert!(
        coalesced == expected,
        "vhd-util coalesce produced other bytes"
    );
}

#[test]
#[ignore = "needs blktap's vhd-util, which has no Debian package"]
fn we_read_and_extend_vhd_util_images() {
    let util = vhd_util();
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("p.vhd");
    let child = dir.path().join("c.vhd");
    run(&util, &["create", "-n", s(&parent), "-s", "20"]);
    run(&util, &["fill", "-n", s(&parent)]);
    run(&util, &["snapshot", "-n", s(&child), "-p", s(&parent)]);
    run(&util, &["set", "-n", s(&parent), "-f", "hidden", "-v", "1"]);

    let chain = open_chain(&child, false).unwrap();
    assert_eq!(chain.depth(), 2);
    assert!(chain.disks()[1].hidden());
    assert_eq!(chain.disks()[1].allocated_blocks(), 10);
    assert!(chain.check().unwrap().is_ok());
    drop(chain);

    let mut chain = open_chain(&child, true).unwrap();
    chain.write_at(3 * MIB + 5, &pattern(5000, 3)).unwrap();
    chain.leaf_mut().resize(30 * MIB).unwrap();
    drop(chain);
    let out = stdout(&util, &["check", "-n", s(&child)]);
    assert!(out.contains("is valid"), "{out}");
    let out = stdout(&util, &["query", "-n", s(&child), "-v"]);
    assert_eq!(out.trim(), "30");
}
