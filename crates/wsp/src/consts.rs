//! Winsock constants with their exact Windows values (close-semantics.md, "Constants").

#![allow(missing_docs)]

pub const SOCKET_ERROR: i32 = -1;
pub const INVALID_SOCKET: usize = !0;

pub const WSAEINTR: i32 = 10004;
pub const WSAEFAULT: i32 = 10014;
pub const WSAEINVAL: i32 = 10022;
pub const WSAEMFILE: i32 = 10024;
pub const WSAEWOULDBLOCK: i32 = 10035;
pub const WSAEINPROGRESS: i32 = 10036;
pub const WSAEALREADY: i32 = 10037;
pub const WSAENOTSOCK: i32 = 10038;
pub const WSAEPROTOTYPE: i32 = 10041;
pub const WSAENOPROTOOPT: i32 = 10042;
pub const WSAEPROTONOSUPPORT: i32 = 10043;
pub const WSAESOCKTNOSUPPORT: i32 = 10044;
pub const WSAEOPNOTSUPP: i32 = 10045;
pub const WSAEAFNOSUPPORT: i32 = 10047;
pub const WSAEADDRINUSE: i32 = 10048;
pub const WSAEADDRNOTAVAIL: i32 = 10049;
pub const WSAENETDOWN: i32 = 10050;
pub const WSAENETRESET: i32 = 10052;
pub const WSAECONNABORTED: i32 = 10053;
pub const WSAECONNRESET: i32 = 10054;
pub const WSAENOBUFS: i32 = 10055;
pub const WSAEISCONN: i32 = 10056;
pub const WSAENOTCONN: i32 = 10057;
pub const WSAESHUTDOWN: i32 = 10058;
pub const WSAETIMEDOUT: i32 = 10060;
pub const WSAECONNREFUSED: i32 = 10061;
pub const WSASYSNOTREADY: i32 = 10091;
pub const WSAVERNOTSUPPORTED: i32 = 10092;
pub const WSANOTINITIALISED: i32 = 10093;
pub const WSA_IO_PENDING: i32 = 997;
pub const WSA_IO_INCOMPLETE: i32 = 996;
pub const WSA_OPERATION_ABORTED: i32 = 995;

pub const SOL_SOCKET: i32 = 0xffff;
pub const IPPROTO_TCP: i32 = 6;
pub const SO_LINGER: i32 = 0x0080;
pub const SO_DONTLINGER: i32 = !0x0080;
pub const SO_KEEPALIVE: i32 = 0x0008;
pub const SO_ACCEPTCONN: i32 = 0x0002;
pub const SO_SNDBUF: i32 = 0x1001;
pub const SO_RCVBUF: i32 = 0x1002;
pub const SO_ERROR: i32 = 0x1007;
pub const SO_TYPE: i32 = 0x1008;
pub const TCP_NODELAY: i32 = 0x0001;
pub const SOCK_STREAM: i32 = 1;

pub const FIONBIO: u32 = 0x8004_667E;
pub const FIONREAD: u32 = 0x4004_667F;
/// `_WSAIOW(IOC_VENDOR, 4)`: set keep-alive on/off, idle time and probe interval
/// (`struct tcp_keepalive`).
pub const SIO_KEEPALIVE_VALS: u32 = 0x9800_0004;

pub const FD_READ: i32 = 0x01;
pub const FD_WRITE: i32 = 0x02;
pub const FD_OOB: i32 = 0x04;
pub const FD_ACCEPT: i32 = 0x08;
pub const FD_CONNECT: i32 = 0x10;
pub const FD_CLOSE: i32 = 0x20;
/// Bit positions of the events in `WSANETWORKEVENTS::iErrorCode`.
pub const FD_READ_BIT: usize = 0;
pub const FD_WRITE_BIT: usize = 1;
pub const FD_OOB_BIT: usize = 2;
pub const FD_ACCEPT_BIT: usize = 3;
pub const FD_CONNECT_BIT: usize = 4;
pub const FD_CLOSE_BIT: usize = 5;
pub const FD_MAX_EVENTS: usize = 10;
/// Every event this provider knows.
pub const FD_ALL_EVENTS: i32 = FD_READ | FD_WRITE | FD_OOB | FD_ACCEPT | FD_CONNECT | FD_CLOSE;

pub const SD_RECEIVE: i32 = 0;
pub const SD_SEND: i32 = 1;
pub const SD_BOTH: i32 = 2;

pub const AF_INET: i32 = 2;
pub const AF_INET6: i32 = 23;
pub const WSA_FLAG_OVERLAPPED: u32 = 0x01;
pub const FROM_PROTOCOL_INFO: i32 = -1;

/// Condition function answers of WSPAccept.
pub const CF_ACCEPT: i32 = 0;
pub const CF_REJECT: i32 = 1;
pub const CF_DEFER: i32 = 2;
/// SOMAXCONN as Windows defines it: "the maximum".
pub const SOMAXCONN: i32 = 0x7fff_ffff;
