//! The XenAPI datamodel as Rust: generated records, enums, typed refs, error constructors,
//! per-class actions traits and the explicit-message dispatcher, plus the runtime method table.
//!
//! Generated code comes from `spec/datamodel.json` and `spec/companion.json` through
//! `xapi-idl-codegen` at build time. This crate never touches the object store or the network.

mod actions;
pub mod coerce;
mod convert;
mod datetime;
mod error;
pub mod model;
mod refs;

pub use actions::ActionsBase;
pub use convert::{Args, FromValue, MapKey, Record, ToValue, WireEnum};
pub use datetime::DateTime;
pub use error::{ApiError, ApiResult, ConvError};
pub use refs::{Class, Ref, NULL_REF};
pub use xapi_idl_codegen::spec::{Lifecycle, Qualifier};
pub use xapi_idl_codegen::Type;
pub use xapi_rpc::Value;

// Generated names follow the wire spelling (`VCPUs_params`, `VM_BAD_POWER_STATE`), and the
// generated bodies are uniform, so naming and style lints do not apply inside.
#[allow(
    non_snake_case,
    non_camel_case_types,
    non_upper_case_globals,
    unused_variables,
    unused_imports,
    unused_mut,
    clippy::all
)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}

pub use generated::{actions as traits, classes, enums, errors, records};
