//! VM consoles as upstream exposes them. While a VM has a domain it has `console` objects:
//! `vt100` for its text console (the PV console, or an HVM guest's emulated serial port) and,
//! for an HVM guest, `rfb` for the device model's VNC display. Each `location` is
//! `https://<host address>/console?uuid=<console uuid>`; the objects go when the domain goes.
//!
//! `CONNECT /console?uuid=..|ref=..&session_id=..` (the console's uuid or ref, or a VM's, which
//! picks its `rfb` console) answers `200 OK` and then carries bytes both ways between the
//! client and the console: the VNC server's loopback TCP port or the console's pty, wherever
//! the backend says it is. Refusals as upstream: 401 without a valid session, 404 for an
//! unknown console or a VM that is not running, 405 for any method but CONNECT.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use xapi_idl::enums::{ConsoleProtocol, VmPowerState};
use xapi_idl::records::{ConsoleRecord, HostRecord, VmRecord};
use xapi_idl::{classes, ApiResult, Ref};

use crate::actions::blob::query_args;
use crate::app::App;
use crate::dispatch::Origin;
use crate::importexport::{arg, caller, text, unauthorised};
use crate::server::Reply;
use crate::vm::{delete, insert, read, read_vm, uuid_of};

/// The path consoles are served under.
pub const CONSOLE_PATH: &str = "/console";

/// The consoles a running VM offers: a text console always, VNC when it booted HVM.
pub fn wanted(hvm: bool) -> Vec<ConsoleProtocol> {
    if hvm {
        vec![ConsoleProtocol::Rfb, ConsoleProtocol::Vt100]
    } else {
        vec![ConsoleProtocol::Vt100]
    }
}

/// Where a console object points: the daemon's `/console` handler on the host's address.
pub fn location(host_address: &str, console_uuid: &str) -> String {
    let host = if host_address.contains(':') && !host_address.starts_with('[') {
        format!("[{host_address}]")
    } else {
        host_address.to_owned()
    };
    format!("https://{host}{CONSOLE_PATH}?uuid={console_uuid}")
}

/// Makes VM `vm`'s console objects match its domain: `hvm` is `Some(booted HVM)` while it has
/// one (running or paused), `None` once it has none. `consoles` are the VM's console objects
/// now; the power operations pass what they already read, so no VM record is read again on
/// their path. Objects already right are left alone.
pub fn refresh(
    app: &App,
    vm: &str,
    consoles: &[Ref<classes::Console>],
    hvm: Option<bool>,
) -> ApiResult<()> {
    let want = hvm.map(wanted).unwrap_or_default();
    let existing: Vec<(String, ConsoleRecord)> = consoles
        .iter()
        .filter_map(|c| Some((c.as_str().to_owned(), read(app, c.as_str()).ok()?)))
        .collect();
    for (r, c) in &existing {
        if !want.contains(&c.protocol) {
            delete::<classes::Console>(app, r)?;
        }
    }
    let missing: Vec<ConsoleProtocol> = want
        .into_iter()
        .filter(|p| !existing.iter().any(|(_, c)| c.protocol == *p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let address = read::<HostRecord>(app, &app.host)
        .map(|h| h.address)
        .unwrap_or_default();
    for protocol in missing {
        let uuid = uuid::Uuid::new_v4().to_string();
        let console = ConsoleRecord {
            location: location(&address, &uuid),
            uuid,
            protocol,
            vm: Ref::from_raw(vm),
            ..ConsoleRecord::default()
        };
        insert(app, Ref::<classes::Console>::fresh().as_str(), &console)?;
    }
    Ok(())
}

/// A console's far end, opened before the client is told `200 OK`.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The console a request names: `uuid=` or `ref=` of a console, or of a VM (its `rfb`
/// console, as upstream picks the default one).
fn console_of_request(app: &App, args: &[(String, String)]) -> Option<(String, ConsoleRecord)> {
    let r = match (arg(args, "ref"), arg(args, "uuid")) {
        (Some(r), _) => r.to_owned(),
        (None, Some(u)) => app
            .db
            .ref_by_uuid(app.table_of::<classes::Vm>(), u)
            .or_else(|| app.db.ref_by_uuid(app.table_of::<classes::Console>(), u))?,
        (None, None) => return None,
    };
    if let Ok(c) = read::<ConsoleRecord>(app, &r) {
        return Some((r, c));
    }
    let vm = read_vm(app, &r).ok()?;
    vm.consoles.iter().find_map(|c| {
        let rec = read::<ConsoleRecord>(app, c.as_str()).ok()?;
        (rec.protocol == ConsoleProtocol::Rfb).then(|| (c.as_str().to_owned(), rec))
    })
}

/// Opens the console's far end for a VM running on this host.
async fn open_target(app: &App, console: &ConsoleRecord) -> Result<Box<dyn Stream>, String> {
    let vm: VmRecord = read_vm(app, console.vm.as_str()).map_err(|e| e.to_string())?;
    if !matches!(vm.power_state, VmPowerState::Running | VmPowerState::Paused)
        || vm.resident_on.as_str() != app.host
    {
        return Err(format!("VM {} is not running on this host", vm.uuid));
    }
    let uuid = uuid_of(&vm).map_err(|e| e.to_string())?;
    let protocol = match console.protocol {
        ConsoleProtocol::Rfb => xenops::ConsoleProtocol::Rfb,
        ConsoleProtocol::Vt100 => xenops::ConsoleProtocol::Vt100,
        ConsoleProtocol::Rdp => return Err("RDP consoles cannot be tunnelled".into()),
    };
    let hypervisor = Arc::clone(&app.hypervisor);
    let info = tokio::task::spawn_blocking(move || hypervisor.attach_console(&uuid, protocol))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    match info.location {
        xenops::ConsoleLocation::VncPort(port) => {
            let tcp = tokio::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port))
                .await
                .map_err(|e| format!("VNC server on port {port}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            Ok(Box::new(tcp))
        }
        xenops::ConsoleLocation::Pty(path) => {
            let pty = tokio::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .await
                .map_err(|e| format!("console {}: {e}", path.display()))?;
            Ok(Box::new(pty))
        }
    }
}

/// `CONNECT /console?...`: see the module documentation.
pub async fn handle(app: Arc<App>, origin: Origin, req: Request<Incoming>) -> Reply {
    if req.method() != Method::CONNECT {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Consoles are reached with CONNECT\n",
        );
    }
    let args = query_args(req.uri().query());
    let Some(c) = caller(&app, origin, &args).await else {
        return unauthorised();
    };
    c.close();
    let Some((_, console)) = console_of_request(&app, &args) else {
        return text(StatusCode::NOT_FOUND, "No such console\n");
    };
    let mut target = match open_target(&app, &console).await {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(console = console.uuid, error = e, "console not reachable");
            return text(StatusCode::NOT_FOUND, &format!("{e}\n"));
        }
    };
    let upgrade = hyper::upgrade::on(req);
    let id = console.uuid.clone();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(up) => {
                let mut client = TokioIo::new(up);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut target).await {
                    tracing::debug!(console = id, error = %e, "console connection ended");
                }
            }
            Err(e) => tracing::info!(console = id, error = %e, "console upgrade failed"),
        }
    });
    // 200 to a CONNECT: hyper sends no body and hands the connection to `upgrade`.
    let mut ok = Reply::new(crate::server::full(Vec::new()));
    *ok.status_mut() = StatusCode::OK;
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hvm_guests_get_vnc_and_a_text_console_pv_guests_a_text_console() {
        assert_eq!(
            wanted(true),
            vec![ConsoleProtocol::Rfb, ConsoleProtocol::Vt100]
        );
        assert_eq!(wanted(false), vec![ConsoleProtocol::Vt100]);
    }

    #[test]
    fn locations_name_the_console_on_the_host_address() {
        assert_eq!(
            location("10.0.0.5", "c-1"),
            "https://10.0.0.5/console?uuid=c-1"
        );
        assert_eq!(
            location("fd00::5", "c-2"),
            "https://[fd00::5]/console?uuid=c-2"
        );
    }
}
