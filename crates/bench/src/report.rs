//! The results file (JSON) and the Markdown table.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::util::{Record, Settings};

/// The machine the numbers come from.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub nproc: usize,
    /// Kernel release.
    pub kernel: String,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Total memory in MiB.
    pub mem_mib: u64,
}

impl Machine {
    /// Reads the machine's description.
    pub fn detect() -> Machine {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let mem_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kb| kb / 1024);
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel,
            cpu_model,
            mem_mib,
        }
    }
}

/// Everything one bench run produced.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// Mode and run lengths.
    pub settings: Settings,
    /// Start time, seconds since the Unix epoch.
    pub started_unix: u64,
    /// Wall time of the whole run, seconds.
    pub wall_secs: f64,
    /// How to read the CPU figures.
    pub cpu_accounting: String,
    /// The records.
    pub records: Vec<Record>,
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown text: machine, settings, one table of every record, then ratios.
pub fn markdown(r: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# lingerstack bench ({} mode)\n", r.settings.mode);
    let _ = writeln!(
        md,
        "Machine: {} CPUs, {}, kernel {}, {} MiB. {} runs of {:.1} s per measurement; wall time {:.1} s.\n",
        r.machine.nproc,
        r.machine.cpu_model,
        r.machine.kernel,
        r.machine.mem_mib,
        r.settings.runs,
        r.settings.run_secs,
        r.wall_secs
    );
    let _ = writeln!(md, "{}\n", r.cpu_accounting);
    let _ = writeln!(
        md,
        "| group | implementation | case | MTU | buffers | metric | median | min | max | CPU (median) | notes / errors |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
    for rec in &r.records {
        let (med, min, max) = match rec.spread {
            Some(s) => (fmt_num(s.median), fmt_num(s.min), fmt_num(s.max)),
            None => ("n/a".into(), "n/a".into(), "n/a".into()),
        };
        let cpu = rec
            .cpu
            .iter()
            .map(|c| format!("{}: {} {}", c.who, fmt_num(c.spread.median), c.unit))
            .collect::<Vec<_>>()
            .join("; ");
        let mut notes = String::new();
        if let Some(e) = &rec.error {
            let _ = write!(notes, "**error**: {e}");
        }
        if let Some(n) = &rec.note {
            if !notes.is_empty() {
                notes.push_str("; ");
            }
            notes.push_str(n);
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} {} | {} | {} | {} | {} | {} |",
            rec.group,
            rec.implementation,
            cell(&rec.case),
            rec.mtu.map_or("-".into(), |m| m.to_string()),
            cell(&rec.buffers),
            rec.metric,
            rec.unit,
            med,
            min,
            max,
            cell(&cpu),
            cell(&notes)
        );
    }
    let ratios = ratios(&r.records);
    if !ratios.is_empty() {
        let _ = writeln!(
            md,
            "\n## Ratios (lingerstack median / baseline median)\n\n| group | case | MTU | metric | vs smoltcp-bare | vs kernel-veth |\n|---|---|---|---|---|---|"
        );
        for line in ratios {
            let _ = writeln!(md, "{line}");
        }
    }
    let offload = offload_ratios(&r.records);
    if !offload.is_empty() {
        let _ = writeln!(
            md,
            "\n## Offloads (same run: lingerstack with the TAP's offloads on, and off as lingerstack-plain)\n\n| case | MTU | on / off throughput | on / kernel-veth | off / smoltcp-bare | CPU s/GB off / on |\n|---|---|---|---|---|---|"
        );
        for line in offload {
            let _ = writeln!(md, "{line}");
        }
    }
    let faces = face_ratios(&r.records);
    if !faces.is_empty() {
        let _ = writeln!(
            md,
            "\n## The Rust faces (face median / Stack API median, same run)\n\n| group | case | MTU | metric | lingerstack-std | lingerstack-tokio |\n|---|---|---|---|---|---|"
        );
        for line in faces {
            let _ = writeln!(md, "{line}");
        }
    }
    md
}

/// The record of implementation `imp` that matches `like` (group, metric, MTU, case).
fn matching<'a>(records: &'a [Record], like: &Record, imp: &str) -> Option<&'a Record> {
    records.iter().find(|r| {
        r.implementation == imp
            && r.group == like.group
            && r.metric == like.metric
            && r.mtu == like.mtu
            && r.case == like.case
    })
}

/// The median CPU seconds per GB of the process under test (the first CPU cost of a record).
fn cpu_per_gb(r: &Record) -> Option<f64> {
    r.cpu
        .iter()
        .find(|c| c.unit == "cpu_s_per_GB")
        .map(|c| c.spread.median)
}

/// `a / b` as a table cell.
fn ratio_cell(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    }
}

/// Each throughput record of lingerstack with offloads that has an offloads-off record beside
/// it: the gain, the ratio to the kernel, the offloads-off ratio to the bare smoltcp loop, and
/// how much CPU per GB the offloads save.
fn offload_ratios(records: &[Record]) -> Vec<String> {
    let median = |r: Option<&Record>| r.and_then(|r| r.spread).map(|s| s.median);
    let mut out = Vec::new();
    for on in records
        .iter()
        .filter(|r| r.implementation == "lingerstack" && r.group == "throughput")
    {
        let Some(off) = matching(records, on, "lingerstack-plain") else {
            continue;
        };
        let (m_on, m_off) = (median(Some(on)), median(Some(off)));
        out.push(format!(
            "| {} | {} | {} | {} | {} | {} |",
            cell(&on.case),
            on.mtu.map_or("-".into(), |m| m.to_string()),
            ratio_cell(m_on, m_off),
            ratio_cell(m_on, median(matching(records, on, "kernel-veth"))),
            ratio_cell(m_off, median(matching(records, on, "smoltcp-bare"))),
            ratio_cell(cpu_per_gb(off), cpu_per_gb(on)),
        ));
    }
    out
}

/// Each Stack API record that has face records beside it: face median / Stack API median.
fn face_ratios(records: &[Record]) -> Vec<String> {
    let mut out = Vec::new();
    for ls in records.iter().filter(|r| r.implementation == "lingerstack") {
        let Some(s) = ls.spread.filter(|s| s.median != 0.0) else {
            continue;
        };
        let ratio = |imp: &str| {
            records
                .iter()
                .find(|r| {
                    r.implementation == imp
                        && r.group == ls.group
                        && r.metric == ls.metric
                        && r.mtu == ls.mtu
                        && r.case == ls.case
                })
                .and_then(|r| r.spread)
                .map_or("n/a".to_string(), |f| format!("{:.2}", f.median / s.median))
        };
        let (std, tokio) = (ratio("lingerstack-std"), ratio("lingerstack-tokio"));
        if std == "n/a" && tokio == "n/a" {
            continue;
        }
        out.push(format!(
            "| {} | {} | {} | {} | {} | {} |",
            ls.group,
            cell(&ls.case),
            ls.mtu.map_or("-".into(), |m| m.to_string()),
            ls.metric,
            std,
            tokio
        ));
    }
    out
}

fn ratios(records: &[Record]) -> Vec<String> {
    let mut out = Vec::new();
    for ls in records.iter().filter(|r| r.implementation == "lingerstack") {
        let Some(s) = ls.spread else { continue };
        let find = |imp: &str| {
            records
                .iter()
                .find(|r| {
                    r.implementation == imp
                        && r.group == ls.group
                        && r.metric == ls.metric
                        && r.mtu == ls.mtu
                        && (r.case == ls.case || ls.group == "connrate")
                })
                .and_then(|r| r.spread)
                .map_or("n/a".to_string(), |b| {
                    if b.median == 0.0 {
                        "n/a".into()
                    } else {
                        format!("{:.2}", s.median / b.median)
                    }
                })
        };
        let (bare, kern) = (find("smoltcp-bare"), find("kernel-veth"));
        if bare == "n/a" && kern == "n/a" {
            continue;
        }
        out.push(format!(
            "| {} | {} | {} | {} | {} | {} |",
            ls.group,
            cell(&ls.case),
            ls.mtu.map_or("-".into(), |m| m.to_string()),
            ls.metric,
            bare,
            kern
        ));
    }
    out
}

/// Writes `results.json` and `results.md` into `dir`.
pub fn write(dir: &Path, r: &Report, md: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(r).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("results.json"), json)?;
    std::fs::write(dir.join("results.md"), md)?;
    Ok(())
}
