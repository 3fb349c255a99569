//! Links: where the engine's frames come from and go to.
//!
//! A [`Link`] moves whole frames and nothing else: Ethernet frames (a TAP), or bare IP packets
//! on an IP link ([`Medium::Ip`]: a TUN device, packetdrill's injected packets). The engine wraps the one it is given in a
//! single smoltcp device ([`device::LinkDevice`]) that owns the reusable frame buffers and the
//! link's counters, with the middleware between link and smoltcp as layers (`layer`: pcap,
//! fault injection, the segment guard, in that order from the link), so a link driver stays a
//! thin layer over its OS object: a TAP file descriptor, or a channel for the in-memory link
//! of `lingerstack-stack`.
//!
//! A link knows nothing of how its driver waits: it offers a file descriptor to poll
//! ([`Link::fd`]), or takes a wake hook ([`Link::set_wake`]) that it calls when a frame
//! arrives. The runtime picks whichever the link has.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// Something that wakes the engine's driver (a thread, a poll) when a frame arrives.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// What a link's frames are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Medium {
    /// Ethernet frames (a TAP device): the engine answers ARP and neighbour discovery.
    #[default]
    Ethernet,
    /// Bare IPv4 and IPv6 packets with no link header (a TUN device, a packet injector):
    /// no neighbours to resolve, every routed packet goes straight out.
    Ip,
}

/// Frames in and out of one network device.
///
/// Implementations are non-blocking: `recv` and `send` never wait. The engine calls `recv`
/// until it returns `Ok(None)` every time it is polled.
pub trait Link: Send + 'static {
    /// Read one frame into `buf` (which is at least [`Link::mtu`] + 14 bytes long; with a
    /// virtio-net header, [`vnet::VNET_HDR_LEN`] + 65535 + 14, and the header comes first).
    ///
    /// `Ok(Some(n))`: a frame of `n` bytes. `Ok(None)`: nothing to read now. `Err(_)`: the link
    /// failed (device removed, fd closed); the engine treats that as "network down".
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;

    /// Write one frame. `Ok(true)`: handed to the device. `Ok(false)`: the device could not take
    /// it now (queue full); the engine counts it as a drop and TCP retransmits. `Err(_)`: the
    /// link failed.
    fn send(&mut self, frame: &[u8]) -> io::Result<bool>;

    /// The IP MTU of the link (an Ethernet frame is 14 bytes longer).
    fn mtu(&self) -> usize;

    /// What the frames are: Ethernet (the default) or bare IP packets.
    fn medium(&self) -> Medium {
        Medium::Ethernet
    }

    /// A file descriptor that becomes readable when a frame waits, for the driver to poll.
    /// `None` (the default): the link has none and wakes its driver through [`Link::set_wake`].
    fn fd(&self) -> Option<RawFd> {
        None
    }

    /// Keep `wake` and call it whenever a frame arrives. Links with a file descriptor ignore
    /// it (the default).
    fn set_wake(&mut self, wake: Wake) {
        let _ = wake;
    }

    /// A short human name for logs and status ("tap ls0", "memory").
    fn describe(&self) -> String;

    /// Whether every frame this link moves starts with a virtio-net header
    /// ([`vnet::VNET_HDR_LEN`] bytes): `recv` puts one in front of each frame and `send` is
    /// given one. Fixed for the link's life. Default: no. A link that wraps another must pass
    /// this and [`Link::set_offload`] on, or the device misreads the inner link's frames.
    fn vnet_header(&self) -> bool {
        false
    }

    /// Turn the link's offloads on or off: with them on, the other side may hand over TCP
    /// super-segments (up to 64 KiB) and partial checksums, and takes them in return (the
    /// header says which). Returns whether they are on afterwards; a link without a virtio-net
    /// header has none (the default).
    fn set_offload(&mut self, on: bool) -> bool {
        let _ = on;
        false
    }
}

pub mod device;
pub mod fault;
pub mod guard;
pub mod heard;
mod layer;
pub mod pcap;
pub mod queue;
#[cfg(test)]
mod test_frame;
pub mod vnet;

pub use device::LinkDevice;
pub use fault::FaultConfig;
pub use guard::{GuardCounters, Tuple};
pub use pcap::PcapSink;
pub use queue::{FrameQueues, QueueLink};
