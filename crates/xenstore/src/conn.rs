//! The connection core shared by both client faces: request-id allocation, the
//! table of requests awaiting replies, the table of watch tokens, and
//! demultiplexing of incoming packets (replies by `req_id`, `WATCH_EVENT`s by
//! token). It never reads or writes the transport itself: a background reader
//! (thread or tokio task, see `transport`) feeds it packets, and frames go out
//! through a channel to a background writer.
//!
//! A reply is awaited through [`Pending`], which is both a `Future` (async face)
//! and has a blocking `wait` (blocking face), so the two faces run the same code.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, trace, warn};

use crate::error::{Result, XsError};
use crate::ops::{self, Request};
use crate::wire::{self, MsgType, Packet};

/// A `WATCH_EVENT`: a node under a watched path changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The path that changed (or the watched path itself, for the initial firing
    /// and for removal of a parent).
    pub path: String,
    /// The token given when the watch was set up.
    pub token: String,
}

impl WatchEvent {
    /// Parses a `WATCH_EVENT` payload: `<path>|<token>|`.
    pub fn from_payload(payload: &[u8]) -> Result<WatchEvent> {
        let mut fields = wire::split_nul_strings(payload)?.into_iter();
        match (fields.next(), fields.next()) {
            (Some(path), Some(token)) => Ok(WatchEvent { path, token }),
            _ => Err(XsError::Protocol("watch event lacks path or token".into())),
        }
    }
}

/// Where the events of one watch token go.
pub(crate) enum EventSink {
    /// A blocking `Watch` (std channel: supports `recv_timeout`).
    Blocking(std::sync::mpsc::Sender<WatchEvent>),
    /// An async `WatchStream`.
    Async(mpsc::UnboundedSender<WatchEvent>),
}

impl EventSink {
    /// Delivers an event; false when the receiver is gone.
    fn deliver(&self, event: WatchEvent) -> bool {
        match self {
            EventSink::Blocking(sender) => sender.send(event).is_ok(),
            EventSink::Async(sender) => sender.send(event).is_ok(),
        }
    }
}

#[derive(Default)]
struct State {
    next_req_id: u32,
    pending: HashMap<u32, oneshot::Sender<Packet>>,
    watches: HashMap<String, EventSink>,
    closed: bool,
}

/// The demultiplexer, shared between the client handles and the background reader.
#[derive(Default)]
pub struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the maps inconsistent
        // (every update is a single insert or remove), so poisoning is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Routes one incoming packet to its waiting request or watch.
    pub(crate) fn dispatch(&self, packet: Packet) {
        trace!(
            kind = packet.header.kind,
            req_id = packet.header.req_id,
            len = packet.payload.len(),
            "xenstore packet in"
        );
        if packet.header.msg_type() == Some(MsgType::WatchEvent) {
            let event = match WatchEvent::from_payload(&packet.payload) {
                Ok(event) => event,
                Err(err) => {
                    warn!(error = %err, "dropping malformed watch event");
                    return;
                }
            };
            let mut state = self.lock();
            let delivered = match state.watches.get(&event.token) {
                Some(sink) => sink.deliver(event.clone()),
                None => {
                    debug!(token = %event.token, path = %event.path, "watch event for unknown token");
                    return;
                }
            };
            if !delivered {
                state.watches.remove(&event.token);
            }
            return;
        }
        let waiter = self.lock().pending.remove(&packet.header.req_id);
        match waiter {
            // The requester may have stopped waiting (dropped future): fine.
            Some(waiter) => drop(waiter.send(packet)),
            None => warn!(
                req_id = packet.header.req_id,
                kind = packet.header.kind,
                "reply to no request"
            ),
        }
    }

    /// Marks the connection dead: every waiting request fails with
    /// `Disconnected` and every watch stream ends.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.pending.clear();
        state.watches.clear();
    }

    fn register(&self) -> Result<(u32, oneshot::Receiver<Packet>)> {
        let mut state = self.lock();
        if state.closed {
            return Err(XsError::Disconnected);
        }
        // Ids wrap around; skip 0 (the id of watch events) and ids still waiting.
        let mut req_id = state.next_req_id;
        loop {
            req_id = req_id.wrapping_add(1);
            if req_id != 0 && !state.pending.contains_key(&req_id) {
                break;
            }
        }
        state.next_req_id = req_id;
        let (sender, receiver) = oneshot::channel();
        state.pending.insert(req_id, sender);
        Ok((req_id, receiver))
    }

    fn forget(&self, req_id: u32) {
        self.lock().pending.remove(&req_id);
    }
}

/// Gives node operations their connection and transaction id. Public in a private
/// module, so the operation traits are sealed: only this crate implements them.
pub trait Scoped {
    /// The connection and the transaction id (0 outside transactions).
    fn scope(&self) -> (&Arc<Conn>, u32);
}

/// One connection to xenstored: the demultiplexer plus the queue to the writer.
/// Dropping the last handle closes the writer queue, which tears the transport down.
pub struct Conn {
    shared: Arc<Shared>,
    writer: mpsc::UnboundedSender<Vec<u8>>,
}

impl Conn {
    /// Wraps a demultiplexer and a writer queue started by a transport backend.
    pub(crate) fn new(shared: Arc<Shared>, writer: mpsc::UnboundedSender<Vec<u8>>) -> Conn {
        Conn { shared, writer }
    }

    /// Sends a request and returns the handle on its reply. The request goes out
    /// now, before the handle is awaited, so several calls pipeline.
    pub(crate) fn call<T>(&self, tx_id: u32, request: Request<T>) -> Pending<T> {
        match self.send(tx_id, request.kind, request.payload) {
            Ok(receiver) => Pending {
                state: Ok(Waiting {
                    receiver,
                    kind: request.kind,
                    parse: request.parse,
                }),
            },
            Err(err) => Pending {
                state: Err(Some(err)),
            },
        }
    }

    /// Sends a request whose reply nobody waits for (cleanup from `Drop`).
    pub(crate) fn call_detached<T>(&self, tx_id: u32, request: Request<T>) {
        if let Err(err) = self.send(tx_id, request.kind, request.payload) {
            debug!(error = %err, kind = ?request.kind, "detached xenstore request not sent");
        }
    }

    fn send(
        &self,
        tx_id: u32,
        kind: MsgType,
        payload: Result<Vec<u8>>,
    ) -> Result<oneshot::Receiver<Packet>> {
        let payload = payload?;
        let (req_id, receiver) = self.shared.register()?;
        let frame = match wire::encode_frame(kind, req_id, tx_id, &payload) {
            Ok(frame) => frame,
            Err(err) => {
                self.shared.forget(req_id);
                return Err(err);
            }
        };
        trace!(
            ?kind,
            req_id,
            tx_id,
            len = payload.len(),
            "xenstore request out"
        );
        if self.writer.send(frame).is_err() {
            self.shared.forget(req_id);
            return Err(XsError::Disconnected);
        }
        Ok(receiver)
    }

    /// Routes events for `token` to `sink`; fails if the token is taken.
    pub(crate) fn add_watch(&self, token: &str, sink: EventSink) -> Result<()> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(XsError::Disconnected);
        }
        if state.watches.contains_key(token) {
            return Err(XsError::TokenInUse(token.to_owned()));
        }
        state.watches.insert(token.to_owned(), sink);
        Ok(())
    }

    /// Stops routing events for `token`.
    pub(crate) fn remove_watch(&self, token: &str) {
        self.shared.lock().watches.remove(token);
    }
}

struct Waiting<T> {
    receiver: oneshot::Receiver<Packet>,
    kind: MsgType,
    parse: fn(Vec<u8>) -> Result<T>,
}

/// The reply to a request already sent: `.await` it, or `wait()` from a thread
/// that is not running async code.
#[must_use = "the request is sent, but its outcome is only known by awaiting the reply"]
pub struct Pending<T> {
    state: std::result::Result<Waiting<T>, Option<XsError>>,
}

impl<T> Pending<T> {
    /// Blocks the current thread until the reply arrives. Must not be called from
    /// async code (tokio panics if it is); use `.await` there.
    pub fn wait(self) -> Result<T> {
        match self.state {
            Ok(waiting) => match waiting.receiver.blocking_recv() {
                Ok(packet) => Request::decode(waiting.kind, waiting.parse, packet),
                Err(_) => Err(XsError::Disconnected),
            },
            Err(err) => Err(err.unwrap_or(XsError::Disconnected)),
        }
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        match &mut this.state {
            Ok(waiting) => match Pin::new(&mut waiting.receiver).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(packet)) => {
                    Poll::Ready(Request::decode(waiting.kind, waiting.parse, packet))
                }
                Poll::Ready(Err(_)) => Poll::Ready(Err(XsError::Disconnected)),
            },
            Err(err) => Poll::Ready(Err(err.take().unwrap_or(XsError::Disconnected))),
        }
    }
}

/// An open transaction on a connection; aborts it when dropped unfinished.
pub(crate) struct TxGuard {
    pub(crate) conn: Arc<Conn>,
    pub(crate) id: u32,
    finished: AtomicBool,
}

impl TxGuard {
    pub(crate) fn new(conn: Arc<Conn>, id: u32) -> TxGuard {
        TxGuard {
            conn,
            id,
            finished: AtomicBool::new(false),
        }
    }

    /// Sends `TRANSACTION_END`; only the first call per transaction sends anything.
    pub(crate) fn end(&self, commit: bool) -> Pending<()> {
        if self.finished.swap(true, Ordering::SeqCst) {
            return Pending {
                state: Err(Some(XsError::InvalidArgument("transaction already ended"))),
            };
        }
        self.conn.call(self.id, ops::transaction_end(commit))
    }
}

impl Drop for TxGuard {
    fn drop(&mut self) {
        if !self.finished.swap(true, Ordering::SeqCst) {
            debug!(tx_id = self.id, "aborting abandoned xenstore transaction");
            self.conn
                .call_detached(self.id, ops::transaction_end(false));
        }
    }
}

/// A registered watch; unregisters (locally and with `UNWATCH`) when dropped.
pub(crate) struct WatchGuard {
    pub(crate) conn: Arc<Conn>,
    pub(crate) path: String,
    pub(crate) token: String,
    active: bool,
}

impl WatchGuard {
    pub(crate) fn new(conn: Arc<Conn>, path: &str, token: &str) -> WatchGuard {
        WatchGuard {
            conn,
            path: path.to_owned(),
            token: token.to_owned(),
            active: true,
        }
    }

    /// Unregisters now and returns the `UNWATCH` reply handle.
    pub(crate) fn unwatch(mut self) -> Pending<()> {
        self.active = false;
        self.conn.remove_watch(&self.token);
        self.conn.call(0, ops::unwatch(&self.path, &self.token))
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if self.active {
            self.conn.remove_watch(&self.token);
            self.conn
                .call_detached(0, ops::unwatch(&self.path, &self.token));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;
    use crate::wire::Header;

    fn packet(kind: MsgType, req_id: u32, payload: &[u8]) -> Packet {
        let header = Header {
            kind: kind as u32,
            req_id,
            tx_id: 0,
            len: payload.len() as u32,
        };
        Packet {
            header,
            payload: payload.to_vec(),
        }
    }

    fn conn() -> (Conn, mpsc::UnboundedReceiver<Vec<u8>>) {
        let (writer, frames) = mpsc::unbounded_channel();
        (Conn::new(Arc::new(Shared::default()), writer), frames)
    }

    fn req_id_of(frame: &[u8]) -> u32 {
        u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]])
    }

    #[test]
    fn replies_are_matched_by_req_id_in_any_order() {
        let (conn, mut frames) = conn();
        let first = conn.call(0, ops::read("/a"));
        let second = conn.call(0, ops::read("/b"));
        let id_a = req_id_of(&frames.try_recv().unwrap());
        let id_b = req_id_of(&frames.try_recv().unwrap());
        assert_ne!(id_a, id_b);
        conn.shared.dispatch(packet(MsgType::Read, id_b, b"B"));
        conn.shared.dispatch(packet(MsgType::Read, id_a, b"A"));
        assert_eq!(first.wait().unwrap(), b"A");
        assert_eq!(second.wait().unwrap(), b"B");
    }

    #[test]
    fn request_frame_carries_the_transaction_id() {
        let (conn, mut frames) = conn();
        let _pending = conn.call(42, ops::read("/a"));
        let frame = frames.try_recv().unwrap();
        assert_eq!(
            u32::from_le_bytes([frame[8], frame[9], frame[10], frame[11]]),
            42
        );
    }

    #[test]
    fn watch_events_go_to_their_token() {
        let (conn, _frames) = conn();
        let (sender, receiver) = std::sync::mpsc::channel();
        conn.add_watch("t1", EventSink::Blocking(sender)).unwrap();
        conn.shared
            .dispatch(packet(MsgType::WatchEvent, 0, b"/x/y\0t1\0"));
        conn.shared
            .dispatch(packet(MsgType::WatchEvent, 0, b"/x/z\0other\0"));
        let event = receiver.try_recv().unwrap();
        assert_eq!(
            event,
            WatchEvent {
                path: "/x/y".into(),
                token: "t1".into()
            }
        );
        assert!(receiver.try_recv().is_err());
    }

    #[test]
    fn duplicate_token_is_refused() {
        let (conn, _frames) = conn();
        let (sender, _receiver) = std::sync::mpsc::channel();
        conn.add_watch("t", EventSink::Blocking(sender.clone()))
            .unwrap();
        assert!(matches!(
            conn.add_watch("t", EventSink::Blocking(sender)),
            Err(XsError::TokenInUse(_))
        ));
    }

    #[test]
    fn close_fails_waiting_requests_and_later_calls() {
        let (conn, _frames) = conn();
        let pending = conn.call(0, ops::read("/a"));
        conn.shared.close();
        assert!(matches!(pending.wait(), Err(XsError::Disconnected)));
        assert!(matches!(
            conn.call(0, ops::read("/a")).wait(),
            Err(XsError::Disconnected)
        ));
    }

    #[test]
    fn dead_writer_means_disconnected() {
        let (conn, frames) = conn();
        drop(frames);
        assert!(matches!(
            conn.call(0, ops::read("/a")).wait(),
            Err(XsError::Disconnected)
        ));
    }

    #[test]
    fn req_ids_skip_zero_when_wrapping() {
        let (conn, mut frames) = conn();
        conn.shared.lock().next_req_id = u32::MAX;
        let _pending = conn.call(0, ops::read("/a"));
        assert_eq!(req_id_of(&frames.try_recv().unwrap()), 1);
    }

    #[test]
    fn pending_is_a_future_too() {
        let (conn, mut frames) = conn();
        let pending = conn.call(0, ops::mkdir("/a"));
        let id = req_id_of(&frames.try_recv().unwrap());
        conn.shared
            .dispatch(packet(MsgType::Error, id, b"EACCES\0"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = runtime.block_on(pending).unwrap_err();
        assert_eq!(err.errno(), Some(&crate::Errno::Eacces));
    }

    #[test]
    fn dropped_transaction_guard_sends_abort() {
        let (writer, mut frames) = mpsc::unbounded_channel();
        let conn = Arc::new(Conn::new(Arc::new(Shared::default()), writer));
        drop(TxGuard::new(conn, 9));
        let frame = frames.try_recv().unwrap();
        assert_eq!(frame[0], MsgType::TransactionEnd as u8);
        assert_eq!(&frame[16..], b"F\0");
    }
}
