//! The VDI data path: a blocking NBD server on unix sockets (fixed newstyle negotiation with
//! `NBD_OPT_GO`/`INFO`/`EXPORT_NAME`/`LIST`/`ABORT`, simple replies, `READ`/`WRITE`/`FLUSH`/
//! `TRIM`/`WRITE_ZEROES`/`DISC`), serving [`Export`]s whose [`Backend`] is typically a VHD chain
//! from crates/vhd. Exports pause (block new I/O and drain) for snapshot and coalesce.
//! Also a minimal [`Client`] for tests and the simulated guest. Never knows about SRs.
//!
//! qemu and libnbd reach an export as `nbd+unix:///<export>?socket=<path>`.

mod client;
mod export;
pub mod proto;
mod server;

pub use client::{Client, Completion};
pub use export::{Backend, Export, InFlight, MemBackend};
pub use server::Server;
