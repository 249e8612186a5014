//! Conversions between wire `Value`s and typed Rust values, with upstream's liberal input rules.
//!
//! Input is accepted as upstream accepts it: ints as numbers or decimal strings, enums in any
//! case, `""` as the null ref, datetimes in either ISO 8601 spelling. Output is canonical.
use std::collections::BTreeMap;

use xapi_rpc::Value;

use crate::{ApiResult, Class, ConvError, DateTime, Ref};

/// Typed value -> wire value.
pub trait ToValue {
    /// The canonical wire form.
    fn to_value(&self) -> Value;
}

/// Wire value -> typed value.
pub trait FromValue: Sized {
    /// Converts, accepting upstream's liberal spellings.
    fn from_value(v: &Value) -> Result<Self, ConvError>;
}

/// Types usable as map keys: rendered as struct member names on the wire.
pub trait MapKey: Sized + Ord {
    /// The member name.
    fn to_key(&self) -> String;
    /// Parses a member name.
    fn from_key(key: &str) -> Result<Self, ConvError>;
}

/// A generated datamodel enum.
pub trait WireEnum: Copy + Sized + 'static {
    /// The enum's datamodel name.
    const NAME: &'static str;
    /// Every value in datamodel order.
    const ALL: &'static [Self];
    /// The wire spelling.
    fn as_str(self) -> &'static str;
    /// Parses a wire spelling, case-insensitively as upstream does.
    fn from_wire(s: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }
}

/// A generated record struct.
pub trait Record: Sized + Default + ToValue + FromValue {
    /// The record's class.
    type Class: Class;
    /// One value per field in datamodel order (the object store's row layout).
    fn to_row(&self) -> Vec<Value>;
    /// Reads a row back.
    fn from_row(row: &[Value]) -> Result<Self, ConvError>;
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::String(self.clone())
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self, ConvError> {
        match v {
            Value::String(s) | Value::DateTime(s) => Ok(s.clone()),
            _ => Err(ConvError::expected("string", v)),
        }
    }
}

impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<Self, ConvError> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::String(s) => s.trim().parse().map_err(|_| ConvError::expected("int", v)),
            Value::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e15 => Ok(*d as i64),
            _ => Err(ConvError::expected("int", v)),
        }
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Double(*self)
    }
}

impl FromValue for f64 {
    fn from_value(v: &Value) -> Result<Self, ConvError> {
        match v {
            Value::Double(d) => Ok(*d),
            Value::Int(i) => Ok(*i as f64),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| ConvError::expected("float", v)),
            _ => Err(ConvError::expected("float", v)),
        }
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self, ConvError> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") || s == "1" => Ok(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") || s == "0" => Ok(false),
            _ => Err(ConvError::expected("bool", v)),
        }
    }
}

impl ToValue for () {
    fn to_value(&self) -> Value {
        Value::String(String::new())
    }
}

impl FromValue for () {
    fn from_value(_: &Value) -> Result<Self, ConvError> {
        Ok(())
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl FromValue for Value {
    fn from_value(v: &Value) -> Result<Self, ConvError> {
        Ok(v.clone())
    }
}

impl ToValue for DateTime {
    fn to_value(&self) -> Value {
        Value::DateTime(self.to_string())
    }
}

impl FromValue for DateTime {
    fn from_value(v: &Value) -> Result<Self, ConvError> {
        match v {
            Value::DateTime(s) | Value::String(s) => {
                DateTime::parse(s).ok_or_else(|| ConvError::expected("datetime", v))
            }
            Value::Int(i) => Ok(DateTime(*i)),
            Value::Double(d) => Ok(DateTime(*d as i64)),
            _ => Err(ConvError::expected("datetime", v)),
        }
    }
}

impl<C> ToValue for Ref<C> {
    fn to_value(&self) -> Value {
        Value::String(self.as_str().to_owned())
    }
}

impl<C> FromValue for Ref<C> {
    /// Compatibility: `""` is accepted as the null reference.
    fn from_value(v: &Value) -> Result<Self, ConvError> {
        match v {
            Value::String(s) if s.is_empty() => Ok(Ref::null()),
            Value::String(s) => Ok(Ref::from_raw(s)),
            _ => Err(ConvError::expected("ref", v)),
        }
    }
}

impl<T: ToValue> ToValue for Vec<T> {
    fn to_value(&self) -> Value {
        Value::Array(self.iter().map(ToValue::to_value).collect())
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(v: &Value) -> Result<Self, ConvError> {
        match v {
            Value::Array(items) => items.iter().map(T::from_value).collect(),
            _ => Err(ConvError::expected("array", v)),
        }
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Nil,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self, ConvError> {
        match v {
            Value::Nil => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl<K: MapKey, V: ToValue> ToValue for BTreeMap<K, V> {
    fn to_value(&self) -> Value {
        Value::Struct(
            self.iter()
                .map(|(k, v)| (k.to_key(), v.to_value()))
                .collect(),
        )
    }
}

impl<K: MapKey, V: FromValue> FromValue for BTreeMap<K, V> {
    fn from_value(v: &Value) -> Result<Self, ConvError> {
        match v {
            Value::Struct(members) => members
                .iter()
                .map(|(k, v)| Ok((K::from_key(k)?, V::from_value(v).map_err(|e| e.at(k))?)))
                .collect(),
            _ => Err(ConvError::expected("struct", v)),
        }
    }
}

impl MapKey for String {
    fn to_key(&self) -> String {
        self.clone()
    }
    fn from_key(key: &str) -> Result<Self, ConvError> {
        Ok(key.to_owned())
    }
}

impl MapKey for i64 {
    fn to_key(&self) -> String {
        self.to_string()
    }
    fn from_key(key: &str) -> Result<Self, ConvError> {
        key.parse()
            .map_err(|_| ConvError::expected("int key", &Value::String(key.to_owned())))
    }
}

impl<C> MapKey for Ref<C> {
    fn to_key(&self) -> String {
        self.as_str().to_owned()
    }
    fn from_key(key: &str) -> Result<Self, ConvError> {
        Ok(Ref::from_raw(key))
    }
}

impl<E: WireEnum + Ord> MapKey for E {
    fn to_key(&self) -> String {
        self.as_str().to_owned()
    }
    fn from_key(key: &str) -> Result<Self, ConvError> {
        E::from_wire(key)
            .ok_or_else(|| ConvError::expected(E::NAME, &Value::String(key.to_owned())))
    }
}

impl<E: WireEnum> ToValue for E {
    fn to_value(&self) -> Value {
        Value::String(self.as_str().to_owned())
    }
}

impl<E: WireEnum> FromValue for E {
    fn from_value(v: &Value) -> Result<Self, ConvError> {
        match v {
            Value::String(s) => E::from_wire(s).ok_or_else(|| ConvError::expected(E::NAME, v)),
            _ => Err(ConvError::expected(E::NAME, v)),
        }
    }
}

/// Positional arguments of a call being decoded, parameter by parameter.
pub struct Args {
    items: std::vec::IntoIter<Value>,
}

impl Args {
    /// Wraps the arguments that follow the session.
    pub fn new(args: Vec<Value>) -> Args {
        Args {
            items: args.into_iter(),
        }
    }

    /// Converts the next argument, naming `param` in the error.
    pub fn take<T: FromValue>(&mut self, param: &str) -> ApiResult<T> {
        let v = self.items.next().unwrap_or(Value::Nil);
        T::from_value(&v).map_err(|e| e.at(param).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_are_accepted_as_decimal_strings() {
        assert_eq!(i64::from_value(&Value::String("42".into())), Ok(42));
        assert_eq!(i64::from_value(&Value::Int(-7)), Ok(-7));
        assert!(i64::from_value(&Value::String("4x".into())).is_err());
    }

    #[test]
    fn empty_string_is_the_null_ref() {
        struct C;
        let r: Ref<C> = Ref::from_value(&Value::String(String::new())).unwrap();
        assert!(r.is_null());
        assert_eq!(r.to_value(), Value::String("OpaqueRef:NULL".into()));
    }

    #[test]
    fn map_round_trips_with_int_keys() {
        let mut m = BTreeMap::new();
        m.insert(3i64, 0.5f64);
        let v = m.to_value();
        assert_eq!(v, Value::Struct(vec![("3".into(), Value::Double(0.5))]));
        assert_eq!(BTreeMap::<i64, f64>::from_value(&v), Ok(m));
    }

    #[test]
    fn wrong_kind_names_the_path() {
        let v = Value::Struct(vec![("a".into(), Value::Array(vec![]))]);
        let err = BTreeMap::<String, String>::from_value(&v).unwrap_err();
        assert_eq!(err.field(), "a");
    }

    #[test]
    fn bools_accept_true_false_strings() {
        assert_eq!(bool::from_value(&Value::String("true".into())), Ok(true));
        assert!(bool::from_value(&Value::Int(1)).is_err());
    }
}
