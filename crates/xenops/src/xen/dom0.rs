//! `check_dom0`: is this process running in a Xen control domain? Reads `/proc/xen` and
//! `/dev/xen` only; never opens a hypervisor handle.

use std::path::Path;

/// Where Linux's xenfs says what this domain may do.
pub const CAPABILITIES: &str = "/proc/xen/capabilities";
/// The privileged-command device every toolstack library opens.
pub const PRIVCMD: &str = "/dev/xen/privcmd";

/// Check that this is a Xen control domain: `/proc/xen/capabilities` says `control_d` and
/// `/dev/xen/privcmd` exists. The error says which is missing, for `--backend xen` to print.
pub fn check_dom0() -> Result<(), String> {
    check_dom0_at(Path::new(CAPABILITIES), Path::new(PRIVCMD))
}

/// `check_dom0` with the two paths given, so tests can point it at a temp dir.
pub fn check_dom0_at(capabilities: &Path, privcmd: &Path) -> Result<(), String> {
    let caps = std::fs::read_to_string(capabilities).map_err(|err| {
        format!(
            "not running on a Xen dom0: cannot read {} ({err}); is xenfs mounted on /proc/xen?",
            capabilities.display()
        )
    })?;
    if !caps.split_whitespace().any(|cap| cap == "control_d") {
        return Err(format!(
            "not running on a Xen dom0: {} does not contain control_d (this is a guest domain)",
            capabilities.display()
        ));
    }
    if !privcmd.exists() {
        return Err(format!(
            "not running on a Xen dom0: {} is missing (is the xen-privcmd module loaded?)",
            privcmd.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_capabilities_file_is_not_dom0() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            check_dom0_at(&dir.path().join("capabilities"), &dir.path().join("p")).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn a_guest_domain_is_not_dom0() {
        let dir = tempfile::tempdir().unwrap();
        let caps = dir.path().join("capabilities");
        std::fs::write(&caps, "").unwrap();
        let privcmd = dir.path().join("privcmd");
        std::fs::write(&privcmd, "").unwrap();
        let err = check_dom0_at(&caps, &privcmd).unwrap_err();
        assert!(err.contains("control_d"), "{err}");
    }

    #[test]
    fn dom0_needs_privcmd_too() {
        let dir = tempfile::tempdir().unwrap();
        let caps = dir.path().join("capabilities");
        std::fs::write(&caps, "control_d\n").unwrap();
        let privcmd = dir.path().join("privcmd");
        let err = check_dom0_at(&caps, &privcmd).unwrap_err();
        assert!(err.contains("privcmd"), "{err}");
        std::fs::write(&privcmd, "").unwrap();
        assert_eq!(check_dom0_at(&caps, &privcmd), Ok(()));
    }
}
