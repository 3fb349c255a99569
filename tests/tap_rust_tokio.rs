//! The async Rust face (`lingerstack::tokio`) against the Linux kernel of a private namespace
//! over a real TAP, each test on a `current_thread` runtime: every row of its linger table
//! (close().await and drop), the halves, shutdown, 10 MiB echoed, and its error kinds, with the
//! kernel-side capture and the kernel's own view as the evidence. Kernel-side reads and writes
//! run on plain threads, never on the runtime.
//!
//! Without root every test prints a SKIP line and passes; `LINGERSTACK_REQUIRE_TAP=1` makes
//! that a failure.

#[path = "common/rust_rig.rs"]
mod rig;

use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use lingerstack::tokio::{TcpListener, TcpStream};
use lingerstack::{CloseOutcome, CloseReason, StackError};
use lingerstack_testkit::{Dir, require_tap};
use rig::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Run `f` to completion on a fresh `current_thread` runtime: one thread for every task, so
/// anything that blocked it would stall the test.
fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A stack stream connected to a kernel listener on `port` whose accepted socket has
/// SO_RCVBUF `rcvbuf`: (stream, kernel end, stack port).
async fn connect(
    rig: &Rig,
    port: u16,
    rcvbuf: Option<usize>,
) -> (TcpStream, std::net::TcpStream, u16) {
    let listener = rig.kernel_listener(port, rcvbuf);
    let s = TcpStream::connect(&rig.stack, rig.kernel(port))
        .await
        .expect("connect to the kernel");
    let (k, from) = listener.accept().expect("kernel accept");
    bound_io(&k);
    let stack_port = s.local_addr().unwrap().port();
    assert_eq!(from.port(), stack_port);
    assert_eq!(s.peer_addr().unwrap(), rig.kernel(port));
    (s, k, stack_port)
}

/// A connection whose kernel window is shut with bytes still queued in the stack.
async fn stuck(rig: &Rig, port: u16) -> (TcpStream, std::net::TcpStream, u16) {
    let (mut s, k, stack_port) = connect(rig, port, SMALL_RCVBUF).await;
    s.write_all(&pattern(STUCK, 3)).await.unwrap();
    // The wait polls the engine from this thread; nothing else runs on the runtime yet.
    assert!(rig.wait_stalled(stack_port) > 0);
    (s, k, stack_port)
}

/// The kernel reads everything on its own thread.
fn kernel_reader(
    mut k: std::net::TcpStream,
) -> std::thread::JoinHandle<(Vec<u8>, Option<std::io::Error>)> {
    std::thread::spawn(move || kernel_read_all(&mut k))
}

/// Default close().await: resolves at once with queued data still in the stack; data then
/// FIN in the background; the kernel reads every byte and end of stream; no RST.
#[test]
fn tokio_default_close_sends_data_then_fin_at_once() {
    if !require_tap("tokio_default_close_sends_data_then_fin_at_once") {
        return;
    }
    let rig = Rig::start("rust-tokio-default");
    let data = pattern(200_000, 1);
    let (reader, returned) = run(async {
        let (mut s, mut k, port) = connect(&rig, 7201, Some(16 * 1024)).await;
        let reader =
            std::thread::spawn(move || kernel_read_paced(&mut k, 4096, Duration::from_millis(10)));
        s.write_all(&data).await.unwrap();
        let queued = rig.info(port).map_or(0, |i| i.send_queue);
        let t0 = Instant::now();
        assert_eq!(s.close().await.unwrap(), CloseOutcome::Background);
        assert!(t0.elapsed() < AT_ONCE, "close took {:?}", t0.elapsed());
        assert!(queued > 0, "nothing was queued at the close");
        (reader, SystemTime::now())
    });
    assert_kernel_read_all(reader.join().unwrap(), &data);
    assert_background_close(&rig.finish().conn(7201), &data, returned);
}

/// `Some(0)`, close().await: RST at once; the kernel reads ECONNRESET; no FIN.
#[test]
fn tokio_linger_zero_close_resets() {
    if !require_tap("tokio_linger_zero_close_resets") {
        return;
    }
    let rig = Rig::start("rust-tokio-linger0");
    let k = run(async {
        let (s, k, _) = stuck(&rig, 7202).await;
        s.set_linger(Some(Duration::ZERO)).unwrap();
        assert_eq!(
            s.close().await.unwrap(),
            CloseOutcome::Reset(CloseReason::LocalAbort)
        );
        k
    });
    let (got, err) = kernel_reader(k).join().unwrap();
    assert_eq!(
        kind(&err),
        Some(ErrorKind::ConnectionReset),
        "after {} bytes",
        got.len()
    );

    let trace = rig.finish().conn(7202);
    trace.assert(trace.has_rst(Dir::FromStack), "no RST from the stack");
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
}

/// `Some(d)`, close().await with the kernel reading: resolves `Finished` once every byte and
/// the FIN are acknowledged.
#[test]
fn tokio_linger_close_resolves_when_fin_acked() {
    if !require_tap("tokio_linger_close_resolves_when_fin_acked") {
        return;
    }
    let rig = Rig::start("rust-tokio-linger-finished");
    let data = pattern(100_000, 2);
    let (reader, called, returned) = run(async {
        let (mut s, mut k, _) = connect(&rig, 7203, Some(16 * 1024)).await;
        let reader =
            std::thread::spawn(move || kernel_read_paced(&mut k, 4096, Duration::from_millis(5)));
        s.write_all(&data).await.unwrap();
        s.set_linger(Some(Duration::from_secs(10))).unwrap();
        let called = SystemTime::now();
        assert_eq!(s.close().await.unwrap(), CloseOutcome::Finished);
        (reader, called, SystemTime::now())
    });
    let (got, err) = reader.join().unwrap();
    assert!(err.is_none(), "kernel read error: {err:?}");
    assert!(
        got == data,
        "kernel read {} of {} bytes",
        got.len(),
        data.len()
    );

    let trace = rig.finish().conn(7203);
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    let fin = assert_fin_after_data(&trace, data.len());
    trace.assert(fin.time > called, "FIN before the close");
    let fin_end = fin.seq.wrapping_add(fin.seq_len());
    let Some(ack) = kernel_ack_of(&trace, fin_end) else {
        trace.fail("the kernel never acknowledged the FIN")
    };
    trace.assert(
        ack.time <= returned,
        "close resolved before the FIN was acknowledged",
    );
}

/// `Some(d)`, close().await with the kernel's window shut, on a `current_thread` runtime with
/// another task ticking every 10 ms: the close resolves `Reset(LingerTimeout)` after `d`, the
/// RST leaves at `d`, and the ticker kept running all through the wait (a close that blocked
/// the runtime's only thread would have stopped it).
#[test]
fn tokio_lingering_close_lets_other_tasks_run() {
    if !require_tap("tokio_lingering_close_lets_other_tasks_run") {
        return;
    }
    let rig = Rig::start("rust-tokio-linger-timeout");
    let (k, called, returned, ticks) = run(async {
        let (s, k, _) = stuck(&rig, 7204).await;
        s.set_linger(Some(Duration::from_secs(1))).unwrap();
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
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::Relaxed);
        let called = SystemTime::now();
        let t0 = Instant::now();
        assert_eq!(
            s.close().await.unwrap(),
            CloseOutcome::Reset(CloseReason::LingerTimeout)
        );
        let took = t0.elapsed();
        let returned = SystemTime::now();
        let during = ticks.load(Ordering::Relaxed) - before;
        ticker.abort();
        assert!(
            took >= Duration::from_millis(980),
            "close resolved after {took:?}"
        );
        (k, called, returned, during)
    });
    eprintln!("{ticks} ticks of 10 ms during the 1 s lingering close");
    // 100 would be perfect; anything well above a handful shows the thread was free.
    assert!(ticks >= 20, "only {ticks} ticks during the lingering close");
    let (_, err) = kernel_reader(k).join().unwrap();
    assert_eq!(kind(&err), Some(ErrorKind::ConnectionReset));

    let trace = rig.finish().conn(7204);
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
    let rst = first_stack_rst(&trace);
    trace.assert(rst.time <= returned, "RST after the close resolved");
    assert_rst_at_deadline(&trace, rst, called, returned, 1.0);
}

/// Drop with `Some(0)`: RST at once; the kernel reads ECONNRESET.
#[test]
fn tokio_drop_linger_zero_resets() {
    if !require_tap("tokio_drop_linger_zero_resets") {
        return;
    }
    let rig = Rig::start("rust-tokio-drop0");
    let k = run(async {
        let (s, k, _) = stuck(&rig, 7205).await;
        s.set_linger(Some(Duration::ZERO)).unwrap();
        let t0 = Instant::now();
        drop(s);
        assert!(t0.elapsed() < AT_ONCE, "drop took {:?}", t0.elapsed());
        k
    });
    let (_, err) = kernel_reader(k).join().unwrap();
    assert_eq!(kind(&err), Some(ErrorKind::ConnectionReset));

    let trace = rig.finish().conn(7205);
    trace.assert(trace.has_rst(Dir::FromStack), "no RST from the stack");
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
}

/// Drop with `Some(d)`, the kernel's window shut: drop returns at once, and the engine resets
/// at `d` in the background.
#[test]
fn tokio_drop_linger_resets_at_d_in_background() {
    if !require_tap("tokio_drop_linger_resets_at_d_in_background") {
        return;
    }
    let rig = Rig::start("rust-tokio-drop-linger");
    let (k, called, returned) = run(async {
        let (s, k, _) = stuck(&rig, 7206).await;
        s.set_linger(Some(Duration::from_secs(1))).unwrap();
        let called = SystemTime::now();
        let t0 = Instant::now();
        drop(s);
        let took = t0.elapsed();
        assert!(took < AT_ONCE, "drop took {took:?}");
        (k, called, SystemTime::now())
    });
    // The window stays shut past `d`: a kernel that read now would let the close finish.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, err) = kernel_reader(k).join().unwrap();
    assert_eq!(kind(&err), Some(ErrorKind::ConnectionReset));

    let trace = rig.finish().conn(7206);
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
    let rst = first_stack_rst(&trace);
    assert_rst_at_deadline(&trace, rst, called, returned, 1.0);
}

/// Unread data at close().await resets (default linger): `Reset(UnreadData)`.
#[test]
fn tokio_unread_data_resets() {
    if !require_tap("tokio_unread_data_resets") {
        return;
    }
    let rig = Rig::start("rust-tokio-unread");
    let k = run(async {
        let (s, mut k, port) = connect(&rig, 7207, None).await;
        k.write_all(b"nobody reads this").unwrap();
        rig.wait_unread(port);
        assert_eq!(
            s.close().await.unwrap(),
            CloseOutcome::Reset(CloseReason::UnreadData)
        );
        k
    });
    let (_, err) = kernel_reader(k).join().unwrap();
    assert_eq!(kind(&err), Some(ErrorKind::ConnectionReset));

    let trace = rig.finish().conn(7207);
    trace.assert(trace.has_rst(Dir::FromStack), "no RST from the stack");
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
}

/// The async face's shared handles are the halves of `into_split`: with linger 0, dropping the
/// read half does nothing (the write half still sends and the kernel reads it; nothing reset
/// or finished on the wire); when the last half goes (`forget`: without the FIN its drop would
/// send) the connection resets. Halves of two streams do not reunite; one stream's do.
#[test]
fn tokio_halves_only_last_one_closes() {
    if !require_tap("tokio_halves_only_last_one_closes") {
        return;
    }
    let rig = Rig::start("rust-tokio-halves");
    let (mut k, mark) = run(async {
        let (s, mut k, _) = connect(&rig, 7208, None).await;
        let (other, _k2, _) = connect(&rig, 7209, None).await;
        s.set_linger(Some(Duration::ZERO)).unwrap();
        let (rd, wr) = s.into_split();
        let (ord, owr) = other.into_split();
        let lingerstack::tokio::ReuniteError(rd, owr) = rd.reunite(owr).unwrap_err();
        let s = rd.reunite(wr).expect("halves of one stream reunite");
        assert_eq!(s.linger().unwrap(), Some(Duration::ZERO));
        let (rd, mut wr) = s.into_split();
        drop(rd);
        wr.write_all(b"still here").await.unwrap();
        let mut buf = [0u8; 10];
        k.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"still here");
        let mark = SystemTime::now();
        wr.forget();
        drop((ord, owr));
        (k, mark)
    });
    let (_, err) = kernel_read_all(&mut k);
    assert_eq!(kind(&err), Some(ErrorKind::ConnectionReset));

    assert_reset_after(&rig.finish().conn(7208), mark, b"still here");
}

/// `shutdown().await` sends the FIN after the data and keeps the read side: the stack reads
/// the kernel's answer to end of stream; no RST anywhere.
#[test]
fn tokio_shutdown_then_read_to_eof() {
    if !require_tap("tokio_shutdown_then_read_to_eof") {
        return;
    }
    let rig = Rig::start("rust-tokio-shutdown");
    let request = pattern(30_000, 4);
    let answer = pattern(50_000, 5);
    run(async {
        let (mut s, mut k, _) = connect(&rig, 7210, None).await;
        s.write_all(&request).await.unwrap();
        s.shutdown().await.unwrap();
        let kernel = {
            let (request, answer) = (request.clone(), answer.clone());
            std::thread::spawn(move || {
                let (got, err) = kernel_read_all(&mut k);
                assert!(
                    err.is_none() && got == request,
                    "kernel read {} bytes",
                    got.len()
                );
                k.write_all(&answer).unwrap();
                k.shutdown(Shutdown::Write).unwrap();
            })
        };
        let mut back = Vec::new();
        s.read_to_end(&mut back).await.unwrap();
        assert!(
            back == answer,
            "read {} of {} bytes",
            back.len(),
            answer.len()
        );
        kernel.join().unwrap();
        let e = s.write_all(b"x").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe);
        assert_eq!(payload(&e), Some(StackError::Shutdown));
    });

    let trace = rig.finish().conn(7210);
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    trace.assert(!trace.has_rst(Dir::ToStack), "RST from the kernel");
    assert_fin_after_data(&trace, request.len());
    trace.assert(
        trace.stream(Dir::ToStack) == answer,
        "kernel stream differs",
    );
}

/// 10 MiB through the async face and back from a kernel echo, byte for byte: a writer task
/// and a reader task on the halves, on one thread.
#[test]
fn tokio_ten_mib_echo() {
    if !require_tap("tokio_ten_mib_echo") {
        return;
    }
    let rig = Rig::start("rust-tokio-echo");
    let echo = kernel_echo(&rig, 7211);
    let data = pattern(10 * MIB, 6);
    let back = run(async {
        let s = TcpStream::connect(&rig.stack, rig.kernel(7211))
            .await
            .unwrap();
        s.set_nodelay(true).unwrap();
        let (mut rd, mut wr) = s.into_split();
        let writer = {
            let data = data.clone();
            tokio::spawn(async move {
                wr.write_all(&data).await?;
                wr.shutdown().await
            })
        };
        let mut back = Vec::with_capacity(data.len());
        rd.read_to_end(&mut back).await.unwrap();
        writer.await.unwrap().unwrap();
        back
    });
    assert_eq!(echo.join().unwrap().unwrap(), data.len() as u64);
    assert!(
        back == data,
        "echo differs ({} of {} bytes)",
        back.len(),
        data.len()
    );
    let trace = rig.finish();
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
}

/// The async face's error kinds, produced against the kernel and checked, with the
/// `StackError` as the payload; and an accept serving a kernel client.
#[test]
fn tokio_error_kinds() {
    if !require_tap("tokio_error_kinds") {
        return;
    }
    let rig = Rig::start("rust-tokio-errors");
    let check = |e: std::io::Error, want: ErrorKind, stack_error: StackError| {
        assert_eq!(e.kind(), want, "{e}");
        assert_eq!(payload(&e), Some(stack_error), "payload of {e}");
    };
    run(async {
        let stack = &rig.stack;
        let e = TcpStream::connect(stack, rig.kernel(7299))
            .await
            .unwrap_err();
        check(e, ErrorKind::ConnectionRefused, StackError::ConnRefused);

        let l = TcpListener::bind(stack, rig.stack_addr(7212))
            .await
            .unwrap();
        assert_eq!(l.local_addr().unwrap(), rig.stack_addr(7212));
        let e = TcpListener::bind(stack, rig.stack_addr(7212))
            .await
            .unwrap_err();
        check(e, ErrorKind::AddrInUse, StackError::AddrInUse);
        let e = TcpListener::bind(stack, "10.9.9.9:7".parse().unwrap())
            .await
            .unwrap_err();
        check(e, ErrorKind::AddrNotAvailable, StackError::AddrNotAvail);

        // A kernel client resets after saying hello: read gets the data, then ConnectionReset;
        // the address is gone after that.
        let net = &rig;
        let kernel = {
            let addr = net.stack_addr(7212);
            let ns_run = net.net.ns();
            let k = lingerstack_testkit::peer::tcp_connect(ns_run, addr, None, KERNEL_IO);
            k.unwrap()
        };
        let (mut s, peer) = l.accept().await.unwrap();
        assert_eq!(peer, kernel.local_addr().unwrap());
        (&kernel).write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        socket2::SockRef::from(&kernel)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(kernel);
        check(
            s.read(&mut buf).await.unwrap_err(),
            ErrorKind::ConnectionReset,
            StackError::ConnReset,
        );
        check(
            s.peer_addr().unwrap_err(),
            ErrorKind::NotConnected,
            StackError::NotConnected,
        );
        drop(s);

        // NetworkDown once the stack has stopped, for a task waiting in read as well.
        let _k = rig.kernel_connect(7212);
        let (mut s, _) = l.accept().await.unwrap();
        let waiting = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            s.read(&mut buf).await
        });
        tokio::task::yield_now().await;
        stack.stop(Duration::from_millis(100));
        let e = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the waiting read was woken")
            .unwrap()
            .unwrap_err();
        check(e, ErrorKind::NetworkDown, StackError::NetworkDown);
        let e = TcpStream::connect(stack, rig.kernel(7213))
            .await
            .unwrap_err();
        check(e, ErrorKind::NetworkDown, StackError::NetworkDown);
    });
    let _ = rig.finish();
}
