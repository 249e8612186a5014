//! The async face: [`AsyncClient`], [`AsyncTransaction`] and [`WatchStream`], for
//! tokio code. Requests go out as soon as a method is called and are matched to
//! replies by `req_id`, so many can be in flight at once; one background reader
//! task demultiplexes replies and watch events. Same connection core and
//! operations as the blocking face.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::mpsc;
use tracing::debug;

use crate::blocking::part_reply;
use crate::conn::{Conn, EventSink, Pending, Scoped, TxGuard, WatchEvent, WatchGuard};
use crate::error::{Result, XsError};
use crate::ops::{self, DirectoryAssembler, DirectoryStep, Request};
use crate::perms::{DomId, Permissions};
use crate::transport::{self, Endpoint};
use crate::DEFAULT_TRANSACTION_ATTEMPTS;

/// Node operations for async code, available on [`AsyncClient`] and
/// [`AsyncTransaction`]. Each request is sent when the method is called; the
/// returned future only waits for the reply.
pub trait AsyncXsOps: Scoped + Sync {
    /// `READ`: the value of `path`.
    fn read(&self, path: &str) -> Pending<Vec<u8>> {
        self.call(ops::read(path))
    }

    /// `READ`, mapping `ENOENT` to `None`.
    fn try_read(&self, path: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        let pending = self.read(path);
        async move {
            match pending.await {
                Ok(value) => Ok(Some(value)),
                Err(err) if err.is_not_found() => Ok(None),
                Err(err) => Err(err),
            }
        }
    }

    /// `WRITE`: sets the value of `path`, creating missing parents.
    fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Pending<()> {
        self.call(ops::write(path, value.as_ref()))
    }

    /// `MKDIR`: makes sure `path` exists.
    fn mkdir(&self, path: &str) -> Pending<()> {
        self.call(ops::mkdir(path))
    }

    /// `RM`: removes `path` and everything below it.
    fn rm(&self, path: &str) -> Pending<()> {
        self.call(ops::rm(path))
    }

    /// `DIRECTORY`: the child names of `path`, with the `DIRECTORY_PART`
    /// fallback on `E2BIG` (see the blocking `XsOps::directory`).
    fn directory(&self, path: &str) -> impl Future<Output = Result<Vec<String>>> + Send {
        let first = self.call(ops::directory(path));
        let (conn, tx_id) = self.scope();
        let conn = Arc::clone(conn);
        let path = path.to_owned();
        async move {
            match first.await {
                Err(err) if err.errno() == Some(&crate::Errno::E2big) => {
                    debug!(path, "directory too big, reading it in parts");
                    let mut assembler = DirectoryAssembler::default();
                    loop {
                        let request = ops::directory_part(&path, assembler.offset());
                        let reply = conn.call(tx_id, request).await;
                        match assembler.feed(&part_reply(reply)?)? {
                            DirectoryStep::Continue(_) => {}
                            DirectoryStep::Done(names) => return Ok(names),
                        }
                    }
                }
                other => other,
            }
        }
    }

    /// `GET_PERMS`: the permissions of `path`.
    fn get_perms(&self, path: &str) -> Pending<Permissions> {
        self.call(ops::get_perms(path))
    }

    /// `SET_PERMS`: replaces the permissions of `path`.
    fn set_perms(&self, path: &str, perms: &Permissions) -> Pending<()> {
        self.call(ops::set_perms(path, perms))
    }

    /// Sends any request in this scope; the building block of the methods above.
    fn call<T>(&self, request: Request<T>) -> Pending<T> {
        let (conn, tx_id) = self.scope();
        conn.call(tx_id, request)
    }
}

/// An async connection to xenstored. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct AsyncClient {
    conn: Arc<Conn>,
}

impl Scoped for AsyncClient {
    fn scope(&self) -> (&Arc<Conn>, u32) {
        (&self.conn, 0)
    }
}

impl AsyncXsOps for AsyncClient {}

impl AsyncClient {
    /// Connects to the endpoint chosen by [`Endpoint::from_env`].
    pub async fn open() -> Result<AsyncClient> {
        AsyncClient::connect(&Endpoint::from_env()).await
    }

    /// Connects to `endpoint`; the I/O tasks run on the current tokio runtime.
    pub async fn connect(endpoint: &Endpoint) -> Result<AsyncClient> {
        Ok(AsyncClient {
            conn: Arc::new(transport::connect_async(endpoint).await?),
        })
    }

    /// `TRANSACTION_START`: opens a transaction, aborted when its last handle is
    /// dropped without commit.
    pub async fn transaction_start(&self) -> Result<AsyncTransaction> {
        let id = self.conn.call(0, ops::transaction_start()).await?;
        Ok(AsyncTransaction {
            guard: Arc::new(TxGuard::new(Arc::clone(&self.conn), id)),
        })
    }

    /// Runs `body` in a transaction and commits it, running everything again when
    /// the commit fails with `EAGAIN`, at most [`DEFAULT_TRANSACTION_ATTEMPTS`] times.
    /// An error from `body` aborts the transaction and is returned as is.
    pub async fn transaction<R, E, F, Fut>(&self, body: F) -> Result<R, E>
    where
        F: FnMut(AsyncTransaction) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: From<XsError>,
    {
        self.transaction_with_attempts(DEFAULT_TRANSACTION_ATTEMPTS, body)
            .await
    }

    /// [`AsyncClient::transaction`] with an explicit bound on attempts (at least one).
    pub async fn transaction_with_attempts<R, E, F, Fut>(
        &self,
        attempts: u32,
        mut body: F,
    ) -> Result<R, E>
    where
        F: FnMut(AsyncTransaction) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: From<XsError>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tx = self.transaction_start().await?;
            let value = body(tx.clone()).await?;
            match tx.commit().await {
                Ok(()) => return Ok(value),
                Err(err) if err.is_again() && attempt < attempts.max(1) => {
                    debug!(attempt, "xenstore transaction conflicted, retrying");
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// `WATCH`: watches `path` (or `@introduceDomain` / `@releaseDomain`) under
    /// `token`, unique on this connection. Events arrive on the returned stream,
    /// starting with one immediate firing.
    pub async fn watch(&self, path: &str, token: &str) -> Result<WatchStream> {
        let (sender, events) = mpsc::unbounded_channel();
        // Routing is in place before WATCH goes out, so the first firing is kept.
        self.conn.add_watch(token, EventSink::Async(sender))?;
        if let Err(err) = self.conn.call(0, ops::watch(path, token)).await {
            self.conn.remove_watch(token);
            return Err(err);
        }
        Ok(WatchStream {
            guard: WatchGuard::new(Arc::clone(&self.conn), path, token),
            events,
        })
    }

    /// `RESET_WATCHES`: drops every watch and transaction of this connection on the
    /// daemon side.
    pub fn reset_watches(&self) -> Pending<()> {
        self.conn.call(0, ops::reset_watches())
    }

    /// `INTRODUCE`: tells xenstored about domain `domid`'s ring page and event channel.
    pub fn introduce(&self, domid: DomId, mfn: u64, evtchn: u32) -> Pending<()> {
        self.conn.call(0, ops::introduce(domid, mfn, evtchn))
    }

    /// `RELEASE`: xenstored forgets domain `domid`.
    pub fn release(&self, domid: DomId) -> Pending<()> {
        self.conn.call(0, ops::release(domid))
    }

    /// `RESUME`: re-arms `@releaseDomain` for `domid`.
    pub fn resume(&self, domid: DomId) -> Pending<()> {
        self.conn.call(0, ops::resume(domid))
    }

    /// `SET_TARGET`: lets `domid` (a device model) act on `target`'s nodes.
    pub fn set_target(&self, domid: DomId, target: DomId) -> Pending<()> {
        self.conn.call(0, ops::set_target(domid, target))
    }

    /// `GET_DOMAIN_PATH`: the home path of `domid`.
    pub fn get_domain_path(&self, domid: DomId) -> Pending<String> {
        self.conn.call(0, ops::get_domain_path(domid))
    }

    /// `IS_DOMAIN_INTRODUCED`: whether xenstored talks to `domid`.
    pub fn is_domain_introduced(&self, domid: DomId) -> Pending<bool> {
        self.conn.call(0, ops::is_domain_introduced(domid))
    }

    /// `CONTROL`: an implementation-specific daemon command.
    pub fn control(&self, command: &str, args: &[&str]) -> Pending<Vec<u8>> {
        self.conn.call(0, ops::control(command, args))
    }
}

/// An open transaction for async code. Clones share it; when the last clone is
/// dropped without `commit`/`abort`, the transaction is aborted.
#[derive(Clone)]
pub struct AsyncTransaction {
    guard: Arc<TxGuard>,
}

impl Scoped for AsyncTransaction {
    fn scope(&self) -> (&Arc<Conn>, u32) {
        (&self.guard.conn, self.guard.id)
    }
}

impl AsyncXsOps for AsyncTransaction {}

impl AsyncTransaction {
    /// The transaction id chosen by xenstored.
    pub fn id(&self) -> u32 {
        self.guard.id
    }

    /// `TRANSACTION_END T`: commits; `EAGAIN` means another writer got in first.
    /// Only the first `commit` or `abort` of a transaction is sent.
    pub fn commit(&self) -> Pending<()> {
        self.guard.end(true)
    }

    /// `TRANSACTION_END F`: discards every change.
    pub fn abort(&self) -> Pending<()> {
        self.guard.end(false)
    }
}

/// The events of one watch as an async [`Stream`]; ends when the connection
/// closes. Dropping it sends `UNWATCH`.
pub struct WatchStream {
    guard: WatchGuard,
    events: mpsc::UnboundedReceiver<WatchEvent>,
}

impl WatchStream {
    /// The watched path.
    pub fn path(&self) -> &str {
        &self.guard.path
    }

    /// The token events carry.
    pub fn token(&self) -> &str {
        &self.guard.token
    }

    /// The next event (`None` once the connection is closed), without needing
    /// a `StreamExt` trait in scope.
    pub async fn next_event(&mut self) -> Option<WatchEvent> {
        self.events.recv().await
    }

    /// `UNWATCH`, waiting for the daemon's answer.
    pub async fn unwatch(self) -> Result<()> {
        self.guard.unwatch().await
    }
}

impl Stream for WatchStream {
    type Item = WatchEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        self.get_mut().events.poll_recv(cx)
    }
}
