//! Host plugins (`host.call_plugin`): finding an executable in the plugins directory, running it
//! with upstream's XML-RPC-on-argv / methodResponse-on-stdout protocol under a timeout, and
//! mapping its outcome to the API result or upstream's errors (WIRE.md §14). Also owns the
//! Python helper modules (`XenAPI`, `XenAPIPlugin`) built into the daemon and put on plugins'
//! `PYTHONPATH`, and `VM.call_plugin`: upstream's one built-in VM plugin, its argument checks
//! and its per-VM rate limit.
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use xapi_idl::{errors, ApiError, ApiResult};
use xapi_rpc::{xmlrpc, Call, Limits, Response, Value};

use crate::config::Config;
use crate::dispatch::Ctx;

/// `PATH` for plugins, as upstream's forkexecd gives them.
const PLUGIN_PATH: &str = "/sbin:/usr/sbin:/bin:/usr/bin";

/// The helper modules shipped with the daemon (also packaged as `xapi-plugins-python`).
const HELPERS: [(&str, &str); 2] = [
    (
        "XenAPI.py",
        include_str!("../../packaging/python/XenAPI.py"),
    ),
    (
        "XenAPIPlugin.py",
        include_str!("../../packaging/python/XenAPIPlugin.py"),
    ),
];

/// Largest plugin output kept (stdout and stderr each); the rest is discarded.
const MAX_OUTPUT: u64 = 16 << 20;

static HTTP_ADDRESS: OnceLock<String> = OnceLock::new();

/// Records the bound plain-HTTP address so plugins can reach the daemon over TCP
/// (`XAPI_HTTP`); called once by `run` after the listener is up.
pub fn set_http_address(addr: std::net::SocketAddr) {
    let _ = HTTP_ADDRESS.set(format!("http://{addr}"));
}

/// How a finished plugin process ended.
#[derive(Debug)]
struct Outcome {
    stdout: String,
    stderr: String,
    end: End,
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Exited(i32),
    Signalled(i32),
    TimedOut,
}

/// Runs `plugin`'s function `fn_name` with `args` on behalf of `session` and returns its result.
pub fn call(
    config: &Config,
    session: &str,
    plugin: &str,
    fn_name: &str,
    args: &BTreeMap<String, String>,
) -> ApiResult<String> {
    let path = find(&config.plugins_dir, plugin)?;
    let argument = method_call(session, fn_name, args);
    let python_path = helper_path(config);
    let mut cmd = Command::new(&path);
    cmd.arg(argument)
        .env_clear()
        .env("PATH", PLUGIN_PATH)
        .env("PYTHONPATH", &python_path)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(socket) = &config.socket {
        cmd.env("XAPI_SOCKET", socket);
    }
    if let Some(http) = HTTP_ADDRESS.get() {
        cmd.env("XAPI_HTTP", http);
    }
    tracing::info!(plugin, function = fn_name, "calling host plugin");
    let outcome = run(cmd, config.plugin_timeout).map_err(|e| {
        plugin_failure(
            "failed to start plugin",
            &e.to_string(),
            &path.display().to_string(),
        )
    })?;
    interpret(outcome, config.plugin_timeout)
}

/// `<dir>/<name>` when `name` is a plain file name present in `dir`, else `XENAPI_MISSING_PLUGIN`.
fn find(dir: &Path, name: &str) -> ApiResult<PathBuf> {
    let missing = || errors::xenapi_missing_plugin(name);
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(missing());
    }
    let path = dir.join(name);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(path),
        _ => Err(missing()),
    }
}

/// The one argument a plugin gets: `fn_name(session, {args})` as an XML-RPC `methodCall`.
fn method_call(session: &str, fn_name: &str, args: &BTreeMap<String, String>) -> String {
    let members = args
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let call = Call::new(
        fn_name,
        vec![Value::String(session.to_owned()), Value::Struct(members)],
    );
    let mut out = Vec::new();
    xmlrpc::encode_call(&call, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The `PYTHONPATH` for plugins; the default directory is (re)filled with the built-in helpers.
fn helper_path(config: &Config) -> PathBuf {
    let dir = &config.plugin_python_path;
    if *dir == config.state_dir.join("python") {
        if let Err(e) = install_helpers(dir) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot write the plugin helper modules");
        }
    }
    dir.clone()
}

/// Writes the helper modules into `dir` unless they are already there with the same content.
pub fn install_helpers(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in HELPERS {
        let path = dir.join(name);
        if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, &path)?;
        }
    }
    Ok(())
}

/// Spawns `cmd`, collects its output and waits for it, killing its process group on timeout.
fn run(mut cmd: Command, timeout: Duration) -> std::io::Result<Outcome> {
    let mut child = cmd.spawn()?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(MAX_OUTPUT).read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    let end = loop {
        if let Some(status) = child.try_wait()? {
            break match (status.code(), status.signal()) {
                (Some(code), _) => End::Exited(code),
                (None, Some(sig)) => End::Signalled(sig),
                (None, None) => End::Exited(-1),
            };
        }
        if Instant::now() >= deadline {
            kill_group(child.id());
            let _ = child.kill();
            let _ = child.wait();
            break End::TimedOut;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    if end != End::TimedOut {
        // Children left behind in the group would keep the pipes open; end them too.
        kill_group(child.id());
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(Outcome {
        stdout,
        stderr,
        end,
    })
}

/// Sends SIGKILL to the process group led by `pid` (the plugin was made a group leader).
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Maps a finished plugin run to the API result (upstream's codes and parameter order).
fn interpret(outcome: Outcome, timeout: Duration) -> ApiResult<String> {
    let Outcome {
        stdout,
        stderr,
        end,
    } = outcome;
    match end {
        End::Exited(0) => {}
        End::Exited(_) => return Err(plugin_failure("non-zero exit", &stdout, &stderr)),
        End::Signalled(sig) => {
            return Err(plugin_failure(
                &format!("signal: {}", signal_name(sig)),
                &stdout,
                &stderr,
            ))
        }
        End::TimedOut => {
            return Err(plugin_failure(
                &format!("timeout after {:.1} seconds", timeout.as_secs_f64()),
                &stdout,
                &stderr,
            ))
        }
    }
    match xmlrpc::decode_response(stdout.as_bytes(), &Limits::default()) {
        Ok(Response::Success(Value::String(s))) => Ok(s),
        Ok(Response::Success(_)) => Err(ApiError::new(
            errors::XENAPI_PLUGIN_FAILURE,
            vec!["unexpected XMLRPC result".into(), stdout],
        )),
        Ok(Response::Failure(mut description)) => {
            if description.is_empty() {
                return Err(ApiError::new(
                    errors::XENAPI_PLUGIN_FAILURE,
                    vec!["unexpected XMLRPC result".into(), stdout],
                ));
            }
            let code = description.remove(0);
            Err(ApiError::new(&code, description))
        }
        Ok(Response::Fault { code, message }) => Err(ApiError::new(
            errors::XENAPI_PLUGIN_FAILURE,
            vec!["fault".into(), code.to_string(), message],
        )),
        Err(e) => Err(plugin_failure(
            "failed to parse plugin output",
            &stdout,
            &e.to_string(),
        )),
    }
}

fn plugin_failure(status: &str, stdout: &str, stderr: &str) -> ApiError {
    errors::xenapi_plugin_failure(status, stdout, stderr)
}

fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return format!("SIG{sig}"),
    };
    name.to_owned()
}

/// The one plugin `VM.call_plugin` knows; as upstream, it is built in rather than a file.
pub const GUEST_AGENT_PLUGIN: &str = "guest-agent-operation";

/// Shortest gap between two `VM.call_plugin` calls on one VM (upstream's default).
const VM_CALL_INTERVAL: Duration = Duration::from_secs(10);

/// Longest script `run-script` accepts, in bytes.
const MAX_SCRIPT_LEN: usize = 1024;

/// Pool `other_config` key that must be `true` for `run-script`.
const ALLOW_RUN_SCRIPT: &str = "allow_guest_agent_run_script";

/// When each VM's last `VM.call_plugin` was let through.
static VM_CALLS: Mutex<BTreeMap<String, Instant>> = Mutex::new(BTreeMap::new());

/// `VM.call_plugin`: `fn_name` of the built-in `guest-agent-operation` plugin on `vm`.
///
/// Functions: `request-rdp-on`, `request-rdp-off` and `run-script` (arguments `username`,
/// `password`, `script`; allowed by the pool's `other_config:allow_guest_agent_run_script`).
/// Calls on one VM are at least ten seconds apart (`VM_CALL_PLUGIN_RATE_LIMIT`). Each of these
/// asks the guest agent for something through the VM's control tree, which no backend offers
/// a channel for, so they end as upstream does for a guest without the agent's control
/// feature: `XENAPI_PLUGIN_FAILURE`.
pub fn call_vm(
    ctx: &Ctx,
    vm: &str,
    plugin: &str,
    fn_name: &str,
    args: &BTreeMap<String, String>,
) -> ApiResult<String> {
    crate::vm::read_vm(&ctx.app, vm)?;
    if plugin != GUEST_AGENT_PLUGIN {
        return Err(errors::xenapi_missing_plugin(plugin));
    }
    throttle(&VM_CALLS, vm, Instant::now(), VM_CALL_INTERVAL)?;
    match fn_name {
        "request-rdp-on" | "request-rdp-off" => {}
        "run-script" => check_run_script(ctx, args)?,
        _ => {
            let msg = format!(
                "The requested fn \"{fn_name}\" could not be found in plugin \"{plugin}\"."
            );
            return Err(errors::xenapi_plugin_failure(
                "failed to find fn",
                &msg,
                &msg,
            ));
        }
    }
    let msg = format!(
        "The requested fn \"{fn_name}\" of plugin \"{plugin}\" could not be executed for lack of guest agent control feature."
    );
    Err(errors::xenapi_plugin_failure(
        "failed to execute fn",
        &msg,
        &msg,
    ))
}

/// Lets a call on `vm` through unless the last one was less than `interval` ago; forgets VMs
/// whose last call is older than that.
fn throttle(
    calls: &Mutex<BTreeMap<String, Instant>>,
    vm: &str,
    now: Instant,
    interval: Duration,
) -> ApiResult<()> {
    let mut calls = calls
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    calls.retain(|_, last| now.saturating_duration_since(*last) < interval);
    if let Some(last) = calls.get(vm) {
        let wait = interval.saturating_sub(now.saturating_duration_since(*last));
        return Err(errors::vm_call_plugin_rate_limit(
            vm,
            ocaml_float(interval.as_secs_f64()),
            ocaml_float(wait.as_secs_f64()),
        ));
    }
    calls.insert(vm.to_owned(), now);
    Ok(())
}

/// Seconds as upstream prints them (`10.`, `9.5`): a trailing dot when there is no fraction.
fn ocaml_float(secs: f64) -> String {
    let s = format!("{}", (secs * 1e6).round() / 1e6);
    if s.contains('.') {
        s
    } else {
        format!("{s}.")
    }
}

/// `run-script`'s checks, in upstream's order: the pool allows it, the arguments are there,
/// the caller may do what a VM power admin may (`VM.checkpoint`), the script is short enough.
fn check_run_script(ctx: &Ctx, args: &BTreeMap<String, String>) -> ApiResult<()> {
    let app = &ctx.app;
    let pool = crate::vm::read::<xapi_idl::records::PoolRecord>(app, &app.pool)?;
    if pool.other_config.get(ALLOW_RUN_SCRIPT).map(String::as_str) != Some("true") {
        return Err(errors::feature_restricted());
    }
    for required in ["username", "password", "script"] {
        if !args.contains_key(required) {
            return Err(errors::xenapi_plugin_failure(
                "missing argument",
                "",
                format!("Argument {required} is required."),
            ));
        }
    }
    let allowed = app
        .model
        .message_index("VM.checkpoint")
        .map(|i| app.model.messages[i].roles.as_slice())
        .is_some_and(|roles| ctx.session.as_ref().is_some_and(|s| s.may_call(roles)));
    if !allowed {
        return Err(errors::rbac_permission_denied(
            "vm.call_plugin",
            "No permission to run script, must have VM power admin role or higher.",
        ));
    }
    if args.get("script").map_or(0, String::len) > MAX_SCRIPT_LEN {
        return Err(errors::xenapi_plugin_failure(
            "length restriction",
            "",
            format!("The script length must not exceed {MAX_SCRIPT_LEN} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(stdout: &str, end: End) -> Outcome {
        Outcome {
            stdout: stdout.to_owned(),
            stderr: "err".to_owned(),
            end,
        }
    }

    fn response(value: &Value) -> String {
        let mut out = Vec::new();
        xmlrpc::encode_success(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn names_with_paths_are_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("echo"), "").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(find(dir.path(), "echo").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "../echo",
            "sub",
            "sub/../echo",
            "/bin/sh",
            "nope",
        ] {
            let e = find(dir.path(), bad).unwrap_err();
            assert_eq!(e.code, errors::XENAPI_MISSING_PLUGIN, "{bad}");
            assert_eq!(e.params, vec![bad.to_owned()]);
        }
    }

    #[test]
    fn the_argument_is_a_method_call_with_session_and_args() {
        let mut args = BTreeMap::new();
        args.insert("k".to_owned(), "v<&>".to_owned());
        let text = method_call("OpaqueRef:s", "main", &args);
        let call = xmlrpc::decode_call(text.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(call.method, "main");
        assert_eq!(
            call.params,
            vec![
                Value::String("OpaqueRef:s".into()),
                Value::Struct(vec![("k".into(), Value::String("v<&>".into()))])
            ]
        );
    }

    #[test]
    fn outcomes_map_to_upstream_errors() {
        let ok = response(&Value::String("hello".into()));
        let t = Duration::from_secs(1);
        assert_eq!(interpret(outcome(&ok, End::Exited(0)), t).unwrap(), "hello");
        let e = interpret(outcome(&ok, End::Exited(3)), t).unwrap_err();
        assert_eq!(e.code, errors::XENAPI_PLUGIN_FAILURE);
        assert_eq!(
            e.params,
            vec!["non-zero exit".to_owned(), ok.clone(), "err".into()]
        );
        let e = interpret(outcome("", End::Signalled(9)), t).unwrap_err();
        assert_eq!(e.params[0], "signal: SIGKILL");
        let e = interpret(outcome("", End::TimedOut), t).unwrap_err();
        assert!(e.params[0].starts_with("timeout"), "{:?}", e.params);
        let e = interpret(outcome("garbage", End::Exited(0)), t).unwrap_err();
        assert_eq!(e.params[0], "failed to parse plugin output");
        assert_eq!(e.params[1], "garbage");
        let mut failure = Vec::new();
        xmlrpc::encode_failure("MY_CODE", &["p".to_owned()], &mut failure);
        let failure = String::from_utf8(failure).unwrap();
        let e = interpret(outcome(&ok, End::Exited(0)), t);
        assert!(e.is_ok());
        let not_string = response(&Value::Array(vec![]));
        let e = interpret(outcome(&not_string, End::Exited(0)), t).unwrap_err();
        assert_eq!(e.params[0], "unexpected XMLRPC result");
        let e = interpret(outcome(&failure, End::Exited(0)), t).unwrap_err();
        assert_eq!(e.code, "MY_CODE");
        assert_eq!(e.params, vec!["p".to_owned()]);
    }

    #[test]
    fn helpers_are_installed_once() {
        let dir = tempfile::tempdir().unwrap();
        install_helpers(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("XenAPIPlugin.py")).unwrap();
        assert!(text.contains("def dispatch"));
        install_helpers(dir.path()).unwrap();
        assert!(dir.path().join("XenAPI.py").exists());
    }

    #[test]
    fn vm_calls_are_rate_limited_per_vm() {
        let calls = Mutex::new(BTreeMap::new());
        let t0 = Instant::now();
        let gap = Duration::from_secs(10);
        throttle(&calls, "OpaqueRef:a", t0, gap).unwrap();
        throttle(&calls, "OpaqueRef:b", t0, gap).unwrap();
        let e = throttle(&calls, "OpaqueRef:a", t0 + Duration::from_millis(2500), gap).unwrap_err();
        assert_eq!(e.code, errors::VM_CALL_PLUGIN_RATE_LIMIT);
        assert_eq!(e.params, vec!["OpaqueRef:a", "10.", "7.5"]);
        // Once the interval has passed the VM may call again.
        throttle(&calls, "OpaqueRef:a", t0 + gap, gap).unwrap();
    }

    #[test]
    fn seconds_print_as_upstream_floats() {
        assert_eq!(ocaml_float(10.0), "10.");
        assert_eq!(ocaml_float(0.25), "0.25");
        assert_eq!(ocaml_float(1.0 / 3.0), "0.333333");
    }
}
