//! The XVA container as upstream writes it: a tar whose first member is `ova.xml` (the
//! XML-RPC encoding of `{version, objects}`), followed by every disk as
//! `Ref:<n>/<8-digit chunk index>` members of at most 1 MiB, each followed by its checksum
//! (`.xxhash`: XXH64 as 16 upper-case hex digits; `.checksum`: SHA-1 in hex, accepted on
//! import). All-zero chunks are left out, except a disk's first and last. Pure functions over
//! bytes: no I/O beyond the writer or reader handed in.
use std::io::{Read, Write};

use xapi_idl::{ApiError, Value};

/// Chunk size of disks inside the tar.
pub const CHUNK: u64 = 1 << 20;
/// The metadata member's name.
pub const OVA_XML: &str = "ova.xml";
/// Suffix of the XXH64 checksum members upstream writes.
pub const XXHASH_SUFFIX: &str = ".xxhash";
/// Suffix of the SHA-1 checksum members older exports carry.
pub const SHA1_SUFFIX: &str = ".checksum";
/// The export format version written in `version.export_vsn` (inline checksums).
pub const EXPORT_VSN: i64 = 2;

/// The member name of chunk `index` of the disk exported as `prefix` (`Ref:3/00000012`).
pub fn chunk_name(prefix: &str, index: u64) -> String {
    format!("{prefix}/{index:08}")
}

/// Splits a chunk member name into its disk prefix and chunk index.
pub fn parse_chunk_name(name: &str) -> Option<(&str, u64)> {
    let (prefix, index) = name.rsplit_once('/')?;
    if index.len() != 8 || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((prefix, index.parse().ok()?))
}

/// The XXH64 checksum of a chunk as upstream spells it.
pub fn xxhash(data: &[u8]) -> String {
    format!("{:016X}", xxhash_rust::xxh64::xxh64(data, 0))
}

/// The SHA-1 checksum of a chunk as older exports spell it.
pub fn sha1(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a chunk must be written: the first and last always, others unless all zero.
pub fn keep_chunk(index: u64, last: u64, data: &[u8]) -> bool {
    index == 0 || index == last || data.iter().any(|b| *b != 0)
}

/// Index of a disk's last chunk (0 for an empty disk).
pub fn last_chunk(size: u64) -> u64 {
    size.saturating_sub(1) / CHUNK
}

fn header(name: &str, len: u64, mtime: u64) -> std::io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_size(len);
    h.set_mode(0o400);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

/// Appends one member.
pub fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
    mtime: u64,
) -> std::io::Result<()> {
    let mut h = header(name, data.len() as u64, mtime)?;
    tar.append_data(&mut h, name, data)
}

/// Appends a chunk and its `.xxhash` member.
pub fn append_chunk<W: Write>(
    tar: &mut tar::Builder<W>,
    prefix: &str,
    index: u64,
    data: &[u8],
) -> std::io::Result<()> {
    let name = chunk_name(prefix, index);
    append(tar, &name, data, 0)?;
    append(
        tar,
        &format!("{name}{XXHASH_SUFFIX}"),
        xxhash(data).as_bytes(),
        0,
    )
}

/// Checks a chunk against the text of its checksum member (`member` names the algorithm).
pub fn verify(member: &str, data: &[u8], expected: &str) -> Result<(), ApiError> {
    let actual = if member.ends_with(XXHASH_SUFFIX) {
        xxhash(data)
    } else if member.ends_with(SHA1_SUFFIX) {
        sha1(data)
    } else {
        return Err(ApiError::new(
            "IMPORT_ERROR_UNEXPECTED_FILE",
            vec![format!("<chunk>{XXHASH_SUFFIX}"), member.to_owned()],
        ));
    };
    if actual.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(ApiError::new("IMPORT_ERROR_SOME_CHECKSUMS_FAILED", vec![]))
    }
}

/// Reads a whole (small) member.
pub fn read_member<R: Read>(entry: &mut R, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    entry.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// The `ova.xml` text of a header value: its XML-RPC `<value>` document.
pub fn ova_xml(header: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    xapi_rpc::xmlrpc::encode_value(header, &mut out);
    out
}

/// Parses `ova.xml`.
pub fn parse_ova_xml(text: &[u8]) -> Result<Value, ApiError> {
    let limits = xapi_rpc::Limits {
        max_body: usize::MAX,
        ..xapi_rpc::Limits::default()
    };
    xapi_rpc::xmlrpc::decode_value(text, &limits)
        .map_err(|e| ApiError::new("IMPORT_ERROR_GENERIC", vec![format!("ova.xml: {e}")]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_names_have_eight_digits_and_parse_back() {
        assert_eq!(chunk_name("Ref:3", 12), "Ref:3/00000012");
        assert_eq!(parse_chunk_name("Ref:3/00000012"), Some(("Ref:3", 12)));
        assert_eq!(parse_chunk_name("Ref:3/12"), None);
        assert_eq!(parse_chunk_name("ova.xml"), None);
    }

    #[test]
    fn checksums_are_spelled_as_upstream() {
        // XXH64 of the empty input with seed 0.
        assert_eq!(xxhash(b""), "EF46DB3751D8E999");
        assert_eq!(sha1(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        verify("Ref:1/00000000.xxhash", b"", "ef46db3751d8e999").unwrap();
        assert_eq!(
            verify("Ref:1/00000000.checksum", b"abc", "00")
                .unwrap_err()
                .code,
            "IMPORT_ERROR_SOME_CHECKSUMS_FAILED"
        );
    }

    #[test]
    fn zero_chunks_are_skipped_except_first_and_last() {
        let zero = [0u8; 16];
        assert!(keep_chunk(0, 3, &zero));
        assert!(keep_chunk(3, 3, &zero));
        assert!(!keep_chunk(1, 3, &zero));
        assert!(keep_chunk(2, 3, &[0, 1]));
        assert_eq!(last_chunk(CHUNK), 0);
        assert_eq!(last_chunk(CHUNK + 1), 1);
        assert_eq!(last_chunk(0), 0);
    }

    #[test]
    fn members_round_trip_through_the_tar_crate() {
        let mut b = tar::Builder::new(Vec::new());
        append(&mut b, OVA_XML, b"<value/>", 5).unwrap();
        append_chunk(&mut b, "Ref:0", 0, b"data").unwrap();
        let bytes = b.into_inner().unwrap();
        let mut a = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["ova.xml", "Ref:0/00000000", "Ref:0/00000000.xxhash"]
        );
    }
}
