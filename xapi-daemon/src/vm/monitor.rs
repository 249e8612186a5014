//! The domain event consumer: keeps the database equal to the hypervisor when guests act on
//! their own (crash, power off, reboot, agent updates, balloon moves) and honours
//! `actions_after_shutdown`, `actions_after_reboot` and `actions_after_crash`. At start it
//! reconciles every VM with the domains the hypervisor still runs (a restarted daemon finds
//! its VMs running; a rebooted host finds them halted).
//!
//! Events are hints: each one makes the consumer compare a VM's record with its domain and
//! repair the difference, so lost or reordered events cannot leave the two apart. A VM with
//! an operation in progress is left to that operation, which asks for a comparison when it
//! ends.

use std::sync::Arc;

use xapi_db::Row;
use xapi_idl::enums::{OnCrashBehaviour, OnNormalExit, VmOperations as Op, VmPowerState};
use xapi_idl::records::{VmMetricsRecord, VmRecord};
use xapi_idl::{classes, ApiResult, Record, Value};
use xenops::{DomainEvent, DomainState, ShutdownReason, XenopsError};

use crate::app::App;
use crate::vm::{allowed_ops, metrics, power, read_vm, update, uuid_of};

/// Subscribes to domain events, reconciles every VM once, then consumes events on a thread of
/// its own until the process ends.
pub fn spawn(app: &Arc<App>) {
    let events = app.hypervisor.events();
    reconcile_all(app);
    let app = app.clone();
    let spawned = std::thread::Builder::new()
        .name("xenops-events".into())
        .spawn(move || {
            while let Ok(event) = events.recv() {
                // A VM operation makes a burst of events: take what has arrived and compare
                // each VM they name once, after the rest of the burst is handled.
                let mut vms = Vec::new();
                for event in std::iter::once(event).chain(events.try_iter()) {
                    if let Some(vm) = handle(&app, &event) {
                        if !vms.contains(&vm) {
                            vms.push(vm);
                        }
                    }
                }
                for vm in vms {
                    recheck(&app, vm.as_str());
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the domain event consumer");
    }
}

/// Handles one event; returns the VM to compare with its domain, if the event calls for it.
fn handle(app: &Arc<App>, event: &DomainEvent) -> Option<xapi_idl::Ref<classes::Vm>> {
    let uuid = event.uuid();
    match event {
        DomainEvent::Shutdown { reason, .. } => {
            app.vm_runtime.shutdown_reasons.lock().insert(uuid, *reason);
            return None;
        }
        // The state change comes first; by the time it is looked at the domain may be gone,
        // so remember the reason now.
        DomainEvent::StateChanged {
            state: DomainState::Shutdown(reason),
            ..
        } => {
            app.vm_runtime.shutdown_reasons.lock().insert(uuid, *reason);
        }
        DomainEvent::Created { .. } | DomainEvent::DeviceStateChanged { .. } => return None,
        _ => {}
    }
    let vm = crate::vm::vm_by_uuid(app, &uuid)?;
    match event {
        DomainEvent::GuestAgentUpdated { .. } => {
            // Guest features move the allowed operations; nothing new moves nothing.
            match metrics::refresh_guest(app, vm.as_str()) {
                Ok(false) => {}
                Ok(true) => allowed_ops::update_vm(app, vm.as_str()),
                Err(e) => {
                    tracing::debug!(vm = %vm, error = %e, "guest metrics not refreshed");
                    allowed_ops::update_vm(app, vm.as_str());
                }
            }
            None
        }
        DomainEvent::MemoryTargetReached { bytes, .. } => {
            if let Ok(rec) = read_vm(app, vm.as_str()) {
                let _ = update::<VmMetricsRecord>(app, rec.metrics.as_str(), |m| {
                    m.memory_actual = *bytes as i64;
                });
            }
            let _ = metrics::refresh_host(app);
            None
        }
        _ => Some(vm),
    }
}

/// Compares one VM with its domain and repairs the difference (see the module doc); repairs
/// run as VM operations under an internal context.
pub fn recheck(app: &Arc<App>, vm: &str) {
    // A crash loop must not spin here: each pass repairs one difference, at most a few.
    for _ in 0..4 {
        match repair_once(app, vm) {
            Ok(true) => continue,
            Ok(false) => break,
            Err(e) => {
                tracing::debug!(vm, error = %e, "reconciliation deferred");
                break;
            }
        }
    }
}

/// What the hypervisor says about a VM's domain.
enum Seen {
    Live(xenops::DomainInfo),
    Crashed,
    Transient,
    Gone,
}

fn observe(app: &App, rec: &VmRecord) -> ApiResult<Seen> {
    let uuid = uuid_of(rec)?;
    Ok(match app.hypervisor.domain(&uuid) {
        Ok(d) => match d.state {
            DomainState::Running | DomainState::Paused => Seen::Live(d),
            DomainState::Crashed => Seen::Crashed,
            DomainState::Shutdown(_) | DomainState::Dying => Seen::Transient,
        },
        Err(XenopsError::NoSuchDomain(_)) => Seen::Gone,
        Err(e) => return Err(crate::errors::xenops_error(&rec.uuid, e)),
    })
}

/// Repairs one difference; `Ok(true)` when something changed.
fn repair_once(app: &Arc<App>, vm: &str) -> ApiResult<bool> {
    // Most comparisons happen while an operation runs (it asks again when it ends): look at
    // that before reading the whole row.
    if crate::vm::has_current_operations(app, vm) {
        return Ok(false);
    }
    let t = app.table_of::<classes::Vm>();
    let Some(row) = app.db.get(t, vm) else {
        return Ok(false);
    };
    if crate::vm::has_current_operations_in(app, &row) {
        return Ok(false);
    }
    let rec = VmRecord::from_row(&row).map_err(xapi_idl::ApiError::from)?;
    if rec.is_control_domain || rec.is_a_template {
        return Ok(false);
    }
    let seen = observe(app, &rec)?;
    let live = matches!(
        rec.power_state,
        VmPowerState::Running | VmPowerState::Paused
    );
    match (live, seen) {
        (_, Seen::Transient) => Ok(false),
        (true, Seen::Live(d)) => {
            let state = if d.state == DomainState::Running {
                VmPowerState::Running
            } else {
                VmPowerState::Paused
            };
            if state == rec.power_state && i64::from(d.domid) == rec.domid {
                return Ok(false);
            }
            as_operation(app, vm, &row, Op::PowerStateReset, |app| {
                power::record_live(app, vm, false, None)
            })
        }
        (false, Seen::Live(_)) => {
            tracing::warn!(
                vm,
                "found a domain for a VM recorded as not running; adopting it"
            );
            as_operation(app, vm, &row, Op::PowerStateReset, |app| {
                power::record_live(app, vm, false, None)
            })
        }
        (_, Seen::Crashed) => {
            if rec.power_state == VmPowerState::Paused
                && rec.actions_after_crash == OnCrashBehaviour::Preserve
            {
                return Ok(false);
            }
            on_crash(app, vm, &row, &rec)
        }
        (true, Seen::Gone) => {
            let uuid = uuid_of(&rec)?;
            let reason = app.vm_runtime.shutdown_reasons.lock().remove(&uuid);
            on_guest_exit(app, vm, &row, &rec, reason)
        }
        (false, Seen::Gone) => Ok(false),
    }
}

/// Runs a repair as VM operation `op` under an internal context; `Ok(false)` if the VM row
/// is no longer `seen` (an operation changed it after the comparison: it asks for another
/// comparison when it ends) or another operation holds the VM. Claiming only an unchanged
/// row keeps a repair decided on stale facts from holding the VM while a client operates
/// on it.
fn as_operation(
    app: &Arc<App>,
    vm: &str,
    seen: &Row,
    op: Op,
    f: impl FnOnce(&App) -> ApiResult<()>,
) -> ApiResult<bool> {
    let Some(claim) = Claim::take(app, vm, seen, op)? else {
        return Ok(false);
    };
    let outcome = f(app);
    drop(claim);
    allowed_ops::update_vm(app, vm);
    outcome.map(|()| true)
}

/// A repair's entry in the VM's `current_operations`, removed on drop (as
/// `tasks::with_operation` does for API calls).
struct Claim<'a> {
    app: &'a App,
    vm: &'a str,
    op_ref: String,
    /// `allowed_operations` before the claim emptied it, put back on drop.
    allowed: (usize, Value),
}

impl<'a> Claim<'a> {
    /// Records `op` if the VM row is still `seen` (so no operation is in progress either).
    fn take(app: &'a App, vm: &'a str, seen: &Row, op: Op) -> ApiResult<Option<Claim<'a>>> {
        let t = app.table_of::<classes::Vm>();
        let (Some(current), Some(allowed)) = (
            crate::vm::vm_column(app, "current_operations"),
            crate::vm::vm_column(app, "allowed_operations"),
        ) else {
            return Err(xapi_idl::ApiError::internal("VM has no operation columns"));
        };
        let op_ref = format!("OpaqueRef:{}", uuid::Uuid::new_v4());
        let claimed = app.write(|txn| match txn.view().get(t, vm) {
            Some(now) if Arc::ptr_eq(&now, seen) || now == *seen => {
                let name = xapi_idl::WireEnum::as_str(op).to_owned();
                txn.map_add(t, vm, current, &op_ref, Value::String(name))?;
                txn.set_field(t, vm, allowed, Value::Array(Vec::new()))?;
                Ok(now.get(allowed).cloned())
            }
            _ => Ok(None),
        })?;
        Ok(claimed.map(|saved| Claim {
            app,
            vm,
            op_ref,
            allowed: (allowed, saved),
        }))
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let t = self.app.table_of::<classes::Vm>();
        let Some(current) = crate::vm::vm_column(self.app, "current_operations") else {
            return;
        };
        let result = self.app.write(|txn| {
            if txn.view().generations(t, self.vm).is_some() {
                txn.map_remove(t, self.vm, current, &self.op_ref)?;
                let (column, saved) = &self.allowed;
                txn.set_field(t, self.vm, *column, saved.clone())?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(vm = self.vm, error = %e, "could not clear current_operations");
        }
    }
}

/// `actions_after_crash` for a crashed domain.
fn on_crash(app: &Arc<App>, vm: &str, row: &Row, rec: &VmRecord) -> ApiResult<bool> {
    tracing::info!(vm, action = ?rec.actions_after_crash, "VM crashed");
    match rec.actions_after_crash {
        OnCrashBehaviour::Preserve => as_operation(app, vm, row, Op::PowerStateReset, |app| {
            update::<VmRecord>(app, vm, |r| r.power_state = VmPowerState::Paused)?;
            if let Ok(rec) = read_vm(app, vm) {
                let _ = update::<VmMetricsRecord>(app, rec.metrics.as_str(), |m| {
                    m.state = vec!["crashed".to_owned()];
                });
            }
            Ok(())
        }),
        OnCrashBehaviour::Destroy | OnCrashBehaviour::CoredumpAndDestroy => {
            as_operation(app, vm, row, Op::HardShutdown, |app| {
                power::destroy_domain(app, vm, rec)?;
                power::mark_halted(app, vm)
            })
        }
        OnCrashBehaviour::Restart
        | OnCrashBehaviour::CoredumpAndRestart
        | OnCrashBehaviour::RenameRestart => as_operation(app, vm, row, Op::HardReboot, |app| {
            power::destroy_domain(app, vm, rec)?;
            power::restart(app, vm)
        }),
    }
}

/// `actions_after_shutdown` / `actions_after_reboot` for a guest that left by itself.
fn on_guest_exit(
    app: &Arc<App>,
    vm: &str,
    row: &Row,
    rec: &VmRecord,
    reason: Option<ShutdownReason>,
) -> ApiResult<bool> {
    let action = match reason {
        Some(ShutdownReason::Reboot) => rec.actions_after_reboot,
        Some(ShutdownReason::Poweroff | ShutdownReason::Halt) => rec.actions_after_shutdown,
        // A suspend nobody asked for, or a domain that vanished while the daemon was down.
        Some(ShutdownReason::Suspend) | None => OnNormalExit::Destroy,
    };
    tracing::info!(vm, ?reason, ?action, "guest left by itself");
    match action {
        OnNormalExit::Restart => {
            as_operation(app, vm, row, Op::HardReboot, |app| power::restart(app, vm))
        }
        OnNormalExit::Destroy => as_operation(app, vm, row, Op::PowerStateReset, |app| {
            power::mark_halted(app, vm)
        }),
    }
}

/// At start: forget operations of the previous process, destroy domains no VM owns, repair
/// every VM, and refresh allowed operations and host memory.
pub fn reconcile_all(app: &Arc<App>) {
    let t = app.table_of::<classes::Vm>();
    let vms: Vec<(String, VmRecord)> = app
        .db
        .rows(t)
        .into_iter()
        .filter_map(|(r, row)| VmRecord::from_row(&row).ok().map(|rec| (r, rec)))
        .collect();
    for (vm, rec) in &vms {
        if !rec.current_operations.is_empty() {
            let _ = update::<VmRecord>(app, vm, |r| r.current_operations.clear());
        }
        if let Err(e) = metrics::ensure_metrics(app, vm, rec) {
            tracing::warn!(vm, error = %e, "cannot give the VM a metrics object");
        }
    }
    if let Ok(domains) = app.hypervisor.list() {
        for d in domains.iter().filter(|d| d.domid != 0) {
            if crate::vm::vm_by_uuid(app, &d.uuid).is_none() {
                tracing::warn!(uuid = %d.uuid, domid = d.domid, "destroying a domain no VM owns");
                let _ = app.hypervisor.shutdown(
                    &d.uuid,
                    xenops::ShutdownKind::Hard,
                    crate::vm::guest_timeout(),
                );
            }
        }
    }
    for (vm, _) in &vms {
        recheck(app, vm);
        allowed_ops::update_vm(app, vm);
    }
    if let Err(e) = metrics::refresh_host(app) {
        tracing::warn!(error = %e, "cannot refresh host memory");
    }
    tracing::info!(vms = vms.len(), "VMs reconciled with the hypervisor");
}
