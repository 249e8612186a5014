//! The crate's error type, `VhdError`. Owns no I/O; every fallible function in the crate returns it.

/// Everything that can go wrong while reading, writing or creating a VHD image.
///
/// Corrupt on-disk data always ends up here, never in a panic.
#[derive(Debug, thiserror::Error)]
pub enum VhdError {
    /// The underlying block device or file failed.
    #[error("i/o error")]
    Io(#[from] std::io::Error),
    /// A structure does not start with its magic cookie.
    #[error("bad {structure} cookie")]
    BadCookie {
        /// Which structure: `footer`, `dynamic header`, `batmap`.
        structure: &'static str,
    },
    /// A structure's one's-complement checksum does not match its content.
    #[error("{structure} checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadChecksum {
        /// Which structure failed.
        structure: &'static str,
        /// The value found on disk.
        stored: u32,
        /// The value computed from the content.
        computed: u32,
    },
    /// A field holds a value this implementation does not support.
    #[error("unsupported {what}: {value:#x}")]
    Unsupported {
        /// The field name.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// The image is structurally inconsistent (offsets outside the file, sizes that do not add up).
    #[error("corrupt image: {0}")]
    Corrupt(String),
    /// A read or write reaches past the virtual size of the disk.
    #[error("access of {len} bytes at offset {offset} is beyond the virtual size {size}")]
    OutOfRange {
        /// Byte offset of the access.
        offset: u64,
        /// Length of the access in bytes.
        len: u64,
        /// Virtual size of the disk in bytes.
        size: u64,
    },
    /// A requested virtual size is zero, not sector aligned where needed, or above the maximum.
    #[error("invalid virtual size {size}: {reason}")]
    InvalidSize {
        /// The requested size in bytes.
        size: u64,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Shrinking a disk is refused because it would drop data.
    #[error("cannot shrink a disk from {current} to {requested} bytes")]
    ShrinkRefused {
        /// The current virtual size.
        current: u64,
        /// The requested virtual size.
        requested: u64,
    },
    /// A chain of differencing disks is deeper than the limit.
    #[error("chain is deeper than {max} disks")]
    ChainTooDeep {
        /// The maximum depth, parents included.
        max: usize,
    },
    /// No parent locator led to a readable parent.
    #[error("parent of differencing disk not found (tried {tried:?})")]
    ParentNotFound {
        /// The candidate paths that were tried.
        tried: Vec<String>,
    },
    /// The parent found does not carry the uuid recorded in the child.
    #[error("parent uuid mismatch: child expects {expected}, parent has {found}")]
    ParentUuidMismatch {
        /// The parent uuid recorded in the child header.
        expected: uuid::Uuid,
        /// The uuid in the parent footer.
        found: uuid::Uuid,
    },
    /// The operation needs the parent's data; open the disk through a `Chain`.
    #[error("differencing disk needs its parent for this operation")]
    NeedsParent,
    /// The operation does not apply to this kind of disk.
    #[error("operation not supported on a {0} disk")]
    WrongDiskType(&'static str),
    /// A new parent locator does not fit into the space reserved for it.
    #[error("parent locator needs {needed} bytes but only {space} are reserved")]
    LocatorTooLong {
        /// Encoded length of the new locator.
        needed: u64,
        /// Space reserved in the image.
        space: u64,
    },
    /// A path cannot be stored in a parent locator or parent name.
    #[error("invalid parent path {0:?}")]
    InvalidPath(String),
}

/// Shorthand used throughout the crate.
pub type Result<T, E = VhdError> = std::result::Result<T, E>;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn display_is_lowercase_without_final_period() {
        let err = VhdError::ShrinkRefused {
            current: 10,
            requested: 5,
        };
        let text = err.to_string();
        assert_eq!(text, "cannot shrink a disk from 10 to 5 bytes");
        assert!(!text.ends_with('.'));
    }

    #[test]
    fn io_errors_convert() {
        let err: VhdError = std::io::Error::other("boom").into();
        assert!(matches!(err, VhdError::Io(_)));
    }
}
