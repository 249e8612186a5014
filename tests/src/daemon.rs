//! Starting, restarting and killing the real daemon binary.
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::client::{Api, Client, Endpoint};

/// The root password every test daemon is started with.
pub const PASSWORD: &str = "test-root-password";

/// Path of a workspace binary built next to this test executable (`xapi`, `xe`).
/// `XAPI_BIN_DIR` overrides the directory.
pub fn bin_path(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("XAPI_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test-binary> (tests) or target/<profile>/<binary> (xapi-bench)
    let mut profile_dir = exe.parent().expect("executable directory");
    if profile_dir.file_name().is_some_and(|n| n == "deps") {
        profile_dir = profile_dir.parent().expect("target/<profile>");
    }
    let path = profile_dir.join(name);
    if !path.exists() {
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut args = vec!["build", "--workspace", "--bin", name];
        if release {
            args.push("--release");
        }
        let status = Command::new(env!("CARGO"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --bin {name} failed");
    }
    path
}

/// A running daemon with its own state directory; killed on drop.
pub struct TestDaemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Extra environment for every (re)start.
    env: Vec<(String, String)>,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub socket: PathBuf,
    /// Everything the daemon printed on stdout up to "ready".
    pub banner: Vec<String>,
}

impl TestDaemon {
    /// Starts a fresh daemon on loopback with ephemeral ports.
    pub fn start() -> TestDaemon {
        TestDaemon::start_with(&[])
    }

    /// Starts a fresh daemon with a config file (`key = value` lines) in its state directory.
    pub fn start_with_config(config: &str) -> TestDaemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("xapi.conf");
        std::fs::write(&path, config).expect("write config");
        let keep = dir.keep();
        TestDaemon::start_with(&[(
            "XAPI_TEST_CONFIG",
            &keep.join("xapi.conf").to_string_lossy(),
        )])
    }

    /// Starts a fresh daemon with extra environment variables.
    pub fn start_with(env: &[(&str, &str)]) -> TestDaemon {
        let dir = tempfile::tempdir().expect("temp state dir");
        let mut d = TestDaemon {
            child: None,
            socket: dir.path().join("xapi.sock"),
            dir,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            http: "127.0.0.1:1".parse().expect("addr"),
            https: "127.0.0.1:1".parse().expect("addr"),
            banner: Vec::new(),
        };
        d.spawn();
        d
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(bin_path("xapi"));
        cmd.arg("--state-dir")
            .arg(self.dir.path())
            .args([
                "--http",
                "127.0.0.1:0",
                "--https",
                "127.0.0.1:0",
                "--socket",
            ])
            .arg(&self.socket)
            .env("XAPI_ROOT_PASSWORD", PASSWORD)
            .env("XAPI_AUTH_FAILURE_DELAY_MS", "0")
            .env("XAPI_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &self.env {
            if k == "XAPI_TEST_CONFIG" {
                cmd.arg("--config").arg(v);
            } else {
                cmd.env(k, v);
            }
        }
        let mut child = cmd.spawn().expect("spawn xapi");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the daemon never blocks on a full pipe.
                    continue;
                }
            }
        });
        self.banner.clear();
        loop {
            let line = match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(l) => l,
                Err(e) => {
                    let _ = child.kill();
                    panic!(
                        "daemon did not become ready: {e}; printed {:?}",
                        self.banner
                    );
                }
            };
            if let Some(a) = line.strip_prefix("xapi: listening on http://") {
                self.http = a.parse().expect("http addr");
            } else if let Some(a) = line.strip_prefix("xapi: listening on https://") {
                self.https = a.parse().expect("https addr");
            }
            let ready = line == "xapi: ready";
            self.banner.push(line);
            if ready {
                break;
            }
        }
        self.child = Some(child);
    }

    /// Stops the daemon with SIGTERM and starts it again on the same state directory.
    pub fn restart(&mut self) {
        self.stop(false);
        self.spawn();
    }

    /// Kills the daemon with SIGKILL (no chance to flush anything) and starts it again.
    pub fn kill9_and_restart(&mut self) {
        self.stop(true);
        self.spawn();
    }

    /// Stops the daemon: SIGKILL when `hard`, else SIGTERM.
    fn stop(&mut self, hard: bool) {
        if let Some(mut child) = self.child.take() {
            if hard {
                let _ = child.kill();
            } else {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .status();
            }
            let _ = child.wait();
        }
    }

    /// A client on an endpoint.
    pub fn client(&self, endpoint: Endpoint) -> Client {
        Client::new(endpoint)
    }

    /// The plain HTTP endpoint.
    pub fn http(&self) -> Endpoint {
        Endpoint::Http(self.http)
    }

    /// The HTTPS endpoint.
    pub fn https(&self) -> Endpoint {
        Endpoint::Https(self.https)
    }

    /// The unix socket endpoint.
    pub fn unix(&self) -> Endpoint {
        Endpoint::Unix(self.socket.clone())
    }

    /// Logs in as root over plain HTTP.
    pub fn login(&self) -> Api {
        Api::login(Client::new(self.http()), "root", PASSWORD).expect("root login")
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.stop(true);
    }
}
