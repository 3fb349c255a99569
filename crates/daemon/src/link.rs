//! The daemon's wrapper around the engine's link: a health flag raised when the link fails (the
//! TAP device was removed), so the daemon notices at once rather than at the next socket call.
//! (The pcap is the engine's own, `StackBuilder::pcap`, reopened on SIGHUP through the stack.)

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use lingerstack_stack::link::Link;

/// Whether the link still works, and the first error if it failed.
#[derive(Default)]
pub struct LinkHealth {
    failed: AtomicBool,
    error: Mutex<Option<String>>,
}

impl LinkHealth {
    /// True once the link reported an error.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The first error, as text.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }

    fn fail(&self, e: &io::Error) {
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = Some(e.to_string());
        }
        self.failed.store(true, Ordering::Release);
    }
}

/// A link that records its failure in a [`LinkHealth`].
pub struct WatchedLink<L: Link> {
    inner: L,
    health: Arc<LinkHealth>,
}

impl<L: Link> WatchedLink<L> {
    /// Wrap `inner`.
    pub fn new(inner: L, health: Arc<LinkHealth>) -> Self {
        WatchedLink { inner, health }
    }
}

impl<L: Link> Link for WatchedLink<L> {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.inner.recv(buf).inspect_err(|e| self.health.fail(e))
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        self.inner.send(frame).inspect_err(|e| self.health.fail(e))
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.fd()
    }

    fn set_wake(&mut self, wake: lingerstack_stack::link::Wake) {
        self.inner.set_wake(wake)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn vnet_header(&self) -> bool {
        self.inner.vnet_header()
    }

    fn set_offload(&mut self, on: bool) -> bool {
        self.inner.set_offload(on)
    }
}
