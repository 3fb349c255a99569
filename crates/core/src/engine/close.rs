//! Closing: the engine's half of WSPCloseSocket. A closed id leaves the table at once; its
//! smoltcp socket lives on here until the FIN handshake is done or its RST has been sent, under
//! one close deadline (close-semantics C24); finished ones wait out TIME-WAIT under a cap.

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};

use super::entry::{self, Entry, Kind};
use super::{Engine, Life, Op, Reply, Waiter, endpoint_addr};
use crate::command::{CloseMode, CloseOutcome, CloseReason, Done, Outcome, SocketId, SocketInfo};
use crate::error::StackError;
use crate::link::Tuple;

/// A socket whose id was closed and which smoltcp still holds.
pub(crate) struct Closing {
    id: SocketId,
    handle: SocketHandle,
    port: Option<u16>,
    /// At this time a graceful close that has not finished is reset.
    deadline: Instant,
    /// Set when the socket was aborted: its RST may be retried until then (the neighbour may
    /// never resolve), then the socket is freed regardless.
    give_up: Option<Instant>,
    reason: Option<CloseReason>,
    /// The FIN waits until the data is acknowledged ([`entry::fin_must_wait`]).
    fin_deferred: bool,
}

impl Closing {
    /// When this socket next needs a look, besides smoltcp's own timers.
    pub(crate) fn next_check(&self) -> Instant {
        // Once aborted only the retry bound matters; it lies ahead, so the runner never spins.
        self.give_up.unwrap_or(self.deadline)
    }
}

impl<R: Reply> Engine<R> {
    /// Close `id` by `mode` (the facade has already applied the linger table).
    pub(super) fn close(&mut self, id: SocketId, mode: CloseMode, reply: R, now: Instant) {
        if let Some(outcome) = self.close_now(id, mode, Some(reply), now) {
            let (reply, outcome) = outcome;
            self.answers.push((reply, outcome));
        }
    }

    /// Close `id`; the answer, unless a blocking linger close parks it (or `reply` is `None`:
    /// a stop's own aborts, which nobody waits for and which never linger).
    fn close_now(
        &mut self,
        id: SocketId,
        mode: CloseMode,
        reply: Option<R>,
        now: Instant,
    ) -> Option<(R, Outcome)> {
        let Some(entry) = self.entries.get(&id) else {
            return reply.map(|r| (r, Err(StackError::NotSocket.into())));
        };
        // C07: a non-blocking linger close that cannot finish now changes nothing at all.
        if let (CloseMode::LingerNonBlocking { .. }, Kind::Conn(h)) = (mode, &entry.kind) {
            let socket = self.sockets.get::<tcp::Socket>(*h);
            let unread = socket.recv_queue() > 0;
            if socket.send_queue() > 0 && !unread && socket.state() != State::Closed {
                return reply.map(|r| (r, Err(StackError::WouldBlock.into())));
            }
        }
        let entry = self.entries.remove(&id).expect("checked above");
        self.release_waiters(id);
        if let Some(port) = entry.bound_port {
            self.ports.unbind(port);
        }
        let outcome = match entry.kind {
            Kind::Fresh => CloseOutcome::Nothing,
            Kind::Listener(ref listener) => {
                self.close_listener(id, &listener.slots, now);
                CloseOutcome::Nothing
            }
            Kind::Conn(handle) => match self.close_connection(id, &entry, handle, mode, now) {
                Some(outcome) => outcome,
                None => {
                    // A blocking linger close: answered when finished or after its RST.
                    let deadline = match mode {
                        CloseMode::Linger { timeout } => Some(now + Duration::from(timeout)),
                        _ => None,
                    };
                    let op = Op::Linger {
                        handle,
                        reset: false,
                    };
                    if let Some(reply) = reply {
                        self.waiters.push(Waiter {
                            id,
                            op,
                            deadline,
                            overlapped: false,
                            reply,
                        });
                    }
                    return None;
                }
            },
        };
        reply.map(|r| (r, Ok(Done::Closed(outcome))))
    }

    /// Close a listener: idle slots go at once, connections not yet accepted are reset (C15).
    fn close_listener(&mut self, id: SocketId, slots: &[SocketHandle], now: Instant) {
        self.listeners_dirty = true;
        for &handle in slots {
            let socket = self.socket(handle);
            if socket.state() == State::Listen
                || (socket.state() == State::Closed && socket.remote_endpoint().is_none())
            {
                self.remove_socket(handle);
                continue;
            }
            let port = socket.local_endpoint().map(|e| e.port);
            if let Some(port) = port {
                self.ports.hold(port);
            }
            self.push_closing(
                id,
                handle,
                port,
                now + Duration::from(self.config.close_deadline),
            );
            self.abort_closing(handle, CloseReason::LocalAbort, now);
        }
    }

    /// Close a connection; `None` when a blocking linger must wait.
    fn close_connection(
        &mut self,
        id: SocketId,
        entry: &Entry,
        handle: SocketHandle,
        mode: CloseMode,
        now: Instant,
    ) -> Option<CloseOutcome> {
        let port = entry.local.map(|l| l.port());
        let socket = self.socket(handle);
        let state = socket.state();
        let unread = socket.recv_queue() > 0;
        let default_deadline = Duration::from(self.config.close_deadline);
        let deadline = now
            + match mode {
                CloseMode::Graceful { deadline: Some(d) }
                | CloseMode::LingerNonBlocking { deadline: Some(d) } => Duration::from(d),
                CloseMode::Linger { timeout } => Duration::from(timeout),
                _ => default_deadline,
            };
        // The port stays held (by `track`'s hold at connect/accept) until the socket leaves the set.
        self.push_closing(id, handle, port, deadline);
        if state == State::Closed {
            // Reset already (by the peer or by us): if our RST has not left yet, bound its wait.
            if self.socket(handle).remote_endpoint().is_some() {
                let give_up = now + Duration::from(self.config.rst_retry);
                self.closing.last_mut().expect("pushed above").give_up = Some(give_up);
            }
            return Some(CloseOutcome::Nothing);
        }
        // Precedence (close-semantics): linger {1,0} first, then unread data, then the mode.
        let reset = match mode {
            CloseMode::Abort => Some(CloseReason::LocalAbort),
            _ if unread => Some(CloseReason::UnreadData),
            // C14: a connect in progress is abandoned; never a completed handshake afterwards.
            _ if matches!(state, State::SynSent | State::SynReceived) => {
                Some(CloseReason::LocalAbort)
            }
            _ => None,
        };
        if let Some(reason) = reset {
            log::debug!("{id:?} closing with RST ({reason:?})");
            self.abort_closing(handle, reason, now);
            return Some(CloseOutcome::Reset(reason));
        }
        if entry.reason == Some(CloseReason::PeerReset) {
            return Some(CloseOutcome::Nothing);
        }
        if entry::fin_must_wait(self.sockets.get::<tcp::Socket>(handle)) {
            self.closing.last_mut().expect("pushed above").fin_deferred = true;
        } else {
            self.socket(handle).close();
        }
        log::debug!("{id:?} closing gracefully ({mode:?})");
        match mode {
            CloseMode::Linger { timeout } => {
                // The linger waiter resets at `timeout`; the close deadline must not come first.
                let linger = Duration::from(timeout);
                let closing = self.closing.last_mut().expect("pushed above");
                closing.deadline = now + linger.max(default_deadline);
                None
            }
            _ => Some(CloseOutcome::Background),
        }
    }

    fn push_closing(
        &mut self,
        id: SocketId,
        handle: SocketHandle,
        port: Option<u16>,
        deadline: Instant,
    ) {
        self.closing.push(Closing {
            id,
            handle,
            port,
            deadline,
            give_up: None,
            reason: None,
            fin_deferred: false,
        });
    }

    /// Reset a closing socket now; it is freed once the RST has left (or the retry bound passed).
    pub(super) fn abort_closing(
        &mut self,
        handle: SocketHandle,
        reason: CloseReason,
        now: Instant,
    ) {
        if let Some(c) = self.closing.iter_mut().find(|c| c.handle == handle)
            && c.give_up.is_none()
        {
            c.give_up = Some(now + Duration::from(self.config.rst_retry));
            c.reason = Some(reason);
            self.stats.resets_sent += 1;
            self.sockets.get_mut::<tcp::Socket>(handle).abort();
        }
    }

    /// Is a blocking linger close finished? (`reset`: it was reset at its timeout.)
    pub(super) fn linger_done(&mut self, handle: SocketHandle, reset: bool) -> Option<Done> {
        let closing = self.closing.iter().find(|c| c.handle == handle);
        let Some(closing) = closing else {
            // Freed already: finished one way or the other.
            let outcome = if reset {
                CloseOutcome::Reset(CloseReason::LingerTimeout)
            } else {
                CloseOutcome::Finished
            };
            return Some(Done::Closed(outcome));
        };
        if let Some(reason) = closing.reason {
            // Reset (timeout, unread data): answer once the RST has gone out.
            let socket = self.sockets.get::<tcp::Socket>(handle);
            return socket
                .remote_endpoint()
                .is_none()
                .then_some(Done::Closed(CloseOutcome::Reset(reason)));
        }
        let socket = self.sockets.get::<tcp::Socket>(handle);
        (socket.send_queue() == 0 && entry::fin_acked(socket.state()))
            .then_some(Done::Closed(CloseOutcome::Finished))
    }

    /// After a poll: move closing sockets along, free the finished ones. True when a socket
    /// was aborted and needs a poll.
    pub(super) fn settle_closing(&mut self, now: Instant) -> bool {
        let mut again = false;
        let mut i = 0;
        while i < self.closing.len() {
            let c = &mut self.closing[i];
            let socket = self.sockets.get_mut::<tcp::Socket>(c.handle);
            if c.fin_deferred && !entry::fin_must_wait(socket) {
                // The data is acknowledged (or the connection moved on): the FIN may go.
                c.fin_deferred = false;
                socket.close();
                again = true;
            }
            let state = socket.state();
            if state == State::TimeWait {
                // Finished; it only waits out TIME-WAIT now, in arrival order.
                let c = self.closing.swap_remove(i);
                self.time_wait.push_back(c);
                continue;
            }
            let rst_sent = socket.remote_endpoint().is_none();
            let retry_over = c.give_up.is_some_and(|at| now >= at);
            if state == State::Closed && (rst_sent || retry_over) {
                let c = self.closing.swap_remove(i);
                self.free_closing(c);
                continue;
            }
            // C12: data arriving after the close cannot be read by anyone: reset.
            let unread = socket.recv_queue() > 0;
            if c.give_up.is_none() && state != State::Closed && (unread || now >= c.deadline) {
                let reason = if unread {
                    CloseReason::UnreadData
                } else {
                    CloseReason::CloseDeadline
                };
                log::info!(
                    "{:?} reset while closing: {reason:?} (state {})",
                    c.id,
                    entry::state_name(state)
                );
                let handle = c.handle;
                self.abort_closing(handle, reason, now);
                again = true;
            }
            i += 1;
        }
        self.settle_time_wait();
        again
    }

    /// Free TIME-WAIT sockets whose time is up, and the oldest beyond `max_time_wait` (as
    /// Linux's tcp_max_tw_buckets): smoltcp scans every socket for every segment, so the set
    /// must stay small at high connection rates. Removing a socket sends nothing. All wait the
    /// same 10 s, so only the front of the queue can be due.
    fn settle_time_wait(&mut self) {
        while let Some(front) = self.time_wait.front() {
            let expired = self.sockets.get::<tcp::Socket>(front.handle).state() != State::TimeWait;
            if !expired && self.time_wait.len() <= self.config.max_time_wait {
                break;
            }
            let c = self.time_wait.pop_front().expect("front exists");
            self.free_closing(c);
        }
    }

    /// A new SYN above the old connection's sequence numbers arrived for `tuple` (the guard
    /// holds it): end that connection's TIME-WAIT so a listener can take the SYN (RFC 6191).
    /// A connection an application still holds is left alone; a tuple with no socket at all
    /// is forgotten by the guard.
    pub(super) fn retire_time_wait(&mut self, tuple: &Tuple) {
        let matches = |sockets: &SocketSet<'static>, c: &Closing| {
            let s = sockets.get::<tcp::Socket>(c.handle);
            s.local_endpoint() == Some(tuple.local) && s.remote_endpoint() == Some(tuple.remote)
        };
        let sockets = &self.sockets;
        let queued = self.time_wait.iter().position(|c| matches(sockets, c));
        let closing = self.closing.iter().position(|c| {
            matches(sockets, c) && sockets.get::<tcp::Socket>(c.handle).state() == State::TimeWait
        });
        let c = match (queued, closing) {
            (Some(i), _) => self.time_wait.remove(i),
            (None, Some(i)) => Some(self.closing.swap_remove(i)),
            (None, None) => None,
        };
        match c {
            Some(c) => {
                log::debug!(
                    "{:?}: TIME-WAIT ended by a new SYN from {}",
                    c.id,
                    tuple.remote
                );
                self.device.guard_mut().note_reused();
                self.free_closing(c);
            }
            None if !self.holds_tuple(tuple) => self.device.guard_mut().forget(tuple),
            None => {}
        }
    }

    /// Does an application still hold a connection on `tuple`?
    fn holds_tuple(&self, tuple: &Tuple) -> bool {
        self.entries.values().any(|e| match e.kind {
            Kind::Conn(h) => {
                let s = self.sockets.get::<tcp::Socket>(h);
                s.local_endpoint() == Some(tuple.local) && s.remote_endpoint() == Some(tuple.remote)
            }
            _ => false,
        })
    }

    fn free_closing(&mut self, c: Closing) {
        let socket = self.sockets.get::<tcp::Socket>(c.handle);
        let graceful = c.reason.is_none();
        if graceful {
            self.stats.graceful_closes += 1;
        }
        log::debug!(
            "{:?} freed ({}; {:?})",
            c.id,
            entry::state_name(socket.state()),
            c.reason.unwrap_or(CloseReason::Graceful)
        );
        self.remove_socket(c.handle);
        if let Some(port) = c.port {
            self.ports.release(port);
        }
    }

    /// Closing sockets for status pages.
    pub(super) fn closing_info(&self) -> Vec<SocketInfo> {
        self.closing
            .iter()
            .chain(&self.time_wait)
            .map(|c| {
                let s = self.sockets.get::<tcp::Socket>(c.handle);
                SocketInfo {
                    id: c.id,
                    state: entry::state_name(s.state()),
                    local: s.local_endpoint().map(endpoint_addr),
                    remote: s.remote_endpoint().map(endpoint_addr),
                    send_queue: s.send_queue(),
                    recv_queue: s.recv_queue(),
                    ready: Default::default(),
                    reason: c.reason,
                    options: self.defaults,
                    closing: true,
                }
            })
            .collect()
    }

    /// Stop: reset every open connection, let closing ones finish within `grace`, then stop.
    pub(super) fn stop(&mut self, grace: std::time::Duration, reply: R, now: Instant) {
        let ids: Vec<SocketId> = self.entries.keys().copied().collect();
        for id in ids {
            self.close_now(id, CloseMode::Abort, None, now);
        }
        let until = now + Duration::from(grace);
        log::info!(
            "stopping: {} sockets closing, grace {grace:?}",
            self.closing.len()
        );
        self.life = Life::Stopping {
            until,
            reply: Some(reply),
        };
    }

    /// While stopping: reset what is left at the grace deadline, stop when nothing is left.
    pub(super) fn settle_stop(&mut self, now: Instant) -> bool {
        let Life::Stopping { until, .. } = self.life else {
            return false;
        };
        if now >= until {
            // TIME-WAIT needs no RST (its connection is finished): free those silently.
            while let Some(c) = self.time_wait.pop_front() {
                self.free_closing(c);
            }
            let handles: Vec<SocketHandle> = self.closing.iter().map(|c| c.handle).collect();
            let mut again = false;
            for h in handles {
                let before = self.stats.resets_sent;
                self.abort_closing(h, CloseReason::NetworkDown, now);
                again |= self.stats.resets_sent != before;
            }
            if again {
                return true;
            }
        }
        let rst_pending = self.closing.iter().any(|c| {
            self.sockets
                .get::<tcp::Socket>(c.handle)
                .remote_endpoint()
                .is_some()
                && c.give_up.is_some()
        });
        if self.closing.is_empty() || (now >= until && !rst_pending) {
            for w in self.waiters.drain(..) {
                self.answers
                    .push((w.reply, Err(StackError::NetworkDown.into())));
            }
            if let Life::Stopping {
                reply: Some(reply), ..
            } = std::mem::replace(&mut self.life, Life::Stopped)
            {
                log::info!("stopped");
                self.answers.push((reply, Ok(Done::Unit)));
            }
        }
        false
    }
}
