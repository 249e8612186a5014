//! The unknown-parameter check made before any API call: every `key=value` of a command line
//! must be one of the command's required or optional parameters (`map:` entries match any
//! `map:key`), a standard parameter (`--minimal`, `--force` ...), or, for commands that select
//! objects (`vm=`, `host=`, `sr=` selectors and `<class>-list`), a field of the class they
//! filter. Anything else fails with the text upstream's server prints for an unknown field.
use crate::args::CommandLine;
use crate::error::{fail, CliError};
use crate::fields::cli_classes;
use crate::select::{self, Family};
use crate::table::{data, Command, Generic, Impl};

/// Parameters some explicit commands read besides those the table lists, as upstream's do.
const EXTRA: &[(&str, &[&str])] = &[
    (
        "vm-install",
        &["template-uuid", "template-name-label", "template-name"],
    ),
    ("vm-vif-list", &["params"]),
    ("vm-disk-list", &["params"]),
    ("vm-cd-list", &["params"]),
    ("template-uninstall", &["uuid"]),
    // Upstream's power operations take `progress` (a progress bar while waiting).
    ("vm-start", &["progress"]),
    ("vm-shutdown", &["progress"]),
    ("vm-suspend", &["progress"]),
    ("vm-resume", &["progress"]),
];

/// Whether `key` is listed by the command, its extras or the standard parameters.
fn listed(spec: &Command, key: &str) -> bool {
    let std = &data().stdparams;
    let extra = EXTRA
        .iter()
        .find(|(n, _)| *n == spec.name)
        .map(|(_, e)| *e)
        .unwrap_or(&[]);
    std.iter().any(|s| s == key)
        || spec.reqd.iter().chain(spec.optn.iter()).any(|p| {
            p == key || (p.ends_with(':') && key.starts_with(p.as_str()) && key.len() > p.len())
        })
        || extra.contains(&key)
}

/// Fails with upstream's text when `cmd` carries a parameter `spec` does not accept.
pub fn unknown_params(spec: &Command, cmd: &CommandLine) -> Result<(), CliError> {
    // Commands that take free-form keys: map entries to add, or conditions on a class chosen at
    // run time (event-wait checks those against that class itself), or fields checked by the
    // command itself (param-set, which also accepts the old `map-key=value` form).
    let filter_class = match spec.imp {
        Impl::Generic(Generic::ParamAdd | Generic::ParamSet, _) => return Ok(()),
        Impl::Generic(Generic::List, ci) => Some(&cli_classes()[ci]),
        Impl::Generic(..) => None,
        Impl::Explicit if spec.name == "event-wait" => return Ok(()),
        Impl::Explicit => Family::of(spec).and_then(|f| crate::fields::cli_class(f.class())),
    };
    let pseudo = Family::of(spec).map(Family::pseudo);
    for (key, _) in &cmd.params {
        if listed(spec, key) || Some(key.as_str()) == pseudo {
            continue;
        }
        match filter_class {
            Some(class) => select::check_filter_key(class, key)?,
            None => return Err(fail(format!("Unknown field '{key}'"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::find;

    fn line(name: &str, params: &[(&str, &str)]) -> CommandLine {
        CommandLine {
            name: name.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn check(name: &str, params: &[(&str, &str)]) -> Result<(), CliError> {
        unknown_params(find(name).unwrap(), &line(name, params))
    }

    #[test]
    fn listed_standard_and_map_params_pass() {
        check(
            "sr-create",
            &[
                ("name-label", "a"),
                ("type", "file"),
                ("device-config:path", "/x"),
                ("minimal", "true"),
            ],
        )
        .unwrap();
        check("host-call-plugin", &[("host-uuid", "h"), ("args:a", "1")]).unwrap();
    }

    #[test]
    fn unknown_params_fail_with_upstreams_unknown_field_text() {
        assert_eq!(
            check("network-create", &[("name-label", "a"), ("bogus", "1")]).unwrap_err(),
            fail("Unknown field 'bogus'")
        );
        // A map prefix matches only `map:key`.
        assert!(check("sr-create", &[("device-configx", "1")]).is_err());
    }

    #[test]
    fn selector_commands_accept_fields_of_their_class() {
        check("vm-start", &[("vm", "a"), ("power-state", "halted")]).unwrap();
        check("vm-shutdown", &[("other-config:k", "v")]).unwrap();
        assert_eq!(
            check("vm-shutdown", &[("bogus", "1")]).unwrap_err(),
            fail("Unknown field 'bogus'")
        );
        check("host-enable", &[("host", "h"), ("hostname", "h")]).unwrap_or_else(|e| {
            panic!("{e:?}");
        });
    }

    #[test]
    fn generic_lists_filter_on_fields_and_other_generics_take_their_params() {
        check("network-list", &[("bridge", "x"), ("params", "uuid")]).unwrap();
        assert_eq!(
            check("host-list", &[("name-label:x", "1")]).unwrap_err(),
            fail("Field 'name-label' is not a set or map")
        );
        assert!(check("network-param-get", &[("uuid", "u"), ("bogus", "1")]).is_err());
        check(
            "network-param-add",
            &[("uuid", "u"), ("param-name", "other-config"), ("k", "v")],
        )
        .unwrap();
    }
}
