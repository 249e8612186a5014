//! The simulated host's domain table: every domain with its state, memory, vCPUs, devices,
//! consoles, xenstore subtree and faults, plus domid allocation and memory accounting.
//!
//! Pure data and bookkeeping under the engine's lock: no waiting, no I/O, no events.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::fault::Faults;
use super::xenstore::Xenstore;
use super::SimConfig;
use crate::device::{ConsoleInfo, DeviceInfo, DeviceKind, XenbusState};
use crate::domain::{DomainConfig, DomainInfo, DomainState, DomainType};
use crate::error::{Result, XenopsError};

/// The version of the state file layout.
pub const TABLE_VERSION: u32 = 1;

/// Domids from here on are reserved by Xen (`DOMID_FIRST_RESERVED`).
pub const DOMID_FIRST_RESERVED: u32 = 0x7ff0;

/// Something a guest does later, on the timer thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimerAction {
    /// The guest finished booting: frontends connect, the agent writes.
    Boot,
    /// The guest crashes.
    Crash,
    /// The guest powers off.
    Poweroff,
    /// The guest reboots.
    Reboot,
    /// The balloon driver reaches the target.
    Balloon,
}

/// A pending guest action, with its deadline as wall-clock milliseconds so it survives a
/// daemon restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTimer {
    /// What happens.
    pub action: TimerAction,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// One simulated domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimDomain {
    /// Its domid.
    pub domid: u32,
    /// What it was built from.
    pub config: DomainConfig,
    /// Its state.
    pub state: DomainState,
    /// Memory held now, bytes.
    pub memory_actual: u64,
    /// Balloon target, bytes.
    pub memory_target: u64,
    /// vCPUs online.
    pub vcpus_online: u32,
    /// Unpaused at least once (or restored from an image of a booted guest).
    pub booted: bool,
    /// The guest has finished booting (frontends connected, agent data written).
    pub guest_up: bool,
    /// Devices with hotplug states.
    pub devices: Vec<DeviceInfo>,
    /// Consoles.
    pub consoles: Vec<ConsoleInfo>,
    /// The domain's xenstore subtree.
    pub xenstore: Xenstore,
    /// Fault settings.
    pub faults: Faults,
    /// Guest actions still to come.
    pub timers: Vec<PendingTimer>,
}

impl SimDomain {
    /// Memory counted against the host: a raised target is reserved at once, a lowered one
    /// is released only when the balloon gets there.
    pub fn charged(&self) -> u64 {
        self.memory_actual.max(self.memory_target)
    }

    /// The public view.
    pub fn info(&self) -> DomainInfo {
        DomainInfo {
            domid: self.domid,
            uuid: self.config.uuid,
            name: self.config.name.clone(),
            domain_type: self.config.domain_type,
            state: self.state,
            memory_actual: self.memory_actual,
            memory_target: self.memory_target,
            memory_static_max: self.config.memory.static_max,
            vcpus_max: self.config.vcpus.max,
            vcpus_online: self.vcpus_online,
            devices: self.devices.clone(),
            consoles: self.consoles.clone(),
        }
    }

    /// The guest runs PV frontends (and the agent).
    pub fn has_pv_drivers(&self) -> bool {
        !self.faults.no_pv_drivers
    }

    /// Index of a device by kind and name.
    pub fn device_index(&self, kind: DeviceKind, device: &str) -> Option<usize> {
        self.devices
            .iter()
            .position(|d| d.kind() == kind && d.device == device)
    }

    /// Record a device end's state in xenstore (frontend under `device/`).
    pub fn write_device_state(&mut self, index: usize) {
        let dev = &self.devices[index];
        let path = format!("device/{}/{}/state", dev.kind(), dev.devid);
        let value = dev.frontend_state.as_number().to_string();
        self.xenstore.write(&path, value);
    }

    /// Record memory figures in xenstore (KiB, as Xen does).
    pub fn write_memory_nodes(&mut self) {
        let target_kib = (self.memory_target / 1024).to_string();
        let max_kib = (self.config.memory.static_max / 1024).to_string();
        self.xenstore.write("memory/target", target_kib);
        self.xenstore.write("memory/static-max", max_kib);
    }

    /// Record which vCPUs are online in xenstore.
    pub fn write_vcpu_nodes(&mut self) {
        for i in 0..self.config.vcpus.max {
            let state = if i < self.vcpus_online {
                "online"
            } else {
                "offline"
            };
            self.xenstore.write(&format!("cpu/{i}/availability"), state);
        }
    }

    /// What the simulated guest agent publishes once the guest is up. Returns true when
    /// anything changed.
    pub fn write_agent_data(&mut self) -> bool {
        if !self.has_pv_drivers() {
            return false;
        }
        let kib = self.memory_actual / 1024;
        let mut nodes: Vec<(String, String)> = vec![
            (
                "data/os_version/name".into(),
                "SimLinux 1.0 (simulated guest)".into(),
            ),
            ("data/os_version/distro".into(), "simlinux".into()),
            ("data/os_version/major".into(), "1".into()),
            ("data/os_version/minor".into(), "0".into()),
            ("data/os_version/uname".into(), "6.1.0-sim".into()),
            ("data/meminfo_total".into(), kib.to_string()),
            ("data/meminfo_free".into(), (kib * 3 / 4).to_string()),
            ("attr/PVAddons/MajorVersion".into(), "9".into()),
            ("attr/PVAddons/MinorVersion".into(), "0".into()),
            ("attr/PVAddons/MicroVersion".into(), "0".into()),
            ("attr/PVAddons/BuildVersion".into(), "1".into()),
            ("control/feature-shutdown".into(), "1".into()),
            ("control/feature-suspend".into(), "1".into()),
            ("control/feature-vcpu-hotplug".into(), "1".into()),
        ];
        if !self.faults.ignore_balloon {
            nodes.push(("control/feature-balloon".into(), "1".into()));
        }
        for dev in &self.devices {
            if dev.kind() == DeviceKind::Vif {
                nodes.push((
                    format!("attr/vif/{}/ipv4/0", dev.devid),
                    guest_ip(self.domid, dev.devid),
                ));
            }
        }
        let mut changed = false;
        for (path, value) in nodes {
            changed |= self.xenstore.write(&path, value);
        }
        changed
    }

    /// Connect every device whose frontend is not connected yet (the guest is up and has
    /// PV drivers). Returns the indices that changed.
    pub fn connect_frontends(&mut self) -> Vec<usize> {
        if !self.has_pv_drivers() {
            return Vec::new();
        }
        let mut changed = Vec::new();
        for i in 0..self.devices.len() {
            let dev = &mut self.devices[i];
            if dev.backend_state == XenbusState::InitWait {
                dev.backend_state = XenbusState::Connected;
                dev.frontend_state = XenbusState::Connected;
                changed.push(i);
            }
        }
        for &i in &changed {
            self.write_device_state(i);
        }
        changed
    }
}

/// The address the simulated agent reports for a VIF: link-local, derived from domid and
/// device so it is stable and distinct. It is only data.
pub fn guest_ip(domid: u32, devid: u32) -> String {
    let n = domid * 16 + devid;
    format!("169.254.{}.{}", 1 + (n / 254) % 253, 1 + n % 254)
}

/// Every domain of the simulated host except dom0, and what dom0 is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    /// `TABLE_VERSION` when written.
    pub version: u32,
    /// The kernel boot the table belongs to.
    pub boot_id: Option<String>,
    /// dom0's uuid (the control domain VM).
    pub dom0_uuid: Uuid,
    /// The next domid to hand out.
    pub next_domid: u32,
    /// Domains by domid (stored one record each, not with the host record).
    #[serde(skip)]
    pub domains: BTreeMap<u32, SimDomain>,
    /// VMs whose next `create` fails.
    pub fail_next_start: BTreeSet<Uuid>,
    /// uuid -> domid, rebuilt on load.
    #[serde(skip)]
    pub by_uuid: HashMap<Uuid, u32>,
}

impl Table {
    /// An empty host: only dom0.
    pub fn new(dom0_uuid: Uuid, boot_id: Option<String>) -> Self {
        Table {
            version: TABLE_VERSION,
            boot_id,
            dom0_uuid,
            next_domid: 1,
            domains: BTreeMap::new(),
            fail_next_start: BTreeSet::new(),
            by_uuid: HashMap::new(),
        }
    }

    /// Rebuild indexes after loading and drop domains caught half torn down. Returns the
    /// number of domains dropped.
    pub fn after_load(&mut self) -> Result<usize> {
        if self.version != TABLE_VERSION {
            return Err(XenopsError::State(format!(
                "state file version {} is not {TABLE_VERSION}",
                self.version
            )));
        }
        let before = self.domains.len();
        self.domains.retain(|_, d| {
            matches!(
                d.state,
                DomainState::Running | DomainState::Paused | DomainState::Crashed
            )
        });
        self.by_uuid = self
            .domains
            .values()
            .map(|d| (d.config.uuid, d.domid))
            .collect();
        if self.by_uuid.len() != self.domains.len() {
            return Err(XenopsError::State("two domains share a vm uuid".into()));
        }
        let highest = self.domains.keys().next_back().copied().unwrap_or(0);
        self.next_domid = self.next_domid.max(highest + 1);
        Ok(before - self.domains.len())
    }

    /// Memory held by domains other than dom0.
    pub fn charged(&self) -> u64 {
        self.domains.values().map(SimDomain::charged).sum()
    }

    /// Host memory nobody holds.
    pub fn free_memory(&self, config: &SimConfig) -> u64 {
        config
            .total_memory
            .saturating_sub(config.dom0_memory)
            .saturating_sub(self.charged())
    }

    /// The domid of a VM's domain; dom0's uuid gives `ControlDomain`.
    pub fn domid_of(&self, uuid: &Uuid) -> Result<u32> {
        if *uuid == self.dom0_uuid {
            return Err(XenopsError::ControlDomain);
        }
        self.by_uuid
            .get(uuid)
            .copied()
            .ok_or(XenopsError::NoSuchDomain(*uuid))
    }

    /// A VM's domain.
    pub fn get(&self, uuid: &Uuid) -> Result<&SimDomain> {
        let domid = self.domid_of(uuid)?;
        self.domains
            .get(&domid)
            .ok_or(XenopsError::NoSuchDomain(*uuid))
    }

    /// A VM's domain, mutable.
    pub fn get_mut(&mut self, uuid: &Uuid) -> Result<&mut SimDomain> {
        let domid = self.domid_of(uuid)?;
        self.domains
            .get_mut(&domid)
            .ok_or(XenopsError::NoSuchDomain(*uuid))
    }

    /// The domain with this domid if it still belongs to `uuid` (it may have been destroyed
    /// and the VM started again under a new domid meanwhile).
    pub fn same(&mut self, uuid: &Uuid, domid: u32) -> Option<&mut SimDomain> {
        self.domains
            .get_mut(&domid)
            .filter(|d| d.config.uuid == *uuid)
    }

    /// Hand out the next domid. Like Xen, the counter only wraps (skipping domids in use)
    /// once it reaches the reserved range, so a domid is not reused for ~32,000 creates.
    pub fn allocate_domid(&mut self) -> Result<u32> {
        for _ in 1..DOMID_FIRST_RESERVED {
            if self.next_domid >= DOMID_FIRST_RESERVED || self.next_domid == 0 {
                self.next_domid = 1;
            }
            let domid = self.next_domid;
            self.next_domid += 1;
            if !self.domains.contains_key(&domid) {
                return Ok(domid);
            }
        }
        Err(XenopsError::BootFailure("every domid is in use".into()))
    }

    /// Add a built domain.
    pub fn insert(&mut self, domain: SimDomain) {
        self.by_uuid.insert(domain.config.uuid, domain.domid);
        self.domains.insert(domain.domid, domain);
    }

    /// Remove a domain, returning its memory to the host.
    pub fn remove(&mut self, domid: u32) -> Option<SimDomain> {
        let domain = self.domains.remove(&domid)?;
        self.by_uuid.remove(&domain.config.uuid);
        Some(domain)
    }

    /// dom0 as a domain listing entry.
    pub fn dom0_info(&self, config: &SimConfig) -> DomainInfo {
        DomainInfo {
            domid: 0,
            uuid: self.dom0_uuid,
            name: "Control domain".into(),
            domain_type: DomainType::Pv,
            state: DomainState::Running,
            memory_actual: config.dom0_memory,
            memory_target: config.dom0_memory,
            memory_static_max: config.dom0_memory,
            vcpus_max: config.dom0_vcpus,
            vcpus_online: config.dom0_vcpus,
            devices: Vec::new(),
            consoles: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charged_memory_is_the_larger_of_actual_and_target() {
        let config = DomainConfig::new_pv(Uuid::new_v4(), "t", 1 << 30);
        let mut d = SimDomain {
            domid: 1,
            config,
            state: DomainState::Running,
            memory_actual: 100,
            memory_target: 300,
            vcpus_online: 1,
            booted: true,
            guest_up: true,
            devices: Vec::new(),
            consoles: Vec::new(),
            xenstore: Xenstore::default(),
            faults: Faults::default(),
            timers: Vec::new(),
        };
        assert_eq!(d.charged(), 300);
        d.memory_target = 50;
        assert_eq!(d.charged(), 100);
    }

    #[test]
    fn domids_wrap_before_the_reserved_range_and_skip_those_in_use() {
        let mut table = Table::new(Uuid::new_v4(), None);
        assert_eq!(table.allocate_domid().unwrap(), 1);
        let mut running = SimDomain {
            domid: 1,
            config: DomainConfig::new_pv(Uuid::new_v4(), "t", 1 << 30),
            state: DomainState::Running,
            memory_actual: 1,
            memory_target: 1,
            vcpus_online: 1,
            booted: true,
            guest_up: true,
            devices: Vec::new(),
            consoles: Vec::new(),
            xenstore: Xenstore::default(),
            faults: Faults::default(),
            timers: Vec::new(),
        };
        table.insert(running.clone());
        running.domid = 2;
        running.config.uuid = Uuid::new_v4();
        table.insert(running);
        table.next_domid = DOMID_FIRST_RESERVED - 1;
        assert_eq!(table.allocate_domid().unwrap(), DOMID_FIRST_RESERVED - 1);
        assert_eq!(table.allocate_domid().unwrap(), 3);
    }

    #[test]
    fn guest_ips_are_link_local_and_distinct_per_device() {
        assert_eq!(guest_ip(1, 0), "169.254.1.17");
        assert_ne!(guest_ip(1, 0), guest_ip(1, 1));
        assert_ne!(guest_ip(2, 0), guest_ip(1, 0));
    }
}
