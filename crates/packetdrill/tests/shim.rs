//! The shim through packetdrill's table, without packetdrill: handshake, data both ways, each
//! close mode, a blocking accept on a second thread, retransmissions on virtual time. Every
//! packet is checked (flags, numbers, checksums) with its virtual send time.

mod common;

use common::{FLAGS, FLAGS6, Pd, Peer, Seg, established, wait_until_sleeping};

/// Microseconds per millisecond, for time checks.
const MS: i64 = 1000;

/// A SYN is answered by a SYN-ACK at the time it came; data goes both ways with the right
/// numbers; the default close sends a FIN at once and returns 0 (graceful, in the background).
#[test]
fn handshake_data_both_ways_and_a_graceful_close() {
    let pd = Pd::new(Some(FLAGS));
    let mut peer = Peer::new(40000);
    let l = pd.socket().unwrap();
    pd.bind(l, peer.stack).unwrap();
    pd.listen(l).unwrap();
    let t0 = pd.now();
    peer.syn(&pd);
    let synack = peer.finish_handshake(&pd);
    assert!(
        synack.time >= t0 && synack.time - t0 < 5 * MS,
        "SYN-ACK at once"
    );
    let (c, from) = pd.accept(l).unwrap();
    assert_eq!(from, peer.me);

    // Peer to stack: the stack acknowledges (after its delayed-ACK timer: virtual time jumps
    // there) and the bytes are read.
    let sent = pd.now();
    peer.send_data(&pd, b"hello");
    let ack = pd.segment();
    assert_eq!(ack.ack, Some(peer.seq), "{ack:?}");
    assert!(ack.payload.is_empty());
    assert!(
        ack.time >= sent && ack.time - sent <= 500 * MS,
        "{}",
        ack.time - sent
    );
    assert_eq!(pd.read(c, 100).unwrap(), b"hello");

    // Stack to peer.
    assert_eq!(pd.write(c, b"world!").unwrap(), 6);
    let data = pd.segment();
    assert_eq!(data.payload, b"world!");
    assert_eq!(data.seq, peer.ack);
    peer.ack = peer.ack.wrapping_add(6);
    peer.send_ack(&pd);

    // Default close: 0 at once, FIN right away.
    let before = pd.now();
    assert_eq!(pd.close(c), Ok(0));
    let fin = pd.segment();
    assert!(fin.fin && !fin.rst, "{fin:?}");
    assert_eq!(fin.seq, peer.ack);
    assert!(fin.time - before < 5 * MS);
    // The descriptor is gone.
    assert_eq!(pd.close(c), Err(libc::EBADF));
    // The peer closes too: its FIN is acknowledged.
    peer.ack = peer.ack.wrapping_add(1);
    peer.send_fin(&pd);
    let last = pd.segment();
    assert_eq!(last.ack, Some(peer.seq));
    assert!(!last.rst);
    pd.close(l).unwrap();
}

/// SO_LINGER {1,0}: close resets at once, discarding queued data.
#[test]
fn linger_zero_resets() {
    let pd = Pd::new(Some(FLAGS));
    let mut peer = Peer::new(40001);
    let (_l, c) = established(&pd, &mut peer);
    pd.set_linger(c, 1, 0).unwrap();
    let before = pd.now();
    assert_eq!(pd.close(c), Ok(0));
    let rst = pd.segment();
    assert!(rst.rst && !rst.fin, "{rst:?}");
    assert!(rst.time - before < 5 * MS);
}

/// SO_LINGER {1,2} on a blocking socket whose peer keeps its window shut: close (on a second
/// thread, as packetdrill runs calls with a time range) returns after 2.000 s of virtual time,
/// with a RST sent at that moment; nothing but zero-window probes before it.
#[test]
fn linger_two_seconds_against_a_shut_window_resets_at_two_seconds() {
    let pd = Pd::new(Some(FLAGS));
    let mut peer = Peer::new(40002);
    peer.window = 0;
    let (_l, c) = established(&pd, &mut peer);
    assert_eq!(pd.write(c, b"stuck").unwrap(), 5);
    pd.set_linger(c, 1, 2).unwrap();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let pd = &pd;
        let closer = s.spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send((unsafe { libc::gettid() }, pd.now())).unwrap();
            let r = pd.close(c);
            (r, pd.now())
        });
        // As packetdrill: the main thread goes on once the call's thread sleeps.
        let (tid, start) = rx.recv().unwrap();
        wait_until_sleeping(tid);
        let rst = loop {
            let seg = pd.segment();
            if seg.rst {
                break seg;
            }
            assert!(!seg.fin, "no FIN can leave through a shut window: {seg:?}");
            assert!(seg.payload.len() <= 1, "only zero-window probes: {seg:?}");
        };
        let (r, returned) = closer.join().unwrap();
        assert_eq!(r, Ok(0));
        // 2 s exactly after the close began; the slack is real time between the clock read
        // and the call (the clock runs by itself), which a loaded machine may stretch.
        let at = rst.time - start;
        assert!((2000 * MS..2010 * MS).contains(&at), "RST at {at} us");
        assert!(returned >= rst.time, "close returned after its RST");
    });
}

/// SO_LINGER {1,5} on a non-blocking socket with unacknowledged data: close fails with
/// EWOULDBLOCK, sends nothing, and the descriptor stays usable; the next packet is the data's
/// retransmission, not a FIN or RST.
#[test]
fn non_blocking_linger_would_block_and_sends_nothing() {
    let pd = Pd::new(Some(FLAGS));
    let mut peer = Peer::new(40003);
    let (_l, c) = established(&pd, &mut peer);
    assert_eq!(pd.write(c, b"unacked").unwrap(), 7);
    let data = pd.segment();
    assert_eq!(data.payload, b"unacked");
    pd.set_nonblocking(c).unwrap();
    pd.set_linger(c, 1, 5).unwrap();
    assert_eq!(pd.close(c), Err(libc::EWOULDBLOCK));
    assert_eq!(pd.get_int(c, libc::SOL_SOCKET, libc::SO_ERROR), Ok(0));
    let next = pd.segment();
    assert!(!next.fin && !next.rst, "{next:?}");
    assert_eq!(next.payload, b"unacked", "a retransmission");
    // The segment guard prompts the first resend of a lone segment two round trips plus
    // 200 ms after it left (smoltcp's own timer would wait 1 s).
    assert!(next.time - data.time >= 200 * MS, "{next:?}");
    // Once all is acknowledged the same close succeeds and sends the FIN.
    peer.ack = peer.ack.wrapping_add(7);
    peer.send_ack(&pd);
    assert_eq!(pd.close(c), Ok(0));
    let fin = pd.segment();
    assert!(fin.fin && !fin.rst, "{fin:?}");
}

/// Unread data at close: RST, not FIN (lingerstack's contract, as Linux).
#[test]
fn unread_data_at_close_resets() {
    let pd = Pd::new(Some(FLAGS));
    let mut peer = Peer::new(40004);
    let (_l, c) = established(&pd, &mut peer);
    peer.send_data(&pd, b"never read");
    let ack = pd.segment();
    assert_eq!(ack.ack, Some(peer.seq));
    assert_eq!(pd.close(c), Ok(0));
    let rst = pd.segment();
    assert!(rst.rst, "{rst:?}");
}

/// A blocking accept on a second thread sleeps (state S, which packetdrill waits for) and is
/// woken by a SYN and ACK injected from the main thread; it fills in the peer's address.
#[test]
fn blocking_accept_on_a_second_thread_is_woken_by_injected_packets() {
    let pd = Pd::new(Some(FLAGS));
    let mut peer = Peer::new(40005);
    let l = pd.socket().unwrap();
    pd.bind(l, peer.stack).unwrap();
    pd.listen(l).unwrap();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let pd = &pd;
        let acceptor = s.spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::gettid() }).unwrap();
            pd.accept(l)
        });
        let tid = rx.recv().unwrap();
        wait_until_sleeping(tid);
        assert!(!acceptor.is_finished());
        peer.syn(pd);
        peer.finish_handshake(pd);
        let (c, from) = acceptor.join().unwrap().expect("accepted");
        assert_eq!(from, peer.me);
        assert!(c >= 0 && c != l);
    });
}

/// Unacknowledged data is retransmitted on virtual time, exact to the millisecond, and none of
/// it takes real seconds: the segment guard prompts the first resend of a lone segment two
/// round trips (10 ms at least) plus 200 ms after it left, then at intervals doubling up to
/// 1 s, which keep smoltcp's own timer (1 s, doubling) from ever running out.
#[test]
fn retransmissions_back_off_on_virtual_time() {
    let pd = Pd::new(Some(FLAGS));
    let mut peer = Peer::new(40006);
    let (_l, c) = established(&pd, &mut peer);
    pd.write(c, b"x").unwrap();
    let first = pd.segment();
    let times: Vec<i64> = (0..7)
        .map(|_| {
            let seg = pd.segment();
            assert_eq!((seg.seq, seg.payload.as_slice()), (first.seq, &b"x"[..]));
            seg.time
        })
        .collect();
    let mut previous = first.time;
    let mut gaps = Vec::new();
    for t in times {
        gaps.push((t - previous + MS / 2) / MS);
        previous = t;
    }
    assert_eq!(gaps, [210, 210, 420, 840, 1000, 1000, 1000], "gaps in ms");
}

/// The socket calls speak Linux: errno values, option round trips, FIONREAD, fcntl flags, and
/// what is not supported fails instead of pretending.
#[test]
fn linux_errno_and_options() {
    let pd = Pd::new(Some(FLAGS));
    let mut peer = Peer::new(40007);
    let (l, c) = established(&pd, &mut peer);
    // A second bind of the port.
    let s = pd.socket().unwrap();
    assert_eq!(pd.bind(s, peer.stack), Err(libc::EADDRINUSE));
    // Linger round trip in Linux's layout; SO_RCVBUF reported doubled.
    pd.set_linger(c, 1, 7).unwrap();
    let mut l2 = [0i32; 2];
    let mut len: libc::socklen_t = 8;
    // SAFETY: two ints and their length.
    let r = unsafe {
        (pd.t.getsockopt)(
            pd.t.userdata,
            c,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            l2.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!((r, l2, len), (0, [1, 7], 8));
    let v: i32 = 8192;
    // SAFETY: an int and its length.
    let r = unsafe {
        (pd.t.setsockopt)(
            pd.t.userdata,
            s,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&v as *const i32).cast(),
            4,
        )
    };
    assert_eq!(r, 0);
    assert_eq!(pd.get_int(s, libc::SOL_SOCKET, libc::SO_RCVBUF), Ok(16384));
    // Too late on a connection: refused, and the real size still reported.
    // SAFETY: an int and its length.
    let r = unsafe {
        (pd.t.setsockopt)(
            pd.t.userdata,
            c,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&v as *const i32).cast(),
            4,
        )
    };
    assert_eq!((r, common::errno()), (-1, libc::EOPNOTSUPP));
    assert_eq!(
        pd.get_int(c, libc::SOL_SOCKET, libc::SO_SNDBUF),
        Ok(2 * 256 * 1024)
    );
    assert_eq!(pd.get_int(c, libc::IPPROTO_TCP, libc::TCP_NODELAY), Ok(0));
    // Unsupported option: ENOPROTOOPT.
    assert_eq!(
        pd.get_int(c, libc::IPPROTO_TCP, libc::TCP_MAXSEG),
        Err(libc::ENOPROTOOPT)
    );
    // FIONREAD counts unread bytes.
    peer.send_data(&pd, b"four");
    let _ack = pd.segment();
    let mut n: i32 = -1;
    // SAFETY: ioctl with an int pointer, as packetdrill calls it.
    let r = unsafe { (pd.t.ioctl)(pd.t.userdata, c, libc::FIONREAD as libc::c_ulong, &mut n) };
    assert_eq!((r, n), (0, 4));
    // fcntl: O_NONBLOCK set and read back; a non-blocking read with nothing there is EAGAIN.
    // SAFETY: fcntl without a third argument.
    let flags = unsafe { (pd.t.fcntl)(pd.t.userdata, c, libc::F_GETFL) };
    assert_eq!(flags, libc::O_RDWR);
    pd.set_nonblocking(c).unwrap();
    // SAFETY: fcntl without a third argument.
    let flags = unsafe { (pd.t.fcntl)(pd.t.userdata, c, libc::F_GETFL) };
    assert_eq!(flags, libc::O_RDWR | libc::O_NONBLOCK);
    assert_eq!(pd.read(c, 100).unwrap(), b"four");
    assert_eq!(pd.read(c, 100), Err(libc::EAGAIN));
    // FIONBIO turns it back to blocking, as fcntl sees.
    let off: i32 = 0;
    // SAFETY: ioctl with an int pointer, as packetdrill calls it.
    let r = unsafe { (pd.t.ioctl)(pd.t.userdata, c, libc::FIONBIO as libc::c_ulong, &off) };
    assert_eq!(r, 0);
    // SAFETY: fcntl without a third argument.
    let flags = unsafe { (pd.t.fcntl)(pd.t.userdata, c, libc::F_GETFL) };
    assert_eq!(flags, libc::O_RDWR);
    // An ioctl the shim does not know.
    // SAFETY: an ioctl without an argument.
    let r = unsafe { (pd.t.ioctl)(pd.t.userdata, c, libc::SIOCGIFMTU as libc::c_ulong) };
    assert_eq!((r, common::errno()), (-1, libc::ENOTTY));
    // Non-blocking accept with nothing pending.
    pd.set_nonblocking(l).unwrap();
    assert_eq!(pd.accept(l).err(), Some(libc::EAGAIN));
    // Not offered: epoll.
    // SAFETY: plain call.
    assert_eq!(unsafe { (pd.t.epoll_create)(pd.t.userdata, 1) }, -1);
    assert_eq!(common::errno(), libc::ENOSYS);
    // Unknown descriptors.
    assert_eq!(pd.close(12345), Err(libc::EBADF));
    // UDP is not pretended.
    // SAFETY: plain call.
    let r = unsafe { (pd.t.socket)(pd.t.userdata, libc::AF_INET, libc::SOCK_DGRAM, 0) };
    assert_eq!((r, common::errno()), (-1, libc::EPROTONOSUPPORT));
}

/// A bad --so_flags is reported and fails every call, the clock first (packetdrill dies on a
/// failing clock), so a mistyped flag cannot let a script pass.
#[test]
fn bad_flags_fail_every_call() {
    let pd = Pd::new(Some("local=192.168.0.1,colour=red"));
    // SAFETY: plain calls.
    let clock = unsafe {
        (pd.t.gettimeofday)(pd.t.userdata, &mut std::mem::zeroed(), std::ptr::null_mut())
    };
    assert_eq!(clock, -1);
    assert_eq!(pd.socket(), Err(libc::EINVAL));
    let packet = Peer::new(1).packet(smoltcp::wire::TcpControl::Syn, false, &[]);
    // SAFETY: a valid buffer.
    let r = unsafe { (pd.t.netdev_send)(pd.t.userdata, packet.as_ptr().cast(), packet.len()) };
    assert_ne!(r, 0);
    assert!(pd.receive().is_none(), "count 0: the script fails");
}

/// Without flags the shim learns its address from bind and packetdrill's from the first SYN.
#[test]
fn without_flags_addresses_are_learnt() {
    let pd = Pd::new(None);
    let mut peer = Peer::new(40008);
    let (_l, c) = established(&pd, &mut peer);
    assert_eq!(pd.write(c, b"hi").unwrap(), 2);
    let seg: Seg = pd.segment();
    assert_eq!((seg.src, seg.dst), (peer.stack, peer.me));
}

/// IPv6 works the same way: handshake, data, and the peer's address in a sockaddr_in6.
#[test]
fn ipv6_handshake_and_data() {
    let pd = Pd::new(Some(FLAGS6));
    let mut peer = Peer::new_v6(40009);
    let (_l, c) = established(&pd, &mut peer);
    assert_eq!(pd.write(c, b"six").unwrap(), 3);
    let seg = pd.segment();
    assert_eq!((seg.src, seg.dst), (peer.stack, peer.me));
    assert_eq!(seg.payload, b"six");
}

/// TCP_USER_TIMEOUT bounds a background close: data and FIN stuck behind a shut window are
/// reset at the user timeout, on virtual time.
#[test]
fn user_timeout_bounds_a_background_close() {
    let pd = Pd::new(Some(FLAGS));
    let mut peer = Peer::new(40010);
    peer.window = 0;
    let (_l, c) = established(&pd, &mut peer);
    let ms: i32 = 3000;
    // SAFETY: an int and its length.
    let r = unsafe {
        (pd.t.setsockopt)(
            pd.t.userdata,
            c,
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&ms as *const i32).cast(),
            4,
        )
    };
    assert_eq!(r, 0);
    assert_eq!(
        pd.get_int(c, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
        Ok(3000)
    );
    // The data is stuck from the write on; the close follows at once (the engine's timeout
    // and the close deadline both end 3 s later).
    let start = pd.now();
    pd.write(c, b"stuck").unwrap();
    assert_eq!(pd.close(c), Ok(0), "the default close returns at once");
    let rst = loop {
        let seg = pd.segment();
        if seg.rst {
            break seg;
        }
        assert!(!seg.fin, "{seg:?}");
    };
    let at = rst.time - start;
    assert!((3000 * MS..3010 * MS).contains(&at), "RST at {at} us");
}

/// gettimeofday advances by itself (packetdrill spins on it before its first event) and usleep
/// jumps it forward, firing what falls due on the way: the retransmission due during a 1.5 s
/// usleep is stamped with its own time, not the end of the sleep.
#[test]
fn the_clock_runs_by_itself_and_usleep_jumps_it() {
    let pd = Pd::new(Some(FLAGS));
    let t1 = pd.now();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let t2 = pd.now();
    assert!(t2 > t1, "{t1} {t2}");
    let mut peer = Peer::new(40011);
    let (_l, c) = established(&pd, &mut peer);
    pd.write(c, b"r").unwrap();
    let first = pd.segment();
    pd.usleep(1_500_000);
    assert!(pd.now() - first.time >= 1_500_000);
    let again = pd.segment();
    assert_eq!(again.payload, b"r");
    // The first resend of a lone segment: the guard's prompt, 2 x 10 ms + 200 ms after it.
    let gap = again.time - first.time;
    assert!(
        (210 * MS..211 * MS).contains(&gap),
        "retransmitted after {gap} us"
    );
}

/// With nothing to send and no timer left, netdev_receive gives up with a count of 0 (which
/// fails the script) instead of hanging or reporting an error packetdrill would retry forever.
#[test]
fn receive_gives_up_when_nothing_can_come() {
    let pd = Pd::new(Some(FLAGS));
    let l = pd.socket().unwrap();
    pd.bind(l, Peer::new(1).stack).unwrap();
    pd.listen(l).unwrap();
    assert!(pd.receive().is_none());
}

/// Run `call` on a second thread as packetdrill runs a call with a time range: the main thread
/// goes on once that thread sleeps, then runs `main`. Returns what the call returned, the
/// clock as the call's thread read it right after (packetdrill's end time), and the clock
/// just before the call.
fn on_syscall_thread<T: Send>(
    pd: &Pd,
    call: impl FnOnce(&Pd) -> T + Send,
    main: impl FnOnce(),
) -> (T, i64, i64) {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = s.spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send((unsafe { libc::gettid() }, pd.now())).unwrap();
            let r = call(pd);
            (r, pd.now())
        });
        let (tid, start) = rx.recv().unwrap();
        wait_until_sleeping(tid);
        main();
        let (r, end) = worker.join().unwrap();
        (r, end, start)
    })
}

/// A blocking linger close whose deadline the main thread jumps past (a usleep to the script's
/// next event) still ends, for its own thread's clock read, at the deadline: 2 s, not 3.
#[test]
fn a_blocking_call_ends_at_its_moment_even_when_the_clock_jumps_past_it() {
    let pd = Pd::new(Some(FLAGS));
    let mut peer = Peer::new(40012);
    peer.window = 0;
    let (_l, c) = established(&pd, &mut peer);
    pd.write(c, b"stuck").unwrap();
    pd.set_linger(c, 1, 2).unwrap();
    let (r, end, start) = on_syscall_thread(&pd, |pd| pd.close(c), || pd.usleep(3_000_000));
    assert_eq!(r, Ok(0));
    let took = end - start;
    assert!(
        (2000 * MS..SLACK + 2000 * MS).contains(&took),
        "close took {took} us"
    );
    assert!(
        pd.now() - start >= 3000 * MS,
        "the main thread's clock went on"
    );
    let rst = loop {
        let seg = pd.segment();
        if seg.rst {
            break seg;
        }
    };
    let at = rst.time - start;
    assert!((2000 * MS..2010 * MS).contains(&at), "RST at {at} us");
}

/// How late a call on the syscall thread may end: its wake-up takes real time, which the
/// clock (running by itself between calls) counts, and a loaded machine can take a while.
const SLACK: i64 = 100 * MS;

/// poll on the syscall thread: a timeout ends at the timeout, a change of readiness at the
/// moment of the packet that caused it, whatever the main thread's clock did after.
#[test]
fn poll_ends_at_its_timeout_or_at_the_packet_that_woke_it() {
    let pd = Pd::new(Some(FLAGS));
    let mut peer = Peer::new(40013);
    let (_l, c) = established(&pd, &mut peer);
    let (r, end, start) = on_syscall_thread(
        &pd,
        |pd| pd.poll(c, libc::POLLIN, 300),
        || pd.usleep(1_000_000),
    );
    assert_eq!(r, Ok((0, 0)));
    let took = end - start;
    assert!(
        (300 * MS..SLACK + 300 * MS).contains(&took),
        "timed out after {took} us"
    );

    let (r, end, start) = on_syscall_thread(
        &pd,
        |pd| pd.poll(c, libc::POLLIN, 5000),
        || {
            pd.usleep(100_000);
            peer.send_data(&pd, b"wake");
            pd.usleep(1_000_000);
        },
    );
    assert_eq!(r, Ok((1, libc::POLLIN)));
    let took = end - start;
    assert!(
        (100 * MS..SLACK + 100 * MS).contains(&took),
        "woken after {took} us"
    );
    assert_eq!(pd.read(c, 10).unwrap(), b"wake");

    // Data that comes only after the timeout, while the poll may not have woken yet: still a
    // timeout, at the timeout.
    let (r, end, start) = on_syscall_thread(
        &pd,
        |pd| pd.poll(c, libc::POLLIN, 300),
        || {
            pd.usleep(500_000);
            peer.send_data(&pd, b"late");
        },
    );
    assert_eq!(r, Ok((0, 0)));
    let took = end - start;
    assert!(
        (300 * MS..SLACK + 300 * MS).contains(&took),
        "timed out after {took} us"
    );
}

/// SO_RCVTIMEO: a blocking read with nothing to read fails with EAGAIN at the timeout (ended
/// then for its thread, though the main thread jumped further), and the option reads back.
#[test]
fn receive_timeout_gives_eagain_at_the_timeout() {
    let pd = Pd::new(Some(FLAGS));
    let mut peer = Peer::new(40014);
    let (_l, c) = established(&pd, &mut peer);
    let tv = [0i64, 250_000];
    // SAFETY: a struct timeval (two 64-bit fields) and its length.
    let r = unsafe {
        (pd.t.setsockopt)(
            pd.t.userdata,
            c,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            tv.as_ptr().cast(),
            16,
        )
    };
    assert_eq!(r, 0);
    let (r, end, start) = on_syscall_thread(&pd, |pd| pd.read(c, 10), || pd.usleep(1_000_000));
    assert_eq!(r, Err(libc::EAGAIN));
    let took = end - start;
    assert!(
        (250 * MS..SLACK + 250 * MS).contains(&took),
        "timed out after {took} us"
    );
}
