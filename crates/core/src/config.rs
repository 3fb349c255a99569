//! Static configuration of one engine: addresses, buffers, bounds.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// An address with its prefix length, as in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr<A> {
    /// The interface address.
    pub addr: A,
    /// The prefix length.
    pub prefix: u8,
}

/// Everything the engine needs to bring an interface up.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// The stack's own MAC (must differ from the kernel side's).
    pub mac: [u8; 6],
    /// IPv4 address, if any.
    pub ipv4: Option<Cidr<Ipv4Addr>>,
    /// IPv6 global address, if any (a link-local address is derived from the MAC).
    pub ipv6: Option<Cidr<Ipv6Addr>>,
    /// IPv4 default gateway.
    pub gateway_v4: Option<Ipv4Addr>,
    /// IPv6 default gateway.
    pub gateway_v6: Option<Ipv6Addr>,
    /// Default receive buffer of new TCP sockets, bytes.
    pub rx_buffer: usize,
    /// Default send buffer of new TCP sockets, bytes.
    pub tx_buffer: usize,
    /// Largest listen backlog: connections a listener holds ready to be accepted. A SYN that
    /// finds the backlog full is dropped (the client retransmits), not reset.
    pub max_backlog: usize,
    /// Most half-open connections (SYN received, SYN-ACK sent, no ACK yet) per listener; a new
    /// SYN beyond it evicts the oldest, so a SYN flood cannot lock real clients out.
    pub max_half_open: usize,
    /// Close deadline of a graceful background close (close-semantics C24).
    pub close_deadline: Duration,
    /// How long an aborted socket may keep retrying its RST before it is freed
    /// (the neighbour may never resolve, smoltcp issue 1097).
    pub rst_retry: Duration,
    /// Most TIME-WAIT sockets kept; the oldest is freed first beyond that. A smoltcp socket
    /// in TIME-WAIT still holds both its buffers, so the cap bounds that memory too.
    pub max_time_wait: usize,
    /// Seed for smoltcp (ISNs, ports); `None` takes one from the OS.
    pub random_seed: Option<u64>,
    /// A connect whose SYN gets no answer fails after this long (Windows: about 21 s).
    pub connect_timeout: Duration,
    /// A connection whose peer answers nothing for this long while data waits to be
    /// acknowledged is aborted: a vanished peer must not hang a caller for ever (an idle
    /// connection is keep-alive's business, `TcpOptions::keep_alive`). It must exceed smoltcp's longest retransmission and zero-window probe
    /// interval (60 s), or a live peer that keeps its window shut would be cut off.
    pub peer_timeout: Duration,
}

/// The largest socket buffer smoltcp accepts (its window scaling stops at 1 GiB).
pub const MAX_BUFFER: usize = 1 << 30;

impl StackConfig {
    /// Check the values that would otherwise fail deep inside smoltcp.
    pub fn validate(&self) -> Result<(), String> {
        for (name, size) in [("rx_buffer", self.rx_buffer), ("tx_buffer", self.tx_buffer)] {
            if size == 0 || size > MAX_BUFFER {
                return Err(format!("{name} {size} is outside 1..={MAX_BUFFER}"));
            }
        }
        if self.max_backlog == 0 {
            return Err("max_backlog must be at least 1".into());
        }
        if self.max_half_open == 0 {
            return Err("max_half_open must be at least 1".into());
        }
        Ok(())
    }
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            mac: [0x02, 0, 0, 0, 0, 0x02],
            ipv4: None,
            ipv6: None,
            gateway_v4: None,
            gateway_v6: None,
            rx_buffer: 256 * 1024,
            tx_buffer: 256 * 1024,
            max_backlog: 128,
            max_half_open: 1024,
            close_deadline: Duration::from_secs(60),
            rst_retry: Duration::from_secs(3),
            max_time_wait: 256,
            random_seed: None,
            connect_timeout: Duration::from_secs(21),
            peer_timeout: Duration::from_secs(100),
        }
    }
}
