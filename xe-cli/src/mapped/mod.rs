//! Table-driven explicit commands: each row maps one xe command onto the XenAPI call (or short
//! call sequence) upstream's CLI makes, naming how the target object is chosen and which
//! command-line parameter feeds each call argument. Values are parsed with the datamodel type
//! of the call's parameter; the last call's result is printed as xe prints it.
//!
//! Argument specs, one per wire parameter after the session:
//! - `@` the object chosen by the row's selectors (`vm=`, `host=`, `uuid=`, field filters)
//! - `%this` the host xe is connected to; `%pool` the pool (`uuid=` when given)
//! - `=text` a literal; `name` a required parameter; `name?` optional (the type's zero value
//!   when absent) and `name?text` optional with a default; `a|b` the first of `a` or `b` given
//! - `#name` a size (`1GiB`, `512M`); `name:` the `name:key=value` parameters as a map
//! - `&a,b` the parameters `a`, `b` that were given, as a map keyed by their names
//! - `<name` the contents of the client file `name` points at; `^name` that file's base name
//! - a `/bool`, `/int` or `/float` suffix types a parameter of a call the datamodel lacks
use xapi_idl::model::{model, zero_value};
use xapi_idl::Type;
use xapi_rpc::Value;

use crate::api::{s, Api};
use crate::args::CommandLine;
use crate::error::{fail, CliError};
use crate::fields;
use crate::ops::{map_params, this_host};
use crate::printer::Printer;
use crate::select::{self, Family};

/// How a row chooses the object(s) it operates on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// No selection: every argument comes from its spec.
    Nothing,
    /// VM selectors; several objects need `--multiple` when `multiple`.
    Vm {
        control: bool,
        templates: bool,
        multiple: bool,
    },
    /// Host selectors.
    Host { multiple: bool },
    /// SR selectors.
    Sr { multiple: bool },
}

/// One call of a row: wire name and argument specs.
pub type Step = (&'static str, &'static [&'static str]);

/// One table-driven command.
#[derive(Debug)]
pub struct Row {
    pub name: &'static str,
    pub on: On,
    pub steps: &'static [Step],
}

mod rows;

pub use rows::ROWS;

/// The row for command `name`.
pub fn find(name: &str) -> Option<&'static Row> {
    ROWS.iter().find(|r| r.name == name)
}

/// One parsed argument spec.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg<'a> {
    Target,
    ThisHost,
    Pool,
    Session,
    Literal(&'a str),
    Param {
        names: Vec<&'a str>,
        /// `None`: required; `Some("")`: zero value; `Some(text)`: this default.
        default: Option<&'a str>,
        how: How,
    },
    Map(&'a str),
    Named(Vec<&'a str>),
}

/// How a parameter's text becomes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Typed,
    Size,
    FileContents,
    FileName,
}

/// Splits a spec into the argument and its type override (`/bool` ...).
pub fn parse_spec(spec: &str) -> (Arg<'_>, Option<Type>) {
    let (body, ty) = match spec.rsplit_once('/') {
        Some((b, t)) if !spec.starts_with('=') => (
            b,
            match t {
                "bool" => Some(Type::Bool),
                "int" => Some(Type::Int),
                "float" => Some(Type::Float),
                _ => Some(Type::String),
            },
        ),
        _ => (spec, None),
    };
    let arg = match body {
        "@" => Arg::Target,
        "%this" => Arg::ThisHost,
        "%pool" => Arg::Pool,
        "%session" => Arg::Session,
        _ if body.starts_with('=') => Arg::Literal(&body[1..]),
        _ if body.ends_with(':') => Arg::Map(&body[..body.len() - 1]),
        _ if body.starts_with('&') => Arg::Named(body[1..].split(',').collect()),
        _ => {
            let (how, rest) = match body.as_bytes().first() {
                Some(b'#') => (How::Size, &body[1..]),
                Some(b'<') => (How::FileContents, &body[1..]),
                Some(b'^') => (How::FileName, &body[1..]),
                _ => (How::Typed, body),
            };
            let (names, default) = match rest.split_once('?') {
                Some((n, d)) => (n, Some(d)),
                None => (rest, None),
            };
            Arg::Param {
                names: names.split('|').collect(),
                default,
                how,
            }
        }
    };
    (arg, ty)
}

/// The wire parameter types of `wire` (after the session) and its result type, from the
/// datamodel; `None` for a call the datamodel does not have.
pub fn signature(wire: &str) -> Option<(Vec<Type>, Type)> {
    let m = model().message(wire)?;
    Some((
        m.params.iter().map(|p| p.ty.clone()).collect(),
        m.result.clone(),
    ))
}

/// Runs a row on the command line.
pub fn run(api: &mut Api, p: &mut Printer, row: &Row, cmd: &CommandLine) -> Result<(), CliError> {
    let spec = crate::table::find(row.name).ok_or_else(|| fail("no such command"))?;
    let ignore: Vec<String> = spec.reqd.iter().chain(spec.optn.iter()).cloned().collect();
    let (family, multiple, objs) = match row.on {
        On::Nothing => {
            let mut results = Vec::new();
            run_steps(api, row, cmd, None, &mut results)?;
            return print_results(api, p, results);
        }
        On::Vm {
            control,
            templates,
            multiple,
        } => (
            Family::Vm,
            multiple,
            select::select(api, Family::Vm, cmd, &ignore, control, templates)?,
        ),
        On::Host { multiple } => (
            Family::Host,
            multiple,
            select::select(api, Family::Host, cmd, &ignore, false, false)?,
        ),
        On::Sr { multiple } => (
            Family::Sr,
            multiple,
            select::select(api, Family::Sr, cmd, &ignore, false, false)?,
        ),
    };
    let mut results = Vec::new();
    select::run_on(family, objs, cmd, multiple, api, |api, (r, _)| {
        run_steps(api, row, cmd, Some(r), &mut results)
    })?;
    print_results(api, p, results)
}

fn run_steps(
    api: &mut Api,
    row: &Row,
    cmd: &CommandLine,
    target: Option<&str>,
    results: &mut Vec<(Type, Value)>,
) -> Result<(), CliError> {
    for (i, (wire, specs)) in row.steps.iter().enumerate() {
        let sig = signature(wire);
        let mut args = Vec::new();
        for (n, spec) in specs.iter().enumerate() {
            let (arg, over) = parse_spec(spec);
            let ty = over
                .or_else(|| sig.as_ref().and_then(|(ps, _)| ps.get(n).cloned()))
                .unwrap_or(Type::String);
            args.push(value(api, cmd, target, &arg, &ty)?);
        }
        let result_ty = sig.map(|(_, r)| r).unwrap_or(Type::String);
        let last = i + 1 == row.steps.len();
        let v = api.call(wire, args)?;
        if last {
            results.push((result_ty, v));
        }
    }
    api.invalidate();
    Ok(())
}

fn value(
    api: &mut Api,
    cmd: &CommandLine,
    target: Option<&str>,
    arg: &Arg<'_>,
    ty: &Type,
) -> Result<Value, CliError> {
    Ok(match arg {
        Arg::Target => s(target.ok_or_else(|| fail("this command selects no object"))?),
        Arg::ThisHost => s(&this_host(api)?),
        Arg::Pool => s(&pool(api, cmd)?),
        Arg::Session => s(&api.session()?),
        Arg::Literal("") => zero_value(ty, &model().enums),
        Arg::Literal(text) => fields::parse(api, ty, "", text)?,
        Arg::Map(prefix) => Value::Struct(map_params(cmd, prefix)),
        Arg::Named(names) => Value::Struct(
            names
                .iter()
                .filter_map(|n| cmd.get(n).map(|v| ((*n).to_owned(), s(v))))
                .collect(),
        ),
        Arg::Param {
            names,
            default,
            how,
        } => {
            let given = names
                .iter()
                .find_map(|n| cmd.get(n).map(|v| (*n, v.to_owned())));
            let Some((name, text)) = given else {
                return match default {
                    None => Err(CliError::ParamNotFound(names[0].to_owned())),
                    Some("%this") => Ok(s(&this_host(api)?)),
                    Some("") => Ok(zero_value(ty, &model().enums)),
                    Some(d) => fields::parse(api, ty, names[0], d),
                };
            };
            match how {
                How::Typed => fields::parse(api, ty, name, &text)?,
                How::Size => Value::Int(crate::ops::parse_size(name, &text)?),
                How::FileContents => s(&std::fs::read_to_string(&text)
                    .map_err(|e| fail(format!("Failed to read file {text}: {e}")))?),
                How::FileName => s(std::path::Path::new(&text)
                    .file_name()
                    .and_then(|f| f.to_str())
                    .unwrap_or(&text)),
            }
        }
    })
}

/// The pool: `uuid=` when given (upstream's `get_pool_with_default`), else the only one.
fn pool(api: &mut Api, cmd: &CommandLine) -> Result<String, CliError> {
    if let Some(u) = cmd.get("uuid") {
        return api.by_uuid("pool", u);
    }
    crate::ops::the_pool(api)?.ok_or_else(|| fail("No pool found"))
}

fn print_results(
    api: &mut Api,
    p: &mut Printer,
    results: Vec<(Type, Value)>,
) -> Result<(), CliError> {
    for (ty, v) in results {
        print_value(api, p, &ty, v)?;
    }
    Ok(())
}

/// Prints a call's result as xe does: maps as one record, sets of records as records, other
/// sets one item per line, references as uuids, floats as `%f`.
fn print_value(api: &mut Api, p: &mut Printer, ty: &Type, v: Value) -> Result<(), CliError> {
    match (ty, v) {
        (Type::Void, _) => {}
        (Type::Map(kt, vt), Value::Struct(members)) => {
            let mut rec = Vec::new();
            for (k, val) in members {
                let key = fields::render(api, &s(&k), kt)?;
                rec.push((key, fields::render(api, &val, vt)?));
            }
            p.table(&[rec]);
        }
        (Type::Set(inner), Value::Array(items)) => match inner.as_ref() {
            Type::Record(_) => {
                let mut recs = Vec::new();
                for item in items {
                    if let Value::Struct(members) = item {
                        let mut rec = Vec::new();
                        for (k, val) in members {
                            rec.push((k, fields::render(api, &val, &Type::Any)?));
                        }
                        recs.push(rec);
                    }
                }
                p.table(&recs);
            }
            _ => {
                let mut lines = Vec::new();
                for item in &items {
                    lines.push(fields::render(api, item, inner)?);
                }
                p.list(&lines);
            }
        },
        (Type::Float, Value::Double(d)) => p.list(&[format!("{d:.6}")]),
        (ty, v) => {
            let text = fields::render(api, &v, ty)?;
            p.list(&[text]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_into_arguments() {
        assert_eq!(parse_spec("@").0, Arg::Target);
        assert_eq!(
            parse_spec("=MAINTENANCE_MODE").0,
            Arg::Literal("MAINTENANCE_MODE")
        );
        assert_eq!(parse_spec("device-config:").0, Arg::Map("device-config"));
        assert_eq!(
            parse_spec("#target").0,
            Arg::Param {
                names: vec!["target"],
                default: None,
                how: How::Size
            }
        );
        let (arg, ty) = parse_spec("force?false/bool");
        assert_eq!(ty, Some(Type::Bool));
        assert_eq!(
            arg,
            Arg::Param {
                names: vec!["force"],
                default: Some("false"),
                how: How::Typed
            }
        );
        assert_eq!(
            parse_spec("snapshot-uuid|uuid").0,
            Arg::Param {
                names: vec!["snapshot-uuid", "uuid"],
                default: None,
                how: How::Typed
            }
        );
    }

    #[test]
    fn every_row_is_a_command_and_fits_its_call() {
        for row in ROWS {
            assert!(
                crate::table::find(row.name).is_some(),
                "{} is not a command",
                row.name
            );
            for (wire, specs) in row.steps {
                let targets = specs.iter().filter(|s| **s == "@").count();
                assert_eq!(
                    targets > 0,
                    row.on != On::Nothing,
                    "{}: selectors and '@' go together",
                    row.name
                );
                if let Some((params, _)) = signature(wire) {
                    assert_eq!(params.len(), specs.len(), "{}: arity of {wire}", row.name);
                }
            }
        }
    }

    #[test]
    fn every_required_parameter_feeds_a_call() {
        let mut bad = Vec::new();
        for row in ROWS {
            let Some(spec) = crate::table::find(row.name) else {
                continue;
            };
            let used: Vec<&str> = row
                .steps
                .iter()
                .flat_map(|(_, specs)| specs.iter())
                .flat_map(|sp| match parse_spec(sp).0 {
                    Arg::Param { names, .. } => names,
                    Arg::Map(m) => vec![m],
                    Arg::Named(names) => names,
                    Arg::Pool => vec!["uuid"],
                    _ => vec![],
                })
                .collect();
            for r in &spec.reqd {
                let selector =
                    row.on != On::Nothing && matches!(r.as_str(), "uuid" | "vm" | "host" | "sr");
                if !(selector || used.contains(&r.as_str())) {
                    bad.push(format!("{}: {r}", row.name));
                }
            }
        }
        assert!(bad.is_empty(), "required parameters not passed on: {bad:?}");
    }
}
