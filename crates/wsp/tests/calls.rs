//! The other WSP calls: bad input, select, events, accept conditions, non-blocking connect.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use lingerstack_stack::CloseMode;
use lingerstack_wsp::consts::*;
use lingerstack_wsp::{Event, MessageSink, WsaError};

#[test]
fn bad_input_gets_windows_errors() {
    let n = net();
    assert_eq!(
        n.p.socket(99, SOCK_STREAM, 0),
        Err(WsaError(WSAEAFNOSUPPORT))
    );
    assert_eq!(n.p.socket(AF_INET, 2, 0), Err(WsaError(WSAESOCKTNOSUPPORT)));
    assert_eq!(
        n.p.socket(AF_INET, SOCK_STREAM, 17),
        Err(WsaError(WSAEPROTONOSUPPORT))
    );
    let s = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let mut buf = [0u8; 8];
    let mut arg = 0u32;
    assert_eq!(n.p.recv(s, &mut buf), Err(WsaError::NOTCONN));
    assert_eq!(n.p.send(s, b"x"), Err(WsaError::NOTCONN));
    assert_eq!(n.p.shutdown(s, 7), Err(WsaError::INVAL));
    assert_eq!(n.p.shutdown(s, SD_SEND), Err(WsaError::NOTCONN));
    assert_eq!(
        n.p.connect(s, "10.8.0.2:0".parse().unwrap()),
        Err(WsaError(WSAEADDRNOTAVAIL))
    );
    assert_eq!(
        n.p.connect(s, "[fd00::1]:80".parse().unwrap()),
        Err(WsaError::AFNOSUPPORT)
    );
    assert_eq!(
        n.p.bind(s, "10.99.0.1:80".parse().unwrap()),
        Err(WsaError(WSAEADDRNOTAVAIL))
    );
    assert_eq!(n.p.listen(s, 5), Err(WsaError::INVAL), "listen before bind");
    assert_eq!(n.p.accept(s, None).unwrap_err(), WsaError::INVAL);
    assert_eq!(
        n.p.get_sock_opt(s, SOL_SOCKET, 0x7777, &mut buf),
        Err(WsaError::NOPROTOOPT)
    );
    assert_eq!(
        n.p.get_sock_opt(s, 1234, SO_LINGER, &mut buf),
        Err(WsaError::INVAL)
    );
    assert_eq!(
        n.p.set_sock_opt(s, SOL_SOCKET, SO_RCVBUF, Some(&[1, 0])),
        Err(WsaError::FAULT)
    );
    assert_eq!(
        n.p.set_sock_opt(s, SOL_SOCKET, SO_RCVBUF, Some(&(-5i32).to_ne_bytes())),
        Err(WsaError::INVAL)
    );
    assert_eq!(n.p.ioctl(s, 0x1234, &mut arg), Err(WsaError::INVAL));
    assert_eq!(n.p.get_peer_name(s), Err(WsaError::NOTCONN));
    assert_eq!(n.p.get_sock_name(s), Err(WsaError::INVAL));
    assert_eq!(n.p.event_select(s, None, FD_READ), Err(WsaError::INVAL));
    n.p.bind(s, SocketAddr::new(ME.into(), 0)).unwrap();
    assert!(n.p.get_sock_name(s).unwrap().port() >= 49152);
    let t = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let port = n.p.get_sock_name(s).unwrap().port();
    assert_eq!(
        n.p.bind(t, SocketAddr::new(ME.into(), port)),
        Err(WsaError(WSAEADDRINUSE))
    );
}

#[test]
fn options_report_what_was_set() {
    let n = net();
    let s = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let mut b = [0u8; 4];
    let get = |name: i32, level: i32, b: &mut [u8; 4]| {
        n.p.get_sock_opt(s, level, name, b).unwrap();
        i32::from_ne_bytes(*b)
    };
    n.p.set_sock_opt(s, SOL_SOCKET, SO_RCVBUF, Some(&8192i32.to_ne_bytes()))
        .unwrap();
    n.p.set_sock_opt(s, SOL_SOCKET, SO_SNDBUF, Some(&16384i32.to_ne_bytes()))
        .unwrap();
    n.p.set_sock_opt(s, IPPROTO_TCP, TCP_NODELAY, Some(&1i32.to_ne_bytes()))
        .unwrap();
    n.p.set_sock_opt(s, SOL_SOCKET, SO_KEEPALIVE, Some(&1i32.to_ne_bytes()))
        .unwrap();
    assert_eq!(get(SO_RCVBUF, SOL_SOCKET, &mut b), 8192);
    assert_eq!(get(SO_SNDBUF, SOL_SOCKET, &mut b), 16384);
    assert_eq!(get(TCP_NODELAY, IPPROTO_TCP, &mut b), 1);
    assert_eq!(get(SO_KEEPALIVE, SOL_SOCKET, &mut b), 1);
    assert_eq!(get(SO_TYPE, SOL_SOCKET, &mut b), SOCK_STREAM);
    assert_eq!(get(SO_ACCEPTCONN, SOL_SOCKET, &mut b), 0);
    assert_eq!(get(SO_ERROR, SOL_SOCKET, &mut b), 0);
    // The buffers apply to the connection made afterwards: the peer sees our 8 KiB window.
    let l = n.peer.open().unwrap();
    n.peer.bind(l, SocketAddr::new(PEER.into(), 7500)).unwrap();
    n.peer.listen(l, 1).unwrap();
    n.p.connect(s, SocketAddr::new(PEER.into(), 7500)).unwrap();
    let (c, _) = n.peer.accept(l, BLOCK).unwrap();
    n.peer
        .send(c, &pattern(100_000), lingerstack_stack::Wait::No)
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut readable = 0u32;
    n.p.ioctl(s, FIONREAD, &mut readable).unwrap();
    assert_eq!(readable, 8192, "FIONREAD shows a full 8 KiB receive buffer");
}

#[test]
fn nonblocking_connect_reports_fd_connect() {
    let n = net();
    let l = n.peer.open().unwrap();
    n.peer.bind(l, SocketAddr::new(PEER.into(), 7501)).unwrap();
    n.peer.listen(l, 1).unwrap();
    let s = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let event = Event::new();
    n.p.event_select(s, Some(event.clone()), FD_CONNECT | FD_WRITE)
        .unwrap();
    let addr = SocketAddr::new(PEER.into(), 7501);
    assert_eq!(n.p.connect(s, addr), Err(WsaError::WOULDBLOCK));
    assert!(event.wait(Duration::from_secs(5)));
    eventually("FD_CONNECT", || {
        let e = n.p.enum_network_events(s, None).unwrap();
        e.events & FD_CONNECT != 0 && e.errors[FD_CONNECT_BIT] == 0
    });
    assert_eq!(n.p.connect(s, addr), Err(WsaError(WSAEISCONN)));
    assert_eq!(n.p.get_peer_name(s).unwrap(), addr);
}

#[test]
fn refused_connect_reports_the_error() {
    let n = net();
    let s = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(
        n.p.connect(s, SocketAddr::new(PEER.into(), 9)),
        Err(WsaError::CONNREFUSED)
    );
    let t = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    n.p.event_select(t, Some(Event::new()), FD_CONNECT).unwrap();
    assert_eq!(
        n.p.connect(t, SocketAddr::new(PEER.into(), 9)),
        Err(WsaError::WOULDBLOCK)
    );
    eventually("FD_CONNECT with WSAECONNREFUSED", || {
        let e = n.p.enum_network_events(t, None).unwrap();
        e.events & FD_CONNECT != 0 && e.errors[FD_CONNECT_BIT] == WSAECONNREFUSED
    });
}

#[test]
fn select_waits_for_readiness_and_times_out() {
    let n = net();
    let (s, c) = n.connected(7502);
    let (mut r, mut w, mut e) = (vec![s], vec![], vec![]);
    assert_eq!(
        n.p.select(&mut r, &mut w, &mut e, Some(Duration::from_millis(200)))
            .unwrap(),
        0
    );
    assert!(r.is_empty());
    let peer = n.peer.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        peer.send(c, b"wake", BLOCK).unwrap();
    });
    let (mut r, mut w, mut e) = (vec![s], vec![s], vec![]);
    let ready =
        n.p.select(&mut r, &mut w, &mut e, Some(Duration::from_secs(5)))
            .unwrap();
    assert!(ready >= 1 && w == vec![s], "writable at once: {w:?}");
    let (mut r, mut w, mut e) = (vec![s], vec![], vec![]);
    assert_eq!(
        n.p.select(&mut r, &mut w, &mut e, Some(Duration::from_secs(5)))
            .unwrap(),
        1
    );
    assert_eq!(r, vec![s]);
    assert_eq!(
        n.p.select(&mut vec![0x999], &mut vec![], &mut vec![], None),
        Err(WsaError::NOTSOCK)
    );
}

#[test]
fn accept_condition_can_reject() {
    let n = net();
    let l = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    n.p.bind(l, SocketAddr::new(ME.into(), 7503)).unwrap();
    n.p.listen(l, SOMAXCONN).unwrap();
    let mut arg = 0u32;
    let mut b = [0u8; 4];
    n.p.get_sock_opt(l, SOL_SOCKET, SO_ACCEPTCONN, &mut b)
        .unwrap();
    assert_eq!(i32::from_ne_bytes(b), 1);
    let c = n.peer.open().unwrap();
    n.peer
        .connect(c, SocketAddr::new(ME.into(), 7503), BLOCK)
        .unwrap();
    let mut seen = None;
    let mut reject = |from: SocketAddr| {
        seen = Some(from);
        CF_REJECT
    };
    assert_eq!(
        n.p.accept(l, Some(&mut reject)).unwrap_err(),
        WsaError::CONNREFUSED
    );
    assert_eq!(seen.unwrap().ip(), std::net::IpAddr::V4(PEER));
    assert_eq!(
        n.peer.recv(c, 4, BLOCK),
        Err(lingerstack_stack::StackError::ConnReset)
    );
    let d = n.peer.open().unwrap();
    n.peer
        .connect(d, SocketAddr::new(ME.into(), 7503), BLOCK)
        .unwrap();
    let mut accept = |_| CF_ACCEPT;
    let (s, _) = n.p.accept(l, Some(&mut accept)).unwrap();
    n.p.ioctl(s, FIONREAD, &mut arg).unwrap();
    assert_eq!(arg, 0);
}

#[derive(Default)]
struct Messages(Mutex<Vec<(usize, i32, i32)>>);
impl MessageSink for Messages {
    fn post(&self, socket: usize, event: i32, error: i32) {
        self.0.lock().unwrap().push((socket, event, error));
    }
}

#[test]
fn async_select_posts_messages() {
    let n = net();
    let (s, c) = n.connected(7504);
    let sink = Arc::new(Messages::default());
    n.p.async_select(s, Some(sink.clone()), FD_READ | FD_CLOSE)
        .unwrap();
    n.peer.send(c, b"hi", BLOCK).unwrap();
    n.peer
        .close(c, CloseMode::Graceful { deadline: None })
        .unwrap();
    eventually("FD_READ posted", || {
        sink.0.lock().unwrap().contains(&(s, FD_READ, 0))
    });
    let mut buf = [0u8; 8];
    assert_eq!(n.p.recv(s, &mut buf).unwrap(), 2);
    eventually("FD_CLOSE posted", || {
        sink.0.lock().unwrap().contains(&(s, FD_CLOSE, 0))
    });
    assert_eq!(n.p.recv(s, &mut buf).unwrap(), 0);
}

#[test]
fn overlapped_result_waits() {
    let n = net();
    let (s, c) = n.connected(7505);
    let ov = lingerstack_wsp::Overlapped::new(lingerstack_wsp::Completion::Poll);
    n.p.recv_overlapped(s, 64, &ov).unwrap_err();
    let peer = n.peer.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        peer.send(c, b"overlapped", BLOCK).unwrap();
    });
    assert_eq!(n.p.get_overlapped_result(s, &ov, true), Ok(10));
    assert_eq!(ov.take_data(), b"overlapped");
}

/// A huge SO_RCVBUF is clamped (and reported as clamped), never passed on to smoltcp, which
/// would refuse it by panicking the engine thread.
#[test]
fn huge_buffer_sizes_are_clamped() {
    let n = net();
    let s = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    n.p.set_sock_opt(s, SOL_SOCKET, SO_RCVBUF, Some(&i32::MAX.to_ne_bytes()))
        .unwrap();
    let mut b = [0u8; 4];
    n.p.get_sock_opt(s, SOL_SOCKET, SO_RCVBUF, &mut b).unwrap();
    assert_eq!(i32::from_ne_bytes(b), 64 << 20);
    let (t, _c) = n.connected(7600);
    n.p.send(t, b"still alive").unwrap();
    let l = n.peer.open().unwrap();
    n.peer.bind(l, SocketAddr::new(PEER.into(), 7601)).unwrap();
    n.peer.listen(l, 1).unwrap();
    n.p.connect(s, SocketAddr::new(PEER.into(), 7601)).unwrap();
}

/// After the network goes down, an overlapped call still completes (with WSAENETDOWN).
#[test]
fn overlapped_call_after_network_down_completes() {
    let n = net();
    let (s, _c) = n.connected(7602);
    n.remove_device();
    eventually("engine down", || {
        n.p.socket(AF_INET, SOCK_STREAM, 0) == Err(WsaError::NETDOWN)
    });
    let ov = lingerstack_wsp::Overlapped::new(lingerstack_wsp::Completion::Poll);
    let _ = n.p.recv_overlapped(s, 10, &ov);
    assert!(
        ov.wait(Duration::from_secs(5)),
        "the operation never completed"
    );
    assert_eq!(ov.status().0, WSAENETDOWN);
}

/// An accepted socket is writable for select at once, every time.
#[test]
fn accepted_socket_is_writable_for_select() {
    let n = net();
    let l = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    n.p.bind(l, SocketAddr::new(ME.into(), 7603)).unwrap();
    n.p.listen(l, 8).unwrap();
    for _ in 0..10 {
        let c = n.peer.open().unwrap();
        n.peer
            .connect(c, SocketAddr::new(ME.into(), 7603), BLOCK)
            .unwrap();
        let (s, _) = n.p.accept(l, None).unwrap();
        let (mut r, mut w, mut e) = (vec![], vec![s], vec![]);
        assert_eq!(
            n.p.select(&mut r, &mut w, &mut e, Some(Duration::from_secs(2)))
                .unwrap(),
            1
        );
        n.p.close_socket(s).unwrap();
    }
}

/// select does not call a socket with a full send buffer writable.
#[test]
fn full_send_buffer_is_not_writable() {
    let n = net_with(4096);
    let (s, _c) = n.connected(7604);
    n.nonblocking(s, true);
    // Fill the buffer, let the peer's 4 KiB window take what it can, and fill it again: now
    // nothing will be acknowledged.
    for _ in 0..2 {
        while n.p.send(s, &pattern(16 * 1024)).is_ok() {}
        std::thread::sleep(Duration::from_millis(200));
    }
    while n.p.send(s, &pattern(16 * 1024)).is_ok() {}
    let (mut r, mut w, mut e) = (vec![], vec![s], vec![]);
    assert_eq!(
        n.p.select(&mut r, &mut w, &mut e, Some(Duration::from_millis(300)))
            .unwrap(),
        0
    );
    assert_eq!(
        n.p.select(&mut vec![], &mut vec![], &mut vec![], None),
        Err(WsaError::INVAL)
    );
}

struct CleanupFromCallback(
    lingerstack_wsp::Provider,
    Mutex<Option<Result<(), WsaError>>>,
);
impl MessageSink for CleanupFromCallback {
    fn post(&self, _socket: usize, _event: i32, _error: i32) {
        let mut slot = self.1.lock().unwrap();
        if slot.is_none() {
            *slot = Some(self.0.cleanup());
        }
    }
}

/// WSPCleanup works from inside a provider callback (C21: only a blocking close is refused).
#[test]
fn cleanup_from_a_callback() {
    let n = net();
    let (s, c) = n.connected(7605);
    let sink = Arc::new(CleanupFromCallback(n.p.clone(), Mutex::new(None)));
    n.p.async_select(s, Some(sink.clone()), FD_READ).unwrap();
    n.peer.send(c, b"go", BLOCK).unwrap();
    eventually("callback ran", || sink.1.lock().unwrap().is_some());
    assert_eq!(sink.1.lock().unwrap().take(), Some(Ok(())));
    assert_eq!(
        n.p.socket(AF_INET, SOCK_STREAM, 0),
        Err(WsaError::NOTINITIALISED)
    );
}
