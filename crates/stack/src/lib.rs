//! lingerstack-stack: the engine of lingerstack.
//!
//! One thread owns smoltcp's interface, socket set and device ([`engine::Engine`], driven by
//! [`runner`]); application threads talk to it through a [`Stack`] handle that sends
//! [`command::Command`]s over a channel and waits for the answer. Links plug in through the
//! [`link::Link`] trait: a TAP device (the `lingerstack-tap` crate) or the in-memory
//! [`link::MemoryLink`].

pub mod api;
pub mod command;
pub mod config;
pub mod counters;
pub mod engine;
pub mod error;
pub mod link;
pub mod runner;

pub use api::Stack;
pub use command::{
    CloseMode, CloseOutcome, CloseReason, KeepAlive, Readiness, Shutdown, SocketEvent, SocketId,
    SocketInfo, TcpOptions, Wait,
};
pub use config::{Cidr, StackConfig};
pub use counters::Counters;
pub use error::StackError;
