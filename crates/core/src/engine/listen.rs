//! Listening: listen, accept, and keeping each listener able to take new connections under
//! bursts and SYN floods.
//!
//! smoltcp has no backlog: one listening socket takes one SYN. A listener here owns a set of
//! smoltcp sockets ("slots"): a few idle ones in LISTEN, the half-open ones (SYN-RECEIVED),
//! and the connections ready to be accepted. After a poll in which SYNs arrived, the engine
//! tends each listener: it frees slots that died before accept, keeps as many idle slots as
//! SYNs wait (the segment guard holds a SYN that found no idle slot instead of letting
//! smoltcp reset it), and when `max_half_open` slots are half-open it evicts the oldest, so a
//! flood of SYNs whose SYN-ACKs are never answered cannot lock out a real client. A SYN that
//! finds the accept queue (`backlog`) full is dropped, as Linux does; the client retries.

use std::collections::HashMap;
use std::net::SocketAddr;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpListenEndpoint};

use super::entry::{self, Entry, Kind, Listener};
use super::{Engine, Reply, endpoint_addr};
use crate::command::{Done, Failure, SocketId};
use crate::error::StackError;

/// Idle listening sockets kept per listener (fewer if the backlog is smaller): a burst larger
/// than this waits one engine round for more.
const SPARE_SLOTS: usize = 8;
/// How often listeners are tended even when no SYN arrived (to free slots that died).
const TEND_EVERY: Duration = Duration::from_secs(1);

/// What a listener's slots are doing.
#[derive(Default)]
struct Census {
    idle: Vec<SocketHandle>,
    /// Half-open slots with the time each was first seen so.
    half_open: Vec<(Instant, SocketHandle)>,
    /// Connections waiting to be accepted.
    ready: Vec<SocketHandle>,
    dead: Vec<SocketHandle>,
}

impl<R: Reply> Engine<R> {
    pub(super) fn listen(&mut self, id: SocketId, backlog: usize) -> Result<(), StackError> {
        let max = self.config.max_backlog;
        let entry = self.entry(id)?;
        match entry.kind {
            Kind::Listener(_) => return Ok(()),
            Kind::Conn(_) => return Err(StackError::IsConnected),
            Kind::Fresh => {}
        }
        let local = entry.local.ok_or(StackError::InvalidInput)?;
        let backlog = backlog.clamp(1, max);
        entry.kind = Kind::Listener(Listener {
            slots: Vec::new(),
            backlog,
            half_open_since: HashMap::new(),
        });
        log::debug!("{id:?} listening on {local} with backlog {backlog}");
        let idle = self.tend_listener(id, 0, Instant::ZERO)?;
        // The guard must know the port before the next poll reads the link: a driver answers
        // this call at once and polls after, so a client's burst can already be waiting, and
        // SYNs to a port the guard does not know pass to smoltcp, which resets every one
        // beyond the idle slots.
        self.device.guard_mut().set_port_free(local.port(), idle);
        self.listeners_dirty = true;
        Ok(())
    }

    pub(super) fn try_accept(&mut self, id: SocketId) -> Result<Option<Done>, Failure> {
        let entry = self.entries.get(&id).ok_or(StackError::NotSocket)?;
        let Kind::Listener(listener) = &entry.kind else {
            return Err(StackError::InvalidInput.into());
        };
        let options = entry.options;
        let found = listener.slots.iter().position(|&h| {
            entry::synchronized(self.sockets.get::<smoltcp::socket::tcp::Socket>(h).state())
        });
        let Some(index) = found else {
            return Ok(None);
        };
        let handle = match self.entries.get_mut(&id).map(|e| &mut e.kind) {
            Some(Kind::Listener(l)) => l.slots.swap_remove(index),
            _ => unreachable!("checked above"),
        };
        // The idle slots are topped up after the poll; the accepted one leaves the listener.
        self.listeners_dirty = true;
        let socket = self.socket(handle);
        let state = socket.state();
        let peer = socket
            .remote_endpoint()
            .map(endpoint_addr)
            .ok_or(StackError::ConnReset)?;
        let local = socket.local_endpoint().map(endpoint_addr);
        let new_id = self.open();
        let conn = self.entry(new_id)?;
        conn.options = options;
        conn.kind = Kind::Conn(handle);
        conn.local = local;
        conn.last_state = state;
        if let Some(l) = local {
            self.ports.hold(l.port());
        }
        log::debug!("{id:?} accepted {new_id:?} from {peer}");
        Ok(Some(Done::Accepted(new_id, peer)))
    }

    /// After a poll: tend the listeners if SYNs arrived (or it is time), end the TIME-WAIT
    /// connections new SYNs asked for, and give the guard its held frames back. True when
    /// frames were released and need a poll.
    pub(super) fn settle_guard(&mut self, now: Instant) -> bool {
        for tuple in self.device.guard_mut().take_retire() {
            self.retire_time_wait(&tuple);
        }
        let activity = self.device.guard_mut().take_listener_activity();
        let demand = self.device.guard_mut().demand();
        if activity || !demand.is_empty() || self.listeners_dirty || now >= self.next_tend {
            self.tend_listeners(&demand, now);
            self.device.guard_mut().expire(now);
        }
        self.device.guard_mut().release_held()
    }

    /// Tend every listener and tell the guard how many idle slots each port has.
    fn tend_listeners(&mut self, demand: &HashMap<u16, usize>, now: Instant) {
        self.listeners_dirty = false;
        self.next_tend = now + TEND_EVERY;
        let listeners: Vec<(SocketId, u16)> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.kind, Kind::Listener(_)))
            .filter_map(|(id, e)| Some((*id, e.local?.port())))
            .collect();
        let mut free = Vec::with_capacity(listeners.len());
        for (id, port) in listeners {
            let want = demand.get(&port).copied().unwrap_or(0);
            if let Ok(idle) = self.tend_listener(id, want, now) {
                free.push((port, idle));
            }
        }
        self.device.guard_mut().set_listening(free.into_iter());
    }

    /// Bring one listener to `max(spare, waiting)` idle slots within its bounds. Returns the
    /// number of idle slots.
    fn tend_listener(
        &mut self,
        id: SocketId,
        waiting: usize,
        now: Instant,
    ) -> Result<usize, StackError> {
        let entry = self.entries.get(&id).ok_or(StackError::NotSocket)?;
        let Kind::Listener(listener) = &entry.kind else {
            return Err(StackError::InvalidInput);
        };
        let endpoint = listen_endpoint(entry.local.ok_or(StackError::InvalidInput)?);
        let options = entry.options;
        let backlog = listener.backlog;
        let mut census = self.census(listener, now);
        for handle in census.dead.drain(..) {
            self.remove_socket(handle);
        }
        let want = SPARE_SLOTS.min(backlog).max(waiting);
        while census.idle.len() > want {
            let handle = census.idle.pop().expect("more than wanted");
            self.remove_socket(handle);
        }
        // Oldest half-open first out.
        census
            .half_open
            .sort_unstable_by_key(|(since, _)| std::cmp::Reverse(*since));
        while census.idle.len() < want && census.ready.len() < backlog {
            if census.idle.len() + census.half_open.len() >= self.config.max_half_open {
                let Some((_, oldest)) = census.half_open.pop() else {
                    break;
                };
                log::debug!("{id:?}: evicting the oldest half-open connection");
                self.remove_socket(oldest);
                self.device.guard_mut().note_evicted();
            }
            let handle = self.new_socket(&options);
            let half_open_timeout = Duration::from(self.config.connect_timeout);
            let socket = self.socket(handle);
            socket
                .listen(endpoint)
                .map_err(|_| StackError::InvalidInput)?;
            // A half-open connection whose SYN-ACK is never answered gives up like a connect.
            socket.set_timeout(Some(half_open_timeout));
            census.idle.push(handle);
        }
        let idle = census.idle.len();
        if let Some(Entry {
            kind: Kind::Listener(l),
            ..
        }) = self.entries.get_mut(&id)
        {
            l.half_open_since = census.half_open.iter().map(|(t, h)| (*h, *t)).collect();
            l.slots = census.idle;
            l.slots.extend(census.half_open.iter().map(|(_, h)| *h));
            l.slots.extend(census.ready);
        }
        Ok(idle)
    }

    /// Sort a listener's slots by state.
    fn census(&self, listener: &Listener, now: Instant) -> Census {
        let mut census = Census::default();
        for &h in &listener.slots {
            let socket = self.sockets.get::<smoltcp::socket::tcp::Socket>(h);
            match socket.state() {
                State::Listen => census.idle.push(h),
                State::SynReceived => {
                    let since = listener.half_open_since.get(&h).copied().unwrap_or(now);
                    census.half_open.push((since, h));
                }
                State::Closed => census.dead.push(h),
                _ => census.ready.push(h),
            }
        }
        census
    }
}

/// The smoltcp listen endpoint of a bound address (any address when unspecified).
pub(super) fn listen_endpoint(local: SocketAddr) -> IpListenEndpoint {
    let addr = (!local.ip().is_unspecified()).then(|| IpAddress::from(local.ip()));
    IpListenEndpoint {
        addr,
        port: local.port(),
    }
}
