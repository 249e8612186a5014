//! Dispatcher behaviour: unknown methods, arity, removed and unimplemented messages, spellings,
//! Async tasks, JSON-RPC envelopes, raw HTTP details.
use xapi_idl::model::{model, MessageKind};
use xapi_idl::Lifecycle;
use xapi_system_tests::{s, Client, TestDaemon, Value};

#[test]
fn unknown_methods_and_wrong_arity() {
    let d = TestDaemon::start();
    let mut api = d.login();
    assert_eq!(
        api.err("VM.frobnicate", vec![]),
        vec!["MESSAGE_METHOD_UNKNOWN", "VM.frobnicate"]
    );
    assert_eq!(
        api.err("VM.get_record", vec![]),
        vec![
            "MESSAGE_PARAMETER_COUNT_MISMATCH",
            "VM.get_record",
            "1",
            "0"
        ]
    );
    assert_eq!(
        api.err("VM.get_record", vec![s("a"), s("b")]),
        vec![
            "MESSAGE_PARAMETER_COUNT_MISMATCH",
            "VM.get_record",
            "1",
            "2"
        ]
    );
}

#[test]
fn not_implemented_comes_before_argument_checks() {
    let d = TestDaemon::start();
    let mut api = d.login();
    assert_eq!(
        api.err("VM.assert_can_migrate", vec![]),
        vec!["NOT_IMPLEMENTED", "VM.assert_can_migrate"]
    );
}

#[test]
fn removed_messages_answer_message_removed() {
    let m = model();
    let removed = m
        .messages
        .iter()
        .find(|x| x.lifecycle == Lifecycle::Removed && x.has_session)
        .expect("a removed message");
    let d = TestDaemon::start();
    let mut api = d.login();
    assert_eq!(api.err(&removed.wire, vec![]), vec!["MESSAGE_REMOVED"]);
}

#[test]
fn bad_session_is_session_invalid() {
    let d = TestDaemon::start();
    let mut c = Client::new(d.http());
    let err = c
        .call("VM.get_all", vec![s("OpaqueRef:forged")])
        .unwrap_err();
    assert_eq!(err, vec!["SESSION_INVALID", "OpaqueRef:forged"]);
}

#[test]
fn underscore_spelling_and_system_methods() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let a = api.ok("VM_get_all", vec![]);
    let b = api.ok("VM.get_all", vec![]);
    assert_eq!(a, b);
    let methods = api.client.call("system.listMethods", vec![]).unwrap();
    assert!(matches!(methods, Value::Array(ref v) if v.contains(&s("VM.start"))));
    let reply = api.client.post("/", "text/xml", b"<?xml version=\"1.0\"?><methodCall><methodName>system.listMethods</methodName><params/></methodCall>").unwrap();
    let body = String::from_utf8(reply.body).unwrap();
    assert!(
        body.contains("<value>VM.start</value>") && !body.contains("Status"),
        "bare array"
    );
    let listed = api.ok("host.list_methods", vec![]);
    assert!(matches!(listed, Value::Array(ref v) if v.contains(&s("event.from"))));
    assert_eq!(
        api.client
            .call("system.isAlive:x", vec![s("hello")])
            .unwrap(),
        s("hello")
    );
}

#[test]
fn async_runs_a_task_and_records_the_xmlrpc_result() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let task = api.string(
        "Async.network.create",
        vec![Value::Struct(vec![("name_label".into(), s("async"))])],
    );
    let mut status = String::new();
    for _ in 0..200 {
        status = api.string("task.get_status", vec![s(&task)]);
        if status != "pending" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(status, "success");
    let result = api.string("task.get_result", vec![s(&task)]);
    assert!(
        result.starts_with("<value>OpaqueRef:") && result.ends_with("</value>"),
        "{result}"
    );
    let err = api.err("Async.VM.get_all", vec![]);
    assert_eq!(
        err,
        vec![
            "Fault",
            "No async mode for this operation (rpc: VM.get_all)"
        ]
    );
}

#[test]
fn json_rpc_v1_and_v2_envelopes() {
    let d = TestDaemon::start();
    let mut c = Client::new(d.http());
    let session = c
        .call_json(
            false,
            "session.login_with_password",
            vec![s("root"), s("test-root-password")],
        )
        .unwrap();
    let session = session.as_str().unwrap().to_owned();
    let err = c
        .call_json(true, "VM.get_record", vec![s(&session), s("OpaqueRef:x")])
        .unwrap_err();
    assert_eq!(err, vec!["HANDLE_INVALID", "VM", "OpaqueRef:x"]);
    let reply = c
        .post(
            "/jsonrpc",
            "application/json",
            format!(
                r#"{{"jsonrpc":"2.0","method":"session.logout","params":["{session}"],"id":12}}"#
            )
            .as_bytes(),
        )
        .unwrap();
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        String::from_utf8(reply.body).unwrap(),
        r#"{"jsonrpc":"2.0","result":"","id":12}"#
    );
    let reply = c
        .post(
            "/jsonrpc",
            "application/json",
            format!(r#"{{"method":"pool.get_all","params":["{session}"],"id":"q"}}"#).as_bytes(),
        )
        .unwrap();
    assert_eq!(
        String::from_utf8(reply.body).unwrap(),
        format!(r#"{{"result":null,"error":["SESSION_INVALID","{session}"],"id":"q"}}"#)
    );
}

#[test]
fn xmlrpc_paths_content_type_compact_body_and_bad_requests() {
    let d = TestDaemon::start();
    let mut c = Client::new(d.http());
    for path in ["/", "/RPC2", "/xmlrpc"] {
        let reply = c.post(path, "text/xml", b"<methodCall><methodName>session.login_with_password</methodName><params><param><value>root</value></param><param><value>test-root-password</value></param></params></methodCall>").unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("text/xml"));
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
        let body = String::from_utf8(reply.body).unwrap();
        assert!(
            body.contains("<member><name>Status</name><value>Success</value></member>"),
            "{body}"
        );
        assert!(
            !body.contains(">\n<") && !body.contains("> <"),
            "compact: {body}"
        );
    }
    let reply = c
        .post("/", "text/xml", b"<methodCall><methodName>")
        .unwrap();
    assert_eq!(reply.status, 500);
}

/// `tests/data/unimplemented.txt` lists every explicit message still answering NOT_IMPLEMENTED;
/// it only ever shrinks. Regenerate with `UPDATE_UNIMPLEMENTED=1`.
#[test]
fn unimplemented_list_matches_reality() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let mut missing = Vec::new();
    for m in &model().messages {
        if !matches!(m.kind, MessageKind::Explicit(_))
            || !m.has_session
            || m.lifecycle == Lifecycle::Removed
        {
            continue;
        }
        match api.call(&m.wire, vec![]) {
            Err(e) if e[0] == "NOT_IMPLEMENTED" => missing.push(m.wire.clone()),
            // An implemented message may have logged this session out: start a fresh one.
            _ => api = d.login(),
        }
    }
    missing.sort();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/unimplemented.txt");
    let text = missing.join("\n") + "\n";
    if std::env::var_os("UPDATE_UNIMPLEMENTED").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path).expect("tests/data/unimplemented.txt");
    assert_eq!(
        text, want,
        "update tests/data/unimplemented.txt (UPDATE_UNIMPLEMENTED=1) after implementing messages"
    );
}
