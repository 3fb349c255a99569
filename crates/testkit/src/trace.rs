//! Parsed captures: TCP segments and other frames, with assertion helpers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use etherparse::{EtherType, LinkSlice, NetSlice, SlicedPacket, TransportSlice};

/// Direction of a frame on the TAP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    /// Sent by the kernel towards the stack under test.
    ToStack,
    /// Sent by the stack under test, received by the kernel.
    FromStack,
}

impl Dir {
    fn arrow(self) -> &'static str {
        match self {
            Dir::ToStack => "K>S",
            Dir::FromStack => "S>K",
        }
    }
}

/// TCP flags of a segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
    /// PSH.
    pub psh: bool,
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tcpdump style: [S.], [P.], [F.], [R], [.]
        let mut s = String::new();
        for (on, c) in [
            (self.syn, 'S'),
            (self.fin, 'F'),
            (self.rst, 'R'),
            (self.psh, 'P'),
            (self.ack, '.'),
        ] {
            if on {
                s.push(c);
            }
        }
        write!(f, "[{s}]")
    }
}

/// One captured TCP segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Capture time (wall clock, CLOCK_REALTIME).
    pub time: SystemTime,
    /// Time since the capture started.
    pub offset: Duration,
    /// Direction on the TAP.
    pub dir: Dir,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when `flags.ack`).
    pub ack: u32,
    /// TCP flags.
    pub flags: Flags,
    /// Raw (unscaled) window field.
    pub window: u16,
    /// TCP payload.
    pub payload: Vec<u8>,
}

impl Segment {
    /// Sequence space the segment occupies (payload plus SYN and FIN).
    pub fn seq_len(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.flags.syn) + u32::from(self.flags.fin)
    }

    /// True if either port equals `port`.
    pub fn has_port(&self, port: u16) -> bool {
        self.src.port() == port || self.dst.port() == port
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>10.6} {} {} > {} {} seq {} ack {} win {} len {}",
            self.offset.as_secs_f64(),
            self.dir.arrow(),
            self.src,
            self.dst,
            self.flags,
            self.seq,
            self.ack,
            self.window,
            self.payload.len()
        )
    }
}

/// Kind of a non-TCP frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// ARP request.
    ArpRequest,
    /// ARP reply (or another ARP operation).
    ArpOther,
    /// ICMPv6 neighbour discovery (router/neighbour solicitation/advertisement, redirect).
    Ndp,
    /// Anything else (ICMP, UDP, MLD, unparsable...).
    Other,
}

/// A captured frame that is not TCP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherFrame {
    /// Capture time (wall clock).
    pub time: SystemTime,
    /// Time since the capture started.
    pub offset: Duration,
    /// Direction on the TAP.
    pub dir: Dir,
    /// What it is.
    pub kind: FrameKind,
    /// The whole Ethernet frame.
    pub data: Vec<u8>,
}

/// Result of parsing one Ethernet frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A TCP segment over IPv4 or IPv6.
    Tcp(Segment),
    /// Anything else.
    Other(OtherFrame),
}

/// The source and destination addresses of an IP packet, if `p` is one.
pub(crate) fn ip_addrs(p: &SlicedPacket) -> Option<(IpAddr, IpAddr)> {
    match &p.net {
        Some(NetSlice::Ipv4(v4)) => Some((
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
        )),
        Some(NetSlice::Ipv6(v6)) => Some((
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        )),
        None => None,
    }
}

/// Parses an Ethernet frame captured at `time` (`offset` after capture start) into a TCP
/// [`Segment`] or an [`OtherFrame`].
pub fn parse_frame(data: &[u8], dir: Dir, time: SystemTime, offset: Duration) -> Parsed {
    let other = |kind| {
        Parsed::Other(OtherFrame {
            time,
            offset,
            dir,
            kind,
            data: data.to_vec(),
        })
    };
    let Ok(p) = SlicedPacket::from_ethernet(data) else {
        return other(FrameKind::Other);
    };
    if let Some(LinkSlice::Ethernet2(eth)) = &p.link
        && eth.ether_type() == EtherType::ARP
    {
        // ARP operation is at bytes 6..8 of the ARP payload.
        let op = data.get(20..22).map(|b| u16::from_be_bytes([b[0], b[1]]));
        return other(if op == Some(1) {
            FrameKind::ArpRequest
        } else {
            FrameKind::ArpOther
        });
    }
    let Some((src_ip, dst_ip)) = ip_addrs(&p) else {
        return other(FrameKind::Other);
    };
    match &p.transport {
        Some(TransportSlice::Tcp(tcp)) => Parsed::Tcp(Segment {
            time,
            offset,
            dir,
            src: SocketAddr::new(src_ip, tcp.source_port()),
            dst: SocketAddr::new(dst_ip, tcp.destination_port()),
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
            flags: Flags {
                syn: tcp.syn(),
                ack: tcp.ack(),
                fin: tcp.fin(),
                rst: tcp.rst(),
                psh: tcp.psh(),
            },
            window: tcp.window_size(),
            payload: tcp.payload().to_vec(),
        }),
        Some(TransportSlice::Icmpv6(icmp)) if (133..=137).contains(&icmp.type_u8()) => {
            other(FrameKind::Ndp)
        }
        _ => other(FrameKind::Other),
    }
}

/// A parsed capture: TCP segments in capture order plus the other frames.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The pcap file holding the raw frames (named in assertion messages).
    pub pcap_path: PathBuf,
    /// Frames the capture socket dropped (PACKET_STATISTICS tp_drops).
    pub drops: u32,
    /// TCP segments, in capture order.
    pub segments: Vec<Segment>,
    /// Non-TCP frames (ARP, NDP, ...), in capture order.
    pub others: Vec<OtherFrame>,
}

impl Trace {
    /// Builds a trace from raw frames `(time, dir, ethernet bytes)` captured from `start`.
    pub fn from_frames<'a>(
        pcap_path: PathBuf,
        drops: u32,
        start: SystemTime,
        frames: impl IntoIterator<Item = (SystemTime, Dir, &'a [u8])>,
    ) -> Trace {
        let mut trace = Trace {
            pcap_path,
            drops,
            ..Trace::default()
        };
        for (time, dir, data) in frames {
            let offset = time.duration_since(start).unwrap_or_default();
            match parse_frame(data, dir, time, offset) {
                Parsed::Tcp(s) => trace.segments.push(s),
                Parsed::Other(o) => trace.others.push(o),
            }
        }
        trace
    }

    /// Segments sent by the stack.
    pub fn from_stack(&self) -> Vec<&Segment> {
        self.dir(Dir::FromStack)
    }

    /// Segments sent by the kernel to the stack.
    pub fn to_stack(&self) -> Vec<&Segment> {
        self.dir(Dir::ToStack)
    }

    /// Segments in direction `dir`.
    pub fn dir(&self, dir: Dir) -> Vec<&Segment> {
        self.segments.iter().filter(|s| s.dir == dir).collect()
    }

    /// A trace with only the segments where either port is `port` (other frames kept).
    pub fn conn(&self, port: u16) -> Trace {
        Trace {
            pcap_path: self.pcap_path.clone(),
            drops: self.drops,
            segments: self
                .segments
                .iter()
                .filter(|s| s.has_port(port))
                .cloned()
                .collect(),
            others: self.others.clone(),
        }
    }

    /// True if a segment with RST was sent in direction `dir`.
    pub fn has_rst(&self, dir: Dir) -> bool {
        self.segments.iter().any(|s| s.dir == dir && s.flags.rst)
    }

    /// True if a segment with FIN was sent in direction `dir`.
    pub fn has_fin(&self, dir: Dir) -> bool {
        self.segments.iter().any(|s| s.dir == dir && s.flags.fin)
    }

    /// Number of ARP frames (both directions).
    pub fn arp_count(&self) -> usize {
        self.others
            .iter()
            .filter(|o| matches!(o.kind, FrameKind::ArpRequest | FrameKind::ArpOther))
            .count()
    }

    /// Number of NDP frames (both directions).
    pub fn ndp_count(&self) -> usize {
        self.others
            .iter()
            .filter(|o| o.kind == FrameKind::Ndp)
            .count()
    }

    /// Stream length sent in direction `dir`: highest sequence number reached by payload,
    /// relative to the ISN (retransmissions count once). The trace must hold one connection
    /// in that direction (filter with [`Trace::conn`]).
    pub fn payload_bytes(&self, dir: Dir) -> usize {
        let (base, segs) = self.one_stream(dir);
        segs.iter()
            .filter(|s| !s.payload.is_empty())
            .map(|s| rel(base, s.seq, s.flags.syn) + s.payload.len() as i64)
            .max()
            .unwrap_or(0)
            .max(0) as usize
    }

    /// In-order payload sent in direction `dir` for one connection, with retransmissions
    /// de-duplicated (overlaps are not compared). Stops at the first hole.
    pub fn stream(&self, dir: Dir) -> Vec<u8> {
        let (base, segs) = self.one_stream(dir);
        // Offset -> longest payload starting there.
        let mut pieces: BTreeMap<i64, &[u8]> = BTreeMap::new();
        for s in &segs {
            if !s.payload.is_empty() {
                let piece = pieces.entry(rel(base, s.seq, s.flags.syn)).or_default();
                if s.payload.len() > piece.len() {
                    *piece = &s.payload;
                }
            }
        }
        let mut out = Vec::new();
        for (off, bytes) in pieces {
            let have = out.len() as i64;
            let end = off + bytes.len() as i64;
            if off > have {
                break; // hole
            }
            if end > have {
                out.extend_from_slice(&bytes[(have - off) as usize..]);
            }
        }
        out
    }

    /// Panics with `"<msg> (capture: <pcap path>)"` unless `cond` holds.
    #[track_caller]
    pub fn assert(&self, cond: bool, msg: &str) {
        if !cond {
            self.fail(msg);
        }
    }

    /// Panics with `"<msg> (capture: <pcap path>)"` followed by the segment summary.
    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg} (capture: {})\n{}",
            self.pcap_path.display(),
            self.summary()
        );
    }

    /// Panics (naming the pcap) if the capture socket dropped frames.
    #[track_caller]
    pub fn assert_no_drops(&self) {
        self.assert(
            self.drops == 0,
            &format!("capture dropped {} frames", self.drops),
        );
    }

    /// One line per TCP segment, tcpdump style, plus a count of other frames.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push_str(&s.to_string());
            out.push('\n');
        }
        out.push_str(&format!(
            "({} segments, {} ARP, {} NDP, {} other frames, {} dropped)",
            self.segments.len(),
            self.arp_count(),
            self.ndp_count(),
            self.others.len() - self.arp_count() - self.ndp_count(),
            self.drops
        ));
        out
    }

    /// Segments in `dir` of the single connection in that direction, and its stream base
    /// (ISN + 1 from the SYN, else the lowest sequence number seen).
    fn one_stream(&self, dir: Dir) -> (u32, Vec<&Segment>) {
        let segs = self.dir(dir);
        let tuples: BTreeSet<_> = segs.iter().map(|s| (s.src, s.dst)).collect();
        if tuples.len() > 1 {
            self.fail(&format!(
                "{} connections in direction {dir:?}; filter with conn(port) first",
                tuples.len()
            ));
        }
        let base = match segs.iter().rev().find(|s| s.flags.syn) {
            Some(syn) => syn.seq.wrapping_add(1),
            None => match segs.first() {
                Some(first) => segs
                    .iter()
                    .map(|s| s.seq)
                    .min_by_key(|&seq| seq.wrapping_sub(first.seq) as i32)
                    .unwrap_or(first.seq),
                None => 0,
            },
        };
        (base, segs)
    }
}

/// Offset of a segment's first payload byte from `base` (a SYN occupies its own `seq`).
fn rel(base: u32, seq: u32, syn: bool) -> i64 {
    let seq = if syn { seq.wrapping_add(1) } else { seq };
    i64::from(seq.wrapping_sub(base) as i32)
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const STACK: [u8; 4] = [10, 200, 0, 2];
    const KERNEL: [u8; 4] = [10, 200, 0, 1];

    #[allow(clippy::too_many_arguments)]
    fn frame(
        from_stack: bool,
        seq: u32,
        ack: u32,
        syn: bool,
        fin: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        let (src, dst, sp, dp) = if from_stack {
            (STACK, KERNEL, 40000, 80)
        } else {
            (KERNEL, STACK, 80, 40000)
        };
        let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4(src, dst, 64)
            .tcp(sp, dp, seq, 1000);
        if syn {
            b = b.syn();
        }
        if fin {
            b = b.fin();
        }
        if ack != 0 {
            b = b.ack(ack);
        }
        if !payload.is_empty() {
            b = b.psh();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn trace(frames: &[(Dir, Vec<u8>)]) -> Trace {
        let start = SystemTime::UNIX_EPOCH;
        Trace::from_frames(
            PathBuf::from("/tmp/x.pcap"),
            0,
            start,
            frames
                .iter()
                .enumerate()
                .map(|(i, (d, f))| (start + Duration::from_millis(i as u64), *d, f.as_slice())),
        )
    }

    #[test]
    fn parses_ipv4_tcp_frame() {
        let data = frame(true, 1234, 5678, false, false, b"hello");
        let t = SystemTime::now();
        let Parsed::Tcp(s) = parse_frame(&data, Dir::FromStack, t, Duration::from_millis(3)) else {
            panic!("not tcp");
        };
        assert_eq!(s.src, "10.200.0.2:40000".parse().unwrap());
        assert_eq!(s.dst, "10.200.0.1:80".parse().unwrap());
        assert_eq!((s.seq, s.ack, s.window), (1234, 5678, 1000));
        assert_eq!(
            s.flags,
            Flags {
                ack: true,
                psh: true,
                ..Flags::default()
            }
        );
        assert_eq!(s.payload, b"hello");
        assert_eq!(s.time, t);
        let line = s.to_string();
        assert!(
            line.contains("S>K") && line.contains("[P.]") && line.contains("len 5"),
            "{line}"
        );
    }

    #[test]
    fn parses_ipv6_tcp_and_classifies_others() {
        let mut data = Vec::new();
        let src: [u8; 16] = "fd00:200::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let dst: [u8; 16] = "fd00:200::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv6(src, dst, 64)
            .tcp(1, 2, 3, 4)
            .rst()
            .write(&mut data, &[])
            .unwrap();
        let now = SystemTime::now();
        let Parsed::Tcp(s) = parse_frame(&data, Dir::ToStack, now, Duration::ZERO) else {
            panic!("not tcp");
        };
        assert!(s.flags.rst && s.src.is_ipv6());

        let mut ns = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [0x33, 0x33, 0xff, 0, 0, 2])
            .ipv6(dst, src, 255)
            .icmpv6(etherparse::Icmpv6Type::Unknown {
                type_u8: 135,
                code_u8: 0,
                bytes5to8: [0; 4],
            })
            .write(&mut ns, &[0; 16])
            .unwrap();
        let Parsed::Other(o) = parse_frame(&ns, Dir::ToStack, now, Duration::ZERO) else {
            panic!("tcp?");
        };
        assert_eq!(o.kind, FrameKind::Ndp);

        let mut arp = vec![0xff; 6];
        arp.extend([2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend([0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend([
            2, 0, 0, 0, 0, 1, 10, 200, 0, 1, 0, 0, 0, 0, 0, 0, 10, 200, 0, 2,
        ]);
        let Parsed::Other(o) = parse_frame(&arp, Dir::ToStack, now, Duration::ZERO) else {
            panic!("tcp?");
        };
        assert_eq!(o.kind, FrameKind::ArpRequest);
    }

    #[test]
    fn stream_reassembly_dedups_retransmissions() {
        let isn = u32::MAX - 2; // exercise wrap-around
        let d = isn.wrapping_add(1);
        let t = trace(&[
            (Dir::FromStack, frame(true, isn, 0, true, false, b"")),
            (Dir::ToStack, frame(false, 77, d, true, false, b"")),
            (Dir::FromStack, frame(true, d, 78, false, false, b"hello ")),
            (
                Dir::FromStack,
                frame(true, d.wrapping_add(6), 78, false, false, b"wor"),
            ),
            // retransmission of the first segment, then an overlapping one
            (Dir::FromStack, frame(true, d, 78, false, false, b"hello ")),
            (
                Dir::FromStack,
                frame(true, d.wrapping_add(8), 78, false, false, b"rld"),
            ),
            (
                Dir::FromStack,
                frame(true, d.wrapping_add(11), 78, false, true, b""),
            ),
            (
                Dir::ToStack,
                frame(false, 78, d.wrapping_add(12), false, false, b""),
            ),
        ]);
        assert_eq!(t.stream(Dir::FromStack), b"hello world");
        assert_eq!(t.payload_bytes(Dir::FromStack), 11);
        assert_eq!(t.payload_bytes(Dir::ToStack), 0);
        assert!(t.stream(Dir::ToStack).is_empty());
        assert!(t.has_fin(Dir::FromStack) && !t.has_fin(Dir::ToStack));
        assert!(!t.has_rst(Dir::FromStack));
        assert_eq!(t.from_stack().len(), 6);
        assert_eq!(t.conn(80).segments.len(), 8);
        assert_eq!(t.conn(81).segments.len(), 0);
        assert_eq!(t.summary().lines().count(), 9);
    }

    #[test]
    fn stream_stops_at_hole_and_works_without_syn() {
        let t = trace(&[
            (Dir::FromStack, frame(true, 100, 1, false, false, b"ab")),
            (Dir::FromStack, frame(true, 106, 1, false, false, b"gh")),
            (Dir::FromStack, frame(true, 102, 1, false, false, b"cd")),
        ]);
        assert_eq!(t.stream(Dir::FromStack), b"abcd");
        assert_eq!(t.payload_bytes(Dir::FromStack), 8);
    }

    #[test]
    fn assert_names_the_capture() {
        let t = trace(&[]);
        let err = std::panic::catch_unwind(|| t.assert(false, "boom")).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.starts_with("boom (capture: /tmp/x.pcap)"), "{msg}");
    }
}
