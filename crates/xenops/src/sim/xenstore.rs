//! A simulated per-domain xenstore: a tree of strings keyed by slash-separated paths
//! relative to `/local/domain/<domid>`.
//!
//! It stores and lists; it never interprets values (the guest agent and the device code in
//! `table.rs` decide what to write).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One domain's subtree: relative path -> value. Intermediate directories are implicit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xenstore {
    nodes: BTreeMap<String, String>,
}

impl Xenstore {
    /// The value at `path`, if any.
    pub fn read(&self, path: &str) -> Option<&str> {
        self.nodes.get(path).map(String::as_str)
    }

    /// Set `path` to `value`; true when that changed anything.
    pub fn write(&mut self, path: &str, value: impl Into<String>) -> bool {
        let value = value.into();
        if self.nodes.get(path) == Some(&value) {
            return false;
        }
        self.nodes.insert(path.to_string(), value);
        true
    }

    /// Remove `path` and everything below it; true when anything was removed.
    pub fn rm(&mut self, path: &str) -> bool {
        let below = format!("{path}/");
        let before = self.nodes.len();
        self.nodes
            .retain(|k, _| k != path && !k.starts_with(&below));
        self.nodes.len() != before
    }

    /// Every node at or below `prefix/` (or equal to `prefix`), in path order.
    pub fn subtree<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        let below = format!("{prefix}/");
        self.nodes
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .filter(move |(k, _)| k.as_str() == prefix || k.starts_with(&below))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rm_removes_a_whole_subtree_but_not_siblings_with_a_common_prefix() {
        let mut xs = Xenstore::default();
        xs.write("attr/vif/0/ipv4/0", "169.254.1.2");
        xs.write("attr/vif/0/ipv6/0", "fe80::1");
        xs.write("attr/vif/01", "sibling");
        assert!(xs.rm("attr/vif/0"));
        assert_eq!(xs.read("attr/vif/0/ipv4/0"), None);
        assert_eq!(xs.read("attr/vif/01"), Some("sibling"));
        assert!(!xs.rm("attr/vif/0"));
    }

    #[test]
    fn subtree_lists_only_nodes_below_the_prefix() {
        let mut xs = Xenstore::default();
        xs.write("data/os_version/name", "x");
        xs.write("data/meminfo_free", "1");
        xs.write("database", "not below data/");
        let keys: Vec<&str> = xs.subtree("data").map(|(k, _)| k).collect();
        assert_eq!(keys, ["data/meminfo_free", "data/os_version/name"]);
    }

    #[test]
    fn write_reports_whether_the_value_changed() {
        let mut xs = Xenstore::default();
        assert!(xs.write("memory/target", "1024"));
        assert!(!xs.write("memory/target", "1024"));
        assert!(xs.write("memory/target", "2048"));
        assert_eq!(xs.subtree("memory").count(), 1);
    }
}
