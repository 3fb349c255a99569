//! `--netns`: the TAP device lives in another network namespace than the daemon.
//!
//! As pasta does, only the TAP is opened over there: one short-lived thread joins the target
//! namespace with `setns(CLONE_NEWNET)`, opens the device (creating it there if missing) and
//! does its ioctls (MTU), then ends. A TAP descriptor and the socket kept for its ioctls stay
//! bound to the namespace they were made in, so the engine reads and writes the device from
//! any thread, while every other socket the daemon opens (forward targets and listeners, the
//! metrics endpoint) belongs to the namespace the daemon was started in. Only the network
//! namespace is ever joined, and only by that one thread: joining a mount namespace is not
//! possible for a multi-threaded process, and the daemon's other threads never move.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Where named namespaces live (`ip netns add NAME` creates `/run/netns/NAME`).
const NAMED_DIR: &str = "/run/netns";

/// The namespace given to `--netns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetnsTarget {
    /// A name made by `ip netns add`: `/run/netns/NAME`.
    Name(String),
    /// A file that is a network namespace (a bind mount, or `/proc/PID/ns/net`).
    Path(PathBuf),
    /// A process whose network namespace to use: `/proc/PID/ns/net`.
    Pid(u32),
}

impl NetnsTarget {
    /// Read `NAME`, `PATH` (anything with a `/`) or `PID` (digits only).
    pub fn parse(text: &str) -> Result<NetnsTarget, String> {
        let v = text.trim();
        if v.is_empty() {
            return Err("empty; give a name (ip netns list), a path or a PID".into());
        }
        if v.contains('/') {
            return Ok(NetnsTarget::Path(PathBuf::from(v)));
        }
        if v.bytes().all(|b| b.is_ascii_digit()) {
            return match v.parse::<u32>() {
                Ok(pid) if pid > 0 => Ok(NetnsTarget::Pid(pid)),
                _ => Err("not a process ID".into()),
            };
        }
        if v == "." || v == ".." || v.contains('\0') {
            return Err("not a namespace name".into());
        }
        Ok(NetnsTarget::Name(v.to_string()))
    }

    /// The file that stands for the namespace.
    pub fn path(&self) -> PathBuf {
        match self {
            NetnsTarget::Name(name) => PathBuf::from(NAMED_DIR).join(name),
            NetnsTarget::Path(path) => path.clone(),
            NetnsTarget::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        }
    }

    /// Join this namespace on a thread of its own, run `f` there, and return its result; the
    /// thread ends with `f`, and the caller's threads stay where they are.
    pub fn run_in<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T, String> + Send,
    ) -> Result<T, String> {
        let ns = File::open(self.path()).map_err(|e| self.open_error(&e))?;
        std::thread::scope(|scope| {
            let joined = std::thread::Builder::new()
                .name("netns-open".into())
                .spawn_scoped(scope, || {
                    enter(&ns).map_err(|e| self.enter_error(&e))?;
                    f()
                })
                .map_err(|e| format!("network namespace {self}: starting a thread: {e}"))?;
            joined
                .join()
                .unwrap_or_else(|_| Err(format!("network namespace {self}: the thread panicked")))
        })
    }

    fn open_error(&self, e: &io::Error) -> String {
        let hint = match (self, e.kind()) {
            (NetnsTarget::Name(_), io::ErrorKind::NotFound) => {
                " (no such namespace; see ip netns list)"
            }
            (NetnsTarget::Pid(_), io::ErrorKind::NotFound) => " (no such process)",
            _ => "",
        };
        format!("network namespace {self}: {e}{hint}")
    }

    fn enter_error(&self, e: &io::Error) -> String {
        let hint = match e.raw_os_error() {
            Some(libc::EINVAL) => " (not a network namespace)",
            Some(libc::EPERM) => " (needs CAP_SYS_ADMIN)",
            _ => "",
        };
        format!("network namespace {self}: joining it: {e}{hint}")
    }
}

impl fmt::Display for NetnsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsTarget::Name(name) => write!(f, "{name}"),
            NetnsTarget::Path(path) => write!(f, "{}", path.display()),
            NetnsTarget::Pid(pid) => write!(f, "of pid {pid}"),
        }
    }
}

/// Move the calling thread (only it) into the network namespace `ns`.
fn enter(ns: &File) -> io::Result<()> {
    // SAFETY: `ns` is an open descriptor for the whole call; setns with CLONE_NEWNET changes
    // only the calling thread's network namespace and touches no memory of ours.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_and_pids() {
        let name = NetnsTarget::parse("ns1").unwrap();
        assert_eq!(name.path(), PathBuf::from("/run/netns/ns1"));
        let pid = NetnsTarget::parse("1234").unwrap();
        assert_eq!(pid, NetnsTarget::Pid(1234));
        assert_eq!(pid.path(), PathBuf::from("/proc/1234/ns/net"));
        let path = NetnsTarget::parse("/var/run/netns/x").unwrap();
        assert_eq!(path.path(), PathBuf::from("/var/run/netns/x"));
        assert_eq!(
            NetnsTarget::parse("./x").unwrap(),
            NetnsTarget::Path("./x".into())
        );
        for bad in ["", " ", "0", "99999999999", "..", "."] {
            assert!(NetnsTarget::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_namespace_is_named_in_the_error() {
        let e = NetnsTarget::parse("lsd-no-such-ns")
            .unwrap()
            .run_in(|| Ok(()))
            .unwrap_err();
        assert!(
            e.contains("lsd-no-such-ns") && e.contains("ip netns list"),
            "{e}"
        );
        // Not a namespace file at all: the join fails, nothing runs.
        let e = NetnsTarget::Path("/dev/null".into())
            .run_in(|| Ok(()))
            .unwrap_err();
        assert!(e.contains("/dev/null") && e.contains("joining"), "{e}");
    }
}
