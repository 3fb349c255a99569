//! Blocking sockets shaped like `std::net`: [`TcpListener`] and [`TcpStream`] with std's
//! method names, arguments and results, on a lingerstack [`Stack`](crate::Stack) instead of
//! the kernel. The stack comes first in the constructors; everything after that reads like
//! std code.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{Ipv4Addr, Shutdown};
//! use lingerstack_stack::net::{TcpListener, TcpStream};
//! use lingerstack_stack::{MemoryLink, Stack};
//!
//! // Two stacks in this process, joined by an in-memory cable.
//! let (a, b) = MemoryLink::pair(1500);
//! let server = Stack::builder().ipv4(Ipv4Addr::new(10, 0, 0, 1), 24).mac([2, 0, 0, 0, 0, 1]).start(a)?;
//! let client = Stack::builder().ipv4(Ipv4Addr::new(10, 0, 0, 2), 24).start(b)?;
//!
//! let listener = TcpListener::bind(&server, "10.0.0.1:7".parse().unwrap())?;
//! let echo = std::thread::spawn(move || -> std::io::Result<u64> {
//!     let (conn, _peer) = listener.accept()?;
//!     std::io::copy(&mut &conn, &mut &conn) // echo until end of stream; drop sends the FIN
//! });
//!
//! let mut stream = TcpStream::connect(&client, "10.0.0.1:7".parse().unwrap())?;
//! stream.write_all(b"hello")?;
//! stream.shutdown(Shutdown::Write)?;
//! let mut back = String::new();
//! stream.read_to_string(&mut back)?;
//! assert_eq!(back, "hello");
//! assert_eq!(echo.join().unwrap()?, 5);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Closing
//!
//! Dropping a stream closes it, and [`TcpStream::close`] does the same and says how it ended.
//! What happens is set by [`TcpStream::set_linger`]:
//!
//! | `linger()` | blocking stream | non-blocking stream |
//! |---|---|---|
//! | `None` (default) | returns at once; every queued byte then a FIN leave in the background, reset if the close deadline passes first | same |
//! | `Some(Duration::ZERO)` | RST at once, queued data discarded; the peer reads "connection reset" | same |
//! | `Some(d)` | waits until every byte and the FIN are acknowledged, or until `d` has passed and then resets | returns at once; the same wait and the reset at `d` go on in the background |
//!
//! Read and write timeouts play no part in a close. Received data nobody read resets the
//! connection at close whatever the linger: the peer must not believe it was delivered.
//! [`TcpStream::try_clone`] makes another handle to the same connection: only the last
//! handle's close or drop acts.

mod listener;
mod stream;

pub use listener::{Incoming, TcpListener};
pub use stream::TcpStream;
