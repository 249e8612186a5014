//! A property-style test: random sequences of operations on several domains, checked after
//! every step against a simple model of states, free memory and domain counts. The random
//! numbers come from a fixed-seed SplitMix64, so a failure names a reproducible seed.

#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use std::collections::BTreeMap;
use std::time::Duration;

use uuid::Uuid;
use xenops::sim::{Fault, SimConfig, SimHost};
use xenops::{
    DomainConfig, DomainState, Hypervisor, MemoryConfig, ShutdownKind, VcpuConfig, XenopsError,
};

const MIB: u64 = 1 << 20;
const TOTAL: u64 = 8 << 30;
const DOM0: u64 = 1 << 30;
const VMS: usize = 5;
const WAIT: Duration = Duration::from_secs(1);

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the model expects of one VM's domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expected {
    state: DomainState,
    actual: u64,
    target: u64,
}

impl Expected {
    fn charged(&self) -> u64 {
        self.actual.max(self.target)
    }
}

/// The outcome classes the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    NoSuchDomain,
    AlreadyExists,
    NotEnoughMemory,
    BadState,
    TooManyVcpus,
    InvalidConfig,
}

fn outcome<T>(result: Result<T, XenopsError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(XenopsError::NoSuchDomain(_)) => Outcome::NoSuchDomain,
        Err(XenopsError::AlreadyExists(_)) => Outcome::AlreadyExists,
        Err(XenopsError::NotEnoughMemory { .. }) => Outcome::NotEnoughMemory,
        Err(XenopsError::BadState { .. }) => Outcome::BadState,
        Err(XenopsError::TooManyVcpus { .. }) => Outcome::TooManyVcpus,
        Err(XenopsError::InvalidConfig(_)) => Outcome::InvalidConfig,
        Err(other) => panic!("unexpected error {other}"),
    }
}

fn ignores_balloon(uuids: &[Uuid], vm: Uuid) -> bool {
    uuids[..2].contains(&vm)
}

fn vm_config(uuid: Uuid, memory: u64, ignore_balloon: bool) -> DomainConfig {
    let mut config = DomainConfig::new_pv(uuid, "model", memory);
    config.memory = MemoryConfig {
        static_min: memory / 2,
        dynamic_min: memory / 2,
        target: memory,
        dynamic_max: memory * 2,
        static_max: memory * 2,
    };
    config.vcpus = VcpuConfig {
        max: 4,
        at_startup: 1,
    };
    if ignore_balloon {
        config
            .other_config
            .insert("sim-ignore-balloon".into(), "true".into());
    }
    config
}

fn run(seed: u64, steps: usize) {
    let host = SimHost::new(SimConfig {
        total_memory: TOTAL,
        dom0_memory: DOM0,
        ..SimConfig::default()
    })
    .unwrap();
    let mut rng = SplitMix(seed);
    let uuids: Vec<Uuid> = (0..VMS).map(|_| Uuid::new_v4()).collect();
    let mut sizes: BTreeMap<Uuid, u64> = BTreeMap::new();
    let mut model: BTreeMap<Uuid, Expected> = BTreeMap::new();
    let mut last_domid = 0;

    for step in 0..steps {
        let vm = uuids[rng.below(VMS as u64) as usize];
        let current = model.get(&vm).copied();
        let free = TOTAL - DOM0 - model.values().map(Expected::charged).sum::<u64>();
        let live = |e: Option<Expected>| match e {
            None => Outcome::NoSuchDomain,
            Some(e) if matches!(e.state, DomainState::Running | DomainState::Paused) => Outcome::Ok,
            Some(_) => Outcome::BadState,
        };
        let only = |e: Option<Expected>, state: DomainState| match e {
            None => Outcome::NoSuchDomain,
            Some(e) if e.state == state => Outcome::Ok,
            Some(_) => Outcome::BadState,
        };
        let op = rng.below(10);
        let (what, expected, got) = match op {
            0 => {
                let memory = [256, 512, 1024, 2048, 3072][rng.below(5) as usize] * MIB;
                let expected = match current {
                    Some(_) => Outcome::AlreadyExists,
                    None if memory > free => Outcome::NotEnoughMemory,
                    None => Outcome::Ok,
                };
                let got = host.create(&vm_config(vm, memory, ignores_balloon(&uuids, vm)));
                if let Ok(info) = &got {
                    assert!(
                        info.domid > last_domid,
                        "seed {seed} step {step}: domid reused"
                    );
                    last_domid = info.domid;
                    sizes.insert(vm, memory);
                    model.insert(
                        vm,
                        Expected {
                            state: DomainState::Paused,
                            actual: memory,
                            target: memory,
                        },
                    );
                }
                ("create", expected, outcome(got))
            }
            1 => {
                let expected = only(current, DomainState::Paused);
                let got = outcome(host.unpause(&vm));
                if got == Outcome::Ok {
                    model.get_mut(&vm).unwrap().state = DomainState::Running;
                }
                ("unpause", expected, got)
            }
            2 => {
                let expected = only(current, DomainState::Running);
                let got = outcome(host.pause(&vm));
                if got == Outcome::Ok {
                    model.get_mut(&vm).unwrap().state = DomainState::Paused;
                }
                ("pause", expected, got)
            }
            3 | 4 => {
                let kind = if op == 3 {
                    ShutdownKind::Clean
                } else {
                    ShutdownKind::Reboot
                };
                let expected = only(current, DomainState::Running);
                let got = outcome(host.shutdown(&vm, kind, WAIT));
                if got == Outcome::Ok {
                    model.remove(&vm);
                }
                ("clean shutdown/reboot", expected, got)
            }
            5 => {
                let expected = if current.is_some() {
                    Outcome::Ok
                } else {
                    Outcome::NoSuchDomain
                };
                let got = outcome(host.shutdown(&vm, ShutdownKind::Hard, WAIT));
                if got == Outcome::Ok {
                    model.remove(&vm);
                }
                ("hard shutdown", expected, got)
            }
            6 => {
                let expected = live(current);
                let got = outcome(host.inject(&vm, Fault::Crash));
                if got == Outcome::Ok {
                    model.get_mut(&vm).unwrap().state = DomainState::Crashed;
                }
                ("crash", expected, got)
            }
            7 => {
                let size = sizes.get(&vm).copied().unwrap_or(MIB * 512);
                let target = size / 2 + rng.below(3 * size / 2 / MIB + 1) * MIB;
                let expected = match (live(current), current) {
                    (Outcome::Ok, Some(e)) if target.saturating_sub(e.charged()) > free => {
                        Outcome::NotEnoughMemory
                    }
                    (other, _) => other,
                };
                let got = outcome(host.set_memory_target(&vm, target));
                if got == Outcome::Ok {
                    // The balloon reaches the target at once in instant timing, unless the
                    // guest ignores it (the first two VMs do).
                    let e = model.get_mut(&vm).unwrap();
                    e.target = target;
                    if !ignores_balloon(&uuids, vm) {
                        e.actual = target;
                    }
                }
                ("set_memory_target", expected, got)
            }
            8 => {
                let expected = only(current, DomainState::Running);
                let got = host.migrate_send(&vm, WAIT);
                let got = match got {
                    Ok(state) => {
                        let size = sizes[&vm];
                        let info = host
                            .migrate_receive(
                                &vm_config(vm, size, ignores_balloon(&uuids, vm)),
                                &state,
                            )
                            .unwrap();
                        assert!(info.domid > last_domid);
                        last_domid = info.domid;
                        model.get_mut(&vm).unwrap().state = DomainState::Paused;
                        Outcome::Ok
                    }
                    Err(e) => outcome::<()>(Err(e)),
                };
                ("migrate", expected, got)
            }
            _ => {
                let n = rng.below(6) as u32;
                let expected = match live(current) {
                    Outcome::Ok if n == 0 => Outcome::InvalidConfig,
                    Outcome::Ok if n > 4 => Outcome::TooManyVcpus,
                    other => other,
                };
                let got = outcome(host.set_vcpus(&vm, n));
                if got == Outcome::Ok {
                    assert_eq!(host.domain(&vm).unwrap().vcpus_online, n);
                }
                ("set_vcpus", expected, got)
            }
        };
        assert_eq!(got, expected, "seed {seed} step {step}: {what} on {vm}");

        let free = TOTAL - DOM0 - model.values().map(Expected::charged).sum::<u64>();
        assert_eq!(
            host.physinfo().unwrap().free_memory,
            free,
            "seed {seed} step {step}: free memory after {what}"
        );
        let listed = host.list().unwrap();
        assert_eq!(
            listed.len(),
            model.len() + 1,
            "seed {seed} step {step}: domain count after {what}"
        );
        for info in &listed[1..] {
            let e = model[&info.uuid];
            assert_eq!(
                info.state, e.state,
                "seed {seed} step {step}: state of {}",
                info.uuid
            );
            assert_eq!(
                (info.memory_actual, info.memory_target),
                (e.actual, e.target)
            );
        }
    }
}

#[test]
fn random_operation_sequences_match_the_model() {
    for seed in 1..=20 {
        run(seed, 1500);
    }
}
