//! `vm-install` (a VM from a template, its disks provisioned on the chosen SR, network and
//! CD set up as upstream's xe does) and `vm-uninstall` / `template-uninstall` /
//! `snapshot-uninstall` (the VMs, their snapshots and the disks they own, after a prompt).

use xapi_rpc::Value;

use crate::api::{field_text, s, Api};
use crate::args::CommandLine;
use crate::error::{fail, CliError};
use crate::fields::cli_class;
use crate::ops::default_sr;
use crate::printer::Printer;
use crate::select::{self, Obj};

pub(crate) fn vm_install(
    api: &mut Api,
    p: &mut Printer,
    cmd: &CommandLine,
) -> Result<(), CliError> {
    let vm_class = cli_class("vm").ok_or_else(|| fail("no CLI class vm"))?;
    let find_by_name = |api: &mut Api, name: &str| -> Result<String, CliError> {
        let all = api.records_where("VM", "true")?;
        let filters = vec![
            ("name-label".to_owned(), name.to_owned()),
            ("is-a-template".to_owned(), "true".to_owned()),
            ("is-control-domain".to_owned(), "false".to_owned()),
        ];
        let found = select::filter_all(api, vm_class, all, &filters)?;
        match found.len() {
            0 => Err(fail("No templates matched")),
            1 => Ok(found[0].0.clone()),
            _ => Err(fail("More than one matching template found")),
        }
    };
    let template = if let Some(u) = cmd.get("template-uuid") {
        api.by_uuid("VM", u)
            .map_err(|_| fail("Cannot find template"))?
    } else if let Some(n) = cmd.get("template-name-label").or(cmd.get("template-name")) {
        find_by_name(api, n)?
    } else if let Some(t) = cmd.get("template") {
        match api.by_uuid("VM", t) {
            Ok(r) => r,
            Err(_) => find_by_name(api, t)?,
        }
    } else {
        return Err(fail(
            "Template must be specified by parameter 'template-uuid', 'template-name', 'template-name-label' or 'template'",
        ));
    };
    let trec = api.call("VM.get_record", vec![s(&template)])?;
    if field_text(&trec, "is_a_template") != "true" {
        return Err(fail("Can only install from templates"));
    }
    let name = cmd.reqd("new-name-label")?.to_owned();
    let mut sr = match cmd.get("sr-uuid") {
        Some(u) => Some(api.by_uuid("SR", u)?),
        None => None,
    };
    if let Some(label) = cmd.get("sr-name-label") {
        let srs = match api.call("SR.get_by_name_label", vec![s(label)])? {
            Value::Array(v) => v
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        sr =
            match (&sr, srs.as_slice()) {
                (_, []) => return Err(fail("No SR with that name-label found")),
                (Some(x), list) if !list.contains(x) => return Err(fail(
                    "SR specified via sr-uuid doesn't have the name specified via sr-name-label",
                )),
                (Some(x), _) => Some(x.clone()),
                (None, [one]) => Some(one.clone()),
                (None, _) => return Err(fail("Multiple SRs with that name-label found")),
            };
    }
    // As upstream: disks listed in the template are created on the given SR, else on the
    // pool's default SR, and there must be one.
    let disk_sr = match sr.clone() {
        Some(r) => Some(r),
        None => default_sr(api)?,
    };
    let disk_sr_uuid = match &disk_sr {
        Some(r) => api.call_string("SR.get_uuid", vec![s(r)])?,
        None if matches!(trec.get("other_config"), Some(Value::Struct(m)) if m.iter().any(|(k, _)| k == "disks")) =>
        {
            return Err(fail(
                "Failed to find a valid default SR for the Pool. Please provide an sr-name-label or sr-uuid parameter.",
            ));
        }
        None => String::new(),
    };
    let new_vm = match &sr {
        Some(sr) => api.call_string("VM.copy", vec![s(&template), s(&name), s(sr)])?,
        None => api.call_string("VM.clone", vec![s(&template), s(&name)])?,
    };
    match finish_install(api, &new_vm, &trec, sr.as_deref(), &disk_sr_uuid) {
        Ok(uuid) => {
            p.list(&[uuid]);
            Ok(())
        }
        Err(e) => {
            // As upstream: a half-installed VM is removed before the error is reported.
            let _ = api.call("VM.destroy", vec![s(&new_vm)]);
            Err(e)
        }
    }
}

/// The steps after the clone (or copy) of `vm-install`: description, suspend SR, provision,
/// and the template flag cleared (servers whose `VM.provision` leaves it set); the new uuid.
fn finish_install(
    api: &mut Api,
    new_vm: &str,
    template_rec: &Value,
    sr: Option<&str>,
    disk_sr_uuid: &str,
) -> Result<String, CliError> {
    api.call(
        "VM.set_name_description",
        vec![s(new_vm), s("Installed via xe CLI")],
    )?;
    let suspend_sr = sr
        .map(str::to_owned)
        .unwrap_or_else(|| field_text(template_rec, "suspend_SR"));
    if !suspend_sr.is_empty() {
        api.call("VM.set_suspend_SR", vec![s(new_vm), s(&suspend_sr)])?;
    }
    if !disk_sr_uuid.is_empty() {
        if let Some(Value::Struct(other)) = template_rec.get("other_config") {
            if let Some((_, disks)) = other.iter().find(|(k, _)| k == "disks") {
                let disks = rewrite_disk_srs(disks.as_str().unwrap_or(""), disk_sr_uuid);
                api.call("VM.remove_from_other_config", vec![s(new_vm), s("disks")])?;
                api.call(
                    "VM.add_to_other_config",
                    vec![s(new_vm), s("disks"), s(&disks)],
                )?;
            }
        }
    }
    api.call("VM.provision", vec![s(new_vm)])?;
    if api.call("VM.get_is_a_template", vec![s(new_vm)])? == Value::Bool(true) {
        api.call("VM.set_is_a_template", vec![s(new_vm), Value::Bool(false)])?;
    }
    api.call_string("VM.get_uuid", vec![s(new_vm)])
}

/// The template's provisioning XML with every `<disk>` element's `sr` attribute set to
/// `sr_uuid`, so `VM.provision` creates the disks there; everything else is kept as written.
fn rewrite_disk_srs(xml: &str, sr_uuid: &str) -> String {
    let mut out = String::with_capacity(xml.len() + 64);
    let mut rest = xml;
    while let Some(start) = rest.find("<disk") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('>')
            .map_or(rest.len(), |e| start + e + 1);
        let element = &rest[start..end];
        match element.find(" sr=\"") {
            Some(a) => {
                let value_start = a + " sr=\"".len();
                let value_end = element[value_start..]
                    .find('"')
                    .map_or(element.len(), |e| value_start + e);
                out.push_str(&element[..value_start]);
                out.push_str(sr_uuid);
                out.push_str(&element[value_end..]);
            }
            None => out.push_str(element),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

pub(crate) fn vm_uninstall(
    api: &mut Api,
    p: &mut Printer,
    cmd: &CommandLine,
    objs: Vec<Obj>,
) -> Result<(), CliError> {
    let mut plan: Vec<(String, Vec<String>)> = Vec::new();
    let mut lines = vec!["The following items are about to be destroyed".to_owned()];
    for (vm, rec) in &objs {
        lines.push(format!(
            "VM : {} ({})",
            field_text(rec, "uuid"),
            field_text(rec, "name_label")
        ));
        // Disks the VM owns (VBD other-config:owner), then its suspend image.
        let mut vdis = Vec::new();
        if let Some(Value::Array(vbds)) = rec.get("VBDs") {
            for vbd in vbds.iter().filter_map(Value::as_str) {
                let Some(vbd_rec) = api.record("VBD", vbd)? else {
                    continue;
                };
                let owned = matches!(vbd_rec.get("other_config"), Some(Value::Struct(m)) if m.iter().any(|(k, _)| k == "owner"));
                if owned {
                    vdis.push(field_text(&vbd_rec, "VDI"));
                }
            }
        }
        vdis.push(field_text(rec, "suspend_VDI"));
        let mut found = Vec::new();
        for vdi in vdis {
            let Some(vdi_rec) = api.record("VDI", &vdi)? else {
                continue;
            };
            let shared = matches!(vdi_rec.get("VBDs"), Some(Value::Array(v)) if v.len() > 1);
            lines.push(format!(
                "VDI: {} ({}) {}",
                field_text(&vdi_rec, "uuid"),
                field_text(&vdi_rec, "name_label"),
                if shared {
                    " ** WARNING: disk is shared by other VMs"
                } else {
                    ""
                }
            ));
            found.push(vdi);
        }
        plan.push((vm.clone(), found));
    }
    p.list(&lines);
    if !cmd.flag("force") {
        p.list(&["Type 'yes' to continue".to_owned()]);
        let (out, _) = std::mem::take(p).finish(false);
        print!("{out}");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !answer.trim().eq_ignore_ascii_case("yes") {
            p.list(&[format!(
                "Aborted (you typed: '{}')",
                answer.trim_end_matches('\n')
            )]);
            return Ok(());
        }
    }
    for (vm, vdis) in plan {
        if api.call_string("VM.get_power_state", vec![s(&vm)])? != "Halted" {
            api.call("VM.hard_shutdown", vec![s(&vm)])?;
        }
        api.call("VM.destroy", vec![s(&vm)])?;
        for vdi in vdis {
            api.call("VDI.destroy", vec![s(&vdi)])?;
        }
    }
    p.list(&["All objects destroyed".to_owned()]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisioning_disks_are_pointed_at_the_chosen_sr() {
        let xml = r#"<provision><disk device="0" size="10" sr="" bootable="true"/><disk device="1" sr="old"/></provision>"#;
        assert_eq!(
            rewrite_disk_srs(xml, "u-1"),
            r#"<provision><disk device="0" size="10" sr="u-1" bootable="true"/><disk device="1" sr="u-1"/></provision>"#
        );
        assert_eq!(rewrite_disk_srs("<provision/>", "u"), "<provision/>");
    }
}
