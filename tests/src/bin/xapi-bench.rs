//! `xapi-bench`: throughput and latency figures of a real daemon on loopback (not a test).
//!
//! `cargo run --release -p xapi-system-tests --bin xapi-bench [-- --vms N --seconds S]`
//! starts the release `xapi` with a temp state dir and measures: login rate; `VM.get_record`
//! and `VM.get_all_records` latency with N VMs in the store; small calls per second with 1, 4
//! and 16 concurrent keep-alive clients. Prints a table; asserts nothing.
use std::time::{Duration, Instant};

use xapi_system_tests::bench::{arg, percentile};
use xapi_system_tests::{s, Api, Client, TestDaemon, Value};

fn latencies(mut f: impl FnMut(), n: usize) -> (Duration, Duration) {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

fn main() {
    let n_vms = arg("--vms", 10_000) as usize;
    let seconds = arg("--seconds", 3);
    let d = TestDaemon::start();

    let t = Instant::now();
    let mut logins = 0u64;
    while t.elapsed() < Duration::from_secs(seconds) {
        let _ = Api::login(Client::new(d.http()), "root", "test-root-password").expect("login");
        logins += 1;
    }
    println!(
        "login (new connection each): {:.0}/s",
        logins as f64 / t.elapsed().as_secs_f64()
    );
    let mut c = Client::new(d.http());
    let t = Instant::now();
    let mut keep = 0u64;
    while t.elapsed() < Duration::from_secs(seconds) {
        c.call(
            "session.login_with_password",
            vec![s("root"), s("test-root-password")],
        )
        .expect("login");
        keep += 1;
    }
    println!(
        "login (keep-alive): {:.0}/s",
        keep as f64 / t.elapsed().as_secs_f64()
    );

    // Log in after the login loop: upstream's per-user session limit evicts the oldest sessions.
    let mut api = d.login();
    let t = Instant::now();
    let mut vm = String::new();
    for i in 0..n_vms {
        vm = api.string(
            "VM.create",
            vec![Value::Struct(vec![(
                "name_label".into(),
                s(&format!("bench-{i}")),
            )])],
        );
    }
    println!(
        "VM.create x{n_vms}: {:.2} s ({:.0}/s)",
        t.elapsed().as_secs_f64(),
        n_vms as f64 / t.elapsed().as_secs_f64()
    );

    let (p50, p99) = latencies(|| drop(api.ok("VM.get_record", vec![s(&vm)])), 5_000);
    println!("VM.get_record with {n_vms}+ VMs: p50 {p50:?} p99 {p99:?}");
    let (p50, p99) = latencies(|| drop(api.ok("VM.get_name_label", vec![s(&vm)])), 5_000);
    println!("VM.get_name_label: p50 {p50:?} p99 {p99:?}");
    let (p50, p99) = latencies(|| drop(api.ok("VM.get_all_records", vec![])), 10);
    println!("VM.get_all_records of {n_vms}+ VMs: p50 {p50:?} p99 {p99:?}");

    for clients in [1usize, 4, 16] {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let mut api = d.login();
                let vm = vm.clone();
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        api.ok("VM.get_name_label", vec![s(&vm)]);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let total: u64 = handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .sum();
        println!(
            "{clients:>2} keep-alive clients: {:.0} calls/s",
            total as f64 / seconds as f64
        );
    }
}
