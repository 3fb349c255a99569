//! lingerstack: a user-space TCP/IP stack on smoltcp with a Winsock service-provider facade.
//!
//! This umbrella crate re-exports the parts:
//! - [`stack`]: the engine (smoltcp on one thread, driven by commands) and its [`stack::Stack`] handle;
//! - [`tap`]: the TAP device driver;
//! - [`wsp`]: the Winsock SPI facade (descriptors, linger and close, events, overlapped I/O).

pub use lingerstack_stack as stack;
pub use lingerstack_tap as tap;
pub use lingerstack_wsp as wsp;
