//! Starting, watching and stopping the daemon.
//!
//! [`Daemon::start`] acquires everything it needs (pcap file, engine, every listener on the
//! stack and on the host, the control socket, the metrics endpoint) before it serves anything;
//! if one step fails it releases what it had and reports one line, so the daemon never
//! half-starts. [`Daemon::run`] then waits for signals and for the link to fail;
//! [`Daemon::drain`] is the stop: no more accepting, every connection closed by its linger
//! mode, a bounded wait, then a reset of what remains.

use std::net::{Shutdown as NetShutdown, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use lingerstack_stack::DeviceOptions;
use lingerstack_stack::link::Link;
use lingerstack_stack::{CloseMode, Stack, StackError};
use socket2::SockRef;

use crate::config::{Config, Direction, ServiceKind};
use crate::control;
use crate::link::{LinkHealth, SharedPcap, WatchedLink};
use crate::logging::LogFile;
use crate::services::{
    self, Endpoint, ListenerHandle, Registry, Shared, chargen, discard, echo, forward,
};
use crate::signals::Event;

/// Exit status after a clean stop.
pub const EXIT_OK: u8 = 0;
/// Exit status when starting failed (a resource, not the configuration).
pub const EXIT_START: u8 = 1;
/// Exit status for a bad configuration.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status when the link failed (the TAP device was removed).
pub const EXIT_LINK_DOWN: u8 = 3;

/// How often the main loop flushes the pcap and checks the link.
const TICK: Duration = Duration::from_millis(100);

/// A running daemon.
pub struct Daemon {
    /// What the services share.
    pub shared: Arc<Shared>,
    pcap: Option<Arc<SharedPcap>>,
    health: Arc<LinkHealth>,
    control_path: Option<PathBuf>,
    log_file: Option<Arc<LogFile>>,
}

/// Open the TAP device named in the configuration (creating it if missing) and set its MTU.
pub fn open_tap(config: &Config) -> Result<lingerstack_tap::TapLink, String> {
    let mut tap = lingerstack_tap::TapLink::open(&config.tap).map_err(|e| {
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
    pub fn start<L: Link>(
        config: Config,
        link: L,
        control: bool,
        log_file: Option<Arc<LogFile>>,
    ) -> Result<Daemon, String> {
        let pcap = match &config.pcap {
            Some(path) => Some(
                SharedPcap::create(path)
                    .map_err(|e| format!("pcap file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let health = Arc::new(LinkHealth::default());
        let describe = link.describe();
        let mtu = link.mtu();
        let watched = WatchedLink::new(link, pcap.clone(), health.clone());
        let stack = Stack::start(
            config.stack_config(),
            Box::new(watched),
            DeviceOptions::default(),
            None,
        )
        .map_err(|e| format!("starting the stack on {describe}: {e}"))?;
        let shared = Arc::new(Shared {
            stack: stack.clone(),
            config: config.clone(),
            registry: Registry::default(),
            stopping: Default::default(),
            started: Instant::now(),
            link: describe,
            mtu,
            listeners: Mutex::new(Vec::new()),
            endpoints: Mutex::new(Vec::new()),
        });
        let mut daemon = Daemon {
            shared,
            pcap,
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
        type Serve = fn(Arc<Shared>, Arc<services::Conn>);
        let mut stack_listeners: Vec<(lingerstack_stack::SocketId, Endpoint, Serve)> = Vec::new();
        let mut host_listeners: Vec<(Arc<TcpListener>, Endpoint)> = Vec::new();
        let remember = |h: ListenerHandle| {
            if let Ok(mut l) = shared.listeners.lock() {
                l.push(h);
            }
        };
        for s in &config.services {
            let listen = services::any_addr(s.port);
            let id = services::stack_listener(&shared.stack, listen, config.keep_alive)
                .map_err(|e| format!("{} service: {e}", s.kind.name()))?;
            remember(ListenerHandle::Stack(id));
            let serve: Serve = match s.kind {
                ServiceKind::Echo => echo::serve,
                ServiceKind::Discard => discard::serve,
                ServiceKind::Chargen => chargen::serve,
            };
            let endpoint = Endpoint {
                kind: s.kind.name(),
                listen,
                target: None,
                linger: s.linger,
            };
            stack_listeners.push((id, endpoint, serve));
        }
        for f in &config.forwards {
            match f.direction {
                Direction::Inbound => {
                    let id = services::stack_listener(&shared.stack, f.listen, config.keep_alive)
                        .map_err(|e| format!("{}: {e}", f.name()))?;
                    remember(ListenerHandle::Stack(id));
                    let endpoint = Endpoint {
                        kind: "forward-in",
                        listen: f.listen,
                        target: Some(f.target),
                        linger: f.linger,
                    };
                    stack_listeners.push((id, endpoint, forward::serve_inbound));
                }
                Direction::Outbound => {
                    let l = TcpListener::bind(f.listen).map_err(|e| {
                        format!("{}: listening on host {}: {e}", f.name(), f.listen)
                    })?;
                    let l = Arc::new(l);
                    remember(ListenerHandle::Host(l.clone()));
                    let endpoint = Endpoint {
                        kind: "forward-out",
                        listen: f.listen,
                        target: Some(f.target),
                        linger: f.linger,
                    };
                    host_listeners.push((l, endpoint));
                }
            }
        }
        let control_listener = if control {
            let l = control::bind_control(&config.control, config.control_group)?;
            self.control_path = Some(config.control.clone());
            Some(l)
        } else {
            None
        };
        let metrics = config.metrics.map(control::bind_metrics).transpose()?;

        // Everything is bound: serve.
        let spawn_err = |e: std::io::Error| format!("starting a thread: {e}");
        for (id, endpoint, serve) in stack_listeners {
            log::info!(
                "{} listening on {} (linger {})",
                endpoint.kind,
                endpoint.listen,
                endpoint.linger
            );
            if let Ok(mut eps) = shared.endpoints.lock() {
                eps.push(endpoint.clone());
            }
            services::accept_loop(shared.clone(), id, endpoint, serve).map_err(spawn_err)?;
        }
        for (l, endpoint) in host_listeners {
            log::info!(
                "forward-out listening on host {} -> {} (linger {})",
                endpoint.listen,
                endpoint.target.map(|t| t.to_string()).unwrap_or_default(),
                endpoint.linger
            );
            if let Ok(mut eps) = shared.endpoints.lock() {
                eps.push(endpoint.clone());
            }
            forward::accept_host(shared.clone(), l, endpoint).map_err(spawn_err)?;
        }
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
            "lingerstackd up on {} (mtu {}), addresses {}, mac {}",
            shared.link,
            shared.mtu,
            config.addresses().join(", "),
            control::mac_string(config.mac)
        );
        Ok(())
    }

    /// Undo a partial start: close listeners, stop the engine, remove the control socket.
    fn abandon(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.close_listeners();
        self.shared.stack.stop(Duration::ZERO);
        self.remove_control();
    }

    fn remove_control(&mut self) {
        if let Some(path) = self.control_path.take() {
            let _ = std::fs::remove_file(path);
        }
    }

    fn close_listeners(&self) {
        let listeners = self
            .shared
            .listeners
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        for l in listeners {
            match l {
                ListenerHandle::Stack(id) => {
                    let _ = self.shared.stack.close(id, CloseMode::Abort);
                }
                ListenerHandle::Host(l) => {
                    // Wakes the thread blocked in accept (Linux: accept then fails with EINVAL).
                    let _ = SockRef::from(&*l).shutdown(NetShutdown::Read);
                }
            }
        }
    }

    /// Flush the pcap file.
    pub fn flush(&self) {
        if let Some(p) = &self.pcap {
            p.flush();
        }
    }

    /// A handle that flushes the pcap (for the exit-at-once path of a second signal).
    pub fn pcap_handle(&self) -> Option<Arc<SharedPcap>> {
        self.pcap.clone()
    }

    /// Reopen the pcap and log files (SIGHUP).
    pub fn reopen(&self) {
        if let Some(log) = &self.log_file {
            match log.reopen() {
                Ok(()) => log::info!("SIGHUP: log file {} reopened", log.path().display()),
                Err(e) => log::error!("SIGHUP: reopening log file {}: {e}", log.path().display()),
            }
        }
        if let Some(p) = &self.pcap {
            match p.reopen() {
                Ok(()) => log::info!("SIGHUP: pcap {} reopened", p.path().display()),
                Err(e) => log::error!("SIGHUP: reopening pcap {}: {e}", p.path().display()),
            }
        }
        if self.log_file.is_none() && self.pcap.is_none() {
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
            self.flush();
            if let Some(why) = self.link_failure() {
                log::error!(
                    "TAP device {} failed ({why}): it was removed or went away; exiting",
                    self.shared.config.tap
                );
                self.shared.stopping.store(true, Ordering::Release);
                self.close_listeners();
                self.flush();
                self.remove_control();
                return EXIT_LINK_DOWN;
            }
        }
    }

    /// The stop: no more accepting; every connection closed by its linger mode; up to the drain
    /// time for them to finish; then a reset of what remains and the engine stops.
    pub fn drain(&mut self) {
        let shared = self.shared.clone();
        let drain = shared.config.drain;
        let deadline = Instant::now() + drain;
        shared.stopping.store(true, Ordering::Release);
        self.close_listeners();
        let conns = shared.registry.all();
        log::info!(
            "draining: {} connection(s) closing by their linger modes, up to {:.1} s",
            conns.len(),
            drain.as_secs_f64()
        );
        for conn in conns {
            let s = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("drain-{}", conn.serial))
                .spawn(move || conn.stop(&s));
            if let Err(e) = spawned {
                log::error!("drain: no thread: {e}");
            }
        }
        // Wait for the closes (a lingering one blocks up to its linger time).
        while !shared.registry.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            self.flush();
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
        self.flush();
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

impl Drop for Daemon {
    fn drop(&mut self) {
        self.flush();
        self.remove_control();
    }
}
