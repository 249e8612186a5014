//! The operations of the protocol, sans I/O: for each message type a builder that
//! encodes the request payload and a parser that decodes the matching reply into a
//! typed value. Both client faces (blocking and async) send exactly these; nothing
//! here knows about sockets, threads or tasks.

use crate::error::{Errno, Result, XsError};
use crate::perms::{DomId, Permissions};
use crate::wire::{self, MsgType, Packet};

/// An encoded request and how to parse its reply.
#[derive(Debug)]
pub struct Request<T> {
    /// The message type; a successful reply carries the same one.
    pub kind: MsgType,
    /// The payload, or the reason it could not be encoded.
    pub payload: Result<Vec<u8>>,
    /// Turns a successful reply payload into the result.
    pub parse: fn(Vec<u8>) -> Result<T>,
}

impl<T> Request<T> {
    fn new(kind: MsgType, payload: Result<Vec<u8>>, parse: fn(Vec<u8>) -> Result<T>) -> Self {
        Request {
            kind,
            payload,
            parse,
        }
    }

    /// Decodes the reply to this request: `ERROR` becomes [`XsError::Daemon`], a
    /// reply of another type is a protocol error, anything else goes to `parse`.
    pub fn decode(kind: MsgType, parse: fn(Vec<u8>) -> Result<T>, reply: Packet) -> Result<T> {
        match reply.header.msg_type() {
            Some(MsgType::Error) => Err(XsError::Daemon(Errno::from_name(&wire::single_string(
                &reply.payload,
            )?))),
            Some(got) if got == kind => parse(reply.payload),
            _ => Err(XsError::Protocol(format!(
                "expected a {kind:?} reply, got type {}",
                reply.header.kind
            ))),
        }
    }
}

fn parse_ok(payload: Vec<u8>) -> Result<()> {
    match payload.as_slice() {
        b"OK\0" | b"OK" => Ok(()),
        other => Err(XsError::Protocol(format!(
            "expected OK, got {:?}",
            String::from_utf8_lossy(other)
        ))),
    }
}

fn parse_bytes(payload: Vec<u8>) -> Result<Vec<u8>> {
    Ok(payload)
}

fn parse_string(payload: Vec<u8>) -> Result<String> {
    wire::single_string(&payload)
}

fn parse_list(payload: Vec<u8>) -> Result<Vec<String>> {
    wire::split_nul_strings(&payload)
}

fn parse_bool(payload: Vec<u8>) -> Result<bool> {
    match wire::single_string(&payload)?.as_str() {
        "T" => Ok(true),
        "F" => Ok(false),
        other => Err(XsError::Protocol(format!("expected T or F, got {other:?}"))),
    }
}

fn parse_tx_id(payload: Vec<u8>) -> Result<u32> {
    let text = wire::single_string(&payload)?;
    match text.parse::<u32>() {
        Ok(id) if id != 0 => Ok(id),
        _ => Err(XsError::Protocol(format!("bad transaction id {text:?}"))),
    }
}

fn parse_perms(payload: Vec<u8>) -> Result<Permissions> {
    Permissions::from_payload(&payload)
}

/// `READ <path>|` -> the value bytes.
pub fn read(path: &str) -> Request<Vec<u8>> {
    Request::new(MsgType::Read, wire::nul_strings([path]), parse_bytes)
}

/// `WRITE <path>|<value>`: creates missing parents.
pub fn write(path: &str, value: &[u8]) -> Request<()> {
    let payload = wire::nul_strings([path]).map(|mut out| {
        out.extend_from_slice(value);
        out
    });
    Request::new(MsgType::Write, payload, parse_ok)
}

/// `MKDIR <path>|`: creates the node and missing parents, keeps existing values.
pub fn mkdir(path: &str) -> Request<()> {
    Request::new(MsgType::Mkdir, wire::nul_strings([path]), parse_ok)
}

/// `RM <path>|`: removes the node and its children.
pub fn rm(path: &str) -> Request<()> {
    Request::new(MsgType::Rm, wire::nul_strings([path]), parse_ok)
}

/// `DIRECTORY <path>|` -> child leaf names.
pub fn directory(path: &str) -> Request<Vec<String>> {
    Request::new(MsgType::Directory, wire::nul_strings([path]), parse_list)
}

/// `DIRECTORY_PART <path>|<offset>|` -> raw reply for [`DirectoryAssembler`].
pub fn directory_part(path: &str, offset: usize) -> Request<Vec<u8>> {
    let offset = offset.to_string();
    Request::new(
        MsgType::DirectoryPart,
        wire::nul_strings([path, offset.as_str()]),
        parse_bytes,
    )
}

/// `GET_PERMS <path>|` -> typed permissions.
pub fn get_perms(path: &str) -> Request<Permissions> {
    Request::new(MsgType::GetPerms, wire::nul_strings([path]), parse_perms)
}

/// `SET_PERMS <path>|<perm>|+`.
pub fn set_perms(path: &str, perms: &Permissions) -> Request<()> {
    let payload = wire::nul_strings([path]).and_then(|mut out| {
        perms.write_payload(&mut out)?;
        Ok(out)
    });
    Request::new(MsgType::SetPerms, payload, parse_ok)
}

/// `WATCH <path>|<token>|`.
pub fn watch(path: &str, token: &str) -> Request<()> {
    Request::new(MsgType::Watch, wire::nul_strings([path, token]), parse_ok)
}

/// `UNWATCH <path>|<token>|`.
pub fn unwatch(path: &str, token: &str) -> Request<()> {
    Request::new(MsgType::Unwatch, wire::nul_strings([path, token]), parse_ok)
}

/// `RESET_WATCHES |`: drops every watch and transaction of this connection.
pub fn reset_watches() -> Request<()> {
    Request::new(MsgType::ResetWatches, wire::nul_strings([""]), parse_ok)
}

/// `TRANSACTION_START |` -> the new transaction id (never 0).
pub fn transaction_start() -> Request<u32> {
    Request::new(
        MsgType::TransactionStart,
        wire::nul_strings([""]),
        parse_tx_id,
    )
}

/// `TRANSACTION_END T|` (commit) or `F|` (abort); sent with the transaction's id.
pub fn transaction_end(commit: bool) -> Request<()> {
    let flag = if commit { "T" } else { "F" };
    Request::new(MsgType::TransactionEnd, wire::nul_strings([flag]), parse_ok)
}

/// `INTRODUCE <domid>|<mfn>|<evtchn>|`: tells xenstored about a domain's ring.
pub fn introduce(domid: DomId, mfn: u64, evtchn: u32) -> Request<()> {
    let fields = [domid.to_string(), mfn.to_string(), evtchn.to_string()];
    Request::new(
        MsgType::Introduce,
        wire::nul_strings(fields.iter().map(String::as_str)),
        parse_ok,
    )
}

/// `RELEASE <domid>|`: xenstored disconnects from the domain.
pub fn release(domid: DomId) -> Request<()> {
    Request::new(
        MsgType::Release,
        wire::nul_strings([domid.to_string().as_str()]),
        parse_ok,
    )
}

/// `RESUME <domid>|`: re-arms `@releaseDomain` for a domain that was shut down.
pub fn resume(domid: DomId) -> Request<()> {
    Request::new(
        MsgType::Resume,
        wire::nul_strings([domid.to_string().as_str()]),
        parse_ok,
    )
}

/// `SET_TARGET <domid>|<target>|`: lets `domid` act on `target`'s nodes.
pub fn set_target(domid: DomId, target: DomId) -> Request<()> {
    let fields = [domid.to_string(), target.to_string()];
    Request::new(
        MsgType::SetTarget,
        wire::nul_strings(fields.iter().map(String::as_str)),
        parse_ok,
    )
}

/// `GET_DOMAIN_PATH <domid>|` -> `/local/domain/<domid>`.
pub fn get_domain_path(domid: DomId) -> Request<String> {
    let payload = wire::nul_strings([domid.to_string().as_str()]);
    Request::new(MsgType::GetDomainPath, payload, parse_string)
}

/// `IS_DOMAIN_INTRODUCED <domid>|` -> `T` or `F`.
pub fn is_domain_introduced(domid: DomId) -> Request<bool> {
    let payload = wire::nul_strings([domid.to_string().as_str()]);
    Request::new(MsgType::IsDomainIntroduced, payload, parse_bool)
}

/// `CONTROL <command>|<args>|*` -> the daemon's raw answer.
pub fn control(command: &str, args: &[&str]) -> Request<Vec<u8>> {
    let payload = wire::nul_strings(std::iter::once(command).chain(args.iter().copied()));
    Request::new(MsgType::Control, payload, parse_bytes)
}

/// How many times [`DirectoryAssembler`] restarts because the node changed
/// between two `DIRECTORY_PART` calls before it gives up with `EAGAIN`.
pub const DIRECTORY_PART_RESTARTS: u32 = 16;

/// What to do after feeding a `DIRECTORY_PART` reply to [`DirectoryAssembler`].
#[derive(Debug, PartialEq, Eq)]
pub enum DirectoryStep {
    /// Send `DIRECTORY_PART` again with this byte offset.
    Continue(usize),
    /// The listing is complete.
    Done(Vec<String>),
}

/// Reassembles a big directory listing from `DIRECTORY_PART` replies, each of the
/// form `<gencnt>|<child>|*`, the last one ending with an extra empty string. If the
/// generation count changes, the node changed under us and the listing restarts.
#[derive(Debug, Default)]
pub struct DirectoryAssembler {
    generation: Option<String>,
    names: Vec<u8>,
    restarts: u32,
}

impl DirectoryAssembler {
    /// The offset of the next request (0 at the start).
    pub fn offset(&self) -> usize {
        self.names.len()
    }

    /// Consumes one reply payload.
    pub fn feed(&mut self, reply: &[u8]) -> Result<DirectoryStep> {
        let split = reply
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| XsError::Protocol("DIRECTORY_PART reply lacks a generation".into()))?;
        let generation = wire::single_string(&reply[..split])?;
        let chunk = &reply[split + 1..];
        match &self.generation {
            Some(seen) if *seen != generation => {
                self.restarts += 1;
                if self.restarts > DIRECTORY_PART_RESTARTS {
                    return Err(XsError::Daemon(Errno::Eagain));
                }
                self.generation = None;
                self.names.clear();
                return Ok(DirectoryStep::Continue(0));
            }
            Some(_) => {}
            None => self.generation = Some(generation),
        }
        self.names.extend_from_slice(chunk);
        // The final chunk is terminated by an empty name, so the listing ends in
        // two NULs (or is a lone NUL for an empty directory).
        let finished = self.names.len() <= 1 || self.names.ends_with(&[0, 0]);
        if finished {
            // Drop the terminating empty name before splitting.
            let names = &self.names[..self.names.len().saturating_sub(1)];
            return wire::split_nul_strings(names).map(DirectoryStep::Done);
        }
        if chunk.is_empty() {
            return Err(XsError::Protocol("DIRECTORY_PART made no progress".into()));
        }
        Ok(DirectoryStep::Continue(self.names.len()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;
    use crate::perms::Access;
    use crate::wire::Header;

    fn reply(kind: MsgType, payload: &[u8]) -> Packet {
        let header = Header {
            kind: kind as u32,
            req_id: 1,
            tx_id: 0,
            len: payload.len() as u32,
        };
        Packet {
            header,
            payload: payload.to_vec(),
        }
    }

    fn run<T>(request: Request<T>, kind: MsgType, payload: &[u8]) -> Result<T> {
        Request::decode(request.kind, request.parse, reply(kind, payload))
    }

    #[test]
    fn write_payload_is_path_nul_then_raw_value() {
        let request = write("/a/b", b"v\0x");
        assert_eq!(request.kind, MsgType::Write);
        assert_eq!(request.payload.unwrap(), b"/a/b\0v\0x");
    }

    #[test]
    fn error_reply_maps_the_errno_name() {
        let err = run(read("/nope"), MsgType::Error, b"ENOENT\0").unwrap_err();
        assert!(err.is_not_found());
    }

    #[test]
    fn reply_of_the_wrong_type_is_a_protocol_error() {
        let err = run(read("/a"), MsgType::Write, b"OK\0").unwrap_err();
        assert!(matches!(err, XsError::Protocol(_)));
    }

    #[test]
    fn ok_reply_is_required_for_unit_operations() {
        assert!(run(mkdir("/a"), MsgType::Mkdir, b"OK\0").is_ok());
        assert!(matches!(
            run(mkdir("/a"), MsgType::Mkdir, b"NO\0"),
            Err(XsError::Protocol(_))
        ));
    }

    #[test]
    fn read_returns_value_bytes_verbatim() {
        assert_eq!(run(read("/a"), MsgType::Read, b"hello").unwrap(), b"hello");
    }

    #[test]
    fn directory_reply_is_split_on_nul() {
        let names = run(directory("/"), MsgType::Directory, b"local\0tool\0").unwrap();
        assert_eq!(names, vec!["local", "tool"]);
    }

    #[test]
    fn transaction_start_parses_decimal_id_and_rejects_zero() {
        assert_eq!(
            run(transaction_start(), MsgType::TransactionStart, b"17\0").unwrap(),
            17
        );
        assert!(run(transaction_start(), MsgType::TransactionStart, b"0\0").is_err());
        assert_eq!(transaction_start().payload.unwrap(), b"\0");
    }

    #[test]
    fn transaction_end_sends_t_or_f() {
        assert_eq!(transaction_end(true).payload.unwrap(), b"T\0");
        assert_eq!(transaction_end(false).payload.unwrap(), b"F\0");
    }

    #[test]
    fn domain_requests_use_decimal_fields() {
        assert_eq!(introduce(5, 4096, 3).payload.unwrap(), b"5\x004096\x003\0");
        assert_eq!(set_target(2, 7).payload.unwrap(), b"2\x007\0");
        assert_eq!(release(9).payload.unwrap(), b"9\0");
        let path = run(
            get_domain_path(5),
            MsgType::GetDomainPath,
            b"/local/domain/5\0",
        );
        assert_eq!(path.unwrap(), "/local/domain/5");
        assert!(!run(is_domain_introduced(5), MsgType::IsDomainIntroduced, b"F\0").unwrap());
        assert!(run(is_domain_introduced(0), MsgType::IsDomainIntroduced, b"T\0").unwrap());
    }

    #[test]
    fn set_perms_appends_entries_after_path() {
        let perms = Permissions::new(0, Access::Read).with(4, Access::Both);
        assert_eq!(set_perms("/a", &perms).payload.unwrap(), b"/a\0r0\0b4\0");
    }

    #[test]
    fn watch_carries_path_and_token() {
        assert_eq!(
            watch("@releaseDomain", "t1").payload.unwrap(),
            b"@releaseDomain\0t1\0"
        );
    }

    #[test]
    fn path_with_nul_is_rejected_before_sending() {
        assert!(matches!(
            read("/a\0b").payload,
            Err(XsError::InvalidArgument(_))
        ));
    }

    #[test]
    fn directory_part_reassembles_chunks() {
        assert_eq!(directory_part("/big", 12).payload.unwrap(), b"/big\x0012\0");
        let mut assembler = DirectoryAssembler::default();
        assert_eq!(assembler.offset(), 0);
        assert_eq!(
            assembler.feed(b"7\0aa\0bb\0").unwrap(),
            DirectoryStep::Continue(6)
        );
        assert_eq!(
            assembler.feed(b"7\0cc\0\0").unwrap(),
            DirectoryStep::Done(vec!["aa".into(), "bb".into(), "cc".into()])
        );
    }

    #[test]
    fn directory_part_of_empty_node_is_empty() {
        let mut assembler = DirectoryAssembler::default();
        assert_eq!(
            assembler.feed(b"3\0\0").unwrap(),
            DirectoryStep::Done(Vec::new())
        );
    }

    #[test]
    fn directory_part_restarts_when_generation_changes() {
        let mut assembler = DirectoryAssembler::default();
        assert_eq!(
            assembler.feed(b"7\0aa\0").unwrap(),
            DirectoryStep::Continue(3)
        );
        assert_eq!(
            assembler.feed(b"8\0bb\0\0").unwrap(),
            DirectoryStep::Continue(0)
        );
        assert_eq!(assembler.offset(), 0);
        assert_eq!(
            assembler.feed(b"8\0aa\0bb\0\0").unwrap(),
            DirectoryStep::Done(vec!["aa".into(), "bb".into()])
        );
    }

    #[test]
    fn directory_part_gives_up_with_eagain_when_node_keeps_changing() {
        let mut assembler = DirectoryAssembler::default();
        let mut last = Ok(DirectoryStep::Continue(0));
        for generation in 0..100 {
            last = assembler.feed(format!("{}\0x\0", generation % 2).as_bytes());
            if last.is_err() {
                break;
            }
        }
        assert!(last.unwrap_err().is_again());
    }
}
