//! `VM.*` explicit messages. For now only `VM.clone` (metadata copy, reported through the
//! task in steps, cancellable); the lifecycle work extends this file.
use std::collections::BTreeMap;
use std::time::Duration;

use xapi_idl::enums::VmOperations;
use xapi_idl::records::{VmMetricsRecord, VmRecord};
use xapi_idl::traits::VmActions;
use xapi_idl::{classes, enums, errors, ApiError, ApiResult, Record, Ref};

use crate::app::App;
use crate::dispatch::Ctx;
use crate::tasks;
use crate::vm::{allowed_ops, copies, devices, memory, power};

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
            let new_vm = clone_vm(ctx, &vm, &new_name)?;
            copies::after_clone(self, &vm, &new_vm)?;
            Ok(new_vm)
        }

        // The VM lifecycle: thin calls into `crate::vm` (see its module docs).
        fn start(&self, ctx: &Ctx, vm: Ref<classes::Vm>, start_paused: bool, force: bool) -> ApiResult<()> {
            let _ = force;
            power::start(ctx, vm.as_str(), start_paused, VmOperations::Start)
        }

        fn start_on(&self, ctx: &Ctx, vm: Ref<classes::Vm>, host: Ref<classes::Host>, start_paused: bool, force: bool) -> ApiResult<()> {
            let _ = force;
            power::assert_this_host(self, &host)?;
            power::start(ctx, vm.as_str(), start_paused, VmOperations::StartOn)
        }

        fn clean_shutdown(&self, ctx: &Ctx, vm: Ref<classes::Vm>) -> ApiResult<()> {
            power::clean_shutdown(ctx, vm.as_str())
        }

        fn hard_shutdown(&self, ctx: &Ctx, vm: Ref<classes::Vm>) -> ApiResult<()> {
            power::hard_shutdown(ctx, vm.as_str())
        }

        fn shutdown(&self, ctx: &Ctx, vm: Ref<classes::Vm>) -> ApiResult<()> {
            power::shutdown(ctx, vm.as_str())
        }

        fn clean_reboot(&self, ctx: &Ctx, vm: Ref<classes::Vm>) -> ApiResult<()> {
            power::clean_reboot(ctx, vm.as_str())
        }

        fn hard_reboot(&self, ctx: &Ctx, vm: Ref<classes::Vm>) -> ApiResult<()> {
            power::hard_reboot(ctx, vm.as_str())
        }

        fn pause(&self, ctx: &Ctx, vm: Ref<classes::Vm>) -> ApiResult<()> {
            power::pause(ctx, vm.as_str())
        }

        fn unpause(&self, ctx: &Ctx, vm: Ref<classes::Vm>) -> ApiResult<()> {
            power::unpause(ctx, vm.as_str())
        }

        fn suspend(&self, ctx: &Ctx, vm: Ref<classes::Vm>) -> ApiResult<()> {
            power::suspend(ctx, vm.as_str())
        }

        fn resume(&self, ctx: &Ctx, vm: Ref<classes::Vm>, start_paused: bool, force: bool) -> ApiResult<()> {
            let _ = force;
            power::resume(ctx, vm.as_str(), start_paused, VmOperations::Resume)
        }

        fn resume_on(&self, ctx: &Ctx, vm: Ref<classes::Vm>, host: Ref<classes::Host>, start_paused: bool, force: bool) -> ApiResult<()> {
            let _ = force;
            power::assert_this_host(self, &host)?;
            power::resume(ctx, vm.as_str(), start_paused, VmOperations::ResumeOn)
        }

        fn pool_migrate(&self, ctx: &Ctx, vm: Ref<classes::Vm>, host: Ref<classes::Host>, options: BTreeMap<String, String>) -> ApiResult<()> {
            let _ = options;
            power::pool_migrate(ctx, vm.as_str(), &host)
        }

        fn snapshot(&self, ctx: &Ctx, vm: Ref<classes::Vm>, new_name: String, ignore_vdis: Vec<Ref<classes::Vdi>>) -> ApiResult<Ref<classes::Vm>> {
            let _ = ignore_vdis;
            copies::snapshot(ctx, vm.as_str(), &new_name)
        }

        fn checkpoint(&self, ctx: &Ctx, vm: Ref<classes::Vm>, new_name: String) -> ApiResult<Ref<classes::Vm>> {
            copies::checkpoint(ctx, vm.as_str(), &new_name)
        }

        fn revert(&self, ctx: &Ctx, snapshot: Ref<classes::Vm>) -> ApiResult<()> {
            copies::revert(ctx, snapshot.as_str())
        }

        fn copy(&self, ctx: &Ctx, vm: Ref<classes::Vm>, new_name: String, sr: Ref<classes::Sr>) -> ApiResult<Ref<classes::Vm>> {
            copies::copy(ctx, vm.as_str(), &new_name, &sr)
        }

        fn provision(&self, ctx: &Ctx, vm: Ref<classes::Vm>) -> ApiResult<()> {
            copies::provision(ctx, vm.as_str())
        }

        fn get_boot_record(&self, ctx: &Ctx, self_: Ref<classes::Vm>) -> ApiResult<VmRecord> {
            let _ = ctx;
            copies::boot_record(self, self_.as_str())
        }

        fn query_services(&self, ctx: &Ctx, self_: Ref<classes::Vm>) -> ApiResult<BTreeMap<String, String>> {
            let _ = ctx;
            copies::query_services(self, self_.as_str())
        }

        fn assert_can_boot_here(&self, ctx: &Ctx, self_: Ref<classes::Vm>, host: Ref<classes::Host>) -> ApiResult<()> {
            let _ = ctx;
            copies::assert_can_boot_here(self, self_.as_str(), &host)
        }

        fn assert_operation_valid(&self, ctx: &Ctx, self_: Ref<classes::Vm>, op: VmOperations) -> ApiResult<()> {
            let _ = ctx;
            power::assert_operation_valid(self, self_.as_str(), op).map(|_| ())
        }

        fn update_allowed_operations(&self, ctx: &Ctx, self_: Ref<classes::Vm>) -> ApiResult<()> {
            let _ = ctx;
            crate::vm::read_vm(self, self_.as_str())?;
            allowed_ops::update_vm(self, self_.as_str());
            Ok(())
        }

        fn get_allowed_VBD_devices(&self, ctx: &Ctx, vm: Ref<classes::Vm>) -> ApiResult<Vec<String>> {
            let _ = ctx;
            devices::allowed_vbd_devices(self, vm.as_str())
        }

        fn get_allowed_VIF_devices(&self, ctx: &Ctx, vm: Ref<classes::Vm>) -> ApiResult<Vec<String>> {
            let _ = ctx;
            devices::allowed_vif_devices(self, vm.as_str())
        }

        fn set_HVM_boot_policy(&self, ctx: &Ctx, self_: Ref<classes::Vm>, value: String) -> ApiResult<()> {
            let _ = ctx;
            copies::set_hvm_boot_policy(self, self_.as_str(), &value)
        }

        fn set_domain_type(&self, ctx: &Ctx, self_: Ref<classes::Vm>, value: enums::DomainType) -> ApiResult<()> {
            let _ = ctx;
            copies::set_domain_type(self, self_.as_str(), value)
        }

        fn set_memory_limits(&self, ctx: &Ctx, self_: Ref<classes::Vm>, static_min: i64, static_max: i64, dynamic_min: i64, dynamic_max: i64) -> ApiResult<()> {
            memory::set_memory_limits(ctx, self_.as_str(), memory::Limits { static_min, static_max, dynamic_min, dynamic_max })
        }

        fn set_memory_static_range(&self, ctx: &Ctx, self_: Ref<classes::Vm>, min: i64, max: i64) -> ApiResult<()> {
            memory::set_memory_static_range(ctx, self_.as_str(), min, max)
        }

        fn set_memory_dynamic_range(&self, ctx: &Ctx, self_: Ref<classes::Vm>, min: i64, max: i64) -> ApiResult<()> {
            memory::set_memory_dynamic_range(ctx, self_.as_str(), min, max)
        }

        fn set_memory_static_min(&self, ctx: &Ctx, self_: Ref<classes::Vm>, value: i64) -> ApiResult<()> {
            memory::set_memory_bound(ctx, self_.as_str(), |l| l.static_min = value)
        }

        fn set_memory_static_max(&self, ctx: &Ctx, self_: Ref<classes::Vm>, value: i64) -> ApiResult<()> {
            memory::set_memory_bound(ctx, self_.as_str(), |l| l.static_max = value)
        }

        fn set_memory_dynamic_min(&self, ctx: &Ctx, self_: Ref<classes::Vm>, value: i64) -> ApiResult<()> {
            memory::set_memory_bound(ctx, self_.as_str(), |l| l.dynamic_min = value)
        }

        fn set_memory_dynamic_max(&self, ctx: &Ctx, self_: Ref<classes::Vm>, value: i64) -> ApiResult<()> {
            memory::set_memory_bound(ctx, self_.as_str(), |l| l.dynamic_max = value)
        }

        fn set_memory(&self, ctx: &Ctx, self_: Ref<classes::Vm>, value: i64) -> ApiResult<()> {
            memory::set_memory(ctx, self_.as_str(), value)
        }

        fn set_memory_target_live(&self, ctx: &Ctx, self_: Ref<classes::Vm>, target: i64) -> ApiResult<()> {
            memory::set_memory_target_live(ctx, self_.as_str(), target)
        }

        fn set_VCPUs_number_live(&self, ctx: &Ctx, self_: Ref<classes::Vm>, nvcpu: i64) -> ApiResult<()> {
            memory::set_vcpus_number_live(ctx, self_.as_str(), nvcpu)
        }

        fn set_VCPUs_max(&self, ctx: &Ctx, self_: Ref<classes::Vm>, value: i64) -> ApiResult<()> {
            memory::set_vcpus_max(ctx, self_.as_str(), value)
        }

        fn set_actions_after_crash(&self, ctx: &Ctx, self_: Ref<classes::Vm>, value: enums::OnCrashBehaviour) -> ApiResult<()> {
            let _ = ctx;
            crate::vm::update::<VmRecord>(self, self_.as_str(), |r| r.actions_after_crash = value).map(|_| ())
        }

        fn set_VCPUs_at_startup(&self, ctx: &Ctx, self_: Ref<classes::Vm>, value: i64) -> ApiResult<()> {
            memory::set_vcpus_at_startup(ctx, self_.as_str(), value)
        }

        fn call_plugin(&self, ctx: &Ctx, vm: Ref<classes::Vm>, plugin: String, fn_: String, args: BTreeMap<String, String>) -> ApiResult<String> {
            crate::plugins::call_vm(ctx, vm.as_str(), &plugin, &fn_, &args)
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
