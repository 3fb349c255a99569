//! The poll layer: the engine's calls as `std::task::Poll` functions and futures, for any
//! async runtime. [`crate::tokio`] is built on it; another runtime's sockets can be too,
//! without touching the engine.
//!
//! Two pieces:
//! - [`Answer`]: a request sent to the engine whose answer a task awaits (connect, a lingering
//!   close). The engine parks the request as it parks a blocking call, and its answer wakes
//!   the task: no thread waits.
//! - [`ReadyWait`]: one direction's readiness (read, write, accept). A poll function first
//!   tries the call without waiting; if it would block, it asks the engine to answer once the
//!   socket is ready ([`Request::Ready`]), and that answer wakes the task, which then tries
//!   again. The engine checks readiness when the request arrives, after the failed try, so a
//!   wake-up cannot be missed in between.
//!
//! Every call here is a short round trip to the engine thread (the engine busy-polls after
//! work, so a quick answer costs no system call); only the waiting for the network is moved
//! into the engine.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::api::Stack;
use crate::command::{Interest, Outcome, Request, Responder, SocketId, Wait};
use crate::error::StackError;

/// The shared state of one awaited answer: the outcome once it came, and the task to wake.
#[derive(Debug, Default)]
pub(crate) struct TaskSlot {
    state: Mutex<SlotState>,
    /// Engine-side responders that may still answer.
    holders: AtomicUsize,
}

#[derive(Debug, Default)]
struct SlotState {
    finished: bool,
    outcome: Option<Outcome>,
    waker: Option<Waker>,
}

impl TaskSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Store the first answer and wake the task (outside the lock).
    fn complete(&self, outcome: Outcome) {
        let waker = {
            let mut state = self.lock();
            if state.finished {
                return;
            }
            state.finished = true;
            state.outcome = Some(outcome);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn is_finished(&self) -> bool {
        self.lock().finished
    }

    /// The answer, or remember whom to wake when it comes.
    fn poll(&self, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut state = self.lock();
        if state.finished {
            return Poll::Ready(
                state
                    .outcome
                    .take()
                    .unwrap_or(Err(StackError::NetworkDown.into())),
            );
        }
        match &mut state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// The engine's end of a [`TaskSlot`]. Dropped unanswered (the engine went away), it answers
/// NetworkDown, so no task waits for ever.
#[derive(Debug)]
pub(crate) struct TaskResponder {
    slot: Option<Arc<TaskSlot>>,
}

impl TaskResponder {
    fn new(slot: &Arc<TaskSlot>) -> Self {
        slot.holders.fetch_add(1, Ordering::SeqCst);
        TaskResponder {
            slot: Some(slot.clone()),
        }
    }

    /// Deliver the answer and wake the task.
    pub(crate) fn answer(mut self, outcome: Outcome) {
        if let Some(slot) = self.slot.take() {
            slot.holders.fetch_sub(1, Ordering::SeqCst);
            slot.complete(outcome);
        }
    }

    /// True when no task awaits the answer any more (its [`Answer`] was dropped).
    pub(crate) fn abandoned(&self) -> bool {
        self.slot
            .as_ref()
            .is_none_or(|s| Arc::strong_count(s) == s.holders.load(Ordering::SeqCst))
    }
}

impl Clone for TaskResponder {
    fn clone(&self) -> Self {
        match &self.slot {
            Some(slot) => TaskResponder::new(slot),
            None => TaskResponder { slot: None },
        }
    }
}

impl Drop for TaskResponder {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take()
            && slot.holders.fetch_sub(1, Ordering::SeqCst) == 1
        {
            slot.complete(Err(StackError::NetworkDown.into()));
        }
    }
}

/// A request sent to the engine, as a future of its answer.
///
/// Dropping it does not withdraw the request: the engine still carries it out (a close still
/// closes) and its answer is discarded.
#[derive(Debug)]
pub struct Answer {
    slot: Arc<TaskSlot>,
}

impl Answer {
    /// Send `request` to `stack`'s engine; the answer comes through this future.
    pub fn submit(stack: &Stack, request: Request) -> Answer {
        let slot = Arc::new(TaskSlot::default());
        stack.submit(request, Responder::task(TaskResponder::new(&slot)));
        Answer { slot }
    }

    /// True once the answer is in (polling returns it at once).
    pub fn is_finished(&self) -> bool {
        self.slot.is_finished()
    }
}

impl Future for Answer {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        self.slot.poll(cx)
    }
}

/// Waiting for one kind of readiness of one socket, for one task at a time (keep one per
/// direction: a stream's reader and writer each have their own).
#[derive(Debug)]
pub struct ReadyWait {
    interest: Interest,
    pending: Option<Answer>,
}

impl ReadyWait {
    /// Nothing registered yet.
    pub fn new(interest: Interest) -> Self {
        ReadyWait {
            interest,
            pending: None,
        }
    }

    /// Run `call` (a non-blocking engine call) until it does not answer `WouldBlock`; while it
    /// does, the engine wakes the task when the socket is ready for this wait's interest.
    pub fn poll_call<T>(
        &mut self,
        cx: &mut Context<'_>,
        stack: &Stack,
        id: SocketId,
        mut call: impl FnMut() -> Result<T, StackError>,
    ) -> Poll<Result<T, StackError>> {
        // Two rounds at most: a registration the engine answers at once (the socket became
        // ready in between) earns a second try; after that the task yields rather than spin.
        for _ in 0..2 {
            if let Some(pending) = &mut self.pending {
                if Pin::new(pending).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.pending = None;
            }
            match call() {
                Err(StackError::WouldBlock) => {
                    self.pending = Some(Answer::submit(stack, Request::Ready(id, self.interest)));
                }
                done => return Poll::Ready(done),
            }
        }
        // Still would block although the engine called the socket ready in between.
        if let Some(pending) = &mut self.pending
            && Pin::new(pending).poll(cx).is_ready()
        {
            // Ready twice by the engine's account: let other tasks run, then try again.
            self.pending = None;
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// Read into `buf` without blocking a thread: `Ready(Ok(0))` is end of stream.
pub fn poll_recv(
    cx: &mut Context<'_>,
    wait: &mut ReadyWait,
    stack: &Stack,
    id: SocketId,
    buf: &mut [u8],
) -> Poll<Result<usize, StackError>> {
    wait.poll_call(cx, stack, id, || stack.recv_into(id, buf, Wait::No))
}

/// Queue bytes of `data` without blocking a thread: `Ready(Ok(n))` with `n` >= 1 once there is
/// room (`n` may be less than `data.len()`).
pub fn poll_send(
    cx: &mut Context<'_>,
    wait: &mut ReadyWait,
    stack: &Stack,
    id: SocketId,
    data: &[u8],
) -> Poll<Result<usize, StackError>> {
    wait.poll_call(cx, stack, id, || {
        stack.send(id, data, Wait::No).map_err(|f| f.error)
    })
}

/// Accept a connection on the listener `id` without blocking a thread.
pub fn poll_accept(
    cx: &mut Context<'_>,
    wait: &mut ReadyWait,
    stack: &Stack,
    id: SocketId,
) -> Poll<Result<(SocketId, std::net::SocketAddr), StackError>> {
    wait.poll_call(cx, stack, id, || stack.accept(id, Wait::No))
}
