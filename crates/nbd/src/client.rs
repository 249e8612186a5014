//! `Client`: a minimal blocking NBD client (fixed newstyle, `NBD_OPT_GO`, simple replies) for
//! tests, benches and the simulated guest that writes a marker into its disk. Requests go
//! either one at a time (`read_at`, `write_at`, `flush`) or pipelined over the one connection
//! (`send_read`, `send_write`, `send_flush`, then `receive`), with replies matched to requests
//! by cookie in whatever order the server sends them. Not a general-purpose client: no TLS,
//! no structured replies.

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::proto::*;

/// Buffer size of the connection's reader and writer: large enough that a queue of small
/// pipelined requests (or their replies) moves in few system calls.
const IO_BUFFER: usize = 256 << 10;

/// A connection to one export.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: BufWriter<UnixStream>,
    size: u64,
    flags: u16,
    cookie: u64,
    /// Requests sent and not yet answered: cookie -> read payload length (0 for others).
    pending: HashMap<u64, u32>,
}

/// The reply to one pipelined request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// The cookie `send_*` returned for the request.
    pub cookie: u64,
    /// The NBD error (an errno value); 0 on success.
    pub error: u32,
}

impl Completion {
    /// `Ok` when the server reported success, otherwise its error as an `io::Error`.
    pub fn result(&self) -> io::Result<()> {
        match self.error {
            0 => Ok(()),
            error => Err(io::Error::other(format!("server error {error}"))),
        }
    }
}

fn protocol(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl Client {
    /// Connects to `socket` and opens `export` with `NBD_OPT_GO`.
    pub fn connect(socket: &Path, export: &str) -> io::Result<Self> {
        let stream = UnixStream::connect(socket)?;
        let mut reader = BufReader::with_capacity(IO_BUFFER, stream.try_clone()?);
        let mut writer = BufWriter::with_capacity(IO_BUFFER, stream);
        if read_u64(&mut reader)? != NBD_MAGIC || read_u64(&mut reader)? != IHAVEOPT {
            return Err(protocol("not an NBD newstyle server"));
        }
        let server_flags = read_u16(&mut reader)?;
        if server_flags & FLAG_FIXED_NEWSTYLE == 0 {
            return Err(protocol("server is not fixed newstyle"));
        }
        writer.write_all(&u32::from(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes())?;
        let mut data = (export.len() as u32).to_be_bytes().to_vec();
        data.extend_from_slice(export.as_bytes());
        data.extend_from_slice(&0u16.to_be_bytes());
        writer.write_all(&IHAVEOPT.to_be_bytes())?;
        writer.write_all(&OPT_GO.to_be_bytes())?;
        writer.write_all(&(data.len() as u32).to_be_bytes())?;
        writer.write_all(&data)?;
        writer.flush()?;
        let (mut size, mut flags) = (None, 0);
        loop {
            if read_u64(&mut reader)? != REPLY_MAGIC {
                return Err(protocol("bad option reply magic"));
            }
            let _option = read_u32(&mut reader)?;
            let reply = read_u32(&mut reader)?;
            let len = read_u32(&mut reader)?;
            if len > MAX_OPTION {
                return Err(protocol("option reply too long"));
            }
            let mut body = vec![0u8; len as usize];
            reader.read_exact(&mut body)?;
            match reply {
                REP_ACK => break,
                REP_INFO if body.len() >= 12 && body[0..2] == INFO_EXPORT.to_be_bytes() => {
                    let mut raw = [0u8; 8];
                    raw.copy_from_slice(&body[2..10]);
                    size = Some(u64::from_be_bytes(raw));
                    flags = u16::from_be_bytes([body[10], body[11]]);
                }
                REP_INFO => {}
                other if other & (1 << 31) != 0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("export {export:?} refused (reply {other:#x})"),
                    ))
                }
                _ => return Err(protocol("unexpected option reply")),
            }
        }
        let size = size.ok_or_else(|| protocol("server sent no export size"))?;
        Ok(Self {
            reader,
            writer,
            size,
            flags,
            cookie: 0,
            pending: HashMap::new(),
        })
    }

    /// The export's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the server marked the export read-only.
    pub fn read_only(&self) -> bool {
        self.flags & TFLAG_READ_ONLY != 0
    }

    /// Requests sent whose replies have not been received yet.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Queues one request (buffered: `receive` sends it); returns its cookie.
    fn send(&mut self, command: u16, offset: u64, length: u32, payload: &[u8]) -> io::Result<u64> {
        self.cookie += 1;
        let req = Request {
            flags: 0,
            command,
            cookie: self.cookie,
            offset,
            length,
        };
        self.writer.write_all(&req.to_bytes())?;
        self.writer.write_all(payload)?;
        let expect = if command == CMD_READ { length } else { 0 };
        self.pending.insert(self.cookie, expect);
        Ok(self.cookie)
    }

    /// Queues a read of `length` bytes at `offset` without waiting; returns its cookie.
    pub fn send_read(&mut self, offset: u64, length: u32) -> io::Result<u64> {
        self.send(CMD_READ, offset, length, &[])
    }

    /// Queues a write of `data` at `offset` without waiting; returns its cookie.
    pub fn send_write(&mut self, offset: u64, data: &[u8]) -> io::Result<u64> {
        let len = u32::try_from(data.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.send(CMD_WRITE, offset, len, data)
    }

    /// Queues a flush without waiting; returns its cookie.
    pub fn send_flush(&mut self) -> io::Result<u64> {
        self.send(CMD_FLUSH, 0, 0, &[])
    }

    /// Sends whatever is queued, then waits for the next reply, whichever request it answers.
    /// A successful read's payload is left in `data` (resized to it); otherwise `data` is
    /// emptied. A reply whose cookie matches no request in flight is a protocol error.
    pub fn receive(&mut self, data: &mut Vec<u8>) -> io::Result<Completion> {
        self.writer.flush()?;
        if read_u32(&mut self.reader)? != SIMPLE_REPLY_MAGIC {
            return Err(protocol("bad reply magic"));
        }
        let error = read_u32(&mut self.reader)?;
        let cookie = read_u64(&mut self.reader)?;
        let Some(length) = self.pending.remove(&cookie) else {
            return Err(protocol("reply for no request in flight"));
        };
        // Simple replies carry the payload only on success.
        let length = if error == 0 { length as usize } else { 0 };
        data.resize(length, 0);
        self.reader.read_exact(data)?;
        Ok(Completion { cookie, error })
    }

    /// Sends one request and waits for its reply; refused while pipelined requests are in
    /// flight (their replies would be taken for this one's).
    fn request(
        &mut self,
        command: u16,
        offset: u64,
        length: u32,
        payload: &[u8],
    ) -> io::Result<Vec<u8>> {
        if !self.pending.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "pipelined requests still in flight",
            ));
        }
        let cookie = self.send(command, offset, length, payload)?;
        let mut data = Vec::new();
        let done = self.receive(&mut data)?;
        if done.cookie != cookie {
            return Err(protocol("reply for another request"));
        }
        done.result()?;
        Ok(data)
    }

    /// Reads `buf.len()` bytes at `offset`.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let len = u32::try_from(buf.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        let data = self.request(CMD_READ, offset, len, &[])?;
        buf.copy_from_slice(&data);
        Ok(())
    }

    /// Writes `data` at `offset`.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.request(CMD_WRITE, offset, len, data).map(drop)
    }

    /// Flushes the server's backend.
    pub fn flush(&mut self) -> io::Result<()> {
        self.request(CMD_FLUSH, 0, 0, &[]).map(drop)
    }

    /// Sends `NBD_CMD_DISC` and closes.
    pub fn disconnect(mut self) -> io::Result<()> {
        self.cookie += 1;
        let req = Request {
            flags: 0,
            command: CMD_DISC,
            cookie: self.cookie,
            offset: 0,
            length: 0,
        };
        self.writer.write_all(&req.to_bytes())?;
        self.writer.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::sync::Arc;

    use crate::{Export, MemBackend, Server};

    /// A fake server: negotiates a 1 MiB export, reads `n` requests (no payloads), then lets
    /// `answer` write the replies.
    fn fake_server(
        socket: &Path,
        n: usize,
        answer: impl FnOnce(&mut UnixStream, Vec<Request>) + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let listener = UnixListener::bind(socket).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(&NBD_MAGIC.to_be_bytes()).unwrap();
            s.write_all(&IHAVEOPT.to_be_bytes()).unwrap();
            s.write_all(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes())
                .unwrap();
            read_u32(&mut s).unwrap();
            assert_eq!(read_u64(&mut s).unwrap(), IHAVEOPT);
            let option = read_u32(&mut s).unwrap();
            let mut data = vec![0u8; read_u32(&mut s).unwrap() as usize];
            s.read_exact(&mut data).unwrap();
            let mut info = INFO_EXPORT.to_be_bytes().to_vec();
            info.extend_from_slice(&(1u64 << 20).to_be_bytes());
            info.extend_from_slice(&TFLAG_HAS_FLAGS.to_be_bytes());
            write_option_reply(&mut s, option, REP_INFO, &info).unwrap();
            write_option_reply(&mut s, option, REP_ACK, &[]).unwrap();
            let mut requests = Vec::new();
            for _ in 0..n {
                let mut header = [0u8; 28];
                s.read_exact(&mut header).unwrap();
                requests.push(Request::parse(&header).unwrap());
            }
            answer(&mut s, requests);
        })
    }

    #[test]
    fn out_of_order_replies_are_matched_by_cookie() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s");
        let server = fake_server(&socket, 3, |s, requests| {
            // Answer last first; each read's payload is its length's low byte, repeated.
            for req in requests.iter().rev() {
                if req.command == CMD_FLUSH {
                    write_simple_reply(s, EIO, req.cookie).unwrap();
                } else {
                    write_simple_reply(s, 0, req.cookie).unwrap();
                    s.write_all(&vec![req.length as u8; req.length as usize])
                        .unwrap();
                }
            }
        });
        let mut client = Client::connect(&socket, "x").unwrap();
        let small = client.send_read(0, 3).unwrap();
        let large = client.send_read(4096, 700).unwrap();
        let flush = client.send_flush().unwrap();
        assert_eq!(client.in_flight(), 3);
        let mut data = Vec::new();

        let done = client.receive(&mut data).unwrap();
        assert_eq!(
            done,
            Completion {
                cookie: flush,
                error: EIO
            }
        );
        assert!(done.result().is_err());
        assert!(data.is_empty());

        let done = client.receive(&mut data).unwrap();
        assert_eq!(done.cookie, large);
        assert_eq!(data, vec![700u16 as u8; 700]);

        let done = client.receive(&mut data).unwrap();
        assert_eq!(done.cookie, small);
        assert_eq!(data, vec![3u8; 3]);
        assert_eq!(client.in_flight(), 0);
        server.join().unwrap();
    }

    #[test]
    fn reply_for_no_request_in_flight_is_a_protocol_error() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s");
        let server = fake_server(&socket, 1, |s, requests| {
            write_simple_reply(s, 0, requests[0].cookie + 100).unwrap();
        });
        let mut client = Client::connect(&socket, "x").unwrap();
        client.send_flush().unwrap();
        let err = client.receive(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        server.join().unwrap();
    }

    #[test]
    fn pipelined_requests_round_trip_through_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s");
        let export = Arc::new(Export::new("m", Box::new(MemBackend::new(1 << 20)), false));
        let _server = Server::start(&socket, vec![export]).unwrap();
        let mut client = Client::connect(&socket, "m").unwrap();
        let mut writes = HashMap::new();
        for i in 0..16u8 {
            writes.insert(
                client.send_write(u64::from(i) * 4096, &[i; 4096]).unwrap(),
                i,
            );
        }
        // One-at-a-time calls would mistake these replies for their own.
        assert!(client.flush().is_err());
        let mut data = Vec::new();
        while client.in_flight() > 0 {
            let done = client.receive(&mut data).unwrap();
            assert!(writes.remove(&done.cookie).is_some());
            done.result().unwrap();
        }
        assert!(writes.is_empty());
        let mut reads = HashMap::new();
        for i in (0..16u8).rev() {
            reads.insert(client.send_read(u64::from(i) * 4096, 4096).unwrap(), i);
        }
        while client.in_flight() > 0 {
            let done = client.receive(&mut data).unwrap();
            let i = reads.remove(&done.cookie).unwrap();
            assert_eq!(data, vec![i; 4096]);
        }
        let mut buf = [0u8; 4096];
        client.read_at(5 * 4096, &mut buf).unwrap();
        assert_eq!(buf, [5u8; 4096]);
        client.disconnect().unwrap();
    }
}
