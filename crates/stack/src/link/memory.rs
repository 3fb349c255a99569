//! The in-memory link: two engines in one process joined by a pair of channels, for tests
//! without privileges and for embedding.

use std::io;
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{Receiver, Sender, TryRecvError, unbounded};
use lingerstack_core::link::{Link, Wake};

/// One end of an in-memory Ethernet cable.
///
/// A cable made by [`MemoryLink::pair_with_offload`] carries a virtio-net header in front of
/// every frame, as a TAP with offloads does: the engines at both ends then pass TCP
/// super-segments of up to 64 KiB to each other whole, with partial checksums, the way the
/// kernel delivers them locally without ever cutting them.
pub struct MemoryLink {
    rx: Receiver<Vec<u8>>,
    tx: Sender<Vec<u8>>,
    /// Set when our engine's driver gives its wake hook; the other end wakes us through it.
    own_waker: Arc<OnceLock<Wake>>,
    peer_waker: Arc<OnceLock<Wake>>,
    mtu: usize,
    /// Frames carry a virtio-net header.
    vnet: bool,
    /// Offloads on (only with the header).
    offload: bool,
}

impl MemoryLink {
    /// A connected pair of links with the given IP MTU.
    pub fn pair(mtu: usize) -> (MemoryLink, MemoryLink) {
        MemoryLink::pair_framed(mtu, false)
    }

    /// A connected pair of links with the given IP MTU whose frames carry a virtio-net header
    /// and whose offloads are on: the engines move TCP super-segments through it.
    pub fn pair_with_offload(mtu: usize) -> (MemoryLink, MemoryLink) {
        MemoryLink::pair_framed(mtu, true)
    }

    fn pair_framed(mtu: usize, vnet: bool) -> (MemoryLink, MemoryLink) {
        let (a_tx, b_rx) = unbounded();
        let (b_tx, a_rx) = unbounded();
        let a_waker = Arc::new(OnceLock::new());
        let b_waker = Arc::new(OnceLock::new());
        let a = MemoryLink {
            rx: a_rx,
            tx: a_tx,
            own_waker: a_waker.clone(),
            peer_waker: b_waker.clone(),
            mtu,
            vnet,
            offload: vnet,
        };
        let b = MemoryLink {
            rx: b_rx,
            tx: b_tx,
            own_waker: b_waker,
            peer_waker: a_waker,
            mtu,
            vnet,
            offload: vnet,
        };
        (a, b)
    }
}

impl MemoryLink {
    /// A cable from an engine back to itself: every frame it sends, it receives. smoltcp
    /// answers its own ARP request and accepts frames to its own MAC, so a program can connect
    /// to the engine's own address with no peer at all (the C ABI's network when no interface
    /// is named).
    pub fn looped(mtu: usize) -> MemoryLink {
        let (tx, rx) = unbounded();
        let waker = Arc::new(OnceLock::new());
        MemoryLink {
            rx,
            tx,
            own_waker: waker.clone(),
            peer_waker: waker,
            mtu,
            vnet: false,
            offload: false,
        }
    }
}

impl Link for MemoryLink {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.rx.try_recv() {
            Ok(frame) => {
                let n = frame.len().min(buf.len());
                buf[..n].copy_from_slice(&frame[..n]);
                Ok(Some(frame.len()))
            }
            // The other end gone is a cable to nowhere: nothing arrives, nothing failed.
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => Ok(None),
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        if self.tx.send(frame.to_vec()).is_err() {
            // The other end is gone: like a cable to nowhere, frames vanish.
            return Ok(true);
        }
        if let Some(wake) = self.peer_waker.get() {
            wake();
        }
        Ok(true)
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn set_wake(&mut self, wake: Wake) {
        // Frames may have arrived before the hook was set: wake once so they are read.
        wake();
        let _ = self.own_waker.set(wake);
    }

    fn describe(&self) -> String {
        "memory".into()
    }

    fn vnet_header(&self) -> bool {
        self.vnet
    }

    /// Each end decides for what it sends; an end with offloads off still takes the other's
    /// super-segments (the engine's receive buffer has room for them with a header).
    fn set_offload(&mut self, on: bool) -> bool {
        self.offload = self.vnet && on;
        self.offload
    }
}
