//! Device middleware as layers between the link and smoltcp, as smoltcp's own `phy` middleware
//! wraps a device in a tracer or a fault injector.
//!
//! Every middleware is one [`Layer`] with the same small interface: it judges a frame going
//! in and a frame going out, may keep a frame and give it back later, and says when it next
//! needs the clock. [`Layers`] composes them in one fixed order, written once in
//! [`Layers::order`], link side first:
//!
//! ```text
//! link <-> pcap <-> faults <-> guard <-> smoltcp
//! ```
//!
//! Inbound, the pcap records what arrived, the faults may drop, corrupt or hold it, and the
//! guard judges it against the connection state of the moment it reaches smoltcp. Outbound,
//! the guard learns from what smoltcp sends, the faults may drop or hold it, and the pcap
//! records what actually leaves, so the pcap shows what crossed the link both ways. A frame a
//! layer gives back goes on through the layers past it, never through the ones it already
//! crossed.

use smoltcp::time::Instant;

use super::fault::{self, Faults};
use super::guard::{GuardVerdict, SegmentGuard};
use super::heard::Heard;
use super::pcap::PcapSink;
use crate::counters::Counters;

/// Which way a frame travels, seen from the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Way {
    /// From the link to the stack.
    In,
    /// From the stack to the link.
    Out,
}

/// What a layer decided for one frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Pass it on with this many bytes (a layer may rewrite a frame in place, even shorten it).
    Pass(usize),
    /// Drop it.
    Drop,
    /// The layer kept it; it may come back from [`Layer::release`].
    Held,
}

/// One piece of device middleware.
pub(crate) trait Layer {
    /// A frame from the link towards smoltcp, which the layer may rewrite in place.
    fn inbound(&mut self, frame: &mut [u8], now: Instant) -> Verdict;

    /// A frame from smoltcp towards the link, which the layer may rewrite in place.
    fn outbound(&mut self, frame: &mut [u8], now: Instant) -> Verdict;

    /// A frame going `way` that this layer kept and that may go on at `now`; it then crosses
    /// only the layers past this one.
    fn release(&mut self, way: Way, now: Instant) -> Option<Vec<u8>>;

    /// When this layer next needs to run for a kept frame or a timer of its own.
    fn next_due(&self) -> Option<Instant>;

    /// Fill in this layer's counts in `counters` (the fields no other layer touches).
    fn count(&self, counters: &mut Counters) {
        let _ = counters;
    }
}

/// The pcap layer: records every frame that crosses it, changes nothing.
pub(crate) struct PcapLayer(pub(crate) Option<PcapSink>);

impl PcapLayer {
    fn record(&mut self, frame: &[u8], now: Instant) -> Verdict {
        if let Some(sink) = self.0.as_mut() {
            sink.write(frame, now);
        }
        Verdict::Pass(frame.len())
    }
}

impl Layer for PcapLayer {
    fn inbound(&mut self, frame: &mut [u8], now: Instant) -> Verdict {
        self.record(frame, now)
    }

    fn outbound(&mut self, frame: &mut [u8], now: Instant) -> Verdict {
        self.record(frame, now)
    }

    fn release(&mut self, _way: Way, _now: Instant) -> Option<Vec<u8>> {
        None
    }

    fn next_due(&self) -> Option<Instant> {
        None
    }
}

/// The fault layer: loses, corrupts, delays, reorders and duplicates frames (see
/// [`super::fault`]), and keeps the counts of what it did.
pub(crate) struct FaultLayer {
    faults: Faults,
    counts: Counters,
}

impl FaultLayer {
    pub(crate) fn new(faults: Faults) -> Self {
        FaultLayer {
            faults,
            counts: Counters::default(),
        }
    }

    fn decide(&mut self, way: Way, frame: &mut [u8], now: Instant) -> Verdict {
        match self.faults.decide(way, frame, now, &mut self.counts) {
            fault::Verdict::Pass => Verdict::Pass(frame.len()),
            fault::Verdict::Drop => Verdict::Drop,
            fault::Verdict::Held => Verdict::Held,
        }
    }
}

impl Layer for FaultLayer {
    fn inbound(&mut self, frame: &mut [u8], now: Instant) -> Verdict {
        self.decide(Way::In, frame, now)
    }

    fn outbound(&mut self, frame: &mut [u8], now: Instant) -> Verdict {
        self.decide(Way::Out, frame, now)
    }

    fn release(&mut self, way: Way, now: Instant) -> Option<Vec<u8>> {
        self.faults.release(way, now)
    }

    fn next_due(&self) -> Option<Instant> {
        self.faults.next_release()
    }

    fn count(&self, c: &mut Counters) {
        let f = &self.counts;
        c.rx_dropped_fault = f.rx_dropped_fault;
        c.tx_dropped_fault = f.tx_dropped_fault;
        c.rx_duplicated_fault = f.rx_duplicated_fault;
        c.tx_duplicated_fault = f.tx_duplicated_fault;
        c.rx_reordered_fault = f.rx_reordered_fault;
        c.tx_reordered_fault = f.tx_reordered_fault;
    }
}

/// The guard layer: the segment guard, and the keep-alive notes of which peers were heard.
///
/// The notes sit here because only the guard knows whether a frame is the peer's own segment:
/// one it turned into a probe (shorter than it came) is no sign of life from the peer.
#[derive(Default)]
pub(crate) struct GuardLayer {
    pub(crate) guard: SegmentGuard,
    pub(crate) heard: Heard,
}

impl GuardLayer {
    /// Judge an inbound frame; `again`: the guard held it once already.
    fn judge(&mut self, frame: &mut [u8], again: bool, now: Instant) -> Verdict {
        match self.guard.inbound(frame, again, now) {
            GuardVerdict::Pass(len) => {
                if len == frame.len() {
                    self.heard.note(frame);
                }
                Verdict::Pass(len)
            }
            GuardVerdict::Drop => Verdict::Drop,
            GuardVerdict::Hold => Verdict::Held,
        }
    }
}

impl Layer for GuardLayer {
    fn inbound(&mut self, frame: &mut [u8], now: Instant) -> Verdict {
        self.judge(frame, false, now)
    }

    fn outbound(&mut self, frame: &mut [u8], now: Instant) -> Verdict {
        self.guard.outbound(frame, now);
        Verdict::Pass(frame.len())
    }

    /// The guard's released frames meet the guard once more (it may drop one whose moment
    /// passed) before they go on to smoltcp.
    fn release(&mut self, way: Way, now: Instant) -> Option<Vec<u8>> {
        if way == Way::Out {
            return None;
        }
        // Prompted ACKs are the guard's own: they are not judged again.
        if let Some(frame) = self.guard.next_prompt(now) {
            return Some(frame);
        }
        while let Some(mut frame) = self.guard.next_released() {
            if let Verdict::Pass(len) = self.judge(&mut frame, true, now) {
                frame.truncate(len);
                return Some(frame);
            }
        }
        None
    }

    fn next_due(&self) -> Option<Instant> {
        self.guard.next_due()
    }

    fn count(&self, c: &mut Counters) {
        c.guard = self.guard.counters().clone();
    }
}

/// Every layer of the device, composed in the one order of [`Layers::order`].
pub(crate) struct Layers {
    pub(crate) pcap: PcapLayer,
    pub(crate) faults: FaultLayer,
    pub(crate) guard: GuardLayer,
}

impl Layers {
    /// The layers from the link's side to smoltcp's: the one place their order is decided.
    fn order(&mut self) -> [&mut dyn Layer; 3] {
        [&mut self.pcap, &mut self.faults, &mut self.guard]
    }

    /// Take a frame from the link through every layer towards smoltcp.
    pub(crate) fn inbound(&mut self, frame: &mut [u8], now: Instant) -> Verdict {
        pass_in(&mut self.order(), frame, now)
    }

    /// Take a frame from smoltcp through every layer towards the link.
    pub(crate) fn outbound(&mut self, frame: &mut [u8], now: Instant) -> Verdict {
        pass_out(&mut self.order(), frame, now)
    }

    /// The next kept frame due for smoltcp, through the layers past the one that kept it.
    /// The layers nearest smoltcp give theirs first: they were on their way before anything
    /// the outer layers still hold.
    pub(crate) fn release_in(&mut self, now: Instant) -> Option<Vec<u8>> {
        let mut layers = self.order();
        for i in (0..layers.len()).rev() {
            while let Some(mut frame) = layers[i].release(Way::In, now) {
                if let Verdict::Pass(len) = pass_in(&mut layers[i + 1..], &mut frame, now) {
                    frame.truncate(len);
                    return Some(frame);
                }
            }
        }
        None
    }

    /// The next kept frame due for the link, through the layers past the one that kept it.
    /// The layers nearest the link give theirs first, for the same reason.
    pub(crate) fn release_out(&mut self, now: Instant) -> Option<Vec<u8>> {
        let mut layers = self.order();
        for i in 0..layers.len() {
            while let Some(mut frame) = layers[i].release(Way::Out, now) {
                if let Verdict::Pass(len) = pass_out(&mut layers[..i], &mut frame, now) {
                    frame.truncate(len);
                    return Some(frame);
                }
            }
        }
        None
    }

    /// The earliest time any layer needs to run.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        [
            self.pcap.next_due(),
            self.faults.next_due(),
            self.guard.next_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fill in every layer's counts in `counters`.
    pub(crate) fn count(&self, counters: &mut Counters) {
        self.pcap.count(counters);
        self.faults.count(counters);
        self.guard.count(counters);
    }
}

/// Run `frame` inwards through `layers` (given link side first) until one does not pass it.
fn pass_in(layers: &mut [&mut dyn Layer], frame: &mut [u8], now: Instant) -> Verdict {
    let mut len = frame.len();
    for layer in layers.iter_mut() {
        match layer.inbound(&mut frame[..len], now) {
            Verdict::Pass(n) => len = n.min(len),
            other => return other,
        }
    }
    Verdict::Pass(len)
}

/// Run `frame` outwards through `layers` (given link side first) until one does not pass it.
fn pass_out(layers: &mut [&mut dyn Layer], frame: &mut [u8], now: Instant) -> Verdict {
    let mut len = frame.len();
    for layer in layers.iter_mut().rev() {
        match layer.outbound(&mut frame[..len], now) {
            Verdict::Pass(n) => len = n.min(len),
            other => return other,
        }
    }
    Verdict::Pass(len)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;
    use crate::link::FaultConfig;

    fn at(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }

    /// The layers with a pcap at `name` in the temp directory and the given faults.
    fn layers(name: &str, faults: FaultConfig) -> (Layers, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "lingerstack-layer-{name}-{}.pcap",
            std::process::id()
        ));
        let layers = Layers {
            pcap: PcapLayer(Some(PcapSink::create(&path).unwrap())),
            faults: FaultLayer::new(Faults::new(faults, 0)),
            guard: GuardLayer::default(),
        };
        (layers, path)
    }

    /// The (timestamp in ms, first byte) of every frame recorded so far.
    fn recorded(layers: &mut Layers, path: &std::path::Path) -> Vec<(u64, u8)> {
        layers.pcap.0.as_mut().unwrap().flush();
        let bytes = std::fs::read(path).unwrap();
        let mut out = Vec::new();
        let mut rest = &bytes[24..];
        while rest.len() >= 16 {
            let word = |i: usize| u64::from(u32::from_le_bytes(rest[i..i + 4].try_into().unwrap()));
            let ms = word(0) * 1000 + word(4) / 1_000_000;
            let len = word(8) as usize;
            out.push((ms, rest[16]));
            rest = &rest[16 + len..];
        }
        out
    }

    // Frames that are not TCP: the guard passes them unchanged, so only pcap and faults act.
    fn frame(tag: u8) -> Vec<u8> {
        vec![tag; 60]
    }

    #[test]
    fn pcap_records_what_arrived_and_what_left() {
        let cfg = FaultConfig::seeded(1);
        let (cut_in, cut_out) = (cfg.blackhole_in.clone(), cfg.blackhole_out.clone());
        let (mut l, path) = layers("crossed", cfg);
        cut_in.store(true, Ordering::SeqCst);
        cut_out.store(true, Ordering::SeqCst);
        assert_eq!(l.inbound(&mut frame(1), at(0)), Verdict::Drop);
        assert_eq!(l.outbound(&mut frame(2), at(0)), Verdict::Drop);
        cut_in.store(false, Ordering::SeqCst);
        cut_out.store(false, Ordering::SeqCst);
        assert_eq!(l.outbound(&mut frame(3), at(1)), Verdict::Pass(60));
        assert_eq!(l.inbound(&mut frame(4), at(2)), Verdict::Pass(60));
        // Frame 1 arrived though the faults dropped it; frame 2 never left.
        assert_eq!(recorded(&mut l, &path), vec![(0, 1), (1, 3), (2, 4)]);
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn a_held_frame_goes_on_past_its_layer_when_due() {
        let cfg = FaultConfig::seeded(2).with_delay(Duration::from_millis(5));
        let (mut l, path) = layers("held", cfg);
        assert_eq!(l.inbound(&mut frame(1), at(0)), Verdict::Held);
        assert_eq!(l.outbound(&mut frame(2), at(1)), Verdict::Held);
        assert_eq!(l.next_due(), Some(at(5)));
        assert_eq!(l.release_in(at(4)), None);
        assert_eq!(l.release_in(at(5)), Some(frame(1)));
        assert_eq!(l.next_due(), Some(at(6)));
        assert_eq!(l.release_out(at(6)), Some(frame(2)));
        assert_eq!(l.next_due(), None);
        // The inbound frame was recorded as it arrived, once; the outbound one when it left.
        assert_eq!(recorded(&mut l, &path), vec![(0, 1), (6, 2)]);
        let mut c = Counters::default();
        l.count(&mut c);
        assert_eq!(c, Counters::default(), "a delay is not counted as a fault");
        std::fs::remove_file(&path).ok();
    }
}
