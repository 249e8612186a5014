//! `Chain`: a differencing disk together with its ancestors, leaf first. Reads fall through the
//! chain, writes go to the leaf; also snapshots (new leaf on top), coalescing the leaf into its
//! parent and checking the links. Parents are found by a caller-supplied resolver, so the chain
//! works over any `BlockIo`; `files.rs` supplies the path-based resolver.

use crate::check::{check, CheckReport};
use crate::coalesce::coalesce;
use crate::data::{read_bytes, write_bytes};
use crate::disk::Disk;
use crate::error::{Result, VhdError};
use crate::footer::DiskType;
use crate::io::BlockIo;
use crate::locator::ParentLink;
use crate::MAX_CHAIN_DEPTH;

/// A leaf disk and its ancestors, nearest first; the last is dynamic or fixed.
#[derive(Debug)]
pub struct Chain<I> {
    disks: Vec<Disk<I>>,
}

impl<I: BlockIo> Chain<I> {
    /// Opens the ancestors of `leaf` by calling `resolve` on each differencing disk to obtain
    /// its parent, checking uuids and the depth limit.
    pub fn open_with<F>(leaf: Disk<I>, mut resolve: F) -> Result<Self>
    where
        F: FnMut(&Disk<I>) -> Result<Disk<I>>,
    {
        let mut disks = vec![leaf];
        loop {
            let last = &disks[disks.len() - 1];
            let Some(expected) = last.parent_uuid() else {
                break;
            };
            if disks.len() >= MAX_CHAIN_DEPTH {
                return Err(VhdError::ChainTooDeep {
                    max: MAX_CHAIN_DEPTH,
                });
            }
            let parent = resolve(last)?;
            if parent.uuid() != expected {
                return Err(VhdError::ParentUuidMismatch {
                    expected,
                    found: parent.uuid(),
                });
            }
            disks.push(parent);
        }
        Ok(Self { disks })
    }

    /// Builds a chain from already opened disks (leaf first), checking every link.
    pub fn from_disks(disks: Vec<Disk<I>>) -> Result<Self> {
        if disks.len() > MAX_CHAIN_DEPTH {
            return Err(VhdError::ChainTooDeep {
                max: MAX_CHAIN_DEPTH,
            });
        }
        let Some(last) = disks.last() else {
            return Err(VhdError::Corrupt("empty chain".into()));
        };
        if last.disk_type() == DiskType::Differencing {
            return Err(VhdError::NeedsParent);
        }
        for pair in disks.windows(2) {
            let expected = pair[0]
                .parent_uuid()
                .ok_or(VhdError::WrongDiskType(pair[0].disk_type().name()))?;
            if pair[1].uuid() != expected {
                return Err(VhdError::ParentUuidMismatch {
                    expected,
                    found: pair[1].uuid(),
                });
            }
        }
        Ok(Self { disks })
    }

    /// Reads through the chain: each sector from the nearest disk that holds it, zeros if none.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let (leaf, parents) = self.split();
        read_bytes(leaf, parents, offset, buf)
    }

    /// Writes into the leaf; partial sectors are completed from the chain.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let (leaf, parents) = self.split_mut();
        write_bytes(leaf, parents, offset, data)
    }

    /// The leaf's virtual size.
    pub fn size(&self) -> u64 {
        self.split().0.size()
    }

    /// Number of disks in the chain.
    pub fn depth(&self) -> usize {
        self.disks.len()
    }

    /// The leaf.
    pub fn leaf(&self) -> &Disk<I> {
        self.split().0
    }

    /// The leaf, for writing metadata (hidden flag, resize).
    pub fn leaf_mut(&mut self) -> &mut Disk<I> {
        self.split_mut().0
    }

    /// All disks, leaf first.
    pub fn disks(&self) -> &[Disk<I>] {
        &self.disks
    }

    /// Takes the disks back, leaf first.
    pub fn into_disks(self) -> Vec<Disk<I>> {
        self.disks
    }

    /// Flushes every disk.
    pub fn flush(&mut self) -> Result<()> {
        self.disks.iter_mut().try_for_each(Disk::flush)
    }

    /// `snapshot`: puts a new, empty differencing disk created in `io` on top of the chain. The
    /// old leaf becomes its parent and must no longer be written. `link` describes the old leaf
    /// and must carry its uuid.
    pub fn snapshot(&mut self, io: I, link: &ParentLink) -> Result<()> {
        if self.disks.len() >= MAX_CHAIN_DEPTH {
            return Err(VhdError::ChainTooDeep {
                max: MAX_CHAIN_DEPTH,
            });
        }
        let leaf = self.leaf();
        if link.uuid != leaf.uuid() {
            return Err(VhdError::ParentUuidMismatch {
                expected: link.uuid,
                found: leaf.uuid(),
            });
        }
        let child = Disk::create_differencing(io, leaf.size(), link)?;
        self.disks.insert(0, child);
        Ok(())
    }

    /// Copies the leaf's sectors into its parent and drops the leaf from the chain, returning
    /// it so the caller can delete it. The parent becomes the leaf.
    pub fn coalesce_leaf(&mut self) -> Result<Disk<I>> {
        if self.disks.len() < 2 {
            return Err(VhdError::WrongDiskType(self.leaf().disk_type().name()));
        }
        let (leaf, rest) = self.disks.split_at_mut(1);
        coalesce(&leaf[0], &mut rest[0])?;
        Ok(self.disks.remove(0))
    }

    /// Checks every disk and every parent link.
    pub fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        for (depth, disk) in self.disks.iter().enumerate() {
            for problem in check(disk.io())?.problems {
                report.add(format!("disk {depth}: {problem}"));
            }
        }
        for (depth, pair) in self.disks.windows(2).enumerate() {
            if pair[0].parent_uuid() != Some(pair[1].uuid()) {
                report.add(format!(
                    "disk {depth}: parent uuid does not match the parent's footer uuid"
                ));
            }
        }
        Ok(report)
    }

    fn split(&self) -> (&Disk<I>, &[Disk<I>]) {
        // A chain always holds at least its leaf: every constructor guarantees it.
        let (leaf, parents) = self.disks.split_first().expect("a chain has a leaf");
        (leaf, parents)
    }

    fn split_mut(&mut self) -> (&mut Disk<I>, &[Disk<I>]) {
        let (leaf, parents) = self.disks.split_first_mut().expect("a chain has a leaf");
        (leaf, parents)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;
    use crate::io::MemIo;

    fn link_to(disk: &Disk<MemIo>) -> ParentLink {
        ParentLink {
            uuid: disk.uuid(),
            timestamp: 0,
            name: "p.vhd".into(),
            relative: "p.vhd".into(),
            absolute: "/p.vhd".into(),
        }
    }

    #[test]
    fn child_reads_parent_data_and_shadows_it() {
        let mut base = Disk::create_dynamic(MemIo::new(), 4 << 20).unwrap();
        base.write_at(0, &[1u8; 4096]).unwrap();
        let mut chain = Chain::from_disks(vec![base]).unwrap();
        let link = link_to(chain.leaf());
        chain.snapshot(MemIo::new(), &link).unwrap();
        chain.write_at(100, &[2u8; 10]).unwrap();
        let mut buf = [0u8; 4096];
        chain.read_at(0, &mut buf).unwrap();
        assert_eq!(buf[99], 1);
        assert_eq!(&buf[100..110], &[2u8; 10]);
        assert_eq!(buf[110], 1);
        assert_eq!(buf[4000], 1);
        // The base is untouched.
        chain.disks()[1].read_at(100, &mut buf[..10]).unwrap();
        assert_eq!(&buf[..10], &[1u8; 10]);
    }

    #[test]
    fn differencing_disk_alone_needs_its_parent() {
        let base = Disk::create_dynamic(MemIo::new(), 2 << 20).unwrap();
        let child = Disk::create_differencing(MemIo::new(), 2 << 20, &link_to(&base)).unwrap();
        let mut buf = [0u8; 512];
        assert!(matches!(
            child.read_at(0, &mut buf),
            Err(VhdError::NeedsParent)
        ));
        assert!(matches!(
            Chain::from_disks(vec![child]),
            Err(VhdError::NeedsParent)
        ));
    }

    #[test]
    fn wrong_parent_is_refused() {
        let base = Disk::create_dynamic(MemIo::new(), 2 << 20).unwrap();
        let other = Disk::create_dynamic(MemIo::new(), 2 << 20).unwrap();
        let child = Disk::create_differencing(MemIo::new(), 2 << 20, &link_to(&base)).unwrap();
        assert!(matches!(
            Chain::from_disks(vec![child, other]),
            Err(VhdError::ParentUuidMismatch { .. })
        ));
    }

    #[test]
    fn depth_beyond_the_limit_is_refused() {
        let base = Disk::create_dynamic(MemIo::new(), 2 << 20).unwrap();
        let mut chain = Chain::from_disks(vec![base]).unwrap();
        for _ in 1..MAX_CHAIN_DEPTH {
            let link = link_to(chain.leaf());
            chain.snapshot(MemIo::new(), &link).unwrap();
        }
        assert_eq!(chain.depth(), MAX_CHAIN_DEPTH);
        let link = link_to(chain.leaf());
        assert!(matches!(
            chain.snapshot(MemIo::new(), &link),
            Err(VhdError::ChainTooDeep { .. })
        ));
    }

    #[test]
    fn open_with_follows_the_resolver() {
        let base_io = MemIo::new();
        let base = Disk::create_dynamic(base_io.clone(), 2 << 20).unwrap();
        let child = Disk::create_differencing(MemIo::new(), 2 << 20, &link_to(&base)).unwrap();
        let chain = Chain::open_with(child, |_| Disk::open(base_io.clone())).unwrap();
        assert_eq!(chain.depth(), 2);
        assert!(chain.check().unwrap().is_ok());
    }

    #[test]
    fn coalesce_leaf_moves_data_down() {
        let mut base = Disk::create_dynamic(MemIo::new(), 4 << 20).unwrap();
        base.write_at(0, &[1u8; 1024]).unwrap();
        let mut chain = Chain::from_disks(vec![base]).unwrap();
        let link = link_to(chain.leaf());
        chain.snapshot(MemIo::new(), &link).unwrap();
        chain.write_at(512, &[3u8; 512]).unwrap();
        chain.coalesce_leaf().unwrap();
        assert_eq!(chain.depth(), 1);
        let mut buf = [0u8; 1024];
        chain.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf[..512], &[1u8; 512]);
        assert_eq!(&buf[512..], &[3u8; 512]);
    }
}
