//! The client's upcall table put to work: descriptors (WPUCreateSocketHandle), events
//! (WPUSetEvent/WPUResetEvent), async-select messages (WPUPostMessage), completion routines
//! (WPUQueueApc) and the completion hook (`LingerstackSetCompletionHook`).
//!
//! The provider runs all of these on its dispatcher thread, outside its locks (callback.rs), so
//! the client may call back into the provider from inside them.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wsp::HandleSource;
use wsp::consts::*;
use wsp::error::{WsaError, WsaResult};
use wsp::events::{EventObject, MessageSink};
use wsp::overlapped::{Completion, Overlapped};

use crate::raw::{self, OvPtr, ThreadId};
use crate::types::*;

/// The client's upcall table, as WSPStartup received it.
pub(crate) struct Upcalls {
    pub(crate) table: WSPUPCALLTABLE,
    pub(crate) catalog: u32,
}

/// Descriptors from WPUCreateSocketHandle, returned through WPUCloseSocketHandle.
pub(crate) struct ClientHandles(pub(crate) Arc<Upcalls>);

impl HandleSource for ClientHandles {
    fn create(&self, context: u64) -> WsaResult<usize> {
        let f = self
            .0
            .table
            .lpWPUCreateSocketHandle
            .ok_or(WsaError::INVAL)?;
        raw::call_create_handle(f, self.0.catalog, context as usize).map_err(WsaError)
    }

    fn close(&self, handle: usize) {
        if let Some(f) = self.0.table.lpWPUCloseSocketHandle {
            raw::call_close_handle(f, handle);
        }
    }
}

/// The provider's own numbering when the client gives no WPUCreateSocketHandle: one counter for
/// the whole process, started at a random point, so that a descriptor of an earlier provider run
/// is never valid in a later one (WSAENOTSOCK). Never 0, never INVALID_SOCKET, multiples of 4.
pub(crate) struct OwnHandles;

static NEXT_HANDLE: AtomicU64 = AtomicU64::new(0);

impl HandleSource for OwnHandles {
    fn create(&self, _context: u64) -> WsaResult<usize> {
        if NEXT_HANDLE.load(Ordering::Relaxed) == 0 {
            let start = 0x1000 + (RandomState::new().hash_one(std::process::id()) & 0xff_ffff) * 4;
            let _ = NEXT_HANDLE.compare_exchange(0, start, Ordering::Relaxed, Ordering::Relaxed);
        }
        let h = NEXT_HANDLE.fetch_add(4, Ordering::Relaxed) as usize;
        if h == 0 || h == INVALID_SOCKET {
            return Err(WsaError(WSAEMFILE));
        }
        Ok(h)
    }

    fn close(&self, _handle: usize) {}
}

/// A client event object (WSAEVENT), signalled and reset through the upcalls.
pub(crate) struct ClientEvent {
    up: Arc<Upcalls>,
    handle: usize,
}

impl ClientEvent {
    /// The event `handle`; WSAEINVAL when the client gave no WPUSetEvent.
    pub(crate) fn new(up: &Arc<Upcalls>, handle: usize) -> WsaResult<ClientEvent> {
        if handle == 0 || up.table.lpWPUSetEvent.is_none() {
            return Err(WsaError::INVAL);
        }
        Ok(ClientEvent {
            up: up.clone(),
            handle,
        })
    }
}

impl EventObject for ClientEvent {
    fn set(&self) {
        if let Some(f) = self.up.table.lpWPUSetEvent
            && let Err(e) = raw::call_event(f, self.handle)
        {
            log::warn!("WPUSetEvent({:#x}) failed: {e}", self.handle);
        }
    }

    fn reset(&self) {
        if let Some(f) = self.up.table.lpWPUResetEvent
            && let Err(e) = raw::call_event(f, self.handle)
        {
            log::warn!("WPUResetEvent({:#x}) failed: {e}", self.handle);
        }
    }
}

/// A window's message queue: WPUPostMessage(hWnd, wMsg, socket, WSAMAKESELECTREPLY(event, error)).
pub(crate) struct ClientWindow {
    up: Arc<Upcalls>,
    hwnd: usize,
    msg: u32,
}

impl ClientWindow {
    /// WSAEINVAL when the client gave no WPUPostMessage.
    pub(crate) fn new(up: &Arc<Upcalls>, hwnd: usize, msg: u32) -> WsaResult<ClientWindow> {
        if up.table.lpWPUPostMessage.is_none() {
            return Err(WsaError::INVAL);
        }
        Ok(ClientWindow {
            up: up.clone(),
            hwnd,
            msg,
        })
    }
}

/// WSAMAKESELECTREPLY(event, error): MAKELONG(event, error).
pub fn make_select_reply(event: i32, error: i32) -> isize {
    (((error as u32 & 0xffff) << 16) | (event as u32 & 0xffff)) as isize
}

impl MessageSink for ClientWindow {
    fn post(&self, socket: usize, event: i32, error: i32) {
        if let Some(f) = self.up.table.lpWPUPostMessage
            && !raw::call_post(
                f,
                self.hwnd,
                self.msg,
                socket,
                make_select_reply(event, error),
            )
        {
            log::warn!("WPUPostMessage({:#x}) failed", self.hwnd);
        }
    }
}

/// The completion hook (`LingerstackSetCompletionHook`).
static HOOK: Mutex<CompletionHook> = Mutex::new(None);

/// Install (or with NULL, remove) the completion hook.
pub(crate) fn set_hook(hook: CompletionHook) {
    *HOOK.lock().unwrap_or_else(|e| e.into_inner()) = hook;
}

fn hook() -> CompletionHook {
    *HOOK.lock().unwrap_or_else(|e| e.into_inner())
}

/// WPUQueueApc.
pub(crate) type QueueApc =
    unsafe extern "system" fn(*mut WSATHREADID, UserApc, DWORD_PTR, *mut i32) -> i32;
/// A completion routine.
pub(crate) type Routine = unsafe extern "system" fn(DWORD, DWORD, *mut WSAOVERLAPPED, DWORD);

/// How one overlapped operation tells its caller it completed.
pub(crate) enum Notify {
    /// WPUSetEvent(hEvent).
    Event(ClientEvent),
    /// WPUQueueApc (the first) onto the thread, running the routine.
    Routine(QueueApc, Routine, ThreadId),
    /// The completion hook, if one is installed.
    Hook,
}

/// Pending overlapped operations by the caller's WSAOVERLAPPED address, each with a serial so a
/// completion removes only its own entry (the caller may reuse the structure at once).
#[derive(Default)]
pub(crate) struct Pending {
    ops: Mutex<HashMap<OvPtr, (u64, Overlapped)>>,
    serial: AtomicU64,
}

impl Pending {
    pub(crate) fn get(&self, ov: OvPtr) -> Option<Overlapped> {
        self.lock().get(&ov).map(|(_, o)| o.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OvPtr, (u64, Overlapped)>> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remove(&self, ov: OvPtr, serial: u64) {
        let mut ops = self.lock();
        if ops.get(&ov).is_some_and(|(s, _)| *s == serial) {
            ops.remove(&ov);
        }
    }

    /// Forget an operation that never started (the call failed at once).
    pub(crate) fn cancel(&self, ov: OvPtr, serial: u64) {
        self.remove(ov, serial);
    }

    /// Forget everything (the last WSPCleanup: pending operations are not signalled).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// A new operation on descriptor `s` for the caller's `ov`, completing through `notify`:
    /// the status goes into `Internal`/`InternalHigh` first, then the notification.
    /// Returns the operation and its serial (for [`Pending::cancel`]).
    pub(crate) fn start(
        self: &Arc<Self>,
        s: SOCKET,
        ov: OvPtr,
        notify: Notify,
    ) -> (Overlapped, u64) {
        ov.set_status(WSA_IO_PENDING, 0);
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let pending = Arc::downgrade(self);
        let op = Overlapped::new(Completion::Custom(Box::new(move |_op, error, bytes| {
            ov.set_status(error, bytes);
            if let Some(p) = pending.upgrade() {
                p.remove(ov, serial);
            }
            match notify {
                Notify::Event(event) => event.set(),
                Notify::Routine(queue, routine, thread) => {
                    queue_routine(queue, routine, thread.0, error, bytes, ov);
                }
                Notify::Hook => {
                    if let Some(h) = hook() {
                        raw::call_hook(h, s, ov, error, bytes);
                    }
                }
            }
        })));
        self.lock().insert(ov, (serial, op.clone()));
        (op, serial)
    }
}

/// What the APC runs: the caller's completion routine with its result.
struct ApcJob {
    routine: Routine,
    error: i32,
    bytes: usize,
    ov: OvPtr,
}

/// The APC function the provider queues: runs the completion routine, on the thread the client
/// chose, when the client chooses.
unsafe extern "system" fn run_apc(context: DWORD_PTR) {
    // SAFETY: `context` is one the provider queued (`raw::into_context`), handed back
    // once by the client (WPUQueueApc contract).
    let job: Box<ApcJob> = unsafe { raw::from_context(context) };
    let _ =
        std::panic::catch_unwind(|| raw::call_routine(job.routine, job.error, job.bytes, job.ov));
}

fn queue_routine(
    queue: QueueApc,
    routine: Routine,
    thread: WSATHREADID,
    error: i32,
    bytes: usize,
    ov: OvPtr,
) {
    let context = raw::into_context(Box::new(ApcJob {
        routine,
        error,
        bytes,
        ov,
    }));
    if let Err(e) = raw::call_queue_apc(queue, thread, run_apc, context) {
        log::error!("WPUQueueApc failed ({e}): completion routine not queued");
        // SAFETY: `context` is one the provider queued (`raw::into_context`), handed back
        // once by the client (WPUQueueApc contract).
        drop(unsafe { raw::from_context::<ApcJob>(context) });
    }
}
