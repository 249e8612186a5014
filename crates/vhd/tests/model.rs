//! Property test: random writes, snapshots, coalesces, grows and reopen cycles on an in-memory
//! chain, compared after every step with a plain byte-vector model of the disk content. A small
//! xorshift generator with fixed seeds keeps every run reproducible.

#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

use vhd::{Chain, Disk, MemIo, ParentLink};

const MIB: u64 = 1 << 20;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn link_to(disk: &Disk<MemIo>, depth: usize) -> ParentLink {
    ParentLink {
        uuid: disk.uuid(),
        timestamp: 0,
        name: format!("layer{depth}.vhd"),
        relative: format!("layer{depth}.vhd"),
        absolute: format!("/sr/layer{depth}.vhd"),
    }
}

/// Reopens every layer from its bytes, as a fresh process would.
fn reopen(chain: Chain<MemIo>) -> Chain<MemIo> {
    let disks = chain
        .into_disks()
        .into_iter()
        .map(|disk| Disk::open(MemIo::from_vec(disk.into_io().to_vec())).unwrap())
        .collect();
    Chain::from_disks(disks).unwrap()
}

fn assert_matches(chain: &Chain<MemIo>, model: &[u8], rng: &mut Rng, step: usize) {
    assert_eq!(chain.size(), model.len() as u64, "step {step}: size");
    // A few random windows plus, now and then, the whole disk.
    for _ in 0..4 {
        let offset = rng.below(model.len() as u64);
        let len = rng.below((model.len() as u64 - offset).min(300_000)) + 1;
        let mut buf = vec![0u8; len as usize];
        chain.read_at(offset, &mut buf).unwrap();
        let expected = &model[offset as usize..(offset + len) as usize];
        assert!(
            buf == expected,
            "step {step}: {len} bytes at {offset} differ"
        );
    }
    if step % 10 == 0 {
        let mut all = vec![0u8; model.len()];
        chain.read_at(0, &mut all).unwrap();
        assert!(all == model, "step {step}: full read differs");
    }
}

fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let mut size = (rng.below(6) + 3) * MIB + rng.below(2048) * 512;
    let base = Disk::create_dynamic(MemIo::new(), size).unwrap();
    let mut chain = Chain::from_disks(vec![base]).unwrap();
    let mut model = vec![0u8; size as usize];
    for step in 0..steps {
        match rng.below(100) {
            0..=64 => {
                let offset = rng.below(size);
                let max = (size - offset).min(if rng.below(4) == 0 { 3 * MIB } else { 9000 });
                let len = rng.below(max) + 1;
                let fill = rng.next() as u8;
                let data: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
                chain.write_at(offset, &data).unwrap();
                model[offset as usize..(offset + len) as usize].copy_from_slice(&data);
            }
            65..=76 if chain.depth() < 6 => {
                let link = link_to(chain.leaf(), chain.depth());
                chain.snapshot(MemIo::new(), &link).unwrap();
            }
            77..=86 if chain.depth() > 1 => {
                chain.coalesce_leaf().unwrap();
            }
            87..=90 => {
                size += rng.below(4) * MIB + rng.below(64) * 512;
                chain.leaf_mut().resize(size).unwrap();
                model.resize(size as usize, 0);
            }
            91..=94 => {
                let report = chain.check().unwrap();
                assert!(report.is_ok(), "step {step}: {report}");
            }
            _ => chain = reopen(chain),
        }
        assert_matches(&chain, &model, &mut rng, step);
    }
    let report = chain.check().unwrap();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn random_operations_match_the_model() {
    for seed in [1, 0x5eed, 0xdead_beef, 42, 7_777_777] {
        run(seed, 120);
    }
}
