//! The C ABI: `liblingerstack_wsp.so` (and `.a`) as a Winsock service provider on Linux
//! (`docs/abi.md`). `WSPStartup` fills the 30-entry WSPPROC_TABLE with the functions of
//! [`procs`], each a thin shell around [`Provider`](crate::Provider): arguments checked and
//! copied in by [`raw`] (the only module that touches a C pointer), the call made inside
//! `catch_unwind`, the result and the Winsock error code written back.
//!
//! The declarations for C are in `include/lingerstack/ws2spi.h`; [`types`] pins the same layout.

pub mod config;
mod procs;
mod raw;
mod startup;
pub mod types;
mod upcalls;

pub use startup::{LingerstackSetCompletionHook, WSPStartup};
pub use upcalls::make_select_reply;
