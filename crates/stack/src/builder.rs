//! [`StackBuilder`]: start an engine from a few settings instead of a whole [`StackConfig`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::api::Stack;
use crate::config::{Cidr, StackConfig};
use crate::link::Link;
use lingerstack_core::DeviceOptions;
use lingerstack_core::link::PcapSink;

/// Settings of a new stack; [`StackBuilder::start`] brings it up on a link.
///
/// Made by [`Stack::builder`]. Every setter takes the builder and returns it, so a stack is
/// one expression:
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use std::time::Duration;
/// use lingerstack_stack::{MemoryLink, Stack};
///
/// let (link, _other_end) = MemoryLink::pair(1500);
/// let stack: Stack = Stack::builder()
///     .ipv4(Ipv4Addr::new(10, 0, 0, 2), 24)
///     .gateway(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
///     .close_deadline(Duration::from_secs(30))
///     .start(link)?;
/// # stack.stop(Duration::ZERO);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct StackBuilder {
    config: StackConfig,
    pcap: Option<PathBuf>,
    /// `Some(false)`: offloads off; unset: on where the link has them.
    offload: Option<bool>,
}

impl StackBuilder {
    /// The IPv4 address and its prefix length (`24` for a /24).
    pub fn ipv4(mut self, addr: Ipv4Addr, prefix: u8) -> Self {
        self.config.ipv4 = Some(Cidr { addr, prefix });
        self
    }

    /// The global IPv6 address and its prefix length; a link-local address comes with it.
    pub fn ipv6(mut self, addr: Ipv6Addr, prefix: u8) -> Self {
        self.config.ipv6 = Some(Cidr { addr, prefix });
        self
    }

    /// The default gateway of the address's family (call once per family).
    pub fn gateway(mut self, addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => self.config.gateway_v4 = Some(v4),
            IpAddr::V6(v6) => self.config.gateway_v6 = Some(v6),
        }
        self
    }

    /// The stack's own MAC address (default 02:00:00:00:00:02); it must be unicast and differ
    /// from the other side's.
    pub fn mac(mut self, mac: [u8; 6]) -> Self {
        self.config.mac = mac;
        self
    }

    /// How long a close that finishes in the background may take before it is reset
    /// (default 60 s). It bounds the default close and a non-blocking lingering one.
    pub fn close_deadline(mut self, deadline: Duration) -> Self {
        self.config.close_deadline = deadline;
        self
    }

    /// The whole configuration, for the settings that have no setter of their own. It
    /// replaces everything set before, so call it first.
    pub fn config(mut self, config: StackConfig) -> Self {
        self.config = config;
        self
    }

    /// Write every frame the stack receives and sends to a pcap file at `path` (created, or
    /// truncated). [`Stack::reopen_pcap`] starts it afresh after log rotation.
    pub fn pcap(mut self, path: impl Into<PathBuf>) -> Self {
        self.pcap = Some(path.into());
        self
    }

    /// Use the link's offloads (TCP super-segments and partial checksums over a virtio-net
    /// header, as a `TapLink` opened with them has): on by default where the link has them.
    /// `false` asks the link to turn them off, so it moves plain frames of at most the MTU.
    pub fn offload(mut self, on: bool) -> Self {
        self.offload = Some(on);
        self
    }

    /// Start the engine on `link` (a `lingerstack::tap::TapLink`, one end of a
    /// [`MemoryLink`](crate::MemoryLink) pair, or any other [`Link`]).
    pub fn start<L: Link + 'static>(self, link: L) -> io::Result<Stack> {
        let pcap = match &self.pcap {
            Some(path) => Some(PcapSink::create(path).map_err(|e| {
                io::Error::new(e.kind(), format!("pcap file {}: {e}", path.display()))
            })?),
            None => None,
        };
        let options = DeviceOptions {
            pcap,
            offload: self.offload.unwrap_or(true),
            ..DeviceOptions::default()
        };
        Stack::start(self.config, Box::new(link), options, None)
    }
}
