//! The virtual clock packetdrill reads through gettimeofday.
//!
//! It runs by itself at the pace of real time (packetdrill spins on it waiting for its first
//! event, so a clock that only jumps would hang there) and jumps forward when the shim skips
//! idle time: a usleep, or a wait for the next packet the stack sends at a later timer. Jumps
//! are made under the shim's lock; reads are lock-free.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Microseconds since the shim started, real time plus every jump.
pub(crate) struct Clock {
    start: Instant,
    /// The wall-clock time at start, microseconds since the epoch: gettimeofday's origin.
    epoch_usecs: i64,
    /// Microseconds jumped so far.
    jumped: AtomicI64,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        let epoch_usecs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2));
        Clock {
            start: Instant::now(),
            epoch_usecs,
            jumped: AtomicI64::new(0),
        }
    }

    /// Virtual microseconds since start.
    pub(crate) fn now(&self) -> i64 {
        let real = i64::try_from(self.start.elapsed().as_micros()).unwrap_or(i64::MAX / 4);
        real + self.jumped.load(Ordering::Acquire)
    }

    /// The virtual time `t` on gettimeofday's scale (microseconds since the epoch).
    pub(crate) fn wall(&self, t: i64) -> i64 {
        self.epoch_usecs + t
    }

    /// Move the clock forward to `t` if it is not there yet (callers hold the shim's lock).
    pub(crate) fn jump_to(&self, t: i64) {
        let now = self.now();
        if t > now {
            self.jumped.fetch_add(t - now, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_by_itself_and_jumps_forward_only() {
        let c = Clock::new();
        let a = c.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
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
}
