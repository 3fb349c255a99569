//! The Rust faces, `lingerstack::net` (std-shaped, blocking) and `lingerstack::tokio` (async,
//! on a `current_thread` runtime), in the same bulk and ping-pong runs as the `Stack` API at
//! MTU 1500: what the socket types and the poll layer cost on top of the engine calls.

use std::time::{Duration, Instant};

use lingerstack_stack::net::TcpStream;
use lingerstack_stack::tokio::TcpStream as AsyncStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::throughput::{StackNet, buffers};
use crate::util::{
    self, BULK_BUFFER, BulkSample, CHUNK, Dir, OP_TIMEOUT, Record, Settings, accept_timeout,
    join_peer,
};

/// The blocking face in the results.
pub const STD: &str = "lingerstack-std";
/// The async face in the results.
pub const TOKIO: &str = "lingerstack-tokio";
/// Both faces.
pub const FACES: [&str; 2] = [STD, TOKIO];

const MTU: u32 = 1500;
const BULK_PORT: u16 = 5011;
const PING_PORT: u16 = 5012;

type Timed = Result<(u64, Duration), String>;

/// Bulk send and receive through each face.
pub fn throughput(settings: &Settings) -> Vec<Record> {
    let mut out = Vec::new();
    for face in FACES.into_iter().filter(|f| settings.measures(f)) {
        eprintln!("throughput: {face}, mtu {MTU}");
        let sn = match util::guarded("face setup", || {
            StackNet::new(MTU, BULK_BUFFER, BULK_BUFFER, BULK_PORT, Some(BULK_BUFFER))
        }) {
            Ok(sn) => sn,
            Err(e) => {
                out.extend(util::failed_bulk(face, MTU, buffers(), "stack process", &e));
                continue;
            }
        };
        for dir in Dir::BOTH {
            let samples = (0..settings.runs)
                .map(|_| util::guarded("face bulk run", || bulk_run(&sn, face, dir, settings)))
                .collect();
            out.push(util::bulk_record(
                face,
                dir,
                MTU,
                buffers(),
                "stack process",
                samples,
            ));
        }
        sn.stop();
    }
    out
}

/// One bulk run against a kernel sink or source, as the `Stack` API's runs are measured.
fn bulk_run(
    sn: &StackNet,
    face: &str,
    dir: Dir,
    settings: &Settings,
) -> Result<BulkSample, String> {
    let dur = settings.run_time();
    let l = sn.listener.clone();
    let peer = std::thread::spawn(move || {
        let s = accept_timeout(&l, Duration::from_secs(5))?;
        util::set_kernel_buffers(&s, BULK_BUFFER)?;
        match dir {
            Dir::Send => util::kernel_sink(s),
            Dir::Recv => util::kernel_source(s, dur),
        }
    });
    let cpu0 = util::process_cpu();
    let local = if face == STD {
        std_bulk(sn, dir, dur)
    } else {
        current_thread().and_then(|rt| rt.block_on(tokio_bulk(sn, dir, dur)))
    };
    let peer = join_peer(peer);
    let cpu = util::process_cpu().saturating_sub(cpu0);
    let local = local?;
    let peer = peer?;
    let (bytes, elapsed) = match dir {
        Dir::Send => (peer.bytes, peer.elapsed),
        Dir::Recv => local,
    };
    Ok(BulkSample {
        bytes,
        elapsed,
        local_cpu: cpu.saturating_sub(peer.cpu),
        peer_cpu: peer.cpu,
    })
}

fn current_thread() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// Send for `dur`, or receive to end of stream; dropping the stream closes it (FIN).
fn std_bulk(sn: &StackNet, dir: Dir, dur: Duration) -> Timed {
    let mut s = TcpStream::connect(&sn.stack, sn.addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(OP_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(OP_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut app = vec![0xa5u8; 4 * CHUNK];
    let (mut bytes, start) = (0u64, Instant::now());
    let mut first: Option<Instant> = None;
    use std::io::{Read, Write};
    match dir {
        Dir::Send => {
            while start.elapsed() < dur {
                s.write_all(&app[..CHUNK])
                    .map_err(|e| format!("write: {e}"))?;
                bytes += CHUNK as u64;
            }
        }
        Dir::Recv => loop {
            match s
                .read(&mut app)
                .map_err(|e| format!("read after {bytes}: {e}"))?
            {
                0 => break,
                n => {
                    first.get_or_insert_with(Instant::now);
                    bytes += n as u64;
                }
            }
        },
    }
    Ok((bytes, first.map_or(start.elapsed(), |f| f.elapsed())))
}

/// As [`std_bulk`], through the async face.
async fn tokio_bulk(sn: &StackNet, dir: Dir, dur: Duration) -> Timed {
    let mut s = AsyncStream::connect(&sn.stack, sn.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut app = vec![0xa5u8; 4 * CHUNK];
    let (mut bytes, start) = (0u64, Instant::now());
    let mut first: Option<Instant> = None;
    match dir {
        Dir::Send => {
            while start.elapsed() < dur {
                s.write_all(&app[..CHUNK])
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                bytes += CHUNK as u64;
            }
        }
        Dir::Recv => loop {
            match s
                .read(&mut app)
                .await
                .map_err(|e| format!("read after {bytes}: {e}"))?
            {
                0 => break,
                n => {
                    first.get_or_insert_with(Instant::now);
                    bytes += n as u64;
                }
            }
        },
    }
    Ok((bytes, first.map_or(start.elapsed(), |f| f.elapsed())))
}

/// 1-byte ping-pong through each face against a kernel echo.
pub fn latency(settings: &Settings) -> Vec<Record> {
    let mut out = Vec::new();
    for face in FACES.into_iter().filter(|f| settings.measures(f)) {
        let result = util::guarded("face latency", || {
            let sn = StackNet::new(MTU, BULK_BUFFER, BULK_BUFFER, PING_PORT, None)?;
            let mut runs = Vec::new();
            let mut cpu = Vec::new();
            for _ in 0..settings.runs {
                let l = sn.listener.clone();
                let peer = std::thread::spawn(move || {
                    util::kernel_echo(accept_timeout(&l, Duration::from_secs(5))?)
                });
                let (r, pct) = util::cpu_percent(|| {
                    let r = util::guarded("face ping-pong run", || {
                        if face == STD {
                            std_ping_pong(&sn, settings.run_time())
                        } else {
                            current_thread()?.block_on(tokio_ping_pong(&sn, settings.run_time()))
                        }
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
        out.extend(match result {
            Ok((runs, cpu)) => util::latency_records(face, MTU, runs, &cpu),
            Err(e) => util::latency_records(face, MTU, vec![Err(e)], &[]),
        });
    }
    out
}

fn std_ping_pong(sn: &StackNet, dur: Duration) -> Result<Vec<f64>, String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(&sn.stack, sn.addr).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(OP_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let (mut samples, start) = (Vec::new(), Instant::now());
    let mut b = [7u8; 1];
    while start.elapsed() < dur {
        let t = Instant::now();
        s.write_all(&b).map_err(|e| format!("ping: {e}"))?;
        s.read_exact(&mut b).map_err(|e| format!("pong: {e}"))?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(samples)
}

async fn tokio_ping_pong(sn: &StackNet, dur: Duration) -> Result<Vec<f64>, String> {
    let mut s = AsyncStream::connect(&sn.stack, sn.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut samples, start) = (Vec::new(), Instant::now());
    let mut b = [7u8; 1];
    while start.elapsed() < dur {
        let t = Instant::now();
        s.write_all(&b).await.map_err(|e| format!("ping: {e}"))?;
        s.read_exact(&mut b)
            .await
            .map_err(|e| format!("pong: {e}"))?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(samples)
}
