//! Frame builders for the fuzzer: Ethernet, ARP, IPv4, IPv6 (with extension headers), TCP,
//! ICMP. Every length and offset can be overridden, so a builder makes well-formed packets and
//! the exact malformed ones a case asks for; checksums are right unless a case spoils them
//! (a packet with a bad checksum never gets past the parser, so most should be right).

/// EtherType of IPv4.
pub const ETH_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETH_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETH_IPV6: u16 = 0x86dd;
/// IP protocol number of TCP.
pub const TCP: u8 = 6;
/// IP protocol number of UDP.
pub const UDP: u8 = 17;
/// IP protocol number of ICMP.
pub const ICMP: u8 = 1;
/// IPv6 next header of ICMPv6.
pub const ICMPV6: u8 = 58;

/// The internet checksum (RFC 1071) of the concatenation of `parts`.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.concat();
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet II frame.
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An ARP packet; `hlen`/`plen` are normally 6 and 4.
#[derive(Clone, Debug)]
pub struct Arp {
    /// Hardware type (1: Ethernet).
    pub htype: u16,
    /// Protocol type (0x0800).
    pub ptype: u16,
    /// Hardware address length.
    pub hlen: u8,
    /// Protocol address length.
    pub plen: u8,
    /// 1 request, 2 reply.
    pub op: u16,
    /// Sender hardware address.
    pub sha: [u8; 6],
    /// Sender protocol address.
    pub spa: [u8; 4],
    /// Target hardware address.
    pub tha: [u8; 6],
    /// Target protocol address.
    pub tpa: [u8; 4],
}

impl Arp {
    /// The packet's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(28);
        p.extend_from_slice(&self.htype.to_be_bytes());
        p.extend_from_slice(&self.ptype.to_be_bytes());
        p.push(self.hlen);
        p.push(self.plen);
        p.extend_from_slice(&self.op.to_be_bytes());
        p.extend_from_slice(&self.sha);
        p.extend_from_slice(&self.spa);
        p.extend_from_slice(&self.tha);
        p.extend_from_slice(&self.tpa);
        p
    }
}

/// IPv4 header fields; `None` lengths are computed.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Protocol.
    pub proto: u8,
    /// Version nibble (4).
    pub version: u8,
    /// Header length in 32-bit words; `None`: from the options.
    pub ihl: Option<u8>,
    /// Total length; `None`: the real one.
    pub total_len: Option<u16>,
    /// Identification.
    pub ident: u16,
    /// Flags (3 bits) and fragment offset (13 bits).
    pub flags_frag: u16,
    /// Time to live.
    pub ttl: u8,
    /// Option bytes (padded to a multiple of 4 when `ihl` is `None`).
    pub options: Vec<u8>,
    /// Spoil the header checksum.
    pub bad_checksum: bool,
}

impl Ipv4 {
    /// A plain header from `src` to `dst` carrying `proto`.
    pub fn new(src: [u8; 4], dst: [u8; 4], proto: u8) -> Ipv4 {
        Ipv4 {
            src,
            dst,
            proto,
            version: 4,
            ihl: None,
            total_len: None,
            ident: 0,
            flags_frag: 0x4000, // don't fragment
            ttl: 64,
            options: Vec::new(),
            bad_checksum: false,
        }
    }

    /// Header and `payload`.
    pub fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let mut options = self.options.clone();
        if self.ihl.is_none() {
            options.resize(options.len().div_ceil(4) * 4, 0);
        }
        let header_len = 20 + options.len();
        let ihl = self.ihl.unwrap_or((header_len / 4).min(15) as u8);
        let total = self
            .total_len
            .unwrap_or((header_len + payload.len()).min(0xffff) as u16);
        let mut h = Vec::with_capacity(header_len + payload.len());
        h.push((self.version << 4) | (ihl & 0x0f));
        h.push(0);
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&self.ident.to_be_bytes());
        h.extend_from_slice(&self.flags_frag.to_be_bytes());
        h.push(self.ttl);
        h.push(self.proto);
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&self.src);
        h.extend_from_slice(&self.dst);
        h.extend_from_slice(&options);
        let mut sum = checksum(&[&h]);
        if self.bad_checksum {
            sum ^= 0x5555;
        }
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }
}

/// An IPv6 packet: fixed header, `payload` (extension headers included), `payload_len`
/// overriding the real length when given.
pub fn ipv6(
    src: [u8; 16],
    dst: [u8; 16],
    next: u8,
    hop_limit: u8,
    payload_len: Option<u16>,
    payload: &[u8],
) -> Vec<u8> {
    let len = payload_len.unwrap_or(payload.len().min(0xffff) as u16);
    let mut p = Vec::with_capacity(40 + payload.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&len.to_be_bytes());
    p.push(next);
    p.push(hop_limit);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

/// The pseudo-header of a transport checksum over IPv4.
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.push(0);
    p.push(proto);
    p.extend_from_slice(&(len.min(0xffff) as u16).to_be_bytes());
    p
}

/// The pseudo-header of a transport checksum over IPv6.
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], next: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, next]);
    p
}

/// TCP flag bits, NS included (bit 8).
pub mod flags {
    /// FIN.
    pub const FIN: u16 = 0x001;
    /// SYN.
    pub const SYN: u16 = 0x002;
    /// RST.
    pub const RST: u16 = 0x004;
    /// PSH.
    pub const PSH: u16 = 0x008;
    /// ACK.
    pub const ACK: u16 = 0x010;
    /// URG.
    pub const URG: u16 = 0x020;
}

/// A TCP segment; `data_offset` overrides the header length (32-bit words).
#[derive(Clone, Debug, Default)]
pub struct Tcp {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags, 9 bits (NS, CWR, ECE, URG, ACK, PSH, RST, SYN, FIN).
    pub flags: u16,
    /// Window.
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Option bytes (padded to a multiple of 4 when `data_offset` is `None`).
    pub options: Vec<u8>,
    /// Header length override, in words.
    pub data_offset: Option<u8>,
    /// Payload.
    pub payload: Vec<u8>,
    /// Spoil the checksum.
    pub bad_checksum: bool,
}

impl Tcp {
    /// The segment's bytes, its checksum computed over `pseudo` (made for the real length).
    pub fn bytes(&self, pseudo: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
        let mut options = self.options.clone();
        if self.data_offset.is_none() {
            options.resize(options.len().div_ceil(4) * 4, 0);
        }
        let header_len = 20 + options.len();
        let offset = self.data_offset.unwrap_or((header_len / 4).min(15) as u8);
        let mut s = Vec::with_capacity(header_len + self.payload.len());
        s.extend_from_slice(&self.src_port.to_be_bytes());
        s.extend_from_slice(&self.dst_port.to_be_bytes());
        s.extend_from_slice(&self.seq.to_be_bytes());
        s.extend_from_slice(&self.ack.to_be_bytes());
        s.push((offset << 4) | ((self.flags >> 8) & 1) as u8);
        s.push(self.flags as u8);
        s.extend_from_slice(&self.window.to_be_bytes());
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(&self.urgent.to_be_bytes());
        s.extend_from_slice(&options);
        s.extend_from_slice(&self.payload);
        let mut sum = checksum(&[&pseudo(s.len()), &s]);
        if self.bad_checksum {
            sum ^= 0x3333;
        }
        s[16..18].copy_from_slice(&sum.to_be_bytes());
        s
    }
}

/// An ICMP (v4) or ICMPv6 message: type, code, 4 bytes of rest-of-header, body; the checksum
/// covers `pseudo` (empty for ICMPv4).
pub fn icmp(kind: u8, code: u8, rest: [u8; 4], body: &[u8], pseudo: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let sum = checksum(&[pseudo, &m]);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

/// Recompute the IPv4 header and TCP checksums of an Ethernet frame after a mutation, as far
/// as its (possibly mangled) lengths allow, so that the mutation reaches TCP instead of
/// dying at a checksum. Frames it cannot make sense of are left alone.
pub fn refresh_checksums(frame: &mut [u8]) {
    if frame.len() < 14 {
        return;
    }
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let ip = &mut frame[14..];
    match ethertype {
        ETH_IPV4 if ip.len() >= 20 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ihl < 20 || ihl > ip.len() {
                return;
            }
            ip[10..12].copy_from_slice(&[0, 0]);
            let sum = checksum(&[&ip[..ihl]]);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
            if ip[9] == TCP && total >= ihl + 20 {
                let (src, dst) = (ip[12..16].try_into(), ip[16..20].try_into());
                let (Ok(src), Ok(dst)) = (src, dst) else {
                    return;
                };
                let seg = &mut ip[ihl..total];
                tcp_checksum(seg, &pseudo_v4(src, dst, TCP, seg.len()));
            }
        }
        ETH_IPV6 if ip.len() >= 60 && ip[6] == TCP => {
            let len = usize::from(u16::from_be_bytes([ip[4], ip[5]])).min(ip.len() - 40);
            let (src, dst) = (ip[8..24].try_into(), ip[24..40].try_into());
            let (Ok(src), Ok(dst)) = (src, dst) else {
                return;
            };
            if len >= 20 {
                let seg = &mut ip[40..40 + len];
                tcp_checksum(seg, &pseudo_v6(src, dst, TCP, seg.len()));
            }
        }
        _ => {}
    }
}

fn tcp_checksum(seg: &mut [u8], pseudo: &[u8]) {
    seg[16..18].copy_from_slice(&[0, 0]);
    let sum = checksum(&[pseudo, seg]);
    seg[16..18].copy_from_slice(&sum.to_be_bytes());
}

/// The TCP header fields of a frame the engines exchanged (no IPv6 extension headers: the
/// engines send none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Source address and port.
    pub src: (std::net::IpAddr, u16),
    /// Destination address and port.
    pub dst: (std::net::IpAddr, u16),
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags (9 bits).
    pub flags: u16,
    /// Sequence space the segment occupies (payload, SYN, FIN).
    pub len: u32,
}

/// Parse the TCP segment of a frame, if it is a plain IPv4 or IPv6 TCP frame.
pub fn parse_tcp(frame: &[u8]) -> Option<Seen> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(14..)?;
    let (src, dst, seg): (IpAddr, IpAddr, &[u8]) = match ethertype {
        ETH_IPV4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            if *ip.get(9)? != TCP || ihl < 20 {
                return None;
            }
            let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            (
                Ipv4Addr::from(src).into(),
                Ipv4Addr::from(dst).into(),
                ip.get(ihl..total.min(ip.len()))?,
            )
        }
        ETH_IPV6 => {
            if *ip.get(6)? != TCP {
                return None;
            }
            let len = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (
                Ipv6Addr::from(src).into(),
                Ipv6Addr::from(dst).into(),
                ip.get(40..(40 + len).min(ip.len()))?,
            )
        }
        _ => return None,
    };
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(seg.get(at..at + 4)?.try_into().ok()?))
    };
    let offset = usize::from(seg.get(12)? >> 4) * 4;
    let flags = (u16::from(seg.get(12)? & 1) << 8) | u16::from(*seg.get(13)?);
    let payload = seg.len().saturating_sub(offset) as u32;
    let len = payload + u32::from(flags & flags::SYN != 0) + u32::from(flags & flags::FIN != 0);
    Some(Seen {
        src: (src, u16::from_be_bytes([seg[0], seg[1]])),
        dst: (dst, u16::from_be_bytes([seg[2], seg[3]])),
        seq: word(4)?,
        ack: word(8)?,
        flags,
        len,
    })
}
