//! libxl error codes (`libxl_error`) → `XenopsError`, and domain flags → `DomainState`.
//! Pure mapping; the numbers are libxl's and Xen's public ABI.

use uuid::Uuid;

use crate::domain::{DomainState, ShutdownReason};
use crate::error::XenopsError;

/// What the failed call was about, for the error it becomes.
#[derive(Debug, Clone, Copy)]
pub struct Failed<'a> {
    /// The operation, for messages: `"create"`, `"pause"`, ...
    pub op: &'a str,
    /// The VM.
    pub uuid: Uuid,
    /// The device, for device operations.
    pub device: Option<&'a str>,
}

/// libxl's name of an error code.
pub fn rc_name(rc: i32) -> &'static str {
    match rc {
        -1 => "NONSPECIFIC",
        -2 => "VERSION",
        -3 => "FAIL",
        -4 => "NI",
        -5 => "NOMEM",
        -6 => "INVAL",
        -7 => "BADFAIL",
        -8 => "GUEST_TIMEDOUT",
        -9 => "TIMEDOUT",
        -10 => "NOPARAVIRT",
        -11 => "NOT_READY",
        -15 => "LOCK_FAIL",
        -17 => "DEVICE_EXISTS",
        -21 => "DOMAIN_NOTFOUND",
        -22 => "ABORTED",
        -23 => "NOTFOUND",
        -24 => "DOMAIN_DESTROYED",
        _ => "OTHER",
    }
}

/// The `XenopsError` for libxl error `rc` from the call described by `failed`.
pub fn from_libxl(failed: Failed<'_>, rc: i32) -> XenopsError {
    let Failed { op, uuid, device } = failed;
    let what = format!("{op}: libxl error {} ({rc})", rc_name(rc));
    match (rc, device) {
        (-21 | -24, _) => XenopsError::NoSuchDomain(uuid),
        (-17, Some(device)) => XenopsError::DeviceExists {
            device: device.into(),
        },
        (-23, Some(device)) => XenopsError::NoSuchDevice {
            device: device.into(),
        },
        (-6, _) => XenopsError::InvalidConfig(what),
        (-8 | -9, Some(device)) if op.starts_with("detach") => XenopsError::DeviceBusy {
            device: device.into(),
        },
        (-8 | -9, _) => XenopsError::Timeout(what),
        (-10, _) => {
            XenopsError::NotAcknowledged(format!("{op}: the guest has no PV control interface"))
        }
        _ if op == "create" || op == "resume" => XenopsError::BootFailure(what),
        _ => XenopsError::State(what),
    }
}

/// `XEN_DOMINF_dying`.
pub const DOMINF_DYING: u32 = 1 << 0;
/// `XEN_DOMINF_hvm_guest`.
pub const DOMINF_HVM: u32 = 1 << 1;
/// `XEN_DOMINF_shutdown`.
pub const DOMINF_SHUTDOWN: u32 = 1 << 2;
/// `XEN_DOMINF_paused`.
pub const DOMINF_PAUSED: u32 = 1 << 3;

/// What the hypervisor's flags say about a domain, with `halt_requested` telling a
/// toolstack-requested poweroff (`Halt`) from the guest's own (`Poweroff`).
pub fn state_of(flags: u32, halt_requested: bool) -> DomainState {
    if flags & DOMINF_DYING != 0 {
        return DomainState::Dying;
    }
    if flags & DOMINF_SHUTDOWN != 0 {
        // SHUTDOWN_* codes from xen/sched.h, kept in bits 16..24.
        return match (flags >> 16) & 0xff {
            0 if halt_requested => DomainState::Shutdown(ShutdownReason::Halt),
            0 => DomainState::Shutdown(ShutdownReason::Poweroff),
            2 => DomainState::Shutdown(ShutdownReason::Suspend),
            3 => DomainState::Crashed,
            // reboot, watchdog and soft reset all mean "start it again".
            _ => DomainState::Shutdown(ShutdownReason::Reboot),
        };
    }
    if flags & DOMINF_PAUSED != 0 {
        DomainState::Paused
    } else {
        DomainState::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(op: &str, device: Option<&'static str>) -> Failed<'static> {
        Failed {
            op: Box::leak(op.to_string().into_boxed_str()),
            uuid: Uuid::nil(),
            device,
        }
    }

    #[test]
    fn a_missing_domain_is_no_such_domain() {
        assert!(matches!(
            from_libxl(failed("pause", None), -21),
            XenopsError::NoSuchDomain(_)
        ));
    }

    #[test]
    fn device_errors_name_the_device() {
        match from_libxl(failed("attach_vbd", Some("xvdb")), -17) {
            XenopsError::DeviceExists { device } => assert_eq!(device, "xvdb"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            from_libxl(failed("detach_vbd", Some("xvdb")), -9),
            XenopsError::DeviceBusy { .. }
        ));
    }

    #[test]
    fn build_failures_are_boot_failures_and_the_rest_state_errors() {
        let err = from_libxl(failed("create", None), -3);
        assert!(matches!(err, XenopsError::BootFailure(ref m) if m.contains("FAIL (-3)")));
        assert!(matches!(
            from_libxl(failed("pause", None), -3),
            XenopsError::State(_)
        ));
        assert!(matches!(
            from_libxl(failed("create", None), -6),
            XenopsError::InvalidConfig(_)
        ));
        // No PV control interface: the guest cannot acknowledge a shutdown request.
        assert!(matches!(
            from_libxl(failed("shutdown", None), -10),
            XenopsError::NotAcknowledged(_)
        ));
    }

    #[test]
    fn domain_flags_map_to_states() {
        assert_eq!(state_of(0, false), DomainState::Running);
        assert_eq!(state_of(DOMINF_PAUSED, false), DomainState::Paused);
        assert_eq!(
            state_of(DOMINF_DYING | DOMINF_SHUTDOWN, false),
            DomainState::Dying
        );
        let shut = |code: u32| DOMINF_SHUTDOWN | (code << 16);
        assert_eq!(
            state_of(shut(0), false),
            DomainState::Shutdown(ShutdownReason::Poweroff)
        );
        assert_eq!(
            state_of(shut(0), true),
            DomainState::Shutdown(ShutdownReason::Halt)
        );
        assert_eq!(
            state_of(shut(1), false),
            DomainState::Shutdown(ShutdownReason::Reboot)
        );
        assert_eq!(
            state_of(shut(2), false),
            DomainState::Shutdown(ShutdownReason::Suspend)
        );
        assert_eq!(state_of(shut(3), false), DomainState::Crashed);
    }
}
