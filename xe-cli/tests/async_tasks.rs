//! Power operations run as server tasks, as upstream xe runs them: `xe` against a scripted
//! XML-RPC server on a unix socket that records every method called. The VM start fails inside
//! its task; xe must call `Async.VM.start`, wait for the task, print the task's error the
//! upstream way, and destroy the task.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

use xapi_rpc::{xmlrpc, Limits, Value};

const VM: &str = "OpaqueRef:vm1";
const TASK: &str = "OpaqueRef:task1";

fn vm_record() -> Value {
    Value::Struct(vec![
        (
            "uuid".into(),
            Value::String("11111111-2222-3333-4444-555555555555".into()),
        ),
        ("name_label".into(), Value::String("web01".into())),
        ("is_a_template".into(), Value::Bool(false)),
        ("is_control_domain".into(), Value::Bool(false)),
        ("power_state".into(), Value::String("Running".into())),
    ])
}

/// The scripted answers: the task fails with VM_BAD_POWER_STATE once asked about.
fn answer(method: &str, polls: &mut u32) -> Result<Value, Vec<String>> {
    match method {
        "session.login_with_password" => Ok(Value::String("OpaqueRef:s".into())),
        "VM.get_all_records_where" | "VM.get_all_records" => {
            Ok(Value::Struct(vec![(VM.into(), vm_record())]))
        }
        "VM.get_record" => Ok(vm_record()),
        "Async.VM.start" => Ok(Value::String(TASK.into())),
        "task.get_status" => {
            // Pending the first time, so xe has to wait for the task.
            *polls += 1;
            Ok(Value::String(
                if *polls == 1 { "pending" } else { "failure" }.into(),
            ))
        }
        "task.get_error_info" => Ok(Value::Array(
            ["VM_BAD_POWER_STATE", VM, "halted", "running"]
                .iter()
                .map(|s| Value::String(s.to_string()))
                .collect(),
        )),
        "task.destroy" | "session.logout" => Ok(Value::String(String::new())),
        other => Err(vec!["MESSAGE_METHOD_UNKNOWN".into(), other.into()]),
    }
}

fn serve(listener: UnixListener, calls: Arc<Mutex<Vec<String>>>) {
    let mut polls = 0;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { return };
        let mut reader = BufReader::new(stream);
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            continue;
        }
        let Ok(call) = xmlrpc::decode_call(&body, &Limits::default()) else {
            continue;
        };
        if let Ok(mut seen) = calls.lock() {
            seen.push(call.method.clone());
        }
        let mut out = Vec::new();
        match answer(&call.method, &mut polls) {
            Ok(v) => xmlrpc::encode_success(&v, &mut out),
            Err(e) => xmlrpc::encode_failure(&e[0], &e[1..], &mut out),
        }
        let mut stream = reader.into_inner();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            out.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&out);
    }
}

#[test]
fn vm_start_runs_as_a_task_whose_failure_is_printed_as_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let server_calls = calls.clone();
    std::thread::spawn(move || serve(listener, server_calls));
    let out = Command::new(env!("CARGO_BIN_EXE_xe"))
        .args(["vm-start", "vm=web01"])
        .env("XE_SOCKET", &socket)
        .env("HOME", dir.path())
        .env_remove("XE_EXTRA_ARGS")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let doc: serde_json::Value = serde_json::from_str(include_str!("../data/xe.json")).unwrap();
    let message = doc["errors"]["VM_BAD_POWER_STATE"]["message"]
        .as_str()
        .unwrap();
    assert_eq!(
        err,
        format!(
            "{message}\nvm: 11111111-2222-3333-4444-555555555555 (web01)\nexpected: halted\nactual: running\n"
        )
    );
    let calls = calls.lock().unwrap().clone();
    assert!(calls.contains(&"Async.VM.start".to_owned()), "{calls:?}");
    assert!(!calls.contains(&"VM.start".to_owned()), "{calls:?}");
    let waited = calls.iter().filter(|c| *c == "task.get_status").count();
    assert!(waited >= 2, "xe did not wait for the task: {calls:?}");
    let at = |m: &str| calls.iter().position(|c| c == m).unwrap();
    assert!(at("task.get_error_info") < at("task.destroy"), "{calls:?}");
}
