//! The default VM templates, seeded on first start from `data/templates.json` (see
//! docs/templates.md): facts clients read (names, reference labels, other_config keys,
//! recommendations, platform flags) turned into template VM records.
use std::collections::BTreeMap;

use serde::Deserialize;
use xapi_db::{DbError, Txn};
use xapi_idl::enums::{DomainType, VmPowerState};
use xapi_idl::records::VmRecord;
use xapi_idl::{classes, Record, Ref, WireEnum};

const TEMPLATES: &str = include_str!("../data/templates.json");

#[derive(Deserialize)]
struct File {
    templates: Vec<Template>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)] // Keys are spelled as the datamodel's field names.
struct Template {
    name_label: String,
    reference_label: String,
    uuid: String,
    name_description: String,
    domain_type: String,
    memory_static_min: i64,
    memory_dynamic_min: i64,
    memory_dynamic_max: i64,
    memory_static_max: i64,
    VCPUs_max: i64,
    VCPUs_at_startup: i64,
    HVM_boot_policy: String,
    HVM_boot_params: BTreeMap<String, String>,
    PV_bootloader: String,
    PV_args: String,
    HVM_shadow_multiplier: f64,
    #[serde(default)]
    generation_id: String,
    platform: BTreeMap<String, String>,
    other_config: BTreeMap<String, String>,
    recommendations: String,
    disks: Vec<Disk>,
}

#[derive(Deserialize)]
struct Disk {
    device: String,
    size: i64,
    bootable: bool,
    #[serde(rename = "type")]
    kind: String,
}

/// The `disks` other_config value: the provisioning spec `VM.provision` reads.
fn disks_xml(disks: &[Disk]) -> String {
    let mut out = String::from("<provision>");
    for d in disks {
        out.push_str(&format!(
            r#"<disk device="{}" size="{}" sr="" bootable="{}" type="{}"/>"#,
            d.device, d.size, d.bootable, d.kind
        ));
    }
    out.push_str("</provision>");
    out
}

/// A random locally administered MAC seed, as upstream stores per VM.
fn mac_seed() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Builds the template records.
fn records() -> Result<Vec<VmRecord>, String> {
    let file: File = serde_json::from_str(TEMPLATES).map_err(|e| format!("templates.json: {e}"))?;
    file.templates
        .into_iter()
        .map(|t| {
            let domain_type = DomainType::from_wire(&t.domain_type).ok_or_else(|| {
                format!(
                    "template {}: bad domain_type {}",
                    t.name_label, t.domain_type
                )
            })?;
            let mut other_config = t.other_config;
            other_config.insert("disks".into(), disks_xml(&t.disks));
            other_config.insert("mac_seed".into(), mac_seed());
            other_config.insert("default_template".into(), "true".into());
            Ok(VmRecord {
                uuid: t.uuid,
                name_label: t.name_label,
                name_description: t.name_description,
                reference_label: t.reference_label,
                power_state: VmPowerState::Halted,
                is_a_template: true,
                is_default_template: true,
                user_version: 1,
                memory_static_min: t.memory_static_min,
                memory_dynamic_min: t.memory_dynamic_min,
                memory_dynamic_max: t.memory_dynamic_max,
                memory_static_max: t.memory_static_max,
                vcpus_max: t.VCPUs_max,
                vcpus_at_startup: t.VCPUs_at_startup,
                hvm_boot_policy: t.HVM_boot_policy,
                hvm_boot_params: t.HVM_boot_params,
                pv_bootloader: t.PV_bootloader,
                pv_args: t.PV_args,
                hvm_shadow_multiplier: t.HVM_shadow_multiplier,
                generation_id: t.generation_id,
                platform: t.platform,
                other_config,
                recommendations: t.recommendations,
                domain_type,
                actions_after_shutdown: xapi_idl::enums::OnNormalExit::Destroy,
                actions_after_reboot: xapi_idl::enums::OnNormalExit::Restart,
                actions_after_crash: xapi_idl::enums::OnCrashBehaviour::Restart,
                ..VmRecord::default()
            })
        })
        .collect()
}

/// Inserts every default template.
pub fn seed(txn: &mut Txn<'_>, vm_table: usize) -> Result<(), DbError> {
    let recs = records().map_err(|reason| DbError::Corrupt {
        table: "VM".into(),
        r#ref: "data/templates.json".into(),
        column: String::new(),
        reason,
    })?;
    for rec in recs {
        txn.insert(vm_table, Ref::<classes::Vm>::fresh().as_str(), rec.to_row())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_templates_parse_and_include_the_families() {
        let recs = records().unwrap();
        assert!(recs.len() >= 30, "only {} templates", recs.len());
        assert!(recs.iter().any(|r| r.name_label == "Other install media"));
        assert!(recs.iter().any(|r| r.name_label.starts_with("Windows")));
        assert!(recs.iter().any(|r| r.name_label.starts_with("Debian")));
        assert!(recs
            .iter()
            .all(|r| r.is_a_template && r.other_config["disks"].starts_with("<provision>")));
    }

    #[test]
    fn disks_render_as_provision_xml() {
        let xml = disks_xml(&[Disk {
            device: "0".into(),
            size: 10,
            bootable: true,
            kind: "system".into(),
        }]);
        assert_eq!(
            xml,
            r#"<provision><disk device="0" size="10" sr="" bootable="true" type="system"/></provision>"#
        );
    }
}
