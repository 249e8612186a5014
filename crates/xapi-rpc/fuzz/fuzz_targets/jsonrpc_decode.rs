//! Fuzz target: the JSON-RPC decoders on arbitrary bytes; must never panic, and whatever
//! decodes must re-encode into something that decodes again to the same encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xapi_rpc::jsonrpc;
use xapi_rpc::{Limits, Response};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_body: 1 << 20,
        max_depth: 32,
        max_items: 100_000,
    };
    if let Ok(request) = jsonrpc::decode_request(data, &limits) {
        let mut first = Vec::new();
        jsonrpc::encode_request(&request, &mut first);
        let again = jsonrpc::decode_request(&first, &Limits::default());
        // Non-finite doubles cannot come out of the decoder, so the encoding is valid JSON.
        let again = again.expect("re-encoded request");
        let mut second = Vec::new();
        jsonrpc::encode_request(&again, &mut second);
        assert_eq!(first, second);
    }
    if let Ok(reply) = jsonrpc::decode_reply(data, &limits) {
        let mut first = Vec::new();
        match &reply.response {
            Response::Success(value) => {
                jsonrpc::encode_success(reply.version, &reply.id, value, &mut first)
            }
            Response::Failure(description) => jsonrpc::encode_failure(
                reply.version,
                &reply.id,
                &description[0],
                &description[1..],
                &mut first,
            ),
            Response::Fault { .. } => unreachable!("JSON-RPC has no faults"),
        }
        jsonrpc::decode_reply(&first, &Limits::default()).expect("re-encoded reply");
    }
});
