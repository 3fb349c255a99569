//! Hostile and bursty peers on a real TAP, with the Linux kernel of a private namespace as the
//! honest peer and crafted frames (an AF_PACKET socket on the kernel side) as the attacker.
//!
//! Each test checks three views: what the stack's API says, what the kernel's own socket says
//! (alive, ECONNRESET, EOF), and the kernel-side capture as the evidence of what crossed the
//! wire. The unit rules of the segment guard are in `crates/core/src/link/guard/tests.rs`.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use lingerstack::stack::DeviceOptions;
use lingerstack::stack::{CloseMode, SocketId, Stack, StackConfig, StackError, Wait};
use lingerstack_testkit::inject::tcp_frame;
use lingerstack_testkit::{
    Capture, Flags, Injector, Segment, TapNet, Trace, peer, require_tap, stack_config, start_stack,
};

const BLOCK: Wait = Wait::Block(Some(Duration::from_secs(20)));
const KERNEL_IO: Duration = Duration::from_secs(10);
const CONNECT: Duration = Duration::from_secs(10);
/// How long to watch for an answer that must (or must not) come.
const ANSWER: Duration = Duration::from_millis(500);

const RST: Flags = Flags {
    syn: false,
    ack: false,
    fin: false,
    rst: true,
    psh: false,
};
const SYN: Flags = Flags {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
    psh: false,
};
const DATA: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
    psh: true,
};

/// A namespace with a TAP, a capture and an injector opened before the stack, and the stack.
struct Rig {
    stack: Stack,
    inject: Injector,
    capture: Capture,
    net: TapNet,
}

impl Rig {
    fn new(name: &str, config: impl FnOnce(&mut StackConfig)) -> Rig {
        let net = TapNet::new().expect("namespace and TAP");
        let capture = Capture::start(net.ns(), net.tap_name(), name).expect("capture");
        let inject = Injector::open(&net).expect("injector");
        let mut cfg = stack_config(&net);
        config(&mut cfg);
        let stack = start_stack(&net, cfg, DeviceOptions::default(), None).expect("stack");
        Rig {
            stack,
            inject,
            capture,
            net,
        }
    }

    fn stack_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.net.stack_ip(false), port)
    }

    fn listen(&self, port: u16, backlog: usize) -> SocketId {
        let l = self.stack.open().unwrap();
        self.stack.bind(l, self.stack_addr(port)).unwrap();
        self.stack.listen(l, backlog).unwrap();
        l
    }

    /// A kernel connection to a stack listener, accepted, with one exchange done so the
    /// connection is quiet: (kernel stream, stack id, kernel port).
    fn connection(&self, listener: SocketId, port: u16) -> (TcpStream, SocketId, u16) {
        let mut k = peer::tcp_connect(self.net.ns(), self.stack_addr(port), None, CONNECT)
            .expect("kernel connects");
        k.set_read_timeout(Some(KERNEL_IO)).unwrap();
        k.set_write_timeout(Some(KERNEL_IO)).unwrap();
        let (id, from) = self.stack.accept(listener, BLOCK).expect("accept");
        k.write_all(b"ping").unwrap();
        assert_eq!(self.stack.recv(id, 64, BLOCK).unwrap(), b"ping");
        self.stack.send(id, b"pong", BLOCK).unwrap();
        let mut pong = [0; 4];
        k.read_exact(&mut pong).unwrap();
        // Past the kernel's delayed ACK: the last stack segment carries the current numbers.
        thread::sleep(Duration::from_millis(250));
        (k, id, from.port())
    }

    /// The stack's SND.NXT and RCV.NXT on the connection to `kernel_port`, from its newest
    /// segment on the wire.
    fn numbers(&mut self, kernel_port: u16) -> (u32, u32) {
        let s = self
            .inject
            .latest_from_stack(kernel_port)
            .unwrap()
            .expect("a segment from the stack");
        (s.seq.wrapping_add(s.seq_len()), s.ack)
    }

    fn kernel_end(&self, kernel_port: u16) -> SocketAddr {
        SocketAddr::new(self.net.kernel_ip(false), kernel_port)
    }

    fn finish(self) -> (Trace, Stack, TapNet) {
        let trace = self.capture.stop();
        (trace, self.stack, self.net)
    }
}

/// Both ends still carry data both ways.
fn assert_alive(stack: &Stack, id: SocketId, k: &mut TcpStream) {
    k.write_all(b"still here").expect("kernel writes");
    assert_eq!(
        stack.recv(id, 64, BLOCK).expect("stack reads"),
        b"still here"
    );
    stack.send(id, b"and here", BLOCK).expect("stack writes");
    let mut buf = [0; 8];
    k.read_exact(&mut buf).expect("kernel reads");
    assert_eq!(&buf, b"and here");
}

/// Segments the stack sent to `kernel_port` after `since`.
fn stack_segments_after(t: &Trace, kernel_port: u16, since: SystemTime) -> Vec<&Segment> {
    t.from_stack()
        .into_iter()
        .filter(|s| s.dst.port() == kernel_port && s.time >= since)
        .collect()
}

/// A pure ACK (no payload, no SYN/FIN/RST) acknowledging exactly `ack`: a challenge ACK.
fn is_challenge(s: &Segment, ack: u32) -> bool {
    s.flags.ack
        && !s.flags.syn
        && !s.flags.rst
        && !s.flags.fin
        && s.payload.is_empty()
        && s.ack == ack
}

#[test]
fn rfc5961_rst_only_at_rcv_nxt_resets() {
    if !require_tap("rfc5961_rst_only_at_rcv_nxt_resets") {
        return;
    }
    let mut rig = Rig::new("rfc5961_rst", |_| {});
    let l = rig.listen(7100, 4);
    let (mut k, id, kport) = rig.connection(l, 7100);
    let (from, to) = (rig.kernel_end(kport), rig.stack_addr(7100));

    // In the window, not at RCV.NXT: a challenge ACK, and the connection lives.
    let (_, rcv_near) = rig.numbers(kport);
    let rcv_nxt = rcv_near;
    let t_near = SystemTime::now();
    rig.inject
        .send_tcp(from, to, rcv_nxt.wrapping_add(1000), None, RST, &[])
        .unwrap();
    let challenge = rig
        .inject
        .wait_from_stack(kport, t_near, ANSWER, |s| is_challenge(s, rcv_nxt))
        .unwrap();
    assert!(challenge.is_some(), "no challenge ACK for an in-window RST");
    assert_alive(&rig.stack, id, &mut k);

    // Outside the window: dropped without a word.
    let (_, rcv_nxt) = rig.numbers(kport);
    thread::sleep(Duration::from_millis(1100)); // past the one-a-second challenge limit
    let t_far = SystemTime::now();
    rig.inject
        .send_tcp(from, to, rcv_nxt.wrapping_add(1 << 31), None, RST, &[])
        .unwrap();
    let answer = rig
        .inject
        .wait_from_stack(kport, t_far, ANSWER, |_| true)
        .unwrap();
    assert!(
        answer.is_none(),
        "answered an out-of-window RST: {answer:?}"
    );
    assert_alive(&rig.stack, id, &mut k);

    // Exactly at RCV.NXT: the connection is reset.
    let (_, rcv_nxt) = rig.numbers(kport);
    let t_exact = SystemTime::now();
    rig.inject
        .send_tcp(from, to, rcv_nxt, None, RST, &[])
        .unwrap();
    assert_eq!(
        rig.stack.recv(id, 64, BLOCK).unwrap_err(),
        StackError::ConnReset
    );
    // The kernel learns of it from the RST answering its next segment.
    k.write_all(b"anyone?").unwrap();
    let err = k
        .read(&mut [0; 16])
        .expect_err("kernel read after the reset");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    let counters = rig.stack.counters().unwrap();
    rig.stack.close(id, CloseMode::Abort).unwrap();
    let (trace, stack, _net) = rig.finish();
    trace.assert_no_drops();
    let near = stack_segments_after(&trace, kport, t_near);
    trace.assert(
        near.iter().any(|s| is_challenge(s, rcv_near)),
        "the capture shows no challenge ACK after the in-window RST",
    );
    trace.assert(
        !stack_segments_after(&trace, kport, t_near)
            .iter()
            .any(|s| s.flags.rst && s.time < t_exact),
        "the stack sent a RST before the exact one arrived",
    );
    trace.assert(
        stack_segments_after(&trace, kport, t_exact)
            .iter()
            .any(|s| s.flags.rst),
        "no RST answered the kernel's data after the reset",
    );
    assert!(counters.guard.rst_challenged >= 1 && counters.guard.rst_dropped >= 1);
    stack.stop(Duration::from_secs(1));
}

#[test]
fn rfc5961_syn_on_an_established_connection_draws_only_a_challenge_ack() {
    if !require_tap("rfc5961_syn_on_an_established_connection_draws_only_a_challenge_ack") {
        return;
    }
    let mut rig = Rig::new("rfc5961_syn", |_| {});
    let l = rig.listen(7101, 4);
    let (mut k, id, kport) = rig.connection(l, 7101);
    let (_, rcv_nxt) = rig.numbers(kport);
    let t_syn = SystemTime::now();
    let (from, to) = (rig.kernel_end(kport), rig.stack_addr(7101));
    rig.inject
        .send_tcp(from, to, 0x1234_5678, None, SYN, &[])
        .unwrap();
    let challenge = rig
        .inject
        .wait_from_stack(kport, t_syn, ANSWER, |s| is_challenge(s, rcv_nxt))
        .unwrap();
    assert!(challenge.is_some(), "no challenge ACK for the SYN");
    // The kernel, which holds the real connection, is not disturbed.
    assert_alive(&rig.stack, id, &mut k);
    let listed = rig.stack.sockets().unwrap();
    let on_tuple = listed
        .iter()
        .filter(|s| s.remote.is_some_and(|r| r.port() == kport))
        .count();
    assert_eq!(
        on_tuple, 1,
        "a second socket for the same tuple: {listed:?}"
    );
    drop(k);
    let (trace, stack, _net) = rig.finish();
    trace.assert_no_drops();
    let after = stack_segments_after(&trace, kport, t_syn);
    trace.assert(
        !after.iter().any(|s| s.flags.syn || s.flags.rst),
        "the stack answered the SYN with a SYN-ACK or a RST",
    );
    trace.assert(
        after.iter().any(|s| is_challenge(s, rcv_nxt)),
        "no challenge ACK in the capture",
    );
    stack.stop(Duration::from_secs(1));
}

#[test]
fn rfc5961_unacceptable_ack_is_challenged_and_its_data_not_taken() {
    if !require_tap("rfc5961_unacceptable_ack_is_challenged_and_its_data_not_taken") {
        return;
    }
    let mut rig = Rig::new("rfc5961_ack", |_| {});
    let l = rig.listen(7102, 4);
    let (mut k, id, kport) = rig.connection(l, 7102);
    let (snd_nxt, rcv_nxt) = rig.numbers(kport);
    let (from, to) = (rig.kernel_end(kport), rig.stack_addr(7102));
    let t_evil = SystemTime::now();
    // In-window data whose ACK acknowledges bytes the stack never sent.
    rig.inject
        .send_tcp(
            from,
            to,
            rcv_nxt,
            Some(snd_nxt.wrapping_add(100_000)),
            DATA,
            b"EVIL",
        )
        .unwrap();
    let challenge = rig
        .inject
        .wait_from_stack(kport, t_evil, ANSWER, |s| is_challenge(s, rcv_nxt))
        .unwrap();
    assert!(challenge.is_some(), "no challenge ACK");
    // The kernel's own bytes at the same sequence numbers are what the stack reads.
    k.write_all(b"good").unwrap();
    assert_eq!(rig.stack.recv(id, 64, BLOCK).unwrap(), b"good");
    assert_alive(&rig.stack, id, &mut k);
    let counters = rig.stack.counters().unwrap();
    assert!(counters.guard.ack_challenged >= 1);
    drop(k);
    let (trace, stack, _net) = rig.finish();
    trace.assert_no_drops();
    stack.stop(Duration::from_secs(1));
}

#[test]
fn challenge_acks_are_rate_limited_per_connection_not_globally() {
    if !require_tap("challenge_acks_are_rate_limited_per_connection_not_globally") {
        return;
    }
    let mut rig = Rig::new("rfc5961_rate", |_| {});
    let l = rig.listen(7103, 4);
    let (mut ka, a, port_a) = rig.connection(l, 7103);
    let (mut kb, b, port_b) = rig.connection(l, 7103);
    let (_, rcv_a) = rig.numbers(port_a);
    let (_, rcv_b) = rig.numbers(port_b);
    let to = rig.stack_addr(7103);
    let t0 = SystemTime::now();
    for i in 0..50u32 {
        let seq = rcv_a.wrapping_add(100 + i);
        rig.inject
            .send_tcp(rig.kernel_end(port_a), to, seq, None, RST, &[])
            .unwrap();
    }
    // A flood on one connection must not use up another's challenge.
    rig.inject
        .send_tcp(
            rig.kernel_end(port_b),
            to,
            rcv_b.wrapping_add(100),
            None,
            RST,
            &[],
        )
        .unwrap();
    let on_b = rig
        .inject
        .wait_from_stack(port_b, t0, ANSWER, |s| is_challenge(s, rcv_b))
        .unwrap();
    assert!(on_b.is_some(), "connection B got no challenge ACK");
    thread::sleep(Duration::from_millis(200));
    assert_alive(&rig.stack, a, &mut ka);
    assert_alive(&rig.stack, b, &mut kb);
    let (trace, stack, _net) = rig.finish();
    trace.assert_no_drops();
    let window_end = t0 + Duration::from_millis(900);
    let challenges_a = stack_segments_after(&trace, port_a, t0)
        .into_iter()
        .filter(|s| s.time < window_end && is_challenge(s, rcv_a))
        .count();
    trace.assert(
        (1..=2).contains(&challenges_a),
        &format!("{challenges_a} challenge ACKs for 50 RSTs within a second on one connection"),
    );
    stack.stop(Duration::from_secs(1));
}

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A SYN from a spoofed address of the namespace's subnet that nobody owns, so the SYN-ACK
/// is never answered.
fn spoofed_syn(net: &TapNet, to: SocketAddr, i: u32) -> Vec<u8> {
    let host = 10 + (i % 240) as u8;
    let from = SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 200, 0, host)),
        1024 + (i % 60_000) as u16,
    );
    tcp_frame(
        net.kernel_mac(),
        net.stack_mac(),
        from,
        to,
        i.wrapping_mul(2_654_435_761),
        None,
        SYN,
        &[],
    )
    .unwrap()
}

#[test]
fn syn_flood_does_not_lock_out_a_real_client() {
    if !require_tap("syn_flood_does_not_lock_out_a_real_client") {
        return;
    }
    const FLOOD: u32 = 20_000;
    let rig = Rig::new("syn_flood", |_| {});
    let port = 7104;
    let l = rig.listen(port, 128);
    let to = rig.stack_addr(port);
    // Frames built up front so the flood itself is fast: 20,000 in well under a second.
    let frames: Vec<Vec<u8>> = (0..FLOOD).map(|i| spoofed_syn(&rig.net, to, i)).collect();
    let rss_before = rss_kib();

    // The application accepts and closes whatever completes the handshake, while a real
    // client connects every 50 ms during and after the flood.
    let stop = AtomicBool::new(false);
    let (times, accepted, flood_time) = thread::scope(|scope| {
        let acceptor = scope.spawn(|| {
            let mut accepted = 0;
            while !stop.load(Ordering::Relaxed) {
                let wait = Wait::Block(Some(Duration::from_millis(100)));
                if let Ok((c, _)) = rig.stack.accept(l, wait) {
                    accepted += 1;
                    let _ = rig.stack.close(c, CloseMode::Graceful { deadline: None });
                }
            }
            accepted
        });
        let client = scope.spawn(|| {
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let ok = peer::tcp_connect(rig.net.ns(), to, None, Duration::from_secs(3)).is_ok();
                times.push((ok, start.elapsed()));
                thread::sleep(Duration::from_millis(50));
            }
            times
        });
        thread::sleep(Duration::from_millis(200));
        // 20,000 in 0.8 s: batches of 250 every 10 ms.
        let flood_start = Instant::now();
        for (i, batch) in frames.chunks(250).enumerate() {
            for f in batch {
                rig.inject.send_frame(f).unwrap();
            }
            let due = flood_start + Duration::from_millis(10 * (i as u64 + 1));
            thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let flood_time = flood_start.elapsed();
        thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        (client.join().unwrap(), acceptor.join().unwrap(), flood_time)
    });
    let counters = rig.stack.counters().unwrap();
    let rss_after = rss_kib();
    let half_open = counters
        .sockets_by_state
        .get("SYN-RECEIVED")
        .copied()
        .unwrap_or(0);
    let (trace, stack, _net) = rig.finish();
    eprintln!(
        "flood of {FLOOD} SYNs in {flood_time:?}; {} client connects, slowest {:?}; accepted \
         {accepted}; guard {:?}; RSS {} -> {} KiB",
        times.len(),
        times.iter().map(|t| t.1).max(),
        counters.guard,
        rss_before,
        rss_after
    );
    assert!(
        flood_time < Duration::from_secs(1),
        "the flood took {flood_time:?}"
    );
    assert!(times.len() >= 10, "only {} client attempts", times.len());
    for (i, (ok, took)) in times.iter().enumerate() {
        assert!(ok, "client connect {i} failed during or after the flood");
        assert!(
            *took < Duration::from_secs(1),
            "client connect {i} took {took:?}"
        );
    }
    assert!(half_open <= StackConfig::default().max_half_open);
    assert!(
        counters.guard.half_open_evicted > 0,
        "the flood never filled the half-open slots"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} to {rss_after} KiB"
    );
    // Not one SYN of the flood was answered with a RST.
    let rsts = trace
        .from_stack()
        .into_iter()
        .filter(|s| s.flags.rst && s.dst.ip() != IpAddr::V4(Ipv4Addr::new(10, 200, 0, 1)))
        .count();
    trace.assert(rsts == 0, &format!("{rsts} RSTs to the flood's SYNs"));
    stack.stop(Duration::from_secs(1));
}

#[test]
fn burst_larger_than_the_backlog_connects_without_refusal() {
    if !require_tap("burst_larger_than_the_backlog_connects_without_refusal") {
        return;
    }
    const BURST: usize = 1000;
    lingerstack_testkit::raise_nofile_limit(4 * BURST as u64).unwrap();
    let rig = Rig::new("syn_burst", |_| {});
    let port = 7105;
    let l = rig.listen(port, 16);
    let to = rig.stack_addr(port);
    let acceptor = {
        let stack = rig.stack.clone();
        thread::spawn(move || {
            let mut accepted = 0;
            while accepted < BURST {
                match stack.accept(l, BLOCK) {
                    Ok((c, _)) => {
                        accepted += 1;
                        let _ = stack.close(c, CloseMode::Graceful { deadline: None });
                    }
                    Err(e) => panic!("accept {accepted}: {e:?}"),
                }
            }
            accepted
        })
    };
    // Non-blocking connects all at once, then wait for each.
    let streams = rig.net.ns().run(|| -> io::Result<Vec<socket2::Socket>> {
        (0..BURST)
            .map(|_| {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
                s.set_nonblocking(true)?;
                match s.connect(&to.into()) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                    Err(e) => return Err(e),
                }
                Ok(s)
            })
            .collect()
    });
    let streams = streams.expect("start the connects");
    let deadline = Instant::now() + Duration::from_secs(30);
    for (i, s) in streams.iter().enumerate() {
        loop {
            match s.peer_addr() {
                Ok(_) => break,
                Err(_) if Instant::now() < deadline => {
                    if let Ok(Some(e)) = s.take_error() {
                        panic!("connect {i} failed: {e}");
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("connect {i} not done in 30 s: {e}"),
            }
        }
    }
    assert_eq!(acceptor.join().unwrap(), BURST);
    drop(streams);
    let (trace, stack, _net) = rig.finish();
    trace.assert_no_drops();
    let refused = trace
        .from_stack()
        .into_iter()
        .filter(|s| s.flags.rst && s.src.port() == port)
        .count();
    trace.assert(
        refused == 0,
        &format!("{refused} RSTs from the listening port"),
    );
    stack.stop(Duration::from_secs(1));
}

#[test]
fn time_wait_tuple_is_reused_by_a_newer_syn() {
    if !require_tap("time_wait_tuple_is_reused_by_a_newer_syn") {
        return;
    }
    const ROUNDS: usize = 20;
    let mut rig = Rig::new("time_wait_reuse", |_| {});
    let port = 7106;
    let client_port = 40_123;
    let l = rig.listen(port, 4);
    let to = rig.stack_addr(port);
    let local = SocketAddr::new(rig.net.kernel_ip(false), client_port);
    let mut slowest = Duration::ZERO;
    for round in 0..ROUNDS {
        let start = Instant::now();
        let mut k = rig
            .net
            .ns()
            .run(|| -> io::Result<TcpStream> {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
                s.set_reuse_address(true)?;
                s.bind(&local.into())?;
                s.connect_timeout(&to.into(), CONNECT)?;
                Ok(s.into())
            })
            .unwrap_or_else(|e| panic!("round {round}: connect: {e}"));
        slowest = slowest.max(start.elapsed());
        k.set_read_timeout(Some(KERNEL_IO)).unwrap();
        let (c, _) = rig.stack.accept(l, BLOCK).unwrap();
        // The stack closes first, so its side of the tuple ends in TIME-WAIT.
        rig.stack.send(c, b"bye", BLOCK).unwrap();
        rig.stack
            .close(c, CloseMode::Graceful { deadline: None })
            .unwrap();
        let mut got = Vec::new();
        k.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"bye");
        drop(k);
        let in_tw = || {
            rig.stack.sockets().unwrap().iter().any(|s| {
                s.state == "TIME-WAIT" && s.remote.is_some_and(|r| r.port() == client_port)
            })
        };
        let end = Instant::now() + Duration::from_secs(5);
        while !in_tw() {
            assert!(Instant::now() < end, "round {round}: no TIME-WAIT");
            thread::sleep(Duration::from_millis(5));
        }
    }
    // An old SYN (below the last connection's numbers) for the tuple in TIME-WAIT: a
    // challenge ACK, not a new connection.
    let (_, rcv_nxt) = rig.numbers(client_port);
    let t_old = SystemTime::now();
    rig.inject
        .send_tcp(local, to, rcv_nxt.wrapping_sub(1000), None, SYN, &[])
        .unwrap();
    let answer = rig
        .inject
        .wait_from_stack(client_port, t_old, ANSWER, |_| true)
        .unwrap()
        .expect("an answer to the old SYN");
    assert!(
        is_challenge(&answer, rcv_nxt),
        "not a challenge ACK: {answer}"
    );
    let counters = rig.stack.counters().unwrap();
    let (trace, stack, _net) = rig.finish();
    trace.assert_no_drops();
    eprintln!("{ROUNDS} rounds on one tuple, slowest connect {slowest:?}");
    trace.assert(
        slowest < Duration::from_secs(1),
        &format!("a connect on the reused tuple took {slowest:?} (a SYN was ignored)"),
    );
    let syns = trace
        .to_stack()
        .into_iter()
        .filter(|s| s.flags.syn && !s.flags.ack && s.src.port() == client_port)
        .count();
    trace.assert(
        syns == ROUNDS + 1,
        &format!("{syns} SYNs for {ROUNDS} connects and one injected: some were retransmitted"),
    );
    assert!(counters.guard.time_wait_reused as usize >= ROUNDS - 1);
    stack.stop(Duration::from_secs(1));
}
