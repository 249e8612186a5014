//! `Client`: a minimal blocking NBD client (fixed newstyle, `NBD_OPT_GO`, simple replies, one
//! request at a time) for tests and for the simulated guest that writes a marker into its
//! disk. Not a general-purpose client: no TLS, no structured replies.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::proto::*;

/// A connection to one export.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: BufWriter<UnixStream>,
    size: u64,
    flags: u16,
    cookie: u64,
}

fn protocol(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl Client {
    /// Connects to `socket` and opens `export` with `NBD_OPT_GO`.
    pub fn connect(socket: &Path, export: &str) -> io::Result<Self> {
        let stream = UnixStream::connect(socket)?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut writer = BufWriter::new(stream);
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

    fn request(
        &mut self,
        command: u16,
        offset: u64,
        length: u32,
        payload: &[u8],
    ) -> io::Result<()> {
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
        self.writer.flush()?;
        if read_u32(&mut self.reader)? != SIMPLE_REPLY_MAGIC {
            return Err(protocol("bad reply magic"));
        }
        let error = read_u32(&mut self.reader)?;
        if read_u64(&mut self.reader)? != self.cookie {
            return Err(protocol("reply for another request"));
        }
        if error != 0 {
            return Err(io::Error::other(format!("server error {error}")));
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset`.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let len = u32::try_from(buf.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.request(CMD_READ, offset, len, &[])?;
        self.reader.read_exact(buf)
    }

    /// Writes `data` at `offset`.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let len = u32::try_from(data.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.request(CMD_WRITE, offset, len, data)
    }

    /// Flushes the server's backend.
    pub fn flush(&mut self) -> io::Result<()> {
        self.request(CMD_FLUSH, 0, 0, &[])
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
