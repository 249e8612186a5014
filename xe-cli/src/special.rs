//! Explicit commands that are more than one mapped call: migration within the pool, CD and
//! disk helpers, snapshot and VDI copies that print the new uuid, confirmations before
//! destructive host and pool operations, and the HTTP file transfers (host backups, database
//! dumps, raw VDI images). Each follows the XenAPI calls upstream's CLI makes.
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use xapi_rpc::Value;

use crate::api::{field_text, s, Api, NULL_REF};
use crate::args::CommandLine;
use crate::error::{fail, CliError};
use crate::ops::{host_by_name_or_id, map_params, print_uuid, this_host, vbd_create};
use crate::printer::Printer;
use crate::select::{self, Family, Obj};
use crate::transfer;

/// The commands this file implements.
pub const NAMES: &[&str] = &[
    "vm-migrate",
    "vm-cd-add",
    "vm-cd-remove",
    "vm-disk-remove",
    "vm-crashdump-list",
    "vm-is-bios-customized",
    "snapshot-destroy",
    "snapshot-reset-powerstate",
    "snapshot-clone",
    "snapshot-copy",
    "snapshot-export-to-template",
    "template-export",
    "vdi-copy",
    "vdi-clone",
    "vdi-resize",
    "vdi-unlock",
    "vdi-import",
    "vdi-export",
    "vbd-unplug",
    "vif-unplug",
    "pbd-create",
    "message-destroy",
    "message-destroy-all",
    "vm-create",
    "pool-join",
    "pool-eject",
    "pool-emergency-transition-to-master",
    "pool-dump-database",
    "pool-restore-database",
    "pool-sync-bundle",
    "host-forget",
    "host-declare-dead",
    "host-license-add",
    "host-get-cpu-features",
    "host-get-vms-which-prevent-evacuation",
    "host-backup",
    "host-restore",
    "host-logs-download",
    "host-get-system-status",
];

/// Runs command `name`, one of [`NAMES`].
pub fn run(
    api: &mut Api,
    p: &mut Printer,
    name: &str,
    cmd: &CommandLine,
    ignore: &[String],
) -> Result<(), CliError> {
    let vms = |api: &mut Api, control: bool, templates: bool| {
        select::select(api, Family::Vm, cmd, ignore, control, templates)
    };
    let hosts = |api: &mut Api| select::select(api, Family::Host, cmd, ignore, false, false);
    match name {
        "vm-migrate" => vm_migrate(api, cmd, ignore),
        "vm-cd-add" => vm_cd_add(api, cmd, ignore),
        "vm-cd-remove" => vms(api, false, false).and_then(|objs| {
            let cd = cmd.reqd("cd-name")?.to_owned();
            each_vm(api, objs, cmd, |api, (_, rec)| {
                let vbd = vm_vbds(api, rec)?
                    .into_iter()
                    .find(|(_, vbd_rec)| {
                        let vdi = field_text(vbd_rec, "VDI");
                        match api.record("VDI", &vdi) {
                            Ok(Some(vdi_rec)) => {
                                field_text(vbd_rec, "type") == "CD"
                                    && field_text(&vdi_rec, "name_label") == cd
                            }
                            _ => cd == "<EMPTY>" && field_text(vbd_rec, "type") == "CD",
                        }
                    })
                    .ok_or_else(|| fail("Disk not found"))?;
                api.call("VBD.destroy", vec![s(&vbd.0)]).map(|_| ())
            })
        }),
        "vm-disk-remove" => vms(api, false, false).and_then(|objs| {
            let device = cmd.reqd("device")?.to_owned();
            each_vm(api, objs, cmd, |api, (_, rec)| {
                let (vbd, vbd_rec) = vm_vbds(api, rec)?
                    .into_iter()
                    .find(|(_, v)| field_text(v, "userdevice") == device)
                    .ok_or_else(|| fail("Disk not found"))?;
                api.call("VBD.destroy", vec![s(&vbd)])?;
                api.call("VDI.destroy", vec![s(&field_text(&vbd_rec, "VDI"))])
                    .map(|_| ())
            })
        }),
        "vm-crashdump-list" => vms(api, false, false).and_then(|objs| {
            each_vm(api, objs, cmd, |api, (_, rec)| {
                let mut records = Vec::new();
                if let Some(Value::Array(dumps)) = rec.get("crash_dumps") {
                    for d in dumps.iter().filter_map(Value::as_str) {
                        if let Some(dump) = api.record("crashdump", d)? {
                            records.push(vec![
                                ("uuid ( RO)".to_owned(), field_text(&dump, "uuid")),
                                ("vdi-uuid ( RO)".to_owned(), field_text(&dump, "VDI")),
                            ]);
                        }
                    }
                }
                p.table(&records);
                Ok(())
            })
        }),
        "vm-is-bios-customized" => vms(api, false, false).and_then(|objs| {
            each_vm(api, objs, cmd, |api, (vm, _)| {
                let strings = api.call("VM.get_bios_strings", vec![s(vm)])?;
                let empty = matches!(&strings, Value::Struct(m) if m.is_empty());
                p.list(&[if empty {
                    "The BIOS strings of this VM have not yet been set."
                } else {
                    "This VM is BIOS-customized."
                }
                .to_owned()]);
                Ok(())
            })
        }),
        "snapshot-destroy" => snapshot(api, cmd).and_then(|snap| {
            if api.call_string("VM.get_power_state", vec![s(&snap)])? != "Halted" {
                api.call("VM.hard_shutdown", vec![s(&snap)])?;
            }
            api.call("VM.destroy", vec![s(&snap)]).map(|_| ())
        }),
        "snapshot-reset-powerstate" => need_force(cmd)
            .and_then(|()| snapshot(api, cmd))
            .and_then(|snap| api.call("VM.power_state_reset", vec![s(&snap)]).map(|_| ())),
        "snapshot-clone" | "snapshot-copy" => snapshot(api, cmd).and_then(|snap| {
            let label = cmd.reqd("new-name-label")?;
            let new = if name == "snapshot-copy" {
                let sr = match cmd.get("sr-uuid") {
                    Some(u) => api.by_uuid("SR", u)?,
                    None => NULL_REF.to_owned(),
                };
                api.call_string("VM.copy", vec![s(&snap), s(label), s(&sr)])?
            } else {
                api.call_string("VM.clone", vec![s(&snap), s(label)])?
            };
            if let Some(d) = cmd.get("new-name-description") {
                api.call("VM.set_name_description", vec![s(&new), s(d)])?;
            }
            print_uuid(api, p, "VM", &new)
        }),
        "snapshot-export-to-template" | "template-export" => {
            let key = if name == "template-export" {
                "template-uuid"
            } else {
                "snapshot-uuid"
            };
            (|| {
                let r = api.by_uuid("VM", cmd.reqd(key)?)?;
                let rec = api.call("VM.get_record", vec![s(&r)])?;
                transfer::export_one(api, p, cmd, &(r, rec), cmd.reqd("filename")?)
            })()
        }
        "vdi-copy" => vdi_copy(api, p, cmd),
        "vdi-clone" => (|| {
            let vdi = api.by_uuid("VDI", cmd.reqd("uuid")?)?;
            let params = Value::Struct(map_params(cmd, "driver-params"));
            let new = api.call_string("VDI.clone", vec![s(&vdi), params])?;
            if let Some(l) = cmd.get("new-name-label") {
                api.call("VDI.set_name_label", vec![s(&new), s(l)])?;
            }
            if let Some(d) = cmd.get("new-name-description") {
                api.call("VDI.set_name_description", vec![s(&new), s(d)])?;
            }
            print_uuid(api, p, "VDI", &new)
        })(),
        "vdi-resize" => (|| {
            let vdi = api.by_uuid("VDI", cmd.reqd("uuid")?)?;
            let size = crate::ops::parse_size("disk-size", cmd.reqd("disk-size")?)?;
            let call = if cmd.get("online") == Some("true") {
                "VDI.resize_online"
            } else {
                "VDI.resize"
            };
            api.call(call, vec![s(&vdi), Value::Int(size)]).map(|_| ())
        })(),
        "vdi-unlock" => (|| {
            let vdi = api.by_uuid("VDI", cmd.reqd("uuid")?)?;
            need_force(cmd)?;
            api.call("VDI.force_unlock", vec![s(&vdi)]).map(|_| ())
        })(),
        "vdi-import" | "vdi-export" => (|| {
            let vdi = api.by_uuid("VDI", cmd.reqd("uuid")?)?;
            let mut query = vec![("vdi", vdi)];
            for k in ["format", "base"] {
                if let Some(v) = cmd.get(k) {
                    query.push((k, v.to_owned()));
                }
            }
            let upload = name == "vdi-import";
            let (endpoint, label) = if upload {
                ("/import_raw_vdi", "VDI import")
            } else {
                ("/export_raw_vdi", "VDI export")
            };
            transfer::http_file(api, endpoint, &query, cmd.reqd("filename")?, upload, label)
                .map(|_| ())
        })(),
        "vbd-unplug" | "vif-unplug" => (|| {
            let class = if name == "vbd-unplug" { "VBD" } else { "VIF" };
            let r = api.by_uuid(class, cmd.reqd("uuid")?)?;
            let call = if cmd.flag("force") {
                format!("{class}.unplug_force")
            } else {
                format!("{class}.unplug")
            };
            api.call(&call, vec![s(&r)]).map(|_| ())
        })(),
        "pbd-create" => (|| {
            let host = api.by_uuid("host", cmd.reqd("host-uuid")?)?;
            let sr = api.by_uuid("SR", cmd.reqd("sr-uuid")?)?;
            let rec = Value::Struct(vec![
                ("host".into(), s(&host)),
                ("SR".into(), s(&sr)),
                (
                    "device_config".into(),
                    Value::Struct(map_params(cmd, "device-config")),
                ),
                ("other_config".into(), Value::Struct(Vec::new())),
            ]);
            let pbd = api.call_string("PBD.create", vec![rec])?;
            print_uuid(api, p, "PBD", &pbd)
        })(),
        "message-destroy" => (|| {
            let uuids: Vec<String> = match (cmd.get("uuid"), cmd.get("uuids")) {
                (Some(u), None) => vec![u.to_owned()],
                (None, Some(list)) => list.split(',').map(str::to_owned).collect(),
                (Some(_), Some(_)) => {
                    return Err(fail("Ambiguous arguments; need one of uuid, uuids"))
                }
                (None, None) => return Err(fail("Need one of uuid, uuids")),
            };
            let mut refs = Vec::new();
            for u in &uuids {
                refs.push(s(&api.by_uuid("message", u)?));
            }
            api.call("message.destroy_many", vec![Value::Array(refs)])
                .map(|_| ())
        })(),
        "message-destroy-all" => {
            let mut filters = Vec::new();
            for k in ["before", "after", "priority"] {
                if let Some(v) = cmd.get(k) {
                    filters.push((k.to_owned(), s(v)));
                }
            }
            api.call("message.destroy_all", vec![Value::Struct(filters)])
                .map(|_| ())
        }
        "vm-create" => vm_create(api, p, cmd),
        "pool-join" => (|| {
            let call = if cmd.flag("force") {
                "pool.join_force"
            } else {
                "pool.join"
            };
            api.call(
                call,
                vec![
                    s(cmd.reqd("master-address")?),
                    s(cmd.reqd("master-username")?),
                    s(cmd.reqd("master-password")?),
                ],
            )?;
            p.list(&[
                "Host agent will restart and attempt to join pool in 10.000 seconds...".into(),
            ]);
            Ok(())
        })(),
        "pool-eject" => (|| {
            let host = api.by_uuid("host", cmd.reqd("host-uuid")?)?;
            let warnings = [
                "WARNING: Ejecting a host from the pool will reinitialise that host's local SRs.",
                "WARNING: Any data contained with the local SRs will be lost.",
            ];
            if confirm(p, cmd, &warnings)? {
                api.call("pool.eject", vec![s(&host)])?;
                p.list(&["Specified host will attempt to restart as a master of a new pool in 10.000 seconds...".into()]);
            }
            Ok(())
        })(),
        "pool-emergency-transition-to-master" => api
            .call("pool.emergency_transition_to_master", Vec::new())
            .map(|_| {
                p.list(&[
                    "Host agent will restart and transition to master in 10.000 seconds...".into(),
                ]);
            }),
        "pool-dump-database" => cmd.reqd("file-name").and_then(|f| {
            transfer::http_file(api, "/pool/xmldbdump", &[], f, false, "dump database").map(|_| ())
        }),
        "pool-restore-database" => (|| {
            let dry_run = cmd.flag("dry-run");
            if !dry_run && !cmd.flag("force") {
                return Err(fail("This operation will restore the database backup to this host, making it the master. All slave hosts are assumed dead and they will be forgotten. This operation must be forced (use --force)."));
            }
            let query = [("dry_run", dry_run.to_string())];
            let f = cmd.reqd("file-name")?;
            transfer::http_file(api, "/pool/xmldbdump", &query, f, true, "restore database")?;
            p.list(&[if dry_run {
                "Dry-run backup restore successful".to_owned()
            } else {
                "Host will reboot with restored database in 30.000 seconds...".to_owned()
            }]);
            Ok(())
        })(),
        "pool-sync-bundle" => cmd.reqd("filename").and_then(|f| {
            transfer::http_file(api, "/bundle", &[], f, true, "upload bundle").map(|_| ())
        }),
        "host-forget" | "host-declare-dead" => (|| {
            let host = api.by_uuid("host", cmd.reqd("uuid")?)?;
            let (call, warnings): (&str, &[&str]) = if name == "host-forget" {
                ("host.destroy", &[
                    "WARNING: A host should only be forgotten if it is physically unrecoverable;",
                    "WARNING: if possible, Hosts should be 'ejected' from the Pool instead.",
                    "WARNING: Once a host has been forgotten it will have to be re-installed.",
                    "WARNING: This operation is irreversible.",
                ])
            } else {
                ("host.declare_dead", &[
                    "WARNING: A host should only be declared dead if it is verified offline.",
                    "WARNING: Performing this operation if the host is still online and has any",
                    "WARNING: running VMs may lead to possible data loss and/or corruption.",
                ])
            };
            if confirm(p, cmd, warnings)? {
                api.call(call, vec![s(&host)])?;
            }
            Ok(())
        })(),
        "host-license-add" => (|| {
            let host = match cmd.get("host-uuid") {
                Some(u) => api.by_uuid("host", u)?,
                None => this_host(api)?,
            };
            let file = cmd.reqd("license-file")?;
            let bytes = std::fs::read(file)
                .map_err(|_| CliError::Stderr("Failed to read license file.".into()))?;
            api.call(
                "host.license_add",
                vec![s(&host), s(&STANDARD.encode(&bytes))],
            )
            .map_err(|_| CliError::Stderr("Failed to apply license file.".into()))?;
            p.list(&["License applied.".into()]);
            Ok(())
        })(),
        "host-get-cpu-features" => (|| {
            let host = match cmd.get("uuid") {
                Some(u) => api.by_uuid("host", u)?,
                None => this_host(api)?,
            };
            let info = api.call("host.get_cpu_info", vec![s(&host)])?;
            let features: Vec<(String, String)> = match info {
                Value::Struct(m) => m
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("features_"))
                    .map(|(k, v)| (k, v.as_str().unwrap_or("").to_owned()))
                    .collect(),
                _ => Vec::new(),
            };
            p.table(&[features]);
            Ok(())
        })(),
        "host-get-vms-which-prevent-evacuation" => (|| {
            let host = api.by_uuid("host", cmd.reqd("uuid")?)?;
            let vms = api.call("host.get_vms_which_prevent_evacuation", vec![s(&host)])?;
            if let Value::Struct(members) = vms {
                for (vm, reasons) in members {
                    let rec = api.record("VM", &vm)?.unwrap_or(Value::Nil);
                    let reason = match reasons {
                        Value::Array(items) => items
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(","),
                        _ => String::new(),
                    };
                    p.table(&[vec![
                        ("uuid ( RO)".to_owned(), field_text(&rec, "uuid")),
                        (
                            "name-label ( RW)".to_owned(),
                            field_text(&rec, "name_label"),
                        ),
                        ("reason ( RO)".to_owned(), reason),
                    ]]);
                }
            }
            Ok(())
        })(),
        "host-backup" | "host-restore" | "host-logs-download" | "host-get-system-status" => {
            hosts(api).and_then(|objs| host_transfer(api, name, cmd, objs))
        }
        _ => Err(fail(format!("{name} is not supported by this xe yet"))),
    }
}

/// Runs `op` on the selected VMs with the single/`--multiple` rule.
fn each_vm(
    api: &mut Api,
    objs: Vec<Obj>,
    cmd: &CommandLine,
    op: impl FnMut(&mut Api, &Obj) -> Result<(), CliError>,
) -> Result<(), CliError> {
    select::run_on(Family::Vm, objs, cmd, true, api, op).map(|_| ())
}

/// The VM's VBDs with their records.
fn vm_vbds(api: &mut Api, vm_rec: &Value) -> Result<Vec<Obj>, CliError> {
    let mut out = Vec::new();
    if let Some(Value::Array(vbds)) = vm_rec.get("VBDs") {
        for r in vbds.iter().filter_map(Value::as_str) {
            if let Some(rec) = api.record("VBD", r)? {
                out.push((r.to_owned(), rec));
            }
        }
    }
    Ok(out)
}

/// The snapshot named by `snapshot-uuid=` (or `uuid=`).
fn snapshot(api: &mut Api, cmd: &CommandLine) -> Result<String, CliError> {
    let uuid = cmd
        .get("snapshot-uuid")
        .or(cmd.get("uuid"))
        .ok_or_else(|| fail("Required parameter not found: snapshot-uuid or uuid."))?;
    api.by_uuid("VM", uuid)
}

fn need_force(cmd: &CommandLine) -> Result<(), CliError> {
    if cmd.flag("force") {
        Ok(())
    } else {
        Err(fail("This operation is dangerous and may cause data loss. This operation must be forced (use --force)."))
    }
}

/// Prints `warnings` and asks for `yes` on stdin unless `--force` was given.
pub fn confirm(p: &mut Printer, cmd: &CommandLine, warnings: &[&str]) -> Result<bool, CliError> {
    if cmd.flag("force") {
        return Ok(true);
    }
    let mut lines: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    lines.push("Type 'yes' to continue".to_owned());
    p.list(&lines);
    let (out, _) = std::mem::take(p).finish(false);
    print!("{out}");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    if answer.trim().eq_ignore_ascii_case("yes") {
        return Ok(true);
    }
    p.list(&[format!(
        "Aborted (you typed: '{}')",
        answer.trim_end_matches('\n')
    )]);
    Ok(false)
}

/// `vm-migrate host=<name or uuid> [live=] [force=] [copy=] [compress=]`: within the pool,
/// `VM.pool_migrate` with upstream's option map. Migration to another pool (`remote-master=`
/// ...) needs a second XenAPI connection that this xe does not open.
fn vm_migrate(api: &mut Api, cmd: &CommandLine, ignore: &[String]) -> Result<(), CliError> {
    let cross_pool = cmd.params.iter().any(|(k, _)| {
        [
            "remote-master",
            "remote-username",
            "remote-password",
            "remote-network",
            "vif:",
            "vdi:",
            "vgpu:",
            "image-format:",
        ]
        .iter()
        .any(|p| k.starts_with(p))
    });
    if cross_pool {
        return Err(fail(
            "Storage live migration to another pool is not available in this xe: migrate within the pool with host=",
        ));
    }
    let dest = cmd
        .get("host")
        .or(cmd.get("host-uuid"))
        .or(cmd.get("host-name"))
        .ok_or_else(|| fail("No destination host specified"))?
        .to_owned();
    let host = host_by_name_or_id(api, &dest)?;
    let mut options = Vec::new();
    if let Some(c) = cmd.get("compress") {
        options.push(("compress".to_owned(), s(c)));
    }
    for k in ["force", "live", "copy"] {
        options.push((k.to_owned(), s(&cmd.flag(k).to_string())));
    }
    let objs = select::select(api, Family::Vm, cmd, ignore, true, false)?;
    each_vm(api, objs, cmd, |api, (vm, _)| {
        api.call(
            "VM.pool_migrate",
            vec![s(vm), s(&host), Value::Struct(options.clone())],
        )
        .map(|_| ())
    })
}

/// `vm-cd-add cd-name=<iso name> device=<n>`: a read-only CD VBD of the ISO (from an `iso`
/// SR), plugged when the VM runs.
fn vm_cd_add(api: &mut Api, cmd: &CommandLine, ignore: &[String]) -> Result<(), CliError> {
    let name = cmd.reqd("cd-name")?.to_owned();
    let device = cmd.reqd("device")?.to_owned();
    let mut found = None;
    if let Value::Array(vdis) = api.call("VDI.get_by_name_label", vec![s(&name)])? {
        for vdi in vdis.iter().filter_map(Value::as_str) {
            let sr = api.call_string("VDI.get_SR", vec![s(vdi)])?;
            if api.call_string("SR.get_content_type", vec![s(&sr)])? == "iso" {
                found = Some(vdi.to_owned());
                break;
            }
        }
    }
    let vdi = found.ok_or_else(|| fail(format!("CD {name} not found!")))?;
    let objs = select::select(api, Family::Vm, cmd, ignore, false, false)?;
    each_vm(api, objs, cmd, |api, (vm, _)| {
        vbd_create(api, vm, &vdi, &device, "CD", "RO", false, true).map(|_| ())
    })
}

/// `vm-create name-label=`: an empty halted HVM-less VM with upstream's defaults (128-256 MiB,
/// one vCPU).
fn vm_create(api: &mut Api, p: &mut Printer, cmd: &CommandLine) -> Result<(), CliError> {
    const MIB: i64 = 1 << 20;
    let empty = || Value::Struct(Vec::new());
    let int = Value::Int;
    let rec = Value::Struct(vec![
        ("name_label".into(), s(cmd.reqd("name-label")?)),
        (
            "name_description".into(),
            s(cmd.get("name-description").unwrap_or("")),
        ),
        ("user_version".into(), int(0)),
        ("is_a_template".into(), Value::Bool(false)),
        ("affinity".into(), s(NULL_REF)),
        ("memory_target".into(), int(256 * MIB)),
        ("memory_static_max".into(), int(256 * MIB)),
        ("memory_dynamic_max".into(), int(256 * MIB)),
        ("memory_dynamic_min".into(), int(128 * MIB)),
        ("memory_static_min".into(), int(128 * MIB)),
        ("VCPUs_params".into(), empty()),
        ("VCPUs_max".into(), int(1)),
        ("VCPUs_at_startup".into(), int(1)),
        ("actions_after_softreboot".into(), s("soft_reboot")),
        ("actions_after_shutdown".into(), s("destroy")),
        ("actions_after_reboot".into(), s("restart")),
        ("actions_after_crash".into(), s("destroy")),
        ("PV_bootloader".into(), s("")),
        ("PV_kernel".into(), s("")),
        ("PV_ramdisk".into(), s("")),
        ("PV_args".into(), s("")),
        ("PV_bootloader_args".into(), s("")),
        ("PV_legacy_args".into(), s("")),
        ("HVM_boot_policy".into(), s("")),
        ("HVM_boot_params".into(), empty()),
        ("HVM_shadow_multiplier".into(), Value::Double(1.0)),
        ("platform".into(), empty()),
        ("PCI_bus".into(), s("")),
        ("other_config".into(), empty()),
        ("xenstore_data".into(), empty()),
        ("recommendations".into(), s("")),
        ("ha_always_run".into(), Value::Bool(false)),
        ("ha_restart_priority".into(), s("")),
        ("tags".into(), Value::Array(Vec::new())),
        ("domain_type".into(), s("unspecified")),
    ]);
    let vm = api.call_string("VM.create", vec![rec])?;
    print_uuid(api, p, "VM", &vm)
}

/// `vdi-copy uuid= (sr-uuid= | into-vdi-uuid=) [base-vdi-uuid=]`; prints the copy's uuid.
fn vdi_copy(api: &mut Api, p: &mut Printer, cmd: &CommandLine) -> Result<(), CliError> {
    let vdi = api.by_uuid("VDI", cmd.reqd("uuid")?)?;
    let by = |api: &mut Api, class: &str, key: &str| match cmd.get(key) {
        Some(u) => api.by_uuid(class, u),
        None => Ok(NULL_REF.to_owned()),
    };
    let base = by(api, "VDI", "base-vdi-uuid")?;
    if cmd.get("sr-uuid").is_some() == cmd.get("into-vdi-uuid").is_some() {
        return Err(fail("Please specify one but not both of: a destination sr-uuid (I will create a fresh VDI); or a destination into-vdi-uuid (I will copy the blocks into this VDI)"));
    }
    let sr = by(api, "SR", "sr-uuid")?;
    let into = by(api, "VDI", "into-vdi-uuid")?;
    let new = api.call_string("VDI.copy", vec![s(&vdi), s(&sr), s(&base), s(&into)])?;
    print_uuid(api, p, "VDI", &new)
}

/// The host file transfers: backup (GET), restore (PUT), logs and the status report (GET).
fn host_transfer(
    api: &mut Api,
    name: &str,
    cmd: &CommandLine,
    objs: Vec<Obj>,
) -> Result<(), CliError> {
    let n = objs.len();
    let multiple = name == "host-logs-download";
    let mut query: Vec<(&str, String)> = Vec::new();
    let (endpoint, label, upload, file) = match name {
        "host-backup" => (
            "/host_backup",
            "host backup download",
            false,
            cmd.reqd("file-name")?,
        ),
        "host-restore" => (
            "/host_restore",
            "host backup upload",
            true,
            cmd.reqd("file-name")?,
        ),
        "host-logs-download" => (
            "/host_logs_download",
            "host logs download",
            false,
            cmd.get("file-name").unwrap_or("logs"),
        ),
        _ => {
            let output = cmd.get("output").unwrap_or("tar.bz2");
            if !matches!(output, "tar.bz2" | "tar" | "zip") {
                return Err(fail(
                    "Invalid output format. Must be 'tar', 'zip' or 'tar.bz2'",
                ));
            }
            query.push(("entries", cmd.get("entries").unwrap_or("").to_owned()));
            query.push(("output", output.to_owned()));
            (
                "/system-status",
                "system-status download",
                false,
                cmd.reqd("filename")?,
            )
        }
    };
    let file = file.to_owned();
    select::run_on(Family::Host, objs, cmd, multiple, api, |api, (_, rec)| {
        // Several hosts' logs go to `<file>-<host name>`, as upstream names them.
        let target = if n > 1 {
            format!("{file}-{}", field_text(rec, "name_label"))
        } else {
            file.clone()
        };
        transfer::http_file(api, endpoint, &query, &target, upload, label).map(|_| ())
    })
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_a_command() {
        for n in NAMES {
            assert!(crate::table::find(n).is_some(), "{n}");
        }
    }
}
