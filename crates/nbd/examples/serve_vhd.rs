//! Serves one VHD file (created as a dynamic disk of the given size when absent) over NBD on a
//! unix socket until stdin closes; for throughput measurements against qemu-nbd and raw files:
//!
//! `cargo run --release -p nbd --example serve_vhd -- DISK.vhd SOCKET [MiB]`, then e.g.
//! `qemu-img convert -n -f raw -O raw src.raw 'nbd+unix:///disk?socket=SOCKET'`.

use std::path::PathBuf;
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let disk = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("need DISK.vhd"))?,
    );
    let socket = PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!("need SOCKET"))?);
    let mib: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1024);
    if !disk.exists() {
        drop(vhd::create_dynamic_file(&disk, mib << 20)?);
    }
    let chain = vhd::open_chain(&disk, true)?;
    let export = Arc::new(nbd::Export::new("disk", Box::new(chain), false));
    let _server = nbd::Server::start(&socket, vec![Arc::clone(&export)])?;
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink())?;
    export.close()?;
    Ok(())
}
