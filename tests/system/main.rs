//! System tests: the real `xapi` binary on loopback, driven over the wire.
mod conformance;
mod dispatch;
mod fields;
mod login;
mod persistence;
mod python;
mod rbac;
mod seed;
