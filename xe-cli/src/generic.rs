//! The generated commands of every CLI class: `<class>-list`, `-param-list`, `-param-get`,
//! `-param-set`, `-param-add`, `-param-remove` and `-param-clear`, over the implicit XenAPI
//! messages (`get_all_records_where`, `get_by_uuid`, `get_record`, `set_<field>`,
//! `add_to_<map>` ...). Output goes to the [`Printer`].
use xapi_rpc::Value;

use crate::api::{s, Api};
use crate::args::CommandLine;
use crate::error::{fail, CliError};
use crate::fields::{self, Cap, CliClass, CliField, Kind};
use crate::printer::{Printer, Record};
use crate::select;
use crate::table::{data, Generic};

/// Runs one generated command.
pub fn run(
    api: &mut Api,
    p: &mut Printer,
    g: Generic,
    class: &CliClass,
    cmd: &CommandLine,
) -> Result<(), CliError> {
    match g {
        Generic::List => list(api, p, class, cmd),
        Generic::ParamList => param_list(api, p, class, cmd),
        Generic::ParamGet => param_get(api, p, class, cmd),
        Generic::ParamSet => param_set(api, class, cmd),
        Generic::ParamAdd => param_add(api, class, cmd),
        Generic::ParamRemove => param_remove(api, class, cmd),
        Generic::ParamClear => param_clear(api, class, cmd),
    }
}

fn is_std(k: &str) -> bool {
    data().stdparams.iter().any(|s| s == k)
}

/// The column names chosen by `params=` (empty means all), or the defaults.
pub fn chosen_params(cmd: &CommandLine, defaults: &[String]) -> Vec<String> {
    match cmd.get("params") {
        Some("all") => Vec::new(),
        Some(list) => list.split(',').map(str::to_owned).collect(),
        None => defaults.to_vec(),
    }
}

/// Prints `field`s of one record as xe labels them.
pub fn print_record(
    api: &mut Api,
    class: &CliClass,
    rec: &Value,
    chosen: &[String],
    in_list: bool,
) -> Result<Record, CliError> {
    let mut out = Vec::new();
    for f in &class.fields {
        if f.hidden || (!chosen.is_empty() && !chosen.iter().any(|c| c == &f.name)) {
            continue;
        }
        let value = if in_list && f.expensive {
            "<expensive field>".to_owned()
        } else {
            fields::get(api, f, rec)?
        };
        out.push((f.label(), value));
    }
    Ok(out)
}

fn list(
    api: &mut Api,
    p: &mut Printer,
    class: &CliClass,
    cmd: &CommandLine,
) -> Result<(), CliError> {
    let all = list_source(api, class)?;
    let mut filters = class.default_filters.clone();
    filters.extend(
        cmd.params
            .iter()
            .filter(|(k, _)| k != "params" && !is_std(k) && !k.starts_with("database:"))
            .cloned(),
    );
    let objs = if cmd.flag("all") {
        all
    } else {
        select::filter_all(api, class, all, &filters)?
    };
    let chosen = chosen_params(cmd, &class.default_params);
    let mut records = Vec::new();
    for (_, rec) in &objs {
        records.push(print_record(api, class, rec, &chosen, true)?);
    }
    p.table(&records);
    Ok(())
}

/// The records a `-list` starts from: `get_all_records_where(<class expression>)`. A server
/// that does not understand the expression (only `role` uses one: roles with subroles) is asked
/// for everything and the same condition is applied here.
pub fn list_source(api: &mut Api, class: &CliClass) -> Result<Vec<(String, Value)>, CliError> {
    match api.records_where(&class.wire, &class.list_expr) {
        Err(CliError::Api { code, .. }) if code == "INVALID_VALUE" && class.list_expr != "true" => {
            let all = api.records_where(&class.wire, "true")?;
            Ok(all
                .into_iter()
                .filter(|(_, rec)| matches!(rec.get("subroles"), Some(Value::Array(v)) if !v.is_empty()))
                .collect())
        }
        other => other,
    }
}

/// The ref and record of the object with `uuid`.
pub fn by_uuid(api: &mut Api, class: &CliClass, uuid: &str) -> Result<(String, Value), CliError> {
    let r = api.by_uuid(&class.wire, uuid)?;
    let rec = api.call(&format!("{}.get_record", class.wire), vec![s(&r)])?;
    Ok((r, rec))
}

fn param_list(
    api: &mut Api,
    p: &mut Printer,
    class: &CliClass,
    cmd: &CommandLine,
) -> Result<(), CliError> {
    let (_, rec) = by_uuid(api, class, cmd.reqd("uuid")?)?;
    let r = print_record(api, class, &rec, &[], false)?;
    p.table(&[r]);
    Ok(())
}

fn param_get(
    api: &mut Api,
    p: &mut Printer,
    class: &CliClass,
    cmd: &CommandLine,
) -> Result<(), CliError> {
    let (_, rec) = by_uuid(api, class, cmd.reqd("uuid")?)?;
    let f = class.field(cmd.reqd("param-name")?)?;
    if let (Some(key), Kind::Map) = (cmd.get("param-key"), f.kind) {
        let map = fields::get_map(api, f, &rec)?;
        let v = map
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| fail(format!("Key {key} not found in map")))?;
        p.list(&[v]);
        return Ok(());
    }
    let v = fields::get(api, f, &rec)?;
    p.list(&[v]);
    Ok(())
}

fn step_name(f: &CliField) -> Result<&str, CliError> {
    f.direct()
        .map(|s| s.field.as_str())
        .ok_or_else(|| fail(format!("Field '{}' is read-only.", f.name)))
}

fn map_types(f: &CliField) -> (xapi_idl::Type, xapi_idl::Type) {
    match f.path.last().map(|s| &s.ty) {
        Some(xapi_idl::Type::Map(k, v)) => ((**k).clone(), (**v).clone()),
        _ => (xapi_idl::Type::String, xapi_idl::Type::String),
    }
}

fn set_member_type(f: &CliField) -> xapi_idl::Type {
    match f.path.last().map(|s| &s.ty) {
        Some(xapi_idl::Type::Set(t)) => (**t).clone(),
        _ => xapi_idl::Type::String,
    }
}

/// Sets one key of a map field the way upstream does without `set_in_map`: remove, then add.
fn map_put(
    api: &mut Api,
    class: &CliClass,
    r: &str,
    rec: &Value,
    f: &CliField,
    key: &str,
    value: &str,
) -> Result<(), CliError> {
    if !(f.has(Cap::AddToMap) || f.has(Cap::SetInMap) || f.has(Cap::SetMap)) {
        return Err(fail(format!("Map field '{}' is read-only.", f.name)));
    }
    let name = step_name(f)?;
    let (kt, vt) = map_types(f);
    let k = fields::parse(api, &kt, &f.name, key)?;
    let v = fields::parse(api, &vt, &f.name, value)?;
    let existing = fields::get_map(api, f, rec)?;
    if existing.iter().any(|(ek, _)| ek == key) {
        api.call(
            &format!("{}.remove_from_{name}", class.wire),
            vec![s(r), k.clone()],
        )?;
    }
    api.call(&format!("{}.add_to_{name}", class.wire), vec![s(r), k, v])?;
    Ok(())
}

fn param_set(api: &mut Api, class: &CliClass, cmd: &CommandLine) -> Result<(), CliError> {
    let (r, rec) = by_uuid(api, class, cmd.reqd("uuid")?)?;
    for (k, v) in &cmd.params {
        if k == "uuid" || is_std(k) {
            continue;
        }
        let (f, key) = resolve_key(class, k)?;
        match (f.kind, key) {
            (Kind::Map, Some(key)) => map_put(api, class, &r, &rec, f, &key, v)?,
            (Kind::Set, Some(_)) => return Err(fail("Cannot param-set on set fields")),
            (_, _) if f.has(Cap::Set) => {
                let name = step_name(f)?;
                let ty = f.path[0].ty.clone();
                let value = fields::parse(api, &ty, k, v)?;
                api.call(&format!("{}.set_{name}", class.wire), vec![s(&r), value])?;
            }
            (Kind::Map | Kind::Set, _) if f.has(Cap::AddToMap) || f.has(Cap::AddToSet) => {
                return Err(fail(format!(
                    "Field '{k}' is a map or set. use the 'name:key=value' syntax."
                )))
            }
            _ => return Err(fail(format!("Field '{k}' is read-only."))),
        }
    }
    api.invalidate();
    Ok(())
}

/// A `param-set` key: a field, or `map:key` / legacy `map-key`.
fn resolve_key<'a>(
    class: &'a CliClass,
    k: &str,
) -> Result<(&'a CliField, Option<String>), CliError> {
    if let Some(f) = class.fields.iter().find(|f| f.name == k) {
        return Ok((f, None));
    }
    if let Some((stem, rest)) = k.split_once(':') {
        let f = class
            .fields
            .iter()
            .find(|f| f.name == stem)
            .ok_or_else(|| fail(format!("Unknown field '{k}'")))?;
        if f.kind == Kind::Scalar {
            return Err(fail(format!("Field '{}' is not a set or map", f.name)));
        }
        return Ok((f, Some(rest.to_owned())));
    }
    for kind in [Kind::Map, Kind::Set] {
        let mut cands: Vec<_> = class.fields.iter().filter(|f| f.kind == kind).collect();
        cands.sort_by_key(|f| std::cmp::Reverse(f.name.len()));
        if let Some(f) = cands
            .into_iter()
            .find(|f| k.starts_with(&format!("{}-", f.name)))
        {
            return Ok((f, Some(k[f.name.len() + 1..].to_owned())));
        }
    }
    Err(fail(format!("Unknown field '{k}'")))
}

fn param_add(api: &mut Api, class: &CliClass, cmd: &CommandLine) -> Result<(), CliError> {
    let (r, _) = by_uuid(api, class, cmd.reqd("uuid")?)?;
    let f = class.field(cmd.reqd("param-name")?)?;
    if f.has(Cap::AddToSet) {
        let key = cmd.get("param-key").ok_or_else(|| {
            fail("When adding a key to a set, use the syntax: *-param-add param-name=<name> param-key=<key>")
        })?;
        let name = step_name(f)?;
        let v = fields::parse(api, &set_member_type(f), &f.name, key)?;
        api.call(&format!("{}.add_{name}", class.wire), vec![s(&r), v])?;
    } else if f.has(Cap::AddToMap) {
        let name = step_name(f)?;
        let (kt, vt) = map_types(f);
        for (k, v) in &cmd.params {
            if matches!(k.as_str(), "uuid" | "param-name" | "param-key") || is_std(k) {
                continue;
            }
            let key = fields::parse(api, &kt, &f.name, k)?;
            let value = fields::parse(api, &vt, &f.name, v)?;
            api.call(
                &format!("{}.add_to_{name}", class.wire),
                vec![s(&r), key, value],
            )?;
        }
    } else if f.kind != Kind::Scalar {
        return Err(fail("Parameter is read-only"));
    } else {
        return Err(fail("Can only add to parameters of type Set or Map"));
    }
    api.invalidate();
    Ok(())
}

fn param_remove(api: &mut Api, class: &CliClass, cmd: &CommandLine) -> Result<(), CliError> {
    let (r, rec) = by_uuid(api, class, cmd.reqd("uuid")?)?;
    let f = class.field(cmd.reqd("param-name")?)?;
    let key = cmd.reqd("param-key")?;
    match f.kind {
        Kind::Set if f.has(Cap::RemoveFromSet) => {
            if !fields::get_set(api, f, &rec)?.iter().any(|m| m == key) {
                return Err(fail(format!("Key {key} is not in the set")));
            }
            let name = step_name(f)?;
            let v = fields::parse(api, &set_member_type(f), &f.name, key)?;
            api.call(&format!("{}.remove_{name}", class.wire), vec![s(&r), v])?;
        }
        Kind::Map if f.has(Cap::RemoveFromMap) => {
            if !fields::get_map(api, f, &rec)?.iter().any(|(k, _)| k == key) {
                return Err(fail(format!("Key {key} is not in map")));
            }
            let name = step_name(f)?;
            let k = fields::parse(api, &map_types(f).0, &f.name, key)?;
            api.call(
                &format!("{}.remove_from_{name}", class.wire),
                vec![s(&r), k],
            )?;
        }
        Kind::Set | Kind::Map => return Err(fail("Cannot remove parameters from read-only map")),
        Kind::Scalar => return Err(fail("Can only remove from parameters of type Set or Map")),
    }
    api.invalidate();
    Ok(())
}

fn param_clear(api: &mut Api, class: &CliClass, cmd: &CommandLine) -> Result<(), CliError> {
    let (r, rec) = by_uuid(api, class, cmd.reqd("uuid")?)?;
    let f = class.field(cmd.reqd("param-name")?)?;
    let wire = class.wire.clone();
    match f.kind {
        Kind::Set if f.has(Cap::RemoveFromSet) => {
            let name = step_name(f)?;
            let members = match f.path[0].ty.clone() {
                xapi_idl::Type::Set(_) => match rec.get(name) {
                    Some(Value::Array(items)) => items.clone(),
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
            for m in members {
                api.call(&format!("{wire}.remove_{name}"), vec![s(&r), m])?;
            }
        }
        Kind::Map if f.has(Cap::ClearMap) || f.has(Cap::SetMap) => {
            let name = step_name(f)?;
            api.call(
                &format!("{wire}.set_{name}"),
                vec![s(&r), Value::Struct(Vec::new())],
            )?;
        }
        Kind::Map if f.has(Cap::RemoveFromMap) => {
            let name = step_name(f)?;
            let keys: Vec<String> = match rec.get(name) {
                Some(Value::Struct(m)) => m.iter().map(|(k, _)| k.clone()).collect(),
                _ => Vec::new(),
            };
            for k in keys {
                api.call(&format!("{wire}.remove_from_{name}"), vec![s(&r), s(&k)])?;
            }
        }
        _ if f.has(Cap::Set) => {
            let name = step_name(f)?;
            let ty = f.path[0].ty.clone();
            let value = fields::parse(api, &ty, &f.name, "")
                .map_err(|_| fail("Cannot clear this parameter"))?;
            api.call(&format!("{wire}.set_{name}"), vec![s(&r), value])
                .map_err(|e| match e {
                    CliError::Api { .. } | CliError::Transport(_) => e,
                    _ => fail("Cannot clear this parameter"),
                })?;
        }
        _ => return Err(fail("Can only clear RW parameters")),
    }
    api.invalidate();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_all_selects_every_column() {
        let cmd = CommandLine {
            name: "vm-list".into(),
            params: vec![("params".into(), "all".into())],
        };
        assert!(chosen_params(&cmd, &["uuid".into()]).is_empty());
    }

    #[test]
    fn params_list_is_split_on_commas() {
        let cmd = CommandLine {
            name: "vm-list".into(),
            params: vec![("params".into(), "uuid,name-label".into())],
        };
        assert_eq!(chosen_params(&cmd, &[]), vec!["uuid", "name-label"]);
    }

    #[test]
    fn map_key_syntax_resolves_to_the_map_field() {
        let c = fields::cli_class("network").unwrap();
        let (f, k) = resolve_key(c, "other-config:foo").unwrap();
        assert_eq!(f.name, "other-config");
        assert_eq!(k.as_deref(), Some("foo"));
        assert!(resolve_key(c, "nonsense").is_err());
    }
}
