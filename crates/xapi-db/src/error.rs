//! `DbError`: everything the object store can refuse or fail with; no API error codes here.

use crate::schema::{ColumnId, TableId};

/// A failure of the object store. The daemon maps these to API errors in one place.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No row with this ref in the table (`HANDLE_INVALID` upstream).
    #[error("no {table} with ref {ref}")]
    NotFound {
        /// Table wire name.
        table: String,
        /// The ref that was looked up.
        r#ref: String,
    },
    /// `insert` with a ref that already exists.
    #[error("{table} {ref} already exists")]
    DuplicateRef {
        /// Table wire name.
        table: String,
        /// The ref that is taken.
        r#ref: String,
    },
    /// A row with this uuid already exists in the table (`UUID_INVALID`/duplicate upstream).
    #[error("{table} with uuid {uuid} already exists")]
    UuidExists {
        /// Table wire name.
        table: String,
        /// The uuid that is taken.
        uuid: String,
    },
    /// `insert` with a row that does not have one value per column.
    #[error("{table} row has {got} values, the schema has {expected} columns")]
    WrongArity {
        /// Table wire name.
        table: String,
        /// Number of columns in the schema.
        expected: usize,
        /// Number of values given.
        got: usize,
    },
    /// `map_add` with a key that is already present (`MAP_DUPLICATE_KEY` upstream).
    #[error("map key {key} already present")]
    DuplicateKey {
        /// The key that is present.
        key: String,
    },
    /// A value whose kind does not fit the column.
    #[error("{table}.{column} expects {expected}, got {got}")]
    WrongType {
        /// Table wire name.
        table: String,
        /// Column wire name.
        column: String,
        /// What the column holds.
        expected: &'static str,
        /// The kind of the value given.
        got: &'static str,
    },
    /// A write to the derived (many) side of a relation, which only the store maintains.
    #[error("{table}.{column} is derived from a relation and cannot be written")]
    DerivedColumn {
        /// Table wire name.
        table: String,
        /// Column wire name.
        column: String,
    },
    /// A table id outside the schema.
    #[error("no table with id {0}")]
    UnknownTable(TableId),
    /// A column id outside the table.
    #[error("table {table} has no column with id {column}")]
    UnknownColumn {
        /// Table wire name.
        table: String,
        /// The column id given.
        column: ColumnId,
    },
    /// The schema handed to `open` is unusable (duplicate names, bad relation ...).
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// The database file was written by a newer version of this store.
    #[error("database schema version {found} is newer than this program's {supported}")]
    TooNew {
        /// Version recorded in the file.
        found: u32,
        /// `SCHEMA_VERSION` of this build.
        supported: u32,
    },
    /// A value read from disk does not parse.
    #[error("corrupt value in {table} {ref} column {column}: {reason}")]
    Corrupt {
        /// Table wire name (or internal table).
        table: String,
        /// Ref of the row (or key).
        r#ref: String,
        /// Column name.
        column: String,
        /// What was wrong.
        reason: String,
    },
    /// SQLite failed.
    #[error("sqlite")]
    Sqlite(#[from] rusqlite::Error),
}
