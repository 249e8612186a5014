//! `XsError`: every way a xenstore call can fail, and `Errno`, the errno names the
//! daemon sends in `ERROR` replies. Owns the name <-> variant mapping; never does I/O.

use std::fmt;

/// An errno name carried by an `ERROR` reply (`xsd_errors` in `xs_wire.h`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Errno {
    /// `EINVAL`: malformed request, bad path or unknown transaction.
    Einval,
    /// `EACCES`: the permissions of a node forbid the access.
    Eacces,
    /// `EEXIST`: the node or watch already exists.
    Eexist,
    /// `EISDIR`: the operation needs a leaf.
    Eisdir,
    /// `ENOENT`: no such node (or its parent is missing).
    Enoent,
    /// `ENOMEM`: the daemon ran out of memory.
    Enomem,
    /// `ENOSPC`: no space left.
    Enospc,
    /// `EIO`: generic daemon failure.
    Eio,
    /// `ENOTEMPTY`: the node still has children.
    Enotempty,
    /// `ENOSYS`: the daemon does not implement this message type.
    Enosys,
    /// `EROFS`: the store is read-only (for example `socket_ro`).
    Erofs,
    /// `EBUSY`: the daemon is busy (for example during live update).
    Ebusy,
    /// `EAGAIN`: a transaction conflicted with another writer; retry it.
    Eagain,
    /// `EISCONN`: the domain is already introduced.
    Eisconn,
    /// `E2BIG`: the reply would exceed the payload limit.
    E2big,
    /// `EPERM`: the caller may not send this message type.
    Eperm,
    /// `EQUOTA`: a per-domain quota (nodes, watches, transactions) was hit.
    Equota,
    /// Any other name the daemon sent, kept verbatim.
    Other(String),
}

impl Errno {
    /// The table of known names, in `xs_wire.h` order plus the oxenstored extras.
    const NAMES: [(&'static str, Errno); 17] = [
        ("EINVAL", Errno::Einval),
        ("EACCES", Errno::Eacces),
        ("EEXIST", Errno::Eexist),
        ("EISDIR", Errno::Eisdir),
        ("ENOENT", Errno::Enoent),
        ("ENOMEM", Errno::Enomem),
        ("ENOSPC", Errno::Enospc),
        ("EIO", Errno::Eio),
        ("ENOTEMPTY", Errno::Enotempty),
        ("ENOSYS", Errno::Enosys),
        ("EROFS", Errno::Erofs),
        ("EBUSY", Errno::Ebusy),
        ("EAGAIN", Errno::Eagain),
        ("EISCONN", Errno::Eisconn),
        ("E2BIG", Errno::E2big),
        ("EPERM", Errno::Eperm),
        ("EQUOTA", Errno::Equota),
    ];

    /// Maps an errno name as sent on the wire (`"ENOENT"`) to its variant.
    pub fn from_name(name: &str) -> Errno {
        Self::NAMES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, errno)| errno.clone())
            .unwrap_or_else(|| Errno::Other(name.to_owned()))
    }

    /// The wire name of this errno (`Errno::Enoent` -> `"ENOENT"`).
    pub fn name(&self) -> &str {
        match self {
            Errno::Other(name) => name,
            known => Self::NAMES
                .iter()
                .find(|(_, errno)| errno == known)
                .map(|(name, _)| *name)
                .expect("every named variant is in NAMES"),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed xenstore call.
#[derive(Debug, thiserror::Error)]
pub enum XsError {
    /// The daemon answered `ERROR` with this errno name.
    #[error("xenstored returned {0}")]
    Daemon(Errno),
    /// Opening, reading or writing the transport failed.
    #[error("xenstore transport failed")]
    Io(#[from] std::io::Error),
    /// The connection is gone: the daemon hung up or the transport failed earlier.
    #[error("xenstore connection closed")]
    Disconnected,
    /// The daemon sent something that does not follow the protocol.
    #[error("malformed xenstore reply: {0}")]
    Protocol(String),
    /// A request would exceed `XENSTORE_PAYLOAD_MAX`; it was not sent, since the
    /// daemon kills connections that do that.
    #[error("xenstore request payload of {0} bytes exceeds 4096")]
    PayloadTooLarge(usize),
    /// A path, token or value cannot be encoded (for example it contains NUL).
    #[error("invalid xenstore argument: {0}")]
    InvalidArgument(&'static str),
    /// A watch with this token is already active on this connection.
    #[error("watch token {0:?} is already in use on this connection")]
    TokenInUse(String),
}

impl XsError {
    /// The daemon's errno, when the daemon is what failed.
    pub fn errno(&self) -> Option<&Errno> {
        match self {
            XsError::Daemon(errno) => Some(errno),
            _ => None,
        }
    }

    /// `ENOENT`: the node does not exist.
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(&Errno::Enoent)
    }

    /// `EAGAIN`: a transaction conflicted; running it again may succeed.
    pub fn is_again(&self) -> bool {
        self.errno() == Some(&Errno::Eagain)
    }
}

/// Result of a xenstore call.
pub type Result<T, E = XsError> = std::result::Result<T, E>;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn every_known_name_round_trips() {
        for (name, errno) in Errno::NAMES.iter() {
            assert_eq!(&Errno::from_name(name), errno);
            assert_eq!(errno.name(), *name);
        }
    }

    #[test]
    fn unknown_name_is_kept_verbatim() {
        let errno = Errno::from_name("EWHATEVER");
        assert_eq!(errno, Errno::Other("EWHATEVER".into()));
        assert_eq!(errno.to_string(), "EWHATEVER");
    }

    #[test]
    fn helpers_recognise_enoent_and_eagain() {
        assert!(XsError::Daemon(Errno::Enoent).is_not_found());
        assert!(!XsError::Daemon(Errno::Enoent).is_again());
        assert!(XsError::Daemon(Errno::Eagain).is_again());
        assert!(!XsError::Disconnected.is_not_found());
    }

    #[test]
    fn display_is_lowercase_without_period() {
        let text = XsError::Daemon(Errno::Eacces).to_string();
        assert_eq!(text, "xenstored returned EACCES");
    }
}
