//! Fuzz target: feeds arbitrary bytes (seeded with valid images whose headers the fuzzer
//! mutates) to the VHD reader, then exercises reads, checks, locators, writes and a grow.
//! Any panic, overflow or runaway allocation is a bug; errors are the expected outcome.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vhd::{check, Disk, MemIo};

fuzz_target!(|data: &[u8]| {
    let io = MemIo::from_vec(data.to_vec());
    let _ = check(&io);
    let Ok(mut disk) = Disk::open(io) else {
        return;
    };
    let size = disk.size();
    let _ = disk.parent_locators();
    let _ = disk.parent_name();
    let mut buf = vec![0u8; 4096];
    for offset in [0, size / 3 + 7, size.saturating_sub(4096)] {
        let len = (size - offset.min(size)).min(4096) as usize;
        let _ = disk.read_at(offset, &mut buf[..len]);
    }
    let _ = disk.write_at(size / 2 + 3, b"fuzz");
    let _ = disk.set_hidden(true);
    let _ = disk.resize(size.saturating_add(4 << 20));
    let _ = check(disk.io());
});
