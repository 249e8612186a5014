//! `xe`: the XenAPI command line. Parses the command line as upstream xe does, connects to the
//! server (unix socket of the local daemon by default, HTTP or HTTPS with `-s`), runs one
//! command from the table and prints its output byte-compatibly with upstream. Exit status is
//! 0 on success and 1 on any error.
mod api;
mod args;
mod check;
mod error;
mod fields;
mod generic;
mod help;
mod install;
mod mapped;
mod ops;
mod printer;
mod route;
mod select;
mod special;
mod table;
mod task;
mod tofu;
mod transfer;
mod transport;

use std::io::Write;
use std::path::PathBuf;

use crate::api::Api;
use crate::args::{ClientOpts, CommandLine};
use crate::error::CliError;
use crate::printer::Printer;
use crate::table::Impl;
use crate::transport::{Connection, Target};

/// Where the local daemon's socket is: `XE_SOCKET`, the installed path, or the embedded
/// default's state directory (`$XDG_STATE_HOME/xapi-rs` or `~/.local/state/xapi-rs`).
fn default_socket() -> PathBuf {
    if let Some(p) = std::env::var_os("XE_SOCKET") {
        return PathBuf::from(p);
    }
    let installed = PathBuf::from("/var/lib/xcp/xapi");
    if installed.exists() {
        return installed;
    }
    let state = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("xapi-rs"),
        None => {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".local/state/xapi-rs")
        }
    };
    state.join("xapi.sock")
}

fn target(opts: &ClientOpts) -> Target {
    match &opts.server {
        Some(host) if opts.nossl => Target::Http {
            host: host.clone(),
            port: opts.port.unwrap_or(80),
        },
        Some(host) => Target::Https {
            host: host.clone(),
            port: opts.port.unwrap_or(443),
            no_verify: opts.no_verify,
        },
        None => Target::Unix(default_socket()),
    }
}

/// Reads a `-pwf` file: username on the first line, password on the second.
fn read_password_file(opts: &mut ClientOpts) -> Result<(), String> {
    let Some(path) = &opts.password_file else {
        return Ok(());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|_| format!("Error opening password file '{}'", path.display()))?;
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(u), Some(p)) => {
            opts.username = Some(u.to_owned());
            opts.password = Some(p.to_owned());
            Ok(())
        }
        _ => Err(
            "Error: password file format: expecting username on the first line, password on the second line"
                .into(),
        ),
    }
}

fn execute(opts: &ClientOpts, cmd: &CommandLine, p: &mut Printer) -> Result<(), CliError> {
    let spec = table::find(&cmd.name).ok_or_else(|| CliError::UnknownCommand(cmd.name.clone()))?;
    for key in &spec.reqd {
        cmd.reqd(key)?;
    }
    check::unknown_params(spec, cmd)?;
    let conn = Connection::new(target(opts));
    let mut api = Api::new(
        conn,
        opts.username.clone().unwrap_or_else(|| "root".into()),
        opts.password.clone().unwrap_or_default(),
    );
    let result = match spec.imp {
        Impl::Explicit => ops::run(&mut api, p, spec, cmd),
        Impl::Generic(g, ci) => generic::run(&mut api, p, g, &fields::cli_classes()[ci], cmd),
    };
    let result = result.map_err(|e| name_error_refs(&mut api, e));
    api.logout();
    result
}

/// As upstream, references in an API error's parameters are printed as `uuid (name-label)`:
/// each `OpaqueRef:` is looked up in the class its parameter is named after (`vm`, `host`...).
fn name_error_refs(api: &mut Api, e: CliError) -> CliError {
    let CliError::Api { code, mut params } = e else {
        return e;
    };
    let names = table::data()
        .errors
        .get(&code)
        .map(|d| d.params.clone())
        .unwrap_or_default();
    for (value, name) in params.iter_mut().zip(names) {
        if !value.starts_with("OpaqueRef:") || value == api::NULL_REF {
            continue;
        }
        let Some(class) = fields::cli_classes()
            .iter()
            .find(|c| c.wire.eq_ignore_ascii_case(&name))
        else {
            continue;
        };
        if let Ok(Some(rec)) = api.record(&class.wire, value) {
            let uuid = api::field_text(&rec, "uuid");
            if uuid.is_empty() {
                continue;
            }
            *value = match rec.get("name_label") {
                Some(_) => format!("{uuid} ({})", api::field_text(&rec, "name_label")),
                None => uuid,
            };
        }
    }
    CliError::Api { code, params }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let rc = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".xe"))
        .and_then(|p| std::fs::read_to_string(p).ok());
    let extra = std::env::var("XE_EXTRA_ARGS").ok();
    let code = run(&argv, rc.as_deref(), extra.as_deref());
    std::process::exit(code);
}

/// Runs one invocation and returns the exit status.
fn run(argv: &[String], rc: Option<&str>, extra: Option<&str>) -> i32 {
    let (mut opts, rest, cmd) = match args::gather(argv, rc, extra)
        .and_then(|(o, rest)| args::parse_command(&rest).map(|c| (o, rest, c)))
    {
        Ok(x) => x,
        Err(e) => return report(Printer::new(false), Err(e)),
    };
    let _ = rest;
    if argv.iter().any(|a| a == "--help" || a == "-help") {
        let mut p = Printer::new(false);
        help::run(
            &mut p,
            &CommandLine {
                name: "help".into(),
                params: Vec::new(),
            },
        );
        return report(p, Ok(()));
    }
    let Some(cmd) = cmd else {
        let mut p = Printer::new(false);
        help::run(
            &mut p,
            &CommandLine {
                name: "help".into(),
                params: Vec::new(),
            },
        );
        let (out, _) = p.finish(true);
        eprint!("{out}");
        return 1;
    };
    if let Err(e) = read_password_file(&mut opts) {
        eprintln!("{e}");
        return 1;
    }
    let mut p = Printer::new(cmd.flag("minimal"));
    if cmd.name == "help" {
        help::run(&mut p, &cmd);
        return report(p, Ok(()));
    }
    let result = execute(&opts, &cmd, &mut p);
    report(p, result)
}

fn report(p: Printer, result: Result<(), CliError>) -> i32 {
    let ok = result.is_ok();
    let (out, err) = p.finish(ok);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(err.as_bytes());
    match result {
        Ok(()) => {
            let _ = stdout.flush();
            0
        }
        Err(e) => {
            let (o, e) = e.render();
            let _ = stdout.write_all(o.as_bytes());
            let _ = stdout.flush();
            let _ = stderr.write_all(e.as_bytes());
            1
        }
    }
}
