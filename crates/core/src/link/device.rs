//! The one smoltcp device of the engine: a [`Link`] plus reusable buffers, counters and the
//! middleware: pcap, faults, and the segment guard.
//!
//! Inbound, a frame is written to the pcap, then meets the faults (which may drop or hold it),
//! then the guard (which may drop, hold or rewrite it) just before smoltcp takes it, so the
//! guard judges each segment against the connection state of the moment it is delivered.
//! Outbound, the guard learns from each frame smoltcp sends before the faults may drop it.

use std::io;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use super::Link;
use super::fault::{FaultConfig, Faults, Verdict, Way};
use super::guard::{GuardVerdict, SegmentGuard};
use super::heard::{Heard, PeerKey};
use super::pcap::PcapSink;
use crate::counters::Counters;

/// Ethernet header length: the MTU counts the IP packet only.
const ETHERNET_HEADER: usize = 14;

/// The transmit half: everything a [`TxToken`] needs, split from the receive buffer so that
/// smoltcp can hold a receive and a transmit token at once.
struct TxSide {
    link: Box<dyn Link>,
    buf: Vec<u8>,
    pcap: Option<PcapSink>,
    faults: Option<Faults>,
    guard: SegmentGuard,
    counters: Counters,
    failure: Option<io::Error>,
    /// The time of the device call that handed out the current token (the fault middleware
    /// decides by it; a token's `consume` is not given the time).
    now: Instant,
}

impl TxSide {
    /// A frame smoltcp wrote into `buf`: recorded, then through the faults to the link.
    fn transmit(&mut self, len: usize) {
        if let Some(pcap) = self.pcap.as_mut() {
            pcap.write(&self.buf[..len], self.now);
        }
        self.guard.outbound(&self.buf[..len]);
        let verdict = match self.faults.as_mut() {
            Some(f) => f.decide(Way::Out, &mut self.buf[..len], self.now, &mut self.counters),
            None => Verdict::Pass,
        };
        if verdict == Verdict::Pass {
            let frame = std::mem::take(&mut self.buf);
            self.send(&frame[..len]);
            self.buf = frame;
        }
        self.flush_held(self.now);
    }

    /// Send the held outgoing frames (delayed, reordered or duplicated) that are due.
    fn flush_held(&mut self, now: Instant) {
        while let Some(frame) = self.faults.as_mut().and_then(|f| f.release(Way::Out, now)) {
            self.send(&frame);
        }
    }

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

    /// Note the time of a device call and send what fell due by then.
    fn tick(&mut self, now: Instant) {
        self.now = now;
        self.flush_held(now);
    }
}

/// A smoltcp [`phy::Device`] over a boxed [`Link`].
pub struct LinkDevice {
    rx_buf: Vec<u8>,
    rx_len: usize,
    tx: TxSide,
    mtu: usize,
    /// The TCP peers of delivered frames, while keep-alive needs them.
    heard: Heard,
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
        let faults = Some(Faults::new(faults, seed));
        LinkDevice {
            rx_buf: vec![0; frame],
            rx_len: 0,
            tx: TxSide {
                link,
                buf: vec![0; frame],
                pcap,
                faults,
                guard: SegmentGuard::default(),
                counters: Counters::default(),
                failure: None,
                now: Instant::ZERO,
            },
            mtu,
            heard: Heard::default(),
        }
    }

    /// Note (or stop noting) the TCP peer of every frame delivered to smoltcp.
    pub(crate) fn note_peers(&mut self, on: bool) {
        self.heard.set_on(on);
    }

    /// The TCP peers heard from since [`LinkDevice::forget_peers`].
    pub(crate) fn heard_peers(&self) -> &std::collections::HashSet<PeerKey> {
        self.heard.peers()
    }

    /// Forget the peers heard so far.
    pub(crate) fn forget_peers(&mut self) {
        self.heard.clear();
    }

    /// The link's IP MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The link itself (to register it with mio).
    pub fn link_mut(&mut self) -> &mut dyn Link {
        self.tx.link.as_mut()
    }

    /// Frame and drop counters so far (the guard's included).
    pub fn counters(&self) -> Counters {
        let mut c = self.tx.counters.clone();
        c.guard = self.tx.guard.counters().clone();
        c
    }

    /// Frames received and sent so far.
    pub fn frames(&self) -> u64 {
        self.tx.counters.rx_frames + self.tx.counters.tx_frames
    }

    /// The segment guard, for the engine to tell it what it did between polls.
    pub(crate) fn guard_mut(&mut self) -> &mut SegmentGuard {
        &mut self.tx.guard
    }

    /// The first error the link reported, if it failed.
    pub fn failure(&self) -> Option<&io::Error> {
        self.tx.failure.as_ref()
    }

    /// When a held (delayed, reordered or duplicated) frame is next due, either way.
    pub fn next_release(&self) -> Option<Instant> {
        self.tx.faults.as_ref().and_then(Faults::next_release)
    }

    /// Reopen the pcap file (SIGHUP).
    pub fn reopen_pcap(&mut self) -> io::Result<()> {
        self.tx.pcap.as_mut().map_or(Ok(()), PcapSink::reopen)
    }

    /// Flush the pcap file.
    pub fn flush(&mut self) {
        if let Some(p) = self.tx.pcap.as_mut() {
            p.flush();
        }
    }

    /// Fill `rx_buf` with the next frame to deliver; false when there is none.
    fn next_frame(&mut self, now: Instant) -> bool {
        loop {
            // Frames the guard held for the engine come back first, then delayed ones.
            if let Some(frame) = self.tx.guard.next_released() {
                if self.load(&frame) && self.guard(true, now) {
                    return true;
                }
                continue;
            }
            if let Some(frame) = self
                .tx
                .faults
                .as_mut()
                .and_then(|f| f.release(Way::In, now))
            {
                if self.load(&frame) && self.guard(false, now) {
                    return true;
                }
                continue;
            }
            if self.tx.failure.is_some() {
                return false;
            }
            let n = match self.tx.link.recv(&mut self.rx_buf) {
                Ok(Some(n)) => n,
                Ok(None) => return false,
                Err(e) => {
                    log::error!("{}: receive failed: {e}", self.tx.link.describe());
                    self.tx.failure = Some(e);
                    return false;
                }
            };
            if n > self.rx_buf.len() {
                self.tx.counters.rx_dropped_oversize += 1;
                continue;
            }
            self.tx.counters.rx_frames += 1;
            self.tx.counters.rx_bytes += n as u64;
            if let Some(pcap) = self.tx.pcap.as_mut() {
                pcap.write(&self.rx_buf[..n], now);
            }
            let verdict = match self.tx.faults.as_mut() {
                Some(f) => f.decide(Way::In, &mut self.rx_buf[..n], now, &mut self.tx.counters),
                None => Verdict::Pass,
            };
            if verdict == Verdict::Pass {
                self.rx_len = n;
                if self.guard(false, now) {
                    return true;
                }
            }
        }
    }

    /// Copy a frame that was kept aside into the receive buffer.
    fn load(&mut self, frame: &[u8]) -> bool {
        if frame.len() > self.rx_buf.len() {
            return false;
        }
        self.rx_len = frame.len();
        self.rx_buf[..self.rx_len].copy_from_slice(frame);
        true
    }

    /// Run the guard on the frame in the receive buffer: true when it is to be delivered.
    fn guard(&mut self, again: bool, now: Instant) -> bool {
        let frame = &mut self.rx_buf[..self.rx_len];
        match self.tx.guard.inbound(frame, again, now) {
            GuardVerdict::Pass(len) => {
                // A segment the guard turned into a probe is no sign of life from the peer.
                if len == self.rx_len {
                    self.heard.note(&self.rx_buf[..len]);
                }
                self.rx_len = len;
                true
            }
            GuardVerdict::Drop | GuardVerdict::Hold => false,
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
        if self.tx.failure.is_some() {
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
