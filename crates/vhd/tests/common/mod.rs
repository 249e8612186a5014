//! Shared helpers for the integration tests: locating external tools (failing loudly when one is
//! missing), running them, and deterministic data patterns.

#![allow(dead_code)] // Each test binary uses a different subset.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The path of `name`, or a panic naming the Debian package to install.
pub fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("required tool `{name}` not found on PATH: install the Debian package `{package}`");
}

/// Runs `program` with `args`, panicking with its output when it fails.
pub fn run(program: &Path, args: &[&str]) -> Output {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{} {:?} failed: {}\nstdout: {}\nstderr: {}",
        program.display(),
        args,
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `len` bytes of a pattern that differs per `seed` and per position.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// Path as `&str` for command lines.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}
