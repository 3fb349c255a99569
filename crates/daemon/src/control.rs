//! Watching the daemon: the control socket (`lingerstackd status`), the status document and the
//! optional Prometheus text endpoint.
//!
//! The protocol of the control socket is one line: the client sends `status` (or another verb,
//! see [`crate::ctl`]), the daemon answers with one JSON document and closes. `lingerstackd
//! status` prints it as text, or as it came with `--json`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lingerstack_stack::{Counters, SocketInfo};
use serde_json::{Value, json};

use crate::services::{Shared, describe_reason};

/// How long a control or metrics client may take to send its request.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Control clients served at once; one more is told the daemon is busy and closed.
const MAX_CONTROL_CLIENTS: usize = 16;

/// Bind the control socket, mode 0600, or 0660 and owned by `group` when one is given. A
/// stale socket file (nobody listening) is replaced; a live one means another daemon uses the
/// path, which is an error.
///
/// The socket is bound under a temporary name in the same directory, given its mode and group,
/// and only then renamed into place: no client can reach it with looser permissions first.
pub fn bind_control(path: &Path, group: Option<u32>) -> Result<UnixListener, String> {
    let fail =
        |what: &str, e: std::io::Error| format!("control socket {}: {what}{e}", path.display());
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "control socket {}: another daemon is listening there",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| fail("removing the stale file: ", e))?;
    }
    create_parent(path).map_err(|e| fail("creating its directory: ", e))?;
    let staging = staging_path(path);
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging).map_err(|e| fail("", e))?;
    let placed = set_access(&staging, group).and_then(|()| std::fs::rename(&staging, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&staging);
        return Err(fail("setting its mode or group: ", e));
    }
    Ok(listener)
}

/// Create the socket's directory (mode 0755) when it is missing: the default path is in
/// /run/lingerstackd/, which a systemd unit's `RuntimeDirectory=` makes, but a daemon started
/// by hand must make itself.
fn create_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) if !dir.exists() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

/// A short temporary name next to `path` (a Unix socket path is at most 107 bytes).
fn staging_path(path: &Path) -> PathBuf {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let name = format!(".lsd{}", std::process::id());
    dir.map_or_else(|| PathBuf::from(&name), |d| d.join(&name))
}

/// Mode 0600 (owner only), or 0660 with `group` as the file's group.
fn set_access(path: &Path, group: Option<u32>) -> std::io::Result<()> {
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Serve the control socket: each client on a thread of its own, so a slow or idle client
/// delays no other; at most [`MAX_CONTROL_CLIENTS`] at once.
pub fn serve_control(shared: Arc<Shared>, listener: UnixListener) -> std::io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONTROL_CLIENTS {
                    active.fetch_sub(1, Ordering::AcqRel);
                    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
                    let busy = json!({ "error": "busy: too many control clients; try again" });
                    let _ = stream.write_all(format!("{busy}\n").as_bytes());
                    continue;
                }
                let (shared, done) = (shared.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name("control-client".into())
                    .spawn(move || {
                        answer(&shared, stream);
                        done.fetch_sub(1, Ordering::AcqRel);
                    });
                if let Err(e) = spawned {
                    log::warn!("control socket: no thread for a client: {e}");
                    active.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })?;
    Ok(())
}

/// Read one request line (bounded in time and size) and answer it.
fn answer(shared: &Arc<Shared>, mut stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let mut line = String::new();
    let _ = BufReader::new(&mut stream).take(256).read_line(&mut line);
    let answer = match line.trim() {
        "status" | "" => status(shared).to_string(),
        other => crate::ctl::answer(shared, other, may_change(&stream)).to_string(),
    };
    let _ = stream.write_all(answer.as_bytes());
    let _ = stream.write_all(b"\n");
}

/// Whether the client may change the daemon (add or remove forwards): only root or the
/// daemon's own user. Members of `control_group` may look (status, lists) but not change.
fn may_change(stream: &UnixStream) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let own = unsafe { libc::geteuid() };
    peer_uid(stream).is_some_and(|uid| uid == 0 || uid == own)
}

/// The user id of the process at the other end of `stream`, as the kernel recorded it at
/// connect (SO_PEERCRED).
fn peer_uid(stream: &UnixStream) -> Option<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the descriptor is open for the call; getsockopt writes at most `len` bytes into
    // `cred`, a ucred that outlives the call, and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0 && len as usize == std::mem::size_of::<libc::ucred>()).then_some(cred.uid)
}

/// Bind the metrics endpoint.
pub fn bind_metrics(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| format!("metrics endpoint {addr}: {e}"))
}

/// Serve the Prometheus text format on a thread of its own (any path but `/` and `/metrics`
/// is a 404).
pub fn serve_metrics(shared: Arc<Shared>, listener: TcpListener) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
                let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
                let mut reader = BufReader::new(&mut stream).take(16 * 1024);
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                // Skip the headers.
                for _ in 0..100 {
                    let mut h = String::new();
                    match reader.read_line(&mut h) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if h.trim().is_empty() => break,
                        Ok(_) => {}
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (code, body) = if path == "/metrics" || path == "/" {
                    ("200 OK", metrics(&shared))
                } else {
                    ("404 Not Found", "not found; try /metrics\n".to_string())
                };
                let head = format!(
                    "HTTP/1.1 {code}\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body.as_bytes());
            }
        })?;
    Ok(())
}

fn counters_json(c: &Counters) -> Value {
    json!({
        "rx_frames": c.rx_frames,
        "rx_bytes": c.rx_bytes,
        "tx_frames": c.tx_frames,
        "tx_bytes": c.tx_bytes,
        "tx_dropped_full": c.tx_dropped_full,
        "rx_dropped_fault": c.rx_dropped_fault,
        "tx_dropped_fault": c.tx_dropped_fault,
        "rx_dropped_oversize": c.rx_dropped_oversize,
        "resets_sent": c.resets_sent,
        "resets_received": c.resets_received,
        "graceful_closes": c.graceful_closes,
        "open_ids": c.open_ids,
        "sockets_by_state": c.sockets_by_state,
    })
}

fn socket_json(s: &SocketInfo) -> Value {
    json!({
        "socket": s.id.0,
        "state": s.state,
        "local": s.local.map(|a| a.to_string()),
        "remote": s.remote.map(|a| a.to_string()),
        "send_queue": s.send_queue,
        "recv_queue": s.recv_queue,
        "closing": s.closing,
        "reason": s.reason.map(describe_reason),
    })
}

/// The status document.
pub fn status(shared: &Shared) -> Value {
    let config = &shared.config;
    let (counters, sockets, error) = match (shared.stack.counters(), shared.stack.sockets()) {
        (Ok(c), Ok(s)) => (Some(c), s, None),
        (Err(e), _) | (_, Err(e)) => (None, Vec::new(), Some(e.to_string())),
    };
    let connections = connections_of(shared, &sockets);
    let services: Vec<Value> = shared
        .endpoints
        .lock()
        .map(|eps| {
            eps.iter()
                .map(|l| {
                    let e = &l.endpoint;
                    json!({
                        "kind": e.kind,
                        "listen": e.listen.to_string(),
                        "target": e.target.map(|t| t.to_string()),
                        "linger": e.linger.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "pid": std::process::id(),
        "uptime_secs": shared.started.elapsed().as_secs_f64(),
        "stopping": shared.is_stopping(),
        "error": error,
        "interface": {
            "name": config.tap,
            "link": shared.link,
            "mtu": shared.mtu,
            "mac": mac_string(config.mac),
            "netns": config.netns.as_ref().map(|n| n.to_string()),
        },
        "addresses": config.addresses(),
        "gateways": config.gateways(),
        "pcap": config.pcap.as_ref().map(|p| p.display().to_string()),
        "default_linger": config.linger.to_string(),
        "keep_alive": config.keep_alive.map(|k| json!({
            "idle_secs": k.idle.as_secs_f64(),
            "interval_secs": k.interval.as_secs_f64(),
            "probes": k.probes,
        })),
        "services": services,
        "counters": counters.as_ref().map(counters_json),
        "connections": connections,
        "sockets": sockets.iter().map(socket_json).collect::<Vec<_>>(),
    })
}

/// Every connection the daemon owns, as status and `ctl connections` show it.
pub fn connections(shared: &Shared) -> Vec<Value> {
    connections_of(shared, &shared.stack.sockets().unwrap_or_default())
}

/// The connections, each with its stack socket's state from `sockets`.
fn connections_of(shared: &Shared, sockets: &[SocketInfo]) -> Vec<Value> {
    // The connections' stack sockets by their two ends (one pass, however many there are).
    let by_ends: HashMap<(SocketAddr, SocketAddr), &SocketInfo> = sockets
        .iter()
        .filter(|s| !s.closing)
        .filter_map(|s| Some(((s.local?, s.remote?), s)))
        .collect();
    shared
        .registry
        .all()
        .iter()
        .map(|c| {
            let info = by_ends.get(&c.stack_ends);
            json!({
                "id": c.serial,
                "service": c.kind,
                "socket": info.map(|i| i.id.0),
                "peer": c.peer.to_string(),
                "remote": c.peer.to_string(),
                "local": c.local.to_string(),
                "target": c.target.map(|t| t.to_string()),
                "state": info.map_or("CLOSING", |i| i.state),
                "send_queue": info.map_or(0, |i| i.send_queue),
                "recv_queue": info.map_or(0, |i| i.recv_queue),
                "bytes_in": c.bytes_in.load(Ordering::Relaxed),
                "bytes_out": c.bytes_out.load(Ordering::Relaxed),
                "linger": c.linger.to_string(),
                "age_secs": c.opened.elapsed().as_secs_f64(),
            })
        })
        .collect()
}

/// The Prometheus text exposition of the counters and connections.
pub fn metrics(shared: &Shared) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    metric(
        "lingerstackd_up",
        "gauge",
        "1 while the daemon runs and its link works.",
        if shared.stack.counters().is_ok() {
            "1"
        } else {
            "0"
        }
        .into(),
    );
    metric(
        "lingerstackd_connections",
        "gauge",
        "Connections the daemon owns.",
        shared.registry.len().to_string(),
    );
    if let Ok(c) = shared.stack.counters() {
        for (name, help, v) in [
            (
                "rx_frames_total",
                "Frames received from the link.",
                c.rx_frames,
            ),
            (
                "rx_bytes_total",
                "Bytes received from the link.",
                c.rx_bytes,
            ),
            ("tx_frames_total", "Frames sent to the link.", c.tx_frames),
            ("tx_bytes_total", "Bytes sent to the link.", c.tx_bytes),
            (
                "tx_dropped_full_total",
                "Frames the link could not take.",
                c.tx_dropped_full,
            ),
            (
                "rx_dropped_oversize_total",
                "Frames too large for the buffer.",
                c.rx_dropped_oversize,
            ),
            (
                "resets_sent_total",
                "Connections reset by the stack.",
                c.resets_sent,
            ),
            (
                "resets_received_total",
                "Connections reset by the peer.",
                c.resets_received,
            ),
            (
                "graceful_closes_total",
                "Graceful closes that finished.",
                c.graceful_closes,
            ),
        ] {
            metric(
                &format!("lingerstack_{name}"),
                "counter",
                help,
                v.to_string(),
            );
        }
        out.push_str("# HELP lingerstack_sockets TCP sockets in the stack by state.\n");
        out.push_str("# TYPE lingerstack_sockets gauge\n");
        for (state, n) in &c.sockets_by_state {
            out.push_str(&format!("lingerstack_sockets{{state=\"{state}\"}} {n}\n"));
        }
    }
    out
}

/// `lingerstackd status`: ask the daemon at `path` and print the answer.
pub fn client(path: &Path, json_out: bool) -> Result<(), String> {
    let value = request(path, "status")?;
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
        );
    } else {
        print!("{}", render(&value));
    }
    Ok(())
}

/// Send one request line to the daemon at `path` and read its JSON answer.
pub fn request(path: &Path, line: &str) -> Result<Value, String> {
    let mut stream = UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot reach lingerstackd at {}: {e} (is it running? see --control)",
            path.display()
        )
    })?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    stream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("control socket {}: {e}", path.display()))?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| format!("control socket {}: {e}", path.display()))?;
    serde_json::from_str(text.trim())
        .map_err(|e| format!("control socket {}: not a JSON answer: {e}", path.display()))
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The status document as text for people.
pub fn render(v: &Value) -> String {
    let mut out = String::new();
    let line = |out: &mut String, text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(
        &mut out,
        format!(
            "lingerstackd pid {}, up {:.1} s{}",
            s(&v["pid"]),
            v["uptime_secs"].as_f64().unwrap_or(0.0),
            if v["stopping"].as_bool() == Some(true) {
                ", STOPPING"
            } else {
                ""
            }
        ),
    );
    if !v["error"].is_null() {
        line(&mut out, format!("error      {}", s(&v["error"])));
    }
    let i = &v["interface"];
    line(
        &mut out,
        format!(
            "interface  {} ({}), mtu {}, mac {}{}",
            s(&i["name"]),
            s(&i["link"]),
            s(&i["mtu"]),
            s(&i["mac"]),
            i["netns"]
                .as_str()
                .map(|n| format!(", in network namespace {n}"))
                .unwrap_or_default()
        ),
    );
    let list = |x: &Value| {
        x.as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "-".into())
    };
    line(&mut out, format!("addresses  {}", list(&v["addresses"])));
    line(&mut out, format!("gateways   {}", list(&v["gateways"])));
    line(&mut out, format!("pcap       {}", s(&v["pcap"])));
    let k = &v["keep_alive"];
    line(
        &mut out,
        if k.is_null() {
            "keep-alive off".to_string()
        } else {
            format!(
                "keep-alive {} s idle, then {} probes {} s apart",
                s(&k["idle_secs"]),
                s(&k["probes"]),
                s(&k["interval_secs"])
            )
        },
    );
    for e in v["services"].as_array().into_iter().flatten() {
        let target = if e["target"].is_null() {
            String::new()
        } else {
            format!(" -> {}", s(&e["target"]))
        };
        line(
            &mut out,
            format!(
                "service    {:<12} {}{target} (linger {})",
                s(&e["kind"]),
                s(&e["listen"]),
                s(&e["linger"])
            ),
        );
    }
    let c = &v["counters"];
    if !c.is_null() {
        line(
            &mut out,
            format!(
                "counters   rx {} frames {} bytes, tx {} frames {} bytes, tx dropped {}",
                s(&c["rx_frames"]),
                s(&c["rx_bytes"]),
                s(&c["tx_frames"]),
                s(&c["tx_bytes"]),
                s(&c["tx_dropped_full"])
            ),
        );
        line(
            &mut out,
            format!(
                "           resets sent {}, resets received {}, graceful closes {}",
                s(&c["resets_sent"]),
                s(&c["resets_received"]),
                s(&c["graceful_closes"])
            ),
        );
    }
    let conns = v["connections"].as_array().cloned().unwrap_or_default();
    line(&mut out, format!("connections ({})", conns.len()));
    if !conns.is_empty() {
        line(
            &mut out,
            format!(
                "  {:>4} {:<12} {:<40} {:<12} {:>10} {:>10} {:>7} {:<10}",
                "ID", "SERVICE", "PEER", "STATE", "IN", "OUT", "AGE s", "LINGER"
            ),
        );
    }
    for c in conns {
        line(
            &mut out,
            format!(
                "  {:>4} {:<12} {:<40} {:<12} {:>10} {:>10} {:>7.1} {:<10}",
                s(&c["id"]),
                s(&c["service"]),
                s(&c["peer"]),
                s(&c["state"]),
                s(&c["bytes_in"]),
                s(&c["bytes_out"]),
                c["age_secs"].as_f64().unwrap_or(0.0),
                s(&c["linger"])
            ),
        );
    }
    let socks = v["sockets"].as_array().cloned().unwrap_or_default();
    line(&mut out, format!("stack sockets ({})", socks.len()));
    for k in socks {
        line(
            &mut out,
            format!(
                "  {:>4} {:<12} {:<40} {:<40}{}",
                s(&k["socket"]),
                s(&k["state"]),
                s(&k["local"]),
                s(&k["remote"]),
                if k["closing"].as_bool() == Some(true) {
                    format!(
                        " closing{}",
                        if k["reason"].is_null() {
                            String::new()
                        } else {
                            format!(" ({})", s(&k["reason"]))
                        }
                    )
                } else {
                    String::new()
                }
            ),
        );
    }
    out
}

/// A MAC as text.
pub fn mac_string(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_is_known_by_its_user_id() {
        let (a, _b) = UnixStream::pair().unwrap();
        // SAFETY: geteuid has no preconditions.
        let own = unsafe { libc::geteuid() };
        assert_eq!(peer_uid(&a), Some(own));
        assert!(may_change(&a), "the daemon's own user may change it");
    }
}
