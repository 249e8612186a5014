//! The 512-byte hard disk footer: parsing, validation, serialisation and the VHD timestamp.
//! Includes the blktap "hidden" byte (offset 85, right after the saved-state byte). Never does I/O.

use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::checksum::{get_u32, get_u64, ones_complement, put_u32, put_u64};
use crate::error::{Result, VhdError};
use crate::geometry::Geometry;

/// Size of the footer record in bytes.
pub const FOOTER_SIZE: usize = 512;
/// Footer magic.
pub const FOOTER_COOKIE: &[u8; 8] = b"conectix";
/// `Features` bit that must always be set.
pub const FEATURE_RESERVED: u32 = 0x0000_0002;
/// `File Format Version` 1.0.
pub const FORMAT_VERSION: u32 = 0x0001_0000;
/// `Data Offset` of a fixed disk (no further structure).
pub const NO_DATA_OFFSET: u64 = u64::MAX;
/// Creator application written by this crate, the same as blktap's so its tools treat our images
/// as their own (and enable the batmap and hidden extensions).
pub const CREATOR_TAP: [u8; 4] = *b"tap\0";
/// Creator version 1.3, the version blktap writes today.
pub const CREATOR_VERSION: u32 = 0x0001_0003;
/// Seconds between the Unix epoch and the VHD epoch (2000-01-01 00:00:00 UTC).
const VHD_EPOCH_OFFSET: u64 = 946_684_800;

const CHECKSUM_AT: usize = 64;
const SAVED_STATE_AT: usize = 84;
const HIDDEN_AT: usize = 85;
const RESERVED_AT: usize = 86;

/// The `Disk Type` footer field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskType {
    /// Type 2: the data lies flat before the footer.
    Fixed,
    /// Type 3: sparse, blocks allocated on demand.
    Dynamic,
    /// Type 4: sparse, unallocated sectors come from a parent.
    Differencing,
}

impl DiskType {
    /// The on-disk code.
    pub fn code(self) -> u32 {
        match self {
            Self::Fixed => 2,
            Self::Dynamic => 3,
            Self::Differencing => 4,
        }
    }

    /// Decodes the on-disk code.
    pub fn from_code(code: u32) -> Result<Self> {
        match code {
            2 => Ok(Self::Fixed),
            3 => Ok(Self::Dynamic),
            4 => Ok(Self::Differencing),
            other => Err(VhdError::Unsupported {
                what: "disk type",
                value: u64::from(other),
            }),
        }
    }

    /// Lowercase name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::Dynamic => "dynamic",
            Self::Differencing => "differencing",
        }
    }

    /// Whether the disk has a dynamic header, a BAT and block bitmaps.
    pub fn is_sparse(self) -> bool {
        !matches!(self, Self::Fixed)
    }
}

/// The hard disk footer (also copied at offset 0 of dynamic and differencing disks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// `Features` bit field.
    pub features: u32,
    /// `File Format Version`.
    pub format_version: u32,
    /// `Data Offset`: absolute offset of the dynamic header, all ones for fixed disks.
    pub data_offset: u64,
    /// `Time Stamp`: seconds since 2000-01-01 UTC.
    pub timestamp: u32,
    /// `Creator Application`, four bytes such as `tap\0`, `qemu`, `vpc `, `win `.
    pub creator_app: [u8; 4],
    /// `Creator Version`.
    pub creator_version: u32,
    /// `Creator Host OS`.
    pub creator_os: u32,
    /// `Original Size` in bytes.
    pub original_size: u64,
    /// `Current Size`: the virtual size in bytes.
    pub current_size: u64,
    /// `Disk Geometry`.
    pub geometry: Geometry,
    /// `Disk Type`.
    pub disk_type: DiskType,
    /// `Checksum` as read (recomputed by [`Footer::to_bytes`]).
    pub checksum: u32,
    /// `Unique Id`: the identity children record as their parent uuid.
    pub uuid: Uuid,
    /// `Saved State` byte.
    pub saved_state: u8,
    /// blktap's `hidden` byte: non-zero marks a VDI hidden from the toolstack.
    pub hidden: u8,
    /// The rest of the reserved area, kept verbatim.
    pub reserved: [u8; FOOTER_SIZE - RESERVED_AT],
}

impl Footer {
    /// A fresh footer for a new disk of `size` bytes, stamped with the current time.
    pub fn new(disk_type: DiskType, size: u64, data_offset: u64) -> Self {
        Self {
            features: FEATURE_RESERVED,
            format_version: FORMAT_VERSION,
            data_offset,
            timestamp: vhd_time_now(),
            creator_app: CREATOR_TAP,
            creator_version: CREATOR_VERSION,
            creator_os: 0,
            original_size: size,
            current_size: size,
            geometry: Geometry::for_size(size),
            disk_type,
            checksum: 0,
            uuid: Uuid::new_v4(),
            saved_state: 0,
            hidden: 0,
            reserved: [0; FOOTER_SIZE - RESERVED_AT],
        }
    }

    /// Parses and validates cookie, checksum, format version and disk type.
    pub fn parse(buf: &[u8; FOOTER_SIZE]) -> Result<Self> {
        if &buf[0..8] != FOOTER_COOKIE {
            return Err(VhdError::BadCookie {
                structure: "footer",
            });
        }
        let stored = get_u32(buf, CHECKSUM_AT);
        let computed = ones_complement(buf, Some(CHECKSUM_AT));
        if stored != computed && !legacy_hidden_checksum_ok(buf, stored) {
            return Err(VhdError::BadChecksum {
                structure: "footer",
                stored,
                computed,
            });
        }
        let format_version = get_u32(buf, 12);
        if format_version >> 16 != 1 {
            return Err(VhdError::Unsupported {
                what: "footer format version",
                value: u64::from(format_version),
            });
        }
        let mut creator_app = [0u8; 4];
        creator_app.copy_from_slice(&buf[28..32]);
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&buf[68..84]);
        let mut reserved = [0u8; FOOTER_SIZE - RESERVED_AT];
        reserved.copy_from_slice(&buf[RESERVED_AT..]);
        Ok(Self {
            features: get_u32(buf, 8),
            format_version,
            data_offset: get_u64(buf, 16),
            timestamp: get_u32(buf, 24),
            creator_app,
            creator_version: get_u32(buf, 32),
            creator_os: get_u32(buf, 36),
            original_size: get_u64(buf, 40),
            current_size: get_u64(buf, 48),
            geometry: Geometry::from_u32(get_u32(buf, 56)),
            disk_type: DiskType::from_code(get_u32(buf, 60))?,
            checksum: stored,
            uuid: Uuid::from_bytes(uuid),
            saved_state: buf[SAVED_STATE_AT],
            hidden: buf[HIDDEN_AT],
            reserved,
        })
    }

    /// Serialises with a freshly computed checksum.
    pub fn to_bytes(&self) -> [u8; FOOTER_SIZE] {
        let mut buf = [0u8; FOOTER_SIZE];
        buf[0..8].copy_from_slice(FOOTER_COOKIE);
        put_u32(&mut buf, 8, self.features);
        put_u32(&mut buf, 12, self.format_version);
        put_u64(&mut buf, 16, self.data_offset);
        put_u32(&mut buf, 24, self.timestamp);
        buf[28..32].copy_from_slice(&self.creator_app);
        put_u32(&mut buf, 32, self.creator_version);
        put_u32(&mut buf, 36, self.creator_os);
        put_u64(&mut buf, 40, self.original_size);
        put_u64(&mut buf, 48, self.current_size);
        put_u32(&mut buf, 56, self.geometry.to_u32());
        put_u32(&mut buf, 60, self.disk_type.code());
        buf[68..84].copy_from_slice(self.uuid.as_bytes());
        buf[SAVED_STATE_AT] = self.saved_state;
        buf[HIDDEN_AT] = self.hidden;
        buf[RESERVED_AT..].copy_from_slice(&self.reserved);
        let checksum = ones_complement(&buf, Some(CHECKSUM_AT));
        put_u32(&mut buf, CHECKSUM_AT, checksum);
        buf
    }

    /// Whether blktap wrote this image (creator `tap\0`).
    pub fn is_tap(&self) -> bool {
        self.creator_app == CREATOR_TAP
    }
}

/// Early blktap tools set the hidden byte without updating the checksum; blktap accepts the
/// checksum computed with the byte cleared for creator versions 0.1 and 1.1.
fn legacy_hidden_checksum_ok(buf: &[u8; FOOTER_SIZE], stored: u32) -> bool {
    let creator_version = get_u32(buf, 32);
    if buf[HIDDEN_AT] == 0
        || &buf[28..31] != b"tap"
        || !(creator_version == 0x0000_0001 || creator_version == 0x0001_0001)
    {
        return false;
    }
    let mut copy = *buf;
    copy[HIDDEN_AT] = 0;
    ones_complement(&copy, Some(CHECKSUM_AT)) == stored
}

/// The current time as a VHD timestamp (seconds since 2000-01-01 UTC).
pub fn vhd_time_now() -> u32 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    vhd_time_from_unix(now)
}

/// Converts Unix seconds to a VHD timestamp, clamping at both ends.
pub fn vhd_time_from_unix(unix_seconds: u64) -> u32 {
    u32::try_from(unix_seconds.saturating_sub(VHD_EPOCH_OFFSET)).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn round_trip_preserves_every_field() {
        let mut footer = Footer::new(DiskType::Dynamic, 10 << 20, 512);
        footer.hidden = 1;
        footer.reserved[10] = 7;
        let bytes = footer.to_bytes();
        let parsed = Footer::parse(&bytes).unwrap();
        assert_eq!(parsed.hidden, 1);
        assert_eq!(parsed.reserved[10], 7);
        assert_eq!(parsed.uuid, footer.uuid);
        assert_eq!(parsed.to_bytes(), bytes);
    }

    #[test]
    fn hidden_lives_right_after_saved_state() {
        let mut footer = Footer::new(DiskType::Dynamic, 2 << 20, 512);
        footer.hidden = 1;
        let bytes = footer.to_bytes();
        assert_eq!(bytes[84], 0);
        assert_eq!(bytes[85], 1);
    }

    #[test]
    fn flipped_byte_fails_checksum() {
        let mut bytes = Footer::new(DiskType::Fixed, 1 << 20, NO_DATA_OFFSET).to_bytes();
        bytes[40] ^= 1;
        assert!(matches!(
            Footer::parse(&bytes),
            Err(VhdError::BadChecksum { .. })
        ));
    }

    #[test]
    fn wrong_cookie_is_rejected() {
        let mut bytes = Footer::new(DiskType::Fixed, 1 << 20, NO_DATA_OFFSET).to_bytes();
        bytes[0] = b'x';
        assert!(matches!(
            Footer::parse(&bytes),
            Err(VhdError::BadCookie { .. })
        ));
    }

    #[test]
    fn unknown_disk_type_is_rejected() {
        let mut footer = Footer::new(DiskType::Fixed, 1 << 20, NO_DATA_OFFSET).to_bytes();
        put_u32(&mut footer, 60, 5);
        let checksum = ones_complement(&footer, Some(CHECKSUM_AT));
        put_u32(&mut footer, CHECKSUM_AT, checksum);
        assert!(matches!(
            Footer::parse(&footer),
            Err(VhdError::Unsupported { .. })
        ));
    }

    #[test]
    fn legacy_tap_hidden_without_checksum_update_is_accepted() {
        let mut footer = Footer::new(DiskType::Dynamic, 2 << 20, 512);
        footer.creator_version = 0x0001_0001;
        let mut bytes = footer.to_bytes();
        bytes[HIDDEN_AT] = 1;
        assert_eq!(Footer::parse(&bytes).unwrap().hidden, 1);
    }

    #[test]
    fn vhd_epoch_is_year_2000() {
        assert_eq!(vhd_time_from_unix(946_684_800), 0);
        assert_eq!(vhd_time_from_unix(946_684_860), 60);
        assert_eq!(vhd_time_from_unix(5), 0);
    }
}
