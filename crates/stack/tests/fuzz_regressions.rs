//! Regression tests for what the fuzzers (`tests/fuzz_frames.rs`, the facade and C ABI call
//! fuzzers) found, each named after what it guards. They run on the in-memory link.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use lingerstack_stack::DeviceOptions;
use lingerstack_stack::link::MemoryLink;
use lingerstack_stack::{Cidr, CloseMode, KeepAlive, Stack, StackConfig, StackError, Wait};

const A: Ipv4Addr = Ipv4Addr::new(10, 11, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 11, 0, 2);
const BLOCK: Wait = Wait::Block(Some(Duration::from_secs(20)));

fn pair() -> (Stack, Stack) {
    let config = |addr, last| StackConfig {
        mac: [0x02, 0, 0, 0, 0x11, last],
        ipv4: Some(Cidr { addr, prefix: 24 }),
        ..StackConfig::default()
    };
    let (la, lb) = MemoryLink::pair(1500);
    let a = Stack::start(config(A, 1), Box::new(la), DeviceOptions::default(), None).unwrap();
    let b = Stack::start(config(B, 2), Box::new(lb), DeviceOptions::default(), None).unwrap();
    (a, b)
}

/// A keep-alive time under a millisecond is refused. smoltcp re-arms its keep-alive timer
/// `interval` after each probe, so with zero it was due again at once and one poll sent probes
/// for ever: the engine thread spun and queued frames until memory ran out.
#[test]
fn zero_keep_alive_interval_is_refused_not_a_busy_loop() {
    let (a, b) = pair();
    let l = a.open().unwrap();
    a.bind(l, SocketAddr::new(A.into(), 80)).unwrap();
    a.listen(l, 1).unwrap();
    let c = b.open().unwrap();
    b.connect(c, SocketAddr::new(A.into(), 80), BLOCK).unwrap();
    let (s, _) = a.accept(l, BLOCK).unwrap();
    let mut options = a.info(s).unwrap().options;
    for interval in [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_micros(999),
    ] {
        for keep_alive in [
            KeepAlive {
                interval,
                ..KeepAlive::WINDOWS
            },
            KeepAlive {
                idle: interval,
                ..KeepAlive::WINDOWS
            },
        ] {
            options.keep_alive = Some(keep_alive);
            assert_eq!(
                a.set_options(s, options),
                Err(StackError::InvalidInput),
                "keep-alive {keep_alive:?}"
            );
        }
    }
    // The engine still answers, and the connection still works.
    assert_eq!(a.send(s, b"ping", BLOCK).unwrap(), 4);
    assert_eq!(b.recv(c, 16, BLOCK).unwrap(), b"ping");
    options.keep_alive = Some(KeepAlive {
        interval: Duration::from_secs(1),
        ..KeepAlive::WINDOWS
    });
    a.set_options(s, options).unwrap();
    for id in [s, l] {
        a.close(id, CloseMode::Abort).unwrap();
    }
    b.close(c, CloseMode::Abort).unwrap();
}
