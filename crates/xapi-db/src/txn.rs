//! `Txn`: one write transaction. Changes apply to memory at once (so the transaction reads its
//! own writes) with the original of every touched row remembered; `Db::write` either commits
//! them to SQLite and stamps generations, or restores the originals. Relation maintenance (the
//! derived many side) happens here.

use std::collections::HashSet;
use std::sync::Arc;

use xapi_rpc::Value;

use crate::error::DbError;
use crate::schema::{ColumnId, ColumnKind, RelationIds, TableId};
use crate::sqlite::{Op, Plan};
use crate::state::{Entry, LogItem, State, Tombstone};
use crate::view::{delegate_reads, Catalog, ReadView};
use crate::Row;

/// A row as it was before the transaction first touched it.
#[derive(Debug)]
pub(crate) struct Touched {
    pub table: TableId,
    pub r: String,
    pub original: Option<Entry>,
}

/// One write transaction (see [`crate::Db::write`]): the read methods of [`ReadView`], seeing
/// its own uncommitted writes, plus the write methods.
pub struct Txn<'a> {
    pub(crate) catalog: &'a Catalog,
    pub(crate) state: &'a mut State,
    pub(crate) touched: Vec<Touched>,
    touched_set: HashSet<(TableId, String)>,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(catalog: &'a Catalog, state: &'a mut State) -> Txn<'a> {
        Txn {
            catalog,
            state,
            touched: Vec::new(),
            touched_set: HashSet::new(),
        }
    }

    fn catalog_ref(&self) -> &Catalog {
        self.catalog
    }

    /// The catalog with the transaction's lifetime, so borrowing it does not borrow `self`.
    fn cat(&self) -> &'a Catalog {
        self.catalog
    }

    fn view_with<R>(&self, f: impl FnOnce(&ReadView<'_>) -> R) -> R {
        f(&self.view())
    }

    /// A read view of the transaction's current (uncommitted) state.
    pub fn view(&self) -> ReadView<'_> {
        ReadView {
            catalog: self.catalog,
            state: self.state,
        }
    }

    delegate_reads!();

    /// Inserts a row (one value per column, schema order). The values of derived (relation
    /// many-side) columns are ignored and computed.
    pub fn insert(&mut self, t: TableId, r: &str, row: Vec<Value>) -> Result<(), DbError> {
        let table = self.table(t)?;
        let info = &self.cat().info.tables[t];
        if row.len() != table.columns.len() {
            return Err(DbError::WrongArity {
                table: table.name.clone(),
                expected: table.columns.len(),
                got: row.len(),
            });
        }
        if self.state.tables[t].rows.contains_key(r) {
            return Err(DbError::DuplicateRef {
                table: table.name.clone(),
                r#ref: r.to_owned(),
            });
        }
        let mut values = Vec::with_capacity(row.len());
        for (c, value) in row.into_iter().enumerate() {
            if info.derived[c] {
                values.push(Value::Array(Vec::new()));
            } else {
                values.push(self.check(t, c, value)?);
            }
        }
        if let Some(uuid) = info.uuid.and_then(|c| values[c].as_str()) {
            if self.state.tables[t].by_uuid.contains_key(uuid) {
                return Err(DbError::UuidExists {
                    table: table.name.clone(),
                    uuid: uuid.to_owned(),
                });
            }
        }
        self.replace(t, r, Some(Entry::new(Arc::new(values), 0, 0)));
        Ok(())
    }

    /// Deletes a row and returns its last state.
    pub fn delete(&mut self, t: TableId, r: &str) -> Result<Row, DbError> {
        let entry = self.entry(t, r)?;
        let row = self.state.materialize(&self.cat().info, t, r, &entry);
        self.replace(t, r, None);
        Ok(row)
    }

    /// Sets one field (`set_<field>`).
    pub fn set_field(&mut self, t: TableId, r: &str, c: ColumnId, v: Value) -> Result<(), DbError> {
        self.writable(t, c)?;
        let value = self.check(t, c, v)?;
        let entry = self.entry(t, r)?;
        let info = &self.cat().info.tables[t];
        if info.uuid == Some(c) {
            if let Some(uuid) = value.as_str() {
                if self.state.tables[t]
                    .by_uuid
                    .get(uuid)
                    .is_some_and(|owner| owner != r)
                {
                    return Err(DbError::UuidExists {
                        table: self.cat().schema.tables[t].name.clone(),
                        uuid: uuid.to_owned(),
                    });
                }
            }
        }
        if !self.indexed(t, c) {
            return self.edit_in_place(t, r, c, |slot| *slot = value);
        }
        let mut row = entry.row.clone();
        Arc::make_mut(&mut row)[c] = value;
        self.replace(t, r, Some(entry.with_row(row)));
        Ok(())
    }

    /// Whether column `c` feeds an index (uuid, name_label, a Ref column): changing it must go
    /// through `replace`, which re-indexes the row and keeps relations in step.
    fn indexed(&self, t: TableId, c: ColumnId) -> bool {
        let info = &self.cat().info.tables[t];
        info.uuid == Some(c) || info.name_label == Some(c) || info.ref_columns.contains(&c)
    }

    /// Changes one unindexed column of an existing row where it lies: the row is copied once
    /// per transaction (the first time, when the original is remembered) instead of once per
    /// change, and no index is touched.
    fn edit_in_place<R>(
        &mut self,
        t: TableId,
        r: &str,
        c: ColumnId,
        edit: impl FnOnce(&mut Value) -> R,
    ) -> Result<R, DbError> {
        if !self.state.tables[t].rows.contains_key(r) {
            return Err(DbError::NotFound {
                table: self.table(t)?.name.clone(),
                r#ref: r.to_owned(),
            });
        }
        self.remember(t, r);
        let Some(entry) = self.state.tables[t].rows.get_mut(r) else {
            return Err(DbError::UnknownTable(t));
        };
        entry.view = std::sync::OnceLock::new();
        Ok(edit(&mut Arc::make_mut(&mut entry.row)[c]))
    }

    /// Adds a key to a map field (`add_to_<field>`); a present key is `DuplicateKey`.
    pub fn map_add(
        &mut self,
        t: TableId,
        r: &str,
        c: ColumnId,
        key: &str,
        v: Value,
    ) -> Result<(), DbError> {
        self.update_container(t, r, c, "map", |value| match value {
            Value::Struct(members) => {
                if members.iter().any(|(k, _)| k == key) {
                    return Err(DbError::DuplicateKey {
                        key: key.to_owned(),
                    });
                }
                members.push((key.to_owned(), v));
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    /// Removes a key from a map field (`remove_from_<field>`); a missing key is not an error.
    pub fn map_remove(
        &mut self,
        t: TableId,
        r: &str,
        c: ColumnId,
        key: &str,
    ) -> Result<(), DbError> {
        self.update_container(t, r, c, "map", |value| match value {
            Value::Struct(members) => {
                members.retain(|(k, _)| k != key);
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    /// Adds a member to a set field (`add_<field>`); an existing member is not added again.
    pub fn set_add(&mut self, t: TableId, r: &str, c: ColumnId, v: Value) -> Result<(), DbError> {
        self.update_container(t, r, c, "set", |value| match value {
            Value::Array(items) => {
                if !items.contains(&v) {
                    items.push(v);
                }
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    /// Removes a member from a set field (`remove_<field>`); a missing member is not an error.
    pub fn set_remove(
        &mut self,
        t: TableId,
        r: &str,
        c: ColumnId,
        v: Value,
    ) -> Result<(), DbError> {
        self.update_container(t, r, c, "set", |value| match value {
            Value::Array(items) => {
                items.retain(|x| *x != v);
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    /// Marks a row changed without changing a field (`event.inject`).
    pub fn touch(&mut self, t: TableId, r: &str) -> Result<(), DbError> {
        self.entry(t, r)?;
        self.remember(t, r);
        Ok(())
    }

    fn table(&self, t: TableId) -> Result<&'a crate::schema::TableSchema, DbError> {
        self.cat()
            .schema
            .tables
            .get(t)
            .ok_or(DbError::UnknownTable(t))
    }

    fn entry(&self, t: TableId, r: &str) -> Result<Entry, DbError> {
        let table = self.table(t)?;
        self.state.tables[t]
            .rows
            .get(r)
            .cloned()
            .ok_or_else(|| DbError::NotFound {
                table: table.name.clone(),
                r#ref: r.to_owned(),
            })
    }

    /// Refuses unknown and derived columns.
    fn writable(&self, t: TableId, c: ColumnId) -> Result<(), DbError> {
        let table = self.table(t)?;
        let column = table.columns.get(c).ok_or_else(|| DbError::UnknownColumn {
            table: table.name.clone(),
            column: c,
        })?;
        if self.cat().info.tables[t].derived[c] {
            return Err(DbError::DerivedColumn {
                table: table.name.clone(),
                column: column.name.clone(),
            });
        }
        Ok(())
    }

    /// Checks a value against its column's kind; a string for a DateTime column becomes a
    /// DateTime and an int for a Float column a double, so memory matches what loads back.
    fn check(&self, t: TableId, c: ColumnId, value: Value) -> Result<Value, DbError> {
        let table = &self.cat().schema.tables[t];
        let column = &table.columns[c];
        let (ok, expected) = match (&column.kind, &value) {
            (ColumnKind::String | ColumnKind::Enum | ColumnKind::Ref { .. }, Value::String(_)) => {
                (true, "")
            }
            (ColumnKind::DateTime, Value::DateTime(_)) => (true, ""),
            (ColumnKind::DateTime, Value::String(s)) => return Ok(Value::DateTime(s.clone())),
            (ColumnKind::Int, Value::Int(_)) => (true, ""),
            (ColumnKind::Float, Value::Double(_)) => (true, ""),
            (ColumnKind::Float, Value::Int(i)) => return Ok(Value::Double(*i as f64)),
            (ColumnKind::Bool, Value::Bool(_)) => (true, ""),
            (ColumnKind::Set, Value::Array(_)) => (true, ""),
            (ColumnKind::Map, Value::Struct(_)) => (true, ""),
            (ColumnKind::Other, _) => (true, ""),
            (ColumnKind::String | ColumnKind::Enum | ColumnKind::Ref { .. }, _) => {
                (false, "string")
            }
            (ColumnKind::DateTime, _) => (false, "datetime"),
            (ColumnKind::Int, _) => (false, "int"),
            (ColumnKind::Float, _) => (false, "double"),
            (ColumnKind::Bool, _) => (false, "bool"),
            (ColumnKind::Set, _) => (false, "array"),
            (ColumnKind::Map, _) => (false, "struct"),
        };
        if ok {
            Ok(value)
        } else {
            Err(DbError::WrongType {
                table: table.name.clone(),
                column: column.name.clone(),
                expected,
                got: value.kind(),
            })
        }
    }

    /// Applies `edit` to a Set (`expected` = "set") or Map ("map") field; `edit` returns false
    /// when the value has the wrong kind.
    fn update_container(
        &mut self,
        t: TableId,
        r: &str,
        c: ColumnId,
        expected: &'static str,
        edit: impl FnOnce(&mut Value) -> Result<bool, DbError>,
    ) -> Result<(), DbError> {
        self.writable(t, c)?;
        let table = &self.cat().schema.tables[t];
        let kind_ok = matches!(
            (expected, &table.columns[c].kind),
            ("map", ColumnKind::Map) | ("set", ColumnKind::Set) | (_, ColumnKind::Other)
        );
        let entry = self.entry(t, r)?;
        let wrong_type = |slot: &Value| DbError::WrongType {
            table: table.name.clone(),
            column: table.columns[c].name.clone(),
            expected,
            got: slot.kind(),
        };
        if !kind_ok {
            return Err(wrong_type(&entry.row[c]));
        }
        if !self.indexed(t, c) {
            // A failed edit leaves the row as it was, so the transaction stays consistent
            // (and rolls back whole when the caller gives up).
            let mut slot = entry.row[c].clone();
            let edited = edit(&mut slot)?;
            if !edited {
                return Err(wrong_type(&slot));
            }
            drop(entry);
            return self.edit_in_place(t, r, c, |value| *value = slot);
        }
        let mut row = entry.row.clone();
        let slot = &mut Arc::make_mut(&mut row)[c];
        if !edit(slot)? {
            return Err(wrong_type(slot));
        }
        self.replace(t, r, Some(entry.with_row(row)));
        Ok(())
    }

    /// Records the original of a row the first time the transaction touches it.
    fn remember(&mut self, t: TableId, r: &str) {
        if self.touched_set.insert((t, r.to_owned())) {
            self.touched.push(Touched {
                table: t,
                r: r.to_owned(),
                original: self.state.tables[t].rows.get(r).cloned(),
            });
        }
    }

    /// Replaces a row in memory and keeps the many side of its relations in step.
    fn replace(&mut self, t: TableId, r: &str, new: Option<Entry>) {
        self.remember(t, r);
        let info = &self.cat().info.tables[t];
        let new_targets: Vec<Option<String>> = info
            .one_side
            .iter()
            .map(|i| target_of(new.as_ref(), self.cat().info.relations[*i]))
            .collect();
        let old = self.state.tables[t].put(info, r, new);
        for (slot, index) in info.one_side.iter().enumerate() {
            let relation = self.cat().info.relations[*index];
            let old_target = target_of(old.as_ref(), relation);
            if old_target == new_targets[slot] {
                continue;
            }
            if let Some(target) = old_target {
                self.touch_target(relation, &target);
            }
            if let Some(target) = &new_targets[slot] {
                self.touch_target(relation, target);
            }
        }
    }

    /// A relation member of `target` came or went: it counts as a change of `target` (if that
    /// row exists) and its cached reader view is dropped.
    fn touch_target(&mut self, relation: RelationIds, target: &str) {
        if self.state.tables[relation.many_table]
            .rows
            .contains_key(target)
        {
            self.remember(relation.many_table, target);
            if let Some(entry) = self.state.tables[relation.many_table].rows.get_mut(target) {
                entry.view = std::sync::OnceLock::new();
            }
        }
    }

    /// Restores every touched row to its original, newest first.
    pub(crate) fn rollback(&mut self) {
        let catalog = self.cat();
        for touched in self.touched.drain(..).rev() {
            let info = &catalog.info.tables[touched.table];
            self.state.tables[touched.table].put(info, &touched.r, touched.original);
        }
        self.touched_set.clear();
    }

    /// Stamps generations on the touched rows and describes what SQLite must do.
    pub(crate) fn plan(&mut self, tombstone_limit: usize) -> Plan {
        let mut plan = Plan {
            generation: self.state.generation,
            ..Plan::default()
        };
        let mut new_tombstones = 0usize;
        for touched in &self.touched {
            if let Some(original) = &touched.original {
                plan.stale
                    .push((original.modified, touched.table, touched.r.clone()));
            }
            if let (Some(original), false) = (
                &touched.original,
                self.state.tables[touched.table]
                    .rows
                    .contains_key(&touched.r),
            ) {
                plan.generation += 1;
                new_tombstones += 1;
                let row =
                    self.state
                        .build(&self.catalog.info, touched.table, &touched.r, &original.row);
                plan.ops.push(Op::Delete {
                    table: touched.table,
                    r: touched.r.clone(),
                    gen: plan.generation,
                    tombstone: Tombstone {
                        created: original.created,
                        row,
                    },
                });
                continue;
            }
            let table = &mut self.state.tables[touched.table];
            let current = table.rows.get_mut(&touched.r);
            match (&touched.original, current) {
                (None, None) => {}
                (original, Some(entry)) => {
                    plan.generation += 1;
                    entry.created = original.as_ref().map_or(plan.generation, |o| o.created);
                    entry.modified = plan.generation;
                    let op = match original {
                        None => Op::Insert {
                            table: touched.table,
                            r: touched.r.clone(),
                            entry: entry.clone(),
                        },
                        Some(old) => Op::Update {
                            table: touched.table,
                            r: touched.r.clone(),
                            old: old.row.clone(),
                            entry: entry.clone(),
                        },
                    };
                    plan.ops.push(op);
                }
                // Deletions were handled above.
                (_, None) => {}
            }
        }
        let total = self.state.tombstones.len() + new_tombstones;
        if total > tombstone_limit {
            let excess = total - tombstone_limit;
            let kept = self.state.tombstones.len();
            let floor = if excess <= kept {
                self.state.tombstones[excess - 1].0
            } else {
                // Evicting some of this commit's own deletions: the floor is the last evicted.
                plan.ops
                    .iter()
                    .filter_map(|op| match op {
                        Op::Delete { gen, .. } => Some(*gen),
                        _ => None,
                    })
                    .nth(excess - kept - 1)
                    .unwrap_or(plan.generation)
            };
            plan.new_floor = Some(floor);
        }
        plan
    }

    /// After a successful SQLite commit: updates the change log and the generation.
    pub(crate) fn apply(&mut self, plan: Plan) {
        for key in &plan.stale {
            self.state.log.remove(key);
        }
        for op in plan.ops {
            match op {
                Op::Insert { table, r, entry }
                | Op::Update {
                    table, r, entry, ..
                } => {
                    self.state
                        .log
                        .insert((entry.modified, table, r), LogItem::Live);
                }
                Op::Delete {
                    table,
                    r,
                    gen,
                    tombstone,
                } => {
                    let key = (gen, table, r);
                    self.state.tombstones.push_back(key.clone());
                    self.state.log.insert(key, LogItem::Deleted(tombstone));
                }
            }
        }
        if let Some(floor) = plan.new_floor {
            while self
                .state
                .tombstones
                .front()
                .is_some_and(|key| key.0 <= floor)
            {
                if let Some(key) = self.state.tombstones.pop_front() {
                    self.state.log.remove(&key);
                }
            }
            self.state.tombstone_floor = floor;
        }
        self.state.generation = plan.generation;
        self.touched.clear();
        self.touched_set.clear();
    }
}

impl Drop for Txn<'_> {
    /// A transaction dropped without commit (an error or a panic in the closure) rolls back.
    fn drop(&mut self) {
        self.rollback();
    }
}

fn target_of(entry: Option<&Entry>, relation: RelationIds) -> Option<String> {
    entry?
        .row
        .get(relation.one_column)?
        .as_str()
        .map(str::to_owned)
}
