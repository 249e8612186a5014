//! Domain lifecycle on the simulated host: every transition and the errors around it.

#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use std::time::Duration;

use uuid::Uuid;
use xenops::sim::{SimConfig, SimHost};
use xenops::{
    DomainConfig, DomainEvent, DomainState, Hypervisor, MemoryConfig, ShutdownKind, ShutdownReason,
    XenopsError,
};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const WAIT: Duration = Duration::from_secs(5);

fn host() -> SimHost {
    SimHost::new(SimConfig::default()).unwrap()
}

fn pv(memory: u64) -> DomainConfig {
    DomainConfig::new_pv(Uuid::new_v4(), "vm", memory)
}

fn started(host: &SimHost, memory: u64) -> Uuid {
    let config = pv(memory);
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    config.uuid
}

fn free(host: &SimHost) -> u64 {
    host.physinfo().unwrap().free_memory
}

#[test]
fn dom0_exists_alone_on_a_fresh_host_and_holds_its_memory() {
    let host = host();
    let all = host.list().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].domid, 0);
    assert_eq!(all[0].uuid, host.dom0_uuid());
    assert_eq!(all[0].state, DomainState::Running);
    let info = host.physinfo().unwrap();
    assert_eq!(info.total_memory, 16 * GIB);
    assert_eq!(info.free_memory, 15 * GIB);
    assert_eq!(info.nr_cpus, 8);
    assert!(info.capabilities.iter().any(|c| c == "hvm-3.0-x86_64"));
}

#[test]
fn create_leaves_the_domain_paused_and_charges_its_memory() {
    let host = host();
    let config = pv(GIB);
    let info = host.create(&config).unwrap();
    assert_eq!(info.state, DomainState::Paused);
    assert_eq!(info.domid, 1);
    assert_eq!(info.memory_actual, GIB);
    assert_eq!(free(&host), 14 * GIB);
    assert_eq!(host.domain(&config.uuid).unwrap(), info);
}

#[test]
fn domids_count_up_and_are_not_reused_after_destroy() {
    let host = host();
    let a = started(&host, 256 * MIB);
    let b = started(&host, 256 * MIB);
    assert_eq!(host.domain(&a).unwrap().domid, 1);
    assert_eq!(host.domain(&b).unwrap().domid, 2);
    host.shutdown(&a, ShutdownKind::Hard, WAIT).unwrap();
    let config = DomainConfig::new_pv(a, "again", 256 * MIB);
    assert_eq!(host.create(&config).unwrap().domid, 3);
}

#[test]
fn unpause_runs_pause_pauses() {
    let host = host();
    let vm = started(&host, GIB);
    assert_eq!(host.domain(&vm).unwrap().state, DomainState::Running);
    host.pause(&vm).unwrap();
    assert_eq!(host.domain(&vm).unwrap().state, DomainState::Paused);
    host.unpause(&vm).unwrap();
    assert_eq!(host.domain(&vm).unwrap().state, DomainState::Running);
}

#[test]
fn pausing_a_paused_domain_is_bad_state() {
    let host = host();
    let config = pv(GIB);
    host.create(&config).unwrap();
    let err = host.pause(&config.uuid).unwrap_err();
    assert!(matches!(
        err,
        XenopsError::BadState {
            expected: DomainState::Running,
            actual: DomainState::Paused,
            ..
        }
    ));
}

#[test]
fn unpausing_a_running_domain_is_bad_state() {
    let host = host();
    let vm = started(&host, GIB);
    let err = host.unpause(&vm).unwrap_err();
    assert!(matches!(
        err,
        XenopsError::BadState {
            expected: DomainState::Paused,
            actual: DomainState::Running,
            ..
        }
    ));
}

#[test]
fn clean_shutdown_removes_the_domain_and_returns_its_memory() {
    let host = host();
    let events = host.events();
    let vm = started(&host, 2 * GIB);
    assert_eq!(free(&host), 13 * GIB);
    host.shutdown(&vm, ShutdownKind::Clean, WAIT).unwrap();
    assert!(matches!(host.domain(&vm), Err(XenopsError::NoSuchDomain(u)) if u == vm));
    assert_eq!(free(&host), 15 * GIB);
    let seen: Vec<DomainEvent> = events.try_iter().collect();
    assert!(seen.contains(&DomainEvent::Shutdown {
        uuid: vm,
        domid: 1,
        reason: ShutdownReason::Halt
    }));
    assert_eq!(
        seen.last(),
        Some(&DomainEvent::Destroyed { uuid: vm, domid: 1 })
    );
}

#[test]
fn clean_shutdown_of_a_paused_domain_is_bad_state() {
    let host = host();
    let config = pv(GIB);
    host.create(&config).unwrap();
    let err = host
        .shutdown(&config.uuid, ShutdownKind::Clean, WAIT)
        .unwrap_err();
    assert!(matches!(
        err,
        XenopsError::BadState {
            actual: DomainState::Paused,
            ..
        }
    ));
    assert!(host.domain(&config.uuid).is_ok());
}

#[test]
fn reboot_request_emits_shutdown_reboot_and_the_domain_goes_away() {
    let host = host();
    let events = host.events();
    let vm = started(&host, GIB);
    host.shutdown(&vm, ShutdownKind::Reboot, WAIT).unwrap();
    assert!(host.domain(&vm).is_err());
    let reasons: Vec<ShutdownReason> = events
        .try_iter()
        .filter_map(|e| match e {
            DomainEvent::Shutdown { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [ShutdownReason::Reboot]);
}

#[test]
fn hard_shutdown_works_from_paused_and_crashed() {
    let host = host();
    let config = pv(GIB);
    host.create(&config).unwrap();
    host.shutdown(&config.uuid, ShutdownKind::Hard, WAIT)
        .unwrap();
    assert!(host.domain(&config.uuid).is_err());
    let vm = started(&host, GIB);
    host.inject(&vm, xenops::sim::Fault::Crash).unwrap();
    host.shutdown(&vm, ShutdownKind::Hard, WAIT).unwrap();
    assert_eq!(free(&host), 15 * GIB);
}

#[test]
fn operations_on_an_unknown_vm_are_no_such_domain() {
    let host = host();
    let vm = Uuid::new_v4();
    assert!(matches!(host.pause(&vm), Err(XenopsError::NoSuchDomain(_))));
    assert!(matches!(
        host.unpause(&vm),
        Err(XenopsError::NoSuchDomain(_))
    ));
    assert!(matches!(
        host.shutdown(&vm, ShutdownKind::Hard, WAIT),
        Err(XenopsError::NoSuchDomain(_))
    ));
    assert!(matches!(
        host.domain(&vm),
        Err(XenopsError::NoSuchDomain(_))
    ));
    assert!(matches!(
        host.guest_data(&vm),
        Err(XenopsError::NoSuchDomain(_))
    ));
}

#[test]
fn the_control_domain_refuses_lifecycle_operations() {
    let host = host();
    let dom0 = host.dom0_uuid();
    assert!(matches!(host.pause(&dom0), Err(XenopsError::ControlDomain)));
    assert!(matches!(
        host.shutdown(&dom0, ShutdownKind::Hard, WAIT),
        Err(XenopsError::ControlDomain)
    ));
    assert!(matches!(
        host.set_vcpus(&dom0, 1),
        Err(XenopsError::ControlDomain)
    ));
    let mut config = pv(GIB);
    config.uuid = dom0;
    assert!(matches!(
        host.create(&config),
        Err(XenopsError::AlreadyExists(_))
    ));
    assert_eq!(host.domain(&dom0).unwrap().domid, 0);
}

#[test]
fn creating_a_second_domain_for_a_vm_is_already_exists() {
    let host = host();
    let config = pv(GIB);
    host.create(&config).unwrap();
    assert!(matches!(host.create(&config), Err(XenopsError::AlreadyExists(u)) if u == config.uuid));
    assert_eq!(host.list().unwrap().len(), 2);
}

#[test]
fn creating_beyond_free_memory_is_not_enough_memory_and_leaves_nothing() {
    let host = host();
    started(&host, 10 * GIB);
    let err = host.create(&pv(6 * GIB)).unwrap_err();
    match err {
        XenopsError::NotEnoughMemory { needed, free } => {
            assert_eq!(needed, 6 * GIB);
            assert_eq!(free, 5 * GIB);
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(host.list().unwrap().len(), 2);
    assert_eq!(free(&host), 5 * GIB);
    // Exactly the free memory still fits.
    host.create(&pv(5 * GIB)).unwrap();
    assert_eq!(free(&host), 0);
}

#[test]
fn vcpu_limits_are_enforced_at_create_and_live() {
    let host = host();
    let mut config = pv(GIB);
    config.vcpus.max = 65;
    config.vcpus.at_startup = 1;
    assert!(matches!(
        host.create(&config),
        Err(XenopsError::TooManyVcpus {
            requested: 65,
            max: 64
        })
    ));
    config.vcpus.max = 4;
    config.vcpus.at_startup = 5;
    assert!(matches!(
        host.create(&config),
        Err(XenopsError::TooManyVcpus {
            requested: 5,
            max: 4
        })
    ));
    config.vcpus.at_startup = 2;
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    assert_eq!(host.domain(&config.uuid).unwrap().vcpus_online, 2);
    host.set_vcpus(&config.uuid, 4).unwrap();
    assert_eq!(host.domain(&config.uuid).unwrap().vcpus_online, 4);
    assert!(matches!(
        host.set_vcpus(&config.uuid, 5),
        Err(XenopsError::TooManyVcpus {
            requested: 5,
            max: 4
        })
    ));
    assert!(matches!(
        host.set_vcpus(&config.uuid, 0),
        Err(XenopsError::InvalidConfig(_))
    ));
}

#[test]
fn memory_order_and_boot_description_are_checked() {
    let host = host();
    let mut config = pv(GIB);
    config.memory.dynamic_min = 2 * GIB;
    assert!(matches!(
        host.create(&config),
        Err(XenopsError::InvalidConfig(_))
    ));
    let mut hvm = DomainConfig::new_hvm(Uuid::new_v4(), "hvm", GIB);
    hvm.boot = xenops::BootConfig::Hvm {
        boot_order: "cx".into(),
        firmware: xenops::Firmware::Uefi,
    };
    assert!(matches!(
        host.create(&hvm),
        Err(XenopsError::InvalidConfig(_))
    ));
    let mut mismatched = pv(GIB);
    mismatched.domain_type = xenops::DomainType::Hvm;
    assert!(matches!(
        host.create(&mismatched),
        Err(XenopsError::InvalidConfig(_))
    ));
    assert_eq!(host.list().unwrap().len(), 1);
}

#[test]
fn lowering_the_memory_target_frees_memory_when_the_balloon_gets_there() {
    let host = host();
    let events = host.events();
    let mut config = pv(2 * GIB);
    config.memory = MemoryConfig {
        static_min: 512 * MIB,
        static_max: 4 * GIB,
        dynamic_min: 512 * MIB,
        dynamic_max: 4 * GIB,
        target: 2 * GIB,
    };
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    host.set_memory_target(&config.uuid, GIB).unwrap();
    let info = host.domain(&config.uuid).unwrap();
    assert_eq!((info.memory_target, info.memory_actual), (GIB, GIB));
    assert_eq!(free(&host), 14 * GIB);
    assert!(events.try_iter().any(|e| e
        == DomainEvent::MemoryTargetReached {
            uuid: config.uuid,
            domid: 1,
            bytes: GIB
        }));
    assert_eq!(
        host.guest_data(&config.uuid).unwrap()["data/meminfo_total"],
        (GIB / 1024).to_string()
    );
    // Raising it needs free memory; beyond static_max it is invalid.
    host.set_memory_target(&config.uuid, 4 * GIB).unwrap();
    assert_eq!(free(&host), 11 * GIB);
    assert!(matches!(
        host.set_memory_target(&config.uuid, 5 * GIB),
        Err(XenopsError::InvalidConfig(_))
    ));
}

#[test]
fn raising_the_memory_target_beyond_free_memory_is_refused() {
    let host = SimHost::new(SimConfig {
        total_memory: 4 * GIB,
        ..SimConfig::default()
    })
    .unwrap();
    let mut config = pv(GIB);
    config.memory.static_max = 8 * GIB;
    config.memory.dynamic_max = 8 * GIB;
    host.create(&config).unwrap();
    let err = host.set_memory_target(&config.uuid, 5 * GIB).unwrap_err();
    assert!(
        matches!(err, XenopsError::NotEnoughMemory { needed, free } if needed == 4 * GIB && free == 2 * GIB)
    );
    assert_eq!(host.domain(&config.uuid).unwrap().memory_target, GIB);
}

#[test]
fn suspend_and_resume_keep_the_guest_state() {
    let host = host();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("suspend.img");
    let mut config = pv(GIB);
    config.vcpus = xenops::VcpuConfig {
        max: 4,
        at_startup: 1,
    };
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    host.set_vcpus(&config.uuid, 3).unwrap();
    let data_before = host.guest_data(&config.uuid).unwrap();
    host.suspend(&config.uuid, &image, WAIT).unwrap();
    assert!(host.domain(&config.uuid).is_err());
    assert_eq!(free(&host), 15 * GIB);
    let info = host.resume(&config, &image).unwrap();
    assert_eq!(info.state, DomainState::Paused);
    assert_eq!(info.vcpus_online, 3);
    assert_eq!(info.domid, 2);
    assert_eq!(host.guest_data(&config.uuid).unwrap(), data_before);
    host.unpause(&config.uuid).unwrap();
    assert_eq!(
        host.domain(&config.uuid).unwrap().state,
        DomainState::Running
    );
}

#[test]
fn resume_refuses_an_image_of_another_vm() {
    let host = host();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("suspend.img");
    let vm = started(&host, GIB);
    host.suspend(&vm, &image, WAIT).unwrap();
    assert!(matches!(
        host.resume(&pv(GIB), &image),
        Err(XenopsError::InvalidImage(_))
    ));
    assert!(matches!(
        host.resume(&pv(GIB), &dir.path().join("missing")),
        Err(XenopsError::Io(_))
    ));
}

#[test]
fn migrate_send_then_receive_moves_the_domain() {
    let host = host();
    let config = pv(GIB);
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    let state = host.migrate_send(&config.uuid, WAIT).unwrap();
    assert!(host.domain(&config.uuid).is_err());
    let info = host.migrate_receive(&config, &state).unwrap();
    assert_eq!(info.state, DomainState::Paused);
    assert_eq!(info.memory_actual, GIB);
    assert!(host
        .guest_data(&config.uuid)
        .unwrap()
        .contains_key("data/os_version/name"));
    assert!(matches!(
        host.migrate_receive(&pv(GIB), b"garbage"),
        Err(XenopsError::InvalidImage(_))
    ));
}

#[test]
fn suspending_a_paused_domain_is_bad_state() {
    let host = host();
    let config = pv(GIB);
    host.create(&config).unwrap();
    assert!(matches!(
        host.migrate_send(&config.uuid, WAIT),
        Err(XenopsError::BadState { .. })
    ));
}

#[test]
fn events_report_each_state_change_in_order() {
    let host = host();
    let events = host.events();
    let vm = started(&host, GIB);
    host.pause(&vm).unwrap();
    host.shutdown(&vm, ShutdownKind::Hard, WAIT).unwrap();
    let states: Vec<DomainState> = events
        .try_iter()
        .filter_map(|e| match e {
            DomainEvent::StateChanged { state, .. } => Some(state),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            DomainState::Paused,
            DomainState::Running,
            DomainState::Paused,
            DomainState::Dying
        ]
    );
}
