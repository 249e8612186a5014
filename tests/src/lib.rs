//! The system-test harness: starts the real `xapi` binary on loopback with a temporary state
//! directory and speaks XML-RPC / JSON-RPC to it over HTTP, HTTPS and the unix socket.
//! Never links the daemon: everything goes over the wire.

pub mod bench;
pub mod client;
pub mod daemon;
pub mod fields;
pub mod typecheck;
pub mod vms;

pub use client::{Api, Client, Endpoint};
pub use daemon::{bin_path, TestDaemon};
pub use xapi_rpc::Value;

/// A string value.
pub fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}
