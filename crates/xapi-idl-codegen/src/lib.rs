//! The XenAPI code generator: a pure function from the datamodel to Rust source.
//!
//! `xapi-idl`'s build script calls [`generate`]; this crate never touches the file system
//! itself, so it is tested with a small fixture and a golden output
//! (`tests/golden/`). The runtime side (`xapi-idl`) also uses [`spec`] and
//! [`explicit_messages`] so that both agree on names and message numbering.

pub mod naming;
pub mod spec;

mod gen;

pub use gen::generate;
pub use spec::{Companion, Datamodel, Type};

/// Every explicit (non-implicit) message as `(class index, message index)`, in datamodel order.
///
/// The position in this list is the message's explicit index: generated dispatch and the runtime
/// method table both number messages this way.
pub fn explicit_messages(dm: &Datamodel) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (ci, class) in dm.classes.iter().enumerate() {
        let mut seen = std::collections::HashSet::new();
        for (mi, msg) in class.messages.iter().enumerate() {
            if !msg.implicit && seen.insert(msg.name.as_str()) {
                out.push((ci, mi));
            }
        }
    }
    out
}

/// Parses both spec files.
pub fn parse(datamodel: &str, companion: &str) -> Result<(Datamodel, Companion), String> {
    let dm: Datamodel = serde_json::from_str(datamodel).map_err(|e| format!("datamodel: {e}"))?;
    let comp: Companion = serde_json::from_str(companion).map_err(|e| format!("companion: {e}"))?;
    Ok((dm, comp))
}
