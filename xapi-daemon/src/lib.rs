//! xapi-rs: the XenAPI daemon. Composition root: configuration, the HTTP front, sessions and
//! RBAC, the dispatcher, implicit messages, explicit actions, first-start seeding.
//!
//! `main.rs` parses flags and calls [`run`]; everything else is reachable from here.

pub mod actions;
pub mod app;
pub mod auth;
pub mod config;
pub mod console;
pub mod dispatch;
pub mod errors;
pub mod events;
pub mod files;
pub mod hooks;
pub mod implicit;
pub mod importexport;
pub mod plugins;
pub mod rbac;
pub mod rpc;
pub mod schema;
pub mod seed;
pub mod server;
pub mod session;
pub mod sm_catalog;
pub mod storage;
pub mod sysinfo;
pub mod tasks;
pub mod templates;
pub mod tls;
pub mod vm;

use std::sync::Arc;

use config::Config;

/// Starts every listener and serves until the process ends.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Fail fast, before the state directory is touched, when the backend cannot run here.
    vm::hypervisor::check_backend(config.backend).map_err(anyhow::Error::msg)?;
    // Opening blocks (database, hypervisor handles whose clients wait on replies): off the
    // async threads, as every other hypervisor call.
    let (app, generated) = tokio::task::spawn_blocking(move || app::App::open(config)).await??;
    let mut tasks = Vec::new();
    let mut lines = Vec::new();
    if let Some(addr) = app.config.http {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on http {addr}: {e}"))?;
        let bound = l.local_addr()?;
        plugins::set_http_address(bound);
        lines.push(format!("listening on http://{bound}"));
        tasks.push(tokio::spawn(server::serve_tcp(app.clone(), l, None)));
    }
    if let Some(addr) = app.config.https {
        // The host record already holds the machine's name: no second read of /proc.
        let hostname = app
            .get_record::<xapi_idl::records::HostRecord>(&app.host)
            .map(|h| h.hostname)
            .unwrap_or_else(|| "localhost".to_owned());
        let acceptor = tls::acceptor(&app.config.state_dir, &hostname)?;
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on https {addr}: {e}"))?;
        lines.push(format!("listening on https://{}", l.local_addr()?));
        tasks.push(tokio::spawn(server::serve_tcp(
            app.clone(),
            l,
            Some(acceptor),
        )));
    }
    if let Some(path) = &app.config.socket {
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        let l = tokio::net::UnixListener::bind(path)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
        lines.push(format!("listening on unix:{}", path.display()));
        tasks.push(tokio::spawn(server::serve_unix(app.clone(), l)));
    }
    tokio::spawn(session::sweep(Arc::clone(&app)));
    // Reconcile VMs with the hypervisor before serving, then follow domain events.
    {
        let app = Arc::clone(&app);
        tokio::task::spawn_blocking(move || vm::monitor::spawn(&app)).await?;
    }
    tokio::spawn(vm::keeper::run(Arc::clone(&app)));
    tokio::spawn(crate::tasks::gc(Arc::clone(&app)));
    tokio::spawn(events::housekeeping(Arc::clone(&app)));
    // Load the message store now so its first use by a caller does not pay for the disk read.
    actions::message::store(&app);
    for l in &lines {
        println!("xapi: {l}");
    }
    println!("xapi: state directory {}", app.config.state_dir.display());
    match generated {
        Some(pw) => println!("xapi: log in as root with password: {pw}  (shown once; set XAPI_ROOT_PASSWORD to choose one)"),
        None => println!("xapi: log in as root with the password set on first start (or XAPI_ROOT_PASSWORD)"),
    }
    if tasks.is_empty() {
        anyhow::bail!("no listener configured");
    }
    println!("xapi: ready");
    notify_ready();
    futures_wait(tasks).await;
    Ok(())
}

/// Tells systemd (`Type=notify`) that the listeners are up: `READY=1` as one datagram to
/// `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). No-op when unset.
fn notify_ready() {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = std::os::unix::net::UnixDatagram::unbound().and_then(|sock| {
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str());
        match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sock.send_to_addr(b"READY=1\n", &addr)
            }
            None => sock.send_to(b"READY=1\n", &target),
        }
    });
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot notify systemd of readiness");
    }
}

async fn futures_wait(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}
