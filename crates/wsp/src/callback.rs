//! Running application callbacks: never on the engine thread, never under a provider lock,
//! and marked so that a close that would block can refuse from inside one (row C21).

use std::cell::Cell;

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Is this thread inside a callback the provider is running?
pub fn in_callback() -> bool {
    IN_CALLBACK.with(Cell::get)
}

/// Run `f` as a provider callback. A panic in it is caught and logged: an application's bug
/// must not take the provider's threads down.
pub fn run_callback(f: impl FnOnce()) {
    let outer = IN_CALLBACK.with(|c| c.replace(true));
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        log::error!("an application callback panicked; the provider carries on");
    }
    IN_CALLBACK.with(|c| c.set(outer));
}
