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
//!
//! The layers read Ethernet frames. On an IP link ([`Medium::Ip`]) the device puts a stand-in
//! Ethernet header (fixed addresses, the EtherType of the packet's IP version) in front of each
//! packet on its way through the layers and takes it off again at either end, so every layer
//! works unchanged on both media (a pcap of an IP link shows those stand-in headers).

use std::io;

use smoltcp::phy::{self, DeviceCapabilities};
use smoltcp::time::Instant;

use super::fault::{FaultConfig, Faults};
use super::guard::SegmentGuard;
use super::heard::PeerKey;
use super::layer::{FaultLayer, GuardLayer, Layers, PcapLayer, Verdict};
use super::pcap::PcapSink;
use super::{Link, Medium};
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

/// The bytes in front of a packet while it crosses the layers: 14 for the stand-in Ethernet
/// header on an IP link, 0 on an Ethernet link (the frame already has its own).
fn stand_in_len(medium: Medium) -> usize {
    match medium {
        Medium::Ethernet => 0,
        Medium::Ip => ETHERNET_HEADER,
    }
}

/// Write the stand-in Ethernet header for the IP packet that follows it in `frame`.
fn write_stand_in(frame: &mut [u8]) {
    let ethertype: u16 = match frame.get(ETHERNET_HEADER).map(|b| b >> 4) {
        Some(4) => 0x0800,
        Some(6) => 0x86dd,
        // Not IP: a type no layer looks into.
        _ => 0x88b5,
    };
    if let Some(header) = frame.get_mut(..ETHERNET_HEADER) {
        header[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        header[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
        header[12..].copy_from_slice(&ethertype.to_be_bytes());
    }
}

/// The transmit half: everything a [`TxToken`] needs, split from the receive buffer so that
/// smoltcp can hold a receive and a transmit token at once.
struct TxSide {
    wire: Wire,
    layers: Layers,
    /// The frame as the layers see it: `stand_in` bytes, then what smoltcp wrote.
    buf: Vec<u8>,
    /// Length of the stand-in header ([`stand_in_len`]).
    stand_in: usize,
    /// The time of the device call that handed out the current token (layers decide by it; a
    /// token's `consume` is not given the time).
    now: Instant,
}

impl TxSide {
    /// A frame smoltcp wrote into `buf` after the stand-in header: through the layers to the
    /// link.
    fn transmit(&mut self, len: usize) {
        if self.stand_in > 0 {
            write_stand_in(&mut self.buf);
        }
        let total = self.stand_in + len;
        if let Verdict::Pass(n) = self.layers.outbound(&mut self.buf[..total], self.now)
            && let Some(frame) = self.buf.get(self.stand_in..n)
        {
            self.wire.send(frame);
        }
        self.flush_held(self.now);
    }

    /// Send the outgoing frames the layers kept (delayed, reordered or duplicated) that are due.
    fn flush_held(&mut self, now: Instant) {
        while let Some(frame) = self.layers.release_out(now) {
            if let Some(frame) = frame.get(self.stand_in..) {
                self.wire.send(frame);
            }
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
    /// The frame being received as the layers see it (stand-in header included).
    rx_buf: Vec<u8>,
    /// Where the bytes smoltcp reads start and end in `rx_buf`.
    rx_start: usize,
    rx_len: usize,
    tx: TxSide,
    mtu: usize,
    medium: Medium,
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
        let medium = link.medium();
        // Room for an Ethernet header on either medium (the stand-in one on an IP link).
        let frame = mtu + ETHERNET_HEADER;
        // Faults stay on even when inert: the blackhole switches can be flipped at run time.
        let layers = Layers {
            pcap: PcapLayer(pcap),
            faults: FaultLayer::new(Faults::new(faults, seed)),
            guard: GuardLayer::default(),
        };
        LinkDevice {
            rx_buf: vec![0; frame],
            rx_start: 0,
            rx_len: 0,
            tx: TxSide {
                wire: Wire {
                    link,
                    counters: Counters::default(),
                    failure: None,
                },
                layers,
                buf: vec![0; frame],
                stand_in: stand_in_len(medium),
                now: Instant::ZERO,
            },
            mtu,
            medium,
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

    /// What the link's frames are.
    pub fn medium(&self) -> Medium {
        self.medium
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
        let stand_in = self.tx.stand_in;
        self.rx_start = stand_in;
        loop {
            if let Some(frame) = self.tx.layers.release_in(now) {
                if frame.len() <= self.rx_buf.len() && frame.len() >= stand_in {
                    self.rx_len = frame.len();
                    self.rx_buf[..self.rx_len].copy_from_slice(&frame);
                    return true;
                }
                continue;
            }
            let Some(n) = self.tx.wire.recv(&mut self.rx_buf[stand_in..]) else {
                return false;
            };
            if stand_in > 0 {
                write_stand_in(&mut self.rx_buf);
            }
            let frame = &mut self.rx_buf[..stand_in + n];
            if let Verdict::Pass(len) = self.tx.layers.inbound(frame, now)
                && len >= stand_in
            {
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
        let end = side.stand_in + len;
        if side.buf.len() < end {
            side.buf.resize(end, 0);
        }
        let result = f(&mut side.buf[side.stand_in..end]);
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
        let packet = &self.rx_buf[self.rx_start..self.rx_len];
        Some((RxToken(packet), TxToken(&mut self.tx)))
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
        match self.medium {
            Medium::Ethernet => {
                caps.medium = phy::Medium::Ethernet;
                caps.max_transmission_unit = self.mtu + ETHERNET_HEADER;
            }
            Medium::Ip => {
                caps.medium = phy::Medium::Ip;
                caps.max_transmission_unit = self.mtu;
            }
        }
        caps.max_burst_size = None;
        caps
    }
}
