//! Bulk throughput through lingerstack's `Stack` API against the kernel over a TAP, and the
//! same for both baselines.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lingerstack_stack::DeviceOptions;
use lingerstack_stack::{CloseMode, SocketId, Stack, Wait};
use lingerstack_testkit::{TapNet, peer, stack_config, start_stack};

use crate::util::{
    self, BULK_BUFFER, BulkSample, CHUNK, Dir, OP_TIMEOUT, Record, Settings, accept_timeout,
    join_peer,
};
use crate::{baseline_kernel, baseline_smoltcp};

/// Name of this implementation in the results (offloads on, the default).
pub const NAME: &str = "lingerstack";
/// lingerstack with the TAP's offloads off: plain frames of at most the MTU.
pub const PLAIN_NAME: &str = "lingerstack-plain";
/// MTUs at which lingerstack is measured with offloads off too.
pub const PLAIN_MTUS: [u32; 2] = [1500, 9000];

/// MTUs measured.
pub const MTUS: [u32; 3] = [1500, 9000, 65520];

const PORT: u16 = 5001;

/// Every throughput record: lingerstack, bare smoltcp and kernel-veth at every MTU.
pub fn run(settings: &Settings) -> Vec<Record> {
    let mut out = Vec::new();
    for &mtu in &settings.mtus {
        eprintln!("throughput: mtu {mtu}");
        if settings.measures(NAME) {
            out.extend(lingerstack(settings, mtu, true));
        }
        if settings.measures(PLAIN_NAME) && PLAIN_MTUS.contains(&mtu) {
            out.extend(lingerstack(settings, mtu, false));
        }
        if settings.measures(baseline_smoltcp::NAME) {
            out.extend(baseline_smoltcp::throughput(settings, mtu));
        }
        if settings.measures(baseline_kernel::NAME) {
            out.extend(baseline_kernel::throughput(settings, mtu));
        }
        if mtu == 1500 {
            out.extend(crate::faces::throughput(settings));
        }
    }
    out
}

/// Buffer description for lingerstack and the bare loop.
pub fn buffers() -> String {
    format!(
        "stack rx=tx={}, kernel peer SO_SNDBUF=SO_RCVBUF={}",
        util::human(BULK_BUFFER),
        util::human(BULK_BUFFER)
    )
}

/// A TAP namespace with a lingerstack engine on it and a kernel listener.
pub struct StackNet {
    /// The engine.
    pub stack: Stack,
    /// The kernel listener on 10.200.0.1:`port`.
    pub listener: Arc<TcpListener>,
    /// The listener's address.
    pub addr: SocketAddr,
    /// Last: the namespace goes after the engine.
    pub net: TapNet,
}

impl StackNet {
    /// TapNet at `mtu`, an engine with `rx`/`tx` buffers, a kernel listener on `port` with
    /// `kernel_buf` socket buffers.
    pub fn new(
        mtu: u32,
        rx: usize,
        tx: usize,
        port: u16,
        kernel_buf: Option<usize>,
    ) -> Result<StackNet, String> {
        Self::with_options(mtu, rx, tx, port, kernel_buf, DeviceOptions::default())
    }

    /// As [`StackNet::new`], with device middleware (faults, pcap).
    pub fn with_options(
        mtu: u32,
        rx: usize,
        tx: usize,
        port: u16,
        kernel_buf: Option<usize>,
        options: DeviceOptions,
    ) -> Result<StackNet, String> {
        let net = TapNet::with_mtu(mtu).map_err(util::ctx("TapNet"))?;
        let mut config = stack_config(&net);
        config.rx_buffer = rx;
        config.tx_buffer = tx;
        let stack = start_stack(&net, config, options, None).map_err(util::ctx("start_stack"))?;
        let addr = SocketAddr::new(net.kernel_v4().into(), port);
        let listener =
            peer::tcp_listener(net.ns(), addr, kernel_buf).map_err(util::ctx("kernel listener"))?;
        Ok(StackNet {
            stack,
            listener: Arc::new(listener),
            addr,
            net,
        })
    }

    /// A connected stack socket to the kernel listener.
    pub fn connect(&self) -> Result<SocketId, String> {
        let id = self
            .stack
            .open()
            .map_err(|e| format!("stack open: {e:?}"))?;
        if let Err(e) = self
            .stack
            .connect(id, self.addr, Wait::Block(Some(Duration::from_secs(5))))
        {
            let _ = self.stack.close(id, CloseMode::Abort);
            return Err(format!("stack connect: {e:?}"));
        }
        Ok(id)
    }

    /// Stops the engine (bounded grace).
    pub fn stop(self) {
        self.stack.stop(Duration::from_millis(200));
    }
}

/// lingerstack's rows at `mtu`, with the TAP's offloads on or off.
fn lingerstack(settings: &Settings, mtu: u32, offload: bool) -> Vec<Record> {
    let name = if offload { NAME } else { PLAIN_NAME };
    let options = DeviceOptions {
        offload,
        ..DeviceOptions::default()
    };
    let sn = match util::guarded("lingerstack setup", || {
        StackNet::with_options(
            mtu,
            BULK_BUFFER,
            BULK_BUFFER,
            PORT,
            Some(BULK_BUFFER),
            options,
        )
    }) {
        Ok(sn) => sn,
        Err(e) => {
            return util::failed_bulk(name, mtu, buffers(), "stack process", &e);
        }
    };
    let mut out = Vec::new();
    for dir in Dir::BOTH {
        let samples = (0..settings.runs)
            .map(|_| {
                util::guarded("lingerstack bulk run", || {
                    stack_bulk_run(&sn, dir, settings.run_time())
                })
            })
            .collect();
        let mut rec = util::bulk_record(name, dir, mtu, buffers(), "stack process", samples);
        if let Ok(c) = sn.stack.counters() {
            rec.note = Some(format!(
                "engine counters after runs: tx_frames={} rx_frames={} tx_super={} rx_super={} tx_dropped_full={} resets_sent={} resets_received={}",
                c.tx_frames,
                c.rx_frames,
                c.tx_super_segments,
                c.rx_super_segments,
                c.tx_dropped_full,
                c.resets_sent,
                c.resets_received
            ));
        }
        out.push(rec);
    }
    sn.stop();
    out
}

fn stack_bulk_run(sn: &StackNet, dir: Dir, dur: Duration) -> Result<BulkSample, String> {
    let l = sn.listener.clone();
    let peer = std::thread::spawn(move || {
        let s = accept_timeout(&l, Duration::from_secs(5))?;
        util::set_kernel_buffers(&s, BULK_BUFFER)?;
        match dir {
            Dir::Send => util::kernel_sink(s),
            Dir::Recv => util::kernel_source(s, dur),
        }
    });
    let id = match sn.connect() {
        Ok(id) => id,
        Err(e) => {
            let _ = join_peer(peer);
            return Err(e);
        }
    };
    let cpu0 = util::process_cpu();
    let local = match dir {
        Dir::Send => stack_send_for(&sn.stack, id, dur),
        Dir::Recv => stack_recv_all(&sn.stack, id),
    };
    let mode = if local.is_ok() {
        CloseMode::Graceful { deadline: None }
    } else {
        CloseMode::Abort
    };
    let closed = sn.stack.close(id, mode);
    let peer = join_peer(peer);
    let cpu = util::process_cpu().saturating_sub(cpu0);
    let local = local?;
    closed.map_err(|e| format!("stack close: {e:?}"))?;
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

/// Sends CHUNKs from an application buffer for `dur`.
fn stack_send_for(stack: &Stack, id: SocketId, dur: Duration) -> Result<(u64, Duration), String> {
    let app = vec![0xa5u8; CHUNK];
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < dur {
        match stack.send(id, &app, Wait::Block(Some(OP_TIMEOUT))) {
            Ok(n) => bytes += n as u64,
            Err(f) => {
                return Err(format!(
                    "ENGINE: blocking send failed after {} bytes (+{} of this call): {:?}",
                    bytes, f.bytes, f.error
                ));
            }
        }
    }
    Ok((bytes, start.elapsed()))
}

/// Receives into an application buffer until end of stream (`Stack::recv_into`: the engine
/// copies from the socket into `app`); bytes and first-byte-to-EOF time.
fn stack_recv_all(stack: &Stack, id: SocketId) -> Result<(u64, Duration), String> {
    let mut app = vec![0u8; 4 * CHUNK];
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    loop {
        match stack.recv_into(id, &mut app, Wait::Block(Some(OP_TIMEOUT))) {
            Ok(0) => break,
            Ok(n) => {
                first.get_or_insert_with(Instant::now);
                bytes += n as u64;
            }
            Err(e) => {
                return Err(format!(
                    "ENGINE: blocking recv failed after {bytes} bytes: {e:?}"
                ));
            }
        }
    }
    Ok((bytes, first.map(|f| f.elapsed()).unwrap_or_default()))
}
