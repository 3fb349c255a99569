//! An echo server (RFC 862) on lingerstack, and a client that talks to it.
//!
//! As root (CAP_NET_ADMIN, /dev/net/tun, iproute2) this creates a private network namespace
//! with a TAP device, runs lingerstack on the TAP with an echo service on port 7, and lets the
//! Linux kernel of that namespace be the client: it connects, sends a few messages, reads the
//! echoes and closes. A capture on the kernel side of the TAP shows how each side closed; the
//! pcap file is kept. The namespace and TAP are removed at the end.
//!
//! Without those privileges it tells the same story over the in-memory link: two lingerstack
//! engines in this process, one serving and one playing the client, with the server's own
//! pcap of its link standing in for the capture.
//!
//! ```text
//! cargo run --example echo          # sudo -E for the TAP version
//! RUST_LOG=debug cargo run --example echo
//! ```
//!
//! Exit status 0 when every echo came back intact and both sides closed with a FIN and no RST.

use std::io::{Read, Write};
use std::net::{Shutdown as NetShutdown, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use lingerstack::stack::DeviceOptions;
use lingerstack::stack::link::{MemoryLink, PcapSink};
use lingerstack::stack::{Cidr, CloseMode, SocketId, Stack, StackConfig, StackError, Wait};
use lingerstack_testkit::{Capture, Dir, TapNet, Trace, peer};

/// The echo service's port (RFC 862).
const ECHO_PORT: u16 = 7;
/// Every blocking call gives up after this long.
const BLOCK: Wait = Wait::Block(Some(Duration::from_secs(10)));
const MESSAGES: [&str; 4] = [
    "hello, lingerstack",
    "RFC 862: whatever you send comes back",
    "a third message, a little longer than the others to make a point",
    "bye",
];

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let result = match lingerstack_testkit::tap_available() {
        Ok(()) => match TapNet::new() {
            Ok(net) => over_tap(net),
            Err(e) => over_memory(&format!("creating a namespace and TAP failed: {e}")),
        },
        Err(why) => over_memory(&why),
    };
    match result {
        Ok(()) => {
            println!("\nresult: OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\nresult: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The kernel of a private namespace is the client; lingerstack serves on its TAP.
fn over_tap(net: TapNet) -> Result<()> {
    println!(
        "link: TAP device {} in network namespace {} (MTU {}), the Linux kernel as the client",
        net.tap_name(),
        net.ns().name(),
        net.mtu()
    );
    println!(
        "addresses: kernel {} ({}), lingerstack {} ({})",
        net.kernel_v4(),
        mac(net.kernel_mac()),
        net.stack_v4(),
        mac(net.stack_mac())
    );
    // The capture starts before lingerstack opens the TAP, so it misses nothing.
    let capture = Capture::start(net.ns(), net.tap_name(), "echo-demo-tap")
        .map_err(|e| format!("starting the capture: {e}"))?;
    let stack = lingerstack_testkit::start_stack(
        &net,
        lingerstack_testkit::stack_config(&net),
        DeviceOptions::default(),
        None,
    )
    .map_err(|e| format!("starting lingerstack on the TAP: {e}"))?;
    let server_addr = SocketAddr::new(net.stack_v4().into(), ECHO_PORT);
    let server = echo_server(&stack, server_addr)?;

    // The kernel's client.
    let client = (|| -> Result<(usize, SocketAddr)> {
        let mut conn = peer::tcp_connect(net.ns(), server_addr, None, Duration::from_secs(5))
            .map_err(|e| format!("kernel connect to {server_addr}: {e}"))?;
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let local = conn.local_addr().map_err(|e| e.to_string())?;
        println!("kernel connected from {local} to {server_addr}");
        let mut echoed = 0;
        for msg in MESSAGES {
            conn.write_all(msg.as_bytes())
                .map_err(|e| format!("kernel write: {e}"))?;
            let mut back = vec![0; msg.len()];
            conn.read_exact(&mut back)
                .map_err(|e| format!("kernel read: {e}"))?;
            if back != msg.as_bytes() {
                return Err(format!(
                    "echo differs: sent {msg:?}, got {:?}",
                    String::from_utf8_lossy(&back)
                ));
            }
            println!(
                "  kernel sent {:>3} bytes, echo matches: {msg:?}",
                msg.len()
            );
            echoed += back.len();
        }
        // Done: close our half and read the server's end of stream.
        conn.shutdown(NetShutdown::Write)
            .map_err(|e| e.to_string())?;
        let (rest, err) = peer::read_to_end_or_error(&mut conn);
        match err {
            None if rest.is_empty() => {}
            None => return Err(format!("{} unexpected bytes after the echoes", rest.len())),
            Some(e) => return Err(format!("kernel read after its close: {e}")),
        }
        Ok((echoed, local))
    })();
    let served = join_server(server);
    let closed = wait_closed(&stack);
    let trace = capture.stop();
    stack.stop(Duration::from_secs(1));
    let (echoed, client_addr) = client?;
    let served = served?;
    closed?;
    let verdict = report(&trace, client_addr, server_addr, "kernel", echoed, served);
    println!("capture: {}", trace.pcap_path.display());
    drop(net);
    println!("namespace and TAP removed");
    verdict
}

/// Two engines on the in-memory link; one serves, the other plays the client.
fn over_memory(why: &str) -> Result<()> {
    println!("link: the in-memory link (two lingerstack engines in this process), because the");
    println!("      TAP version is not possible here: {why}");
    println!("      (run as root, with /dev/net/tun and iproute2, for the real-wire version)");
    let server_ip = std::net::Ipv4Addr::new(10, 9, 0, 1);
    let client_ip = std::net::Ipv4Addr::new(10, 9, 0, 2);
    let config = |ip, last| StackConfig {
        mac: [0x02, 0, 0, 0, 0, last],
        ipv4: Some(Cidr {
            addr: ip,
            prefix: 24,
        }),
        ..StackConfig::default()
    };
    println!(
        "addresses: client engine {client_ip} (02:00:00:00:00:02), server engine {server_ip} (02:00:00:00:00:01)"
    );
    let pcap_path = lingerstack_testkit::captures_dir().join("echo-demo-memory.pcap");
    std::fs::create_dir_all(pcap_path.parent().expect("has a parent"))
        .map_err(|e| format!("creating {}: {e}", pcap_path.display()))?;
    let sink = PcapSink::create(&pcap_path).map_err(|e| format!("{}: {e}", pcap_path.display()))?;
    let (a, b) = MemoryLink::pair(1500);
    let server_stack = Stack::start(
        config(server_ip, 1),
        Box::new(a),
        DeviceOptions {
            pcap: Some(sink),
            ..DeviceOptions::default()
        },
        None,
    )
    .map_err(|e| format!("starting the server engine: {e}"))?;
    let client_stack = Stack::start(
        config(client_ip, 2),
        Box::new(b),
        DeviceOptions::default(),
        None,
    )
    .map_err(|e| format!("starting the client engine: {e}"))?;
    let server_addr = SocketAddr::new(server_ip.into(), ECHO_PORT);
    let server = echo_server(&server_stack, server_addr)?;

    let client = (|| -> Result<(usize, SocketAddr)> {
        let s = &client_stack;
        let c = s.open().map_err(|e| e.to_string())?;
        s.connect(c, server_addr, BLOCK)
            .map_err(|e| format!("connect to {server_addr}: {e}"))?;
        let local = s
            .info(c)
            .map_err(|e| e.to_string())?
            .local
            .ok_or("no local address")?;
        println!("client engine connected from {local} to {server_addr}");
        let mut echoed = 0;
        for msg in MESSAGES {
            s.send(c, msg.as_bytes(), BLOCK)
                .map_err(|f| format!("send: {}", f.error))?;
            let mut back = Vec::new();
            while back.len() < msg.len() {
                let chunk = s
                    .recv(c, msg.len() - back.len(), BLOCK)
                    .map_err(|e| format!("recv: {e}"))?;
                if chunk.is_empty() {
                    return Err("end of stream before the whole echo".into());
                }
                back.extend_from_slice(&chunk);
            }
            if back != msg.as_bytes() {
                return Err(format!(
                    "echo differs: sent {msg:?}, got {:?}",
                    String::from_utf8_lossy(&back)
                ));
            }
            println!(
                "  client sent {:>3} bytes, echo matches: {msg:?}",
                msg.len()
            );
            echoed += back.len();
        }
        s.shutdown(c, lingerstack::stack::Shutdown::Write)
            .map_err(|e| e.to_string())?;
        let rest = s
            .recv(c, 1024, BLOCK)
            .map_err(|e| format!("recv after close: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("{} unexpected bytes after the echoes", rest.len()));
        }
        s.close(c, CloseMode::Graceful { deadline: None })
            .map_err(|e| e.to_string())?;
        Ok((echoed, local))
    })();
    let served = join_server(server);
    let closed = wait_closed(&server_stack);
    // The engine that stops second finds the other end of its link gone and logs a
    // "network down" error: expected here.
    println!("stopping both engines (the second one logs that its link's peer is gone)");
    server_stack.stop(Duration::from_secs(1));
    client_stack.stop(Duration::from_secs(1));
    let (echoed, client_addr) = client?;
    let served = served?;
    closed?;
    let trace = read_own_pcap(&pcap_path, [0x02, 0, 0, 0, 0, 1])?;
    let verdict = report(
        &trace,
        client_addr,
        server_addr,
        "client engine",
        echoed,
        served,
    );
    println!(
        "capture (the server engine's own record of its link): {}",
        pcap_path.display()
    );
    verdict
}

/// Listens on `addr` and serves one echo connection on a thread: returns the bytes echoed.
fn echo_server(stack: &Stack, addr: SocketAddr) -> Result<JoinHandle<Result<usize>>> {
    let listener = stack.open().map_err(|e| e.to_string())?;
    stack
        .bind(listener, addr)
        .map_err(|e| format!("bind {addr}: {e}"))?;
    stack
        .listen(listener, 4)
        .map_err(|e| format!("listen: {e}"))?;
    println!("lingerstack echo service listening on {addr}");
    let stack = stack.clone();
    Ok(thread::spawn(move || {
        let (conn, peer) = stack
            .accept(listener, BLOCK)
            .map_err(|e| format!("accept: {e}"))?;
        let echoed = echo(&stack, conn).map_err(|e| format!("echo to {peer}: {e}"))?;
        let outcome = stack
            .close(conn, CloseMode::Graceful { deadline: None })
            .map_err(|e| format!("close: {e}"))?;
        println!("server: end of stream from {peer} after {echoed} bytes; closed ({outcome:?})");
        let _ = stack.close(listener, CloseMode::Abort);
        Ok(echoed)
    }))
}

/// Sends back whatever arrives until end of stream.
fn echo(stack: &Stack, conn: SocketId) -> std::result::Result<usize, StackError> {
    let mut total = 0;
    loop {
        let data = stack.recv(conn, 4096, BLOCK)?;
        if data.is_empty() {
            return Ok(total);
        }
        stack.send(conn, &data, BLOCK).map_err(|f| f.error)?;
        total += data.len();
    }
}

fn join_server(server: JoinHandle<Result<usize>>) -> Result<usize> {
    server
        .join()
        .map_err(|_| "the echo server panicked".to_string())?
}

/// Waits (bounded) until the server's connection has finished closing.
fn wait_closed(stack: &Stack) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let c = stack.counters().map_err(|e| e.to_string())?;
        if c.graceful_closes >= 1 || c.resets_sent + c.resets_received > 0 {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!(
                "the server's connection did not finish closing: {c:?}"
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Prints what the capture shows of the connection and judges it.
fn report(
    trace: &Trace,
    client: SocketAddr,
    server: SocketAddr,
    client_name: &str,
    echoed: usize,
    served: usize,
) -> Result<()> {
    let t = trace.conn(client.port());
    let sent = MESSAGES.iter().map(|m| m.len()).sum::<usize>();
    let to_server = t.stream(Dir::ToStack);
    let from_server = t.stream(Dir::FromStack);
    println!("\nreport");
    println!(
        "  connection   {client} -> {server}, {} TCP segments captured",
        t.segments.len()
    );
    println!(
        "  bytes        {sent} sent by the {client_name}, {served} echoed by lingerstack, {echoed} read back"
    );
    println!(
        "  on the wire  {} bytes to lingerstack, {} bytes back",
        to_server.len(),
        from_server.len()
    );
    let closing = |dir: Dir| {
        let fin = t
            .dir(dir)
            .into_iter()
            .find(|s| s.flags.fin)
            .map(|s| s.offset);
        let rst = t.dir(dir).into_iter().any(|s| s.flags.rst);
        match (fin, rst) {
            (Some(at), false) => format!("FIN at {:.3} ms, no RST", at.as_secs_f64() * 1e3),
            (Some(_), true) => "FIN, then a RST".to_string(),
            (None, true) => "RST (abortive close)".to_string(),
            (None, false) => "neither FIN nor RST seen".to_string(),
        }
    };
    println!("  {client_name:<12} closed with {}", closing(Dir::ToStack));
    println!(
        "  {:<12} closed with {}",
        "lingerstack",
        closing(Dir::FromStack)
    );
    println!(
        "  ARP frames {}, capture drops {}",
        trace.arp_count(),
        trace.drops
    );
    let expected: Vec<u8> = MESSAGES.concat().into_bytes();
    let mut problems = Vec::new();
    if echoed != sent || served != sent {
        problems.push(format!(
            "{sent} bytes sent, {served} echoed, {echoed} read back"
        ));
    }
    if to_server != expected || from_server != expected {
        problems.push("the bytes on the wire differ from the messages".to_string());
    }
    for (dir, who) in [(Dir::ToStack, client_name), (Dir::FromStack, "lingerstack")] {
        if !t.has_fin(dir) || t.has_rst(dir) {
            problems.push(format!("{who} did not close with a FIN alone"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} (capture: {})",
            problems.join("; "),
            trace.pcap_path.display()
        ))
    }
}

/// Reads the engine's own pcap (classic, little-endian, microseconds, Ethernet) into a trace;
/// frames from `own_mac` count as sent by lingerstack.
fn read_own_pcap(path: &PathBuf, own_mac: [u8; 6]) -> Result<Trace> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
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
        let data = bytes.get(at + 16..at + 16 + len).ok_or("truncated pcap")?;
        let dir = if data.get(6..12) == Some(&own_mac[..]) {
            Dir::FromStack
        } else {
            Dir::ToStack
        };
        frames.push((time, dir, data));
        at += 16 + len;
    }
    let start = frames.first().map_or(SystemTime::now(), |f| f.0);
    Ok(Trace::from_frames(path.clone(), 0, start, frames))
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
