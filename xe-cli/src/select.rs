//! Choosing objects from the command line: `<field>=<value>` filters over a CLI class's
//! printed fields (maps as `map:key=value`, sets as `set:contains=value`), the `vm=` /
//! `host=` / `sr=` pseudo-fields, and the single-or-`--multiple` rule of upstream's
//! `do_vm_op`. Reads objects only through [`Api`].
use xapi_rpc::Value;

use crate::api::Api;
use crate::args::CommandLine;
use crate::error::{fail, CliError};
use crate::fields::{self, CliClass, Kind};
use crate::table::data;

/// One object with its record.
pub type Obj = (String, Value);

enum FieldType<'a> {
    Normal(&'a fields::CliField),
    Map(&'a fields::CliField, String),
    Set(&'a fields::CliField, String),
}

/// Checks that `key` names a field of `class` usable as a filter (`field`, `map:key`,
/// `set:contains`, or the old `map-key` form), with upstream's error when it does not.
pub fn check_filter_key(class: &CliClass, key: &str) -> Result<(), CliError> {
    field_type(class, key).map(|_| ())
}

fn field_type<'a>(class: &'a CliClass, key: &str) -> Result<FieldType<'a>, CliError> {
    if let Some(f) = class.fields.iter().find(|f| f.name == key) {
        return Ok(FieldType::Normal(f));
    }
    if let Some((stem, rest)) = key.split_once(':') {
        let f = class
            .fields
            .iter()
            .find(|f| f.name == stem)
            .ok_or_else(|| fail(format!("Unknown field '{key}'")))?;
        return match f.kind {
            Kind::Set => Ok(FieldType::Set(f, rest.to_owned())),
            Kind::Map => Ok(FieldType::Map(f, rest.to_owned())),
            Kind::Scalar => Err(fail(format!("Field '{}' is not a set or map", f.name))),
        };
    }
    // Compatibility: the old `map-name-key=value` form, longest map name first, then sets.
    for kind in [Kind::Map, Kind::Set] {
        let mut candidates: Vec<_> = class.fields.iter().filter(|f| f.kind == kind).collect();
        candidates.sort_by_key(|f| std::cmp::Reverse(f.name.len()));
        if let Some(f) = candidates
            .into_iter()
            .find(|f| key.starts_with(&format!("{}-", f.name)))
        {
            let rest = key[f.name.len() + 1..].to_owned();
            return Ok(match kind {
                Kind::Map => FieldType::Map(f, rest),
                _ => FieldType::Set(f, rest),
            });
        }
    }
    Err(fail(format!("Unknown field '{key}'")))
}

/// Keeps the objects whose field `key` matches `value`.
pub fn filter(
    api: &mut Api,
    class: &CliClass,
    objs: Vec<Obj>,
    key: &str,
    value: &str,
) -> Result<Vec<Obj>, CliError> {
    if objs.is_empty() {
        return Ok(objs);
    }
    let ft = field_type(class, key)?;
    let mut out = Vec::new();
    for (r, rec) in objs {
        let keep = match &ft {
            FieldType::Normal(f) => {
                let v = fields::get(api, f, &rec)?;
                if f.case_insensitive {
                    v.eq_ignore_ascii_case(value)
                } else {
                    v == value
                }
            }
            FieldType::Map(f, k) => fields::get_map(api, f, &rec)?.iter().any(|(mk, mv)| {
                if f.case_insensitive {
                    mk.eq_ignore_ascii_case(k) && mv.eq_ignore_ascii_case(value)
                } else {
                    mk == k && mv == value
                }
            }),
            FieldType::Set(f, op) => {
                if op != "contains" {
                    return Err(fail(
                        "Invalid syntax for set filtering (should be set-param:contains=key)",
                    ));
                }
                fields::get_set(api, f, &rec)?.iter().any(|m| {
                    if f.case_insensitive {
                        m.eq_ignore_ascii_case(value)
                    } else {
                        m == value
                    }
                })
            }
        };
        if keep {
            out.push((r, rec));
        }
    }
    Ok(out)
}

/// Applies every `(key, value)` filter in order.
pub fn filter_all(
    api: &mut Api,
    class: &CliClass,
    mut objs: Vec<Obj>,
    filters: &[(String, String)],
) -> Result<Vec<Obj>, CliError> {
    for (k, v) in filters {
        objs = filter(api, class, objs, k, v)?;
    }
    Ok(objs)
}

/// Escapes `"` for an expression string literal.
fn quote(v: &str) -> String {
    v.replace('"', "\\\"")
}

/// Which selector family a command uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Vm,
    Host,
    Sr,
}

impl Family {
    /// The family of a command carrying `Vm_selectors`, `Host_selectors` or `Sr_selectors`.
    pub fn of(spec: &crate::table::Command) -> Option<Family> {
        if spec.has_flag("Vm_selectors") {
            Some(Family::Vm)
        } else if spec.has_flag("Host_selectors") {
            Some(Family::Host)
        } else if spec.has_flag("Sr_selectors") {
            Some(Family::Sr)
        } else {
            None
        }
    }

    /// The CLI class the selectors filter.
    pub fn class(self) -> &'static str {
        match self {
            Family::Vm => "vm",
            Family::Host => "host",
            Family::Sr => "sr",
        }
    }
    /// The pseudo-field matching name-label or uuid (`vm=`, `host=`, `sr=`).
    pub fn pseudo(self) -> &'static str {
        match self {
            Family::Vm => "vm",
            Family::Host => "host",
            Family::Sr => "sr",
        }
    }
    fn plural(self) -> &'static str {
        match self {
            Family::Vm => "VMs",
            Family::Host => "hosts",
            Family::Sr => "SRs",
        }
    }
}

/// Objects chosen by selectors; `ignore` lists the command's own parameters.
pub fn select(
    api: &mut Api,
    family: Family,
    cmd: &CommandLine,
    ignore: &[String],
    include_control: bool,
    include_templates: bool,
) -> Result<Vec<Obj>, CliError> {
    let class = fields::cli_class(family.class())
        .ok_or_else(|| fail(format!("no CLI class {}", family.class())))?;
    let mut params: Vec<(String, String)> = Vec::new();
    if family == Family::Vm {
        if !include_control {
            params.push(("is-control-domain".into(), "false".into()));
        }
        if !include_templates {
            params.push(("is-a-template".into(), "false".into()));
        }
    }
    let mut expr = "true".to_owned();
    for (k, v) in &cmd.params {
        if k == family.pseudo() {
            let q = quote(v);
            expr = match family {
                Family::Host => format!(
                    "(field \"uuid\"=\"{q}\") or (field \"hostname\"=\"{q}\") or (field \"name__label\"=\"{q}\")"
                ),
                _ => format!("(field \"uuid\"=\"{q}\") or (field \"name__label\"=\"{q}\")"),
            };
            continue;
        }
        params.push((k.clone(), v.clone()));
    }
    let stdparams = &data().stdparams;
    let filters: Vec<(String, String)> = params
        .into_iter()
        .filter(|(k, _)| {
            let stem = k.split(':').next().unwrap_or(k);
            !stdparams.iter().any(|s| s == stem) && !ignore.iter().any(|s| s == stem)
        })
        .collect();
    let objs = api.records_where(&class.wire, &expr)?;
    filter_all(api, class, objs, &filters)
}

/// Runs `op` on the selected objects following upstream's single/`--multiple` rule, and
/// collects the per-object failures when several were operated on.
pub fn run_on<T>(
    family: Family,
    objs: Vec<Obj>,
    cmd: &CommandLine,
    multiple_allowed: bool,
    api: &mut Api,
    mut op: impl FnMut(&mut Api, &Obj) -> Result<T, CliError>,
) -> Result<Vec<T>, CliError> {
    match objs.len() {
        0 => Err(fail(match family {
            // Compatibility: upstream's SR selector reports hosts.
            Family::Vm => "No matching VMs found",
            Family::Host | Family::Sr => "No matching hosts found",
        })),
        1 => Ok(vec![op(api, &objs[0])?]),
        _ if multiple_allowed && cmd.flag("multiple") => {
            let mut fails = Vec::new();
            let mut out = Vec::new();
            for o in &objs {
                match op(api, o) {
                    Ok(v) => out.push(v),
                    Err(e) => fails.push((crate::api::field_text(&o.1, "uuid"), e.one_line())),
                }
            }
            if fails.is_empty() {
                Ok(out)
            } else {
                Err(CliError::Multiple(fails))
            }
        }
        _ => {
            let what = match family {
                Family::Vm => "Multiple matches VMs found.".to_owned(),
                _ => format!("Multiple matching {} found.", family.plural()),
            };
            Err(fail(if multiple_allowed {
                format!("{what} --multiple required to complete the operation")
            } else {
                let one = match family {
                    Family::Vm => "VM",
                    Family::Host => "host",
                    Family::Sr => "SR",
                };
                format!("{what} Operation can only be performed on one {one} at a time")
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_map_prefix_picks_the_longest_map_field() {
        let c = fields::cli_class("vm").unwrap();
        match field_type(c, "other-config-foo").unwrap() {
            FieldType::Map(f, k) => {
                assert_eq!(f.name, "other-config");
                assert_eq!(k, "foo");
            }
            _ => panic!("expected a map"),
        }
    }

    #[test]
    fn unknown_field_is_reported_upstreams_way() {
        let c = fields::cli_class("vm").unwrap();
        assert_eq!(
            field_type(c, "bogus").err().unwrap(),
            fail("Unknown field 'bogus'")
        );
    }

    #[test]
    fn quotes_are_escaped_in_expressions() {
        assert_eq!(quote(r#"a"b"#), r#"a\"b"#);
    }
}
