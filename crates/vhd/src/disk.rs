//! `Disk`: one opened VHD image (fixed, dynamic or differencing) over a `BlockIo`. Owns opening
//! with validation, the in-memory copies of footer, header, BAT and batmap, writing those
//! structures back, and the simple queries (sizes, hidden flag, parent link). Reading and writing
//! data lives in `data.rs`, creation and relinking in `create.rs`, growing in `resize.rs`.

use uuid::Uuid;

use crate::bat::Bat;
use crate::batmap::{Batmap, BATMAP_HEADER_SIZE};
use crate::error::{Result, VhdError};
use crate::footer::{DiskType, Footer, FOOTER_SIZE};
use crate::header::{DynamicHeader, HEADER_SIZE};
use crate::io::BlockIo;
use crate::locator::{self, PlatformCode};
use crate::{MAX_OPEN_SIZE, SECTOR_SIZE};

/// Largest BAT accepted when opening (4 Mi entries, a 16 MiB table): enough for 2 TiB in 512 KiB
/// blocks, and a bound on what a corrupt header can make us allocate.
pub const MAX_BAT_ENTRIES: u32 = 4 << 20;
/// Largest parent locator read (bytes); real ones are a few hundred bytes.
const MAX_LOCATOR_READ: u64 = 64 << 10;

/// Metadata of a dynamic or differencing disk.
#[derive(Debug, Clone)]
pub(crate) struct Sparse {
    pub(crate) header_offset: u64,
    pub(crate) header: DynamicHeader,
    pub(crate) bat: Bat,
    pub(crate) batmap: Option<Batmap>,
}

impl Sparse {
    /// Offset of the batmap header: right after the sector-padded BAT, as blktap places it.
    pub(crate) fn batmap_header_offset(&self) -> u64 {
        self.header.table_offset + Bat::padded_size(self.header.max_table_entries)
    }

    /// Bytes of one block's bitmap.
    pub(crate) fn bitmap_size(&self) -> u64 {
        self.header.bitmap_size()
    }

    /// Bytes a block occupies in the file: bitmap plus data.
    pub(crate) fn block_span(&self) -> u64 {
        self.bitmap_size() + u64::from(self.header.block_size)
    }
}

/// One VHD image. See the crate documentation for the single-writer rules.
#[derive(Debug)]
pub struct Disk<I> {
    pub(crate) io: I,
    pub(crate) footer: Footer,
    pub(crate) sparse: Option<Sparse>,
    /// Where the trailing footer is; new blocks are allocated here.
    pub(crate) footer_offset: u64,
    pub(crate) footer_from_backup: bool,
    /// The sector bitmap of the block last written, `(block, its BAT sector, bitmap)`, so
    /// runs of writes into one block skip re-reading it (it is written through on change).
    pub(crate) last_bitmap: Option<(u64, u32, Vec<u8>)>,
}

fn corrupt(what: impl Into<String>) -> VhdError {
    VhdError::Corrupt(what.into())
}

impl<I: BlockIo> Disk<I> {
    /// Opens and validates an image: footer (falling back to the copy at offset 0 when the
    /// trailing one is damaged), dynamic header, BAT bounds and the blktap batmap.
    pub fn open(io: I) -> Result<Self> {
        let len = io.len()?;
        if len < FOOTER_SIZE as u64 {
            return Err(corrupt("file is shorter than a footer"));
        }
        let footer_offset = len - FOOTER_SIZE as u64;
        let mut buf = [0u8; FOOTER_SIZE];
        io.read_at(footer_offset, &mut buf)?;
        let (footer, footer_from_backup) = match Footer::parse(&buf) {
            Ok(footer) => (footer, false),
            Err(err) => {
                io.read_at(0, &mut buf)?;
                match Footer::parse(&buf) {
                    Ok(backup) if backup.disk_type.is_sparse() && len >= 1024 => (backup, true),
                    _ => return Err(err),
                }
            }
        };
        if footer.current_size % SECTOR_SIZE != 0 {
            return Err(VhdError::Unsupported {
                what: "virtual size not a multiple of 512",
                value: footer.current_size,
            });
        }
        if footer.current_size > MAX_OPEN_SIZE {
            return Err(VhdError::Unsupported {
                what: "virtual size",
                value: footer.current_size,
            });
        }
        let sparse = match footer.disk_type {
            DiskType::Fixed => {
                if footer.current_size > footer_offset {
                    return Err(corrupt("fixed disk is shorter than its virtual size"));
                }
                None
            }
            DiskType::Dynamic | DiskType::Differencing => {
                Some(load_sparse(&io, &footer, footer_offset)?)
            }
        };
        Ok(Self {
            io,
            footer,
            sparse,
            footer_offset,
            footer_from_backup,
            last_bitmap: None,
        })
    }

    /// The virtual size in bytes (`Current Size`).
    pub fn size(&self) -> u64 {
        self.footer.current_size
    }

    /// The disk type.
    pub fn disk_type(&self) -> DiskType {
        self.footer.disk_type
    }

    /// The footer as held in memory.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The dynamic header, for dynamic and differencing disks.
    pub fn header(&self) -> Option<&DynamicHeader> {
        self.sparse.as_ref().map(|sparse| &sparse.header)
    }

    /// The batmap, if the image carries one.
    pub fn batmap(&self) -> Option<&Batmap> {
        self.sparse
            .as_ref()
            .and_then(|sparse| sparse.batmap.as_ref())
    }

    /// The footer `Unique Id`.
    pub fn uuid(&self) -> Uuid {
        self.footer.uuid
    }

    /// The parent uuid recorded in a differencing disk.
    pub fn parent_uuid(&self) -> Option<Uuid> {
        match (self.footer.disk_type, &self.sparse) {
            (DiskType::Differencing, Some(sparse)) => Some(sparse.header.parent_uuid),
            _ => None,
        }
    }

    /// The `Parent Unicode Name` of a differencing disk.
    pub fn parent_name(&self) -> Option<String> {
        match (self.footer.disk_type, &self.sparse) {
            (DiskType::Differencing, Some(sparse)) => Some(sparse.header.parent_name()),
            _ => None,
        }
    }

    /// The decodable parent locators of a differencing disk, in slot order.
    pub fn parent_locators(&self) -> Result<Vec<(PlatformCode, String)>> {
        let mut out = Vec::new();
        let Some(sparse) = &self.sparse else {
            return Ok(out);
        };
        if self.footer.disk_type != DiskType::Differencing {
            return Ok(out);
        }
        let len = self.io.len()?;
        for entry in &sparse.header.locators {
            let code = entry.platform();
            if !code.is_supported() {
                continue;
            }
            let data_len = u64::from(entry.data_len);
            let in_file = entry
                .data_offset
                .checked_add(data_len)
                .is_some_and(|end| end <= len);
            if data_len == 0 || data_len > MAX_LOCATOR_READ || !in_file {
                continue;
            }
            let mut data = vec![0u8; data_len as usize];
            self.io.read_at(entry.data_offset, &mut data)?;
            if let Some(path) = locator::decode(code, &data) {
                out.push((code, path));
            }
        }
        Ok(out)
    }

    /// blktap's hidden flag (footer byte 85).
    pub fn hidden(&self) -> bool {
        self.footer.hidden != 0
    }

    /// Sets or clears the hidden flag in both footer copies.
    pub fn set_hidden(&mut self, hidden: bool) -> Result<()> {
        self.footer.hidden = u8::from(hidden);
        self.write_footers()
    }

    /// Bytes the image occupies (the file length): the physical utilisation.
    pub fn physical_size(&self) -> Result<u64> {
        Ok(self.io.len()?)
    }

    /// Number of allocated blocks (every block of a fixed disk counts).
    pub fn allocated_blocks(&self) -> u64 {
        match &self.sparse {
            Some(sparse) => sparse.bat.allocated().count() as u64,
            None => self.size().div_ceil(crate::BLOCK_SIZE),
        }
    }

    /// Bytes of virtual address space backed by allocated blocks in this image alone.
    pub fn allocated_size(&self) -> u64 {
        match &self.sparse {
            Some(sparse) => self.allocated_blocks() * u64::from(sparse.header.block_size),
            None => self.size(),
        }
    }

    /// The block size (2 MiB for images we create; the whole disk is one "block" when fixed).
    pub fn block_size(&self) -> u64 {
        match &self.sparse {
            Some(sparse) => u64::from(sparse.header.block_size),
            None => crate::BLOCK_SIZE,
        }
    }

    /// Whether block `index` has storage in this image.
    pub fn is_block_allocated(&self, index: u64) -> bool {
        match &self.sparse {
            Some(sparse) => sparse.bat.get(index).is_some(),
            None => index < self.size().div_ceil(crate::BLOCK_SIZE),
        }
    }

    /// Whether the trailing footer was damaged and the copy at offset 0 was used.
    pub fn footer_from_backup(&self) -> bool {
        self.footer_from_backup
    }

    /// The size the CHS geometry describes, which Virtual PC and qemu (for its own `qemu`
    /// images) report instead of `Current Size`; we always use `Current Size`.
    pub fn chs_size(&self) -> u64 {
        self.footer.geometry.size_bytes()
    }

    /// Makes all writes durable.
    pub fn flush(&mut self) -> Result<()> {
        Ok(self.io.flush()?)
    }

    /// The underlying storage.
    pub fn io(&self) -> &I {
        &self.io
    }

    /// Gives the storage back.
    pub fn into_io(self) -> I {
        self.io
    }

    /// Writes the footer at the end and, for sparse disks, its copy at offset 0.
    pub(crate) fn write_footers(&mut self) -> Result<()> {
        let bytes = self.footer.to_bytes();
        if self.sparse.is_some() {
            self.io.write_at(0, &bytes)?;
        }
        self.io.write_at(self.footer_offset, &bytes)?;
        self.footer_from_backup = false;
        Ok(())
    }

    /// Writes the dynamic header.
    pub(crate) fn write_header(&mut self) -> Result<()> {
        if let Some(sparse) = &self.sparse {
            let bytes = sparse.header.to_bytes();
            self.io.write_at(sparse.header_offset, &bytes)?;
        }
        Ok(())
    }

    /// Writes one BAT entry.
    pub(crate) fn write_bat_entry(&mut self, block: u64) -> Result<()> {
        if let Some(sparse) = &self.sparse {
            let value = sparse.bat.get(block).unwrap_or(crate::bat::UNUSED);
            let at = sparse.header.table_offset + 4 * block;
            self.io.write_at(at, &value.to_be_bytes())?;
        }
        Ok(())
    }

    /// Writes the whole BAT.
    pub(crate) fn write_bat(&mut self) -> Result<()> {
        if let Some(sparse) = &self.sparse {
            let bytes = sparse.bat.to_bytes();
            self.io.write_at(sparse.header.table_offset, &bytes)?;
        }
        Ok(())
    }

    /// Writes the batmap map and then its header (with a fresh checksum).
    pub(crate) fn write_batmap(&mut self) -> Result<()> {
        if let Some(sparse) = &mut self.sparse {
            let at = sparse.batmap_header_offset();
            if let Some(batmap) = &mut sparse.batmap {
                self.io.write_at(batmap.offset, &batmap.map)?;
                let header = batmap.header_bytes();
                self.io.write_at(at, &header)?;
            }
        }
        Ok(())
    }

    /// Where the next block goes: the trailing footer's sector, which it overwrites.
    pub(crate) fn next_free(&self) -> u64 {
        self.footer_offset.div_ceil(SECTOR_SIZE) * SECTOR_SIZE
    }

    pub(crate) fn sparse(&self) -> Result<&Sparse> {
        self.sparse
            .as_ref()
            .ok_or(VhdError::WrongDiskType(self.footer.disk_type.name()))
    }
}

/// Reads and bounds-checks the dynamic header, BAT and batmap.
fn load_sparse<I: BlockIo>(io: &I, footer: &Footer, footer_offset: u64) -> Result<Sparse> {
    let header_offset = footer.data_offset;
    let header_end = header_offset
        .checked_add(HEADER_SIZE as u64)
        .filter(|end| *end <= footer_offset)
        .ok_or_else(|| corrupt("dynamic header offset outside the file"))?;
    let mut buf = [0u8; HEADER_SIZE];
    io.read_at(header_offset, &mut buf)?;
    let header = DynamicHeader::parse(&buf)?;
    let entries = header.max_table_entries;
    if entries > MAX_BAT_ENTRIES {
        return Err(VhdError::Unsupported {
            what: "BAT entries",
            value: u64::from(entries),
        });
    }
    if u64::from(entries) * u64::from(header.block_size) < footer.current_size {
        return Err(corrupt("BAT too small for the virtual size"));
    }
    let table_bytes = u64::from(entries) * 4;
    let table_end = header
        .table_offset
        .checked_add(table_bytes)
        .filter(|end| *end <= footer_offset)
        .ok_or_else(|| corrupt("BAT outside the file"))?;
    if header.table_offset < header_end && table_end > header_offset {
        return Err(corrupt("BAT overlaps the dynamic header"));
    }
    // Bounded above by MAX_BAT_ENTRIES and by the file length.
    let mut raw = vec![0u8; table_bytes as usize];
    io.read_at(header.table_offset, &mut raw)?;
    let bat = Bat::parse(&raw, entries);
    let span = header.bitmap_size() + u64::from(header.block_size);
    for (block, sector) in bat.allocated() {
        let start = u64::from(sector) * SECTOR_SIZE;
        if start + span > footer_offset {
            return Err(corrupt(format!(
                "block {block} at sector {sector} extends past the footer"
            )));
        }
    }
    let mut sparse = Sparse {
        header_offset,
        header,
        bat,
        batmap: None,
    };
    sparse.batmap = load_batmap(io, footer, &sparse, footer_offset)?;
    Ok(sparse)
}

/// Reads blktap's batmap when the image is blktap's and the header cookie is present.
fn load_batmap<I: BlockIo>(
    io: &I,
    footer: &Footer,
    sparse: &Sparse,
    footer_offset: u64,
) -> Result<Option<Batmap>> {
    if !footer.is_tap() || footer.creator_version <= 0x0000_0001 {
        return Ok(None);
    }
    let at = sparse.batmap_header_offset();
    if at + BATMAP_HEADER_SIZE as u64 > footer_offset {
        return Ok(None);
    }
    let mut buf = [0u8; BATMAP_HEADER_SIZE];
    io.read_at(at, &mut buf)?;
    let mut batmap = match Batmap::parse_header(&buf) {
        Ok(batmap) => batmap,
        Err(VhdError::BadCookie { .. }) => return Ok(None),
        Err(err) => return Err(err),
    };
    let needed = Batmap::sectors_for(sparse.header.max_table_entries);
    if batmap.size_sectors < needed || batmap.size_sectors > needed + 8 {
        return Err(corrupt("batmap size does not match the BAT"));
    }
    batmap
        .offset
        .checked_add(batmap.map_bytes())
        .filter(|end| *end <= footer_offset)
        .ok_or_else(|| corrupt("batmap outside the file"))?;
    let mut map = vec![0u8; batmap.map_bytes() as usize];
    io.read_at(batmap.offset, &mut map)?;
    batmap.set_map(map);
    if !batmap.checksum_ok() {
        return Err(VhdError::BadChecksum {
            structure: "batmap",
            stored: batmap.checksum,
            computed: batmap.compute_checksum(),
        });
    }
    Ok(Some(batmap))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;
    use crate::io::MemIo;

    fn dynamic(size: u64) -> (Disk<MemIo>, MemIo) {
        let io = MemIo::new();
        let disk = Disk::create_dynamic(io.clone(), size).unwrap();
        (disk, io)
    }

    #[test]
    fn open_reads_back_a_created_dynamic_disk() {
        let (disk, io) = dynamic(10 << 20);
        let reopened = Disk::open(io).unwrap();
        assert_eq!(reopened.size(), 10 << 20);
        assert_eq!(reopened.uuid(), disk.uuid());
        assert!(reopened.batmap().is_some());
        assert!(!reopened.footer_from_backup());
    }

    #[test]
    fn damaged_trailing_footer_falls_back_to_the_copy() {
        let (_disk, io) = dynamic(4 << 20);
        let mut bytes = io.to_vec();
        let end = bytes.len();
        bytes[end - 500] ^= 0xff;
        let disk = Disk::open(MemIo::from_vec(bytes)).unwrap();
        assert!(disk.footer_from_backup());
    }

    #[test]
    fn hidden_flag_is_persisted_in_both_footers() {
        let (mut disk, io) = dynamic(2 << 20);
        disk.set_hidden(true).unwrap();
        let bytes = io.to_vec();
        assert_eq!(bytes[85], 1);
        assert_eq!(bytes[bytes.len() - 512 + 85], 1);
        assert!(Disk::open(io).unwrap().hidden());
    }

    #[test]
    fn virtual_size_is_current_size_even_when_chs_says_less() {
        let (disk, io) = dynamic(10 << 20);
        let mut footer = disk.footer().clone();
        footer.creator_app = *b"vpc ";
        let mut bytes = io.to_vec();
        let end = bytes.len();
        bytes[..512].copy_from_slice(&footer.to_bytes());
        bytes[end - 512..].copy_from_slice(&footer.to_bytes());
        let disk = Disk::open(MemIo::from_vec(bytes)).unwrap();
        assert_eq!(disk.size(), 10 << 20);
        assert_eq!(disk.chs_size(), 301 * 4 * 17 * 512);
    }

    #[test]
    fn tiny_file_is_an_error() {
        assert!(Disk::open(MemIo::from_vec(vec![0; 100])).is_err());
    }

    #[test]
    fn huge_bat_entry_count_is_refused_without_allocating() {
        let (disk, io) = dynamic(2 << 20);
        let mut header = disk.header().unwrap().clone();
        header.max_table_entries = u32::MAX;
        let mut bytes = io.to_vec();
        bytes[512..1536].copy_from_slice(&header.to_bytes());
        assert!(matches!(
            Disk::open(MemIo::from_vec(bytes)),
            Err(VhdError::Unsupported { .. })
        ));
    }

    #[test]
    fn bat_entry_past_the_end_is_corrupt() {
        let (disk, io) = dynamic(2 << 20);
        let mut bytes = io.to_vec();
        let at = disk.header().unwrap().table_offset as usize;
        bytes[at..at + 4].copy_from_slice(&0x0010_0000u32.to_be_bytes());
        assert!(matches!(
            Disk::open(MemIo::from_vec(bytes)),
            Err(VhdError::Corrupt(_))
        ));
    }

    #[test]
    fn allocation_queries_count_blocks() {
        let (mut disk, _io) = dynamic(8 << 20);
        assert_eq!(disk.allocated_blocks(), 0);
        disk.write_at(5 << 20, &[1u8; 10]).unwrap();
        assert_eq!(disk.allocated_blocks(), 1);
        assert_eq!(disk.allocated_size(), 2 << 20);
        assert!(disk.is_block_allocated(2));
        assert!(!disk.is_block_allocated(0));
    }
}
