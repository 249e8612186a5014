//! A pure-Rust client of the xenstore wire protocol (`docs/misc/xenstore.txt`,
//! `xs_wire.h`), over the xenstored unix socket or the `/dev/xen/xenbus` device.
//!
//! Two faces share one protocol core:
//!
//! ```text
//!  Client / Transaction / Watch          AsyncClient / AsyncTransaction / WatchStream
//!  (blocking, XsOps)                     (tokio, AsyncXsOps)
//!            \                              /
//!             conn: req_id table, watch-token table, Pending<T> (wait() | .await)
//!                          |                       ^
//!                  frame queue                 reader: replies by req_id,
//!                          v                       | WATCH_EVENT by token
//!             transport: writer + reader (threads, or tokio tasks for sockets)
//!                          |
//!             ops (request builders, reply parsers) + wire (framing) + perms
//! ```
//!
//! The crate never interprets xenstore paths beyond encoding them, and never
//! touches Xen hypercalls: it only speaks the wire protocol.
//!
//! ```no_run
//! use xenstore::{Client, XsOps};
//! # fn main() -> Result<(), xenstore::XsError> {
//! let xs = Client::open()?;
//! xs.write("/vm/example/name", "demo")?;
//! let name = xs.read_string("/vm/example/name")?;
//! xs.transaction(|tx| tx.write("/vm/example/state", "running"))?;
//! # let _ = name; Ok(()) }
//! ```

mod blocking;
mod conn;
pub mod error;
mod nonblocking;
pub mod ops;
pub mod perms;
mod transport;
pub mod wire;

pub use blocking::{Client, Transaction, Watch, XsOps};
pub use conn::{Pending, WatchEvent};
pub use error::{Errno, Result, XsError};
pub use nonblocking::{AsyncClient, AsyncTransaction, AsyncXsOps, WatchStream};
pub use perms::{Access, DomId, Perm, Permissions};
pub use transport::{Endpoint, DEFAULT_DEVICE, DEFAULT_SOCKET, SOCKET_ENV};

/// How many times the `transaction` helpers run a transaction whose commit keeps
/// failing with `EAGAIN` before returning that error.
pub const DEFAULT_TRANSACTION_ATTEMPTS: u32 = 8;

/// The special watch path fired when a domain is introduced.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";

/// The special watch path fired when a domain is released, shuts down or dies.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";
