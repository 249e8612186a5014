//! Writes small, valid VHD images into the directory given as the first argument, as a seed
//! corpus for the `open_image` fuzz target (`scripts/fuzz-vhd.sh` runs it). Besides our normal
//! layouts it builds a dynamic and a differencing disk with 4 KiB blocks so that allocated
//! blocks, bitmaps and the batmap fit in a few kilobytes.

use std::path::Path;

use vhd::{BlockIo, Disk, DiskType, DynamicHeader, Footer, MemIo, ParentLink};

/// A sparse image with `block_size` blocks covering `size` bytes, built by hand because the
/// crate only creates 2 MiB blocks.
fn small_block_image(
    disk_type: DiskType,
    size: u64,
    block_size: u32,
    parent: Option<&ParentLink>,
) -> MemIo {
    let entries = size.div_ceil(u64::from(block_size)) as u32;
    let mut footer = Footer::new(disk_type, size, 512);
    footer.creator_app = *b"tap\0";
    let mut header = DynamicHeader::new(1536, entries, block_size);
    let bat_bytes = (u64::from(entries) * 4).div_ceil(512) * 512;
    let batmap_header_at = 1536 + bat_bytes;
    let mut batmap = vhd::Batmap::new(batmap_header_at + 512, entries);
    let mut end = batmap.offset + batmap.map_bytes();
    let mut io = MemIo::new();
    if let Some(link) = parent {
        header.parent_uuid = link.uuid;
        header.set_parent_name(&link.name).expect("short name");
        let data: Vec<u8> = ".\\p.vhd"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        header.locators[0] = vhd::LocatorEntry {
            code: vhd::PlatformCode::W2ru.code(),
            data_space: 512,
            data_len: data.len() as u32,
            reserved: 0,
            data_offset: end,
        };
        io.write_at(end, &data).expect("memory");
        end += 512;
    }
    let footer_bytes = footer.to_bytes();
    io.write_at(0, &footer_bytes).expect("memory");
    io.write_at(512, &header.to_bytes()).expect("memory");
    io.write_at(1536, &vec![0xff; bat_bytes as usize])
        .expect("memory");
    io.write_at(batmap.offset, &batmap.map.clone())
        .expect("memory");
    io.write_at(batmap_header_at, &batmap.header_bytes())
        .expect("memory");
    io.write_at(end, &footer_bytes).expect("memory");
    io
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: fuzz_seeds DIR"))?;
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir)?;
    let save = |name: &str, io: &MemIo| std::fs::write(dir.join(name), io.to_vec());

    let io = MemIo::new();
    Disk::create_dynamic(io.clone(), 4 << 20)?;
    save("dynamic-empty.vhd", &io)?;

    let io = MemIo::new();
    Disk::create_fixed(io.clone(), 8192)?;
    save("fixed.vhd", &io)?;

    let link = ParentLink {
        uuid: uuid_of(&io)?,
        timestamp: 0,
        name: "p.vhd".into(),
        relative: "p.vhd".into(),
        absolute: "/sr/p.vhd".into(),
    };
    let io = MemIo::new();
    Disk::create_differencing(io.clone(), 4 << 20, &link)?;
    save("differencing-empty.vhd", &io)?;

    let io = small_block_image(DiskType::Dynamic, 64 << 10, 4096, None);
    let mut disk = Disk::open(io.clone())?;
    disk.write_at(1000, &[0xab; 3000])?;
    disk.write_at(20480, &[0xcd; 4096])?;
    save("dynamic-4k-blocks.vhd", &io)?;

    let io = small_block_image(DiskType::Differencing, 64 << 10, 4096, Some(&link));
    let mut disk = Disk::open(io.clone())?;
    disk.write_at(8192, &[0x11; 1024])?;
    disk.write_at(40960, &[0x22; 4096])?;
    save("differencing-4k-blocks.vhd", &io)?;
    Ok(())
}

fn uuid_of(io: &MemIo) -> anyhow::Result<uuid::Uuid> {
    Ok(Disk::open(io.clone())?.uuid())
}
