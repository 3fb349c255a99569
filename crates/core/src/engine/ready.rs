//! Readiness waits: the one hook the async sockets need. A task that found a socket not ready
//! (a read or accept that would block, a full send buffer) registers here with
//! `Request::Ready`; the engine answers after the poll that makes the socket ready, and the
//! answer wakes the task (in the runtime of `lingerstack-stack`). Nothing waits on a thread.
//!
//! Kept apart from the rest of the engine on purpose: it only reads the readiness every
//! socket already has (`entry::readiness`).

use super::entry;
use super::{Engine, Reply};
use crate::command::{Done, Interest, Readiness, SocketId};

/// Registered waits, answered in the order they came.
pub(super) struct ReadyWaits<R> {
    waits: Vec<(SocketId, Interest, R)>,
    /// Length at which abandoned waits are next swept out.
    sweep_at: usize,
}

impl<R> Default for ReadyWaits<R> {
    fn default() -> Self {
        ReadyWaits {
            waits: Vec::new(),
            sweep_at: 0,
        }
    }
}

/// Would a call of kind `interest` stop waiting with this readiness? An ended connection
/// counts as ready for everything: the call then returns its end of stream or error.
fn is_ready(ready: &Readiness, interest: Interest) -> bool {
    let ended = ready.closed || ready.error.is_some();
    match interest {
        Interest::Read => ready.readable || ended,
        Interest::Write => ready.writable || ended,
        Interest::Accept => ready.acceptable,
    }
}

impl<R: Reply> Engine<R> {
    /// Answer at once if `id` is ready for `interest` (or gone), else keep the wait.
    pub(super) fn wait_ready(&mut self, id: SocketId, interest: Interest, reply: R) {
        if self.ready_now(id, interest) {
            self.answers.push((reply, Ok(Done::Unit)));
        } else {
            let waits = &mut self.ready;
            if waits.waits.len() >= waits.sweep_at {
                // Tasks that stopped waiting (a dropped accept future, say) leave their waits
                // behind: sweep them out whenever the list has doubled, so it stays about as
                // long as the live waits at a constant cost per registration.
                waits.waits.retain(|(_, _, r)| !r.abandoned());
                waits.sweep_at = (2 * waits.waits.len()).max(64);
            }
            waits.waits.push((id, interest, reply));
        }
    }

    /// After a poll: answer the waits whose socket became ready or went away.
    pub(super) fn settle_ready(&mut self) {
        if self.ready.waits.is_empty() {
            return;
        }
        let waits = std::mem::take(&mut self.ready.waits);
        for (id, interest, reply) in waits {
            if self.ready_now(id, interest) {
                self.answers.push((reply, Ok(Done::Unit)));
            } else {
                self.ready.waits.push((id, interest, reply));
            }
        }
    }

    fn ready_now(&self, id: SocketId, interest: Interest) -> bool {
        match self.entries.get(&id) {
            Some(e) => is_ready(&entry::readiness(e, &self.sockets), interest),
            // Closed (or never was): the call the task retries reports that.
            None => true,
        }
    }
}
