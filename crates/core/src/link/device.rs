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
//! # Offloads
//!
//! A link with a virtio-net header ([`Link::vnet_header`], the TAP) and offloads on moves TCP
//! super-segments of up to 64 KiB with partial checksums (see [`super::vnet`]). The device
//! then keeps the link's real MTU for smoltcp and tells it, through smoltcp's segmentation
//! offload capability, that TCP segments may be as large as an IP packet can be: smoltcp
//! still computes each connection's MSS (peer's MSS option, our MTU) and hands it with every
//! larger segment as the size to cut at, which becomes the header's `gso_size`. The kernel
//! cuts only where a real wire needs it, so nothing larger than the MTU reaches one. Above an
//! MTU of half an IP packet (32767) a super-segment could not hold two segments, so the device
//! leaves the offloads off there.
//!
//! Checksums: smoltcp neither computes nor verifies TCP checksums then. Outbound, the device
//! writes the pseudo-header sum and marks the frame `NEEDS_CSUM`. Inbound, a frame the link
//! vouches for (`NEEDS_CSUM` or `DATA_VALID`) that comes straight through is not checked; a
//! super-segment's partial checksum is left as it came, while a `NEEDS_CSUM` frame within the
//! MTU (which the segment guard may judge by its checksum), and every one when faults may hold
//! frames, is finished once on arrival. Every other frame (no flag, or one a layer held or
//! corrupted) is verified by the device before smoltcp sees it. The layers see the frames without
//! the header: the pcap records super-segments whole, as the kernel's own capture on the TAP
//! shows them.
//!
//! # Media
//!
//! The layers read Ethernet frames. On an IP link ([`Medium::Ip`]) the device puts a stand-in
//! Ethernet header (fixed addresses, the EtherType of the packet's IP version) in front of each
//! packet on its way through the layers and takes it off again at either end, so every layer
//! works unchanged on both media (a pcap of an IP link shows those stand-in headers). A
//! virtio-net header and offloads are for Ethernet links only.

use std::io;

use smoltcp::phy::{self, DeviceCapabilities};
use smoltcp::time::Instant;

use smoltcp::phy::{Checksum, PacketMeta};

use super::fault::{FaultConfig, Faults};
use super::guard::SegmentGuard;
use super::heard::PeerKey;
use super::layer::{FaultLayer, GuardLayer, Layers, PcapLayer, Verdict};
use super::pcap::PcapSink;
use super::vnet::{self, F_DATA_VALID, F_NEEDS_CSUM, MAX_IP_PACKET, VNET_HDR_LEN, VnetHeader};
use super::{Link, Medium};
use crate::counters::Counters;

/// Ethernet header length: the MTU counts the IP packet only.
const ETHERNET_HEADER: usize = 14;

/// How frames are framed on the link and what the device does for smoltcp.
#[derive(Clone, Copy, Debug)]
struct Framing {
    /// Bytes of virtio-net header in front of every frame on the link (0 or 12).
    hdr: usize,
    /// Offloads on: super-segments and partial checksums both ways.
    offload: bool,
    /// The link's IP MTU.
    mtu: usize,
}

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
    /// The virtio-net header (if the link has one), the stand-in header (on an IP link), then
    /// what smoltcp wrote; the layers see all but the virtio-net header.
    buf: Vec<u8>,
    framing: Framing,
    /// Length of the stand-in header ([`stand_in_len`]); 0 whenever `framing.hdr` is not.
    stand_in: usize,
    /// The segment size smoltcp asked for the frame of the current token, if it is larger.
    gso_size: Option<u16>,
    /// The time of the device call that handed out the current token (layers decide by it; a
    /// token's `consume` is not given the time).
    now: Instant,
}

impl TxSide {
    /// A frame smoltcp wrote into `buf` after the header room: through the layers to the link.
    fn transmit(&mut self, len: usize) {
        let (h, s) = (self.framing.hdr, self.stand_in);
        let gso_size = self.gso_size.take();
        let header = self.header_for(h, len, gso_size);
        if s > 0 {
            write_stand_in(&mut self.buf);
        }
        if let Verdict::Pass(n) = self
            .layers
            .outbound(&mut self.buf[h..h + s + len], self.now)
        {
            if s == 0 {
                header.write(&mut self.buf[..h]);
                self.wire.send(&self.buf[..h + n]);
            } else if let Some(packet) = self.buf.get(s..n) {
                self.wire.send(packet);
            }
        }
        self.flush_held(self.now);
    }

    /// With offloads, prepare the frame at `buf[h..h + len]` (partial checksum) and make its
    /// header; a plain header otherwise.
    fn header_for(&mut self, h: usize, len: usize, gso_size: Option<u16>) -> VnetHeader {
        if !self.framing.offload {
            return VnetHeader::default();
        }
        let header = vnet::prepare_tx(&mut self.buf[h..h + len], gso_size);
        if header.gso_type != vnet::GSO_NONE {
            self.wire.counters.tx_super_segments += 1;
        }
        header
    }

    /// Send the outgoing frames the layers kept (delayed, reordered or duplicated) that are due.
    /// Their header is made afresh; a held super-segment is cut at the largest size the MTU
    /// allows, its own size being forgotten.
    fn flush_held(&mut self, now: Instant) {
        while let Some(mut frame) = self.layers.release_out(now) {
            if self.framing.hdr == 0 {
                if let Some(packet) = frame.get(self.stand_in..) {
                    self.wire.send(packet);
                }
                continue;
            }
            let mut header = VnetHeader::default();
            if self.framing.offload {
                let size = vnet::mtu_segment_size(&frame, self.framing.mtu);
                header = vnet::prepare_tx(&mut frame, size);
            }
            let mut out = vec![0; VNET_HDR_LEN];
            header.write(&mut out);
            out.extend_from_slice(&frame);
            self.wire.send(&out);
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
    /// The header (if the link has one) then the frame.
    rx_buf: Vec<u8>,
    rx_len: usize,
    /// The current frame came straight from a link that vouched for its checksum.
    rx_vouched: bool,
    /// Whether the link's checksum promises can be kept: not when faults corrupt frames.
    trust_link: bool,
    /// Finish every partial checksum on arrival: when faults may hold frames (a held frame
    /// comes back without the link's promise, and is verified).
    finish_all: bool,
    tx: TxSide,
    mtu: usize,
    medium: Medium,
}

impl LinkDevice {
    /// Wrap a link; frame buffers are sized once from its MTU and reused for every frame.
    /// `offload`: use the link's offloads if it has them (see the module docs); off, a link
    /// with a virtio-net header is asked to turn them off too.
    pub fn new(
        mut link: Box<dyn Link>,
        pcap: Option<PcapSink>,
        faults: FaultConfig,
        seed: u64,
        offload: bool,
    ) -> Self {
        let mtu = link.mtu();
        let medium = link.medium();
        let hdr = match medium {
            Medium::Ethernet if link.vnet_header() => VNET_HDR_LEN,
            _ => 0,
        };
        // A super-segment that cannot hold two segments saves no system call, and moves the
        // checksum work from the kernel onto the engine: at such MTUs offloads stay off.
        let worth_it = 2 * mtu <= MAX_IP_PACKET;
        if hdr > 0 && offload && !worth_it {
            log::info!("{}: mtu {mtu}, offloads left off", link.describe());
        }
        let offload = hdr > 0 && link.set_offload(offload && worth_it);
        let framing = Framing { hdr, offload, mtu };
        // With a header the peer may send super-segments even with offloads off (a link that
        // could not turn them off): room for the largest. Otherwise room for an Ethernet header
        // on either medium (the stand-in one on an IP link).
        let frame = if hdr > 0 {
            hdr + MAX_IP_PACKET + ETHERNET_HEADER
        } else {
            mtu + ETHERNET_HEADER
        };
        let trust_link = faults.corrupt_in_pct == 0;
        let finish_all = !faults.is_inert();
        // Faults stay on even when inert: the blackhole switches can be flipped at run time.
        let layers = Layers {
            pcap: PcapLayer(pcap),
            faults: FaultLayer::new(Faults::new(faults, seed)),
            guard: GuardLayer::default(),
        };
        LinkDevice {
            rx_buf: vec![0; frame],
            rx_len: 0,
            rx_vouched: false,
            trust_link,
            finish_all,
            tx: TxSide {
                wire: Wire {
                    link,
                    counters: Counters::default(),
                    failure: None,
                },
                layers,
                buf: vec![0; frame],
                framing,
                stand_in: stand_in_len(medium),
                gso_size: None,
                now: Instant::ZERO,
            },
            mtu,
            medium,
        }
    }

    /// Whether the device moves super-segments and partial checksums (the link has offloads
    /// and they are on).
    pub fn offload(&self) -> bool {
        self.tx.framing.offload
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
        while self.next_candidate(now) {
            if self.tx.framing.offload && !self.rx_vouched && !vnet::checksum_valid(self.frame()) {
                // smoltcp leaves the check to the device with offloads on.
                self.tx.wire.counters.rx_dropped_checksum += 1;
                continue;
            }
            return true;
        }
        false
    }

    /// The frame in `rx_buf` (after the header room).
    fn frame(&self) -> &[u8] {
        let h = self.tx.framing.hdr;
        &self.rx_buf[h..h + self.rx_len]
    }

    /// The next frame through the layers, checksum not yet judged; false when there is none.
    fn next_candidate(&mut self, now: Instant) -> bool {
        let (h, s) = (self.tx.framing.hdr, self.tx.stand_in);
        loop {
            if let Some(frame) = self.tx.layers.release_in(now) {
                if h + frame.len() <= self.rx_buf.len() && frame.len() >= s {
                    self.rx_len = frame.len();
                    self.rx_buf[h..h + self.rx_len].copy_from_slice(&frame);
                    self.rx_vouched = false;
                    return true;
                }
                continue;
            }
            let Some(n) = self.tx.wire.recv(&mut self.rx_buf[s..]) else {
                return false;
            };
            let Some(vouched) = self.unwrap_header(n) else {
                continue;
            };
            if s > 0 {
                write_stand_in(&mut self.rx_buf);
            }
            if let Verdict::Pass(len) = self.tx.layers.inbound(&mut self.rx_buf[h..s + n], now)
                && len >= s
            {
                self.rx_len = len;
                self.rx_vouched = vouched;
                return true;
            }
        }
    }

    /// Read the header of the `n` bytes the link gave and finish a partial checksum. Returns
    /// whether the link vouches for the frame's checksum, or `None` to drop a frame that is
    /// too short or whose checksum offsets do not fit it.
    fn unwrap_header(&mut self, n: usize) -> Option<bool> {
        let h = self.tx.framing.hdr;
        if h == 0 {
            return Some(false);
        }
        if n < h + ETHERNET_HEADER {
            self.tx.wire.counters.rx_dropped_oversize += 1;
            return None;
        }
        let header = VnetHeader::parse(&self.rx_buf[..h]);
        let frame = &mut self.rx_buf[h..n];
        let super_segment = frame.len() > self.mtu + ETHERNET_HEADER;
        if super_segment {
            self.tx.wire.counters.rx_super_segments += 1;
        }
        // A super-segment's partial checksum stays as it came (the link vouches, smoltcp does
        // not check): finishing it would be a pass over 64 KiB. Smaller frames, which the
        // segment guard may judge by their checksum, are finished, as is everything when
        // faults may hold a frame.
        let finish = self.finish_all || !super_segment;
        if header.flags & F_NEEDS_CSUM != 0
            && finish
            && !vnet::complete_checksum(frame, header.csum_start, header.csum_offset)
        {
            self.tx.wire.counters.rx_dropped_checksum += 1;
            return None;
        }
        Some(self.trust_link && header.flags & (F_NEEDS_CSUM | F_DATA_VALID) != 0)
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
        let start = side.framing.hdr + side.stand_in;
        if side.buf.len() < start + len {
            side.buf.resize(start + len, 0);
        }
        let result = f(&mut side.buf[start..start + len]);
        side.transmit(len);
        result
    }

    /// smoltcp says at what size a TCP segment larger than the MSS is to be cut.
    fn set_meta(&mut self, meta: PacketMeta) {
        self.0.gso_size = meta.segmentation_offload_size.map(|s| s.get());
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
        self.tx.gso_size = None;
        let h = self.tx.framing.hdr;
        let packet = &self.rx_buf[h + self.tx.stand_in..h + self.rx_len];
        Some((RxToken(packet), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, now: Instant) -> Option<TxToken<'_>> {
        self.tx.tick(now);
        if self.tx.wire.failure.is_some() {
            return None;
        }
        self.tx.gso_size = None;
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
        if self.tx.framing.offload {
            // The device finishes outgoing TCP checksums (partial) and checks incoming ones the
            // link did not vouch for; TCP segments may be as large as an IP packet, cut by the
            // link at the MSS smoltcp gives. IPv6 stays at the MTU: smoltcp 0.14 drops an IPv6
            // packet above it even with segmentation offload.
            caps.checksum.tcp = Checksum::None;
            caps.segmentation.tcpv4 = std::num::NonZeroUsize::new(MAX_IP_PACKET + ETHERNET_HEADER);
        }
        caps
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use smoltcp::phy::{Device, RxToken as _, TxToken as _};

    use super::*;
    use crate::link::vnet::tests::tcp_frame;

    /// A link with a virtio-net header whose frames the test feeds and collects.
    #[derive(Clone, Default)]
    struct Vnet {
        inbound: Arc<Mutex<VecDeque<Vec<u8>>>>,
        sent: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl Link for Vnet {
        fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
            let Some(f) = self.inbound.lock().unwrap().pop_front() else {
                return Ok(None);
            };
            buf[..f.len()].copy_from_slice(&f);
            Ok(Some(f.len()))
        }
        fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
            self.sent.lock().unwrap().push(frame.to_vec());
            Ok(true)
        }
        fn mtu(&self) -> usize {
            1500
        }
        fn describe(&self) -> String {
            "vnet test".into()
        }
        fn vnet_header(&self) -> bool {
            true
        }
        fn set_offload(&mut self, on: bool) -> bool {
            on
        }
    }

    impl Vnet {
        fn feed(&self, header: VnetHeader, frame: &[u8]) {
            let mut bytes = vec![0; VNET_HDR_LEN];
            header.write(&mut bytes);
            bytes.extend_from_slice(frame);
            self.inbound.lock().unwrap().push_back(bytes);
        }
    }

    fn device(faults: FaultConfig) -> (LinkDevice, Vnet) {
        let link = Vnet::default();
        (
            LinkDevice::new(Box::new(link.clone()), None, faults, 1, true),
            link,
        )
    }

    /// The next frame smoltcp would be given, if any.
    fn next(dev: &mut LinkDevice) -> Option<Vec<u8>> {
        let (rx, _) = dev.receive(Instant::ZERO)?;
        Some(rx.consume(|f| f.to_vec()))
    }

    #[test]
    fn checksums_are_finished_trusted_or_verified_as_the_header_says() {
        let (mut dev, link) = device(FaultConfig::default());
        let full = tcp_frame(&[7; 3000]);
        let mut partial = full.clone();
        let header = vnet::prepare_tx(&mut partial, None);
        // NEEDS_CSUM on a super-segment: the link vouches; smoltcp gets it as it came.
        link.feed(header, &partial);
        assert_eq!(next(&mut dev).as_deref(), Some(&partial[..]));
        // NEEDS_CSUM on a frame within the MTU: finished once on arrival (the segment guard
        // may judge it by its checksum).
        let small = tcp_frame(&[3; 100]);
        let mut small_partial = small.clone();
        let header = vnet::prepare_tx(&mut small_partial, None);
        link.feed(header, &small_partial);
        assert_eq!(next(&mut dev).as_deref(), Some(&small[..]));
        // DATA_VALID: the link vouches; not checked again (a wrong one would pass).
        let mut wrong = full.clone();
        wrong[60] ^= 1;
        let valid = VnetHeader {
            flags: F_DATA_VALID,
            ..VnetHeader::default()
        };
        link.feed(valid, &wrong);
        assert_eq!(next(&mut dev).as_deref(), Some(&wrong[..]));
        // No flag: verified by the device, since smoltcp does not with offloads on.
        link.feed(VnetHeader::default(), &wrong);
        link.feed(VnetHeader::default(), &full);
        assert_eq!(next(&mut dev).as_deref(), Some(&full[..]));
        assert_eq!(dev.counters().rx_dropped_checksum, 1);
        assert_eq!(
            dev.counters().rx_super_segments,
            4,
            "3054-byte frames, MTU 1500"
        );
        let caps = dev.capabilities();
        assert!(!caps.checksum.tcp.rx() && !caps.checksum.tcp.tx());
    }

    #[test]
    fn corrupting_faults_void_the_links_promise() {
        let mut faults = FaultConfig::seeded(3);
        faults.corrupt_in_pct = 100;
        let (mut dev, link) = device(faults);
        let mut partial = tcp_frame(&[9; 2000]);
        let header = vnet::prepare_tx(&mut partial, None);
        link.feed(header, &partial);
        // The fault layer flips a byte after the checksum was finished (with this seed, one
        // of the TCP segment's): the device's check catches it.
        assert_eq!(next(&mut dev), None);
        assert_eq!(
            dev.counters().rx_dropped_checksum,
            1,
            "{:?}",
            dev.counters()
        );
    }

    #[test]
    fn a_large_segment_leaves_as_a_super_segment_cut_at_the_mss() {
        let (mut dev, link) = device(FaultConfig::default());
        let mut frame = tcp_frame(&[5; 10_000]);
        // smoltcp writes TCP checksums as zero with offloads on.
        frame[50..52].fill(0);
        let mut tx = dev.transmit(Instant::ZERO).unwrap();
        let mut meta = PacketMeta::default();
        meta.segmentation_offload_size = std::num::NonZeroU16::new(1448);
        tx.set_meta(meta);
        tx.consume(frame.len(), |buf| buf.copy_from_slice(&frame));
        let sent = link.sent.lock().unwrap().pop().unwrap();
        let header = VnetHeader::parse(&sent);
        assert_eq!((header.gso_type, header.gso_size), (vnet::GSO_TCPV4, 1448));
        assert_eq!(header.flags, F_NEEDS_CSUM);
        let mut on_wire = sent[VNET_HDR_LEN..].to_vec();
        assert!(vnet::complete_checksum(
            &mut on_wire,
            header.csum_start,
            header.csum_offset
        ));
        assert_eq!(on_wire, tcp_frame(&[5; 10_000]));
        assert_eq!(dev.counters().tx_super_segments, 1);
    }
}
