//! Fuzzing the C ABI from C: `tests/c/c_abi_fuzz.c` calls the proc table WSPStartup hands out
//! with NULL pointers, bad lengths, families, strings, fd_sets, options and overlapped
//! structures, case after case (each its own WSPStartup .. WSPCleanup), and checks that no
//! socket handle is left and that every call after cleanup fails cleanly. A crash, a failed
//! check or a run that does not end in time fails this test with the case's seed.
//! `LINGERSTACK_FUZZ_CASES` runs more cases, `LINGERSTACK_FUZZ_SEED` replays one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use lingerstack_testkit::REQUIRE_TAP_ENV;
use lingerstack_testkit::fuzz::{CASES_ENV, SEED_ENV, plan};

/// Cases per CI run.
const CI_CASES: u64 = 50;
/// Cases per CI run under valgrind (about 0.1 s each there).
const CI_CASES_VALGRIND: u64 = 30;

/// The directory of liblingerstack_wsp.so, built first if needed.
fn provider_dir() -> PathBuf {
    common::lib_dir()
}

/// Compile the fuzzer (warnings are errors) against the header and the provider.
fn build_fuzzer() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let c = dir.join("tests/c");
    let lib = provider_dir();
    let out = lib.join(format!("c_abi_fuzz-{}", std::process::id()));
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pthread", "-g"])
        .arg("-I")
        .arg(dir.join("../../include"))
        .arg("-I")
        .arg(&c)
        .arg(c.join("c_abi_fuzz.c"))
        .arg(c.join("ws2.c"))
        .arg("-L")
        .arg(&lib)
        .arg("-llingerstack_wsp")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("run cc");
    assert!(status.success(), "building c_abi_fuzz failed");
    out
}

/// Cases per process: the test's upcall table hands out at most 4096 socket handles in a
/// process' life, so long runs go in batches.
const BATCH: u64 = 200;

#[test]
fn fuzz_c_abi_proc_table() {
    let plan = plan(CI_CASES);
    let program = build_fuzzer();
    eprintln!(
        "fuzz fuzz_c_abi_proc_table: {} cases from seed {:#x}",
        plan.cases, plan.seed
    );
    let started = Instant::now();
    let mut done = 0;
    while done < plan.cases {
        let batch = BATCH.min(plan.cases - done);
        run_batch(&program, &[], plan.seed.wrapping_add(done), batch);
        done += batch;
    }
    let _ = std::fs::remove_file(&program);
    eprintln!(
        "fuzz fuzz_c_abi_proc_table: {} cases passed in {:.1?}",
        plan.cases,
        started.elapsed()
    );
}

/// The fuzzer under valgrind: no invalid read or write, no use of uninitialised memory and
/// no byte definitely lost, whatever the arguments. Valgrind missing is a failure under
/// `LINGERSTACK_REQUIRE_TAP=1` (CI installs it) and a loud skip otherwise.
#[test]
fn fuzz_c_abi_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        let why = "valgrind is not installed";
        if std::env::var(REQUIRE_TAP_ENV).is_ok_and(|v| v == "1") {
            panic!("fuzz_c_abi_under_valgrind: {why} ({REQUIRE_TAP_ENV}=1)");
        }
        eprintln!("*** SKIP fuzz_c_abi_under_valgrind: {why} ***");
        return;
    }
    let plan = plan(CI_CASES_VALGRIND);
    let program = build_fuzzer();
    let valgrind = [
        "valgrind",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
    ];
    let mut done = 0;
    while done < plan.cases {
        let batch = BATCH.min(plan.cases - done);
        run_batch(&program, &valgrind, plan.seed.wrapping_add(done), batch);
        done += batch;
    }
    let _ = std::fs::remove_file(&program);
}

/// Run `cases` cases from `seed` in one process (under `wrapper`, e.g. valgrind, if not
/// empty), bounded in time; panic with the failing case's seed.
fn run_batch(program: &Path, wrapper: &[&str], seed: u64, cases: u64) {
    // Output goes to files: a pipe nobody reads while waiting would fill and stall the child.
    let log = |what: &str| program.with_extension(format!("{seed:x}.{what}"));
    let (out_path, err_path) = (log("out"), log("err"));
    let mut command = match wrapper.split_first() {
        Some((tool, args)) => {
            let mut c = Command::new(tool);
            c.args(args).arg(program);
            c
        }
        None => Command::new(program),
    };
    let mut child = command
        .arg(format!("{seed:#x}"))
        .arg(cases.to_string())
        .env_remove("LINGERSTACK_IFACE")
        .env_remove("LINGERSTACK_NETNS")
        // The in-memory loopback network, with an IPv6 address beside 127.0.0.1.
        .env("LINGERSTACK_ADDR", "127.0.0.1/8,fd00:c::1/64")
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("run c_abi_fuzz");
    // A hang is a failure. Generous: the machine is shared.
    let per_case = if wrapper.is_empty() { 500 } else { 3_000 };
    let limit = Duration::from_secs(60) + Duration::from_millis(per_case) * cases as u32;
    let started = Instant::now();
    let finished = loop {
        if let Some(status) = child.try_wait().expect("wait for c_abi_fuzz") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    if finished.is_some_and(|s| s.success()) && stdout.contains("PASS fuzz") {
        return;
    }
    let last = stdout.lines().rev().find(|l| l.starts_with("case "));
    let failed_seed = last.and_then(|l| l.rsplit(' ').next()).unwrap_or("?");
    let why = match finished {
        None => format!("no end within {limit:?} (a hang)"),
        Some(status) => format!("exit {status}"),
    };
    let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
    panic!(
        "c_abi_fuzz failed in {}: {why}\nstderr (last lines, newest first):\n{}\n  replay: \
         {SEED_ENV}={failed_seed} {CASES_ENV}=1 cargo nextest run -p lingerstack-wsp fuzz_c_abi",
        last.unwrap_or("startup"),
        tail.join("\n")
    );
}
