//! Offloads over the TAP's virtio-net header, on the wire against the Linux kernel.
//!
//! - `super_segments_cross_the_tap_both_ways`: with offloads on (the default), a MiB each way
//!   moves as TCP super-segments in a few dozen frames, not hundreds, and arrives intact; with
//!   `LINGERSTACK_TEST_OFFLOAD=off`, no frame is larger than the MTU allows.
//! - `forwarded_out_of_a_veth_no_frame_exceeds_the_mtu`: the namespace's kernel forwards the
//!   stack's traffic out of a veth whose own offloads are off, so the kernel cuts every
//!   super-segment before the veth; the capture on the far end of the veth shows only frames
//!   of at most the MTU, both ways, and each end reads every byte. The kernel computes the
//!   final checksums there from the stack's partial ones, so a wrong partial checksum would
//!   show as data that never arrives.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream as KernelStream};
use std::process::Command;
use std::thread;
use std::time::Duration;

use lingerstack::Stack;
use lingerstack::net::TcpListener;
use lingerstack_testkit::tapnet::LINK_UP_TIMEOUT;
use lingerstack_testkit::{Capture, Dir, Netns, TapNet, Trace, require_tap, require_tool};

const MIB: usize = 1 << 20;
/// Kernel reads and writes give up after this long.
const KERNEL_IO: Duration = Duration::from_secs(30);
/// The far namespace's side of the veth, and the forwarding namespace's.
const FAR_V4: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);
const NEAR_V4: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A stack on the TAP of `net` (offloads as the test kit says), routed through the kernel.
fn start_stack(net: &TapNet) -> Stack {
    let _ = env_logger::builder().is_test(true).try_init();
    let link = lingerstack_testkit::open_link(net).expect("open the TAP inside the namespace");
    let stack = Stack::builder()
        .ipv4(net.stack_v4(), net.prefix_len_v4())
        .gateway(net.kernel_v4().into())
        .mac(net.stack_mac())
        .start(link)
        .expect("start the stack");
    net.wait_link_up(LINK_UP_TIMEOUT).expect("TAP link up");
    stack
}

/// The stack accepts one connection on `port` and echoes nothing: it reads `want` bytes,
/// writes `reply`, shuts its sending side and reads to EOF. Returns what it read.
fn stack_side(stack: &Stack, port: u16, reply: Vec<u8>) -> thread::JoinHandle<Vec<u8>> {
    let listener = TcpListener::bind(stack, SocketAddr::from(([0, 0, 0, 0], port))).unwrap();
    thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let writer = {
            let mut w = stream.try_clone().unwrap();
            thread::spawn(move || {
                w.write_all(&reply).expect("stack writes");
                w.shutdown(Shutdown::Write)
                    .expect("stack shuts down writing");
            })
        };
        let mut got = Vec::new();
        let mut r = stream.try_clone().unwrap();
        r.read_to_end(&mut got).expect("stack reads to EOF");
        writer.join().unwrap();
        got
    })
}

/// A kernel client in the current thread's namespace: connects to `to`, writes `data`, shuts
/// down writing and reads to EOF.
fn kernel_side(to: SocketAddr, data: &[u8]) -> Vec<u8> {
    let stream = KernelStream::connect_timeout(&to, KERNEL_IO).expect("kernel connects");
    stream.set_read_timeout(Some(KERNEL_IO)).unwrap();
    stream.set_write_timeout(Some(KERNEL_IO)).unwrap();
    let writer = {
        let mut w = stream.try_clone().unwrap();
        let data = data.to_vec();
        thread::spawn(move || {
            w.write_all(&data).expect("kernel writes");
            w.shutdown(Shutdown::Write)
                .expect("kernel shuts down writing");
        })
    };
    let mut got = Vec::new();
    let mut r = stream;
    r.read_to_end(&mut got).expect("kernel reads to EOF");
    writer.join().unwrap();
    got
}

/// Largest TCP payload of `trace` in direction `dir`.
fn largest(trace: &Trace, dir: Dir) -> usize {
    trace
        .dir(dir)
        .iter()
        .map(|s| s.payload.len())
        .max()
        .unwrap_or(0)
}

/// The captured (original) length of every frame of a pcap file written by the test kit.
fn frame_lengths(path: &std::path::Path) -> Vec<usize> {
    let bytes = std::fs::read(path).expect("read the pcap");
    let mut out = Vec::new();
    let mut rest = bytes.get(24..).unwrap_or_default();
    while rest.len() >= 16 {
        let word = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().unwrap()) as usize;
        let (kept, orig) = (word(8), word(12));
        out.push(orig);
        rest = rest.get(16 + kept..).unwrap_or_default();
    }
    out
}

#[test]
fn super_segments_cross_the_tap_both_ways() {
    if !require_tap("super_segments_cross_the_tap_both_ways") {
        return;
    }
    const PORT: u16 = 7301;
    let net = TapNet::new().expect("namespace and TAP");
    let capture = Capture::start(net.ns(), net.tap_name(), "tap_offload-tap").unwrap();
    let stack = start_stack(&net);
    let (up, down) = (pattern(MIB, 1), pattern(MIB, 2));
    let server = stack_side(&stack, PORT, down.clone());
    let to = SocketAddr::from((net.stack_v4(), PORT));
    let sent = up.clone();
    let got_down = net.ns().run(move || kernel_side(to, &sent));
    let got_up = server.join().expect("stack side");
    assert!(
        got_up == up,
        "the stack read {} of {MIB} bytes intact",
        got_up.len()
    );
    assert!(
        got_down == down,
        "the kernel read {} of {MIB} bytes intact",
        got_down.len()
    );

    let c = stack.counters().unwrap();
    let trace = capture.stop().conn(PORT);
    trace.assert_no_drops();
    let mss = net.mtu() as usize - 40;
    let (out, inn) = (
        largest(&trace, Dir::FromStack),
        largest(&trace, Dir::ToStack),
    );
    let data_frames = trace
        .dir(Dir::FromStack)
        .iter()
        .filter(|s| !s.payload.is_empty())
        .count();
    if lingerstack_testkit::offload() {
        // Offloads on: the capture on the TAP sees what crossed it, super-segments whole.
        trace.assert(
            out > mss && inn > mss,
            &format!("largest {out} out, {inn} in"),
        );
        trace.assert(
            out <= 65535 - 40 && inn <= 65535 - 40,
            "beyond an IP packet",
        );
        // A MiB in super-segments: tens of frames, where MSS-sized ones would be 700.
        trace.assert(
            data_frames <= 100,
            &format!("{data_frames} data frames for a MiB"),
        );
        assert!(c.tx_super_segments > 0 && c.rx_super_segments > 0, "{c:?}");
    } else {
        // Offloads off: plain frames, every one within the MTU.
        trace.assert(
            out <= mss && inn <= mss,
            &format!("largest {out} out, {inn} in"),
        );
        assert_eq!((c.tx_super_segments, c.rx_super_segments), (0, 0), "{c:?}");
    }
    assert_eq!(c.rx_dropped_checksum, 0, "{c:?}");
    stack.stop(Duration::from_secs(1));
}

#[test]
fn forwarded_out_of_a_veth_no_frame_exceeds_the_mtu() {
    if !require_tap("forwarded_out_of_a_veth_no_frame_exceeds_the_mtu")
        || !require_tool("forwarded_out_of_a_veth", "ethtool", "--version")
    {
        return;
    }
    const PORT: u16 = 7302;
    // The TAP's namespace forwards between the TAP and a veth into a second namespace.
    let net = TapNet::new().expect("namespace and TAP");
    let far = Netns::new().expect("far namespace");
    let (near_if, far_if) = (net.ns().ifname("fw"), far.ifname("fv"));
    net.ns()
        .ip(&[
            "link", "add", &near_if, "type", "veth", "peer", "name", &far_if,
        ])
        .unwrap();
    net.ns()
        .ip(&["link", "set", &far_if, "netns", far.name()])
        .unwrap();
    net.ns()
        .ip(&["addr", "add", &format!("{NEAR_V4}/24"), "dev", &near_if])
        .unwrap();
    far.ip(&["addr", "add", &format!("{FAR_V4}/24"), "dev", &far_if])
        .unwrap();
    net.ns().ip(&["link", "set", &near_if, "up"]).unwrap();
    far.ip(&["link", "set", &far_if, "up"]).unwrap();
    let stack_net = format!("{}/32", net.stack_v4());
    far.ip(&["route", "add", &stack_net, "via", &NEAR_V4.to_string()])
        .unwrap();
    net.ns().sysctl("net.ipv4.ip_forward", "1").unwrap();
    // No segmentation and no aggregation on the veth: the kernel cuts before it, and the far
    // end's capture sees frames as they went over it.
    for (ns, dev) in [(net.ns(), &near_if), (&far, &far_if)] {
        let off = ["tso", "off", "gso", "off", "gro", "off"];
        let mut args = vec!["netns", "exec", ns.name(), "ethtool", "-K", dev.as_str()];
        args.extend(off);
        lingerstack_testkit::run_ok(Command::new("ip").args(&args));
    }
    let capture = Capture::start(&far, &far_if, "tap_offload-veth").unwrap();
    let tap_capture = Capture::start(net.ns(), net.tap_name(), "tap_offload-fwd-tap").unwrap();
    let stack = start_stack(&net);

    let (up, down) = (pattern(2 * MIB, 3), pattern(2 * MIB, 4));
    let server = stack_side(&stack, PORT, down.clone());
    let to = SocketAddr::from((net.stack_v4(), PORT));
    let sent = up.clone();
    let got_down = far.run(move || kernel_side(to, &sent));
    let got_up = server.join().expect("stack side");
    assert!(
        got_up == up,
        "the stack read {} of {} bytes intact",
        got_up.len(),
        up.len()
    );
    assert!(
        got_down == down,
        "the far end read {} of {} intact",
        got_down.len(),
        down.len()
    );

    let pcap = capture.pcap_path();
    let veth = capture.stop().conn(PORT);
    veth.assert_no_drops();
    let tap = tap_capture.stop().conn(PORT);
    let mtu = net.mtu() as usize;
    let lengths = frame_lengths(&pcap);
    let longest = lengths.iter().copied().max().unwrap_or(0);
    assert!(
        !lengths.is_empty() && longest <= mtu + 14,
        "a frame of {longest} bytes on the veth (MTU {mtu}); see {}",
        pcap.display()
    );
    // Both directions crossed the veth in full-sized segments.
    for dir in [Dir::FromStack, Dir::ToStack] {
        let n = largest(&veth, dir);
        veth.assert(
            n > 1000 && n <= mtu - 40,
            &format!("{dir:?}: largest payload {n}"),
        );
    }
    if lingerstack_testkit::offload() {
        // The stack did write super-segments: the kernel cut them on the way.
        let n = largest(&tap, Dir::FromStack);
        tap.assert(
            n > mtu - 40,
            &format!("largest segment from the stack on the TAP: {n}"),
        );
    }
    stack.stop(Duration::from_secs(1));
    drop(far);
}
