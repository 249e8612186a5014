//! Growing a disk's virtual size. Fixed disks move their footer; sparse disks update the footer
//! and, when the BAT has no room for the new blocks, relocate the batmap and parent locators
//! after moving any data blocks that sit where the bigger BAT must go. Shrinking is refused.

use crate::bat::Bat;
use crate::batmap::{Batmap, BATMAP_HEADER_SIZE};
use crate::create::{sector_padded, validate_size};
use crate::disk::Disk;
use crate::error::{Result, VhdError};
use crate::geometry::Geometry;
use crate::io::BlockIo;
use crate::SECTOR_SIZE;

impl<I: BlockIo> Disk<I> {
    /// Grows the virtual size to `new_size` bytes (a multiple of 512, at most 2040 GiB).
    /// New space reads as zeros (or, for a differencing disk, as whatever the parent holds
    /// there, normally nothing). Shrinking fails with `ShrinkRefused`.
    pub fn resize(&mut self, new_size: u64) -> Result<()> {
        let current = self.size();
        if new_size < current {
            return Err(VhdError::ShrinkRefused {
                current,
                requested: new_size,
            });
        }
        validate_size(new_size)?;
        if new_size == current {
            return Ok(());
        }
        match &self.sparse {
            None => self.grow_fixed(new_size),
            Some(_) => self.grow_sparse(new_size),
        }
    }

    fn grow_fixed(&mut self, new_size: u64) -> Result<()> {
        let old_footer = self.footer_offset;
        self.footer.current_size = new_size;
        self.footer.geometry = Geometry::for_size(new_size);
        self.io.set_len(new_size + SECTOR_SIZE)?;
        self.footer_offset = new_size;
        self.write_footers()?;
        // The old footer is now inside the data area and must read as zeros.
        self.io.write_at(old_footer, &[0u8; SECTOR_SIZE as usize])?;
        Ok(())
    }

    fn grow_sparse(&mut self, new_size: u64) -> Result<()> {
        let sparse = self.sparse()?;
        let block_size = u64::from(sparse.header.block_size);
        let needed =
            u32::try_from(new_size.div_ceil(block_size)).map_err(|_| VhdError::InvalidSize {
                size: new_size,
                reason: "too many blocks",
            })?;
        if needed > sparse.header.max_table_entries {
            self.grow_bat(needed)?;
        }
        self.footer.current_size = new_size;
        self.footer.geometry = Geometry::for_size(new_size);
        self.write_footers()
    }

    /// Makes room for `entries` BAT entries after the BAT's current start.
    fn grow_bat(&mut self, entries: u32) -> Result<()> {
        let sparse = self.sparse()?.clone();
        let table_offset = sparse.header.table_offset;
        let has_batmap = sparse.batmap.is_some();
        // New metadata layout: BAT, batmap header + map, then the locators, each keeping its space.
        let batmap_header_at = table_offset + Bat::padded_size(entries);
        let batmap_sectors = Batmap::sectors_for(entries);
        let mut end = if has_batmap {
            batmap_header_at + BATMAP_HEADER_SIZE as u64 + u64::from(batmap_sectors) * SECTOR_SIZE
        } else {
            batmap_header_at
        };
        let file_len = self.io.len()?;
        let mut header = sparse.header.clone();
        let mut locator_data = Vec::new();
        for entry in header.locators.iter_mut() {
            if entry.code == 0 || entry.data_len == 0 {
                continue;
            }
            let space = entry.space_bytes();
            let padded = sector_padded(u64::from(entry.data_len));
            let inside = entry
                .data_offset
                .checked_add(padded)
                .is_some_and(|end| end <= file_len);
            if space < padded || entry.data_offset < table_offset || !inside {
                // Unusable or somewhere we do not manage: leave it alone.
                continue;
            }
            let mut data = vec![0u8; padded as usize];
            self.io.read_at(entry.data_offset, &mut data)?;
            locator_data.push((end, data));
            entry.data_offset = end;
            end += space;
        }
        // Move data blocks out of the way, lowest first, to the end of the file.
        let span = sparse.block_span();
        let mut in_the_way: Vec<(u64, u32)> = sparse
            .bat
            .allocated()
            .filter(|(_, sector)| u64::from(*sector) * SECTOR_SIZE < end)
            .collect();
        in_the_way.sort_by_key(|(_, sector)| *sector);
        let mut buf = vec![0u8; span as usize];
        for (block, sector) in in_the_way {
            let from = u64::from(sector) * SECTOR_SIZE;
            self.io.read_at(from, &mut buf)?;
            let to = self.next_free().max(sector_padded(end));
            let new_sector =
                u32::try_from(to / SECTOR_SIZE).map_err(|_| VhdError::Unsupported {
                    what: "file offset beyond the BAT's reach",
                    value: to,
                })?;
            self.io.write_at(to, &buf)?;
            self.footer_offset = to + span;
            let footer = self.footer.to_bytes();
            self.io.write_at(self.footer_offset, &footer)?;
            if let Some(sparse) = &mut self.sparse {
                sparse.bat.set(block, new_sector);
            }
            self.write_bat_entry(block)?;
        }
        if self.footer_offset < end {
            self.footer_offset = end;
        }
        // Write the new structures: locators, BAT, batmap, then the header that points at them.
        for (at, data) in &locator_data {
            self.io.write_at(*at, data)?;
        }
        header.max_table_entries = entries;
        if let Some(sparse) = &mut self.sparse {
            sparse.bat.grow(entries);
            sparse.header = header;
            if let Some(old) = &sparse.batmap {
                let mut batmap = Batmap::new(batmap_header_at + BATMAP_HEADER_SIZE as u64, entries);
                batmap.version = old.version;
                batmap.tail = old.tail;
                let keep = old.map.len().min(batmap.map.len());
                batmap.map[..keep].copy_from_slice(&old.map[..keep]);
                sparse.batmap = Some(batmap);
            }
        }
        self.write_bat()?;
        self.write_batmap()?;
        self.write_header()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use crate::io::MemIo;
    use crate::{Disk, ParentLink, VhdError};

    #[test]
    fn shrink_is_refused() {
        let mut disk = Disk::create_dynamic(MemIo::new(), 4 << 20).unwrap();
        assert!(matches!(
            disk.resize(2 << 20),
            Err(VhdError::ShrinkRefused { .. })
        ));
    }

    #[test]
    fn fixed_grow_keeps_data_and_zeroes_the_old_footer() {
        let io = MemIo::new();
        let mut disk = Disk::create_fixed(io.clone(), 1 << 20).unwrap();
        disk.write_at(100, b"keep").unwrap();
        disk.resize(2 << 20).unwrap();
        let disk = Disk::open(io).unwrap();
        assert_eq!(disk.size(), 2 << 20);
        let mut buf = vec![1u8; 1024];
        disk.read_at(1 << 20, &mut buf).unwrap();
        assert!(buf.iter().all(|b| *b == 0));
        let mut keep = [0u8; 4];
        disk.read_at(100, &mut keep).unwrap();
        assert_eq!(&keep, b"keep");
    }

    #[test]
    fn sparse_grow_moves_blocks_and_keeps_data() {
        let io = MemIo::new();
        let mut disk = Disk::create_dynamic(io.clone(), 4 << 20).unwrap();
        disk.write_at(0, &vec![5u8; 4 << 20]).unwrap();
        // 300 blocks need three BAT sectors instead of one: the first block must move.
        disk.resize(600 << 20).unwrap();
        disk.write_at(599 << 20, b"tail").unwrap();
        let disk = Disk::open(io).unwrap();
        assert_eq!(disk.size(), 600 << 20);
        assert_eq!(disk.header().unwrap().max_table_entries, 300);
        let mut buf = vec![0u8; 4 << 20];
        disk.read_at(0, &mut buf).unwrap();
        assert!(buf.iter().all(|b| *b == 5));
        let mut tail = [0u8; 4];
        disk.read_at(599 << 20, &mut tail).unwrap();
        assert_eq!(&tail, b"tail");
        assert!(disk.batmap().unwrap().test(0));
        assert!(crate::check::check(disk.io()).unwrap().is_ok());
    }

    #[test]
    fn differencing_grow_keeps_locators() {
        let link = ParentLink {
            uuid: uuid::Uuid::new_v4(),
            timestamp: 0,
            name: "p.vhd".into(),
            relative: "p.vhd".into(),
            absolute: "/sr/p.vhd".into(),
        };
        let io = MemIo::new();
        let mut disk = Disk::create_differencing(io.clone(), 2 << 20, &link).unwrap();
        let before = disk.parent_locators().unwrap();
        disk.resize(1 << 30).unwrap();
        let disk = Disk::open(io).unwrap();
        assert_eq!(disk.parent_locators().unwrap(), before);
    }
}
