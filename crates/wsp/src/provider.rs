//! [`Provider`]: startup and cleanup, the descriptor table, and the dispatcher thread that turns
//! engine events and overlapped completions into Winsock notifications.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, select, unbounded};
use lingerstack_stack::DeviceOptions;
use lingerstack_stack::link::Link;
use lingerstack_stack::{Done, Outcome};
use lingerstack_stack::{SocketEvent, SocketId, Stack, StackConfig};

use crate::callback::run_callback;
use crate::error::{WsaError, WsaResult};
use crate::overlapped::Overlapped;
use crate::socket::Shared;

/// Where descriptor numbers come from. The C ABI plugs WPUCreateSocketHandle /
/// WPUCloseSocketHandle in here; without one the provider numbers descriptors itself.
pub trait HandleSource: Send + Sync {
    /// A new descriptor for the provider's socket `context`.
    fn create(&self, context: u64) -> WsaResult<usize>;
    /// The descriptor is closed.
    fn close(&self, handle: usize);
}

/// Provider configuration.
pub struct ProviderConfig {
    /// The engine's configuration.
    pub stack: StackConfig,
    /// Middleware for the engine's device (pcap, faults).
    pub device: DeviceOptions,
    /// After the last cleanup, how long connections already closing gracefully may take
    /// before they are reset and the engine stops (C23).
    pub cleanup_grace: Duration,
    /// Descriptor numbering; `None`: the provider's own.
    pub handles: Option<Arc<dyn HandleSource>>,
}

impl ProviderConfig {
    /// A configuration with the defaults around `stack`.
    pub fn new(stack: StackConfig) -> ProviderConfig {
        ProviderConfig {
            stack,
            device: DeviceOptions::default(),
            cleanup_grace: Duration::from_secs(2),
            handles: None,
        }
    }
}

/// The next descriptor number, shared by every provider run in the process: a closed number
/// does not come back (C02), not even in a later run (C23).
static NEXT_HANDLE: AtomicUsize = AtomicUsize::new(0x100);

/// Descriptors, each naming a shared socket.
#[derive(Default)]
pub(crate) struct Table {
    pub(crate) by_handle: HashMap<usize, Arc<Shared>>,
    pub(crate) by_id: HashMap<SocketId, Arc<Shared>>,
}

/// A pending overlapped operation.
pub(crate) struct PendingOp {
    pub(crate) socket: Arc<Shared>,
    pub(crate) overlapped: Overlapped,
}

pub(crate) struct Inner {
    pub(crate) stack: Stack,
    pub(crate) table: Mutex<Table>,
    pub(crate) ops: Mutex<HashMap<u64, PendingOp>>,
    next_tag: AtomicU64,
    pub(crate) completions: Sender<(u64, Outcome)>,
    /// Bumped on every readiness change; select waits on it.
    pub(crate) changed: (Mutex<u64>, Condvar),
    running: AtomicBool,
    handles: Option<Arc<dyn HandleSource>>,
    cleanup_grace: Duration,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    /// Dropped at cleanup: the dispatcher ends.
    stop_dispatcher: Mutex<Option<Sender<()>>>,
}

/// A started provider: the Rust face of a Winsock service provider. Cheap to clone.
#[derive(Clone)]
pub struct Provider {
    pub(crate) inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Provider {
    /// Start a provider on `link` (WSPStartup). A link or configuration that cannot be brought
    /// up gives WSASYSNOTREADY.
    pub fn startup(config: ProviderConfig, link: Box<dyn Link>) -> WsaResult<Provider> {
        let (events_tx, events_rx) = unbounded();
        let stack =
            Stack::start(config.stack, link, config.device, Some(events_tx)).map_err(|e| {
                log::error!("provider startup failed: {e}");
                WsaError::SYSNOTREADY
            })?;
        let (completions, completions_rx) = unbounded();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let inner = Arc::new(Inner {
            stack,
            table: Mutex::new(Table::default()),
            ops: Mutex::new(HashMap::new()),
            next_tag: AtomicU64::new(1),
            completions,
            changed: (Mutex::new(0), Condvar::new()),
            running: AtomicBool::new(true),
            handles: config.handles,
            cleanup_grace: config.cleanup_grace,
            dispatcher: Mutex::new(None),
            stop_dispatcher: Mutex::new(Some(stop_tx)),
        });
        let weak = Arc::downgrade(&inner);
        let thread = std::thread::Builder::new()
            .name("lingerstack-wsp".into())
            .spawn(move || dispatch(weak, events_rx, completions_rx, stop_rx))
            .map_err(|_| WsaError::SYSNOTREADY)?;
        *lock(&inner.dispatcher) = Some(thread);
        Ok(Provider { inner })
    }

    /// The engine under this provider (for status pages and tests).
    pub fn stack(&self) -> &Stack {
        &self.inner.stack
    }

    /// The last WSPCleanup: reset every open socket, drop pending overlapped operations without
    /// signalling them, give graceful closes `cleanup_grace`, stop the engine (C23). Every
    /// descriptor is invalid afterwards and every call gets WSANOTINITIALISED.
    pub fn cleanup(&self) -> WsaResult<()> {
        // One cleanup wins; a concurrent second one sees WSANOTINITIALISED.
        if self
            .inner
            .running
            .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(WsaError::NOTINITIALISED);
        }
        let sockets: Vec<usize> = {
            let mut table = lock(&self.inner.table);
            table.by_id.clear();
            table.by_handle.drain().map(|(h, _)| h).collect()
        };
        for h in sockets {
            self.release_handle(h);
        }
        // Pending operations are dropped unsignalled (WSPCleanup), and the dispatcher told to
        // end before the engine's last answers could reach them.
        lock(&self.inner.ops).clear();
        drop(lock(&self.inner.stop_dispatcher).take());
        self.inner.stack.stop(self.inner.cleanup_grace);
        let thread = lock(&self.inner.dispatcher).take();
        // From a callback the dispatcher itself is cleaning up: it ends when it returns.
        if let Some(t) = thread.filter(|t| t.thread().id() != std::thread::current().id()) {
            let _ = t.join();
        }
        Ok(())
    }

    /// Fail with WSANOTINITIALISED after cleanup.
    pub(crate) fn live(&self) -> WsaResult<&Inner> {
        if self.inner.running.load(Ordering::SeqCst) {
            Ok(&self.inner)
        } else {
            Err(WsaError::NOTINITIALISED)
        }
    }

    /// The socket behind descriptor `s`, refusing a descriptor whose blocking close is still
    /// waiting (C20).
    pub(crate) fn descriptor(&self, s: usize) -> WsaResult<Arc<Shared>> {
        let shared = self.lookup(s)?;
        if shared.lock().blocking_close {
            return Err(WsaError::INPROGRESS);
        }
        Ok(shared)
    }

    /// Check that `s` is a live descriptor (WSAENOTSOCK otherwise), even one whose blocking
    /// close is still waiting: the C ABI checks a descriptor before it touches the caller's
    /// structures.
    pub fn check_descriptor(&self, s: usize) -> WsaResult<()> {
        self.lookup(s).map(|_| ())
    }

    /// The socket behind `s` without the busy check.
    pub(crate) fn lookup(&self, s: usize) -> WsaResult<Arc<Shared>> {
        let inner = self.live()?;
        lock(&inner.table)
            .by_handle
            .get(&s)
            .cloned()
            .ok_or(WsaError::NOTSOCK)
    }

    /// Register a new descriptor for `shared`.
    pub(crate) fn add_descriptor(&self, shared: &Arc<Shared>) -> WsaResult<usize> {
        let inner = self.live()?;
        let handle = match &inner.handles {
            Some(source) => source.create(shared.id.0)?,
            None => NEXT_HANDLE.fetch_add(4, Ordering::Relaxed) + 4,
        };
        let mut table = lock(&inner.table);
        // A cleanup that began meanwhile has emptied (or is about to empty) the table: it must
        // not gain a descriptor that nobody would release.
        if !inner.running.load(Ordering::SeqCst) {
            drop(table);
            self.release_handle(handle);
            return Err(WsaError::NOTINITIALISED);
        }
        table.by_handle.insert(handle, shared.clone());
        table.by_id.insert(shared.id, shared.clone());
        Ok(handle)
    }

    /// Drop descriptor `s`; with `last`, the socket itself leaves the table.
    pub(crate) fn remove_descriptor(&self, s: usize, shared: &Shared, last: bool) {
        {
            let mut table = lock(&self.inner.table);
            table.by_handle.remove(&s);
            if last {
                table.by_id.remove(&shared.id);
            }
        }
        self.release_handle(s);
    }

    /// Give a closed descriptor number back to its source (WPUCloseSocketHandle).
    pub(crate) fn release_handle(&self, s: usize) {
        if let Some(source) = &self.inner.handles {
            run_callback(|| source.close(s));
        }
    }

    /// The descriptor table, locked.
    pub(crate) fn table(&self) -> WsaResult<MutexGuard<'_, Table>> {
        Ok(lock(&self.live()?.table))
    }

    /// The socket with provider id `key` (WSPSocket from protocol info).
    pub(crate) fn by_key(&self, key: u64) -> WsaResult<Arc<Shared>> {
        let inner = self.live()?;
        lock(&inner.table)
            .by_id
            .get(&SocketId(key))
            .cloned()
            .ok_or(WsaError::INVAL)
    }

    /// Park an overlapped operation; returns the tag its completion will carry.
    pub(crate) fn park(&self, socket: Arc<Shared>, overlapped: Overlapped) -> WsaResult<u64> {
        let tag = self.inner.next_tag.fetch_add(1, Ordering::Relaxed);
        let mut ops = lock(&self.inner.ops);
        // Checked under the lock cleanup clears the operations with: none can slip in after.
        if !self.inner.running.load(Ordering::SeqCst) {
            return Err(WsaError::NOTINITIALISED);
        }
        ops.insert(tag, PendingOp { socket, overlapped });
        Ok(tag)
    }

    /// How many descriptors are open (C25 leak checks).
    pub fn descriptor_count(&self) -> usize {
        lock(&self.inner.table).by_handle.len()
    }

    /// How many overlapped operations are pending.
    pub fn pending_operations(&self) -> usize {
        lock(&self.inner.ops).len()
    }
}

/// The dispatcher: applies readiness changes to registrations and completes overlapped
/// operations, running every notification outside the provider's locks and never on the engine
/// thread. It ends when the engine has gone (its event sender dropped).
fn dispatch(
    inner: std::sync::Weak<Inner>,
    mut events: Receiver<SocketEvent>,
    completions: Receiver<(u64, Outcome)>,
    stop: Receiver<()>,
) {
    loop {
        select! {
            recv(events) -> event => match event {
                Ok(event) => {
                    let Some(inner) = inner.upgrade() else { return };
                    on_event(&inner, event);
                }
                // The engine is gone; its NetworkDown answers to overlapped calls (made
                // before or after) still come through `completions`.
                Err(_) => events = crossbeam_channel::never(),
            },
            recv(completions) -> done => match done {
                Ok((tag, outcome)) => {
                    let Some(inner) = inner.upgrade() else { return };
                    on_completion(&inner, tag, outcome);
                }
                Err(_) => return,
            },
            recv(stop) -> _ => return,
        }
    }
}

fn on_event(inner: &Inner, event: SocketEvent) {
    let Some(shared) = lock(&inner.table).by_id.get(&event.id).cloned() else {
        return notify_change(inner);
    };
    let mut actions = Vec::new();
    {
        let mut st = shared.lock();
        st.ready = event.ready;
        if let Some(e) = event.ready.error {
            st.so_error = WsaError::from(e).0;
        }
        if !st.closing {
            st.reg.update(&event.ready, &mut actions);
        }
    }
    notify_change(inner);
    for action in actions {
        // C18: a close that began meanwhile stops what is not yet delivered.
        if shared.lock().closing {
            break;
        }
        run_callback(|| action.run());
    }
}

/// Wake the threads waiting in select.
fn notify_change(inner: &Inner) {
    let mut n = lock(&inner.changed.0);
    *n += 1;
    inner.changed.1.notify_all();
}

fn on_completion(inner: &Inner, tag: u64, outcome: Outcome) {
    let Some(op) = lock(&inner.ops).remove(&tag) else {
        return;
    };
    match outcome {
        Ok(Done::Received(data)) => op.overlapped.complete(0, Some(&data), 0, true),
        Ok(Done::Sent(n)) => op.overlapped.complete(0, None, n, true),
        Ok(other) => {
            log::error!("unexpected overlapped answer {other:?}");
            op.overlapped.complete(WsaError::FAULT.0, None, 0, true)
        }
        Err(failure) => {
            op.overlapped
                .complete(WsaError::from(failure.error).0, None, failure.bytes, true)
        }
    }
    drop(op.socket);
}
