//! The VM power-state machine and the checks every VM operation passes before it runs, as
//! upstream xapi orders them: blocked operations, power state, operations in progress,
//! template and snapshot rules, the control domain, guest features. Pure: reads records, never
//! the database or the hypervisor. `allowed_ops` turns these checks into
//! `allowed_operations`.
//!
//! ```text
//!                        start(paused=false) / resume / resume_on
//!        +---------+  ------------------------------------------------>  +---------+
//!        | Halted  |                                                     | Running |<--+
//!        +---------+  <------------------------------------------------  +---------+   |
//!          ^  ^  |      clean_shutdown / hard_shutdown / shutdown           |   |  ^    | clean_reboot
//!          |  |  |      (or the guest halts; actions_after_shutdown)        |   |  |    | hard_reboot
//!          |  |  | start(paused=true)                               pause  |   |  |    | pool_migrate
//!          |  |  v                                                         v   |  +----+ (new domid)
//!          |  | +---------+  ------------------- unpause --------------------+   |
//!          |  | | Paused  |  <-----------------------------------------------    | suspend
//!          |  | +---------+                                                      v
//!          |  |    | hard_shutdown / shutdown                             +-----------+
//!          |  +----+                                                      | Suspended |
//!          |                                                              +-----------+
//!          +---------------- hard_shutdown / shutdown (image discarded) ------+
//!
//!  A crashed guest follows actions_after_crash: destroy -> Halted, restart -> Running with a
//!  new domain, preserve -> Paused (the crashed domain is kept).
//!  destroy: only Halted or Suspended (never the control domain, never a default template).
//! ```

use xapi_idl::enums::{VmOperations, VmPowerState};
use xapi_idl::records::{VmGuestMetricsRecord, VmMetricsRecord, VmRecord};
use xapi_idl::{errors, ApiError, WireEnum};

use VmOperations as Op;
use VmPowerState as Ps;

/// The operations `allowed_operations` is computed over (upstream's list, in its order).
pub const LISTED_OPERATIONS: &[VmOperations] = &[
    Op::Snapshot,
    Op::Copy,
    Op::Clone,
    Op::Revert,
    Op::Checkpoint,
    Op::SnapshotWithQuiesce,
    Op::Start,
    Op::StartOn,
    Op::Pause,
    Op::Unpause,
    Op::CleanShutdown,
    Op::CleanReboot,
    Op::HardShutdown,
    Op::HardReboot,
    Op::Suspend,
    Op::Resume,
    Op::ResumeOn,
    Op::Export,
    Op::Destroy,
    Op::Provision,
    Op::ChangingVcpusLive,
    Op::PoolMigrate,
    Op::MigrateSend,
    Op::MakeIntoTemplate,
    Op::ChangingStaticRange,
    Op::ChangingShadowMemory,
    Op::ChangingDynamicRange,
];

/// A power state as upstream writes it in error parameters: lower case.
pub fn power_state_name(state: VmPowerState) -> String {
    state.as_str().to_ascii_lowercase()
}

/// The power states in which `op` may run.
pub fn allowed_power_states(rec: &VmRecord, op: VmOperations) -> Vec<VmPowerState> {
    const ALL: [VmPowerState; 4] = [Ps::Halted, Ps::Paused, Ps::Suspended, Ps::Running];
    match op {
        Op::Import => Vec::new(),
        Op::ChangingVcpus | Op::ChangingStaticRange | Op::ChangingMemoryLimits => {
            if rec.is_control_domain {
                vec![Ps::Halted, Ps::Running]
            } else {
                vec![Ps::Halted]
            }
        }
        Op::ChangingShadowMemory
        | Op::MakeIntoTemplate
        | Op::Provision
        | Op::Start
        | Op::StartOn => vec![Ps::Halted],
        Op::Unpause => vec![Ps::Paused],
        Op::Csvm | Op::Resume | Op::ResumeOn => vec![Ps::Suspended],
        Op::AwaitingMemoryLive
        | Op::CallPlugin
        | Op::CleanReboot
        | Op::CleanShutdown
        | Op::ChangingMemoryLive
        | Op::ChangingShadowMemoryLive
        | Op::ChangingVcpusLive
        | Op::DataSourceOp
        | Op::Pause
        | Op::PoolMigrate
        | Op::SendSysrq
        | Op::SendTrigger
        | Op::SnapshotWithQuiesce
        | Op::Suspend => vec![Ps::Running],
        Op::ChangingDynamicRange => vec![Ps::Halted, Ps::Running],
        Op::Clone | Op::Copy => {
            if rec.is_a_snapshot {
                vec![Ps::Halted, Ps::Suspended]
            } else {
                vec![Ps::Halted]
            }
        }
        Op::CreateTemplate | Op::Destroy | Op::Export => vec![Ps::Halted, Ps::Suspended],
        Op::HardReboot => vec![Ps::Paused, Ps::Running],
        Op::Checkpoint | Op::GetBootRecord | Op::Shutdown | Op::HardShutdown => {
            vec![Ps::Paused, Ps::Suspended, Ps::Running]
        }
        Op::MigrateSend => vec![Ps::Halted, Ps::Suspended, Ps::Running],
        _ => ALL.to_vec(),
    }
}

/// Whether `op` may start while `current` operations run on the same VM.
pub fn allowed_concurrently(op: VmOperations, current: &[VmOperations]) -> bool {
    let group = |ops: &[VmOperations]| ops.contains(&op) && current.iter().all(|c| ops.contains(c));
    let long_copies = [Op::Clone, Op::Copy, Op::Export];
    let snapshots = [Op::Snapshot, Op::Checkpoint];
    let boot_record = [Op::GetBootRecord];
    let after = |running: VmOperations, next: VmOperations| current == [running] && op == next;
    let state_machine = match op {
        Op::HardShutdown => !current.contains(&Op::HardShutdown),
        Op::HardReboot => !current
            .iter()
            .any(|c| matches!(c, Op::HardShutdown | Op::HardReboot)),
        _ => {
            after(Op::SnapshotWithQuiesce, Op::Snapshot)
                || [
                    Op::MetadataExport,
                    Op::CleanShutdown,
                    Op::CleanReboot,
                    Op::Start,
                    Op::StartOn,
                ]
                .iter()
                .any(|&next| after(Op::MigrateSend, next))
        }
    };
    group(&long_copies) || group(&snapshots) || group(&boot_record) || state_machine
}

fn is_true(map: &std::collections::BTreeMap<String, String>, key: &str) -> bool {
    map.get(key)
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Whether the guest has PV drivers (its agent reported a drivers version).
pub fn has_pv_drivers(gm: Option<&VmGuestMetricsRecord>) -> bool {
    gm.is_some_and(|gm| gm.pv_drivers_detected || !gm.pv_drivers_version.is_empty())
}

fn has_feature(gm: Option<&VmGuestMetricsRecord>, feature: &str) -> bool {
    gm.is_some_and(|gm| gm.other.get(feature).is_some_and(|v| v == "1"))
}

/// Whether the VM is running as an HVM guest (from its metrics when it has booted).
pub fn booted_hvm(rec: &VmRecord, metrics: Option<&VmMetricsRecord>) -> bool {
    match metrics {
        Some(m) if rec.power_state != Ps::Halted => m.hvm,
        _ => rec.domain_type == xapi_idl::enums::DomainType::Hvm,
    }
}

/// The template rule: templates allow copies, provisioning and settings changes, and
/// destruction unless they are default templates.
fn template_allows(rec: &VmRecord, op: VmOperations) -> bool {
    let default_template =
        rec.is_default_template || is_true(&rec.other_config, "default_template");
    matches!(
        op,
        Op::ChangingDynamicRange
            | Op::ChangingStaticRange
            | Op::ChangingMemoryLimits
            | Op::ChangingShadowMemory
            | Op::ChangingVcpus
            | Op::Clone
            | Op::Copy
            | Op::Export
            | Op::MetadataExport
            | Op::Provision
    ) || (matches!(op, Op::Destroy | Op::MigrateSend) && !default_template)
}

fn snapshot_allows(op: VmOperations) -> bool {
    matches!(
        op,
        Op::Revert
            | Op::Clone
            | Op::Copy
            | Op::Export
            | Op::Destroy
            | Op::HardShutdown
            | Op::MetadataExport
    )
}

/// Operations a control domain accepts.
fn control_domain_allows(op: VmOperations) -> bool {
    matches!(
        op,
        Op::DataSourceOp
            | Op::ChangingMemoryLive
            | Op::AwaitingMemoryLive
            | Op::MetadataExport
            | Op::ChangingDynamicRange
            | Op::ChangingMemoryLimits
            | Op::ChangingStaticRange
            | Op::Start
            | Op::StartOn
            | Op::ChangingVcpus
            | Op::Destroy
    )
}

/// Everything the checks read about one VM.
pub struct Facts<'a> {
    /// The VM's ref.
    pub vm: &'a str,
    /// Its record.
    pub rec: &'a VmRecord,
    /// Its `VM_metrics`, if valid.
    pub metrics: Option<&'a VmMetricsRecord>,
    /// Its `VM_guest_metrics`, if valid.
    pub guest_metrics: Option<&'a VmGuestMetricsRecord>,
}

/// The first reason `op` may not run now, or `None`. `strict` (used for `allowed_operations`)
/// also demands the guest features that the cooperative operations need.
pub fn check(facts: &Facts<'_>, op: VmOperations, strict: bool) -> Option<ApiError> {
    let Facts {
        vm,
        rec,
        metrics,
        guest_metrics: gm,
    } = *facts;
    let op_name = op.as_str();
    if let Some(reason) = rec.blocked_operations.get(&op) {
        return Some(errors::operation_blocked(vm, reason));
    }
    let states = allowed_power_states(rec, op);
    if !states.contains(&rec.power_state) {
        let expected: Vec<String> = states.into_iter().map(power_state_name).collect();
        return Some(errors::vm_bad_power_state(
            vm,
            expected.join(", "),
            power_state_name(rec.power_state),
        ));
    }
    let current: Vec<VmOperations> = rec.current_operations.values().copied().collect();
    if !current.is_empty() && !allowed_concurrently(op, &current) {
        let (task, other) = rec
            .current_operations
            .iter()
            .next()
            .expect("current operations are not empty here");
        return Some(errors::other_operation_in_progress(
            "VM",
            vm,
            other.as_str(),
            task,
        ));
    }
    if rec.is_a_template && !rec.is_a_snapshot && !template_allows(rec, op) {
        // Compatibility: documented with [vm], raised by xapi with [vm, operation].
        return Some(ApiError::new(
            errors::VM_IS_TEMPLATE,
            vec![vm.to_owned(), op_name.to_owned()],
        ));
    }
    if rec.is_a_snapshot && !snapshot_allows(op) {
        return Some(errors::vm_is_snapshot(vec![
            vm.to_owned(),
            op_name.to_owned(),
        ]));
    }
    if op == Op::Provision && !rec.is_a_template {
        return Some(ApiError::new("ONLY_PROVISION_TEMPLATE", Vec::new()));
    }
    if op == Op::Revert && !rec.is_a_snapshot {
        return Some(ApiError::new("ONLY_REVERT_SNAPSHOT", Vec::new()));
    }
    if rec.is_control_domain {
        if matches!(op, Op::ChangingVcpus | Op::Destroy) && rec.domid == 0 {
            return Some(errors::operation_not_allowed(
                "This operation is not allowed on dom0",
            ));
        }
        if !control_domain_allows(op) {
            return Some(errors::operation_not_allowed(
                "This operation is not allowed on a control domain",
            ));
        }
    }
    if let Some(e) = feature_error(facts, op, strict) {
        return Some(e);
    }
    let _ = metrics;
    if op == Op::SnapshotWithQuiesce
        && !gm.is_some_and(|gm| {
            gm.other.contains_key("feature-quiesce") || gm.other.contains_key("feature-snapshot")
        })
    {
        return Some(ApiError::new(
            "VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED",
            vec![vm.to_owned()],
        ));
    }
    if !rec.attached_pcis.is_empty()
        && matches!(
            op,
            Op::Suspend | Op::Checkpoint | Op::PoolMigrate | Op::MigrateSend
        )
    {
        return Some(ApiError::new("VM_HAS_PCI_ATTACHED", vec![vm.to_owned()]));
    }
    if op == Op::QueryServices && !is_true(&rec.other_config, "is_system_domain") {
        return Some(errors::not_system_domain(vm));
    }
    None
}

/// Guest features an HVM guest without PV drivers must advertise for cooperative operations.
fn feature_error(facts: &Facts<'_>, op: VmOperations, strict: bool) -> Option<ApiError> {
    let Facts {
        vm,
        rec,
        metrics,
        guest_metrics: gm,
    } = *facts;
    if rec.power_state != Ps::Running || !booted_hvm(rec, metrics) || has_pv_drivers(gm) {
        return None;
    }
    let lacks = |feature: &str| !has_feature(gm, feature);
    let missing = match op {
        Op::CleanShutdown => strict && lacks("feature-shutdown") && lacks("feature-poweroff"),
        Op::CleanReboot => strict && lacks("feature-shutdown") && lacks("feature-reboot"),
        Op::ChangingVcpusLive => lacks("feature-vcpu-hotplug"),
        Op::Suspend | Op::Checkpoint | Op::PoolMigrate | Op::MigrateSend => {
            strict && lacks("feature-suspend")
        }
        _ => false,
    };
    missing.then(|| errors::vm_lacks_feature(vm))
}

/// The operations of `LISTED_OPERATIONS` that pass every check now.
pub fn allowed_operations(facts: &Facts<'_>) -> Vec<VmOperations> {
    LISTED_OPERATIONS
        .iter()
        .copied()
        .filter(|&op| check(facts, op, true).is_none())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(state: VmPowerState) -> VmRecord {
        VmRecord {
            power_state: state,
            ..VmRecord::default()
        }
    }

    fn allowed(rec: &VmRecord) -> Vec<VmOperations> {
        allowed_operations(&Facts {
            vm: "OpaqueRef:v",
            rec,
            metrics: None,
            guest_metrics: None,
        })
    }

    fn check_op(rec: &VmRecord, op: VmOperations) -> Option<ApiError> {
        check(
            &Facts {
                vm: "OpaqueRef:v",
                rec,
                metrics: None,
                guest_metrics: None,
            },
            op,
            false,
        )
    }

    #[test]
    fn a_halted_vm_can_start_but_not_shut_down() {
        let ops = allowed(&vm(Ps::Halted));
        assert!(ops.contains(&Op::Start));
        assert!(ops.contains(&Op::Destroy));
        assert!(!ops.contains(&Op::CleanShutdown));
        assert!(!ops.contains(&Op::Provision), "only templates provision");
    }

    #[test]
    fn bad_power_state_lists_expected_states_in_lower_case() {
        let e = check_op(&vm(Ps::Running), Op::Start).unwrap();
        assert_eq!(e.code, "VM_BAD_POWER_STATE");
        assert_eq!(e.params, vec!["OpaqueRef:v", "halted", "running"]);
        let e = check_op(&vm(Ps::Halted), Op::HardShutdown).unwrap();
        assert_eq!(e.params[1], "paused, suspended, running");
    }

    #[test]
    fn a_default_template_clones_but_neither_starts_nor_is_destroyed() {
        let rec = VmRecord {
            is_a_template: true,
            is_default_template: true,
            ..vm(Ps::Halted)
        };
        let ops = allowed(&rec);
        assert!(ops.contains(&Op::Clone) && ops.contains(&Op::Provision));
        assert!(!ops.contains(&Op::Destroy));
        let e = check_op(&rec, Op::Start).unwrap();
        assert_eq!(e.code, "VM_IS_TEMPLATE");
        assert_eq!(e.params, vec!["OpaqueRef:v", "start"]);
    }

    #[test]
    fn the_control_domain_refuses_lifecycle_operations() {
        let rec = VmRecord {
            is_control_domain: true,
            domid: 0,
            ..vm(Ps::Running)
        };
        assert!(allowed(&rec).contains(&Op::ChangingDynamicRange));
        assert!(!allowed(&rec).contains(&Op::CleanShutdown));
        let e = check_op(&rec, Op::HardShutdown).unwrap();
        assert_eq!(e.code, "OPERATION_NOT_ALLOWED");
    }

    #[test]
    fn an_operation_in_progress_blocks_others_but_not_hard_shutdown() {
        let mut rec = vm(Ps::Running);
        rec.current_operations
            .insert("OpaqueRef:t".into(), Op::CleanShutdown);
        let e = check_op(&rec, Op::Pause).unwrap();
        assert_eq!(e.code, "OTHER_OPERATION_IN_PROGRESS");
        assert_eq!(
            e.params,
            vec!["VM", "OpaqueRef:v", "clean_shutdown", "OpaqueRef:t"]
        );
        assert!(check_op(&rec, Op::HardShutdown).is_none());
    }

    #[test]
    fn hvm_guests_without_drivers_lack_clean_shutdown() {
        let rec = VmRecord {
            domain_type: xapi_idl::enums::DomainType::Hvm,
            ..vm(Ps::Running)
        };
        assert!(!allowed(&rec).contains(&Op::CleanShutdown));
        assert!(allowed(&rec).contains(&Op::HardShutdown));
        let gm = VmGuestMetricsRecord {
            pv_drivers_detected: true,
            ..Default::default()
        };
        let with_drivers = allowed_operations(&Facts {
            vm: "OpaqueRef:v",
            rec: &rec,
            metrics: None,
            guest_metrics: Some(&gm),
        });
        assert!(with_drivers.contains(&Op::CleanShutdown));
    }

    #[test]
    fn blocked_operations_win_over_everything() {
        let mut rec = vm(Ps::Halted);
        rec.blocked_operations.insert(Op::Start, "nope".into());
        let e = check_op(&rec, Op::Start).unwrap();
        assert_eq!(e.code, "OPERATION_BLOCKED");
        assert_eq!(e.params, vec!["OpaqueRef:v", "nope"]);
    }
}
