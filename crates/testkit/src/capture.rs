//! Kernel-side packet capture on an interface with an AF_PACKET socket, written to pcap.

use std::ffi::CString;

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use lingerstack_stack::link::PcapSink;

use crate::{Dir, Netns, Trace};

/// Receive buffer requested for the capture socket.
const RCVBUF: libc::c_int = 8 << 20;
/// Largest frame kept in full; longer ones are truncated (their real length is recorded).
const SNAPLEN: usize = 256 * 1024;
/// How often the reader thread checks for a stop request.
const POLL_MS: libc::c_int = 20;

/// One captured frame.
#[derive(Clone, Debug)]
pub(crate) struct RawFrame {
    pub(crate) time: SystemTime,
    pub(crate) dir: Dir,
    orig_len: u32,
    pub(crate) data: Vec<u8>,
}

/// A running capture of one interface in a namespace; [`Capture::stop`] yields a [`Trace`].
///
/// Dropped without `stop` (e.g. when a test panics) it still writes the pcap file.
#[derive(Debug)]
pub struct Capture {
    name: String,
    start: SystemTime,
    fd: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<Vec<RawFrame>>>>,
}

impl Capture {
    /// Starts capturing `ifname` inside `ns`; the socket is bound before this returns, so no
    /// later frame is missed. `name` names the pcap file (`<target>/captures/<name>.pcap`).
    pub fn start(ns: &Netns, ifname: &str, name: &str) -> io::Result<Capture> {
        let ifname = ifname.to_string();
        let fd = Arc::new(ns.run(move || open_socket(&ifname))?);
        let start = SystemTime::now();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (fd, stop) = (fd.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("capture-{name}"))
                .spawn(move || read_loop(fd.as_raw_fd(), &stop))?
        };
        Ok(Capture {
            name: sanitize(name),
            start,
            fd,
            stop,
            thread: Some(thread),
        })
    }

    /// Path the pcap file will be written to.
    pub fn pcap_path(&self) -> PathBuf {
        crate::captures_dir().join(format!("{}.pcap", self.name))
    }

    /// Stops the capture, writes the pcap file and returns the parsed trace.
    ///
    /// Panics if reading or writing the capture failed.
    pub fn stop(mut self) -> Trace {
        let (frames, drops) = self.finish().expect("capture failed");
        let path = self.pcap_path();
        write_pcap(&path, &frames)
            .unwrap_or_else(|e| panic!("writing capture {}: {e}", path.display()));
        Trace::from_frames(
            path,
            drops,
            self.start,
            frames.iter().map(|f| (f.time, f.dir, f.data.as_slice())),
        )
    }

    /// Stops the reader thread after it drained the socket; returns frames and drop count.
    fn finish(&mut self) -> io::Result<(Vec<RawFrame>, u32)> {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take().expect("capture already finished");
        let frames = thread
            .join()
            .map_err(|_| io::Error::other("capture thread panicked"))??;
        Ok((frames, drops(self.fd.as_raw_fd())?))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if self.thread.is_none() {
            return;
        }
        let path = self.pcap_path();
        match self.finish() {
            Ok((frames, _)) => match write_pcap(&path, &frames) {
                Ok(()) => eprintln!("capture {} written to {}", self.name, path.display()),
                Err(e) => eprintln!("capture {}: writing {}: {e}", self.name, path.display()),
            },
            Err(e) => eprintln!("capture {} failed: {e}", self.name),
        }
    }
}

/// Replaces characters that do not belong in a file name.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(crate) fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int together with its exact size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&val as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Opens an AF_PACKET socket bound to `ifname` (in the calling thread's namespace).
pub(crate) fn open_socket(ifname: &str) -> io::Result<OwnedFd> {
    let c_name =
        CString::new(ifname).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c_name` is a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if ifindex == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("interface {ifname}: {e}")));
    }
    // Protocol 0: receive nothing until bound to the interface with ETH_P_ALL.
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw =
        cvt(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
        setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF)?;
    }
    setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex as libc::c_int;
    // SAFETY: passes a pointer to a live sockaddr_ll together with its exact size.
    cvt(unsafe {
        libc::bind(
            raw,
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// Reads frames until `stop` is set, then drains what is queued and returns.
fn read_loop(fd: RawFd, stop: &AtomicBool) -> io::Result<Vec<RawFrame>> {
    let mut frames = Vec::new();
    let mut buf = vec![0u8; SNAPLEN];
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, if stopping { 0 } else { POLL_MS }) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        while let Some(frame) = recv_frame(fd, &mut buf)? {
            frames.push(frame);
        }
        if stopping {
            return Ok(frames);
        }
    }
}

/// Receives one frame without blocking; `None` when the queue is empty.
pub(crate) fn recv_frame(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<RawFrame>> {
    // SAFETY: sockaddr_ll and msghdr are plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control);
    // SAFETY: every pointer in `msg` refers to a live buffer of the stated size.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT | libc::MSG_TRUNC) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) => Ok(None),
            Some(libc::EINTR) => recv_frame(fd, buf),
            // The interface went down or away (a test removing the device): the frames so
            // far still count; the queue yields nothing more now.
            Some(libc::ENETDOWN | libc::ENODEV | libc::ENXIO) => Ok(None),
            _ => Err(e),
        };
    }
    let orig_len = n as usize;
    let time = cmsg_timestamp(&msg).unwrap_or_else(SystemTime::now);
    let dir = if sll.sll_pkttype == libc::PACKET_OUTGOING {
        Dir::ToStack
    } else {
        Dir::FromStack
    };
    Ok(Some(RawFrame {
        time,
        dir,
        orig_len: orig_len as u32,
        data: buf[..orig_len.min(buf.len())].to_vec(),
    }))
}

/// The SCM_TIMESTAMPNS control message of a received `msg`, if any.
fn cmsg_timestamp(msg: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: `msg` was filled by recvmsg and its control buffer is still alive; the CMSG
    // macros stay within msg_controllen, and the timespec is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return Some(
                    SystemTime::UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
                );
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// Reads and resets PACKET_STATISTICS; returns tp_drops.
fn drops(fd: RawFd) -> io::Result<u32> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: passes a pointer to a live tpacket_stats and its size.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    })?;
    Ok(stats.tp_drops)
}

/// Writes `frames` as a nanosecond Ethernet pcap file, through the engine's own pcap writer
/// (one writer for the whole workspace).
fn write_pcap(path: &Path, frames: &[RawFrame]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut sink = PcapSink::create(path)?;
    for f in frames {
        sink.record(f.time, f.orig_len as usize, &f.data);
    }
    sink.flush();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_roundtrip() {
        let path = crate::captures_dir().join("unit-pcap-roundtrip.pcap");
        let frame = RawFrame {
            time: SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            dir: Dir::ToStack,
            orig_len: 4,
            data: vec![1, 2, 3, 4],
        };
        write_pcap(&path, &[frame]).unwrap();
        // Read back with an independent reader.
        let file = std::fs::File::open(&path).unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(file).unwrap();
        assert_eq!(r.header().datalink, pcap_file::DataLink::ETHERNET);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.timestamp, Duration::new(1_700_000_000, 123_456_789));
        assert_eq!(&*p.data, &[1, 2, 3, 4]);
        assert_eq!(sanitize("a/b c"), "a_b_c");
    }
}
