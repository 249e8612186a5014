//! The on-disk shape of `spec/datamodel.json` and `spec/companion.json`, and the type grammar.
//!
//! This module only parses; it never decides what to generate.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// The whole datamodel file.
#[derive(Debug, Clone, Deserialize)]
pub struct Datamodel {
    /// Classes in datamodel order (the order is part of the generated interface).
    pub classes: Vec<ClassSpec>,
    /// Every enum of every class, by name.
    pub enums: Vec<EnumSpec>,
}

/// One class (`VM`, `host`, ...).
#[derive(Debug, Clone, Deserialize)]
pub struct ClassSpec {
    pub name: String,
    pub lifecycle: Lifecycle,
    pub fields: Vec<FieldSpec>,
    pub messages: Vec<MessageSpec>,
}

/// One field of a class.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub qualifier: Qualifier,
    pub lifecycle: Lifecycle,
    #[serde(default)]
    pub default: Option<serde_json::Value>,
}

/// One message of a class, implicit or explicit.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageSpec {
    pub name: String,
    pub params: Vec<ParamSpec>,
    pub result: String,
    #[serde(default)]
    pub errors: Vec<String>,
    pub roles: Vec<String>,
    pub lifecycle: Lifecycle,
    #[serde(default)]
    pub implicit: bool,
}

/// One positional parameter.
#[derive(Debug, Clone, Deserialize)]
pub struct ParamSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
}

/// An enum and its values in wire spelling.
#[derive(Debug, Clone, Deserialize)]
pub struct EnumSpec {
    pub name: String,
    pub values: Vec<String>,
}

/// Who may write a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Qualifier {
    /// Read-write through `set_<field>`.
    Rw,
    /// Set once by the constructor.
    StaticRo,
    /// Maintained by the server.
    DynamicRo,
}

/// The lifecycle state of a class, field or message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Published,
    Prototyped,
    Deprecated,
    Removed,
}

/// Facts the datamodel lacks.
#[derive(Debug, Clone, Deserialize)]
pub struct Companion {
    /// `Class.message` names that have an `Async.` variant.
    pub r#async: Vec<String>,
    /// Trailing parameters that may be omitted, with their values.
    pub defaults: BTreeMap<String, Vec<DefaultParam>>,
    /// Explicit messages callable without a session.
    pub no_session: Vec<String>,
    /// Explicit messages hidden from the published datamodel.
    pub hidden_explicit: Vec<String>,
    /// Implicit messages hidden from the published datamodel.
    pub hidden_implicit: Vec<String>,
    /// Error code -> parameter names (`None`: upstream never documented them).
    pub errors: BTreeMap<String, Option<Vec<String>>>,
    /// One-to-many relations between a ref field and a ref-set field.
    pub relations: Vec<RelationSpec>,
}

/// A defaulted trailing parameter.
#[derive(Debug, Clone, Deserialize)]
pub struct DefaultParam {
    pub param: String,
    pub value: serde_json::Value,
}

/// `one` is `[class, ref field]`, `many` is `[class, ref set field]`.
#[derive(Debug, Clone, Deserialize)]
pub struct RelationSpec {
    pub one: (String, String),
    pub many: (String, String),
}

/// A datamodel type, parsed from its text form (`(string -> VM ref) map`, `enum vm_power_state` ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    String,
    Int,
    Float,
    Bool,
    DateTime,
    Void,
    Ref(String),
    Enum(String),
    Set(Box<Type>),
    Map(Box<Type>, Box<Type>),
    Record(String),
    Option(Box<Type>),
    /// A result the datamodel describes in prose (`an event batch`): passed through untyped.
    Any,
}

/// A type string that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeError(pub String);

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unparseable datamodel type {:?}", self.0)
    }
}

impl std::error::Error for TypeError {}

impl Type {
    /// Parses the datamodel's type text.
    pub fn parse(text: &str) -> Result<Type, TypeError> {
        let t = text.trim();
        if let Some(inner) = t.strip_suffix(" map") {
            let inner = inner
                .strip_prefix('(')
                .and_then(|i| i.strip_suffix(')'))
                .ok_or_else(|| TypeError(text.to_owned()))?;
            let (k, v) = split_arrow(inner).ok_or_else(|| TypeError(text.to_owned()))?;
            return Ok(Type::Map(
                Box::new(Type::parse(k)?),
                Box::new(Type::parse(v)?),
            ));
        }
        if let Some(inner) = t.strip_suffix(" set") {
            return Ok(Type::Set(Box::new(Type::parse(inner)?)));
        }
        if let Some(inner) = t.strip_suffix(" option") {
            return Ok(Type::Option(Box::new(Type::parse(inner)?)));
        }
        if let Some(class) = t.strip_suffix(" ref") {
            return ident(class, text).map(|c| Type::Ref(c.to_owned()));
        }
        if let Some(class) = t.strip_suffix(" record") {
            return match ident(class, text) {
                Ok(c) => Ok(Type::Record(c.to_owned())),
                Err(_) => Ok(Type::Any),
            };
        }
        if let Some(name) = t.strip_prefix("enum ") {
            return ident(name, text).map(|n| Type::Enum(n.to_owned()));
        }
        match t {
            "string" | "secretstring" => Ok(Type::String),
            "int" => Ok(Type::Int),
            "float" => Ok(Type::Float),
            "bool" => Ok(Type::Bool),
            "datetime" => Ok(Type::DateTime),
            "void" => Ok(Type::Void),
            "an event batch" => Ok(Type::Any),
            _ => Err(TypeError(text.to_owned())),
        }
    }
}

fn ident<'a>(s: &'a str, whole: &str) -> Result<&'a str, TypeError> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(s)
    } else {
        Err(TypeError(whole.to_owned()))
    }
}

/// Splits `K -> V` at the top-level arrow.
fn split_arrow(s: &str) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    let bytes = s.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b' ' if depth == 0 && s[i..].starts_with(" -> ") => {
                return Some((&s[..i], &s[i + 4..]));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_map_of_sets_parses() {
        let t = Type::parse("(VM ref -> string set) map").unwrap();
        assert_eq!(
            t,
            Type::Map(
                Box::new(Type::Ref("VM".into())),
                Box::new(Type::Set(Box::new(Type::String)))
            )
        );
    }

    #[test]
    fn map_with_map_values_parses() {
        let t = Type::parse("(host ref -> (string -> string) map) map").unwrap();
        match t {
            Type::Map(k, v) => {
                assert_eq!(*k, Type::Ref("host".into()));
                assert!(matches!(*v, Type::Map(_, _)));
            }
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn prose_results_are_any() {
        assert_eq!(Type::parse("an event batch").unwrap(), Type::Any);
        assert_eq!(Type::parse("<class> record").unwrap(), Type::Any);
    }

    #[test]
    fn enum_set_parses() {
        assert_eq!(
            Type::parse("enum vm_operations set").unwrap(),
            Type::Set(Box::new(Type::Enum("vm_operations".into())))
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Type::parse("frobnicate").is_err());
        assert!(Type::parse("(string -> ) map").is_err());
    }
}
