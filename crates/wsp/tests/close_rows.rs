//! Close-contract rows that need no TAP, over the in-memory link (close-semantics.md).
//! Wire rows are proved against the kernel in tap_close.rs.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use lingerstack_stack::{CloseMode, StackError};
use lingerstack_testkit::Dir;
use lingerstack_testkit::trace::{Parsed, parse_frame};
use lingerstack_wsp::consts::*;
use lingerstack_wsp::{
    ApcQueue, Completion, CompletionPort, Event, EventObject, Overlapped, WsaError,
};

/// C01: a descriptor never issued.
#[test]
fn c01_unknown_descriptor_is_not_a_socket() {
    let n = net();
    assert_eq!(n.p.close_socket(0x4242), Err(WsaError::NOTSOCK));
    assert_eq!(n.p.close_socket(0), Err(WsaError::NOTSOCK));
    assert_eq!(n.p.close_socket(INVALID_SOCKET), Err(WsaError::NOTSOCK));
}

/// C02: a closed descriptor is dead for every call, and its number is not handed out again.
#[test]
fn c02_closed_descriptor_stays_dead() {
    let n = net();
    let (s, _c) = n.connected(5100);
    n.p.close_socket(s).unwrap();
    let mut buf = [0u8; 8];
    let mut arg = 0u32;
    assert_eq!(n.p.close_socket(s), Err(WsaError::NOTSOCK));
    assert_eq!(n.p.send(s, b"x"), Err(WsaError::NOTSOCK));
    assert_eq!(n.p.recv(s, &mut buf), Err(WsaError::NOTSOCK));
    assert_eq!(
        n.p.set_sock_opt(s, SOL_SOCKET, SO_LINGER, Some(&[0; 4])),
        Err(WsaError::NOTSOCK)
    );
    assert_eq!(
        n.p.get_sock_opt(s, SOL_SOCKET, SO_LINGER, &mut buf),
        Err(WsaError::NOTSOCK)
    );
    assert_eq!(n.p.ioctl(s, FIONBIO, &mut arg), Err(WsaError::NOTSOCK));
    assert_eq!(n.p.shutdown(s, SD_BOTH), Err(WsaError::NOTSOCK));
    let fresh: Vec<usize> = (0..100)
        .map(|_| n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap())
        .collect();
    assert!(!fresh.contains(&s), "a closed number came back");
}

/// C13: closing a socket that never connected (fresh, or only bound) sends nothing: no frame
/// at all leaves the provider's end of the cable. The port is free again afterwards. As a
/// control, the recorder does see the SYN of a connect made afterwards.
#[test]
fn c13_unconnected_close_sends_nothing() {
    let n = net();
    n.record_frames();
    let a = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let b = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    n.p.bind(b, SocketAddr::new(ME.into(), 6000)).unwrap();
    n.p.close_socket(a).unwrap();
    n.p.close_socket(b).unwrap();
    thread::sleep(Duration::from_millis(200));
    let sent = n.recorded_frames();
    assert!(sent.is_empty(), "{} frames left the provider", sent.len());
    // The port is free again.
    let c = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    n.p.bind(c, SocketAddr::new(ME.into(), 6000)).unwrap();
    // Control: a connect from that port is on the cable, so an empty record means silence.
    let l = n.peer.open().unwrap();
    n.peer.bind(l, SocketAddr::new(PEER.into(), 6001)).unwrap();
    n.peer.listen(l, 1).unwrap();
    n.p.connect(c, SocketAddr::new(PEER.into(), 6001)).unwrap();
    let syn_from_6000 = n.recorded_frames().iter().any(|f| {
        matches!(
            parse_frame(f, Dir::FromStack, SystemTime::now(), Duration::ZERO),
            Parsed::Tcp(s) if s.flags.syn && s.src.port() == 6000
        )
    });
    assert!(
        syn_from_6000,
        "the recorder missed the SYN of the control connect"
    );
}

/// C16: blocking recv, send on a full buffer, accept and connect in other threads return
/// WSAEINTR promptly when the socket is closed.
#[test]
fn c16_blocked_calls_return_wsaeintr() {
    let n = net_with(4096);
    let (s, _c) = n.connected(5101);
    let l = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    n.p.bind(l, SocketAddr::new(ME.into(), 5102)).unwrap();
    n.p.listen(l, 1).unwrap();
    let (s2, _c2) = n.connected(5103);
    n.linger(s2, 1, 0);
    let spawn = |f: Box<dyn FnOnce() -> Result<usize, WsaError> + Send>| thread::spawn(f);
    let (p1, p2, p3) = (n.p.clone(), n.p.clone(), n.p.clone());
    let recv = spawn(Box::new(move || p1.recv(s, &mut [0u8; 8])));
    let accept = spawn(Box::new(move || p2.accept(l, None).map(|(d, _)| d)));
    // The peer does not read and has a 4 KiB window: this send blocks on a full buffer.
    let big = pattern(512 * 1024);
    let send = spawn(Box::new(move || p3.send(s2, &big)));
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    n.p.close_socket(s).unwrap();
    n.p.close_socket(l).unwrap();
    n.p.close_socket(s2).unwrap();
    for (what, h) in [("recv", recv), ("accept", accept), ("send", send)] {
        assert_eq!(h.join().unwrap(), Err(WsaError::INTR), "{what}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

/// C16 for connect: a blocking connect to an address that never answers fails with WSAEINTR
/// when another thread closes the socket (C14's API half).
#[test]
fn c16_blocked_connect_returns_wsaeintr() {
    let n = net();
    let s = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let p = n.p.clone();
    // Nobody has 10.8.0.77: ARP goes unanswered, the connect waits.
    let h = thread::spawn(move || p.connect(s, "10.8.0.77:80".parse().unwrap()));
    thread::sleep(Duration::from_millis(300));
    n.p.close_socket(s).unwrap();
    assert_eq!(h.join().unwrap(), Err(WsaError::INTR));
}

/// C17: each pending overlapped operation completes exactly once with WSA_OPERATION_ABORTED
/// through the completion it asked for: event, completion routine, completion port.
#[test]
fn c17_overlapped_operations_abort_once_each_way() {
    let n = net();
    let (s, _c) = n.connected(5104);
    let event = Event::new();
    let by_event = Overlapped::new(Completion::Event(event.clone()));
    let routine_calls = Arc::new(Mutex::new(Vec::new()));
    let calls = routine_calls.clone();
    let queue = ApcQueue::current();
    let by_routine = Overlapped::new(Completion::Routine(
        queue.clone(),
        Box::new(move |err, bytes, _| calls.lock().unwrap().push((err, bytes))),
    ));
    let port = CompletionPort::new();
    let by_port = Overlapped::new(Completion::Port(port.clone(), 77));
    for ov in [&by_event, &by_routine, &by_port] {
        assert_eq!(n.p.recv_overlapped(s, 100, ov), Err(WsaError::IO_PENDING));
    }
    thread::sleep(Duration::from_millis(100));
    assert!(by_event.is_pending() && by_routine.is_pending() && by_port.is_pending());
    assert_eq!(
        n.p.get_overlapped_result(s, &by_event, false),
        Err(WsaError::IO_INCOMPLETE)
    );
    n.p.close_socket(s).unwrap();
    assert!(event.wait(Duration::from_secs(2)), "event not signalled");
    assert_eq!(by_event.status(), (WSA_OPERATION_ABORTED, 0));
    let packet = port
        .get(Duration::from_secs(2))
        .expect("no completion packet");
    assert_eq!(
        (packet.key, packet.error, packet.bytes),
        (77, WSA_OPERATION_ABORTED, 0)
    );
    assert!(
        port.get(Duration::from_millis(200)).is_none(),
        "a second packet"
    );
    assert_eq!(queue.wait_alertable(Duration::from_secs(2)), 1);
    assert_eq!(
        queue.wait_alertable(Duration::from_millis(200)),
        0,
        "a second routine"
    );
    assert_eq!(
        *routine_calls.lock().unwrap(),
        vec![(WSA_OPERATION_ABORTED, 0)]
    );
    assert_eq!(n.p.pending_operations(), 0);
}

/// C17: a send whose bytes were all queued had completed already; a send still waiting for
/// room reports the bytes it had queued.
#[test]
fn c17_waiting_send_reports_queued_bytes() {
    let n = net_with(4096);
    let (s, _c) = n.connected(5105);
    let first = Overlapped::new(Completion::Poll);
    n.p.send_overlapped(s, &pattern(1000), &first).unwrap_err();
    assert!(first.wait(Duration::from_secs(2)));
    assert_eq!(first.status(), (0, 1000));
    let big = Overlapped::new(Completion::Poll);
    n.p.send_overlapped(s, &pattern(1 << 20), &big).unwrap_err();
    thread::sleep(Duration::from_millis(300));
    assert!(big.is_pending());
    n.p.close_socket(s).unwrap();
    assert!(big.wait(Duration::from_secs(2)));
    let (err, bytes) = big.status();
    assert_eq!(err, WSA_OPERATION_ABORTED);
    assert!(bytes > 0 && bytes < 1 << 20, "queued {bytes}");
}

struct CountingEvent(Mutex<u32>);
impl EventObject for CountingEvent {
    fn set(&self) {
        *self.0.lock().unwrap() += 1;
    }
    fn reset(&self) {}
}

/// C18: once close begins nothing is recorded or posted for the descriptor, FD_CLOSE
/// included; enumerating fails with WSAENOTSOCK. Control: before the close, the peer's data
/// does signal the event and record FD_READ, so the silence after it is the close's doing.
#[test]
fn c18_no_events_after_close() {
    let n = net();
    let (s, c) = n.connected(5106);
    let event = Arc::new(CountingEvent(Mutex::new(0)));
    n.p.event_select(s, Some(event.clone()), FD_READ | FD_CLOSE)
        .unwrap();
    n.peer.send(c, b"early data", BLOCK).unwrap();
    eventually("FD_READ signalled for the early data", || {
        *event.0.lock().unwrap() > 0
    });
    let ne = n.p.enum_network_events(s, None).unwrap();
    assert_eq!(ne.events, FD_READ, "{ne:?}");
    // Read it all: unread data would make the close a reset (C12), not the graceful close here.
    let mut buf = [0u8; 32];
    assert_eq!(n.p.recv(s, &mut buf), Ok(10));
    thread::sleep(Duration::from_millis(100));
    let before = *event.0.lock().unwrap();
    n.p.close_socket(s).unwrap();
    let _ = n.peer.send(c, b"late data", BLOCK);
    let _ = n.peer.close(c, CloseMode::Graceful { deadline: None });
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        *event.0.lock().unwrap(),
        before,
        "an event was signalled after close"
    );
    assert_eq!(
        n.p.enum_network_events(s, None).unwrap_err(),
        WsaError::NOTSOCK
    );
}

/// C19: closing one of two descriptors of a socket sends nothing and aborts nothing; the last
/// close applies the linger mode.
#[test]
fn c19_duplicates_share_one_socket() {
    let n = net();
    let (s, c) = n.connected(5107);
    let info = n.p.duplicate_socket(s).unwrap();
    let d = n.p.socket_from_info(&info).unwrap();
    assert_ne!(d, s);
    assert!(n.p.same_socket(s, d).unwrap());
    let pending = Overlapped::new(Completion::Poll);
    n.p.recv_overlapped(s, 100, &pending).unwrap_err();
    n.linger(d, 1, 0); // options belong to the socket: seen through `s` too
    let mut buf = [0u8; 4];
    n.p.get_sock_opt(s, SOL_SOCKET, SO_LINGER, &mut buf)
        .unwrap();
    assert_eq!(lingerstack_wsp::Linger::from_bytes(buf).onoff, 1);
    n.p.close_socket(s).unwrap();
    thread::sleep(Duration::from_millis(200));
    assert!(
        pending.is_pending(),
        "closing one reference aborted an operation"
    );
    n.peer.send(c, b"ping", BLOCK).unwrap();
    assert!(pending.wait(Duration::from_secs(2)));
    assert_eq!(pending.take_data(), b"ping");
    n.p.send(d, b"pong").unwrap();
    assert_eq!(n.peer.recv(c, 10, BLOCK).unwrap(), b"pong");
    // The last close applies linger {1,0}: the peer sees a reset.
    n.p.close_socket(d).unwrap();
    assert_eq!(n.peer.recv(c, 10, BLOCK), Err(StackError::ConnReset));
}

/// C20: while a blocking linger close waits, every call on the descriptor (close included)
/// gets WSAEINPROGRESS; after it returns, WSAENOTSOCK.
#[test]
fn c20_calls_during_blocking_close_are_in_progress() {
    let n = net_with(4096);
    let (s, _c) = n.connected(5108);
    n.p.send(s, &pattern(32 * 1024)).unwrap();
    n.linger(s, 1, 2);
    let p = n.p.clone();
    let closer = thread::spawn(move || p.close_socket(s));
    thread::sleep(Duration::from_millis(300));
    let mut buf = [0u8; 4];
    assert_eq!(n.p.send(s, b"x"), Err(WsaError::INPROGRESS));
    assert_eq!(
        n.p.get_sock_opt(s, SOL_SOCKET, SO_LINGER, &mut buf),
        Err(WsaError::INPROGRESS)
    );
    assert_eq!(n.p.close_socket(s), Err(WsaError::INPROGRESS));
    assert_eq!(closer.join().unwrap(), Ok(()));
    assert_eq!(n.p.send(s, b"x"), Err(WsaError::NOTSOCK));
}

/// C21: a close that would block, called from inside a provider callback, fails with
/// WSAEINPROGRESS and changes nothing; other calls work from callbacks.
#[test]
fn c21_blocking_close_inside_callback_is_refused() {
    let n = net();
    let (s, c) = n.connected(5109);
    n.linger(s, 1, 5);
    let result = Arc::new(Mutex::new(None));
    let (p, r) = (n.p.clone(), result.clone());
    let routine_queue = ApcQueue::current();
    let ov = Overlapped::new(Completion::Custom(Box::new(move |_, _, _| {
        let close = p.close_socket(s);
        let send = p.send(s, b"from callback");
        *r.lock().unwrap() = Some((close, send));
    })));
    n.p.recv_overlapped(s, 10, &ov).unwrap_err();
    n.peer.send(c, b"wake", BLOCK).unwrap();
    eventually("callback ran", || result.lock().unwrap().is_some());
    let (close, send) = result.lock().unwrap().take().unwrap();
    assert_eq!(close, Err(WsaError::INPROGRESS));
    assert_eq!(send, Ok(13));
    assert_eq!(n.peer.recv(c, 100, BLOCK).unwrap(), b"from callback");
    drop(routine_queue);
    // Outside the callback the same close works.
    n.p.close_socket(s).unwrap();
}

/// C22: with the network down (the link's other end gone, the engine stopped), close gives
/// WSAENETDOWN, releases the descriptor, and no thread hangs.
#[test]
fn c22_network_down_releases_descriptors() {
    let n = net();
    let (s, _c) = n.connected(5110);
    let (s2, _c2) = n.connected(5111);
    let p = n.p.clone();
    let blocked = thread::spawn(move || p.recv(s2, &mut [0u8; 4]));
    thread::sleep(Duration::from_millis(100));
    n.remove_device();
    assert_eq!(blocked.join().unwrap(), Err(WsaError::NETDOWN));
    assert_eq!(n.p.close_socket(s), Err(WsaError::NETDOWN));
    assert_eq!(n.p.close_socket(s), Err(WsaError::NOTSOCK));
    assert_eq!(n.p.socket(AF_INET, SOCK_STREAM, 0), Err(WsaError::NETDOWN));
}

/// C23: after the last cleanup every call fails with WSANOTINITIALISED, open connections are
/// reset and pending overlapped operations are dropped without being signalled.
#[test]
fn c23_cleanup_resets_and_invalidates() {
    let n = net();
    let (s, c) = n.connected(5112);
    let event = Event::new();
    let ov = Overlapped::new(Completion::Event(event.clone()));
    n.p.recv_overlapped(s, 10, &ov).unwrap_err();
    n.p.cleanup().unwrap();
    assert_eq!(n.peer.recv(c, 10, BLOCK), Err(StackError::ConnReset));
    assert_eq!(n.p.close_socket(s), Err(WsaError::NOTINITIALISED));
    assert_eq!(
        n.p.socket(AF_INET, SOCK_STREAM, 0),
        Err(WsaError::NOTINITIALISED)
    );
    assert_eq!(n.p.cleanup(), Err(WsaError::NOTINITIALISED));
    assert!(
        !event.wait(Duration::from_millis(300)),
        "a cancelled operation was signalled"
    );
    // No descriptor of the earlier run is valid in a later one.
    let later = net();
    let fresh = later.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_ne!(fresh, s);
    assert_eq!(later.p.close_socket(s), Err(WsaError::NOTSOCK));
}

/// C25: 10,000 connections opened and closed in mixed modes leave no socket, descriptor or
/// operation behind.
#[test]
fn c25_ten_thousand_mixed_closes_leak_nothing() {
    let n = net();
    let l = n.peer.open().unwrap();
    n.peer.bind(l, SocketAddr::new(PEER.into(), 5200)).unwrap();
    n.peer.listen(l, 64).unwrap();
    let peer = n.peer.clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished = done.clone();
    let acceptor = thread::spawn(move || {
        let mut served = 0;
        // Aborted connections may be reset before they are accepted: the peer then never sees
        // them, so serve until the client is done and the backlog is drained.
        loop {
            match peer.accept(
                l,
                lingerstack_stack::Wait::Block(Some(Duration::from_millis(200))),
            ) {
                Ok((c, _)) => {
                    let _ = peer.recv(c, 16, BLOCK);
                    let _ = peer.close(c, CloseMode::Graceful { deadline: None });
                    served += 1;
                }
                Err(StackError::TimedOut) if finished.load(std::sync::atomic::Ordering::SeqCst) => {
                    return served;
                }
                Err(StackError::TimedOut) => {}
                Err(e) => panic!("peer accept failed: {e}"),
            }
        }
    });
    let rss_start = rss_kib();
    let started = Instant::now();
    for i in 0..10_000u32 {
        let s = n.p.socket(AF_INET, SOCK_STREAM, 0).unwrap();
        if let Err(e) = n.p.connect(s, SocketAddr::new(PEER.into(), 5200)) {
            panic!(
                "connect {i} failed after {:?}: {e}; peer {:?}",
                started.elapsed(),
                n.peer.counters()
            );
        }
        n.p.send(s, b"x").unwrap();
        match i % 3 {
            0 => {}
            1 => n.linger(s, 1, 0),
            _ => n.linger(s, 1, 5),
        }
        n.p.close_socket(s).unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    // Every graceful and lingering connection reached the peer (two in three).
    let served = acceptor.join().unwrap();
    assert!(served >= 6_667, "the peer served only {served}");
    assert_eq!(n.p.descriptor_count(), 0);
    assert_eq!(n.p.pending_operations(), 0);
    // TIME-WAIT lasts 10 s: then the set is empty.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let c = n.p.stack().counters().unwrap();
        let in_set: usize = c.sockets_by_state.values().sum();
        if c.open_ids == 0 && in_set == 0 {
            break;
        }
        assert!(
            Instant::now() < end,
            "sockets left behind: {:?}",
            c.sockets_by_state
        );
        thread::sleep(Duration::from_millis(100));
    }
    // Freed buffers go back to the allocator; ask it to return them to the system.
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    let rss_end = rss_kib();
    assert!(
        rss_end < rss_start + 64 * 1024,
        "memory grew from {rss_start} KiB to {rss_end} KiB"
    );
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}
