//! Domain build descriptions (`DomainConfig`) and what a backend reports about domains
//! (`DomainInfo`, `DomainState`) and the host (`PhysInfo`).
//!
//! Plain data only: no backend logic, no XenAPI types. Memory is always in bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::device::{ConsoleInfo, DeviceInfo, VbdConfig, VifConfig};
use crate::error::{Result, XenopsError};

/// The virtualisation mode of a domain (`VM.domain_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainType {
    /// Paravirtualised: boots a kernel directly or through a bootloader.
    Pv,
    /// PVH: a PV-style boot of a hardware-virtualised container.
    Pvh,
    /// Fully hardware-virtualised with emulated firmware and devices.
    Hvm,
}

/// How a PV or PVH domain finds its kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PvBoot {
    /// A kernel (and optional ramdisk) given directly.
    Direct {
        /// Path of the kernel image in dom0.
        kernel: PathBuf,
        /// Path of the initial ramdisk, if any.
        ramdisk: Option<PathBuf>,
        /// The kernel command line.
        cmdline: String,
    },
    /// A bootloader (e.g. `pygrub`) that extracts the kernel from the guest's disk.
    Bootloader {
        /// The bootloader name or path.
        bootloader: String,
        /// Extra arguments for the bootloader.
        args: String,
    },
}

/// The firmware an HVM domain boots with (`platform:device-model`, `HVM_boot_params:firmware`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// Legacy BIOS.
    Bios,
    /// UEFI (OVMF).
    Uefi,
}

/// How the domain boots; the variant must match the `DomainType`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootConfig {
    /// PV or PVH boot.
    Pv(PvBoot),
    /// HVM boot.
    Hvm {
        /// Boot device order, letters from `c` (disk), `d` (CD) and `n` (network): `"cdn"`.
        boot_order: String,
        /// The firmware.
        firmware: Firmware,
    },
}

/// Memory of a domain, in bytes (`VM.memory_static_min` .. `memory_static_max`).
///
/// Valid when `static_min <= dynamic_min <= target <= dynamic_max <= static_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryConfig {
    /// Lowest memory the domain may ever have.
    pub static_min: u64,
    /// Highest memory the domain may ever have (its maximum reservation).
    pub static_max: u64,
    /// Lowest balloon target the toolstack may set.
    pub dynamic_min: u64,
    /// Highest balloon target the toolstack may set.
    pub dynamic_max: u64,
    /// Memory the domain is built with and balloons to.
    pub target: u64,
}

impl MemoryConfig {
    /// A fixed-size domain: every bound equal to `bytes`.
    pub fn fixed(bytes: u64) -> Self {
        MemoryConfig {
            static_min: bytes,
            static_max: bytes,
            dynamic_min: bytes,
            dynamic_max: bytes,
            target: bytes,
        }
    }

    /// Check the ordering `static_min <= dynamic_min <= target <= dynamic_max <= static_max`.
    pub fn validate(&self) -> Result<()> {
        let MemoryConfig {
            static_min,
            static_max,
            dynamic_min,
            dynamic_max,
            target,
        } = *self;
        if target == 0 {
            return Err(XenopsError::InvalidConfig("memory target is zero".into()));
        }
        let ordered = static_min <= dynamic_min
            && dynamic_min <= target
            && target <= dynamic_max
            && dynamic_max <= static_max;
        if !ordered {
            return Err(XenopsError::InvalidConfig(format!(
                "memory must satisfy static_min {static_min} <= dynamic_min {dynamic_min} <= \
                 target {target} <= dynamic_max {dynamic_max} <= static_max {static_max}"
            )));
        }
        Ok(())
    }
}

/// vCPUs of a domain (`VM.VCPUs_max`, `VM.VCPUs_at_startup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VcpuConfig {
    /// vCPUs the domain is built with; the most it can ever have online.
    pub max: u32,
    /// vCPUs online when the domain starts.
    pub at_startup: u32,
}

/// A build description: everything needed to create a domain for a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainConfig {
    /// The VM's uuid; the domain is known by it.
    pub uuid: Uuid,
    /// A human-readable name (the VM's `name_label`), for logs and xenstore.
    pub name: String,
    /// PV, PVH or HVM.
    pub domain_type: DomainType,
    /// vCPU counts.
    pub vcpus: VcpuConfig,
    /// Memory bounds and target.
    pub memory: MemoryConfig,
    /// Kernel or firmware boot.
    pub boot: BootConfig,
    /// Platform flags (`VM.platform`: `acpi`, `apic`, `viridian`, `nx`, ...).
    pub platform: BTreeMap<String, String>,
    /// Toolstack-private keys (from `VM.other_config`). The sim reads its `sim-*` fault
    /// keys from here and from `platform`.
    pub other_config: BTreeMap<String, String>,
    /// Disks and CD drives present at boot.
    pub vbds: Vec<VbdConfig>,
    /// Network interfaces present at boot.
    pub vifs: Vec<VifConfig>,
}

impl DomainConfig {
    /// A minimal PV domain with a fixed memory size and one vCPU: a starting point for tests.
    pub fn new_pv(uuid: Uuid, name: &str, memory_bytes: u64) -> Self {
        DomainConfig {
            uuid,
            name: name.to_string(),
            domain_type: DomainType::Pv,
            vcpus: VcpuConfig {
                max: 1,
                at_startup: 1,
            },
            memory: MemoryConfig::fixed(memory_bytes),
            boot: BootConfig::Pv(PvBoot::Bootloader {
                bootloader: "pygrub".into(),
                args: String::new(),
            }),
            platform: BTreeMap::new(),
            other_config: BTreeMap::new(),
            vbds: Vec::new(),
            vifs: Vec::new(),
        }
    }

    /// A minimal HVM domain (BIOS, boot order `cd`) with a fixed memory size and one vCPU.
    pub fn new_hvm(uuid: Uuid, name: &str, memory_bytes: u64) -> Self {
        DomainConfig {
            domain_type: DomainType::Hvm,
            boot: BootConfig::Hvm {
                boot_order: "cd".into(),
                firmware: Firmware::Bios,
            },
            ..DomainConfig::new_pv(uuid, name, memory_bytes)
        }
    }

    /// Look a key up in `other_config`, then in `platform`.
    pub fn key(&self, name: &str) -> Option<&str> {
        self.other_config
            .get(name)
            .or_else(|| self.platform.get(name))
            .map(String::as_str)
    }

    /// Check everything that does not depend on the host: memory order, vCPU counts and
    /// that the boot description fits the domain type. Host limits are the backend's job.
    pub fn validate(&self) -> Result<()> {
        self.memory.validate()?;
        let VcpuConfig { max, at_startup } = self.vcpus;
        if max == 0 || at_startup == 0 {
            return Err(XenopsError::InvalidConfig(
                "a domain needs at least one vcpu".into(),
            ));
        }
        if at_startup > max {
            return Err(XenopsError::TooManyVcpus {
                requested: at_startup,
                max,
            });
        }
        match (&self.domain_type, &self.boot) {
            (DomainType::Pv | DomainType::Pvh, BootConfig::Pv(boot)) => {
                if let PvBoot::Direct { kernel, .. } = boot {
                    if kernel.as_os_str().is_empty() {
                        return Err(XenopsError::InvalidConfig("empty kernel path".into()));
                    }
                }
            }
            (DomainType::Hvm, BootConfig::Hvm { boot_order, .. }) => {
                if boot_order.is_empty() || !boot_order.chars().all(|c| "cdn".contains(c)) {
                    return Err(XenopsError::InvalidConfig(format!(
                        "boot order {boot_order:?} must be letters from \"cdn\""
                    )));
                }
            }
            (domain_type, _) => {
                return Err(XenopsError::InvalidConfig(format!(
                    "boot description does not fit domain type {domain_type:?}"
                )));
            }
        }
        Ok(())
    }
}

/// Why a domain shut down (the guest's or the toolstack's reason).
///
/// A crash is not a shutdown reason here: it is the `DomainState::Crashed` state and the
/// `DomainEvent::Crashed` event, because the domain stays until the toolstack destroys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShutdownReason {
    /// The guest powered itself off.
    Poweroff,
    /// The guest halted on the toolstack's clean shutdown request.
    Halt,
    /// The guest rebooted (by itself or on request); the toolstack decides whether to restart.
    Reboot,
    /// The guest suspended on request; its memory image has been saved.
    Suspend,
}

/// The state of a domain as the hypervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainState {
    /// Scheduled and running guest code.
    Running,
    /// Built or paused: holds its memory but runs nothing.
    Paused,
    /// The guest has shut down; the domain is about to be torn down.
    Shutdown(ShutdownReason),
    /// The guest crashed; the domain stays (with its memory) until destroyed.
    Crashed,
    /// Being destroyed; gone once its resources are released.
    Dying,
}

impl fmt::Display for DomainState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainState::Running => f.write_str("running"),
            DomainState::Paused => f.write_str("paused"),
            DomainState::Shutdown(reason) => write!(f, "shutdown ({reason:?})"),
            DomainState::Crashed => f.write_str("crashed"),
            DomainState::Dying => f.write_str("dying"),
        }
    }
}

/// What a shutdown call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShutdownKind {
    /// Ask the guest to halt, wait for it, then destroy the domain.
    Clean,
    /// Ask the guest to reboot, wait for it, then destroy the domain (the toolstack restarts it).
    Reboot,
    /// Destroy the domain at once, whatever the guest does.
    Hard,
}

/// A domain as the backend reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainInfo {
    /// The Xen domain id; 0 is the control domain.
    pub domid: u32,
    /// The VM uuid.
    pub uuid: Uuid,
    /// The name given at build time.
    pub name: String,
    /// PV, PVH or HVM (dom0 reports PV).
    pub domain_type: DomainType,
    /// The current state.
    pub state: DomainState,
    /// Memory the domain holds now, in bytes.
    pub memory_actual: u64,
    /// The balloon target, in bytes.
    pub memory_target: u64,
    /// The maximum reservation, in bytes.
    pub memory_static_max: u64,
    /// vCPUs the domain was built with.
    pub vcpus_max: u32,
    /// vCPUs online now.
    pub vcpus_online: u32,
    /// Disks, CD drives and network interfaces with their hotplug states.
    pub devices: Vec<DeviceInfo>,
    /// Consoles and where to reach them.
    pub consoles: Vec<ConsoleInfo>,
}

/// The host as the hypervisor reports it (`host_cpu`, `host_metrics`, `host.capabilities`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysInfo {
    /// Logical CPUs.
    pub nr_cpus: u32,
    /// CPU sockets.
    pub sockets: u32,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// Hardware threads per core.
    pub threads_per_core: u32,
    /// CPU clock, in MHz.
    pub cpu_mhz: u32,
    /// Host memory, in bytes.
    pub total_memory: u64,
    /// Memory not held by any domain, in bytes.
    pub free_memory: u64,
    /// Guest ABIs the host runs: `xen-3.0-x86_64`, `hvm-3.0-x86_64`, ...
    pub capabilities: Vec<String>,
    /// The hypervisor version string.
    pub xen_version: String,
    /// Most vCPUs one domain may have.
    pub max_vcpus_per_domain: u32,
}
