//! Shared set-up of the facade tests: a provider and a peer engine on the in-memory link.

#![allow(dead_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lingerstack_stack::DeviceOptions;
use lingerstack_stack::link::{Link, MemoryLink, Wake};
use lingerstack_stack::{Cidr, Stack, StackConfig, Wait};
use lingerstack_wsp::consts::*;
use lingerstack_wsp::{Linger, Provider, ProviderConfig};

/// The provider's address.
pub const ME: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 1);
/// The peer engine's address.
pub const PEER: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 2);
/// A generous bound for blocking calls.
pub const BLOCK: Wait = Wait::Block(Some(Duration::from_secs(20)));

/// A provider and a peer engine joined by the in-memory link.
pub struct Net {
    pub p: Provider,
    pub peer: Stack,
    cut: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<Wake>>>,
    sent: Recorder,
}

/// Frames the provider put on the cable, kept only while recording (most tests never look).
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Option<Vec<Vec<u8>>>>>);

impl Recorder {
    fn keep(&self, frame: &[u8]) {
        if let Some(frames) = self.0.lock().unwrap().as_mut() {
            frames.push(frame.to_vec());
        }
    }
}

fn config(addr: Ipv4Addr, last: u8, rx_buffer: usize) -> StackConfig {
    StackConfig {
        mac: [2, 0, 0, 0, 0, last],
        ipv4: Some(Cidr { addr, prefix: 24 }),
        rx_buffer,
        tx_buffer: 64 * 1024,
        close_deadline: Duration::from_secs(3),
        ..StackConfig::default()
    }
}

/// A link that fails on demand, as a removed device does, and records what it sends.
pub struct CutLink {
    inner: MemoryLink,
    cut: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<Wake>>>,
    sent: Recorder,
}

impl Link for CutLink {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(io::Error::other("device removed (test)"));
        }
        self.inner.recv(buf)
    }
    fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        let sent = self.inner.send(frame)?;
        if sent {
            self.sent.keep(frame);
        }
        Ok(sent)
    }
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
    fn set_wake(&mut self, wake: Wake) {
        *self.waker.lock().unwrap() = Some(wake.clone());
        self.inner.set_wake(wake)
    }
    fn describe(&self) -> String {
        "cuttable memory".into()
    }
}

/// A provider and a peer; `peer_rx` is the peer's receive buffer (small keeps its window shut).
pub fn net_with(peer_rx: usize) -> Net {
    let _ = env_logger::builder().is_test(true).try_init();
    let (a, b) = MemoryLink::pair(1500);
    let cut = Arc::new(AtomicBool::new(false));
    let waker = Arc::new(Mutex::new(None));
    let sent = Recorder::default();
    let a = CutLink {
        inner: a,
        cut: cut.clone(),
        waker: waker.clone(),
        sent: sent.clone(),
    };
    let p = Provider::startup(ProviderConfig::new(config(ME, 1, 64 * 1024)), Box::new(a)).unwrap();
    let peer = Stack::start(
        config(PEER, 2, peer_rx),
        Box::new(b),
        DeviceOptions::default(),
        None,
    )
    .unwrap();
    Net {
        p,
        peer,
        cut,
        waker,
        sent,
    }
}

/// The usual network: a peer with 64 KiB buffers.
pub fn net() -> Net {
    net_with(64 * 1024)
}

impl Net {
    /// Make the provider's link fail, as a removed device does.
    pub fn remove_device(&self) {
        self.cut.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap().as_ref() {
            w();
        }
    }

    /// Start keeping every frame the provider puts on the cable (earlier ones are dropped).
    pub fn record_frames(&self) {
        *self.sent.0.lock().unwrap() = Some(Vec::new());
    }

    /// The frames the provider put on the cable since [`Net::record_frames`].
    pub fn recorded_frames(&self) -> Vec<Vec<u8>> {
        self.sent.0.lock().unwrap().clone().unwrap_or_default()
    }

    /// A provider socket connected to a peer listener on `port`: (descriptor, peer's socket).
    pub fn connected(&self, port: u16) -> (usize, lingerstack_stack::SocketId) {
        let l = self.peer.open().unwrap();
        self.peer
            .bind(l, SocketAddr::new(PEER.into(), port))
            .unwrap();
        self.peer.listen(l, 4).unwrap();
        let s = self.p.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP).unwrap();
        self.p
            .connect(s, SocketAddr::new(PEER.into(), port))
            .unwrap();
        let (c, _) = self.peer.accept(l, BLOCK).unwrap();
        self.peer
            .close(l, lingerstack_stack::CloseMode::Abort)
            .unwrap();
        (s, c)
    }

    /// Set SO_LINGER.
    pub fn linger(&self, s: usize, onoff: u16, secs: u16) {
        let l = Linger {
            onoff,
            linger: secs,
        };
        self.p
            .set_sock_opt(s, SOL_SOCKET, SO_LINGER, Some(&l.to_bytes()))
            .unwrap();
    }

    /// Switch blocking mode.
    pub fn nonblocking(&self, s: usize, on: bool) {
        let mut arg = u32::from(on);
        self.p.ioctl(s, FIONBIO, &mut arg).unwrap();
    }

    /// Everything the peer reads until end of stream, or the error that ended it.
    pub fn peer_read_all(
        &self,
        c: lingerstack_stack::SocketId,
    ) -> (Vec<u8>, Option<lingerstack_stack::StackError>) {
        let mut out = Vec::new();
        loop {
            match self.peer.recv(c, 65536, BLOCK) {
                Ok(chunk) if chunk.is_empty() => return (out, None),
                Ok(chunk) => out.extend_from_slice(&chunk),
                Err(e) => return (out, Some(e)),
            }
        }
    }
}

/// Poll `cond` for up to 10 s.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("not reached within 10 s: {what}");
}

/// A byte pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
