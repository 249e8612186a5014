//! Decimal text of integers, written straight into an output buffer by both encoders.
//!
//! Avoids the `fmt` machinery on the hot encoding path; never allocates.

/// Appends `value` in decimal (`-42`, `9223372036854775807`).
pub(crate) fn write_i64(value: i64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut n = value.unsigned_abs();
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[pos..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: i64) -> String {
        let mut out = Vec::new();
        write_i64(value, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn writes_decimal_integers() {
        assert_eq!(text(0), "0");
        assert_eq!(text(7), "7");
        assert_eq!(text(-42), "-42");
        assert_eq!(text(1_000_000), "1000000");
        assert_eq!(text(i64::MAX), "9223372036854775807");
        assert_eq!(text(i64::MIN), "-9223372036854775808");
    }
}
