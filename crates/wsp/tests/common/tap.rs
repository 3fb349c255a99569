//! Shared set-up of the facade's TAP tests: a provider on a real TAP in a private namespace,
//! the Linux kernel of that namespace as the peer, and a kernel-side capture as the evidence.
//!
//! Declared from the TAP test files with `#[path = "common/tap.rs"] mod tap;` so that the
//! in-memory `common` module (tests/smoke.rs) is left as it is.

#![allow(dead_code)]

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use lingerstack_stack::DeviceOptions;
use lingerstack_stack::{SocketInfo, StackConfig};
use lingerstack_testkit::peer::{read_to_end_or_error, tcp_connect, tcp_listener};
use lingerstack_testkit::tapnet::LINK_UP_TIMEOUT;
use lingerstack_testkit::{Capture, Dir, Segment, TapNet, Trace, stack_config};
use lingerstack_wsp::consts::*;
use lingerstack_wsp::{Linger, Provider, ProviderConfig, WsaResult};

/// How long a kernel read may wait before the test calls it a hang.
pub const KERNEL_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// A provider on the TAP of a private namespace, and the capture of the kernel side.
///
/// Field order matters on drop: the capture is finished first, then the provider, and the
/// namespace (with its TAP) goes last.
pub struct TapEnv {
    capture: Option<Capture>,
    pub p: Provider,
    pub net: TapNet,
}

/// A provider socket connected to a kernel socket.
pub struct Conn {
    /// The provider's descriptor.
    pub s: usize,
    /// The kernel's end.
    pub k: TcpStream,
    /// The stack's port.
    pub stack_port: u16,
    /// The kernel's port (unique per connection: use it with `Trace::conn`).
    pub kernel_port: u16,
}

impl TapEnv {
    /// Namespace, capture (opened before the TAP), TAP opened from inside the namespace,
    /// provider on it, link up. `tweak` adjusts the engine's configuration.
    pub fn start(capture_name: &str, tweak: impl FnOnce(&mut StackConfig)) -> TapEnv {
        TapEnv::start_with(capture_name, tweak, DeviceOptions::default())
    }

    /// As [`TapEnv::start`], with middleware (faults) on the engine's device.
    pub fn start_with(
        capture_name: &str,
        tweak: impl FnOnce(&mut StackConfig),
        device: DeviceOptions,
    ) -> TapEnv {
        let _ = env_logger::builder().is_test(true).try_init();
        let net = TapNet::new().expect("TapNet::new");
        let capture =
            Capture::start(net.ns(), net.tap_name(), capture_name).expect("Capture::start");
        let link = lingerstack_testkit::open_link(&net).expect("open the TAP inside the namespace");
        let mut stack = stack_config(&net);
        tweak(&mut stack);
        let config = ProviderConfig {
            // At the end of a test the capture is already stopped: no need to wait long.
            cleanup_grace: Duration::from_millis(300),
            device,
            ..ProviderConfig::new(stack)
        };
        let p = Provider::startup(config, Box::new(link)).expect("Provider::startup");
        net.wait_link_up(LINK_UP_TIMEOUT).expect("TAP link up");
        TapEnv {
            capture: Some(capture),
            p,
            net,
        }
    }

    /// The kernel's address and `port`.
    pub fn kernel(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.net.kernel_v4().into(), port)
    }

    /// The stack's address and `port`.
    pub fn stack(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.net.stack_v4().into(), port)
    }

    /// A kernel listener on `port` (SO_RCVBUF `rcvbuf` before listen).
    pub fn kernel_listener(&self, port: u16, rcvbuf: Option<usize>) -> TcpListener {
        tcp_listener(self.net.ns(), self.kernel(port), rcvbuf).expect("kernel listener")
    }

    /// A kernel connection to the stack's `port`.
    pub fn kernel_connect(&self, port: u16, rcvbuf: Option<usize>) -> io::Result<TcpStream> {
        tcp_connect(
            self.net.ns(),
            self.stack(port),
            rcvbuf,
            Duration::from_secs(5),
        )
    }

    /// A blocking provider socket connected to a kernel listener on `port` whose accepted
    /// socket has SO_RCVBUF `rcvbuf` (small: its window shuts once it holds that much).
    pub fn connect_kernel(&self, port: u16, rcvbuf: Option<usize>) -> Conn {
        let listener = self.kernel_listener(port, rcvbuf);
        let s = self.p.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP).unwrap();
        self.p.connect(s, self.kernel(port)).expect("WSPConnect");
        let (k, from) = listener.accept().expect("kernel accept");
        k.set_read_timeout(Some(KERNEL_READ_TIMEOUT)).unwrap();
        let stack_port = self.p.get_sock_name(s).unwrap().port();
        assert_eq!(from.port(), stack_port);
        Conn {
            s,
            k,
            stack_port,
            kernel_port: port,
        }
    }

    /// The engine's view of the connection on the stack's `port` (closing sockets included).
    pub fn info(&self, stack_port: u16) -> Option<SocketInfo> {
        self.p
            .stack()
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

    /// Wait until every byte sent on the stack's `port` has been acknowledged.
    pub fn wait_acked(&self, stack_port: u16) {
        eventually("send queue empty", || {
            self.info(stack_port).is_some_and(|i| i.send_queue == 0)
        });
    }

    /// SO_LINGER.
    pub fn linger(&self, s: usize, onoff: u16, secs: u16) {
        let l = Linger {
            onoff,
            linger: secs,
        };
        self.p
            .set_sock_opt(s, SOL_SOCKET, SO_LINGER, Some(&l.to_bytes()))
            .unwrap();
    }

    /// SO_LINGER as read back.
    pub fn get_linger(&self, s: usize) -> WsaResult<Linger> {
        let mut b = [0u8; 4];
        let n = self.p.get_sock_opt(s, SOL_SOCKET, SO_LINGER, &mut b)?;
        assert_eq!(n, 4);
        Ok(Linger::from_bytes(b))
    }

    /// FIONBIO.
    pub fn nonblocking(&self, s: usize, on: bool) {
        let mut arg = u32::from(on);
        self.p.ioctl(s, FIONBIO, &mut arg).unwrap();
    }

    /// FIONREAD.
    pub fn readable_bytes(&self, s: usize) -> WsaResult<u32> {
        let mut arg = 0;
        self.p.ioctl(s, FIONREAD, &mut arg)?;
        Ok(arg)
    }

    /// Stop the capture (before the cleanup, so the cleanup's own resets are not in it), then
    /// WSPCleanup; the trace, checked for capture drops.
    pub fn finish(mut self) -> Trace {
        let trace = self.capture.take().expect("finished twice").stop();
        let _ = self.p.cleanup();
        eprintln!(
            "capture: {}\n{}",
            trace.pcap_path.display(),
            trace.summary()
        );
        trace.assert_no_drops();
        trace
    }
}

impl Drop for TapEnv {
    fn drop(&mut self) {
        // After `finish` this is WSANOTINITIALISED and does nothing.
        let _ = self.p.cleanup();
    }
}

/// The kernel reads until end of stream or an error (bounded by its read timeout).
pub fn kernel_read_all(k: &mut TcpStream) -> (Vec<u8>, Option<io::Error>) {
    k.set_read_timeout(Some(KERNEL_READ_TIMEOUT)).unwrap();
    read_to_end_or_error(k)
}

/// Read exactly `n` bytes on the kernel side.
pub fn kernel_read_exact(k: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    k.read_exact(&mut buf).expect("kernel read_exact");
    buf
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

/// A byte pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
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

/// The stack's initial sequence number (its SYN or SYN-ACK) in a one-connection trace.
pub fn stack_isn(trace: &Trace) -> u32 {
    match segs(trace, Dir::FromStack, |s| s.flags.syn).first() {
        Some(syn) => syn.seq,
        None => trace.fail("no SYN from the stack in this connection"),
    }
}

/// Assert the stack's FIN(s) sit exactly after `len` bytes of data and no payload from the
/// stack goes past them; returns the first FIN.
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
    for s in trace.dir(Dir::FromStack) {
        if s.payload.is_empty() {
            continue;
        }
        let past = s.seq.wrapping_add(s.payload.len() as u32).wrapping_sub(end) as i32;
        trace.assert(past <= 0, "payload from the stack beyond the FIN");
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
