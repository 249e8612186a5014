//! `StorageDb`: the narrow callback through which drivers read and record VDI metadata instead
//! of touching the object store, and `MemoryDb`, an in-memory implementation for tests and the
//! dummy driver. The daemon implements the trait over its database; drivers never see it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::{ErrorCode, SmError, SmResult};
use crate::types::VdiInfo;

/// VDI records as the storage database holds them, keyed by SR uuid and VDI uuid.
///
/// Drivers record what upstream drivers write through the XenAPI: new VDIs from create,
/// snapshot, clone and introduce (and the hidden base copies with `managed = false`), changes
/// from resize and coalesce, and removals from delete, scan and garbage collection.
pub trait StorageDb: Send + Sync {
    /// The record of `vdi_uuid` in `sr_uuid`, if any.
    fn vdi(&self, sr_uuid: &str, vdi_uuid: &str) -> SmResult<Option<VdiInfo>>;
    /// Every VDI record of `sr_uuid`.
    fn vdis(&self, sr_uuid: &str) -> SmResult<Vec<VdiInfo>>;
    /// Creates or replaces the record of `vdi.uuid` in `sr_uuid`.
    fn record_vdi(&self, sr_uuid: &str, vdi: &VdiInfo) -> SmResult<()>;
    /// Removes the record of `vdi_uuid`; absent records are fine.
    fn forget_vdi(&self, sr_uuid: &str, vdi_uuid: &str) -> SmResult<()>;

    /// The record in `sr_uuid` whose location is `location`.
    fn vdi_by_location(&self, sr_uuid: &str, location: &str) -> SmResult<Option<VdiInfo>> {
        Ok(self
            .vdis(sr_uuid)?
            .into_iter()
            .find(|vdi| vdi.location == location))
    }
}

/// A `StorageDb` in memory.
#[derive(Debug, Default)]
pub struct MemoryDb {
    srs: Mutex<BTreeMap<String, BTreeMap<String, VdiInfo>>>,
}

impl MemoryDb {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(
        &self,
    ) -> SmResult<std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<String, VdiInfo>>>> {
        self.srs
            .lock()
            .map_err(|_| SmError::new(ErrorCode::SmGeneral, "storage database lock poisoned"))
    }
}

impl StorageDb for MemoryDb {
    fn vdi(&self, sr_uuid: &str, vdi_uuid: &str) -> SmResult<Option<VdiInfo>> {
        Ok(self
            .lock()?
            .get(sr_uuid)
            .and_then(|vdis| vdis.get(vdi_uuid))
            .cloned())
    }

    fn vdis(&self, sr_uuid: &str) -> SmResult<Vec<VdiInfo>> {
        Ok(self
            .lock()?
            .get(sr_uuid)
            .map(|vdis| vdis.values().cloned().collect())
            .unwrap_or_default())
    }

    fn record_vdi(&self, sr_uuid: &str, vdi: &VdiInfo) -> SmResult<()> {
        self.lock()?
            .entry(sr_uuid.to_owned())
            .or_default()
            .insert(vdi.uuid.clone(), vdi.clone());
        Ok(())
    }

    fn forget_vdi(&self, sr_uuid: &str, vdi_uuid: &str) -> SmResult<()> {
        if let Some(vdis) = self.lock()?.get_mut(sr_uuid) {
            vdis.remove(vdi_uuid);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn records_are_kept_per_sr_and_found_by_location() {
        let db = MemoryDb::new();
        let vdi = VdiInfo {
            uuid: "v1".into(),
            location: "disk.iso".into(),
            ..VdiInfo::default()
        };
        db.record_vdi("sr1", &vdi).unwrap();
        assert_eq!(db.vdi("sr1", "v1").unwrap(), Some(vdi.clone()));
        assert_eq!(db.vdi("sr2", "v1").unwrap(), None);
        assert_eq!(
            db.vdi_by_location("sr1", "disk.iso")
                .unwrap()
                .map(|v| v.uuid),
            Some("v1".into())
        );
        db.forget_vdi("sr1", "v1").unwrap();
        assert!(db.vdis("sr1").unwrap().is_empty());
    }
}
