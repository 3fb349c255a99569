//! [`WsaError`]: a Winsock error code, and how engine errors map onto them.

use std::fmt;

use lingerstack_stack::StackError;

use crate::consts::*;

/// A Winsock error code (the value `WSAGetLastError` would return).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WsaError(pub i32);

impl WsaError {
    /// `WSAEINTR`.
    pub const INTR: WsaError = WsaError(WSAEINTR);
    /// `WSAEFAULT`.
    pub const FAULT: WsaError = WsaError(WSAEFAULT);
    /// `WSAEINVAL`.
    pub const INVAL: WsaError = WsaError(WSAEINVAL);
    /// `WSAEWOULDBLOCK`.
    pub const WOULDBLOCK: WsaError = WsaError(WSAEWOULDBLOCK);
    /// `WSAEINPROGRESS`.
    pub const INPROGRESS: WsaError = WsaError(WSAEINPROGRESS);
    /// `WSAENOTSOCK`.
    pub const NOTSOCK: WsaError = WsaError(WSAENOTSOCK);
    /// `WSAENOPROTOOPT`.
    pub const NOPROTOOPT: WsaError = WsaError(WSAENOPROTOOPT);
    /// `WSAEOPNOTSUPP`.
    pub const OPNOTSUPP: WsaError = WsaError(WSAEOPNOTSUPP);
    /// `WSAEAFNOSUPPORT`.
    pub const AFNOSUPPORT: WsaError = WsaError(WSAEAFNOSUPPORT);
    /// `WSAENETDOWN`.
    pub const NETDOWN: WsaError = WsaError(WSAENETDOWN);
    /// `WSAENETRESET`.
    pub const NETRESET: WsaError = WsaError(WSAENETRESET);
    /// `WSAENOTCONN`.
    pub const NOTCONN: WsaError = WsaError(WSAENOTCONN);
    /// `WSAECONNRESET`.
    pub const CONNRESET: WsaError = WsaError(WSAECONNRESET);
    /// `WSAECONNREFUSED`.
    pub const CONNREFUSED: WsaError = WsaError(WSAECONNREFUSED);
    /// `WSANOTINITIALISED`.
    pub const NOTINITIALISED: WsaError = WsaError(WSANOTINITIALISED);
    /// `WSA_IO_PENDING`.
    pub const IO_PENDING: WsaError = WsaError(WSA_IO_PENDING);
    /// `WSA_IO_INCOMPLETE`.
    pub const IO_INCOMPLETE: WsaError = WsaError(WSA_IO_INCOMPLETE);
    /// `WSA_OPERATION_ABORTED`.
    pub const OPERATION_ABORTED: WsaError = WsaError(WSA_OPERATION_ABORTED);
    /// `WSASYSNOTREADY`.
    pub const SYSNOTREADY: WsaError = WsaError(WSASYSNOTREADY);
    /// `WSAVERNOTSUPPORTED`.
    pub const VERNOTSUPPORTED: WsaError = WsaError(WSAVERNOTSUPPORTED);

    /// The symbolic name, for logs and test failures.
    pub fn name(self) -> &'static str {
        match self.0 {
            WSAEINTR => "WSAEINTR",
            WSAEFAULT => "WSAEFAULT",
            WSAEINVAL => "WSAEINVAL",
            WSAEMFILE => "WSAEMFILE",
            WSAEWOULDBLOCK => "WSAEWOULDBLOCK",
            WSAEINPROGRESS => "WSAEINPROGRESS",
            WSAEALREADY => "WSAEALREADY",
            WSAENOTSOCK => "WSAENOTSOCK",
            WSAEPROTOTYPE => "WSAEPROTOTYPE",
            WSAENOPROTOOPT => "WSAENOPROTOOPT",
            WSAEPROTONOSUPPORT => "WSAEPROTONOSUPPORT",
            WSAESOCKTNOSUPPORT => "WSAESOCKTNOSUPPORT",
            WSAEOPNOTSUPP => "WSAEOPNOTSUPP",
            WSAEAFNOSUPPORT => "WSAEAFNOSUPPORT",
            WSAEADDRINUSE => "WSAEADDRINUSE",
            WSAEADDRNOTAVAIL => "WSAEADDRNOTAVAIL",
            WSAENETDOWN => "WSAENETDOWN",
            WSAENETRESET => "WSAENETRESET",
            WSAECONNABORTED => "WSAECONNABORTED",
            WSAECONNRESET => "WSAECONNRESET",
            WSAENOBUFS => "WSAENOBUFS",
            WSAEISCONN => "WSAEISCONN",
            WSAENOTCONN => "WSAENOTCONN",
            WSAESHUTDOWN => "WSAESHUTDOWN",
            WSAETIMEDOUT => "WSAETIMEDOUT",
            WSAECONNREFUSED => "WSAECONNREFUSED",
            WSASYSNOTREADY => "WSASYSNOTREADY",
            WSAVERNOTSUPPORTED => "WSAVERNOTSUPPORTED",
            WSANOTINITIALISED => "WSANOTINITIALISED",
            WSA_IO_PENDING => "WSA_IO_PENDING",
            WSA_IO_INCOMPLETE => "WSA_IO_INCOMPLETE",
            WSA_OPERATION_ABORTED => "WSA_OPERATION_ABORTED",
            _ => "WSA?",
        }
    }
}

impl fmt::Debug for WsaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for WsaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for WsaError {}

impl From<StackError> for WsaError {
    fn from(e: StackError) -> Self {
        WsaError(match e {
            StackError::WouldBlock => WSAEWOULDBLOCK,
            StackError::NotSocket => WSAENOTSOCK,
            StackError::InvalidState | StackError::InvalidInput => WSAEINVAL,
            StackError::AddrInUse => WSAEADDRINUSE,
            StackError::AddrNotAvail => WSAEADDRNOTAVAIL,
            StackError::AfNotSupported => WSAEAFNOSUPPORT,
            StackError::ConnRefused => WSAECONNREFUSED,
            StackError::ConnReset => WSAECONNRESET,
            StackError::ConnAborted => WSAECONNABORTED,
            StackError::NetReset => WSAENETRESET,
            StackError::TimedOut => WSAETIMEDOUT,
            StackError::NotConnected => WSAENOTCONN,
            StackError::IsConnected => WSAEISCONN,
            StackError::Already => WSAEALREADY,
            StackError::Shutdown => WSAESHUTDOWN,
            StackError::Interrupted => WSAEINTR,
            StackError::OperationAborted => WSA_OPERATION_ABORTED,
            StackError::NetworkDown => WSAENETDOWN,
            StackError::NoBuffers => WSAENOBUFS,
        })
    }
}

/// A facade result.
pub type WsaResult<T> = Result<T, WsaError>;
