//! `xapi-storage-bench`: throughput of the VDI data path and latency of VDI snapshot/clone
//! (not a test: prints figures, asserts only that operations succeed).
//!
//! `cargo run --release -p xapi-system-tests --bin xapi-storage-bench [-- --mib M --qd Q --ops N]`
//!
//! Throughput: sequential and random reads and writes of 4 KiB, 64 KiB and 1 MiB requests
//! over an M MiB region (default 256), Q requests in flight (default 16; `--qd 1` is one
//! request at a time, the round-trip-bound figure), against
//! - `nbd`: our NBD server (`crates/nbd`) serving a fresh dynamic VHD (`crates/vhd`), as an
//!   SR driver serves an active VDI;
//! - `raw`: the same work with `pread`/`pwrite` on a sparse raw file (no socket, no format),
//!   from Q threads, so Q requests are in flight there too;
//! - `qemu-nbd`: `qemu-nbd -f vpc` serving a fresh dynamic VHD, when installed.
//!
//! Both NBD targets are driven by the same client (`nbd::Client`) over one unix socket,
//! pipelining up to Q requests with distinct cookies (replies matched by cookie, in any order),
//! as qemu's and blkback's NBD clients do.
//! Latency: `VDI.snapshot` and `VDI.clone` over the wire on a 10 GiB sparse VDI of a `file`
//! SR of a real daemon (N of each, default 10; `--ops 0` skips it), with a little data
//! written first.
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xapi_system_tests::bench::{arg, percentile};
use xapi_system_tests::{s, TestDaemon, Value};

const MIB: u64 = 1 << 20;

/// A small xorshift generator: the same random offsets for every target.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The workloads, in the order they run (writes first, so reads find data).
const WORKLOADS: [(&str, bool, bool); 4] = [
    ("seq write", true, false),
    ("seq read", false, false),
    ("rand write", true, true),
    ("rand read", false, true),
];
const BLOCKS: [usize; 3] = [4096, 65536, 1 << 20];

/// The request offsets of one workload, in issue order (identical for every target).
fn offsets(region: u64, block: usize, random: bool) -> Vec<u64> {
    let ops = region / block as u64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..ops)
        .map(|i| {
            if random {
                rng.next() % ops * block as u64
            } else {
                i * block as u64
            }
        })
        .collect()
}

/// One workload's I/O, `qd` requests in flight, ending with a flush after writes.
trait Target {
    fn run(&mut self, offsets: &[u64], block: usize, write: bool, qd: usize);
}

/// An NBD connection: up to `qd` requests pipelined, replies taken in whatever order they come.
impl Target for nbd::Client {
    fn run(&mut self, offsets: &[u64], block: usize, write: bool, qd: usize) {
        let mut buf = vec![0x5au8; block];
        let mut reply = Vec::with_capacity(block);
        let len = u32::try_from(block).expect("block fits a request");
        let mut next = offsets.iter().enumerate();
        loop {
            while self.in_flight() < qd {
                let Some((i, &offset)) = next.next() else {
                    break;
                };
                if write {
                    buf[0] = i as u8;
                    self.send_write(offset, &buf).expect("send write");
                } else {
                    self.send_read(offset, len).expect("send read");
                }
            }
            if self.in_flight() == 0 {
                break;
            }
            let done = self.receive(&mut reply).expect("receive");
            done.result().expect("request failed");
        }
        if write {
            self.flush().expect("flush");
        }
    }
}

/// A raw file: `qd` threads each issuing `pread`/`pwrite` from a shared position in `offsets`.
struct Raw(std::fs::File);

impl Target for Raw {
    fn run(&mut self, offsets: &[u64], block: usize, write: bool, qd: usize) {
        let next = AtomicUsize::new(0);
        let file = &self.0;
        std::thread::scope(|scope| {
            for _ in 0..qd {
                scope.spawn(|| {
                    let mut buf = vec![0x5au8; block];
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&offset) = offsets.get(i) else {
                            break;
                        };
                        if write {
                            buf[0] = i as u8;
                            file.write_all_at(&buf, offset).expect("pwrite");
                        } else {
                            file.read_exact_at(&mut buf, offset).expect("pread");
                        }
                    }
                });
            }
        });
        if write {
            self.0.sync_data().expect("fdatasync");
        }
    }
}

/// Runs every workload on `target`; returns MiB/s per (workload, block size).
fn run(target: &mut dyn Target, region: u64, qd: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for (_, write, random) in WORKLOADS {
        for block in BLOCKS {
            let offsets = offsets(region, block, random);
            let t = Instant::now();
            target.run(&offsets, block, write, qd);
            let secs = t.elapsed().as_secs_f64();
            out.push((offsets.len() as u64 * block as u64) as f64 / MIB as f64 / secs);
        }
    }
    out
}

/// Our NBD server over a fresh dynamic VHD at `path`.
fn our_server(dir: &Path, size: u64) -> (nbd::Server, PathBuf) {
    let path = dir.join("ours.vhd");
    drop(vhd::create_dynamic_file(&path, size).expect("create VHD"));
    let chain = vhd::open_chain(&path, true).expect("open VHD");
    let export = Arc::new(nbd::Export::new("ours", Box::new(chain), false));
    let socket = dir.join("ours.sock");
    let server = nbd::Server::start(&socket, vec![export]).expect("NBD server");
    (server, socket)
}

/// `qemu-nbd -f vpc` over a fresh dynamic VHD; `None` when qemu-nbd is not installed.
fn qemu_server(dir: &Path, size: u64) -> Option<(Child, PathBuf)> {
    let path = dir.join("qemu.vhd");
    drop(vhd::create_dynamic_file(&path, size).expect("create VHD"));
    let socket = dir.join("qemu.sock");
    let child = Command::new("qemu-nbd")
        .args(["-f", "vpc", "-x", "qemu", "-t", "-k"])
        .arg(&socket)
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "qemu-nbd did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    Some((child, socket))
}

fn print_table(columns: &[(&str, Vec<f64>)]) {
    print!("{:<12}{:>8}", "workload", "block");
    for (name, _) in columns {
        print!("{name:>12}");
    }
    println!("{:>12}{:>12}", "nbd/raw", "nbd/qemu");
    let mut i = 0;
    for (workload, _, _) in WORKLOADS {
        for block in BLOCKS {
            let label = if block >= 1 << 20 {
                format!("{}M", block >> 20)
            } else {
                format!("{}K", block >> 10)
            };
            print!("{workload:<12}{label:>8}");
            for (_, figures) in columns {
                print!("{:>12.1}", figures[i]);
            }
            let ours = columns[0].1[i];
            print!("{:>11.0}%", 100.0 * ours / columns[1].1[i]);
            match columns.get(2) {
                Some((_, q)) => println!("{:>11.0}%", 100.0 * ours / q[i]),
                None => println!("{:>12}", "-"),
            }
            i += 1;
        }
    }
}

fn throughput(region: u64, qd: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    // Larger than the region, so the VHD has unallocated blocks beyond it, as a real disk.
    let size = (region * 4).max(64 * MIB);

    let (mut server, socket) = our_server(dir.path(), size);
    let mut client = nbd::Client::connect(&socket, "ours").expect("connect");
    let ours = run(&mut client, region, qd);
    client.disconnect().expect("disconnect");
    server.stop();

    let raw_path = dir.path().join("raw.img");
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&raw_path)
        .expect("raw file");
    file.set_len(size).expect("size raw file");
    let raw = run(&mut Raw(file), region, qd);

    let mut columns = vec![("nbd (ours)", ours), ("raw file", raw)];
    match qemu_server(dir.path(), size) {
        Some((mut child, socket)) => {
            let mut client = nbd::Client::connect(&socket, "qemu").expect("connect qemu-nbd");
            columns.push(("qemu-nbd", run(&mut client, region, qd)));
            let _ = client.disconnect();
            let _ = child.kill();
            let _ = child.wait();
        }
        None => println!("qemu-nbd not installed (Debian: qemu-utils): no qemu-nbd column"),
    }
    println!(
        "\nthroughput, MiB/s, {} MiB region, {qd} request(s) in flight per target",
        region / MIB
    );
    println!("  nbd (ours): nbd::Client pipelining over a unix socket to crates/nbd serving a dynamic VHD");
    println!(
        "  raw file:   pread/pwrite on a sparse raw file from {qd} thread(s), no socket, no format"
    );
    println!("  qemu-nbd:   the same client to `qemu-nbd -f vpc` serving a dynamic VHD");
    println!(
        "  nbd/raw, nbd/qemu: ours as a percentage of that column (higher is better for ours)"
    );
    print_table(&columns);
}

fn latency(n: u64) {
    let d = TestDaemon::start();
    let mut api = d.login();
    let host = match api.ok("host.get_all", vec![]) {
        Value::Array(mut h) => h.remove(0).as_str().unwrap_or_default().to_owned(),
        other => panic!("no host: {other:?}"),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let location = dir.path().join("sr");
    let config = Value::Struct(vec![(
        "location".into(),
        s(location.to_str().expect("utf-8 path")),
    )]);
    let sr = api.string(
        "SR.create",
        vec![
            s(&host),
            config,
            Value::Int(0),
            s("bench"),
            s(""),
            s("file"),
            s("user"),
            Value::Bool(false),
            Value::Struct(vec![]),
        ],
    );
    let vdi = api.string(
        "VDI.create",
        vec![Value::Struct(vec![
            ("name_label".into(), s("10G")),
            ("name_description".into(), s("")),
            ("SR".into(), s(&sr)),
            ("virtual_size".into(), Value::Int(10 << 30)),
            ("type".into(), s("user")),
            ("sharable".into(), Value::Bool(false)),
            ("read_only".into(), Value::Bool(false)),
            ("other_config".into(), Value::Struct(vec![])),
        ])],
    );
    let mut report = |what: &str, call: &str| {
        let mut times = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            api.string(call, vec![s(&vdi), Value::Struct(vec![])]);
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{what:<10} n={n:<4} median {:>8.2?}  p90 {:>8.2?}  max {:>8.2?}",
            percentile(&times, 0.5),
            percentile(&times, 0.9),
            times[times.len() - 1]
        );
    };
    println!("\nVDI latency on a 10 GiB sparse VDI (file SR, over the wire):");
    report("snapshot", "VDI.snapshot");
    report("clone", "VDI.clone");
}

fn main() {
    let region = arg("--mib", 256) * MIB;
    let n = arg("--ops", 10).min(14);
    let qd = arg("--qd", 16).clamp(1, 256) as usize;
    throughput(region, qd);
    if n > 0 {
        latency(n);
    }
}
