//! VBD and VIF hotplug (`plug`, `unplug`, `unplug_force`), CD media (`VBD.insert`,
//! `VBD.eject`) and the device numbers a VM still has free (`VM.get_allowed_VBD_devices`,
//! `VM.get_allowed_VIF_devices`). Each device operation runs as an operation on the device
//! (its `current_operations`) and leaves the VM's and devices' `allowed_operations` fresh.

use xapi_idl::enums::{DomainType, VbdType, VmPowerState};
use xapi_idl::records::{
    VbdRecord, VdiRecord, VifRecord, VmGuestMetricsRecord, VmMetricsRecord, VmRecord,
};
use xapi_idl::{classes, errors, ApiError, ApiResult, Ref};
use xenops::XenopsError;

use crate::app::App;
use crate::dispatch::Ctx;
use crate::errors::xenops_error;
use crate::vm::hypervisor::{vbd_config, vdi_backend, vif_config};
use crate::vm::lifecycle::{booted_hvm, has_pv_drivers, power_state_name};
use crate::vm::{read, read_vm, update, uuid_of};

/// The VM a device belongs to, which must be running for hotplug; an HVM guest also needs PV
/// drivers (`VM_MISSING_PV_DRIVERS`).
fn running_vm(app: &App, vm: &Ref<classes::Vm>) -> ApiResult<VmRecord> {
    let rec = read_vm(app, vm.as_str())?;
    if rec.power_state != VmPowerState::Running {
        return Err(errors::vm_bad_power_state(
            vm.as_str(),
            power_state_name(VmPowerState::Running),
            power_state_name(rec.power_state),
        ));
    }
    let metrics = read::<VmMetricsRecord>(app, rec.metrics.as_str()).ok();
    let gm = read::<VmGuestMetricsRecord>(app, rec.guest_metrics.as_str()).ok();
    if booted_hvm(&rec, metrics.as_ref()) && !has_pv_drivers(gm.as_ref()) {
        return Err(errors::vm_missing_pv_drivers(vm.as_str()));
    }
    Ok(rec)
}

fn detach_rejected(class: &str, r: &str) -> ApiError {
    ApiError::new(
        "DEVICE_DETACH_REJECTED",
        vec![
            class.to_owned(),
            r.to_owned(),
            "the guest has not released the device".to_owned(),
        ],
    )
}

/// Runs `f` as device operation `op`, then refreshes the VM's allowed operations.
fn device_operation<R>(
    ctx: &Ctx,
    class: &str,
    r: &str,
    vm: &Ref<classes::Vm>,
    op: &str,
    f: impl FnOnce() -> ApiResult<R>,
) -> ApiResult<R> {
    let result = crate::tasks::with_operation(ctx, class, r, op, f);
    crate::vm::allowed_ops::update_vm(&ctx.app, vm.as_str());
    result
}

/// `VBD.plug`: hot-plug a disk or CD drive into a running VM.
pub fn vbd_plug(ctx: &Ctx, vbd: &str) -> ApiResult<()> {
    let app = &ctx.app;
    let v = read::<VbdRecord>(app, vbd)?;
    let rec = running_vm(app, &v.vm)?;
    if v.currently_attached {
        return Err(errors::device_already_attached(vbd));
    }
    let config = vbd_config(app, &v).ok_or_else(|| errors::vbd_is_empty(vbd))?;
    device_operation(ctx, "VBD", vbd, &v.vm, "plug", || {
        let info = app
            .hypervisor
            .attach_vbd(&uuid_of(&rec)?, &config)
            .map_err(|e| xenops_error(v.vm.as_str(), e))?;
        update::<VbdRecord>(app, vbd, |v| {
            v.currently_attached = true;
            v.device = crate::vm::power::device_name(&info.device);
        })?;
        Ok(())
    })
}

/// `VBD.unplug` (`force`: `VBD.unplug_force`).
pub fn vbd_unplug(ctx: &Ctx, vbd: &str, force: bool) -> ApiResult<()> {
    let app = &ctx.app;
    let v = read::<VbdRecord>(app, vbd)?;
    let rec = read_vm(app, v.vm.as_str())?;
    if !v.currently_attached || rec.power_state == VmPowerState::Halted {
        return Err(errors::device_already_detached(vbd));
    }
    if !force && !v.unpluggable {
        return Err(errors::vbd_not_unpluggable(vbd));
    }
    let op = if force { "unplug_force" } else { "unplug" };
    device_operation(ctx, "VBD", vbd, &v.vm, op, || {
        match app
            .hypervisor
            .detach_vbd(&uuid_of(&rec)?, &v.userdevice, force)
        {
            Ok(()) | Err(XenopsError::NoSuchDevice { .. }) => {}
            Err(XenopsError::DeviceBusy { .. }) => return Err(detach_rejected("VBD", vbd)),
            Err(e) => return Err(xenops_error(v.vm.as_str(), e)),
        }
        update::<VbdRecord>(app, vbd, |v| v.currently_attached = false)?;
        if !v.vdi.is_null() && !v.empty {
            crate::storage::deactivate(app, v.vdi.as_str());
        }
        Ok(())
    })
}

/// `VBD.insert`: put a disc into an empty CD drive (live when the VM runs).
pub fn vbd_insert(ctx: &Ctx, vbd: &str, vdi: &Ref<classes::Vdi>) -> ApiResult<()> {
    let app = &ctx.app;
    let v = read::<VbdRecord>(app, vbd)?;
    if v.type_ != VbdType::Cd {
        return Err(errors::vbd_not_removable_media(vbd));
    }
    if !v.empty {
        return Err(errors::vbd_not_empty(vbd));
    }
    read::<VdiRecord>(app, vdi.as_str())?;
    let rec = read_vm(app, v.vm.as_str())?;
    device_operation(ctx, "VBD", vbd, &v.vm, "insert", || {
        if v.currently_attached && rec.power_state != VmPowerState::Halted {
            // The disc's data path from its SR, as a boot-time CD gets it.
            let backend = vdi_backend(app, vdi.as_str(), false);
            let inserted = uuid_of(&rec).and_then(|uuid| {
                app.hypervisor
                    .insert_cd(&uuid, &v.userdevice, &backend)
                    .map_err(|e| xenops_error(v.vm.as_str(), e))
            });
            if let Err(e) = inserted {
                crate::storage::deactivate(app, vdi.as_str());
                return Err(e);
            }
        }
        let vdi = vdi.clone();
        update::<VbdRecord>(app, vbd, |v| {
            v.vdi = vdi;
            v.empty = false;
        })?;
        Ok(())
    })
}

/// `VBD.eject`: take the disc out of a CD drive.
pub fn vbd_eject(ctx: &Ctx, vbd: &str) -> ApiResult<()> {
    let app = &ctx.app;
    let v = read::<VbdRecord>(app, vbd)?;
    if v.type_ != VbdType::Cd {
        return Err(errors::vbd_not_removable_media(vbd));
    }
    if v.empty {
        return Err(errors::vbd_is_empty(vbd));
    }
    let rec = read_vm(app, v.vm.as_str())?;
    device_operation(ctx, "VBD", vbd, &v.vm, "eject", || {
        if v.currently_attached && rec.power_state != VmPowerState::Halted {
            match app.hypervisor.eject_cd(&uuid_of(&rec)?, &v.userdevice) {
                Ok(()) | Err(XenopsError::CdEmpty { .. }) => {}
                Err(e) => return Err(xenops_error(v.vm.as_str(), e)),
            }
            crate::storage::deactivate(app, v.vdi.as_str());
        }
        update::<VbdRecord>(app, vbd, |v| {
            v.vdi = Ref::null();
            v.empty = true;
        })?;
        Ok(())
    })
}

/// `VIF.plug`: hot-plug a network interface into a running VM.
pub fn vif_plug(ctx: &Ctx, vif: &str) -> ApiResult<()> {
    let app = &ctx.app;
    let v = read::<VifRecord>(app, vif)?;
    let rec = running_vm(app, &v.vm)?;
    if v.currently_attached {
        return Err(errors::device_already_attached(vif));
    }
    let config = vif_config(app, &v);
    device_operation(ctx, "VIF", vif, &v.vm, "plug", || {
        app.hypervisor
            .attach_vif(&uuid_of(&rec)?, &config)
            .map_err(|e| xenops_error(v.vm.as_str(), e))?;
        update::<VifRecord>(app, vif, |v| v.currently_attached = true)?;
        Ok(())
    })
}

/// `VIF.unplug` (`force`: `VIF.unplug_force`).
pub fn vif_unplug(ctx: &Ctx, vif: &str, force: bool) -> ApiResult<()> {
    let app = &ctx.app;
    let v = read::<VifRecord>(app, vif)?;
    let rec = read_vm(app, v.vm.as_str())?;
    if !v.currently_attached || rec.power_state == VmPowerState::Halted {
        return Err(errors::device_already_detached(vif));
    }
    let op = if force { "unplug_force" } else { "unplug" };
    device_operation(ctx, "VIF", vif, &v.vm, op, || {
        match app.hypervisor.detach_vif(&uuid_of(&rec)?, &v.device, force) {
            Ok(()) | Err(XenopsError::NoSuchDevice { .. }) => {}
            Err(XenopsError::DeviceBusy { .. }) => return Err(detach_rejected("VIF", vif)),
            Err(e) => return Err(xenops_error(v.vm.as_str(), e)),
        }
        update::<VifRecord>(app, vif, |v| v.currently_attached = false)?;
        Ok(())
    })
}

/// `VM.get_allowed_VBD_devices`: free `userdevice` numbers (0-3 for HVM, 0-15 otherwise).
pub fn allowed_vbd_devices(app: &App, vm: &str) -> ApiResult<Vec<String>> {
    let rec = read_vm(app, vm)?;
    let top = if rec.domain_type == DomainType::Hvm {
        3
    } else {
        15
    };
    let used: Vec<String> = crate::vm::hypervisor::vbds_of(app, &rec)
        .into_iter()
        .map(|(_, v)| v.userdevice)
        .collect();
    Ok((0..=top)
        .map(|n: u32| n.to_string())
        .filter(|d| !used.contains(d))
        .collect())
}

/// `VM.get_allowed_VIF_devices`: free VIF device numbers (0-6).
pub fn allowed_vif_devices(app: &App, vm: &str) -> ApiResult<Vec<String>> {
    let rec = read_vm(app, vm)?;
    let used: Vec<String> = crate::vm::hypervisor::vifs_of(app, &rec)
        .into_iter()
        .map(|(_, v)| v.device)
        .collect();
    Ok((0..=6)
        .map(|n: u32| n.to_string())
        .filter(|d| !used.contains(d))
        .collect())
}
