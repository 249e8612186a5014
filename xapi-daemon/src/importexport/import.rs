//! Reading an XVA: `ova.xml` first (its version must not be newer than ours), then the objects
//! are created through the API with fresh uuids — networks matched to existing ones by bridge,
//! VDIs on the chosen SR (the pool's default SR when none is given), the VMs, their VBDs and
//! VIFs — and the disk chunks that follow are checked against their checksums and written. On
//! any failure everything created so far is destroyed again.
use std::collections::HashMap;
use std::path::Path;

use xapi_idl::{ApiError, ApiResult, Value};

use super::disk::Disk;
use super::export::{rewrite, xapi_version};
use super::format::{self, CHUNK};
use super::{s, Caller};

const NULL_REF: &str = "OpaqueRef:NULL";
/// Largest `ova.xml` accepted.
const MAX_OVA_XML: u64 = 256 << 20;

fn member_name(entry: &tar::Entry<'_, std::fs::File>) -> String {
    entry
        .path()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn generic(e: impl std::fmt::Display) -> ApiError {
    ApiError::new("IMPORT_ERROR_GENERIC", vec![e.to_string()])
}

fn unexpected(expected: &str, actual: &str) -> ApiError {
    ApiError::new(
        "IMPORT_ERROR_UNEXPECTED_FILE",
        vec![expected.to_owned(), actual.to_owned()],
    )
}

fn set(rec: &mut Value, name: &str, v: Value) {
    if let Value::Struct(members) = rec {
        match members.iter_mut().find(|(k, _)| k == name) {
            Some((_, old)) => *old = v,
            None => members.push((name.to_owned(), v)),
        }
    }
}

fn text<'a>(rec: &'a Value, name: &str) -> &'a str {
    rec.get(name).and_then(Value::as_str).unwrap_or("")
}

fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Int(n)) => *n,
        Some(Value::String(t)) => t.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Refuses an export written by a newer xapi than this one, as upstream's `assert_compatible`.
fn check_version(c: &Caller, version: Option<&Value>) -> ApiResult<()> {
    let Some(v) = version else {
        return Err(generic("ova.xml has no version"));
    };
    let host = c.app.host.clone();
    let sv = c.call("host.get_software_version", vec![s(&host)])?;
    let ours = xapi_version(sv.get("xapi").and_then(Value::as_str).unwrap_or(""));
    let theirs = (int(v.get("xapi_major")), int(v.get("xapi_minor")));
    if ours < theirs {
        return Err(ApiError::new("IMPORT_INCOMPATIBLE_VERSION", vec![]));
    }
    Ok(())
}

/// The SR new disks go to: `sr` or the pool's default SR.
fn target_sr(c: &Caller, sr: Option<&str>) -> ApiResult<String> {
    if let Some(sr) = sr {
        c.call("SR.get_uuid", vec![s(sr)])?;
        return Ok(sr.to_owned());
    }
    let pools = c.call("pool.get_all", vec![])?;
    let pool = match &pools {
        Value::Array(v) => v.first().and_then(Value::as_str).unwrap_or(NULL_REF),
        _ => NULL_REF,
    };
    let sr = c.call_string("pool.get_default_SR", vec![s(pool)])?;
    if sr == NULL_REF || c.call("SR.get_uuid", vec![s(&sr)]).is_err() {
        return Err(ApiError::new("DEFAULT_SR_NOT_FOUND", vec![sr]));
    }
    Ok(sr)
}

/// What an import created, in creation order (destroyed in reverse on failure).
#[derive(Default)]
struct Created {
    objects: Vec<(&'static str, String)>,
}

impl Created {
    fn undo(&self, c: &Caller) {
        for (class, r) in self.objects.iter().rev() {
            if let Err(e) = c.call(&format!("{class}.destroy"), vec![s(r)]) {
                tracing::warn!(class, r, error = %e, "cannot clean up after a failed import");
            }
        }
    }
}

/// An existing network with the exported network's bridge, or a new one.
fn network(c: &Caller, created: &mut Created, snapshot: &Value) -> ApiResult<String> {
    let bridge = text(snapshot, "bridge");
    if let Value::Struct(all) = c.call("network.get_all_records", vec![])? {
        if let Some((r, _)) = all
            .iter()
            .find(|(_, rec)| !bridge.is_empty() && text(rec, "bridge") == bridge)
        {
            return Ok(r.clone());
        }
    }
    let r = c.call_string("network.create", vec![snapshot.clone()])?;
    created.objects.push(("network", r.clone()));
    Ok(r)
}

/// Creates the objects of `ova.xml`; returns export id -> new ref, and the new VMs.
fn create_objects(
    c: &Caller,
    created: &mut Created,
    objects: &[Value],
    sr: &str,
) -> ApiResult<(HashMap<String, String>, Vec<String>)> {
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut vms = Vec::new();
    for class in ["SR", "network", "VDI", "VM", "VBD", "VIF"] {
        for obj in objects.iter().filter(|o| text(o, "class") == class) {
            let id = text(obj, "id").to_owned();
            let snapshot = obj
                .get("snapshot")
                .cloned()
                .unwrap_or(Value::Struct(vec![]));
            let lookup = |r: &str| ids.get(r).cloned();
            let mut rec = rewrite(&snapshot, &lookup);
            let new = match class {
                "SR" => sr.to_owned(),
                "network" => network(c, created, &rec)?,
                "VDI" => {
                    set(&mut rec, "SR", s(sr));
                    set(&mut rec, "sm_config", Value::Struct(vec![]));
                    let r = c.call_string("VDI.create", vec![rec])?;
                    created.objects.push(("VDI", r.clone()));
                    r
                }
                "VM" => {
                    set(&mut rec, "is_control_domain", Value::Bool(false));
                    let r = c.call_string("VM.create", vec![rec])?;
                    created.objects.push(("VM", r.clone()));
                    vms.push(r.clone());
                    r
                }
                "VBD" => {
                    if text(&rec, "VDI") == NULL_REF {
                        set(&mut rec, "empty", Value::Bool(true));
                    }
                    let r = c.call_string("VBD.create", vec![rec])?;
                    created.objects.push(("VBD", r.clone()));
                    r
                }
                _ => {
                    let r = c.call_string("VIF.create", vec![rec])?;
                    created.objects.push(("VIF", r.clone()));
                    r
                }
            };
            ids.insert(id, new);
        }
    }
    Ok((ids, vms))
}

/// The disk currently being written.
struct Current {
    prefix: String,
    vdi: String,
    disk: Disk,
}

/// Writes the chunks that follow `ova.xml`.
fn write_disks(
    c: &Caller,
    entries: &mut tar::Entries<'_, std::fs::File>,
    ids: &HashMap<String, String>,
) -> ApiResult<()> {
    let mut current: Option<Current> = None;
    // A chunk read but not written yet: it waits for its checksum member.
    let mut pending: Option<(String, u64, Vec<u8>)> = None;
    let result = (|| {
        for entry in entries.by_ref() {
            let mut entry = entry.map_err(generic)?;
            let name = member_name(&entry);
            if let Some((chunk, index, data)) = pending.take() {
                let sum = format::read_member(&mut entry, 1024).map_err(generic)?;
                if name != format!("{chunk}{}", format::XXHASH_SUFFIX)
                    && name != format!("{chunk}{}", format::SHA1_SUFFIX)
                {
                    return Err(unexpected(
                        &format!("{chunk}{}", format::XXHASH_SUFFIX),
                        &name,
                    ));
                }
                format::verify(&name, &data, &String::from_utf8_lossy(&sum))?;
                if let Some(cur) = current.as_mut() {
                    cur.disk.write_at(&cur.vdi, index * CHUNK, &data)?;
                }
                continue;
            }
            let Some((prefix, index)) = format::parse_chunk_name(&name) else {
                return Err(unexpected("Ref:<n>/<chunk>", &name));
            };
            if current.as_ref().map(|cur| cur.prefix.as_str()) != Some(prefix) {
                if let Some(cur) = current.take() {
                    cur.disk.close(&c.app, &cur.vdi)?;
                }
                let vdi = ids.get(prefix).cloned().ok_or_else(|| {
                    ApiError::new(
                        "IMPORT_ERROR_FAILED_TO_FIND_OBJECT",
                        vec![prefix.to_owned()],
                    )
                })?;
                let disk = Disk::writer(&c.app, &vdi)?;
                current = Some(Current {
                    prefix: prefix.to_owned(),
                    vdi,
                    disk,
                });
            }
            let data = format::read_member(&mut entry, CHUNK).map_err(generic)?;
            pending = Some((name.clone(), index, data));
        }
        match pending.take() {
            Some((chunk, _, _)) => Err(unexpected(
                &format!("{chunk}{}", format::XXHASH_SUFFIX),
                "<end of file>",
            )),
            None => Ok(()),
        }
    })();
    let closed = match current {
        Some(cur) => cur.disk.close(&c.app, &cur.vdi),
        None => Ok(()),
    };
    result.and(closed)
}

/// Imports the XVA in `file`; the new VMs' refs.
pub fn import(c: &Caller, file: &Path, sr: Option<&str>) -> ApiResult<Vec<String>> {
    let f = std::fs::File::open(file).map_err(generic)?;
    let mut archive = tar::Archive::new(f);
    let mut entries = archive.entries().map_err(generic)?;
    let mut first = match entries.next() {
        Some(e) => e.map_err(generic)?,
        None => return Err(ApiError::new("IMPORT_ERROR_PREMATURE_EOF", vec![])),
    };
    let name = member_name(&first);
    if name != format::OVA_XML {
        return Err(unexpected(format::OVA_XML, &name));
    }
    let xml = format::read_member(&mut first, MAX_OVA_XML).map_err(generic)?;
    drop(first);
    let header = format::parse_ova_xml(&xml)?;
    check_version(c, header.get("version"))?;
    let objects = match header.get("objects") {
        Some(Value::Array(v)) => v.clone(),
        _ => return Err(generic("ova.xml has no objects")),
    };
    let needs_sr = objects.iter().any(|o| text(o, "class") == "VDI");
    let sr = if needs_sr {
        target_sr(c, sr)?
    } else {
        NULL_REF.to_owned()
    };
    let mut created = Created::default();
    let outcome = create_objects(c, &mut created, &objects, &sr)
        .and_then(|(ids, vms)| write_disks(c, &mut entries, &ids).map(|()| vms));
    if outcome.is_err() {
        created.undo(c);
    }
    outcome
}
