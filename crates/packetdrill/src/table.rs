//! packetdrill's table (`struct packetdrill_interface` of its packetdrill.h) and the C entry
//! points that fill it: each turns C pointers into slices and addresses, calls the shim, and
//! turns the result into a C return value and errno. Nothing panics across this boundary: a
//! panic becomes -1 with EIO.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use libc::{c_int, c_long, c_uint, c_ulong, iovec, msghdr, size_t, sockaddr, socklen_t, ssize_t};

use crate::addr;
use crate::driver::Shim;
use crate::errno::{Errno, Res, ret, set_errno};

type Ud = *mut c_void;

/// `struct packetdrill_interface`: userdata, then 32 function pointers in packetdrill's order.
///
/// Each pointer takes the userdata and then the arguments of the libc call of its name, and
/// returns what that call returns; packetdrill.h is the reference for the layout.
#[repr(C)]
#[allow(missing_docs)] // One field per libc call of the same name: the name is the doc.
pub struct Interface {
    pub userdata: Ud,
    pub free: unsafe extern "C" fn(Ud),
    pub socket: unsafe extern "C" fn(Ud, c_int, c_int, c_int) -> c_int,
    pub bind: unsafe extern "C" fn(Ud, c_int, *const sockaddr, socklen_t) -> c_int,
    pub listen: unsafe extern "C" fn(Ud, c_int, c_int) -> c_int,
    pub accept: unsafe extern "C" fn(Ud, c_int, *mut sockaddr, *mut socklen_t) -> c_int,
    pub connect: unsafe extern "C" fn(Ud, c_int, *const sockaddr, socklen_t) -> c_int,
    pub read: unsafe extern "C" fn(Ud, c_int, *mut c_void, size_t) -> ssize_t,
    pub readv: unsafe extern "C" fn(Ud, c_int, *const iovec, c_int) -> ssize_t,
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
    pub recvmsg: unsafe extern "C" fn(Ud, c_int, *mut msghdr, c_int) -> ssize_t,
    pub write: unsafe extern "C" fn(Ud, c_int, *const c_void, size_t) -> ssize_t,
    pub writev: unsafe extern "C" fn(Ud, c_int, *const iovec, c_int) -> ssize_t,
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
    pub sendmsg: unsafe extern "C" fn(Ud, c_int, *const msghdr, c_int) -> ssize_t,
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

/// What userdata points to. The two leading pointers are `struct lingerstack_pd_head` of
/// csrc/variadic.c: the C trampolines of fcntl and ioctl call through them.
#[repr(C)]
pub(crate) struct Userdata {
    fcntl: unsafe extern "C" fn(Ud, c_int, c_int, c_long) -> c_int,
    ioctl: unsafe extern "C" fn(Ud, c_int, c_ulong, *mut c_void) -> c_int,
    /// The shim; `Err` holds why the flags were refused (every call then fails).
    shim: Result<Shim, String>,
}

unsafe extern "C" {
    fn lingerstack_pd_fcntl(ud: Ud, fd: c_int, cmd: c_int, ...) -> c_int;
    fn lingerstack_pd_ioctl(ud: Ud, fd: c_int, request: c_ulong, ...) -> c_int;
}

/// Fill `ifc` for a shim (or for the reason there is none).
pub(crate) fn fill(ifc: &mut Interface, shim: Result<Shim, String>) {
    let ud = Box::new(Userdata {
        fcntl: fcntl_fixed,
        ioctl: ioctl_fixed,
        shim,
    });
    *ifc = Interface {
        userdata: Box::into_raw(ud).cast(),
        free,
        socket,
        bind,
        listen,
        accept,
        connect,
        read,
        readv,
        recv,
        recvfrom,
        recvmsg,
        write,
        writev,
        send,
        sendto,
        sendmsg,
        fcntl: lingerstack_pd_fcntl,
        ioctl: lingerstack_pd_ioctl,
        close,
        shutdown,
        getsockopt,
        setsockopt,
        poll,
        netdev_send,
        netdev_receive,
        usleep,
        gettimeofday,
        epoll_create,
        epoll_ctl,
        epoll_wait,
        pipe,
        splice,
    };
}

/// Run `f` on the shim behind `ud`: a refused configuration fails every call with EINVAL, a
/// panic with EIO.
fn with<T>(ud: Ud, f: impl FnOnce(&Shim) -> Res<T>) -> Res<T> {
    if ud.is_null() {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: packetdrill passes back the userdata `fill` gave it, alive until `free`.
    let ud = unsafe { &*ud.cast::<Userdata>() };
    let Ok(shim) = &ud.shim else {
        return Err(Errno(libc::EINVAL));
    };
    catch_unwind(AssertUnwindSafe(|| f(shim))).unwrap_or(Err(Errno(libc::EIO)))
}

/// A byte count as ssize_t.
fn len_ret(r: Res<usize>) -> ssize_t {
    ret(r.map(|n| ssize_t::try_from(n).unwrap_or(ssize_t::MAX)))
}

unsafe extern "C" fn free(ud: Ud) {
    if ud.is_null() {
        return;
    }
    // SAFETY: `ud` is the Box `fill` leaked; packetdrill frees it once, after its last call.
    let ud = unsafe { Box::from_raw(ud.cast::<Userdata>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(ud)));
}

unsafe extern "C" fn socket(ud: Ud, domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    ret(with(ud, |s| s.socket(domain, ty, protocol)))
}

unsafe extern "C" fn bind(ud: Ud, fd: c_int, sa: *const sockaddr, len: socklen_t) -> c_int {
    ret(with(ud, |s| {
        let domain = s.lock().sockets.get(fd)?.domain;
        // SAFETY: the caller passes `len` readable bytes at `sa`, as bind(2) requires.
        let addr = unsafe { addr::read(domain, sa, len) }?;
        s.bind(fd, addr).map(|()| 0)
    }))
}

unsafe extern "C" fn listen(ud: Ud, fd: c_int, backlog: c_int) -> c_int {
    ret(with(ud, |s| s.listen(fd, backlog).map(|()| 0)))
}

unsafe extern "C" fn accept(ud: Ud, fd: c_int, sa: *mut sockaddr, len: *mut socklen_t) -> c_int {
    ret(with(ud, |s| {
        let (new_fd, peer, domain) = s.accept(fd)?;
        // SAFETY: as accept(2): `sa` has `*len` writable bytes, or either is null.
        unsafe { addr::write(domain, peer, sa, len) };
        Ok(new_fd)
    }))
}

unsafe extern "C" fn connect(ud: Ud, fd: c_int, sa: *const sockaddr, len: socklen_t) -> c_int {
    ret(with(ud, |s| {
        let domain = s.lock().sockets.get(fd)?.domain;
        // SAFETY: the caller passes `len` readable bytes at `sa`, as connect(2) requires.
        let addr = unsafe { addr::read(domain, sa, len) }?;
        s.connect(fd, addr).map(|()| 0)
    }))
}

/// The caller's buffer as a slice (empty for a null pointer or zero length).
///
/// # Safety
///
/// `buf` must be null or point to `len` bytes that stay valid and unaliased for `'a`.
unsafe fn slice_mut<'a>(buf: *mut c_void, len: size_t) -> &'a mut [u8] {
    if buf.is_null() || len == 0 {
        return &mut [];
    }
    // SAFETY: as the function's contract says.
    unsafe { std::slice::from_raw_parts_mut(buf.cast(), len) }
}

/// # Safety
///
/// `buf` must be null or point to `len` readable bytes valid for `'a`.
unsafe fn slice<'a>(buf: *const c_void, len: size_t) -> &'a [u8] {
    if buf.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: as the function's contract says.
    unsafe { std::slice::from_raw_parts(buf.cast(), len) }
}

/// The iovec array as a list of (pointer, length).
///
/// # Safety
///
/// `iov` must point to `count` iovecs (or be null with `count` 0).
unsafe fn iovecs<'a>(iov: *const iovec, count: c_int) -> Res<&'a [iovec]> {
    let count = usize::try_from(count).map_err(|_| Errno(libc::EINVAL))?;
    if count > 1024 {
        return Err(Errno(libc::EINVAL));
    }
    if count == 0 || iov.is_null() {
        return Ok(&[]);
    }
    // SAFETY: as the function's contract says.
    Ok(unsafe { std::slice::from_raw_parts(iov, count) })
}

/// Receive into an iovec list: one receive of their total size, spread over them.
///
/// # Safety
///
/// Every iovec must describe writable memory.
unsafe fn recv_iov(s: &Shim, fd: c_int, iov: &[iovec], flags: c_int) -> Res<usize> {
    let total = iov.iter().map(|v| v.iov_len).sum::<usize>();
    let mut buf = vec![0u8; total.min(1 << 24)];
    let n = s.recv(fd, &mut buf, flags)?;
    let mut at = 0;
    for v in iov {
        let take = v.iov_len.min(n - at);
        // SAFETY: the iovec describes `iov_len` writable bytes (caller), `take` fits.
        unsafe { slice_mut(v.iov_base, take) }.copy_from_slice(&buf[at..at + take]);
        at += take;
    }
    Ok(n)
}

/// Send an iovec list as one send.
///
/// # Safety
///
/// Every iovec must describe readable memory.
unsafe fn send_iov(s: &Shim, fd: c_int, iov: &[iovec], flags: c_int) -> Res<usize> {
    let mut data = Vec::new();
    for v in iov {
        // SAFETY: the iovec describes `iov_len` readable bytes (caller).
        data.extend_from_slice(unsafe { slice(v.iov_base, v.iov_len) });
    }
    s.send(fd, &data, flags)
}

unsafe extern "C" fn read(ud: Ud, fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t {
    // SAFETY: read(2)'s contract: `len` writable bytes at `buf`.
    let buf = unsafe { slice_mut(buf, len) };
    len_ret(with(ud, |s| s.recv(fd, buf, 0)))
}

unsafe extern "C" fn readv(ud: Ud, fd: c_int, iov: *const iovec, count: c_int) -> ssize_t {
    // SAFETY: readv(2)'s contract: `count` iovecs of writable memory.
    len_ret(with(ud, |s| unsafe {
        recv_iov(s, fd, iovecs(iov, count)?, 0)
    }))
}

unsafe extern "C" fn recv(
    ud: Ud,
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
) -> ssize_t {
    // SAFETY: recv(2)'s contract: `len` writable bytes at `buf`.
    let buf = unsafe { slice_mut(buf, len) };
    len_ret(with(ud, |s| s.recv(fd, buf, flags)))
}

unsafe extern "C" fn recvfrom(
    ud: Ud,
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    _from: *mut sockaddr,
    from_len: *mut socklen_t,
) -> ssize_t {
    len_ret(with(ud, |s| {
        // SAFETY: recvfrom(2)'s contract: `len` writable bytes at `buf`.
        let n = s.recv(fd, unsafe { slice_mut(buf, len) }, flags)?;
        if !from_len.is_null() {
            // A connected TCP socket names no sender, as on Linux.
            // SAFETY: `from_len` is valid when non-null (caller).
            unsafe { *from_len = 0 };
        }
        Ok(n)
    }))
}

unsafe extern "C" fn recvmsg(ud: Ud, fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    len_ret(with(ud, |s| {
        if msg.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        // SAFETY: recvmsg(2)'s contract: `msg` is a valid msghdr with valid iovecs.
        let msg = unsafe { &mut *msg };
        // SAFETY: as above.
        let n = unsafe { recv_iov(s, fd, iovecs(msg.msg_iov, msg.msg_iovlen as c_int)?, flags) }?;
        msg.msg_namelen = 0;
        msg.msg_controllen = 0;
        msg.msg_flags = 0;
        Ok(n)
    }))
}

unsafe extern "C" fn write(ud: Ud, fd: c_int, buf: *const c_void, len: size_t) -> ssize_t {
    // SAFETY: write(2)'s contract: `len` readable bytes at `buf`.
    let buf = unsafe { slice(buf, len) };
    len_ret(with(ud, |s| s.send(fd, buf, 0)))
}

unsafe extern "C" fn writev(ud: Ud, fd: c_int, iov: *const iovec, count: c_int) -> ssize_t {
    // SAFETY: writev(2)'s contract: `count` iovecs of readable memory.
    len_ret(with(ud, |s| unsafe {
        send_iov(s, fd, iovecs(iov, count)?, 0)
    }))
}

unsafe extern "C" fn send(
    ud: Ud,
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
) -> ssize_t {
    // SAFETY: send(2)'s contract: `len` readable bytes at `buf`.
    let buf = unsafe { slice(buf, len) };
    len_ret(with(ud, |s| s.send(fd, buf, flags)))
}

unsafe extern "C" fn sendto(
    ud: Ud,
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    to: *const sockaddr,
    _to_len: socklen_t,
) -> ssize_t {
    // A destination is ignored, as Linux's TCP does (MSG_FASTOPEN, which would use it, is
    // refused with the other unknown flags).
    let _ = to;
    // SAFETY: sendto(2)'s contract: `len` readable bytes at `buf`.
    let buf = unsafe { slice(buf, len) };
    len_ret(with(ud, |s| s.send(fd, buf, flags)))
}

unsafe extern "C" fn sendmsg(ud: Ud, fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    len_ret(with(ud, |s| {
        if msg.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        // SAFETY: sendmsg(2)'s contract: `msg` is a valid msghdr with valid iovecs.
        let msg = unsafe { &*msg };
        if msg.msg_controllen != 0 || !msg.msg_name.is_null() {
            return Err(Errno(libc::EOPNOTSUPP));
        }
        // SAFETY: as above.
        unsafe { send_iov(s, fd, iovecs(msg.msg_iov, msg.msg_iovlen as c_int)?, flags) }
    }))
}

/// fcntl with its third argument made explicit by the C trampoline (0 when there is none).
unsafe extern "C" fn fcntl_fixed(ud: Ud, fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    ret(with(ud, |s| s.fcntl(fd, cmd, arg)))
}

/// ioctl with its third argument made explicit by the C trampoline (null when there is none).
unsafe extern "C" fn ioctl_fixed(ud: Ud, fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    ret(with(ud, |s| {
        // SAFETY: for the requests the trampoline passes an argument for, it is an int pointer
        // (ioctl(2)'s contract for FIONBIO, FIONREAD, TIOCOUTQ); null otherwise.
        let arg = unsafe { arg.cast::<c_int>().as_mut() };
        s.ioctl(fd, request, arg).map(|()| 0)
    }))
}

unsafe extern "C" fn close(ud: Ud, fd: c_int) -> c_int {
    ret(with(ud, |s| s.close(fd).map(|()| 0)))
}

unsafe extern "C" fn shutdown(ud: Ud, fd: c_int, how: c_int) -> c_int {
    ret(with(ud, |s| s.shutdown(fd, how).map(|()| 0)))
}

unsafe extern "C" fn getsockopt(
    ud: Ud,
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    ret(with(ud, |s| {
        let bytes = s.getsockopt(fd, level, name)?;
        if value.is_null() || len.is_null() {
            return Err(Errno(libc::EFAULT));
        }
        // SAFETY: getsockopt(2)'s contract: `*len` writable bytes at `value`.
        let room = unsafe { *len } as usize;
        let n = bytes.len().min(room);
        // SAFETY: as above; `n` fits both buffers.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), value.cast::<u8>(), n);
            *len = n as socklen_t;
        }
        Ok(0)
    }))
}

unsafe extern "C" fn setsockopt(
    ud: Ud,
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    ret(with(ud, |s| {
        // SAFETY: setsockopt(2)'s contract: `len` readable bytes at `value`.
        let value = unsafe { slice(value, len as size_t) };
        s.setsockopt(fd, level, name, value).map(|()| 0)
    }))
}

unsafe extern "C" fn poll(
    ud: Ud,
    fds: *mut libc::pollfd,
    n: libc::nfds_t,
    timeout: c_int,
) -> c_int {
    ret(with(ud, |s| {
        let n = usize::try_from(n).map_err(|_| Errno(libc::EINVAL))?;
        let fds: &mut [libc::pollfd] = if n == 0 || fds.is_null() {
            &mut []
        } else {
            // SAFETY: poll(2)'s contract: `n` pollfd entries at `fds`.
            unsafe { std::slice::from_raw_parts_mut(fds, n) }
        };
        s.poll(fds, timeout)
    }))
}

unsafe extern "C" fn netdev_send(ud: Ud, buf: *const c_void, len: size_t) -> c_int {
    // SAFETY: packetdrill passes `len` bytes of one IP packet at `buf`.
    let packet = unsafe { slice(buf, len) };
    ret(with(ud, |s| s.inject(packet).map(|()| 0)))
}

unsafe extern "C" fn netdev_receive(
    ud: Ud,
    buf: *mut c_void,
    len: *mut size_t,
    time: *mut i64,
) -> c_int {
    if len.is_null() || time.is_null() {
        set_errno(libc::EFAULT);
        return -1;
    }
    let got = with(ud, |s| {
        let Some((packet, at)) = s.next_outbound() else {
            eprintln!(
                "lingerstack-packetdrill: the stack sent nothing and has no timer left: \
                 giving up on the packet the script expects"
            );
            return Ok(None);
        };
        Ok(Some((packet, s.clock.wall(at))))
    });
    // SAFETY: packetdrill passes its buffer's size in `*len` and valid `len` and `time`.
    unsafe {
        match got {
            Ok(Some((packet, at))) => {
                let n = packet.len().min(*len);
                slice_mut(buf, n).copy_from_slice(&packet[..n]);
                *len = n;
                *time = at;
            }
            // Count 0 fails the script (packetdrill calls again at once on an error return).
            _ => *len = 0,
        }
    }
    0
}

unsafe extern "C" fn usleep(ud: Ud, usecs: c_uint) -> c_int {
    ret(with(ud, |s| {
        s.sleep_virtual(usecs);
        Ok(0)
    }))
}

unsafe extern "C" fn gettimeofday(ud: Ud, tv: *mut libc::timeval, _tz: *mut c_void) -> c_int {
    ret(with(ud, |s| {
        let t = s.clock.wall(s.time_for_this_thread());
        if !tv.is_null() {
            // SAFETY: gettimeofday(2)'s contract: `tv` is writable when non-null.
            unsafe {
                (*tv).tv_sec = t.div_euclid(1_000_000);
                (*tv).tv_usec = t.rem_euclid(1_000_000);
            }
        }
        Ok(0)
    }))
}

/// epoll, pipe and splice: not offered (lingerstack has no epoll face here).
unsafe extern "C" fn epoll_create(_ud: Ud, _size: c_int) -> c_int {
    ret::<c_int>(Err(Errno(libc::ENOSYS)))
}

unsafe extern "C" fn epoll_ctl(
    _ud: Ud,
    _ep: c_int,
    _op: c_int,
    _fd: c_int,
    _ev: *mut c_void,
) -> c_int {
    ret::<c_int>(Err(Errno(libc::ENOSYS)))
}

unsafe extern "C" fn epoll_wait(
    _ud: Ud,
    _ep: c_int,
    _ev: *mut c_void,
    _max: c_int,
    _t: c_int,
) -> c_int {
    ret::<c_int>(Err(Errno(libc::ENOSYS)))
}

unsafe extern "C" fn pipe(_ud: Ud, _fds: *mut c_int) -> c_int {
    ret::<c_int>(Err(Errno(libc::ENOSYS)))
}

unsafe extern "C" fn splice(
    _ud: Ud,
    _in: c_int,
    _off_in: *mut i64,
    _out: c_int,
    _off_out: *mut i64,
    _len: size_t,
    _flags: c_uint,
) -> c_int {
    ret::<c_int>(Err(Errno(libc::ENOSYS)))
}
