//! Garbage collection for VHD-file SRs, run by the daemon in the background after scans and
//! deletes (and by `sr_delete`). One pass, under the SR lock, repeats until nothing changes:
//!
//! 1. delete hidden VHDs no leaf needs (hidden nodes without children, cascading upwards);
//! 2. coalesce a hidden node into its hidden parent when it is that parent's only child, relink
//!    its children to the parent and delete it;
//! 3. leaf-coalesce: copy a visible leaf that is its hidden parent's only child into the parent,
//!    which then replaces the leaf's file (the VDI keeps its uuid). Active leaves are paused.
//!
//! Steps 2 and 3 are journaled (`journal.rs`): the intent file is written before and removed
//! after, and every step is idempotent, so a crash anywhere is completed by the next pass or
//! attach. Copying into the parent is safe to repeat because the parent's only reader is the
//! node being coalesced, which hides every sector it copies.

use sm::{ErrorCode, GcReport, SmError, SmResult};
use tracing::info;

use crate::journal::{self, Intent};
use crate::meta::SrMeta;
use crate::tree::{self, vhd_error, vhd_path};
use crate::vhdsr::VhdSr;

/// Points in a journaled step where a test can simulate a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcPoint {
    /// The intent journal is on disk; nothing else changed yet.
    Journaled,
    /// The data is copied into the parent.
    Copied,
    /// The coalesced node's children point at the parent.
    Relinked,
    /// The parent replaced the leaf's file (leaf-coalesce).
    Replaced,
}

/// Hook called at each [`GcPoint`]; an error aborts the pass on the spot, as a crash would.
pub type CrashHook<'a> = dyn FnMut(GcPoint) -> SmResult<()> + 'a;

/// One full pass; `leaf_coalesce` enables step 3.
pub fn collect(sr: &VhdSr, leaf_coalesce: bool) -> SmResult<GcReport> {
    collect_with(sr, leaf_coalesce, &mut |_| Ok(()))
}

/// [`collect`] with a crash hook, for crash-safety tests.
pub fn collect_with(
    sr: &VhdSr,
    leaf_coalesce: bool,
    hook: &mut CrashHook<'_>,
) -> SmResult<GcReport> {
    let guard = sr.lock_sr();
    let mut report = GcReport {
        recovered: sr.recover(&guard)?,
        ..GcReport::default()
    };
    loop {
        let nodes = tree::build(sr.dir())?;
        if let Some(garbage) = nodes.values().find(|n| n.hidden && n.children.is_empty()) {
            let uuid = garbage.uuid.clone();
            std::fs::remove_file(vhd_path(sr.dir(), &uuid))
                .map_err(|e| SmError::io(ErrorCode::VdiRemove, "removing garbage VHD", &e))?;
            forget(sr, &uuid)?;
            info!(sr = %sr.sr_uuid(), vdi = %uuid, "garbage VHD deleted");
            report.deleted.push(uuid);
            continue;
        }
        let only_child_of_hidden = |node: &tree::Node| {
            node.parent
                .as_ref()
                .and_then(|p| nodes.get(p))
                .is_some_and(|p| p.hidden && p.children.len() == 1)
        };
        if let Some(node) = nodes
            .values()
            .find(|n| n.hidden && !n.children.is_empty() && only_child_of_hidden(n))
        {
            let (child, parent) = (node.uuid.clone(), node.parent.clone().unwrap_or_default());
            let path = journal::begin(
                sr.dir(),
                &Intent::Coalesce {
                    child: child.clone(),
                    parent: parent.clone(),
                },
            )?;
            hook(GcPoint::Journaled)?;
            finish_coalesce(sr, &child, &parent, hook)?;
            journal::end(&path)?;
            info!(sr = %sr.sr_uuid(), %child, %parent, "hidden VHD coalesced");
            report.coalesced.push((child, parent));
            continue;
        }
        if leaf_coalesce {
            if let Some(node) = nodes
                .values()
                .find(|n| !n.hidden && n.children.is_empty() && only_child_of_hidden(n))
            {
                let (leaf, parent) = (node.uuid.clone(), node.parent.clone().unwrap_or_default());
                let path = journal::begin(
                    sr.dir(),
                    &Intent::LeafCoalesce {
                        leaf: leaf.clone(),
                        parent: parent.clone(),
                    },
                )?;
                hook(GcPoint::Journaled)?;
                finish_leaf_coalesce(sr, &leaf, &parent, hook)?;
                journal::end(&path)?;
                info!(sr = %sr.sr_uuid(), %leaf, %parent, "leaf coalesced");
                report.leaf_coalesced.push((leaf, parent));
                continue;
            }
        }
        break;
    }
    drop(guard);
    Ok(report)
}

fn forget(sr: &VhdSr, uuid: &str) -> SmResult<()> {
    let mut meta = SrMeta::load(sr.dir())?.unwrap_or_default();
    if meta.vdis.remove(uuid).is_some() {
        meta.save(sr.dir())?;
    }
    sr.db().forget_vdi(sr.sr_uuid(), uuid)
}

fn record(sr: &VhdSr, uuid: &str) -> SmResult<()> {
    let node = tree::read_node(sr.dir(), uuid)?;
    let meta = SrMeta::load(sr.dir())?.unwrap_or_default();
    sr.db().record_vdi(sr.sr_uuid(), &sr.describe(&node, &meta))
}

/// Completes a coalesce of hidden `child` into `parent` (idempotent; a no-op once `child` is
/// gone).
pub(crate) fn finish_coalesce(
    sr: &VhdSr,
    child: &str,
    parent: &str,
    hook: &mut CrashHook<'_>,
) -> SmResult<()> {
    let child_path = vhd_path(sr.dir(), child);
    if !child_path.exists() {
        return Ok(());
    }
    vhd::coalesce_file(&child_path).map_err(|e| vhd_error(ErrorCode::SmGeneral, "coalesce", e))?;
    hook(GcPoint::Copied)?;
    let nodes = tree::build(sr.dir())?;
    let grandchildren = nodes
        .get(child)
        .map(|n| n.children.clone())
        .unwrap_or_default();
    // Active chains below `child` hold its file open: pause them while their parents change.
    let active = sr.active_uuids();
    for uuid in &active {
        sr.pause(uuid)?;
    }
    let parent_path = vhd_path(sr.dir(), parent);
    let mut relink = || -> SmResult<()> {
        for grandchild in &grandchildren {
            vhd::relink(&vhd_path(sr.dir(), grandchild), &parent_path)
                .map_err(|e| vhd_error(ErrorCode::SmGeneral, "relink", e))?;
        }
        hook(GcPoint::Relinked)?;
        std::fs::remove_file(&child_path)
            .map_err(|e| SmError::io(ErrorCode::VdiRemove, "removing coalesced VHD", &e))
    };
    let result = relink();
    for uuid in &active {
        sr.unpause(uuid)?;
    }
    result?;
    forget(sr, child)?;
    for grandchild in &grandchildren {
        record(sr, grandchild)?;
    }
    record(sr, parent)
}

/// Completes a leaf-coalesce of `leaf` into `parent` (idempotent; a no-op once `parent`'s
/// file has replaced the leaf's).
pub(crate) fn finish_leaf_coalesce(
    sr: &VhdSr,
    leaf: &str,
    parent: &str,
    hook: &mut CrashHook<'_>,
) -> SmResult<()> {
    let parent_path = vhd_path(sr.dir(), parent);
    if !parent_path.exists() {
        return Ok(());
    }
    let leaf_path = vhd_path(sr.dir(), leaf);
    let paused = sr.pause(leaf)?;
    let mut replace = || -> SmResult<()> {
        let gc_err = |e| vhd_error(ErrorCode::SmGeneral, "leaf-coalesce", e);
        vhd::coalesce_file(&leaf_path).map_err(gc_err)?;
        hook(GcPoint::Copied)?;
        let mut disk = vhd::open_file(&parent_path).map_err(gc_err)?;
        disk.set_hidden(false)
            .and_then(|()| disk.flush())
            .map_err(gc_err)?;
        drop(disk);
        std::fs::rename(&parent_path, &leaf_path)
            .map_err(|e| SmError::io(ErrorCode::SmGeneral, "replacing leaf", &e))?;
        hook(GcPoint::Replaced)
    };
    let result = replace();
    if paused {
        sr.unpause(leaf)?;
    }
    result?;
    forget(sr, parent)?;
    record(sr, leaf)
}
