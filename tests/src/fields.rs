//! Typed field reads for system tests: `VM.get_power_state` as a `String`, ints that travel as
//! decimal strings in XML-RPC as `i64`, and string arrays.
use crate::{s, Api, Value};

/// `<class>.get_<name>(r)`.
pub fn field(api: &mut Api, class: &str, r: &str, name: &str) -> Value {
    api.ok(&format!("{class}.get_{name}"), vec![s(r)])
}

/// A string field.
pub fn text(api: &mut Api, class: &str, r: &str, name: &str) -> String {
    match field(api, class, r, name) {
        Value::String(t) => t,
        other => panic!("{class}.{name}: {other:?}"),
    }
}

/// An int field (decimal text or an int on the wire).
pub fn int(api: &mut Api, class: &str, r: &str, name: &str) -> i64 {
    match field(api, class, r, name) {
        Value::Int(n) => n,
        Value::String(t) => t.parse().expect("int as string"),
        other => panic!("{class}.{name}: {other:?}"),
    }
}

/// A bool field.
pub fn boolean(api: &mut Api, class: &str, r: &str, name: &str) -> bool {
    match field(api, class, r, name) {
        Value::Bool(b) => b,
        other => panic!("{class}.{name}: {other:?}"),
    }
}

/// The strings of an array value.
pub fn strings(v: Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .map(|x| x.as_str().unwrap_or_default().to_owned())
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}
