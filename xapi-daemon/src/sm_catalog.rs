//! The storage driver types this daemon offers, as `SM` records describe them to clients.
//! Facts only (type names, configuration keys, feature flags with versions as upstream reports).

/// One driver type.
pub struct SmType {
    pub kind: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    /// device-config keys and what they mean.
    pub configuration: &'static [(&'static str, &'static str)],
    /// Feature name and version.
    pub features: &'static [(&'static str, i64)],
}

const VDI_FEATURES: &[(&str, i64)] = &[
    ("SR_PROBE", 1),
    ("SR_UPDATE", 1),
    ("VDI_CREATE", 1),
    ("VDI_DELETE", 1),
    ("VDI_ATTACH", 1),
    ("VDI_DETACH", 1),
    ("VDI_UPDATE", 1),
    ("VDI_CLONE", 1),
    ("VDI_SNAPSHOT", 1),
    ("VDI_RESIZE", 1),
    ("VDI_GENERATE_CONFIG", 1),
    ("VDI_ACTIVATE", 1),
    ("VDI_DEACTIVATE", 1),
    ("VDI_INTRODUCE", 1),
    ("ATOMIC_PAUSE", 1),
    ("VDI_CONFIG_CBT", 1),
    ("THIN_PROVISIONING", 1),
];

/// Every driver type, seeded as `SM` records on first start.
pub const CATALOG: &[SmType] = &[
    SmType {
        kind: "file",
        name: "Local Path VHD",
        description: "VHD files in a local directory",
        configuration: &[("location", "local directory path")],
        features: VDI_FEATURES,
    },
    SmType {
        kind: "ext",
        name: "Local EXT3 VHD",
        description: "VHD files on a local block device formatted ext4",
        configuration: &[("device", "local block device path")],
        features: VDI_FEATURES,
    },
    SmType {
        kind: "nfs",
        name: "NFS VHD",
        description: "VHD files on an NFS export",
        configuration: &[
            ("server", "hostname or IP address"),
            ("serverpath", "path on the server"),
            ("nfsversion", "3 or 4"),
        ],
        features: VDI_FEATURES,
    },
    SmType {
        kind: "lvm",
        name: "Local LVM",
        description: "VHD inside LVM logical volumes on a local block device",
        configuration: &[("device", "local block device path")],
        features: VDI_FEATURES,
    },
    SmType {
        kind: "iso",
        name: "ISO",
        description: "A read-only library of ISO images in a directory",
        configuration: &[
            ("location", "directory or share path"),
            ("legacy_mode", "unused"),
        ],
        features: &[
            ("SR_PROBE", 1),
            ("VDI_INTRODUCE", 1),
            ("VDI_ATTACH", 1),
            ("VDI_DETACH", 1),
            ("VDI_ACTIVATE", 1),
            ("VDI_DEACTIVATE", 1),
        ],
    },
    SmType {
        kind: "udev",
        name: "Local removable devices",
        description: "Removable block devices such as CD drives and USB sticks",
        configuration: &[("location", "path to the device")],
        features: &[
            ("VDI_INTRODUCE", 1),
            ("VDI_ATTACH", 1),
            ("VDI_DETACH", 1),
            ("VDI_ACTIVATE", 1),
            ("VDI_DEACTIVATE", 1),
        ],
    },
    SmType {
        kind: "dummy",
        name: "dummy",
        description: "Keeps VDIs in memory; for tests",
        configuration: &[],
        features: VDI_FEATURES,
    },
];
