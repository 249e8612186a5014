//! The libxl thread's state and operations: the `Xen` handles, the table of domains this
//! backend built (persisted as one JSON file per VM under the state dir), and the reconcile
//! step that turns hypervisor facts into `DomainEvent`s and tears down guests that shut down.
//! Runs only on the libxl thread; never blocks waiting for a guest (callers do that).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};
use uuid::Uuid;
use xenstore::{Client, XsOps};

use super::errors::{self, Failed};
use super::ffi::{RawDomain, Xen};
use super::{libxl_json, nbd, paths};
use crate::device::{
    vbd_devid, vif_devid, ConsoleInfo, ConsoleLocation, ConsoleProtocol, DeviceInfo, DeviceKind,
    DeviceSpec, VbdBackend, VbdConfig, VbdKind, VifConfig, XenbusState,
};
use crate::domain::{DomainConfig, DomainInfo, DomainState, DomainType, PhysInfo, ShutdownReason};
use crate::error::{Result, XenopsError};
use crate::event::{DomainEvent, EventBus};

const PAGE: u64 = 4096;
/// Xen's limit of vCPUs for an HVM domain (`HVM_MAX_VCPUS`), the tightest of the modes.
const MAX_VCPUS_PER_DOMAIN: u32 = 128;
/// How deep `guest_data` walks below `data/` and `attr/`.
const GUEST_DATA_DEPTH: usize = 6;

/// What the backend remembers of a domain it built (persisted across daemon restarts).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    domid: u32,
    config: DomainConfig,
    /// The balloon target last set, in bytes, until the guest reaches it.
    #[serde(default)]
    pending_target: Option<u64>,
    /// The last state published.
    #[serde(default)]
    last_state: Option<DomainState>,
    /// The kernel NBD devices (`/dev/nbdN`) connected for this domain's NBD-backed VBDs
    /// and CDs, by VBD device name; disconnected when the VBD or the domain goes.
    #[serde(default)]
    nbd: BTreeMap<String, PathBuf>,
}

/// The libxl thread's world.
pub struct Backend {
    xen: Xen,
    xs: Client,
    events: Arc<EventBus>,
    state_dir: PathBuf,
    /// By VM uuid.
    records: HashMap<Uuid, Record>,
    /// Domids we asked to halt, so their poweroff reads as `Halt`.
    halt_requested: HashSet<u32>,
}

impl Backend {
    /// Open the handles and reload the records of domains that still exist.
    pub fn open(state_dir: &Path, events: Arc<EventBus>, debug: bool) -> Result<Backend> {
        let xen = Xen::open(debug).map_err(XenopsError::State)?;
        let xs = Client::open()
            .map_err(|err| XenopsError::State(format!("cannot connect to xenstored: {err}")))?;
        let mut backend = Backend {
            xen,
            xs,
            events,
            state_dir: state_dir.to_path_buf(),
            records: HashMap::new(),
            halt_requested: HashSet::new(),
        };
        backend.load_records()?;
        Ok(backend)
    }

    fn load_records(&mut self) -> Result<()> {
        let live: HashMap<u32, [u8; 16]> = self
            .raw_domains()?
            .into_iter()
            .map(|d| (d.domid, d.handle))
            .collect();
        for entry in std::fs::read_dir(&self.state_dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let record: Record = match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
            {
                Ok(record) => record,
                Err(err) => {
                    warn!(path = %path.display(), error = %err, "unreadable domain record skipped");
                    continue;
                }
            };
            if live.get(&record.domid) == Some(record.config.uuid.as_bytes()) {
                self.records.insert(record.config.uuid, record);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(())
    }

    fn record_path(&self, uuid: &Uuid) -> PathBuf {
        self.state_dir.join(format!("{uuid}.json"))
    }

    fn save(&self, record: &Record) -> Result<()> {
        let path = self.record_path(&record.config.uuid);
        let tmp = path.with_extension("tmp");
        let bytes =
            serde_json::to_vec_pretty(record).map_err(|err| XenopsError::State(err.to_string()))?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    fn forget(&mut self, uuid: &Uuid) {
        self.records.remove(uuid);
        let _ = std::fs::remove_file(self.record_path(uuid));
    }

    fn raw_domains(&self) -> Result<Vec<RawDomain>> {
        self.xen
            .domains()
            .map_err(|rc| XenopsError::State(format!("xc_domain_getinfolist failed ({rc})")))
    }

    /// The domid of a VM's domain; dom0 refuses with `ControlDomain`.
    fn domid(&self, uuid: &Uuid) -> Result<u32> {
        if let Some(record) = self.records.get(uuid) {
            return Ok(record.domid);
        }
        let found = self
            .raw_domains()?
            .into_iter()
            .find(|d| d.handle == *uuid.as_bytes());
        match found {
            Some(d) if d.domid == 0 => Err(XenopsError::ControlDomain),
            Some(d) => Ok(d.domid),
            None => Err(XenopsError::NoSuchDomain(*uuid)),
        }
    }

    fn record(&self, uuid: &Uuid) -> Result<&Record> {
        self.records
            .get(uuid)
            .ok_or_else(|| match self.domid(uuid) {
                Err(err) => err,
                // A domain we did not build (e.g. by `xl create`): not ours to manage devices on.
                Ok(_) => XenopsError::State(format!("domain of vm {uuid} was not built by xapi")),
            })
    }

    /// `physinfo`.
    pub fn physinfo(&self) -> Result<PhysInfo> {
        let raw = self
            .xen
            .physinfo()
            .map_err(|rc| XenopsError::State(format!("xc_physinfo failed ({rc})")))?;
        let per_socket = (raw.cores_per_socket * raw.threads_per_core).max(1);
        Ok(PhysInfo {
            nr_cpus: raw.nr_cpus,
            sockets: (raw.nr_cpus / per_socket).max(1),
            cores_per_socket: raw.cores_per_socket,
            threads_per_core: raw.threads_per_core,
            cpu_mhz: raw.cpu_khz / 1000,
            total_memory: raw.total_pages * PAGE,
            free_memory: raw.free_pages * PAGE,
            capabilities: raw
                .capabilities
                .split_whitespace()
                .map(String::from)
                .collect(),
            xen_version: raw.version,
            max_vcpus_per_domain: MAX_VCPUS_PER_DOMAIN,
        })
    }

    /// `list`.
    pub fn list(&self) -> Result<Vec<DomainInfo>> {
        Ok(self
            .raw_domains()?
            .iter()
            .map(|raw| self.info_of(raw))
            .collect())
    }

    /// `domain`.
    pub fn domain(&self, uuid: &Uuid) -> Result<DomainInfo> {
        let domid = match self.records.get(uuid) {
            Some(record) => record.domid,
            None => {
                let raw = self.raw_domains()?;
                let found = raw.iter().find(|d| d.handle == *uuid.as_bytes());
                return found
                    .map(|d| self.info_of(d))
                    .ok_or(XenopsError::NoSuchDomain(*uuid));
            }
        };
        self.raw_domains()?
            .iter()
            .find(|d| d.domid == domid)
            .map(|d| self.info_of(d))
            .ok_or(XenopsError::NoSuchDomain(*uuid))
    }

    fn info_of(&self, raw: &RawDomain) -> DomainInfo {
        let uuid = Uuid::from_bytes(raw.handle);
        let record = self.records.get(&uuid).filter(|r| r.domid == raw.domid);
        let state = errors::state_of(raw.flags, self.halt_requested.contains(&raw.domid));
        let name = match record {
            Some(r) => r.config.name.clone(),
            None if raw.domid == 0 => "Domain-0".to_string(),
            None => self
                .xs
                .read_string(&paths::name(raw.domid))
                .unwrap_or_default(),
        };
        let domain_type = match record {
            Some(r) => r.config.domain_type,
            None if raw.flags & errors::DOMINF_HVM != 0 => DomainType::Hvm,
            None => DomainType::Pv,
        };
        let memory_actual = raw.tot_pages * PAGE;
        let memory_target = self
            .xs
            .read_string(&paths::memory_target(raw.domid))
            .ok()
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map_or(memory_actual, |kib| kib * 1024);
        DomainInfo {
            domid: raw.domid,
            uuid,
            name,
            domain_type,
            state,
            memory_actual,
            memory_target,
            memory_static_max: record.map_or(raw.max_pages * PAGE, |r| r.config.memory.static_max),
            vcpus_max: raw.max_vcpu_id + 1,
            vcpus_online: raw.online_vcpus,
            devices: record.map(|r| self.devices_of(r)).unwrap_or_default(),
            consoles: record.map(|r| self.consoles_of(r)).unwrap_or_default(),
        }
    }

    fn devices_of(&self, record: &Record) -> Vec<DeviceInfo> {
        let vbds = record.config.vbds.iter().filter_map(|vbd| {
            let devid = vbd_devid(&vbd.device).ok()?;
            Some(self.device_info(
                record.domid,
                DeviceSpec::Vbd(vbd.clone()),
                &vbd.device,
                devid,
            ))
        });
        let vifs = record.config.vifs.iter().filter_map(|vif| {
            let devid = vif_devid(&vif.device).ok()?;
            Some(self.device_info(
                record.domid,
                DeviceSpec::Vif(vif.clone()),
                &vif.device,
                devid,
            ))
        });
        vbds.chain(vifs).collect()
    }

    fn device_info(&self, domid: u32, spec: DeviceSpec, device: &str, devid: u32) -> DeviceInfo {
        let kind = match spec {
            DeviceSpec::Vbd(_) => DeviceKind::Vbd,
            DeviceSpec::Vif(_) => DeviceKind::Vif,
        };
        let frontend = paths::frontend_path(domid, kind, devid);
        let read_state = |dir: &str| {
            self.xs
                .read_string(&format!("{dir}/state"))
                .map_or(XenbusState::Unknown, |v| paths::xenbus_state(&v))
        };
        let backend_state = self
            .xs
            .read_string(&format!("{frontend}/backend"))
            .map_or(XenbusState::Unknown, |dir| read_state(&dir));
        DeviceInfo {
            device: device.to_string(),
            devid,
            backend_state,
            frontend_state: read_state(&frontend),
            spec,
        }
    }

    fn consoles_of(&self, record: &Record) -> Vec<ConsoleInfo> {
        let mut consoles = Vec::new();
        if let Ok(tty) = self.xs.read_string(&paths::console_tty(record.domid)) {
            consoles.push(ConsoleInfo {
                protocol: ConsoleProtocol::Vt100,
                location: ConsoleLocation::Pty(tty.into()),
            });
        }
        if let Some(port) = self.vnc_port(record.domid) {
            consoles.push(ConsoleInfo {
                protocol: ConsoleProtocol::Rfb,
                location: ConsoleLocation::VncPort(port),
            });
        }
        consoles
    }

    fn vnc_port(&self, domid: u32) -> Option<u16> {
        self.xs
            .read_string(&paths::vnc_port(domid))
            .ok()
            .and_then(|port| port.trim().parse().ok())
    }

    /// `create` (and, with an image, `resume`).
    pub fn create(&mut self, config: &DomainConfig, image: Option<&Path>) -> Result<DomainInfo> {
        let op = if image.is_some() { "resume" } else { "create" };
        if self.domid(&config.uuid).is_ok() {
            return Err(XenopsError::AlreadyExists(config.uuid));
        }
        // Validates the config before anything is connected.
        libxl_json::domain_config(config)?;
        let phys = self.physinfo()?;
        if config.memory.static_max > phys.free_memory {
            return Err(XenopsError::NotEnoughMemory {
                needed: config.memory.static_max,
                free: phys.free_memory,
            });
        }
        if config.vcpus.max > phys.max_vcpus_per_domain {
            return Err(XenopsError::TooManyVcpus {
                requested: config.vcpus.max,
                max: phys.max_vcpus_per_domain,
            });
        }
        let mut local = config.clone();
        let mut connected = BTreeMap::new();
        for vbd in &mut local.vbds {
            match self.localise(vbd, &connected) {
                Ok((changed, device)) => {
                    *vbd = changed;
                    if let Some(device) = device {
                        connected.insert(vbd.device.clone(), device);
                    }
                }
                Err(err) => {
                    connected.values().for_each(|d| nbd::disconnect(d));
                    return Err(err);
                }
            }
        }
        let json = match libxl_json::domain_config(&local) {
            Ok(doc) => doc.to_string(),
            Err(err) => {
                connected.values().for_each(|d| nbd::disconnect(d));
                return Err(err);
            }
        };
        debug!(vm = %config.uuid, config = %json, "libxl domain config");
        let failed = |rc| {
            errors::from_libxl(
                Failed {
                    op,
                    uuid: config.uuid,
                    device: None,
                },
                rc,
            )
        };
        let built = match image {
            None => self.xen.create(&json).map_err(failed),
            Some(path) => File::open(path)
                .map_err(XenopsError::from)
                .and_then(|file| self.xen.restore(&json, file.as_raw_fd()).map_err(failed)),
        };
        let domid = match built {
            Ok(domid) => domid,
            Err(err) => {
                connected.values().for_each(|d| nbd::disconnect(d));
                return Err(err);
            }
        };
        info!(vm = %config.uuid, domid, op, "domain built");
        let record = Record {
            domid,
            config: config.clone(),
            pending_target: None,
            last_state: Some(DomainState::Paused),
            nbd: connected,
        };
        self.save(&record)?;
        self.records.insert(config.uuid, record);
        let uuid = config.uuid;
        self.events.publish(DomainEvent::Created { uuid, domid });
        self.events.publish(DomainEvent::StateChanged {
            uuid,
            domid,
            state: DomainState::Paused,
        });
        self.domain(&uuid)
    }

    /// The resolved libxl config for `config` (libxl's parse and re-print), for checking.
    pub fn libxl_config(&self, config: &DomainConfig) -> Result<String> {
        let json = libxl_json::domain_config(config)?.to_string();
        self.xen.config_round_trip(&json).map_err(|rc| {
            errors::from_libxl(
                Failed {
                    op: "parse config",
                    uuid: config.uuid,
                    device: None,
                },
                rc,
            )
        })
    }

    fn fail(uuid: Uuid, op: &'static str) -> impl Fn(i32) -> XenopsError {
        move |rc| {
            errors::from_libxl(
                Failed {
                    op,
                    uuid,
                    device: None,
                },
                rc,
            )
        }
    }

    /// `pause`.
    pub fn pause(&mut self, uuid: &Uuid) -> Result<()> {
        let domid = self.domid(uuid)?;
        self.xen.pause(domid).map_err(Self::fail(*uuid, "pause"))?;
        self.reconcile();
        Ok(())
    }

    /// `unpause`.
    pub fn unpause(&mut self, uuid: &Uuid) -> Result<()> {
        let domid = self.domid(uuid)?;
        self.xen
            .unpause(domid)
            .map_err(Self::fail(*uuid, "unpause"))?;
        self.reconcile();
        Ok(())
    }

    /// Ask the guest to halt or reboot; the caller waits for `Destroyed`. Returns the domid.
    pub fn request_shutdown(&mut self, uuid: &Uuid, reboot: bool) -> Result<u32> {
        let domid = self.domid(uuid)?;
        if reboot {
            self.xen
                .reboot(domid)
                .map_err(Self::fail(*uuid, "reboot"))?;
        } else {
            self.halt_requested.insert(domid);
            self.xen
                .shutdown(domid)
                .map_err(Self::fail(*uuid, "shutdown"))?;
        }
        Ok(domid)
    }

    /// `shutdown(Hard)`: destroy now.
    pub fn destroy(&mut self, uuid: &Uuid) -> Result<()> {
        let domid = self.domid(uuid)?;
        self.xen
            .destroy(domid)
            .map_err(Self::fail(*uuid, "destroy"))?;
        self.gone(*uuid, domid);
        Ok(())
    }

    /// `suspend`: save the guest to `path`, then destroy the domain.
    pub fn suspend(&mut self, uuid: &Uuid, path: &Path) -> Result<()> {
        let domid = self.domid(uuid)?;
        let file = File::create(path)?;
        self.xen
            .suspend(domid, file.as_raw_fd())
            .map_err(Self::fail(*uuid, "suspend"))?;
        file.sync_all()?;
        self.events.publish(DomainEvent::Shutdown {
            uuid: *uuid,
            domid,
            reason: ShutdownReason::Suspend,
        });
        self.xen
            .destroy(domid)
            .map_err(Self::fail(*uuid, "destroy"))?;
        self.gone(*uuid, domid);
        Ok(())
    }

    /// The domain is gone: forget it and say so.
    fn gone(&mut self, uuid: Uuid, domid: u32) {
        self.halt_requested.remove(&domid);
        if let Some(record) = self.records.get(&uuid) {
            record.nbd.values().for_each(|d| nbd::disconnect(d));
        }
        self.forget(&uuid);
        info!(vm = %uuid, domid, "domain destroyed");
        self.events.publish(DomainEvent::Destroyed { uuid, domid });
    }

    /// `set_vcpus`.
    pub fn set_vcpus(&mut self, uuid: &Uuid, n_vcpus: u32) -> Result<()> {
        let record = self.record(uuid)?;
        let max = record.config.vcpus.max;
        if n_vcpus == 0 {
            return Err(XenopsError::InvalidConfig(
                "a domain needs at least one vcpu".into(),
            ));
        }
        if n_vcpus > max {
            return Err(XenopsError::TooManyVcpus {
                requested: n_vcpus,
                max,
            });
        }
        self.xen
            .set_vcpus_online(record.domid, max, n_vcpus)
            .map_err(Self::fail(*uuid, "set_vcpus"))
    }

    /// `set_memory_target`.
    pub fn set_memory_target(&mut self, uuid: &Uuid, bytes: u64) -> Result<()> {
        let record = self.record(uuid)?;
        let memory = record.config.memory;
        if bytes < memory.static_min || bytes > memory.static_max {
            return Err(XenopsError::InvalidConfig(format!(
                "memory target {bytes} is outside the static range {}..={}",
                memory.static_min, memory.static_max
            )));
        }
        self.xen
            .set_memory_target(record.domid, bytes / 1024)
            .map_err(Self::fail(*uuid, "set_memory_target"))?;
        if let Some(record) = self.records.get_mut(uuid) {
            record.pending_target = Some(bytes);
            record.config.memory.target = bytes;
        }
        Ok(())
    }

    fn device_failure<'a>(
        uuid: Uuid,
        op: &'static str,
        device: &'a str,
    ) -> impl Fn(i32) -> XenopsError + 'a {
        move |rc| {
            errors::from_libxl(
                Failed {
                    op,
                    uuid,
                    device: Some(device),
                },
                rc,
            )
        }
    }

    fn update(&mut self, uuid: &Uuid, change: impl FnOnce(&mut DomainConfig)) -> Result<()> {
        let record = self
            .records
            .get_mut(uuid)
            .ok_or(XenopsError::NoSuchDomain(*uuid))?;
        change(&mut record.config);
        let record = record.clone();
        self.save(&record)
    }

    /// The `/dev/nbdN` numbers in use by this backend, plus those in `also`.
    fn nbd_taken(&self, also: &BTreeMap<String, PathBuf>) -> Vec<u32> {
        self.records
            .values()
            .flat_map(|r| r.nbd.values())
            .chain(also.values())
            .filter_map(|d| nbd::device_number(d))
            .collect()
    }

    /// The VBD as libxl gets it: an NBD export is connected to a kernel NBD device first
    /// and becomes a `phy` disk on it (returned too, to be disconnected later).
    fn localise(
        &self,
        vbd: &VbdConfig,
        pending: &BTreeMap<String, PathBuf>,
    ) -> Result<(VbdConfig, Option<PathBuf>)> {
        let Some(VbdBackend::Nbd(uri)) = &vbd.backend else {
            return Ok((vbd.clone(), None));
        };
        let device = nbd::connect(uri, &self.nbd_taken(pending))?;
        Ok((libxl_json::on_local_device(vbd, &device), Some(device)))
    }

    /// Forget and disconnect the NBD device of a domain's VBD, if it has one.
    fn release_nbd(&mut self, uuid: &Uuid, device: &str) -> Result<()> {
        let Some(record) = self.records.get_mut(uuid) else {
            return Ok(());
        };
        let Some(path) = record.nbd.remove(device) else {
            return Ok(());
        };
        let record = record.clone();
        nbd::disconnect(&path);
        self.save(&record)
    }

    /// `attach_vbd`.
    pub fn attach_vbd(&mut self, uuid: &Uuid, vbd: &VbdConfig) -> Result<DeviceInfo> {
        let record = self.record(uuid)?;
        let devid = vbd_devid(&vbd.device)?;
        let taken = record
            .config
            .vbds
            .iter()
            .any(|v| vbd_devid(&v.device).ok() == Some(devid));
        if taken {
            return Err(XenopsError::DeviceExists {
                device: vbd.device.clone(),
            });
        }
        let domid = record.domid;
        libxl_json::disk(vbd)?;
        let (local, nbd_device) = self.localise(vbd, &BTreeMap::new())?;
        let added = libxl_json::disk(&local).and_then(|json| {
            self.xen
                .disk_add(domid, &json.to_string())
                .map_err(Self::device_failure(*uuid, "attach_vbd", &vbd.device))
        });
        if let Err(err) = added {
            if let Some(device) = &nbd_device {
                nbd::disconnect(device);
            }
            return Err(err);
        }
        self.update(uuid, |config| config.vbds.push(vbd.clone()))?;
        if let Some(device) = nbd_device {
            if let Some(record) = self.records.get_mut(uuid) {
                record.nbd.insert(vbd.device.clone(), device);
                let record = record.clone();
                self.save(&record)?;
            }
        }
        Ok(self.device_info(domid, DeviceSpec::Vbd(vbd.clone()), &vbd.device, devid))
    }

    fn find_vbd(&self, uuid: &Uuid, device: &str) -> Result<(u32, VbdConfig)> {
        let record = self.record(uuid)?;
        let devid = vbd_devid(device)?;
        record
            .config
            .vbds
            .iter()
            .find(|v| vbd_devid(&v.device).ok() == Some(devid))
            .map(|v| (record.domid, v.clone()))
            .ok_or_else(|| XenopsError::NoSuchDevice {
                device: device.into(),
            })
    }

    /// `detach_vbd`.
    pub fn detach_vbd(&mut self, uuid: &Uuid, device: &str, force: bool) -> Result<()> {
        let (domid, vbd) = self.find_vbd(uuid, device)?;
        let vdev = libxl_json::vdev_name(&vbd.device)?;
        self.xen
            .disk_remove(domid, &vdev, force)
            .map_err(Self::device_failure(*uuid, "detach_vbd", device))?;
        self.update(uuid, |config| {
            config.vbds.retain(|v| v.device != vbd.device)
        })?;
        self.release_nbd(uuid, &vbd.device)
    }

    /// `insert_cd` (`Some`) and `eject_cd` (`None`).
    pub fn change_cd(
        &mut self,
        uuid: &Uuid,
        device: &str,
        media: Option<&VbdBackend>,
    ) -> Result<()> {
        let (domid, vbd) = self.find_vbd(uuid, device)?;
        if vbd.kind != VbdKind::Cd {
            return Err(XenopsError::NotACd {
                device: device.into(),
            });
        }
        match (&vbd.backend, media) {
            (Some(_), Some(_)) => {
                return Err(XenopsError::CdNotEmpty {
                    device: device.into(),
                })
            }
            (None, None) => {
                return Err(XenopsError::CdEmpty {
                    device: device.into(),
                })
            }
            _ => {}
        }
        let changed = VbdConfig {
            backend: media.cloned(),
            ..vbd.clone()
        };
        libxl_json::disk(&changed)?;
        let (local, nbd_device) = self.localise(&changed, &BTreeMap::new())?;
        let inserted = libxl_json::disk(&local).and_then(|json| {
            self.xen
                .cdrom_insert(domid, &json.to_string())
                .map_err(Self::device_failure(*uuid, "change_cd", device))
        });
        if let Err(err) = inserted {
            if let Some(device) = &nbd_device {
                nbd::disconnect(device);
            }
            return Err(err);
        }
        // The old media's NBD device (on eject) is no longer used.
        self.release_nbd(uuid, &vbd.device)?;
        self.update(uuid, |config| {
            for v in config.vbds.iter_mut().filter(|v| v.device == vbd.device) {
                v.backend = changed.backend.clone();
            }
        })?;
        if let Some(path) = nbd_device {
            if let Some(record) = self.records.get_mut(uuid) {
                record.nbd.insert(vbd.device.clone(), path);
                let record = record.clone();
                self.save(&record)?;
            }
        }
        Ok(())
    }

    /// `attach_vif`.
    pub fn attach_vif(&mut self, uuid: &Uuid, vif: &VifConfig) -> Result<DeviceInfo> {
        let record = self.record(uuid)?;
        let devid = vif_devid(&vif.device)?;
        if record.config.vifs.iter().any(|v| v.device == vif.device) {
            return Err(XenopsError::DeviceExists {
                device: vif.device.clone(),
            });
        }
        let domid = record.domid;
        let json = libxl_json::nic(vif)?.to_string();
        self.xen
            .nic_add(domid, &json)
            .map_err(Self::device_failure(*uuid, "attach_vif", &vif.device))?;
        self.update(uuid, |config| config.vifs.push(vif.clone()))?;
        Ok(self.device_info(domid, DeviceSpec::Vif(vif.clone()), &vif.device, devid))
    }

    /// `detach_vif`.
    pub fn detach_vif(&mut self, uuid: &Uuid, device: &str, force: bool) -> Result<()> {
        let record = self.record(uuid)?;
        if !record.config.vifs.iter().any(|v| v.device == device) {
            return Err(XenopsError::NoSuchDevice {
                device: device.into(),
            });
        }
        let domid = record.domid;
        self.xen
            .nic_remove(domid, vif_devid(device)?, force)
            .map_err(Self::device_failure(*uuid, "detach_vif", device))?;
        self.update(uuid, |config| config.vifs.retain(|v| v.device != device))
    }

    /// `attach_console`: the PV console's (or HVM serial's) pty, or the VNC port.
    pub fn attach_console(&self, uuid: &Uuid, protocol: ConsoleProtocol) -> Result<ConsoleInfo> {
        let record = self.record(uuid)?;
        let hvm = record.config.domain_type == DomainType::Hvm;
        let location = match protocol {
            ConsoleProtocol::Vt100 => {
                let tty = self
                    .xen
                    .console_tty(record.domid, hvm)
                    .map_err(Self::fail(*uuid, "attach_console"))?;
                ConsoleLocation::Pty(tty.into())
            }
            ConsoleProtocol::Rfb if hvm => {
                let port = self.vnc_port(record.domid).ok_or_else(|| {
                    XenopsError::State(format!("vm {uuid} has no vnc port published yet"))
                })?;
                ConsoleLocation::VncPort(port)
            }
            ConsoleProtocol::Rfb => {
                return Err(XenopsError::InvalidConfig(
                    "a PV or PVH domain has no graphical console".into(),
                ))
            }
        };
        Ok(ConsoleInfo { protocol, location })
    }

    /// `guest_data`: `data/`, `attr/` and `control/feature-*` below the domain's home.
    pub fn guest_data(&self, uuid: &Uuid) -> Result<BTreeMap<String, String>> {
        let domid = self.domid(uuid)?;
        let home = paths::domain_path(domid);
        let mut out = BTreeMap::new();
        for root in paths::GUEST_DATA_ROOTS {
            self.walk(&home, root, GUEST_DATA_DEPTH, &mut out);
        }
        let control = format!("{home}/{}", paths::CONTROL);
        for name in self.xs.directory(&control).unwrap_or_default() {
            if paths::is_control_feature(&name) {
                let key = format!("{}/{name}", paths::CONTROL);
                if let Ok(value) = self.xs.read_string(&format!("{home}/{key}")) {
                    out.insert(key, value);
                }
            }
        }
        Ok(out)
    }

    fn walk(&self, home: &str, rel: &str, depth: usize, out: &mut BTreeMap<String, String>) {
        let path = format!("{home}/{rel}");
        if let Ok(value) = self.xs.read_string(&path) {
            if !value.is_empty() {
                out.insert(rel.to_string(), value);
            }
        }
        if depth == 0 {
            return;
        }
        for child in self.xs.directory(&path).unwrap_or_default() {
            self.walk(home, &format!("{rel}/{child}"), depth - 1, out);
        }
    }

    /// Guest-agent writes were seen for `domids`: publish `GuestAgentUpdated` for those
    /// that are domains this backend built.
    pub fn guest_agent_updated(&self, domids: &BTreeSet<u32>) {
        for record in self.records.values() {
            if domids.contains(&record.domid) {
                debug!(vm = %record.config.uuid, domid = record.domid, "guest data changed");
                self.events.publish(DomainEvent::GuestAgentUpdated {
                    uuid: record.config.uuid,
                    domid: record.domid,
                });
            }
        }
    }

    /// Compare the hypervisor with the records: publish state changes, tear down guests
    /// that shut down (not crashed ones), forget domains that vanished, and report
    /// reached balloon targets. Called after every job and on every xenstore domain event.
    pub fn reconcile(&mut self) {
        let raw = match self.raw_domains() {
            Ok(raw) => raw,
            Err(err) => {
                warn!(error = %err, "cannot list domains");
                return;
            }
        };
        let by_domid: HashMap<u32, RawDomain> = raw.into_iter().map(|d| (d.domid, d)).collect();
        let uuids: Vec<Uuid> = self.records.keys().copied().collect();
        for uuid in uuids {
            let Some(record) = self.records.get(&uuid) else {
                continue;
            };
            let domid = record.domid;
            let Some(raw) = by_domid
                .get(&domid)
                .filter(|d| d.handle == *uuid.as_bytes())
            else {
                self.gone(uuid, domid);
                continue;
            };
            let state = errors::state_of(raw.flags, self.halt_requested.contains(&domid));
            let changed = record.last_state != Some(state);
            let reached = record.pending_target.filter(|target| {
                let actual = raw.tot_pages * PAGE;
                actual.abs_diff(*target) <= (*target / 100).max(1 << 20)
            });
            if let Some(record) = self.records.get_mut(&uuid) {
                record.last_state = Some(state);
                if reached.is_some() {
                    record.pending_target = None;
                }
            }
            if let Some(bytes) = reached {
                self.events
                    .publish(DomainEvent::MemoryTargetReached { uuid, domid, bytes });
            }
            if changed {
                self.events
                    .publish(DomainEvent::StateChanged { uuid, domid, state });
            }
            match state {
                DomainState::Shutdown(reason) if changed => {
                    self.events.publish(DomainEvent::Shutdown {
                        uuid,
                        domid,
                        reason,
                    });
                    if let Err(rc) = self.xen.destroy(domid) {
                        warn!(vm = %uuid, domid, rc, "cannot destroy a shut down domain");
                        continue;
                    }
                    self.gone(uuid, domid);
                }
                DomainState::Crashed if changed => {
                    self.events.publish(DomainEvent::Crashed { uuid, domid });
                }
                _ => {}
            }
        }
    }
}
