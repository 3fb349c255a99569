//! The ways WSPCloseSocket can end a connection, shown on a real wire.
//!
//! As root (CAP_NET_ADMIN, /dev/net/tun, iproute2) this creates a private network namespace
//! with a TAP device, starts a `lingerstack_wsp::Provider` on the TAP, and runs one connection
//! per close mode against a listener of the namespace's Linux kernel:
//!
//! 1. default (SO_DONTLINGER): close returns at once, the data and a FIN follow in the
//!    background (close-semantics C03);
//! 2. SO_LINGER {1,0}: close returns at once, the stack resets, queued data is discarded (C04);
//! 3. SO_LINGER {1,2}, blocking, the kernel not reading: close waits 2 s, then resets (C06).
//!
//! With `--more`, two more: SO_LINGER {1,5}, blocking, the kernel reading (C05: close returns
//! once the FIN is acknowledged), and SO_LINGER {1,5} on a non-blocking socket (C07: close
//! fails with WSAEWOULDBLOCK and sends nothing; then shutdown(SD_SEND) and close again, C11).
//!
//! Each time the kernel's socket has a 4 KB receive buffer and does not read, so 20,000 sent
//! bytes stall behind a zero window and the close happens with data still queued. The kernel
//! then reads until end of stream or an error. For each mode the example prints what the
//! kernel saw, what each call returned and how long it took, and the captured segments of that
//! connection (kernel side of the TAP; t = 0 is the first close call, sequence numbers relative
//! to each side's SYN, window the raw field), with the calls marked where they happened. One
//! pcap per mode is written under `<target dir>/captures/`.
//!
//! Without root it says so, prints what it would show, and exits 0 (there is no in-memory
//! fallback: the point is what the Linux kernel sees).
//!
//! ```text
//! cargo run --example close_modes [-- --more]     # as root
//! RUST_LOG=debug cargo run --example close_modes
//! ```
//!
//! Exit status (as root): 0 when every mode behaved as the contract says, 1 otherwise.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use lingerstack_tap::TapLink;
use lingerstack_testkit::{Capture, Dir, Segment, TapNet, Trace, peer, stack_config};
use lingerstack_wsp::consts::*;
use lingerstack_wsp::{Linger, Provider, ProviderConfig, WsaError, WsaResult};

/// Bytes the stack sends on each connection: far more than the kernel's buffer takes.
const DATA: usize = 20_000;
/// The kernel socket's SO_RCVBUF: its window shuts after a few KB.
const KERNEL_RCVBUF: usize = 4096;
/// Linger time of mode 3, seconds.
const LINGER_SECS: u16 = 2;
/// Linger time of the `--more` modes, seconds (never reached there).
const LONG_LINGER_SECS: u16 = 5;
/// How long the kernel waits before it reads, where the close should go on without it.
const KERNEL_PAUSE: Duration = Duration::from_millis(300);
/// The kernel's reads give up after this long (a hang, not an answer).
const KERNEL_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// "At once" on a loaded machine.
const AT_ONCE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// SO_DONTLINGER (the default).
    Default,
    /// SO_LINGER {1,0}.
    Abortive,
    /// SO_LINGER {1,LINGER_SECS}, blocking socket, the kernel not reading.
    LingerTimeout,
    /// SO_LINGER {1,LONG_LINGER_SECS}, blocking socket, the kernel reading (`--more`).
    LingerAcked,
    /// SO_LINGER {1,LONG_LINGER_SECS}, non-blocking socket; then shutdown(SD_SEND) (`--more`).
    NonBlocking,
}

impl Mode {
    fn list(more: bool) -> Vec<Mode> {
        let mut modes = vec![Mode::Default, Mode::Abortive, Mode::LingerTimeout];
        if more {
            modes.extend([Mode::LingerAcked, Mode::NonBlocking]);
        }
        modes
    }

    fn title(self) -> String {
        match self {
            Mode::Default => "default (SO_DONTLINGER): graceful, in the background".into(),
            Mode::Abortive => "SO_LINGER {1,0}: abortive".into(),
            Mode::LingerTimeout => format!(
                "SO_LINGER {{1,{LINGER_SECS}}}, blocking, kernel not reading: linger timeout, then RST"
            ),
            Mode::LingerAcked => format!(
                "SO_LINGER {{1,{LONG_LINGER_SECS}}}, blocking, kernel reading: returns once the FIN is acknowledged"
            ),
            Mode::NonBlocking => format!(
                "SO_LINGER {{1,{LONG_LINGER_SECS}}}, non-blocking: WSAEWOULDBLOCK, then shutdown(SD_SEND) and close"
            ),
        }
    }

    fn linger(self) -> Option<Linger> {
        let on = |linger| Some(Linger { onoff: 1, linger });
        match self {
            Mode::Default => None,
            Mode::Abortive => on(0),
            Mode::LingerTimeout => on(LINGER_SECS),
            Mode::LingerAcked | Mode::NonBlocking => on(LONG_LINGER_SECS),
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Mode::Default => "default",
            Mode::Abortive => "linger-0",
            Mode::LingerTimeout => "linger-timeout",
            Mode::LingerAcked => "linger-acked",
            Mode::NonBlocking => "nonblocking",
        }
    }

    fn rows(self) -> &'static str {
        match self {
            Mode::Default => "C03",
            Mode::Abortive => "C04",
            Mode::LingerTimeout => "C06",
            Mode::LingerAcked => "C05",
            Mode::NonBlocking => "C07, C11",
        }
    }

    fn expected(self) -> String {
        match self {
            Mode::Default => "close returns 0 at once; the kernel reads every byte, then EOF; \
                              data then FIN from the stack, no RST"
                .into(),
            Mode::Abortive => "close returns 0 at once; RST from the stack, no FIN; queued data \
                               discarded; the kernel's read fails with ECONNRESET"
                .into(),
            Mode::LingerTimeout => format!(
                "close returns 0 after {LINGER_SECS} s (within {LINGER_SECS}.5 s); a RST, sent \
                 before the call returns, no FIN; the kernel's read fails with ECONNRESET"
            ),
            Mode::LingerAcked => "close returns 0 once every byte and the FIN are acknowledged \
                                  (the kernel's ACK of the FIN precedes the return); the kernel \
                                  reads every byte, then EOF; no RST"
                .into(),
            Mode::NonBlocking => "the first close fails at once with WSAEWOULDBLOCK and sends \
                                  neither FIN nor RST; after shutdown(SD_SEND) the second close \
                                  returns 0 at once; the kernel reads every byte, then EOF; FIN \
                                  after the data, no RST"
                .into(),
        }
    }
}

/// One provider call made around the close, for the listing and the verdict.
struct Call {
    what: &'static str,
    result: WsaResult<()>,
    at: SystemTime,
    took: Duration,
}

impl Call {
    fn returned(&self) -> SystemTime {
        self.at + self.took
    }

    fn result_text(&self) -> String {
        match &self.result {
            Ok(()) => "0".into(),
            Err(e) => format!("SOCKET_ERROR, {e}"),
        }
    }
}

/// Makes `f`'s call, timed.
fn timed(what: &'static str, f: impl FnOnce() -> WsaResult<()>) -> Call {
    let at = SystemTime::now();
    let t = Instant::now();
    let result = f();
    Call {
        what,
        result,
        at,
        took: t.elapsed(),
    }
}

/// What one mode produced.
struct Run {
    mode: Mode,
    kernel_port: u16,
    /// The calls from the first close on; the last one is the close that released the socket.
    calls: Vec<Call>,
    kernel_read: usize,
    kernel_end: Result<(), std::io::Error>,
    trace: Trace,
}

impl Run {
    /// t = 0 of the listing: the first close call.
    fn t0(&self) -> SystemTime {
        self.calls[0].at
    }

    fn last_close(&self) -> &Call {
        self.calls.last().expect("at least one close")
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let more = std::env::args().skip(1).any(|a| a == "--more");
    if let Err(why) = lingerstack_testkit::tap_available() {
        explain_without_root(&why, more);
        return ExitCode::SUCCESS;
    }
    let started = Instant::now();
    match over_tap(more) {
        Ok(true) => {
            println!(
                "\nresult: OK, every mode as the contract says ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("\nresult: a mode differed from the contract (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("\nresult: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn explain_without_root(why: &str, more: bool) {
    println!("close_modes needs root (CAP_NET_ADMIN), /dev/net/tun and iproute2: it creates a");
    println!("network namespace with a TAP device and uses the Linux kernel as the peer.");
    println!("Not possible here: {why}.");
    println!("Run it as root: sudo -E cargo run --example close_modes [-- --more]");
    println!();
    println!("What it shows, one connection per mode ({DATA} bytes sent to a kernel socket with");
    println!(
        "SO_RCVBUF {KERNEL_RCVBUF} that does not read, so data is still queued at the close):"
    );
    let modes = Mode::list(more);
    for (i, mode) in modes.iter().enumerate() {
        println!(
            "  [{}/{}] {} ({})",
            i + 1,
            modes.len(),
            mode.title(),
            mode.rows()
        );
        println!("        expected: {}", mode.expected());
    }
    println!("and for each: the kernel's bytes read and how its read ended (EOF or ECONNRESET),");
    println!("each call's return and duration, the captured segments of the connection with the");
    println!("calls marked (t = 0 at the first close call), and the pcap file's path.");
}

fn over_tap(more: bool) -> Result<bool, String> {
    let net = TapNet::new().map_err(|e| format!("creating the namespace and TAP: {e}"))?;
    let name = net.tap_name().to_string();
    let link = net
        .ns()
        .run(move || TapLink::open(&name))
        .map_err(|e| format!("opening the TAP: {e}"))?;
    let config = ProviderConfig {
        cleanup_grace: Duration::from_millis(300),
        ..ProviderConfig::new(stack_config(&net))
    };
    let p = Provider::startup(config, Box::new(link))
        .map_err(|e| format!("WSPStartup on the TAP: {e}"))?;
    net.wait_link_up(lingerstack_testkit::tapnet::LINK_UP_TIMEOUT)
        .map_err(|e| format!("TAP link: {e}"))?;
    println!(
        "link: TAP {} in namespace {}; kernel {}, lingerstack provider {}",
        net.tap_name(),
        net.ns().name(),
        net.kernel_v4(),
        net.stack_v4()
    );
    println!(
        "each mode: {DATA} bytes sent to a kernel socket with SO_RCVBUF {KERNEL_RCVBUF} that does \
         not read until the close"
    );

    let modes = Mode::list(more);
    let mut all_ok = true;
    let mut pcaps = Vec::new();
    for (i, &mode) in modes.iter().enumerate() {
        println!("\n[{}/{}] {}", i + 1, modes.len(), mode.title());
        let run = run_mode(&net, &p, mode, i + 1)?;
        all_ok &= report(&run);
        pcaps.push(run.trace.pcap_path.clone());
    }
    let _ = p.cleanup();
    drop(net);
    println!("\npcap files (kernel side of the TAP, one per mode):");
    for path in &pcaps {
        println!("  {}", path.display());
    }
    println!("namespace and TAP removed");
    Ok(all_ok)
}

/// One connection: connect, send, let the kernel's window shut, close as `mode` says, let the
/// kernel read.
fn run_mode(net: &TapNet, p: &Provider, mode: Mode, n: usize) -> Result<Run, String> {
    let port = 7300 + n as u16;
    let capture = Capture::start(
        net.ns(),
        net.tap_name(),
        &format!("close-modes-{n}-{}", mode.slug()),
    )
    .map_err(|e| format!("starting the capture: {e}"))?;
    let kernel_addr = SocketAddr::new(net.kernel_v4().into(), port);
    let listener = peer::tcp_listener(net.ns(), kernel_addr, Some(KERNEL_RCVBUF))
        .map_err(|e| format!("kernel listener: {e}"))?;
    let s = p
        .socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)
        .map_err(wsa("WSPSocket"))?;
    p.connect(s, kernel_addr).map_err(wsa("WSPConnect"))?;
    let (mut k, _) = listener
        .accept()
        .map_err(|e| format!("kernel accept: {e}"))?;
    drop(listener);
    let stack_port = p.get_sock_name(s).map_err(wsa("getsockname"))?.port();
    if let Some(l) = mode.linger() {
        p.set_sock_opt(s, SOL_SOCKET, SO_LINGER, Some(&l.to_bytes()))
            .map_err(wsa("SO_LINGER"))?;
    }
    let mut b = [0u8; 4];
    p.get_sock_opt(s, SOL_SOCKET, SO_LINGER, &mut b)
        .map_err(wsa("getsockopt SO_LINGER"))?;
    let l = Linger::from_bytes(b);
    println!(
        "  provider socket {s:#x} {}:{stack_port} -> kernel {kernel_addr}; SO_LINGER {{{},{}}}",
        net.stack_v4(),
        l.onoff,
        l.linger
    );

    let data: Vec<u8> = (0..DATA).map(|i| (i % 251) as u8).collect();
    let sent = p.send(s, &data).map_err(wsa("WSPSend"))?;
    let queued = wait_stalled(p, stack_port)?;
    println!(
        "  sent {sent} bytes; the kernel's window is shut with {queued} bytes still queued in \
         the stack"
    );

    let mut calls = Vec::new();
    let (kernel_read, kernel_end) = match mode {
        Mode::Default | Mode::Abortive | Mode::LingerTimeout => {
            calls.push(timed("WSPCloseSocket", || p.close_socket(s)));
            if mode == Mode::Default {
                // The close goes on in the background while the kernel still does not read.
                std::thread::sleep(KERNEL_PAUSE);
            }
            kernel_read(&mut k)
        }
        Mode::LingerAcked => {
            // The kernel starts reading a little after the close began; the close waits for it.
            let mut reader = k.try_clone().map_err(|e| format!("kernel socket: {e}"))?;
            let reader = std::thread::spawn(move || {
                std::thread::sleep(KERNEL_PAUSE);
                kernel_read(&mut reader)
            });
            calls.push(timed("WSPCloseSocket", || p.close_socket(s)));
            reader.join().map_err(|_| "kernel reader panicked")?
        }
        Mode::NonBlocking => {
            let mut on = 1u32;
            p.ioctl(s, FIONBIO, &mut on).map_err(wsa("FIONBIO"))?;
            calls.push(timed("WSPCloseSocket", || p.close_socket(s)));
            // The descriptor is still valid; the three ways out are SO_DONTLINGER, SO_LINGER
            // {1,0} and shutdown(SD_SEND). This takes the last.
            std::thread::sleep(Duration::from_millis(100));
            calls.push(timed("WSPShutdown(SD_SEND)", || p.shutdown(s, SD_SEND)));
            calls.push(timed("WSPCloseSocket", || p.close_socket(s)));
            std::thread::sleep(KERNEL_PAUSE);
            kernel_read(&mut k)
        }
    };
    drop(k);
    // Let the kernel's own close (FIN, or nothing after a reset) reach the capture.
    std::thread::sleep(Duration::from_millis(200));
    let trace = capture.stop().conn(port);
    Ok(Run {
        mode,
        kernel_port: port,
        calls,
        kernel_read,
        kernel_end,
        trace,
    })
}

/// Wait until the connection's send queue is non-empty and has not moved for 300 ms.
fn wait_stalled(p: &Provider, stack_port: u16) -> Result<usize, String> {
    let end = Instant::now() + Duration::from_secs(5);
    let mut last = (usize::MAX, Instant::now());
    while Instant::now() < end {
        let q = p
            .stack()
            .sockets()
            .map_err(|e| format!("engine sockets: {e}"))?
            .into_iter()
            .find(|i| i.remote.is_some() && i.local.is_some_and(|l| l.port() == stack_port))
            .map_or(0, |i| i.send_queue);
        if q != last.0 {
            last = (q, Instant::now());
        } else if q > 0 && last.1.elapsed() >= Duration::from_millis(300) {
            return Ok(q);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "the send queue of port {stack_port} never stalled (last {})",
        last.0
    ))
}

/// The kernel reads until end of stream or an error: (bytes, how it ended).
fn kernel_read(k: &mut TcpStream) -> (usize, Result<(), std::io::Error>) {
    let _ = k.set_read_timeout(Some(KERNEL_READ_TIMEOUT));
    let (got, err) = peer::read_to_end_or_error(k);
    (got.len(), err.map_or(Ok(()), Err))
}

/// Prints one mode's results and judges them against the contract; true when they match.
fn report(r: &Run) -> bool {
    for c in &r.calls {
        println!(
            "  {} -> {} after {}",
            c.what,
            c.result_text(),
            fmt_duration(c.took)
        );
    }
    let end = match &r.kernel_end {
        Ok(()) => "then EOF".to_string(),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => "then ECONNRESET".to_string(),
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            format!("then nothing for {KERNEL_READ_TIMEOUT:?} (read timed out)")
        }
        Err(e) => format!("then error: {e}"),
    };
    println!(
        "  kernel (port {}) read {} of {DATA} bytes, {end}",
        r.kernel_port, r.kernel_read
    );
    println!(
        "  capture, {} segments (t = 0: first close call; seq/ack relative; win raw, unscaled):",
        r.trace.segments.len()
    );
    print_segments(r);
    println!("  pcap: {}", r.trace.pcap_path.display());

    let problems = judge(r);
    if problems.is_empty() {
        println!(
            "  => as the contract says ({}): {}",
            r.mode.rows(),
            r.mode.expected()
        );
        true
    } else {
        println!(
            "  => DIFFERS from the contract ({}): {}",
            r.mode.rows(),
            problems.join("; ")
        );
        println!("     expected: {}", r.mode.expected());
        false
    }
}

/// One line per segment, with the calls marked where they happened.
fn print_segments(r: &Run) {
    let t = &r.trace;
    let t0 = r.t0();
    let isn = |dir: Dir| t.dir(dir).into_iter().find(|s| s.flags.syn).map(|s| s.seq);
    let (stack_isn, kernel_isn) = (isn(Dir::FromStack), isn(Dir::ToStack));
    // (time, order, line): markers sort before segments captured at the same instant.
    let mut lines: Vec<(SystemTime, u8, String)> = Vec::new();
    for c in &r.calls {
        let mark = |at: SystemTime, text: String| {
            (
                at,
                0,
                format!("   ------ {:+.6} {text} ------", secs(at, t0)),
            )
        };
        if c.took < Duration::from_millis(5) {
            lines.push(mark(
                c.at,
                format!(
                    "{} -> {} ({})",
                    c.what,
                    c.result_text(),
                    fmt_duration(c.took)
                ),
            ));
        } else {
            lines.push(mark(c.at, format!("{} called", c.what)));
            lines.push(mark(
                c.returned(),
                format!(
                    "{} returned {} ({})",
                    c.what,
                    c.result_text(),
                    fmt_duration(c.took)
                ),
            ));
        }
    }
    for s in &t.segments {
        lines.push((s.time, 1, segment_line(s, t0, stack_isn, kernel_isn)));
    }
    lines.sort_by_key(|(at, order, _)| (*at, *order));
    for (_, _, line) in lines {
        println!("  {line}");
    }
}

fn segment_line(
    s: &Segment,
    t0: SystemTime,
    stack_isn: Option<u32>,
    kernel_isn: Option<u32>,
) -> String {
    let (own, other) = match s.dir {
        Dir::FromStack => (stack_isn, kernel_isn),
        Dir::ToStack => (kernel_isn, stack_isn),
    };
    let rel = |n: u32, base: Option<u32>| base.map_or(n, |b| n.wrapping_sub(b));
    let ack = if s.flags.ack {
        format!(" ack {}", rel(s.ack, other))
    } else {
        String::new()
    };
    let arrow = match s.dir {
        Dir::FromStack => "stack > kernel",
        Dir::ToStack => "kernel > stack",
    };
    format!(
        "{:+10.6} {arrow} {:<5} seq {}{ack} win {} len {}",
        secs(s.time, t0),
        s.flags.to_string(),
        rel(s.seq, own),
        s.window,
        s.payload.len()
    )
}

/// What differs from the contract rows of `r.mode` (empty when nothing does).
fn judge(r: &Run) -> Vec<String> {
    let mut problems = Vec::new();
    let t = &r.trace;
    let last = r.last_close();
    if last.result.is_err() {
        problems.push(format!("the last close returned {}", last.result_text()));
    }
    let first_rst = t
        .dir(Dir::FromStack)
        .into_iter()
        .find(|s| s.flags.rst)
        .map(|s| s.time);
    let fin = t.dir(Dir::FromStack).into_iter().find(|s| s.flags.fin);
    let reset = matches!(&r.kernel_end, Err(e) if e.kind() == ErrorKind::ConnectionReset);
    let all_then_eof = r.kernel_read == DATA && r.kernel_end.is_ok();
    let graceful = |problems: &mut Vec<String>| {
        if !all_then_eof {
            problems.push("the kernel did not read every byte then EOF".into());
        }
        if fin.is_none() {
            problems.push("no FIN from the stack".into());
        }
        if first_rst.is_some() {
            problems.push("RST from the stack".into());
        }
        if t.stream(Dir::FromStack).len() != DATA {
            problems.push("the stream on the wire is not all the data".into());
        }
    };
    let at_once = |c: &Call, problems: &mut Vec<String>| {
        if c.took >= AT_ONCE {
            problems.push(format!("{} took {}", c.what, fmt_duration(c.took)));
        }
    };
    match r.mode {
        Mode::Default => {
            at_once(last, &mut problems);
            graceful(&mut problems);
        }
        Mode::Abortive => {
            at_once(last, &mut problems);
            if !reset || r.kernel_read >= DATA {
                problems.push("the kernel did not see ECONNRESET before all data".into());
            }
            if fin.is_some() {
                problems.push("FIN from the stack".into());
            }
            match first_rst {
                None => problems.push("no RST from the stack".into()),
                Some(at) if secs(at, last.at) >= 1.0 => {
                    problems.push(format!("RST {:.3} s after the close", secs(at, last.at)))
                }
                Some(_) => {}
            }
        }
        Mode::LingerTimeout => {
            let n = Duration::from_secs(LINGER_SECS.into());
            if last.took < n || last.took > n + Duration::from_millis(500) {
                problems.push(format!("close took {}", fmt_duration(last.took)));
            }
            if !reset {
                problems.push("the kernel did not see ECONNRESET".into());
            }
            if fin.is_some() {
                problems.push("FIN from the stack".into());
            }
            match first_rst {
                None => problems.push("no RST from the stack".into()),
                Some(at) if at > last.returned() => {
                    problems.push("the RST left after the close returned".into())
                }
                Some(at) if secs(at, last.at) < f64::from(LINGER_SECS) - 0.02 => {
                    problems.push("the RST left before the linger time ran out".into())
                }
                Some(_) => {}
            }
        }
        Mode::LingerAcked => {
            if last.took >= Duration::from_secs(LONG_LINGER_SECS.into()) {
                problems.push(format!("close took {}", fmt_duration(last.took)));
            }
            graceful(&mut problems);
            if let Some(fin) = fin {
                let fin_end = fin.seq.wrapping_add(fin.payload.len() as u32 + 1);
                let ack = t
                    .dir(Dir::ToStack)
                    .into_iter()
                    .find(|s| s.flags.ack && (s.ack.wrapping_sub(fin_end) as i32) >= 0);
                match ack {
                    None => problems.push("the kernel never acknowledged the FIN".into()),
                    Some(a) if a.time > last.returned() => {
                        problems.push("close returned before the FIN was acknowledged".into())
                    }
                    Some(_) => {}
                }
            }
        }
        Mode::NonBlocking => {
            let first = &r.calls[0];
            if first.result != Err(WsaError::WOULDBLOCK) {
                problems.push(format!("the first close returned {}", first.result_text()));
            }
            at_once(first, &mut problems);
            at_once(last, &mut problems);
            let shutdown = &r.calls[1];
            if shutdown.result.is_err() {
                problems.push(format!("shutdown returned {}", shutdown.result_text()));
            }
            let early = t
                .dir(Dir::FromStack)
                .into_iter()
                .any(|s| (s.flags.fin || s.flags.rst) && s.time < shutdown.at);
            if early {
                problems.push("FIN or RST from the stack after WSAEWOULDBLOCK".into());
            }
            graceful(&mut problems);
        }
    }
    problems
}

/// Maps a Winsock error to a message naming the call.
fn wsa(what: &'static str) -> impl Fn(WsaError) -> String {
    move |e| format!("{what}: {e}")
}

/// `a - b` in seconds (negative when `a` is earlier).
fn secs(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.3} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}
