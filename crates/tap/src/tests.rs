//! Tests. The TAP ones need root and /dev/net/tun; they run inside a network namespace they
//! create and delete themselves (in a drop guard), on a thread that entered it with setns.

use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::*;

/// Namespace name prefix of these tests: `lstap<pid>x<counter>`.
const NS_PREFIX: &str = "lstap";

const KERNEL_IP: [u8; 4] = [10, 201, 0, 1];
const STACK_IP: [u8; 4] = [10, 201, 0, 2];
/// Locally administered unicast MAC for the stack side.
const STACK_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x02];

const TOKEN: mio::Token = mio::Token(7);

/// Plain frames, no virtio-net header: these tests write and parse raw Ethernet.
const PLAIN: TapOptions = TapOptions { offload: false };

/// Whether TAP tests can run here; prints a SKIP line (or panics under
/// `LINGERSTACK_REQUIRE_TAP=1`) when they cannot.
fn tap_available(test: &str) -> bool {
    let why = if !sys::is_root() {
        Some("not root")
    } else if !std::path::Path::new("/dev/net/tun").exists() {
        Some("no /dev/net/tun")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) => {
            if std::env::var("LINGERSTACK_REQUIRE_TAP").as_deref() == Ok("1") {
                panic!("{test}: TAP tests required (LINGERSTACK_REQUIRE_TAP=1) but {why}");
            }
            eprintln!("SKIP {test}: needs root and /dev/net/tun ({why})");
            false
        }
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip(8)");
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace that is deleted on drop, even when the test panics.
struct Netns {
    name: String,
}

impl Netns {
    fn create() -> Netns {
        sweep_stale_namespaces();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{NS_PREFIX}{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `f` on a new thread inside the namespace; a panic there is re-raised here.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        let handle = std::thread::spawn(move || {
            sys::enter_netns(&path).expect("setns into the test namespace");
            f()
        });
        match handle.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Deletes namespaces of earlier runs of these tests that were killed before their guard ran
/// (the pid in the name no longer exists).
fn sweep_stale_namespaces() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('x') else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

/// An Ethernet broadcast ARP request "who has `target`, tell `sender` at `mac`".
fn arp_request(mac: [u8; 6], sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]); // destination: broadcast
    f.extend_from_slice(&mac); // source
    f.extend_from_slice(&[0x08, 0x06]); // EtherType ARP
    f.extend_from_slice(&[0x00, 0x01]); // HTYPE Ethernet
    f.extend_from_slice(&[0x08, 0x00]); // PTYPE IPv4
    f.push(6); // HLEN
    f.push(4); // PLEN
    f.extend_from_slice(&[0x00, 0x01]); // OPER request
    f.extend_from_slice(&mac); // SHA
    f.extend_from_slice(&sender); // SPA
    f.extend_from_slice(&[0; 6]); // THA
    f.extend_from_slice(&target); // TPA
    f
}

/// If `frame` is an ARP reply from `from_ip` to `to_mac`/`to_ip`, the sender's MAC.
fn parse_arp_reply(
    frame: &[u8],
    from_ip: [u8; 4],
    to_mac: [u8; 6],
    to_ip: [u8; 4],
) -> Option<[u8; 6]> {
    use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol};
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp || eth.dst_addr().as_bytes() != to_mac {
        return None;
    }
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()?;
    match arp {
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr,
            source_protocol_addr,
            target_hardware_addr,
            target_protocol_addr,
        } if source_protocol_addr.octets() == from_ip
            && target_hardware_addr.as_bytes() == to_mac
            && target_protocol_addr.octets() == to_ip =>
        {
            let mut mac = [0; 6];
            mac.copy_from_slice(source_hardware_addr.as_bytes());
            Some(mac)
        }
        _ => None,
    }
}

/// Waits up to `timeout` for a frame accepted by `want`, reading everything that arrives.
fn wait_frame<T>(
    link: &mut TapLink,
    poll: &mut mio::Poll,
    timeout: Duration,
    mut want: impl FnMut(&[u8]) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut events = mio::Events::with_capacity(8);
    let mut buf = vec![0u8; link.mtu() + ETHERNET_HEADER_LEN];
    loop {
        // Read first: a frame may already be queued before the first wake-up.
        while let Some(n) = Link::recv(link, &mut buf).expect("recv") {
            if let Some(v) = want(&buf[..n]) {
                return Some(v);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        poll.poll(&mut events, Some(deadline - now))
            .expect("mio poll");
    }
}

/// `ip -n <ns> link show dev <name>`: (flags inside <...>, mtu).
fn kernel_view(ns: &str, dev: &str) -> (Vec<String>, usize) {
    let out = ip(&["-n", ns, "link", "show", "dev", dev]);
    let flags = out
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(flags, _)| flags.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let mtu = out
        .split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    (flags, mtu)
}

#[test]
fn rejects_bad_names() {
    // No privileges needed: the name is checked before /dev/net/tun is opened.
    let err = TapLink::open("lingerstack-tap-0").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("maximum is 15"), "{err}");
    let err = TapLink::open("").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    let err = TapLink::open("ab\0cd").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
}

#[test]
fn counters_start_at_zero() {
    assert_eq!(TapCounters::default().rx_frames, 0);
    assert_eq!(
        TapCounters::default(),
        TapCounters {
            ..Default::default()
        }
    );
}

/// The whole life of a TAP link against the kernel of a private namespace: open, up, MTU,
/// ARP request out and reply in, oversize frame dropped and counted, device deleted.
#[test]
fn tap_link_against_kernel() {
    if !tap_available("tap_link_against_kernel") {
        return;
    }
    let ns = Netns::create();
    let ns_name = ns.name.clone();
    ns.run(move || {
        let dev = "lstap0";
        // A name of exactly 15 bytes is accepted.
        let long = TapLink::open_with("lstap0123456789", PLAIN).expect("open 15-byte name");
        assert_eq!(long.name(), "lstap0123456789");
        drop(long);

        let mut link = TapLink::open_with(dev, PLAIN).expect("open TAP");
        assert_eq!(link.name(), dev);
        assert_eq!(link.describe(), "tap lstap0");
        assert_eq!(link.mtu(), 1500);
        assert_eq!(Link::mtu(&link), 1500);
        assert!(link.is_up().unwrap());
        let (flags, mtu) = kernel_view(&ns_name, dev);
        assert!(flags.iter().any(|f| f == "UP"), "flags {flags:?}");
        assert_eq!(mtu, 1500);
        assert!(!link.is_gone());

        link.set_mtu(9000).expect("set MTU 9000");
        assert_eq!(link.mtu(), 9000);
        assert_eq!(kernel_view(&ns_name, dev).1, 9000);
        assert_eq!(link.refresh_mtu().unwrap(), 9000);
        let err = link.set_mtu(10).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
        assert_eq!(link.mtu(), 9000);

        ip(&["-n", &ns_name, "addr", "add", "10.201.0.1/24", "dev", dev]);

        // Poll the descriptor the link offers, as the runtime does.
        let mut poll = mio::Poll::new().unwrap();
        let fd = Link::fd(&link).expect("a TAP has a descriptor");
        poll.registry()
            .register(
                &mut mio::unix::SourceFd(&fd),
                TOKEN,
                mio::Interest::READABLE,
            )
            .unwrap();

        // ARP: ask the kernel for 10.201.0.1 from 10.201.0.2.
        let request = arp_request(STACK_MAC, STACK_IP, KERNEL_IP);
        assert!(Link::send(&mut link, &request).expect("send ARP request"));
        let kernel_mac = wait_frame(&mut link, &mut poll, Duration::from_secs(2), |f| {
            parse_arp_reply(f, KERNEL_IP, STACK_MAC, STACK_IP)
        })
        .expect("ARP reply from the kernel within 2 s");
        assert!(
            kernel_mac != STACK_MAC && kernel_mac != [0; 6],
            "{kernel_mac:02x?}"
        );
        let c = link.counters();
        assert_eq!(c.tx_frames, 1);
        assert_eq!(c.tx_bytes, request.len() as u64);
        assert!(c.rx_frames >= 1 && c.rx_bytes >= 42, "{c:?}");
        assert_eq!((c.rx_errors, c.tx_errors, c.tx_dropped_full), (0, 0, 0));

        // A frame larger than the buffer the engine gives recv is dropped and counted, and the
        // next frame is still delivered. The kernel has learnt our MAC from the request.
        let udp = UdpSocket::bind((Ipv4Addr::from(KERNEL_IP), 0)).unwrap();
        udp.send_to(&[0xab; 3000], (Ipv4Addr::from(STACK_IP), 9))
            .unwrap();
        udp.send_to(&[0xcd; 100], (Ipv4Addr::from(STACK_IP), 9))
            .unwrap();
        let mut small = vec![0u8; 1500 + ETHERNET_HEADER_LEN];
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut events = mio::Events::with_capacity(8);
        let got_small = loop {
            match Link::recv(&mut link, &mut small).expect("recv") {
                Some(n) if n == 14 + 20 + 8 + 100 && small[n - 1] == 0xcd => break true,
                Some(_) => {}
                None if Instant::now() >= deadline => break false,
                None => {
                    poll.poll(&mut events, Some(Duration::from_millis(100)))
                        .unwrap();
                }
            }
        };
        assert!(got_small, "the 100-byte datagram's frame arrived");
        assert_eq!(link.counters().rx_errors, 1, "{:?}", link.counters());

        // Administratively down: writes fail with EIO, which is a counted drop, not a failure;
        // reads are not errors (frames queued before, e.g. an MLD report, can still be read,
        // then EAGAIN); the device is not gone. Up again, frames flow again.
        ip(&["-n", &ns_name, "link", "set", "down", "dev", dev]);
        assert!(!link.is_up().unwrap());
        assert!(!Link::send(&mut link, &request).expect("send while down"));
        assert_eq!(link.counters().tx_dropped_down, 1);
        let mut drained = false;
        for _ in 0..64 {
            if Link::recv(&mut link, &mut small)
                .expect("recv while down")
                .is_none()
            {
                drained = true;
                break;
            }
        }
        assert!(drained, "reads reach EAGAIN while the device is down");
        assert!(!link.is_gone());
        ip(&["-n", &ns_name, "link", "set", "up", "dev", dev]);
        assert!(Link::send(&mut link, &request).expect("send after up"));
        let got = wait_frame(&mut link, &mut poll, Duration::from_secs(2), |f| {
            parse_arp_reply(f, KERNEL_IP, STACK_MAC, STACK_IP)
        });
        assert_eq!(
            got,
            Some(kernel_mac),
            "ARP reply after the link came back up"
        );

        // Delete the device while it is open.
        ip(&["-n", &ns_name, "link", "del", dev]);
        let mut woke_with_error = false;
        let deadline = Instant::now() + Duration::from_secs(2);
        while !woke_with_error && Instant::now() < deadline {
            poll.poll(&mut events, Some(Duration::from_millis(200)))
                .unwrap();
            for ev in events.iter() {
                eprintln!(
                    "after delete: event readable={} error={} read_closed={}",
                    ev.is_readable(),
                    ev.is_error(),
                    ev.is_read_closed()
                );
                woke_with_error |= ev.token() == TOKEN && ev.is_error();
            }
        }
        assert!(
            woke_with_error,
            "mio reports an error event after the device is deleted"
        );
        assert!(link.is_gone());
        let err = Link::recv(&mut link, &mut small).expect_err("recv after delete");
        eprintln!("after delete: recv -> {err} ({:?})", err.raw_os_error());
        assert_eq!(err.raw_os_error(), Some(libc::EBADFD));
        assert_eq!(
            link.last_error().unwrap().raw_os_error(),
            Some(libc::EBADFD)
        );
        let err = Link::send(&mut link, &request).expect_err("send after delete");
        assert_eq!(err.raw_os_error(), Some(libc::EBADFD));
        let c = link.counters();
        assert_eq!((c.rx_errors, c.tx_errors), (2, 1), "{c:?}");
        assert!(link.is_gone());
        // The name is free again and may be taken by a new device; the old link stays gone.
        let again = TapLink::open_with(dev, PLAIN).expect("reopen the name");
        assert!(!again.is_gone());
        assert!(link.is_gone());
    });
    drop(ns);
}

/// Deleting the namespace's name (`ip netns del`) while the TAP is open does not remove the
/// device: the open TAP (and its ioctl socket) hold a reference to the namespace, which lives
/// on unnamed until the link is dropped.
#[test]
fn namespace_outlives_its_name_while_open() {
    if !tap_available("namespace_outlives_its_name_while_open") {
        return;
    }
    let ns = Netns::create();
    let path = ns.path();
    let mut link = std::thread::spawn(move || {
        sys::enter_netns(&path).expect("setns into the test namespace");
        TapLink::open_with("lstap1", PLAIN).expect("open TAP")
    })
    .join()
    .expect("open thread");
    drop(ns);
    assert!(!link.is_gone());
    assert!(link.is_up().unwrap());
    assert_eq!(link.refresh_mtu().unwrap(), 1500);
    let request = arp_request(STACK_MAC, STACK_IP, KERNEL_IP);
    assert!(Link::send(&mut link, &request).unwrap());
    let mut buf = vec![0u8; 1514];
    while Link::recv(&mut link, &mut buf).unwrap().is_some() {}
    drop(link); // the namespace is destroyed now
}

/// Offloads are on by default and can be turned off and on again; a kernel that refuses the
/// offloads asked for (here bits it does not know) leaves a working TAP with plain frames.
#[test]
fn offloads_by_default_and_the_fallback_to_plain_frames() {
    if !tap_available("offloads_by_default_and_the_fallback_to_plain_frames") {
        return;
    }
    let ns = Netns::create();
    ns.run(move || {
        let mut link = TapLink::open("lstap2").expect("open TAP");
        assert!(link.offload() && Link::vnet_header(&link));
        assert!(!Link::set_offload(&mut link, false), "offloads off");
        assert!(!link.offload() && Link::vnet_header(&link));
        assert!(Link::set_offload(&mut link, true), "offloads on again");
        drop(link);

        // TUNSETOFFLOAD rejects unknown bits with EINVAL.
        let mut plain = TapLink::open_asking("lstap3", 1 << 30).expect("open with fallback");
        assert!(!plain.offload() && !Link::vnet_header(&plain));
        assert!(
            !Link::set_offload(&mut plain, true),
            "a plain TAP has no offloads"
        );
        assert!(plain.is_up().unwrap());
        let request = arp_request(STACK_MAC, STACK_IP, KERNEL_IP);
        assert!(Link::send(&mut plain, &request).expect("a plain frame is written"));

        let plain = TapLink::open_with("lstap4", PLAIN).expect("open plain");
        assert!(!plain.offload() && !Link::vnet_header(&plain));
    });
    drop(ns);
}
