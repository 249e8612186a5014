//! `VM_metrics`, `VM_guest_metrics` and `host_metrics`: kept equal to what the hypervisor
//! reports whenever a domain appears, changes or goes away.
//!
//! `VM_metrics` exists for every VM (made on demand for VMs that lack one); `VM_guest_metrics`
//! exists while a guest agent has reported (it goes when the VM halts); `host_metrics` memory
//! is the hypervisor's physinfo.

use std::collections::BTreeMap;

use xapi_idl::enums::{DomainType, TristateType};
use xapi_idl::records::{HostMetricsRecord, VmGuestMetricsRecord, VmMetricsRecord, VmRecord};
use xapi_idl::{classes, ApiResult, DateTime, Ref, Value};
use xenops::DomainInfo;

use crate::app::App;
use crate::vm::{delete, field, insert, read, set_fields, update};

/// The VM's `VM_metrics`, made now if it has none (or a dangling one).
pub fn ensure_metrics(app: &App, vm: &str, rec: &VmRecord) -> ApiResult<Ref<classes::VmMetrics>> {
    if !rec.metrics.is_null() && read::<VmMetricsRecord>(app, rec.metrics.as_str()).is_ok() {
        return Ok(rec.metrics.clone());
    }
    let metrics = create_metrics(app)?;
    let m = metrics.clone();
    update::<VmRecord>(app, vm, move |r| r.metrics = m)?;
    Ok(metrics)
}

/// A new `VM_metrics` record for a VM made now (installed now, no domain yet).
pub fn create_metrics(app: &App) -> ApiResult<Ref<classes::VmMetrics>> {
    let metrics: Ref<classes::VmMetrics> = Ref::fresh();
    insert(
        app,
        metrics.as_str(),
        &VmMetricsRecord {
            uuid: uuid::Uuid::new_v4().to_string(),
            install_time: DateTime::now(),
            last_updated: DateTime::now(),
            current_domain_type: DomainType::Unspecified,
            ..VmMetricsRecord::default()
        },
    )?;
    Ok(metrics)
}

fn current_type(domain: &DomainInfo) -> DomainType {
    match domain.domain_type {
        xenops::DomainType::Pv => DomainType::Pv,
        xenops::DomainType::Pvh => DomainType::Pvh,
        xenops::DomainType::Hvm => DomainType::Hvm,
    }
}

/// Records a live domain in `VM_metrics`; `started` also stamps `start_time`.
pub fn domain_live(
    app: &App,
    vm: &str,
    rec: &VmRecord,
    domain: &DomainInfo,
    started: bool,
) -> ApiResult<()> {
    let metrics = ensure_metrics(app, vm, rec)?;
    let state = match domain.state {
        xenops::DomainState::Running => "running",
        xenops::DomainState::Paused => "paused",
        xenops::DomainState::Crashed => "crashed",
        _ => "dying",
    };
    update::<VmMetricsRecord>(app, metrics.as_str(), |m| {
        m.memory_actual = domain.memory_actual as i64;
        m.vcpus_number = i64::from(domain.vcpus_online);
        m.vcpus_utilisation = (0..i64::from(domain.vcpus_online))
            .map(|i| (i, 0.0))
            .collect();
        m.vcpus_cpu = (0..i64::from(domain.vcpus_online))
            .map(|i| (i, i))
            .collect();
        m.state = vec![state.to_owned()];
        m.hvm = domain.domain_type == xenops::DomainType::Hvm;
        m.current_domain_type = current_type(domain);
        m.nomigrate = rec
            .platform
            .get("nomigrate")
            .is_some_and(|v| v == "true" || v == "1");
        m.nested_virt = rec
            .platform
            .get("nested-virt")
            .is_some_and(|v| v == "true" || v == "1");
        if started {
            m.start_time = DateTime::now();
        }
        m.last_updated = DateTime::now();
    })?;
    Ok(())
}

/// Records that the VM has no domain any more: nothing in `VM_metrics`; its guest metrics go
/// when `halted` (a suspended guest keeps what its agent said).
pub fn domain_gone(app: &App, vm: &str, halted: bool) -> ApiResult<()> {
    domain_gone_of(app, vm, &read::<VmRecord>(app, vm)?, halted)
}

/// `domain_gone` for a VM record the caller has just read.
pub fn domain_gone_of(app: &App, vm: &str, rec: &VmRecord, halted: bool) -> ApiResult<()> {
    let metrics = ensure_metrics(app, vm, rec)?;
    update::<VmMetricsRecord>(app, metrics.as_str(), |m| {
        m.memory_actual = 0;
        m.vcpus_number = 0;
        m.vcpus_utilisation.clear();
        m.vcpus_cpu.clear();
        m.state.clear();
        m.current_domain_type = DomainType::Unspecified;
        m.last_updated = DateTime::now();
    })?;
    if halted && !rec.guest_metrics.is_null() {
        delete::<classes::VmGuestMetrics>(app, rec.guest_metrics.as_str())?;
        let null = Value::String(xapi_idl::NULL_REF.to_owned());
        set_fields::<classes::Vm>(app, vm, &[("guest_metrics", null)])?;
    }
    Ok(())
}

/// What the guest agent published, as `VM_guest_metrics` fields.
pub fn guest_record(data: &BTreeMap<String, String>) -> VmGuestMetricsRecord {
    let under = |prefix: &str| -> BTreeMap<String, String> {
        data.iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(prefix)
                    .map(|rest| (rest.to_owned(), v.clone()))
            })
            .collect()
    };
    let pv_drivers_version: BTreeMap<String, String> = under("attr/PVAddons/")
        .into_iter()
        .filter_map(|(k, v)| {
            k.strip_suffix("Version")
                .map(|part| (part.to_ascii_lowercase(), v))
        })
        .collect();
    let mut networks = BTreeMap::new();
    for (k, v) in under("attr/vif/") {
        // `0/ipv4/0` -> `0/ipv4/0`, and the first IPv4 address also as `0/ip`.
        if let Some(dev) = k.strip_suffix("/ipv4/0") {
            networks.insert(format!("{dev}/ip"), v.clone());
        }
        networks.insert(k, v);
    }
    let mut memory = BTreeMap::new();
    for (key, name) in [
        ("data/meminfo_total", "total"),
        ("data/meminfo_free", "free"),
    ] {
        if let Some(v) = data.get(key) {
            memory.insert(name.to_owned(), v.clone());
        }
    }
    let other: BTreeMap<String, String> = data
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("control/")
                .filter(|f| f.starts_with("feature-"))
                .map(|f| (f.to_owned(), v.clone()))
        })
        .collect();
    let detected = !pv_drivers_version.is_empty();
    let hotplug = if detected {
        TristateType::Yes
    } else {
        TristateType::Unspecified
    };
    VmGuestMetricsRecord {
        os_version: under("data/os_version/"),
        pv_drivers_up_to_date: detected,
        pv_drivers_version,
        pv_drivers_detected: detected,
        memory,
        networks,
        other,
        live: true,
        can_use_hotplug_vbd: hotplug,
        can_use_hotplug_vif: hotplug,
        last_updated: DateTime::now(),
        ..VmGuestMetricsRecord::default()
    }
}

/// Reads the guest agent's data from the hypervisor into `VM_guest_metrics` (made on first
/// report; nothing when the guest has no agent); true when something was written.
pub fn refresh_guest(app: &App, vm: &str) -> ApiResult<bool> {
    refresh_guest_of(app, vm, &read::<VmRecord>(app, vm)?)
}

/// `refresh_guest` for a VM record the caller has just read.
pub fn refresh_guest_of(app: &App, vm: &str, rec: &VmRecord) -> ApiResult<bool> {
    let Ok(uuid) = crate::vm::uuid_of(rec) else {
        return Ok(false);
    };
    let Ok(data) = app.hypervisor.guest_data(&uuid) else {
        return Ok(false);
    };
    if data.is_empty() {
        return Ok(false);
    }
    let fresh = guest_record(&data);
    let current = (!rec.guest_metrics.is_null())
        .then(|| read::<VmGuestMetricsRecord>(app, rec.guest_metrics.as_str()).ok())
        .flatten();
    if let Some(current) = current {
        // Several paths read the agent after one report (the operation that booted the
        // guest, the event consumer): only news is written.
        let unchanged = VmGuestMetricsRecord {
            uuid: current.uuid.clone(),
            other_config: current.other_config.clone(),
            last_updated: current.last_updated,
            ..fresh.clone()
        } == current;
        if unchanged {
            return Ok(false);
        }
        update::<VmGuestMetricsRecord>(app, rec.guest_metrics.as_str(), |gm| {
            *gm = VmGuestMetricsRecord {
                uuid: gm.uuid.clone(),
                other_config: gm.other_config.clone(),
                ..fresh
            };
        })?;
        return Ok(true);
    }
    let gm: Ref<classes::VmGuestMetrics> = Ref::fresh();
    insert(
        app,
        gm.as_str(),
        &VmGuestMetricsRecord {
            uuid: uuid::Uuid::new_v4().to_string(),
            ..fresh
        },
    )?;
    set_fields::<classes::Vm>(
        app,
        vm,
        &[("guest_metrics", Value::String(gm.into_string()))],
    )?;
    Ok(true)
}

/// `host_metrics.memory_total` / `memory_free` from the hypervisor's physinfo.
pub fn refresh_host(app: &App) -> ApiResult<()> {
    let info = app
        .hypervisor
        .physinfo()
        .map_err(|e| crate::errors::xenops_error("", e))?;
    // Only the metrics ref of the host record is needed.
    let metrics = match field::<classes::Host>(app, &app.host, "metrics") {
        Some(Value::String(r)) => r,
        Some(_) => return Ok(()),
        None => return Err(xapi_idl::errors::handle_invalid("host", &app.host)),
    };
    if metrics.is_empty() || metrics == xapi_idl::NULL_REF {
        return Ok(());
    }
    update::<HostMetricsRecord>(app, &metrics, |m| {
        m.memory_total = info.total_memory as i64;
        m.memory_free = info.free_memory as i64;
        m.live = true;
        m.last_updated = DateTime::now();
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_data_becomes_guest_metrics() {
        let data: BTreeMap<String, String> = [
            ("data/os_version/distro", "simlinux"),
            ("data/meminfo_total", "1024"),
            ("attr/PVAddons/MajorVersion", "9"),
            ("attr/vif/0/ipv4/0", "169.254.1.2"),
            ("control/feature-shutdown", "1"),
            ("control/shutdown", "halt"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let gm = guest_record(&data);
        assert_eq!(gm.os_version["distro"], "simlinux");
        assert_eq!(gm.pv_drivers_version["major"], "9");
        assert!(gm.pv_drivers_detected);
        assert_eq!(gm.networks["0/ip"], "169.254.1.2");
        assert_eq!(gm.memory["total"], "1024");
        assert_eq!(gm.other.len(), 1, "only features: {:?}", gm.other);
    }

    #[test]
    fn a_guest_without_agent_data_has_no_drivers() {
        let gm = guest_record(&BTreeMap::new());
        assert!(!gm.pv_drivers_detected);
        assert_eq!(gm.can_use_hotplug_vbd, TristateType::Unspecified);
    }
}
