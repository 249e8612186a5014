//! Lossless compact JSON for `Value`: how Set, Map and Other columns are stored in SQLite TEXT.
//!
//! Plain JSON is used where it is unambiguous (null, bools, integers, strings, arrays, objects
//! with their member order kept). The kinds plain JSON cannot tell apart are single-member
//! objects with a `$` key: `{"$d":"20240131T09:05:00Z"}` is a DateTime, `{"$x":"00ff"}` Base64
//! bytes (hex), `{"$f":"nan"}` a non-finite double. A struct member name starting with `$` gets
//! one more `$` in front, so no struct is mistaken for those. Doubles always carry a `.` or an
//! exponent so they never read back as integers. This module never touches SQLite.

use std::fmt::Write as _;

use xapi_rpc::Value;

/// Serialises a value to compact JSON (see the module doc for the mapping).
pub fn to_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Parses what [`to_json`] wrote; the error says what was wrong and where.
pub fn from_json(text: &str) -> Result<Value, String> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let value = parser.value(0)?;
    parser.skip_ws();
    if parser.pos != parser.bytes.len() {
        return Err(format!("trailing data at byte {}", parser.pos));
    }
    Ok(value)
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Double(f) => {
            if f.is_finite() {
                // Debug keeps a `.0` or an exponent, and round-trips exactly.
                let _ = write!(out, "{f:?}");
            } else {
                let text = if f.is_nan() {
                    "nan"
                } else if *f > 0.0 {
                    "inf"
                } else {
                    "-inf"
                };
                out.push_str("{\"$f\":\"");
                out.push_str(text);
                out.push_str("\"}");
            }
        }
        Value::String(s) => write_string(out, s),
        Value::DateTime(s) => {
            out.push_str("{\"$d\":");
            write_string(out, s);
            out.push('}');
        }
        Value::Base64(bytes) => {
            out.push_str("{\"$x\":\"");
            for byte in bytes {
                let _ = write!(out, "{byte:02x}");
            }
            out.push_str("\"}");
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Struct(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if key.starts_with('$') {
                    write_string(out, &format!("${key}"));
                } else {
                    write_string(out, key);
                }
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Nesting deeper than this is refused rather than risking the stack on a corrupt file.
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", byte as char, self.pos))
        }
    }

    fn keyword(&mut self, word: &str, value: Value) -> Result<Value, String> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(format!("bad literal at byte {}", self.pos))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("nesting too deep".into());
        }
        self.skip_ws();
        match self.peek() {
            None => Err("unexpected end".into()),
            Some(b'n') => self.keyword("null", Value::Nil),
            Some(b't') => self.keyword("true", Value::Bool(true)),
            Some(b'f') => self.keyword("false", Value::Bool(false)),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::Array(items));
                        }
                        _ => return Err(format!("expected ',' or ']' at byte {}", self.pos)),
                    }
                }
            }
            Some(b'{') => self.object(depth),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(format!("unexpected byte at {}", self.pos)),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        self.pos += 1;
        let mut members: Vec<(String, Value)> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Struct(members));
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.expect(b':')?;
            let item = self.value(depth + 1)?;
            members.push((key, item));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(format!("expected ',' or '}}' at byte {}", self.pos)),
            }
        }
        if let [(key, item)] = members.as_slice() {
            match (key.as_str(), item) {
                ("$d", Value::String(s)) => return Ok(Value::DateTime(s.clone())),
                ("$x", Value::String(s)) => return decode_hex(s).map(Value::Base64),
                ("$f", Value::String(s)) => {
                    return match s.as_str() {
                        "nan" => Ok(Value::Double(f64::NAN)),
                        "inf" => Ok(Value::Double(f64::INFINITY)),
                        "-inf" => Ok(Value::Double(f64::NEG_INFINITY)),
                        _ => Err(format!("bad non-finite double {s:?}")),
                    }
                }
                _ => {}
            }
        }
        for (key, _) in &mut members {
            if key.starts_with("$$") {
                key.remove(0);
            } else if key.starts_with('$') {
                return Err(format!("unknown tagged value {key:?}"));
            }
        }
        Ok(Value::Struct(members))
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        let mut is_float = false;
        while let Some(byte) = self.peek() {
            match byte {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => is_float = true,
                _ => break,
            }
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.bytes[start..self.pos])
            .map_err(|_| format!("bad number at byte {start}"))?;
        if is_float {
            text.parse::<f64>()
                .map(Value::Double)
                .map_err(|_| format!("bad double {text:?}"))
        } else {
            text.parse::<i64>()
                .map(Value::Int)
                .map_err(|_| format!("bad integer {text:?}"))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.peek() != Some(b'"') {
            return Err(format!("expected string at byte {}", self.pos));
        }
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(byte) = self.peek() else {
                return Err("unterminated string".into());
            };
            self.pos += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let Some(escape) = self.peek() else {
                        return Err("unterminated escape".into());
                    };
                    self.pos += 1;
                    match escape {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let code = self.hex4()?;
                            let c = if (0xd800..0xdc00).contains(&code) {
                                if !self.bytes[self.pos..].starts_with(b"\\u") {
                                    return Err("lone surrogate".into());
                                }
                                self.pos += 2;
                                let low = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&low) {
                                    return Err("bad surrogate pair".into());
                                }
                                char::from_u32(0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00))
                            } else {
                                char::from_u32(code)
                            };
                            let c = c.ok_or_else(|| format!("bad \\u escape {code:04x}"))?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(format!("bad escape at byte {}", self.pos)),
                    }
                }
                _ => out.push(byte),
            }
        }
        String::from_utf8(out).map_err(|_| "string is not UTF-8".into())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| "short \\u escape".to_string())?;
        let text = std::str::from_utf8(digits).map_err(|_| "bad \\u escape".to_string())?;
        let code = u32::from_str_radix(text, 16).map_err(|_| "bad \\u escape".to_string())?;
        self.pos += 4;
        Ok(code)
    }
}

fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    if text.len() % 2 != 0 {
        return Err("odd hex length".into());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("bad hex at {i}"))
        })
        .collect()
}

// Tests unwrap: a failure there is the assertion.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn round_trip(value: Value) {
        let text = to_json(&value);
        let back = from_json(&text).unwrap();
        assert_eq!(back, value, "via {text}");
    }

    #[test]
    fn scalars_round_trip_with_their_kind() {
        round_trip(Value::Nil);
        round_trip(Value::Bool(true));
        round_trip(Value::Int(-42));
        round_trip(Value::Int(i64::MIN));
        round_trip(Value::Double(1.0));
        round_trip(Value::Double(1e300));
        round_trip(Value::Double(-2.5e-7));
        round_trip(Value::Double(f64::INFINITY));
        round_trip(Value::String("a \"q\" \\ \n \u{1} é 😀".into()));
        round_trip(Value::DateTime("20240131T09:05:00Z".into()));
        round_trip(Value::Base64(vec![0, 1, 254, 255]));
    }

    #[test]
    fn nan_reads_back_as_nan() {
        let back = from_json(&to_json(&Value::Double(f64::NAN))).unwrap();
        assert!(matches!(back, Value::Double(f) if f.is_nan()));
    }

    #[test]
    fn containers_keep_order_and_dollar_keys() {
        round_trip(Value::Array(vec![]));
        round_trip(Value::Struct(vec![]));
        round_trip(Value::Struct(vec![
            ("z".into(), Value::String("1".into())),
            (
                "a".into(),
                Value::Array(vec![Value::Int(1), Value::Double(2.0)]),
            ),
        ]));
        round_trip(Value::Struct(vec![(
            "$d".into(),
            Value::String("x".into()),
        )]));
        round_trip(Value::Struct(vec![("$$x".into(), Value::Nil)]));
    }

    #[test]
    fn map_is_compact_plain_json() {
        let value = Value::Struct(vec![("k".into(), Value::String("v".into()))]);
        assert_eq!(to_json(&value), r#"{"k":"v"}"#);
        assert_eq!(
            to_json(&Value::Array(vec!["a".into(), "b".into()])),
            r#"["a","b"]"#
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for text in [
            "",
            "[",
            "{\"a\"",
            "\"\\u12",
            "01x",
            "{\"$q\":1}",
            "nul",
            "[1,]",
            "\"\\ud800\"",
        ] {
            assert!(from_json(text).is_err(), "{text}");
        }
        let deep = "[".repeat(1000);
        assert!(from_json(&deep).is_err());
    }
}
