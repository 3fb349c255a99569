//! Baseline: a bare smoltcp poll loop over the same kind of TAP, without engine or facade.
//!
//! One thread owns a smoltcp `Interface`, one `tcp::Socket` at a time and the engine's own
//! smoltcp device (`LinkDevice`) over a `TapLink`; it waits on mio for the TAP (edge
//! triggered: `Interface::poll` reads until the device is empty) or for smoltcp's next timer,
//! and copies the payload between the socket buffer and an application buffer, as the
//! `Stack` API does.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lingerstack_stack::link::{FaultConfig, Link, LinkDevice};
use lingerstack_tap::TapLink;
use lingerstack_testkit::tapnet::LINK_UP_TIMEOUT;
use lingerstack_testkit::{TapNet, peer};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

use crate::util::{
    self, BULK_BUFFER, BulkSample, CHUNK, Dir, OP_TIMEOUT, PeerResult, Record, Settings,
    accept_timeout, join_peer,
};

/// Name of this implementation in the results.
pub const NAME: &str = "smoltcp-bare";

const PORT: u16 = 5001;
const LAT_PORT: u16 = 5002;

/// The bare loop's state. Field order is drop order: the TAP closes before the namespace goes.
pub struct Bare {
    iface: Interface,
    device: LinkDevice,
    sockets: SocketSet<'static>,
    poll: mio::Poll,
    events: mio::Events,
    _waker: Arc<mio::Waker>,
    epoch: Instant,
    rx: usize,
    tx: usize,
    next_port: u16,
    net: TapNet,
}

impl Bare {
    /// A TapNet at `mtu` and an interface at 10.200.0.2 on its TAP; sockets get `rx`/`tx`.
    pub fn new(mtu: u32, rx: usize, tx: usize) -> Result<Bare, String> {
        let net = TapNet::with_mtu(mtu).map_err(util::ctx("TapNet"))?;
        let name = net.tap_name().to_string();
        let link = net
            .ns()
            .run(move || TapLink::open(&name))
            .map_err(util::ctx("TapLink::open"))?;
        let poll = mio::Poll::new().map_err(util::ctx("mio"))?;
        let waker =
            Arc::new(mio::Waker::new(poll.registry(), mio::Token(1)).map_err(util::ctx("waker"))?);
        let fd = link.fd().ok_or("a TAP has a descriptor")?;
        poll.registry()
            .register(
                &mut mio::unix::SourceFd(&fd),
                mio::Token(0),
                mio::Interest::READABLE,
            )
            .map_err(util::ctx("register TAP"))?;
        let mut device =
            LinkDevice::new(Box::new(link), None, FaultConfig::default(), 0x5eed, false);
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(net.stack_mac())));
        config.random_seed = 0x1234_5678;
        let epoch = Instant::now();
        let mut iface = Interface::new(config, &mut device, smoltcp::time::Instant::from_micros(0));
        let v4 = net.stack_v4();
        let prefix = net.prefix_len_v4();
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(v4), prefix));
        });
        net.wait_link_up(LINK_UP_TIMEOUT)
            .map_err(util::ctx("link up"))?;
        Ok(Bare {
            iface,
            device,
            sockets: SocketSet::new(vec![]),
            poll,
            events: mio::Events::with_capacity(16),
            _waker: waker,
            epoch,
            rx,
            tx,
            next_port: 40000,
            net,
        })
    }

    fn now(&self) -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    /// One smoltcp poll; fails if the link failed.
    fn step(&mut self) -> Result<(), String> {
        let now = self.now();
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        match self.device.failure() {
            Some(e) => Err(format!("TAP failed: {e}")),
            None => Ok(()),
        }
    }

    /// Waits for the TAP or smoltcp's next deadline (at most 5 ms).
    fn wait(&mut self) {
        let now = self.now();
        let delay = self
            .iface
            .poll_delay(now, &self.sockets)
            .map(|d| Duration::from_micros(d.total_micros()))
            .unwrap_or(Duration::from_millis(5))
            .min(Duration::from_millis(5));
        let _ = self.poll.poll(&mut self.events, Some(delay));
    }

    fn sock(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// Connects a new socket to `addr` and waits for ESTABLISHED.
    pub fn connect(&mut self, addr: SocketAddr) -> Result<SocketHandle, String> {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; self.rx]),
            tcp::SocketBuffer::new(vec![0; self.tx]),
        );
        let IpAddr::V4(ip) = addr.ip() else {
            return Err("IPv4 only".into());
        };
        let port = self.next_port;
        self.next_port = self.next_port.wrapping_add(1).max(40000);
        s.connect(
            self.iface.context(),
            (IpAddress::Ipv4(ip), addr.port()),
            port,
        )
        .map_err(|e| format!("smoltcp connect: {e}"))?;
        let h = self.sockets.add(s);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            self.step()?;
            match self.sock(h).state() {
                tcp::State::Established => return Ok(h),
                tcp::State::Closed => {
                    self.sockets.remove(h);
                    return Err("smoltcp connect: refused".into());
                }
                _ => {}
            }
            if Instant::now() > deadline {
                self.sockets.remove(h);
                return Err("smoltcp connect: timed out".into());
            }
            self.wait();
        }
    }

    /// Closes `h` gracefully and polls until `peer` finished (bounded), then frees it.
    fn finish(
        &mut self,
        h: SocketHandle,
        peer: &JoinHandle<std::io::Result<PeerResult>>,
    ) -> Result<(), String> {
        self.sock(h).close();
        let deadline = Instant::now() + OP_TIMEOUT;
        let mut res = Ok(());
        while !peer.is_finished() {
            if let Err(e) = self.step() {
                res = Err(e);
                break;
            }
            if Instant::now() > deadline {
                res = Err("bare loop: peer did not finish after close".into());
                break;
            }
            self.wait();
        }
        self.sock(h).abort();
        let _ = self.step();
        self.sockets.remove(h);
        res
    }

    /// Sends from an application buffer for `dur`; returns bytes queued.
    fn send_for(&mut self, h: SocketHandle, dur: Duration) -> Result<u64, String> {
        let app = vec![0xa5u8; CHUNK];
        let mut off = 0usize;
        let mut bytes = 0u64;
        let start = Instant::now();
        let mut last_progress = Instant::now();
        while start.elapsed() < dur {
            self.step()?;
            let s = self.sock(h);
            if !s.may_send() {
                return Err(format!("bare loop: cannot send in state {}", s.state()));
            }
            let n = s
                .send_slice(&app[off..])
                .map_err(|e| format!("send_slice: {e}"))?;
            if n > 0 {
                off = (off + n) % CHUNK;
                bytes += n as u64;
                last_progress = Instant::now();
                continue;
            }
            if last_progress.elapsed() > OP_TIMEOUT {
                return Err(format!("bare loop: send stalled after {bytes} bytes"));
            }
            self.wait();
        }
        Ok(bytes)
    }

    /// Receives into an application buffer until end of stream; bytes and first-byte-to-EOF.
    fn recv_all(&mut self, h: SocketHandle) -> Result<(u64, Duration), String> {
        let mut app = vec![0u8; 4 * CHUNK];
        let mut bytes = 0u64;
        let mut first: Option<Instant> = None;
        let mut last_progress = Instant::now();
        loop {
            self.step()?;
            let s = self.sock(h);
            let mut got = false;
            while s.can_recv() {
                let n = s
                    .recv_slice(&mut app)
                    .map_err(|e| format!("recv_slice: {e}"))?;
                if n == 0 {
                    break;
                }
                first.get_or_insert_with(Instant::now);
                bytes += n as u64;
                got = true;
            }
            if !s.may_recv() && !s.can_recv() {
                break;
            }
            if got {
                last_progress = Instant::now();
                continue;
            }
            if last_progress.elapsed() > OP_TIMEOUT {
                return Err(format!("bare loop: receive stalled after {bytes} bytes"));
            }
            self.wait();
        }
        Ok((bytes, first.map(|f| f.elapsed()).unwrap_or_default()))
    }

    /// 1-byte round trips for `dur`, microseconds each.
    fn ping_pong(&mut self, h: SocketHandle, dur: Duration) -> Result<Vec<f64>, String> {
        self.sock(h).set_nagle_enabled(false);
        let mut samples = Vec::new();
        let start = Instant::now();
        let mut b = [7u8; 1];
        while start.elapsed() < dur {
            let t = Instant::now();
            if self
                .sock(h)
                .send_slice(&b)
                .map_err(|e| format!("send_slice: {e}"))?
                != 1
            {
                return Err("bare loop: send buffer full in ping-pong".into());
            }
            loop {
                self.step()?;
                if self
                    .sock(h)
                    .recv_slice(&mut b)
                    .map_err(|e| format!("recv_slice: {e}"))?
                    == 1
                {
                    break;
                }
                if t.elapsed() > OP_TIMEOUT {
                    return Err("bare loop: no pong".into());
                }
                self.wait();
            }
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Ok(samples)
    }
}

/// Bulk throughput both directions at `mtu`.
pub fn throughput(settings: &Settings, mtu: u32) -> Vec<Record> {
    let buffers = crate::throughput::buffers();
    let setup = util::guarded("bare setup", || {
        let bare = Bare::new(mtu, BULK_BUFFER, BULK_BUFFER)?;
        let addr = SocketAddr::new(bare.net.kernel_v4().into(), PORT);
        let l = peer::tcp_listener(bare.net.ns(), addr, Some(BULK_BUFFER))
            .map_err(util::ctx("kernel listener"))?;
        Ok((bare, addr, Arc::new(l)))
    });
    let (mut bare, addr, listener) = match setup {
        Ok(x) => x,
        Err(e) => {
            return util::failed_bulk(NAME, mtu, buffers.clone(), "bare loop process", &e);
        }
    };
    let mut out = Vec::new();
    for dir in Dir::BOTH {
        let samples = (0..settings.runs)
            .map(|_| {
                util::guarded("bare bulk run", || {
                    bulk_run(&mut bare, addr, &listener, dir, settings.run_time())
                })
            })
            .collect();
        out.push(util::bulk_record(
            NAME,
            dir,
            mtu,
            buffers.clone(),
            "bare loop process",
            samples,
        ));
    }
    out
}

fn bulk_run(
    bare: &mut Bare,
    addr: SocketAddr,
    listener: &Arc<std::net::TcpListener>,
    dir: Dir,
    dur: Duration,
) -> Result<BulkSample, String> {
    let l = listener.clone();
    let peer = std::thread::spawn(move || {
        let s = accept_timeout(&l, Duration::from_secs(5))?;
        util::set_kernel_buffers(&s, BULK_BUFFER)?;
        match dir {
            Dir::Send => util::kernel_sink(s),
            Dir::Recv => util::kernel_source(s, dur),
        }
    });
    let h = match bare.connect(addr) {
        Ok(h) => h,
        Err(e) => {
            let _ = join_peer(peer);
            return Err(e);
        }
    };
    let cpu0 = util::process_cpu();
    let local = match dir {
        Dir::Send => bare.send_for(h, dur).map(|b| (b, Duration::ZERO)),
        Dir::Recv => bare.recv_all(h),
    };
    let fin = bare.finish(h, &peer);
    let peer = join_peer(peer);
    let cpu = util::process_cpu().saturating_sub(cpu0);
    let local = local?;
    fin?;
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

/// 1-byte ping-pong against a kernel echo over the TAP (MTU 1500).
pub fn latency(settings: &Settings) -> Vec<Record> {
    let result = util::guarded("bare latency", || {
        let mut bare = Bare::new(1500, BULK_BUFFER, BULK_BUFFER)?;
        let addr = SocketAddr::new(bare.net.kernel_v4().into(), LAT_PORT);
        let l = Arc::new(
            peer::tcp_listener(bare.net.ns(), addr, None).map_err(util::ctx("kernel listener"))?,
        );
        let mut runs = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..settings.runs {
            let l = l.clone();
            let peer = std::thread::spawn(move || {
                util::kernel_echo(accept_timeout(&l, Duration::from_secs(5))?)
            });
            let (r, pct) = util::cpu_percent(|| {
                let r = util::guarded("bare ping-pong run", || {
                    let h = bare.connect(addr)?;
                    let r = bare.ping_pong(h, settings.run_time());
                    bare.finish(h, &peer)?;
                    r
                });
                let p = join_peer(peer);
                r.and_then(|r| p.map(|_| r))
            });
            cpu.push(pct);
            runs.push(r);
        }
        Ok((runs, cpu))
    });
    match result {
        Ok((runs, cpu)) => util::latency_records(NAME, 1500, runs, &cpu),
        Err(e) => util::latency_records(NAME, 1500, vec![Err(e)], &[]),
    }
}

/// `n` idle established connections through the bare loop with `buf` socket buffers:
/// (VmRSS growth per connection in bytes, sequential connect time per connection in us).
pub fn idle_connections(n: usize, buf: usize) -> Result<(f64, f64), String> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut bare = Bare::new(1500, buf, buf)?;
    let addr = SocketAddr::new(bare.net.kernel_v4().into(), 5005);
    let l = Arc::new(
        peer::tcp_listener(bare.net.ns(), addr, None).map_err(util::ctx("kernel listener"))?,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let (l, stop) = (l.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut kept = Vec::with_capacity(n);
            while !stop.load(Ordering::SeqCst) && kept.len() < n {
                if let Ok(s) = accept_timeout(&l, Duration::from_millis(50)) {
                    kept.push(s);
                }
            }
            kept
        })
    };
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    let rss0 = util::rss_bytes().map_err(util::ctx("VmRSS"))?;
    let start = Instant::now();
    let mut err = None;
    for i in 0..n {
        if let Err(e) = bare.connect(addr) {
            err = Some(format!("bare connection #{i} of {n}: {e}"));
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let rss1 = util::rss_bytes().map_err(util::ctx("VmRSS"))?;
    stop.store(true, Ordering::SeqCst);
    let kept = acceptor
        .join()
        .map_err(|_| "acceptor panicked".to_string())?;
    drop(bare);
    drop(kept);
    match err {
        Some(e) => Err(e),
        None => Ok((
            (rss1 as f64 - rss0 as f64) / n as f64,
            secs * 1e6 / n as f64,
        )),
    }
}
