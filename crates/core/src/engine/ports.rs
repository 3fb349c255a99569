//! Local ports: smoltcp checks no conflicts and picks no ephemeral ports, so the engine does.

use std::collections::{HashMap, HashSet};

use crate::error::StackError;

/// First ephemeral port, as on Windows.
pub(crate) const EPHEMERAL_FIRST: u16 = 49152;

/// Which local ports are taken: bound exclusively by a socket id (bind/listen), or busy because
/// a connection in smoltcp's set uses them.
#[derive(Default)]
pub(crate) struct Ports {
    bound: HashSet<u16>,
    busy: HashMap<u16, u32>,
    next: u16,
}

impl Ports {
    /// Bind `port` exclusively, or an ephemeral port when it is 0.
    pub(crate) fn bind(&mut self, port: u16) -> Result<u16, StackError> {
        if port == 0 {
            let port = self.ephemeral()?;
            self.bound.insert(port);
            return Ok(port);
        }
        if !self.bound.insert(port) {
            return Err(StackError::AddrInUse);
        }
        Ok(port)
    }

    /// Release an exclusive binding.
    pub(crate) fn unbind(&mut self, port: u16) {
        self.bound.remove(&port);
    }

    /// A free ephemeral port (not bound, not used by any connection), round robin.
    pub(crate) fn ephemeral(&mut self) -> Result<u16, StackError> {
        let span = u32::from(u16::MAX - EPHEMERAL_FIRST) + 1;
        for _ in 0..span {
            if self.next < EPHEMERAL_FIRST {
                self.next = EPHEMERAL_FIRST;
            }
            let port = self.next;
            self.next = self.next.checked_add(1).unwrap_or(EPHEMERAL_FIRST);
            if !self.bound.contains(&port) && !self.busy.contains_key(&port) {
                return Ok(port);
            }
        }
        Err(StackError::NoBuffers)
    }

    /// A connection started using `port`.
    pub(crate) fn hold(&mut self, port: u16) {
        *self.busy.entry(port).or_default() += 1;
    }

    /// A connection using `port` left smoltcp's set.
    pub(crate) fn release(&mut self, port: u16) {
        if let Some(n) = self.busy.get_mut(&port) {
            *n -= 1;
            if *n == 0 {
                self.busy.remove(&port);
            }
        }
    }

    /// Start the ephemeral search at a seeded point, as stacks do to make ports less guessable.
    pub(crate) fn seed(&mut self, seed: u64) {
        self.next = EPHEMERAL_FIRST + (seed % u64::from(u16::MAX - EPHEMERAL_FIRST)) as u16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_bind_conflicts_and_releases() {
        let mut p = Ports::default();
        assert_eq!(p.bind(80), Ok(80));
        assert_eq!(p.bind(80), Err(StackError::AddrInUse));
        p.unbind(80);
        assert_eq!(p.bind(80), Ok(80));
    }

    #[test]
    fn ephemeral_skips_busy_and_bound() {
        let mut p = Ports::default();
        p.seed(0);
        p.hold(EPHEMERAL_FIRST);
        p.bind(EPHEMERAL_FIRST + 1).unwrap();
        assert_eq!(p.ephemeral(), Ok(EPHEMERAL_FIRST + 2));
        p.release(EPHEMERAL_FIRST);
        // Round robin: the released port comes back only after wrapping.
        assert_eq!(p.ephemeral(), Ok(EPHEMERAL_FIRST + 3));
    }

    #[test]
    fn ephemeral_exhaustion_is_an_error() {
        let mut p = Ports::default();
        for port in EPHEMERAL_FIRST..=u16::MAX {
            p.hold(port);
        }
        assert_eq!(p.ephemeral(), Err(StackError::NoBuffers));
    }
}
