//! Fault injection on the simulated host, from `sim-*` keys and from `SimHost::inject`.

#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use uuid::Uuid;
use xenops::sim::{Fault, SimConfig, SimHost};
use xenops::{
    DeviceKind, DomainConfig, DomainEvent, DomainState, Hypervisor, ShutdownKind, ShutdownReason,
    VbdBackend, VbdConfig, VbdKind, VbdMode, XenopsError,
};

const GIB: u64 = 1 << 30;
const WAIT: Duration = Duration::from_secs(5);

fn host() -> SimHost {
    SimHost::new(SimConfig::default()).unwrap()
}

fn with_keys(pairs: &[(&str, &str)]) -> DomainConfig {
    let mut config = DomainConfig::new_pv(Uuid::new_v4(), "vm", GIB);
    for (k, v) in pairs {
        config.other_config.insert(k.to_string(), v.to_string());
    }
    config
}

fn wait_for(events: &Receiver<DomainEvent>, want: impl Fn(&DomainEvent) -> bool) -> DomainEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = events.recv_timeout(left).expect("event did not come");
        if want(&event) {
            return event;
        }
    }
}

#[test]
fn sim_fail_start_fails_create_and_leaves_nothing() {
    let host = host();
    let config = with_keys(&[("sim-fail-start", "true")]);
    assert!(matches!(
        host.create(&config),
        Err(XenopsError::BootFailure(_))
    ));
    assert_eq!(host.list().unwrap().len(), 1);
    assert_eq!(host.physinfo().unwrap().free_memory, 15 * GIB);
}

#[test]
fn fail_next_start_fails_once() {
    let host = host();
    let config = with_keys(&[]);
    host.inject(&config.uuid, Fault::FailNextStart).unwrap();
    assert!(matches!(
        host.create(&config),
        Err(XenopsError::BootFailure(_))
    ));
    assert_eq!(host.create(&config).unwrap().state, DomainState::Paused);
}

#[test]
fn sim_crash_after_ms_crashes_the_guest_and_it_stays_crashed_holding_memory() {
    let host = host();
    let events = host.events();
    let config = with_keys(&[("sim-crash-after-ms", "20")]);
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    let crashed = wait_for(&events, |e| matches!(e, DomainEvent::Crashed { .. }));
    assert_eq!(
        crashed,
        DomainEvent::Crashed {
            uuid: config.uuid,
            domid: 1
        }
    );
    assert_eq!(
        host.domain(&config.uuid).unwrap().state,
        DomainState::Crashed
    );
    assert_eq!(host.physinfo().unwrap().free_memory, 14 * GIB);
    let err = host
        .shutdown(&config.uuid, ShutdownKind::Clean, WAIT)
        .unwrap_err();
    assert!(matches!(
        err,
        XenopsError::BadState {
            actual: DomainState::Crashed,
            ..
        }
    ));
}

#[test]
fn the_crash_timer_does_not_start_before_the_first_unpause() {
    let host = host();
    let config = with_keys(&[("sim-crash-after-ms", "0")]);
    host.create(&config).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        host.domain(&config.uuid).unwrap().state,
        DomainState::Paused
    );
}

#[test]
fn injected_crash_is_immediate_and_emits_crashed() {
    let host = host();
    let events = host.events();
    let config = with_keys(&[]);
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    host.inject(&config.uuid, Fault::Crash).unwrap();
    assert_eq!(
        host.domain(&config.uuid).unwrap().state,
        DomainState::Crashed
    );
    assert!(events
        .try_iter()
        .any(|e| matches!(e, DomainEvent::Crashed { .. })));
    assert!(matches!(
        host.inject(&config.uuid, Fault::Crash),
        Err(XenopsError::BadState { .. })
    ));
}

#[test]
fn a_guest_ignoring_shutdown_keeps_running_and_the_request_times_out() {
    let host = host();
    let config = with_keys(&[("sim-ignore-shutdown", "true")]);
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    let started = Instant::now();
    let err = host
        .shutdown(&config.uuid, ShutdownKind::Clean, Duration::from_millis(50))
        .unwrap_err();
    assert!(matches!(err, XenopsError::Timeout(_)));
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(
        host.domain(&config.uuid).unwrap().state,
        DomainState::Running
    );
    assert_eq!(
        host.xenstore_read(&config.uuid, "control/shutdown")
            .unwrap()
            .as_deref(),
        Some("halt")
    );
    let err = host
        .migrate_send(&config.uuid, Duration::from_millis(10))
        .unwrap_err();
    assert!(matches!(err, XenopsError::Timeout(_)));
    // A hard shutdown still works, and obeying again makes a clean one work.
    host.inject(&config.uuid, Fault::IgnoreShutdown(false))
        .unwrap();
    host.shutdown(&config.uuid, ShutdownKind::Clean, WAIT)
        .unwrap();
    assert!(host.domain(&config.uuid).is_err());
}

#[test]
fn a_waiting_clean_shutdown_ends_when_the_domain_is_destroyed_meanwhile() {
    let host = std::sync::Arc::new(host());
    let config = with_keys(&[("sim-ignore-shutdown", "true")]);
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    let waiter = {
        let (host, uuid) = (host.clone(), config.uuid);
        std::thread::spawn(move || host.shutdown(&uuid, ShutdownKind::Clean, WAIT))
    };
    std::thread::sleep(Duration::from_millis(20));
    host.shutdown(&config.uuid, ShutdownKind::Hard, WAIT)
        .unwrap();
    assert!(waiter.join().unwrap().is_ok());
}

#[test]
fn guest_initiated_poweroff_and_reboot_tear_the_domain_down() {
    let host = host();
    let events = host.events();
    let reboot = with_keys(&[("sim-reboot-after-ms", "10")]);
    host.create(&reboot).unwrap();
    host.unpause(&reboot.uuid).unwrap();
    let event = wait_for(&events, |e| matches!(e, DomainEvent::Shutdown { .. }));
    assert_eq!(
        event,
        DomainEvent::Shutdown {
            uuid: reboot.uuid,
            domid: 1,
            reason: ShutdownReason::Reboot
        }
    );
    wait_for(&events, |e| matches!(e, DomainEvent::Destroyed { .. }));
    assert!(host.domain(&reboot.uuid).is_err());

    let poweroff = with_keys(&[]);
    host.create(&poweroff).unwrap();
    host.unpause(&poweroff.uuid).unwrap();
    host.inject(
        &poweroff.uuid,
        Fault::GuestShutdown(ShutdownReason::Poweroff),
    )
    .unwrap();
    assert!(host.domain(&poweroff.uuid).is_err());
    assert!(events.try_iter().any(|e| e
        == DomainEvent::Shutdown {
            uuid: poweroff.uuid,
            domid: 2,
            reason: ShutdownReason::Poweroff
        }));
    assert_eq!(host.physinfo().unwrap().free_memory, 15 * GIB);
}

#[test]
fn a_guest_ignoring_the_balloon_keeps_its_memory() {
    let host = host();
    let mut config = with_keys(&[("sim-ignore-balloon", "true")]);
    config.memory.static_min = GIB / 2;
    config.memory.dynamic_min = GIB / 2;
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    host.set_memory_target(&config.uuid, GIB / 2).unwrap();
    let info = host.domain(&config.uuid).unwrap();
    assert_eq!((info.memory_target, info.memory_actual), (GIB / 2, GIB));
    assert_eq!(host.physinfo().unwrap().free_memory, 14 * GIB);
    assert!(!host
        .guest_data(&config.uuid)
        .unwrap()
        .contains_key("control/feature-balloon"));
    host.inject(&config.uuid, Fault::IgnoreBalloon(false))
        .unwrap();
    assert_eq!(host.domain(&config.uuid).unwrap().memory_actual, GIB / 2);
    assert_eq!(host.physinfo().unwrap().free_memory, 14 * GIB + GIB / 2);
}

#[test]
fn a_guest_without_pv_drivers_publishes_nothing_and_leaves_frontends_unconnected() {
    let host = host();
    let mut config = with_keys(&[("sim-no-pv-drivers", "true")]);
    config.vbds.push(VbdConfig {
        device: "xvda".into(),
        kind: VbdKind::Disk,
        mode: VbdMode::Rw,
        backend: Some(VbdBackend::Path("/disk".into())),
    });
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    assert!(host.guest_data(&config.uuid).unwrap().is_empty());
    assert!(!host.domain(&config.uuid).unwrap().devices[0].connected());
}

#[test]
fn a_held_device_refuses_a_plain_detach_but_not_a_forced_one() {
    let host = host();
    let mut config = with_keys(&[("sim-busy-vbds", "xvdb")]);
    for name in ["xvda", "xvdb"] {
        config.vbds.push(VbdConfig {
            device: name.into(),
            kind: VbdKind::Disk,
            mode: VbdMode::Rw,
            backend: Some(VbdBackend::Path(format!("/{name}").into())),
        });
    }
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    assert!(matches!(
        host.detach_vbd(&config.uuid, "xvdb", false),
        Err(XenopsError::DeviceBusy { .. })
    ));
    host.detach_vbd(&config.uuid, "xvdb", true).unwrap();
    host.inject(
        &config.uuid,
        Fault::HoldDevice(DeviceKind::Vbd, "xvda".into()),
    )
    .unwrap();
    assert!(matches!(
        host.detach_vbd(&config.uuid, "xvda", false),
        Err(XenopsError::DeviceBusy { .. })
    ));
    host.inject(
        &config.uuid,
        Fault::ReleaseDevice(DeviceKind::Vbd, "xvda".into()),
    )
    .unwrap();
    host.detach_vbd(&config.uuid, "xvda", false).unwrap();
    assert!(host.domain(&config.uuid).unwrap().devices.is_empty());
}

#[test]
fn malformed_fault_keys_are_invalid_config() {
    let host = host();
    let config = with_keys(&[("sim-crash-after-ms", "soon")]);
    assert!(matches!(
        host.create(&config),
        Err(XenopsError::InvalidConfig(_))
    ));
}

#[test]
fn crash_after_injected_later_fires() {
    let host = host();
    let events = host.events();
    let config = with_keys(&[]);
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    host.inject(&config.uuid, Fault::CrashAfter(Duration::from_millis(5)))
        .unwrap();
    wait_for(&events, |e| matches!(e, DomainEvent::Crashed { .. }));
    assert_eq!(
        host.domain(&config.uuid).unwrap().state,
        DomainState::Crashed
    );
}
