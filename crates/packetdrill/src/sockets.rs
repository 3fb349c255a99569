//! The socket calls with Linux's face (errno values, flags, `struct linger {int; int}`) on
//! lingerstack's engine, and the descriptor table.
//!
//! Every socket is a real kernel descriptor (an empty memfd) so that packetdrill may close the
//! ones a script left open with libc's `close`. The table remembers each memfd's inode, so the
//! shim's teardown closes only descriptors that are still its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use libc::c_int;
use lingerstack_core::{
    CloseMode, Done, KeepAlive, Request, Shutdown, SocketId, SocketInfo, StackError, Wait,
};

use crate::driver::{Shim, State, errno_of};
use crate::errno::{Errno, Res};
use crate::ready::revents;

/// Linux's keep-alive settings of a socket (the engine's `KeepAlive` when on).
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeepAliveSettings {
    pub(crate) on: bool,
    /// TCP_KEEPIDLE, seconds (Linux's default: 7200).
    pub(crate) idle: u32,
    /// TCP_KEEPINTVL, seconds (75).
    pub(crate) interval: u32,
    /// TCP_KEEPCNT (9).
    pub(crate) count: u32,
}

impl Default for KeepAliveSettings {
    fn default() -> Self {
        KeepAliveSettings {
            on: false,
            idle: 7200,
            interval: 75,
            count: 9,
        }
    }
}

impl KeepAliveSettings {
    /// What the engine is told: keep-alive with these times, or none.
    pub(crate) fn engine(&self) -> Option<KeepAlive> {
        self.on.then(|| KeepAlive {
            idle: Duration::from_secs(u64::from(self.idle)),
            interval: Duration::from_secs(u64::from(self.interval)),
            probes: self.count,
        })
    }
}

/// One descriptor: the engine's socket and what Linux keeps per socket that the engine does not.
#[derive(Clone, Debug)]
pub(crate) struct Sock {
    pub(crate) id: SocketId,
    /// AF_INET or AF_INET6: how addresses are written back.
    pub(crate) domain: c_int,
    /// The memfd's identity (device, inode).
    identity: (u64, u64),
    pub(crate) nonblocking: bool,
    pub(crate) cloexec: bool,
    /// SO_LINGER as Linux's `struct linger`: on/off, seconds.
    pub(crate) linger: (c_int, c_int),
    pub(crate) reuse_addr: bool,
    pub(crate) keep_alive: KeepAliveSettings,
    /// SO_RCVTIMEO (recv, accept) and SO_SNDTIMEO (send); None: wait for ever.
    pub(crate) recv_timeout: Option<Duration>,
    pub(crate) send_timeout: Option<Duration>,
    pub(crate) listening: bool,
    /// shutdown(SHUT_WR) was called: a lingering close then finishes in the background.
    pub(crate) send_shut: bool,
    /// The pending error SO_ERROR last reported (Linux clears it once read).
    pub(crate) error_reported: Option<StackError>,
    /// A close is under way on some thread.
    closing: bool,
}

/// The descriptor table.
#[derive(Default)]
pub(crate) struct Sockets {
    by_fd: HashMap<c_int, Sock>,
}

/// A fresh kernel descriptor and its identity.
fn new_descriptor() -> Res<(c_int, (u64, u64))> {
    // SAFETY: the name is a valid C string; memfd_create has no other preconditions.
    let fd = unsafe { libc::memfd_create(c"lingerstack-socket".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EMFILE),
        ));
    }
    match identity(fd) {
        Some(id) => Ok((fd, id)),
        None => {
            // SAFETY: `fd` was just opened here and is owned by nobody else.
            unsafe { libc::close(fd) };
            Err(Errno(libc::EMFILE))
        }
    }
}

/// (device, inode) of an open descriptor.
fn identity(fd: c_int) -> Option<(u64, u64)> {
    // SAFETY: fstat writes into the zeroed struct we own; a bad fd makes it fail, nothing more.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
    ok.then_some((st.st_dev, st.st_ino))
}

impl Sockets {
    fn insert(&mut self, id: SocketId, domain: c_int) -> Res<c_int> {
        let (fd, identity) = new_descriptor()?;
        self.by_fd.insert(
            fd,
            Sock {
                id,
                domain,
                identity,
                nonblocking: false,
                cloexec: false,
                linger: (0, 0),
                reuse_addr: false,
                keep_alive: KeepAliveSettings::default(),
                recv_timeout: None,
                send_timeout: None,
                listening: false,
                send_shut: false,
                error_reported: None,
                closing: false,
            },
        );
        Ok(fd)
    }

    /// The socket behind `fd`, or EBADF.
    pub(crate) fn get(&self, fd: c_int) -> Res<&Sock> {
        self.by_fd
            .get(&fd)
            .filter(|s| !s.closing)
            .ok_or(Errno(libc::EBADF))
    }

    pub(crate) fn get_mut(&mut self, fd: c_int) -> Res<&mut Sock> {
        self.by_fd
            .get_mut(&fd)
            .filter(|s| !s.closing)
            .ok_or(Errno(libc::EBADF))
    }

    /// Forget `fd` and close its descriptor.
    fn remove(&mut self, fd: c_int) {
        if self.by_fd.remove(&fd).is_some() {
            // SAFETY: the descriptor is the table's own memfd, closed exactly once here.
            unsafe { libc::close(fd) };
        }
    }
}

impl Drop for Sockets {
    /// Close the descriptors still the shim's. packetdrill closes the ones a script left open
    /// with libc's close before it frees the shim, and may have reused their numbers since: a
    /// number whose inode is no longer the memfd's belongs to someone else now.
    fn drop(&mut self) {
        for (fd, sock) in self.by_fd.drain() {
            if identity(fd) == Some(sock.identity) {
                // SAFETY: still our memfd (same device and inode), closed once.
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// How long a call on `sock` may wait, given the call's flags and the socket's timeout for
/// its direction.
fn wait_of(sock: &Sock, flags: c_int, timeout: Option<Duration>) -> Wait {
    if sock.nonblocking || flags & libc::MSG_DONTWAIT != 0 {
        Wait::No
    } else {
        Wait::Block(timeout)
    }
}

/// A call that ran out of its SO_RCVTIMEO/SO_SNDTIMEO fails with EAGAIN on Linux.
fn timed_out_is_again(e: Errno, timeout: Option<Duration>) -> Errno {
    if timeout.is_some() && e == Errno(libc::ETIMEDOUT) {
        Errno(libc::EAGAIN)
    } else {
        e
    }
}

/// lingerstack's close contract from the linger setting (Windows' table, not Linux's): the
/// default closes gracefully in the background; {1,0} resets; {1,N} on a blocking socket
/// waits up to N seconds and then resets; {1,N} on a non-blocking socket that cannot finish at
/// once fails with EWOULDBLOCK and changes nothing, unless shutdown(SHUT_WR) already started
/// the close, which then finishes in the background with an N-second deadline.
///
/// A background close is reset at the engine's close deadline, or after `user_timeout`
/// (TCP_USER_TIMEOUT) when the socket has one: Linux, too, gives up on an unacknowledged FIN
/// after the user timeout.
fn close_mode(sock: &Sock, user_timeout: Option<Duration>) -> CloseMode {
    let (on, seconds) = sock.linger;
    // Windows keeps l_linger in a u_short.
    let seconds = Duration::from_secs(seconds.clamp(0, c_int::from(u16::MAX)) as u64);
    match (on != 0, seconds.is_zero()) {
        (false, _) => CloseMode::Graceful {
            deadline: user_timeout,
        },
        (true, true) => CloseMode::Abort,
        (true, false) if sock.send_shut && sock.nonblocking => CloseMode::Graceful {
            deadline: Some(seconds),
        },
        (true, false) if sock.nonblocking => CloseMode::LingerNonBlocking {
            deadline: user_timeout,
        },
        (true, false) => CloseMode::Linger { timeout: seconds },
    }
}

impl Shim {
    /// socket(2): TCP over IPv4 or IPv6 only.
    pub(crate) fn socket(&self, domain: c_int, ty: c_int, protocol: c_int) -> Res<c_int> {
        if domain != libc::AF_INET && domain != libc::AF_INET6 {
            return Err(Errno(libc::EAFNOSUPPORT));
        }
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        if ty & !flags != libc::SOCK_STREAM || (protocol != 0 && protocol != libc::IPPROTO_TCP) {
            return Err(Errno(libc::EPROTONOSUPPORT));
        }
        let mut st = self.lock();
        let Done::Socket(id) = errno_of(st.call_now(Request::Open))? else {
            return Err(Errno(libc::EIO));
        };
        let fd = match st.sockets.insert(id, domain) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = st.call_now(Request::Close(id, CloseMode::Abort));
                return Err(e);
            }
        };
        let sock = st.sockets.get_mut(fd)?;
        sock.nonblocking = ty & libc::SOCK_NONBLOCK != 0;
        sock.cloexec = ty & libc::SOCK_CLOEXEC != 0;
        Ok(fd)
    }

    /// bind(2). Without `local=` in the flags, the first address bound becomes the stack's own.
    pub(crate) fn bind(&self, fd: c_int, addr: SocketAddr) -> Res<()> {
        let mut st = self.lock();
        let id = st.sockets.get(fd)?.id;
        if !addr.ip().is_unspecified() {
            st.learn_local(addr.ip());
        }
        errno_of(st.call_now(Request::Bind(id, addr))).map(drop)
    }

    /// listen(2).
    pub(crate) fn listen(&self, fd: c_int, backlog: c_int) -> Res<()> {
        let mut st = self.lock();
        let id = st.sockets.get(fd)?.id;
        let backlog = usize::try_from(backlog).unwrap_or(0).max(1);
        errno_of(st.call_now(Request::Listen(id, backlog)))?;
        st.sockets.get_mut(fd)?.listening = true;
        Ok(())
    }

    /// accept(2): the new descriptor, its peer and the domain to write the peer in.
    pub(crate) fn accept(&self, fd: c_int) -> Res<(c_int, SocketAddr, c_int)> {
        let st = self.lock();
        let listener = st.sockets.get(fd)?.clone();
        let timeout = listener.recv_timeout;
        let request = Request::Accept(listener.id, wait_of(&listener, 0, timeout));
        let (mut st, outcome) = self.call(st, request);
        let outcome = errno_of(outcome).map_err(|e| timed_out_is_again(e, timeout));
        let Done::Accepted(id, peer) = outcome? else {
            return Err(Errno(libc::EIO));
        };
        let new_fd = match st.sockets.insert(id, listener.domain) {
            Ok(new_fd) => new_fd,
            Err(e) => {
                let _ = st.call_now(Request::Close(id, CloseMode::Abort));
                return Err(e);
            }
        };
        // Inherited from the listener, as on Linux: linger, keep-alive and the timeouts
        // (O_NONBLOCK is not).
        let sock = st.sockets.get_mut(new_fd)?;
        sock.linger = listener.linger;
        sock.keep_alive = listener.keep_alive;
        sock.recv_timeout = listener.recv_timeout;
        sock.send_timeout = listener.send_timeout;
        Ok((new_fd, peer, listener.domain))
    }

    /// connect(2): EINPROGRESS for a non-blocking socket.
    pub(crate) fn connect(&self, fd: c_int, addr: SocketAddr) -> Res<()> {
        let mut st = self.lock();
        let sock = st.sockets.get(fd)?.clone();
        st.learn_peer(addr.ip());
        let wait = wait_of(&sock, 0, None);
        let (_st, outcome) = self.call(st, Request::Connect(sock.id, addr, wait));
        match errno_of(outcome) {
            Err(Errno(libc::EAGAIN)) => Err(Errno(libc::EINPROGRESS)),
            other => other.map(drop),
        }
    }

    /// recv(2) and the reads: MSG_PEEK and MSG_DONTWAIT are understood; other flags fail with
    /// EOPNOTSUPP rather than being ignored.
    pub(crate) fn recv(&self, fd: c_int, buf: &mut [u8], flags: c_int) -> Res<usize> {
        let known = libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        if flags & !known != 0 {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        let st = self.lock();
        let sock = st.sockets.get(fd)?.clone();
        if buf.is_empty() {
            return Ok(0);
        }
        let timeout = sock.recv_timeout;
        let wait = wait_of(&sock, flags, timeout);
        let request = if flags & libc::MSG_PEEK != 0 {
            Request::Peek(sock.id, buf.len(), wait)
        } else {
            Request::Recv(sock.id, buf.len(), wait)
        };
        let (_st, outcome) = self.call(st, request);
        let outcome = errno_of(outcome).map_err(|e| timed_out_is_again(e, timeout));
        let Done::Received(bytes) = outcome? else {
            return Err(Errno(libc::EIO));
        };
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }

    /// send(2) and the writes: a blocking send returns once everything is queued. No SIGPIPE
    /// is ever raised (as if MSG_NOSIGNAL were always given); the error is EPIPE.
    pub(crate) fn send(&self, fd: c_int, data: &[u8], flags: c_int) -> Res<usize> {
        let known = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        if flags & !known != 0 {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        let st = self.lock();
        let sock = st.sockets.get(fd)?.clone();
        if data.is_empty() {
            return Ok(0);
        }
        let timeout = sock.send_timeout;
        let request = Request::Send(sock.id, data.to_vec(), wait_of(&sock, flags, timeout));
        let (_st, outcome) = self.call(st, request);
        match outcome {
            Ok(Done::Sent(n)) => Ok(n),
            Ok(_) => Err(Errno(libc::EIO)),
            // Part was queued before the failure: Linux returns that count.
            Err(f) if f.bytes > 0 => Ok(f.bytes),
            Err(f) => Err(timed_out_is_again(f.error.into(), timeout)),
        }
    }

    /// close(2) with lingerstack's close contract ([`close_mode`]). A non-blocking lingering
    /// close that cannot finish fails with EWOULDBLOCK and leaves the descriptor open.
    pub(crate) fn close(&self, fd: c_int) -> Res<()> {
        let mut st = self.lock();
        let sock = st.sockets.get_mut(fd)?;
        sock.closing = true;
        let sock = sock.clone();
        let user_timeout = info(&mut st, sock.id).ok().and_then(|i| i.options.timeout);
        let mode = close_mode(&sock, user_timeout);
        let (mut st, outcome) = self.call(st, Request::Close(sock.id, mode));
        match outcome {
            Err(f) if f.error == StackError::WouldBlock => {
                if let Some(s) = st.sockets.by_fd.get_mut(&fd) {
                    s.closing = false;
                }
                Err(Errno(libc::EWOULDBLOCK))
            }
            // Closed, one way or the other: the descriptor goes.
            _ => {
                st.ready_times.forget(sock.id);
                st.sockets.remove(fd);
                self.notify();
                Ok(())
            }
        }
    }

    /// shutdown(2).
    pub(crate) fn shutdown(&self, fd: c_int, how: c_int) -> Res<()> {
        let how = match how {
            libc::SHUT_RD => Shutdown::Read,
            libc::SHUT_WR => Shutdown::Write,
            libc::SHUT_RDWR => Shutdown::Both,
            _ => return Err(Errno(libc::EINVAL)),
        };
        let mut st = self.lock();
        let id = st.sockets.get(fd)?.id;
        errno_of(st.call_now(Request::Shutdown(id, how)))?;
        if how != Shutdown::Read {
            st.sockets.get_mut(fd)?.send_shut = true;
        }
        Ok(())
    }

    /// poll(2) on the shim's descriptors; the timeout is virtual milliseconds.
    ///
    /// A poll that slept may wake after the main thread has moved the clock past its timeout
    /// and changed its sockets since: it returns what became ready before its timeout, ending
    /// when it did, or times out at its timeout if nothing did.
    pub(crate) fn poll(&self, fds: &mut [libc::pollfd], timeout_ms: c_int) -> Res<c_int> {
        let mut st = self.lock();
        let start = st.now();
        let deadline = (timeout_ms >= 0).then(|| start + i64::from(timeout_ms) * 1000);
        let token = deadline.map(|d| self.add_deadline(&mut st, d));
        let mut slept = false;
        let (ready, end) = loop {
            let ready = fill_revents(&mut st, fds);
            // When the first of the ready descriptors became ready.
            let became = slept.then(|| became_ready(&st, fds)).flatten();
            match deadline {
                Some(d) if became.is_some_and(|t| t > d) || (ready == 0 && st.now() >= d) => {
                    fds.iter_mut().for_each(|p| p.revents = 0);
                    break (0, d);
                }
                _ if ready > 0 => break (ready, became.unwrap_or(start).max(start)),
                _ => {}
            }
            st = self.sleep(st, deadline);
            slept = true;
        };
        if let Some(token) = token {
            st.forget_deadline(token);
        }
        if slept {
            self.end_call_at(end);
        }
        Ok(ready)
    }
}

/// The earliest virtual time one of the entries' reported bits turned on.
fn became_ready(st: &State, fds: &[libc::pollfd]) -> Option<i64> {
    fds.iter()
        .filter(|p| p.revents != 0)
        .filter_map(|p| {
            let id = st.sockets.get(p.fd).ok()?.id;
            st.ready_times.since(id, p.revents)
        })
        .min()
}

/// The engine's view of a socket.
pub(crate) fn info(st: &mut State, id: SocketId) -> Res<SocketInfo> {
    match errno_of(st.call_now(Request::Info(id)))? {
        Done::Info(info) => Ok(*info),
        _ => Err(Errno(libc::EIO)),
    }
}

/// Set every entry's revents; the number of entries with any.
fn fill_revents(st: &mut State, fds: &mut [libc::pollfd]) -> c_int {
    let mut ready = 0;
    for p in fds.iter_mut() {
        p.revents = 0;
        if p.fd < 0 {
            continue;
        }
        let id = st.sockets.get(p.fd).map(|s| s.id);
        let ev = match id.and_then(|id| info(st, id)) {
            Ok(info) => revents(&info.ready),
            Err(_) => libc::POLLNVAL,
        };
        p.revents = ev & (p.events | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL);
        if p.revents != 0 {
            ready += 1;
        }
    }
    ready
}
