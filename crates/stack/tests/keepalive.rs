//! Keep-alive on the sans-I/O core (`lingerstack-core`) with a virtual clock: two engines on the in-memory link,
//! polled by the test, time advanced by hand, so hours of idle time take milliseconds and the
//! give-up time is checked to the step.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use lingerstack_core::link::FaultConfig;
use lingerstack_core::{Cidr, CloseReason, KeepAlive, SocketId, StackConfig, StackError, Wait};
use lingerstack_core::{DeviceOptions, Done, Engine, Outcome, Request};
use lingerstack_stack::MemoryLink;
use smoltcp::time::Instant;

const A: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 2);

/// b's keep-alive: a probe after 10 s of silence, then every second, 3 probes.
const KEEP_ALIVE: KeepAlive = KeepAlive {
    idle: Duration::from_secs(10),
    interval: Duration::from_secs(1),
    probes: 3,
};

/// Engine a (the client, no keep-alive) and engine b (the server, keep-alive on its listener),
/// with b's fault switches at hand.
struct Pair {
    a: Engine<u64>,
    b: Engine<u64>,
    b_faults: FaultConfig,
    now: Instant,
    tag: u64,
    answered: std::collections::HashMap<u64, Outcome>,
}

fn config(addr: Ipv4Addr, last: u8) -> StackConfig {
    StackConfig {
        mac: [2, 0, 0, 0, 0, last],
        ipv4: Some(Cidr { addr, prefix: 24 }),
        rx_buffer: 64 * 1024,
        tx_buffer: 64 * 1024,
        random_seed: Some(u64::from(last)),
        ..StackConfig::default()
    }
}

impl Pair {
    fn new() -> Pair {
        let (la, lb) = MemoryLink::pair(1500);
        let now = Instant::from_millis(0);
        let b_faults = FaultConfig::default();
        let a = Engine::new(config(A, 1), Box::new(la), DeviceOptions::default(), now).unwrap();
        let b_options = DeviceOptions {
            faults: b_faults.clone(),
            ..DeviceOptions::default()
        };
        let b = Engine::new(config(B, 2), Box::new(lb), b_options, now).unwrap();
        Pair {
            a,
            b,
            b_faults,
            now,
            tag: 0,
            answered: Default::default(),
        }
    }

    fn submit(&mut self, on_a: bool, request: Request) -> u64 {
        self.tag += 1;
        let engine = if on_a { &mut self.a } else { &mut self.b };
        engine.handle(request, self.tag, self.now);
        self.tag
    }

    /// Advance virtual time by `step`, polling both engines until the link is quiet.
    fn advance(&mut self, step: Duration) {
        self.now += smoltcp::time::Duration::from(step);
        for _ in 0..10 {
            self.a.poll(self.now);
            self.b.poll(self.now);
        }
    }

    fn answer(&mut self, tag: u64) -> Option<Outcome> {
        self.answered.extend(self.a.drain_answers());
        self.answered.extend(self.b.drain_answers());
        self.answered.remove(&tag)
    }

    fn call(&mut self, on_a: bool, request: Request) -> Done {
        let tag = self.submit(on_a, request);
        for _ in 0..1000 {
            if let Some(outcome) = self.answer(tag) {
                return outcome.unwrap();
            }
            self.advance(Duration::from_millis(1));
        }
        panic!("no answer to {tag}");
    }

    fn open(&mut self, on_a: bool) -> SocketId {
        match self.call(on_a, Request::Open) {
            Done::Socket(id) => id,
            other => panic!("{other:?}"),
        }
    }

    /// A connection a -> b:80 whose b side was accepted from a listener with keep-alive:
    /// (a's socket, b's socket).
    fn connect(&mut self) -> (SocketId, SocketId) {
        let l = self.open(false);
        self.call(false, Request::SetKeepAlive(l, Some(KEEP_ALIVE)));
        self.call(false, Request::Bind(l, SocketAddr::new(B.into(), 80)));
        self.call(false, Request::Listen(l, 1));
        let s = self.open(true);
        let to = SocketAddr::new(B.into(), 80);
        self.call(true, Request::Connect(s, to, Wait::Block(None)));
        let Done::Accepted(c, _) = self.call(false, Request::Accept(l, Wait::Block(None))) else {
            panic!("accept")
        };
        (s, c)
    }

    fn b_tx_frames(&self) -> u64 {
        self.b.counters().tx_frames
    }

    fn reason(&mut self, on_a: bool, id: SocketId) -> Option<CloseReason> {
        match self.call(on_a, Request::Info(id)) {
            Done::Info(info) => info.reason,
            other => panic!("{other:?}"),
        }
    }
}

/// The accepted connection inherited the listener's keep-alive; a live peer answers every
/// probe, so an idle connection lives on (100 s here, 30 times idle + interval * probes) and b
/// sends one probe per idle time, not one per interval.
#[test]
fn keepalive_answered_probes_keep_an_idle_connection() {
    let mut p = Pair::new();
    let (_, c) = p.connect();
    let Done::Info(info) = p.call(false, Request::Info(c)) else {
        panic!()
    };
    assert_eq!(info.options.keep_alive, Some(KEEP_ALIVE), "inherited");
    let before = p.b_tx_frames();
    for _ in 0..1000 {
        p.advance(Duration::from_millis(100));
    }
    let sent = p.b_tx_frames() - before;
    assert!(
        (8..=11).contains(&sent),
        "b sent {sent} frames in 100 s of silence: want about one probe per 10 s"
    );
    assert_eq!(p.reason(false, c), None, "the connection is still up");
    let tag = p.submit(false, Request::Send(c, b"still here".to_vec(), Wait::No));
    p.advance(Duration::ZERO);
    assert_eq!(p.answer(tag), Some(Ok(Done::Sent(10))));
}

/// b stops hearing a (every inbound frame dropped): three probes one second apart after 10 s,
/// then a RST. The recv in progress fails with NetReset exactly at idle + interval * probes
/// (13 s, to the 10 ms step); later calls fail with TimedOut, the reason is KeepAlive, and a
/// reads the RST.
#[test]
fn keepalive_silent_peer_is_reset_after_idle_plus_probes() {
    let mut p = Pair::new();
    let (s, c) = p.connect();
    let recv = p.submit(false, Request::Recv(c, 100, Wait::Block(None)));
    p.advance(Duration::from_millis(10));
    p.b_faults.blackhole_in.store(true, Ordering::SeqCst);
    let silent_from = p.now;
    let before = p.b_tx_frames();
    let outcome = loop {
        p.advance(Duration::from_millis(10));
        if let Some(outcome) = p.answer(recv) {
            break outcome;
        }
        assert!(p.now < silent_from + smoltcp::time::Duration::from_secs(60));
    };
    let took = (p.now - silent_from).total_millis();
    assert_eq!(outcome.unwrap_err().error, StackError::NetReset);
    assert!(
        (12_990..=13_020).contains(&took),
        "gave up after {took} ms, want 13000"
    );
    // Three probes and the RST.
    assert_eq!(p.b_tx_frames() - before, 4);
    let tag = p.submit(false, Request::Recv(c, 100, Wait::No));
    p.advance(Duration::ZERO);
    assert_eq!(
        p.answer(tag).unwrap().unwrap_err().error,
        StackError::TimedOut
    );
    assert_eq!(p.reason(false, c), Some(CloseReason::KeepAlive));
    assert_eq!(p.reason(true, s), Some(CloseReason::PeerReset));
}

/// Times of zero or beyond what Windows can say, and probe counts of 0, are refused.
#[test]
fn keepalive_bad_values_are_invalid_input() {
    let mut p = Pair::new();
    let s = p.open(true);
    let bad = [
        KeepAlive {
            interval: Duration::ZERO,
            ..KEEP_ALIVE
        },
        KeepAlive {
            idle: Duration::ZERO,
            ..KEEP_ALIVE
        },
        KeepAlive {
            idle: KeepAlive::MAX_TIME + Duration::from_millis(1),
            ..KEEP_ALIVE
        },
        KeepAlive {
            probes: 0,
            ..KEEP_ALIVE
        },
    ];
    for k in bad {
        let tag = p.submit(true, Request::SetKeepAlive(s, Some(k)));
        p.advance(Duration::ZERO);
        let got = p.answer(tag).expect("answered at once");
        assert_eq!(got.unwrap_err().error, StackError::InvalidInput, "{k:?}");
    }
    assert_eq!(
        KeepAlive::WINDOWS.give_up_after(),
        Duration::from_secs(7210)
    );
}
