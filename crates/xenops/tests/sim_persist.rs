//! The simulated host's state across daemon restarts.

#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use std::time::Duration;

use uuid::Uuid;
use xenops::sim::{SimConfig, SimHost};
use xenops::{DomainConfig, DomainState, Hypervisor, ShutdownKind, XenopsError};

const GIB: u64 = 1 << 30;

fn config(boot_id: &str) -> SimConfig {
    SimConfig {
        boot_id: Some(boot_id.into()),
        fsync: true,
        ..SimConfig::default()
    }
}

#[test]
fn running_domains_survive_a_reopen_with_the_same_domids_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let (a, b, dom0) = {
        let host = SimHost::open(&path, config("boot-1")).unwrap();
        let a = DomainConfig::new_pv(Uuid::new_v4(), "a", GIB);
        let b = DomainConfig::new_pv(Uuid::new_v4(), "b", 2 * GIB);
        host.create(&a).unwrap();
        host.unpause(&a.uuid).unwrap();
        host.create(&b).unwrap();
        (a.uuid, b.uuid, host.dom0_uuid())
    };
    let host = SimHost::open(&path, config("boot-1")).unwrap();
    assert_eq!(host.dom0_uuid(), dom0);
    let a_info = host.domain(&a).unwrap();
    assert_eq!((a_info.domid, a_info.state), (1, DomainState::Running));
    assert_eq!(host.domain(&b).unwrap().state, DomainState::Paused);
    assert!(host
        .guest_data(&a)
        .unwrap()
        .contains_key("data/os_version/name"));
    assert_eq!(host.physinfo().unwrap().free_memory, 12 * GIB);
    // The domid counter carries on.
    let c = DomainConfig::new_pv(Uuid::new_v4(), "c", GIB);
    assert_eq!(host.create(&c).unwrap().domid, 3);
    host.shutdown(&a, ShutdownKind::Hard, Duration::from_secs(1))
        .unwrap();
    drop(host);
    let host = SimHost::open(&path, config("boot-1")).unwrap();
    assert!(matches!(host.domain(&a), Err(XenopsError::NoSuchDomain(_))));
    assert_eq!(host.list().unwrap().len(), 3);
}

#[test]
fn a_state_file_from_another_boot_means_the_host_rebooted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let dom0 = {
        let host = SimHost::open(&path, config("boot-1")).unwrap();
        let vm = DomainConfig::new_pv(Uuid::new_v4(), "a", GIB);
        host.create(&vm).unwrap();
        host.dom0_uuid()
    };
    let host = SimHost::open(&path, config("boot-2")).unwrap();
    assert_eq!(host.list().unwrap().len(), 1);
    assert_eq!(
        host.dom0_uuid(),
        dom0,
        "dom0 keeps its uuid across host reboots"
    );
    let vm = DomainConfig::new_pv(Uuid::new_v4(), "b", GIB);
    assert_eq!(host.create(&vm).unwrap().domid, 1);
}

#[test]
fn crashed_domains_and_pending_crash_timers_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let mut timed = DomainConfig::new_pv(Uuid::new_v4(), "timed", GIB);
    timed
        .other_config
        .insert("sim-crash-after-ms".into(), "150".into());
    let crashed = DomainConfig::new_pv(Uuid::new_v4(), "crashed", GIB);
    {
        let host = SimHost::open(&path, config("boot-1")).unwrap();
        for vm in [&timed, &crashed] {
            host.create(vm).unwrap();
            host.unpause(&vm.uuid).unwrap();
        }
        host.inject(&crashed.uuid, xenops::sim::Fault::Crash)
            .unwrap();
    }
    let host = SimHost::open(&path, config("boot-1")).unwrap();
    assert_eq!(
        host.domain(&crashed.uuid).unwrap().state,
        DomainState::Crashed
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while host.domain(&timed.uuid).unwrap().state != DomainState::Crashed {
        assert!(
            std::time::Instant::now() < deadline,
            "the crash timer was lost"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_corrupt_state_file_is_a_state_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    std::fs::write(&path, b"{ not json").unwrap();
    assert!(matches!(
        SimHost::open(&path, config("boot-1")),
        Err(XenopsError::State(_))
    ));
}
