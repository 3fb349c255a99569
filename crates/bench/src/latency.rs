//! Request/response latency: 1-byte ping-pong, p50/p99, lingerstack and both baselines.

use std::time::{Duration, Instant};

use lingerstack_stack::{CloseMode, SocketId, Stack, Wait};

use crate::throughput::StackNet;
use crate::util::{self, OP_TIMEOUT, Record, Settings, accept_timeout, join_peer};
use crate::{baseline_kernel, baseline_smoltcp, throughput};

const PORT: u16 = 5002;

/// lingerstack, bare smoltcp and kernel-veth latency records.
pub fn run(settings: &Settings) -> Vec<Record> {
    let mut out = Vec::new();
    if settings.measures(throughput::NAME) {
        out.extend(lingerstack(settings));
    }
    if settings.measures(baseline_smoltcp::NAME) {
        out.extend(baseline_smoltcp::latency(settings));
    }
    if settings.measures(baseline_kernel::NAME) {
        out.extend(baseline_kernel::latency(settings));
    }
    out.extend(crate::faces::latency(settings));
    out
}

fn lingerstack(settings: &Settings) -> Vec<Record> {
    let result = util::guarded("lingerstack latency", || {
        let sn = StackNet::new(1500, util::BULK_BUFFER, util::BULK_BUFFER, PORT, None)?;
        let mut runs = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..settings.runs {
            let l = sn.listener.clone();
            let peer = std::thread::spawn(move || {
                util::kernel_echo(accept_timeout(&l, Duration::from_secs(5))?)
            });
            let (r, pct) = util::cpu_percent(|| {
                let r = util::guarded("lingerstack ping-pong run", || {
                    let id = sn.connect()?;
                    let r = ping_pong(&sn.stack, id, settings.run_time());
                    sn.stack
                        .close(id, CloseMode::Graceful { deadline: None })
                        .map_err(|e| format!("stack close: {e:?}"))?;
                    r
                });
                let p = join_peer(peer);
                r.and_then(|r| p.map(|_| r))
            });
            cpu.push(pct);
            runs.push(r);
        }
        sn.stop();
        Ok((runs, cpu))
    });
    match result {
        Ok((runs, cpu)) => util::latency_records(throughput::NAME, 1500, runs, &cpu),
        Err(e) => util::latency_records(throughput::NAME, 1500, vec![Err(e)], &[]),
    }
}

fn ping_pong(stack: &Stack, id: SocketId, dur: Duration) -> Result<Vec<f64>, String> {
    let mut opts = stack
        .info(id)
        .map_err(|e| format!("stack info: {e:?}"))?
        .options;
    opts.nodelay = true;
    stack
        .set_options(id, opts)
        .map_err(|e| format!("set nodelay: {e:?}"))?;
    let mut samples = Vec::new();
    let start = Instant::now();
    let ping = [7u8; 1];
    while start.elapsed() < dur {
        let t = Instant::now();
        stack
            .send(id, &ping, Wait::Block(Some(OP_TIMEOUT)))
            .map_err(|f| format!("ENGINE: ping send: {:?}", f.error))?;
        let mut pong = [0u8; 1];
        let got = stack
            .recv_into(id, &mut pong, Wait::Block(Some(OP_TIMEOUT)))
            .map_err(|e| {
                format!(
                    "ENGINE: pong recv after {} round trips: {e:?}",
                    samples.len()
                )
            })?;
        if got != 1 {
            return Err("ENGINE: end of stream instead of pong".into());
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(samples)
}
