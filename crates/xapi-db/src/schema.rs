//! The datamodel description the store is opened with: tables, columns, relations.
//!
//! The store never knows a XenAPI class by name: everything it does per class is derived from
//! a [`Schema`] handed in at open time. This module also owns [`schema_fingerprint`] and the
//! derived lookup tables (which column is the uuid, which columns are relation-derived ...).

use std::collections::HashSet;

use xapi_rpc::Value;

use crate::error::DbError;

/// Index of a table in [`Schema::tables`].
pub type TableId = usize;
/// Index of a column in [`TableSchema::columns`].
pub type ColumnId = usize;

/// The whole datamodel as the store sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// One table per class; a [`TableId`] is an index into this.
    pub tables: Vec<TableSchema>,
    /// One-to-many relations whose many side the store maintains.
    pub relations: Vec<Relation>,
}

/// One class.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    /// Class wire name, e.g. `VM`.
    pub name: String,
    /// Fields in order; a [`ColumnId`] is an index into this.
    pub columns: Vec<ColumnSchema>,
}

/// One field of a class.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSchema {
    /// Field wire name, e.g. `name_label`.
    pub name: String,
    /// How the value is stored and compared.
    pub kind: ColumnKind,
    /// The value used when the column is added to an existing database.
    pub default: Value,
}

/// The storage kind of a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// `Value::String`, SQLite TEXT.
    String,
    /// `Value::Int`, SQLite INTEGER.
    Int,
    /// `Value::Double`, SQLite REAL.
    Float,
    /// `Value::Bool`, SQLite INTEGER 0/1.
    Bool,
    /// `Value::DateTime`, SQLite TEXT.
    DateTime,
    /// An enum name as `Value::String`, SQLite TEXT.
    Enum,
    /// A ref (`OpaqueRef:...`) as `Value::String`, SQLite TEXT; indexed.
    Ref {
        /// Wire name of the table the ref points into.
        table: String,
    },
    /// `Value::Array`, SQLite TEXT holding JSON.
    Set,
    /// `Value::Struct`, SQLite TEXT holding JSON.
    Map,
    /// Any value, SQLite TEXT holding JSON.
    Other,
}

impl ColumnKind {
    /// A stable short name, used by the fingerprint and error messages.
    pub fn name(&self) -> String {
        match self {
            ColumnKind::String => "string".into(),
            ColumnKind::Int => "int".into(),
            ColumnKind::Float => "float".into(),
            ColumnKind::Bool => "bool".into(),
            ColumnKind::DateTime => "datetime".into(),
            ColumnKind::Enum => "enum".into(),
            ColumnKind::Ref { table } => format!("ref:{table}"),
            ColumnKind::Set => "set".into(),
            ColumnKind::Map => "map".into(),
            ColumnKind::Other => "other".into(),
        }
    }
}

/// A one-to-many relation: `one` is a Ref column (e.g. `("VBD", "VM")`), `many` a Set column of
/// refs (e.g. `("VM", "VBDs")`) that the store derives from it and never persists.
///
/// The many side is read from the index of the Ref column, so its members come sorted by ref;
/// writes to it are refused (`DbError::DerivedColumn`) and the values given for it at insert are
/// ignored. A change of the one side counts as a change of the old and the new target row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// (table, column) of the Ref column.
    pub one: (String, String),
    /// (table, column) of the derived Set column.
    pub many: (String, String),
}

/// Version of the on-disk layout; the highest entry of [`crate::MIGRATIONS`].
pub const SCHEMA_VERSION: u32 = 1;

/// A stable hex hash of table names, column names and kinds, and relations.
///
/// Tables, columns and relations are sorted by name first, so reordering the datamodel does not
/// change it; defaults are not part of it. FNV-1a, 128 bits as two 64-bit lanes.
pub fn schema_fingerprint(schema: &Schema) -> String {
    let mut tables: Vec<&TableSchema> = schema.tables.iter().collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let mut text = String::new();
    for table in tables {
        text.push_str("table ");
        text.push_str(&table.name);
        text.push('\n');
        let mut columns: Vec<&ColumnSchema> = table.columns.iter().collect();
        columns.sort_by(|a, b| a.name.cmp(&b.name));
        for column in columns {
            text.push_str(" column ");
            text.push_str(&column.name);
            text.push(' ');
            text.push_str(&column.kind.name());
            text.push('\n');
        }
    }
    let mut relations: Vec<String> = schema
        .relations
        .iter()
        .map(|r| {
            format!(
                "relation {}.{} {}.{}\n",
                r.one.0, r.one.1, r.many.0, r.many.1
            )
        })
        .collect();
    relations.sort();
    for relation in relations {
        text.push_str(&relation);
    }
    format!(
        "{:016x}{:016x}",
        fnv1a(text.as_bytes(), 0xcbf2_9ce4_8422_2325),
        fnv1a(text.as_bytes(), 0x6c62_272e_07bb_0142)
    )
}

fn fnv1a(bytes: &[u8], offset: u64) -> u64 {
    let mut hash = offset;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Derived facts about one table, computed once at open.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableInfo {
    /// The `uuid` column, when present.
    pub uuid: Option<ColumnId>,
    /// The `name_label` column, when present.
    pub name_label: Option<ColumnId>,
    /// Every Ref column (each has an index).
    pub ref_columns: Vec<ColumnId>,
    /// `derived[c]`: column `c` is the many side of a relation.
    pub derived: Vec<bool>,
    /// Relations (indexes into `SchemaInfo::relations`) whose one side is in this table.
    pub one_side: Vec<usize>,
    /// Relations whose many side is in this table.
    pub many_side: Vec<usize>,
}

/// A relation resolved to ids.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RelationIds {
    pub one_table: TableId,
    pub one_column: ColumnId,
    /// Position of `one_column` in the one table's `ref_columns` (its index slot).
    pub one_slot: usize,
    pub many_table: TableId,
    pub many_column: ColumnId,
}

/// Derived facts about the whole schema.
#[derive(Debug, Clone)]
pub(crate) struct SchemaInfo {
    pub tables: Vec<TableInfo>,
    pub relations: Vec<RelationIds>,
}

/// Names the store uses for its own tables and columns; the datamodel may not use them.
const RESERVED_COLUMNS: [&str; 3] = ["ref", "_created", "_modified"];

impl SchemaInfo {
    /// Checks the schema and derives the lookup tables.
    pub fn new(schema: &Schema) -> Result<SchemaInfo, DbError> {
        let bad = |s: String| Err(DbError::InvalidSchema(s));
        let mut table_names = HashSet::new();
        let mut tables = Vec::with_capacity(schema.tables.len());
        for table in &schema.tables {
            // SQLite identifiers are case-insensitive, so names must differ in more than case.
            if table.name.is_empty()
                || table.name.starts_with('_')
                || table.name.to_ascii_lowercase().starts_with("sqlite_")
            {
                return bad(format!("table name {:?} is reserved", table.name));
            }
            if !table_names.insert(table.name.to_ascii_lowercase()) {
                return bad(format!("duplicate table {}", table.name));
            }
            let mut column_names = HashSet::new();
            let mut info = TableInfo {
                derived: vec![false; table.columns.len()],
                ..TableInfo::default()
            };
            for (id, column) in table.columns.iter().enumerate() {
                let lower = column.name.to_ascii_lowercase();
                if column.name.is_empty() || RESERVED_COLUMNS.contains(&lower.as_str()) {
                    return bad(format!(
                        "column name {}.{:?} is reserved",
                        table.name, column.name
                    ));
                }
                if !column_names.insert(lower) {
                    return bad(format!("duplicate column {}.{}", table.name, column.name));
                }
                if column.name == "uuid" {
                    info.uuid = Some(id);
                }
                if column.name == "name_label" {
                    info.name_label = Some(id);
                }
                if matches!(column.kind, ColumnKind::Ref { .. }) {
                    info.ref_columns.push(id);
                }
            }
            tables.push(info);
        }
        let find = |(t, c): &(String, String)| -> Option<(TableId, ColumnId)> {
            let tid = schema.tables.iter().position(|x| &x.name == t)?;
            let cid = schema.tables[tid]
                .columns
                .iter()
                .position(|x| &x.name == c)?;
            Some((tid, cid))
        };
        let mut relations = Vec::with_capacity(schema.relations.len());
        for (index, relation) in schema.relations.iter().enumerate() {
            let describe = format!(
                "relation {}.{} -> {}.{}",
                relation.one.0, relation.one.1, relation.many.0, relation.many.1
            );
            let Some((one_table, one_column)) = find(&relation.one) else {
                return bad(format!("{describe}: unknown one side"));
            };
            let Some((many_table, many_column)) = find(&relation.many) else {
                return bad(format!("{describe}: unknown many side"));
            };
            if !matches!(
                schema.tables[one_table].columns[one_column].kind,
                ColumnKind::Ref { .. }
            ) {
                return bad(format!("{describe}: one side is not a Ref column"));
            }
            if schema.tables[many_table].columns[many_column].kind != ColumnKind::Set {
                return bad(format!("{describe}: many side is not a Set column"));
            }
            if tables[many_table].derived[many_column] {
                return bad(format!("{describe}: many side is already derived"));
            }
            tables[many_table].derived[many_column] = true;
            tables[one_table].one_side.push(index);
            tables[many_table].many_side.push(index);
            let one_slot = tables[one_table]
                .ref_columns
                .iter()
                .position(|c| *c == one_column)
                .unwrap_or_default();
            relations.push(RelationIds {
                one_table,
                one_column,
                one_slot,
                many_table,
                many_column,
            });
        }
        Ok(SchemaInfo { tables, relations })
    }
}

// Tests unwrap: a failure there is the assertion.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn column(name: &str, kind: ColumnKind) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            kind,
            default: Value::String(String::new()),
        }
    }

    fn sample() -> Schema {
        Schema {
            tables: vec![
                TableSchema {
                    name: "A".into(),
                    columns: vec![
                        column("uuid", ColumnKind::String),
                        column("bs", ColumnKind::Set),
                    ],
                },
                TableSchema {
                    name: "B".into(),
                    columns: vec![
                        column("uuid", ColumnKind::String),
                        column("a", ColumnKind::Ref { table: "A".into() }),
                    ],
                },
            ],
            relations: vec![Relation {
                one: ("B".into(), "a".into()),
                many: ("A".into(), "bs".into()),
            }],
        }
    }

    #[test]
    fn fingerprint_is_stable_across_calls_and_orderings() {
        let schema = sample();
        let first = schema_fingerprint(&schema);
        assert_eq!(first.len(), 32);
        assert_eq!(first, schema_fingerprint(&schema.clone()));
        let mut reordered = schema.clone();
        reordered.tables.reverse();
        reordered.tables[0].columns.reverse();
        assert_eq!(first, schema_fingerprint(&reordered));
    }

    #[test]
    fn fingerprint_pins_known_value() {
        // Pinned so an accidental change to the hashing scheme is noticed.
        let schema = Schema {
            tables: vec![TableSchema {
                name: "T".into(),
                columns: vec![column("x", ColumnKind::Int)],
            }],
            relations: vec![],
        };
        assert_eq!(
            schema_fingerprint(&schema),
            "a38bfb2165657490db348e49aa2999bf"
        );
        let mut other = schema.clone();
        other.tables[0].columns[0].kind = ColumnKind::String;
        assert_ne!(schema_fingerprint(&schema), schema_fingerprint(&other));
    }

    #[test]
    fn fingerprint_changes_with_relations_and_ref_targets() {
        let schema = sample();
        let mut no_relation = schema.clone();
        no_relation.relations.clear();
        assert_ne!(
            schema_fingerprint(&schema),
            schema_fingerprint(&no_relation)
        );
        let mut retarget = schema.clone();
        retarget.tables[1].columns[1].kind = ColumnKind::Ref { table: "C".into() };
        assert_ne!(schema_fingerprint(&schema), schema_fingerprint(&retarget));
    }

    #[test]
    fn fingerprint_ignores_defaults() {
        let schema = sample();
        let mut other = schema.clone();
        other.tables[0].columns[0].default = Value::String("x".into());
        assert_eq!(schema_fingerprint(&schema), schema_fingerprint(&other));
    }

    #[test]
    fn relation_marks_many_side_derived() {
        let info = SchemaInfo::new(&sample()).unwrap();
        assert!(info.tables[0].derived[1]);
        assert!(!info.tables[1].derived[1]);
        assert_eq!(info.tables[1].ref_columns, vec![1]);
        assert_eq!(info.tables[0].uuid, Some(0));
    }

    #[test]
    fn relation_with_non_set_many_side_is_rejected() {
        let mut schema = sample();
        schema.tables[0].columns[1].kind = ColumnKind::String;
        assert!(matches!(
            SchemaInfo::new(&schema),
            Err(DbError::InvalidSchema(_))
        ));
    }

    #[test]
    fn case_insensitive_duplicate_table_is_rejected() {
        let mut schema = sample();
        schema.tables[1].name = "a".into();
        schema.relations.clear();
        assert!(matches!(
            SchemaInfo::new(&schema),
            Err(DbError::InvalidSchema(_))
        ));
    }

    #[test]
    fn reserved_column_name_is_rejected() {
        let mut schema = sample();
        schema.tables[0].columns[0].name = "ref".into();
        assert!(matches!(
            SchemaInfo::new(&schema),
            Err(DbError::InvalidSchema(_))
        ));
    }
}
