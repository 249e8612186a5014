//! The command table: the explicit commands from `data/xe.json` plus the generic
//! `<class>-list` / `-param-*` commands generated at run time from the CLI classes (see
//! `fields.rs`). Owns lookup and the help text; never performs API calls.
use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::fields::{cli_classes, Cap, CliClass, Kind};

const DATA: &str = include_str!("../data/xe.json");

/// One explicit command as the data file lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct CommandData {
    pub name: String,
    pub reqd: Vec<String>,
    pub optn: Vec<String>,
    pub flags: Vec<String>,
    pub help: String,
}

/// A CLI field as the data file lists it (resolved against the datamodel in `fields.rs`).
#[derive(Debug, Clone, Deserialize)]
pub struct FieldData {
    pub name: String,
    pub path: String,
    pub kind: String,
    pub caps: Vec<String>,
    pub hidden: bool,
    pub expensive: bool,
    pub deprecated: bool,
    pub case_insensitive: bool,
}

/// A CLI class as the data file lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct ClassData {
    pub name: String,
    pub datamodel: String,
    pub default_filters: Vec<(String, String)>,
    pub default_params: Vec<String>,
    pub list_expr: String,
    pub fields: Vec<FieldData>,
}

/// The message and parameter names xe prints for an error code.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorDoc {
    pub params: Vec<String>,
    pub message: String,
}

/// How an enum's values print.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EnumDisplay {
    #[serde(default)]
    pub style: Option<String>,
    #[serde(default)]
    pub values: HashMap<String, String>,
}

/// The whole data file.
#[derive(Debug, Deserialize)]
pub struct Data {
    pub stdparams: Vec<String>,
    pub commands: Vec<CommandData>,
    pub classes: Vec<ClassData>,
    pub errors: HashMap<String, ErrorDoc>,
    pub enum_display: HashMap<String, EnumDisplay>,
}

/// The embedded data file, parsed on first use.
pub fn data() -> &'static Data {
    static DATA_CELL: OnceLock<Data> = OnceLock::new();
    DATA_CELL.get_or_init(|| {
        serde_json::from_str(DATA).expect("data/xe.json is checked by the unit tests")
    })
}

/// Which generic operation a generated command performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generic {
    List,
    ParamList,
    ParamGet,
    ParamSet,
    ParamAdd,
    ParamRemove,
    ParamClear,
}

/// What runs a command.
#[derive(Debug, Clone, Copy)]
pub enum Impl {
    /// An explicit command (dispatched by name in `ops`).
    Explicit,
    /// A generated command over the CLI class with this index in `cli_classes()`.
    Generic(Generic, usize),
}

/// One command of the table.
#[derive(Debug, Clone)]
pub struct Command {
    pub name: String,
    pub reqd: Vec<String>,
    pub optn: Vec<String>,
    pub flags: Vec<String>,
    pub help: String,
    pub imp: Impl,
}

impl Command {
    /// Whether the command carries `flag` (`Standard`, `Hidden`, `Vm_selectors` ...).
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// The full table in upstream order: explicit commands, then generated ones per class.
pub fn commands() -> &'static [Command] {
    static TABLE: OnceLock<Vec<Command>> = OnceLock::new();
    TABLE.get_or_init(build)
}

/// Looks a command up by name.
pub fn find(name: &str) -> Option<&'static Command> {
    static INDEX: OnceLock<HashMap<&'static str, usize>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        commands()
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), i))
            .collect()
    });
    index.get(name).map(|&i| &commands()[i])
}

fn build() -> Vec<Command> {
    let mut out: Vec<Command> = data()
        .commands
        .iter()
        .map(|c| Command {
            name: c.name.clone(),
            reqd: c.reqd.clone(),
            optn: c.optn.clone(),
            flags: c.flags.clone(),
            help: c.help.clone(),
            imp: Impl::Explicit,
        })
        .collect();
    for (ci, class) in cli_classes().iter().enumerate() {
        out.extend(generated(ci, class));
    }
    out
}

/// The generic commands of one class, following upstream's generation rules.
pub fn generated(ci: usize, class: &CliClass) -> Vec<Command> {
    let visible: Vec<_> = class.fields.iter().filter(|f| !f.hidden).collect();
    let settable: Vec<String> = visible
        .iter()
        .filter(|f| f.kind == Kind::Scalar && f.has(Cap::Set))
        .map(|f| f.name.clone())
        .collect();
    let writable_maps: Vec<String> = visible
        .iter()
        .filter(|f| {
            f.kind == Kind::Map
                && (f.has(Cap::AddToMap) || f.has(Cap::SetInMap) || f.has(Cap::SetMap))
        })
        .map(|f| format!("{}:", f.name))
        .collect();
    let addable = visible
        .iter()
        .any(|f| f.has(Cap::AddToSet) || f.has(Cap::AddToMap));
    let clearable: Vec<String> = visible
        .iter()
        .filter(|f| f.kind != Kind::Scalar || f.has(Cap::Set))
        .map(|f| f.name.clone())
        .collect();
    let name = &class.name;
    let plural = if name == "patch" {
        "patches".to_owned()
    } else {
        format!("{name}s")
    };
    let mk = |suffix: &str, reqd: &[&str], optn: Vec<String>, help: String, g: Generic| Command {
        name: format!("{name}-{suffix}"),
        reqd: reqd.iter().map(|s| s.to_string()).collect(),
        optn,
        flags: if g == Generic::List && matches!(name.as_str(), "vm" | "network" | "sr") {
            vec!["Standard".into()]
        } else {
            Vec::new()
        },
        help,
        imp: Impl::Generic(g, ci),
    };
    let mut out = Vec::new();
    if !settable.is_empty() || !writable_maps.is_empty() {
        let mut optn = settable.clone();
        optn.extend(writable_maps.iter().cloned());
        out.push(mk(
            "param-set",
            &["uuid"],
            optn,
            "Set parameters; use 'map-param:key=value' for one key of a map.".into(),
            Generic::ParamSet,
        ));
    }
    let mut list_optn = vec!["params".to_owned(), "database:".to_owned()];
    list_optn.extend(visible.iter().map(|f| f.name.clone()));
    list_optn.extend(
        visible
            .iter()
            .filter(|f| f.kind == Kind::Set)
            .map(|f| format!("{}:contains", f.name)),
    );
    out.push(mk(
        "list",
        &[],
        list_optn,
        format!("List the {plural}; any field given as 'name=value' filters the list."),
        Generic::List,
    ));
    out.push(mk(
        "param-list",
        &["uuid"],
        vec!["database:".into()],
        format!("Show every parameter of one of the {plural}."),
        Generic::ParamList,
    ));
    out.push(mk(
        "param-get",
        &["uuid", "param-name"],
        vec!["param-key".into(), "database:".into()],
        "Print one parameter, or one key of a map parameter.".into(),
        Generic::ParamGet,
    ));
    if addable {
        out.push(mk(
            "param-add",
            &["uuid", "param-name"],
            vec!["param-key".into()],
            "Add keys to a map parameter or a member to a set parameter.".into(),
            Generic::ParamAdd,
        ));
        out.push(mk(
            "param-remove",
            &["uuid", "param-name", "param-key"],
            Vec::new(),
            "Remove a key from a map parameter or a member from a set parameter.".into(),
            Generic::ParamRemove,
        ));
    }
    if !clearable.is_empty() {
        out.push(mk(
            "param-clear",
            &["uuid", "param-name"],
            Vec::new(),
            format!(
                "Clear a parameter. Clearable parameters: {}",
                clearable.join(", ")
            ),
            Generic::ParamClear,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_file_parses_and_lists_every_explicit_command() {
        assert_eq!(data().commands.len(), 387);
        assert!(find("vm-start").is_some());
    }

    #[test]
    fn generated_commands_exist_for_network() {
        for n in [
            "network-list",
            "network-param-list",
            "network-param-get",
            "network-param-set",
            "network-param-add",
            "network-param-remove",
            "network-param-clear",
        ] {
            assert!(find(n).is_some(), "{n} missing");
        }
    }

    #[test]
    fn only_vm_network_and_sr_lists_are_standard() {
        assert!(find("vm-list").unwrap().has_flag("Standard"));
        assert!(!find("host-list").unwrap().has_flag("Standard"));
    }

    #[test]
    fn param_set_lists_settable_fields_then_map_keys() {
        let c = find("network-param-set").unwrap();
        assert_eq!(c.optn.first().map(String::as_str), Some("name-label"));
        assert!(c.optn.iter().any(|o| o == "other-config:"));
        assert!(!c.optn.iter().any(|o| o == "uuid"));
    }
}
