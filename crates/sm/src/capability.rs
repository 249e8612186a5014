//! `Capability` and `DriverInfo`: what a driver says about itself in `sr_get_driver_info`, from
//! which the daemon builds the `SM` records (`capabilities`, `features`, `configuration`). Owns
//! the upstream capability names; knows nothing of the records themselves.

use std::fmt;

/// A feature string as upstream drivers advertise it (`SM.features` keys, `SM.capabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `SR_PROBE`: `sr_probe` lists SRs on a device.
    SrProbe,
    /// `SR_UPDATE`: `sr_update` refreshes sizes.
    SrUpdate,
    /// `SR_SCAN`: `sr_scan` (advertised explicitly by the ISO driver).
    SrScan,
    /// `SR_ATTACH`: `sr_attach` (advertised explicitly by the ISO driver).
    SrAttach,
    /// `SR_DETACH`: `sr_detach` (advertised explicitly by the ISO driver).
    SrDetach,
    /// `SR_SUPPORTS_LOCAL_CACHING`.
    SrSupportsLocalCaching,
    /// `VDI_CREATE`.
    VdiCreate,
    /// `VDI_DELETE`.
    VdiDelete,
    /// `VDI_ATTACH`.
    VdiAttach,
    /// `VDI_DETACH`.
    VdiDetach,
    /// `VDI_ACTIVATE`.
    VdiActivate,
    /// `VDI_DEACTIVATE`.
    VdiDeactivate,
    /// `VDI_CLONE`.
    VdiClone,
    /// `VDI_SNAPSHOT`.
    VdiSnapshot,
    /// `VDI_RESIZE`.
    VdiResize,
    /// `VDI_RESIZE_ONLINE`.
    VdiResizeOnline,
    /// `VDI_INTRODUCE`.
    VdiIntroduce,
    /// `VDI_UPDATE`.
    VdiUpdate,
    /// `VDI_GENERATE_CONFIG`.
    VdiGenerateConfig,
    /// `VDI_RESET_ON_BOOT/2`: the driver can discard a VDI's changes at boot.
    VdiResetOnBoot,
    /// `THIN_PROVISIONING`: VDIs occupy only what is written.
    ThinProvisioning,
    /// `ATOMIC_PAUSE`: the data path can be paused atomically (snapshot of an active VDI).
    AtomicPause,
}

impl Capability {
    /// Every capability, in declaration order.
    pub const ALL: [Capability; 22] = [
        Self::SrProbe,
        Self::SrUpdate,
        Self::SrScan,
        Self::SrAttach,
        Self::SrDetach,
        Self::SrSupportsLocalCaching,
        Self::VdiCreate,
        Self::VdiDelete,
        Self::VdiAttach,
        Self::VdiDetach,
        Self::VdiActivate,
        Self::VdiDeactivate,
        Self::VdiClone,
        Self::VdiSnapshot,
        Self::VdiResize,
        Self::VdiResizeOnline,
        Self::VdiIntroduce,
        Self::VdiUpdate,
        Self::VdiGenerateConfig,
        Self::VdiResetOnBoot,
        Self::ThinProvisioning,
        Self::AtomicPause,
    ];

    /// The wire string, including a `/<version>` suffix where upstream uses one.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SrProbe => "SR_PROBE",
            Self::SrUpdate => "SR_UPDATE",
            Self::SrScan => "SR_SCAN",
            Self::SrAttach => "SR_ATTACH",
            Self::SrDetach => "SR_DETACH",
            Self::SrSupportsLocalCaching => "SR_SUPPORTS_LOCAL_CACHING",
            Self::VdiCreate => "VDI_CREATE",
            Self::VdiDelete => "VDI_DELETE",
            Self::VdiAttach => "VDI_ATTACH",
            Self::VdiDetach => "VDI_DETACH",
            Self::VdiActivate => "VDI_ACTIVATE",
            Self::VdiDeactivate => "VDI_DEACTIVATE",
            Self::VdiClone => "VDI_CLONE",
            Self::VdiSnapshot => "VDI_SNAPSHOT",
            Self::VdiResize => "VDI_RESIZE",
            Self::VdiResizeOnline => "VDI_RESIZE_ONLINE",
            Self::VdiIntroduce => "VDI_INTRODUCE",
            Self::VdiUpdate => "VDI_UPDATE",
            Self::VdiGenerateConfig => "VDI_GENERATE_CONFIG",
            Self::VdiResetOnBoot => "VDI_RESET_ON_BOOT/2",
            Self::ThinProvisioning => "THIN_PROVISIONING",
            Self::AtomicPause => "ATOMIC_PAUSE",
        }
    }

    /// The feature name without the version suffix (`VDI_RESET_ON_BOOT`), the key of
    /// `SM.features`.
    pub fn feature_name(self) -> &'static str {
        let full = self.as_str();
        full.split('/').next().unwrap_or(full)
    }

    /// The feature version (`SM.features` value): the suffix after `/`, else 1.
    pub fn feature_version(self) -> i64 {
        self.as_str()
            .split_once('/')
            .and_then(|(_, version)| version.parse().ok())
            .unwrap_or(1)
    }

    /// Parses a wire string (with or without a version suffix).
    pub fn parse(text: &str) -> Option<Self> {
        let name = text.split('/').next().unwrap_or(text);
        Self::ALL.into_iter().find(|cap| cap.feature_name() == name)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `device_config` key a driver understands, with its description (`SM.configuration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigKey {
    /// The key, e.g. `location`.
    pub key: &'static str,
    /// What it means, e.g. `local directory path (required)`.
    pub description: &'static str,
}

/// `sr_get_driver_info`: what becomes a driver's `SM` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverInfo {
    /// The SR type the driver handles (`SM.type`, `SR.type`): `file`, `ext`, `iso`, `dummy`.
    pub sr_type: &'static str,
    /// `SM.name_label`.
    pub name: &'static str,
    /// `SM.name_description`.
    pub description: &'static str,
    /// `SM.vendor`.
    pub vendor: &'static str,
    /// `SM.copyright`.
    pub copyright: &'static str,
    /// `SM.version`.
    pub version: &'static str,
    /// `SM.required_api_version`.
    pub required_api_version: &'static str,
    /// `SM.capabilities` / `SM.features`.
    pub capabilities: Vec<Capability>,
    /// `SM.configuration`.
    pub configuration: Vec<ConfigKey>,
}

impl DriverInfo {
    /// Whether the driver advertises `cap`.
    pub fn has(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }

    /// `SM.capabilities`: the feature names.
    pub fn capability_strings(&self) -> Vec<String> {
        self.capabilities
            .iter()
            .map(|cap| cap.feature_name().to_owned())
            .collect()
    }

    /// `SM.features`: feature name to version.
    pub fn features(&self) -> Vec<(String, i64)> {
        self.capabilities
            .iter()
            .map(|cap| (cap.feature_name().to_owned(), cap.feature_version()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_capability_splits_into_name_and_version() {
        assert_eq!(
            Capability::VdiResetOnBoot.feature_name(),
            "VDI_RESET_ON_BOOT"
        );
        assert_eq!(Capability::VdiResetOnBoot.feature_version(), 2);
        assert_eq!(Capability::VdiCreate.feature_version(), 1);
    }

    #[test]
    fn every_capability_parses_back_from_its_string() {
        for cap in Capability::ALL {
            assert_eq!(Capability::parse(cap.as_str()), Some(cap));
        }
        assert_eq!(Capability::parse("VDI_MIRROR"), None);
    }
}
