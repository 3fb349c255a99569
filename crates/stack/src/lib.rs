//! lingerstack-stack: the engine of lingerstack.
//!
//! One thread owns smoltcp's interface, socket set and device ([`engine::Engine`], driven by
//! [`runner`]); application threads talk to it through a [`Stack`] handle that sends
//! [`command::Command`]s over a channel and waits for the answer. Links plug in through the
//! [`link::Link`] trait: a TAP device (the `lingerstack-tap` crate) or the in-memory
//! [`link::MemoryLink`].
//!
//! On top of that handle sit the Rust-native sockets: [`net`] (blocking, shaped like
//! `std::net`) and, with the cargo feature `tokio`, `tokio` (async, shaped like `tokio::net`),
//! both on [`poll`], a runtime-agnostic layer of `std::task` wakers. [`Stack::builder`] starts
//! an engine for them.

pub mod api;
pub mod builder;
pub mod command;
pub mod config;
pub mod counters;
pub mod engine;
pub mod error;
pub mod link;
pub mod net;
mod owned;
pub mod poll;
pub mod runner;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use api::Stack;
pub use builder::StackBuilder;
pub use command::{
    CloseMode, CloseOutcome, CloseReason, Interest, KeepAlive, Readiness, Shutdown, SocketEvent,
    SocketId, SocketInfo, TcpOptions, Wait,
};
pub use config::{Cidr, StackConfig};
pub use counters::Counters;
pub use error::StackError;
pub use link::{Link, MemoryLink};
