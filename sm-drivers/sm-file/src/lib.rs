//! SR drivers that keep VDIs as VHD files in a directory: the `file` driver ([`FileDriver`])
//! and the engine the `ext` driver reuses ([`VhdDriver`] over a [`Substrate`], [`VhdSr`]),
//! with snapshots and clones as differencing children, a per-SR sidecar of VDI metadata,
//! intent journals, the NBD data path of active VDIs and the garbage collector ([`gc`]).
//!
//! ```text
//! <dir>/<vdi-uuid>.vhd        one per VDI and per hidden base copy
//! <dir>/.sr-metadata.json     sidecar: SR uuid, VDI names, snapshot facts, sm_config
//! <dir>/.journal-<uuid>       intent of an unfinished snapshot or coalesce
//! ```
//!
//! Never sees XenAPI types or the object store: VDI records go through `sm::StorageDb`.

mod driver;
mod file;
pub mod gc;
mod journal;
mod meta;
mod tree;
mod vhdsr;

pub use driver::{Substrate, VhdConfig, VhdDriver};
pub use file::{FileDriver, FileSubstrate, CAPABILITIES as FILE_CAPABILITIES, LOCATION};
pub use meta::METADATA_FILE;
pub use vhdsr::{fs_stats, round_size, VhdSr};
