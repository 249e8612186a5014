//! Smoke tests of the built `xapi` binary: configuration errors and backend selection.
use std::process::Command;

fn xapi() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xapi"))
}

#[test]
fn a_bad_listen_address_fails_fast_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = xapi()
        .arg("--state-dir")
        .arg(dir.path())
        .args(["--http", "nowhere"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid http"), "{err}");
}

#[test]
fn a_broken_config_file_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("xapi.conf");
    std::fs::write(&conf, "http = off\nthis is not a setting\n").unwrap();
    let out = xapi().arg("--config").arg(&conf).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("xapi.conf:2"), "{err}");
}

#[test]
fn the_xen_backend_is_refused_without_xen() {
    let dir = tempfile::tempdir().unwrap();
    let out = xapi()
        .arg("--state-dir")
        .arg(dir.path())
        .args([
            "--backend",
            "xen",
            "--http",
            "off",
            "--https",
            "off",
            "--socket",
            "off",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("xen"));
}

#[test]
fn a_generated_root_password_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let mut child = xapi()
            .arg("--state-dir")
            .arg(dir.path())
            .args(["--http", "127.0.0.1:0", "--https", "off", "--socket", "off"])
            .env_remove("XAPI_ROOT_PASSWORD")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = String::new();
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        loop {
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut reader, &mut line).unwrap() == 0
                || line.trim() == "xapi: ready"
            {
                break;
            }
            out.push_str(&line);
        }
        child.kill().unwrap();
        child.wait().unwrap();
        out
    };
    let first = run();
    assert!(first.contains("password: "), "{first}");
    let second = run();
    assert!(!second.contains("password: "), "printed again: {second}");
    let stored = std::fs::read_to_string(dir.path().join("root-password.argon2")).unwrap();
    assert!(stored.starts_with("$argon2"), "stored hashed");
}
