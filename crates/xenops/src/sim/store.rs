//! The simulated host's state on disk: a snapshot file and a journal beside it
//! (`<file>.log`). Every change appends one line to the journal (`H` host record, `D` domain
//! record, `R` domain removed) in a single `write`, so a change costs O(1) however many
//! domains run, and a killed daemon leaves at most a torn last line, which loading ignores.
//! When the journal grows past twice the live records, the snapshot is rewritten atomically
//! (temporary file, optional fsync, rename) under a new generation number and the journal
//! restarts; a journal whose generation differs from the snapshot's is stale and ignored.
//!
//! The files stand for memory inside the hypervisor, which outlives the daemon but not the
//! machine: the host record holds the kernel boot id, and one from another boot is a host
//! that rebooted (no domains). That is also why fsync is optional: after a power loss the
//! domains are gone anyway.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Result, XenopsError};

/// What `Store::load` found: the host record and every domain record.
pub type Loaded = (Vec<u8>, Vec<Vec<u8>>);

/// The records as last written, mirrored so the snapshot can be rewritten at any time.
#[derive(Debug, Default)]
struct Mirror {
    generation: u64,
    host: Vec<u8>,
    domains: BTreeMap<u32, Vec<u8>>,
    journal: Option<File>,
    journal_lines: usize,
}

/// Where the records live and how hard to push them to disk.
#[derive(Debug)]
pub struct Store {
    snapshot: PathBuf,
    journal: PathBuf,
    fsync: bool,
    mirror: Mutex<Mirror>,
}

impl Store {
    /// A store whose snapshot is `path`; `fsync` makes every write durable.
    pub fn new(path: &Path, fsync: bool) -> Self {
        let mut journal: OsString = path.as_os_str().to_os_string();
        journal.push(".log");
        Store {
            snapshot: path.to_path_buf(),
            journal: PathBuf::from(journal),
            fsync,
            mirror: Mutex::new(Mirror::default()),
        }
    }

    /// The records, or `None` when there is no snapshot yet.
    pub fn load(&self) -> Result<Option<Loaded>> {
        let snapshot = match fs::read(&self.snapshot) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(XenopsError::Io(e)),
        };
        let mut mirror = self.lock();
        let generation = replay(&snapshot, &mut mirror)?;
        mirror.generation = generation.unwrap_or(0);
        match fs::read(&self.journal) {
            Ok(journal) => {
                let mut replayed = Mirror::default();
                if replay_generation(&journal) == generation {
                    replay(&journal, &mut replayed)?;
                    if !replayed.host.is_empty() {
                        mirror.host = replayed.host;
                    }
                    for (domid, bytes) in replayed.domains {
                        if bytes.is_empty() {
                            mirror.domains.remove(&domid);
                        } else {
                            mirror.domains.insert(domid, bytes);
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(XenopsError::Io(e)),
        }
        Ok(Some((
            mirror.host.clone(),
            mirror.domains.values().cloned().collect(),
        )))
    }

    /// Replace the host record.
    pub fn save_host(&self, bytes: &[u8]) -> Result<()> {
        let mut mirror = self.lock();
        mirror.host = bytes.to_vec();
        self.append(&mut mirror, &line("H", None, bytes))
    }

    /// Replace the record of domain `domid`.
    pub fn save_domain(&self, domid: u32, bytes: &[u8]) -> Result<()> {
        let mut mirror = self.lock();
        mirror.domains.insert(domid, bytes.to_vec());
        self.append(&mut mirror, &line("D", Some(domid), bytes))
    }

    /// Remove the record of domain `domid` (absent is fine).
    pub fn remove_domain(&self, domid: u32) -> Result<()> {
        let mut mirror = self.lock();
        if mirror.domains.remove(&domid).is_none() {
            return Ok(());
        }
        self.append(&mut mirror, &line("R", Some(domid), b""))
    }

    /// Forget every domain record (the next `compact` writes none).
    pub fn clear_domains(&self) -> Result<()> {
        self.lock().domains.clear();
        Ok(())
    }

    /// Rewrite the snapshot from the records and start a new journal.
    pub fn compact(&self) -> Result<()> {
        let mut mirror = self.lock();
        self.compact_locked(&mut mirror)
    }

    fn compact_locked(&self, mirror: &mut Mirror) -> Result<()> {
        let generation = mirror.generation + 1;
        let mut bytes = line("G", None, generation.to_string().as_bytes());
        bytes.extend(line("H", None, &mirror.host));
        for (domid, record) in &mirror.domains {
            bytes.extend(line("D", Some(*domid), record));
        }
        write_atomically(&self.snapshot, &bytes, self.fsync)?;
        let mut journal = File::create(&self.journal)?;
        journal.write_all(&line("G", None, generation.to_string().as_bytes()))?;
        if self.fsync {
            journal.sync_data()?;
        }
        mirror.journal = Some(OpenOptions::new().append(true).open(&self.journal)?);
        mirror.generation = generation;
        mirror.journal_lines = 0;
        Ok(())
    }

    fn append(&self, mirror: &mut Mirror, record: &[u8]) -> Result<()> {
        if mirror.journal.is_none() || mirror.journal_lines > 1024.max(2 * mirror.domains.len()) {
            return self.compact_locked(mirror);
        }
        if let Some(journal) = mirror.journal.as_mut() {
            // One write per record: a killed daemon cannot leave half of it in the page cache.
            journal.write_all(record)?;
            if self.fsync {
                journal.sync_data()?;
            }
        }
        mirror.journal_lines += 1;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Mirror> {
        // The mirror is replaced field by field with plain values; a panic cannot tear it.
        self.mirror.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `<tag> [<domid>] <payload>\n`; payloads are JSON without raw newlines.
fn line(tag: &str, domid: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let mut out = tag.as_bytes().to_vec();
    if let Some(domid) = domid {
        out.extend(format!(" {domid}").as_bytes());
    }
    out.push(b' ');
    out.extend(payload);
    out.push(b'\n');
    out
}

/// The generation a journal or snapshot starts with.
fn replay_generation(bytes: &[u8]) -> Option<u64> {
    let first = bytes.split(|b| *b == b'\n').next()?;
    let text = std::str::from_utf8(first.strip_prefix(b"G ")?).ok()?;
    text.trim().parse().ok()
}

/// Apply complete lines to `mirror` (a removal leaves an empty record). Returns the
/// generation line's value, if any. A torn last line (no newline) is ignored.
fn replay(bytes: &[u8], mirror: &mut Mirror) -> Result<Option<u64>> {
    let bad = |what: &str| XenopsError::State(format!("corrupt state record: {what}"));
    let complete = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => &bytes[..end],
        None => return Ok(None),
    };
    let mut generation = None;
    for record in complete.split(|b| *b == b'\n') {
        let (tag, rest) = record.split_at(record.len().min(2));
        let domid_and_payload = || -> Result<(u32, &[u8])> {
            let space = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
            let domid = std::str::from_utf8(&rest[..space])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("domid"))?;
            Ok((domid, rest.get(space + 1..).unwrap_or_default()))
        };
        match tag {
            b"G " => generation = replay_generation(record),
            b"H " => mirror.host = rest.to_vec(),
            b"D " => {
                let (domid, payload) = domid_and_payload()?;
                mirror.domains.insert(domid, payload.to_vec());
            }
            b"R " => {
                let (domid, _) = domid_and_payload()?;
                mirror.domains.insert(domid, Vec::new());
            }
            _ => return Err(bad("unknown tag")),
        }
    }
    // In a snapshot, removals cannot occur; in a journal they are applied by the caller.
    Ok(generation)
}

/// Write `bytes` to `path` through a temporary sibling and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8], fsync: bool) -> Result<()> {
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .ok_or_else(|| XenopsError::State(format!("{} does not name a file", path.display())))?;
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    if fsync {
        file.sync_all()?;
    }
    drop(file);
    fs::rename(&tmp, path)?;
    if fsync {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

/// The running kernel's boot id, when the platform has one.
pub fn current_boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reload_through_journal_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.json");
        let store = Store::new(&path, false);
        assert_eq!(store.load().unwrap(), None);
        store.save_host(b"one").unwrap();
        store.save_host(b"two").unwrap();
        store.save_domain(1, b"d1").unwrap();
        store.save_domain(2, b"d2").unwrap();
        store.remove_domain(1).unwrap();
        store.remove_domain(7).unwrap();
        let reloaded = Store::new(&path, false);
        assert_eq!(
            reloaded.load().unwrap().unwrap(),
            (b"two".to_vec(), vec![b"d2".to_vec()])
        );
        for i in 0..3000u32 {
            store
                .save_domain(i % 10, format!("v{i}").as_bytes())
                .unwrap();
        }
        let (_, domains) = Store::new(&path, false).load().unwrap().unwrap();
        assert_eq!(domains.len(), 10);
        assert!(domains.contains(&b"v2999".to_vec()));
        assert!(fs::metadata(dir.path().join("sim.json.log")).unwrap().len() < 64 * 1024);
    }

    #[test]
    fn a_torn_last_journal_line_is_ignored_and_a_stale_journal_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.json");
        let store = Store::new(&path, false);
        store.save_host(b"h").unwrap();
        store.save_domain(1, b"d1").unwrap();
        let journal = dir.path().join("sim.json.log");
        let mut file = OpenOptions::new().append(true).open(&journal).unwrap();
        file.write_all(b"D 2 {\"torn").unwrap();
        assert_eq!(
            Store::new(&path, false).load().unwrap().unwrap().1,
            [b"d1".to_vec()]
        );
        fs::write(&journal, b"G 99\nD 3 stale\n").unwrap();
        assert_eq!(
            Store::new(&path, false).load().unwrap().unwrap().1,
            Vec::<Vec<u8>>::new()
        );
    }
}
