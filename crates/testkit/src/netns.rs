//! Private network namespaces, deleted on drop, with helpers to run code inside them.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

/// Prefix of every namespace (and interface) name this crate creates.
pub const PREFIX: &str = "lsk";

/// Linux interface names are at most this many bytes (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace named `lsk<pid>x<counter>`, deleted (`ip netns del`) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    counter: u32,
    /// Open handle on `/run/netns/<name>`; pins the namespace while we use it.
    fd: File,
}

impl Netns {
    /// Sweeps stale `lsk*` namespaces of dead processes, then creates a fresh namespace with
    /// `lo` up.
    pub fn new() -> io::Result<Netns> {
        sweep_stale();
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}x{counter}", std::process::id());
        run_ip(&["netns", "add", &name])?;
        // From here on a failure must still delete the namespace.
        let delete = |e: io::Error| {
            let _ = run_ip(&["netns", "del", &name]);
            e
        };
        let fd = File::open(Path::new("/run/netns").join(&name)).map_err(delete)?;
        let ns = Netns { name, counter, fd };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, usable with `ip -n` / `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A unique interface name (at most 15 bytes) built from this namespace's name and `suffix`.
    ///
    /// Panics if `suffix` is so long that no unique name fits.
    pub fn ifname(&self, suffix: &str) -> String {
        let long = format!("{}{suffix}", self.name);
        if long.len() <= MAX_IFNAME {
            return long;
        }
        let short = format!(
            "ls{}x{}{suffix}",
            base36(std::process::id()),
            base36(self.counter)
        );
        assert!(
            short.len() <= MAX_IFNAME,
            "interface name {short:?} longer than {MAX_IFNAME} bytes; use a shorter suffix"
        );
        short
    }

    /// Runs `f` on a fresh thread that has entered this namespace, and returns its result.
    ///
    /// A panic in `f` is propagated to the caller.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let fd = &self.fd;
        let name = &self.name;
        std::thread::scope(|s| {
            let handle = std::thread::Builder::new()
                .name(format!("netns-{name}"))
                .spawn_scoped(s, move || {
                    enter(fd, name);
                    f()
                })
                .expect("spawn netns thread");
            match handle.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Like [`Netns::run`] but does not wait: returns the thread's handle.
    ///
    /// Threads the closure spawns are in the namespace too.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let fd = self.fd.try_clone().expect("dup netns fd");
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn(move || {
                enter(&fd, &name);
                drop(fd);
                f()
            })
            .expect("spawn netns thread")
    }

    /// Runs `ip -n <name> <args...>`; the error carries the command and its stderr.
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run_ip(&full).map(drop)
    }

    /// Runs `ip -n <name> <args...>` and returns its stdout.
    pub fn ip_output(&self, args: &[&str]) -> io::Result<String> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run_ip(&full).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Sets a sysctl inside the namespace, e.g. `sysctl("net.ipv4.tcp_tw_reuse", "1")`.
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        self.run(|| std::fs::write(&path, value))
            .map_err(|e| io::Error::new(e.kind(), format!("sysctl {key}={value}: {e}")))
    }

    /// Reads a sysctl inside the namespace (trimmed).
    pub fn read_sysctl(&self, key: &str) -> io::Result<String> {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        self.run(|| std::fs::read_to_string(&path))
            .map(|s| s.trim().to_string())
            .map_err(|e| io::Error::new(e.kind(), format!("sysctl {key}: {e}")))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run_ip(&["netns", "del", &self.name]) {
            eprintln!(
                "lingerstack-testkit: failed to delete netns {}: {e}",
                self.name
            );
        }
    }
}

/// Moves the current thread into the namespace behind `fd`; panics on failure.
fn enter(fd: &File, name: &str) {
    // SAFETY: `fd` is a valid open descriptor for the duration of the call; setns only
    // changes the calling thread's network namespace.
    let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        panic!("setns into netns {name}: {}", io::Error::last_os_error());
    }
}

/// Runs `ip <args>`, mapping a non-zero exit to an error carrying stderr.
fn run_ip(args: &[&str]) -> io::Result<Output> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Deletes `lsk<pid>x<n>` namespaces whose process no longer exists.
pub fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // Another process may be sweeping the same one: ignore errors.
            if run_ip(&["netns", "del", &name]).is_ok() {
                eprintln!("lingerstack-testkit: removed stale netns {name}");
            }
        }
    }
}

/// Parses the creator pid out of a `lsk<pid>x<n>` name.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, counter) = rest.split_once('x')?;
    counter.parse::<u32>().ok()?;
    pid.parse().ok()
}

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_owner_pid() {
        assert_eq!(owner_pid("lsk1234x0"), Some(1234));
        assert_eq!(owner_pid("lsk1234x"), None);
        assert_eq!(owner_pid("lskx1"), None);
        assert_eq!(owner_pid("other1x2"), None);
        assert_eq!(base36(0), "0");
        assert_eq!(base36(4194304), "2hwcg");
    }

    #[test]
    fn netns_run_and_drop() {
        if !crate::require_tap("netns_run_and_drop") {
            return;
        }
        let ns = Netns::new().unwrap();
        let name = ns.name().to_string();
        assert!(ns.ifname("t").len() <= MAX_IFNAME);
        assert!(ns.ifname("abcd").len() <= MAX_IFNAME);
        assert!(std::panic::catch_unwind(|| ns.ifname("much-too-long")).is_err());
        // Only `lo` exists inside.
        let links = ns.run(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap());
        assert!(
            links.contains("lo:") && links.lines().count() == 3,
            "{links}"
        );
        ns.sysctl("net.ipv4.tcp_tw_reuse", "1").unwrap();
        assert_eq!(ns.read_sysctl("net.ipv4.tcp_tw_reuse").unwrap(), "1");
        let h = ns.spawn(|| 7);
        assert_eq!(h.join().unwrap(), 7);
        assert!(ns.ip(&["link", "set", "nosuchdev", "up"]).is_err());
        drop(ns);
        assert!(!Path::new("/run/netns").join(&name).exists());
    }
}
