//! Offloads over the in-memory link: two engines joined by a cable that carries the virtio-net
//! header pass TCP super-segments whole, as the kernel delivers them locally; the pcap layer
//! records them whole; the fault layer and the segment guard keep working on them; and turned
//! off, the same cable moves plain frames of at most the MTU.

use std::net::{Ipv4Addr, SocketAddr};
use std::thread;
use std::time::Duration;

use lingerstack_stack::link::{FaultConfig, MemoryLink, PcapSink};
use lingerstack_stack::{Cidr, CloseMode, Counters, DeviceOptions, SocketId, Stack, StackConfig};
use lingerstack_stack::{Shutdown, StackError, Wait};

const A: Ipv4Addr = Ipv4Addr::new(10, 9, 2, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 9, 2, 2);
const BLOCK: Wait = Wait::Block(Some(Duration::from_secs(60)));
const MIB: usize = 1 << 20;
const MTU: usize = 1500;

fn config(addr: Ipv4Addr, mac_last: u8) -> StackConfig {
    StackConfig {
        mac: [0x02, 0, 0, 0, 2, mac_last],
        ipv4: Some(Cidr { addr, prefix: 24 }),
        ..StackConfig::default()
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

fn read_all(stack: &Stack, id: SocketId) -> Result<Vec<u8>, StackError> {
    let mut out = Vec::new();
    loop {
        let chunk = stack.recv(id, 64 * 1024, BLOCK)?;
        if chunk.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&chunk);
    }
}

/// `a` sends `len` bytes to `b` and `b` sends `len` back, at once; both arrive intact.
fn exchange(a: &Stack, b: &Stack, port: u16, len: usize) {
    let l = a.open().unwrap();
    a.bind(l, SocketAddr::new(A.into(), port)).unwrap();
    a.listen(l, 1).unwrap();
    let c = b.open().unwrap();
    b.connect(c, SocketAddr::new(A.into(), port), BLOCK)
        .unwrap();
    let (s, _) = a.accept(l, BLOCK).unwrap();
    let (to_a, to_b) = (pattern(len, 1), pattern(len, 2));
    let send = |stack: &Stack, id: SocketId, data: Vec<u8>| {
        let stack = stack.clone();
        thread::spawn(move || {
            assert_eq!(stack.send(id, &data, BLOCK).unwrap(), data.len());
            stack.shutdown(id, Shutdown::Write).unwrap();
        })
    };
    let (sa, sb) = (send(a, s, to_b.clone()), send(b, c, to_a.clone()));
    let reader = {
        let b = b.clone();
        thread::spawn(move || read_all(&b, c).unwrap())
    };
    let got_a = read_all(a, s).unwrap();
    let got_b = reader.join().unwrap();
    sa.join().unwrap();
    sb.join().unwrap();
    assert!(got_a == to_a, "a read {} of {len} intact", got_a.len());
    assert!(got_b == to_b, "b read {} of {len} intact", got_b.len());
    for (stack, id) in [(a, s), (b, c)] {
        stack
            .close(id, CloseMode::Graceful { deadline: None })
            .unwrap();
    }
}

/// The original length of every frame of a pcap file.
fn frame_lengths(path: &std::path::Path) -> Vec<usize> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut rest = bytes.get(24..).unwrap_or_default();
    while rest.len() >= 16 {
        let word = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().unwrap()) as usize;
        out.push(word(12));
        rest = rest.get(16 + word(8)..).unwrap_or_default();
    }
    out
}

fn start(link: MemoryLink, addr: Ipv4Addr, mac: u8, options: DeviceOptions) -> Stack {
    Stack::start(config(addr, mac), Box::new(link), options, None).unwrap()
}

fn counters(stack: &Stack) -> Counters {
    stack.counters().unwrap()
}

#[test]
fn super_segments_pass_whole_and_the_pcap_records_them_whole() {
    let _ = env_logger::builder().is_test(true).try_init();
    let pcap = std::env::temp_dir().join(format!("ls-offload-mem-{}.pcap", std::process::id()));
    let (la, lb) = MemoryLink::pair_with_offload(MTU);
    let options = DeviceOptions {
        pcap: Some(PcapSink::create(&pcap).unwrap()),
        ..DeviceOptions::default()
    };
    let a = start(la, A, 1, options);
    let b = start(lb, B, 2, DeviceOptions::default());
    exchange(&a, &b, 7400, MIB);
    let (ca, cb) = (counters(&a), counters(&b));
    // A MiB each way in super-segments: tens of frames, not the 700 MSS-sized ones.
    assert!(
        ca.tx_super_segments > 0 && cb.tx_super_segments > 0,
        "{ca:?} {cb:?}"
    );
    assert!(
        ca.rx_super_segments > 0 && cb.rx_super_segments > 0,
        "{ca:?} {cb:?}"
    );
    assert!(ca.tx_frames < 200 && cb.tx_frames < 200, "{ca:?} {cb:?}");
    assert_eq!((ca.rx_dropped_checksum, cb.rx_dropped_checksum), (0, 0));
    a.stop(Duration::from_secs(1));
    b.stop(Duration::from_secs(1));
    let longest = frame_lengths(&pcap).into_iter().max().unwrap_or(0);
    assert!(
        longest > MTU + 14,
        "the pcap's longest frame is {longest} bytes"
    );
    std::fs::remove_file(&pcap).ok();
}

#[test]
fn offloads_off_moves_frames_within_the_mtu() {
    let (la, lb) = MemoryLink::pair_with_offload(MTU);
    let off = || DeviceOptions {
        offload: false,
        ..DeviceOptions::default()
    };
    let a = start(la, A, 1, off());
    let b = start(lb, B, 2, off());
    exchange(&a, &b, 7401, MIB);
    let (ca, cb) = (counters(&a), counters(&b));
    assert_eq!((ca.tx_super_segments, cb.tx_super_segments), (0, 0));
    assert_eq!((ca.rx_super_segments, cb.rx_super_segments), (0, 0));
    assert!(ca.tx_frames > 700, "{ca:?}");
    a.stop(Duration::from_secs(1));
    b.stop(Duration::from_secs(1));
}

/// Reordering and duplication of super-segments and ACKs, both ways: the transfer completes
/// intact, and the frames the fault layer held come back verified (the device checks the
/// checksum of every frame that did not come straight from the link; corruption itself is
/// checked in `lingerstack-core`'s device tests).
#[test]
fn faults_and_the_guard_keep_working_on_super_segments() {
    let _ = env_logger::builder().is_test(true).try_init();
    let (la, lb) = MemoryLink::pair_with_offload(MTU);
    // No loss: two smoltcp peers (no SACK) recover slowly from it, offloads or not
    // (docs/robustness.md); the adverse wire tests run the kernel as the peer under loss.
    let faults = FaultConfig::seeded(11)
        .with_reordering(10)
        .with_duplication(10);
    let a = start(
        la,
        A,
        1,
        DeviceOptions {
            faults,
            ..DeviceOptions::default()
        },
    );
    let b = start(lb, B, 2, DeviceOptions::default());
    exchange(&a, &b, 7402, MIB);
    let (ca, cb) = (counters(&a), counters(&b));
    assert!(
        ca.tx_super_segments > 0 && cb.tx_super_segments > 0,
        "{ca:?} {cb:?}"
    );
    let duplicated = ca.rx_duplicated_fault + ca.tx_duplicated_fault;
    let reordered = ca.rx_reordered_fault + ca.tx_reordered_fault;
    assert!(duplicated > 0 && reordered > 0, "{ca:?}");
    assert_eq!(
        (ca.rx_dropped_checksum, cb.rx_dropped_checksum),
        (0, 0),
        "frames a layer held come back intact and verified"
    );
    a.stop(Duration::from_secs(1));
    b.stop(Duration::from_secs(1));
}
