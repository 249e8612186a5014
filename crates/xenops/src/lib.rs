//! `xenops`: the hypervisor layer. It owns the `Hypervisor` trait through which the daemon
//! does all VM, device and host work, the types that trait speaks (build descriptions,
//! domain and device reports, events, `XenopsError`), and its backends:
//!
//! - `sim` (always built): `SimHost`, a faithful simulated Xen host;
//! - `xen` (cargo feature `xen`): `XenHost`, libxl through `xen-sys`, a context owned by a
//!   dedicated thread behind the same trait, and a xenstore watcher feeding `events()`
//!   (see `docs/xen-backend.md`).
//!
//! It never sees XenAPI types (no `Ref<T>`, no API error codes): VMs are named by uuid,
//! domains by domid, and errors are `XenopsError`, which the daemon maps to API errors.
//! Everything is blocking; the daemon calls it from `spawn_blocking` threads.
//!
//! ```
//! use std::time::Duration;
//! use xenops::sim::{SimConfig, SimHost};
//! use xenops::{DomainConfig, DomainState, Hypervisor, ShutdownKind};
//!
//! let host = SimHost::new(SimConfig::default()).unwrap();
//! let vm = uuid::Uuid::new_v4();
//! let domain = host.create(&DomainConfig::new_pv(vm, "demo", 512 << 20)).unwrap();
//! assert_eq!(domain.state, DomainState::Paused);
//! host.unpause(&vm).unwrap();
//! assert_eq!(host.guest_data(&vm).unwrap()["control/feature-shutdown"], "1");
//! host.shutdown(&vm, ShutdownKind::Clean, Duration::from_secs(5)).unwrap();
//! assert_eq!(host.list().unwrap().len(), 1); // dom0 only
//! ```

pub mod device;
pub mod domain;
pub mod error;
pub mod event;
pub mod hypervisor;
pub mod sim;
#[cfg(feature = "xen")]
pub mod xen;

pub use device::{
    ConsoleInfo, ConsoleLocation, ConsoleProtocol, DeviceInfo, DeviceKind, DeviceSpec, VbdBackend,
    VbdConfig, VbdKind, VbdMode, VifConfig, XenbusState,
};
pub use domain::{
    BootConfig, DomainConfig, DomainInfo, DomainState, DomainType, Firmware, MemoryConfig,
    PhysInfo, PvBoot, ShutdownKind, ShutdownReason, VcpuConfig,
};
pub use error::{Result, XenopsError};
pub use event::{DomainEvent, EventBus};
pub use hypervisor::Hypervisor;
