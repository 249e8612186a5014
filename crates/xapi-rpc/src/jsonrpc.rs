//! JSON-RPC 1.0 and 2.0 (`POST /jsonrpc`): the wire shapes of `WIRE.md` sections 4 and 7.
//!
//! Decoding is a single pass: a `serde` seed builds `Value`s straight from `serde_json`'s
//! parser while counting depth and values against `Limits` (never through
//! `serde_json::Value`); `serde_json`'s own nesting limit of 128 levels applies on top of
//! `Limits::max_depth`. Encoding writes compact JSON directly into a byte buffer.
//!
//! Value mapping: integer literals become `Int` (literals outside `i64` become `Double`), other
//! numbers `Double`, strings `String`, `null` `Nil`. On output `DateTime` is a JSON string,
//! `Base64` a JSON string in standard base64, and a double is the shortest text that reads
//! back exactly, always with a fraction or an exponent (`1.0`, `1e16`) so it stays a double.
//! Compatibility: non-finite doubles are written as the bare tokens `NaN`, `Infinity` and
//! `-Infinity`, as upstream's Yojson printer does; they are not valid JSON and this decoder
//! (like most) refuses them.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::Write as _;

use base64::Engine as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::decimal::write_i64;
use crate::error::quote;
use crate::{Call, DecodeError, Limits, Response, Value};

/// The JSON-RPC protocol version of a request, chosen by its `jsonrpc` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// No `jsonrpc` member: JSON-RPC 1.0.
    V1,
    /// `"jsonrpc": "2.0"`.
    V2,
}

/// A request `id`, echoed back in the response exactly as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    /// An integer id, e.g. `12`.
    Int(i64),
    /// A string id, e.g. `"req-7"`.
    Str(String),
}

/// A decoded JSON-RPC request: version, id and the call itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Protocol version; the response must use the same.
    pub version: Version,
    /// The request id, echoed in the response.
    pub id: Id,
    /// Method and positional parameters.
    pub call: Call,
}

/// A decoded JSON-RPC response with its version and id (see [`decode_reply`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// `V2` when the response carried `"jsonrpc": "2.0"`.
    pub version: Version,
    /// The id the server echoed.
    pub id: Id,
    /// The result or error.
    pub response: Response,
}

/// Decodes a JSON-RPC 1.0 or 2.0 request body.
///
/// `method` (string) and `id` (integer or string) are required; notifications are refused.
/// v1 `params` must be an array; v2 `params` may be an array, absent or `null` (no
/// parameters) or an object (one struct parameter).
pub fn decode_request(body: &[u8], limits: &Limits) -> Result<Request, DecodeError> {
    const CONTEXT: &str = "JSON-RPC request";
    let Value::Struct(members) = decode_value(body, limits)? else {
        return Err(DecodeError::shape(CONTEXT, "body is not an object"));
    };
    let mut fields = Fields::new(CONTEXT, members, &["jsonrpc", "method", "id", "params"])?;
    let version = version_of(CONTEXT, fields.take("jsonrpc"))?;
    let method = match fields.take("method") {
        Some(Value::String(method)) => method,
        Some(other) => {
            return Err(DecodeError::shape(
                CONTEXT,
                format!("method is a {}", other.kind()),
            ))
        }
        None => return Err(DecodeError::shape(CONTEXT, "missing method")),
    };
    let id = id_of(CONTEXT, fields.take("id"))?;
    let params = match (version, fields.take("params")) {
        (_, Some(Value::Array(params))) => params,
        (Version::V2, None | Some(Value::Nil)) => Vec::new(),
        (Version::V2, Some(Value::Struct(members))) => vec![Value::Struct(members)],
        (Version::V1, None) => return Err(DecodeError::shape(CONTEXT, "missing params")),
        (_, Some(other)) => {
            return Err(DecodeError::shape(
                CONTEXT,
                format!("params is a {}", other.kind()),
            ))
        }
    };
    Ok(Request {
        version,
        id,
        call: Call { method, params },
    })
}

/// Decodes a JSON-RPC response body into its result or error.
pub fn decode_response(body: &[u8], limits: &Limits) -> Result<Response, DecodeError> {
    decode_reply(body, limits).map(|reply| reply.response)
}

/// Decodes a JSON-RPC response body, keeping its version and id.
///
/// v1: `result` and `error` are both required, one of them `null`; an `error` array is
/// `[code, params...]`. v2: exactly one of `result` and `error`; the error object's `message`
/// is the code and its `data` array the parameters.
pub fn decode_reply(body: &[u8], limits: &Limits) -> Result<Reply, DecodeError> {
    const CONTEXT: &str = "JSON-RPC response";
    let Value::Struct(members) = decode_value(body, limits)? else {
        return Err(DecodeError::shape(CONTEXT, "body is not an object"));
    };
    let mut fields = Fields::new(CONTEXT, members, &["jsonrpc", "result", "error", "id"])?;
    let version = version_of(CONTEXT, fields.take("jsonrpc"))?;
    let id = id_of(CONTEXT, fields.take("id"))?;
    let result = fields.take("result");
    let error = fields.take("error");
    let response = match (version, result, error) {
        (Version::V1, None, _) => return Err(DecodeError::shape(CONTEXT, "missing result")),
        (Version::V1, _, None) => return Err(DecodeError::shape(CONTEXT, "missing error")),
        (Version::V1, Some(result), Some(Value::Nil)) => Response::Success(result),
        (Version::V1, Some(Value::Nil), Some(error)) => failure_of(error)?,
        (Version::V2, Some(result), None) => Response::Success(result),
        (Version::V2, None, Some(error)) => failure_of(error)?,
        (Version::V2, None, None) => {
            return Err(DecodeError::shape(CONTEXT, "neither result nor error"))
        }
        (_, Some(_), Some(_)) => {
            return Err(DecodeError::shape(CONTEXT, "both result and error are set"))
        }
    };
    Ok(Reply {
        version,
        id,
        response,
    })
}

/// Decodes any JSON document into a `Value`, within `limits`.
pub fn decode_value(body: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    limits.check_body(body)?;
    let ctx = Ctx {
        max_depth: limits.max_depth,
        max_items: limits.max_items,
        depth: Cell::new(0),
        items: Cell::new(0),
        failure: RefCell::new(None),
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let result = ValueSeed { ctx: &ctx }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    result.map_err(|err| {
        ctx.failure
            .borrow_mut()
            .take()
            .unwrap_or_else(|| DecodeError::Json(err.to_string()))
    })
}

/// Writes `{"result":..,"error":null,"id":..}` (v1) or `{"jsonrpc":"2.0","result":..,"id":..}`.
pub fn encode_success(version: Version, id: &Id, value: &Value, out: &mut Vec<u8>) {
    match version {
        Version::V1 => {
            out.extend_from_slice(b"{\"result\":");
            encode_value(value, out);
            out.extend_from_slice(b",\"error\":null,\"id\":");
        }
        Version::V2 => {
            out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"result\":");
            encode_value(value, out);
            out.extend_from_slice(b",\"id\":");
        }
    }
    encode_id(id, out);
    out.push(b'}');
}

/// Writes `{"result":null,"error":[code,params..],"id":..}` (v1) or
/// `{"jsonrpc":"2.0","error":{"code":1,"message":code,"data":[params..]},"id":..}` (v2).
pub fn encode_failure(version: Version, id: &Id, code: &str, params: &[String], out: &mut Vec<u8>) {
    match version {
        Version::V1 => {
            out.extend_from_slice(b"{\"result\":null,\"error\":[");
            write_string(code, out);
            for param in params {
                out.push(b',');
                write_string(param, out);
            }
            out.extend_from_slice(b"],\"id\":");
        }
        Version::V2 => {
            // Compatibility: xapi always uses error code 1; the XenAPI code is the message.
            out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":");
            write_string(code, out);
            out.extend_from_slice(b",\"data\":[");
            for (i, param) in params.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(param, out);
            }
            out.extend_from_slice(b"]},\"id\":");
        }
    }
    encode_id(id, out);
    out.push(b'}');
}

/// Writes a request: `{"method":..,"params":[..],"id":..}`, with `"jsonrpc":"2.0"` first for v2.
pub fn encode_request(req: &Request, out: &mut Vec<u8>) {
    out.push(b'{');
    if req.version == Version::V2 {
        out.extend_from_slice(b"\"jsonrpc\":\"2.0\",");
    }
    out.extend_from_slice(b"\"method\":");
    write_string(&req.call.method, out);
    out.extend_from_slice(b",\"params\":[");
    for (i, param) in req.call.params.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        encode_value(param, out);
    }
    out.extend_from_slice(b"],\"id\":");
    encode_id(&req.id, out);
    out.push(b'}');
}

/// Writes `value` as compact JSON.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => {
            write_i64(*i, out);
        }
        Value::Double(f) => write_double(*f, out),
        Value::String(s) | Value::DateTime(s) => write_string(s, out),
        Value::Base64(bytes) => {
            out.push(b'"');
            let start = out.len();
            let encoded_len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
            out.resize(start + encoded_len, 0);
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(bytes, &mut out[start..])
                .unwrap_or(0);
            out.truncate(start + written);
            out.push(b'"');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                encode_value(item, out);
            }
            out.push(b']');
        }
        Value::Struct(members) => {
            out.push(b'{');
            for (i, (name, member)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(name, out);
                out.push(b':');
                encode_value(member, out);
            }
            out.push(b'}');
        }
    }
}

/// Writes a request or response id.
fn encode_id(id: &Id, out: &mut Vec<u8>) {
    match id {
        Id::Int(i) => {
            write_i64(*i, out);
        }
        Id::Str(s) => write_string(s, out),
    }
}

/// Writes a double so that it reads back as a double: shortest round-trip digits with a
/// fraction or exponent; non-finite values as upstream's bare `NaN`/`Infinity` tokens.
fn write_double(value: f64, out: &mut Vec<u8>) {
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if value.is_infinite() {
        out.extend_from_slice(if value < 0.0 {
            b"-Infinity"
        } else {
            b"Infinity"
        });
    } else {
        // `Debug` prints `1.0`, `0.1`, `1e16`, `1e-7`: always a valid JSON number that keeps
        // a fraction or exponent. Writing into a Vec cannot fail.
        let _ = write!(out, "{value:?}");
    }
}

/// Bytes that must be escaped inside a JSON string.
const JSON_SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Writes `text` as a JSON string literal; non-ASCII text is kept as UTF-8.
fn write_string(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !JSON_SPECIAL[usize::from(b)] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The recognised members of a request or response object, duplicates refused.
struct Fields {
    found: Vec<(&'static str, Value)>,
}

impl Fields {
    fn new(
        context: &'static str,
        members: Vec<(String, Value)>,
        known: &[&'static str],
    ) -> Result<Self, DecodeError> {
        let mut found: Vec<(&'static str, Value)> = Vec::with_capacity(known.len());
        for (name, value) in members {
            // Unknown members are ignored, as by upstream.
            let Some(&key) = known.iter().find(|&&key| key == name) else {
                continue;
            };
            if found.iter().any(|(seen, _)| *seen == key) {
                return Err(DecodeError::shape(
                    context,
                    format!("duplicate member {key}"),
                ));
            }
            found.push((key, value));
        }
        Ok(Fields { found })
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        let index = self.found.iter().position(|(name, _)| *name == key)?;
        Some(self.found.swap_remove(index).1)
    }
}

/// The version a `jsonrpc` member selects; anything but absent or `"2.0"` is malformed.
fn version_of(context: &'static str, member: Option<Value>) -> Result<Version, DecodeError> {
    match member {
        None => Ok(Version::V1),
        Some(Value::String(version)) if version == "2.0" => Ok(Version::V2),
        Some(Value::String(version)) => Err(DecodeError::shape(
            context,
            format!("unsupported jsonrpc version {:?}", quote(&version)),
        )),
        Some(other) => Err(DecodeError::shape(
            context,
            format!("jsonrpc is a {}", other.kind()),
        )),
    }
}

/// The `id` member: an integer or a string; absent or `null` (a notification) is malformed.
fn id_of(context: &'static str, member: Option<Value>) -> Result<Id, DecodeError> {
    match member {
        Some(Value::Int(id)) => Ok(Id::Int(id)),
        Some(Value::String(id)) => Ok(Id::Str(id)),
        None | Some(Value::Nil) => Err(DecodeError::shape(context, "missing id")),
        Some(other) => Err(DecodeError::shape(
            context,
            format!("id is a {}", other.kind()),
        )),
    }
}

/// A failure from a v1 error array (`[code, params..]`), a v2 error object
/// (`{code, message, data}`) or, liberally, a bare error string.
fn failure_of(error: Value) -> Result<Response, DecodeError> {
    const CONTEXT: &str = "JSON-RPC error";
    let strings = match error {
        Value::Array(items) => strings_of(items)?,
        Value::String(code) => vec![code],
        Value::Struct(members) => {
            let mut fields = Fields::new(CONTEXT, members, &["code", "message", "data"])?;
            if !matches!(fields.take("code"), Some(Value::Int(_))) {
                return Err(DecodeError::shape(CONTEXT, "missing integer code"));
            }
            let Some(Value::String(message)) = fields.take("message") else {
                return Err(DecodeError::shape(CONTEXT, "missing string message"));
            };
            let mut strings = vec![message];
            match fields.take("data") {
                None | Some(Value::Nil) => {}
                Some(Value::Array(items)) => strings.extend(strings_of(items)?),
                Some(other) => strings.extend(strings_of(vec![other])?),
            }
            strings
        }
        other => {
            return Err(DecodeError::shape(
                CONTEXT,
                format!("error is a {}", other.kind()),
            ))
        }
    };
    if strings.is_empty() {
        return Err(DecodeError::shape(CONTEXT, "empty error"));
    }
    Ok(Response::Failure(strings))
}

/// Error parameters as strings; scalars other than strings are rendered as text.
fn strings_of(items: Vec<Value>) -> Result<Vec<String>, DecodeError> {
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Ok(s),
            Value::Int(i) => Ok(i.to_string()),
            Value::Double(f) => Ok(f.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(DecodeError::shape(
                "JSON-RPC error",
                format!("error parameter is a {}", other.kind()),
            )),
        })
        .collect()
}

/// Per-document decoding state shared by every `ValueSeed`.
struct Ctx {
    max_depth: usize,
    max_items: usize,
    depth: Cell<usize>,
    items: Cell<usize>,
    /// The precise error behind a `serde_json` custom error, returned instead of its text.
    failure: RefCell<Option<DecodeError>>,
}

impl Ctx {
    fn fail<E: de::Error>(&self, err: DecodeError) -> E {
        let message = err.to_string();
        *self.failure.borrow_mut() = Some(err);
        E::custom(message)
    }
}

/// Builds one `Value` (and everything inside it) from the JSON parser.
#[derive(Clone, Copy)]
struct ValueSeed<'c> {
    ctx: &'c Ctx,
}

impl ValueSeed<'_> {
    fn enter<E: de::Error>(self) -> Result<(), E> {
        let depth = self.ctx.depth.get() + 1;
        if depth > self.ctx.max_depth {
            return Err(self.ctx.fail(DecodeError::TooDeep(self.ctx.max_depth)));
        }
        self.ctx.depth.set(depth);
        Ok(())
    }

    fn leave(self) {
        self.ctx.depth.set(self.ctx.depth.get().saturating_sub(1));
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        let items = self.ctx.items.get() + 1;
        if items > self.ctx.max_items {
            return Err(self.ctx.fail(DecodeError::TooManyItems(self.ctx.max_items)));
        }
        self.ctx.items.set(items);
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        // Integer literals beyond i64 are kept as doubles rather than refused.
        Ok(i64::try_from(v).map_or(Value::Double(v as f64), Value::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Double(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        self.leave();
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut members = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            members.push((name, value));
        }
        self.leave();
        Ok(Value::Struct(members))
    }
}

#[cfg(test)]
// Tests may unwrap: a panic is a test failure.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn value(text: &str) -> Value {
        decode_value(text.as_bytes(), &Limits::default()).unwrap()
    }

    fn json(value: &Value) -> String {
        let mut out = Vec::new();
        encode_value(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn request(text: &str) -> Result<Request, DecodeError> {
        decode_request(text.as_bytes(), &Limits::default())
    }

    fn response(text: &str) -> Result<Response, DecodeError> {
        decode_response(text.as_bytes(), &Limits::default())
    }

    #[test]
    fn scalars_decode() {
        assert_eq!(value("null"), Value::Nil);
        assert_eq!(value("true"), Value::Bool(true));
        assert_eq!(value("false"), Value::Bool(false));
        assert_eq!(value("-42"), Value::Int(-42));
        assert_eq!(value("4294967296"), Value::Int(4_294_967_296));
        assert_eq!(value("1.0"), Value::Double(1.0));
        assert_eq!(value("1e3"), Value::Double(1000.0));
        assert_eq!(value("\"a\\u00e9\\n\""), Value::String("aé\n".into()));
    }

    #[test]
    fn integers_beyond_i64_become_doubles() {
        assert_eq!(value("9223372036854775807"), Value::Int(i64::MAX));
        assert_eq!(value("-9223372036854775808"), Value::Int(i64::MIN));
        assert_eq!(
            value("9223372036854775808"),
            Value::Double(9_223_372_036_854_775_808.0)
        );
        assert_eq!(
            value("-9223372036854775809"),
            Value::Double(-9_223_372_036_854_775_809.0)
        );
        assert_eq!(value("100000000000000000000000"), Value::Double(1e23));
    }

    #[test]
    fn containers_keep_member_order() {
        assert_eq!(
            value("{\"b\":[1,\"x\",null],\"a\":{}}"),
            Value::Struct(vec![
                (
                    "b".into(),
                    Value::Array(vec![Value::Int(1), "x".into(), Value::Nil])
                ),
                ("a".into(), Value::Struct(Vec::new())),
            ])
        );
    }

    #[test]
    fn scalars_encode() {
        assert_eq!(json(&Value::Nil), "null");
        assert_eq!(json(&Value::Bool(true)), "true");
        assert_eq!(json(&Value::Int(-7)), "-7");
        assert_eq!(json(&Value::Double(1.0)), "1.0");
        assert_eq!(json(&Value::Double(0.1)), "0.1");
        assert_eq!(json(&Value::Double(1e16)), "1e16");
        assert_eq!(
            json(&Value::DateTime("20240131T09:05:00Z".into())),
            "\"20240131T09:05:00Z\""
        );
        assert_eq!(json(&Value::Base64(b"hello\0".to_vec())), "\"aGVsbG8A\"");
    }

    #[test]
    fn encoded_doubles_read_back_as_doubles() {
        for f in [
            1.0,
            -0.5,
            1e16,
            1.5e-7,
            123_456_789.125,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            assert_eq!(value(&json(&Value::Double(f))), Value::Double(f));
        }
    }

    #[test]
    fn non_finite_doubles_use_yojson_tokens() {
        assert_eq!(json(&Value::Double(f64::NAN)), "NaN");
        assert_eq!(json(&Value::Double(f64::INFINITY)), "Infinity");
        assert_eq!(json(&Value::Double(f64::NEG_INFINITY)), "-Infinity");
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(
            json(&"q\"b\\n\nr\rt\tc\u{1}\u{8}\u{c}é☃<".into()),
            "\"q\\\"b\\\\n\\nr\\rt\\tc\\u0001\\b\\fé☃<\""
        );
        let tricky = "\u{0}\u{1f}\"\\\u{7f}";
        assert_eq!(value(&json(&tricky.into())), tricky.into());
    }

    #[test]
    fn containers_encode_compactly() {
        let v = Value::Struct(vec![
            ("a".into(), Value::Array(vec![Value::Int(1), Value::Nil])),
            ("b".into(), Value::Struct(Vec::new())),
        ]);
        assert_eq!(json(&v), "{\"a\":[1,null],\"b\":{}}");
    }

    #[test]
    fn v1_request() {
        let req = request(
            "{\"method\":\"VM.get_power_state\",\"params\":[\"s\",\"v\"],\"id\":\"req-7\"}",
        )
        .unwrap();
        assert_eq!(req.version, Version::V1);
        assert_eq!(req.id, Id::Str("req-7".into()));
        assert_eq!(
            req.call,
            Call::new("VM.get_power_state", vec!["s".into(), "v".into()])
        );
    }

    #[test]
    fn v2_request_with_int_id() {
        let req = request(
            "{\"jsonrpc\":\"2.0\",\"method\":\"session.logout\",\"params\":[\"s\"],\"id\":12}",
        )
        .unwrap();
        assert_eq!(req.version, Version::V2);
        assert_eq!(req.id, Id::Int(12));
        assert_eq!(req.call.params, vec![Value::from("s")]);
    }

    #[test]
    fn v2_params_may_be_absent_null_or_an_object() {
        let req = request("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":1}").unwrap();
        assert!(req.call.params.is_empty());
        let req =
            request("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":null,\"id\":1}").unwrap();
        assert!(req.call.params.is_empty());
        let req = request("{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"a\":1},\"id\":1}")
            .unwrap();
        assert_eq!(
            req.call.params,
            vec![Value::Struct(vec![("a".into(), Value::Int(1))])]
        );
    }

    #[test]
    fn v1_params_must_be_an_array() {
        assert!(request("{\"method\":\"m\",\"id\":1}").is_err());
        assert!(request("{\"method\":\"m\",\"params\":null,\"id\":1}").is_err());
        assert!(request("{\"method\":\"m\",\"params\":{},\"id\":1}").is_err());
    }

    #[test]
    fn bad_requests_are_rejected() {
        // Other jsonrpc versions.
        assert!(request("{\"jsonrpc\":\"1.0\",\"method\":\"m\",\"params\":[],\"id\":1}").is_err());
        assert!(request("{\"jsonrpc\":2.0,\"method\":\"m\",\"params\":[],\"id\":1}").is_err());
        // Missing or bad method.
        assert!(request("{\"params\":[],\"id\":1}").is_err());
        assert!(request("{\"method\":5,\"params\":[],\"id\":1}").is_err());
        // Notifications and bad ids.
        assert!(request("{\"method\":\"m\",\"params\":[]}").is_err());
        assert!(request("{\"method\":\"m\",\"params\":[],\"id\":null}").is_err());
        assert!(request("{\"method\":\"m\",\"params\":[],\"id\":1.5}").is_err());
        assert!(request("{\"method\":\"m\",\"params\":[],\"id\":[1]}").is_err());
        // Not an object, duplicates, trailing garbage, bad JSON.
        assert!(request("[1]").is_err());
        assert!(request("{\"method\":\"m\",\"method\":\"n\",\"params\":[],\"id\":1}").is_err());
        assert!(request("{\"method\":\"m\",\"params\":[],\"id\":1} x").is_err());
        assert!(matches!(request("{\"method\":"), Err(DecodeError::Json(_))));
    }

    #[test]
    fn unknown_request_members_are_ignored() {
        let req =
            request("{\"method\":\"m\",\"params\":[],\"id\":1,\"extra\":{\"a\":[]}}").unwrap();
        assert_eq!(req.call.method, "m");
    }

    #[test]
    fn depth_limit_is_enforced() {
        let limits = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        assert!(decode_value(b"[[1]]", &limits).is_ok());
        assert_eq!(
            decode_value(b"[[[1]]]", &limits),
            Err(DecodeError::TooDeep(2))
        );
        assert_eq!(
            decode_value(b"{\"a\":{\"b\":{}}}", &limits),
            Err(DecodeError::TooDeep(2))
        );
    }

    #[test]
    fn very_deep_nesting_fails_cleanly() {
        let limits = Limits {
            max_depth: usize::MAX,
            ..Limits::default()
        };
        let text = "[".repeat(100_000);
        assert!(decode_value(text.as_bytes(), &limits).is_err());
    }

    #[test]
    fn item_limit_is_enforced() {
        let limits = Limits {
            max_items: 3,
            ..Limits::default()
        };
        assert!(decode_value(b"[1,2]", &limits).is_ok());
        assert_eq!(
            decode_value(b"[1,2,3]", &limits),
            Err(DecodeError::TooManyItems(3))
        );
    }

    #[test]
    fn body_limit_is_checked_first() {
        let limits = Limits {
            max_body: 3,
            ..Limits::default()
        };
        assert_eq!(
            decode_value(b"[1, x", &limits),
            Err(DecodeError::TooLarge { size: 5, limit: 3 })
        );
    }

    #[test]
    fn v1_replies_echo_the_id() {
        let mut out = Vec::new();
        encode_success(
            Version::V1,
            &Id::Str("req-7".into()),
            &"Running".into(),
            &mut out,
        );
        assert_eq!(
            out,
            b"{\"result\":\"Running\",\"error\":null,\"id\":\"req-7\"}"
        );
        out.clear();
        encode_failure(
            Version::V1,
            &Id::Str("req-7".into()),
            "HANDLE_INVALID",
            &["VM".into(), "OpaqueRef:x".into()],
            &mut out,
        );
        assert_eq!(
            out,
            b"{\"result\":null,\"error\":[\"HANDLE_INVALID\",\"VM\",\"OpaqueRef:x\"],\"id\":\"req-7\"}"
        );
    }

    #[test]
    fn v2_replies_echo_the_id() {
        let mut out = Vec::new();
        encode_success(Version::V2, &Id::Int(12), &"".into(), &mut out);
        assert_eq!(out, b"{\"jsonrpc\":\"2.0\",\"result\":\"\",\"id\":12}");
        out.clear();
        encode_failure(
            Version::V2,
            &Id::Int(12),
            "SESSION_INVALID",
            &["s".into()],
            &mut out,
        );
        assert_eq!(
            out,
            b"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":\"SESSION_INVALID\",\
              \"data\":[\"s\"]},\"id\":12}"
        );
        out.clear();
        encode_failure(Version::V2, &Id::Int(-1), "MESSAGE_REMOVED", &[], &mut out);
        assert_eq!(
            out,
            b"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":\"MESSAGE_REMOVED\",\
              \"data\":[]},\"id\":-1}"
        );
    }

    #[test]
    fn requests_encode_and_decode() {
        for version in [Version::V1, Version::V2] {
            let req = Request {
                version,
                id: Id::Str("x\"y".into()),
                call: Call::new("VM.start", vec!["s".into(), Value::Bool(true)]),
            };
            let mut out = Vec::new();
            encode_request(&req, &mut out);
            assert_eq!(decode_request(&out, &Limits::default()).unwrap(), req);
        }
        let mut out = Vec::new();
        encode_request(
            &Request {
                version: Version::V2,
                id: Id::Int(3),
                call: Call::new("m", Vec::new()),
            },
            &mut out,
        );
        assert_eq!(
            out,
            b"{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[],\"id\":3}"
        );
    }

    #[test]
    fn responses_decode() {
        assert_eq!(
            response("{\"result\":\"Running\",\"error\":null,\"id\":\"r\"}").unwrap(),
            Response::Success("Running".into())
        );
        assert_eq!(
            response("{\"result\":null,\"error\":[\"HANDLE_INVALID\",\"VM\"],\"id\":1}").unwrap(),
            Response::Failure(vec!["HANDLE_INVALID".into(), "VM".into()])
        );
        assert_eq!(
            response("{\"jsonrpc\":\"2.0\",\"result\":\"\",\"id\":12}").unwrap(),
            Response::Success("".into())
        );
        assert_eq!(
            response(
                "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":\"SESSION_INVALID\",\
                 \"data\":[\"s\",5]},\"id\":12}"
            )
            .unwrap(),
            Response::Failure(vec!["SESSION_INVALID".into(), "s".into(), "5".into()])
        );
    }

    #[test]
    fn reply_keeps_version_and_id() {
        let reply = decode_reply(
            b"{\"jsonrpc\":\"2.0\",\"result\":1,\"id\":\"a\"}",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(reply.version, Version::V2);
        assert_eq!(reply.id, Id::Str("a".into()));
    }

    #[test]
    fn malformed_responses_are_rejected() {
        assert!(response("{\"result\":1,\"id\":1}").is_err());
        assert!(response("{\"result\":1,\"error\":[\"X\"],\"id\":1}").is_err());
        assert!(response("{\"result\":1,\"error\":null}").is_err());
        assert!(response("{\"jsonrpc\":\"2.0\",\"id\":1}").is_err());
        assert!(response("{\"jsonrpc\":\"2.0\",\"result\":1,\"error\":{},\"id\":1}").is_err());
        assert!(response("{\"jsonrpc\":\"2.0\",\"error\":{\"message\":\"X\"},\"id\":1}").is_err());
        assert!(response("{\"result\":null,\"error\":[],\"id\":1}").is_err());
    }
}
