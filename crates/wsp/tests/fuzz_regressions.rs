//! Regression tests for what the call fuzzers (`fuzz_calls.rs`, `fuzz_c_abi.rs`) found in the
//! facade, each named after what it guards.

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use lingerstack_wsp::WsaError;

/// Two threads close one descriptor at once while its close cannot finish without blocking
/// (non-blocking, lingering, data unacknowledged: WSAEWOULDBLOCK, the descriptor stays). The
/// loser must not be told WSAENOTSOCK about a descriptor that is still open afterwards: it
/// gets WSAEINPROGRESS. (The fuzzer's re-entrant callback closed a socket while the
/// application closed it too; the application was told NOTSOCK and lost track of a live
/// descriptor.)
#[test]
fn concurrent_close_never_reports_notsock_for_a_live_descriptor() {
    let n = net_with(2048);
    let (s, _c) = n.connected(7100);
    n.nonblocking(s, true);
    n.linger(s, 1, 5);
    // More than the peer's window: bytes stay unacknowledged, so the close would block.
    let _ = n.p.send(s, &pattern(64 * 1024));
    for _ in 0..300 {
        let start = Arc::new(Barrier::new(2));
        let other = {
            let (p, start) = (n.p.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                p.close_socket(s)
            })
        };
        start.wait();
        let mine = n.p.close_socket(s);
        let theirs = other.join().unwrap();
        for result in [mine, theirs] {
            assert_ne!(result, Ok(()), "the close could not finish");
            assert_ne!(
                result,
                Err(WsaError::NOTSOCK),
                "a close reported WSAENOTSOCK; the descriptor is still open"
            );
        }
    }
    n.linger(s, 1, 0);
    assert_eq!(n.p.close_socket(s), Ok(()));
}
