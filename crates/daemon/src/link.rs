//! The daemon's wrapper around the engine's link: its own pcap writer (so that SIGHUP can
//! reopen the file while the engine runs) and a health flag raised when the link fails (the TAP
//! device was removed), so the daemon notices at once rather than at the next socket call.
//!
//! The engine has a pcap middleware of its own (`DeviceOptions::pcap`), but the `Stack` handle
//! offers no way to reopen it; doing it here, one layer below, keeps SIGHUP working without
//! touching the engine. The frames recorded are the ones the link itself moves.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use lingerstack_stack::link::{Link, PcapSink};

/// A pcap file shared between the engine thread (which writes frames) and the daemon (which
/// flushes it periodically and reopens it on SIGHUP).
pub struct SharedPcap {
    path: PathBuf,
    sink: Mutex<Option<PcapSink>>,
}

impl SharedPcap {
    /// Create (truncate) the file.
    pub fn create(path: &Path) -> io::Result<Arc<SharedPcap>> {
        let sink = PcapSink::create(path)?;
        Ok(Arc::new(SharedPcap {
            path: path.to_path_buf(),
            sink: Mutex::new(Some(sink)),
        }))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, frame: &[u8]) {
        if let Ok(mut sink) = self.sink.lock()
            && let Some(sink) = sink.as_mut()
        {
            sink.record(std::time::SystemTime::now(), frame.len(), frame);
        }
    }

    /// Push buffered frames to the file.
    pub fn flush(&self) {
        if let Ok(mut sink) = self.sink.lock()
            && let Some(sink) = sink.as_mut()
        {
            sink.flush();
        }
    }

    /// Close the file and start a new one at the same path (after rotation).
    pub fn reopen(&self) -> io::Result<()> {
        let mut sink = self
            .sink
            .lock()
            .map_err(|_| io::Error::other("pcap lock poisoned"))?;
        match sink.as_mut() {
            Some(s) => s.reopen(),
            None => {
                *sink = Some(PcapSink::create(&self.path)?);
                Ok(())
            }
        }
    }
}

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

/// A link that records its frames in a [`SharedPcap`] and its failure in a [`LinkHealth`].
pub struct WatchedLink<L: Link> {
    inner: L,
    pcap: Option<Arc<SharedPcap>>,
    health: Arc<LinkHealth>,
}

impl<L: Link> WatchedLink<L> {
    /// Wrap `inner`.
    pub fn new(inner: L, pcap: Option<Arc<SharedPcap>>, health: Arc<LinkHealth>) -> Self {
        WatchedLink {
            inner,
            pcap,
            health,
        }
    }
}

impl<L: Link> Link for WatchedLink<L> {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.inner.recv(buf) {
            Ok(Some(n)) => {
                if let Some(p) = &self.pcap {
                    p.write(&buf[..n.min(buf.len())]);
                }
                Ok(Some(n))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.health.fail(&e);
                Err(e)
            }
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        if let Some(p) = &self.pcap {
            p.write(frame);
        }
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
}
