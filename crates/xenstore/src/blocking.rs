//! The blocking face: [`Client`], [`Transaction`] and [`Watch`], for the daemon's
//! blocking worker threads. Every call sends through the shared connection core
//! and blocks on [`Pending::wait`]; background threads do the I/O, so a `Client`
//! can be shared between threads and their requests pipeline. Never call these
//! from async code: use `AsyncClient` there.

use std::sync::Arc;
use std::time::Duration;

use tracing::debug;

use crate::conn::{Conn, EventSink, Pending, Scoped, TxGuard, WatchEvent, WatchGuard};
use crate::error::{Result, XsError};
use crate::ops::{self, DirectoryAssembler, DirectoryStep, Request};
use crate::perms::{DomId, Permissions};
use crate::transport::{self, Endpoint};
use crate::DEFAULT_TRANSACTION_ATTEMPTS;

/// Node operations, available on [`Client`] (outside any transaction) and on
/// [`Transaction`] (inside it).
pub trait XsOps: Scoped {
    /// `READ`: the value of `path`.
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.call(ops::read(path)).wait()
    }

    /// `READ`, decoding the value as UTF-8.
    fn read_string(&self, path: &str) -> Result<String> {
        String::from_utf8(self.read(path)?)
            .map_err(|_| XsError::Protocol(format!("value of {path} is not UTF-8")))
    }

    /// `READ`, mapping `ENOENT` to `None`.
    fn try_read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.read(path) {
            Ok(value) => Ok(Some(value)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `WRITE`: sets the value of `path`, creating missing parents.
    fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.call(ops::write(path, value.as_ref())).wait()
    }

    /// `MKDIR`: makes sure `path` exists.
    fn mkdir(&self, path: &str) -> Result<()> {
        self.call(ops::mkdir(path)).wait()
    }

    /// `RM`: removes `path` and everything below it.
    fn rm(&self, path: &str) -> Result<()> {
        self.call(ops::rm(path)).wait()
    }

    /// `DIRECTORY`: the child names of `path`. Falls back to `DIRECTORY_PART`
    /// when the daemon answers `E2BIG`; if that is not implemented either
    /// (`ENOSYS`), the result is `E2BIG`.
    fn directory(&self, path: &str) -> Result<Vec<String>> {
        match self.call(ops::directory(path)).wait() {
            Err(err) if err.errno() == Some(&crate::Errno::E2big) => {
                debug!(path, "directory too big, reading it in parts");
                let mut assembler = DirectoryAssembler::default();
                loop {
                    let reply = self
                        .call(ops::directory_part(path, assembler.offset()))
                        .wait();
                    match assembler.feed(&part_reply(reply)?)? {
                        DirectoryStep::Continue(_) => {}
                        DirectoryStep::Done(names) => return Ok(names),
                    }
                }
            }
            other => other,
        }
    }

    /// `GET_PERMS`: the permissions of `path`.
    fn get_perms(&self, path: &str) -> Result<Permissions> {
        self.call(ops::get_perms(path)).wait()
    }

    /// `SET_PERMS`: replaces the permissions of `path`.
    fn set_perms(&self, path: &str, perms: &Permissions) -> Result<()> {
        self.call(ops::set_perms(path, perms)).wait()
    }

    /// Sends any request in this scope; the building block of the methods above.
    fn call<T>(&self, request: Request<T>) -> Pending<T> {
        let (conn, tx_id) = self.scope();
        conn.call(tx_id, request)
    }
}

/// Maps `ENOSYS` from `DIRECTORY_PART` back to the `E2BIG` that caused it.
pub(crate) fn part_reply(reply: Result<Vec<u8>>) -> Result<Vec<u8>> {
    match reply {
        Err(err) if err.errno() == Some(&crate::Errno::Enosys) => {
            Err(XsError::Daemon(crate::Errno::E2big))
        }
        other => other,
    }
}

/// A blocking connection to xenstored. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    conn: Arc<Conn>,
}

impl Scoped for Client {
    fn scope(&self) -> (&Arc<Conn>, u32) {
        (&self.conn, 0)
    }
}

impl XsOps for Client {}

impl Client {
    /// Connects to the endpoint chosen by [`Endpoint::from_env`].
    pub fn open() -> Result<Client> {
        Client::connect(&Endpoint::from_env())
    }

    /// Connects to `endpoint`.
    pub fn connect(endpoint: &Endpoint) -> Result<Client> {
        Ok(Client {
            conn: Arc::new(transport::connect_threads(endpoint)?),
        })
    }

    /// `TRANSACTION_START`: opens a transaction. It is aborted if dropped without
    /// [`Transaction::commit`].
    pub fn transaction_start(&self) -> Result<Transaction> {
        let id = self.conn.call(0, ops::transaction_start()).wait()?;
        Ok(Transaction {
            guard: TxGuard::new(Arc::clone(&self.conn), id),
        })
    }

    /// Runs `body` in a transaction and commits it, running everything again when
    /// the commit fails with `EAGAIN`, at most [`DEFAULT_TRANSACTION_ATTEMPTS`] times.
    /// An error from `body` aborts the transaction and is returned as is.
    pub fn transaction<R, E>(&self, body: impl FnMut(&Transaction) -> Result<R, E>) -> Result<R, E>
    where
        E: From<XsError>,
    {
        self.transaction_with_attempts(DEFAULT_TRANSACTION_ATTEMPTS, body)
    }

    /// [`Client::transaction`] with an explicit bound on attempts (at least one).
    pub fn transaction_with_attempts<R, E>(
        &self,
        attempts: u32,
        mut body: impl FnMut(&Transaction) -> Result<R, E>,
    ) -> Result<R, E>
    where
        E: From<XsError>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tx = self.transaction_start()?;
            let value = body(&tx)?;
            match tx.commit() {
                Ok(()) => return Ok(value),
                Err(err) if err.is_again() && attempt < attempts.max(1) => {
                    debug!(attempt, "xenstore transaction conflicted, retrying");
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// `WATCH`: watches `path` (or a special path such as `@releaseDomain`) under
    /// `token`, which must not be in use on this connection. The watch fires once
    /// right away, then on every change below `path`.
    pub fn watch(&self, path: &str, token: &str) -> Result<Watch> {
        let (sender, events) = std::sync::mpsc::channel();
        // Routing is in place before WATCH goes out, so the first firing is kept.
        self.conn.add_watch(token, EventSink::Blocking(sender))?;
        if let Err(err) = self.conn.call(0, ops::watch(path, token)).wait() {
            self.conn.remove_watch(token);
            return Err(err);
        }
        Ok(Watch {
            guard: WatchGuard::new(Arc::clone(&self.conn), path, token),
            events,
        })
    }

    /// `RESET_WATCHES`: drops every watch and transaction of this connection on the
    /// daemon side. Local `Watch` handles stay open but receive nothing more.
    pub fn reset_watches(&self) -> Result<()> {
        self.conn.call(0, ops::reset_watches()).wait()
    }

    /// `INTRODUCE`: tells xenstored about domain `domid`'s ring page and event channel.
    pub fn introduce(&self, domid: DomId, mfn: u64, evtchn: u32) -> Result<()> {
        self.conn.call(0, ops::introduce(domid, mfn, evtchn)).wait()
    }

    /// `RELEASE`: xenstored forgets domain `domid`.
    pub fn release(&self, domid: DomId) -> Result<()> {
        self.conn.call(0, ops::release(domid)).wait()
    }

    /// `RESUME`: re-arms `@releaseDomain` for `domid`.
    pub fn resume(&self, domid: DomId) -> Result<()> {
        self.conn.call(0, ops::resume(domid)).wait()
    }

    /// `SET_TARGET`: lets `domid` (a device model) act on `target`'s nodes.
    pub fn set_target(&self, domid: DomId, target: DomId) -> Result<()> {
        self.conn.call(0, ops::set_target(domid, target)).wait()
    }

    /// `GET_DOMAIN_PATH`: the home path of `domid`.
    pub fn get_domain_path(&self, domid: DomId) -> Result<String> {
        self.conn.call(0, ops::get_domain_path(domid)).wait()
    }

    /// `IS_DOMAIN_INTRODUCED`: whether xenstored talks to `domid`.
    pub fn is_domain_introduced(&self, domid: DomId) -> Result<bool> {
        self.conn.call(0, ops::is_domain_introduced(domid)).wait()
    }

    /// `CONTROL`: an implementation-specific daemon command.
    pub fn control(&self, command: &str, args: &[&str]) -> Result<Vec<u8>> {
        self.conn.call(0, ops::control(command, args)).wait()
    }
}

/// An open transaction: node operations through [`XsOps`], then `commit` or
/// `abort`. Dropping it unfinished aborts it.
pub struct Transaction {
    guard: TxGuard,
}

impl Scoped for Transaction {
    fn scope(&self) -> (&Arc<Conn>, u32) {
        (&self.guard.conn, self.guard.id)
    }
}

impl XsOps for Transaction {}

impl Transaction {
    /// The transaction id chosen by xenstored.
    pub fn id(&self) -> u32 {
        self.guard.id
    }

    /// `TRANSACTION_END T`: commits; `EAGAIN` means another writer got in first
    /// and nothing was applied.
    pub fn commit(self) -> Result<()> {
        self.guard.end(true).wait()
    }

    /// `TRANSACTION_END F`: discards every change.
    pub fn abort(self) -> Result<()> {
        self.guard.end(false).wait()
    }
}

/// A registered watch delivering [`WatchEvent`]s. Dropping it sends `UNWATCH`.
pub struct Watch {
    guard: WatchGuard,
    events: std::sync::mpsc::Receiver<WatchEvent>,
}

impl Watch {
    /// The watched path.
    pub fn path(&self) -> &str {
        &self.guard.path
    }

    /// The token events carry.
    pub fn token(&self) -> &str {
        &self.guard.token
    }

    /// Blocks for the next event; `None` once the connection is closed.
    pub fn recv(&self) -> Option<WatchEvent> {
        self.events.recv().ok()
    }

    /// Waits at most `timeout` for the next event.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<WatchEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    /// The next event if one is already queued.
    pub fn try_recv(&self) -> Option<WatchEvent> {
        self.events.try_recv().ok()
    }

    /// `UNWATCH`, waiting for the daemon's answer.
    pub fn unwatch(self) -> Result<()> {
        self.guard.unwatch().wait()
    }
}
