//! NBD exports as kernel block devices: the daemon serves each VDI as an NBD export on a
//! unix socket; blkback needs a block device, so the backend connects the export with the
//! kernel NBD client (`nbd-client`) to a free `/dev/nbdN` and hands libxl a `phy` disk on it.
//! Owns the URI parsing, the choice of a free device and the `nbd-client` command lines
//! (pure, tested), and the process spawning (run with `std::process`, which waits on its
//! own child's pid, so libxl's selective reaping is not disturbed).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::error::{Result, XenopsError};

/// Where the kernel lists block devices.
const SYS_BLOCK: &str = "/sys/block";
/// How many `/dev/nbdN` the `nbd` module makes by default.
const MAX_DEVICES: u32 = 16;
/// The longest an `nbd-client` or `modprobe` run may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// An NBD export on a unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The server's unix socket.
    pub socket: PathBuf,
    /// The export name.
    pub name: String,
}

/// Parses `nbd+unix:///<export>?socket=<path>` (the daemon's form) or
/// `nbd:unix:<path>:exportname=<export>` (qemu's legacy form).
pub fn parse_uri(uri: &str) -> Result<Export> {
    let invalid = |why: &str| XenopsError::InvalidConfig(format!("NBD URI {uri:?}: {why}"));
    if let Some(rest) = uri.strip_prefix("nbd+unix:///") {
        let (name, query) = rest
            .split_once('?')
            .ok_or_else(|| invalid("no ?socket= part"))?;
        let socket = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("socket="))
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("no socket= parameter"))?;
        return Ok(Export {
            socket: socket.into(),
            name: name.to_string(),
        });
    }
    if let Some(rest) = uri.strip_prefix("nbd:unix:") {
        let (socket, name) = match rest.rsplit_once(":exportname=") {
            Some((socket, name)) => (socket, name),
            None => (rest, ""),
        };
        if socket.is_empty() {
            return Err(invalid("empty socket path"));
        }
        return Ok(Export {
            socket: socket.into(),
            name: name.to_string(),
        });
    }
    Err(invalid("only NBD exports on unix sockets are supported"))
}

/// The first `nbdN` under `sys_block` that exists and has no client (no `pid` file),
/// skipping the numbers in `taken` (devices handed out but maybe not yet marked busy).
pub fn first_free(sys_block: &Path, taken: &[u32]) -> Option<u32> {
    (0..MAX_DEVICES).find(|n| {
        let dir = sys_block.join(format!("nbd{n}"));
        !taken.contains(n) && dir.is_dir() && !dir.join("pid").exists()
    })
}

/// The device node of `nbdN`.
pub fn device_path(n: u32) -> PathBuf {
    PathBuf::from(format!("/dev/nbd{n}"))
}

/// The number of a `/dev/nbdN` path.
pub fn device_number(path: &Path) -> Option<u32> {
    path.to_str()?.strip_prefix("/dev/nbd")?.parse().ok()
}

/// The `nbd-client` arguments that connect `export` to `device`.
pub fn connect_args(export: &Export, device: &Path) -> Vec<String> {
    let mut args = vec![
        "-unix".to_string(),
        export.socket.to_string_lossy().into_owned(),
        device.to_string_lossy().into_owned(),
    ];
    if !export.name.is_empty() {
        args.push("-N".into());
        args.push(export.name.clone());
    }
    args
}

/// The `nbd-client` arguments that disconnect `device`.
pub fn disconnect_args(device: &Path) -> Vec<String> {
    vec!["-d".into(), device.to_string_lossy().into_owned()]
}

/// Runs `program args`, waiting at most `COMMAND_TIMEOUT`; its stderr goes into the error.
fn run(program: &str, args: &[String]) -> Result<()> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| XenopsError::State(format!("cannot run {program}: {err}")))?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(XenopsError::Timeout(format!(
                "{program} {} took longer than {COMMAND_TIMEOUT:?}",
                args.join(" ")
            )));
        }
        thread::sleep(Duration::from_millis(20));
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    Err(XenopsError::State(format!(
        "{program} {} failed ({status}): {}",
        args.join(" "),
        stderr.trim()
    )))
}

/// Loads the `nbd` module once per process if no `nbd0` exists yet.
fn ensure_module() -> Result<()> {
    static LOADED: AtomicBool = AtomicBool::new(false);
    if LOADED.load(Ordering::Relaxed) || Path::new(SYS_BLOCK).join("nbd0").is_dir() {
        return Ok(());
    }
    run("modprobe", &["nbd".to_string()])?;
    LOADED.store(true, Ordering::Relaxed);
    Ok(())
}

/// Connects the export behind `uri` to a free `/dev/nbdN` and returns that path. `taken`
/// lists devices this backend already uses.
pub fn connect(uri: &str, taken: &[u32]) -> Result<PathBuf> {
    let export = parse_uri(uri)?;
    ensure_module()?;
    let n = first_free(Path::new(SYS_BLOCK), taken)
        .ok_or_else(|| XenopsError::State("no free /dev/nbdN device".into()))?;
    let device = device_path(n);
    run("nbd-client", &connect_args(&export, &device))?;
    info!(device = %device.display(), export = %export.name, "NBD export connected");
    Ok(device)
}

/// Disconnects `device`; failures are logged, not returned (used on teardown).
pub fn disconnect(device: &Path) {
    match run("nbd-client", &disconnect_args(device)) {
        Ok(()) => info!(device = %device.display(), "NBD device disconnected"),
        Err(err) => warn!(device = %device.display(), error = %err, "cannot disconnect NBD device"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_and_qemu_style_uris_parse() {
        let e = parse_uri("nbd+unix:///abc-1?socket=/tmp/xapi/nbd/abc-1.sock").unwrap();
        assert_eq!(e.socket, PathBuf::from("/tmp/xapi/nbd/abc-1.sock"));
        assert_eq!(e.name, "abc-1");
        let e = parse_uri("nbd:unix:/run/sr/x.sock:exportname=x").unwrap();
        assert_eq!(e.socket, PathBuf::from("/run/sr/x.sock"));
        assert_eq!(e.name, "x");
        assert!(parse_uri("nbd+unix:///abc").is_err());
        assert!(parse_uri("nbd+unix:///abc?socket=").is_err());
        assert!(parse_uri("nbd://host/export").is_err());
    }

    #[test]
    fn the_first_existing_idle_device_is_chosen() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(first_free(dir.path(), &[]), None);
        for n in 0..3 {
            std::fs::create_dir(dir.path().join(format!("nbd{n}"))).unwrap();
        }
        std::fs::write(dir.path().join("nbd0/pid"), "42\n").unwrap();
        assert_eq!(first_free(dir.path(), &[]), Some(1));
        assert_eq!(first_free(dir.path(), &[1]), Some(2));
        assert_eq!(first_free(dir.path(), &[1, 2]), None);
    }

    #[test]
    fn nbd_client_command_lines() {
        let export = Export {
            socket: "/s.sock".into(),
            name: "vdi".into(),
        };
        assert_eq!(
            connect_args(&export, &device_path(3)),
            ["-unix", "/s.sock", "/dev/nbd3", "-N", "vdi"]
        );
        assert_eq!(disconnect_args(&device_path(3)), ["-d", "/dev/nbd3"]);
        assert_eq!(device_number(&device_path(11)), Some(11));
        assert_eq!(device_number(Path::new("/dev/sda")), None);
    }
}
