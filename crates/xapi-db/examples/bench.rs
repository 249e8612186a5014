//! Rough figures for the object store: `cargo run --release -p xapi-db --example bench`.
//!
//! 10,000 inserts of a 90-column row, each in its own write transaction, into a SQLite file in a
//! temporary directory; then `get` of one row, `rows()` of the table, a filter, `changes_since`
//! with a recent token, a `set_field`, and reopening (load) time.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/schema.rs"]
mod support;

use std::time::Instant;

use xapi_db::{Db, Expr};

const VM: usize = 1;
const ROWS: usize = 10_000;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    // Five named columns plus 85 fillers: 90 columns.
    let schema = support::schema(85);
    let db = Db::open(&path, schema.clone()).unwrap();
    db.write(|txn| txn.insert(0, "OpaqueRef:host", support::host_row(0)))
        .unwrap();
    let rows: Vec<_> = (0..ROWS)
        .map(|i| {
            support::vm_row(
                &schema,
                i,
                if std::env::var("NOREL").is_ok() {
                    "OpaqueRef:NULL"
                } else {
                    "OpaqueRef:host"
                },
            )
        })
        .collect();

    let start = Instant::now();
    for (i, row) in rows.into_iter().enumerate() {
        db.write(|txn| txn.insert(VM, &format!("OpaqueRef:vm-{i:05}"), row))
            .unwrap();
    }
    let elapsed = start.elapsed();
    println!(
        "insert: {ROWS} rows x 90 columns, one transaction each: {:.2?} ({:.1} us/txn)",
        elapsed,
        elapsed.as_secs_f64() * 1e6 / ROWS as f64
    );

    let n = 1_000_000;
    let start = Instant::now();
    let mut hits = 0;
    for i in 0..n {
        if db
            .get(VM, &format!("OpaqueRef:vm-{:05}", i % ROWS))
            .is_some()
        {
            hits += 1;
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(hits, n);
    println!(
        "get: {:.3} us per call (incl. formatting the ref)",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );

    let start = Instant::now();
    let iterations = 100;
    for _ in 0..iterations {
        assert_eq!(db.rows(VM).len(), ROWS);
    }
    println!(
        "rows(): {:.2?} per call for {ROWS} rows",
        start.elapsed() / iterations
    );

    let expr =
        Expr::parse(r#"field "name__label" = "vm 77" or field "power_state" = "Running""#).unwrap();
    let start = Instant::now();
    let found = db.filter(VM, &expr);
    println!(
        "filter: {:.2?} over {ROWS} rows ({} match)",
        start.elapsed(),
        found.len()
    );

    let token = db.generation();
    for i in 0..10 {
        db.write(|txn| txn.set_field(VM, &format!("OpaqueRef:vm-{i:05}"), 1, "renamed".into()))
            .unwrap();
    }
    let start = Instant::now();
    let changes = db.changes_since(token, 0);
    println!(
        "changes_since (recent token, {} changes): {:.2?}",
        changes.items.len(),
        start.elapsed()
    );

    let start = Instant::now();
    let n = 2_000;
    for i in 0..n {
        db.write(|txn| txn.set_field(VM, "OpaqueRef:vm-00001", 5, format!("v{i}").into()))
            .unwrap();
    }
    println!(
        "set_field: {:.1} us per transaction",
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    );

    drop(db);
    let start = Instant::now();
    let db = Db::open(&path, schema).unwrap();
    println!(
        "reopen (load {} rows): {:.2?}",
        db.count(VM),
        start.elapsed()
    );
}
