//! Socket buffers that outlive their smoltcp sockets: a freed socket's buffers go back to a
//! pool and the next socket of the same size takes them, instead of allocating and zeroing
//! (memset) hundreds of KiB per connection. At high connection rates that memset was a fifth
//! of the engine's time (every accepted connection refills its listener slot).
//!
//! smoltcp takes a `&'static mut [u8]`; the engine keeps the owning raw pointer and turns it
//! back into a buffer only after the socket holding the borrow has left the `SocketSet`.
//! Reused bytes are never shown: smoltcp's ring buffers only hand out bytes written into them.

use std::collections::HashMap;

use smoltcp::iface::SocketHandle;

/// Most bytes kept in the pool (resident memory held after a burst of connections closes);
/// beyond that freed buffers go back to the allocator.
const POOL_MAX_BYTES: usize = 16 << 20;

/// A buffer the pool owns (a leaked `Box<[u8]>`).
struct Raw(*mut [u8]);

impl Raw {
    fn len(&self) -> usize {
        self.0.len()
    }

    /// Free it. Only when no borrow handed out by [`BufferPool::take`] is alive.
    fn free(self) {
        // SAFETY: the pointer came from `Box::into_raw` and is freed once (it is consumed).
        drop(unsafe { Box::from_raw(self.0) });
    }
}

/// The engine's socket buffers: free ones by size, and those lent to live sockets.
#[derive(Default)]
pub(crate) struct BufferPool {
    free: HashMap<usize, Vec<Raw>>,
    free_bytes: usize,
    lent: HashMap<SocketHandle, [Raw; 2]>,
}

// SAFETY: the pool owns its buffers (the raw pointers are owning pointers); it moves to the
// engine thread with the engine and is only used there.
unsafe impl Send for BufferPool {}

impl BufferPool {
    /// A buffer of `len` bytes for a new socket: a pooled one, or a fresh zeroed one.
    fn take(&mut self, len: usize) -> Raw {
        if let Some(raw) = self.free.get_mut(&len).and_then(Vec::pop) {
            self.free_bytes -= len;
            return raw;
        }
        Raw(Box::into_raw(vec![0u8; len].into_boxed_slice()))
    }

    /// Receive and transmit buffers for a new socket. Call [`BufferPool::lend`] with the
    /// handle once the socket is in the set.
    pub(crate) fn buffers(
        &mut self,
        rx: usize,
        tx: usize,
    ) -> (&'static mut [u8], &'static mut [u8], Pending) {
        let (rx, tx) = (self.take(rx), self.take(tx));
        // SAFETY: both are live, distinct allocations the pool owns; the borrows live in the
        // socket until it is removed from the set, and the pool touches neither buffer again
        // before `give_back` (called after the removal) or `drop_all` (after the set is gone).
        let borrows = unsafe { (&mut *rx.0, &mut *tx.0) };
        (borrows.0, borrows.1, Pending([rx, tx]))
    }

    /// Record that the socket `handle` holds the `pending` buffers.
    pub(crate) fn lend(&mut self, handle: SocketHandle, pending: Pending) {
        self.lent.insert(handle, pending.0);
    }

    /// The socket `handle` has been removed from the set (and dropped): take its buffers back.
    pub(crate) fn give_back(&mut self, handle: SocketHandle) {
        let Some(bufs) = self.lent.remove(&handle) else {
            return;
        };
        for raw in bufs {
            let len = raw.len();
            if self.free_bytes + len <= POOL_MAX_BYTES {
                self.free_bytes += len;
                self.free.entry(len).or_default().push(raw);
            } else {
                raw.free();
            }
        }
    }

    /// Free everything. Only after every socket holding a buffer is gone.
    pub(crate) fn drop_all(&mut self) {
        for (_, bufs) in self.lent.drain() {
            bufs.into_iter().for_each(Raw::free);
        }
        for (_, list) in self.free.drain() {
            list.into_iter().for_each(Raw::free);
        }
        self.free_bytes = 0;
    }
}

/// Buffers taken for a socket not yet in the set.
pub(crate) struct Pending([Raw; 2]);
