//! The virtio-net header: what a link with offloads puts in front of every frame.
//!
//! A TAP opened with `IFF_VNET_HDR` (and a virtual machine's NIC) moves each frame behind a
//! small header that says two things the frame alone cannot:
//!
//! - **checksum state**: `NEEDS_CSUM` means the TCP/UDP checksum field holds only the sum of
//!   the pseudo-header, and whoever takes the frame finishes it (a sum from `csum_start` to
//!   the end, stored at `csum_start + csum_offset`); `DATA_VALID` means the sender already
//!   verified it;
//! - **segmentation**: `gso_type`/`gso_size` mark a TCP *super-segment* (up to 64 KiB) that
//!   the kernel cuts into segments of `gso_size` payload bytes only where a real wire needs
//!   it; for local delivery its TCP takes the aggregate whole.
//!
//! This module reads and writes that header (`struct virtio_net_hdr_v1`, 12 bytes,
//! little-endian as on every virtio 1.0 device) and does the checksum arithmetic around it.

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
    checksum,
};

/// Length of the header the links with offloads carry (`struct virtio_net_hdr_v1`).
pub const VNET_HDR_LEN: usize = 12;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum is partial (pseudo-header only).
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was verified by the sender.
pub const F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;

/// Largest IP packet a super-segment may be (the IP length fields are 16 bits).
pub const MAX_IP_PACKET: usize = 65535;
/// Ethernet header length.
const ETHERNET_HEADER: usize = 14;
/// Offset of the checksum field in a TCP header.
const TCP_CHECKSUM_AT: u16 = 16;

/// One virtio-net header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHeader {
    /// `F_NEEDS_CSUM`, `F_DATA_VALID`.
    pub flags: u8,
    /// `GSO_NONE`, `GSO_TCPV4`, `GSO_TCPV6` (others are not produced, and read as opaque).
    pub gso_type: u8,
    /// Length of the headers (Ethernet, IP, TCP) copied into every segment.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where the checksummed part starts, from the start of the Ethernet frame.
    pub csum_start: u16,
    /// Where the checksum field is, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHeader {
    /// Read a header from the first [`VNET_HDR_LEN`] bytes of `bytes` (zeros if shorter).
    pub fn parse(bytes: &[u8]) -> VnetHeader {
        let Some(b) = bytes.get(..VNET_HDR_LEN) else {
            return VnetHeader::default();
        };
        let word = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        VnetHeader {
            flags: b[0],
            gso_type: b[1],
            hdr_len: word(2),
            gso_size: word(4),
            csum_start: word(6),
            csum_offset: word(8),
        }
    }

    /// Write the header into the first [`VNET_HDR_LEN`] bytes of `out` (`num_buffers` 0).
    pub fn write(&self, out: &mut [u8]) {
        let Some(b) = out.get_mut(..VNET_HDR_LEN) else {
            return;
        };
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b[10..12].fill(0);
    }
}

/// Where a TCP or UDP segment sits in an Ethernet frame.
struct Transport {
    /// IP version 4?
    v4: bool,
    protocol: IpProtocol,
    /// Offset of the transport header in the frame.
    at: usize,
    /// End of the IP packet in the frame (trailing padding excluded).
    end: usize,
    /// The pseudo-header sum (addresses, protocol, transport length), not complemented.
    pseudo: u16,
}

/// Find the TCP or UDP segment of an unfragmented IPv4 or IPv6 (no extension header) frame.
fn transport(frame: &[u8]) -> Option<Transport> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip_at = ETHERNET_HEADER;
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            if ip.more_frags() || ip.frag_offset() != 0 {
                return None;
            }
            let protocol = ip.next_header();
            let at = ip_at + usize::from(ip.header_len());
            let end = ip_at + usize::from(ip.total_len());
            let len = end.checked_sub(at)? as u32;
            let pseudo = checksum::pseudo_header_v4(&ip.src_addr(), &ip.dst_addr(), protocol, len);
            Some(Transport {
                v4: true,
                protocol,
                at,
                end,
                pseudo,
            })
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            let protocol = ip.next_header();
            let at = ip_at + 40;
            let len = usize::from(ip.payload_len());
            let pseudo =
                checksum::pseudo_header_v6(&ip.src_addr(), &ip.dst_addr(), protocol, len as u32);
            Some(Transport {
                v4: false,
                protocol,
                at,
                end: at + len,
                pseudo,
            })
        }
        _ => None,
    }
    .filter(|t| matches!(t.protocol, IpProtocol::Tcp | IpProtocol::Udp) && t.end <= frame.len())
}

/// Finish a partial checksum (`NEEDS_CSUM`) in place: the ones' complement sum of everything
/// from `start` to the end of the IP packet (the field holds the pseudo-header sum already),
/// complemented, stored at `start + offset`. False if the offsets do not fit the frame.
pub fn complete_checksum(frame: &mut [u8], start: u16, offset: u16) -> bool {
    let (start, field) = (usize::from(start), usize::from(start) + usize::from(offset));
    let end = transport(frame).map_or(frame.len(), |t| t.end);
    if field + 2 > end || start >= end {
        return false;
    }
    let sum = checksum::data(&frame[start..end]);
    frame[field..field + 2].copy_from_slice(&(!sum).to_be_bytes());
    true
}

/// Does the TCP or UDP checksum of `frame` hold? True for anything else (smoltcp checks the
/// IPv4 header itself) and for a UDP datagram without checksum.
pub fn checksum_valid(frame: &[u8]) -> bool {
    let Some(t) = transport(frame) else {
        return true;
    };
    let segment = &frame[t.at..t.end];
    if t.protocol == IpProtocol::Udp {
        let Ok(udp) = UdpPacket::new_checked(segment) else {
            return false;
        };
        if t.v4 && udp.checksum() == 0 {
            return true;
        }
    }
    checksum::combine(&[t.pseudo, checksum::data(segment)]) == 0xffff
}

/// Prepare a TCP segment smoltcp wrote with a zero checksum for the link: write the
/// pseudo-header sum into its checksum field and return the header that says so, with GSO
/// at `gso_size` payload bytes per segment when it carries more than that. Anything that is
/// not TCP (smoltcp computed its checksum) gets a plain header.
pub fn prepare_tx(frame: &mut [u8], gso_size: Option<u16>) -> VnetHeader {
    let Some(t) = transport(frame).filter(|t| t.protocol == IpProtocol::Tcp) else {
        return VnetHeader::default();
    };
    let Ok(tcp) = TcpPacket::new_checked(&frame[t.at..t.end]) else {
        return VnetHeader::default();
    };
    let header_end = t.at + usize::from(tcp.header_len());
    let payload = t.end - header_end;
    let field = t.at + usize::from(TCP_CHECKSUM_AT);
    frame[field..field + 2].copy_from_slice(&t.pseudo.to_be_bytes());
    let mut hdr = VnetHeader {
        flags: F_NEEDS_CSUM,
        csum_start: t.at as u16,
        csum_offset: TCP_CHECKSUM_AT,
        ..VnetHeader::default()
    };
    if let Some(size) = gso_size.filter(|&s| s > 0 && payload > usize::from(s)) {
        hdr.gso_type = if t.v4 { GSO_TCPV4 } else { GSO_TCPV6 };
        hdr.gso_size = size;
        hdr.hdr_len = header_end as u16;
    }
    hdr
}

/// The largest payload per segment that keeps a TCP segment of `frame` within `mtu`: the
/// segment size for a super-segment whose own size was not remembered (one a fault layer
/// held). `None` if the frame is not TCP.
pub fn mtu_segment_size(frame: &[u8], mtu: usize) -> Option<u16> {
    let t = transport(frame).filter(|t| t.protocol == IpProtocol::Tcp)?;
    let tcp = TcpPacket::new_checked(&frame[t.at..t.end]).ok()?;
    let headers = t.at - ETHERNET_HEADER + usize::from(tcp.header_len());
    u16::try_from(mtu.checked_sub(headers)?).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use smoltcp::wire::{Ipv4Address, TcpControl, TcpRepr, TcpSeqNumber};

    /// An Ethernet/IPv4/TCP frame with `payload` and a full checksum.
    pub(crate) fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        let (src, dst) = (Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(10, 0, 0, 2));
        let tcp = TcpRepr {
            src_port: 4000,
            dst_port: 80,
            control: TcpControl::Psh,
            seq_number: TcpSeqNumber(7),
            ack_number: Some(TcpSeqNumber(9)),
            window_len: 1000,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        };
        crate::link::test_frame::ipv4_tcp_frame(src, dst, &tcp)
    }

    #[test]
    fn header_round_trips() {
        let hdr = VnetHeader {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut bytes = [0xffu8; VNET_HDR_LEN];
        hdr.write(&mut bytes);
        assert_eq!(VnetHeader::parse(&bytes), hdr);
        assert_eq!(&bytes[10..], &[0, 0], "num_buffers is written as 0");
        assert_eq!(VnetHeader::parse(&bytes[..4]), VnetHeader::default());
    }

    #[test]
    fn a_partial_checksum_completes_to_the_full_one() {
        let payload: Vec<u8> = (0..3001u32).map(|i| (i * 7) as u8).collect();
        let full = tcp_frame(&payload);
        assert!(checksum_valid(&full));
        let mut partial = full.clone();
        let hdr = prepare_tx(&mut partial, Some(1448));
        assert!(
            !checksum_valid(&partial),
            "a partial checksum does not verify"
        );
        assert_eq!((hdr.flags, hdr.gso_type), (F_NEEDS_CSUM, GSO_TCPV4));
        assert_eq!((hdr.csum_start, hdr.csum_offset), (34, 16));
        assert_eq!((hdr.hdr_len, hdr.gso_size), (54, 1448));
        assert!(complete_checksum(
            &mut partial,
            hdr.csum_start,
            hdr.csum_offset
        ));
        assert_eq!(partial, full);
    }

    #[test]
    fn a_segment_within_the_size_is_not_marked_for_segmentation() {
        let mut frame = tcp_frame(&[1; 100]);
        let hdr = prepare_tx(&mut frame, Some(1448));
        assert_eq!(hdr.gso_type, GSO_NONE);
        assert_eq!(hdr.flags, F_NEEDS_CSUM);
        assert_eq!(mtu_segment_size(&frame, 1500), Some(1460));
    }

    #[test]
    fn corruption_and_garbage_are_caught() {
        let mut frame = tcp_frame(&[5; 200]);
        frame[100] ^= 0x10;
        assert!(!checksum_valid(&frame));
        assert!(checksum_valid(&[0u8; 10]), "not TCP/UDP: not ours to judge");
        let mut short = tcp_frame(&[5; 20]);
        assert!(!complete_checksum(&mut short, 60, 16));
    }
}
