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
//!  xenstored ◄── watcher thread: @introduceDomain/@releaseDomain ──► EventBus
//! ```
//!
//! All `unsafe` code lives in `ffi`; every other module here is safe. The module never sees
//! XenAPI types and names VMs by uuid, like every backend.

mod dom0;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use uuid::Uuid;

use crate::device::{ConsoleInfo, ConsoleProtocol, DeviceInfo, VbdBackend, VbdConfig, VifConfig};
use crate::domain::{DomainConfig, DomainInfo, PhysInfo, ShutdownKind};
use crate::error::{Result, XenopsError};
use crate::event::{DomainEvent, EventBus};
use crate::hypervisor::Hypervisor;

pub use dom0::{check_dom0, check_dom0_at};

/// How to open the Xen backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XenConfig {
    /// A directory the backend owns for its own files (saved domain configs, logs).
    pub state_dir: PathBuf,
}

impl XenConfig {
    /// The defaults, keeping backend files under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        XenConfig {
            state_dir: state_dir.into(),
        }
    }
}

/// The Xen host this dom0 controls, driven through libxl.
pub struct XenHost {
    events: EventBus,
}

impl XenHost {
    /// Open libxl, libxenctrl and xenstore on this dom0 and start the backend's threads.
    pub fn open(config: XenConfig) -> Result<XenHost> {
        check_dom0().map_err(XenopsError::State)?;
        std::fs::create_dir_all(&config.state_dir)?;
        Err(XenopsError::State(
            "the xen backend is not finished yet".into(),
        ))
    }
}

fn unfinished<T>() -> Result<T> {
    Err(XenopsError::State(
        "the xen backend is not finished yet".into(),
    ))
}

impl Hypervisor for XenHost {
    fn physinfo(&self) -> Result<PhysInfo> {
        unfinished()
    }
    fn list(&self) -> Result<Vec<DomainInfo>> {
        unfinished()
    }
    fn domain(&self, _uuid: &Uuid) -> Result<DomainInfo> {
        unfinished()
    }
    fn create(&self, _config: &DomainConfig) -> Result<DomainInfo> {
        unfinished()
    }
    fn pause(&self, _uuid: &Uuid) -> Result<()> {
        unfinished()
    }
    fn unpause(&self, _uuid: &Uuid) -> Result<()> {
        unfinished()
    }
    fn shutdown(&self, _uuid: &Uuid, _kind: ShutdownKind, _timeout: Duration) -> Result<()> {
        unfinished()
    }
    fn suspend(&self, _uuid: &Uuid, _path: &Path, _timeout: Duration) -> Result<()> {
        unfinished()
    }
    fn resume(&self, _config: &DomainConfig, _path: &Path) -> Result<DomainInfo> {
        unfinished()
    }
    fn migrate_send(&self, _uuid: &Uuid, _timeout: Duration) -> Result<Vec<u8>> {
        unfinished()
    }
    fn migrate_receive(&self, _config: &DomainConfig, _state: &[u8]) -> Result<DomainInfo> {
        unfinished()
    }
    fn set_vcpus(&self, _uuid: &Uuid, _n_vcpus: u32) -> Result<()> {
        unfinished()
    }
    fn set_memory_target(&self, _uuid: &Uuid, _bytes: u64) -> Result<()> {
        unfinished()
    }
    fn attach_vbd(&self, _uuid: &Uuid, _vbd: &VbdConfig) -> Result<DeviceInfo> {
        unfinished()
    }
    fn detach_vbd(&self, _uuid: &Uuid, _device: &str, _force: bool) -> Result<()> {
        unfinished()
    }
    fn insert_cd(&self, _uuid: &Uuid, _device: &str, _backend: &VbdBackend) -> Result<()> {
        unfinished()
    }
    fn eject_cd(&self, _uuid: &Uuid, _device: &str) -> Result<()> {
        unfinished()
    }
    fn attach_vif(&self, _uuid: &Uuid, _vif: &VifConfig) -> Result<DeviceInfo> {
        unfinished()
    }
    fn detach_vif(&self, _uuid: &Uuid, _device: &str, _force: bool) -> Result<()> {
        unfinished()
    }
    fn attach_console(&self, _uuid: &Uuid, _protocol: ConsoleProtocol) -> Result<ConsoleInfo> {
        unfinished()
    }
    fn guest_data(&self, _uuid: &Uuid) -> Result<BTreeMap<String, String>> {
        unfinished()
    }
    fn events(&self) -> Receiver<DomainEvent> {
        self.events.subscribe()
    }
}
