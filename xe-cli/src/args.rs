//! Command-line parsing as upstream xe does it: connection options (`-s`, `-p`, `-u`, `-pw`,
//! `-pwf`, `--nossl`, `server=`...) from the command line, `XE_EXTRA_ARGS` and `~/.xe`, then
//! the command name and its `key=value` / `--flag` / `-switch value` parameters.
//! Never opens connections.
use std::path::PathBuf;

use crate::error::CliError;

/// Connection settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientOpts {
    pub server: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub nossl: bool,
    /// Accept any server certificate (tests).
    pub no_verify: bool,
    pub debug: bool,
}

/// A parsed command: its name and parameters in command-line order.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandLine {
    pub name: String,
    pub params: Vec<(String, String)>,
}

impl CommandLine {
    /// The first value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter (`--force`, `force=true`); absent is false.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .and_then(crate::fields::parse_bool)
            .unwrap_or(false)
    }

    /// A required parameter, or upstream's `Required parameter not found`.
    pub fn reqd(&self, key: &str) -> Result<&str, CliError> {
        self.get(key)
            .ok_or_else(|| CliError::ParamNotFound(key.to_owned()))
    }
}

impl ClientOpts {
    /// Applies one `key=value` connection setting; false when the key is not one.
    fn set(&mut self, key: &str, value: &str) -> Result<bool, CliError> {
        match key {
            "server" => self.server = Some(value.to_owned()),
            "port" => {
                let p = value.trim().parse::<u16>().map_err(|_| {
                    CliError::Syntax("Port number must be an integer (0-65535)".into())
                })?;
                self.port = Some(p);
            }
            "username" => self.username = Some(value.to_owned()),
            "password" => self.password = Some(value.to_owned()),
            "passwordfile" => self.password_file = Some(PathBuf::from(value)),
            "nossl" => self.nossl = crate::fields::parse_bool(value).unwrap_or(false),
            "debug" => self.debug = crate::fields::parse_bool(value).unwrap_or(false),
            "debugonfail" | "traceparent" => {}
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Splits `args` (without argv0) into connection settings and the rest.
pub fn split_client_args(opts: &mut ClientOpts, args: &[String]) -> Result<Vec<String>, CliError> {
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let next = args.get(i + 1).map(String::as_str);
        let key = match a {
            "-s" | "-h" => Some("server"),
            "-p" => Some("port"),
            "-u" => Some("username"),
            "-pw" => Some("password"),
            "-pwf" => Some("passwordfile"),
            "--traceparent" => Some("traceparent"),
            _ => None,
        };
        if let (Some(k), Some(v)) = (key, next) {
            opts.set(k, v)?;
            i += 2;
            continue;
        }
        match a {
            "--nossl" => opts.nossl = true,
            "--no-verify" => opts.no_verify = true,
            "--debug" => opts.debug = true,
            "--debug-on-fail" => {}
            _ => {
                let known = match a.split_once('=') {
                    Some((k, v)) => opts.set(k, v)?,
                    None => false,
                };
                if !known {
                    rest.push(a.to_owned());
                }
            }
        }
        i += 1;
    }
    Ok(rest)
}

/// Reads `~/.xe`-style `key=value` lines.
pub fn parse_rc(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Splits `XE_EXTRA_ARGS` at commas not preceded by a backslash.
pub fn split_extra_args(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Upstream's server-side switches: `-x value` becomes `key=value`.
fn switch_key(s: &str) -> Option<&'static str> {
    Some(match s {
        "--force" => "force",
        "--live" => "live",
        "--internal" => "internal",
        "-u" => "username",
        "-pw" => "password",
        "-s" | "-h" => "server",
        "-p" => "port",
        "--debug" => "debug",
        "--minimal" => "minimal",
        "--all" => "all",
        _ => return None,
    })
}

/// Parses the command name and parameters.
pub fn parse_command(rest: &[String]) -> Result<Option<CommandLine>, CliError> {
    let Some(name) = rest.first() else {
        return Ok(None);
    };
    if name.contains('=') {
        return Err(CliError::Syntax("command name is missing".into()));
    }
    let mut params = Vec::new();
    let mut i = 1;
    while i < rest.len() {
        let p = &rest[i];
        if let Some(flag) = p.strip_prefix("--") {
            params.push((flag.to_owned(), "true".to_owned()));
        } else if p.starts_with('-') {
            let key =
                switch_key(p).ok_or_else(|| CliError::Syntax(format!("Unknown switch: {p}")))?;
            let value = rest
                .get(i + 1)
                .ok_or_else(|| CliError::Syntax(format!("Switch {p} requires a parameter")))?;
            params.push((key.to_owned(), value.clone()));
            i += 1;
        } else {
            match p.split_once('=') {
                Some((k, v)) => params.push((k.to_owned(), v.to_owned())),
                None => params.push((p.clone(), String::new())),
            }
        }
        i += 1;
    }
    Ok(Some(CommandLine {
        name: name.clone(),
        params,
    }))
}

/// Applies the sources in upstream's priority order (command line > `XE_EXTRA_ARGS` >
/// `~/.xe`) and returns the settings and the remaining arguments.
pub fn gather(
    argv: &[String],
    rc: Option<&str>,
    extra: Option<&str>,
) -> Result<(ClientOpts, Vec<String>), CliError> {
    let mut opts = ClientOpts::default();
    let mut rest = Vec::new();
    if let Some(text) = rc {
        for (k, v) in parse_rc(text) {
            if !opts.set(&k, &v)? {
                rest.push(format!("{k}={v}"));
            }
        }
    }
    let mut tail = Vec::new();
    if let Some(text) = extra {
        tail = split_client_args(&mut opts, &split_extra_args(text))?;
    }
    let mut main = split_client_args(&mut opts, argv)?;
    // The command name comes first; rc and extra leftovers are appended as parameters.
    main.extend(rest);
    main.extend(tail);
    Ok((opts, main))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn client_switches_are_taken_out_and_the_rest_kept_in_order() {
        let (o, rest) = gather(
            &v(&[
                "vm-list",
                "-s",
                "h1",
                "-p",
                "8080",
                "--nossl",
                "-u",
                "root",
                "-pw",
                "x",
                "params=uuid",
            ]),
            None,
            None,
        )
        .unwrap();
        assert_eq!(o.server.as_deref(), Some("h1"));
        assert_eq!(o.port, Some(8080));
        assert!(o.nossl);
        assert_eq!(o.password.as_deref(), Some("x"));
        assert_eq!(rest, v(&["vm-list", "params=uuid"]));
    }

    #[test]
    fn command_line_wins_over_rc_file() {
        let (o, _) = gather(
            &v(&["host-list", "-s", "a"]),
            Some("server=b\nport=99\n"),
            None,
        )
        .unwrap();
        assert_eq!(o.server.as_deref(), Some("a"));
        assert_eq!(o.port, Some(99));
    }

    #[test]
    fn params_flags_and_switches_parse_like_upstream() {
        let c = parse_command(&v(&["vm-shutdown", "vm=a=b", "--force", "--minimal", "x"]))
            .unwrap()
            .unwrap();
        assert_eq!(c.name, "vm-shutdown");
        assert_eq!(c.get("vm"), Some("a=b"));
        assert!(c.flag("force"));
        assert!(c.flag("minimal"));
        assert_eq!(c.get("x"), Some(""));
    }

    #[test]
    fn unknown_switch_is_a_syntax_error() {
        let e = parse_command(&v(&["vm-list", "-z", "1"])).unwrap_err();
        assert_eq!(e, CliError::Syntax("Unknown switch: -z".into()));
    }

    #[test]
    fn extra_args_split_at_unescaped_commas() {
        assert_eq!(split_extra_args(r"a=1,b=x\,y"), v(&["a=1", "b=x,y"]));
    }
}
