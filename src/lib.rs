pub use lingerstack_stack as stack;
