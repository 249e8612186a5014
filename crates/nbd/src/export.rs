//! `Export`: one named disk served over NBD, with the pause gate snapshot and coalesce use:
//! `pause` stops new I/O, waits for requests in flight to drain and flushes; `unpause` lets I/O
//! continue, optionally on a reopened backend. Also the `Backend` trait and its VHD-chain
//! implementation. Owns no sockets.

use std::io;
use std::sync::{Condvar, Mutex, MutexGuard, RwLock};

use vhd::{BlockIo, Chain, VhdError};

/// The storage behind an export.
pub trait Backend: Send + Sync {
    /// Virtual size in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` from `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes `data` at `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes previous writes durable.
    fn flush(&mut self) -> io::Result<()>;
    /// Makes `len` bytes at `offset` read as zeros. The default writes zeros only over the
    /// parts that are not zero already, so sparse disks stay sparse.
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()> {
        const STEP: u64 = 1 << 20;
        let mut buf = vec![0u8; STEP.min(len) as usize];
        let mut done = 0;
        while done < len {
            let n = STEP.min(len - done) as usize;
            self.read_at(offset + done, &mut buf[..n])?;
            if buf[..n].iter().any(|b| *b != 0) {
                buf[..n].fill(0);
                self.write_at(offset + done, &buf[..n])?;
            }
            done += n as u64;
        }
        Ok(())
    }
}

fn vhd_to_io(err: VhdError) -> io::Error {
    match err {
        VhdError::Io(err) => err,
        err @ VhdError::OutOfRange { .. } => io::Error::new(io::ErrorKind::InvalidInput, err),
        err => io::Error::other(err),
    }
}

impl<I: BlockIo + Send + Sync> Backend for Chain<I> {
    fn size(&self) -> u64 {
        Chain::size(self)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        Chain::read_at(self, offset, buf).map_err(vhd_to_io)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        Chain::write_at(self, offset, data).map_err(vhd_to_io)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.leaf_mut().flush().map_err(vhd_to_io)
    }
}

/// A plain in-memory disk, for tests and the dummy driver.
#[derive(Debug, Clone)]
pub struct MemBackend {
    data: Vec<u8>,
}

impl MemBackend {
    /// A zeroed disk of `size` bytes.
    pub fn new(size: usize) -> Self {
        Self {
            data: vec![0; size],
        }
    }

    /// The current content.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

fn range(len: usize, offset: u64, n: usize) -> io::Result<std::ops::Range<usize>> {
    let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
    let end = start.checked_add(n).ok_or(io::ErrorKind::InvalidInput)?;
    if end > len {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    Ok(start..end)
}

impl Backend for MemBackend {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let r = range(self.data.len(), offset, buf.len())?;
        buf.copy_from_slice(&self.data[r]);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let r = range(self.data.len(), offset, data.len())?;
        self.data[r].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Gate {
    paused: bool,
    closed: bool,
    in_flight: usize,
}

/// One NBD export: a name, a backend and the pause gate.
pub struct Export {
    name: String,
    read_only: bool,
    gate: Mutex<Gate>,
    changed: Condvar,
    backend: RwLock<Box<dyn Backend>>,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("name", &self.name)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// Proof that one request is in flight; dropping it lets a pending `pause` finish.
#[derive(Debug)]
pub struct InFlight<'a> {
    export: &'a Export,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut gate = self.export.lock_gate();
        gate.in_flight = gate.in_flight.saturating_sub(1);
        drop(gate);
        self.export.changed.notify_all();
    }
}

fn poisoned() -> io::Error {
    io::Error::other("export lock poisoned")
}

impl Export {
    /// An export named `name` over `backend`.
    pub fn new(name: impl Into<String>, backend: Box<dyn Backend>, read_only: bool) -> Self {
        Self {
            name: name.into(),
            read_only,
            gate: Mutex::new(Gate::default()),
            changed: Condvar::new(),
            backend: RwLock::new(backend),
        }
    }

    /// The export name clients ask for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether writes are refused.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The backend's current size.
    pub fn size(&self) -> io::Result<u64> {
        Ok(self.backend.read().map_err(|_| poisoned())?.size())
    }

    fn lock_gate(&self) -> MutexGuard<'_, Gate> {
        // The gate holds plain counters; a panic elsewhere cannot leave them inconsistent.
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the export is not paused, then counts one request in flight. Fails once the
    /// export is closed.
    pub fn enter(&self) -> io::Result<InFlight<'_>> {
        let mut gate = self.lock_gate();
        while gate.paused && !gate.closed {
            gate = self.changed.wait(gate).unwrap_or_else(|e| e.into_inner());
        }
        if gate.closed {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "export closed"));
        }
        gate.in_flight += 1;
        Ok(InFlight { export: self })
    }

    /// Reads through the backend (call inside [`Export::enter`]).
    pub fn read_at(
        &self,
        _in_flight: &InFlight<'_>,
        offset: u64,
        buf: &mut [u8],
    ) -> io::Result<()> {
        self.backend
            .read()
            .map_err(|_| poisoned())?
            .read_at(offset, buf)
    }

    /// Writes through the backend (call inside [`Export::enter`]).
    pub fn write_at(&self, _in_flight: &InFlight<'_>, offset: u64, data: &[u8]) -> io::Result<()> {
        self.backend
            .write()
            .map_err(|_| poisoned())?
            .write_at(offset, data)
    }

    /// Zeroes a range through the backend (call inside [`Export::enter`]).
    pub fn write_zeroes(&self, _in_flight: &InFlight<'_>, offset: u64, len: u64) -> io::Result<()> {
        self.backend
            .write()
            .map_err(|_| poisoned())?
            .write_zeroes(offset, len)
    }

    /// Flushes the backend (call inside [`Export::enter`]).
    pub fn flush(&self, _in_flight: &InFlight<'_>) -> io::Result<()> {
        self.backend.write().map_err(|_| poisoned())?.flush()
    }

    /// `pause`: blocks new requests, waits for those in flight and flushes the backend. After
    /// it returns nobody touches the backend's files until [`Export::unpause`].
    pub fn pause(&self) -> io::Result<()> {
        let mut gate = self.lock_gate();
        gate.paused = true;
        while gate.in_flight > 0 {
            gate = self.changed.wait(gate).unwrap_or_else(|e| e.into_inner());
        }
        drop(gate);
        self.backend.write().map_err(|_| poisoned())?.flush()
    }

    /// Whether the export is paused.
    pub fn is_paused(&self) -> bool {
        self.lock_gate().paused
    }

    /// `unpause`: lets requests continue, on `reopened` when given (the chain after a
    /// snapshot or coalesce changed its files).
    pub fn unpause(&self, reopened: Option<Box<dyn Backend>>) -> io::Result<()> {
        if let Some(backend) = reopened {
            *self.backend.write().map_err(|_| poisoned())? = backend;
        }
        self.lock_gate().paused = false;
        self.changed.notify_all();
        Ok(())
    }

    /// Refuses all further requests (waiters wake with an error) and flushes.
    pub fn close(&self) -> io::Result<()> {
        let mut gate = self.lock_gate();
        gate.closed = true;
        while gate.in_flight > 0 {
            gate = self.changed.wait(gate).unwrap_or_else(|e| e.into_inner());
        }
        drop(gate);
        self.changed.notify_all();
        self.backend.write().map_err(|_| poisoned())?.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn pause_blocks_new_io_until_unpause_and_switches_backend() {
        let export = Arc::new(Export::new("e", Box::new(MemBackend::new(4096)), false));
        export.pause().unwrap();
        let worker = {
            let export = Arc::clone(&export);
            std::thread::spawn(move || {
                let token = export.enter().unwrap();
                let mut buf = [0u8; 1];
                export.read_at(&token, 0, &mut buf).unwrap();
                buf[0]
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!worker.is_finished(), "I/O ran while paused");
        let mut replacement = MemBackend::new(4096);
        replacement.write_at(0, &[9]).unwrap();
        export.unpause(Some(Box::new(replacement))).unwrap();
        assert_eq!(worker.join().unwrap(), 9);
    }

    #[test]
    fn pause_waits_for_requests_in_flight() {
        let export = Arc::new(Export::new("e", Box::new(MemBackend::new(512)), false));
        let token = export.enter().unwrap();
        let pauser = {
            let export = Arc::clone(&export);
            std::thread::spawn(move || export.pause().unwrap())
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!pauser.is_finished(), "pause returned with I/O in flight");
        drop(token);
        pauser.join().unwrap();
        assert!(export.is_paused());
    }

    #[test]
    fn closed_export_refuses_requests() {
        let export = Export::new("e", Box::new(MemBackend::new(512)), false);
        export.close().unwrap();
        assert!(export.enter().is_err());
    }

    #[test]
    fn default_write_zeroes_clears_data() {
        let mut backend = MemBackend::new(8192);
        backend.write_at(100, &[7u8; 5000]).unwrap();
        backend.write_zeroes(0, 8192).unwrap();
        assert!(backend.bytes().iter().all(|b| *b == 0));
    }
}
