//! System tests: the real `xapi` binary on loopback, driven over the wire.
#![allow(clippy::unwrap_used)] // Test helpers unwrap: a panic is the failure report.
mod conformance;
mod consoles;
mod dispatch;
mod events;
mod fields;
mod import_export;
mod login;
mod messages;
mod persistence;
mod plugins;
mod python;
mod rbac;
mod seed;
mod storage;
mod tasks;
mod vm_lifecycle;
