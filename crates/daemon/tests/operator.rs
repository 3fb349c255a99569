//! The operator's features of `lingerstackd`, each on the wire against the Linux kernel of a
//! private namespace: `--netns` (the TAP in one namespace, every other socket in another),
//! ping, `--log-format json`, and the control socket's verbs (`lingerstackd ctl`).
//!
//! Run as root: `cargo nextest run -p lingerstack-daemon --test operator`.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{BIN, DaemonProc};
use lingerstack_testkit::icmp::{self, Echo};
use lingerstack_testkit::{Capture, Dir, Netns, TapNet, Trace, peer};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The stack's IPv6 address on the test kit's network, as a flag value.
const STACK_V6: &str = "fd00:200::2/64";

fn connect(net: &TapNet, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = peer::tcp_connect(net.ns(), addr, None, Duration::from_secs(5))?;
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    Ok(s)
}

/// Write `data` and read the same number of bytes back.
fn round_trip(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    s.write_all(data).unwrap();
    let mut back = vec![0; data.len()];
    s.read_exact(&mut back).unwrap();
    back
}

/// A kernel listener on loopback in `ns` whose connections echo every byte (a stand-in host
/// service for forwards); returns its address.
fn echo_target(ns: &Netns) -> SocketAddr {
    let addr = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0);
    echo_target_at(ns, addr)
}

fn echo_target_at(ns: &Netns, addr: SocketAddr) -> SocketAddr {
    let listener: TcpListener = peer::tcp_listener(ns, addr, None).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Send `line` to the control socket `control` from a thread running as user 65534 in group
/// 1: a member of the control group (`--control-group 1`) who is neither root nor the daemon's
/// user. Returns the daemon's JSON answer.
fn ask_as_group_member(control: &Path, line: &str) -> Value {
    let (control, line) = (control.to_path_buf(), line.to_string());
    std::thread::spawn(move || {
        // Raw syscalls change the credentials of this thread only (glibc's wrappers would
        // change every thread's); the kernel records them at connect for SO_PEERCRED.
        // SAFETY: plain syscalls with integer arguments (and no group list), affecting only
        // this thread, which ends right after.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()),
                0
            );
            assert_eq!(libc::syscall(libc::SYS_setresgid, 1, 1, 1), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534), 0);
        }
        let mut s = UnixStream::connect(&control).expect("the control group may connect");
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        serde_json::from_str(text.trim()).unwrap()
    })
    .join()
    .unwrap()
}

/// The replies the stack sent for a ping, as the kernel-side capture saw them.
fn assert_ping_replied(net: &TapNet, trace: &Trace, v6: bool, ident: u16, count: u16) {
    let echoes = icmp::echoes(trace);
    for seq in 1..=count {
        let reply = echoes.iter().find(|e: &&Echo| {
            e.dir == Dir::FromStack && e.reply && e.ident == ident && e.seq == seq
        });
        let Some(reply) = reply else {
            trace.fail(&format!("no echo reply (v6 {v6}) seq {seq} from the stack"));
        };
        trace.assert(
            reply.src == net.stack_ip(v6) && reply.src_mac == net.stack_mac(),
            &format!("echo reply not from the stack: {reply:?}"),
        );
    }
}

/// `--netns B` with the daemon started in A: the TAP (and so echo, forwards' stack side and
/// ping) is in B, where a kernel client uses it; the forward's target, the metrics endpoint
/// and the TAP's absence are checked in A.
#[test]
fn netns_opens_the_tap_there_and_keeps_host_sockets_home() {
    if !lingerstack_testkit::require_tap("netns_opens_the_tap_there_and_keeps_host_sockets_home") {
        return;
    }
    let net = TapNet::new().unwrap();
    let home = Netns::new().unwrap();
    let target = echo_target(&home);
    let forward = format!("in:8080={target}");
    let capture = Capture::start(net.ns(), net.tap_name(), "daemon-netns").unwrap();
    let d = DaemonProc::start_in(
        home.name(),
        &net,
        "netns",
        "info",
        &[
            "--netns",
            net.ns().name(),
            "--ipv6",
            STACK_V6,
            "--service",
            "echo:7",
            "--forward",
            &forward,
            "--metrics",
            "127.0.0.1:9102",
        ],
    );

    // Echo and the forward, used by a kernel client in B over the TAP.
    let stack = |port| SocketAddr::new(net.stack_v4().into(), port);
    let mut echo = connect(&net, stack(7)).unwrap();
    assert_eq!(
        round_trip(&mut echo, b"hello over the TAP"),
        b"hello over the TAP"
    );
    let echo_port = echo.local_addr().unwrap().port();
    let mut fwd = connect(&net, stack(8080)).unwrap();
    assert_eq!(
        round_trip(&mut fwd, b"to A's loopback and back"),
        b"to A's loopback and back",
        "the forward must reach the target listening in A"
    );
    drop((echo, fwd));

    // Ping, answered by the stack (the engine's own echo replies, through the daemon).
    let mut idents = Vec::new();
    for v6 in [false, true] {
        let replies = icmp::ping(net.ns(), net.stack_ip(v6), 3, b"netns", TIMEOUT).unwrap();
        assert_eq!(replies.len(), 3, "v6 {v6}: {replies:?}");
        idents.push((v6, replies[0].ident));
    }

    // The host-side sockets stayed in A: metrics answers on A's loopback, not on B's.
    let metrics: SocketAddr = "127.0.0.1:9102".parse().unwrap();
    let in_a = home.run(move || TcpStream::connect_timeout(&metrics, TIMEOUT));
    assert!(in_a.is_ok(), "metrics not reachable in A: {in_a:?}");
    let in_b = net
        .ns()
        .run(move || TcpStream::connect_timeout(&metrics, TIMEOUT));
    assert_eq!(
        in_b.map(drop).map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused),
        "metrics must not listen in B"
    );
    // The TAP is in B only, and status says where.
    let links_a = home.ip_output(&["-o", "link"]).unwrap();
    assert!(!links_a.contains(net.tap_name()), "TAP in A: {links_a}");
    assert_eq!(
        d.status_json()["interface"]["netns"],
        Value::from(net.ns().name())
    );
    assert!(
        d.log_text().contains("opened in network namespace"),
        "{}",
        d.log_text()
    );
    let (_, text, _) = d.ctl(&["status"]);
    assert!(
        text.contains(&format!("in network namespace {}", net.ns().name())),
        "{text}"
    );

    let trace = capture.stop();
    trace.assert_no_drops();
    let echo_conn = trace.conn(echo_port);
    echo_conn.assert(
        echo_conn.payload_bytes(Dir::FromStack) == 18,
        "the echo went over B's TAP",
    );
    for (v6, ident) in idents {
        assert_ping_replied(&net, &trace, v6, ident, 3);
    }
}

/// A namespace that does not exist stops the daemon at start with exit 1 and one clear line.
#[test]
fn netns_missing_is_a_clear_start_error() {
    if !lingerstack_testkit::require_tap("netns_missing_is_a_clear_start_error") {
        return;
    }
    let control = std::env::temp_dir().join(format!("lsd-nons-{}.sock", std::process::id()));
    let control = control.display().to_string();
    // A PID above the kernel's limit (2^22) never exists.
    for (ns, needle) in [
        ("lsd-no-such-namespace", "ip netns list"),
        ("4194305", "no such process"),
        ("/dev/null", "not a network namespace"),
    ] {
        let out = Command::new(BIN)
            .args(["run", "--tap", "lsdnons0", "--ipv4", "10.0.0.2/24"])
            .args(["--control", &control, "--netns", ns])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{ns}: {err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("lingerstackd:"))
            .unwrap_or_default();
        assert!(
            line.contains("network namespace") && line.contains(needle),
            "{ns}: {err}"
        );
    }
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("lsdnons0"));
}

/// `--log-format json`: every line the daemon writes is one JSON object with ts, level,
/// target and message; a connection's close line carries its fields.
#[test]
fn json_log_lines_parse() {
    if !lingerstack_testkit::require_tap("json_log_lines_parse") {
        return;
    }
    let net = TapNet::new().unwrap();
    let mut d = DaemonProc::start(
        &net,
        "json-log",
        &["--log-format", "json", "--service", "echo:7"],
    );
    let mut echo = connect(&net, SocketAddr::new(net.stack_v4().into(), 7)).unwrap();
    assert_eq!(round_trip(&mut echo, b"12345"), b"12345");
    echo.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    echo.read_to_end(&mut rest).unwrap();
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT).code(), Some(0));

    let text = d.log_text();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 4, "{text}");
    for l in &lines {
        for key in ["ts", "level", "target", "message"] {
            assert!(l[key].is_string(), "no {key}: {l}");
        }
        assert!(l["ts"].as_str().unwrap().ends_with('Z'), "{l}");
    }
    let has = |needle: &str| {
        lines
            .iter()
            .find(|l| l["message"].as_str().unwrap().contains(needle))
    };
    let up = has("lingerstackd up").expect("the start line");
    assert_eq!(up["level"], "INFO");
    assert_eq!(up["target"], "lingerstackd::daemon");
    let closed = has("closed:").expect("a connection's close line");
    assert_eq!(closed["fields"]["service"], "echo", "{closed}");
    assert_eq!(closed["fields"]["bytes_in"], 5, "{closed}");
    assert_eq!(closed["fields"]["bytes_out"], 5, "{closed}");
    assert!(closed["fields"]["conn"].is_u64(), "{closed}");
}

/// The control verbs end to end: list (also for the control group, which may not change
/// anything), add (a kernel client then reaches the target through
/// the new forward, both directions), the errors, list connections, remove (the port then
/// refuses with a RST on the wire while the open connection goes on).
#[test]
fn ctl_adds_lists_and_removes_forwards() {
    if !lingerstack_testkit::require_tap("ctl_adds_lists_and_removes_forwards") {
        return;
    }
    let net = TapNet::new().unwrap();
    let config_target = echo_target(net.ns());
    let config_forward = format!("in:8081={config_target}");
    let capture = Capture::start(net.ns(), net.tap_name(), "daemon-ctl").unwrap();
    let d = DaemonProc::start(
        &net,
        "ctl",
        &[
            "--service",
            "echo:7",
            "--forward",
            &config_forward,
            "--control-group",
            "1",
        ],
    );
    let stack = |port| SocketAddr::new(net.stack_v4().into(), port);

    let list = d.ctl_json(&["forwards"]);
    let forwards = list["forwards"].as_array().unwrap();
    assert_eq!(forwards.len(), 1, "{list}");
    assert_eq!(forwards[0]["origin"], "config");

    // The control group may look but not change.
    assert_eq!(ask_as_group_member(&d.control, "forwards"), list);
    let refused = ask_as_group_member(&d.control, "remove-forward in:8081");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused")),
        "{refused}"
    );
    assert_eq!(d.ctl_json(&["forwards"]), list, "nothing changed");

    // add-forward in: a kernel client over the TAP reaches the target through it.
    let target = echo_target(net.ns());
    let spec = format!("in:8080={target}");
    let added = d.ctl_json(&["add-forward", &spec]);
    assert_eq!(added["added"]["origin"], "control", "{added}");
    assert_eq!(added["added"]["target"], target.to_string());
    let mut held = connect(&net, stack(8080)).unwrap();
    assert_eq!(
        round_trip(&mut held, b"through the new forward"),
        b"through the new forward"
    );

    // The errors say what is wrong.
    for (args, needle) in [
        (
            vec!["add-forward", spec.as_str()],
            "already used by forward",
        ),
        (vec!["add-forward", "in:7=127.0.0.1:9"], "the echo service"),
        (vec!["add-forward", "in:80"], "add-forward"),
        (
            vec!["add-forward", "sideways:1=127.0.0.1:9"],
            "expected in:PORT",
        ),
        (vec!["remove-forward", "in:9999"], "no such forward"),
        (vec!["remove-forward", "in:7"], "not a forward"),
        (vec!["remove-forward", "8080"], "expected in:PORT"),
    ] {
        let (code, _, err) = d.ctl(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with("lingerstackd ctl: ") && err.contains(needle),
            "{args:?}: {err}"
        );
    }

    // Lists: both forwards, the held connection with its ends, state and bytes.
    let list = d.ctl_json(&["forwards"]);
    let added_row = list["forwards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["origin"] == "control")
        .cloned()
        .unwrap_or_default();
    assert_eq!(added_row["connections"], 1, "{list}");
    let (_, text, _) = d.ctl(&["forwards"]);
    assert!(
        text.starts_with("DIR") && text.lines().count() == 3,
        "{text}"
    );
    let conns = d.ctl_json(&["connections"]);
    let conn = conns["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == "forward-in")
        .cloned()
        .unwrap_or_default();
    assert_eq!(conn["local"], stack(8080).to_string(), "{conns}");
    assert_eq!(conn["remote"], held.local_addr().unwrap().to_string());
    assert_eq!(conn["state"], "ESTABLISHED");
    assert_eq!(conn["bytes_in"], 23);
    assert_eq!(
        d.ctl_json(&["status"])["connections"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // remove-forward: new clients are refused, the open connection goes on.
    let removed = d.ctl_json(&["remove-forward", "in:8080"]);
    assert_eq!(removed["connections_open"], 1, "{removed}");
    let refused = connect(&net, stack(8080));
    assert_eq!(
        refused.as_ref().map(drop).map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused),
        "{refused:?}"
    );
    assert_eq!(round_trip(&mut held, b"still here"), b"still here");
    let held_port = held.local_addr().unwrap().port();
    drop(held);
    assert_eq!(
        d.ctl_json(&["forwards"])["forwards"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Outbound too: a host client reaches a kernel listener on the TAP network through the
    // stack, then the host port is closed.
    let tap_target = echo_target_at(net.ns(), SocketAddr::new(net.kernel_v4().into(), 0));
    let out_spec = format!("out:127.0.0.1:2222={tap_target}");
    d.ctl_json(&["add-forward", &out_spec]);
    let host = |port| SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    let mut out = connect(&net, host(2222)).unwrap();
    assert_eq!(round_trip(&mut out, b"outbound"), b"outbound");
    drop(out);
    d.ctl_json(&["remove-forward", "out:127.0.0.1:2222"]);
    let gone = connect(&net, host(2222));
    assert_eq!(
        gone.map(drop).map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused)
    );

    // On the wire: the refused connection got the stack's RST, and the held one carried its
    // bytes after the removal.
    let trace = capture.stop();
    trace.assert_no_drops();
    let refused_syn = trace
        .to_stack()
        .into_iter()
        .rev()
        .find(|s| s.flags.syn && s.dst.port() == 8080)
        .map(|s| s.src.port());
    let Some(refused_port) = refused_syn else {
        trace.fail("no SYN to 8080 after the removal");
    };
    let refused_conn = trace.conn(refused_port);
    refused_conn.assert(
        refused_conn.has_rst(Dir::FromStack) && refused_conn.payload_bytes(Dir::FromStack) == 0,
        "the removed forward's port must answer a SYN with a RST",
    );
    let held_conn = trace.conn(held_port);
    held_conn.assert(
        held_conn.payload_bytes(Dir::FromStack) == 23 + 10,
        "the held connection carried its bytes both before and after the removal",
    );
}
