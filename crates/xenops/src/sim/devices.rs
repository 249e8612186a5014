//! Device work on the simulated host: VBD and VIF hot-plug and unplug with xenbus states,
//! CD insert and eject, and consoles.
//!
//! Plug: the backend appears (`InitWait`), then, if the guest is up with PV drivers, both
//! ends reach `Connected`. Unplug: both ends go `Closing`, then the device is removed
//! (`Closed`). A guest holding a device refuses a plain unplug.

use std::path::PathBuf;

use uuid::Uuid;

use super::engine::{device_changed, expect_live, Engine, Flow};
use super::table::{SimDomain, Table};
use crate::device::{
    validate_mac, vbd_devid, vif_devid, ConsoleInfo, ConsoleLocation, ConsoleProtocol, DeviceInfo,
    DeviceKind, DeviceSpec, VbdBackend, VbdConfig, VbdKind, VbdMode, VifConfig, XenbusState,
};
use crate::domain::{DomainConfig, DomainState};
use crate::error::{Result, XenopsError};
use crate::event::DomainEvent;

/// A checked, not yet connected VBD.
pub fn vbd_device(vbd: &VbdConfig) -> Result<DeviceInfo> {
    let devid = vbd_devid(&vbd.device)?;
    match (vbd.kind, &vbd.backend, vbd.mode) {
        (VbdKind::Disk, None, _) => {
            return Err(XenopsError::InvalidConfig(format!(
                "disk {} has no backend",
                vbd.device
            )))
        }
        (VbdKind::Cd, _, VbdMode::Rw) => {
            return Err(XenopsError::InvalidConfig(format!(
                "cd drive {} must be read-only",
                vbd.device
            )))
        }
        _ => {}
    }
    Ok(unplugged(
        vbd.device.clone(),
        devid,
        DeviceSpec::Vbd(vbd.clone()),
    ))
}

/// A checked, not yet connected VIF.
pub fn vif_device(vif: &VifConfig) -> Result<DeviceInfo> {
    let devid = vif_devid(&vif.device)?;
    validate_mac(&vif.mac)?;
    if !(68..=65535).contains(&vif.mtu) {
        return Err(XenopsError::InvalidConfig(format!(
            "mtu {} out of range",
            vif.mtu
        )));
    }
    if vif.bridge.is_empty() {
        return Err(XenopsError::InvalidConfig(format!(
            "vif {} has no bridge",
            vif.device
        )));
    }
    Ok(unplugged(
        vif.device.clone(),
        devid,
        DeviceSpec::Vif(vif.clone()),
    ))
}

fn unplugged(device: String, devid: u32, spec: DeviceSpec) -> DeviceInfo {
    DeviceInfo {
        device,
        devid,
        backend_state: XenbusState::InitWait,
        frontend_state: XenbusState::Initialising,
        spec,
    }
}

/// The devices a build description asks for, checked for clashes.
pub fn initial_devices(config: &DomainConfig) -> Result<Vec<DeviceInfo>> {
    let mut devices: Vec<DeviceInfo> = Vec::new();
    let vbds = config.vbds.iter().map(vbd_device);
    let vifs = config.vifs.iter().map(vif_device);
    for device in vbds.chain(vifs) {
        let device = device?;
        if clash(&devices, &device) {
            return Err(XenopsError::DeviceExists {
                device: device.device,
            });
        }
        devices.push(device);
    }
    Ok(devices)
}

fn clash(devices: &[DeviceInfo], new: &DeviceInfo) -> bool {
    devices
        .iter()
        .any(|d| d.kind() == new.kind() && d.devid == new.devid)
}

fn device_mut<'a>(
    domain: &'a mut SimDomain,
    kind: DeviceKind,
    device: &str,
) -> Result<(usize, &'a mut DeviceInfo)> {
    let index = domain
        .device_index(kind, device)
        .ok_or_else(|| XenopsError::NoSuchDevice {
            device: device.to_string(),
        })?;
    Ok((index, &mut domain.devices[index]))
}

impl Engine {
    /// `attach_vbd` / `attach_vif`.
    pub fn attach(&self, uuid: &Uuid, new: DeviceInfo) -> Result<DeviceInfo> {
        let kind = new.kind();
        let check = |table: &mut Table| -> Result<()> {
            let domain = table.get_mut(uuid)?;
            expect_live(domain)?;
            if clash(&domain.devices, &new) {
                return Err(XenopsError::DeviceExists {
                    device: new.device.clone(),
                });
            }
            Ok(())
        };
        check(&mut self.lock())?;
        self.run_steps(true, &["plug", "connect"], uuid, |i, table, changes| {
            if i == 0 {
                check(table)?;
                let domain = table.get_mut(uuid)?;
                domain.devices.push(new.clone());
                let index = domain.devices.len() - 1;
                domain.write_device_state(index);
                changes.emit(device_changed(domain, index));
                return Ok(Flow::Next);
            }
            let domain = table.get_mut(uuid)?;
            if !(domain.guest_up && domain.state == DomainState::Running) {
                return Ok(Flow::Done);
            }
            for index in domain.connect_frontends() {
                changes.emit(device_changed(domain, index));
            }
            if kind == DeviceKind::Vif && domain.write_agent_data() {
                changes.emit(DomainEvent::GuestAgentUpdated {
                    uuid: *uuid,
                    domid: domain.domid,
                });
            }
            Ok(Flow::Next)
        })?;
        let table = self.lock();
        let domain = table.get(uuid)?;
        let index =
            domain
                .device_index(kind, &new.device)
                .ok_or_else(|| XenopsError::NoSuchDevice {
                    device: new.device.clone(),
                })?;
        Ok(domain.devices[index].clone())
    }

    /// `detach_vbd` / `detach_vif`.
    pub fn detach(&self, uuid: &Uuid, kind: DeviceKind, device: &str, force: bool) -> Result<()> {
        let check = |table: &mut Table| -> Result<()> {
            let domain = table.get_mut(uuid)?;
            if domain.state == DomainState::Dying {
                return Err(super::engine::bad_state(domain, DomainState::Running));
            }
            let busy = domain.faults.busy.contains(&(kind, device.to_string()));
            device_mut(domain, kind, device)?;
            if busy && !force {
                return Err(XenopsError::DeviceBusy {
                    device: device.to_string(),
                });
            }
            Ok(())
        };
        check(&mut self.lock())?;
        self.run_steps(true, &["unplug", "remove"], uuid, |i, table, changes| {
            if i == 0 {
                check(table)?;
            }
            let domain = table.get_mut(uuid)?;
            let (index, dev) = device_mut(domain, kind, device)?;
            if i == 0 {
                dev.backend_state = XenbusState::Closing;
                dev.frontend_state = XenbusState::Closing;
                domain.write_device_state(index);
                changes.emit(device_changed(domain, index));
                return Ok(Flow::Next);
            }
            dev.backend_state = XenbusState::Closed;
            dev.frontend_state = XenbusState::Closed;
            changes.emit(device_changed(domain, index));
            let removed = domain.devices.remove(index);
            domain
                .xenstore
                .rm(&format!("device/{kind}/{}", removed.devid));
            if kind == DeviceKind::Vif && domain.xenstore.rm(&format!("attr/vif/{}", removed.devid))
            {
                changes.emit(DomainEvent::GuestAgentUpdated {
                    uuid: *uuid,
                    domid: domain.domid,
                });
            }
            Ok(Flow::Next)
        })
    }

    /// `insert_cd` (with a backend) / `eject_cd` (without).
    pub fn change_cd(&self, uuid: &Uuid, device: &str, media: Option<&VbdBackend>) -> Result<()> {
        let check = |table: &mut Table| -> Result<()> {
            let domain = table.get_mut(uuid)?;
            expect_live(domain)?;
            let (_, dev) = device_mut(domain, DeviceKind::Vbd, device)?;
            let DeviceSpec::Vbd(vbd) = &dev.spec else {
                return Err(XenopsError::NoSuchDevice {
                    device: device.to_string(),
                });
            };
            let name = device.to_string();
            match (vbd.kind, &vbd.backend, media) {
                (VbdKind::Disk, _, _) => Err(XenopsError::NotACd { device: name }),
                (VbdKind::Cd, Some(_), Some(_)) => Err(XenopsError::CdNotEmpty { device: name }),
                (VbdKind::Cd, None, None) => Err(XenopsError::CdEmpty { device: name }),
                _ => Ok(()),
            }
        };
        check(&mut self.lock())?;
        let label = if media.is_some() { "insert" } else { "eject" };
        self.run_steps(true, &[label], uuid, |_, table, changes| {
            check(table)?;
            let domain = table.get_mut(uuid)?;
            changes.touch(domain.domid);
            let (_, dev) = device_mut(domain, DeviceKind::Vbd, device)?;
            if let DeviceSpec::Vbd(vbd) = &mut dev.spec {
                vbd.backend = media.cloned();
            }
            Ok(Flow::Next)
        })
    }

    /// `attach_console`: the existing console of that protocol, or a new one.
    pub fn attach_console(&self, uuid: &Uuid, protocol: ConsoleProtocol) -> Result<ConsoleInfo> {
        let mut console = None;
        self.run_steps(false, &["console"], uuid, |_, table, changes| {
            let domain = table.get_mut(uuid)?;
            expect_live(domain)?;
            if let Some(existing) = domain.consoles.iter().find(|c| c.protocol == protocol) {
                console = Some(existing.clone());
                return Ok(Flow::Done);
            }
            // Simulated locations: only data, nothing listens there.
            let location = match protocol {
                ConsoleProtocol::Vt100 => {
                    ConsoleLocation::Pty(PathBuf::from(format!("/dev/pts/sim{}", domain.domid)))
                }
                ConsoleProtocol::Rfb => {
                    ConsoleLocation::VncPort(u16::try_from(5900 + domain.domid).unwrap_or(u16::MAX))
                }
            };
            let new = ConsoleInfo { protocol, location };
            domain.consoles.push(new.clone());
            changes.touch(domain.domid);
            console = Some(new);
            Ok(Flow::Next)
        })?;
        console.ok_or_else(|| XenopsError::State("console step did not run".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vbd(device: &str, kind: VbdKind, mode: VbdMode, backend: Option<&str>) -> VbdConfig {
        VbdConfig {
            device: device.into(),
            kind,
            mode,
            backend: backend.map(|p| VbdBackend::Path(p.into())),
        }
    }

    #[test]
    fn a_disk_without_backend_or_a_writable_cd_is_refused() {
        assert!(vbd_device(&vbd("xvda", VbdKind::Disk, VbdMode::Rw, None)).is_err());
        assert!(vbd_device(&vbd("xvdd", VbdKind::Cd, VbdMode::Rw, None)).is_err());
        let empty_cd = vbd_device(&vbd("xvdd", VbdKind::Cd, VbdMode::Ro, None)).unwrap();
        assert_eq!(empty_cd.backend_state, XenbusState::InitWait);
    }

    #[test]
    fn two_names_for_one_device_number_clash() {
        let mut config = DomainConfig::new_pv(Uuid::new_v4(), "t", 1 << 30);
        config
            .vbds
            .push(vbd("xvda", VbdKind::Disk, VbdMode::Rw, Some("/a")));
        config
            .vbds
            .push(vbd("0", VbdKind::Disk, VbdMode::Rw, Some("/b")));
        assert!(matches!(
            initial_devices(&config),
            Err(XenopsError::DeviceExists { .. })
        ));
    }

    #[test]
    fn vifs_need_a_number_a_mac_a_bridge_and_a_sane_mtu() {
        let good = VifConfig {
            device: "0".into(),
            bridge: "xenbr0".into(),
            mac: "00:16:3e:00:00:01".into(),
            mtu: 1500,
        };
        assert!(vif_device(&good).is_ok());
        assert!(vif_device(&VifConfig {
            mtu: 10,
            ..good.clone()
        })
        .is_err());
        assert!(vif_device(&VifConfig {
            bridge: String::new(),
            ..good.clone()
        })
        .is_err());
        assert!(vif_device(&VifConfig {
            device: "eth0".into(),
            ..good
        })
        .is_err());
    }
}
