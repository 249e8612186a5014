//! CLI classes and their fields: the upstream field lists from `data/xe.json` resolved
//! against the runtime datamodel (`xapi_idl::model()`), and how a field's value is read from a
//! record, printed, filtered on and parsed back. Reads objects only through [`Api`].
use std::sync::OnceLock;

use xapi_idl::model::model;
use xapi_idl::{Qualifier, Type};
use xapi_rpc::Value;

use crate::api::Api;
use crate::error::{fail, CliError};
use crate::table::{data, FieldData};

/// What a field holds as the CLI sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Scalar,
    Set,
    Map,
}

/// An operation a CLI field supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Set,
    AddToSet,
    RemoveFromSet,
    AddToMap,
    RemoveFromMap,
    SetInMap,
    SetMap,
    ClearMap,
}

/// One step of a field path: read `field` (of type `ty`) from the current object.
#[derive(Debug, Clone)]
pub struct Step {
    pub field: String,
    pub ty: Type,
}

/// A field of a CLI class.
#[derive(Debug, Clone)]
pub struct CliField {
    /// Hyphenated CLI name (`name-label`).
    pub name: String,
    /// The datamodel walk that yields the value; length 1 for a field of the object itself.
    pub path: Vec<Step>,
    pub kind: Kind,
    pub caps: Vec<Cap>,
    pub hidden: bool,
    pub expensive: bool,
    pub deprecated: bool,
    pub case_insensitive: bool,
}

impl CliField {
    /// Whether the field supports `cap`.
    pub fn has(&self, cap: Cap) -> bool {
        self.caps.contains(&cap)
    }

    /// The datamodel field name when the field is read directly from the object.
    pub fn direct(&self) -> Option<&Step> {
        match self.path.as_slice() {
            [step] => Some(step),
            _ => None,
        }
    }

    /// The label xe prints: `name-label ( RW)`, `other-config (MRW)`, `tags (SRW)`.
    pub fn label(&self) -> String {
        let q = match self.kind {
            Kind::Set if self.has(Cap::AddToSet) => "SRW",
            Kind::Set => "SRO",
            Kind::Map if self.has(Cap::AddToMap) => "MRW",
            Kind::Map => "MRO",
            Kind::Scalar if self.has(Cap::Set) => " RW",
            Kind::Scalar => " RO",
        };
        let dep = if self.deprecated { " [DEPRECATED]" } else { "" };
        format!("{} ({q}){dep}", self.name)
    }
}

/// A CLI class (`vm`, `template`, `network` ...).
#[derive(Debug, Clone)]
pub struct CliClass {
    pub name: String,
    /// Wire name of the datamodel class (`VM`).
    pub wire: String,
    pub default_filters: Vec<(String, String)>,
    pub default_params: Vec<String>,
    pub list_expr: String,
    pub fields: Vec<CliField>,
}

impl CliClass {
    /// The field called `name`, or upstream's missing-parameter error.
    pub fn field(&self, name: &str) -> Result<&CliField, CliError> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| CliError::MissingField(name.to_owned()))
    }
}

/// Every CLI class whose datamodel class exists, in data-file order.
pub fn cli_classes() -> &'static [CliClass] {
    static CLASSES: OnceLock<Vec<CliClass>> = OnceLock::new();
    CLASSES.get_or_init(|| {
        data()
            .classes
            .iter()
            .filter_map(|c| {
                model().class(&c.datamodel)?;
                Some(CliClass {
                    name: c.name.clone(),
                    wire: c.datamodel.clone(),
                    default_filters: c.default_filters.clone(),
                    default_params: c.default_params.clone(),
                    list_expr: c.list_expr.clone(),
                    fields: c
                        .fields
                        .iter()
                        .filter_map(|f| resolve(&c.datamodel, f))
                        .collect(),
                })
            })
            .collect()
    })
}

/// The CLI class called `name`.
pub fn cli_class(name: &str) -> Option<&'static CliClass> {
    cli_classes().iter().find(|c| c.name == name)
}

fn cap_of(name: &str) -> Option<Cap> {
    Some(match name {
        "set" => Cap::Set,
        "add_to_set" => Cap::AddToSet,
        "remove_from_set" => Cap::RemoveFromSet,
        "add_to_map" => Cap::AddToMap,
        "remove_from_map" => Cap::RemoveFromMap,
        "set_in_map" => Cap::SetInMap,
        "set_map" => Cap::SetMap,
        "clear_map" => Cap::ClearMap,
        _ => return None,
    })
}

/// Walks a field's path over the datamodel; `None` when the datamodel lacks a step.
fn resolve(class: &str, f: &FieldData) -> Option<CliField> {
    let m = model();
    let mut path = Vec::new();
    let mut current = class.to_owned();
    let segments: Vec<&str> = f.path.split('.').collect();
    for (i, seg) in segments.iter().enumerate() {
        let c = m.class(&current)?;
        let fd = &c.fields[*c.field_index.get(*seg)?];
        path.push(Step {
            field: fd.name.clone(),
            ty: fd.ty.clone(),
        });
        if i + 1 < segments.len() {
            current = match &fd.ty {
                Type::Ref(t) => t.clone(),
                Type::Set(inner) => match inner.as_ref() {
                    Type::Ref(t) => t.clone(),
                    _ => return None,
                },
                _ => return None,
            };
        }
    }
    let kind = match f.kind.as_str() {
        "set" => Kind::Set,
        "map" => Kind::Map,
        _ => Kind::Scalar,
    };
    let mut caps: Vec<Cap> = f.caps.iter().filter_map(|c| cap_of(c)).collect();
    // Generic writes go through the implicit messages of a field of the object itself;
    // anything the datamodel has read-only there keeps only explicitly-backed operations.
    let direct_rw = path.len() == 1 && path[0].ty != Type::Void;
    if !direct_rw {
        caps.clear();
    } else if let Some(c) = m.class(class) {
        let fd = &c.fields[c.field_index[&path[0].field]];
        if fd.qualifier != Qualifier::Rw {
            let setter = format!("{}.set_{}", class, fd.name);
            if m.message(&setter).is_none() {
                caps.retain(|c| !matches!(c, Cap::Set | Cap::SetMap | Cap::ClearMap));
            }
            let adder = format!("{}.add_to_{}", class, fd.name);
            if m.message(&adder).is_none() {
                caps.retain(|c| !matches!(c, Cap::AddToMap | Cap::RemoveFromMap | Cap::SetInMap));
            }
            let set_adder = format!("{}.add_{}", class, fd.name);
            if m.message(&set_adder).is_none() {
                caps.retain(|c| !matches!(c, Cap::AddToSet | Cap::RemoveFromSet));
            }
        }
    }
    Some(CliField {
        name: f.name.clone(),
        path,
        kind,
        caps,
        hidden: f.hidden,
        expensive: f.expensive,
        deprecated: f.deprecated,
        case_insensitive: f.case_insensitive,
    })
}

/// The text printed for a reference that cannot be resolved.
pub const NOT_IN_DATABASE: &str = "<not in database>";

/// How an enum value prints.
pub fn enum_text(enum_name: &str, wire: &str) -> String {
    let Some(d) = data().enum_display.get(enum_name) else {
        return wire.to_owned();
    };
    if let Some(v) = d.values.get(wire) {
        return v.clone();
    }
    match d.style.as_deref() {
        Some("lower") => wire.to_lowercase(),
        Some("capitalise") => {
            let mut c = wire.chars();
            match c.next() {
                Some(first) => first.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        }
        _ => wire.to_owned(),
    }
}

/// The uuid of the object `r` of class `class`, or `<not in database>`.
pub fn uuid_of(api: &mut Api, class: &str, r: &str) -> Result<String, CliError> {
    Ok(match api.record(class, r)? {
        Some(rec) => match rec.get("uuid") {
            Some(Value::String(u)) => u.clone(),
            _ => NOT_IN_DATABASE.to_owned(),
        },
        None => NOT_IN_DATABASE.to_owned(),
    })
}

/// Prints one wire value of type `ty` the way xe does.
pub fn render(api: &mut Api, v: &Value, ty: &Type) -> Result<String, CliError> {
    Ok(match (ty, v) {
        (Type::Ref(class), Value::String(r)) => uuid_of(api, class, r)?,
        (Type::Set(inner), Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                out.push(render(api, item, inner)?);
            }
            out.join("; ")
        }
        (Type::Map(kt, vt), Value::Struct(members)) => {
            let mut out = Vec::new();
            for (k, val) in members {
                let key = render(api, &Value::String(k.clone()), kt)?;
                out.push(format!("{key}: {}", render(api, val, vt)?));
            }
            out.join("; ")
        }
        (Type::Enum(name), Value::String(w)) => enum_text(name, w),
        (Type::Float, Value::Double(d)) => format!("{d:.3}"),
        (Type::Float, Value::Int(i)) => format!("{:.3}", *i as f64),
        (_, Value::String(s)) | (_, Value::DateTime(s)) => s.clone(),
        (_, Value::Int(i)) => i.to_string(),
        (_, Value::Bool(b)) => b.to_string(),
        (_, Value::Double(d)) => d.to_string(),
        (_, Value::Nil) => String::new(),
        (_, other) => format!("{other:?}"),
    })
}

/// The raw values at the end of a field's path, with the leaf type; `None` when a reference
/// on the way does not resolve.
fn leaves(
    api: &mut Api,
    field: &CliField,
    rec: &Value,
) -> Result<Option<(Vec<Value>, bool)>, CliError> {
    let mut current = vec![rec.clone()];
    let mut crossed_set = false;
    let last = field.path.len() - 1;
    for (i, step) in field.path.iter().enumerate() {
        let mut next = Vec::new();
        for obj in &current {
            let Some(v) = obj.get(&step.field) else {
                continue;
            };
            if i == last {
                next.push(v.clone());
                continue;
            }
            let (class, refs): (&str, Vec<&Value>) = match (&step.ty, v) {
                (Type::Ref(c), r) => (c.as_str(), vec![r]),
                (Type::Set(inner), Value::Array(items)) => match inner.as_ref() {
                    Type::Ref(c) => {
                        crossed_set = true;
                        (c.as_str(), items.iter().collect())
                    }
                    _ => continue,
                },
                _ => continue,
            };
            for r in refs {
                if let Some(target) = r.as_str().map(str::to_owned) {
                    if let Some(t) = api.record(class, &target)? {
                        next.push(t);
                    }
                }
            }
        }
        if next.is_empty() && !crossed_set {
            return Ok(None);
        }
        current = next;
    }
    Ok(Some((current, crossed_set)))
}

/// The printed value of `field` in `rec`.
pub fn get(api: &mut Api, field: &CliField, rec: &Value) -> Result<String, CliError> {
    let Some(step) = field.path.last() else {
        return Ok(String::new());
    };
    let ty = step.ty.clone();
    match leaves(api, field, rec)? {
        None => Ok(NOT_IN_DATABASE.to_owned()),
        Some((vals, crossed_set)) => {
            if crossed_set {
                let mut out = Vec::new();
                for v in &vals {
                    out.push(render(api, v, &ty)?);
                }
                Ok(out.join("; "))
            } else {
                match vals.first() {
                    Some(v) => render(api, v, &ty),
                    None => Ok(String::new()),
                }
            }
        }
    }
}

/// A map field's keys and printed values.
pub fn get_map(
    api: &mut Api,
    field: &CliField,
    rec: &Value,
) -> Result<Vec<(String, String)>, CliError> {
    let Some(Type::Map(_, vt)) = field.path.last().map(|s| s.ty.clone()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if let Some((vals, _)) = leaves(api, field, rec)? {
        for v in vals {
            if let Value::Struct(members) = v {
                for (k, val) in members {
                    out.push((k, render(api, &val, &vt)?));
                }
            }
        }
    }
    Ok(out)
}

/// A set field's printed members.
pub fn get_set(api: &mut Api, field: &CliField, rec: &Value) -> Result<Vec<String>, CliError> {
    let Some(ty) = field.path.last().map(|s| s.ty.clone()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if let Some((vals, crossed)) = leaves(api, field, rec)? {
        for v in vals {
            match (&ty, v) {
                (Type::Set(inner), Value::Array(items)) => {
                    for item in items {
                        out.push(render(api, &item, inner)?);
                    }
                }
                (t, v) if crossed => out.push(render(api, &v, t)?),
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Parses command-line text into a wire value of type `ty` for field `name`.
pub fn parse(api: &mut Api, ty: &Type, name: &str, text: &str) -> Result<Value, CliError> {
    Ok(match ty {
        Type::String | Type::DateTime => Value::String(text.to_owned()),
        Type::Int => Value::Int(text.trim().parse().map_err(|_| {
            fail(format!(
                "Failed to parse parameter '{name}': expecting an integer"
            ))
        })?),
        Type::Float => Value::Double(text.trim().parse().map_err(|_| {
            fail(format!(
                "Failed to parse parameter '{name}': expecting a float"
            ))
        })?),
        Type::Bool => Value::Bool(parse_bool(text).ok_or_else(|| {
            fail(format!(
                "Failed to parse parameter '{name}': expecting a boolean (true or false)"
            ))
        })?),
        Type::Enum(e) => {
            let values = model().enums.get(e).cloned().unwrap_or_default();
            let found = values.iter().find(|v| {
                v.eq_ignore_ascii_case(text) || enum_text(e, v).eq_ignore_ascii_case(text)
            });
            match found {
                Some(v) => Value::String(v.clone()),
                None => {
                    return Err(fail(format!(
                        "Failed to parse parameter '{name}': expecting one of {}",
                        values.join(", ")
                    )))
                }
            }
        }
        Type::Ref(class) => {
            if text.is_empty() || text == crate::api::NULL_REF {
                Value::String(crate::api::NULL_REF.to_owned())
            } else if text.starts_with("OpaqueRef:") {
                Value::String(text.to_owned())
            } else {
                Value::String(api.by_uuid(class, text)?)
            }
        }
        Type::Set(inner) => {
            let mut items = Vec::new();
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                items.push(parse(api, inner, name, part)?);
            }
            Value::Array(items)
        }
        Type::Map(_, _) => {
            let mut members = Vec::new();
            for part in text.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = part.split_once(':').unwrap_or((part, ""));
                members.push((k.trim().to_owned(), Value::String(v.trim().to_owned())));
            }
            Value::Struct(members)
        }
        _ => Value::String(text.to_owned()),
    })
}

/// `true`/`false` in the spellings upstream's `bool_of_string` accepts (plus yes/no, 1/0).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_fields_resolve_with_upstream_labels() {
        let c = cli_class("network").unwrap();
        assert_eq!(c.field("uuid").unwrap().label(), "uuid ( RO)");
        assert_eq!(c.field("name-label").unwrap().label(), "name-label ( RW)");
        assert_eq!(
            c.field("other-config").unwrap().label(),
            "other-config (MRW)"
        );
        assert_eq!(c.field("VIF-uuids").unwrap().path.len(), 2);
    }

    #[test]
    fn missing_field_is_upstreams_missing_parameter() {
        let c = cli_class("network").unwrap();
        assert_eq!(
            c.field("nope").unwrap_err(),
            CliError::MissingField("nope".into())
        );
    }

    #[test]
    fn power_state_prints_lower_case() {
        assert_eq!(enum_text("vm_power_state", "Halted"), "halted");
        assert_eq!(enum_text("on_normal_exit", "destroy"), "Destroy");
        assert_eq!(enum_text("network_purpose", "nbd"), "nbd");
    }

    #[test]
    fn template_class_filters_on_is_a_template() {
        let c = cli_class("template").unwrap();
        assert!(c
            .default_filters
            .contains(&("is-a-template".to_owned(), "true".to_owned())));
    }
}
