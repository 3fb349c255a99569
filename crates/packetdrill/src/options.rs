//! getsockopt, setsockopt, ioctl and fcntl with Linux's numbers and value layouts. What the
//! shim cannot honour fails (ENOPROTOOPT for an option, ENOTTY for an ioctl, EINVAL for an
//! fcntl command) instead of being accepted and ignored.

use std::time::Duration;

use libc::c_int;
use lingerstack_core::{Request, StackError, TcpOptions};

use crate::driver::{Shim, State, errno_of};
use crate::errno::{Errno, Res, linux_errno};
use crate::sockets::info;

/// Smallest and largest socket buffer the shim gives the engine.
const MIN_BUFFER: usize = 2048;
const MAX_BUFFER: usize = lingerstack_core::config::MAX_BUFFER;

/// An int option value (Linux accepts a shorter value for none of these).
fn int_of(value: &[u8]) -> Res<c_int> {
    let bytes: [u8; 4] = value
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(Errno(libc::EINVAL))?;
    Ok(c_int::from_ne_bytes(bytes))
}

/// A `struct timeval` option value (SO_RCVTIMEO, SO_SNDTIMEO): None for zero, "no timeout".
fn timeout_of(value: &[u8]) -> Res<Option<Duration>> {
    let field = |at: usize| -> Res<i64> {
        let bytes: [u8; 8] = value
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or(Errno(libc::EINVAL))?;
        Ok(i64::from_ne_bytes(bytes))
    };
    let (sec, usec) = (field(0)?, field(8)?);
    if !(0..1_000_000).contains(&usec) {
        return Err(Errno(libc::EDOM));
    }
    // Linux takes a negative time as zero.
    let sec = u64::try_from(sec).unwrap_or(0);
    let t = Duration::from_secs(sec) + Duration::from_micros(usec as u64);
    Ok((!t.is_zero()).then_some(t))
}

fn timeval_bytes(t: Option<Duration>) -> Vec<u8> {
    let t = t.unwrap_or_default();
    let sec = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
    let mut v = sec.to_ne_bytes().to_vec();
    v.extend(i64::from(t.subsec_micros()).to_ne_bytes());
    v
}

fn int_bytes(v: c_int) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// A non-negative count as an int option value.
fn count_bytes(v: usize) -> Vec<u8> {
    int_bytes(c_int::try_from(v).unwrap_or(c_int::MAX))
}

/// The engine's options of a socket.
fn options(st: &mut State, fd: c_int) -> Res<TcpOptions> {
    let id = st.sockets.get(fd)?.id;
    Ok(info(st, id)?.options)
}

fn set_options(st: &mut State, fd: c_int, options: TcpOptions) -> Res<()> {
    let id = st.sockets.get(fd)?.id;
    errno_of(st.call_now(Request::SetOptions(id, options))).map(drop)
}

/// Tell the engine the socket's keep-alive settings (after a change of any of them).
fn apply_keep_alive(st: &mut State, fd: c_int) -> Res<()> {
    let sock = st.sockets.get(fd)?;
    let (id, keep_alive) = (sock.id, sock.keep_alive.engine());
    errno_of(st.call_now(Request::SetKeepAlive(id, keep_alive))).map(drop)
}

/// A keep-alive time or count in Linux's accepted range.
fn keep_alive_value(value: &[u8], max: c_int) -> Res<u32> {
    let v = int_of(value)?;
    if (1..=max).contains(&v) {
        Ok(v as u32)
    } else {
        Err(Errno(libc::EINVAL))
    }
}

impl Shim {
    /// setsockopt(2).
    pub(crate) fn setsockopt(&self, fd: c_int, level: c_int, name: c_int, value: &[u8]) -> Res<()> {
        let mut st = self.lock();
        let st = &mut *st;
        st.sockets.get(fd)?;
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_LINGER) => {
                let on = int_of(value)?;
                let seconds = int_of(value.get(4..).unwrap_or_default())?;
                st.sockets.get_mut(fd)?.linger = (on, seconds);
            }
            // lingerstack never refuses a bind because of TIME-WAIT connections on the port,
            // which is all SO_REUSEADDR changes for TCP on Linux: it is always in effect.
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => {
                st.sockets.get_mut(fd)?.reuse_addr = int_of(value)? != 0;
            }
            (libc::SOL_SOCKET, libc::SO_RCVBUF | libc::SO_SNDBUF) => {
                // The engine sizes a connection's buffers when it creates it (at connect, or
                // at listen for the connections a listener accepts): later the size could not
                // take effect, so it is refused rather than reported and ignored.
                let id = st.sockets.get(fd)?.id;
                if !matches!(info(st, id)?.state, "FRESH" | "BOUND") {
                    return Err(Errno(libc::EOPNOTSUPP));
                }
                let size = usize::try_from(int_of(value)?).unwrap_or(0);
                let size = size.clamp(MIN_BUFFER, MAX_BUFFER);
                let mut o = options(st, fd)?;
                if name == libc::SO_RCVBUF {
                    o.rx_buffer = size;
                } else {
                    o.tx_buffer = size;
                }
                set_options(st, fd, o)?;
            }
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => {
                st.sockets.get_mut(fd)?.recv_timeout = timeout_of(value)?;
            }
            (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => {
                st.sockets.get_mut(fd)?.send_timeout = timeout_of(value)?;
            }
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => {
                st.sockets.get_mut(fd)?.keep_alive.on = int_of(value)? != 0;
                apply_keep_alive(st, fd)?;
            }
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => {
                st.sockets.get_mut(fd)?.keep_alive.idle = keep_alive_value(value, 32767)?;
                apply_keep_alive(st, fd)?;
            }
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => {
                st.sockets.get_mut(fd)?.keep_alive.interval = keep_alive_value(value, 32767)?;
                apply_keep_alive(st, fd)?;
            }
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => {
                st.sockets.get_mut(fd)?.keep_alive.count = keep_alive_value(value, 127)?;
                apply_keep_alive(st, fd)?;
            }
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => {
                let mut o = options(st, fd)?;
                o.nodelay = int_of(value)? != 0;
                set_options(st, fd, o)?;
            }
            // Milliseconds the peer may leave sent data unacknowledged before the connection
            // is dropped: the engine's per-socket timeout (0: none), and the deadline of a
            // background close (sockets.rs, close_mode).
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => {
                let ms = int_of(value)?;
                let ms = u64::try_from(ms).map_err(|_| Errno(libc::EINVAL))?;
                let mut o = options(st, fd)?;
                o.timeout = (ms > 0).then(|| Duration::from_millis(ms));
                set_options(st, fd, o)?;
            }
            _ => return Err(Errno(libc::ENOPROTOOPT)),
        }
        Ok(())
    }

    /// getsockopt(2): the value's bytes (the caller copies what fits).
    pub(crate) fn getsockopt(&self, fd: c_int, level: c_int, name: c_int) -> Res<Vec<u8>> {
        let mut st = self.lock();
        let st = &mut *st;
        let sock = st.sockets.get(fd)?.clone();
        let flag = |b: bool| int_bytes(c_int::from(b));
        Ok(match (level, name) {
            (libc::SOL_SOCKET, libc::SO_LINGER) => {
                let mut v = int_bytes(sock.linger.0);
                v.extend(int_bytes(sock.linger.1));
                v
            }
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => flag(sock.reuse_addr),
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => timeval_bytes(sock.recv_timeout),
            (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => timeval_bytes(sock.send_timeout),
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => flag(sock.keep_alive.on),
            (libc::SOL_SOCKET, libc::SO_TYPE) => int_bytes(libc::SOCK_STREAM),
            (libc::SOL_SOCKET, libc::SO_DOMAIN) => int_bytes(sock.domain),
            (libc::SOL_SOCKET, libc::SO_PROTOCOL) => int_bytes(libc::IPPROTO_TCP),
            (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => flag(sock.listening),
            // Linux reports twice the size asked for (the kernel's bookkeeping share).
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => count_bytes(options(st, fd)?.rx_buffer * 2),
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => count_bytes(options(st, fd)?.tx_buffer * 2),
            (libc::SOL_SOCKET, libc::SO_ERROR) => int_bytes(self.take_error(st, fd)?),
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => flag(options(st, fd)?.nodelay),
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => count_bytes(sock.keep_alive.idle as usize),
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => {
                count_bytes(sock.keep_alive.interval as usize)
            }
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => count_bytes(sock.keep_alive.count as usize),
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => {
                let ms = options(st, fd)?.timeout.map_or(0, |t| t.as_millis());
                count_bytes(usize::try_from(ms).unwrap_or(usize::MAX))
            }
            _ => return Err(Errno(libc::ENOPROTOOPT)),
        })
    }

    /// SO_ERROR: the socket's pending error, reported once (Linux clears it when read).
    fn take_error(&self, st: &mut State, fd: c_int) -> Res<c_int> {
        let id = st.sockets.get(fd)?.id;
        let error = info(st, id)?
            .ready
            .error
            .filter(|&e| e != StackError::WouldBlock);
        let sock = st.sockets.get_mut(fd)?;
        if error.is_none() || error == sock.error_reported {
            return Ok(0);
        }
        sock.error_reported = error;
        Ok(error.map_or(0, linux_errno))
    }

    /// ioctl(2): FIONBIO, FIONREAD (= SIOCINQ) and TIOCOUTQ (= SIOCOUTQ), each with an int.
    pub(crate) fn ioctl(&self, fd: c_int, request: u64, arg: Option<&mut c_int>) -> Res<()> {
        let mut st = self.lock();
        let st = &mut *st;
        let sock = st.sockets.get(fd)?.clone();
        let request = request as libc::Ioctl;
        let arg = match request {
            libc::FIONBIO | libc::FIONREAD | libc::TIOCOUTQ => arg.ok_or(Errno(libc::EFAULT))?,
            _ => return Err(Errno(libc::ENOTTY)),
        };
        match request {
            libc::FIONBIO => st.sockets.get_mut(fd)?.nonblocking = *arg != 0,
            _ if sock.listening => return Err(Errno(libc::EINVAL)),
            libc::FIONREAD => *arg = count_of(info(st, sock.id)?.recv_queue),
            _ => *arg = count_of(info(st, sock.id)?.send_queue),
        }
        Ok(())
    }

    /// fcntl(2): the status flags (O_NONBLOCK) and the descriptor flags (FD_CLOEXEC).
    pub(crate) fn fcntl(&self, fd: c_int, cmd: c_int, arg: i64) -> Res<c_int> {
        let mut st = self.lock();
        let sock = st.sockets.get_mut(fd)?;
        match cmd {
            libc::F_GETFL => Ok(libc::O_RDWR
                | if sock.nonblocking {
                    libc::O_NONBLOCK
                } else {
                    0
                }),
            libc::F_SETFL => {
                sock.nonblocking = arg & i64::from(libc::O_NONBLOCK) != 0;
                Ok(0)
            }
            libc::F_GETFD => Ok(if sock.cloexec { libc::FD_CLOEXEC } else { 0 }),
            libc::F_SETFD => {
                sock.cloexec = arg & i64::from(libc::FD_CLOEXEC) != 0;
                Ok(0)
            }
            _ => Err(Errno(libc::EINVAL)),
        }
    }
}

fn count_of(n: usize) -> c_int {
    c_int::try_from(n).unwrap_or(c_int::MAX)
}
