//! The blocking [`TcpListener`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use super::TcpStream;
use crate::api::Stack;
use crate::command::Wait;
use crate::error::StackError;
use crate::owned::OwnedSocket;

/// Pending connections a listener holds, as std asks of the kernel (the stack's own
/// `max_backlog` may lower it).
const BACKLOG: usize = 128;

/// A TCP listener on a lingerstack [`Stack`], used like `std::net::TcpListener`.
///
/// Dropping the last handle stops listening; connections not yet accepted are reset.
#[derive(Debug)]
pub struct TcpListener {
    sock: Arc<OwnedSocket>,
}

impl TcpListener {
    /// Listen on `addr` (port 0: an ephemeral port, see [`TcpListener::local_addr`]).
    pub fn bind(stack: &Stack, addr: SocketAddr) -> io::Result<TcpListener> {
        let sock = OwnedSocket::open(stack, false)?;
        stack.bind(sock.id, addr)?;
        stack.listen(sock.id, BACKLOG)?;
        Ok(TcpListener {
            sock: Arc::new(sock),
        })
    }

    /// Wait for a connection (or fail with [`io::ErrorKind::WouldBlock`] when non-blocking).
    /// The new stream is blocking whatever the listener is.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let wait = if self.sock.settings().nonblocking {
            Wait::No
        } else {
            Wait::Block(None)
        };
        let (id, peer) = self.sock.stack.accept(self.sock.id, wait)?;
        Ok((TcpStream::accepted(&self.sock.stack, id), peer))
    }

    /// The connections as they come, for ever: `for stream in listener.incoming()`.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address listened on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .info()?
            .local
            .ok_or_else(|| StackError::InvalidState.into())
    }

    /// Non-blocking mode: `accept` fails with [`io::ErrorKind::WouldBlock`] instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.sock.settings().nonblocking = nonblocking;
        Ok(())
    }

    /// Another handle to the same listener; the last one to go stops listening.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener {
            sock: self.sock.clone(),
        })
    }

    /// A listener has no pending error to report: always `Ok(None)` once the stack runs.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.info()?;
        Ok(None)
    }
}

/// The iterator of [`TcpListener::incoming`]: each item is one `accept`.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}
