//! The virtual clock packetdrill reads through gettimeofday.
//!
//! It runs by itself at the pace of real time (packetdrill spins on it waiting for its first
//! event, so a clock that only jumps would hang there) and jumps forward when the shim skips
//! idle time: a usleep, or a wait for the next packet the stack sends at a later timer.
//!
//! It stands still while the shim works: the shim freezes it when it takes its lock and lets
//! it run again when it lets go. So the stack's work takes no virtual time at all, however
//! slow the build or busy the machine: a reply leaves at the very time of the packet that
//! caused it, and packetdrill, which anchors a `+0` expectation at its own clock read after the
//! injection returned, sees it on time with any tolerance. Freezing, thawing and jumps happen
//! under the shim's lock; reads are lock-free and never go back.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// `frozen` when the clock runs.
const RUNNING: i64 = i64::MIN;

/// Virtual microseconds since the shim started.
pub(crate) struct Clock {
    start: Instant,
    /// The wall-clock time at start, microseconds since the epoch: gettimeofday's origin.
    epoch_usecs: i64,
    /// Virtual minus real time: the jumps, less the real time spent frozen.
    offset: AtomicI64,
    /// The time the clock is frozen at, or [`RUNNING`].
    frozen: AtomicI64,
    /// The latest time read: no read goes back before it.
    last: AtomicI64,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        let epoch_usecs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2));
        Clock {
            start: Instant::now(),
            epoch_usecs,
            offset: AtomicI64::new(0),
            frozen: AtomicI64::new(RUNNING),
            last: AtomicI64::new(0),
        }
    }

    fn real(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_micros()).unwrap_or(i64::MAX / 4)
    }

    /// Virtual microseconds since start.
    pub(crate) fn now(&self) -> i64 {
        let frozen = self.frozen.load(Ordering::Acquire);
        let t = if frozen != RUNNING {
            frozen
        } else {
            self.real() + self.offset.load(Ordering::Acquire)
        };
        self.last.fetch_max(t, Ordering::AcqRel).max(t)
    }

    /// Stop the clock where it is (the shim starts working).
    pub(crate) fn freeze(&self) {
        let t = self.now();
        self.frozen.store(t, Ordering::Release);
    }

    /// Let the clock run on from where it stands (the shim stops working).
    pub(crate) fn thaw(&self) {
        let frozen = self.frozen.load(Ordering::Acquire);
        if frozen == RUNNING {
            return;
        }
        // First the offset that continues from `frozen`, then the switch: a reader sees one
        // or the other, both consistent.
        self.offset.store(frozen - self.real(), Ordering::Release);
        self.frozen.store(RUNNING, Ordering::Release);
    }

    /// The virtual time `t` on gettimeofday's scale (microseconds since the epoch).
    pub(crate) fn wall(&self, t: i64) -> i64 {
        self.epoch_usecs + t
    }

    /// Move the clock forward to `t` if it is not there yet (callers hold the shim's lock).
    pub(crate) fn jump_to(&self, t: i64) {
        if self.frozen.load(Ordering::Acquire) != RUNNING {
            self.frozen.fetch_max(t, Ordering::AcqRel);
            return;
        }
        let now = self.now();
        if t > now {
            self.offset.fetch_add(t - now, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread::sleep;
    use std::time::Duration;

    #[test]
    fn runs_by_itself_and_jumps_forward_only() {
        let c = Clock::new();
        let a = c.now();
        sleep(Duration::from_millis(2));
        let b = c.now();
        assert!(b > a, "{a} {b}");
        c.jump_to(b + 5_000_000);
        assert!(c.now() >= b + 5_000_000);
        let d = c.now();
        c.jump_to(0);
        assert!(c.now() >= d, "never backwards");
        assert!(
            c.wall(0) > 1_500_000_000_000_000,
            "wall time since the epoch"
        );
    }

    #[test]
    fn stands_still_while_frozen_and_runs_on_from_there() {
        let c = Clock::new();
        c.freeze();
        let a = c.now();
        sleep(Duration::from_millis(20));
        assert_eq!(c.now(), a, "frozen");
        c.jump_to(a + 1_000_000);
        assert_eq!(c.now(), a + 1_000_000, "a jump moves a frozen clock");
        c.thaw();
        let b = c.now();
        assert!(b >= a + 1_000_000, "runs on from where it stood");
        assert!(b < a + 1_000_000 + 20_000, "the frozen 20 ms did not count");
    }
}
