//! Backend selection as the built `xapi` binary shows it: the default build links no Xen
//! library (read from the ELF dynamic section's `DT_NEEDED` entries), and `--backend xen` on
//! a machine that is not a Xen dom0 exits at once, before touching the state directory, with
//! a message that says why.
#![allow(clippy::unwrap_used)] // Test helpers unwrap: a panic is the failure report.
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The `DT_NEEDED` names of a little-endian ELF64 file, from its `SHT_DYNAMIC` section and
/// the string table that section links to.
fn elf_needed(path: &Path) -> Vec<String> {
    const SHT_DYNAMIC: u32 = 6;
    const DT_NULL: u64 = 0;
    const DT_NEEDED: u64 = 1;
    let bytes = std::fs::read(path).expect("read the binary");
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!(bytes[4], 2, "ELF64 expected");
    assert_eq!(bytes[5], 1, "little-endian ELF expected");
    let u16_at =
        |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().expect("2 bytes")) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    let shoff = u64_at(0x28) as usize;
    let shentsize = u16_at(0x3a);
    let shnum = u16_at(0x3c);
    // (type, offset, size, link) of section `i`
    let section = |i: usize| {
        let h = shoff + i * shentsize;
        (
            u32_at(h + 4),
            u64_at(h + 0x18) as usize,
            u64_at(h + 0x20) as usize,
            u32_at(h + 0x28) as usize,
        )
    };
    let mut needed = Vec::new();
    for i in 0..shnum {
        let (ty, off, size, link) = section(i);
        if ty != SHT_DYNAMIC {
            continue;
        }
        let (_, str_off, str_size, _) = section(link);
        let strtab = &bytes[str_off..str_off + str_size];
        for entry in (off..off + size).step_by(16) {
            let tag = u64_at(entry);
            if tag == DT_NULL {
                break;
            }
            if tag == DT_NEEDED {
                let start = u64_at(entry + 8) as usize;
                let len = strtab[start..]
                    .iter()
                    .position(|&b| b == 0)
                    .expect("a terminated name");
                needed.push(
                    String::from_utf8(strtab[start..start + len].to_vec()).expect("utf-8 name"),
                );
            }
        }
    }
    needed
}

fn xapi_needed() -> Vec<String> {
    elf_needed(Path::new(env!("CARGO_BIN_EXE_xapi")))
}

#[test]
fn the_needed_list_is_read() {
    // Guards the parser: every dynamically linked Rust binary needs the C library.
    let needed = xapi_needed();
    assert!(needed.iter().any(|n| n == "libc.so.6"), "{needed:?}");
}

#[test]
fn the_needed_list_agrees_with_readelf() {
    let Ok(out) = Command::new("readelf")
        .args(["-d", env!("CARGO_BIN_EXE_xapi")])
        .output()
    else {
        eprintln!("skipped: readelf (binutils) is not installed");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let from_readelf: Vec<String> = text
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_owned()))
        .collect();
    assert!(!from_readelf.is_empty(), "{text}");
    assert_eq!(xapi_needed(), from_readelf);
}

#[cfg(not(feature = "xen"))]
#[test]
fn the_default_build_links_no_xen_library() {
    let needed = xapi_needed();
    let xen: Vec<&String> = needed.iter().filter(|n| n.starts_with("libxen")).collect();
    assert!(xen.is_empty(), "the default xapi needs {xen:?}");
}

#[cfg(feature = "xen")]
#[test]
fn the_xen_build_links_libxenlight() {
    let needed = xapi_needed();
    assert!(
        needed.iter().any(|n| n.starts_with("libxenlight.so")),
        "{needed:?}"
    );
}

/// A Xen dom0 has `control_d` in `/proc/xen/capabilities`.
fn on_a_xen_dom0() -> bool {
    std::fs::read_to_string("/proc/xen/capabilities").is_ok_and(|c| c.contains("control_d"))
}

#[test]
fn backend_xen_off_dom0_fails_fast_with_the_reason() {
    if cfg!(feature = "xen") && on_a_xen_dom0() {
        eprintln!("skipped: this machine is a Xen dom0, where --backend xen starts");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_xapi"))
        .arg("--state-dir")
        .arg(&state)
        .args([
            "--backend",
            "xen",
            "--http",
            "127.0.0.1:0",
            "--https",
            "off",
        ])
        .env("XAPI_ROOT_PASSWORD", "secret")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started: {err}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    if cfg!(feature = "xen") {
        assert!(
            err.contains("--backend xen: ") && err.contains("dom0"),
            "{err}"
        );
    } else {
        assert!(err.contains("built without the `xen` feature"), "{err}");
    }
    assert!(!state.exists(), "the state directory was created");
}
