//! The shim's own driver: it loads liblingerstack_packetdrill.so as packetdrill does
//! (dlopen with RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE | RTLD_DEEPBIND, then
//! `packetdrill_interface_init`), calls through the table, plays the remote TCP with packets
//! it crafts (smoltcp's wire types, checksums set), and reads back the packets the stack sends
//! with their virtual times.

#![allow(dead_code)] // Each test file uses its own part of the driver.

use std::ffi::{CString, c_char, c_int, c_long, c_uint, c_ulong, c_void};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use libc::{size_t, sockaddr, socklen_t, ssize_t};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpControl, TcpPacket,
    TcpRepr, TcpSeqNumber,
};

/// The stack's address and packetdrill's, as the flags give them.
pub const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
pub const REMOTE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const FLAGS: &str = "local=192.168.0.1,remote=192.0.2.1";
/// The same over IPv6.
pub const LOCAL6: Ipv6Addr = Ipv6Addr::new(0xfd3d, 0xfa7b, 0xd17d, 0, 0, 0, 0, 1);
pub const REMOTE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const FLAGS6: &str = "local=fd3d:fa7b:d17d::1,remote=2001:db8::1";

type Ud = *mut c_void;

/// packetdrill's `struct packetdrill_interface`, as packetdrill.h lays it out.
#[repr(C)]
pub struct Table {
    pub userdata: Ud,
    pub free: unsafe extern "C" fn(Ud),
    pub socket: unsafe extern "C" fn(Ud, c_int, c_int, c_int) -> c_int,
    pub bind: unsafe extern "C" fn(Ud, c_int, *const sockaddr, socklen_t) -> c_int,
    pub listen: unsafe extern "C" fn(Ud, c_int, c_int) -> c_int,
    pub accept: unsafe extern "C" fn(Ud, c_int, *mut sockaddr, *mut socklen_t) -> c_int,
    pub connect: unsafe extern "C" fn(Ud, c_int, *const sockaddr, socklen_t) -> c_int,
    pub read: unsafe extern "C" fn(Ud, c_int, *mut c_void, size_t) -> ssize_t,
    pub readv: unsafe extern "C" fn(Ud, c_int, *const libc::iovec, c_int) -> ssize_t,
    pub recv: unsafe extern "C" fn(Ud, c_int, *mut c_void, size_t, c_int) -> ssize_t,
    pub recvfrom: unsafe extern "C" fn(
        Ud,
        c_int,
        *mut c_void,
        size_t,
        c_int,
        *mut sockaddr,
        *mut socklen_t,
    ) -> ssize_t,
    pub recvmsg: unsafe extern "C" fn(Ud, c_int, *mut libc::msghdr, c_int) -> ssize_t,
    pub write: unsafe extern "C" fn(Ud, c_int, *const c_void, size_t) -> ssize_t,
    pub writev: unsafe extern "C" fn(Ud, c_int, *const libc::iovec, c_int) -> ssize_t,
    pub send: unsafe extern "C" fn(Ud, c_int, *const c_void, size_t, c_int) -> ssize_t,
    pub sendto: unsafe extern "C" fn(
        Ud,
        c_int,
        *const c_void,
        size_t,
        c_int,
        *const sockaddr,
        socklen_t,
    ) -> ssize_t,
    pub sendmsg: unsafe extern "C" fn(Ud, c_int, *const libc::msghdr, c_int) -> ssize_t,
    pub fcntl: unsafe extern "C" fn(Ud, c_int, c_int, ...) -> c_int,
    pub ioctl: unsafe extern "C" fn(Ud, c_int, c_ulong, ...) -> c_int,
    pub close: unsafe extern "C" fn(Ud, c_int) -> c_int,
    pub shutdown: unsafe extern "C" fn(Ud, c_int, c_int) -> c_int,
    pub getsockopt:
        unsafe extern "C" fn(Ud, c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int,
    pub setsockopt:
        unsafe extern "C" fn(Ud, c_int, c_int, c_int, *const c_void, socklen_t) -> c_int,
    pub poll: unsafe extern "C" fn(Ud, *mut libc::pollfd, libc::nfds_t, c_int) -> c_int,
    pub netdev_send: unsafe extern "C" fn(Ud, *const c_void, size_t) -> c_int,
    pub netdev_receive: unsafe extern "C" fn(Ud, *mut c_void, *mut size_t, *mut i64) -> c_int,
    pub usleep: unsafe extern "C" fn(Ud, c_uint) -> c_int,
    pub gettimeofday: unsafe extern "C" fn(Ud, *mut libc::timeval, *mut c_void) -> c_int,
    pub epoll_create: unsafe extern "C" fn(Ud, c_int) -> c_int,
    pub epoll_ctl: unsafe extern "C" fn(Ud, c_int, c_int, c_int, *mut c_void) -> c_int,
    pub epoll_wait: unsafe extern "C" fn(Ud, c_int, *mut c_void, c_int, c_int) -> c_int,
    pub pipe: unsafe extern "C" fn(Ud, *mut c_int) -> c_int,
    pub splice: unsafe extern "C" fn(Ud, c_int, *mut i64, c_int, *mut i64, size_t, c_uint) -> c_int,
}

type Init = unsafe extern "C" fn(*const c_char, *mut Table);

/// The library built for this test profile, loaded once per process (it stays loaded:
/// RTLD_NODELETE, as in packetdrill): its handle and its init function's address.
pub fn loaded() -> (usize, usize) {
    static LOADED: OnceLock<(usize, usize)> = OnceLock::new();
    *LOADED.get_or_init(|| {
        let path = CString::new(lib_path().to_str().unwrap()).unwrap();
        let flags = libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_NODELETE | libc::RTLD_DEEPBIND;
        // SAFETY: a valid path; loading the library runs no code of ours but its initialisers.
        let handle = unsafe { libc::dlopen(path.as_ptr(), flags) };
        assert!(!handle.is_null(), "dlopen {path:?} failed");
        // SAFETY: a valid handle and symbol name.
        let sym = unsafe { libc::dlsym(handle, c"packetdrill_interface_init".as_ptr()) };
        assert!(!sym.is_null(), "packetdrill_interface_init not exported");
        (handle as usize, sym as usize)
    })
}

fn init_fn() -> Init {
    // SAFETY: the symbol is packetdrill_interface_init, of packetdrill's init type.
    unsafe { std::mem::transmute::<usize, Init>(loaded().1) }
}

/// liblingerstack_packetdrill.so, brought up to date first. It is the package's cdylib, which
/// cargo does not build for integration tests, so the test asks cargo for it (once per process;
/// a no-op when nothing changed) in the profile and target directory of the test itself.
pub fn lib_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // <target>/<profile>/deps/<test binary>
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let profile = profile_dir.file_name().unwrap().to_str().unwrap();
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "--quiet", "-p", "lingerstack-packetdrill", "--lib"])
            .arg("--target-dir")
            .arg(target_dir)
            .arg("--profile")
            .arg(if profile == "debug" { "dev" } else { profile });
        let status = cmd.status().expect("run cargo");
        assert!(status.success(), "building the shim failed: {cmd:?}");
        let path = profile_dir.join("liblingerstack_packetdrill.so");
        assert!(path.exists(), "{} not built", path.display());
        path
    })
    .clone()
}

/// One script's worth of shim: the table from one `packetdrill_interface_init`, freed on drop.
pub struct Pd {
    pub t: Table,
}

// SAFETY: the shim is made for packetdrill's two threads calling it at once.
unsafe impl Send for Pd {}
// SAFETY: as above.
unsafe impl Sync for Pd {}

impl Drop for Pd {
    fn drop(&mut self) {
        // SAFETY: the userdata of this init, freed once.
        unsafe { (self.t.free)(self.t.userdata) };
    }
}

/// The errno of the last failed call on this thread.
pub fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A call's result: the value, or the errno it set.
fn check<T: PartialOrd + From<i8>>(v: T) -> Result<T, c_int> {
    if v < T::from(0) { Err(errno()) } else { Ok(v) }
}

fn sockaddr_of(sa: SocketAddr) -> (Vec<u8>, socklen_t) {
    match sa {
        SocketAddr::V4(v4) => {
            // SAFETY: plain data, zero is valid.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            // SAFETY: reading the bytes of a plain struct.
            let b = unsafe {
                std::slice::from_raw_parts((&sin as *const libc::sockaddr_in).cast::<u8>(), 16)
            };
            (b.to_vec(), 16)
        }
        SocketAddr::V6(v6) => {
            // SAFETY: plain data, zero is valid.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            // SAFETY: reading the bytes of a plain struct.
            let b = unsafe {
                std::slice::from_raw_parts((&sin6 as *const libc::sockaddr_in6).cast::<u8>(), 28)
            };
            (b.to_vec(), 28)
        }
    }
}

impl Pd {
    /// A fresh shim, as packetdrill makes one per script.
    pub fn new(flags: Option<&str>) -> Pd {
        let flags = flags.map(|f| CString::new(f).unwrap());
        let mut t = std::mem::MaybeUninit::<Table>::zeroed();
        // SAFETY: init fills the whole table (checked: every pointer is non-null below).
        unsafe {
            init_fn()(
                flags.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
                t.as_mut_ptr(),
            )
        };
        // SAFETY: the table is plain pointers; check them before trusting the type.
        let words: [usize; 33] = unsafe { std::mem::transmute_copy(&t) };
        assert!(
            words[1..].iter().all(|&w| w != 0),
            "a NULL entry in the table"
        );
        // SAFETY: filled by init, every function pointer set.
        let t = unsafe { t.assume_init() };
        Pd { t }
    }

    fn ud(&self) -> Ud {
        self.t.userdata
    }

    /// Virtual time, microseconds on gettimeofday's scale.
    pub fn now(&self) -> i64 {
        // SAFETY: plain struct.
        let mut tv: libc::timeval = unsafe { std::mem::zeroed() };
        // SAFETY: a valid timeval; the tz argument is unused by packetdrill and the shim.
        let r = unsafe { (self.t.gettimeofday)(self.ud(), &mut tv, std::ptr::null_mut()) };
        assert_eq!(r, 0, "gettimeofday failed");
        tv.tv_sec * 1_000_000 + tv.tv_usec
    }

    pub fn usleep(&self, usecs: u32) {
        // SAFETY: plain call.
        assert_eq!(unsafe { (self.t.usleep)(self.ud(), usecs) }, 0);
    }

    pub fn socket(&self) -> Result<c_int, c_int> {
        self.socket_in(libc::AF_INET)
    }

    pub fn socket_in(&self, domain: c_int) -> Result<c_int, c_int> {
        // SAFETY: plain call.
        check(unsafe { (self.t.socket)(self.ud(), domain, libc::SOCK_STREAM, 0) })
    }

    pub fn bind(&self, fd: c_int, sa: SocketAddr) -> Result<c_int, c_int> {
        let (b, len) = sockaddr_of(sa);
        // SAFETY: a sockaddr of `len` bytes.
        check(unsafe { (self.t.bind)(self.ud(), fd, b.as_ptr().cast(), len) })
    }

    pub fn listen(&self, fd: c_int) -> Result<c_int, c_int> {
        // SAFETY: plain call.
        check(unsafe { (self.t.listen)(self.ud(), fd, 8) })
    }

    /// accept: the new descriptor and the peer written into the sockaddr.
    pub fn accept(&self, fd: c_int) -> Result<(c_int, SocketAddr), c_int> {
        // SAFETY: plain data.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
        let ptr = (&mut ss as *mut libc::sockaddr_storage).cast::<sockaddr>();
        // SAFETY: a sockaddr_storage and its length.
        let new_fd = check(unsafe { (self.t.accept)(self.ud(), fd, ptr, &mut len) })?;
        let peer = match c_int::from(ss.ss_family) {
            libc::AF_INET => {
                assert_eq!(len, 16);
                // SAFETY: the shim wrote a sockaddr_in.
                let sin = unsafe { *ptr.cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                SocketAddr::new(ip.into(), u16::from_be(sin.sin_port))
            }
            libc::AF_INET6 => {
                assert_eq!(len, 28);
                // SAFETY: the shim wrote a sockaddr_in6.
                let sin6 = unsafe { *ptr.cast::<libc::sockaddr_in6>() };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                SocketAddr::new(ip.into(), u16::from_be(sin6.sin6_port))
            }
            other => panic!("accept wrote family {other}"),
        };
        Ok((new_fd, peer))
    }

    pub fn connect(&self, fd: c_int, sa: SocketAddr) -> Result<c_int, c_int> {
        let (b, len) = sockaddr_of(sa);
        // SAFETY: a sockaddr of `len` bytes.
        check(unsafe { (self.t.connect)(self.ud(), fd, b.as_ptr().cast(), len) })
    }

    pub fn write(&self, fd: c_int, data: &[u8]) -> Result<isize, c_int> {
        // SAFETY: a valid buffer.
        check(unsafe { (self.t.write)(self.ud(), fd, data.as_ptr().cast(), data.len()) })
    }

    pub fn read(&self, fd: c_int, max: usize) -> Result<Vec<u8>, c_int> {
        let mut buf = vec![0u8; max];
        // SAFETY: a valid buffer.
        let n = check(unsafe { (self.t.read)(self.ud(), fd, buf.as_mut_ptr().cast(), max) })?;
        buf.truncate(n as usize);
        Ok(buf)
    }

    pub fn close(&self, fd: c_int) -> Result<c_int, c_int> {
        // SAFETY: plain call.
        check(unsafe { (self.t.close)(self.ud(), fd) })
    }

    pub fn set_linger(&self, fd: c_int, on: c_int, seconds: c_int) -> Result<c_int, c_int> {
        let l = [on, seconds];
        // SAFETY: Linux's struct linger, two ints.
        check(unsafe {
            (self.t.setsockopt)(
                self.ud(),
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                l.as_ptr().cast(),
                8,
            )
        })
    }

    pub fn get_int(&self, fd: c_int, level: c_int, name: c_int) -> Result<c_int, c_int> {
        let mut v: c_int = -1;
        let mut len: socklen_t = 4;
        // SAFETY: an int and its length.
        check(unsafe {
            (self.t.getsockopt)(
                self.ud(),
                fd,
                level,
                name,
                (&mut v as *mut c_int).cast(),
                &mut len,
            )
        })?;
        Ok(v)
    }

    pub fn set_nonblocking(&self, fd: c_int) -> Result<c_int, c_int> {
        // SAFETY: fcntl with an int argument, as packetdrill calls it.
        check(unsafe { (self.t.fcntl)(self.ud(), fd, libc::F_SETFL, libc::O_NONBLOCK as c_long) })
    }

    /// poll one descriptor: the count and its revents.
    pub fn poll(&self, fd: c_int, events: i16, timeout_ms: c_int) -> Result<(c_int, i16), c_int> {
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = check(unsafe { (self.t.poll)(self.ud(), &mut p, 1, timeout_ms) })?;
        Ok((n, p.revents))
    }

    /// Inject one IP packet.
    pub fn inject(&self, packet: &[u8]) {
        // SAFETY: a valid buffer.
        let r = unsafe { (self.t.netdev_send)(self.ud(), packet.as_ptr().cast(), packet.len()) };
        assert_eq!(r, 0, "netdev_send failed");
    }

    /// The next packet the stack sent and its virtual time (None: the shim gave up).
    pub fn receive(&self) -> Option<(Vec<u8>, i64)> {
        let mut buf = vec![0u8; 65536];
        let mut len: size_t = buf.len();
        let mut time: i64 = 0;
        // SAFETY: a buffer of `len` bytes and two valid out-pointers.
        let r = unsafe {
            (self.t.netdev_receive)(self.ud(), buf.as_mut_ptr().cast(), &mut len, &mut time)
        };
        assert_eq!(r, 0, "netdev_receive failed");
        (len > 0).then(|| {
            buf.truncate(len);
            (buf, time)
        })
    }

    /// The next packet as a segment, with its time.
    pub fn segment(&self) -> Seg {
        let (packet, time) = self.receive().expect("the stack sent a packet");
        Seg::parse(&packet, time)
    }
}

/// A TCP segment the stack sent.
#[derive(Clone, Debug)]
pub struct Seg {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub syn: bool,
    pub ack: Option<u32>,
    pub fin: bool,
    pub rst: bool,
    pub seq: u32,
    pub window: u16,
    pub payload: Vec<u8>,
    /// Virtual send time, microseconds on gettimeofday's scale.
    pub time: i64,
}

impl Seg {
    /// Parse an IPv4 or IPv6 TCP packet, checking the checksums.
    pub fn parse(packet: &[u8], time: i64) -> Seg {
        let (src, dst, payload): (IpAddress, IpAddress, &[u8]) = if packet[0] >> 4 == 4 {
            let ip = Ipv4Packet::new_checked(packet).expect("an IPv4 packet");
            assert!(ip.verify_checksum(), "IPv4 header checksum");
            assert_eq!(ip.next_header(), IpProtocol::Tcp);
            let len = ip.total_len() as usize;
            let at = ip.header_len() as usize;
            (ip.src_addr().into(), ip.dst_addr().into(), &packet[at..len])
        } else {
            let ip = Ipv6Packet::new_checked(packet).expect("an IPv6 packet");
            assert_eq!(ip.next_header(), IpProtocol::Tcp);
            let len = 40 + ip.payload_len() as usize;
            (ip.src_addr().into(), ip.dst_addr().into(), &packet[40..len])
        };
        let tcp = TcpPacket::new_checked(payload).expect("a TCP segment");
        assert!(tcp.verify_checksum(&src, &dst), "TCP checksum");
        Seg {
            src: SocketAddr::new(src.into(), tcp.src_port()),
            dst: SocketAddr::new(dst.into(), tcp.dst_port()),
            syn: tcp.syn(),
            ack: tcp.ack().then(|| tcp.ack_number().0 as u32),
            fin: tcp.fin(),
            rst: tcp.rst(),
            seq: tcp.seq_number().0 as u32,
            window: tcp.window_len(),
            payload: tcp.payload().to_vec(),
            time,
        }
    }
}

/// The remote end of one connection, played by the test: it crafts each packet.
pub struct Peer {
    pub me: SocketAddr,
    pub stack: SocketAddr,
    /// Next sequence number to send.
    pub seq: u32,
    /// What to acknowledge.
    pub ack: u32,
    pub window: u16,
}

impl Peer {
    pub fn new(port: u16) -> Peer {
        Peer::between(REMOTE.into(), LOCAL.into(), port)
    }

    pub fn new_v6(port: u16) -> Peer {
        Peer::between(REMOTE6.into(), LOCAL6.into(), port)
    }

    fn between(me: IpAddr, stack: IpAddr, port: u16) -> Peer {
        Peer {
            me: SocketAddr::new(me, port),
            stack: SocketAddr::new(stack, 8080),
            seq: 1_000_000,
            ack: 0,
            window: 65535,
        }
    }

    /// An IPv4 packet from the peer to the stack with checksums set.
    pub fn packet(&self, control: TcpControl, ack: bool, payload: &[u8]) -> Vec<u8> {
        let tcp = TcpRepr {
            src_port: self.me.port(),
            dst_port: self.stack.port(),
            control,
            seq_number: TcpSeqNumber(self.seq as i32),
            ack_number: ack.then_some(TcpSeqNumber(self.ack as i32)),
            window_len: self.window,
            window_scale: None,
            max_seg_size: (control == TcpControl::Syn).then_some(1460),
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        };
        let caps = ChecksumCapabilities::default();
        let (src, dst) = (
            IpAddress::from(self.me.ip()),
            IpAddress::from(self.stack.ip()),
        );
        let (mut buf, at) = match (self.me.ip(), self.stack.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let ip = Ipv4Repr {
                    src_addr: s,
                    dst_addr: d,
                    next_header: IpProtocol::Tcp,
                    payload_len: tcp.buffer_len(),
                    hop_limit: 64,
                };
                let mut buf = vec![0u8; ip.buffer_len() + tcp.buffer_len()];
                ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), &caps);
                (buf, ip.buffer_len())
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let ip = Ipv6Repr {
                    src_addr: s,
                    dst_addr: d,
                    next_header: IpProtocol::Tcp,
                    payload_len: tcp.buffer_len(),
                    hop_limit: 64,
                };
                let mut buf = vec![0u8; ip.buffer_len() + tcp.buffer_len()];
                ip.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
                (buf, ip.buffer_len())
            }
            _ => panic!("mixed IP versions"),
        };
        let mut tcp_packet = TcpPacket::new_unchecked(&mut buf[at..]);
        tcp.emit(&mut tcp_packet, &src, &dst, &caps);
        buf
    }

    /// Send a SYN (a fresh connection from this peer).
    pub fn syn(&mut self, pd: &Pd) {
        pd.inject(&self.packet(TcpControl::Syn, false, &[]));
        self.seq = self.seq.wrapping_add(1);
    }

    /// Take the SYN-ACK and check it; then ACK it: the connection is established.
    pub fn finish_handshake(&mut self, pd: &Pd) -> Seg {
        let synack = pd.segment();
        assert!(synack.syn && !synack.rst, "SYN-ACK expected: {synack:?}");
        assert_eq!(synack.ack, Some(self.seq), "SYN-ACK acknowledges the SYN");
        assert_eq!((synack.src, synack.dst), (self.stack, self.me));
        self.ack = synack.seq.wrapping_add(1);
        self.send_ack(pd);
        synack
    }

    pub fn send_ack(&self, pd: &Pd) {
        pd.inject(&self.packet(TcpControl::None, true, &[]));
    }

    /// Send data (with ACK and PSH).
    pub fn send_data(&mut self, pd: &Pd, data: &[u8]) {
        pd.inject(&self.packet(TcpControl::Psh, true, data));
        self.seq = self.seq.wrapping_add(data.len() as u32);
    }

    pub fn send_fin(&mut self, pd: &Pd) {
        pd.inject(&self.packet(TcpControl::Fin, true, &[]));
        self.seq = self.seq.wrapping_add(1);
    }
}

/// A listener on LOCAL:8080 and one connection from `peer`, accepted: (listener, connection).
pub fn established(pd: &Pd, peer: &mut Peer) -> (c_int, c_int) {
    let domain = if peer.me.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let l = pd.socket_in(domain).unwrap();
    pd.bind(l, peer.stack).unwrap();
    pd.listen(l).unwrap();
    peer.syn(pd);
    peer.finish_handshake(pd);
    let (c, from) = pd.accept(l).unwrap();
    assert_eq!(from, peer.me, "accept names the peer");
    (l, c)
}

/// Wait (bounded) until thread `tid` of this process sleeps, as packetdrill does before it
/// goes on after starting a blocking call.
pub fn wait_until_sleeping(tid: libc::pid_t) {
    let path = format!("/proc/self/task/{tid}/stat");
    for _ in 0..2000 {
        let stat = std::fs::read_to_string(&path).unwrap_or_default();
        // The state follows the command name in parentheses.
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.trim().chars().next());
        if state == Some('S') {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("thread {tid} never slept");
}
