//! VM consoles over the wire on the simulated host: a running VM has `console` objects (an
//! HVM guest `rfb` and `vt100`, a PV guest `vt100`) whose location is the host's `/console`
//! URL with the console's uuid; they go when the VM halts and come back, new, when it starts
//! again. `/console` refuses what upstream refuses: methods other than CONNECT, requests
//! without a session, unknown consoles. (Tunnelling to a real VNC server and pty is shown on
//! real Xen by tests/xen/dom0-tests.sh.)
use std::io::{Read, Write};
use std::net::TcpStream;

use xapi_system_tests::fields::{strings, text};
use xapi_system_tests::vms::vm_from_template;
use xapi_system_tests::{s, Api, TestDaemon, Value};

fn new_vm(api: &mut Api, name: &str) -> String {
    vm_from_template(api, "Other install media", name, 256)
}

/// The VM's consoles as (protocol, location, uuid), sorted by protocol.
fn consoles(api: &mut Api, vm: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = strings(api.ok("VM.get_consoles", vec![s(vm)]))
        .into_iter()
        .map(|c| {
            assert_eq!(
                text(api, "console", &c, "VM"),
                vm,
                "console {c} names its VM"
            );
            (
                text(api, "console", &c, "protocol"),
                text(api, "console", &c, "location"),
                text(api, "console", &c, "uuid"),
            )
        })
        .collect();
    out.sort();
    out
}

fn start(api: &mut Api, vm: &str) {
    api.ok(
        "VM.start",
        vec![s(vm), Value::Bool(false), Value::Bool(false)],
    );
}

#[test]
fn running_vms_have_consoles_at_the_hosts_console_url_and_lose_them_when_halted() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let host = strings(api.ok("host.get_all", vec![])).remove(0);
    let address = text(&mut api, "host", &host, "address");

    let hvm = new_vm(&mut api, "console-hvm");
    assert!(
        consoles(&mut api, &hvm).is_empty(),
        "a halted VM has no console"
    );
    start(&mut api, &hvm);
    let first = consoles(&mut api, &hvm);
    let protocols: Vec<&str> = first.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(
        protocols,
        ["rfb", "vt100"],
        "an HVM guest: VNC and a text console"
    );
    for (_, location, uuid) in &first {
        assert_eq!(location, &format!("https://{address}/console?uuid={uuid}"));
    }
    let refs = strings(api.ok("VM.get_consoles", vec![s(&hvm)]));
    api.ok("VM.pause", vec![s(&hvm)]);
    assert_eq!(
        consoles(&mut api, &hvm),
        first,
        "a paused domain keeps its consoles"
    );
    api.ok("VM.unpause", vec![s(&hvm)]);

    api.ok("VM.hard_shutdown", vec![s(&hvm)]);
    assert!(
        consoles(&mut api, &hvm).is_empty(),
        "consoles go with the domain"
    );
    for r in &refs {
        let e = api.err("console.get_record", vec![s(r)]);
        assert_eq!(e[0], "HANDLE_INVALID", "console {r} destroyed");
    }
    start(&mut api, &hvm);
    let again = consoles(&mut api, &hvm);
    assert_eq!(again.len(), 2);
    assert!(
        again.iter().all(|c| !first.contains(c)),
        "a new domain gets new console objects"
    );

    let pv = new_vm(&mut api, "console-pv");
    api.ok("VM.set_HVM_boot_policy", vec![s(&pv), s("")]);
    api.ok("VM.set_domain_type", vec![s(&pv), s("pv")]);
    api.ok("VM.set_PV_kernel", vec![s(&pv), s("/boot/vmlinuz")]);
    start(&mut api, &pv);
    let protocols: Vec<String> = consoles(&mut api, &pv).into_iter().map(|c| c.0).collect();
    assert_eq!(protocols, ["vt100"], "a PV guest: its text console only");
    api.ok("VM.clean_shutdown", vec![s(&pv)]);
    assert!(consoles(&mut api, &pv).is_empty());
}

/// One request on a fresh connection; the status code of the answer.
fn status(d: &TestDaemon, method: &str, target: &str) -> u16 {
    let mut c = TcpStream::connect(d.http).expect("connect");
    let head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    c.write_all(head.as_bytes()).unwrap();
    let mut reply = [0u8; 64];
    let n = c.read(&mut reply).unwrap();
    let line = String::from_utf8_lossy(&reply[..n]).to_string();
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {line:?}"))
}

#[test]
fn the_console_handler_refuses_what_upstream_refuses() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let vm = new_vm(&mut api, "console-http");
    let vm_uuid = text(&mut api, "VM", &vm, "uuid");
    let session = api.session.clone();

    start(&mut api, &vm);
    let console = consoles(&mut api, &vm).remove(0).2;
    assert_eq!(
        status(
            &d,
            "GET",
            &format!("/console?uuid={console}&session_id={session}")
        ),
        405
    );
    assert_eq!(
        status(&d, "CONNECT", &format!("/console?uuid={console}")),
        401
    );
    assert_eq!(
        status(
            &d,
            "CONNECT",
            &format!("/console?uuid={console}&session_id=OpaqueRef:nope")
        ),
        401
    );
    let unknown = "00000000-0000-0000-0000-000000000000";
    assert_eq!(
        status(
            &d,
            "CONNECT",
            &format!("/console?uuid={unknown}&session_id={session}")
        ),
        404
    );
    api.ok("VM.hard_shutdown", vec![s(&vm)]);
    // A halted VM has no console to pick, by its own uuid or its old console's.
    assert_eq!(
        status(
            &d,
            "CONNECT",
            &format!("/console?uuid={vm_uuid}&session_id={session}")
        ),
        404
    );
    assert_eq!(
        status(
            &d,
            "CONNECT",
            &format!("/console?uuid={console}&session_id={session}")
        ),
        404
    );
}
