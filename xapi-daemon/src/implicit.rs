//! The implicit messages of every persisted class (`get_record`, `get_<field>`, `set_<field>`,
//! map and set updates, `create`, `destroy`, the `get_all*` family), run generically from the
//! method table against the object store. Nobody writes `VM.get_name_label` by hand.
use xapi_db::{Expr, TableId};
use xapi_idl::coerce::{normalize, normalize_key};
use xapi_idl::model::{ClassDef, Implicit, MessageDef};
use xapi_idl::{errors, ApiError, ApiResult, Lifecycle, Qualifier, Type, Value, NULL_REF};

use crate::app::App;

/// Runs implicit message `msg` with `args` (session removed, defaults filled).
pub fn run(app: &App, msg: &MessageDef, kind: Implicit, args: Vec<Value>) -> ApiResult<Value> {
    let class = &app.model.classes[msg.class];
    let Some(t) = app.tables.table(msg.class) else {
        return Err(errors::not_implemented(&msg.wire));
    };
    let mut args = args.into_iter();
    let mut next = || args.next().unwrap_or(Value::Nil);
    match kind {
        Implicit::GetRecord => {
            let r = ref_arg(next())?;
            let row = app
                .db
                .get(t, &r)
                .ok_or_else(|| errors::handle_invalid(&class.name, &r))?;
            Ok(record_value(class, &row))
        }
        Implicit::GetByUuid => {
            let uuid = string_arg(next(), "uuid")?;
            let r = app
                .db
                .ref_by_uuid(t, &uuid)
                .ok_or_else(|| errors::uuid_invalid(&class.name, &uuid))?;
            Ok(Value::String(r))
        }
        Implicit::GetByNameLabel => {
            let label = string_arg(next(), "label")?;
            Ok(Value::Array(
                app.db
                    .refs_by_name_label(t, &label)
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            ))
        }
        Implicit::GetAll => Ok(Value::Array(
            app.db.refs(t).into_iter().map(Value::String).collect(),
        )),
        Implicit::GetAllRecords => Ok(records_map(class, app.db.rows(t))),
        Implicit::GetAllWhere | Implicit::GetAllRecordsWhere => {
            let text = string_arg(next(), "expr")?;
            let rows = Expr::parse(&text)
                .map_err(|e| e.to_string())
                .and_then(|expr| app.db.try_filter(t, &expr).map_err(|e| e.to_string()))
                .map_err(|e| errors::invalid_value(&text, e))?;
            if kind == Implicit::GetAllWhere {
                Ok(Value::Array(
                    rows.into_iter().map(|(r, _)| Value::String(r)).collect(),
                ))
            } else {
                Ok(records_map(class, rows))
            }
        }
        Implicit::GetField(f) => {
            let r = ref_arg(next())?;
            app.db
                .get_field(t, &r, f)
                .ok_or_else(|| errors::handle_invalid(&class.name, &r))
        }
        Implicit::SetField(f) => {
            let r = ref_arg(next())?;
            let v = field_value(app, class, f, &next())?;
            write_field(app, class, t, &r, |txn| txn.set_field(t, &r, f, v))
        }
        Implicit::AddToMap(f) => {
            let r = ref_arg(next())?;
            let (key_ty, val_ty) = map_types(&class.fields[f].ty)?;
            let key = map_key(app, key_ty, &next(), &class.fields[f].name)?;
            let v = normalize(val_ty, &next(), &app.model.enums)
                .map_err(|e| ApiError::from(e.at(&class.fields[f].name)))?;
            let result = app.db.write(|txn| {
                check_exists(txn, t, &r)?;
                txn.map_add(t, &r, f, &key, v)
            });
            match result {
                Err(xapi_db::DbError::DuplicateKey { key }) => {
                    let uuid = uuid_of(app, class, t, &r);
                    Err(errors::map_duplicate_key(
                        &class.name,
                        &class.fields[f].name,
                        uuid,
                        key,
                    ))
                }
                other => other
                    .map(|()| void())
                    .map_err(|e| not_found_as_handle(e, class, &r)),
            }
        }
        Implicit::RemoveFromMap(f) => {
            let r = ref_arg(next())?;
            let (key_ty, _) = map_types(&class.fields[f].ty)?;
            let key = map_key(app, key_ty, &next(), &class.fields[f].name)?;
            // Compatibility: removing a key that is not there succeeds silently.
            write_field(app, class, t, &r, |txn| txn.map_remove(t, &r, f, &key))
        }
        Implicit::AddToSet(f) | Implicit::RemoveFromSet(f) => {
            let r = ref_arg(next())?;
            let Type::Set(elem) = &class.fields[f].ty else {
                return Err(ApiError::internal(format!("{} is not a set", msg.wire)));
            };
            let v = normalize(elem, &next(), &app.model.enums)
                .map_err(|e| ApiError::from(e.at(&class.fields[f].name)))?;
            if matches!(kind, Implicit::AddToSet(_)) {
                write_field(app, class, t, &r, |txn| txn.set_add(t, &r, f, v))
            } else {
                write_field(app, class, t, &r, |txn| txn.set_remove(t, &r, f, v))
            }
        }
        Implicit::Create => {
            let r = create(app, class, t, &next())?;
            crate::hooks::after_create(app, class, &r)?;
            Ok(Value::String(r))
        }
        Implicit::Destroy => {
            let r = ref_arg(next())?;
            if app.db.get(t, &r).is_some() {
                crate::hooks::before_destroy(app, class, &r)?;
                if app.db.get(t, &r).is_none() {
                    // The hook removed the object with its resources (a VDI's storage).
                    return Ok(void());
                }
            }
            app.db
                .write(|txn| txn.delete(t, &r).map(|_| ()))
                .map(|()| void())
                .map_err(|e| not_found_as_handle(e, class, &r))
        }
    }
}

/// The empty string that stands for `void`.
fn void() -> Value {
    Value::String(String::new())
}

fn ref_arg(v: Value) -> ApiResult<String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(errors::field_type_error(format!("self ({})", other.kind()))),
    }
}

fn string_arg(v: Value, name: &str) -> ApiResult<String> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(errors::field_type_error(name)),
    }
}

fn map_types(ty: &Type) -> ApiResult<(&Type, &Type)> {
    match ty {
        Type::Map(k, v) => Ok((k, v)),
        other => Err(ApiError::internal(format!("{other:?} is not a map"))),
    }
}

fn map_key(app: &App, key_ty: &Type, v: &Value, field: &str) -> ApiResult<String> {
    let key = match v {
        Value::String(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => return Err(errors::field_type_error(field)),
    };
    normalize_key(key_ty, &key, &app.model.enums).map_err(|e| e.at(field).into())
}

fn field_value(app: &App, class: &ClassDef, f: usize, v: &Value) -> ApiResult<Value> {
    normalize(&class.fields[f].ty, v, &app.model.enums)
        .map_err(|e| e.at(&class.fields[f].name).into())
}

fn check_exists(txn: &xapi_db::Txn<'_>, t: TableId, r: &str) -> Result<(), xapi_db::DbError> {
    if txn.view().get(t, r).is_some() {
        Ok(())
    } else {
        Err(xapi_db::DbError::NotFound {
            table: String::new(),
            r#ref: r.to_owned(),
        })
    }
}

fn write_field(
    app: &App,
    class: &ClassDef,
    t: TableId,
    r: &str,
    f: impl FnOnce(&mut xapi_db::Txn<'_>) -> Result<(), xapi_db::DbError>,
) -> ApiResult<Value> {
    app.db
        .write(|txn| {
            check_exists(txn, t, r)?;
            f(txn)
        })
        .map(|()| void())
        .map_err(|e| not_found_as_handle(e, class, r))
}

fn not_found_as_handle(e: xapi_db::DbError, class: &ClassDef, r: &str) -> ApiError {
    match e {
        xapi_db::DbError::NotFound { .. } => errors::handle_invalid(&class.name, r),
        other => crate::errors::db_error(other),
    }
}

fn uuid_of(app: &App, class: &ClassDef, t: TableId, r: &str) -> String {
    class
        .uuid_field
        .and_then(|u| app.db.get_field(t, r, u))
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A row as the wire record: every field but removed ones, named as the datamodel names them.
pub fn record_value(class: &ClassDef, row: &[Value]) -> Value {
    let mut members = Vec::with_capacity(class.fields.len());
    for (f, v) in class.fields.iter().zip(row) {
        if f.lifecycle != Lifecycle::Removed {
            members.push((f.name.clone(), v.clone()));
        }
    }
    Value::Struct(members)
}

fn records_map(class: &ClassDef, rows: Vec<(String, xapi_db::Row)>) -> Value {
    Value::Struct(
        rows.into_iter()
            .map(|(r, row)| (r, record_value(class, &row)))
            .collect(),
    )
}

/// `<Class>.create`: fills the constructor fields given, defaults the rest, checks references.
fn create(app: &App, class: &ClassDef, t: TableId, record: &Value) -> ApiResult<String> {
    let Value::Struct(members) = record else {
        return Err(errors::field_type_error("args"));
    };
    let mut row = Vec::with_capacity(class.fields.len());
    for f in &class.fields {
        let given = if f.qualifier == Qualifier::DynamicRo || f.derived {
            None
        } else {
            members.iter().find(|(k, _)| *k == f.name).map(|(_, v)| v)
        };
        let v = match given {
            Some(v) => {
                normalize(&f.ty, v, &app.model.enums).map_err(|e| ApiError::from(e.at(&f.name)))?
            }
            None => f.default.clone(),
        };
        if let (Type::Ref(target), Value::String(s)) = (&f.ty, &v) {
            check_ref(app, target, s)?;
        }
        row.push(v);
    }
    if let Some(u) = class.uuid_field {
        row[u] = Value::String(uuid::Uuid::new_v4().to_string());
    }
    let r = format!("OpaqueRef:{}", uuid::Uuid::new_v4());
    app.write(|txn| txn.insert(t, &r, row))?;
    Ok(r)
}

/// A non-null reference must name an existing object (`HANDLE_INVALID [class, ref]`).
fn check_ref(app: &App, class_name: &str, r: &str) -> ApiResult<()> {
    if r == NULL_REF {
        return Ok(());
    }
    let Some(ci) = app.model.class_index(class_name) else {
        return Ok(());
    };
    let Some(t) = app.tables.table(ci) else {
        return Ok(());
    };
    if app.db.get(t, r).is_none() {
        return Err(errors::handle_invalid(class_name, r));
    }
    Ok(())
}
