//! WSPSelect over several descriptors, from the readiness the dispatcher keeps current.

use std::time::{Duration, Instant};

use lingerstack_stack::Readiness;

use crate::error::WsaResult;
use crate::provider::Provider;

/// A test of readiness for one of the three sets.
type ReadyTest = fn(&Readiness) -> bool;

fn readable(r: &Readiness) -> bool {
    r.readable || r.acceptable || r.closed
}

/// Room to send (a completed connect has an empty buffer, so it shows here too).
fn writable(r: &Readiness) -> bool {
    r.writable
}

fn failed(r: &Readiness) -> bool {
    r.connected && r.error.is_some() && !r.writable
}

impl Provider {
    /// WSPSelect: keep in each set the descriptors that are ready, waiting up to `timeout`
    /// (None: forever). Returns how many are ready in all.
    pub fn select(
        &self,
        read: &mut Vec<usize>,
        write: &mut Vec<usize>,
        except: &mut Vec<usize>,
        timeout: Option<Duration>,
    ) -> WsaResult<usize> {
        if read.is_empty() && write.is_empty() && except.is_empty() {
            // Nothing to wait for: Windows refuses the call rather than sleep.
            return Err(crate::error::WsaError::INVAL);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let sets: Vec<(Vec<usize>, ReadyTest)> = vec![
            (read.clone(), readable),
            (write.clone(), writable),
            (except.clone(), failed),
        ];
        // Every descriptor must be valid, even if another one is ready.
        let sockets: Vec<Vec<_>> = sets
            .iter()
            .map(|(set, _)| {
                set.iter()
                    .map(|&s| self.descriptor(s).map(|sh| (s, sh)))
                    .collect::<WsaResult<Vec<_>>>()
            })
            .collect::<WsaResult<_>>()?;
        loop {
            let seen = *self
                .inner
                .changed
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let ready: Vec<Vec<usize>> = sockets
                .iter()
                .zip(&sets)
                .map(|(socks, (_, test))| {
                    socks
                        .iter()
                        .filter(|(_, sh)| test(&sh.lock().ready))
                        .map(|(s, _)| *s)
                        .collect()
                })
                .collect();
            let count: usize = ready.iter().map(Vec::len).sum();
            let expired = deadline.is_some_and(|d| Instant::now() >= d);
            if count > 0 || expired {
                *read = ready[0].clone();
                *write = ready[1].clone();
                *except = ready[2].clone();
                return Ok(count);
            }
            self.live()?;
            let guard = self
                .inner
                .changed
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if *guard == seen {
                let wait = deadline.map_or(Duration::from_millis(100), |d| {
                    d.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(100))
                });
                let _ = self.inner.changed.1.wait_timeout(guard, wait);
            }
        }
    }
}
