//! `ReadView`: every read of the object store, over one consistent state. `Db` and `Txn` expose
//! the same methods by delegating here. Never writes.

use std::collections::HashMap;

use xapi_rpc::Value;

use crate::filter::{Expr, FilterError};
use crate::schema::{ColumnId, Schema, SchemaInfo, TableId};
use crate::state::State;
use crate::Row;

/// Name lookups built once at open.
#[derive(Debug)]
pub(crate) struct Names {
    pub tables: HashMap<String, TableId>,
    pub columns: Vec<HashMap<String, ColumnId>>,
}

impl Names {
    pub fn new(schema: &Schema) -> Names {
        Names {
            tables: schema
                .tables
                .iter()
                .enumerate()
                .map(|(t, table)| (table.name.clone(), t))
                .collect(),
            columns: schema
                .tables
                .iter()
                .map(|table| {
                    table
                        .columns
                        .iter()
                        .enumerate()
                        .map(|(c, column)| (column.name.clone(), c))
                        .collect()
                })
                .collect(),
        }
    }
}

/// The static parts a view needs besides the state.
#[derive(Debug)]
pub(crate) struct Catalog {
    pub schema: Schema,
    pub info: SchemaInfo,
    pub names: Names,
}

/// A consistent read-only view of the store (see [`crate::Db::read`]).
pub struct ReadView<'a> {
    pub(crate) catalog: &'a Catalog,
    pub(crate) state: &'a State,
}

/// Generates the read methods of [`ReadView`] on a type with a `view_with` method.
macro_rules! delegate_reads {
    () => {
        /// The schema the store was opened with.
        pub fn schema(&self) -> &$crate::schema::Schema {
            &self.catalog_ref().schema
        }

        /// The id of a table by exact wire name (`VM`).
        pub fn table_id(&self, name: &str) -> Option<$crate::schema::TableId> {
            self.catalog_ref().names.tables.get(name).copied()
        }

        /// The id of a column by exact wire name (`name_label`).
        pub fn column_id(
            &self,
            t: $crate::schema::TableId,
            name: &str,
        ) -> Option<$crate::schema::ColumnId> {
            self.catalog_ref().names.columns.get(t)?.get(name).copied()
        }

        /// The last committed generation (inside a transaction: the one it started from).
        pub fn generation(&self) -> u64 {
            self.view_with(|v| v.generation())
        }

        /// One row by ref (`OpaqueRef:...`).
        pub fn get(&self, t: $crate::schema::TableId, r: &str) -> Option<$crate::Row> {
            self.view_with(|v| v.get(t, r))
        }

        /// One field of one row.
        pub fn get_field(
            &self,
            t: $crate::schema::TableId,
            r: &str,
            c: $crate::schema::ColumnId,
        ) -> Option<xapi_rpc::Value> {
            self.view_with(|v| v.get_field(t, r, c))
        }

        /// All refs of a table, sorted.
        pub fn refs(&self, t: $crate::schema::TableId) -> Vec<String> {
            self.view_with(|v| v.refs(t))
        }

        /// All rows of a table, sorted by ref (cheap `Arc` clones).
        pub fn rows(&self, t: $crate::schema::TableId) -> Vec<(String, $crate::Row)> {
            self.view_with(|v| v.rows(t))
        }

        /// Number of rows in a table.
        pub fn count(&self, t: $crate::schema::TableId) -> usize {
            self.view_with(|v| v.count(t))
        }

        /// The ref of the row whose `uuid` column is `uuid` (`get_by_uuid`).
        pub fn ref_by_uuid(&self, t: $crate::schema::TableId, uuid: &str) -> Option<String> {
            self.view_with(|v| v.ref_by_uuid(t, uuid))
        }

        /// Refs of rows whose `name_label` is `name` (`get_by_name_label`), sorted.
        pub fn refs_by_name_label(&self, t: $crate::schema::TableId, name: &str) -> Vec<String> {
            self.view_with(|v| v.refs_by_name_label(t, name))
        }

        /// Refs of rows whose column `c` holds `target` (indexed for Ref columns), sorted.
        pub fn refs_where_ref(
            &self,
            t: $crate::schema::TableId,
            c: $crate::schema::ColumnId,
            target: &str,
        ) -> Vec<String> {
            self.view_with(|v| v.refs_where_ref(t, c, target))
        }

        /// Rows matching a filter (`get_all_records_where`); an unknown column compares as
        /// the empty string. Use [`Self::try_filter`] to refuse unknown columns instead.
        pub fn filter(
            &self,
            t: $crate::schema::TableId,
            expr: &$crate::filter::Expr,
        ) -> Vec<(String, $crate::Row)> {
            self.view_with(|v| v.filter(t, expr))
        }

        /// Rows matching a filter; a `field` the table lacks is an error (`INVALID_VALUE`).
        pub fn try_filter(
            &self,
            t: $crate::schema::TableId,
            expr: &$crate::filter::Expr,
        ) -> Result<Vec<(String, $crate::Row)>, $crate::filter::FilterError> {
            self.view_with(|v| v.try_filter(t, expr))
        }
    };
}
pub(crate) use delegate_reads;

impl<'a> ReadView<'a> {
    /// The schema the store was opened with.
    pub fn schema(&self) -> &'a Schema {
        &self.catalog.schema
    }

    /// The id of a table by exact wire name (`VM`).
    pub fn table_id(&self, name: &str) -> Option<TableId> {
        self.catalog.names.tables.get(name).copied()
    }

    /// The id of a column by exact wire name (`name_label`).
    pub fn column_id(&self, t: TableId, name: &str) -> Option<ColumnId> {
        self.catalog.names.columns.get(t)?.get(name).copied()
    }

    /// The last committed generation.
    pub fn generation(&self) -> u64 {
        self.state.generation
    }

    /// One row by ref (`OpaqueRef:...`).
    pub fn get(&self, t: TableId, r: &str) -> Option<Row> {
        let entry = self.state.tables.get(t)?.rows.get(r)?;
        Some(self.state.materialize(&self.catalog.info, t, r, entry))
    }

    /// One field of one row.
    pub fn get_field(&self, t: TableId, r: &str, c: ColumnId) -> Option<Value> {
        let entry = self.state.tables.get(t)?.rows.get(r)?;
        let info = &self.catalog.info;
        if info.tables[t].derived.get(c).copied().unwrap_or(false) {
            let relation = info.tables[t]
                .many_side
                .iter()
                .map(|i| info.relations[*i])
                .find(|rel| rel.many_column == c)?;
            return Some(Value::Array(self.state.members(relation, r)));
        }
        entry.row.get(c).cloned()
    }

    /// The creation and last-modification generations of a row.
    pub fn generations(&self, t: TableId, r: &str) -> Option<(u64, u64)> {
        let entry = self.state.tables.get(t)?.rows.get(r)?;
        Some((entry.created, entry.modified))
    }

    /// All refs of a table, sorted.
    pub fn refs(&self, t: TableId) -> Vec<String> {
        self.state
            .tables
            .get(t)
            .map(|table| table.rows.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// All rows of a table, sorted by ref (cheap `Arc` clones).
    pub fn rows(&self, t: TableId) -> Vec<(String, Row)> {
        self.state
            .tables
            .get(t)
            .map(|table| {
                table
                    .rows
                    .iter()
                    .map(|(r, entry)| {
                        (
                            r.clone(),
                            self.state.materialize(&self.catalog.info, t, r, entry),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Number of rows in a table.
    pub fn count(&self, t: TableId) -> usize {
        self.state.tables.get(t).map_or(0, |table| table.rows.len())
    }

    /// The ref of the row whose `uuid` column is `uuid` (`get_by_uuid`).
    pub fn ref_by_uuid(&self, t: TableId, uuid: &str) -> Option<String> {
        self.state.tables.get(t)?.by_uuid.get(uuid).cloned()
    }

    /// Refs of rows whose `name_label` is `name` (`get_by_name_label`), sorted.
    pub fn refs_by_name_label(&self, t: TableId, name: &str) -> Vec<String> {
        self.state
            .tables
            .get(t)
            .and_then(|table| table.by_name.get(name))
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Refs of rows whose column `c` holds `target`, sorted; indexed for Ref columns, a scan
    /// comparing the stored text otherwise.
    pub fn refs_where_ref(&self, t: TableId, c: ColumnId, target: &str) -> Vec<String> {
        let (Some(table), Some(info)) = (self.state.tables.get(t), self.catalog.info.tables.get(t))
        else {
            return Vec::new();
        };
        if let Some(slot) = info.ref_columns.iter().position(|x| *x == c) {
            return table.by_ref[slot]
                .get(target)
                .map(|set| set.iter().cloned().collect())
                .unwrap_or_default();
        }
        table
            .rows
            .iter()
            .filter(|(r, entry)| {
                self.state
                    .materialize(&self.catalog.info, t, r, entry)
                    .get(c)
                    .is_some_and(|v| crate::filter::stored_text(v) == target)
            })
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Rows matching a filter; an unknown column compares as the empty string.
    pub fn filter(&self, t: TableId, expr: &Expr) -> Vec<(String, Row)> {
        let Some(table) = self.catalog.schema.tables.get(t) else {
            return Vec::new();
        };
        let compiled = expr.compile_lenient(table);
        self.matching(t, &compiled)
    }

    /// Rows matching a filter; a `field` the table lacks is an error.
    pub fn try_filter(&self, t: TableId, expr: &Expr) -> Result<Vec<(String, Row)>, FilterError> {
        let Some(table) = self.catalog.schema.tables.get(t) else {
            return Ok(Vec::new());
        };
        let compiled = expr.compile(table)?;
        Ok(self.matching(t, &compiled))
    }

    fn matching(&self, t: TableId, compiled: &crate::filter::Compiled) -> Vec<(String, Row)> {
        self.state
            .tables
            .get(t)
            .map(|table| {
                table
                    .rows
                    .iter()
                    .filter_map(|(r, entry)| {
                        let row = self.state.materialize(&self.catalog.info, t, r, entry);
                        compiled.matches(&row).then(|| (r.clone(), row))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
