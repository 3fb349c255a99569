//! Every raw-pointer access and every call through a C function pointer of the C ABI, in one
//! place. The rest of `ffi` hands pointers it received from C to these functions, which check
//! them for NULL (WSAEFAULT) and lengths before touching memory.
//!
//! The contract with the C side, as on Windows: a non-NULL pointer a caller passes points to
//! memory of the documented type and length that stays valid for the call (for an overlapped
//! operation: until it completes), and the function pointers it gives have the documented
//! signatures.

use std::ffi::c_void;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use wsp::consts::*;
use wsp::error::{WsaError, WsaResult};
use wsp::overlapped::RecvSink;

use crate::types::*;

/// A proc's `lpErrno`, taken once at its entry so that reporting an error needs no `unsafe`.
#[derive(Clone, Copy)]
pub(crate) struct Errno(*mut i32);

impl Errno {
    /// Take a proc's `lpErrno`.
    ///
    /// # Safety
    ///
    /// `p` is NULL or points to an `i32` the caller owns, writable until the proc returns, and
    /// the `Errno` is not used after that.
    pub(crate) unsafe fn new(p: *mut i32) -> Errno {
        Errno(p)
    }

    /// Store `code` in `*lpErrno` (nothing when it is NULL).
    pub(crate) fn set(self, code: i32) {
        if !self.0.is_null() {
            // SAFETY: non-NULL, writable while the proc runs (`Errno::new`'s contract).
            unsafe { self.0.write_unaligned(code) };
        }
    }
}

/// Read a `T` the caller passed by pointer; NULL is WSAEFAULT.
///
/// # Safety
///
/// `p` is NULL or points to a `T` that is readable for the call.
pub(crate) unsafe fn read<T: Copy>(p: *const T) -> WsaResult<T> {
    if p.is_null() {
        return Err(WsaError::FAULT);
    }
    // SAFETY: non-NULL, points to a T by the SPI contract; read_unaligned needs no alignment.
    Ok(unsafe { p.read_unaligned() })
}

/// Write a `T` through a caller's pointer; NULL is WSAEFAULT.
///
/// # Safety
///
/// `p` is NULL or points to memory for a `T` that is writable for the call.
pub(crate) unsafe fn write<T>(p: *mut T, value: T) -> WsaResult<()> {
    if p.is_null() {
        return Err(WsaError::FAULT);
    }
    // SAFETY: non-NULL, points to writable T-sized memory by the SPI contract.
    unsafe { p.write_unaligned(value) };
    Ok(())
}

/// Write through `p` when it is not NULL.
///
/// # Safety
///
/// as for [`write`].
pub(crate) unsafe fn write_opt<T>(p: *mut T, value: T) {
    // SAFETY: this function's own contract (see # Safety) is what the callee needs.
    let _ = unsafe { write(p, value) };
}

/// `len` bytes at `p`. NULL with a non-zero length is WSAEFAULT; a zero length is empty.
///
/// # Safety
///
/// `p` is NULL or points to `len` bytes that are readable and not written by anyone else
/// for the lifetime `'a` the caller picks (at most the call).
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: usize) -> WsaResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(WsaError::FAULT);
    }
    // SAFETY: the caller passed `len` readable bytes at `p` (SPI contract), valid for the call.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// `len` writable bytes at `p`; as [`bytes`].
///
/// # Safety
///
/// `p` is NULL or points to `len` bytes that are writable and used by nothing else for the
/// lifetime `'a` the caller picks (at most the call).
pub(crate) unsafe fn bytes_mut<'a>(p: *mut u8, len: usize) -> WsaResult<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(WsaError::FAULT);
    }
    // SAFETY: the caller passed `len` writable bytes at `p` that nothing else uses during the
    // call (SPI contract).
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// The caller's WSABUF array, each buffer checked (NULL with a length: WSAEFAULT).
///
/// # Safety
///
/// `p` is NULL or points to `count` WSABUFs, each of whose `buf` is NULL or points to `len`
/// bytes that stay valid for as long as the returned copies are used.
pub(crate) unsafe fn wsabufs(p: *const WSABUF, count: u32) -> WsaResult<Vec<WSABUF>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err(WsaError::FAULT);
    }
    // SAFETY: `count` WSABUFs at `p` (SPI contract); copied out, never kept by reference.
    let list = unsafe { std::slice::from_raw_parts(p, count as usize) }.to_vec();
    if list.iter().any(|b| b.len > 0 && b.buf.is_null()) {
        return Err(WsaError::FAULT);
    }
    Ok(list)
}

/// The bytes of every buffer, in order (a send).
///
/// # Safety
///
/// `bufs` came from [`wsabufs`] and their buffers are still readable.
pub(crate) unsafe fn gather(bufs: &[WSABUF]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bufs.iter().map(|b| b.len as usize).sum());
    for b in bufs {
        if b.len > 0 {
            // SAFETY: checked non-NULL by `wsabufs`; `len` readable bytes by the SPI contract.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(b.buf, b.len as usize) });
        }
    }
    out
}

/// Spread `data` over the buffers in order; returns the bytes stored.
///
/// # Safety
///
/// `bufs` came from [`wsabufs`] and their buffers are still writable and used by nothing else.
pub(crate) unsafe fn scatter(bufs: &[WSABUF], data: &[u8]) -> usize {
    let mut done = 0;
    for b in bufs {
        if done == data.len() {
            break;
        }
        let n = (b.len as usize).min(data.len() - done);
        if n > 0 {
            // SAFETY: checked non-NULL by `wsabufs`; `len` writable bytes by the SPI contract
            // (for an overlapped receive: until it completes, which is now).
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr().add(done), b.buf, n) };
        }
        done += n;
    }
    done
}

/// The WSABUFs of a pending overlapped receive: the bytes go there when it completes.
pub(crate) struct CallerBuffers(pub(crate) Vec<WSABUF>);

// SAFETY: the buffers belong to the pending operation, which the caller must not touch until it
// completes (SPI contract); they are written once, by whichever thread completes it.
unsafe impl Send for CallerBuffers {}

impl RecvSink for CallerBuffers {
    fn deliver(&mut self, data: &[u8]) -> usize {
        // SAFETY: the buffers came from `wsabufs` for a pending overlapped receive, and stay
        // writable and untouched by the caller until it completes, which this delivery does.
        unsafe { scatter(&self.0, data) }
    }
}

/// A WSATHREADID kept until a completion routine is queued on that thread.
pub(crate) struct ThreadId(pub(crate) WSATHREADID);

// SAFETY: the thread handle is an opaque value of the client's, never dereferenced here, only
// passed back to its WPUQueueApc from the provider's dispatcher thread, as the SPI does.
unsafe impl Send for ThreadId {}

/// The caller's WSAOVERLAPPED, by address (kept across threads while the operation runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct OvPtr(pub(crate) usize);

impl OvPtr {
    fn fields(self) -> (&'static AtomicUsize, &'static AtomicUsize) {
        let p = self.0 as *mut WSAOVERLAPPED;
        // SAFETY: a non-NULL WSAOVERLAPPED stays valid until its operation completes and the
        // caller has seen that (SPI contract); Internal and InternalHigh are aligned usize
        // fields that other threads read concurrently, so they are accessed atomically.
        unsafe {
            (
                AtomicUsize::from_ptr(std::ptr::addr_of_mut!((*p).Internal)),
                AtomicUsize::from_ptr(std::ptr::addr_of_mut!((*p).InternalHigh)),
            )
        }
    }

    /// Write `Internal` (status) and `InternalHigh` (bytes): bytes first, status last.
    pub(crate) fn set_status(self, status: i32, bytes: usize) {
        let (internal, high) = self.fields();
        high.store(bytes, Ordering::Release);
        internal.store(status as u32 as usize, Ordering::Release);
    }

    /// `(Internal, InternalHigh)`.
    pub(crate) fn status(self) -> (i32, usize) {
        let (internal, high) = self.fields();
        let status = internal.load(Ordering::Acquire) as u32 as i32;
        (status, high.load(Ordering::Acquire))
    }

    /// `hEvent`.
    pub(crate) fn event(self) -> HANDLE {
        let p = self.0 as *const WSAOVERLAPPED;
        // SAFETY: valid as in `fields`; hEvent is the caller's and not written by us.
        unsafe { std::ptr::addr_of!((*p).hEvent).read_unaligned() }
    }
}

/// Check and wrap a WSAOVERLAPPED pointer (NULL: not overlapped; misaligned: WSAEFAULT).
///
/// # Safety
///
/// `p` is NULL or points to a WSAOVERLAPPED that stays valid, and whose `Internal`,
/// `InternalHigh` and `hEvent` only the provider writes, until the operation completes and the
/// caller has seen that (the returned [`OvPtr`] accesses it until then).
pub(crate) unsafe fn overlapped(p: *mut WSAOVERLAPPED) -> WsaResult<Option<OvPtr>> {
    if p.is_null() {
        return Ok(None);
    }
    if !(p as usize).is_multiple_of(std::mem::align_of::<usize>()) {
        return Err(WsaError::FAULT);
    }
    Ok(Some(OvPtr(p as usize)))
}

/// A sockaddr the caller passed with its length.
///
/// # Safety
///
/// `p` is NULL or points to `len` readable bytes.
pub(crate) unsafe fn read_sockaddr(p: *const SOCKADDR, len: i32) -> WsaResult<SocketAddr> {
    if p.is_null() || len < size_of::<SOCKADDR_IN>() as i32 {
        return Err(WsaError::FAULT);
    }
    // SAFETY: `len` >= 16 readable bytes at `p` (the caller's length, SPI contract).
    let family = unsafe { p.cast::<u16>().read_unaligned() };
    match i32::from(family) {
        AF_INET => {
            // SAFETY: as above; a SOCKADDR_IN is 16 bytes.
            let a = unsafe { p.cast::<SOCKADDR_IN>().read_unaligned() };
            Ok(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(a.sin_addr),
                u16::from_be(a.sin_port),
            )))
        }
        AF_INET6 => {
            if len < size_of::<SOCKADDR_IN6>() as i32 {
                return Err(WsaError::FAULT);
            }
            // SAFETY: `len` >= 28 readable bytes, the size of SOCKADDR_IN6.
            let a = unsafe { p.cast::<SOCKADDR_IN6>().read_unaligned() };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr),
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            )))
        }
        _ => Err(WsaError::AFNOSUPPORT),
    }
}

/// The Windows sockaddr bytes of `addr`.
pub(crate) fn sockaddr_bytes(addr: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(28);
    match addr {
        SocketAddr::V4(a) => {
            out.extend_from_slice(&(AF_INET as u16).to_ne_bytes());
            out.extend_from_slice(&a.port().to_be_bytes());
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&[0; 8]);
        }
        SocketAddr::V6(a) => {
            out.extend_from_slice(&(AF_INET6 as u16).to_ne_bytes());
            out.extend_from_slice(&a.port().to_be_bytes());
            out.extend_from_slice(&a.flowinfo().to_be_bytes());
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.scope_id().to_ne_bytes());
        }
    }
    out
}

/// Write `addr` to `p` whose size is `*len` (then set to the size used). NULL `p` or `len`, or
/// too small a buffer: WSAEFAULT.
///
/// # Safety
///
/// `len` is NULL or points to a writable `i32`, and `p` is NULL or points to `*len` writable
/// bytes.
pub(crate) unsafe fn write_sockaddr(
    p: *mut SOCKADDR,
    len: *mut i32,
    addr: SocketAddr,
) -> WsaResult<()> {
    // SAFETY: this function's own contract (see # Safety) is what the callee needs.
    let have = unsafe { read(len) }?;
    let bytes = sockaddr_bytes(addr);
    if p.is_null() || have < bytes.len() as i32 {
        return Err(WsaError::FAULT);
    }
    // SAFETY: this function's own contract (see # Safety) is what the callee needs.
    let out = unsafe { bytes_mut(p.cast(), bytes.len()) }?;
    out.copy_from_slice(&bytes);
    // SAFETY: this function's own contract (see # Safety) is what the callee needs.
    unsafe { write(len, bytes.len() as i32) }
}

/// A NUL-terminated UTF-16 string (at most 1024 units).
///
/// # Safety
///
/// `p` is NULL or points to a NUL-terminated UTF-16 string, or to 1024 readable units.
pub(crate) unsafe fn read_wstr(p: *const WCHAR) -> WsaResult<String> {
    if p.is_null() {
        return Err(WsaError::FAULT);
    }
    let mut units = Vec::new();
    for i in 0..1024 {
        // SAFETY: the caller's string is NUL-terminated (SPI contract); we stop at the NUL.
        let u = unsafe { p.add(i).read_unaligned() };
        if u == 0 {
            return String::from_utf16(&units).map_err(|_| WsaError::INVAL);
        }
        units.push(u);
    }
    Err(WsaError::INVAL)
}

/// Enter the network namespace behind `file` on this thread.
pub(crate) fn enter_netns(file: &std::fs::File) -> std::io::Result<()> {
    // SAFETY: `file` is an open descriptor for the call; setns only changes this thread's
    // network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

// Calls through the client's function pointers. Each is a non-NULL pointer of the documented
// signature (the Option is Some), given by the client in its upcall table or call.

/// WPUSetEvent / WPUResetEvent / WPUCloseEvent.
pub(crate) fn call_event(
    f: unsafe extern "system" fn(HANDLE, *mut i32) -> BOOL,
    event: usize,
) -> Result<(), i32> {
    let mut errno = 0;
    // SAFETY: a client upcall of this signature (see above); `errno` outlives the call.
    let ok = unsafe { f(event as HANDLE, &mut errno) };
    if ok != 0 { Ok(()) } else { Err(errno) }
}

/// WPUCreateSocketHandle.
pub(crate) fn call_create_handle(
    f: unsafe extern "system" fn(DWORD, DWORD_PTR, *mut i32) -> SOCKET,
    catalog: u32,
    context: usize,
) -> Result<SOCKET, i32> {
    let mut errno = 0;
    // SAFETY: a client upcall of this signature; `errno` outlives the call.
    let s = unsafe { f(catalog, context, &mut errno) };
    if s == INVALID_SOCKET || s == 0 {
        Err(if errno == 0 { WSAENOBUFS } else { errno })
    } else {
        Ok(s)
    }
}

/// WPUCloseSocketHandle.
pub(crate) fn call_close_handle(f: unsafe extern "system" fn(SOCKET, *mut i32) -> i32, s: SOCKET) {
    let mut errno = 0;
    // SAFETY: a client upcall of this signature; `errno` outlives the call.
    if unsafe { f(s, &mut errno) } != 0 {
        log::warn!("WPUCloseSocketHandle({s:#x}) failed: {errno}");
    }
}

/// WPUPostMessage.
pub(crate) fn call_post(
    f: unsafe extern "system" fn(HANDLE, u32, usize, LPARAM) -> BOOL,
    hwnd: usize,
    msg: u32,
    wparam: usize,
    lparam: LPARAM,
) -> bool {
    // SAFETY: a client upcall of this signature with plain values.
    unsafe { f(hwnd as HANDLE, msg, wparam, lparam) != 0 }
}

/// WPUQueueApc: queue `apc(context)` on the thread `thread` names.
pub(crate) fn call_queue_apc(
    f: unsafe extern "system" fn(*mut WSATHREADID, UserApc, DWORD_PTR, *mut i32) -> i32,
    thread: WSATHREADID,
    apc: unsafe extern "system" fn(DWORD_PTR),
    context: usize,
) -> Result<(), i32> {
    let mut thread = thread;
    let mut errno = 0;
    // SAFETY: a client upcall of this signature; `thread` and `errno` outlive the call.
    let rc = unsafe { f(&mut thread, Some(apc), context, &mut errno) };
    if rc == 0 { Ok(()) } else { Err(errno) }
}

/// A completion routine: `(error, bytes, overlapped, flags)`.
pub(crate) fn call_routine(
    f: unsafe extern "system" fn(DWORD, DWORD, *mut WSAOVERLAPPED, DWORD),
    error: i32,
    bytes: usize,
    ov: OvPtr,
) {
    // SAFETY: the routine the caller gave with the operation, called with its own overlapped.
    unsafe { f(error as u32, bytes as u32, ov.0 as *mut WSAOVERLAPPED, 0) }
}

/// The completion hook.
pub(crate) fn call_hook(
    f: unsafe extern "system" fn(SOCKET, *mut WSAOVERLAPPED, DWORD, DWORD),
    s: SOCKET,
    ov: OvPtr,
    error: i32,
    bytes: usize,
) {
    // SAFETY: the hook the client installed, called with the operation's own overlapped.
    unsafe { f(s, ov.0 as *mut WSAOVERLAPPED, error as u32, bytes as u32) }
}

/// A WSPAccept condition function, asked about the caller at `peer`.
pub(crate) fn call_condition(
    f: unsafe extern "system" fn(
        *mut WSABUF,
        *mut WSABUF,
        *mut QOS,
        *mut QOS,
        *mut WSABUF,
        *mut WSABUF,
        *mut GROUP,
        DWORD_PTR,
    ) -> i32,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    data: usize,
) -> i32 {
    let mut peer_bytes = sockaddr_bytes(peer);
    let mut local_bytes = local.map(sockaddr_bytes).unwrap_or_default();
    let mut caller_id = WSABUF {
        len: peer_bytes.len() as u32,
        buf: peer_bytes.as_mut_ptr(),
    };
    let mut callee_id = WSABUF {
        len: local_bytes.len() as u32,
        buf: if local_bytes.is_empty() {
            std::ptr::null_mut()
        } else {
            local_bytes.as_mut_ptr()
        },
    };
    let mut caller_data = WSABUF {
        len: 0,
        buf: std::ptr::null_mut(),
    };
    let mut callee_data = caller_data;
    let mut group: GROUP = 0;
    // SAFETY: the caller's condition function; every pointer refers to a local that outlives
    // the call.
    unsafe {
        f(
            &mut caller_id,
            &mut caller_data,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut callee_id,
            &mut callee_data,
            &mut group,
            data,
        )
    }
}

/// Move a value to the C side as a context word (WPUQueueApc's dwContext).
pub(crate) fn into_context<T>(value: Box<T>) -> usize {
    Box::into_raw(value) as usize
}

/// Take back a value given out by [`into_context`], exactly once.
///
/// # Safety
///
/// `context` came from [`into_context`] with the same `T` and is taken back only once.
pub(crate) unsafe fn from_context<T>(context: usize) -> Box<T> {
    // SAFETY: `context` came from `into_context::<T>` and the client hands each APC context back
    // once (WPUQueueApc contract), so this Box is reclaimed once.
    unsafe { Box::from_raw(context as *mut T) }
}

/// Fill the caller's WSPPROC_TABLE.
///
/// # Safety
///
/// `p` is NULL or points to a writable WSPPROC_TABLE.
pub(crate) unsafe fn write_table(p: *mut WSPPROC_TABLE, table: WSPPROC_TABLE) -> WsaResult<()> {
    // SAFETY: this function's own contract (see # Safety) is what the callee needs.
    unsafe { write(p, table) }
}

/// A pointer-sized opaque value the client passes (HANDLE, HWND) as a number.
pub(crate) fn handle_value(h: *mut c_void) -> usize {
    h as usize
}
