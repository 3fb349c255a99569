//! Close latency: from lingerstack's close call (wall clock) to the FIN or RST the kernel side
//! of the TAP sees (the capture's kernel timestamps, also wall clock).

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use lingerstack_stack::CloseMode;
use lingerstack_testkit::{Capture, Dir, Trace};

use crate::throughput::{self, StackNet};
use crate::util::{self, Record, Settings};

const PORT: u16 = 5004;

/// Graceful and abortive close latency records (p50 and p99 each).
pub fn run(settings: &Settings) -> Vec<Record> {
    let mut out = Vec::new();
    let setup = util::guarded("closelat setup", || {
        let d = lingerstack_stack::StackConfig::default();
        StackNet::new(1500, d.rx_buffer, d.tx_buffer, PORT, None)
    });
    let sn = match setup {
        Ok(sn) => Some(sn),
        Err(e) => {
            for mode in ["graceful", "abort"] {
                for m in ["close_to_wire_p50", "close_to_wire_p99"] {
                    let mut r = Record::new("closelat", throughput::NAME, mode, m, "us");
                    r.fail(e.clone());
                    out.push(r);
                }
            }
            None
        }
    };
    let Some(sn) = sn else { return out };
    for (name, mode) in [
        ("graceful", CloseMode::Graceful { deadline: None }),
        ("abort", CloseMode::Abort),
    ] {
        let mut p50 = Record::new(
            "closelat",
            throughput::NAME,
            name,
            "close_to_wire_p50",
            "us",
        );
        let mut p99 = Record::new(
            "closelat",
            throughput::NAME,
            name,
            "close_to_wire_p99",
            "us",
        );
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut total = 0;
        for run in 0..settings.runs {
            match util::guarded("closelat run", || {
                one_run(&sn, name, mode, run, settings.closes)
            }) {
                Ok((mut lat, missing)) => {
                    total += lat.len();
                    if missing > 0 {
                        let e = format!(
                            "ENGINE: {missing} of {} closes showed no {} on the wire",
                            settings.closes,
                            if name == "abort" { "RST" } else { "FIN" }
                        );
                        p50.fail(e.clone());
                        p99.fail(e);
                    }
                    if !lat.is_empty() {
                        a.push(util::percentile(&mut lat, 0.5));
                        b.push(util::percentile(&mut lat, 0.99));
                    }
                }
                Err(e) => {
                    p50.fail(e.clone());
                    p99.fail(e);
                }
            }
        }
        let note = format!(
            "{total} closes over all runs, {} per run, idle established connections (no data queued)",
            settings.closes
        );
        for (mut r, v) in [(p50, a), (p99, b)] {
            r.mtu = Some(1500);
            r.buffers = "stack defaults (rx=tx=256 KiB)".into();
            r.note = Some(note.clone());
            out.push(r.with_runs(v));
        }
    }
    sn.stop();
    out.extend(linger_timeout(settings));
    out
}

/// Blocking linger timeout of this length in the linger case.
const LINGER: Duration = Duration::from_millis(20);

/// A blocking linger close whose data is never acknowledged (incoming frames blackholed after
/// the connect): how long after the linger deadline the RST is on the wire.
fn linger_timeout(settings: &Settings) -> Vec<Record> {
    let mut p50 = Record::new(
        "closelat",
        throughput::NAME,
        "linger timeout",
        "rst_after_deadline_p50",
        "us",
    );
    let mut p99 = Record::new(
        "closelat",
        throughput::NAME,
        "linger timeout",
        "rst_after_deadline_p99",
        "us",
    );
    let n = (settings.closes / 4).max(5);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let result = util::guarded("linger setup", || {
        let blackhole = Arc::new(AtomicBool::new(false));
        let options = lingerstack_stack::DeviceOptions {
            faults: lingerstack_stack::link::FaultConfig {
                blackhole_in: blackhole.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        let d = lingerstack_stack::StackConfig::default();
        let sn = StackNet::with_options(1500, d.rx_buffer, d.tx_buffer, PORT + 1, None, options)?;
        for run in 0..settings.runs {
            match util::guarded("linger run", || linger_run(&sn, &blackhole, run, n)) {
                Ok((mut lat, missing)) => {
                    if missing > 0 {
                        let e = format!("ENGINE: {missing} of {n} linger closes showed no RST");
                        p50.fail(e.clone());
                        p99.fail(e);
                    }
                    if !lat.is_empty() {
                        a.push(util::percentile(&mut lat, 0.5));
                        b.push(util::percentile(&mut lat, 0.99));
                    }
                }
                Err(e) => {
                    p50.fail(e.clone());
                    p99.fail(e);
                }
            }
        }
        sn.stop();
        Ok(())
    });
    if let Err(e) = result {
        p50.fail(e.clone());
        p99.fail(e);
    }
    let note = format!(
        "{n} closes per run: 1000 bytes sent and never acknowledged (stack's incoming frames \
         blackholed), then a blocking linger close with timeout {} ms; RST time on the kernel \
         side's capture minus (close call + timeout)",
        LINGER.as_millis()
    );
    [(p50, a), (p99, b)]
        .into_iter()
        .map(|(mut r, v)| {
            r.mtu = Some(1500);
            r.buffers = "stack defaults (rx=tx=256 KiB)".into();
            r.note = Some(note.clone());
            r.with_runs(v)
        })
        .collect()
}

/// One measured run's surroundings: a kernel acceptor that keeps every connection open (so
/// the stack's close is what the wire shows) and a capture on the kernel side of the TAP.
struct Observed {
    stop: Arc<AtomicBool>,
    acceptor: std::thread::JoinHandle<Vec<TcpStream>>,
    capture: Capture,
}

impl Observed {
    fn start(sn: &StackNet, capture_name: &str) -> Result<Observed, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (l, stop) = (sn.listener.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut kept: Vec<TcpStream> = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(s) = util::accept_timeout(&l, Duration::from_millis(50)) {
                        kept.push(s);
                    }
                }
                kept
            })
        };
        match Capture::start(sn.net.ns(), sn.net.tap_name(), capture_name) {
            Ok(capture) => Ok(Observed {
                stop,
                acceptor,
                capture,
            }),
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                let _ = acceptor.join();
                Err(util::ctx("capture")(e))
            }
        }
    }

    /// Let the last segments arrive, stop the capture, release the kernel's connections.
    fn finish(self) -> Trace {
        std::thread::sleep(Duration::from_millis(100));
        let trace = self.capture.stop();
        self.stop.store(true, Ordering::SeqCst);
        drop(self.acceptor.join());
        trace
    }
}

fn linger_run(
    sn: &StackNet,
    blackhole: &AtomicBool,
    run: usize,
    n: usize,
) -> Result<(Vec<f64>, usize), String> {
    let observed = Observed::start(sn, &format!("bench-linger-{run}"))?;
    let mut closes = Vec::new();
    let mut err = None;
    for _ in 0..n {
        let id = match sn.connect() {
            Ok(id) => id,
            Err(e) => {
                err = Some(e);
                break;
            }
        };
        let port = sn
            .stack
            .info(id)
            .ok()
            .and_then(|i| i.local)
            .map(|a| a.port());
        blackhole.store(true, Ordering::SeqCst);
        let sent = sn
            .stack
            .send(id, &[0x11; 1000], lingerstack_stack::Wait::No)
            .map_err(|f| format!("ENGINE: send: {:?}", f.error));
        let t = SystemTime::now();
        let closed = sn.stack.close(id, CloseMode::Linger { timeout: LINGER });
        blackhole.store(false, Ordering::SeqCst);
        if let Err(e) = sent {
            err = Some(e);
            break;
        }
        match (closed, port) {
            (Ok(_), Some(port)) => closes.push((port, t)),
            (Err(e), _) => {
                err = Some(format!("ENGINE: linger close: {e:?}"));
                break;
            }
            (Ok(_), None) => {
                err = Some("ENGINE: connected socket has no local address".into());
                break;
            }
        }
    }
    let trace = observed.finish();
    if let Some(e) = err {
        return Err(e);
    }
    let mut lat = Vec::new();
    let mut missing = 0;
    for (port, t) in closes {
        let deadline = t + LINGER;
        let seen = trace
            .segments
            .iter()
            .find(|s| s.dir == Dir::FromStack && s.src.port() == port && s.flags.rst);
        match seen {
            Some(s) => lat.push(match s.time.duration_since(deadline) {
                Ok(d) => d.as_secs_f64() * 1e6,
                Err(early) => -early.duration().as_secs_f64() * 1e6,
            }),
            None => missing += 1,
        }
    }
    Ok((lat, missing))
}

/// Opens `n` connections one by one and closes each with `mode`; latencies in us and how many
/// closes showed nothing on the wire.
fn one_run(
    sn: &StackNet,
    name: &str,
    mode: CloseMode,
    run: usize,
    n: usize,
) -> Result<(Vec<f64>, usize), String> {
    let observed = Observed::start(sn, &format!("bench-closelat-{name}-{run}"))?;
    let mut closes = Vec::new();
    let mut err = None;
    for _ in 0..n {
        let id = match sn.connect() {
            Ok(id) => id,
            Err(e) => {
                err = Some(e);
                break;
            }
        };
        let port = match sn.stack.info(id).ok().and_then(|i| i.local) {
            Some(a) => a.port(),
            None => {
                err = Some("ENGINE: connected socket has no local address".into());
                break;
            }
        };
        let t = SystemTime::now();
        if let Err(e) = sn.stack.close(id, mode) {
            err = Some(format!("ENGINE: close: {e:?}"));
            break;
        }
        closes.push((port, t));
    }
    let trace = observed.finish();
    if let Some(e) = err {
        return Err(e);
    }
    let want_rst = matches!(mode, CloseMode::Abort);
    let mut lat = Vec::new();
    let mut missing = 0;
    for (port, t) in closes {
        let seen = trace.segments.iter().find(|s| {
            s.dir == Dir::FromStack
                && s.src.port() == port
                && if want_rst { s.flags.rst } else { s.flags.fin }
        });
        match seen {
            Some(s) => lat.push(
                s.time
                    .duration_since(t)
                    .unwrap_or(Duration::ZERO)
                    .as_secs_f64()
                    * 1e6,
            ),
            None => missing += 1,
        }
    }
    Ok((lat, missing))
}
