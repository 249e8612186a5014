//! Transports to xenstored and the background I/O that drives a [`Conn`]: the unix
//! socket (`/run/xenstored/socket`, or `$XENSTORED_PATH`) and the character device
//! `/dev/xen/xenbus`, both carrying the same framing. Two backends: plain threads
//! (blocking reads and writes; needs no runtime, works for both transports) and
//! tokio tasks (unix socket only). Each backend runs one reader that feeds
//! packets to the demultiplexer and one writer that drains the frame queue.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::conn::{Conn, Shared};
use crate::error::{Result, XsError};
use crate::wire::{Header, Packet, HEADER_LEN};

/// Where xenstored listens when nothing else is configured.
pub const DEFAULT_SOCKET: &str = "/run/xenstored/socket";

/// The xenbus character device (used in domains without a local xenstored socket).
pub const DEFAULT_DEVICE: &str = "/dev/xen/xenbus";

/// Environment variable naming the socket, as honoured by libxenstore.
pub const SOCKET_ENV: &str = "XENSTORED_PATH";

/// How to reach xenstored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix stream socket.
    Socket(PathBuf),
    /// A xenbus character device.
    Device(PathBuf),
}

impl Endpoint {
    /// `$XENSTORED_PATH` if set; else the default socket if it exists; else the
    /// xenbus device if it exists; else the default socket (so the error names it).
    pub fn from_env() -> Endpoint {
        if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|path| !path.is_empty()) {
            return Endpoint::Socket(PathBuf::from(path));
        }
        Self::choose(
            Path::new(DEFAULT_SOCKET).exists(),
            Path::new(DEFAULT_DEVICE).exists(),
        )
    }

    fn choose(socket_exists: bool, device_exists: bool) -> Endpoint {
        if !socket_exists && device_exists {
            Endpoint::Device(PathBuf::from(DEFAULT_DEVICE))
        } else {
            Endpoint::Socket(PathBuf::from(DEFAULT_SOCKET))
        }
    }
}

/// An opened blocking transport.
enum Stream {
    Unix(UnixStream),
    Device(File),
}

impl Stream {
    fn open(endpoint: &Endpoint) -> io::Result<Stream> {
        match endpoint {
            Endpoint::Socket(path) => UnixStream::connect(path).map(Stream::Unix),
            Endpoint::Device(path) => OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map(Stream::Device),
        }
    }

    fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Unix(stream) => stream.try_clone().map(Stream::Unix),
            Stream::Device(file) => file.try_clone().map(Stream::Device),
        }
    }

    /// Wakes a reader blocked on this transport. Sockets can be shut down; the
    /// device cannot, so its reader lingers until the next message or exit.
    fn shutdown(&self) {
        if let Stream::Unix(stream) = self {
            // The peer may already be gone; nothing to do about it then.
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(stream) => stream.read(buf),
            Stream::Device(file) => file.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(stream) => stream.write(buf),
            Stream::Device(file) => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(stream) => stream.flush(),
            Stream::Device(file) => file.flush(),
        }
    }
}

/// Reads one packet from a blocking byte stream; `Ok(None)` on clean EOF.
pub(crate) fn read_packet(reader: &mut impl Read) -> Result<Option<Packet>> {
    let mut head = [0u8; HEADER_LEN];
    match reader.read_exact(&mut head) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err.into()),
    }
    let header = Header::from_bytes(&head)?;
    let mut payload = vec![0u8; header.len as usize];
    reader.read_exact(&mut payload)?;
    Ok(Some(Packet { header, payload }))
}

/// Opens `endpoint` and drives it with two threads.
pub(crate) fn connect_threads(endpoint: &Endpoint) -> Result<Conn> {
    let stream = Stream::open(endpoint)?;
    let mut reader = stream.try_clone()?;
    let mut writer = stream;
    let shared = Arc::new(Shared::default());
    let (frames_in, mut frames) = mpsc::unbounded_channel::<Vec<u8>>();

    let reader_shared = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("xenstore-reader".into())
        .spawn(move || {
            loop {
                match read_packet(&mut reader) {
                    Ok(Some(packet)) => reader_shared.dispatch(packet),
                    Ok(None) => {
                        debug!("xenstored closed the connection");
                        break;
                    }
                    Err(err) => {
                        warn!(error = %err, "xenstore read failed; closing connection");
                        break;
                    }
                }
            }
            reader_shared.close();
        })?;

    let writer_shared = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("xenstore-writer".into())
        .spawn(move || {
            while let Some(frame) = frames.blocking_recv() {
                if let Err(err) = writer.write_all(&frame) {
                    warn!(error = %err, "xenstore write failed; closing connection");
                    break;
                }
            }
            writer_shared.close();
            writer.shutdown();
        })?;

    Ok(Conn::new(shared, frames_in))
}

/// Opens a unix socket and drives it with two tokio tasks on the current runtime.
pub(crate) async fn connect_tokio(path: &Path) -> Result<Conn> {
    // A non-blocking connect fails with EAGAIN while xenstored's listen backlog is
    // full (it is small, and a busy daemon accepts late); a blocking connect
    // waits for room instead, so connect on a blocking thread and convert.
    let path = path.to_owned();
    let stream = tokio::task::spawn_blocking(move || {
        let stream = UnixStream::connect(path)?;
        stream.set_nonblocking(true)?;
        Ok::<_, io::Error>(stream)
    })
    .await
    .map_err(|_| XsError::Disconnected)??;
    let stream = tokio::net::UnixStream::from_std(stream)?;
    let (mut reader, mut writer) = stream.into_split();
    let shared = Arc::new(Shared::default());
    let (frames_in, mut frames) = mpsc::unbounded_channel::<Vec<u8>>();

    let reader_shared = Arc::clone(&shared);
    let reader_task = tokio::spawn(async move {
        loop {
            let mut head = [0u8; HEADER_LEN];
            if let Err(err) = reader.read_exact(&mut head).await {
                debug!(error = %err, "xenstore connection ended");
                break;
            }
            let header = match Header::from_bytes(&head) {
                Ok(header) => header,
                Err(err) => {
                    warn!(error = %err, "bad xenstore header; closing connection");
                    break;
                }
            };
            let mut payload = vec![0u8; header.len as usize];
            if let Err(err) = reader.read_exact(&mut payload).await {
                warn!(error = %err, "xenstore read failed; closing connection");
                break;
            }
            reader_shared.dispatch(Packet { header, payload });
        }
        reader_shared.close();
    });

    let writer_shared = Arc::clone(&shared);
    tokio::spawn(async move {
        while let Some(frame) = frames.recv().await {
            if let Err(err) = writer.write_all(&frame).await {
                warn!(error = %err, "xenstore write failed; closing connection");
                break;
            }
        }
        writer_shared.close();
        reader_task.abort();
    });

    Ok(Conn::new(shared, frames_in))
}

/// Connects for the async face: tokio tasks for sockets, threads for the device
/// (whose blocking reads tokio cannot drive portably).
pub(crate) async fn connect_async(endpoint: &Endpoint) -> Result<Conn> {
    match endpoint {
        Endpoint::Socket(path) => connect_tokio(path).await,
        Endpoint::Device(_) => {
            let endpoint = endpoint.clone();
            tokio::task::spawn_blocking(move || connect_threads(&endpoint))
                .await
                .map_err(|_| XsError::Disconnected)?
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;
    use crate::wire::{encode_frame, MsgType};

    #[test]
    fn socket_is_preferred_and_device_is_the_fallback() {
        assert_eq!(
            Endpoint::choose(true, true),
            Endpoint::Socket(DEFAULT_SOCKET.into())
        );
        assert_eq!(
            Endpoint::choose(false, true),
            Endpoint::Device(DEFAULT_DEVICE.into())
        );
        assert_eq!(
            Endpoint::choose(false, false),
            Endpoint::Socket(DEFAULT_SOCKET.into())
        );
    }

    #[test]
    fn read_packet_reads_frames_and_reports_clean_eof() {
        let mut bytes = encode_frame(MsgType::Read, 3, 0, b"v").unwrap();
        bytes.extend(encode_frame(MsgType::Write, 4, 0, b"OK\0").unwrap());
        let mut cursor = io::Cursor::new(bytes);
        assert_eq!(read_packet(&mut cursor).unwrap().unwrap().payload, b"v");
        assert_eq!(read_packet(&mut cursor).unwrap().unwrap().header.req_id, 4);
        assert!(read_packet(&mut cursor).unwrap().is_none());
    }

    #[test]
    fn truncated_payload_is_an_error() {
        let bytes = encode_frame(MsgType::Read, 3, 0, b"value").unwrap();
        let mut cursor = io::Cursor::new(&bytes[..bytes.len() - 1]);
        assert!(matches!(read_packet(&mut cursor), Err(XsError::Io(_))));
    }
}
