//! When each socket became ready, in virtual time, for poll.
//!
//! A poll on packetdrill's syscall thread may wake only after the main thread has moved the
//! clock on and injected more: when it looks, it must know whether its sockets became ready
//! before its timeout (it returns them, ending at that moment) or only after (it timed out).
//! The engine reports every readiness change after the poll that made it; this records, per
//! socket and per poll bit, the virtual time the bit last turned on.

use std::collections::HashMap;

use libc::c_short;
use lingerstack_core::{Readiness, SocketId, StackError};

/// poll's revents for a socket's readiness, as Linux reports them.
pub(crate) fn revents(r: &Readiness) -> c_short {
    let mut ev = 0;
    if r.readable || r.acceptable {
        ev |= libc::POLLIN | libc::POLLRDNORM;
    }
    if r.writable {
        ev |= libc::POLLOUT | libc::POLLWRNORM;
    }
    let failed = r.error.is_some_and(|e| e != StackError::WouldBlock);
    if failed {
        // A refused connect or a reset: everything is "ready" and the error is pending.
        ev |= libc::POLLIN | libc::POLLOUT | libc::POLLERR | libc::POLLHUP;
    }
    if r.closed {
        ev |= libc::POLLRDHUP;
    }
    ev
}

/// One socket: its revents after the last change, and when each bit last turned on.
#[derive(Default)]
struct Times {
    last: c_short,
    on_since: [i64; 16],
}

/// Readiness times of every socket the engine reported on.
#[derive(Default)]
pub(crate) struct ReadyTimes {
    sockets: HashMap<SocketId, Times>,
}

impl ReadyTimes {
    /// The engine reported `ready` for `id` after its poll at virtual time `t`.
    pub(crate) fn record(&mut self, id: SocketId, ready: &Readiness, t: i64) {
        let times = self.sockets.entry(id).or_default();
        let now = revents(ready);
        let turned_on = now & !times.last;
        for (bit, since) in times.on_since.iter_mut().enumerate() {
            if turned_on & (1 << bit) != 0 {
                *since = t;
            }
        }
        times.last = now;
    }

    /// When the bits of `revents` (all set now) turned on for `id`: the earliest of them.
    /// None when the engine never reported them (they were set from the start).
    pub(crate) fn since(&self, id: SocketId, revents: c_short) -> Option<i64> {
        let times = self.sockets.get(&id)?;
        (0..16)
            .filter(|bit| revents & (1 << bit) != 0 && times.last & (1 << bit) != 0)
            .map(|bit| times.on_since[bit])
            .min()
    }

    /// Forget a closed socket.
    pub(crate) fn forget(&mut self, id: SocketId) {
        self.sockets.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_when_each_bit_turned_on() {
        let mut t = ReadyTimes::default();
        let id = SocketId(1);
        let writable = Readiness {
            writable: true,
            ..Readiness::default()
        };
        t.record(id, &writable, 10);
        let both = Readiness {
            readable: true,
            ..writable
        };
        t.record(id, &both, 20);
        // Still writable since 10, readable since 20.
        t.record(id, &both, 30);
        assert_eq!(t.since(id, libc::POLLOUT), Some(10));
        assert_eq!(t.since(id, libc::POLLIN), Some(20));
        assert_eq!(t.since(id, libc::POLLIN | libc::POLLOUT), Some(10));
        assert_eq!(t.since(SocketId(2), libc::POLLIN), None);
    }
}
