//! The Debian package, built and taken apart: `cargo deb` packages the binary this suite built,
//! `dpkg-deb -x` unpacks it into a temporary root, and the files, the conffile and the systemd
//! unit are checked (the unit with `systemd-analyze verify`). Then the unpacked binary runs:
//! `--help`, `--version`, the demo against the kernel, and a real run on a TAP in a private namespace with the packaged
//! config file, a datagram socket standing in for systemd (`NOTIFY_SOCKET`) and a pipe as its
//! `--ready-fd`. The kernel of the namespace then echoes through it, seen in a kernel-side
//! capture.
//!
//! The package is made from the debug binary the suite already has (copied into a temporary
//! target directory where cargo-deb expects a release build, with `--no-build`), so the test
//! costs no compilation; `just package` builds the release one.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::BIN;
use lingerstack_testkit::{Capture, Dir, TapNet, peer, require_tap, require_tool, run_ok};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Build the .deb from this suite's binary into `tmp/out`; its path.
fn build_deb(tmp: &Path) -> PathBuf {
    // cargo-deb reads `target/release/...` as "the target directory of the profile".
    let release = tmp.join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    std::fs::copy(BIN, release.join("lingerstackd")).unwrap();
    run_ok(
        Command::new(BIN)
            .arg("generate-assets")
            .arg(release.join("assets")),
    );
    let out = tmp.join("out");
    run_ok(
        Command::new("cargo")
            .current_dir(workspace())
            .env("CARGO_TARGET_DIR", tmp.join("target"))
            .args([
                "deb",
                "-p",
                "lingerstack-daemon",
                "--no-build",
                "--fast",
                "-o",
            ])
            .arg(&out),
    );
    let debs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one .deb expected in {}", out.display());
    debs[0].clone()
}

/// The files the package must carry, with what each must say.
fn check_files(root: &Path, control: &Path) {
    let bin = root.join("usr/bin/lingerstackd");
    let mode = std::fs::metadata(&bin).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755, "usr/bin/lingerstackd mode {mode:o}");
    // Man pages and completions come from the CLI definition: a flag of today's `run` is there.
    let man = root.join("usr/share/man/man1");
    assert!(read(&man.join("lingerstackd.1")).contains(".TH lingerstackd"));
    assert!(read(&man.join("lingerstackd-run.1")).contains("ready\\-fd"));
    assert!(read(&man.join("lingerstackd-status.1")).contains("control"));
    let bash = root.join("usr/share/bash-completion/completions/lingerstackd");
    assert!(read(&bash).contains("--ready-fd"));
    assert!(
        root.join("usr/share/zsh/vendor-completions/_lingerstackd")
            .is_file()
    );
    assert!(
        root.join("usr/share/fish/vendor_completions.d/lingerstackd.fish")
            .is_file()
    );
    // The config file is a conffile (an upgrade keeps the operator's edits).
    assert!(read(&root.join("etc/lingerstackd.toml")).contains("#tap = "));
    assert_eq!(
        read(&control.join("conffiles")).trim(),
        "/etc/lingerstackd.toml"
    );
    let fields = read(&control.join("control"));
    assert!(fields.contains("Package: lingerstackd"), "{fields}");
    assert!(
        fields.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{fields}"
    );
    // Every key of the commented file is one the daemon knows: uncommented, the file parses
    // (the run stops at the TAP name, the first value checked, after the keys were read).
    let all_keys: String = read(&root.join("etc/lingerstackd.toml"))
        .lines()
        .filter(|l| !l.starts_with("# ") && *l != "#" && !l.contains("control_group"))
        .map(|l| format!("{}\n", l.trim_start_matches('#')))
        .collect();
    let file = root.join("all-keys.toml");
    std::fs::write(&file, all_keys).unwrap();
    let out = Command::new(&bin)
        .args(["run", "--config"])
        .arg(&file)
        .args(["--tap", "name-much-too-long"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--tap \"name-much-too-long\""), "{err}");
}

/// The unit: notify type, hardening, and the runtime directory that holds the default control
/// socket; then systemd's own check, with ExecStart pointed at the unpacked binary.
fn check_unit(root: &Path, tmp: &Path) {
    let unit = read(&root.join("usr/lib/systemd/system/lingerstackd.service"));
    let control =
        run_ok(Command::new(root.join("usr/bin/lingerstackd")).args(["status", "--help"]));
    let default = "/run/lingerstackd/lingerstackd.sock";
    assert!(control.contains(default), "status --help:\n{control}");
    for line in [
        "Type=notify",
        "ExecStart=/usr/bin/lingerstackd run --config /etc/lingerstackd.toml",
        "RuntimeDirectory=lingerstackd",
        "CapabilityBoundingSet=CAP_NET_ADMIN",
        "AmbientCapabilities=CAP_NET_ADMIN",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "unit lacks {line}:\n{unit}"
        );
    }
    if !require_tool(
        "package_unpacks_runs_and_notifies",
        "systemd-analyze",
        "--version",
    ) {
        return;
    }
    let dir = tmp.join("unit");
    std::fs::create_dir_all(&dir).unwrap();
    let bin = root.join("usr/bin/lingerstackd");
    let path = dir.join("lingerstackd.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/lingerstackd", &bin.display().to_string()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // A bad directive is only a warning ("ignoring"): no output at all is the pass.
    assert!(
        out.status.success() && err.trim().is_empty(),
        "verify:\n{err}"
    );
}

/// Messages the stand-in for systemd received, one datagram each, until `until` matches one or
/// `within` passes.
fn collect(sock: &UnixDatagram, got: &mut Vec<String>, until: &str, within: Duration) {
    let end = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = m.lines().any(|l| l == until);
            got.push(m);
            if done {
                return;
            }
        }
    }
    panic!("no {until} within {within:?}; got {got:?}");
}

/// The daemon process, killed if the test fails before it exits (a panic must not leave it
/// running after its namespace is gone).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Start the unpacked daemon in the namespace of `net` with systemd's variables and
/// `--ready-fd 3` on `ready_writer`.
fn start(net: &TapNet, bin: &Path, root: &Path, tmp: &Path, ready_writer: i32) -> Running {
    let stack_ip = format!("{}/24", net.stack_v4());
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", net.ns().name()])
        .arg(bin)
        .args(["run", "--config"])
        .arg(root.join("etc/lingerstackd.toml"))
        .args(["--tap", net.tap_name(), "--ipv4", &stack_ip])
        .args(["--mac", "02:00:00:00:00:02", "--service", "echo:7"])
        .arg("--control")
        .arg(tmp.join("control.sock"))
        .args(["--ready-fd", &ready_writer.to_string()])
        .env("NOTIFY_SOCKET", tmp.join("notify.sock"))
        // 400 ms: a ping every 200 ms.
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(tmp.join("daemon.log")).unwrap());
    Running(cmd.spawn().expect("spawning the unpacked lingerstackd"))
}

#[test]
fn package_unpacks_runs_and_notifies() {
    let test = "package_unpacks_runs_and_notifies";
    if !require_tap(test)
        || !require_tool(test, "cargo-deb", "--version")
        || !require_tool(test, "dpkg-deb", "--version")
    {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("lsd-deb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let deb = build_deb(&tmp);
    let root = tmp.join("root");
    let control = tmp.join("control");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    run_ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    check_files(&root, &control);
    check_unit(&root, &tmp);

    let bin = root.join("usr/bin/lingerstackd");
    let help = run_ok(Command::new(&bin).arg("--help"));
    assert!(help.contains("run") && help.contains("status"), "{help}");
    let version = run_ok(Command::new(&bin).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("lingerstackd {}", env!("CARGO_PKG_VERSION"))
    );

    // The demo comes with the package, its kernel side included (no test kit): the three close
    // modes against the kernel of its own namespace, checked by the demo from its capture.
    let demo = run_ok(
        Command::new(&bin)
            .arg("demo")
            .arg("--pcap")
            .arg(tmp.join("demo.pcap")),
    );
    assert!(
        demo.contains("result: OK") && demo.contains("the Linux kernel is the client"),
        "{demo}"
    );

    // The real run. systemd's socket is a path: an abstract one would live in the host's
    // network namespace, out of the daemon's reach inside the test's.
    let notify = UnixDatagram::bind(tmp.join("notify.sock")).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let net = TapNet::new().unwrap();
    let cap = Capture::start(net.ns(), net.tap_name(), "daemon-package").unwrap();
    let (mut ready_reader, ready_writer) = std::io::pipe().unwrap();
    // The daemon gets the pipe's write end as its descriptor N: clear close-on-exec so that it
    // survives `ip netns exec` and the daemon's exec. Only the daemon is spawned while it is
    // inheritable, and this process closes its copy at once: EOF means the daemon closed it.
    let fd = ready_writer.as_raw_fd();
    // SAFETY: F_SETFD on a descriptor this test owns; 0 only clears FD_CLOEXEC.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
    let mut daemon = start(&net, &bin, &root, &tmp, fd);
    drop(ready_writer);
    let log = || read(&tmp.join("daemon.log"));

    // --ready-fd: one line, then EOF, and by then the control socket answers.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = tx.send(ready_reader.read_to_string(&mut line).map(|_| line));
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("no line and EOF on --ready-fd in 20 s:\n{}", log()))
        .unwrap();
    assert_eq!(line, "READY=1\n", "daemon log:\n{}", log());
    let status = run_ok(
        Command::new(&bin)
            .args(["status", "--json", "--control"])
            .arg(tmp.join("control.sock")),
    );
    assert!(status.contains("\"echo\""), "{status}");

    // NOTIFY_SOCKET: READY=1 with a status line, then watchdog pings.
    let mut got = Vec::new();
    collect(&notify, &mut got, "READY=1", Duration::from_secs(10));
    let ready = got.last().unwrap().clone();
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=serving on ") && l.contains("1 service(s)")),
        "{ready:?}"
    );
    collect(&notify, &mut got, "WATCHDOG=1", Duration::from_secs(10));
    collect(&notify, &mut got, "WATCHDOG=1", Duration::from_secs(10));

    // The packaged daemon serves: the kernel's echo comes back, and the capture saw it.
    net.wait_link_up(Duration::from_secs(5)).unwrap();
    let to = SocketAddr::new(net.stack_v4().into(), 7);
    let mut s = peer::tcp_connect(net.ns(), to, None, Duration::from_secs(5)).unwrap();
    s.write_all(b"packaged").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (back, err) = peer::read_to_end_or_error(&mut s);
    assert_eq!(
        (back.as_slice(), err.map(|e| e.kind())),
        (&b"packaged"[..], None)
    );
    let port = s.local_addr().unwrap().port();
    drop(s);

    // SIGTERM: STOPPING=1 with the reason, then a clean exit.
    // SAFETY: kill(2) on the child we spawned (`ip netns exec` execs in place: same pid).
    let rc = unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    collect(&notify, &mut got, "STOPPING=1", Duration::from_secs(10));
    let stopping = got.last().unwrap();
    assert!(
        stopping.contains("STATUS=SIGTERM: draining"),
        "{stopping:?}"
    );
    let end = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "no exit after SIGTERM:\n{}", log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(0), "{}", log());
    let order: Vec<&str> = got
        .iter()
        .flat_map(|m| m.lines())
        .filter(|l| matches!(*l, "READY=1" | "STOPPING=1"))
        .collect();
    assert_eq!(order, ["READY=1", "STOPPING=1"], "{got:?}");

    let trace = cap.stop().conn(port);
    trace.assert(
        trace.stream(Dir::FromStack) == b"packaged",
        "the stack's segments carry the echo",
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

/// `cargo install --path crates/daemon` builds what the daemon's normal dependencies are: the
/// test kit must not be one of them (the demo's kernel side is the daemon's own code).
#[test]
fn the_installed_daemon_does_not_build_the_test_kit() {
    let tree = run_ok(
        Command::new("cargo")
            .current_dir(workspace())
            .args([
                "tree",
                "--locked",
                "-p",
                "lingerstack-daemon",
                "-e",
                "normal",
            ])
            .args(["--prefix", "none"]),
    );
    assert!(tree.contains("lingerstack-stack v"), "{tree}");
    assert!(!tree.contains("lingerstack-testkit"), "{tree}");
}
