//! Streaming a body produced by blocking code: `ChunkWriter` is the `std::io::Write` end,
//! cutting what it is given into chunks and handing them over a bounded channel (blocking
//! while it is full, so at most `capacity` chunks plus the one being filled are in memory);
//! `ChannelBody` is the hyper body reading the other end. When the body is dropped (the
//! client went away) the writer's next hand-over fails, which stops the producer.
use std::io::{Error, ErrorKind, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

/// The size of the chunks handed over.
pub const CHUNK: usize = 1 << 20;

/// What travels over the channel: data, or the error that aborts the body.
type Item = Result<Bytes, Error>;

/// A writer/body pair joined by a channel holding at most `capacity` chunks of `chunk` bytes.
pub fn channel(capacity: usize, chunk: usize) -> (ChunkWriter, ChannelBody) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let chunk = chunk.max(1);
    (
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(chunk),
            chunk,
        },
        ChannelBody { rx },
    )
}

/// The blocking producer's end. Must not be used on a runtime thread (it blocks).
pub struct ChunkWriter {
    tx: mpsc::Sender<Item>,
    buf: Vec<u8>,
    chunk: usize,
}

impl ChunkWriter {
    fn send(&mut self, item: Item) -> std::io::Result<()> {
        self.tx
            .blocking_send(item)
            .map_err(|_| Error::new(ErrorKind::BrokenPipe, "the receiver went away"))
    }

    fn send_buffered(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
        self.send(Ok(Bytes::from(full)))
    }

    /// Hands over what is still buffered; the body ends once the writer is dropped.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.send_buffered()
    }

    /// Ends the body with `error` instead of its end: hyper then drops the connection. What
    /// was buffered is discarded. Fails only if the receiver is already gone.
    pub fn abort(mut self, error: Error) -> std::io::Result<()> {
        self.buf.clear();
        self.send(Err(error))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = self.chunk - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= self.chunk {
            self.send_buffered()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_buffered()
    }
}

/// The response body: the chunks as they come, of unknown length (so HTTP/1.1 sends it
/// chunked).
pub struct ChannelBody {
    rx: mpsc::Receiver<Item>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn the_writer_blocks_once_the_channel_holds_its_capacity() {
        const CAP: usize = 2;
        const SIZE: usize = 1024;
        let (mut w, mut body) = channel(CAP, SIZE);
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = accepted.clone();
        let producer = std::thread::spawn(move || {
            for i in 0..20u8 {
                w.write_all(&[i; SIZE]).unwrap();
                seen.fetch_add(SIZE, Ordering::SeqCst);
            }
            w.finish().unwrap();
        });
        // Nobody reads: the producer gets no further than the channel's capacity (plus the
        // chunk it is trying to hand over).
        std::thread::sleep(Duration::from_millis(200));
        let early = accepted.load(Ordering::SeqCst);
        assert!(early <= CAP * SIZE, "{early} bytes accepted unread");
        assert!(early >= SIZE, "the producer did not start");
        let mut got = Vec::new();
        while let Some(item) = body.rx.blocking_recv() {
            let chunk = item.unwrap();
            assert!(chunk.len() <= SIZE);
            got.push(chunk);
        }
        producer.join().unwrap();
        assert_eq!(got.len(), 20);
        for (i, c) in got.iter().enumerate() {
            assert!(c.iter().all(|&b| usize::from(b) == i));
        }
    }

    #[test]
    fn a_gone_receiver_stops_the_writer_instead_of_hanging_it() {
        let (mut w, body) = channel(1, 16);
        drop(body);
        let e = w.write_all(&[1u8; 64]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe);
    }

    #[test]
    fn the_tail_is_sent_on_finish_and_an_abort_is_an_error_frame() {
        let (mut w, mut body) = channel(4, 8);
        w.write_all(b"0123456789").unwrap();
        w.finish().unwrap();
        assert_eq!(&body.rx.blocking_recv().unwrap().unwrap()[..], b"01234567");
        assert_eq!(&body.rx.blocking_recv().unwrap().unwrap()[..], b"89");
        assert!(body.rx.blocking_recv().is_none());

        let (mut w, mut body) = channel(4, 8);
        w.write_all(b"abc").unwrap();
        w.abort(Error::other("disk gone")).unwrap();
        assert!(body.rx.blocking_recv().unwrap().is_err());
        assert!(body.rx.blocking_recv().is_none());
    }
}
