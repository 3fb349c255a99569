//! `lingerstackd ctl`: changing and inspecting a running daemon over its control socket.
//!
//! Each verb is one request line, answered with one JSON document:
//!
//! ```text
//! forwards                  {"forwards": [{"spec": ..., "direction": "in", ...}]}
//! connections               {"connections": [{"id": 1, "service": "echo", ...}]}
//! add-forward SPEC          {"added": {...}}                  SPEC as for --forward
//! remove-forward DIR:LISTEN {"removed": {...}, "connections_open": 2}
//! ```
//!
//! A failure is `{"error": "..."}`. Removing a forward closes its listener (new clients are
//! refused) and leaves its connections to finish on their own; a stop drains them as usual.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{self, DEFAULT_CONTROL, Direction, ForwardSpec};
use crate::control;
use crate::services::{self, Listening, Shared};

/// One change at a time: the check for a clash and the bind that follows go together.
static EDITS: Mutex<()> = Mutex::new(());

/// Longest wait for a removed forward's accept loop to end (it ends at its next wake-up).
const LOOP_END_WAIT: Duration = Duration::from_secs(5);

/// `lingerstackd ctl`'s arguments.
#[derive(clap::Args, Debug)]
pub struct CtlArgs {
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL, global = true)]
    control: PathBuf,
    /// Print the daemon's JSON answer as it came (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    verb: Verb,
}

/// What to ask the daemon.
#[derive(clap::Subcommand, Debug)]
enum Verb {
    /// Interface, addresses, counters and connections (the same as `lingerstackd status`).
    Status,
    /// List the forwards: direction, listen address, target, linger mode, origin (config or
    /// control) and open connections.
    Forwards,
    /// List the connections: id, service, local and remote address, TCP state, bytes each way.
    Connections,
    /// Add a forward at run time; SPEC as for --forward: in:PORT=HOST:PORT or
    /// out:HOST:PORT=ADDR:PORT, optionally ,LINGER.
    AddForward {
        /// The forward, e.g. in:8080=127.0.0.1:80.
        spec: String,
    },
    /// Remove a forward: it stops accepting at once; its open connections go on until they
    /// close (or until the daemon stops).
    RemoveForward {
        /// Which one: in:PORT or out:HOST:PORT (the part of its spec before `=`; a whole
        /// spec works too).
        forward: String,
    },
}

/// The daemon's side: answer one request line that is not `status`. `may_change` is false for
/// a client that may only look (not root, not the daemon's user).
pub fn answer(shared: &Arc<Shared>, line: &str, may_change: bool) -> Value {
    let (verb, arg) = line
        .split_once(char::is_whitespace)
        .map_or((line, ""), |(v, a)| (v, a.trim()));
    let result = match verb {
        "add-forward" | "remove-forward" if !may_change => Err(format!(
            "{verb}: refused: only root or the daemon's own user may change it (the control \
             group may only look)"
        )),
        "forwards" => Ok(json!({ "forwards": forwards(shared) })),
        "connections" => Ok(json!({ "connections": control::connections(shared) })),
        "add-forward" => add_forward(shared, arg),
        "remove-forward" => remove_forward(shared, arg),
        _ => Err(format!(
            "unknown request {line:?}; try status, forwards, connections, add-forward SPEC, \
             remove-forward DIR:LISTEN"
        )),
    };
    result.unwrap_or_else(|e| json!({ "error": e }))
}

/// Every forward the daemon runs.
fn forwards(shared: &Shared) -> Vec<Value> {
    shared
        .endpoints
        .lock()
        .map(|eps| {
            eps.iter()
                .filter(|l| l.endpoint.is_forward())
                .map(|l| forward_json(shared, l))
                .collect()
        })
        .unwrap_or_default()
}

fn forward_json(shared: &Shared, l: &Listening) -> Value {
    let e = &l.endpoint;
    json!({
        "spec": e.spec(),
        "direction": if e.kind == "forward-out" { "out" } else { "in" },
        "listen": e.listen.to_string(),
        "target": e.target.map(|t| t.to_string()),
        "linger": e.linger.to_string(),
        "origin": if l.at_run_time { "control" } else { "config" },
        "connections": open_connections(shared, e.kind, e.listen),
    })
}

/// Connections the daemon holds that the endpoint `kind` on `listen` accepted.
fn open_connections(shared: &Shared, kind: &str, listen: std::net::SocketAddr) -> usize {
    shared
        .registry
        .all()
        .iter()
        .filter(|c| c.kind == kind && c.listen == listen)
        .count()
}

/// `add-forward SPEC`: check it as the configuration would, refuse a port already in use,
/// bind, and serve.
fn add_forward(shared: &Arc<Shared>, spec: &str) -> Result<Value, String> {
    if shared.is_stopping() {
        return Err("the daemon is stopping".into());
    }
    let config = &shared.config;
    let as_verb = |e: config::ConfigError| e.0.replacen("--forward", "add-forward", 1);
    let f = config::parse_forward_flag(spec, config.linger).map_err(as_verb)?;
    config::check_forward(&f, config.ipv4, config.ipv6)
        .map_err(|e| format!("add-forward {spec:?}: {}", e.0))?;
    let _edit = EDITS
        .lock()
        .map_err(|_| "control: lock poisoned".to_string())?;
    if let Some(other) = clash(shared, &f) {
        return Err(format!("add-forward {spec:?}: {other}"));
    }
    let (bound, endpoint) = shared
        .runtime
        .block_on(crate::daemon::bind_forward(shared, &f))
        .map_err(|e| format!("add-forward {spec:?}: {e}"))?;
    log::info!("control: adding forward {}", endpoint.0.spec());
    services::launch(shared, bound, endpoint, true);
    let added = shared.endpoints.lock().ok().and_then(|eps| {
        eps.iter()
            .rev()
            .find(|l| l.endpoint.kind == kind_of(f.direction) && l.endpoint.listen == f.listen)
            .map(|l| forward_json(shared, l))
    });
    Ok(json!({ "added": added }))
}

/// What already holds the forward's port, if anything: any listener on the stack for an
/// inbound forward (stack ports are unique), an outbound forward on the same host address.
fn clash(shared: &Shared, f: &ForwardSpec) -> Option<String> {
    let eps = shared.endpoints.lock().ok()?;
    let taken = eps
        .iter()
        .map(|l| &l.endpoint)
        .find(|e| match f.direction {
            Direction::Inbound => e.kind != "forward-out" && e.listen.port() == f.listen.port(),
            Direction::Outbound => {
                e.kind == "forward-out"
                    && e.listen.port() == f.listen.port()
                    && (e.listen.ip() == f.listen.ip()
                        || e.listen.ip().is_unspecified()
                        || f.listen.ip().is_unspecified())
            }
        })?;
    let what = if taken.is_forward() {
        format!("forward {}", taken.spec())
    } else {
        format!("the {} service", taken.kind)
    };
    Some(format!(
        "port {} is already used by {what}",
        f.listen.port()
    ))
}

fn kind_of(direction: Direction) -> &'static str {
    match direction {
        Direction::Inbound => "forward-in",
        Direction::Outbound => "forward-out",
    }
}

/// `remove-forward DIR:LISTEN`: stop its accept loop (the listener closes) and forget it; its
/// connections go on.
fn remove_forward(shared: &Shared, key: &str) -> Result<Value, String> {
    let usage = "expected in:PORT or out:HOST:PORT (see ctl forwards)";
    let head = key.split(['=', ',']).next().unwrap_or_default().trim();
    let (dir, listen) = head
        .split_once(':')
        .ok_or_else(|| format!("remove-forward {key:?}: {usage}"))?;
    let direction = config::parse_direction("remove-forward", dir)
        .map_err(|_| format!("remove-forward {key:?}: {usage}"))?;
    let listen = config::parse_listen("remove-forward", listen, direction).map_err(|e| e.0)?;
    let kind = kind_of(direction);
    let _edit = EDITS
        .lock()
        .map_err(|_| "control: lock poisoned".to_string())?;
    let mut eps = shared
        .endpoints
        .lock()
        .map_err(|_| "control: lock poisoned".to_string())?;
    // Stack ports are unique, so an inbound forward is known by its port alone.
    let same = |e: &services::Endpoint| match direction {
        Direction::Inbound => e.listen.port() == listen.port(),
        Direction::Outbound => e.listen == listen,
    };
    let Some(at) = eps
        .iter()
        .position(|l| l.endpoint.kind == kind && same(&l.endpoint))
    else {
        let service = eps
            .iter()
            .find(|l| !l.endpoint.is_forward() && same(&l.endpoint));
        return Err(match (direction, service) {
            (Direction::Inbound, Some(s)) => format!(
                "remove-forward {key:?}: port {} is the {} service, not a forward",
                listen.port(),
                s.endpoint.kind
            ),
            _ => format!("remove-forward {key:?}: no such forward (see ctl forwards)"),
        });
    };
    let gone = eps.remove(at);
    drop(eps);
    gone.remove.send_replace(true);
    // Answer once the port is closed: the accept loop has dropped its listener, and a request
    // to the engine, which applies requests in order, has come back after the listener's close.
    let _ = gone.ended.recv_timeout(LOOP_END_WAIT);
    let _ = shared.stack.counters();
    let removed = forward_json(shared, &gone);
    let open = open_connections(shared, kind, gone.endpoint.listen);
    log::info!(
        "control: removed forward {}; {open} connection(s) left to finish",
        gone.endpoint.spec()
    );
    Ok(json!({ "removed": removed, "connections_open": open }))
}

/// The client: `lingerstackd ctl VERB`.
pub fn client(args: &CtlArgs) -> Result<(), String> {
    let line = match &args.verb {
        Verb::Status => return control::client(&args.control, args.json),
        Verb::Forwards => "forwards".to_string(),
        Verb::Connections => "connections".to_string(),
        Verb::AddForward { spec } => format!("add-forward {spec}"),
        Verb::RemoveForward { forward } => format!("remove-forward {forward}"),
    };
    let answer = control::request(&args.control, &line)?;
    if let Some(e) = answer.get("error").and_then(Value::as_str) {
        return Err(e.to_string());
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
        return Ok(());
    }
    print!("{}", render(&args.verb, &answer));
    Ok(())
}

/// An answer as text for people.
fn render(verb: &Verb, v: &Value) -> String {
    let s = |x: &Value| match x {
        Value::String(t) => t.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let rows = |key: &str| v[key].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    match verb {
        Verb::Forwards => {
            out.push_str(&format!(
                "{:<4} {:<40} {:<40} {:<10} {:<8} {:>5}\n",
                "DIR", "LISTEN", "TARGET", "LINGER", "ORIGIN", "CONNS"
            ));
            for f in rows("forwards") {
                out.push_str(&format!(
                    "{:<4} {:<40} {:<40} {:<10} {:<8} {:>5}\n",
                    s(&f["direction"]),
                    s(&f["listen"]),
                    s(&f["target"]),
                    s(&f["linger"]),
                    s(&f["origin"]),
                    s(&f["connections"])
                ));
            }
        }
        Verb::Connections => {
            out.push_str(&format!(
                "{:>5} {:<12} {:<40} {:<40} {:<12} {:>10} {:>10}\n",
                "ID", "SERVICE", "LOCAL", "REMOTE", "STATE", "IN", "OUT"
            ));
            for c in rows("connections") {
                out.push_str(&format!(
                    "{:>5} {:<12} {:<40} {:<40} {:<12} {:>10} {:>10}\n",
                    s(&c["id"]),
                    s(&c["service"]),
                    s(&c["local"]),
                    s(&c["remote"]),
                    s(&c["state"]),
                    s(&c["bytes_in"]),
                    s(&c["bytes_out"])
                ));
            }
        }
        Verb::AddForward { .. } => {
            out.push_str(&format!("added forward {}\n", s(&v["added"]["spec"])));
        }
        Verb::RemoveForward { .. } => out.push_str(&format!(
            "removed forward {}; {} connection(s) still open, left to finish\n",
            s(&v["removed"]["spec"]),
            s(&v["connections_open"])
        )),
        Verb::Status => {}
    }
    out
}
