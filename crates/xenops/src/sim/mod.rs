//! `SimHost`: a simulated Xen host that implements `Hypervisor` in-process, for the embedded
//! daemon, the tests and anyone without Xen.
//!
//! It behaves like a host, not like a mock:
//! - **domids** start at 1 and count up, never reused within a boot; dom0 (domid 0, the
//!   control domain) always exists and refuses lifecycle operations;
//! - **memory**: the host has `total_memory`, dom0 holds `dom0_memory`, every other domain
//!   holds `max(actual, target)` from creation until it is destroyed; a create or a raised
//!   target beyond free memory is `NotEnoughMemory`; the balloon moves `actual` to `target`;
//! - **vCPUs**: at most `max_vcpus` per domain, online count within `1..=VCPUs_max`;
//! - **timing**: transitions happen at once (`Timing::Instant`), after delays
//!   (`Timing::Delayed`), or one at a time when a test calls `SimHost::step`
//!   (`Timing::SingleStep`);
//! - **xenstore** per domain, where the simulated guest agent writes `data/os_version/*`,
//!   `data/meminfo_*`, `attr/vif/<n>/ipv4/0` and `control/feature-*` once the guest is up;
//! - **device hotplug** with xenbus states (see `devices.rs`);
//! - **faults** from `sim-*` keys in the build description or `SimHost::inject` (see
//!   `fault.rs`): failed starts, crashes, self-shutdowns, ignored shutdown requests, ignored
//!   balloon targets, devices the guest will not release;
//! - **persistence**: `SimHost::open` keeps the domain table in a snapshot plus a journal
//!   appended on every change (see `store.rs`), so a restarted daemon finds its domains
//!   running with the same domids; a state file from another kernel boot is a host reboot.
//!
//! Domain lifecycle (each arrow is one transition, i.e. one `step` in single-step mode):
//!
//! ```text
//!                 create / resume / migrate_receive
//!                               |
//!                               v
//!     +----- pause ------- +--------+
//!     |                    | Paused |<-------------------------------+
//!     |   +-- unpause ---->+--------+                                |
//!     v   |                    |  unpause (the first one boots the   |
//!  +--------+                  |  guest: "boot" step, agent writes)  |
//!  |Running |<-----------------+                                     |
//!  +--------+------------------------------- pause ------------------+
//!     |   |  guest halts / reboots / powers off / suspends
//!     |   |  (clean shutdown, reboot, suspend, migrate_send, or by itself)
//!     |   v
//!     |  +------------------+        +-------+  release  +------+
//!     |  | Shutdown(reason) |------->| Dying |---------->| gone |  memory back to the host
//!     |  +------------------+ destroy+-------+           +------+
//!     |                                  ^
//!     | guest crashes (Running or Paused)|  hard shutdown (any state)
//!     v                                  |
//!  +---------+------ hard shutdown ------+
//!  | Crashed |   (stays, holding memory, until destroyed)
//!  +---------+
//! ```
//!
//! The sim never sees XenAPI types; the daemon drives it through `Hypervisor` only, plus the
//! test API (`step`, `inject`, `xenstore_*`) in tests.

mod devices;
mod engine;
mod fault;
mod gate;
mod image;
mod marker;
mod store;
mod table;
mod timer;
mod xenstore;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use uuid::Uuid;

use self::engine::Engine;
use self::image::Image;
use self::store::{write_atomically, Store};
use crate::device::{
    ConsoleInfo, ConsoleProtocol, DeviceInfo, DeviceKind, VbdBackend, VbdConfig, VifConfig,
};
use crate::domain::{DomainConfig, DomainInfo, PhysInfo, ShutdownKind};
use crate::error::Result;
use crate::event::DomainEvent;
use crate::hypervisor::Hypervisor;

pub use self::fault::Fault;
pub use self::table::guest_ip;

/// How long simulated transitions take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timing {
    /// Every transition happens at once; the guest boots and balloons within the call.
    #[default]
    Instant,
    /// Transitions and guest actions take time.
    Delayed(Delays),
    /// Every transition waits for `SimHost::step` (guest boot and balloon moves are steps too,
    /// taken on helper threads; timed faults and injected faults do not wait).
    SingleStep,
}

/// Delays for `Timing::Delayed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delays {
    /// Before each state transition, in the calling thread.
    pub transition: Duration,
    /// From the first unpause until the guest is up (frontends connect, agent writes).
    pub guest_boot: Duration,
    /// From a new memory target until the balloon reaches it.
    pub balloon: Duration,
}

/// The simulated host's hardware and behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Host memory, bytes (16 GiB by default).
    pub total_memory: u64,
    /// Memory dom0 holds, bytes (1 GiB by default).
    pub dom0_memory: u64,
    /// dom0's vCPUs.
    pub dom0_vcpus: u32,
    /// dom0's uuid; `None` keeps the persisted one or makes one up.
    pub dom0_uuid: Option<Uuid>,
    /// CPU sockets.
    pub sockets: u32,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// Threads per core.
    pub threads_per_core: u32,
    /// CPU clock in MHz.
    pub cpu_mhz: u32,
    /// Most vCPUs one domain may have.
    pub max_vcpus: u32,
    /// How long transitions take.
    pub timing: Timing,
    /// fsync the journal on every change (off by default: the records are crash-safe against
    /// a killed daemon without it, and after a power loss the host has rebooted anyway).
    pub fsync: bool,
    /// The boot id to record; `None` reads the kernel's. A state file from another boot id
    /// is a host that rebooted: no domains survive.
    pub boot_id: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            total_memory: 16 << 30,
            dom0_memory: 1 << 30,
            dom0_vcpus: 4,
            dom0_uuid: None,
            sockets: 1,
            cores_per_socket: 4,
            threads_per_core: 2,
            cpu_mhz: 2400,
            max_vcpus: 64,
            timing: Timing::Instant,
            fsync: false,
            boot_id: None,
        }
    }
}

/// A simulated Xen host.
#[derive(Debug)]
pub struct SimHost {
    engine: Arc<Engine>,
    timer_thread: Option<JoinHandle<()>>,
}

impl SimHost {
    /// A host whose domains live only in memory.
    pub fn new(config: SimConfig) -> Result<Self> {
        Self::start(Engine::new(config, None)?)
    }

    /// A host whose domain table lives in `state_file`: domains found there (from this boot)
    /// are running again, with the same domids.
    pub fn open(state_file: &Path, config: SimConfig) -> Result<Self> {
        let fsync = config.fsync;
        Self::start(Engine::new(config, Some(Store::new(state_file, fsync)))?)
    }

    fn start(engine: Engine) -> Result<Self> {
        let engine = Arc::new(engine);
        let worker = Arc::clone(&engine);
        let timer_thread = std::thread::Builder::new()
            .name("xenops-sim-timers".into())
            .spawn(move || {
                while let Some(entry) = worker.timers.next() {
                    worker.fire(entry);
                }
            })?;
        Ok(SimHost {
            engine,
            timer_thread: Some(timer_thread),
        })
    }

    /// The configuration the host runs with.
    pub fn config(&self) -> &SimConfig {
        &self.engine.config
    }

    /// dom0's uuid.
    pub fn dom0_uuid(&self) -> Uuid {
        self.engine.lock().dom0_uuid
    }

    /// Single-step mode: release the oldest waiting transition and return its label
    /// (`"unpause <uuid>"`) once it has been applied; `None` if none came within 10 s.
    pub fn step(&self) -> Option<String> {
        self.step_timeout(Duration::from_secs(10))
    }

    /// `step` with a chosen wait for a transition to show up.
    pub fn step_timeout(&self, timeout: Duration) -> Option<String> {
        self.engine.gate.step(timeout)
    }

    /// Single-step mode: labels of the transitions waiting, oldest first.
    pub fn waiting_steps(&self) -> Vec<String> {
        self.engine.gate.waiting()
    }

    /// Inject a fault into a VM's domain (or, for `FailNextStart`, its next start).
    pub fn inject(&self, uuid: &Uuid, fault: Fault) -> Result<()> {
        self.engine.inject(uuid, fault)
    }

    /// Read a node of a domain's xenstore subtree (path relative to the domain).
    pub fn xenstore_read(&self, uuid: &Uuid, path: &str) -> Result<Option<String>> {
        Ok(self
            .engine
            .lock()
            .get(uuid)?
            .xenstore
            .read(path)
            .map(str::to_string))
    }

    /// Write a node as the guest would (`GuestAgentUpdated` for `data/`, `attr/` and
    /// `control/feature-*`).
    pub fn xenstore_write(&self, uuid: &Uuid, path: &str, value: &str) -> Result<()> {
        self.engine.guest_write(uuid, path, value)
    }
}

impl Drop for SimHost {
    fn drop(&mut self) {
        self.engine.timers.stop();
        if let Some(thread) = self.timer_thread.take() {
            // A panicked timer thread has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

impl Hypervisor for SimHost {
    fn physinfo(&self) -> Result<PhysInfo> {
        Ok(self.engine.physinfo())
    }

    fn list(&self) -> Result<Vec<DomainInfo>> {
        Ok(self.engine.list())
    }

    fn domain(&self, uuid: &Uuid) -> Result<DomainInfo> {
        self.engine.domain(uuid)
    }

    fn create(&self, config: &DomainConfig) -> Result<DomainInfo> {
        self.engine.create(config, None)
    }

    fn pause(&self, uuid: &Uuid) -> Result<()> {
        self.engine.pause(uuid)
    }

    fn unpause(&self, uuid: &Uuid) -> Result<()> {
        self.engine.unpause(uuid)
    }

    fn shutdown(&self, uuid: &Uuid, kind: ShutdownKind, timeout: Duration) -> Result<()> {
        self.engine.shutdown(uuid, kind, timeout)
    }

    fn suspend(&self, uuid: &Uuid, path: &Path, timeout: Duration) -> Result<()> {
        self.engine
            .suspend(uuid, timeout, |bytes| write_atomically(path, bytes, true))
    }

    fn resume(&self, config: &DomainConfig, path: &Path) -> Result<DomainInfo> {
        let bytes = std::fs::read(path)?;
        let image = Image::from_bytes(&bytes, config)?;
        self.engine.create(config, Some(&image))
    }

    fn migrate_send(&self, uuid: &Uuid, timeout: Duration) -> Result<Vec<u8>> {
        let mut state = Vec::new();
        self.engine.suspend(uuid, timeout, |bytes| {
            state = bytes.to_vec();
            Ok(())
        })?;
        Ok(state)
    }

    fn migrate_receive(&self, config: &DomainConfig, state: &[u8]) -> Result<DomainInfo> {
        let image = Image::from_bytes(state, config)?;
        self.engine.create(config, Some(&image))
    }

    fn set_vcpus(&self, uuid: &Uuid, n_vcpus: u32) -> Result<()> {
        self.engine.set_vcpus(uuid, n_vcpus)
    }

    fn set_memory_target(&self, uuid: &Uuid, bytes: u64) -> Result<()> {
        self.engine.set_memory_target(uuid, bytes)
    }

    fn attach_vbd(&self, uuid: &Uuid, vbd: &VbdConfig) -> Result<DeviceInfo> {
        self.engine.attach(uuid, devices::vbd_device(vbd)?)
    }

    fn detach_vbd(&self, uuid: &Uuid, device: &str, force: bool) -> Result<()> {
        self.engine.detach(uuid, DeviceKind::Vbd, device, force)
    }

    fn insert_cd(&self, uuid: &Uuid, device: &str, backend: &VbdBackend) -> Result<()> {
        self.engine.change_cd(uuid, device, Some(backend))
    }

    fn eject_cd(&self, uuid: &Uuid, device: &str) -> Result<()> {
        self.engine.change_cd(uuid, device, None)
    }

    fn attach_vif(&self, uuid: &Uuid, vif: &VifConfig) -> Result<DeviceInfo> {
        self.engine.attach(uuid, devices::vif_device(vif)?)
    }

    fn detach_vif(&self, uuid: &Uuid, device: &str, force: bool) -> Result<()> {
        self.engine.detach(uuid, DeviceKind::Vif, device, force)
    }

    fn attach_console(&self, uuid: &Uuid, protocol: ConsoleProtocol) -> Result<ConsoleInfo> {
        self.engine.attach_console(uuid, protocol)
    }

    fn guest_data(&self, uuid: &Uuid) -> Result<BTreeMap<String, String>> {
        self.engine.guest_data(uuid)
    }

    fn events(&self) -> Receiver<DomainEvent> {
        self.engine.events()
    }
}
