//! The demo's private network: a namespace whose kernel is the client, and a TAP device whose
//! kernel side lives in it while lingerstack holds the other end. Everything goes through
//! iproute2; the kernel client runs as `ip netns exec NS lingerstackd demo-peer ...`, so no
//! thread of this process has to enter the namespace.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use lingerstack_tap::TapLink;

/// The kernel's address on the TAP network.
pub const KERNEL_V4: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
/// lingerstack's address.
pub const STACK_V4: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);
/// The kernel side's MAC.
const KERNEL_MAC: &str = "02:00:00:00:01:01";

/// A namespace with the kernel side of a TAP in it; removed on drop.
pub struct PrivateNet {
    ns: String,
    tap: String,
}

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl PrivateNet {
    /// Create the namespace and the TAP (in this namespace, where lingerstack opens it), then
    /// move the TAP's kernel side into the namespace and configure it. Returns the TAP for
    /// lingerstack.
    pub fn new() -> Result<(PrivateNet, TapLink), String> {
        let pid = std::process::id();
        let net = PrivateNet {
            ns: format!("lsd-demo-{pid}"),
            tap: format!("lsdemo{pid}"),
        };
        let _ = ip(&["netns", "del", &net.ns]);
        ip(&["netns", "add", &net.ns])?;
        // From here on, dropping `net` removes the namespace.
        let tap = TapLink::open(&net.tap).map_err(|e| format!("TAP {}: {e}", net.tap))?;
        let kernel = format!("{KERNEL_V4}/24");
        ip(&["link", "set", "dev", &net.tap, "netns", &net.ns])?;
        ip(&["-n", &net.ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", &net.ns, "link", "set", "dev", &net.tap, "address", KERNEL_MAC,
        ])?;
        ip(&["-n", &net.ns, "addr", "add", &kernel, "dev", &net.tap])?;
        ip(&["-n", &net.ns, "link", "set", "dev", &net.tap, "up"])?;
        Ok((net, tap))
    }

    /// The namespace's name.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The TAP's name.
    pub fn tap(&self) -> &str {
        &self.tap
    }

    /// Wait until the kernel side has carrier (lingerstack holds the TAP open).
    pub fn wait_link_up(&self, within: Duration) -> Result<(), String> {
        let end = Instant::now() + within;
        loop {
            let link = ip(&["-n", &self.ns, "link", "show", "dev", &self.tap])?;
            if link.contains("LOWER_UP") {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(format!("{}: no carrier after {within:?}", self.tap));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run the kernel client of one scenario in the namespace (see [`peer`]).
    pub fn run_peer(&self, args: &PeerArgs) -> Result<PeerResult, String> {
        let exe = std::env::current_exe().map_err(|e| format!("finding lingerstackd: {e}"))?;
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(exe)
            .arg("demo-peer")
            .args(args.to_args())
            .output()
            .map_err(|e| format!("running the kernel client: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        PeerResult::parse(text.trim()).ok_or_else(|| {
            format!(
                "the kernel client failed: {}{}",
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
    }
}

impl Drop for PrivateNet {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

/// What the kernel client of one scenario does.
#[derive(Clone, Debug, clap::Args)]
pub struct PeerArgs {
    /// Where to connect.
    #[arg(long)]
    pub connect: SocketAddr,
    /// Bytes to send.
    #[arg(long)]
    pub payload: usize,
    /// A small receive buffer (bytes), set before connecting.
    #[arg(long)]
    pub rcvbuf: Option<usize>,
    /// Milliseconds to wait after closing our side before reading.
    #[arg(long)]
    pub read_after_ms: u64,
}

impl PeerArgs {
    fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--connect".into(),
            self.connect.to_string(),
            "--payload".into(),
            self.payload.to_string(),
            "--read-after-ms".into(),
            self.read_after_ms.to_string(),
        ];
        if let Some(n) = self.rcvbuf {
            v.extend(["--rcvbuf".into(), n.to_string()]);
        }
        v
    }
}

/// What the kernel client saw: its port, how much of the echo it read, how the stream ended
/// (`EOF`, `ECONNRESET`, `mismatch` or an error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerResult {
    /// The client's port (names the connection in the capture).
    pub local_port: u16,
    /// Echo bytes read.
    pub read: usize,
    /// How the read ended.
    pub ending: String,
}

impl PeerResult {
    fn parse(line: &str) -> Option<PeerResult> {
        let mut parts = line.splitn(3, ' ');
        Some(PeerResult {
            local_port: parts.next()?.parse().ok()?,
            read: parts.next()?.parse().ok()?,
            ending: parts.next()?.to_string(),
        })
    }
}

/// The bytes a client sends: a recognisable pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// `lingerstackd demo-peer`: the kernel client, run inside the namespace. Sends the payload,
/// closes its side, waits, reads the echo to its end; prints one line for [`PeerResult`].
pub fn peer(args: &PeerArgs) -> Result<(), String> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(|e| format!("socket: {e}"))?;
    if let Some(n) = args.rcvbuf {
        sock.set_recv_buffer_size(n)
            .map_err(|e| format!("SO_RCVBUF: {e}"))?;
    }
    sock.connect_timeout(&args.connect.into(), Duration::from_secs(5))
        .map_err(|e| format!("connect to {}: {e}", args.connect))?;
    let mut conn = TcpStream::from(sock);
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let local_port = conn.local_addr().map_err(|e| e.to_string())?.port();
    let payload = pattern(args.payload);
    conn.write_all(&payload)
        .map_err(|e| format!("write: {e}"))?;
    // Let the echo come back into the (small) buffer before closing our side.
    std::thread::sleep(Duration::from_millis(50));
    conn.shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    std::thread::sleep(Duration::from_millis(args.read_after_ms));
    let mut data = Vec::new();
    let ending = match conn.read_to_end(&mut data) {
        Ok(_) => "EOF".to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "ECONNRESET".to_string(),
        Err(e) => format!("error: {e}"),
    };
    let ending = if data.as_slice() == &payload[..data.len().min(payload.len())] {
        ending
    } else {
        "mismatch".to_string()
    };
    println!("{local_port} {} {ending}", data.len());
    Ok(())
}
