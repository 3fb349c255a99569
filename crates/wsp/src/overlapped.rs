//! Overlapped I/O: the operation record (WSAOVERLAPPED's part) and the three ways Windows
//! completes one: an event, a completion routine run on the asking thread (APC), or a
//! completion port any thread can dequeue from.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::callback::run_callback;
use crate::consts::WSA_IO_PENDING;
use crate::events::EventObject;

/// Where the bytes of an overlapped receive go. The default keeps them in the operation; the C
/// ABI copies them into the caller's WSABUFs.
pub trait RecvSink: Send {
    /// Store `data`; returns how many bytes were stored.
    fn deliver(&mut self, data: &[u8]) -> usize;
}

/// A completion routine: `(error, bytes, the operation)`.
pub type Routine = Box<dyn FnOnce(i32, usize, &Overlapped) + Send>;

/// A custom completion: `(the operation, error, bytes)`.
pub type CustomCompletion = Box<dyn FnOnce(&Overlapped, i32, usize) + Send>;

/// How an operation reports its completion.
pub enum Completion {
    /// Nobody is told; the caller asks WSPGetOverlappedResult.
    Poll,
    /// Signal this event (`WSAOVERLAPPED::hEvent`).
    Event(Arc<dyn EventObject>),
    /// Queue `routine` onto `queue` (the asking thread's), run when it waits alertably.
    Routine(Arc<ApcQueue>, Routine),
    /// Post a packet to a completion port.
    Port(CompletionPort, usize),
    /// A custom completion (the C ABI's upcalls and hook).
    Custom(CustomCompletion),
}

struct State {
    /// WSA_IO_PENDING while pending, then the Winsock error (0: success).
    internal: i32,
    /// Bytes transferred.
    internal_high: usize,
    data: Vec<u8>,
    sink: Option<Box<dyn RecvSink>>,
    completion: Option<Completion>,
}

/// An overlapped operation. Clones refer to the same operation.
#[derive(Clone)]
pub struct Overlapped {
    inner: Arc<(Mutex<State>, Condvar)>,
}

impl std::fmt::Debug for Overlapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (internal, bytes) = self.status();
        write!(f, "Overlapped {{ internal: {internal}, bytes: {bytes} }}")
    }
}

impl Overlapped {
    /// A new operation record that completes through `completion`.
    pub fn new(completion: Completion) -> Overlapped {
        let state = State {
            internal: WSA_IO_PENDING,
            internal_high: 0,
            data: Vec::new(),
            sink: None,
            completion: Some(completion),
        };
        Overlapped {
            inner: Arc::new((Mutex::new(state), Condvar::new())),
        }
    }

    /// Received bytes go to `sink` instead of being kept here.
    pub fn with_sink(self, sink: Box<dyn RecvSink>) -> Overlapped {
        self.lock().sink = Some(sink);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `(Internal, InternalHigh)`: WSA_IO_PENDING while pending, then the error and bytes.
    pub fn status(&self) -> (i32, usize) {
        let s = self.lock();
        (s.internal, s.internal_high)
    }

    /// Is it still pending?
    pub fn is_pending(&self) -> bool {
        self.status().0 == WSA_IO_PENDING
    }

    /// Take the received bytes (when no sink was given).
    pub fn take_data(&self) -> Vec<u8> {
        std::mem::take(&mut self.lock().data)
    }

    /// Wait until complete or `timeout`; true when complete.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &*self.inner;
        let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
        while s.internal == WSA_IO_PENDING {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = cond
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Complete the operation: store data and status, then notify as asked. Exactly once:
    /// a second call does nothing (C17). `notify: false` completes silently (WSPCleanup).
    pub(crate) fn complete(&self, error: i32, data: Option<&[u8]>, bytes: usize, notify: bool) {
        let completion = {
            let mut s = self.lock();
            if s.internal != WSA_IO_PENDING {
                return;
            }
            let mut bytes = bytes;
            if let Some(data) = data {
                bytes = match s.sink.as_mut() {
                    Some(sink) => sink.deliver(data),
                    None => {
                        s.data = data.to_vec();
                        data.len()
                    }
                };
            }
            s.internal = error;
            s.internal_high = bytes;
            self.inner.1.notify_all();
            s.completion.take()
        };
        if !notify {
            return;
        }
        let (error, bytes) = self.status();
        match completion {
            None | Some(Completion::Poll) => {}
            Some(Completion::Event(event)) => run_callback(|| event.set()),
            Some(Completion::Routine(queue, routine)) => {
                let op = self.clone();
                queue.push(Box::new(move || routine(error, bytes, &op)));
            }
            Some(Completion::Port(port, key)) => port.post(CompletionPacket {
                key,
                overlapped: self.clone(),
                bytes,
                error,
            }),
            Some(Completion::Custom(f)) => run_callback(|| f(self, error, bytes)),
        }
    }
}

/// A thread's queue of completion routines (the APC queue).
#[derive(Default)]
pub struct ApcQueue {
    queue: Mutex<VecDeque<Box<dyn FnOnce() + Send>>>,
    cond: Condvar,
}

thread_local! {
    static CURRENT: Arc<ApcQueue> = Arc::new(ApcQueue::default());
}

impl ApcQueue {
    /// The calling thread's queue.
    pub fn current() -> Arc<ApcQueue> {
        CURRENT.with(Arc::clone)
    }

    fn push(&self, routine: Box<dyn FnOnce() + Send>) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(routine);
        self.cond.notify_all();
    }

    /// Run every queued routine now; returns how many ran. Call it on the owning thread.
    pub fn run_pending(&self) -> usize {
        let mut ran = 0;
        loop {
            let next = self
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            let Some(routine) = next else { return ran };
            run_callback(routine);
            ran += 1;
        }
    }

    /// Wait alertably: until at least one routine is queued or `timeout` passes, then run
    /// them all (SleepEx(timeout, TRUE)). Returns how many ran.
    pub fn wait_alertable(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            while q.is_empty() {
                let now = Instant::now();
                if now >= deadline {
                    return 0;
                }
                q = self
                    .cond
                    .wait_timeout(q, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        self.run_pending()
    }
}

/// One completion-port packet.
#[derive(Debug, Clone)]
pub struct CompletionPacket {
    /// The key the operation was associated with.
    pub key: usize,
    /// The operation.
    pub overlapped: Overlapped,
    /// Bytes transferred.
    pub bytes: usize,
    /// Winsock error (0: success).
    pub error: i32,
}

/// A completion port: a queue of completed operations any thread can dequeue from.
#[derive(Clone)]
pub struct CompletionPort {
    tx: Sender<CompletionPacket>,
    rx: Receiver<CompletionPacket>,
}

impl Default for CompletionPort {
    fn default() -> Self {
        let (tx, rx) = unbounded();
        CompletionPort { tx, rx }
    }
}

impl CompletionPort {
    /// A new, empty port.
    pub fn new() -> CompletionPort {
        CompletionPort::default()
    }

    fn post(&self, packet: CompletionPacket) {
        let _ = self.tx.send(packet);
    }

    /// Dequeue one packet, waiting up to `timeout` (GetQueuedCompletionStatus).
    pub fn get(&self, timeout: Duration) -> Option<CompletionPacket> {
        self.rx.recv_timeout(timeout).ok()
    }
}
