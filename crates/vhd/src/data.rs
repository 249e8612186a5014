//! Reading and writing virtual-disk data: byte-offset access on top of a sector engine that walks
//! the BAT and the per-block bitmaps, falls through to parents for unallocated sectors, allocates
//! blocks at the end of the file and keeps bitmaps and batmap in step. Write order (data, bitmap,
//! trailing footer, BAT entry, batmap) means a crash leaves at worst a leaked block, never a BAT
//! entry pointing at unwritten data.

use crate::bitmap;
use crate::disk::Disk;
use crate::error::{Result, VhdError};
use crate::footer::DiskType;
use crate::io::BlockIo;
use crate::SECTOR_SIZE;

const SECTOR: usize = SECTOR_SIZE as usize;

impl<I: BlockIo> Disk<I> {
    /// Reads `buf.len()` bytes at byte `offset`. Fails with `NeedsParent` when a differencing
    /// disk would have to consult its parent: read through a [`crate::Chain`] instead.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        read_bytes(self, &[], offset, buf)
    }

    /// Writes `data` at byte `offset`. Partial sectors are read, patched and written back; on a
    /// differencing disk that needs the parent, so use a [`crate::Chain`] for unaligned writes.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        write_bytes(self, &[], offset, data)
    }

    /// Whether every sector of `sector..sector + count` is stored in this image itself.
    pub fn sectors_present(&self, sector: u64, count: u64) -> Result<bool> {
        let Some(sparse) = &self.sparse else {
            return Ok(true);
        };
        let spb = sparse.header.sectors_per_block();
        let mut done = 0;
        while done < count {
            let s = sector + done;
            let (block, within) = (s / spb, s % spb);
            let n = (spb - within).min(count - done);
            if sparse.bat.get(block).is_none() {
                return Ok(false);
            }
            let map = self.block_bitmap(block)?;
            if !bitmap::runs(&map, within, n).iter().all(|run| run.2) {
                return Ok(false);
            }
            done += n;
        }
        Ok(true)
    }

    /// The sector bitmap of allocated block `block` (all ones when the batmap says full).
    pub(crate) fn block_bitmap(&self, block: u64) -> Result<Vec<u8>> {
        let sparse = self.sparse()?;
        let size = sparse.bitmap_size() as usize;
        let Some(sector) = sparse.bat.get(block) else {
            return Ok(vec![0; size]);
        };
        if sparse.batmap.as_ref().is_some_and(|map| map.test(block)) {
            return Ok(vec![0xff; size]);
        }
        let mut map = vec![0u8; size];
        self.io.read_at(u64::from(sector) * SECTOR_SIZE, &mut map)?;
        Ok(map)
    }

    /// Writes whole sectors starting at `sector` into this image (never touches a parent).
    pub(crate) fn write_sectors(&mut self, sector: u64, data: &[u8]) -> Result<()> {
        let count = (data.len() / SECTOR) as u64;
        let Some(sparse) = &self.sparse else {
            self.io.write_at(sector * SECTOR_SIZE, data)?;
            return Ok(());
        };
        let spb = sparse.header.sectors_per_block();
        let mut done = 0;
        while done < count {
            let s = sector + done;
            let (block, within) = (s / spb, s % spb);
            let n = (spb - within).min(count - done);
            let chunk = &data[(done as usize) * SECTOR..((done + n) as usize) * SECTOR];
            let allocated = self.sparse()?.bat.get(block);
            match allocated {
                None => self.allocate_block(block, within, chunk)?,
                Some(block_sector) => self.write_into_block(block, block_sector, within, chunk)?,
            }
            done += n;
        }
        Ok(())
    }

    fn write_into_block(
        &mut self,
        block: u64,
        block_sector: u32,
        within: u64,
        chunk: &[u8],
    ) -> Result<()> {
        let sparse = self.sparse()?;
        let bitmap_at = u64::from(block_sector) * SECTOR_SIZE;
        let data_at = bitmap_at + sparse.bitmap_size() + within * SECTOR_SIZE;
        let full = sparse.batmap.as_ref().is_some_and(|map| map.test(block));
        let spb = sparse.header.sectors_per_block();
        self.io.write_at(data_at, chunk)?;
        if full {
            return Ok(());
        }
        let mut map = match self.last_bitmap.take() {
            Some((b, at, map)) if b == block && at == block_sector => map,
            _ => self.block_bitmap(block)?,
        };
        if bitmap::set_range(&mut map, within, (chunk.len() / SECTOR) as u64) {
            self.io.write_at(bitmap_at, &map)?;
            if bitmap::all_set(&map, spb) {
                self.mark_full(block)?;
            }
        }
        self.last_bitmap = Some((block, block_sector, map));
        Ok(())
    }

    fn allocate_block(&mut self, block: u64, within: u64, chunk: &[u8]) -> Result<()> {
        let offset = self.next_free();
        let sparse = self.sparse()?;
        let bitmap_size = sparse.bitmap_size();
        let span = sparse.block_span();
        let spb = sparse.header.sectors_per_block();
        let sector = u32::try_from(offset / SECTOR_SIZE)
            .ok()
            .filter(|sector| *sector != crate::bat::UNUSED)
            .ok_or(VhdError::Unsupported {
                what: "file offset beyond the BAT's reach",
                value: offset,
            })?;
        let mut map = vec![0u8; bitmap_size as usize];
        bitmap::set_range(&mut map, within, (chunk.len() / SECTOR) as u64);
        // The block lands beyond the old end of file, so sectors we do not write read as zeros.
        self.io
            .write_at(offset + bitmap_size + within * SECTOR_SIZE, chunk)?;
        self.io.write_at(offset, &map)?;
        self.footer_offset = offset + span;
        let footer = self.footer.to_bytes();
        self.io.write_at(self.footer_offset, &footer)?;
        if let Some(sparse) = &mut self.sparse {
            sparse.bat.set(block, sector);
        }
        self.write_bat_entry(block)?;
        if bitmap::all_set(&map, spb) {
            self.mark_full(block)?;
        }
        Ok(())
    }

    fn mark_full(&mut self, block: u64) -> Result<()> {
        let changed = match self.sparse.as_mut().and_then(|s| s.batmap.as_mut()) {
            Some(batmap) => batmap.assign(block, true),
            None => false,
        };
        if changed {
            self.write_batmap()?;
        }
        Ok(())
    }
}

fn check_range(size: u64, offset: u64, len: usize) -> Result<()> {
    let len = len as u64;
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(VhdError::OutOfRange { offset, len, size }),
    }
}

/// Reads bytes from `disk`, falling through to `parents` (nearest first).
pub(crate) fn read_bytes<I: BlockIo>(
    disk: &Disk<I>,
    parents: &[Disk<I>],
    offset: u64,
    buf: &mut [u8],
) -> Result<()> {
    check_range(disk.size(), offset, buf.len())?;
    if offset % SECTOR_SIZE == 0 && buf.len() % SECTOR == 0 {
        return read_sectors(disk, parents, offset / SECTOR_SIZE, buf);
    }
    let first = offset / SECTOR_SIZE;
    let last = (offset + buf.len() as u64).div_ceil(SECTOR_SIZE);
    let mut tmp = vec![0u8; ((last - first) * SECTOR_SIZE) as usize];
    read_sectors(disk, parents, first, &mut tmp)?;
    let skip = (offset - first * SECTOR_SIZE) as usize;
    buf.copy_from_slice(&tmp[skip..skip + buf.len()]);
    Ok(())
}

/// Reads whole sectors; sectors beyond a (smaller) parent's size read as zeros.
pub(crate) fn read_sectors<I: BlockIo>(
    disk: &Disk<I>,
    parents: &[Disk<I>],
    sector: u64,
    buf: &mut [u8],
) -> Result<()> {
    let count = (buf.len() / SECTOR) as u64;
    let size_sectors = disk.size() / SECTOR_SIZE;
    let in_range = size_sectors.saturating_sub(sector).min(count);
    let (buf, beyond) = buf.split_at_mut(in_range as usize * SECTOR);
    beyond.fill(0);
    let Some(sparse) = &disk.sparse else {
        disk.io.read_at(sector * SECTOR_SIZE, buf)?;
        return Ok(());
    };
    let spb = sparse.header.sectors_per_block();
    let bitmap_size = sparse.bitmap_size();
    let mut done = 0;
    while done < in_range {
        let s = sector + done;
        let (block, within) = (s / spb, s % spb);
        let n = (spb - within).min(in_range - done);
        let chunk = &mut buf[(done as usize) * SECTOR..((done + n) as usize) * SECTOR];
        match sparse.bat.get(block) {
            None => fill_from_parent(disk, parents, s, chunk)?,
            Some(block_sector) => {
                let data_at = u64::from(block_sector) * SECTOR_SIZE + bitmap_size;
                let map = disk.block_bitmap(block)?;
                for (start, len, set) in bitmap::runs(&map, within, n) {
                    let from = ((start - within) as usize) * SECTOR;
                    let part = &mut chunk[from..from + len as usize * SECTOR];
                    if set {
                        disk.io.read_at(data_at + start * SECTOR_SIZE, part)?;
                    } else {
                        fill_from_parent(disk, parents, block * spb + start, part)?;
                    }
                }
            }
        }
        done += n;
    }
    Ok(())
}

fn fill_from_parent<I: BlockIo>(
    disk: &Disk<I>,
    parents: &[Disk<I>],
    sector: u64,
    chunk: &mut [u8],
) -> Result<()> {
    if disk.disk_type() != DiskType::Differencing {
        chunk.fill(0);
        return Ok(());
    }
    match parents.split_first() {
        Some((parent, rest)) => read_sectors(parent, rest, sector, chunk),
        None => Err(VhdError::NeedsParent),
    }
}

/// Writes bytes into `disk`; partial head and tail sectors are read through `parents`.
pub(crate) fn write_bytes<I: BlockIo>(
    disk: &mut Disk<I>,
    parents: &[Disk<I>],
    offset: u64,
    data: &[u8],
) -> Result<()> {
    check_range(disk.size(), offset, data.len())?;
    if data.is_empty() {
        return Ok(());
    }
    if offset % SECTOR_SIZE == 0 && data.len() % SECTOR == 0 {
        return disk.write_sectors(offset / SECTOR_SIZE, data);
    }
    let first = offset / SECTOR_SIZE;
    let last = (offset + data.len() as u64).div_ceil(SECTOR_SIZE);
    let mut tmp = vec![0u8; ((last - first) * SECTOR_SIZE) as usize];
    let tmp_len = tmp.len();
    read_sectors(disk, parents, first, &mut tmp[..SECTOR])?;
    if last - first > 1 {
        read_sectors(disk, parents, last - 1, &mut tmp[tmp_len - SECTOR..])?;
    }
    let skip = (offset - first * SECTOR_SIZE) as usize;
    tmp[skip..skip + data.len()].copy_from_slice(data);
    disk.write_sectors(first, &tmp)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use crate::io::MemIo;
    use crate::{Disk, VhdError};

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn unwritten_dynamic_disk_reads_zeros() {
        let disk = Disk::create_dynamic(MemIo::new(), 4 << 20).unwrap();
        let mut buf = vec![1u8; 4096];
        disk.read_at(3 << 20, &mut buf).unwrap();
        assert!(buf.iter().all(|b| *b == 0));
    }

    #[test]
    fn unaligned_write_across_blocks_round_trips() {
        let io = MemIo::new();
        let mut disk = Disk::create_dynamic(io.clone(), 8 << 20).unwrap();
        let data = pattern(3 << 20, 7);
        let offset = (1 << 20) + 333;
        disk.write_at(offset, &data).unwrap();
        let disk = Disk::open(io).unwrap();
        let mut back = vec![0u8; data.len() + 1000];
        disk.read_at(offset - 500, &mut back).unwrap();
        assert!(back[..500].iter().all(|b| *b == 0));
        assert_eq!(&back[500..500 + data.len()], &data[..]);
        assert!(back[500 + data.len()..].iter().all(|b| *b == 0));
    }

    #[test]
    fn interleaved_writes_into_two_blocks_keep_both_bitmaps() {
        // The last written block's bitmap is cached: switching blocks must not mix them up.
        let io = MemIo::new();
        let mut disk = Disk::create_dynamic(io.clone(), 8 << 20).unwrap();
        let block = 2 << 20;
        disk.write_at(0, &[1; 4096]).unwrap();
        disk.write_at(block + 8192, &[2; 4096]).unwrap();
        disk.write_at(65536, &[3; 4096]).unwrap();
        disk.write_at(block, &[4; 4096]).unwrap();
        let disk = Disk::open(io).unwrap();
        for (offset, value) in [(0, 1), (block + 8192, 2), (65536, 3), (block, 4)] {
            let mut buf = vec![0u8; 4096];
            disk.read_at(offset, &mut buf).unwrap();
            assert!(buf.iter().all(|b| *b == value), "at {offset}");
        }
        let mut gap = vec![9u8; 4096];
        disk.read_at(block + 4096, &mut gap).unwrap();
        assert!(gap.iter().all(|b| *b == 0));
    }

    #[test]
    fn fixed_disk_round_trips() {
        let mut disk = Disk::create_fixed(MemIo::new(), 3 << 20).unwrap();
        disk.write_at(12345, b"fixed").unwrap();
        let mut buf = [0u8; 5];
        disk.read_at(12345, &mut buf).unwrap();
        assert_eq!(&buf, b"fixed");
    }

    #[test]
    fn access_past_the_end_is_out_of_range() {
        let mut disk = Disk::create_dynamic(MemIo::new(), 2 << 20).unwrap();
        let err = disk.write_at((2 << 20) - 1, &[0, 0]).unwrap_err();
        assert!(matches!(err, VhdError::OutOfRange { .. }));
        let mut buf = [0u8; 1];
        assert!(disk.read_at(u64::MAX, &mut buf).is_err());
    }

    #[test]
    fn full_block_sets_the_batmap_bit() {
        let mut disk = Disk::create_dynamic(MemIo::new(), 4 << 20).unwrap();
        disk.write_at(0, &vec![3u8; 1 << 20]).unwrap();
        assert!(!disk.batmap().unwrap().test(0));
        disk.write_at(1 << 20, &vec![4u8; 1 << 20]).unwrap();
        assert!(disk.batmap().unwrap().test(0));
        assert!(!disk.batmap().unwrap().test(1));
    }

    #[test]
    fn sectors_present_follows_the_bitmap() {
        let mut disk = Disk::create_dynamic(MemIo::new(), 4 << 20).unwrap();
        disk.write_at(1024, &[9u8; 512]).unwrap();
        assert!(disk.sectors_present(2, 1).unwrap());
        assert!(!disk.sectors_present(1, 2).unwrap());
        assert!(!disk.sectors_present(5000, 1).unwrap());
    }
}
