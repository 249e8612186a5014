//! Getting write transactions into SQLite: one commit per write (`Durability::Immediate`) or
//! queued in memory and committed in groups (`Durability::Deferred`).
//!
//! In deferred mode a write's plan joins a queue while the writer still holds the state's
//! write lock, so the queue is in generation order. [`Persist::sync`] commits everything
//! queued so far in one SQLite transaction; commits are serialised by the store's lock, so
//! a caller that finds another commit in flight waits for it and then checks whether its own
//! target generation is already covered. A background thread commits what nobody synced,
//! after letting writes gather for the flush window; while writes keep coming it looks once
//! per window (so a writer does not wake it for each write) and it parks when idle. A failed
//! commit puts its plans back at the head of the queue (memory keeps the change, SQLite gets
//! it on the next good commit), and the caller of `sync` gets the error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::DbError;
use crate::schema::Schema;
use crate::sqlite::{Plan, Store};

/// After a failed background commit, wait this long before trying again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(100);

/// Flush windows in a row with nothing to commit after which the flusher parks until the next
/// write (while writes keep coming it looks once per window instead of being woken by each).
const IDLE_WINDOWS_BEFORE_PARKING: u32 = 50;

#[derive(Default)]
struct Queue {
    plans: Vec<Plan>,
    /// Generation of the newest queued plan (or of the state when nothing was queued yet).
    last: u64,
    /// The database is being dropped: the flusher stops.
    closed: bool,
    /// The flusher waits for `queued`: the next enqueue must wake it.
    parked: bool,
}

/// The SQLite side of a `Db`: the store, and in deferred mode the queue of uncommitted plans.
pub(crate) struct Persist {
    store: Mutex<Store>,
    schema: Schema,
    queue: Mutex<Queue>,
    queued: Condvar,
    /// Every generation up to this one is in SQLite.
    durable: AtomicU64,
}

impl Persist {
    /// Wraps an open store whose contents are at `generation`; with `flush_window`, starts
    /// the background flusher.
    pub fn new(
        store: Store,
        schema: Schema,
        generation: u64,
        flush_window: Option<Duration>,
    ) -> Arc<Persist> {
        let persist = Arc::new(Persist {
            store: Mutex::new(store),
            schema,
            queue: Mutex::new(Queue {
                last: generation,
                ..Queue::default()
            }),
            queued: Condvar::new(),
            durable: AtomicU64::new(generation),
        });
        if let Some(window) = flush_window {
            let flusher = Arc::clone(&persist);
            // Without the thread nothing breaks: writes are still committed by `sync`.
            let _ = std::thread::Builder::new()
                .name("xapi-db-flush".into())
                .spawn(move || flusher.flush_loop(window));
        }
        persist
    }

    /// Commits one plan now (immediate mode).
    pub fn commit_now(&self, plan: &Plan) -> Result<(), DbError> {
        self.store
            .lock()
            .commit(&self.schema, std::slice::from_ref(plan))?;
        self.durable.fetch_max(plan.generation, Ordering::AcqRel);
        Ok(())
    }

    /// Queues a plan for the next group commit (deferred mode). Callers hold the state's
    /// write lock, which keeps the queue in generation order.
    pub fn enqueue(&self, plan: Plan) {
        let mut queue = self.queue.lock();
        queue.last = plan.generation;
        queue.plans.push(plan);
        let wake = std::mem::take(&mut queue.parked);
        drop(queue);
        if wake {
            self.queued.notify_one();
        }
    }

    /// The newest generation known to be in SQLite.
    pub fn durable_generation(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Returns once every write queued before the call is in SQLite.
    pub fn sync(&self) -> Result<(), DbError> {
        let target = self.queue.lock().last;
        if self.durable_generation() >= target {
            return Ok(());
        }
        let mut store = self.store.lock();
        // A commit that was in flight may have covered the target meanwhile.
        if self.durable_generation() >= target {
            return Ok(());
        }
        let plans = std::mem::take(&mut self.queue.lock().plans);
        match store.commit(&self.schema, &plans) {
            Ok(()) => {
                if let Some(newest) = plans.last() {
                    self.durable.fetch_max(newest.generation, Ordering::AcqRel);
                }
                Ok(())
            }
            Err(e) => {
                let mut queue = self.queue.lock();
                let newer = std::mem::replace(&mut queue.plans, plans);
                queue.plans.extend(newer);
                Err(e)
            }
        }
    }

    /// Stops the flusher; what is still queued is committed by the caller's `sync`.
    pub fn close(&self) {
        self.queue.lock().closed = true;
        self.queued.notify_all();
    }

    /// The raw connection, for tests that need to break the file.
    #[cfg(test)]
    pub fn with_conn<R>(&self, f: impl FnOnce(&rusqlite::Connection) -> R) -> R {
        f(self.store.lock().conn())
    }

    /// Commits what nobody synced within a flush window of its write: parked while nothing
    /// is written, otherwise looking once per window.
    fn flush_loop(&self, window: Duration) {
        let mut idle = IDLE_WINDOWS_BEFORE_PARKING;
        loop {
            {
                let mut queue = self.queue.lock();
                if queue.plans.is_empty() && idle >= IDLE_WINDOWS_BEFORE_PARKING {
                    queue.parked = true;
                    while queue.parked && !queue.closed {
                        self.queued.wait(&mut queue);
                    }
                    idle = 0;
                }
                if queue.closed {
                    return;
                }
            }
            std::thread::sleep(window);
            if self.queue.lock().plans.is_empty() {
                idle += 1;
                continue;
            }
            idle = 0;
            if self.sync().is_err() {
                std::thread::sleep(RETRY_AFTER_FAILURE);
            }
        }
    }
}
