//! An acknowledged write survives SIGKILL: a child process (this test binary re-run in writer
//! mode) inserts rows in a loop, printing each ref after `write` returns; the parent kills it
//! after a few hundred acknowledgements and checks every acknowledged row is in the reopened file.
//! The same runs with group commit (`Durability::Deferred`), where the writer acknowledges after
//! `Db::sync`, as the daemon does before each answer.
#![allow(clippy::unwrap_used)]

#[path = "support/schema.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use std::time::Duration;

use xapi_db::{Db, DbOptions, Durability};

const CHILD_ENV: &str = "XAPI_DB_KILL9_CHILD_PATH";
/// Set (to anything) when the writer should queue writes and acknowledge after `sync`.
const DEFERRED_ENV: &str = "XAPI_DB_KILL9_DEFERRED";
const VM: usize = 1;

/// Writer mode: only does something when started by `acknowledged_writes_survive_sigkill`.
#[test]
fn child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let schema = support::schema(40);
    let deferred = std::env::var_os(DEFERRED_ENV).is_some();
    let options = DbOptions {
        durability: if deferred {
            Durability::Deferred {
                // Long enough that only `sync` commits: the test is about the acknowledgement.
                flush_window: Duration::from_secs(600),
            }
        } else {
            Durability::Immediate
        },
        ..DbOptions::default()
    };
    let db = Db::open_with(Some(std::path::Path::new(&path)), schema.clone(), options).unwrap();
    db.write(|txn| txn.insert(0, "OpaqueRef:host", support::host_row(0)))
        .unwrap();
    let stdout = std::io::stdout();
    for i in 0.. {
        let r = format!("OpaqueRef:vm-{i}");
        db.write(|txn| {
            txn.insert(VM, &r, support::vm_row(&schema, i, "OpaqueRef:host"))?;
            txn.map_add(0, "OpaqueRef:host", 4, &format!("k{i}"), "v".into())
        })
        .unwrap();
        if deferred && i % 3 == 0 {
            // Several writes per acknowledgement, as an API call makes.
            continue;
        }
        db.sync().unwrap();
        let mut out = stdout.lock();
        writeln!(out, "ACK {r}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    kill_writer_and_check(false);
}

#[test]
fn acknowledged_group_commits_survive_sigkill() {
    kill_writer_and_check(true);
}

fn kill_writer_and_check(deferred: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut command = Command::new(std::env::current_exe().unwrap());
    if deferred {
        command.env(DEFERRED_ENV, "1");
    }
    let mut child = command
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acknowledged = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(r) = line.strip_prefix("ACK ") {
            acknowledged.push(r.to_owned());
        }
        if acknowledged.len() >= 300 && !killed {
            child.kill().unwrap();
            killed = true;
        }
    }
    child.wait().unwrap();
    assert!(
        killed,
        "writer stopped by itself after {} rows",
        acknowledged.len()
    );

    let db = Db::open(&path, support::schema(40)).unwrap();
    for r in &acknowledged {
        assert!(db.get(VM, r).is_some(), "acknowledged {r} is missing");
    }
    let host = db.get(0, "OpaqueRef:host").unwrap();
    let xapi_rpc::Value::Array(members) = &host[2] else {
        panic!("VMs is not a set");
    };
    assert!(members.len() >= acknowledged.len());
    // One host insert, then two changed objects (VM and host) per acknowledged write.
    assert!(db.generation() > 2 * acknowledged.len() as u64);
    // The file is usable after the crash.
    db.write(|txn| txn.touch(0, "OpaqueRef:host")).unwrap();
}
