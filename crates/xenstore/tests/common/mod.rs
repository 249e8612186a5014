//! Test harness: starts one userspace oxenstored per test binary through
//! `tests/xen/xenstored-userspace.sh` (idempotent, so binaries share it) and hands
//! out unique path prefixes so tests run in parallel. If the daemon cannot start,
//! tests fail with the reason, unless `XENSTORE_TESTS=skip`.

#![allow(dead_code)] // Each test binary uses a different subset of the helpers.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use xenstore::Endpoint;

/// Where the daemon keeps its state (overridable with `XENSTORE_TEST_DIR`).
fn state_dir() -> PathBuf {
    std::env::var_os("XENSTORE_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/xapi-rs-xenstored"))
}

fn start() -> Result<PathBuf, String> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/xen/xenstored-userspace.sh");
    let dir = state_dir();
    let socket = dir.join("socket");
    let output = Command::new("bash")
        .arg(&script)
        .arg("start")
        .env("XS_DIR", &dir)
        .env("XENSTORED_PATH", &socket)
        .output()
        .map_err(|err| format!("cannot run {}: {err}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} start failed ({}):\n{}{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(socket)
}

/// The endpoint of the shared test daemon, or `None` when tests are skipped.
pub fn endpoint() -> Option<Endpoint> {
    if std::env::var("XENSTORE_TESTS").as_deref() == Ok("skip") {
        eprintln!("XENSTORE_TESTS=skip: not running against oxenstored");
        return None;
    }
    static SOCKET: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match SOCKET.get_or_init(start) {
        Ok(socket) => Some(Endpoint::Socket(socket.clone())),
        Err(reason) => panic!(
            "could not start userspace oxenstored; these tests need root, gcc, \
             libxenmisc4.17 and a working `apt-get download xen-utils-4.17` \
             (or set XENSTORE_TESTS=skip):\n{reason}"
        ),
    }
}

/// A fresh path prefix owned by one test.
pub fn prefix(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("/xenstore-tests/{}-{n}-{test}", std::process::id())
}

/// Returns early from a test when the daemon is skipped.
#[macro_export]
macro_rules! daemon_or_skip {
    () => {
        match common::endpoint() {
            Some(endpoint) => endpoint,
            None => return,
        }
    };
}
