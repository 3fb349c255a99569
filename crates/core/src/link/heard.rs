//! Which peers the stack heard from: keep-alive needs to know whether a probe was answered,
//! and smoltcp does not tell (a pure ACK changes nothing a socket shows). The device notes the
//! TCP peer of each frame it delivers, while the engine asks it to.

use std::collections::HashSet;

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
};

/// One connection as seen from an incoming segment: the peer's address and port, our port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerKey {
    /// The peer's address.
    pub addr: IpAddress,
    /// The peer's port.
    pub port: u16,
    /// Our port.
    pub local_port: u16,
}

/// The peers heard from since the engine last looked.
#[derive(Debug, Default)]
pub(crate) struct Heard {
    on: bool,
    peers: HashSet<PeerKey>,
    /// The last peer noted: a burst from one peer costs one hash insert, not one per frame.
    last: Option<PeerKey>,
}

impl Heard {
    /// Start or stop noting peers (off costs nothing per frame).
    pub(crate) fn set_on(&mut self, on: bool) {
        self.on = on;
        if !on {
            self.clear();
        }
    }

    /// Note the TCP peer of a delivered frame, if it is a TCP segment.
    pub(crate) fn note(&mut self, frame: &[u8]) {
        if self.on
            && let Some(key) = tcp_peer(frame)
            && self.last != Some(key)
        {
            self.peers.insert(key);
            self.last = Some(key);
        }
    }

    /// The peers noted so far.
    pub(crate) fn peers(&self) -> &HashSet<PeerKey> {
        &self.peers
    }

    /// Forget the peers noted so far.
    pub(crate) fn clear(&mut self) {
        self.peers.clear();
        self.last = None;
    }
}

/// The peer of an Ethernet frame carrying TCP over IPv4 or IPv6 (without extension headers);
/// None for anything else or anything malformed. Checksums are smoltcp's business.
fn tcp_peer(frame: &[u8]) -> Option<PeerKey> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let (addr, payload) = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != IpProtocol::Tcp {
                return None;
            }
            (IpAddress::Ipv4(ip.src_addr()), ip.payload())
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != IpProtocol::Tcp {
                return None;
            }
            (IpAddress::Ipv6(ip.src_addr()), ip.payload())
        }
        _ => return None,
    };
    let tcp = TcpPacket::new_checked(payload).ok()?;
    Some(PeerKey {
        addr,
        port: tcp.src_port(),
        local_port: tcp.dst_port(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_tcp_over_ipv4_and_nothing_else() {
        // Ethernet + IPv4 (20 bytes, protocol 6) + TCP (20 bytes) from 10.0.0.1:4000 to :80.
        let mut frame = vec![0u8; 14 + 20 + 20];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut frame[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let tcp = &mut frame[34..54];
        tcp[0..2].copy_from_slice(&4000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 5 << 4;
        let mut heard = Heard::default();
        heard.note(&frame);
        assert!(heard.peers().is_empty(), "off: nothing noted");
        heard.set_on(true);
        heard.note(&frame);
        heard.note(&frame[..30]);
        let key = PeerKey {
            addr: IpAddress::v4(10, 0, 0, 1),
            port: 4000,
            local_port: 80,
        };
        assert_eq!(heard.peers().iter().collect::<Vec<_>>(), vec![&key]);
        heard.clear();
        assert!(heard.peers().is_empty());
        heard.note(&frame);
        assert_eq!(heard.peers().len(), 1, "noted again after a clear");
    }
}
