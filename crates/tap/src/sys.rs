//! Every `unsafe` call of the crate: interface ioctls, `poll(2)` and, for the tests, `setns(2)`.
//!
//! The interface ioctls run on an `AF_INET` datagram socket. Such a socket resolves interface
//! names in the network namespace it was created in, so [`crate::TapLink`] keeps the socket it
//! made at open time and its ioctls keep addressing the right device from any thread.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Interface names are at most `IFNAMSIZ - 1` bytes (the last byte is the terminating NUL).
pub(crate) const MAX_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// Opens the `AF_INET`/`SOCK_DGRAM` socket that carries the interface ioctls.
pub(crate) fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; a negative result is checked before the fd is used.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A zeroed `ifreq` carrying `name` (the caller has checked its length and that it has no NUL).
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.as_bytes().contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    // SAFETY: `ifreq` is a plain C struct (a byte array and a union of integers, sockaddrs and a
    // pointer) for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

/// Runs one interface ioctl on `sock` with `req`.
fn ioctl(sock: BorrowedFd<'_>, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: every request passed here (SIOC[GS]IFFLAGS, SIOC[GS]IFMTU, SIOCGIFINDEX) reads and
    // writes exactly one `struct ifreq`, and `req` is a valid, exclusively borrowed one that
    // outlives the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request as _, req as *mut libc::ifreq) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Opens `/dev/net/tun` non-blocking and attaches it to the TAP `name` (`TUNSETIFF` with
/// `IFF_TAP | IFF_NO_PI`, plus `IFF_VNET_HDR` when `vnet`), creating the device if it does not
/// exist. Returns the descriptor and the name the kernel reports.
pub(crate) fn open_tap(name: &str, vnet: bool) -> io::Result<(OwnedFd, String)> {
    let path = c"/dev/net/tun";
    // SAFETY: `path` is a NUL-terminated string that outlives the call; the result is checked.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly opened descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = ifreq(name)?;
    let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
    if vnet {
        flags |= libc::IFF_VNET_HDR;
    }
    req.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` is valid and exclusively
    // borrowed for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF as _, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok((fd, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Sets the virtio-net header length (`TUNSETVNETHDRSZ`) and little-endian headers
/// (`TUNSETVNETLE`, already the default on little-endian machines; its failure is ignored).
pub(crate) fn set_vnet_header(fd: BorrowedFd<'_>, len: usize) -> io::Result<()> {
    let len = libc::c_int::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "header length"))?;
    // SAFETY: TUNSETVNETHDRSZ reads one `int` through the pointer, valid for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ as _, &len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let le: libc::c_int = 1;
    // SAFETY: TUNSETVNETLE reads one `int` through the pointer, valid for the call.
    let _ = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETLE as _, &le) };
    Ok(())
}

/// Tells the kernel which offloads this reader takes (`TUNSETOFFLOAD`, `TUN_F_*` bits).
pub(crate) fn set_offload(fd: BorrowedFd<'_>, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value; no memory is passed.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETOFFLOAD as _,
            libc::c_ulong::from(flags),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Writes one frame to `fd`; the number of bytes written.
pub(crate) fn write_frame(fd: RawFd, frame: &[u8]) -> io::Result<usize> {
    // SAFETY: `frame` is readable memory of `frame.len()` bytes that lives until write returns.
    let n = unsafe { libc::write(fd, frame.as_ptr().cast(), frame.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The interface flags (`IFF_*`) of `name`.
pub(crate) fn get_flags(sock: BorrowedFd<'_>, name: &str) -> io::Result<libc::c_short> {
    let mut req = ifreq(name)?;
    ioctl(sock, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled in the `ifru_flags` member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_flags })
}

/// Sets `IFF_UP` on `name` (read-modify-write of the flags; a no-op if already up).
pub(crate) fn set_up(sock: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let flags = get_flags(sock, name)?;
    let up = libc::IFF_UP as libc::c_short;
    if flags & up != 0 {
        return Ok(());
    }
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_flags = flags | up;
    ioctl(sock, libc::SIOCSIFFLAGS, &mut req)
}

/// The MTU of `name`.
pub(crate) fn get_mtu(sock: BorrowedFd<'_>, name: &str) -> io::Result<usize> {
    let mut req = ifreq(name)?;
    ioctl(sock, libc::SIOCGIFMTU, &mut req)?;
    // SAFETY: SIOCGIFMTU filled in the `ifru_mtu` member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    usize::try_from(mtu).map_err(|_| io::Error::other(format!("negative MTU {mtu}")))
}

/// Sets the MTU of `name`.
pub(crate) fn set_mtu(sock: BorrowedFd<'_>, name: &str, mtu: usize) -> io::Result<()> {
    let mtu = libc::c_int::try_from(mtu)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "MTU out of range"))?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_mtu = mtu;
    ioctl(sock, libc::SIOCSIFMTU, &mut req)
}

/// The interface index of `name`.
pub(crate) fn get_ifindex(sock: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    let mut req = ifreq(name)?;
    ioctl(sock, libc::SIOCGIFINDEX, &mut req)?;
    // SAFETY: SIOCGIFINDEX filled in the `ifru_ifindex` member of the union.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };
    u32::try_from(index).map_err(|_| io::Error::other(format!("negative ifindex {index}")))
}

/// `poll(2)` on one descriptor without waiting; returns `revents`.
///
/// Takes a raw descriptor: polling a closed or reused number is not memory-unsafe (at worst it
/// reports `POLLNVAL` or another file's state).
pub(crate) fn poll_now(fd: RawFd, events: libc::c_short) -> io::Result<libc::c_short> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is one valid, exclusively borrowed pollfd and the count passed is 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
        if rc >= 0 {
            return Ok(pfd.revents);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Reads one frame from `fd` into `buf`, with one spare byte after it.
///
/// The TAP driver copies what fits and returns the number of bytes copied, so a frame longer
/// than `buf` would look like a complete one of exactly `buf.len()` bytes. The spare byte
/// (a second `iovec`) makes such a frame show as `buf.len() + 1`.
pub(crate) fn read_frame(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let mut spare = [0u8; 1];
    let iov = [
        libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        },
        libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: spare.len(),
        },
    ];
    // SAFETY: both iovecs describe writable memory that is exclusively borrowed (`buf`,
    // `spare`) and lives until readv returns; the kernel writes at most `iov_len` to each.
    let n = unsafe { libc::readv(fd, iov.as_ptr(), iov.len() as libc::c_int) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Whether the process runs with effective uid 0.
#[cfg(test)]
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Moves the calling thread into the network namespace bound at `path` (e.g. /run/netns/x).
#[cfg(test)]
pub(crate) fn enter_netns(path: &std::path::Path) -> io::Result<()> {
    let file = std::fs::File::open(path)?;
    // SAFETY: setns(2) takes a descriptor that `file` keeps open for the duration of the call
    // and changes only the calling thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
