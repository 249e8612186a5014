//! `SrDriver`: the SMAPIv1 operation set as a blocking Rust trait. One value serves every SR of
//! its type; operations name SRs and VDIs by uuid and never see XenAPI types. The daemon calls
//! these from `spawn_blocking` and serialises operations on one SR as upstream's SR lock does.
//!
//! ```text
//! SR:  sr_create ─▶ sr_attach ─▶ (sr_scan | sr_update | vdi_* ...) ─▶ sr_detach ─▶ sr_delete
//! VDI: vdi_create ─▶ vdi_attach ─▶ vdi_activate ─▶ I/O ─▶ vdi_deactivate ─▶ vdi_detach ─▶ vdi_delete
//! ```

use std::collections::BTreeMap;

use crate::capability::DriverInfo;
use crate::error::{SmError, SmResult};
use crate::types::{
    AttachResult, DeviceConfig, GcReport, ProbedSr, ScanResult, SmConfig, SrContext, SrStats,
    VdiCreate, VdiId, VdiInfo, VdiIntroduce,
};

/// A storage driver for one SR type. Optional operations default to code 38 (unimplemented),
/// which xapi reports as `UNIMPLEMENTED_IN_SM_BACKEND`.
pub trait SrDriver: Send + Sync {
    /// `sr_get_driver_info`: name, capabilities and configuration keys (the `SM` record).
    fn info(&self) -> DriverInfo;

    /// `sr_create`: initialise new storage for the SR (`physical_size` is a hint, may be 0).
    fn sr_create(&self, sr: &SrContext, physical_size: u64) -> SmResult<()>;

    /// `sr_delete`: destroy the storage; fails with 39 (`SR_NOT_EMPTY`) while VDIs remain.
    fn sr_delete(&self, sr: &SrContext) -> SmResult<()>;

    /// `sr_attach`: make the SR usable on this host (mount, recover journals).
    fn sr_attach(&self, sr: &SrContext) -> SmResult<()>;

    /// `sr_detach`: undo `sr_attach`; fails with 16 (`SR_DEVICE_IN_USE`) while VDIs are active.
    fn sr_detach(&self, sr: &SrContext) -> SmResult<()>;

    /// `sr_probe`: list the SRs found on the storage described by `device_config`.
    fn sr_probe(
        &self,
        device_config: &DeviceConfig,
        sm_config: &SmConfig,
    ) -> SmResult<Vec<ProbedSr>> {
        let _ = (device_config, sm_config);
        Err(SmError::unimplemented("sr_probe"))
    }

    /// `sr_scan`: rebuild the VDI list from the storage and record it in the storage database.
    fn sr_scan(&self, sr: &SrContext) -> SmResult<ScanResult>;

    /// `sr_update`: recompute the SR's sizes.
    fn sr_update(&self, sr: &SrContext) -> SmResult<SrStats> {
        let _ = sr;
        Err(SmError::unimplemented("sr_update"))
    }

    /// `vdi_create`: a new, empty VDI.
    fn vdi_create(&self, sr: &SrContext, request: &VdiCreate) -> SmResult<VdiInfo> {
        let _ = (sr, request);
        Err(SmError::unimplemented("vdi_create"))
    }

    /// `vdi_delete`: remove the VDI (or hide it while its children need it).
    fn vdi_delete(&self, sr: &SrContext, vdi: &VdiId) -> SmResult<()> {
        let _ = (sr, vdi);
        Err(SmError::unimplemented("vdi_delete"))
    }

    /// `vdi_attach`: prepare the VDI for I/O and say where its data path will be.
    fn vdi_attach(&self, sr: &SrContext, vdi: &VdiId, writable: bool) -> SmResult<AttachResult>;

    /// `vdi_activate`: start serving the VDI's data; returns the data path to connect to.
    fn vdi_activate(&self, sr: &SrContext, vdi: &VdiId, writable: bool) -> SmResult<AttachResult>;

    /// `vdi_deactivate`: stop serving the VDI's data, flushing it.
    fn vdi_deactivate(&self, sr: &SrContext, vdi: &VdiId) -> SmResult<()>;

    /// `vdi_detach`: undo `vdi_attach`.
    fn vdi_detach(&self, sr: &SrContext, vdi: &VdiId) -> SmResult<()>;

    /// `vdi_snapshot`: a read-only point-in-time copy; returns the new VDI.
    fn vdi_snapshot(
        &self,
        sr: &SrContext,
        vdi: &VdiId,
        driver_params: &BTreeMap<String, String>,
    ) -> SmResult<VdiInfo> {
        let _ = (sr, vdi, driver_params);
        Err(SmError::unimplemented("vdi_snapshot"))
    }

    /// `vdi_clone`: a writable copy; returns the new VDI.
    fn vdi_clone(
        &self,
        sr: &SrContext,
        vdi: &VdiId,
        driver_params: &BTreeMap<String, String>,
    ) -> SmResult<VdiInfo> {
        let _ = (sr, vdi, driver_params);
        Err(SmError::unimplemented("vdi_clone"))
    }

    /// `vdi_resize`: grow an inactive VDI to at least `new_size` bytes.
    fn vdi_resize(&self, sr: &SrContext, vdi: &VdiId, new_size: u64) -> SmResult<VdiInfo> {
        let _ = (sr, vdi, new_size);
        Err(SmError::unimplemented("vdi_resize"))
    }

    /// `vdi_resize_online`: grow an active VDI.
    fn vdi_resize_online(&self, sr: &SrContext, vdi: &VdiId, new_size: u64) -> SmResult<VdiInfo> {
        let _ = (sr, vdi, new_size);
        Err(SmError::unimplemented("vdi_resize_online"))
    }

    /// `vdi_introduce`: adopt an existing VDI under a given uuid.
    fn vdi_introduce(&self, sr: &SrContext, request: &VdiIntroduce) -> SmResult<VdiInfo> {
        let _ = (sr, request);
        Err(SmError::unimplemented("vdi_introduce"))
    }

    /// `vdi_update`: push the database's view of the VDI (name, description) to the storage.
    fn vdi_update(&self, sr: &SrContext, vdi: &VdiId) -> SmResult<()> {
        let _ = (sr, vdi);
        Err(SmError::unimplemented("vdi_update"))
    }

    /// `vdi_generate_config`: the text a remote host needs to attach the VDI without the
    /// database (used for HA statefiles and redo logs).
    fn vdi_generate_config(&self, sr: &SrContext, vdi: &VdiId) -> SmResult<String> {
        let _ = (sr, vdi);
        Err(SmError::unimplemented("vdi_generate_config"))
    }

    /// Garbage collection and coalescing for the SR; the daemon runs it in the background
    /// after scans and deletes. Drivers without chains have nothing to do.
    fn sr_gc(&self, sr: &SrContext) -> SmResult<GcReport> {
        let _ = sr;
        Ok(GcReport::default())
    }
}
