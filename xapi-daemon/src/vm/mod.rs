//! The VM lifecycle on top of the `xenops::Hypervisor` trait: power operations, the
//! allowed-operations table, devices (VBD, VIF, CD media), memory and vCPU settings, the
//! `VM_metrics` / `VM_guest_metrics` / `host_metrics` bookkeeping, the domain event consumer
//! (`actions_after_*`) and the reconciliation of the database with the hypervisor at start.
//!
//! Module map:
//! - `lifecycle`: the power-state machine and the per-operation checks (pure, no I/O);
//! - `allowed_ops`: writes `allowed_operations` of VMs, VBDs and VIFs from those checks;
//! - `hypervisor`: opening the backend and turning VM records into `DomainConfig`s;
//! - `power`: start, shutdown, reboot, pause, suspend, resume, migrate;
//! - `memory`: memory and vCPU settings and the host free-memory check;
//! - `devices`: VBD and VIF plug/unplug, CD insert/eject, allowed device numbers;
//! - `copies`: snapshot, checkpoint, revert, copy and provision (record level until storage);
//! - `metrics`: `VM_metrics`, `VM_guest_metrics` and `host_metrics`;
//! - `monitor`: consumes domain events, honours `actions_after_*`, reconciles at start;
//! - `keeper`: side effects of the implicit `VM.create` / `VM.destroy` (metrics, devices).
//!
//! Everything here runs on blocking threads; it never talks to SQLite directly, only to the
//! object store through `App`.

pub mod allowed_ops;
pub mod copies;
pub mod devices;
pub mod hypervisor;
pub mod keeper;
pub mod lifecycle;
pub mod memory;
pub mod metrics;
pub mod monitor;
pub mod power;

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use xapi_idl::records::VmRecord;
use xapi_idl::{classes, errors, ApiError, ApiResult, Class, Record, Ref, Value};

use crate::app::App;
use crate::dispatch::{Ctx, Origin};

/// In-memory lifecycle state the daemon keeps per process.
#[derive(Default)]
pub struct Runtime {
    /// The last shutdown reason the hypervisor reported per VM uuid, until the domain is gone.
    pub(crate) shutdown_reasons: Mutex<HashMap<uuid::Uuid, xenops::ShutdownReason>>,
}

/// How long a clean shutdown, reboot or suspend waits for the guest
/// (`XAPI_VM_SHUTDOWN_TIMEOUT_MS`, default 60 s; upstream waits up to 20 minutes).
pub fn guest_timeout() -> Duration {
    std::env::var("XAPI_VM_SHUTDOWN_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(60))
}

/// Reads a typed record, or `HANDLE_INVALID [class, ref]`.
pub fn read<R: Record>(app: &App, r: &str) -> ApiResult<R> {
    let t = app.table_of::<R::Class>();
    let row = app.db.get(t, r).ok_or_else(|| {
        errors::handle_invalid(&app.model.classes[<R::Class as Class>::INDEX].name, r)
    })?;
    R::from_row(&row).map_err(ApiError::from)
}

/// Reads a VM record.
pub fn read_vm(app: &App, vm: &str) -> ApiResult<VmRecord> {
    read::<VmRecord>(app, vm)
}

/// Changes a record with `f` and writes the fields that changed (never the derived relation
/// columns, which the store fills). Returns the new record; a vanished object is
/// `HANDLE_INVALID`.
pub fn update<R: Record>(app: &App, r: &str, f: impl FnOnce(&mut R)) -> ApiResult<R> {
    let t = app.table_of::<R::Class>();
    let class = &app.model.classes[<R::Class as Class>::INDEX];
    let old = app
        .db
        .get(t, r)
        .ok_or_else(|| errors::handle_invalid(&class.name, r))?;
    let mut rec = R::from_row(&old).map_err(ApiError::from)?;
    f(&mut rec);
    let new = rec.to_row();
    app.write(|txn| {
        if !exists(&txn.view(), t, r) {
            return Ok(());
        }
        for (c, v) in new.iter().enumerate() {
            if old.get(c) != Some(v) && !class.fields[c].derived {
                txn.set_field(t, r, c, v.clone())?;
            }
        }
        Ok(())
    })?;
    Ok(rec)
}

/// Inserts a new record under `r`, with its relation columns left for the store to fill.
pub fn insert<R: Record>(app: &App, r: &str, rec: &R) -> ApiResult<()> {
    let t = app.table_of::<R::Class>();
    let row = crate::tasks::clear_derived(app, t, rec.to_row());
    app.write(|txn| txn.insert(t, r, row))
}

/// Deletes an object if it still exists.
pub fn delete<C: Class>(app: &App, r: &str) -> ApiResult<()> {
    if r.is_empty() || r == xapi_idl::NULL_REF {
        return Ok(());
    }
    let t = app.table_of::<C>();
    app.write(|txn| {
        if exists(&txn.view(), t, r) {
            txn.delete(t, r)?;
        }
        Ok(())
    })
}

/// Whether an object exists, without building its row (a read of a whole row copies it once
/// after every change).
fn exists(view: &xapi_db::ReadView<'_>, t: xapi_db::TableId, r: &str) -> bool {
    view.generations(t, r).is_some()
}

/// The column of a field of class `C` in the store (a field's position in the datamodel).
pub fn column<C: Class>(app: &App, field: &str) -> Option<usize> {
    app.model.classes[C::INDEX].field_index.get(field).copied()
}

/// The column of a `VM` field in the store.
pub fn vm_column(app: &App, field: &str) -> Option<usize> {
    column::<classes::Vm>(app, field)
}

/// One field of an object of class `C`, read without building its record.
pub fn field<C: Class>(app: &App, r: &str, name: &str) -> Option<Value> {
    let c = column::<C>(app, name)?;
    app.db.get_field(app.table_of::<C>(), r, c)
}

/// Sets fields of an object of class `C` by name in one write, leaving those that already
/// hold the value alone, without building the record (`update` for a few known fields).
/// A vanished object is `HANDLE_INVALID`; one that vanishes meanwhile is left alone.
pub fn set_fields<C: Class>(app: &App, r: &str, fields: &[(&str, Value)]) -> ApiResult<()> {
    let t = app.table_of::<C>();
    let class = &app.model.classes[C::INDEX];
    let mut columns = Vec::with_capacity(fields.len());
    for (name, _) in fields {
        let c = column::<C>(app, name)
            .ok_or_else(|| ApiError::internal(format!("{} has no field {name}", class.name)))?;
        columns.push(c);
    }
    if !app.db.read(|view| exists(view, t, r)) {
        return Err(errors::handle_invalid(&class.name, r));
    }
    app.write(|txn| {
        if !exists(&txn.view(), t, r) {
            return Ok(());
        }
        for (&c, (_, value)) in columns.iter().zip(fields) {
            if txn.view().get_field(t, r, c).as_ref() != Some(value) {
                txn.set_field(t, r, c, value.clone())?;
            }
        }
        Ok(())
    })
}

/// Whether a VM lists operations in progress, read without building its row or record.
pub fn has_current_operations(app: &App, vm: &str) -> bool {
    field::<classes::Vm>(app, vm, "current_operations")
        .is_some_and(|v| matches!(v, Value::Struct(ops) if !ops.is_empty()))
}

/// Whether a VM row lists operations in progress (for a row the caller holds anyway).
pub fn has_current_operations_in(app: &App, row: &[Value]) -> bool {
    vm_column(app, "current_operations")
        .and_then(|c| row.get(c))
        .is_some_and(|v| matches!(v, Value::Struct(ops) if !ops.is_empty()))
}

/// The VM's uuid as the hypervisor names it.
pub fn uuid_of(rec: &VmRecord) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(&rec.uuid)
        .map_err(|_| ApiError::internal(format!("VM has a malformed uuid {:?}", rec.uuid)))
}

/// The VM whose uuid this is, if the database has it.
pub fn vm_by_uuid(app: &App, uuid: &uuid::Uuid) -> Option<Ref<classes::Vm>> {
    app.db
        .ref_by_uuid(app.table_of::<classes::Vm>(), &uuid.to_string())
        .map(Ref::from_string)
}

/// A context for work the daemon does on its own behalf (event consumer, start-up).
pub fn internal_ctx(app: &std::sync::Arc<App>) -> Ctx {
    Ctx {
        app: app.clone(),
        session: None,
        origin: Origin::Unix,
        task: None,
    }
}

/// Runs `f` as operation `op` on VM `vm` (recorded in `current_operations`, conflicting
/// operations refused), then recomputes `allowed_operations` and lets the event consumer look
/// at the VM again, since events that arrived meanwhile were left to the operation.
///
/// The same bookkeeping as `tasks::with_operation`, in fewer writes: taking the operation is
/// one write, and ending it removes the entry and stores the newly allowed operations in
/// another (the VM's devices follow in their own writes when theirs change).
pub fn with_vm_operation<R>(
    ctx: &Ctx,
    vm: &str,
    op: xapi_idl::enums::VmOperations,
    f: impl FnOnce() -> ApiResult<R>,
) -> ApiResult<R> {
    let guard = VmOperation::take(&ctx.app, vm, op, ctx.operation_ref())?;
    let result = f();
    drop(guard);
    monitor::recheck(&ctx.app, vm);
    result
}

/// An operation's entry in a VM's `current_operations`; dropping it removes the entry and
/// recomputes `allowed_operations` (also when the operation panicked).
struct VmOperation<'a> {
    app: &'a App,
    vm: &'a str,
    op_ref: String,
    /// `allowed_operations` before the operation, put back if it cannot be recomputed.
    saved: Value,
}

impl<'a> VmOperation<'a> {
    fn take(
        app: &'a App,
        vm: &'a str,
        op: xapi_idl::enums::VmOperations,
        op_ref: String,
    ) -> ApiResult<VmOperation<'a>> {
        let t = app.table_of::<classes::Vm>();
        let (Some(current), Some(allowed)) = (
            vm_column(app, "current_operations"),
            vm_column(app, "allowed_operations"),
        ) else {
            return Err(ApiError::internal("VM has no operation columns"));
        };
        let saved = app.write(|txn| {
            let view = txn.view();
            if !exists(&view, t, vm) {
                return Ok(Err(errors::handle_invalid("VM", vm)));
            }
            if let Some(Value::Struct(ops)) = view.get_field(t, vm, current) {
                if let Some((other_ref, other_op)) = ops.first() {
                    let other_op = other_op.as_str().unwrap_or_default().to_owned();
                    return Ok(Err(errors::other_operation_in_progress(
                        "VM", vm, other_op, other_ref,
                    )));
                }
            }
            let name = xapi_idl::WireEnum::as_str(op).to_owned();
            let saved = view
                .get_field(t, vm, allowed)
                .unwrap_or(Value::Array(Vec::new()));
            txn.map_add(t, vm, current, &op_ref, Value::String(name))?;
            txn.set_field(t, vm, allowed, Value::Array(Vec::new()))?;
            Ok(Ok(saved))
        })??;
        Ok(VmOperation {
            app,
            vm,
            op_ref,
            saved,
        })
    }
}

impl Drop for VmOperation<'_> {
    fn drop(&mut self) {
        let (app, vm) = (self.app, self.vm);
        let t = app.table_of::<classes::Vm>();
        let (Some(current), Some(allowed)) = (
            vm_column(app, "current_operations"),
            vm_column(app, "allowed_operations"),
        ) else {
            return;
        };
        let result = app.write(|txn| {
            if !exists(&txn.view(), t, vm) {
                return Ok(None);
            }
            txn.map_remove(t, vm, current, &self.op_ref)?;
            let Some(row) = txn.view().get(t, vm) else {
                return Ok(None);
            };
            let Ok(rec) = VmRecord::from_row(&row) else {
                txn.set_field(t, vm, allowed, self.saved.clone())?;
                return Ok(None);
            };
            let ops = allowed_ops::compute_vm_with(vm, &rec, |t, r| txn.view().get(t, r), app);
            txn.set_field(t, vm, allowed, xapi_idl::ToValue::to_value(&ops))?;
            Ok(Some(rec))
        });
        match result {
            Ok(Some(rec)) => {
                if let Err(e) = allowed_ops::update_devices(app, &rec) {
                    tracing::debug!(vm, error = %e, "device allowed_operations not updated");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(vm, error = %e, "could not clear current_operations"),
        }
    }
}

/// The wire value of a record, as `get_record` answers.
pub fn record_value<R: Record>(rec: &R) -> Value {
    xapi_idl::ToValue::to_value(rec)
}
