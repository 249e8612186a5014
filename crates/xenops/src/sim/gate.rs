//! The transition gate: where every simulated state transition waits before it happens.
//!
//! `Instant` lets everything through, `Delayed` sleeps, and `SingleStep` parks each
//! transition until a test calls `SimHost::step`, which releases the oldest waiting one and
//! returns once it has been applied (the `Ticket` is dropped). Nothing here touches domains.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How the gate behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateMode {
    /// No waiting.
    Open,
    /// Sleep this long before each transition.
    Sleep(Duration),
    /// Wait for `step`.
    Step,
}

#[derive(Debug, Default)]
struct State {
    next_ticket: u64,
    waiting: VecDeque<(u64, String)>,
    released: BTreeSet<u64>,
    finished: BTreeSet<u64>,
}

/// The gate shared by every thread that applies transitions.
#[derive(Debug)]
pub struct Gate {
    mode: GateMode,
    state: Mutex<State>,
    cv: Condvar,
}

/// Held while a released transition is applied; dropping it tells `step` it is done.
#[derive(Debug)]
pub struct Ticket<'a> {
    gate: &'a Gate,
    id: Option<u64>,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.gate.lock().finished.insert(id);
            self.gate.cv.notify_all();
        }
    }
}

impl Gate {
    /// A gate in the given mode.
    pub fn new(mode: GateMode) -> Self {
        Gate {
            mode,
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        }
    }

    /// The gate's mode.
    pub fn mode(&self) -> GateMode {
        self.mode
    }

    /// Wait until the transition `label` may happen; apply it while holding the ticket.
    pub fn pass(&self, label: String) -> Ticket<'_> {
        match self.mode {
            GateMode::Open => Ticket {
                gate: self,
                id: None,
            },
            GateMode::Sleep(delay) => {
                std::thread::sleep(delay);
                Ticket {
                    gate: self,
                    id: None,
                }
            }
            GateMode::Step => {
                let mut state = self.lock();
                let id = state.next_ticket;
                state.next_ticket += 1;
                state.waiting.push_back((id, label));
                self.cv.notify_all();
                while !state.released.contains(&id) {
                    state = self.cv.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                state.released.remove(&id);
                Ticket {
                    gate: self,
                    id: Some(id),
                }
            }
        }
    }

    /// Release the oldest waiting transition and wait until it has been applied. Returns its
    /// label, or `None` if nothing came to wait within `timeout`.
    pub fn step(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        let (id, label) = loop {
            if let Some(front) = state.waiting.pop_front() {
                break front;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            state = self
                .cv
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        state.released.insert(id);
        self.cv.notify_all();
        // The released thread always finishes (its ticket is dropped even on error), so this
        // wait is bounded by the transition itself, not by the caller's timeout.
        while !state.finished.contains(&id) {
            state = self.cv.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.finished.remove(&id);
        Some(label)
    }

    /// Labels of the transitions waiting for `step`, oldest first.
    pub fn waiting(&self) -> Vec<String> {
        self.lock()
            .waiting
            .iter()
            .map(|(_, label)| label.clone())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few integer sets; a panicking holder cannot leave it half-updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    #[test]
    fn step_releases_one_waiter_and_returns_after_it_has_finished() {
        let gate = Arc::new(Gate::new(GateMode::Step));
        let applied = Arc::new(AtomicBool::new(false));
        let worker = {
            let (gate, applied) = (gate.clone(), applied.clone());
            std::thread::spawn(move || {
                let _ticket = gate.pass("unpause".into());
                applied.store(true, Ordering::SeqCst);
            })
        };
        assert_eq!(
            gate.step(Duration::from_secs(5)).as_deref(),
            Some("unpause")
        );
        assert!(applied.load(Ordering::SeqCst));
        worker.join().unwrap();
        assert_eq!(gate.step(Duration::from_millis(10)), None);
    }

    #[test]
    fn open_gate_never_waits() {
        let gate = Gate::new(GateMode::Open);
        drop(gate.pass("x".into()));
        assert!(gate.waiting().is_empty());
    }
}
