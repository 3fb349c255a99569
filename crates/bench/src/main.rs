//! lingerstack-bench: throughput, latency, connection rate, close latency and memory of
//! lingerstack over a TAP, against the kernel over veth and a bare smoltcp loop.
//!
//! Must run as root (namespaces, TAP, veth). All traffic stays inside namespaces this program
//! creates and deletes again (`lingerstack_testkit::Netns`).

mod baseline_kernel;
mod baseline_smoltcp;
mod closelat;
mod connrate;
mod faces;
mod latency;
mod memory;
mod report;
mod throughput;
mod util;

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use crate::util::{Record, Settings};

/// Measurement groups, in run order.
const GROUPS: [&str; 5] = ["throughput", "latency", "connrate", "closelat", "memory"];

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "lingerstack-bench",
    about = "Benchmarks lingerstack against the kernel and bare smoltcp"
)]
struct Args {
    /// Quick mode: 3 runs of ~1 s, 1000 connections (the default).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// Full mode: 5 runs of ~3 s, 10,000 connections.
    #[arg(long)]
    full: bool,
    /// Run only these groups (comma separated): throughput, latency, connrate, closelat, memory.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Throughput only at these MTUs (comma separated; default 1500, 9000, 65520).
    #[arg(long, value_delimiter = ',')]
    mtu: Vec<u32>,
    /// Throughput and latency only of these implementations (comma separated: lingerstack,
    /// lingerstack-plain (offloads off, at MTU 1500 and 9000), lingerstack-std,
    /// lingerstack-tokio, smoltcp-bare, kernel-veth; default all). For profiling; ratios need
    /// the baselines.
    #[arg(long = "impl", value_delimiter = ',')]
    impls: Vec<String>,
    /// Idle connections in the memory measurement (default: 1000 quick, 10,000 full).
    #[arg(long)]
    connections: Option<usize>,
    /// Directory for results.json and results.md.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

fn main() {
    let args = Args::parse();
    let mut settings = if args.full {
        Settings::full()
    } else {
        Settings::quick()
    };
    if let Some(n) = args.connections {
        settings.connections = n;
    }
    if !args.impls.is_empty() {
        settings.impls = args.impls.clone();
    }
    if !args.mtu.is_empty() {
        settings.mtus = args.mtu.clone();
    }
    for name in &args.only {
        if !GROUPS.contains(&name.as_str()) {
            eprintln!("unknown group {name:?}; known: {}", GROUPS.join(", "));
            std::process::exit(2);
        }
    }
    let started = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut records: Vec<Record> = Vec::new();
    if let Err(why) = lingerstack_testkit::tap_available() {
        let mut r = Record::new("all", "-", "-", "-", "-");
        r.fail(format!("n/a: cannot create namespaces/TAP here: {why}"));
        records.push(r);
    } else {
        for group in GROUPS {
            if !args.only.is_empty() && !args.only.iter().any(|o| o == group) {
                continue;
            }
            let t = Instant::now();
            eprintln!("== {group}");
            let result = util::guarded(group, || {
                Ok(match group {
                    "throughput" => throughput::run(&settings),
                    "latency" => latency::run(&settings),
                    "connrate" => connrate::run(&settings),
                    "closelat" => closelat::run(&settings),
                    _ => memory::run(&settings),
                })
            });
            match result {
                Ok(r) => records.extend(r),
                Err(e) => {
                    let mut r = Record::new(group, "-", "-", "-", "-");
                    r.fail(e);
                    records.push(r);
                }
            }
            eprintln!("== {group} took {:.1} s", t.elapsed().as_secs_f64());
        }
    }
    let report = report::Report {
        machine: report::Machine::detect(),
        settings,
        started_unix,
        wall_secs: started.elapsed().as_secs_f64(),
        cpu_accounting: "CPU: \"stack process\"/\"bare loop process\" = getrusage(RUSAGE_SELF) delta of this \
            process (all threads, user+sys, including the kernel work done in its TAP read/write syscalls) \
            minus the kernel peer thread's CLOCK_THREAD_CPUTIME_ID delta; \"kernel peer thread\" = that \
            thread's CPU (includes softirq work that happened to run on it); kernel-veth: \"local thread\" \
            is the thread standing in for the stack. s/GB = CPU seconds per 1e9 payload bytes."
            .into(),
        records,
    };
    let md = report::markdown(&report);
    println!("{md}");
    if let Err(e) = report::write(&args.out, &report, &md) {
        eprintln!("writing results to {}: {e}", args.out.display());
        std::process::exit(1);
    }
    eprintln!(
        "results written to {}/results.json and results.md",
        args.out.display()
    );
}
