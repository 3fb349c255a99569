//! The soak: many short connections from the provider to the Linux kernel over a TAP, closed
//! with every linger mode in turn, while the stack's fault middleware loses and reorders
//! frames both ways. Afterwards nothing may be left: no descriptor in the facade, no socket
//! id in the engine, no socket in smoltcp's set, and the process's memory no larger than
//! it was after a warm-up, give or take a bound.
//!
//! The suite runs a short version (600 connections); `LINGERSTACK_SOAK_CONNECTIONS` scales
//! it (`just soak` runs 10,000). The run stops by itself: at that count, or at a time budget
//! (`LINGERSTACK_SOAK_SECS`, default 60 s plus 40 ms per connection), which fails the test.
//!
//! Each connection: connect, send 2,000 bytes (the first names the close mode), close with
//! the mode; a kernel thread per accepted connection reads until end of stream or reset.
//! Modes, in turn: default linger (graceful), SO_LINGER {1,0} (abortive), blocking
//! SO_LINGER {1,10} (the kernel reads, so it returns once the FIN is acknowledged), and
//! non-blocking SO_LINGER {1,10} (WSAEWOULDBLOCK until every byte is acknowledged, retried as
//! an application would). Evidence: the kernel's view of every connection (every byte then end
//! of stream, or ECONNRESET), and the kernel-side capture (a FIN and no RST from the stack for
//! the graceful modes, a RST and no FIN for the abortive one).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use lingerstack_stack::DeviceOptions;
use lingerstack_stack::link::FaultConfig;
use lingerstack_testkit::tapnet::LINK_UP_TIMEOUT;
use lingerstack_testkit::{Capture, Dir, TapNet, Trace, require_tap, stack_config};
use lingerstack_wsp::consts::*;
use lingerstack_wsp::{Linger, Provider, ProviderConfig, WsaError};

/// Connections in the short (default) run.
const SHORT_RUN: usize = 600;
/// Environment variable: how many connections.
const COUNT_ENV: &str = "LINGERSTACK_SOAK_CONNECTIONS";
/// Environment variable: the time budget in seconds.
const SECS_ENV: &str = "LINGERSTACK_SOAK_SECS";
/// Provider threads making connections at once.
const WORKERS: usize = 16;
/// Bytes each connection sends (the first names the close mode).
const PAYLOAD: usize = 2000;
/// Frames lost, and frames held back behind later ones, each way, in percent.
const LOSS: u8 = 2;
const REORDER: u8 = 2;
/// The fixed seed of the faults (`LINGERSTACK_FAULT_SEED` replaces it).
const SEED: u64 = 0x50a6;
/// The kernel's port.
const PORT: u16 = 7300;
/// How long a kernel reader waits in silence before it pokes the stack. Longer than smoltcp
/// takes to retransmit a segment lost three times in a row (1 + 2 + 4 s): a graceful close
/// still on its way must not be taken for a lost RST (the poke would reset it).
const SILENCE: Duration = Duration::from_secs(10);
/// How much the process may grow from the warm-up to the end.
const RSS_BOUND_KIB: u64 = 32 * 1024;
/// Connections made before the memory baseline is taken.
const WARM_UP: usize = 100;

/// How a connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mode {
    Graceful,
    Abort,
    Linger,
    NonBlocking,
}

const MODES: [Mode; 4] = [Mode::Graceful, Mode::Abort, Mode::Linger, Mode::NonBlocking];

impl Mode {
    fn tag(self) -> u8 {
        MODES.iter().position(|m| *m == self).unwrap() as u8
    }

    fn from_tag(tag: u8) -> Option<Mode> {
        MODES.get(usize::from(tag)).copied()
    }

    /// Whether the kernel must read every byte and then end of stream.
    fn graceful(self) -> bool {
        self != Mode::Abort
    }
}

/// What the kernel saw on one connection.
#[derive(Debug)]
struct KernelEnd {
    stack_port: u16,
    mode: Option<Mode>,
    bytes: usize,
    intact: bool,
    end: Result<(), ErrorKind>,
}

/// What the provider did on one connection.
struct StackEnd {
    stack_port: u16,
    mode: Mode,
    wouldblocks: usize,
}

/// Names the seed when the soak fails (it is dropped while the panic unwinds).
struct SeedNote(u64);

impl Drop for SeedNote {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "*** soak faults seeded with {0}: LINGERSTACK_FAULT_SEED={0} ***",
                self.0
            );
        }
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn payload(mode: Mode) -> Vec<u8> {
    let mut p: Vec<u8> = (0..PAYLOAD).map(|i| (i % 251) as u8).collect();
    p[0] = mode.tag();
    p
}

/// Resident set size of this process in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Give freed memory back to the system, then measure.
fn trimmed_rss_kib() -> u64 {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    rss_kib()
}

// ---------------------------------------------------------------------------------------
// The kernel side
// ---------------------------------------------------------------------------------------

/// Accept until `stop`, one reading thread per connection; their results go to `out`.
fn kernel_server(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    out: mpsc::Sender<KernelEnd>,
) -> Vec<JoinHandle<()>> {
    listener.set_nonblocking(true).unwrap();
    let mut readers = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((k, from)) => {
                let out = out.clone();
                readers.push(std::thread::spawn(move || {
                    let _ = out.send(kernel_read(k, from.port()));
                }));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("kernel accept: {e}"),
        }
    }
    readers
}

/// Read one connection until end of stream or an error. If nothing comes for `SILENCE` the
/// stack's RST may have been lost (smoltcp sends one once): a byte from the kernel then
/// draws a fresh one from the stack, which has no socket for this connection any more.
fn kernel_read(mut k: TcpStream, stack_port: u16) -> KernelEnd {
    k.set_nonblocking(false).unwrap();
    k.set_read_timeout(Some(SILENCE)).unwrap();
    let mut got = Vec::new();
    let mut end = read_to_end(&mut k, &mut got);
    if matches!(end, Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)) {
        end = match k.write_all(b"?") {
            Ok(()) => read_to_end(&mut k, &mut got),
            Err(e) => Err(e.kind()),
        };
    }
    let mode = got.first().and_then(|t| Mode::from_tag(*t));
    // A prefix of what the stack sent (nothing at all after an early abort).
    let intact = got.len() <= PAYLOAD
        && (got.is_empty() || mode.is_some_and(|m| got[..] == payload(m)[..got.len()]));
    KernelEnd {
        stack_port,
        mode,
        bytes: got.len(),
        intact,
        end,
    }
}

fn read_to_end(k: &mut TcpStream, got: &mut Vec<u8>) -> Result<(), ErrorKind> {
    let mut buf = [0u8; 4096];
    loop {
        match k.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.kind()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The provider side
// ---------------------------------------------------------------------------------------

/// One connection: connect, send, close with `mode`.
fn churn_one(p: &Provider, to: SocketAddr, mode: Mode) -> Result<StackEnd, String> {
    let s = p
        .socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)
        .map_err(|e| format!("socket: {e:?}"))?;
    let fail = |what: &str, e: WsaError| {
        let _ = p.close_socket(s);
        format!("{mode:?} {what}: {e:?}")
    };
    p.connect(s, to).map_err(|e| fail("connect", e))?;
    let stack_port = p
        .get_sock_name(s)
        .map_err(|e| fail("getsockname", e))?
        .port();
    let data = payload(mode);
    match p.send(s, &data) {
        Ok(n) if n == data.len() => {}
        Ok(n) => {
            let _ = p.close_socket(s);
            return Err(format!("{mode:?} send: {n} of {} bytes", data.len()));
        }
        Err(e) => return Err(fail("send", e)),
    }
    let linger = |onoff, secs| {
        let l = Linger {
            onoff,
            linger: secs,
        }
        .to_bytes();
        p.set_sock_opt(s, SOL_SOCKET, SO_LINGER, Some(&l))
    };
    match mode {
        Mode::Graceful => Ok(()),
        Mode::Abort => linger(1, 0),
        Mode::Linger | Mode::NonBlocking => linger(1, 10),
    }
    .map_err(|e| fail("SO_LINGER", e))?;
    if mode == Mode::NonBlocking {
        let mut on = 1;
        p.ioctl(s, FIONBIO, &mut on)
            .map_err(|e| fail("FIONBIO", e))?;
    }
    let wouldblocks = close(p, s, mode)?;
    Ok(StackEnd {
        stack_port,
        mode,
        wouldblocks,
    })
}

/// Close `s`; a non-blocking linger close is retried while it says WSAEWOULDBLOCK (for up to
/// 15 s). Returns how many times it did.
fn close(p: &Provider, s: usize, mode: Mode) -> Result<usize, String> {
    let end = Instant::now() + Duration::from_secs(15);
    let mut wouldblocks = 0;
    loop {
        match p.close_socket(s) {
            Ok(()) => return Ok(wouldblocks),
            Err(WsaError::WOULDBLOCK) if mode == Mode::NonBlocking && Instant::now() < end => {
                wouldblocks += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("{mode:?} close: {e:?}")),
        }
    }
}

/// The provider's workers: take connection numbers until `total` or `deadline`.
fn run_workers(
    p: &Provider,
    to: SocketAddr,
    total: usize,
    deadline: Instant,
    next: &Arc<AtomicUsize>,
) -> Vec<Result<StackEnd, String>> {
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (p, next) = (p.clone(), next.clone());
            std::thread::spawn(move || {
                let mut done = Vec::new();
                // Take a number only while one is left, so a later call goes on from `total`.
                let take = |n: usize| (n < total).then_some(n + 1);
                while Instant::now() <= deadline {
                    let Ok(i) = next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, take) else {
                        break;
                    };
                    done.push(churn_one(&p, to, MODES[i % MODES.len()]));
                }
                done
            })
        })
        .collect();
    workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker panicked"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

/// The kernel's results, once it has finished every connection that is not abortive (a
/// graceful close goes on after the call returned, and under loss the kernel may even accept
/// it late), or after 60 s.
fn await_kernel(rx: &mpsc::Receiver<KernelEnd>, stack: &[StackEnd]) -> Vec<KernelEnd> {
    let mut waiting: std::collections::HashSet<u16> = stack
        .iter()
        .filter(|s| s.mode.graceful())
        .map(|s| s.stack_port)
        .collect();
    let mut kernel = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    while !waiting.is_empty() {
        let left = end.saturating_duration_since(Instant::now());
        let Ok(k) = rx.recv_timeout(left) else {
            break;
        };
        waiting.remove(&k.stack_port);
        kernel.push(k);
    }
    kernel
}

/// Every connection ended as its mode says, seen from the kernel.
fn check_kernel_view(stack: &[StackEnd], kernel: &[KernelEnd]) {
    let by_port: HashMap<u16, &KernelEnd> = kernel.iter().map(|k| (k.stack_port, k)).collect();
    let mut aborted_unseen = 0;
    for s in stack {
        let Some(k) = by_port.get(&s.stack_port) else {
            // An aborted connection can be reset before the kernel accepted it.
            assert_eq!(
                s.mode,
                Mode::Abort,
                "the kernel never saw port {}",
                s.stack_port
            );
            aborted_unseen += 1;
            continue;
        };
        assert!(
            k.intact,
            "port {}: the kernel read other bytes: {k:?}",
            s.stack_port
        );
        if s.mode.graceful() {
            assert!(
                k.mode == Some(s.mode) && k.bytes == PAYLOAD && k.end.is_ok(),
                "{:?} port {}: not every byte then end of stream: {k:?}",
                s.mode,
                s.stack_port
            );
        } else {
            assert_eq!(
                k.end,
                Err(ErrorKind::ConnectionReset),
                "abortive port {}: {k:?}",
                s.stack_port
            );
        }
    }
    eprintln!("soak: {aborted_unseen} aborted connections reset before the kernel accepted them");
}

/// The capture agrees: on graceful connections a FIN from the stack and no RST before it,
/// on abortive ones a RST and no FIN. (A RST after the FIN answers a kernel segment that
/// found the tuple gone: TIME-WAIT is capped, as Linux caps it, and then freed.)
fn check_capture(trace: &Trace, stack: &[StackEnd]) {
    // Per stack port: when the stack first sent a FIN, and a RST.
    let mut first: HashMap<u16, (Option<SystemTime>, Option<SystemTime>)> = HashMap::new();
    for s in trace.dir(Dir::FromStack) {
        let f = first.entry(s.src.port()).or_default();
        if s.flags.fin {
            f.0.get_or_insert(s.time);
        }
        if s.flags.rst {
            f.1.get_or_insert(s.time);
        }
    }
    let mut late_rsts = 0;
    for s in stack {
        let (fin, rst) = first.get(&s.stack_port).copied().unwrap_or_default();
        let ok = match (s.mode.graceful(), fin, rst) {
            (true, Some(_), None) => true,
            (true, Some(fin), Some(rst)) => {
                late_rsts += 1;
                rst > fin
            }
            (false, None, Some(_)) => true,
            _ => false,
        };
        trace.assert(
            ok,
            &format!(
                "{:?} port {}: first FIN {fin:?}, first RST {rst:?} from the stack",
                s.mode, s.stack_port
            ),
        );
    }
    eprintln!("soak: {late_rsts} graceful connections drew a RST after the stack's FIN");
}

/// Nothing left: descriptors, pending operations, engine ids, smoltcp sockets (TIME-WAIT
/// lasts 10 s, so wait for it).
fn check_nothing_left(p: &Provider) {
    assert_eq!(p.descriptor_count(), 0, "descriptors left");
    assert_eq!(p.pending_operations(), 0, "operations left");
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let c = p.stack().counters().expect("engine counters");
        let in_set: usize = c.sockets_by_state.values().sum();
        if c.open_ids == 0 && in_set == 0 {
            eprintln!("soak: counters at the end {c:?}");
            return;
        }
        assert!(
            Instant::now() < end,
            "left behind: {} ids, sockets {:?}",
            c.open_ids,
            c.sockets_by_state
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------
// The soak
// ---------------------------------------------------------------------------------------

/// A provider on a faulty TAP in a fresh namespace, with the kernel side captured.
fn start(seed: u64) -> (TapNet, Capture, Provider) {
    let _ = env_logger::builder().is_test(true).try_init();
    let net = TapNet::new().expect("TapNet::new");
    let capture = Capture::start(net.ns(), net.tap_name(), "wsp-soak").expect("capture");
    let link = lingerstack_testkit::open_link(&net).expect("open the TAP");
    let mut stack = stack_config(&net);
    // Small buffers: a churn of short connections, up to 256 of them in TIME-WAIT.
    stack.rx_buffer = 16 * 1024;
    stack.tx_buffer = 16 * 1024;
    let faults = FaultConfig::seeded(seed)
        .with_loss(LOSS)
        .with_reordering(REORDER);
    let config = ProviderConfig {
        device: DeviceOptions {
            faults,
            ..DeviceOptions::default()
        },
        cleanup_grace: Duration::from_millis(300),
        ..ProviderConfig::new(stack)
    };
    let p = Provider::startup(config, Box::new(link)).expect("Provider::startup");
    net.wait_link_up(LINK_UP_TIMEOUT).expect("link up");
    (net, capture, p)
}

/// Churn connections with every close mode under loss; nothing may be left afterwards.
#[test]
fn soak_churns_connections_under_loss_and_leaks_nothing() {
    if !require_tap("soak_churns_connections_under_loss_and_leaks_nothing") {
        return;
    }
    let total = env_number(COUNT_ENV, SHORT_RUN as u64) as usize;
    let seed = env_number("LINGERSTACK_FAULT_SEED", SEED);
    let _note = SeedNote(seed);
    let budget = Duration::from_secs(env_number(SECS_ENV, 60 + total as u64 * 40 / 1000));
    eprintln!("soak: {total} connections, budget {budget:?}, seed {seed}, {LOSS} % loss");
    lingerstack_testkit::raise_nofile_limit(65_536).expect("RLIMIT_NOFILE");
    let (net, capture, p) = start(seed);
    let to = SocketAddr::new(net.kernel_v4().into(), PORT);
    let listener = lingerstack_testkit::peer::tcp_listener(net.ns(), to, None).expect("listen");
    let (stop, (tx, rx)) = (Arc::new(AtomicBool::new(false)), mpsc::channel());
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || kernel_server(listener, stop, tx))
    };

    let t0 = Instant::now();
    let deadline = t0 + budget;
    let next = Arc::new(AtomicUsize::new(0));
    let mut results = run_workers(&p, to, WARM_UP.min(total), deadline, &next);
    let rss_start = trimmed_rss_kib();
    results.extend(run_workers(&p, to, total, deadline, &next));
    let took = t0.elapsed();
    assert!(
        Instant::now() <= deadline,
        "the time budget ran out after {} of {total} connections ({SECS_ENV} raises it)",
        results.len()
    );
    let stack: Vec<StackEnd> = results
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut kernel = await_kernel(&rx, &stack);
    stop.store(true, Ordering::SeqCst);
    for r in server.join().expect("kernel server") {
        r.join().expect("kernel reader");
    }
    kernel.extend(rx.try_iter());
    assert_eq!(stack.len(), total);
    let wouldblocks: usize = stack.iter().map(|s| s.wouldblocks).sum();
    eprintln!(
        "soak: {total} connections in {took:?} ({:.0}/s), {} seen by the kernel, \
         {wouldblocks} WSAEWOULDBLOCK closes retried",
        total as f64 / took.as_secs_f64(),
        kernel.len()
    );
    check_kernel_view(&stack, &kernel);
    check_nothing_left(&p);
    let c = p.stack().counters().unwrap();
    assert!(
        c.tx_dropped_fault > 0 && c.rx_dropped_fault > 0,
        "no loss: {c:?}"
    );

    let trace = capture.stop();
    eprintln!("soak: capture {}", trace.pcap_path.display());
    trace.assert_no_drops();
    check_capture(&trace, &stack);
    drop((trace, kernel));
    let rss_end = trimmed_rss_kib();
    eprintln!("soak: RSS {rss_start} KiB after the warm-up, {rss_end} KiB at the end");
    assert!(
        rss_end <= rss_start + RSS_BOUND_KIB,
        "memory grew from {rss_start} KiB to {rss_end} KiB"
    );
    assert_eq!(p.cleanup(), Ok(()));
}
