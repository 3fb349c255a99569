//! `lingerstackd` as a real process.
//!
//! The TAP tests run the built binary with `ip netns exec <ns>` inside a private namespace made
//! by the test kit, so the daemon's host-side sockets (forward targets and listeners, metrics)
//! live in that namespace too; a kernel listener on the namespace's loopback stands for a host
//! service. Evidence comes from the kernel sockets' results and from an AF_PACKET capture on
//! the kernel side of the TAP.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, DaemonProc};
use lingerstack_testkit::{Capture, Dir, TapNet, Trace, peer};

const MIB10: usize = 10 * 1024 * 1024;

fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn read_all(s: &mut TcpStream) -> (Vec<u8>, Option<std::io::Error>) {
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    peer::read_to_end_or_error(s)
}

fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

fn connect(net: &TapNet, addr: SocketAddr) -> TcpStream {
    peer::tcp_connect(net.ns(), addr, None, Duration::from_secs(5)).unwrap()
}

fn stack(net: &TapNet, port: u16) -> SocketAddr {
    SocketAddr::new(net.stack_v4().into(), port)
}

/// Accept one connection on `l` in a thread; `f` gets it.
fn serve_one<T: Send + 'static>(
    l: TcpListener,
    f: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
        f(s)
    })
}

/// The segments of the connection between the kernel's `kernel_port` and the stack.
fn conn(trace: &Trace, kernel_port: u16) -> Trace {
    trace.conn(kernel_port)
}

#[test]
fn bad_config_exits_nonzero_with_one_line() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--tap", "x0", "--ipv4", "10.0.0.2/24", "--mtu", "70000"],
            "70000",
        ),
        (&["--tap", "x0", "--ipv4", "10.0.0.300/24"], "10.0.0.300/24"),
        (
            &[
                "--tap",
                "x0",
                "--ipv4",
                "10.0.0.2/24",
                "--service",
                "echo:0",
            ],
            "echo:0",
        ),
        (
            &[
                "--tap",
                "x0",
                "--ipv4",
                "10.0.0.2/24",
                "--linger",
                "sometimes",
            ],
            "sometimes",
        ),
        (&["--ipv4", "10.0.0.2/24"], "--tap"),
    ];
    for (args, needle) in cases {
        let out = Command::new(BIN).arg("run").args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: not one line: {err}"
        );
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(err.contains("configuration error"), "{err}");
    }
    // A config file with a bad value names the file and the key.
    let dir = std::env::temp_dir().join(format!("lsd-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "tap = \"x0\"\nipv4 = \"10.0.0.2/24\"\nmac = \"zz:00:00:00:00:01\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.toml: mac") && err.contains("zz:00"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn services_echo_discard_chargen() {
    if !lingerstack_testkit::require_tap("services_echo_discard_chargen") {
        return;
    }
    let net = TapNet::new().unwrap();
    let cap = Capture::start(net.ns(), net.tap_name(), "daemon-services").unwrap();
    let d = DaemonProc::start(
        &net,
        "services",
        &[
            "--service",
            "echo:7",
            "--service",
            "discard:9",
            "--service",
            "chargen:19",
        ],
    );

    // Echo: 1 MiB comes back intact, then end of stream.
    let payload = data(1 << 20, 7);
    let mut e = connect(&net, stack(&net, 7));
    let writer = {
        let mut w = e.try_clone().unwrap();
        let p = payload.clone();
        std::thread::spawn(move || {
            w.write_all(&p).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    let (back, err) = read_all(&mut e);
    writer.join().unwrap();
    assert!(err.is_none(), "echo: {err:?}");
    assert!(
        back == payload,
        "echo returned {} bytes, differing",
        back.len()
    );
    let echo_port = e.local_addr().unwrap().port();

    // Discard: 1 MiB swallowed, then end of stream and nothing else.
    let mut s = connect(&net, stack(&net, 9));
    s.write_all(&payload).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (rest, err) = read_all(&mut s);
    assert!(
        err.is_none() && rest.is_empty(),
        "discard: {err:?}, {} bytes",
        rest.len()
    );

    // Chargen: the RFC 864 pattern, line after line.
    let mut c = connect(&net, stack(&net, 19));
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = vec![0u8; 74 * 200];
    c.read_exact(&mut got).unwrap();
    for (i, line) in got.chunks(74).enumerate() {
        assert_eq!(&line[72..], b"\r\n", "line {i}");
        let first = b' ' + (i % 95) as u8;
        assert_eq!(line[0], first, "line {i} starts with {:?}", line[0] as char);
    }
    c.shutdown(Shutdown::Write).unwrap();
    // The service stops at our FIN and closes gracefully; drain what it had queued.
    let (_, err) = read_all(&mut c);
    assert!(err.is_none(), "chargen end: {err:?}");

    drop(d);
    let trace = cap.stop();
    trace.assert_no_drops();
    let t = conn(&trace, echo_port);
    t.assert(t.has_fin(Dir::FromStack), "echo: no FIN from the stack");
    t.assert(!t.has_rst(Dir::FromStack), "echo: RST from the stack");
}

/// Both forward directions: 10 MiB each way intact, FIN carried across, and RST carried across
/// in both directions.
#[test]
fn forward_inbound_carries_data_fin_and_rst() {
    if !lingerstack_testkit::require_tap("forward_inbound_carries_data_fin_and_rst") {
        return;
    }
    let net = TapNet::new().unwrap();
    let host = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 9000);
    let cap = Capture::start(net.ns(), net.tap_name(), "daemon-forward-in").unwrap();
    let d = DaemonProc::start(&net, "forward-in", &["--forward", "in:8080=127.0.0.1:9000"]);
    let listener = peer::tcp_listener(net.ns(), host, None).unwrap();

    // 10 MiB each way, then FIN each way.
    let up = data(MIB10, 1);
    let down = data(MIB10, 2);
    let server = {
        let down = down.clone();
        serve_one(listener.try_clone().unwrap(), move |mut s| {
            let w = {
                let mut w = s.try_clone().unwrap();
                std::thread::spawn(move || {
                    w.write_all(&down).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                })
            };
            let got = peer::read_to_end_or_error(&mut s);
            w.join().unwrap();
            got
        })
    };
    let mut c = connect(&net, stack(&net, 8080));
    let port_ok = c.local_addr().unwrap().port();
    let w = {
        let mut w = c.try_clone().unwrap();
        let up = up.clone();
        std::thread::spawn(move || {
            w.write_all(&up).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    let (got_down, err) = read_all(&mut c);
    w.join().unwrap();
    assert!(err.is_none(), "client: {err:?}");
    assert!(
        got_down == down,
        "client got {} bytes, differing",
        got_down.len()
    );
    let (got_up, err) = server.join().unwrap();
    assert!(err.is_none(), "host service: {err:?}");
    assert!(
        got_up == up,
        "host service got {} bytes, differing",
        got_up.len()
    );

    // The host service resets: the client sees ECONNRESET.
    let server = serve_one(listener.try_clone().unwrap(), |mut s| {
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        reset(s);
    });
    let mut c = connect(&net, stack(&net, 8080));
    let port_host_rst = c.local_addr().unwrap().port();
    c.write_all(b"hello").unwrap();
    server.join().unwrap();
    let (_, err) = read_all(&mut c);
    assert_eq!(
        err.map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionReset),
        "client after the host service's RST"
    );

    // The client resets: the host service sees ECONNRESET.
    let server = serve_one(listener, |mut s| {
        s.write_all(b"hi").unwrap();
        peer::read_to_end_or_error(&mut s)
    });
    let mut c = connect(&net, stack(&net, 8080));
    let port_client_rst = c.local_addr().unwrap().port();
    let mut b = [0u8; 2];
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.read_exact(&mut b).unwrap();
    reset(c);
    let (_, err) = server.join().unwrap();
    assert_eq!(
        err.map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionReset),
        "host service after the client's RST"
    );

    drop(d);
    let trace = cap.stop();
    trace.assert_no_drops();
    let t = conn(&trace, port_ok);
    t.assert(
        t.has_fin(Dir::FromStack) && !t.has_rst(Dir::FromStack),
        "10 MiB: FIN, no RST",
    );
    t.assert(t.has_fin(Dir::ToStack), "10 MiB: client FIN");
    let t = conn(&trace, port_host_rst);
    t.assert(
        t.has_rst(Dir::FromStack) && !t.has_fin(Dir::FromStack),
        "host RST -> stack RST",
    );
    let t = conn(&trace, port_client_rst);
    t.assert(t.has_rst(Dir::ToStack), "client RST on the wire");
}

#[test]
fn forward_outbound_carries_data_fin_and_rst() {
    if !lingerstack_testkit::require_tap("forward_outbound_carries_data_fin_and_rst") {
        return;
    }
    let net = TapNet::new().unwrap();
    let remote = SocketAddr::new(net.kernel_v4().into(), 9001);
    let cap = Capture::start(net.ns(), net.tap_name(), "daemon-forward-out").unwrap();
    let listener = peer::tcp_listener(net.ns(), remote, None).unwrap();
    let d = DaemonProc::start(
        &net,
        "forward-out",
        &["--forward", &format!("out:127.0.0.1:2222={remote}")],
    );
    let entry = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 2222);

    let up = data(MIB10, 3);
    let down = data(MIB10, 4);
    let server = {
        let down = down.clone();
        serve_one(listener.try_clone().unwrap(), move |mut s| {
            let port = s.peer_addr().unwrap().port();
            let w = {
                let mut w = s.try_clone().unwrap();
                std::thread::spawn(move || {
                    w.write_all(&down).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                })
            };
            let got = peer::read_to_end_or_error(&mut s);
            w.join().unwrap();
            (got, port)
        })
    };
    let mut c = connect(&net, entry);
    let w = {
        let mut w = c.try_clone().unwrap();
        let up = up.clone();
        std::thread::spawn(move || {
            w.write_all(&up).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    let (got_down, err) = read_all(&mut c);
    w.join().unwrap();
    assert!(err.is_none(), "host client: {err:?}");
    assert!(
        got_down == down,
        "host client got {} bytes, differing",
        got_down.len()
    );
    let ((got_up, err), stack_port_ok) = server.join().unwrap();
    assert!(err.is_none(), "remote: {err:?}");
    assert!(got_up == up, "remote got {} bytes, differing", got_up.len());

    // The remote (on the TAP network) resets: the host client sees ECONNRESET.
    let server = serve_one(listener.try_clone().unwrap(), |mut s| {
        let port = s.peer_addr().unwrap().port();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        reset(s);
        port
    });
    let mut c = connect(&net, entry);
    c.write_all(b"hello").unwrap();
    let stack_port_remote_rst = server.join().unwrap();
    let (_, err) = read_all(&mut c);
    assert_eq!(
        err.map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionReset),
        "host client after the remote's RST"
    );

    // The host client resets: the remote sees ECONNRESET, from a RST the stack sent.
    let server = serve_one(listener, |mut s| {
        let port = s.peer_addr().unwrap().port();
        s.write_all(b"hi").unwrap();
        (peer::read_to_end_or_error(&mut s), port)
    });
    let mut c = connect(&net, entry);
    let mut b = [0u8; 2];
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.read_exact(&mut b).unwrap();
    reset(c);
    let ((_, err), stack_port_client_rst) = server.join().unwrap();
    assert_eq!(
        err.map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionReset),
        "remote after the host client's RST"
    );

    drop(d);
    let trace = cap.stop();
    trace.assert_no_drops();
    let t = conn(&trace, stack_port_ok);
    t.assert(
        t.has_fin(Dir::FromStack) && !t.has_rst(Dir::FromStack),
        "10 MiB: FIN, no RST",
    );
    let t = conn(&trace, stack_port_remote_rst);
    t.assert(t.has_rst(Dir::ToStack), "remote RST on the wire");
    let t = conn(&trace, stack_port_client_rst);
    t.assert(
        t.has_rst(Dir::FromStack) && !t.has_fin(Dir::FromStack),
        "client RST -> stack RST",
    );
}

#[test]
fn status_json_lists_live_connections_and_sigterm_drains_with_fins() {
    if !lingerstack_testkit::require_tap(
        "status_json_lists_live_connections_and_sigterm_drains_with_fins",
    ) {
        return;
    }
    let net = TapNet::new().unwrap();
    let cap = Capture::start(net.ns(), net.tap_name(), "daemon-sigterm").unwrap();
    let mut d = DaemonProc::start(
        &net,
        "sigterm",
        &[
            "--service",
            "echo:7",
            "--service",
            "discard:9",
            "--drain",
            "5s",
        ],
    );
    let mut e = connect(&net, stack(&net, 7));
    e.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    e.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    e.read_exact(&mut b).unwrap();
    let mut s = connect(&net, stack(&net, 9));
    s.write_all(b"into the void").unwrap();
    let ports = [
        e.local_addr().unwrap().port(),
        s.local_addr().unwrap().port(),
    ];

    // Status lists both connections, established, with their peers.
    let end = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let v = d.status_json();
        if v["connections"].as_array().map_or(0, |a| a.len()) == 2 || Instant::now() > end {
            break v;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let conns = status["connections"].as_array().expect("connections");
    assert_eq!(conns.len(), 2, "{status:#}");
    for port in ports {
        let c = conns
            .iter()
            .find(|c| {
                c["peer"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!(":{port}")))
            })
            .unwrap_or_else(|| panic!("no connection from port {port}: {status:#}"));
        assert_eq!(c["state"], "ESTABLISHED", "{c:#}");
    }
    assert_eq!(status["interface"]["name"], net.tap_name());
    assert!(status["counters"]["rx_frames"].as_u64().unwrap() > 0);

    // SIGTERM: both connections end with a FIN (graceful mode), the daemon exits 0.
    d.signal(libc::SIGTERM);
    let (_, err_e) = read_all(&mut e);
    let (_, err_s) = read_all(&mut s);
    assert!(err_e.is_none() && err_s.is_none(), "{err_e:?} {err_s:?}");
    drop(e);
    drop(s);
    let status = d.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit {status}:\n{}", d.log_text());
    assert!(!d.control.exists(), "control socket left behind");
    let log = d.log_text();
    assert!(
        log.contains("SIGTERM: stopping") && log.contains("daemon stopping"),
        "{log}"
    );
    let trace = cap.stop();
    trace.assert_no_drops();
    for port in ports {
        let t = conn(&trace, port);
        t.assert(t.has_fin(Dir::FromStack), "drain: no FIN from the stack");
        t.assert(!t.has_rst(Dir::FromStack), "drain: RST from the stack");
    }
}

#[test]
fn removed_tap_makes_it_exit_nonzero() {
    if !lingerstack_testkit::require_tap("removed_tap_makes_it_exit_nonzero") {
        return;
    }
    let net = TapNet::new().unwrap();
    let mut d = DaemonProc::start(&net, "tap-gone", &["--service", "echo:7"]);
    net.ns().ip(&["link", "del", net.tap_name()]).unwrap();
    let status = d.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(3), "{}", d.log_text());
    assert!(d.log_text().contains("was removed"), "{}", d.log_text());
}
