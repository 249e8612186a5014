//! Checks a wire value against a datamodel type, for the conformance test.
use xapi_idl::model::Model;
use xapi_idl::{DateTime, Type, Value};

/// `Ok` when `v` is a canonical wire value of type `ty`; otherwise a description of the mismatch.
pub fn check(model: &Model, ty: &Type, v: &Value) -> Result<(), String> {
    let bad = || Err(format!("expected {ty:?}, got {v:?}"));
    match (ty, v) {
        (Type::String, Value::String(_)) => Ok(()),
        (Type::Int, Value::Int(_)) => Ok(()),
        // XML-RPC carries ints untyped: a decimal string is an int on the wire.
        (Type::Int, Value::String(s)) if s.parse::<i64>().is_ok() => Ok(()),
        (Type::Float, Value::Double(_)) => Ok(()),
        (Type::Bool, Value::Bool(_)) => Ok(()),
        (Type::DateTime, Value::DateTime(s)) if DateTime::parse(s).is_some() => Ok(()),
        (Type::Ref(_), Value::String(s)) if s.starts_with("OpaqueRef:") => Ok(()),
        (Type::Enum(e), Value::String(s)) => {
            if model.enums.get(e).is_some_and(|vals| vals.contains(s)) {
                Ok(())
            } else {
                Err(format!("{s:?} is not a value of enum {e}"))
            }
        }
        (Type::Set(inner), Value::Array(items)) => {
            items.iter().try_for_each(|x| check(model, inner, x))
        }
        (Type::Map(k, val), Value::Struct(members)) => members.iter().try_for_each(|(key, x)| {
            check(model, k, &Value::String(key.clone())).or_else(|e| match **k {
                Type::Int if key.parse::<i64>().is_ok() => Ok(()),
                _ => Err(e),
            })?;
            check(model, val, x)
        }),
        (Type::Record(class), Value::Struct(members)) => {
            let Some(c) = model.class(class) else {
                return Ok(());
            };
            for f in c
                .fields
                .iter()
                .filter(|f| f.lifecycle != xapi_idl::Lifecycle::Removed)
            {
                let x = members
                    .iter()
                    .find(|(k, _)| *k == f.name)
                    .map(|(_, x)| x)
                    .ok_or_else(|| format!("record {class} lacks field {}", f.name))?;
                check(model, &f.ty, x).map_err(|e| format!("{class}.{}: {e}", f.name))?;
            }
            Ok(())
        }
        (Type::Void, Value::String(s)) if s.is_empty() => Ok(()),
        (Type::Option(inner), x) => check(model, inner, x),
        (Type::Any, _) => Ok(()),
        _ => bad(),
    }
}
