//! The typed requests and responses of the SMAPIv1 operations: SR context, VDI descriptions,
//! sizes, probe and scan results, attach results naming the data path. Plain data only; never
//! touches storage.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// `device_config`: the PBD's map telling a driver where its SR lives.
pub type DeviceConfig = BTreeMap<String, String>;
/// `sm_config`: driver-private key/value pairs on an SR or VDI.
pub type SmConfig = BTreeMap<String, String>;

/// The SR an operation works on: its uuid and the PBD's `device_config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SrContext {
    /// `SR.uuid`.
    pub sr_uuid: String,
    /// `PBD.device_config`.
    pub device_config: DeviceConfig,
    /// `SR.sm_config`.
    pub sm_config: SmConfig,
}

impl SrContext {
    /// A context for `sr_uuid` with `device_config`.
    pub fn new(sr_uuid: impl Into<String>, device_config: DeviceConfig) -> Self {
        Self {
            sr_uuid: sr_uuid.into(),
            device_config,
            sm_config: SmConfig::new(),
        }
    }

    /// A non-empty `device_config` value.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.device_config
            .get(key)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }
}

/// `SR.physical_size`, `SR.physical_utilisation` and `SR.virtual_allocation`, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SrStats {
    /// `SR.physical_size`.
    pub physical_size: u64,
    /// `SR.physical_utilisation`.
    pub physical_utilisation: u64,
    /// `SR.virtual_allocation`: the sum of the visible VDIs' virtual sizes.
    pub virtual_allocation: u64,
}

/// One SR found by `sr_probe`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbedSr {
    /// The SR's uuid as recorded on the storage.
    pub uuid: String,
    /// Its size in bytes, if known.
    pub size: Option<u64>,
    /// Extra facts (device, mount point).
    pub aux: BTreeMap<String, String>,
}

/// What a driver knows about a VDI: the fields it reports to, and records through, the storage
/// database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VdiInfo {
    /// `VDI.uuid`.
    pub uuid: String,
    /// `VDI.location`: the driver's name for the VDI (the uuid for VHD SRs, the file name for ISOs).
    pub location: String,
    /// `VDI.name_label`.
    pub name_label: String,
    /// `VDI.name_description`.
    pub name_description: String,
    /// `VDI.virtual_size` in bytes.
    pub virtual_size: u64,
    /// `VDI.physical_utilisation` in bytes.
    pub physical_utilisation: u64,
    /// `VDI.type` as its wire name (`user`, `system`, `suspend`, ...).
    pub vdi_type: String,
    /// `VDI.read_only`.
    pub read_only: bool,
    /// `VDI.sharable`.
    pub sharable: bool,
    /// `VDI.managed`: false for the hidden base copies a VHD SR keeps for its chains.
    pub managed: bool,
    /// `VDI.missing`.
    pub missing: bool,
    /// `VDI.is_a_snapshot`.
    pub is_a_snapshot: bool,
    /// `VDI.snapshot_of`: uuid of the VDI this is a snapshot of.
    pub snapshot_of: Option<String>,
    /// `VDI.snapshot_time` in seconds since the epoch.
    pub snapshot_time: Option<u64>,
    /// `VDI.sm_config` (for VHD SRs: `vhd-parent`, `vdi_type`).
    pub sm_config: SmConfig,
    /// Uuid of the parent VDI in a differencing chain.
    pub parent: Option<String>,
    /// Whether the VHD is hidden (a base copy only its children read).
    pub hidden: bool,
}

/// `vdi_create`: the new VDI's description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VdiCreate {
    /// The uuid to give the VDI; the driver picks one when `None`.
    pub uuid: Option<String>,
    /// `VDI.name_label`.
    pub name_label: String,
    /// `VDI.name_description`.
    pub name_description: String,
    /// `VDI.virtual_size` in bytes (rounded up by the driver to its granularity).
    pub virtual_size: u64,
    /// `VDI.type` wire name.
    pub vdi_type: String,
    /// `VDI.read_only`.
    pub read_only: bool,
    /// `VDI.sharable`.
    pub sharable: bool,
    /// `VDI.sm_config` supplied by the caller.
    pub sm_config: SmConfig,
}

/// `vdi_introduce`: make the driver adopt an existing VDI at `location` under `uuid`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VdiIntroduce {
    /// The uuid to record.
    pub uuid: String,
    /// The driver's location of the VDI.
    pub location: String,
    /// `VDI.name_label`.
    pub name_label: String,
    /// `VDI.name_description`.
    pub name_description: String,
    /// `VDI.type` wire name.
    pub vdi_type: String,
    /// `VDI.sm_config`.
    pub sm_config: SmConfig,
}

/// Names an existing VDI: its uuid and location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VdiId {
    /// `VDI.uuid`.
    pub uuid: String,
    /// `VDI.location`.
    pub location: String,
}

impl VdiId {
    /// A VDI whose location is its uuid (VHD SRs).
    pub fn by_uuid(uuid: impl Into<String>) -> Self {
        let uuid = uuid.into();
        Self {
            location: uuid.clone(),
            uuid,
        }
    }
}

/// Where a consumer (qemu, tapdisk, the sim backend) reads and writes an attached VDI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataPath {
    /// An NBD export on a unix socket: `nbd+unix:///<export>?socket=<socket>`.
    Nbd {
        /// The unix socket.
        socket: PathBuf,
        /// The export name.
        export: String,
    },
    /// A plain file or block device used as is (ISO images).
    File {
        /// The path.
        path: PathBuf,
    },
    /// No data (the dummy driver).
    Null,
}

impl DataPath {
    /// The NBD URI qemu and libnbd accept, for an NBD data path.
    pub fn nbd_uri(&self) -> Option<String> {
        match self {
            Self::Nbd { socket, export } => {
                Some(format!("nbd+unix:///{export}?socket={}", socket.display()))
            }
            _ => None,
        }
    }
}

/// `vdi_attach` / `vdi_activate`: how to reach the VDI's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachResult {
    /// The data path.
    pub data_path: DataPath,
    /// Whether the data path is opened read-only.
    pub read_only: bool,
    /// Keys for the VBD's xenstore backend area (`storage-type`, ...).
    pub xenstore_data: BTreeMap<String, String>,
}

/// `sr_scan`: the SR's sizes and every VDI a consumer may see (hidden leaves excluded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanResult {
    /// Sizes after the scan.
    pub stats: SrStats,
    /// The VDIs, hidden base copies included with `managed = false`.
    pub vdis: Vec<VdiInfo>,
}

/// What a garbage-collection pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Uuids of hidden VDIs deleted because no leaf needed them.
    pub deleted: Vec<String>,
    /// `(child, parent)` pairs: hidden children coalesced into their parents.
    pub coalesced: Vec<(String, String)>,
    /// `(leaf, parent)` pairs: leaves coalesced into their parents, which took their place.
    pub leaf_coalesced: Vec<(String, String)>,
    /// Journals of interrupted steps completed at the start of the pass.
    pub recovered: usize,
}

impl GcReport {
    /// Whether the pass changed nothing.
    pub fn is_empty(&self) -> bool {
        self.deleted.is_empty()
            && self.coalesced.is_empty()
            && self.leaf_coalesced.is_empty()
            && self.recovered == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nbd_uri_names_export_and_socket() {
        let path = DataPath::Nbd {
            socket: PathBuf::from("/run/sr/a.sock"),
            export: "abc".into(),
        };
        assert_eq!(
            path.nbd_uri().as_deref(),
            Some("nbd+unix:///abc?socket=/run/sr/a.sock")
        );
        assert_eq!(DataPath::Null.nbd_uri(), None);
    }

    #[test]
    fn empty_device_config_values_count_as_missing() {
        let mut config = DeviceConfig::new();
        config.insert("location".into(), String::new());
        let sr = SrContext::new("sr", config);
        assert_eq!(sr.config("location"), None);
    }
}
