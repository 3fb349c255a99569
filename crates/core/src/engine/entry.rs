//! What the engine knows of each socket id, beyond smoltcp's own state.

use std::collections::HashMap;
use std::net::SocketAddr;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Instant;

use super::keepalive::Liveness;
use crate::command::{CloseReason, Readiness, TcpOptions};
use crate::error::StackError;

/// A listening socket: smoltcp sockets on one port, idle, half-open or ready to be accepted
/// (see `listen.rs`).
pub(crate) struct Listener {
    pub(crate) slots: Vec<SocketHandle>,
    /// Most connections waiting to be accepted.
    pub(crate) backlog: usize,
    /// When each half-open slot was first seen half-open: the oldest is evicted first.
    pub(crate) half_open_since: HashMap<SocketHandle, Instant>,
}

/// The smoltcp side of a socket id.
pub(crate) enum Kind {
    /// Created, maybe bound, not yet connecting or listening: no smoltcp socket yet, so buffer
    /// sizes set now still apply.
    Fresh,
    /// A connection (connecting, connected or closing from the peer's side).
    Conn(SocketHandle),
    /// A listener.
    Listener(Listener),
}

/// One socket id owned by an application.
pub(crate) struct Entry {
    pub(crate) kind: Kind,
    pub(crate) options: TcpOptions,
    /// Local endpoint once bound (explicitly, or by connect).
    pub(crate) local: Option<SocketAddr>,
    /// The port this id bound exclusively, released when the id closes.
    pub(crate) bound_port: Option<u16>,
    pub(crate) recv_shut: bool,
    pub(crate) send_shut: bool,
    /// SD_SEND came while the peer had closed and data was unacknowledged: the FIN waits
    /// (see [`fin_must_wait`]).
    pub(crate) fin_deferred: bool,
    /// Why the connection ended, once it did.
    pub(crate) reason: Option<CloseReason>,
    /// smoltcp state at the last check, to see transitions the engine did not cause.
    pub(crate) last_state: State,
    /// When the connection last made progress (state or queues changed): the basis for
    /// telling a timeout from a reset.
    pub(crate) progress_at: Option<smoltcp::time::Instant>,
    /// Send and receive queue lengths at the last check.
    pub(crate) queues: (usize, usize),
    /// Keep-alive's account of when the peer was last heard and the probes since.
    pub(crate) liveness: Liveness,
    /// Send readiness changes to the event sink.
    pub(crate) watch: bool,
    pub(crate) last_ready: Readiness,
}

impl Entry {
    pub(crate) fn new(options: TcpOptions) -> Self {
        Entry {
            kind: Kind::Fresh,
            options,
            local: None,
            bound_port: None,
            recv_shut: false,
            send_shut: false,
            fin_deferred: false,
            reason: None,
            last_state: State::Closed,
            progress_at: None,
            queues: (0, 0),
            liveness: Liveness::default(),
            watch: false,
            last_ready: Readiness::default(),
        }
    }

    /// The error a data call gets once the connection is gone.
    pub(crate) fn broken(&self) -> Option<StackError> {
        self.reason.and_then(reason_error)
    }
}

/// Must our FIN wait? smoltcp 0.14 answers a duplicate ACK in LAST-ACK with a challenge ACK
/// and never counts it (nor does the guard's prompt count there), so a FIN sent from
/// CLOSE-WAIT while data is still unacknowledged would leave every further loss of that data
/// to its retransmission timeout, which doubles up to a minute. Until the data is
/// acknowledged the socket stays in CLOSE-WAIT, where fast retransmit works; the FIN follows.
pub(crate) fn fin_must_wait(socket: &tcp::Socket) -> bool {
    socket.state() == State::CloseWait && socket.send_queue() > 0
}

/// The Winsock-visible error of a connection that ended for `reason` (None: it ended cleanly).
pub(crate) fn reason_error(reason: CloseReason) -> Option<StackError> {
    match reason {
        CloseReason::Graceful => None,
        CloseReason::PeerReset => Some(StackError::ConnReset),
        CloseReason::Refused => Some(StackError::ConnRefused),
        CloseReason::NetworkDown => Some(StackError::NetworkDown),
        // A vanished peer: "the system on the other end went down without notice" (WSAETIMEDOUT).
        CloseReason::TimedOut | CloseReason::KeepAlive => Some(StackError::TimedOut),
        CloseReason::LocalAbort
        | CloseReason::UnreadData
        | CloseReason::LingerTimeout
        | CloseReason::CloseDeadline => Some(StackError::ConnAborted),
    }
}

/// States in which our FIN has been acknowledged (or the connection is fully gone).
pub(crate) fn fin_acked(state: State) -> bool {
    matches!(state, State::FinWait2 | State::TimeWait | State::Closed)
}

/// States past the handshake: the peer has seen our SYN-ACK / we saw theirs.
pub(crate) fn synchronized(state: State) -> bool {
    !matches!(
        state,
        State::Closed | State::Listen | State::SynSent | State::SynReceived
    )
}

/// States in which the peer has sent its FIN.
pub(crate) fn peer_closed(state: State) -> bool {
    matches!(
        state,
        State::CloseWait | State::LastAck | State::Closing | State::TimeWait
    )
}

/// smoltcp's name of a state, for status pages.
pub(crate) fn state_name(state: State) -> &'static str {
    match state {
        State::Closed => "CLOSED",
        State::Listen => "LISTEN",
        State::SynSent => "SYN-SENT",
        State::SynReceived => "SYN-RECEIVED",
        State::Established => "ESTABLISHED",
        State::FinWait1 => "FIN-WAIT-1",
        State::FinWait2 => "FIN-WAIT-2",
        State::CloseWait => "CLOSE-WAIT",
        State::Closing => "CLOSING",
        State::LastAck => "LAST-ACK",
        State::TimeWait => "TIME-WAIT",
    }
}

/// Readiness of one socket id, from its entry and smoltcp's state.
pub(crate) fn readiness(entry: &Entry, sockets: &SocketSet<'static>) -> Readiness {
    let reason = entry.reason;
    match &entry.kind {
        Kind::Fresh => Readiness::default(),
        Kind::Listener(l) => {
            let acceptable = l
                .slots
                .iter()
                .any(|h| synchronized(sockets.get::<tcp::Socket>(*h).state()));
            Readiness {
                acceptable,
                ..Readiness::default()
            }
        }
        Kind::Conn(h) => {
            let s = sockets.get::<tcp::Socket>(*h);
            let state = s.state();
            let error = reason.and_then(reason_error);
            let failed_connect = state == State::Closed && reason.is_some();
            // A refused connect never had a connection: FD_CONNECT with the error, no FD_CLOSE.
            let refused = reason == Some(CloseReason::Refused);
            let ended = peer_closed(state)
                || error.is_some()
                || (state == State::Closed && reason == Some(CloseReason::Graceful));
            Readiness {
                readable: !refused && (s.recv_queue() > 0 || peer_closed(state) || error.is_some()),
                unread: s.recv_queue(),
                writable: s.can_send() && synchronized(state),
                acceptable: false,
                connected: synchronized(state) || failed_connect,
                closed: !refused && ended,
                error,
            }
        }
    }
}
