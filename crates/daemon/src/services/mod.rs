//! The services the daemon runs on the stack, and the bookkeeping they share: the connection
//! registry (for status, logs and the drain at a stop) and the accept loop of a listener.
//!
//! Every connection is a task on the daemon's one tokio runtime, never a thread: the engine
//! wakes a task when its socket is ready, so an idle connection costs its task and its
//! socket, nothing more. The task owns its [`TcpStream`] and therefore its close: the service
//! returns how the connection ended, and [`run_conn`] closes it by the service's linger mode
//! (or by a reset after an error) with `close().await`, logs how it went, and leaves the
//! registry. A stop is a message every task watches; a task that sees it closes the same way.

pub mod chargen;
pub mod discard;
pub mod echo;
pub mod forward;

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lingerstack_stack::tokio::{TcpListener, TcpStream};
use lingerstack_stack::{CloseOutcome, CloseReason, KeepAlive, Stack, StackError};
use tokio::sync::{Semaphore, watch};

use crate::config::{Config, LingerMode};

/// Largest read or write a service does at once.
pub const CHUNK: usize = 16 * 1024;

/// State shared by every part of the running daemon.
pub struct Shared {
    /// The engine.
    pub stack: Stack,
    /// The configuration it runs with.
    pub config: Config,
    /// Live connections.
    pub registry: Registry,
    /// `true` once a stop began; every task watches it.
    pub stop: watch::Sender<bool>,
    /// One permit per connection the daemon may hold (`max_connections`); an accept loop
    /// takes a permit before it accepts, so at the limit it stops accepting.
    pub slots: Arc<Semaphore>,
    /// When the daemon started.
    pub started: Instant,
    /// The link, as the engine describes it ("tap ls0").
    pub link: String,
    /// The link's MTU.
    pub mtu: usize,
    /// Every listener the daemon runs (services and forwards), as status and `ctl forwards`
    /// show them; `ctl add-forward` and `remove-forward` change it at run time.
    pub endpoints: Mutex<Vec<Listening>>,
    /// The runtime, for the control socket's threads to bind and spawn on.
    pub runtime: tokio::runtime::Handle,
}

impl Shared {
    /// True once a stop began.
    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves when a stop begins (at once if it already has).
    pub async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    /// Resolves when a stop begins or `endpoint` is removed (`ctl remove-forward`): its
    /// accept loop then ends.
    pub async fn closed(&self, endpoint: &Endpoint) {
        let mut removed = endpoint.removed.clone();
        tokio::select! {
            () = self.stopped() => {}
            _ = removed.wait_for(|gone| *gone) => {}
        }
    }
}

/// A listener the daemon runs, and the switch that ends its accept loop.
pub struct Listening {
    /// What it serves.
    pub endpoint: Endpoint,
    /// `true` ends the accept loop (the listener closes; its connections go on).
    pub remove: watch::Sender<bool>,
    /// Added through the control socket rather than by the configuration.
    pub at_run_time: bool,
    /// Disconnected once the accept loop has ended and dropped its listener.
    pub ended: std::sync::mpsc::Receiver<()>,
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
    /// Turns `true` when it is removed at run time.
    pub removed: watch::Receiver<bool>,
}

impl Endpoint {
    /// A new endpoint, and the switch that removes it.
    pub fn new(
        kind: &'static str,
        listen: SocketAddr,
        target: Option<SocketAddr>,
        linger: LingerMode,
    ) -> (Endpoint, watch::Sender<bool>) {
        let (remove, removed) = watch::channel(false);
        let endpoint = Endpoint {
            kind,
            listen,
            target,
            linger,
            removed,
        };
        (endpoint, remove)
    }

    /// True for a forward (inbound or outbound).
    pub fn is_forward(&self) -> bool {
        self.target.is_some()
    }

    /// The forward as a `--forward` spec (`in:0.0.0.0:8080=127.0.0.1:80,graceful`).
    pub fn spec(&self) -> String {
        let dir = if self.kind == "forward-out" {
            "out"
        } else {
            "in"
        };
        let target = self.target.map(|t| t.to_string()).unwrap_or_default();
        format!("{dir}:{}={target},{}", self.listen, self.linger)
    }
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

/// One connection the daemon owns (what status and the logs show of it).
pub struct Conn {
    /// Serial number (status, logs).
    pub serial: u64,
    /// The service's kind ("echo", "forward-in", ...).
    pub kind: &'static str,
    /// The side that opened the connection (a client on the TAP network, or on the host for
    /// outbound forwards).
    pub peer: SocketAddr,
    /// The address it connected to.
    pub local: SocketAddr,
    /// Where the service or forward that took it listens (to count a forward's connections).
    pub listen: SocketAddr,
    /// The stack socket's two ends (local, remote), to find it among the stack's sockets.
    pub stack_ends: (SocketAddr, SocketAddr),
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
}

impl Conn {
    /// A connection accepted on the stack from `peer` at `local` (the registry numbers it).
    pub fn accepted(endpoint: &Endpoint, peer: SocketAddr, local: SocketAddr) -> Conn {
        Conn {
            serial: 0,
            kind: endpoint.kind,
            peer,
            local,
            listen: endpoint.listen,
            stack_ends: (local, peer),
            target: endpoint.target,
            linger: endpoint.linger,
            opened: Instant::now(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }

    /// A short label for logs: `conn #3 echo 10.0.0.1:40000`.
    pub fn label(&self) -> String {
        format!("conn #{} {} {}", self.serial, self.kind, self.peer)
    }

    /// Add to the inbound byte count.
    pub fn count_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Add to the outbound byte count.
    pub fn count_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Close `stream` with `linger` and log how it went and why; the connection leaves the
    /// registry. With `Some(d)` this waits in the engine (other tasks run meanwhile).
    pub async fn close(&self, shared: &Shared, stream: TcpStream, linger: LingerMode, why: &str) {
        let _ = stream.set_linger(linger.linger());
        let outcome = stream.close().await;
        let (bytes_in, bytes_out) = (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        );
        // The fields are for `--log-format json`; the text line says the same in words.
        log::info!(
            conn = self.serial, service = self.kind, peer:% = self.peer, bytes_in, bytes_out;
            "{}: {why}; closed: {} ({} bytes in, {} out, {:.1} s)",
            self.label(),
            describe_close(&outcome),
            bytes_in,
            bytes_out,
            self.opened.elapsed().as_secs_f64()
        );
        shared.registry.remove(self.serial);
    }
}

/// How a service's connection ended, which decides its close.
pub enum Ending {
    /// The client closed its side and the service is done: close by the linger mode.
    Finished(&'static str),
    /// A read or write failed: reset (the connection is usually gone already).
    Failed(io::Error),
}

/// Why a failed connection failed, in words for the log.
pub fn describe_failure(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "reset by the peer (RST)".into(),
        // Keep-alive's verdict reaches a Rust socket as TimedOut.
        io::ErrorKind::TimedOut => {
            "the peer vanished (no answer to keep-alive or retransmissions)".into()
        }
        io::ErrorKind::NetworkDown => "network down".into(),
        _ => format!("failed: {e}"),
    }
}

/// How a close went, in words for the log: FIN or RST, and why.
pub fn describe_close(outcome: &io::Result<CloseOutcome>) -> String {
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

/// Give the stack socket whose ends are `local` and `remote` (a listener: `remote` None) the
/// daemon's keep-alive. The Rust sockets do not expose their engine socket, so it is found
/// among the stack's sockets; an accepted connection inherits its listener's setting, so
/// this runs once per listener and once per outbound connection.
pub fn set_keep_alive(
    stack: &Stack,
    local: SocketAddr,
    remote: Option<SocketAddr>,
    keep_alive: Option<KeepAlive>,
) -> Result<(), StackError> {
    let sockets = stack.sockets()?;
    let found = sockets
        .iter()
        .find(|s| !s.closing && s.local == Some(local) && s.remote == remote)
        .ok_or(StackError::NotSocket)?;
    stack.set_keep_alive(found.id, keep_alive)
}

/// Listen on the stack at `addr` (the port on every address when it is unspecified); the
/// connections it accepts inherit the daemon's keep-alive.
pub async fn stack_listener(shared: &Shared, addr: SocketAddr) -> Result<TcpListener, String> {
    let failed = |e: &dyn std::fmt::Display| format!("listening on {addr} on the stack: {e}");
    let listener = TcpListener::bind(&shared.stack, addr)
        .await
        .map_err(|e| failed(&e))?;
    let local = listener.local_addr().map_err(|e| failed(&e))?;
    set_keep_alive(&shared.stack, local, None, shared.config.keep_alive)
        .map_err(|e| failed(&format!("setting keep-alive: {e}")))?;
    Ok(listener)
}

/// The address a service listens on: the port on every stack address.
pub fn any_addr(port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port)
}

/// A service's body: it reads and writes `stream` until the client is done or an error.
pub type Serve =
    for<'a> fn(&'a Conn, &'a mut TcpStream) -> Pin<Box<dyn Future<Output = Ending> + Send + 'a>>;

/// What a listener does with each connection it accepts.
#[derive(Clone, Copy)]
pub enum Handler {
    /// A built-in service, closed by [`run_conn`].
    Service(Serve),
    /// An inbound forward to the endpoint's target.
    ForwardIn,
}

/// A bound listener, ready to serve.
pub enum Bound {
    /// On the stack: a service or an inbound forward.
    Stack(TcpListener, Handler),
    /// On the host: an outbound forward.
    Host(tokio::net::TcpListener),
}

/// Serve `bound` for `endpoint`: log it, list it (status, `ctl forwards`) with its `remove`
/// switch, and spawn its accept loop on the runtime.
pub fn launch(
    shared: &Arc<Shared>,
    bound: Bound,
    (endpoint, remove): (Endpoint, watch::Sender<bool>),
    at_run_time: bool,
) {
    match &bound {
        Bound::Stack(..) => log::info!(
            "{} listening on {}{} (linger {})",
            endpoint.kind,
            endpoint.listen,
            endpoint
                .target
                .map(|t| format!(" -> {t}"))
                .unwrap_or_default(),
            endpoint.linger
        ),
        Bound::Host(_) => log::info!(
            "forward-out listening on host {} -> {} (linger {})",
            endpoint.listen,
            endpoint.target.map(|t| t.to_string()).unwrap_or_default(),
            endpoint.linger
        ),
    }
    let (ending, ended) = std::sync::mpsc::channel();
    if let Ok(mut eps) = shared.endpoints.lock() {
        eps.push(Listening {
            endpoint: endpoint.clone(),
            remove,
            at_run_time,
            ended,
        });
    }
    let shared = shared.clone();
    shared.runtime.clone().spawn(async move {
        match bound {
            Bound::Stack(listener, handler) => {
                accept_loop(shared, listener, endpoint, handler).await
            }
            Bound::Host(listener) => forward::accept_host(shared, listener, endpoint).await,
        }
        // The loop has returned, so its listener is dropped.
        drop(ending);
    });
}

/// Accept on `listener` until the daemon stops or the endpoint is removed; each connection becomes a task. A permit of
/// `shared.slots` is taken before each accept: at `max_connections` the loop waits, the
/// listener's small queue fills, and further SYNs go unanswered until a connection ends.
pub async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    endpoint: Endpoint,
    handler: Handler,
) {
    loop {
        let permit = match shared.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // Once per time the limit is reached, not per refused client.
                log::warn!(
                    "{} on {}: at the connection limit ({}); not accepting until one ends",
                    endpoint.kind,
                    endpoint.listen,
                    shared.config.max_connections.unwrap_or_default()
                );
                tokio::select! {
                    p = shared.slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    () = shared.closed(&endpoint) => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::NetworkDown => {
                    log::debug!("{}: network down, accept loop ends", endpoint.kind);
                    break;
                }
                Err(e) => {
                    log::warn!("accept on {}: {e}", endpoint.listen);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shared.closed(&endpoint) => break,
        };
        let local = stream.local_addr().unwrap_or(endpoint.listen);
        let conn = shared.registry.add(Conn::accepted(&endpoint, peer, local));
        log::info!(
            "{}: open {peer} -> {local}{} (linger {})",
            conn.label(),
            endpoint
                .target
                .map(|t| format!(" -> {t}"))
                .unwrap_or_default(),
            conn.linger
        );
        let shared = shared.clone();
        tokio::spawn(async move {
            match handler {
                Handler::Service(serve) => run_conn(&shared, &conn, stream, serve).await,
                Handler::ForwardIn => forward::serve_inbound(&shared, &conn, stream).await,
            }
            drop(permit);
        });
    }
    // Dropping the listener stops listening; connections not yet accepted are reset.
    log::debug!(
        "{} on {}: no longer accepting",
        endpoint.kind,
        endpoint.listen
    );
}

/// Run a service on one connection until it ends or the daemon stops, then close it.
pub async fn run_conn(shared: &Shared, conn: &Conn, mut stream: TcpStream, serve: Serve) {
    let ending = tokio::select! {
        ending = serve(conn, &mut stream) => Some(ending),
        () = shared.stopped() => None,
    };
    match ending {
        Some(Ending::Finished(why)) => conn.close(shared, stream, conn.linger, why).await,
        Some(Ending::Failed(e)) => {
            let why = describe_failure(&e);
            conn.close(shared, stream, LingerMode::Abort, &why).await
        }
        None => {
            conn.close(shared, stream, conn.linger, "daemon stopping")
                .await
        }
    }
}

/// The [`Serve`] of a built-in service.
pub fn serve_of(kind: crate::config::ServiceKind) -> Serve {
    use crate::config::ServiceKind;
    fn echo<'a>(
        c: &'a Conn,
        s: &'a mut TcpStream,
    ) -> Pin<Box<dyn Future<Output = Ending> + Send + 'a>> {
        Box::pin(echo::serve(c, s))
    }
    fn discard<'a>(
        c: &'a Conn,
        s: &'a mut TcpStream,
    ) -> Pin<Box<dyn Future<Output = Ending> + Send + 'a>> {
        Box::pin(discard::serve(c, s))
    }
    fn chargen<'a>(
        c: &'a Conn,
        s: &'a mut TcpStream,
    ) -> Pin<Box<dyn Future<Output = Ending> + Send + 'a>> {
        Box::pin(chargen::serve(c, s))
    }
    match kind {
        ServiceKind::Echo => echo,
        ServiceKind::Discard => discard,
        ServiceKind::Chargen => chargen,
    }
}
