//! Writing a VM as XVA: the objects it needs (the VM, its VBDs and VIFs, their VDIs, SRs and
//! networks) get export ids `Ref:0`, `Ref:1`... in upstream's order, their records go into
//! `ova.xml` with references rewritten to those ids (or null when not exported, dropped from
//! lists) and run-time state cleared; then each disk (not CDs, not ISO SRs) follows in chunks.
use std::collections::HashMap;

use xapi_idl::{ApiError, ApiResult, Value};

use super::disk::Disk;
use super::format::{self, CHUNK};
use super::{s, Caller};

const NULL_REF: &str = "OpaqueRef:NULL";

/// The exported objects: internal ref -> export id, and the records in export order.
#[derive(Default)]
pub struct Table {
    ids: HashMap<String, String>,
    /// (class, internal ref, record), in the order ids were given.
    objects: Vec<(String, String, Value)>,
}

impl Table {
    fn add(&mut self, class: &str, r: &str, rec: Value) {
        if r == NULL_REF || self.ids.contains_key(r) {
            return;
        }
        self.ids
            .insert(r.to_owned(), format!("Ref:{}", self.ids.len()));
        self.objects.push((class.to_owned(), r.to_owned(), rec));
    }

    /// The export id of an internal ref.
    pub fn id(&self, r: &str) -> Option<&str> {
        self.ids.get(r).map(String::as_str)
    }
}

fn refs(rec: &Value, field: &str) -> Vec<String> {
    match rec.get(field) {
        Some(Value::Array(v)) => v
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn field<'a>(rec: &'a Value, name: &str) -> &'a str {
    rec.get(name).and_then(Value::as_str).unwrap_or("")
}

/// Walks from the VMs to everything exported with them, as upstream's `update_table` does.
pub fn collect(c: &Caller, vms: &[String], options: &Options) -> ApiResult<Table> {
    let mut t = Table::default();
    for vm in vms {
        walk(c, &mut t, vm, options, options.with_snapshot_metadata)?;
    }
    Ok(t)
}

/// Adds a VDI and its SR.
fn add_vdi(c: &Caller, t: &mut Table, vdi: &str) -> ApiResult<()> {
    if vdi == NULL_REF || t.id(vdi).is_some() {
        return Ok(());
    }
    let vdi_rec = c.call("VDI.get_record", vec![s(vdi)])?;
    let sr = field(&vdi_rec, "SR").to_owned();
    t.add("VDI", vdi, vdi_rec);
    if sr != NULL_REF {
        let sr_rec = c.call("SR.get_record", vec![s(&sr)])?;
        t.add("SR", &sr, sr_rec);
    }
    Ok(())
}

/// Adds `vm` and what it needs; with `snapshots` also its snapshots and its parent (each
/// without theirs), as upstream's metadata export does.
fn walk(c: &Caller, t: &mut Table, vm: &str, options: &Options, snapshots: bool) -> ApiResult<()> {
    if vm == NULL_REF || t.id(vm).is_some() {
        return Ok(());
    }
    let vm_rec = c.call("VM.get_record", vec![s(vm)])?;
    t.add("VM", vm, vm_rec.clone());
    let vifs = if options.excludes("VIF") {
        Vec::new()
    } else {
        refs(&vm_rec, "VIFs")
    };
    let vbds = if options.excludes("VBD") {
        Vec::new()
    } else {
        refs(&vm_rec, "VBDs")
    };
    for vif in vifs {
        let rec = c.call("VIF.get_record", vec![s(&vif)])?;
        let net = field(&rec, "network").to_owned();
        t.add("VIF", &vif, rec);
        if net != NULL_REF {
            let net_rec = c.call("network.get_record", vec![s(&net)])?;
            t.add("network", &net, net_rec);
        }
    }
    for vbd in vbds {
        let rec = c.call("VBD.get_record", vec![s(&vbd)])?;
        let empty = rec.get("empty") == Some(&Value::Bool(true));
        let vdi = field(&rec, "VDI").to_owned();
        t.add("VBD", &vbd, rec);
        if !empty {
            add_vdi(c, t, &vdi)?;
        }
    }
    if snapshots {
        for snap in refs(&vm_rec, "snapshots") {
            walk(c, t, &snap, options, false)?;
        }
    }
    // A suspended VM's memory image goes with it when its power state is kept.
    if options.preserve_power_state && field(&vm_rec, "power_state") == "Suspended" {
        add_vdi(c, t, field(&vm_rec, "suspend_VDI"))?;
    }
    if snapshots {
        walk(c, t, field(&vm_rec, "parent"), options, false)?;
    }
    Ok(())
}

/// Rewrites references: exported ones to their ids, others to null (dropped from lists).
pub fn rewrite(v: &Value, id: &dyn Fn(&str) -> Option<String>) -> Value {
    match v {
        Value::String(x) if x.starts_with("OpaqueRef:") || x.starts_with("Ref:") => {
            Value::String(id(x).unwrap_or_else(|| NULL_REF.to_owned()))
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|i| match i {
                    Value::String(x) if x.starts_with("OpaqueRef:") || x.starts_with("Ref:") => {
                        id(x).is_some()
                    }
                    _ => true,
                })
                .map(|i| rewrite(i, id))
                .collect(),
        ),
        Value::Struct(members) => Value::Struct(
            members
                .iter()
                .map(|(k, v)| (k.clone(), rewrite(v, id)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn set(rec: &mut Value, name: &str, v: Value) {
    if let Value::Struct(members) = rec {
        match members.iter_mut().find(|(k, _)| k == name) {
            Some((_, old)) => *old = v,
            None => members.push((name.to_owned(), v)),
        }
    }
}

/// What the request asks of an export.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Keep the VM's power state (and its VBDs' and VIFs' attachment), as upstream's
    /// `preserve_power_state=true`; otherwise the VM is exported halted.
    pub preserve_power_state: bool,
    /// Include the VM's snapshots (and parent) and keep the snapshot fields, as upstream's
    /// metadata export with `export_snapshots=true`; a full export never does.
    pub with_snapshot_metadata: bool,
    /// Device classes left out (`VIF`, `VBD`...), as `excluded_device_types`.
    pub excluded_devices: Vec<String>,
}

impl Options {
    fn excludes(&self, class: &str) -> bool {
        self.excluded_devices
            .iter()
            .any(|d| d.eq_ignore_ascii_case(class))
    }
}

/// Clears what only makes sense on the exporting host (power state, operations, snapshot
/// links, attachment), as upstream's export does; with `preserve` the power state, the
/// suspend image reference and the devices' attachment stay.
fn sanitise(class: &str, rec: &mut Value, preserve: bool, snapshots: bool) {
    let empty_map = || Value::Struct(Vec::new());
    let empty_set = || Value::Array(Vec::new());
    set(rec, "current_operations", empty_map());
    set(rec, "allowed_operations", empty_set());
    match class {
        "VM" => {
            if !preserve {
                set(rec, "power_state", s("Halted"));
                set(rec, "suspend_VDI", s(NULL_REF));
            }
            if !snapshots {
                set(rec, "is_a_snapshot", Value::Bool(false));
                set(rec, "snapshot_of", s(NULL_REF));
                set(rec, "snapshots", empty_set());
                set(rec, "parent", s(NULL_REF));
                set(rec, "transportable_snapshot_id", s(""));
            }
            set(rec, "crash_dumps", empty_set());
            set(rec, "consoles", empty_set());
            set(rec, "blobs", empty_map());
            set(rec, "protection_policy", s(NULL_REF));
        }
        "VBD" | "VIF" => {
            if !preserve {
                set(rec, "currently_attached", Value::Bool(false));
            }
            set(rec, "metrics", s(NULL_REF));
        }
        _ => {}
    }
}

/// The `version` struct: this host's software version, as upstream's `this_version`.
fn version(c: &Caller) -> ApiResult<Value> {
    let host = c.app.host.clone();
    let sv = c.call("host.get_software_version", vec![s(&host)])?;
    let get = |k: &str| s(sv.get(k).and_then(Value::as_str).unwrap_or(""));
    let (major, minor) = xapi_version(sv.get("xapi").and_then(Value::as_str).unwrap_or(""));
    Ok(Value::Struct(vec![
        ("hostname".into(), get("hostname")),
        ("date".into(), get("date")),
        ("product_version".into(), get("product_version")),
        ("product_brand".into(), get("product_brand")),
        ("build_number".into(), get("xapi_build")),
        ("xapi_major".into(), Value::Int(major)),
        ("xapi_minor".into(), Value::Int(minor)),
        ("export_vsn".into(), Value::Int(format::EXPORT_VSN)),
    ]))
}

/// `major.minor` at the start of the `xapi` software version (`24.12 (...)`).
pub fn xapi_version(text: &str) -> (i64, i64) {
    let head = text.split_whitespace().next().unwrap_or("");
    let mut parts = head.split('.').map(|p| p.parse::<i64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The `ova.xml` header value of an export.
pub fn header(c: &Caller, t: &Table, options: &Options) -> ApiResult<Value> {
    let id = |r: &str| t.id(r).map(str::to_owned);
    let mut objects = Vec::new();
    // Upstream groups the objects by class in this order.
    for class in ["VM", "VBD", "VIF", "network", "VDI", "SR"] {
        for (cls, r, rec) in t.objects.iter().filter(|(c, _, _)| c == class) {
            let mut snapshot = rewrite(rec, &id);
            sanitise(
                cls,
                &mut snapshot,
                options.preserve_power_state,
                options.with_snapshot_metadata,
            );
            objects.push(Value::Struct(vec![
                ("class".into(), s(cls)),
                ("id".into(), s(t.id(r).unwrap_or(NULL_REF))),
                ("snapshot".into(), snapshot),
            ]));
        }
    }
    Ok(Value::Struct(vec![
        ("version".into(), version(c)?),
        ("objects".into(), Value::Array(objects)),
    ]))
}

/// The disks to stream: (export id, VDI ref, size), sorted by id as upstream sorts them.
fn disks(t: &Table) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for (cls, _, rec) in &t.objects {
        // The disks behind VBDs (not CD drives), and a suspended VM's memory image when it
        // was collected (only with `preserve_power_state`).
        let vdi = match cls.as_str() {
            "VBD" if field(rec, "type") != "CD" => field(rec, "VDI"),
            "VM" => field(rec, "suspend_VDI"),
            _ => continue,
        };
        let Some(id) = t.id(vdi) else { continue };
        let Some((_, _, vdi_rec)) = t.objects.iter().find(|(_, r, _)| r == vdi) else {
            continue;
        };
        let iso = t
            .objects
            .iter()
            .find(|(_, r, _)| r == field(vdi_rec, "SR"))
            .is_some_and(|(_, _, sr)| field(sr, "content_type") == "iso");
        if iso {
            continue;
        }
        let size = match vdi_rec.get("virtual_size") {
            Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
            Some(Value::String(n)) => n.parse().unwrap_or(0),
            _ => 0,
        };
        out.push((id.to_owned(), vdi.to_owned(), size));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// What an export needs before its first byte goes out: the objects and the `ova.xml`
/// header. Building it checks the VM exists and is readable, so such errors can still get a
/// proper HTTP error reply.
pub struct Plan {
    table: Table,
    head: Value,
}

/// Collects the objects exported with `vms` and builds the header.
pub fn prepare(c: &Caller, vms: &[String], options: &Options) -> ApiResult<Plan> {
    let table = collect(c, vms, options)?;
    let head = header(c, &table, options)?;
    Ok(Plan { table, head })
}

/// The metadata-only XVA of `plan`: a tar holding just `ova.xml`, as upstream's
/// `/export_metadata` answers.
pub fn metadata(plan: &Plan) -> ApiResult<Vec<u8>> {
    let io = |e: std::io::Error| ApiError::internal(format!("export: {e}"));
    let mut tar = tar::Builder::new(Vec::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format::append(&mut tar, format::OVA_XML, &format::ova_xml(&plan.head), now).map_err(io)?;
    tar.into_inner().map_err(io)
}

/// Writes the XVA of `plan` to `out`: `ova.xml`, then each disk's chunks, then the tar's end.
/// A write error (the client went away) stops it.
pub fn write<W: std::io::Write>(c: &Caller, plan: &Plan, out: W) -> ApiResult<W> {
    let io = |e: std::io::Error| ApiError::internal(format!("export: {e}"));
    let mut tar = tar::Builder::new(out);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format::append(&mut tar, format::OVA_XML, &format::ova_xml(&plan.head), now).map_err(io)?;
    for (id, vdi, size) in disks(&plan.table) {
        let mut reader = Disk::reader(&c.app, &vdi)?;
        let result = (|| -> ApiResult<()> {
            let last = format::last_chunk(size);
            let mut buf = vec![0u8; CHUNK as usize];
            for index in 0..=last {
                let offset = index * CHUNK;
                if offset >= size && size > 0 {
                    break;
                }
                let n = usize::try_from((size - offset).min(CHUNK)).unwrap_or(0);
                reader.read_at(&vdi, offset, &mut buf[..n])?;
                if format::keep_chunk(index, last, &buf[..n]) {
                    format::append_chunk(&mut tar, &id, index, &buf[..n]).map_err(io)?;
                }
            }
            Ok(())
        })();
        let closed = reader.close(&c.app, &vdi);
        result?;
        closed?;
    }
    tar.into_inner().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_become_export_ids_or_null() {
        let id = |r: &str| (r == "OpaqueRef:a").then(|| "Ref:0".to_owned());
        let rec = Value::Struct(vec![
            ("VM".into(), s("OpaqueRef:a")),
            ("host".into(), s("OpaqueRef:b")),
            (
                "list".into(),
                Value::Array(vec![s("OpaqueRef:a"), s("OpaqueRef:b")]),
            ),
            ("name".into(), s("plain")),
        ]);
        assert_eq!(
            rewrite(&rec, &id),
            Value::Struct(vec![
                ("VM".into(), s("Ref:0")),
                ("host".into(), s(NULL_REF)),
                ("list".into(), Value::Array(vec![s("Ref:0")])),
                ("name".into(), s("plain")),
            ])
        );
    }

    #[test]
    fn vm_run_time_state_is_cleared() {
        let mut rec = Value::Struct(vec![("power_state".into(), s("Running"))]);
        sanitise("VM", &mut rec, false, false);
        assert_eq!(rec.get("power_state"), Some(&s("Halted")));
        assert_eq!(rec.get("snapshots"), Some(&Value::Array(vec![])));
    }

    #[test]
    fn preserve_power_state_keeps_it() {
        let mut rec = Value::Struct(vec![("power_state".into(), s("Suspended"))]);
        sanitise("VM", &mut rec, true, false);
        assert_eq!(rec.get("power_state"), Some(&s("Suspended")));
        assert_eq!(rec.get("snapshots"), Some(&Value::Array(vec![])));
    }

    #[test]
    fn xapi_version_is_read_from_the_software_version() {
        assert_eq!(xapi_version("24.12 (xapi-rs 0.1.0)"), (24, 12));
        assert_eq!(xapi_version(""), (0, 0));
    }
}
