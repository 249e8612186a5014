//! Quick sequential throughput measurement (not a test): writes and reads a dynamic VHD file
//! in 1 MiB requests, then reads it again through a two-disk chain, and prints MiB/s.
//!
//! `cargo run --release -p vhd --example throughput -- [MiB] [DIR]` (default 512 MiB in the
//! system temp directory). Reads come from the page cache unless the file exceeds RAM.

use std::path::PathBuf;
use std::time::Instant;

use vhd::{create_dynamic_file, open_chain, open_file, snapshot};

const MIB: u64 = 1 << 20;

fn rate(bytes: u64, started: Instant) -> f64 {
    bytes as f64 / MIB as f64 / started.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(512);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let work = tempfile::tempdir_in(dir)?;
    let base = work.path().join("base.vhd");
    let leaf = work.path().join("leaf.vhd");
    let size = mib * MIB;
    let chunk: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();

    let mut disk = create_dynamic_file(&base, size)?;
    let started = Instant::now();
    for i in 0..mib {
        disk.write_at(i * MIB, &chunk)?;
    }
    disk.flush()?;
    println!(
        "write (allocating, incl. fsync): {:8.1} MiB/s",
        rate(size, started)
    );

    let started = Instant::now();
    for i in 0..mib {
        disk.write_at(i * MIB, &chunk)?;
    }
    disk.flush()?;
    println!(
        "rewrite (allocated, incl. fsync): {:7.1} MiB/s",
        rate(size, started)
    );
    drop(disk);

    let disk = open_file(&base)?;
    let mut buf = vec![0u8; MIB as usize];
    let started = Instant::now();
    for i in 0..mib {
        disk.read_at(i * MIB, &mut buf)?;
    }
    println!(
        "read (dynamic):                  {:8.1} MiB/s",
        rate(size, started)
    );
    anyhow::ensure!(buf == chunk, "read back different data");

    snapshot(&base, &leaf)?;
    let mut chain = open_chain(&leaf, true)?;
    chain.write_at(7 * MIB / 2, &chunk)?;
    let started = Instant::now();
    for i in 0..mib {
        chain.read_at(i * MIB, &mut buf)?;
    }
    println!(
        "read (through 2-disk chain):     {:8.1} MiB/s",
        rate(size, started)
    );
    Ok(())
}
