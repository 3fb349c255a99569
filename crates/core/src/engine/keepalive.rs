//! Keep-alive in Windows' shape (idle time, probe interval, probe count) on top of smoltcp.
//!
//! smoltcp's own keep-alive has one interval and its timeout counts from the last segment
//! heard, so it cannot say "first probe after 2 hours, then one a second". The engine keeps the
//! schedule instead: the device tells it which peers sent anything ([`crate::link::heard`]),
//! and when a probe is due the engine makes smoltcp send exactly one (see [`probe_now`]).
//! After `probes` unanswered probes the engine aborts the connection: smoltcp sends a RST.

use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};

use crate::command::KeepAlive;

/// The keep-alive bookkeeping of one connection.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Liveness {
    /// When a segment from the peer last arrived (or keep-alive started watching).
    heard_at: Option<Instant>,
    /// Probes sent since then, all unanswered.
    sent: u32,
}

/// What keep-alive wants for a connection now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing until this time (or until the peer is heard).
    Wait(Instant),
    /// Send a probe now.
    Probe,
    /// Every probe went unanswered: reset the connection.
    GiveUp,
}

impl Liveness {
    /// The peer sent something at `now`: the idle time starts again.
    pub(crate) fn heard(&mut self, now: Instant) {
        self.heard_at = Some(now);
        self.sent = 0;
    }

    /// Start counting from `now` if nothing was heard yet.
    pub(crate) fn watch_from(&mut self, now: Instant) {
        self.heard_at.get_or_insert(now);
    }

    /// No probing now (data in flight, or a state without keep-alive): start over when the
    /// connection is idle again.
    pub(crate) fn pause(&mut self, now: Instant) {
        self.heard(now);
    }

    /// The next step: probe `k` is due at `heard + idle + interval * k`; after the last one,
    /// another interval without an answer gives up.
    pub(crate) fn step(&mut self, keep_alive: &KeepAlive, now: Instant) -> Step {
        let heard = *self.heard_at.get_or_insert(now);
        let due = heard
            + Duration::from(keep_alive.idle)
            + Duration::from(keep_alive.interval) * self.sent;
        if now < due {
            Step::Wait(due)
        } else if self.sent >= keep_alive.probes {
            Step::GiveUp
        } else {
            self.sent += 1;
            Step::Probe
        }
    }
}

/// States in which a connection is probed: open, our FIN not outstanding.
pub(crate) fn probed_state(state: State) -> bool {
    matches!(
        state,
        State::Established | State::CloseWait | State::FinWait2
    )
}

/// Make smoltcp send one keep-alive probe at its next dispatch: a segment one below the next
/// sequence number with one byte (RFC 1122 4.2.3.6), which a live peer answers with an ACK.
///
/// smoltcp arms its keep-alive timer "now" when keep-alive is switched on from off on an idle
/// socket; switching it off again at once leaves the armed timer alone, and the probe's own
/// transmission then disarms it (it rewinds the timer with keep-alive off). The engine never
/// leaves smoltcp's keep-alive on, so the timer is off whenever this is called.
pub(crate) fn probe_now(socket: &mut tcp::Socket<'static>) {
    socket.set_keep_alive(Some(Duration::ZERO));
    socket.set_keep_alive(None);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ka() -> KeepAlive {
        KeepAlive {
            idle: std::time::Duration::from_secs(10),
            interval: std::time::Duration::from_secs(1),
            probes: 3,
        }
    }

    fn at(s: i64) -> Instant {
        Instant::from_secs(s)
    }

    #[test]
    fn probes_after_idle_then_every_interval_then_gives_up() {
        let mut l = Liveness::default();
        l.heard(at(0));
        assert_eq!(l.step(&ka(), at(5)), Step::Wait(at(10)));
        assert_eq!(l.step(&ka(), at(10)), Step::Probe);
        assert_eq!(l.step(&ka(), at(10)), Step::Wait(at(11)));
        assert_eq!(l.step(&ka(), at(11)), Step::Probe);
        assert_eq!(l.step(&ka(), at(12)), Step::Probe);
        assert_eq!(l.step(&ka(), at(12)), Step::Wait(at(13)));
        assert_eq!(l.step(&ka(), at(13)), Step::GiveUp);
    }

    #[test]
    fn an_answer_starts_the_idle_time_again() {
        let mut l = Liveness::default();
        l.heard(at(0));
        assert_eq!(l.step(&ka(), at(10)), Step::Probe);
        l.heard(at(10));
        assert_eq!(l.step(&ka(), at(12)), Step::Wait(at(20)));
    }
}
