//! Deterministic pseudo-random robustness: the wire samples are mutated and truncated with a
//! small xorshift generator; no decoder may panic, and whatever still decodes must re-encode
//! to a fixed point. Runs in a bounded number of iterations in every `cargo test`.

// Tests may unwrap: a panic is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::{decode, encode, normal, samples, Kind};
use xapi_rpc::{jsonrpc, xmlrpc, DecodeError, Limits};

/// Mutated inputs tried per sample.
const ITERATIONS_PER_SAMPLE: usize = 1500;

/// Marshall's xorshift64*: tiny, deterministic, good enough to pick mutations.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Fragments that make structurally interesting mutations likely.
const XML_TOKENS: &[&str] = &[
    "<value>",
    "</value>",
    "<value/>",
    "<struct>",
    "</struct>",
    "<member>",
    "</member>",
    "<name>",
    "</name>",
    "<array><data>",
    "</data></array>",
    "<int>",
    "</int>",
    "<i4>x</i4>",
    "<boolean>",
    "</boolean>",
    "<double>",
    "</double>",
    "<base64>",
    "</base64>",
    "<nil/>",
    "&amp;",
    "&#x41;",
    "&#xD800;",
    "&bogus;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?pi?>",
    "<!DOCTYPE x>",
    "\u{0}",
    "\u{feff}",
    "é",
    "\n",
    "<",
    ">",
    "/",
    "\"",
];

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u00e9",
    "\\ud800",
    "null",
    "true",
    "false",
    "-",
    "1e400",
    "9223372036854775808",
    "-0",
    "0.5",
    "\"jsonrpc\":\"2.0\",",
    "\"id\":",
    "\"params\":",
    "\"method\":",
    "NaN",
    "é",
    "\u{0}",
    " ",
];

/// One random edit of `body`.
fn mutate(rng: &mut XorShift, body: &[u8], tokens: &[&str]) -> Vec<u8> {
    let mut out = body.to_vec();
    let edits = 1 + rng.below(3);
    for _ in 0..edits {
        let len = out.len();
        match rng.below(6) {
            // Truncate.
            0 => out.truncate(rng.below(len + 1)),
            // Overwrite one byte with anything.
            1 if len > 0 => {
                let at = rng.below(len);
                out[at] = rng.next() as u8;
            }
            // Delete a range.
            2 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(16)).min(len);
                out.drain(at..end);
            }
            // Insert a token.
            3 => {
                let at = rng.below(len + 1);
                let token = tokens[rng.below(tokens.len())].as_bytes();
                out.splice(at..at, token.iter().copied());
            }
            // Duplicate a range (grows nesting).
            4 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(64)).min(len);
                let copy = out[at..end].to_vec();
                let to = rng.below(len + 1);
                out.splice(to..to, copy);
            }
            // Flip a bit.
            _ if len > 0 => {
                let at = rng.below(len);
                out[at] ^= 1 << rng.below(8);
            }
            _ => {}
        }
    }
    out
}

#[test]
fn mutated_samples_never_panic_and_valid_ones_round_trip() {
    let limits = Limits {
        max_depth: 16,
        max_items: 10_000,
        max_body: 1 << 20,
    };
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut decoded_ok = 0usize;
    let mut rejected = 0usize;
    for sample in samples() {
        let tokens = match sample.kind {
            Kind::JsonRequest | Kind::JsonReply => JSON_TOKENS,
            _ => XML_TOKENS,
        };
        for _ in 0..ITERATIONS_PER_SAMPLE {
            let input = mutate(&mut rng, &sample.body, tokens);
            let Ok(first) = decode(sample.kind, &input, &limits) else {
                rejected += 1;
                continue;
            };
            decoded_ok += 1;
            // Replies whose error decodes to nothing cannot be re-encoded; the decoder
            // refuses those, so every success here has an encodable shape.
            let encoded = encode(&first);
            let second = decode(sample.kind, &encoded, &Limits::default()).unwrap_or_else(|err| {
                panic!(
                    "{}: re-encoded input does not decode: {err}\ninput: {:?}\nencoded: {:?}",
                    sample.name,
                    String::from_utf8_lossy(&input),
                    String::from_utf8_lossy(&encoded)
                )
            });
            assert_eq!(
                encode(&second),
                encoded,
                "{}: not a fixed point",
                sample.name
            );
            if !encoded.windows(3).any(|w| w == b"nan" || w == b"NaN") {
                assert_eq!(second, normal(&first), "{}", sample.name);
            }
        }
    }
    // The mutations must exercise both paths, or the test proves little.
    assert!(
        decoded_ok > 1000,
        "only {decoded_ok} mutated inputs decoded"
    );
    assert!(
        rejected > 1000,
        "only {rejected} mutated inputs were rejected"
    );
}

#[test]
fn every_prefix_of_every_sample_is_handled() {
    for sample in samples() {
        for end in 0..sample.body.len() {
            // Only the absence of a panic matters for prefixes.
            let _ = decode(sample.kind, &sample.body[..end], &Limits::default());
        }
    }
}

#[test]
fn pathological_nesting_is_rejected_quickly() {
    let limits = Limits::default();
    let xml = "<value><array><data>".repeat(50_000);
    assert!(matches!(
        xmlrpc::decode_value(xml.as_bytes(), &limits),
        Err(DecodeError::TooDeep(64))
    ));
    let json = "[".repeat(50_000);
    assert!(jsonrpc::decode_value(json.as_bytes(), &limits).is_err());
    let members = "{\"a\":".repeat(50_000);
    assert!(jsonrpc::decode_value(members.as_bytes(), &limits).is_err());
}

#[test]
fn wide_documents_hit_the_item_limit() {
    let limits = Limits {
        max_items: 1000,
        ..Limits::default()
    };
    let xml = format!(
        "<value><array><data>{}</data></array></value>",
        "<value/>".repeat(1000)
    );
    assert_eq!(
        xmlrpc::decode_value(xml.as_bytes(), &limits),
        Err(DecodeError::TooManyItems(1000))
    );
    let json = format!("[{}0]", "0,".repeat(1000));
    assert_eq!(
        jsonrpc::decode_value(json.as_bytes(), &limits),
        Err(DecodeError::TooManyItems(1000))
    );
}
