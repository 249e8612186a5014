//! Which code runs each explicit command of the table: a mapped row (`mapped.rs`), a command
//! written out in `special.rs` or `ops.rs`, the generic `<class>-<action>` fallback, or nothing
//! (the command then fails with "not supported by this xe yet"). The unit tests here walk the
//! whole table and keep the unsupported list honest.
use xapi_idl::model::{model, MessageDef};

use crate::fields::{cli_classes, CliClass};

/// The commands matched by name in `ops::run`.
pub const HANDWRITTEN: &[&str] = &[
    "vm-start",
    "vm-shutdown",
    "vm-reboot",
    "vm-suspend",
    "vm-resume",
    "vm-pause",
    "vm-unpause",
    "vm-reset-powerstate",
    "vm-snapshot",
    "vm-clone",
    "vm-copy",
    "vm-checkpoint",
    "vm-install",
    "vm-export",
    "vm-import",
    "vm-uninstall",
    "template-uninstall",
    "snapshot-uninstall",
    "vm-destroy",
    "vm-disk-add",
    "vm-cd-insert",
    "vm-cd-eject",
    "vm-vif-list",
    "vm-disk-list",
    "vm-cd-list",
    "snapshot-disk-list",
    "network-create",
    "vif-create",
    "vbd-create",
    "vdi-create",
    "sr-create",
    "event-wait",
    "message-create",
];

/// How an explicit command runs.
#[derive(Debug)]
pub enum Route {
    /// A row of the mapped table.
    Mapped(&'static crate::mapped::Row),
    /// Written out in `special.rs`.
    Special,
    /// Matched by name in `ops::run`.
    Ops,
    /// The generic fallback, calling this message of this class.
    Fallback(&'static CliClass, &'static MessageDef),
    /// Nothing: "not supported by this xe yet".
    Unsupported,
}

/// The route of explicit command `name`.
pub fn route(name: &str) -> Route {
    if let Some(row) = crate::mapped::find(name) {
        Route::Mapped(row)
    } else if crate::special::NAMES.contains(&name) {
        Route::Special
    } else if HANDWRITTEN.contains(&name) {
        Route::Ops
    } else if let Some((class, msg)) = fallback_call(name) {
        Route::Fallback(class, msg)
    } else {
        Route::Unsupported
    }
}

/// The generic fallback's reading of `<class>-<action>`: the CLI class with the longest
/// matching name and the datamodel message `<Class>.<action>`, when it exists.
pub fn fallback_call(name: &str) -> Option<(&'static CliClass, &'static MessageDef)> {
    let mut best: Option<(&CliClass, &str)> = None;
    for c in cli_classes() {
        if let Some(rest) = name.strip_prefix(&format!("{}-", c.name)) {
            if best.is_none_or(|(b, _)| c.name.len() > b.name.len()) {
                best = Some((c, rest));
            }
        }
    }
    let (class, action) = best?;
    let wire = format!("{}.{}", class.wire, action.replace('-', "_"));
    model().message(&wire).map(|m| (class, m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapped::{parse_spec, signature, Arg};
    use crate::table::data;

    /// The command classes every one of whose commands must run.
    const PRIORITY: &[&str] = &[
        "host", "pool", "vm", "template", "snapshot", "sr", "pbd", "vdi", "vbd", "vif", "network",
        "pif", "task", "event", "message",
    ];

    /// Priority-class commands that may stay unsupported, each for a feature the daemon does
    /// not have at all.
    const ALLOWED_UNSUPPORTED: &[(&str, &str)] = &[
        // HA failover planning for hypothetical host failures: no HA in the daemon.
        ("pool-ha-compute-vm-failover-plan", "HA"),
        // WLB reports are downloads from a workload-balancing appliance the daemon has no link to.
        ("pool-retrieve-wlb-report", "WLB"),
        ("pool-retrieve-wlb-diagnostics", "WLB"),
    ];

    fn priority(name: &str) -> bool {
        PRIORITY.iter().any(|c| name.starts_with(&format!("{c}-")))
    }

    /// Why a command would not do its job, if it would not.
    fn problem(name: &str) -> Option<String> {
        let spec = crate::table::find(name)?;
        match route(name) {
            Route::Unsupported => Some("not supported by this xe yet".into()),
            Route::Special | Route::Ops => None,
            Route::Mapped(row) => {
                let missing: Vec<&str> = row
                    .steps
                    .iter()
                    .map(|(w, _)| *w)
                    .filter(|w| signature(w).is_none())
                    .collect();
                (!missing.is_empty())
                    .then(|| format!("calls {} (not in the datamodel)", missing.join(", ")))
            }
            Route::Fallback(_, msg) => {
                // The fallback passes parameters by name: a required one the message does not
                // take means the command's meaning differs from the call's.
                let takes = |p: &str| {
                    msg.params.iter().any(|mp| {
                        let cli = mp.name.replace('_', "-");
                        p == cli || p == format!("{cli}-uuid") || p.strip_suffix(':') == Some(&cli)
                    })
                };
                let lost: Vec<&String> = spec
                    .reqd
                    .iter()
                    .filter(|p| p.as_str() != "uuid" && !takes(p))
                    .collect();
                (!lost.is_empty()).then(|| {
                    format!(
                        "fallback {} drops required {:?}",
                        msg.wire,
                        lost.iter().map(|s| s.as_str()).collect::<Vec<_>>()
                    )
                })
            }
        }
    }

    #[test]
    fn explicit_command_coverage() {
        let mut unsupported = Vec::new();
        let mut missing_in_datamodel = Vec::new();
        for c in &data().commands {
            if let Some(why) = problem(&c.name) {
                println!("{:45} {why}", c.name);
                if why.contains("not in the datamodel") {
                    missing_in_datamodel.push(c.name.clone());
                } else if priority(&c.name)
                    && !ALLOWED_UNSUPPORTED.iter().any(|(n, _)| *n == c.name)
                {
                    unsupported.push(format!("{} ({why})", c.name));
                }
            }
        }
        println!(
            "{} commands call messages the datamodel lacks (they go over the wire and report the server's error)",
            missing_in_datamodel.len()
        );
        assert!(
            unsupported.is_empty(),
            "priority commands that do not do their job:\n{}",
            unsupported.join("\n")
        );
    }

    #[test]
    fn allow_list_names_real_unsupported_commands() {
        for (n, _) in ALLOWED_UNSUPPORTED {
            assert!(crate::table::find(n).is_some(), "{n} is not a command");
            assert!(
                problem(n).is_some(),
                "{n} works now: drop it from the allow-list"
            );
        }
    }

    #[test]
    fn handwritten_commands_are_matched_in_ops() {
        let source = include_str!("ops.rs");
        for n in HANDWRITTEN {
            assert!(crate::table::find(n).is_some(), "{n} is not a command");
            if *n != "snapshot-disk-list" {
                assert!(
                    source.contains(&format!("\"{n}\"")),
                    "{n} is not matched in ops.rs"
                );
            }
        }
    }

    #[test]
    fn mapped_parameters_are_commands_parameters() {
        let mut bad = Vec::new();
        for row in crate::mapped::ROWS {
            let Some(spec) = crate::table::find(row.name) else {
                continue;
            };
            for (_, specs) in row.steps {
                for sp in specs.iter() {
                    let names = match parse_spec(sp).0 {
                        Arg::Param { names, .. } => names,
                        Arg::Map(m) => vec![m],
                        Arg::Named(names) => names,
                        _ => continue,
                    };
                    let known = names.iter().any(|n| {
                        spec.reqd
                            .iter()
                            .chain(spec.optn.iter())
                            .any(|p| p == n || p.trim_end_matches([':', '-']) == *n)
                    });
                    if !known {
                        bad.push(format!("{}: {sp}", row.name));
                    }
                }
            }
        }
        assert!(bad.is_empty(), "not parameters of their commands: {bad:?}");
    }
}
