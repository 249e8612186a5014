//! `check`: validates every structure of an image straight from its `BlockIo` and lists all the
//! problems found rather than stopping at the first: both footer copies and their agreement,
//! checksums, header fields, BAT entries inside the file and not overlapping metadata or each
//! other, readable bitmaps, batmap agreement, and parent locators. Never writes.

use std::fmt;

use crate::bat::Bat;
use crate::batmap::{Batmap, BATMAP_HEADER_SIZE};
use crate::bitmap;
use crate::disk::MAX_BAT_ENTRIES;
use crate::error::Result;
use crate::footer::{DiskType, Footer, FEATURE_RESERVED, FOOTER_SIZE};
use crate::header::{DynamicHeader, HEADER_SIZE};
use crate::io::BlockIo;
use crate::locator;
use crate::SECTOR_SIZE;

/// The outcome of [`check`]: a list of problems, empty for a sound image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub(crate) fn add(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problems.is_empty() {
            return write!(f, "ok");
        }
        write!(f, "{}", self.problems.join("; "))
    }
}

/// Validates the image in `io`. I/O failures are errors; format problems go into the report.
pub fn check<I: BlockIo>(io: &I) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let len = io.len()?;
    if len < FOOTER_SIZE as u64 {
        report.add("file is shorter than a footer");
        return Ok(report);
    }
    let footer_offset = len - FOOTER_SIZE as u64;
    let mut end_bytes = [0u8; FOOTER_SIZE];
    io.read_at(footer_offset, &mut end_bytes)?;
    let footer = match Footer::parse(&end_bytes) {
        Ok(footer) => footer,
        Err(err) => {
            report.add(format!("trailing footer: {err}"));
            return Ok(report);
        }
    };
    if footer.current_size % SECTOR_SIZE != 0 {
        report.add("virtual size is not a multiple of 512");
    }
    if footer.features & FEATURE_RESERVED == 0 {
        report.add("footer reserved feature bit is clear");
    }
    if footer.hidden > 1 {
        report.add(format!(
            "footer hidden byte is {}, not 0 or 1",
            footer.hidden
        ));
    }
    if footer.uuid.is_nil() {
        report.add("footer uuid is nil");
    }
    match footer.disk_type {
        DiskType::Fixed => {
            if footer.current_size > footer_offset {
                report.add("fixed disk is shorter than its virtual size");
            }
        }
        DiskType::Dynamic | DiskType::Differencing => {
            let mut start_bytes = [0u8; FOOTER_SIZE];
            io.read_at(0, &mut start_bytes)?;
            match Footer::parse(&start_bytes) {
                Err(err) => report.add(format!("footer copy at offset 0: {err}")),
                Ok(_) if start_bytes != end_bytes => {
                    report.add("footer copy at offset 0 differs from the trailing footer");
                }
                Ok(_) => {}
            }
            check_sparse(io, &footer, footer_offset, &mut report)?;
        }
    }
    Ok(report)
}

fn check_sparse<I: BlockIo>(
    io: &I,
    footer: &Footer,
    footer_offset: u64,
    report: &mut CheckReport,
) -> Result<()> {
    let header_at = footer.data_offset;
    if header_at
        .checked_add(HEADER_SIZE as u64)
        .map_or(true, |end| end > footer_offset)
    {
        report.add("dynamic header offset outside the file");
        return Ok(());
    }
    let mut buf = [0u8; HEADER_SIZE];
    io.read_at(header_at, &mut buf)?;
    let header = match DynamicHeader::parse(&buf) {
        Ok(header) => header,
        Err(err) => {
            report.add(format!("dynamic header: {err}"));
            return Ok(());
        }
    };
    if header.table_offset % SECTOR_SIZE != 0 {
        report.add("BAT offset is not sector aligned");
    }
    if footer.disk_type != DiskType::Differencing
        && (!header.parent_uuid.is_nil() || header.locators.iter().any(|l| l.code != 0))
    {
        report.add("dynamic disk carries parent uuid or parent locators");
    }
    let entries = header.max_table_entries;
    if entries > MAX_BAT_ENTRIES {
        report.add(format!(
            "BAT has {entries} entries, above the supported maximum"
        ));
        return Ok(());
    }
    if u64::from(entries) * u64::from(header.block_size) < footer.current_size {
        report.add("BAT too small for the virtual size");
    }
    let Some(table_end) = header
        .table_offset
        .checked_add(u64::from(entries) * 4)
        .filter(|end| *end <= footer_offset)
    else {
        report.add("BAT outside the file");
        return Ok(());
    };
    let mut raw = vec![0u8; (u64::from(entries) * 4) as usize];
    io.read_at(header.table_offset, &mut raw)?;
    let bat = Bat::parse(&raw, entries);

    // Metadata extents: (start, end, name).
    let mut extents: Vec<(u64, u64, String)> = vec![
        (0, FOOTER_SIZE as u64, "footer copy".into()),
        (
            header_at,
            header_at + HEADER_SIZE as u64,
            "dynamic header".into(),
        ),
        (header.table_offset, table_end, "BAT".into()),
    ];
    let batmap = check_batmap(io, footer, &header, footer_offset, report, &mut extents)?;
    if footer.disk_type == DiskType::Differencing {
        if header.parent_uuid.is_nil() {
            report.add("differencing disk has a nil parent uuid");
        }
        check_locators(io, &header, footer_offset, report, &mut extents)?;
    }

    let span = header.bitmap_size() + u64::from(header.block_size);
    let spb = header.sectors_per_block();
    for (block, sector) in bat.allocated() {
        let start = u64::from(sector) * SECTOR_SIZE;
        if start + span > footer_offset {
            report.add(format!("block {block} extends past the trailing footer"));
            continue;
        }
        extents.push((start, start + span, format!("block {block}")));
        let mut map = vec![0u8; header.bitmap_size() as usize];
        io.read_at(start, &mut map)?;
        if let Some(batmap) = &batmap {
            if batmap.test(block) && !bitmap::all_set(&map, spb) {
                report.add(format!(
                    "batmap marks block {block} full but its bitmap is not"
                ));
            }
        }
    }
    if let Some(batmap) = &batmap {
        for block in 0..u64::from(entries) {
            if batmap.test(block) && bat.get(block).is_none() {
                report.add(format!("batmap marks unallocated block {block} full"));
            }
        }
    }
    extents.sort();
    for pair in extents.windows(2) {
        if pair[1].0 < pair[0].1 {
            report.add(format!("{} overlaps {}", pair[0].2, pair[1].2));
        }
    }
    Ok(())
}

fn check_batmap<I: BlockIo>(
    io: &I,
    footer: &Footer,
    header: &DynamicHeader,
    footer_offset: u64,
    report: &mut CheckReport,
    extents: &mut Vec<(u64, u64, String)>,
) -> Result<Option<Batmap>> {
    if !footer.is_tap() || footer.creator_version <= 0x0000_0001 {
        return Ok(None);
    }
    let at = header.table_offset + Bat::padded_size(header.max_table_entries);
    if at + BATMAP_HEADER_SIZE as u64 > footer_offset {
        return Ok(None);
    }
    let mut buf = [0u8; BATMAP_HEADER_SIZE];
    io.read_at(at, &mut buf)?;
    let mut batmap = match Batmap::parse_header(&buf) {
        Ok(batmap) => batmap,
        Err(err) => {
            if footer.creator_version >= 0x0001_0002 {
                report.add(format!("batmap: {err}"));
            }
            return Ok(None);
        }
    };
    let needed = Batmap::sectors_for(header.max_table_entries);
    let end = batmap.offset.checked_add(batmap.map_bytes());
    if batmap.size_sectors < needed
        || batmap.size_sectors > needed + 8
        || end.map_or(true, |end| end > footer_offset)
    {
        report.add("batmap size or offset is wrong");
        return Ok(None);
    }
    let mut map = vec![0u8; batmap.map_bytes() as usize];
    io.read_at(batmap.offset, &mut map)?;
    batmap.set_map(map);
    if !batmap.checksum_ok() {
        report.add("batmap checksum mismatch");
    }
    extents.push((at, at + BATMAP_HEADER_SIZE as u64, "batmap header".into()));
    extents.push((
        batmap.offset,
        batmap.offset + batmap.map_bytes(),
        "batmap".into(),
    ));
    Ok(Some(batmap))
}

fn check_locators<I: BlockIo>(
    io: &I,
    header: &DynamicHeader,
    footer_offset: u64,
    report: &mut CheckReport,
    extents: &mut Vec<(u64, u64, String)>,
) -> Result<()> {
    let mut usable = 0;
    for (slot, entry) in header.locators.iter().enumerate() {
        let code = entry.platform();
        if entry.code == 0 {
            continue;
        }
        let space = entry.space_bytes();
        if space == 0 || entry.data_len == 0 || entry.reserved != 0 {
            report.add(format!(
                "parent locator {slot} has bad space, length or reserved field"
            ));
        }
        let end = entry
            .data_offset
            .checked_add(space.max(u64::from(entry.data_len)));
        if end.map_or(true, |end| end > footer_offset) {
            report.add(format!("parent locator {slot} outside the file"));
            continue;
        }
        if u64::from(entry.data_len) > space {
            report.add(format!("parent locator {slot} longer than its space"));
        }
        extents.push((
            entry.data_offset,
            entry.data_offset + space,
            format!("parent locator {slot}"),
        ));
        if !code.is_supported() {
            continue;
        }
        let len = u64::from(entry.data_len).min(space);
        let mut data = vec![0u8; len as usize];
        io.read_at(entry.data_offset, &mut data)?;
        if let Some(path) = locator::decode(code, &data) {
            usable += 1;
            // blktap insists that every locator names the file the header names.
            let file = path.rsplit('/').next().unwrap_or_default();
            if file != header.parent_name() {
                report.add(format!(
                    "parent locator {slot} names {file:?} but the header names {:?}",
                    header.parent_name()
                ));
            }
        } else {
            report.add(format!("parent locator {slot} does not decode"));
        }
    }
    if usable == 0 && header.parent_name().is_empty() {
        report.add("differencing disk has neither parent locator nor parent name");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;
    use crate::io::MemIo;
    use crate::Disk;

    fn written() -> (MemIo, Disk<MemIo>) {
        let io = MemIo::new();
        let mut disk = Disk::create_dynamic(io.clone(), 8 << 20).unwrap();
        disk.write_at(0, &vec![1u8; 2 << 20]).unwrap();
        disk.write_at(5 << 20, &[2u8; 700]).unwrap();
        (io, disk)
    }

    #[test]
    fn fresh_image_is_clean() {
        let (io, _disk) = written();
        let report = check(&io).unwrap();
        assert!(report.is_ok(), "{report}");
    }

    #[test]
    fn differing_footer_copies_are_reported() {
        let (io, _disk) = written();
        let mut bytes = io.to_vec();
        let mut footer = Footer::parse(&bytes[..512].try_into().unwrap()).unwrap();
        footer.timestamp += 1;
        bytes[..512].copy_from_slice(&footer.to_bytes());
        let report = check(&MemIo::from_vec(bytes)).unwrap();
        assert!(
            report.problems.iter().any(|p| p.contains("differs")),
            "{report}"
        );
    }

    #[test]
    fn overlapping_blocks_are_reported() {
        let (io, disk) = written();
        let mut bytes = io.to_vec();
        let at = disk.header().unwrap().table_offset as usize;
        let first: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        bytes[at + 4..at + 8].copy_from_slice(&first);
        let report = check(&MemIo::from_vec(bytes)).unwrap();
        assert!(
            report.problems.iter().any(|p| p.contains("overlaps")),
            "{report}"
        );
    }

    #[test]
    fn batmap_bit_without_full_bitmap_is_reported() {
        let (io, mut disk) = written();
        disk.sparse
            .as_mut()
            .unwrap()
            .batmap
            .as_mut()
            .unwrap()
            .assign(2, true);
        disk.write_batmap().unwrap();
        let report = check(&io).unwrap();
        assert!(
            report.problems.iter().any(|p| p.contains("block 2 full")),
            "{report}"
        );
    }

    #[test]
    fn differencing_disk_with_consistent_locators_is_clean() {
        let link = crate::ParentLink {
            uuid: uuid::Uuid::new_v4(),
            timestamp: 0,
            name: "p.vhd".into(),
            relative: "../sr/p.vhd".into(),
            absolute: "/sr/p.vhd".into(),
        };
        let io = MemIo::new();
        Disk::create_differencing(io.clone(), 2 << 20, &link).unwrap();
        let report = check(&io).unwrap();
        assert!(report.is_ok(), "{report}");
    }

    #[test]
    fn locator_naming_another_file_is_reported() {
        let link = crate::ParentLink {
            uuid: uuid::Uuid::new_v4(),
            timestamp: 0,
            name: "p.vhd".into(),
            relative: "q.vhd".into(),
            absolute: "/sr/p.vhd".into(),
        };
        let io = MemIo::new();
        Disk::create_differencing(io.clone(), 2 << 20, &link).unwrap();
        let report = check(&io).unwrap();
        assert!(
            report.problems.iter().any(|p| p.contains("\"q.vhd\"")),
            "{report}"
        );
    }

    #[test]
    fn bat_offset_near_the_top_of_the_address_space_is_reported() {
        let (io, disk) = written();
        let mut header = disk.header().unwrap().clone();
        header.table_offset = u64::MAX - 3;
        let mut bytes = io.to_vec();
        bytes[512..1536].copy_from_slice(&header.to_bytes());
        let report = check(&MemIo::from_vec(bytes)).unwrap();
        assert!(
            report.problems.iter().any(|p| p.contains("BAT outside")),
            "{report}"
        );
    }

    #[test]
    fn corrupt_batmap_checksum_is_reported() {
        let (io, disk) = written();
        let mut bytes = io.to_vec();
        let at = disk.batmap().unwrap().offset as usize;
        bytes[at + 100] ^= 1;
        let report = check(&MemIo::from_vec(bytes)).unwrap();
        assert!(
            report.problems.iter().any(|p| p.contains("checksum")),
            "{report}"
        );
    }
}
