//! The C ABI from C: tests/c/*.c built with the system `cc` against include/lingerstack/ws2spi.h
//! and liblingerstack_wsp.so only, then run. Over the in-memory loopback network (every row a C
//! program can check against itself) and over a TAP against the kernel of a private namespace,
//! with the capture taken on the kernel side.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

mod common;

use common::lib_dir;
use lingerstack_testkit::peer::{read_to_end_or_error, tcp_listener};
use lingerstack_testkit::tapnet::LINK_UP_TIMEOUT;
use lingerstack_testkit::{Capture, Dir, TapNet, require_tap, require_tool};

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn include_dir() -> PathBuf {
    manifest().join("../../include")
}

/// Compile `sources` into `out` with warnings as errors, linking the provider.
fn build(out: &Path, sources: &[PathBuf], extra: &[&str]) {
    let lib = lib_dir();
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args([
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-pthread",
        "-g",
    ])
    .arg("-I")
    .arg(include_dir())
    .args(sources)
    .args(extra)
    .arg("-L")
    .arg(&lib)
    .arg("-llingerstack_wsp")
    .arg(format!("-Wl,-rpath,{}", lib.display()))
    .arg("-o")
    .arg(out);
    let status = cmd.status().expect("run cc");
    assert!(status.success(), "cc failed: {cmd:?}");
}

/// The C test program, built once per test process.
fn c_test() -> PathBuf {
    let dir = manifest().join("tests/c");
    let out = lib_dir().join(format!("c_abi_test-{}", std::process::id()));
    if !out.exists() {
        build(
            &out,
            &[
                dir.join("c_abi_test.c"),
                dir.join("ws2.c"),
                dir.join("layout.c"),
            ],
            &["-I", dir.to_str().unwrap()],
        );
    }
    out
}

/// Run the C test with `args` and `env` (LINGERSTACK_* cleared first); returns (ok, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(c_test());
    cmd.args(args);
    for var in [
        "LINGERSTACK_IFACE",
        "LINGERSTACK_NETNS",
        "LINGERSTACK_ADDR",
        "LINGERSTACK_GATEWAY",
        "LINGERSTACK_MAC",
        "LINGERSTACK_PCAP",
        "LINGERSTACK_OFFLOAD",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run the C test");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("--- {args:?} stdout:\n{stdout}--- stderr:\n{stderr}");
    (out.status.success(), stdout, stderr)
}

/// Every size and offset of the header, checked from C (types.rs pins the same in Rust).
#[test]
fn c_layout_matches_the_rust_side() {
    let (ok, out, _) = run(&["layout"], &[]);
    assert!(ok && out.contains("PASS layout"));
}

/// The header alone compiles as C99 and as C++ with warnings as errors.
#[test]
fn header_compiles_as_c_and_cpp() {
    let dir = lib_dir().join(format!("hdr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("h.c");
    std::fs::write(
        &src,
        "#include <sys/socket.h>\n#include <netinet/in.h>\n#include <sys/select.h>\n\
         #include <lingerstack/ws2spi.h>\n\
         int main(void) { WSPPROC_TABLE t; (void)t; return (int)sizeof(WSAPROTOCOL_INFOW) - 628; }\n",
    )
    .unwrap();
    build(&dir.join("h"), std::slice::from_ref(&src), &[]);
    let status = Command::new(std::env::var("CXX").unwrap_or_else(|_| "c++".into()))
        .args([
            "-std=c++11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-x",
            "c++",
        ])
        .arg("-I")
        .arg(include_dir())
        .arg(&src)
        .arg("-fsyntax-only")
        .status()
        .expect("run c++");
    assert!(status.success(), "the header does not compile as C++");
    assert_eq!(
        Command::new(dir.join("h")).status().unwrap().code(),
        Some(0)
    );
}

/// The C program over the in-memory loopback network: connects to its own listener; echo;
/// C03/C04/C05 from the accepting side; C07 retried to C08; C17 through event, routine and hook;
/// C18; async select; C19; C02; select; nested startup; C23 cleanup; another run's descriptor.
#[test]
fn c_program_in_memory() {
    let (ok, out, _) = run(&["mem"], &[]);
    assert!(ok && out.contains("PASS mem"), "the C test failed");
}

/// The in-memory C test under valgrind: no invalid access, and no byte definitely lost by the
/// provider. Skipped (loudly) where valgrind is not installed; a failure then under
/// `LINGERSTACK_REQUIRE_TAP=1`.
#[test]
fn c_program_in_memory_under_valgrind() {
    if !require_tool(
        "c_program_in_memory_under_valgrind",
        "valgrind",
        "--version",
    ) {
        return;
    }
    let out = Command::new("valgrind")
        .args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
        ])
        .arg(c_test())
        .arg("mem")
        .env_remove("LINGERSTACK_IFACE")
        .env_remove("LINGERSTACK_NETNS")
        .output()
        .expect("run valgrind");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && stdout.contains("PASS mem")
            && stderr.contains("ERROR SUMMARY: 0 errors"),
        "valgrind found a problem (exit {:?}):\n{stderr}",
        out.status.code()
    );
}

/// A bad configuration fails WSPStartup with WSASYSNOTREADY and a log line naming the variable.
#[test]
fn bad_environment_is_wsasysnotready() {
    for (var, value) in [
        ("LINGERSTACK_ADDR", "10.0.0.1"),
        ("LINGERSTACK_MAC", "01:02:03:04:05:06"),
        ("LINGERSTACK_NETNS", "nowhere"),
        ("LINGERSTACK_GATEWAY", "not-an-address"),
    ] {
        let (ok, out, err) = run(&["startup"], &[(var, value)]);
        assert!(ok);
        assert!(out.contains("WSPStartup 10091"), "{var}={value}: {out}");
        assert!(
            err.contains(var),
            "{var}={value}: the log does not name it: {err}"
        );
    }
    // A TAP that cannot be opened (a name with no such namespace).
    let (_, out, err) = run(
        &["startup"],
        &[
            ("LINGERSTACK_IFACE", "lskabsent0"),
            ("LINGERSTACK_NETNS", "lsk-no-such-ns"),
            ("LINGERSTACK_ADDR", "10.9.0.2/24"),
        ],
    );
    assert!(out.contains("WSPStartup 10091"));
    assert!(err.contains("LINGERSTACK_NETNS"), "{err}");
}

/// A kernel peer for one row: accept on `port`, wait `delay`, read to the end or an error.
fn kernel_peer(
    ns: &lingerstack_testkit::Netns,
    addr: SocketAddr,
    rcvbuf: Option<usize>,
    delay: Duration,
) -> thread::JoinHandle<(usize, Option<std::io::ErrorKind>)> {
    let listener: TcpListener = tcp_listener(ns, addr, rcvbuf).expect("kernel listener");
    thread::spawn(move || {
        let (mut k, _) = listener.accept().expect("kernel accept");
        k.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        thread::sleep(delay);
        let (data, err) = read_to_end_or_error(&mut k);
        (data.len(), err.map(|e| e.kind()))
    })
}

/// The linger rows over a TAP, from C: C03 (data, FIN), C04 (RST, the kernel sees ECONNRESET),
/// C05 (FIN well before the linger time), C06 (RST after 1 s, ECONNRESET), C07 (WSAEWOULDBLOCK
/// while the kernel does not read, retried until every byte is acknowledged, then FIN).
/// The C program runs with LINGERSTACK_IFACE/LINGERSTACK_NETNS naming the namespace's TAP.
#[test]
fn c_program_over_tap_c03_c04_c05_c06_c07() {
    if !require_tap("c_program_over_tap_c03_c04_c05_c06_c07") {
        return;
    }
    let _ = env_logger::builder().is_test(true).try_init();
    let net = TapNet::new().expect("TapNet");
    let capture = Capture::start(net.ns(), net.tap_name(), "c_abi_tap").expect("capture");
    let kernel = net.kernel_v4();
    let base = 7100u16;
    let at = |p: u16| SocketAddr::new(kernel.into(), base + p);
    let small = Some(4096);
    let peers = [
        (3, kernel_peer(net.ns(), at(3), None, Duration::ZERO)),
        (
            4,
            kernel_peer(net.ns(), at(4), small, Duration::from_millis(1500)),
        ),
        (5, kernel_peer(net.ns(), at(5), None, Duration::ZERO)),
        (
            6,
            kernel_peer(net.ns(), at(6), small, Duration::from_secs(3)),
        ),
        (
            7,
            kernel_peer(net.ns(), at(7), small, Duration::from_secs(2)),
        ),
    ];
    let mac = net
        .stack_mac()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let addr = format!("{}/{}", net.stack_v4(), net.prefix_len_v4());
    let mut child = Command::new(c_test())
        .args(["tap", &kernel.to_string(), &base.to_string()])
        .env("LINGERSTACK_IFACE", net.tap_name())
        .env("LINGERSTACK_NETNS", net.ns().name())
        .env("LINGERSTACK_ADDR", &addr)
        .env("LINGERSTACK_MAC", &mac)
        .env(
            "LINGERSTACK_OFFLOAD",
            if lingerstack_testkit::offload() {
                "on"
            } else {
                "off"
            },
        )
        .env_remove("LINGERSTACK_PCAP")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the C test");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY", "the C program did not start");
    net.wait_link_up(LINK_UP_TIMEOUT).expect("TAP link up");
    writeln!(child.stdin.as_mut().unwrap(), "GO").unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    eprintln!("C program:\n{rest}\nstderr:\n{err}");
    assert!(
        status.success() && rest.contains("PASS tap"),
        "the C program failed"
    );

    let results: Vec<(u16, (usize, Option<std::io::ErrorKind>))> = peers
        .into_iter()
        .map(|(p, h)| (p, h.join().unwrap()))
        .collect();
    let trace = capture.stop();
    trace.assert_no_drops();
    for (p, (bytes, error)) in results {
        let conn = trace.conn(base + p);
        let (fin, rst) = (conn.has_fin(Dir::FromStack), conn.has_rst(Dir::FromStack));
        eprintln!("row C0{p}: kernel read {bytes} bytes, error {error:?}; FIN {fin}, RST {rst}");
        match p {
            3 => {
                assert_eq!((bytes, error), (100_000, None), "C03");
                conn.assert(fin && !rst, "C03: FIN and no RST");
            }
            4 => {
                assert_eq!(error, Some(std::io::ErrorKind::ConnectionReset), "C04");
                conn.assert(rst && !fin, "C04: RST and no FIN");
            }
            5 => {
                assert_eq!((bytes, error), (100_000, None), "C05");
                conn.assert(fin && !rst, "C05: FIN and no RST");
            }
            6 => {
                assert_eq!(error, Some(std::io::ErrorKind::ConnectionReset), "C06");
                conn.assert(rst && !fin, "C06: RST and no FIN");
            }
            7 => {
                assert_eq!((bytes, error), (200 * 1024, None), "C07/C08");
                conn.assert(fin && !rst, "C07/C08: FIN and no RST");
            }
            _ => unreachable!(),
        }
    }
}
