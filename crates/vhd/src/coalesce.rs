//! `coalesce`: copies every sector a child image holds itself (per its bitmaps) into its parent,
//! growing the parent first if the child is larger. Reads only the child, writes only the parent.

use crate::bitmap;
use crate::disk::Disk;
use crate::error::{Result, VhdError};
use crate::io::BlockIo;
use crate::SECTOR_SIZE;

/// Copies the allocated sectors of `child` into `parent`; returns the bytes copied. The caller
/// must make sure no other child of `parent` still relies on the overwritten sectors.
pub fn coalesce<I: BlockIo, J: BlockIo>(child: &Disk<I>, parent: &mut Disk<J>) -> Result<u64> {
    let sparse = child
        .sparse
        .as_ref()
        .ok_or(VhdError::WrongDiskType(child.disk_type().name()))?;
    if parent.size() < child.size() {
        parent.resize(child.size())?;
    }
    let spb = sparse.header.sectors_per_block();
    let data_skip = sparse.bitmap_size();
    let size_sectors = child.size() / SECTOR_SIZE;
    let mut copied = 0u64;
    let mut buf = Vec::new();
    let mut blocks: Vec<(u64, u32)> = sparse.bat.allocated().collect();
    // Sequential order on the child's file reads faster.
    blocks.sort_by_key(|(_, sector)| *sector);
    for (block, sector) in blocks {
        let map = child.block_bitmap(block)?;
        let first = block * spb;
        let count = spb.min(size_sectors.saturating_sub(first));
        let data_at = u64::from(sector) * SECTOR_SIZE + data_skip;
        for (start, len, set) in bitmap::runs(&map, 0, count) {
            if !set {
                continue;
            }
            buf.resize((len * SECTOR_SIZE) as usize, 0);
            child.io.read_at(data_at + start * SECTOR_SIZE, &mut buf)?;
            parent.write_sectors(first + start, &buf)?;
            copied += len * SECTOR_SIZE;
        }
    }
    parent.flush()?;
    Ok(copied)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;
    use crate::io::MemIo;
    use crate::ParentLink;

    #[test]
    fn only_allocated_sectors_are_copied_and_parent_grows() {
        let mut parent = Disk::create_dynamic(MemIo::new(), 2 << 20).unwrap();
        parent.write_at(0, &[7u8; 2048]).unwrap();
        let link = ParentLink {
            uuid: parent.uuid(),
            timestamp: 0,
            name: "p".into(),
            relative: "p".into(),
            absolute: "/p".into(),
        };
        let mut child = Disk::create_differencing(MemIo::new(), 4 << 20, &link).unwrap();
        child.write_sectors(1, &[9u8; 512]).unwrap();
        child.write_sectors(5000, &[8u8; 1024]).unwrap();
        let copied = coalesce(&child, &mut parent).unwrap();
        assert_eq!(copied, 1536);
        assert_eq!(parent.size(), 4 << 20);
        let mut buf = [0u8; 2048];
        parent.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf[..512], &[7u8; 512]);
        assert_eq!(&buf[512..1024], &[9u8; 512]);
        assert_eq!(&buf[1024..], &[7u8; 1024]);
        parent.read_at(5000 * 512, &mut buf[..1024]).unwrap();
        assert_eq!(&buf[..1024], &[8u8; 1024]);
    }

    #[test]
    fn fixed_child_is_refused() {
        let child = Disk::create_fixed(MemIo::new(), 1 << 20).unwrap();
        let mut parent = Disk::create_dynamic(MemIo::new(), 2 << 20).unwrap();
        assert!(coalesce(&child, &mut parent).is_err());
    }
}
