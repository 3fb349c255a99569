//! lingerstack-packetdrill: a shared object that lets [packetdrill] drive lingerstack.
//!
//! packetdrill pins TCP behaviour on the wire script by script: it injects packets, checks the
//! packets a stack sends and their timing, and makes socket calls, all against a scripted
//! clock. In its shared-object mode it loads a library that stands in for the kernel. This
//! crate builds that library, `liblingerstack_packetdrill.so`, on lingerstack's sans-I/O core:
//!
//! - **Packets** are bare IP (smoltcp's IP medium, no link layer). `netdev_send` feeds one
//!   inbound packet and runs the engine until it settles before returning; `netdev_receive`
//!   hands out the stack's outgoing packets oldest first, each with its virtual send time.
//!   When none is waiting it moves virtual time on to the engine's next timer, so a
//!   retransmission or a linger timeout leaves exactly when it is due.
//! - **Time** is a virtual clock (`gettimeofday`): it runs at real pace by itself and jumps
//!   forward on `usleep` and when `netdev_receive` skips to a timer. A script of seconds runs in
//!   milliseconds of real time. No thread of the shim's own races the script: the engine runs
//!   only inside packetdrill's calls.
//! - **Threads**: packetdrill makes calls with a time range (`0...2 close(3)`) on a second
//!   thread. A blocking call sleeps on a condition variable (the thread shows state `S`, which
//!   packetdrill waits for) and is woken by whatever answers it: a packet injected by the main
//!   thread, or a timer.
//! - **Descriptors** are real kernel descriptors (empty memfds), so packetdrill may close the
//!   ones a script left open with libc's `close`.
//!
//! # Linux at the API, lingerstack's close contract
//!
//! The calls speak Linux: Linux errno values (set through libc's errno), `struct linger
//! {int l_onoff; int l_linger}`, SO_REUSEADDR, SO_RCVBUF and SO_SNDBUF (before connect or
//! listen, the only time the engine can size the buffers; reported doubled, as Linux does), SO_KEEPALIVE with TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT, TCP_NODELAY,
//! TCP_USER_TIMEOUT (the engine's per-connection timeout, and the deadline of a background
//! close), SO_RCVTIMEO and SO_SNDTIMEO (EAGAIN when they run out), SO_ERROR, FIONBIO,
//! O_NONBLOCK through fcntl, FIONREAD (= SIOCINQ) and TIOCOUTQ (= SIOCOUTQ), poll. What the
//! shim cannot honour fails
//! instead of being ignored: other options with ENOPROTOOPT, other ioctls with ENOTTY, unknown
//! send or receive flags with EOPNOTSUPP, epoll, pipe and splice with ENOSYS, sockets other
//! than TCP with EPROTONOSUPPORT. No signal is ever raised (a write after the connection is
//! gone fails with EPIPE, as with MSG_NOSIGNAL).
//!
//! **close() follows lingerstack's close contract, which is Windows' linger table, not
//! Linux's**; that is what the project's scripts pin:
//!
//! | SO_LINGER | close() |
//! |---|---|
//! | off (default) | returns at once; queued data, then FIN, in the background (bounded by the close deadline) |
//! | {1, 0} | RST at once, queued data discarded |
//! | {1, N}, blocking socket | waits until every byte and the FIN are acknowledged, at most N s; then RST and returns 0 |
//! | {1, N}, non-blocking socket that cannot finish at once | fails with EWOULDBLOCK, sends nothing, the descriptor stays open |
//! | any, unread data at close | RST |
//!
//! # Loading it
//!
//! ```text
//! cargo build --release -p lingerstack-packetdrill
//! packetdrill --so_filename=$PWD/target/release/liblingerstack_packetdrill.so \
//!     --so_flags=local=192.168.0.1,remote=192.0.2.1 \
//!     --local_ip=192.168.0.1 --remote_ip=192.0.2.1 script.pkt
//! ```
//!
//! `--so_flags` is a comma-separated list of `key=value`:
//!
//! - `local=IP`: the stack's address (IPv4 or IPv6);
//! - `remote=IP`: packetdrill's address, the way out for everything not local;
//! - `mtu=N`: the link's IP MTU, 1500 when absent.
//!
//! An unknown key or a bad value is reported on standard error and makes every later call
//! fail (the first clock read already), so a mistyped flag cannot pass a script. Without
//! flags the shim takes its own address from the first bind or the first inbound packet, and
//! packetdrill's from the first connect or inbound packet. packetdrill binds and connects to
//! port 8080 of its own addresses whatever the script says, so the flags should name the same
//! addresses as packetdrill's `--local_ip`/`--remote_ip`.
//!
//! The library exports one symbol, `packetdrill_interface_init`: packetdrill loads it with
//! `RTLD_DEEPBIND`, under which any libc name the library exported would capture the library's
//! own libc calls. Each init builds a fresh engine; `free` releases it with its descriptors, so
//! scripts run one after another in one process share nothing.
//!
//! What never reaches the shim: packetdrill's `%{ }%` blocks read TCP_INFO with libc's
//! getsockopt on the descriptor (a memfd here, so they fail), and a script's shell commands
//! run on the host (run packetdrill in a network namespace of its own).
//!
//! [packetdrill]: https://github.com/google/packetdrill

mod addr;
mod clock;
mod driver;
mod errno;
mod flags;
mod options;
mod ready;
mod sockets;
mod table;

use std::ffi::{CStr, c_char};
use std::panic::catch_unwind;

pub use table::Interface;

/// packetdrill's entry point: fill `ifc` for one script. `flags` is `--so_flags` verbatim,
/// or null without it.
///
/// # Safety
///
/// `flags` is null or a NUL-terminated string; `ifc` points to a writable
/// `struct packetdrill_interface`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn packetdrill_interface_init(flags: *const c_char, ifc: *mut Interface) {
    if ifc.is_null() {
        return;
    }
    let text = if flags.is_null() {
        None
    } else {
        // SAFETY: a non-null `flags` is a NUL-terminated string (packetdrill's argv).
        Some(
            unsafe { CStr::from_ptr(flags) }
                .to_string_lossy()
                .into_owned(),
        )
    };
    let shim = catch_unwind(|| {
        let flags = flags::Flags::parse(text.as_deref())
            .map_err(|e| format!("bad --so_flags `{}`: {e}", text.as_deref().unwrap_or("")))?;
        driver::Shim::new(&flags).map_err(|e| format!("cannot start the engine: {e}"))
    })
    .unwrap_or_else(|_| Err("cannot start the engine: it panicked".into()));
    if let Err(e) = &shim {
        eprintln!("lingerstack-packetdrill: {e}; every call will fail");
    }
    // SAFETY: `ifc` is valid and writable (checked non-null; packetdrill's own struct).
    table::fill(unsafe { &mut *ifc }, shim);
}
