//! The frame fuzzer: two engines (T, the target, and P, an honest peer) on the in-memory link
//! with the fuzzer in the middle, driven by a virtual clock.
//!
//! A case builds real connections between them (IPv4 and IPv6, both directions), then mixes:
//! crafted frames injected into T (TCP aimed at live connections with sequence numbers near
//! the ones on the wire, at listeners and at closed ports, with every flag combination, bad
//! data offsets and option lengths; odd IPv4 headers and fragments; IPv6 extension-header
//! chains; ARP and NDP garbage; ICMP errors quoting live connections; raw junk), mutations
//! of P's segments on their way to T (flags, sequence numbers, offsets, lengths, truncation,
//! duplication, loss, reordering), calls on both engines with good and bad arguments, and jumps
//! of time. Then everything is closed and time passes: every call must have been answered
//! exactly once, no socket may be left in either engine, and neither may ask to be polled
//! again and again with nothing to do. A panic anywhere fails the case.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use lingerstack_core::{DeviceOptions, Done, Engine, Link, Request};
use lingerstack_stack::link::MemoryLink;
use lingerstack_stack::{
    Cidr, CloseMode, KeepAlive, Shutdown, SocketId, StackConfig, TcpOptions, Wait,
};
use smoltcp::time::Instant;

use super::Rng;
use super::craft;
use super::wire;

pub(super) const T_MAC: [u8; 6] = [2, 0, 0, 0, 9, 1];
pub(super) const P_MAC: [u8; 6] = [2, 0, 0, 0, 9, 2];
pub(super) const BROADCAST: [u8; 6] = [0xff; 6];
pub(super) const T_V4: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
pub(super) const P_V4: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
/// On T's subnet, answered by nobody.
pub(super) const NOBODY_V4: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 77);
pub(super) const T_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 1);
pub(super) const P_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 2);
/// T's listening ports (IPv4, IPv6) and P's.
pub(super) const T_PORTS: [u16; 2] = [80, 8080];
const P_PORTS: [u16; 2] = [90, 9090];
/// More rounds than this of frames at one instant is a storm (two engines answering each other
/// for ever).
const STORM_ROUNDS: usize = 5_000;
/// More consecutive wake-ups than this with nothing to do is a spinning engine.
const SPIN_LIMIT: usize = 5_000;

/// More frames than this sent by one engine in one poll is a storm inside smoltcp's poll (its
/// egress loop never ends); the guard stops the case there instead of filling memory.
const POLL_STORM: usize = 100_000;

/// The engines' own end of the cable, counting frames sent since the engine last read: one
/// poll reads its link until it is empty, then sends, so a send count that never resets means
/// a poll that never ends.
struct StormGuard {
    link: MemoryLink,
    sent: usize,
}

impl Link for StormGuard {
    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        self.sent = 0;
        self.link.recv(buf)
    }

    fn send(&mut self, frame: &[u8]) -> std::io::Result<bool> {
        self.sent += 1;
        if self.sent > POLL_STORM {
            panic!(
                "storm inside one poll: {POLL_STORM} frames without an end, the last {:?}",
                wire::parse_tcp(frame)
            );
        }
        self.link.send(frame)
    }

    fn mtu(&self) -> usize {
        self.link.mtu()
    }

    fn describe(&self) -> String {
        "memory (fuzzed)".into()
    }
}

/// Which engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    T,
    P,
}

/// A connection seen on the wire, with the latest sequence numbers in each direction.
#[derive(Clone, Copy, Debug)]
pub(super) struct Flow {
    /// T's end and P's end.
    pub(super) t: (IpAddr, u16),
    pub(super) p: (IpAddr, u16),
    /// The next sequence number T will send, and what T last acknowledged.
    pub(super) t_next: u32,
    pub(super) t_ack: u32,
    /// The next sequence number P will send.
    pub(super) p_next: u32,
}

/// The two engines, the middle of the cable, the clock and the book-keeping of calls.
pub struct Net {
    t: Engine<u64>,
    p: Engine<u64>,
    /// The fuzzer's end of T's cable and of P's.
    t_wire: MemoryLink,
    p_wire: MemoryLink,
    now: Instant,
    next_tag: u64,
    /// Calls not answered yet, by tag.
    outstanding: HashMap<u64, Side>,
    t_ids: Vec<SocketId>,
    p_ids: Vec<SocketId>,
    flows: Vec<Flow>,
    /// P's next frames to T that get mutated.
    mutate: usize,
    /// A frame held back to be delivered after the next one (reordering).
    held: Option<Vec<u8>>,
    frame_buf: Vec<u8>,
}

/// Run one case of the frame fuzzer from `rng`.
pub fn run_case(rng: &mut Rng) {
    let mut net = Net::new(rng.next_u64());
    net.setup(rng);
    let steps = rng.range(20, 120);
    for _ in 0..steps {
        net.step(rng);
    }
    net.teardown(rng);
}

/// Every one of the 512 TCP flag combinations (NS included), each at the newest live
/// connection with the exact sequence and acknowledgment numbers it expects, and at the
/// listener from a new port; a fresh connection every 16 combinations, since many of them
/// end one. Then the same checks as a case.
pub fn run_flag_sweep(seed: u64) {
    let mut rng = Rng::new(seed);
    let mut net = Net::new(seed);
    net.setup(&mut rng);
    let listener = net.t_ids[0];
    for flags in 0..512u16 {
        if flags % 16 == 0 {
            net.connect(Side::P, SocketAddr::new(T_V4.into(), T_PORTS[0]));
            net.run_for(Duration::from_millis(50));
            net.submit(Side::T, Request::Accept(listener, Wait::No));
        }
        let newest = net.flows.last().copied();
        for flow in [newest, None] {
            let frame = craft::with_flags(flow.as_ref(), flags, &mut rng);
            let _ = net.t_wire.send(&frame);
            net.pump();
        }
    }
    let seen = net.t.counters().rx_frames;
    assert!(seen >= 1024, "only {seen} frames reached the engine");
    net.teardown(&mut rng);
}

fn config(mac: [u8; 6], v4: Ipv4Addr, v6: Ipv6Addr, seed: u64) -> StackConfig {
    StackConfig {
        mac,
        ipv4: Some(Cidr {
            addr: v4,
            prefix: 24,
        }),
        ipv6: Some(Cidr {
            addr: v6,
            prefix: 64,
        }),
        rx_buffer: 8 * 1024,
        tx_buffer: 8 * 1024,
        max_backlog: 4,
        close_deadline: Duration::from_secs(5),
        random_seed: Some(seed),
        ..StackConfig::default()
    }
}

impl Net {
    fn new(seed: u64) -> Net {
        let (t_link, t_wire) = MemoryLink::pair(1500);
        let (p_link, p_wire) = MemoryLink::pair(1500);
        let now = Instant::from_millis(0);
        let t = Engine::new(
            config(T_MAC, T_V4, T_V6, seed),
            Box::new(StormGuard {
                link: t_link,
                sent: 0,
            }),
            DeviceOptions::default(),
            now,
        )
        .expect("engine T");
        let p = Engine::new(
            config(P_MAC, P_V4, P_V6, seed ^ 1),
            Box::new(StormGuard {
                link: p_link,
                sent: 0,
            }),
            DeviceOptions::default(),
            now,
        )
        .expect("engine P");
        Net {
            t,
            p,
            t_wire,
            p_wire,
            now,
            next_tag: 0,
            outstanding: HashMap::new(),
            t_ids: Vec::new(),
            p_ids: Vec::new(),
            flows: Vec::new(),
            mutate: 0,
            held: None,
            frame_buf: vec![0; 2048],
        }
    }

    fn engine(&mut self, side: Side) -> &mut Engine<u64> {
        match side {
            Side::T => &mut self.t,
            Side::P => &mut self.p,
        }
    }

    fn ids(&mut self, side: Side) -> &mut Vec<SocketId> {
        match side {
            Side::T => &mut self.t_ids,
            Side::P => &mut self.p_ids,
        }
    }

    /// Hand `request` to an engine; its answer is collected later.
    fn submit(&mut self, side: Side, request: Request) {
        self.next_tag += 1;
        let tag = self.next_tag;
        self.outstanding.insert(tag, side);
        let now = self.now;
        self.engine(side).handle(request, tag, now);
        self.collect();
    }

    /// Take in the answers that came; new sockets (opened or accepted) join their side's list.
    fn collect(&mut self) {
        let answers: Vec<_> = self
            .t
            .drain_answers()
            .chain(self.p.drain_answers())
            .collect();
        for (tag, outcome) in answers {
            let side = self
                .outstanding
                .remove(&tag)
                .unwrap_or_else(|| panic!("call {tag} answered twice (or never asked)"));
            if let Ok(Done::Socket(id) | Done::Accepted(id, _)) = outcome {
                self.ids(side).push(id);
            }
        }
    }

    /// Open a socket now and return its id.
    fn open(&mut self, side: Side) -> Option<SocketId> {
        self.submit(side, Request::Open);
        self.ids(side).last().copied()
    }

    /// Poll both engines and move frames between them at the current instant until the
    /// cable is quiet.
    fn pump(&mut self) {
        for _ in 0..STORM_ROUNDS {
            let now = self.now;
            self.t.poll(now);
            self.p.poll(now);
            let mut moved = 0;
            while let Some(frame) = self.take(Side::T) {
                moved += 1;
                self.observe(&frame, Side::T);
                let _ = self.p_wire.send(&frame);
            }
            while let Some(frame) = self.take(Side::P) {
                moved += 1;
                self.observe(&frame, Side::P);
                self.deliver_to_t(frame);
            }
            self.collect();
            if moved == 0 {
                return;
            }
        }
        panic!(
            "frame storm: the engines still exchange frames after {STORM_ROUNDS} rounds at {}",
            self.now
        );
    }

    /// The next frame an engine sent, if any.
    fn take(&mut self, from: Side) -> Option<Vec<u8>> {
        let wire = match from {
            Side::T => &mut self.t_wire,
            Side::P => &mut self.p_wire,
        };
        match wire.recv(&mut self.frame_buf) {
            Ok(Some(n)) => Some(self.frame_buf[..n.min(self.frame_buf.len())].to_vec()),
            _ => None,
        }
    }

    /// A frame of P on its way to T, mutated while mutations are armed.
    fn deliver_to_t(&mut self, mut frame: Vec<u8>) {
        if self.mutate == 0 {
            let _ = self.t_wire.send(&frame);
            return;
        }
        self.mutate -= 1;
        // The mutation's randomness comes from the frame itself and a counter, so that a case
        // stays a function of its seed.
        let mut rng =
            Rng::new(wire::checksum(&[&frame]) as u64 ^ (self.next_tag << 20) ^ self.mutate as u64);
        match rng.below(8) {
            0 => {} // dropped
            1 => {
                let _ = self.t_wire.send(&frame);
                let _ = self.t_wire.send(&frame);
            }
            2 => {
                if let Some(old) = self.held.replace(frame) {
                    let _ = self.t_wire.send(&old);
                }
            }
            _ => {
                craft::mutate(&mut frame, &mut rng);
                let _ = self.t_wire.send(&frame);
            }
        }
        if self.mutate == 0
            && let Some(old) = self.held.take()
        {
            let _ = self.t_wire.send(&old);
        }
    }

    /// Learn sequence numbers from a frame on the cable.
    fn observe(&mut self, frame: &[u8], from: Side) {
        let Some(seen) = wire::parse_tcp(frame) else {
            return;
        };
        let (t, p) = match from {
            Side::T => (seen.src, seen.dst),
            Side::P => (seen.dst, seen.src),
        };
        let at = match self.flows.iter().position(|f| f.t == t && f.p == p) {
            Some(at) => at,
            None => {
                if self.flows.len() >= 16 {
                    self.flows.remove(0);
                }
                self.flows.push(Flow {
                    t,
                    p,
                    t_next: 0,
                    t_ack: 0,
                    p_next: 0,
                });
                self.flows.len() - 1
            }
        };
        let flow = &mut self.flows[at];
        let end = seen.seq.wrapping_add(seen.len);
        match from {
            Side::T => {
                flow.t_next = end;
                flow.t_ack = seen.ack;
            }
            Side::P => flow.p_next = end,
        }
    }

    /// Let `d` of virtual time pass, waking the engines when they ask to be.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + smoltcp::time::Duration::from(d);
        let mut idle_wakeups = 0;
        loop {
            self.pump();
            let now = self.now;
            let next = [self.t.poll_at(now), self.p.poll_at(now)]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at < end => {
                    if at <= now {
                        idle_wakeups += 1;
                        assert!(
                            idle_wakeups < SPIN_LIMIT,
                            "an engine asks to be polled at once, again and again, at {now}"
                        );
                        self.now = now + smoltcp::time::Duration::from_millis(1);
                    } else {
                        idle_wakeups = 0;
                        self.now = at;
                    }
                }
                _ => {
                    self.now = end;
                    self.pump();
                    return;
                }
            }
        }
    }

    /// Listeners on both sides and connections both ways, over IPv4 and IPv6, with data.
    fn setup(&mut self, rng: &mut Rng) {
        let t_addrs = [IpAddr::V4(T_V4), IpAddr::V6(T_V6)];
        let p_addrs = [IpAddr::V4(P_V4), IpAddr::V6(P_V6)];
        for i in 0..2 {
            self.listener(Side::T, SocketAddr::new(t_addrs[i], T_PORTS[i]), 3);
            self.listener(Side::P, SocketAddr::new(p_addrs[i], P_PORTS[i]), 3);
        }
        for _ in 0..rng.range(1, 3) {
            let i = rng.below(2);
            self.connect(Side::P, SocketAddr::new(t_addrs[i], T_PORTS[i]));
        }
        for _ in 0..rng.range(1, 2) {
            let i = rng.below(2);
            self.connect(Side::T, SocketAddr::new(p_addrs[i], P_PORTS[i]));
        }
        self.run_for(Duration::from_millis(500));
        for side in [Side::T, Side::P] {
            for id in self.ids(side).clone() {
                self.submit(side, Request::Accept(id, Wait::No));
                self.submit(side, Request::Send(id, rng.bytes(300), Wait::No));
            }
        }
        self.run_for(Duration::from_millis(200));
    }

    fn listener(&mut self, side: Side, addr: SocketAddr, backlog: usize) {
        if let Some(id) = self.open(side) {
            self.submit(side, Request::Bind(id, addr));
            self.submit(side, Request::Listen(id, backlog));
        }
    }

    fn connect(&mut self, side: Side, to: SocketAddr) {
        if let Some(id) = self.open(side) {
            self.submit(side, Request::Connect(id, to, Wait::No));
        }
    }

    /// One fuzzing step.
    fn step(&mut self, rng: &mut Rng) {
        match rng.below(100) {
            0..40 => {
                let frame = craft::crafted(&self.flows, rng);
                let _ = self.t_wire.send(&frame);
            }
            40..52 => self.mutate += rng.range(1, 4),
            52..72 => self.call(Side::T, rng),
            72..84 => self.call(Side::P, rng),
            _ => {
                let ms = rng.pick(&[0, 1, 10, 200, 1_000, 3_000, 30_000]);
                self.run_for(Duration::from_millis(ms));
            }
        }
        self.pump();
    }

    /// Close everything, let time pass, and check that nothing is left.
    fn teardown(&mut self, rng: &mut Rng) {
        self.mutate = 0;
        if let Some(old) = self.held.take() {
            let _ = self.t_wire.send(&old);
        }
        for _ in 0..10 {
            let t_ids = std::mem::take(&mut self.t_ids);
            let p_ids = std::mem::take(&mut self.p_ids);
            if t_ids.is_empty() && p_ids.is_empty() && self.outstanding.is_empty() {
                break;
            }
            for (side, ids) in [(Side::T, t_ids), (Side::P, p_ids)] {
                for id in ids {
                    let mode = rng.pick(&[
                        CloseMode::Abort,
                        CloseMode::Graceful { deadline: None },
                        CloseMode::Linger {
                            timeout: Duration::from_millis(700),
                        },
                    ]);
                    self.submit(side, Request::Close(id, mode));
                }
            }
            self.run_for(Duration::from_secs(10));
        }
        self.run_for(Duration::from_secs(120));
        assert!(
            self.outstanding.is_empty(),
            "calls never answered: {:?}",
            self.outstanding
        );
        for side in [Side::T, Side::P] {
            let now = self.now;
            let engine = self.engine(side);
            let c = engine.counters();
            assert_eq!(c.open_ids, 0, "{side:?} still holds socket ids");
            assert!(
                c.sockets_by_state.values().all(|&n| n == 0),
                "{side:?} leaked sockets: {:?}",
                c.sockets_by_state
            );
            if let Some(at) = engine.poll_at(now) {
                assert!(at > now, "{side:?} wants polling at once with nothing left");
            }
        }
    }

    /// A call with random (often bad) arguments on one engine.
    fn call(&mut self, side: Side, rng: &mut Rng) {
        let id = self.some_id(side, rng);
        let request = match rng.below(17) {
            0 => Request::Open,
            1 => Request::Bind(id, local_addr(side, rng)),
            2 => Request::Listen(id, rng.range(0, 6)),
            3 => Request::Accept(id, wait(rng)),
            4 => Request::Connect(id, remote_addr(side, rng), wait(rng)),
            5 | 6 => {
                let len = rng.pick(&[0, 1, 100, 1_500, 20_000]);
                Request::Send(id, rng.bytes(len), wait(rng))
            }
            7 | 8 => Request::Recv(id, rng.pick(&[0, 1, 100, 65_536]), wait(rng)),
            9 => Request::Shutdown(
                id,
                rng.pick(&[Shutdown::Read, Shutdown::Write, Shutdown::Both]),
            ),
            10 | 11 => {
                let mode = close_mode(rng);
                if !matches!(mode, CloseMode::LingerNonBlocking { .. }) {
                    self.ids(side).retain(|&i| i != id);
                }
                Request::Close(id, mode)
            }
            12 => Request::Cancel(id),
            13 => Request::SetOptions(id, options(rng)),
            14 => match rng.below(3) {
                0 => Request::Info(id),
                1 => Request::List,
                _ => Request::Counters,
            },
            15 => {
                // A whole new connection, to somewhere.
                if let Some(new) = self.open(side) {
                    self.submit(
                        side,
                        Request::Connect(new, remote_addr(side, rng), Wait::No),
                    );
                }
                return;
            }
            _ => Request::Watch(id, rng.chance(50)),
        };
        self.submit(side, request);
    }

    /// A live id of `side` most of the time, or one that never existed.
    fn some_id(&mut self, side: Side, rng: &mut Rng) -> SocketId {
        let ids = self.ids(side).clone();
        if ids.is_empty() || rng.chance(5) {
            return SocketId(rng.pick(&[0, 999_999, u64::MAX]));
        }
        rng.pick(&ids)
    }
}

/// How a call waits: not at all, blocking (with or without a timeout) or overlapped.
fn wait(rng: &mut Rng) -> Wait {
    match rng.below(10) {
        0..5 => Wait::No,
        5 | 6 => Wait::Block(None),
        7 | 8 => Wait::Block(Some(Duration::from_millis(rng.pick(&[0, 1, 500, 2_000])))),
        _ => Wait::Overlapped,
    }
}

fn close_mode(rng: &mut Rng) -> CloseMode {
    let deadline = rng
        .chance(50)
        .then(|| Duration::from_millis(rng.pick(&[0, 10, 1_000, 4_000])));
    match rng.below(4) {
        0 => CloseMode::Abort,
        1 => CloseMode::Graceful { deadline },
        2 => CloseMode::Linger {
            timeout: Duration::from_millis(rng.pick(&[0, 1, 300, 2_000])),
        },
        _ => CloseMode::LingerNonBlocking { deadline },
    }
}

/// Options with sizes that are zero, odd, or over the limit, and live options at extremes.
fn options(rng: &mut Rng) -> TcpOptions {
    let size = |rng: &mut Rng| rng.pick(&[0, 1, 100, 4096, 65_536, 1 << 20, (1 << 30) + 1]);
    TcpOptions {
        rx_buffer: size(rng),
        tx_buffer: size(rng),
        nodelay: rng.chance(50),
        keep_alive: rng.chance(40).then(|| {
            let time = |rng: &mut Rng| Duration::from_millis(rng.pick(&[0, 1, 1_000, 75_000]));
            KeepAlive {
                idle: time(rng),
                interval: time(rng),
                probes: rng.pick(&[0, 1, 3, 1000]) as u32,
            }
        }),
        timeout: rng
            .chance(30)
            .then(|| Duration::from_millis(rng.pick(&[0, 1, 1_000, 30_000]))),
    }
}

/// An address to bind on `side`: its own (v4, v6), any, someone else's, odd ports.
fn local_addr(side: Side, rng: &mut Rng) -> SocketAddr {
    let (v4, v6) = match side {
        Side::T => (T_V4, T_V6),
        Side::P => (P_V4, P_V6),
    };
    let ip: IpAddr = rng.pick(&[
        v4.into(),
        v6.into(),
        Ipv4Addr::UNSPECIFIED.into(),
        Ipv6Addr::UNSPECIFIED.into(),
        NOBODY_V4.into(),
        Ipv4Addr::new(224, 0, 0, 1).into(),
    ]);
    SocketAddr::new(ip, rng.pick(&[0, 80, 81, 8080, 90, 49152, 65535]))
}

/// Where `side` might connect: the other side's listeners and closed ports, nobody, itself,
/// and addresses no connection can go to.
fn remote_addr(side: Side, rng: &mut Rng) -> SocketAddr {
    let (other, ports, own): ([IpAddr; 2], [u16; 2], IpAddr) = match side {
        Side::T => ([P_V4.into(), P_V6.into()], P_PORTS, T_V4.into()),
        Side::P => ([T_V4.into(), T_V6.into()], T_PORTS, P_V4.into()),
    };
    let i = rng.below(2);
    match rng.below(10) {
        0..5 => SocketAddr::new(other[i], ports[i]),
        5 => SocketAddr::new(other[i], 4444),
        6 => SocketAddr::new(NOBODY_V4.into(), 80),
        7 => SocketAddr::new(own, 80),
        8 => SocketAddr::new(other[i], 0),
        _ => SocketAddr::new(
            rng.pick(&[
                IpAddr::from(Ipv4Addr::BROADCAST),
                Ipv4Addr::new(224, 0, 0, 1).into(),
                Ipv4Addr::UNSPECIFIED.into(),
                Ipv6Addr::LOCALHOST.into(),
                Ipv4Addr::new(192, 0, 2, 1).into(),
            ]),
            80,
        ),
    }
}
