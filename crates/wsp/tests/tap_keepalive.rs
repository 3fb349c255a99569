//! Keep-alive on the wire (issue 9, item 4), against the Linux kernel of a private namespace
//! over a real TAP, with the kernel-side capture as the evidence.
//!
//! - A live kernel peer answers every probe: the connection outlives idle + interval * probes
//!   many times over and data still flows.
//! - A vanished peer (the stack's fault middleware drops every inbound frame) is probed at the
//!   configured spacing, then reset; the call in progress fails with WSAENETRESET, later calls
//!   with WSAETIMEDOUT, FD_CLOSE carries WSAETIMEDOUT, and the descriptor is gone after close.
//!
//! Run as root: `cargo nextest run -p lingerstack-wsp --test tap_keepalive`.

#[path = "common/tap.rs"]
mod tap;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lingerstack_stack::DeviceOptions;
use lingerstack_stack::link::FaultConfig;
use lingerstack_testkit::peer::tcp_listener;
use lingerstack_testkit::tapnet::LINK_UP_TIMEOUT;
use lingerstack_testkit::{Capture, Dir, Segment, TapNet, Trace, require_tap, stack_config};
use lingerstack_wsp::consts::*;
use lingerstack_wsp::{Event, EventObject, Provider, ProviderConfig, TcpKeepalive, WsaError};
use tap::{KERNEL_READ_TIMEOUT, eventually, secs_between, segs};

/// Keep-alive times of these tests: a probe after 1 s of silence, then every 250 ms; with
/// Windows' 10 probes a silent peer is reset 3.5 s after it was last heard.
const IDLE_MS: u32 = 1000;
const INTERVAL_MS: u32 = 250;
const PROBES: usize = 10;

/// A provider on a TAP with the fault middleware's switches at hand, and the kernel-side capture.
struct Env {
    capture: Option<Capture>,
    p: Provider,
    faults: FaultConfig,
    net: TapNet,
}

impl Env {
    fn start(capture_name: &str) -> Env {
        let _ = env_logger::builder().is_test(true).try_init();
        let net = TapNet::new().expect("TapNet::new");
        let capture =
            Capture::start(net.ns(), net.tap_name(), capture_name).expect("Capture::start");
        let link = lingerstack_testkit::open_link(&net).expect("open the TAP inside the namespace");
        let faults = FaultConfig::default();
        let config = ProviderConfig {
            device: DeviceOptions {
                faults: faults.clone(),
                ..DeviceOptions::default()
            },
            cleanup_grace: Duration::from_millis(300),
            ..ProviderConfig::new(stack_config(&net))
        };
        let p = Provider::startup(config, Box::new(link)).expect("Provider::startup");
        net.wait_link_up(LINK_UP_TIMEOUT).expect("TAP link up");
        Env {
            capture: Some(capture),
            p,
            faults,
            net,
        }
    }

    fn kernel(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.net.kernel_v4().into(), port)
    }

    /// A blocking provider socket with keep-alive (SIO_KEEPALIVE_VALS) connected to a kernel
    /// listener on `port`: (descriptor, kernel end, the stack's port).
    fn connect(&self, port: u16) -> (usize, TcpStream, u16) {
        let listener = tcp_listener(self.net.ns(), self.kernel(port), None).expect("listener");
        let s = self.p.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP).unwrap();
        let vals = TcpKeepalive {
            onoff: 1,
            keepalivetime: IDLE_MS,
            keepaliveinterval: INTERVAL_MS,
        };
        self.p
            .set_keepalive_vals(s, Some(&vals.to_bytes()))
            .expect("SIO_KEEPALIVE_VALS");
        let mut on = [0u8; 4];
        self.p
            .get_sock_opt(s, SOL_SOCKET, SO_KEEPALIVE, &mut on)
            .unwrap();
        assert_eq!(i32::from_ne_bytes(on), 1, "SO_KEEPALIVE reports it on");
        self.p.connect(s, self.kernel(port)).expect("WSPConnect");
        let (k, _) = listener.accept().expect("kernel accept");
        k.set_read_timeout(Some(KERNEL_READ_TIMEOUT)).unwrap();
        let stack_port = self.p.get_sock_name(s).unwrap().port();
        (s, k, stack_port)
    }

    /// One round of data each way; returns once the stack's bytes are acknowledged, so the
    /// connection is idle with nothing outstanding.
    fn exchange(&self, s: usize, k: &mut TcpStream, stack_port: u16) {
        k.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(self.p.recv(s, &mut buf).unwrap(), 4);
        assert_eq!(&buf, b"ping");
        assert_eq!(self.p.send(s, b"pong").unwrap(), 4);
        k.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        eventually("the stack's data acknowledged", || {
            self.p.stack().sockets().unwrap().iter().any(|i| {
                i.local.is_some_and(|l| l.port() == stack_port)
                    && i.remote.is_some()
                    && i.send_queue == 0
            })
        });
    }

    fn finish(mut self) -> Trace {
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

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.p.cleanup();
    }
}

/// A keep-alive probe from the stack: one byte, one below what the stack sent before.
fn is_probe(s: &Segment) -> bool {
    s.dir == Dir::FromStack && s.payload.len() == 1 && !s.flags.syn && !s.flags.fin && !s.flags.rst
}

/// The probes of a one-connection trace, each checked to sit one below the stack's next
/// sequence number (it repeats the last byte the kernel already acknowledged).
fn probes(trace: &Trace) -> Vec<&Segment> {
    let probes = segs(trace, Dir::FromStack, is_probe);
    for p in &probes {
        let acked = trace
            .dir(Dir::ToStack)
            .into_iter()
            .rfind(|k| k.time <= p.time && k.flags.ack)
            .map(|k| k.ack);
        trace.assert(
            acked == Some(p.seq.wrapping_add(1)),
            &format!(
                "probe at seq {} is not one below the acknowledged {acked:?}",
                p.seq
            ),
        );
    }
    probes
}

/// The kernel segment acknowledging `probe`, if the kernel sent one within a second.
fn kernel_answer<'a>(trace: &'a Trace, probe: &Segment) -> Option<&'a Segment> {
    trace.dir(Dir::ToStack).into_iter().find(|k| {
        k.flags.ack
            && k.ack == probe.seq.wrapping_add(1)
            && (0.0..1.0).contains(&secs_between(k.time, probe.time))
    })
}

/// A live kernel peer answers every probe: after more than twice idle + interval * probes
/// (3.5 s) of silence the connection is still up on both sides and data flows. The capture
/// shows the probes about one idle time apart (not one interval: each was answered), and the
/// kernel's ACK to every one.
#[test]
fn keepalive_live_peer_answers_probes_and_the_connection_stays() {
    if !require_tap("keepalive_live_peer_answers_probes_and_the_connection_stays") {
        return;
    }
    let env = Env::start("wsp-keepalive-live");
    let (s, mut k, stack_port) = env.connect(7101);
    env.exchange(s, &mut k, stack_port);
    let silent = Duration::from_millis(u64::from(IDLE_MS + INTERVAL_MS * PROBES as u32) * 2);
    std::thread::sleep(silent);
    // Data still flows both ways after the silence.
    env.exchange(s, &mut k, stack_port);
    env.p.close_socket(s).unwrap();
    let mut rest = Vec::new();
    k.read_to_end(&mut rest).expect("kernel sees a clean end");
    assert!(rest.is_empty());
    let trace = env.finish().conn(7101);

    let probes = probes(&trace);
    trace.assert(
        probes.len() >= 3,
        &format!("{} probes in {silent:?} of silence", probes.len()),
    );
    for p in &probes {
        trace.assert(
            kernel_answer(&trace, p).is_some(),
            &format!("the kernel did not answer the probe at {:?}", p.offset),
        );
    }
    for pair in probes.windows(2) {
        let gap = secs_between(pair[1].time, pair[0].time);
        trace.assert(
            (0.8..3.0).contains(&gap),
            &format!("answered probes {gap:.3} s apart, not about the 1 s idle time"),
        );
    }
    trace.assert(
        !trace.has_rst(Dir::FromStack),
        "the stack reset a live peer",
    );
}

/// A vanished peer: every inbound frame dropped inside the stack (the kernel still answers,
/// the stack never hears it). The capture shows the first probe about 1 s after the last
/// frame the stack heard, ten probes 250 ms apart, then the stack's RST; the kernel reads
/// ECONNRESET. On the facade, a blocking recv in progress fails with WSAENETRESET, FD_CLOSE
/// reports WSAETIMEDOUT, later calls WSAETIMEDOUT (SO_KEEPALIVE: WSAENETRESET); after close the
/// descriptor is gone (WSAENOTSOCK) and so is the engine's socket.
#[test]
fn keepalive_vanished_peer_is_probed_then_reset_and_released() {
    if !require_tap("keepalive_vanished_peer_is_probed_then_reset_and_released") {
        return;
    }
    let env = Env::start("wsp-keepalive-vanished");
    // Connection 1 has a blocking recv in progress; connection 2 watches FD_CLOSE.
    let (s1, mut k1, port1) = env.connect(7102);
    let (s2, mut k2, port2) = env.connect(7103);
    env.exchange(s1, &mut k1, port1);
    env.exchange(s2, &mut k2, port2);
    let ev = Event::new();
    env.p
        .event_select(s2, Some(ev.clone() as Arc<dyn EventObject>), FD_CLOSE)
        .unwrap();
    env.faults.blackhole_in.store(true, Ordering::SeqCst);
    let vanished_at = Instant::now();

    let p = &env.p;
    let in_progress = std::thread::scope(|scope| {
        let recv = scope.spawn(move || {
            let mut buf = [0u8; 16];
            p.recv(s1, &mut buf)
        });
        recv.join().unwrap()
    });
    let waited = vanished_at.elapsed();
    assert_eq!(in_progress, Err(WsaError(WSAENETRESET)), "recv in progress");
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(15),
        "recv failed after {waited:?}, expected about 3.5 s"
    );
    let mut buf = [0u8; 16];
    assert_eq!(env.p.recv(s1, &mut buf), Err(WsaError(WSAETIMEDOUT)));
    assert_eq!(env.p.send(s1, b"x"), Err(WsaError(WSAETIMEDOUT)));
    // As Windows: SO_KEEPALIVE on a connection keep-alive found dead is WSAENETRESET.
    let on = 1i32.to_ne_bytes();
    assert_eq!(
        env.p.set_sock_opt(s1, SOL_SOCKET, SO_KEEPALIVE, Some(&on)),
        Err(WsaError::NETRESET)
    );

    assert!(
        ev.wait(Duration::from_secs(10)),
        "no FD_CLOSE on the second connection"
    );
    let ne = env.p.enum_network_events(s2, Some(&*ev)).unwrap();
    assert_eq!(ne.events & FD_CLOSE, FD_CLOSE);
    assert_eq!(ne.errors[FD_CLOSE_BIT], WSAETIMEDOUT, "FD_CLOSE error code");

    // The kernel got the stack's RST.
    for k in [&mut k1, &mut k2] {
        let mut b = [0u8; 1];
        let e = k.read(&mut b).expect_err("the kernel should see a reset");
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "kernel read: {e}");
    }
    // Closing releases the descriptors and the engine's sockets.
    for s in [s1, s2] {
        env.p.close_socket(s).unwrap();
        assert_eq!(env.p.close_socket(s), Err(WsaError::NOTSOCK));
    }
    let left = env.p.stack().sockets().unwrap();
    assert!(
        !left.iter().any(|i| i
            .local
            .is_some_and(|l| l.port() == port1 || l.port() == port2)),
        "engine sockets left: {left:?}"
    );
    assert_eq!(env.p.descriptor_count(), 0);
    let trace = env.finish();

    for (kport, stack_port) in [(7102, port1), (7103, port2)] {
        let t = trace.conn(kport);
        let probes = probes(&t);
        t.assert(
            probes.len() == PROBES,
            &format!(
                "{} probes from port {stack_port}, want {PROBES}",
                probes.len()
            ),
        );
        // The last frame the stack heard: the kernel's last segment before the first probe.
        let heard = t
            .dir(Dir::ToStack)
            .into_iter()
            .rfind(|k| k.time < probes[0].time)
            .unwrap_or_else(|| t.fail("no kernel segment before the first probe"));
        let first = secs_between(probes[0].time, heard.time);
        t.assert(
            (0.8..3.0).contains(&first),
            &format!("first probe {first:.3} s after the peer was last heard, want about 1 s"),
        );
        for pair in probes.windows(2) {
            let gap = secs_between(pair[1].time, pair[0].time);
            t.assert(
                (0.15..1.0).contains(&gap),
                &format!("unanswered probes {gap:.3} s apart, want about 0.25 s"),
            );
        }
        let rst = segs(&t, Dir::FromStack, |s| s.flags.rst);
        t.assert(
            rst.len() == 1,
            &format!("{} RSTs from the stack", rst.len()),
        );
        let last = probes[PROBES - 1];
        let after = secs_between(rst[0].time, last.time);
        t.assert(
            (0.15..1.5).contains(&after),
            &format!("RST {after:.3} s after the last probe, want about 0.25 s"),
        );
        t.assert(
            !segs(&t, Dir::FromStack, |s| s.time > rst[0].time)
                .iter()
                .any(|_| true),
            "the stack sent something after its RST",
        );
    }
}
