//! The runtime method table and class catalogue, built once from the embedded spec files.
//!
//! Everything that walks the API (dispatch, RBAC, the implicit-message engine, the object
//! store schema, `system.listMethods`) reads this one table. Never touches the object store.
use std::collections::HashMap;
use std::sync::OnceLock;

use xapi_idl_codegen::spec::{Lifecycle, Qualifier};
use xapi_idl_codegen::Type;
use xapi_rpc::Value;

const DATAMODEL: &str = include_str!("../spec/datamodel.json");
const COMPANION: &str = include_str!("../spec/companion.json");

/// A class of the datamodel.
#[derive(Debug)]
pub struct ClassDef {
    /// Wire name (`VM`).
    pub name: String,
    /// Lower-cased wire name, as events and RBAC permissions spell it (`vm`).
    pub lower: String,
    pub lifecycle: Lifecycle,
    pub fields: Vec<FieldDef>,
    /// Field position by wire name.
    pub field_index: HashMap<String, usize>,
    /// Position of `uuid`, when the class has one.
    pub uuid_field: Option<usize>,
    /// Position of `name_label`, when the class has one.
    pub name_label_field: Option<usize>,
    /// Whether objects of this class live in the object store (the class has `get_record`).
    pub persisted: bool,
    /// This class's messages (indexes into `Model::messages`).
    pub messages: Vec<usize>,
}

/// A field of a class.
#[derive(Debug)]
pub struct FieldDef {
    pub name: String,
    pub ty: Type,
    pub qualifier: Qualifier,
    pub lifecycle: Lifecycle,
    /// The datamodel default, or the type's zero value when there is none.
    pub default: Value,
    /// Whether the datamodel gives a default (a constructor may then omit the field).
    pub has_default: bool,
    /// Whether the store derives this field from a relation (a ref set mirroring ref fields).
    pub derived: bool,
}

/// What an implicit message does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implicit {
    GetRecord,
    GetByUuid,
    GetByNameLabel,
    GetAll,
    GetAllRecords,
    GetAllWhere,
    GetAllRecordsWhere,
    Create,
    Destroy,
    /// `get_<field>`
    GetField(usize),
    /// `set_<field>`
    SetField(usize),
    /// `add_to_<map>(key, value)`
    AddToMap(usize),
    /// `remove_from_<map>(key)`
    RemoveFromMap(usize),
    /// `add_<set>(value)`
    AddToSet(usize),
    /// `remove_<set>(value)`
    RemoveFromSet(usize),
}

/// Implicit or explicit, with the explicit message's dispatch number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Implicit(Implicit),
    Explicit(usize),
}

/// A parameter after the session.
#[derive(Debug)]
pub struct ParamDef {
    pub name: String,
    pub ty: Type,
}

/// One callable message.
#[derive(Debug)]
pub struct MessageDef {
    /// Index of the class in `Model::classes`.
    pub class: usize,
    /// Message name (`start`).
    pub name: String,
    /// Wire name (`VM.start`).
    pub wire: String,
    /// Whether the first wire parameter is a session.
    pub has_session: bool,
    /// Parameters after the session.
    pub params: Vec<ParamDef>,
    pub result: Type,
    /// Roles allowed to call it (empty in the datamodel means pool-admin only).
    pub roles: Vec<String>,
    pub lifecycle: Lifecycle,
    pub kind: MessageKind,
    /// Whether `Async.<wire>` exists.
    pub async_ok: bool,
    /// Values for the trailing parameters that may be omitted, in parameter order.
    pub defaults: Vec<Value>,
    /// Hidden from the published datamodel but callable.
    pub hidden: bool,
    /// The RBAC permission name (`vm.start`).
    pub permission: String,
}

impl MessageDef {
    /// How many parameters (after the session) a caller must pass.
    pub fn required_params(&self) -> usize {
        self.params.len() - self.defaults.len()
    }
}

/// The whole API.
#[derive(Debug)]
pub struct Model {
    pub classes: Vec<ClassDef>,
    pub messages: Vec<MessageDef>,
    /// Enum name -> values in wire spelling.
    pub enums: HashMap<String, Vec<String>>,
    /// Error code -> documented parameter names (`None` when upstream never documented them).
    pub errors: HashMap<String, Option<Vec<String>>>,
    /// One-to-many relations as ((class, ref field), (class, set field)).
    pub relations: Vec<((String, String), (String, String))>,
    by_wire: HashMap<String, usize>,
    class_by_name: HashMap<String, usize>,
    class_by_lower: HashMap<String, usize>,
}

static MODEL: OnceLock<Model> = OnceLock::new();

/// The model of the embedded spec files, built on first use.
pub fn model() -> &'static Model {
    MODEL.get_or_init(|| {
        Model::build(DATAMODEL, COMPANION)
            .expect("the embedded spec files were checked by build.rs")
    })
}

impl Model {
    /// Builds the model from the two spec files' text.
    pub fn build(datamodel: &str, companion: &str) -> Result<Model, String> {
        let (dm, comp) = xapi_idl_codegen::parse(datamodel, companion)?;
        let explicit: HashMap<(usize, usize), usize> = xapi_idl_codegen::explicit_messages(&dm)
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, i))
            .collect();
        let derived: std::collections::HashSet<(String, String)> =
            comp.relations.iter().map(|r| r.many.clone()).collect();
        let async_set: std::collections::HashSet<&str> =
            comp.r#async.iter().map(String::as_str).collect();
        let hidden: std::collections::HashSet<&str> =
            comp.hidden_explicit.iter().map(String::as_str).collect();
        let enums: HashMap<String, Vec<String>> = dm
            .enums
            .iter()
            .map(|e| (e.name.clone(), e.values.clone()))
            .collect();

        let mut classes = Vec::new();
        let mut messages = Vec::new();
        for (ci, c) in dm.classes.iter().enumerate() {
            let mut fields = Vec::new();
            for f in &c.fields {
                let ty = Type::parse(&f.ty).map_err(|e| e.to_string())?;
                let default = match &f.default {
                    Some(j) => json_to_value(&ty, j)
                        .ok_or_else(|| format!("{}.{} default", c.name, f.name))?,
                    None => zero_value(&ty, &enums),
                };
                fields.push(FieldDef {
                    derived: derived.contains(&(c.name.clone(), f.name.clone())),
                    name: f.name.clone(),
                    ty,
                    qualifier: f.qualifier,
                    lifecycle: f.lifecycle,
                    default,
                    has_default: f.default.is_some(),
                });
            }
            let field_index: HashMap<String, usize> = fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name.clone(), i))
                .collect();
            let mut class = ClassDef {
                name: c.name.clone(),
                lower: c.name.to_ascii_lowercase(),
                lifecycle: c.lifecycle,
                uuid_field: field_index.get("uuid").copied(),
                name_label_field: field_index.get("name_label").copied(),
                persisted: c
                    .messages
                    .iter()
                    .any(|m| m.implicit && m.name == "get_record"),
                fields,
                field_index,
                messages: Vec::new(),
            };
            let mut seen = std::collections::HashSet::new();
            for (mi, m) in c.messages.iter().enumerate() {
                if !seen.insert(m.name.clone()) {
                    continue;
                }
                let wire = format!("{}.{}", c.name, m.name);
                let kind = if m.implicit {
                    match implicit_kind(&class, &m.name) {
                        Some(k) => MessageKind::Implicit(k),
                        None => return Err(format!("{wire}: implicit message of unknown shape")),
                    }
                } else {
                    MessageKind::Explicit(explicit[&(ci, mi)])
                };
                let has_session = m
                    .params
                    .first()
                    .is_some_and(|p| p.ty == "session ref" && p.name == "session_id");
                let mut params = Vec::new();
                for p in m.params.iter().skip(usize::from(has_session)) {
                    params.push(ParamDef {
                        name: p.name.clone(),
                        ty: Type::parse(&p.ty).map_err(|e| e.to_string())?,
                    });
                }
                let mut defaults = Vec::new();
                if let Some(ds) = comp.defaults.get(&wire) {
                    for d in ds {
                        let ty = params
                            .iter()
                            .find(|p| p.name == d.param)
                            .map(|p| p.ty.clone())
                            .ok_or_else(|| {
                                format!("{wire}: default for unknown param {}", d.param)
                            })?;
                        defaults.push(
                            json_to_value(&ty, &d.value)
                                .ok_or_else(|| format!("{wire}: bad default"))?,
                        );
                    }
                }
                class.messages.push(messages.len());
                messages.push(MessageDef {
                    class: ci,
                    permission: wire.to_ascii_lowercase(),
                    async_ok: async_set.contains(wire.as_str()),
                    hidden: hidden.contains(wire.as_str()),
                    name: m.name.clone(),
                    has_session,
                    params,
                    result: Type::parse(&m.result).map_err(|e| e.to_string())?,
                    roles: m.roles.clone(),
                    lifecycle: m.lifecycle,
                    kind,
                    defaults,
                    wire,
                });
            }
            // get_all_where / get_all_records_where are callable wherever get_all is.
            let get_all_roles = c
                .messages
                .iter()
                .find(|m| m.name == "get_all_records")
                .map(|m| m.roles.clone());
            if let Some(roles) = get_all_roles {
                for (name, kind, result) in [
                    (
                        "get_all_where",
                        Implicit::GetAllWhere,
                        format!("{} ref set", c.name),
                    ),
                    (
                        "get_all_records_where",
                        Implicit::GetAllRecordsWhere,
                        format!("({0} ref -> {0} record) map", c.name),
                    ),
                ] {
                    if c.messages.iter().any(|m| m.name == name) {
                        // The class declares its own (e.g. `message.get_all_records_where`).
                        continue;
                    }
                    let wire = format!("{}.{}", c.name, name);
                    class.messages.push(messages.len());
                    messages.push(MessageDef {
                        class: ci,
                        permission: format!("{}.get_all_records", class.lower),
                        async_ok: false,
                        hidden: true,
                        name: name.to_owned(),
                        has_session: true,
                        params: vec![ParamDef {
                            name: "expr".into(),
                            ty: Type::String,
                        }],
                        result: Type::parse(&result).map_err(|e| e.to_string())?,
                        roles: roles.clone(),
                        lifecycle: c.lifecycle,
                        kind: MessageKind::Implicit(kind),
                        defaults: Vec::new(),
                        wire,
                    });
                }
            }
            classes.push(class);
        }

        let mut by_wire = HashMap::new();
        for (i, m) in messages.iter().enumerate() {
            by_wire.insert(m.wire.clone(), i);
        }
        for (i, m) in messages.iter().enumerate() {
            let alt = format!("{}_{}", classes[m.class].name, m.name);
            by_wire.entry(alt).or_insert(i);
        }
        Ok(Model {
            class_by_name: classes
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), i))
                .collect(),
            class_by_lower: classes
                .iter()
                .enumerate()
                .map(|(i, c)| (c.lower.clone(), i))
                .collect(),
            classes,
            messages,
            enums,
            errors: comp.errors.into_iter().collect(),
            relations: comp
                .relations
                .into_iter()
                .map(|r| (r.one, r.many))
                .collect(),
            by_wire,
        })
    }

    /// Looks a message up by `Class.message` or `Class_message`.
    pub fn message(&self, wire: &str) -> Option<&MessageDef> {
        self.by_wire.get(wire).map(|&i| &self.messages[i])
    }

    /// The message's index by wire name.
    pub fn message_index(&self, wire: &str) -> Option<usize> {
        self.by_wire.get(wire).copied()
    }

    /// A class by exact wire name.
    pub fn class(&self, name: &str) -> Option<&ClassDef> {
        self.class_by_name.get(name).map(|&i| &self.classes[i])
    }

    /// A class index by exact wire name.
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.class_by_name.get(name).copied()
    }

    /// A class index by case-insensitive name (`vm`, `VM`).
    pub fn class_index_ci(&self, name: &str) -> Option<usize> {
        self.class_by_lower.get(&name.to_ascii_lowercase()).copied()
    }

    /// Synchronous wire names of every message, hidden ones included (`system.listMethods`).
    pub fn wire_names(&self) -> impl Iterator<Item = &str> {
        self.messages.iter().map(|m| m.wire.as_str())
    }
}

/// Recognises an implicit message by its name against the class's fields.
fn implicit_kind(class: &ClassDef, name: &str) -> Option<Implicit> {
    let field = |f: &str| class.field_index.get(f).copied();
    Some(match name {
        "get_record" => Implicit::GetRecord,
        "get_by_uuid" => Implicit::GetByUuid,
        "get_by_name_label" => Implicit::GetByNameLabel,
        "get_all" => Implicit::GetAll,
        "get_all_records" => Implicit::GetAllRecords,
        "create" => Implicit::Create,
        "destroy" => Implicit::Destroy,
        _ => {
            if let Some(f) = name.strip_prefix("get_").and_then(field) {
                Implicit::GetField(f)
            } else if let Some(f) = name.strip_prefix("set_").and_then(field) {
                Implicit::SetField(f)
            } else if let Some(f) = name.strip_prefix("add_to_").and_then(field) {
                Implicit::AddToMap(f)
            } else if let Some(f) = name.strip_prefix("remove_from_").and_then(field) {
                Implicit::RemoveFromMap(f)
            } else if let Some(f) = name.strip_prefix("add_").and_then(field) {
                Implicit::AddToSet(f)
            } else if let Some(f) = name.strip_prefix("remove_").and_then(field) {
                Implicit::RemoveFromSet(f)
            } else {
                return None;
            }
        }
    })
}

/// The value a field of type `ty` has when nothing sets it.
pub fn zero_value(ty: &Type, enums: &HashMap<String, Vec<String>>) -> Value {
    match ty {
        Type::String | Type::Void => Value::String(String::new()),
        Type::Int => Value::Int(0),
        Type::Float => Value::Double(0.0),
        Type::Bool => Value::Bool(false),
        Type::DateTime => Value::DateTime("19700101T00:00:00Z".into()),
        Type::Ref(_) => Value::String(crate::NULL_REF.into()),
        Type::Enum(e) => Value::String(
            enums
                .get(e)
                .and_then(|v| v.first())
                .cloned()
                .unwrap_or_default(),
        ),
        Type::Set(_) => Value::Array(Vec::new()),
        Type::Map(..) | Type::Record(_) => Value::Struct(Vec::new()),
        Type::Option(_) | Type::Any => Value::Nil,
    }
}

/// Converts a typed JSON default from the spec files into a wire value.
fn json_to_value(ty: &Type, j: &serde_json::Value) -> Option<Value> {
    use serde_json::Value as J;
    Some(match (ty, j) {
        (Type::Int, J::Number(n)) => Value::Int(n.as_i64()?),
        (Type::Float, J::Number(n)) => Value::Double(n.as_f64()?),
        (Type::Bool, J::Bool(b)) => Value::Bool(*b),
        (Type::DateTime, J::String(s)) => Value::DateTime(s.clone()),
        (Type::String | Type::Ref(_) | Type::Enum(_), J::String(s)) => Value::String(s.clone()),
        (Type::Set(inner), J::Array(items)) => Value::Array(
            items
                .iter()
                .map(|x| json_to_value(inner, x))
                .collect::<Option<_>>()?,
        ),
        (Type::Set(inner), J::Number(_)) => Value::Array(vec![json_to_value(inner, j)?]),
        (Type::Map(_, v), J::Object(m)) => Value::Struct(
            m.iter()
                .map(|(k, x)| Some((k.clone(), json_to_value(v, x)?)))
                .collect::<Option<_>>()?,
        ),
        (Type::Any, other) => Value::String(other.to_string()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_model_builds_and_numbers_explicit_messages() {
        let m = model();
        let start = m.message("VM.start").unwrap();
        assert!(matches!(start.kind, MessageKind::Explicit(_)));
        assert!(start.has_session);
        assert_eq!(start.params.len(), 3);
        assert!(start.async_ok);
    }

    #[test]
    fn underscore_spelling_finds_the_same_message() {
        let m = model();
        assert_eq!(m.message_index("event_from"), m.message_index("event.from"));
        assert!(m.message("VM_guest_metrics_get_record").is_some());
    }

    #[test]
    fn login_has_trailing_defaults() {
        let login = model().message("session.login_with_password").unwrap();
        assert!(!login.has_session);
        assert_eq!(login.params.len(), 4);
        assert_eq!(login.required_params(), 2);
        assert_eq!(
            login.defaults,
            vec![Value::String("1.1".into()), Value::String(String::new())]
        );
    }

    #[test]
    fn vdi_db_messages_from_upstream_facts_are_hidden_async_and_root_only() {
        let m = model();
        let intro = m.message("VDI.introduce").unwrap();
        let db = m.message("VDI.db_introduce").unwrap();
        assert!(db.hidden && db.async_ok && db.roles.is_empty());
        assert!(!intro.hidden);
        // introduce's params, then cbt_enabled; everything from xenstore_data on may be omitted.
        let names = |ps: &[ParamDef]| ps.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&db.params[..intro.params.len()]),
            names(&intro.params)
        );
        assert_eq!(db.params.last().unwrap().name, "cbt_enabled");
        assert_eq!(intro.required_params(), 9);
        assert_eq!(db.required_params(), 9);
        assert_eq!(db.defaults.last(), Some(&Value::Bool(false)));
        let forget = m.message("VDI.db_forget").unwrap();
        assert!(forget.hidden && forget.async_ok && forget.roles.is_empty());
        assert_eq!(forget.params.len(), 1);
        assert_eq!(forget.params[0].ty, Type::Ref("VDI".into()));
    }

    #[test]
    fn implicit_accessors_are_classified() {
        let m = model();
        let vm = m.class("VM").unwrap();
        let f = vm.field_index["name_label"];
        assert_eq!(
            m.message("VM.get_name_label").unwrap().kind,
            MessageKind::Implicit(Implicit::GetField(f))
        );
        let oc = vm.field_index["other_config"];
        assert_eq!(
            m.message("VM.add_to_other_config").unwrap().kind,
            MessageKind::Implicit(Implicit::AddToMap(oc))
        );
        assert!(m.message("VM.get_all_records_where").is_some());
    }

    #[test]
    fn declared_messages_are_not_shadowed_by_hidden_implicit_ones() {
        let m = model().message("message.get_all_records_where").unwrap();
        assert!(matches!(m.kind, MessageKind::Explicit(_)));
        let vm = model().message("VM.get_all_records_where").unwrap();
        assert_eq!(vm.kind, MessageKind::Implicit(Implicit::GetAllRecordsWhere));
    }

    #[test]
    fn relation_many_sides_are_derived() {
        let vm = model().class("VM").unwrap();
        assert!(vm.fields[vm.field_index["VBDs"]].derived);
        assert!(!vm.fields[vm.field_index["name_label"]].derived);
    }
}
