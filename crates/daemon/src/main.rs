//! `lingerstackd`: echo, discard, chargen and TCP port forwarding on the lingerstack user-space
//! TCP/IP stack, over a TAP device, with the Winsock linger settings deciding how each
//! connection is closed.
//!
//! ```text
//! lingerstackd run --tap ls0 --ipv4 10.0.0.2/24 --service echo:7 --forward in:8080=127.0.0.1:80
//! lingerstackd status [--json]
//! lingerstackd ctl add-forward in:8081=127.0.0.1:81
//! lingerstackd demo
//! ```
//!
//! See docs/daemon.md for the configuration reference.

mod assets;
mod config;
mod control;
mod ctl;
mod daemon;
mod demo;
mod link;
mod logging;
mod netns;
mod notify;
mod services;
mod signals;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{Config, DEFAULT_CONTROL, Settings};
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
    Run(Box<Settings>),
    /// Show a running daemon's interface, addresses, counters and connections.
    Status {
        /// The daemon's control socket.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL)]
        control: PathBuf,
        /// Print the status document as JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Ask or change a running daemon over its control socket: status, forwards,
    /// connections, add-forward, remove-forward.
    Ctl(ctl::CtlArgs),
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
    /// The demo's kernel client, run by the demo inside its namespace.
    #[command(hide = true)]
    DemoPeer(demo::netns::PeerArgs),
    /// Write the man pages and shell completions into DIR (for packagers).
    #[command(hide = true)]
    GenerateAssets {
        /// Where to write `man/` and `completions/`.
        dir: PathBuf,
    },
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
        Command::Ctl(args) => match ctl::client(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lingerstackd ctl: {e}");
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
        Command::DemoPeer(args) => match demo::netns::peer(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lingerstackd demo-peer: {e}");
                ExitCode::FAILURE
            }
        },
        Command::GenerateAssets { dir } => match assets::generate(Cli::command(), &dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lingerstackd generate-assets {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        },
    }
}

fn run(mut settings: Settings) -> u8 {
    // The readiness descriptor is the process's, not the service's: it stays out of Config.
    let ready_fd = settings.ready_fd.take();
    if let Some(Err(e)) = ready_fd.map(notify::check_ready_fd) {
        eprintln!("lingerstackd: configuration error: {e}");
        return EXIT_CONFIG;
    }
    let config = match config::resolve(settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lingerstackd: configuration error: {e}");
            return EXIT_CONFIG;
        }
    };
    let log_file = match logging::init(
        &config.log_level,
        config.log_format,
        config.log_file.as_deref(),
    ) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("lingerstackd: {e}");
            return EXIT_START;
        }
    };
    notify::init(ready_fd);
    if config.services.is_empty() && config.forwards.is_empty() {
        log::warn!("no services and no forwards configured: the stack only answers ARP and ND");
    }
    // Signals first, so that a stop during the start is not lost. (The engine flushes its pcap
    // after every poll, so a second signal's exit at once loses no frame.)
    let (tx, rx) = crossbeam_channel::unbounded();
    if let Err(e) = signals::install(tx) {
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
    let status = ready_status(&config);
    let daemon = match Daemon::start(config, tap, true, log_file) {
        Ok(d) => d,
        Err(e) => {
            log::error!("{e}");
            eprintln!("lingerstackd: {e}");
            return EXIT_START;
        }
    };
    // Everything is bound (TAP, services, control socket): tell the supervisor.
    notify::ready(&status);
    let stack = daemon.shared.stack.clone();
    if let Err(e) = notify::spawn_watchdog(std::sync::Arc::new(move || stack.counters().is_ok())) {
        log::error!("starting the watchdog thread: {e}");
    }
    daemon.run(&rx)
}

/// The status line a supervisor shows once the daemon is up.
fn ready_status(config: &Config) -> String {
    format!(
        "serving on {} ({}): {} service(s), {} forward(s)",
        config.tap,
        config.addresses().join(", "),
        config.services.len(),
        config.forwards.len()
    )
}
