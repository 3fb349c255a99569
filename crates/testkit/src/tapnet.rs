//! A persistent TAP device inside a private namespace, with the kernel as the peer.

use std::fs::{File, OpenOptions};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::Netns;

/// Default MTU of the TAP.
pub const DEFAULT_MTU: u32 = 1500;

/// Timeout [`TapNet::open_tap`] uses for [`TapNet::wait_link_up`].
pub const LINK_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// A namespace holding a persistent TAP device addressed on the kernel side.
///
/// The kernel owns 10.200.0.1/24 and fd00:200::1/64; the stack under test is expected at
/// 10.200.0.2 and fd00:200::2 with MAC [`TapNet::stack_mac`]. Dropping it deletes the
/// namespace and with it the TAP.
#[derive(Debug)]
pub struct TapNet {
    tap: String,
    mtu: u32,
    // Last: dropped after everything else.
    ns: Netns,
}

impl TapNet {
    /// Creates the namespace and TAP with the default MTU (1500).
    pub fn new() -> io::Result<TapNet> {
        TapNet::with_mtu(DEFAULT_MTU)
    }

    /// Creates the namespace and TAP with the given MTU.
    pub fn with_mtu(mtu: u32) -> io::Result<TapNet> {
        let ns = Netns::new()?;
        let tap = ns.ifname("t");
        let mac = fmt_mac(KERNEL_MAC);
        let mtu_s = mtu.to_string();
        let v4 = format!("{}/{}", KERNEL_V4, PREFIX_V4);
        let v6 = format!("{}/{}", KERNEL_V6, PREFIX_V6);
        ns.ip(&["tuntap", "add", "dev", &tap, "mode", "tap"])?;
        ns.ip(&["link", "set", "dev", &tap, "address", &mac, "mtu", &mtu_s])?;
        ns.ip(&["addr", "add", &v4, "dev", &tap])?;
        ns.ip(&["-6", "addr", "add", &v6, "dev", &tap, "nodad"])?;
        ns.ip(&["link", "set", "dev", &tap, "up"])?;
        Ok(TapNet { tap, mtu, ns })
    }

    /// The namespace the TAP lives in.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// The TAP's interface name (inside [`TapNet::ns`]).
    pub fn tap_name(&self) -> &str {
        &self.tap
    }

    /// The TAP's MTU.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Kernel-side IPv4 address, 10.200.0.1.
    pub fn kernel_v4(&self) -> Ipv4Addr {
        KERNEL_V4
    }

    /// Address for the stack under test, 10.200.0.2.
    pub fn stack_v4(&self) -> Ipv4Addr {
        STACK_V4
    }

    /// Kernel-side IPv6 address, fd00:200::1.
    pub fn kernel_v6(&self) -> Ipv6Addr {
        KERNEL_V6
    }

    /// Address for the stack under test, fd00:200::2.
    pub fn stack_v6(&self) -> Ipv6Addr {
        STACK_V6
    }

    /// Kernel-side address, IPv6 if `v6`, else IPv4.
    pub fn kernel_ip(&self, v6: bool) -> IpAddr {
        if v6 {
            KERNEL_V6.into()
        } else {
            KERNEL_V4.into()
        }
    }

    /// Stack-side address, IPv6 if `v6`, else IPv4.
    pub fn stack_ip(&self, v6: bool) -> IpAddr {
        if v6 { STACK_V6.into() } else { STACK_V4.into() }
    }

    /// IPv4 prefix length of the TAP network, 24.
    pub fn prefix_len_v4(&self) -> u8 {
        PREFIX_V4
    }

    /// IPv6 prefix length of the TAP network, 64.
    pub fn prefix_len_v6(&self) -> u8 {
        PREFIX_V6
    }

    /// MAC the stack under test should use, 02:00:00:00:00:02.
    pub fn stack_mac(&self) -> [u8; 6] {
        STACK_MAC
    }

    /// MAC of the kernel side of the TAP, 02:00:00:00:00:01.
    pub fn kernel_mac(&self) -> [u8; 6] {
        KERNEL_MAC
    }

    /// Opens the TAP (IFF_TAP | IFF_NO_PI) from inside the namespace, waits for
    /// [`TapNet::wait_link_up`], and returns the raw fd.
    ///
    /// For tests that script the stack side frame by frame; the stack opens its own.
    pub fn open_tap(&self) -> io::Result<File> {
        let name = self.tap.clone();
        let file = self.ns.run(move || open_tap(&name))?;
        self.wait_link_up(LINK_UP_TIMEOUT)?;
        Ok(file)
    }

    /// Waits until the kernel reports the TAP operationally up (`state UP`).
    ///
    /// A TAP has carrier only while a reader has it open, and the kernel activates it
    /// asynchronously (link watch, up to a second later). Until then frames the kernel sends
    /// can reach the TAP without passing the capture socket, so call this after the stack
    /// opened the TAP and before generating traffic.
    pub fn wait_link_up(&self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self
                .ns
                .ip_output(&["-o", "link", "show", "dev", &self.tap])?;
            if out.contains(" state UP ") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("TAP {} not up after {timeout:?}: {}", self.tap, out.trim()),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

const KERNEL_V4: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const STACK_V4: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
const KERNEL_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1);
const STACK_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 2);
const PREFIX_V4: u8 = 24;
const PREFIX_V6: u8 = 64;
const KERNEL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const STACK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn fmt_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Attaches to the TAP `name` in the calling thread's namespace.
fn open_tap(name: &str) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "ifname too long",
        ));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads/writes a `struct ifreq`, and `req` is one that outlives the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Capture, Dir, FrameKind};
    use std::io::Write;
    use std::net::{SocketAddr, TcpStream};
    use std::path::Path;
    use std::process::Command;

    fn netns_listed(name: &str) -> bool {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name))
    }

    #[test]
    fn tap_capture_sees_arp_and_injected_syn() {
        if !crate::require_tap("tap_capture_sees_arp_and_injected_syn") {
            return;
        }
        let net = TapNet::with_mtu(1400).unwrap();
        let name = net.ns().name().to_string();
        assert!(netns_listed(&name));
        let link = net
            .ns()
            .ip_output(&["link", "show", net.tap_name()])
            .unwrap();
        assert!(
            link.contains("mtu 1400") && link.contains("02:00:00:00:00:01"),
            "{link}"
        );

        let cap = Capture::start(net.ns(), net.tap_name(), "testkit-tap-arp").unwrap();
        // Attaching gives the TAP carrier; without a reader the kernel sends nothing.
        let mut tap = net.open_tap().unwrap();

        // Stack side: a SYN to a closed kernel port.
        let mut syn = Vec::new();
        etherparse::PacketBuilder::ethernet2(net.stack_mac(), net.kernel_mac())
            .ipv4(net.stack_v4().octets(), net.kernel_v4().octets(), 64)
            .tcp(40000, 9, 1000, 64240)
            .syn()
            .write(&mut syn, &[])
            .unwrap();
        tap.write_all(&syn).unwrap();

        // Kernel side: a connect nobody answers (ARP for 10.200.0.2 goes unanswered).
        let dst = SocketAddr::new(net.stack_v4().into(), 80);
        let r = net
            .ns()
            .run(move || TcpStream::connect_timeout(&dst, Duration::from_millis(500)));
        assert!(r.is_err(), "nobody should answer: {r:?}");

        let trace = cap.stop();
        trace.assert_no_drops();
        let arp_to_stack = trace.others.iter().any(|o| {
            o.kind == FrameKind::ArpRequest
                && o.dir == Dir::ToStack
                && o.data.get(38..42) == Some(&net.stack_v4().octets()[..])
        });
        trace.assert(
            arp_to_stack,
            "no ARP request for 10.200.0.2 towards the stack",
        );
        assert!(trace.arp_count() >= 1);
        let from_stack = trace.from_stack();
        trace.assert(
            from_stack.len() == 1
                && from_stack[0].flags.syn
                && from_stack[0].seq == 1000
                && from_stack[0].src == SocketAddr::new(net.stack_v4().into(), 40000),
            "injected SYN not captured as FromStack",
        );
        let len = std::fs::metadata(&trace.pcap_path).unwrap().len();
        assert!(
            len > 24,
            "pcap {} has {len} bytes",
            trace.pcap_path.display()
        );
        // tshark reads the pcap back: the file is one other tools understand.
        if crate::require_tool(
            "tap_capture_sees_arp_and_injected_syn (tshark)",
            "tshark",
            "-v",
        ) {
            let out = Command::new("tshark")
                .arg("-r")
                .arg(&trace.pcap_path)
                .output()
                .expect("run tshark");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "tshark: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.contains("ARP") && text.contains("SYN"),
                "tshark:\n{text}"
            );
        }

        drop(tap);
        drop(net);
        assert!(!netns_listed(&name), "netns {name} still listed after drop");
    }

    #[test]
    fn panicking_test_still_removes_namespace() {
        if !crate::require_tap("panicking_test_still_removes_namespace") {
            return;
        }
        let name = std::sync::Mutex::new(String::new());
        let r = std::panic::catch_unwind(|| {
            let net = TapNet::new().unwrap();
            *name.lock().unwrap() = net.ns().name().to_string();
            panic!("test failure inside the namespace");
        });
        assert!(r.is_err());
        let name = name.into_inner().unwrap();
        assert!(!name.is_empty());
        assert!(!netns_listed(&name), "netns {name} survived a panic");
        assert!(!Path::new("/run/netns").join(&name).exists());
    }

    #[test]
    fn stale_namespaces_of_dead_processes_are_swept() {
        if !crate::require_tap("stale_namespaces_of_dead_processes_are_swept") {
            return;
        }
        // A pid that is not running.
        let dead = (100_000..4_000_000u32)
            .rev()
            .find(|p| !Path::new(&format!("/proc/{p}")).exists())
            .unwrap();
        let stale = format!("lsk{dead}x0");
        let ok = Command::new("ip")
            .args(["netns", "add", &stale])
            .status()
            .unwrap();
        assert!(ok.success());
        let _fresh = crate::Netns::new().unwrap();
        let gone = !netns_listed(&stale);
        if !gone {
            let _ = Command::new("ip").args(["netns", "del", &stale]).status();
        }
        assert!(gone, "stale netns {stale} not swept");
    }
}
