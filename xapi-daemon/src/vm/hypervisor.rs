//! Glue between the database and the `xenops::Hypervisor`: choosing and opening the backend
//! the configuration names (the simulated host in the state directory, or real Xen through
//! libxl with the `xen` feature on a dom0) and turning a VM record (with its VBDs and VIFs)
//! into a `DomainConfig`.
//! `XenopsError`s become API errors in `crate::errors::xenops_error`.
//!
//! Never changes the database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use xapi_db::{Db, Expr};
use xapi_idl::enums::{DomainType, VbdMode, VbdType};
use xapi_idl::records::{NetworkRecord, VbdRecord, VifRecord, VmRecord};
use xapi_idl::{classes, errors, ApiResult, Class, FromValue, Record, ToValue};
use xenops::sim::{SimConfig, SimHost};
use xenops::{
    BootConfig, DomainConfig, Firmware, Hypervisor, MemoryConfig, PvBoot, VbdBackend, VbdConfig,
    VbdKind, VcpuConfig, VifConfig, XenopsError,
};

use crate::app::App;
use crate::config::{Backend, Config};
use crate::schema::Tables;
use crate::seed::HypervisorFacts;

/// The file the simulated host keeps its domains in, under the state directory.
pub const SIM_STATE_FILE: &str = "sim-host.json";

/// Why `--backend xen` cannot run in a build without the `xen` feature.
pub const XEN_NOT_BUILT: &str = "--backend xen: this xapi was built without the `xen` feature \
     (rebuild with `--features xen` against libxen-dev) and can only drive the simulated host";

/// Checks, before anything is opened or written, that `backend` can run here: the simulated
/// host always can; Xen needs the `xen` feature and a Xen dom0. The error is the message the
/// daemon exits with.
pub fn check_backend(backend: Backend) -> Result<(), String> {
    match backend {
        Backend::Sim => Ok(()),
        Backend::Xen => check_xen(),
    }
}

#[cfg(feature = "xen")]
fn check_xen() -> Result<(), String> {
    xenops::xen::check_dom0().map_err(|why| format!("--backend xen: {why}"))
}

#[cfg(not(feature = "xen"))]
fn check_xen() -> Result<(), String> {
    Err(XEN_NOT_BUILT.to_owned())
}

/// Opens the hypervisor `config.backend` names.
pub fn open(config: &Config, db: &Db, tables: &Tables) -> Result<Arc<dyn Hypervisor>, XenopsError> {
    match config.backend {
        Backend::Sim => open_sim(&config.state_dir, db, tables),
        Backend::Xen => open_xen(&config.state_dir),
    }
}

/// Opens the Xen host through libxl. dom0 and every running domain come from the hypervisor
/// itself, so there is nothing to carry over from the database.
#[cfg(feature = "xen")]
fn open_xen(state_dir: &Path) -> Result<Arc<dyn Hypervisor>, XenopsError> {
    let host = xenops::xen::XenHost::open(xenops::xen::XenConfig::new(state_dir))?;
    Ok(Arc::new(host))
}

#[cfg(not(feature = "xen"))]
fn open_xen(_state_dir: &Path) -> Result<Arc<dyn Hypervisor>, XenopsError> {
    Err(XenopsError::State(XEN_NOT_BUILT.to_owned()))
}

/// Opens the simulated host of this state directory. dom0 keeps the uuid the database already
/// gives the control domain, so the two always agree.
pub fn open_sim(
    state_dir: &Path,
    db: &Db,
    tables: &Tables,
) -> Result<Arc<dyn Hypervisor>, XenopsError> {
    let mut config = SimConfig::default();
    // The simulated host has as many CPUs as the machine it runs on (one socket, one thread
    // per core), so `host_cpu` looks like the machine, as it did before the hypervisor
    // reported the count.
    if let Ok(n) = std::thread::available_parallelism() {
        config.sockets = 1;
        config.threads_per_core = 1;
        config.cores_per_socket = u32::try_from(n.get()).unwrap_or(u32::MAX);
    }
    if let Some(t) = tables.table(<classes::Vm as Class>::INDEX) {
        let dom0 = Expr::parse(r#"field "is_control_domain" = "true""#)
            .ok()
            .and_then(|e| db.try_filter(t, &e).ok())
            .and_then(|rows| rows.into_iter().next())
            .and_then(|(_, row)| VmRecord::from_row(&row).ok())
            .and_then(|rec| uuid::Uuid::parse_str(&rec.uuid).ok());
        config.dom0_uuid = dom0;
    }
    let host = SimHost::open(&state_dir.join(SIM_STATE_FILE), config)?;
    Ok(Arc::new(host))
}

/// Host memory and the control domain, for first-start seeding.
pub fn facts(hv: &dyn Hypervisor) -> Result<HypervisorFacts, XenopsError> {
    let physinfo = hv.physinfo()?;
    let dom0 = hv
        .list()?
        .into_iter()
        .find(|d| d.domid == 0)
        .ok_or_else(|| XenopsError::State("the host lists no control domain".into()))?;
    Ok(HypervisorFacts { physinfo, dom0 })
}

/// `VM.domain_type` as xenops knows it (`pv_in_pvh` runs as PVH; an unspecified type follows
/// `HVM_boot_policy`, as upstream derives it).
pub fn domain_type(rec: &VmRecord) -> xenops::DomainType {
    match rec.domain_type {
        DomainType::Hvm => xenops::DomainType::Hvm,
        DomainType::Pvh | DomainType::PvInPvh => xenops::DomainType::Pvh,
        DomainType::Pv => xenops::DomainType::Pv,
        DomainType::Unspecified if !rec.hvm_boot_policy.is_empty() => xenops::DomainType::Hvm,
        DomainType::Unspecified => xenops::DomainType::Pv,
    }
}

/// Memory bounds of a record; the domain is built with its `dynamic_max` as target.
pub fn memory_of(rec: &VmRecord) -> MemoryConfig {
    let b = |v: i64| u64::try_from(v).unwrap_or(0);
    MemoryConfig {
        static_min: b(rec.memory_static_min),
        static_max: b(rec.memory_static_max),
        dynamic_min: b(rec.memory_dynamic_min),
        dynamic_max: b(rec.memory_dynamic_max),
        target: b(rec.memory_dynamic_max),
    }
}

fn boot_of(rec: &VmRecord, ty: xenops::DomainType) -> BootConfig {
    if ty == xenops::DomainType::Hvm {
        let order: String = rec
            .hvm_boot_params
            .get("order")
            .map(|o| o.chars().filter(|c| "cdn".contains(*c)).collect())
            .unwrap_or_default();
        let firmware = match rec.hvm_boot_params.get("firmware").map(String::as_str) {
            Some("uefi") => Firmware::Uefi,
            _ => Firmware::Bios,
        };
        return BootConfig::Hvm {
            boot_order: if order.is_empty() { "cd".into() } else { order },
            firmware,
        };
    }
    if rec.pv_bootloader.is_empty() && !rec.pv_kernel.is_empty() {
        BootConfig::Pv(PvBoot::Direct {
            kernel: PathBuf::from(&rec.pv_kernel),
            ramdisk: (!rec.pv_ramdisk.is_empty()).then(|| PathBuf::from(&rec.pv_ramdisk)),
            cmdline: rec.pv_args.clone(),
        })
    } else {
        let bootloader = if rec.pv_bootloader.is_empty() {
            "pygrub".to_owned()
        } else {
            rec.pv_bootloader.clone()
        };
        BootConfig::Pv(PvBoot::Bootloader {
            bootloader,
            args: rec.pv_bootloader_args.clone(),
        })
    }
}

/// Where the data behind a VDI lives until storage lands: a path under the state directory.
pub fn vdi_path(app: &App, vdi: &str) -> PathBuf {
    let name = vdi.strip_prefix("OpaqueRef:").unwrap_or(vdi);
    app.config.state_dir.join("vdi").join(name)
}

/// Where a guest reaches VDI `vdi`: its data path from its SR driver (activated), or, for
/// VDIs whose SR serves no data, the simulated path under the state directory.
pub fn vdi_backend(app: &App, vdi: &str, writable: bool) -> VbdBackend {
    match crate::storage::activate(app, vdi, writable) {
        Ok(Some(path)) => match path.nbd_uri() {
            Some(uri) => VbdBackend::Nbd(uri),
            None => match path {
                sm::DataPath::File { path } => VbdBackend::Path(path),
                _ => VbdBackend::Path(vdi_path(app, vdi)),
            },
        },
        Ok(None) => VbdBackend::Path(vdi_path(app, vdi)),
        Err(e) => {
            tracing::warn!(vdi, error = %e, "cannot activate VDI");
            VbdBackend::Path(vdi_path(app, vdi))
        }
    }
}

/// The device a VBD shows the guest: `userdevice` as a number is the N-th `xvd` disk.
pub fn vbd_config(app: &App, vbd: &VbdRecord) -> Option<VbdConfig> {
    let kind = match vbd.type_ {
        VbdType::Disk => VbdKind::Disk,
        VbdType::Cd => VbdKind::Cd,
        VbdType::Floppy => return None,
    };
    let backend = if vbd.empty || vbd.vdi.is_null() {
        None
    } else {
        Some(vdi_backend(app, vbd.vdi.as_str(), vbd.mode == VbdMode::Rw))
    };
    if backend.is_none() && kind == VbdKind::Disk {
        return None;
    }
    Some(VbdConfig {
        device: vbd.userdevice.clone(),
        kind,
        mode: match vbd.mode {
            VbdMode::Ro => xenops::VbdMode::Ro,
            VbdMode::Rw => xenops::VbdMode::Rw,
        },
        backend,
    })
}

/// A MAC address made from an object's uuid: locally administered, unicast.
pub fn mac_from(seed: &str) -> String {
    use std::hash::{Hash, Hasher};
    // `DefaultHasher::new` uses fixed keys, so the same seed always gives the same MAC.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut hasher);
    let b = hasher.finish().to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        (b[0] & 0xfc) | 0x02,
        b[1],
        b[2],
        b[3],
        b[4],
        b[5]
    )
}

/// The interface a VIF gives the guest, plugged into its network's bridge.
pub fn vif_config(app: &App, vif: &VifRecord) -> VifConfig {
    let bridge = crate::vm::read::<NetworkRecord>(app, vif.network.as_str())
        .map(|n| n.bridge)
        .unwrap_or_default();
    let mac = if vif.mac.is_empty() {
        mac_from(&vif.uuid)
    } else {
        vif.mac.clone()
    };
    VifConfig {
        device: vif.device.clone(),
        bridge: if bridge.is_empty() {
            "xenbr0".into()
        } else {
            bridge
        },
        mac,
        mtu: u32::try_from(vif.mtu)
            .ok()
            .filter(|&m| m > 0)
            .unwrap_or(1500),
    }
}

/// The VBD records of a VM.
pub fn vbds_of(app: &App, rec: &VmRecord) -> Vec<(String, VbdRecord)> {
    rec.vbds
        .iter()
        .filter_map(|r| {
            crate::vm::read::<VbdRecord>(app, r.as_str())
                .ok()
                .map(|v| (r.as_str().to_owned(), v))
        })
        .collect()
}

/// The VIF records of a VM.
pub fn vifs_of(app: &App, rec: &VmRecord) -> Vec<(String, VifRecord)> {
    rec.vifs
        .iter()
        .filter_map(|r| {
            crate::vm::read::<VifRecord>(app, r.as_str())
                .ok()
                .map(|v| (r.as_str().to_owned(), v))
        })
        .collect()
}

/// The build description of a VM: its settings from `rec` (the live record, or the record it
/// booted with for resume and migration) and its current devices.
pub fn domain_config(app: &App, rec: &VmRecord) -> ApiResult<DomainConfig> {
    let uuid = crate::vm::uuid_of(rec)?;
    let ty = domain_type(rec);
    let vcpus = VcpuConfig {
        max: u32::try_from(rec.vcpus_max).unwrap_or(0),
        at_startup: u32::try_from(rec.vcpus_at_startup).unwrap_or(0),
    };
    let mut vbds: Vec<(i64, VbdConfig)> = vbds_of(app, rec)
        .iter()
        .filter_map(|(_, v)| vbd_config(app, v).map(|c| (v.userdevice.parse().unwrap_or(99), c)))
        .collect();
    vbds.sort_by_key(|(n, _)| *n);
    let mut vifs: Vec<VifConfig> = vifs_of(app, rec)
        .iter()
        .map(|(_, v)| vif_config(app, v))
        .collect();
    vifs.sort_by(|a, b| a.device.cmp(&b.device));
    let config = DomainConfig {
        uuid,
        name: rec.name_label.clone(),
        domain_type: ty,
        vcpus,
        memory: memory_of(rec),
        boot: boot_of(rec, ty),
        platform: rec.platform.clone(),
        other_config: rec.other_config.clone(),
        vbds: vbds.into_iter().map(|(_, c)| c).collect(),
        vifs,
    };
    config.validate().map_err(|e| match e {
        XenopsError::TooManyVcpus { .. } => errors::invalid_value(
            "VCPUs_at_startup",
            format!("{} (VCPUs_max {})", rec.vcpus_at_startup, rec.vcpus_max),
        ),
        XenopsError::InvalidConfig(reason) if reason.contains("vcpu") => {
            errors::invalid_value("VCPUs_max", reason)
        }
        other => crate::errors::xenops_error(&rec.uuid, other),
    })?;
    Ok(config)
}

/// `VM.last_booted_record`: the record the domain was built from, kept as JSON of its wire
/// value so resume and migration rebuild the same domain.
pub fn boot_record_text(rec: &VmRecord) -> String {
    xapi_db::json::to_json(&rec.to_value())
}

/// Reads `last_booted_record` back; `None` when empty or unreadable.
pub fn parse_boot_record(text: &str) -> Option<VmRecord> {
    let value = xapi_db::json::from_json(text).ok()?;
    VmRecord::from_value(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sim_backend_always_passes_the_check() {
        assert_eq!(check_backend(Backend::Sim), Ok(()));
    }

    #[cfg(not(feature = "xen"))]
    #[test]
    fn without_the_feature_xen_is_refused_with_the_reason() {
        let why = check_backend(Backend::Xen).unwrap_err();
        assert!(why.contains("`xen` feature"), "{why}");
    }

    #[test]
    fn macs_are_unicast_locally_administered_and_stable() {
        let mac = mac_from("seed");
        assert_eq!(mac, mac_from("seed"));
        assert_ne!(mac, mac_from("other"));
        let first = u8::from_str_radix(&mac[..2], 16).unwrap();
        assert_eq!(first & 0x03, 0x02);
        assert_eq!(mac.len(), 17);
    }

    #[test]
    fn an_unspecified_domain_type_follows_the_boot_policy() {
        let mut rec = VmRecord {
            domain_type: DomainType::Unspecified,
            ..VmRecord::default()
        };
        assert_eq!(domain_type(&rec), xenops::DomainType::Pv);
        rec.hvm_boot_policy = "BIOS order".into();
        assert_eq!(domain_type(&rec), xenops::DomainType::Hvm);
    }

    #[test]
    fn hvm_boot_order_keeps_only_known_devices() {
        let mut rec = VmRecord::default();
        rec.hvm_boot_params.insert("order".into(), "dxn".into());
        assert_eq!(
            boot_of(&rec, xenops::DomainType::Hvm),
            BootConfig::Hvm {
                boot_order: "dn".into(),
                firmware: Firmware::Bios
            }
        );
    }

    #[test]
    fn boot_records_round_trip() {
        let rec = VmRecord {
            name_label: "x".into(),
            memory_static_max: 1 << 30,
            ..VmRecord::default()
        };
        let back = parse_boot_record(&boot_record_text(&rec)).unwrap();
        assert_eq!(back.name_label, "x");
        assert_eq!(back.memory_static_max, 1 << 30);
    }
}
