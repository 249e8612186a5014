//! The `Hypervisor` trait: the one door through which the daemon does VM, device and host work.
//!
//! The trait is blocking and `Send + Sync`: the daemon calls it from `spawn_blocking` threads,
//! several at a time. A backend built on libxl fits it by owning its context on a dedicated
//! thread and forwarding calls over a channel; its event loop publishes on an `EventBus`.
//! It names VMs by uuid only and knows nothing of XenAPI references or error codes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use uuid::Uuid;

use crate::device::{ConsoleInfo, ConsoleProtocol, DeviceInfo, VbdBackend, VbdConfig, VifConfig};
use crate::domain::{DomainConfig, DomainInfo, PhysInfo, ShutdownKind};
use crate::error::Result;
use crate::event::DomainEvent;

/// A host that runs domains: the simulated one (`sim::SimHost`) or Xen through libxl.
///
/// Conventions every backend keeps:
/// - `create`, `resume` and `migrate_receive` leave the new domain `Paused`; `unpause` starts
///   the guest. A domain counts its memory against the host from creation to destruction.
/// - `shutdown` returns once the domain is gone (for `Clean` and `Reboot` after the guest
///   has obeyed), so the caller may at once create it again.
/// - A guest that shuts down by itself is torn down by the backend, which publishes
///   `Shutdown{reason}` then `Destroyed`; a crashed guest stays `Crashed` until destroyed.
/// - The control domain (domid 0) is listed but refuses every lifecycle operation.
pub trait Hypervisor: Send + Sync {
    /// `host_cpu`, `host_metrics`, `host.capabilities`: what the host is and has free.
    fn physinfo(&self) -> Result<PhysInfo>;

    /// Every domain, dom0 first, in domid order.
    fn list(&self) -> Result<Vec<DomainInfo>>;

    /// The domain of one VM.
    fn domain(&self, uuid: &Uuid) -> Result<DomainInfo>;

    /// Build a domain from `config`, with its devices, and leave it paused.
    fn create(&self, config: &DomainConfig) -> Result<DomainInfo>;

    /// Stop scheduling a running domain.
    fn pause(&self, uuid: &Uuid) -> Result<()>;

    /// Run a paused domain (the first unpause boots the guest).
    fn unpause(&self, uuid: &Uuid) -> Result<()>;

    /// Shut a domain down: `Clean`/`Reboot` ask the guest and wait up to `timeout` for it
    /// (`Timeout` if it does not comply, the domain then keeps running); `Hard` destroys it.
    fn shutdown(&self, uuid: &Uuid, kind: ShutdownKind, timeout: Duration) -> Result<()>;

    /// Ask the guest to suspend (waiting up to `timeout`), save its image to `path`, then
    /// destroy the domain.
    fn suspend(&self, uuid: &Uuid, path: &Path, timeout: Duration) -> Result<()>;

    /// Rebuild a domain from a suspend image made for the same VM; it is left paused.
    fn resume(&self, config: &DomainConfig, path: &Path) -> Result<DomainInfo>;

    /// Suspend the guest (waiting up to `timeout`) and hand back its state as bytes; the
    /// domain is destroyed once the bytes are returned.
    fn migrate_send(&self, uuid: &Uuid, timeout: Duration) -> Result<Vec<u8>>;

    /// Rebuild a domain from `migrate_send` bytes; it is left paused.
    fn migrate_receive(&self, config: &DomainConfig, state: &[u8]) -> Result<DomainInfo>;

    /// `VM.set_VCPUs_number_live`: bring vCPUs on or off line, up to the domain's maximum.
    fn set_vcpus(&self, uuid: &Uuid, n_vcpus: u32) -> Result<()>;

    /// Move the balloon target (bytes, within the static range); `MemoryTargetReached` follows.
    fn set_memory_target(&self, uuid: &Uuid, bytes: u64) -> Result<()>;

    /// Hot-plug a disk or CD drive.
    fn attach_vbd(&self, uuid: &Uuid, vbd: &VbdConfig) -> Result<DeviceInfo>;

    /// Unplug a disk or CD drive; without `force` the guest must release it first.
    fn detach_vbd(&self, uuid: &Uuid, device: &str, force: bool) -> Result<()>;

    /// Put a disc into an empty CD drive.
    fn insert_cd(&self, uuid: &Uuid, device: &str, backend: &VbdBackend) -> Result<()>;

    /// Take the disc out of a CD drive.
    fn eject_cd(&self, uuid: &Uuid, device: &str) -> Result<()>;

    /// Hot-plug a network interface.
    fn attach_vif(&self, uuid: &Uuid, vif: &VifConfig) -> Result<DeviceInfo>;

    /// Unplug a network interface; without `force` the guest must release it first.
    fn detach_vif(&self, uuid: &Uuid, device: &str, force: bool) -> Result<()>;

    /// Start (or find) a console of the given protocol and say where it is.
    fn attach_console(&self, uuid: &Uuid, protocol: ConsoleProtocol) -> Result<ConsoleInfo>;

    /// What the guest agent published (`VM_guest_metrics`): xenstore paths relative to the
    /// domain (`data/os_version/name`, `attr/vif/0/ipv4/0`, `control/feature-shutdown`, ...).
    fn guest_data(&self, uuid: &Uuid) -> Result<BTreeMap<String, String>>;

    /// A new subscription to every domain event from now on.
    fn events(&self) -> Receiver<DomainEvent>;
}
