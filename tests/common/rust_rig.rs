//! Shared set-up of the Rust API's wire tests (tests/tap_rust_net.rs, tests/tap_rust_tokio.rs):
//! a stack started with `Stack::builder()` on the TAP of a private namespace, the Linux kernel
//! of that namespace as the peer, and a kernel-side capture as the evidence.

#![allow(dead_code)]

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use lingerstack::Stack;
use lingerstack::stack::SocketInfo;
use lingerstack_testkit::peer::{read_to_end_or_error, tcp_connect, tcp_listener};
use lingerstack_testkit::tapnet::LINK_UP_TIMEOUT;
use lingerstack_testkit::{Capture, Dir, Segment, TapNet, Trace};

/// "At once" on a loaded machine.
pub const AT_ONCE: Duration = Duration::from_secs(1);
/// How late a deadline's RST may leave: 100 ms past it (the engine wakes for the deadline
/// itself, so this is scheduling slack).
pub const DEADLINE_SLACK: f64 = 0.1;
/// Kernel reads and writes give up after this long.
pub const KERNEL_IO: Duration = Duration::from_secs(15);
/// Bytes that fill a kernel socket with SO_RCVBUF 4096 and leave plenty queued in the stack.
pub const STUCK: usize = 100_000;
/// A small kernel receive buffer: its window shuts after a few KB.
pub const SMALL_RCVBUF: Option<usize> = Some(4096);
pub const MIB: usize = 1 << 20;

/// A stack on the TAP of a private namespace, and the capture of the kernel side.
///
/// Field order matters on drop: capture, stack, then the namespace with its TAP.
pub struct Rig {
    capture: Option<Capture>,
    pub stack: Stack,
    pub net: TapNet,
}

impl Rig {
    /// Namespace, capture (before the TAP is opened), the TAP opened inside the namespace, a
    /// stack on it from `Stack::builder()`, link up. `close_deadline` bounds background closes.
    pub fn start(capture_name: &str) -> Rig {
        let _ = env_logger::builder().is_test(true).try_init();
        let net = TapNet::new().expect("create namespace and TAP");
        let capture = Capture::start(net.ns(), net.tap_name(), capture_name).expect("capture");
        let link = lingerstack_testkit::open_link(&net).expect("open the TAP inside the namespace");
        let stack = Stack::builder()
            .ipv4(net.stack_v4(), net.prefix_len_v4())
            .ipv6(net.stack_v6(), net.prefix_len_v6())
            .mac(net.stack_mac())
            .start(link)
            .expect("start the stack");
        net.wait_link_up(LINK_UP_TIMEOUT).expect("TAP link up");
        Rig {
            capture: Some(capture),
            stack,
            net,
        }
    }

    /// The kernel's address and `port`.
    pub fn kernel(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.net.kernel_v4().into(), port)
    }

    /// The stack's address and `port`.
    pub fn stack_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.net.stack_v4().into(), port)
    }

    /// A kernel listener on `port` (SO_RCVBUF `rcvbuf` before listen).
    pub fn kernel_listener(&self, port: u16, rcvbuf: Option<usize>) -> TcpListener {
        tcp_listener(self.net.ns(), self.kernel(port), rcvbuf).expect("kernel listener")
    }

    /// A kernel connection to the stack's `port`.
    pub fn kernel_connect(&self, port: u16) -> TcpStream {
        let k = tcp_connect(self.net.ns(), self.stack_addr(port), None, KERNEL_IO)
            .expect("kernel connects to the stack");
        bound_io(&k);
        k
    }

    /// The engine's view of the connection on the stack's `port` (closing ones included).
    pub fn info(&self, stack_port: u16) -> Option<SocketInfo> {
        self.stack
            .sockets()
            .ok()?
            .into_iter()
            .find(|i| i.remote.is_some() && i.local.is_some_and(|l| l.port() == stack_port))
    }

    /// Wait until the connection's send queue is non-empty and has not moved for 400 ms (the
    /// kernel's window is shut); returns the bytes still queued.
    pub fn wait_stalled(&self, stack_port: u16) -> usize {
        let end = Instant::now() + Duration::from_secs(10);
        let mut last = (usize::MAX, Instant::now());
        while Instant::now() < end {
            let q = self.info(stack_port).map_or(0, |i| i.send_queue);
            if q != last.0 {
                last = (q, Instant::now());
            } else if q > 0 && last.1.elapsed() >= Duration::from_millis(400) {
                return q;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "send queue of port {stack_port} never stalled (last {})",
            last.0
        );
    }

    /// Wait until the connection on `stack_port` holds received bytes nobody read.
    pub fn wait_unread(&self, stack_port: u16) {
        eventually("received bytes waiting in the stack", || {
            self.info(stack_port).is_some_and(|i| i.recv_queue > 0)
        });
    }

    /// Stop the capture (so the stack's stop is not in it), then the stack; the trace.
    pub fn finish(mut self) -> Trace {
        let trace = self.capture.take().expect("finished twice").stop();
        self.stack.stop(Duration::from_millis(300));
        eprintln!(
            "capture: {}\n{}",
            trace.pcap_path.display(),
            trace.summary()
        );
        trace.assert_no_drops();
        trace
    }
}

pub fn bound_io(k: &TcpStream) {
    k.set_read_timeout(Some(KERNEL_IO)).unwrap();
    k.set_write_timeout(Some(KERNEL_IO)).unwrap();
}

/// The kernel reads until end of stream or an error (bounded by its read timeout).
pub fn kernel_read_all(k: &mut TcpStream) -> (Vec<u8>, Option<io::Error>) {
    k.set_read_timeout(Some(KERNEL_IO)).unwrap();
    read_to_end_or_error(k)
}

/// The kernel reads `k` slowly, `chunk` bytes at a time with `pause` in between, until end
/// of stream or an error.
pub fn kernel_read_paced(
    k: &mut TcpStream,
    chunk: usize,
    pause: Duration,
) -> (Vec<u8>, Option<io::Error>) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match k.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return (got, Some(e)),
        }
        std::thread::sleep(pause);
    }
}

/// A kernel echo service on `port`: one connection, every byte sent back, then close.
pub fn kernel_echo(rig: &Rig, port: u16) -> std::thread::JoinHandle<io::Result<u64>> {
    let listener = rig.kernel_listener(port, None);
    std::thread::spawn(move || {
        let (mut k, _) = listener.accept()?;
        bound_io(&k);
        let mut out = k.try_clone()?;
        let n = io::copy(&mut k, &mut out)?;
        k.shutdown(std::net::Shutdown::Write)?;
        Ok(n)
    })
}

/// Poll `cond` for up to 10 s.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("not reached within 10 s: {what}");
}

/// A byte pattern that does not repeat every few bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

/// `a - b` in seconds (negative when `a` is earlier).
pub fn secs_between(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Segments of `trace` in `dir` matching `pred`.
pub fn segs(trace: &Trace, dir: Dir, pred: impl Fn(&Segment) -> bool) -> Vec<&Segment> {
    trace.dir(dir).into_iter().filter(|s| pred(s)).collect()
}

/// The first RST from the stack.
pub fn first_stack_rst(trace: &Trace) -> &Segment {
    match segs(trace, Dir::FromStack, |s| s.flags.rst).first() {
        Some(s) => s,
        None => trace.fail("no RST from the stack"),
    }
}

/// The stack's initial sequence number (its SYN or SYN-ACK) in a one-connection trace.
pub fn stack_isn(trace: &Trace) -> u32 {
    match segs(trace, Dir::FromStack, |s| s.flags.syn).first() {
        Some(syn) => syn.seq,
        None => trace.fail("no SYN from the stack in this connection"),
    }
}

/// Assert the stack's FIN(s) sit right after `len` bytes of data; returns the first FIN.
#[track_caller]
pub fn assert_fin_after_data(trace: &Trace, len: usize) -> &Segment {
    let end = stack_isn(trace).wrapping_add(1).wrapping_add(len as u32);
    let fins = segs(trace, Dir::FromStack, |s| s.flags.fin);
    trace.assert(!fins.is_empty(), "no FIN from the stack");
    for f in &fins {
        trace.assert(
            f.seq.wrapping_add(f.payload.len() as u32) == end,
            &format!("FIN at {} is not right after the {len} data bytes", f.seq),
        );
    }
    fins[0]
}

/// The first kernel segment acknowledging sequence number `seq` of the stack.
pub fn kernel_ack_of(trace: &Trace, seq: u32) -> Option<&Segment> {
    trace
        .dir(Dir::ToStack)
        .into_iter()
        .find(|s| s.flags.ack && (s.ack.wrapping_sub(seq) as i32) >= 0)
}

/// Assert a reset of a lingering close left at `secs` after the close was called (`called`,
/// with 20 ms for clock granularity) and within [`DEADLINE_SLACK`] of it counted from the
/// call's return (`returned`; a blocking close returns after the RST, so there it is the
/// call itself that counts).
pub fn assert_rst_at_deadline(
    trace: &Trace,
    rst: &Segment,
    called: SystemTime,
    returned: SystemTime,
    secs: f64,
) {
    let after_call = secs_between(rst.time, called);
    let after_return = secs_between(rst.time, returned);
    let late = if after_return < 0.0 {
        after_call
    } else {
        after_return
    };
    eprintln!("RST {after_call:.3} s after the close call, {after_return:.3} s after it returned");
    trace.assert(
        after_call >= secs - 0.02,
        &format!("RST {after_call:.3} s after the close call, before the {secs} s linger"),
    );
    trace.assert(
        late <= secs + DEADLINE_SLACK,
        &format!("RST {late:.3} s late, more than {secs} s + {DEADLINE_SLACK} s"),
    );
}

/// The kind of `err`, for assertions.
pub fn kind(err: &Option<io::Error>) -> Option<io::ErrorKind> {
    err.as_ref().map(|e| e.kind())
}

/// The `StackError` riding in `err`, if any.
pub fn payload(err: &io::Error) -> Option<lingerstack::StackError> {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<lingerstack::StackError>())
        .copied()
}

/// The kernel read every byte of `data`, then end of stream.
pub fn assert_kernel_read_all(read: (Vec<u8>, Option<io::Error>), data: &[u8]) {
    let (got, err) = read;
    assert!(err.is_none(), "kernel read error: {err:?}");
    assert!(
        got == data,
        "kernel read {} of {} bytes",
        got.len(),
        data.len()
    );
}

/// A default close on the wire: no RST from the stack, exactly `data` then the FIN, and data
/// still leaving after the close had `returned` (it closed in the background).
pub fn assert_background_close(trace: &Trace, data: &[u8], returned: SystemTime) {
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    trace.assert(trace.stream(Dir::FromStack) == data, "stream differs");
    assert_fin_after_data(trace, data.len());
    let late = segs(trace, Dir::FromStack, |s| {
        !s.payload.is_empty() && s.time > returned
    });
    trace.assert(!late.is_empty(), "no data left after the close returned");
}

/// The last handle's close on the wire: no FIN, the stack's RST not before `mark` (when the
/// last handle went), and exactly `stream` sent before it.
pub fn assert_reset_after(trace: &Trace, mark: SystemTime, stream: &[u8]) {
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
    let rst = first_stack_rst(trace);
    trace.assert(rst.time >= mark, "RST before the last handle went");
    trace.assert(trace.stream(Dir::FromStack) == stream, "stream differs");
}
