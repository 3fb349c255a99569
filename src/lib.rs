//! lingerstack: a user-space TCP/IP stack on smoltcp with a Winsock service-provider facade.
//!
//! A Rust program uses it the way it uses `std::net` or `tokio::net`: start a [`Stack`] on a
//! link, then open [`net::TcpListener`]s and [`net::TcpStream`]s on it (or, with the cargo
//! feature `tokio`, `tokio::TcpListener` and `tokio::TcpStream`), with std's
//! `set_linger(Option<Duration>)` deciding how each connection closes. See docs/rust-api.md.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{Ipv4Addr, Shutdown};
//! use lingerstack::net::{TcpListener, TcpStream};
//! use lingerstack::{MemoryLink, Stack};
//!
//! let (a, b) = MemoryLink::pair(1500);
//! let server = Stack::builder().ipv4(Ipv4Addr::new(10, 0, 0, 1), 24).mac([2, 0, 0, 0, 0, 1]).start(a)?;
//! let client = Stack::builder().ipv4(Ipv4Addr::new(10, 0, 0, 2), 24).start(b)?;
//! let listener = TcpListener::bind(&server, "10.0.0.1:7".parse().unwrap())?;
//! let mut stream = TcpStream::connect(&client, "10.0.0.1:7".parse().unwrap())?;
//! let (mut conn, _peer) = listener.accept()?;
//! stream.write_all(b"ping")?;
//! stream.shutdown(Shutdown::Write)?;
//! let mut got = String::new();
//! conn.read_to_string(&mut got)?;
//! assert_eq!(got, "ping");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The parts, re-exported:
//! - [`engine`]: the sans-I/O core (`lingerstack-core`), a value that takes requests, frames
//!   and the time, for driving synchronously (a virtual clock, a test harness);
//! - [`stack`]: the runtime around it (the engine on one thread with mio and the clock) and its
//!   [`Stack`] handle, with [`net`], [`poll`] and the async face on top;
//! - [`tap`]: the TAP device driver ([`tap::TapLink`]);
//! - [`wsp`]: the Winsock SPI facade (descriptors, linger and close, events, overlapped I/O).

pub use lingerstack_core as engine;
pub use lingerstack_stack as stack;
pub use lingerstack_tap as tap;
pub use lingerstack_wsp as wsp;

pub use lingerstack_stack::{
    CloseOutcome, CloseReason, Link, MemoryLink, Stack, StackBuilder, StackError, net, poll,
};

/// Async sockets shaped like `tokio::net` (cargo feature `tokio`).
#[cfg(feature = "tokio")]
pub use lingerstack_stack::tokio;
