//! `VM.*` explicit messages. For now only `VM.clone` (metadata copy, reported through the
//! task in steps, cancellable); the lifecycle work extends this file.
use std::time::Duration;

use xapi_idl::records::{VmMetricsRecord, VmRecord};
use xapi_idl::traits::VmActions;
use xapi_idl::{classes, enums, errors, ApiError, ApiResult, Record, Ref};

use crate::app::App;
use crate::dispatch::Ctx;
use crate::tasks;

/// Simulated time per step of long VM operations (`XAPI_SIM_STEP_DELAY_MS`, default 0), so
/// progress and cancellation can be watched against the simulator.
fn step_delay() -> Duration {
    std::env::var("XAPI_SIM_STEP_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::ZERO)
}

/// Steps `VM.clone` reports progress in.
const CLONE_STEPS: u32 = 4;

/// The record of a clone of `src` named `name`: a new identity, no devices, halted.
fn cloned_record(src: &VmRecord, name: &str, metrics: Ref<classes::VmMetrics>) -> VmRecord {
    let defaults = VmRecord::default();
    let mut other_config = src.other_config.clone();
    // Compatibility: a clone of a default template is an ordinary template.
    other_config.remove("default_template");
    VmRecord {
        uuid: uuid::Uuid::new_v4().to_string(),
        name_label: name.to_owned(),
        power_state: enums::VmPowerState::Halted,
        is_default_template: false,
        current_operations: defaults.current_operations.clone(),
        allowed_operations: src.allowed_operations.clone(),
        resident_on: Ref::null(),
        scheduled_to_be_resident_on: Ref::null(),
        domid: -1,
        metrics,
        guest_metrics: Ref::null(),
        is_a_snapshot: false,
        snapshot_of: Ref::null(),
        snapshot_time: defaults.snapshot_time,
        transportable_snapshot_id: String::new(),
        snapshot_info: defaults.snapshot_info.clone(),
        snapshot_metadata: String::new(),
        other_config,
        // Relation sets are the store's to fill.
        consoles: Vec::new(),
        vifs: Vec::new(),
        vbds: Vec::new(),
        vusbs: Vec::new(),
        crash_dumps: Vec::new(),
        vtpms: Vec::new(),
        snapshots: Vec::new(),
        children: Vec::new(),
        vgpus: Vec::new(),
        attached_pcis: Vec::new(),
        generation_id: String::new(),
        ..src.clone()
    }
}

fn clone_vm(ctx: &Ctx, vm: &Ref<classes::Vm>, new_name: &str) -> ApiResult<Ref<classes::Vm>> {
    let app: &App = &ctx.app;
    let t = app.table_of::<classes::Vm>();
    let read = || -> ApiResult<VmRecord> {
        let row = app
            .db
            .get(t, vm.as_str())
            .ok_or_else(|| errors::handle_invalid("VM", vm.as_str()))?;
        VmRecord::from_row(&row).map_err(ApiError::from)
    };
    let src = read()?;
    if src.is_control_domain {
        return Err(errors::operation_not_allowed(
            "the control domain cannot be cloned",
        ));
    }
    if src.power_state != enums::VmPowerState::Halted {
        return Err(errors::vm_bad_power_state(
            vm.as_str(),
            "halted",
            xapi_idl::WireEnum::as_str(src.power_state).to_ascii_lowercase(),
        ));
    }
    tasks::with_operation(ctx, "VM", vm.as_str(), "clone", || {
        let delay = step_delay();
        for step in 0..CLONE_STEPS {
            ctx.sleep_cancellable(delay)?;
            ctx.set_progress(f64::from(step + 1) / f64::from(CLONE_STEPS + 1))?;
        }
        ctx.cancel_point()?;
        let metrics: Ref<classes::VmMetrics> = Ref::fresh();
        let metrics_rec = VmMetricsRecord {
            uuid: uuid::Uuid::new_v4().to_string(),
            ..VmMetricsRecord::default()
        };
        let new_vm: Ref<classes::Vm> = Ref::fresh();
        // `allowed_operations` is emptied while the operation runs: take it from before.
        let rec = cloned_record(
            &VmRecord {
                allowed_operations: src.allowed_operations.clone(),
                ..read()?
            },
            new_name,
            metrics.clone(),
        );
        let mt = app.table_of::<classes::VmMetrics>();
        app.write(|txn| {
            txn.insert(mt, metrics.as_str(), metrics_rec.to_row())?;
            txn.insert(
                t,
                new_vm.as_str(),
                tasks::clear_derived(app, t, rec.to_row()),
            )
        })?;
        tracing::info!(vm = %vm, clone = %new_vm, "VM cloned");
        Ok(new_vm)
    })
}

xapi_idl::actions! {
    impl VmActions for App {
        fn clone(&self, ctx: &Ctx, vm: Ref<classes::Vm>, new_name: String) -> ApiResult<Ref<classes::Vm>> {
            clone_vm(ctx, &vm, &new_name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_gets_a_new_identity_and_keeps_template_status() {
        let src = VmRecord {
            uuid: "u".into(),
            name_label: "src".into(),
            is_a_template: true,
            is_default_template: true,
            other_config: [("default_template".to_owned(), "true".to_owned())]
                .into_iter()
                .collect(),
            vbds: vec![Ref::fresh()],
            domid: 3,
            ..VmRecord::default()
        };
        let m: Ref<classes::VmMetrics> = Ref::fresh();
        let c = cloned_record(&src, "copy", m.clone());
        assert_ne!(c.uuid, "u");
        assert_eq!(c.name_label, "copy");
        assert!(c.is_a_template);
        assert!(!c.is_default_template);
        assert!(c.other_config.is_empty());
        assert!(c.vbds.is_empty());
        assert_eq!(c.domid, -1);
        assert_eq!(c.metrics, m);
    }
}
