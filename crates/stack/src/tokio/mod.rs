//! Async sockets shaped like `tokio::net` (cargo feature `tokio`): [`TcpListener`],
//! [`TcpStream`] and its halves, with tokio's `AsyncRead` and `AsyncWrite`.
//!
//! Nothing here blocks a runtime thread: when a socket is not ready the engine remembers the
//! task and wakes it (see [`crate::poll`], the runtime-agnostic layer underneath), so it runs
//! on a `current_thread` runtime as well as on a multi-threaded one. That includes a lingering
//! close: with `set_linger(Some(d))`, `close().await` waits in the engine while every other
//! task runs, which is what tokio's own `set_linger` cannot do (the kernel's close blocks the
//! worker, which is why tokio deprecated it).
//!
//! ```
//! use std::net::Ipv4Addr;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use lingerstack_stack::tokio::{TcpListener, TcpStream};
//! use lingerstack_stack::{CloseOutcome, MemoryLink, Stack};
//!
//! let (a, b) = MemoryLink::pair(1500);
//! let server = Stack::builder().ipv4(Ipv4Addr::new(10, 0, 0, 1), 24).mac([2, 0, 0, 0, 0, 1]).start(a)?;
//! let client = Stack::builder().ipv4(Ipv4Addr::new(10, 0, 0, 2), 24).start(b)?;
//!
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! runtime.block_on(async {
//!     let listener = TcpListener::bind(&server, "10.0.0.1:7".parse().unwrap()).await?;
//!     let echo = tokio::spawn(async move {
//!         let (stream, _peer) = listener.accept().await?;
//!         let (mut rd, mut wr) = stream.into_split();
//!         tokio::io::copy(&mut rd, &mut wr).await // dropping `wr` then sends the FIN
//!     });
//!     let mut stream = TcpStream::connect(&client, "10.0.0.1:7".parse().unwrap()).await?;
//!     stream.write_all(b"hello").await?;
//!     stream.shutdown().await?;
//!     let mut back = String::new();
//!     stream.read_to_string(&mut back).await?;
//!     assert_eq!(back, "hello");
//!     assert_eq!(echo.await.unwrap()?, 5);
//!     // Every byte and both FINs are through: a lingering close has nothing to wait for.
//!     stream.set_linger(Some(std::time::Duration::from_secs(5)))?;
//!     assert_eq!(stream.close().await?, CloseOutcome::Finished);
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Closing
//!
//! | `linger()` | `close().await` | drop |
//! |---|---|---|
//! | `None` (default) | returns at once; every queued byte then a FIN leave in the background, reset if the close deadline passes first | same |
//! | `Some(Duration::ZERO)` | RST at once, queued data discarded | same |
//! | `Some(d)` | resolves when every byte and the FIN are acknowledged, or resets at `d` and resolves then; other tasks run meanwhile | returns at once; the same wait and the reset at `d` go on in the engine |
//!
//! Received data nobody read resets the connection at close whatever the linger. After
//! [`TcpStream::into_split`] the close happens when both halves are gone; dropping the write
//! half alone sends a FIN, as tokio's does.

mod listener;
mod split;
mod stream;

pub use listener::TcpListener;
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use stream::TcpStream;
