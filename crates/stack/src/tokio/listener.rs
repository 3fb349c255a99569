//! The async [`TcpListener`].

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;

use super::TcpStream;
use crate::api::Stack;
use crate::command::Interest;
use crate::error::StackError;
use crate::owned::OwnedSocket;
use crate::poll::{self, ReadyWait};

/// Pending connections a listener holds (the stack's own `max_backlog` may lower it).
const BACKLOG: usize = 1024;

/// A TCP listener on a lingerstack [`Stack`], used like `tokio::net::TcpListener`.
///
/// Dropping it stops listening; connections not yet accepted are reset.
#[derive(Debug)]
pub struct TcpListener {
    sock: OwnedSocket,
}

impl TcpListener {
    /// Listen on `addr` (port 0: an ephemeral port, see [`TcpListener::local_addr`]).
    pub async fn bind(stack: &Stack, addr: SocketAddr) -> io::Result<TcpListener> {
        let sock = OwnedSocket::open(stack, true)?;
        stack.bind(sock.id, addr)?;
        stack.listen(sock.id, BACKLOG)?;
        Ok(TcpListener { sock })
    }

    /// The next connection. Cancel-safe: a dropped `accept` future loses no connection.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        // One wait per call, so several tasks may accept at once.
        let mut wait = ReadyWait::new(Interest::Accept);
        let stack = &self.sock.stack;
        let (id, peer) =
            poll_fn(|cx| poll::poll_accept(cx, &mut wait, stack, self.sock.id)).await?;
        Ok((TcpStream::new(OwnedSocket::adopt(stack, id, true)), peer))
    }

    /// The address listened on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .info()?
            .local
            .ok_or_else(|| StackError::InvalidState.into())
    }
}
