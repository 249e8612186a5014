//! blktap's batmap: a 512-byte header (`tdbatmap`, offset, size in sectors, version, checksum)
//! followed by one bit per block saying the block is fully allocated. Parsing, serialisation and
//! the checksum; never does I/O.

use crate::bitmap;
use crate::checksum::{get_u32, get_u64, put_u32, put_u64};
use crate::error::{Result, VhdError};
use crate::SECTOR_SIZE;

/// Batmap header magic.
pub const BATMAP_COOKIE: &[u8; 8] = b"tdbatmap";
/// Batmap version 1.2, the current blktap version.
pub const BATMAP_VERSION: u32 = 0x0001_0002;
/// Size of the batmap header.
pub const BATMAP_HEADER_SIZE: usize = 512;

/// The batmap header and its map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batmap {
    /// Absolute offset of the map.
    pub offset: u64,
    /// Size of the map in sectors.
    pub size_sectors: u32,
    /// Batmap version.
    pub version: u32,
    /// Checksum as read.
    pub checksum: u32,
    /// The rest of the header (marker, key hash, reserved), kept verbatim.
    pub tail: [u8; BATMAP_HEADER_SIZE - 28],
    /// The map, `size_sectors * 512` bytes.
    pub map: Vec<u8>,
}

impl Batmap {
    /// An empty batmap for `entries` blocks whose map starts at `offset`.
    pub fn new(offset: u64, entries: u32) -> Self {
        let size_sectors = Self::sectors_for(entries);
        Self {
            offset,
            size_sectors,
            version: BATMAP_VERSION,
            checksum: 0,
            tail: [0; BATMAP_HEADER_SIZE - 28],
            map: vec![0; size_sectors as usize * SECTOR_SIZE as usize],
        }
    }

    /// Sectors needed for `entries` bits (at least one).
    pub fn sectors_for(entries: u32) -> u32 {
        let bytes = u64::from(entries).div_ceil(8);
        u32::try_from(bytes.div_ceil(SECTOR_SIZE).max(1)).unwrap_or(u32::MAX)
    }

    /// Parses a header; the caller reads `size_sectors` of map afterwards with [`Batmap::set_map`].
    pub fn parse_header(buf: &[u8; BATMAP_HEADER_SIZE]) -> Result<Self> {
        if &buf[0..8] != BATMAP_COOKIE {
            return Err(VhdError::BadCookie {
                structure: "batmap",
            });
        }
        let version = get_u32(buf, 20);
        if version > BATMAP_VERSION {
            return Err(VhdError::Unsupported {
                what: "batmap version",
                value: u64::from(version),
            });
        }
        let mut tail = [0u8; BATMAP_HEADER_SIZE - 28];
        tail.copy_from_slice(&buf[28..]);
        Ok(Self {
            offset: get_u64(buf, 8),
            size_sectors: get_u32(buf, 16),
            version,
            checksum: get_u32(buf, 24),
            tail,
            map: Vec::new(),
        })
    }

    /// Installs the map bytes read from disk.
    pub fn set_map(&mut self, map: Vec<u8>) {
        self.map = map;
    }

    /// Bytes of the map on disk.
    pub fn map_bytes(&self) -> u64 {
        u64::from(self.size_sectors) * SECTOR_SIZE
    }

    /// The checksum of the map: one's complement of the byte sum (signed bytes in version 1.1,
    /// as blktap computed it then).
    pub fn compute_checksum(&self) -> u32 {
        let mut sum = 0u32;
        for byte in &self.map {
            let value = if self.version == 0x0001_0001 {
                (*byte as i8) as u32
            } else {
                u32::from(*byte)
            };
            sum = sum.wrapping_add(value);
        }
        !sum
    }

    /// Whether the stored checksum matches the map.
    pub fn checksum_ok(&self) -> bool {
        self.checksum == self.compute_checksum()
    }

    /// Serialises the header with a fresh checksum (also stored in `self`).
    pub fn header_bytes(&mut self) -> [u8; BATMAP_HEADER_SIZE] {
        self.checksum = self.compute_checksum();
        let mut buf = [0u8; BATMAP_HEADER_SIZE];
        buf[0..8].copy_from_slice(BATMAP_COOKIE);
        put_u64(&mut buf, 8, self.offset);
        put_u32(&mut buf, 16, self.size_sectors);
        put_u32(&mut buf, 20, self.version);
        put_u32(&mut buf, 24, self.checksum);
        buf[28..].copy_from_slice(&self.tail);
        buf
    }

    /// Whether block `index` is marked fully allocated.
    pub fn test(&self, index: u64) -> bool {
        bitmap::test(&self.map, index)
    }

    /// Marks block `index` fully allocated (or not); returns whether the map changed.
    pub fn assign(&mut self, index: u64, full: bool) -> bool {
        if self.test(index) == full || index >= self.map.len() as u64 * 8 {
            return false;
        }
        if full {
            bitmap::set(&mut self.map, index);
        } else {
            bitmap::clear(&mut self.map, index);
        }
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_keeps_checksum_consistent() {
        let mut batmap = Batmap::new(4096, 10);
        batmap.assign(3, true);
        let bytes = batmap.header_bytes();
        let mut parsed = Batmap::parse_header(&bytes).unwrap();
        parsed.set_map(batmap.map.clone());
        assert!(parsed.checksum_ok());
        assert!(parsed.test(3));
        assert_eq!(parsed.offset, 4096);
        parsed.map[0] = 0;
        assert!(!parsed.checksum_ok());
    }

    #[test]
    fn empty_map_checksum_is_all_ones() {
        let batmap = Batmap::new(0, 1);
        assert_eq!(batmap.compute_checksum(), u32::MAX);
        assert_eq!(batmap.map.len(), 512);
    }

    #[test]
    fn newer_versions_and_bad_cookies_are_rejected() {
        let mut batmap = Batmap::new(0, 1);
        let mut bytes = batmap.header_bytes();
        put_u32(&mut bytes, 20, 0x0001_0003);
        assert!(Batmap::parse_header(&bytes).is_err());
        bytes[0] = 0;
        assert!(matches!(
            Batmap::parse_header(&bytes),
            Err(VhdError::BadCookie { .. })
        ));
    }

    #[test]
    fn sizes_round_up_to_sectors() {
        assert_eq!(Batmap::sectors_for(0), 1);
        assert_eq!(Batmap::sectors_for(4096), 1);
        assert_eq!(Batmap::sectors_for(4097), 2);
    }
}
