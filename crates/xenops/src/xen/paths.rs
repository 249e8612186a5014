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

/// Where the backend watches for guest-agent writes of every domain.
pub const DOMAINS: &str = "/local/domain";

/// The domid whose guest data a changed path belongs to: `/local/domain/<domid>/data/...`,
/// `.../attr/...` or `.../control/feature-*` of a domain other than dom0; `None` for any
/// other path (devices, memory, the watched root itself).
pub fn guest_data_domid(path: &str) -> Option<u32> {
    let rest = path.strip_prefix(DOMAINS)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let domid: u32 = parts.next()?.parse().ok()?;
    if domid == 0 {
        return None;
    }
    let root = parts.next()?;
    if GUEST_DATA_ROOTS.contains(&root) {
        return Some(domid);
    }
    match parts.next() {
        Some(name) if root == CONTROL && is_control_feature(name) => Some(domid),
        _ => None,
    }
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

    #[test]
    fn guest_data_writes_map_to_their_domid() {
        assert_eq!(
            guest_data_domid("/local/domain/5/data/os_version/name"),
            Some(5)
        );
        assert_eq!(guest_data_domid("/local/domain/5/data"), Some(5));
        assert_eq!(guest_data_domid("/local/domain/12/attr/eth0/ip"), Some(12));
        assert_eq!(
            guest_data_domid("/local/domain/7/control/feature-suspend"),
            Some(7)
        );
        assert_eq!(guest_data_domid("/local/domain/7/control/shutdown"), None);
        assert_eq!(guest_data_domid("/local/domain/7/control"), None);
        assert_eq!(
            guest_data_domid("/local/domain/7/device/vbd/51712/state"),
            None
        );
        assert_eq!(guest_data_domid("/local/domain/0/data/x"), None);
        assert_eq!(guest_data_domid("/local/domain"), None);
        assert_eq!(guest_data_domid("/local/domainx/5/data"), None);
        assert_eq!(guest_data_domid("/local/domain/abc/data"), None);
    }
}
