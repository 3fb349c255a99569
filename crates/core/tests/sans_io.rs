//! The core driven with no I/O at all: two engines on frame queues, the test moving every
//! frame between them and choosing the time. What a driver needs is all here: apply a request,
//! feed frames, poll at `now`, collect the frames sent and the answers, ask the next wake-up.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use lingerstack_core::link::{FrameQueues, Medium, QueueLink};
use lingerstack_core::{
    Cidr, CloseMode, Done, Engine, Instant, Outcome, Request, SocketId, StackConfig, StackError,
    Wait,
};

const A: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

/// One engine, the driver's end of its link, and its answers by tag.
struct Side {
    engine: Engine<u64>,
    wire: FrameQueues,
    answers: HashMap<u64, Outcome>,
}

impl Side {
    fn new(addr: Ipv4Addr, last: u8, medium: Medium) -> Side {
        let (link, wire) = QueueLink::with_medium(1500, medium);
        let config = StackConfig {
            mac: [2, 0, 0, 0, 0, last],
            ipv4: Some(Cidr { addr, prefix: 24 }),
            random_seed: Some(u64::from(last)),
            ..StackConfig::default()
        };
        let engine =
            Engine::new(config, Box::new(link), Default::default(), Instant::ZERO).expect("engine");
        Side {
            engine,
            wire,
            answers: HashMap::new(),
        }
    }

    fn collect(&mut self) {
        self.answers.extend(self.engine.drain_answers());
    }
}

struct World {
    a: Side,
    b: Side,
    now: Instant,
    tag: u64,
    /// Every frame a has sent.
    a_sent: Vec<Vec<u8>>,
    /// Every frame b has sent.
    b_sent: Vec<Vec<u8>>,
}

impl World {
    fn new() -> World {
        World::on(Medium::Ethernet)
    }

    fn on(medium: Medium) -> World {
        World {
            a: Side::new(A, 1, medium),
            b: Side::new(B, 2, medium),
            now: Instant::ZERO,
            tag: 0,
            a_sent: Vec::new(),
            b_sent: Vec::new(),
        }
    }

    fn submit(&mut self, on_a: bool, request: Request) -> u64 {
        self.tag += 1;
        let side = if on_a { &mut self.a } else { &mut self.b };
        side.engine.handle(request, self.tag, self.now);
        self.tag
    }

    /// Poll both at the current time and carry frames across until nothing moves.
    fn settle(&mut self) {
        for _ in 0..50 {
            self.a.engine.poll(self.now);
            self.b.engine.poll(self.now);
            let from_a = self.a.wire.take_sent();
            let from_b = self.b.wire.take_sent();
            if from_a.is_empty() && from_b.is_empty() {
                break;
            }
            for f in &from_a {
                self.b.wire.feed(f);
            }
            for f in &from_b {
                self.a.wire.feed(f);
            }
            self.a_sent.extend(from_a);
            self.b_sent.extend(from_b);
        }
        self.a.collect();
        self.b.collect();
    }

    fn answer(&mut self, tag: u64) -> Option<Outcome> {
        self.a
            .answers
            .remove(&tag)
            .or_else(|| self.b.answers.remove(&tag))
    }

    /// Submit, settle, and return the answer (which must have come).
    fn call(&mut self, on_a: bool, request: Request) -> Done {
        let tag = self.submit(on_a, request);
        self.settle();
        self.answer(tag).expect("answered").expect("succeeded")
    }

    fn open(&mut self, on_a: bool) -> SocketId {
        match self.call(on_a, Request::Open) {
            Done::Socket(id) => id,
            other => panic!("{other:?}"),
        }
    }

    /// a connects to b:80: (a's socket, b's socket).
    fn connected(&mut self) -> (SocketId, SocketId) {
        let l = self.open(false);
        self.call(false, Request::Bind(l, SocketAddr::new(B.into(), 80)));
        self.call(false, Request::Listen(l, 1));
        let s = self.open(true);
        let to = SocketAddr::new(B.into(), 80);
        let tag = self.submit(true, Request::Connect(s, to, Wait::Block(None)));
        self.settle();
        self.answer(tag).expect("connected").unwrap();
        let Done::Accepted(c, _) = self.call(false, Request::Accept(l, Wait::No)) else {
            panic!("accept")
        };
        (s, c)
    }
}

/// Whether `frame` is a TCP segment with RST (IPv4 over Ethernet, no IP options).
fn is_rst(frame: &[u8]) -> bool {
    frame.len() >= 14 + 20 + 20
        && frame[12..14] == [0x08, 0x00]
        && frame[14 + 9] == 6
        && frame[14 + 20 + 13] & 0x04 != 0
}

/// Bytes go across and an abortive close puts a RST on the wire, all without a thread, a
/// channel or a clock.
#[test]
fn data_and_an_abortive_close_through_frame_queues() {
    let mut w = World::new();
    let (s, c) = w.connected();
    assert_eq!(
        w.call(true, Request::Send(s, b"hello".to_vec(), Wait::No)),
        Done::Sent(5)
    );
    assert_eq!(
        w.call(false, Request::Recv(c, 64, Wait::No)),
        Done::Received(b"hello".to_vec())
    );
    let before = w.a_sent.len();
    w.call(true, Request::Close(s, CloseMode::Abort));
    assert!(
        w.a_sent[before..].iter().any(|f| is_rst(f)),
        "no RST among a's frames after the abortive close"
    );
    // b learns of the reset from that frame.
    let tag = w.submit(false, Request::Recv(c, 64, Wait::No));
    w.settle();
    assert_eq!(
        w.answer(tag).unwrap().unwrap_err().error,
        StackError::ConnReset
    );
}

/// A blocking receive with a 5 s timeout, driven only by the wake-up times the engine asks
/// for: the driver jumps straight to each, and the answer comes at exactly 5 s.
#[test]
fn poll_at_names_the_next_deadline() {
    let mut w = World::new();
    let (_s, c) = w.connected();
    let start = w.now;
    let tag = w.submit(
        false,
        Request::Recv(c, 64, Wait::Block(Some(Duration::from_secs(5)))),
    );
    w.settle();
    let mut jumps = 0;
    let outcome = loop {
        if let Some(o) = w.answer(tag) {
            break o;
        }
        let next = [w.a.engine.poll_at(w.now), w.b.engine.poll_at(w.now)]
            .into_iter()
            .flatten()
            .min()
            .expect("a pending receive needs a wake-up");
        w.now = next.max(w.now);
        w.settle();
        jumps += 1;
        assert!(jumps < 100, "too many wake-ups for one timeout");
    };
    assert_eq!(outcome.unwrap_err().error, StackError::TimedOut);
    assert_eq!((w.now - start).total_millis(), 5_000);
}

/// Readiness events are collected only when the driver asked for them: asking for the events
/// of an engine without them neither returns any nor starts watching its sockets.
#[test]
fn events_only_when_enabled() {
    let mut w = World::new();
    w.b.engine.enable_events();
    assert_eq!(w.a.engine.drain_events().count(), 0);
    let (s, c) = w.connected();
    w.call(true, Request::Send(s, b"ping".to_vec(), Wait::No));
    assert_eq!(
        w.a.engine.drain_events().count(),
        0,
        "a never enabled events"
    );
    let events: Vec<_> = w.b.engine.drain_events().collect();
    assert!(
        events.iter().any(|e| e.id == c && e.ready.readable),
        "b's accepted socket became readable: {events:?}"
    );
}

/// On an IP link the engine sends and takes bare IP packets: the same connection works with no
/// Ethernet header and no neighbour resolution, and an address and a route added after the
/// engine started (a driver that learns them late) are used at once.
#[test]
fn ip_medium_moves_bare_ip_packets_with_late_addresses() {
    let mut w = World::on(Medium::Ip);
    // a learns a second address in another network, reachable through a default route.
    let far = Ipv4Addr::new(192, 0, 2, 7);
    w.b.engine.add_address(far.into(), 24).expect("address");
    w.a.engine.set_default_route(B.into()).expect("route");
    let l = w.open(false);
    w.call(false, Request::Bind(l, SocketAddr::new(far.into(), 80)));
    w.call(false, Request::Listen(l, 1));
    let s = w.open(true);
    let tag = w.submit(
        true,
        Request::Connect(s, SocketAddr::new(far.into(), 80), Wait::Block(None)),
    );
    w.settle();
    w.answer(tag).expect("connected").unwrap();
    assert_eq!(
        w.call(true, Request::Send(s, b"hi".to_vec(), Wait::No)),
        Done::Sent(2)
    );
    let Done::Accepted(c, peer) = w.call(false, Request::Accept(l, Wait::No)) else {
        panic!("accept")
    };
    assert_eq!(peer.ip(), std::net::IpAddr::from(A));
    assert_eq!(
        w.call(false, Request::Recv(c, 64, Wait::No)),
        Done::Received(b"hi".to_vec())
    );
    assert!(!w.a_sent.is_empty());
    for packet in &w.a_sent {
        // IPv4, 20-byte header, TCP, from a to the far address: no link header in front.
        assert_eq!(packet[0], 0x45, "{packet:02x?}");
        assert_eq!(packet[9], 6);
        assert_eq!(packet[12..16], A.octets());
        assert_eq!(packet[16..20], far.octets());
    }
}

/// A driver answers `listen` at once and polls after, so a client's SYNs can reach the link
/// in between. A burst larger than the idle listening slots that arrives then must be held
/// for more slots like any other burst: none of it is reset (the kernel would report
/// ECONNREFUSED), and every connect completes.
#[test]
fn a_burst_right_after_listen_is_not_reset() {
    const BURST: usize = 12;
    let mut w = World::new();
    // One connection first, so both sides know each other's MAC and the SYNs go out at once.
    w.connected();
    let l = w.open(false);
    let to = SocketAddr::new(B.into(), 81);
    w.call(false, Request::Bind(l, to));
    let clients: Vec<SocketId> = (0..BURST).map(|_| w.open(true)).collect();
    let before = w.b_sent.len();
    let listen = w.submit(false, Request::Listen(l, 16));
    let connects: Vec<u64> = clients
        .iter()
        .map(|&s| w.submit(true, Request::Connect(s, to, Wait::Block(None))))
        .collect();
    // a's SYNs are on b's link before b's first poll since the listen.
    w.a.engine.poll(w.now);
    let syns = w.a.wire.take_sent();
    assert_eq!(syns.len(), BURST, "one SYN per connect");
    for f in &syns {
        w.b.wire.feed(f);
    }
    w.a_sent.extend(syns);
    w.settle();
    assert!(w.answer(listen).expect("listen answered").is_ok());
    let resets = w.b_sent[before..].iter().filter(|f| is_rst(f)).count();
    assert_eq!(
        resets, 0,
        "RSTs from the listener to a burst of {BURST} SYNs"
    );
    for (i, tag) in connects.into_iter().enumerate() {
        let outcome = w
            .answer(tag)
            .unwrap_or_else(|| panic!("connect {i} unanswered"));
        assert!(outcome.is_ok(), "connect {i}: {outcome:?}");
    }
}
