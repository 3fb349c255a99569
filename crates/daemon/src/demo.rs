//! `lingerstackd demo`: the three close modes, shown against the Linux kernel.
//!
//! As root it creates a private network namespace with a TAP device (the test kit's
//! [`TapNet`]), starts the daemon's stack and services on that TAP inside this process, and uses
//! the kernel of the namespace as the client of three echo services, one per linger mode:
//!
//! | port  | linger    | the client                                                     |
//! |-------|-----------|----------------------------------------------------------------|
//! | 7     | graceful  | sends 64 KiB, closes its side, reads everything                |
//! | 10007 | abort     | small receive buffer, closes its side, reads only 300 ms later |
//! | 20007 | linger:1  | same, and reads only after 1.5 s: the linger runs out          |
//! | 20007 | linger:1  | reads at once: the lingering close finishes in time            |
//!
//! A capture on the kernel side of the TAP (AF_PACKET) records what went over the wire; the
//! table shows what the kernel's socket saw next to what the capture shows. The namespace is
//! removed at the end; the pcap file stays.
//!
//! Without root the same story runs on the in-memory link: a second engine in this process
//! plays the client, and the daemon's own pcap of its link stands in for the capture.

use std::io::Write;
use std::net::{Ipv4Addr, Shutdown as NetShutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use lingerstack_stack::engine::DeviceOptions;
use lingerstack_stack::link::MemoryLink;
use lingerstack_stack::{Cidr, CloseMode, SocketId, Stack, StackConfig, TcpOptions, Wait};
use lingerstack_testkit::{Capture, Dir, TapNet, Trace, peer};

use crate::config::{self, Config, ServiceEntry, Settings, Text};
use crate::daemon::{self, Daemon};

type Result<T> = std::result::Result<T, String>;

/// Bytes each client sends.
const PAYLOAD: usize = 64 * 1024;
/// The small receive buffer of the clients that keep their window shut.
const SMALL_RCVBUF: usize = 4096;

/// One scenario of the table.
struct Scenario {
    mode: &'static str,
    port: u16,
    small_rcvbuf: bool,
    /// How long the client waits after closing its side before it reads.
    read_after: Duration,
    expect: &'static str,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        mode: "graceful",
        port: 7,
        small_rcvbuf: false,
        read_after: Duration::ZERO,
        expect: "every byte, then FIN",
    },
    Scenario {
        mode: "abort",
        port: 10007,
        small_rcvbuf: true,
        read_after: Duration::from_millis(300),
        expect: "RST at once, queued data lost",
    },
    Scenario {
        mode: "linger:1",
        port: 20007,
        small_rcvbuf: true,
        read_after: Duration::from_millis(1500),
        expect: "RST after 1 s (peer not reading)",
    },
    Scenario {
        mode: "linger:1",
        port: 20007,
        small_rcvbuf: false,
        read_after: Duration::ZERO,
        expect: "every byte and FIN, well before 1 s",
    },
];

/// What the client saw.
struct Seen {
    local_port: u16,
    read: usize,
    ending: String,
}

/// Run the demo; `pcap` is where to put the capture (default under target/captures).
pub fn run(pcap: Option<PathBuf>, force_memory: bool) -> Result<()> {
    let started = Instant::now();
    let result = if force_memory {
        over_memory("--memory was given", pcap)
    } else {
        match lingerstack_testkit::tap_available() {
            Ok(()) => match TapNet::new() {
                Ok(net) => over_tap(net, pcap),
                Err(e) => over_memory(&format!("creating a namespace and TAP failed: {e}"), pcap),
            },
            Err(why) => over_memory(&why, pcap),
        }
    };
    println!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
    result
}

fn demo_config(tap: &str, ip: Ipv4Addr, mac: [u8; 6], pcap: Option<PathBuf>) -> Result<Config> {
    config::resolve(Settings {
        tap: Some(tap.to_string()),
        ipv4: Some(format!("{ip}/24")),
        mac: Some(crate::control::mac_string(mac)),
        log_level: Some("warn".into()),
        drain: Some(Text("2s".into())),
        pcap,
        service: ["echo:7,graceful", "echo:10007,abort", "echo:20007,linger:1"]
            .map(|s| ServiceEntry::Spec(s.into()))
            .to_vec(),
        ..Settings::default()
    })
    .map_err(|e| e.to_string())
}

fn default_pcap(name: &str) -> Result<PathBuf> {
    let dir = lingerstack_testkit::captures_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir.join(name))
}

fn over_tap(net: TapNet, pcap: Option<PathBuf>) -> Result<()> {
    println!(
        "link: TAP {} in a private network namespace {} (MTU {}); the Linux kernel is the client",
        net.tap_name(),
        net.ns().name(),
        net.mtu()
    );
    println!(
        "addresses: kernel {}, lingerstackd {} (echo on port 7 graceful, 10007 abort, 20007 linger:1)",
        net.kernel_v4(),
        net.stack_v4()
    );
    let capture = Capture::start(net.ns(), net.tap_name(), "lingerstackd-demo")
        .map_err(|e| format!("starting the capture: {e}"))?;
    let config = demo_config(net.tap_name(), net.stack_v4(), net.stack_mac(), None)?;
    let tap = {
        let c = config.clone();
        net.ns().run(move || daemon::open_tap(&c))?
    };
    let mut d = Daemon::start(config, tap, false, None)?;
    net.wait_link_up(Duration::from_secs(5))
        .map_err(|e| format!("TAP link: {e}"))?;

    let mut seen = Vec::new();
    for s in &SCENARIOS {
        let addr = SocketAddr::new(net.stack_v4().into(), s.port);
        let rcvbuf = s.small_rcvbuf.then_some(SMALL_RCVBUF);
        let mut conn = peer::tcp_connect(net.ns(), addr, rcvbuf, Duration::from_secs(5))
            .map_err(|e| format!("kernel connect to {addr}: {e}"))?;
        seen.push(kernel_client(&mut conn, s)?);
    }
    d.drain();
    drop(d);
    let trace = capture.stop();
    let path = keep_pcap(&trace.pcap_path, pcap)?;
    table(&trace, &seen, "kernel");
    println!(
        "\ncapture (kernel side of the TAP, AF_PACKET): {}",
        path.display()
    );
    println!(
        "  read it with: tshark -r {} -Y tcp.flags.reset==1",
        path.display()
    );
    drop(net);
    println!("namespace and TAP removed");
    verdict(&trace, &seen)
}

fn keep_pcap(captured: &Path, wanted: Option<PathBuf>) -> Result<PathBuf> {
    match wanted {
        Some(p) => {
            std::fs::copy(captured, &p).map_err(|e| format!("writing {}: {e}", p.display()))?;
            Ok(p)
        }
        None => Ok(captured.to_path_buf()),
    }
}

/// The kernel's side of one scenario.
fn kernel_client(conn: &mut TcpStream, s: &Scenario) -> Result<Seen> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let local_port = conn.local_addr().map_err(|e| e.to_string())?.port();
    let payload = pattern();
    conn.write_all(&payload)
        .map_err(|e| format!("kernel write: {e}"))?;
    // Let the echo come back into the (small) buffer before closing our side.
    std::thread::sleep(Duration::from_millis(50));
    conn.shutdown(NetShutdown::Write)
        .map_err(|e| format!("kernel shutdown: {e}"))?;
    std::thread::sleep(s.read_after);
    let (data, err) = peer::read_to_end_or_error(conn);
    let ending = match err {
        None => "EOF".to_string(),
        Some(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "ECONNRESET".to_string(),
        Some(e) => format!("error: {e}"),
    };
    if data.as_slice() != &payload[..data.len()] {
        return Err("the echo differs from what was sent".into());
    }
    Ok(Seen {
        local_port,
        read: data.len(),
        ending,
    })
}

fn pattern() -> Vec<u8> {
    (0..PAYLOAD).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The table: what the peer saw, what the capture shows.
fn table(trace: &Trace, seen: &[Seen], who: &str) {
    println!();
    let read = format!("{who} read");
    println!(
        "{:<10} {:<36} | {read:<28} | {:<24} | {:<16} | after client FIN",
        "mode", "expected", "lingerstack sent (wire)", "closed with"
    );
    println!("{}", "-".repeat(140));
    for (s, v) in SCENARIOS.iter().zip(seen) {
        let t = trace.conn(v.local_port);
        let wire = t.stream(Dir::FromStack).len();
        let client_fin = t
            .dir(Dir::ToStack)
            .into_iter()
            .find(|x| x.flags.fin)
            .map(|x| x.offset);
        let ours = t
            .dir(Dir::FromStack)
            .into_iter()
            .find(|x| x.flags.fin || x.flags.rst)
            .map(|x| (x.offset, if x.flags.rst { "RST" } else { "FIN" }));
        let rst_after_fin = t.has_fin(Dir::FromStack) && t.has_rst(Dir::FromStack);
        let closed = match ours {
            Some((_, kind)) if rst_after_fin => format!("{kind}, then RST"),
            Some((_, kind)) => format!("{kind}, no {}", if kind == "FIN" { "RST" } else { "FIN" }),
            None => "neither".into(),
        };
        let after = match (client_fin, ours) {
            (Some(a), Some((b, _))) => {
                format!("{:>7.1} ms", b.saturating_sub(a).as_secs_f64() * 1e3)
            }
            _ => "-".into(),
        };
        println!(
            "{:<10} {:<36} | {:>6} of {} B, {:<10} | {:>8} of {} B      | {:<16} | {}",
            s.mode, s.expect, v.read, PAYLOAD, v.ending, wire, PAYLOAD, closed, after
        );
    }
}

/// Does each row show what its mode promises?
fn verdict(trace: &Trace, seen: &[Seen]) -> Result<()> {
    let mut problems = Vec::new();
    for (s, v) in SCENARIOS.iter().zip(seen) {
        let t = trace.conn(v.local_port);
        let graceful = v.ending == "EOF" && v.read == PAYLOAD && !t.has_rst(Dir::FromStack);
        let reset =
            v.ending == "ECONNRESET" && t.has_rst(Dir::FromStack) && !t.has_fin(Dir::FromStack);
        let ok = match (s.mode, s.small_rcvbuf) {
            ("abort", _) | ("linger:1", true) => reset,
            _ => graceful,
        };
        if !ok {
            problems.push(format!("{} ({}) did not show {}", s.mode, s.port, s.expect));
        }
    }
    if problems.is_empty() {
        println!("result: OK, every mode closed as the linger table says");
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn over_memory(why: &str, pcap: Option<PathBuf>) -> Result<()> {
    println!("link: the IN-MEMORY link, because the TAP version is not possible here: {why}");
    println!("      (run as root, with /dev/net/tun and iproute2, to see the real kernel)");
    println!("      a second lingerstack engine in this process plays the client");
    let daemon_ip = Ipv4Addr::new(10, 9, 0, 1);
    let client_ip = Ipv4Addr::new(10, 9, 0, 2);
    let daemon_mac = [0x02, 0, 0, 0, 0, 0x01];
    let path = match pcap {
        Some(p) => p,
        None => default_pcap("lingerstackd-demo-memory.pcap")?,
    };
    let config = demo_config("memory", daemon_ip, daemon_mac, Some(path.clone()))?;
    println!(
        "addresses: client engine {client_ip}, lingerstackd {daemon_ip} (echo on port 7 graceful, 10007 abort, 20007 linger:1)"
    );
    let (a, b) = MemoryLink::pair(1500);
    let mut d = Daemon::start(config, a, false, None)?;
    let client = Stack::start(
        StackConfig {
            mac: [0x02, 0, 0, 0, 0, 0x02],
            ipv4: Some(Cidr {
                addr: client_ip,
                prefix: 24,
            }),
            ..StackConfig::default()
        },
        Box::new(b),
        DeviceOptions::default(),
        None,
    )
    .map_err(|e| format!("starting the client engine: {e}"))?;
    let mut seen = Vec::new();
    for s in &SCENARIOS {
        seen.push(stack_client(
            &client,
            SocketAddr::new(daemon_ip.into(), s.port),
            s,
        )?);
    }
    d.drain();
    drop(d);
    client.stop(Duration::ZERO);
    let trace = read_own_pcap(&path, daemon_mac)?;
    table(&trace, &seen, "client");
    println!(
        "\ncapture (the daemon's own record of its link): {}",
        path.display()
    );
    verdict(&trace, &seen)
}

/// The client engine's side of one scenario.
fn stack_client(stack: &Stack, addr: SocketAddr, s: &Scenario) -> Result<Seen> {
    let block = Wait::Block(Some(Duration::from_secs(5)));
    let id: SocketId = stack.open().map_err(|e| e.to_string())?;
    if s.small_rcvbuf {
        let options = TcpOptions {
            rx_buffer: SMALL_RCVBUF,
            ..stack.info(id).map_err(|e| e.to_string())?.options
        };
        stack.set_options(id, options).map_err(|e| e.to_string())?;
    }
    stack
        .connect(id, addr, block)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let local_port = stack
        .info(id)
        .ok()
        .and_then(|i| i.local)
        .map_or(0, |l| l.port());
    let payload = pattern();
    let mut data = Vec::new();
    // Send in pieces, reading as it comes when the scenario reads at once (the daemon echoes
    // while we send; a client that never read would fill both windows).
    for chunk in payload.chunks(8192) {
        stack
            .send(id, chunk, block)
            .map_err(|f| format!("send: {}", f.error))?;
        if !s.small_rcvbuf {
            while let Ok(d) = stack.recv(id, 65536, Wait::No) {
                if d.is_empty() {
                    break;
                }
                data.extend_from_slice(&d);
            }
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    stack
        .shutdown(id, lingerstack_stack::Shutdown::Write)
        .map_err(|e| e.to_string())?;
    std::thread::sleep(s.read_after);
    let ending = loop {
        match stack.recv(id, 65536, block) {
            Ok(d) if d.is_empty() => break "EOF".to_string(),
            Ok(d) => data.extend_from_slice(&d),
            Err(lingerstack_stack::StackError::ConnReset) => break "ECONNRESET".to_string(),
            Err(e) => break format!("error: {e}"),
        }
    };
    let _ = stack.close(id, CloseMode::Abort);
    if data.as_slice() != &payload[..data.len().min(PAYLOAD)] {
        return Err("the echo differs from what was sent".into());
    }
    Ok(Seen {
        local_port,
        read: data.len(),
        ending,
    })
}

/// Read the daemon's own pcap (classic, little-endian, microseconds, Ethernet); frames from
/// `own_mac` count as sent by lingerstack.
fn read_own_pcap(path: &Path, own_mac: [u8; 6]) -> Result<Trace> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let u32_at = |at: usize| -> u32 {
        bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    if bytes.len() < 24 || u32_at(0) != 0xa1b2_c3d4 {
        return Err(format!(
            "{}: not a little-endian microsecond pcap",
            path.display()
        ));
    }
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let time =
            SystemTime::UNIX_EPOCH + Duration::new(u64::from(u32_at(at)), u32_at(at + 4) * 1000);
        let len = u32_at(at + 8) as usize;
        let Some(data) = bytes.get(at + 16..at + 16 + len) else {
            break;
        };
        let dir = if data.get(6..12) == Some(&own_mac[..]) {
            Dir::FromStack
        } else {
            Dir::ToStack
        };
        frames.push((time, dir, data));
        at += 16 + len;
    }
    let start = frames.first().map_or(SystemTime::now(), |f| f.0);
    Ok(Trace::from_frames(path.to_path_buf(), 0, start, frames))
}
