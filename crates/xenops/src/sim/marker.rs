//! The simulated guest's boot marker: when a guest with a writable disk served over NBD
//! finishes booting, it writes one sector at the start of its first disk (`XAPI-RS-SIM-BOOT`,
//! the VM's uuid and domid) through that export, as a real guest's boot would touch its disk.
//! Tests read it back to prove the data path reaches the guest. Owns a minimal NBD client
//! (fixed newstyle, `NBD_OPT_GO`, simple replies): write, flush, disconnect. Never runs under
//! the domain table lock, and costs VMs without such a disk only a scan of their VBDs.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use uuid::Uuid;

use crate::device::{VbdBackend, VbdConfig, VbdKind, VbdMode};

/// What the first sector of the boot disk starts with.
pub const MAGIC: &[u8] = b"XAPI-RS-SIM-BOOT\n";
/// The marker's size: one sector.
pub const SIZE: usize = 512;
/// How long a stuck data path may hold the boot up.
const TIMEOUT: Duration = Duration::from_secs(5);

const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_NO_ZEROES: u16 = 2;
const OPT_GO: u32 = 7;
const REP_ACK: u32 = 1;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;

/// The NBD URI of the guest's boot disk: its writable disk with the lowest device name
/// (`0` before `1`, `xvda` before `xvdb`), when that disk is served over NBD.
pub fn boot_disk(vbds: &[VbdConfig]) -> Option<String> {
    vbds.iter()
        .filter(|v| v.kind == VbdKind::Disk && v.mode == VbdMode::Rw)
        .min_by(|a, b| (a.device.len(), &a.device).cmp(&(b.device.len(), &b.device)))
        .and_then(|v| match &v.backend {
            Some(VbdBackend::Nbd(uri)) => Some(uri.clone()),
            _ => None,
        })
}

/// The marker sector of VM `uuid` booted as `domid`.
pub fn sector(uuid: &Uuid, domid: u32) -> [u8; SIZE] {
    let mut out = [0u8; SIZE];
    let text = format!(
        "{}vm={uuid}\ndomid={domid}\n",
        String::from_utf8_lossy(MAGIC)
    );
    let n = text.len().min(SIZE);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

/// Writes the marker of `uuid`/`domid` at offset 0 of the export `uri`
/// (`nbd+unix:///<export>?socket=<path>`).
pub fn write(uri: &str, uuid: &Uuid, domid: u32) -> io::Result<()> {
    let (socket, export) = parse_uri(uri)?;
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    handshake(&mut stream, export)?;
    request(&mut stream, CMD_WRITE, 1, 0, &sector(uuid, domid))?;
    request(&mut stream, CMD_FLUSH, 2, 0, &[])?;
    // The server closes the connection on a disconnect: no reply to wait for.
    stream.write_all(&header(CMD_DISC, 3, 0, 0))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Splits `nbd+unix:///<export>?socket=<path>` into the socket path and export name.
fn parse_uri(uri: &str) -> io::Result<(&Path, &str)> {
    let rest = uri
        .strip_prefix("nbd+unix:///")
        .ok_or_else(|| invalid("not an nbd+unix URI"))?;
    let (export, query) = rest
        .split_once('?')
        .ok_or_else(|| invalid("NBD URI without a socket"))?;
    let socket = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("socket="))
        .ok_or_else(|| invalid("NBD URI without a socket"))?;
    Ok((Path::new(socket), export))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn handshake(stream: &mut UnixStream, export: &str) -> io::Result<()> {
    if read_u64(stream)? != NBD_MAGIC || read_u64(stream)? != IHAVEOPT {
        return Err(invalid("not an NBD newstyle server"));
    }
    let mut flags = [0u8; 2];
    stream.read_exact(&mut flags)?;
    if u16::from_be_bytes(flags) & FLAG_FIXED_NEWSTYLE == 0 {
        return Err(invalid("server is not fixed newstyle"));
    }
    let name_len = u32::try_from(export.len()).map_err(|_| invalid("export name too long"))?;
    let mut msg = Vec::with_capacity(32 + export.len());
    msg.extend_from_slice(&u32::from(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    msg.extend_from_slice(&IHAVEOPT.to_be_bytes());
    msg.extend_from_slice(&OPT_GO.to_be_bytes());
    msg.extend_from_slice(&(name_len + 6).to_be_bytes());
    msg.extend_from_slice(&name_len.to_be_bytes());
    msg.extend_from_slice(export.as_bytes());
    msg.extend_from_slice(&0u16.to_be_bytes());
    stream.write_all(&msg)?;
    loop {
        if read_u64(stream)? != OPT_REPLY_MAGIC {
            return Err(invalid("bad option reply"));
        }
        let _option = read_u32(stream)?;
        let reply = read_u32(stream)?;
        let len = read_u32(stream)?;
        if len > 4096 {
            return Err(invalid("option reply too long"));
        }
        io::copy(&mut (&mut *stream).take(u64::from(len)), &mut io::sink())?;
        if reply == REP_ACK {
            return Ok(());
        }
        if reply & 0x8000_0000 != 0 {
            return Err(invalid("the server refused the export"));
        }
    }
}

/// The 28-byte header of a transmission request.
fn header(kind: u16, cookie: u64, offset: u64, len: u32) -> [u8; 28] {
    let mut head = [0u8; 28];
    head[..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
    head[6..8].copy_from_slice(&kind.to_be_bytes());
    head[8..16].copy_from_slice(&cookie.to_be_bytes());
    head[16..24].copy_from_slice(&offset.to_be_bytes());
    head[24..28].copy_from_slice(&len.to_be_bytes());
    head
}

fn request(
    stream: &mut UnixStream,
    kind: u16,
    cookie: u64,
    offset: u64,
    data: &[u8],
) -> io::Result<()> {
    let len = u32::try_from(data.len()).map_err(|_| invalid("request too long"))?;
    let mut msg = Vec::with_capacity(28 + data.len());
    msg.extend_from_slice(&header(kind, cookie, offset, len));
    msg.extend_from_slice(data);
    stream.write_all(&msg)?;
    if read_u32(stream)? != SIMPLE_REPLY_MAGIC {
        return Err(invalid("bad reply"));
    }
    let error = read_u32(stream)?;
    if read_u64(stream)? != cookie {
        return Err(invalid("reply to another request"));
    }
    if error != 0 {
        return Err(io::Error::other(format!("NBD error {error}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(device: &str, mode: VbdMode, backend: Option<VbdBackend>) -> VbdConfig {
        VbdConfig {
            device: device.into(),
            kind: VbdKind::Disk,
            mode,
            backend,
        }
    }

    #[test]
    fn the_boot_disk_is_the_lowest_writable_disk_served_over_nbd() {
        let nbd = |e: &str| Some(VbdBackend::Nbd(format!("nbd+unix:///{e}?socket=/s")));
        let vbds = vec![
            disk("10", VbdMode::Rw, nbd("ten")),
            disk("1", VbdMode::Rw, nbd("one")),
            disk("0", VbdMode::Ro, nbd("zero")),
        ];
        assert_eq!(
            boot_disk(&vbds),
            nbd("one").map(|b| match b {
                VbdBackend::Nbd(u) => u,
                VbdBackend::Path(_) => unreachable!(),
            })
        );
        let file = vec![disk("0", VbdMode::Rw, Some(VbdBackend::Path("/x".into())))];
        assert_eq!(boot_disk(&file), None);
        assert_eq!(boot_disk(&[]), None);
    }

    #[test]
    fn uris_name_socket_and_export() {
        let (socket, export) = parse_uri("nbd+unix:///abc?socket=/run/a.sock").unwrap();
        assert_eq!((socket, export), (Path::new("/run/a.sock"), "abc"));
        assert!(parse_uri("nbd://host/abc").is_err());
        assert!(parse_uri("nbd+unix:///abc").is_err());
    }

    #[test]
    fn the_sector_names_the_vm_and_domid() {
        let uuid = Uuid::nil();
        let s = sector(&uuid, 7);
        assert!(s.starts_with(MAGIC));
        let text = String::from_utf8_lossy(&s);
        assert!(text.contains(&format!("vm={uuid}\ndomid=7\n")), "{text}");
        assert_eq!(s[SIZE - 1], 0);
    }
}
