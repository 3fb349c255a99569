//! Fuzzing on stable Rust: a small seeded generator, the case runner the fuzz tests share, and
//! the structure-aware frame fuzzer of the engine ([`frames`]).
//!
//! Every case is a function of one 64-bit seed, so a failure is replayed by its seed alone.
//! The case runner reads two variables:
//!
//! - `LINGERSTACK_FUZZ_CASES`: how many cases (each test has its own CI default);
//! - `LINGERSTACK_FUZZ_SEED`: the seed of the first case (decimal or `0x` hex); case `i` uses
//!   seed + i. Unset, a new seed is drawn for every run and printed.
//!
//! A failing case (a panic, or no end within its time bound) prints the line that replays it.
//! The same generator can draw from a byte string instead ([`Rng::from_bytes`]), which is how
//! the cargo-fuzz targets in `fuzz/` let libFuzzer steer the choices.

mod craft;
pub mod frames;
pub mod wire;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Variable: number of cases to run.
pub const CASES_ENV: &str = "LINGERSTACK_FUZZ_CASES";
/// Variable: seed of the first case.
pub const SEED_ENV: &str = "LINGERSTACK_FUZZ_SEED";

/// A small deterministic generator (splitmix64), optionally fed by a fuzzer's input bytes.
pub struct Rng {
    state: u64,
    input: Vec<u8>,
    at: usize,
}

impl Rng {
    /// A generator whose every draw follows from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed,
            input: Vec::new(),
            at: 0,
        }
    }

    /// A generator that takes its draws from `data` first (so a coverage-guided fuzzer decides
    /// them), then from a seed made of `data` once it runs out.
    pub fn from_bytes(data: &[u8]) -> Rng {
        let seed = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Rng {
            state: seed,
            input: data.to_vec(),
            at: 0,
        }
    }

    fn splitmix(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        if self.at + 8 <= self.input.len() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.input[self.at..self.at + 8]);
            self.at += 8;
            return u64::from_le_bytes(b);
        }
        self.splitmix()
    }

    /// Next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        if self.at + 4 <= self.input.len() {
            let mut b = [0u8; 4];
            b.copy_from_slice(&self.input[self.at..self.at + 4]);
            self.at += 4;
            return u32::from_le_bytes(b);
        }
        (self.splitmix() >> 32) as u32
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        if self.at < self.input.len() {
            self.at += 1;
            return self.input[self.at - 1];
        }
        self.splitmix() as u8
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        if n <= 256 && self.at < self.input.len() {
            return usize::from(self.byte()) % n;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }

    /// One of `items` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Fewer than `n` random bytes.
    pub fn bytes_below(&mut self, n: usize) -> Vec<u8> {
        let len = self.below(n);
        self.bytes(len)
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }
}

/// How many cases to run and from which seed.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Number of cases.
    pub cases: u64,
    /// Seed of the first case.
    pub seed: u64,
}

/// The plan from the environment, with `default_cases` when `LINGERSTACK_FUZZ_CASES` is unset.
pub fn plan(default_cases: u64) -> Plan {
    let cases = std::env::var(CASES_ENV)
        .ok()
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{CASES_ENV}={v} is not a number"))
        })
        .unwrap_or(default_cases);
    let seed = match std::env::var(SEED_ENV) {
        Ok(v) => parse_seed(&v).unwrap_or_else(|| panic!("{SEED_ENV}={v} is not a number")),
        Err(_) => fresh_seed(),
    };
    Plan { cases, seed }
}

fn parse_seed(v: &str) -> Option<u64> {
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// A seed that differs from run to run (CI explores new cases every time).
fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut rng = Rng::new(t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32));
    rng.next_u64()
}

/// Run `case` for every seed of the plan, each on its own thread with `limit` of wall-clock
/// time. A panic or a case that does not end in time fails the test with the line that
/// replays that case. `name` is the test's name (for the replay line).
pub fn run_cases<F>(name: &str, default_cases: u64, limit: Duration, case: F)
where
    F: Fn(u64) + Send + Sync + Clone + 'static,
{
    let plan = plan(default_cases);
    eprintln!(
        "fuzz {name}: {} cases from seed {:#x} ({SEED_ENV} replays, {CASES_ENV} runs more)",
        plan.cases, plan.seed
    );
    let started = Instant::now();
    for i in 0..plan.cases {
        let seed = plan.seed.wrapping_add(i);
        if let Err(why) = run_one(seed, limit, case.clone()) {
            panic!(
                "fuzz {name}: case {i} failed: {why}\n  replay: {SEED_ENV}={seed:#x} {CASES_ENV}=1 \
                 cargo nextest run --workspace {name}"
            );
        }
    }
    eprintln!(
        "fuzz {name}: {} cases passed in {:.1?}",
        plan.cases,
        started.elapsed()
    );
}

/// One case on its own thread: Ok, or why it failed.
fn run_one<F>(seed: u64, limit: Duration, case: F) -> Result<(), String>
where
    F: Fn(u64) + Send + 'static,
{
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("fuzz-{seed:x}"))
        .spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| case(seed)));
            let _ = done_tx.send(result.map_err(|p| panic_text(&*p)));
        })
        .map_err(|e| format!("cannot spawn the case thread: {e}"))?;
    match done_rx.recv_timeout(limit) {
        Ok(result) => result.map_err(|why| format!("panicked: {why}")),
        // The thread is left behind; the test fails at once and its process ends.
        Err(_) => Err(format!("no end within {limit:?} (a hang)")),
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}
