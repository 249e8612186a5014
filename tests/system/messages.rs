//! `message.*` (alerts, persisted beside the database, reported by `event.from`) and `blob.*`
//! with the HTTP `/blob` handler.
use std::io::{Read, Write};
use std::net::TcpStream;

use xapi_system_tests::{s, Api, TestDaemon, Value};

fn create_message(api: &mut Api, name: &str, obj_uuid: &str) -> String {
    api.string(
        "message.create",
        vec![s(name), Value::Int(3), s("VM"), s(obj_uuid), s("body text")],
    )
}

fn keys(v: &Value) -> Vec<String> {
    match v {
        Value::Struct(m) => m.iter().map(|(k, _)| k.clone()).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn messages_are_created_queried_destroyed_and_kept_across_restarts() {
    let mut d = TestDaemon::start();
    let mut api = d.login();
    let a = create_message(&mut api, "ALARM", "uuid-a");
    let b = create_message(&mut api, "OTHER", "uuid-b");
    let rec = api.ok("message.get_record", vec![s(&a)]);
    assert_eq!(rec.get("name"), Some(&s("ALARM")));
    assert_eq!(rec.get("cls"), Some(&s("VM")));
    assert_eq!(rec.get("obj_uuid"), Some(&s("uuid-a")));
    assert_eq!(rec.get("body"), Some(&s("body text")));
    let uuid = rec
        .get("uuid")
        .and_then(Value::as_str)
        .expect("uuid")
        .to_owned();
    assert_eq!(api.ok("message.get_by_uuid", vec![s(&uuid)]), s(&a));
    let all = api.ok("message.get_all", vec![]);
    assert_eq!(all, Value::Array(vec![s(&a), s(&b)]));
    let for_a = api.ok(
        "message.get",
        vec![s("VM"), s("uuid-a"), s("19700101T00:00:00Z")],
    );
    assert_eq!(keys(&for_a), vec![a.clone()]);
    let since = api.ok("message.get_since", vec![s("19700101T00:00:00Z")]);
    assert_eq!(keys(&since).len(), 2);
    let future = api.ok("message.get_since", vec![s("30000101T00:00:00Z")]);
    assert!(keys(&future).is_empty());
    let filtered = api.ok(
        "message.get_all_records_where",
        vec![s(r#"field "name"="OTHER""#)],
    );
    assert_eq!(keys(&filtered), vec![b.clone()]);

    d.restart();
    let mut api = Api {
        client: d.client(d.http()),
        session: api.session.clone(),
    };
    assert_eq!(
        api.ok("message.get_record", vec![s(&b)]).get("name"),
        Some(&s("OTHER"))
    );
    api.ok("message.destroy", vec![s(&a)]);
    assert_eq!(
        api.err("message.get_record", vec![s(&a)]),
        vec!["HANDLE_INVALID", "message", a.as_str()]
    );
    assert_eq!(api.ok("message.get_all", vec![]), Value::Array(vec![s(&b)]));
}

#[test]
fn message_changes_are_events() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let start = api.ok(
        "event.from",
        vec![Value::Array(vec![s("message")]), s(""), Value::Double(0.0)],
    );
    let token = start
        .get("token")
        .and_then(Value::as_str)
        .expect("token")
        .to_owned();
    let m = create_message(&mut api, "HELLO", "u");
    let batch = api.ok(
        "event.from",
        vec![
            Value::Array(vec![s("message")]),
            s(&token),
            Value::Double(5.0),
        ],
    );
    let Some(Value::Array(evs)) = batch.get("events") else {
        panic!("{batch:?}");
    };
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].get("class"), Some(&s("message")));
    assert_eq!(evs[0].get("operation"), Some(&s("add")));
    assert_eq!(evs[0].get("ref"), Some(&s(&m)));
    assert_eq!(evs[0].get("id"), Some(&s("0")));
    assert_eq!(
        evs[0].get("snapshot").and_then(|x| x.get("name")),
        Some(&s("HELLO"))
    );
    let token = batch
        .get("token")
        .and_then(Value::as_str)
        .expect("token")
        .to_owned();
    api.ok("message.destroy", vec![s(&m)]);
    let batch = api.ok(
        "event.from",
        vec![
            Value::Array(vec![s("message")]),
            s(&token),
            Value::Double(5.0),
        ],
    );
    let Some(Value::Array(evs)) = batch.get("events") else {
        panic!("{batch:?}");
    };
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].get("operation"), Some(&s("del")));
}

/// A raw HTTP request; returns (status, body).
fn http(d: &TestDaemon, method: &str, target: &str, extra: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut c = TcpStream::connect(d.http).expect("connect");
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).expect("send");
    c.write_all(body).expect("send body");
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).expect("reply");
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers");
    let status = String::from_utf8_lossy(&reply[..end])
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .expect("status");
    (status, reply[end + 4..].to_vec())
}

#[test]
fn blobs_are_written_and_read_over_http() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let blob = api.string("blob.create", vec![s("text/plain"), Value::Bool(false)]);
    let data = b"hello blob \x00\x01\x02";
    let put = format!("/blob?ref={blob}&session_id={}", api.session);
    assert_eq!(http(&d, "PUT", &put, "", data).0, 200);
    let rec = api.ok("blob.get_record", vec![s(&blob)]);
    let size = match rec.get("size") {
        Some(Value::Int(i)) => *i,
        Some(Value::String(t)) => t.parse().expect("size"),
        other => panic!("{other:?}"),
    };
    assert_eq!(size, data.len() as i64);
    let (status, body) = http(&d, "GET", &put, "", b"");
    assert_eq!(status, 200);
    assert_eq!(body, data);
    // By uuid, authenticated with a cookie.
    let uuid = rec
        .get("uuid")
        .and_then(Value::as_str)
        .expect("uuid")
        .to_owned();
    let cookie = format!("Cookie: session_id={}\r\n", api.session);
    let (status, body) = http(&d, "GET", &format!("/blob?uuid={uuid}"), &cookie, b"");
    assert_eq!((status, body.as_slice()), (200, &data[..]));
    // A private blob needs credentials.
    assert_eq!(
        http(&d, "GET", &format!("/blob?ref={blob}"), "", b"").0,
        401
    );
    assert_eq!(
        http(&d, "PUT", &format!("/blob?ref={blob}"), "", b"x").0,
        401
    );
    api.ok("blob.set_public", vec![s(&blob), Value::Bool(true)]);
    let (status, body) = http(&d, "GET", &format!("/blob?ref={blob}"), "", b"");
    assert_eq!(
        (status, body.as_slice()),
        (200, &data[..]),
        "public blobs need no auth"
    );
    assert_eq!(
        http(&d, "PUT", &format!("/blob?ref={blob}"), "", b"x").0,
        401,
        "writing still does"
    );
    let file = d.state_dir().join("blobs").join(&uuid);
    assert_eq!(std::fs::read(&file).expect("blob file"), data);
    api.ok("blob.destroy", vec![s(&blob)]);
    assert!(!file.exists(), "destroy removes the data");
    assert_eq!(http(&d, "GET", &put, "", b"").0, 404);
}
