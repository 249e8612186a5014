//! Derives the object store's schema from the datamodel: one table per persisted class, one
//! column per field in datamodel order (so a field's index is its column id), the relations.
use xapi_db::{ColumnKind, ColumnSchema, Relation, Schema, TableId, TableSchema};
use xapi_idl::model::Model;
use xapi_idl::Type;

/// Maps between datamodel class indexes and store table ids.
#[derive(Debug, Clone)]
pub struct Tables {
    by_class: Vec<Option<TableId>>,
    by_table: Vec<usize>,
}

impl Tables {
    /// The table of class `class`, when the class is persisted.
    pub fn table(&self, class: usize) -> Option<TableId> {
        self.by_class.get(class).copied().flatten()
    }

    /// The class of table `t`.
    pub fn class(&self, t: TableId) -> usize {
        self.by_table[t]
    }
}

/// The store schema for `model`, and the class/table mapping.
pub fn derive(model: &Model) -> (Schema, Tables) {
    let mut tables = Vec::new();
    let mut by_class = vec![None; model.classes.len()];
    let mut by_table = Vec::new();
    for (ci, class) in model.classes.iter().enumerate() {
        if !class.persisted {
            continue;
        }
        by_class[ci] = Some(tables.len());
        by_table.push(ci);
        let columns = class
            .fields
            .iter()
            .map(|f| ColumnSchema {
                name: f.name.clone(),
                kind: column_kind(&f.ty),
                default: f.default.clone(),
            })
            .collect();
        tables.push(TableSchema {
            name: class.name.clone(),
            columns,
        });
    }
    let persisted = |name: &str| model.class(name).is_some_and(|c| c.persisted);
    let relations = model
        .relations
        .iter()
        .filter(|(one, many)| persisted(&one.0) && persisted(&many.0))
        .map(|(one, many)| Relation {
            one: one.clone(),
            many: many.clone(),
        })
        .collect();
    (Schema { tables, relations }, Tables { by_class, by_table })
}

fn column_kind(ty: &Type) -> ColumnKind {
    match ty {
        Type::String => ColumnKind::String,
        Type::Int => ColumnKind::Int,
        Type::Float => ColumnKind::Float,
        Type::Bool => ColumnKind::Bool,
        Type::DateTime => ColumnKind::DateTime,
        Type::Enum(_) => ColumnKind::Enum,
        Type::Ref(c) => ColumnKind::Ref { table: c.clone() },
        Type::Set(_) => ColumnKind::Set,
        Type::Map(..) => ColumnKind::Map,
        _ => ColumnKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The persisted schema is pinned to the store's schema version: a datamodel change that
    /// alters it must bump `xapi_db::SCHEMA_VERSION`, add a migration, and update this pin.
    #[test]
    fn schema_fingerprint_is_pinned_to_the_schema_version() {
        let (schema, _) = derive(xapi_idl::model::model());
        let pinned = include_str!("../schema.fingerprint").trim();
        let want = format!(
            "{} {}",
            xapi_db::SCHEMA_VERSION,
            xapi_db::schema_fingerprint(&schema)
        );
        assert_eq!(
            want, pinned,
            "the persisted schema changed: bump SCHEMA_VERSION, add crates/xapi-db/migrations/NNN_*.sql, update xapi-daemon/schema.fingerprint"
        );
    }

    #[test]
    fn field_index_is_column_index() {
        let model = xapi_idl::model::model();
        let (schema, tables) = derive(model);
        let vm = model.class_index("VM").unwrap();
        let t = tables.table(vm).unwrap();
        let f = model.classes[vm].field_index["name_label"];
        assert_eq!(schema.tables[t].columns[f].name, "name_label");
        assert!(tables.table(model.class_index("event").unwrap()).is_none());
    }
}
