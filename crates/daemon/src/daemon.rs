//! Starting, watching and stopping the daemon.
//!
//! [`Daemon::start`] acquires everything it needs (engine with its pcap file, every listener on the
//! stack and on the host, the control socket, the metrics endpoint) before it serves anything;
//! if one step fails it releases what it had and reports one line, so the daemon never
//! half-starts. The listeners and connections run as tasks on the daemon's one tokio runtime;
//! the main thread stays outside it: [`Daemon::run`] waits for signals and for the link to fail;
//! [`Daemon::drain`] is the stop: no more accepting, every connection closed by its linger
//! mode, a bounded wait, then a reset of what remains.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use lingerstack_stack::link::Link;
use lingerstack_stack::{Stack, StackError};
use tokio::net::TcpListener as HostListener;
use tokio::sync::{Semaphore, watch};

use crate::config::{Config, Direction, ForwardSpec};
use crate::control;
use crate::link::{LinkHealth, WatchedLink};
use crate::logging::LogFile;
use crate::services::{self, Bound, Endpoint, Handler, Registry, Shared};
use crate::signals::Event;

/// Exit status after a clean stop.
pub const EXIT_OK: u8 = 0;
/// Exit status when starting failed (a resource, not the configuration).
pub const EXIT_START: u8 = 1;
/// Exit status for a bad configuration.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status when the link failed (the TAP device was removed).
pub const EXIT_LINK_DOWN: u8 = 3;

/// Worker threads of the runtime that carries every connection. Two keep one busy connection
/// from delaying the rest; the count does not grow with the connections.
const RUNTIME_THREADS: usize = 2;

/// How often the main loop checks the link.
const TICK: Duration = Duration::from_millis(100);

/// A running daemon.
pub struct Daemon {
    /// What the services share.
    pub shared: Arc<Shared>,
    /// The runtime of every listener and connection (`None` once shut down).
    runtime: Option<tokio::runtime::Runtime>,
    health: Arc<LinkHealth>,
    control_path: Option<PathBuf>,
    log_file: Option<Arc<LogFile>>,
}

/// Open the TAP device named in the configuration (creating it if missing) and set its MTU,
/// inside the `--netns` namespace when one is given (see [`crate::netns`]).
pub fn open_tap(config: &Config) -> Result<lingerstack_tap::TapLink, String> {
    match &config.netns {
        Some(ns) => {
            let tap = ns.run_in(|| open_tap_here(config))?;
            log::info!("TAP device {} opened in network namespace {ns}", config.tap);
            Ok(tap)
        }
        None => open_tap_here(config),
    }
}

/// [`open_tap`] in the calling thread's namespace.
fn open_tap_here(config: &Config) -> Result<lingerstack_tap::TapLink, String> {
    let options = lingerstack_tap::TapOptions {
        offload: config.offload,
    };
    let mut tap = lingerstack_tap::TapLink::open_with(&config.tap, options).map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::EPERM) => " (needs root or CAP_NET_ADMIN)",
            Some(libc::EBUSY) => " (another process has it open)",
            Some(libc::EINVAL) => " (is it a TUN device, or another kind of interface?)",
            _ => "",
        };
        format!("TAP device {}: {e}{hint}", config.tap)
    })?;
    if let Some(mtu) = config.mtu
        && mtu != tap.mtu()
    {
        tap.set_mtu(mtu)
            .map_err(|e| format!("TAP device {}: setting MTU {mtu}: {e}", config.tap))?;
    }
    Ok(tap)
}

impl Daemon {
    /// Start on `link` (a TAP from [`open_tap`], or any other link). `control` false skips the
    /// control socket (the in-process demo has no use for it).
    pub fn start<L: Link + 'static>(
        config: Config,
        link: L,
        control: bool,
        log_file: Option<Arc<LogFile>>,
    ) -> Result<Daemon, String> {
        let health = Arc::new(LinkHealth::default());
        let describe = link.describe();
        let mtu = link.mtu();
        let watched = WatchedLink::new(link, health.clone());
        let mut builder = Stack::builder().config(config.stack_config());
        if let Some(path) = &config.pcap {
            builder = builder.pcap(path);
        }
        let stack = builder
            .start(watched)
            .map_err(|e| format!("starting the stack on {describe}: {e}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("lingerstackd-rt")
            .enable_all()
            .build()
            .map_err(|e| format!("starting the runtime: {e}"))?;
        let slots = config.max_connections.unwrap_or(Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            stack: stack.clone(),
            config: config.clone(),
            registry: Registry::default(),
            stop: watch::channel(false).0,
            slots: Arc::new(Semaphore::new(slots)),
            started: Instant::now(),
            link: describe,
            mtu,
            endpoints: Mutex::new(Vec::new()),
            runtime: runtime.handle().clone(),
        });
        let mut daemon = Daemon {
            shared,
            runtime: Some(runtime),
            health,
            control_path: None,
            log_file,
        };
        if let Err(e) = daemon.acquire(control) {
            daemon.abandon();
            return Err(e);
        }
        Ok(daemon)
    }

    /// Bind every listener, the control socket and the metrics endpoint, then start serving.
    fn acquire(&mut self, control: bool) -> Result<(), String> {
        let shared = self.shared.clone();
        let config = &shared.config;
        let Some(runtime) = &self.runtime else {
            return Err("no runtime".into());
        };
        let listeners = runtime.block_on(bind_all(&shared))?;
        let control_listener = if control {
            let l = control::bind_control(&config.control, config.control_group)?;
            self.control_path = Some(config.control.clone());
            Some(l)
        } else {
            None
        };
        let metrics = config.metrics.map(control::bind_metrics).transpose()?;

        // Everything is bound: serve.
        for (bound, endpoint) in listeners {
            services::launch(&shared, bound, endpoint, false);
        }
        let spawn_err = |e: std::io::Error| format!("starting a thread: {e}");
        if let Some(l) = control_listener {
            log::info!("control socket {}", config.control.display());
            control::serve_control(shared.clone(), l).map_err(spawn_err)?;
        }
        if let Some(l) = metrics {
            log::info!(
                "metrics on http://{}/metrics",
                l.local_addr().map(|a| a.to_string()).unwrap_or_default()
            );
            control::serve_metrics(shared.clone(), l).map_err(spawn_err)?;
        }
        log::info!(
            "lingerstackd up on {} (mtu {}), addresses {}, mac {}, {}",
            shared.link,
            shared.mtu,
            config.addresses().join(", "),
            control::mac_string(config.mac),
            match config.max_connections {
                Some(n) => format!("at most {n} connections"),
                None => "no connection limit".into(),
            }
        );
        Ok(())
    }

    /// Undo a partial start: close listeners, stop the engine, remove the control socket.
    fn abandon(&mut self) {
        self.close_listeners();
        self.shared.stack.stop(Duration::ZERO);
        self.shutdown_runtime();
        self.remove_control();
    }

    /// Stop the runtime: every task still there is dropped (its socket closes by its linger
    /// setting in the engine, which never blocks).
    fn shutdown_runtime(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_millis(200));
        }
    }

    fn remove_control(&mut self) {
        if let Some(path) = self.control_path.take() {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Begin the stop: the accept loops end (dropping their listeners), and every
    /// connection's task closes its connection by its linger mode.
    fn close_listeners(&self) {
        self.shared.stop.send_replace(true);
    }

    /// Reopen the pcap and log files (SIGHUP).
    pub fn reopen(&self) {
        if let Some(log) = &self.log_file {
            match log.reopen() {
                Ok(()) => log::info!("SIGHUP: log file {} reopened", log.path().display()),
                Err(e) => log::error!("SIGHUP: reopening log file {}: {e}", log.path().display()),
            }
        }
        let pcap = self.shared.config.pcap.as_ref();
        if let Some(path) = pcap {
            // The engine writes the pcap and reopens it; its log line says why if it fails.
            match self.shared.stack.reopen_pcap() {
                Ok(()) => log::info!("SIGHUP: pcap {} reopened", path.display()),
                Err(e) => log::error!("SIGHUP: reopening pcap {}: {e}", path.display()),
            }
        }
        if self.log_file.is_none() && pcap.is_none() {
            log::info!("SIGHUP: no pcap or log file to reopen");
        }
    }

    /// The link failed, if it did: the error text.
    pub fn link_failure(&self) -> Option<String> {
        if self.health.failed() {
            return Some(self.health.error().unwrap_or_else(|| "link failed".into()));
        }
        match self.shared.stack.counters() {
            Err(StackError::NetworkDown) => Some("the engine reports the network down".into()),
            _ => None,
        }
    }

    /// Serve until a stop signal (drain, exit 0) or a link failure (exit 3).
    pub fn run(mut self, events: &Receiver<Event>) -> u8 {
        loop {
            match events.recv_timeout(TICK) {
                Ok(Event::Stop(name)) => {
                    log::info!("{name}: stopping");
                    crate::notify::stopping(&format!("{name}: draining"));
                    self.drain();
                    return EXIT_OK;
                }
                Ok(Event::Reopen) => self.reopen(),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // No signal thread any more: keep serving, still watching the link.
                    std::thread::sleep(TICK);
                }
            }
            if let Some(why) = self.link_failure() {
                log::error!(
                    "TAP device {} failed ({why}): it was removed or went away; exiting",
                    self.shared.config.tap
                );
                crate::notify::stopping(&format!("TAP device failed: {why}"));
                self.close_listeners();
                self.remove_control();
                return EXIT_LINK_DOWN;
            }
        }
    }

    /// The stop: no more accepting; every connection closed by its linger mode (each task
    /// does its own `close().await`, so lingering closes wait side by side in the engine);
    /// up to the drain time for them to finish; then a reset of what remains and the engine
    /// stops.
    pub fn drain(&mut self) {
        let shared = self.shared.clone();
        let drain = shared.config.drain;
        let deadline = Instant::now() + drain;
        log::info!(
            "draining: {} connection(s) closing by their linger modes, up to {:.1} s",
            shared.registry.len(),
            drain.as_secs_f64()
        );
        crate::notify::status(&format!(
            "draining: {} connection(s) closing",
            shared.registry.len()
        ));
        self.close_listeners();
        // Wait for the closes (a lingering one takes up to its linger time).
        while !shared.registry.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Sockets still closing in the background get the rest of the drain time.
        let left = deadline.saturating_duration_since(Instant::now());
        let open = shared
            .stack
            .sockets()
            .map(|s| {
                s.iter()
                    .filter(|i| i.closing && i.state != "TIME-WAIT")
                    .count()
            })
            .unwrap_or(0);
        if open > 0 {
            log::info!(
                "draining: {open} socket(s) still closing; {:.1} s left before they are reset",
                left.as_secs_f64()
            );
        }
        let before = shared.stack.counters().ok();
        shared.stack.stop(left);
        let late = shared.registry.len();
        if late > 0 {
            log::warn!("drain time over: {late} connection(s) reset");
        }
        self.shutdown_runtime();
        self.remove_control();
        match before {
            Some(c) => log::info!(
                "stopped ({} graceful closes, {} resets sent, {} resets received before the final stop)",
                c.graceful_closes,
                c.resets_sent,
                c.resets_received
            ),
            None => log::info!("stopped"),
        }
    }
}

/// A bound listener and its endpoint with the endpoint's remove switch.
type Ready = (Bound, (Endpoint, watch::Sender<bool>));

/// Bind every service's and forward's listener, on the stack and on the host. Listeners bound
/// before a failure are dropped with it, which closes them.
async fn bind_all(shared: &Shared) -> Result<Vec<Ready>, String> {
    let config = &shared.config;
    let mut ready = Vec::new();
    for s in &config.services {
        let listen = services::any_addr(s.port);
        let listener = services::stack_listener(shared, listen)
            .await
            .map_err(|e| format!("{} service: {e}", s.kind.name()))?;
        let handler = Handler::Service(services::serve_of(s.kind));
        let endpoint = Endpoint::new(s.kind.name(), listen, None, s.linger);
        ready.push((Bound::Stack(listener, handler), endpoint));
    }
    for f in &config.forwards {
        ready.push(bind_forward(shared, f).await?);
    }
    Ok(ready)
}

/// Bind one forward's listener: on the stack for an inbound one, on the host for an outbound
/// one. (At start, and for the control socket's `add-forward`.)
pub async fn bind_forward(shared: &Shared, f: &ForwardSpec) -> Result<Ready, String> {
    Ok(match f.direction {
        Direction::Inbound => {
            let listener = services::stack_listener(shared, f.listen)
                .await
                .map_err(|e| format!("{}: {e}", f.name()))?;
            let endpoint = Endpoint::new("forward-in", f.listen, Some(f.target), f.linger);
            (Bound::Stack(listener, Handler::ForwardIn), endpoint)
        }
        Direction::Outbound => {
            let listener = HostListener::bind(f.listen)
                .await
                .map_err(|e| format!("{}: listening on host {}: {e}", f.name(), f.listen))?;
            let endpoint = Endpoint::new("forward-out", f.listen, Some(f.target), f.linger);
            (Bound::Host(listener), endpoint)
        }
    })
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.remove_control();
    }
}
