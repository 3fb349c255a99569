//! The provider's view of one underlying socket, shared by every descriptor that refers to it
//! (WSPDuplicateSocket): options, blocking mode and event registration belong to the socket.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use lingerstack_stack::{KeepAlive, Readiness, SocketId, TcpOptions};

use crate::events::Registration;
use crate::linger::Linger;

/// Mutable state of a socket, behind its lock. Never held across an engine call or callback.
pub(crate) struct SockState {
    /// Descriptors referring to this socket; the socket closes with the last (C19).
    pub(crate) refs: usize,
    pub(crate) linger: Linger,
    pub(crate) nonblocking: bool,
    pub(crate) listening: bool,
    pub(crate) bound: Option<SocketAddr>,
    /// The application called shutdown(SD_SEND) (close row C11).
    pub(crate) send_shut: bool,
    pub(crate) options: TcpOptions,
    /// The keep-alive times SO_KEEPALIVE turns on: Windows' defaults until SIO_KEEPALIVE_VALS
    /// sets others. Whether keep-alive is on is `options.keep_alive`.
    pub(crate) keep_alive_times: KeepAlive,
    pub(crate) reg: Registration,
    /// Readiness as the engine last reported it.
    pub(crate) ready: Readiness,
    /// SO_ERROR: the pending socket error, cleared when read.
    pub(crate) so_error: i32,
    /// Close has begun: nothing is recorded or posted any more (C18).
    pub(crate) closing: bool,
    /// A blocking linger close is waiting: other calls get WSAEINPROGRESS (C20).
    pub(crate) blocking_close: bool,
}

/// One underlying socket.
pub(crate) struct Shared {
    pub(crate) id: SocketId,
    /// AF_INET or AF_INET6 (Windows values).
    pub(crate) family: i32,
    state: Mutex<SockState>,
}

impl Shared {
    pub(crate) fn new(id: SocketId, family: i32, options: TcpOptions) -> Shared {
        let state = SockState {
            refs: 1,
            linger: Linger::default(),
            nonblocking: false,
            listening: false,
            bound: None,
            send_shut: false,
            options,
            keep_alive_times: KeepAlive::WINDOWS,
            reg: Registration::default(),
            ready: Readiness::default(),
            so_error: 0,
            closing: false,
            blocking_close: false,
        };
        Shared {
            id,
            family,
            state: Mutex::new(state),
        }
    }

    /// Lock the state. A panic elsewhere never poisons the provider for good.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
