//! Fuzzing the facade: random sequences of Winsock calls with bad arguments into a
//! [`Provider`] whose peer is an engine on the in-memory link.
//!
//! The calls: bad and closed descriptors, NULL and short buffers and option values, bad
//! lengths, families, addresses, levels, names, ioctl codes and event masks; every call in
//! every state a socket reaches (fresh, bound, listening, connecting, connected, shut down,
//! reset, closed); closes in every linger mode, blocking and not; duplicated descriptors;
//! overlapped operations; callbacks that call back into the provider. A blocking call that is
//! still waiting after a moment is released the way Windows allows, by closing its socket
//! from another thread.
//!
//! After every case: no panic, no hang (a wall-clock bound per case), every overlapped
//! operation completed, and once everything is closed: no descriptor, no pending operation, no
//! socket id and no smoltcp socket left. Then cleanup, after which every call fails cleanly.
//! `LINGERSTACK_FUZZ_CASES` runs more cases, `LINGERSTACK_FUZZ_SEED` replays one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lingerstack_stack::DeviceOptions;
use lingerstack_stack::link::MemoryLink;
use lingerstack_stack::{Cidr, CloseMode, SocketId, Stack, StackConfig, Wait};
use lingerstack_testkit::fuzz::{Rng, run_cases};
use lingerstack_wsp::consts::*;
use lingerstack_wsp::{
    Completion, CompletionPort, Event, EventObject, MessageSink, Overlapped, Provider,
    ProviderConfig, WsaError,
};

/// Cases per CI run.
const CI_CASES: u64 = 40;
const ME: Ipv4Addr = Ipv4Addr::new(10, 12, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 12, 0, 2);
/// On the subnet, answered by nobody.
const NOBODY: Ipv4Addr = Ipv4Addr::new(10, 12, 0, 99);
/// The peer's listening port; 7001 is closed.
const PEER_PORT: u16 = 7000;
/// A blocking call still waiting after this long is released by closing its socket.
const RESCUE_AFTER: Duration = Duration::from_millis(100);

#[test]
fn fuzz_calls_into_the_facade() {
    run_cases(
        "fuzz_calls_into_the_facade",
        CI_CASES,
        Duration::from_secs(90),
        |seed| Case::new(Rng::new(seed)).run(),
    );
}

fn config(addr: Ipv4Addr, last: u8) -> StackConfig {
    StackConfig {
        mac: [2, 0, 0, 0, 0x12, last],
        ipv4: Some(Cidr { addr, prefix: 24 }),
        ipv6: Some(Cidr {
            addr: Ipv6Addr::new(0xfd00, 12, 0, 0, 0, 0, 0, u16::from(last)),
            prefix: 64,
        }),
        rx_buffer: 32 * 1024,
        tx_buffer: 32 * 1024,
        max_backlog: 4,
        // Short, so that closes and TIME-WAIT end within a case.
        close_deadline: Duration::from_millis(800),
        max_time_wait: 0,
        rst_retry: Duration::from_millis(500),
        ..StackConfig::default()
    }
}

/// The call in progress on the fuzzing thread: its start, and every descriptor of its socket
/// (closing one duplicate alone releases nothing, C19).
type InFlight = Arc<Mutex<Option<(Instant, Vec<usize>)>>>;

/// One case: a provider, its peer, and what the calls have made. Also driven by the
/// cargo-fuzz target `fuzz/fuzz_targets/calls.rs`.
pub(crate) struct Case {
    p: Provider,
    peer: Stack,
    rng: Rng,
    /// Descriptors handed out and not closed yet.
    fds: Vec<usize>,
    /// Closed descriptors: calls on them must fail cleanly.
    closed: Vec<usize>,
    /// Overlapped operations that went pending, with their descriptor.
    ops: Vec<(usize, Overlapped)>,
    peer_ids: Vec<SocketId>,
    in_flight: InFlight,
    stop: Arc<AtomicBool>,
}

impl Case {
    /// A provider and a peer listening on [`PEER_PORT`]; every choice comes from `rng`.
    pub(crate) fn new(rng: Rng) -> Case {
        let (a, b) = MemoryLink::pair(1500);
        let mut provider_config = ProviderConfig::new(config(ME, 1));
        provider_config.cleanup_grace = Duration::from_millis(300);
        let p = Provider::startup(provider_config, Box::new(a)).expect("provider");
        let peer = Stack::start(config(PEER, 2), Box::new(b), DeviceOptions::default(), None)
            .expect("peer");
        let l = peer.open().unwrap();
        peer.bind(l, SocketAddr::new(PEER.into(), PEER_PORT))
            .unwrap();
        peer.listen(l, 4).unwrap();
        Case {
            p,
            peer,
            rng,
            fds: Vec::new(),
            closed: Vec::new(),
            ops: Vec::new(),
            peer_ids: vec![l],
            in_flight: Arc::default(),
            stop: Arc::default(),
        }
    }

    /// Random calls, then close everything and check that nothing is left.
    pub(crate) fn run(mut self) {
        let rescuer = rescuer(self.p.clone(), self.in_flight.clone(), self.stop.clone());
        let steps = self.rng.range(20, 80);
        for _ in 0..steps {
            self.step();
        }
        if self.rng.chance(20) {
            // Cleanup with everything still open (C23): nothing may be left behind.
            self.cleanup_and_check(rescuer);
            return;
        }
        self.close_everything();
        self.check_nothing_left();
        self.cleanup_and_check(rescuer);
    }

    /// A descriptor: a live one mostly, else a closed one or one that never existed.
    fn fd(&mut self) -> usize {
        match self.rng.below(100) {
            0..85 if !self.fds.is_empty() => self.rng.pick(&self.fds),
            85..93 if !self.closed.is_empty() => self.rng.pick(&self.closed),
            _ => self
                .rng
                .pick(&[0, 1, INVALID_SOCKET, 0x104, usize::MAX / 2]),
        }
    }

    /// Move descriptors that are no longer valid (closed by a call, a callback or the rescuer)
    /// to the closed list.
    fn refresh(&mut self) {
        let p = &self.p;
        let (live, gone): (Vec<usize>, Vec<usize>) = self.fds.iter().partition(|&&s| {
            let mut buf = [0u8; 4];
            p.get_sock_opt(s, SOL_SOCKET, SO_TYPE, &mut buf) != Err(WsaError::NOTSOCK)
        });
        self.fds = live;
        self.closed.extend(gone);
    }

    /// Run one call on descriptor `s`, marked in flight so that the rescuer can release it.
    fn guarded<T>(&mut self, s: usize, f: impl FnOnce(&Provider) -> T) -> T {
        let mut same: Vec<usize> = self
            .fds
            .iter()
            .copied()
            .filter(|&t| self.p.same_socket(s, t) == Ok(true))
            .collect();
        same.push(s);
        *self.in_flight.lock().unwrap() = Some((Instant::now(), same));
        let result = f(&self.p);
        *self.in_flight.lock().unwrap() = None;
        result
    }

    fn step(&mut self) {
        let s = self.fd();
        match self.rng.below(30) {
            0 | 1 => self.socket(),
            26 | 27 => self.connected(),
            28 | 29 => self.listener(),
            3 => {
                let addr = self.addr();
                let _ = self.p.bind(s, addr);
            }
            4 => {
                let backlog = self.rng.pick(&[-5, 0, 1, 3, SOMAXCONN, i32::MAX]);
                let _ = self.p.listen(s, backlog);
            }
            5 => self.accept(s),
            6 | 7 => {
                let addr = self.addr();
                let _ = self.guarded(s, |p| p.connect(s, addr));
            }
            8 | 9 => {
                let len = self.rng.pick(&[0, 1, 1_000, 70_000]);
                let data = self.rng.bytes(len);
                let _ = self.guarded(s, |p| p.send(s, &data));
            }
            10 | 11 => {
                let mut buf = vec![0; self.rng.pick(&[0, 1, 100, 65_536])];
                let _ = self.guarded(s, |p| p.recv(s, &mut buf));
            }
            12 => self.overlapped(s),
            13 => self.overlapped_result(),
            14 => {
                let how = self.rng.pick(&[-1, SD_RECEIVE, SD_SEND, SD_BOTH, 3]);
                let _ = self.p.shutdown(s, how);
            }
            15 => {
                let _ = self.p.get_sock_name(s);
                let _ = self.p.get_peer_name(s);
            }
            16 | 17 => self.set_option(s),
            18 => self.get_option(s),
            19 => self.ioctl(s),
            20 => self.select_events(s),
            21 => self.duplicate(s),
            22 | 23 => self.close(s),
            24 => self.select(),
            _ => self.peer_action(),
        }
        self.refresh();
    }

    /// A socket connected to the peer (a blocking connect, in either blocking mode after).
    fn connected(&mut self) {
        let Ok(s) = self.p.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) else {
            return;
        };
        self.fds.push(s);
        let to = SocketAddr::new(PEER.into(), PEER_PORT);
        if self.guarded(s, |p| p.connect(s, to)).is_ok() && self.rng.chance(50) {
            let _ = self.p.ioctl(s, FIONBIO, &mut 1);
        }
        // Let the peer take it, so that the peer's listener has room again.
        while let Ok((c, _)) = self.peer.accept(self.peer_ids[0], Wait::No) {
            self.peer_ids.push(c);
        }
    }

    /// A listening socket of ours, non-blocking half the time, with a peer connecting to it.
    fn listener(&mut self) {
        let Ok(s) = self.p.socket(AF_INET, SOCK_STREAM, 0) else {
            return;
        };
        self.fds.push(s);
        let port = self.rng.pick(&[0, 8000, 8001]);
        if self.p.bind(s, SocketAddr::new(ME.into(), port)).is_ok() {
            let _ = self.p.listen(s, self.rng.pick(&[1, 2, SOMAXCONN]));
        }
        if self.rng.chance(50) {
            let _ = self.p.ioctl(s, FIONBIO, &mut 1);
        }
        if let (Ok(addr), Ok(c)) = (self.p.get_sock_name(s), self.peer.open()) {
            let _ = self.peer.connect(c, addr, Wait::No);
            self.peer_ids.push(c);
        }
    }

    fn socket(&mut self) {
        let af = self.rng.pick(&[AF_INET, AF_INET, AF_INET6, 0, 99, -1]);
        let kind = self.rng.pick(&[SOCK_STREAM, SOCK_STREAM, 2, 0, -1]);
        let proto = self.rng.pick(&[0, IPPROTO_TCP, 17, -1]);
        if let Ok(s) = self.p.socket(af, kind, proto) {
            self.fds.push(s);
        }
    }

    /// An address: the peer's listener or a closed port, our own, nobody, the other family,
    /// port 0, unspecified, multicast, loopback.
    fn addr(&mut self) -> SocketAddr {
        let ip: IpAddr = self.rng.pick(&[
            PEER.into(),
            PEER.into(),
            ME.into(),
            NOBODY.into(),
            Ipv4Addr::UNSPECIFIED.into(),
            Ipv4Addr::new(224, 0, 0, 1).into(),
            Ipv4Addr::LOCALHOST.into(),
            Ipv6Addr::new(0xfd00, 12, 0, 0, 0, 0, 0, 2).into(),
            Ipv6Addr::UNSPECIFIED.into(),
        ]);
        let port = self.rng.pick(&[PEER_PORT, PEER_PORT, 7001, 0, 8000, 65535]);
        SocketAddr::new(ip, port)
    }

    fn accept(&mut self, s: usize) {
        let verdict = self
            .rng
            .pick(&[None, Some(CF_ACCEPT), Some(CF_REJECT), Some(77)]);
        let result = self.guarded(s, |p| match verdict {
            None => p.accept(s, None),
            Some(v) => {
                let mut condition = |_: SocketAddr| v;
                p.accept(s, Some(&mut condition))
            }
        });
        if let Ok((t, _)) = result {
            self.fds.push(t);
        }
    }

    /// An overlapped send or receive, completing by polling, an event, a completion port, or
    /// a custom completion that calls back into the provider.
    fn overlapped(&mut self, s: usize) {
        let completion = match self.rng.below(4) {
            0 => Completion::Poll,
            1 => Completion::Event(Event::new()),
            2 => Completion::Port(CompletionPort::new(), 7),
            _ => {
                let p = self.p.clone();
                Completion::Custom(Box::new(move |_, _, _| {
                    read_if_ready(&p, s);
                    let _ = p.get_sock_name(s);
                }))
            }
        };
        let ov = Overlapped::new(completion);
        let result = if self.rng.chance(50) {
            let max = self.rng.pick(&[0, 1, 4096, 1 << 20]);
            self.p.recv_overlapped(s, max, &ov)
        } else {
            let len = self.rng.pick(&[0, 10, 50_000]);
            let data = self.rng.bytes(len);
            self.p.send_overlapped(s, &data, &ov)
        };
        if result == Err(WsaError::IO_PENDING) {
            self.ops.push((s, ov));
        }
    }

    /// WSPGetOverlappedResult on a pending operation (waiting only on a real one), or with a
    /// wrong descriptor.
    fn overlapped_result(&mut self) {
        if self.ops.is_empty() {
            return;
        }
        let (s, ov) = self.ops[self.rng.below(self.ops.len())].clone();
        let wait = self.rng.chance(30);
        let other = self.fd();
        let on = if wait { s } else { other };
        let _ = self.guarded(s, |p| p.get_overlapped_result(on, &ov, wait));
    }

    /// WSPSetSockOpt with NULL, short, long and odd values. Linger times stay at 0 or 1 s: a
    /// blocking linger close may rightly wait that long.
    fn set_option(&mut self, s: usize) {
        let level = self.rng.pick(&[SOL_SOCKET, SOL_SOCKET, IPPROTO_TCP, 0, -1]);
        let name = self.rng.pick(&[
            SO_LINGER,
            SO_LINGER,
            SO_DONTLINGER,
            SO_RCVBUF,
            SO_SNDBUF,
            SO_KEEPALIVE,
            TCP_NODELAY,
            SO_ERROR,
            SO_TYPE,
            SO_ACCEPTCONN,
            0x7777,
        ]);
        let len = self.rng.pick(&[0, 1, 2, 3, 4, 4, 8]);
        let mut value = self.rng.bytes(len);
        if name == SO_LINGER && value.len() >= 4 {
            let secs = u16::from(self.rng.chance(10));
            value[2..4].copy_from_slice(&secs.to_ne_bytes());
        }
        if matches!(name, SO_RCVBUF | SO_SNDBUF) && value.len() >= 4 {
            let size = self.rng.pick(&[-1, 0, 1, 4096, 1 << 20, i32::MAX]);
            value[..4].copy_from_slice(&size.to_ne_bytes());
        }
        let value = (!self.rng.chance(10)).then_some(value.as_slice());
        let _ = self.p.set_sock_opt(s, level, name, value);
    }

    fn get_option(&mut self, s: usize) {
        let level = self.rng.pick(&[SOL_SOCKET, IPPROTO_TCP, 0]);
        let name = self
            .rng
            .pick(&[SO_LINGER, SO_ERROR, SO_RCVBUF, SO_TYPE, TCP_NODELAY, 0x7777]);
        let mut buf = vec![0; self.rng.pick(&[0, 1, 3, 4, 16])];
        let _ = self.p.get_sock_opt(s, level, name, &mut buf);
    }

    fn ioctl(&mut self, s: usize) {
        let code = self.rng.pick(&[FIONBIO, FIONBIO, FIONREAD, 0, 0xdead_beef]);
        let mut arg = self.rng.pick(&[0, 1, u32::MAX]);
        let _ = self.p.ioctl(s, code, &mut arg);
    }

    /// WSPEventSelect / WSPAsyncSelect with good and bad masks, and enumeration.
    fn select_events(&mut self, s: usize) {
        let mask = self
            .rng
            .pick(&[0, FD_READ, FD_CLOSE | FD_READ, FD_ALL_EVENTS, -1, 1 << 20]);
        match self.rng.below(3) {
            0 => {
                let event: Option<Arc<dyn EventObject>> = self
                    .rng
                    .chance(85)
                    .then(|| Event::new() as Arc<dyn EventObject>);
                let _ = self.p.event_select(s, event, mask);
            }
            1 => {
                let sink: Option<Arc<dyn MessageSink>> = self.rng.chance(85).then(|| {
                    Arc::new(Reentrant {
                        p: self.p.clone(),
                        posts: AtomicU64::new(0),
                    }) as Arc<dyn MessageSink>
                });
                let _ = self.p.async_select(s, sink, mask);
            }
            _ => {
                let event = Event::new();
                let with = self.rng.chance(50);
                let _ = self
                    .p
                    .enum_network_events(s, with.then_some(&*event as &dyn EventObject));
            }
        }
    }

    fn duplicate(&mut self, s: usize) {
        if let Ok(mut info) = self.p.duplicate_socket(s) {
            if self.rng.chance(20) {
                info.provider_reserved = self.rng.next_u64();
            }
            if let Ok(t) = self.p.socket_from_info(&info) {
                self.fds.push(t);
            }
        }
    }

    /// WSPCloseSocket in whatever linger mode and blocking mode the socket is in.
    fn close(&mut self, s: usize) {
        let _ = self.guarded(s, |p| p.close_socket(s));
    }

    fn select(&mut self) {
        let mut sets: [Vec<usize>; 3] = Default::default();
        for set in &mut sets {
            for _ in 0..self.rng.below(3) {
                let s = self.fd();
                set.push(s);
            }
        }
        let timeout = Duration::from_millis(self.rng.pick(&[0, 1, 30]));
        let [r, w, e] = &mut sets;
        let _ = self.p.select(r, w, e, Some(timeout));
    }

    /// The peer connects to our listeners, reads, writes, or closes.
    fn peer_action(&mut self) {
        match self.rng.below(4) {
            0 => {
                let port = self.p_listening_port();
                if let (Some(port), Ok(c)) = (port, self.peer.open()) {
                    let _ = self
                        .peer
                        .connect(c, SocketAddr::new(ME.into(), port), Wait::No);
                    self.peer_ids.push(c);
                }
                // Take in what connected to the peer's listener.
                while let Ok((c, _)) = self.peer.accept(self.peer_ids[0], Wait::No) {
                    self.peer_ids.push(c);
                }
            }
            1 => {
                for &c in &self.peer_ids[1..] {
                    let _ = self.peer.recv(c, 1 << 20, Wait::No);
                }
            }
            2 => {
                if let Some(&c) = self.peer_ids.get(1 + self.rng.below(self.peer_ids.len())) {
                    let len = self.rng.pick(&[1, 3_000]);
                    let _ = self.peer.send(c, &self.rng.bytes(len), Wait::No);
                }
            }
            _ => {
                if self.peer_ids.len() > 1 {
                    let i = 1 + self.rng.below(self.peer_ids.len() - 1);
                    let c = self.peer_ids.remove(i);
                    let mode = self
                        .rng
                        .pick(&[CloseMode::Abort, CloseMode::Graceful { deadline: None }]);
                    let _ = self.peer.close(c, mode);
                }
            }
        }
    }

    /// The port of one of our listening sockets, if any.
    fn p_listening_port(&mut self) -> Option<u16> {
        let mut ports = Vec::new();
        for &s in &self.fds {
            let mut buf = [0u8; 4];
            if self.p.get_sock_opt(s, SOL_SOCKET, SO_ACCEPTCONN, &mut buf) == Ok(4)
                && buf != [0; 4]
                && let Ok(addr) = self.p.get_sock_name(s)
            {
                ports.push(addr.port());
            }
        }
        (!ports.is_empty()).then(|| self.rng.pick(&ports))
    }

    /// Close every descriptor (resetting those that cannot close at once without blocking)
    /// and every peer socket. A close refused with WSAEINPROGRESS (a callback or another
    /// thread is closing the same socket, and may fail) is tried again.
    fn close_everything(&mut self) {
        let abort = abortive_linger();
        for _ in 0..100 {
            self.refresh();
            if self.fds.is_empty() {
                break;
            }
            for s in self.fds.clone() {
                if self.rng.chance(50) {
                    let _ = self.p.set_sock_opt(s, SOL_SOCKET, SO_LINGER, Some(&abort));
                }
                if self.guarded(s, |p| p.close_socket(s)) == Err(WsaError::WOULDBLOCK) {
                    let _ = self.p.set_sock_opt(s, SOL_SOCKET, SO_LINGER, Some(&abort));
                    let result = self.guarded(s, |p| p.close_socket(s));
                    assert!(
                        matches!(result, Ok(()) | Err(WsaError::INPROGRESS)),
                        "an abortive close of {s:#x} failed: {result:?}"
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            self.fds.is_empty(),
            "descriptors that would not close: {:x?}",
            self.fds
        );
        for c in std::mem::take(&mut self.peer_ids) {
            let _ = self.peer.close(c, CloseMode::Abort);
        }
    }

    /// Every overlapped operation completed; no descriptor, operation or socket left.
    fn check_nothing_left(&mut self) {
        for (s, ov) in &self.ops {
            assert!(
                ov.wait(Duration::from_secs(10)),
                "an overlapped operation on {s:#x} never completed after its socket closed"
            );
        }
        assert_eq!(self.p.descriptor_count(), 0, "descriptors left");
        let stack = self.p.stack();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let c = stack.counters().expect("counters");
            let sockets: usize = c.sockets_by_state.values().sum();
            if c.open_ids == 0 && sockets == 0 && self.p.pending_operations() == 0 {
                return;
            }
            assert!(
                Instant::now() < end,
                "left after closing everything: {} ids, sockets {:?}, {} operations",
                c.open_ids,
                c.sockets_by_state,
                self.p.pending_operations()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Cleanup; afterwards every call fails with WSANOTINITIALISED and nothing is left.
    fn cleanup_and_check(mut self, rescuer: std::thread::JoinHandle<()>) {
        assert_eq!(self.p.cleanup(), Ok(()));
        self.stop.store(true, Ordering::SeqCst);
        rescuer.join().expect("rescuer");
        for _ in 0..10 {
            let s = self.fd();
            let mut buf = [0u8; 8];
            let results = [
                self.p.recv(s, &mut buf).map(|_| ()),
                self.p.close_socket(s),
                self.p.socket(AF_INET, SOCK_STREAM, 0).map(|_| ()),
                self.p.cleanup(),
            ];
            for r in results {
                assert_eq!(r, Err(WsaError::NOTINITIALISED));
            }
        }
        assert_eq!(self.p.descriptor_count(), 0);
        assert_eq!(self.p.pending_operations(), 0);
        self.peer.stop(Duration::ZERO);
    }
}

/// SO_LINGER {1, 0}: reset at close.
fn abortive_linger() -> [u8; 4] {
    lingerstack_wsp::Linger {
        onoff: 1,
        linger: 0,
    }
    .to_bytes()
}

/// The thread that releases a blocking call still waiting after [`RESCUE_AFTER`], by closing
/// (abortively) every descriptor of its socket, as an application's other thread would.
fn rescuer(p: Provider, in_flight: InFlight, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
            let Some((since, fds)) = in_flight.lock().unwrap().clone() else {
                continue;
            };
            if since.elapsed() < RESCUE_AFTER {
                continue;
            }
            // Again every round while the call waits: a close can be refused for a moment
            // (WSAEINPROGRESS while a callback closes the same socket).
            let abort = abortive_linger();
            for s in fds {
                let _ = p.set_sock_opt(s, SOL_SOCKET, SO_LINGER, Some(&abort));
                let _ = p.close_socket(s);
            }
        }
    })
}

/// An async-select sink that calls back into the provider from the notification, as a
/// window procedure may: enumerates, reads, and sometimes closes the socket.
struct Reentrant {
    p: Provider,
    posts: AtomicU64,
}

impl MessageSink for Reentrant {
    fn post(&self, socket: usize, event: i32, _error: i32) {
        let n = self.posts.fetch_add(1, Ordering::SeqCst);
        let _ = self.p.enum_network_events(socket, None);
        if event == FD_READ {
            read_if_ready(&self.p, socket);
        }
        if n % 4 == 3 {
            // From inside a callback: a close that would block must be refused (C21).
            let _ = self.p.close_socket(socket);
        }
    }
}

/// A receive from a callback that cannot block the dispatcher: only when bytes are waiting.
fn read_if_ready(p: &Provider, s: usize) {
    let mut waiting = 0;
    if p.ioctl(s, FIONREAD, &mut waiting).is_ok() && waiting > 0 {
        let mut buf = [0u8; 512];
        let _ = p.recv(s, &mut buf);
    }
}
