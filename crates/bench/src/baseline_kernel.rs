//! Baseline: the Linux kernel's TCP between two namespaces joined by a veth pair.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lingerstack_testkit::{Netns, peer};

use crate::util::{
    self, BULK_BUFFER, BulkSample, Dir, OP_TIMEOUT, PeerResult, Record, Settings, accept_timeout,
    join_peer,
};

/// Name of this implementation in the results.
pub const NAME: &str = "kernel-veth";

/// Two namespaces joined by a veth pair: 10.201.0.1 in `a` (the local side, standing in for
/// the implementation under test), 10.201.0.2 in `b` (the peer). Dropping it deletes both
/// namespaces and with them the pair.
pub struct VethPair {
    /// The local namespace.
    pub a: Netns,
    /// The peer namespace.
    pub b: Netns,
}

/// Address of the local side.
pub const A_ADDR: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
/// Address of the peer side.
pub const B_ADDR: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);

impl VethPair {
    /// Creates both namespaces and the pair with `mtu`.
    pub fn new(mtu: u32) -> Result<VethPair, String> {
        let a = Netns::new().map_err(util::ctx("netns"))?;
        let b = Netns::new().map_err(util::ctx("netns"))?;
        let (na, nb) = (a.ifname("v"), b.ifname("v"));
        let m = mtu.to_string();
        let setup = || -> std::io::Result<()> {
            a.ip(&[
                "link",
                "add",
                &na,
                "mtu",
                &m,
                "type",
                "veth",
                "peer",
                "name",
                &nb,
                "mtu",
                &m,
                "netns",
                b.name(),
            ])?;
            a.ip(&["addr", "add", &format!("{A_ADDR}/24"), "dev", &na])?;
            b.ip(&["addr", "add", &format!("{B_ADDR}/24"), "dev", &nb])?;
            a.ip(&["link", "set", "dev", &na, "up"])?;
            b.ip(&["link", "set", "dev", &nb, "up"])?;
            Ok(())
        };
        setup().map_err(util::ctx("veth setup"))?;
        Ok(VethPair { a, b })
    }

    /// A listener on the peer side at `port` with `buf` socket buffers.
    pub fn listen(&self, port: u16) -> Result<TcpListener, String> {
        peer::tcp_listener(
            &self.b,
            SocketAddr::new(IpAddr::V4(B_ADDR), port),
            Some(BULK_BUFFER),
        )
        .map_err(util::ctx("kernel listener"))
    }

    /// A connection from the local side to the peer side's `port`.
    pub fn connect(&self, port: u16) -> Result<TcpStream, String> {
        peer::tcp_connect(
            &self.a,
            SocketAddr::new(IpAddr::V4(B_ADDR), port),
            Some(BULK_BUFFER),
            Duration::from_secs(5),
        )
        .map_err(util::ctx("kernel connect"))
    }
}

fn buffers() -> String {
    format!(
        "SO_SNDBUF=SO_RCVBUF={} (kernel doubles)",
        util::human(BULK_BUFFER)
    )
}

/// Bulk throughput both directions at `mtu`.
pub fn throughput(settings: &Settings, mtu: u32) -> Vec<Record> {
    let pair = match VethPair::new(mtu) {
        Ok(p) => p,
        Err(e) => {
            return util::failed_bulk(NAME, mtu, buffers(), "local thread", &e);
        }
    };
    let listener = match pair.listen(5001) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            return util::failed_bulk(NAME, mtu, buffers(), "local thread", &e);
        }
    };
    let mut out = Vec::new();
    for dir in Dir::BOTH {
        let samples = (0..settings.runs)
            .map(|_| {
                util::guarded("kernel bulk run", || {
                    bulk_run(&pair, &listener, dir, settings.run_time())
                })
            })
            .collect();
        out.push(util::bulk_record(
            NAME,
            dir,
            mtu,
            buffers(),
            "local thread",
            samples,
        ));
    }
    out
}

fn bulk_run(
    pair: &VethPair,
    listener: &Arc<TcpListener>,
    dir: Dir,
    dur: Duration,
) -> Result<BulkSample, String> {
    let l = listener.clone();
    let peer = std::thread::spawn(move || {
        let s = accept_timeout(&l, Duration::from_secs(5))?;
        util::set_kernel_buffers(&s, BULK_BUFFER)?;
        match dir {
            Dir::Send => util::kernel_sink(s),
            Dir::Recv => util::kernel_source(s, dur),
        }
    });
    let local = pair.connect(5001).and_then(|s| {
        util::set_kernel_buffers(&s, BULK_BUFFER).map_err(util::ctx("setsockopt"))?;
        match dir {
            Dir::Send => util::kernel_source(s, dur),
            Dir::Recv => util::kernel_sink(s),
        }
        .map_err(util::ctx("local kernel socket"))
    });
    let peer = join_peer(peer)?;
    let local = local?;
    let delivered = match dir {
        Dir::Send => peer,
        Dir::Recv => local,
    };
    Ok(BulkSample {
        bytes: delivered.bytes,
        elapsed: delivered.elapsed,
        local_cpu: local.cpu,
        peer_cpu: peer.cpu,
    })
}

/// 1-byte ping-pong round trips between two kernel sockets over the veth pair (MTU 1500).
pub fn latency(settings: &Settings) -> Vec<Record> {
    let result = util::guarded("kernel latency", || {
        let pair = VethPair::new(1500)?;
        let listener = Arc::new(pair.listen(5002)?);
        let mut runs = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..settings.runs {
            let (r, pct) = util::cpu_percent(|| {
                util::guarded("kernel ping-pong run", || {
                    let l = listener.clone();
                    let peer = std::thread::spawn(move || {
                        util::kernel_echo(accept_timeout(&l, Duration::from_secs(5))?)
                    });
                    let r = ping_pong(pair.connect(5002)?, settings.run_time());
                    join_peer(peer)?;
                    r
                })
            });
            cpu.push(pct);
            runs.push(r);
        }
        Ok((runs, cpu))
    });
    match result {
        Ok((runs, cpu)) => util::latency_records(NAME, 1500, runs, &cpu),
        Err(e) => util::latency_records(NAME, 1500, vec![Err(e)], &[]),
    }
}

/// Round trips of one byte for `dur` on a kernel stream; microseconds each. Closes the stream.
pub fn ping_pong(mut s: TcpStream, dur: Duration) -> Result<Vec<f64>, String> {
    s.set_nodelay(true).map_err(util::ctx("nodelay"))?;
    s.set_read_timeout(Some(OP_TIMEOUT))
        .map_err(util::ctx("timeout"))?;
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut b = [7u8; 1];
    while start.elapsed() < dur {
        let t = Instant::now();
        s.write_all(&b).map_err(util::ctx("ping write"))?;
        s.read_exact(&mut b).map_err(util::ctx("pong read"))?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(samples)
}

/// Sequential connection rate with a kernel client against a kernel listener over veth.
pub fn connrate(settings: &Settings) -> Record {
    let mut rec = Record::new(
        "connrate",
        NAME,
        "kernel client -> kernel listener",
        "connections",
        "conn/s",
    );
    rec.mtu = Some(1500);
    rec.buffers = "kernel defaults".into();
    let result = util::guarded("kernel connrate", || {
        let pair = VethPair::new(1500)?;
        let note = tune_client_ns(&pair.a);
        let mut runs = Vec::new();
        for run in 0..settings.runs {
            // A new listening port per run: no TIME-WAIT tuple of an earlier run collides.
            let port = 6000 + run as u16;
            let listener = pair.listen(port)?;
            let stop = Arc::new(AtomicBool::new(false));
            let server = {
                let stop = stop.clone();
                std::thread::spawn(move || kernel_server(listener, &stop))
            };
            let addr = SocketAddr::new(IpAddr::V4(B_ADDR), port);
            let dur = settings.run_time();
            let client = pair.a.spawn(move || connect_loop(addr, dur));
            let c = client
                .join()
                .map_err(|_| "client thread panicked".to_string());
            stop.store(true, Ordering::SeqCst);
            let s = server
                .join()
                .map_err(|_| "server thread panicked".to_string())?;
            runs.push((c?, s));
        }
        Ok((runs, note))
    });
    match result {
        Ok((runs, note)) => {
            let mut rates = Vec::new();
            let (mut ccpu, mut scpu) = (Vec::new(), Vec::new());
            for (c, s) in runs {
                match c {
                    Ok(c) if c.bytes > 0 => {
                        rates.push(c.bytes as f64 / c.elapsed.as_secs_f64());
                        ccpu.push(c.cpu.as_secs_f64() * 1e6 / c.bytes as f64);
                        scpu.push(s.cpu.as_secs_f64() * 1e6 / c.bytes as f64);
                    }
                    Ok(_) => rec.fail("no connection completed"),
                    Err(e) => rec.fail(e),
                }
            }
            rec = rec.with_runs(rates);
            rec.cpu("listener thread", "cpu_us_per_conn", &scpu);
            rec.cpu("kernel client thread", "cpu_us_per_conn", &ccpu);
            rec.note = Some(format!(
                "sequential, 1 client; listener closes first; {note}"
            ));
        }
        Err(e) => rec.fail(e),
    }
    rec
}

/// Raises the port range and enables tw_reuse in the client namespace; says what was set.
pub fn tune_client_ns(ns: &Netns) -> String {
    let mut notes = Vec::new();
    for (k, v) in [
        ("net.ipv4.ip_local_port_range", "1024 65535"),
        ("net.ipv4.tcp_tw_reuse", "1"),
    ] {
        match ns.sysctl(k, v) {
            Ok(()) => notes.push(format!("{k}={v}")),
            Err(e) => notes.push(format!("{k}: n/a ({e})")),
        }
    }
    notes.join(", ")
}

/// Kernel listener: accept, read 1, write 1, close, until `stop`. Returns its thread CPU.
fn kernel_server(listener: TcpListener, stop: &AtomicBool) -> PeerResult {
    let cpu0 = util::thread_cpu();
    let mut served = 0;
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut s) = accept_timeout(&listener, Duration::from_millis(100)) else {
            continue;
        };
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(OP_TIMEOUT));
        let mut b = [0u8; 1];
        if s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {
            served += 1;
        }
    }
    PeerResult {
        bytes: served,
        elapsed: Duration::ZERO,
        cpu: util::thread_cpu() - cpu0,
    }
}

/// Kernel client: connect, 1 byte each way, read the server's FIN, close; for `dur`.
/// `bytes` of the result counts completed connections.
pub fn connect_loop(addr: SocketAddr, dur: Duration) -> Result<PeerResult, String> {
    let cpu0 = util::thread_cpu();
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < dur {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("connect #{done}: {e}"))?;
        s.set_nodelay(true).map_err(util::ctx("nodelay"))?;
        s.set_read_timeout(Some(OP_TIMEOUT))
            .map_err(util::ctx("timeout"))?;
        let mut b = [1u8; 1];
        s.write_all(&b).map_err(|e| format!("write #{done}: {e}"))?;
        s.read_exact(&mut b)
            .map_err(|e| format!("read #{done}: {e}"))?;
        let n = s
            .read(&mut b)
            .map_err(|e| format!("read EOF #{done}: {e}"))?;
        if n != 0 {
            return Err(format!("connection #{done}: expected end of stream"));
        }
        done += 1;
    }
    Ok(PeerResult {
        bytes: done,
        elapsed: start.elapsed(),
        cpu: util::thread_cpu() - cpu0,
    })
}
