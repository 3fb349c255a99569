//! [`Stack`]: the handle application threads use to call the engine.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, unbounded};

use crate::command::{
    CloseMode, CloseOutcome, Command, Done, Failure, KeepAlive, Lent, Outcome, Request, Responder,
    Shutdown, SocketEvent, SocketId, SocketInfo, TcpOptions, Wait,
};
use crate::config::StackConfig;
use crate::counters::Counters;
use crate::error::StackError;
use crate::link::Link;
use lingerstack_core::{DeviceOptions, Engine};

struct Inner {
    commands: Sender<Command>,
    doorbell: Arc<crate::runner::Doorbell>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A handle to a running engine. Cheap to clone; every method may be called from any thread.
/// The sockets of [`crate::net`] and `crate::tokio` hold a handle each, so the engine runs
/// until the last handle and the last such socket are gone (or [`Stack::stop`]); then it
/// resets what is open, gives closing connections 2 s, and stops.
#[derive(Clone)]
pub struct Stack {
    inner: Arc<Inner>,
}

impl Stack {
    /// A [`StackBuilder`](crate::StackBuilder): addresses and bounds, then `start` on a link.
    pub fn builder() -> crate::builder::StackBuilder {
        crate::builder::StackBuilder::default()
    }

    /// Start an engine on `link`. Readiness changes of watched sockets go to `events`.
    pub fn start(
        config: StackConfig,
        link: Box<dyn Link>,
        options: DeviceOptions,
        events: Option<Sender<SocketEvent>>,
    ) -> io::Result<Stack> {
        // Engine time 0 is now: the runner's clock counts from here, and the engine's pcap
        // stamps its frames from the wall-clock time of this moment.
        let origin = std::time::Instant::now();
        let mut options = options;
        options.pcap = options
            .pcap
            .map(|p| p.with_epoch(std::time::SystemTime::now()));
        let engine = Engine::new(
            config,
            link,
            options,
            lingerstack_core::Instant::from_micros(0),
        )?;
        let (commands, rx) = unbounded();
        let (doorbell, thread) = crate::runner::spawn(engine, rx, events, origin)?;
        Ok(Stack {
            inner: Arc::new(Inner {
                commands,
                doorbell,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Send a request whose answer goes to `reply` (for overlapped calls and the facade).
    pub fn submit(&self, request: Request, reply: Responder) {
        let command = Command { request, reply };
        match self.inner.commands.send(command) {
            Ok(()) => {
                self.inner.doorbell.ring();
            }
            Err(crossbeam_channel::SendError(command)) => {
                command.reply.send(Err(StackError::NetworkDown.into()))
            }
        }
    }

    /// Send a request and wait for its answer. An engine that has gone away answers NetworkDown.
    pub fn call(&self, request: Request) -> Outcome {
        let slot = crate::command::ReplySlot::mine();
        self.submit(request, Responder::slot(&slot));
        slot.wait().unwrap_or(Err(StackError::NetworkDown.into()))
    }

    fn call_unit(&self, request: Request) -> Result<(), StackError> {
        self.call(request).map(|_| ()).map_err(|f| f.error)
    }

    /// A new TCP socket.
    pub fn open(&self) -> Result<SocketId, StackError> {
        match self.call(Request::Open).map_err(|f| f.error)? {
            Done::Socket(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    /// Bind to a local address (port 0: an ephemeral port).
    pub fn bind(&self, id: SocketId, addr: SocketAddr) -> Result<(), StackError> {
        self.call_unit(Request::Bind(id, addr))
    }

    /// Listen with `backlog` pending connections.
    pub fn listen(&self, id: SocketId, backlog: usize) -> Result<(), StackError> {
        self.call_unit(Request::Listen(id, backlog))
    }

    /// Accept a connection.
    pub fn accept(&self, id: SocketId, wait: Wait) -> Result<(SocketId, SocketAddr), StackError> {
        match self.call(Request::Accept(id, wait)).map_err(|f| f.error)? {
            Done::Accepted(id, peer) => Ok((id, peer)),
            other => Err(unexpected(other)),
        }
    }

    /// Connect (non-blocking: `WouldBlock` means under way).
    pub fn connect(&self, id: SocketId, addr: SocketAddr, wait: Wait) -> Result<(), StackError> {
        self.call_unit(Request::Connect(id, addr, wait))
    }

    /// Queue bytes; blocking waits until all are queued. The failure carries bytes queued so far.
    pub fn send(&self, id: SocketId, data: &[u8], wait: Wait) -> Result<usize, Failure> {
        // SAFETY: `call` waits until the engine has answered or dropped the request (the slot
        // counts its responders), so `data` outlives every use the engine makes of it.
        let lent = unsafe { Lent::reading(data) };
        match self.call(Request::SendLent(id, lent, wait))? {
            Done::Sent(n) => Ok(n),
            other => Err(unexpected(other).into()),
        }
    }

    /// Receive into `buf` (up to its length); 0 is end of stream (or an empty `buf`). The
    /// engine copies straight from the socket into `buf`: one copy, no allocation.
    pub fn recv_into(&self, id: SocketId, buf: &mut [u8], wait: Wait) -> Result<usize, StackError> {
        // SAFETY: `call` waits until the engine has answered or dropped the request, and `buf`
        // is borrowed mutably until then, so nothing else touches it while the engine writes.
        let lent = unsafe { Lent::writing(buf) };
        match self
            .call(Request::RecvLent(id, lent, wait))
            .map_err(|f| f.error)?
        {
            Done::ReceivedInto(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// Receive up to `max` bytes; an empty vector is end of stream.
    pub fn recv(&self, id: SocketId, max: usize, wait: Wait) -> Result<Vec<u8>, StackError> {
        match self
            .call(Request::Recv(id, max, wait))
            .map_err(|f| f.error)?
        {
            Done::Received(data) => Ok(data),
            other => Err(unexpected(other)),
        }
    }

    /// Copy up to `max` received bytes without consuming them (MSG_PEEK); empty is end of
    /// stream.
    pub fn peek(&self, id: SocketId, max: usize, wait: Wait) -> Result<Vec<u8>, StackError> {
        match self
            .call(Request::Peek(id, max, wait))
            .map_err(|f| f.error)?
        {
            Done::Received(data) => Ok(data),
            other => Err(unexpected(other)),
        }
    }

    /// Shut down one or both directions.
    pub fn shutdown(&self, id: SocketId, how: Shutdown) -> Result<(), StackError> {
        self.call_unit(Request::Shutdown(id, how))
    }

    /// Close by `mode`.
    pub fn close(&self, id: SocketId, mode: CloseMode) -> Result<CloseOutcome, StackError> {
        match self.call(Request::Close(id, mode)).map_err(|f| f.error)? {
            Done::Closed(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    /// Release blocked and overlapped calls on the socket without closing it.
    pub fn cancel(&self, id: SocketId) -> Result<(), StackError> {
        self.call_unit(Request::Cancel(id))
    }

    /// Set TCP options.
    pub fn set_options(&self, id: SocketId, options: TcpOptions) -> Result<(), StackError> {
        self.call_unit(Request::SetOptions(id, options))
    }

    /// Turn TCP keep-alive on with `keep_alive`'s times (see [`KeepAlive`]; `KeepAlive::WINDOWS`
    /// is what SO_KEEPALIVE means), or off with `None`. On a listener, the connections it
    /// accepts inherit it. A peer that answers no probe is reset after
    /// [`KeepAlive::give_up_after`] of silence: calls in progress then fail with
    /// [`StackError::NetReset`], later ones with [`StackError::TimedOut`]. Times of zero or
    /// above [`KeepAlive::MAX_TIME`], or a probe count outside 1..=255, are `InvalidInput`.
    pub fn set_keep_alive(
        &self,
        id: SocketId,
        keep_alive: Option<KeepAlive>,
    ) -> Result<(), StackError> {
        self.call_unit(Request::SetKeepAlive(id, keep_alive))
    }

    /// Watch (or stop watching) a socket's readiness through the event sink.
    pub fn watch(&self, id: SocketId, on: bool) -> Result<(), StackError> {
        self.call_unit(Request::Watch(id, on))
    }

    /// A socket's state.
    pub fn info(&self, id: SocketId) -> Result<SocketInfo, StackError> {
        match self.call(Request::Info(id)).map_err(|f| f.error)? {
            Done::Info(info) => Ok(*info),
            other => Err(unexpected(other)),
        }
    }

    /// Every socket's state, closing ones included.
    pub fn sockets(&self) -> Result<Vec<SocketInfo>, StackError> {
        match self.call(Request::List).map_err(|f| f.error)? {
            Done::Sockets(list) => Ok(list),
            other => Err(unexpected(other)),
        }
    }

    /// Engine counters.
    pub fn counters(&self) -> Result<Counters, StackError> {
        match self.call(Request::Counters).map_err(|f| f.error)? {
            Done::Counters(c) => Ok(*c),
            other => Err(unexpected(other)),
        }
    }

    /// Start the engine's pcap file afresh at the same path (after log rotation, SIGHUP).
    /// Without a pcap there is nothing to do; `InvalidState` when the file could not be
    /// reopened (the log says why).
    pub fn reopen_pcap(&self) -> Result<(), StackError> {
        self.call_unit(Request::ReopenPcap)
    }

    /// Reset open connections, give closing ones `grace`, stop the engine and join its thread.
    pub fn stop(&self, grace: Duration) {
        let _ = self.call(Request::Stop { grace });
        self.join();
    }

    /// Wait for the engine thread to end (after a stop or a link failure).
    pub fn join(&self) {
        let thread = self
            .inner
            .thread
            .lock()
            .map(|mut t| t.take())
            .unwrap_or(None);
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            log::error!("engine thread panicked");
        }
    }
}

fn unexpected(done: Done) -> StackError {
    log::error!("engine answered with an unexpected {done:?}");
    StackError::InvalidState
}
