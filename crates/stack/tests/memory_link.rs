//! Two engines joined by the in-memory link: the engine's behaviours without privileges.

use std::net::{Ipv4Addr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use lingerstack_stack::DeviceOptions;
use lingerstack_stack::link::MemoryLink;
use lingerstack_stack::{
    Cidr, CloseMode, CloseOutcome, CloseReason, Stack, StackConfig, StackError, Wait,
};

const A: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

fn config(addr: Ipv4Addr, mac_last: u8) -> StackConfig {
    StackConfig {
        mac: [0x02, 0, 0, 0, 0, mac_last],
        ipv4: Some(Cidr { addr, prefix: 24 }),
        ipv6: Some(Cidr {
            addr: format!("fd00:9::{mac_last}").parse().unwrap(),
            prefix: 64,
        }),
        close_deadline: Duration::from_secs(5),
        ..StackConfig::default()
    }
}

fn pair() -> (Stack, Stack) {
    let _ = env_logger::builder().is_test(true).try_init();
    let (la, lb) = MemoryLink::pair(1500);
    let a = Stack::start(config(A, 1), Box::new(la), DeviceOptions::default(), None).unwrap();
    let b = Stack::start(config(B, 2), Box::new(lb), DeviceOptions::default(), None).unwrap();
    (a, b)
}

const BLOCK: Wait = Wait::Block(Some(Duration::from_secs(20)));

/// A listener on `a` at `port`, a connection from `b`, the accepted id on `a`.
fn connected(
    a: &Stack,
    b: &Stack,
    port: u16,
) -> (lingerstack_stack::SocketId, lingerstack_stack::SocketId) {
    let l = a.open().unwrap();
    a.bind(l, SocketAddr::new(A.into(), port)).unwrap();
    a.listen(l, 4).unwrap();
    let c = b.open().unwrap();
    b.connect(c, SocketAddr::new(A.into(), port), BLOCK)
        .unwrap();
    let (s, peer) = a.accept(l, BLOCK).unwrap();
    assert_eq!(peer.ip(), std::net::IpAddr::V4(B));
    a.close(l, CloseMode::Abort).unwrap();
    (s, c)
}

fn read_all(stack: &Stack, id: lingerstack_stack::SocketId) -> Result<Vec<u8>, StackError> {
    let mut out = Vec::new();
    loop {
        let chunk = stack.recv(id, 65536, BLOCK)?;
        if chunk.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&chunk);
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn one_mib_each_way_then_graceful_close() {
    let (a, b) = pair();
    let (s, c) = connected(&a, &b, 7000);
    let up = pattern(1 << 20, 1);
    let down = pattern(1 << 20, 2);
    // Each side writes its MiB, shuts down its sending half and reads the other MiB to EOF.
    let exchange = |stack: Stack, id, data: Vec<u8>| {
        thread::spawn(move || {
            let writer = {
                let stack = stack.clone();
                thread::spawn(move || {
                    assert_eq!(stack.send(id, &data, BLOCK).unwrap(), data.len());
                    stack
                        .shutdown(id, lingerstack_stack::Shutdown::Write)
                        .unwrap();
                })
            };
            let got = read_all(&stack, id).unwrap();
            writer.join().unwrap();
            let outcome = stack
                .close(id, CloseMode::Graceful { deadline: None })
                .unwrap();
            (got, outcome)
        })
    };
    let at_a = exchange(a.clone(), s, down.clone());
    let at_b = exchange(b.clone(), c, up.clone());
    let (got_up, outcome_a) = at_a.join().unwrap();
    let (got_down, outcome_b) = at_b.join().unwrap();
    assert!(
        got_up == up,
        "a received {} of {} bytes, or different ones",
        got_up.len(),
        up.len()
    );
    assert!(
        got_down == down,
        "b received {} of {} bytes, or different ones",
        got_down.len(),
        down.len()
    );
    // A side whose FIN exchange already finished before its close (it received the peer's
    // FIN first, so LAST-ACK ended at the ACK of its own FIN) has nothing left to close.
    for outcome in [outcome_a, outcome_b] {
        assert!(
            matches!(outcome, CloseOutcome::Background | CloseOutcome::Nothing),
            "{outcome:?}"
        );
    }
    wait_until(|| finished_closes(&a) + finished_closes(&b) >= 1);
    let (ca, cb) = (a.counters().unwrap(), b.counters().unwrap());
    assert_eq!(ca.resets_sent + cb.resets_sent, 0);
    assert_eq!(ca.resets_received + cb.resets_received, 0);
}

#[test]
fn receive_side_reads_everything_before_eof() {
    let (a, b) = pair();
    let (s, c) = connected(&a, &b, 7001);
    let data = pattern(1 << 20, 3);
    let data2 = data.clone();
    let b2 = b.clone();
    let writer = thread::spawn(move || {
        b2.send(c, &data2, BLOCK).unwrap();
        b2.close(c, CloseMode::Graceful { deadline: None }).unwrap()
    });
    let got = read_all(&a, s).unwrap();
    assert_eq!(writer.join().unwrap(), CloseOutcome::Background);
    assert!(
        got == data,
        "payload differs: {} of {} bytes",
        got.len(),
        data.len()
    );
    // a now sends nothing and closes: both FINs exchanged, sockets freed.
    assert_eq!(
        a.close(s, CloseMode::Graceful { deadline: None }).unwrap(),
        CloseOutcome::Background
    );
    wait_until(|| finished_closes(&b) >= 1);
}

#[test]
fn abort_resets_the_peer() {
    let (a, b) = pair();
    let (s, c) = connected(&a, &b, 7002);
    assert_eq!(
        a.close(s, CloseMode::Abort).unwrap(),
        CloseOutcome::Reset(CloseReason::LocalAbort)
    );
    assert_eq!(b.recv(c, 10, BLOCK), Err(StackError::ConnReset));
    assert_eq!(
        b.send(c, b"x", BLOCK).unwrap_err().error,
        StackError::ConnReset
    );
    b.close(c, CloseMode::Graceful { deadline: None }).unwrap();
}

#[test]
fn blocking_linger_finishes_when_acknowledged() {
    let (a, b) = pair();
    let (s, c) = connected(&a, &b, 7003);
    a.send(s, &pattern(100_000, 4), BLOCK).unwrap();
    let started = Instant::now();
    let outcome = a
        .close(
            s,
            CloseMode::Linger {
                timeout: Duration::from_secs(10),
            },
        )
        .unwrap();
    assert_eq!(outcome, CloseOutcome::Finished);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(read_all(&b, c).unwrap().len(), 100_000);
}

#[test]
fn connect_to_closed_port_is_refused_and_ports_checked() {
    let (a, b) = pair();
    let c = b.open().unwrap();
    assert_eq!(
        b.connect(c, SocketAddr::new(A.into(), 9), BLOCK),
        Err(StackError::ConnRefused)
    );
    let x = a.open().unwrap();
    a.bind(x, SocketAddr::new(A.into(), 8080)).unwrap();
    let y = a.open().unwrap();
    assert_eq!(
        a.bind(y, SocketAddr::new(A.into(), 8080)),
        Err(StackError::AddrInUse)
    );
    assert_eq!(
        a.bind(y, SocketAddr::new(B.into(), 8081)),
        Err(StackError::AddrNotAvail)
    );
    let z = a.open().unwrap();
    assert_eq!(
        a.connect(z, SocketAddr::new(B.into(), 0), BLOCK),
        Err(StackError::AddrNotAvail)
    );
    assert_eq!(
        a.recv(999_999.into_id(), 1, Wait::No),
        Err(StackError::NotSocket)
    );
}

#[test]
fn ipv6_connection_carries_data() {
    let (a, b) = pair();
    let l = a.open().unwrap();
    let a6: std::net::Ipv6Addr = "fd00:9::1".parse().unwrap();
    a.bind(l, SocketAddr::new(a6.into(), 7100)).unwrap();
    a.listen(l, 1).unwrap();
    let c = b.open().unwrap();
    b.connect(c, SocketAddr::new(a6.into(), 7100), BLOCK)
        .unwrap();
    let (s, _) = a.accept(l, BLOCK).unwrap();
    b.send(c, b"over six", BLOCK).unwrap();
    b.close(c, CloseMode::Graceful { deadline: None }).unwrap();
    assert_eq!(read_all(&a, s).unwrap(), b"over six");
}

#[test]
fn fifty_concurrent_connections_to_one_listener() {
    let (a, b) = pair();
    let l = a.open().unwrap();
    a.bind(l, SocketAddr::new(A.into(), 7200)).unwrap();
    a.listen(l, 64).unwrap();
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let c = b.open().unwrap();
            b.connect(c, SocketAddr::new(A.into(), 7200), Wait::No)
                .unwrap_err();
            c
        })
        .collect();
    let accepted: Vec<_> = (0..50).map(|_| a.accept(l, BLOCK).unwrap().0).collect();
    assert_eq!(accepted.len(), 50);
    for c in clients {
        b.connect(c, SocketAddr::new(A.into(), 7200), Wait::No)
            .unwrap_err();
        assert!(b.info(c).unwrap().ready.connected);
    }
}

#[test]
fn engine_stops_and_releases_callers() {
    let (a, b) = pair();
    let (s, _c) = connected(&a, &b, 7300);
    let a2 = a.clone();
    let reader = thread::spawn(move || a2.recv(s, 10, Wait::Block(None)));
    thread::sleep(Duration::from_millis(100));
    a.stop(Duration::from_millis(100));
    let result = reader.join().unwrap();
    assert!(
        matches!(
            result,
            Err(StackError::Interrupted | StackError::NetworkDown)
        ),
        "{result:?}"
    );
    assert_eq!(a.open(), Err(StackError::NetworkDown));
}

trait IntoId {
    fn into_id(self) -> lingerstack_stack::SocketId;
}
impl IntoId for u64 {
    fn into_id(self) -> lingerstack_stack::SocketId {
        lingerstack_stack::SocketId(self)
    }
}

fn wait_until(mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if cond() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("condition not reached in 20 s");
}

/// Graceful closes that finished: freed, or waiting out TIME-WAIT (10 s).
fn finished_closes(stack: &Stack) -> u64 {
    let c = stack.counters().unwrap();
    c.graceful_closes + c.sockets_by_state.get("TIME-WAIT").copied().unwrap_or(0) as u64
}
