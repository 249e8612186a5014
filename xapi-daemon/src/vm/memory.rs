//! Memory and vCPU settings of VMs (`VM.set_memory*`, `VM.set_VCPUs*`) with upstream's
//! constraint `static_min <= dynamic_min <= dynamic_max <= static_max`, live balloon and vCPU
//! changes through the hypervisor, and the host's free memory (`host.compute_free_memory`).

use xapi_idl::enums::{VmOperations as Op, VmPowerState};
use xapi_idl::records::{VmMetricsRecord, VmRecord};
use xapi_idl::{errors, ApiResult};

use crate::app::App;
use crate::dispatch::Ctx;
use crate::errors::xenops_error;
use crate::vm::power::assert_operation_valid;
use crate::vm::{update, uuid_of, with_vm_operation};

/// Upstream's wording of the memory constraint.
pub const MEMORY_CONSTRAINT: &str =
    "Memory limits must satisfy: static_min <= dynamic_min <= dynamic_max <= static_max";

/// The four memory bounds of a VM, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `memory_static_min`.
    pub static_min: i64,
    /// `memory_static_max`.
    pub static_max: i64,
    /// `memory_dynamic_min`.
    pub dynamic_min: i64,
    /// `memory_dynamic_max`.
    pub dynamic_max: i64,
}

impl Limits {
    /// The bounds of a record.
    pub fn of(rec: &VmRecord) -> Self {
        Limits {
            static_min: rec.memory_static_min,
            static_max: rec.memory_static_max,
            dynamic_min: rec.memory_dynamic_min,
            dynamic_max: rec.memory_dynamic_max,
        }
    }

    /// `MEMORY_CONSTRAINT_VIOLATION` unless the bounds are ordered and positive.
    pub fn validate(&self) -> ApiResult<()> {
        let ordered = 0 < self.static_min
            && self.static_min <= self.dynamic_min
            && self.dynamic_min <= self.dynamic_max
            && self.dynamic_max <= self.static_max;
        if ordered {
            Ok(())
        } else {
            Err(errors::memory_constraint_violation(MEMORY_CONSTRAINT))
        }
    }

    fn apply(&self, rec: &mut VmRecord) {
        rec.memory_static_min = self.static_min;
        rec.memory_static_max = self.static_max;
        rec.memory_dynamic_min = self.dynamic_min;
        rec.memory_dynamic_max = self.dynamic_max;
        if rec.power_state == VmPowerState::Halted {
            rec.memory_target = self.dynamic_max;
        }
    }
}

/// Writes new limits of a halted VM after `op`'s checks (`changing_memory_limits` or
/// `changing_static_range`).
fn set_limits(ctx: &Ctx, vm: &str, op: Op, f: impl FnOnce(&mut Limits)) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, op)?;
    let mut limits = Limits::of(&rec);
    f(&mut limits);
    limits.validate()?;
    with_vm_operation(ctx, vm, op, || {
        update::<VmRecord>(app, vm, |r| limits.apply(r))?;
        Ok(())
    })
}

/// `VM.set_memory_limits`.
pub fn set_memory_limits(ctx: &Ctx, vm: &str, limits: Limits) -> ApiResult<()> {
    set_limits(ctx, vm, Op::ChangingMemoryLimits, |l| *l = limits)
}

/// `VM.set_memory_static_range`.
pub fn set_memory_static_range(ctx: &Ctx, vm: &str, min: i64, max: i64) -> ApiResult<()> {
    set_limits(ctx, vm, Op::ChangingStaticRange, |l| {
        l.static_min = min;
        l.static_max = max;
    })
}

/// `VM.set_memory_static_min` / `static_max` / `dynamic_min` / `dynamic_max` on a halted VM.
pub fn set_memory_bound(ctx: &Ctx, vm: &str, f: impl FnOnce(&mut Limits)) -> ApiResult<()> {
    set_limits(ctx, vm, Op::ChangingMemoryLimits, f)
}

/// `VM.set_memory`: static_max, dynamic_min and dynamic_max all become `value`.
pub fn set_memory(ctx: &Ctx, vm: &str, value: i64) -> ApiResult<()> {
    set_limits(ctx, vm, Op::ChangingMemoryLimits, |l| {
        l.static_max = value;
        l.dynamic_min = value;
        l.dynamic_max = value;
        l.static_min = l.static_min.min(value);
    })
}

/// `VM.set_memory_dynamic_range`: on a running VM the balloon moves to the new maximum.
pub fn set_memory_dynamic_range(ctx: &Ctx, vm: &str, min: i64, max: i64) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, Op::ChangingDynamicRange)?;
    let limits = Limits {
        dynamic_min: min,
        dynamic_max: max,
        ..Limits::of(&rec)
    };
    limits.validate()?;
    with_vm_operation(ctx, vm, Op::ChangingDynamicRange, || {
        if rec.power_state == VmPowerState::Running && !rec.is_control_domain {
            set_target(app, vm, &rec, max)?;
        }
        update::<VmRecord>(app, vm, |r| limits.apply(r))?;
        Ok(())
    })
}

/// Moves a running domain's balloon target and records it.
fn set_target(app: &App, vm: &str, rec: &VmRecord, target: i64) -> ApiResult<()> {
    let bytes = u64::try_from(target).unwrap_or(0);
    app.hypervisor
        .set_memory_target(&uuid_of(rec)?, bytes)
        .map_err(|e| xenops_error(vm, e))?;
    update::<VmRecord>(app, vm, |r| r.memory_target = target)?;
    if let Ok(domain) = app.hypervisor.domain(&uuid_of(rec)?) {
        let _ = update::<VmMetricsRecord>(app, rec.metrics.as_str(), |m| {
            m.memory_actual = domain.memory_actual as i64;
        });
    }
    crate::vm::metrics::refresh_host(app)
}

/// `VM.set_memory_target_live`: a running VM balloons to `target` (within its dynamic range).
pub fn set_memory_target_live(ctx: &Ctx, vm: &str, target: i64) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, Op::ChangingMemoryLive)?;
    if target < rec.memory_dynamic_min || target > rec.memory_dynamic_max {
        return Err(errors::memory_constraint_violation(
            "target must lie within dynamic_min and dynamic_max",
        ));
    }
    with_vm_operation(ctx, vm, Op::ChangingMemoryLive, || {
        set_target(app, vm, &rec, target)
    })
}

/// `VM.set_VCPUs_number_live`: bring vCPUs of a running VM on or off line.
pub fn set_vcpus_number_live(ctx: &Ctx, vm: &str, n_vcpus: i64) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, Op::ChangingVcpusLive)?;
    if n_vcpus < 1 || n_vcpus > rec.vcpus_max {
        return Err(errors::invalid_value("nvcpu", n_vcpus));
    }
    with_vm_operation(ctx, vm, Op::ChangingVcpusLive, || {
        let n = u32::try_from(n_vcpus).unwrap_or(1);
        app.hypervisor
            .set_vcpus(&uuid_of(&rec)?, n)
            .map_err(|e| xenops_error(vm, e))?;
        update::<VmRecord>(app, vm, |r| r.vcpus_at_startup = n_vcpus)?;
        update::<VmMetricsRecord>(app, rec.metrics.as_str(), |m| {
            m.vcpus_number = n_vcpus;
            m.vcpus_utilisation = (0..n_vcpus).map(|i| (i, 0.0)).collect();
            m.vcpus_cpu = (0..n_vcpus).map(|i| (i, i)).collect();
        })?;
        Ok(())
    })
}

/// `VM.set_VCPUs_max` on a halted VM.
pub fn set_vcpus_max(ctx: &Ctx, vm: &str, value: i64) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, Op::ChangingVcpus)?;
    let host_max = app
        .hypervisor
        .physinfo()
        .map(|p| i64::from(p.max_vcpus_per_domain))
        .unwrap_or(i64::MAX);
    if value < 1 || value < rec.vcpus_at_startup {
        return Err(errors::invalid_value("VCPUs_max", value));
    }
    if value > host_max {
        return Err(errors::vm_too_many_vcpus(vm));
    }
    with_vm_operation(ctx, vm, Op::ChangingVcpus, || {
        update::<VmRecord>(app, vm, |r| r.vcpus_max = value)?;
        Ok(())
    })
}

/// `VM.set_VCPUs_at_startup` on a halted VM.
pub fn set_vcpus_at_startup(ctx: &Ctx, vm: &str, value: i64) -> ApiResult<()> {
    let app = &ctx.app;
    let rec = assert_operation_valid(app, vm, Op::ChangingVcpus)?;
    if value < 1 || value > rec.vcpus_max {
        return Err(errors::invalid_value("VCPUs_at_startup", value));
    }
    with_vm_operation(ctx, vm, Op::ChangingVcpus, || {
        update::<VmRecord>(app, vm, |r| r.vcpus_at_startup = value)?;
        Ok(())
    })
}

/// `host.compute_free_memory`: what the hypervisor has free now.
pub fn host_free_memory(app: &App) -> ApiResult<i64> {
    let info = app
        .hypervisor
        .physinfo()
        .map_err(|e| xenops_error(&app.host, e))?;
    Ok(info.free_memory as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(smin: i64, dmin: i64, dmax: i64, smax: i64) -> Limits {
        Limits {
            static_min: smin,
            static_max: smax,
            dynamic_min: dmin,
            dynamic_max: dmax,
        }
    }

    #[test]
    fn ordered_limits_are_accepted() {
        assert!(limits(1, 2, 3, 4).validate().is_ok());
        assert!(limits(4, 4, 4, 4).validate().is_ok());
    }

    #[test]
    fn dynamic_max_above_static_max_is_rejected() {
        let e = limits(1, 2, 5, 4).validate().unwrap_err();
        assert_eq!(e.code, "MEMORY_CONSTRAINT_VIOLATION");
        assert_eq!(e.params, vec![MEMORY_CONSTRAINT]);
    }

    #[test]
    fn zero_memory_is_rejected() {
        assert!(limits(0, 0, 0, 0).validate().is_err());
    }
}
