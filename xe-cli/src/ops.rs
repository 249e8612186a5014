//! Explicit commands: the VM lifecycle, storage, network, host, task, event and message
//! commands operators use most, each calling the XenAPI messages upstream's CLI calls, plus a
//! generic fallback that maps `<class>-<action>` onto `<Class>.<action>` for the rest.
use xapi_idl::model::{model, MessageDef};
use xapi_idl::Type;
use xapi_rpc::Value;

use crate::api::{field_text, s, Api, NULL_REF};
use crate::args::CommandLine;
use crate::error::{fail, CliError};
use crate::fields::{self, cli_class, CliClass};
use crate::generic;
use crate::printer::Printer;
use crate::route::Route;
use crate::select::{self, Family, Obj};
use crate::table::Command;
use crate::task;
use crate::transfer;

/// Runs an explicit command.
pub fn run(
    api: &mut Api,
    p: &mut Printer,
    spec: &Command,
    cmd: &CommandLine,
) -> Result<(), CliError> {
    let ignore: Vec<String> = spec.reqd.iter().chain(spec.optn.iter()).cloned().collect();
    let vm_op = |api: &mut Api, incl_templates: bool| -> Result<Vec<Obj>, CliError> {
        select::select(api, Family::Vm, cmd, &ignore, false, incl_templates)
    };
    match crate::route::route(&spec.name) {
        Route::Mapped(row) => return crate::mapped::run(api, p, row, cmd),
        Route::Special => return crate::special::run(api, p, &spec.name, cmd, &ignore),
        Route::Fallback(class, msg) => return fallback(api, p, spec, cmd, &ignore, class, msg),
        Route::Unsupported => {
            // Selectors are still checked first, so a bad one reads as it does elsewhere.
            if let Some(family) = Family::of(spec) {
                let objs = select::select(api, family, cmd, &ignore, false, false)?;
                select::run_on(family, objs, cmd, true, api, |_, _| {
                    Err::<(), _>(unsupported(spec))
                })?;
            }
            return Err(unsupported(spec));
        }
        Route::Ops => {}
    }
    match spec.name.as_str() {
        "vm-start" => {
            let force = cmd.flag("force");
            let paused = cmd.flag("paused");
            let objs = select::select(api, Family::Vm, cmd, &ignore, true, false)?;
            let on = match cmd.get("on") {
                Some(h) => Some(host_by_name_or_id(api, h)?),
                None => None,
            };
            // As upstream, the start runs as a task that xe waits for.
            select::run_on(Family::Vm, objs, cmd, true, api, |api, (r, _)| match &on {
                Some(h) => task::call(
                    api,
                    "VM.start_on",
                    vec![s(r), s(h), Value::Bool(paused), Value::Bool(force)],
                ),
                None => task::call(
                    api,
                    "VM.start",
                    vec![s(r), Value::Bool(paused), Value::Bool(force)],
                ),
            })?;
        }
        "vm-shutdown"
        | "vm-reboot"
        | "vm-suspend"
        | "vm-resume"
        | "vm-pause"
        | "vm-unpause"
        | "vm-reset-powerstate" => {
            let force = cmd.flag("force");
            let objs = vm_op(api, false)?;
            let (method, extra): (&str, Vec<Value>) = match (spec.name.as_str(), force) {
                ("vm-shutdown", true) => ("VM.hard_shutdown", vec![]),
                ("vm-shutdown", false) => ("VM.clean_shutdown", vec![]),
                ("vm-reboot", true) => ("VM.hard_reboot", vec![]),
                ("vm-reboot", false) => ("VM.clean_reboot", vec![]),
                ("vm-suspend", _) => ("VM.suspend", vec![]),
                ("vm-resume", _) => ("VM.resume", vec![Value::Bool(false), Value::Bool(force)]),
                ("vm-pause", _) => ("VM.pause", vec![]),
                ("vm-unpause", _) => ("VM.unpause", vec![]),
                _ => ("VM.power_state_reset", vec![]),
            };
            // Upstream runs shutdown, suspend and resume as tasks and waits for them; reboot,
            // pause, unpause and the power-state reset are plain calls.
            let asynchronous = matches!(
                method,
                "VM.hard_shutdown" | "VM.clean_shutdown" | "VM.suspend" | "VM.resume"
            );
            select::run_on(Family::Vm, objs, cmd, true, api, |api, (r, _)| {
                let mut args = vec![s(r)];
                args.extend(extra.iter().cloned());
                if asynchronous {
                    task::call(api, method, args).map(|_| ())
                } else {
                    api.call(method, args).map(|_| ())
                }
            })?;
        }
        "vm-snapshot" | "vm-clone" | "vm-copy" | "vm-checkpoint" => {
            let name = cmd.reqd("new-name-label")?.to_owned();
            let descr = cmd.get("new-name-description").map(str::to_owned);
            let sr = match cmd.get("sr-uuid") {
                Some(u) => Some(api.by_uuid("SR", u)?),
                None => None,
            };
            let ignore_vdis: Vec<Value> = match cmd.get("ignore-vdi-uuids") {
                Some(list) => {
                    let mut out = Vec::new();
                    for u in list.split(',') {
                        out.push(s(&api.by_uuid("VDI", u)?));
                    }
                    out
                }
                None => Vec::new(),
            };
            let objs = vm_op(api, false)?;
            let uuids = select::run_on(Family::Vm, objs, cmd, false, api, |api, (r, _)| {
                let new = match spec.name.as_str() {
                    "vm-snapshot" if !ignore_vdis.is_empty() => api.call_string(
                        "VM.snapshot",
                        vec![s(r), s(&name), Value::Array(ignore_vdis.clone())],
                    )?,
                    "vm-snapshot" => api.call_string("VM.snapshot", vec![s(r), s(&name)])?,
                    "vm-checkpoint" => api.call_string("VM.checkpoint", vec![s(r), s(&name)])?,
                    "vm-copy" => api.call_string(
                        "VM.copy",
                        vec![s(r), s(&name), s(sr.as_deref().unwrap_or(NULL_REF))],
                    )?,
                    _ => api.call_string("VM.clone", vec![s(r), s(&name)])?,
                };
                if let Some(d) = &descr {
                    api.call("VM.set_name_description", vec![s(&new), s(d)])?;
                }
                api.call_string("VM.get_uuid", vec![s(&new)])
            })?;
            p.list(&uuids);
        }
        "vm-install" => crate::install::vm_install(api, p, cmd)?,
        "vm-export" => {
            let filename = cmd.reqd("filename")?.to_owned();
            let objs = vm_op(api, false)?;
            // As upstream, several VMs go to `<filename>`, `<filename>2`, `<filename>3`...
            let mut n = 0;
            select::run_on(Family::Vm, objs, cmd, true, api, |api, vm| {
                n += 1;
                let f = if n > 1 {
                    format!("{filename}{n}")
                } else {
                    filename.clone()
                };
                transfer::export_one(api, p, cmd, vm, &f)
            })?;
        }
        "vm-import" => transfer::import(api, p, cmd)?,
        "vm-uninstall" => {
            let objs = vm_op(api, false)?;
            let mut objs = select::run_on(Family::Vm, objs, cmd, true, api, |_, o| Ok(o.clone()))?;
            // As upstream, the VMs' snapshots go with them.
            let mut snapshots = Vec::new();
            for (_, rec) in &objs {
                if let Some(Value::Array(refs)) = rec.get("snapshots") {
                    for r in refs.iter().filter_map(Value::as_str) {
                        if let Some(snap) = api.record("VM", r)? {
                            snapshots.push((r.to_owned(), snap));
                        }
                    }
                }
            }
            objs.extend(snapshots);
            crate::install::vm_uninstall(api, p, cmd, objs)?;
        }
        "template-uninstall" | "snapshot-uninstall" => {
            let key = if spec.name == "template-uninstall" {
                "template-uuid"
            } else {
                "snapshot-uuid"
            };
            let uuid = cmd
                .get(key)
                .or(cmd.get("uuid"))
                .ok_or_else(|| CliError::ParamNotFound(key.into()))?;
            let r = api.by_uuid("VM", uuid)?;
            let rec = api.call("VM.get_record", vec![s(&r)])?;
            crate::install::vm_uninstall(api, p, cmd, vec![(r, rec)])?;
        }
        "vm-destroy" => {
            let r = api.by_uuid("VM", cmd.reqd("uuid")?)?;
            api.call("VM.destroy", vec![s(&r)])?;
        }
        "vm-disk-add" => {
            let size = parse_size("disk-size", cmd.reqd("disk-size")?)?;
            let device = cmd.reqd("device")?.to_owned();
            let sr = match cmd.get("sr-uuid") {
                Some(u) => api.by_uuid("SR", u)?,
                None => default_sr(api)?.ok_or_else(|| {
                    fail("No default Pool SR set; you must specify an SR on the commandline")
                })?,
            };
            let objs = vm_op(api, false)?;
            select::run_on(Family::Vm, objs, cmd, true, api, |api, (vm, rec)| {
                let vm_uuid = field_text(rec, "uuid");
                let vdi = vdi_create(api, &sr, "Created by xe", size, &[("vmhint", &vm_uuid)])?;
                match vbd_create(api, vm, &vdi, &device, "Disk", "RW", false, true) {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        let _ = api.call("VDI.destroy", vec![s(&vdi)]);
                        Err(e)
                    }
                }
            })?;
        }
        "vm-cd-insert" => {
            let name = cmd.reqd("cd-name")?.to_owned();
            let vdis = api.call("VDI.get_by_name_label", vec![s(&name)])?;
            let vdi = match vdis {
                Value::Array(v) if !v.is_empty() => v[0].as_str().unwrap_or(NULL_REF).to_owned(),
                _ => return Err(fail(format!("CD {name} not found"))),
            };
            let objs = vm_op(api, false)?;
            select::run_on(Family::Vm, objs, cmd, true, api, |api, (_, rec)| {
                let vbd = empty_cd(api, rec)?;
                api.call("VBD.insert", vec![s(&vbd), s(&vdi)])
            })?;
        }
        "vm-cd-eject" => {
            let objs = vm_op(api, false)?;
            select::run_on(Family::Vm, objs, cmd, true, api, |api, (_, rec)| {
                let vbd = cd_drive(api, rec, false)?;
                api.call("VBD.eject", vec![s(&vbd)])
            })?;
        }
        "vm-vif-list" | "vm-disk-list" | "vm-cd-list" | "snapshot-disk-list" => {
            let mut with_multiple = cmd.clone();
            with_multiple
                .params
                .push(("multiple".into(), "true".into()));
            let objs = if spec.name == "snapshot-disk-list" {
                let uuid = cmd
                    .get("snapshot-uuid")
                    .or(cmd.get("uuid"))
                    .ok_or_else(|| fail("Required parameter not found: snapshot-uuid or uuid."))?;
                let r = api.by_uuid("VM", uuid)?;
                let rec = api.call("VM.get_record", vec![s(&r)])?;
                vec![(r, rec)]
            } else {
                select::select(api, Family::Vm, cmd, &["params".into()], false, false)?
            };
            let (class, set, defaults): (&str, &str, Vec<String>) = match spec.name.as_str() {
                "vm-vif-list" => (
                    "vif",
                    "VIFs",
                    [
                        "uuid",
                        "device",
                        "MAC",
                        "network-uuid",
                        "network-name-label",
                        "vm-name-label",
                    ]
                    .map(String::from)
                    .to_vec(),
                ),
                _ => (
                    "vbd",
                    "VBDs",
                    ["uuid", "vm-name-label", "userdevice", "empty"]
                        .map(String::from)
                        .to_vec(),
                ),
            };
            let c = cli_class(class).ok_or_else(|| fail("no CLI class"))?;
            let chosen = generic::chosen_params(cmd, &defaults);
            let records = select::run_on(
                Family::Vm,
                objs,
                &with_multiple,
                true,
                api,
                |api, (_, rec)| {
                    let mut out = Vec::new();
                    if let Some(Value::Array(items)) = rec.get(set) {
                        for item in items {
                            if let Some(r) = item.as_str() {
                                let sub =
                                    api.call(&format!("{}.get_record", c.wire), vec![s(r)])?;
                                out.push(generic::print_record(api, c, &sub, &chosen, false)?);
                            }
                        }
                    }
                    Ok(out)
                },
            )?;
            for r in records {
                p.table(&r);
            }
        }
        "network-create" => {
            let mtu = match cmd.get("MTU") {
                Some(m) => m
                    .parse::<i64>()
                    .map_err(|_| fail("Parameter MTU must be an integer"))?,
                None => 1500,
            };
            let rec = Value::Struct(vec![
                ("name_label".into(), s(cmd.reqd("name-label")?)),
                (
                    "name_description".into(),
                    s(cmd.get("name-description").unwrap_or("")),
                ),
                ("MTU".into(), Value::Int(mtu)),
                ("other_config".into(), Value::Struct(Vec::new())),
                ("bridge".into(), s(cmd.get("bridge").unwrap_or(""))),
                (
                    "managed".into(),
                    Value::Bool(
                        cmd.get("managed")
                            .and_then(fields::parse_bool)
                            .unwrap_or(true),
                    ),
                ),
                ("tags".into(), Value::Array(Vec::new())),
            ]);
            print_new_uuid(api, p, "network", rec)?;
        }
        "vif-create" => {
            let vm = api.by_uuid("VM", cmd.reqd("vm-uuid")?)?;
            let net = api.by_uuid("network", cmd.reqd("network-uuid")?)?;
            let rec = Value::Struct(vec![
                ("device".into(), s(cmd.reqd("device")?)),
                ("network".into(), s(&net)),
                ("VM".into(), s(&vm)),
                ("MAC".into(), s(cmd.get("mac").unwrap_or(""))),
                ("MTU".into(), Value::Int(1500)),
                ("other_config".into(), Value::Struct(Vec::new())),
                ("qos_algorithm_type".into(), s("")),
                ("qos_algorithm_params".into(), Value::Struct(Vec::new())),
            ]);
            print_new_uuid(api, p, "VIF", rec)?;
        }
        "vbd-create" => {
            let vm = api.by_uuid("VM", cmd.reqd("vm-uuid")?)?;
            let device = cmd.reqd("device")?.to_owned();
            let vdi = match cmd.get("vdi-uuid") {
                Some(u) => api.by_uuid("VDI", u)?,
                None => NULL_REF.to_owned(),
            };
            let ty = match cmd
                .get("type")
                .unwrap_or("Disk")
                .to_ascii_lowercase()
                .as_str()
            {
                "cd" => "CD",
                "floppy" => "Floppy",
                _ => "Disk",
            };
            let mode = if cmd
                .get("mode")
                .is_some_and(|m| m.eq_ignore_ascii_case("ro"))
            {
                "RO"
            } else {
                "RW"
            };
            let bootable = cmd.flag("bootable");
            let unpluggable = cmd
                .get("unpluggable")
                .and_then(fields::parse_bool)
                .unwrap_or(true);
            let vbd = vbd_record(
                &vm,
                &vdi,
                &device,
                ty,
                mode,
                bootable,
                unpluggable,
                vdi == NULL_REF,
                false,
            );
            let r = api.call_string("VBD.create", vec![vbd])?;
            p.list(&[api.call_string("VBD.get_uuid", vec![s(&r)])?]);
        }
        "vdi-create" => {
            let sr = api.by_uuid("SR", cmd.reqd("sr-uuid")?)?;
            let size = parse_size("virtual-size", cmd.reqd("virtual-size")?)?;
            let ty = cmd.get("type").unwrap_or("user").to_ascii_lowercase();
            let rec = Value::Struct(vec![
                ("name_label".into(), s(cmd.reqd("name-label")?)),
                ("name_description".into(), s("")),
                ("SR".into(), s(&sr)),
                ("virtual_size".into(), Value::Int(size)),
                ("type".into(), s(&ty)),
                ("sharable".into(), Value::Bool(cmd.flag("sharable"))),
                ("read_only".into(), Value::Bool(false)),
                ("other_config".into(), Value::Struct(Vec::new())),
                ("xenstore_data".into(), Value::Struct(Vec::new())),
                (
                    "sm_config".into(),
                    Value::Struct(map_params(cmd, "sm-config")),
                ),
                ("tags".into(), Value::Array(Vec::new())),
            ]);
            let r = api.call_string("VDI.create", vec![rec])?;
            p.list(&[api.call_string("VDI.get_uuid", vec![s(&r)])?]);
        }
        "sr-create" => {
            let host = match cmd.get("host-uuid") {
                Some(u) => api.by_uuid("host", u)?,
                None => this_host(api)?,
            };
            let size = match cmd.get("physical-size") {
                Some(v) => parse_size("physical-size", v)?,
                None => 0,
            };
            let r = api.call_string(
                "SR.create",
                vec![
                    s(&host),
                    Value::Struct(map_params(cmd, "device-config")),
                    Value::Int(size),
                    s(cmd.reqd("name-label")?),
                    s(cmd.get("name-description").unwrap_or("")),
                    s(cmd.reqd("type")?),
                    s(cmd.get("content-type").unwrap_or("")),
                    Value::Bool(cmd.flag("shared")),
                    Value::Struct(map_params(cmd, "sm-config")),
                ],
            )?;
            p.list(&[api.call_string("SR.get_uuid", vec![s(&r)])?]);
        }
        "event-wait" => event_wait(api, cmd)?,
        "message-create" => {
            let (cls, uuid) = [
                ("vm-uuid", "VM"),
                ("host-uuid", "Host"),
                ("sr-uuid", "SR"),
                ("pool-uuid", "Pool"),
            ]
            .iter()
            .find_map(|(k, c)| cmd.get(k).map(|u| (*c, u.to_owned())))
            .ok_or_else(|| fail("Need one of: vm-uuid, host-uuid, sr-uuid or pool-uuid"))?;
            let prio = cmd
                .reqd("priority")?
                .parse::<i64>()
                .map_err(|_| fail("priority must be an integer"))?;
            api.call(
                "message.create",
                vec![
                    s(cmd.reqd("name")?),
                    Value::Int(prio),
                    s(cls),
                    s(&uuid),
                    s(cmd.reqd("body")?),
                ],
            )?;
        }
        _ => return Err(unsupported(spec)),
    }
    Ok(())
}

/// `host=<name or uuid>` as upstream's `get_host_by_name_or_id`.
pub(crate) fn host_by_name_or_id(api: &mut Api, name: &str) -> Result<String, CliError> {
    let hosts = api.records_where("host", "true")?;
    hosts
        .into_iter()
        .find(|(_, rec)| field_text(rec, "name_label") == name || field_text(rec, "uuid") == name)
        .map(|(r, _)| r)
        .ok_or_else(|| fail(format!("Host {name} not found")))
}

pub(crate) fn this_host(api: &mut Api) -> Result<String, CliError> {
    let session = api.session()?;
    api.call_string("session.get_this_host", vec![s(&session)])
}

/// The pool (there is one per server), if the server lists it.
pub(crate) fn the_pool(api: &mut Api) -> Result<Option<String>, CliError> {
    Ok(match api.call("pool.get_all", Vec::new())? {
        Value::Array(v) => v.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    })
}

/// The pool's default SR, when it is set and exists.
pub(crate) fn default_sr(api: &mut Api) -> Result<Option<String>, CliError> {
    let Some(pool) = the_pool(api)? else {
        return Ok(None);
    };
    let sr = api.call_string("pool.get_default_SR", vec![s(&pool)])?;
    Ok(match api.call_string("SR.get_uuid", vec![s(&sr)]) {
        Ok(_) => Some(sr),
        Err(_) => None,
    })
}

/// `map:key=value` parameters of one map, as a wire struct.
pub(crate) fn map_params(cmd: &CommandLine, map: &str) -> Vec<(String, Value)> {
    let prefix = format!("{map}:");
    cmd.params
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|key| (key.to_owned(), s(v))))
        .collect()
}

/// Sizes as upstream accepts them: bytes, or with a `KiB`/`MiB`/`GiB`/`TiB` (or K/M/G/T) suffix.
pub fn parse_size(name: &str, text: &str) -> Result<i64, CliError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().map_err(|_| {
        fail(format!(
            "Failed to parse parameter '{name}': expecting a size"
        ))
    })?;
    let mult: i64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        "t" | "tib" | "tb" => 1 << 40,
        _ => {
            return Err(fail(format!(
                "Failed to parse parameter '{name}': unknown unit {unit}"
            )))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| fail(format!("Failed to parse parameter '{name}': too large")))
}

/// Prints the uuid of `class` object `r`, as xe answers a command that made it.
pub(crate) fn print_uuid(
    api: &mut Api,
    p: &mut Printer,
    class: &str,
    r: &str,
) -> Result<(), CliError> {
    let uuid = api.call_string(&format!("{class}.get_uuid"), vec![s(r)])?;
    p.list(&[uuid]);
    Ok(())
}

fn print_new_uuid(api: &mut Api, p: &mut Printer, class: &str, rec: Value) -> Result<(), CliError> {
    let r = api.call_string(&format!("{class}.create"), vec![rec])?;
    print_uuid(api, p, class, &r)
}

fn vdi_create(
    api: &mut Api,
    sr: &str,
    name: &str,
    size: i64,
    sm: &[(&str, &str)],
) -> Result<String, CliError> {
    let rec = Value::Struct(vec![
        ("name_label".into(), s(name)),
        ("name_description".into(), s(name)),
        ("SR".into(), s(sr)),
        ("virtual_size".into(), Value::Int(size)),
        ("type".into(), s("user")),
        ("sharable".into(), Value::Bool(false)),
        ("read_only".into(), Value::Bool(false)),
        ("other_config".into(), Value::Struct(Vec::new())),
        ("xenstore_data".into(), Value::Struct(Vec::new())),
        (
            "sm_config".into(),
            Value::Struct(sm.iter().map(|(k, v)| (k.to_string(), s(v))).collect()),
        ),
        ("tags".into(), Value::Array(Vec::new())),
    ]);
    api.call_string("VDI.create", vec![rec])
}

/// A `VBD.create` record. Disks `vm-disk-add` makes carry `other_config:owner`, which marks
/// them for `vm-uninstall` to destroy; `vbd-create` and CD drives do not, as upstream.
#[allow(clippy::too_many_arguments)] // Mirrors the VBD constructor's fields one to one.
fn vbd_record(
    vm: &str,
    vdi: &str,
    device: &str,
    ty: &str,
    mode: &str,
    bootable: bool,
    unpluggable: bool,
    empty: bool,
    owner: bool,
) -> Value {
    let other_config = if owner {
        vec![("owner".to_owned(), s(""))]
    } else {
        Vec::new()
    };
    Value::Struct(vec![
        ("VM".into(), s(vm)),
        ("VDI".into(), s(vdi)),
        ("userdevice".into(), s(device)),
        ("bootable".into(), Value::Bool(bootable)),
        ("mode".into(), s(mode)),
        ("type".into(), s(ty)),
        ("unpluggable".into(), Value::Bool(unpluggable)),
        ("empty".into(), Value::Bool(empty)),
        ("other_config".into(), Value::Struct(other_config)),
        ("qos_algorithm_type".into(), s("")),
        ("qos_algorithm_params".into(), Value::Struct(Vec::new())),
        ("device".into(), s("")),
        ("currently_attached".into(), Value::Bool(false)),
    ])
}

/// Creates a VBD and tries to hot-plug it; a failed plug is not an error, as upstream. A
/// disk is the VM's own (`other_config:owner`), a CD drive is not.
#[allow(clippy::too_many_arguments)] // Mirrors the VBD constructor's fields one to one.
pub(crate) fn vbd_create(
    api: &mut Api,
    vm: &str,
    vdi: &str,
    device: &str,
    ty: &str,
    mode: &str,
    bootable: bool,
    unpluggable: bool,
) -> Result<String, CliError> {
    let owner = ty == "Disk";
    let rec = vbd_record(
        vm,
        vdi,
        device,
        ty,
        mode,
        bootable,
        unpluggable,
        false,
        owner,
    );
    let vbd = api.call_string("VBD.create", vec![rec])?;
    let _ = api.call("VBD.plug", vec![s(&vbd)]);
    Ok(vbd)
}

pub(crate) fn cd_drive(
    api: &mut Api,
    vm_rec: &Value,
    want_empty: bool,
) -> Result<String, CliError> {
    if let Some(Value::Array(vbds)) = vm_rec.get("VBDs") {
        for v in vbds {
            let Some(r) = v.as_str() else { continue };
            if let Some(rec) = api.record("VBD", r)? {
                if field_text(&rec, "type") == "CD"
                    && (!want_empty || field_text(&rec, "empty") == "true")
                {
                    return Ok(r.to_owned());
                }
            }
        }
    }
    Err(fail(if want_empty {
        "No empty CD drive found"
    } else {
        "No CD drive found"
    }))
}

fn empty_cd(api: &mut Api, vm_rec: &Value) -> Result<String, CliError> {
    cd_drive(api, vm_rec, true)
}

/// `event-wait class=<c> <field>=<value> ...`: polls until one object matches every condition
/// (`field=/=value` means "not equal").
fn event_wait(api: &mut Api, cmd: &CommandLine) -> Result<(), CliError> {
    let class_name = cmd.reqd("class")?;
    let class =
        cli_class(class_name).ok_or_else(|| fail(format!("Unknown class: {class_name}")))?;
    let conds: Vec<(String, String)> = cmd
        .params
        .iter()
        .filter(|(k, _)| k != "class" && !crate::table::data().stdparams.iter().any(|s| s == k))
        .cloned()
        .collect();
    for f in conds.iter().map(|(k, _)| k) {
        class.field(f)?;
    }
    loop {
        api.invalidate();
        let objs = generic::list_source(api, class)?;
        for (_, rec) in &objs {
            let mut all = true;
            for (k, v) in &conds {
                let f = class.field(k)?;
                let actual = fields::get(api, f, rec)?;
                let ok = match v.strip_prefix("/=") {
                    Some(neg) => actual != neg,
                    None => actual == *v,
                };
                if !ok {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn unsupported(spec: &Command) -> CliError {
    fail(format!("{} is not supported by this xe yet", spec.name))
}

/// The generic fallback: `<class>-<action>` calls `<Class>.<action>` with parameters matched
/// by name (`self`/the class's own ref from `uuid=`, `<x>-uuid=` for other refs).
fn fallback(
    api: &mut Api,
    p: &mut Printer,
    spec: &Command,
    cmd: &CommandLine,
    ignore: &[String],
    class: &CliClass,
    msg: &MessageDef,
) -> Result<(), CliError> {
    for r in &spec.reqd {
        cmd.reqd(r)?;
    }
    let selectors = if spec.has_flag("Vm_selectors") {
        Some(Family::Vm)
    } else if spec.has_flag("Host_selectors") {
        Some(Family::Host)
    } else if spec.has_flag("Sr_selectors") {
        Some(Family::Sr)
    } else {
        None
    };
    let targets: Vec<Option<String>> = match selectors {
        Some(f) => select::select(api, f, cmd, ignore, false, false)?
            .into_iter()
            .map(|(r, _)| Some(r))
            .collect(),
        None => vec![None],
    };
    if targets.is_empty() {
        return Err(fail(match selectors {
            Some(Family::Vm) => "No matching VMs found",
            _ => "No matching hosts found",
        }));
    }
    if targets.len() > 1 && !cmd.flag("multiple") {
        return Err(fail(match selectors {
            Some(Family::Vm) => {
                "Multiple matches VMs found. --multiple required to complete the operation"
            }
            Some(Family::Sr) => {
                "Multiple matching SRs found. --multiple required to complete the operation"
            }
            _ => "Multiple matching hosts found. --multiple required to complete the operation",
        }));
    }
    let m = model();
    let wire = msg.wire.clone();
    let own_ref = Type::Ref(class.wire.clone());
    let mut results = Vec::new();
    for target in targets {
        let mut args = Vec::new();
        let mut own_used = false;
        for (i, param) in msg.params.iter().enumerate() {
            let cli = param.name.replace('_', "-");
            let v = if param.ty == own_ref && !own_used {
                own_used = true;
                match &target {
                    Some(r) => s(r),
                    // The object itself: `uuid=`, or `<class>-uuid=` as in `host-call-plugin`.
                    None => match cmd
                        .get("uuid")
                        .or_else(|| cmd.get(&format!("{}-uuid", class.name)))
                    {
                        Some(u) => s(&api.by_uuid(&class.wire, u)?),
                        None => return Err(CliError::ParamNotFound("uuid".into())),
                    },
                }
            } else if let Some(text) = cmd.get(&cli).or_else(|| cmd.get(&format!("{cli}-uuid"))) {
                fields::parse(api, &param.ty, &cli, text)?
            } else if let Type::Map(_, _) = param.ty {
                Value::Struct(map_params(cmd, &cli))
            } else if i >= msg.params.len() - msg.defaults.len() {
                msg.defaults[i - (msg.params.len() - msg.defaults.len())].clone()
            } else {
                xapi_idl::model::zero_value(&param.ty, &m.enums)
            };
            args.push(v);
        }
        results.push(api.call(&wire, args)?);
    }
    for r in results {
        match (&msg.result, r) {
            (Type::Ref(c), Value::String(x)) => {
                let u = fields::uuid_of(api, c, &x)?;
                p.list(&[u]);
            }
            (Type::Void, _) => {}
            (ty, v) => {
                let text = fields::render(api, &v, ty)?;
                if !text.is_empty() {
                    p.list(&[text]);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_binary_suffixes() {
        assert_eq!(parse_size("s", "10").unwrap(), 10);
        assert_eq!(parse_size("s", "1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("s", "4M").unwrap(), 4 << 20);
        assert!(parse_size("s", "x").is_err());
    }

    #[test]
    fn map_params_collect_one_maps_keys() {
        let cmd = CommandLine {
            name: "sr-create".into(),
            params: vec![
                ("device-config:path".into(), "/x".into()),
                ("sm-config:a".into(), "b".into()),
            ],
        };
        assert_eq!(
            map_params(&cmd, "device-config"),
            vec![("path".to_owned(), s("/x"))]
        );
    }
}
