//! The Rust API (net, tokio, the poll layer) between two engines on the in-memory link: what
//! can be checked without privileges. The wire evidence against the kernel is in the root
//! crate's tests/tap_rust_net.rs and tests/tap_rust_tokio.rs.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use lingerstack_stack::net::{TcpListener, TcpStream};
use lingerstack_stack::{CloseOutcome, CloseReason, MemoryLink, Stack, StackError};

const A: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

/// Two engines joined by an in-memory cable, started with the builder: (server, client).
fn pair() -> (Stack, Stack) {
    let _ = env_logger::builder().is_test(true).try_init();
    let (la, lb) = MemoryLink::pair(1500);
    let a = Stack::builder()
        .ipv4(A, 24)
        .mac([2, 0, 0, 0, 0, 1])
        .start(la)
        .unwrap();
    let b = Stack::builder().ipv4(B, 24).start(lb).unwrap();
    (a, b)
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(A.into(), port)
}

/// Bytes enough to fill the peer's receive buffer and our send buffer (256 KiB each).
const FILL: usize = 600_000;

/// A connection from `b` to `a` whose server side never reads: (client, server's end).
fn connected(a: &Stack, b: &Stack, port: u16) -> (TcpStream, TcpStream) {
    let l = TcpListener::bind(a, addr(port)).unwrap();
    let c = TcpStream::connect(b, addr(port)).unwrap();
    let (s, peer) = l.accept().unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    (c, s)
}

/// Fill the connection until the peer's window is shut and our send buffer is full: writes
/// that would block five times in a row, 50 ms apart.
fn fill(c: &TcpStream) {
    c.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let (mut sent, mut stalls) = (0, 0);
    while stalls < 5 {
        match (&*c).write(&chunk) {
            Ok(n) => (sent, stalls) = (sent + n, 0),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                stalls += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(sent >= 300_000, "only {sent} bytes went in");
    c.set_nonblocking(false).unwrap();
}

#[test]
fn every_stack_error_has_an_io_kind_and_rides_along() {
    use StackError::*;
    let all = [
        WouldBlock,
        NotSocket,
        InvalidState,
        InvalidInput,
        AddrInUse,
        AddrNotAvail,
        AfNotSupported,
        ConnRefused,
        ConnReset,
        ConnAborted,
        TimedOut,
        NotConnected,
        IsConnected,
        Already,
        Shutdown,
        Interrupted,
        OperationAborted,
        NetworkDown,
        NoBuffers,
    ];
    let spec = [
        (ConnRefused, ErrorKind::ConnectionRefused),
        (ConnReset, ErrorKind::ConnectionReset),
        (ConnAborted, ErrorKind::ConnectionAborted),
        (TimedOut, ErrorKind::TimedOut),
        (AddrInUse, ErrorKind::AddrInUse),
        (AddrNotAvail, ErrorKind::AddrNotAvailable),
        (NotConnected, ErrorKind::NotConnected),
        (WouldBlock, ErrorKind::WouldBlock),
        (InvalidInput, ErrorKind::InvalidInput),
        (Shutdown, ErrorKind::BrokenPipe),
        (NetworkDown, ErrorKind::NetworkDown),
    ];
    for (e, kind) in spec {
        assert_eq!(std::io::Error::from(e).kind(), kind, "{e:?}");
    }
    for e in all {
        let io = std::io::Error::from(e);
        assert_ne!(io.kind(), ErrorKind::Other, "{e:?}");
        let back = io.get_ref().and_then(|p| p.downcast_ref::<StackError>());
        assert_eq!(back, Some(&e));
    }
}

#[test]
fn net_close_outcomes_by_linger() {
    let (a, b) = pair();
    // Default: FIN in the background.
    let (c, _s) = connected(&a, &b, 7001);
    assert_eq!(c.close().unwrap(), CloseOutcome::Background);
    // Linger 0: reset.
    let (c, mut s) = connected(&a, &b, 7002);
    c.set_linger(Some(Duration::ZERO)).unwrap();
    assert_eq!(
        c.close().unwrap(),
        CloseOutcome::Reset(CloseReason::LocalAbort)
    );
    let mut buf = [0u8; 8];
    assert_eq!(
        s.read(&mut buf).unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );
    // Unread data: reset whatever the linger.
    let (mut c, s) = connected(&a, &b, 7003);
    c.write_all(b"unread").unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while s.peek(&mut buf).unwrap() < 6 && Instant::now() < end {}
    assert_eq!(
        s.close().unwrap(),
        CloseOutcome::Reset(CloseReason::UnreadData)
    );
    // try_clone: only the last handle acts.
    let (c, _s) = connected(&a, &b, 7004);
    let c2 = c.try_clone().unwrap();
    assert_eq!(c.close().unwrap(), CloseOutcome::Nothing);
    assert_eq!(c2.close().unwrap(), CloseOutcome::Background);
}

#[test]
fn net_lingering_close_resets_at_d_or_finishes() {
    let (a, b) = pair();
    let (c, _s) = connected(&a, &b, 7011);
    fill(&c);
    c.set_linger(Some(Duration::from_millis(300))).unwrap();
    let t0 = Instant::now();
    assert_eq!(
        c.close().unwrap(),
        CloseOutcome::Reset(CloseReason::LingerTimeout)
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(290),
        "{:?}",
        t0.elapsed()
    );

    // Non-blocking: at once, in the background.
    let (c, _s) = connected(&a, &b, 7012);
    fill(&c);
    c.set_linger(Some(Duration::from_millis(300))).unwrap();
    c.set_nonblocking(true).unwrap();
    let t0 = Instant::now();
    assert_eq!(c.close().unwrap(), CloseOutcome::Background);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());

    // The peer reads everything: the close finishes.
    let (mut c, mut s) = connected(&a, &b, 7013);
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        s.read_to_end(&mut all).map(|_| all.len())
    });
    c.write_all(&vec![1u8; FILL]).unwrap();
    c.set_linger(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(c.close().unwrap(), CloseOutcome::Finished);
    assert_eq!(reader.join().unwrap().unwrap(), FILL);
}

/// A stream keeps its engine running after the last `Stack` handle is gone.
#[test]
fn sockets_keep_the_engine_alive() {
    let (a, b) = pair();
    let (mut c, s) = connected(&a, &b, 7021);
    drop((a, b));
    c.write_all(b"still running").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    (&s).read_to_string(&mut got).unwrap();
    assert_eq!(got, "still running");
}

#[cfg(feature = "tokio")]
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// On a current_thread runtime: a lingering close waits in the engine while another task
/// ticks; then the reset outcome.
#[cfg(feature = "tokio")]
#[test]
fn tokio_lingering_close_leaves_the_runtime_free() {
    use lingerstack_stack::tokio as ltokio;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::AsyncWriteExt;

    let (a, b) = pair();
    current_thread().block_on(async {
        let l = ltokio::TcpListener::bind(&a, addr(7031)).await.unwrap();
        let mut c = ltokio::TcpStream::connect(&b, addr(7031)).await.unwrap();
        let (_s, _) = l.accept().await.unwrap();
        // Fill the peer's window (nobody reads on the other side).
        let chunk = vec![3u8; 64 * 1024];
        let mut sent = 0;
        while sent < FILL {
            match tokio::time::timeout(Duration::from_millis(500), c.write(&chunk)).await {
                Ok(n) => sent += n.unwrap(),
                Err(_) => break, // shut: the write waits in the engine
            }
        }
        c.set_linger(Some(Duration::from_millis(500))).unwrap();
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let outcome = c.close().await.unwrap();
        ticker.abort();
        assert_eq!(outcome, CloseOutcome::Reset(CloseReason::LingerTimeout));
        let n = ticks.load(Ordering::Relaxed);
        assert!(n >= 10, "only {n} ticks during a 0.5 s close");
    });
}

/// Many tasks reading and writing at once on one thread, over the poll layer.
#[cfg(feature = "tokio")]
#[test]
fn tokio_many_connections_on_one_thread() {
    use lingerstack_stack::tokio as ltokio;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (a, b) = pair();
    current_thread().block_on(async {
        let l = ltokio::TcpListener::bind(&a, addr(7041)).await.unwrap();
        let server = tokio::spawn(async move {
            let mut tasks = Vec::new();
            for _ in 0..20 {
                let (s, _) = l.accept().await.unwrap();
                tasks.push(tokio::spawn(async move {
                    let (mut rd, mut wr) = s.into_split();
                    tokio::io::copy(&mut rd, &mut wr).await.unwrap()
                }));
            }
            for t in tasks {
                assert_eq!(t.await.unwrap(), 100_000);
            }
        });
        let mut clients = Vec::new();
        for i in 0..20u8 {
            let b = b.clone();
            clients.push(tokio::spawn(async move {
                let s = ltokio::TcpStream::connect(&b, addr(7041)).await.unwrap();
                let (mut rd, mut wr) = s.into_split();
                let data: Vec<u8> = (0..100_000u32).map(|j| (j as u8) ^ i).collect();
                let expect = data.clone();
                let writer = tokio::spawn(async move {
                    wr.write_all(&data).await.unwrap();
                    wr.shutdown().await.unwrap();
                });
                let mut back = Vec::new();
                rd.read_to_end(&mut back).await.unwrap();
                writer.await.unwrap();
                assert!(back == expect);
            }));
        }
        for c in clients {
            c.await.unwrap();
        }
        server.await.unwrap();
    });
}

/// The spec's promises about auto traits, checked at compile time.
#[test]
fn handles_are_send_sync_and_unpin() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn unpin<T: Unpin>() {}
    send_sync::<Stack>();
    send_sync::<TcpStream>();
    send_sync::<TcpListener>();
    #[cfg(feature = "tokio")]
    {
        use lingerstack_stack::tokio as t;
        send_sync::<t::TcpStream>();
        send_sync::<t::TcpListener>();
        send_sync::<t::OwnedReadHalf>();
        send_sync::<t::OwnedWriteHalf>();
        unpin::<t::TcpStream>();
        unpin::<t::TcpListener>();
        unpin::<t::OwnedReadHalf>();
        unpin::<t::OwnedWriteHalf>();
    }
    unpin::<TcpStream>();
}
