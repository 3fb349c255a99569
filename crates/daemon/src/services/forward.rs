//! TCP port forwarding between the stack and the host, both ways, carrying close semantics
//! across:
//!
//! - inbound: a port on the stack's address; each connection is forwarded to a host address
//!   (for example a service on the host's loopback);
//! - outbound: a listener on a host address; each connection is forwarded to an address on the
//!   TAP network through the stack.
//!
//! Each forwarded connection runs two pumps, one per direction. End of stream on one side
//! becomes a FIN on the other after every byte before it has been written (`shutdown(SHUT_WR)`
//! on the host socket, `Shutdown::Write` on the stack socket: both send their FIN only after
//! queued data). When both directions have ended, the stack socket is closed gracefully (or by a
//! lingering close when the forward's mode is `linger:N`), so no byte is lost. A reset on one
//! side becomes a reset on the other: an abortive close on the stack, `SO_LINGER {1, 0}` and
//! close on the host socket.

use std::io::{self, Read, Write};
use std::net::{Shutdown as NetShutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use lingerstack_stack::{CloseMode, Shutdown, StackError, Wait};
use socket2::SockRef;

use super::{CHUNK, Conn, Endpoint, Shared};
use crate::config::LingerMode;

/// How long connecting to the target may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Inbound: serve one connection accepted on the stack, forwarding it to the endpoint's target.
pub fn serve_inbound(shared: Arc<Shared>, conn: Arc<Conn>) {
    let Some(target) = conn.target else {
        conn.failed(&shared, StackError::InvalidState);
        return;
    };
    let host = match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
        Ok(h) => h,
        Err(e) => {
            // The client cannot be told why; a reset is what a refused connect looks like.
            if conn.take() {
                conn.close_taken(
                    &shared,
                    CloseMode::Abort,
                    &format!("connecting to {target} failed ({e}); resetting the client"),
                );
            }
            return;
        }
    };
    let _ = host.set_nodelay(true);
    log::debug!("{}: connected to {target}", conn.label());
    pump(shared, conn, Arc::new(host));
}

/// Outbound: accept on a host listener until the daemon stops; each connection is forwarded
/// through the stack to the endpoint's target.
pub fn accept_host(
    shared: Arc<Shared>,
    listener: Arc<TcpListener>,
    endpoint: Endpoint,
) -> io::Result<()> {
    let name = format!("accept-out-{}", endpoint.listen.port());
    std::thread::Builder::new().name(name).spawn(move || {
        loop {
            let (host, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) => {
                    if shared.is_stopping() {
                        break;
                    }
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    log::warn!("accept on host {}: {e}", endpoint.listen);
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            if shared.is_stopping() {
                reset_host(&host);
                break;
            }
            let worker = shared.clone();
            let ep = endpoint.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("out-{peer}"))
                .spawn(move || connect_outbound(worker, host, peer, ep));
            if let Err(e) = spawned {
                log::error!("forward-out {peer}: no thread for it: {e}");
            }
        }
        log::debug!("forward-out on {}: no longer accepting", endpoint.listen);
    })?;
    Ok(())
}

fn connect_outbound(shared: Arc<Shared>, host: TcpStream, peer: SocketAddr, ep: Endpoint) {
    let Some(target) = ep.target else { return };
    let stack = &shared.stack;
    let id = match stack.open() {
        Ok(id) => id,
        Err(e) => {
            log::warn!("forward-out {peer} -> {target}: no socket on the stack: {e}; resetting");
            reset_host(&host);
            return;
        }
    };
    if let Err(e) = stack
        .set_keep_alive(id, shared.config.keep_alive)
        .and_then(|()| stack.connect(id, target, Wait::Block(Some(CONNECT_TIMEOUT))))
    {
        log::info!(
            "forward-out {peer} -> {target}: connect failed: {e}; resetting the host client"
        );
        let _ = stack.close(id, CloseMode::Abort);
        reset_host(&host);
        return;
    }
    let local = stack
        .info(id)
        .ok()
        .and_then(|i| i.local)
        .unwrap_or(ep.listen);
    let conn = shared.registry.add(Conn::new(
        "forward-out",
        id,
        peer,
        ep.listen,
        Some(target),
        ep.linger,
    ));
    log::info!(
        "{}: open {peer} -> {} -> {local} -> {target} (linger {})",
        conn.label(),
        ep.listen,
        conn.linger
    );
    if shared.is_stopping() {
        conn.stop(&shared);
        return;
    }
    let _ = host.set_nodelay(true);
    pump(shared, conn, Arc::new(host));
}

/// Direction states for the two pumps.
const OPEN: u8 = 0;
const DONE: u8 = 1;

/// Run both directions of a forwarded connection; returns when both have ended.
fn pump(shared: Arc<Shared>, conn: Arc<Conn>, host: Arc<TcpStream>) {
    let _ = conn.host.set(host.clone());
    if shared.is_stopping() {
        conn.stop(&shared);
        return;
    }
    // Counts directions that ended with end of stream; the second one closes the connection.
    let ended = Arc::new(AtomicU8::new(OPEN));
    let (s2, c2, h2, e2) = (shared.clone(), conn.clone(), host.clone(), ended.clone());
    let other = std::thread::Builder::new()
        .name(format!("fwd-{}-s2h", conn.serial))
        .spawn(move || stack_to_host(&s2, &c2, &h2, &e2));
    if let Err(e) = other {
        log::error!("{}: no thread for it: {e}", conn.label());
        reset_both(&shared, &conn, &host, "no thread");
        return;
    }
    host_to_stack(&shared, &conn, &host, &ended);
}

/// The host-side name of the far end, for logs.
fn far(conn: &Conn) -> String {
    match conn.kind {
        "forward-in" => conn.target.map(|t| t.to_string()).unwrap_or_default(),
        _ => conn.peer.to_string(),
    }
}

/// The stack-side name of the far end, for logs.
fn near(conn: &Conn) -> String {
    match conn.kind {
        "forward-in" => conn.peer.to_string(),
        _ => conn.target.map(|t| t.to_string()).unwrap_or_default(),
    }
}

/// One direction reached end of stream; the second to do so closes the connection.
fn direction_done(shared: &Shared, conn: &Conn, ended: &AtomicU8) {
    if ended.fetch_add(DONE, Ordering::AcqRel) == DONE && conn.take() {
        // Both FINs are through; our FIN towards the stack side is already queued. Close
        // gracefully, or linger up to N s when the forward asks for it; never reset here.
        let mode = match conn.linger {
            LingerMode::Linger(_) => conn.linger.close_mode(),
            _ => CloseMode::Graceful { deadline: None },
        };
        conn.close_taken(shared, mode, "both sides closed (FIN each way)");
    }
}

/// Reset both sides (once): RST on the stack socket, RST on the host socket.
fn reset_both(shared: &Shared, conn: &Conn, host: &TcpStream, why: &str) {
    if conn.take() {
        close_host(host, true);
        conn.close_taken(shared, CloseMode::Abort, why);
    }
}

/// Close the host side of a forward: with `reset`, SO_LINGER {1,0} so that the last close of
/// the descriptor sends a RST; otherwise a FIN after queued data. Either way the read side is
/// shut so the host pump wakes up and leaves.
pub fn close_host(host: &TcpStream, reset: bool) {
    if reset {
        let _ = SockRef::from(host).set_linger(Some(Duration::ZERO));
        let _ = host.shutdown(NetShutdown::Read);
    } else {
        let _ = host.shutdown(NetShutdown::Both);
    }
}

/// Reset a host connection that has no stack side yet.
fn reset_host(host: &TcpStream) {
    let _ = SockRef::from(host).set_linger(Some(Duration::ZERO));
}

fn stack_to_host(shared: &Shared, conn: &Conn, host: &TcpStream, ended: &AtomicU8) {
    let mut writer = host;
    loop {
        match shared.stack.recv(conn.id, CHUNK, Wait::Block(None)) {
            Ok(data) if data.is_empty() => {
                if conn.is_taken() {
                    return;
                }
                // Every byte before the FIN has been written: pass the FIN on.
                let _ = host.shutdown(NetShutdown::Write);
                log::debug!(
                    "{}: FIN from {} -> FIN to {}",
                    conn.label(),
                    near(conn),
                    far(conn)
                );
                direction_done(shared, conn, ended);
                return;
            }
            Ok(data) => {
                conn.count_in(data.len());
                if let Err(e) = writer.write_all(&data) {
                    if !conn.is_taken() {
                        reset_both(
                            shared,
                            conn,
                            host,
                            &format!(
                                "writing to {} failed ({e}) -> RST to {}",
                                far(conn),
                                near(conn)
                            ),
                        );
                    }
                    return;
                }
            }
            Err(StackError::Interrupted | StackError::NotSocket) => return,
            Err(e) => {
                if !conn.is_taken() {
                    let why = match e {
                        StackError::ConnReset => {
                            format!("RST from {} -> RST to {}", near(conn), far(conn))
                        }
                        other => format!("{other} on the stack side -> RST to {}", far(conn)),
                    };
                    reset_both(shared, conn, host, &why);
                }
                return;
            }
        }
    }
}

fn host_to_stack(shared: &Shared, conn: &Conn, host: &TcpStream, ended: &AtomicU8) {
    let mut reader = host;
    let mut buf = vec![0u8; CHUNK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => {
                if conn.is_taken() {
                    return;
                }
                // FIN from the host side: ours goes out after every queued byte.
                match shared.stack.shutdown(conn.id, Shutdown::Write) {
                    Ok(()) => {
                        log::debug!(
                            "{}: FIN from {} -> FIN to {}",
                            conn.label(),
                            far(conn),
                            near(conn)
                        );
                        direction_done(shared, conn, ended);
                    }
                    Err(StackError::NotSocket) => {}
                    Err(e) => reset_both(
                        shared,
                        conn,
                        host,
                        &format!("passing the FIN on failed: {e}"),
                    ),
                }
                return;
            }
            Ok(n) => match shared.stack.send(conn.id, &buf[..n], Wait::Block(None)) {
                Ok(sent) => conn.count_out(sent),
                Err(f) => {
                    conn.count_out(f.bytes);
                    if !conn.is_taken()
                        && !matches!(f.error, StackError::Interrupted | StackError::NotSocket)
                    {
                        let why = match f.error {
                            StackError::ConnReset => {
                                format!("RST from {} -> RST to {}", near(conn), far(conn))
                            }
                            other => format!("{other} on the stack side -> RST to {}", far(conn)),
                        };
                        reset_both(shared, conn, host, &why);
                    }
                    return;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if !conn.is_taken() {
                    let why = if e.kind() == io::ErrorKind::ConnectionReset {
                        format!("RST from {} -> RST to {}", far(conn), near(conn))
                    } else {
                        format!(
                            "reading from {} failed ({e}) -> RST to {}",
                            far(conn),
                            near(conn)
                        )
                    };
                    reset_both(shared, conn, host, &why);
                }
                return;
            }
        }
    }
}
