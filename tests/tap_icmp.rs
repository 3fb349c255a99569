//! The engine answers ping: ICMP and ICMPv6 echo requests from the Linux kernel of a private
//! namespace, over a real TAP, get their replies from the stack itself.
//!
//! The kernel's raw ICMP sockets see each reply (its own view), and the kernel-side capture
//! shows each reply leaving the stack: the stack's MAC and address as the source, the request's
//! identifier, sequence number and data. Every face (Rust sockets, Winsock facade, daemon) runs
//! this one engine, so this holds for all of them; the daemon's test pings it once more. (The
//! engine's other wire tests are in `tap_engine.rs`.)
//!
//! Run as root: `cargo nextest run -p lingerstack --test tap_icmp`.

use std::net::IpAddr;
use std::time::Duration;

use lingerstack::stack::DeviceOptions;
use lingerstack_testkit::icmp::{self, Echo};
use lingerstack_testkit::{Capture, Dir, TapNet, require_tap, stack_config, start_stack};

/// Requests per address, as `ping -c 3`.
const COUNT: u16 = 3;
/// Generous: replies take microseconds, but the machine is shared.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn stack_answers_ping_v4_and_v6() {
    if !require_tap("stack_answers_ping_v4_and_v6") {
        return;
    }
    let net = TapNet::new().expect("TapNet::new");
    let capture = Capture::start(net.ns(), net.tap_name(), "stack-icmp-echo").unwrap();
    let stack = start_stack(&net, stack_config(&net), DeviceOptions::default(), None).unwrap();
    let payload = b"lingerstack ping payload 0123456789";

    let mut idents = Vec::new();
    for v6 in [false, true] {
        let dst = net.stack_ip(v6);
        let replies = icmp::ping(net.ns(), dst, COUNT, payload, REPLY_TIMEOUT).unwrap();
        let seqs: Vec<u16> = replies.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2, 3], "{dst}: the kernel got replies {replies:?}");
        assert!(replies.iter().all(|r| r.from == dst), "{replies:?}");
        idents.push((dst, replies[0].ident));
    }

    let trace = capture.stop();
    trace.assert_no_drops();
    let echoes = icmp::echoes(&trace);
    for (dst, ident) in idents {
        let kernel: IpAddr = net.kernel_ip(dst.is_ipv6());
        for seq in 1..=COUNT {
            let is = |e: &&Echo, dir, reply| {
                e.dir == dir && e.reply == reply && e.ident == ident && e.seq == seq
            };
            let request = echoes.iter().any(|e| is(&e, Dir::ToStack, false));
            let reply = echoes.iter().find(|e| is(e, Dir::FromStack, true));
            trace.assert(
                request,
                &format!("no echo request {dst} seq {seq} on the wire"),
            );
            let Some(reply) = reply else {
                trace.fail(&format!("no echo reply from {dst} seq {seq} on the wire"));
            };
            trace.assert(
                reply.src == dst
                    && reply.dst == kernel
                    && reply.src_mac == net.stack_mac()
                    && reply.payload == payload,
                &format!("echo reply seq {seq} not the stack's, or altered: {reply:?}"),
            );
        }
    }
    stack.stop(Duration::ZERO);
}
