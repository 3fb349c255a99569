//! Connection rate: a kernel client connects, sends 1 byte, reads 1 byte and the listener's
//! FIN, and closes, sequentially; against a lingerstack listener and a kernel one (veth).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lingerstack_stack::{CloseMode, SocketId, Stack, StackError, Wait};

use crate::baseline_kernel;
use crate::throughput::{self, StackNet};
use crate::util::{self, OP_TIMEOUT, Record, Settings};

/// Kernel clients (and lingerstack server threads) in the parallel variant.
const PARALLEL: usize = 4;

/// lingerstack and kernel-veth connection rate records; then lingerstack with
/// [`PARALLEL`] clients at once (no kernel baseline for that one: its server is sequential).
pub fn run(settings: &Settings) -> Vec<Record> {
    let mut out = Vec::new();
    if settings.measures(throughput::NAME) {
        out.push(lingerstack(settings, 1));
    }
    if settings.measures(baseline_kernel::NAME) {
        out.push(baseline_kernel::connrate(settings));
    }
    if settings.measures(throughput::NAME) {
        out.push(lingerstack(settings, PARALLEL));
    }
    out
}

fn lingerstack(settings: &Settings, clients: usize) -> Record {
    let case = if clients == 1 {
        "kernel client -> lingerstack listener".to_string()
    } else {
        format!("{clients} kernel clients -> lingerstack listener")
    };
    let mut rec = Record::new("connrate", throughput::NAME, &case, "connections", "conn/s");
    rec.mtu = Some(1500);
    rec.buffers = "stack defaults (rx=tx=256 KiB), kernel client defaults".into();
    let result = util::guarded("lingerstack connrate", || {
        let defaults = lingerstack_stack::StackConfig::default();
        let sn = StackNet::new(1500, defaults.rx_buffer, defaults.tx_buffer, 5003, None)?;
        let note = baseline_kernel::tune_client_ns(sn.net.ns());
        let mut runs = Vec::new();
        for run in 0..settings.runs {
            let port = 7000 + (clients * 100 + run) as u16;
            runs.push(util::guarded("lingerstack connrate run", || {
                one_run(&sn, port, settings, clients)
            }));
        }
        sn.stop();
        Ok((runs, note))
    });
    match result {
        Ok((runs, note)) => {
            let (mut rates, mut scpu, mut ccpu) = (Vec::new(), Vec::new(), Vec::new());
            let mut per_run = Vec::new();
            for r in runs {
                match r {
                    Ok((n, secs, stack_cpu, client_cpu, tw)) if n > 0 => {
                        per_run.push(format!(
                            "{:.0}/s with {tw} TIME-WAIT at start",
                            n as f64 / secs
                        ));
                        rates.push(n as f64 / secs);
                        scpu.push(stack_cpu * 1e6 / n as f64);
                        ccpu.push(client_cpu * 1e6 / n as f64);
                    }
                    Ok(_) => rec.fail("no connection completed"),
                    Err(e) => rec.fail(e),
                }
            }
            rec = rec.with_runs(rates);
            rec.cpu("stack process", "cpu_us_per_conn", &scpu);
            rec.cpu("kernel client thread", "cpu_us_per_conn", &ccpu);
            let how = if clients == 1 {
                "sequential, 1 client".to_string()
            } else {
                format!(
                    "{clients} sequential kernel client threads at once, {clients} server threads calling the Stack API"
                )
            };
            rec.note = Some(format!(
                "{how}; listener closes first; one engine for all runs: {}; {note}",
                per_run.join(", ")
            ));
        }
        Err(e) => rec.fail(e),
    }
    rec
}

/// One timed run: (connections, seconds, stack CPU s, client CPU s, engine TIME-WAIT
/// sockets at the start).
fn one_run(
    sn: &StackNet,
    port: u16,
    settings: &Settings,
    clients: usize,
) -> Result<(u64, f64, f64, f64, usize), String> {
    let stack = &sn.stack;
    let time_wait = stack
        .counters()
        .ok()
        .and_then(|c| c.sockets_by_state.get("TIME-WAIT").copied())
        .unwrap_or(0);
    let l = stack.open().map_err(|e| format!("open: {e:?}"))?;
    let addr = SocketAddr::new(sn.net.stack_v4().into(), port);
    stack.bind(l, addr).map_err(|e| format!("bind: {e:?}"))?;
    stack.listen(l, 128).map_err(|e| format!("listen: {e:?}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let servers: Vec<_> = (0..clients)
        .map(|_| {
            let (stack, stop) = (stack.clone(), stop.clone());
            std::thread::spawn(move || serve(&stack, l, &stop))
        })
        .collect();
    let cpu0 = util::process_cpu();
    let dur = settings.run_time();
    let spawned: Vec<_> = (0..clients)
        .map(|_| {
            sn.net
                .ns()
                .spawn(move || baseline_kernel::connect_loop(addr, dur))
        })
        .collect();
    let results: Vec<_> = spawned
        .into_iter()
        .map(|c| c.join().map_err(|_| "client thread panicked".to_string()))
        .collect();
    stop.store(true, Ordering::SeqCst);
    let served: Vec<_> = servers
        .into_iter()
        .map(|s| s.join().map_err(|_| "server thread panicked".to_string()))
        .collect();
    let cpu = util::process_cpu().saturating_sub(cpu0);
    let _ = stack.close(l, CloseMode::Abort);
    let (mut n, mut secs, mut client_cpu) = (0u64, 0f64, Duration::ZERO);
    for (client, served) in results.into_iter().zip(served) {
        let served = served?;
        match client? {
            Ok(c) => {
                n += c.bytes;
                secs = secs.max(c.elapsed.as_secs_f64());
                client_cpu += c.cpu;
            }
            Err(e) => {
                return Err(match served {
                    Err(s) => format!("client: {e}; ENGINE listener side: {s}"),
                    Ok(_) => format!("client: {e}"),
                });
            }
        }
        served?;
    }
    Ok((
        n,
        secs,
        cpu.saturating_sub(client_cpu).as_secs_f64(),
        client_cpu.as_secs_f64(),
        time_wait,
    ))
}

/// Accept, recv 1, send 1, close gracefully, until `stop`. Returns connections served.
fn serve(stack: &Stack, l: SocketId, stop: &AtomicBool) -> Result<u64, String> {
    let mut served = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let c = match stack.accept(l, Wait::Block(Some(Duration::from_millis(100)))) {
            Ok((c, _)) => c,
            Err(StackError::TimedOut | StackError::WouldBlock) => continue,
            Err(e) => return Err(format!("accept after {served}: {e:?}")),
        };
        let b = stack
            .recv(c, 1, Wait::Block(Some(OP_TIMEOUT)))
            .map_err(|e| format!("recv on connection #{served}: {e:?}"))?;
        if b.len() != 1 {
            return Err(format!("connection #{served}: no request byte"));
        }
        stack
            .send(c, &b, Wait::Block(Some(OP_TIMEOUT)))
            .map_err(|f| format!("send on connection #{served}: {:?}", f.error))?;
        stack
            .close(c, CloseMode::Graceful { deadline: None })
            .map_err(|e| format!("close on connection #{served}: {e:?}"))?;
        served += 1;
    }
    Ok(served)
}
