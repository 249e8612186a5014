//! XML-RPC (`POST /`, `/RPC2`): the wire shapes of `WIRE.md` sections 3 and 4.
//!
//! Decoding is liberal and bounded by `Limits`; encoding is compact and mimics xapi's output
//! byte for byte. Knows nothing of HTTP or datamodel classes.

mod decode;
mod encode;

pub use decode::{decode_call, decode_response, decode_value};
pub use encode::{
    encode_bare, encode_call, encode_failure, encode_fault, encode_success, encode_value,
};
