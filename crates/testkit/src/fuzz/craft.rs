//! The frames the fuzzer makes: TCP aimed at live connections (sequence numbers near the
//! wire's), listeners and closed ports, with any flags, data offsets and option lengths; odd
//! IPv4 headers and fragments; IPv6 extension-header chains; ARP and NDP with bad fields and
//! option lengths; ICMP errors quoting live connections; UDP; junk of any length. And the
//! mutations of the peer's own segments on their way to the target.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Rng;
use super::frames::{BROADCAST, Flow, NOBODY_V4, P_MAC, P_V4, P_V6, T_MAC, T_PORTS, T_V4, T_V6};
use super::wire::{self, Arp, Ipv4, Tcp, flags};

/// A frame made to hurt T.
pub(super) fn crafted(flows: &[Flow], rng: &mut Rng) -> Vec<u8> {
    let frame = match rng.below(100) {
        0..45 => tcp_frame(flows, rng),
        45..55 => ipv4_oddity(rng),
        55..67 => ipv6_chain(rng),
        67..75 => arp(rng),
        75..85 => ndp(rng),
        85..92 => icmp_error(flows, rng),
        92..95 => udp(rng),
        _ => junk(rng),
    };
    truncate_sometimes(frame, rng)
}

/// A TCP segment to a live connection (sequence numbers near the wire's), a listener, or
/// a closed port, over IPv4 or IPv6.
fn tcp_frame(flows: &[Flow], rng: &mut Rng) -> Vec<u8> {
    let target = if !flows.is_empty() && rng.chance(65) {
        let f = flows[rng.below(flows.len())];
        Some(f)
    } else {
        None
    };
    let (src, dst, seq, ack) = match target {
        Some(f) => (
            f.p,
            f.t,
            near(f.p_next, rng),
            near(f.t_ack.max(f.t_next), rng),
        ),
        None => {
            let v6 = rng.chance(40);
            let t_port = if rng.chance(60) {
                T_PORTS[usize::from(v6)]
            } else {
                rng.pick(&[81, 443, 49152, 65535, 0])
            };
            let (t, p): (IpAddr, IpAddr) = if v6 {
                (T_V6.into(), P_V6.into())
            } else {
                (T_V4.into(), P_V4.into())
            };
            (
                (p, rng.pick(&[1024, 40000, 65535, 0])),
                (t, t_port),
                rng.next_u32(),
                rng.next_u32(),
            )
        }
    };
    let seg = Tcp {
        src_port: src.1,
        dst_port: dst.1,
        seq,
        ack,
        flags: tcp_flags(rng),
        window: {
            let r = rng.next_u32() as u16;
            rng.pick(&[0, 1, 512, 65535, r])
        },
        urgent: if rng.chance(10) {
            rng.next_u32() as u16
        } else {
            0
        },
        options: tcp_options(seq, rng),
        data_offset: rng.chance(12).then(|| rng.below(16) as u8),
        payload: {
            let len = rng.pick(&[0, 0, 1, 10, 536, 1400]);
            rng.bytes(len)
        },
        bad_checksum: rng.chance(3),
    };
    ip_frame(src.0, dst.0, wire::TCP, |pseudo| seg.bytes(pseudo), rng)
}

/// A segment with exactly `flags`: at `flow` with the sequence and acknowledgment numbers it
/// expects next, or at T's IPv4 listener from a new port; a few bytes of payload half the time.
pub(super) fn with_flags(flow: Option<&Flow>, flags: u16, rng: &mut Rng) -> Vec<u8> {
    let (src, dst, seq, ack) = match flow {
        Some(f) => (f.p, f.t, f.p_next, f.t_next),
        None => (
            (IpAddr::from(P_V4), 30000 + (flags % 512)),
            (IpAddr::from(T_V4), T_PORTS[0]),
            rng.next_u32(),
            rng.next_u32(),
        ),
    };
    let payload_len = if rng.chance(50) { 5 } else { 0 };
    let seg = Tcp {
        src_port: src.1,
        dst_port: dst.1,
        seq,
        ack,
        flags,
        window: 4096,
        urgent: if flags & flags::URG != 0 { 1 } else { 0 },
        payload: rng.bytes(payload_len),
        ..Tcp::default()
    };
    ip_frame(src.0, dst.0, wire::TCP, |pseudo| seg.bytes(pseudo), rng)
}

/// IPv4 headers with bad lengths, options, fragments and addresses, carrying TCP to T.
fn ipv4_oddity(rng: &mut Rng) -> Vec<u8> {
    let seg = Tcp {
        src_port: 40000,
        dst_port: rng.pick(&[80, 81]),
        seq: rng.next_u32(),
        flags: tcp_flags(rng),
        window: 1000,
        payload: {
            let len = rng.pick(&[0, 8, 100]);
            rng.bytes(len)
        },
        ..Tcp::default()
    };
    let src = rng.pick(&[
        P_V4,
        T_V4,
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::UNSPECIFIED,
    ]);
    let dst = rng.pick(&[
        T_V4,
        T_V4,
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(10, 9, 0, 255),
        Ipv4Addr::new(224, 0, 0, 1),
        NOBODY_V4,
    ]);
    let body = seg.bytes(|len| wire::pseudo_v4(src.octets(), dst.octets(), wire::TCP, len));
    let mut ip = Ipv4::new(
        src.octets(),
        dst.octets(),
        rng.pick(&[wire::TCP, wire::TCP, wire::UDP, wire::ICMP, 255, 0]),
    );
    ip.ident = rng.next_u32() as u16;
    match rng.below(7) {
        0 => ip.ihl = Some(rng.below(16) as u8),
        1 => ip.total_len = Some(rng.next_u32() as u16),
        2 => {
            // A fragment: more-fragments, an offset, or both.
            ip.flags_frag = rng.pick(&[0x2000, 0x0001, 0x2000 | 0x00b9, 0x1fff, 0x8000]);
        }
        3 => ip.options = option_soup(rng, 40),
        4 => ip.ttl = 0,
        5 => ip.version = rng.pick(&[0, 5, 6, 15]),
        _ => ip.bad_checksum = true,
    }
    let packet = ip.packet(&body);
    wire::ethernet(eth_dst(rng), P_MAC, wire::ETH_IPV4, &packet)
}

/// IPv6 with a chain of extension headers (hop-by-hop, routing, fragment, destination
/// options, unknown ones, bad lengths) in front of TCP, ICMPv6 or nothing.
fn ipv6_chain(rng: &mut Rng) -> Vec<u8> {
    let src = P_V6.octets();
    let dst = rng
        .pick(&[T_V6, T_V6, link_local(T_MAC), "ff02::1".parse().unwrap()])
        .octets();
    let last = rng.pick(&[wire::TCP, wire::ICMPV6, 59, wire::UDP, 253]);
    let tail = match last {
        wire::TCP => Tcp {
            src_port: 40000,
            dst_port: T_PORTS[1],
            seq: rng.next_u32(),
            flags: tcp_flags(rng),
            window: 1000,
            ..Tcp::default()
        }
        .bytes(|len| wire::pseudo_v6(src, dst, wire::TCP, len)),
        wire::ICMPV6 => {
            let body = rng.bytes_below(40);
            let kind = {
                let r = rng.byte();
                rng.pick(&[128, 129, 1, 2, 3, 4, 135, 136, r])
            };
            wire::icmp(
                kind,
                0,
                [0; 4],
                &body,
                &wire::pseudo_v6(src, dst, wire::ICMPV6, 8 + body.len()),
            )
        }
        _ => rng.bytes_below(32),
    };
    let mut next = last;
    let mut payload = tail;
    for _ in 0..rng.below(7) {
        let kind = {
            let r = rng.byte();
            rng.pick(&[0, 43, 44, 60, 60, 51, 135, r])
        };
        let mut header = extension(kind, next, rng);
        header.extend_from_slice(&payload);
        payload = header;
        next = kind;
    }
    let len = rng.chance(15).then(|| rng.next_u32() as u16);
    let hop = rng.pick(&[64, 255, 1, 0]);
    let packet = wire::ipv6(src, dst, next, hop, len, &payload);
    wire::ethernet(eth_dst(rng), P_MAC, wire::ETH_IPV6, &packet)
}

/// ICMP destination unreachable or time exceeded quoting a live connection's segment.
fn icmp_error(flows: &[Flow], rng: &mut Rng) -> Vec<u8> {
    let (t, p, seq) = match flows.first() {
        Some(_) => {
            let f = flows[rng.below(flows.len())];
            (f.t, f.p, f.t_next)
        }
        _ => ((T_V4.into(), 80), (P_V4.into(), 40000), rng.next_u32()),
    };
    let quoted = Tcp {
        src_port: t.1,
        dst_port: p.1,
        seq,
        flags: flags::ACK,
        ..Tcp::default()
    };
    match (t.0, p.0) {
        (IpAddr::V4(t4), IpAddr::V4(p4)) => {
            let inner = Ipv4::new(t4.octets(), p4.octets(), wire::TCP)
                .packet(&quoted.bytes(|l| wire::pseudo_v4(t4.octets(), p4.octets(), wire::TCP, l)));
            let cut = rng.pick(&[inner.len(), 28, 20, 10, 0]).min(inner.len());
            let kind = rng.pick(&[3, 11, 12, 4, 5, 0, 8]);
            let rest = [0, 0, rng.byte(), rng.byte()];
            let msg = wire::icmp(kind, rng.below(16) as u8, rest, &inner[..cut], &[]);
            let ip = Ipv4::new(P_V4.octets(), T_V4.octets(), wire::ICMP).packet(&msg);
            wire::ethernet(T_MAC, P_MAC, wire::ETH_IPV4, &ip)
        }
        (IpAddr::V6(t6), IpAddr::V6(p6)) => {
            let seg = quoted.bytes(|l| wire::pseudo_v6(t6.octets(), p6.octets(), wire::TCP, l));
            let inner = wire::ipv6(t6.octets(), p6.octets(), wire::TCP, 64, None, &seg);
            let cut = rng.pick(&[inner.len(), 48, 40, 8]).min(inner.len());
            let body = &inner[..cut];
            let kind = rng.pick(&[1, 2, 3, 4]);
            let pseudo =
                wire::pseudo_v6(P_V6.octets(), T_V6.octets(), wire::ICMPV6, 8 + body.len());
            let msg = wire::icmp(kind, rng.below(8) as u8, [0, 0, 5, 0], body, &pseudo);
            let ip = wire::ipv6(P_V6.octets(), T_V6.octets(), wire::ICMPV6, 64, None, &msg);
            wire::ethernet(T_MAC, P_MAC, wire::ETH_IPV6, &ip)
        }
        _ => junk(rng),
    }
}

/// Put a transport segment into an IPv4 or IPv6 frame to T, from P's MAC.
fn ip_frame(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    segment: impl Fn(&dyn Fn(usize) -> Vec<u8>) -> Vec<u8>,
    rng: &mut Rng,
) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let seg = segment(&|len| wire::pseudo_v4(s.octets(), d.octets(), proto, len));
            let mut ip = Ipv4::new(s.octets(), d.octets(), proto);
            if rng.chance(8) {
                // A total length that disagrees with the frame, either way.
                ip.total_len =
                    Some(rng.pick(&[0, 20, 39, (seg.len() + 19) as u16, (seg.len() + 200) as u16]));
            }
            wire::ethernet(T_MAC, P_MAC, wire::ETH_IPV4, &ip.packet(&seg))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let seg = segment(&|len| wire::pseudo_v6(s.octets(), d.octets(), proto, len));
            let len = rng
                .chance(8)
                .then(|| rng.pick(&[0, 7, (seg.len() - 1) as u16, (seg.len() + 100) as u16]));
            let ip = wire::ipv6(s.octets(), d.octets(), proto, 64, len, &seg);
            wire::ethernet(T_MAC, P_MAC, wire::ETH_IPV6, &ip)
        }
        _ => Vec::new(),
    }
}

/// A sequence number at, just around, inside the window of, or far from `at`.
fn near(at: u32, rng: &mut Rng) -> u32 {
    match rng.below(6) {
        0 | 1 => at,
        2 => at.wrapping_add(rng.range(1, 3000) as u32),
        3 => at.wrapping_sub(rng.range(1, 3000) as u32),
        4 => at.wrapping_add(rng.pick(&[1 << 30, 1 << 31, u32::MAX])),
        _ => rng.next_u32(),
    }
}

/// Any of the 512 flag combinations, weighted toward the interesting ones.
fn tcp_flags(rng: &mut Rng) -> u16 {
    use flags::*;
    match rng.below(10) {
        0 => RST,
        1 => RST | ACK,
        2 => SYN,
        3 => SYN | ACK,
        4 => FIN | ACK,
        5 => ACK | PSH,
        6 => ACK,
        _ => rng.below(512) as u16,
    }
}

/// TCP options, well-formed and not: zero and overlong lengths, truncated kinds, SACK blocks.
fn tcp_options(seq: u32, rng: &mut Rng) -> Vec<u8> {
    let mut o = Vec::new();
    for _ in 0..rng.below(6) {
        match rng.below(11) {
            0 => o.push(0),
            1 => o.push(1),
            2 => o.extend_from_slice(&[2, 4, rng.byte(), rng.byte()]),
            3 => o.extend_from_slice(&[3, 3, rng.byte()]),
            4 => o.extend_from_slice(&[4, 2]),
            5 => {
                let n = rng.below(5);
                o.extend_from_slice(&[5, (2 + 8 * n) as u8]);
                for _ in 0..n {
                    o.extend_from_slice(&near(seq, rng).to_be_bytes());
                    o.extend_from_slice(&near(seq, rng).to_be_bytes());
                }
            }
            6 => {
                o.extend_from_slice(&[8, 10]);
                o.extend_from_slice(&rng.bytes(8));
            }
            7 => {
                // A kind smoltcp knows with a length that does not fit it.
                let kind = rng.pick(&[2, 3, 4, 5, 8]);
                o.extend_from_slice(&[kind, rng.pick(&[0, 1, 2, 3, 5, 11, 40, 255])]);
                o.extend_from_slice(&rng.bytes_below(4));
            }
            8 => o.extend_from_slice(&[rng.byte(), rng.byte()]),
            9 => o.push(rng.pick(&[2, 3, 5, 8])), // a kind with no length byte at all
            _ => o.extend_from_slice(&rng.bytes_below(12)),
        }
    }
    o.truncate(40);
    o
}

/// IPv4 or IPv6 option bytes: pads, known types with bad lengths, random.
fn option_soup(rng: &mut Rng, max: usize) -> Vec<u8> {
    let mut o = Vec::new();
    while o.len() < max && rng.chance(70) {
        match rng.below(5) {
            0 => o.push(0),
            1 => o.push(1),
            2 => o.extend_from_slice(&[rng.byte(), 0]),
            3 => o.extend_from_slice(&[rng.byte(), 1]),
            _ => {
                let len = rng.below(12);
                o.extend_from_slice(&[rng.byte(), len as u8]);
                o.extend_from_slice(&rng.bytes(len));
            }
        }
    }
    o.truncate(max);
    o
}

/// One IPv6 extension header of `kind` whose next header is `next`.
fn extension(kind: u8, next: u8, rng: &mut Rng) -> Vec<u8> {
    match kind {
        44 => {
            // Fragment: offset and more-fragments at random, sometimes a whole packet.
            let off_m = {
                let r = rng.next_u32() as u16;
                rng.pick(&[0u16, 1, 8, 0xfff8, r])
            };
            let mut h = vec![next, 0];
            h.extend_from_slice(&off_m.to_be_bytes());
            h.extend_from_slice(&rng.next_u32().to_be_bytes());
            h
        }
        43 => {
            // Routing: type 0 (deprecated), 2, 3 (RPL), 4 (SRH) or random, segments left.
            let units = rng.below(4);
            let mut h = vec![
                next,
                units as u8,
                {
                    let r = rng.byte();
                    rng.pick(&[0, 2, 3, 4, r])
                },
                rng.pick(&[0, 1, 255]),
            ];
            h.extend_from_slice(&rng.bytes(4 + 8 * units));
            h
        }
        0 | 60 => {
            let mut body = option_soup(rng, 30);
            if rng.chance(20) {
                // Jumbo payload and router alert, in the wrong places or sizes.
                body.extend_from_slice(&rng.pick(&[[0xc2u8, 4, 0, 1], [5, 2, 0, 0]]));
            }
            let total = (2 + body.len()).div_ceil(8) * 8;
            body.resize(total - 2, 0);
            let mut ext_len = (total / 8 - 1) as u8;
            if rng.chance(10) {
                ext_len = rng.byte();
            }
            let mut h = vec![next, ext_len];
            h.extend_from_slice(&body);
            h
        }
        _ => {
            let mut h = vec![next, rng.below(3) as u8];
            let len = 6 + 8 * rng.below(2);
            h.extend_from_slice(&rng.bytes(len));
            h
        }
    }
}

/// ARP requests and replies for T's address (and others) with odd fields.
fn arp(rng: &mut Rng) -> Vec<u8> {
    let wrong = rng.chance(20);
    let packet = Arp {
        htype: if wrong { rng.pick(&[0, 6, 0xffff]) } else { 1 },
        ptype: if wrong {
            rng.pick(&[0x86dd, 0])
        } else {
            0x0800
        },
        hlen: if rng.chance(10) { rng.byte() } else { 6 },
        plen: if rng.chance(10) { rng.byte() } else { 4 },
        op: rng.pick(&[1, 2, 1, 2, 0, 3, 0xffff]),
        sha: rng.pick(&[
            P_MAC,
            [2, 0, 0, 0, 9, 0x66],
            BROADCAST,
            T_MAC,
            [1, 0, 0x5e, 0, 0, 1],
        ]),
        spa: rng
            .pick(&[
                P_V4,
                NOBODY_V4,
                T_V4,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::BROADCAST,
            ])
            .octets(),
        tha: rng.pick(&[[0; 6], T_MAC, BROADCAST]),
        tpa: rng.pick(&[T_V4, T_V4, P_V4, NOBODY_V4]).octets(),
    };
    let mut body = packet.bytes();
    if rng.chance(15) {
        body.extend_from_slice(&rng.bytes_below(30));
    }
    wire::ethernet(
        rng.pick(&[BROADCAST, T_MAC]),
        packet.sha,
        wire::ETH_ARP,
        &body,
    )
}

/// Neighbor discovery: solicitations, advertisements, router advertisements and redirects,
/// with options of zero, short and overlong length.
fn ndp(rng: &mut Rng) -> Vec<u8> {
    let src = rng
        .pick(&[P_V6, link_local(P_MAC), Ipv6Addr::UNSPECIFIED, T_V6])
        .octets();
    let dst = rng
        .pick(&[
            T_V6,
            link_local(T_MAC),
            "ff02::1".parse().unwrap(),
            solicited(T_V6),
        ])
        .octets();
    let kind = rng.pick(&[133u8, 134, 135, 136, 137]);
    let target = rng
        .pick(&[T_V6, P_V6, link_local(T_MAC), "ff02::1".parse().unwrap()])
        .octets();
    let mut rest = [0u8; 4];
    let mut body = Vec::new();
    match kind {
        134 => {
            rest = [64, rng.byte(), rng.byte(), rng.byte()];
            body.extend_from_slice(&rng.bytes(8));
        }
        135 => body.extend_from_slice(&target),
        136 => {
            rest[0] = rng.pick(&[0x20, 0x40, 0x60, 0xe0, 0]);
            body.extend_from_slice(&target);
        }
        137 => {
            body.extend_from_slice(&target);
            body.extend_from_slice(&T_V6.octets());
        }
        _ => {}
    }
    for _ in 0..rng.below(4) {
        let opt = {
            let r = rng.byte();
            rng.pick(&[1u8, 2, 3, 4, 5, 14, r])
        };
        let units = rng.pick(&[0u8, 1, 1, 2, 4, 255]);
        body.push(opt);
        body.push(units);
        let fill = (usize::from(units) * 8).saturating_sub(2).min(40);
        let fill = if rng.chance(20) {
            rng.below(fill + 1)
        } else {
            fill
        };
        match opt {
            1 | 2 if units == 1 => body.extend_from_slice(&rng.pick(&[P_MAC, BROADCAST, [0; 6]])),
            _ => body.extend_from_slice(&rng.bytes(fill)),
        }
    }
    let pseudo = wire::pseudo_v6(src, dst, wire::ICMPV6, 8 + body.len());
    let msg = wire::icmp(kind, rng.pick(&[0, 0, 1]), rest, &body, &pseudo);
    let hop = rng.pick(&[255, 255, 64]);
    let ip = wire::ipv6(src, dst, wire::ICMPV6, hop, None, &msg);
    let eth_dst = rng.pick(&[T_MAC, [0x33, 0x33, 0, 0, 0, 1], BROADCAST]);
    wire::ethernet(eth_dst, P_MAC, wire::ETH_IPV6, &ip)
}

/// UDP to T (no UDP sockets: an ICMP port unreachable at most).
fn udp(rng: &mut Rng) -> Vec<u8> {
    let body = rng.bytes_below(64);
    let mut u = Vec::new();
    u.extend_from_slice(&rng.next_u32().to_be_bytes()); // ports
    let len = if rng.chance(30) {
        rng.next_u32() as u16
    } else {
        (8 + body.len()) as u16
    };
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(&body);
    let ip = Ipv4::new(P_V4.octets(), T_V4.octets(), wire::UDP).packet(&u);
    wire::ethernet(T_MAC, P_MAC, wire::ETH_IPV4, &ip)
}

/// Random bytes, of any length up to a little over the MTU, sometimes with a real EtherType.
fn junk(rng: &mut Rng) -> Vec<u8> {
    let len = rng.pick(&[0, 1, 13, 14, 15, 33, 60, 200, 1514, 1515, 1600]);
    let mut f = rng.bytes(len);
    if f.len() >= 14 && rng.chance(70) {
        f[..6].copy_from_slice(&T_MAC);
        let t = rng.pick(&[wire::ETH_IPV4, wire::ETH_IPV6, wire::ETH_ARP]);
        f[12..14].copy_from_slice(&t.to_be_bytes());
        if t == wire::ETH_IPV4 && f.len() > 14 {
            f[14] = 0x40 | (f[14] & 0x0f);
        }
        if t == wire::ETH_IPV6 && f.len() > 14 {
            f[14] = 0x60 | (f[14] & 0x0f);
        }
    }
    f
}

/// Cut a frame short now and then (inside any of its headers).
fn truncate_sometimes(mut frame: Vec<u8>, rng: &mut Rng) -> Vec<u8> {
    if rng.chance(8) && !frame.is_empty() {
        let cut = rng.below(frame.len());
        frame.truncate(cut);
    }
    frame
}

/// Mutate a frame of the peer's in place: a TCP field, a length, a bit, or its tail.
pub(super) fn mutate(frame: &mut Vec<u8>, rng: &mut Rng) {
    let Some(tcp_at) = tcp_offset(frame) else {
        if !frame.is_empty() {
            let at = rng.below(frame.len());
            frame[at] ^= 1 << rng.below(8);
        }
        return;
    };
    match rng.below(9) {
        0 => {
            // Flags: any combination.
            frame[tcp_at + 13] = rng.byte();
            frame[tcp_at + 12] = (frame[tcp_at + 12] & 0xf0) | (rng.byte() & 1);
        }
        1 => {
            let seq =
                u32::from_be_bytes(frame[tcp_at + 4..tcp_at + 8].try_into().unwrap_or([0; 4]));
            frame[tcp_at + 4..tcp_at + 8].copy_from_slice(&near(seq, rng).to_be_bytes());
        }
        2 => {
            let ack =
                u32::from_be_bytes(frame[tcp_at + 8..tcp_at + 12].try_into().unwrap_or([0; 4]));
            frame[tcp_at + 8..tcp_at + 12].copy_from_slice(&near(ack, rng).to_be_bytes());
        }
        3 => frame[tcp_at + 12] = (rng.below(16) as u8) << 4 | (frame[tcp_at + 12] & 1),
        4 => frame[tcp_at + 14..tcp_at + 16]
            .copy_from_slice(&rng.pick(&[0u16, 1, 0xffff]).to_be_bytes()),
        5 => {
            // The IP length field says something else than the frame.
            let at = if frame[12..14] == wire::ETH_IPV4.to_be_bytes() {
                16
            } else {
                18
            };
            let len = rng.next_u32() as u16;
            frame[at..at + 2].copy_from_slice(&len.to_be_bytes());
        }
        6 => {
            let cut = rng.range(14, frame.len());
            frame.truncate(cut);
        }
        7 => {
            // Urgent data.
            frame[tcp_at + 13] |= flags::URG as u8;
            frame[tcp_at + 18..tcp_at + 20].copy_from_slice(&(rng.next_u32() as u16).to_be_bytes());
        }
        _ => {
            let at = rng.below(frame.len());
            frame[at] ^= 1 << rng.below(8);
            return; // a bit flip keeps its bad checksum: the parser must cope
        }
    }
    wire::refresh_checksums(frame);
}

/// Where the TCP header of a plain IPv4/IPv6 TCP frame starts (its 20 bytes present).
fn tcp_offset(frame: &[u8]) -> Option<usize> {
    wire::parse_tcp(frame)?;
    let at = match u16::from_be_bytes([frame[12], frame[13]]) {
        wire::ETH_IPV4 => 14 + usize::from(frame[14] & 0x0f) * 4,
        _ => 54,
    };
    (frame.len() >= at + 20).then_some(at)
}

/// T's MAC mostly, else broadcast, a multicast or someone else's.
fn eth_dst(rng: &mut Rng) -> [u8; 6] {
    rng.pick(&[
        T_MAC,
        T_MAC,
        T_MAC,
        BROADCAST,
        [0x33, 0x33, 0, 0, 0, 1],
        [2, 0, 0, 0, 9, 0x55],
    ])
}

/// The EUI-64 link-local address the engine derives from its MAC.
fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([mac[0] ^ 0x02, mac[1]]),
        u16::from_be_bytes([mac[2], 0xff]),
        u16::from_be_bytes([0xfe, mac[3]]),
        u16::from_be_bytes([mac[4], mac[5]]),
    )
}

/// The solicited-node multicast address of `addr`.
fn solicited(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}
