//! Fault middleware: lose, duplicate, delay, reorder and corrupt frames in either direction,
//! and cut one direction entirely (a vanished peer is an inbound blackhole).
//!
//! This machine's kernel has no netem, so this is how the tests make a network adverse. Every
//! decision comes from one random generator seeded from [`FaultConfig::seed`]: the same seed
//! gives the same sequence of decisions. Over the in-memory link with a virtual clock a run
//! then repeats exactly; over a real TAP, which frame meets which decision still depends on
//! timing, so the seed reproduces the pattern of faults rather than each frame's fate.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use smoltcp::time::{Duration, Instant};

use super::layer::Way;
use crate::counters::Counters;

/// How much longer than its delay a reordered frame is held, so that frames sent after it
/// overtake it.
const REORDER_HOLD: Duration = Duration::from_millis(2);

/// Fault settings; all off by default. Percentages are 0..=100 (larger values mean always).
///
/// The `*_in` fields act on frames the stack receives, the `*_out` fields on frames it sends.
/// The `with_*` builders set both directions at once.
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
    /// Hold every outgoing frame this long.
    pub delay_out: Option<std::time::Duration>,
    /// Chance that an incoming frame is held back behind the ones that follow it.
    pub reorder_in_pct: u8,
    /// Chance that an outgoing frame is held back behind the ones that follow it.
    pub reorder_out_pct: u8,
    /// Chance that an incoming frame is delivered twice.
    pub dup_in_pct: u8,
    /// Chance that an outgoing frame is sent twice.
    pub dup_out_pct: u8,
    /// While set, every incoming frame is dropped (the peer has vanished).
    pub blackhole_in: Arc<AtomicBool>,
    /// While set, every outgoing frame is dropped.
    pub blackhole_out: Arc<AtomicBool>,
    /// Seed of the random generator behind every decision. `None`: derived from the engine's
    /// own seed, and logged at start so a run can still be replayed.
    pub seed: Option<u64>,
}

impl FaultConfig {
    /// No faults yet, with a fixed `seed` (add faults with the `with_*` builders).
    pub fn seeded(seed: u64) -> Self {
        FaultConfig {
            seed: Some(seed),
            ..FaultConfig::default()
        }
    }

    /// Lose `pct` % of the frames in each direction.
    pub fn with_loss(mut self, pct: u8) -> Self {
        self.drop_in_pct = pct;
        self.drop_out_pct = pct;
        self
    }

    /// Duplicate `pct` % of the frames in each direction.
    pub fn with_duplication(mut self, pct: u8) -> Self {
        self.dup_in_pct = pct;
        self.dup_out_pct = pct;
        self
    }

    /// Hold back `pct` % of the frames in each direction behind the ones that follow.
    pub fn with_reordering(mut self, pct: u8) -> Self {
        self.reorder_in_pct = pct;
        self.reorder_out_pct = pct;
        self
    }

    /// Delay every frame by `delay` in each direction.
    pub fn with_delay(mut self, delay: std::time::Duration) -> Self {
        self.delay_in = Some(delay);
        self.delay_out = Some(delay);
        self
    }

    /// True when no fault can happen (blackhole switches aside, which can be flipped later).
    pub fn is_inert(&self) -> bool {
        let pcts = [
            self.drop_in_pct,
            self.drop_out_pct,
            self.corrupt_in_pct,
            self.reorder_in_pct,
            self.reorder_out_pct,
            self.dup_in_pct,
            self.dup_out_pct,
        ];
        pcts.iter().all(|&p| p == 0) && self.delay_in.is_none() && self.delay_out.is_none()
    }
}

/// What the middleware decided for one frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Deliver it now.
    Pass,
    /// Drop it.
    Drop,
    /// Hold it (delay or reorder); it comes back from [`Faults::release`].
    Held,
}

/// The settings of one direction.
struct Lane {
    drop: u8,
    corrupt: u8,
    reorder: u8,
    dup: u8,
    delay: Duration,
    blackhole: Arc<AtomicBool>,
    /// Held frames, in the order they are due: (due, frame).
    held: VecDeque<(Instant, Vec<u8>)>,
}

impl Lane {
    fn new(
        drop: u8,
        corrupt: u8,
        reorder: u8,
        dup: u8,
        delay: Option<std::time::Duration>,
        blackhole: &Arc<AtomicBool>,
    ) -> Lane {
        Lane {
            drop,
            corrupt,
            reorder,
            dup,
            delay: delay.map_or(Duration::ZERO, Duration::from),
            blackhole: blackhole.clone(),
            held: VecDeque::new(),
        }
    }

    /// Queue a copy of `frame` due at `at`, after every frame due no later (stable order).
    fn hold(&mut self, at: Instant, frame: &[u8]) {
        let i = self.held.partition_point(|(due, _)| *due <= at);
        self.held.insert(i, (at, frame.to_vec()));
    }
}

/// splitmix64: tiny, fast, well mixed from any seed (zero included); enough for faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with a chance of `pct` %; draws nothing when `pct` is 0, so faults that are off
    /// do not shift the sequence of the ones that are on.
    fn chance(&mut self, pct: u8) -> bool {
        pct != 0 && self.next() % 100 < u64::from(pct)
    }
}

/// The running middleware: settings per direction, the random generator and held frames.
pub(crate) struct Faults {
    inbound: Lane,
    outbound: Lane,
    rng: Rng,
}

impl Faults {
    /// The middleware for `config`; `fallback_seed` is used when the config names no seed.
    pub(crate) fn new(config: FaultConfig, fallback_seed: u64) -> Self {
        let seed = config.seed.unwrap_or(fallback_seed);
        if !config.is_inert() {
            log::info!("fault injection on, seed {seed:#x}: {config:?}");
        }
        let c = &config;
        Faults {
            inbound: Lane::new(
                c.drop_in_pct,
                c.corrupt_in_pct,
                c.reorder_in_pct,
                c.dup_in_pct,
                c.delay_in,
                &c.blackhole_in,
            ),
            outbound: Lane::new(
                c.drop_out_pct,
                0,
                c.reorder_out_pct,
                c.dup_out_pct,
                c.delay_out,
                &c.blackhole_out,
            ),
            rng: Rng(seed),
        }
    }

    fn lane(&mut self, way: Way) -> &mut Lane {
        match way {
            Way::In => &mut self.inbound,
            Way::Out => &mut self.outbound,
        }
    }

    /// Decide the fate of a frame going `way` at `now`; may corrupt it in place, may queue a
    /// duplicate (released by [`Faults::release`] right after it). Counts what it did.
    pub(crate) fn decide(
        &mut self,
        way: Way,
        frame: &mut [u8],
        now: Instant,
        counters: &mut Counters,
    ) -> Verdict {
        let rng = &mut self.rng;
        let lane = match way {
            Way::In => &mut self.inbound,
            Way::Out => &mut self.outbound,
        };
        if lane.blackhole.load(Ordering::Relaxed) || rng.chance(lane.drop) {
            *counter(counters, way, Count::Dropped) += 1;
            return Verdict::Drop;
        }
        if rng.chance(lane.corrupt) && !frame.is_empty() {
            let at = (rng.next() % frame.len() as u64) as usize;
            frame[at] ^= 0x5a;
        }
        let mut due = now + lane.delay;
        if rng.chance(lane.reorder) {
            due += REORDER_HOLD;
            *counter(counters, way, Count::Reordered) += 1;
        }
        if rng.chance(lane.dup) {
            // The copy follows the original: due with it, queued after it.
            *counter(counters, way, Count::Duplicated) += 1;
            if due == now {
                lane.hold(now, frame);
                return Verdict::Pass;
            }
            lane.hold(due, frame);
        }
        if due == now {
            return Verdict::Pass;
        }
        lane.hold(due, frame);
        Verdict::Held
    }

    /// A held frame going `way` whose time has come, if any.
    pub(crate) fn release(&mut self, way: Way, now: Instant) -> Option<Vec<u8>> {
        let held = &mut self.lane(way).held;
        match held.front() {
            Some((at, _)) if *at <= now => held.pop_front().map(|(_, f)| f),
            _ => None,
        }
    }

    /// When the next held frame (either way) is due.
    pub(crate) fn next_release(&self) -> Option<Instant> {
        let a = self.inbound.held.front().map(|(at, _)| *at);
        let b = self.outbound.held.front().map(|(at, _)| *at);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Which fault counter to bump.
enum Count {
    Dropped,
    Duplicated,
    Reordered,
}

fn counter(c: &mut Counters, way: Way, what: Count) -> &mut u64 {
    match (way, what) {
        (Way::In, Count::Dropped) => &mut c.rx_dropped_fault,
        (Way::Out, Count::Dropped) => &mut c.tx_dropped_fault,
        (Way::In, Count::Duplicated) => &mut c.rx_duplicated_fault,
        (Way::Out, Count::Duplicated) => &mut c.tx_duplicated_fault,
        (Way::In, Count::Reordered) => &mut c.rx_reordered_fault,
        (Way::Out, Count::Reordered) => &mut c.tx_reordered_fault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }

    /// Run `n` one-byte frames (numbered) through `way` at 1 ms intervals, releasing held
    /// frames as time passes; returns what came out, in order, and the counters.
    fn run(config: FaultConfig, way: Way, n: u8) -> (Vec<u8>, Counters) {
        let mut f = Faults::new(config, 0);
        let mut c = Counters::default();
        let mut out = Vec::new();
        for i in 0..n {
            let now = at(i64::from(i));
            while let Some(frame) = f.release(way, now) {
                out.push(frame[0]);
            }
            if f.decide(way, &mut [i], now, &mut c) == Verdict::Pass {
                out.push(i);
            }
            while let Some(frame) = f.release(way, now) {
                out.push(frame[0]);
            }
        }
        while let Some(due) = f.next_release() {
            while let Some(frame) = f.release(way, due) {
                out.push(frame[0]);
            }
        }
        (out, c)
    }

    #[test]
    fn inert_config_passes_everything_in_order() {
        for way in [Way::In, Way::Out] {
            let (out, c) = run(FaultConfig::seeded(1), way, 200);
            assert_eq!(out, (0..200).collect::<Vec<u8>>());
            assert_eq!(c, Counters::default());
        }
    }

    #[test]
    fn same_seed_same_faults_other_seed_other_faults() {
        let cfg = |seed| {
            FaultConfig::seeded(seed)
                .with_loss(10)
                .with_duplication(10)
                .with_reordering(10)
        };
        for way in [Way::In, Way::Out] {
            assert_eq!(run(cfg(7), way, 250), run(cfg(7), way, 250));
            assert_ne!(run(cfg(7), way, 250).0, run(cfg(8), way, 250).0);
        }
    }

    #[test]
    fn each_fault_happens_in_both_directions() {
        let cfg = FaultConfig::seeded(42)
            .with_loss(10)
            .with_duplication(10)
            .with_reordering(10);
        let (out_in, c_in) = run(cfg.clone(), Way::In, 250);
        let (out_out, c_out) = run(cfg, Way::Out, 250);
        assert!(c_in.rx_dropped_fault > 5 && c_out.tx_dropped_fault > 5);
        assert!(c_in.rx_duplicated_fault > 5 && c_out.tx_duplicated_fault > 5);
        assert!(c_in.rx_reordered_fault > 5 && c_out.tx_reordered_fault > 5);
        for (out, dropped, duplicated) in [
            (out_in, c_in.rx_dropped_fault, c_in.rx_duplicated_fault),
            (out_out, c_out.tx_dropped_fault, c_out.tx_duplicated_fault),
        ] {
            // Every frame comes out once, twice (the duplicated) or never (the dropped), and
            // some come out of order.
            assert!(
                out.windows(2).any(|w| w[0] > w[1]),
                "no reordering: {out:?}"
            );
            let times = |i: u8| out.iter().filter(|x| **x == i).count();
            assert_eq!((0..250).filter(|&i| times(i) == 0).count() as u64, dropped);
            assert_eq!(
                (0..250).filter(|&i| times(i) == 2).count() as u64,
                duplicated
            );
            assert!((0..250).all(|i| times(i) <= 2));
        }
    }

    #[test]
    fn delay_holds_every_frame_and_keeps_order() {
        let cfg = FaultConfig::seeded(3).with_delay(std::time::Duration::from_millis(50));
        let mut f = Faults::new(cfg, 0);
        let mut c = Counters::default();
        for way in [Way::In, Way::Out] {
            for i in 0..3u8 {
                let v = f.decide(way, &mut [i], at(i64::from(i)), &mut c);
                assert_eq!(v, Verdict::Held);
            }
            assert_eq!(f.release(way, at(49)), None);
            assert_eq!(f.next_release(), Some(at(50)));
            assert_eq!(f.release(way, at(52)), Some(vec![0]));
            assert_eq!(f.release(way, at(52)), Some(vec![1]));
            assert_eq!(f.release(way, at(52)), Some(vec![2]));
            assert_eq!(f.release(way, at(52)), None);
        }
    }

    #[test]
    fn blackholes_cut_one_direction_at_run_time() {
        let cfg = FaultConfig::seeded(5);
        let cut_in = cfg.blackhole_in.clone();
        let mut f = Faults::new(cfg, 0);
        let mut c = Counters::default();
        assert_eq!(f.decide(Way::In, &mut [1], at(0), &mut c), Verdict::Pass);
        cut_in.store(true, Ordering::SeqCst);
        assert_eq!(f.decide(Way::In, &mut [1], at(1), &mut c), Verdict::Drop);
        assert_eq!(f.decide(Way::Out, &mut [1], at(1), &mut c), Verdict::Pass);
        assert_eq!((c.rx_dropped_fault, c.tx_dropped_fault), (1, 0));
    }
}
