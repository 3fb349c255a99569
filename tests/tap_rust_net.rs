//! The blocking Rust face (`lingerstack::net`) against the Linux kernel of a private namespace
//! over a real TAP: every row of its linger table, shutdown, try_clone, 10 MiB echoed, and the
//! error kinds, with the kernel-side capture and the kernel's own view as the evidence.
//!
//! Without root every test prints a SKIP line and passes; `LINGERSTACK_REQUIRE_TAP=1` makes
//! that a failure.

#[path = "common/rust_rig.rs"]
mod rig;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use lingerstack::net::{TcpListener, TcpStream};
use lingerstack::{CloseOutcome, CloseReason, StackError};
use lingerstack_testkit::{Dir, require_tap};
use rig::*;

/// A stack stream connected to a kernel listener on `port` whose accepted socket has
/// SO_RCVBUF `rcvbuf`: (stream, kernel end, stack port).
fn connect(rig: &Rig, port: u16, rcvbuf: Option<usize>) -> (TcpStream, std::net::TcpStream, u16) {
    let listener = rig.kernel_listener(port, rcvbuf);
    let s = TcpStream::connect(&rig.stack, rig.kernel(port)).expect("connect to the kernel");
    let (k, from) = listener.accept().expect("kernel accept");
    bound_io(&k);
    let stack_port = s.local_addr().unwrap().port();
    assert_eq!(from.port(), stack_port);
    assert_eq!(s.peer_addr().unwrap(), rig.kernel(port));
    (s, k, stack_port)
}

/// A connection whose kernel window is shut with bytes still queued in the stack.
fn stuck(rig: &Rig, port: u16) -> (TcpStream, std::net::TcpStream, u16) {
    let (mut s, k, stack_port) = connect(rig, port, SMALL_RCVBUF);
    s.write_all(&pattern(STUCK, 3)).unwrap();
    assert!(rig.wait_stalled(stack_port) > 0);
    (s, k, stack_port)
}

/// Default close: returns at once with queued data still in the stack; the data then a FIN
/// leave in the background; the kernel reads every byte and end of stream; no RST.
#[test]
fn net_default_close_sends_data_then_fin_at_once() {
    if !require_tap("net_default_close_sends_data_then_fin_at_once") {
        return;
    }
    let rig = Rig::start("rust-net-default");
    let (mut s, mut k, port) = connect(&rig, 7101, Some(16 * 1024));
    let reader =
        std::thread::spawn(move || kernel_read_paced(&mut k, 4096, Duration::from_millis(10)));
    let data = pattern(200_000, 1);
    s.write_all(&data).unwrap();
    let queued = rig.info(port).map_or(0, |i| i.send_queue);
    let t0 = Instant::now();
    assert_eq!(s.close().unwrap(), CloseOutcome::Background);
    let took = t0.elapsed();
    let returned = SystemTime::now();
    assert!(took < AT_ONCE, "close took {took:?}");
    assert!(queued > 0, "nothing was queued at the close");
    assert_kernel_read_all(reader.join().unwrap(), &data);
    assert_background_close(&rig.finish().conn(7101), &data, returned);
}

/// `Some(0)`: RST at once, queued data discarded; the kernel reads ECONNRESET; no FIN.
#[test]
fn net_linger_zero_resets() {
    if !require_tap("net_linger_zero_resets") {
        return;
    }
    let rig = Rig::start("rust-net-linger0");
    let (s, mut k, _) = stuck(&rig, 7102);
    s.set_linger(Some(Duration::ZERO)).unwrap();
    assert_eq!(s.linger().unwrap(), Some(Duration::ZERO));
    let t0 = Instant::now();
    assert_eq!(
        s.close().unwrap(),
        CloseOutcome::Reset(CloseReason::LocalAbort)
    );
    assert!(t0.elapsed() < AT_ONCE, "close took {:?}", t0.elapsed());
    let (got, err) = kernel_read_all(&mut k);
    assert_eq!(
        kind(&err),
        Some(ErrorKind::ConnectionReset),
        "after {} bytes",
        got.len()
    );
    assert!(got.len() < STUCK, "every byte arrived despite the reset");

    let trace = rig.finish().conn(7102);
    trace.assert(trace.has_rst(Dir::FromStack), "no RST from the stack");
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
}

/// `Some(d)`, blocking, the kernel reading: close returns `Finished` once every byte and the
/// FIN are acknowledged (the capture shows the kernel's ACK of the FIN before the return).
#[test]
fn net_linger_blocking_returns_when_fin_acked() {
    if !require_tap("net_linger_blocking_returns_when_fin_acked") {
        return;
    }
    let rig = Rig::start("rust-net-linger-finished");
    let (mut s, mut k, _) = connect(&rig, 7103, Some(16 * 1024));
    let reader =
        std::thread::spawn(move || kernel_read_paced(&mut k, 4096, Duration::from_millis(5)));
    let data = pattern(100_000, 2);
    s.write_all(&data).unwrap();
    s.set_linger(Some(Duration::from_secs(10))).unwrap();
    let called = SystemTime::now();
    assert_eq!(s.close().unwrap(), CloseOutcome::Finished);
    let returned = SystemTime::now();
    let (got, err) = reader.join().unwrap();
    assert!(err.is_none(), "kernel read error: {err:?}");
    assert!(
        got == data,
        "kernel read {} of {} bytes",
        got.len(),
        data.len()
    );

    let trace = rig.finish().conn(7103);
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    let fin = assert_fin_after_data(&trace, data.len());
    let fin_end = fin.seq.wrapping_add(fin.seq_len());
    let Some(ack) = kernel_ack_of(&trace, fin_end) else {
        trace.fail("the kernel never acknowledged the FIN")
    };
    trace.assert(
        ack.time <= returned,
        "close returned before the FIN was acknowledged",
    );
    trace.assert(fin.time > called, "FIN before the close");
}

/// `Some(d)`, blocking, the kernel's window shut: close waits `d`, resets and returns
/// `Reset(LingerTimeout)`; the RST leaves at `d`; the kernel reads ECONNRESET.
#[test]
fn net_linger_blocking_window_shut_resets_at_d() {
    if !require_tap("net_linger_blocking_window_shut_resets_at_d") {
        return;
    }
    let rig = Rig::start("rust-net-linger-timeout");
    let (s, mut k, _) = stuck(&rig, 7104);
    s.set_linger(Some(Duration::from_secs(1))).unwrap();
    // Read and write timeouts play no part in a close.
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let called = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(
        s.close().unwrap(),
        CloseOutcome::Reset(CloseReason::LingerTimeout)
    );
    let took = t0.elapsed();
    let returned = SystemTime::now();
    assert!(
        took >= Duration::from_millis(980),
        "close returned after {took:?}"
    );
    let (_, err) = kernel_read_all(&mut k);
    assert_eq!(kind(&err), Some(ErrorKind::ConnectionReset));

    let trace = rig.finish().conn(7104);
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
    let rst = first_stack_rst(&trace);
    trace.assert(rst.time <= returned, "RST after the close returned");
    assert_rst_at_deadline(&trace, rst, called, returned, 1.0);
}

/// `Some(d)` on a non-blocking stream: close returns at once; the wait and the RST at `d`
/// happen in the background (the capture shows the RST `d` after the call).
#[test]
fn net_linger_nonblocking_resets_in_background() {
    if !require_tap("net_linger_nonblocking_resets_in_background") {
        return;
    }
    let rig = Rig::start("rust-net-linger-nonblocking");
    let (s, mut k, _) = stuck(&rig, 7105);
    s.set_linger(Some(Duration::from_secs(1))).unwrap();
    s.set_nonblocking(true).unwrap();
    let called = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(s.close().unwrap(), CloseOutcome::Background);
    let took = t0.elapsed();
    let returned = SystemTime::now();
    assert!(took < AT_ONCE, "close took {took:?}");
    // The window stays shut past `d`: a kernel that read now would let the close finish.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, err) = kernel_read_all(&mut k);
    assert_eq!(kind(&err), Some(ErrorKind::ConnectionReset));

    let trace = rig.finish().conn(7105);
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
    let rst = first_stack_rst(&trace);
    assert_rst_at_deadline(&trace, rst, called, returned, 1.0);
}

/// Received data nobody read resets the connection at close, whatever the linger (here the
/// default, which would otherwise send a FIN): `Reset(UnreadData)`, kernel ECONNRESET.
#[test]
fn net_unread_data_resets() {
    if !require_tap("net_unread_data_resets") {
        return;
    }
    let rig = Rig::start("rust-net-unread");
    let (s, mut k, port) = connect(&rig, 7106, None);
    k.write_all(b"nobody reads this").unwrap();
    rig.wait_unread(port);
    assert_eq!(
        s.close().unwrap(),
        CloseOutcome::Reset(CloseReason::UnreadData)
    );
    let (_, err) = kernel_read_all(&mut k);
    assert_eq!(kind(&err), Some(ErrorKind::ConnectionReset));

    let trace = rig.finish().conn(7106);
    trace.assert(trace.has_rst(Dir::FromStack), "no RST from the stack");
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
}

/// `try_clone`: closing one handle (linger 0) does nothing while the other is left (it still
/// sends and the kernel reads it, nothing reset or finished on the wire); dropping the last
/// one resets.
#[test]
fn net_try_clone_only_last_handle_closes() {
    if !require_tap("net_try_clone_only_last_handle_closes") {
        return;
    }
    let rig = Rig::start("rust-net-try-clone");
    let (s, mut k, _) = connect(&rig, 7107, None);
    let mut other = s.try_clone().unwrap();
    s.set_linger(Some(Duration::ZERO)).unwrap();
    assert_eq!(
        other.linger().unwrap(),
        Some(Duration::ZERO),
        "settings are shared"
    );
    assert_eq!(s.close().unwrap(), CloseOutcome::Nothing);
    other.write_all(b"still here").unwrap();
    let mut buf = [0u8; 10];
    k.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still here");
    let mark = SystemTime::now();
    drop(other);
    let (_, err) = kernel_read_all(&mut k);
    assert_eq!(kind(&err), Some(ErrorKind::ConnectionReset));

    assert_reset_after(&rig.finish().conn(7107), mark, b"still here");
}

/// `shutdown(Write)`: the FIN leaves after the data and the read side stays open; the stack
/// then reads the kernel's answer to end of stream; no RST anywhere.
#[test]
fn net_shutdown_write_then_read_to_eof() {
    if !require_tap("net_shutdown_write_then_read_to_eof") {
        return;
    }
    let rig = Rig::start("rust-net-shutdown");
    let (mut s, mut k, _) = connect(&rig, 7108, None);
    let request = pattern(30_000, 4);
    s.write_all(&request).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (got, err) = kernel_read_all(&mut k);
    assert!(
        err.is_none() && got == request,
        "kernel read {} bytes, {err:?}",
        got.len()
    );
    let answer = pattern(50_000, 5);
    k.write_all(&answer).unwrap();
    k.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.set_read_timeout(Some(KERNEL_IO)).unwrap();
    s.read_to_end(&mut back).unwrap();
    assert!(
        back == answer,
        "read {} of {} bytes",
        back.len(),
        answer.len()
    );
    let e = s.write(b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenPipe, "write after shutdown: {e}");
    assert_eq!(payload(&e), Some(StackError::Shutdown));
    drop(s);

    let trace = rig.finish().conn(7108);
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    trace.assert(!trace.has_rst(Dir::ToStack), "RST from the kernel");
    assert_fin_after_data(&trace, request.len());
    trace.assert(
        trace.stream(Dir::ToStack) == answer,
        "kernel stream differs",
    );
}

/// 10 MiB through the blocking face and back from a kernel echo, byte for byte, one thread
/// writing (`&TcpStream`) while another reads.
#[test]
fn net_ten_mib_echo() {
    if !require_tap("net_ten_mib_echo") {
        return;
    }
    let rig = Rig::start("rust-net-echo");
    let echo = kernel_echo(&rig, 7109);
    let s = TcpStream::connect(&rig.stack, rig.kernel(7109)).unwrap();
    s.set_nodelay(true).unwrap();
    assert!(s.nodelay().unwrap());
    let data = pattern(10 * MIB, 6);
    let writer = {
        let s = s.try_clone().unwrap();
        let data = data.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            (&s).write_all(&data)?;
            s.shutdown(Shutdown::Write)
        })
    };
    s.set_read_timeout(Some(KERNEL_IO)).unwrap();
    let mut back = Vec::with_capacity(data.len());
    (&s).read_to_end(&mut back).unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(echo.join().unwrap().unwrap(), data.len() as u64);
    assert!(
        back == data,
        "echo differs ({} of {} bytes)",
        back.len(),
        data.len()
    );
    drop(s);
    let trace = rig.finish();
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
}

/// Each error kind a std user matches on, produced against the kernel and checked, with the
/// `StackError` as the payload where the engine said it.
#[test]
fn net_error_kinds() {
    if !require_tap("net_error_kinds") {
        return;
    }
    let rig = Rig::start("rust-net-errors");
    let stack = &rig.stack;
    let check = |e: std::io::Error, want: ErrorKind, stack_error: Option<StackError>| {
        assert_eq!(e.kind(), want, "{e}");
        if stack_error.is_some() {
            assert_eq!(payload(&e), stack_error, "payload of {e}");
        }
    };

    // ConnectionRefused: no kernel listener, the kernel answers the SYN with a RST.
    let e = TcpStream::connect(stack, rig.kernel(7199)).unwrap_err();
    check(
        e,
        ErrorKind::ConnectionRefused,
        Some(StackError::ConnRefused),
    );

    // TimedOut: nobody answers ARP for this address.
    let nobody: SocketAddr = "10.200.0.99:7".parse().unwrap();
    let e = TcpStream::connect_timeout(stack, &nobody, Duration::from_millis(300)).unwrap_err();
    check(e, ErrorKind::TimedOut, Some(StackError::TimedOut));

    // AddrInUse and AddrNotAvailable.
    let l = TcpListener::bind(stack, rig.stack_addr(7110)).unwrap();
    assert_eq!(l.local_addr().unwrap(), rig.stack_addr(7110));
    let e = TcpListener::bind(stack, rig.stack_addr(7110)).unwrap_err();
    check(e, ErrorKind::AddrInUse, Some(StackError::AddrInUse));
    let e = TcpListener::bind(stack, "10.9.9.9:7".parse().unwrap()).unwrap_err();
    check(
        e,
        ErrorKind::AddrNotAvailable,
        Some(StackError::AddrNotAvail),
    );

    // WouldBlock: a non-blocking accept and read with nothing there.
    l.set_nonblocking(true).unwrap();
    check(
        l.accept().unwrap_err(),
        ErrorKind::WouldBlock,
        Some(StackError::WouldBlock),
    );
    let mut k = rig.kernel_connect(7110);
    l.set_nonblocking(false).unwrap();
    let (mut s, peer) = l.accept().unwrap();
    assert_eq!(peer, k.local_addr().unwrap());
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    check(
        s.read(&mut buf).unwrap_err(),
        ErrorKind::WouldBlock,
        Some(StackError::WouldBlock),
    );
    // A read timeout that runs out is WouldBlock too, as std on Linux says it.
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    check(
        s.read(&mut buf).unwrap_err(),
        ErrorKind::WouldBlock,
        Some(StackError::TimedOut),
    );

    // InvalidInput: a zero timeout, as in std.
    check(
        s.set_read_timeout(Some(Duration::ZERO)).unwrap_err(),
        ErrorKind::InvalidInput,
        None,
    );

    // peek sees what read then consumes.
    k.write_all(b"peek").unwrap();
    s.set_read_timeout(Some(KERNEL_IO)).unwrap();
    let n = s.peek(&mut buf).unwrap();
    assert_eq!(&buf[..n], &b"peek"[..n]);
    let mut four = [0u8; 4];
    s.read_exact(&mut four).unwrap();
    assert_eq!(&four, b"peek");

    // ConnectionReset, then NotConnected: the kernel resets (SO_LINGER 0).
    socket2::SockRef::from(&k)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(k);
    s.set_read_timeout(Some(KERNEL_IO)).unwrap();
    check(
        s.read(&mut buf).unwrap_err(),
        ErrorKind::ConnectionReset,
        Some(StackError::ConnReset),
    );
    let taken = s
        .take_error()
        .unwrap()
        .expect("the reset is the pending error");
    assert_eq!(taken.kind(), ErrorKind::ConnectionReset);
    assert!(s.take_error().unwrap().is_none(), "reported once");
    check(
        s.peer_addr().unwrap_err(),
        ErrorKind::NotConnected,
        Some(StackError::NotConnected),
    );
    drop(s);

    // ConnectionAborted: after shutdown(Read), data that still arrives resets the connection
    // (nobody can read it); the next write says the connection was aborted.
    let mut k = rig.kernel_connect(7110);
    let (mut s, _) = l.accept().unwrap();
    s.shutdown(Shutdown::Read).unwrap();
    k.write_all(b"too late").unwrap();
    eventually("the stack resets the connection", || {
        rig.info(s.local_addr().map_or(0, |a| a.port()))
            .is_none_or(|i| i.state == "CLOSED")
    });
    check(
        s.write(b"x").unwrap_err(),
        ErrorKind::ConnectionAborted,
        Some(StackError::ConnAborted),
    );
    let (_, err) = kernel_read_all(&mut k);
    assert_eq!(kind(&err), Some(ErrorKind::ConnectionReset));

    // BrokenPipe: a write after shutdown(Write).
    let _k = rig.kernel_connect(7110);
    let (mut s2, _) = l.accept().unwrap();
    s2.shutdown(Shutdown::Write).unwrap();
    check(
        s2.write(b"x").unwrap_err(),
        ErrorKind::BrokenPipe,
        Some(StackError::Shutdown),
    );

    // NetworkDown: every call once the stack has stopped.
    rig.stack.stop(Duration::from_millis(100));
    check(
        s2.write(b"x").unwrap_err(),
        ErrorKind::NetworkDown,
        Some(StackError::NetworkDown),
    );
    check(
        l.accept().unwrap_err(),
        ErrorKind::NetworkDown,
        Some(StackError::NetworkDown),
    );
    check(
        TcpStream::connect(stack, rig.kernel(7111)).unwrap_err(),
        ErrorKind::NetworkDown,
        Some(StackError::NetworkDown),
    );
    assert!(
        s2.close().is_err(),
        "a close after the stop could not be carried out"
    );
    drop((s, l));
    let _ = rig.finish();
}
