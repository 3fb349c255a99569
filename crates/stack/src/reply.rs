//! Where the engine's answers go: a [`Responder`] travels with each [`Command`] to the engine
//! thread, which delivers the engine's answer through it.
//!
//! Three kinds: a channel with a tag (the facade's overlapped calls), the calling thread's
//! reusable [`ReplySlot`] (the blocking calls of [`crate::Stack`]), and a task's slot that wakes
//! its `Waker` ([`crate::poll`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;

use crossbeam_channel::Sender;
use lingerstack_core::{Outcome, Request};

/// Where the answer to a command goes: a channel and a tag the caller chose, or (for the
/// blocking calls of [`crate::Stack`]) the calling thread's reply slot.
#[derive(Clone, Debug)]
pub struct Responder {
    to: To,
}

#[derive(Clone, Debug)]
enum To {
    Channel {
        tx: Sender<(u64, Outcome)>,
        tag: u64,
    },
    Slot(SlotResponder),
    Task(crate::poll::TaskResponder),
}

impl Responder {
    /// Answers go to `tx`, marked with `tag`.
    pub fn new(tx: Sender<(u64, Outcome)>, tag: u64) -> Self {
        Responder {
            to: To::Channel { tx, tag },
        }
    }

    /// Answers go to `slot`, whose owner thread waits in [`ReplySlot::wait`].
    pub(crate) fn slot(slot: &Arc<ReplySlot>) -> Self {
        slot.holders.fetch_add(1, Ordering::SeqCst);
        Responder {
            to: To::Slot(SlotResponder {
                slot: Some(slot.clone()),
                thread: slot.thread.clone(),
            }),
        }
    }

    /// Answers go to `slot`, whose task is woken ([`crate::poll`]).
    pub(crate) fn task(slot: crate::poll::TaskResponder) -> Self {
        Responder { to: To::Task(slot) }
    }

    /// True when nobody waits for the answer any more (only known for task answers): the
    /// engine may drop such a request.
    pub(crate) fn abandoned(&self) -> bool {
        match &self.to {
            To::Task(task) => task.abandoned(),
            _ => false,
        }
    }

    /// Deliver the answer. A caller that gave up waiting is not an error.
    pub fn send(self, outcome: Outcome) {
        match self.to {
            To::Channel { tx, tag } => {
                let _ = tx.send((tag, outcome));
            }
            To::Slot(mut s) => {
                if let Some(slot) = s.slot.take() {
                    slot.put(outcome);
                    slot.holders.fetch_sub(1, Ordering::SeqCst);
                    drop(slot);
                    s.thread.unpark();
                }
            }
            To::Task(task) => task.answer(outcome),
        }
    }
}

/// The engine's end of a reply slot. Dropped without an answer (the engine is gone), it still
/// wakes the owner, which then sees no other holder of the slot and reports NetworkDown.
#[derive(Debug)]
struct SlotResponder {
    slot: Option<Arc<ReplySlot>>,
    thread: Thread,
}

impl Clone for SlotResponder {
    fn clone(&self) -> Self {
        if let Some(slot) = &self.slot {
            slot.holders.fetch_add(1, Ordering::SeqCst);
        }
        SlotResponder {
            slot: self.slot.clone(),
            thread: self.thread.clone(),
        }
    }
}

impl Drop for SlotResponder {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            // Count ourselves out before the wake-up, so the owner sees us gone.
            slot.holders.fetch_sub(1, Ordering::SeqCst);
            drop(slot);
            self.thread.unpark();
        }
    }
}

/// A one-answer mailbox owned by one thread and reused for each of its blocking calls: no
/// channel is made per call, and the caller spins briefly before it parks, so a quick answer
/// costs no system call on either side.
#[derive(Debug)]
pub(crate) struct ReplySlot {
    ready: AtomicBool,
    /// Responders that may still answer.
    holders: AtomicUsize,
    value: Mutex<Option<Outcome>>,
    thread: Thread,
}

/// How long a caller spins for its answer before parking.
const REPLY_SPIN: std::time::Duration = std::time::Duration::from_micros(20);

impl ReplySlot {
    fn new() -> Arc<ReplySlot> {
        Arc::new(ReplySlot {
            ready: AtomicBool::new(false),
            holders: AtomicUsize::new(0),
            value: Mutex::new(None),
            thread: std::thread::current(),
        })
    }

    /// This thread's slot, free for a new call (a fresh one if an old answer's holder lingers).
    pub(crate) fn mine() -> Arc<ReplySlot> {
        thread_local! {
            static SLOT: std::cell::RefCell<Option<Arc<ReplySlot>>> = const { std::cell::RefCell::new(None) };
        }
        SLOT.try_with(|cell| {
            let mut cell = cell.borrow_mut();
            match cell.as_ref() {
                Some(slot) if slot.holders.load(Ordering::SeqCst) == 0 => {
                    slot.ready.store(false, Ordering::Relaxed);
                    *slot.value.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    slot.clone()
                }
                _ => {
                    let slot = ReplySlot::new();
                    *cell = Some(slot.clone());
                    slot
                }
            }
        })
        // Called while the thread's locals are being destroyed: a slot for this call only.
        .unwrap_or_else(|_| ReplySlot::new())
    }

    fn put(&self, outcome: Outcome) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        self.ready.store(true, Ordering::Release);
    }

    fn take(&self) -> Option<Outcome> {
        self.value.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Wait for the answer on the owner thread; `None` when every responder was dropped
    /// unanswered (the engine is gone).
    pub(crate) fn wait(self: &Arc<ReplySlot>) -> Option<Outcome> {
        let start = std::time::Instant::now();
        let mut spins = 0u32;
        loop {
            if self.ready.load(Ordering::Acquire) {
                return self.take();
            }
            if self.holders.load(Ordering::SeqCst) == 0 {
                // Every responder is gone; one may have answered just before it went.
                return self
                    .ready
                    .load(Ordering::Acquire)
                    .then(|| self.take())
                    .flatten();
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else if start.elapsed() < REPLY_SPIN {
                // Give the CPU to the engine or a peer if one is waiting for it.
                std::thread::yield_now();
            } else {
                std::thread::park();
            }
        }
    }
}

impl lingerstack_core::Reply for Responder {
    fn abandoned(&self) -> bool {
        Responder::abandoned(self)
    }
}

/// A request and where to answer it.
#[derive(Debug)]
pub struct Command {
    /// What to do.
    pub request: Request,
    /// Where the answer goes.
    pub reply: Responder,
}
