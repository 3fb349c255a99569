//! libFuzzer drives the facade call fuzzer (`crates/wsp/tests/fuzz_calls.rs`, included as
//! it is): its input bytes choose the calls and their arguments.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lingerstack_testkit::fuzz::Rng;

#[path = "../../crates/wsp/tests/fuzz_calls.rs"]
#[allow(dead_code, unused_imports)]
mod fuzz_calls;

fuzz_target!(|data: &[u8]| {
    fuzz_calls::Case::new(Rng::from_bytes(data)).run();
});
