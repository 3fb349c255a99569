//! Linux errno values for what the engine reports, and how a call returns one.

use libc::c_int;
use lingerstack_core::StackError;

/// A failed call: the Linux errno it sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Errno(pub(crate) c_int);

/// What a call of the table returns: a value, or an errno.
pub(crate) type Res<T> = Result<T, Errno>;

impl From<StackError> for Errno {
    fn from(e: StackError) -> Errno {
        Errno(linux_errno(e))
    }
}

/// The errno Linux gives for the situation the engine names.
pub(crate) fn linux_errno(e: StackError) -> c_int {
    use StackError as E;
    match e {
        E::WouldBlock => libc::EAGAIN,
        E::NotSocket => libc::EBADF,
        E::InvalidState | E::InvalidInput => libc::EINVAL,
        E::AddrInUse => libc::EADDRINUSE,
        E::AddrNotAvail => libc::EADDRNOTAVAIL,
        E::AfNotSupported => libc::EAFNOSUPPORT,
        E::ConnRefused => libc::ECONNREFUSED,
        E::ConnReset => libc::ECONNRESET,
        E::ConnAborted => libc::ECONNABORTED,
        // Linux reports a connection keep-alive or the user timeout gave up on as ETIMEDOUT.
        E::NetReset | E::TimedOut => libc::ETIMEDOUT,
        E::NotConnected => libc::ENOTCONN,
        E::IsConnected => libc::EISCONN,
        E::Already => libc::EALREADY,
        E::Shutdown => libc::EPIPE,
        E::Interrupted | E::OperationAborted => libc::EINTR,
        E::NetworkDown => libc::ENETDOWN,
        E::NoBuffers => libc::ENOBUFS,
    }
}

/// Set the calling thread's libc errno (packetdrill reads it right after the call).
pub(crate) fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns the calling thread's errno slot, valid for the thread's
    // life; the shim and packetdrill share the one libc of the process.
    unsafe { *libc::__errno_location() = e };
}

/// The C return of a call: the value, or -1 with errno set.
pub(crate) fn ret<T: From<i8>>(r: Res<T>) -> T {
    match r {
        Ok(v) => v,
        Err(Errno(e)) => {
            set_errno(e);
            T::from(-1)
        }
    }
}
