//! VHD disk images as blktap and XenServer use them: fixed, dynamic and differencing disks with
//! blktap's extensions (the footer's hidden byte and the batmap). Owns the on-disk format and
//! nothing else: it never knows about SRs, VDIs or the database, and it never panics on a
//! corrupt image.
//!
//! # Layout written
//!
//! ```text
//! dynamic / differencing:  footer copy | header | BAT | batmap hdr | batmap | locators | blocks.. | footer
//! fixed:                   data .. | footer
//! block:                   sector bitmap (512 bytes) | 2 MiB of data
//! ```
//!
//! # Concurrency: lock-free single writer
//!
//! A [`Disk`] holds no locks. Reads take `&self` and writes `&mut self`, so within a process
//! the borrow checker guarantees one writer and no reader racing it; share a `Disk` between
//! threads for reading (it is `Sync` when its [`BlockIo`] is) and wrap it in your own lock to
//! write. Across processes nothing is locked: the caller (the SM driver) must ensure a single
//! writer per image, as blktap's tapdisk does. Writes are ordered so that another process or a
//! crash sees either the old or the new state of every sector: data before its bitmap bit,
//! a new block and the trailing footer before the BAT entry that points at it, the bitmap before
//! the batmap bit. A reader in another process must reopen the image to see new blocks.
//!
//! # Sizes
//!
//! The virtual size is `Current Size` from the footer, as blktap, Hyper-V and qemu (for `tap`
//! images) read it. qemu's own images round the size to the CHS geometry and store that same
//! value in `Current Size`, so both conventions agree there; [`Disk::chs_size`] exposes the CHS
//! reading for callers that need it.

//! # Compatibility, as tested
//!
//! - qemu's `vpc` driver (`tests/qemu.rs`) reads our dynamic and fixed images byte for byte, and
//!   we read and write its images; it has no `check` routine for `vpc`.
//! - libvhdi (`tests/libvhdi.rs`) reads our headers and follows our differencing chains. Its
//!   bitmap decoder (20210425 and later) treats a clear sector as allocated when an earlier
//!   sector of the same bitmap byte is set, so it can misread children whose writes end inside
//!   a 4 KiB group; the images are correct (blktap and this crate read them right).
//! - blktap's `vhd-util` (`tests/blktap.rs`, ignored without the tool) checks our images as
//!   valid, reads our hidden flag, batmap and locators, resolves and coalesces our chains.

mod bat;
mod batmap;
mod bitmap;
mod chain;
mod check;
mod checksum;
mod coalesce;
mod create;
mod data;
mod disk;
mod error;
mod files;
mod footer;
mod geometry;
mod header;
mod io;
mod locator;
mod resize;

pub use bat::UNUSED as BAT_UNUSED;
pub use batmap::Batmap;
pub use chain::Chain;
pub use check::{check, CheckReport};
pub use coalesce::coalesce;
pub use disk::{Disk, MAX_BAT_ENTRIES};
pub use error::{Result, VhdError};
pub use files::{
    coalesce_file, create_dynamic_file, create_fixed_file, link_for, open_chain, open_file, relink,
    resolve_parent, snapshot,
};
pub use footer::{vhd_time_from_unix, vhd_time_now, DiskType, Footer};
pub use geometry::Geometry;
pub use header::{DynamicHeader, LocatorEntry};
pub use io::{BlockIo, FileIo, MemIo};
pub use locator::{relative_path, ParentLink, PlatformCode};

/// Bytes per sector.
pub const SECTOR_SIZE: u64 = 512;
/// Block size of the images we create (2 MiB).
pub const BLOCK_SIZE: u64 = 2 << 20;
/// Largest virtual size we create: 2040 GiB, the VHD format's limit.
pub const MAX_VIRTUAL_SIZE: u64 = 2040 << 30;
/// Largest virtual size we open (2 TiB, blktap's limit).
pub const MAX_OPEN_SIZE: u64 = 2 << 40;
/// Most disks in a chain, the leaf and all its ancestors; deeper chains are refused.
pub const MAX_CHAIN_DEPTH: usize = 30;
