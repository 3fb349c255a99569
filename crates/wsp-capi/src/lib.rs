//! lingerstack-wsp-capi: the C ABI of lingerstack's Winsock service provider.
//!
//! This crate builds `liblingerstack_wsp.so` (and `.a`), a Winsock service provider on Linux
//! (`docs/abi.md`), on top of the Winsock semantics of the `lingerstack-wsp` crate.
//! `WSPStartup` fills the 30-entry WSPPROC_TABLE with the functions of `procs`, each a thin
//! shell around [`Provider`](wsp::Provider): arguments checked and copied in by `raw` (the only
//! module that touches a C pointer, through `unsafe fn`s whose `# Safety` sections state what
//! the caller's pointers must be), the call made inside `catch_unwind`, the result and the
//! Winsock error code written back.
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
