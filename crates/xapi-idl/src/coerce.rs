//! Type-driven normalisation of wire values into the canonical stored form.
//!
//! The implicit-message engine and constructors use this for values whose type is only known
//! at run time (from the method table). Typed code uses `FromValue` instead; both accept the
//! same liberal spellings.
use std::collections::HashMap;

use xapi_rpc::Value;

use crate::{ConvError, DateTime, Type, NULL_REF};

/// Converts `v` to the canonical form of `ty`: ints as `Int`, enums in datamodel spelling,
/// `""` refs as the null ref, datetimes in wire form, map keys rendered canonically.
pub fn normalize(
    ty: &Type,
    v: &Value,
    enums: &HashMap<String, Vec<String>>,
) -> Result<Value, ConvError> {
    Ok(match ty {
        Type::String => match v {
            Value::String(_) => v.clone(),
            Value::DateTime(s) => Value::String(s.clone()),
            _ => return Err(ConvError::expected("string", v)),
        },
        Type::Int => Value::Int(crate::FromValue::from_value(v)?),
        Type::Float => Value::Double(crate::FromValue::from_value(v)?),
        Type::Bool => Value::Bool(crate::FromValue::from_value(v)?),
        Type::DateTime => {
            let t: DateTime = crate::FromValue::from_value(v)?;
            Value::DateTime(t.to_string())
        }
        Type::Ref(_) => match v {
            Value::String(s) if s.is_empty() => Value::String(NULL_REF.to_owned()),
            Value::String(_) => v.clone(),
            _ => return Err(ConvError::expected("ref", v)),
        },
        Type::Enum(name) => Value::String(normalize_enum(name, v, enums)?),
        Type::Set(inner) => match v {
            Value::Array(items) => {
                let mut out: Vec<Value> = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let n = normalize(inner, item, enums).map_err(|e| e.at(&i.to_string()))?;
                    if !out.contains(&n) {
                        out.push(n);
                    }
                }
                Value::Array(out)
            }
            _ => return Err(ConvError::expected("array", v)),
        },
        Type::Map(k, val) => match v {
            Value::Struct(members) => {
                let mut out: Vec<(String, Value)> = Vec::with_capacity(members.len());
                for (key, x) in members {
                    let key = normalize_key(k, key, enums)?;
                    let x = normalize(val, x, enums).map_err(|e| e.at(&key))?;
                    match out.iter_mut().find(|(existing, _)| *existing == key) {
                        Some(slot) => slot.1 = x,
                        None => out.push((key, x)),
                    }
                }
                Value::Struct(out)
            }
            _ => return Err(ConvError::expected("struct", v)),
        },
        Type::Option(inner) => match v {
            Value::Nil => Value::Nil,
            other => normalize(inner, other, enums)?,
        },
        Type::Record(_) | Type::Any | Type::Void => v.clone(),
    })
}

/// Canonical spelling of a map key of type `ty`.
pub fn normalize_key(
    ty: &Type,
    key: &str,
    enums: &HashMap<String, Vec<String>>,
) -> Result<String, ConvError> {
    let v = Value::String(key.to_owned());
    Ok(match ty {
        Type::Int => i64::from_value_key(key)
            .ok_or_else(|| ConvError::expected("int key", &v))?
            .to_string(),
        Type::Enum(name) => normalize_enum(name, &v, enums)?,
        Type::Ref(_) if key.is_empty() => NULL_REF.to_owned(),
        _ => key.to_owned(),
    })
}

fn normalize_enum(
    name: &str,
    v: &Value,
    enums: &HashMap<String, Vec<String>>,
) -> Result<String, ConvError> {
    let expected = || ConvError::expected(&format!("enum {name}"), v);
    let Value::String(s) = v else {
        return Err(expected());
    };
    enums
        .get(name)
        .and_then(|values| values.iter().find(|x| x.eq_ignore_ascii_case(s)))
        .cloned()
        .ok_or_else(expected)
}

trait KeyInt: Sized {
    fn from_value_key(key: &str) -> Option<Self>;
}

impl KeyInt for i64 {
    fn from_value_key(key: &str) -> Option<i64> {
        key.trim().parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enums() -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "power".to_owned(),
            vec!["Halted".to_owned(), "Running".to_owned()],
        )])
    }

    #[test]
    fn enums_are_accepted_in_any_case_and_stored_canonically() {
        let v = normalize(
            &Type::Enum("power".into()),
            &Value::String("running".into()),
            &enums(),
        )
        .unwrap();
        assert_eq!(v, Value::String("Running".into()));
        assert!(normalize(
            &Type::Enum("power".into()),
            &Value::String("flying".into()),
            &enums()
        )
        .is_err());
    }

    #[test]
    fn int_strings_become_ints() {
        assert_eq!(
            normalize(&Type::Int, &Value::String("12".into()), &enums()).unwrap(),
            Value::Int(12)
        );
    }

    #[test]
    fn empty_ref_is_null() {
        let v = normalize(
            &Type::Ref("VM".into()),
            &Value::String(String::new()),
            &enums(),
        )
        .unwrap();
        assert_eq!(v, Value::String(NULL_REF.into()));
    }

    #[test]
    fn sets_drop_duplicates_and_maps_canonicalise_keys() {
        let set = Value::Array(vec![Value::String("a".into()), Value::String("a".into())]);
        let n = normalize(&Type::Set(Box::new(Type::String)), &set, &enums()).unwrap();
        assert_eq!(n, Value::Array(vec![Value::String("a".into())]));
        let map = Value::Struct(vec![("07".into(), Value::Int(1))]);
        let ty = Type::Map(Box::new(Type::Int), Box::new(Type::Int));
        assert_eq!(
            normalize(&ty, &map, &enums()).unwrap(),
            Value::Struct(vec![("7".into(), Value::Int(1))])
        );
    }
}
