//! The engine on a real TAP device against the Linux kernel of a private network namespace.
//!
//! Each test creates its own namespace and TAP ([`TapNet`]), starts a kernel-side capture
//! ([`Capture`]) before the stack opens the TAP, starts the engine ([`start_stack`], which
//! waits for the link to come up), and asserts both on what the API returned and on what the
//! capture shows the kernel saw. The same behaviours over the in-memory link are in
//! `crates/stack/tests/memory_link.rs`.
//!
//! Without root the tests print a SKIP line and pass; `LINGERSTACK_REQUIRE_TAP=1` makes that a
//! failure. Every wait is bounded generously; nothing asserts on speed.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown as NetShutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use lingerstack::stack::DeviceOptions;
use lingerstack::stack::{
    CloseMode, CloseOutcome, CloseReason, Shutdown, SocketId, Stack, StackError, Wait,
};
use lingerstack_testkit::{
    Capture, Dir, FrameKind, Segment, TapNet, Trace, peer, require_tap, stack_config, start_stack,
};

/// Blocking calls on the stack wait at most this long.
const BLOCK: Wait = Wait::Block(Some(Duration::from_secs(20)));
/// Kernel socket reads and writes give up after this long.
const KERNEL_IO: Duration = Duration::from_secs(30);
/// Kernel connects give up after this long.
const CONNECT: Duration = Duration::from_secs(10);
/// Generous bound for anything we poll for.
const SETTLE: Duration = Duration::from_secs(20);

const MIB: usize = 1 << 20;

/// A namespace with a TAP, a capture on it started before the stack opened it, and the stack.
struct Rig {
    stack: Stack,
    capture: Capture,
    // Last: the namespace goes after the stack's link and the capture socket.
    net: TapNet,
}

impl Rig {
    fn new(capture_name: &str) -> Rig {
        let net = TapNet::new().expect("create namespace and TAP");
        // Before the stack opens the TAP: nothing it says can be missed.
        let capture = Capture::start(net.ns(), net.tap_name(), capture_name).expect("capture");
        let stack = start_stack(&net, stack_config(&net), DeviceOptions::default(), None)
            .expect("start the stack on the TAP");
        Rig {
            stack,
            capture,
            net,
        }
    }

    fn stack_addr(&self, v6: bool, port: u16) -> SocketAddr {
        SocketAddr::new(self.net.stack_ip(v6), port)
    }

    fn kernel_addr(&self, v6: bool, port: u16) -> SocketAddr {
        SocketAddr::new(self.net.kernel_ip(v6), port)
    }

    /// A stack listener on our address at `port`.
    fn listen(&self, v6: bool, port: u16, backlog: usize) -> SocketId {
        let l = self.stack.open().unwrap();
        self.stack.bind(l, self.stack_addr(v6, port)).unwrap();
        self.stack.listen(l, backlog).unwrap();
        l
    }

    /// A kernel connection to the stack at `port`, with bounded reads and writes.
    fn kernel_connect(&self, v6: bool, port: u16) -> TcpStream {
        let stream = peer::tcp_connect(self.net.ns(), self.stack_addr(v6, port), None, CONNECT)
            .expect("kernel connects to the stack");
        bound_io(&stream);
        stream
    }

    /// Stops the capture, then the stack, and returns the trace.
    ///
    /// The capture ends first: it holds what the test caused. (Stopping the engine resets
    /// what is left, TIME-WAIT sockets included; see `stop_sends_nothing_for_time_wait`.)
    fn finish(self) -> (Trace, TapNet) {
        let Rig {
            stack,
            capture,
            net,
        } = self;
        let trace = capture.stop();
        stack.stop(Duration::from_secs(1));
        trace.assert_no_drops();
        (trace, net)
    }
}

fn bound_io(stream: &TcpStream) {
    stream.set_read_timeout(Some(KERNEL_IO)).unwrap();
    stream.set_write_timeout(Some(KERNEL_IO)).unwrap();
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

/// Reads from the stack until end of stream.
fn stack_read_all(stack: &Stack, id: SocketId) -> Result<Vec<u8>, StackError> {
    let mut out = Vec::new();
    loop {
        let chunk = stack.recv(id, 65536, BLOCK)?;
        if chunk.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&chunk);
    }
}

/// Polls `cond` until it holds or `SETTLE` passes; false on timeout.
fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + SETTLE;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Describes two byte strings that should be equal without dumping a megabyte.
fn same_bytes(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
    Err(format!(
        "{what}: {} bytes, expected {}; first difference at {:?}",
        got.len(),
        want.len(),
        first_diff
    ))
}

#[track_caller]
fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if let Err(e) = same_bytes(what, got, want) {
        panic!("{e}");
    }
}

#[track_caller]
fn trace_same(trace: &Trace, what: &str, got: &[u8], want: &[u8]) {
    if let Err(e) = same_bytes(what, got, want) {
        trace.fail(&e);
    }
}

/// The single SYN (without ACK) and the SYN-ACK of the connection in `t`.
fn handshake(t: &Trace) -> (&Segment, &Segment) {
    let syns: Vec<&Segment> = t
        .segments
        .iter()
        .filter(|s| s.flags.syn && !s.flags.ack)
        .collect();
    let synacks: Vec<&Segment> = t
        .segments
        .iter()
        .filter(|s| s.flags.syn && s.flags.ack)
        .collect();
    t.assert(
        !syns.is_empty() && !synacks.is_empty(),
        "no SYN / SYN-ACK handshake captured",
    );
    (syns[0], synacks[0])
}

/// The FIN sent in `dir`, checked to sit right after the last payload byte sent in `dir`:
/// its sequence number is the stream's end and no data segment reaches beyond it.
fn fin_after_data(t: &Trace, dir: Dir, data_len: usize) -> &Segment {
    let syn = t
        .dir(dir)
        .into_iter()
        .find(|s| s.flags.syn)
        .unwrap_or_else(|| t.fail(&format!("no SYN in direction {dir:?}")));
    let end = syn.seq.wrapping_add(1).wrapping_add(data_len as u32);
    let fins: Vec<&Segment> = t.dir(dir).into_iter().filter(|s| s.flags.fin).collect();
    t.assert(!fins.is_empty(), &format!("no FIN in direction {dir:?}"));
    t.assert(
        fins.iter()
            .all(|f| f.seq.wrapping_add(f.payload.len() as u32) == end),
        &format!("FIN in direction {dir:?} not at the end of the {data_len}-byte stream"),
    );
    let beyond = t.dir(dir).into_iter().any(|s| {
        !s.payload.is_empty()
            && (s.seq.wrapping_add(s.payload.len() as u32).wrapping_sub(end) as i32) > 0
    });
    t.assert(
        !beyond,
        &format!("data beyond the FIN in direction {dir:?}"),
    );
    fins[0]
}

/// True if the peer acknowledged the FIN `fin` (an ACK of its sequence number + 1).
fn fin_acked(t: &Trace, fin: &Segment) -> bool {
    let other = match fin.dir {
        Dir::ToStack => Dir::FromStack,
        Dir::FromStack => Dir::ToStack,
    };
    let want = fin.seq.wrapping_add(fin.seq_len());
    t.dir(other)
        .into_iter()
        .any(|s| s.flags.ack && s.ack == want)
}

// ---------------------------------------------------------------------------------------------

/// The kernel connects to a lingerstack listener over IPv4 and 1 MiB goes each way.
#[test]
fn kernel_to_stack_one_mib_each_way() {
    if !require_tap("kernel_to_stack_one_mib_each_way") {
        return;
    }
    const PORT: u16 = 7001;
    let rig = Rig::new("tap_engine-one-mib");
    let l = rig.listen(false, PORT, 4);
    let kernel = rig.kernel_connect(false, PORT);
    let kernel_local = kernel.local_addr().unwrap();
    let (s, peer_addr) = rig.stack.accept(l, BLOCK).expect("accept");
    assert_eq!(
        peer_addr, kernel_local,
        "accepted peer is the kernel socket"
    );

    let up = pattern(MIB, 1); // kernel -> stack
    let down = pattern(MIB, 2); // stack -> kernel

    // Kernel: one thread writes its MiB and shuts down writing, the other reads to EOF.
    let kernel_writer = {
        let mut w = kernel.try_clone().unwrap();
        let data = up.clone();
        thread::spawn(move || -> io::Result<()> {
            w.write_all(&data)?;
            w.shutdown(NetShutdown::Write)
        })
    };
    let kernel_reader = {
        let mut r = kernel.try_clone().unwrap();
        thread::spawn(move || peer::read_to_end_or_error(&mut r))
    };
    // Stack: the same.
    let stack_writer = {
        let stack = rig.stack.clone();
        let data = down.clone();
        thread::spawn(move || -> Result<usize, StackError> {
            let n = stack.send(s, &data, BLOCK).map_err(|f| f.error)?;
            stack.shutdown(s, Shutdown::Write)?;
            Ok(n)
        })
    };
    let got_up = stack_read_all(&rig.stack, s).expect("stack reads to EOF");
    assert_eq!(stack_writer.join().unwrap(), Ok(MIB), "stack send");
    kernel_writer.join().unwrap().expect("kernel writes 1 MiB");
    let (got_down, err) = kernel_reader.join().unwrap();
    assert!(err.is_none(), "kernel read ended with {err:?}");
    assert_same("stack received", &got_up, &up);
    assert_same("kernel received", &got_down, &down);

    // Both FINs may have crossed already (then there is nothing left to send).
    let outcome = rig
        .stack
        .close(s, CloseMode::Graceful { deadline: None })
        .unwrap();
    assert!(
        matches!(outcome, CloseOutcome::Background | CloseOutcome::Nothing),
        "{outcome:?}"
    );
    drop(kernel);
    // Whichever FIN went first, the stack ends in TIME-WAIT (10 s) or closed.
    let stack = rig.stack.clone();
    assert!(
        wait_until(|| {
            let c = stack.counters().unwrap();
            c.graceful_closes >= 1 || c.sockets_by_state.contains_key("TIME-WAIT")
        }),
        "graceful close did not finish: {:?}",
        rig.stack.counters()
    );
    // smoltcp may hold the ACK of the kernel's FIN for its ACK delay (10 ms) after the socket
    // reached TIME-WAIT; with super-segments the FIN often comes alone, so wait that out before
    // the capture ends.
    thread::sleep(Duration::from_millis(200));
    assert_eq!(rig.stack.counters().unwrap().resets_sent, 0);

    let (trace, net) = rig.finish();
    let t = trace.conn(PORT);
    t.assert(!t.has_rst(Dir::FromStack), "RST from the stack");
    t.assert(!t.has_rst(Dir::ToStack), "RST from the kernel");
    // In-order stream lengths on the wire. (Trace::payload_bytes would say MIB + 1 here: it
    // counts the pure ACKs that follow a FIN, whose sequence number is one past the data.)
    for dir in [Dir::ToStack, Dir::FromStack] {
        let n = t.stream(dir).len();
        t.assert(
            n == MIB,
            &format!("{dir:?}: {n} in-order bytes on the wire"),
        );
    }
    trace_same(
        &t,
        "kernel->stack stream on the wire",
        &t.stream(Dir::ToStack),
        &up,
    );
    trace_same(
        &t,
        "stack->kernel stream on the wire",
        &t.stream(Dir::FromStack),
        &down,
    );
    let stack_fin = fin_after_data(&t, Dir::FromStack, MIB);
    let kernel_fin = fin_after_data(&t, Dir::ToStack, MIB);
    t.assert(
        fin_acked(&t, stack_fin),
        "the kernel did not ACK the stack's FIN",
    );
    t.assert(
        fin_acked(&t, kernel_fin),
        "the stack did not ACK the kernel's FIN",
    );
    let mss = net.mtu() as usize - 40;
    let largest = t.from_stack().iter().map(|s| s.payload.len()).max();
    if lingerstack_testkit::offload() {
        // Offloads on: the capture on the TAP sees the super-segments as they were written,
        // up to an IP packet's 64 KiB (the kernel cuts them only for a real wire, which the
        // forwarding test of tests/tap_offload.rs checks).
        t.assert(
            largest.is_some_and(|n| n > mss && n <= 65535 - 40),
            &format!("offloads on: largest segment {largest:?}, not a super-segment"),
        );
    } else {
        // Offloads off: every segment the stack sent fits the TAP's MTU.
        t.assert(
            largest.is_some_and(|n| n <= mss),
            "offloads off: stack sent a segment larger than the MSS",
        );
    }
}

/// lingerstack connects out to a kernel listener and both sides exchange data.
#[test]
fn stack_connects_to_kernel_listener() {
    if !require_tap("stack_connects_to_kernel_listener") {
        return;
    }
    const PORT: u16 = 7002;
    let rig = Rig::new("tap_engine-connect-out");
    let listener = peer::tcp_listener(rig.net.ns(), rig.kernel_addr(false, PORT), None).unwrap();

    let c = rig.stack.open().unwrap();
    rig.stack
        .connect(c, rig.kernel_addr(false, PORT), BLOCK)
        .expect("connect to the kernel");
    let info = rig.stack.info(c).unwrap();
    assert_eq!(info.state, "ESTABLISHED");
    assert_eq!(info.remote, Some(rig.kernel_addr(false, PORT)));
    let local = info.local.expect("local address after connect");
    assert_eq!(local.ip(), IpAddr::from(rig.net.stack_v4()));
    assert!(local.port() >= 49152, "ephemeral port {local}");

    let (mut kernel, from) = listener.accept().unwrap();
    bound_io(&kernel);
    assert_eq!(from, local, "kernel sees the stack's address and port");

    let request = pattern(100_000, 3);
    let reply = pattern(150_000, 4);
    // Stack sends its request and ends it; the kernel reads it and replies.
    let sender = {
        let stack = rig.stack.clone();
        let data = request.clone();
        thread::spawn(move || stack.send(c, &data, BLOCK))
    };
    let (got, err) = {
        let mut buf = vec![0u8; request.len()];
        let r = kernel.read_exact(&mut buf);
        (buf, r.err())
    };
    assert!(err.is_none(), "kernel read: {err:?}");
    assert_eq!(sender.join().unwrap(), Ok(request.len()));
    assert_same("kernel received", &got, &request);
    kernel.write_all(&reply).unwrap();
    kernel.shutdown(NetShutdown::Write).unwrap();
    let got_reply = stack_read_all(&rig.stack, c).unwrap();
    assert_same("stack received", &got_reply, &reply);
    assert_eq!(
        rig.stack
            .close(c, CloseMode::Graceful { deadline: None })
            .unwrap(),
        CloseOutcome::Background
    );
    let (rest, err) = peer::read_to_end_or_error(&mut kernel);
    assert!(
        rest.is_empty() && err.is_none(),
        "kernel: {} more bytes, {err:?}",
        rest.len()
    );

    let listen_addr = rig.kernel_addr(false, PORT);
    let (trace, _net) = rig.finish();
    let t = trace.conn(local.port());
    let (syn, synack) = handshake(&t);
    t.assert(
        syn.dir == Dir::FromStack && syn.src == local && syn.dst == listen_addr,
        "the SYN did not come from the stack to the kernel listener",
    );
    t.assert(
        synack.dir == Dir::ToStack && synack.ack == syn.seq.wrapping_add(1),
        "no SYN-ACK from the kernel for the stack's SYN",
    );
    t.assert(
        !t.has_rst(Dir::FromStack) && !t.has_rst(Dir::ToStack),
        "RST seen",
    );
    trace_same(
        &t,
        "stack->kernel on the wire",
        &t.stream(Dir::FromStack),
        &request,
    );
    trace_same(
        &t,
        "kernel->stack on the wire",
        &t.stream(Dir::ToStack),
        &reply,
    );
}

/// Connect, data both ways, and a graceful close from each side, over IPv4 or IPv6: the
/// kernel sends and ends its half first, the stack reads to EOF, answers and closes.
fn graceful_close(v6: bool, capture: &str, port: u16) {
    let rig = Rig::new(capture);
    let l = rig.listen(v6, port, 4);
    let mut kernel = rig.kernel_connect(v6, port);
    let kernel_local = kernel.local_addr().unwrap();
    assert_eq!(kernel_local.ip(), rig.net.kernel_ip(v6));
    let (s, peer_addr) = rig.stack.accept(l, BLOCK).unwrap();
    assert_eq!(peer_addr, kernel_local);

    let from_kernel = pattern(40_000, 5);
    let from_stack = pattern(70_000, 6);
    kernel.write_all(&from_kernel).unwrap();
    kernel.shutdown(NetShutdown::Write).unwrap();
    let got = stack_read_all(&rig.stack, s).expect("stack reads to EOF");
    assert_same("stack received", &got, &from_kernel);
    let info = rig.stack.info(s).unwrap();
    assert_eq!(info.state, "CLOSE-WAIT", "after the kernel's FIN");
    assert!(info.ready.closed && info.ready.error.is_none(), "{info:?}");

    assert_eq!(rig.stack.send(s, &from_stack, BLOCK), Ok(from_stack.len()));
    assert_eq!(
        rig.stack
            .close(s, CloseMode::Graceful { deadline: None })
            .unwrap(),
        CloseOutcome::Background
    );
    assert_eq!(rig.stack.recv(s, 1, Wait::No), Err(StackError::NotSocket));
    let (got, err) = peer::read_to_end_or_error(&mut kernel);
    assert!(err.is_none(), "kernel read ended with {err:?}");
    assert_same("kernel received", &got, &from_stack);
    let stack = rig.stack.clone();
    assert!(
        wait_until(|| {
            let c = stack.counters().unwrap();
            c.graceful_closes >= 1 && !c.sockets_by_state.contains_key("LAST-ACK")
        }),
        "the stack's close did not finish: {:?}",
        rig.stack.counters()
    );
    let counters = rig.stack.counters().unwrap();
    assert_eq!(counters.resets_sent, 0);
    assert_eq!(counters.resets_received, 0);
    drop(kernel);

    let (trace, _net) = rig.finish();
    let t = trace.conn(port);
    t.assert(
        t.segments
            .iter()
            .all(|s| s.src.is_ipv6() == v6 && s.dst.is_ipv6() == v6),
        "segments of the wrong IP version",
    );
    t.assert(!t.has_rst(Dir::FromStack), "RST from the stack");
    t.assert(!t.has_rst(Dir::ToStack), "RST from the kernel");
    trace_same(
        &t,
        "kernel->stack on the wire",
        &t.stream(Dir::ToStack),
        &from_kernel,
    );
    trace_same(
        &t,
        "stack->kernel on the wire",
        &t.stream(Dir::FromStack),
        &from_stack,
    );
    let kernel_fin = fin_after_data(&t, Dir::ToStack, from_kernel.len());
    let stack_fin = fin_after_data(&t, Dir::FromStack, from_stack.len());
    t.assert(
        kernel_fin.time <= stack_fin.time,
        "the kernel's FIN should come first",
    );
    t.assert(
        fin_acked(&t, kernel_fin),
        "the stack did not ACK the kernel's FIN",
    );
    t.assert(
        fin_acked(&t, stack_fin),
        "the kernel did not ACK the stack's FIN",
    );
}

/// Graceful close over IPv4: all data, then a FIN from each side, and no RST.
#[test]
fn graceful_close_fin_each_side_ipv4() {
    if !require_tap("graceful_close_fin_each_side_ipv4") {
        return;
    }
    graceful_close(false, "tap_engine-graceful-v4", 7003);
}

/// The same connect, data and graceful close over IPv6 (fd00:200::/64).
#[test]
fn graceful_close_fin_each_side_ipv6() {
    if !require_tap("graceful_close_fin_each_side_ipv6") {
        return;
    }
    graceful_close(true, "tap_engine-graceful-v6", 7004);
}

/// lingerstack also connects out over IPv6 and exchanges data.
#[test]
fn stack_connects_to_kernel_listener_ipv6() {
    if !require_tap("stack_connects_to_kernel_listener_ipv6") {
        return;
    }
    const PORT: u16 = 7005;
    let rig = Rig::new("tap_engine-connect-out-v6");
    let listener = peer::tcp_listener(rig.net.ns(), rig.kernel_addr(true, PORT), None).unwrap();
    let c = rig.stack.open().unwrap();
    rig.stack
        .connect(c, rig.kernel_addr(true, PORT), BLOCK)
        .expect("connect to the kernel over IPv6");
    let local = rig.stack.info(c).unwrap().local.unwrap();
    assert_eq!(local.ip(), IpAddr::from(rig.net.stack_v6()));
    let (mut kernel, from) = listener.accept().unwrap();
    bound_io(&kernel);
    assert_eq!(from, local);
    assert_eq!(rig.stack.send(c, b"ping over six", BLOCK), Ok(13));
    rig.stack.shutdown(c, Shutdown::Write).unwrap();
    let (got, err) = peer::read_to_end_or_error(&mut kernel);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got, b"ping over six");
    kernel.write_all(b"pong").unwrap();
    drop(kernel);
    assert_eq!(stack_read_all(&rig.stack, c).unwrap(), b"pong");
    rig.stack
        .close(c, CloseMode::Graceful { deadline: None })
        .unwrap();

    let listen_addr = rig.kernel_addr(true, PORT);
    let (trace, _net) = rig.finish();
    let t = trace.conn(local.port());
    let (syn, _) = handshake(&t);
    t.assert(
        syn.dir == Dir::FromStack && syn.dst == listen_addr,
        "SYN over IPv6 from the stack",
    );
    t.assert(
        !t.has_rst(Dir::FromStack) && !t.has_rst(Dir::ToStack),
        "RST seen",
    );
    fin_after_data(&t, Dir::FromStack, 13);
    fin_after_data(&t, Dir::ToStack, 4);
    trace_same(
        &t,
        "stack->kernel",
        &t.stream(Dir::FromStack),
        b"ping over six",
    );
    trace_same(&t, "kernel->stack", &t.stream(Dir::ToStack), b"pong");
}

/// `CloseMode::Abort`: a RST from the stack, no FIN, and the kernel's read fails with
/// ECONNRESET.
#[test]
fn abort_sends_rst_and_kernel_sees_econnreset() {
    if !require_tap("abort_sends_rst_and_kernel_sees_econnreset") {
        return;
    }
    const PORT: u16 = 7006;
    let rig = Rig::new("tap_engine-abort");
    let l = rig.listen(false, PORT, 4);
    let kernel = rig.kernel_connect(false, PORT);
    let (s, _) = rig.stack.accept(l, BLOCK).unwrap();

    // Some data first, read by the kernel, so the RST is the only thing left to say.
    let before = pattern(10_000, 7);
    assert_eq!(rig.stack.send(s, &before, BLOCK), Ok(before.len()));
    let reader = {
        let mut r = kernel.try_clone().unwrap();
        thread::spawn(move || peer::read_to_end_or_error(&mut r))
    };
    let stack = rig.stack.clone();
    assert!(
        wait_until(|| stack.info(s).unwrap().send_queue == 0),
        "the kernel did not acknowledge the data"
    );
    assert_eq!(
        rig.stack.close(s, CloseMode::Abort).unwrap(),
        CloseOutcome::Reset(CloseReason::LocalAbort)
    );
    let (got, err) = reader.join().unwrap();
    assert_same("kernel read before the reset", &got, &before);
    let err = err.expect("the kernel's read should fail after the RST, not see EOF");
    assert_eq!(
        err.raw_os_error(),
        Some(ECONNRESET),
        "kernel read error: {err}"
    );
    assert_eq!(rig.stack.recv(s, 1, Wait::No), Err(StackError::NotSocket));
    assert!(rig.stack.counters().unwrap().resets_sent >= 1);
    drop(kernel);

    let (trace, _net) = rig.finish();
    let t = trace.conn(PORT);
    t.assert(t.has_rst(Dir::FromStack), "no RST from the stack");
    t.assert(!t.has_fin(Dir::FromStack), "the stack sent a FIN on abort");
    t.assert(!t.has_fin(Dir::ToStack), "the kernel sent a FIN");
    let rst = t
        .from_stack()
        .into_iter()
        .find(|s| s.flags.rst)
        .expect("checked above");
    t.assert(rst.payload.is_empty(), "RST carries data");
    trace_same(
        &t,
        "stack->kernel before the RST",
        &t.stream(Dir::FromStack),
        &before,
    );
    // The RST sits at the kernel's rcv_nxt (RFC 5961), i.e. right after the data.
    let (_, synack) = handshake(&t);
    t.assert(
        rst.seq == synack.seq.wrapping_add(1).wrapping_add(before.len() as u32),
        "RST not at the end of the stack's stream",
    );
}

/// ECONNRESET on Linux (the same on every architecture).
const ECONNRESET: i32 = 104;

/// 50 concurrent kernel connections to one listening port (backlog 64) are all accepted and
/// each echoes its bytes.
#[test]
fn fifty_concurrent_kernel_connections() {
    if !require_tap("fifty_concurrent_kernel_connections") {
        return;
    }
    const PORT: u16 = 7007;
    const N: usize = 50;
    let rig = Rig::new("tap_engine-fifty");
    let l = rig.listen(false, PORT, 64);

    // The kernel opens all 50 at once; the listener's 64 slots complete every handshake.
    let clients: Vec<_> = (0..N)
        .map(|i| {
            let ns = rig.net.ns();
            let addr = rig.stack_addr(false, PORT);
            let stream = peer::tcp_connect(ns, addr, None, CONNECT)
                .unwrap_or_else(|e| panic!("kernel connection {i}: {e}"));
            bound_io(&stream);
            stream
        })
        .collect();
    let kernel_ports: BTreeSet<u16> = clients
        .iter()
        .map(|c| c.local_addr().unwrap().port())
        .collect();
    assert_eq!(kernel_ports.len(), N);

    let mut accepted = Vec::new();
    for i in 0..N {
        let (s, peer_addr) = rig
            .stack
            .accept(l, BLOCK)
            .unwrap_or_else(|e| panic!("accept {i}: {e}"));
        assert!(kernel_ports.contains(&peer_addr.port()), "{peer_addr}");
        accepted.push((s, peer_addr));
    }
    let peers: BTreeSet<u16> = accepted.iter().map(|(_, p)| p.port()).collect();
    assert_eq!(peers, kernel_ports, "every kernel connection accepted once");
    assert_eq!(rig.stack.accept(l, Wait::No), Err(StackError::WouldBlock));

    // Stack: one echo thread per connection.
    let echoes: Vec<_> = accepted
        .iter()
        .map(|&(s, _)| {
            let stack = rig.stack.clone();
            thread::spawn(move || -> Result<usize, StackError> {
                let data = stack_read_all(&stack, s)?;
                stack.send(s, &data, BLOCK).map_err(|f| f.error)?;
                stack.close(s, CloseMode::Graceful { deadline: None })?;
                Ok(data.len())
            })
        })
        .collect();
    // Kernel: all 50 write, end, and read their echo concurrently.
    let kernels: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            thread::spawn(move || {
                let port = c.local_addr().unwrap().port();
                let msg = format!("hello from kernel port {port}").into_bytes();
                c.write_all(&msg).unwrap();
                c.shutdown(NetShutdown::Write).unwrap();
                let (got, err) = peer::read_to_end_or_error(&mut c);
                (port, msg, got, err)
            })
        })
        .collect();
    let mut sent = Vec::new();
    for k in kernels {
        let (port, msg, got, err) = k.join().unwrap();
        assert!(err.is_none(), "kernel port {port}: {err:?}");
        assert_eq!(got, msg, "echo on kernel port {port}");
        sent.push((port, msg));
    }
    for e in echoes {
        assert!(e.join().unwrap().is_ok());
    }
    let stack = rig.stack.clone();
    assert!(
        wait_until(|| stack.counters().unwrap().graceful_closes >= N as u64),
        "not all closes finished: {:?}",
        rig.stack.counters()
    );
    assert_eq!(rig.stack.counters().unwrap().resets_sent, 0);

    let (trace, _net) = rig.finish();
    let all = trace.conn(PORT);
    let syns = all
        .to_stack()
        .into_iter()
        .filter(|s| s.flags.syn && !s.flags.ack)
        .map(|s| s.src.port())
        .collect::<BTreeSet<_>>();
    all.assert(syns == kernel_ports, "not one SYN per kernel connection");
    all.assert(!all.has_rst(Dir::FromStack), "RST from the stack");
    for (port, msg) in sent {
        let t = trace.conn(port);
        let synacks = t
            .from_stack()
            .into_iter()
            .filter(|s| s.flags.syn && s.flags.ack)
            .count();
        t.assert(synacks >= 1, &format!("no SYN-ACK for kernel port {port}"));
        trace_same(
            &t,
            &format!("port {port} request"),
            &t.stream(Dir::ToStack),
            &msg,
        );
        trace_same(
            &t,
            &format!("port {port} echo"),
            &t.stream(Dir::FromStack),
            &msg,
        );
        t.assert(
            t.has_fin(Dir::FromStack) && t.has_fin(Dir::ToStack),
            &format!("port {port}: a FIN is missing"),
        );
    }
}

/// Offsets in an Ethernet frame carrying ARP.
const ARP_SENDER_IP: std::ops::Range<usize> = 28..32;
const ARP_TARGET_IP: std::ops::Range<usize> = 38..42;
/// Offsets in an Ethernet frame carrying IPv6 + ICMPv6 neighbour discovery (no extension
/// headers): the ICMPv6 type, and the target address of a solicitation or advertisement.
const ICMP6_TYPE: usize = 14 + 40;
const ND_TARGET: std::ops::Range<usize> = 14 + 40 + 8..14 + 40 + 24;
const NEIGHBOR_SOLICIT: u8 = 135;
const NEIGHBOR_ADVERT: u8 = 136;

/// ARP and NDP: the kernel resolves the stack over ARP (IPv4) and the stack resolves the kernel
/// over NDP (IPv6), then TCP works on both.
#[test]
fn arp_and_ndp_resolution_then_tcp() {
    if !require_tap("arp_and_ndp_resolution_then_tcp") {
        return;
    }
    const PORT4: u16 = 7008;
    const PORT6: u16 = 7009;
    let rig = Rig::new("tap_engine-arp-ndp");
    let (k4, s4, k6) = (
        rig.net.kernel_v4().octets(),
        rig.net.stack_v4().octets(),
        rig.net.kernel_v6().octets(),
    );

    // IPv4: the kernel connects to the stack, so the kernel must ARP for 10.200.0.2.
    let l = rig.listen(false, PORT4, 1);
    let mut kernel4 = rig.kernel_connect(false, PORT4);
    let (a, _) = rig.stack.accept(l, BLOCK).unwrap();
    kernel4.write_all(b"v4 after ARP").unwrap();
    kernel4.shutdown(NetShutdown::Write).unwrap();
    assert_eq!(stack_read_all(&rig.stack, a).unwrap(), b"v4 after ARP");
    rig.stack
        .close(a, CloseMode::Graceful { deadline: None })
        .unwrap();
    let (rest, err) = peer::read_to_end_or_error(&mut kernel4);
    assert!(rest.is_empty() && err.is_none(), "{err:?}");

    // IPv6: the stack connects to the kernel, so the stack must solicit fd00:200::1.
    let listener = peer::tcp_listener(rig.net.ns(), rig.kernel_addr(true, PORT6), None).unwrap();
    let c = rig.stack.open().unwrap();
    rig.stack
        .connect(c, rig.kernel_addr(true, PORT6), BLOCK)
        .expect("connect over IPv6");
    let (mut kernel6, _) = listener.accept().unwrap();
    bound_io(&kernel6);
    rig.stack.send(c, b"v6 after NDP", BLOCK).unwrap();
    rig.stack
        .close(c, CloseMode::Graceful { deadline: None })
        .unwrap();
    let (got, err) = peer::read_to_end_or_error(&mut kernel6);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got, b"v6 after NDP");
    drop(kernel6);
    // The neighbours the kernel learned: the stack's MAC for both addresses.
    let neigh = rig.net.ns().ip_output(&["neigh", "show"]).unwrap();

    let (trace, net) = rig.finish();
    let stack_mac = fmt_mac(net.stack_mac());
    for addr in ["10.200.0.2", "fd00:200::2"] {
        let line = neigh.lines().find(|l| l.starts_with(&format!("{addr} ")));
        trace.assert(
            line.is_some_and(|l| l.contains(&stack_mac)),
            &format!("kernel neighbour table has no {addr} -> {stack_mac}:\n{neigh}"),
        );
    }

    let arp_request = trace.others.iter().find(|o| {
        o.kind == FrameKind::ArpRequest
            && o.dir == Dir::ToStack
            && o.data.get(ARP_SENDER_IP) == Some(&k4[..])
            && o.data.get(ARP_TARGET_IP) == Some(&s4[..])
    });
    trace.assert(
        arp_request.is_some(),
        "no ARP request from the kernel for 10.200.0.2",
    );
    let arp_reply = trace.others.iter().find(|o| {
        o.kind == FrameKind::ArpOther
            && o.dir == Dir::FromStack
            && o.data.get(20..22) == Some(&[0, 2][..])
            && o.data.get(22..28) == Some(&net.stack_mac()[..])
            && o.data.get(ARP_SENDER_IP) == Some(&s4[..])
            && o.data.get(ARP_TARGET_IP) == Some(&k4[..])
    });
    trace.assert(
        arp_reply.is_some(),
        "no ARP reply from the stack for 10.200.0.2",
    );
    trace.assert(
        arp_request.unwrap().offset <= arp_reply.unwrap().offset,
        "ARP reply before the request",
    );
    trace.assert(trace.arp_count() >= 2, "fewer than two ARP frames");

    let nd = |dir: Dir, ty: u8| {
        trace.others.iter().find(|o| {
            o.kind == FrameKind::Ndp
                && o.dir == dir
                && o.data.get(ICMP6_TYPE) == Some(&ty)
                && o.data.get(ND_TARGET) == Some(&k6[..])
        })
    };
    let solicit = nd(Dir::FromStack, NEIGHBOR_SOLICIT);
    let advert = nd(Dir::ToStack, NEIGHBOR_ADVERT);
    trace.assert(
        solicit.is_some(),
        "no neighbour solicitation from the stack for fd00:200::1",
    );
    trace.assert(
        advert.is_some(),
        "no neighbour advertisement from the kernel for fd00:200::1",
    );
    trace.assert(
        solicit.unwrap().offset <= advert.unwrap().offset,
        "advertisement before the solicitation",
    );
    trace.assert(trace.ndp_count() >= 2, "fewer than two NDP frames");

    // And TCP worked on both, after resolution.
    let t4 = trace.conn(PORT4);
    let t6 = trace.conn(PORT6);
    let (syn4, _) = handshake(&t4);
    let (syn6, _) = handshake(&t6);
    t4.assert(syn4.offset >= arp_request.unwrap().offset, "SYN before ARP");
    t6.assert(syn6.offset >= solicit.unwrap().offset, "SYN before NDP");
    trace_same(&t4, "v4 payload", &t4.stream(Dir::ToStack), b"v4 after ARP");
    trace_same(
        &t6,
        "v6 payload",
        &t6.stream(Dir::FromStack),
        b"v6 after NDP",
    );
    t4.assert(!t4.has_rst(Dir::FromStack), "RST on IPv4");
    t6.assert(!t6.has_rst(Dir::FromStack), "RST on IPv6");
}

fn fmt_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Deleting the TAP while a recv is blocked: the recv returns NetworkDown within seconds, and
/// every later call does too.
#[test]
fn removed_device_gives_network_down() {
    if !require_tap("removed_device_gives_network_down") {
        return;
    }
    const PORT: u16 = 7010;
    let rig = Rig::new("tap_engine-device-removed");
    let l = rig.listen(false, PORT, 1);
    let mut kernel = rig.kernel_connect(false, PORT);
    let (s, _) = rig.stack.accept(l, BLOCK).unwrap();
    kernel.write_all(b"before").unwrap();
    assert_eq!(rig.stack.recv(s, 100, BLOCK).unwrap(), b"before");

    // A recv that would wait its full 20 s for data that never comes.
    let (tx, rx) = crossbeam_channel::bounded(1);
    let blocked = {
        let stack = rig.stack.clone();
        thread::spawn(move || {
            let r = stack.recv(s, 100, BLOCK);
            let _ = tx.send(r);
        })
    };
    // Let it park in the engine.
    thread::sleep(Duration::from_millis(300));
    assert!(
        rx.try_recv().is_err(),
        "recv returned before the device went away"
    );

    let Rig {
        stack,
        capture,
        net,
    } = rig;
    // The capture ends before the device goes: it is bound to it.
    let trace = capture.stop();
    let deleted_at = Instant::now();
    net.ns()
        .ip(&["link", "del", net.tap_name()])
        .expect("delete the TAP");
    let result = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("blocked recv still blocked 10 s after the TAP was deleted");
    let took = deleted_at.elapsed();
    blocked.join().unwrap();
    assert_eq!(result, Err(StackError::NetworkDown), "after {took:?}");

    // Everything after that is NetworkDown too.
    assert_eq!(stack.recv(s, 100, BLOCK), Err(StackError::NetworkDown));
    assert_eq!(
        stack.send(s, b"x", BLOCK).map_err(|f| f.error),
        Err(StackError::NetworkDown)
    );
    assert_eq!(stack.open(), Err(StackError::NetworkDown));
    assert_eq!(stack.accept(l, Wait::No), Err(StackError::NetworkDown));
    assert_eq!(
        stack.close(s, CloseMode::Graceful { deadline: None }),
        Err(StackError::NetworkDown)
    );
    stack.join();
    // The kernel's side of the link is gone as well.
    let links = net.ns().ip_output(&["-o", "link", "show"]).unwrap();
    assert!(!links.contains(net.tap_name()), "{links}");
    drop(kernel);

    // On the wire up to the deletion: the handshake and the data, and the stack neither reset
    // nor closed the connection on its own.
    trace.assert_no_drops();
    let t = trace.conn(PORT);
    handshake(&t);
    trace_same(&t, "kernel->stack", &t.stream(Dir::ToStack), b"before");
    t.assert(
        !t.has_rst(Dir::FromStack),
        "RST from the stack before the deletion",
    );
    t.assert(
        !t.has_fin(Dir::FromStack),
        "FIN from the stack before the deletion",
    );
    let (syn, _) = handshake(&t);
    let data_end = syn.seq.wrapping_add(1).wrapping_add(6);
    t.assert(
        t.from_stack()
            .iter()
            .any(|s| s.flags.ack && s.ack == data_end),
        "the stack did not acknowledge the kernel's data",
    );
}

/// Stopping the engine while a connection it closed gracefully sits in TIME-WAIT: both FINs
/// were exchanged and acknowledged, so the stop should free the socket silently. A RST there
/// is harmless to Linux (the connection is gone) but is noise on the wire and counts as a
/// reset sent.
#[test]
fn stop_sends_nothing_for_time_wait() {
    if !require_tap("stop_sends_nothing_for_time_wait") {
        return;
    }
    const PORT: u16 = 7011;
    let Rig {
        stack,
        capture,
        net,
    } = Rig::new("tap_engine-stop-time-wait");
    let listener =
        peer::tcp_listener(net.ns(), SocketAddr::new(net.kernel_ip(false), PORT), None).unwrap();
    let c = stack.open().unwrap();
    stack
        .connect(c, SocketAddr::new(net.kernel_ip(false), PORT), BLOCK)
        .unwrap();
    let (mut kernel, _) = listener.accept().unwrap();
    bound_io(&kernel);
    // The stack closes first, so it is the one that ends in TIME-WAIT.
    stack.send(c, b"bye", BLOCK).unwrap();
    stack.shutdown(c, Shutdown::Write).unwrap();
    let (got, err) = peer::read_to_end_or_error(&mut kernel);
    assert!(err.is_none() && got == b"bye", "{got:?} {err:?}");
    drop(kernel);
    assert_eq!(stack_read_all(&stack, c).unwrap(), b"");
    stack
        .close(c, CloseMode::Graceful { deadline: None })
        .unwrap();
    let s2 = stack.clone();
    assert!(wait_until(|| s2
        .counters()
        .unwrap()
        .sockets_by_state
        .contains_key("TIME-WAIT")));
    stack.stop(Duration::from_millis(500));
    let trace = capture.stop();
    drop(net);
    // A dropped frame could be the very RST this test looks for.
    trace.assert_no_drops();
    let t = trace.conn(PORT);
    t.assert(t.has_fin(Dir::FromStack) && t.has_fin(Dir::ToStack), "FINs");
    t.assert(
        !t.has_rst(Dir::FromStack),
        "RST from a TIME-WAIT socket at stop",
    );
}
