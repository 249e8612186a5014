//! The timer queue of the simulated host: guest actions that happen later (boot finished,
//! crash, self-shutdown, balloon reached), served by one thread per `SimHost`.
//!
//! It only orders and hands out entries; the engine checks each entry still applies.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::table::TimerAction;

/// A due guest action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// When it is due.
    pub at: Instant,
    seq: u64,
    /// The VM.
    pub uuid: Uuid,
    /// The domain it was scheduled for.
    pub domid: u32,
    /// What happens.
    pub action: TimerAction,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Default)]
struct State {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    stop: bool,
}

/// The queue.
#[derive(Debug, Default)]
pub struct Timers {
    state: Mutex<State>,
    cv: Condvar,
}

impl Timers {
    /// Queue `action` for the domain `domid` of `uuid` at `at`.
    pub fn schedule(&self, at: Instant, uuid: Uuid, domid: u32, action: TimerAction) {
        let mut state = self.lock();
        state.seq += 1;
        let seq = state.seq;
        state.heap.push(Reverse(Entry {
            at,
            seq,
            uuid,
            domid,
            action,
        }));
        self.cv.notify_all();
    }

    /// Wait for the next due entry; `None` once `stop` was called.
    pub fn next(&self) -> Option<Entry> {
        let mut state = self.lock();
        loop {
            if state.stop {
                return None;
            }
            let now = Instant::now();
            let wait = match state.heap.peek() {
                Some(Reverse(entry)) if entry.at <= now => {
                    return state.heap.pop().map(|Reverse(entry)| entry);
                }
                Some(Reverse(entry)) => entry.at - now,
                None => Duration::from_secs(3600),
            };
            state = self
                .cv
                .wait_timeout(state, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Make `next` return `None` from now on.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.cv.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A heap of plain entries; a panicking holder cannot leave it half-updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The monotonic instant of a wall-clock deadline (now, if it has passed).
pub fn instant_of(at_unix_ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(at_unix_ms.saturating_sub(now_unix_ms()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_out_in_deadline_order_and_stop_ends_the_wait() {
        let timers = Timers::default();
        let now = Instant::now();
        let uuid = Uuid::new_v4();
        timers.schedule(now + Duration::from_millis(20), uuid, 2, TimerAction::Crash);
        timers.schedule(now, uuid, 1, TimerAction::Boot);
        assert_eq!(timers.next().unwrap().domid, 1);
        let second = timers.next().unwrap();
        assert_eq!(second.action, TimerAction::Crash);
        assert!(Instant::now() >= now + Duration::from_millis(20));
        timers.stop();
        assert_eq!(timers.next(), None);
    }
}
