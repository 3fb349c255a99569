//! What the daemon's test files share: `lingerstackd` as a real process inside a test
//! namespace (`ip netns exec`), its log, its control socket and its threads.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lingerstack_testkit::TapNet;

/// The daemon binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lingerstackd");

/// A daemon process in the namespace of a [`TapNet`]; killed on drop if still running.
pub struct DaemonProc {
    pub child: Child,
    pub control: PathBuf,
    log: PathBuf,
}

impl DaemonProc {
    /// Start `lingerstackd run` on the TAP of `net` with `extra` flags, logging at `info`.
    pub fn start(net: &TapNet, name: &str, extra: &[&str]) -> DaemonProc {
        DaemonProc::start_logging(net, name, "info", extra)
    }

    /// As [`DaemonProc::start`], with the log level given (`warn` keeps big runs quiet).
    pub fn start_logging(net: &TapNet, name: &str, level: &str, extra: &[&str]) -> DaemonProc {
        DaemonProc::start_in(net.ns().name(), net, name, level, extra)
    }

    /// As [`DaemonProc::start_logging`], with the daemon run in the namespace `exec_ns`
    /// (with `--netns`, the TAP of `net` can still be its link).
    pub fn start_in(
        exec_ns: &str,
        net: &TapNet,
        name: &str,
        level: &str,
        extra: &[&str],
    ) -> DaemonProc {
        let dir = lingerstack_testkit::captures_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let control = std::env::temp_dir().join(format!("lsd-{}.sock", net.ns().name()));
        let log = dir.join(format!("daemon-{name}.log"));
        let _ = std::fs::remove_file(&control);
        let stack_ip = format!("{}/24", net.stack_v4());
        let control_arg = control.display().to_string();
        let mut args = vec![
            "netns",
            "exec",
            exec_ns,
            BIN,
            "run",
            "--tap",
            net.tap_name(),
            "--ipv4",
            &stack_ip,
            "--mac",
            "02:00:00:00:00:02",
            "--control",
            &control_arg,
            "--log-level",
            level,
        ];
        args.extend_from_slice(extra);
        let child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawning ip netns exec lingerstackd");
        let mut d = DaemonProc {
            child,
            control,
            log,
        };
        let end = Instant::now() + Duration::from_secs(10);
        while !d.control.exists() {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!("daemon exited at start ({status}):\n{}", d.log_text());
            }
            assert!(
                Instant::now() < end,
                "daemon not up after 10 s:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        net.wait_link_up(Duration::from_secs(5)).unwrap();
        d
    }

    /// What the daemon logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send `sig` to the daemon.
    pub fn signal(&self, sig: i32) {
        // The child is `ip`, which execs the daemon in place: same pid.
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) with a pid we spawned and a valid signal number.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }

    /// Wait for the daemon to exit, at most `within`.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let end = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < end,
                "daemon did not exit within {within:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `lingerstackd status --json`.
    pub fn status_json(&self) -> serde_json::Value {
        self.status_timed().0
    }

    /// `lingerstackd status --json`, and how long it took.
    pub fn status_timed(&self) -> (serde_json::Value, Duration) {
        let start = Instant::now();
        let out = Command::new(BIN)
            .args(["status", "--json", "--control"])
            .arg(&self.control)
            .output()
            .unwrap();
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = serde_json::from_slice(&out.stdout).expect("status --json prints JSON");
        (v, took)
    }

    /// `lingerstackd ctl --control <its socket> ARGS...`: exit status, stdout, stderr.
    pub fn ctl(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(BIN)
            .arg("ctl")
            .arg("--control")
            .arg(&self.control)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `lingerstackd ctl --json ARGS...` that must succeed: its JSON answer.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let (code, out, err) = self.ctl(&full);
        assert_eq!(
            code,
            Some(0),
            "ctl {args:?} failed: {err}\n{}",
            self.log_text()
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ctl {args:?}: not JSON ({e}): {out}"))
    }

    /// Names of the daemon's threads (`ip netns exec` execs the daemon: same pid).
    pub fn threads(&self) -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                    .map(|name| name.trim().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Resident memory, bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.control);
    }
}
