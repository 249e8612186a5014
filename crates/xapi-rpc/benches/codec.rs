//! Codec throughput: decode and encode of one 20-field record and of a 1,000-record map, over
//! XML-RPC and JSON-RPC. A dependency-free harness (`harness = false`): each case runs for
//! about half a second and prints the mean time per operation.
//!
//! Run with `cargo bench -p xapi-rpc` (optionally a filter word, e.g. `cargo bench -p
//! xapi-rpc -- json`). With `XAPI_RPC_BENCH_ITERS=n` each case instead runs exactly `n` times
//! and prints no timing, for instruction counts under `perf stat` on a busy machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use xapi_rpc::jsonrpc::{self, Id, Version};
use xapi_rpc::{xmlrpc, Call, Limits, Value};

/// A VM-record-like struct with 20 fields of every common shape.
fn record(i: usize) -> Value {
    let s = |text: String| Value::String(text);
    Value::Struct(vec![
        (
            "uuid".into(),
            s(format!("6c1f7c1a-3a59-4d8c-9d47-5e6f{i:08}")),
        ),
        ("name_label".into(), s(format!("web{i:04} <prod> & co"))),
        ("name_description".into(), s(String::new())),
        ("power_state".into(), s("Halted".into())),
        ("user_version".into(), Value::Int(1)),
        ("is_a_template".into(), Value::Bool(false)),
        ("is_control_domain".into(), Value::Bool(false)),
        ("resident_on".into(), s("OpaqueRef:NULL".into())),
        ("memory_static_max".into(), Value::Int(4_294_967_296)),
        ("memory_dynamic_min".into(), Value::Int(1_073_741_824)),
        ("VCPUs_max".into(), Value::Int(2)),
        ("HVM_shadow_multiplier".into(), Value::Double(1.0)),
        (
            "snapshot_time".into(),
            Value::DateTime("19700101T00:00:00Z".into()),
        ),
        (
            "allowed_operations".into(),
            Value::Array(vec![
                s("start".into()),
                s("clone".into()),
                s("destroy".into()),
            ]),
        ),
        ("current_operations".into(), Value::Struct(Vec::new())),
        (
            "VBDs".into(),
            Value::Array(vec![
                s(format!("OpaqueRef:1c2d0000-0000-4000-8000-{i:012}")),
                s(format!("OpaqueRef:1c2d0000-0000-4001-8000-{i:012}")),
            ]),
        ),
        ("VIFs".into(), Value::Array(Vec::new())),
        (
            "other_config".into(),
            Value::Struct(vec![
                ("folder".into(), s("/prod".into())),
                ("base_template_name".into(), s("Other install media".into())),
            ]),
        ),
        (
            "VCPUs_params".into(),
            Value::Struct(vec![("weight".into(), s("256".into()))]),
        ),
        ("tags".into(), Value::Array(vec![s("web".into())])),
    ])
}

/// `VM.get_all_records`: a map from ref to record.
fn record_map(n: usize) -> Value {
    Value::Struct(
        (0..n)
            .map(|i| {
                (
                    format!("OpaqueRef:0d7e3b44-2f6a-4c1e-8b9d-{i:012}"),
                    record(i),
                )
            })
            .collect(),
    )
}

/// Runs `op` repeatedly for about `budget` and prints the mean time per call.
fn bench(filter: &Option<String>, name: &str, bytes: usize, mut op: impl FnMut()) {
    if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
        return;
    }
    // A fixed iteration count (for `perf stat` and other load-independent counters).
    if let Some(iterations) = std::env::var("XAPI_RPC_BENCH_ITERS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        for _ in 0..iterations {
            op();
        }
        println!("{name:<40} {iterations} iterations");
        return;
    }
    let budget = Duration::from_millis(500);
    // Warm up and size the batch so that timing overhead is negligible.
    let start = Instant::now();
    let mut batch = 0u64;
    while start.elapsed() < budget / 10 {
        op();
        batch += 1;
    }
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < budget {
        for _ in 0..batch {
            op();
        }
        runs += batch;
    }
    let per_op = start.elapsed().as_secs_f64() / runs as f64;
    let rate = bytes as f64 / per_op / 1e6;
    let time = if per_op < 1e-3 {
        format!("{:9.2} µs", per_op * 1e6)
    } else {
        format!("{:9.2} ms", per_op * 1e3)
    };
    println!("{name:<40} {time}   {bytes:>9} B   {rate:8.1} MB/s");
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a name filter.
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with("--"));
    let limits = Limits::default();
    let cases = [
        ("record", record(1)),
        ("map of 1000 records", record_map(1000)),
    ];
    for (label, value) in &cases {
        let mut xml = Vec::new();
        xmlrpc::encode_success(value, &mut xml);
        let mut json = Vec::new();
        jsonrpc::encode_success(Version::V1, &Id::Int(1), value, &mut json);

        bench(
            &filter,
            &format!("reference: quick-xml events {label}"),
            xml.len(),
            || {
                let mut reader = quick_xml::Reader::from_reader(black_box(&xml[..]));
                let mut events = 0usize;
                while !matches!(
                    reader.read_event(),
                    Ok(quick_xml::events::Event::Eof) | Err(_)
                ) {
                    events += 1;
                }
                black_box(events);
            },
        );
        bench(
            &filter,
            &format!("reference: serde_json::Value {label}"),
            json.len(),
            || {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(&json)).ok());
            },
        );
        let mut out = Vec::with_capacity(xml.len());
        bench(
            &filter,
            &format!("xml encode_success {label}"),
            xml.len(),
            || {
                out.clear();
                xmlrpc::encode_success(black_box(value), &mut out);
                black_box(&out);
            },
        );
        bench(
            &filter,
            &format!("xml decode_response {label}"),
            xml.len(),
            || {
                black_box(xmlrpc::decode_response(black_box(&xml), &limits).ok());
            },
        );
        bench(
            &filter,
            &format!("xml decode+encode {label}"),
            xml.len(),
            || {
                if let Ok(xapi_rpc::Response::Success(v)) = xmlrpc::decode_response(&xml, &limits) {
                    out.clear();
                    xmlrpc::encode_success(&v, &mut out);
                }
                black_box(&out);
            },
        );
        let mut out = Vec::with_capacity(json.len());
        bench(
            &filter,
            &format!("json encode_success {label}"),
            json.len(),
            || {
                out.clear();
                jsonrpc::encode_success(Version::V1, &Id::Int(1), black_box(value), &mut out);
                black_box(&out);
            },
        );
        bench(
            &filter,
            &format!("json decode_response {label}"),
            json.len(),
            || {
                black_box(jsonrpc::decode_response(black_box(&json), &limits).ok());
            },
        );
        bench(
            &filter,
            &format!("json decode+encode {label}"),
            json.len(),
            || {
                if let Ok(xapi_rpc::Response::Success(v)) = jsonrpc::decode_response(&json, &limits)
                {
                    out.clear();
                    jsonrpc::encode_success(Version::V1, &Id::Int(1), &v, &mut out);
                }
                black_box(&out);
            },
        );
    }

    // A typical small request: VM.start over both protocols.
    let call = Call::new(
        "VM.start",
        vec![
            Value::from("OpaqueRef:5b2c0c9e-7d1a-4a63-9e0e-111111111111"),
            Value::from("OpaqueRef:0d7e3b44-2f6a-4c1e-8b9d-222222222222"),
            Value::Bool(false),
            Value::Bool(false),
        ],
    );
    let mut xml = Vec::new();
    xmlrpc::encode_call(&call, &mut xml);
    bench(&filter, "xml decode_call VM.start", xml.len(), || {
        black_box(xmlrpc::decode_call(black_box(&xml), &limits).ok());
    });
    let request = jsonrpc::Request {
        version: Version::V2,
        id: Id::Int(7),
        call,
    };
    let mut json = Vec::new();
    jsonrpc::encode_request(&request, &mut json);
    bench(&filter, "json decode_request VM.start", json.len(), || {
        black_box(jsonrpc::decode_request(black_box(&json), &limits).ok());
    });
}
