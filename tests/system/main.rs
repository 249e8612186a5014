//! System tests: the real `xapi` binary on loopback, driven over the wire.
mod conformance;
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
