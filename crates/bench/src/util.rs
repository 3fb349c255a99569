//! Shared pieces: run settings, CPU clocks, statistics, result records and kernel peers.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Socket buffer size used for bulk transfers on every side (stack, bare smoltcp, kernel).
pub const BULK_BUFFER: usize = 1 << 20;

/// Application chunk written or read per call in bulk transfers.
pub const CHUNK: usize = 64 * 1024;

/// Bound on any single blocking operation; past it a run is recorded as a stall.
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// How many runs of how long, and how big the memory test is.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// "quick" or "full".
    pub mode: &'static str,
    /// Runs per measurement.
    pub runs: usize,
    /// Length of one timed run.
    pub run_secs: f64,
    /// Idle connections in the memory measurement.
    pub connections: usize,
    /// Closes per mode per run in the close-latency measurement.
    pub closes: usize,
    /// MTUs of the throughput measurement.
    pub mtus: Vec<u32>,
    /// Implementations measured in throughput and latency (empty: all).
    pub impls: Vec<String>,
}

impl Settings {
    /// Whether `implementation` is measured in throughput and latency.
    pub fn measures(&self, implementation: &str) -> bool {
        self.impls.is_empty() || self.impls.iter().any(|i| i == implementation)
    }
}

impl Settings {
    /// Quick mode: 3 runs of about 1 s, 1000 connections.
    pub fn quick() -> Settings {
        Settings {
            mode: "quick",
            runs: 3,
            run_secs: 1.0,
            connections: 1000,
            closes: 40,
            mtus: crate::throughput::MTUS.to_vec(),
            impls: Vec::new(),
        }
    }

    /// Full mode: 5 runs of about 3 s, 10,000 connections.
    pub fn full() -> Settings {
        Settings {
            mode: "full",
            runs: 5,
            run_secs: 3.0,
            connections: 10_000,
            closes: 200,
            mtus: crate::throughput::MTUS.to_vec(),
            impls: Vec::new(),
        }
    }

    /// One run's duration.
    pub fn run_time(&self) -> Duration {
        Duration::from_secs_f64(self.run_secs)
    }
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the valid `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// User + system CPU time of the whole process, all threads (`getrusage(RUSAGE_SELF)`).
pub fn process_cpu() -> Duration {
    // SAFETY: all-zero is a valid `rusage`.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the valid `ru`.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident set size of this process in bytes (`VmRSS` of /proc/self/status).
pub fn rss_bytes() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other("no VmRSS in /proc/self/status"))
}

/// Median, minimum and maximum of a set of values.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Spread {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`, `None` when empty.
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// The `q` quantile (0..=1) of `values` by nearest rank; 0 when empty.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// A CPU cost figure next to a measurement.
#[derive(Clone, Debug, Serialize)]
pub struct CpuCost {
    /// Whose CPU: "stack" (whole process minus peer threads), "local thread", "kernel peer thread".
    pub who: String,
    /// Unit, e.g. "cpu_s_per_GB" or "cpu_us_per_conn".
    pub unit: String,
    /// Over the runs.
    pub spread: Spread,
}

/// One measured quantity of one implementation, over several runs.
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    /// Measurement group: throughput, latency, connrate, closelat, memory.
    pub group: String,
    /// lingerstack, smoltcp-bare or kernel-veth.
    pub implementation: String,
    /// Case within the group (direction, close mode, buffer size...).
    pub case: String,
    /// IP MTU of the link.
    pub mtu: Option<u32>,
    /// Socket buffers, human readable.
    pub buffers: String,
    /// What was measured.
    pub metric: String,
    /// Its unit.
    pub unit: String,
    /// One value per run.
    pub runs: Vec<f64>,
    /// Median/min/max over the runs; `None` when nothing could be measured.
    pub spread: Option<Spread>,
    /// CPU costs.
    pub cpu: Vec<CpuCost>,
    /// Why the measurement failed or is incomplete ("n/a: ..."), if it did.
    pub error: Option<String>,
    /// Anything else worth knowing.
    pub note: Option<String>,
}

impl Record {
    /// An empty record to fill in.
    pub fn new(group: &str, implementation: &str, case: &str, metric: &str, unit: &str) -> Record {
        Record {
            group: group.into(),
            implementation: implementation.into(),
            case: case.into(),
            mtu: None,
            buffers: String::new(),
            metric: metric.into(),
            unit: unit.into(),
            runs: Vec::new(),
            spread: None,
            cpu: Vec::new(),
            error: None,
            note: None,
        }
    }

    /// Sets the runs and their spread.
    pub fn with_runs(mut self, runs: Vec<f64>) -> Record {
        self.spread = Spread::of(&runs);
        self.runs = runs;
        self
    }

    /// Adds a CPU figure if there are values.
    pub fn cpu(&mut self, who: &str, unit: &str, values: &[f64]) {
        if let Some(spread) = Spread::of(values) {
            self.cpu.push(CpuCost {
                who: who.into(),
                unit: unit.into(),
                spread,
            });
        }
    }

    /// Appends an error (several runs may fail differently).
    pub fn fail(&mut self, error: impl Into<String>) {
        let e = error.into();
        match &mut self.error {
            Some(old) => {
                if !old.contains(&e) {
                    old.push_str("; ");
                    old.push_str(&e);
                }
            }
            None => self.error = Some(e),
        }
    }
}

/// What a kernel peer thread measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerResult {
    /// Payload bytes moved by the peer.
    pub bytes: u64,
    /// From the first byte to end of stream (receiving peers), or the send time.
    pub elapsed: Duration,
    /// The peer thread's CPU time.
    pub cpu: Duration,
}

/// Sets SO_SNDBUF and SO_RCVBUF of a kernel socket (the kernel doubles the value).
pub fn set_kernel_buffers(stream: &impl AsRawFd, size: usize) -> io::Result<()> {
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        let v = size as libc::c_int;
        // SAFETY: setsockopt reads a c_int from the valid pointer for the given length.
        let rc = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Kernel receiver: reads until end of stream, timing from the first byte.
pub fn kernel_sink(mut s: TcpStream) -> io::Result<PeerResult> {
    s.set_read_timeout(Some(OP_TIMEOUT))?;
    let cpu0 = thread_cpu();
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                first.get_or_insert_with(Instant::now);
                bytes += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("kernel receiver after {bytes} bytes: {e}"),
                ));
            }
        }
    }
    Ok(PeerResult {
        bytes,
        elapsed: first.map(|f| f.elapsed()).unwrap_or_default(),
        cpu: thread_cpu() - cpu0,
    })
}

/// Kernel sender: writes `CHUNK`s for `dur`, shuts down its sending side, then waits for the
/// other side's end of stream.
pub fn kernel_source(mut s: TcpStream, dur: Duration) -> io::Result<PeerResult> {
    s.set_write_timeout(Some(OP_TIMEOUT))?;
    s.set_read_timeout(Some(OP_TIMEOUT))?;
    let cpu0 = thread_cpu();
    let buf = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < dur {
        s.write_all(&buf).map_err(|e| {
            io::Error::new(e.kind(), format!("kernel sender after {bytes} bytes: {e}"))
        })?;
        bytes += CHUNK as u64;
    }
    let elapsed = start.elapsed();
    s.shutdown(Shutdown::Write)?;
    let mut rest = [0u8; 64];
    loop {
        match s.read(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("kernel sender drain: {e}"),
                ));
            }
        }
    }
    Ok(PeerResult {
        bytes,
        elapsed,
        cpu: thread_cpu() - cpu0,
    })
}

/// Kernel echo for 1-byte ping-pong: echoes until end of stream; returns its CPU time.
pub fn kernel_echo(mut s: TcpStream) -> io::Result<PeerResult> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(OP_TIMEOUT))?;
    let cpu0 = thread_cpu();
    let mut b = [0u8; 1];
    let mut bytes = 0;
    loop {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(_) => {
                s.write_all(&b)?;
                bytes += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(PeerResult {
        bytes,
        elapsed: Duration::ZERO,
        cpu: thread_cpu() - cpu0,
    })
}

/// Runs `f` and measures the CPU of the whole process meanwhile, in percent of one CPU.
pub fn cpu_percent<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let (cpu0, t0) = (process_cpu(), Instant::now());
    let r = f();
    let wall = t0.elapsed().as_secs_f64();
    let pct = if wall > 0.0 {
        process_cpu().saturating_sub(cpu0).as_secs_f64() / wall * 100.0
    } else {
        0.0
    };
    (r, pct)
}

/// Bytes per second as gigabits per second.
pub fn gbit_per_s(bytes: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        return 0.0;
    }
    bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9
}

/// CPU seconds per gigabyte (1e9 bytes) moved.
pub fn cpu_s_per_gb(cpu: Duration, bytes: u64) -> f64 {
    if bytes == 0 {
        return 0.0;
    }
    cpu.as_secs_f64() / (bytes as f64 / 1e9)
}

/// Human readable byte size: "1 MiB", "4 KiB", "300 B".
pub fn human(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

/// Runs `f`, turning a panic into an error string.
pub fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("{what} panicked: {msg}"))
        }
    }
}

/// Maps any displayable error to a string with context.
pub fn ctx<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

/// Accepts one connection within `timeout` (the listener is left non-blocking); the stream
/// is returned in blocking mode.
pub fn accept_timeout(
    listener: &std::net::TcpListener,
    timeout: Duration,
) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no connection accepted within {timeout:?}"),
                    ));
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Bulk transfer direction, seen from the implementation under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// The implementation under test sends, the kernel peer receives.
    Send,
    /// The kernel peer sends, the implementation under test receives.
    Recv,
}

impl Dir {
    /// Both directions.
    pub const BOTH: [Dir; 2] = [Dir::Send, Dir::Recv];

    /// Case name in the results.
    pub fn case(self) -> &'static str {
        match self {
            Dir::Send => "send",
            Dir::Recv => "receive",
        }
    }
}

/// One bulk run: payload bytes delivered, over what time, and CPU of both sides.
#[derive(Clone, Copy, Debug, Default)]
pub struct BulkSample {
    /// Payload bytes delivered to the receiver.
    pub bytes: u64,
    /// Receiver's first byte to end of stream.
    pub elapsed: Duration,
    /// CPU of the side under test.
    pub local_cpu: Duration,
    /// CPU of the kernel peer thread.
    pub peer_cpu: Duration,
}

/// A set-up that failed: one failed record per direction, so the table still says why.
pub fn failed_bulk(
    implementation: &str,
    mtu: u32,
    buffers: String,
    local_who: &str,
    error: &str,
) -> Vec<Record> {
    Dir::BOTH
        .iter()
        .map(|d| {
            bulk_record(
                implementation,
                *d,
                mtu,
                buffers.clone(),
                local_who,
                vec![Err(error.to_string())],
            )
        })
        .collect()
}

/// Turns bulk samples (and failures) into a throughput record.
pub fn bulk_record(
    implementation: &str,
    dir: Dir,
    mtu: u32,
    buffers: String,
    local_who: &str,
    samples: Vec<Result<BulkSample, String>>,
) -> Record {
    let mut rec = Record::new(
        "throughput",
        implementation,
        dir.case(),
        "throughput",
        "Gbit/s",
    );
    rec.mtu = Some(mtu);
    rec.buffers = buffers;
    let mut gbps = Vec::new();
    let mut local = Vec::new();
    let mut peer = Vec::new();
    for s in samples {
        match s {
            Ok(s) if s.bytes > 0 => {
                gbps.push(gbit_per_s(s.bytes, s.elapsed));
                local.push(cpu_s_per_gb(s.local_cpu, s.bytes));
                peer.push(cpu_s_per_gb(s.peer_cpu, s.bytes));
            }
            Ok(_) => rec.fail("run moved no bytes"),
            Err(e) => rec.fail(e),
        }
    }
    rec = rec.with_runs(gbps);
    rec.cpu(local_who, "cpu_s_per_GB", &local);
    rec.cpu("kernel peer thread", "cpu_s_per_GB", &peer);
    rec
}

/// Joins a peer thread, mapping panics and errors to strings.
pub fn join_peer(h: std::thread::JoinHandle<io::Result<PeerResult>>) -> Result<PeerResult, String> {
    match h.join() {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(format!("kernel peer: {e}")),
        Err(_) => Err("kernel peer thread panicked".into()),
    }
}

/// p50 and p99 records from per-run round-trip samples (microseconds).
pub fn latency_records(
    implementation: &str,
    mtu: u32,
    runs: Vec<Result<Vec<f64>, String>>,
    cpu_pct: &[f64],
) -> Vec<Record> {
    let mut p50 = Record::new(
        "latency",
        implementation,
        "1-byte ping-pong",
        "rtt_p50",
        "us",
    );
    let mut p99 = Record::new(
        "latency",
        implementation,
        "1-byte ping-pong",
        "rtt_p99",
        "us",
    );
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut count = 0usize;
    for r in runs {
        match r {
            Ok(mut v) if !v.is_empty() => {
                count += v.len();
                a.push(percentile(&mut v, 0.50));
                b.push(percentile(&mut v, 0.99));
            }
            Ok(_) => {
                p50.fail("no round trip completed");
                p99.fail("no round trip completed");
            }
            Err(e) => {
                p50.fail(e.clone());
                p99.fail(e);
            }
        }
    }
    let note = Some(format!(
        "{count} round trips over all runs; TCP_NODELAY on both sides"
    ));
    let mut out = Vec::new();
    for (mut rec, vals) in [(p50, a), (p99, b)] {
        rec.cpu(
            "whole process (both ends)",
            "cpu_percent_of_one_cpu",
            cpu_pct,
        );
        rec.mtu = Some(mtu);
        rec.note = note.clone();
        out.push(rec.with_runs(vals));
    }
    out
}
