//! The wire rows of the close contract (docs/close-semantics.md), against the Linux
//! kernel of a private namespace over a real TAP, with the kernel-side capture as evidence.
//!
//! Each test: namespace + TAP, capture started before the TAP is opened, the provider on the
//! TAP, kernel peers made inside the namespace. Kernel windows are kept shut with a small
//! SO_RCVBUF and no reads. The API result and the kernel's view (bytes, EOF or ECONNRESET) are
//! asserted together with the capture (flags, which side, sequence numbers, timestamps).
//!
//! Run as root: `cargo test -p lingerstack-wsp --test tap_close`. Without CAP_NET_ADMIN every
//! test prints a SKIP line and passes (LINGERSTACK_REQUIRE_TAP=1 makes that a failure).

#[path = "common/tap.rs"]
mod tap;

use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use lingerstack_testkit::{Dir, require_tap};
use lingerstack_wsp::consts::*;
use lingerstack_wsp::{Completion, Event, EventObject, Linger, Overlapped, WsaError};
use tap::*;

/// "At once" on a loaded machine.
const AT_ONCE: Duration = Duration::from_secs(1);

/// Bytes the stack sends when the kernel's window must stay shut: far more than a kernel
/// socket with SO_RCVBUF 4096 takes in.
const STUCK: usize = 100_000;

/// A small kernel receive buffer: its window shuts after a few KB.
const SMALL_RCVBUF: Option<usize> = Some(4096);

fn io_kind(e: &Option<std::io::Error>) -> Option<ErrorKind> {
    e.as_ref().map(|e| e.kind())
}

/// The first RST from the stack in `trace`.
fn first_stack_rst(trace: &lingerstack_testkit::Trace) -> &lingerstack_testkit::Segment {
    match segs(trace, Dir::FromStack, |s| s.flags.rst).first() {
        Some(s) => s,
        None => trace.fail("no RST from the stack"),
    }
}

/// How late a deadline's RST may leave: 100 ms past the deadline counted from the close
/// call's return (the engine wakes for the deadline itself, so this is scheduling slack).
const DEADLINE_SLACK: f64 = 0.1;

/// Assert a background close's RST left at its deadline, `secs` after the close call: not
/// before it counted from the call (`called`, with C06's 20 ms for clock granularity), and
/// within [`DEADLINE_SLACK`] of it counted from the call's return (`returned`).
fn assert_rst_at_deadline(
    trace: &lingerstack_testkit::Trace,
    rst: &lingerstack_testkit::Segment,
    called: SystemTime,
    returned: SystemTime,
    secs: f64,
) {
    let after_call = secs_between(rst.time, called);
    let after_return = secs_between(rst.time, returned);
    eprintln!("RST {after_call:.3} s after the close call, {after_return:.3} s after it returned");
    trace.assert(
        after_call >= secs - 0.02,
        &format!("RST {after_call:.3} s after the close call, before the {secs} s deadline"),
    );
    trace.assert(
        after_return <= secs + DEADLINE_SLACK,
        &format!(
            "RST {after_return:.3} s after the close returned, later than {secs} s + {DEADLINE_SLACK} s"
        ),
    );
}

/// A connection whose kernel window is shut with `STUCK` bytes sent: (conn, bytes sent).
fn stuck_conn(env: &TapEnv, port: u16) -> (Conn, Vec<u8>) {
    let c = env.connect_kernel(port, SMALL_RCVBUF);
    let data = pattern(STUCK);
    assert_eq!(env.p.send(c.s, &data).unwrap(), STUCK);
    let queued = env.wait_stalled(c.stack_port);
    assert!(queued > 0 && queued <= STUCK);
    (c, data)
}

// ---------------------------------------------------------------------------------------
// C03
// ---------------------------------------------------------------------------------------

/// The kernel reads `k` slowly, `chunk` bytes at a time with `pause` in between, until end
/// of stream or an error; returns what it read and the error.
fn kernel_read_paced(
    k: &mut std::net::TcpStream,
    chunk: usize,
    pause: Duration,
) -> (Vec<u8>, Option<std::io::Error>) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match std::io::Read::read(k, &mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return (got, Some(e)),
        }
        std::thread::sleep(pause);
    }
}

/// C03: default linger (SO_DONTLINGER), unsent data queued while the kernel reads: close
/// returns 0 at once, before the data has left: the stack still holds queued bytes at the
/// close, data segments leave after the call returned, and the kernel acknowledges the last
/// byte only after that (a close that waited would fail here). The kernel reads every byte
/// then end of stream; the stack's FIN comes right after the last data byte; no RST.
#[test]
fn c03_default_close_sends_queued_data_then_fin() {
    if !require_tap("c03_default_close_sends_queued_data_then_fin") {
        return;
    }
    let env = TapEnv::start("wsp-c03-queued", |_| {});
    // A small kernel window, read slowly: 200 KB take at least 0.5 s to drain (4 KiB per
    // 10 ms), so the close surely comes first. They fit the stack's 256 KiB send buffer, so
    // the send returns as soon as they are queued.
    let c = env.connect_kernel(7003, Some(16 * 1024));
    let mut k = c.k.try_clone().unwrap();
    let reader =
        std::thread::spawn(move || kernel_read_paced(&mut k, 4096, Duration::from_millis(10)));
    let data = pattern(200_000);
    assert_eq!(env.p.send(c.s, &data).unwrap(), data.len());
    let queued = env.info(c.stack_port).map_or(0, |i| i.send_queue);
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    let st1 = SystemTime::now();
    assert!(took < AT_ONCE, "close took {took:?}");
    eprintln!("C03: {queued} bytes queued at close, close took {took:?}");
    assert!(queued > 0, "nothing was queued at the close");
    let (got, err) = reader.join().unwrap();
    assert!(err.is_none(), "kernel read error: {err:?}");
    assert_eq!(got.len(), data.len());
    assert!(got == data, "kernel read different bytes");
    assert_eq!(env.p.close_socket(c.s), Err(WsaError::NOTSOCK));

    let trace = env.finish().conn(c.kernel_port);
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    trace.assert(trace.stream(Dir::FromStack) == data, "stream differs");
    assert_fin_after_data(&trace, data.len());
    let late = segs(&trace, Dir::FromStack, |s| {
        !s.payload.is_empty() && s.time > st1
    });
    trace.assert(
        !late.is_empty(),
        "no data left the stack after the close returned",
    );
    let data_end = stack_isn(&trace)
        .wrapping_add(1)
        .wrapping_add(data.len() as u32);
    let Some(last_ack) = kernel_ack_of(&trace, data_end) else {
        trace.fail("the kernel never acknowledged the last data byte")
    };
    trace.assert(
        last_ack.time > st1,
        "every byte was acknowledged before the close returned",
    );
    eprintln!(
        "C03: {} data segments after the close returned; last byte acknowledged {:.3} s after",
        late.len(),
        secs_between(last_ack.time, st1)
    );
}

/// C03 (zero window): default linger, the kernel's window is zero at the moment of close with
/// data still queued; close returns 0 at once; the kernel then starts reading and gets every
/// byte then end of stream; FIN after the last byte; no RST.
#[test]
fn c03_zero_window_at_close_then_kernel_reads_all() {
    if !require_tap("c03_zero_window_at_close_then_kernel_reads_all") {
        return;
    }
    let env = TapEnv::start("wsp-c03-zero-window", |_| {});
    let (mut c, data) = stuck_conn(&env, 7004);
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    let st1 = SystemTime::now();
    assert!(took < AT_ONCE, "close took {took:?}");
    // The close goes on in the background while the window stays shut for a while.
    std::thread::sleep(Duration::from_millis(500));
    let (got, err) = kernel_read_all(&mut c.k);
    assert!(err.is_none(), "kernel read error: {err:?}");
    assert!(
        got == data,
        "kernel read {} of {} bytes",
        got.len(),
        data.len()
    );

    let trace = env.finish().conn(c.kernel_port);
    trace.assert(
        !segs(&trace, Dir::ToStack, |s| s.window == 0 && s.time < st0).is_empty(),
        "the kernel never advertised a zero window before the close",
    );
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    trace.assert(trace.stream(Dir::FromStack) == data, "stream differs");
    let fin = assert_fin_after_data(&trace, data.len());
    trace.assert(fin.time > st1, "FIN before the close call returned?");
}

// ---------------------------------------------------------------------------------------
// C04
// ---------------------------------------------------------------------------------------

/// C04: SO_LINGER {1,0} with data queued behind a shut window: close returns 0 at once; the
/// stack resets (no FIN), queued data is discarded, and the kernel's read fails with
/// ECONNRESET. After the RST nothing but RSTs leaves the stack: no payload (a socket still
/// alive behind its shut window would probe it) and no FIN, for a second after the reset.
#[test]
fn c04_linger_zero_resets_at_once() {
    if !require_tap("c04_linger_zero_resets_at_once") {
        return;
    }
    let env = TapEnv::start("wsp-c04-linger-zero", |_| {});
    let (mut c, data) = stuck_conn(&env, 7005);
    env.linger(c.s, 1, 0);
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    assert!(took < AT_ONCE, "close took {took:?}");
    let (got, err) = kernel_read_all(&mut c.k);
    assert_eq!(
        io_kind(&err),
        Some(ErrorKind::ConnectionReset),
        "kernel: {err:?} after {} bytes",
        got.len()
    );
    assert!(got.len() < data.len() && got[..] == data[..got.len()]);
    // Time for anything that would follow the RST: a zero-window probe, a FIN, data.
    std::thread::sleep(Duration::from_secs(1));

    let trace = env.finish().conn(c.kernel_port);
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
    let rst = first_stack_rst(&trace);
    trace.assert(rst.time >= st0, "RST before the close call");
    trace.assert(
        secs_between(rst.time, st0) < 1.0,
        "RST not sent at once after the close",
    );
    trace.assert(
        trace.stream(Dir::FromStack).len() < data.len(),
        "queued data was not discarded",
    );
    // In capture order, everything the stack sent after its first RST.
    let from_stack = trace.from_stack();
    let after: Vec<_> = from_stack
        .iter()
        .skip_while(|s| !s.flags.rst)
        .skip(1)
        .collect();
    trace.assert(
        after.iter().all(|s| s.payload.is_empty() && !s.flags.fin),
        "payload or FIN from the stack after its RST",
    );
    trace.assert(
        after.iter().all(|s| s.flags.rst),
        "the stack sent more than RSTs after its RST",
    );
}

// ---------------------------------------------------------------------------------------
// C05 / C06
// ---------------------------------------------------------------------------------------

/// C05: SO_LINGER {1,5}, blocking, the kernel reads: close returns 0 once every byte and the
/// FIN are acknowledged (the kernel's ACK of the FIN is captured before the call returned),
/// well before 5 s; no RST.
#[test]
fn c05_blocking_linger_returns_when_fin_acked() {
    if !require_tap("c05_blocking_linger_returns_when_fin_acked") {
        return;
    }
    let env = TapEnv::start("wsp-c05-linger-acked", |_| {});
    let c = env.connect_kernel(7006, None);
    let mut k = c.k.try_clone().unwrap();
    let reader = std::thread::spawn(move || kernel_read_all(&mut k));
    let data = pattern(1_000_000);
    assert_eq!(env.p.send(c.s, &data).unwrap(), data.len());
    env.linger(c.s, 1, 5);
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    let st1 = SystemTime::now();
    assert!(
        took < Duration::from_millis(2500),
        "close took {took:?}, not well before 5 s"
    );
    let (got, err) = reader.join().unwrap();
    assert!(err.is_none(), "kernel read error: {err:?}");
    assert!(
        got == data,
        "kernel read {} of {} bytes",
        got.len(),
        data.len()
    );

    let trace = env.finish().conn(c.kernel_port);
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    let fin = assert_fin_after_data(&trace, data.len());
    trace.assert(fin.time >= st0, "FIN before the close");
    let fin_end = fin.seq.wrapping_add(fin.payload.len() as u32 + 1);
    let Some(ack) = kernel_ack_of(&trace, fin_end) else {
        trace.fail("the kernel never acknowledged the FIN")
    };
    trace.assert(
        ack.time <= st1,
        "close returned before the FIN was acknowledged",
    );
}

/// C06: SO_LINGER {1,1}, blocking, the kernel's window stays shut: close returns 0 not before
/// 1 s and within 1.5 s; a RST from the stack is captured before the call returned; no FIN;
/// the kernel then sees ECONNRESET.
#[test]
fn c06_blocking_linger_timeout_resets() {
    if !require_tap("c06_blocking_linger_timeout_resets") {
        return;
    }
    const N: u16 = 1;
    let env = TapEnv::start("wsp-c06-linger-timeout", |_| {});
    let (mut c, _data) = stuck_conn(&env, 7007);
    env.linger(c.s, 1, N);
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    let st1 = SystemTime::now();
    let n = Duration::from_secs(N.into());
    assert!(took >= n, "close returned after {took:?}, before {N} s");
    assert!(
        took <= n + Duration::from_millis(500),
        "close returned after {took:?}, later than {N} s + 0.5 s"
    );
    let (got, err) = kernel_read_all(&mut c.k);
    assert_eq!(
        io_kind(&err),
        Some(ErrorKind::ConnectionReset),
        "kernel: {err:?} after {} bytes",
        got.len()
    );

    let trace = env.finish().conn(c.kernel_port);
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
    let rst = first_stack_rst(&trace);
    trace.assert(rst.time <= st1, "RST captured after the close returned");
    trace.assert(
        secs_between(rst.time, st0) >= f64::from(N) - 0.02,
        "RST before the linger time ran out",
    );
    eprintln!(
        "C06: close took {took:?}; RST at +{:.3} s",
        secs_between(rst.time, st0)
    );
}

// ---------------------------------------------------------------------------------------
// C07 .. C11
// ---------------------------------------------------------------------------------------

/// C07's situation: SO_LINGER {1,`secs`}, FIONBIO on, unacknowledged data behind a shut
/// window; close fails with WSAEWOULDBLOCK and the descriptor stays usable. Returns the
/// connection, every byte sent so far, and the time after the failed close.
fn c07_wouldblock(env: &TapEnv, port: u16, secs: u16) -> (Conn, Vec<u8>, SystemTime) {
    let (c, mut sent) = stuck_conn(env, port);
    env.linger(c.s, 1, secs);
    env.nonblocking(c.s, true);
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Err(WsaError::WOULDBLOCK));
    let took = t0.elapsed();
    let mark = SystemTime::now();
    assert!(took < AT_ONCE, "WSAEWOULDBLOCK took {took:?}");
    // The descriptor still works.
    assert_eq!(
        env.get_linger(c.s),
        Ok(Linger {
            onoff: 1,
            linger: secs
        })
    );
    let mut b = [0u8; 4];
    assert_eq!(env.p.get_sock_opt(c.s, SOL_SOCKET, SO_ERROR, &mut b), Ok(4));
    assert_eq!(i32::from_ne_bytes(b), 0);
    // The send buffer (256 KiB) has room to spare beside the STUCK bytes: the send must
    // queue every byte, not answer WSAEWOULDBLOCK.
    assert_eq!(
        env.p.send(c.s, b"more"),
        Ok(4),
        "send after the WSAEWOULDBLOCK close"
    );
    sent.extend_from_slice(b"more");
    let mut buf = [0u8; 64];
    assert_eq!(env.p.recv(c.s, &mut buf), Err(WsaError::WOULDBLOCK));
    (c, sent, mark)
}

/// Nothing from the stack flagged FIN or RST up to `mark` (C07's "no FIN and no RST").
fn assert_quiet_until(trace: &lingerstack_testkit::Trace, mark: SystemTime) {
    let bad = segs(trace, Dir::FromStack, |s| {
        (s.flags.fin || s.flags.rst) && s.time <= mark
    });
    trace.assert(
        bad.is_empty(),
        "FIN or RST from the stack by the WSAEWOULDBLOCK close",
    );
}

/// C07: SO_LINGER {1,5}, non-blocking, unacknowledged data: close fails with WSAEWOULDBLOCK;
/// no FIN and no RST; data already queued keeps flowing when the kernel reads; getsockopt,
/// send and recv work on the descriptor.
#[test]
fn c07_nonblocking_linger_wouldblock_keeps_socket() {
    if !require_tap("c07_nonblocking_linger_wouldblock_keeps_socket") {
        return;
    }
    let env = TapEnv::start("wsp-c07-wouldblock", |_| {});
    let (mut c, sent, mark) = c07_wouldblock(&env, 7008, 5);
    // Data keeps flowing as before: the kernel reads part of it.
    let part = kernel_read_exact(&mut c.k, 50_000);
    assert!(part[..] == sent[..50_000]);
    // Still usable, and still WSAEWOULDBLOCK while data is unacknowledged.
    assert_eq!(env.p.close_socket(c.s), Err(WsaError::WOULDBLOCK));
    std::thread::sleep(Duration::from_millis(300));
    let end = SystemTime::now();

    let trace = env.finish().conn(c.kernel_port);
    assert_quiet_until(&trace, end);
    trace.assert(
        !segs(&trace, Dir::FromStack, |s| {
            !s.payload.is_empty() && s.time > mark
        })
        .is_empty(),
        "no data left the stack after the WSAEWOULDBLOCK close",
    );
}

/// C08: as C07 but every sent byte already acknowledged: close returns 0 at once and a FIN
/// goes out; the kernel reads all data, then end of stream.
#[test]
fn c08_nonblocking_linger_all_acked_closes_with_fin() {
    if !require_tap("c08_nonblocking_linger_all_acked_closes_with_fin") {
        return;
    }
    let env = TapEnv::start("wsp-c08-acked", |_| {});
    let c = env.connect_kernel(7009, None);
    let mut k = c.k.try_clone().unwrap();
    let reader = std::thread::spawn(move || kernel_read_all(&mut k));
    let data = pattern(50_000);
    assert_eq!(env.p.send(c.s, &data).unwrap(), data.len());
    env.wait_acked(c.stack_port);
    env.linger(c.s, 1, 5);
    env.nonblocking(c.s, true);
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    assert!(took < AT_ONCE, "close took {took:?}");
    let (got, err) = reader.join().unwrap();
    assert!(err.is_none(), "kernel read error: {err:?}");
    assert!(got == data);

    let trace = env.finish().conn(c.kernel_port);
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    let fin = assert_fin_after_data(&trace, data.len());
    trace.assert(fin.time >= st0, "FIN before the close");
}

/// C09: after C07, SO_DONTLINGER TRUE and close again: 0 at once; the close is graceful in
/// the background: the kernel reads every byte then end of stream; FIN, no RST.
#[test]
fn c09_dontlinger_after_wouldblock_closes_gracefully() {
    if !require_tap("c09_dontlinger_after_wouldblock_closes_gracefully") {
        return;
    }
    let env = TapEnv::start("wsp-c09-dontlinger", |_| {});
    let (mut c, sent, mark) = c07_wouldblock(&env, 7010, 5);
    env.p
        .set_sock_opt(c.s, SOL_SOCKET, SO_DONTLINGER, Some(&1i32.to_ne_bytes()))
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    assert!(took < AT_ONCE, "close took {took:?}");
    assert_eq!(env.p.close_socket(c.s), Err(WsaError::NOTSOCK));
    let (got, err) = kernel_read_all(&mut c.k);
    assert!(err.is_none(), "kernel read error: {err:?}");
    assert!(
        got == sent,
        "kernel read {} of {} bytes",
        got.len(),
        sent.len()
    );

    let trace = env.finish().conn(c.kernel_port);
    assert_quiet_until(&trace, mark);
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    assert_fin_after_data(&trace, sent.len());
}

/// C10: after C07, SO_LINGER {1,0} and close again: 0 at once; RST, no FIN; the kernel sees
/// ECONNRESET.
#[test]
fn c10_linger_zero_after_wouldblock_resets() {
    if !require_tap("c10_linger_zero_after_wouldblock_resets") {
        return;
    }
    let env = TapEnv::start("wsp-c10-abort", |_| {});
    let (mut c, _sent, mark) = c07_wouldblock(&env, 7011, 5);
    env.linger(c.s, 1, 0);
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    assert!(took < AT_ONCE, "close took {took:?}");
    let (got, err) = kernel_read_all(&mut c.k);
    assert_eq!(
        io_kind(&err),
        Some(ErrorKind::ConnectionReset),
        "kernel: {err:?} after {} bytes",
        got.len()
    );

    let trace = env.finish().conn(c.kernel_port);
    assert_quiet_until(&trace, mark);
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
    let rst = first_stack_rst(&trace);
    trace.assert(rst.time >= st0, "RST before the second close");
}

/// C11: after C07, WSPShutdown(SD_SEND) then close: 0 at once and the descriptor is released
/// (later calls WSAENOTSOCK); the closure completes in the background: the kernel reads every
/// byte then end of stream; FIN after the data, no RST.
#[test]
fn c11_shutdown_send_after_wouldblock_then_close() {
    if !require_tap("c11_shutdown_send_after_wouldblock_then_close") {
        return;
    }
    let env = TapEnv::start("wsp-c11-shutdown", |_| {});
    // Linger 10 s: the background closure has 10 s before the provider would reset it.
    let (mut c, sent, mark) = c07_wouldblock(&env, 7012, 10);
    assert_eq!(env.p.shutdown(c.s, SD_SEND), Ok(()));
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    assert!(took < AT_ONCE, "close took {took:?}");
    let mut buf = [0u8; 8];
    assert_eq!(env.p.send(c.s, b"x"), Err(WsaError::NOTSOCK));
    assert_eq!(env.p.recv(c.s, &mut buf), Err(WsaError::NOTSOCK));
    assert_eq!(env.get_linger(c.s), Err(WsaError::NOTSOCK));
    assert_eq!(env.p.close_socket(c.s), Err(WsaError::NOTSOCK));
    let (got, err) = kernel_read_all(&mut c.k);
    assert!(err.is_none(), "kernel read error: {err:?}");
    assert!(
        got == sent,
        "kernel read {} of {} bytes",
        got.len(),
        sent.len()
    );

    let trace = env.finish().conn(c.kernel_port);
    assert_quiet_until(&trace, mark);
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    assert_fin_after_data(&trace, sent.len());
}

/// C11 (deadline): after C07 with SO_LINGER {1,1}, WSPShutdown(SD_SEND) and close: 0 at once;
/// the kernel's window stays shut, so data and FIN are still unacknowledged 1 s after the
/// close call: the provider resets the connection then (RST captured not before 1 s after the
/// call and within 1.1 s of its return, no FIN); the kernel sees ECONNRESET.
#[test]
fn c11_shutdown_close_resets_after_linger_time() {
    if !require_tap("c11_shutdown_close_resets_after_linger_time") {
        return;
    }
    let env = TapEnv::start("wsp-c11-deadline", |_| {});
    let (mut c, _sent, mark) = c07_wouldblock(&env, 7018, 1);
    assert_eq!(env.p.shutdown(c.s, SD_SEND), Ok(()));
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    let st1 = SystemTime::now();
    assert!(took < AT_ONCE, "close took {took:?}");
    std::thread::sleep(Duration::from_millis(2500));
    let (got, err) = kernel_read_all(&mut c.k);
    assert_eq!(
        io_kind(&err),
        Some(ErrorKind::ConnectionReset),
        "kernel: {err:?} after {} bytes",
        got.len()
    );

    let trace = env.finish().conn(c.kernel_port);
    assert_quiet_until(&trace, mark);
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
    let rst = first_stack_rst(&trace);
    assert_rst_at_deadline(&trace, rst, st0, st1, 1.0);
}

// ---------------------------------------------------------------------------------------
// C12
// ---------------------------------------------------------------------------------------

/// C12: received data the application never read is in the socket at close (default
/// linger): close returns 0; the stack sends a RST instead of a FIN; the kernel sees
/// ECONNRESET.
#[test]
fn c12_unread_data_at_close_resets() {
    if !require_tap("c12_unread_data_at_close_resets") {
        return;
    }
    let env = TapEnv::start("wsp-c12-unread", |_| {});
    let mut c = env.connect_kernel(7013, None);
    let msg = b"bytes the application never reads";
    c.k.write_all(msg).unwrap();
    eventually("data at the stack", || {
        env.readable_bytes(c.s).unwrap() as usize == msg.len()
    });
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    assert!(took < AT_ONCE, "close took {took:?}");
    let (got, err) = kernel_read_all(&mut c.k);
    assert!(got.is_empty());
    assert_eq!(io_kind(&err), Some(ErrorKind::ConnectionReset), "{err:?}");

    let trace = env.finish().conn(c.kernel_port);
    trace.assert(
        trace.stream(Dir::ToStack) == msg,
        "kernel's data not captured",
    );
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
    let rst = first_stack_rst(&trace);
    trace.assert(rst.time >= st0, "RST before the close");
}

/// C12 (late data): data that arrives after a graceful close, which nobody can read any
/// more, resets the connection: the stack's FIN goes out, the kernel reads end of stream, then
/// writes; the stack answers that data with a RST and the kernel's next write fails.
#[test]
fn c12_data_after_close_resets() {
    if !require_tap("c12_data_after_close_resets") {
        return;
    }
    let env = TapEnv::start("wsp-c12-late-data", |_| {});
    let mut c = env.connect_kernel(7017, None);
    assert_eq!(env.p.send(c.s, b"bye"), Ok(3));
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let (got, err) = kernel_read_all(&mut c.k);
    assert!(got == b"bye" && err.is_none(), "{err:?}");
    let st0 = SystemTime::now();
    c.k.write_all(b"late data nobody reads").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let second = c.k.write_all(b"more");
    assert!(
        matches!(
            second.as_ref().map_err(|e| e.kind()),
            Err(ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)
        ),
        "the kernel's write after the stack's RST: {second:?}"
    );

    let trace = env.finish().conn(c.kernel_port);
    assert_fin_after_data(&trace, 3);
    let rst = first_stack_rst(&trace);
    trace.assert(rst.time >= st0, "RST before the late data");
}

// ---------------------------------------------------------------------------------------
// C14
// ---------------------------------------------------------------------------------------

/// C14: connect in progress (SYN sent, never answered): close returns 0 at once, a WSPConnect
/// blocked in another thread fails with WSAEINTR, and no handshake completes afterwards.
///
/// The kernel is made not to answer by a listener whose accept queue is full: the
/// namespace's net.core.somaxconn is set to 0 (a per-namespace sysctl), so the listener's
/// backlog is 0 and one connection over the namespace's loopback fills it; Linux then drops
/// further SYNs to that port (LISTENOVERFLOWS) without a SYN-ACK or RST. The stack's SYNs do
/// leave on the TAP, which a non-existent neighbour address would not give.
#[test]
fn c14_close_during_connect_interrupts_it() {
    if !require_tap("c14_close_during_connect_interrupts_it") {
        return;
    }
    let env = TapEnv::start("wsp-c14-connecting", |_| {});
    let port = 7014;
    env.net
        .ns()
        .run(|| std::fs::write("/proc/sys/net/core/somaxconn", "0"))
        .expect("set net.core.somaxconn in the namespace");
    let _listener = env.kernel_listener(port, None);
    let peer = lingerstack_testkit::peer::tcp_connect;
    let _filler = peer(env.net.ns(), env.kernel(port), None, Duration::from_secs(2))
        .expect("the first loopback connection fits the backlog");
    let refused = peer(
        env.net.ns(),
        env.kernel(port),
        None,
        Duration::from_millis(500),
    );
    assert!(
        refused.is_err(),
        "the kernel's accept queue is not full: {refused:?}"
    );

    let s = env.p.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP).unwrap();
    let (tx, rx) = mpsc::channel();
    let (p, to) = (env.p.clone(), env.kernel(port));
    let connector = std::thread::spawn(move || {
        let r = p.connect(s, to);
        tx.send((r, Instant::now())).unwrap();
    });
    std::thread::sleep(Duration::from_millis(600));
    assert!(rx.try_recv().is_err(), "connect returned early");
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(s), Ok(()));
    let took = t0.elapsed();
    let st1 = SystemTime::now();
    assert!(took < AT_ONCE, "close took {took:?}");
    let (r, at) = rx
        .recv_timeout(Duration::from_secs(1))
        .expect("blocked WSPConnect not released within 1 s of the close");
    assert_eq!(r, Err(WsaError::INTR));
    assert!(at.duration_since(t0) < AT_ONCE);
    connector.join().unwrap();
    // Long enough for smoltcp's SYN retransmission, had the socket lived on.
    std::thread::sleep(Duration::from_millis(1500));

    let trace = env.finish().conn(port);
    let syns = segs(&trace, Dir::FromStack, |s| s.flags.syn);
    trace.assert(
        syns.iter().any(|s| s.time < st0),
        "no SYN from the stack before the close",
    );
    trace.assert(
        segs(&trace, Dir::ToStack, |s| s.flags.syn && s.flags.ack).is_empty(),
        "the kernel answered a SYN",
    );
    trace.assert(
        segs(&trace, Dir::FromStack, |s| s.time > st1 && !s.flags.rst).is_empty(),
        "the stack sent more than a RST after the close",
    );
}

// ---------------------------------------------------------------------------------------
// C15
// ---------------------------------------------------------------------------------------

/// C15: a listening socket with two kernel connections in its backlog, not yet accepted, and
/// one already accepted: close returns 0 at once; each unaccepted connection is reset (the
/// kernel's read fails with ECONNRESET); a later kernel connect to the port is refused (the
/// SYN draws a RST); the accepted connection carries on both ways.
#[test]
fn c15_listener_close_resets_backlog() {
    if !require_tap("c15_listener_close_resets_backlog") {
        return;
    }
    let env = TapEnv::start("wsp-c15-backlog", |_| {});
    let port = 7015;
    let l = env.p.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP).unwrap();
    env.p.bind(l, env.stack(port)).unwrap();
    env.p.listen(l, 4).unwrap();
    let mut c0 = env.kernel_connect(port, None).unwrap();
    let (a0, from) = env.p.accept(l, None).unwrap();
    assert_eq!(from, c0.local_addr().unwrap());
    let mut pending: Vec<_> = (0..2)
        .map(|_| env.kernel_connect(port, None).unwrap())
        .collect();
    let pending_ports: Vec<u16> = pending
        .iter()
        .map(|c| c.local_addr().unwrap().port())
        .collect();
    // Let the stack see the final ACKs of both handshakes.
    std::thread::sleep(Duration::from_millis(300));
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(l), Ok(()));
    let took = t0.elapsed();
    let st1 = SystemTime::now();
    assert!(took < AT_ONCE, "close took {took:?}");
    for k in &mut pending {
        let (got, err) = kernel_read_all(k);
        assert!(got.is_empty());
        assert_eq!(io_kind(&err), Some(ErrorKind::ConnectionReset), "{err:?}");
    }
    let later = env.kernel_connect(port, None);
    assert_eq!(
        later.as_ref().map_err(|e| e.kind()).err(),
        Some(ErrorKind::ConnectionRefused),
        "{later:?}"
    );
    // The accepted connection carries on.
    assert_eq!(env.p.send(a0, b"after the listener closed"), Ok(25));
    c0.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(kernel_read_exact(&mut c0, 25), b"after the listener closed");
    c0.write_all(b"pong").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(env.p.recv(a0, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"pong");

    let trace = env.finish();
    for p in pending_ports {
        let t = trace.conn(p);
        t.assert(
            !t.has_fin(Dir::FromStack),
            "FIN to an unaccepted connection",
        );
        let rst = first_stack_rst(&t);
        t.assert(rst.time >= st0, "RST before the close");
    }
    let t0c = trace.conn(c0.local_addr().unwrap().port());
    t0c.assert(
        !t0c.has_rst(Dir::FromStack),
        "the accepted connection was reset",
    );
    t0c.assert(
        t0c.stream(Dir::FromStack) == b"after the listener closed",
        "accepted connection's data",
    );
    let late_syns = segs(&trace, Dir::ToStack, |s| {
        s.flags.syn && s.time > st1 && s.dst.port() == port
    });
    trace.assert(!late_syns.is_empty(), "no later SYN captured");
    for syn in late_syns {
        let answered = segs(&trace, Dir::FromStack, |s| {
            s.flags.rst && s.dst == syn.src && s.time >= syn.time
        });
        trace.assert(!answered.is_empty(), "a later SYN was not reset");
    }
}

/// C15 (C16): a WSPAccept blocked in another thread on an empty listener returns WSAEINTR
/// promptly when the listener is closed (close returns 0 at once); a later kernel connect to
/// the port is refused with a RST.
#[test]
fn c15_listener_close_interrupts_blocking_accept() {
    if !require_tap("c15_listener_close_interrupts_blocking_accept") {
        return;
    }
    let env = TapEnv::start("wsp-c15-accept", |_| {});
    let port = 7016;
    let l = env.p.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP).unwrap();
    env.p.bind(l, env.stack(port)).unwrap();
    env.p.listen(l, 4).unwrap();
    let (tx, rx) = mpsc::channel();
    let p = env.p.clone();
    let acceptor = std::thread::spawn(move || {
        let r = p.accept(l, None);
        tx.send((r, Instant::now())).unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(rx.try_recv().is_err(), "accept returned early");
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(l), Ok(()));
    let took = t0.elapsed();
    let st1 = SystemTime::now();
    assert!(took < AT_ONCE, "close took {took:?}");
    let (r, at) = rx
        .recv_timeout(Duration::from_secs(1))
        .expect("blocked WSPAccept not released within 1 s of the close");
    assert_eq!(r.map(|_| ()), Err(WsaError::INTR));
    assert!(at.duration_since(t0) < AT_ONCE);
    acceptor.join().unwrap();
    let later = env.kernel_connect(port, None);
    assert_eq!(
        later.as_ref().map_err(|e| e.kind()).err(),
        Some(ErrorKind::ConnectionRefused),
        "{later:?}"
    );

    let trace = env.finish();
    let syns = segs(&trace, Dir::ToStack, |s| s.flags.syn && s.time > st1);
    trace.assert(!syns.is_empty(), "no kernel SYN captured");
    for syn in syns {
        trace.assert(
            !segs(&trace, Dir::FromStack, |s| s.flags.rst && s.dst == syn.src).is_empty(),
            "the SYN to the closed listener was not reset",
        );
    }
    trace.assert(
        segs(&trace, Dir::FromStack, |s| s.flags.syn).is_empty(),
        "the stack answered a SYN after the listener closed",
    );
}

// ---------------------------------------------------------------------------------------
// C24
// ---------------------------------------------------------------------------------------

/// C24: a graceful background close that never finishes (the kernel's window stays shut):
/// close returns 0 at once; at the configured close deadline (2 s) the stack resets the
/// connection (RST captured not before 2 s after the close call and within 2.1 s of its
/// return); no FIN; the kernel sees ECONNRESET.
#[test]
fn c24_close_deadline_resets_stuck_graceful_close() {
    if !require_tap("c24_close_deadline_resets_stuck_graceful_close") {
        return;
    }
    let env = TapEnv::start("wsp-c24-deadline", |cfg| {
        cfg.close_deadline = Duration::from_secs(2)
    });
    let (mut c, data) = stuck_conn(&env, 7024);
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    let st1 = SystemTime::now();
    assert!(took < AT_ONCE, "close took {took:?}");
    std::thread::sleep(Duration::from_millis(3500));
    let (got, err) = kernel_read_all(&mut c.k);
    assert_eq!(
        io_kind(&err),
        Some(ErrorKind::ConnectionReset),
        "kernel: {err:?} after {} bytes",
        got.len()
    );
    assert!(got.len() < data.len() && got[..] == data[..got.len()]);

    let trace = env.finish().conn(c.kernel_port);
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
    let rst = first_stack_rst(&trace);
    assert_rst_at_deadline(&trace, rst, st0, st1, 2.0);
}

// ---------------------------------------------------------------------------------------
// P01 .. P03
// ---------------------------------------------------------------------------------------

fn select(env: &TapEnv, s: usize, mask: i32) -> Arc<Event> {
    let ev = Event::new();
    env.p
        .event_select(s, Some(ev.clone() as Arc<dyn EventObject>), mask)
        .unwrap();
    ev
}

/// P01: the kernel closes gracefully: with WSPEventSelect(FD_READ|FD_CLOSE) the provider
/// records FD_CLOSE with error 0, once; recv then returns 0.
#[test]
fn p01_kernel_fin_records_fd_close_once() {
    if !require_tap("p01_kernel_fin_records_fd_close_once") {
        return;
    }
    let env = TapEnv::start("wsp-p01-peer-fin", |_| {});
    let c = env.connect_kernel(7101, None);
    let ev = select(&env, c.s, FD_READ | FD_CLOSE);
    assert_eq!(
        env.p.enum_network_events(c.s, Some(&*ev)).unwrap().events,
        0
    );
    c.k.shutdown(Shutdown::Write).unwrap();
    assert!(ev.wait(Duration::from_secs(5)), "no event after the FIN");
    // Give a second FD_CLOSE every chance to be recorded.
    std::thread::sleep(Duration::from_millis(300));
    let ne = env.p.enum_network_events(c.s, Some(&*ev)).unwrap();
    assert_eq!(ne.events, FD_CLOSE, "{ne:?}");
    assert_eq!(ne.errors[FD_CLOSE_BIT], 0);
    let mut buf = [0u8; 16];
    assert_eq!(env.p.recv(c.s, &mut buf), Ok(0));
    std::thread::sleep(Duration::from_millis(300));
    let again = env.p.enum_network_events(c.s, Some(&*ev)).unwrap();
    assert_eq!(again.events, 0, "FD_CLOSE recorded twice: {again:?}");
    assert!(!ev.is_set());
    assert_eq!(env.p.recv(c.s, &mut buf), Ok(0));
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let mut k = c.k;
    let (got, err) = kernel_read_all(&mut k);
    assert!(got.is_empty() && err.is_none(), "{err:?}");

    let trace = env.finish().conn(c.kernel_port);
    trace.assert(trace.has_fin(Dir::ToStack), "no FIN from the kernel");
    trace.assert(trace.has_fin(Dir::FromStack), "no FIN from the stack");
    trace.assert(
        !trace.has_rst(Dir::ToStack) && !trace.has_rst(Dir::FromStack),
        "RST in a graceful exchange",
    );
}

/// P02: the kernel resets the connection (it closes its socket with unread data, which makes
/// Linux send a RST: RFC 2525 2.17): FD_CLOSE with WSAECONNRESET; a pending overlapped recv
/// completes with WSAECONNRESET; recv and send then fail with WSAECONNRESET.
#[test]
fn p02_kernel_reset_reports_connreset() {
    if !require_tap("p02_kernel_reset_reports_connreset") {
        return;
    }
    let env = TapEnv::start("wsp-p02-peer-rst", |_| {});
    let c = env.connect_kernel(7102, None);
    let ev = select(&env, c.s, FD_READ | FD_CLOSE);
    let done = Event::new();
    let ov = Overlapped::new(Completion::Event(done.clone() as Arc<dyn EventObject>));
    assert_eq!(
        env.p.recv_overlapped(c.s, 4096, &ov),
        Err(WsaError::IO_PENDING)
    );
    assert_eq!(env.p.send(c.s, b"unread by the kernel"), Ok(20));
    let mut one = [0u8; 1];
    assert_eq!(c.k.peek(&mut one).unwrap(), 1);
    // Closing with unread data: Linux resets instead of sending a FIN.
    drop(c.k);
    assert!(
        done.wait(Duration::from_secs(5)),
        "overlapped recv not completed"
    );
    assert_eq!(ov.status(), (WSAECONNRESET, 0));
    assert!(ev.wait(Duration::from_secs(5)), "no event after the RST");
    std::thread::sleep(Duration::from_millis(200));
    let ne = env.p.enum_network_events(c.s, Some(&*ev)).unwrap();
    assert!(ne.events & FD_CLOSE != 0, "{ne:?}");
    assert_eq!(ne.errors[FD_CLOSE_BIT], WSAECONNRESET, "{ne:?}");
    let mut buf = [0u8; 16];
    assert_eq!(env.p.recv(c.s, &mut buf), Err(WsaError::CONNRESET));
    assert_eq!(env.p.send(c.s, b"x"), Err(WsaError::CONNRESET));
    assert_eq!(env.p.close_socket(c.s), Ok(()));

    let trace = env.finish().conn(c.kernel_port);
    trace.assert(trace.has_rst(Dir::ToStack), "no RST from the kernel");
    trace.assert(!trace.has_fin(Dir::ToStack), "FIN from the kernel");
    trace.assert(
        !trace.has_fin(Dir::FromStack),
        "the stack sent a FIN after the reset",
    );
}

/// P03: the kernel sends data then closes gracefully: FD_READ first, FD_CLOSE only once every
/// byte has been read; all data is readable before recv returns 0.
#[test]
fn p03_data_then_fin_fd_close_after_all_read() {
    if !require_tap("p03_data_then_fin_fd_close_after_all_read") {
        return;
    }
    let env = TapEnv::start("wsp-p03-data-fin", |_| {});
    let mut c = env.connect_kernel(7103, None);
    let ev = select(&env, c.s, FD_READ | FD_CLOSE);
    let data = pattern(20_000);
    c.k.write_all(&data).unwrap();
    c.k.shutdown(Shutdown::Write).unwrap();
    assert!(ev.wait(Duration::from_secs(5)), "no event after the data");
    // Data and FIN are both in by now.
    std::thread::sleep(Duration::from_millis(300));
    let first = env.p.enum_network_events(c.s, Some(&*ev)).unwrap();
    assert_eq!(first.events, FD_READ, "{first:?}");

    let mut got = Vec::new();
    let mut eof = false;
    let mut close_seen = false;
    let mut buf = [0u8; 4096];
    let end = Instant::now() + Duration::from_secs(10);
    while !(eof && close_seen) {
        assert!(
            Instant::now() < end,
            "eof {eof}, FD_CLOSE {close_seen}, {} bytes",
            got.len()
        );
        match env.p.recv(c.s, &mut buf) {
            Ok(0) => {
                assert_eq!(got.len(), data.len(), "recv returned 0 before all data");
                eof = true;
            }
            Ok(n) => {
                assert!(!eof, "data after end of stream");
                got.extend_from_slice(&buf[..n]);
            }
            Err(WsaError::WOULDBLOCK) => {
                ev.wait(Duration::from_millis(200));
            }
            Err(e) => panic!("recv: {e:?}"),
        }
        let ne = env.p.enum_network_events(c.s, Some(&*ev)).unwrap();
        if ne.events & FD_CLOSE != 0 {
            assert!(!close_seen, "FD_CLOSE twice");
            assert_eq!(
                got.len(),
                data.len(),
                "FD_CLOSE recorded before all data was read"
            );
            assert_eq!(ne.errors[FD_CLOSE_BIT], 0);
            close_seen = true;
        }
    }
    assert!(got == data);
    assert_eq!(env.p.close_socket(c.s), Ok(()));

    let trace = env.finish().conn(c.kernel_port);
    trace.assert(trace.stream(Dir::ToStack) == data, "kernel's stream");
    trace.assert(trace.has_fin(Dir::ToStack), "no FIN from the kernel");
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
}
