//! What goes into the engine and what comes out: [`Request`]s in, [`Outcome`]s and
//! [`SocketEvent`]s out, and the types they carry.
//!
//! Every request comes with a reply token of the driver's choosing; the engine answers each
//! exactly once with an [`Outcome`], either at once or later when a parked call resolves.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::StackError;

/// Identifies a socket inside one engine. Ids are never reused during an engine's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u64);

/// How long a call may wait for the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Non-blocking: fail with [`StackError::WouldBlock`] instead of waiting.
    No,
    /// Block the caller, up to the timeout if one is given.
    Block(Option<Duration>),
    /// Overlapped: park the request and complete it later; a close aborts it with
    /// [`StackError::OperationAborted`] rather than [`StackError::Interrupted`].
    Overlapped,
}

/// How a socket is to be closed; the facade derives it from the linger setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseMode {
    /// FIN after all queued data, in the background, bounded by a close deadline
    /// (the configured default when `None`).
    Graceful {
        /// How long the graceful close may take before the engine resets it.
        deadline: Option<Duration>,
    },
    /// RST at the next poll; queued data is discarded.
    Abort,
    /// Blocking linger: answer once every byte and the FIN are acknowledged, or reset at the
    /// timeout and answer after the RST has been sent.
    Linger {
        /// How long to wait for the acknowledgements before resetting.
        timeout: Duration,
    },
    /// Non-blocking linger: close gracefully if every sent byte is already acknowledged,
    /// otherwise fail with [`StackError::WouldBlock`] and change nothing.
    LingerNonBlocking {
        /// The close deadline of the graceful close it starts.
        deadline: Option<Duration>,
    },
}

/// How a close ended, for the caller and for logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseOutcome {
    /// Nothing to send (never connected, or already closed).
    Nothing,
    /// Closing gracefully in the background.
    Background,
    /// Every byte and the FIN were acknowledged before the call returned.
    Finished,
    /// A RST was sent (abort, unread data, or linger timeout).
    Reset(CloseReason),
}

/// Why a connection ended, recorded by the engine (smoltcp does not say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both FINs were exchanged.
    Graceful,
    /// The application aborted (linger 0).
    LocalAbort,
    /// Unread received data at close, or data after a receive shutdown (RFC 2525 2.17).
    UnreadData,
    /// A blocking linger ran out.
    LingerTimeout,
    /// The background close deadline passed (C24).
    CloseDeadline,
    /// The peer sent a RST.
    PeerReset,
    /// The connect failed: the peer answered the SYN with a RST.
    Refused,
    /// smoltcp gave up (the peer answered nothing while data or a connect waited).
    TimedOut,
    /// Keep-alive gave up: the peer answered none of its probes (it vanished).
    KeepAlive,
    /// The link went down or the engine stopped.
    NetworkDown,
}

/// Which direction(s) to shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// No more receiving: later data resets the connection.
    Read,
    /// FIN after queued data.
    Write,
    /// Both.
    Both,
}

/// Per-socket TCP options the engine applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpOptions {
    /// Receive buffer (applies to connections created after it is set).
    pub rx_buffer: usize,
    /// Send buffer (likewise).
    pub tx_buffer: usize,
    /// TCP_NODELAY: Nagle off.
    pub nodelay: bool,
    /// Keep-alive, if on (SO_KEEPALIVE, SIO_KEEPALIVE_VALS).
    pub keep_alive: Option<KeepAlive>,
    /// Abort the connection if the peer leaves sent data unacknowledged for this long
    /// (TCP_USER_TIMEOUT); an idle connection is never cut by it.
    pub timeout: Option<Duration>,
}

/// TCP keep-alive in Windows' shape: after `idle` without a segment from the peer, a probe;
/// while unanswered, another every `interval`; `probes` probes unanswered and the connection is
/// reset. Probes are sent only while nothing waits to be acknowledged (retransmissions and the
/// peer timeout watch the peer then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepAlive {
    /// Silence from the peer before the first probe.
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is reset.
    pub probes: u32,
}

impl KeepAlive {
    /// What SO_KEEPALIVE turns on in Windows: 2 hours idle, a probe every second, 10 probes.
    pub const WINDOWS: KeepAlive = KeepAlive {
        idle: Duration::from_secs(7200),
        interval: Duration::from_secs(1),
        probes: 10,
    };

    /// Windows' probe count with the given times (SIO_KEEPALIVE_VALS sets only these two).
    pub fn with_times(idle: Duration, interval: Duration) -> KeepAlive {
        KeepAlive {
            idle,
            interval,
            probes: KeepAlive::WINDOWS.probes,
        }
    }

    /// The longest idle time or interval accepted: about 49.7 days, the most Windows'
    /// millisecond `u_long` can say.
    pub const MAX_TIME: Duration = Duration::from_millis(u32::MAX as u64);

    /// How long a peer may stay silent before the connection is reset:
    /// `idle + interval * probes`.
    pub fn give_up_after(&self) -> Duration {
        self.idle
            .saturating_add(self.interval.saturating_mul(self.probes))
    }

    /// True when the engine accepts it: idle time and interval above zero and at most
    /// [`KeepAlive::MAX_TIME`], 1 to 255 probes.
    pub fn is_valid(&self) -> bool {
        // Under a millisecond the probe schedule would keep the engine busy (found by fuzzing).
        let time_ok = |t: Duration| t >= Duration::from_millis(1) && t <= Self::MAX_TIME;
        time_ok(self.idle) && time_ok(self.interval) && (1..=255).contains(&self.probes)
    }
}

impl Default for KeepAlive {
    fn default() -> Self {
        KeepAlive::WINDOWS
    }
}

/// A snapshot of one socket's state, as the facade and status pages need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketInfo {
    /// The socket.
    pub id: SocketId,
    /// smoltcp's TCP state name ("ESTABLISHED", "LISTEN", ...), or "FRESH"/"BOUND".
    pub state: &'static str,
    /// Local endpoint, once bound.
    pub local: Option<SocketAddr>,
    /// Remote endpoint, once connected.
    pub remote: Option<SocketAddr>,
    /// Bytes queued for sending and not yet acknowledged.
    pub send_queue: usize,
    /// Bytes received and not yet read.
    pub recv_queue: usize,
    /// Readiness now.
    pub ready: Readiness,
    /// Why the connection ended, once it did.
    pub reason: Option<CloseReason>,
    /// The options in force.
    pub options: TcpOptions,
    /// True once a close was issued (the socket now lives on only in the engine).
    pub closing: bool,
}

/// Readiness of a socket, the basis of network events and select.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Readiness {
    /// Data to read, or end of stream.
    pub readable: bool,
    /// Bytes received and not yet read.
    pub unread: usize,
    /// Room in the send buffer of a connected socket.
    pub writable: bool,
    /// A listener has a connection to accept.
    pub acceptable: bool,
    /// A connect finished (successfully or not).
    pub connected: bool,
    /// The peer closed its side (FIN) or reset.
    pub closed: bool,
    /// The error that goes with `connected` or `closed`, if any.
    pub error: Option<StackError>,
}

/// What a task waits for with [`Request::Ready`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Data to read, end of stream, or an error.
    Read,
    /// Room to queue bytes, or an error (a write would not wait).
    Write,
    /// A connection to accept.
    Accept,
}

/// A change of readiness, sent to the event sink for watched sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketEvent {
    /// The socket.
    pub id: SocketId,
    /// Its readiness now.
    pub ready: Readiness,
}

/// What a successful call returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    /// Nothing to report.
    Unit,
    /// A new socket.
    Socket(SocketId),
    /// An accepted connection and its peer.
    Accepted(SocketId, SocketAddr),
    /// Bytes queued for sending.
    Sent(usize),
    /// Bytes received; empty means end of stream.
    Received(Vec<u8>),
    /// Bytes received into the caller's lent buffer ([`Request::RecvLent`]); 0 means end
    /// of stream.
    ReceivedInto(usize),
    /// How the close went.
    Closed(CloseOutcome),
    /// A socket's state.
    Info(Box<SocketInfo>),
    /// Engine counters.
    Counters(Box<crate::counters::Counters>),
    /// All sockets' states.
    Sockets(Vec<SocketInfo>),
}

/// A failed call: the error, and for a send the bytes queued before it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub error: StackError,
    /// Bytes of a send that were queued before the failure (they go out as the close says).
    pub bytes: usize,
}

impl From<StackError> for Failure {
    fn from(error: StackError) -> Self {
        Failure { error, bytes: 0 }
    }
}

/// The answer to one command.
pub type Outcome = Result<Done, Failure>;

/// A caller's buffer lent to the engine for one call, so the payload is copied once, between
/// that buffer and smoltcp's socket buffer, by the engine.
///
/// Made only by [`Lent::reading`] and [`Lent::writing`], whose callers promise that the buffer
/// outlives the call: the engine touches it only until it hands back the call's answer (or
/// drops the call), and the lender waits for that before its borrow ends.
pub struct Lent {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: a `Lent` is a borrow handed to the engine thread while the lending thread waits; the
// two never use the buffer at the same time (see above).
unsafe impl Send for Lent {}

impl std::fmt::Debug for Lent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lent({} bytes)", self.len)
    }
}

impl Lent {
    /// Lend `data` for reading.
    ///
    /// # Safety
    ///
    /// `data` must stay alive and unchanged until the engine has handed back the answer to the
    /// request that carries this `Lent`, or dropped that request (or the engine).
    pub unsafe fn reading(data: &[u8]) -> Lent {
        Lent {
            ptr: data.as_ptr().cast_mut(),
            len: data.len(),
        }
    }

    /// Lend `buf` for writing.
    ///
    /// # Safety
    ///
    /// `buf` must stay alive, and used by nobody else, until the engine has handed back the
    /// answer to the request that carries this `Lent`, or dropped that request (or the engine).
    pub unsafe fn writing(buf: &mut [u8]) -> Lent {
        Lent {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
        }
    }

    /// The length of the lent buffer.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty buffer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The lent bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the lender keeps the buffer alive and untouched until the call is answered
        // or dropped (the promise of `reading`/`writing`), and the engine only calls this
        // while it still holds the call.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The lent buffer, for writing (only for a buffer lent with [`Lent::writing`]).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `bytes`; a buffer lent for writing came from a `&mut [u8]`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// One request to the engine.
#[derive(Debug)]
pub enum Request {
    /// A new TCP socket with the engine's default options.
    Open,
    /// Bind to a local endpoint (port 0 picks an ephemeral port).
    Bind(SocketId, SocketAddr),
    /// Listen with a backlog (clamped to the configured maximum).
    Listen(SocketId, usize),
    /// Accept a connection.
    Accept(SocketId, Wait),
    /// Connect to a remote endpoint.
    Connect(SocketId, SocketAddr, Wait),
    /// Queue bytes for sending.
    Send(SocketId, Vec<u8>, Wait),
    /// Receive up to this many bytes.
    Recv(SocketId, usize, Wait),
    /// Queue bytes from a buffer the caller lends for the call (see [`Lent`]).
    SendLent(SocketId, Lent, Wait),
    /// Receive into a buffer the caller lends for the call (see [`Lent`]).
    RecvLent(SocketId, Lent, Wait),
    /// Copy up to this many received bytes without consuming them.
    Peek(SocketId, usize, Wait),
    /// Answer (with `Done::Unit`) once the socket is ready for `Interest`: at once if it is
    /// now. A task waits for this instead of a thread: its answer wakes the task.
    Ready(SocketId, Interest),
    /// Shut down one or both directions.
    Shutdown(SocketId, Shutdown),
    /// Close the socket; the id is invalid afterwards (except on `WouldBlock`).
    Close(SocketId, CloseMode),
    /// Release every blocked or overlapped call on the socket (as a close would) without closing.
    Cancel(SocketId),
    /// Set the socket's TCP options.
    SetOptions(SocketId, TcpOptions),
    /// Turn keep-alive on with these times, or off (the other options stay as they are).
    SetKeepAlive(SocketId, Option<KeepAlive>),
    /// A socket's state.
    Info(SocketId),
    /// Every live socket's state.
    List,
    /// Engine counters.
    Counters,
    /// Send readiness changes of this socket to the event sink (or stop).
    Watch(SocketId, bool),
    /// Close the pcap file of the engine's pcap middleware and start it afresh at the same
    /// path (after log rotation, SIGHUP). Without a pcap: nothing to do.
    ReopenPcap,
    /// Reset every open connection, give closing ones `grace` to finish, then stop.
    Stop {
        /// How long closing connections may take to finish.
        grace: Duration,
    },
}
