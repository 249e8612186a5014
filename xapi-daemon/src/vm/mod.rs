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
        if txn.view().get(t, r).is_none() {
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
        if txn.view().get(t, r).is_some() {
            txn.delete(t, r)?;
        }
        Ok(())
    })
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
pub fn with_vm_operation<R>(
    ctx: &Ctx,
    vm: &str,
    op: xapi_idl::enums::VmOperations,
    f: impl FnOnce() -> ApiResult<R>,
) -> ApiResult<R> {
    let result = crate::tasks::with_operation(ctx, "VM", vm, xapi_idl::WireEnum::as_str(op), f);
    allowed_ops::update_vm(&ctx.app, vm);
    monitor::recheck(&ctx.app, vm);
    result
}

/// The wire value of a record, as `get_record` answers.
pub fn record_value<R: Record>(rec: &R) -> Value {
    xapi_idl::ToValue::to_value(rec)
}
