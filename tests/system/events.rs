//! `event.from`, `event.inject`, `event.get_current_id` and the legacy `register`/`next`:
//! wake-ups, snapshots, deletions, timeouts, tokens across restarts, many idle waiters.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use xapi_rpc::{xmlrpc, Call};
use xapi_system_tests::{s, Api, TestDaemon, Value};

fn strings(v: &[&str]) -> Value {
    Value::Array(v.iter().map(|x| s(x)).collect())
}

fn event_from(api: &mut Api, classes: &[&str], token: &str, timeout: f64) -> Value {
    api.ok(
        "event.from",
        vec![strings(classes), s(token), Value::Double(timeout)],
    )
}

fn events(batch: &Value) -> Vec<Value> {
    match batch.get("events") {
        Some(Value::Array(e)) => e.clone(),
        other => panic!("no events in {other:?}"),
    }
}

fn token(batch: &Value) -> String {
    batch
        .get("token")
        .and_then(Value::as_str)
        .expect("token")
        .to_owned()
}

fn field<'a>(ev: &'a Value, name: &str) -> &'a str {
    ev.get(name).and_then(Value::as_str).unwrap_or_default()
}

fn new_network(api: &mut Api, name: &str) -> String {
    api.string(
        "network.create",
        vec![Value::Struct(vec![("name_label".into(), s(name))])],
    )
}

/// Another connection on the same session.
fn same_session(d: &TestDaemon, api: &Api) -> Api {
    Api {
        client: d.client(d.http()),
        session: api.session.clone(),
    }
}

fn count_of(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::String(t) => t.parse().expect("decimal count"),
        other => panic!("count {other:?}"),
    }
}

#[test]
fn a_blocked_watcher_sees_a_field_change_in_one_round() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let net = new_network(&mut api, "before");
    let start = event_from(&mut api, &["network"], "", 0.0);
    let t = token(&start);
    let mut watcher = same_session(&d, &api);
    let waiting = std::thread::spawn(move || {
        let began = Instant::now();
        let batch = event_from(&mut watcher, &["network"], &t, 30.0);
        (batch, began.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    api.ok("network.set_name_label", vec![s(&net), s("after")]);
    let (batch, waited) = waiting.join().expect("watcher");
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
    let evs = events(&batch);
    assert_eq!(evs.len(), 1, "{evs:?}");
    let ev = &evs[0];
    assert_eq!(field(ev, "class"), "network");
    assert_eq!(field(ev, "operation"), "mod");
    assert_eq!(field(ev, "ref"), net);
    assert_eq!(field(ev, "timestamp"), "0.0");
    assert!(
        field(ev, "id").parse::<u64>().is_ok(),
        "id is a decimal string"
    );
    assert_eq!(
        ev.get("snapshot").and_then(|x| x.get("name_label")),
        Some(&s("after"))
    );
    assert!(token(&batch) > token(&start), "the token moves on");
}

#[test]
fn an_empty_token_reports_every_object_as_add() {
    let d = TestDaemon::start();
    let mut api = d.login();
    new_network(&mut api, "n1");
    let batch = event_from(&mut api, &["*"], "", 0.0);
    let evs = events(&batch);
    assert!(evs.iter().all(|e| field(e, "operation") == "add"));
    let Some(Value::Struct(counts)) = batch.get("valid_ref_counts") else {
        panic!("valid_ref_counts missing: {batch:?}");
    };
    let total: i64 = counts.iter().map(|(_, v)| count_of(v)).sum();
    assert_eq!(evs.len() as i64, total, "one add per existing object");
    let networks = match api.ok("network.get_all", vec![]) {
        Value::Array(v) => v.len(),
        other => panic!("{other:?}"),
    };
    let reported = evs
        .iter()
        .filter(|e| field(e, "class") == "network")
        .count();
    assert_eq!(reported, networks);
    assert!(evs
        .iter()
        .any(|e| field(e, "class") == "host" && e.get("snapshot").is_some()));
}

#[test]
fn deletions_are_del_events_with_the_last_snapshot() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let net = new_network(&mut api, "doomed");
    let t = token(&event_from(&mut api, &["network"], "", 0.0));
    api.ok("network.destroy", vec![s(&net)]);
    let evs = events(&event_from(&mut api, &["network"], &t, 5.0));
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(field(&evs[0], "operation"), "del");
    assert_eq!(field(&evs[0], "ref"), net);
    assert_eq!(
        evs[0].get("snapshot").and_then(|x| x.get("name_label")),
        Some(&s("doomed"))
    );
}

#[test]
fn an_object_subscription_sees_only_its_object() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let a = new_network(&mut api, "a");
    let b = new_network(&mut api, "b");
    let t = token(&event_from(&mut api, &["*"], "", 0.0));
    api.ok("network.set_name_label", vec![s(&b), s("b2")]);
    api.ok("network.set_name_label", vec![s(&a), s("a2")]);
    let sub = format!("network/{a}");
    let evs = events(&event_from(&mut api, &[&sub], &t, 5.0));
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(field(&evs[0], "ref"), a);
}

#[test]
fn a_timeout_returns_no_events_and_a_fresh_token_on_time() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let t = token(&event_from(&mut api, &["VM"], "", 0.0));
    // A change the subscription does not cover still moves the token on.
    new_network(&mut api, "unwatched");
    let began = Instant::now();
    let batch = event_from(&mut api, &["VM"], &t, 0.5);
    let took = began.elapsed();
    assert!(events(&batch).is_empty(), "{batch:?}");
    assert!(
        took >= Duration::from_millis(400) && took <= Duration::from_millis(600),
        "returned after {took:?}"
    );
    assert!(token(&batch) > t, "fresh token");
    // Starting from the returned token, the unwatched change is not reported later.
    let again = event_from(&mut api, &["*"], &token(&batch), 0.0);
    assert!(events(&again).is_empty(), "{again:?}");
}

#[test]
fn bad_subscriptions_and_tokens_are_refused() {
    let d = TestDaemon::start();
    let mut api = d.login();
    assert_eq!(
        api.err(
            "event.from",
            vec![strings(&["vm/a/b"]), s(""), Value::Double(0.0)]
        ),
        vec!["EVENT_SUBSCRIPTION_PARSE_FAILURE", "vm/a/b"]
    );
    assert_eq!(
        api.err(
            "event.from",
            vec![strings(&["*"]), s("garbage"), Value::Double(0.0)]
        ),
        vec!["EVENT_FROM_TOKEN_PARSE_FAILURE", "garbage"]
    );
}

#[test]
fn tokens_survive_a_restart() {
    let mut d = TestDaemon::start();
    let mut api = d.login();
    let before = new_network(&mut api, "before");
    let t = token(&event_from(&mut api, &["network"], "", 0.0));
    d.restart();
    let mut api = Api {
        client: d.client(d.http()),
        session: api.session.clone(),
    };
    let after = new_network(&mut api, "after");
    let evs = events(&event_from(&mut api, &["network"], &t, 5.0));
    let refs: Vec<&str> = evs.iter().map(|e| field(e, "ref")).collect();
    assert_eq!(
        refs,
        vec![after.as_str()],
        "only the change after the token"
    );
    assert!(!refs.contains(&before.as_str()));
    // A token from a future this database never reached cannot continue.
    let future = format!("{:020},{:020}", u64::MAX / 2, 0);
    assert_eq!(
        api.err(
            "event.from",
            vec![strings(&["*"]), s(&future), Value::Double(0.0)]
        ),
        vec!["EVENTS_LOST"]
    );
}

#[test]
fn logout_wakes_a_waiter_with_session_invalid() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let t = token(&event_from(&mut api, &["VM"], "", 0.0));
    let mut watcher = same_session(&d, &api);
    let waiting = std::thread::spawn(move || {
        let began = Instant::now();
        let r = watcher.call(
            "event.from",
            vec![strings(&["VM"]), s(&t), Value::Double(30.0)],
        );
        (r, began.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    api.ok("session.logout", vec![]);
    let (result, waited) = waiting.join().expect("watcher");
    assert_eq!(result.unwrap_err()[0], "SESSION_INVALID");
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
}

#[test]
fn inject_returns_a_token_just_before_its_change() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let net = new_network(&mut api, "touched");
    let id = api.ok("event.get_current_id", vec![]);
    let t = api.string("event.inject", vec![s("network"), s(&net)]);
    let evs = events(&event_from(&mut api, &["network"], &t, 5.0));
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(field(&evs[0], "operation"), "mod");
    assert_eq!(field(&evs[0], "ref"), net);
    let now = api.ok("event.get_current_id", vec![]);
    assert!(count_of(&now) > count_of(&id));
    assert_eq!(
        api.err("event.inject", vec![s("network"), s("OpaqueRef:nope")]),
        vec!["HANDLE_INVALID", "network", "OpaqueRef:nope"]
    );
}

#[test]
fn legacy_register_and_next() {
    let d = TestDaemon::start();
    let mut api = d.login();
    assert_eq!(
        api.err("event.next", vec![]),
        vec!["SESSION_NOT_REGISTERED", api.session.as_str()]
    );
    api.ok("event.register", vec![strings(&["network"])]);
    let net = new_network(&mut api, "seen");
    let evs = match api.ok("event.next", vec![]) {
        Value::Array(v) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(field(&evs[0], "operation"), "add");
    assert_eq!(field(&evs[0], "ref"), net);
    assert!(field(&evs[0], "timestamp").ends_with('.'));
    // More changed objects than the bounded queue holds: the events are lost.
    for _ in 0..1030 {
        new_network(&mut api, "filler");
    }
    assert_eq!(api.err("event.next", vec![]), vec!["EVENTS_LOST"]);
    assert_eq!(api.err("event.next", vec![])[0], "SESSION_NOT_REGISTERED");
}

/// Finds the daemon's pid by its state directory on the command line.
fn daemon_pid(d: &TestDaemon) -> u32 {
    let needle = d.state_dir().to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let entry = entry.expect("entry");
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.contains(&needle) && args.iter().any(|a| a.ends_with("xapi")) {
            return pid;
        }
    }
    panic!("daemon process not found");
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|x| x.starts_with("Max open files"))
                .and_then(|x| x.split_whitespace().nth(3).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn raw_request(session: &str, token: &str) -> Vec<u8> {
    let mut body = Vec::new();
    xmlrpc::encode_call(
        &Call::new(
            "event.from",
            vec![
                s(session),
                strings(&["network"]),
                s(token),
                Value::Double(60.0),
            ],
        ),
        &mut body,
    );
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    req
}

/// Reads one HTTP response and returns its body.
fn read_http_body(w: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(end) = got.windows(4).position(|x| x == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            if got.len() >= end + 4 + len {
                return got[end + 4..end + 4 + len].to_vec();
            }
        }
        let k = w.read(&mut buf).expect("reply");
        assert!(k > 0, "connection closed early");
        got.extend_from_slice(&buf[..k]);
    }
}

#[test]
fn a_thousand_idle_waiters_cost_no_cpu_and_all_wake_on_one_change() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let net = new_network(&mut api, "watched");
    let t = token(&event_from(&mut api, &["network"], "", 0.0));
    // Two descriptors per waiter across this process and the daemon's share of the limit.
    let n = 1000.min(open_files_limit().saturating_sub(200));
    let req = raw_request(&api.session, &t);
    let mut waiters: Vec<TcpStream> = (0..n)
        .map(|_| {
            let mut c = TcpStream::connect(d.http).expect("connect");
            c.write_all(&req).expect("send");
            c
        })
        .collect();
    // Let every request reach its wait, then measure a quiet second.
    std::thread::sleep(Duration::from_millis(1500));
    let pid = daemon_pid(&d);
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let idle = cpu_ticks(pid) - before;
    assert!(
        idle <= 5,
        "{n} idle waiters used {idle} ticks in a quiet second"
    );
    let changed = Instant::now();
    api.ok("network.set_name_label", vec![s(&net), s("changed")]);
    for w in &mut waiters {
        w.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let got = read_http_body(w);
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains(&net) && text.contains("changed"), "{text}");
    }
    assert!(
        changed.elapsed() < Duration::from_secs(10),
        "{n} waiters took {:?}",
        changed.elapsed()
    );
}

#[test]
fn creating_a_vif_is_also_a_change_of_its_vm() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let net = new_network(&mut api, "vif-net");
    let Value::Array(vms) = api.ok("VM.get_all", vec![]) else {
        panic!()
    };
    let vm = vms[0].as_str().expect("ref").to_owned();
    let t = token(&event_from(&mut api, &["vm"], "", 0.0));
    let vif = api.string(
        "VIF.create",
        vec![Value::Struct(vec![
            ("device".into(), s("7")),
            ("network".into(), s(&net)),
            ("VM".into(), s(&vm)),
        ])],
    );
    let batch = event_from(&mut api, &["vm"], &t, 5.0);
    let evs = events(&batch);
    let ev = evs
        .iter()
        .find(|e| field(e, "ref") == vm)
        .unwrap_or_else(|| panic!("no VM event in {evs:?}"));
    assert_eq!(field(ev, "operation"), "mod");
    let vifs = ev.get("snapshot").and_then(|x| x.get("VIFs"));
    assert!(
        matches!(vifs, Some(Value::Array(v)) if v.contains(&s(&vif))),
        "snapshot lists the new VIF: {vifs:?}"
    );
}
