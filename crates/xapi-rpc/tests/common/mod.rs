//! Shared helpers of the integration tests: loading the wire samples in `tests/data/` and
//! re-encoding whatever a decoder produced with the matching encoder.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;

use xapi_rpc::jsonrpc::{self, Reply};
use xapi_rpc::{xmlrpc, Call, DecodeError, Limits, Response, Value};

/// What a sample file holds, from its name prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `call_*.xml`: an XML-RPC `methodCall`.
    XmlCall,
    /// `response_*.xml`: an XML-RPC `methodResponse`.
    XmlResponse,
    /// `value_*.xml`: a lone `<value>`.
    XmlValue,
    /// `request_*.json`: a JSON-RPC request.
    JsonRequest,
    /// `reply_*.json`: a JSON-RPC response.
    JsonReply,
}

/// One sample: its file name, kind and bytes.
pub struct Sample {
    pub name: String,
    pub kind: Kind,
    pub body: Vec<u8>,
}

impl Sample {
    /// Canonical samples (`*.canon.*`) are exactly what the encoder writes.
    pub fn is_canonical(&self) -> bool {
        self.name.contains(".canon.")
    }
}

/// Every sample in `tests/data/`, sorted by name.
pub fn samples() -> Vec<Sample> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut samples: Vec<Sample> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let kind = if name.starts_with("call_") {
                Kind::XmlCall
            } else if name.starts_with("response_") {
                Kind::XmlResponse
            } else if name.starts_with("value_") {
                Kind::XmlValue
            } else if name.starts_with("request_") {
                Kind::JsonRequest
            } else if name.starts_with("reply_") {
                Kind::JsonReply
            } else {
                panic!("sample {name} has no known prefix");
            };
            Sample {
                name,
                kind,
                body: std::fs::read(&path).unwrap(),
            }
        })
        .collect();
    samples.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        samples.len() >= 20,
        "samples missing from {}",
        dir.display()
    );
    samples
}

/// A decoded body of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Call(Call),
    /// A response, and whether it was a bare parameter rather than a Status envelope.
    Response(Response, bool),
    Value(Value),
    Request(jsonrpc::Request),
    Reply(Reply),
}

/// Decodes `body` as `kind`.
pub fn decode(kind: Kind, body: &[u8], limits: &Limits) -> Result<Decoded, DecodeError> {
    Ok(match kind {
        Kind::XmlCall => Decoded::Call(xmlrpc::decode_call(body, limits)?),
        Kind::XmlResponse => {
            let bare = !contains(body, b"<name>Status</name>");
            Decoded::Response(xmlrpc::decode_response(body, limits)?, bare)
        }
        Kind::XmlValue => Decoded::Value(xmlrpc::decode_value(body, limits)?),
        Kind::JsonRequest => Decoded::Request(jsonrpc::decode_request(body, limits)?),
        Kind::JsonReply => Decoded::Reply(jsonrpc::decode_reply(body, limits)?),
    })
}

/// Encodes a decoded body back with the matching encoder.
pub fn encode(decoded: &Decoded) -> Vec<u8> {
    let mut out = Vec::new();
    match decoded {
        Decoded::Call(call) => xmlrpc::encode_call(call, &mut out),
        Decoded::Response(Response::Success(value), true) => xmlrpc::encode_bare(value, &mut out),
        Decoded::Response(Response::Success(value), false) => {
            xmlrpc::encode_success(value, &mut out)
        }
        Decoded::Response(Response::Failure(description), _) => {
            xmlrpc::encode_failure(&description[0], &description[1..], &mut out)
        }
        Decoded::Response(Response::Fault { code, message }, _) => {
            xmlrpc::encode_fault(*code, message, &mut out)
        }
        Decoded::Value(value) => xmlrpc::encode_value(value, &mut out),
        Decoded::Request(request) => jsonrpc::encode_request(request, &mut out),
        Decoded::Reply(reply) => match &reply.response {
            Response::Success(value) => {
                jsonrpc::encode_success(reply.version, &reply.id, value, &mut out)
            }
            Response::Failure(description) => jsonrpc::encode_failure(
                reply.version,
                &reply.id,
                &description[0],
                &description[1..],
                &mut out,
            ),
            Response::Fault { .. } => panic!("JSON-RPC has no faults"),
        },
    }
    out
}

/// What survives an XML-RPC round trip: ints travel as untyped decimal text and come back as
/// strings; control characters other than TAB, LF and CR are dropped from text.
pub fn xml_normal(value: &Value) -> Value {
    match value {
        Value::Int(i) => Value::String(i.to_string()),
        Value::String(text) => Value::String(xml_text(text)),
        Value::DateTime(text) => Value::DateTime(xml_text(text)),
        Value::Array(items) => Value::Array(items.iter().map(xml_normal).collect()),
        Value::Struct(members) => Value::Struct(
            members
                .iter()
                .map(|(name, value)| (xml_text(name), xml_normal(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Text as the XML-RPC encoder writes it: control characters other than TAB, LF, CR dropped.
pub fn xml_text(text: &str) -> String {
    text.chars()
        .filter(|&c| c >= ' ' || matches!(c, '\t' | '\n' | '\r'))
        .collect()
}

/// What survives a JSON-RPC round trip: datetimes and base64 become plain strings.
pub fn json_normal(value: &Value) -> Value {
    match value {
        Value::DateTime(text) => Value::String(text.clone()),
        Value::Base64(bytes) => {
            use base64::Engine as _;
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        Value::Array(items) => Value::Array(items.iter().map(json_normal).collect()),
        Value::Struct(members) => Value::Struct(
            members
                .iter()
                .map(|(name, value)| (name.clone(), json_normal(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `decoded` with every value normalised for its codec.
pub fn normal(decoded: &Decoded) -> Decoded {
    let xml = |v: &Value| xml_normal(v);
    let json = |v: &Value| json_normal(v);
    match decoded {
        Decoded::Call(call) => Decoded::Call(Call::new(
            xml_text(&call.method),
            call.params.iter().map(xml).collect(),
        )),
        Decoded::Response(Response::Success(value), bare) => {
            Decoded::Response(Response::Success(xml(value)), *bare)
        }
        Decoded::Response(Response::Failure(description), bare) => Decoded::Response(
            Response::Failure(description.iter().map(|s| xml_text(s)).collect()),
            *bare,
        ),
        Decoded::Response(Response::Fault { code, message }, bare) => Decoded::Response(
            Response::Fault {
                code: *code,
                message: xml_text(message),
            },
            *bare,
        ),
        Decoded::Value(value) => Decoded::Value(xml(value)),
        Decoded::Request(request) => {
            let mut request = request.clone();
            request.call.params = request.call.params.iter().map(json).collect();
            Decoded::Request(request)
        }
        Decoded::Reply(reply) => {
            let mut reply = reply.clone();
            if let Response::Success(value) = &reply.response {
                reply.response = Response::Success(json(value));
            }
            Decoded::Reply(reply)
        }
    }
}

/// True when `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
