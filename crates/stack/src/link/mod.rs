//! Links: where the engine's Ethernet frames come from and go to.
//!
//! A [`Link`] moves whole frames and nothing else. The engine wraps the one it is given in a
//! single smoltcp device ([`device::LinkDevice`]) that owns the reusable frame buffers, the
//! counters and the optional middleware (pcap, fault injection), so a link driver stays a thin
//! layer over its OS object: a TAP file descriptor, or a channel for the in-memory link.

use std::io;
use std::sync::Arc;

/// Ethernet frames in and out of one network device.
///
/// Implementations are non-blocking: `recv` and `send` never wait. The engine registers the
/// link with its mio poll once and calls `recv` until it returns `Ok(None)` after every wake-up.
pub trait Link: Send + 'static {
    /// Read one frame into `buf` (which is at least [`Link::mtu`] + 14 bytes long).
    ///
    /// `Ok(Some(n))`: a frame of `n` bytes. `Ok(None)`: nothing to read now. `Err(_)`: the link
    /// failed (device removed, fd closed); the engine treats that as "network down".
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;

    /// Write one frame. `Ok(true)`: handed to the device. `Ok(false)`: the device could not take
    /// it now (queue full); the engine counts it as a drop and TCP retransmits. `Err(_)`: the
    /// link failed.
    fn send(&mut self, frame: &[u8]) -> io::Result<bool>;

    /// The IP MTU of the link (the frame is 14 bytes longer).
    fn mtu(&self) -> usize;

    /// Register the link's readiness (readable) with the engine's poll under `token`.
    ///
    /// A link with a file descriptor registers it; a link without one (the in-memory link)
    /// keeps `waker`, the engine's own waker (mio allows one per poll), and wakes it when a
    /// frame arrives: the engine reads its link after every wake-up.
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        waker: &Arc<mio::Waker>,
    ) -> io::Result<()>;

    /// A short human name for logs and status ("tap ls0", "memory").
    fn describe(&self) -> String;
}

pub mod device;
pub mod fault;
pub mod guard;
pub mod heard;
pub mod memory;
pub mod pcap;

pub use device::LinkDevice;
pub use fault::FaultConfig;
pub use guard::{GuardCounters, Tuple};
pub use memory::MemoryLink;
pub use pcap::PcapSink;
