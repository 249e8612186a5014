//! `xen`: the real Xen backend of [`Hypervisor`](crate::Hypervisor), behind the cargo
//! feature `xen`. libxl (through `xen-sys`) builds domains and their devices; libxenctrl
//! answers the cheap polls; our `xenstore` crate watches domains come and go and reads what
//! guests publish.
//!
//! ```text
//!  daemon threads ──► XenHost (Hypervisor, Send + Sync)
//!                       │ Request over mpsc, reply over a oneshot-style channel
//!                       ▼
//!                  libxl thread: owns the libxl_ctx + xc_interface (ffi::Xen)
//!  xenstored ◄── watcher threads: @introduceDomain/@releaseDomain, and guest writes under
//!                /local/domain/*/{data,attr,control} ──► libxl thread ──► EventBus
//! ```
//!
//! All `unsafe` code lives in `ffi`; every other module here is safe. The module never sees
//! XenAPI types and names VMs by uuid, like every backend. Children (hotplug scripts,
//! bootloader, qemu) are reaped by libxl in selective-reap mode: see `docs/xen-backend.md`.

mod backend;
mod dom0;
pub mod errors;
mod ffi;
pub mod libxl_json;
pub mod nbd;
pub mod paths;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tracing::{debug, warn};
use uuid::Uuid;

use crate::device::{ConsoleInfo, ConsoleProtocol, DeviceInfo, VbdBackend, VbdConfig, VifConfig};
use crate::domain::{DomainConfig, DomainInfo, PhysInfo, ShutdownKind};
use crate::error::{Result, XenopsError};
use crate::event::{DomainEvent, EventBus};
use crate::hypervisor::Hypervisor;
use backend::Backend;

pub use dom0::{check_dom0, check_dom0_at};

/// How often the libxl thread looks at the domain list when nothing else wakes it: a
/// safety net under the xenstore watches.
const POLL: Duration = Duration::from_secs(1);

/// How long guest-data writes must pause before one `GuestAgentUpdated` goes out per
/// domain (a guest agent writes many keys in a burst).
const GUEST_DATA_QUIET: Duration = Duration::from_millis(200);
/// The longest a burst of guest-data writes delays its `GuestAgentUpdated`.
const GUEST_DATA_MAX_DELAY: Duration = Duration::from_secs(1);

/// How to open the Xen backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XenConfig {
    /// A directory the backend owns: one JSON record per domain it built, so a restarted
    /// daemon knows its domains again.
    pub state_dir: PathBuf,
    /// Log libxl and libxenctrl at debug level (to stderr) instead of warnings only.
    pub debug_libxl: bool,
}

impl XenConfig {
    /// The defaults, keeping backend files under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        XenConfig {
            state_dir: state_dir.into(),
            debug_libxl: false,
        }
    }
}

/// A unit of work run on the libxl thread.
type Job = Box<dyn FnOnce(&mut Backend) + Send>;

/// The Xen host this dom0 controls, driven through libxl on one dedicated thread.
pub struct XenHost {
    jobs: Mutex<Sender<Job>>,
    events: Arc<EventBus>,
    /// Where a local migration's save stream lands between `migrate_send` and
    /// `migrate_receive` (under the backend's state directory).
    migration_dir: PathBuf,
}

impl XenHost {
    /// Open libxl, libxenctrl and xenstore on this dom0 and start the backend's threads:
    /// the libxl thread and the xenstore watcher feeding it.
    pub fn open(config: XenConfig) -> Result<XenHost> {
        check_dom0().map_err(XenopsError::State)?;
        std::fs::create_dir_all(&config.state_dir)?;
        let migration_dir = config.state_dir.join("migration");
        std::fs::create_dir_all(&migration_dir)?;
        let events = Arc::new(EventBus::new());
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let bus = Arc::clone(&events);
        thread::Builder::new().name("libxl".into()).spawn(move || {
            let backend = Backend::open(&config.state_dir, bus, config.debug_libxl);
            match backend {
                Ok(backend) => {
                    let _ = ready_tx.send(Ok(()));
                    run(backend, &queue);
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                }
            }
        })?;
        ready_rx
            .recv()
            .map_err(|_| XenopsError::State("the libxl thread died while opening".into()))??;
        watch_domains(jobs.clone())?;
        Ok(XenHost {
            jobs: Mutex::new(jobs),
            events,
            migration_dir,
        })
    }

    /// Run `f` on the libxl thread and wait for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Backend) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |backend| {
            let _ = tx.send(f(backend));
        });
        let sent = self
            .jobs
            .lock()
            .map_err(|_| stopped())?
            .send(job)
            .map_err(|_| stopped());
        sent?;
        rx.recv().map_err(|_| stopped())?
    }

    /// The libxl config document libxl makes of `config` (parsed and printed back by
    /// libxl itself): a check of the translation on a real host.
    pub fn libxl_config(&self, config: &DomainConfig) -> Result<String> {
        let config = config.clone();
        self.call(move |b| b.libxl_config(&config))
    }

    /// Ask the guest to halt or reboot and wait for its domain to be gone.
    fn shutdown_and_wait(&self, uuid: Uuid, reboot: bool, timeout: Duration) -> Result<()> {
        let events = self.events.subscribe();
        let domid = self.call(move |b| b.request_shutdown(&uuid, reboot))?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match events.recv_timeout(left) {
                Ok(DomainEvent::Destroyed { uuid: u, domid: d }) if u == uuid && d == domid => {
                    return Ok(())
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(XenopsError::Timeout(format!(
                        "domain {domid} of vm {uuid} did not shut down within {timeout:?}"
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => return Err(stopped()),
            }
        }
    }
}

fn stopped() -> XenopsError {
    XenopsError::State("the libxl thread has stopped".into())
}

/// The file one side (`send` or `receive`) of a local migration of VM `uuid` goes through.
fn migration_file(dir: &Path, uuid: &Uuid, side: &str) -> PathBuf {
    dir.join(format!("{uuid}.{side}"))
}

/// The libxl thread: run jobs as they come, reconcile after each and at least every `POLL`.
fn run(mut backend: Backend, queue: &Receiver<Job>) {
    loop {
        match queue.recv_timeout(POLL) {
            Ok(job) => job(&mut backend),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        backend.reconcile();
    }
    debug!("libxl thread stops");
}

/// Watch `@introduceDomain` and `@releaseDomain` and wake the libxl thread on each, so a
/// guest that shuts down is noticed at once. One thread per watch; each ends when the
/// `XenHost` (and so the job channel) is gone.
fn watch_domains(jobs: Sender<Job>) -> Result<()> {
    let xs = xenstore::Client::open()
        .map_err(|err| XenopsError::State(format!("cannot connect to xenstored: {err}")))?;
    for path in [xenstore::INTRODUCE_DOMAIN, xenstore::RELEASE_DOMAIN] {
        let watch = xs
            .watch(path, &format!("xenops-{path}"))
            .map_err(|err| XenopsError::State(format!("cannot watch {path}: {err}")))?;
        let jobs = jobs.clone();
        thread::Builder::new()
            .name(format!("xs-watch{path}"))
            .spawn(move || {
                while watch.recv().is_some() {
                    // An empty job: the thread reconciles after every job.
                    if jobs.send(Box::new(|_| {})).is_err() {
                        break;
                    }
                }
                warn!(path, "xenstore watch ended");
            })?;
    }
    let watch = xs
        .watch(paths::DOMAINS, "xenops-guest-data")
        .map_err(|err| XenopsError::State(format!("cannot watch {}: {err}", paths::DOMAINS)))?;
    thread::Builder::new()
        .name("xs-watch-guest-data".into())
        .spawn(move || {
            // Keep the connection (and so the watch) alive as long as the thread.
            let _xs = xs;
            while let Some(event) = watch.recv() {
                let mut domids = BTreeSet::new();
                domids.extend(paths::guest_data_domid(&event.path));
                if domids.is_empty() {
                    continue;
                }
                // Debounce: gather the rest of the burst.
                let deadline = Instant::now() + GUEST_DATA_MAX_DELAY;
                while Instant::now() < deadline {
                    match watch.recv_timeout(GUEST_DATA_QUIET) {
                        Some(event) => domids.extend(paths::guest_data_domid(&event.path)),
                        None => break,
                    }
                }
                let job: Job = Box::new(move |b| b.guest_agent_updated(&domids));
                if jobs.send(job).is_err() {
                    break;
                }
            }
            warn!("xenstore watch of guest data ended");
        })?;
    Ok(())
}

impl Hypervisor for XenHost {
    fn physinfo(&self) -> Result<PhysInfo> {
        self.call(|b| b.physinfo())
    }

    fn list(&self) -> Result<Vec<DomainInfo>> {
        self.call(|b| b.list())
    }

    fn domain(&self, uuid: &Uuid) -> Result<DomainInfo> {
        let uuid = *uuid;
        self.call(move |b| b.domain(&uuid))
    }

    fn create(&self, config: &DomainConfig) -> Result<DomainInfo> {
        let config = config.clone();
        self.call(move |b| b.create(&config, None))
    }

    fn pause(&self, uuid: &Uuid) -> Result<()> {
        let uuid = *uuid;
        self.call(move |b| b.pause(&uuid))
    }

    fn unpause(&self, uuid: &Uuid) -> Result<()> {
        let uuid = *uuid;
        self.call(move |b| b.unpause(&uuid))
    }

    fn shutdown(&self, uuid: &Uuid, kind: ShutdownKind, timeout: Duration) -> Result<()> {
        let uuid = *uuid;
        match kind {
            ShutdownKind::Hard => self.call(move |b| b.destroy(&uuid)),
            ShutdownKind::Clean => self.shutdown_and_wait(uuid, false, timeout),
            ShutdownKind::Reboot => self.shutdown_and_wait(uuid, true, timeout),
        }
    }

    fn suspend(&self, uuid: &Uuid, path: &Path, _timeout: Duration) -> Result<()> {
        // libxl applies its own guest timeouts while suspending.
        let uuid = *uuid;
        let path = path.to_path_buf();
        self.call(move |b| b.suspend(&uuid, &path))
    }

    fn resume(&self, config: &DomainConfig, path: &Path) -> Result<DomainInfo> {
        let config = config.clone();
        let path = path.to_path_buf();
        self.call(move |b| b.create(&config, Some(&path)))
    }

    /// A local migration (the only kind a one-host pool makes): libxl saves the domain's
    /// memory and device state to a stream, exactly as `suspend` does, and the stream's bytes
    /// are the migration state. The domain is gone once this returns.
    fn migrate_send(&self, uuid: &Uuid, timeout: Duration) -> Result<Vec<u8>> {
        let path = migration_file(&self.migration_dir, uuid, "send");
        let sent = self
            .suspend(uuid, &path, timeout)
            .and_then(|()| Ok(std::fs::read(&path)?));
        let _ = std::fs::remove_file(&path);
        sent
    }

    /// Rebuilds a domain from `migrate_send`'s stream, as `resume` does from a suspend image.
    fn migrate_receive(&self, config: &DomainConfig, state: &[u8]) -> Result<DomainInfo> {
        let path = migration_file(&self.migration_dir, &config.uuid, "receive");
        let received = std::fs::write(&path, state)
            .map_err(XenopsError::from)
            .and_then(|()| self.resume(config, &path));
        let _ = std::fs::remove_file(&path);
        received
    }

    fn set_vcpus(&self, uuid: &Uuid, n_vcpus: u32) -> Result<()> {
        let uuid = *uuid;
        self.call(move |b| b.set_vcpus(&uuid, n_vcpus))
    }

    fn set_memory_target(&self, uuid: &Uuid, bytes: u64) -> Result<()> {
        let uuid = *uuid;
        self.call(move |b| b.set_memory_target(&uuid, bytes))
    }

    fn attach_vbd(&self, uuid: &Uuid, vbd: &VbdConfig) -> Result<DeviceInfo> {
        let (uuid, vbd) = (*uuid, vbd.clone());
        self.call(move |b| b.attach_vbd(&uuid, &vbd))
    }

    fn detach_vbd(&self, uuid: &Uuid, device: &str, force: bool) -> Result<()> {
        let (uuid, device) = (*uuid, device.to_string());
        self.call(move |b| b.detach_vbd(&uuid, &device, force))
    }

    fn insert_cd(&self, uuid: &Uuid, device: &str, backend: &VbdBackend) -> Result<()> {
        let (uuid, device, media) = (*uuid, device.to_string(), backend.clone());
        self.call(move |b| b.change_cd(&uuid, &device, Some(&media)))
    }

    fn eject_cd(&self, uuid: &Uuid, device: &str) -> Result<()> {
        let (uuid, device) = (*uuid, device.to_string());
        self.call(move |b| b.change_cd(&uuid, &device, None))
    }

    fn attach_vif(&self, uuid: &Uuid, vif: &VifConfig) -> Result<DeviceInfo> {
        let (uuid, vif) = (*uuid, vif.clone());
        self.call(move |b| b.attach_vif(&uuid, &vif))
    }

    fn detach_vif(&self, uuid: &Uuid, device: &str, force: bool) -> Result<()> {
        let (uuid, device) = (*uuid, device.to_string());
        self.call(move |b| b.detach_vif(&uuid, &device, force))
    }

    fn attach_console(&self, uuid: &Uuid, protocol: ConsoleProtocol) -> Result<ConsoleInfo> {
        let uuid = *uuid;
        self.call(move |b| b.attach_console(&uuid, protocol))
    }

    fn guest_data(&self, uuid: &Uuid) -> Result<BTreeMap<String, String>> {
        let uuid = *uuid;
        self.call(move |b| b.guest_data(&uuid))
    }

    fn events(&self) -> Receiver<DomainEvent> {
        self.events.subscribe()
    }
}
