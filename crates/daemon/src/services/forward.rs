//! TCP port forwarding between the stack and the host, both ways, carrying close semantics
//! across:
//!
//! - inbound: a port on the stack's address; each connection is forwarded to a host address
//!   (for example a service on the host's loopback);
//! - outbound: a listener on a host address; each connection is forwarded to an address on the
//!   TAP network through the stack.
//!
//! A forwarded connection is one task copying both directions at once. End of stream on one
//! side becomes a FIN on the other after every byte before it has been written (a write
//! shutdown on either socket sends its FIN only after queued data). When both directions have
//! ended, the stack socket is closed gracefully (or by a lingering close when the forward's
//! mode is `linger:N`), so no byte is lost. A reset or error on one side becomes a reset on the
//! other: an abortive close on the stack, `SO_LINGER {1, 0}` then close on the host socket.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lingerstack_stack::tokio::{OwnedReadHalf, OwnedWriteHalf, TcpStream};
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener as HostListener;
use tokio::net::TcpStream as HostStream;

use super::{CHUNK, Conn, Endpoint, Shared, describe_failure};
use crate::config::LingerMode;

/// How long connecting to the target may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Inbound: serve one connection accepted on the stack, forwarding it to the endpoint's target.
pub async fn serve_inbound(shared: &Shared, conn: &Conn, stream: TcpStream) {
    let Some(target) = conn.target else {
        return conn
            .close(shared, stream, LingerMode::Abort, "no target")
            .await;
    };
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, HostStream::connect(target));
    let host = tokio::select! {
        r = connect => r.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
        () = shared.stopped() => {
            return conn.close(shared, stream, conn.linger, "daemon stopping").await;
        }
    };
    match host {
        Ok(host) => {
            log::debug!("{}: connected to {target}", conn.label());
            pump(shared, conn, stream, host).await
        }
        Err(e) => {
            // The client cannot be told why; a reset is what a refused connect looks like.
            let why = format!("connecting to {target} failed ({e}); resetting the client");
            conn.close(shared, stream, LingerMode::Abort, &why).await
        }
    }
}

/// Outbound: accept on a host listener until the daemon stops; each connection is forwarded
/// through the stack to the endpoint's target, as a task of its own.
pub async fn accept_host(shared: Arc<Shared>, listener: HostListener, endpoint: Endpoint) {
    loop {
        let permit = tokio::select! {
            p = shared.slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = shared.closed(&endpoint) => break,
        };
        let (host, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    log::warn!("accept on host {}: {e}", endpoint.listen);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shared.closed(&endpoint) => break,
        };
        let (shared, endpoint) = (shared.clone(), endpoint.clone());
        tokio::spawn(async move {
            connect_outbound(&shared, host, peer, &endpoint).await;
            drop(permit);
        });
    }
    log::debug!("forward-out on {}: no longer accepting", endpoint.listen);
}

async fn connect_outbound(shared: &Shared, host: HostStream, peer: SocketAddr, ep: &Endpoint) {
    let Some(target) = ep.target else { return };
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&shared.stack, target));
    let stream = tokio::select! {
        r = connect => r.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
        () = shared.stopped() => return reset_host(host),
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            log::info!(
                "forward-out {peer} -> {target}: connect failed: {e}; resetting the host client"
            );
            return reset_host(host);
        }
    };
    let local = stream.local_addr().unwrap_or(ep.listen);
    if let Err(e) =
        super::set_keep_alive(&shared.stack, local, Some(target), shared.config.keep_alive)
    {
        log::warn!("forward-out {peer} -> {target}: setting keep-alive: {e}");
    }
    let mut record = Conn::accepted(ep, peer, ep.listen);
    record.stack_ends = (local, target);
    let conn = shared.registry.add(record);
    log::info!(
        "{}: open {peer} -> {} -> {local} -> {target} (linger {})",
        conn.label(),
        ep.listen,
        conn.linger
    );
    pump(shared, &conn, stream, host).await;
}

/// How the two directions of a forward ended.
enum PumpEnd {
    /// End of stream both ways, each FIN passed on.
    BothFin,
    /// One side failed or reset: reset both (the reason, for the log).
    Reset(String),
    /// The daemon is stopping.
    Stop,
}

/// Copy both directions until both have ended, one fails, or the daemon stops; then close
/// both sides accordingly.
async fn pump(shared: &Shared, conn: &Conn, stream: TcpStream, host: HostStream) {
    let _ = host.set_nodelay(true);
    let _ = stream.set_nodelay(true);
    let (mut srd, mut swr) = stream.into_split();
    let (mut hrd, mut hwr) = host.into_split();
    let end = {
        let to_host = stack_to_host(conn, &mut srd, &mut hwr);
        let to_stack = host_to_stack(conn, &mut hrd, &mut swr);
        tokio::pin!(to_host, to_stack);
        let (mut host_done, mut stack_done) = (false, false);
        loop {
            tokio::select! {
                r = &mut to_host, if !host_done => match r {
                    Ok(()) => host_done = true,
                    Err(why) => break PumpEnd::Reset(why),
                },
                r = &mut to_stack, if !stack_done => match r {
                    Ok(()) => stack_done = true,
                    Err(why) => break PumpEnd::Reset(why),
                },
                () = shared.stopped() => break PumpEnd::Stop,
            }
            if host_done && stack_done {
                break PumpEnd::BothFin;
            }
        }
    };
    let (stream, host) = match (srd.reunite(swr), hrd.reunite(hwr)) {
        (Ok(s), Ok(h)) => (s, h),
        _ => {
            // Not reached: each pair is the halves of one socket. Dropping them closes both.
            log::error!("{}: halves did not reunite", conn.label());
            shared.registry.remove(conn.serial);
            return;
        }
    };
    match end {
        PumpEnd::BothFin => {
            // Both FINs are through; ours towards the stack side is already queued. Close
            // gracefully, or linger up to N s when the forward asks for it; never reset here.
            let mode = match conn.linger {
                LingerMode::Linger(_) => conn.linger,
                _ => LingerMode::Graceful,
            };
            drop(host);
            conn.close(shared, stream, mode, "both sides closed (FIN each way)")
                .await
        }
        PumpEnd::Reset(why) => {
            reset_host(host);
            conn.close(shared, stream, LingerMode::Abort, &why).await
        }
        PumpEnd::Stop => {
            // The host side follows the forward's mode: a reset, or a FIN.
            if conn.linger == LingerMode::Abort {
                reset_host(host);
            } else {
                let _ = SockRef::from(&host).shutdown(std::net::Shutdown::Both);
            }
            conn.close(shared, stream, conn.linger, "daemon stopping")
                .await
        }
    }
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

/// Reset a host connection: SO_LINGER {1, 0}, so that closing the descriptor sends a RST.
fn reset_host(host: HostStream) {
    let _ = SockRef::from(&host).set_linger(Some(Duration::ZERO));
}

/// Why reading from one side failed, in the log's words.
fn read_failure(e: &io::Error, from: String, to: String) -> String {
    if e.kind() == io::ErrorKind::ConnectionReset {
        format!("RST from {from} -> RST to {to}")
    } else {
        format!("{} on {from}'s side -> RST to {to}", describe_failure(e))
    }
}

/// Copy `from` to `to` until end of stream, then pass the FIN on. `Err` carries the reason
/// for resetting both sides.
async fn copy_until_fin(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    count: impl Fn(usize),
    names: (String, String),
) -> Result<(), String> {
    let (source, sink) = names;
    let mut buf = vec![0u8; CHUNK];
    loop {
        match from.read(&mut buf).await {
            Ok(0) => {
                // Every byte before the FIN has been written: pass the FIN on.
                to.shutdown()
                    .await
                    .map_err(|e| format!("passing the FIN on to {sink} failed: {e}"))?;
                log::debug!("FIN from {source} -> FIN to {sink}");
                return Ok(());
            }
            Ok(n) => {
                to.write_all(&buf[..n]).await.map_err(|e| {
                    if e.kind() == io::ErrorKind::ConnectionReset {
                        format!("RST from {sink} -> RST to {source}")
                    } else {
                        format!("writing to {sink} failed ({e}) -> RST to {source}")
                    }
                })?;
                count(n);
            }
            Err(e) => return Err(read_failure(&e, source, sink)),
        }
    }
}

async fn stack_to_host(
    conn: &Conn,
    from: &mut OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
) -> Result<(), String> {
    copy_until_fin(from, to, |n| conn.count_in(n), (near(conn), far(conn))).await
}

async fn host_to_stack(
    conn: &Conn,
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut OwnedWriteHalf,
) -> Result<(), String> {
    copy_until_fin(from, to, |n| conn.count_out(n), (far(conn), near(conn))).await
}
