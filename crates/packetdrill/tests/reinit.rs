//! Scripts run one after another in one process, as packetdrill runs them: each init starts
//! clean although the library stays loaded (RTLD_NODELETE), and free leaves no descriptor and
//! no thread behind, whether a socket was closed through the shim or, as packetdrill does with
//! the ones a script left open, with libc's close. One test in its own binary, so nothing else
//! opens descriptors meanwhile.

mod common;

use std::os::fd::AsRawFd;

use common::{FLAGS, Pd, Peer, established};

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// One script's worth: a listener, an accepted connection with data, a closed socket, one left
/// open for "packetdrill" to close with libc's close, then free.
fn one_script(round: u16) {
    let pd = Pd::new(Some(FLAGS));
    let mut peer = Peer::new(41000 + round);
    // The same port each round: nothing of the previous script holds it.
    let (l, c) = established(&pd, &mut peer);
    peer.send_data(&pd, b"ping");
    let _ack = pd.segment();
    assert_eq!(pd.read(c, 10).unwrap(), b"ping");
    let spare = pd.socket().unwrap();
    pd.close(spare).unwrap();
    pd.close(l).unwrap();
    // packetdrill's teardown: libc close on what the script left open, a RST per connection.
    // SAFETY: `c` is the shim's memfd, handed to the "script", which closes it once.
    assert_eq!(unsafe { libc::close(c) }, 0);
    pd.inject(&peer.packet(smoltcp::wire::TcpControl::Rst, false, &[]));
    // Someone else's descriptor now has that number: free must leave it alone.
    let other = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: `c` is closed; dup2 gives the number to a copy of our own /dev/null descriptor.
    assert_eq!(unsafe { libc::dup2(other.as_raw_fd(), c) }, c);
    drop(pd);
    // SAFETY: F_GETFD only reads the descriptor's flags.
    let alive = unsafe { libc::fcntl(c, libc::F_GETFD) } >= 0;
    assert!(alive, "free closed a descriptor it no longer owned");
    // SAFETY: our dup, closed once.
    unsafe { libc::close(c) };
}

#[test]
fn reinit_in_one_process_leaks_no_descriptor_or_thread() {
    // Load the library and build it before counting.
    drop(Pd::new(Some(FLAGS)));
    let fds = count("/proc/self/fd");
    let threads = count("/proc/self/task");
    for round in 0..3 {
        one_script(round);
        assert_eq!(
            count("/proc/self/fd"),
            fds,
            "descriptors after round {round}"
        );
        assert_eq!(
            count("/proc/self/task"),
            threads,
            "threads after round {round}"
        );
    }
    // A fresh init's clock starts near real time again, not where the last one jumped to.
    let pd = Pd::new(Some(FLAGS));
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    assert!((pd.now() - real).abs() < 5_000_000, "clock of a fresh init");
}
