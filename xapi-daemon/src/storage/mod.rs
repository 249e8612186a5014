//! Storage on top of the SM drivers: the registry of SR drivers by type, the `StorageDb` bridge
//! through which drivers record VDIs in the object store, and the SR/PBD/VDI operations the
//! `SR.*`, `PBD.*` and `VDI.*` actions call (attach at start, the default local SR, sizes kept
//! true after every change), and the background garbage collection that follows deletes and
//! scans. Driver calls block; callers run on blocking threads. Control operations on one SR
//! are serialised by that SR's lock (upstream's SR lock); different SRs proceed in parallel.
//!
//! ```text
//! actions/{sr,pbd,vdi}.rs ─▶ storage ─▶ sm::SrDriver (file, ext, iso, dummy)
//!                               ▲              │ record_vdi / forget_vdi
//!                               └── DbBridge ◀─┘ (VDI rows by uuid)
//! ```
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use sm::{ErrorCode, SmError, SmResult, SrContext, SrDriver, StorageDb, VdiId, VdiInfo};
use xapi_idl::enums::{SrHealth, VdiType};
use xapi_idl::records::{
    PbdRecord, PoolRecord, ProbeResultRecord, SrRecord, SrStatRecord, VdiRecord,
};
use xapi_idl::{classes, errors, ApiError, ApiResult, DateTime, Record, Ref, WireEnum};

use crate::app::App;
use crate::vm::{delete, insert, read, update};

pub mod provision;

/// The SR drivers by type, the bridge they record VDIs through, one lock per SR serialising
/// its control operations (upstream's SR lock), and the state of background collections.
pub struct Storage {
    drivers: BTreeMap<&'static str, Arc<dyn SrDriver>>,
    bridge: Arc<DbBridge>,
    locks: Mutex<BTreeMap<String, Arc<Mutex<()>>>>,
    gc: Mutex<BTreeMap<String, GcRun>>,
}

/// A background collection of one SR: running, or running and asked to go again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GcRun {
    Running,
    Again,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Maps updated in single steps stay consistent across a panic elsewhere.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Storage {
    /// The drivers of this daemon, keeping NBD sockets and ext mounts under `state_dir`.
    pub fn new(state_dir: &Path) -> Storage {
        let bridge = Arc::new(DbBridge::default());
        let db: Arc<dyn StorageDb> = bridge.clone();
        let config = sm_file::VhdConfig {
            socket_dir: state_dir.join("nbd"),
        };
        let mut drivers: BTreeMap<&'static str, Arc<dyn SrDriver>> = BTreeMap::new();
        drivers.insert(
            "file",
            Arc::new(sm_file::FileDriver::new(
                sm_file::FileSubstrate,
                config.clone(),
                db.clone(),
            )),
        );
        drivers.insert(
            "ext",
            Arc::new(sm_file::VhdDriver::new(
                sm_ext::ExtSubstrate::new(state_dir.join("sr-mount")),
                config,
                db.clone(),
            )),
        );
        drivers.insert("iso", Arc::new(sm_iso::IsoDriver::new(db.clone())));
        drivers.insert(
            sm_iso::udev::SR_TYPE,
            Arc::new(sm_iso::udev::UdevDriver::new(db.clone())),
        );
        drivers.insert("dummy", Arc::new(sm_dummy::DummyDriver::new(db)));
        Storage {
            drivers,
            bridge,
            locks: Mutex::new(BTreeMap::new()),
            gc: Mutex::new(BTreeMap::new()),
        }
    }

    /// Connects the bridge to the app once it exists.
    pub fn bind(&self, app: &Arc<App>) {
        let _ = self.bridge.app.set(Arc::downgrade(app));
    }

    /// The SR types this daemon has drivers for.
    pub fn types(&self) -> Vec<String> {
        self.drivers.keys().map(|k| (*k).to_owned()).collect()
    }

    /// The driver of SR type `kind` (`SR_UNKNOWN_DRIVER` otherwise).
    pub fn driver(&self, kind: &str) -> ApiResult<Arc<dyn SrDriver>> {
        self.drivers
            .get(kind)
            .cloned()
            .ok_or_else(|| errors::sr_unknown_driver(kind))
    }

    /// Runs `f` holding the lock of the SR `sr_uuid` (other SRs are not held up).
    pub fn locked<R>(&self, sr_uuid: &str, f: impl FnOnce() -> R) -> R {
        let lock = Arc::clone(guard(&self.locks).entry(sr_uuid.to_owned()).or_default());
        let _held = guard(&lock);
        f()
    }
}

/// `StorageDb` over the object store: VDI rows found by uuid, their SR by uuid.
#[derive(Default)]
pub struct DbBridge {
    app: OnceLock<Weak<App>>,
}

fn db_failure(e: impl std::fmt::Display) -> SmError {
    SmError::new(ErrorCode::SmGeneral, format!("storage database: {e}"))
}

impl DbBridge {
    fn app(&self) -> SmResult<Arc<App>> {
        self.app
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| db_failure("the daemon is not running"))
    }
}

fn sr_ref_of(app: &App, sr_uuid: &str) -> Option<String> {
    app.db.ref_by_uuid(app.table_of::<classes::Sr>(), sr_uuid)
}

fn vdi_ref_of(app: &App, vdi_uuid: &str) -> Option<String> {
    app.db.ref_by_uuid(app.table_of::<classes::Vdi>(), vdi_uuid)
}

fn uuid_of_vdi(app: &App, r: &Ref<classes::Vdi>) -> Option<String> {
    if r.is_null() {
        return None;
    }
    app.get_record::<VdiRecord>(r.as_str()).map(|v| v.uuid)
}

/// The driver's view of a VDI record.
pub fn info_of(app: &App, rec: &VdiRecord) -> VdiInfo {
    VdiInfo {
        uuid: rec.uuid.clone(),
        location: rec.location.clone(),
        name_label: rec.name_label.clone(),
        name_description: rec.name_description.clone(),
        virtual_size: rec.virtual_size.max(0) as u64,
        physical_utilisation: rec.physical_utilisation.max(0) as u64,
        vdi_type: rec.type_.as_str().to_owned(),
        read_only: rec.read_only,
        sharable: rec.sharable,
        managed: rec.managed,
        missing: rec.missing,
        is_a_snapshot: rec.is_a_snapshot,
        snapshot_of: uuid_of_vdi(app, &rec.snapshot_of),
        snapshot_time: u64::try_from(rec.snapshot_time.0).ok().filter(|t| *t > 0),
        sm_config: rec.sm_config.clone(),
        parent: uuid_of_vdi(app, &rec.parent),
        hidden: !rec.managed,
    }
}

fn apply_info(app: &App, rec: &mut VdiRecord, info: &VdiInfo) {
    let vdi_ref = |uuid: &Option<String>| {
        uuid.as_deref()
            .and_then(|u| vdi_ref_of(app, u))
            .map(Ref::from_string)
            .unwrap_or_else(Ref::null)
    };
    rec.location = info.location.clone();
    if !info.name_label.is_empty() || rec.name_label.is_empty() {
        rec.name_label = info.name_label.clone();
    }
    if !info.name_description.is_empty() {
        rec.name_description = info.name_description.clone();
    }
    rec.virtual_size = i64::try_from(info.virtual_size).unwrap_or(i64::MAX);
    rec.physical_utilisation = i64::try_from(info.physical_utilisation).unwrap_or(i64::MAX);
    if let Some(t) = VdiType::from_wire(&info.vdi_type) {
        rec.type_ = t;
    }
    rec.read_only = info.read_only;
    rec.sharable = info.sharable;
    rec.managed = info.managed && !info.hidden;
    rec.missing = info.missing;
    rec.is_a_snapshot = info.is_a_snapshot;
    rec.snapshot_of = vdi_ref(&info.snapshot_of);
    if let Some(t) = info.snapshot_time {
        rec.snapshot_time = DateTime(i64::try_from(t).unwrap_or(0));
    }
    rec.sm_config = info.sm_config.clone();
    rec.parent = vdi_ref(&info.parent);
}

impl StorageDb for DbBridge {
    fn vdi(&self, sr_uuid: &str, vdi_uuid: &str) -> SmResult<Option<VdiInfo>> {
        let app = self.app()?;
        let Some(sr) = sr_ref_of(&app, sr_uuid) else {
            return Ok(None);
        };
        Ok(vdi_ref_of(&app, vdi_uuid)
            .and_then(|r| app.get_record::<VdiRecord>(&r))
            .filter(|rec| rec.sr.as_str() == sr)
            .map(|rec| info_of(&app, &rec)))
    }

    fn vdis(&self, sr_uuid: &str) -> SmResult<Vec<VdiInfo>> {
        let app = self.app()?;
        let Some(sr) = sr_ref_of(&app, sr_uuid) else {
            return Ok(Vec::new());
        };
        let t = app.table_of::<classes::Vdi>();
        Ok(app
            .db
            .rows(t)
            .into_iter()
            .filter_map(|(_, row)| VdiRecord::from_row(&row).ok())
            .filter(|rec| rec.sr.as_str() == sr)
            .map(|rec| info_of(&app, &rec))
            .collect())
    }

    fn record_vdi(&self, sr_uuid: &str, vdi: &VdiInfo) -> SmResult<()> {
        let app = self.app()?;
        let sr = sr_ref_of(&app, sr_uuid)
            .ok_or_else(|| db_failure(format!("no SR {sr_uuid} in the database")))?;
        if let Some(r) = vdi_ref_of(&app, &vdi.uuid) {
            update::<VdiRecord>(&app, &r, |rec| apply_info(&app, rec, vdi)).map_err(db_failure)?;
            return Ok(());
        }
        let mut rec = VdiRecord {
            uuid: vdi.uuid.clone(),
            sr: Ref::from_string(sr),
            ..VdiRecord::default()
        };
        apply_info(&app, &mut rec, vdi);
        insert(&app, Ref::<classes::Vdi>::fresh().as_str(), &rec).map_err(db_failure)
    }

    fn forget_vdi(&self, _sr_uuid: &str, vdi_uuid: &str) -> SmResult<()> {
        let app = self.app()?;
        if let Some(r) = vdi_ref_of(&app, vdi_uuid) {
            delete::<classes::Vdi>(&app, &r).map_err(db_failure)?;
        }
        Ok(())
    }
}

/// An SR's driver and context: the SR record, and the device config of this host's PBD.
pub struct SrHandle {
    /// The SR's ref.
    pub r: String,
    /// The SR's record.
    pub rec: SrRecord,
    /// Its driver.
    pub driver: Arc<dyn SrDriver>,
    /// What the driver is told about the SR.
    pub ctx: SrContext,
    /// This host's PBD, if any.
    pub pbd: Option<(String, PbdRecord)>,
}

/// This host's PBDs of `sr`.
fn pbds_of(app: &App, sr: &str) -> Vec<(String, PbdRecord)> {
    app.db
        .rows(app.table_of::<classes::Pbd>())
        .into_iter()
        .filter_map(|(r, row)| PbdRecord::from_row(&row).ok().map(|p| (r, p)))
        .filter(|(_, p)| p.sr.as_str() == sr)
        .collect()
}

/// The handle of `sr`, without requiring a plugged PBD.
pub fn handle(app: &App, sr: &str) -> ApiResult<SrHandle> {
    let rec: SrRecord = read(app, sr)?;
    let driver = app.storage.driver(&rec.type_)?;
    let pbd = pbds_of(app, sr)
        .into_iter()
        .find(|(_, p)| p.host.as_str() == app.host);
    let ctx = SrContext {
        sr_uuid: rec.uuid.clone(),
        device_config: pbd
            .as_ref()
            .map(|(_, p)| p.device_config.clone())
            .unwrap_or_default(),
        sm_config: rec.sm_config.clone(),
    };
    Ok(SrHandle {
        r: sr.to_owned(),
        rec,
        driver,
        ctx,
        pbd,
    })
}

/// The handle of `sr` for a VDI operation: it must have a plugged PBD on this host.
pub fn attached(app: &App, sr: &str) -> ApiResult<SrHandle> {
    let h = handle(app, sr)?;
    match &h.pbd {
        None => Err(errors::sr_has_no_pbds(sr)),
        Some((_, p)) if !p.currently_attached => Err(errors::sr_not_attached(sr)),
        Some(_) => Ok(h),
    }
}

/// Maps a driver failure on `sr` (and `vdi`, when one is involved) to the API error.
pub fn sm_err<'a>(sr: &'a str, vdi: &'a str) -> impl Fn(SmError) -> ApiError + 'a {
    move |e| crate::errors::sm_error(&e, sr, vdi)
}

/// Writes the driver's sizes into the SR record.
pub fn refresh_stats(app: &App, h: &SrHandle) -> ApiResult<()> {
    let stats = match h.driver.sr_update(&h.ctx) {
        Ok(s) => s,
        Err(e) if e.code == ErrorCode::Unimplemented => {
            // Drivers without sr_update: sum what the database knows.
            let vdis = app.storage.bridge.vdis(&h.rec.uuid).unwrap_or_default();
            let alloc = vdis
                .iter()
                .filter(|v| v.managed)
                .map(|v| v.virtual_size)
                .sum();
            let used = vdis.iter().map(|v| v.physical_utilisation).sum();
            sm::SrStats {
                physical_size: used,
                physical_utilisation: used,
                virtual_allocation: alloc,
            }
        }
        Err(e) => return Err(crate::errors::sm_error(&e, &h.r, "")),
    };
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    update::<SrRecord>(app, &h.r, |rec| {
        rec.physical_size = clamp(stats.physical_size);
        rec.physical_utilisation = clamp(stats.physical_utilisation);
        rec.virtual_allocation = clamp(stats.virtual_allocation);
    })?;
    Ok(())
}

/// `PBD.plug`: attach the SR through its driver, scan it, refresh its sizes.
pub fn plug(app: &App, pbd: &str) -> ApiResult<()> {
    let p: PbdRecord = read(app, pbd)?;
    let mut h = handle(app, p.sr.as_str())?;
    h.ctx.device_config = p.device_config.clone();
    app.storage.locked(&h.rec.uuid, || {
        h.driver
            .sr_attach(&h.ctx)
            .map_err(sm_err(p.sr.as_str(), ""))?;
        update::<PbdRecord>(app, pbd, |rec| rec.currently_attached = true)?;
        match h.driver.sr_scan(&h.ctx) {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::Unimplemented => {}
            Err(e) => return Err(crate::errors::sm_error(&e, p.sr.as_str(), "")),
        }
        refresh_stats(app, &h)
    })
}

/// `PBD.unplug`: detach the SR (refused while VDIs are attached).
pub fn unplug(app: &App, pbd: &str) -> ApiResult<()> {
    let p: PbdRecord = read(app, pbd)?;
    if !p.currently_attached {
        return Ok(());
    }
    let mut h = handle(app, p.sr.as_str())?;
    h.ctx.device_config = p.device_config.clone();
    app.storage.locked(&h.rec.uuid, || {
        h.driver
            .sr_detach(&h.ctx)
            .map_err(sm_err(p.sr.as_str(), ""))?;
        update::<PbdRecord>(app, pbd, |rec| rec.currently_attached = false)?;
        Ok(())
    })
}

/// Creates an SR: storage through the driver, the SR and PBD records, then plugs it.
#[allow(clippy::too_many_arguments)]
pub fn create_sr(
    app: &App,
    device_config: BTreeMap<String, String>,
    physical_size: i64,
    name_label: &str,
    name_description: &str,
    kind: &str,
    content_type: &str,
    shared: bool,
    sm_config: BTreeMap<String, String>,
) -> ApiResult<Ref<classes::Sr>> {
    let driver = app.storage.driver(kind)?;
    let uuid = uuid::Uuid::new_v4().to_string();
    let ctx = SrContext {
        sr_uuid: uuid.clone(),
        device_config: device_config.clone(),
        sm_config: sm_config.clone(),
    };
    app.storage
        .locked(&uuid, || {
            driver.sr_create(&ctx, u64::try_from(physical_size).unwrap_or(0))
        })
        .map_err(sm_err("", ""))?;
    let sr: Ref<classes::Sr> = Ref::fresh();
    insert(
        app,
        sr.as_str(),
        &SrRecord {
            uuid,
            name_label: name_label.to_owned(),
            name_description: name_description.to_owned(),
            type_: kind.to_owned(),
            content_type: content_type.to_owned(),
            shared,
            sm_config,
            ..SrRecord::default()
        },
    )?;
    let pbd: Ref<classes::Pbd> = Ref::fresh();
    insert(
        app,
        pbd.as_str(),
        &PbdRecord {
            uuid: uuid::Uuid::new_v4().to_string(),
            host: Ref::from_raw(&app.host),
            sr: sr.clone(),
            device_config,
            currently_attached: false,
            ..PbdRecord::default()
        },
    )?;
    if let Err(e) = plug(app, pbd.as_str()) {
        let _ = app.storage.locked(&ctx.sr_uuid, || driver.sr_delete(&ctx));
        let _ = delete::<classes::Pbd>(app, pbd.as_str());
        let _ = delete::<classes::Sr>(app, sr.as_str());
        return Err(e);
    }
    Ok(sr)
}

fn assert_no_plugged_pbds(app: &App, sr: &str) -> ApiResult<Vec<(String, PbdRecord)>> {
    let pbds = pbds_of(app, sr);
    if pbds.iter().any(|(_, p)| p.currently_attached) {
        return Err(errors::sr_has_pbd(sr));
    }
    Ok(pbds)
}

fn forget_records(app: &App, sr: &str, pbds: &[(String, PbdRecord)]) -> ApiResult<()> {
    let rec: SrRecord = read(app, sr)?;
    for vdi in &rec.vdis {
        delete::<classes::Vdi>(app, vdi.as_str())?;
    }
    for (r, _) in pbds {
        delete::<classes::Pbd>(app, r)?;
    }
    delete::<classes::Sr>(app, sr)
}

/// `SR.forget`: drop the records, leave the storage.
pub fn forget_sr(app: &App, sr: &str) -> ApiResult<()> {
    let pbds = assert_no_plugged_pbds(app, sr)?;
    forget_records(app, sr, &pbds)
}

/// `SR.destroy`: delete the storage through the driver, then the records.
pub fn destroy_sr(app: &App, sr: &str) -> ApiResult<()> {
    let h = handle(app, sr)?;
    if h.pbd.is_none() {
        return Err(errors::sr_has_no_pbds(sr));
    }
    let pbds = assert_no_plugged_pbds(app, sr)?;
    app.storage
        .locked(&h.rec.uuid, || h.driver.sr_delete(&h.ctx))
        .map_err(sm_err(sr, ""))?;
    forget_records(app, sr, &pbds)
}

/// `SR.scan`, then one garbage-collection pass (hidden base copies nobody needs, coalescing),
/// so the caller sees a tidy SR; further passes a coalesce makes possible run in the
/// background.
pub fn scan(app: &App, sr: &str) -> ApiResult<()> {
    let h = attached(app, sr)?;
    let changed = app.storage.locked(&h.rec.uuid, || {
        h.driver.sr_scan(&h.ctx).map_err(sm_err(sr, ""))?;
        let changed = gc_pass(&h);
        refresh_stats(app, &h)?;
        Ok::<_, ApiError>(changed)
    })?;
    if changed {
        schedule_gc(app, sr);
    }
    Ok(())
}

/// One collection pass on the SR (its lock held by the caller); whether it changed anything.
fn gc_pass(h: &SrHandle) -> bool {
    match h.driver.sr_gc(&h.ctx) {
        Ok(report) if !report.is_empty() => {
            tracing::info!(sr = %h.rec.uuid, ?report, "SR garbage collected");
            true
        }
        Ok(_) => false,
        Err(e) => {
            tracing::warn!(sr = %h.rec.uuid, error = %e, "SR garbage collection failed");
            false
        }
    }
}

/// Runs garbage collection of `sr` on a background thread until a pass changes nothing. A
/// request while a collection runs makes it go round once more instead of starting another.
pub fn schedule_gc(app: &App, sr: &str) {
    let Ok(h) = attached(app, sr) else {
        return;
    };
    let sr_uuid = h.rec.uuid.clone();
    {
        let mut runs = guard(&app.storage.gc);
        if let Some(run) = runs.get_mut(&sr_uuid) {
            *run = GcRun::Again;
            return;
        }
        runs.insert(sr_uuid.clone(), GcRun::Running);
    }
    let Ok(app) = app.storage.bridge.app() else {
        guard(&app.storage.gc).remove(&sr_uuid);
        return;
    };
    let sr = sr.to_owned();
    let spawned = std::thread::Builder::new()
        .name(format!("gc-{}", &sr_uuid[..sr_uuid.len().min(8)]))
        .spawn({
            let app = Arc::clone(&app);
            let sr_uuid = sr_uuid.clone();
            move || background_gc(&app, &sr, &sr_uuid)
        });
    if let Err(e) = spawned {
        tracing::warn!(sr = %sr_uuid, error = %e, "cannot start garbage collection");
        guard(&app.storage.gc).remove(&sr_uuid);
    }
}

fn background_gc(app: &App, sr: &str, sr_uuid: &str) {
    loop {
        let changed = match attached(app, sr) {
            Ok(h) => app.storage.locked(sr_uuid, || {
                let changed = gc_pass(&h);
                if changed {
                    if let Err(e) = refresh_stats(app, &h) {
                        tracing::warn!(sr, error = %e, "cannot refresh SR sizes after GC");
                    }
                }
                changed
            }),
            // The SR went away (unplugged, destroyed): nothing left to collect.
            Err(_) => false,
        };
        let mut runs = guard(&app.storage.gc);
        let again = runs.get(sr_uuid) == Some(&GcRun::Again);
        if changed || again {
            runs.insert(sr_uuid.to_owned(), GcRun::Running);
            continue;
        }
        runs.remove(sr_uuid);
        return;
    }
}

/// `SR.update`.
pub fn update_sr(app: &App, sr: &str) -> ApiResult<()> {
    let h = attached(app, sr)?;
    app.storage.locked(&h.rec.uuid, || refresh_stats(app, &h))
}

fn probe_found(
    app: &App,
    device_config: &BTreeMap<String, String>,
    kind: &str,
    sm_config: &BTreeMap<String, String>,
) -> ApiResult<Vec<sm::ProbedSr>> {
    let driver = app.storage.driver(kind)?;
    // Probes of one type share a lock: they may look at the same devices.
    app.storage
        .locked(&format!("probe:{kind}"), || {
            driver.sr_probe(device_config, sm_config)
        })
        .map_err(sm_err("", ""))
}

/// `SR.probe_ext`: the SRs found, each as a complete configuration (the device config that
/// finds it, with the SR's facts), as upstream presents SMAPIv1 probes.
pub fn probe_ext(
    app: &App,
    device_config: &BTreeMap<String, String>,
    kind: &str,
    sm_config: &BTreeMap<String, String>,
) -> ApiResult<Vec<ProbeResultRecord>> {
    let found = probe_found(app, device_config, kind, sm_config)?;
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Ok(found
        .into_iter()
        .map(|sr| ProbeResultRecord {
            configuration: device_config.clone(),
            complete: true,
            sr: Some(SrStatRecord {
                uuid: Some(sr.uuid),
                name_label: String::new(),
                name_description: String::new(),
                free_space: 0,
                total_space: sr.size.map(clamp).unwrap_or(0),
                clustered: false,
                health: SrHealth::Healthy,
            }),
            extra_info: sr.aux,
        })
        .collect())
}

/// `SR.probe`: the SRs found, as upstream's XML list.
pub fn probe(
    app: &App,
    device_config: &BTreeMap<String, String>,
    kind: &str,
    sm_config: &BTreeMap<String, String>,
) -> ApiResult<String> {
    let found = probe_found(app, device_config, kind, sm_config)?;
    let mut xml = String::from("<?xml version=\"1.0\" ?>\n<SRlist>\n");
    for sr in found {
        xml.push_str("\t<SR>\n");
        xml.push_str(&format!("\t\t<UUID>{}</UUID>\n", xml_escape(&sr.uuid)));
        if let Some(size) = sr.size {
            xml.push_str(&format!("\t\t<Size>{size}</Size>\n"));
        }
        for (k, v) in &sr.aux {
            xml.push_str(&format!("\t\t<{k}>{}</{k}>\n", xml_escape(v)));
        }
        xml.push_str("\t</SR>\n");
    }
    xml.push_str("</SRlist>\n");
    Ok(xml)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A VDI, its record and its SR's handle (the SR must be attached).
pub fn vdi_handle(app: &App, vdi: &str) -> ApiResult<(VdiRecord, SrHandle, VdiId)> {
    let rec: VdiRecord = read(app, vdi)?;
    let h = attached(app, rec.sr.as_str())?;
    let id = VdiId {
        uuid: rec.uuid.clone(),
        location: rec.location.clone(),
    };
    Ok((rec, h, id))
}

fn vdi_ref_after(app: &App, info: &VdiInfo) -> ApiResult<Ref<classes::Vdi>> {
    vdi_ref_of(app, &info.uuid)
        .map(Ref::from_string)
        .ok_or_else(|| ApiError::internal(format!("the driver did not record VDI {}", info.uuid)))
}

/// Whether any VBD of the VDI is attached.
fn in_use(app: &App, rec: &VdiRecord) -> bool {
    rec.vbds.iter().any(|vbd| {
        app.get_record::<xapi_idl::records::VbdRecord>(vbd.as_str())
            .is_some_and(|v| v.currently_attached)
    })
}

/// `sm_config` key choosing how an SR's space is accounted (`thin` or `thick`), as on
/// upstream's LVM SRs.
pub const ALLOCATION_KEY: &str = "allocation";

/// The SR type upstream uses for physical devices handed to guests as they are.
const PHYSICAL_DEVICE_SR_TYPE: &str = "udev";

/// Refuses an operation that would reserve `requested` more bytes on a thickly provisioned
/// SR than it has free (`SR_FULL` with the request and the free space). Thin SRs, the default
/// for VHD files as upstream's file SRs do by default, may be overcommitted.
fn assert_space(app: &App, h: &SrHandle, requested: u64) -> ApiResult<()> {
    if h.rec.sm_config.get(ALLOCATION_KEY).map(String::as_str) != Some("thick") {
        return Ok(());
    }
    refresh_stats(app, h)?;
    let rec: SrRecord = read(app, &h.r)?;
    let size = u64::try_from(rec.physical_size).unwrap_or(0);
    let used = u64::try_from(rec.physical_utilisation).unwrap_or(0);
    // Space promised to visible VDIs but not written yet counts as taken.
    let promised: u64 = app
        .storage
        .bridge
        .vdis(&rec.uuid)
        .unwrap_or_default()
        .iter()
        .filter(|v| v.managed)
        .map(|v| v.virtual_size.saturating_sub(v.physical_utilisation))
        .sum();
    let free = size.saturating_sub(used).saturating_sub(promised);
    if requested > free {
        return Err(errors::sr_full(requested, free));
    }
    Ok(())
}

/// Storage side of `VDI.create`, after the generic constructor stored the row `vdi`: the driver
/// creates the VDI under the row's uuid and records its location and size. On failure the row
/// is removed again.
pub fn create_vdi(app: &App, vdi: &str) -> ApiResult<()> {
    let result = (|| {
        let rec: VdiRecord = read(app, vdi)?;
        let h = attached(app, rec.sr.as_str())?;
        if rec.virtual_size < 0 {
            return Err(errors::invalid_value("virtual_size", rec.virtual_size));
        }
        let request = sm::VdiCreate {
            uuid: Some(rec.uuid.clone()),
            name_label: rec.name_label.clone(),
            name_description: rec.name_description.clone(),
            virtual_size: rec.virtual_size as u64,
            vdi_type: rec.type_.as_str().to_owned(),
            read_only: rec.read_only,
            sharable: rec.sharable,
            sm_config: rec.sm_config.clone(),
        };
        app.storage.locked(&h.rec.uuid, || {
            assert_space(app, &h, request.virtual_size)?;
            let info = h
                .driver
                .vdi_create(&h.ctx, &request)
                .map_err(sm_err(&h.r, vdi))?;
            // Drivers that pick their own uuid: move the record to the new identity.
            if info.uuid != rec.uuid {
                let _ = delete::<classes::Vdi>(app, vdi);
            } else {
                update::<VdiRecord>(app, vdi, |r| apply_info(app, r, &info))?;
            }
            refresh_stats(app, &h)
        })
    })();
    if result.is_err() {
        let _ = delete::<classes::Vdi>(app, vdi);
    }
    result
}

/// Storage side of `VDI.destroy`: the driver deletes the VDI (and its record); the SR's
/// garbage collection then runs in the background (a deleted snapshot lets its chain be
/// coalesced).
pub fn destroy_vdi(app: &App, vdi: &str) -> ApiResult<()> {
    let (rec, h, id) = vdi_handle(app, vdi)?;
    if in_use(app, &rec) {
        return Err(errors::vdi_in_use(vdi, "destroy"));
    }
    if h.rec.type_ == PHYSICAL_DEVICE_SR_TYPE {
        return Err(errors::vdi_is_a_physical_device(vdi));
    }
    // No VBD uses it: a data path left running (a VM that vanished) goes first.
    let _ = app
        .storage
        .locked(&h.rec.uuid, || h.driver.vdi_deactivate(&h.ctx, &id));
    app.storage.locked(&h.rec.uuid, || {
        h.driver
            .vdi_delete(&h.ctx, &id)
            .map_err(sm_err(&h.r, vdi))?;
        delete::<classes::Vdi>(app, vdi)?;
        refresh_stats(app, &h)
    })?;
    schedule_gc(app, &h.r);
    Ok(())
}

/// `VDI.snapshot` (`snapshot = true`) and `VDI.clone`.
pub fn snapshot_vdi(
    app: &App,
    vdi: &str,
    params: &BTreeMap<String, String>,
    snapshot: bool,
) -> ApiResult<Ref<classes::Vdi>> {
    let (rec, h, id) = vdi_handle(app, vdi)?;
    app.storage.locked(&h.rec.uuid, || {
        // The VDI keeps writing into a new, empty leaf that may grow to its full size.
        assert_space(app, &h, u64::try_from(rec.virtual_size).unwrap_or(0))?;
        let info = if snapshot {
            h.driver.vdi_snapshot(&h.ctx, &id, params)
        } else {
            h.driver.vdi_clone(&h.ctx, &id, params)
        }
        .map_err(sm_err(&h.r, vdi))?;
        let new = vdi_ref_after(app, &info)?;
        update::<VdiRecord>(app, new.as_str(), |n| {
            n.name_label = rec.name_label.clone();
            n.name_description = rec.name_description.clone();
            n.other_config = rec.other_config.clone();
            n.type_ = rec.type_;
            n.on_boot = rec.on_boot;
            n.allow_caching = rec.allow_caching;
            if snapshot {
                n.is_a_snapshot = true;
                n.snapshot_of = Ref::from_raw(vdi);
                n.snapshot_time = DateTime::now();
            } else {
                n.is_a_snapshot = false;
                n.snapshot_of = Ref::null();
            }
        })?;
        refresh_stats(app, &h)?;
        Ok(new)
    })
}

/// `VDI.resize` / `VDI.resize_online`.
pub fn resize_vdi(app: &App, vdi: &str, size: i64, online: bool) -> ApiResult<()> {
    let (rec, h, id) = vdi_handle(app, vdi)?;
    if size < rec.virtual_size || size < 0 {
        return Err(errors::invalid_value("size", size));
    }
    app.storage.locked(&h.rec.uuid, || {
        let new_size = size as u64;
        assert_space(
            app,
            &h,
            new_size.saturating_sub(rec.virtual_size.max(0) as u64),
        )?;
        if online {
            h.driver.vdi_resize_online(&h.ctx, &id, new_size)
        } else {
            h.driver.vdi_resize(&h.ctx, &id, new_size)
        }
        .map_err(sm_err(&h.r, vdi))?;
        refresh_stats(app, &h)
    })
}

/// `VDI.update`: let the driver refresh the record.
pub fn update_vdi(app: &App, vdi: &str) -> ApiResult<()> {
    let (_, h, id) = vdi_handle(app, vdi)?;
    app.storage.locked(&h.rec.uuid, || {
        h.driver
            .vdi_update(&h.ctx, &id)
            .map_err(sm_err(&h.r, vdi))?;
        refresh_stats(app, &h)
    })
}

/// `VDI.introduce`: the driver adopts `location` under `uuid`.
pub fn introduce_vdi(
    app: &App,
    sr: &str,
    request: &sm::VdiIntroduce,
) -> ApiResult<Ref<classes::Vdi>> {
    let h = attached(app, sr)?;
    if vdi_ref_of(app, &request.uuid).is_some() {
        return Err(errors::uuid_invalid("VDI", &request.uuid));
    }
    app.storage.locked(&h.rec.uuid, || {
        let info = h
            .driver
            .vdi_introduce(&h.ctx, request)
            .map_err(sm_err(sr, ""))?;
        let new = vdi_ref_after(app, &info)?;
        refresh_stats(app, &h)?;
        Ok(new)
    })
}

/// `VDI.copy` into a new VDI: on the same SR a driver clone (an independent writable copy);
/// to another SR a new VDI of the same size filled through both NBD data paths.
pub fn copy_vdi(app: &App, vdi: &str, sr: &str) -> ApiResult<Ref<classes::Vdi>> {
    let rec: VdiRecord = read(app, vdi)?;
    if rec.sr.as_str() == sr {
        return snapshot_vdi(app, vdi, &BTreeMap::new(), false);
    }
    let new: Ref<classes::Vdi> = Ref::fresh();
    insert(
        app,
        new.as_str(),
        &VdiRecord {
            uuid: uuid::Uuid::new_v4().to_string(),
            name_label: rec.name_label.clone(),
            name_description: rec.name_description.clone(),
            sr: Ref::from_raw(sr),
            virtual_size: rec.virtual_size,
            type_: rec.type_,
            sharable: rec.sharable,
            other_config: rec.other_config.clone(),
            managed: true,
            ..VdiRecord::default()
        },
    )?;
    create_vdi(app, new.as_str())?;
    if let Err(e) = copy_data(app, vdi, &rec, new.as_str(), true) {
        let _ = destroy_vdi(app, new.as_str());
        return Err(e);
    }
    Ok(new)
}

/// `VDI.copy` into an existing VDI `into`: its contents become `vdi`'s (it must be writable,
/// unused and at least as large). Every chunk is written, zeroes included, since `into` may
/// hold older data there.
pub fn copy_into_vdi(app: &App, vdi: &str, into: &str) -> ApiResult<Ref<classes::Vdi>> {
    let rec: VdiRecord = read(app, vdi)?;
    let dst: VdiRecord = read(app, into)?;
    if vdi == into {
        return Err(errors::invalid_value("into_vdi", into));
    }
    if dst.virtual_size < rec.virtual_size {
        return Err(errors::vdi_too_small(into, rec.virtual_size));
    }
    if dst.read_only {
        return Err(errors::vdi_readonly(into));
    }
    if in_use(app, &dst) {
        return Err(errors::vdi_in_use(into, "copy"));
    }
    copy_data(app, vdi, &rec, into, false)?;
    let (_, h, _) = vdi_handle(app, into)?;
    app.storage.locked(&h.rec.uuid, || refresh_stats(app, &h))?;
    Ok(Ref::from_raw(into))
}

/// Chunk size of data copies (one VHD block).
const COPY_CHUNK: usize = 2 << 20;

/// Copies `src`'s contents into `dst` through their data paths; zero chunks are skipped when
/// `dst` is `fresh` (a new VDI reads zeroes there already).
fn copy_data(app: &App, src: &str, src_rec: &VdiRecord, dst: &str, fresh: bool) -> ApiResult<()> {
    // A VDI a VM is using stays active in its mode; otherwise it is ours to stop afterwards.
    let busy = in_use(app, src_rec);
    let writable = busy && !src_rec.read_only;
    let from = activate(app, src, writable)?;
    let to = match activate(app, dst, true) {
        Ok(to) => to,
        Err(e) => {
            if !busy {
                deactivate(app, src);
            }
            return Err(e);
        }
    };
    let result = match (from, to) {
        (
            Some(sm::DataPath::Nbd {
                socket: s1,
                export: e1,
            }),
            Some(sm::DataPath::Nbd {
                socket: s2,
                export: e2,
            }),
        ) => copy_nbd(&s1, &e1, &s2, &e2, fresh)
            .map_err(|e| ApiError::new("VDI_COPY_FAILED", vec![e.to_string()])),
        _ => Err(errors::unimplemented_in_sm_backend(
            "VDI.copy between these SR types",
        )),
    };
    deactivate(app, dst);
    if !busy {
        deactivate(app, src);
    }
    result
}

fn copy_nbd(
    from_socket: &Path,
    from_export: &str,
    to_socket: &Path,
    to_export: &str,
    fresh: bool,
) -> std::io::Result<()> {
    let mut from = nbd::Client::connect(from_socket, from_export)?;
    let mut to = nbd::Client::connect(to_socket, to_export)?;
    let size = from.size().min(to.size());
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut offset = 0u64;
    while offset < size {
        let n = usize::try_from((size - offset).min(COPY_CHUNK as u64)).unwrap_or(COPY_CHUNK);
        from.read_at(offset, &mut buf[..n])?;
        if !fresh || buf[..n].iter().any(|b| *b != 0) {
            to.write_at(offset, &buf[..n])?;
        }
        offset += n as u64;
    }
    to.flush()?;
    to.disconnect()?;
    from.disconnect()
}

/// Activates `vdi` for a consumer (a VBD being plugged or a VM starting) and returns where to
/// read and write it: an NBD URI, a plain file, or `None` when the driver serves no data.
pub fn activate(app: &App, vdi: &str, writable: bool) -> ApiResult<Option<sm::DataPath>> {
    let (_, h, id) = vdi_handle(app, vdi)?;
    app.storage.locked(&h.rec.uuid, || {
        let result = h
            .driver
            .vdi_activate(&h.ctx, &id, writable)
            .map_err(sm_err(&h.r, vdi))?;
        Ok(match result.data_path {
            sm::DataPath::Null => None,
            path => Some(path),
        })
    })
}

/// Stops serving `vdi` once no consumer needs it; failures are logged (the data is flushed
/// by the driver, and a later activate recovers).
pub fn deactivate(app: &App, vdi: &str) {
    let Ok((_, h, id)) = vdi_handle(app, vdi) else {
        return;
    };
    if let Err(e) = app
        .storage
        .locked(&h.rec.uuid, || h.driver.vdi_deactivate(&h.ctx, &id))
    {
        tracing::warn!(vdi, error = %e, "cannot deactivate VDI");
    }
}

/// Attaches every plugged PBD of this host at start (the drivers' attach state is in memory),
/// and makes sure the local default SR exists.
pub fn start(app: &Arc<App>) {
    app.storage.bind(app);
    for (r, p) in pbds_of_host(app) {
        if p.currently_attached {
            if let Err(e) = plug(app, &r) {
                tracing::warn!(pbd = %r, error = %e, "cannot re-attach SR at start");
                let _ = update::<PbdRecord>(app, &r, |rec| rec.currently_attached = false);
            }
        }
    }
    if let Err(e) = ensure_default_sr(app) {
        tracing::error!(error = %e, "cannot create the local SR");
    }
}

fn pbds_of_host(app: &App) -> Vec<(String, PbdRecord)> {
    app.db
        .rows(app.table_of::<classes::Pbd>())
        .into_iter()
        .filter_map(|(r, row)| PbdRecord::from_row(&row).ok().map(|p| (r, p)))
        .filter(|(_, p)| p.host.as_str() == app.host)
        .collect()
}

/// `other_config` key marking the SR the daemon made as its local storage.
const LOCAL_SR_KEY: &str = "xapi-rs-local-sr";

/// Creates "Local storage" (a `file` SR under `<state-dir>/sr/<uuid>`) unless the pool already
/// has a usable default SR, and makes it the pool's default, suspend-image and crash-dump SR.
pub fn ensure_default_sr(app: &App) -> ApiResult<()> {
    let pool: PoolRecord = read(app, &app.pool)?;
    if !pool.default_sr.is_null()
        && app
            .get_record::<SrRecord>(pool.default_sr.as_str())
            .is_some()
    {
        return Ok(());
    }
    let existing = app
        .db
        .rows(app.table_of::<classes::Sr>())
        .into_iter()
        .find(|(_, row)| {
            SrRecord::from_row(row).is_ok_and(|s| s.other_config.contains_key(LOCAL_SR_KEY))
        })
        .map(|(r, _)| Ref::<classes::Sr>::from_string(r));
    let sr = match existing {
        Some(sr) => sr,
        None => {
            let dir = app
                .config
                .state_dir
                .join("sr")
                .join(uuid::Uuid::new_v4().to_string());
            let mut device_config = BTreeMap::new();
            device_config.insert(sm_file::LOCATION.to_owned(), dir.display().to_string());
            let sr = create_sr(
                app,
                device_config,
                0,
                "Local storage",
                "",
                "file",
                "user",
                false,
                BTreeMap::new(),
            )?;
            update::<SrRecord>(app, sr.as_str(), |rec| {
                rec.other_config.insert(LOCAL_SR_KEY.into(), "true".into());
                rec.other_config
                    .insert("i18n-key".into(), "local-storage".into());
            })?;
            sr
        }
    };
    update::<PoolRecord>(app, &app.pool, |rec| {
        rec.default_sr = sr.clone();
        rec.suspend_image_sr = sr.clone();
        rec.crash_dump_sr = sr.clone();
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_xml_escapes_values() {
        assert_eq!(xml_escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }
}
