//! `SmError`: what a storage driver reports when an operation fails, numbered as upstream's SR
//! backends number their failures (the SM error-code table xapi turns into
//! `SR_BACKEND_FAILURE_<n>`). Owns the numbering and the special-code mapping; never builds an
//! API error itself (the daemon's `errors.rs` does, from [`SmError::xapi_mapping`]).

use std::fmt;

/// One entry of the SR backend error table: a number fixed by upstream and its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 1: an argument is invalid.
    InvalidArg,
    /// 16: the SR device is in use (xapi reports `SR_DEVICE_IN_USE`).
    SrInUse,
    /// 19: no such device.
    InvalidDev,
    /// 24: the VDI is in use (xapi reports `VDI_IN_USE`).
    VdiInUse,
    /// 37: a lock or unlock request failed.
    LockErr,
    /// 38: the operation is not implemented by this backend (xapi reports
    /// `UNIMPLEMENTED_IN_SM_BACKEND`).
    Unimplemented,
    /// 39: the SR still holds VDIs (xapi reports `SR_NOT_EMPTY`).
    SrNotEmpty,
    /// 40: the SR scan failed.
    SrScan,
    /// 42: the SR already exists.
    SrExists,
    /// 43: the VDI already exists.
    VdiExists,
    /// 44: there is not enough space.
    SrNoSpace,
    /// 46: the VDI is not available.
    VdiUnavailable,
    /// 47: the SR is not available (not attached, directory missing).
    SrUnavailable,
    /// 61: creating a file SR failed.
    FileSrCreate,
    /// 62: a file SR could not remove its directory.
    FileSrRmDir,
    /// 63: deleting a file SR failed.
    FileSrDelete,
    /// 64: removing a VDI failed.
    VdiRemove,
    /// 65: loading a VDI failed.
    VdiLoad,
    /// 66: the VDI type is invalid.
    VdiType,
    /// 78: creating a VDI failed.
    VdiCreate,
    /// 79: the VDI size is invalid.
    VdiSize,
    /// 80: marking a VDI hidden (deleting a VDI that has children) failed.
    VdiDelete,
    /// 81: cloning a VDI failed.
    VdiClone,
    /// 82: snapshotting a VDI failed.
    VdiSnapshot,
    /// 90: `device_config:device` is missing.
    ConfigDeviceMissing,
    /// 91: `device_config:device` is not a valid path.
    ConfigDeviceInvalid,
    /// 94: `device_config:location` is missing.
    ConfigLocationMissing,
    /// 105: the device is the root system device.
    Rootdev,
    /// 109: the snapshot chain is too long.
    SnapshotChainTooLong,
    /// 110: resizing a VDI failed.
    VdiResize,
    /// 144: the VDI could not be found (xapi reports `VDI_MISSING`).
    VdiMissing,
    /// 181: an SR metadata operation failed.
    MetadataError,
    /// 200: a general I/O error.
    Eio,
    /// 202: a general backend error.
    SmGeneral,
    /// 220: an ISO SR's `device_config:location` is missing.
    IsoDconfMissingLocation,
    /// 221: an ISO name must end in `.iso`.
    IsoMustHaveIsoExtension,
    /// 226: an ISO SR's local path is invalid.
    IsoLocalPath,
    /// A code this enum does not name (kept as the number).
    Other(u32),
}

impl ErrorCode {
    /// The number xapi appends to `SR_BACKEND_FAILURE_`.
    pub fn number(self) -> u32 {
        match self {
            Self::InvalidArg => 1,
            Self::SrInUse => 16,
            Self::InvalidDev => 19,
            Self::VdiInUse => 24,
            Self::LockErr => 37,
            Self::Unimplemented => 38,
            Self::SrNotEmpty => 39,
            Self::SrScan => 40,
            Self::SrExists => 42,
            Self::VdiExists => 43,
            Self::SrNoSpace => 44,
            Self::VdiUnavailable => 46,
            Self::SrUnavailable => 47,
            Self::FileSrCreate => 61,
            Self::FileSrRmDir => 62,
            Self::FileSrDelete => 63,
            Self::VdiRemove => 64,
            Self::VdiLoad => 65,
            Self::VdiType => 66,
            Self::VdiCreate => 78,
            Self::VdiSize => 79,
            Self::VdiDelete => 80,
            Self::VdiClone => 81,
            Self::VdiSnapshot => 82,
            Self::ConfigDeviceMissing => 90,
            Self::ConfigDeviceInvalid => 91,
            Self::ConfigLocationMissing => 94,
            Self::Rootdev => 105,
            Self::SnapshotChainTooLong => 109,
            Self::VdiResize => 110,
            Self::VdiMissing => 144,
            Self::MetadataError => 181,
            Self::Eio => 200,
            Self::SmGeneral => 202,
            Self::IsoDconfMissingLocation => 220,
            Self::IsoMustHaveIsoExtension => 221,
            Self::IsoLocalPath => 226,
            Self::Other(n) => n,
        }
    }

    /// The code for `number`, named when this enum knows it.
    pub fn from_number(number: u32) -> Self {
        const NAMED: [ErrorCode; 37] = [
            ErrorCode::InvalidArg,
            ErrorCode::SrInUse,
            ErrorCode::InvalidDev,
            ErrorCode::VdiInUse,
            ErrorCode::LockErr,
            ErrorCode::Unimplemented,
            ErrorCode::SrNotEmpty,
            ErrorCode::SrScan,
            ErrorCode::SrExists,
            ErrorCode::VdiExists,
            ErrorCode::SrNoSpace,
            ErrorCode::VdiUnavailable,
            ErrorCode::SrUnavailable,
            ErrorCode::FileSrCreate,
            ErrorCode::FileSrRmDir,
            ErrorCode::FileSrDelete,
            ErrorCode::VdiRemove,
            ErrorCode::VdiLoad,
            ErrorCode::VdiType,
            ErrorCode::VdiCreate,
            ErrorCode::VdiSize,
            ErrorCode::VdiDelete,
            ErrorCode::VdiClone,
            ErrorCode::VdiSnapshot,
            ErrorCode::ConfigDeviceMissing,
            ErrorCode::ConfigDeviceInvalid,
            ErrorCode::ConfigLocationMissing,
            ErrorCode::Rootdev,
            ErrorCode::SnapshotChainTooLong,
            ErrorCode::VdiResize,
            ErrorCode::VdiMissing,
            ErrorCode::MetadataError,
            ErrorCode::Eio,
            ErrorCode::SmGeneral,
            ErrorCode::IsoDconfMissingLocation,
            ErrorCode::IsoMustHaveIsoExtension,
            ErrorCode::IsoLocalPath,
        ];
        NAMED
            .into_iter()
            .find(|code| code.number() == number)
            .unwrap_or(Self::Other(number))
    }

    /// Upstream's short description of the code (our wording), used as the error's reason
    /// when the driver gives none.
    pub fn description(self) -> &'static str {
        match self {
            Self::InvalidArg => "invalid argument",
            Self::SrInUse => "the SR device is in use",
            Self::InvalidDev => "no such device",
            Self::VdiInUse => "the VDI is in use",
            Self::LockErr => "the lock or unlock request failed",
            Self::Unimplemented => "the operation is not implemented by this backend",
            Self::SrNotEmpty => "the SR is not empty",
            Self::SrScan => "the SR scan failed",
            Self::SrExists => "the SR already exists",
            Self::VdiExists => "the VDI already exists",
            Self::SrNoSpace => "there is not enough space",
            Self::VdiUnavailable => "the VDI is not available",
            Self::SrUnavailable => "the SR is not available",
            Self::FileSrCreate => "file SR creation failed",
            Self::FileSrRmDir => "file SR failed to remove its directory",
            Self::FileSrDelete => "file SR deletion failed",
            Self::VdiRemove => "removing the VDI failed",
            Self::VdiLoad => "loading the VDI failed",
            Self::VdiType => "invalid VDI type",
            Self::VdiCreate => "VDI creation failed",
            Self::VdiSize => "invalid VDI size",
            Self::VdiDelete => "marking the VDI hidden failed",
            Self::VdiClone => "cloning the VDI failed",
            Self::VdiSnapshot => "snapshotting the VDI failed",
            Self::ConfigDeviceMissing => "the device parameter is missing",
            Self::ConfigDeviceInvalid => "the device is not a valid path",
            Self::ConfigLocationMissing => "the location parameter is missing",
            Self::Rootdev => "the root system device cannot hold VM storage",
            Self::SnapshotChainTooLong => "the snapshot chain is too long",
            Self::VdiResize => "VDI resize failed",
            Self::VdiMissing => "the VDI could not be found",
            Self::MetadataError => "SR metadata operation failed",
            Self::Eio => "general I/O error",
            Self::SmGeneral => "general backend error",
            Self::IsoDconfMissingLocation => "the location parameter must be given",
            Self::IsoMustHaveIsoExtension => "ISO name must end in .iso",
            Self::IsoLocalPath => "invalid local path",
            Self::Other(_) => "backend error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// How xapi reports an SM failure: most codes as `SR_BACKEND_FAILURE_<n>`, five special ones
/// as their own XenAPI errors. The daemon turns this into an API error; `sm` never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XapiMapping {
    /// 38: `UNIMPLEMENTED_IN_SM_BACKEND`.
    UnimplementedInSmBackend,
    /// 39: `SR_NOT_EMPTY`.
    SrNotEmpty,
    /// 24: `VDI_IN_USE`.
    VdiInUse,
    /// 16: `SR_DEVICE_IN_USE`.
    SrDeviceInUse,
    /// 144: `VDI_MISSING(sr, vdi)`.
    VdiMissing,
    /// Everything else: `SR_BACKEND_FAILURE_<n>` with params `["", reason, ""]`.
    BackendFailure(u32),
}

/// A failed storage operation: the backend code and a reason for the operator.
#[derive(Debug, thiserror::Error)]
#[error("sm error {code}: {reason}")]
pub struct SmError {
    /// The backend error code.
    pub code: ErrorCode,
    /// Human-readable detail (the second parameter of `SR_BACKEND_FAILURE_<n>`).
    pub reason: String,
}

impl SmError {
    /// An error with `code` and a specific `reason`.
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// An error with `code` and its standard description.
    pub fn code(code: ErrorCode) -> Self {
        Self::new(code, code.description())
    }

    /// Code 38 for an operation the driver does not offer.
    pub fn unimplemented(operation: &str) -> Self {
        Self::new(ErrorCode::Unimplemented, operation)
    }

    /// Code 144 for a VDI the SR does not hold.
    pub fn vdi_missing(vdi_uuid: &str) -> Self {
        Self::new(ErrorCode::VdiMissing, format!("no VDI {vdi_uuid}"))
    }

    /// Wraps an I/O failure under `code`, keeping the OS message as the reason.
    pub fn io(code: ErrorCode, context: &str, err: &std::io::Error) -> Self {
        Self::new(code, format!("{context}: {err}"))
    }

    /// How xapi reports this error.
    pub fn xapi_mapping(&self) -> XapiMapping {
        match self.code.number() {
            38 => XapiMapping::UnimplementedInSmBackend,
            39 => XapiMapping::SrNotEmpty,
            24 => XapiMapping::VdiInUse,
            16 => XapiMapping::SrDeviceInUse,
            144 => XapiMapping::VdiMissing,
            n => XapiMapping::BackendFailure(n),
        }
    }
}

/// Result alias for SM operations.
pub type SmResult<T> = Result<T, SmError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_through_from_number() {
        for n in [1, 16, 24, 38, 39, 44, 47, 80, 109, 144, 202, 226] {
            assert_eq!(ErrorCode::from_number(n).number(), n);
            assert!(!matches!(ErrorCode::from_number(n), ErrorCode::Other(_)));
        }
        assert_eq!(ErrorCode::from_number(4242), ErrorCode::Other(4242));
    }

    #[test]
    fn the_five_special_codes_map_to_their_own_api_errors() {
        let map = |code| SmError::code(code).xapi_mapping();
        assert_eq!(
            map(ErrorCode::Unimplemented),
            XapiMapping::UnimplementedInSmBackend
        );
        assert_eq!(map(ErrorCode::SrNotEmpty), XapiMapping::SrNotEmpty);
        assert_eq!(map(ErrorCode::VdiInUse), XapiMapping::VdiInUse);
        assert_eq!(map(ErrorCode::SrInUse), XapiMapping::SrDeviceInUse);
        assert_eq!(map(ErrorCode::VdiMissing), XapiMapping::VdiMissing);
        assert_eq!(map(ErrorCode::SrNoSpace), XapiMapping::BackendFailure(44));
        assert_eq!(
            SmError::code(ErrorCode::Other(999)).xapi_mapping(),
            XapiMapping::BackendFailure(999)
        );
    }

    #[test]
    fn display_names_code_and_reason() {
        let err = SmError::new(ErrorCode::VdiCreate, "disk full");
        assert_eq!(err.to_string(), "sm error 78: disk full");
    }
}
