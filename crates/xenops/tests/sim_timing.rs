//! Single-step and delayed timing on the simulated host.

#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;
use xenops::sim::{Delays, SimConfig, SimHost, Timing};
use xenops::{DomainConfig, DomainState, Hypervisor, ShutdownKind, ShutdownReason};

const GIB: u64 = 1 << 30;
const WAIT: Duration = Duration::from_secs(5);

fn stepped() -> Arc<SimHost> {
    Arc::new(
        SimHost::new(SimConfig {
            timing: Timing::SingleStep,
            ..SimConfig::default()
        })
        .unwrap(),
    )
}

fn state(host: &SimHost, vm: &Uuid) -> Option<DomainState> {
    host.domain(vm).ok().map(|d| d.state)
}

#[test]
fn each_transition_waits_for_a_step_and_intermediate_states_are_visible() {
    let host = stepped();
    let config = DomainConfig::new_pv(Uuid::new_v4(), "vm", GIB);
    let vm = config.uuid;

    let creating = {
        let host = host.clone();
        std::thread::spawn(move || host.create(&config).map(|d| d.domid))
    };
    assert_eq!(
        host.step().as_deref(),
        Some(format!("create {vm}").as_str())
    );
    assert_eq!(creating.join().unwrap().unwrap(), 1);
    assert_eq!(state(&host, &vm), Some(DomainState::Paused));

    let unpausing = {
        let host = host.clone();
        std::thread::spawn(move || host.unpause(&vm))
    };
    assert_eq!(
        host.step().as_deref(),
        Some(format!("unpause {vm}").as_str())
    );
    unpausing.join().unwrap().unwrap();
    assert_eq!(state(&host, &vm), Some(DomainState::Running));
    // The guest is not up until its boot step: no agent data yet.
    assert!(host.guest_data(&vm).unwrap().is_empty());
    assert_eq!(host.step().as_deref(), Some(format!("boot {vm}").as_str()));
    assert!(host
        .guest_data(&vm)
        .unwrap()
        .contains_key("control/feature-shutdown"));

    let stopping = {
        let host = host.clone();
        std::thread::spawn(move || host.shutdown(&vm, ShutdownKind::Clean, WAIT))
    };
    assert!(host.step().unwrap().starts_with("shutdown"));
    assert_eq!(
        state(&host, &vm),
        Some(DomainState::Shutdown(ShutdownReason::Halt))
    );
    assert!(host.step().unwrap().starts_with("destroy"));
    assert_eq!(state(&host, &vm), Some(DomainState::Dying));
    assert_eq!(
        host.physinfo().unwrap().free_memory,
        14 * GIB,
        "a dying domain still holds memory"
    );
    assert!(host.step().unwrap().starts_with("release"));
    assert_eq!(state(&host, &vm), None);
    stopping.join().unwrap().unwrap();
    assert_eq!(host.physinfo().unwrap().free_memory, 15 * GIB);
    assert_eq!(host.step_timeout(Duration::from_millis(20)), None);
}

#[test]
fn refused_operations_fail_without_waiting_for_a_step() {
    let host = stepped();
    let config = DomainConfig::new_pv(Uuid::new_v4(), "vm", GIB);
    let creating = {
        let (host, config) = (host.clone(), config.clone());
        std::thread::spawn(move || host.create(&config))
    };
    host.step().unwrap();
    creating.join().unwrap().unwrap();
    assert!(host.pause(&config.uuid).is_err());
    assert!(host.waiting_steps().is_empty());
}

#[test]
fn waiting_steps_lists_parked_transitions() {
    let host = stepped();
    let config = DomainConfig::new_pv(Uuid::new_v4(), "vm", GIB);
    let vm = config.uuid;
    let creating = {
        let host = host.clone();
        std::thread::spawn(move || host.create(&config))
    };
    let deadline = Instant::now() + WAIT;
    while host.waiting_steps().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(host.waiting_steps(), [format!("create {vm}")]);
    assert!(
        host.list().unwrap().len() == 1,
        "nothing is created before the step"
    );
    host.step().unwrap();
    creating.join().unwrap().unwrap();
}

#[test]
fn delayed_timing_takes_time_for_transitions_and_guest_boot() {
    let delays = Delays {
        transition: Duration::from_millis(10),
        guest_boot: Duration::from_millis(40),
        balloon: Duration::from_millis(10),
    };
    let host = SimHost::new(SimConfig {
        timing: Timing::Delayed(delays),
        ..SimConfig::default()
    })
    .unwrap();
    let config = DomainConfig::new_pv(Uuid::new_v4(), "vm", GIB);
    let started = Instant::now();
    host.create(&config).unwrap();
    host.unpause(&config.uuid).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert!(
        host.guest_data(&config.uuid).unwrap().is_empty(),
        "the agent has not written yet"
    );
    let deadline = Instant::now() + WAIT;
    while host.guest_data(&config.uuid).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the guest never came up");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(started.elapsed() >= Duration::from_millis(60));
}
