//! The messages between application threads and the engine.
//!
//! Every call is one [`Command`] carrying a [`Responder`]; the engine answers each exactly once
//! with an [`Outcome`], either at once or later when a parked waiter resolves.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::Duration;

use crossbeam_channel::Sender;

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
    /// Abort the connection if the peer does not answer for this long.
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
        let time_ok = |t: Duration| !t.is_zero() && t <= Self::MAX_TIME;
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
    /// Bytes received into the caller's lent buffer ([`crate::Stack::recv_into`]); 0 means end
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

/// Where the answer to a command goes: a channel and a tag the caller chose, or (for the
/// blocking calls of [`crate::Stack`]) the calling thread's reply slot.
#[derive(Clone, Debug)]
pub struct Responder {
    to: To,
}

#[derive(Clone, Debug)]
enum To {
    Channel {
        tx: Sender<(u64, Outcome)>,
        tag: u64,
    },
    Slot(SlotResponder),
    Task(crate::poll::TaskResponder),
}

impl Responder {
    /// Answers go to `tx`, marked with `tag`.
    pub fn new(tx: Sender<(u64, Outcome)>, tag: u64) -> Self {
        Responder {
            to: To::Channel { tx, tag },
        }
    }

    /// Answers go to `slot`, whose owner thread waits in [`ReplySlot::wait`].
    pub(crate) fn slot(slot: &Arc<ReplySlot>) -> Self {
        slot.holders.fetch_add(1, Ordering::SeqCst);
        Responder {
            to: To::Slot(SlotResponder {
                slot: Some(slot.clone()),
                thread: slot.thread.clone(),
            }),
        }
    }

    /// Answers go to `slot`, whose task is woken ([`crate::poll`]).
    pub(crate) fn task(slot: crate::poll::TaskResponder) -> Self {
        Responder { to: To::Task(slot) }
    }

    /// True when nobody waits for the answer any more (only known for task answers): the
    /// engine may drop such a request.
    pub(crate) fn abandoned(&self) -> bool {
        match &self.to {
            To::Task(task) => task.abandoned(),
            _ => false,
        }
    }

    /// Deliver the answer. A caller that gave up waiting is not an error.
    pub fn send(self, outcome: Outcome) {
        match self.to {
            To::Channel { tx, tag } => {
                let _ = tx.send((tag, outcome));
            }
            To::Slot(mut s) => {
                if let Some(slot) = s.slot.take() {
                    slot.put(outcome);
                    slot.holders.fetch_sub(1, Ordering::SeqCst);
                    drop(slot);
                    s.thread.unpark();
                }
            }
            To::Task(task) => task.answer(outcome),
        }
    }
}

/// The engine's end of a reply slot. Dropped without an answer (the engine is gone), it still
/// wakes the owner, which then sees no other holder of the slot and reports NetworkDown.
#[derive(Debug)]
struct SlotResponder {
    slot: Option<Arc<ReplySlot>>,
    thread: Thread,
}

impl Clone for SlotResponder {
    fn clone(&self) -> Self {
        if let Some(slot) = &self.slot {
            slot.holders.fetch_add(1, Ordering::SeqCst);
        }
        SlotResponder {
            slot: self.slot.clone(),
            thread: self.thread.clone(),
        }
    }
}

impl Drop for SlotResponder {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            // Count ourselves out before the wake-up, so the owner sees us gone.
            slot.holders.fetch_sub(1, Ordering::SeqCst);
            drop(slot);
            self.thread.unpark();
        }
    }
}

/// A one-answer mailbox owned by one thread and reused for each of its blocking calls: no
/// channel is made per call, and the caller spins briefly before it parks, so a quick answer
/// costs no system call on either side.
#[derive(Debug)]
pub(crate) struct ReplySlot {
    ready: AtomicBool,
    /// Responders that may still answer.
    holders: AtomicUsize,
    value: Mutex<Option<Outcome>>,
    thread: Thread,
}

/// How long a caller spins for its answer before parking.
const REPLY_SPIN: std::time::Duration = std::time::Duration::from_micros(20);

impl ReplySlot {
    fn new() -> Arc<ReplySlot> {
        Arc::new(ReplySlot {
            ready: AtomicBool::new(false),
            holders: AtomicUsize::new(0),
            value: Mutex::new(None),
            thread: std::thread::current(),
        })
    }

    /// This thread's slot, free for a new call (a fresh one if an old answer's holder lingers).
    pub(crate) fn mine() -> Arc<ReplySlot> {
        thread_local! {
            static SLOT: std::cell::RefCell<Option<Arc<ReplySlot>>> = const { std::cell::RefCell::new(None) };
        }
        SLOT.try_with(|cell| {
            let mut cell = cell.borrow_mut();
            match cell.as_ref() {
                Some(slot) if slot.holders.load(Ordering::SeqCst) == 0 => {
                    slot.ready.store(false, Ordering::Relaxed);
                    *slot.value.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    slot.clone()
                }
                _ => {
                    let slot = ReplySlot::new();
                    *cell = Some(slot.clone());
                    slot
                }
            }
        })
        // Called while the thread's locals are being destroyed: a slot for this call only.
        .unwrap_or_else(|_| ReplySlot::new())
    }

    fn put(&self, outcome: Outcome) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        self.ready.store(true, Ordering::Release);
    }

    fn take(&self) -> Option<Outcome> {
        self.value.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Wait for the answer on the owner thread; `None` when every responder was dropped
    /// unanswered (the engine is gone).
    pub(crate) fn wait(self: &Arc<ReplySlot>) -> Option<Outcome> {
        let start = std::time::Instant::now();
        let mut spins = 0u32;
        loop {
            if self.ready.load(Ordering::Acquire) {
                return self.take();
            }
            if self.holders.load(Ordering::SeqCst) == 0 {
                // Every responder is gone; one may have answered just before it went.
                return self
                    .ready
                    .load(Ordering::Acquire)
                    .then(|| self.take())
                    .flatten();
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else if start.elapsed() < REPLY_SPIN {
                // Give the CPU to the engine or a peer if one is waiting for it.
                std::thread::yield_now();
            } else {
                std::thread::park();
            }
        }
    }
}

/// A caller's buffer lent to the engine for one call, so the payload is copied once, between
/// that buffer and smoltcp's socket buffer, on the engine thread.
///
/// Only [`crate::Stack`] makes these (the fields are private), and only in a call that waits
/// until its [`Responder`] has answered or been dropped. The engine touches the buffer only
/// while it holds that responder, so the borrow outlives every use.
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
    /// Lend `data` for reading. The caller must wait for the call's answer before `data`'s
    /// borrow ends, and must not lend it for writing.
    pub(crate) fn reading(data: &[u8]) -> Lent {
        Lent {
            ptr: data.as_ptr().cast_mut(),
            len: data.len(),
        }
    }

    /// Lend `buf` for writing. The caller must wait for the call's answer before `buf`'s borrow
    /// ends.
    pub(crate) fn writing(buf: &mut [u8]) -> Lent {
        Lent {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The lent bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the lender keeps the buffer alive and untouched until the call is answered
        // (`Stack::call` waits for the answer or for the responder to be dropped), and the
        // engine only calls this while it still holds the call's responder.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The lent buffer, for writing (only for a buffer lent with [`Lent::writing`]).
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
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
    /// Queue bytes from a buffer the caller lends for the call ([`crate::Stack::send`] only).
    #[doc(hidden)]
    SendLent(SocketId, Lent, Wait),
    /// Receive into a buffer the caller lends for the call ([`crate::Stack::recv_into`] only).
    #[doc(hidden)]
    RecvLent(SocketId, Lent, Wait),
    /// Copy up to this many received bytes without consuming them.
    Peek(SocketId, usize, Wait),
    /// Answer (with `Done::Unit`) once the socket is ready for `Interest`: at once if it is
    /// now. A task waits for this instead of a thread: the answer wakes it ([`crate::poll`]).
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
    /// Reset every open connection, give closing ones `grace` to finish, then stop.
    Stop {
        /// How long closing connections may take to finish.
        grace: Duration,
    },
}

/// A request and where to answer it.
#[derive(Debug)]
pub struct Command {
    /// What to do.
    pub request: Request,
    /// Where the answer goes.
    pub reply: Responder,
}
