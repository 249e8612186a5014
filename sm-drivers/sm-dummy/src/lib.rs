//! The `dummy` SR type: every VDI is a record in memory with no data behind it, so daemon and
//! system tests exercise SR/VDI/VBD semantics instantly. Attach yields `DataPath::Null`.
//! State lasts as long as the driver value; nothing touches a disk.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sm::{
    AttachResult, Capability, DataPath, DriverInfo, ErrorCode, ProbedSr, ScanResult, SmConfig,
    SmError, SmResult, SrContext, SrDriver, SrStats, StorageDb, VdiCreate, VdiId, VdiInfo,
    VdiIntroduce,
};

/// Upstream DummySR's capabilities (less `VDI_MIRROR`).
pub const CAPABILITIES: [Capability; 11] = [
    Capability::SrProbe,
    Capability::VdiCreate,
    Capability::VdiDelete,
    Capability::VdiAttach,
    Capability::VdiDetach,
    Capability::VdiActivate,
    Capability::VdiDeactivate,
    Capability::VdiClone,
    Capability::VdiSnapshot,
    Capability::VdiResize,
    Capability::VdiIntroduce,
];

/// Size the dummy SR reports (upstream's DummySR reports 2 TB).
pub const PHYSICAL_SIZE: u64 = 2_000_000_000_000;

/// The `dummy` driver.
pub struct DummyDriver {
    db: Arc<dyn StorageDb>,
    vdis: Mutex<BTreeMap<String, BTreeMap<String, VdiInfo>>>,
}

impl std::fmt::Debug for DummyDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DummyDriver").finish_non_exhaustive()
    }
}

impl DummyDriver {
    /// A dummy driver recording VDIs in `db`.
    pub fn new(db: Arc<dyn StorageDb>) -> Self {
        Self {
            db,
            vdis: Mutex::new(BTreeMap::new()),
        }
    }

    fn vdis(&self) -> MutexGuard<'_, BTreeMap<String, BTreeMap<String, VdiInfo>>> {
        // Maps updated in single steps: consistent even after a panic elsewhere.
        self.vdis.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, sr: &SrContext, uuid: &str) -> SmResult<VdiInfo> {
        self.vdis()
            .get(&sr.sr_uuid)
            .and_then(|vdis| vdis.get(uuid))
            .cloned()
            .ok_or_else(|| SmError::vdi_missing(uuid))
    }

    fn put(&self, sr: &SrContext, info: VdiInfo) -> SmResult<VdiInfo> {
        self.db.record_vdi(&sr.sr_uuid, &info)?;
        self.vdis()
            .entry(sr.sr_uuid.clone())
            .or_default()
            .insert(info.uuid.clone(), info.clone());
        Ok(info)
    }

    fn copy(&self, sr: &SrContext, vdi: &VdiId, snapshot: bool) -> SmResult<VdiInfo> {
        let original = self.get(sr, &vdi.uuid)?;
        let uuid = uuid::Uuid::new_v4().to_string();
        self.put(
            sr,
            VdiInfo {
                location: uuid.clone(),
                uuid,
                read_only: snapshot,
                is_a_snapshot: snapshot,
                snapshot_of: snapshot.then(|| original.uuid.clone()),
                ..original
            },
        )
    }
}

impl SrDriver for DummyDriver {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            sr_type: "dummy",
            name: "dummy",
            description: "SR plugin which manages fake data",
            vendor: "xapi-rs",
            copyright: "(C) xapi-rs contributors",
            version: "1.0",
            required_api_version: "1.1",
            capabilities: CAPABILITIES.to_vec(),
            configuration: Vec::new(),
        }
    }

    fn sr_create(&self, sr: &SrContext, _physical_size: u64) -> SmResult<()> {
        self.vdis().entry(sr.sr_uuid.clone()).or_default();
        Ok(())
    }

    fn sr_delete(&self, sr: &SrContext) -> SmResult<()> {
        let mut vdis = self.vdis();
        if vdis.get(&sr.sr_uuid).is_some_and(|v| !v.is_empty()) {
            return Err(SmError::code(ErrorCode::SrNotEmpty));
        }
        vdis.remove(&sr.sr_uuid);
        Ok(())
    }

    fn sr_attach(&self, sr: &SrContext) -> SmResult<()> {
        self.vdis().entry(sr.sr_uuid.clone()).or_default();
        Ok(())
    }

    fn sr_detach(&self, _sr: &SrContext) -> SmResult<()> {
        Ok(())
    }

    fn sr_probe(
        &self,
        _device_config: &sm::DeviceConfig,
        _sm_config: &SmConfig,
    ) -> SmResult<Vec<ProbedSr>> {
        Ok(Vec::new())
    }

    fn sr_scan(&self, sr: &SrContext) -> SmResult<ScanResult> {
        let vdis: Vec<VdiInfo> = self
            .vdis()
            .get(&sr.sr_uuid)
            .map(|v| v.values().cloned().collect())
            .unwrap_or_default();
        Ok(ScanResult {
            stats: SrStats {
                physical_size: PHYSICAL_SIZE,
                physical_utilisation: 0,
                virtual_allocation: vdis.iter().map(|v| v.virtual_size).sum(),
            },
            vdis,
        })
    }

    fn vdi_create(&self, sr: &SrContext, request: &VdiCreate) -> SmResult<VdiInfo> {
        let uuid = request
            .uuid
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if self.get(sr, &uuid).is_ok() {
            return Err(SmError::code(ErrorCode::VdiExists));
        }
        self.put(
            sr,
            VdiInfo {
                location: uuid.clone(),
                uuid,
                name_label: request.name_label.clone(),
                name_description: request.name_description.clone(),
                virtual_size: request.virtual_size,
                vdi_type: request.vdi_type.clone(),
                read_only: request.read_only,
                sharable: request.sharable,
                managed: true,
                sm_config: request.sm_config.clone(),
                ..VdiInfo::default()
            },
        )
    }

    fn vdi_delete(&self, sr: &SrContext, vdi: &VdiId) -> SmResult<()> {
        self.get(sr, &vdi.uuid)?;
        if let Some(vdis) = self.vdis().get_mut(&sr.sr_uuid) {
            vdis.remove(&vdi.uuid);
        }
        self.db.forget_vdi(&sr.sr_uuid, &vdi.uuid)
    }

    fn vdi_attach(&self, sr: &SrContext, vdi: &VdiId, writable: bool) -> SmResult<AttachResult> {
        self.get(sr, &vdi.uuid)?;
        Ok(AttachResult {
            data_path: DataPath::Null,
            read_only: !writable,
            xenstore_data: BTreeMap::new(),
        })
    }

    fn vdi_activate(&self, sr: &SrContext, vdi: &VdiId, writable: bool) -> SmResult<AttachResult> {
        self.vdi_attach(sr, vdi, writable)
    }

    fn vdi_deactivate(&self, _sr: &SrContext, _vdi: &VdiId) -> SmResult<()> {
        Ok(())
    }

    fn vdi_detach(&self, _sr: &SrContext, _vdi: &VdiId) -> SmResult<()> {
        Ok(())
    }

    fn vdi_snapshot(
        &self,
        sr: &SrContext,
        vdi: &VdiId,
        _driver_params: &BTreeMap<String, String>,
    ) -> SmResult<VdiInfo> {
        self.copy(sr, vdi, true)
    }

    fn vdi_clone(
        &self,
        sr: &SrContext,
        vdi: &VdiId,
        _driver_params: &BTreeMap<String, String>,
    ) -> SmResult<VdiInfo> {
        self.copy(sr, vdi, false)
    }

    fn vdi_resize(&self, sr: &SrContext, vdi: &VdiId, new_size: u64) -> SmResult<VdiInfo> {
        let mut info = self.get(sr, &vdi.uuid)?;
        info.virtual_size = info.virtual_size.max(new_size);
        self.put(sr, info)
    }

    fn vdi_introduce(&self, sr: &SrContext, request: &VdiIntroduce) -> SmResult<VdiInfo> {
        if self.get(sr, &request.uuid).is_ok() {
            return Err(SmError::code(ErrorCode::VdiExists));
        }
        self.put(
            sr,
            VdiInfo {
                uuid: request.uuid.clone(),
                location: request.location.clone(),
                name_label: request.name_label.clone(),
                name_description: request.name_description.clone(),
                vdi_type: request.vdi_type.clone(),
                managed: true,
                sm_config: request.sm_config.clone(),
                ..VdiInfo::default()
            },
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;
    use sm::MemoryDb;

    fn setup() -> (DummyDriver, Arc<MemoryDb>, SrContext) {
        let db = Arc::new(MemoryDb::new());
        let sr = SrContext::new("sr", Default::default());
        let driver = DummyDriver::new(db.clone());
        driver.sr_create(&sr, 0).unwrap();
        (driver, db, sr)
    }

    #[test]
    fn snapshot_is_a_read_only_copy_recorded_in_the_db() {
        let (driver, db, sr) = setup();
        let vdi = driver
            .vdi_create(
                &sr,
                &VdiCreate {
                    name_label: "d".into(),
                    virtual_size: 1 << 30,
                    ..VdiCreate::default()
                },
            )
            .unwrap();
        let snap = driver
            .vdi_snapshot(&sr, &VdiId::by_uuid(&vdi.uuid), &BTreeMap::new())
            .unwrap();
        assert!(snap.read_only && snap.is_a_snapshot);
        assert_eq!(snap.virtual_size, 1 << 30);
        assert_eq!(db.vdis("sr").unwrap().len(), 2);
        assert_eq!(
            driver.sr_scan(&sr).unwrap().stats.virtual_allocation,
            2 << 30
        );
    }

    #[test]
    fn non_empty_sr_cannot_be_deleted_and_missing_vdi_is_144() {
        let (driver, _db, sr) = setup();
        let vdi = driver.vdi_create(&sr, &VdiCreate::default()).unwrap();
        assert_eq!(driver.sr_delete(&sr).unwrap_err().code.number(), 39);
        driver.vdi_delete(&sr, &VdiId::by_uuid(&vdi.uuid)).unwrap();
        let err = driver
            .vdi_delete(&sr, &VdiId::by_uuid(&vdi.uuid))
            .unwrap_err();
        assert_eq!(err.code.number(), 144);
        driver.sr_delete(&sr).unwrap();
    }
}
