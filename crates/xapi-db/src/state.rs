//! The in-memory tables: rows by ref, the uuid / name_label / Ref-column indexes, and the change
//! log that `changes_since` reads. Pure data structures: no locks, no SQLite.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use xapi_rpc::Value;

use crate::schema::{RelationIds, SchemaInfo, TableId, TableInfo};
use crate::Row;

/// One stored row with its generations.
///
/// `row` holds empty sets in derived (relation many-side) columns; readers get the row with
/// those filled in from the Ref-column index, built once and cached in `view` until the row or
/// its members change. Keeping the members out of `row` makes adding a member O(1) instead of a
/// copy of the whole set.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub row: Row,
    /// Generation at which the row was created (0 while uncommitted in a transaction).
    pub created: u64,
    /// Generation of its last change (0 while uncommitted in a transaction).
    pub modified: u64,
    /// The row with derived columns filled in (tables with relations only).
    pub view: OnceLock<Row>,
}

impl Entry {
    /// A new entry with an empty cache.
    pub fn new(row: Row, created: u64, modified: u64) -> Entry {
        Entry {
            row,
            created,
            modified,
            view: OnceLock::new(),
        }
    }

    /// The same generations with another row (and an empty cache).
    pub fn with_row(&self, row: Row) -> Entry {
        Entry::new(row, self.created, self.modified)
    }
}

/// The last state of a deleted row.
#[derive(Debug, Clone)]
pub(crate) struct Tombstone {
    pub created: u64,
    pub row: Row,
}

/// What the change log knows at a generation.
#[derive(Debug, Clone)]
pub(crate) enum LogItem {
    /// A live row whose `modified` is this generation.
    Live,
    /// A row deleted at this generation.
    Deleted(Tombstone),
}

/// Key of the change log: generation first so a range scan yields changes in order.
pub(crate) type LogKey = (u64, TableId, String);

/// One table's rows and indexes.
#[derive(Debug, Default)]
pub(crate) struct TableState {
    pub rows: BTreeMap<String, Entry>,
    pub by_uuid: HashMap<String, String>,
    pub by_name: HashMap<String, BTreeSet<String>>,
    /// Parallel to `TableInfo::ref_columns`: target ref -> refs of rows pointing at it.
    pub by_ref: Vec<HashMap<String, BTreeSet<String>>>,
}

impl TableState {
    pub fn new(info: &TableInfo) -> TableState {
        TableState {
            by_ref: vec![HashMap::new(); info.ref_columns.len()],
            ..TableState::default()
        }
    }

    /// Replaces (or removes) a row and keeps every index in step; returns the previous entry.
    pub fn put(&mut self, info: &TableInfo, r: &str, new: Option<Entry>) -> Option<Entry> {
        let old = self.rows.remove(r);
        if let Some(old) = &old {
            self.unindex(info, r, &old.row);
        }
        if let Some(new) = new {
            self.index(info, r, &new.row);
            self.rows.insert(r.to_owned(), new);
        }
        old
    }

    fn index(&mut self, info: &TableInfo, r: &str, row: &[Value]) {
        if let Some(uuid) = info.uuid.and_then(|c| row.get(c)).and_then(Value::as_str) {
            self.by_uuid.insert(uuid.to_owned(), r.to_owned());
        }
        if let Some(name) = info
            .name_label
            .and_then(|c| row.get(c))
            .and_then(Value::as_str)
        {
            self.by_name
                .entry(name.to_owned())
                .or_default()
                .insert(r.to_owned());
        }
        for (slot, column) in info.ref_columns.iter().enumerate() {
            if let Some(target) = row.get(*column).and_then(Value::as_str) {
                self.by_ref[slot]
                    .entry(target.to_owned())
                    .or_default()
                    .insert(r.to_owned());
            }
        }
    }

    fn unindex(&mut self, info: &TableInfo, r: &str, row: &[Value]) {
        if let Some(uuid) = info.uuid.and_then(|c| row.get(c)).and_then(Value::as_str) {
            // Only drop the mapping if it is ours: a rollback may restore rows in any order.
            if self.by_uuid.get(uuid).is_some_and(|owner| owner == r) {
                self.by_uuid.remove(uuid);
            }
        }
        if let Some(name) = info
            .name_label
            .and_then(|c| row.get(c))
            .and_then(Value::as_str)
        {
            remove_from(&mut self.by_name, name, r);
        }
        for (slot, column) in info.ref_columns.iter().enumerate() {
            if let Some(target) = row.get(*column).and_then(Value::as_str) {
                remove_from(&mut self.by_ref[slot], target, r);
            }
        }
    }
}

fn remove_from(index: &mut HashMap<String, BTreeSet<String>>, key: &str, r: &str) {
    if let Some(set) = index.get_mut(key) {
        set.remove(r);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

/// Everything in memory.
#[derive(Debug)]
pub(crate) struct State {
    pub tables: Vec<TableState>,
    /// The last committed generation.
    pub generation: u64,
    /// Every live row at its `modified` generation and every kept tombstone at its deletion.
    pub log: BTreeMap<LogKey, LogItem>,
    /// Keys of the kept tombstones, oldest first (for eviction).
    pub tombstones: VecDeque<LogKey>,
    /// Deletions at or below this generation may have been forgotten.
    pub tombstone_floor: u64,
}

impl State {
    /// The row as readers see it: derived columns filled in.
    pub fn materialize(&self, info: &SchemaInfo, t: TableId, r: &str, entry: &Entry) -> Row {
        if info.tables[t].many_side.is_empty() {
            return entry.row.clone();
        }
        entry
            .view
            .get_or_init(|| self.build(info, t, r, &entry.row))
            .clone()
    }

    /// Fills the derived columns of a raw row (uncached).
    pub fn build(&self, info: &SchemaInfo, t: TableId, r: &str, raw: &Row) -> Row {
        let many_side = &info.tables[t].many_side;
        if many_side.is_empty() {
            return raw.clone();
        }
        let mut values = (**raw).clone();
        for index in many_side {
            let relation = info.relations[*index];
            if let Some(slot) = values.get_mut(relation.many_column) {
                *slot = Value::Array(self.members(relation, r));
            }
        }
        Arc::new(values)
    }

    /// Refs of the rows whose relation column points at `target`, sorted.
    pub fn members(&self, relation: RelationIds, target: &str) -> Vec<Value> {
        self.tables[relation.one_table]
            .by_ref
            .get(relation.one_slot)
            .and_then(|index| index.get(target))
            .map(|set| set.iter().map(|r| Value::String(r.clone())).collect())
            .unwrap_or_default()
    }

    pub fn new(infos: &[TableInfo]) -> State {
        State {
            tables: infos.iter().map(TableState::new).collect(),
            generation: 0,
            log: BTreeMap::new(),
            tombstones: VecDeque::new(),
            tombstone_floor: 0,
        }
    }
}

// Tests unwrap: a failure there is the assertion.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info() -> TableInfo {
        TableInfo {
            uuid: Some(0),
            name_label: Some(1),
            ref_columns: vec![2],
            derived: vec![false; 3],
            one_side: vec![],
            many_side: vec![],
        }
    }

    fn entry(uuid: &str, name: &str, target: &str) -> Entry {
        Entry::new(
            Arc::new(vec![uuid.into(), name.into(), target.into()]),
            1,
            1,
        )
    }

    #[test]
    fn put_keeps_indexes_in_step() {
        let info = info();
        let mut table = TableState::new(&info);
        table.put(&info, "r1", Some(entry("u1", "n", "t1")));
        table.put(&info, "r2", Some(entry("u2", "n", "t1")));
        assert_eq!(table.by_uuid.get("u1").map(String::as_str), Some("r1"));
        assert_eq!(table.by_name.get("n").map(BTreeSet::len), Some(2));
        table.put(&info, "r1", Some(entry("u1", "m", "t2")));
        assert_eq!(table.by_name.get("n").map(BTreeSet::len), Some(1));
        assert!(table.by_ref[0].get("t2").is_some_and(|s| s.contains("r1")));
        assert!(!table.by_ref[0].get("t1").is_some_and(|s| s.contains("r1")));
        table.put(&info, "r1", None);
        assert!(!table.by_uuid.contains_key("u1"));
        assert!(!table.by_ref[0].contains_key("t2"));
    }

    #[test]
    fn unindex_leaves_a_uuid_owned_by_another_row() {
        let info = info();
        let mut table = TableState::new(&info);
        table.put(&info, "r1", Some(entry("u", "n", "t")));
        table.by_uuid.insert("u".into(), "r2".into());
        table.put(&info, "r1", None);
        assert_eq!(table.by_uuid.get("u").map(String::as_str), Some("r2"));
    }
}
