//! `VhdDriver`: the `SrDriver` implementation shared by every SR type that keeps VHD files in
//! a directory, parameterised by a [`Substrate`] that says where the directory comes from
//! (a plain path for `file`, a mounted ext4 device for `ext`). Owns the map of attached SRs;
//! all VDI work is delegated to [`VhdSr`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use sm::{
    AttachResult, DeviceConfig, DriverInfo, ErrorCode, GcReport, ProbedSr, ScanResult, SmConfig,
    SmError, SmResult, SrContext, SrDriver, SrStats, StorageDb, VdiCreate, VdiId, VdiInfo,
    VdiIntroduce,
};

use crate::vhdsr::VhdSr;

/// Where an SR's VHD directory lives and how to bring it up and down.
pub trait Substrate: Send + Sync {
    /// The driver's `sr_get_driver_info`.
    fn info(&self) -> DriverInfo;
    /// `xenstore_data:storage-type` for attached VDIs.
    fn storage_type(&self) -> &'static str;
    /// Prepares new, empty storage (`sr_create`).
    fn create(&self, sr: &SrContext) -> SmResult<()>;
    /// Makes the directory available (mounting if needed) and returns it.
    fn mount(&self, sr: &SrContext) -> SmResult<PathBuf>;
    /// Undoes `mount`.
    fn unmount(&self, sr: &SrContext) -> SmResult<()>;
    /// Releases the storage after its contents were removed (`sr_delete`).
    fn destroy(&self, sr: &SrContext) -> SmResult<()>;
    /// `sr_probe`.
    fn probe(&self, device_config: &DeviceConfig) -> SmResult<Vec<ProbedSr>>;
}

/// Settings shared by the VHD drivers.
#[derive(Debug, Clone)]
pub struct VhdConfig {
    /// Directory for the NBD unix sockets of active VDIs.
    pub socket_dir: PathBuf,
}

/// An `SrDriver` over VHD files in a directory supplied by `S`.
pub struct VhdDriver<S> {
    substrate: S,
    config: VhdConfig,
    db: Arc<dyn StorageDb>,
    attached: Mutex<BTreeMap<String, Arc<VhdSr>>>,
}

impl<S> std::fmt::Debug for VhdDriver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhdDriver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: Substrate> VhdDriver<S> {
    /// A driver over `substrate`, recording VDIs in `db`.
    pub fn new(substrate: S, config: VhdConfig, db: Arc<dyn StorageDb>) -> Self {
        Self {
            substrate,
            config,
            db,
            attached: Mutex::new(BTreeMap::new()),
        }
    }

    fn attached(&self) -> MutexGuard<'_, BTreeMap<String, Arc<VhdSr>>> {
        // A map updated in single steps: consistent even after a panic elsewhere.
        self.attached.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The attached SR `sr_uuid`.
    pub fn sr(&self, sr_uuid: &str) -> SmResult<Arc<VhdSr>> {
        self.attached().get(sr_uuid).cloned().ok_or_else(|| {
            SmError::new(
                ErrorCode::SrUnavailable,
                format!("SR {sr_uuid} is not attached"),
            )
        })
    }

    fn open(&self, sr: &SrContext, dir: &Path) -> SmResult<VhdSr> {
        VhdSr::open(
            dir,
            &sr.sr_uuid,
            &self.config.socket_dir,
            self.substrate.storage_type(),
            Arc::clone(&self.db),
        )
    }
}

impl<S: Substrate> SrDriver for VhdDriver<S> {
    fn info(&self) -> DriverInfo {
        self.substrate.info()
    }

    fn sr_create(&self, sr: &SrContext, _physical_size: u64) -> SmResult<()> {
        self.substrate.create(sr)?;
        let dir = self.substrate.mount(sr)?;
        let result = VhdSr::initialise(&dir, &sr.sr_uuid);
        self.substrate.unmount(sr)?;
        result
    }

    fn sr_delete(&self, sr: &SrContext) -> SmResult<()> {
        let was_attached = self.attached().contains_key(&sr.sr_uuid);
        if !was_attached {
            self.sr_attach(sr)?;
        }
        let vsr = self.sr(&sr.sr_uuid)?;
        let result = crate::gc::collect(&vsr, false).and_then(|_| vsr.destroy_contents());
        drop(vsr);
        self.sr_detach(sr)?;
        result?;
        self.substrate.destroy(sr)
    }

    fn sr_attach(&self, sr: &SrContext) -> SmResult<()> {
        if self.attached().contains_key(&sr.sr_uuid) {
            return Ok(());
        }
        let dir = self.substrate.mount(sr)?;
        match self.open(sr, &dir) {
            Ok(vsr) => {
                self.attached().insert(sr.sr_uuid.clone(), Arc::new(vsr));
                Ok(())
            }
            Err(err) => {
                let _ = self.substrate.unmount(sr);
                Err(err)
            }
        }
    }

    fn sr_detach(&self, sr: &SrContext) -> SmResult<()> {
        let Some(vsr) = self.attached().get(&sr.sr_uuid).cloned() else {
            return Ok(());
        };
        if vsr.has_active() {
            return Err(SmError::new(ErrorCode::SrInUse, "VDIs are still active"));
        }
        self.attached().remove(&sr.sr_uuid);
        self.substrate.unmount(sr)
    }

    fn sr_probe(
        &self,
        device_config: &DeviceConfig,
        _sm_config: &SmConfig,
    ) -> SmResult<Vec<ProbedSr>> {
        self.substrate.probe(device_config)
    }

    fn sr_scan(&self, sr: &SrContext) -> SmResult<ScanResult> {
        self.sr(&sr.sr_uuid)?.scan()
    }

    fn sr_update(&self, sr: &SrContext) -> SmResult<SrStats> {
        self.sr(&sr.sr_uuid)?.stats()
    }

    fn vdi_create(&self, sr: &SrContext, request: &VdiCreate) -> SmResult<VdiInfo> {
        self.sr(&sr.sr_uuid)?.vdi_create(request)
    }

    fn vdi_delete(&self, sr: &SrContext, vdi: &VdiId) -> SmResult<()> {
        self.sr(&sr.sr_uuid)?.vdi_delete(&vdi.location)
    }

    fn vdi_attach(&self, sr: &SrContext, vdi: &VdiId, writable: bool) -> SmResult<AttachResult> {
        self.sr(&sr.sr_uuid)?.vdi_attach(&vdi.location, writable)
    }

    fn vdi_activate(&self, sr: &SrContext, vdi: &VdiId, writable: bool) -> SmResult<AttachResult> {
        self.sr(&sr.sr_uuid)?.vdi_activate(&vdi.location, writable)
    }

    fn vdi_deactivate(&self, sr: &SrContext, vdi: &VdiId) -> SmResult<()> {
        self.sr(&sr.sr_uuid)?.vdi_deactivate(&vdi.location)
    }

    fn vdi_detach(&self, sr: &SrContext, vdi: &VdiId) -> SmResult<()> {
        // Attach only validated; there is nothing to undo.
        let _ = (self.sr(&sr.sr_uuid)?, vdi);
        Ok(())
    }

    fn vdi_snapshot(
        &self,
        sr: &SrContext,
        vdi: &VdiId,
        _driver_params: &BTreeMap<String, String>,
    ) -> SmResult<VdiInfo> {
        self.sr(&sr.sr_uuid)?.vdi_snapshot(&vdi.location, true)
    }

    fn vdi_clone(
        &self,
        sr: &SrContext,
        vdi: &VdiId,
        _driver_params: &BTreeMap<String, String>,
    ) -> SmResult<VdiInfo> {
        self.sr(&sr.sr_uuid)?.vdi_snapshot(&vdi.location, false)
    }

    fn vdi_resize(&self, sr: &SrContext, vdi: &VdiId, new_size: u64) -> SmResult<VdiInfo> {
        self.sr(&sr.sr_uuid)?
            .vdi_resize(&vdi.location, new_size, false)
    }

    fn vdi_resize_online(&self, sr: &SrContext, vdi: &VdiId, new_size: u64) -> SmResult<VdiInfo> {
        self.sr(&sr.sr_uuid)?
            .vdi_resize(&vdi.location, new_size, true)
    }

    fn vdi_introduce(&self, sr: &SrContext, request: &VdiIntroduce) -> SmResult<VdiInfo> {
        self.sr(&sr.sr_uuid)?.vdi_introduce(request)
    }

    fn vdi_update(&self, sr: &SrContext, vdi: &VdiId) -> SmResult<()> {
        self.sr(&sr.sr_uuid)?.vdi_update(&vdi.location)
    }

    fn vdi_generate_config(&self, sr: &SrContext, vdi: &VdiId) -> SmResult<String> {
        self.sr(&sr.sr_uuid)?.vdi_generate_config(&vdi.location)
    }

    fn sr_gc(&self, sr: &SrContext) -> SmResult<GcReport> {
        let vsr = self.sr(&sr.sr_uuid)?;
        crate::gc::collect(&vsr, true)
    }
}
