//! Big-endian field access and the one's-complement checksum shared by the footer, the dynamic
//! header and the batmap. Pure functions on byte slices; never does I/O.

/// One's complement of the byte sum of `bytes`, skipping the four bytes at `skip` (the stored
/// checksum field), as the VHD specification defines it.
pub(crate) fn ones_complement(bytes: &[u8], skip: Option<usize>) -> u32 {
    let mut sum = 0u32;
    for (i, byte) in bytes.iter().enumerate() {
        if let Some(start) = skip {
            if (start..start + 4).contains(&i) {
                continue;
            }
        }
        sum = sum.wrapping_add(u32::from(*byte));
    }
    !sum
}

/// Reads a big-endian `u32`; `buf` must hold the field (callers pass fixed-size records).
pub(crate) fn get_u32(buf: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&buf[at..at + 4]);
    u32::from_be_bytes(raw)
}

/// Reads a big-endian `u64`.
pub(crate) fn get_u64(buf: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(raw)
}

/// Writes a big-endian `u32`.
pub(crate) fn put_u32(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Writes a big-endian `u64`.
pub(crate) fn put_u64(buf: &mut [u8], at: usize, value: u64) {
    buf[at..at + 8].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn checksum_skips_the_stored_field() {
        let mut buf = [1u8; 12];
        let without = ones_complement(&buf, Some(4));
        buf[4..8].copy_from_slice(&[0xff; 4]);
        assert_eq!(ones_complement(&buf, Some(4)), without);
        assert_eq!(without, !8u32);
    }

    #[test]
    fn big_endian_round_trip() {
        let mut buf = [0u8; 16];
        put_u64(&mut buf, 0, 0x0102_0304_0506_0708);
        put_u32(&mut buf, 8, 0x0a0b_0c0d);
        assert_eq!(buf[0], 1);
        assert_eq!(get_u64(&buf, 0), 0x0102_0304_0506_0708);
        assert_eq!(get_u32(&buf, 8), 0x0a0b_0c0d);
    }
}
