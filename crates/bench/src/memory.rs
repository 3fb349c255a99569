//! Memory: resident bytes of this (the stack's) process per established idle connection.

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::throughput::{self, StackNet};
use crate::util::{self, Record, Settings};

const PORT: u16 = 5005;

/// Records for default and small (4 KiB) socket buffers.
pub fn run(settings: &Settings) -> Vec<Record> {
    let n = settings.connections;
    if let Err(e) = lingerstack_testkit::raise_nofile_limit(2 * n as u64 + 1024) {
        eprintln!("memory: raising RLIMIT_NOFILE failed: {e}");
    }
    let default = lingerstack_stack::StackConfig::default().rx_buffer;
    let mut out = Vec::new();
    for (case, buf) in [("default buffers", default), ("small buffers", 4096)] {
        let mut rec = Record::new(
            "memory",
            throughput::NAME,
            case,
            &format!("rss_per_idle_conn@{n}"),
            "bytes",
        );
        rec.mtu = Some(1500);
        rec.buffers = format!("stack rx=tx={}", util::human(buf));
        let mut conn = Record::new(
            "memory",
            throughput::NAME,
            case,
            &format!("sequential_connect_time@{n}"),
            "us/conn",
        );
        conn.mtu = Some(1500);
        conn.buffers = rec.buffers.clone();
        conn.note = Some(format!(
            "blocking connect of {n} connections one after another while all earlier ones stay open"
        ));
        let mut vals = Vec::new();
        let mut secs = Vec::new();
        let mut notes = Vec::new();
        for _ in 0..settings.runs {
            match util::guarded("memory run", || one_run(buf, n)) {
                Ok((per_conn, connect_secs, note)) => {
                    vals.push(per_conn);
                    secs.push(connect_secs * 1e6 / n as f64);
                    notes.push(note);
                }
                Err(e) => {
                    conn.fail(e.clone());
                    rec.fail(e);
                }
            }
        }
        let mut bare_rss = Record::new(
            "memory",
            crate::baseline_smoltcp::NAME,
            case,
            &format!("rss_per_idle_conn@{n}"),
            "bytes",
        );
        let mut bare_conn = Record::new(
            "memory",
            crate::baseline_smoltcp::NAME,
            case,
            &format!("sequential_connect_time@{n}"),
            "us/conn",
        );
        let (mut br, mut bc) = (Vec::new(), Vec::new());
        for _ in 0..settings.runs {
            match util::guarded("bare memory run", || {
                crate::baseline_smoltcp::idle_connections(n, buf)
            }) {
                Ok((r, c)) => {
                    br.push(r);
                    bc.push(c);
                }
                Err(e) => {
                    bare_rss.fail(e.clone());
                    bare_conn.fail(e);
                }
            }
        }
        rec.note = Some(format!(
            "VmRSS growth / N; only touched pages count, so the allocator's state (fresh vs recycled heap) moves it between runs; per run: {}",
            notes.join(" | ")
        ));
        out.push(rec.with_runs(vals));
        out.push(conn.with_runs(secs));
        for (mut r, v) in [(bare_rss, br), (bare_conn, bc)] {
            r.mtu = Some(1500);
            r.buffers = format!("smoltcp socket rx=tx={}", util::human(buf));
            out.push(r.with_runs(v));
        }
    }
    out
}

/// VmRSS and VmSize growth per connection after `n` idle connections; plus a note.
fn one_run(buf: usize, n: usize) -> Result<(f64, f64, String), String> {
    let sn = StackNet::new(1500, buf, buf, PORT, None)?;
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let (l, stop) = (sn.listener.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut kept: Vec<TcpStream> = Vec::with_capacity(n);
            while !stop.load(Ordering::SeqCst) && kept.len() < n {
                if let Ok(s) = util::accept_timeout(&l, Duration::from_millis(50)) {
                    kept.push(s);
                }
            }
            kept
        })
    };
    // Give freed memory of earlier runs back so it is not reused unseen.
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    let rss0 = util::rss_bytes().map_err(util::ctx("VmRSS"))?;
    let vm0 = vm_size();
    let start = Instant::now();
    let mut ids = Vec::with_capacity(n);
    let mut err = None;
    for i in 0..n {
        match sn.connect() {
            Ok(id) => ids.push(id),
            Err(e) => {
                err = Some(format!("ENGINE: connection #{i} of {n}: {e}"));
                break;
            }
        }
    }
    let connect_secs = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(100));
    // Idle CPU of the whole process (engine included) with the connections open.
    let (cpu0, t0) = (util::process_cpu(), Instant::now());
    std::thread::sleep(Duration::from_millis(400));
    let idle_cpu_pct =
        util::process_cpu().saturating_sub(cpu0).as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0;
    let rss1 = util::rss_bytes().map_err(util::ctx("VmRSS"))?;
    let vm1 = vm_size();
    let established = sn
        .stack
        .counters()
        .ok()
        .and_then(|c| c.sockets_by_state.get("ESTABLISHED").copied());
    stop.store(true, Ordering::SeqCst);
    let kept = acceptor
        .join()
        .map_err(|_| "acceptor panicked".to_string())?;
    sn.stop();
    drop(kept);
    if let Some(e) = err {
        return Err(e);
    }
    let per = (rss1 as f64 - rss0 as f64) / n as f64;
    let note = format!(
        "VmRSS {} -> {} KiB, VmSize +{}/conn, {} ESTABLISHED, idle CPU {:.1}%",
        rss0 / 1024,
        rss1 / 1024,
        match (vm0, vm1) {
            (Some(a), Some(b)) => format!("{:.0} B", (b as f64 - a as f64) / n as f64),
            _ => "n/a".into(),
        },
        established.map_or("n/a".into(), |e| e.to_string()),
        idle_cpu_pct,
    );
    Ok((per, connect_secs, note))
}

fn vm_size() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}
