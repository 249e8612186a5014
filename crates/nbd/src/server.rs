//! `Server`: a blocking NBD server on a unix socket, one thread per connection. Owns the fixed
//! newstyle negotiation (`NBD_OPT_EXPORT_NAME`, `LIST`, `INFO`, `GO`, `ABORT`; everything else is
//! answered `NBD_REP_ERR_UNSUP`) and the transmission phase with simple replies (`READ`, `WRITE`,
//! `FLUSH`, `TRIM`, `WRITE_ZEROES`, `DISC`). Knows nothing about VHD or SRs: it serves `Export`s.

use std::collections::BTreeMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tracing::{debug, warn};

use crate::export::Export;
use crate::proto::*;

/// Buffer size of each connection's reader and writer.
const IO_BUFFER: usize = 256 << 10;

struct Shared {
    exports: Mutex<BTreeMap<String, Arc<Export>>>,
    stopping: AtomicBool,
    connections: Mutex<BTreeMap<u64, UnixStream>>,
    next_id: AtomicU64,
}

impl Shared {
    fn exports(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Export>>> {
        // Plain map; a panic elsewhere cannot leave it half-updated.
        self.exports.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connections(&self) -> MutexGuard<'_, BTreeMap<u64, UnixStream>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An NBD server listening on a unix socket. Dropping it stops it.
pub struct Server {
    socket: PathBuf,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Listens on `socket` (a stale socket file there is replaced) and serves `exports`.
    pub fn start(socket: &Path, exports: Vec<Arc<Export>>) -> io::Result<Self> {
        if let Ok(meta) = std::fs::symlink_metadata(socket) {
            if meta.file_type().is_socket() {
                std::fs::remove_file(socket)?;
            }
        }
        let listener = UnixListener::bind(socket)?;
        let shared = Arc::new(Shared {
            exports: Mutex::new(
                exports
                    .into_iter()
                    .map(|export| (export.name().to_owned(), export))
                    .collect(),
            ),
            stopping: AtomicBool::new(false),
            connections: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("nbd-accept".into())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Self {
            socket: socket.to_path_buf(),
            shared,
            accept: Some(accept),
        })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Adds (or replaces) an export.
    pub fn add_export(&self, export: Arc<Export>) {
        self.shared
            .exports()
            .insert(export.name().to_owned(), export);
    }

    /// Removes an export; connections already using it keep it until they close.
    pub fn remove_export(&self, name: &str) -> Option<Arc<Export>> {
        self.shared.exports().remove(name)
    }

    /// Stops accepting, disconnects every client and removes the socket file.
    pub fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop; it sees `stopping` and exits.
        let _ = UnixStream::connect(&self.socket);
        let _ = accept.join();
        for stream in self.shared.connections().values() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(err) => {
                warn!(error = %err, "nbd accept failed");
                continue;
            }
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        match stream.try_clone() {
            Ok(clone) => {
                shared.connections().insert(id, clone);
            }
            Err(err) => {
                warn!(error = %err, "nbd connection not tracked");
            }
        }
        let worker = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("nbd-conn".into())
            .spawn(move || {
                if let Err(err) = serve(stream, &worker) {
                    debug!(error = %err, "nbd connection ended");
                }
                worker.connections().remove(&id);
            });
        if let Err(err) = spawned {
            warn!(error = %err, "nbd connection thread not started");
            shared.connections().remove(&id);
        }
    }
}

type Reader = BufReader<UnixStream>;
type Writer = BufWriter<UnixStream>;

fn serve(stream: UnixStream, shared: &Shared) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(IO_BUFFER, stream.try_clone()?);
    let mut writer = BufWriter::with_capacity(IO_BUFFER, stream);
    let Some(export) = negotiate(&mut reader, &mut writer, shared)? else {
        return Ok(());
    };
    debug!(export = export.name(), "nbd transmission started");
    transmit(&mut reader, &mut writer, &export)
}

fn transmission_flags(export: &Export) -> u16 {
    let mut flags = TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH | TFLAG_SEND_FUA;
    if export.read_only() {
        flags |= TFLAG_READ_ONLY;
    } else {
        flags |= TFLAG_SEND_TRIM | TFLAG_SEND_WRITE_ZEROES;
    }
    flags
}

fn name_from_info_request(data: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(data.get(0..4)?.try_into().ok()?) as usize;
    let name = data.get(4..4usize.checked_add(len)?)?;
    let rest = data.get(4 + len..)?;
    let requests = u16::from_be_bytes(rest.get(0..2)?.try_into().ok()?) as usize;
    if rest.len() != 2 + 2 * requests {
        return None;
    }
    String::from_utf8(name.to_vec()).ok()
}

/// Runs the option haggling; returns the export to serve, or `None` when the client left.
fn negotiate(r: &mut Reader, w: &mut Writer, shared: &Shared) -> io::Result<Option<Arc<Export>>> {
    w.write_all(&NBD_MAGIC.to_be_bytes())?;
    w.write_all(&IHAVEOPT.to_be_bytes())?;
    w.write_all(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes())?;
    w.flush()?;
    let client_flags = read_u32(r)?;
    let no_zeroes = client_flags & u32::from(FLAG_NO_ZEROES) != 0;
    loop {
        if read_u64(r)? != IHAVEOPT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad option magic",
            ));
        }
        let option = read_u32(r)?;
        let len = read_u32(r)?;
        if len > MAX_OPTION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "option too long",
            ));
        }
        let mut data = vec![0u8; len as usize];
        r.read_exact(&mut data)?;
        match option {
            OPT_EXPORT_NAME => {
                let name = String::from_utf8_lossy(&data).into_owned();
                // No error reply exists for this option: an unknown name ends the connection.
                let Some(export) = shared.exports().get(&name).cloned() else {
                    return Ok(None);
                };
                w.write_all(&export.size()?.to_be_bytes())?;
                w.write_all(&transmission_flags(&export).to_be_bytes())?;
                if !no_zeroes {
                    w.write_all(&[0u8; 124])?;
                }
                w.flush()?;
                return Ok(Some(export));
            }
            OPT_ABORT => {
                write_option_reply(w, option, REP_ACK, &[])?;
                w.flush()?;
                return Ok(None);
            }
            OPT_LIST => {
                if !data.is_empty() {
                    write_option_reply(w, option, REP_ERR_INVALID, &[])?;
                } else {
                    let names: Vec<String> = shared.exports().keys().cloned().collect();
                    for name in names {
                        let mut reply = (name.len() as u32).to_be_bytes().to_vec();
                        reply.extend_from_slice(name.as_bytes());
                        write_option_reply(w, option, REP_SERVER, &reply)?;
                    }
                    write_option_reply(w, option, REP_ACK, &[])?;
                }
            }
            OPT_INFO | OPT_GO => {
                let Some(name) = name_from_info_request(&data) else {
                    write_option_reply(w, option, REP_ERR_INVALID, &[])?;
                    w.flush()?;
                    continue;
                };
                let Some(export) = shared.exports().get(&name).cloned() else {
                    write_option_reply(w, option, REP_ERR_UNKNOWN, &[])?;
                    w.flush()?;
                    continue;
                };
                let mut info = INFO_EXPORT.to_be_bytes().to_vec();
                info.extend_from_slice(&export.size()?.to_be_bytes());
                info.extend_from_slice(&transmission_flags(&export).to_be_bytes());
                write_option_reply(w, option, REP_INFO, &info)?;
                let mut sizes = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
                sizes.extend_from_slice(&1u32.to_be_bytes());
                sizes.extend_from_slice(&4096u32.to_be_bytes());
                sizes.extend_from_slice(&MAX_REQUEST.to_be_bytes());
                write_option_reply(w, option, REP_INFO, &sizes)?;
                write_option_reply(w, option, REP_ACK, &[])?;
                w.flush()?;
                if option == OPT_GO {
                    return Ok(Some(export));
                }
            }
            _ => write_option_reply(w, option, REP_ERR_UNSUP, &[])?,
        }
        w.flush()?;
    }
}

fn errno_of(err: &io::Error) -> u32 {
    match err.kind() {
        io::ErrorKind::InvalidInput => EINVAL,
        io::ErrorKind::BrokenPipe => ESHUTDOWN,
        _ if err.raw_os_error() == Some(28) => ENOSPC,
        _ => EIO,
    }
}

fn in_bounds(req: &Request, size: u64) -> bool {
    req.offset
        .checked_add(u64::from(req.length))
        .is_some_and(|end| end <= size)
}

fn transmit(r: &mut Reader, w: &mut Writer, export: &Export) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut header = [0u8; 28];
    loop {
        // Flush replies only when no further request is already buffered: pipelined
        // requests then share one write to the socket.
        if r.buffer().is_empty() {
            w.flush()?;
        }
        match r.read_exact(&mut header) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(err) => return Err(err),
        }
        let req = Request::parse(&header)?;
        let size = export.size()?;
        match req.command {
            CMD_READ => {
                if req.length > MAX_REQUEST || !in_bounds(&req, size) {
                    write_simple_reply(w, EINVAL, req.cookie)?;
                    continue;
                }
                buf.resize(req.length as usize, 0);
                let result = export
                    .enter()
                    .and_then(|token| export.read_at(&token, req.offset, &mut buf));
                match result {
                    Ok(()) => {
                        write_simple_reply(w, 0, req.cookie)?;
                        w.write_all(&buf)?;
                    }
                    Err(err) => write_simple_reply(w, errno_of(&err), req.cookie)?,
                }
            }
            CMD_WRITE => {
                if req.length > MAX_REQUEST {
                    // The payload cannot be skipped safely: end the connection.
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "write too large",
                    ));
                }
                buf.resize(req.length as usize, 0);
                r.read_exact(&mut buf)?;
                let error = if export.read_only() {
                    EPERM
                } else if !in_bounds(&req, size) {
                    EINVAL
                } else {
                    let result = export.enter().and_then(|token| {
                        export.write_at(&token, req.offset, &buf)?;
                        if req.flags & CMD_FLAG_FUA != 0 {
                            export.flush(&token)?;
                        }
                        Ok(())
                    });
                    result.err().map_or(0, |err| errno_of(&err))
                };
                write_simple_reply(w, error, req.cookie)?;
            }
            CMD_DISC => {
                w.flush()?;
                return Ok(());
            }
            CMD_FLUSH => {
                let result = export.enter().and_then(|token| export.flush(&token));
                write_simple_reply(w, result.err().map_or(0, |e| errno_of(&e)), req.cookie)?;
            }
            CMD_TRIM => {
                // Trim is advisory; VHD blocks are never returned, so it changes nothing.
                let error = if export.read_only() {
                    EPERM
                } else if in_bounds(&req, size) {
                    0
                } else {
                    EINVAL
                };
                write_simple_reply(w, error, req.cookie)?;
            }
            CMD_WRITE_ZEROES => {
                let error = if export.read_only() {
                    EPERM
                } else if !in_bounds(&req, size) {
                    EINVAL
                } else {
                    let result = export.enter().and_then(|token| {
                        export.write_zeroes(&token, req.offset, u64::from(req.length))?;
                        if req.flags & CMD_FLAG_FUA != 0 {
                            export.flush(&token)?;
                        }
                        Ok(())
                    });
                    result.err().map_or(0, |err| errno_of(&err))
                };
                write_simple_reply(w, error, req.cookie)?;
            }
            _ => write_simple_reply(w, EINVAL, req.cookie)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_request_yields_the_export_name() {
        let mut data = 3u32.to_be_bytes().to_vec();
        data.extend_from_slice(b"abc");
        data.extend_from_slice(&1u16.to_be_bytes());
        data.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
        assert_eq!(name_from_info_request(&data).as_deref(), Some("abc"));
    }

    #[test]
    fn truncated_info_request_is_rejected() {
        let mut data = 10u32.to_be_bytes().to_vec();
        data.extend_from_slice(b"abc");
        assert_eq!(name_from_info_request(&data), None);
    }

    #[test]
    fn requests_past_the_end_are_out_of_bounds() {
        let req = |offset, length| Request {
            flags: 0,
            command: CMD_READ,
            cookie: 0,
            offset,
            length,
        };
        assert!(in_bounds(&req(0, 512), 512));
        assert!(!in_bounds(&req(1, 512), 512));
        assert!(!in_bounds(&req(u64::MAX, 2), 512));
    }
}
