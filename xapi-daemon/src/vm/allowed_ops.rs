//! Writes `allowed_operations` of a VM (from `lifecycle::check`) and of its VBDs and VIFs
//! (from the VM's power state and the device's state), after every change that can move them.
//!
//! While an operation runs on a VM, its `allowed_operations` is whatever `lifecycle` allows
//! next to the operations in progress.

use xapi_idl::enums::{VbdOperations, VbdType, VifOperations, VmPowerState};
use xapi_idl::records::{VbdRecord, VifRecord, VmGuestMetricsRecord, VmMetricsRecord, VmRecord};

use crate::app::App;
use crate::vm::lifecycle::{self, Facts};
use xapi_idl::{Record, ToValue};

use crate::vm::{read, update};

/// The allowed operations of a VM record as stored now.
pub fn compute_vm(app: &App, vm: &str, rec: &VmRecord) -> Vec<xapi_idl::enums::VmOperations> {
    compute_vm_with(vm, rec, |t, r| app.db.get(t, r), app)
}

/// The allowed operations of a VM record, reading its metrics through `get` (so it also
/// works inside a write transaction, with the transaction's view).
pub fn compute_vm_with(
    vm: &str,
    rec: &VmRecord,
    get: impl Fn(xapi_db::TableId, &str) -> Option<xapi_db::Row>,
    app: &App,
) -> Vec<xapi_idl::enums::VmOperations> {
    let metrics = get(
        app.table_of::<xapi_idl::classes::VmMetrics>(),
        rec.metrics.as_str(),
    )
    .and_then(|row| VmMetricsRecord::from_row(&row).ok());
    let guest_metrics = get(
        app.table_of::<xapi_idl::classes::VmGuestMetrics>(),
        rec.guest_metrics.as_str(),
    )
    .and_then(|row| VmGuestMetricsRecord::from_row(&row).ok());
    lifecycle::allowed_operations(&Facts {
        vm,
        rec,
        metrics: metrics.as_ref(),
        guest_metrics: guest_metrics.as_ref(),
    })
}

/// Recomputes `allowed_operations` of a VM and its devices; failures are logged, not raised
/// (the operation that caused the change has already happened).
pub fn update_vm(app: &App, vm: &str) {
    if let Err(e) = try_update_vm(app, vm) {
        tracing::debug!(vm, error = %e, "allowed_operations not updated");
    }
}

/// Several threads recompute concurrently (the operation itself, the keeper, the domain
/// monitor), so the write is a compare-and-set: it only lands if the VM row is still the one
/// the result was computed from, and otherwise the computation is redone.
fn try_update_vm(app: &App, vm: &str) -> xapi_idl::ApiResult<()> {
    let t = app.table_of::<xapi_idl::classes::Vm>();
    let col = app.model.classes[<xapi_idl::classes::Vm as xapi_idl::Class>::INDEX].field_index
        ["allowed_operations"];
    let mut rec = None;
    for _ in 0..16 {
        // The row with its generations: an unchanged row keeps them, so the compare-and-set
        // needs no second copy of the row.
        let (Some(row), Some(seen)) = app.db.read(|v| (v.get(t, vm), v.generations(t, vm))) else {
            return Ok(());
        };
        let now = VmRecord::from_row(&row).map_err(xapi_idl::ApiError::from)?;
        let allowed = compute_vm(app, vm, &now);
        if allowed == now.allowed_operations {
            rec = Some(now);
            break;
        }
        let value = allowed.to_value();
        let written = app.write(|txn| {
            if txn.view().generations(t, vm) == Some(seen) {
                txn.set_field(t, vm, col, value).map(|()| true)
            } else {
                Ok(false)
            }
        })?;
        rec = Some(now);
        if written {
            break;
        }
    }
    match rec {
        Some(rec) => update_devices(app, &rec),
        None => Ok(()),
    }
}

/// Recomputes `allowed_operations` of the VBDs and VIFs of a VM record.
pub fn update_devices(app: &App, rec: &VmRecord) -> xapi_idl::ApiResult<()> {
    for vbd in &rec.vbds {
        if let Ok(v) = read::<VbdRecord>(app, vbd.as_str()) {
            let ops = vbd_operations(rec.power_state, &v);
            if ops != v.allowed_operations && v.current_operations.is_empty() {
                update::<VbdRecord>(app, vbd.as_str(), |v| v.allowed_operations = ops)?;
            }
        }
    }
    for vif in &rec.vifs {
        if let Ok(v) = read::<VifRecord>(app, vif.as_str()) {
            let ops = vif_operations(rec.power_state, &v);
            if ops != v.allowed_operations && v.current_operations.is_empty() {
                update::<VifRecord>(app, vif.as_str(), |v| v.allowed_operations = ops)?;
            }
        }
    }
    Ok(())
}

fn live(state: VmPowerState) -> bool {
    matches!(state, VmPowerState::Running | VmPowerState::Paused)
}

/// What a VBD allows given its VM's power state.
pub fn vbd_operations(state: VmPowerState, vbd: &VbdRecord) -> Vec<VbdOperations> {
    let mut ops = Vec::new();
    if vbd.type_ == VbdType::Cd {
        ops.push(if vbd.empty {
            VbdOperations::Insert
        } else {
            VbdOperations::Eject
        });
    }
    if state == VmPowerState::Running {
        if vbd.currently_attached {
            ops.extend([VbdOperations::Unplug, VbdOperations::UnplugForce]);
        } else {
            ops.push(VbdOperations::Plug);
        }
    } else if !live(state) {
        ops.push(VbdOperations::Attach);
    }
    ops
}

/// What a VIF allows given its VM's power state.
pub fn vif_operations(state: VmPowerState, vif: &VifRecord) -> Vec<VifOperations> {
    match state {
        VmPowerState::Running if vif.currently_attached => vec![VifOperations::Unplug],
        VmPowerState::Running => vec![VifOperations::Plug],
        VmPowerState::Paused => Vec::new(),
        _ => vec![VifOperations::Attach],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attached_disk_of_a_running_vm_unplugs() {
        let vbd = VbdRecord {
            type_: VbdType::Disk,
            currently_attached: true,
            ..VbdRecord::default()
        };
        assert_eq!(
            vbd_operations(VmPowerState::Running, &vbd),
            vec![VbdOperations::Unplug, VbdOperations::UnplugForce]
        );
        assert_eq!(
            vbd_operations(VmPowerState::Halted, &vbd),
            vec![VbdOperations::Attach]
        );
    }

    #[test]
    fn an_empty_cd_drive_takes_a_disc() {
        let vbd = VbdRecord {
            type_: VbdType::Cd,
            empty: true,
            ..VbdRecord::default()
        };
        assert!(vbd_operations(VmPowerState::Halted, &vbd).contains(&VbdOperations::Insert));
        assert!(!vbd_operations(VmPowerState::Halted, &vbd).contains(&VbdOperations::Eject));
    }

    #[test]
    fn vifs_of_running_vms_plug_or_unplug() {
        let mut vif = VifRecord::default();
        assert_eq!(
            vif_operations(VmPowerState::Running, &vif),
            vec![VifOperations::Plug]
        );
        vif.currently_attached = true;
        assert_eq!(
            vif_operations(VmPowerState::Running, &vif),
            vec![VifOperations::Unplug]
        );
    }
}
