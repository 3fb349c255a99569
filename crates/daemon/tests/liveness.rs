//! `lingerstackd` against peers that vanish or idle (issue 9, items 4 and 5), as a real process
//! in a private namespace (`ip netns exec`), with the kernel as the peer and an AF_PACKET capture
//! on the kernel side of the TAP.
//!
//! - A client that vanishes (its address disappears from the kernel: no FIN, no RST, nothing
//!   answers) is probed by keep-alive, reset, and released (its task, socket and buffers).
//! - The control socket answers `status` promptly while other clients sit idle on it, and is
//!   created with mode 0600 (0660 with a control group).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::DaemonProc;
use lingerstack_testkit::{Capture, Dir, Segment, TapNet, peer, require_tap};

/// Wait up to `within` for `cond`.
fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not within {within:?}: {what}");
}

/// The daemon's threads but the control socket's per-request ones.
fn lasting_threads(d: &DaemonProc) -> usize {
    d.threads()
        .iter()
        .filter(|t| t.as_str() != "control-client")
        .count()
}

fn connections(status: &serde_json::Value) -> usize {
    status["connections"].as_array().map_or(0, |a| a.len())
}

/// An echo client that vanishes: its address is deleted from the kernel, so the stack's
/// segments reach nobody and nothing comes back (no FIN, no RST). With `--keep-alive 1s
/// --keep-alive-interval 250ms` the daemon probes ten times 250 ms apart, resets the
/// connection, and releases it: status lists it no more, the stack
/// holds no socket for it, and no thread ever served it. The capture on the kernel side shows
/// the probes at their spacing and the stack's RST; the kernel's own socket never saw a FIN or
/// a RST (it read nothing).
#[test]
fn keepalive_vanished_client_is_released() {
    if !require_tap("keepalive_vanished_client_is_released") {
        return;
    }
    let net = TapNet::new().unwrap();
    let cap = Capture::start(net.ns(), net.tap_name(), "daemon-keepalive").unwrap();
    let d = DaemonProc::start(
        &net,
        "keepalive",
        &[
            "--service",
            "echo:7",
            "--keep-alive",
            "1s",
            "--keep-alive-interval",
            "250ms",
        ],
    );
    let idle_threads = lasting_threads(&d);
    let stack = SocketAddr::new(net.stack_v4().into(), 7);
    let mut k = peer::tcp_connect(net.ns(), stack, None, Duration::from_secs(5)).unwrap();
    k.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    k.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    k.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    let kport = k.local_addr().unwrap().port();
    eventually(
        Duration::from_secs(5),
        "status lists the connection",
        || connections(&d.status_timed().0) == 1,
    );
    // The connection is a task, not a thread: the daemon has as many threads as before it
    // (not counting the short-lived thread of a status request just answered).
    assert_eq!(
        lasting_threads(&d),
        idle_threads,
        "threads with one connection: {:?}",
        d.threads()
    );
    let (v, _) = d.status_timed();
    assert!(
        v["connections"][0]["socket"].is_u64(),
        "status does not find the connection's socket: {v}"
    );

    // The client vanishes.
    let kernel = format!("{}/{}", net.kernel_v4(), net.prefix_len_v4());
    net.ns()
        .ip(&["addr", "del", &kernel, "dev", net.tap_name()])
        .unwrap();
    let gone = Instant::now();
    eventually(Duration::from_secs(20), "the connection released", || {
        let (v, _) = d.status_timed();
        let sockets = v["sockets"].as_array().cloned().unwrap_or_default();
        connections(&v) == 0
            && !sockets.iter().any(|s| {
                s["remote"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(&format!(":{kport}")))
            })
    });
    let released = gone.elapsed();
    let log = d.log_text();
    assert!(log.contains("peer vanished"), "log:\n{log}");
    assert!(
        released >= Duration::from_secs(3),
        "released after {released:?}, before idle + 10 probes (3.5 s)"
    );

    // The kernel's own view: no FIN, no RST reached its socket (it would read EOF or fail).
    k.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    match k.read(&mut b) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the kernel's socket should just be waiting, got {other:?}"),
    }
    drop(d);
    let trace = cap.stop();
    trace.assert_no_drops();
    let t = trace.conn(kport);
    let probes: Vec<&Segment> = t
        .dir(Dir::FromStack)
        .into_iter()
        .filter(|s| s.payload.len() == 1 && !s.flags.rst && !s.flags.fin)
        .collect();
    t.assert(
        probes.len() == 10,
        &format!("{} keep-alive probes, want 10", probes.len()),
    );
    for pair in probes.windows(2) {
        let gap = pair[1].offset.as_secs_f64() - pair[0].offset.as_secs_f64();
        t.assert(
            (0.15..1.0).contains(&gap),
            &format!("probes {gap:.3} s apart, want about 0.25 s"),
        );
    }
    let rst: Vec<&Segment> = t
        .dir(Dir::FromStack)
        .into_iter()
        .filter(|s| s.flags.rst)
        .collect();
    t.assert(
        rst.len() == 1,
        &format!("{} RSTs from the stack", rst.len()),
    );
    t.assert(
        rst[0].offset > probes[9].offset,
        "the RST came before the last probe",
    );
    t.assert(
        t.dir(Dir::ToStack)
            .iter()
            .all(|s| s.offset < probes[0].offset),
        "the vanished client sent something after the first probe",
    );
}

/// Three clients connect to the control socket and say nothing; `status` still answers at
/// once (it used to wait out each idle client's 2 s read timeout in turn: 6 s). The socket file
/// is mode 0600; with `--control-group 1` it is 0660 and owned by group 1.
#[test]
fn control_socket_answers_past_idle_clients_and_is_private() {
    if !require_tap("control_socket_answers_past_idle_clients_and_is_private") {
        return;
    }
    let net = TapNet::new().unwrap();
    let d = DaemonProc::start(&net, "control", &["--service", "echo:7"]);
    let meta = std::fs::metadata(&d.control).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "control socket mode"
    );
    let idle: Vec<UnixStream> = (0..3)
        .map(|_| UnixStream::connect(&d.control).unwrap())
        .collect();
    // Let the daemon take the idle clients in before asking.
    std::thread::sleep(Duration::from_millis(200));
    let (v, took) = d.status_timed();
    assert_eq!(v["interface"]["name"], net.tap_name());
    assert!(
        took < Duration::from_millis(1500),
        "status took {took:?} with three idle clients"
    );
    // An idle client is let go after its read timeout and still gets an answer.
    let mut first = idle.into_iter().next().unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = String::new();
    first.read_to_string(&mut text).unwrap();
    assert!(text.contains("\"interface\""), "idle client got {text:?}");
    drop(d);

    let d = DaemonProc::start(&net, "control-group", &["--control-group", "1"]);
    let meta = std::fs::metadata(&d.control).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o660,
        "mode with a group"
    );
    assert_eq!(meta.gid(), 1, "group of the control socket");
}
