//! The blocking [`TcpStream`].

use std::io::{self, Read, Write};
use std::net::{Shutdown as NetShutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::api::Stack;
use crate::command::{CloseOutcome, Shutdown, SocketId, Wait};
use crate::error::StackError;
use crate::owned::OwnedSocket;

/// A TCP connection on a lingerstack [`Stack`], used like `std::net::TcpStream`.
///
/// Reads and writes block the calling thread (up to the read or write timeout) unless the
/// stream is non-blocking; `Read` and `Write` are implemented for `&TcpStream` too, so one
/// thread may read while another writes. Dropping the last handle closes the connection by
/// the linger setting (see [the module](crate::net) for the table).
///
/// A read or write timeout that runs out gives [`io::ErrorKind::WouldBlock`], as std does on
/// Linux, with [`StackError::TimedOut`] as the payload.
#[derive(Debug)]
pub struct TcpStream {
    sock: Arc<OwnedSocket>,
}

fn timeout_is_would_block(e: StackError) -> io::Error {
    match e {
        StackError::TimedOut => io::Error::new(io::ErrorKind::WouldBlock, e),
        other => other.into(),
    }
}

impl TcpStream {
    /// Connect to `addr`, waiting until the handshake is done (or failed).
    pub fn connect(stack: &Stack, addr: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::connect_within(stack, addr, None)
    }

    /// Connect to `addr`, giving up with [`io::ErrorKind::TimedOut`] after `timeout` (which
    /// must not be zero).
    pub fn connect_timeout(
        stack: &Stack,
        addr: &SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_within(stack, *addr, Some(timeout))
    }

    fn connect_within(
        stack: &Stack,
        addr: SocketAddr,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        // Owned from the start: a failed connect closes the socket on the way out.
        let sock = OwnedSocket::open(stack, false)?;
        stack.connect(sock.id, addr, Wait::Block(timeout))?;
        Ok(TcpStream {
            sock: Arc::new(sock),
        })
    }

    /// A stream owning an accepted connection (blocking, as accepted sockets are in std).
    pub(crate) fn accepted(stack: &Stack, id: SocketId) -> TcpStream {
        TcpStream {
            sock: Arc::new(OwnedSocket::adopt(stack, id, false)),
        }
    }

    fn stack(&self) -> &Stack {
        &self.sock.stack
    }

    fn id(&self) -> SocketId {
        self.sock.id
    }

    /// The remote address; [`io::ErrorKind::NotConnected`] once the connection is gone.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .info()?
            .remote
            .ok_or_else(|| StackError::NotConnected.into())
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .info()?
            .local
            .ok_or_else(|| StackError::NotConnected.into())
    }

    /// Shut down reading, writing or both. `Write` sends a FIN after the queued bytes and
    /// keeps the read side; after `Read`, data that still arrives resets the connection.
    pub fn shutdown(&self, how: NetShutdown) -> io::Result<()> {
        let how = match how {
            NetShutdown::Read => Shutdown::Read,
            NetShutdown::Write => Shutdown::Write,
            NetShutdown::Both => Shutdown::Both,
        };
        Ok(self.stack().shutdown(self.id(), how)?)
    }

    /// TCP_NODELAY: send small segments at once rather than coalescing them (Nagle off).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        let mut options = self.sock.info()?.options;
        options.nodelay = nodelay;
        Ok(self.stack().set_options(self.id(), options)?)
    }

    /// TCP_NODELAY as set.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.sock.info()?.options.nodelay)
    }

    /// How long a read may wait (`None`: for ever). `Some(Duration::ZERO)` is an error, as
    /// in std.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.sock.settings().read_timeout = timeout;
        Ok(())
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.sock.settings().read_timeout)
    }

    /// How long a write may wait for room in the send buffer (`None`: for ever).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.sock.settings().write_timeout = timeout;
        Ok(())
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.sock.settings().write_timeout)
    }

    /// Non-blocking mode: reads and writes that would wait fail with
    /// [`io::ErrorKind::WouldBlock`], and a lingering close goes on in the background.
    /// Shared by every handle of the connection, as the file status flag is in std.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.sock.settings().nonblocking = nonblocking;
        Ok(())
    }

    /// SO_LINGER: how a close or drop ends the connection (see [the module](crate::net)).
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.sock.settings().linger = linger;
        Ok(())
    }

    /// The linger setting.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        Ok(self.sock.settings().linger)
    }

    /// Another handle to the same connection, sharing its settings. Closing or dropping a
    /// handle does nothing while another one is left; the last one closes.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            sock: self.sock.clone(),
        })
    }

    /// The error the connection ended with (reset, refused, timed out), reported once.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let error = self.sock.info()?.ready.error;
        let mut settings = self.sock.settings();
        match error {
            Some(e) if e != StackError::WouldBlock && !settings.error_taken => {
                settings.error_taken = true;
                Ok(Some(e.into()))
            }
            _ => Ok(None),
        }
    }

    /// Read without consuming: the next read returns the same bytes. Waits as a read does.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let data = self
            .stack()
            .peek(self.id(), buf.len(), self.wait(true))
            .map_err(timeout_is_would_block)?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    /// Close now by the linger setting and say how it ended (std has no such call; drop does
    /// the same and logs the outcome). A lingering close that ran out and reset is `Ok` with
    /// [`CloseOutcome::Reset`]; `Err` means the close could not be carried out (the stack
    /// stopped). While other handles from [`TcpStream::try_clone`] remain, this closes
    /// nothing and answers [`CloseOutcome::Nothing`].
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// # use lingerstack_stack::net::{TcpListener, TcpStream};
    /// # use lingerstack_stack::{CloseOutcome, CloseReason, MemoryLink, Stack};
    /// # let (a, b) = MemoryLink::pair(1500);
    /// # let server = Stack::builder().ipv4(Ipv4Addr::new(10, 0, 0, 1), 24).mac([2, 0, 0, 0, 0, 1]).start(a)?;
    /// # let client = Stack::builder().ipv4(Ipv4Addr::new(10, 0, 0, 2), 24).start(b)?;
    /// # let listener = TcpListener::bind(&server, "10.0.0.1:7".parse().unwrap())?;
    /// let stream = TcpStream::connect(&client, "10.0.0.1:7".parse().unwrap())?;
    /// stream.set_linger(Some(std::time::Duration::ZERO))?;
    /// assert_eq!(stream.close()?, CloseOutcome::Reset(CloseReason::LocalAbort));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(self) -> io::Result<CloseOutcome> {
        match Arc::try_unwrap(self.sock) {
            Ok(sock) => Ok(sock.close()?),
            Err(_shared) => Ok(CloseOutcome::Nothing),
        }
    }

    /// How a read (`reading`) or write waits by the settings.
    fn wait(&self, reading: bool) -> Wait {
        let settings = self.sock.settings();
        if settings.nonblocking {
            Wait::No
        } else if reading {
            Wait::Block(settings.read_timeout)
        } else {
            Wait::Block(settings.write_timeout)
        }
    }

    fn read_bytes(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stack()
            .recv_into(self.id(), buf, self.wait(true))
            .map_err(timeout_is_would_block)
    }

    fn write_bytes(&self, data: &[u8]) -> io::Result<usize> {
        match self.stack().send(self.id(), data, self.wait(false)) {
            Ok(n) => Ok(n),
            // Part went out before the error (or the timeout): report that part, as write does.
            Err(failure) if failure.bytes > 0 => Ok(failure.bytes),
            Err(failure) => Err(timeout_is_would_block(failure.error)),
        }
    }
}

fn check_timeout(timeout: Option<Duration>) -> io::Result<()> {
    if timeout == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(())
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_bytes(buf)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_bytes(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_bytes(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_bytes(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
