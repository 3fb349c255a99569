//! Errors the engine reports. The facade maps each to its Winsock code.

use std::fmt;

/// Why a socket call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StackError {
    /// A non-blocking call could not complete now.
    WouldBlock,
    /// The socket id is unknown or already closed.
    NotSocket,
    /// The call does not fit the socket's state (listen on a connected socket, ...).
    InvalidState,
    /// A bad argument: zero port, unspecified address, bad length.
    InvalidInput,
    /// The local port is already bound.
    AddrInUse,
    /// The address is not one of the stack's, or no route or source address exists for it.
    AddrNotAvail,
    /// Address family not configured on this stack (IPv6 on an IPv4-only interface).
    AfNotSupported,
    /// The peer refused the connection (RST to our SYN).
    ConnRefused,
    /// The peer reset the connection.
    ConnReset,
    /// The connection was aborted locally (abort, unread data, linger timeout, close deadline).
    ConnAborted,
    /// Keep-alive found the peer gone while this call was in progress (WSAENETRESET).
    NetReset,
    /// A timed call ran out of time.
    TimedOut,
    /// The socket is not connected.
    NotConnected,
    /// The socket is already connected.
    IsConnected,
    /// A non-blocking connect is already under way.
    Already,
    /// The direction was shut down.
    Shutdown,
    /// A blocking call was interrupted by a close of its socket.
    Interrupted,
    /// An overlapped operation was aborted by a close of its socket.
    OperationAborted,
    /// The link failed or the engine stopped.
    NetworkDown,
    /// No ports or buffers left.
    NoBuffers,
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::WouldBlock => "operation would block",
            Self::NotSocket => "not a socket (unknown or closed)",
            Self::InvalidState => "invalid in the socket's state",
            Self::InvalidInput => "invalid argument",
            Self::AddrInUse => "address already in use",
            Self::AddrNotAvail => "address not available",
            Self::AfNotSupported => "address family not configured",
            Self::ConnRefused => "connection refused",
            Self::ConnReset => "connection reset by peer",
            Self::ConnAborted => "connection aborted",
            Self::NetReset => "connection broken by keep-alive while the call was in progress",
            Self::TimedOut => "timed out",
            Self::NotConnected => "not connected",
            Self::IsConnected => "already connected",
            Self::Already => "operation already in progress",
            Self::Shutdown => "socket shut down",
            Self::Interrupted => "interrupted by close",
            Self::OperationAborted => "operation aborted by close",
            Self::NetworkDown => "network is down",
            Self::NoBuffers => "no buffer space or ports available",
        };
        f.write_str(text)
    }
}

impl std::error::Error for StackError {}

/// The [`std::io::ErrorKind`] a std user matches on; the [`StackError`] itself rides along as
/// the error's payload (`io::Error::get_ref()` and `downcast_ref::<StackError>()`).
impl From<StackError> for std::io::Error {
    fn from(e: StackError) -> Self {
        std::io::Error::new(e.io_kind(), e)
    }
}

impl StackError {
    /// The closest [`std::io::ErrorKind`].
    pub fn io_kind(self) -> std::io::ErrorKind {
        use std::io::ErrorKind as K;
        match self {
            Self::WouldBlock => K::WouldBlock,
            Self::NotSocket | Self::InvalidState | Self::InvalidInput => K::InvalidInput,
            Self::IsConnected | Self::Already => K::InvalidInput,
            Self::AddrInUse => K::AddrInUse,
            Self::AddrNotAvail | Self::AfNotSupported => K::AddrNotAvailable,
            Self::ConnRefused => K::ConnectionRefused,
            Self::ConnReset => K::ConnectionReset,
            Self::ConnAborted => K::ConnectionAborted,
            // Keep-alive gave up on the peer: Linux reports that as ETIMEDOUT.
            Self::TimedOut | Self::NetReset => K::TimedOut,
            Self::NotConnected => K::NotConnected,
            // Writing after shutdown(Write) is EPIPE on Linux.
            Self::Shutdown => K::BrokenPipe,
            Self::Interrupted | Self::OperationAborted => K::Interrupted,
            Self::NetworkDown => K::NetworkDown,
            Self::NoBuffers => K::OutOfMemory,
        }
    }
}
