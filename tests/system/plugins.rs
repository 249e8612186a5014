//! `host.call_plugin`: Python plugins written against the shipped `XenAPIPlugin` module,
//! failures, exceptions, timeouts, missing and path-traversing names, and a plugin that calls
//! back into the daemon with the session it was given.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use xapi_system_tests::{s, Api, TestDaemon, Value};

/// The interpreter the plugins' `#!` line names (the daemon gives plugins a minimal `PATH`).
fn python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is installed (.ci/run installs it)");
    String::from_utf8(out.stdout)
        .expect("utf-8 path")
        .trim()
        .to_owned()
}

fn write_plugin(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).expect("create plugins dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write plugin");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod plugin");
}

fn python_plugin(dir: &Path, name: &str, body: &str) {
    let text = format!(
        "#!{}\nimport os, sys, time\nimport XenAPI, XenAPIPlugin\n{body}\n",
        python()
    );
    write_plugin(dir, name, &text);
}

const ECHO: &str = r#"
def main(session, args):
    return ";".join("%s=%s" % kv for kv in sorted(args.items()))

def whoami(session, args):
    return session._session

if __name__ == "__main__":
    XenAPIPlugin.dispatch({"main": main, "whoami": whoami})
"#;

const FAILS: &str = r#"
def main(session, args):
    raise XenAPIPlugin.Failure("MY_PLUGIN_ERROR", ["first", args.get("x", "")])

def crash(session, args):
    raise ValueError("bad value " + args.get("x", ""))

if __name__ == "__main__":
    XenAPIPlugin.dispatch({"main": main, "crash": crash})
"#;

const CALLBACK: &str = r#"
def local(session, args):
    host = session.xenapi.host.get_all()[0]
    return session.xenapi.host.get_name_label(host)

def over_http(session, args):
    remote = XenAPI.Session(os.environ["XAPI_HTTP"])
    remote._session = session._session
    pool = remote.xenapi.pool.get_all()[0]
    return remote.xenapi.pool.get_master(pool)

if __name__ == "__main__":
    XenAPIPlugin.dispatch({"local": local, "over_http": over_http})
"#;

fn host(api: &mut Api) -> String {
    match api.ok("host.get_all", vec![]) {
        Value::Array(hosts) => hosts[0].as_str().expect("host ref").to_owned(),
        other => panic!("host.get_all: {other:?}"),
    }
}

fn args(pairs: &[(&str, &str)]) -> Value {
    Value::Struct(pairs.iter().map(|(k, v)| (k.to_string(), s(v))).collect())
}

fn call(
    api: &mut Api,
    host: &str,
    plugin: &str,
    fn_name: &str,
    a: Value,
) -> Result<Value, Vec<String>> {
    api.call("host.call_plugin", vec![s(host), s(plugin), s(fn_name), a])
}

#[test]
fn python_plugins_run_with_upstreams_protocol_and_errors() {
    let d = TestDaemon::start();
    let dir = d.state_dir().join("plugins");
    python_plugin(&dir, "echo", ECHO);
    python_plugin(&dir, "fails", FAILS);
    write_plugin(
        &dir,
        "exits",
        "#!/bin/sh\necho partial output\necho something broke >&2\nexit 3\n",
    );
    write_plugin(&dir, "garbage", "#!/bin/sh\necho this is not XML-RPC\n");
    write_plugin(
        &dir,
        "fault",
        "#!/bin/sh\necho '<?xml version=\"1.0\"?><methodResponse><fault><value><struct><member><name>faultCode</name><value><int>7</int></value></member><member><name>faultString</name><value>no such thing</value></member></struct></value></fault></methodResponse>'\n",
    );
    let mut api = d.login();
    let h = host(&mut api);

    let echoed = call(
        &mut api,
        &h,
        "echo",
        "main",
        args(&[("b", "2"), ("a", "<&>")]),
    )
    .unwrap();
    assert_eq!(echoed, s("a=<&>;b=2"));
    let me = call(&mut api, &h, "echo", "whoami", args(&[])).unwrap();
    assert_eq!(me, s(&api.session), "the plugin gets the caller's session");
    assert_eq!(
        call(&mut api, &h, "echo", "nothing", args(&[])).unwrap_err(),
        vec!["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "nothing"]
    );

    assert_eq!(
        call(&mut api, &h, "fails", "main", args(&[("x", "y")])).unwrap_err(),
        vec!["MY_PLUGIN_ERROR", "first", "y"],
        "a plugin's Failure reaches the caller with its own code"
    );
    assert_eq!(
        call(&mut api, &h, "fails", "crash", args(&[("x", "42")])).unwrap_err(),
        vec![
            "XENAPI_PLUGIN_FAILURE",
            "crash",
            "ValueError",
            "bad value 42"
        ]
    );
    assert_eq!(
        call(&mut api, &h, "exits", "main", args(&[])).unwrap_err(),
        vec![
            "XENAPI_PLUGIN_FAILURE",
            "non-zero exit",
            "partial output\n",
            "something broke\n"
        ]
    );
    let e = call(&mut api, &h, "garbage", "main", args(&[])).unwrap_err();
    assert_eq!(
        e[..3],
        [
            "XENAPI_PLUGIN_FAILURE",
            "failed to parse plugin output",
            "this is not XML-RPC\n"
        ]
    );
    assert_eq!(
        call(&mut api, &h, "fault", "main", args(&[])).unwrap_err(),
        vec!["XENAPI_PLUGIN_FAILURE", "fault", "7", "no such thing"]
    );

    // Async.host.call_plugin runs as a task like every other explicit message.
    let task = api.ok(
        "Async.host.call_plugin",
        vec![s(&h), s("echo"), s("main"), args(&[("k", "v")])],
    );
    let task = task.as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = api.ok("task.get_status", vec![s(&task)]);
        if status != s("pending") {
            assert_eq!(status, s("success"));
            break;
        }
        assert!(Instant::now() < deadline, "task never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
    let result = api.string("task.get_result", vec![s(&task)]);
    assert!(result.contains("k=v"), "{result}");
}

#[test]
fn missing_and_path_traversing_plugins_are_refused() {
    let d = TestDaemon::start();
    let dir = d.state_dir().join("plugins");
    python_plugin(&dir, "echo", ECHO);
    // An executable just outside the plugins directory, and a directory inside it.
    python_plugin(d.state_dir(), "outside", ECHO);
    python_plugin(&dir.join("sub"), "inner", ECHO);
    let mut api = d.login();
    let h = host(&mut api);
    for name in [
        "nope",
        "../outside",
        "sub/inner",
        "sub",
        "..",
        ".",
        "",
        "/bin/true",
        "echo/",
    ] {
        assert_eq!(
            call(&mut api, &h, name, "main", args(&[])).unwrap_err(),
            vec!["XENAPI_MISSING_PLUGIN", name],
            "{name:?}"
        );
    }
    let e = call(&mut api, "OpaqueRef:nonsense", "echo", "main", args(&[])).unwrap_err();
    assert_eq!(e[0], "HANDLE_INVALID");
}

#[test]
fn plugins_call_back_into_the_daemon_with_their_session() {
    let d = TestDaemon::start();
    let dir = d.state_dir().join("plugins");
    python_plugin(&dir, "callback", CALLBACK);
    let mut api = d.login();
    let h = host(&mut api);
    api.ok("host.set_name_label", vec![s(&h), s("plugin-host")]);
    assert_eq!(
        call(&mut api, &h, "callback", "local", args(&[])).unwrap(),
        s("plugin-host"),
        "XenAPI.xapi_local() reaches the daemon over its unix socket"
    );
    assert_eq!(
        call(&mut api, &h, "callback", "over_http", args(&[])).unwrap(),
        s(&h),
        "a XenAPI.Session over http works with the plugin's session"
    );
}

#[test]
fn slow_plugins_are_killed_after_the_configured_timeout() {
    let plugins = tempfile::tempdir().unwrap();
    let marker = plugins.path().join("survivor");
    write_plugin(
        plugins.path(),
        "slow",
        &format!(
            "#!/bin/sh\necho started\n(sleep 4; touch {}) &\nsleep 60\n",
            marker.display()
        ),
    );
    // A shell plugin: it must answer well within the short timeout even on a loaded machine.
    write_plugin(
        plugins.path(),
        "quick",
        "#!/bin/sh\necho '<methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name><value>quick</value></member></struct></value></param></params></methodResponse>'\n",
    );
    let d = TestDaemon::start_with_config(&format!(
        "plugins-dir = {}\nplugin-timeout-ms = 2000\n",
        plugins.path().display()
    ));
    let mut api = d.login();
    let h = host(&mut api);
    assert_eq!(
        call(&mut api, &h, "quick", "main", args(&[])).unwrap(),
        s("quick"),
        "plugins-dir from the config file is used"
    );
    let start = Instant::now();
    let e = call(&mut api, &h, "slow", "main", args(&[])).unwrap_err();
    let took = start.elapsed();
    assert_eq!(e[0], "XENAPI_PLUGIN_FAILURE");
    assert!(e[1].starts_with("timeout"), "{e:?}");
    assert_eq!(e[2], "started\n");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // The whole process group was killed: the background child never finishes.
    std::thread::sleep(Duration::from_millis(3000));
    assert!(!marker.exists(), "the plugin's child survived the timeout");
}

/// The installed `/etc/xapi.conf` is accepted by the daemon (listeners and state directory
/// overridden by the harness's flags), and `Type=notify` readiness reaches `$NOTIFY_SOCKET`.
#[test]
fn packaged_config_starts_and_notifies_systemd() {
    let notify_dir = tempfile::tempdir().unwrap();
    let notify_path = notify_dir.path().join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let conf = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/xapi.conf"),
    )
    .unwrap();
    let conf_dir = tempfile::tempdir().unwrap();
    let conf_path = conf_dir.path().join("xapi.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let d = TestDaemon::start_with(&[
        ("XAPI_TEST_CONFIG", conf_path.to_str().unwrap()),
        ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
    ]);
    let mut buf = [0u8; 64];
    let n = notify.recv(&mut buf).expect("READY=1 datagram");
    assert_eq!(&buf[..n], b"READY=1\n");
    // Over the unix socket root needs no password (PAM is configured for TCP logins).
    let mut api = Api::login(d.client(d.unix()), "root", "").expect("unix socket login");
    let h = host(&mut api);
    // The packaged plugins directory is /etc/xapi.d/plugins, not the state directory's.
    python_plugin(&d.state_dir().join("plugins"), "echo", ECHO);
    if !Path::new("/etc/xapi.d/plugins/echo").exists() {
        assert_eq!(
            call(&mut api, &h, "echo", "main", args(&[])).unwrap_err(),
            vec!["XENAPI_MISSING_PLUGIN", "echo"]
        );
    }
}

fn vm_call(api: &mut Api, vm: &str, plugin: &str, fn_name: &str, a: Value) -> Vec<String> {
    api.call("VM.call_plugin", vec![s(vm), s(plugin), s(fn_name), a])
        .expect_err("no guest agent is reachable: every VM.call_plugin fails")
}

#[test]
fn vm_call_plugin_knows_only_the_guest_agent_plugin_and_rate_limits_each_vm() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let vms: Vec<String> = match api.ok("VM.get_all", vec![]) {
        Value::Array(v) => v
            .iter()
            .map(|r| r.as_str().expect("vm ref").to_owned())
            .collect(),
        other => panic!("VM.get_all: {other:?}"),
    };
    assert!(vms.len() >= 6, "the seeded templates give enough VMs");
    const GA: &str = "guest-agent-operation";
    let lacks = |fn_name: &str| {
        let msg = format!(
            "The requested fn \"{fn_name}\" of plugin \"{GA}\" could not be executed for lack of guest agent control feature."
        );
        vec![
            "XENAPI_PLUGIN_FAILURE".to_owned(),
            "failed to execute fn".into(),
            msg.clone(),
            msg,
        ]
    };

    // Any other plugin is missing, and is refused before the rate limit counts the call.
    assert_eq!(
        vm_call(&mut api, &vms[0], "echo", "main", args(&[])),
        vec!["XENAPI_MISSING_PLUGIN", "echo"]
    );
    assert_eq!(
        vm_call(&mut api, &vms[0], GA, "request-rdp-on", args(&[])),
        lacks("request-rdp-on")
    );
    let limited = vm_call(&mut api, &vms[0], GA, "request-rdp-off", args(&[]));
    assert_eq!(
        limited[..3],
        ["VM_CALL_PLUGIN_RATE_LIMIT", vms[0].as_str(), "10."]
    );
    let wait: f64 = limited[3].parse().expect("seconds to wait");
    assert!(wait > 0.0 && wait <= 10.0, "{wait}");
    // The limit is per VM.
    assert_eq!(
        vm_call(&mut api, &vms[1], GA, "request-rdp-off", args(&[])),
        lacks("request-rdp-off")
    );

    let msg = format!("The requested fn \"frobnicate\" could not be found in plugin \"{GA}\".");
    assert_eq!(
        vm_call(&mut api, &vms[2], GA, "frobnicate", args(&[])),
        vec!["XENAPI_PLUGIN_FAILURE", "failed to find fn", &msg, &msg]
    );

    // run-script: only when the pool allows it, then its arguments and length are checked.
    let script = args(&[("username", "u"), ("password", "p"), ("script", "echo hi")]);
    assert_eq!(
        vm_call(&mut api, &vms[3], GA, "run-script", script.clone()),
        vec!["FEATURE_RESTRICTED"]
    );
    let pool = match api.ok("pool.get_all", vec![]) {
        Value::Array(p) => p[0].as_str().expect("pool ref").to_owned(),
        other => panic!("pool.get_all: {other:?}"),
    };
    api.ok(
        "pool.add_to_other_config",
        vec![s(&pool), s("allow_guest_agent_run_script"), s("true")],
    );
    assert_eq!(
        vm_call(
            &mut api,
            &vms[4],
            GA,
            "run-script",
            args(&[("username", "u"), ("script", "x")])
        ),
        vec![
            "XENAPI_PLUGIN_FAILURE",
            "missing argument",
            "",
            "Argument password is required."
        ]
    );
    let long = "x".repeat(1025);
    assert_eq!(
        vm_call(
            &mut api,
            &vms[5],
            GA,
            "run-script",
            args(&[("username", "u"), ("password", "p"), ("script", &long)])
        ),
        vec![
            "XENAPI_PLUGIN_FAILURE",
            "length restriction",
            "",
            "The script length must not exceed 1024 bytes"
        ]
    );
    if let Some(vm) = vms.get(6) {
        assert_eq!(
            vm_call(&mut api, vm, GA, "run-script", script),
            lacks("run-script")
        );
    }

    let e = vm_call(
        &mut api,
        "OpaqueRef:nonsense",
        GA,
        "request-rdp-on",
        args(&[]),
    );
    assert_eq!(e[0], "HANDLE_INVALID");
}
