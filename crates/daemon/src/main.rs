//! `lingerstackd`: echo, discard, chargen and TCP port forwarding on the lingerstack user-space
//! TCP/IP stack, over a TAP device, with the Winsock linger settings deciding how each
//! connection is closed.
//!
//! ```text
//! lingerstackd run --tap ls0 --ipv4 10.0.0.2/24 --service echo:7 --forward in:8080=127.0.0.1:80
//! lingerstackd status [--json]
//! lingerstackd demo
//! ```
//!
//! See docs/daemon.md for the configuration reference.

mod config;
mod control;
mod daemon;
mod demo;
mod link;
mod logging;
mod services;
mod signals;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{DEFAULT_CONTROL, Flags};
use crate::daemon::{Daemon, EXIT_CONFIG, EXIT_START};

/// The lingerstack daemon.
#[derive(Parser, Debug)]
#[command(name = "lingerstackd", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon on a TAP device (flags override the config file).
    Run(Box<RunArgs>),
    /// Show a running daemon's interface, addresses, counters and connections.
    Status {
        /// The daemon's control socket.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL)]
        control: PathBuf,
        /// Print the status document as JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Show the three close modes against the Linux kernel in a private namespace (root), or
    /// on the in-memory link (without root).
    Demo {
        /// Where to write the capture (default: target/captures/lingerstackd-demo.pcap).
        #[arg(long, value_name = "FILE")]
        pcap: Option<PathBuf>,
        /// Use the in-memory link even when a TAP is possible.
        #[arg(long)]
        memory: bool,
    },
}

/// Flags of `lingerstackd run`. Values are taken as text and checked by the daemon itself, so
/// that a bad value gives one line naming it.
#[derive(Args, Debug)]
struct RunArgs {
    /// TOML configuration file; flags given here win over it.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// TAP device name (created if missing, attached to if it exists).
    #[arg(long, value_name = "NAME")]
    tap: Option<String>,
    /// IPv4 address of the stack, in CIDR notation (10.0.0.2/24).
    #[arg(long, value_name = "CIDR")]
    ipv4: Option<String>,
    /// IPv6 address of the stack, in CIDR notation (fd00::2/64).
    #[arg(long, value_name = "CIDR")]
    ipv6: Option<String>,
    /// Default gateway (once per family).
    #[arg(long, value_name = "ADDR")]
    gateway: Vec<String>,
    /// MAC of the stack (default 02:00:00:00:00:02).
    #[arg(long, value_name = "MAC")]
    mac: Option<String>,
    /// MTU to set on the TAP (default: keep the device's).
    #[arg(long, value_name = "BYTES")]
    mtu: Option<String>,
    /// Receive buffer of each TCP socket (256k by default).
    #[arg(long, value_name = "SIZE")]
    rx_buffer: Option<String>,
    /// Send buffer of each TCP socket (256k by default).
    #[arg(long, value_name = "SIZE")]
    tx_buffer: Option<String>,
    /// Default linger mode: graceful, abort or linger:SECONDS.
    #[arg(long, value_name = "MODE")]
    linger: Option<String>,
    /// Write every frame to this pcap file (SIGHUP reopens it).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Log level or env_logger filter (beats RUST_LOG, which beats the file).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log to this file instead of stderr (SIGHUP reopens it).
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Control socket for `lingerstackd status`.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Prometheus text endpoint on a loopback address (127.0.0.1:9102).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<String>,
    /// Longest wait for connections to close at a stop (10s by default).
    #[arg(long, value_name = "DURATION")]
    drain: Option<String>,
    /// Deadline of a graceful background close (60s by default).
    #[arg(long, value_name = "DURATION")]
    close_deadline: Option<String>,
    /// Keep-alive idle time of the daemon's connections, or `off` (10m by default).
    #[arg(long, value_name = "DURATION")]
    keep_alive: Option<String>,
    /// Time between unanswered keep-alive probes (1s by default; 10 probes, then a reset).
    #[arg(long, value_name = "DURATION")]
    keep_alive_interval: Option<String>,
    /// Group (name or number) allowed to use the control socket (mode 0660; else 0600).
    #[arg(long, value_name = "GROUP")]
    control_group: Option<String>,
    /// Most connections held at once; beyond it new clients' SYNs go unanswered (they retry).
    #[arg(long, value_name = "N")]
    max_connections: Option<String>,
    /// Connections each listener holds ready to be accepted (128 by default).
    #[arg(long, value_name = "N")]
    backlog: Option<String>,
    /// A service: KIND:PORT[,LINGER], KIND one of echo, discard, chargen (repeatable).
    #[arg(long, value_name = "SPEC")]
    service: Vec<String>,
    /// A forward: in:PORT=HOST:PORT or out:HOST:PORT=ADDR:PORT, optionally ,LINGER (repeatable).
    #[arg(long, value_name = "SPEC")]
    forward: Vec<String>,
}

impl From<RunArgs> for Flags {
    fn from(a: RunArgs) -> Flags {
        Flags {
            config: a.config,
            tap: a.tap,
            ipv4: a.ipv4,
            ipv6: a.ipv6,
            gateway: a.gateway,
            mac: a.mac,
            mtu: a.mtu,
            rx_buffer: a.rx_buffer,
            tx_buffer: a.tx_buffer,
            linger: a.linger,
            pcap: a.pcap,
            log_level: a.log_level,
            log_file: a.log_file,
            control: a.control,
            metrics: a.metrics,
            drain: a.drain,
            close_deadline: a.close_deadline,
            keep_alive: a.keep_alive,
            keep_alive_interval: a.keep_alive_interval,
            control_group: a.control_group,
            max_connections: a.max_connections,
            backlog: a.backlog,
            services: a.service,
            forwards: a.forward,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => ExitCode::from(run(*args)),
        Command::Status { control, json } => match control::client(&control, json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lingerstackd status: {e}");
                ExitCode::from(EXIT_START)
            }
        },
        Command::Demo { pcap, memory } => {
            env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
                .init();
            match demo::run(pcap, memory) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("\nlingerstackd demo: FAILED: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run(args: RunArgs) -> u8 {
    let config = match config::resolve(args.into()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lingerstackd: configuration error: {e}");
            return EXIT_CONFIG;
        }
    };
    let log_file = match logging::init(&config.log_level, config.log_file.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("lingerstackd: {e}");
            return EXIT_START;
        }
    };
    if config.services.is_empty() && config.forwards.is_empty() {
        log::warn!("no services and no forwards configured: the stack only answers ARP and ND");
    }
    // Signals first, so that a stop during the start is not lost; the handler of the second
    // signal flushes the pcap once the daemon is up.
    let (tx, rx) = crossbeam_channel::unbounded();
    let pcap_slot: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<link::SharedPcap>>>> =
        Default::default();
    let slot = pcap_slot.clone();
    if let Err(e) = signals::install(tx, move || {
        if let Ok(Some(p)) = slot.try_lock().map(|s| s.clone()) {
            p.flush();
        }
    }) {
        log::error!("installing signal handlers: {e}");
        eprintln!("lingerstackd: installing signal handlers: {e}");
        return EXIT_START;
    }
    let tap = match daemon::open_tap(&config) {
        Ok(t) => t,
        Err(e) => {
            log::error!("{e}");
            eprintln!("lingerstackd: {e}");
            return EXIT_START;
        }
    };
    let daemon = match Daemon::start(config, tap, true, log_file) {
        Ok(d) => d,
        Err(e) => {
            log::error!("{e}");
            eprintln!("lingerstackd: {e}");
            return EXIT_START;
        }
    };
    if let Ok(mut s) = pcap_slot.lock() {
        *s = daemon.pcap_handle();
    }
    daemon.run(&rx)
}
