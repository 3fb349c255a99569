//! The 30 functions of WSPPROC_TABLE. Each one: catch panics, check and copy its arguments (in
//! `raw`), call the [`Provider`](wsp::Provider) of the current run, write results back, and on
//! failure store the Winsock error in `*lpErrno` and return SOCKET_ERROR / INVALID_SOCKET /
//! FALSE.

#![allow(non_snake_case)]

use std::ffi::c_void;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use wsp::ProtocolInfo;
use wsp::consts::*;
use wsp::error::{WsaError, WsaResult};
use wsp::overlapped::Overlapped;

use crate::raw::{self, CallerBuffers, OvPtr};
use crate::startup::{self, Run};
use crate::types::*;
use crate::upcalls::{ClientEvent, ClientWindow, Notify};

/// Run `f`; on an error or a panic store the code in `*errno` and return `fail`.
fn guard<R>(errno: raw::Errno, fail: R, f: impl FnOnce() -> WsaResult<R>) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            errno.set(e.0);
            fail
        }
        Err(_) => {
            log::error!("a provider call panicked; reporting WSAENETDOWN");
            errno.set(WSAENETDOWN);
            fail
        }
    }
}

/// `guard` for the int-returning calls: 0 or SOCKET_ERROR.
fn int_call(errno: raw::Errno, f: impl FnOnce() -> WsaResult<()>) -> i32 {
    guard(errno, SOCKET_ERROR, || f().map(|()| 0))
}

fn run() -> WsaResult<Arc<Run>> {
    startup::current()
}

/// The proc table WSPStartup hands out, in Windows order.
pub(crate) fn table() -> WSPPROC_TABLE {
    WSPPROC_TABLE {
        lpWSPAccept: Some(WSPAccept),
        lpWSPAddressToString: Some(WSPAddressToString),
        lpWSPAsyncSelect: Some(WSPAsyncSelect),
        lpWSPBind: Some(WSPBind),
        lpWSPCancelBlockingCall: Some(WSPCancelBlockingCall),
        lpWSPCleanup: Some(WSPCleanup),
        lpWSPCloseSocket: Some(WSPCloseSocket),
        lpWSPConnect: Some(WSPConnect),
        lpWSPDuplicateSocket: Some(WSPDuplicateSocket),
        lpWSPEnumNetworkEvents: Some(WSPEnumNetworkEvents),
        lpWSPEventSelect: Some(WSPEventSelect),
        lpWSPGetOverlappedResult: Some(WSPGetOverlappedResult),
        lpWSPGetPeerName: Some(WSPGetPeerName),
        lpWSPGetSockName: Some(WSPGetSockName),
        lpWSPGetSockOpt: Some(WSPGetSockOpt),
        lpWSPGetQOSByName: Some(WSPGetQOSByName),
        lpWSPIoctl: Some(WSPIoctl),
        lpWSPJoinLeaf: Some(WSPJoinLeaf),
        lpWSPListen: Some(WSPListen),
        lpWSPRecv: Some(WSPRecv),
        lpWSPRecvDisconnect: Some(WSPRecvDisconnect),
        lpWSPRecvFrom: Some(WSPRecvFrom),
        lpWSPSelect: Some(WSPSelect),
        lpWSPSend: Some(WSPSend),
        lpWSPSendDisconnect: Some(WSPSendDisconnect),
        lpWSPSendTo: Some(WSPSendTo),
        lpWSPSetSockOpt: Some(WSPSetSockOpt),
        lpWSPShutdown: Some(WSPShutdown),
        lpWSPSocket: Some(WSPSocket),
        lpWSPStringToAddress: Some(WSPStringToAddress),
    }
}

unsafe extern "system" fn WSPAccept(
    s: SOCKET,
    addr: *mut SOCKADDR,
    addrlen: *mut i32,
    lpfnCondition: ConditionProc,
    dwCallbackData: DWORD_PTR,
    lpErrno: *mut i32,
) -> SOCKET {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    guard(errno, INVALID_SOCKET, || {
        let run = run()?;
        if !addr.is_null() {
            // Checked before the call: a connection must not be accepted and then lost.
            // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
            if unsafe { raw::read(addrlen) }? < size_of::<SOCKADDR_IN>() as i32 {
                return Err(WsaError::FAULT);
            }
        }
        let local = run.provider.get_sock_name(s).ok();
        let (t, peer) = match lpfnCondition {
            Some(f) => {
                let mut cond =
                    |peer: SocketAddr| raw::call_condition(f, peer, local, dwCallbackData);
                run.provider.accept(s, Some(&mut cond))?
            }
            None => run.provider.accept(s, None)?,
        };
        if !addr.is_null()
            // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
            && let Err(e) = unsafe { raw::write_sockaddr(addr, addrlen, peer) }
        {
            let _ = run.provider.close_socket(t);
            return Err(e);
        }
        Ok(t)
    })
}

unsafe extern "system" fn WSPAddressToString(
    lpsaAddress: *mut SOCKADDR,
    dwAddressLength: DWORD,
    _lpProtocolInfo: *mut WSAPROTOCOL_INFOW,
    lpszAddressString: *mut WCHAR,
    lpdwAddressStringLength: *mut DWORD,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        run()?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        let addr = unsafe {
            raw::read_sockaddr(lpsaAddress, dwAddressLength.min(i32::MAX as u32) as i32)
        }?;
        let text = match addr {
            SocketAddr::V4(a) if a.port() == 0 => a.ip().to_string(),
            SocketAddr::V6(a) if a.port() == 0 => a.ip().to_string(),
            a => a.to_string(),
        };
        let mut units: Vec<u16> = text.encode_utf16().collect();
        units.push(0);
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        let have = unsafe { raw::read(lpdwAddressStringLength as *const DWORD) }?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe { raw::write(lpdwAddressStringLength, units.len() as u32) }?;
        if (have as usize) < units.len() {
            return Err(WsaError::FAULT);
        }
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        let out = unsafe { raw::bytes_mut(lpszAddressString.cast(), units.len() * 2) }?;
        for (chunk, u) in out.chunks_exact_mut(2).zip(&units) {
            chunk.copy_from_slice(&u.to_ne_bytes());
        }
        Ok(())
    })
}

unsafe extern "system" fn WSPAsyncSelect(
    s: SOCKET,
    hWnd: HANDLE,
    wMsg: u32,
    lEvent: i32,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        let run = run()?;
        if lEvent == 0 {
            return run.provider.async_select(s, None, 0);
        }
        let window = ClientWindow::new(&run.up, raw::handle_value(hWnd), wMsg)?;
        run.provider.async_select(s, Some(Arc::new(window)), lEvent)
    })
}

unsafe extern "system" fn WSPBind(
    s: SOCKET,
    name: *const SOCKADDR,
    namelen: i32,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        let run = run()?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        let addr = unsafe { raw::read_sockaddr(name, namelen) }?;
        run.provider.bind(s, addr)
    })
}

/// A Winsock 1.1 relic: there is never a blocking call to cancel (WSAEINVAL, as its page says).
unsafe extern "system" fn WSPCancelBlockingCall(lpErrno: *mut i32) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        run()?;
        Err(WsaError::INVAL)
    })
}

unsafe extern "system" fn WSPCleanup(lpErrno: *mut i32) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, startup::cleanup)
}

unsafe extern "system" fn WSPCloseSocket(s: SOCKET, lpErrno: *mut i32) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || run()?.provider.close_socket(s))
}

unsafe extern "system" fn WSPConnect(
    s: SOCKET,
    name: *const SOCKADDR,
    namelen: i32,
    lpCallerData: *mut WSABUF,
    _lpCalleeData: *mut WSABUF,
    lpSQOS: *mut QOS,
    _lpGQOS: *mut QOS,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        let run = run()?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        let addr = unsafe { raw::read_sockaddr(name, namelen) }?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        if !lpCallerData.is_null() && unsafe { raw::read(lpCallerData as *const WSABUF) }?.len > 0 {
            // TCP carries no connect data.
            return Err(WsaError::OPNOTSUPP);
        }
        if !lpSQOS.is_null() {
            return Err(WsaError::OPNOTSUPP);
        }
        run.provider.connect(s, addr)
    })
}

unsafe extern "system" fn WSPDuplicateSocket(
    s: SOCKET,
    _dwProcessId: DWORD,
    lpProtocolInfo: *mut WSAPROTOCOL_INFOW,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        let run = run()?;
        if lpProtocolInfo.is_null() {
            return Err(WsaError::FAULT);
        }
        let dup = run.provider.duplicate_socket(s)?;
        let key = u32::try_from(dup.provider_reserved).map_err(|_| WsaError(WSAENOBUFS))?;
        let mut info = run.protocol;
        info.iAddressFamily = dup.family;
        info.dwProviderReserved = key;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe { raw::write(lpProtocolInfo, info) }
    })
}

unsafe extern "system" fn WSPEnumNetworkEvents(
    s: SOCKET,
    hEventObject: HANDLE,
    lpNetworkEvents: *mut WSANETWORKEVENTS,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        let run = run()?;
        if lpNetworkEvents.is_null() {
            return Err(WsaError::FAULT);
        }
        let event = match raw::handle_value(hEventObject) {
            0 => None,
            h => Some(ClientEvent::new(&run.up, h)?),
        };
        let record = run
            .provider
            .enum_network_events(s, event.as_ref().map(|e| e as &dyn wsp::EventObject))?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe {
            raw::write(
                lpNetworkEvents,
                WSANETWORKEVENTS {
                    lNetworkEvents: record.events,
                    iErrorCode: record.errors,
                },
            )
        }
    })
}

unsafe extern "system" fn WSPEventSelect(
    s: SOCKET,
    hEventObject: HANDLE,
    lNetworkEvents: i32,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        let run = run()?;
        let event = match raw::handle_value(hEventObject) {
            0 => None,
            h => Some(Arc::new(ClientEvent::new(&run.up, h)?) as Arc<dyn wsp::EventObject>),
        };
        run.provider.event_select(s, event, lNetworkEvents)
    })
}

unsafe extern "system" fn WSPGetOverlappedResult(
    s: SOCKET,
    lpOverlapped: *mut WSAOVERLAPPED,
    lpcbTransfer: *mut DWORD,
    fWait: BOOL,
    lpdwFlags: *mut DWORD,
    lpErrno: *mut i32,
) -> BOOL {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    guard(errno, 0, || {
        let run = run()?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        let ov = unsafe { raw::overlapped(lpOverlapped) }?.ok_or(WsaError::FAULT)?;
        if lpcbTransfer.is_null() || lpdwFlags.is_null() {
            return Err(WsaError::FAULT);
        }
        run.provider.check_descriptor(s)?;
        let (status, bytes) = match run.pending.get(ov) {
            Some(op) => match run.provider.get_overlapped_result(s, &op, fWait != 0) {
                Ok(bytes) => (0, bytes),
                Err(WsaError::IO_INCOMPLETE) => (WSA_IO_INCOMPLETE, 0),
                Err(e) => (e.0, op.status().1),
            },
            None => match ov.status() {
                (WSA_IO_PENDING, _) if fWait != 0 => {
                    // Completing right now: its status is being written.
                    loop {
                        std::thread::sleep(Duration::from_millis(1));
                        let st = ov.status();
                        if st.0 != WSA_IO_PENDING {
                            break st;
                        }
                    }
                }
                (WSA_IO_PENDING, _) => (WSA_IO_INCOMPLETE, 0),
                st => st,
            },
        };
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe { raw::write(lpdwFlags, 0) }?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe { raw::write(lpcbTransfer, bytes.min(u32::MAX as usize) as u32) }?;
        if status == 0 {
            Ok(1)
        } else {
            Err(WsaError(status))
        }
    })
}

unsafe extern "system" fn WSPGetPeerName(
    s: SOCKET,
    name: *mut SOCKADDR,
    namelen: *mut i32,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        let addr = run()?.provider.get_peer_name(s)?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe { raw::write_sockaddr(name, namelen, addr) }
    })
}

unsafe extern "system" fn WSPGetSockName(
    s: SOCKET,
    name: *mut SOCKADDR,
    namelen: *mut i32,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        let addr = run()?.provider.get_sock_name(s)?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe { raw::write_sockaddr(name, namelen, addr) }
    })
}

unsafe extern "system" fn WSPGetSockOpt(
    s: SOCKET,
    level: i32,
    optname: i32,
    optval: *mut u8,
    optlen: *mut i32,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        let run = run()?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        let len = unsafe { raw::read(optlen as *const i32) }?;
        if len < 0 || optval.is_null() {
            return Err(WsaError::FAULT);
        }
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        let buf = unsafe { raw::bytes_mut(optval, len as usize) }?;
        let n = run.provider.get_sock_opt(s, level, optname, buf)?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe { raw::write(optlen, n as i32) }
    })
}

/// No QOS here.
unsafe extern "system" fn WSPGetQOSByName(
    _s: SOCKET,
    _lpQOSName: *mut WSABUF,
    _lpQOS: *mut QOS,
    lpErrno: *mut i32,
) -> BOOL {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    guard(errno, 0, || {
        run()?;
        Err(WsaError::OPNOTSUPP)
    })
}

unsafe extern "system" fn WSPIoctl(
    s: SOCKET,
    dwIoControlCode: DWORD,
    lpvInBuffer: *mut c_void,
    cbInBuffer: DWORD,
    lpvOutBuffer: *mut c_void,
    cbOutBuffer: DWORD,
    lpcbBytesReturned: *mut DWORD,
    lpOverlapped: *mut WSAOVERLAPPED,
    lpCompletionRoutine: CompletionRoutine,
    _lpThreadId: *mut WSATHREADID,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        let run = run()?;
        if !lpOverlapped.is_null() || lpCompletionRoutine.is_some() {
            // Every ioctl here answers at once; overlapped ioctls are not offered.
            return Err(WsaError::OPNOTSUPP);
        }
        match dwIoControlCode {
            FIONBIO => {
                if cbInBuffer < 4 {
                    return Err(WsaError::FAULT);
                }
                let mut arg = u32::from_ne_bytes(
                    // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
                    unsafe { raw::bytes(lpvInBuffer as *const u8, 4) }?
                        .try_into()
                        .expect("4 bytes"),
                );
                run.provider.ioctl(s, FIONBIO, &mut arg)?;
                // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
                unsafe { raw::write_opt(lpcbBytesReturned, 0) };
                Ok(())
            }
            FIONREAD => {
                if cbOutBuffer < 4 {
                    return Err(WsaError::FAULT);
                }
                // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
                let out = unsafe { raw::bytes_mut(lpvOutBuffer.cast(), 4) }?;
                let mut arg = 0u32;
                run.provider.ioctl(s, FIONREAD, &mut arg)?;
                out.copy_from_slice(&arg.to_ne_bytes());
                // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
                unsafe { raw::write_opt(lpcbBytesReturned, 4) };
                Ok(())
            }
            SIO_KEEPALIVE_VALS => {
                // A NULL or short `struct tcp_keepalive` is WSAEFAULT (after WSAENOTSOCK).
                let len = wsp::keepalive::TcpKeepalive::SIZE;
                let input = if lpvInBuffer.is_null() || (cbInBuffer as usize) < len {
                    None
                } else {
                    // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
                    Some(unsafe { raw::bytes(lpvInBuffer as *const u8, len) }?)
                };
                run.provider.set_keepalive_vals(s, input)?;
                // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
                unsafe { raw::write_opt(lpcbBytesReturned, 0) };
                Ok(())
            }
            code => {
                run.provider.check_descriptor(s)?;
                let mut arg = 0u32;
                run.provider.ioctl(s, code, &mut arg)
            }
        }
    })
}

/// Multipoint sessions do not exist for TCP.
unsafe extern "system" fn WSPJoinLeaf(
    _s: SOCKET,
    _name: *const SOCKADDR,
    _namelen: i32,
    _lpCallerData: *mut WSABUF,
    _lpCalleeData: *mut WSABUF,
    _lpSQOS: *mut QOS,
    _lpGQOS: *mut QOS,
    _dwFlags: DWORD,
    lpErrno: *mut i32,
) -> SOCKET {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    guard(errno, INVALID_SOCKET, || {
        run()?;
        Err(WsaError::OPNOTSUPP)
    })
}

unsafe extern "system" fn WSPListen(s: SOCKET, backlog: i32, lpErrno: *mut i32) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || run()?.provider.listen(s, backlog))
}

/// How an overlapped call on `ov` completes: routine (queued with WPUQueueApc on the thread
/// `thread` names), else the `hEvent`, else the completion hook.
///
/// # Safety
///
/// `thread` is NULL or points to the caller's readable WSATHREADID.
unsafe fn notify_of(
    run: &Run,
    ov: OvPtr,
    routine: CompletionRoutine,
    thread: *mut WSATHREADID,
) -> WsaResult<Notify> {
    if let Some(routine) = routine {
        let queue = run.up.table.lpWPUQueueApc.ok_or(WsaError::INVAL)?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        let thread = unsafe { raw::read(thread as *const WSATHREADID) }?;
        return Ok(Notify::Routine(queue, routine, raw::ThreadId(thread)));
    }
    match raw::handle_value(ov.event()) {
        0 => Ok(Notify::Hook),
        h => {
            let event = ClientEvent::new(&run.up, h)?;
            // As Windows does when an I/O starts: the event is reset.
            wsp::EventObject::reset(&event);
            Ok(Notify::Event(event))
        }
    }
}

/// Start an overlapped operation with `submit`; returns SOCKET_ERROR/WSA_IO_PENDING as Windows.
///
/// # Safety
///
/// `thread` is NULL or points to the caller's readable WSATHREADID.
unsafe fn overlapped_call(
    run: &Run,
    s: SOCKET,
    ov: OvPtr,
    routine: CompletionRoutine,
    thread: *mut WSATHREADID,
    submit: impl FnOnce(&Overlapped) -> WsaResult<()>,
) -> WsaResult<()> {
    // The descriptor is checked first, so a bad one leaves the caller's structure untouched.
    run.provider.check_descriptor(s)?;
    // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
    let notify = unsafe { notify_of(run, ov, routine, thread) }?;
    let (op, serial) = run.pending.start(s, ov, notify);
    match submit(&op) {
        Err(WsaError::IO_PENDING) => Err(WsaError::IO_PENDING),
        Ok(()) => Ok(()),
        Err(e) => {
            run.pending.cancel(ov, serial);
            ov.set_status(e.0, 0);
            Err(e)
        }
    }
}

/// # Safety
///
/// every pointer is NULL or valid as WSPRecv documents it, for the call (for an
/// overlapped receive: the buffers and the WSAOVERLAPPED until it completes).
#[allow(clippy::too_many_arguments)]
unsafe fn recv_common(
    s: SOCKET,
    lpBuffers: *mut WSABUF,
    dwBufferCount: DWORD,
    lpNumberOfBytesRecvd: *mut DWORD,
    lpFlags: *mut DWORD,
    lpOverlapped: *mut WSAOVERLAPPED,
    lpCompletionRoutine: CompletionRoutine,
    lpThreadId: *mut WSATHREADID,
) -> WsaResult<()> {
    let run = run()?;
    // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
    let bufs = unsafe { raw::wsabufs(lpBuffers, dwBufferCount) }?;
    // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
    let flags = unsafe { raw::read(lpFlags as *const DWORD) }?;
    if flags != 0 {
        // MSG_PEEK, MSG_OOB, MSG_WAITALL, MSG_PARTIAL are not offered.
        return Err(WsaError::OPNOTSUPP);
    }
    let total: usize = bufs.iter().map(|b| b.len as usize).sum();
    // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
    match unsafe { raw::overlapped(lpOverlapped) }? {
        None => {
            if lpNumberOfBytesRecvd.is_null() {
                return Err(WsaError::FAULT);
            }
            let mut tmp = vec![0u8; total];
            let n = run.provider.recv(s, &mut tmp)?;
            // SAFETY: the buffers came from `raw::wsabufs` on this call's WSABUFs, valid for it.
            let stored = unsafe { raw::scatter(&bufs, &tmp[..n]) };
            // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
            unsafe { raw::write(lpFlags, 0) }?;
            // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
            unsafe { raw::write(lpNumberOfBytesRecvd, stored as u32) }
        }
        Some(ov) => {
            // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
            unsafe { raw::write(lpFlags, 0) }?;
            // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
            unsafe {
                overlapped_call(&run, s, ov, lpCompletionRoutine, lpThreadId, |op| {
                    let op = op.clone().with_sink(Box::new(CallerBuffers(bufs)));
                    run.provider.recv_overlapped(s, total, &op)
                })
            }
        }
    }
}

unsafe extern "system" fn WSPRecv(
    s: SOCKET,
    lpBuffers: *mut WSABUF,
    dwBufferCount: DWORD,
    lpNumberOfBytesRecvd: *mut DWORD,
    lpFlags: *mut DWORD,
    lpOverlapped: *mut WSAOVERLAPPED,
    lpCompletionRoutine: CompletionRoutine,
    lpThreadId: *mut WSATHREADID,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe {
            recv_common(
                s,
                lpBuffers,
                dwBufferCount,
                lpNumberOfBytesRecvd,
                lpFlags,
                lpOverlapped,
                lpCompletionRoutine,
                lpThreadId,
            )
        }
    })
}

/// TCP carries no disconnect data.
unsafe extern "system" fn WSPRecvDisconnect(
    _s: SOCKET,
    _lpInboundDisconnectData: *mut WSABUF,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        run()?;
        Err(WsaError::OPNOTSUPP)
    })
}

/// WSPRecv on a stream; `lpFrom`, when given, receives the peer's address.
unsafe extern "system" fn WSPRecvFrom(
    s: SOCKET,
    lpBuffers: *mut WSABUF,
    dwBufferCount: DWORD,
    lpNumberOfBytesRecvd: *mut DWORD,
    lpFlags: *mut DWORD,
    lpFrom: *mut SOCKADDR,
    lpFromlen: *mut i32,
    lpOverlapped: *mut WSAOVERLAPPED,
    lpCompletionRoutine: CompletionRoutine,
    lpThreadId: *mut WSATHREADID,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        if !lpFrom.is_null() {
            let peer = run()?.provider.get_peer_name(s)?;
            // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
            unsafe { raw::write_sockaddr(lpFrom, lpFromlen, peer) }?;
        }
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe {
            recv_common(
                s,
                lpBuffers,
                dwBufferCount,
                lpNumberOfBytesRecvd,
                lpFlags,
                lpOverlapped,
                lpCompletionRoutine,
                lpThreadId,
            )
        }
    })
}

/// # Safety
///
/// `p` is NULL or points to a readable FD_SET.
unsafe fn read_set(p: *mut FD_SET) -> WsaResult<Vec<usize>> {
    if p.is_null() {
        return Ok(Vec::new());
    }
    // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
    let set = unsafe { raw::read(p as *const FD_SET) }?;
    if set.fd_count as usize > FD_SETSIZE {
        return Err(WsaError::INVAL);
    }
    Ok(set.fd_array[..set.fd_count as usize].to_vec())
}

/// # Safety
///
/// `p` is NULL or points to a writable FD_SET.
unsafe fn write_set(p: *mut FD_SET, list: &[usize]) -> WsaResult<()> {
    if p.is_null() {
        return Ok(());
    }
    let mut set = FD_SET {
        fd_count: list.len() as u32,
        fd_array: [0; FD_SETSIZE],
    };
    set.fd_array[..list.len()].copy_from_slice(list);
    // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
    unsafe { raw::write(p, set) }
}

unsafe extern "system" fn WSPSelect(
    _nfds: i32,
    readfds: *mut FD_SET,
    writefds: *mut FD_SET,
    exceptfds: *mut FD_SET,
    timeout: *const TIMEVAL,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    guard(errno, SOCKET_ERROR, || {
        let run = run()?;
        let (mut r, mut w, mut e) = (
            // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
            unsafe { read_set(readfds) }?,
            // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
            unsafe { read_set(writefds) }?,
            // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
            unsafe { read_set(exceptfds) }?,
        );
        if r.is_empty() && w.is_empty() && e.is_empty() {
            return Err(WsaError::INVAL);
        }
        let timeout = if timeout.is_null() {
            None
        } else {
            // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
            let tv = unsafe { raw::read(timeout) }?;
            if tv.tv_sec < 0 || tv.tv_usec < 0 {
                return Err(WsaError::INVAL);
            }
            Some(Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64))
        };
        let n = run.provider.select(&mut r, &mut w, &mut e, timeout)?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe { write_set(readfds, &r) }?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe { write_set(writefds, &w) }?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe { write_set(exceptfds, &e) }?;
        Ok(n as i32)
    })
}

/// # Safety
///
/// every pointer is NULL or valid as WSPSend documents it, for the call (for an
/// overlapped send: the WSAOVERLAPPED until it completes).
#[allow(clippy::too_many_arguments)]
unsafe fn send_common(
    s: SOCKET,
    lpBuffers: *mut WSABUF,
    dwBufferCount: DWORD,
    lpNumberOfBytesSent: *mut DWORD,
    dwFlags: DWORD,
    lpOverlapped: *mut WSAOVERLAPPED,
    lpCompletionRoutine: CompletionRoutine,
    lpThreadId: *mut WSATHREADID,
) -> WsaResult<()> {
    let run = run()?;
    // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
    let bufs = unsafe { raw::wsabufs(lpBuffers, dwBufferCount) }?;
    if dwFlags != 0 {
        // MSG_OOB, MSG_DONTROUTE, MSG_PARTIAL are not offered.
        return Err(WsaError::OPNOTSUPP);
    }
    // SAFETY: the buffers came from `raw::wsabufs` on this call's WSABUFs, valid for it.
    let data = unsafe { raw::gather(&bufs) };
    // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
    match unsafe { raw::overlapped(lpOverlapped) }? {
        None => {
            if lpNumberOfBytesSent.is_null() {
                return Err(WsaError::FAULT);
            }
            let n = run.provider.send(s, &data)?;
            // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
            unsafe { raw::write(lpNumberOfBytesSent, n as u32) }
        }
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        Some(ov) => unsafe {
            overlapped_call(&run, s, ov, lpCompletionRoutine, lpThreadId, |op| {
                run.provider.send_overlapped(s, &data, op)
            })
        },
    }
}

unsafe extern "system" fn WSPSend(
    s: SOCKET,
    lpBuffers: *mut WSABUF,
    dwBufferCount: DWORD,
    lpNumberOfBytesSent: *mut DWORD,
    dwFlags: DWORD,
    lpOverlapped: *mut WSAOVERLAPPED,
    lpCompletionRoutine: CompletionRoutine,
    lpThreadId: *mut WSATHREADID,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe {
            send_common(
                s,
                lpBuffers,
                dwBufferCount,
                lpNumberOfBytesSent,
                dwFlags,
                lpOverlapped,
                lpCompletionRoutine,
                lpThreadId,
            )
        }
    })
}

/// TCP carries no disconnect data.
unsafe extern "system" fn WSPSendDisconnect(
    _s: SOCKET,
    _lpOutboundDisconnectData: *mut WSABUF,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        run()?;
        Err(WsaError::OPNOTSUPP)
    })
}

/// WSPSend on a stream: `lpTo` is ignored, as for any connection-oriented socket.
unsafe extern "system" fn WSPSendTo(
    s: SOCKET,
    lpBuffers: *mut WSABUF,
    dwBufferCount: DWORD,
    lpNumberOfBytesSent: *mut DWORD,
    dwFlags: DWORD,
    _lpTo: *const SOCKADDR,
    _iTolen: i32,
    lpOverlapped: *mut WSAOVERLAPPED,
    lpCompletionRoutine: CompletionRoutine,
    lpThreadId: *mut WSATHREADID,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: the caller's pointers, passed on under the same SPI contract.
    unsafe {
        WSPSend(
            s,
            lpBuffers,
            dwBufferCount,
            lpNumberOfBytesSent,
            dwFlags,
            lpOverlapped,
            lpCompletionRoutine,
            lpThreadId,
            lpErrno,
        )
    }
}

unsafe extern "system" fn WSPSetSockOpt(
    s: SOCKET,
    level: i32,
    optname: i32,
    optval: *const u8,
    optlen: i32,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        let run = run()?;
        if optlen < 0 {
            return Err(WsaError::FAULT);
        }
        let value = if optval.is_null() {
            None
        } else {
            // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
            Some(unsafe { raw::bytes(optval, optlen as usize) }?)
        };
        run.provider.set_sock_opt(s, level, optname, value)
    })
}

unsafe extern "system" fn WSPShutdown(s: SOCKET, how: i32, lpErrno: *mut i32) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || run()?.provider.shutdown(s, how))
}

unsafe extern "system" fn WSPSocket(
    af: i32,
    kind: i32,
    protocol: i32,
    lpProtocolInfo: *mut WSAPROTOCOL_INFOW,
    g: GROUP,
    _dwFlags: DWORD,
    lpErrno: *mut i32,
) -> SOCKET {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    guard(errno, INVALID_SOCKET, || {
        let run = run()?;
        if g != 0 {
            return Err(WsaError::INVAL);
        }
        let info = if lpProtocolInfo.is_null() {
            None
        } else {
            // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
            Some(unsafe { raw::read(lpProtocolInfo as *const WSAPROTOCOL_INFOW) }?)
        };
        let from_info = |v: i32, f: fn(&WSAPROTOCOL_INFOW) -> i32| -> WsaResult<i32> {
            match (v, &info) {
                (FROM_PROTOCOL_INFO, Some(i)) => Ok(f(i)),
                (FROM_PROTOCOL_INFO, None) => Err(WsaError::FAULT),
                (v, _) => Ok(v),
            }
        };
        let af = from_info(af, |i| i.iAddressFamily)?;
        let kind = from_info(kind, |i| i.iSocketType)?;
        let protocol = from_info(protocol, |i| i.iProtocol)?;
        if let Some(i) = info
            && i.dwProviderReserved != 0
        {
            // A protocol info from WSPDuplicateSocket: another descriptor of that socket.
            return run.provider.socket_from_info(&ProtocolInfo {
                family: i.iAddressFamily,
                provider_reserved: u64::from(i.dwProviderReserved),
            });
        }
        run.provider.socket(af, kind, protocol)
    })
}

unsafe extern "system" fn WSPStringToAddress(
    AddressString: *mut WCHAR,
    AddressFamily: i32,
    _lpProtocolInfo: *mut WSAPROTOCOL_INFOW,
    lpAddress: *mut SOCKADDR,
    lpAddressLength: *mut i32,
    lpErrno: *mut i32,
) -> i32 {
    // SAFETY: lpErrno is NULL or the caller's int for this call (SPI contract).
    let errno = unsafe { raw::Errno::new(lpErrno) };
    int_call(errno, || {
        run()?;
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        let text = unsafe { raw::read_wstr(AddressString) }?;
        let addr: SocketAddr = match text.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => SocketAddr::new(text.parse().map_err(|_| WsaError::INVAL)?, 0),
        };
        let family = if addr.is_ipv4() { AF_INET } else { AF_INET6 };
        if AddressFamily != family {
            return Err(WsaError::INVAL);
        }
        // SAFETY: the caller's pointers, NULL or valid for the call (SPI contract).
        unsafe { raw::write_sockaddr(lpAddress, lpAddressLength, addr) }
    })
}
