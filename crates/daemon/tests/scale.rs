//! The daemon at scale and at its limit, with the kernel of a private namespace as the clients:
//!
//! - thousands of idle echo connections are held by a fixed handful of threads (the runtime's,
//!   the engine's, signals, control), each still echoes at the end, and the memory each costs
//!   is measured (printed; docs/performance.md has the figures of the full run);
//! - `--max-connections`: at the limit the daemon stops accepting; once the listener's small
//!   queue is full a new client's SYN is neither answered nor reset (the kernel retransmits
//!   it), and the client gets in when a connection ends.
//!
//! `LINGERSTACK_DAEMON_CONNS` sets the number of idle connections (default 1,000 in the suite;
//! `just daemon-scale` runs 10,000).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::DaemonProc;
use lingerstack_testkit::{Capture, Dir, TapNet, peer, require_tap};

/// Idle connections the suite holds (the full 10,000 run is `just daemon-scale`).
const DEFAULT_CONNS: usize = 1_000;
/// Connections that echo a byte at the end: all of them up to this many, else an even sample.
const ECHO_SAMPLE: usize = 1_000;
/// The daemon's threads must stay below this however many connections it holds.
const MAX_THREADS: usize = 50;
/// The listen backlog of the limit test: connections queued before SYNs go unanswered.
const BACKLOG: usize = 4;

fn connections(status: &serde_json::Value) -> usize {
    status["connections"].as_array().map_or(0, |a| a.len())
}

/// Wait up to `within` for `cond`.
fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("not within {within:?}: {what}");
}

/// One byte each way on `s`: the connection is served.
fn echoes(s: &mut TcpStream, byte: u8) -> bool {
    let mut back = [0u8; 1];
    s.write_all(&[byte]).is_ok() && s.read_exact(&mut back).is_ok() && back[0] == byte
}

/// Kernel threads opening the connections side by side (threads spawned in the namespace's
/// thread are in the namespace too). A SYN the stack drops costs its client a 1 s
/// retransmission; side by side, those waits overlap.
const CONNECTING_THREADS: usize = 32;

/// Open `n` connections to `addr` from the calling thread's namespace.
fn connect_many(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..CONNECTING_THREADS)
            .map(|w| {
                let count = n / CONNECTING_THREADS + usize::from(w < n % CONNECTING_THREADS);
                s.spawn(move || {
                    (0..count)
                        .map(|i| {
                            TcpStream::connect_timeout(&addr, Duration::from_secs(20))
                                .unwrap_or_else(|e| panic!("thread {w}, connection {i}: {e}"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a connecting thread panicked"))
            .collect()
    })
}

fn conns_wanted() -> usize {
    std::env::var("LINGERSTACK_DAEMON_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CONNS)
}

#[test]
fn holds_idle_echo_connections_on_a_few_threads() {
    if !require_tap("holds_idle_echo_connections_on_a_few_threads") {
        return;
    }
    let n = conns_wanted();
    // The kernel's ends are descriptors of this process.
    let limit = lingerstack_testkit::raise_nofile_limit(n as u64 + 1024).unwrap();
    assert!(
        limit >= n as u64 + 256,
        "RLIMIT_NOFILE {limit} too low for {n}"
    );
    let net = TapNet::new().unwrap();
    net.ns()
        .sysctl("net.ipv4.ip_local_port_range", "1024 65535")
        .unwrap();
    // Small socket buffers, as a daemon holding many idle clients would be configured.
    let d = DaemonProc::start_logging(
        &net,
        "scale",
        "warn",
        &[
            "--service",
            "echo:7",
            "--rx-buffer",
            "4k",
            "--tx-buffer",
            "4k",
        ],
    );
    let idle_threads = steady_threads(&d);
    let rss_before = d.rss();
    let stack = SocketAddr::new(net.stack_v4().into(), 7);

    let started = Instant::now();
    let mut clients = net.ns().run(|| connect_many(stack, n));
    let connect_time = started.elapsed();
    eventually(Duration::from_secs(30), "every connection accepted", || {
        connections(&d.status_json()) == n
    });
    // Let the daemon settle (every task parked on its first read) before measuring.
    std::thread::sleep(Duration::from_millis(500));
    let threads = steady_threads(&d);
    let rss_after = d.rss();
    let per_conn = rss_after.saturating_sub(rss_before) / n as u64;
    println!(
        "{n} idle echo connections: connected in {:.1} s; daemon threads {idle_threads} idle, \
         {threads} with them; RSS {:.1} MiB before, {:.1} MiB after: {per_conn} bytes per \
         connection (4 KiB socket buffers)",
        connect_time.as_secs_f64(),
        rss_before as f64 / (1 << 20) as f64,
        rss_after as f64 / (1 << 20) as f64,
    );
    assert!(
        threads < MAX_THREADS && threads == idle_threads,
        "{threads} threads with {n} connections ({idle_threads} before)"
    );

    // The connections still work: one byte each way on each, or on an even sample of
    // ECHO_SAMPLE of them when there are more (each engine poll walks every socket, so ten
    // thousand one-byte round trips one after another take minutes).
    let step = n.div_ceil(ECHO_SAMPLE).max(1);
    let echo_started = Instant::now();
    for (i, c) in clients.iter_mut().enumerate().step_by(step) {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert!(
            echoes(c, (i % 251) as u8),
            "connection {i} of {n} did not echo"
        );
    }
    println!(
        "{} of {n} connections echoed a byte in {:.1} s",
        n.div_ceil(step),
        echo_started.elapsed().as_secs_f64()
    );
    assert!(steady_threads(&d) < MAX_THREADS);
    let log = d.log_text();
    assert!(!log.contains("ERROR"), "daemon log:\n{log}");
    drop(clients);
}

#[test]
fn max_connections_leaves_syns_unanswered_until_one_ends() {
    if !require_tap("max_connections_leaves_syns_unanswered_until_one_ends") {
        return;
    }
    const LIMIT: usize = 2;
    let net = TapNet::new().unwrap();
    let cap = Capture::start(net.ns(), net.tap_name(), "daemon-max-connections").unwrap();
    let d = DaemonProc::start_logging(
        &net,
        "max-connections",
        "warn",
        &[
            "--service",
            "echo:7",
            "--max-connections",
            "2",
            "--backlog",
            "4",
        ],
    );
    let stack = SocketAddr::new(net.stack_v4().into(), 7);
    let connect = |timeout| peer::tcp_connect(net.ns(), stack, None, timeout);

    // The served ones.
    let mut served: Vec<TcpStream> = (0..LIMIT)
        .map(|_| connect(Duration::from_secs(5)).unwrap())
        .collect();
    for (i, s) in served.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(echoes(s, i as u8), "served connection {i} did not echo");
    }
    // The listener's queue takes a few more handshakes, which wait unaccepted; then a SYN
    // finds it full and gets no answer at all.
    let mut queued = Vec::new();
    let blocked_port = loop {
        let sock = net.ns().run(|| {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.bind(&SocketAddr::new(net.kernel_v4().into(), 0).into())
                .unwrap();
            s
        });
        let port = sock.local_addr().unwrap().as_socket().unwrap().port();
        match sock.connect_timeout(&stack.into(), Duration::from_millis(1500)) {
            Ok(()) => queued.push(TcpStream::from(sock)),
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "port {port}: {e}");
                break port;
            }
        }
        // The engine keeps idle listening sockets ready beside the queue (as many as the
        // backlog at most) and stops making new ones when the queue is full: twice the
        // backlog bounds the handshakes completed beyond the limit.
        assert!(
            queued.len() <= 2 * BACKLOG,
            "{} connections completed beyond the limit of {LIMIT}",
            queued.len()
        );
    };
    assert_eq!(connections(&d.status_json()), LIMIT, "status at the limit");
    println!(
        "at the limit of {LIMIT}: {} handshakes queued (backlog {BACKLOG}), then a SYN unanswered",
        queued.len()
    );

    // One served client leaves: the daemon accepts a queued one, which then echoes, and a
    // new client gets in (its SYN answered at a retransmission).
    served.pop();
    let queued_port = |s: &TcpStream| s.local_addr().unwrap().port();
    let mut next = None;
    eventually(
        Duration::from_secs(10),
        "a queued connection accepted",
        || {
            let status = d.status_json();
            let peers: Vec<String> = status["connections"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c["peer"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            next = queued.iter().position(|s| {
                peers
                    .iter()
                    .any(|p| p.ends_with(&format!(":{}", queued_port(s))))
            });
            next.is_some()
        },
    );
    let mut first = queued.remove(next.unwrap());
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(
        echoes(&mut first, 7),
        "the accepted queued connection did not echo"
    );
    // Everyone else leaves too: a client whose SYN went unanswered gets in at a
    // retransmission once the queue has room.
    let late = {
        let ns_stack = stack;
        net.ns()
            .spawn(move || std::net::TcpStream::connect_timeout(&ns_stack, Duration::from_secs(30)))
    };
    drop((first, queued, served));
    let late = late.join().unwrap();
    assert!(
        late.is_ok(),
        "a client did not get in below the limit: {late:?}"
    );

    drop(d);
    let trace = cap.stop();
    trace.assert_no_drops();
    let t = trace.conn(blocked_port);
    let syns = t.dir(Dir::ToStack).iter().filter(|s| s.flags.syn).count();
    t.assert(
        syns >= 2,
        &format!("{syns} SYNs from the kernel, want a retransmission"),
    );
    t.assert(
        t.dir(Dir::FromStack).is_empty(),
        "the stack answered the SYN beyond the limit (SYN-ACK or RST)",
    );
}

/// The daemon's threads but the control socket's short-lived per-request ones.
fn steady_threads(d: &DaemonProc) -> usize {
    d.threads()
        .iter()
        .filter(|name| *name != "control-client")
        .count()
}
