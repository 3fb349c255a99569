//! Fuzzing the engine with frames: seeded random and structure-aware Ethernet frames into an
//! engine with live connections and listeners, through the in-memory link and a virtual clock
//! (the generator and the checks are in `lingerstack_testkit::fuzz::frames`).
//!
//! Per case: no panic, no hang (a wall-clock bound), every call answered once, and after
//! everything is closed and time has passed, no socket id and no smoltcp socket left in either
//! engine. `LINGERSTACK_FUZZ_CASES` runs more cases, `LINGERSTACK_FUZZ_SEED` replays one.

use std::time::Duration;

use lingerstack_testkit::fuzz::{Rng, frames, run_cases};

/// Cases per CI run: a few seconds of test time.
const CI_CASES: u64 = 300;

#[test]
fn fuzz_frames_into_live_engine() {
    run_cases(
        "fuzz_frames_into_live_engine",
        CI_CASES,
        Duration::from_secs(60),
        |seed| frames::run_case(&mut Rng::new(seed)),
    );
}

/// Every TCP flag combination at a live connection (exact sequence numbers) and at a listener;
/// deterministic, so every run covers all 512.
#[test]
fn every_tcp_flag_combination_at_connections_and_a_listener() {
    run_cases(
        "every_tcp_flag_combination_at_connections_and_a_listener",
        1,
        Duration::from_secs(60),
        frames::run_flag_sweep,
    );
}
