//! The XenAPI object store: in-memory tables with indexes, written through to SQLite.
//!
//! The store knows no XenAPI class by name: tables, columns and relations come from the
//! [`Schema`] handed to [`Db::open`], which the daemon derives from the datamodel. Reads take a
//! read lock and clone `Arc` rows; every [`Db::write`] runs one closure as one SQLite
//! transaction, holding the write lock until COMMIT returns, so an acknowledged write survives
//! the process being killed. With [`Durability::Deferred`] writes are queued instead and
//! [`Db::sync`] commits the queue as one transaction (group commit): the caller acknowledges
//! only after `sync`, so the promise holds at one commit per acknowledgement. Each changed object gets its own generation number; the change log
//! and tombstones answer [`Db::changes_since`] (event.from) and [`Db::subscribe`] wakes
//! watchers. Inside a `write` closure use the [`Txn`]'s read methods: calling back into the
//! `Db` would deadlock.
//!
//! Modules: `schema` (the description and its fingerprint), `state` (tables and indexes),
//! `view` (reads), `txn` (writes, relations), `sqlite` (persistence), `filter`
//! (`get_all_records_where`), `json` (Set/Map storage form).

mod durable;
pub mod error;
pub mod filter;
pub mod json;
pub mod schema;
mod sqlite;
mod state;
mod txn;
mod view;

use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::watch;
use xapi_rpc::Value;

pub use crate::error::DbError;
pub use crate::filter::{Expr, FilterError, Operand};
pub use crate::schema::{
    schema_fingerprint, ColumnId, ColumnKind, ColumnSchema, Relation, Schema, TableId, TableSchema,
    SCHEMA_VERSION,
};
pub use crate::sqlite::{DbOptions, Durability, Synchronous, MIGRATIONS};
pub use crate::txn::Txn;
pub use crate::view::ReadView;

use crate::durable::Persist;
use crate::schema::SchemaInfo;
use crate::sqlite::Store;
use crate::state::{LogItem, State};
use crate::view::{delegate_reads, Catalog, Names};

/// One row: one value per column in schema order; copy-on-write.
pub type Row = Arc<Vec<Value>>;

/// What happened to an object (`add`, `mod`, `del` in event records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    /// Created after the token.
    Add,
    /// Existed at the token and changed since.
    Mod,
    /// Existed at the token and was deleted since.
    Del,
}

/// One changed object.
#[derive(Debug, Clone)]
pub struct Change {
    /// Its table.
    pub table: TableId,
    /// Its ref.
    pub r#ref: String,
    /// What happened.
    pub op: ChangeOp,
    /// The generation of its newest change.
    pub gen: u64,
    /// Its current row; for `Del` the last state before deletion.
    pub row: Row,
}

/// The answer of [`Db::changes_since`].
#[derive(Debug, Clone)]
pub struct Changes {
    /// The `since` asked for.
    pub from: u64,
    /// The answer is complete up to this generation (the next token).
    pub upto: u64,
    /// Deletions after `from` may have been forgotten: the caller should resynchronise.
    pub lost: bool,
    /// Each changed object once, oldest change first.
    pub items: Vec<Change>,
}

/// The object store.
pub struct Db {
    catalog: Catalog,
    state: RwLock<State>,
    persist: Arc<Persist>,
    generation: watch::Sender<u64>,
    /// Like `generation`, but only moved by commits that add or delete objects.
    membership: watch::Sender<u64>,
    options: DbOptions,
}

impl Db {
    /// Opens or creates the SQLite file, migrates and reconciles it, loads everything.
    pub fn open(path: &Path, schema: Schema) -> Result<Db, DbError> {
        Db::open_with(Some(path), schema, DbOptions::default())
    }

    /// An in-memory store (SQLite `:memory:`), for tests.
    pub fn open_in_memory(schema: Schema) -> Result<Db, DbError> {
        Db::open_with(None, schema, DbOptions::default())
    }

    /// Opens a file (`Some`) or an in-memory database (`None`) with explicit options.
    pub fn open_with(
        path: Option<&Path>,
        schema: Schema,
        options: DbOptions,
    ) -> Result<Db, DbError> {
        let info = SchemaInfo::new(&schema)?;
        check_defaults(&schema)?;
        let (store, state) = Store::open(path, &schema, &info, &options)?;
        let (generation, _) = watch::channel(state.generation);
        let (membership, _) = watch::channel(state.generation);
        let window = match options.durability {
            Durability::Immediate => None,
            Durability::Deferred { flush_window } => Some(flush_window),
        };
        let persist = Persist::new(store, schema.clone(), state.generation, window);
        Ok(Db {
            catalog: Catalog {
                names: Names::new(&schema),
                schema,
                info,
            },
            state: RwLock::new(state),
            persist,
            generation,
            membership,
            options,
        })
    }

    fn catalog_ref(&self) -> &Catalog {
        &self.catalog
    }

    fn view_with<R>(&self, f: impl FnOnce(&ReadView<'_>) -> R) -> R {
        self.read(f)
    }

    delegate_reads!();

    /// Runs several reads against one consistent state.
    pub fn read<R>(&self, f: impl FnOnce(&ReadView<'_>) -> R) -> R {
        let state = self.state.read();
        f(&ReadView {
            catalog: &self.catalog,
            state: &state,
        })
    }

    /// Runs `f` as one transaction: on `Ok` its changes are applied and published, and either
    /// committed to SQLite before this returns (`Durability::Immediate`) or queued for the next
    /// [`Db::sync`] (`Durability::Deferred`); on `Err`, or when an immediate commit fails,
    /// nothing is applied.
    pub fn write<R>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let mut state = self.state.write();
        let mut txn = Txn::new(&self.catalog, &mut state);
        // On Err the Txn is dropped, which restores every touched row.
        let value = f(&mut txn)?;
        let plan = txn.plan(self.options.tombstone_limit);
        if plan.ops.is_empty() {
            return Ok(value);
        }
        match self.options.durability {
            // On Err the Txn is dropped here as well.
            Durability::Immediate => self.persist.commit_now(&plan)?,
            Durability::Deferred { .. } => self.persist.enqueue(plan.clone()),
        }
        let structural = plan
            .ops
            .iter()
            .any(|op| !matches!(op, crate::sqlite::Op::Update { .. }));
        txn.apply(plan);
        drop(txn);
        let generation = state.generation;
        drop(state);
        self.generation.send_replace(generation);
        if structural {
            self.membership.send_replace(generation);
        }
        Ok(value)
    }

    /// Every object created, modified or deleted after generation `since` (event.from).
    ///
    /// Each object appears once with its newest state: `Add` if created after `since`, `Mod`
    /// otherwise, `Del` if deleted (an object created and deleted after `since` is left out).
    /// `max` caps the items (0: no cap); when capped, `upto` is the generation of the last item.
    pub fn changes_since(&self, since: u64, max: usize) -> Changes {
        self.changes_since_where(since, max, |_, _| true)
    }

    /// [`Db::changes_since`] keeping only the changes `wanted(table, op)` accepts; the rows
    /// of the others are never built, so a watcher of a few tables pays only for those.
    pub fn changes_since_where(
        &self,
        since: u64,
        max: usize,
        wanted: impl Fn(TableId, ChangeOp) -> bool,
    ) -> Changes {
        let state = self.state.read();
        let mut changes = Changes {
            from: since,
            upto: state.generation,
            lost: since < state.tombstone_floor,
            items: Vec::new(),
        };
        let start = (since.saturating_add(1), 0, String::new());
        for ((gen, t, r), item) in state.log.range(start..) {
            let change = match item {
                LogItem::Live => {
                    let Some(entry) = state.tables[*t].rows.get(r) else {
                        continue;
                    };
                    let op = if entry.created > since {
                        ChangeOp::Add
                    } else {
                        ChangeOp::Mod
                    };
                    if !wanted(*t, op) {
                        continue;
                    }
                    Change {
                        table: *t,
                        r#ref: r.clone(),
                        op,
                        gen: *gen,
                        row: state.materialize(&self.catalog.info, *t, r, entry),
                    }
                }
                LogItem::Deleted(tombstone) => {
                    // Created after `since` and gone again, or re-created since (then the live
                    // row reports it): nothing to say about this incarnation.
                    if tombstone.created > since
                        || state.tables[*t].rows.contains_key(r)
                        || !wanted(*t, ChangeOp::Del)
                    {
                        continue;
                    }
                    Change {
                        table: *t,
                        r#ref: r.clone(),
                        op: ChangeOp::Del,
                        gen: *gen,
                        row: tombstone.row.clone(),
                    }
                }
            };
            changes.items.push(change);
            if max > 0 && changes.items.len() >= max {
                changes.upto = *gen;
                break;
            }
        }
        changes
    }

    /// A receiver of the last committed generation, updated after each commit.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// A receiver of the generation of the last commit that added or deleted an object: for
    /// watchers that follow only objects coming and going, which then sleep through the far
    /// more common field changes instead of waking for each.
    pub fn subscribe_membership(&self) -> watch::Receiver<u64> {
        self.membership.subscribe()
    }

    /// Returns once every write made before the call is committed to SQLite: in deferred mode
    /// everything queued goes in one transaction (a no-op in immediate mode). On `Err` the
    /// writes stay queued and are retried by the next `sync` or the background flusher.
    pub fn sync(&self) -> Result<(), DbError> {
        self.persist.sync()
    }

    /// The newest generation known to be committed to SQLite.
    pub fn durable_generation(&self) -> u64 {
        self.persist.durable_generation()
    }

    /// Runs `f` with the SQLite connection (tests that need to break the file).
    #[cfg(test)]
    fn with_conn<R>(&self, f: impl FnOnce(&rusqlite::Connection) -> R) -> R {
        self.persist.with_conn(f)
    }
}

impl Drop for Db {
    /// Stops the background flusher and commits what is still queued.
    fn drop(&mut self) {
        self.persist.close();
        let _ = self.persist.sync();
    }
}

/// Refuses a schema whose defaults do not fit their column (they fill added columns).
fn check_defaults(schema: &Schema) -> Result<(), DbError> {
    for table in &schema.tables {
        for column in &table.columns {
            let ok = matches!(
                (&column.kind, &column.default),
                (
                    ColumnKind::String | ColumnKind::Enum | ColumnKind::Ref { .. },
                    Value::String(_)
                ) | (ColumnKind::DateTime, Value::DateTime(_) | Value::String(_))
                    | (ColumnKind::Int, Value::Int(_))
                    | (ColumnKind::Float, Value::Double(_))
                    | (ColumnKind::Bool, Value::Bool(_))
                    | (ColumnKind::Set, Value::Array(_))
                    | (ColumnKind::Map, Value::Struct(_))
                    | (ColumnKind::Other, _)
            );
            if !ok {
                return Err(DbError::InvalidSchema(format!(
                    "default of {}.{} is a {}, the column holds {}",
                    table.name,
                    column.name,
                    column.default.kind(),
                    column.kind.name()
                )));
            }
        }
    }
    Ok(())
}

// Tests unwrap: a failure there is the assertion.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn column(name: &str, kind: ColumnKind) -> ColumnSchema {
        let default = match kind {
            ColumnKind::Int => Value::Int(0),
            ColumnKind::Set => Value::Array(Vec::new()),
            ColumnKind::Map => Value::Struct(Vec::new()),
            _ => Value::String(String::new()),
        };
        ColumnSchema {
            name: name.into(),
            kind,
            default,
        }
    }

    /// `VM(uuid, name_label, VBDs, other_config, tags, n)` and `VBD(uuid, VM)`, related.
    fn schema() -> Schema {
        Schema {
            tables: vec![
                TableSchema {
                    name: "VM".into(),
                    columns: vec![
                        column("uuid", ColumnKind::String),
                        column("name_label", ColumnKind::String),
                        column("VBDs", ColumnKind::Set),
                        column("other_config", ColumnKind::Map),
                        column("tags", ColumnKind::Set),
                        column("n", ColumnKind::Int),
                    ],
                },
                TableSchema {
                    name: "VBD".into(),
                    columns: vec![
                        column("uuid", ColumnKind::String),
                        column("VM", ColumnKind::Ref { table: "VM".into() }),
                    ],
                },
            ],
            relations: vec![Relation {
                one: ("VBD".into(), "VM".into()),
                many: ("VM".into(), "VBDs".into()),
            }],
        }
    }

    const VM: TableId = 0;
    const VBD: TableId = 1;

    fn vm_row(uuid: &str, name: &str) -> Vec<Value> {
        vec![
            uuid.into(),
            name.into(),
            Value::Array(vec![]),
            Value::Struct(vec![]),
            Value::Array(vec![]),
            Value::Int(0),
        ]
    }

    fn add_vm(db: &Db, r: &str, name: &str) {
        db.write(|txn| txn.insert(VM, r, vm_row(&format!("u-{r}"), name)))
            .unwrap();
    }

    fn add_vbd(db: &Db, r: &str, vm: &str) {
        db.write(|txn| txn.insert(VBD, r, vec![format!("u-{r}").into(), vm.into()]))
            .unwrap();
    }

    fn vbds_of(db: &Db, vm: &str) -> Value {
        db.get_field(VM, vm, 2).unwrap()
    }

    fn strings(items: &[&str]) -> Value {
        Value::Array(items.iter().map(|s| Value::from(*s)).collect())
    }

    #[test]
    fn insert_then_read_by_ref_uuid_and_name() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "alpha");
        add_vm(&db, "vm2", "alpha");
        assert_eq!(db.count(VM), 2);
        assert_eq!(db.get_field(VM, "vm1", 1), Some("alpha".into()));
        assert_eq!(db.ref_by_uuid(VM, "u-vm2").as_deref(), Some("vm2"));
        assert_eq!(db.refs_by_name_label(VM, "alpha"), vec!["vm1", "vm2"]);
        assert_eq!(db.refs(VM), vec!["vm1", "vm2"]);
        assert_eq!(db.table_id("VBD"), Some(VBD));
        assert_eq!(db.column_id(VM, "tags"), Some(4));
        assert_eq!(db.generation(), 2);
    }

    #[test]
    fn fields_changed_in_place_leave_earlier_readers_and_failed_writes_untouched() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "a");
        let before = db.get(VM, "vm1").unwrap();
        let failed: Result<(), DbError> = db.write(|txn| {
            txn.set_field(VM, "vm1", 5, Value::Int(1))?;
            txn.map_add(VM, "vm1", 3, "k", "v".into())?;
            txn.set_field(VM, "vm1", 5, Value::Int(2))?;
            assert_eq!(txn.view().get(VM, "vm1").unwrap()[5], Value::Int(2));
            Err(DbError::UnknownTable(99))
        });
        assert!(failed.is_err());
        assert_eq!(db.get(VM, "vm1").unwrap(), before, "rolled back whole");
        db.write(|txn| {
            txn.set_field(VM, "vm1", 5, Value::Int(3))?;
            txn.map_add(VM, "vm1", 3, "k", "v".into())?;
            // A failed edit of one column leaves the others of the transaction in place.
            assert!(txn.set_add(VM, "vm1", 3, "x".into()).is_err());
            txn.set_field(VM, "vm1", 5, Value::Int(4))
        })
        .unwrap();
        assert_eq!(before[5], Value::Int(0), "a reader's row is a snapshot");
        let after = db.get(VM, "vm1").unwrap();
        assert_eq!(after[5], Value::Int(4));
        assert_eq!(after[3], Value::Struct(vec![("k".into(), "v".into())]));
        assert_eq!(
            db.changes_since(1, 0).items.len(),
            1,
            "one change, one generation"
        );
    }

    #[test]
    fn changes_since_where_keeps_only_wanted_changes() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "a");
        let since = db.generation();
        add_vm(&db, "vm2", "b");
        add_vbd(&db, "vbd1", "vm1");
        db.write(|txn| txn.delete(VM, "vm2").map(|_| ())).unwrap();
        let all = db.changes_since(since, 0);
        assert_eq!(all.items.len(), 2, "vm1 modified (a new VBD), vbd1 added");
        let adds = db.changes_since_where(since, 0, |t, op| t == VBD && op == ChangeOp::Add);
        assert_eq!(adds.upto, all.upto);
        assert_eq!(adds.items.len(), 1);
        assert_eq!(adds.items[0].r#ref, "vbd1");
        let none = db.changes_since_where(since, 0, |_, op| op == ChangeOp::Del);
        assert!(none.items.is_empty(), "vm2 came and went after the token");
    }

    #[test]
    fn membership_watchers_wake_only_for_objects_coming_and_going() {
        let db = Db::open_in_memory(schema()).unwrap();
        let mut members = db.subscribe_membership();
        let mut all = db.subscribe();
        add_vm(&db, "vm1", "a");
        assert!(members.has_changed().unwrap());
        assert_eq!(*members.borrow_and_update(), db.generation());
        all.borrow_and_update();
        db.write(|txn| txn.set_field(VM, "vm1", 5, Value::Int(1)))
            .unwrap();
        assert!(all.has_changed().unwrap());
        assert!(!members.has_changed().unwrap(), "a field change is no news");
        db.write(|txn| txn.delete(VM, "vm1").map(|_| ())).unwrap();
        assert!(members.has_changed().unwrap());
    }

    #[test]
    fn duplicate_ref_uuid_and_arity_are_refused() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "a");
        let dup = db.write(|txn| txn.insert(VM, "vm1", vm_row("other", "a")));
        assert!(matches!(dup, Err(DbError::DuplicateRef { .. })));
        let uuid = db.write(|txn| txn.insert(VM, "vm2", vm_row("u-vm1", "a")));
        assert!(matches!(uuid, Err(DbError::UuidExists { .. })));
        let arity = db.write(|txn| txn.insert(VM, "vm3", vec!["x".into()]));
        assert!(matches!(
            arity,
            Err(DbError::WrongArity {
                expected: 6,
                got: 1,
                ..
            })
        ));
        let kind = db.write(|txn| txn.set_field(VM, "vm1", 5, "five".into()));
        assert!(matches!(kind, Err(DbError::WrongType { .. })));
        assert_eq!(db.count(VM), 1);
    }

    #[test]
    fn relation_follows_insert_repoint_and_delete() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "a");
        add_vm(&db, "vm2", "b");
        add_vbd(&db, "vbd1", "vm1");
        add_vbd(&db, "vbd2", "vm1");
        assert_eq!(vbds_of(&db, "vm1"), strings(&["vbd1", "vbd2"]));
        db.write(|txn| txn.set_field(VBD, "vbd1", 1, "vm2".into()))
            .unwrap();
        assert_eq!(vbds_of(&db, "vm1"), strings(&["vbd2"]));
        assert_eq!(vbds_of(&db, "vm2"), strings(&["vbd1"]));
        db.write(|txn| txn.delete(VBD, "vbd2")).unwrap();
        assert_eq!(vbds_of(&db, "vm1"), strings(&[]));
        assert_eq!(db.refs_where_ref(VBD, 1, "vm2"), vec!["vbd1"]);
    }

    #[test]
    fn cached_row_view_follows_member_changes_and_rollback() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "a");
        add_vbd(&db, "vbd1", "vm1");
        assert_eq!(db.get(VM, "vm1").unwrap()[2], strings(&["vbd1"]));
        add_vbd(&db, "vbd2", "vm1");
        assert_eq!(db.get(VM, "vm1").unwrap()[2], strings(&["vbd1", "vbd2"]));
        let result: Result<(), DbError> = db.write(|txn| {
            txn.delete(VBD, "vbd1")?;
            assert_eq!(txn.get(VM, "vm1").unwrap()[2], strings(&["vbd2"]));
            Err(DbError::UnknownTable(99))
        });
        assert!(result.is_err());
        assert_eq!(db.get(VM, "vm1").unwrap()[2], strings(&["vbd1", "vbd2"]));
        let rows = db.rows(VM);
        assert_eq!(rows[0].1[2], strings(&["vbd1", "vbd2"]));
        let deleted = db.write(|txn| txn.delete(VM, "vm1")).unwrap();
        assert_eq!(deleted[2], strings(&["vbd1", "vbd2"]));
    }

    #[test]
    fn relation_target_created_later_collects_existing_members() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vbd(&db, "vbd1", "vm1");
        add_vm(&db, "vm1", "a");
        assert_eq!(vbds_of(&db, "vm1"), strings(&["vbd1"]));
    }

    #[test]
    fn writing_a_derived_column_is_refused() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "a");
        let set = db.write(|txn| txn.set_field(VM, "vm1", 2, strings(&["x"])));
        assert!(matches!(set, Err(DbError::DerivedColumn { .. })));
        let add = db.write(|txn| txn.set_add(VM, "vm1", 2, "x".into()));
        assert!(matches!(add, Err(DbError::DerivedColumn { .. })));
    }

    #[test]
    fn relation_change_gives_the_target_a_new_generation() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "a");
        let before = db.generation();
        add_vbd(&db, "vbd1", "vm1");
        let changes = db.changes_since(before, 0);
        let seen: Vec<(&str, ChangeOp)> = changes
            .items
            .iter()
            .map(|c| (c.r#ref.as_str(), c.op))
            .collect();
        assert_eq!(seen, vec![("vbd1", ChangeOp::Add), ("vm1", ChangeOp::Mod)]);
        assert_eq!(db.generation(), before + 2);
    }

    #[test]
    fn map_and_set_operations() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "a");
        db.write(|txn| txn.map_add(VM, "vm1", 3, "k", "v".into()))
            .unwrap();
        let dup = db.write(|txn| txn.map_add(VM, "vm1", 3, "k", "w".into()));
        assert!(matches!(dup, Err(DbError::DuplicateKey { key }) if key == "k"));
        db.write(|txn| txn.map_remove(VM, "vm1", 3, "missing"))
            .unwrap();
        assert_eq!(
            db.get_field(VM, "vm1", 3),
            Some(Value::Struct(vec![("k".into(), "v".into())]))
        );
        db.write(|txn| txn.map_remove(VM, "vm1", 3, "k")).unwrap();
        assert_eq!(db.get_field(VM, "vm1", 3), Some(Value::Struct(vec![])));
        db.write(|txn| {
            txn.set_add(VM, "vm1", 4, "x".into())?;
            txn.set_add(VM, "vm1", 4, "x".into())?;
            txn.set_add(VM, "vm1", 4, "y".into())?;
            txn.set_remove(VM, "vm1", 4, "missing".into())
        })
        .unwrap();
        assert_eq!(db.get_field(VM, "vm1", 4), Some(strings(&["x", "y"])));
        let wrong = db.write(|txn| txn.map_add(VM, "vm1", 4, "k", "v".into()));
        assert!(matches!(wrong, Err(DbError::WrongType { .. })));
    }

    #[test]
    fn error_in_closure_rolls_back_memory_and_disk() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "a");
        let generation = db.generation();
        let result: Result<(), DbError> = db.write(|txn| {
            txn.set_field(VM, "vm1", 1, "changed".into())?;
            txn.insert(VM, "vm2", vm_row("u2", "b"))?;
            txn.insert(VBD, "vbd1", vec!["u3".into(), "vm1".into()])?;
            txn.delete(VM, "vm1")?;
            // The transaction sees its own writes.
            assert_eq!(txn.count(VM), 1);
            assert_eq!(txn.ref_by_uuid(VM, "u2").as_deref(), Some("vm2"));
            Err(DbError::NotFound {
                table: "VM".into(),
                r#ref: "x".into(),
            })
        });
        assert!(result.is_err());
        assert_eq!(db.generation(), generation);
        assert_eq!(db.refs(VM), vec!["vm1"]);
        assert_eq!(db.get_field(VM, "vm1", 1), Some("a".into()));
        assert_eq!(vbds_of(&db, "vm1"), strings(&[]));
        assert_eq!(db.ref_by_uuid(VM, "u2"), None);
        assert_eq!(db.ref_by_uuid(VM, "u-vm1").as_deref(), Some("vm1"));
        assert!(db.refs_where_ref(VBD, 1, "vm1").is_empty());
        let on_disk: (i64, String) = db.with_conn(|conn| {
            conn.query_row(
                "SELECT (SELECT count(*) FROM \"VM\"), (SELECT name_label FROM \"VM\")",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap()
        });
        assert_eq!(on_disk, (1, "a".to_string()));
    }

    #[test]
    fn sqlite_failure_rolls_back_memory() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "a");
        db.with_conn(|conn| conn.execute_batch("DROP TABLE \"VBD\"").unwrap());
        let result = db.write(|txn| txn.insert(VBD, "vbd1", vec!["u".into(), "vm1".into()]));
        assert!(matches!(result, Err(DbError::Sqlite(_))));
        assert_eq!(db.count(VBD), 0);
        assert_eq!(vbds_of(&db, "vm1"), strings(&[]));
        assert_eq!(db.generation(), 1);
        // The store still works afterwards.
        db.write(|txn| txn.set_field(VM, "vm1", 1, "b".into()))
            .unwrap();
        assert_eq!(db.generation(), 2);
    }

    fn deferred(path: &Path, window_ms: u64) -> Db {
        let options = DbOptions {
            durability: Durability::Deferred {
                flush_window: Duration::from_millis(window_ms),
            },
            ..DbOptions::default()
        };
        Db::open_with(Some(path), schema(), options).unwrap()
    }

    fn rows_on_disk(db: &Db) -> i64 {
        db.with_conn(|conn| {
            conn.query_row("SELECT count(*) FROM \"VM\"", [], |row| row.get(0))
                .unwrap()
        })
    }

    #[test]
    fn deferred_writes_reach_sqlite_at_sync_in_one_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        // A flush window far longer than the test: only `sync` commits.
        let db = deferred(&path, 600_000);
        add_vm(&db, "vm1", "a");
        add_vm(&db, "vm2", "b");
        db.write(|txn| txn.set_field(VM, "vm1", 1, "renamed".into()))
            .unwrap();
        assert_eq!(db.count(VM), 2, "memory has the writes at once");
        assert_eq!(rows_on_disk(&db), 0, "nothing committed before sync");
        assert!(db.durable_generation() < db.generation());
        db.sync().unwrap();
        assert_eq!(rows_on_disk(&db), 2);
        assert_eq!(db.durable_generation(), db.generation());
        drop(db);
        let db = Db::open(&path, schema()).unwrap();
        assert_eq!(db.get_field(VM, "vm1", 1), Some("renamed".into()));
        assert_eq!(db.count(VM), 2);
    }

    #[test]
    fn deferred_writes_are_flushed_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let db = deferred(&dir.path().join("db"), 1);
        let flushed = |db: &Db| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while db.durable_generation() < db.generation() {
                assert!(Instant::now() < deadline, "the flusher never committed");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        // Parked at first, woken by the write.
        add_vm(&db, "vm1", "a");
        flushed(&db);
        assert_eq!(rows_on_disk(&db), 1);
        // Still looking once per window.
        add_vm(&db, "vm2", "b");
        flushed(&db);
        // Parked again after idle windows, and woken again.
        std::thread::sleep(Duration::from_millis(200));
        add_vm(&db, "vm3", "c");
        flushed(&db);
        assert_eq!(rows_on_disk(&db), 3);
    }

    #[test]
    fn deferred_commit_failure_keeps_the_queue_for_the_next_sync() {
        let dir = tempfile::tempdir().unwrap();
        let db = deferred(&dir.path().join("db"), 600_000);
        add_vm(&db, "vm1", "a");
        db.sync().unwrap();
        db.with_conn(|conn| {
            conn.execute_batch("ALTER TABLE \"VM\" RENAME TO \"VM_away\"")
                .unwrap()
        });
        add_vm(&db, "vm2", "b");
        assert!(matches!(db.sync(), Err(DbError::Sqlite(_))));
        assert!(db.durable_generation() < db.generation());
        add_vm(&db, "vm3", "c");
        db.with_conn(|conn| {
            conn.execute_batch("ALTER TABLE \"VM_away\" RENAME TO \"VM\"")
                .unwrap()
        });
        db.sync().unwrap();
        assert_eq!(
            rows_on_disk(&db),
            3,
            "the failed group was retried, in order"
        );
        assert_eq!(db.durable_generation(), db.generation());
    }

    #[test]
    fn dropping_a_deferred_db_commits_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = deferred(&path, 600_000);
        add_vm(&db, "vm1", "a");
        drop(db);
        let db = Db::open(&path, schema()).unwrap();
        assert_eq!(db.count(VM), 1);
    }

    #[test]
    fn panic_in_closure_rolls_back() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "a");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = db.write(|txn| -> Result<(), DbError> {
                txn.set_field(VM, "vm1", 1, "changed".into())?;
                panic!("boom");
            });
        }));
        assert!(outcome.is_err());
        assert_eq!(db.get_field(VM, "vm1", 1), Some("a".into()));
    }

    #[test]
    fn change_log_reports_add_mod_del_once_each() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "a");
        add_vm(&db, "gone", "g");
        let token = db.generation();
        add_vm(&db, "vm2", "b");
        db.write(|txn| txn.set_field(VM, "vm1", 1, "a2".into()))
            .unwrap();
        db.write(|txn| txn.set_field(VM, "vm1", 1, "a3".into()))
            .unwrap();
        db.write(|txn| txn.delete(VM, "gone")).unwrap();
        add_vm(&db, "brief", "x");
        db.write(|txn| txn.delete(VM, "brief")).unwrap();
        let changes = db.changes_since(token, 0);
        let seen: Vec<(&str, ChangeOp)> = changes
            .items
            .iter()
            .map(|c| (c.r#ref.as_str(), c.op))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("vm2", ChangeOp::Add),
                ("vm1", ChangeOp::Mod),
                ("gone", ChangeOp::Del)
            ]
        );
        assert_eq!(changes.upto, db.generation());
        assert!(!changes.lost);
        assert_eq!(changes.items[1].row[1], Value::from("a3"));
        assert_eq!(changes.items[2].row[1], Value::from("g"));
        assert!(db.changes_since(db.generation(), 0).items.is_empty());
    }

    #[test]
    fn change_log_pages_with_max() {
        let db = Db::open_in_memory(schema()).unwrap();
        for i in 0..5 {
            add_vm(&db, &format!("vm{i}"), "x");
        }
        let first = db.changes_since(0, 2);
        assert_eq!(first.items.len(), 2);
        assert_eq!(first.upto, first.items[1].gen);
        let second = db.changes_since(first.upto, 0);
        assert_eq!(second.items.len(), 3);
        assert_eq!(second.items[0].r#ref, "vm2");
    }

    #[test]
    fn touch_is_a_mod_without_field_change() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "a");
        let token = db.generation();
        db.write(|txn| txn.touch(VM, "vm1")).unwrap();
        let changes = db.changes_since(token, 0);
        assert_eq!(changes.items.len(), 1);
        assert_eq!(changes.items[0].op, ChangeOp::Mod);
        let missing = db.write(|txn| txn.touch(VM, "nope"));
        assert!(matches!(missing, Err(DbError::NotFound { .. })));
    }

    #[test]
    fn old_token_is_lost_once_tombstones_are_evicted() {
        let options = DbOptions {
            tombstone_limit: 2,
            ..DbOptions::default()
        };
        let db = Db::open_with(None, schema(), options).unwrap();
        for i in 0..4 {
            add_vm(&db, &format!("vm{i}"), "x");
        }
        let token = db.generation();
        for i in 0..3 {
            db.write(|txn| txn.delete(VM, &format!("vm{i}"))).unwrap();
        }
        let changes = db.changes_since(token, 0);
        assert!(changes.lost);
        let recent = db.changes_since(token + 1, 0);
        assert!(!recent.lost);
        assert_eq!(recent.items.len(), 2);
        assert!(recent.items.iter().all(|c| c.op == ChangeOp::Del));
    }

    #[test]
    fn each_changed_object_gets_its_own_generation() {
        let db = Db::open_in_memory(schema()).unwrap();
        let mut rx = db.subscribe();
        db.write(|txn| {
            txn.insert(VM, "vm1", vm_row("u1", "a"))?;
            txn.insert(VM, "vm2", vm_row("u2", "b"))?;
            txn.set_field(VM, "vm1", 1, "c".into())
        })
        .unwrap();
        assert_eq!(db.generation(), 2);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 2);
        let read = db.read(|v| (v.generations(VM, "vm1"), v.generations(VM, "vm2")));
        assert_eq!(read, (Some((1, 1)), Some((2, 2))));
    }

    #[test]
    fn empty_write_commits_nothing() {
        let db = Db::open_in_memory(schema()).unwrap();
        let n = db.write(|txn| Ok(txn.count(VM))).unwrap();
        assert_eq!(n, 0);
        assert_eq!(db.generation(), 0);
    }

    #[test]
    fn filter_over_rows() {
        let db = Db::open_in_memory(schema()).unwrap();
        add_vm(&db, "vm1", "a");
        add_vm(&db, "vm2", "b");
        let expr = Expr::parse(r#"field "name__label" = "b" or field "uuid" = "u-vm1""#).unwrap();
        let refs: Vec<String> = db.filter(VM, &expr).into_iter().map(|(r, _)| r).collect();
        assert_eq!(refs, vec!["vm1", "vm2"]);
        let bad = Expr::parse(r#"field "nope" = """#).unwrap();
        assert!(matches!(
            db.try_filter(VM, &bad),
            Err(FilterError::UnknownField(_))
        ));
    }

    #[test]
    fn bad_default_is_an_invalid_schema() {
        let mut bad = schema();
        bad.tables[0].columns[5].default = Value::String("zero".into());
        assert!(matches!(
            Db::open_in_memory(bad),
            Err(DbError::InvalidSchema(_))
        ));
    }
}
