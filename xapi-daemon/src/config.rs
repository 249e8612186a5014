//! The daemon's configuration: command-line flags, the config file, and the embedded default.
//!
//! Precedence: flag > config file (`key = value` lines, as `/etc/xapi.conf`) > built-in default.
//! Never starts anything; `run` reads the resolved `Config`.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

/// Which hypervisor backend to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The in-process simulated Xen host.
    Sim,
    /// Real Xen through libxenlight (needs the `xen` feature and a dom0).
    Xen,
}

/// How `session.login_with_password` checks passwords over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Only `root`, against the argon2 hash in the state directory (the embedded default).
    Local,
    /// Any user, through PAM; non-root users also need a `subject` (as upstream).
    Pam,
}

/// Command-line flags of `xapi`.
#[derive(Debug, Clone, Parser, Default)]
#[command(name = "xapi", version, about = "xapi-rs: a XenAPI toolstack daemon")]
pub struct Args {
    /// Directory for the database, certificates, sockets and secrets.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Plain HTTP listener (`off` to disable).
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<String>,
    /// HTTPS listener (`off` to disable).
    #[arg(long, value_name = "ADDR:PORT")]
    pub https: Option<String>,
    /// Unix socket for the local superuser (`off` to disable).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<String>,
    /// Hypervisor backend.
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Configuration file (`key = value` lines).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub socket: Option<PathBuf>,
    pub backend: Backend,
    /// Root password from `XAPI_ROOT_PASSWORD`; otherwise one is generated on first start.
    pub root_password: Option<String>,
    /// Pause before answering a failed login (upstream waits about 5 s).
    pub auth_failure_delay: Duration,
    /// Sessions idle for longer are destroyed (upstream: 24 h).
    pub session_idle_timeout: Duration,
    /// Largest RPC body accepted.
    pub max_body: usize,
    /// Password checking.
    pub auth: AuthMode,
    /// The PAM service name (`xapi` when installed).
    pub pam_service: String,
    /// Where `host.call_plugin` finds plugins (`plugins-dir`; installed: `/etc/xapi.d/plugins`).
    pub plugins_dir: PathBuf,
    /// How long a plugin may run before its process group is killed (`plugin-timeout-ms`).
    pub plugin_timeout: Duration,
    /// Directory put on plugins' `PYTHONPATH` (`plugin-python-path`); the default
    /// `<state-dir>/python` is filled with the helper modules built into the daemon.
    pub plugin_python_path: PathBuf,
}

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("invalid {key} {value:?}: {message}")]
    Value {
        key: &'static str,
        value: String,
        message: String,
    },
    #[error("no state directory: set --state-dir, XDG_STATE_HOME or HOME")]
    NoStateDir,
}

impl Config {
    /// Resolves flags, the config file and defaults.
    pub fn resolve(args: Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(p) => read_file(p)?,
            None => Vec::new(),
        };
        let get = |key: &str| {
            file.iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let state_dir = match args
            .state_dir
            .clone()
            .or_else(|| get("state-dir").map(PathBuf::from))
        {
            Some(d) => d,
            None => default_state_dir().ok_or(ConfigError::NoStateDir)?,
        };
        let http = listen_addr(
            "http",
            args.http.clone().or_else(|| get("http")),
            "127.0.0.1:8080",
        )?;
        let https = listen_addr(
            "https",
            args.https.clone().or_else(|| get("https")),
            "127.0.0.1:8443",
        )?;
        let socket = match args.socket.clone().or_else(|| get("socket")) {
            Some(s) if s == "off" => None,
            Some(s) => Some(PathBuf::from(s)),
            None => Some(state_dir.join("xapi.sock")),
        };
        let backend = match args.backend {
            Some(b) => b,
            None => match get("backend").as_deref() {
                None | Some("sim") => Backend::Sim,
                Some("xen") => Backend::Xen,
                Some(other) => {
                    return Err(ConfigError::Value {
                        key: "backend",
                        value: other.to_owned(),
                        message: "expected sim or xen".into(),
                    })
                }
            },
        };
        let millis = |key: &'static str, default: u64| -> Result<Duration, ConfigError> {
            let text = std::env::var(format!(
                "XAPI_{}",
                key.to_ascii_uppercase().replace('-', "_")
            ))
            .ok()
            .or_else(|| get(key));
            match text {
                None => Ok(Duration::from_millis(default)),
                Some(t) => t
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|e| ConfigError::Value {
                        key,
                        value: t,
                        message: e.to_string(),
                    }),
            }
        };
        let auth = match get("auth").as_deref() {
            None | Some("local") => AuthMode::Local,
            Some("pam") => AuthMode::Pam,
            Some(other) => {
                return Err(ConfigError::Value {
                    key: "auth",
                    value: other.to_owned(),
                    message: "expected local or pam".into(),
                })
            }
        };
        let plugins_dir = get("plugins-dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| state_dir.join("plugins"));
        let plugin_python_path = get("plugin-python-path")
            .map(PathBuf::from)
            .unwrap_or_else(|| state_dir.join("python"));
        Ok(Config {
            plugins_dir,
            plugin_timeout: millis("plugin-timeout-ms", 300_000)?,
            plugin_python_path,
            auth,
            pam_service: get("pam-service").unwrap_or_else(|| "xapi".to_owned()),
            http,
            https,
            socket,
            backend,
            root_password: std::env::var("XAPI_ROOT_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty()),
            auth_failure_delay: millis("auth-failure-delay-ms", 2_000)?,
            session_idle_timeout: millis("session-idle-timeout-ms", 24 * 3600 * 1000)?,
            max_body: 16 << 20,
            state_dir,
        })
    }
}

/// `$XDG_STATE_HOME/xapi-rs`, else `$HOME/.local/state/xapi-rs`.
fn default_state_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("xapi-rs"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".local/state/xapi-rs"))
}

fn listen_addr(
    key: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    if text == "off" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e: std::net::AddrParseError| ConfigError::Value {
            key,
            value: text.clone(),
            message: e.to_string(),
        })
}

/// Reads `key = value` lines; `#` starts a comment; keys may use `-` or `_`.
fn read_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(ConfigError::Syntax {
                path: path.to_owned(),
                line: i + 1,
                message: "expected key = value".into(),
            });
        };
        out.push((
            k.trim().replace('_', "-"),
            v.trim().trim_matches('"').to_owned(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("xapi.conf");
        std::fs::write(
            &conf,
            "# comment\nhttp = 127.0.0.1:9000\nhttps = off\nstate_dir = /tmp/x\n",
        )
        .unwrap();
        let args = Args {
            config: Some(conf),
            http: Some("127.0.0.1:9001".into()),
            ..Args::default()
        };
        let c = Config::resolve(args).unwrap();
        assert_eq!(c.http, Some("127.0.0.1:9001".parse().unwrap()));
        assert_eq!(c.https, None);
        assert_eq!(c.state_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.socket, Some(PathBuf::from("/tmp/x/xapi.sock")));
        assert_eq!(c.plugins_dir, PathBuf::from("/tmp/x/plugins"));
        assert_eq!(c.plugin_python_path, PathBuf::from("/tmp/x/python"));
    }

    #[test]
    fn plugins_dir_comes_from_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("xapi.conf");
        std::fs::write(
            &conf,
            "state-dir = /tmp/z\nplugins-dir = /etc/xapi.d/plugins\nplugin_timeout_ms = 1500\n",
        )
        .unwrap();
        let c = Config::resolve(Args {
            config: Some(conf),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(c.plugins_dir, PathBuf::from("/etc/xapi.d/plugins"));
        if std::env::var_os("XAPI_PLUGIN_TIMEOUT_MS").is_none() {
            assert_eq!(c.plugin_timeout, Duration::from_millis(1500));
        }
    }

    #[test]
    fn bad_lines_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("xapi.conf");
        std::fs::write(&conf, "http = 127.0.0.1:1\nnonsense\n").unwrap();
        let err = Config::resolve(Args {
            config: Some(conf),
            ..Args::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains(":2:"), "{err}");
    }

    #[test]
    fn bad_address_is_refused() {
        let args = Args {
            state_dir: Some("/tmp/y".into()),
            http: Some("nowhere".into()),
            ..Args::default()
        };
        assert!(matches!(
            Config::resolve(args),
            Err(ConfigError::Value { key: "http", .. })
        ));
    }
}
