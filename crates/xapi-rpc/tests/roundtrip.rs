//! Round trips over the captured-style wire samples in `tests/data/`: every sample decodes,
//! re-encodes to a fixed point, and canonical samples re-encode byte for byte.

// Tests may unwrap: a panic is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::{decode, encode, normal, samples, Decoded};
use xapi_rpc::jsonrpc::{self, Id, Version};
use xapi_rpc::{xmlrpc, Limits, Response, Value};

#[test]
fn every_sample_decodes() {
    for sample in samples() {
        let result = decode(sample.kind, &sample.body, &Limits::default());
        assert!(result.is_ok(), "{}: {}", sample.name, result.unwrap_err());
    }
}

#[test]
fn canonical_samples_reencode_byte_for_byte() {
    let mut checked = 0;
    for sample in samples().into_iter().filter(|s| s.is_canonical()) {
        let decoded = decode(sample.kind, &sample.body, &Limits::default()).unwrap();
        let encoded = encode(&decoded);
        assert_eq!(
            String::from_utf8_lossy(&encoded),
            String::from_utf8_lossy(&sample.body),
            "{}",
            sample.name
        );
        checked += 1;
    }
    assert!(checked >= 15);
}

#[test]
fn every_sample_round_trips_through_its_encoder() {
    for sample in samples() {
        let first = decode(sample.kind, &sample.body, &Limits::default()).unwrap();
        let encoded = encode(&first);
        let second = decode(sample.kind, &encoded, &Limits::default()).unwrap();
        assert_eq!(second, normal(&first), "{}", sample.name);
        assert_eq!(
            encode(&second),
            encoded,
            "{}: not a fixed point",
            sample.name
        );
    }
}

#[test]
fn liberal_call_sample_decodes_to_the_expected_values() {
    let sample = samples()
        .into_iter()
        .find(|s| s.name == "call_vm_create.xml")
        .unwrap();
    let Decoded::Call(call) = decode(sample.kind, &sample.body, &Limits::default()).unwrap() else {
        panic!("not a call");
    };
    assert_eq!(call.method, "VM.create");
    assert_eq!(call.params.len(), 2);
    let record = &call.params[1];
    assert_eq!(
        record.get("name_label"),
        Some(&Value::from("web01 & friends"))
    );
    assert_eq!(record.get("name_description"), Some(&Value::from("")));
    assert_eq!(record.get("user_version"), Some(&Value::Int(1)));
    assert_eq!(
        record.get("memory_static_max"),
        Some(&Value::Int(4_294_967_296))
    );
    assert_eq!(
        record.get("memory_dynamic_min"),
        Some(&Value::Int(1_073_741_824))
    );
    assert_eq!(record.get("is_a_template"), Some(&Value::Bool(false)));
    assert_eq!(
        record.get("HVM_shadow_multiplier"),
        Some(&Value::Double(1.0))
    );
    assert_eq!(record.get("VCPUs_params"), Some(&Value::Struct(Vec::new())));
    assert_eq!(
        record.get("blocked_operations"),
        Some(&Value::Struct(Vec::new()))
    );
    assert_eq!(
        record.get("other_config").and_then(|c| c.get("notes")),
        Some(&Value::from("uses <tags> & ampersands"))
    );
    assert_eq!(
        record.get("tags"),
        Some(&Value::Array(vec![Value::from("a"), Value::from("bé")]))
    );
    assert_eq!(
        record.get("snapshot_time"),
        Some(&Value::DateTime("19700101T00:00:00Z".into()))
    );
    assert_eq!(
        record.get("xenstore_data").and_then(|d| d.get("vm-data/x")),
        Some(&Value::from(""))
    );
}

#[test]
fn event_sample_keeps_i4_counts_as_ints() {
    let sample = samples()
        .into_iter()
        .find(|s| s.name == "response_event_from.xml")
        .unwrap();
    let Response::Success(batch) =
        xmlrpc::decode_response(&sample.body, &Limits::default()).unwrap()
    else {
        panic!("not a success");
    };
    let counts = batch.get("valid_ref_counts").unwrap();
    assert_eq!(counts.get("vm"), Some(&Value::Int(12)));
    let Some(Value::Array(events)) = batch.get("events") else {
        panic!("no events")
    };
    assert_eq!(events[0].get("operation"), Some(&Value::from("mod")));
}

#[test]
fn fault_sample_decodes_as_fault() {
    let sample = samples()
        .into_iter()
        .find(|s| s.name == "response_fault.xml")
        .unwrap();
    assert_eq!(
        xmlrpc::decode_response(&sample.body, &Limits::default()).unwrap(),
        Response::Fault {
            code: -32601,
            message: "method \"main\" not found".into()
        }
    );
}

#[test]
fn json_request_ids_are_echoed_in_replies() {
    for (name, version, id) in [
        (
            "request_v1.canon.json",
            Version::V1,
            Id::Str("req-7".into()),
        ),
        ("request_v2.canon.json", Version::V2, Id::Int(12)),
        (
            "request_v2_create.json",
            Version::V2,
            Id::Str("9f2c".into()),
        ),
    ] {
        let sample = samples().into_iter().find(|s| s.name == name).unwrap();
        let request = jsonrpc::decode_request(&sample.body, &Limits::default()).unwrap();
        assert_eq!((request.version, &request.id), (version, &id), "{name}");
        let mut out = Vec::new();
        jsonrpc::encode_success(request.version, &request.id, &Value::from(""), &mut out);
        let reply = jsonrpc::decode_reply(&out, &Limits::default()).unwrap();
        assert_eq!((reply.version, reply.id), (version, id), "{name}");
    }
}

#[test]
fn xml_and_json_carry_the_same_record() {
    let xml = samples()
        .into_iter()
        .find(|s| s.name == "call_vm_create.xml")
        .unwrap();
    let call = xmlrpc::decode_call(&xml.body, &Limits::default()).unwrap();
    let request = jsonrpc::Request {
        version: Version::V2,
        id: Id::Int(1),
        call: call.clone(),
    };
    let mut out = Vec::new();
    jsonrpc::encode_request(&request, &mut out);
    let back = jsonrpc::decode_request(&out, &Limits::default()).unwrap();
    assert_eq!(
        back.call.params[1].get("memory_static_max"),
        Some(&Value::Int(4_294_967_296))
    );
    assert_eq!(
        back.call.params[1].get("HVM_shadow_multiplier"),
        Some(&Value::Double(1.0))
    );
    assert_eq!(back.call.method, call.method);
}
