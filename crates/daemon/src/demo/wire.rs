//! What went over the link, read back from the daemon's own pcap: the TCP segments of each
//! connection, by direction, enough for the demo's table.

use std::path::Path;
use std::time::Duration;

/// Which way a segment went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Sent by lingerstack.
    FromStack,
    /// Sent to lingerstack (by the kernel or the client engine).
    ToStack,
}

/// The flags the demo looks at.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
}

/// One TCP segment.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Time since the first frame of the capture.
    pub offset: Duration,
    /// Which way.
    pub dir: Dir,
    /// The port of the other side (the client's), which names the connection.
    pub client_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Payload bytes.
    pub len: usize,
    /// FIN and RST.
    pub flags: Flags,
}

/// The segments of a capture (or of one connection of it).
#[derive(Clone, Debug, Default)]
pub struct Trace {
    segments: Vec<Segment>,
}

impl Trace {
    /// The segments of the connection whose client side uses `port`.
    pub fn conn(&self, port: u16) -> Trace {
        Trace {
            segments: self
                .segments
                .iter()
                .filter(|s| s.client_port == port)
                .cloned()
                .collect(),
        }
    }

    /// The segments one way.
    pub fn dir(&self, dir: Dir) -> Vec<&Segment> {
        self.segments.iter().filter(|s| s.dir == dir).collect()
    }

    /// Payload bytes one way, each byte of the sequence space counted once (retransmissions
    /// and zero-window probes, which resend a byte, are not counted again).
    pub fn stream_len(&self, dir: Dir) -> usize {
        let mut ranges: Vec<(u64, u64)> = self
            .dir(dir)
            .iter()
            .filter(|s| s.len > 0)
            .map(|s| (u64::from(s.seq), u64::from(s.seq) + s.len as u64))
            .collect();
        ranges.sort_unstable();
        let (mut total, mut covered_to) = (0u64, 0u64);
        for (start, end) in ranges {
            let start = start.max(covered_to);
            if end > start {
                total += end - start;
                covered_to = end;
            }
        }
        total as usize
    }

    /// True if a RST went this way.
    pub fn has_rst(&self, dir: Dir) -> bool {
        self.dir(dir).iter().any(|s| s.flags.rst)
    }

    /// True if a FIN went this way.
    pub fn has_fin(&self, dir: Dir) -> bool {
        self.dir(dir).iter().any(|s| s.flags.fin)
    }
}

/// Read a classic pcap (little-endian, Ethernet) as the daemon writes it: nanosecond
/// timestamps (the engine's writer) or microsecond ones (older files); frames from `own_mac`
/// count as sent by lingerstack. Frames that are not IPv4 TCP are skipped.
pub fn read_pcap(path: &Path, own_mac: [u8; 6]) -> Result<Trace, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let u32_at = |at: usize| -> u32 {
        bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    // Nanoseconds per unit of the timestamp's fraction field, by the file's magic number.
    let fraction_ns = match u32_at(0) {
        _ if bytes.len() < 24 => 0,
        0xa1b2_3c4d => 1,
        0xa1b2_c3d4 => 1000,
        _ => 0,
    };
    if fraction_ns == 0 {
        return Err(format!(
            "{}: not a little-endian classic pcap",
            path.display()
        ));
    }
    let mut segments = Vec::new();
    let mut first = None;
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let nanos = u32_at(at + 4).saturating_mul(fraction_ns).min(999_999_999);
        let time = Duration::new(u64::from(u32_at(at)), nanos);
        let len = u32_at(at + 8) as usize;
        let Some(frame) = bytes.get(at + 16..at + 16 + len) else {
            break;
        };
        at += 16 + len;
        let start = *first.get_or_insert(time);
        let dir = if frame.get(6..12) == Some(&own_mac[..]) {
            Dir::FromStack
        } else {
            Dir::ToStack
        };
        if let Some(s) = parse_tcp(frame, dir, time.saturating_sub(start)) {
            segments.push(s);
        }
    }
    Ok(Trace { segments })
}

/// The TCP segment in an Ethernet frame carrying IPv4, if it is one.
fn parse_tcp(frame: &[u8], dir: Dir, offset: Duration) -> Option<Segment> {
    let be16 = |b: &[u8], at: usize| b.get(at..at + 2).map(|x| u16::from_be_bytes([x[0], x[1]]));
    if be16(frame, 12)? != 0x0800 {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if *ip.get(9)? != 6 || ihl < 20 {
        return None;
    }
    let total = usize::from(be16(ip, 2)?).min(ip.len());
    let tcp = ip.get(ihl..total)?;
    let data_offset = usize::from(tcp.get(12)? >> 4) * 4;
    let flags = *tcp.get(13)?;
    let (src, dst) = (be16(tcp, 0)?, be16(tcp, 2)?);
    Some(Segment {
        offset,
        dir,
        client_port: if dir == Dir::FromStack { dst } else { src },
        seq: u32::from_be_bytes(tcp.get(4..8)?.try_into().ok()?),
        len: tcp.len().saturating_sub(data_offset),
        flags: Flags {
            fin: flags & 0x01 != 0,
            rst: flags & 0x04 != 0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_frame_is_parsed_by_direction() {
        let mut frame = vec![0u8; 14 + 20 + 20 + 3];
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&(20u16 + 20 + 3).to_be_bytes());
        frame[23] = 6;
        let tcp = 34;
        frame[tcp..tcp + 2].copy_from_slice(&7u16.to_be_bytes());
        frame[tcp + 2..tcp + 4].copy_from_slice(&40000u16.to_be_bytes());
        frame[tcp + 4..tcp + 8].copy_from_slice(&1000u32.to_be_bytes());
        frame[tcp + 12] = 5 << 4;
        frame[tcp + 13] = 0x11; // FIN, ACK
        let s = parse_tcp(&frame, Dir::FromStack, Duration::ZERO).unwrap();
        assert_eq!((s.client_port, s.seq, s.len), (40000, 1000, 3));
        assert!(s.flags.fin && !s.flags.rst);
        let t = Trace {
            segments: vec![s.clone(), s],
        };
        assert_eq!(t.conn(40000).stream_len(Dir::FromStack), 3);
        assert!(t.has_fin(Dir::FromStack) && !t.has_rst(Dir::FromStack));
    }
}
