//! `struct tcp_keepalive`, the argument of WSPIoctl(SIO_KEEPALIVE_VALS).

use std::time::Duration;

use lingerstack_stack::KeepAlive;

use crate::error::{WsaError, WsaResult};

/// `struct tcp_keepalive` as Windows defines it: three `u_long`s (32 bits on Windows), in
/// native byte order: on/off, idle time in milliseconds, probe interval in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// Non-zero: keep-alive on.
    pub onoff: u32,
    /// Milliseconds without a segment from the peer before the first probe.
    pub keepalivetime: u32,
    /// Milliseconds between unanswered probes.
    pub keepaliveinterval: u32,
}

impl TcpKeepalive {
    /// Size of the C struct.
    pub const SIZE: usize = 12;

    /// Parse the ioctl's input buffer: NULL or shorter than the struct is WSAEFAULT.
    pub fn from_bytes(input: Option<&[u8]>) -> WsaResult<TcpKeepalive> {
        let b = input
            .filter(|b| b.len() >= Self::SIZE)
            .ok_or(WsaError::FAULT)?;
        let word = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(TcpKeepalive {
            onoff: word(0),
            keepalivetime: word(4),
            keepaliveinterval: word(8),
        })
    }

    /// The 12-byte C struct.
    pub fn to_bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&self.onoff.to_ne_bytes());
        b[4..8].copy_from_slice(&self.keepalivetime.to_ne_bytes());
        b[8..12].copy_from_slice(&self.keepaliveinterval.to_ne_bytes());
        b
    }

    /// The engine's keep-alive times (Windows' probe count: SIO_KEEPALIVE_VALS does not set
    /// it). A zero time or interval is WSAEINVAL: it would probe without pause.
    pub fn times(self) -> WsaResult<KeepAlive> {
        if self.keepalivetime == 0 || self.keepaliveinterval == 0 {
            return Err(WsaError::INVAL);
        }
        let ms = |v: u32| Duration::from_millis(u64::from(v));
        Ok(KeepAlive::with_times(
            ms(self.keepalivetime),
            ms(self.keepaliveinterval),
        ))
    }
}
