//! The owned halves of an async [`TcpStream`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::TcpStream;
use super::stream::{local_addr, peer_addr, poll_read, poll_write, shutdown_write};
use crate::command::Interest;
use crate::owned::OwnedSocket;
use crate::poll::ReadyWait;

/// The read half of [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf {
    sock: Arc<OwnedSocket>,
    read: ReadyWait,
}

/// The write half of [`TcpStream::into_split`]. Dropping it sends a FIN after the queued
/// bytes (shutdown of the write side), as tokio's does; the connection itself closes when
/// both halves are gone.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    sock: Arc<OwnedSocket>,
    write: ReadyWait,
    shutdown_on_drop: bool,
}

/// [`OwnedReadHalf::reunite`] was given halves of two different streams; here they are back.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same socket")
    }
}

impl std::error::Error for ReuniteError {}

impl OwnedReadHalf {
    pub(super) fn new(sock: Arc<OwnedSocket>, read: ReadyWait) -> Self {
        OwnedReadHalf { sock, read }
    }

    /// Put the stream back together (the halves must come from the same stream).
    pub fn reunite(self, other: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        if !Arc::ptr_eq(&self.sock, &other.sock) {
            return Err(ReuniteError(self, other));
        }
        let mut other = other;
        other.shutdown_on_drop = false;
        let write = std::mem::replace(&mut other.write, ReadyWait::new(Interest::Write));
        Ok(TcpStream {
            sock: self.sock,
            read: self.read,
            write,
        })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        peer_addr(&self.sock)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(&self.sock)
    }
}

impl OwnedWriteHalf {
    pub(super) fn new(sock: Arc<OwnedSocket>, write: ReadyWait) -> Self {
        OwnedWriteHalf {
            sock,
            write,
            shutdown_on_drop: true,
        }
    }

    /// Put the stream back together (the halves must come from the same stream).
    pub fn reunite(self, other: OwnedReadHalf) -> Result<TcpStream, ReuniteError> {
        other.reunite(self)
    }

    /// Drop this half without the FIN that dropping it would send.
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        peer_addr(&self.sock)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(&self.sock)
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = shutdown_write(&self.sock);
        }
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        poll_read(cx, &mut this.read, &this.sock, buf)
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        poll_write(cx, &mut this.write, &this.sock, data)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        shutdown_write(&self.sock)
    }
}
