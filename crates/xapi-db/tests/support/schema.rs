//! A small datamodel shared by the crate tests and the bench: `host(uuid, name_label, VMs,
//! memory, other_config)`, `VM(uuid, name_label, resident_on, tags, power_state, f0..fN)`.

use xapi_db::{ColumnKind, ColumnSchema, Relation, Schema, TableSchema};
use xapi_rpc::Value;

fn column(name: &str, kind: ColumnKind) -> ColumnSchema {
    let default = match kind {
        ColumnKind::Int => Value::Int(0),
        ColumnKind::Float => Value::Double(0.0),
        ColumnKind::Bool => Value::Bool(false),
        ColumnKind::Set => Value::Array(Vec::new()),
        ColumnKind::Map => Value::Struct(Vec::new()),
        ColumnKind::DateTime => Value::DateTime("19700101T00:00:00Z".into()),
        ColumnKind::Ref { .. } => Value::String("OpaqueRef:NULL".into()),
        _ => Value::String(String::new()),
    };
    ColumnSchema {
        name: name.into(),
        kind,
        default,
    }
}

/// The schema with `extra` filler columns on `VM` (cycling through every kind).
pub fn schema(extra: usize) -> Schema {
    let kinds = [
        ColumnKind::String,
        ColumnKind::Int,
        ColumnKind::Float,
        ColumnKind::Bool,
        ColumnKind::DateTime,
        ColumnKind::Map,
        ColumnKind::Set,
        ColumnKind::Enum,
    ];
    let mut vm = vec![
        column("uuid", ColumnKind::String),
        column("name_label", ColumnKind::String),
        column(
            "resident_on",
            ColumnKind::Ref {
                table: "host".into(),
            },
        ),
        column("tags", ColumnKind::Set),
        column("power_state", ColumnKind::Enum),
    ];
    for i in 0..extra {
        vm.push(column(&format!("f{i}"), kinds[i % kinds.len()].clone()));
    }
    Schema {
        tables: vec![
            TableSchema {
                name: "host".into(),
                columns: vec![
                    column("uuid", ColumnKind::String),
                    column("name_label", ColumnKind::String),
                    column("VMs", ColumnKind::Set),
                    column("memory", ColumnKind::Int),
                    column("other_config", ColumnKind::Map),
                ],
            },
            TableSchema {
                name: "VM".into(),
                columns: vm,
            },
        ],
        relations: vec![Relation {
            one: ("VM".into(), "resident_on".into()),
            many: ("host".into(), "VMs".into()),
        }],
    }
}

/// A VM row for `schema(extra)`: filler columns get non-default values.
pub fn vm_row(schema: &Schema, i: usize, host: &str) -> Vec<Value> {
    schema.tables[1]
        .columns
        .iter()
        .map(|c| match c.name.as_str() {
            "uuid" => Value::String(format!("uuid-{i}")),
            "name_label" => Value::String(format!("vm {i}")),
            "resident_on" => Value::String(host.into()),
            "tags" => Value::Array(vec![Value::String("t".into())]),
            "power_state" => Value::String("Halted".into()),
            _ => match c.kind {
                ColumnKind::Int => Value::Int(i as i64),
                ColumnKind::Float => Value::Double(i as f64 / 4.0),
                ColumnKind::Bool => Value::Bool(i % 2 == 0),
                ColumnKind::DateTime => Value::DateTime("20240131T09:05:00Z".into()),
                ColumnKind::Map => Value::Struct(vec![("k".into(), Value::String(format!("{i}")))]),
                ColumnKind::Set => Value::Array(vec![Value::String("x".into())]),
                _ => Value::String(format!("value {i} of {}", c.name)),
            },
        })
        .collect()
}

/// A host row.
pub fn host_row(i: usize) -> Vec<Value> {
    vec![
        Value::String(format!("host-uuid-{i}")),
        Value::String(format!("host {i}")),
        Value::Array(Vec::new()),
        Value::Int(1 << 30),
        Value::Struct(Vec::new()),
    ]
}
