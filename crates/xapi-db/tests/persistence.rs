//! Reopening a SQLite file: rows, generations, tombstones, relations, reconciliation of a grown
//! schema, migrations, and refusal of corrupt or newer files.
#![allow(clippy::unwrap_used)]

#[path = "support/schema.rs"]
mod support;

use std::path::Path;

use xapi_db::{
    ChangeOp, ColumnKind, ColumnSchema, Db, DbError, DbOptions, TableSchema, SCHEMA_VERSION,
};
use xapi_rpc::Value;

const HOST: usize = 0;
const VM: usize = 1;

fn populate(path: &Path) -> u64 {
    let schema = support::schema(8);
    let db = Db::open(path, schema.clone()).unwrap();
    db.write(|txn| txn.insert(HOST, "OpaqueRef:h0", support::host_row(0)))
        .unwrap();
    for i in 0..5 {
        db.write(|txn| {
            txn.insert(
                VM,
                &format!("OpaqueRef:v{i}"),
                support::vm_row(&schema, i, "OpaqueRef:h0"),
            )
        })
        .unwrap();
    }
    db.write(|txn| txn.map_add(HOST, "OpaqueRef:h0", 4, "k", "v".into()))
        .unwrap();
    db.write(|txn| txn.delete(VM, "OpaqueRef:v1")).unwrap();
    db.generation()
}

#[test]
fn reopen_finds_rows_generations_relations_and_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let schema = support::schema(8);
    let generation = populate(&path);
    let db = Db::open(&path, schema.clone()).unwrap();
    assert_eq!(db.generation(), generation);
    assert_eq!(db.count(VM), 4);
    assert_eq!(
        db.get(VM, "OpaqueRef:v3").unwrap().as_slice(),
        support::vm_row(&schema, 3, "OpaqueRef:h0").as_slice()
    );
    assert_eq!(
        db.ref_by_uuid(VM, "uuid-4").as_deref(),
        Some("OpaqueRef:v4")
    );
    assert_eq!(db.refs_by_name_label(VM, "vm 2"), vec!["OpaqueRef:v2"]);
    assert_eq!(
        db.get_field(HOST, "OpaqueRef:h0", 4),
        Some(Value::Struct(vec![("k".into(), "v".into())]))
    );
    // The derived set is rebuilt in creation order, without the deleted VM.
    let members: Vec<Value> = [
        "OpaqueRef:v0",
        "OpaqueRef:v2",
        "OpaqueRef:v3",
        "OpaqueRef:v4",
    ]
    .into_iter()
    .map(Value::from)
    .collect();
    assert_eq!(
        db.get_field(HOST, "OpaqueRef:h0", 2),
        Some(Value::Array(members))
    );
    // The tombstone survived: a token from before the deletion sees it.
    let changes = db.changes_since(generation - 2, 0);
    assert!(!changes.lost);
    let del: Vec<_> = changes
        .items
        .iter()
        .filter(|c| c.op == ChangeOp::Del)
        .collect();
    assert_eq!(del.len(), 1);
    assert_eq!(del[0].r#ref, "OpaqueRef:v1");
    assert_eq!(del[0].row[1], Value::from("vm 1"));
    // Created and modified generations survived.
    let gens = db.read(|v| v.generations(VM, "OpaqueRef:v0")).unwrap();
    assert_eq!(gens.0, 2);
    // New writes continue from the persisted generation.
    db.write(|txn| txn.touch(VM, "OpaqueRef:v0")).unwrap();
    assert_eq!(db.generation(), generation + 1);
}

#[test]
fn evicted_tombstones_stay_lost_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let schema = support::schema(0);
    let options = DbOptions {
        tombstone_limit: 1,
        ..DbOptions::default()
    };
    {
        let db = Db::open_with(Some(&path), schema.clone(), options.clone()).unwrap();
        for i in 0..3 {
            db.write(|txn| txn.insert(HOST, &format!("h{i}"), support::host_row(i)))
                .unwrap();
        }
        for i in 0..3 {
            db.write(|txn| txn.delete(HOST, &format!("h{i}"))).unwrap();
        }
    }
    let db = Db::open_with(Some(&path), schema, options).unwrap();
    assert!(db.changes_since(3, 0).lost);
    let recent = db.changes_since(5, 0);
    assert!(!recent.lost);
    assert_eq!(recent.items.len(), 1);
    assert_eq!(recent.items[0].r#ref, "h2");
}

#[test]
fn added_column_and_table_are_reconciled_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    populate(&path);
    let mut grown = support::schema(8);
    grown.tables[VM].columns.push(ColumnSchema {
        name: "new_field".into(),
        kind: ColumnKind::Int,
        default: Value::Int(7),
    });
    grown.tables[HOST].columns.push(ColumnSchema {
        name: "new_map".into(),
        kind: ColumnKind::Map,
        default: Value::Struct(vec![("a".into(), "b".into())]),
    });
    grown.tables.push(TableSchema {
        name: "pool".into(),
        columns: vec![ColumnSchema {
            name: "uuid".into(),
            kind: ColumnKind::String,
            default: Value::String(String::new()),
        }],
    });
    let db = Db::open(&path, grown.clone()).unwrap();
    let c = db.column_id(VM, "new_field").unwrap();
    assert_eq!(db.get_field(VM, "OpaqueRef:v0", c), Some(Value::Int(7)));
    let m = db.column_id(HOST, "new_map").unwrap();
    assert_eq!(
        db.get_field(HOST, "OpaqueRef:h0", m),
        Some(Value::Struct(vec![("a".into(), "b".into())]))
    );
    let pool = db.table_id("pool").unwrap();
    db.write(|txn| txn.insert(pool, "p", vec!["pu".into()]))
        .unwrap();
    drop(db);
    let db = Db::open(&path, grown).unwrap();
    assert_eq!(db.count(pool), 1);
    assert_eq!(db.count(VM), 4);
}

#[test]
fn corrupt_value_is_an_error_with_context() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    populate(&path);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE \"VM\" SET \"f1\" = 'not a number' WHERE ref = 'OpaqueRef:v2'",
            [],
        )
        .unwrap();
    }
    match Db::open(&path, support::schema(8)) {
        Err(DbError::Corrupt {
            table,
            r#ref,
            column,
            ..
        }) => {
            assert_eq!(
                (table.as_str(), r#ref.as_str(), column.as_str()),
                ("VM", "OpaqueRef:v2", "f1")
            );
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("corrupt file opened"),
    }
}

#[test]
fn corrupt_json_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    populate(&path);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE \"VM\" SET \"tags\" = '[\"a\",' WHERE ref = 'OpaqueRef:v0'",
            [],
        )
        .unwrap();
    }
    assert!(matches!(
        Db::open(&path, support::schema(8)),
        Err(DbError::Corrupt { column, .. }) if column == "tags"
    ));
}

#[test]
fn newer_file_is_refused_and_older_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    populate(&path);
    let set_version = |v: i64| {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE _meta SET value = ?1 WHERE key = 'schema_version'",
            [v],
        )
        .unwrap();
    };
    set_version(i64::from(SCHEMA_VERSION) + 1);
    assert!(matches!(
        Db::open(&path, support::schema(8)),
        Err(DbError::TooNew { .. })
    ));
    set_version(0);
    let db = Db::open(&path, support::schema(8)).unwrap();
    assert_eq!(db.count(VM), 4);
    drop(db);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row(
            "SELECT value FROM _meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, i64::from(SCHEMA_VERSION));
    let fingerprint: String = conn
        .query_row(
            "SELECT value FROM _meta WHERE key = 'schema_fingerprint'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        fingerprint,
        xapi_db::schema_fingerprint(&support::schema(8))
    );
}

#[test]
fn file_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    populate(&path);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}
