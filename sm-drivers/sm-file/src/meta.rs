//! The per-SR sidecar file `.sr-metadata.json`: what a VHD cannot hold about a VDI (name,
//! description, type, snapshot facts, sm_config), so a scan rebuilds the VDI list without the
//! database. Written atomically (temporary file, fsync, rename). Never opens a VHD.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sm::{ErrorCode, SmConfig, SmError, SmResult};

/// File name of the sidecar inside the SR directory.
pub const METADATA_FILE: &str = ".sr-metadata.json";

/// What the sidecar records about one VDI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VdiMeta {
    /// `VDI.name_label`.
    pub name_label: String,
    /// `VDI.name_description`.
    pub name_description: String,
    /// `VDI.type` wire name.
    pub vdi_type: String,
    /// `VDI.read_only`.
    pub read_only: bool,
    /// `VDI.sharable`.
    pub sharable: bool,
    /// `VDI.is_a_snapshot`.
    pub is_a_snapshot: bool,
    /// `VDI.snapshot_of` (uuid).
    pub snapshot_of: Option<String>,
    /// `VDI.snapshot_time` (seconds since the epoch).
    pub snapshot_time: Option<u64>,
    /// Caller-supplied `sm_config` keys.
    pub sm_config: SmConfig,
}

/// The whole sidecar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SrMeta {
    /// The SR's uuid, as `sr_probe` reports it.
    pub sr_uuid: String,
    /// Per-VDI facts, by VDI uuid.
    pub vdis: BTreeMap<String, VdiMeta>,
}

fn meta_error(context: &str, err: impl std::fmt::Display) -> SmError {
    SmError::new(ErrorCode::MetadataError, format!("{context}: {err}"))
}

/// The sidecar path in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(METADATA_FILE)
}

impl SrMeta {
    /// Loads the sidecar of `dir`; `None` when there is none.
    pub fn load(dir: &Path) -> SmResult<Option<Self>> {
        let path = path_in(dir);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(meta_error("reading SR metadata", err)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|err| meta_error("parsing SR metadata", err))
    }

    /// Writes the sidecar atomically.
    pub fn save(&self, dir: &Path) -> SmResult<()> {
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| meta_error("encoding SR metadata", e))?;
        let tmp = dir.join(format!("{METADATA_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path_in(dir))?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|err| meta_error("writing SR metadata", err))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn sidecar_round_trips_and_absent_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(SrMeta::load(dir.path()).unwrap(), None);
        let mut meta = SrMeta {
            sr_uuid: "sr".into(),
            ..SrMeta::default()
        };
        meta.vdis.insert(
            "v".into(),
            VdiMeta {
                name_label: "disk 0".into(),
                is_a_snapshot: true,
                snapshot_of: Some("w".into()),
                ..VdiMeta::default()
            },
        );
        meta.save(dir.path()).unwrap();
        assert_eq!(SrMeta::load(dir.path()).unwrap(), Some(meta));
    }

    #[test]
    fn corrupt_sidecar_is_a_metadata_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path_in(dir.path()), b"{not json").unwrap();
        let err = SrMeta::load(dir.path()).unwrap_err();
        assert_eq!(err.code, ErrorCode::MetadataError);
    }
}
