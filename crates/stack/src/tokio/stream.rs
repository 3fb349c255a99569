//! The async [`TcpStream`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::split::{OwnedReadHalf, OwnedWriteHalf};
use crate::api::Stack;
use crate::command::{CloseOutcome, Done, Interest, Request, Shutdown, Wait};
use crate::error::StackError;
use crate::owned::{OwnedSocket, close_mode};
use crate::poll::{self, Answer, ReadyWait};

/// A TCP connection on a lingerstack [`Stack`], used like `tokio::net::TcpStream`.
///
/// Dropping it never blocks: it closes in the background by the linger setting (see
/// [the module](crate::tokio) for the table); [`TcpStream::close`] closes and says how it ended.
#[derive(Debug)]
pub struct TcpStream {
    pub(super) sock: Arc<OwnedSocket>,
    pub(super) read: ReadyWait,
    pub(super) write: ReadyWait,
}

impl TcpStream {
    /// Connect to `addr`. The handshake is waited for in the engine, not on a thread.
    pub async fn connect(stack: &Stack, addr: SocketAddr) -> io::Result<TcpStream> {
        // Owned from the start: a failed or abandoned connect closes the socket.
        let sock = OwnedSocket::open(stack, true)?;
        let request = Request::Connect(sock.id, addr, Wait::Block(None));
        match Answer::submit(stack, request).await {
            Ok(_) => Ok(TcpStream::new(sock)),
            Err(failure) => Err(failure.error.into()),
        }
    }

    pub(super) fn new(sock: OwnedSocket) -> TcpStream {
        TcpStream {
            sock: Arc::new(sock),
            read: ReadyWait::new(Interest::Read),
            write: ReadyWait::new(Interest::Write),
        }
    }

    /// The remote address; [`io::ErrorKind::NotConnected`] once the connection is gone.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        peer_addr(&self.sock)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(&self.sock)
    }

    /// TCP_NODELAY: send small segments at once (Nagle off).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        let mut options = self.sock.info()?.options;
        options.nodelay = nodelay;
        Ok(self.sock.stack.set_options(self.sock.id, options)?)
    }

    /// TCP_NODELAY as set.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.sock.info()?.options.nodelay)
    }

    /// SO_LINGER: how a close or drop ends the connection (see [the module](crate::tokio)).
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.sock.settings().linger = linger;
        Ok(())
    }

    /// The linger setting.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        Ok(self.sock.settings().linger)
    }

    /// Split into a read half and a write half that may move to different tasks; the
    /// connection is closed (by the linger setting) when both are gone.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let TcpStream { sock, read, write } = self;
        (
            OwnedReadHalf::new(sock.clone(), read),
            OwnedWriteHalf::new(sock, write),
        )
    }

    /// Close now by the linger setting and say how it ended. With `Some(d)` this resolves
    /// once every byte and the FIN are acknowledged, or after the reset at `d`; the wait is
    /// in the engine, so other tasks run meanwhile. A reset at `d` is `Ok` with
    /// [`CloseOutcome::Reset`]; `Err` means the close could not be carried out (the stack
    /// stopped). Dropping the future does not stop the close: it goes on in the engine.
    pub async fn close(self) -> io::Result<CloseOutcome> {
        let Ok(sock) = Arc::try_unwrap(self.sock) else {
            // Not reached: a whole stream owns its socket alone.
            return Ok(CloseOutcome::Nothing);
        };
        let (stack, id, linger) = sock.take();
        let request = Request::Close(id, close_mode(linger, true));
        match Answer::submit(&stack, request).await {
            Ok(Done::Closed(outcome)) => Ok(outcome),
            Ok(_) => Err(StackError::InvalidState.into()),
            Err(failure) => Err(failure.error.into()),
        }
    }
}

pub(super) fn peer_addr(sock: &OwnedSocket) -> io::Result<SocketAddr> {
    sock.info()?
        .remote
        .ok_or_else(|| StackError::NotConnected.into())
}

pub(super) fn local_addr(sock: &OwnedSocket) -> io::Result<SocketAddr> {
    sock.info()?
        .local
        .ok_or_else(|| StackError::NotConnected.into())
}

/// `poll_read` of the stream and its read half.
pub(super) fn poll_read(
    cx: &mut Context<'_>,
    wait: &mut ReadyWait,
    sock: &OwnedSocket,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    let n = ready!(poll::poll_recv(
        cx,
        wait,
        &sock.stack,
        sock.id,
        buf.initialize_unfilled()
    ))?;
    buf.advance(n);
    Poll::Ready(Ok(()))
}

/// `poll_write` of the stream and its write half.
pub(super) fn poll_write(
    cx: &mut Context<'_>,
    wait: &mut ReadyWait,
    sock: &OwnedSocket,
    data: &[u8],
) -> Poll<io::Result<usize>> {
    let n = ready!(poll::poll_send(cx, wait, &sock.stack, sock.id, data))?;
    Poll::Ready(Ok(n))
}

/// `poll_shutdown`: the FIN after the queued bytes; the read side stays open.
pub(super) fn shutdown_write(sock: &OwnedSocket) -> Poll<io::Result<()>> {
    Poll::Ready(Ok(sock.stack.shutdown(sock.id, Shutdown::Write)?))
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        poll_read(cx, &mut this.read, &this.sock, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        poll_write(cx, &mut this.write, &this.sock, data)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Queued bytes are the engine's to send; there is no buffer on this side.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        shutdown_write(&self.sock)
    }
}
