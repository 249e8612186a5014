//! Emits the Rust source of `xapi-idl`'s generated layer.
//!
//! Output sections: class markers, enums, records (with datamodel defaults and row
//! conversion), error constructors, one actions trait per class whose default bodies answer
//! `NOT_IMPLEMENTED`, and the explicit-message dispatcher. Never reads or writes files.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use crate::naming::{error_fn_name, method_name, type_name, value_name, variant_name};
use crate::spec::{ClassSpec, Companion, Datamodel, EnumSpec, MessageSpec, Type};

const HEADER: &str = "// Generated from spec/datamodel.json by xapi-idl-codegen. Do not edit.\n";

struct Ctx<'a> {
    dm: &'a Datamodel,
    classes: HashMap<&'a str, usize>,
    enums: HashMap<&'a str, &'a EnumSpec>,
}

/// Generates the whole Rust layer from the parsed spec files.
pub fn generate(dm: &Datamodel, comp: &Companion) -> Result<String, String> {
    let ctx = Ctx {
        dm,
        classes: dm
            .classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), i))
            .collect(),
        enums: dm.enums.iter().map(|e| (e.name.as_str(), e)).collect(),
    };
    let mut out = String::from(HEADER);
    // The includer allows the naming lints: generated names follow the wire spelling.
    out.push('\n');
    gen_classes(&ctx, &mut out);
    gen_enums(&ctx, &mut out)?;
    gen_records(&ctx, &mut out)?;
    gen_errors(comp, &mut out);
    gen_actions(&ctx, &mut out)?;
    Ok(out)
}

fn gen_classes(ctx: &Ctx, out: &mut String) {
    out.push_str("/// Marker types naming each class, for typed refs (`Ref<classes::Vm>`).\npub mod classes {\n");
    for (i, c) in ctx.dm.classes.iter().enumerate() {
        let t = type_name(&c.name);
        let _ = writeln!(
            out,
            "    /// The `{name}` class.\n    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\n    pub struct {t};\n    impl crate::Class for {t} {{\n        const NAME: &'static str = {name:?};\n        const INDEX: usize = {i};\n    }}",
            name = c.name
        );
    }
    out.push_str("}\n\n");
}

fn gen_enums(ctx: &Ctx, out: &mut String) -> Result<(), String> {
    out.push_str(
        "/// Every datamodel enum, spelled as on the wire by `as_str`.\npub mod enums {\n",
    );
    for e in &ctx.dm.enums {
        let t = type_name(&e.name);
        let mut variants = Vec::new();
        let mut seen = BTreeSet::new();
        for v in &e.values {
            let mut name = variant_name(v);
            while !seen.insert(name.clone()) {
                name.push('_');
            }
            variants.push((name, v.as_str()));
        }
        if variants.is_empty() {
            return Err(format!("enum {} has no values", e.name));
        }
        let _ = writeln!(
            out,
            "    /// The `{}` enum.\n    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\n    pub enum {t} {{",
            e.name
        );
        for (v, wire) in &variants {
            let _ = writeln!(out, "        /// `{wire}`\n        {v},");
        }
        out.push_str("    }\n");
        let _ = writeln!(
            out,
            "    impl Default for {t} {{\n        fn default() -> Self {{ Self::{} }}\n    }}",
            variants[0].0
        );
        let _ = writeln!(
            out,
            "    impl crate::WireEnum for {t} {{\n        const NAME: &'static str = {:?};",
            e.name
        );
        out.push_str("        const ALL: &'static [Self] = &[");
        for (v, _) in &variants {
            let _ = write!(out, "Self::{v}, ");
        }
        out.push_str("];\n        fn as_str(self) -> &'static str {\n            match self {\n");
        for (v, wire) in &variants {
            let _ = writeln!(out, "                Self::{v} => {wire:?},");
        }
        out.push_str("            }\n        }\n    }\n");
    }
    out.push_str("}\n\n");
    Ok(())
}

/// The Rust type of a datamodel type, with paths valid anywhere in the generated file.
fn rust_type(ctx: &Ctx, t: &Type) -> Result<String, String> {
    Ok(match t {
        Type::String => "String".into(),
        Type::Int => "i64".into(),
        Type::Float => "f64".into(),
        Type::Bool => "bool".into(),
        Type::DateTime => "crate::DateTime".into(),
        Type::Void => "()".into(),
        Type::Any => "crate::Value".into(),
        Type::Ref(c) => {
            if !ctx.classes.contains_key(c.as_str()) {
                return Err(format!("ref to unknown class {c}"));
            }
            format!("crate::Ref<crate::classes::{}>", type_name(c))
        }
        Type::Enum(e) => {
            if !ctx.enums.contains_key(e.as_str()) {
                return Err(format!("unknown enum {e}"));
            }
            format!("crate::enums::{}", type_name(e))
        }
        Type::Set(inner) => format!("Vec<{}>", rust_type(ctx, inner)?),
        Type::Map(k, v) => {
            if matches!(**k, Type::Float) {
                return Err("float map keys are not supported".into());
            }
            format!(
                "std::collections::BTreeMap<{}, {}>",
                rust_type(ctx, k)?,
                rust_type(ctx, v)?
            )
        }
        Type::Record(c) => {
            if ctx.classes.contains_key(c.as_str()) {
                format!("crate::records::{}Record", type_name(c))
            } else {
                "crate::Value".into()
            }
        }
        Type::Option(inner) => format!("Option<{}>", rust_type(ctx, inner)?),
    })
}

/// A Rust expression for a datamodel default value of type `t`.
fn default_expr(ctx: &Ctx, t: &Type, v: &serde_json::Value) -> Result<String, String> {
    use serde_json::Value as J;
    let bad = || format!("default {v} does not fit type {t:?}");
    Ok(match (t, v) {
        (Type::String, J::String(s)) => format!("String::from({s:?})"),
        (Type::Int, J::Number(n)) => format!("{}i64", n.as_i64().ok_or_else(bad)?),
        (Type::Float, J::Number(n)) => format!("{:?}f64", n.as_f64().ok_or_else(bad)?),
        (Type::Bool, J::Bool(b)) => format!("{b}"),
        (Type::DateTime, J::String(s)) if s == "19700101T00:00:00Z" => {
            "crate::DateTime::EPOCH".into()
        }
        (Type::Ref(_), J::String(s)) if s == "OpaqueRef:NULL" => "crate::Ref::null()".into(),
        (Type::Ref(_), J::String(s)) => format!("crate::Ref::from_raw({s:?})"),
        (Type::Enum(e), J::String(s)) => {
            let spec = ctx.enums.get(e.as_str()).ok_or_else(bad)?;
            if !spec.values.iter().any(|x| x == s) {
                return Err(bad());
            }
            format!("crate::enums::{}::{}", type_name(e), variant_name(s))
        }
        (Type::Set(inner), J::Array(items)) => {
            let items: Result<Vec<_>, _> =
                items.iter().map(|x| default_expr(ctx, inner, x)).collect();
            format!("vec![{}]", items?.join(", "))
        }
        (Type::Set(inner), J::Number(_)) => format!("vec![{}]", default_expr(ctx, inner, v)?),
        (Type::Map(k, val), J::Object(m)) => {
            let mut parts = Vec::new();
            for (key, x) in m {
                let key_json = match **k {
                    Type::Int => serde_json::json!(key.parse::<i64>().map_err(|_| bad())?),
                    _ => J::String(key.clone()),
                };
                parts.push(format!(
                    "({}, {})",
                    default_expr(ctx, k, &key_json)?,
                    default_expr(ctx, val, x)?
                ));
            }
            format!("std::collections::BTreeMap::from([{}])", parts.join(", "))
        }
        _ => return Err(bad()),
    })
}

fn gen_records(ctx: &Ctx, out: &mut String) -> Result<(), String> {
    out.push_str("/// One record struct per class, fields in datamodel order.\npub mod records {\n    use crate::{FromValue, ToValue, Value};\n");
    for c in &ctx.dm.classes {
        gen_record(ctx, c, out).map_err(|e| format!("class {}: {e}", c.name))?;
    }
    out.push_str("}\n\n");
    Ok(())
}

fn gen_record(ctx: &Ctx, c: &ClassSpec, out: &mut String) -> Result<(), String> {
    let t = type_name(&c.name);
    let mut fields = Vec::new();
    let mut seen = BTreeSet::new();
    for f in &c.fields {
        let ty = Type::parse(&f.ty).map_err(|e| e.to_string())?;
        let name = value_name(&f.name);
        if !seen.insert(name.clone()) {
            return Err(format!("field name collision on {name}"));
        }
        let rty = rust_type(ctx, &ty)?;
        let default = match &f.default {
            Some(v) => default_expr(ctx, &ty, v).map_err(|e| format!("field {}: {e}", f.name))?,
            None if rty == "crate::Value" => "crate::Value::Nil".to_owned(),
            None => "Default::default()".to_owned(),
        };
        fields.push((name, f.name.as_str(), rty, default));
    }
    let _ = writeln!(out, "    /// A `{}` record.\n    #[derive(Debug, Clone, PartialEq)]\n    pub struct {t}Record {{", c.name);
    for (name, wire, rty, _) in &fields {
        let _ = writeln!(out, "        /// `{wire}`\n        pub {name}: {rty},");
    }
    out.push_str("    }\n");
    let _ = writeln!(
        out,
        "    impl Default for {t}Record {{\n        fn default() -> Self {{\n            Self {{"
    );
    for (name, _, _, default) in &fields {
        let _ = writeln!(out, "                {name}: {default},");
    }
    out.push_str("            }\n        }\n    }\n");
    let _ = writeln!(
        out,
        "    impl crate::Record for {t}Record {{\n        type Class = crate::classes::{t};"
    );
    out.push_str("        fn to_row(&self) -> Vec<Value> {\n            vec![");
    for (name, ..) in &fields {
        let _ = write!(out, "self.{name}.to_value(), ");
    }
    out.push_str("]\n        }\n        fn from_row(row: &[Value]) -> Result<Self, crate::ConvError> {\n            let nil = Value::Nil;\n            Ok(Self {\n");
    for (i, (name, wire, ..)) in fields.iter().enumerate() {
        let _ = writeln!(
            out,
            "                {name}: FromValue::from_value(row.get({i}).unwrap_or(&nil)).map_err(|e| e.at({wire:?}))?,"
        );
    }
    out.push_str("            })\n        }\n    }\n");
    let _ = writeln!(
        out,
        "    impl ToValue for {t}Record {{\n        fn to_value(&self) -> Value {{\n            Value::Struct(vec!["
    );
    for (name, wire, ..) in &fields {
        let _ = writeln!(
            out,
            "                ({wire:?}.to_owned(), self.{name}.to_value()),"
        );
    }
    out.push_str("            ])\n        }\n    }\n");
    let _ = writeln!(
        out,
        "    impl FromValue for {t}Record {{\n        fn from_value(v: &Value) -> Result<Self, crate::ConvError> {{\n            let Value::Struct(members) = v else {{ return Err(crate::ConvError::expected(\"struct\", v)); }};\n            let mut rec = Self::default();\n            for (k, v) in members {{\n                match k.as_str() {{"
    );
    for (name, wire, ..) in &fields {
        let _ = writeln!(
            out,
            "                    {wire:?} => rec.{name} = FromValue::from_value(v).map_err(|e| e.at({wire:?}))?,"
        );
    }
    out.push_str("                    _ => {}\n                }\n            }\n            Ok(rec)\n        }\n    }\n");
    Ok(())
}

fn gen_errors(comp: &Companion, out: &mut String) {
    out.push_str("/// Error codes and their constructors, arity as documented.\npub mod errors {\n    use crate::ApiError;\n");
    for (code, params) in &comp.errors {
        let f = error_fn_name(code);
        let _ = writeln!(
            out,
            "    /// `{code}`\n    pub const {code}: &str = {code:?};"
        );
        let Some(params) = params else {
            let _ = writeln!(
                out,
                "    /// `{code}`; upstream does not document its parameters.\n    pub fn {f}(params: Vec<String>) -> ApiError {{\n        ApiError::new({code}, params)\n    }}"
            );
            continue;
        };
        let names: Vec<String> = params.iter().map(|p| value_name(p)).collect();
        let args: Vec<String> = names
            .iter()
            .map(|n| format!("{n}: impl std::fmt::Display"))
            .collect();
        let vals: Vec<String> = names.iter().map(|n| format!("{n}.to_string()")).collect();
        let _ = writeln!(
            out,
            "    /// `{code}` with parameters {params:?}.\n    pub fn {f}({}) -> ApiError {{\n        ApiError::new({code}, vec![{}])\n    }}",
            args.join(", "),
            vals.join(", ")
        );
    }
    out.push_str("}\n\n");
}

/// Parameters after the session, as `(rust name, wire name, rust type)`.
fn message_params(ctx: &Ctx, m: &MessageSpec) -> Result<Vec<(String, String, String)>, String> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, p) in m.params.iter().enumerate() {
        if i == 0 && p.ty == "session ref" && p.name == "session_id" {
            continue;
        }
        let ty = Type::parse(&p.ty).map_err(|e| e.to_string())?;
        let mut name = value_name(&p.name);
        while !seen.insert(name.clone()) || name == "ctx" {
            name.push('_');
        }
        out.push((name, p.name.clone(), rust_type(ctx, &ty)?));
    }
    Ok(out)
}

fn result_type(ctx: &Ctx, m: &MessageSpec) -> Result<String, String> {
    rust_type(ctx, &Type::parse(&m.result).map_err(|e| e.to_string())?)
}

fn gen_actions(ctx: &Ctx, out: &mut String) -> Result<(), String> {
    out.push_str("/// One trait per class holding its explicit messages; unwritten ones answer `NOT_IMPLEMENTED`.\npub mod actions {\n    use crate::{ActionsBase, ApiResult, FromValue, ToValue, Value};\n");
    let explicit = crate::explicit_messages(ctx.dm);
    for (ci, c) in ctx.dm.classes.iter().enumerate() {
        let t = type_name(&c.name);
        let _ = writeln!(
            out,
            "    /// Explicit messages of `{}`.\n    pub trait {t}Actions: ActionsBase {{",
            c.name
        );
        out.push_str("        /// Wire names (without the class) of the messages this implementation provides.\n        fn implemented_messages(&self) -> &'static [&'static str] { &[] }\n");
        for &(_, mi) in explicit.iter().filter(|(c2, _)| *c2 == ci) {
            let m = &c.messages[mi];
            let params =
                message_params(ctx, m).map_err(|e| format!("{}.{}: {e}", c.name, m.name))?;
            let res = result_type(ctx, m).map_err(|e| format!("{}.{}: {e}", c.name, m.name))?;
            let args: String = params
                .iter()
                .map(|(n, _, ty)| format!(", {n}: {ty}"))
                .collect();
            let _ = writeln!(
                out,
                "        /// `{cls}.{msg}`\n        fn {meth}(&self, ctx: &Self::Ctx{args}) -> ApiResult<{res}> {{\n            Err(crate::errors::not_implemented(\"{cls}.{msg}\"))\n        }}",
                cls = c.name,
                msg = m.name,
                meth = method_name(&m.name),
            );
        }
        out.push_str("    }\n");
    }
    out.push_str("    /// Everything the daemon implements: one actions trait per class.\n    pub trait AllActions:");
    let bounds: Vec<String> = ctx
        .dm
        .classes
        .iter()
        .map(|c| format!(" {}Actions", type_name(&c.name)))
        .collect();
    out.push_str(&bounds.join(" +"));
    out.push_str(" {}\n    impl<T:");
    out.push_str(&bounds.join(" +"));
    out.push_str("> AllActions for T {}\n\n");

    out.push_str("    /// Whether `class_index`'s implementation provides message `name`.\n    pub fn is_implemented<D: AllActions + ?Sized>(d: &D, class_index: usize, name: &str) -> bool {\n        match class_index {\n");
    for (ci, c) in ctx.dm.classes.iter().enumerate() {
        let _ = writeln!(
            out,
            "            {ci} => <D as {}Actions>::implemented_messages(d).contains(&name),",
            type_name(&c.name)
        );
    }
    out.push_str("            _ => false,\n        }\n    }\n\n");

    out.push_str("    /// Runs explicit message number `index` with its arguments (session already removed).\n    pub fn dispatch_explicit<D: AllActions + ?Sized>(d: &D, ctx: &D::Ctx, index: usize, args: Vec<Value>) -> ApiResult<Value> {\n        let mut args = crate::Args::new(args);\n        match index {\n");
    for (idx, &(ci, mi)) in explicit.iter().enumerate() {
        let c = &ctx.dm.classes[ci];
        let m = &c.messages[mi];
        let params = message_params(ctx, m)?;
        let mut body = String::new();
        for (n, wire, ty) in &params {
            let _ = write!(body, "let {n}: {ty} = args.take({wire:?})?; ");
        }
        let call_args: String = params.iter().map(|(n, ..)| format!(", {n}")).collect();
        let _ = writeln!(
            out,
            "            {idx} => {{ {body}let r = <D as {}Actions>::{}(d, ctx{call_args})?; Ok(r.to_value()) }}",
            type_name(&c.name),
            method_name(&m.name)
        );
    }
    out.push_str("            _ => Err(crate::ApiError::internal(\"unknown explicit message index\")),\n        }\n    }\n}\n");
    Ok(())
}
