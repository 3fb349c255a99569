//! Crafted frames from the kernel side of the TAP: what a blind attacker or a misbehaving
//! peer sends. An AF_PACKET socket on the kernel's end of the TAP writes the frames (the
//! stack reads them from its end) and also watches the stack's segments, so a test can aim a
//! segment at a live connection's sequence numbers. The test's [`crate::Capture`], a separate
//! socket, records the injected frames as sent by the kernel side.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

use etherparse::PacketBuilder;

use crate::capture::{cvt, open_socket, recv_frame};
use crate::trace::{Dir, Parsed, Segment, parse_frame};
use crate::{Flags, TapNet};

/// Window field of injected segments.
const WINDOW: u16 = 64240;

/// A frame writer and segment watcher on the kernel side of a [`TapNet`]'s TAP.
pub struct Injector {
    fd: OwnedFd,
    kernel_mac: [u8; 6],
    stack_mac: [u8; 6],
    buf: Vec<u8>,
    /// Stack-to-kernel segments seen so far, in order.
    seen: Vec<Segment>,
}

impl Injector {
    /// Opens the socket inside `net`'s namespace; open it before the traffic it must watch.
    pub fn open(net: &TapNet) -> io::Result<Injector> {
        let name = net.tap_name().to_string();
        let fd = net.ns().run(move || open_socket(&name))?;
        Ok(Injector {
            fd,
            kernel_mac: net.kernel_mac(),
            stack_mac: net.stack_mac(),
            buf: vec![0; 65536],
            seen: Vec::new(),
        })
    }

    /// Writes one Ethernet frame into the TAP, towards the stack.
    pub fn send_frame(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is a live buffer of the stated length; the socket is bound to the TAP.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        cvt(n as libc::c_int).map(drop)
    }

    /// Builds a TCP segment from `src` (a kernel-side address, real or spoofed) to `dst` (the
    /// stack) with `flags`, and writes it.
    pub fn send_tcp(
        &self,
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        ack: Option<u32>,
        flags: Flags,
        payload: &[u8],
    ) -> io::Result<()> {
        let frame = tcp_frame(
            self.kernel_mac,
            self.stack_mac,
            src,
            dst,
            seq,
            ack,
            flags,
            payload,
        )?;
        self.send_frame(&frame)
    }

    /// Reads every frame queued so far and remembers the stack's TCP segments.
    pub fn drain(&mut self) -> io::Result<()> {
        while let Some(frame) = recv_frame(self.fd.as_raw_fd(), &mut self.buf)? {
            if frame.dir != Dir::FromStack {
                continue;
            }
            if let Parsed::Tcp(seg) =
                parse_frame(&frame.data, frame.dir, frame.time, Duration::ZERO)
            {
                self.seen.push(seg);
            }
        }
        Ok(())
    }

    /// The newest segment the stack sent on the connection whose kernel end is `kernel_port`,
    /// after draining the queue.
    pub fn latest_from_stack(&mut self, kernel_port: u16) -> io::Result<Option<Segment>> {
        self.drain()?;
        Ok(self
            .seen
            .iter()
            .rev()
            .find(|s| s.dst.port() == kernel_port)
            .cloned())
    }

    /// Waits up to `timeout` for a stack segment to `kernel_port` sent at or after `since`
    /// that `pred` accepts.
    pub fn wait_from_stack(
        &mut self,
        kernel_port: u16,
        since: SystemTime,
        timeout: Duration,
        pred: impl Fn(&Segment) -> bool,
    ) -> io::Result<Option<Segment>> {
        let end = Instant::now() + timeout;
        loop {
            self.drain()?;
            let hit = self
                .seen
                .iter()
                .find(|s| s.dst.port() == kernel_port && s.time >= since && pred(s));
            if let Some(hit) = hit {
                return Ok(Some(hit.clone()));
            }
            if Instant::now() >= end {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// One Ethernet frame with an IPv4 or IPv6 TCP segment (both addresses of one family).
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: Option<u32>,
    flags: Flags,
    payload: &[u8],
) -> io::Result<Vec<u8>> {
    let eth = PacketBuilder::ethernet2(src_mac, dst_mac);
    let ip = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "source and destination of different families",
            ));
        }
    };
    let mut tcp = ip.tcp(src.port(), dst.port(), seq, WINDOW);
    if flags.syn {
        tcp = tcp.syn();
    }
    if flags.rst {
        tcp = tcp.rst();
    }
    if flags.fin {
        tcp = tcp.fin();
    }
    if flags.psh {
        tcp = tcp.psh();
    }
    if let Some(ack) = ack {
        tcp = tcp.ack(ack);
    }
    let mut frame = Vec::with_capacity(tcp.size(payload.len()));
    tcp.write(&mut frame, payload)
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(frame)
}
