//! Write-through persistence: the SQLite layout, open/migrate/reconcile, load, and the commit of
//! one write transaction. The only module that speaks SQL.
//!
//! Layout: one table per class, named by its wire name (quoted), with `ref TEXT PRIMARY KEY,
//! _created INTEGER, _modified INTEGER` and one column per non-derived field (TEXT for
//! String/Enum/Ref/DateTime, INTEGER for Int/Bool, REAL for Float, TEXT holding
//! [`crate::json`] for Set/Map/Other). `_meta(key, value)` holds `schema_version`,
//! `generation`, `tombstone_floor` and `schema_fingerprint`; `_deleted` the tombstones.
//!
//! Durability: WAL with `synchronous=NORMAL` survives the process being killed (the WAL is
//! written before COMMIT returns) but a power loss may drop the last transactions; use
//! [`Synchronous::Full`] for power-loss durability.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use xapi_rpc::Value;

use crate::error::DbError;
use crate::json;
use crate::schema::{schema_fingerprint, ColumnKind, Schema, SchemaInfo, TableId, SCHEMA_VERSION};
use crate::state::{Entry, LogItem, State, Tombstone};
use crate::Row;

/// Migrations by number, applied in order to files with an older `schema_version`.
pub const MIGRATIONS: &[(u32, &str)] = &[(1, include_str!("../migrations/001_initial.sql"))];

/// SQLite `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// Survives the process being killed; a power loss may lose the last commits (default).
    Normal,
    /// Also survives power loss, at the cost of an fsync per commit.
    Full,
}

/// When a [`crate::Db::write`] reaches SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every write commits its own SQLite transaction before it returns (default).
    Immediate,
    /// Writes are applied in memory and queued; [`crate::Db::sync`] commits everything queued
    /// in one SQLite transaction (group commit), and a background flusher commits what nobody
    /// synced within about `flush_window`. The daemon syncs before it answers each call, so an
    /// acknowledged call is still durable, at one commit per call instead of one per write.
    Deferred {
        /// How long the background flusher lets writes gather before committing them.
        flush_window: Duration,
    },
}

/// How a database is opened.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// `PRAGMA synchronous`.
    pub synchronous: Synchronous,
    /// `PRAGMA busy_timeout` (another process holding the file).
    pub busy_timeout: Duration,
    /// How many deletions are remembered for `changes_since`.
    pub tombstone_limit: usize,
    /// Whether writes commit one by one or in groups.
    pub durability: Durability,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            tombstone_limit: 16_384,
            durability: Durability::Immediate,
        }
    }
}

/// Quotes an SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sql_type(kind: &ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Int | ColumnKind::Bool => "INTEGER",
        ColumnKind::Float => "REAL",
        _ => "TEXT",
    }
}

/// Precomputed SQL for one table.
#[derive(Debug)]
struct TableSql {
    /// Persisted (non-derived) columns, in schema order.
    persisted: Vec<usize>,
    insert: String,
    delete: String,
}

/// WAL pages (4 KiB each) after which a commit checkpoints the WAL into the database file.
const WAL_CHECKPOINT_PAGES: u32 = 4000;

/// The open SQLite file (or in-memory database).
pub(crate) struct Store {
    conn: Connection,
    tables: Vec<TableSql>,
}

/// One row change of a commit.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Insert {
        table: TableId,
        r: String,
        entry: Entry,
    },
    Update {
        table: TableId,
        r: String,
        old: Row,
        entry: Entry,
    },
    Delete {
        table: TableId,
        r: String,
        gen: u64,
        tombstone: Tombstone,
    },
}

/// What one write transaction commits.
#[derive(Debug, Default, Clone)]
pub(crate) struct Plan {
    pub ops: Vec<Op>,
    pub generation: u64,
    /// New tombstone floor, when old tombstones are evicted.
    pub new_floor: Option<u64>,
    /// Change-log keys of the touched rows' previous states.
    pub stale: Vec<crate::state::LogKey>,
}

/// One row change as a group commit writes it: borrowed from the plans.
#[derive(Debug, Clone, Copy)]
enum Staged<'a> {
    Insert {
        table: TableId,
        r: &'a str,
        entry: &'a Entry,
    },
    Update {
        table: TableId,
        r: &'a str,
        /// The row as SQLite has it before this commit.
        old: &'a Row,
        entry: &'a Entry,
    },
    Delete {
        table: TableId,
        r: &'a str,
        gen: u64,
        tombstone: &'a Tombstone,
    },
}

/// The row changes of `plans` with each row written once: an insert or update followed by
/// updates of the same row becomes one insert or update of its final state (diffed against
/// what SQLite holds), and a deletion drops the earlier changes of the row it deletes (the
/// tombstone is still written). A row deleted and made again keeps both, in order.
fn coalesce(plans: &[Plan]) -> Vec<Staged<'_>> {
    let mut out: Vec<Option<Staged<'_>>> = Vec::new();
    // Where the pending insert or update of a live row is.
    let mut live: HashMap<(TableId, &str), usize> = HashMap::new();
    for op in plans.iter().flat_map(|p| &p.ops) {
        match op {
            Op::Insert { table, r, entry } => {
                live.insert((*table, r.as_str()), out.len());
                out.push(Some(Staged::Insert {
                    table: *table,
                    r,
                    entry,
                }));
            }
            Op::Update {
                table,
                r,
                old,
                entry,
            } => {
                let key = (*table, r.as_str());
                let merged = match live.get(&key).and_then(|&i| out[i].as_mut()) {
                    Some(Staged::Insert { entry: e, .. } | Staged::Update { entry: e, .. }) => {
                        *e = entry;
                        true
                    }
                    _ => false,
                };
                if !merged {
                    live.insert(key, out.len());
                    out.push(Some(Staged::Update {
                        table: *table,
                        r,
                        old,
                        entry,
                    }));
                }
            }
            Op::Delete {
                table,
                r,
                gen,
                tombstone,
            } => {
                if let Some(i) = live.remove(&(*table, r.as_str())) {
                    out[i] = None;
                }
                out.push(Some(Staged::Delete {
                    table: *table,
                    r,
                    gen: *gen,
                    tombstone,
                }));
            }
        }
    }
    out.into_iter().flatten().collect()
}

/// Converts a value to what is bound for a column of this kind.
fn to_sql<'a>(kind: &ColumnKind, value: &'a Value) -> ToSqlOutput<'a> {
    match (kind, value) {
        (
            ColumnKind::String | ColumnKind::Enum | ColumnKind::Ref { .. } | ColumnKind::DateTime,
            Value::String(s) | Value::DateTime(s),
        ) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        (ColumnKind::Int, Value::Int(i)) => ToSqlOutput::from(*i),
        (ColumnKind::Bool, Value::Bool(b)) => ToSqlOutput::from(i64::from(*b)),
        (ColumnKind::Float, Value::Double(f)) => ToSqlOutput::from(*f),
        // Set, Map, Other; values are checked on write, so any other pairing is stored as JSON
        // and reported as corrupt on load rather than lost.
        _ => ToSqlOutput::from(json::to_json(value)),
    }
}

/// Converts a stored SQLite value back; the error says what was wrong.
fn from_sql(kind: &ColumnKind, raw: ValueRef<'_>) -> Result<Value, String> {
    let text = |raw: ValueRef<'_>| -> Result<String, String> {
        match raw {
            ValueRef::Text(bytes) => {
                String::from_utf8(bytes.to_vec()).map_err(|_| "text is not UTF-8".into())
            }
            other => Err(format!("expected text, found {:?}", other.data_type())),
        }
    };
    match kind {
        ColumnKind::String | ColumnKind::Enum | ColumnKind::Ref { .. } => {
            text(raw).map(Value::String)
        }
        ColumnKind::DateTime => text(raw).map(Value::DateTime),
        ColumnKind::Int => match raw {
            ValueRef::Integer(i) => Ok(Value::Int(i)),
            other => Err(format!("expected integer, found {:?}", other.data_type())),
        },
        ColumnKind::Bool => match raw {
            ValueRef::Integer(0) => Ok(Value::Bool(false)),
            ValueRef::Integer(1) => Ok(Value::Bool(true)),
            other => Err(format!("expected 0 or 1, found {other:?}")),
        },
        ColumnKind::Float => match raw {
            ValueRef::Real(f) => Ok(Value::Double(f)),
            // REAL affinity may hand back integral values as integers.
            ValueRef::Integer(i) => Ok(Value::Double(i as f64)),
            other => Err(format!("expected real, found {:?}", other.data_type())),
        },
        ColumnKind::Set | ColumnKind::Map | ColumnKind::Other => {
            let value = json::from_json(&text(raw)?)?;
            match (kind, &value) {
                (ColumnKind::Set, Value::Array(_))
                | (ColumnKind::Map, Value::Struct(_))
                | (ColumnKind::Other, _) => Ok(value),
                _ => Err(format!("expected {}, found {}", kind.name(), value.kind())),
            }
        }
    }
}

fn meta_int(conn: &Connection, key: &str) -> Result<Option<u64>, DbError> {
    let raw: Option<i64> = conn
        .query_row("SELECT value FROM _meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()
        .map_err(|e| DbError::Corrupt {
            table: "_meta".into(),
            r#ref: key.into(),
            column: "value".into(),
            reason: e.to_string(),
        })?;
    match raw {
        None => Ok(None),
        Some(v) => u64::try_from(v).map(Some).map_err(|_| DbError::Corrupt {
            table: "_meta".into(),
            r#ref: key.into(),
            column: "value".into(),
            reason: format!("negative value {v}"),
        }),
    }
}

fn set_meta(conn: &Connection, key: &str, value: &dyn rusqlite::ToSql) -> Result<(), DbError> {
    conn.prepare_cached("INSERT OR REPLACE INTO _meta (key, value) VALUES (?1, ?2)")?
        .execute(rusqlite::params![key, value])?;
    Ok(())
}

fn gen_to_sql(gen: u64) -> i64 {
    // Generations start at 0 and grow by one per change; i64 is never exceeded in practice.
    i64::try_from(gen).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens (creating or migrating) the database and loads everything into memory.
    pub fn open(
        path: Option<&Path>,
        schema: &Schema,
        info: &SchemaInfo,
        options: &DbOptions,
    ) -> Result<(Store, State), DbError> {
        let mut conn = match path {
            Some(path) => Connection::open(path)?,
            None => Connection::open_in_memory()?,
        };
        conn.busy_timeout(options.busy_timeout)?;
        // journal_mode answers with a row, so it is queried rather than executed.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        let sync = match options.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        // Checkpoints (which copy the WAL into the file and sync it) every WAL_CHECKPOINT_PAGES
        // rather than SQLite's 1000: the same hot pages are copied once per checkpoint, so
        // fewer checkpoints write and sync less. Commits are as durable either way.
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = OFF; \
             PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES};"
        ))?;
        conn.set_prepared_statement_cache_capacity(1024);

        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = tx.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_meta'",
            [],
            |row| row.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if exists {
            let version = meta_int(&tx, "schema_version")?.unwrap_or(0);
            let version = u32::try_from(version).unwrap_or(u32::MAX);
            if version > SCHEMA_VERSION {
                return Err(DbError::TooNew {
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
            for (number, sql) in MIGRATIONS {
                if *number > version {
                    tx.execute_batch(sql)?;
                    set_meta(&tx, "schema_version", number)?;
                }
            }
        } else {
            tx.execute_batch(
                "CREATE TABLE _meta (key TEXT PRIMARY KEY, value);
                 CREATE TABLE _deleted (gen INTEGER PRIMARY KEY, tbl TEXT NOT NULL,
                     ref TEXT NOT NULL, created INTEGER NOT NULL, snapshot TEXT NOT NULL);",
            )?;
            set_meta(&tx, "schema_version", &SCHEMA_VERSION)?;
            set_meta(&tx, "generation", &0i64)?;
            set_meta(&tx, "tombstone_floor", &0i64)?;
        }
        reconcile(&tx, schema, info)?;
        set_meta(&tx, "schema_fingerprint", &schema_fingerprint(schema))?;
        tx.commit()?;

        let tables = schema
            .tables
            .iter()
            .zip(&info.tables)
            .map(|(table, tinfo)| {
                let persisted: Vec<usize> = (0..table.columns.len())
                    .filter(|c| !tinfo.derived[*c])
                    .collect();
                let mut names = vec![quote("ref"), quote("_created"), quote("_modified")];
                names.extend(persisted.iter().map(|c| quote(&table.columns[*c].name)));
                let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
                TableSql {
                    insert: format!(
                        "INSERT INTO {} ({}) VALUES ({})",
                        quote(&table.name),
                        names.join(", "),
                        marks.join(", ")
                    ),
                    delete: format!("DELETE FROM {} WHERE \"ref\" = ?1", quote(&table.name)),
                    persisted,
                }
            })
            .collect();
        let store = Store { conn, tables };
        let state = store.load(schema, info)?;
        Ok((store, state))
    }

    /// Reads every table, the generation and the tombstones.
    fn load(&self, schema: &Schema, info: &SchemaInfo) -> Result<State, DbError> {
        let mut state = State::new(&info.tables);
        state.generation = meta_int(&self.conn, "generation")?.unwrap_or(0);
        state.tombstone_floor = meta_int(&self.conn, "tombstone_floor")?.unwrap_or(0);
        for (t, table) in schema.tables.iter().enumerate() {
            let sql = &self.tables[t];
            let mut names = vec![quote("ref"), quote("_created"), quote("_modified")];
            names.extend(sql.persisted.iter().map(|c| quote(&table.columns[*c].name)));
            let mut stmt = self.conn.prepare(&format!(
                "SELECT {} FROM {}",
                names.join(", "),
                quote(&table.name)
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let corrupt = |r: &str, column: &str, reason: String| DbError::Corrupt {
                    table: table.name.clone(),
                    r#ref: r.to_owned(),
                    column: column.to_owned(),
                    reason,
                };
                let r: String = row.get(0).map_err(|e| corrupt("?", "ref", e.to_string()))?;
                let generation = |i: usize, name: &str| -> Result<u64, DbError> {
                    let v: i64 = row.get(i).map_err(|e| corrupt(&r, name, e.to_string()))?;
                    u64::try_from(v).map_err(|_| corrupt(&r, name, format!("negative {v}")))
                };
                let created = generation(1, "_created")?;
                let modified = generation(2, "_modified")?;
                let mut values: Vec<Value> = table
                    .columns
                    .iter()
                    .map(|c| {
                        if c.kind == ColumnKind::Set {
                            Value::Array(Vec::new())
                        } else {
                            Value::Nil
                        }
                    })
                    .collect();
                for (i, c) in sql.persisted.iter().enumerate() {
                    let column = &table.columns[*c];
                    let raw = row
                        .get_ref(i + 3)
                        .map_err(|e| corrupt(&r, &column.name, e.to_string()))?;
                    values[*c] = from_sql(&column.kind, raw)
                        .map_err(|reason| corrupt(&r, &column.name, reason))?;
                }
                state.log.insert((modified, t, r.clone()), LogItem::Live);
                state.tables[t].put(
                    &info.tables[t],
                    &r,
                    Some(Entry::new(Arc::new(values), created, modified)),
                );
            }
        }
        self.load_tombstones(schema, &mut state)?;
        Ok(state)
    }

    fn load_tombstones(&self, schema: &Schema, state: &mut State) -> Result<(), DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT gen, tbl, ref, created, snapshot FROM _deleted ORDER BY gen")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let corrupt = |column: &str, reason: String| DbError::Corrupt {
                table: "_deleted".into(),
                r#ref: row.get::<_, String>(2).unwrap_or_default(),
                column: column.into(),
                reason,
            };
            let gen: i64 = row.get(0).map_err(|e| corrupt("gen", e.to_string()))?;
            let table_name: String = row.get(1).map_err(|e| corrupt("tbl", e.to_string()))?;
            let r: String = row.get(2).map_err(|e| corrupt("ref", e.to_string()))?;
            let created: i64 = row.get(3).map_err(|e| corrupt("created", e.to_string()))?;
            let snapshot: String = row.get(4).map_err(|e| corrupt("snapshot", e.to_string()))?;
            // A tombstone of a class the schema no longer has cannot be reported; skip it.
            let Some(t) = schema.tables.iter().position(|x| x.name == table_name) else {
                continue;
            };
            let members = match json::from_json(&snapshot).map_err(|e| corrupt("snapshot", e))? {
                Value::Struct(members) => members,
                other => {
                    return Err(corrupt(
                        "snapshot",
                        format!("expected struct, found {}", other.kind()),
                    ))
                }
            };
            let values: Vec<Value> = schema.tables[t]
                .columns
                .iter()
                .map(|c| {
                    members
                        .iter()
                        .find(|(k, _)| *k == c.name)
                        .map_or_else(|| c.default.clone(), |(_, v)| v.clone())
                })
                .collect();
            let gen = u64::try_from(gen).map_err(|_| corrupt("gen", "negative".into()))?;
            let created =
                u64::try_from(created).map_err(|_| corrupt("created", "negative".into()))?;
            let key = (gen, t, r);
            state.tombstones.push_back(key.clone());
            state.log.insert(
                key,
                LogItem::Deleted(Tombstone {
                    created,
                    row: Arc::new(values),
                }),
            );
        }
        Ok(())
    }

    /// Writes the changes of one or more write transactions, in order, in one SQLite
    /// transaction: all of them or none. A row changed by several of them is written once,
    /// in its final state (see [`coalesce`]).
    pub fn commit(&mut self, schema: &Schema, plans: &[Plan]) -> Result<(), DbError> {
        let Some(last) = plans.last() else {
            return Ok(());
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for op in coalesce(plans) {
            Self::stage(&tx, schema, &self.tables, &op)?;
        }
        // Floors only grow, and every tombstone at or below the newest one is to go.
        if let Some(floor) = plans.iter().filter_map(|p| p.new_floor).max() {
            tx.prepare_cached("DELETE FROM _deleted WHERE gen <= ?1")?
                .execute([gen_to_sql(floor)])?;
            tx.prepare_cached("UPDATE _meta SET value = ?1 WHERE key = 'tombstone_floor'")?
                .execute([gen_to_sql(floor)])?;
        }
        tx.prepare_cached("UPDATE _meta SET value = ?1 WHERE key = 'generation'")?
            .execute([gen_to_sql(last.generation)])?;
        tx.commit()?;
        Ok(())
    }

    /// Stages one row change inside an open transaction.
    fn stage(
        tx: &rusqlite::Transaction<'_>,
        schema: &Schema,
        tables: &[TableSql],
        op: &Staged<'_>,
    ) -> Result<(), DbError> {
        match *op {
            Staged::Insert { table, r, entry } => {
                let sql = &tables[table];
                let columns = &schema.tables[table].columns;
                let mut params: Vec<ToSqlOutput<'_>> = Vec::with_capacity(sql.persisted.len() + 3);
                params.push(ToSqlOutput::Borrowed(ValueRef::Text(r.as_bytes())));
                params.push(ToSqlOutput::from(gen_to_sql(entry.created)));
                params.push(ToSqlOutput::from(gen_to_sql(entry.modified)));
                for c in &sql.persisted {
                    params.push(to_sql(&columns[*c].kind, &entry.row[*c]));
                }
                tx.prepare_cached(&sql.insert)?
                    .execute(params_from_iter(params))?;
            }
            Staged::Update {
                table,
                r,
                old,
                entry,
            } => {
                let sql = &tables[table];
                let columns = &schema.tables[table].columns;
                let mut text = format!(
                    "UPDATE {} SET \"_modified\" = ?1",
                    quote(&schema.tables[table].name)
                );
                let mut params: Vec<ToSqlOutput<'_>> =
                    vec![ToSqlOutput::from(gen_to_sql(entry.modified))];
                for c in &sql.persisted {
                    if old[*c] != entry.row[*c] {
                        params.push(to_sql(&columns[*c].kind, &entry.row[*c]));
                        text.push_str(&format!(
                            ", {} = ?{}",
                            quote(&columns[*c].name),
                            params.len()
                        ));
                    }
                }
                params.push(ToSqlOutput::Borrowed(ValueRef::Text(r.as_bytes())));
                text.push_str(&format!(" WHERE \"ref\" = ?{}", params.len()));
                tx.prepare_cached(&text)?
                    .execute(params_from_iter(params))?;
            }
            Staged::Delete {
                table,
                r,
                gen,
                tombstone,
            } => {
                tx.prepare_cached(&tables[table].delete)?.execute([r])?;
                let columns = &schema.tables[table].columns;
                let snapshot = Value::Struct(
                    columns
                        .iter()
                        .zip(tombstone.row.iter())
                        .map(|(c, v)| (c.name.clone(), v.clone()))
                        .collect(),
                );
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO _deleted (gen, tbl, ref, created, snapshot) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(rusqlite::params![
                    gen_to_sql(gen),
                    schema.tables[table].name,
                    r,
                    gen_to_sql(tombstone.created),
                    json::to_json(&snapshot)
                ])?;
            }
        }
        Ok(())
    }

    /// The connection, for tests that need to break things.
    #[cfg(test)]
    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// Creates missing tables and adds missing columns (filled with their default).
fn reconcile(conn: &Connection, schema: &Schema, info: &SchemaInfo) -> Result<(), DbError> {
    for (table, tinfo) in schema.tables.iter().zip(&info.tables) {
        let mut existing = HashSet::new();
        {
            let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote(&table.name)))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let name: String = row.get(1)?;
                existing.insert(name.to_ascii_lowercase());
            }
        }
        let persisted = table
            .columns
            .iter()
            .enumerate()
            .filter(|(c, _)| !tinfo.derived[*c]);
        if existing.is_empty() {
            let mut text = format!(
                "CREATE TABLE {} (\"ref\" TEXT PRIMARY KEY NOT NULL, \"_created\" INTEGER NOT NULL, \
                 \"_modified\" INTEGER NOT NULL",
                quote(&table.name)
            );
            for (_, column) in persisted {
                text.push_str(&format!(
                    ", {} {}",
                    quote(&column.name),
                    sql_type(&column.kind)
                ));
            }
            text.push(')');
            conn.execute_batch(&text)?;
            continue;
        }
        for (_, column) in persisted {
            if existing.contains(&column.name.to_ascii_lowercase()) {
                continue;
            }
            conn.execute_batch(&format!(
                "ALTER TABLE {} ADD COLUMN {} {}",
                quote(&table.name),
                quote(&column.name),
                sql_type(&column.kind)
            ))?;
            conn.execute(
                &format!(
                    "UPDATE {} SET {} = ?1",
                    quote(&table.name),
                    quote(&column.name)
                ),
                [to_sql(&column.kind, &column.default)],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(v: i64, modified: u64) -> Entry {
        Entry::new(Arc::new(vec![Value::Int(v)]), 1, modified)
    }

    fn plan(ops: Vec<Op>) -> Plan {
        Plan {
            ops,
            ..Plan::default()
        }
    }

    #[test]
    fn coalesce_writes_each_row_once_in_its_final_state() {
        let update = |r: &str, from: i64, to: i64, gen| Op::Update {
            table: 0,
            r: r.into(),
            old: Arc::new(vec![Value::Int(from)]),
            entry: entry(to, gen),
        };
        let plans = [
            plan(vec![
                Op::Insert {
                    table: 0,
                    r: "a".into(),
                    entry: entry(1, 1),
                },
                update("b", 10, 11, 2),
            ]),
            plan(vec![update("a", 1, 2, 3), update("b", 11, 12, 4)]),
            plan(vec![update("a", 2, 3, 5)]),
        ];
        let staged = coalesce(&plans);
        assert_eq!(staged.len(), 2, "{staged:?}");
        match staged[0] {
            Staged::Insert { r, entry, .. } => {
                assert_eq!((r, entry.modified), ("a", 5));
                assert_eq!(entry.row[0], Value::Int(3));
            }
            other => panic!("expected the insert of a, got {other:?}"),
        }
        match staged[1] {
            Staged::Update { r, old, entry, .. } => {
                assert_eq!(r, "b");
                assert_eq!(old[0], Value::Int(10), "diffed against what SQLite has");
                assert_eq!(entry.row[0], Value::Int(12));
            }
            other => panic!("expected the update of b, got {other:?}"),
        }
    }

    #[test]
    fn coalesce_drops_changes_of_rows_deleted_later_but_keeps_recreations() {
        let tombstone = Tombstone {
            created: 1,
            row: Arc::new(vec![Value::Int(1)]),
        };
        let insert = |v| Op::Insert {
            table: 0,
            r: "a".into(),
            entry: entry(v, 1),
        };
        let delete = Op::Delete {
            table: 0,
            r: "a".into(),
            gen: 2,
            tombstone,
        };
        let plans = [plan(vec![insert(1)]), plan(vec![delete, insert(7)])];
        let staged = coalesce(&plans);
        assert_eq!(staged.len(), 2, "{staged:?}");
        assert!(matches!(staged[0], Staged::Delete { r: "a", gen: 2, .. }));
        let Staged::Insert { r, entry, .. } = staged[1] else {
            panic!("expected the new insert, got {:?}", staged[1]);
        };
        assert_eq!((r, &entry.row[0]), ("a", &Value::Int(7)));
    }

    #[test]
    fn quote_doubles_inner_quotes() {
        assert_eq!(quote("VM"), "\"VM\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn typed_values_round_trip_through_sql_types() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (s TEXT, i INTEGER, r REAL)")
            .unwrap();
        let cases = [
            (ColumnKind::Int, Value::Int(-7)),
            (ColumnKind::Bool, Value::Bool(true)),
            (ColumnKind::Float, Value::Double(2.0)),
            (
                ColumnKind::DateTime,
                Value::DateTime("20240101T00:00:00Z".into()),
            ),
            (
                ColumnKind::Map,
                Value::Struct(vec![("a".into(), "b".into())]),
            ),
            (ColumnKind::Set, Value::Array(vec!["x".into()])),
        ];
        for (kind, value) in cases {
            let column = match sql_type(&kind) {
                "INTEGER" => "i",
                "REAL" => "r",
                _ => "s",
            };
            conn.execute("DELETE FROM t", []).unwrap();
            conn.execute(
                &format!("INSERT INTO t ({column}) VALUES (?1)"),
                [to_sql(&kind, &value)],
            )
            .unwrap();
            let back = conn
                .query_row(&format!("SELECT {column} FROM t"), [], |row| {
                    Ok(from_sql(&kind, row.get_ref(0)?))
                })
                .unwrap()
                .unwrap();
            assert_eq!(back, value);
        }
    }

    #[test]
    fn wrong_stored_type_is_an_error() {
        assert!(from_sql(&ColumnKind::Int, ValueRef::Text(b"12")).is_err());
        assert!(from_sql(&ColumnKind::Bool, ValueRef::Integer(2)).is_err());
        assert!(from_sql(&ColumnKind::Set, ValueRef::Text(b"{}")).is_err());
        assert!(from_sql(&ColumnKind::Map, ValueRef::Text(b"not json")).is_err());
        assert!(from_sql(&ColumnKind::String, ValueRef::Null).is_err());
    }
}
