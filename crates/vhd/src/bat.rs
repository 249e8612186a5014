//! The Block Allocation Table: one big-endian `u32` sector offset per block, `0xFFFFFFFF` for an
//! unallocated block. Parsing and serialisation only; the caller bounds the size before reading.

use crate::checksum::{get_u32, put_u32};
use crate::SECTOR_SIZE;

/// BAT value of an unallocated block.
pub const UNUSED: u32 = u32::MAX;

/// The in-memory BAT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bat {
    entries: Vec<u32>,
}

impl Bat {
    /// A table of `count` unallocated entries.
    pub fn new(count: u32) -> Self {
        Self {
            entries: vec![UNUSED; count as usize],
        }
    }

    /// Decodes `bytes` (at least `4 * count` long).
    pub fn parse(bytes: &[u8], count: u32) -> Self {
        let entries = (0..count as usize).map(|i| get_u32(bytes, 4 * i)).collect();
        Self { entries }
    }

    /// Bytes the table occupies on disk: entries padded to whole sectors.
    pub fn padded_size(count: u32) -> u64 {
        (u64::from(count) * 4).div_ceil(SECTOR_SIZE) * SECTOR_SIZE
    }

    /// Serialises, padding to whole sectors with unused entries.
    pub fn to_bytes(&self) -> Vec<u8> {
        let count = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        let size = Self::padded_size(count) as usize;
        let mut buf = vec![0xff; size];
        for (i, entry) in self.entries.iter().enumerate() {
            put_u32(&mut buf, 4 * i, *entry);
        }
        buf
    }

    /// The sector offset of block `index`'s bitmap, or `None` if unallocated or out of range.
    pub fn get(&self, index: u64) -> Option<u32> {
        let entry = *self.entries.get(usize::try_from(index).ok()?)?;
        (entry != UNUSED).then_some(entry)
    }

    /// Records block `index` at `sector`.
    pub fn set(&mut self, index: u64, sector: u32) {
        if let Some(entry) = usize::try_from(index)
            .ok()
            .and_then(|i| self.entries.get_mut(i))
        {
            *entry = sector;
        }
    }

    /// Grows to `count` entries, new ones unallocated.
    pub fn grow(&mut self, count: u32) {
        if count as usize > self.entries.len() {
            self.entries.resize(count as usize, UNUSED);
        }
    }

    /// Iterates over `(block, sector)` of allocated blocks.
    pub fn allocated(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| **entry != UNUSED)
            .map(|(i, entry)| (i as u64, *entry))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn serialisation_pads_with_unused_and_round_trips() {
        let mut bat = Bat::new(3);
        bat.set(1, 0x1234);
        let bytes = bat.to_bytes();
        assert_eq!(bytes.len(), 512);
        assert_eq!(&bytes[4..8], &[0, 0, 0x12, 0x34]);
        assert_eq!(&bytes[12..16], &[0xff; 4]);
        assert_eq!(Bat::parse(&bytes, 3), bat);
    }

    #[test]
    fn get_reports_only_allocated_entries() {
        let mut bat = Bat::new(2);
        bat.set(0, 7);
        assert_eq!(bat.get(0), Some(7));
        assert_eq!(bat.get(1), None);
        assert_eq!(bat.get(99), None);
        assert_eq!(bat.allocated().collect::<Vec<_>>(), vec![(0, 7)]);
    }

    #[test]
    fn padded_size_rounds_to_sectors() {
        assert_eq!(Bat::padded_size(0), 0);
        assert_eq!(Bat::padded_size(128), 512);
        assert_eq!(Bat::padded_size(129), 1024);
    }
}
