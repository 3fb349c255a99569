//! `lingerstackd demo`: the three close modes, shown against the Linux kernel.
//!
//! As root it creates a private network namespace with the kernel side of a TAP device in it
//! ([`netns::PrivateNet`]), starts the daemon's stack and services on that TAP inside this
//! process, and uses the kernel of the namespace as the client of three echo services, one per
//! linger mode:
//!
//! | port  | linger    | the client                                                     |
//! |-------|-----------|----------------------------------------------------------------|
//! | 7     | graceful  | sends 64 KiB, closes its side, reads everything                |
//! | 10007 | abort     | small receive buffer, closes its side, reads only 300 ms later |
//! | 20007 | linger:1  | same, and reads only after 1.5 s: the linger runs out          |
//! | 20007 | linger:1  | reads at once: the lingering close finishes in time            |
//!
//! The daemon's own pcap of its link records what went over the wire ([`wire`] reads it back);
//! the table shows what the kernel's socket saw next to what the capture shows. The namespace
//! is removed at the end; the pcap file stays.
//!
//! Without root the same story runs on the in-memory link: a second engine in this process
//! plays the client.

pub mod netns;
pub mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lingerstack_stack::DeviceOptions;
use lingerstack_stack::link::MemoryLink;
use lingerstack_stack::{Cidr, CloseMode, SocketId, Stack, StackConfig, TcpOptions, Wait};

use self::netns::{PeerArgs, PrivateNet};
use self::wire::{Dir, Trace};

use crate::config::{self, Config, ServiceEntry, Settings, Text};
use crate::daemon::Daemon;

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
        match PrivateNet::new() {
            Ok((net, tap)) => over_tap(net, tap, pcap),
            Err(e) => over_memory(&format!("creating a namespace and TAP failed: {e}"), pcap),
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
    // Beside the tests' captures when run from the workspace, else in the temporary directory.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let dir = if target.is_dir() {
        target.join("captures")
    } else {
        std::env::temp_dir()
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir.join(name))
}

fn over_tap(net: PrivateNet, tap: lingerstack_tap::TapLink, pcap: Option<PathBuf>) -> Result<()> {
    println!(
        "link: TAP {} with its kernel side in a private network namespace {}; the Linux kernel is the client",
        net.tap(),
        net.ns(),
    );
    println!(
        "addresses: kernel {}, lingerstackd {} (echo on port 7 graceful, 10007 abort, 20007 linger:1)",
        netns::KERNEL_V4,
        netns::STACK_V4
    );
    let path = match pcap {
        Some(p) => p,
        None => default_pcap("lingerstackd-demo.pcap")?,
    };
    let mac = config::DEFAULT_MAC;
    let config = demo_config(net.tap(), netns::STACK_V4, mac, Some(path.clone()))?;
    let mut d = Daemon::start(config, tap, false, None)?;
    net.wait_link_up(Duration::from_secs(5))?;

    let mut seen = Vec::new();
    for s in &SCENARIOS {
        let peer = net.run_peer(&PeerArgs {
            connect: SocketAddr::new(netns::STACK_V4.into(), s.port),
            payload: PAYLOAD,
            rcvbuf: s.small_rcvbuf.then_some(SMALL_RCVBUF),
            read_after_ms: s.read_after.as_millis() as u64,
        })?;
        if peer.ending == "mismatch" {
            return Err("the echo differs from what was sent".into());
        }
        seen.push(Seen {
            local_port: peer.local_port,
            read: peer.read,
            ending: peer.ending,
        });
    }
    d.drain();
    drop(d);
    let trace = wire::read_pcap(&path, mac)?;
    table(&trace, &seen, "kernel");
    println!(
        "\ncapture (the daemon's own record of its link): {}",
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

fn pattern() -> Vec<u8> {
    netns::pattern(PAYLOAD)
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
        let wire = t.stream_len(Dir::FromStack);
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
    let trace = wire::read_pcap(&path, daemon_mac)?;
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
