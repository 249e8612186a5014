//! The block-I/O abstraction every VHD access goes through: the `BlockIo` trait, a `std::fs::File`
//! implementation and a shared in-memory implementation for tests. Knows nothing about VHD.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// Random-access storage holding one VHD image (a file, a block device, a buffer).
///
/// Reads take `&self` and writes `&mut self`: a single writer is enforced by the borrow checker,
/// readers never need a lock.
pub trait BlockIo {
    /// Fills `buf` from `offset`; reading past the end is an `UnexpectedEof` error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, growing the storage if needed.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the storage is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Truncates or extends (with zeros) to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Makes previous writes durable.
    fn flush(&mut self) -> io::Result<()>;
}

/// `BlockIo` over a regular file using positioned reads and writes (`pread`/`pwrite`).
#[derive(Debug)]
pub struct FileIo {
    file: File,
}

impl FileIo {
    /// Opens an existing file read-write.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::options().read(true).write(true).open(path)?;
        Ok(Self { file })
    }

    /// Opens an existing file read-only; writes will fail with the OS error.
    pub fn open_read_only(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: File::open(path)?,
        })
    }

    /// Creates a new file, failing if it exists.
    pub fn create_new(path: &Path) -> io::Result<Self> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Self { file })
    }

    /// Wraps an already opened file.
    pub fn from_file(file: File) -> Self {
        Self { file }
    }
}

impl BlockIo for FileIo {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// In-memory `BlockIo`; clones share the same bytes, so a test can keep a handle to an image
/// while a `Disk` owns another.
#[derive(Debug, Clone, Default)]
pub struct MemIo {
    data: Arc<Mutex<Vec<u8>>>,
}

impl MemIo {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A buffer holding `bytes`.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self {
            data: Arc::new(Mutex::new(bytes)),
        }
    }

    /// A copy of the current content.
    pub fn to_vec(&self) -> Vec<u8> {
        match self.lock() {
            Ok(data) => data.clone(),
            Err(_) => Vec::new(),
        }
    }

    fn lock(&self) -> io::Result<MutexGuard<'_, Vec<u8>>> {
        self.data
            .lock()
            .map_err(|_| io::Error::other("in-memory image lock poisoned"))
    }
}

fn to_index(value: u64) -> io::Result<usize> {
    usize::try_from(value)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))
}

impl BlockIo for MemIo {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let data = self.lock()?;
        let start = to_index(offset)?;
        let end = start
            .checked_add(buf.len())
            .filter(|end| *end <= data.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(&data[start..end]);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut data = self.lock()?;
        let start = to_index(offset)?;
        let end = start
            .checked_add(buf.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        if end > data.len() {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(buf);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.lock()?.len() as u64)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = to_index(len)?;
        self.lock()?.resize(len, 0);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn mem_write_past_end_zero_fills_the_gap() {
        let mut io = MemIo::new();
        io.write_at(4, b"ab").unwrap();
        assert_eq!(io.to_vec(), vec![0, 0, 0, 0, b'a', b'b']);
    }

    #[test]
    fn mem_read_past_end_is_unexpected_eof() {
        let io = MemIo::from_vec(vec![1, 2, 3]);
        let mut buf = [0u8; 2];
        let err = io.read_at(2, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn mem_clones_share_content() {
        let mut a = MemIo::new();
        let b = a.clone();
        a.write_at(0, b"x").unwrap();
        assert_eq!(b.to_vec(), b"x");
    }

    #[test]
    fn file_io_round_trips_and_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut io = FileIo::create_new(&path).unwrap();
        io.write_at(1000, b"hello").unwrap();
        assert_eq!(io.len().unwrap(), 1005);
        let mut buf = [0u8; 5];
        io.read_at(1000, &mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        io.set_len(10).unwrap();
        assert_eq!(io.len().unwrap(), 10);
    }
}
