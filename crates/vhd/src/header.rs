//! The 1024-byte dynamic disk header of dynamic and differencing disks: BAT position and size,
//! block size, parent uuid, parent timestamp, parent unicode name and the eight parent locator
//! entries. Parsing, validation and serialisation only; never does I/O.

use uuid::Uuid;

use crate::checksum::{get_u32, get_u64, ones_complement, put_u32, put_u64};
use crate::error::{Result, VhdError};
use crate::locator::PlatformCode;
use crate::SECTOR_SIZE;

/// Size of the dynamic header in bytes.
pub const HEADER_SIZE: usize = 1024;
/// Header magic.
pub const HEADER_COOKIE: &[u8; 8] = b"cxsparse";
/// `Header Version` 1.0.
pub const HEADER_VERSION: u32 = 0x0001_0000;
/// Number of parent locator entries.
pub const LOCATOR_SLOTS: usize = 8;
/// Largest block size accepted when reading (256 MiB); we create 2 MiB blocks.
pub const MAX_BLOCK_SIZE: u32 = 256 << 20;

const CHECKSUM_AT: usize = 36;
const PARENT_NAME_AT: usize = 64;
const PARENT_NAME_SIZE: usize = 512;
const LOCATORS_AT: usize = 576;
const LOCATOR_ENTRY_SIZE: usize = 24;
const RESERVED2_AT: usize = 768;

/// One `Parent Locator Entry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocatorEntry {
    /// `Platform Code`.
    pub code: u32,
    /// `Platform Data Space`: reserved space, in sectors per the specification but in bytes as
    /// Microsoft and blktap write it.
    pub data_space: u32,
    /// `Platform Data Length` in bytes.
    pub data_len: u32,
    /// Reserved field, kept verbatim.
    pub reserved: u32,
    /// `Platform Data Offset`: absolute file offset of the locator data.
    pub data_offset: u64,
}

impl LocatorEntry {
    /// The platform code decoded.
    pub fn platform(&self) -> PlatformCode {
        PlatformCode::from_code(self.code)
    }

    /// Bytes reserved for the data, reading `data_space` the way blktap does: values below 512
    /// are sectors, sector multiples are bytes, anything else is unusable (0).
    pub fn space_bytes(&self) -> u64 {
        let space = u64::from(self.data_space);
        if space < SECTOR_SIZE {
            space * SECTOR_SIZE
        } else if space % SECTOR_SIZE == 0 {
            space
        } else {
            0
        }
    }
}

/// The dynamic disk header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicHeader {
    /// `Data Offset`: unused, all ones.
    pub data_offset: u64,
    /// `Table Offset`: absolute offset of the BAT.
    pub table_offset: u64,
    /// `Header Version`.
    pub header_version: u32,
    /// `Max Table Entries`: BAT entries.
    pub max_table_entries: u32,
    /// `Block Size` in bytes.
    pub block_size: u32,
    /// `Checksum` as read.
    pub checksum: u32,
    /// `Parent Unique ID`: the parent footer's uuid.
    pub parent_uuid: Uuid,
    /// `Parent Time Stamp`.
    pub parent_timestamp: u32,
    /// First reserved field, kept verbatim.
    pub reserved1: u32,
    /// `Parent Unicode Name`, raw UTF-16 big-endian bytes.
    pub parent_name_raw: [u8; PARENT_NAME_SIZE],
    /// `Parent Locator Entries`.
    pub locators: [LocatorEntry; LOCATOR_SLOTS],
    /// Trailing reserved bytes, kept verbatim.
    pub reserved2: [u8; HEADER_SIZE - RESERVED2_AT],
}

impl DynamicHeader {
    /// A header for a new disk with `entries` BAT entries at `table_offset`.
    pub fn new(table_offset: u64, entries: u32, block_size: u32) -> Self {
        Self {
            data_offset: u64::MAX,
            table_offset,
            header_version: HEADER_VERSION,
            max_table_entries: entries,
            block_size,
            checksum: 0,
            parent_uuid: Uuid::nil(),
            parent_timestamp: 0,
            reserved1: 0,
            parent_name_raw: [0; PARENT_NAME_SIZE],
            locators: [LocatorEntry::default(); LOCATOR_SLOTS],
            reserved2: [0; HEADER_SIZE - RESERVED2_AT],
        }
    }

    /// Parses and validates cookie, checksum, version and block size.
    pub fn parse(buf: &[u8; HEADER_SIZE]) -> Result<Self> {
        if &buf[0..8] != HEADER_COOKIE {
            return Err(VhdError::BadCookie {
                structure: "dynamic header",
            });
        }
        let stored = get_u32(buf, CHECKSUM_AT);
        let computed = ones_complement(buf, Some(CHECKSUM_AT));
        if stored != computed {
            return Err(VhdError::BadChecksum {
                structure: "dynamic header",
                stored,
                computed,
            });
        }
        let header_version = get_u32(buf, 24);
        if header_version >> 16 != 1 {
            return Err(VhdError::Unsupported {
                what: "dynamic header version",
                value: u64::from(header_version),
            });
        }
        let block_size = get_u32(buf, 32);
        if !block_size.is_power_of_two()
            || u64::from(block_size) < SECTOR_SIZE
            || block_size > MAX_BLOCK_SIZE
        {
            return Err(VhdError::Unsupported {
                what: "block size",
                value: u64::from(block_size),
            });
        }
        let mut parent_uuid = [0u8; 16];
        parent_uuid.copy_from_slice(&buf[40..56]);
        let mut parent_name_raw = [0u8; PARENT_NAME_SIZE];
        parent_name_raw.copy_from_slice(&buf[PARENT_NAME_AT..PARENT_NAME_AT + PARENT_NAME_SIZE]);
        let mut locators = [LocatorEntry::default(); LOCATOR_SLOTS];
        for (i, entry) in locators.iter_mut().enumerate() {
            let at = LOCATORS_AT + i * LOCATOR_ENTRY_SIZE;
            *entry = LocatorEntry {
                code: get_u32(buf, at),
                data_space: get_u32(buf, at + 4),
                data_len: get_u32(buf, at + 8),
                reserved: get_u32(buf, at + 12),
                data_offset: get_u64(buf, at + 16),
            };
        }
        let mut reserved2 = [0u8; HEADER_SIZE - RESERVED2_AT];
        reserved2.copy_from_slice(&buf[RESERVED2_AT..]);
        Ok(Self {
            data_offset: get_u64(buf, 8),
            table_offset: get_u64(buf, 16),
            header_version,
            max_table_entries: get_u32(buf, 28),
            block_size,
            checksum: stored,
            parent_uuid: Uuid::from_bytes(parent_uuid),
            parent_timestamp: get_u32(buf, 56),
            reserved1: get_u32(buf, 60),
            parent_name_raw,
            locators,
            reserved2,
        })
    }

    /// Serialises with a freshly computed checksum.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut buf = [0u8; HEADER_SIZE];
        buf[0..8].copy_from_slice(HEADER_COOKIE);
        put_u64(&mut buf, 8, self.data_offset);
        put_u64(&mut buf, 16, self.table_offset);
        put_u32(&mut buf, 24, self.header_version);
        put_u32(&mut buf, 28, self.max_table_entries);
        put_u32(&mut buf, 32, self.block_size);
        buf[40..56].copy_from_slice(self.parent_uuid.as_bytes());
        put_u32(&mut buf, 56, self.parent_timestamp);
        put_u32(&mut buf, 60, self.reserved1);
        buf[PARENT_NAME_AT..PARENT_NAME_AT + PARENT_NAME_SIZE]
            .copy_from_slice(&self.parent_name_raw);
        for (i, entry) in self.locators.iter().enumerate() {
            let at = LOCATORS_AT + i * LOCATOR_ENTRY_SIZE;
            put_u32(&mut buf, at, entry.code);
            put_u32(&mut buf, at + 4, entry.data_space);
            put_u32(&mut buf, at + 8, entry.data_len);
            put_u32(&mut buf, at + 12, entry.reserved);
            put_u64(&mut buf, at + 16, entry.data_offset);
        }
        buf[RESERVED2_AT..].copy_from_slice(&self.reserved2);
        let checksum = ones_complement(&buf, Some(CHECKSUM_AT));
        put_u32(&mut buf, CHECKSUM_AT, checksum);
        buf
    }

    /// The `Parent Unicode Name` decoded from UTF-16 big-endian up to the first NUL.
    pub fn parent_name(&self) -> String {
        let units: Vec<u16> = self
            .parent_name_raw
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .take_while(|unit| *unit != 0)
            .collect();
        String::from_utf16_lossy(&units)
    }

    /// Stores `name` as UTF-16 big-endian; fails if it does not fit the 512-byte field.
    pub fn set_parent_name(&mut self, name: &str) -> Result<()> {
        let units: Vec<u16> = name.encode_utf16().collect();
        if units.len() * 2 > PARENT_NAME_SIZE || units.contains(&0) {
            return Err(VhdError::InvalidPath(name.to_owned()));
        }
        self.parent_name_raw = [0; PARENT_NAME_SIZE];
        for (i, unit) in units.iter().enumerate() {
            self.parent_name_raw[2 * i..2 * i + 2].copy_from_slice(&unit.to_be_bytes());
        }
        Ok(())
    }

    /// Bytes of one block's sector bitmap, padded to whole sectors.
    pub fn bitmap_size(&self) -> u64 {
        let sectors = u64::from(self.block_size) / SECTOR_SIZE;
        sectors.div_ceil(8).div_ceil(SECTOR_SIZE) * SECTOR_SIZE
    }

    /// Sectors per block.
    pub fn sectors_per_block(&self) -> u64 {
        u64::from(self.block_size) / SECTOR_SIZE
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_locators_and_name() {
        let mut header = DynamicHeader::new(1536, 5, 2 << 20);
        header.parent_uuid = Uuid::new_v4();
        header.set_parent_name("parent.vhd").unwrap();
        header.locators[1] = LocatorEntry {
            code: 0x5732_6b75,
            data_space: 1024,
            data_len: 20,
            reserved: 0,
            data_offset: 4096,
        };
        let bytes = header.to_bytes();
        let parsed = DynamicHeader::parse(&bytes).unwrap();
        assert_eq!(
            parsed,
            DynamicHeader {
                checksum: parsed.checksum,
                ..header
            }
        );
        assert_eq!(parsed.parent_name(), "parent.vhd");
    }

    #[test]
    fn parent_name_is_utf16_big_endian() {
        let mut header = DynamicHeader::new(1536, 1, 2 << 20);
        header.set_parent_name("ab").unwrap();
        assert_eq!(&header.parent_name_raw[..4], &[0, b'a', 0, b'b']);
    }

    #[test]
    fn overlong_parent_name_is_refused() {
        let mut header = DynamicHeader::new(1536, 1, 2 << 20);
        assert!(header.set_parent_name(&"x".repeat(257)).is_err());
    }

    #[test]
    fn corrupt_checksum_and_block_size_are_rejected() {
        let mut bytes = DynamicHeader::new(1536, 1, 2 << 20).to_bytes();
        bytes[30] ^= 1;
        assert!(matches!(
            DynamicHeader::parse(&bytes),
            Err(VhdError::BadChecksum { .. })
        ));
        let bytes = DynamicHeader::new(1536, 1, 3000).to_bytes();
        assert!(matches!(
            DynamicHeader::parse(&bytes),
            Err(VhdError::Unsupported { .. })
        ));
    }

    #[test]
    fn data_space_is_read_as_sectors_or_bytes() {
        let mut entry = LocatorEntry {
            data_space: 2,
            ..LocatorEntry::default()
        };
        assert_eq!(entry.space_bytes(), 1024);
        entry.data_space = 1024;
        assert_eq!(entry.space_bytes(), 1024);
        entry.data_space = 1000;
        assert_eq!(entry.space_bytes(), 0);
    }

    #[test]
    fn bitmap_of_a_2mib_block_is_one_sector() {
        assert_eq!(DynamicHeader::new(1536, 1, 2 << 20).bitmap_size(), 512);
        assert_eq!(DynamicHeader::new(1536, 1, 4096).bitmap_size(), 512);
    }
}
