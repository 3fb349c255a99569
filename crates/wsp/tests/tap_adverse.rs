//! Close rows on an adverse network: the wire rows of tap_close.rs again, with the stack's
//! fault middleware losing 5 % of the frames and holding back 5 % behind later ones in both
//! directions (this kernel has no netem), and a 4 MiB echo under 10 % (ignored: 20 %) loss.
//!
//! Each test runs in its own namespace with a capture on the kernel side of the TAP. That
//! capture shows what survived the stack's outgoing faults and everything the kernel sent
//! (its frames may still be lost on the way in), so the assertions claim only what loss
//! cannot excuse: bytes delivered exactly, which flags the stack ever sent, and when. A RST is
//! the one segment smoltcp sends once: when the fault drops it, the kernel learns of the reset
//! from the RST that answers its next segment, so the tests check the kernel's ECONNRESET and
//! accept a later RST only as such an answer.
//!
//! Every test has a fixed seed (a run replays the same pattern of faults); set
//! `LINGERSTACK_FAULT_SEED` to try another. A failing test names its seed.
//!
//! Run as root: `cargo nextest run -p lingerstack-wsp --test tap_adverse`.

#[path = "common/tap.rs"]
mod tap;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use lingerstack_stack::DeviceOptions;
use lingerstack_stack::link::FaultConfig;
use lingerstack_stack::{Counters, StackConfig};
use lingerstack_testkit::peer::read_to_end_or_error;
use lingerstack_testkit::{Dir, Segment, Trace, require_tap};
use lingerstack_wsp::WsaError;
use lingerstack_wsp::consts::*;
use tap::*;

/// Frames lost in each direction, in percent.
const LOSS: u8 = 5;
/// Frames held back behind later ones in each direction, in percent.
const REORDER: u8 = 5;
/// "At once" on a loaded machine.
const AT_ONCE: Duration = Duration::from_secs(1);
/// How far a timed RST may come after its deadline (counted from the call's return).
const RST_SLACK: f64 = 0.1;
/// Far more than a kernel socket with SO_RCVBUF 4096 takes in: its window stays shut.
const STUCK: usize = 100_000;
/// Bytes the rows with a reading kernel send: enough for a few losses each way, few enough
/// that the losses cost seconds, not minutes (smoltcp waits at least 1 s to retransmit, and
/// a kernel whose window grows as it reads does not send the duplicate ACKs that would make
/// smoltcp retransmit sooner).
const BULK: usize = 100_000;
/// A small kernel receive buffer: its window shuts after a few KB.
const SMALL_RCVBUF: Option<usize> = Some(4096);
/// Environment variable that replaces every test's seed.
const SEED_ENV: &str = "LINGERSTACK_FAULT_SEED";

/// Names the seed when the test fails (it is dropped while the panic unwinds).
struct SeedNote(u64);

impl Drop for SeedNote {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "*** faults seeded with {}: replay with {SEED_ENV}={} ***",
                self.0, self.0
            );
        }
    }
}

/// A provider on a faulty TAP, and the seed of its faults.
struct Adverse {
    env: TapEnv,
    note: SeedNote,
}

/// The seed: `LINGERSTACK_FAULT_SEED` if set, else the test's own.
fn seed_or(default: u64) -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_ENV}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// A provider whose device loses `loss` % and reorders `REORDER` % of the frames each way.
fn start(name: &str, seed: u64, loss: u8, tweak: impl FnOnce(&mut StackConfig)) -> Adverse {
    let seed = seed_or(seed);
    eprintln!("{name}: {loss} % loss and {REORDER} % reordering each way, seed {seed}");
    let faults = FaultConfig::seeded(seed)
        .with_loss(loss)
        .with_reordering(REORDER);
    let device = DeviceOptions {
        faults,
        ..DeviceOptions::default()
    };
    let note = SeedNote(seed);
    Adverse {
        env: TapEnv::start_with(name, tweak, device),
        note,
    }
}

impl Adverse {
    /// The engine's counters (read before `finish`, which stops the engine).
    fn counters(&self) -> Counters {
        self.env.p.stack().counters().expect("engine counters")
    }

    /// Assert that frames were lost during the run; print what the faults did each way.
    fn assert_faults_hit(&self) {
        let c = self.counters();
        eprintln!(
            "faults (seed {}): dropped in {} out {}, reordered in {} out {}",
            self.note.0,
            c.rx_dropped_fault,
            c.tx_dropped_fault,
            c.rx_reordered_fault,
            c.tx_reordered_fault
        );
        eprintln!("guard: {:?}", c.guard);
        assert!(
            c.rx_dropped_fault + c.tx_dropped_fault > 0,
            "no frame was lost: {c:?}"
        );
    }

    /// Stop the capture and the provider; the trace of the kernel's `port` only.
    fn finish(self, port: u16) -> (Trace, SeedNote) {
        let Adverse { env, note } = self;
        (env.finish().conn(port), note)
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn io_kind(e: &Option<std::io::Error>) -> Option<ErrorKind> {
    e.as_ref().map(|e| e.kind())
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

/// The kernel reads until end of stream or an error. A reset the stack sent may have been
/// lost (smoltcp sends a RST once): when the kernel's read times out, it sends a byte, which
/// the stack (with no socket for this connection any more) answers with a fresh RST.
fn kernel_read_until_reset(k: &mut TcpStream) -> (Vec<u8>, Option<std::io::Error>) {
    k.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let (mut got, err) = read_to_end_or_error(k);
    let timed_out = matches!(
        io_kind(&err),
        Some(ErrorKind::WouldBlock | ErrorKind::TimedOut)
    );
    if !timed_out {
        return (got, err);
    }
    eprintln!("the kernel heard nothing for 3 s: it writes a byte to draw the stack's RST");
    if let Err(e) = k.write_all(b"?") {
        return (got, Some(e));
    }
    k.set_read_timeout(Some(KERNEL_READ_TIMEOUT)).unwrap();
    let (more, err) = read_to_end_or_error(k);
    got.extend_from_slice(&more);
    (got, err)
}

/// Assert the kernel's end was reset, after reading a prefix of `data` (or none of it).
#[track_caller]
fn assert_kernel_reset(got: &[u8], err: &Option<std::io::Error>, data: &[u8]) {
    assert_eq!(
        io_kind(err),
        Some(ErrorKind::ConnectionReset),
        "kernel: {err:?} after {} bytes",
        got.len()
    );
    assert!(
        got.len() <= data.len() && got == &data[..got.len()],
        "the kernel read bytes that were not sent"
    );
}

/// The stack's RST as the kernel met it. It must not come before `not_before` (a deadline).
/// When it comes after `by` (the moment it was due), the first RST was lost on the way out and
/// this one must answer a kernel segment sent after `by`. Nothing but RSTs may follow it
/// (payload already in flight may be overtaken by it, by up to a reorder hold and a margin).
#[track_caller]
fn assert_stack_reset(trace: &Trace, not_before: SystemTime, by: SystemTime) -> &Segment {
    let rsts = segs(trace, Dir::FromStack, |s| s.flags.rst);
    let Some(rst) = rsts.first() else {
        trace.fail("no RST from the stack")
    };
    trace.assert(
        rst.time >= not_before,
        &format!(
            "RST {:.3} s before it was due",
            secs_between(not_before, rst.time)
        ),
    );
    if rst.time > by {
        let drew_it = segs(trace, Dir::ToStack, |s| s.time >= by && s.time <= rst.time);
        trace.assert(
            !drew_it.is_empty(),
            &format!(
                "RST {:.3} s late and answering no kernel segment",
                secs_between(rst.time, by)
            ),
        );
        eprintln!(
            "the first RST was lost; the kernel's segment at {:.3} s drew one",
            drew_it[0].offset.as_secs_f64()
        );
    }
    let late = segs(trace, Dir::FromStack, |s| {
        !s.flags.rst && !s.payload.is_empty() && secs_between(s.time, rst.time) > 0.1
    });
    trace.assert(late.is_empty(), "payload from the stack after its RST");
    trace.assert(!trace.has_fin(Dir::FromStack), "FIN from the stack");
    rst
}

/// Data segments from the stack the kernel met below the highest sequence number already
/// seen: retransmissions that filled a loss, or frames that were overtaken.
fn out_of_order_from_stack(trace: &Trace) -> usize {
    let mut high: Option<u32> = None;
    let mut n = 0;
    for s in segs(trace, Dir::FromStack, |s| !s.payload.is_empty()) {
        let end = s.seq.wrapping_add(s.payload.len() as u32);
        match high {
            Some(h) if (s.seq.wrapping_sub(h) as i32) < 0 => n += 1,
            _ => {}
        }
        if high.is_none_or(|h| (end.wrapping_sub(h) as i32) > 0) {
            high = Some(end);
        }
    }
    n
}

/// The kernel's repeated data segments (the same sequence number twice): the stack lost the
/// first copy on the way in, or the kernel gave up waiting for its ACK.
fn kernel_retransmissions(trace: &Trace) -> usize {
    let mut seen = std::collections::HashSet::new();
    segs(trace, Dir::ToStack, |s| !s.payload.is_empty())
        .into_iter()
        .filter(|s| !seen.insert((s.seq, s.payload.len())))
        .count()
}

// ---------------------------------------------------------------------------------------
// C03
// ---------------------------------------------------------------------------------------

/// C03 under loss: default linger, data still queued at the close while the kernel reads:
/// close returns 0 at once; the kernel reads every byte then end of stream; on the wire the
/// stack's stream is exact despite the losses (holes filled by retransmissions), its FIN
/// comes right after the last byte, and it never sends a RST.
#[test]
fn c03_adverse_default_close_delivers_everything_then_fin() {
    if !require_tap("c03_adverse_default_close_delivers_everything_then_fin") {
        return;
    }
    let a = start("wsp-adverse-c03", 3, LOSS, |_| {});
    let env = &a.env;
    let c = env.connect_kernel(7203, None);
    let mut k = c.k.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        kernel_read_all(&mut k)
    });
    let data = pattern(BULK);
    assert_eq!(env.p.send(c.s, &data).unwrap(), data.len());
    let queued = env.info(c.stack_port).map_or(0, |i| i.send_queue);
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    assert!(queued > 0, "nothing was queued at the close");
    assert!(took < AT_ONCE, "close took {took:?}");
    let (got, err) = reader.join().unwrap();
    assert!(err.is_none(), "kernel read error: {err:?}");
    assert!(
        got == data,
        "kernel read {} of {} bytes",
        got.len(),
        data.len()
    );
    a.assert_faults_hit();

    let (trace, _note) = a.finish(c.kernel_port);
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    trace.assert(trace.stream(Dir::FromStack) == data, "stream differs");
    assert_fin_after_data(&trace, data.len());
    let holes = out_of_order_from_stack(&trace);
    eprintln!("C03: {queued} B queued at close; {holes} segments met out of order");
    trace.assert(holes > 0, "no loss or reordering reached the kernel");
}

// ---------------------------------------------------------------------------------------
// C04
// ---------------------------------------------------------------------------------------

/// C04 under loss: SO_LINGER {1,0} with data queued behind a shut window: close returns 0 at
/// once; the kernel's read fails with ECONNRESET after a prefix of the data; on the wire the
/// stack's RST comes after the close (or, if it was lost, answers the kernel's next segment),
/// and no FIN and no new payload ever leave.
#[test]
fn c04_adverse_linger_zero_resets() {
    if !require_tap("c04_adverse_linger_zero_resets") {
        return;
    }
    let a = start("wsp-adverse-c04", 4, LOSS, |_| {});
    let env = &a.env;
    let (mut c, data) = stuck_conn(env, 7204);
    env.linger(c.s, 1, 0);
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    let st1 = SystemTime::now();
    assert!(took < AT_ONCE, "close took {took:?}");
    let (got, err) = kernel_read_until_reset(&mut c.k);
    assert_kernel_reset(&got, &err, &data);

    let (trace, _note) = a.finish(c.kernel_port);
    assert_stack_reset(&trace, st0, st1 + AT_ONCE);
    trace.assert(
        trace.payload_bytes(Dir::FromStack) < data.len(),
        "queued data was not discarded",
    );
}

// ---------------------------------------------------------------------------------------
// C05 / C06
// ---------------------------------------------------------------------------------------

/// C05 under loss: SO_LINGER {1,30}, blocking, the kernel reads: close returns 0 once every
/// byte and the FIN are acknowledged, well before the linger time; the kernel reads every byte
/// then end of stream; on the wire the kernel's ACK of the FIN comes before the call
/// returned, the FIN right after the data, and no RST.
#[test]
fn c05_adverse_blocking_linger_returns_when_fin_acked() {
    if !require_tap("c05_adverse_blocking_linger_returns_when_fin_acked") {
        return;
    }
    const N: u16 = 30;
    let a = start("wsp-adverse-c05", 5, LOSS, |_| {});
    let env = &a.env;
    let c = env.connect_kernel(7205, None);
    let mut k = c.k.try_clone().unwrap();
    let reader = std::thread::spawn(move || kernel_read_all(&mut k));
    let data = pattern(BULK);
    assert_eq!(env.p.send(c.s, &data).unwrap(), data.len());
    env.linger(c.s, 1, N);
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    let st1 = SystemTime::now();
    assert!(
        took < Duration::from_secs(N.into()),
        "close took {took:?}: the linger time ran out"
    );
    let (got, err) = reader.join().unwrap();
    assert!(err.is_none(), "kernel read error: {err:?}");
    assert!(
        got == data,
        "kernel read {} of {} bytes",
        got.len(),
        data.len()
    );
    a.assert_faults_hit();

    let (trace, _note) = a.finish(c.kernel_port);
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    trace.assert(trace.stream(Dir::FromStack) == data, "stream differs");
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
    eprintln!("C05: close took {took:?}");
}

/// C06 under loss: SO_LINGER {1,1}, blocking, the kernel's window stays shut: close returns 0
/// not before 1 s and within 1.5 s; the stack's RST is not captured before the linger time
/// ran out, and comes by the call's return plus 100 ms (or answers the kernel's next segment
/// if it was lost); no FIN; the kernel sees ECONNRESET.
#[test]
fn c06_adverse_linger_timeout_resets() {
    if !require_tap("c06_adverse_linger_timeout_resets") {
        return;
    }
    const N: u16 = 1;
    let a = start("wsp-adverse-c06", 6, LOSS, |_| {});
    let env = &a.env;
    let (mut c, data) = stuck_conn(env, 7206);
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
    let (got, err) = kernel_read_until_reset(&mut c.k);
    assert_kernel_reset(&got, &err, &data);

    let (trace, _note) = a.finish(c.kernel_port);
    let due = st0 + n - Duration::from_millis(20);
    let rst = assert_stack_reset(&trace, due, st1 + Duration::from_secs_f64(RST_SLACK));
    eprintln!(
        "C06: close took {took:?}; RST at +{:.3} s",
        secs_between(rst.time, st0)
    );
}

// ---------------------------------------------------------------------------------------
// C11
// ---------------------------------------------------------------------------------------

/// C07's situation under loss: SO_LINGER {1,`secs`}, FIONBIO on, unacknowledged data behind
/// a shut window: close fails with WSAEWOULDBLOCK. Returns the connection, the bytes sent
/// and the time after the failed close.
fn wouldblock_close(env: &TapEnv, port: u16, secs: u16) -> (Conn, Vec<u8>, SystemTime) {
    let (c, sent) = stuck_conn(env, port);
    env.linger(c.s, 1, secs);
    env.nonblocking(c.s, true);
    assert_eq!(env.p.close_socket(c.s), Err(WsaError::WOULDBLOCK));
    (c, sent, SystemTime::now())
}

/// Nothing from the stack flagged FIN or RST up to `mark`.
#[track_caller]
fn assert_quiet_until(trace: &Trace, mark: SystemTime) {
    let bad = segs(trace, Dir::FromStack, |s| {
        (s.flags.fin || s.flags.rst) && s.time <= mark
    });
    trace.assert(bad.is_empty(), "FIN or RST by the WSAEWOULDBLOCK close");
}

/// C11 under loss: after a WSAEWOULDBLOCK close (linger 10 s), WSPShutdown(SD_SEND) then
/// close: 0 at once and the descriptor is gone; the closure completes in the background while
/// the kernel reads: every byte then end of stream; FIN after the data, no RST.
#[test]
fn c11_adverse_shutdown_then_close_completes_in_background() {
    if !require_tap("c11_adverse_shutdown_then_close_completes_in_background") {
        return;
    }
    let a = start("wsp-adverse-c11", 11, LOSS, |_| {});
    let env = &a.env;
    let (mut c, sent, mark) = wouldblock_close(env, 7211, 10);
    assert_eq!(env.p.shutdown(c.s, SD_SEND), Ok(()));
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    assert!(took < AT_ONCE, "close took {took:?}");
    assert_eq!(env.p.send(c.s, b"x"), Err(WsaError::NOTSOCK));
    let (got, err) = kernel_read_all(&mut c.k);
    assert!(err.is_none(), "kernel read error: {err:?}");
    assert!(
        got == sent,
        "kernel read {} of {} bytes",
        got.len(),
        sent.len()
    );
    a.assert_faults_hit();

    let (trace, _note) = a.finish(c.kernel_port);
    assert_quiet_until(&trace, mark);
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    trace.assert(trace.stream(Dir::FromStack) == sent, "stream differs");
    assert_fin_after_data(&trace, sent.len());
}

/// C11 (deadline) under loss: after a WSAEWOULDBLOCK close with SO_LINGER {1,1},
/// WSPShutdown(SD_SEND) and close: 0 at once; the kernel's window stays shut, so 1 s after
/// the close call the provider resets the connection: the RST is not captured before 1 s,
/// and comes by 1 s after the call's return plus 100 ms (or answers the kernel's next segment
/// if it was lost); no FIN; the kernel sees ECONNRESET.
#[test]
fn c11_adverse_shutdown_close_resets_after_linger_time() {
    if !require_tap("c11_adverse_shutdown_close_resets_after_linger_time") {
        return;
    }
    let a = start("wsp-adverse-c11-deadline", 111, LOSS, |_| {});
    let env = &a.env;
    let (mut c, sent, mark) = wouldblock_close(env, 7212, 1);
    assert_eq!(env.p.shutdown(c.s, SD_SEND), Ok(()));
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    let st1 = SystemTime::now();
    assert!(took < AT_ONCE, "close took {took:?}");
    std::thread::sleep(Duration::from_millis(2000));
    let (got, err) = kernel_read_until_reset(&mut c.k);
    assert_kernel_reset(&got, &err, &sent);

    let (trace, _note) = a.finish(c.kernel_port);
    assert_quiet_until(&trace, mark);
    let due = st0 + Duration::from_secs(1) - Duration::from_millis(20);
    let by = st1 + Duration::from_secs_f64(1.0 + RST_SLACK);
    let rst = assert_stack_reset(&trace, due, by);
    eprintln!(
        "C11: RST {:.3} s after the close",
        secs_between(rst.time, st0)
    );
}

// ---------------------------------------------------------------------------------------
// C12
// ---------------------------------------------------------------------------------------

/// C12 under loss: 20 KB the application never read are in the socket at the close
/// (default linger): close returns 0 at once; the stack resets instead of sending a FIN (a
/// lost RST is drawn again by the kernel's next segment); the kernel sees ECONNRESET.
#[test]
fn c12_adverse_unread_data_at_close_resets() {
    if !require_tap("c12_adverse_unread_data_at_close_resets") {
        return;
    }
    let a = start("wsp-adverse-c12", 12, LOSS, |_| {});
    let env = &a.env;
    let mut c = env.connect_kernel(7213, None);
    let msg = pattern(20_000);
    c.k.write_all(&msg).unwrap();
    eventually("every byte at the stack", || {
        env.readable_bytes(c.s).unwrap() as usize == msg.len()
    });
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    let st1 = SystemTime::now();
    assert!(took < AT_ONCE, "close took {took:?}");
    let (got, err) = kernel_read_until_reset(&mut c.k);
    assert_kernel_reset(&got, &err, &[]);

    let (trace, _note) = a.finish(c.kernel_port);
    trace.assert(
        trace.stream(Dir::ToStack).starts_with(&msg),
        "kernel's data",
    );
    assert_stack_reset(&trace, st0, st1 + AT_ONCE);
    eprintln!(
        "C12: {} kernel retransmissions",
        kernel_retransmissions(&trace)
    );
}

/// C12 (late data) under loss: after a graceful close the kernel reads the data and end of
/// stream, then writes; the stack, which nobody can read for any more, answers with a RST
/// (again for each retransmission if one is lost), and a later kernel write fails.
#[test]
fn c12_adverse_data_after_close_resets() {
    if !require_tap("c12_adverse_data_after_close_resets") {
        return;
    }
    let a = start("wsp-adverse-c12-late", 121, LOSS, |_| {});
    let env = &a.env;
    let mut c = env.connect_kernel(7214, None);
    let data = pattern(50_000);
    assert_eq!(env.p.send(c.s, &data), Ok(data.len()));
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let (got, err) = kernel_read_all(&mut c.k);
    assert!(
        got == data && err.is_none(),
        "{err:?} after {} bytes",
        got.len()
    );
    let st0 = SystemTime::now();
    c.k.write_all(b"late data nobody reads").unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let failed = loop {
        std::thread::sleep(Duration::from_millis(100));
        match c.k.write_all(b"more") {
            Err(e) => break e,
            Ok(()) => assert!(Instant::now() < end, "the kernel's writes never failed"),
        }
    };
    assert!(
        matches!(
            failed.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        ),
        "the kernel's write after the stack's RST: {failed:?}"
    );

    let (trace, _note) = a.finish(c.kernel_port);
    assert_fin_after_data(&trace, data.len());
    trace.assert(trace.stream(Dir::FromStack) == data, "stream differs");
    let rst = match segs(&trace, Dir::FromStack, |s| s.flags.rst).first() {
        Some(r) => *r,
        None => trace.fail("no RST from the stack"),
    };
    trace.assert(rst.time >= st0, "RST before the late data");
}

// ---------------------------------------------------------------------------------------
// C24
// ---------------------------------------------------------------------------------------

/// C24 under loss: a graceful background close that never finishes (the kernel's window
/// stays shut): close returns 0 at once; the close deadline (2 s) resets the connection: the
/// RST is not captured before 2 s and comes by 2 s after the call's return plus 100 ms (or
/// answers the kernel's next segment if it was lost); no FIN; the kernel sees ECONNRESET.
#[test]
fn c24_adverse_close_deadline_resets_stuck_close() {
    if !require_tap("c24_adverse_close_deadline_resets_stuck_close") {
        return;
    }
    let a = start("wsp-adverse-c24", 24, LOSS, |cfg| {
        cfg.close_deadline = Duration::from_secs(2)
    });
    let env = &a.env;
    let (mut c, data) = stuck_conn(env, 7224);
    let st0 = SystemTime::now();
    let t0 = Instant::now();
    assert_eq!(env.p.close_socket(c.s), Ok(()));
    let took = t0.elapsed();
    let st1 = SystemTime::now();
    assert!(took < AT_ONCE, "close took {took:?}");
    std::thread::sleep(Duration::from_millis(3000));
    let (got, err) = kernel_read_until_reset(&mut c.k);
    assert_kernel_reset(&got, &err, &data);

    let (trace, _note) = a.finish(c.kernel_port);
    let due = st0 + Duration::from_secs(2) - Duration::from_millis(20);
    let by = st1 + Duration::from_secs_f64(2.0 + RST_SLACK);
    let rst = assert_stack_reset(&trace, due, by);
    eprintln!(
        "C24: RST {:.3} s after the close",
        secs_between(rst.time, st0)
    );
}

// ---------------------------------------------------------------------------------------
// Echo
// ---------------------------------------------------------------------------------------

/// 4 MiB through a provider echo service under 10 % loss and 5 % reordering each way: the
/// suite's version of [`adverse_echo_4mib_under_20_percent_loss`] (see there why that one is
/// not run by default).
#[test]
fn adverse_echo_4mib_under_10_percent_loss() {
    if !require_tap("adverse_echo_4mib_under_10_percent_loss") {
        return;
    }
    echo_under_heavy_loss("wsp-adverse-echo-10", 7251, 4 << 20, 10);
}

/// 4 MiB (or `LINGERSTACK_ECHO_BYTES`) through a provider echo service under 20 % loss and
/// 5 % reordering each way (see [`echo_under_heavy_loss`]).
///
/// smoltcp 0.14 alone needed minutes for a fraction of this (its retransmission timeout climbs
/// to a minute under such loss; see docs/robustness.md). With the guard's prompted
/// retransmissions and salvaged ACKs, and the FIN held in CLOSE-WAIT while data is
/// unacknowledged, it usually takes 6-25 s, but the kernel, as the sender of the stream the
/// stack echoes, sometimes backs its own retransmission timeout off to two minutes (2 of 11
/// runs: 143 s and 398 s), more than the suite can spend. Run it with `cargo nextest run -p
/// lingerstack-wsp --test tap_adverse --run-ignored only`.
#[test]
#[ignore = "minutes when the kernel's own timeout backs off: the 10 % loss test runs in the suite"]
fn adverse_echo_4mib_under_20_percent_loss() {
    if !require_tap("adverse_echo_4mib_under_20_percent_loss") {
        return;
    }
    let len = std::env::var("LINGERSTACK_ECHO_BYTES").map_or(4 << 20, |v| {
        v.trim()
            .parse()
            .expect("LINGERSTACK_ECHO_BYTES is a number")
    });
    echo_under_heavy_loss("wsp-adverse-echo", 7250, len, 20);
}

/// `len` bytes through a provider echo service under `loss` % loss and 5 % reordering each way:
/// the kernel reads back every byte, in order, then end of stream; the capture holds the same
/// stream both ways, the stack ends with a FIN after the last byte and never resets, and the
/// losses left their mark on the wire both ways.
fn echo_under_heavy_loss(name: &str, port: u16, len: usize, loss: u8) {
    let a = start(name, 20, loss, |_| {});
    let env = &a.env;
    let l = env.p.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP).unwrap();
    env.p.bind(l, env.stack(port)).unwrap();
    env.p.listen(l, 1).unwrap();
    let p = env.p.clone();
    let server = std::thread::spawn(move || echo_one(&p, l));
    let t0 = Instant::now();
    let k = lingerstack_testkit::peer::tcp_connect(
        env.net.ns(),
        env.stack(port),
        None,
        Duration::from_secs(20),
    )
    .expect("kernel connect under loss");
    let kernel_port = k.local_addr().unwrap().port();
    let data = pattern(len);
    let mut w = k.try_clone().unwrap();
    let to_send = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&to_send)?;
        w.shutdown(Shutdown::Write)
    });
    let (got, err) = read_with_progress(k.try_clone().unwrap(), len, t0);
    if err.is_some() {
        // Unblock the kernel's writer (and through it the echo service) before joining.
        let _ = k.shutdown(Shutdown::Both);
    }
    let wrote = writer.join().unwrap();
    let echoed = server.join().unwrap();
    eprintln!("echo: {len} B each way in {:?}", t0.elapsed());
    assert!(
        err.is_none(),
        "kernel read: {err:?} after {} bytes",
        got.len()
    );
    assert!(wrote.is_ok(), "kernel write: {wrote:?}");
    assert_eq!(echoed, len, "the service echoed {echoed} bytes");
    assert!(
        got == data,
        "kernel read {} of {len} bytes, or other bytes",
        got.len()
    );
    a.assert_faults_hit();

    let (trace, _note) = a.finish(kernel_port);
    trace.assert(trace.stream(Dir::ToStack) == data, "the kernel's stream");
    trace.assert(trace.stream(Dir::FromStack) == data, "the stack's stream");
    trace.assert(!trace.has_rst(Dir::FromStack), "RST from the stack");
    assert_fin_after_data(&trace, len);
    let (holes, again) = (
        out_of_order_from_stack(&trace),
        kernel_retransmissions(&trace),
    );
    eprintln!("echo: {holes} stack segments out of order, {again} kernel retransmissions");
    trace.assert(
        holes > 0 && again > 0,
        "the losses left no mark on the wire",
    );
}

/// Longest wait for any one read of the echo: past Linux's largest retransmission timeout
/// (120 s), which the kernel, as the sender of the stream the stack echoes, can reach under
/// this much loss (see docs/robustness.md); a stall of smoltcp's own would end well before.
const ECHO_READ_WAIT: Duration = Duration::from_secs(150);

/// The kernel reads until end of stream (each read may wait `ECHO_READ_WAIT`), saying every 10 s how far
/// it got.
fn read_with_progress(
    mut k: TcpStream,
    len: usize,
    t0: Instant,
) -> (Vec<u8>, Option<std::io::Error>) {
    k.set_read_timeout(Some(ECHO_READ_WAIT)).unwrap();
    let mut got = Vec::with_capacity(len);
    let mut buf = vec![0u8; 64 * 1024];
    let mut said = Instant::now();
    loop {
        match k.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (got, Some(e)),
        }
        if said.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "echo: {} of {len} B back after {:?}",
                got.len(),
                t0.elapsed()
            );
            said = Instant::now();
        }
    }
}

/// Accept one connection on `l` and echo it until end of stream; close gracefully. Returns
/// the bytes echoed.
fn echo_one(p: &lingerstack_wsp::Provider, l: usize) -> usize {
    let (s, _) = p.accept(l, None).expect("accept");
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    // Stops at end of stream, or at an error (the test reports the short count).
    while let Ok(n @ 1..) = p.recv(s, &mut buf) {
        if p.send(s, &buf[..n]) != Ok(n) {
            break;
        }
        total += n;
    }
    let _ = p.close_socket(s);
    let _ = p.close_socket(l);
    total
}
