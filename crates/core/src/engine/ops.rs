//! The socket calls: bind, connect, send, recv, shutdown, and the per-poll tracking of
//! connections the application still holds (listening is in `listen.rs`).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration as SmolDuration, Instant};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use super::entry::{self, Entry, Kind};
use super::keepalive::{self, Step};
use super::{Engine, Reply, endpoint_addr};
use crate::command::{CloseReason, Done, Failure, KeepAlive, Lent, Shutdown, SocketId, TcpOptions};
use crate::config::StackConfig;
use crate::error::StackError;
use crate::link::heard::PeerKey;

impl<R: Reply> Engine<R> {
    pub(super) fn entry(&mut self, id: SocketId) -> Result<&mut Entry, StackError> {
        self.entries.get_mut(&id).ok_or(StackError::NotSocket)
    }

    /// Is `ip` one of ours, or unspecified, and of a configured family?
    fn check_local(&self, ip: IpAddr) -> Result<(), StackError> {
        self.check_family(ip)?;
        if ip.is_unspecified() || self.iface.has_ip_addr(IpAddress::from(ip)) {
            Ok(())
        } else {
            Err(StackError::AddrNotAvail)
        }
    }

    fn check_family(&self, ip: IpAddr) -> Result<(), StackError> {
        let configured = match ip {
            IpAddr::V4(_) => self.iface.ipv4_addr().is_some(),
            IpAddr::V6(_) => self
                .iface
                .ip_addrs()
                .iter()
                .any(|c| matches!(c.address(), IpAddress::Ipv6(_))),
        };
        if configured {
            Ok(())
        } else {
            Err(StackError::AfNotSupported)
        }
    }

    pub(super) fn bind(&mut self, id: SocketId, addr: SocketAddr) -> Result<(), StackError> {
        let entry = self.entries.get(&id).ok_or(StackError::NotSocket)?;
        if !matches!(entry.kind, Kind::Fresh) || entry.local.is_some() {
            return Err(StackError::InvalidInput);
        }
        self.check_local(addr.ip())?;
        let port = self.ports.bind(addr.port())?;
        let entry = self.entry(id)?;
        entry.local = Some(SocketAddr::new(addr.ip(), port));
        entry.bound_port = Some(port);
        Ok(())
    }

    /// Start a connection (the waitable part is [`Engine::try_connected`]).
    pub(super) fn connect(
        &mut self,
        id: SocketId,
        remote: SocketAddr,
        now: Instant,
    ) -> Result<(), StackError> {
        let entry = self.entries.get(&id).ok_or(StackError::NotSocket)?;
        match &entry.kind {
            Kind::Listener(_) => return Err(StackError::InvalidInput),
            Kind::Conn(h) => {
                let state = self.sockets.get::<tcp::Socket>(*h).state();
                return Err(match state {
                    State::SynSent | State::SynReceived => StackError::Already,
                    State::Closed => StackError::InvalidInput,
                    _ => StackError::IsConnected,
                });
            }
            Kind::Fresh => {}
        }
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(StackError::AddrNotAvail);
        }
        self.check_family(remote.ip())?;
        let (local, options) = (entry.local, entry.options);
        let port = match local {
            Some(l) => l.port(),
            None => self.ports.ephemeral()?,
        };
        let local_ep = IpListenEndpoint {
            addr: local
                .map(|l| IpAddress::from(l.ip()))
                .filter(|a| !a.is_unspecified()),
            port,
        };
        let handle = self.new_socket(&options);
        let remote_ep = IpEndpoint::new(IpAddress::from(remote.ip()), remote.port());
        if self
            .sockets
            .get_mut::<tcp::Socket>(handle)
            .connect(self.iface.context(), remote_ep, local_ep)
            .is_err()
        {
            self.remove_socket(handle);
            return Err(StackError::AddrNotAvail);
        }
        self.ports.hold(port);
        let local = self.socket(handle).local_endpoint().map(endpoint_addr);
        let entry = self.entry(id)?;
        entry.kind = Kind::Conn(handle);
        entry.local = local;
        entry.last_state = State::SynSent;
        entry.progress_at = Some(now);
        log::debug!("{id:?} connecting to {remote}");
        Ok(())
    }

    pub(super) fn try_connected(&mut self, id: SocketId) -> Result<Option<Done>, Failure> {
        let entry = self.entries.get(&id).ok_or(StackError::NotSocket)?;
        let Kind::Conn(handle) = entry.kind else {
            return Err(StackError::NotConnected.into());
        };
        let reason = entry.reason;
        let state = self.socket(handle).state();
        if entry::synchronized(state) {
            return Ok(Some(Done::Unit));
        }
        if state == State::Closed {
            let error = match reason {
                Some(CloseReason::TimedOut) => StackError::TimedOut,
                Some(CloseReason::NetworkDown) => StackError::NetworkDown,
                _ => StackError::ConnRefused,
            };
            return Err(error.into());
        }
        Ok(None)
    }

    /// The connection of `id` for a data call, or the error a data call gets.
    fn data_socket(&mut self, id: SocketId) -> Result<SocketHandle, StackError> {
        let entry = self.entries.get(&id).ok_or(StackError::NotSocket)?;
        match entry.kind {
            Kind::Conn(h) => Ok(h),
            _ => Err(StackError::NotConnected),
        }
    }

    pub(super) fn try_send(
        &mut self,
        id: SocketId,
        data: &[u8],
        queued: &mut usize,
    ) -> Result<Option<Done>, Failure> {
        let fail = |error: StackError, bytes: usize| Failure { error, bytes };
        let handle = self.data_socket(id).map_err(|e| fail(e, *queued))?;
        let entry = &self.entries[&id];
        if entry.send_shut {
            return Err(fail(StackError::Shutdown, *queued));
        }
        if let Some(error) = entry.broken() {
            return Err(fail(error, *queued));
        }
        let socket = self.socket(handle);
        match socket.state() {
            State::SynSent | State::SynReceived => {
                return Err(fail(StackError::NotConnected, *queued));
            }
            _ if !socket.may_send() => return Err(fail(StackError::Shutdown, *queued)),
            _ => {}
        }
        // `queued` is also the offset of what is left: no copying the rest down.
        *queued += socket.send_slice(&data[*queued..]).unwrap_or(0);
        if *queued == data.len() {
            Ok(Some(Done::Sent(*queued)))
        } else {
            Ok(None)
        }
    }

    pub(super) fn try_recv(
        &mut self,
        id: SocketId,
        into: RecvInto<'_>,
    ) -> Result<Option<Done>, Failure> {
        let handle = self.data_socket(id)?;
        let entry = &self.entries[&id];
        if entry.recv_shut {
            return Err(StackError::Shutdown.into());
        }
        let broken = entry.broken();
        let socket = self.socket(handle);
        let max = into.max();
        if socket.recv_queue() > 0 {
            return Ok(Some(match into {
                RecvInto::Vec(0) => Done::Received(Vec::new()),
                RecvInto::Vec(max) => {
                    // Copy straight out of the ring (at most two pieces), without zeroing a
                    // buffer first.
                    let want = max.min(socket.recv_queue());
                    let mut buf = Vec::with_capacity(want);
                    while buf.len() < want {
                        let room = want - buf.len();
                        let got = socket
                            .recv(|ring| {
                                let n = ring.len().min(room);
                                buf.extend_from_slice(&ring[..n]);
                                (n, n)
                            })
                            .unwrap_or(0);
                        if got == 0 {
                            break;
                        }
                    }
                    Done::Received(buf)
                }
                RecvInto::Lent(lent) => {
                    Done::ReceivedInto(socket.recv_slice(lent.bytes_mut()).unwrap_or(0))
                }
                RecvInto::Peek(max) => {
                    // A copy that leaves the bytes in the socket (both pieces of the ring).
                    let mut buf = vec![0; max.min(socket.recv_queue())];
                    let n = socket.peek_slice(&mut buf).unwrap_or(0);
                    buf.truncate(n);
                    Done::Received(buf)
                }
            }));
        }
        if let Some(error) = broken {
            return Err(error.into());
        }
        let eof = || match into {
            RecvInto::Vec(_) | RecvInto::Peek(_) => Done::Received(Vec::new()),
            RecvInto::Lent(_) => Done::ReceivedInto(0),
        };
        match socket.state() {
            State::SynSent | State::SynReceived => Err(StackError::NotConnected.into()),
            state if entry::peer_closed(state) || state == State::Closed => Ok(Some(eof())),
            _ if max == 0 => Ok(Some(eof())),
            _ => Ok(None),
        }
    }

    pub(super) fn shutdown(&mut self, id: SocketId, how: Shutdown) -> Result<(), StackError> {
        let handle = self.data_socket(id)?;
        let state = self.socket(handle).state();
        if !entry::synchronized(state) && state != State::Closed {
            return Err(StackError::NotConnected);
        }
        let wait = entry::fin_must_wait(self.socket(handle));
        let entry = self.entry(id)?;
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            entry.recv_shut = true;
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            entry.send_shut = true;
            entry.fin_deferred = wait;
            if !wait {
                self.socket(handle).close();
            }
        }
        Ok(())
    }

    /// After a poll: notice what happened to live connections that the engine did not cause
    /// (peer RST, peer FIN, timeouts), enforce a receive shutdown, and run keep-alive. True
    /// when a socket was aborted or a probe is due and needs a poll.
    pub(super) fn track_connections(&mut self, now: Instant) -> bool {
        let mut again = false;
        let mut vanished = Vec::new();
        let mut keep_alive_due: Option<Instant> = None;
        let mut watching = false;
        let heard = self.device.heard_peers();
        for (id, entry) in self.entries.iter_mut() {
            let Kind::Conn(handle) = entry.kind else {
                continue;
            };
            let socket = self.sockets.get_mut::<tcp::Socket>(handle);
            if entry.fin_deferred && !entry::fin_must_wait(socket) {
                // The data is acknowledged (or the connection moved on): the FIN may go.
                entry.fin_deferred = false;
                socket.close();
                again = true;
            }
            let state = socket.state();
            if entry.recv_shut && socket.recv_queue() > 0 && state != State::Closed {
                // Data after SD_RECEIVE resets the connection (WSPShutdown).
                socket.abort();
                entry.reason = Some(CloseReason::UnreadData);
                entry.last_state = State::Closed;
                self.stats.resets_sent += 1;
                again = true;
                continue;
            }
            if state == State::Closed && state != entry.last_state && entry.reason.is_none() {
                // smoltcp does not say why; a timeout that had run its course explains it,
                // otherwise a RST did.
                let timed_out = socket
                    .timeout()
                    .zip(entry.progress_at)
                    .is_some_and(|(t, at)| now >= at + t);
                let reason = match entry.last_state {
                    State::LastAck | State::TimeWait => CloseReason::Graceful,
                    _ if timed_out => CloseReason::TimedOut,
                    State::SynSent => CloseReason::Refused,
                    _ => CloseReason::PeerReset,
                };
                if reason == CloseReason::PeerReset {
                    self.stats.resets_received += 1;
                }
                log::debug!("{id:?} closed: {reason:?}");
                entry.reason = Some(reason);
            }
            let queues = (socket.send_queue(), socket.recv_queue());
            if entry.progress_at.is_none() || queues != entry.queues || state != entry.last_state {
                entry.progress_at = Some(now);
                entry.queues = queues;
            }
            entry.last_state = state;
            let wanted = liveness_timeout(state, queues.0, &entry.options, &self.config);
            if socket.timeout() != wanted {
                socket.set_timeout(wanted);
            }
            if let Some(deadline) = own_deadline(state, queues.0, &entry.options, entry.progress_at)
            {
                if now >= deadline {
                    log::debug!("{id:?} user timeout: no progress, reset");
                    socket.abort();
                    entry.reason = Some(CloseReason::TimedOut);
                    entry.last_state = State::Closed;
                    self.stats.resets_sent += 1;
                    again = true;
                    continue;
                }
                keep_alive_due = Some(keep_alive_due.map_or(deadline, |d| d.min(deadline)));
            }
            let Some(keep_alive) = entry.options.keep_alive else {
                continue;
            };
            watching = true;
            match keep_alive_step(entry, socket, &keep_alive, heard, now) {
                None => {}
                Some(Step::Wait(due)) => {
                    keep_alive_due = Some(keep_alive_due.map_or(due, |d| d.min(due)));
                }
                Some(Step::Probe) => {
                    log::trace!("{id:?} keep-alive probe");
                    keepalive::probe_now(socket);
                    // The next probe (or the give-up) is due one interval on.
                    let due = now + SmolDuration::from(keep_alive.interval);
                    keep_alive_due = Some(keep_alive_due.map_or(due, |d| d.min(due)));
                    again = true;
                }
                Some(Step::GiveUp) => {
                    log::debug!(
                        "{id:?} keep-alive: no answer to {} probes, reset",
                        keep_alive.probes
                    );
                    socket.abort();
                    entry.reason = Some(CloseReason::KeepAlive);
                    entry.last_state = State::Closed;
                    self.stats.resets_sent += 1;
                    vanished.push(*id);
                    again = true;
                }
            }
        }
        self.keep_alive_due = keep_alive_due;
        self.device.forget_peers();
        self.device.note_peers(watching);
        for id in vanished {
            // Calls in progress learn that keep-alive broke the connection under them (Windows'
            // WSAENETRESET); later calls get the connection's error (WSAETIMEDOUT).
            self.answer_waiters(id, |_| StackError::NetReset);
        }
        again
    }
}

/// Keep-alive for one connection after a poll: None when it is not probed now (a state
/// without keep-alive, or data in flight, which retransmissions and the peer timeout watch).
fn keep_alive_step(
    entry: &mut Entry,
    socket: &tcp::Socket<'static>,
    keep_alive: &KeepAlive,
    heard: &HashSet<PeerKey>,
    now: Instant,
) -> Option<Step> {
    let key = socket.remote_endpoint().zip(socket.local_endpoint());
    if key.is_some_and(|(remote, local)| {
        heard.contains(&PeerKey {
            addr: remote.addr,
            port: remote.port,
            local_port: local.port,
        })
    }) {
        entry.liveness.heard(now);
    }
    if !keepalive::probed_state(socket.state()) || socket.send_queue() > 0 {
        entry.liveness.pause(now);
        return None;
    }
    entry.liveness.watch_from(now);
    Some(entry.liveness.step(keep_alive, now))
}

/// Where a receive puts its bytes.
pub(super) enum RecvInto<'a> {
    /// A new vector of at most this many bytes.
    Vec(usize),
    /// The caller's lent buffer.
    Lent(&'a mut Lent),
    /// A copy of at most this many bytes, which stay in the socket (MSG_PEEK).
    Peek(usize),
}

impl RecvInto<'_> {
    fn max(&self) -> usize {
        match self {
            RecvInto::Vec(max) | RecvInto::Peek(max) => *max,
            RecvInto::Lent(lent) => lent.len(),
        }
    }
}

/// How long smoltcp may hear nothing from the peer before it aborts the connection: while
/// connecting; while data waits to be acknowledged (the application's own timeout, else
/// `peer_timeout`). An idle connection with nothing outstanding is keep-alive's business, and
/// a FIN waiting for its ACK the close deadline's.
///
/// The application's timeout must not run while nothing is outstanding: smoltcp counts it
/// from the last segment heard, so an idle connection would be cut for being quiet (Linux's
/// TCP_USER_TIMEOUT, which it stands for, never does that), and a FIN sent after a quiet spell
/// would be cut at once. smoltcp restarts that count when data is queued on an empty buffer,
/// which is exactly when this arms it.
fn liveness_timeout(
    state: State,
    send_queue: usize,
    options: &TcpOptions,
    config: &StackConfig,
) -> Option<SmolDuration> {
    let own = options.timeout.map(SmolDuration::from);
    match state {
        State::SynSent | State::SynReceived => Some(SmolDuration::from(config.connect_timeout)),
        _ if send_queue > 0 => own.or(Some(SmolDuration::from(config.peer_timeout))),
        // Keep-alive watches an idle connection itself (`keepalive.rs`).
        _ => None,
    }
}

/// When the application's own timeout (TCP_USER_TIMEOUT) ends a connection whose sent data
/// has made no progress since `progress_at`. smoltcp keeps the same timeout, but counts it
/// from the last segment it heard, and the segment guard's retransmission prompts reach it as
/// segments: the engine holds this deadline itself so that prompts cannot stretch it.
fn own_deadline(
    state: State,
    send_queue: usize,
    options: &TcpOptions,
    progress_at: Option<Instant>,
) -> Option<Instant> {
    let synchronized = !matches!(
        state,
        State::Closed | State::Listen | State::SynSent | State::SynReceived | State::TimeWait
    );
    if !synchronized || send_queue == 0 {
        return None;
    }
    Some(progress_at? + SmolDuration::from(options.timeout?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_holds_the_own_deadline_from_the_last_progress() {
        let mut options = TcpOptions {
            rx_buffer: 1024,
            tx_buffer: 1024,
            nodelay: false,
            keep_alive: None,
            timeout: None,
        };
        let at = Some(Instant::from_secs(5));
        assert_eq!(own_deadline(State::Established, 10, &options, at), None);
        options.timeout = Some(std::time::Duration::from_secs(3));
        assert_eq!(
            own_deadline(State::Established, 10, &options, at),
            Some(Instant::from_secs(8))
        );
        assert_eq!(own_deadline(State::CloseWait, 0, &options, at), None);
        assert_eq!(own_deadline(State::SynSent, 10, &options, at), None);
        assert_eq!(own_deadline(State::Established, 10, &options, None), None);
    }

    #[test]
    fn the_own_timeout_runs_only_while_data_waits_for_its_ack() {
        let config = StackConfig::default();
        let plain = TcpOptions {
            rx_buffer: config.rx_buffer,
            tx_buffer: config.tx_buffer,
            nodelay: false,
            keep_alive: None,
            timeout: None,
        };
        let options = TcpOptions {
            timeout: Some(std::time::Duration::from_secs(3)),
            ..plain
        };
        let at = |state, queued, o: &TcpOptions| liveness_timeout(state, queued, o, &config);
        assert_eq!(
            at(State::Established, 10, &options),
            Some(SmolDuration::from_secs(3))
        );
        assert_eq!(at(State::Established, 0, &options), None);
        assert_eq!(at(State::FinWait1, 0, &options), None);
        let peer = Some(SmolDuration::from(config.peer_timeout));
        assert_eq!(at(State::CloseWait, 1, &plain), peer);
        assert_eq!(at(State::Established, 0, &plain), None);
    }
}
