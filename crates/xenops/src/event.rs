//! Domain events (`DomainEvent`) and the broadcast bus a backend publishes them on.
//!
//! Every `events()` call makes a new subscriber with its own unbounded `std::sync::mpsc`
//! channel; a subscriber that drops its receiver is forgotten at the next publish. Publishing
//! never blocks, so backends may publish while holding their own locks, which keeps the order
//! of events the order of changes.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::device::{DeviceKind, XenbusState};
use crate::domain::{DomainState, ShutdownReason};

/// Something that happened to a domain, for the daemon to reflect in the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomainEvent {
    /// A domain was built (it starts paused).
    Created {
        /// The VM uuid.
        uuid: Uuid,
        /// Its new domid.
        domid: u32,
    },
    /// The domain moved to a new state (sent for every change, including the ones below).
    StateChanged {
        /// The VM uuid.
        uuid: Uuid,
        /// The domid.
        domid: u32,
        /// The new state.
        state: DomainState,
    },
    /// The guest shut down; the domain is being torn down.
    Shutdown {
        /// The VM uuid.
        uuid: Uuid,
        /// The domid.
        domid: u32,
        /// Why.
        reason: ShutdownReason,
    },
    /// The guest crashed; the domain stays until destroyed.
    Crashed {
        /// The VM uuid.
        uuid: Uuid,
        /// The domid.
        domid: u32,
    },
    /// The domain is gone and its memory returned to the host.
    Destroyed {
        /// The VM uuid.
        uuid: Uuid,
        /// The domid it had.
        domid: u32,
    },
    /// The balloon driver reached the memory target.
    MemoryTargetReached {
        /// The VM uuid.
        uuid: Uuid,
        /// The domid.
        domid: u32,
        /// The memory the domain now holds, in bytes.
        bytes: u64,
    },
    /// The guest agent wrote new data (`guest_data` changed).
    GuestAgentUpdated {
        /// The VM uuid.
        uuid: Uuid,
        /// The domid.
        domid: u32,
    },
    /// A device end changed its xenbus state.
    DeviceStateChanged {
        /// The VM uuid.
        uuid: Uuid,
        /// The domid.
        domid: u32,
        /// VBD or VIF.
        kind: DeviceKind,
        /// The device name.
        device: String,
        /// The backend's new state.
        backend_state: XenbusState,
        /// The frontend's new state.
        frontend_state: XenbusState,
    },
}

impl DomainEvent {
    /// The domid of the domain the event is about.
    pub fn domid(&self) -> u32 {
        match self {
            DomainEvent::Created { domid, .. }
            | DomainEvent::StateChanged { domid, .. }
            | DomainEvent::Shutdown { domid, .. }
            | DomainEvent::Crashed { domid, .. }
            | DomainEvent::Destroyed { domid, .. }
            | DomainEvent::MemoryTargetReached { domid, .. }
            | DomainEvent::GuestAgentUpdated { domid, .. }
            | DomainEvent::DeviceStateChanged { domid, .. } => *domid,
        }
    }

    /// The VM the event is about.
    pub fn uuid(&self) -> Uuid {
        match self {
            DomainEvent::Created { uuid, .. }
            | DomainEvent::StateChanged { uuid, .. }
            | DomainEvent::Shutdown { uuid, .. }
            | DomainEvent::Crashed { uuid, .. }
            | DomainEvent::Destroyed { uuid, .. }
            | DomainEvent::MemoryTargetReached { uuid, .. }
            | DomainEvent::GuestAgentUpdated { uuid, .. }
            | DomainEvent::DeviceStateChanged { uuid, .. } => *uuid,
        }
    }
}

/// A broadcast of `DomainEvent`s to any number of subscribers.
#[derive(Debug, Default)]
pub struct EventBus {
    subscribers: Mutex<Vec<Sender<DomainEvent>>>,
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        EventBus::default()
    }

    /// A new subscriber that receives every event published from now on.
    pub fn subscribe(&self) -> Receiver<DomainEvent> {
        let (tx, rx) = channel();
        self.lock().push(tx);
        rx
    }

    /// Send an event to every live subscriber, forgetting the ones that went away.
    pub fn publish(&self, event: DomainEvent) {
        let mut subscribers = self.lock();
        subscribers.retain(|tx| tx.send(event.clone()).is_ok());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Sender<DomainEvent>>> {
        // A panic while holding this lock cannot leave the list inconsistent.
        self.subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscriber_gets_every_event_and_dropped_ones_are_forgotten() {
        let bus = EventBus::new();
        let a = bus.subscribe();
        let b = bus.subscribe();
        let uuid = Uuid::new_v4();
        bus.publish(DomainEvent::Created { uuid, domid: 1 });
        assert_eq!(
            a.try_recv().unwrap(),
            DomainEvent::Created { uuid, domid: 1 }
        );
        assert_eq!(b.try_recv().unwrap().uuid(), uuid);
        drop(b);
        bus.publish(DomainEvent::Destroyed { uuid, domid: 1 });
        assert_eq!(bus.lock().len(), 1);
        assert_eq!(
            a.try_recv().unwrap(),
            DomainEvent::Destroyed { uuid, domid: 1 }
        );
    }
}
