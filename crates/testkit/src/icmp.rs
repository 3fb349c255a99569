//! ICMP and ICMPv6 echo ("ping") from the kernel side, and the echo messages of a capture.
//!
//! [`ping`] sends echo requests from a raw socket made inside a namespace (no `ping` binary
//! needed) and collects the matching replies, which is the kernel's own view; [`echoes`]
//! lists the echo messages a kernel-side capture saw, which is the wire's.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use etherparse::{Icmpv4Type, Icmpv6Type, SlicedPacket, TransportSlice};
use socket2::{Domain, Protocol, Socket, Type};

use crate::{Dir, Netns, Trace};

/// ICMPv4 echo request and reply types.
const V4_REQUEST: u8 = 8;
const V4_REPLY: u8 = 0;
/// ICMPv6 echo request and reply types.
const V6_REQUEST: u8 = 128;
const V6_REPLY: u8 = 129;

static NEXT_IDENT: AtomicU16 = AtomicU16::new(0);

/// An echo reply the kernel received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PingReply {
    /// Who answered.
    pub from: IpAddr,
    /// The echo identifier (the one the request carried).
    pub ident: u16,
    /// The sequence number (the one the request carried).
    pub seq: u16,
    /// Round-trip time as the test saw it.
    pub rtt: Duration,
}

/// An echo request or reply seen in a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Echo {
    /// Direction on the TAP.
    pub dir: Dir,
    /// True for a reply, false for a request.
    pub reply: bool,
    /// IP source.
    pub src: IpAddr,
    /// IP destination.
    pub dst: IpAddr,
    /// Ethernet source MAC.
    pub src_mac: [u8; 6],
    /// Echo identifier.
    pub ident: u16,
    /// Sequence number.
    pub seq: u16,
    /// The echo data.
    pub payload: Vec<u8>,
}

/// Send `count` echo requests carrying `payload` from inside `ns` to `dst`, one at a time,
/// waiting up to `timeout` for each reply. Returns the replies that came back (a missing one
/// is simply absent), each checked to carry the same identifier, sequence number and data.
pub fn ping(
    ns: &Netns,
    dst: IpAddr,
    count: u16,
    payload: &[u8],
    timeout: Duration,
) -> io::Result<Vec<PingReply>> {
    let socket = ns.run(|| raw_socket(dst))?;
    // Unique per process and call, so concurrent pings in other tests do not mix.
    let ident = (std::process::id() as u16)
        .wrapping_mul(31)
        .wrapping_add(NEXT_IDENT.fetch_add(1, Ordering::Relaxed));
    let mut replies = Vec::new();
    for seq in 1..=count {
        let sent = Instant::now();
        socket.send_to(
            &request(dst, ident, seq, payload),
            &SocketAddr::new(dst, 0).into(),
        )?;
        if let Some(from) = await_reply(&socket, dst, ident, seq, payload, sent + timeout)? {
            replies.push(PingReply {
                from,
                ident,
                seq,
                rtt: sent.elapsed(),
            });
        }
    }
    Ok(replies)
}

/// A raw ICMP (or ICMPv6) socket; the kernel fills in the ICMPv6 checksum itself.
fn raw_socket(dst: IpAddr) -> io::Result<Socket> {
    let (domain, protocol) = match dst {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    Socket::new(domain, Type::RAW, Some(protocol))
}

/// An echo request message (ICMP header and data; no IP header).
fn request(dst: IpAddr, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let kind = if dst.is_ipv4() {
        V4_REQUEST
    } else {
        V6_REQUEST
    };
    let mut msg = vec![kind, 0, 0, 0];
    msg.extend_from_slice(&ident.to_be_bytes());
    msg.extend_from_slice(&seq.to_be_bytes());
    msg.extend_from_slice(payload);
    if dst.is_ipv4() {
        let sum = checksum(&msg);
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    msg
}

/// The Internet checksum (RFC 1071) of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Read from `socket` until the reply to (`ident`, `seq`) from `dst` with `payload` arrives
/// (its source address) or `deadline` passes (None). Other ICMP messages are skipped.
fn await_reply(
    socket: &Socket,
    dst: IpAddr,
    ident: u16,
    seq: u16,
    payload: &[u8],
    deadline: Instant,
) -> io::Result<Option<IpAddr>> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        socket.set_read_timeout(Some(left))?;
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        // SAFETY: recv_from initialised the first `n` bytes.
        let data: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        // A raw IPv4 socket hands over the IP header too; a raw IPv6 socket does not.
        let msg = match dst {
            IpAddr::V4(_) => data
                .first()
                .and_then(|b| data.get(usize::from(b & 0x0f) * 4..))
                .unwrap_or(&[]),
            IpAddr::V6(_) => &data[..],
        };
        let reply_kind = if dst.is_ipv4() { V4_REPLY } else { V6_REPLY };
        let from_ip = from.as_socket().map(|a| a.ip());
        if msg.len() >= 8
            && msg[0] == reply_kind
            && msg[4..6] == ident.to_be_bytes()
            && msg[6..8] == seq.to_be_bytes()
            && &msg[8..] == payload
            && from_ip == Some(dst)
        {
            return Ok(from_ip);
        }
    }
}

/// Every ICMP and ICMPv6 echo request and reply in `trace`, in capture order.
pub fn echoes(trace: &Trace) -> Vec<Echo> {
    trace
        .others
        .iter()
        .filter_map(|frame| echo_of(frame.dir, &frame.data))
        .collect()
}

/// The echo message in an Ethernet frame, if it is one.
fn echo_of(dir: Dir, frame: &[u8]) -> Option<Echo> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst) = crate::trace::ip_addrs(&p)?;
    let (reply, header, payload) = match &p.transport {
        Some(TransportSlice::Icmpv4(icmp)) => match icmp.icmp_type() {
            Icmpv4Type::EchoRequest(h) => (false, h, icmp.payload()),
            Icmpv4Type::EchoReply(h) => (true, h, icmp.payload()),
            _ => return None,
        },
        Some(TransportSlice::Icmpv6(icmp)) => match icmp.icmp_type() {
            Icmpv6Type::EchoRequest(h) => (false, h, icmp.payload()),
            Icmpv6Type::EchoReply(h) => (true, h, icmp.payload()),
            _ => return None,
        },
        _ => return None,
    };
    let mut src_mac = [0; 6];
    src_mac.copy_from_slice(frame.get(6..12)?);
    Some(Echo {
        dir,
        reply,
        src,
        dst,
        src_mac,
        ident: header.id,
        seq: header.seq,
        payload: payload.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_and_request_layout() {
        // RFC 1071's worked example sums to 0xddf2; the checksum is its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        let m = request("10.0.0.2".parse().unwrap(), 0x1234, 7, b"hi");
        assert_eq!(&m[..2], &[V4_REQUEST, 0]);
        assert_eq!(&m[4..], &[0x12, 0x34, 0, 7, b'h', b'i']);
        // A message with its checksum in place sums to zero.
        assert_eq!(checksum(&m), 0);
        let m6 = request("fd00::2".parse().unwrap(), 1, 1, b"");
        assert_eq!(m6[0], V6_REQUEST);
    }
}
