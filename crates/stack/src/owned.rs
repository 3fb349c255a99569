//! [`OwnedSocket`]: an engine socket id owned by a Rust value, closed by its linger setting
//! when that value goes. Both faces of the Rust API ([`crate::net`], `crate::tokio`) keep
//! their sockets in one; clones of a stream share it, so only the last handle closes.
//!
//! The linger table lives here, in [`close_mode`], once for both faces.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::api::Stack;
use crate::command::{CloseMode, CloseOutcome, Request, Responder, SocketId, SocketInfo};
use crate::error::StackError;

/// Per-socket settings of the Rust API (the engine keeps the TCP options itself).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Settings {
    /// SO_LINGER in std's words: `None` is the default close.
    pub(crate) linger: Option<Duration>,
    /// A non-blocking (or async) socket never waits in a close.
    pub(crate) nonblocking: bool,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    /// `take_error` reported the connection's error already.
    pub(crate) error_taken: bool,
}

/// How a socket with `linger` closes; `waits` says whether the caller may wait for it.
///
/// | linger | waits | mode |
/// |---|---|---|
/// | `None` | either | FIN after queued data, in the background, under the close deadline |
/// | `Some(0)` | either | RST now |
/// | `Some(d)` | yes | wait for every byte and the FIN to be acknowledged; RST at `d` |
/// | `Some(d)` | no | as the default close, but reset at `d` instead of the close deadline |
pub(crate) fn close_mode(linger: Option<Duration>, waits: bool) -> CloseMode {
    match linger {
        None => CloseMode::Graceful { deadline: None },
        Some(d) if d.is_zero() => CloseMode::Abort,
        Some(timeout) if waits => CloseMode::Linger { timeout },
        Some(d) => CloseMode::Graceful { deadline: Some(d) },
    }
}

/// One socket id of one engine, with its settings. Dropping it closes the id by the settings
/// (errors go to the log); a non-blocking one only hands the close to the engine.
pub(crate) struct OwnedSocket {
    pub(crate) stack: Stack,
    pub(crate) id: SocketId,
    settings: Mutex<Settings>,
    /// Set once the id was closed (or handed on), so drop leaves it alone.
    closed: bool,
}

impl OwnedSocket {
    /// A new engine socket owned by the result.
    pub(crate) fn open(stack: &Stack, nonblocking: bool) -> Result<OwnedSocket, StackError> {
        let id = stack.open()?;
        Ok(OwnedSocket::adopt(stack, id, nonblocking))
    }

    /// Take ownership of `id` (an accepted connection).
    pub(crate) fn adopt(stack: &Stack, id: SocketId, nonblocking: bool) -> OwnedSocket {
        OwnedSocket {
            stack: stack.clone(),
            id,
            settings: Mutex::new(Settings {
                nonblocking,
                ..Settings::default()
            }),
            closed: false,
        }
    }

    pub(crate) fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn info(&self) -> Result<SocketInfo, StackError> {
        self.stack.info(self.id)
    }

    /// Close now by the linger setting; a blocking lingering close waits here.
    pub(crate) fn close(mut self) -> Result<CloseOutcome, StackError> {
        self.closed = true;
        self.close_by_settings()
    }

    /// Hand the id over for a close the caller carries out itself (an async close): the
    /// linger setting, and no close on drop.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn take(mut self) -> (Stack, SocketId, Option<Duration>) {
        self.closed = true;
        let linger = self.settings().linger;
        (self.stack.clone(), self.id, linger)
    }

    fn close_by_settings(&self) -> Result<CloseOutcome, StackError> {
        let settings = *self.settings();
        let mode = close_mode(settings.linger, !settings.nonblocking);
        self.stack.close(self.id, mode)
    }
}

impl std::fmt::Debug for OwnedSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "socket {}", self.id.0)
    }
}

impl Drop for OwnedSocket {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let settings = *self.settings();
        let mode = close_mode(settings.linger, !settings.nonblocking);
        if settings.nonblocking {
            // Never wait in a non-blocking (or async) drop, not even for the engine's answer:
            // hand the close over and go. Commands are applied in order, so nothing sent
            // later on this stack can overtake it.
            let (tx, _nobody) = crossbeam_channel::bounded(1);
            let request = Request::Close(self.id, mode);
            self.stack.submit(request, Responder::new(tx, 0));
            log::debug!("{:?} dropped: {mode:?} handed to the engine", self.id);
            return;
        }
        match self.stack.close(self.id, mode) {
            Ok(outcome) => log::debug!("{:?} dropped: {outcome:?}", self.id),
            Err(e) => log::debug!("{:?} dropped; its close failed: {e}", self.id),
        }
    }
}
