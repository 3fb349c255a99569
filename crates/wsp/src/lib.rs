//! lingerstack-wsp: a Winsock service provider facade over the lingerstack engine.
//!
//! [`Provider`] offers the WSP* calls in Rust with Windows' error codes ([`WsaError`]);
//! descriptors are `usize` values that never come back once closed. WSPCloseSocket
//! ([`Provider::close_socket`]) applies the socket's linger setting as
//! `docs/close-semantics.md` describes: graceful FIN in the background, RST at once, a
//! blocking linger with a deadline, or WSAEWOULDBLOCK for a non-blocking socket that cannot
//! finish. Network events ([`events`]) and overlapped completions ([`overlapped`]) are delivered
//! by a dispatcher thread: never on the engine thread, never under a provider lock.
//!
//! Completion routines run on the thread that asked for them when it calls
//! [`ApcQueue::wait_alertable`] or [`ApcQueue::run_pending`] on its own queue
//! ([`ApcQueue::current`]), as APCs run when a Windows thread waits alertably.

pub mod callback;
mod calls;
mod close;
pub mod consts;
pub mod error;
pub mod events;
pub mod keepalive;
pub mod linger;
mod options;
pub mod overlapped;
mod provider;
mod select;
mod socket;

pub use calls::Condition;
pub use close::ProtocolInfo;
pub use error::{WsaError, WsaResult};
pub use events::{Event, EventObject, EventTarget, MessageSink, NetworkEvents};
pub use keepalive::TcpKeepalive;
pub use linger::Linger;
pub use overlapped::{
    ApcQueue, Completion, CompletionPacket, CompletionPort, Overlapped, RecvSink,
};
pub use provider::{HandleSource, Provider, ProviderConfig};
