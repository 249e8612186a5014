//! Both clients against a scripted fake xenstored on a unix socket in a temp dir,
//! for behaviour the userspace oxenstored 4.17 cannot show: the `DIRECTORY_PART`
//! fallback after `E2BIG` (oxenstored 4.17 neither sends `E2BIG` nor implements
//! `DIRECTORY_PART`), replies arriving out of order, and a daemon hanging up.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use xenstore::wire::{encode_frame, FrameDecoder, MsgType, Packet};
use xenstore::{AsyncClient, AsyncXsOps, Client, Endpoint, Errno, XsError, XsOps};

/// Answers for the fake daemon: `DIRECTORY` of anything is `E2BIG`;
/// `DIRECTORY_PART` of `/big` is served in two chunks, of `/changing` first
/// with a generation that then changes, of anything else `ENOSYS`.
fn answer(request: &Packet, part_calls: &mut u32) -> Vec<(MsgType, Vec<u8>)> {
    let fields: Vec<&[u8]> = request.payload.split(|&b| b == 0).collect();
    let path = fields[0];
    match request.header.msg_type().unwrap() {
        MsgType::Directory => vec![(MsgType::Error, b"E2BIG\0".to_vec())],
        MsgType::DirectoryPart => {
            *part_calls += 1;
            let offset = std::str::from_utf8(fields[1]).unwrap();
            let reply: &[u8] = match (path, offset) {
                (b"/big", "0") => b"5\0aa\0bb\0",
                (b"/big", "6") => b"5\0cc\0\0",
                (b"/changing", "0") if *part_calls == 1 => b"1\0old\0",
                (b"/changing", _) if *part_calls == 2 => b"2\0gone\0\0",
                (b"/changing", "0") => b"2\0new\0\0",
                _ => return vec![(MsgType::Error, b"ENOSYS\0".to_vec())],
            };
            vec![(MsgType::DirectoryPart, reply.to_vec())]
        }
        MsgType::Read if path == b"/hangup" => Vec::new(),
        MsgType::Read => vec![(MsgType::Read, path.to_vec())],
        other => panic!("fake daemon got unexpected {other:?}"),
    }
}

/// Serves one connection; replies to each pair of reads in reverse order, and
/// hangs up on a read of `/hangup`.
fn serve(mut stream: UnixStream) {
    let mut decoder = FrameDecoder::default();
    let mut buf = [0u8; 4096];
    let mut part_calls = 0;
    let mut held: Option<Vec<u8>> = None;
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            return;
        }
        decoder.push(&buf[..n]);
        while let Some(request) = decoder.next_packet().unwrap() {
            let replies = answer(&request, &mut part_calls);
            if replies.is_empty() {
                return;
            }
            for (kind, payload) in replies {
                let frame = encode_frame(kind, request.header.req_id, 0, &payload).unwrap();
                if kind == MsgType::Read && held.is_none() {
                    held = Some(frame);
                    continue;
                }
                stream.write_all(&frame).unwrap();
                if let Some(earlier) = held.take() {
                    stream.write_all(&earlier).unwrap();
                }
            }
        }
    }
}

fn fake_daemon() -> (tempfile::TempDir, Endpoint) {
    let dir = tempfile::tempdir().unwrap();
    let socket: PathBuf = dir.path().join("socket");
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let stream = stream.unwrap();
            std::thread::spawn(move || serve(stream));
        }
    });
    (dir, Endpoint::Socket(socket))
}

#[test]
fn blocking_directory_falls_back_to_directory_part() {
    let (_dir, endpoint) = fake_daemon();
    let xs = Client::connect(&endpoint).unwrap();
    assert_eq!(xs.directory("/big").unwrap(), vec!["aa", "bb", "cc"]);
}

#[test]
fn directory_part_restarts_when_the_node_changes() {
    let (_dir, endpoint) = fake_daemon();
    let xs = Client::connect(&endpoint).unwrap();
    assert_eq!(xs.directory("/changing").unwrap(), vec!["new"]);
}

#[test]
fn directory_part_unsupported_means_e2big() {
    let (_dir, endpoint) = fake_daemon();
    let xs = Client::connect(&endpoint).unwrap();
    assert_eq!(
        xs.directory("/other").unwrap_err().errno(),
        Some(&Errno::E2big)
    );
}

#[tokio::test]
async fn async_directory_falls_back_to_directory_part() {
    let (_dir, endpoint) = fake_daemon();
    let xs = AsyncClient::connect(&endpoint).await.unwrap();
    assert_eq!(xs.directory("/big").await.unwrap(), vec!["aa", "bb", "cc"]);
    assert_eq!(
        xs.directory("/other").await.unwrap_err().errno(),
        Some(&Errno::E2big)
    );
}

#[test]
fn replies_out_of_order_reach_the_right_caller() {
    let (_dir, endpoint) = fake_daemon();
    let xs = Client::connect(&endpoint).unwrap();
    let first = xs.call(xenstore::ops::read("/first"));
    let second = xs.call(xenstore::ops::read("/second"));
    assert_eq!(first.wait().unwrap(), b"/first");
    assert_eq!(second.wait().unwrap(), b"/second");
}

#[test]
fn hang_up_fails_waiting_and_later_requests() {
    let (_dir, endpoint) = fake_daemon();
    let xs = Client::connect(&endpoint).unwrap();
    assert!(matches!(xs.read("/hangup"), Err(XsError::Disconnected)));
    assert!(matches!(xs.read("/a"), Err(XsError::Disconnected)));
}

#[tokio::test]
async fn async_hang_up_ends_with_disconnected() {
    let (_dir, endpoint) = fake_daemon();
    let xs = AsyncClient::connect(&endpoint).await.unwrap();
    assert!(matches!(
        xs.read("/hangup").await,
        Err(XsError::Disconnected)
    ));
}
