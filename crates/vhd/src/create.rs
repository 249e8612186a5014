//! Creating images (dynamic, fixed, differencing) with blktap's layout — footer copy, header,
//! BAT, batmap, parent locators, then data — and rewriting a differencing disk's parent link.
//! Works on any `BlockIo`; path handling lives in `files.rs`.

use crate::bat::Bat;
use crate::batmap::{Batmap, BATMAP_HEADER_SIZE};
use crate::disk::{Disk, Sparse};
use crate::error::{Result, VhdError};
use crate::footer::{DiskType, Footer, FOOTER_SIZE, NO_DATA_OFFSET};
use crate::header::{DynamicHeader, LocatorEntry, HEADER_SIZE};
use crate::io::BlockIo;
use crate::locator::{self, ParentLink, PlatformCode, MIN_LOCATOR_SPACE};
use crate::{BLOCK_SIZE, MAX_VIRTUAL_SIZE, SECTOR_SIZE};

/// The locators we write, in blktap's slot order.
const LOCATOR_CODES: [PlatformCode; 3] =
    [PlatformCode::MacX, PlatformCode::W2ku, PlatformCode::W2ru];

pub(crate) fn validate_size(size: u64) -> Result<()> {
    if size == 0 {
        return Err(VhdError::InvalidSize {
            size,
            reason: "must not be zero",
        });
    }
    if size % SECTOR_SIZE != 0 {
        return Err(VhdError::InvalidSize {
            size,
            reason: "must be a multiple of 512",
        });
    }
    if size > MAX_VIRTUAL_SIZE {
        return Err(VhdError::InvalidSize {
            size,
            reason: "above the 2040 GiB maximum",
        });
    }
    Ok(())
}

/// Rounds up to whole sectors.
pub(crate) fn sector_padded(bytes: u64) -> u64 {
    bytes.div_ceil(SECTOR_SIZE) * SECTOR_SIZE
}

/// Locator data for `link` for one platform code: absolute for `W2ku`, relative otherwise.
pub(crate) fn locator_data(code: PlatformCode, link: &ParentLink) -> Result<Vec<u8>> {
    let path = if code == PlatformCode::W2ku {
        &link.absolute
    } else {
        &link.relative
    };
    locator::encode(code, path)
}

impl<I: BlockIo> Disk<I> {
    /// Creates a dynamic disk of `size` bytes (a multiple of 512, at most 2040 GiB) in `io`,
    /// replacing its content.
    pub fn create_dynamic(io: I, size: u64) -> Result<Self> {
        create_sparse(io, DiskType::Dynamic, size, None)
    }

    /// Creates a differencing disk of `size` bytes whose parent is described by `link`.
    pub fn create_differencing(io: I, size: u64, link: &ParentLink) -> Result<Self> {
        create_sparse(io, DiskType::Differencing, size, Some(link))
    }

    /// Creates a fixed disk: `size` bytes of zeros (sparse where the storage allows) and a footer.
    pub fn create_fixed(mut io: I, size: u64) -> Result<Self> {
        validate_size(size)?;
        let footer = Footer::new(DiskType::Fixed, size, NO_DATA_OFFSET);
        io.set_len(0)?;
        io.set_len(size)?;
        io.write_at(size, &footer.to_bytes())?;
        Ok(Self {
            io,
            footer,
            sparse: None,
            footer_offset: size,
            footer_from_backup: false,
            last_bitmap: None,
        })
    }

    /// `relink`: points a differencing disk at a new parent, rewriting the locators in place,
    /// the parent uuid, timestamp and unicode name. Fails without changing anything when a
    /// locator no longer fits its reserved space.
    pub fn set_parent(&mut self, link: &ParentLink) -> Result<()> {
        if self.footer.disk_type != DiskType::Differencing {
            return Err(VhdError::WrongDiskType(self.footer.disk_type.name()));
        }
        let mut header = self.sparse()?.header.clone();
        header.set_parent_name(&link.name)?;
        let mut writes = Vec::new();
        for entry in header.locators.iter_mut() {
            let code = entry.platform();
            if !code.is_supported() {
                continue;
            }
            let data = locator_data(code, link)?;
            let padded = sector_padded(data.len() as u64);
            let space = entry.space_bytes();
            if padded > space {
                return Err(VhdError::LocatorTooLong {
                    needed: data.len() as u64,
                    space,
                });
            }
            let inside = entry
                .data_offset
                .checked_add(padded)
                .is_some_and(|end| end <= self.footer_offset);
            if !inside || entry.data_offset < FOOTER_SIZE as u64 {
                return Err(VhdError::Corrupt(format!(
                    "parent locator at offset {} lies outside the metadata area",
                    entry.data_offset
                )));
            }
            entry.data_len = data.len() as u32;
            let mut block = data;
            block.resize(padded as usize, 0);
            writes.push((entry.data_offset, block));
        }
        header.parent_uuid = link.uuid;
        header.parent_timestamp = link.timestamp;
        for (at, block) in writes {
            self.io.write_at(at, &block)?;
        }
        if let Some(sparse) = &mut self.sparse {
            sparse.header = header;
        }
        self.write_header()
    }
}

fn create_sparse<I: BlockIo>(
    mut io: I,
    disk_type: DiskType,
    size: u64,
    link: Option<&ParentLink>,
) -> Result<Disk<I>> {
    validate_size(size)?;
    let entries = u32::try_from(size.div_ceil(BLOCK_SIZE)).map_err(|_| VhdError::InvalidSize {
        size,
        reason: "too many blocks",
    })?;
    let footer = Footer::new(disk_type, size, FOOTER_SIZE as u64);
    let table_offset = (FOOTER_SIZE + HEADER_SIZE) as u64;
    let mut header = DynamicHeader::new(table_offset, entries, BLOCK_SIZE as u32);
    let batmap_header_at = table_offset + Bat::padded_size(entries);
    let batmap = Batmap::new(batmap_header_at + BATMAP_HEADER_SIZE as u64, entries);
    let mut next = batmap.offset + batmap.map_bytes();
    let mut locator_blocks = Vec::new();
    if let Some(link) = link {
        header.parent_uuid = link.uuid;
        header.parent_timestamp = link.timestamp;
        header.set_parent_name(&link.name)?;
        for (slot, code) in LOCATOR_CODES.iter().enumerate() {
            let data = locator_data(*code, link)?;
            let space = sector_padded(data.len() as u64).max(MIN_LOCATOR_SPACE);
            header.locators[slot] = LocatorEntry {
                code: code.code(),
                // Bytes rather than sectors, as blktap and Microsoft write it.
                data_space: u32::try_from(space)
                    .map_err(|_| VhdError::InvalidPath(link.relative.clone()))?,
                data_len: data.len() as u32,
                reserved: 0,
                data_offset: next,
            };
            let mut block = data;
            block.resize(space as usize, 0);
            locator_blocks.push((next, block));
            next += space;
        }
    }
    let bat = Bat::new(entries);
    let mut sparse = Sparse {
        header_offset: FOOTER_SIZE as u64,
        header,
        bat,
        batmap: Some(batmap),
    };
    io.set_len(0)?;
    let footer_bytes = footer.to_bytes();
    io.write_at(0, &footer_bytes)?;
    io.write_at(sparse.header_offset, &sparse.header.to_bytes())?;
    io.write_at(table_offset, &sparse.bat.to_bytes())?;
    if let Some(batmap) = &mut sparse.batmap {
        io.write_at(batmap.offset, &batmap.map)?;
        io.write_at(batmap_header_at, &batmap.header_bytes())?;
    }
    for (at, block) in &locator_blocks {
        io.write_at(*at, block)?;
    }
    io.write_at(next, &footer_bytes)?;
    Ok(Disk {
        io,
        footer,
        sparse: Some(sparse),
        footer_offset: next,
        footer_from_backup: false,
        last_bitmap: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;
    use crate::io::MemIo;

    fn link(uuid: uuid::Uuid) -> ParentLink {
        ParentLink {
            uuid,
            timestamp: 42,
            name: "base.vhd".into(),
            relative: "base.vhd".into(),
            absolute: "/sr/base.vhd".into(),
        }
    }

    #[test]
    fn dynamic_layout_follows_blktap() {
        let io = MemIo::new();
        let disk = Disk::create_dynamic(io.clone(), 10 << 20).unwrap();
        let bytes = io.to_vec();
        assert_eq!(&bytes[0..8], b"conectix");
        assert_eq!(&bytes[512..520], b"cxsparse");
        assert_eq!(disk.header().unwrap().table_offset, 1536);
        assert_eq!(disk.header().unwrap().max_table_entries, 5);
        // BAT (one sector), then the batmap header and one sector of map, then the footer.
        assert_eq!(&bytes[2048..2056], b"tdbatmap");
        assert_eq!(bytes.len(), 2048 + 512 + 512 + 512);
        assert_eq!(&bytes[..512], &bytes[bytes.len() - 512..]);
    }

    #[test]
    fn differencing_disk_records_parent_and_three_locators() {
        let parent = uuid::Uuid::new_v4();
        let disk = Disk::create_differencing(MemIo::new(), 4 << 20, &link(parent)).unwrap();
        assert_eq!(disk.parent_uuid(), Some(parent));
        assert_eq!(disk.parent_name().as_deref(), Some("base.vhd"));
        let locators = disk.parent_locators().unwrap();
        assert_eq!(
            locators,
            vec![
                (PlatformCode::MacX, "./base.vhd".to_owned()),
                (PlatformCode::W2ku, "/sr/base.vhd".to_owned()),
                (PlatformCode::W2ru, "./base.vhd".to_owned()),
            ]
        );
        let entry = disk.header().unwrap().locators[1];
        assert_eq!(u64::from(entry.data_space), MIN_LOCATOR_SPACE);
    }

    #[test]
    fn set_parent_rewrites_locators_and_uuid() {
        let io = MemIo::new();
        let mut disk =
            Disk::create_differencing(io.clone(), 4 << 20, &link(uuid::Uuid::new_v4())).unwrap();
        let new_parent = uuid::Uuid::new_v4();
        let mut new_link = link(new_parent);
        new_link.name = "other.vhd".into();
        new_link.relative = "../x/other.vhd".into();
        new_link.absolute = "/x/other.vhd".into();
        disk.set_parent(&new_link).unwrap();
        let reopened = Disk::open(io).unwrap();
        assert_eq!(reopened.parent_uuid(), Some(new_parent));
        assert_eq!(reopened.parent_name().as_deref(), Some("other.vhd"));
        assert_eq!(
            reopened.parent_locators().unwrap()[0],
            (PlatformCode::MacX, "../x/other.vhd".to_owned())
        );
    }

    #[test]
    fn overlong_relink_is_refused() {
        let mut disk =
            Disk::create_differencing(MemIo::new(), 4 << 20, &link(uuid::Uuid::new_v4())).unwrap();
        let mut long = link(uuid::Uuid::new_v4());
        long.absolute = format!("/{}", "d/".repeat(2000));
        assert!(matches!(
            disk.set_parent(&long),
            Err(VhdError::LocatorTooLong { .. })
        ));
    }

    #[test]
    fn relink_with_a_locator_pointing_past_the_end_is_refused() {
        let io = MemIo::new();
        let mut disk =
            Disk::create_differencing(io.clone(), 4 << 20, &link(uuid::Uuid::new_v4())).unwrap();
        disk.sparse.as_mut().unwrap().header.locators[0].data_offset = 1 << 40;
        let len = io.to_vec().len();
        assert!(matches!(
            disk.set_parent(&link(uuid::Uuid::new_v4())),
            Err(VhdError::Corrupt(_))
        ));
        assert_eq!(io.to_vec().len(), len);
    }

    #[test]
    fn sizes_are_validated() {
        assert!(Disk::create_dynamic(MemIo::new(), 0).is_err());
        assert!(Disk::create_dynamic(MemIo::new(), 1000).is_err());
        assert!(Disk::create_dynamic(MemIo::new(), MAX_VIRTUAL_SIZE + 512).is_err());
        let disk = Disk::create_dynamic(MemIo::new(), MAX_VIRTUAL_SIZE).unwrap();
        assert_eq!(disk.header().unwrap().max_table_entries, 2040 * 512);
    }

    #[test]
    fn fixed_disk_is_data_then_footer() {
        let io = MemIo::new();
        Disk::create_fixed(io.clone(), 1 << 20).unwrap();
        let bytes = io.to_vec();
        assert_eq!(bytes.len(), (1 << 20) + 512);
        assert_eq!(&bytes[1 << 20..(1 << 20) + 8], b"conectix");
        let disk = Disk::open(io).unwrap();
        assert_eq!(disk.disk_type(), DiskType::Fixed);
    }
}
