//! XML-RPC encoding: `Value`s, calls and `methodResponse` envelopes, straight into a byte buffer.
//!
//! Output follows xapi's non-strict rpclib style (`WIRE.md` sections 3 and 4): compact (no
//! whitespace between elements), strings and ints as untyped `<value>` text, doubles printed
//! like C's `%.16g`. This module never allocates per value beyond growing `out`.

use std::io::Write as _;

use base64::Engine as _;

use crate::decimal::write_i64;
use crate::{Call, Value};

/// The XML declaration every document starts with.
const XML_DECL: &[u8] = b"<?xml version=\"1.0\"?>";

/// `methodResponse` opening up to the response parameter's `<value>`.
const RESPONSE_OPEN: &[u8] = b"<methodResponse><params><param>";
/// Closes what `RESPONSE_OPEN` opened.
const RESPONSE_CLOSE: &[u8] = b"</param></params></methodResponse>";

/// Writes `value` as one `<value>...</value>` element (used for `task.result` strings).
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<value>");
    match value {
        Value::Nil => out.extend_from_slice(b"<nil/>"),
        Value::Bool(b) => out.extend_from_slice(if *b {
            b"<boolean>1</boolean>"
        } else {
            b"<boolean>0</boolean>"
        }),
        Value::Int(i) => {
            // Compatibility: xapi (rpclib non-strict mode) writes ints as untyped decimal text.
            write_i64(*i, out);
        }
        Value::Double(f) => {
            out.extend_from_slice(b"<double>");
            write_c_double(*f, out);
            out.extend_from_slice(b"</double>");
        }
        Value::String(s) => write_escaped(s, out),
        Value::DateTime(s) => {
            out.extend_from_slice(b"<dateTime.iso8601>");
            write_escaped(s, out);
            out.extend_from_slice(b"</dateTime.iso8601>");
        }
        Value::Base64(bytes) => {
            out.extend_from_slice(b"<base64>");
            let start = out.len();
            let encoded_len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
            out.resize(start + encoded_len, 0);
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(bytes, &mut out[start..])
                .unwrap_or(0);
            out.truncate(start + written);
            out.extend_from_slice(b"</base64>");
        }
        Value::Array(items) => {
            out.extend_from_slice(b"<array><data>");
            for item in items {
                encode_value(item, out);
            }
            out.extend_from_slice(b"</data></array>");
        }
        Value::Struct(members) => {
            out.extend_from_slice(b"<struct>");
            for (name, member) in members {
                out.extend_from_slice(b"<member><name>");
                write_escaped(name, out);
                out.extend_from_slice(b"</name>");
                encode_value(member, out);
                out.extend_from_slice(b"</member>");
            }
            out.extend_from_slice(b"</struct>");
        }
    }
    out.extend_from_slice(b"</value>");
}

/// Writes a `methodCall` document for `call` (used by clients: `xe`, tests, pool forwarding).
pub fn encode_call(call: &Call, out: &mut Vec<u8>) {
    out.extend_from_slice(XML_DECL);
    out.extend_from_slice(b"<methodCall><methodName>");
    write_escaped(&call.method, out);
    out.extend_from_slice(b"</methodName><params>");
    for param in &call.params {
        out.extend_from_slice(b"<param>");
        encode_value(param, out);
        out.extend_from_slice(b"</param>");
    }
    out.extend_from_slice(b"</params></methodCall>");
}

/// Writes a `methodResponse` whose struct says `Status: Success` and carries `Value: value`.
pub fn encode_success(value: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(XML_DECL);
    out.extend_from_slice(RESPONSE_OPEN);
    out.extend_from_slice(
        b"<value><struct><member><name>Status</name><value>Success</value></member>\
          <member><name>Value</name>",
    );
    encode_value(value, out);
    out.extend_from_slice(b"</member></struct></value>");
    out.extend_from_slice(RESPONSE_CLOSE);
}

/// Writes a `methodResponse` with `Status: Failure` and `ErrorDescription: [code, params...]`.
pub fn encode_failure(code: &str, params: &[String], out: &mut Vec<u8>) {
    out.extend_from_slice(XML_DECL);
    out.extend_from_slice(RESPONSE_OPEN);
    out.extend_from_slice(
        b"<value><struct><member><name>Status</name><value>Failure</value></member>\
          <member><name>ErrorDescription</name><value><array><data><value>",
    );
    write_escaped(code, out);
    out.extend_from_slice(b"</value>");
    for param in params {
        out.extend_from_slice(b"<value>");
        write_escaped(param, out);
        out.extend_from_slice(b"</value>");
    }
    out.extend_from_slice(b"</data></array></value></member></struct></value>");
    out.extend_from_slice(RESPONSE_CLOSE);
}

/// Writes a `methodResponse` whose parameter is `value` itself, without the Status struct.
///
/// Compatibility: xapi answers `system.listMethods` this way over XML-RPC.
pub fn encode_bare(value: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(XML_DECL);
    out.extend_from_slice(RESPONSE_OPEN);
    encode_value(value, out);
    out.extend_from_slice(RESPONSE_CLOSE);
}

/// Writes a `methodResponse` holding an XML-RPC `<fault>` (`faultCode`, `faultString`).
///
/// xapi never answers API calls with a fault; this exists for plugin and test doubles.
pub fn encode_fault(code: i64, message: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(XML_DECL);
    out.extend_from_slice(b"<methodResponse><fault><value><struct><member><name>faultCode</name>");
    out.extend_from_slice(b"<value><int>");
    write_i64(code, out);
    out.extend_from_slice(b"</int></value></member><member><name>faultString</name><value>");
    write_escaped(message, out);
    out.extend_from_slice(b"</value></member></struct></value></fault></methodResponse>");
}

/// Bytes that `write_escaped` must replace or drop.
const XML_SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = !matches!(b as u8, b'\t' | b'\n' | b'\r');
        b += 1;
    }
    table[b'<' as usize] = true;
    table[b'>' as usize] = true;
    table[b'&' as usize] = true;
    table[b'"' as usize] = true;
    table
};

/// Appends `text` as XML character data: `< > & "` escaped, control characters other than
/// TAB, LF and CR dropped (they cannot appear in XML 1.0 at all).
pub(crate) fn write_escaped(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !XML_SPECIAL[usize::from(b)] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(match b {
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'&' => b"&amp;",
            b'"' => b"&quot;",
            _ => b"",
        });
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `value` formatted like C's `printf("%.16g")`: `1.0` -> `1`, `0.1` -> `0.1`,
/// `1e20` -> `1e+20`, `1e-5` -> `1e-05`; non-finite values as `inf`, `-inf`, `nan`.
pub(crate) fn write_c_double(value: f64, out: &mut Vec<u8>) {
    const PRECISION: i32 = 16;
    if value.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if value.is_infinite() {
        out.extend_from_slice(if value < 0.0 { b"-inf" } else { b"inf" });
        return;
    }
    // Scientific form with PRECISION significant digits, correctly rounded; its exponent
    // decides between fixed and scientific notation exactly as C does.
    let mut sci = [0u8; 40];
    let sci = format_into(
        &mut sci,
        format_args!("{:.*e}", (PRECISION - 1) as usize, value),
    );
    let e_pos = sci.iter().position(|&c| c == b'e').unwrap_or(sci.len());
    let exponent: i32 = std::str::from_utf8(&sci[e_pos.saturating_add(1).min(sci.len())..])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if (-4..PRECISION).contains(&exponent) {
        let decimals = (PRECISION - 1 - exponent) as usize;
        let mut fixed = [0u8; 48];
        let fixed = format_into(&mut fixed, format_args!("{:.*}", decimals, value));
        out.extend_from_slice(strip_fraction_zeros(fixed));
    } else {
        out.extend_from_slice(strip_fraction_zeros(&sci[..e_pos]));
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push(b'0');
        }
        write_i64(i64::from(magnitude), out);
    }
}

/// Formats `args` into `buf` and returns the written prefix (truncated if `buf` is too small,
/// which the callers' sizes rule out).
fn format_into<'b>(buf: &'b mut [u8], args: std::fmt::Arguments<'_>) -> &'b [u8] {
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    // A full buffer only truncates the text; the sizes chosen above always suffice.
    let _ = cursor.write_fmt(args);
    let len = usize::try_from(cursor.position()).unwrap_or(0);
    &buf[..len]
}

/// Drops trailing zeros of a fraction, and the decimal point if nothing follows it.
fn strip_fraction_zeros(digits: &[u8]) -> &[u8] {
    if !digits.contains(&b'.') {
        return digits;
    }
    let mut end = digits.len();
    while end > 0 && digits[end - 1] == b'0' {
        end -= 1;
    }
    if end > 0 && digits[end - 1] == b'.' {
        end -= 1;
    }
    &digits[..end]
}

#[cfg(test)]
// Tests may unwrap: a panic is a test failure.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn value_xml(value: &Value) -> String {
        let mut out = Vec::new();
        encode_value(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn g16(value: f64) -> String {
        let mut out = Vec::new();
        write_c_double(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn string_is_bare_value_text() {
        assert_eq!(value_xml(&"Halted".into()), "<value>Halted</value>");
    }

    #[test]
    fn string_escapes_markup_characters() {
        assert_eq!(
            value_xml(&"a<b>&\"c'".into()),
            "<value>a&lt;b&gt;&amp;&quot;c'</value>"
        );
    }

    #[test]
    fn string_drops_control_characters_but_keeps_tab_lf_cr() {
        assert_eq!(
            value_xml(&"a\u{0}b\u{1b}c\td\ne\rf".into()),
            "<value>abc\td\ne\rf</value>"
        );
    }

    #[test]
    fn string_keeps_non_ascii_text() {
        assert_eq!(value_xml(&"vm-é-☃".into()), "<value>vm-é-☃</value>");
    }

    #[test]
    fn empty_string_is_empty_value() {
        assert_eq!(value_xml(&"".into()), "<value></value>");
    }

    #[test]
    fn int_is_untyped_decimal() {
        assert_eq!(value_xml(&Value::Int(-42)), "<value>-42</value>");
        assert_eq!(value_xml(&Value::Int(0)), "<value>0</value>");
        assert_eq!(
            value_xml(&Value::Int(i64::MIN)),
            "<value>-9223372036854775808</value>"
        );
        assert_eq!(
            value_xml(&Value::Int(i64::MAX)),
            "<value>9223372036854775807</value>"
        );
    }

    #[test]
    fn bool_is_one_or_zero() {
        assert_eq!(
            value_xml(&Value::Bool(true)),
            "<value><boolean>1</boolean></value>"
        );
        assert_eq!(
            value_xml(&Value::Bool(false)),
            "<value><boolean>0</boolean></value>"
        );
    }

    #[test]
    fn double_uses_c_g16_format() {
        assert_eq!(
            value_xml(&Value::Double(1.0)),
            "<value><double>1</double></value>"
        );
        assert_eq!(
            value_xml(&Value::Double(0.1)),
            "<value><double>0.1</double></value>"
        );
    }

    #[test]
    fn g16_matches_c_printf() {
        // Expected strings are what glibc's printf("%.16g") prints.
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (2.0 / 3.0, "0.6666666666666666"),
            (100.0, "100"),
            (123456.789, "123456.789"),
            (1e15, "1000000000000000"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (9_999_999_999_999_998.0, "9999999999999998"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.25e-7, "1.25e-07"),
            (1e100, "1e+100"),
            (f64::MAX, "1.797693134862316e+308"),
            (f64::MIN_POSITIVE, "2.225073858507201e-308"),
            (5e-324, "4.940656458412465e-324"),
            (0.30000000000000004, "0.3"),
            (4294967296.0, "4294967296"),
        ];
        for (value, expected) in cases {
            assert_eq!(g16(*value), *expected, "formatting {value:e}");
        }
    }

    #[test]
    fn g16_matches_c_printf_on_arbitrary_bit_patterns() {
        // Bit patterns with what C's printf("%.16g") prints for them.
        let cases: &[(u64, &str)] = &[
            (0x0f42_05b4_907a_70c3, "3.542609501695945e-235"),
            (0x930d_6eaf_14f4_733f, "-6.670190041254896e-217"),
            (0x9be4_bcfc_49b6_4a08, "-2.62025822605461e-174"),
            (0xf0ce_5835_05c6_af07, "-2.412056419517317e+235"),
            (0x3e82_0efa_30d6_d9be, "1.34546347769442e-07"),
            (0x40f1_8540_2347_c830, "71764.00861337851"),
            (0x412d_b255_af4c_3f76, "973098.8423786003"),
            (0xbd7d_d97b_6cf8_5ae0, "-1.696749880931121e-12"),
            (0x405b_32c0_8312_6e98, "108.793"),
        ];
        for (bits, expected) in cases {
            assert_eq!(
                g16(f64::from_bits(*bits)),
                *expected,
                "formatting {bits:#x}"
            );
        }
    }

    #[test]
    fn g16_of_non_finite_values() {
        assert_eq!(g16(f64::NAN), "nan");
        assert_eq!(g16(f64::INFINITY), "inf");
        assert_eq!(g16(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn datetime_nil_base64() {
        assert_eq!(
            value_xml(&Value::DateTime("20240131T09:05:00Z".into())),
            "<value><dateTime.iso8601>20240131T09:05:00Z</dateTime.iso8601></value>"
        );
        assert_eq!(value_xml(&Value::Nil), "<value><nil/></value>");
        assert_eq!(
            value_xml(&Value::Base64(b"hello\0".to_vec())),
            "<value><base64>aGVsbG8A</base64></value>"
        );
        assert_eq!(
            value_xml(&Value::Base64(Vec::new())),
            "<value><base64></base64></value>"
        );
    }

    #[test]
    fn array_and_struct_are_compact() {
        let value = Value::Struct(vec![
            ("a&b".into(), Value::Array(vec![Value::Int(1), "x".into()])),
            ("empty".into(), Value::Struct(Vec::new())),
        ]);
        assert_eq!(
            value_xml(&value),
            "<value><struct><member><name>a&amp;b</name><value><array><data><value>1</value>\
             <value>x</value></data></array></value></member><member><name>empty</name>\
             <value><struct></struct></value></member></struct></value>"
        );
    }

    #[test]
    fn success_envelope() {
        let mut out = Vec::new();
        encode_success(&"OpaqueRef:abc".into(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
             <member><name>Status</name><value>Success</value></member>\
             <member><name>Value</name><value>OpaqueRef:abc</value></member>\
             </struct></value></param></params></methodResponse>"
        );
    }

    #[test]
    fn void_success_is_empty_string_value() {
        let mut out = Vec::new();
        encode_success(&"".into(), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("<member><name>Value</name><value></value></member>"));
    }

    #[test]
    fn failure_envelope() {
        let mut out = Vec::new();
        encode_failure(
            "HANDLE_INVALID",
            &["VM".into(), "OpaqueRef:<x>".into()],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
             <member><name>Status</name><value>Failure</value></member>\
             <member><name>ErrorDescription</name><value><array><data>\
             <value>HANDLE_INVALID</value><value>VM</value><value>OpaqueRef:&lt;x&gt;</value>\
             </data></array></value></member></struct></value></param></params></methodResponse>"
        );
    }

    #[test]
    fn bare_envelope_has_no_status() {
        let mut out = Vec::new();
        encode_bare(&Value::Array(vec!["VM.start".into()]), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data>\
             <value>VM.start</value></data></array></value></param></params></methodResponse>"
        );
    }

    #[test]
    fn call_document() {
        let call = Call::new("VM.start", vec!["OpaqueRef:s".into(), Value::Bool(false)]);
        let mut out = Vec::new();
        encode_call(&call, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<?xml version=\"1.0\"?><methodCall><methodName>VM.start</methodName><params>\
             <param><value>OpaqueRef:s</value></param>\
             <param><value><boolean>0</boolean></value></param></params></methodCall>"
        );
    }

    #[test]
    fn fault_document() {
        let mut out = Vec::new();
        encode_fault(-3, "no <such> method", &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("<name>faultCode</name><value><int>-3</int></value>"));
        assert!(text.contains("<value>no &lt;such&gt; method</value>"));
    }
}
