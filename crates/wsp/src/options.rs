//! WSPSetSockOpt, WSPGetSockOpt, WSPIoctl, WSPEventSelect, WSPAsyncSelect and
//! WSPEnumNetworkEvents.

use std::sync::Arc;

use lingerstack_stack::CloseReason;

use crate::callback::run_callback;
use crate::consts::*;
use crate::error::{WsaError, WsaResult};
use crate::events::{EventObject, EventTarget, MessageSink, NetworkEvents};
use crate::keepalive::TcpKeepalive;
use crate::linger::Linger;
use crate::provider::Provider;

/// Largest SO_RCVBUF/SO_SNDBUF: buffers are allocated whole when a connection is made, and
/// smoltcp refuses receive buffers over 1 GiB.
const MAX_BUFFER: i32 = 64 << 20;

/// Read a BOOL/int option value of 1 to 4 bytes (Windows accepts short BOOLs for some options).
fn read_int(value: Option<&[u8]>, min_len: usize) -> WsaResult<i32> {
    let v = value.ok_or(WsaError::FAULT)?;
    if v.len() < min_len || v.is_empty() {
        return Err(WsaError::FAULT);
    }
    let mut b = [0u8; 4];
    let n = v.len().min(4);
    b[..n].copy_from_slice(&v[..n]);
    Ok(i32::from_ne_bytes(b))
}

fn write_out(buf: &mut [u8], bytes: &[u8]) -> WsaResult<usize> {
    if buf.len() < bytes.len() {
        return Err(WsaError::FAULT);
    }
    buf[..bytes.len()].copy_from_slice(bytes);
    Ok(bytes.len())
}

impl Provider {
    /// WSPSetSockOpt. `value` None stands for a NULL pointer.
    pub fn set_sock_opt(
        &self,
        s: usize,
        level: i32,
        name: i32,
        value: Option<&[u8]>,
    ) -> WsaResult<()> {
        let shared = self.descriptor(s)?;
        let stack = &self.live()?.stack;
        match (level, name) {
            (SOL_SOCKET, SO_LINGER) => {
                // O01: NULL or shorter than struct linger is WSAEFAULT.
                let v = value.filter(|v| v.len() >= 4).ok_or(WsaError::FAULT)?;
                shared.lock().linger = Linger::from_bytes([v[0], v[1], v[2], v[3]]);
            }
            (SOL_SOCKET, SO_DONTLINGER) => {
                // O03: TRUE clears l_onoff and keeps l_linger.
                let on = read_int(value, 1)? != 0;
                shared.lock().linger.onoff = u16::from(!on);
            }
            (SOL_SOCKET, SO_RCVBUF | SO_SNDBUF) => {
                let size = read_int(value, 4)?;
                if size <= 0 {
                    return Err(WsaError::INVAL);
                }
                // Larger buffers are clamped, as Linux clamps to rmem_max; getsockopt reports
                // the size in force.
                let size = size.min(MAX_BUFFER);
                let mut options = shared.lock().options;
                if name == SO_RCVBUF {
                    options.rx_buffer = size as usize;
                } else {
                    options.tx_buffer = size as usize;
                }
                stack.set_options(shared.id, options)?;
                shared.lock().options = options;
            }
            (SOL_SOCKET, SO_KEEPALIVE) | (IPPROTO_TCP, TCP_NODELAY) => {
                let on = read_int(value, 1)? != 0;
                let mut options = shared.lock().options;
                if name == TCP_NODELAY {
                    options.nodelay = on;
                } else {
                    // Windows: SO_KEEPALIVE on a connection keep-alive already found dead.
                    let info = stack.info(shared.id)?;
                    if info.reason == Some(CloseReason::KeepAlive) {
                        return Err(WsaError::NETRESET);
                    }
                    // Windows' defaults (2 h, 1 s, 10 probes) unless SIO_KEEPALIVE_VALS set times.
                    options.keep_alive = on.then_some(shared.lock().keep_alive_times);
                }
                stack.set_options(shared.id, options)?;
                shared.lock().options = options;
            }
            (SOL_SOCKET, SO_ERROR | SO_TYPE | SO_ACCEPTCONN) => return Err(WsaError::NOPROTOOPT),
            (SOL_SOCKET | IPPROTO_TCP, _) => return Err(WsaError::NOPROTOOPT),
            _ => return Err(WsaError::INVAL),
        }
        Ok(())
    }

    /// WSPGetSockOpt into `buf`; returns the length written.
    pub fn get_sock_opt(
        &self,
        s: usize,
        level: i32,
        name: i32,
        buf: &mut [u8],
    ) -> WsaResult<usize> {
        let shared = self.descriptor(s)?;
        let int = |v: i32| v.to_ne_bytes();
        let st = shared.lock();
        let bytes: [u8; 4] = match (level, name) {
            (SOL_SOCKET, SO_LINGER) => st.linger.to_bytes(),
            (SOL_SOCKET, SO_DONTLINGER) => int(i32::from(st.linger.onoff == 0)),
            (SOL_SOCKET, SO_RCVBUF) => int(st.options.rx_buffer as i32),
            (SOL_SOCKET, SO_SNDBUF) => int(st.options.tx_buffer as i32),
            (SOL_SOCKET, SO_KEEPALIVE) => int(i32::from(st.options.keep_alive.is_some())),
            (SOL_SOCKET, SO_TYPE) => int(SOCK_STREAM),
            (SOL_SOCKET, SO_ACCEPTCONN) => int(i32::from(st.listening)),
            (SOL_SOCKET, SO_ERROR) => {
                drop(st);
                let mut st = shared.lock();
                let e = std::mem::take(&mut st.so_error);
                return write_out(buf, &int(e));
            }
            (IPPROTO_TCP, TCP_NODELAY) => int(i32::from(st.options.nodelay)),
            (SOL_SOCKET | IPPROTO_TCP, _) => return Err(WsaError::NOPROTOOPT),
            _ => return Err(WsaError::INVAL),
        };
        write_out(buf, &bytes)
    }

    /// WSPIoctl for FIONBIO (`arg` in: non-zero for non-blocking) and FIONREAD (`arg` out:
    /// bytes readable).
    pub fn ioctl(&self, s: usize, code: u32, arg: &mut u32) -> WsaResult<()> {
        let shared = self.descriptor(s)?;
        match code {
            FIONBIO => {
                let mut st = shared.lock();
                if *arg == 0 && st.reg.mask != 0 {
                    // O06: an event-selected socket stays non-blocking.
                    return Err(WsaError::INVAL);
                }
                st.nonblocking = *arg != 0;
                Ok(())
            }
            FIONREAD => {
                let info = self.live()?.stack.info(shared.id)?;
                *arg = info.recv_queue.min(u32::MAX as usize) as u32;
                Ok(())
            }
            _ => Err(WsaError::INVAL),
        }
    }

    /// WSPIoctl(SIO_KEEPALIVE_VALS): `input` is a `struct tcp_keepalive` (None stands for a
    /// NULL buffer). Turns keep-alive on with the given idle time and probe interval (and
    /// Windows' 10 probes), or off; SO_KEEPALIVE reports the result. NULL or short: WSAEFAULT;
    /// a zero time or interval with keep-alive on: WSAEINVAL. Accepted connections inherit it.
    pub fn set_keepalive_vals(&self, s: usize, input: Option<&[u8]>) -> WsaResult<()> {
        let shared = self.descriptor(s)?;
        let vals = TcpKeepalive::from_bytes(input)?;
        let mut options = shared.lock().options;
        let times = if vals.onoff != 0 {
            let times = vals.times()?;
            options.keep_alive = Some(times);
            Some(times)
        } else {
            options.keep_alive = None;
            None
        };
        self.live()?.stack.set_options(shared.id, options)?;
        let mut st = shared.lock();
        st.options = options;
        if let Some(times) = times {
            st.keep_alive_times = times;
        }
        Ok(())
    }

    /// WSPEventSelect: record `mask`'s events for `s` and signal `event`; a non-zero mask makes
    /// the socket non-blocking (O06). A mask of 0 cancels the registration.
    pub fn event_select(
        &self,
        s: usize,
        event: Option<Arc<dyn EventObject>>,
        mask: i32,
    ) -> WsaResult<()> {
        if mask != 0 && event.is_none() {
            return Err(WsaError::INVAL);
        }
        self.register(s, event.map(EventTarget::Event), mask)
    }

    /// WSPAsyncSelect: post `mask`'s events to `sink` (the window's message queue).
    pub fn async_select(
        &self,
        s: usize,
        sink: Option<Arc<dyn MessageSink>>,
        mask: i32,
    ) -> WsaResult<()> {
        if mask != 0 && sink.is_none() {
            return Err(WsaError::INVAL);
        }
        self.register(s, sink.map(EventTarget::Message), mask)
    }

    fn register(&self, s: usize, target: Option<EventTarget>, mask: i32) -> WsaResult<()> {
        if mask & !FD_ALL_EVENTS != 0 {
            return Err(WsaError::INVAL);
        }
        let shared = self.descriptor(s)?;
        let mut actions = Vec::new();
        {
            let mut st = shared.lock();
            st.reg.set(s, target, mask);
            if mask != 0 {
                st.nonblocking = true;
            }
            let ready = st.ready;
            st.reg.update(&ready, &mut actions);
        }
        for a in actions {
            run_callback(|| a.run());
        }
        Ok(())
    }

    /// WSPEnumNetworkEvents: the events recorded since the last call (cleared), resetting
    /// `event` if given. After close, WSAENOTSOCK (C18).
    pub fn enum_network_events(
        &self,
        s: usize,
        event: Option<&dyn EventObject>,
    ) -> WsaResult<NetworkEvents> {
        let shared = self.descriptor(s)?;
        // Reset first: an event recorded between the two is then signalled again, not lost.
        if let Some(e) = event {
            run_callback(|| e.reset());
        }
        Ok(shared.lock().reg.take())
    }
}
