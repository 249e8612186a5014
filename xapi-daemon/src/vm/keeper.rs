//! Side effects of the generic (implicit) `VM.create`, `VM.destroy`, `VBD.create` and
//! `VIF.create`, which the implicit-message engine runs without knowing any class: a new VM
//! gets its `VM_metrics` and `allowed_operations`; a destroyed VM takes its metrics, guest
//! metrics, VBDs and VIFs with it (and any domain it still had); a new VIF gets a MAC.
//!
//! It follows the object store's change log (`Db::changes_since_where`), woken only by commits
//! that add or delete objects (`Db::subscribe_membership`), so it also covers objects made by
//! any other path, shortly after the write that made them.

use std::sync::Arc;

use xapi_db::ChangeOp;
use xapi_idl::records::{VbdRecord, VifRecord, VmRecord};
use xapi_idl::{classes, Class, Record};

use crate::app::App;
use crate::vm::{allowed_ops, delete, metrics, update};

/// Follows the change log until the process ends.
pub async fn run(app: Arc<App>) {
    // Only objects coming and going matter here: field changes do not wake the keeper.
    let mut generations = app.db.subscribe_membership();
    let mut since = app.db.read(|v| v.generation());
    loop {
        if generations.changed().await.is_err() {
            return;
        }
        // Most changes are modifications, which need nothing: look on this thread (without
        // building the rows of the others) and only go to a blocking thread (the work writes
        // and may ask the hypervisor) when there is something to do.
        let changes = app
            .db
            .changes_since_where(since, 0, |table, op| relevant(&app, table, op));
        since = changes.upto;
        if changes.items.is_empty() {
            continue;
        }
        let worker = app.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || handle(&worker, &changes.items)).await {
            tracing::warn!(error = %e, "VM keeper pass panicked");
        }
    }
}

/// Whether the keeper acts on a change: VMs, VBDs and VIFs coming or going.
fn relevant(app: &App, t: xapi_db::TableId, op: ChangeOp) -> bool {
    match op {
        ChangeOp::Mod => false,
        ChangeOp::Add | ChangeOp::Del => {
            t == app.table_of::<classes::Vm>()
                || t == app.table_of::<classes::Vbd>()
                || t == app.table_of::<classes::Vif>()
        }
    }
}

/// Applies the side effects of these changes.
fn handle(app: &App, items: &[xapi_db::Change]) {
    let vm_t = app.table_of::<classes::Vm>();
    let vbd_t = app.table_of::<classes::Vbd>();
    let vif_t = app.table_of::<classes::Vif>();
    for change in items {
        let result = match (change.op, change.table) {
            (ChangeOp::Add, t) if t == vm_t => vm_added(app, &change.r#ref),
            (ChangeOp::Del, t) if t == vm_t => vm_deleted(app, &change.r#ref, &change.row),
            (ChangeOp::Add, t) if t == vif_t => vif_added(app, &change.r#ref),
            (ChangeOp::Add | ChangeOp::Del, t) if t == vbd_t => {
                device_changed(app, VbdRecord::from_row(&change.row).map(|v| v.vm))
            }
            (ChangeOp::Del, t) if t == vif_t => {
                device_changed(app, VifRecord::from_row(&change.row).map(|v| v.vm))
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!(object = %change.r#ref, error = %e, "keeper could not follow a change");
        }
    }
}

fn vm_added(app: &App, vm: &str) -> xapi_idl::ApiResult<()> {
    let Some(row) = app.db.get(app.table_of::<classes::Vm>(), vm) else {
        return Ok(());
    };
    let rec = VmRecord::from_row(&row).map_err(xapi_idl::ApiError::from)?;
    if !rec.is_control_domain {
        metrics::ensure_metrics(app, vm, &rec)?;
    }
    allowed_ops::update_vm(app, vm);
    Ok(())
}

fn vm_deleted(app: &App, vm: &str, row: &[xapi_idl::Value]) -> xapi_idl::ApiResult<()> {
    let rec = VmRecord::from_row(row).map_err(xapi_idl::ApiError::from)?;
    if let Ok(uuid) = crate::vm::uuid_of(&rec) {
        if app.hypervisor.domain(&uuid).is_ok() {
            tracing::warn!(
                vm,
                "a VM with a domain was destroyed; destroying its domain"
            );
            let _ = app.hypervisor.shutdown(
                &uuid,
                xenops::ShutdownKind::Hard,
                crate::vm::guest_timeout(),
            );
            let _ = metrics::refresh_host(app);
        }
    }
    delete::<classes::VmMetrics>(app, rec.metrics.as_str())?;
    delete::<classes::VmGuestMetrics>(app, rec.guest_metrics.as_str())?;
    for (class_index, table) in [
        (
            <classes::Vbd as Class>::INDEX,
            app.table_of::<classes::Vbd>(),
        ),
        (
            <classes::Vif as Class>::INDEX,
            app.table_of::<classes::Vif>(),
        ),
    ] {
        let Some(&vm_col) = app.model.classes[class_index].field_index.get("VM") else {
            continue;
        };
        for device in app.db.refs_where_ref(table, vm_col, vm) {
            app.write(|txn| {
                if txn.view().get(table, &device).is_some() {
                    txn.delete(table, &device)?;
                }
                Ok(())
            })?;
        }
    }
    if let Some(path) = rec.other_config.get(crate::vm::power::SUSPEND_IMAGE_KEY) {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

fn vif_added(app: &App, vif: &str) -> xapi_idl::ApiResult<()> {
    let v = crate::vm::read::<VifRecord>(app, vif)?;
    if v.mac.is_empty() {
        let mac = crate::vm::hypervisor::mac_from(&v.uuid);
        update::<VifRecord>(app, vif, |v| {
            v.mac = mac;
            v.mac_autogenerated = true;
        })?;
    }
    if v.mtu == 0 {
        update::<VifRecord>(app, vif, |v| v.mtu = 1500)?;
    }
    allowed_ops::update_vm(app, v.vm.as_str());
    Ok(())
}

/// A device came or went: its VM's (and its devices') allowed operations change.
fn device_changed(
    app: &App,
    vm: Result<xapi_idl::Ref<classes::Vm>, xapi_idl::ConvError>,
) -> xapi_idl::ApiResult<()> {
    let vm = vm.map_err(xapi_idl::ApiError::from)?;
    allowed_ops::update_vm(app, vm.as_str());
    Ok(())
}
