//! Network events: WSPEventSelect / WSPAsyncSelect registrations, the FD_* record that
//! WSPEnumNetworkEvents reads, and the event objects they signal.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use lingerstack_stack::Readiness;

use crate::consts::*;
use crate::error::WsaError;

/// Something the provider can signal: a Windows event object (WSAEVENT).
pub trait EventObject: Send + Sync {
    /// Signal it.
    fn set(&self);
    /// Reset it.
    fn reset(&self);
}

/// A manual-reset event, the Rust stand-in for a WSAEVENT.
#[derive(Default)]
pub struct Event {
    signalled: Mutex<bool>,
    cond: Condvar,
}

impl Event {
    /// A new, non-signalled event.
    pub fn new() -> Arc<Event> {
        Arc::new(Event::default())
    }

    /// Is it signalled?
    pub fn is_set(&self) -> bool {
        *self.signalled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until signalled or `timeout` passes; true when signalled.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut set = self.signalled.lock().unwrap_or_else(|e| e.into_inner());
        while !*set {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            set = self
                .cond
                .wait_timeout(set, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

impl EventObject for Event {
    fn set(&self) {
        *self.signalled.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cond.notify_all();
    }

    fn reset(&self) {
        *self.signalled.lock().unwrap_or_else(|e| e.into_inner()) = false;
    }
}

/// Where WSPAsyncSelect messages go: the stand-in for a window's message queue.
pub trait MessageSink: Send + Sync {
    /// Post `WSAMAKESELECTREPLY(event, error)` for `socket`.
    fn post(&self, socket: usize, event: i32, error: i32);
}

/// The target of a registration.
#[derive(Clone)]
pub enum EventTarget {
    /// WSPEventSelect: signal this event.
    Event(Arc<dyn EventObject>),
    /// WSPAsyncSelect: post a message.
    Message(Arc<dyn MessageSink>),
}

/// `WSANETWORKEVENTS`: the events recorded since the last enumeration, with their errors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkEvents {
    /// FD_* bits.
    pub events: i32,
    /// Error code per event bit (FD_READ_BIT, ...).
    pub errors: [i32; FD_MAX_EVENTS],
}

/// Something to do once the provider's locks are released.
pub(crate) enum Action {
    Signal(Arc<dyn EventObject>),
    Post(Arc<dyn MessageSink>, usize, i32, i32),
}

impl Action {
    pub(crate) fn run(self) {
        match self {
            Action::Signal(event) => event.set(),
            Action::Post(sink, socket, event, error) => sink.post(socket, event, error),
        }
    }
}

/// A socket's event registration and record.
#[derive(Default)]
pub(crate) struct Registration {
    pub(crate) mask: i32,
    pub(crate) target: Option<EventTarget>,
    /// The descriptor that registered (async-select messages carry it).
    pub(crate) handle: usize,
    pub(crate) record: NetworkEvents,
    /// Events that may be recorded now; a recorded event waits for its re-enabling call.
    pub(crate) enabled: i32,
}

impl Registration {
    /// Replace the registration (the last one wins) and clear the record.
    pub(crate) fn set(&mut self, handle: usize, target: Option<EventTarget>, mask: i32) {
        *self = Registration {
            mask,
            target,
            handle,
            record: NetworkEvents::default(),
            enabled: FD_ALL_EVENTS,
        };
    }

    /// Re-enable events after the call that consumes them (recv for FD_READ, ...).
    pub(crate) fn reenable(&mut self, bits: i32) {
        // FD_CONNECT and FD_CLOSE are posted once only.
        self.enabled |= bits & !(FD_CONNECT | FD_CLOSE);
    }

    /// Record what `ready` makes true among the registered, enabled events; return what to
    /// signal or post.
    pub(crate) fn update(&mut self, ready: &Readiness, actions: &mut Vec<Action>) {
        if self.mask == 0 || self.target.is_none() {
            return;
        }
        let error = ready.error.map(|e| WsaError::from(e).0).unwrap_or(0);
        // FD_CLOSE only once every byte has been read (P03).
        let conditions = [
            (FD_READ, FD_READ_BIT, ready.unread > 0, 0),
            (FD_WRITE, FD_WRITE_BIT, ready.writable, 0),
            (FD_ACCEPT, FD_ACCEPT_BIT, ready.acceptable, 0),
            (
                FD_CONNECT,
                FD_CONNECT_BIT,
                ready.connected,
                if ready.closed { 0 } else { error },
            ),
            (
                FD_CLOSE,
                FD_CLOSE_BIT,
                ready.closed && ready.unread == 0,
                error,
            ),
        ];
        for (bit, index, holds, code) in conditions {
            if holds && self.mask & bit != 0 && self.enabled & bit != 0 {
                self.enabled &= !bit;
                self.record.events |= bit;
                self.record.errors[index] = code;
                match self.target.clone() {
                    Some(EventTarget::Event(e)) => actions.push(Action::Signal(e)),
                    Some(EventTarget::Message(sink)) => {
                        actions.push(Action::Post(sink, self.handle, bit, code))
                    }
                    None => {}
                }
            }
        }
    }

    /// Take the record (WSPEnumNetworkEvents).
    pub(crate) fn take(&mut self) -> NetworkEvents {
        std::mem::take(&mut self.record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(mask: i32) -> (Registration, Arc<Event>) {
        let event = Event::new();
        let mut r = Registration::default();
        r.set(7, Some(EventTarget::Event(event.clone())), mask);
        (r, event)
    }

    #[test]
    fn read_is_posted_once_until_reenabled() {
        let (mut r, _) = reg(FD_READ);
        let ready = Readiness {
            readable: true,
            unread: 5,
            ..Readiness::default()
        };
        let mut actions = vec![];
        r.update(&ready, &mut actions);
        r.update(&ready, &mut actions);
        assert_eq!(actions.len(), 1);
        assert_eq!(r.take().events, FD_READ);
        r.reenable(FD_READ);
        r.update(&ready, &mut actions);
        assert_eq!(actions.len(), 2);
    }

    #[test]
    fn p03_close_waits_for_data_to_be_read() {
        let (mut r, _) = reg(FD_READ | FD_CLOSE);
        let mut actions = vec![];
        r.update(
            &Readiness {
                readable: true,
                unread: 3,
                closed: true,
                ..Readiness::default()
            },
            &mut actions,
        );
        assert_eq!(r.record.events, FD_READ);
        r.update(
            &Readiness {
                readable: true,
                unread: 0,
                closed: true,
                ..Readiness::default()
            },
            &mut actions,
        );
        assert_eq!(r.record.events, FD_READ | FD_CLOSE);
        assert_eq!(r.record.errors[FD_CLOSE_BIT], 0);
    }

    #[test]
    fn p02_reset_reports_connreset_on_close() {
        let (mut r, _) = reg(FD_CLOSE);
        let mut actions = vec![];
        let ready = Readiness {
            closed: true,
            error: Some(lingerstack_stack::StackError::ConnReset),
            ..Readiness::default()
        };
        r.update(&ready, &mut actions);
        assert_eq!(r.take().errors[FD_CLOSE_BIT], WSAECONNRESET);
        r.reenable(FD_ALL_EVENTS);
        r.update(&ready, &mut actions);
        assert_eq!(actions.len(), 1, "FD_CLOSE is posted once");
    }
}
