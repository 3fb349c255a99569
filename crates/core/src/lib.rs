//! lingerstack-core: the engine of lingerstack without any I/O of its own.
//!
//! An [`Engine`] is a value that owns smoltcp's interface, its sockets and the device on a
//! [`Link`]. Whoever drives it passes everything in and takes everything out:
//!
//! - [`Engine::handle`] applies one [`Request`] with a reply token of the driver's choosing;
//! - [`Engine::poll`] reads the frames the link has, runs smoltcp and every timer, and sends
//!   the frames that are due;
//! - [`Engine::drain_answers`] hands back `(token, Outcome)` pairs, and
//!   [`Engine::drain_events`] the readiness changes of watched sockets;
//! - [`Engine::poll_at`] says when it next needs to run if nothing arrives before.
//!
//! Time is always the `now` the driver passes: the runtime of `lingerstack-stack` reads a
//! monotonic clock on its engine thread, a test advances a virtual one. Nothing in here starts
//! a thread, blocks, reads a clock or wakes anyone.

pub mod command;
pub mod config;
pub mod counters;
mod engine;
pub mod error;
pub mod link;

pub use command::{
    CloseMode, CloseOutcome, CloseReason, Done, Failure, Interest, KeepAlive, Lent, Outcome,
    Readiness, Request, Shutdown, SocketEvent, SocketId, SocketInfo, TcpOptions, Wait,
};
pub use config::{Cidr, StackConfig};
pub use counters::Counters;
pub use engine::{DeviceOptions, Engine, Reply};
pub use error::StackError;
pub use link::Link;
pub use smoltcp::time::{Duration, Instant};
