//! Power operations: `VM.start`/`start_on`, `clean_shutdown`, `hard_shutdown`, `shutdown`,
//! `clean_reboot`, `hard_reboot`, `pause`, `unpause`, `suspend`, `resume`/`resume_on` and
//! `pool_migrate` to this host. Each one checks `lifecycle`, runs as a VM operation (so
//! `current_operations` shows it), drives the hypervisor and records the outcome (power state,
//! domid, residence, metrics, device attachment). See `lifecycle` for the state diagram.
//!
//! `boot` and `mark_halted` are also used by the domain event consumer for
//! `actions_after_*`.

use std::path::PathBuf;

use xapi_idl::enums::{VmOperations as Op, VmPowerState};
use xapi_idl::records::{VbdRecord, VifRecord, VmGuestMetricsRecord, VmMetricsRecord, VmRecord};
use xapi_idl::{classes, errors, ApiError, ApiResult, Ref, ToValue, Value};
use xenops::{DomainState, ShutdownKind};

use crate::app::App;
use crate::dispatch::Ctx;
use crate::errors::xenops_error;
use crate::vm::hypervisor::{boot_record_text, domain_config, parse_boot_record};
use crate::vm::lifecycle::{self, Facts};
use crate::vm::{
    field, guest_timeout, metrics, read, read_vm, set_fields, update, uuid_of, with_vm_operation,
};

/// The `other_config` key naming a suspended VM's memory image (until suspend VDIs exist).
pub const SUSPEND_IMAGE_KEY: &str = "suspend_image_path";

/// Refuses `op` on `vm` with the first error `lifecycle::check` finds.
pub fn assert_operation_valid(app: &App, vm: &str, op: Op) -> ApiResult<VmRecord> {
    let rec = read_vm(app, vm)?;
    let metrics = read::<VmMetricsRecord>(app, rec.metrics.as_str()).ok();
    let guest_metrics = read::<VmGuestMetricsRecord>(app, rec.guest_metrics.as_str()).ok();
    let facts = Facts {
        vm,
        rec: &rec,
        metrics: metrics.as_ref(),
        guest_metrics: guest_metrics.as_ref(),
    };
    match lifecycle::check(&facts, op, false) {
        Some(e) => Err(e),
        None => Ok(rec),
    }
}

/// A host argument must be this host (the pool has one host).
pub fn assert_this_host(app: &App, host: &Ref<classes::Host>) -> ApiResult<()> {
    if host.as_str() == app.host {
        return Ok(());
    }
    let t = app.table_of::<classes::Host>();
    if app.db.get(t, host.as_str()).is_none() {
        return Err(errors::handle_invalid("host", host.as_str()));
    }
    Err(errors::host_not_live())
}

/// Host memory the VM needs to start: its `dynamic_max` plus overhead, as the domain is built
/// with that target.
pub fn memory_needed(rec: &VmRecord) -> u64 {
    u64::try_from(rec.memory_dynamic_max.max(0) + rec.memory_overhead.max(0)).unwrap_or(0)
}

/// `HOST_NOT_ENOUGH_FREE_MEMORY [needed, available]` unless the host can hold the VM.
pub fn assert_enough_memory(app: &App, rec: &VmRecord) -> ApiResult<()> {
    let free = app
        .hypervisor
        .physinfo()
        .map_err(|e| xenops_error(&rec.uuid, e))?
        .free_memory;
    let needed = memory_needed(rec);
    if needed > free {
        return Err(errors::host_not_enough_free_memory(needed, free));
    }
    Ok(())
}

/// Builds and (unless `paused`) unpauses the VM's domain from its current record, then
/// records it running. The caller holds the VM operation.
pub fn boot(app: &App, vm: &str, paused: bool) -> ApiResult<()> {
    let rec = read_vm(app, vm)?;
    let config = domain_config(app, &rec)?;
    assert_enough_memory(app, &rec)?;
    let uuid = config.uuid;
    app.hypervisor
        .create(&config)
        .map_err(|e| xenops_error(vm, e))?;
    if !paused {
        if let Err(e) = app.hypervisor.unpause(&uuid) {
            let _ = app
                .hypervisor
                .shutdown(&uuid, ShutdownKind::Hard, guest_timeout());
            return Err(xenops_error(vm, e));
        }
    }
    let boot_record = boot_record_text(&rec);
    record_live(app, vm, true, Some(boot_record))?;
    tracing::info!(vm, paused, "VM started");
    Ok(())
}

/// Records the VM's domain as the hypervisor reports it now (power state, domid, metrics,
/// devices attached); `started` marks a fresh boot.
pub fn record_live(
    app: &App,
    vm: &str,
    started: bool,
    boot_record: Option<String>,
) -> ApiResult<()> {
    let rec = read_vm(app, vm)?;
    let uuid = uuid_of(&rec)?;
    let domain = app
        .hypervisor
        .domain(&uuid)
        .map_err(|e| xenops_error(vm, e))?;
    let power_state = match domain.state {
        DomainState::Running => VmPowerState::Running,
        _ => VmPowerState::Paused,
    };
    // The fields that change, set by name: the rest of `rec` (devices, metrics, platform)
    // stays as read.
    let mut fields = vec![
        ("power_state", power_state.to_value()),
        ("domid", Value::Int(i64::from(domain.domid))),
        ("resident_on", Value::String(app.host.clone())),
        (
            "scheduled_to_be_resident_on",
            Value::String(xapi_idl::NULL_REF.to_owned()),
        ),
        ("memory_target", Value::Int(domain.memory_target as i64)),
    ];
    if let Some(text) = boot_record {
        fields.push(("last_booted_record", Value::String(text)));
    }
    set_fields::<classes::Vm>(app, vm, &fields)?;
    metrics::domain_live(app, vm, &rec, &domain, started)?;
    for (vbd, v) in crate::vm::hypervisor::vbds_of(app, &rec) {
        let attached = domain
            .devices
            .iter()
            .find(|d| d.kind() == xenops::DeviceKind::Vbd && d.devid == devid_of(&v.userdevice));
        let name = attached.map(|d| device_name(&d.device));
        update::<VbdRecord>(app, &vbd, |v| {
            v.currently_attached = name.is_some();
            if let Some(name) = name {
                v.device = name;
            }
        })?;
    }
    for (vif, _) in crate::vm::hypervisor::vifs_of(app, &rec) {
        update::<VifRecord>(app, &vif, |v| v.currently_attached = true)?;
    }
    metrics::refresh_guest(app, vm)?;
    metrics::refresh_host(app)?;
    let hvm = domain.domain_type == xenops::DomainType::Hvm;
    crate::console::refresh(app, vm, &rec.consoles, Some(hvm))
}

/// `VBD.device` for a device the hypervisor names: a bare number `N` is the N-th xvd disk.
pub fn device_name(device: &str) -> String {
    match device.parse::<u8>() {
        Ok(n) if n < 26 => format!("xvd{}", char::from(b'a' + n)),
        _ => device.to_owned(),
    }
}

/// The xenstore device number of a `userdevice` (`N` -> the N-th xvd disk).
pub fn devid_of(userdevice: &str) -> u32 {
    xenops::device::vbd_devid(userdevice).unwrap_or(u32::MAX)
}

/// Records that the VM has no domain: `Halted` (or `Suspended`), no domid, not resident,
/// devices detached.
pub fn mark_stopped(app: &App, vm: &str, state: VmPowerState) -> ApiResult<()> {
    let rec = read_vm(app, vm)?;
    let null = || Value::String(xapi_idl::NULL_REF.to_owned());
    let mut fields = vec![
        ("power_state", state.to_value()),
        ("domid", Value::Int(-1)),
        ("resident_on", null()),
        ("scheduled_to_be_resident_on", null()),
    ];
    if state == VmPowerState::Halted {
        fields.push(("requires_reboot", Value::Bool(false)));
    }
    set_fields::<classes::Vm>(app, vm, &fields)?;
    for vbd in &rec.vbds {
        if let Ok(v) = update::<VbdRecord>(app, vbd.as_str(), |v| v.currently_attached = false) {
            if !v.vdi.is_null() && !v.empty {
                crate::storage::deactivate(app, v.vdi.as_str());
            }
        }
    }
    for vif in &rec.vifs {
        let _ = update::<VifRecord>(app, vif.as_str(), |v| v.currently_attached = false);
    }
    metrics::domain_gone_of(app, vm, &rec, state == VmPowerState::Halted)?;
    metrics::refresh_host(app)?;
    crate::console::refresh(app, vm, &rec.consoles, None)
}

/// Records a halted VM (and forgets any suspend image).
pub fn mark_halted(app: &App, vm: &str) -> ApiResult<()> {
    discard_suspend_image(app, vm)?;
    mark_stopped(app, vm, VmPowerState::Halted)
}

fn discard_suspend_image(app: &App, vm: &str) -> ApiResult<()> {
    let Some(other_config) = field::<classes::Vm>(app, vm, "other_config") else {
        return Err(errors::handle_invalid("VM", vm));
    };
    let path = match &other_config {
        Value::Struct(members) => members
            .iter()
            .find(|(k, _)| k == SUSPEND_IMAGE_KEY)
            .and_then(|(_, v)| v.as_str()),
        _ => None,
    };
    if let Some(path) = path {
        if let Err(e) = std::fs::remove_file(path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(vm, path, error = %e, "could not remove suspend image");
            }
        }
        update::<VmRecord>(app, vm, |r| {
            r.other_config.remove(SUSPEND_IMAGE_KEY);
        })?;
    }
    Ok(())
}

/// Destroys the VM's domain at once (nothing if it has none).
pub fn destroy_domain(app: &App, vm: &str, rec: &VmRecord) -> ApiResult<()> {
    let uuid = uuid_of(rec)?;
    match app
        .hypervisor
        .shutdown(&uuid, ShutdownKind::Hard, guest_timeout())
    {
        Ok(()) | Err(xenops::XenopsError::NoSuchDomain(_)) => Ok(()),
        Err(e) => Err(xenops_error(vm, e)),
    }
}

/// `VM.start` / `VM.start_on`.
pub fn start(ctx: &Ctx, vm: &str, paused: bool, op: Op) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, op)?;
    if rec.is_control_domain {
        // Compatibility: dom0 always runs, so starting it is a power-state error.
        return Err(errors::vm_bad_power_state(vm, "halted", "running"));
    }
    with_vm_operation(ctx, vm, op, || boot(app, vm, paused))
}

/// `VM.clean_shutdown`: the guest halts on request.
pub fn clean_shutdown(ctx: &Ctx, vm: &str) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, Op::CleanShutdown)?;
    with_vm_operation(ctx, vm, Op::CleanShutdown, || {
        let uuid = uuid_of(&rec)?;
        app.hypervisor
            .shutdown(&uuid, ShutdownKind::Clean, guest_timeout())
            .map_err(|e| xenops_error(vm, e))?;
        tracing::info!(vm, "VM shut down cleanly");
        mark_halted(app, vm)
    })
}

/// `VM.hard_shutdown`: the domain is destroyed; a suspended VM loses its image.
pub fn hard_shutdown(ctx: &Ctx, vm: &str) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, Op::HardShutdown)?;
    with_vm_operation(ctx, vm, Op::HardShutdown, || {
        if rec.power_state != VmPowerState::Suspended {
            destroy_domain(app, vm, &rec)?;
        }
        tracing::info!(vm, "VM shut down hard");
        mark_halted(app, vm)
    })
}

/// `VM.shutdown`: clean when the VM runs, falling back to hard if the guest does not comply.
pub fn shutdown(ctx: &Ctx, vm: &str) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, Op::Shutdown)?;
    with_vm_operation(ctx, vm, Op::Shutdown, || {
        let uuid = uuid_of(&rec)?;
        if rec.power_state == VmPowerState::Running {
            match app
                .hypervisor
                .shutdown(&uuid, ShutdownKind::Clean, guest_timeout())
            {
                Ok(()) => return mark_halted(app, vm),
                Err(e) => {
                    tracing::info!(vm, error = %e, "clean shutdown failed, shutting down hard")
                }
            }
        }
        if rec.power_state != VmPowerState::Suspended {
            destroy_domain(app, vm, &rec)?;
        }
        mark_halted(app, vm)
    })
}

/// `VM.clean_reboot`: the guest reboots on request and comes back in a new domain.
pub fn clean_reboot(ctx: &Ctx, vm: &str) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, Op::CleanReboot)?;
    with_vm_operation(ctx, vm, Op::CleanReboot, || {
        let uuid = uuid_of(&rec)?;
        app.hypervisor
            .shutdown(&uuid, ShutdownKind::Reboot, guest_timeout())
            .map_err(|e| xenops_error(vm, e))?;
        restart(app, vm)
    })
}

/// `VM.hard_reboot`: the domain is destroyed and built again.
pub fn hard_reboot(ctx: &Ctx, vm: &str) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, Op::HardReboot)?;
    with_vm_operation(ctx, vm, Op::HardReboot, || {
        destroy_domain(app, vm, &rec)?;
        restart(app, vm)
    })
}

/// Boots a VM whose domain just went away; if that fails the VM is left halted.
pub fn restart(app: &App, vm: &str) -> ApiResult<()> {
    match boot(app, vm, false) {
        Ok(()) => Ok(()),
        Err(e) => {
            mark_halted(app, vm)?;
            Err(e)
        }
    }
}

/// `VM.pause`.
pub fn pause(ctx: &Ctx, vm: &str) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, Op::Pause)?;
    with_vm_operation(ctx, vm, Op::Pause, || {
        app.hypervisor
            .pause(&uuid_of(&rec)?)
            .map_err(|e| xenops_error(vm, e))?;
        record_live(app, vm, false, None)
    })
}

/// `VM.unpause`.
pub fn unpause(ctx: &Ctx, vm: &str) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, Op::Unpause)?;
    with_vm_operation(ctx, vm, Op::Unpause, || {
        app.hypervisor
            .unpause(&uuid_of(&rec)?)
            .map_err(|e| xenops_error(vm, e))?;
        record_live(app, vm, false, None)
    })
}

/// Where a VM's suspend image goes (until suspend VDIs exist).
pub fn suspend_image_path(app: &App, rec: &VmRecord) -> PathBuf {
    app.config
        .state_dir
        .join("suspend")
        .join(format!("{}.img", rec.uuid))
}

/// `VM.suspend`: the guest's memory goes to an image file; the domain is destroyed.
pub fn suspend(ctx: &Ctx, vm: &str) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, Op::Suspend)?;
    with_vm_operation(ctx, vm, Op::Suspend, || {
        let path = suspend_image_path(app, &rec);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", dir.display())))?;
        }
        app.hypervisor
            .suspend(&uuid_of(&rec)?, &path, guest_timeout())
            .map_err(|e| xenops_error(vm, e))?;
        let text = path.display().to_string();
        update::<VmRecord>(app, vm, |r| {
            r.other_config.insert(SUSPEND_IMAGE_KEY.to_owned(), text);
        })?;
        tracing::info!(vm, "VM suspended");
        mark_stopped(app, vm, VmPowerState::Suspended)
    })
}

/// The record a VM booted with (for resume and migration), or its current one.
fn booted_record(rec: &VmRecord) -> VmRecord {
    let mut booted = parse_boot_record(&rec.last_booted_record).unwrap_or_else(|| rec.clone());
    // Devices are the VM's current ones; the identity never changes.
    booted.uuid = rec.uuid.clone();
    booted.vbds = rec.vbds.clone();
    booted.vifs = rec.vifs.clone();
    // Live changes made since the boot (the balloon target, hot-plugged vCPUs) belong to the
    // domain and move with it.
    booted.memory_dynamic_min = rec.memory_dynamic_min;
    booted.memory_dynamic_max = rec.memory_dynamic_max;
    booted.vcpus_at_startup = rec.vcpus_at_startup;
    booted
}

/// `VM.resume` / `VM.resume_on`.
pub fn resume(ctx: &Ctx, vm: &str, paused: bool, op: Op) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, op)?;
    with_vm_operation(ctx, vm, op, || {
        let booted = booted_record(&rec);
        let config = domain_config(app, &booted)?;
        assert_enough_memory(app, &booted)?;
        let path = rec
            .other_config
            .get(SUSPEND_IMAGE_KEY)
            .map(PathBuf::from)
            .unwrap_or_else(|| suspend_image_path(app, &rec));
        app.hypervisor
            .resume(&config, &path)
            .map_err(|e| xenops_error(vm, e))?;
        if !paused {
            app.hypervisor
                .unpause(&config.uuid)
                .map_err(|e| xenops_error(vm, e))?;
        }
        discard_suspend_image(app, vm)?;
        tracing::info!(vm, "VM resumed");
        record_live(app, vm, false, None)
    })
}

/// `VM.pool_migrate` to this host: the domain's state is sent and received again locally, so
/// the VM keeps running in a new domain.
pub fn pool_migrate(ctx: &Ctx, vm: &str, host: &Ref<classes::Host>) -> ApiResult<()> {
    let app = &ctx.app;
    assert_this_host(app, host)?;
    let rec = assert_operation_valid(app, vm, Op::PoolMigrate)?;
    with_vm_operation(ctx, vm, Op::PoolMigrate, || {
        let uuid = uuid_of(&rec)?;
        let booted = booted_record(&rec);
        let config = domain_config(app, &booted)?;
        let state = app
            .hypervisor
            .migrate_send(&uuid, guest_timeout())
            .map_err(|e| xenops_error(vm, e))?;
        let received = app
            .hypervisor
            .migrate_receive(&config, &state)
            .and_then(|_| app.hypervisor.unpause(&uuid));
        if let Err(e) = received {
            mark_halted(app, vm)?;
            return Err(xenops_error(vm, e));
        }
        tracing::info!(vm, "VM migrated to this host");
        record_live(app, vm, false, None)
    })
}
