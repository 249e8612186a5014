//! Fault injection for the simulated host: the `sim-*` keys a `DomainConfig` may carry and
//! the `Fault`s a test injects with `SimHost::inject`.
//!
//! Keys (in `other_config` or `platform`; booleans take `true`/`false`/`1`/`0`/`yes`/`no`):
//!
//! | key                         | effect                                                   |
//! |-----------------------------|----------------------------------------------------------|
//! | `sim-fail-start=true`       | `create` fails with `BootFailure`, nothing is left over  |
//! | `sim-crash-after-ms=N`      | the guest crashes N ms after it first runs               |
//! | `sim-poweroff-after-ms=N`   | the guest powers itself off N ms after it first runs     |
//! | `sim-reboot-after-ms=N`     | the guest reboots itself N ms after it first runs        |
//! | `sim-ignore-shutdown=true`  | clean shutdown, reboot and suspend requests are ignored  |
//! | `sim-ignore-balloon=true`   | the balloon driver never moves toward a new target       |
//! | `sim-no-pv-drivers=true`    | no guest agent data, frontends never connect             |
//! | `sim-busy-vbds=xvdb,xvdc`   | the guest holds these disks: plain detach is refused     |
//! | `sim-busy-vifs=0,1`         | the guest holds these interfaces: plain detach is refused|
//!
//! This module only parses and holds fault settings; the engine acts on them.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::device::DeviceKind;
use crate::domain::{DomainConfig, ShutdownReason};
use crate::error::{Result, XenopsError};

/// A fault a test injects into a running simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The guest crashes now.
    Crash,
    /// The guest crashes after this long.
    CrashAfter(Duration),
    /// The guest shuts itself down now (`Poweroff`, `Halt` or `Reboot`).
    GuestShutdown(ShutdownReason),
    /// The guest ignores (true) or obeys (false) shutdown and suspend requests.
    IgnoreShutdown(bool),
    /// The balloon driver ignores (true) or follows (false) memory targets.
    IgnoreBalloon(bool),
    /// The guest holds a device, so a plain detach is refused.
    HoldDevice(DeviceKind, String),
    /// The guest lets go of a device.
    ReleaseDevice(DeviceKind, String),
    /// The next `create` for this VM fails (the VM need not have a domain).
    FailNextStart,
}

/// The fault settings of one domain, persisted with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    /// `create` fails.
    pub fail_start: bool,
    /// Crash this long after the first unpause.
    pub crash_after: Option<Duration>,
    /// Power off this long after the first unpause.
    pub poweroff_after: Option<Duration>,
    /// Reboot this long after the first unpause.
    pub reboot_after: Option<Duration>,
    /// Shutdown and suspend requests are ignored.
    pub ignore_shutdown: bool,
    /// Memory targets are ignored.
    pub ignore_balloon: bool,
    /// The guest has no PV drivers and no agent.
    pub no_pv_drivers: bool,
    /// Devices the guest will not let go of.
    pub busy: BTreeSet<(DeviceKind, String)>,
}

impl Faults {
    /// Read the `sim-*` keys of a build description; a malformed value is `InvalidConfig`.
    pub fn from_config(config: &DomainConfig) -> Result<Self> {
        let flag = |key: &str| config.key(key).map(|v| parse_bool(key, v)).transpose();
        let millis = |key: &str| config.key(key).map(|v| parse_millis(key, v)).transpose();
        let mut busy = BTreeSet::new();
        for (key, kind) in [
            ("sim-busy-vbds", DeviceKind::Vbd),
            ("sim-busy-vifs", DeviceKind::Vif),
        ] {
            for name in config.key(key).unwrap_or("").split(',').map(str::trim) {
                if !name.is_empty() {
                    busy.insert((kind, name.to_string()));
                }
            }
        }
        Ok(Faults {
            fail_start: flag("sim-fail-start")?.unwrap_or(false),
            crash_after: millis("sim-crash-after-ms")?,
            poweroff_after: millis("sim-poweroff-after-ms")?,
            reboot_after: millis("sim-reboot-after-ms")?,
            ignore_shutdown: flag("sim-ignore-shutdown")?.unwrap_or(false),
            ignore_balloon: flag("sim-ignore-balloon")?.unwrap_or(false),
            no_pv_drivers: flag("sim-no-pv-drivers")?.unwrap_or(false),
            busy,
        })
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(XenopsError::InvalidConfig(format!(
            "{key}={value:?} is not a boolean"
        ))),
    }
}

fn parse_millis(key: &str, value: &str) -> Result<Duration> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| {
            XenopsError::InvalidConfig(format!("{key}={value:?} is not a number of milliseconds"))
        })
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn config_with(pairs: &[(&str, &str)]) -> DomainConfig {
        let mut config = DomainConfig::new_pv(Uuid::new_v4(), "t", 1 << 30);
        for (k, v) in pairs {
            config.other_config.insert(k.to_string(), v.to_string());
        }
        config
    }

    #[test]
    fn keys_are_read_from_other_config_and_platform() {
        let mut config = config_with(&[
            ("sim-crash-after-ms", "250"),
            ("sim-busy-vbds", "xvdb, xvdc"),
        ]);
        config
            .platform
            .insert("sim-ignore-shutdown".into(), "yes".into());
        let faults = Faults::from_config(&config).unwrap();
        assert_eq!(faults.crash_after, Some(Duration::from_millis(250)));
        assert!(faults.ignore_shutdown);
        assert!(!faults.fail_start);
        assert!(faults.busy.contains(&(DeviceKind::Vbd, "xvdc".to_string())));
        assert_eq!(faults.busy.len(), 2);
    }

    #[test]
    fn malformed_fault_values_are_invalid_config() {
        for (k, v) in [("sim-fail-start", "maybe"), ("sim-crash-after-ms", "-1")] {
            let err = Faults::from_config(&config_with(&[(k, v)])).unwrap_err();
            assert!(
                matches!(err, XenopsError::InvalidConfig(_)),
                "{k}={v}: {err}"
            );
        }
    }

    #[test]
    fn no_keys_means_a_well_behaved_guest() {
        assert_eq!(
            Faults::from_config(&config_with(&[])).unwrap(),
            Faults::default()
        );
    }
}
