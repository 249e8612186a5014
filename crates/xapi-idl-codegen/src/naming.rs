//! Mechanical mapping of wire names to Rust names; the only place such rules live.

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "crate", "dyn", "else", "enum",
    "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro",
    "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return", "self", "Self",
    "static", "struct", "super", "trait", "true", "try", "type", "typeof", "unsafe", "unsized",
    "use", "virtual", "where", "while", "yield",
];

/// `VM_guest_metrics` -> `VmGuestMetrics`, `vm_power_state` -> `VmPowerState`.
pub fn type_name(wire: &str) -> String {
    let mut out = String::new();
    for part in wire.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars.map(|c| c.to_ascii_lowercase()));
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, 'X');
    }
    out
}

/// An enum value's variant name: `balance-slb` -> `BalanceSlb`, `IPv4` -> `Ipv4`, `none` -> `None`.
pub fn variant_name(wire: &str) -> String {
    let name = type_name(wire);
    if name == "Self" {
        "Self_".to_owned()
    } else {
        name
    }
}

/// A field or parameter name as a Rust identifier: `VCPUs_params` -> `vcpus_params`, `type` -> `type_`.
pub fn value_name(wire: &str) -> String {
    let mut out: String = wire
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// A message name as a trait method: the wire name itself, escaped when it is a keyword.
pub fn method_name(wire: &str) -> String {
    if KEYWORDS.contains(&wire) {
        format!("r#{wire}")
    } else {
        wire.to_owned()
    }
}

/// An error code as a constructor function: `VM_BAD_POWER_STATE` -> `vm_bad_power_state`.
pub fn error_fn_name(code: &str) -> String {
    value_name(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_camel_case() {
        assert_eq!(type_name("VM_guest_metrics"), "VmGuestMetrics");
        assert_eq!(type_name("SR"), "Sr");
        assert_eq!(type_name("host_cpu"), "HostCpu");
    }

    #[test]
    fn enum_values_become_variants() {
        assert_eq!(variant_name("balance-slb"), "BalanceSlb");
        assert_eq!(variant_name("IPv4"), "Ipv4");
        assert_eq!(variant_name("4k"), "X4k");
    }

    #[test]
    fn keywords_are_escaped() {
        assert_eq!(value_name("type"), "type_");
        assert_eq!(method_name("move"), "r#move");
        assert_eq!(value_name("VCPUs_params"), "vcpus_params");
    }
}
