//! The NBD server against real clients: qemu-io and qemu-nbd --list (qemu-utils) over a unix
//! socket, serving a VHD chain, plus our own client for pause and read-only behaviour.

#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use nbd::{Client, Export, MemBackend, Server};

fn vhd_export(path: &Path, name: &str, size: u64) -> Arc<Export> {
    drop(vhd::create_dynamic_file(path, size).unwrap());
    let chain = vhd::open_chain(path, true).unwrap();
    Arc::new(Export::new(name, Box::new(chain), false))
}

fn qemu_io(socket: &Path, export: &str, commands: &[&str]) -> String {
    let uri = format!("nbd+unix:///{export}?socket={}", socket.display());
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", "raw"]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    let out = cmd.arg(&uri).output().expect("qemu-io runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "qemu-io failed: {text}");
    text
}

#[test]
fn qemu_io_writes_land_in_the_vhd_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nbd.sock");
    let file = dir.path().join("disk.vhd");
    let export = vhd_export(&file, "disk", 16 << 20);
    let mut server = Server::start(&socket, vec![Arc::clone(&export)]).unwrap();
    let out = qemu_io(
        &socket,
        "disk",
        &[
            "write -P 0x5a 1M 3M",
            "write -z 2M 512k",
            "flush",
            "read -P 0x5a 1M 1M",
            "read -P 0 2M 512k",
            "read -P 0 0 1M",
        ],
    );
    assert!(!out.contains("verification failed"), "{out}");
    server.stop();
    export.close().unwrap();
    drop(export);
    // The data is in the VHD file itself.
    let disk = vhd::open_file(&file).unwrap();
    let mut buf = vec![0u8; 4096];
    disk.read_at(3 << 20, &mut buf).unwrap();
    assert!(buf.iter().all(|b| *b == 0x5a));
    disk.read_at((2 << 20) + 4096, &mut buf).unwrap();
    assert!(buf.iter().all(|b| *b == 0));
    assert!(vhd::check(disk.io()).unwrap().is_ok());
}

#[test]
fn qemu_nbd_lists_every_export() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nbd.sock");
    let a = Arc::new(Export::new(
        "alpha",
        Box::new(MemBackend::new(1 << 20)),
        false,
    ));
    let b = Arc::new(Export::new(
        "beta",
        Box::new(MemBackend::new(2 << 20)),
        true,
    ));
    let _server = Server::start(&socket, vec![a, b]).unwrap();
    let out = Command::new("qemu-nbd")
        .arg("--list")
        .arg("-k")
        .arg(&socket)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("alpha") && text.contains("beta"), "{text}");
    assert!(text.contains("2097152"), "{text}");
}

#[test]
fn unknown_export_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nbd.sock");
    let a = Arc::new(Export::new("a", Box::new(MemBackend::new(4096)), false));
    let _server = Server::start(&socket, vec![a]).unwrap();
    let err = Client::connect(&socket, "nope").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn read_only_export_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nbd.sock");
    let a = Arc::new(Export::new("ro", Box::new(MemBackend::new(4096)), true));
    let _server = Server::start(&socket, vec![a]).unwrap();
    let mut client = Client::connect(&socket, "ro").unwrap();
    assert!(client.read_only());
    assert!(client.write_at(0, &[1u8; 512]).is_err());
    let mut buf = [9u8; 512];
    client.read_at(0, &mut buf).unwrap();
    assert_eq!(buf, [0u8; 512]);
}

#[test]
fn paused_export_holds_client_writes_until_unpaused() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nbd.sock");
    let export = Arc::new(Export::new("e", Box::new(MemBackend::new(1 << 20)), false));
    let _server = Server::start(&socket, vec![Arc::clone(&export)]).unwrap();
    let mut client = Client::connect(&socket, "e").unwrap();
    export.pause().unwrap();
    let writer = std::thread::spawn(move || {
        client.write_at(4096, &[7u8; 4096]).unwrap();
        let mut buf = [0u8; 4096];
        client.read_at(4096, &mut buf).unwrap();
        buf
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(!writer.is_finished(), "write completed while paused");
    export.unpause(None).unwrap();
    assert_eq!(writer.join().unwrap(), [7u8; 4096]);
}

#[test]
fn out_of_range_read_gets_an_error_and_the_connection_survives() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nbd.sock");
    let a = Arc::new(Export::new("a", Box::new(MemBackend::new(4096)), false));
    let _server = Server::start(&socket, vec![a]).unwrap();
    let mut client = Client::connect(&socket, "a").unwrap();
    let mut buf = [0u8; 512];
    assert!(client.read_at(4000, &mut buf).is_err());
    client.write_at(0, &[3u8; 512]).unwrap();
    client.read_at(0, &mut buf).unwrap();
    assert_eq!(buf, [3u8; 512]);
    client.disconnect().unwrap();
}
