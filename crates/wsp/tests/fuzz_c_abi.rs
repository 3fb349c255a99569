//! Fuzzing the C ABI from C: `tests/c/c_abi_fuzz.c` calls the proc table WSPStartup hands out
//! with NULL pointers, bad lengths, families, strings, fd_sets, options and overlapped
//! structures, case after case (each its own WSPStartup .. WSPCleanup), and checks that no
//! socket handle is left and that every call after cleanup fails cleanly. A crash, a failed
//! check or a run that does not end in time fails this test with the case's seed.
//! `LINGERSTACK_FUZZ_CASES` runs more cases, `LINGERSTACK_FUZZ_SEED` replays one.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lingerstack_testkit::fuzz::{CASES_ENV, SEED_ENV, plan};

/// Cases per CI run.
const CI_CASES: u64 = 60;

/// The directory of liblingerstack_wsp.so: beside the test binary, or one up from `deps`.
fn provider_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .skip(1)
        .take(2)
        .find(|d| d.join("liblingerstack_wsp.so").exists())
        .map(PathBuf::from)
        .expect("liblingerstack_wsp.so next to the test binary")
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

#[test]
fn fuzz_c_abi_proc_table() {
    let plan = plan(CI_CASES);
    let program = build_fuzzer();
    eprintln!(
        "fuzz fuzz_c_abi_proc_table: {} cases from seed {:#x}",
        plan.cases, plan.seed
    );
    let mut child = Command::new(&program)
        .arg(format!("{:#x}", plan.seed))
        .arg(plan.cases.to_string())
        .env_remove("LINGERSTACK_IFACE")
        .env_remove("LINGERSTACK_NETNS")
        .env_remove("LINGERSTACK_ADDR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run c_abi_fuzz");
    // Bound the run: a hang is a failure. Generous: the machine is shared.
    let limit = Duration::from_secs(60) + Duration::from_millis(500) * plan.cases as u32;
    let started = Instant::now();
    let finished = loop {
        if let Some(status) = child.try_wait().expect("wait for c_abi_fuzz") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("c_abi_fuzz output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_file(&program);
    let passed = finished.is_some_and(|s| s.success()) && stdout.contains("PASS fuzz");
    if !passed {
        let last = stdout.lines().rev().find(|l| l.starts_with("case "));
        let seed = last.and_then(|l| l.rsplit(' ').next()).unwrap_or("?");
        let why = match finished {
            None => format!("no end within {limit:?} (a hang)"),
            Some(status) => format!("exit {status}"),
        };
        let tail: String = stderr.lines().rev().take(30).collect::<Vec<_>>().join("\n");
        panic!(
            "c_abi_fuzz failed in {}: {why}\nstderr (last lines, newest first):\n{tail}\n  replay: \
             {SEED_ENV}={seed} {CASES_ENV}=1 cargo nextest run -p lingerstack-wsp fuzz_c_abi_proc_table",
            last.unwrap_or("startup")
        );
    }
    eprintln!(
        "fuzz fuzz_c_abi_proc_table: {} cases passed in {:.1?}",
        plan.cases,
        started.elapsed()
    );
}
