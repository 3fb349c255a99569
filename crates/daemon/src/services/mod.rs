//! The services the daemon runs on the stack, and the bookkeeping they share: the connection
//! registry (for status, logs and the drain at a stop) and the accept loop of a stack listener.
//!
//! Every connection has one owner of its close: whoever first calls [`Conn::take`] (the
//! service's thread at end of stream or on an error, or the drain at a stop) closes it, by the
//! service's linger mode or by a reset, and logs how; a thread whose blocking call is then
//! interrupted sees the connection taken and leaves quietly.

pub mod chargen;
pub mod discard;
pub mod echo;
pub mod forward;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use lingerstack_stack::{
    CloseMode, CloseOutcome, CloseReason, KeepAlive, SocketId, Stack, StackError, Wait,
};

use crate::config::{Config, LingerMode};

/// Pending connections a stack listener holds (each is a smoltcp socket).
pub const BACKLOG: usize = 16;
/// Largest read or write the services do at once.
pub const CHUNK: usize = 64 * 1024;

/// State shared by every part of the running daemon.
pub struct Shared {
    /// The engine.
    pub stack: Stack,
    /// The configuration it runs with.
    pub config: Config,
    /// Live connections.
    pub registry: Registry,
    /// Set at a stop: no new connections are taken.
    pub stopping: AtomicBool,
    /// When the daemon started.
    pub started: Instant,
    /// The link, as the engine describes it ("tap ls0").
    pub link: String,
    /// The link's MTU.
    pub mtu: usize,
    /// Listeners, closed at a stop.
    pub listeners: Mutex<Vec<ListenerHandle>>,
    /// The services and forwards, as shown by status.
    pub endpoints: Mutex<Vec<Endpoint>>,
}

impl Shared {
    /// True once a stop began.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

/// A listener the daemon owns.
pub enum ListenerHandle {
    /// A listening socket on the stack.
    Stack(SocketId),
    /// A listening socket on the host (outbound forwards).
    Host(Arc<TcpListener>),
}

/// A service or forward as status shows it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// "echo", "discard", "chargen", "forward-in", "forward-out".
    pub kind: &'static str,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Where a forward connects.
    pub target: Option<SocketAddr>,
    /// Its linger mode.
    pub linger: LingerMode,
}

/// The live connections, by serial number.
#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
}

impl Registry {
    /// Add a connection; returns it.
    pub fn add(&self, mut conn: Conn) -> Arc<Conn> {
        conn.serial = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let conn = Arc::new(conn);
        if let Ok(mut map) = self.conns.lock() {
            map.insert(conn.serial, conn.clone());
        }
        conn
    }

    /// Remove a connection.
    pub fn remove(&self, serial: u64) {
        if let Ok(mut map) = self.conns.lock() {
            map.remove(&serial);
        }
    }

    /// Every live connection.
    pub fn all(&self) -> Vec<Arc<Conn>> {
        self.conns
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// How many are live.
    pub fn len(&self) -> usize {
        self.conns.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// True when none is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One connection the daemon owns.
pub struct Conn {
    /// Serial number (status, logs).
    pub serial: u64,
    /// The service's kind ("echo", "forward-in", ...).
    pub kind: &'static str,
    /// The socket on the stack.
    pub id: SocketId,
    /// The side that opened the connection (a client on the TAP network, or on the host for
    /// outbound forwards).
    pub peer: SocketAddr,
    /// The address it connected to.
    pub local: SocketAddr,
    /// Where a forward connects.
    pub target: Option<SocketAddr>,
    /// How it is closed.
    pub linger: LingerMode,
    /// When it opened.
    pub opened: Instant,
    /// Bytes received from the peer.
    pub bytes_in: AtomicU64,
    /// Bytes sent to the peer.
    pub bytes_out: AtomicU64,
    /// A forward's host-side socket.
    pub host: OnceLock<Arc<TcpStream>>,
    taken: AtomicBool,
}

impl Conn {
    /// A new connection record (the registry numbers it).
    pub fn new(
        kind: &'static str,
        id: SocketId,
        peer: SocketAddr,
        local: SocketAddr,
        target: Option<SocketAddr>,
        linger: LingerMode,
    ) -> Conn {
        Conn {
            serial: 0,
            kind,
            id,
            peer,
            local,
            target,
            linger,
            opened: Instant::now(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            host: OnceLock::new(),
            taken: AtomicBool::new(false),
        }
    }

    /// A short label for logs: `#3 echo 10.0.0.1:40000`.
    pub fn label(&self) -> String {
        format!("conn #{} {} {}", self.serial, self.kind, self.peer)
    }

    /// Claim the close: true for the first caller only.
    pub fn take(&self) -> bool {
        !self.taken.swap(true, Ordering::AcqRel)
    }

    /// True once someone claimed the close.
    pub fn is_taken(&self) -> bool {
        self.taken.load(Ordering::Acquire)
    }

    /// Add to the inbound byte count.
    pub fn count_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Add to the outbound byte count.
    pub fn count_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Close the stack socket with `mode` (the caller has [`take`](Self::take)n the close),
    /// log how it went and why, and drop the connection from the registry.
    pub fn close_taken(&self, shared: &Shared, mode: CloseMode, why: &str) -> Option<CloseOutcome> {
        let outcome = shared.stack.close(self.id, mode);
        log::info!(
            "{}: {why}; closed: {} ({} bytes in, {} out, {:.1} s)",
            self.label(),
            describe_close(&outcome),
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
            self.opened.elapsed().as_secs_f64()
        );
        shared.registry.remove(self.serial);
        outcome.ok()
    }

    /// The peer closed its side (FIN) and everything was handled: close by the linger mode.
    pub fn finish(&self, shared: &Shared, why: &str) {
        if self.take() {
            self.close_taken(shared, self.linger.close_mode(), why);
        }
    }

    /// A call on the socket failed with `e`: log it and free the socket. Quiet when someone
    /// else already closed the connection (the failure is then that close interrupting us).
    pub fn failed(&self, shared: &Shared, e: StackError) {
        if !self.take() {
            return;
        }
        let why = match e {
            StackError::ConnReset => "reset by the peer (RST)".to_string(),
            StackError::NetReset | StackError::TimedOut => {
                "the peer vanished (no answer to keep-alive or retransmissions)".to_string()
            }
            StackError::NetworkDown => "network down".to_string(),
            other => format!("failed: {other}"),
        };
        self.close_taken(shared, CloseMode::Abort, &why);
    }

    /// Close at a stop, by the linger mode (a forward's host side follows the same mode).
    pub fn stop(&self, shared: &Shared) {
        if !self.take() {
            return;
        }
        if let Some(host) = self.host.get() {
            forward::close_host(host, self.linger == LingerMode::Abort);
        }
        self.close_taken(shared, self.linger.close_mode(), "daemon stopping");
    }
}

/// How a close went, in words for the log: FIN or RST, and why.
pub fn describe_close(outcome: &Result<CloseOutcome, StackError>) -> String {
    match outcome {
        Ok(CloseOutcome::Nothing) => "nothing left to send".into(),
        Ok(CloseOutcome::Background) => "FIN (graceful, finishing in the background)".into(),
        Ok(CloseOutcome::Finished) => "FIN (graceful, every byte and the FIN acknowledged)".into(),
        Ok(CloseOutcome::Reset(reason)) => format!("RST ({})", describe_reason(*reason)),
        Err(e) => format!("close failed: {e}"),
    }
}

/// A close reason in words.
pub fn describe_reason(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Graceful => "graceful",
        CloseReason::LocalAbort => "abortive close",
        CloseReason::UnreadData => "unread data at close",
        CloseReason::LingerTimeout => "linger timeout",
        CloseReason::CloseDeadline => "close deadline passed",
        CloseReason::PeerReset => "reset by the peer",
        CloseReason::Refused => "refused by the peer",
        CloseReason::TimedOut => "timed out",
        CloseReason::KeepAlive => "peer vanished (no answer to keep-alive)",
        CloseReason::NetworkDown => "network down",
    }
}

/// Open a listener on the stack at `addr` (port on every address when it is unspecified);
/// the connections it accepts inherit `keep_alive`.
pub fn stack_listener(
    stack: &Stack,
    addr: SocketAddr,
    keep_alive: Option<KeepAlive>,
) -> Result<SocketId, String> {
    let id = stack.open().map_err(|e| format!("opening a socket: {e}"))?;
    let result = stack
        .set_keep_alive(id, keep_alive)
        .and_then(|()| stack.bind(id, addr))
        .and_then(|()| stack.listen(id, BACKLOG));
    if let Err(e) = result {
        let _ = stack.close(id, CloseMode::Abort);
        return Err(format!("listening on {addr} on the stack: {e}"));
    }
    Ok(id)
}

/// The address a service listens on: the port on every stack address.
pub fn any_addr(port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port)
}

/// Accept connections on stack listener `lid` until the daemon stops; each runs `serve` on a
/// thread of its own.
pub fn accept_loop(
    shared: Arc<Shared>,
    lid: SocketId,
    endpoint: Endpoint,
    serve: fn(Arc<Shared>, Arc<Conn>),
) -> std::io::Result<()> {
    let name = format!("accept-{}-{}", endpoint.kind, endpoint.listen.port());
    std::thread::Builder::new().name(name).spawn(move || {
        loop {
            match shared.stack.accept(lid, Wait::Block(None)) {
                Ok((id, peer)) => {
                    if shared.is_stopping() {
                        let _ = shared.stack.close(id, CloseMode::Abort);
                        break;
                    }
                    let local = shared
                        .stack
                        .info(id)
                        .ok()
                        .and_then(|i| i.local)
                        .unwrap_or(endpoint.listen);
                    let conn = shared.registry.add(Conn::new(
                        endpoint.kind,
                        id,
                        peer,
                        local,
                        endpoint.target,
                        endpoint.linger,
                    ));
                    log::info!(
                        "{}: open {peer} -> {local}{} (linger {})",
                        conn.label(),
                        endpoint
                            .target
                            .map(|t| format!(" -> {t}"))
                            .unwrap_or_default(),
                        conn.linger
                    );
                    let worker = shared.clone();
                    let c = conn.clone();
                    let spawned = std::thread::Builder::new()
                        .name(format!("conn-{}", conn.serial))
                        .spawn(move || serve(worker, c));
                    if let Err(e) = spawned {
                        log::error!("{}: no thread for it: {e}", conn.label());
                        conn.failed(&shared, StackError::NoBuffers);
                    }
                }
                Err(StackError::Interrupted | StackError::NotSocket) => break,
                Err(StackError::NetworkDown) => {
                    log::debug!("{}: network down, accept loop ends", endpoint.kind);
                    break;
                }
                Err(e) => {
                    if shared.is_stopping() {
                        break;
                    }
                    log::warn!("accept on {}: {e}", endpoint.listen);
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        }
        log::debug!(
            "{} on {}: no longer accepting",
            endpoint.kind,
            endpoint.listen
        );
    })?;
    Ok(())
}
