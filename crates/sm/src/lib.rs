//! The storage-manager layer below the daemon: the SMAPIv1 operation set as the [`SrDriver`]
//! trait, typed requests and results, [`DriverInfo`] from which the daemon makes `SM` records,
//! [`SmError`] with upstream's SR backend error numbering, and the [`StorageDb`] callback the
//! drivers use instead of the object store.
//!
//! This crate and the drivers never see XenAPI types: SRs and VDIs are named by uuid, errors
//! carry backend numbers, and every call blocks (the daemon uses `spawn_blocking`).

mod capability;
mod db;
mod driver;
mod error;
mod types;

pub use capability::{Capability, ConfigKey, DriverInfo};
pub use db::{MemoryDb, StorageDb};
pub use driver::SrDriver;
pub use error::{ErrorCode, SmError, SmResult, XapiMapping};
pub use types::{
    AttachResult, DataPath, DeviceConfig, GcReport, ProbedSr, ScanResult, SmConfig, SrContext,
    SrStats, VdiCreate, VdiId, VdiInfo, VdiIntroduce,
};

/// `VDI.sm_config` key naming a VHD's parent VDI uuid, as upstream's VHD SRs record it.
pub const SM_CONFIG_VHD_PARENT: &str = "vhd-parent";
/// `VDI.sm_config` key naming the VDI's on-disk format (`vhd`, `raw`, `aio`).
pub const SM_CONFIG_VDI_TYPE: &str = "vdi_type";
