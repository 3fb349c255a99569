//! Links: the engine's [`Link`] trait and device middleware (from `lingerstack-core`), and the
//! in-memory link.

pub use lingerstack_core::link::*;

mod memory;

pub use memory::MemoryLink;
