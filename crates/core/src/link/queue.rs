//! A link the driver moves frames through by hand: the way to run the core with no I/O at all.
//!
//! [`QueueLink::new`] gives the link (for the engine) and a [`FrameQueues`] handle (for the
//! driver). The driver feeds frames with [`FrameQueues::feed`], which the engine reads at its
//! next poll, and collects what the engine sent with [`FrameQueues::take_sent`]. Two engines can
//! be joined by moving frames between their queues; a test harness (a packetdrill shim, say)
//! can script every frame a peer would send.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Link, Medium};

/// Frames waiting in each direction.
#[derive(Default)]
struct Queues {
    inbound: VecDeque<Vec<u8>>,
    outbound: Vec<Vec<u8>>,
}

/// The engine's side: a [`Link`] over the two queues.
pub struct QueueLink {
    queues: Arc<Mutex<Queues>>,
    mtu: usize,
    medium: Medium,
}

/// The driver's side of a [`QueueLink`].
#[derive(Clone)]
pub struct FrameQueues {
    queues: Arc<Mutex<Queues>>,
}

impl QueueLink {
    /// An Ethernet link with the given IP MTU, and the handle that feeds and drains it.
    pub fn new(mtu: usize) -> (QueueLink, FrameQueues) {
        QueueLink::with_medium(mtu, Medium::Ethernet)
    }

    /// A link of either medium: with [`Medium::Ip`] the driver feeds and takes bare IP packets.
    pub fn with_medium(mtu: usize, medium: Medium) -> (QueueLink, FrameQueues) {
        let queues = Arc::new(Mutex::new(Queues::default()));
        let link = QueueLink {
            queues: queues.clone(),
            mtu,
            medium,
        };
        (link, FrameQueues { queues })
    }
}

/// The queues, even if a panicking holder poisoned the lock (they stay consistent: every
/// change is a single push or drain).
fn lock(queues: &Mutex<Queues>) -> MutexGuard<'_, Queues> {
    queues.lock().unwrap_or_else(|e| e.into_inner())
}

impl FrameQueues {
    /// Hand the engine one frame; it reads it at its next poll.
    pub fn feed(&self, frame: &[u8]) {
        lock(&self.queues).inbound.push_back(frame.to_vec());
    }

    /// The frames the engine sent since the last call, oldest first.
    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut lock(&self.queues).outbound)
    }
}

impl Link for QueueLink {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(frame) = lock(&self.queues).inbound.pop_front() else {
            return Ok(None);
        };
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        // A frame longer than `buf` reports its real length, which the device drops.
        Ok(Some(frame.len()))
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        lock(&self.queues).outbound.push(frame.to_vec());
        Ok(true)
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn medium(&self) -> Medium {
        self.medium
    }

    fn describe(&self) -> String {
        "frame queues".into()
    }
}
