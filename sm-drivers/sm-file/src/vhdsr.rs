//! `VhdSr`: one attached SR that keeps its VDIs as `<uuid>.vhd` files in a directory — the
//! engine shared by the `file` and `ext` drivers. Owns VDI create/delete/snapshot/clone/
//! resize/introduce, scans, the NBD exports of active VDIs and the SR lock that serialises
//! structural changes. Snapshot and clone follow upstream's VHD SRs: the leaf becomes a hidden
//! base copy and two new children are made, one keeping the VDI's uuid.
//!
//! ```text
//! before:  A(leaf)            after snapshot of A:   B(hidden) ─┬─ A (leaf, same uuid)
//!                                                                └─ S (the snapshot)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use nbd::{Export, Server};
use sm::{
    AttachResult, DataPath, ErrorCode, ScanResult, SmError, SmResult, SrStats, StorageDb,
    VdiCreate, VdiInfo, VdiIntroduce, SM_CONFIG_VDI_TYPE, SM_CONFIG_VHD_PARENT,
};
use tracing::{info, warn};

use crate::journal::{self, Intent};
use crate::meta::{SrMeta, VdiMeta};
use crate::tree::{self, checked_uuid, vhd_error, vhd_path, Node};

/// An active VDI: its NBD server and export.
struct Active {
    server: Server,
    export: Arc<Export>,
    writable: bool,
}

/// One attached VHD-file SR.
pub struct VhdSr {
    sr_uuid: String,
    dir: PathBuf,
    socket_dir: PathBuf,
    storage_type: &'static str,
    db: Arc<dyn StorageDb>,
    lock: Mutex<()>,
    active: Mutex<BTreeMap<String, Active>>,
}

impl std::fmt::Debug for VhdSr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhdSr")
            .field("sr_uuid", &self.sr_uuid)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent across panics (a unit, or a map updated in one step).
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn io_err(code: ErrorCode, context: &str) -> impl Fn(std::io::Error) -> SmError + '_ {
    move |err| SmError::io(code, context, &err)
}

/// Rounds a requested size up to whole 2 MiB VHD blocks and checks the VHD limits.
pub fn round_size(size: u64) -> SmResult<u64> {
    if size == 0 || size > vhd::MAX_VIRTUAL_SIZE {
        return Err(SmError::new(
            ErrorCode::VdiSize,
            format!("invalid size {size}"),
        ));
    }
    Ok(size.div_ceil(vhd::BLOCK_SIZE) * vhd::BLOCK_SIZE)
}

/// Physical size and utilisation of the filesystem holding `dir` (via `df`).
pub fn fs_stats(dir: &Path) -> SmResult<(u64, u64)> {
    let out = std::process::Command::new("df")
        .args(["-P", "-B1"])
        .arg(dir)
        .output()
        .map_err(io_err(ErrorCode::SrScan, "running df"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    match (
        fields.get(1).and_then(|s| s.parse().ok()),
        fields.get(2).and_then(|s| s.parse().ok()),
    ) {
        (Some(size), Some(used)) if out.status.success() => Ok((size, used)),
        _ => Err(SmError::new(ErrorCode::SrScan, format!("df gave {text:?}"))),
    }
}

impl VhdSr {
    /// Writes a fresh sidecar for a new SR in `dir`, which must hold no VHD files.
    pub fn initialise(dir: &Path, sr_uuid: &str) -> SmResult<()> {
        if !tree::list(dir)?.is_empty() {
            return Err(SmError::new(
                ErrorCode::SrExists,
                "directory already holds VDIs",
            ));
        }
        SrMeta {
            sr_uuid: sr_uuid.to_owned(),
            ..SrMeta::default()
        }
        .save(dir)
    }

    /// Opens the SR in `dir` and completes or rolls back interrupted operations. NBD sockets
    /// are made in `socket_dir`; `storage_type` goes to the VBD's xenstore data.
    pub fn open(
        dir: &Path,
        sr_uuid: &str,
        socket_dir: &Path,
        storage_type: &'static str,
        db: Arc<dyn StorageDb>,
    ) -> SmResult<Self> {
        if !dir.is_dir() {
            return Err(SmError::new(
                ErrorCode::SrUnavailable,
                format!("no directory {}", dir.display()),
            ));
        }
        std::fs::create_dir_all(socket_dir)
            .map_err(io_err(ErrorCode::SrUnavailable, "socket dir"))?;
        let sr = Self {
            sr_uuid: sr_uuid.to_owned(),
            dir: dir.to_path_buf(),
            socket_dir: socket_dir.to_path_buf(),
            storage_type,
            db,
            lock: Mutex::new(()),
            active: Mutex::new(BTreeMap::new()),
        };
        let guard = sr.lock_sr();
        sr.recover(&guard)?;
        drop(guard);
        Ok(sr)
    }

    /// The SR directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The SR uuid.
    pub fn sr_uuid(&self) -> &str {
        &self.sr_uuid
    }

    pub(crate) fn db(&self) -> &dyn StorageDb {
        self.db.as_ref()
    }

    pub(crate) fn lock_sr(&self) -> MutexGuard<'_, ()> {
        lock(&self.lock)
    }

    /// Whether any VDI is active.
    pub fn has_active(&self) -> bool {
        !lock(&self.active).is_empty()
    }

    fn meta(&self) -> SmResult<SrMeta> {
        Ok(SrMeta::load(&self.dir)?.unwrap_or_else(|| SrMeta {
            sr_uuid: self.sr_uuid.clone(),
            ..SrMeta::default()
        }))
    }

    fn exists(&self, uuid: &str) -> bool {
        vhd_path(&self.dir, uuid).exists()
    }

    fn require(&self, uuid: &str) -> SmResult<()> {
        checked_uuid(uuid)?;
        if self.exists(uuid) {
            Ok(())
        } else {
            Err(SmError::vdi_missing(uuid))
        }
    }

    /// Builds the VDI description of `node` from the VHD and the sidecar.
    pub(crate) fn describe(&self, node: &Node, meta: &SrMeta) -> VdiInfo {
        let vdi_meta = meta.vdis.get(&node.uuid).cloned().unwrap_or_default();
        let mut sm_config = vdi_meta.sm_config.clone();
        sm_config.insert(SM_CONFIG_VDI_TYPE.into(), "vhd".into());
        if let Some(parent) = &node.parent {
            sm_config.insert(SM_CONFIG_VHD_PARENT.into(), parent.clone());
        }
        let name_label = if node.hidden && vdi_meta.name_label.is_empty() {
            "base copy".to_owned()
        } else {
            vdi_meta.name_label
        };
        VdiInfo {
            uuid: node.uuid.clone(),
            location: node.uuid.clone(),
            name_label,
            name_description: vdi_meta.name_description,
            virtual_size: node.virtual_size,
            physical_utilisation: node.physical_size,
            vdi_type: if vdi_meta.vdi_type.is_empty() {
                "user".into()
            } else {
                vdi_meta.vdi_type
            },
            read_only: vdi_meta.read_only || node.hidden,
            sharable: vdi_meta.sharable,
            managed: !node.hidden,
            missing: false,
            is_a_snapshot: vdi_meta.is_a_snapshot,
            snapshot_of: vdi_meta.snapshot_of,
            snapshot_time: vdi_meta.snapshot_time,
            sm_config,
            parent: node.parent.clone(),
            hidden: node.hidden,
        }
    }

    fn describe_uuid(&self, uuid: &str) -> SmResult<VdiInfo> {
        let node = tree::read_node(&self.dir, uuid)?;
        Ok(self.describe(&node, &self.meta()?))
    }

    fn record(&self, uuid: &str) -> SmResult<VdiInfo> {
        let info = self.describe_uuid(uuid)?;
        self.db.record_vdi(&self.sr_uuid, &info)?;
        Ok(info)
    }

    /// `sr_update`: sizes of the filesystem and the visible VDIs.
    pub fn stats(&self) -> SmResult<SrStats> {
        let nodes = tree::build(&self.dir)?;
        let (physical_size, physical_utilisation) = fs_stats(&self.dir)?;
        Ok(SrStats {
            physical_size,
            physical_utilisation,
            virtual_allocation: nodes
                .values()
                .filter(|n| !n.hidden)
                .map(|n| n.virtual_size)
                .sum(),
        })
    }

    /// `sr_scan`: rebuilds the VDI list from the files and sidecar and synchronises the storage
    /// database: new VDIs recorded, vanished ones forgotten. Hidden leaves (garbage awaiting
    /// the collector) are left out.
    pub fn scan(&self) -> SmResult<ScanResult> {
        let _guard = self.lock_sr();
        let nodes = tree::build(&self.dir)?;
        let meta = self.meta()?;
        let vdis: Vec<VdiInfo> = nodes
            .values()
            .filter(|n| !(n.hidden && n.children.is_empty()))
            .map(|n| self.describe(n, &meta))
            .collect();
        for vdi in &vdis {
            self.db.record_vdi(&self.sr_uuid, vdi)?;
        }
        for known in self.db.vdis(&self.sr_uuid)? {
            if !vdis.iter().any(|v| v.uuid == known.uuid) {
                self.db.forget_vdi(&self.sr_uuid, &known.uuid)?;
            }
        }
        drop(_guard);
        Ok(ScanResult {
            stats: self.stats()?,
            vdis,
        })
    }

    /// `vdi_create`: a new empty dynamic VHD.
    pub fn vdi_create(&self, request: &VdiCreate) -> SmResult<VdiInfo> {
        let _guard = self.lock_sr();
        let uuid = match &request.uuid {
            Some(uuid) => checked_uuid(uuid)?.to_owned(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        if self.exists(&uuid) {
            return Err(SmError::code(ErrorCode::VdiExists));
        }
        let size = round_size(request.virtual_size)?;
        let disk = vhd::create_dynamic_file(&vhd_path(&self.dir, &uuid), size)
            .map_err(|e| vhd_error(ErrorCode::VdiCreate, "creating VHD", e))?;
        drop(disk);
        let mut meta = self.meta()?;
        meta.vdis.insert(
            uuid.clone(),
            VdiMeta {
                name_label: request.name_label.clone(),
                name_description: request.name_description.clone(),
                vdi_type: request.vdi_type.clone(),
                read_only: request.read_only,
                sharable: request.sharable,
                sm_config: request.sm_config.clone(),
                ..VdiMeta::default()
            },
        );
        meta.save(&self.dir)?;
        info!(sr = %self.sr_uuid, vdi = %uuid, size, "VDI created");
        self.record(&uuid)
    }

    /// `vdi_delete`: removes a leaf's file, or hides a VDI that still has children (the
    /// collector removes it once no leaf needs it).
    pub fn vdi_delete(&self, uuid: &str) -> SmResult<()> {
        let _guard = self.lock_sr();
        self.require(uuid)?;
        if lock(&self.active).contains_key(uuid) {
            return Err(SmError::code(ErrorCode::VdiInUse));
        }
        let nodes = tree::build(&self.dir)?;
        let has_children = nodes.get(uuid).is_some_and(|n| !n.children.is_empty());
        let path = vhd_path(&self.dir, uuid);
        if has_children {
            let mut disk =
                vhd::open_file(&path).map_err(|e| vhd_error(ErrorCode::VdiDelete, uuid, e))?;
            disk.set_hidden(true)
                .and_then(|()| disk.flush())
                .map_err(|e| vhd_error(ErrorCode::VdiDelete, uuid, e))?;
        } else {
            std::fs::remove_file(&path).map_err(io_err(ErrorCode::VdiRemove, "removing VHD"))?;
        }
        let mut meta = self.meta()?;
        meta.vdis.remove(uuid);
        meta.save(&self.dir)?;
        if has_children {
            self.record(uuid)?;
        } else {
            self.db.forget_vdi(&self.sr_uuid, uuid)?;
        }
        info!(sr = %self.sr_uuid, vdi = %uuid, hidden = has_children, "VDI deleted");
        Ok(())
    }

    fn socket_path(&self, uuid: &str) -> PathBuf {
        self.socket_dir.join(format!("{uuid}.sock"))
    }

    fn attach_result(&self, uuid: &str, writable: bool) -> AttachResult {
        let mut xenstore_data = BTreeMap::new();
        xenstore_data.insert("storage-type".into(), self.storage_type.into());
        AttachResult {
            data_path: DataPath::Nbd {
                socket: self.socket_path(uuid),
                export: uuid.to_owned(),
            },
            read_only: !writable,
            xenstore_data,
        }
    }

    /// `vdi_attach`: checks the VDI is usable and names its future data path.
    pub fn vdi_attach(&self, uuid: &str, writable: bool) -> SmResult<AttachResult> {
        self.require(uuid)?;
        let node = tree::read_node(&self.dir, uuid)?;
        if node.hidden {
            return Err(SmError::new(
                ErrorCode::VdiUnavailable,
                "VDI is a hidden base copy",
            ));
        }
        Ok(self.attach_result(uuid, writable))
    }

    fn open_backend(&self, uuid: &str, writable: bool) -> SmResult<Box<dyn nbd::Backend>> {
        let chain = vhd::open_chain(&vhd_path(&self.dir, uuid), writable)
            .map_err(|e| vhd_error(ErrorCode::VdiUnavailable, uuid, e))?;
        Ok(Box::new(chain))
    }

    /// `vdi_activate`: serves the VDI's chain on its NBD socket.
    pub fn vdi_activate(&self, uuid: &str, writable: bool) -> SmResult<AttachResult> {
        let _guard = self.lock_sr();
        self.vdi_attach(uuid, writable)?;
        let mut active = lock(&self.active);
        if let Some(existing) = active.get(uuid) {
            if existing.writable != writable {
                return Err(SmError::code(ErrorCode::VdiInUse));
            }
            return Ok(self.attach_result(uuid, writable));
        }
        let export = Arc::new(Export::new(
            uuid,
            self.open_backend(uuid, writable)?,
            !writable,
        ));
        let server = Server::start(&self.socket_path(uuid), vec![Arc::clone(&export)])
            .map_err(io_err(ErrorCode::VdiUnavailable, "starting NBD server"))?;
        active.insert(
            uuid.to_owned(),
            Active {
                server,
                export,
                writable,
            },
        );
        info!(sr = %self.sr_uuid, vdi = %uuid, writable, "VDI activated");
        Ok(self.attach_result(uuid, writable))
    }

    /// `vdi_deactivate`: stops the NBD server and flushes.
    pub fn vdi_deactivate(&self, uuid: &str) -> SmResult<()> {
        let _guard = self.lock_sr();
        let Some(mut active) = lock(&self.active).remove(uuid) else {
            return Ok(());
        };
        active.server.stop();
        active
            .export
            .close()
            .map_err(io_err(ErrorCode::Eio, "flushing VDI"))?;
        info!(sr = %self.sr_uuid, vdi = %uuid, "VDI deactivated");
        Ok(())
    }

    /// Pauses the export of `uuid` if it is active; returns whether it was.
    pub(crate) fn pause(&self, uuid: &str) -> SmResult<bool> {
        match lock(&self.active).get(uuid) {
            Some(active) => {
                active
                    .export
                    .pause()
                    .map_err(io_err(ErrorCode::Eio, "pausing VDI"))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Unpauses the export of `uuid`, reopening its chain from the files.
    pub(crate) fn unpause(&self, uuid: &str) -> SmResult<()> {
        let active = lock(&self.active);
        let Some(entry) = active.get(uuid) else {
            return Ok(());
        };
        let reopened = match self.open_backend(uuid, entry.writable) {
            Ok(backend) => Some(backend),
            Err(err) => {
                warn!(vdi = %uuid, error = %err, "reopening paused VDI failed; keeping old chain");
                None
            }
        };
        entry
            .export
            .unpause(reopened)
            .map_err(io_err(ErrorCode::Eio, "unpausing VDI"))
    }

    /// Uuids of the active VDIs.
    pub(crate) fn active_uuids(&self) -> Vec<String> {
        lock(&self.active).keys().cloned().collect()
    }

    /// `vdi_snapshot` (`snapshot = true`) or `vdi_clone`: the leaf becomes a hidden base copy
    /// with two new children; returns the new VDI.
    pub fn vdi_snapshot(&self, uuid: &str, snapshot: bool) -> SmResult<VdiInfo> {
        let _guard = self.lock_sr();
        self.require(uuid)?;
        let code = if snapshot {
            ErrorCode::VdiSnapshot
        } else {
            ErrorCode::VdiClone
        };
        let node = tree::read_node(&self.dir, uuid)?;
        if node.hidden {
            return Err(SmError::new(code, "VDI is a hidden base copy"));
        }
        let depth = vhd::open_chain(&vhd_path(&self.dir, uuid), false)
            .map_err(|e| vhd_error(code, uuid, e))?
            .depth();
        if depth + 1 > vhd::MAX_CHAIN_DEPTH {
            return Err(SmError::code(ErrorCode::SnapshotChainTooLong));
        }
        let intent = Intent::Snapshot {
            leaf: uuid.to_owned(),
            base: uuid::Uuid::new_v4().to_string(),
            new: uuid::Uuid::new_v4().to_string(),
        };
        let Intent::Snapshot { base, new, .. } = &intent else {
            unreachable!("built just above");
        };
        let journal = journal::begin(&self.dir, &intent)?;
        let paused = self.pause(uuid)?;
        let result = self.snapshot_files(uuid, base, new, code);
        let outcome = match result {
            Ok(()) => self.finish_snapshot(uuid, base, new, snapshot),
            Err(err) => {
                if let Err(undo) = self.rollback_snapshot(uuid, base, new) {
                    warn!(vdi = %uuid, error = %undo, "snapshot rollback failed; journal kept");
                    return Err(err);
                }
                Err(err)
            }
        };
        journal::end(&journal)?;
        if paused {
            self.unpause(uuid)?;
        }
        let new_info = outcome?;
        self.record(base)?;
        self.record(uuid)?;
        self.db.record_vdi(&self.sr_uuid, &new_info)?;
        info!(sr = %self.sr_uuid, vdi = %uuid, new = %new_info.uuid, snapshot, "VDI snapshotted");
        Ok(new_info)
    }

    fn snapshot_files(&self, leaf: &str, base: &str, new: &str, code: ErrorCode) -> SmResult<()> {
        let leaf_path = vhd_path(&self.dir, leaf);
        let base_path = vhd_path(&self.dir, base);
        std::fs::rename(&leaf_path, &base_path).map_err(io_err(code, "renaming leaf"))?;
        let mut disk = vhd::open_file(&base_path).map_err(|e| vhd_error(code, base, e))?;
        disk.set_hidden(true)
            .and_then(|()| disk.flush())
            .map_err(|e| vhd_error(code, base, e))?;
        drop(disk);
        vhd::snapshot(&base_path, &leaf_path).map_err(|e| vhd_error(code, leaf, e))?;
        vhd::snapshot(&base_path, &vhd_path(&self.dir, new))
            .map_err(|e| vhd_error(code, new, e))?;
        Ok(())
    }

    fn finish_snapshot(
        &self,
        leaf: &str,
        base: &str,
        new: &str,
        snapshot: bool,
    ) -> SmResult<VdiInfo> {
        let mut meta = self.meta()?;
        let original = meta.vdis.get(leaf).cloned().unwrap_or_default();
        let copy = VdiMeta {
            is_a_snapshot: snapshot,
            snapshot_of: snapshot.then(|| leaf.to_owned()),
            snapshot_time: snapshot.then(now),
            read_only: snapshot || original.read_only,
            ..original
        };
        meta.vdis.insert(new.to_owned(), copy);
        meta.vdis.remove(base);
        meta.save(&self.dir)?;
        self.describe_uuid(new)
    }

    /// Undoes a partial snapshot: removes the new children and renames the base back.
    pub(crate) fn rollback_snapshot(&self, leaf: &str, base: &str, new: &str) -> SmResult<()> {
        let undo = io_err(ErrorCode::VdiSnapshot, "snapshot rollback");
        let new_path = vhd_path(&self.dir, new);
        if new_path.exists() {
            std::fs::remove_file(&new_path).map_err(&undo)?;
        }
        let base_path = vhd_path(&self.dir, base);
        if !base_path.exists() {
            return Ok(());
        }
        let leaf_path = vhd_path(&self.dir, leaf);
        if leaf_path.exists() {
            // Only the empty child made by this snapshot may be removed.
            let node = tree::read_node(&self.dir, leaf)?;
            if node.parent.as_deref() != Some(base) {
                return Err(SmError::new(
                    ErrorCode::VdiSnapshot,
                    "leaf is not the new child",
                ));
            }
            std::fs::remove_file(&leaf_path).map_err(&undo)?;
        }
        std::fs::rename(&base_path, &leaf_path).map_err(&undo)?;
        let mut disk =
            vhd::open_file(&leaf_path).map_err(|e| vhd_error(ErrorCode::VdiSnapshot, leaf, e))?;
        disk.set_hidden(false)
            .and_then(|()| disk.flush())
            .map_err(|e| vhd_error(ErrorCode::VdiSnapshot, leaf, e))
    }

    /// `vdi_resize` (`online = false`, VDI inactive) or `vdi_resize_online`.
    pub fn vdi_resize(&self, uuid: &str, new_size: u64, online: bool) -> SmResult<VdiInfo> {
        let _guard = self.lock_sr();
        self.require(uuid)?;
        let size = round_size(new_size)?;
        let is_active = lock(&self.active).contains_key(uuid);
        if is_active && !online {
            return Err(SmError::code(ErrorCode::VdiInUse));
        }
        let paused = self.pause(uuid)?;
        let result = vhd::open_file(&vhd_path(&self.dir, uuid))
            .and_then(|mut disk| {
                if disk.size() < size {
                    disk.resize(size)?;
                }
                disk.flush()
            })
            .map_err(|e| vhd_error(ErrorCode::VdiResize, uuid, e));
        if paused {
            self.unpause(uuid)?;
        }
        result?;
        self.record(uuid)
    }

    /// `vdi_introduce`: adopts an existing `<uuid>.vhd` file (location and uuid must agree).
    pub fn vdi_introduce(&self, request: &VdiIntroduce) -> SmResult<VdiInfo> {
        let _guard = self.lock_sr();
        if request.location != request.uuid {
            return Err(SmError::new(
                ErrorCode::InvalidArg,
                "a VHD SR's location is the VDI uuid",
            ));
        }
        self.require(&request.uuid)?;
        let mut meta = self.meta()?;
        meta.vdis.insert(
            request.uuid.clone(),
            VdiMeta {
                name_label: request.name_label.clone(),
                name_description: request.name_description.clone(),
                vdi_type: request.vdi_type.clone(),
                sm_config: request.sm_config.clone(),
                ..VdiMeta::default()
            },
        );
        meta.save(&self.dir)?;
        self.record(&request.uuid)
    }

    /// `vdi_update`: copies the database's name and description into the sidecar.
    pub fn vdi_update(&self, uuid: &str) -> SmResult<()> {
        let _guard = self.lock_sr();
        self.require(uuid)?;
        let Some(record) = self.db.vdi(&self.sr_uuid, uuid)? else {
            return Ok(());
        };
        let mut meta = self.meta()?;
        let entry = meta.vdis.entry(uuid.to_owned()).or_default();
        entry.name_label = record.name_label;
        entry.name_description = record.name_description;
        entry.read_only = record.read_only;
        entry.is_a_snapshot = record.is_a_snapshot;
        entry.snapshot_of = record.snapshot_of;
        entry.snapshot_time = record.snapshot_time;
        meta.save(&self.dir)
    }

    /// `vdi_generate_config`: a JSON description a host can attach the VDI from.
    pub fn vdi_generate_config(&self, uuid: &str) -> SmResult<String> {
        self.require(uuid)?;
        let config = serde_json::json!({
            "sr_uuid": self.sr_uuid,
            "vdi_uuid": uuid,
            "vdi_path": vhd_path(&self.dir, uuid),
            "socket": self.socket_path(uuid),
        });
        Ok(config.to_string())
    }

    /// Runs every pending journal: snapshots are rolled back, coalesces completed.
    pub(crate) fn recover(&self, _guard: &MutexGuard<'_, ()>) -> SmResult<usize> {
        let pending = journal::pending(&self.dir)?;
        let count = pending.len();
        for (path, intent) in pending {
            warn!(sr = %self.sr_uuid, ?intent, "recovering interrupted operation");
            match &intent {
                Intent::Snapshot { leaf, base, new } => self.rollback_snapshot(leaf, base, new)?,
                Intent::Coalesce { child, parent } => {
                    crate::gc::finish_coalesce(self, child, parent, &mut |_| Ok(()))?
                }
                Intent::LeafCoalesce { leaf, parent } => {
                    crate::gc::finish_leaf_coalesce(self, leaf, parent, &mut |_| Ok(()))?
                }
            }
            journal::end(&path)?;
        }
        Ok(count)
    }

    /// Removes every file the SR made, once no visible VDI remains (`sr_delete`).
    pub fn destroy_contents(&self) -> SmResult<()> {
        let _guard = self.lock_sr();
        let nodes = tree::build(&self.dir)?;
        if nodes.values().any(|n| !n.hidden) {
            return Err(SmError::code(ErrorCode::SrNotEmpty));
        }
        if self.has_active() {
            return Err(SmError::code(ErrorCode::SrInUse));
        }
        for uuid in nodes.keys() {
            std::fs::remove_file(vhd_path(&self.dir, uuid))
                .map_err(io_err(ErrorCode::FileSrDelete, "removing VHD"))?;
            self.db.forget_vdi(&self.sr_uuid, uuid)?;
        }
        for (path, _) in journal::pending(&self.dir)? {
            journal::end(&path)?;
        }
        match std::fs::remove_file(crate::meta::path_in(&self.dir)) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(SmError::io(
                ErrorCode::FileSrDelete,
                "removing metadata",
                &err,
            )),
        }
    }

    /// Stops every active VDI (used when the SR goes away under us).
    pub fn deactivate_all(&self) -> SmResult<()> {
        for uuid in self.active_uuids() {
            self.vdi_deactivate(&uuid)?;
        }
        Ok(())
    }
}
