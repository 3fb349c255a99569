//! Fault middleware: drop, corrupt, delay and reorder frames, and cut one direction entirely
//! (a vanished peer is an inbound blackhole).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use smoltcp::time::{Duration, Instant};

/// Fault settings; all off by default. Percentages are 0..=100.
#[derive(Clone, Debug, Default)]
pub struct FaultConfig {
    /// Chance of dropping an incoming frame.
    pub drop_in_pct: u8,
    /// Chance of dropping an outgoing frame.
    pub drop_out_pct: u8,
    /// Chance of flipping one byte of an incoming frame.
    pub corrupt_in_pct: u8,
    /// Hold every incoming frame this long.
    pub delay_in: Option<std::time::Duration>,
    /// Chance that an incoming frame is held back behind the next one.
    pub reorder_in_pct: u8,
    /// While set, every incoming frame is dropped (the peer has vanished).
    pub blackhole_in: Arc<AtomicBool>,
    /// While set, every outgoing frame is dropped.
    pub blackhole_out: Arc<AtomicBool>,
}

impl FaultConfig {
    /// True when no fault can happen, so the device can skip the middleware.
    pub fn is_inert(&self) -> bool {
        self.drop_in_pct == 0
            && self.drop_out_pct == 0
            && self.corrupt_in_pct == 0
            && self.delay_in.is_none()
            && self.reorder_in_pct == 0
    }
}

/// What the middleware decided for one incoming frame.
pub(crate) enum Verdict {
    /// Deliver it now.
    Pass,
    /// Drop it.
    Drop,
    /// Hold it (delay or reorder); it comes back from [`Faults::release`].
    Held,
}

/// The running middleware: settings, a small random generator and the held frames.
pub(crate) struct Faults {
    config: FaultConfig,
    rng: u64,
    held: VecDeque<(Instant, Vec<u8>)>,
}

impl Faults {
    pub(crate) fn new(config: FaultConfig, seed: u64) -> Self {
        Faults {
            config,
            rng: seed | 1,
            held: VecDeque::new(),
        }
    }

    fn chance(&mut self, pct: u8) -> bool {
        if pct == 0 {
            return false;
        }
        // xorshift64: cheap, deterministic for a seed, good enough for fault injection.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 100) < u64::from(pct)
    }

    /// Decide the fate of an incoming frame; may corrupt it in place.
    pub(crate) fn inbound(&mut self, frame: &mut [u8], now: Instant) -> Verdict {
        if self.config.blackhole_in.load(Ordering::Relaxed) || self.chance(self.config.drop_in_pct)
        {
            return Verdict::Drop;
        }
        if self.chance(self.config.corrupt_in_pct) && !frame.is_empty() {
            let at = (self.rng as usize) % frame.len();
            frame[at] ^= 0x5a;
        }
        let delay = self
            .config
            .delay_in
            .map(Duration::from)
            .unwrap_or(Duration::ZERO);
        if delay > Duration::ZERO || self.chance(self.config.reorder_in_pct) {
            // A reordered frame waits a millisecond so that the next one overtakes it.
            let wait = if delay > Duration::ZERO {
                delay
            } else {
                Duration::from_millis(1)
            };
            self.held.push_back((now + wait, frame.to_vec()));
            return Verdict::Held;
        }
        Verdict::Pass
    }

    /// Should this outgoing frame be dropped?
    pub(crate) fn drop_outbound(&mut self) -> bool {
        self.config.blackhole_out.load(Ordering::Relaxed) || self.chance(self.config.drop_out_pct)
    }

    /// A held frame whose time has come, if any.
    pub(crate) fn release(&mut self, now: Instant) -> Option<Vec<u8>> {
        match self.held.front() {
            Some((at, _)) if *at <= now => self.held.pop_front().map(|(_, f)| f),
            _ => None,
        }
    }

    /// When the next held frame is due.
    pub(crate) fn next_release(&self) -> Option<Instant> {
        self.held.front().map(|(at, _)| *at)
    }
}
