//! Shared helpers for the xe end-to-end tests: run the built `xe` against a test daemon.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::Path;
use std::process::Command;

use xapi_system_tests::TestDaemon;

/// What one xe run printed and returned.
pub struct Run {
    pub out: String,
    pub err: String,
    pub code: i32,
}

/// Runs `xe args...` over the daemon's unix socket (the local superuser).
pub fn xe(d: &TestDaemon, args: &[&str]) -> Run {
    xe_env(d, args, &[])
}

/// Runs `xe` with extra environment.
pub fn xe_env(d: &TestDaemon, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xe"));
    c.args(args)
        .env("XE_SOCKET", &d.socket)
        .env("HOME", d.state_dir())
        .env_remove("XE_EXTRA_ARGS");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run xe");
    Run {
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
        code: o.status.code().unwrap_or(-1),
    }
}

/// This machine's host name, as the daemon reports it in the host record.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Replaces the host name where the daemon prints it, so golden files do not depend on the machine.
fn without_hostname(text: &str) -> String {
    let host = hostname();
    text.lines()
        .map(|line| {
            if line == format!("          name-label ( RW): {host}") {
                "          name-label ( RW): <hostname>".to_owned()
            } else {
                line.replace(
                    &format!("Control domain on host: {host}"),
                    "Control domain on host: <hostname>",
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if text.ends_with('\n') { "\n" } else { "" }
}

/// Compares `actual` with the golden file, or rewrites it when `XE_UPDATE_GOLDEN` is set.
pub fn golden(name: &str, actual: &str) {
    let actual = without_hostname(actual);
    let actual = actual.as_str();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("XE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with XE_UPDATE_GOLDEN=1", path.display()));
    if expected != actual {
        let diff_at = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "{name} differs from the golden file at line {}:\nexpected: {:?}\nactual:   {:?}\n(XE_UPDATE_GOLDEN=1 rewrites it)",
            diff_at + 1,
            expected.lines().nth(diff_at),
            actual.lines().nth(diff_at)
        );
    }
}

/// Replaces UUIDs (and OpaqueRefs) by stable placeholders in order of first appearance.
pub fn normalise(text: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < text.len() {
        if i + 36 <= text.len() && is_uuid(&bytes[i..i + 36]) {
            let u = &text[i..i + 36];
            let n = match seen.iter().position(|s| s == u) {
                Some(n) => n,
                None => {
                    seen.push(u.to_owned());
                    seen.len() - 1
                }
            };
            out.push_str(&format!("<uuid-{n}>"));
            i += 36;
        } else {
            let ch = text[i..].chars().next().expect("in bounds");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn is_uuid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}
