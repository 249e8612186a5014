//! Fuzz target: every XML-RPC decoder on arbitrary bytes; must never panic, and whatever
//! decodes must re-encode into something that decodes again to the same encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xapi_rpc::{xmlrpc, Limits, Response};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_body: 1 << 20,
        max_depth: 32,
        max_items: 100_000,
    };
    if let Ok(call) = xmlrpc::decode_call(data, &limits) {
        let mut first = Vec::new();
        xmlrpc::encode_call(&call, &mut first);
        let again = xmlrpc::decode_call(&first, &Limits::default()).expect("re-encoded call");
        let mut second = Vec::new();
        xmlrpc::encode_call(&again, &mut second);
        assert_eq!(first, second);
    }
    if let Ok(response) = xmlrpc::decode_response(data, &limits) {
        let mut first = Vec::new();
        match &response {
            Response::Success(value) => xmlrpc::encode_success(value, &mut first),
            Response::Failure(description) => {
                xmlrpc::encode_failure(&description[0], &description[1..], &mut first)
            }
            Response::Fault { code, message } => xmlrpc::encode_fault(*code, message, &mut first),
        }
        xmlrpc::decode_response(&first, &Limits::default()).expect("re-encoded response");
    }
    if let Ok(value) = xmlrpc::decode_value(data, &limits) {
        let mut first = Vec::new();
        xmlrpc::encode_value(&value, &mut first);
        let again = xmlrpc::decode_value(&first, &Limits::default()).expect("re-encoded value");
        let mut second = Vec::new();
        xmlrpc::encode_value(&again, &mut second);
        assert_eq!(first, second);
    }
});
