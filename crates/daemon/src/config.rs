//! Configuration of `lingerstackd run`: command-line flags over an optional TOML file, checked
//! completely before anything is started.
//!
//! Each setting is defined once, in [`Settings`]: clap derives the flags from it and serde
//! reads the file into the same struct, so a new setting is one field (its doc comment is its
//! `--help`), one line in [`resolve`] and one in [`Config`]. [`resolve`] lays the flags over
//! the file, checks every value with one parser per kind of value, and applies the defaults
//! (the constants below); a bad value gives the same one-line message wherever it came from,
//! naming where (`--mtu`, or `daemon.toml: mtu`) and the value itself. [`Config`] is the
//! checked, typed result the daemon runs with.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use lingerstack_stack::{Cidr, KeepAlive, StackConfig};
use serde::Deserialize;

use crate::logging::LogFormat;
use crate::netns::NetnsTarget;

/// Smallest MTU accepted (the IPv4 minimum datagram every host must take).
pub const MIN_MTU: usize = 576;
/// Smallest MTU accepted when IPv6 is configured (RFC 8200).
pub const MIN_MTU_V6: usize = 1280;
/// Largest MTU a TAP device takes.
pub const MAX_MTU: usize = 65521;
/// Smallest socket buffer accepted, bytes.
pub const MIN_BUFFER: usize = 1024;
/// Largest socket buffer accepted, bytes (smoltcp's window scaling reaches 1 GiB; 64 MiB per
/// socket is already more than a daemon should hold).
pub const MAX_BUFFER: usize = 64 * 1024 * 1024;
/// Longest drain time accepted.
pub const MAX_DRAIN: Duration = Duration::from_secs(3600);
/// Longest keep-alive idle time accepted.
pub const MAX_KEEP_ALIVE: Duration = Duration::from_secs(24 * 3600);
/// Default keep-alive idle time of the daemon's connections: a vanished client is released
/// (with its task and buffers) about ten minutes after it was last heard.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(600);
/// Default time between unanswered keep-alive probes (Windows' value).
pub const DEFAULT_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// Default path of the control socket: inside the daemon's own runtime directory, the one a
/// systemd unit's `RuntimeDirectory=lingerstackd` creates (and the daemon creates if missing).
pub const DEFAULT_CONTROL: &str = "/run/lingerstackd/lingerstackd.sock";
/// Default MAC of the stack (locally administered, unicast).
pub const DEFAULT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
/// Largest `max_connections` accepted.
pub const MAX_CONNECTIONS: usize = 1_000_000;
/// Default listen backlog: connections each listener holds ready to be accepted.
pub const DEFAULT_BACKLOG: usize = 128;
/// Largest backlog accepted.
pub const MAX_BACKLOG: usize = 4096;
/// Longest Unix socket path (`sun_path` is 108 bytes with its NUL).
const MAX_UNIX_PATH: usize = 107;

/// A configuration error: one line naming the bad value and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn bad(origin: &str, value: &str, why: impl fmt::Display) -> ConfigError {
    ConfigError(format!("{origin} {value:?}: {why}"))
}

/// How the daemon closes a connection it owns: the Winsock linger setting it applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LingerMode {
    /// SO_DONTLINGER: FIN after all queued data, in the background.
    Graceful,
    /// SO_LINGER {1, 0}: RST at once, queued data discarded.
    Abort,
    /// SO_LINGER {1, N}, blocking: wait up to N seconds for every byte and the FIN to be
    /// acknowledged, then RST.
    Linger(u16),
}

impl LingerMode {
    /// The `set_linger` value of this mode: `None` (a FIN in the background), `Some(0)` (a
    /// RST), or `Some(N s)` (wait for every byte and the FIN to be acknowledged, RST at N s).
    pub fn linger(self) -> Option<Duration> {
        match self {
            LingerMode::Graceful => None,
            LingerMode::Abort => Some(Duration::ZERO),
            LingerMode::Linger(n) => Some(Duration::from_secs(u64::from(n))),
        }
    }
}

impl fmt::Display for LingerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LingerMode::Graceful => f.write_str("graceful"),
            LingerMode::Abort => f.write_str("abort"),
            LingerMode::Linger(n) => write!(f, "linger:{n}"),
        }
    }
}

impl FromStr for LingerMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s {
            "graceful" | "dontlinger" => return Ok(LingerMode::Graceful),
            "abort" | "abortive" | "reset" => return Ok(LingerMode::Abort),
            _ => {}
        }
        let Some(n) = s
            .strip_prefix("linger:")
            .or_else(|| s.strip_prefix("linger="))
        else {
            return Err("expected graceful, abort or linger:SECONDS".into());
        };
        let n = n.strip_suffix('s').unwrap_or(n);
        match n.parse::<u16>() {
            Ok(0) => Ok(LingerMode::Abort),
            Ok(n) => Ok(LingerMode::Linger(n)),
            Err(_) => Err("linger seconds must be a whole number from 0 to 65535".into()),
        }
    }
}

/// The protocol of a built-in service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// RFC 862: every byte received is sent back.
    Echo,
    /// RFC 863: every byte received is thrown away.
    Discard,
    /// RFC 864: a stream of characters until the client goes away.
    Chargen,
}

impl ServiceKind {
    /// The service's name.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Echo => "echo",
            ServiceKind::Discard => "discard",
            ServiceKind::Chargen => "chargen",
        }
    }
}

impl FromStr for ServiceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "echo" => Ok(ServiceKind::Echo),
            "discard" => Ok(ServiceKind::Discard),
            "chargen" => Ok(ServiceKind::Chargen),
            _ => Err("expected echo, discard or chargen".into()),
        }
    }
}

/// A built-in service on a port of the stack's addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Which protocol.
    pub kind: ServiceKind,
    /// The TCP port on the stack.
    pub port: u16,
    /// How its connections are closed.
    pub linger: LingerMode,
}

/// Which way a forward goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A port on the stack's address, forwarded to an address the host reaches.
    Inbound,
    /// A listener on a host address, forwarded to an address on the TAP network.
    Outbound,
}

/// A TCP port forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardSpec {
    /// Which way.
    pub direction: Direction,
    /// Where it listens: on the stack (inbound, the address may be unspecified) or on the host.
    pub listen: SocketAddr,
    /// Where it connects: a host address (inbound) or an address on the TAP network (outbound).
    pub target: SocketAddr,
    /// How the connection on the stack side is closed when the daemon closes it; the host side
    /// follows the same mode.
    pub linger: LingerMode,
}

impl ForwardSpec {
    /// A short name for logs and status: `in 0.0.0.0:8080 -> 127.0.0.1:80`.
    pub fn name(&self) -> String {
        let dir = match self.direction {
            Direction::Inbound => "in",
            Direction::Outbound => "out",
        };
        format!("forward-{dir} {} -> {}", self.listen, self.target)
    }
}

/// The complete, checked configuration of the daemon (what [`resolve`] makes of the
/// [`Settings`]; each field's meaning is documented there).
#[derive(Clone, Debug)]
pub struct Config {
    /// TAP device name (created if missing, else attached to).
    pub tap: String,
    /// Network namespace to open the TAP in (`--netns`); None: the daemon's own.
    pub netns: Option<NetnsTarget>,
    /// IPv4 address of the stack.
    pub ipv4: Option<Cidr<Ipv4Addr>>,
    /// IPv6 address of the stack.
    pub ipv6: Option<Cidr<Ipv6Addr>>,
    /// IPv4 default gateway.
    pub gateway_v4: Option<Ipv4Addr>,
    /// IPv6 default gateway.
    pub gateway_v6: Option<Ipv6Addr>,
    /// The stack's MAC.
    pub mac: [u8; 6],
    /// MTU to set on the TAP; `None` keeps the device's.
    pub mtu: Option<usize>,
    /// Receive buffer of each TCP socket, bytes.
    pub rx_buffer: usize,
    /// Send buffer of each TCP socket, bytes.
    pub tx_buffer: usize,
    /// Default linger mode of the connections the daemon owns.
    pub linger: LingerMode,
    /// Write every frame to this pcap file.
    pub pcap: Option<PathBuf>,
    /// Log filter (env_logger syntax).
    pub log_level: String,
    /// Write logs to this file instead of stderr (reopened on SIGHUP).
    pub log_file: Option<PathBuf>,
    /// One line of text per record, or one JSON object.
    pub log_format: LogFormat,
    /// Unix socket for `lingerstackd status`.
    pub control: PathBuf,
    /// Prometheus text endpoint on a host loopback address.
    pub metrics: Option<SocketAddr>,
    /// Longest wait for connections to close at a stop before the rest is reset.
    pub drain: Duration,
    /// Deadline of a graceful background close (close-semantics C24).
    pub close_deadline: Duration,
    /// Keep-alive of every connection the daemon owns (None: off).
    pub keep_alive: Option<KeepAlive>,
    /// Group that may use the control socket (mode 0660); None: the owner only (0600).
    pub control_group: Option<u32>,
    /// Most connections the daemon holds at once (None: no limit). At the limit it stops
    /// accepting; once the listeners' small queues are full, a SYN goes unanswered and the
    /// client retries.
    pub max_connections: Option<usize>,
    /// Connections each listener holds ready to be accepted; at `max_connections` this many
    /// more handshakes complete and wait, then SYNs go unanswered.
    pub backlog: usize,
    /// Use the TAP's offloads (TCP super-segments, partial checksums) if the kernel accepts
    /// them.
    pub offload: bool,
    /// Built-in services.
    pub services: Vec<ServiceSpec>,
    /// Port forwards.
    pub forwards: Vec<ForwardSpec>,
}

impl Config {
    /// The engine configuration this daemon configuration asks for.
    pub fn stack_config(&self) -> StackConfig {
        StackConfig {
            mac: self.mac,
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            gateway_v4: self.gateway_v4,
            gateway_v6: self.gateway_v6,
            rx_buffer: self.rx_buffer,
            tx_buffer: self.tx_buffer,
            close_deadline: self.close_deadline,
            max_backlog: self.backlog,
            ..StackConfig::default()
        }
    }

    /// The addresses in CIDR notation, for logs and status.
    pub fn addresses(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(c) = self.ipv4 {
            out.push(format!("{}/{}", c.addr, c.prefix));
        }
        if let Some(c) = self.ipv6 {
            out.push(format!("{}/{}", c.addr, c.prefix));
        }
        out
    }

    /// The gateways, for logs and status.
    pub fn gateways(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(g) = self.gateway_v4 {
            out.push(g.to_string());
        }
        if let Some(g) = self.gateway_v6 {
            out.push(g.to_string());
        }
        out
    }
}

/// Every setting of `lingerstackd run`, as given, defined once: the same struct is the
/// command line (clap: each doc comment below is the flag's `--help` line) and the TOML file
/// (serde: each field is the key of the same name). Values stay text here; [`resolve`] lays
/// the flags over the file, checks everything, applies the defaults and yields a [`Config`].
/// Unknown keys in the file are an error, so a typo does not pass silently.
#[derive(Clone, Debug, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// TOML configuration file; flags given here win over it.
    #[arg(long, short = 'c', value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// TAP device name (created if missing, attached to if it exists).
    #[arg(long, value_name = "NAME")]
    pub tap: Option<String>,
    /// Open the TAP in this network namespace: a name (ip netns), a path, or a PID; the
    /// daemon's other sockets stay in the namespace it was started in.
    #[arg(long, value_name = "NAME|PATH|PID")]
    pub netns: Option<String>,
    /// IPv4 address of the stack, in CIDR notation (10.0.0.2/24).
    #[arg(long, value_name = "CIDR")]
    pub ipv4: Option<String>,
    /// IPv6 address of the stack, in CIDR notation (fd00::2/64).
    #[arg(long, value_name = "CIDR")]
    pub ipv6: Option<String>,
    /// Default gateway (once per family; in the file a string or a list).
    #[arg(long, value_name = "ADDR")]
    #[serde(default, deserialize_with = "one_or_many")]
    pub gateway: Vec<String>,
    /// MAC of the stack (default 02:00:00:00:00:02).
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// MTU to set on the TAP (default: keep the device's).
    #[arg(long, value_name = "BYTES")]
    pub mtu: Option<Text>,
    /// Receive buffer of each TCP socket (256k by default).
    #[arg(long, value_name = "SIZE")]
    pub rx_buffer: Option<Text>,
    /// Send buffer of each TCP socket (256k by default).
    #[arg(long, value_name = "SIZE")]
    pub tx_buffer: Option<Text>,
    /// Default linger mode: graceful, abort or linger:SECONDS.
    #[arg(long, value_name = "MODE")]
    pub linger: Option<String>,
    /// Write every frame to this pcap file (SIGHUP reopens it).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Log level or env_logger filter (the flag beats RUST_LOG, which beats the file).
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log to this file instead of stderr (SIGHUP reopens it).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Log format: text (default) or json (one object per line: ts, level, target, message,
    /// fields).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Control socket for `lingerstackd status` and `ctl` (/run/lingerstackd/lingerstackd.sock
    /// by default).
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Group (name or number) allowed to use the control socket (mode 0660; else 0600).
    #[arg(long, value_name = "GROUP")]
    pub control_group: Option<Text>,
    /// Write a line to this open file descriptor once ready, then close it (for supervisors
    /// other than systemd; flag only).
    #[arg(long, value_name = "FD")]
    #[serde(skip)]
    pub ready_fd: Option<i32>,
    /// Prometheus text endpoint on a loopback address (127.0.0.1:9102).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<String>,
    /// Longest wait for connections to close at a stop (10s by default).
    #[arg(long, value_name = "DURATION")]
    pub drain: Option<Text>,
    /// Deadline of a graceful background close (60s by default).
    #[arg(long, value_name = "DURATION")]
    pub close_deadline: Option<Text>,
    /// Keep-alive idle time of the daemon's connections, or `off` (10m by default).
    #[arg(long, value_name = "DURATION")]
    pub keep_alive: Option<Text>,
    /// Time between unanswered keep-alive probes (1s by default; 10 probes, then a reset).
    #[arg(long, value_name = "DURATION")]
    pub keep_alive_interval: Option<Text>,
    /// Most connections held at once (no limit by default); beyond it, once the listeners'
    /// queues are full, new clients' SYNs go unanswered and they retry.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<Text>,
    /// Connections each listener holds ready to be accepted (128 by default).
    #[arg(long, value_name = "N")]
    pub backlog: Option<Text>,
    /// Plain frames on the TAP: no virtio-net header, no TCP segmentation or checksum
    /// offloads (on by default where the kernel accepts them). In the file `no_offload = true`.
    #[arg(long)]
    #[serde(default)]
    pub no_offload: bool,
    /// A service: KIND:PORT[,LINGER], KIND one of echo, discard, chargen (repeatable; in the
    /// file `[[service]]` tables).
    #[arg(long, value_name = "SPEC")]
    #[serde(default)]
    pub service: Vec<ServiceEntry>,
    /// A forward: in:PORT=HOST:PORT or out:HOST:PORT=ADDR:PORT, optionally ,LINGER
    /// (repeatable; in the file `[[forward]]` tables).
    #[arg(long, value_name = "SPEC")]
    #[serde(default)]
    pub forward: Vec<ForwardEntry>,
}

/// A setting's value as text: a flag's argument, or a TOML string, integer or float
/// (`mtu = 1500` and `mtu = "1500"` both work).
#[derive(Clone, Debug, PartialEq)]
pub struct Text(pub String);

impl Text {
    fn text(&self) -> String {
        self.0.clone()
    }
}

impl FromStr for Text {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Text(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Int(i64),
            Float(f64),
            Text(String),
        }
        Ok(Text(match Scalar::deserialize(d)? {
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s,
        }))
    }
}

/// `gateway = "10.0.0.1"` or `gateway = ["10.0.0.1", "fd00::1"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// A service as given: a flag's `KIND:PORT[,LINGER]`, or a `[[service]]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum ServiceEntry {
    /// `echo:7`, `chargen:19,abort`.
    Spec(String),
    /// `kind`, `port`, `linger`.
    Table(FileService),
}

impl FromStr for ServiceEntry {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ServiceEntry::Spec(s.to_string()))
    }
}

/// A forward as given: a flag's `in:PORT=HOST:PORT[,LINGER]`, or a `[[forward]]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum ForwardEntry {
    /// `in:8080=127.0.0.1:80`, `out:127.0.0.1:2222=10.0.0.1:22,abort`.
    Spec(String),
    /// `direction`, `listen`, `to`, `linger`.
    Table(FileForward),
}

impl FromStr for ForwardEntry {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ForwardEntry::Spec(s.to_string()))
    }
}

/// A `[[service]]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileService {
    /// echo, discard or chargen.
    pub kind: String,
    /// Port on the stack.
    pub port: Text,
    /// Linger mode (default: the daemon's).
    pub linger: Option<String>,
}

/// A `[[forward]]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileForward {
    /// inbound or outbound.
    pub direction: String,
    /// Listen address (inbound: a port or address:port on the stack; outbound: host address:port).
    pub listen: Text,
    /// Target address:port.
    pub to: String,
    /// Linger mode (default: the daemon's).
    pub linger: Option<String>,
}

/// A `[[service]]` table, checked (`origin` names it in errors).
fn service_table(
    origin: &str,
    s: &FileService,
    default: LingerMode,
) -> Result<ServiceSpec, ConfigError> {
    let kind = s
        .kind
        .parse()
        .map_err(|e| bad(&format!("{origin}.kind"), &s.kind, e))?;
    let port = parse_port(&format!("{origin}.port"), &s.port.text())?;
    let linger = match &s.linger {
        Some(l) => l
            .parse()
            .map_err(|e| bad(&format!("{origin}.linger"), l, e))?,
        None => default,
    };
    Ok(ServiceSpec { kind, port, linger })
}

/// A `[[forward]]` table, checked (`origin` names it in errors).
fn forward_table(
    origin: &str,
    f: &FileForward,
    default: LingerMode,
) -> Result<ForwardSpec, ConfigError> {
    let direction = parse_direction(&format!("{origin}.direction"), &f.direction)?;
    let listen = parse_listen(&format!("{origin}.listen"), &f.listen.text(), direction)?;
    let target = parse_socket_addr(&format!("{origin}.to"), &f.to)?;
    let linger = match &f.linger {
        Some(l) => l
            .parse()
            .map_err(|e| bad(&format!("{origin}.linger"), l, e))?,
        None => default,
    };
    Ok(ForwardSpec {
        direction,
        listen,
        target,
        linger,
    })
}

/// Read and parse the TOML file.
pub fn read_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        // toml's message spans lines (it quotes the source); keep the first for one clear line.
        let msg = e
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_string();
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default();
        ConfigError(format!("config file {}{at}: {msg}", path.display()))
    })
}

/// Pick the flag if given, else the file's value, and label where it came from.
fn pick(
    flag: Option<String>,
    flag_name: &str,
    file: Option<String>,
    file_prefix: &str,
    key: &str,
) -> Option<(String, String)> {
    match (flag, file) {
        (Some(v), _) => Some((flag_name.to_string(), v)),
        (None, Some(v)) => Some((format!("{file_prefix}{key}"), v)),
        (None, None) => None,
    }
}

/// Merge flags over the file and check everything. Nothing is opened or started here.
pub fn resolve(flags: Settings) -> Result<Config, ConfigError> {
    let (file, fp) = match &flags.config {
        Some(path) => (read_file(path)?, format!("{}: ", path.display())),
        None => (Settings::default(), String::new()),
    };
    let fp = fp.as_str();

    let (origin, tap) = pick(flags.tap, "--tap", file.tap, fp, "tap").ok_or_else(|| {
        ConfigError("no TAP device given: use --tap NAME or `tap` in the config file".into())
    })?;
    check_ifname(&origin, &tap)?;
    let netns = pick(flags.netns, "--netns", file.netns, fp, "netns")
        .map(|(o, v)| NetnsTarget::parse(&v).map_err(|e| bad(&o, &v, e)))
        .transpose()?;

    let ipv4 = pick(flags.ipv4, "--ipv4", file.ipv4, fp, "ipv4")
        .map(|(o, v)| parse_cidr_v4(&o, &v))
        .transpose()?;
    let ipv6 = pick(flags.ipv6, "--ipv6", file.ipv6, fp, "ipv6")
        .map(|(o, v)| parse_cidr_v6(&o, &v))
        .transpose()?;
    if ipv4.is_none() && ipv6.is_none() {
        return Err(ConfigError(
            "no address given: use --ipv4 CIDR and/or --ipv6 CIDR (or ipv4/ipv6 in the config file)"
                .into(),
        ));
    }

    let gateways: Vec<(String, String)> = if !flags.gateway.is_empty() {
        flags
            .gateway
            .into_iter()
            .map(|g| ("--gateway".to_string(), g))
            .collect()
    } else {
        file.gateway
            .into_iter()
            .map(|g| (format!("{fp}gateway"), g))
            .collect()
    };
    let (mut gateway_v4, mut gateway_v6) = (None, None);
    for (origin, text) in gateways {
        let ip: IpAddr = text
            .trim()
            .parse()
            .map_err(|_| bad(&origin, &text, "not an IPv4 or IPv6 address"))?;
        match ip {
            IpAddr::V4(g) => {
                let Some(net) = ipv4 else {
                    return Err(bad(
                        &origin,
                        &text,
                        "an IPv4 gateway needs an IPv4 address (--ipv4)",
                    ));
                };
                if !same_subnet_v4(net, g) {
                    return Err(bad(
                        &origin,
                        &text,
                        format!("not inside the stack's network {}/{}", net.addr, net.prefix),
                    ));
                }
                if gateway_v4.replace(g).is_some() {
                    return Err(bad(&origin, &text, "a second IPv4 gateway"));
                }
            }
            IpAddr::V6(g) => {
                if ipv6.is_none() {
                    return Err(bad(
                        &origin,
                        &text,
                        "an IPv6 gateway needs an IPv6 address (--ipv6)",
                    ));
                }
                if g.is_unspecified() || g.is_multicast() {
                    return Err(bad(&origin, &text, "not a unicast address"));
                }
                if gateway_v6.replace(g).is_some() {
                    return Err(bad(&origin, &text, "a second IPv6 gateway"));
                }
            }
        }
    }

    let mac = match pick(flags.mac, "--mac", file.mac, fp, "mac") {
        Some((o, v)) => parse_mac(&o, &v)?,
        None => DEFAULT_MAC,
    };

    let mtu = pick(
        flags.mtu.map(|s| s.text()),
        "--mtu",
        file.mtu.map(|s| s.text()),
        fp,
        "mtu",
    )
    .map(|(o, v)| {
        let min = if ipv6.is_some() { MIN_MTU_V6 } else { MIN_MTU };
        parse_range(&o, &v, min, MAX_MTU).map_err(|e| {
            if ipv6.is_some() && v.trim().parse::<usize>().is_ok_and(|m| m < MIN_MTU_V6) {
                bad(
                    &o,
                    &v,
                    format!("IPv6 needs an MTU of at least {MIN_MTU_V6}"),
                )
            } else {
                e
            }
        })
    })
    .transpose()?;

    let rx_buffer = pick(
        flags.rx_buffer.map(|s| s.text()),
        "--rx-buffer",
        file.rx_buffer.map(|s| s.text()),
        fp,
        "rx_buffer",
    )
    .map(|(o, v)| parse_size(&o, &v))
    .transpose()?
    .unwrap_or(StackConfig::default().rx_buffer);
    let tx_buffer = pick(
        flags.tx_buffer.map(|s| s.text()),
        "--tx-buffer",
        file.tx_buffer.map(|s| s.text()),
        fp,
        "tx_buffer",
    )
    .map(|(o, v)| parse_size(&o, &v))
    .transpose()?
    .unwrap_or(StackConfig::default().tx_buffer);

    let linger = match pick(flags.linger, "--linger", file.linger, fp, "linger") {
        Some((o, v)) => v.parse().map_err(|e| bad(&o, &v, e))?,
        None => LingerMode::Graceful,
    };

    let pcap = flags.pcap.or(file.pcap);
    if let Some(p) = &pcap {
        check_parent("--pcap / pcap", p)?;
    }
    let log_file = flags.log_file.or(file.log_file);
    if let Some(p) = &log_file {
        check_parent("--log-file / log_file", p)?;
    }
    let log_format = match pick(
        flags.log_format,
        "--log-format",
        file.log_format,
        fp,
        "log_format",
    ) {
        Some((o, v)) => v.parse().map_err(|e| bad(&o, &v, e))?,
        None => LogFormat::Text,
    };

    // --log-level beats RUST_LOG, which beats the file.
    let log_level = match (
        flags.log_level,
        std::env::var("RUST_LOG").ok(),
        file.log_level,
    ) {
        (Some(v), _, _) => check_log_level("--log-level", v)?,
        (None, Some(v), _) if !v.trim().is_empty() => v,
        (None, _, Some(v)) => check_log_level(&format!("{fp}log_level"), v)?,
        _ => "info".to_string(),
    };

    let control = flags
        .control
        .or(file.control)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL));
    if control.as_os_str().len() > MAX_UNIX_PATH {
        return Err(bad(
            "--control",
            &control.display().to_string(),
            format!("a Unix socket path is at most {MAX_UNIX_PATH} bytes"),
        ));
    }
    check_control_parent("--control / control", &control)?;

    let metrics = pick(flags.metrics, "--metrics", file.metrics, fp, "metrics")
        .map(|(o, v)| {
            let addr = parse_socket_addr(&o, &v)?;
            if !addr.ip().is_loopback() {
                return Err(bad(
                    &o,
                    &v,
                    "the metrics endpoint must be on a loopback address",
                ));
            }
            Ok(addr)
        })
        .transpose()?;

    let drain = pick(
        flags.drain.map(|s| s.text()),
        "--drain",
        file.drain.map(|s| s.text()),
        fp,
        "drain",
    )
    .map(|(o, v)| parse_duration(&o, &v))
    .transpose()?
    .unwrap_or(Duration::from_secs(10));
    if drain > MAX_DRAIN {
        return Err(ConfigError(format!(
            "drain {drain:?}: at most {MAX_DRAIN:?}"
        )));
    }
    let close_deadline = pick(
        flags.close_deadline.map(|s| s.text()),
        "--close-deadline",
        file.close_deadline.map(|s| s.text()),
        fp,
        "close_deadline",
    )
    .map(|(o, v)| parse_duration(&o, &v))
    .transpose()?
    .unwrap_or(StackConfig::default().close_deadline);
    if close_deadline.is_zero() {
        return Err(ConfigError(
            "close deadline 0: must be longer than zero".into(),
        ));
    }

    let max_connections = pick(
        flags.max_connections.map(|s| s.text()),
        "--max-connections",
        file.max_connections.map(|s| s.text()),
        fp,
        "max_connections",
    )
    .map(|(o, v)| parse_range(&o, &v, 1, MAX_CONNECTIONS))
    .transpose()?;

    let backlog = pick(
        flags.backlog.map(|s| s.text()),
        "--backlog",
        file.backlog.map(|s| s.text()),
        fp,
        "backlog",
    )
    .map(|(o, v)| parse_range(&o, &v, 1, MAX_BACKLOG))
    .transpose()?
    .unwrap_or(DEFAULT_BACKLOG);

    let keep_alive = resolve_keep_alive(
        pick(
            flags.keep_alive.map(|s| s.text()),
            "--keep-alive",
            file.keep_alive.map(|s| s.text()),
            fp,
            "keep_alive",
        ),
        pick(
            flags.keep_alive_interval.map(|s| s.text()),
            "--keep-alive-interval",
            file.keep_alive_interval.map(|s| s.text()),
            fp,
            "keep_alive_interval",
        ),
    )?;
    let control_group = pick(
        flags.control_group.map(|s| s.text()),
        "--control-group",
        file.control_group.map(|s| s.text()),
        fp,
        "control_group",
    )
    .map(|(o, v)| parse_group(&o, &v, Path::new("/etc/group")))
    .transpose()?;

    // A list given as flags replaces the file's list of the same kind.
    let (service_list, service_origin) = if flags.service.is_empty() {
        (file.service, format!("{fp}service"))
    } else {
        (flags.service, "--service".to_string())
    };
    let mut services = Vec::new();
    for (i, entry) in service_list.iter().enumerate() {
        let origin = format!("{service_origin}[{i}]");
        services.push(match entry {
            ServiceEntry::Spec(spec) => parse_service_flag(spec, linger)?,
            ServiceEntry::Table(table) => service_table(&origin, table, linger)?,
        });
    }
    let (forward_list, forward_origin) = if flags.forward.is_empty() {
        (file.forward, format!("{fp}forward"))
    } else {
        (flags.forward, "--forward".to_string())
    };
    let mut forwards = Vec::new();
    for (i, entry) in forward_list.iter().enumerate() {
        let origin = format!("{forward_origin}[{i}]");
        forwards.push(match entry {
            ForwardEntry::Spec(spec) => parse_forward_flag(spec, linger)?,
            ForwardEntry::Table(table) => forward_table(&origin, table, linger)?,
        });
    }

    // Stack ports must be unique; outbound targets need their family on the stack.
    let mut stack_ports: Vec<(u16, String)> = Vec::new();
    for s in &services {
        stack_ports.push((s.port, format!("{}:{}", s.kind.name(), s.port)));
    }
    for f in &forwards {
        check_forward(f, ipv4, ipv6)?;
        if f.direction == Direction::Inbound {
            stack_ports.push((f.listen.port(), f.name()));
        }
    }
    for (i, (port, name)) in stack_ports.iter().enumerate() {
        if let Some((_, other)) = stack_ports[..i].iter().find(|(p, _)| p == port) {
            return Err(ConfigError(format!(
                "port {port} on the stack is used twice: by {other} and by {name}"
            )));
        }
    }

    Ok(Config {
        tap,
        netns,
        ipv4,
        ipv6,
        gateway_v4,
        gateway_v6,
        mac,
        mtu,
        rx_buffer,
        tx_buffer,
        linger,
        pcap,
        log_level,
        log_file,
        log_format,
        control,
        metrics,
        drain,
        close_deadline,
        keep_alive,
        control_group,
        max_connections,
        backlog,
        offload: !(flags.no_offload || file.no_offload),
        services,
        forwards,
    })
}

/// A forward's addresses checked against the stack's: an inbound forward listens on one of
/// the stack's addresses (or all of them); an outbound one reaches a target with an address
/// and a port, of a family the stack has. (Used at start and by the control socket's
/// `add-forward`.)
pub fn check_forward(
    f: &ForwardSpec,
    ipv4: Option<Cidr<Ipv4Addr>>,
    ipv6: Option<Cidr<Ipv6Addr>>,
) -> Result<(), ConfigError> {
    match f.direction {
        Direction::Inbound => {
            let ok = match f.listen.ip() {
                IpAddr::V4(a) => a.is_unspecified() || ipv4.is_some_and(|c| c.addr == a),
                IpAddr::V6(a) => a.is_unspecified() || ipv6.is_some_and(|c| c.addr == a),
            };
            if !ok {
                return Err(ConfigError(format!(
                    "forward {}: listen address {} is not one of the stack's addresses",
                    f.name(),
                    f.listen.ip()
                )));
            }
        }
        Direction::Outbound => {
            let family_ok = match f.target.ip() {
                IpAddr::V4(_) => ipv4.is_some(),
                IpAddr::V6(_) => ipv6.is_some(),
            };
            if !family_ok {
                return Err(ConfigError(format!(
                    "forward {}: the stack has no address of the target's family",
                    f.name()
                )));
            }
            if f.target.ip().is_unspecified() || f.target.port() == 0 {
                return Err(ConfigError(format!(
                    "forward {}: the target needs an address and a port",
                    f.name()
                )));
            }
        }
    }
    Ok(())
}

/// Keep-alive from its idle time (`off` or `0`: none) and probe interval, each an
/// (origin, text) pair when given. Windows' probe count (10) stays.
fn resolve_keep_alive(
    idle: Option<(String, String)>,
    interval: Option<(String, String)>,
) -> Result<Option<KeepAlive>, ConfigError> {
    let idle = match idle {
        Some((_, v)) if matches!(v.trim(), "off" | "0") => return Ok(None),
        Some((o, v)) => parse_duration_up_to(&o, &v, MAX_KEEP_ALIVE)?,
        None => DEFAULT_KEEP_ALIVE,
    };
    let interval = match interval {
        Some((o, v)) => {
            let d = parse_duration(&o, &v)?;
            if d.is_zero() {
                return Err(bad(&o, &v, "must be longer than zero"));
            }
            d
        }
        None => DEFAULT_KEEP_ALIVE_INTERVAL,
    };
    Ok(Some(KeepAlive::with_times(idle, interval)))
}

/// A group given by number, or by name as listed in `group_file` (/etc/group).
fn parse_group(origin: &str, v: &str, group_file: &Path) -> Result<u32, ConfigError> {
    let name = v.trim();
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let text = std::fs::read_to_string(group_file)
        .map_err(|e| bad(origin, v, format!("reading {}: {e}", group_file.display())))?;
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let n = fields.next()?;
            let gid = fields.nth(1)?.parse::<u32>().ok()?;
            (n == name).then_some(gid)
        })
        .next()
        .ok_or_else(|| {
            bad(
                origin,
                v,
                format!("no such group in {}", group_file.display()),
            )
        })
}

fn check_ifname(origin: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(bad(origin, name, "empty"));
    }
    if name.len() > 15 {
        return Err(bad(origin, name, "an interface name is at most 15 bytes"));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c == '\0' || c == ':')
    {
        return Err(bad(origin, name, "not a valid interface name"));
    }
    Ok(())
}

/// The control socket's directory is created at the start when missing (the default one,
/// /run/lingerstackd/, exists beforehand only under a systemd unit), so only a parent that
/// exists as something other than a directory is an error.
fn check_control_parent(origin: &str, path: &Path) -> Result<(), ConfigError> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent
        && parent.exists()
        && !parent.is_dir()
    {
        return Err(bad(
            origin,
            &path.display().to_string(),
            format!("{} is not a directory", parent.display()),
        ));
    }
    Ok(())
}

fn check_parent(origin: &str, path: &Path) -> Result<(), ConfigError> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent
        && !parent.is_dir()
    {
        return Err(bad(
            origin,
            &path.display().to_string(),
            format!("directory {} does not exist", parent.display()),
        ));
    }
    Ok(())
}

fn check_log_level(origin: &str, v: String) -> Result<String, ConfigError> {
    // A plain level, or an env_logger filter such as "info,lingerstack_stack=debug".
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let ok = v.split(',').all(|part| {
        let level = part.split_once('=').map_or(part, |(_, l)| l).trim();
        LEVELS.contains(&level)
    });
    if ok {
        Ok(v)
    } else {
        Err(bad(
            origin,
            &v,
            "expected off, error, warn, info, debug or trace (or a filter such as info,lingerstack_stack=debug)",
        ))
    }
}

/// What tells the two address families apart when parsing `ADDRESS/PREFIX`.
struct Family<A> {
    example: &'static str,
    not_an_address: &'static str,
    max_prefix: u8,
    usable: fn(&A) -> bool,
}

const V4: Family<Ipv4Addr> = Family {
    example: "expected ADDRESS/PREFIX, e.g. 10.0.0.2/24",
    not_an_address: "not an IPv4 address",
    max_prefix: 32,
    usable: |a| !(a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback()),
};

const V6: Family<Ipv6Addr> = Family {
    example: "expected ADDRESS/PREFIX, e.g. fd00::2/64",
    not_an_address: "not an IPv6 address",
    max_prefix: 128,
    usable: |a| !(a.is_unspecified() || a.is_multicast() || a.is_loopback()),
};

fn parse_cidr<A: FromStr>(
    family: &Family<A>,
    origin: &str,
    v: &str,
) -> Result<Cidr<A>, ConfigError> {
    let (a, p) = v
        .trim()
        .split_once('/')
        .ok_or_else(|| bad(origin, v, family.example))?;
    let addr: A = a
        .parse()
        .map_err(|_| bad(origin, v, family.not_an_address))?;
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|p| (1..=family.max_prefix).contains(p))
        .ok_or_else(|| {
            bad(
                origin,
                v,
                format!("the prefix length must be 1 to {}", family.max_prefix),
            )
        })?;
    if !(family.usable)(&addr) {
        return Err(bad(origin, v, "not a usable unicast address"));
    }
    Ok(Cidr { addr, prefix })
}

/// Parse `a.b.c.d/n`.
pub fn parse_cidr_v4(origin: &str, v: &str) -> Result<Cidr<Ipv4Addr>, ConfigError> {
    parse_cidr(&V4, origin, v)
}

/// Parse `addr/n` for IPv6.
pub fn parse_cidr_v6(origin: &str, v: &str) -> Result<Cidr<Ipv6Addr>, ConfigError> {
    parse_cidr(&V6, origin, v)
}

fn same_subnet_v4(net: Cidr<Ipv4Addr>, ip: Ipv4Addr) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(net.prefix))
        .unwrap_or(0);
    u32::from(net.addr) & mask == u32::from(ip) & mask
}

/// Parse `02:00:00:00:00:02` (also with `-`).
pub fn parse_mac(origin: &str, v: &str) -> Result<[u8; 6], ConfigError> {
    let parts: Vec<&str> = v.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad(
            origin,
            v,
            "expected six hex octets, e.g. 02:00:00:00:00:02",
        ));
    }
    let mut mac = [0u8; 6];
    for (dst, part) in mac.iter_mut().zip(&parts) {
        if part.is_empty() || part.len() > 2 {
            return Err(bad(
                origin,
                v,
                "expected six hex octets, e.g. 02:00:00:00:00:02",
            ));
        }
        *dst = u8::from_str_radix(part, 16)
            .map_err(|_| bad(origin, v, "expected six hex octets, e.g. 02:00:00:00:00:02"))?;
    }
    if mac[0] & 1 != 0 {
        return Err(bad(
            origin,
            v,
            "a multicast MAC; the stack needs a unicast one",
        ));
    }
    if mac == [0; 6] {
        return Err(bad(origin, v, "the all-zero MAC is not usable"));
    }
    Ok(mac)
}

fn parse_range(origin: &str, v: &str, min: usize, max: usize) -> Result<usize, ConfigError> {
    let n: usize = v
        .trim()
        .parse()
        .map_err(|_| bad(origin, v, "not a whole number"))?;
    if !(min..=max).contains(&n) {
        return Err(bad(origin, v, format!("must be between {min} and {max}")));
    }
    Ok(n)
}

/// Parse a byte size: `262144`, `256k`, `256KiB`, `1M`, `1MiB`.
pub fn parse_size(origin: &str, v: &str) -> Result<usize, ConfigError> {
    let t = v.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mult) = [
        ("kib", 1024),
        ("mib", 1024 * 1024),
        ("k", 1024),
        ("m", 1024 * 1024),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suffix, mult)| {
        lower
            .strip_suffix(suffix)
            .map(|n| (n.trim().to_string(), *mult))
    })
    .unwrap_or((lower.clone(), 1));
    let n: usize = num
        .parse()
        .map_err(|_| bad(origin, v, "not a size (bytes, or with k/KiB or M/MiB)"))?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| bad(origin, v, "too large"))?;
    if !(MIN_BUFFER..=MAX_BUFFER).contains(&bytes) {
        return Err(bad(
            origin,
            v,
            format!(
                "a buffer must be between {MIN_BUFFER} bytes and {} MiB",
                MAX_BUFFER >> 20
            ),
        ));
    }
    Ok(bytes)
}

/// Parse a duration of at most an hour: `10` (seconds), `10s`, `500ms`, `2m`, `1.5s`.
pub fn parse_duration(origin: &str, v: &str) -> Result<Duration, ConfigError> {
    parse_duration_up_to(origin, v, MAX_DRAIN)
}

/// Parse a duration of at most `max`; `h` (hours) is understood too.
pub fn parse_duration_up_to(origin: &str, v: &str, max: Duration) -> Result<Duration, ConfigError> {
    let t = v.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let x: f64 = num
        .trim()
        .parse()
        .map_err(|_| bad(origin, v, "not a duration (e.g. 10s, 500ms, 2m)"))?;
    let secs = x * scale;
    if !secs.is_finite() || secs < 0.0 || secs > max.as_secs_f64() {
        return Err(bad(
            origin,
            v,
            format!("must be between 0 and {}s", max.as_secs()),
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_port(origin: &str, v: &str) -> Result<u16, ConfigError> {
    match v.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(bad(origin, v, "a port must be 1 to 65535")),
        Ok(p) => Ok(p),
    }
}

/// Parse `host:port` with a literal address (`[v6]:port` for IPv6).
pub fn parse_socket_addr(origin: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = v
        .trim()
        .parse()
        .map_err(|_| bad(origin, v, "expected ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)"))?;
    if addr.port() == 0 {
        return Err(bad(origin, v, "a port must be 1 to 65535"));
    }
    Ok(addr)
}

pub fn parse_direction(origin: &str, v: &str) -> Result<Direction, ConfigError> {
    match v.trim() {
        "in" | "inbound" => Ok(Direction::Inbound),
        "out" | "outbound" => Ok(Direction::Outbound),
        _ => Err(bad(origin, v, "expected inbound or outbound")),
    }
}

/// Inbound: a bare port means every stack address. Outbound: a host address:port.
pub fn parse_listen(
    origin: &str,
    v: &str,
    direction: Direction,
) -> Result<SocketAddr, ConfigError> {
    match direction {
        Direction::Inbound => match v.trim().parse::<u16>() {
            Ok(p) => {
                parse_port(origin, v)?;
                Ok(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), p))
            }
            Err(_) => parse_socket_addr(origin, v),
        },
        Direction::Outbound => parse_socket_addr(origin, v),
    }
}

/// `--service KIND:PORT[,LINGER]`.
pub fn parse_service_flag(v: &str, default: LingerMode) -> Result<ServiceSpec, ConfigError> {
    let origin = "--service";
    let (main, linger) = match v.split_once(',') {
        Some((m, l)) => (m, Some(l)),
        None => (v, None),
    };
    let (kind, port) = main.split_once(':').ok_or_else(|| {
        bad(
            origin,
            v,
            "expected KIND:PORT[,LINGER], e.g. echo:7 or chargen:19,abort",
        )
    })?;
    let kind = kind.parse().map_err(|e| bad(origin, v, e))?;
    let port = parse_port(origin, port).map_err(|_| bad(origin, v, "a port must be 1 to 65535"))?;
    let linger = match linger {
        Some(l) => l.parse().map_err(|e| bad(origin, v, e))?,
        None => default,
    };
    Ok(ServiceSpec { kind, port, linger })
}

/// `--forward in:LISTEN=TARGET[,LINGER]` or `--forward out:LISTEN=TARGET[,LINGER]`.
pub fn parse_forward_flag(v: &str, default: LingerMode) -> Result<ForwardSpec, ConfigError> {
    let origin = "--forward";
    let usage = "expected in:PORT=HOST:PORT or out:HOST:PORT=ADDR:PORT, optionally ,LINGER";
    let (main, linger) = match v.split_once(',') {
        Some((m, l)) => (m, Some(l)),
        None => (v, None),
    };
    let (dir, rest) = main.split_once(':').ok_or_else(|| bad(origin, v, usage))?;
    let direction = parse_direction(origin, dir).map_err(|_| bad(origin, v, usage))?;
    let (listen, target) = rest.split_once('=').ok_or_else(|| bad(origin, v, usage))?;
    let listen = parse_listen(origin, listen, direction)
        .map_err(|e| ConfigError(format!("{e} (in {v:?})")))?;
    let target =
        parse_socket_addr(origin, target).map_err(|e| ConfigError(format!("{e} (in {v:?})")))?;
    let linger = match linger {
        Some(l) => l.parse().map_err(|e| bad(origin, v, e))?,
        None => default,
    };
    Ok(ForwardSpec {
        direction,
        listen,
        target,
        linger,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Settings {
        Settings {
            tap: Some("ls0".into()),
            ipv4: Some("10.0.0.2/24".into()),
            log_level: Some("info".into()),
            ..Settings::default()
        }
    }

    #[test]
    fn minimal_flags_resolve_with_defaults() {
        let c = resolve(flags()).unwrap();
        assert_eq!(c.tap, "ls0");
        assert_eq!(c.mac, DEFAULT_MAC);
        assert_eq!(c.linger, LingerMode::Graceful);
        assert_eq!(c.drain, Duration::from_secs(10));
    }

    #[test]
    fn keep_alive_defaults_flags_and_off() {
        let c = resolve(flags()).unwrap();
        assert_eq!(
            c.keep_alive,
            Some(KeepAlive::with_times(
                DEFAULT_KEEP_ALIVE,
                DEFAULT_KEEP_ALIVE_INTERVAL
            ))
        );
        let mut f = flags();
        f.keep_alive = Some(Text("2h".into()));
        f.keep_alive_interval = Some(Text("250ms".into()));
        let k = resolve(f).unwrap().keep_alive.unwrap();
        assert_eq!(k.idle, Duration::from_secs(7200));
        assert_eq!(k.interval, Duration::from_millis(250));
        assert_eq!(k.probes, 10);
        let mut f = flags();
        f.keep_alive = Some(Text("off".into()));
        assert_eq!(resolve(f).unwrap().keep_alive, None);
        let mut f = flags();
        f.keep_alive_interval = Some(Text("0".into()));
        let e = resolve(f).unwrap_err().0;
        assert!(e.contains("--keep-alive-interval"), "{e}");
        let mut f = flags();
        f.keep_alive = Some(Text("25h".into()));
        assert!(resolve(f).unwrap_err().0.contains("--keep-alive"));
    }

    #[test]
    fn control_group_by_number_or_name() {
        let dir = std::env::temp_dir().join(format!("lsd-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("group");
        std::fs::write(&file, "root:x:0:\nlingerstack:x:1234:alice,bob\n").unwrap();
        assert_eq!(parse_group("g", "42", &file), Ok(42));
        assert_eq!(parse_group("g", "lingerstack", &file), Ok(1234));
        let e = parse_group("--control-group", "nobody-here", &file)
            .unwrap_err()
            .0;
        assert!(
            e.contains("--control-group") && e.contains("no such group"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_values_name_themselves() {
        let mut f = flags();
        f.mtu = Some(Text("70000".into()));
        let e = resolve(f).unwrap_err().0;
        assert!(e.contains("--mtu") && e.contains("70000"), "{e}");
        let mut f = flags();
        f.ipv4 = Some("10.0.0.300/24".into());
        let e = resolve(f).unwrap_err().0;
        assert!(e.contains("--ipv4") && e.contains("10.0.0.300/24"), "{e}");
        let mut f = flags();
        f.mac = Some("01:00:00:00:00:01".into());
        assert!(resolve(f).unwrap_err().0.contains("multicast"));
        let mut f = flags();
        f.service = vec![
            ServiceEntry::Spec("echo:7".into()),
            ServiceEntry::Spec("discard:7".into()),
        ];
        assert!(resolve(f).unwrap_err().0.contains("used twice"));
        let mut f = flags();
        f.gateway = vec!["10.0.1.1".into()];
        assert!(resolve(f).unwrap_err().0.contains("not inside"));
    }

    #[test]
    fn linger_modes_map_to_the_table() {
        assert_eq!(LingerMode::Graceful.linger(), None);
        assert_eq!(LingerMode::Abort.linger(), Some(Duration::ZERO));
        assert_eq!(
            "linger:3".parse::<LingerMode>().unwrap().linger(),
            Some(Duration::from_secs(3))
        );
        assert_eq!("linger:0".parse::<LingerMode>().unwrap(), LingerMode::Abort);
        assert!("linger:x".parse::<LingerMode>().is_err());
    }

    #[test]
    fn service_and_forward_flags() {
        let s = parse_service_flag("chargen:19,abort", LingerMode::Graceful).unwrap();
        assert_eq!(
            (s.kind, s.port, s.linger),
            (ServiceKind::Chargen, 19, LingerMode::Abort)
        );
        let f = parse_forward_flag("in:8080=127.0.0.1:80", LingerMode::Graceful).unwrap();
        assert_eq!(f.direction, Direction::Inbound);
        assert_eq!(f.listen.port(), 8080);
        let f = parse_forward_flag("out:[::1]:2222=[fd00::1]:22,linger:2", LingerMode::Graceful)
            .unwrap();
        assert_eq!(f.direction, Direction::Outbound);
        assert_eq!(f.linger, LingerMode::Linger(2));
        assert!(parse_forward_flag("sideways:1=2", LingerMode::Graceful).is_err());
    }

    #[test]
    fn netns_and_log_format_from_file_and_flags() {
        let dir = std::env::temp_dir().join(format!("lsd-cfg-ns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ns.toml");
        std::fs::write(
            &path,
            "tap = \"ls9\"\nipv4 = \"10.1.0.2/24\"\nnetns = \"guest\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let from_file = resolve(Settings {
            config: Some(path.clone()),
            log_level: Some("warn".into()),
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(from_file.netns, Some(NetnsTarget::Name("guest".into())));
        assert_eq!(from_file.log_format, LogFormat::Json);
        let flags_win = resolve(Settings {
            config: Some(path.clone()),
            netns: Some("1234".into()),
            log_format: Some("text".into()),
            log_level: Some("warn".into()),
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(flags_win.netns, Some(NetnsTarget::Pid(1234)));
        assert_eq!(flags_win.log_format, LogFormat::Text);
        let defaults = resolve(flags()).unwrap();
        assert_eq!(
            (defaults.netns, defaults.log_format),
            (None, LogFormat::Text)
        );
        for (netns, format, needle) in [
            (Some(""), None, "--netns \"\""),
            (
                None,
                Some("yaml"),
                "--log-format \"yaml\": expected text or json",
            ),
        ] {
            let e = resolve(Settings {
                netns: netns.map(String::from),
                log_format: format.map(String::from),
                ..flags()
            })
            .unwrap_err()
            .0;
            assert!(e.contains(needle), "{e}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn file_then_flags_win() {
        let dir = std::env::temp_dir().join(format!("lsd-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.toml");
        std::fs::write(
            &path,
            "tap = \"ls9\"\nipv4 = \"10.1.0.2/24\"\nmtu = 1400\nlinger = \"abort\"\n\
             [[service]]\nkind = \"echo\"\nport = 7\n\
             [[forward]]\ndirection = \"inbound\"\nlisten = 8080\nto = \"127.0.0.1:80\"\nlinger = \"linger:2\"\n",
        )
        .unwrap();
        let f = Settings {
            config: Some(path.clone()),
            mtu: Some(Text("1450".into())),
            log_level: Some("warn".into()),
            ..Settings::default()
        };
        let c = resolve(f).unwrap();
        assert_eq!(c.tap, "ls9");
        assert_eq!(c.mtu, Some(1450));
        assert_eq!(c.services[0].linger, LingerMode::Abort);
        assert_eq!(c.forwards[0].linger, LingerMode::Linger(2));
        std::fs::write(&path, "tap = \"ls9\"\nipv4 = \"10.1.0.2/24\"\nmtu = 99\n").unwrap();
        let e = resolve(Settings {
            config: Some(path.clone()),
            log_level: Some("warn".into()),
            ..Settings::default()
        })
        .unwrap_err()
        .0;
        assert!(e.contains("mtu") && e.contains("99"), "{e}");
        std::fs::write(&path, "tapp = \"x\"\n").unwrap();
        let e = resolve(Settings {
            config: Some(path),
            ..Settings::default()
        })
        .unwrap_err()
        .0;
        assert!(e.contains("tapp"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn offloads_are_on_unless_no_offload() {
        assert!(resolve(flags()).unwrap().offload);
        let off = Settings {
            no_offload: true,
            ..flags()
        };
        assert!(!resolve(off).unwrap().offload);
    }

    #[test]
    fn limits_from_flags_and_file_and_services_as_strings() {
        let c = resolve(flags()).unwrap();
        assert_eq!((c.max_connections, c.backlog), (None, DEFAULT_BACKLOG));
        let dir = std::env::temp_dir().join(format!("lsd-lim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.toml");
        std::fs::write(
            &path,
            "tap = \"ls9\"\nipv4 = \"10.1.0.2/24\"\nmax_connections = 100\nbacklog = \"8\"\n\
             gateway = \"10.1.0.1\"\nservice = [\"echo:7\", { kind = \"discard\", port = 9 }]\n",
        )
        .unwrap();
        let from_file = |max: Option<&str>| Settings {
            config: Some(path.clone()),
            log_level: Some("warn".into()),
            max_connections: max.map(|m| Text(m.into())),
            ..Settings::default()
        };
        let c = resolve(from_file(None)).unwrap();
        assert_eq!((c.max_connections, c.backlog), (Some(100), 8));
        assert_eq!(c.gateway_v4, Some(Ipv4Addr::new(10, 1, 0, 1)));
        let kinds: Vec<_> = c.services.iter().map(|s| (s.kind, s.port)).collect();
        assert_eq!(kinds, [(ServiceKind::Echo, 7), (ServiceKind::Discard, 9)]);
        assert_eq!(
            resolve(from_file(Some("5"))).unwrap().max_connections,
            Some(5)
        );
        let e = resolve(from_file(Some("0"))).unwrap_err().0;
        assert!(e.contains("--max-connections"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn keep_alive_and_control_group_from_the_file() {
        let dir = std::env::temp_dir().join(format!("lsd-ka-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.toml");
        std::fs::write(
            &path,
            "tap = \"ls9\"\nipv4 = \"10.1.0.2/24\"\nkeep_alive = \"30s\"\n\
             keep_alive_interval = \"500ms\"\ncontrol_group = 7\n",
        )
        .unwrap();
        let flags = |keep_alive: Option<&str>| Settings {
            config: Some(path.clone()),
            log_level: Some("warn".into()),
            keep_alive: keep_alive.map(|k| Text(k.into())),
            ..Settings::default()
        };
        let c = resolve(flags(None)).unwrap();
        let k = c.keep_alive.unwrap();
        assert_eq!(
            (k.idle, k.interval),
            (Duration::from_secs(30), Duration::from_millis(500))
        );
        assert_eq!(c.control_group, Some(7));
        assert_eq!(resolve(flags(Some("off"))).unwrap().keep_alive, None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
