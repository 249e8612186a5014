//! Bench (not a test): create + unpause + shutdown cycles per second on the simulated host,
//! in memory and with the state file (with and without fsync), alone and from 4 threads,
//! and the cost of keeping 1,000 domains running.
//!
//! `cargo run --release -p xenops --example sim_bench [seconds-per-case]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;
use xenops::sim::{SimConfig, SimHost};
use xenops::{DomainConfig, Hypervisor, ShutdownKind};

const MIB: u64 = 1 << 20;

fn cycle(host: &SimHost, kind: ShutdownKind) {
    let config = DomainConfig::new_pv(Uuid::new_v4(), "bench", 256 * MIB);
    host.create(&config).expect("create");
    host.unpause(&config.uuid).expect("unpause");
    host.shutdown(&config.uuid, kind, Duration::from_secs(5))
        .expect("shutdown");
}

fn rate(host: Arc<SimHost>, threads: usize, seconds: f64, kind: ShutdownKind) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (host, done) = (host.clone(), done.clone());
            std::thread::spawn(move || {
                while started.elapsed().as_secs_f64() < seconds {
                    cycle(&host, kind);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("bench thread");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let seconds: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2.0);
    let dir = tempfile::tempdir()?;
    let cases: [(&str, Option<bool>); 3] = [
        ("in memory", None),
        ("state file", Some(false)),
        ("state file + fsync", Some(true)),
    ];
    for (name, file) in cases {
        for threads in [1, 4] {
            let config = SimConfig {
                fsync: file == Some(true),
                ..SimConfig::default()
            };
            let host = match file {
                None => SimHost::new(config)?,
                Some(_) => {
                    SimHost::open(&dir.path().join(format!("{name}-{threads}.json")), config)?
                }
            };
            let per_second = rate(Arc::new(host), threads, seconds, ShutdownKind::Clean);
            println!("{name:>20}, {threads} thread(s): {per_second:>9.0} create+unpause+clean shutdown cycles/s");
        }
    }

    // 1,000 running domains on one host (512 GiB so they fit), then cycles beside them.
    for file in [false, true] {
        let config = SimConfig {
            total_memory: 512 << 30,
            ..SimConfig::default()
        };
        let host = if file {
            SimHost::open(&dir.path().join("thousand.json"), config)?
        } else {
            SimHost::new(config)?
        };
        let started = Instant::now();
        for i in 0..1000 {
            let config = DomainConfig::new_pv(Uuid::new_v4(), &format!("vm{i}"), 256 * MIB);
            host.create(&config)?;
            host.unpause(&config.uuid)?;
        }
        let fill = started.elapsed();
        let listed = Instant::now();
        let n = host.list()?.len();
        let list_time = listed.elapsed();
        let per_second = rate(Arc::new(host), 1, seconds, ShutdownKind::Hard);
        println!(
            "1000 domains ({}): started in {:.2} s, list() of {n} in {:.2} ms, {per_second:.0} cycles/s beside them",
            if file { "state file" } else { "in memory" },
            fill.as_secs_f64(),
            list_time.as_secs_f64() * 1000.0
        );
    }
    Ok(())
}
