//! Test helpers for running lingerstack against the Linux kernel on a real TAP.
//!
//! Each TAP test creates its own network namespace ([`Netns`]), a TAP device inside it
//! ([`TapNet`]), captures the kernel side of the TAP with an AF_PACKET socket ([`Capture`]),
//! and asserts on the parsed capture ([`Trace`]). Kernel-side peer sockets come from [`peer`].
//! Without root (CAP_NET_ADMIN) the tests skip loudly via [`require_tap`], and without a tool
//! they need (valgrind, tshark) via [`require_tool`]; `LINGERSTACK_REQUIRE_TAP=1` turns every
//! such skip into a failure.

#![warn(missing_docs)]

pub mod capture;
pub mod fuzz;
pub mod icmp;
pub mod inject;
pub mod netns;
pub mod peer;
pub mod tapnet;
pub mod tapstack;
pub mod trace;

pub use capture::Capture;
pub use inject::Injector;
pub use netns::Netns;
pub use tapnet::TapNet;
pub use tapstack::{open_link, stack_config, start_stack};
pub use trace::{Dir, Flags, FrameKind, OtherFrame, Segment, Trace};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Env variable that turns a skipped TAP test into a failure (set by CI).
pub const REQUIRE_TAP_ENV: &str = "LINGERSTACK_REQUIRE_TAP";

/// Env variable that runs the TAP tests with offloads off (`off`): plain frames of at most the
/// MTU, one per system call. Unset (or anything else): the default, offloads on, so the kernel
/// and the stack move TCP super-segments over the TAP.
pub const OFFLOAD_ENV: &str = "LINGERSTACK_TEST_OFFLOAD";

/// Whether the TAP tests run with offloads on ([`OFFLOAD_ENV`]). A capture on the kernel side
/// of the TAP sees super-segments then: assertions on segment sizes or counts say which mode
/// they hold for.
pub fn offload() -> bool {
    std::env::var(OFFLOAD_ENV).map_or(true, |v| v != "off")
}

/// Run `cmd` and fail the test with its output unless it succeeds; its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How the tests open a TAP: with or without offloads, as [`offload`] says.
pub fn tap_options() -> lingerstack_tap::TapOptions {
    lingerstack_tap::TapOptions { offload: offload() }
}

/// Checks that TAP tests can run here: CAP_NET_ADMIN, `/dev/net/tun` and the `ip` tool.
pub fn tap_available() -> Result<(), String> {
    if !has_net_admin() {
        return Err("not root and no CAP_NET_ADMIN".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err("/dev/net/tun does not exist".into());
    }
    match Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`ip -V` failed: {s}")),
        Err(e) => Err(format!("`ip` (iproute2) not runnable: {e}")),
    }
}

/// Returns true if TAP tests can run; otherwise prints `SKIP <test>: <why>` to stderr and
/// returns false, or panics with the reason when `LINGERSTACK_REQUIRE_TAP=1`.
pub fn require_tap(test: &str) -> bool {
    match tap_available() {
        Ok(()) => true,
        Err(why) => {
            if std::env::var(REQUIRE_TAP_ENV).is_ok_and(|v| v == "1") {
                panic!("{test}: TAP required ({REQUIRE_TAP_ENV}=1) but unavailable: {why}");
            }
            // Written to the real stderr, past libtest's output capture, so the skip is seen.
            let _ = writeln!(std::io::stderr(), "\n*** SKIP {test}: {why} ***\n");
            false
        }
    }
}

/// Returns true if `tool` runs here (`<tool> <version_arg>` can be started); otherwise prints
/// `SKIP <test>: <tool> is not installed` to stderr and returns false, or panics with that
/// reason when `LINGERSTACK_REQUIRE_TAP=1`: CI installs every tool the suite uses
/// (scripts/setup.sh), so a missing one there is a broken set-up, not a pass.
pub fn require_tool(test: &str, tool: &str, version_arg: &str) -> bool {
    let runs = Command::new(tool)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if runs {
        return true;
    }
    if std::env::var(REQUIRE_TAP_ENV).is_ok_and(|v| v == "1") {
        panic!("{test}: {tool} required ({REQUIRE_TAP_ENV}=1) but not installed");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIP {test}: {tool} is not installed ***\n"
    );
    false
}

/// True if the effective capability set has CAP_NET_ADMIN (bit 12).
fn has_net_admin() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

/// The workspace's target directory: `$CARGO_TARGET_DIR`, else `<dir with Cargo.lock>/target`
/// found by walking up from `$CARGO_MANIFEST_DIR`, the current dir, or this crate's source.
pub fn target_dir() -> PathBuf {
    let workspace = workspace_root();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return match (&workspace, dir.is_relative()) {
            (Some(ws), true) => ws.join(dir),
            _ => dir,
        };
    }
    workspace
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("target")
}

/// Directory where captures are written: `<target dir>/captures`.
pub fn captures_dir() -> PathBuf {
    target_dir().join("captures")
}

fn workspace_root() -> Option<PathBuf> {
    let starts = [
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    starts.into_iter().flatten().find_map(|start| {
        start
            .ancestors()
            .find(|d| d.join("Cargo.lock").is_file())
            .map(Path::to_path_buf)
    })
}

/// Raises the soft RLIMIT_NOFILE to `min(want, hard limit)` and returns the new soft limit.
pub fn raise_nofile_limit(want: u64) -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid, properly sized `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    lim.rlim_cur = want.min(lim.rlim_max);
    // SAFETY: setrlimit only reads the valid `lim`.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_skips_or_fails_as_required() {
        let required = std::env::var(REQUIRE_TAP_ENV).is_ok_and(|v| v == "1");
        let missing = std::panic::catch_unwind(|| {
            require_tool("unit", "/nonexistent/lingerstack-tool", "--version")
        });
        if required {
            assert!(missing.is_err(), "a missing tool must fail the test here");
        } else {
            assert_eq!(missing.ok(), Some(false), "a missing tool must skip");
        }
        assert!(require_tool("unit", "true", "--version"), "true runs");
    }

    #[test]
    fn target_dir_is_absolute_and_captures_under_it() {
        let t = target_dir();
        assert!(t.is_absolute(), "{t:?}");
        assert!(captures_dir().starts_with(&t));
    }
}
