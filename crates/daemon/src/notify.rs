//! Readiness for supervisors: systemd's notify protocol and a readiness descriptor.
//!
//! Under a `Type=notify` unit, systemd passes `NOTIFY_SOCKET`, a Unix datagram socket (a path,
//! or an abstract name written with a leading `@`). The daemon sends it one datagram per
//! message, `KEY=VALUE` lines: `READY=1` once the TAP, the services and the control socket are
//! up, `STATUS=...` lines a human reads in `systemctl status`, `STOPPING=1` when the drain
//! begins, and `WATCHDOG=1` at half the `WATCHDOG_USEC` interval when the unit asks for a
//! watchdog. The protocol is a few lines of socket code, so no crate is needed for it.
//!
//! Other supervisors (s6, or a script) pass `--ready-fd N` instead: the daemon writes one line
//! to descriptor N when it is ready and closes it, so the reader sees the line and then EOF.
//!
//! Both are optional and best effort: a supervisor that went away must not stop the daemon, so
//! a failed send is logged, never fatal.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The line written to the `--ready-fd` descriptor.
pub const READY_LINE: &str = "READY=1\n";

/// The process's notifier, set once by [`init`]; the daemon's parts report through it.
static NOTIFIER: OnceLock<Notifier> = OnceLock::new();

/// Where readiness and status go.
struct Notifier {
    /// systemd's socket and its address, from `NOTIFY_SOCKET`.
    systemd: Option<(UnixDatagram, SocketAddr)>,
    /// The `--ready-fd` descriptor, taken (and so closed) at the first [`ready`].
    ready_fd: Mutex<Option<File>>,
    /// Half the watchdog interval, when the unit asks for a watchdog.
    watchdog: Option<Duration>,
    /// Set at [`stopping`]: the watchdog stops pinging.
    stopping: AtomicBool,
}

/// Check that `fd` is an open descriptor, so that a bad `--ready-fd` is a configuration error
/// at the start and not a silent no-op once the daemon is up.
pub fn check_ready_fd(fd: RawFd) -> Result<(), String> {
    if fd < 0 {
        return Err(format!("--ready-fd {fd}: not a file descriptor"));
    }
    // SAFETY: F_GETFD only reads the descriptor's flags; any integer is a valid argument.
    let rc = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if rc < 0 {
        return Err(format!(
            "--ready-fd {fd}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Set up the process's notifier from the environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`,
/// `WATCHDOG_PID`) and `ready_fd`, which [`check_ready_fd`] accepted. Call once, before
/// anything reports; later calls change nothing.
pub fn init(ready_fd: Option<RawFd>) {
    let systemd =
        std::env::var("NOTIFY_SOCKET")
            .ok()
            .and_then(|name| match systemd_socket(&name) {
                Ok(s) => Some(s),
                Err(e) => {
                    log::warn!("NOTIFY_SOCKET {name:?}: {e}; not notifying systemd");
                    None
                }
            });
    let watchdog = watchdog_interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    );
    // SAFETY: `check_ready_fd` found the descriptor open; the daemon owns it from here on (the
    // supervisor handed it over for this one use) and nothing else in the process uses it.
    let ready_fd = ready_fd.map(|fd| unsafe { File::from_raw_fd(fd) });
    let _ = NOTIFIER.set(Notifier {
        systemd,
        ready_fd: Mutex::new(ready_fd),
        watchdog,
        stopping: AtomicBool::new(false),
    });
}

/// An unbound datagram socket and systemd's address: a path, or `@name` for an abstract one.
fn systemd_socket(name: &str) -> std::io::Result<(UnixDatagram, SocketAddr)> {
    let addr = match name.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
        None => SocketAddr::from_pathname(name)?,
    };
    Ok((UnixDatagram::unbound()?, addr))
}

/// Half the watchdog interval `WATCHDOG_USEC` asks for (systemd's advice: ping at half the
/// timeout), if it is meant for this process (`WATCHDOG_PID` absent or `pid`).
pub fn watchdog_interval(usec: Option<&str>, for_pid: Option<&str>, pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(p) = for_pid
        && p.trim().parse::<u32>().ok() != Some(pid)
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2))
}

/// Send one message (newline-separated `KEY=VALUE` lines) to systemd, if it listens.
fn send(message: &str) {
    let Some(n) = NOTIFIER.get() else { return };
    if let Some((socket, addr)) = &n.systemd
        && let Err(e) = socket.send_to_addr(message.as_bytes(), addr)
    {
        log::warn!("notifying systemd ({}): {e}", first_line(message));
    }
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or("")
}

/// The daemon is up: `READY=1` with a status line to systemd, and the line to the `--ready-fd`
/// descriptor, which is then closed. Only the first call writes to the descriptor.
pub fn ready(status: &str) {
    send(&format!("READY=1\nSTATUS={status}\n"));
    let Some(n) = NOTIFIER.get() else { return };
    let fd = n.ready_fd.lock().ok().and_then(|mut f| f.take());
    // Dropping the file at the end closes the descriptor: the reader sees EOF after the line.
    if let Some(mut file) = fd
        && let Err(e) = file.write_all(READY_LINE.as_bytes())
    {
        log::warn!("writing to the --ready-fd descriptor: {e}");
    }
}

/// A status line for `systemctl status`.
pub fn status(status: &str) {
    send(&format!("STATUS={status}\n"));
}

/// The daemon is stopping (a drain began, or the link failed): `STOPPING=1` and why. The
/// watchdog stops pinging, since systemd now waits for the exit under its stop timeout.
pub fn stopping(status: &str) {
    if let Some(n) = NOTIFIER.get() {
        n.stopping.store(true, Ordering::Relaxed);
    }
    send(&format!("STOPPING=1\nSTATUS={status}\n"));
}

/// When the unit asks for a watchdog, ping it from a thread at half the interval, as long as
/// `alive` says the daemon works (the engine answers). A daemon whose engine hangs stops
/// pinging, and systemd restarts it.
pub fn spawn_watchdog(alive: Arc<dyn Fn() -> bool + Send + Sync>) -> std::io::Result<()> {
    let Some(n) = NOTIFIER.get() else {
        return Ok(());
    };
    let Some(every) = n.watchdog else {
        return Ok(());
    };
    log::info!(
        "systemd watchdog: pinging every {:.1} s",
        every.as_secs_f64()
    );
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            while !n.stopping.load(Ordering::Relaxed) {
                if alive() {
                    send("WATCHDOG=1\n");
                } else {
                    log::warn!("systemd watchdog: the engine does not answer; not pinging");
                }
                std::thread::sleep(every);
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_is_half_the_interval_for_this_pid_only() {
        assert_eq!(
            watchdog_interval(Some("10000000"), None, 42),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            watchdog_interval(Some("10000000"), Some("42"), 42),
            Some(Duration::from_secs(5))
        );
        assert_eq!(watchdog_interval(Some("10000000"), Some("41"), 42), None);
        assert_eq!(watchdog_interval(Some("0"), None, 42), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 42), None);
        assert_eq!(watchdog_interval(None, None, 42), None);
    }

    #[test]
    fn a_closed_or_negative_descriptor_is_refused() {
        assert!(check_ready_fd(-1).is_err());
        // Descriptor 0 is open in any test process (stdin, even if /dev/null).
        assert!(check_ready_fd(0).is_ok());
        let e = check_ready_fd(1_000_000).unwrap_err();
        assert!(e.contains("--ready-fd 1000000"), "{e}");
    }

    #[test]
    fn a_message_reaches_an_abstract_socket() {
        let name = format!("lsd-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let systemd = UnixDatagram::bind_addr(&addr).unwrap();
        let (socket, to) = systemd_socket(&format!("@{name}")).unwrap();
        socket.send_to_addr(b"READY=1\n", &to).unwrap();
        let mut buf = [0u8; 64];
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }

    #[test]
    fn abstract_and_path_names_parse() {
        let (_, a) = systemd_socket("@lsd-test").unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"lsd-test"[..]));
        let (_, p) = systemd_socket("/run/systemd/notify").unwrap();
        assert_eq!(
            p.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
    }
}
