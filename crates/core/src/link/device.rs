//! The one smoltcp device of the engine: the thin adapter from the device middleware
//! (`layer.rs`: pcap, faults, the segment guard, composed in a fixed order) over a
//! [`Link`] to smoltcp's [`phy::Device`].
//!
//! The device owns the reusable frame buffers and counts what the link moved; everything a
//! frame meets between the link and smoltcp is a layer. Inbound, a frame from the link goes
//! through every layer before smoltcp takes it; outbound, a frame smoltcp wrote goes through
//! them the other way before the link sends it. The pcap is the outermost layer, so it records
//! what crossed the link in both directions: what arrived before any fault, and what left
//! after them.

use std::io;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use super::Link;
use super::fault::{FaultConfig, Faults};
use super::guard::SegmentGuard;
use super::heard::PeerKey;
use super::layer::{FaultLayer, GuardLayer, Layers, PcapLayer, Verdict};
use super::pcap::PcapSink;
use crate::counters::Counters;

/// Ethernet header length: the MTU counts the IP packet only.
const ETHERNET_HEADER: usize = 14;

/// The link itself and what happened on it: frames counted, the first failure.
struct Wire {
    link: Box<dyn Link>,
    counters: Counters,
    failure: Option<io::Error>,
}

impl Wire {
    /// Hand one frame to the link and count it.
    fn send(&mut self, frame: &[u8]) {
        if self.failure.is_some() {
            return;
        }
        match self.link.send(frame) {
            Ok(true) => {
                self.counters.tx_frames += 1;
                self.counters.tx_bytes += frame.len() as u64;
            }
            Ok(false) => self.counters.tx_dropped_full += 1,
            Err(e) => {
                log::error!("{}: send failed: {e}", self.link.describe());
                self.failure = Some(e);
            }
        }
    }

    /// Read one frame into `buf`: its length, or None when there is none (or the link failed).
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.failure.is_some() {
            return None;
        }
        loop {
            match self.link.recv(buf) {
                Ok(Some(n)) if n > buf.len() => self.counters.rx_dropped_oversize += 1,
                Ok(Some(n)) => {
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += n as u64;
                    return Some(n);
                }
                Ok(None) => return None,
                Err(e) => {
                    log::error!("{}: receive failed: {e}", self.link.describe());
                    self.failure = Some(e);
                    return None;
                }
            }
        }
    }
}

/// The transmit half: everything a [`TxToken`] needs, split from the receive buffer so that
/// smoltcp can hold a receive and a transmit token at once.
struct TxSide {
    wire: Wire,
    layers: Layers,
    buf: Vec<u8>,
    /// The time of the device call that handed out the current token (layers decide by it; a
    /// token's `consume` is not given the time).
    now: Instant,
}

impl TxSide {
    /// A frame smoltcp wrote into `buf`: through the layers to the link.
    fn transmit(&mut self, len: usize) {
        if let Verdict::Pass(n) = self.layers.outbound(&mut self.buf[..len], self.now) {
            self.wire.send(&self.buf[..n]);
        }
        self.flush_held(self.now);
    }

    /// Send the outgoing frames the layers kept (delayed, reordered or duplicated) that are due.
    fn flush_held(&mut self, now: Instant) {
        while let Some(frame) = self.layers.release_out(now) {
            self.wire.send(&frame);
        }
    }

    /// Note the time of a device call and send what fell due by then.
    fn tick(&mut self, now: Instant) {
        self.now = now;
        self.flush_held(now);
    }
}

/// A smoltcp [`phy::Device`] over a boxed [`Link`], with the middleware layers between them.
pub struct LinkDevice {
    rx_buf: Vec<u8>,
    rx_len: usize,
    tx: TxSide,
    mtu: usize,
}

impl LinkDevice {
    /// Wrap a link; frame buffers are sized once from its MTU and reused for every frame.
    pub fn new(
        link: Box<dyn Link>,
        pcap: Option<PcapSink>,
        faults: FaultConfig,
        seed: u64,
    ) -> Self {
        let mtu = link.mtu();
        let frame = mtu + ETHERNET_HEADER;
        // Faults stay on even when inert: the blackhole switches can be flipped at run time.
        let layers = Layers {
            pcap: PcapLayer(pcap),
            faults: FaultLayer::new(Faults::new(faults, seed)),
            guard: GuardLayer::default(),
        };
        LinkDevice {
            rx_buf: vec![0; frame],
            rx_len: 0,
            tx: TxSide {
                wire: Wire {
                    link,
                    counters: Counters::default(),
                    failure: None,
                },
                layers,
                buf: vec![0; frame],
                now: Instant::ZERO,
            },
            mtu,
        }
    }

    /// Note (or stop noting) the TCP peer of every frame delivered to smoltcp.
    pub(crate) fn note_peers(&mut self, on: bool) {
        self.tx.layers.guard.heard.set_on(on);
    }

    /// The TCP peers heard from since [`LinkDevice::forget_peers`].
    pub(crate) fn heard_peers(&self) -> &std::collections::HashSet<PeerKey> {
        self.tx.layers.guard.heard.peers()
    }

    /// Forget the peers heard so far.
    pub(crate) fn forget_peers(&mut self) {
        self.tx.layers.guard.heard.clear();
    }

    /// The link's IP MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The link itself (to register it with mio).
    pub fn link_mut(&mut self) -> &mut dyn Link {
        self.tx.wire.link.as_mut()
    }

    /// Frame and drop counters so far (every layer's included).
    pub fn counters(&self) -> Counters {
        let mut c = self.tx.wire.counters.clone();
        self.tx.layers.count(&mut c);
        c
    }

    /// Frames received and sent so far.
    pub fn frames(&self) -> u64 {
        self.tx.wire.counters.rx_frames + self.tx.wire.counters.tx_frames
    }

    /// The segment guard, for the engine to tell it what it did between polls.
    pub(crate) fn guard_mut(&mut self) -> &mut SegmentGuard {
        &mut self.tx.layers.guard.guard
    }

    /// The first error the link reported, if it failed.
    pub fn failure(&self) -> Option<&io::Error> {
        self.tx.wire.failure.as_ref()
    }

    /// When any layer next needs to run (a held frame due either way, or a layer's timer).
    pub fn next_due(&self) -> Option<Instant> {
        self.tx.layers.next_due()
    }

    /// Reopen the pcap file (SIGHUP).
    pub fn reopen_pcap(&mut self) -> io::Result<()> {
        self.tx
            .layers
            .pcap
            .0
            .as_mut()
            .map_or(Ok(()), PcapSink::reopen)
    }

    /// Flush the pcap file.
    pub fn flush(&mut self) {
        if let Some(p) = self.tx.layers.pcap.0.as_mut() {
            p.flush();
        }
    }

    /// Fill `rx_buf` with the next frame to deliver; false when there is none. Frames the
    /// layers kept and that are due now come first, then new ones from the link.
    fn next_frame(&mut self, now: Instant) -> bool {
        loop {
            if let Some(frame) = self.tx.layers.release_in(now) {
                if frame.len() <= self.rx_buf.len() {
                    self.rx_len = frame.len();
                    self.rx_buf[..self.rx_len].copy_from_slice(&frame);
                    return true;
                }
                continue;
            }
            let Some(n) = self.tx.wire.recv(&mut self.rx_buf) else {
                return false;
            };
            if let Verdict::Pass(len) = self.tx.layers.inbound(&mut self.rx_buf[..n], now) {
                self.rx_len = len;
                return true;
            }
        }
    }
}

/// A received frame, borrowed from the device's receive buffer.
pub struct RxToken<'a>(&'a [u8]);

/// Permission to send one frame through the device's transmit buffer.
pub struct TxToken<'a>(&'a mut TxSide);

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let side = self.0;
        if side.buf.len() < len {
            side.buf.resize(len, 0);
        }
        let result = f(&mut side.buf[..len]);
        side.transmit(len);
        result
    }
}

impl phy::Device for LinkDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        self.tx.tick(now);
        if !self.next_frame(now) {
            return None;
        }
        Some((RxToken(&self.rx_buf[..self.rx_len]), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, now: Instant) -> Option<TxToken<'_>> {
        self.tx.tick(now);
        if self.tx.wire.failure.is_some() {
            return None;
        }
        Some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + ETHERNET_HEADER;
        caps.max_burst_size = None;
        caps
    }
}
