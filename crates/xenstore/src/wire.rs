//! Framing of the xenstore wire protocol (`xs_wire.h`): the 16-byte header of four
//! little-endian `u32`s (type, req_id, tx_id, len), message type numbers, payload
//! limits and NUL-separated string lists. Pure: no I/O, no connection state.

use crate::error::{Result, XsError};

/// `XENSTORE_PAYLOAD_MAX`: the largest payload a request may carry.
pub const PAYLOAD_MAX: usize = 4096;

/// The largest reply payload accepted from the daemon. Larger than
/// [`PAYLOAD_MAX`] on purpose: oxenstored 4.17 answers `DIRECTORY` of a big node
/// with an oversized reply instead of `E2BIG`, and dropping the connection over it
/// would be worse than reading it. The cap only guards memory.
pub const REPLY_MAX: usize = 1 << 20;

/// Size of the message header.
pub const HEADER_LEN: usize = 16;

/// A message type (`enum xsd_sockmsg_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MsgType {
    /// `XS_CONTROL` (formerly `XS_DEBUG`).
    Control = 0,
    /// `XS_DIRECTORY`.
    Directory = 1,
    /// `XS_READ`.
    Read = 2,
    /// `XS_GET_PERMS`.
    GetPerms = 3,
    /// `XS_WATCH`.
    Watch = 4,
    /// `XS_UNWATCH`.
    Unwatch = 5,
    /// `XS_TRANSACTION_START`.
    TransactionStart = 6,
    /// `XS_TRANSACTION_END`.
    TransactionEnd = 7,
    /// `XS_INTRODUCE`.
    Introduce = 8,
    /// `XS_RELEASE`.
    Release = 9,
    /// `XS_GET_DOMAIN_PATH`.
    GetDomainPath = 10,
    /// `XS_WRITE`.
    Write = 11,
    /// `XS_MKDIR`.
    Mkdir = 12,
    /// `XS_RM`.
    Rm = 13,
    /// `XS_SET_PERMS`.
    SetPerms = 14,
    /// `XS_WATCH_EVENT`: unsolicited, `req_id` and `tx_id` are 0.
    WatchEvent = 15,
    /// `XS_ERROR`: the payload is an errno name.
    Error = 16,
    /// `XS_IS_DOMAIN_INTRODUCED`.
    IsDomainIntroduced = 17,
    /// `XS_RESUME`.
    Resume = 18,
    /// `XS_SET_TARGET`.
    SetTarget = 19,
    /// `XS_RESET_WATCHES` (20 was the removed `XS_RESTRICT`).
    ResetWatches = 21,
    /// `XS_DIRECTORY_PART`.
    DirectoryPart = 22,
}

impl MsgType {
    /// Decodes a type number; `None` for numbers this client does not know.
    pub fn from_u32(value: u32) -> Option<MsgType> {
        use MsgType::*;
        Some(match value {
            0 => Control,
            1 => Directory,
            2 => Read,
            3 => GetPerms,
            4 => Watch,
            5 => Unwatch,
            6 => TransactionStart,
            7 => TransactionEnd,
            8 => Introduce,
            9 => Release,
            10 => GetDomainPath,
            11 => Write,
            12 => Mkdir,
            13 => Rm,
            14 => SetPerms,
            15 => WatchEvent,
            16 => Error,
            17 => IsDomainIntroduced,
            18 => Resume,
            19 => SetTarget,
            21 => ResetWatches,
            22 => DirectoryPart,
            _ => return None,
        })
    }
}

/// A message header (`struct xsd_sockmsg`). `kind` is kept raw so that replies of
/// unknown types can still be matched to their request and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The raw message type number.
    pub kind: u32,
    /// Request id, echoed by the daemon in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside transactions.
    pub tx_id: u32,
    /// Payload length in bytes.
    pub len: u32,
}

impl Header {
    /// Encodes the header as 16 little-endian bytes.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        for (slot, value) in
            out.chunks_exact_mut(4)
                .zip([self.kind, self.req_id, self.tx_id, self.len])
        {
            slot.copy_from_slice(&value.to_le_bytes());
        }
        out
    }

    /// Decodes a received header and checks its length against [`REPLY_MAX`].
    pub fn from_bytes(bytes: &[u8; HEADER_LEN]) -> Result<Header> {
        let word =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let header = Header {
            kind: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        };
        if header.len as usize > REPLY_MAX {
            return Err(XsError::Protocol(format!(
                "payload length {} exceeds {REPLY_MAX}",
                header.len
            )));
        }
        Ok(header)
    }

    /// The decoded message type, if known.
    pub fn msg_type(&self) -> Option<MsgType> {
        MsgType::from_u32(self.kind)
    }
}

/// A whole message: header fields plus payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Header; `header.len` equals `payload.len()`.
    pub header: Header,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// Frames a request: header followed by payload. Fails, without producing
/// anything, when the payload exceeds [`PAYLOAD_MAX`].
pub fn encode_frame(kind: MsgType, req_id: u32, tx_id: u32, payload: &[u8]) -> Result<Vec<u8>> {
    if payload.len() > PAYLOAD_MAX {
        return Err(XsError::PayloadTooLarge(payload.len()));
    }
    let header = Header {
        kind: kind as u32,
        req_id,
        tx_id,
        len: payload.len() as u32,
    };
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.extend_from_slice(&header.to_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// Incremental decoder for a byte stream of messages: push bytes as they arrive,
/// pop complete packets. Used by the tests and by callers that own their own reads.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Pops the next complete packet, `Ok(None)` if more bytes are needed.
    pub fn next_packet(&mut self) -> Result<Option<Packet>> {
        let Some(head) = self.buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = Header::from_bytes(head)?;
        let end = HEADER_LEN + header.len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let payload = self.buf[HEADER_LEN..end].to_vec();
        self.buf.drain(..end);
        Ok(Some(Packet { header, payload }))
    }
}

/// Builds a payload of NUL-terminated strings. Rejects strings containing NUL,
/// which would shift every later field.
pub fn nul_strings<'a>(parts: impl IntoIterator<Item = &'a str>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for part in parts {
        push_nul_string(&mut out, part)?;
    }
    Ok(out)
}

/// Appends one NUL-terminated string to a payload.
pub fn push_nul_string(out: &mut Vec<u8>, part: &str) -> Result<()> {
    if part.as_bytes().contains(&0) {
        return Err(XsError::InvalidArgument("string contains a NUL byte"));
    }
    out.extend_from_slice(part.as_bytes());
    out.push(0);
    Ok(())
}

/// Splits a payload of NUL-terminated (or NUL-separated) strings. A missing final
/// NUL is tolerated; an empty payload is an empty list.
pub fn split_nul_strings(payload: &[u8]) -> Result<Vec<String>> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    body.split(|&b| b == 0).map(to_string).collect()
}

/// Decodes a single string reply, dropping the trailing NUL if present.
pub fn single_string(payload: &[u8]) -> Result<String> {
    to_string(payload.strip_suffix(&[0]).unwrap_or(payload))
}

fn to_string(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| XsError::Protocol("string in reply is not UTF-8".into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn header_is_four_little_endian_words() {
        let header = Header {
            kind: 2,
            req_id: 0x0102_0304,
            tx_id: 7,
            len: 5,
        };
        let bytes = header.to_bytes();
        assert_eq!(&bytes[0..4], &[2, 0, 0, 0]);
        assert_eq!(&bytes[4..8], &[4, 3, 2, 1]);
        assert_eq!(&bytes[8..12], &[7, 0, 0, 0]);
        assert_eq!(&bytes[12..16], &[5, 0, 0, 0]);
        assert_eq!(Header::from_bytes(&bytes).unwrap(), header);
    }

    #[test]
    fn frame_carries_header_then_payload() {
        let frame = encode_frame(MsgType::Read, 9, 0, b"/a\0").unwrap();
        assert_eq!(frame.len(), HEADER_LEN + 3);
        assert_eq!(&frame[0..4], &[2, 0, 0, 0]);
        assert_eq!(&frame[12..16], &[3, 0, 0, 0]);
        assert_eq!(&frame[16..], b"/a\0");
    }

    #[test]
    fn oversized_request_is_refused() {
        let payload = vec![b'x'; PAYLOAD_MAX + 1];
        assert!(matches!(
            encode_frame(MsgType::Write, 1, 0, &payload),
            Err(XsError::PayloadTooLarge(4097))
        ));
        assert!(encode_frame(MsgType::Write, 1, 0, &payload[..PAYLOAD_MAX]).is_ok());
    }

    #[test]
    fn absurd_reply_length_is_a_protocol_error() {
        let header = Header {
            kind: 2,
            req_id: 1,
            tx_id: 0,
            len: REPLY_MAX as u32 + 1,
        };
        assert!(matches!(
            Header::from_bytes(&header.to_bytes()),
            Err(XsError::Protocol(_))
        ));
    }

    #[test]
    fn decoder_waits_for_whole_packets_and_splits_back_to_back_ones() {
        let mut stream = encode_frame(MsgType::Read, 1, 0, b"hello").unwrap();
        stream.extend(encode_frame(MsgType::Write, 2, 3, b"OK\0").unwrap());
        let mut decoder = FrameDecoder::default();
        decoder.push(&stream[..10]);
        assert_eq!(decoder.next_packet().unwrap(), None);
        decoder.push(&stream[10..HEADER_LEN + 2]);
        assert_eq!(decoder.next_packet().unwrap(), None);
        decoder.push(&stream[HEADER_LEN + 2..]);
        let first = decoder.next_packet().unwrap().unwrap();
        assert_eq!(first.header.msg_type(), Some(MsgType::Read));
        assert_eq!(first.payload, b"hello");
        let second = decoder.next_packet().unwrap().unwrap();
        assert_eq!((second.header.req_id, second.header.tx_id), (2, 3));
        assert_eq!(second.payload, b"OK\0");
        assert_eq!(decoder.next_packet().unwrap(), None);
    }

    #[test]
    fn type_numbers_match_xs_wire() {
        assert_eq!(MsgType::from_u32(0), Some(MsgType::Control));
        assert_eq!(MsgType::from_u32(15), Some(MsgType::WatchEvent));
        assert_eq!(MsgType::from_u32(16), Some(MsgType::Error));
        assert_eq!(MsgType::from_u32(20), None);
        assert_eq!(MsgType::from_u32(21), Some(MsgType::ResetWatches));
        assert_eq!(MsgType::from_u32(22), Some(MsgType::DirectoryPart));
        assert_eq!(MsgType::DirectoryPart as u32, 22);
    }

    #[test]
    fn nul_strings_terminate_each_part_and_reject_embedded_nul() {
        assert_eq!(nul_strings(["/a", "tok"]).unwrap(), b"/a\0tok\0");
        assert!(matches!(
            nul_strings(["a\0b"]),
            Err(XsError::InvalidArgument(_))
        ));
    }

    #[test]
    fn split_handles_terminated_unterminated_and_empty_lists() {
        assert_eq!(split_nul_strings(b"a\0bc\0").unwrap(), vec!["a", "bc"]);
        assert_eq!(split_nul_strings(b"a\0bc").unwrap(), vec!["a", "bc"]);
        assert!(split_nul_strings(b"").unwrap().is_empty());
        assert!(split_nul_strings(b"\0").unwrap().is_empty());
        assert!(matches!(
            split_nul_strings(b"\xff\0"),
            Err(XsError::Protocol(_))
        ));
    }

    #[test]
    fn single_string_drops_the_terminator() {
        assert_eq!(
            single_string(b"/local/domain/5\0").unwrap(),
            "/local/domain/5"
        );
        assert_eq!(single_string(b"12").unwrap(), "12");
    }
}
