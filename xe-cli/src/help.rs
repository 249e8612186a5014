//! `xe help`, `xe help --all` and `xe help <command>...`, laid out as upstream lays them out
//! (usage banner, comma-wrapped command lists, one record per command). Never calls the API.
use crate::args::CommandLine;
use crate::printer::Printer;
use crate::table::{commands, find, Command};

/// Wraps names into lines of at most ~74 columns, indented by four spaces.
pub fn wrap_list(names: &[String]) -> Vec<String> {
    let indent = "    ";
    let mut lines = Vec::new();
    let Some((first, rest)) = names.split_first() else {
        return vec![indent.to_owned()];
    };
    let mut cur = format!("{indent}{first}");
    for n in rest {
        if cur.len() + n.len() > 74 {
            lines.push(std::mem::replace(&mut cur, format!("{indent}{n}")));
        } else {
            cur.push_str(", ");
            cur.push_str(n);
        }
    }
    lines.push(cur);
    lines
}

fn banner(argv0: &str) -> String {
    format!(
        "Usage:
  {argv0} <command>
    [ -s <server> ]            XenAPI host to connect to
    [ -p <port> ]              port number
    [ -u <username> -pw <password> | -pwf <password file> ]
                               credentials (password given or read from a file)
    [ --nossl ]                plain HTTP instead of TLS
    [ --debug ]                print debug output
    [ <other arguments> ... ]  parameters of the command

For help on one command:
  {argv0} help <command>
"
    )
}

/// The help record of one command.
pub fn command_record(c: &Command) -> Vec<(String, String)> {
    let mut optn = c.optn.clone();
    let mut desc = c.help.clone();
    for (flag, sel, what) in [
        ("Vm_selectors", "<vm-selectors>", "VMs"),
        ("Host_selectors", "<host-selectors>", "hosts"),
        ("Sr_selectors", "<sr-selectors>", "SRs"),
    ] {
        if c.has_flag(flag) {
            optn.push(sel.to_owned());
            desc.push_str(&format!(
                " The {what} to act on are chosen by filtering on any of their fields (for example uuid=<uuid>); use --multiple to act on more than one."
            ));
        }
    }
    vec![
        ("command name        ".to_owned(), c.name.clone()),
        ("reqd params     ".to_owned(), c.reqd.join(", ")),
        ("optional params ".to_owned(), optn.join(", ")),
        ("description     ".to_owned(), desc.trim().to_owned()),
    ]
}

/// Runs `xe help ...`.
pub fn run(p: &mut Printer, cmd: &CommandLine) {
    let asked: Vec<&str> = cmd
        .params
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| {
            !matches!(
                *k,
                "server" | "username" | "password" | "port" | "minimal" | "all"
            )
        })
        .collect();
    if !asked.is_empty() {
        for name in asked {
            match find(name) {
                Some(c) => p.table(&[command_record(c)]),
                None => p.list(&[format!("Unknown command '{name}'")]),
            }
        }
        return;
    }
    let mut visible: Vec<&Command> = commands()
        .iter()
        .filter(|c| !c.has_flag("Hidden"))
        .collect();
    visible.sort_by(|a, b| a.name.cmp(&b.name));
    let all = cmd.flag("all");
    if !all {
        visible.retain(|c| c.has_flag("Standard"));
    }
    let names: Vec<String> = visible.iter().map(|c| c.name.clone()).collect();
    if p.minimal() {
        p.list(&names);
        return;
    }
    let mut head = banner("xe");
    if all {
        head.push_str("\nFull command list\n-----------------\n");
        p.list(&[head]);
        let (hosts, other): (Vec<String>, Vec<String>) =
            names.into_iter().partition(|n| n.starts_with("host-"));
        let (vms, other): (Vec<String>, Vec<String>) =
            other.into_iter().partition(|n| n.starts_with("vm-"));
        p.list(&wrap_list(&hosts));
        p.list(&wrap_list(&[String::new()]));
        p.list(&wrap_list(&vms));
        p.list(&wrap_list(&[String::new()]));
        p.list(&wrap_list(&other));
    } else {
        head.push_str("\nFor the full command list:\n  xe help --all\n\nCommon command list\n-------------------\n");
        p.list(&[head]);
        p.list(&wrap_list(&names));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_list_breaks_before_74_columns() {
        let names: Vec<String> = (0..30).map(|i| format!("command-{i}")).collect();
        let lines = wrap_list(&names);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.len() <= 74 + 12));
        assert!(lines[0].starts_with("    command-0, command-1"));
    }

    #[test]
    fn vm_selector_commands_list_the_selector_param() {
        let c = find("vm-start").unwrap();
        let r = command_record(c);
        assert!(r[2].1.ends_with("<vm-selectors>"));
        assert_eq!(r[0].1, "vm-start");
    }
}
