//! `DomainConfig` → libxl's JSON form of `libxl_domain_config`, `libxl_device_disk` and
//! `libxl_device_nic` (the documents libxl's generated `*_from_json` parsers read: field names
//! from `libxl_types.idl`, keyed unions as `"type.pv"`, defbools as `"True"`/`"False"`,
//! bitmaps as lists of set bits). Pure functions: no libxl, no I/O.

use serde_json::{json, Map, Value};

use crate::device::{vbd_devid, VbdBackend, VbdConfig, VbdKind, VbdMode, VifConfig};
use crate::domain::{BootConfig, DomainConfig, DomainType, Firmware, PvBoot};
use crate::error::{Result, XenopsError};

/// `VM.platform` keys passed to libxl as HVM defbools, with their libxl field names.
const HVM_FLAGS: &[(&str, &str)] = &[
    ("acpi", "acpi"),
    ("apic", "apic"),
    ("pae", "pae"),
    ("nx", "nx"),
    ("viridian", "viridian"),
    ("hpet", "hpet"),
];

/// The full `libxl_domain_config` document for `config`, devices included.
pub fn domain_config(config: &DomainConfig) -> Result<Value> {
    config.validate()?;
    let kind = match config.domain_type {
        DomainType::Pv => "pv",
        DomainType::Pvh => "pvh",
        DomainType::Hvm => "hvm",
    };
    let mut b_info = Map::new();
    b_info.insert("max_vcpus".into(), json!(config.vcpus.max));
    let online: Vec<u32> = (0..config.vcpus.at_startup).collect();
    b_info.insert("avail_vcpus".into(), json!(online));
    b_info.insert("max_memkb".into(), json!(config.memory.static_max / 1024));
    b_info.insert("target_memkb".into(), json!(config.memory.target / 1024));
    if let Some(mode) = config.platform.get("tsc_mode") {
        const MODES: &[&str] = &["default", "always_emulate", "native", "native_paravirt"];
        if !MODES.contains(&mode.as_str()) {
            return Err(XenopsError::InvalidConfig(format!(
                "platform:tsc_mode must be one of {MODES:?}, not {mode:?}"
            )));
        }
        b_info.insert("tsc_mode".into(), json!(mode));
    }
    match (&config.domain_type, &config.boot) {
        (
            DomainType::Pv | DomainType::Pvh,
            BootConfig::Pv(PvBoot::Direct {
                kernel,
                ramdisk,
                cmdline,
            }),
        ) => {
            b_info.insert("kernel".into(), json!(kernel.to_string_lossy()));
            if let Some(ramdisk) = ramdisk {
                b_info.insert("ramdisk".into(), json!(ramdisk.to_string_lossy()));
            }
            b_info.insert("cmdline".into(), json!(cmdline));
            b_info.insert(format!("type.{kind}"), json!({}));
        }
        (DomainType::Pv, BootConfig::Pv(PvBoot::Bootloader { bootloader, args })) => {
            let args: Vec<&str> = args.split_whitespace().collect();
            b_info.insert(
                "type.pv".into(),
                json!({ "bootloader": bootloader, "bootloader_args": args }),
            );
        }
        (DomainType::Pvh, BootConfig::Pv(PvBoot::Bootloader { .. })) => {
            return Err(XenopsError::InvalidConfig(
                "libxl 4.17 has no bootloader for PVH domains: give a kernel".into(),
            ));
        }
        (
            DomainType::Hvm,
            BootConfig::Hvm {
                boot_order,
                firmware,
            },
        ) => {
            let mut hvm = Map::new();
            hvm.insert("boot".into(), json!(boot_order));
            let bios = match firmware {
                Firmware::Bios => "seabios",
                Firmware::Uefi => "ovmf",
            };
            hvm.insert("bios".into(), json!(bios));
            // The graphical console: VNC on loopback, the first free display.
            hvm.insert(
                "vnc".into(),
                json!({ "enable": "True", "listen": "127.0.0.1", "findunused": "True" }),
            );
            hvm.insert("serial".into(), json!("pty"));
            for (key, field) in HVM_FLAGS {
                if let Some(value) = config.platform.get(*key) {
                    hvm.insert((*field).into(), json!(defbool(key, value)?));
                }
            }
            b_info.insert("device_model_version".into(), json!("qemu_xen"));
            b_info.insert("type.hvm".into(), Value::Object(hvm));
        }
        (domain_type, _) => {
            return Err(XenopsError::InvalidConfig(format!(
                "boot description does not fit domain type {domain_type:?}"
            )));
        }
    }
    if config.domain_type == DomainType::Hvm {
        // qemu-xen emulates an HVM guest's disks as IDE, which has no read-only mode (libxl
        // refuses such a disk only after the domain is built).
        if let Some(vbd) = config
            .vbds
            .iter()
            .find(|v| v.kind == VbdKind::Disk && v.mode == VbdMode::Ro)
        {
            return Err(XenopsError::Unsupported(format!(
                "qemu-xen cannot emulate read-only disk {} for an HVM guest: make the VBD read-write",
                vbd.device
            )));
        }
    }
    let disks = config.vbds.iter().map(disk).collect::<Result<Vec<_>>>()?;
    let nics = config.vifs.iter().map(nic).collect::<Result<Vec<_>>>()?;
    Ok(json!({
        "c_info": {
            "type": kind,
            "name": config.name,
            "uuid": config.uuid.to_string(),
        },
        "b_info": Value::Object(b_info),
        "disks": disks,
        "nics": nics,
        // libxl only records these; the backend itself tears down domains that shut down.
        "on_poweroff": "destroy",
        "on_reboot": "destroy",
        "on_watchdog": "destroy",
        "on_crash": "preserve",
    }))
}

/// A `libxl_device_disk` document: blkback (`phy`) on a file or block device, qemu's qdisk
/// on an NBD export, an empty removable drive for a CD without media. A CD's backend is left
/// to libxl, which insists on qdisk for an HVM guest's (emulated) CD drive.
pub fn disk(vbd: &VbdConfig) -> Result<Value> {
    let vdev = vdev_name(&vbd.device)?;
    let is_cd = vbd.kind == VbdKind::Cd;
    let readwrite = i32::from(vbd.mode == VbdMode::Rw && !is_cd);
    let mut disk = json!({
        "vdev": vdev,
        "readwrite": readwrite,
        "is_cdrom": i32::from(is_cd),
        "removable": i32::from(is_cd),
    });
    let fields = match &vbd.backend {
        Some(VbdBackend::Path(path)) if is_cd => json!({
            "pdev_path": path.to_string_lossy(),
            "format": "raw",
        }),
        Some(VbdBackend::Path(path)) => json!({
            "pdev_path": path.to_string_lossy(),
            "backend": "phy",
            "format": "raw",
        }),
        Some(VbdBackend::Nbd(uri)) => json!({
            "pdev_path": uri,
            "backend": "qdisk",
            "format": "raw",
        }),
        None if is_cd => json!({ "format": "empty" }),
        None => {
            return Err(XenopsError::InvalidConfig(format!(
                "disk {} has no backing data",
                vbd.device
            )))
        }
    };
    if let (Some(disk), Some(fields)) = (disk.as_object_mut(), fields.as_object()) {
        disk.extend(fields.clone());
    }
    Ok(disk)
}

/// The VBD with its data on a local block device (a kernel NBD device connected to its
/// export): libxl then gets a blkback (`phy`) disk instead of qdisk.
pub fn on_local_device(vbd: &VbdConfig, device: &std::path::Path) -> VbdConfig {
    VbdConfig {
        backend: Some(VbdBackend::Path(device.to_path_buf())),
        ..vbd.clone()
    }
}

/// A `libxl_device_nic` document: a netback VIF on a bridge with the given MAC and MTU.
pub fn nic(vif: &VifConfig) -> Result<Value> {
    let devid = crate::device::vif_devid(&vif.device)?;
    crate::device::validate_mac(&vif.mac)?;
    Ok(json!({
        "devid": devid,
        "mac": vif.mac.to_ascii_lowercase(),
        "bridge": vif.bridge,
        "mtu": vif.mtu,
    }))
}

/// The disk name libxl wants: `xvda` stays, a bare number `N` becomes the N-th `xvd` name.
pub fn vdev_name(device: &str) -> Result<String> {
    vbd_devid(device)?;
    let Ok(index) = device.parse::<u32>() else {
        return Ok(device.to_string());
    };
    // Bijective base 26: 0 -> a, 25 -> z, 26 -> aa.
    let mut letters = Vec::new();
    let mut n = index + 1;
    while n > 0 {
        n -= 1;
        letters.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    letters.reverse();
    Ok(format!("xvd{}", String::from_utf8_lossy(&letters)))
}

/// A platform flag as a libxl defbool string.
fn defbool(key: &str, value: &str) -> Result<&'static str> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok("True"),
        "false" | "0" | "no" | "off" => Ok("False"),
        _ => Err(XenopsError::InvalidConfig(format!(
            "platform:{key} must be true or false, not {value:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use uuid::Uuid;

    use super::*;
    use crate::domain::MemoryConfig;

    const MIB: u64 = 1 << 20;

    fn pv_direct() -> DomainConfig {
        let mut config = DomainConfig::new_pv(Uuid::nil(), "guest", 128 * MIB);
        config.boot = BootConfig::Pv(PvBoot::Direct {
            kernel: PathBuf::from("/lab/guest/vmlinux.gz"),
            ramdisk: Some(PathBuf::from("/lab/guest/initrd.cpio")),
            cmdline: "console=hvc0".into(),
        });
        config
    }

    #[test]
    fn a_pv_kernel_boot_sets_kernel_ramdisk_cmdline_and_memory_in_kib() {
        let mut config = pv_direct();
        config.vcpus.max = 4;
        config.vcpus.at_startup = 2;
        config.memory = MemoryConfig {
            static_max: 256 * MIB,
            dynamic_max: 256 * MIB,
            ..MemoryConfig::fixed(128 * MIB)
        };
        let doc = domain_config(&config).unwrap();
        assert_eq!(doc["c_info"]["type"], "pv");
        assert_eq!(
            doc["c_info"]["uuid"],
            "00000000-0000-0000-0000-000000000000"
        );
        let b = &doc["b_info"];
        assert_eq!(b["kernel"], "/lab/guest/vmlinux.gz");
        assert_eq!(b["ramdisk"], "/lab/guest/initrd.cpio");
        assert_eq!(b["cmdline"], "console=hvc0");
        assert_eq!(b["max_memkb"], 262_144);
        assert_eq!(b["target_memkb"], 131_072);
        assert_eq!(b["max_vcpus"], 4);
        assert_eq!(b["avail_vcpus"], json!([0, 1]));
        assert_eq!(b["type.pv"], json!({}));
    }

    #[test]
    fn a_pv_bootloader_goes_in_the_pv_union_with_split_args() {
        let mut config = pv_direct();
        config.boot = BootConfig::Pv(PvBoot::Bootloader {
            bootloader: "pygrub".into(),
            args: "--kernel=/vmlinuz  --args=quiet".into(),
        });
        let doc = domain_config(&config).unwrap();
        assert_eq!(doc["b_info"]["type.pv"]["bootloader"], "pygrub");
        assert_eq!(
            doc["b_info"]["type.pv"]["bootloader_args"],
            json!(["--kernel=/vmlinuz", "--args=quiet"])
        );
        assert!(doc["b_info"].get("kernel").is_none());
    }

    #[test]
    fn pvh_boots_a_kernel_and_refuses_a_bootloader() {
        let mut config = pv_direct();
        config.domain_type = DomainType::Pvh;
        config.platform.insert("tsc_mode".into(), "native".into());
        let doc = domain_config(&config).unwrap();
        assert_eq!(doc["c_info"]["type"], "pvh");
        assert_eq!(doc["b_info"]["tsc_mode"], "native");
        assert_eq!(doc["b_info"]["type.pvh"], json!({}));
        config.boot = BootConfig::Pv(PvBoot::Bootloader {
            bootloader: "pygrub".into(),
            args: String::new(),
        });
        assert!(matches!(
            domain_config(&config),
            Err(XenopsError::InvalidConfig(_))
        ));
    }

    #[test]
    fn hvm_gets_boot_order_firmware_vnc_and_platform_flags() {
        let mut config = DomainConfig::new_hvm(Uuid::nil(), "win", 512 * MIB);
        config.boot = BootConfig::Hvm {
            boot_order: "dc".into(),
            firmware: Firmware::Uefi,
        };
        config.platform.insert("viridian".into(), "true".into());
        config.platform.insert("acpi".into(), "0".into());
        let doc = domain_config(&config).unwrap();
        let hvm = &doc["b_info"]["type.hvm"];
        assert_eq!(hvm["boot"], "dc");
        assert_eq!(hvm["bios"], "ovmf");
        assert_eq!(hvm["viridian"], "True");
        assert_eq!(hvm["acpi"], "False");
        assert_eq!(hvm["vnc"]["enable"], "True");
        assert_eq!(hvm["vnc"]["listen"], "127.0.0.1");
        assert_eq!(doc["b_info"]["device_model_version"], "qemu_xen");
    }

    #[test]
    fn a_bad_platform_flag_is_refused() {
        let mut config = DomainConfig::new_hvm(Uuid::nil(), "win", 512 * MIB);
        config.platform.insert("nx".into(), "maybe".into());
        assert!(matches!(
            domain_config(&config),
            Err(XenopsError::InvalidConfig(_))
        ));
    }

    #[test]
    fn hvm_guests_get_no_read_only_emulated_disk_but_may_have_a_cd() {
        let disk = |kind, mode| VbdConfig {
            device: "0".into(),
            kind,
            mode,
            backend: Some(VbdBackend::Path("/dev/loop0".into())),
        };
        let mut config = DomainConfig::new_hvm(Uuid::nil(), "hvm", 512 * MIB);
        config.vbds = vec![disk(VbdKind::Disk, VbdMode::Ro)];
        match domain_config(&config) {
            Err(XenopsError::Unsupported(reason)) => assert!(reason.contains("read-only")),
            other => panic!("a read-only HVM disk must be refused, got {other:?}"),
        }
        config.vbds = vec![
            disk(VbdKind::Disk, VbdMode::Rw),
            disk(VbdKind::Cd, VbdMode::Ro),
        ];
        config.vbds[1].device = "3".into();
        let doc = domain_config(&config).unwrap();
        assert_eq!(doc["disks"][0]["backend"], "phy");
        assert!(
            doc["disks"][1].get("backend").is_none(),
            "libxl picks the CD's backend (qdisk for HVM)"
        );
        assert_eq!(doc["disks"][1]["pdev_path"], "/dev/loop0");
        let mut pv = pv_direct();
        pv.vbds = vec![disk(VbdKind::Disk, VbdMode::Ro)];
        assert_eq!(domain_config(&pv).unwrap()["disks"][0]["readwrite"], 0);
    }

    #[test]
    fn disks_and_vifs_become_libxl_devices() {
        let mut config = pv_direct();
        config.vbds = vec![
            VbdConfig {
                device: "xvda".into(),
                kind: VbdKind::Disk,
                mode: VbdMode::Rw,
                backend: Some(VbdBackend::Path("/dev/loop0".into())),
            },
            VbdConfig {
                device: "1".into(),
                kind: VbdKind::Disk,
                mode: VbdMode::Ro,
                backend: Some(VbdBackend::Nbd(
                    "nbd:unix:/run/sr/x.sock:exportname=x".into(),
                )),
            },
            VbdConfig {
                device: "xvdd".into(),
                kind: VbdKind::Cd,
                mode: VbdMode::Ro,
                backend: None,
            },
        ];
        config.vifs = vec![VifConfig {
            device: "0".into(),
            bridge: "xenbr0".into(),
            mac: "00:16:3E:AA:BB:0C".into(),
            mtu: 1500,
        }];
        let doc = domain_config(&config).unwrap();
        let disks = doc["disks"].as_array().unwrap();
        assert_eq!(disks[0]["backend"], "phy");
        assert_eq!(disks[0]["pdev_path"], "/dev/loop0");
        assert_eq!(disks[0]["readwrite"], 1);
        assert_eq!(disks[1]["vdev"], "xvdb");
        assert_eq!(disks[1]["backend"], "qdisk");
        assert_eq!(disks[1]["readwrite"], 0);
        assert_eq!(disks[2]["is_cdrom"], 1);
        assert_eq!(disks[2]["format"], "empty");
        assert!(disks[2].get("pdev_path").is_none());
        let nic = &doc["nics"][0];
        assert_eq!(nic["devid"], 0);
        assert_eq!(nic["bridge"], "xenbr0");
        assert_eq!(nic["mac"], "00:16:3e:aa:bb:0c");
        assert_eq!(nic["mtu"], 1500);
    }

    #[test]
    fn an_nbd_vbd_on_its_kernel_device_becomes_a_blkback_disk() {
        let vbd = VbdConfig {
            device: "xvda".into(),
            kind: VbdKind::Disk,
            mode: VbdMode::Rw,
            backend: Some(VbdBackend::Nbd("nbd+unix:///v?socket=/s".into())),
        };
        let local = on_local_device(&vbd, std::path::Path::new("/dev/nbd2"));
        assert_eq!(local.device, "xvda");
        let doc = disk(&local).unwrap();
        assert_eq!(doc["backend"], "phy");
        assert_eq!(doc["pdev_path"], "/dev/nbd2");
        assert_eq!(doc["readwrite"], 1);
    }

    #[test]
    fn a_disk_without_data_is_refused() {
        let vbd = VbdConfig {
            device: "xvda".into(),
            kind: VbdKind::Disk,
            mode: VbdMode::Rw,
            backend: None,
        };
        assert!(matches!(disk(&vbd), Err(XenopsError::InvalidConfig(_))));
    }

    #[test]
    fn numbered_disks_get_xvd_names() {
        assert_eq!(vdev_name("0").unwrap(), "xvda");
        assert_eq!(vdev_name("25").unwrap(), "xvdz");
        assert_eq!(vdev_name("26").unwrap(), "xvdaa");
        assert_eq!(vdev_name("hdc").unwrap(), "hdc");
        assert!(vdev_name("vda").is_err());
    }

    #[test]
    fn an_invalid_config_is_refused_before_translation() {
        let mut config = pv_direct();
        config.vcpus.at_startup = 0;
        assert!(domain_config(&config).is_err());
    }
}
