//! Options that close depends on: rows O01..O06 of close-semantics.md, on the in-memory link.

mod common;

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use common::*;
use lingerstack_wsp::consts::*;
use lingerstack_wsp::{Event, Linger, WsaError};

fn get_linger(n: &Net, s: usize) -> Linger {
    let mut b = [0u8; 4];
    assert_eq!(
        n.p.get_sock_opt(s, SOL_SOCKET, SO_LINGER, &mut b).unwrap(),
        4
    );
    Linger::from_bytes(b)
}

fn get_dontlinger(n: &Net, s: usize) -> i32 {
    let mut b = [0u8; 4];
    n.p.get_sock_opt(s, SOL_SOCKET, SO_DONTLINGER, &mut b)
        .unwrap();
    i32::from_ne_bytes(b)
}

/// O01: SO_LINGER with a NULL value or fewer than 4 bytes is WSAEFAULT; SO_DONTLINGER takes 1+.
#[test]
fn o01_linger_value_checks() {
    let n = net();
    let s = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(
        n.p.set_sock_opt(s, SOL_SOCKET, SO_LINGER, None),
        Err(WsaError::FAULT)
    );
    assert_eq!(
        n.p.set_sock_opt(s, SOL_SOCKET, SO_LINGER, Some(&[1, 0, 5])),
        Err(WsaError::FAULT)
    );
    assert_eq!(
        n.p.set_sock_opt(s, SOL_SOCKET, SO_DONTLINGER, None),
        Err(WsaError::FAULT)
    );
    n.p.set_sock_opt(s, SOL_SOCKET, SO_DONTLINGER, Some(&[0]))
        .unwrap();
    assert_eq!(
        get_linger(&n, s).onoff,
        1,
        "SO_DONTLINGER FALSE sets l_onoff"
    );
    let mut short = [0u8; 3];
    assert_eq!(
        n.p.get_sock_opt(s, SOL_SOCKET, SO_LINGER, &mut short),
        Err(WsaError::FAULT)
    );
}

/// O02: SO_LINGER round-trips {0,0}, {0,73}, {1,0}, {5,189}.
#[test]
fn o02_linger_round_trips() {
    let n = net();
    let s = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    for (onoff, secs) in [(0, 0), (0, 73), (1, 0), (5, 189)] {
        n.linger(s, onoff, secs);
        let got = get_linger(&n, s);
        assert_eq!(got.onoff != 0, onoff != 0, "{onoff},{secs}");
        assert_eq!(got.linger, secs, "{onoff},{secs}: l_linger is kept");
    }
}

/// O03: SO_DONTLINGER reads !l_onoff; setting TRUE clears l_onoff and keeps l_linger.
#[test]
fn o03_dontlinger_is_the_inverse() {
    let n = net();
    let s = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(get_dontlinger(&n, s), 1, "default: no linger");
    n.linger(s, 1, 42);
    assert_eq!(get_dontlinger(&n, s), 0);
    n.p.set_sock_opt(s, SOL_SOCKET, SO_DONTLINGER, Some(&1i32.to_ne_bytes()))
        .unwrap();
    assert_eq!(
        get_linger(&n, s),
        Linger {
            onoff: 0,
            linger: 42
        }
    );
    assert_eq!(get_dontlinger(&n, s), 1);
}

/// O04: an accepted socket inherits its listener's linger setting.
#[test]
fn o04_accepted_socket_inherits_linger() {
    let n = net();
    let l = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    n.p.bind(l, SocketAddr::new(ME.into(), 7400)).unwrap();
    n.p.listen(l, 4).unwrap();
    n.linger(l, 1, 0);
    let c = n.peer.open().unwrap();
    n.peer
        .connect(c, SocketAddr::new(ME.into(), 7400), BLOCK)
        .unwrap();
    let (s, peer) = n.p.accept(l, None).unwrap();
    assert_eq!(peer.ip(), std::net::IpAddr::V4(PEER));
    assert_eq!(
        get_linger(&n, s),
        Linger {
            onoff: 1,
            linger: 0
        }
    );
    // And it acts on it: the close resets the peer.
    n.p.close_socket(s).unwrap();
    assert_eq!(
        n.peer.recv(c, 10, BLOCK),
        Err(lingerstack_stack::StackError::ConnReset)
    );
}

/// O05: FIONBIO switches blocking mode, and the linger rows read it at the moment of close.
#[test]
fn o05_fionbio_is_read_at_close() {
    let n = net_with(4096);
    let (s, c) = n.connected(7401);
    n.p.send(s, &pattern(32 * 1024)).unwrap();
    n.linger(s, 1, 10);
    n.nonblocking(s, true);
    assert_eq!(n.p.recv(s, &mut [0u8; 4]), Err(WsaError::WOULDBLOCK));
    assert_eq!(n.p.close_socket(s), Err(WsaError::WOULDBLOCK));
    // Back to blocking: the same close now waits until the peer has read and acknowledged.
    n.nonblocking(s, false);
    let peer = n.peer.clone();
    let reader = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        let mut got = 0;
        loop {
            match peer.recv(c, 65536, BLOCK) {
                Ok(d) if d.is_empty() => return Ok(got),
                Ok(d) => got += d.len(),
                Err(e) => return Err(e),
            }
        }
    });
    assert_eq!(n.p.close_socket(s), Ok(()));
    assert_eq!(reader.join().unwrap(), Ok(32 * 1024));
}

/// O06: event select with a non-zero mask makes the socket non-blocking; FIONBIO back to
/// blocking fails with WSAEINVAL until the mask is cleared. A lingering close on an
/// event-selected socket follows C07: with data the peer cannot take (its window is shut), a
/// blocking linger {1,10} would wait 10 s, so only the non-blocking row answers WSAEWOULDBLOCK
/// at once, and the descriptor stays usable.
#[test]
fn o06_event_select_forces_nonblocking() {
    let n = net_with(4096);
    let (s, _c) = n.connected(7402);
    let event = Event::new();
    n.p.event_select(s, Some(event), FD_READ).unwrap();
    assert_eq!(
        n.p.recv(s, &mut [0u8; 4]),
        Err(WsaError::WOULDBLOCK),
        "recv must not block"
    );
    let mut arg = 0u32;
    assert_eq!(n.p.ioctl(s, FIONBIO, &mut arg), Err(WsaError::INVAL));
    n.p.event_select(s, None, 0).unwrap();
    n.p.ioctl(s, FIONBIO, &mut arg).unwrap();

    // The peer reads nothing and has a 4 KiB window: most of these 32 KiB stay unacknowledged.
    let (t, _d) = n.connected(7403);
    n.p.send(t, &pattern(32 * 1024)).unwrap();
    n.linger(t, 1, 10);
    n.p.event_select(t, Some(Event::new()), FD_CLOSE).unwrap();
    // A blocking close would wait here and then return 0 with a RST.
    assert_eq!(n.p.close_socket(t), Err(WsaError::WOULDBLOCK));
    // Nothing changed: the descriptor is still a socket, still lingering, still selected.
    assert_eq!(
        get_linger(&n, t),
        Linger {
            onoff: 1,
            linger: 10
        }
    );
    assert_eq!(n.p.ioctl(t, FIONBIO, &mut arg), Err(WsaError::INVAL));
    // Done: abort it.
    n.linger(t, 1, 0);
    assert_eq!(n.p.close_socket(t), Ok(()));
}
