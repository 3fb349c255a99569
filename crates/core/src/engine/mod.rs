//! The engine: smoltcp's interface, socket set and device, driven by requests, frames and the
//! current time. It does no blocking I/O, never reads a clock and never wakes anyone: the
//! driver passes `now` in, collects answers and events, and asks [`Engine::poll_at`] when to
//! come back. That keeps every timing rule (linger timeouts, close deadlines) testable with a
//! virtual clock.

mod buffers;
mod close;
mod entry;
mod keepalive;
mod listen;
mod ops;
mod ports;
mod ready;

use std::collections::{HashMap, VecDeque};
use std::io;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv6Address};

use crate::command::{
    CloseReason, Done, Failure, Lent, Outcome, Readiness, Request, SocketEvent, SocketId,
    SocketInfo, TcpOptions, Wait,
};
use crate::config::StackConfig;
use crate::counters::Counters;
use crate::error::StackError;
use crate::link::{FaultConfig, Link, LinkDevice, Medium, PcapSink, Tuple};
use buffers::BufferPool;
use close::Closing;
use entry::{Entry, Kind};
use ops::RecvInto;
use ports::Ports;

/// A reply token: whatever the driver wants back with the answer to a request (a channel, a
/// thread's reply slot, a task's waker, or a plain number in a test).
pub trait Reply {
    /// True when nobody waits for the answer any more. The engine may then drop a request it
    /// holds (a readiness wait) without answering. Most tokens never know: `false`.
    fn abandoned(&self) -> bool {
        false
    }
}

impl Reply for u64 {}
impl Reply for () {}

/// A parked call, resolved after a poll or at its deadline.
struct Waiter<R> {
    id: SocketId,
    op: Op,
    deadline: Option<Instant>,
    overlapped: bool,
    reply: R,
}

/// What a parked call waits for.
enum Op {
    Accept,
    Connect,
    /// Bytes still to queue, and how many were queued already.
    Send {
        data: Payload,
        queued: usize,
    },
    Recv {
        max: usize,
    },
    /// Receive into the caller's lent buffer.
    RecvLent {
        buf: Lent,
    },
    /// Copy received bytes without consuming them.
    Peek {
        max: usize,
    },
    /// A blocking linger close; `handle` is the socket, already out of the id table.
    Linger {
        handle: SocketHandle,
        reset: bool,
    },
}

/// The bytes of a send: owned (overlapped calls) or lent by a waiting caller.
enum Payload {
    Owned(Vec<u8>),
    Lent(Lent),
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Owned(v) => v,
            Payload::Lent(l) => l.bytes(),
        }
    }
}

/// Whether the engine still takes work.
enum Life<R> {
    Running,
    /// Draining before a stop; the reply goes out when nothing is left.
    Stopping {
        until: Instant,
        reply: Option<R>,
    },
    /// Stopped (asked to, or the link failed); every call gets NetworkDown.
    Stopped,
}

/// Optional middleware for the engine's device, and whether it uses the link's offloads.
pub struct DeviceOptions {
    /// Write every frame that crosses the link to this pcap sink: an incoming one as it
    /// arrived (before any fault), an outgoing one as it left (after them).
    pub pcap: Option<PcapSink>,
    /// Fault injection.
    pub faults: FaultConfig,
    /// Use the link's offloads (TCP super-segments, partial checksums) if it has them: on by
    /// default. Off, a link with a virtio-net header is asked to turn them off.
    pub offload: bool,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions {
            pcap: None,
            faults: FaultConfig::default(),
            offload: true,
        }
    }
}

/// The engine: the only owner of smoltcp state. `R` is the driver's reply token: every
/// request comes with one, and [`Engine::drain_answers`] hands it back with the answer.
pub struct Engine<R: Reply> {
    iface: Interface,
    sockets: SocketSet<'static>,
    device: LinkDevice,
    config: StackConfig,
    defaults: TcpOptions,
    entries: HashMap<SocketId, Entry>,
    closing: Vec<Closing>,
    /// Closed sockets waiting out TIME-WAIT, oldest first.
    time_wait: VecDeque<Closing>,
    waiters: Vec<Waiter<R>>,
    ports: Ports,
    next_id: u64,
    /// Readiness changes of watched sockets, when the driver asked for them.
    events: Option<Vec<SocketEvent>>,
    /// Answers not yet collected by the driver.
    answers: Vec<(R, Outcome)>,
    life: Life<R>,
    stats: Counters,
    /// Socket buffers, reused across sockets. Dropped after `sockets` (see `Drop`).
    buffers: BufferPool,
    /// A listener changed (listen, accept, close): tend listeners after the next poll.
    listeners_dirty: bool,
    /// When listeners are next tended even if nothing happened.
    next_tend: Instant,
    /// When keep-alive next needs the engine (the earliest probe or give-up of any connection).
    keep_alive_due: Option<Instant>,
    /// Tasks waiting for a socket's readiness (`Request::Ready`).
    ready: ready::ReadyWaits<R>,
}

impl<R: Reply> Drop for Engine<R> {
    fn drop(&mut self) {
        // The sockets borrow their buffers from the pool: drop them first.
        self.sockets = SocketSet::new(vec![]);
        self.buffers.drop_all();
    }
}

impl<R: Reply> Engine<R> {
    /// Bring the interface up on `link` with `config`, at time `now`.
    pub fn new(
        config: StackConfig,
        link: Box<dyn Link>,
        options: DeviceOptions,
        now: Instant,
    ) -> io::Result<Engine<R>> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let seed = match config.random_seed {
            Some(seed) => seed,
            None => random_seed()?,
        };
        let mut device = LinkDevice::new(
            link,
            options.pcap,
            options.faults,
            seed ^ 0x9e37_79b9_7f4a_7c15,
            options.offload,
        );
        let mac = EthernetAddress(config.mac);
        if !mac.is_unicast() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("MAC {mac} is not unicast"),
            ));
        }
        // On an IP link there is no hardware address: nothing to resolve, every packet goes out.
        let hardware = match device.medium() {
            Medium::Ethernet => HardwareAddress::Ethernet(mac),
            Medium::Ip => HardwareAddress::Ip,
        };
        let mut iface_config = Config::new(hardware);
        iface_config.random_seed = seed;
        let mut iface = Interface::new(iface_config, &mut device, now);
        configure_addresses(&mut iface, &config)?;
        let defaults = TcpOptions {
            rx_buffer: config.rx_buffer,
            tx_buffer: config.tx_buffer,
            nodelay: false,
            keep_alive: None,
            timeout: None,
        };
        let mut ports = Ports::default();
        ports.seed(seed);
        log::info!(
            "engine up on {} (mtu {}, offloads {}), addresses {:?}",
            device.link_mut().describe(),
            device.mtu(),
            if device.offload() { "on" } else { "off" },
            iface.ip_addrs()
        );
        Ok(Engine {
            iface,
            sockets: SocketSet::new(vec![]),
            device,
            config,
            defaults,
            entries: HashMap::new(),
            closing: Vec::new(),
            time_wait: VecDeque::new(),
            waiters: Vec::new(),
            ports,
            next_id: 1,
            events: None,
            answers: Vec::new(),
            life: Life::Running,
            stats: Counters::default(),
            buffers: BufferPool::default(),
            listeners_dirty: false,
            next_tend: now,
            keep_alive_due: None,
            ready: ready::ReadyWaits::default(),
        })
    }

    /// Watch every socket opened from now on and collect the readiness changes of watched
    /// sockets for [`Engine::drain_events`] (the facade keeps readiness for all its sockets).
    pub fn enable_events(&mut self) {
        self.events.get_or_insert_with(Vec::new);
    }

    /// The readiness changes since the last call (none unless events are enabled).
    pub fn drain_events(&mut self) -> impl Iterator<Item = SocketEvent> + '_ {
        // Asking does not turn events on: without them no socket is watched by default.
        self.events.iter_mut().flat_map(|events| events.drain(..))
    }

    /// The answers since the last call, each with the reply token its request came with.
    pub fn drain_answers(&mut self) -> std::vec::Drain<'_, (R, Outcome)> {
        self.answers.drain(..)
    }

    /// Give the interface one more address (a driver that learns its address late: the
    /// packetdrill shim takes it from the first bind or inbound packet).
    pub fn add_address(&mut self, addr: std::net::IpAddr, prefix: u8) -> Result<(), StackError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max || addr.is_unspecified() || addr.is_multicast() {
            return Err(StackError::InvalidInput);
        }
        let cidr = IpCidr::new(IpAddress::from(addr), prefix);
        let mut added = Ok(());
        self.iface.update_ip_addrs(|addrs| {
            if !addrs.contains(&cidr) {
                added = addrs.push(cidr).map_err(|_| StackError::NoBuffers);
            }
        });
        added
    }

    /// Route everything of `via`'s family that is not on a local network through `via` (it
    /// replaces the default route of that family).
    pub fn set_default_route(&mut self, via: std::net::IpAddr) -> Result<(), StackError> {
        let routes = self.iface.routes_mut();
        let added = match via {
            std::net::IpAddr::V4(v4) => routes.add_default_ipv4_route(v4).map(drop),
            std::net::IpAddr::V6(v6) => routes.add_default_ipv6_route(v6).map(drop),
        };
        added.map_err(|_| StackError::NoBuffers)
    }

    /// The link under the device (for the driver to learn how to wait for it).
    pub fn link_mut(&mut self) -> &mut dyn Link {
        self.device.link_mut()
    }

    /// True once the engine has stopped (asked to, or its link failed).
    pub fn is_stopped(&self) -> bool {
        matches!(self.life, Life::Stopped)
    }

    /// After a call that consumes readiness (recv, accept), report the socket's readiness
    /// again even if it looks unchanged: FD_READ and FD_ACCEPT are level-triggered, so a
    /// condition that still holds after the call must be recorded again (WSAEventSelect).
    fn report_again(&mut self, id: SocketId) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.last_ready = Readiness {
                error: Some(StackError::WouldBlock),
                ..Readiness::default()
            };
        }
    }

    /// Frames received and sent so far (a driver's measure of activity).
    pub fn frames(&self) -> u64 {
        self.device.frames()
    }

    /// Apply one request at time `now`; its answer, now or later, comes back with `reply`.
    pub fn handle(&mut self, request: Request, reply: R, now: Instant) {
        if !matches!(self.life, Life::Running) {
            let outcome = match request {
                Request::Counters => Ok(Done::Counters(Box::new(self.counters()))),
                Request::List => Ok(Done::Sockets(self.list())),
                _ => Err(StackError::NetworkDown.into()),
            };
            return self.answers.push((reply, outcome));
        }
        match request {
            Request::Open => {
                let outcome = Ok(Done::Socket(self.open()));
                self.answers.push((reply, outcome))
            }
            Request::Bind(id, addr) => {
                let outcome = self
                    .bind(id, addr)
                    .map(|()| Done::Unit)
                    .map_err(Failure::from);
                self.answers.push((reply, outcome))
            }
            Request::Listen(id, backlog) => {
                let outcome = self
                    .listen(id, backlog)
                    .map(|()| Done::Unit)
                    .map_err(Failure::from);
                self.answers.push((reply, outcome))
            }
            Request::Accept(id, wait) => {
                self.report_again(id);
                self.start(id, Op::Accept, wait, reply, now)
            }
            Request::Connect(id, addr, wait) => match self.connect(id, addr, now) {
                Ok(()) => self.start(id, Op::Connect, wait, reply, now),
                Err(e) => self.answers.push((reply, Err(e.into()))),
            },
            Request::Send(id, data, wait) => {
                let data = Payload::Owned(data);
                self.start(id, Op::Send { data, queued: 0 }, wait, reply, now)
            }
            Request::SendLent(id, data, wait) => {
                let data = Payload::Lent(data);
                self.start(id, Op::Send { data, queued: 0 }, wait, reply, now)
            }
            Request::Recv(id, max, wait) => {
                self.report_again(id);
                self.start(id, Op::Recv { max }, wait, reply, now)
            }
            Request::RecvLent(id, buf, wait) => {
                self.report_again(id);
                self.start(id, Op::RecvLent { buf }, wait, reply, now)
            }
            Request::Peek(id, max, wait) => self.start(id, Op::Peek { max }, wait, reply, now),
            Request::Ready(id, interest) => self.wait_ready(id, interest, reply),
            Request::Shutdown(id, how) => {
                let outcome = self
                    .shutdown(id, how)
                    .map(|()| Done::Unit)
                    .map_err(Failure::from);
                self.answers.push((reply, outcome))
            }
            Request::Close(id, mode) => self.close(id, mode, reply, now),
            Request::Cancel(id) => {
                let known = self.entries.contains_key(&id);
                self.release_waiters(id);
                self.answers.push((
                    reply,
                    if known {
                        Ok(Done::Unit)
                    } else {
                        Err(StackError::NotSocket.into())
                    },
                ));
            }
            Request::SetOptions(id, options) => {
                let outcome = self
                    .set_options(id, options)
                    .map(|()| Done::Unit)
                    .map_err(Failure::from);
                self.answers.push((reply, outcome))
            }
            Request::SetKeepAlive(id, keep_alive) => {
                let outcome = match self.entries.get(&id) {
                    Some(entry) => {
                        let options = TcpOptions {
                            keep_alive,
                            ..entry.options
                        };
                        self.set_options(id, options)
                            .map(|()| Done::Unit)
                            .map_err(Failure::from)
                    }
                    None => Err(StackError::NotSocket.into()),
                };
                self.answers.push((reply, outcome));
            }
            Request::Info(id) => {
                let outcome = self
                    .info(id)
                    .map(|i| Done::Info(Box::new(i)))
                    .ok_or(StackError::NotSocket.into());
                self.answers.push((reply, outcome))
            }
            Request::List => {
                let outcome = Ok(Done::Sockets(self.list()));
                self.answers.push((reply, outcome))
            }
            Request::Counters => {
                let outcome = Ok(Done::Counters(Box::new(self.counters())));
                self.answers.push((reply, outcome))
            }
            Request::Watch(id, on) => {
                let outcome = match self.entries.get_mut(&id) {
                    Some(entry) => {
                        entry.watch = on;
                        // Force a fresh event so the watcher learns the current readiness.
                        entry.last_ready = Readiness {
                            error: Some(StackError::WouldBlock),
                            ..Readiness::default()
                        };
                        Ok(Done::Unit)
                    }
                    None => Err(StackError::NotSocket.into()),
                };
                self.answers.push((reply, outcome));
            }
            Request::ReopenPcap => {
                let outcome = match self.device.reopen_pcap() {
                    Ok(()) => Ok(Done::Unit),
                    Err(e) => {
                        log::error!("reopening the pcap file: {e}");
                        Err(StackError::InvalidState.into())
                    }
                };
                self.answers.push((reply, outcome));
            }
            Request::Stop { grace } => self.stop(grace, reply, now),
        }
    }

    /// Poll smoltcp and settle everything that depends on it, at time `now`.
    pub fn poll(&mut self, now: Instant) {
        // A few rounds: settling may abort a socket whose RST must leave before a waiter is
        // answered (C06), which needs one more poll.
        for _ in 0..4 {
            self.iface.poll(now, &mut self.device, &mut self.sockets);
            if self.device.failure().is_some() && !matches!(self.life, Life::Stopped) {
                self.network_down();
                return;
            }
            if !self.settle(now) {
                break;
            }
        }
        self.emit_events();
        self.settle_ready();
        self.device.flush();
    }

    /// When the engine next needs to run, if nothing arrives before.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        if self.is_stopped() {
            return None;
        }
        let mut at = self.iface.poll_at(now, &self.sockets);
        let mut earliest = |t: Option<Instant>| {
            if let Some(t) = t {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        };
        for w in &self.waiters {
            earliest(w.deadline);
        }
        for c in &self.closing {
            earliest(Some(c.next_check()));
        }
        earliest(self.device.next_due());
        earliest(self.keep_alive_due);
        if let Life::Stopping { until, .. } = self.life {
            earliest(Some(until));
        }
        at
    }

    /// Resolve waiters and closing sockets after a poll. True when another poll is needed now.
    fn settle(&mut self, now: Instant) -> bool {
        let mut again = self.track_connections(now);
        again |= self.settle_closing(now);
        again |= self.settle_guard(now);
        again |= self.settle_waiters(now);
        again |= self.settle_stop(now);
        again
    }

    /// A new socket id with the default options.
    fn open(&mut self) -> SocketId {
        let id = SocketId(self.next_id);
        self.next_id += 1;
        let mut entry = Entry::new(self.defaults);
        // With an event sink every socket is watched: the facade keeps readiness for all.
        entry.watch = self.events.is_some();
        self.entries.insert(id, entry);
        id
    }

    fn set_options(&mut self, id: SocketId, options: TcpOptions) -> Result<(), StackError> {
        let sizes = [options.rx_buffer, options.tx_buffer];
        if sizes
            .iter()
            .any(|&n| n == 0 || n > crate::config::MAX_BUFFER)
        {
            return Err(StackError::InvalidInput);
        }
        if options.keep_alive.is_some_and(|k| !k.is_valid()) {
            return Err(StackError::InvalidInput);
        }
        let entry = self.entries.get_mut(&id).ok_or(StackError::NotSocket)?;
        entry.options = options;
        // Buffers are fixed at creation; Nagle, keep-alive and timeout apply to live sockets.
        if options.keep_alive.is_none() {
            entry.liveness = Default::default();
        }
        let handles: Vec<SocketHandle> = match &entry.kind {
            Kind::Fresh => vec![],
            Kind::Conn(h) => vec![*h],
            Kind::Listener(l) => l.slots.clone(),
        };
        for h in handles {
            apply_live_options(self.sockets.get_mut::<tcp::Socket>(h), &options);
        }
        Ok(())
    }

    /// A new smoltcp socket with `options`, added to the set.
    fn new_socket(&mut self, options: &TcpOptions) -> SocketHandle {
        let (rx, tx, pending) = self.buffers.buffers(options.rx_buffer, options.tx_buffer);
        let mut socket = tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
        socket.set_congestion_control(tcp::CongestionControl::Cubic);
        apply_live_options(&mut socket, options);
        let handle = self.sockets.add(socket);
        self.buffers.lend(handle, pending);
        handle
    }

    /// Remove a socket from the set (sending nothing) and take its buffers back; the guard
    /// forgets its connection.
    fn remove_socket(&mut self, handle: SocketHandle) {
        let socket = self.sockets.get::<tcp::Socket>(handle);
        if let (Some(local), Some(remote)) = (socket.local_endpoint(), socket.remote_endpoint()) {
            self.device.guard_mut().forget(&Tuple { local, remote });
        }
        self.sockets.remove(handle);
        self.buffers.give_back(handle);
    }

    fn socket(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    /// Start a call that may have to wait.
    fn start(&mut self, id: SocketId, mut op: Op, wait: Wait, reply: R, now: Instant) {
        match self.attempt(id, &mut op) {
            Ok(Some(done)) => self.answers.push((reply, Ok(done))),
            Err(failure) => self.answers.push((reply, Err(failure))),
            Ok(None) => match wait {
                Wait::No => self.answers.push((
                    reply,
                    match op {
                        Op::Send { queued, .. } if queued > 0 => Ok(Done::Sent(queued)),
                        _ => Err(StackError::WouldBlock.into()),
                    },
                )),
                Wait::Block(timeout) => {
                    let deadline = timeout.map(|t| now + Duration::from(t));
                    self.waiters.push(Waiter {
                        id,
                        op,
                        deadline,
                        overlapped: false,
                        reply,
                    });
                }
                Wait::Overlapped => self.waiters.push(Waiter {
                    id,
                    op,
                    deadline: None,
                    overlapped: true,
                    reply,
                }),
            },
        }
    }

    /// Try a waitable call once: `Ok(None)` means it would have to wait.
    fn attempt(&mut self, id: SocketId, op: &mut Op) -> Result<Option<Done>, Failure> {
        match op {
            Op::Accept => self.try_accept(id),
            Op::Connect => self.try_connected(id),
            Op::Send { data, queued } => self.try_send(id, data.bytes(), queued),
            Op::Recv { max } => self.try_recv(id, RecvInto::Vec(*max)),
            Op::RecvLent { buf } => self.try_recv(id, RecvInto::Lent(buf)),
            Op::Peek { max } => self.try_recv(id, RecvInto::Peek(*max)),
            Op::Linger { handle, reset } => Ok(self.linger_done(*handle, *reset)),
        }
    }

    /// Answer parked calls that can be answered now. True when a poll is needed at once.
    fn settle_waiters(&mut self, now: Instant) -> bool {
        let mut again = false;
        let mut i = 0;
        while i < self.waiters.len() {
            let mut op = std::mem::replace(&mut self.waiters[i].op, Op::Accept);
            let id = self.waiters[i].id;
            let result = self.attempt(id, &mut op);
            self.waiters[i].op = op;
            let expired = self.waiters[i].deadline.is_some_and(|d| now >= d);
            let outcome: Option<Outcome> = match result {
                Ok(Some(done)) => Some(Ok(done)),
                Err(f) => Some(Err(f)),
                Ok(None) if expired => self.expire(i, now, &mut again),
                Ok(None) => None,
            };
            match outcome {
                // `remove`, not `swap_remove`: calls on one socket complete in the order they came.
                Some(outcome) => self.answers.push((self.waiters.remove(i).reply, outcome)),
                None => i += 1,
            }
        }
        again
    }

    /// A waiter's deadline passed: time out, or for a linger close reset and answer after the
    /// RST has gone out.
    fn expire(&mut self, i: usize, now: Instant, again: &mut bool) -> Option<Outcome> {
        match &mut self.waiters[i].op {
            Op::Linger { handle, reset } => {
                if !*reset {
                    *reset = true;
                    let handle = *handle;
                    self.abort_closing(handle, CloseReason::LingerTimeout, now);
                    *again = true;
                }
                None
            }
            Op::Send { queued, .. } => Some(Err(Failure {
                error: StackError::TimedOut,
                bytes: *queued,
            })),
            _ => Some(Err(StackError::TimedOut.into())),
        }
    }

    /// Answer every parked call on `id` (a linger close excepted) with the error `error_of`
    /// picks for it; a send reports the bytes it had queued.
    fn answer_waiters(&mut self, id: SocketId, error_of: impl Fn(&Waiter<R>) -> StackError) {
        let (mine, rest): (Vec<Waiter<R>>, Vec<Waiter<R>>) = self
            .waiters
            .drain(..)
            .partition(|w| w.id == id && !matches!(w.op, Op::Linger { .. }));
        self.waiters = rest;
        for w in mine {
            let error = error_of(&w);
            let bytes = match w.op {
                Op::Send { queued, .. } => queued,
                _ => 0,
            };
            self.answers.push((w.reply, Err(Failure { error, bytes })));
        }
    }

    /// Release every parked call on `id`: blocking ones with Interrupted, overlapped ones with
    /// OperationAborted (a send reports the bytes it had queued), as a close does (C16, C17).
    fn release_waiters(&mut self, id: SocketId) {
        self.answer_waiters(id, |w| {
            if w.overlapped {
                StackError::OperationAborted
            } else {
                StackError::Interrupted
            }
        });
    }

    fn info(&mut self, id: SocketId) -> Option<SocketInfo> {
        let entry = self.entries.get(&id)?;
        let handle = match &entry.kind {
            Kind::Conn(h) => Some(*h),
            _ => None,
        };
        let options = entry.options;
        let local = entry.local;
        let reason = entry.reason;
        let listening = matches!(entry.kind, Kind::Listener(_));
        let ready = self.readiness(id);
        let (state, remote, send_queue, recv_queue, local) = match handle {
            Some(h) => {
                let s = self.socket(h);
                let remote = s.remote_endpoint().map(endpoint_addr);
                let local = s.local_endpoint().map(endpoint_addr).or(local);
                (
                    entry::state_name(s.state()),
                    remote,
                    s.send_queue(),
                    s.recv_queue(),
                    local,
                )
            }
            None if listening => ("LISTEN", None, 0, 0, local),
            None if local.is_some() => ("BOUND", None, 0, 0, local),
            None => ("FRESH", None, 0, 0, local),
        };
        Some(SocketInfo {
            id,
            state,
            local,
            remote,
            send_queue,
            recv_queue,
            ready,
            reason,
            options,
            closing: false,
        })
    }

    fn list(&mut self) -> Vec<SocketInfo> {
        let mut ids: Vec<SocketId> = self.entries.keys().copied().collect();
        ids.sort();
        let mut out: Vec<SocketInfo> = ids.into_iter().filter_map(|id| self.info(id)).collect();
        out.extend(self.closing_info());
        out
    }

    /// Counters: the device's, the engine's and the socket census.
    pub fn counters(&self) -> Counters {
        let mut c = self.device.counters();
        c.resets_sent = self.stats.resets_sent;
        c.resets_received = self.stats.resets_received;
        c.graceful_closes = self.stats.graceful_closes;
        for (_, socket) in self.sockets.iter() {
            let smoltcp::socket::Socket::Tcp(s) = socket;
            *c.sockets_by_state
                .entry(entry::state_name(s.state()))
                .or_default() += 1;
        }
        c.open_ids = self.entries.len();
        c
    }

    /// Readiness of a live socket id.
    fn readiness(&self, id: SocketId) -> Readiness {
        self.entries
            .get(&id)
            .map_or_else(Readiness::default, |e| entry::readiness(e, &self.sockets))
    }

    /// Record readiness changes of watched sockets. Runs after every poll, so it walks the
    /// table without allocating.
    fn emit_events(&mut self) {
        let Some(sink) = &mut self.events else { return };
        for (id, entry) in self.entries.iter_mut().filter(|(_, e)| e.watch) {
            let ready = entry::readiness(entry, &self.sockets);
            if entry.last_ready != ready {
                entry.last_ready = ready;
                sink.push(SocketEvent { id: *id, ready });
            }
        }
    }

    /// The link failed: release everything with NetworkDown and stop.
    fn network_down(&mut self) {
        log::error!(
            "network down: {}",
            self.device
                .failure()
                .map(|e| e.to_string())
                .unwrap_or_default()
        );
        for w in self.waiters.drain(..) {
            self.answers
                .push((w.reply, Err(StackError::NetworkDown.into())));
        }
        if let Life::Stopping {
            reply: Some(reply), ..
        } = std::mem::replace(&mut self.life, Life::Stopped)
        {
            self.answers.push((reply, Ok(Done::Unit)));
        }
        for entry in self.entries.values_mut() {
            entry.reason.get_or_insert(CloseReason::NetworkDown);
        }
        self.emit_events_all_down();
        self.settle_ready();
    }

    fn emit_events_all_down(&mut self) {
        let Some(sink) = &mut self.events else { return };
        for (id, entry) in &self.entries {
            if entry.watch {
                let ready = Readiness {
                    readable: true,
                    closed: true,
                    connected: true,
                    error: Some(StackError::NetworkDown),
                    ..Readiness::default()
                };
                sink.push(SocketEvent { id: *id, ready });
            }
        }
    }
}

/// Nagle and timeout: the options smoltcp lets us change on a live socket. Keep-alive is the
/// engine's own (`keepalive.rs`): smoltcp's stays off.
fn apply_live_options(socket: &mut tcp::Socket<'static>, options: &TcpOptions) {
    socket.set_nagle_enabled(!options.nodelay);
    socket.set_timeout(options.timeout.map(Duration::from));
}

/// Addresses and default routes from the configuration.
fn configure_addresses(iface: &mut Interface, config: &StackConfig) -> io::Result<()> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let mut cidrs = Vec::new();
    if let Some(v4) = config.ipv4 {
        if v4.prefix > 32 {
            return Err(invalid(format!(
                "IPv4 prefix /{} is longer than 32",
                v4.prefix
            )));
        }
        cidrs.push(IpCidr::new(IpAddress::Ipv4(v4.addr), v4.prefix));
    }
    if let Some(v6) = config.ipv6 {
        if v6.prefix > 128 {
            return Err(invalid(format!(
                "IPv6 prefix /{} is longer than 128",
                v6.prefix
            )));
        }
        cidrs.push(IpCidr::new(IpAddress::Ipv6(v6.addr), v6.prefix));
        cidrs.push(IpCidr::new(IpAddress::Ipv6(link_local(config.mac)), 64));
    }
    iface.update_ip_addrs(|addrs| {
        for cidr in cidrs {
            let _ = addrs.push(cidr);
        }
    });
    if let Some(gw) = config.gateway_v4 {
        iface
            .routes_mut()
            .add_default_ipv4_route(gw)
            .map_err(|_| invalid("route table full".into()))?;
    }
    if let Some(gw) = config.gateway_v6 {
        iface
            .routes_mut()
            .add_default_ipv6_route(gw)
            .map_err(|_| invalid("route table full".into()))?;
    }
    Ok(())
}

/// The EUI-64 link-local address of a MAC (RFC 4291 appendix A).
fn link_local(mac: [u8; 6]) -> Ipv6Address {
    Ipv6Address::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([mac[0] ^ 0x02, mac[1]]),
        u16::from_be_bytes([mac[2], 0xff]),
        u16::from_be_bytes([0xfe, mac[3]]),
        u16::from_be_bytes([mac[4], mac[5]]),
    )
}

/// A seed for smoltcp from the OS's random source.
fn random_seed() -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(format!("no random source: {e}")))?;
    Ok(u64::from_ne_bytes(bytes))
}

/// smoltcp endpoint to std address.
fn endpoint_addr(ep: smoltcp::wire::IpEndpoint) -> std::net::SocketAddr {
    std::net::SocketAddr::new(ep.addr.into(), ep.port)
}
