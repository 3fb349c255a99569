//! The zero-extra-copy calls (`Stack::send` lends the caller's bytes, `Stack::recv_into`
//! lends the caller's buffer) and socket buffers reused across connections, over the
//! in-memory link: every byte arrives intact, in order, on many connections one after another.

use std::net::{Ipv4Addr, SocketAddr};
use std::thread;
use std::time::Duration;

use lingerstack_stack::DeviceOptions;
use lingerstack_stack::link::MemoryLink;
use lingerstack_stack::{Cidr, CloseMode, SocketId, Stack, StackConfig, StackError, Wait};

const A: Ipv4Addr = Ipv4Addr::new(10, 9, 1, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 9, 1, 2);
const BLOCK: Wait = Wait::Block(Some(Duration::from_secs(20)));

fn config(addr: Ipv4Addr, mac_last: u8) -> StackConfig {
    StackConfig {
        mac: [0x02, 0, 0, 0, 1, mac_last],
        ipv4: Some(Cidr { addr, prefix: 24 }),
        rx_buffer: 16 * 1024,
        tx_buffer: 16 * 1024,
        ..StackConfig::default()
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed))
        .collect()
}

/// Read to end of stream with `recv_into` and a small buffer (many wrap-arounds of the ring).
fn read_all_into(stack: &Stack, id: SocketId) -> Result<Vec<u8>, StackError> {
    let mut out = Vec::new();
    let mut buf = [0u8; 3000];
    loop {
        let n = stack.recv_into(id, &mut buf, BLOCK)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn lent_send_and_recv_into_carry_every_byte_over_reused_buffers() {
    let _ = env_logger::builder().is_test(true).try_init();
    let (la, lb) = MemoryLink::pair(1500);
    let a = Stack::start(config(A, 1), Box::new(la), DeviceOptions::default(), None).unwrap();
    let b = Stack::start(config(B, 2), Box::new(lb), DeviceOptions::default(), None).unwrap();
    let l = a.open().unwrap();
    a.bind(l, SocketAddr::new(A.into(), 7100)).unwrap();
    a.listen(l, 2).unwrap();
    // Several connections in turn: later ones get the buffers of earlier ones back from the
    // pool, dirty; only what each connection sends may come out.
    for round in 0..6u8 {
        let c = b.open().unwrap();
        b.connect(c, SocketAddr::new(A.into(), 7100), BLOCK)
            .unwrap();
        let (s, _) = a.accept(l, BLOCK).unwrap();
        let data = pattern(200_000 + round as usize * 777, round);
        let sender = {
            let (b, data) = (b.clone(), data.clone());
            thread::spawn(move || {
                // Uneven pieces, each larger than the 16 KiB send buffer: the blocking send
                // parks with the lent bytes and finishes over several polls.
                for piece in data.chunks(50_001) {
                    assert_eq!(b.send(c, piece, BLOCK).unwrap(), piece.len());
                }
                b.shutdown(c, lingerstack_stack::Shutdown::Write).unwrap();
            })
        };
        let got = read_all_into(&a, s).unwrap();
        sender.join().unwrap();
        assert_eq!(got.len(), data.len(), "round {round}");
        assert!(got == data, "round {round}: bytes differ");
        // An empty buffer is answered at once, like a zero-length recv.
        assert_eq!(a.recv_into(s, &mut [], Wait::No).unwrap(), 0);
        a.close(s, CloseMode::Graceful { deadline: None }).unwrap();
        b.close(c, CloseMode::Abort).unwrap();
    }
    a.close(l, CloseMode::Abort).unwrap();
    a.stop(Duration::from_millis(200));
    b.stop(Duration::from_millis(200));
}
