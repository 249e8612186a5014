//! The XenAPI wire value model shared by both codecs.
//!
//! A `Value` is what travels on the wire before anything knows the datamodel
//! type it should have: the codecs produce and consume it, the datamodel layer
//! (`xapi-idl`) coerces it into typed values. This module never knows classes.

/// One XenAPI wire value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `<nil/>` / JSON `null`.
    Nil,
    /// `<boolean>` / JSON `true`/`false`.
    Bool(bool),
    /// A 64-bit integer; XML-RPC emits it untyped (decimal text), JSON as an integer literal.
    Int(i64),
    /// `<double>` / JSON number with a fraction or exponent.
    Double(f64),
    /// A string, also refs and enum names (`OpaqueRef:...`, `Halted`).
    String(String),
    /// `<dateTime.iso8601>` text exactly as received or to be sent, e.g. `20240131T09:05:00Z`.
    DateTime(String),
    /// `<base64>` payload (decoded bytes).
    Base64(Vec<u8>),
    /// `<array>` / JSON array.
    Array(Vec<Value>),
    /// `<struct>` / JSON object, members in wire order.
    Struct(Vec<(String, Value)>),
}

impl Value {
    /// The value as a string slice when it is a `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Looks up a struct member by name (first match); `None` for non-structs.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short name of the value's wire kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::DateTime(_) => "datetime",
            Value::Base64(_) => "base64",
            Value::Array(_) => "array",
            Value::Struct(_) => "struct",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Double(f)
    }
}
