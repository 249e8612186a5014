//! Xenstore paths the backend reads, and the pure helpers that interpret their values.
//! Builds strings and parses values only; never talks to xenstored.

use crate::device::{DeviceKind, XenbusState};

/// The home of a domain in xenstore.
pub fn domain_path(domid: u32) -> String {
    format!("/local/domain/{domid}")
}

/// The subtrees a guest agent writes that make up `guest_data`.
pub const GUEST_DATA_ROOTS: &[&str] = &["data", "attr"];

/// The node under which guests advertise `feature-*` keys.
pub const CONTROL: &str = "control";

/// Whether a `control/` child is guest data (`feature-shutdown`, `feature-suspend`, ...).
pub fn is_control_feature(name: &str) -> bool {
    name.starts_with("feature-")
}

/// The frontend directory of a device in the guest's xenstore area.
pub fn frontend_path(domid: u32, kind: DeviceKind, devid: u32) -> String {
    format!("{}/device/{kind}/{devid}", domain_path(domid))
}

/// Where the PV console's pty is published (by xenconsoled).
pub fn console_tty(domid: u32) -> String {
    format!("{}/console/tty", domain_path(domid))
}

/// Where the device model publishes the VNC port of an HVM guest.
pub fn vnc_port(domid: u32) -> String {
    format!("{}/console/vnc-port", domain_path(domid))
}

/// The domain's name as libxl wrote it.
pub fn name(domid: u32) -> String {
    format!("{}/name", domain_path(domid))
}

/// The balloon target in KiB.
pub fn memory_target(domid: u32) -> String {
    format!("{}/memory/target", domain_path(domid))
}

/// A xenbus `state` node's value as a state (unknown values read as `Unknown`).
pub fn xenbus_state(value: &str) -> XenbusState {
    match value.trim() {
        "1" => XenbusState::Initialising,
        "2" => XenbusState::InitWait,
        "3" => XenbusState::Initialised,
        "4" => XenbusState::Connected,
        "5" => XenbusState::Closing,
        "6" => XenbusState::Closed,
        _ => XenbusState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_and_console_paths_follow_the_xenstore_layout() {
        assert_eq!(
            frontend_path(7, DeviceKind::Vbd, 51712),
            "/local/domain/7/device/vbd/51712"
        );
        assert_eq!(
            frontend_path(7, DeviceKind::Vif, 0),
            "/local/domain/7/device/vif/0"
        );
        assert_eq!(console_tty(3), "/local/domain/3/console/tty");
        assert_eq!(vnc_port(3), "/local/domain/3/console/vnc-port");
        assert_eq!(memory_target(3), "/local/domain/3/memory/target");
        assert_eq!(name(0), "/local/domain/0/name");
    }

    #[test]
    fn xenbus_states_parse_and_round_trip() {
        for n in 0u8..=6 {
            assert_eq!(xenbus_state(&n.to_string()).as_number(), n);
        }
        assert_eq!(xenbus_state("4\n"), XenbusState::Connected);
        assert_eq!(xenbus_state("junk"), XenbusState::Unknown);
    }

    #[test]
    fn only_feature_keys_of_control_are_guest_data() {
        assert!(is_control_feature("feature-shutdown"));
        assert!(!is_control_feature("shutdown"));
    }
}
