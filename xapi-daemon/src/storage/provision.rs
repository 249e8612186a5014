//! `VM.provision`'s storage side: the template's `disks` recommendation (`<provision><disk
//! device=".." size=".." sr=".." bootable=".." type=".."/></provision>` in `other_config`)
//! becomes VDIs on the named SR (the pool's default SR when none is named) and VBDs.
use xapi_idl::enums::{VbdMode, VbdType, VdiType};
use xapi_idl::records::{PoolRecord, VbdRecord, VdiRecord, VmRecord};
use xapi_idl::{classes, errors, ApiResult, Ref, WireEnum};

use crate::app::App;
use crate::vm::{insert, read, update};

/// `other_config` key holding the provisioning spec.
pub const DISKS_KEY: &str = "disks";

/// One `<disk/>` of the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskSpec {
    /// `userdevice` of the VBD.
    pub device: String,
    /// Virtual size in bytes.
    pub size: i64,
    /// SR uuid; empty for the pool's default SR.
    pub sr: String,
    /// Whether the VBD is bootable.
    pub bootable: bool,
    /// `VDI.type` wire name.
    pub vdi_type: String,
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

/// Parses the provisioning spec; malformed disks are `INVALID_VALUE`.
pub fn parse(spec: &str) -> ApiResult<Vec<DiskSpec>> {
    let mut disks = Vec::new();
    for part in spec.split("<disk").skip(1) {
        let tag = part.split('>').next().unwrap_or_default();
        let size = attribute(tag, "size")
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|s| *s >= 0)
            .ok_or_else(|| errors::invalid_value(DISKS_KEY, spec))?;
        disks.push(DiskSpec {
            device: attribute(tag, "device").unwrap_or_default(),
            size,
            sr: attribute(tag, "sr").unwrap_or_default(),
            bootable: attribute(tag, "bootable").is_some_and(|b| b == "true"),
            vdi_type: attribute(tag, "type").unwrap_or_else(|| "system".into()),
        });
    }
    Ok(disks)
}

/// Creates the disks `vm`'s spec recommends, then drops the spec (as upstream does, so a
/// second provision creates nothing).
pub fn provision(app: &App, vm: &str) -> ApiResult<usize> {
    let rec: VmRecord = read(app, vm)?;
    let Some(spec) = rec.other_config.get(DISKS_KEY) else {
        return Ok(0);
    };
    let disks = parse(spec)?;
    for disk in &disks {
        let sr = if disk.sr.is_empty() {
            let pool: PoolRecord = read(app, &app.pool)?;
            if pool.default_sr.is_null() {
                return Err(errors::sr_not_attached(xapi_idl::NULL_REF));
            }
            pool.default_sr.into_string()
        } else {
            app.db
                .ref_by_uuid(app.table_of::<classes::Sr>(), &disk.sr)
                .ok_or_else(|| errors::uuid_invalid("SR", &disk.sr))?
        };
        let vdi: Ref<classes::Vdi> = Ref::fresh();
        insert(
            app,
            vdi.as_str(),
            &VdiRecord {
                uuid: uuid::Uuid::new_v4().to_string(),
                name_label: format!("{} {}", rec.name_label, disk.device),
                name_description: "Created by template provisioner".into(),
                sr: Ref::from_string(sr),
                virtual_size: disk.size,
                type_: VdiType::from_wire(&disk.vdi_type).unwrap_or(VdiType::System),
                managed: true,
                ..VdiRecord::default()
            },
        )?;
        super::create_vdi(app, vdi.as_str())?;
        let vbd: Ref<classes::Vbd> = Ref::fresh();
        insert(
            app,
            vbd.as_str(),
            &VbdRecord {
                uuid: uuid::Uuid::new_v4().to_string(),
                vm: Ref::from_raw(vm),
                vdi,
                userdevice: disk.device.clone(),
                bootable: disk.bootable,
                mode: VbdMode::Rw,
                type_: VbdType::Disk,
                ..VbdRecord::default()
            },
        )?;
    }
    update::<VmRecord>(app, vm, |r| {
        r.other_config.remove(DISKS_KEY);
    })?;
    Ok(disks.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn the_spec_parses_into_disks() {
        let spec = r#"<provision><disk device="0" size="10737418240" sr="" bootable="true" type="system"/><disk device="1" size="5" sr="abc" bootable="false" type="user"/></provision>"#;
        let disks = parse(spec).unwrap();
        assert_eq!(disks.len(), 2);
        assert_eq!(disks[0].size, 10 << 30);
        assert!(disks[0].bootable);
        assert_eq!(disks[1].sr, "abc");
        assert_eq!(disks[1].vdi_type, "user");
        assert!(parse(r#"<provision><disk size="x"/></provision>"#).is_err());
        assert!(parse("<provision></provision>").unwrap().is_empty());
    }
}
