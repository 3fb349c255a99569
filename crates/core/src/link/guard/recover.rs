//! Prompted retransmission: the guard makes smoltcp retransmit a lost segment at once instead
//! of waiting out its retransmission timeout.
//!
//! smoltcp 0.14 retransmits a lost segment either after three duplicate ACKs (fast
//! retransmit) or after its timeout, which is at least 1 s, doubles at every expiry and comes
//! back down only with a round-trip sample (Karn's rule: from a segment acknowledged without a
//! retransmission in between). Under heavy loss the peer rarely gets three duplicate ACKs
//! through, retransmissions and their ACKs are lost too, so the timeout climbs to its 60 s
//! ceiling and every further loss costs up to a minute (the evidence is in
//! `docs/robustness.md`).
//!
//! The guard knows more than smoltcp looks at: the peer's SACK blocks say which of our bytes
//! arrived beyond the first unacknowledged one, so a duplicate ACK with a SACK block above
//! `SND.UNA` means the segment at `SND.UNA` is lost. On that evidence, and when `SND.UNA` has
//! not moved for a while with data outstanding, the guard shows smoltcp the duplicate ACKs
//! that start its fast retransmit: one ACK with a window one unit off (a window update, which
//! resets smoltcp's duplicate count), then four at `SND.UNA` with the window smoltcp knows.
//! smoltcp then resends the one segment at `SND.UNA`, without rewinding its whole queue and
//! without doubling its timeout. The prompts back off (from twice the round trip, doubling up
//! to smoltcp's 1 s minimum timeout, which they thereby keep from expiring) and stop after
//! [`GIVE_UP`] without progress, leaving smoltcp's own timeout (and its peer timeout, which
//! the prompts delay by at most that much) to end a dead connection.

use smoltcp::time::{Duration, Instant};

/// Twice the round trip assumed before the guard has measured one.
pub(super) const FIRST_PROMPT: Duration = Duration::from_millis(200);
/// The least wait before a prompt without SACK evidence (as Linux's tail-loss probe).
const MIN_PROMPT: Duration = Duration::from_millis(10);
/// Added when a single segment is outstanding: the peer may hold its ACK that long, waiting
/// for a second one (a delayed ACK, RFC 1122 4.2.3.2).
const DELAYED_ACK: Duration = Duration::from_millis(200);
/// After this long without progress the guard stops prompting; smoltcp's timeout goes on.
pub(super) const GIVE_UP: Duration = Duration::from_secs(15);
/// Most doublings of the prompt interval (the interval stops at [`MAX_INTERVAL`] anyway).
const MAX_BACKOFF: u32 = 6;
/// The prompt interval doubles up to smoltcp's minimum timeout and no further: each prompted
/// retransmission restarts smoltcp's timer, so while the guard prompts, that timer never runs
/// out and never doubles (a round trip longer than this lets the interval grow past it).
const MAX_INTERVAL: Duration = Duration::from_secs(1);

/// One connection's loss-recovery record, kept by the guard beside its sequence state.
#[derive(Clone, Debug, Default)]
pub(super) struct Recovery {
    /// Since when `SND.UNA` has stood still with data outstanding; `None` with nothing
    /// outstanding.
    stalled_since: Option<Instant>,
    /// The last prompt: for which `SND.UNA`, and when.
    last_prompt: Option<(u32, Instant)>,
    /// Prompts since `SND.UNA` last moved.
    tries: u32,
    /// Smoothed round-trip time, from segments acknowledged without a retransmission.
    srtt: Option<Duration>,
    /// The segment being timed: the sequence number its ACK must reach, and when it left.
    timing: Option<(u32, Instant)>,
}

impl Recovery {
    /// A segment of ours left: `end` is its last sequence number + 1, `new` says whether it
    /// carried bytes never sent before, `was_idle` whether nothing was outstanding before it.
    pub(super) fn on_send(&mut self, end: u32, new: bool, was_idle: bool, now: Instant) {
        if was_idle {
            self.stalled_since = Some(now);
            self.tries = 0;
        }
        if !new {
            // Karn: an ACK after a retransmission cannot say which copy it answers.
            self.timing = None;
        } else if self.timing.is_none() {
            self.timing = Some((end, now));
        }
    }

    /// The peer's ACK reached smoltcp: `moved` says whether it moved `SND.UNA` to `ack`,
    /// `outstanding` whether data is still unacknowledged after it.
    pub(super) fn on_ack(&mut self, ack: u32, moved: bool, outstanding: bool, now: Instant) {
        if let Some((end, sent)) = self.timing
            && !super::seq_lt(ack, end)
        {
            self.timing = None;
            self.sample(now - sent);
        }
        if !moved {
            return;
        }
        self.tries = 0;
        self.stalled_since = outstanding.then_some(now);
    }

    fn sample(&mut self, rtt: Duration) {
        self.srtt = Some(match self.srtt {
            Some(srtt) => (srtt * 7 + rtt) / 8,
            None => rtt,
        });
    }

    /// How long to wait after the last event (progress or prompt) before prompting again:
    /// twice the round trip (as Linux's tail-loss probe), more if the peer may be delaying
    /// its ACK for a `single` outstanding segment, doubled for each prompt already given.
    fn interval(&self, single: bool) -> Duration {
        let two_rtt = self.srtt.map_or(FIRST_PROMPT, |s| (s * 2).max(MIN_PROMPT));
        let base = if single {
            two_rtt + DELAYED_ACK
        } else {
            two_rtt
        };
        (base * (1u32 << self.tries.min(MAX_BACKOFF))).min(MAX_INTERVAL.max(base))
    }

    /// When the next prompt without fresh evidence is due (`None`: nothing to prompt for);
    /// `single`: only one segment is outstanding.
    pub(super) fn due(&self, snd_una: u32, single: bool) -> Option<Instant> {
        let since = self.stalled_since?;
        let last = match self.last_prompt {
            Some((at_una, at)) if at_una == snd_una => at.max(since),
            _ => since,
        };
        let due = last + self.interval(single);
        (due < since + GIVE_UP).then_some(due)
    }

    /// A duplicate ACK with SACK evidence that the segment at `snd_una` is lost: may the guard
    /// prompt now? Once per segment, again only when the timer would allow it.
    pub(super) fn evidence_allows(&self, snd_una: u32, now: Instant) -> bool {
        let Some(since) = self.stalled_since else {
            return false;
        };
        match self.last_prompt {
            Some((at_una, _)) if at_una == snd_una => {
                self.due(snd_una, false).is_some_and(|d| now >= d)
            }
            _ => now < since + GIVE_UP,
        }
    }

    /// The guard prompted a retransmission of the segment at `snd_una`.
    pub(super) fn prompted(&mut self, snd_una: u32, now: Instant) {
        if self
            .last_prompt
            .is_some_and(|(at_una, _)| at_una == snd_una)
        {
            self.tries += 1;
        }
        self.last_prompt = Some((snd_una, now));
        // Karn again: smoltcp's retransmission makes the pending sample ambiguous.
        self.timing = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn nothing_outstanding_nothing_due() {
        let r = Recovery::default();
        assert_eq!(r.due(1, false), None);
        assert!(!r.evidence_allows(1, at(0)));
    }

    #[test]
    fn a_stall_is_prompted_after_the_first_interval_then_backs_off() {
        let mut r = Recovery::default();
        r.on_send(1001, true, true, at(0));
        assert_eq!(r.due(1, false), Some(at(200)));
        r.prompted(1, at(200));
        assert_eq!(
            r.due(1, false),
            Some(at(400)),
            "first prompt for this segment"
        );
        r.prompted(1, at(400));
        assert_eq!(r.due(1, false), Some(at(800)), "the interval doubles");
        r.on_ack(1001, true, false, at(450));
        assert_eq!(r.due(1001, false), None, "everything acknowledged");
    }

    #[test]
    fn prompts_stop_after_giving_up() {
        let mut r = Recovery::default();
        r.on_send(1001, true, true, at(0));
        let mut last = at(0);
        while let Some(d) = r.due(1, false) {
            assert!(d < at(0) + GIVE_UP);
            r.prompted(1, d);
            last = d;
        }
        assert!(last > at(14_000), "prompts until giving up (last {last})");
        assert!(!r.evidence_allows(1, at(20_000)));
    }

    #[test]
    fn evidence_prompts_once_per_segment_until_the_timer_allows_more() {
        let mut r = Recovery::default();
        r.on_send(5001, true, true, at(0));
        assert!(r.evidence_allows(1, at(1)));
        r.prompted(1, at(1));
        assert!(
            !r.evidence_allows(1, at(2)),
            "the retransmission is on its way"
        );
        assert!(r.evidence_allows(1, at(401)));
        r.on_ack(1461, true, true, at(402));
        assert!(
            r.evidence_allows(1461, at(403)),
            "a new hole is a new segment"
        );
    }

    #[test]
    fn round_trip_samples_skip_retransmitted_segments() {
        let mut r = Recovery::default();
        r.on_send(1001, true, true, at(0));
        r.on_ack(1001, true, false, at(100));
        assert_eq!(r.srtt, Some(Duration::from_millis(100)));
        assert_eq!(r.due(1001, false), None);
        r.on_send(2001, true, true, at(1_000));
        assert_eq!(r.due(1001, false), Some(at(1_200)), "2 x srtt");
        assert_eq!(r.due(1001, true), Some(at(1_400)), "and a delayed ACK");
        r.on_send(2001, false, false, at(1_400));
        r.on_ack(2001, true, false, at(1_401));
        assert_eq!(
            r.srtt,
            Some(Duration::from_millis(100)),
            "no sample after a resend"
        );
    }
}
