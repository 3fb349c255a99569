//! The C shapes of ws2spi.h on Linux x86-64 (see `docs/abi.md`, "Types"), field for field,
//! with every size and field offset pinned by a compile-time assertion. The C header
//! `include/lingerstack/ws2spi.h` declares the same shapes and `tests/c/layout.c` checks the same
//! numbers from C.

#![allow(non_camel_case_types, non_snake_case, missing_docs)]
// The function-pointer fields spell out the C typedefs of ws2spi.h one for one.
#![allow(clippy::type_complexity)]

use std::ffi::c_void;
use std::mem::{offset_of, size_of};

/// SOCKET: a descriptor (UINT_PTR).
pub type SOCKET = usize;
/// DWORD, ULONG, u_long, UINT.
pub type DWORD = u32;
/// WORD, u_short.
pub type WORD = u16;
/// BOOL.
pub type BOOL = i32;
/// UTF-16 code unit.
pub type WCHAR = u16;
/// DWORD_PTR, ULONG_PTR, WPARAM.
pub type DWORD_PTR = usize;
/// LPARAM.
pub type LPARAM = isize;
/// HANDLE, WSAEVENT, HWND.
pub type HANDLE = *mut c_void;
/// GROUP.
pub type GROUP = u32;

/// WSABUF.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WSABUF {
    pub len: u32,
    pub buf: *mut u8,
}

/// WSAOVERLAPPED.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WSAOVERLAPPED {
    pub Internal: usize,
    pub InternalHigh: usize,
    pub Offset: u32,
    pub OffsetHigh: u32,
    pub hEvent: HANDLE,
}

/// WSANETWORKEVENTS.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WSANETWORKEVENTS {
    pub lNetworkEvents: i32,
    pub iErrorCode: [i32; 10],
}

/// WSATHREADID.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WSATHREADID {
    pub ThreadHandle: HANDLE,
    pub Reserved: DWORD_PTR,
}

/// struct linger.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LINGER {
    pub l_onoff: u16,
    pub l_linger: u16,
}

/// FD_SETSIZE as Windows defines it.
pub const FD_SETSIZE: usize = 64;

/// Windows fd_set: a count and a list.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FD_SET {
    pub fd_count: u32,
    pub fd_array: [SOCKET; FD_SETSIZE],
}

/// TIMEVAL (Windows: two longs, 32 bits each).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TIMEVAL {
    pub tv_sec: i32,
    pub tv_usec: i32,
}

/// struct sockaddr.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SOCKADDR {
    pub sa_family: u16,
    pub sa_data: [u8; 14],
}

/// struct sockaddr_in (port and address in network order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SOCKADDR_IN {
    pub sin_family: u16,
    pub sin_port: u16,
    pub sin_addr: [u8; 4],
    pub sin_zero: [u8; 8],
}

/// struct sockaddr_in6 (family 23).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SOCKADDR_IN6 {
    pub sin6_family: u16,
    pub sin6_port: u16,
    pub sin6_flowinfo: u32,
    pub sin6_addr: [u8; 16],
    pub sin6_scope_id: u32,
}

/// GUID.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GUID {
    pub Data1: u32,
    pub Data2: u16,
    pub Data3: u16,
    pub Data4: [u8; 8],
}

/// MAX_PROTOCOL_CHAIN.
pub const MAX_PROTOCOL_CHAIN: usize = 7;
/// WSAPROTOCOL_LEN.
pub const WSAPROTOCOL_LEN: usize = 255;
/// WSADESCRIPTION_LEN.
pub const WSADESCRIPTION_LEN: usize = 256;

/// WSAPROTOCOLCHAIN.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WSAPROTOCOLCHAIN {
    pub ChainLen: i32,
    pub ChainEntries: [u32; MAX_PROTOCOL_CHAIN],
}

/// WSAPROTOCOL_INFOW.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WSAPROTOCOL_INFOW {
    pub dwServiceFlags1: u32,
    pub dwServiceFlags2: u32,
    pub dwServiceFlags3: u32,
    pub dwServiceFlags4: u32,
    pub dwProviderFlags: u32,
    pub ProviderId: GUID,
    pub dwCatalogEntryId: u32,
    pub ProtocolChain: WSAPROTOCOLCHAIN,
    pub iVersion: i32,
    pub iAddressFamily: i32,
    pub iMaxSockAddr: i32,
    pub iMinSockAddr: i32,
    pub iSocketType: i32,
    pub iProtocol: i32,
    pub iProtocolMaxOffset: i32,
    pub iNetworkByteOrder: i32,
    pub iSecurityScheme: i32,
    pub dwMessageSize: u32,
    pub dwProviderReserved: u32,
    pub szProtocol: [WCHAR; WSAPROTOCOL_LEN + 1],
}

/// WSPDATA.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WSPDATA {
    pub wVersion: u16,
    pub wHighVersion: u16,
    pub szDescription: [WCHAR; WSADESCRIPTION_LEN],
}

/// QOS: opaque here (this provider never reads one); only pointers to it are passed.
#[repr(C)]
pub struct QOS {
    _opaque: [u8; 0],
}

/// LPWSAOVERLAPPED_COMPLETION_ROUTINE.
pub type CompletionRoutine =
    Option<unsafe extern "system" fn(DWORD, DWORD, *mut WSAOVERLAPPED, DWORD)>;
/// LPCONDITIONPROC.
pub type ConditionProc = Option<
    unsafe extern "system" fn(
        *mut WSABUF,
        *mut WSABUF,
        *mut QOS,
        *mut QOS,
        *mut WSABUF,
        *mut WSABUF,
        *mut GROUP,
        DWORD_PTR,
    ) -> i32,
>;
/// LPWSAUSERAPC.
pub type UserApc = Option<unsafe extern "system" fn(DWORD_PTR)>;
/// LPBLOCKINGCALLBACK.
pub type BlockingCallback = Option<unsafe extern "system" fn(DWORD_PTR) -> BOOL>;
/// The completion hook of `LingerstackSetCompletionHook`.
pub type CompletionHook =
    Option<unsafe extern "system" fn(SOCKET, *mut WSAOVERLAPPED, DWORD, DWORD)>;

/// WSPPROC_TABLE: 30 entries in Windows order.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct WSPPROC_TABLE {
    pub lpWSPAccept: Option<
        unsafe extern "system" fn(
            SOCKET,
            *mut SOCKADDR,
            *mut i32,
            ConditionProc,
            DWORD_PTR,
            *mut i32,
        ) -> SOCKET,
    >,
    pub lpWSPAddressToString: Option<
        unsafe extern "system" fn(
            *mut SOCKADDR,
            DWORD,
            *mut WSAPROTOCOL_INFOW,
            *mut WCHAR,
            *mut DWORD,
            *mut i32,
        ) -> i32,
    >,
    pub lpWSPAsyncSelect:
        Option<unsafe extern "system" fn(SOCKET, HANDLE, u32, i32, *mut i32) -> i32>,
    pub lpWSPBind: Option<unsafe extern "system" fn(SOCKET, *const SOCKADDR, i32, *mut i32) -> i32>,
    pub lpWSPCancelBlockingCall: Option<unsafe extern "system" fn(*mut i32) -> i32>,
    pub lpWSPCleanup: Option<unsafe extern "system" fn(*mut i32) -> i32>,
    pub lpWSPCloseSocket: Option<unsafe extern "system" fn(SOCKET, *mut i32) -> i32>,
    pub lpWSPConnect: Option<
        unsafe extern "system" fn(
            SOCKET,
            *const SOCKADDR,
            i32,
            *mut WSABUF,
            *mut WSABUF,
            *mut QOS,
            *mut QOS,
            *mut i32,
        ) -> i32,
    >,
    pub lpWSPDuplicateSocket:
        Option<unsafe extern "system" fn(SOCKET, DWORD, *mut WSAPROTOCOL_INFOW, *mut i32) -> i32>,
    pub lpWSPEnumNetworkEvents:
        Option<unsafe extern "system" fn(SOCKET, HANDLE, *mut WSANETWORKEVENTS, *mut i32) -> i32>,
    pub lpWSPEventSelect: Option<unsafe extern "system" fn(SOCKET, HANDLE, i32, *mut i32) -> i32>,
    pub lpWSPGetOverlappedResult: Option<
        unsafe extern "system" fn(
            SOCKET,
            *mut WSAOVERLAPPED,
            *mut DWORD,
            BOOL,
            *mut DWORD,
            *mut i32,
        ) -> BOOL,
    >,
    pub lpWSPGetPeerName:
        Option<unsafe extern "system" fn(SOCKET, *mut SOCKADDR, *mut i32, *mut i32) -> i32>,
    pub lpWSPGetSockName:
        Option<unsafe extern "system" fn(SOCKET, *mut SOCKADDR, *mut i32, *mut i32) -> i32>,
    pub lpWSPGetSockOpt:
        Option<unsafe extern "system" fn(SOCKET, i32, i32, *mut u8, *mut i32, *mut i32) -> i32>,
    pub lpWSPGetQOSByName:
        Option<unsafe extern "system" fn(SOCKET, *mut WSABUF, *mut QOS, *mut i32) -> BOOL>,
    pub lpWSPIoctl: Option<
        unsafe extern "system" fn(
            SOCKET,
            DWORD,
            *mut c_void,
            DWORD,
            *mut c_void,
            DWORD,
            *mut DWORD,
            *mut WSAOVERLAPPED,
            CompletionRoutine,
            *mut WSATHREADID,
            *mut i32,
        ) -> i32,
    >,
    pub lpWSPJoinLeaf: Option<
        unsafe extern "system" fn(
            SOCKET,
            *const SOCKADDR,
            i32,
            *mut WSABUF,
            *mut WSABUF,
            *mut QOS,
            *mut QOS,
            DWORD,
            *mut i32,
        ) -> SOCKET,
    >,
    pub lpWSPListen: Option<unsafe extern "system" fn(SOCKET, i32, *mut i32) -> i32>,
    pub lpWSPRecv: Option<
        unsafe extern "system" fn(
            SOCKET,
            *mut WSABUF,
            DWORD,
            *mut DWORD,
            *mut DWORD,
            *mut WSAOVERLAPPED,
            CompletionRoutine,
            *mut WSATHREADID,
            *mut i32,
        ) -> i32,
    >,
    pub lpWSPRecvDisconnect:
        Option<unsafe extern "system" fn(SOCKET, *mut WSABUF, *mut i32) -> i32>,
    pub lpWSPRecvFrom: Option<
        unsafe extern "system" fn(
            SOCKET,
            *mut WSABUF,
            DWORD,
            *mut DWORD,
            *mut DWORD,
            *mut SOCKADDR,
            *mut i32,
            *mut WSAOVERLAPPED,
            CompletionRoutine,
            *mut WSATHREADID,
            *mut i32,
        ) -> i32,
    >,
    pub lpWSPSelect: Option<
        unsafe extern "system" fn(
            i32,
            *mut FD_SET,
            *mut FD_SET,
            *mut FD_SET,
            *const TIMEVAL,
            *mut i32,
        ) -> i32,
    >,
    pub lpWSPSend: Option<
        unsafe extern "system" fn(
            SOCKET,
            *mut WSABUF,
            DWORD,
            *mut DWORD,
            DWORD,
            *mut WSAOVERLAPPED,
            CompletionRoutine,
            *mut WSATHREADID,
            *mut i32,
        ) -> i32,
    >,
    pub lpWSPSendDisconnect:
        Option<unsafe extern "system" fn(SOCKET, *mut WSABUF, *mut i32) -> i32>,
    pub lpWSPSendTo: Option<
        unsafe extern "system" fn(
            SOCKET,
            *mut WSABUF,
            DWORD,
            *mut DWORD,
            DWORD,
            *const SOCKADDR,
            i32,
            *mut WSAOVERLAPPED,
            CompletionRoutine,
            *mut WSATHREADID,
            *mut i32,
        ) -> i32,
    >,
    pub lpWSPSetSockOpt:
        Option<unsafe extern "system" fn(SOCKET, i32, i32, *const u8, i32, *mut i32) -> i32>,
    pub lpWSPShutdown: Option<unsafe extern "system" fn(SOCKET, i32, *mut i32) -> i32>,
    pub lpWSPSocket: Option<
        unsafe extern "system" fn(
            i32,
            i32,
            i32,
            *mut WSAPROTOCOL_INFOW,
            GROUP,
            DWORD,
            *mut i32,
        ) -> SOCKET,
    >,
    pub lpWSPStringToAddress: Option<
        unsafe extern "system" fn(
            *mut WCHAR,
            i32,
            *mut WSAPROTOCOL_INFOW,
            *mut SOCKADDR,
            *mut i32,
            *mut i32,
        ) -> i32,
    >,
}

/// WSPUPCALLTABLE: 15 entries in Windows order. Any may be NULL.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct WSPUPCALLTABLE {
    pub lpWPUCloseEvent: Option<unsafe extern "system" fn(HANDLE, *mut i32) -> BOOL>,
    pub lpWPUCloseSocketHandle: Option<unsafe extern "system" fn(SOCKET, *mut i32) -> i32>,
    pub lpWPUCreateEvent: Option<unsafe extern "system" fn(*mut i32) -> HANDLE>,
    pub lpWPUCreateSocketHandle:
        Option<unsafe extern "system" fn(DWORD, DWORD_PTR, *mut i32) -> SOCKET>,
    pub lpWPUFDIsSet: Option<unsafe extern "system" fn(SOCKET, *mut FD_SET) -> i32>,
    pub lpWPUGetProviderPath:
        Option<unsafe extern "system" fn(*mut GUID, *mut WCHAR, *mut i32, *mut i32) -> i32>,
    pub lpWPUModifyIFSHandle: Option<unsafe extern "system" fn(DWORD, SOCKET, *mut i32) -> SOCKET>,
    pub lpWPUPostMessage: Option<unsafe extern "system" fn(HANDLE, u32, usize, LPARAM) -> BOOL>,
    pub lpWPUQueryBlockingCallback: Option<
        unsafe extern "system" fn(DWORD, *mut BlockingCallback, *mut DWORD_PTR, *mut i32) -> i32,
    >,
    pub lpWPUQuerySocketHandleContext:
        Option<unsafe extern "system" fn(SOCKET, *mut DWORD_PTR, *mut i32) -> i32>,
    pub lpWPUQueueApc:
        Option<unsafe extern "system" fn(*mut WSATHREADID, UserApc, DWORD_PTR, *mut i32) -> i32>,
    pub lpWPUResetEvent: Option<unsafe extern "system" fn(HANDLE, *mut i32) -> BOOL>,
    pub lpWPUSetEvent: Option<unsafe extern "system" fn(HANDLE, *mut i32) -> BOOL>,
    pub lpWPUOpenCurrentThread:
        Option<unsafe extern "system" fn(*mut WSATHREADID, *mut i32) -> i32>,
    pub lpWPUCloseThread: Option<unsafe extern "system" fn(*mut WSATHREADID, *mut i32) -> i32>,
}

// The layout, pinned: the same numbers as include/lingerstack/ws2spi.h and tests/c/layout.c.
macro_rules! pin {
    ($t:ty, $size:expr, $align:expr $(, $field:ident = $off:expr)* $(,)?) => {
        const _: () = assert!(size_of::<$t>() == $size);
        const _: () = assert!(std::mem::align_of::<$t>() == $align);
        $(const _: () = assert!(offset_of!($t, $field) == $off);)*
    };
}

pin!(WSABUF, 16, 8, len = 0, buf = 8);
pin!(
    WSAOVERLAPPED,
    32,
    8,
    Internal = 0,
    InternalHigh = 8,
    Offset = 16,
    OffsetHigh = 20,
    hEvent = 24
);
pin!(WSANETWORKEVENTS, 44, 4, lNetworkEvents = 0, iErrorCode = 4);
pin!(WSATHREADID, 16, 8, ThreadHandle = 0, Reserved = 8);
pin!(LINGER, 4, 2, l_onoff = 0, l_linger = 2);
pin!(FD_SET, 520, 8, fd_count = 0, fd_array = 8);
pin!(TIMEVAL, 8, 4, tv_sec = 0, tv_usec = 4);
pin!(SOCKADDR, 16, 2, sa_family = 0, sa_data = 2);
pin!(
    SOCKADDR_IN,
    16,
    2,
    sin_family = 0,
    sin_port = 2,
    sin_addr = 4,
    sin_zero = 8
);
pin!(
    SOCKADDR_IN6,
    28,
    4,
    sin6_family = 0,
    sin6_port = 2,
    sin6_flowinfo = 4,
    sin6_addr = 8,
    sin6_scope_id = 24,
);
pin!(GUID, 16, 4, Data1 = 0, Data2 = 4, Data3 = 6, Data4 = 8);
pin!(WSAPROTOCOLCHAIN, 32, 4, ChainLen = 0, ChainEntries = 4);
pin!(
    WSAPROTOCOL_INFOW,
    628,
    4,
    dwServiceFlags1 = 0,
    dwServiceFlags2 = 4,
    dwServiceFlags3 = 8,
    dwServiceFlags4 = 12,
    dwProviderFlags = 16,
    ProviderId = 20,
    dwCatalogEntryId = 36,
    ProtocolChain = 40,
    iVersion = 72,
    iAddressFamily = 76,
    iMaxSockAddr = 80,
    iMinSockAddr = 84,
    iSocketType = 88,
    iProtocol = 92,
    iProtocolMaxOffset = 96,
    iNetworkByteOrder = 100,
    iSecurityScheme = 104,
    dwMessageSize = 108,
    dwProviderReserved = 112,
    szProtocol = 116,
);
pin!(
    WSPDATA,
    516,
    2,
    wVersion = 0,
    wHighVersion = 2,
    szDescription = 4
);
pin!(
    WSPPROC_TABLE,
    240,
    8,
    lpWSPAccept = 0,
    lpWSPAddressToString = 8,
    lpWSPAsyncSelect = 16,
    lpWSPBind = 24,
    lpWSPCancelBlockingCall = 32,
    lpWSPCleanup = 40,
    lpWSPCloseSocket = 48,
    lpWSPConnect = 56,
    lpWSPDuplicateSocket = 64,
    lpWSPEnumNetworkEvents = 72,
    lpWSPEventSelect = 80,
    lpWSPGetOverlappedResult = 88,
    lpWSPGetPeerName = 96,
    lpWSPGetSockName = 104,
    lpWSPGetSockOpt = 112,
    lpWSPGetQOSByName = 120,
    lpWSPIoctl = 128,
    lpWSPJoinLeaf = 136,
    lpWSPListen = 144,
    lpWSPRecv = 152,
    lpWSPRecvDisconnect = 160,
    lpWSPRecvFrom = 168,
    lpWSPSelect = 176,
    lpWSPSend = 184,
    lpWSPSendDisconnect = 192,
    lpWSPSendTo = 200,
    lpWSPSetSockOpt = 208,
    lpWSPShutdown = 216,
    lpWSPSocket = 224,
    lpWSPStringToAddress = 232,
);
pin!(
    WSPUPCALLTABLE,
    120,
    8,
    lpWPUCloseEvent = 0,
    lpWPUCloseSocketHandle = 8,
    lpWPUCreateEvent = 16,
    lpWPUCreateSocketHandle = 24,
    lpWPUFDIsSet = 32,
    lpWPUGetProviderPath = 40,
    lpWPUModifyIFSHandle = 48,
    lpWPUPostMessage = 56,
    lpWPUQueryBlockingCallback = 64,
    lpWPUQuerySocketHandleContext = 72,
    lpWPUQueueApc = 80,
    lpWPUResetEvent = 88,
    lpWPUSetEvent = 96,
    lpWPUOpenCurrentThread = 104,
    lpWPUCloseThread = 112,
);
// Function pointers are nullable and pointer-sized (Option<fn> uses the null niche).
const _: () = assert!(size_of::<CompletionRoutine>() == 8);
const _: () = assert!(size_of::<CompletionHook>() == 8);
