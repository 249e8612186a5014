//! `xapi-vm-bench`: VM lifecycle throughput of a real daemon on the simulated host (not a
//! test).
//!
//! `cargo run --release -p xapi-system-tests --bin xapi-vm-bench [-- --seconds S --running N]`
//! starts the release `xapi` with a temp state dir and measures full cycles
//! (`VM.clone` + `VM.start` + `VM.clean_shutdown` + `VM.destroy`) per second with one client
//! and with 4 concurrent clients, then starts N small VMs on the one host and reports how
//! long that took and the host's free memory. Prints figures, with the daemon's CPU time per
//! cycle (less sensitive to other load on the machine than the rate); asserts only that calls
//! succeed.
use std::time::{Duration, Instant};

use xapi_system_tests::bench::{arg, daemon_cpu};
use xapi_system_tests::{s, Api, TestDaemon, Value};

/// A halted, non-template VM of `mib` MiB made from a default template.
fn prototype(api: &mut Api, name: &str, mib: i64) -> String {
    let template = match api.ok("VM.get_by_name_label", vec![s("Debian Bookworm 12")]) {
        Value::Array(mut refs) => refs.remove(0).as_str().unwrap_or_default().to_owned(),
        other => panic!("no template: {other:?}"),
    };
    let vm = api.string("VM.clone", vec![s(&template), s(name)]);
    api.ok("VM.set_is_a_template", vec![s(&vm), Value::Bool(false)]);
    let m = Value::Int(mib << 20);
    api.ok(
        "VM.set_memory_limits",
        vec![s(&vm), m.clone(), m.clone(), m.clone(), m],
    );
    vm
}

/// Runs full cycles from `proto` for `seconds`; returns how many completed.
fn cycles(api: &mut Api, proto: &str, seconds: u64) -> u64 {
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_secs(seconds) {
        let vm = api.string("VM.clone", vec![s(proto), s("cycle")]);
        api.ok(
            "VM.start",
            vec![s(&vm), Value::Bool(false), Value::Bool(false)],
        );
        api.ok("VM.clean_shutdown", vec![s(&vm)]);
        api.ok("VM.destroy", vec![s(&vm)]);
        n += 1;
    }
    n
}

fn main() {
    let seconds = arg("--seconds", 5);
    let running = arg("--running", 1000);
    let d = TestDaemon::start();

    let mut api = d.login();
    let proto = prototype(&mut api, "bench-proto", 64);
    let cpu = || daemon_cpu(d.state_dir()).unwrap_or_default();
    let per_cycle = |before: Duration, n: u64| {
        (cpu().saturating_sub(before).as_secs_f64() * 1e6 / n.max(1) as f64).round()
    };
    let (t, before) = (Instant::now(), cpu());
    let n = cycles(&mut api, &proto, seconds);
    println!(
        "create+start+shutdown+destroy, 1 client: {:.0} cycles/s ({} µs daemon CPU per cycle)",
        n as f64 / t.elapsed().as_secs_f64(),
        per_cycle(before, n)
    );

    let (t, before) = (Instant::now(), cpu());
    let threads: Vec<_> = (0..4)
        .map(|k| {
            let mut api = d.login();
            let proto = prototype(&mut api, &format!("bench-proto-{k}"), 64);
            std::thread::spawn(move || cycles(&mut api, &proto, seconds))
        })
        .collect();
    let total: u64 = threads
        .into_iter()
        .map(|h| h.join().expect("client thread"))
        .sum();
    println!(
        "create+start+shutdown+destroy, 4 clients: {:.0} cycles/s ({} µs daemon CPU per cycle)",
        total as f64 / t.elapsed().as_secs_f64(),
        per_cycle(before, total)
    );

    let small = prototype(&mut api, "bench-small", 8);
    let t = Instant::now();
    let mut vms = Vec::new();
    for k in 0..running {
        let vm = api.string("VM.clone", vec![s(&small), s(&format!("run-{k}"))]);
        api.ok(
            "VM.start",
            vec![s(&vm), Value::Bool(false), Value::Bool(false)],
        );
        vms.push(vm);
    }
    let host = match api.ok("host.get_all", vec![]) {
        Value::Array(mut refs) => refs.remove(0).as_str().unwrap_or_default().to_owned(),
        other => panic!("no host: {other:?}"),
    };
    let free = api.ok("host.compute_free_memory", vec![s(&host)]);
    println!(
        "{running} VMs of 8 MiB cloned and started in {:.1} s; host free memory {free:?}",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let _ = api.ok("VM.get_all_records", vec![]);
    println!(
        "VM.get_all_records with {running} running: {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
}
