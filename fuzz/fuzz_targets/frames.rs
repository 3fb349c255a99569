//! libFuzzer drives the engine frame fuzzer: its input bytes make the fuzzer's choices (which
//! frames, which fields, which calls, how much time), so coverage guidance steers them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lingerstack_testkit::fuzz::{Rng, frames};

fuzz_target!(|data: &[u8]| {
    frames::run_case(&mut Rng::from_bytes(data));
});
