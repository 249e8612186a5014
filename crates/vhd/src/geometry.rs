//! CHS disk geometry as the VHD specification computes it from a virtual size. Pure arithmetic.

use crate::SECTOR_SIZE;

/// The `Disk Geometry` footer field: cylinders, heads and sectors per track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Number of cylinders.
    pub cylinders: u16,
    /// Number of heads.
    pub heads: u8,
    /// Sectors per track.
    pub sectors_per_track: u8,
}

impl Geometry {
    /// The geometry the VHD specification assigns to a disk of `size` bytes (capped at
    /// 65535 x 16 x 255 sectors).
    pub fn for_size(size: u64) -> Self {
        let mut total = size / SECTOR_SIZE;
        if total > 65535 * 16 * 255 {
            total = 65535 * 16 * 255;
        }
        let (spt, heads, cyl_times_heads);
        if total >= 65535 * 16 * 63 {
            spt = 255;
            heads = 16;
            cyl_times_heads = total / spt;
        } else {
            let mut s = 17;
            let mut cth = total / s;
            let mut h = cth.div_ceil(1024);
            if h < 4 {
                h = 4;
            }
            if cth >= h * 1024 || h > 16 {
                s = 31;
                h = 16;
                cth = total / s;
            }
            if cth >= h * 1024 {
                s = 63;
                h = 16;
                cth = total / s;
            }
            spt = s;
            heads = h;
            cyl_times_heads = cth;
        }
        Self {
            // The caps above keep every value inside its field.
            cylinders: u16::try_from(cyl_times_heads / heads).unwrap_or(u16::MAX),
            heads: u8::try_from(heads).unwrap_or(u8::MAX),
            sectors_per_track: u8::try_from(spt).unwrap_or(u8::MAX),
        }
    }

    /// The size in bytes the geometry describes (what Virtual PC and qemu's `chs` mode use).
    pub fn size_bytes(&self) -> u64 {
        u64::from(self.cylinders)
            * u64::from(self.heads)
            * u64::from(self.sectors_per_track)
            * SECTOR_SIZE
    }

    /// Whether this is the largest encodable geometry, where the CHS size is meaningless.
    pub fn is_max(&self) -> bool {
        self.cylinders == 65535 && self.heads == 16 && self.sectors_per_track == 255
    }

    /// Packs into the on-disk 32-bit field.
    pub fn to_u32(self) -> u32 {
        (u32::from(self.cylinders) << 16)
            | (u32::from(self.heads) << 8)
            | u32::from(self.sectors_per_track)
    }

    /// Unpacks the on-disk 32-bit field.
    pub fn from_u32(raw: u32) -> Self {
        Self {
            cylinders: (raw >> 16) as u16,
            heads: (raw >> 8) as u8,
            sectors_per_track: raw as u8,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn small_disk_uses_17_sectors_and_4_heads() {
        // 10 MiB = 20480 sectors: 20480 / 17 = 1204 -> 4 heads, 301 cylinders.
        let g = Geometry::for_size(10 << 20);
        assert_eq!((g.cylinders, g.heads, g.sectors_per_track), (301, 4, 17));
    }

    #[test]
    fn large_disk_uses_63_then_255_sectors() {
        let g = Geometry::for_size(8 << 30);
        assert_eq!((g.heads, g.sectors_per_track), (16, 63));
        assert_eq!(g.cylinders, 16644);
        let g = Geometry::for_size(2040 << 30);
        assert_eq!((g.heads, g.sectors_per_track), (16, 255));
        assert!(g.size_bytes() <= 2040 << 30);
    }

    #[test]
    fn huge_disk_is_capped_at_max_geometry() {
        assert!(Geometry::for_size(u64::MAX).is_max());
    }

    #[test]
    fn packing_round_trips() {
        let g = Geometry::for_size(100 << 20);
        assert_eq!(Geometry::from_u32(g.to_u32()), g);
    }
}
