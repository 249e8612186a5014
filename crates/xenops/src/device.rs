//! Device descriptions (VBD, VIF, console) and their hotplug states as a backend reports them.
//!
//! Also owns the mapping from a disk name (`xvda`, `hdc`, `sdb`) to the xenstore device
//! number, so every backend numbers devices the same way. No backend logic lives here.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Result, XenopsError};

/// Whether a VBD is writable (`VBD.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VbdMode {
    /// Read-only.
    Ro,
    /// Read-write.
    Rw,
}

/// What a VBD presents to the guest (`VBD.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VbdKind {
    /// A disk.
    Disk,
    /// A CD drive, possibly empty.
    Cd,
}

/// Where a VBD's data lives in dom0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VbdBackend {
    /// A file or block device path.
    Path(PathBuf),
    /// An NBD export, `nbd:unix:/path:exportname=x` or `nbd://host/export`.
    Nbd(String),
}

/// A virtual block device to attach.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VbdConfig {
    /// The device name the guest sees: `xvda`, `hdc`, `sdb`, or a bare number `N` meaning the
    /// N-th `xvd` disk.
    pub device: String,
    /// Disk or CD drive.
    pub kind: VbdKind,
    /// Read-only or read-write.
    pub mode: VbdMode,
    /// The data behind it; `None` only for an empty CD drive.
    pub backend: Option<VbdBackend>,
}

/// A virtual network interface to attach.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VifConfig {
    /// The interface number the guest sees (`VIF.device`): `"0"`, `"1"`, ...
    pub device: String,
    /// The dom0 bridge (or Open vSwitch bridge) to plug into.
    pub bridge: String,
    /// The guest MAC address, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The MTU in bytes.
    pub mtu: u32,
}

/// The kind of a device, for hotplug reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// A block device.
    Vbd,
    /// A network interface.
    Vif,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Vbd => "vbd",
            DeviceKind::Vif => "vif",
        })
    }
}

/// The xenbus state of a device end (`xenbus_state` in `xen/io/xenbus.h`, values 0..6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum XenbusState {
    /// 0: not yet set up.
    Unknown,
    /// 1: the end is being set up.
    Initialising,
    /// 2: the backend waits for the frontend.
    InitWait,
    /// 3: the frontend has published its details.
    Initialised,
    /// 4: both ends talk.
    Connected,
    /// 5: the end is closing.
    Closing,
    /// 6: the end is closed.
    Closed,
}

impl XenbusState {
    /// The number xenstore holds for this state.
    pub fn as_number(self) -> u8 {
        match self {
            XenbusState::Unknown => 0,
            XenbusState::Initialising => 1,
            XenbusState::InitWait => 2,
            XenbusState::Initialised => 3,
            XenbusState::Connected => 4,
            XenbusState::Closing => 5,
            XenbusState::Closed => 6,
        }
    }
}

/// The configuration behind a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceSpec {
    /// A block device.
    Vbd(VbdConfig),
    /// A network interface.
    Vif(VifConfig),
}

/// A device of a domain and its hotplug state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The device name (`xvda`, or a VIF number).
    pub device: String,
    /// The xenstore device number.
    pub devid: u32,
    /// The backend (dom0) end's state.
    pub backend_state: XenbusState,
    /// The frontend (guest) end's state.
    pub frontend_state: XenbusState,
    /// What the device is.
    pub spec: DeviceSpec,
}

impl DeviceInfo {
    /// The device kind.
    pub fn kind(&self) -> DeviceKind {
        match self.spec {
            DeviceSpec::Vbd(_) => DeviceKind::Vbd,
            DeviceSpec::Vif(_) => DeviceKind::Vif,
        }
    }

    /// Both ends connected: the guest can use the device.
    pub fn connected(&self) -> bool {
        self.backend_state == XenbusState::Connected
            && self.frontend_state == XenbusState::Connected
    }
}

/// The protocol a console speaks (`console.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleProtocol {
    /// A text console.
    Vt100,
    /// A graphical console over VNC.
    Rfb,
}

/// Where a console can be reached in dom0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleLocation {
    /// A pseudo-terminal path.
    Pty(PathBuf),
    /// A VNC server on the loopback interface.
    VncPort(u16),
}

/// A console of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConsoleInfo {
    /// What it speaks.
    pub protocol: ConsoleProtocol,
    /// Where it is.
    pub location: ConsoleLocation,
}

/// The xenstore device number of a disk name (`xvda` = 51712, `hda` = 768, `sdb` = 2064).
///
/// A bare number `N` means the N-th `xvd` disk. Partitions are refused.
pub fn vbd_devid(device: &str) -> Result<u32> {
    let bad = || XenopsError::InvalidConfig(format!("unknown disk name {device:?}"));
    if let Ok(index) = device.parse::<u32>() {
        return xvd_devid(index).ok_or_else(bad);
    }
    let (prefix, letters) = ["xvd", "hd", "sd"]
        .iter()
        .find_map(|p| device.strip_prefix(p).map(|rest| (*p, rest)))
        .ok_or_else(bad)?;
    let index = disk_index(letters).ok_or_else(bad)?;
    match prefix {
        "xvd" => xvd_devid(index).ok_or_else(bad),
        // IDE: two disks per controller, hda/hdb on major 3, hdc/hdd on major 22.
        "hd" if index < 4 => Ok(if index < 2 { 3 << 8 } else { 22 << 8 } | (index % 2) << 6),
        "sd" if index < 16 => Ok((8 << 8) | (index << 4)),
        _ => Err(bad()),
    }
}

/// The xenstore device number of a VIF (`"0"` -> 0).
pub fn vif_devid(device: &str) -> Result<u32> {
    device
        .parse::<u32>()
        .map_err(|_| XenopsError::InvalidConfig(format!("vif device {device:?} is not a number")))
}

/// Check a MAC address has the form `aa:bb:cc:dd:ee:ff`.
pub fn validate_mac(mac: &str) -> Result<()> {
    let parts: Vec<&str> = mac.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(XenopsError::InvalidConfig(format!(
            "bad mac address {mac:?}"
        )))
    }
}

fn xvd_devid(index: u32) -> Option<u32> {
    // The compact encoding covers 16 disks; beyond that Xen uses the extended one.
    if index < 16 {
        Some((202 << 8) | (index << 4))
    } else if index < (1 << 20) {
        Some((1 << 28) | (index << 8))
    } else {
        None
    }
}

/// `a` -> 0, `z` -> 25, `aa` -> 26: bijective base 26, at most three letters.
fn disk_index(letters: &str) -> Option<u32> {
    if letters.is_empty() || letters.len() > 3 || !letters.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let n = letters
        .bytes()
        .fold(0u32, |acc, b| acc * 26 + u32::from(b - b'a') + 1);
    Some(n - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_names_map_to_xen_device_numbers() {
        assert_eq!(vbd_devid("xvda").unwrap(), 51712);
        assert_eq!(vbd_devid("xvdb").unwrap(), 51728);
        assert_eq!(vbd_devid("1").unwrap(), 51728);
        assert_eq!(vbd_devid("xvdq").unwrap(), (1 << 28) | (16 << 8));
        assert_eq!(vbd_devid("xvdaa").unwrap(), (1 << 28) | (26 << 8));
        assert_eq!(vbd_devid("hda").unwrap(), 768);
        assert_eq!(vbd_devid("hdb").unwrap(), 832);
        assert_eq!(vbd_devid("hdc").unwrap(), 5632);
        assert_eq!(vbd_devid("sdb").unwrap(), 2064);
    }

    #[test]
    fn partitions_and_unknown_disk_names_are_refused() {
        for name in ["xvda1", "hde", "vda", "", "xvd", "XVDA"] {
            assert!(vbd_devid(name).is_err(), "{name} accepted");
        }
    }

    #[test]
    fn vif_devices_are_numbers() {
        assert_eq!(vif_devid("3").unwrap(), 3);
        assert!(vif_devid("eth0").is_err());
    }

    #[test]
    fn mac_addresses_are_checked() {
        assert!(validate_mac("00:16:3e:aa:bb:0c").is_ok());
        assert!(validate_mac("00:16:3e:aa:bb").is_err());
        assert!(validate_mac("00:16:3e:aa:bb:zz").is_err());
    }
}
