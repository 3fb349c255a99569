//! lingerstack-stack: the runtime of lingerstack around its sans-I/O engine.
//!
//! The engine itself (`lingerstack-core`) is a value driven by requests, frames and the time.
//! This crate runs it: one thread owns it and drives it with mio and the monotonic clock, and
//! application threads talk to it through a [`Stack`] handle that sends each request over a
//! channel, rings a doorbell, and waits for the answer in a reusable reply slot. Links plug in
//! through the [`link::Link`] trait: a TAP device (the `lingerstack-tap` crate) or the
//! in-memory [`link::MemoryLink`].
//!
//! On top of that handle sit the Rust-native sockets: [`net`] (blocking, shaped like
//! `std::net`) and, with the cargo feature `tokio`, `tokio` (async, shaped like `tokio::net`),
//! both on [`poll`], a runtime-agnostic layer of `std::task` wakers. [`Stack::builder`] starts
//! an engine for them.

pub mod api;
pub mod builder;
pub mod link;
pub mod net;
mod owned;
pub mod poll;
mod reply;
mod runner;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use lingerstack_core::{config, counters, error};

/// The engine's request and answer types (from `lingerstack-core`) beside the runtime's
/// reply machinery, under one name inside this crate.
mod command {
    pub(crate) use crate::reply::*;
    pub(crate) use lingerstack_core::command::*;
}

pub use api::Stack;
pub use builder::StackBuilder;
pub use lingerstack_core::{
    Cidr, CloseMode, CloseOutcome, CloseReason, Counters, DeviceOptions, Done, Failure, Interest,
    KeepAlive, Outcome, Readiness, Request, Shutdown, SocketEvent, SocketId, SocketInfo,
    StackConfig, StackError, TcpOptions, Wait,
};
pub use link::{Link, MemoryLink};
pub use reply::Responder;
