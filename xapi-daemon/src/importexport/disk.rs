//! Disk contents for export and import, through the storage layer's public data paths:
//! `storage::activate` hands out an NBD export (or a plain file), which is read or written
//! here and released with `storage::deactivate` unless a running VM still uses the VDI.
use std::io::{Read, Seek, SeekFrom, Write};

use xapi_idl::records::{VbdRecord, VdiRecord};
use xapi_idl::{ApiError, ApiResult};

use crate::app::App;
use crate::storage;

enum Path {
    Nbd(nbd::Client),
    File(std::fs::File),
    /// The driver keeps no data (reads as zeroes, writes are dropped).
    Null,
}

/// An open VDI.
pub struct Disk {
    path: Path,
    /// Whether this disk was activated here (and must be deactivated afterwards).
    owned: bool,
    writable: bool,
}

fn io(vdi: &str) -> impl Fn(std::io::Error) -> ApiError + '_ {
    move |e| ApiError::new("VDI_IO_ERROR", vec![format!("{vdi}: {e}")])
}

/// Whether a VBD of the VDI is attached (a running VM holds it active).
fn in_use(app: &App, vdi: &str) -> bool {
    app.get_record::<VdiRecord>(vdi).is_some_and(|rec| {
        rec.vbds.iter().any(|vbd| {
            app.get_record::<VbdRecord>(vbd.as_str())
                .is_some_and(|v| v.currently_attached)
        })
    })
}

impl Disk {
    fn open(app: &App, vdi: &str, writable: bool) -> ApiResult<Disk> {
        let busy = in_use(app, vdi);
        let read_only = app
            .get_record::<VdiRecord>(vdi)
            .is_some_and(|r| r.read_only);
        // A VDI a VM uses stays active in its mode; otherwise it is ours to stop afterwards.
        let mode = if busy { !read_only } else { writable };
        let data = storage::activate(app, vdi, mode)?;
        let opened = match data {
            Some(sm::DataPath::Nbd { socket, export }) => {
                nbd::Client::connect(&socket, &export).map(Path::Nbd)
            }
            Some(sm::DataPath::File { path }) => std::fs::OpenOptions::new()
                .read(true)
                .write(writable)
                .open(path)
                .map(Path::File),
            Some(sm::DataPath::Null) | None => Ok(Path::Null),
        };
        match opened {
            Ok(path) => Ok(Disk {
                path,
                owned: !busy,
                writable,
            }),
            Err(e) => {
                if !busy {
                    storage::deactivate(app, vdi);
                }
                Err(io(vdi)(e))
            }
        }
    }

    /// Opens `vdi` for reading.
    pub fn reader(app: &App, vdi: &str) -> ApiResult<Disk> {
        Disk::open(app, vdi, false)
    }

    /// Opens `vdi` for writing.
    pub fn writer(app: &App, vdi: &str) -> ApiResult<Disk> {
        Disk::open(app, vdi, true)
    }

    /// Fills `buf` from `offset`.
    pub fn read_at(&mut self, vdi: &str, offset: u64, buf: &mut [u8]) -> ApiResult<()> {
        match &mut self.path {
            Path::Nbd(c) => c.read_at(offset, buf).map_err(io(vdi)),
            Path::File(f) => {
                buf.fill(0);
                f.seek(SeekFrom::Start(offset)).map_err(io(vdi))?;
                // A short file reads as zeroes past its end.
                let mut done = 0;
                while done < buf.len() {
                    let n = f.read(&mut buf[done..]).map_err(io(vdi))?;
                    if n == 0 {
                        break;
                    }
                    done += n;
                }
                Ok(())
            }
            Path::Null => {
                buf.fill(0);
                Ok(())
            }
        }
    }

    /// Writes `data` at `offset`.
    pub fn write_at(&mut self, vdi: &str, offset: u64, data: &[u8]) -> ApiResult<()> {
        match &mut self.path {
            Path::Nbd(c) => c.write_at(offset, data).map_err(io(vdi)),
            Path::File(f) => {
                f.seek(SeekFrom::Start(offset)).map_err(io(vdi))?;
                f.write_all(data).map_err(io(vdi))
            }
            Path::Null => Ok(()),
        }
    }

    /// Flushes, disconnects and deactivates the VDI if it was activated here.
    pub fn close(self, app: &App, vdi: &str) -> ApiResult<()> {
        let result = match self.path {
            Path::Nbd(mut c) => {
                let flushed = if self.writable { c.flush() } else { Ok(()) };
                flushed.and_then(|()| c.disconnect()).map_err(io(vdi))
            }
            Path::File(f) => f.sync_all().map_err(io(vdi)),
            Path::Null => Ok(()),
        };
        if self.owned {
            storage::deactivate(app, vdi);
        }
        result
    }
}
