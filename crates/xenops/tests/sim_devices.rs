//! Devices, consoles and guest agent data on the simulated host.

#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use std::time::Duration;

use uuid::Uuid;
use xenops::sim::{guest_ip, SimConfig, SimHost};
use xenops::{
    ConsoleLocation, ConsoleProtocol, DeviceKind, DeviceSpec, DomainConfig, DomainEvent,
    Hypervisor, ShutdownKind, VbdBackend, VbdConfig, VbdKind, VbdMode, VifConfig, XenbusState,
    XenopsError,
};

const GIB: u64 = 1 << 30;

fn host() -> SimHost {
    SimHost::new(SimConfig::default()).unwrap()
}

fn disk(name: &str) -> VbdConfig {
    VbdConfig {
        device: name.into(),
        kind: VbdKind::Disk,
        mode: VbdMode::Rw,
        backend: Some(VbdBackend::Path(format!("/srv/{name}.vhd").into())),
    }
}

fn cd(name: &str) -> VbdConfig {
    VbdConfig {
        device: name.into(),
        kind: VbdKind::Cd,
        mode: VbdMode::Ro,
        backend: None,
    }
}

fn vif(device: &str) -> VifConfig {
    VifConfig {
        device: device.into(),
        bridge: "xenbr0".into(),
        mac: format!("00:16:3e:00:00:0{device}"),
        mtu: 1500,
    }
}

#[test]
fn devices_wait_for_the_guest_then_connect_when_it_boots() {
    let host = host();
    let mut config = DomainConfig::new_pv(Uuid::new_v4(), "vm", GIB);
    config.vbds.push(disk("xvda"));
    config.vifs.push(vif("0"));
    let info = host.create(&config).unwrap();
    assert!(info
        .devices
        .iter()
        .all(|d| d.backend_state == XenbusState::InitWait && !d.connected()));
    let events = host.events();
    host.unpause(&config.uuid).unwrap();
    let info = host.domain(&config.uuid).unwrap();
    assert!(info.devices.iter().all(|d| d.connected()));
    assert_eq!(info.devices[0].devid, 51712);
    let connected = events
        .try_iter()
        .filter(|e| {
            matches!(
                e,
                DomainEvent::DeviceStateChanged {
                    backend_state: XenbusState::Connected,
                    ..
                }
            )
        })
        .count();
    assert_eq!(connected, 2);
    assert_eq!(
        host.xenstore_read(&config.uuid, "device/vbd/51712/state")
            .unwrap()
            .as_deref(),
        Some("4")
    );
}

#[test]
fn the_guest_agent_publishes_os_network_memory_and_features_after_boot() {
    let host = host();
    let mut config = DomainConfig::new_pv(Uuid::new_v4(), "vm", GIB);
    config.vifs.push(vif("0"));
    host.create(&config).unwrap();
    assert!(host.guest_data(&config.uuid).unwrap().is_empty());
    host.unpause(&config.uuid).unwrap();
    let data = host.guest_data(&config.uuid).unwrap();
    assert_eq!(data["data/os_version/distro"], "simlinux");
    assert_eq!(data["data/os_version/major"], "1");
    assert_eq!(data["attr/vif/0/ipv4/0"], guest_ip(1, 0));
    assert_eq!(data["data/meminfo_total"], (GIB / 1024).to_string());
    assert_eq!(data["control/feature-shutdown"], "1");
    assert!(
        !data.contains_key("memory/target"),
        "toolstack nodes are not guest data"
    );
}

#[test]
fn hotplugged_vif_connects_and_gets_an_address_and_unplug_removes_both() {
    let host = host();
    let config = DomainConfig::new_pv(Uuid::new_v4(), "vm", GIB);
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    let events = host.events();
    let dev = host.attach_vif(&config.uuid, &vif("1")).unwrap();
    assert!(dev.connected());
    assert_eq!(dev.kind(), DeviceKind::Vif);
    assert!(host
        .guest_data(&config.uuid)
        .unwrap()
        .contains_key("attr/vif/1/ipv4/0"));
    assert!(events
        .try_iter()
        .any(|e| matches!(e, DomainEvent::GuestAgentUpdated { .. })));
    assert!(matches!(
        host.attach_vif(&config.uuid, &vif("1")),
        Err(XenopsError::DeviceExists { .. })
    ));
    host.detach_vif(&config.uuid, "1", false).unwrap();
    assert!(host.domain(&config.uuid).unwrap().devices.is_empty());
    assert!(!host
        .guest_data(&config.uuid)
        .unwrap()
        .contains_key("attr/vif/1/ipv4/0"));
    let states: Vec<XenbusState> = events
        .try_iter()
        .filter_map(|e| match e {
            DomainEvent::DeviceStateChanged { backend_state, .. } => Some(backend_state),
            _ => None,
        })
        .collect();
    assert_eq!(states, [XenbusState::Closing, XenbusState::Closed]);
    assert!(matches!(
        host.detach_vif(&config.uuid, "1", false),
        Err(XenopsError::NoSuchDevice { .. })
    ));
}

#[test]
fn a_disk_plugged_into_a_paused_guest_waits_for_unpause() {
    let host = host();
    let config = DomainConfig::new_pv(Uuid::new_v4(), "vm", GIB);
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    host.pause(&config.uuid).unwrap();
    let dev = host.attach_vbd(&config.uuid, &disk("xvdb")).unwrap();
    assert_eq!(dev.backend_state, XenbusState::InitWait);
    host.unpause(&config.uuid).unwrap();
    assert!(host.domain(&config.uuid).unwrap().devices[0].connected());
}

#[test]
fn cd_insert_and_eject_follow_the_drive_contents() {
    let host = host();
    let mut config = DomainConfig::new_hvm(Uuid::new_v4(), "vm", GIB);
    config.vbds.push(disk("hda"));
    config.vbds.push(cd("hdd"));
    host.create(&config).unwrap();
    let iso = VbdBackend::Path("/iso/install.iso".into());
    assert!(matches!(
        host.eject_cd(&config.uuid, "hdd"),
        Err(XenopsError::CdEmpty { .. })
    ));
    host.insert_cd(&config.uuid, "hdd", &iso).unwrap();
    let info = host.domain(&config.uuid).unwrap();
    assert!(matches!(&info.devices[1].spec, DeviceSpec::Vbd(v) if v.backend == Some(iso.clone())));
    assert!(matches!(
        host.insert_cd(&config.uuid, "hdd", &iso),
        Err(XenopsError::CdNotEmpty { .. })
    ));
    assert!(matches!(
        host.insert_cd(&config.uuid, "hda", &iso),
        Err(XenopsError::NotACd { .. })
    ));
    assert!(matches!(
        host.insert_cd(&config.uuid, "hdc", &iso),
        Err(XenopsError::NoSuchDevice { .. })
    ));
    host.eject_cd(&config.uuid, "hdd").unwrap();
    let info = host.domain(&config.uuid).unwrap();
    assert!(matches!(&info.devices[1].spec, DeviceSpec::Vbd(v) if v.backend.is_none()));
}

#[test]
fn consoles_are_found_again_and_differ_per_protocol() {
    let host = host();
    let config = DomainConfig::new_hvm(Uuid::new_v4(), "vm", GIB);
    host.create(&config).unwrap();
    let vnc = host
        .attach_console(&config.uuid, ConsoleProtocol::Rfb)
        .unwrap();
    assert_eq!(vnc.location, ConsoleLocation::VncPort(5901));
    assert_eq!(
        host.attach_console(&config.uuid, ConsoleProtocol::Rfb)
            .unwrap(),
        vnc
    );
    let text = host
        .attach_console(&config.uuid, ConsoleProtocol::Vt100)
        .unwrap();
    assert!(matches!(text.location, ConsoleLocation::Pty(_)));
    assert_eq!(host.domain(&config.uuid).unwrap().consoles.len(), 2);
}

#[test]
fn devices_of_a_destroyed_domain_are_gone_with_it() {
    let host = host();
    let mut config = DomainConfig::new_pv(Uuid::new_v4(), "vm", GIB);
    config.vbds.push(disk("xvda"));
    host.create(&config).unwrap();
    host.shutdown(&config.uuid, ShutdownKind::Hard, Duration::from_secs(1))
        .unwrap();
    assert!(matches!(
        host.attach_vbd(&config.uuid, &disk("xvdb")),
        Err(XenopsError::NoSuchDomain(_))
    ));
}

#[test]
fn a_guest_write_under_data_is_guest_data_and_emits_an_update() {
    let host = host();
    let config = DomainConfig::new_pv(Uuid::new_v4(), "vm", GIB);
    host.create(&config).unwrap();
    let events = host.events();
    host.xenstore_write(&config.uuid, "data/ts", "1").unwrap();
    assert_eq!(host.guest_data(&config.uuid).unwrap()["data/ts"], "1");
    assert!(matches!(
        events.try_recv().unwrap(),
        DomainEvent::GuestAgentUpdated { .. }
    ));
}
