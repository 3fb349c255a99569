//! The socket calls: WSPSocket, WSPBind, WSPListen, WSPAccept, WSPConnect, WSPSend, WSPRecv
//! (blocking, non-blocking and overlapped), WSPShutdown, WSPGetSockName, WSPGetPeerName.

use std::net::SocketAddr;
use std::sync::Arc;

use lingerstack_stack::Request;
use lingerstack_stack::Responder;
use lingerstack_stack::{CloseMode, Shutdown, StackError, Wait};

use crate::callback::run_callback;
use crate::consts::*;
use crate::error::{WsaError, WsaResult};
use crate::overlapped::Overlapped;
use crate::provider::Provider;
use crate::socket::Shared;

/// A WSPAccept condition function: `(caller's address) -> CF_ACCEPT or CF_REJECT`.
pub type Condition<'a> = &'a mut dyn FnMut(SocketAddr) -> i32;

/// Which engine wait a call on this socket uses.
fn wait_of(shared: &Shared) -> Wait {
    if shared.lock().nonblocking {
        Wait::No
    } else {
        Wait::Block(None)
    }
}

fn family_of(addr: &SocketAddr) -> i32 {
    if addr.is_ipv4() { AF_INET } else { AF_INET6 }
}

impl Provider {
    /// WSPSocket(af, type, protocol): a TCP stream socket. `flags` may hold WSA_FLAG_OVERLAPPED
    /// (every socket here supports overlapped calls).
    pub fn socket(&self, af: i32, kind: i32, protocol: i32) -> WsaResult<usize> {
        let inner = self.live()?;
        if af != AF_INET && af != AF_INET6 {
            return Err(WsaError(WSAEAFNOSUPPORT));
        }
        if kind != SOCK_STREAM {
            return Err(WsaError(WSAESOCKTNOSUPPORT));
        }
        if protocol != 0 && protocol != IPPROTO_TCP {
            return Err(WsaError(WSAEPROTONOSUPPORT));
        }
        let id = inner.stack.open()?;
        let options = inner.stack.info(id)?.options;
        let shared = Arc::new(Shared::new(id, af, options));
        self.add_descriptor(&shared).inspect_err(|_| {
            let _ = inner.stack.close(id, CloseMode::Abort);
        })
    }

    /// WSPBind.
    pub fn bind(&self, s: usize, addr: SocketAddr) -> WsaResult<()> {
        let shared = self.descriptor(s)?;
        if family_of(&addr) != shared.family {
            return Err(WsaError(WSAEFAULT));
        }
        self.live()?.stack.bind(shared.id, addr)?;
        let bound = self.live()?.stack.info(shared.id)?.local;
        shared.lock().bound = bound;
        Ok(())
    }

    /// WSPListen with `backlog` (SOMAXCONN: the configured maximum).
    pub fn listen(&self, s: usize, backlog: i32) -> WsaResult<()> {
        let shared = self.descriptor(s)?;
        let backlog = if backlog == SOMAXCONN {
            usize::MAX
        } else {
            backlog.max(1) as usize
        };
        self.live()?.stack.listen(shared.id, backlog)?;
        shared.lock().listening = true;
        Ok(())
    }

    /// WSPAccept, with an optional condition function that accepts or rejects the caller
    /// (a rejected connection is reset and the call fails with WSAECONNREFUSED).
    pub fn accept(
        &self,
        s: usize,
        condition: Option<Condition<'_>>,
    ) -> WsaResult<(usize, SocketAddr)> {
        let listener = self.descriptor(s)?;
        if !listener.lock().listening {
            return Err(WsaError::INVAL);
        }
        listener.lock().reg.reenable(FD_ACCEPT);
        let stack = &self.live()?.stack;
        let (id, peer) = stack.accept(listener.id, wait_of(&listener))?;
        if let Some(condition) = condition {
            let mut verdict = CF_REJECT;
            run_callback(|| verdict = condition(peer));
            if verdict != CF_ACCEPT {
                let _ = stack.close(id, CloseMode::Abort);
                return Err(WsaError::CONNREFUSED);
            }
        }
        // O04: an accepted socket has its listener's properties, its linger setting included.
        let (shared, target, mask) = {
            let l = listener.lock();
            let shared = Arc::new(Shared::new(id, listener.family, l.options));
            {
                let mut st = shared.lock();
                st.linger = l.linger;
                st.nonblocking = l.nonblocking;
                st.keep_alive_times = l.keep_alive_times;
            }
            (shared, l.reg.target.clone(), l.reg.mask)
        };
        let handle = self.add_descriptor(&shared).inspect_err(|_| {
            let _ = stack.close(id, CloseMode::Abort);
        })?;
        if mask != 0 {
            shared.lock().reg.set(handle, target, mask);
        }
        // The engine reported the new socket's first readiness before it had a descriptor:
        // ask for it again, so select and the inherited registration see it.
        let _ = stack.watch(id, true);
        Ok((handle, peer))
    }

    /// WSPConnect. A non-blocking socket answers WSAEWOULDBLOCK while the handshake runs, then
    /// WSAEALREADY, then WSAEISCONN; completion is reported as FD_CONNECT.
    pub fn connect(&self, s: usize, addr: SocketAddr) -> WsaResult<()> {
        let shared = self.descriptor(s)?;
        if family_of(&addr) != shared.family {
            return Err(WsaError(WSAEAFNOSUPPORT));
        }
        if shared.lock().listening {
            return Err(WsaError::INVAL);
        }
        Ok(self
            .live()?
            .stack
            .connect(shared.id, addr, wait_of(&shared))?)
    }

    /// WSPSend: blocking sockets wait until every byte is queued; non-blocking ones queue what
    /// fits (WSAEWOULDBLOCK when nothing does).
    pub fn send(&self, s: usize, data: &[u8]) -> WsaResult<usize> {
        let shared = self.descriptor(s)?;
        let result = self.live()?.stack.send(shared.id, data, wait_of(&shared));
        match result {
            Ok(n) => Ok(n),
            Err(f) if f.error == StackError::WouldBlock => {
                // FD_WRITE is re-enabled by a send that would block.
                let mut actions = Vec::new();
                {
                    let mut st = shared.lock();
                    st.reg.reenable(FD_WRITE);
                    let ready = st.ready;
                    if !ready.writable {
                        // Posted when room appears, by the next readiness change.
                    } else {
                        st.reg.update(&ready, &mut actions);
                    }
                }
                for a in actions {
                    run_callback(|| a.run());
                }
                Err(WsaError::WOULDBLOCK)
            }
            Err(f) => Err(f.error.into()),
        }
    }

    /// WSPRecv into `buf`; 0 means the peer closed gracefully.
    pub fn recv(&self, s: usize, buf: &mut [u8]) -> WsaResult<usize> {
        let shared = self.descriptor(s)?;
        shared.lock().reg.reenable(FD_READ);
        // The engine copies straight into `buf`.
        Ok(self
            .live()?
            .stack
            .recv_into(shared.id, buf, wait_of(&shared))?)
    }

    /// Overlapped WSPRecv of up to `max` bytes. Always pending here: the result arrives through
    /// the operation's completion (returns WSA_IO_PENDING).
    pub fn recv_overlapped(&self, s: usize, max: usize, overlapped: &Overlapped) -> WsaResult<()> {
        let shared = self.descriptor(s)?;
        shared.lock().reg.reenable(FD_READ);
        let inner = self.live()?;
        let id = shared.id;
        let tag = self.park(shared, overlapped.clone())?;
        inner.stack.submit(
            Request::Recv(id, max, Wait::Overlapped),
            Responder::new(inner.completions.clone(), tag),
        );
        Err(WsaError::IO_PENDING)
    }

    /// Overlapped WSPSend: completes once every byte is queued.
    pub fn send_overlapped(&self, s: usize, data: &[u8], overlapped: &Overlapped) -> WsaResult<()> {
        let shared = self.descriptor(s)?;
        let inner = self.live()?;
        let id = shared.id;
        let tag = self.park(shared, overlapped.clone())?;
        inner.stack.submit(
            Request::Send(id, data.to_vec(), Wait::Overlapped),
            Responder::new(inner.completions.clone(), tag),
        );
        Err(WsaError::IO_PENDING)
    }

    /// WSPGetOverlappedResult: `(bytes)` once complete; WSA_IO_INCOMPLETE while pending and not
    /// waiting; the operation's own error if it failed.
    pub fn get_overlapped_result(
        &self,
        s: usize,
        overlapped: &Overlapped,
        wait: bool,
    ) -> WsaResult<usize> {
        self.lookup(s)?;
        if wait {
            while !overlapped.wait(std::time::Duration::from_secs(3600)) {}
        }
        match overlapped.status() {
            (WSA_IO_PENDING, _) => Err(WsaError::IO_INCOMPLETE),
            (0, bytes) => Ok(bytes),
            (error, _) => Err(WsaError(error)),
        }
    }

    /// WSPShutdown: SD_RECEIVE, SD_SEND or SD_BOTH (SD_BOTH is a FIN, and a RST only if data
    /// arrives afterwards).
    pub fn shutdown(&self, s: usize, how: i32) -> WsaResult<()> {
        let shared = self.descriptor(s)?;
        let how = match how {
            SD_RECEIVE => Shutdown::Read,
            SD_SEND => Shutdown::Write,
            SD_BOTH => Shutdown::Both,
            _ => return Err(WsaError::INVAL),
        };
        if shared.lock().listening {
            return Err(WsaError::NOTCONN);
        }
        self.live()?.stack.shutdown(shared.id, how)?;
        if how != Shutdown::Read {
            shared.lock().send_shut = true;
        }
        Ok(())
    }

    /// WSPGetSockName.
    pub fn get_sock_name(&self, s: usize) -> WsaResult<SocketAddr> {
        let shared = self.descriptor(s)?;
        self.live()?
            .stack
            .info(shared.id)?
            .local
            .ok_or(WsaError::INVAL)
    }

    /// WSPGetPeerName.
    pub fn get_peer_name(&self, s: usize) -> WsaResult<SocketAddr> {
        let shared = self.descriptor(s)?;
        self.live()?
            .stack
            .info(shared.id)?
            .remote
            .ok_or(WsaError::NOTCONN)
    }
}
