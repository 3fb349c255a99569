/*
 * lingerstack/ws2spi.h: the Winsock service provider interface of liblingerstack_wsp on Linux.
 *
 * The shapes of Windows' ws2spi.h with fixed-width types (Windows is LLP64: its long is 32 bits),
 * as docs/abi.md describes them. Usable from C99 and C++. The provider's Rust code
 * (crates/wsp-capi/src/types.rs) pins the same sizes and offsets;
 * crates/wsp-capi/tests/c/layout.c checks them from C.
 *
 * Usage: fill a WSAPROTOCOL_INFOW (family 2 or 23, type 1, protocol 6), a WSPUPCALLTABLE (any
 * entry may be NULL), call WSPStartup(WSP_VERSION_2_2, ...) and drive every socket through the
 * WSPPROC_TABLE it fills. The network comes from the environment: LINGERSTACK_IFACE (a TAP;
 * unset: an in-memory loopback network at 127.0.0.1/8), LINGERSTACK_NETNS, LINGERSTACK_ADDR,
 * LINGERSTACK_GATEWAY, LINGERSTACK_MAC, LINGERSTACK_PCAP, LINGERSTACK_OFFLOAD, RUST_LOG.
 */
#ifndef LINGERSTACK_WS2SPI_H
#define LINGERSTACK_WS2SPI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Calling convention: the platform's C convention (Rust extern "system"). */
#define WSPAPI
#define WSAAPI

/* ---- Types ---------------------------------------------------------------------------- */

typedef uintptr_t SOCKET;
typedef uintptr_t UINT_PTR;
typedef uintptr_t ULONG_PTR;
typedef uintptr_t DWORD_PTR;
typedef uintptr_t WPARAM;
typedef intptr_t LPARAM;
typedef uint32_t DWORD;
typedef uint32_t ULONG;
typedef uint32_t UINT;
typedef int32_t LONG;
typedef int32_t INT;
typedef uint16_t WORD;
typedef uint16_t WCHAR; /* UTF-16 code unit, not Linux wchar_t */
typedef int32_t BOOL;
typedef void *HANDLE;
typedef HANDLE WSAEVENT;
typedef HANDLE HWND;
typedef uint32_t GROUP;

#define INVALID_SOCKET ((SOCKET)~(uintptr_t)0)
#define SOCKET_ERROR (-1)
#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

typedef struct WSABUF {
    ULONG len;
    char *buf;
} WSABUF, *LPWSABUF;

typedef struct WSAOVERLAPPED {
    ULONG_PTR Internal;     /* WSA_IO_PENDING, then the Winsock error (0: success) */
    ULONG_PTR InternalHigh; /* bytes transferred */
    DWORD Offset;
    DWORD OffsetHigh;
    WSAEVENT hEvent;
} WSAOVERLAPPED, *LPWSAOVERLAPPED;

#define FD_MAX_EVENTS 10
typedef struct WSANETWORKEVENTS {
    int32_t lNetworkEvents;
    int32_t iErrorCode[FD_MAX_EVENTS];
} WSANETWORKEVENTS, *LPWSANETWORKEVENTS;

typedef struct WSATHREADID {
    HANDLE ThreadHandle;
    DWORD_PTR Reserved;
} WSATHREADID, *LPWSATHREADID;

typedef struct WSALINGER {
    uint16_t l_onoff;
    uint16_t l_linger; /* seconds */
} LINGER;

/* Windows' struct tcp_keepalive, the input of WSPIoctl(SIO_KEEPALIVE_VALS_WIN); u_long is
 * 32 bits on Windows. */
typedef struct WSATCPKEEPALIVE {
    uint32_t onoff;             /* non-zero: keep-alive on */
    uint32_t keepalivetime;     /* ms without a segment from the peer before the first probe */
    uint32_t keepaliveinterval; /* ms between unanswered probes (10 of them, then a reset) */
} TCPKEEPALIVE;

#define FD_SETSIZE_WIN 64
/* Windows fd_set: a count and a list (named WSAFDSET to stay clear of <sys/select.h>). */
typedef struct WSAFDSET {
    uint32_t fd_count;
    SOCKET fd_array[FD_SETSIZE_WIN];
} WSAFDSET;

typedef struct TIMEVAL {
    int32_t tv_sec;
    int32_t tv_usec;
} TIMEVAL;

/* Socket addresses as on Windows: family 2 or 23, port and address in network order.
 * Named WSA* to stay clear of the Linux <netinet/in.h> types (whose AF_INET6 is 10). */
typedef struct WSASOCKADDR {
    uint16_t sa_family;
    uint8_t sa_data[14];
} WSASOCKADDR;

typedef struct WSASOCKADDR_IN {
    uint16_t sin_family; /* WSA_AF_INET */
    uint16_t sin_port;   /* network order */
    uint8_t sin_addr[4]; /* network order */
    uint8_t sin_zero[8];
} WSASOCKADDR_IN;

typedef struct WSASOCKADDR_IN6 {
    uint16_t sin6_family; /* WSA_AF_INET6 (23) */
    uint16_t sin6_port;
    uint32_t sin6_flowinfo;
    uint8_t sin6_addr[16];
    uint32_t sin6_scope_id;
} WSASOCKADDR_IN6;

typedef struct GUID {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID;

#define MAX_PROTOCOL_CHAIN 7
#define WSAPROTOCOL_LEN 255
#define WSADESCRIPTION_LEN 256

typedef struct WSAPROTOCOLCHAIN {
    int32_t ChainLen;
    DWORD ChainEntries[MAX_PROTOCOL_CHAIN];
} WSAPROTOCOLCHAIN;

typedef struct WSAPROTOCOL_INFOW {
    DWORD dwServiceFlags1;
    DWORD dwServiceFlags2;
    DWORD dwServiceFlags3;
    DWORD dwServiceFlags4;
    DWORD dwProviderFlags;
    GUID ProviderId;
    DWORD dwCatalogEntryId;
    WSAPROTOCOLCHAIN ProtocolChain;
    int32_t iVersion;
    int32_t iAddressFamily;
    int32_t iMaxSockAddr;
    int32_t iMinSockAddr;
    int32_t iSocketType;
    int32_t iProtocol;
    int32_t iProtocolMaxOffset;
    int32_t iNetworkByteOrder;
    int32_t iSecurityScheme;
    DWORD dwMessageSize;
    DWORD dwProviderReserved; /* after WSPDuplicateSocket: the underlying socket */
    WCHAR szProtocol[WSAPROTOCOL_LEN + 1];
} WSAPROTOCOL_INFOW, *LPWSAPROTOCOL_INFOW;

typedef struct WSPDATA {
    WORD wVersion;
    WORD wHighVersion;
    WCHAR szDescription[WSADESCRIPTION_LEN];
} WSPDATA, *LPWSPDATA;

/* QOS is never read by this provider: only pointers to it are passed (NULL). */
typedef struct QOS QOS, *LPQOS;

/* ---- Constants (exact Windows values) --------------------------------------------------- */

#define WSP_VERSION_2_2 0x0202 /* MAKEWORD(2, 2) */

#define WSAEINTR 10004
#define WSAEFAULT 10014
#define WSAEINVAL 10022
#define WSAEMFILE 10024
#define WSAEWOULDBLOCK 10035
#define WSAEINPROGRESS 10036
#define WSAEALREADY 10037
#define WSAENOTSOCK 10038
#define WSAEPROTOTYPE 10041
#define WSAENOPROTOOPT 10042
#define WSAEPROTONOSUPPORT 10043
#define WSAESOCKTNOSUPPORT 10044
#define WSAEOPNOTSUPP 10045
#define WSAEAFNOSUPPORT 10047
#define WSAEADDRINUSE 10048
#define WSAEADDRNOTAVAIL 10049
#define WSAENETDOWN 10050
#define WSAENETRESET 10052
#define WSAECONNABORTED 10053
#define WSAECONNRESET 10054
#define WSAENOBUFS 10055
#define WSAEISCONN 10056
#define WSAENOTCONN 10057
#define WSAESHUTDOWN 10058
#define WSAETIMEDOUT 10060
#define WSAECONNREFUSED 10061
#define WSASYSNOTREADY 10091
#define WSAVERNOTSUPPORTED 10092
#define WSANOTINITIALISED 10093
#define WSA_IO_PENDING 997
#define WSA_IO_INCOMPLETE 996
#define WSA_OPERATION_ABORTED 995

#define SOL_SOCKET_WIN 0xffff
#define IPPROTO_TCP_WIN 6
#define SO_LINGER_WIN 0x0080
#define SO_DONTLINGER ((int32_t)(~0x0080))
#define SO_KEEPALIVE_WIN 0x0008
#define SO_ACCEPTCONN_WIN 0x0002
#define SO_SNDBUF_WIN 0x1001
#define SO_RCVBUF_WIN 0x1002
#define SO_ERROR_WIN 0x1007
#define SO_TYPE_WIN 0x1008
#define TCP_NODELAY_WIN 0x0001
#define SOCK_STREAM_WIN 1
#define WSA_AF_INET 2
#define WSA_AF_INET6 23
#define FIONBIO_WIN ((DWORD)0x8004667Eu)
#define FIONREAD_WIN ((DWORD)0x4004667Fu)
/* _WSAIOW(IOC_VENDOR, 4): in, a struct tcp_keepalive; out, nothing */
#define SIO_KEEPALIVE_VALS_WIN ((DWORD)0x98000004u)
#define SOMAXCONN_WIN 0x7fffffff

#define FD_READ 0x01
#define FD_WRITE 0x02
#define FD_OOB 0x04
#define FD_ACCEPT 0x08
#define FD_CONNECT 0x10
#define FD_CLOSE 0x20
#define FD_READ_BIT 0
#define FD_WRITE_BIT 1
#define FD_OOB_BIT 2
#define FD_ACCEPT_BIT 3
#define FD_CONNECT_BIT 4
#define FD_CLOSE_BIT 5

#define SD_RECEIVE 0
#define SD_SEND 1
#define SD_BOTH 2

#define WSA_FLAG_OVERLAPPED 0x01
#define FROM_PROTOCOL_INFO (-1)
#define CF_ACCEPT 0
#define CF_REJECT 1
#define CF_DEFER 2

#define WSAMAKESELECTREPLY(event, error) \
    ((LPARAM)(uint32_t)(((uint32_t)(uint16_t)(error) << 16) | (uint16_t)(event)))
#define WSAGETSELECTEVENT(lParam) ((uint16_t)((uint32_t)(lParam) & 0xffff))
#define WSAGETSELECTERROR(lParam) ((uint16_t)(((uint32_t)(lParam) >> 16) & 0xffff))

/* ---- Callbacks -------------------------------------------------------------------------- */

typedef void(WSPAPI *LPWSAOVERLAPPED_COMPLETION_ROUTINE)(DWORD dwError, DWORD cbTransferred,
                                                          LPWSAOVERLAPPED lpOverlapped,
                                                          DWORD dwFlags);
typedef int32_t(WSPAPI *LPCONDITIONPROC)(LPWSABUF lpCallerId, LPWSABUF lpCallerData,
                                         LPQOS lpSQOS, LPQOS lpGQOS, LPWSABUF lpCalleeId,
                                         LPWSABUF lpCalleeData, GROUP *g,
                                         DWORD_PTR dwCallbackData);
typedef void(WSPAPI *LPWSAUSERAPC)(DWORD_PTR dwContext);
typedef BOOL(WSPAPI *LPBLOCKINGCALLBACK)(DWORD_PTR dwContext);
/* The completion hook: overlapped operations with neither event nor routine end here. */
typedef void(WSPAPI *LPLINGERSTACK_COMPLETION_HOOK)(SOCKET s, LPWSAOVERLAPPED lpOverlapped,
                                                     DWORD dwError, DWORD cbTransferred);

/* ---- The provider's procedures (WSPPROC_TABLE) ------------------------------------------ */

typedef SOCKET(WSPAPI *LPWSPACCEPT)(SOCKET s, WSASOCKADDR *addr, int32_t *addrlen,
                                    LPCONDITIONPROC lpfnCondition, DWORD_PTR dwCallbackData,
                                    int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPADDRESSTOSTRING)(WSASOCKADDR *lpsaAddress, DWORD dwAddressLength,
                                              LPWSAPROTOCOL_INFOW lpProtocolInfo,
                                              WCHAR *lpszAddressString,
                                              DWORD *lpdwAddressStringLength, int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPASYNCSELECT)(SOCKET s, HWND hWnd, UINT wMsg, int32_t lEvent,
                                          int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPBIND)(SOCKET s, const WSASOCKADDR *name, int32_t namelen,
                                   int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPCANCELBLOCKINGCALL)(int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPCLEANUP)(int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPCLOSESOCKET)(SOCKET s, int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPCONNECT)(SOCKET s, const WSASOCKADDR *name, int32_t namelen,
                                      LPWSABUF lpCallerData, LPWSABUF lpCalleeData,
                                      LPQOS lpSQOS, LPQOS lpGQOS, int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPDUPLICATESOCKET)(SOCKET s, DWORD dwProcessId,
                                              LPWSAPROTOCOL_INFOW lpProtocolInfo,
                                              int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPENUMNETWORKEVENTS)(SOCKET s, WSAEVENT hEventObject,
                                                LPWSANETWORKEVENTS lpNetworkEvents,
                                                int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPEVENTSELECT)(SOCKET s, WSAEVENT hEventObject,
                                          int32_t lNetworkEvents, int32_t *lpErrno);
typedef BOOL(WSPAPI *LPWSPGETOVERLAPPEDRESULT)(SOCKET s, LPWSAOVERLAPPED lpOverlapped,
                                               DWORD *lpcbTransfer, BOOL fWait,
                                               DWORD *lpdwFlags, int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPGETPEERNAME)(SOCKET s, WSASOCKADDR *name, int32_t *namelen,
                                          int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPGETSOCKNAME)(SOCKET s, WSASOCKADDR *name, int32_t *namelen,
                                          int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPGETSOCKOPT)(SOCKET s, int32_t level, int32_t optname,
                                         char *optval, int32_t *optlen, int32_t *lpErrno);
typedef BOOL(WSPAPI *LPWSPGETQOSBYNAME)(SOCKET s, LPWSABUF lpQOSName, LPQOS lpQOS,
                                        int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPIOCTL)(SOCKET s, DWORD dwIoControlCode, void *lpvInBuffer,
                                    DWORD cbInBuffer, void *lpvOutBuffer, DWORD cbOutBuffer,
                                    DWORD *lpcbBytesReturned, LPWSAOVERLAPPED lpOverlapped,
                                    LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine,
                                    LPWSATHREADID lpThreadId, int32_t *lpErrno);
typedef SOCKET(WSPAPI *LPWSPJOINLEAF)(SOCKET s, const WSASOCKADDR *name, int32_t namelen,
                                      LPWSABUF lpCallerData, LPWSABUF lpCalleeData,
                                      LPQOS lpSQOS, LPQOS lpGQOS, DWORD dwFlags,
                                      int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPLISTEN)(SOCKET s, int32_t backlog, int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPRECV)(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                                   DWORD *lpNumberOfBytesRecvd, DWORD *lpFlags,
                                   LPWSAOVERLAPPED lpOverlapped,
                                   LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine,
                                   LPWSATHREADID lpThreadId, int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPRECVDISCONNECT)(SOCKET s, LPWSABUF lpInboundDisconnectData,
                                             int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPRECVFROM)(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                                       DWORD *lpNumberOfBytesRecvd, DWORD *lpFlags,
                                       WSASOCKADDR *lpFrom, int32_t *lpFromlen,
                                       LPWSAOVERLAPPED lpOverlapped,
                                       LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine,
                                       LPWSATHREADID lpThreadId, int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPSELECT)(int32_t nfds, WSAFDSET *readfds, WSAFDSET *writefds,
                                     WSAFDSET *exceptfds, const TIMEVAL *timeout,
                                     int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPSEND)(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                                   DWORD *lpNumberOfBytesSent, DWORD dwFlags,
                                   LPWSAOVERLAPPED lpOverlapped,
                                   LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine,
                                   LPWSATHREADID lpThreadId, int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPSENDDISCONNECT)(SOCKET s, LPWSABUF lpOutboundDisconnectData,
                                             int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPSENDTO)(SOCKET s, LPWSABUF lpBuffers, DWORD dwBufferCount,
                                     DWORD *lpNumberOfBytesSent, DWORD dwFlags,
                                     const WSASOCKADDR *lpTo, int32_t iTolen,
                                     LPWSAOVERLAPPED lpOverlapped,
                                     LPWSAOVERLAPPED_COMPLETION_ROUTINE lpCompletionRoutine,
                                     LPWSATHREADID lpThreadId, int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPSETSOCKOPT)(SOCKET s, int32_t level, int32_t optname,
                                         const char *optval, int32_t optlen, int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPSHUTDOWN)(SOCKET s, int32_t how, int32_t *lpErrno);
typedef SOCKET(WSPAPI *LPWSPSOCKET)(int32_t af, int32_t type, int32_t protocol,
                                    LPWSAPROTOCOL_INFOW lpProtocolInfo, GROUP g, DWORD dwFlags,
                                    int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWSPSTRINGTOADDRESS)(WCHAR *AddressString, int32_t AddressFamily,
                                              LPWSAPROTOCOL_INFOW lpProtocolInfo,
                                              WSASOCKADDR *lpAddress, int32_t *lpAddressLength,
                                              int32_t *lpErrno);

typedef struct WSPPROC_TABLE {
    LPWSPACCEPT lpWSPAccept;
    LPWSPADDRESSTOSTRING lpWSPAddressToString;
    LPWSPASYNCSELECT lpWSPAsyncSelect;
    LPWSPBIND lpWSPBind;
    LPWSPCANCELBLOCKINGCALL lpWSPCancelBlockingCall;
    LPWSPCLEANUP lpWSPCleanup;
    LPWSPCLOSESOCKET lpWSPCloseSocket;
    LPWSPCONNECT lpWSPConnect;
    LPWSPDUPLICATESOCKET lpWSPDuplicateSocket;
    LPWSPENUMNETWORKEVENTS lpWSPEnumNetworkEvents;
    LPWSPEVENTSELECT lpWSPEventSelect;
    LPWSPGETOVERLAPPEDRESULT lpWSPGetOverlappedResult;
    LPWSPGETPEERNAME lpWSPGetPeerName;
    LPWSPGETSOCKNAME lpWSPGetSockName;
    LPWSPGETSOCKOPT lpWSPGetSockOpt;
    LPWSPGETQOSBYNAME lpWSPGetQOSByName;
    LPWSPIOCTL lpWSPIoctl;
    LPWSPJOINLEAF lpWSPJoinLeaf;
    LPWSPLISTEN lpWSPListen;
    LPWSPRECV lpWSPRecv;
    LPWSPRECVDISCONNECT lpWSPRecvDisconnect;
    LPWSPRECVFROM lpWSPRecvFrom;
    LPWSPSELECT lpWSPSelect;
    LPWSPSEND lpWSPSend;
    LPWSPSENDDISCONNECT lpWSPSendDisconnect;
    LPWSPSENDTO lpWSPSendTo;
    LPWSPSETSOCKOPT lpWSPSetSockOpt;
    LPWSPSHUTDOWN lpWSPShutdown;
    LPWSPSOCKET lpWSPSocket;
    LPWSPSTRINGTOADDRESS lpWSPStringToAddress;
} WSPPROC_TABLE, *LPWSPPROC_TABLE;

/* ---- The client's upcalls (WSPUPCALLTABLE); any entry may be NULL ------------------------ */

typedef BOOL(WSPAPI *LPWPUCLOSEEVENT)(WSAEVENT hEvent, int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWPUCLOSESOCKETHANDLE)(SOCKET s, int32_t *lpErrno);
typedef WSAEVENT(WSPAPI *LPWPUCREATEEVENT)(int32_t *lpErrno);
typedef SOCKET(WSPAPI *LPWPUCREATESOCKETHANDLE)(DWORD dwCatalogEntryId, DWORD_PTR dwContext,
                                                int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWPUFDISSET)(SOCKET s, WSAFDSET *fdset);
typedef int32_t(WSPAPI *LPWPUGETPROVIDERPATH)(GUID *lpProviderId, WCHAR *lpszProviderDllPath,
                                              int32_t *lpProviderDllPathLen, int32_t *lpErrno);
typedef SOCKET(WSPAPI *LPWPUMODIFYIFSHANDLE)(DWORD dwCatalogEntryId, SOCKET ProposedHandle,
                                             int32_t *lpErrno);
typedef BOOL(WSPAPI *LPWPUPOSTMESSAGE)(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam);
typedef int32_t(WSPAPI *LPWPUQUERYBLOCKINGCALLBACK)(DWORD dwCatalogEntryId,
                                                    LPBLOCKINGCALLBACK *lplpfnCallback,
                                                    DWORD_PTR *lpdwContext, int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWPUQUERYSOCKETHANDLECONTEXT)(SOCKET s, DWORD_PTR *lpContext,
                                                       int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWPUQUEUEAPC)(LPWSATHREADID lpThreadId, LPWSAUSERAPC lpfnUserApc,
                                       DWORD_PTR dwContext, int32_t *lpErrno);
typedef BOOL(WSPAPI *LPWPURESETEVENT)(WSAEVENT hEvent, int32_t *lpErrno);
typedef BOOL(WSPAPI *LPWPUSETEVENT)(WSAEVENT hEvent, int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWPUOPENCURRENTTHREAD)(LPWSATHREADID lpThreadId, int32_t *lpErrno);
typedef int32_t(WSPAPI *LPWPUCLOSETHREAD)(LPWSATHREADID lpThreadId, int32_t *lpErrno);

typedef struct WSPUPCALLTABLE {
    LPWPUCLOSEEVENT lpWPUCloseEvent;
    LPWPUCLOSESOCKETHANDLE lpWPUCloseSocketHandle;
    LPWPUCREATEEVENT lpWPUCreateEvent;
    LPWPUCREATESOCKETHANDLE lpWPUCreateSocketHandle;
    LPWPUFDISSET lpWPUFDIsSet;
    LPWPUGETPROVIDERPATH lpWPUGetProviderPath;
    LPWPUMODIFYIFSHANDLE lpWPUModifyIFSHandle;
    LPWPUPOSTMESSAGE lpWPUPostMessage;
    LPWPUQUERYBLOCKINGCALLBACK lpWPUQueryBlockingCallback;
    LPWPUQUERYSOCKETHANDLECONTEXT lpWPUQuerySocketHandleContext;
    LPWPUQUEUEAPC lpWPUQueueApc;
    LPWPURESETEVENT lpWPUResetEvent;
    LPWPUSETEVENT lpWPUSetEvent;
    LPWPUOPENCURRENTTHREAD lpWPUOpenCurrentThread;
    LPWPUCLOSETHREAD lpWPUCloseThread;
} WSPUPCALLTABLE, *LPWSPUPCALLTABLE;

/* ---- Exported functions ----------------------------------------------------------------- */

/* Returns 0, or WSAVERNOTSUPPORTED (below 2.2), WSASYSNOTREADY (network not available: see
 * the environment variables above), WSAEFAULT (NULL pointers), WSAEINVAL (not TCP). */
int32_t WSPAPI WSPStartup(WORD wVersionRequested, LPWSPDATA lpWSPData,
                          LPWSAPROTOCOL_INFOW lpProtocolInfo, WSPUPCALLTABLE UpcallTable,
                          LPWSPPROC_TABLE lpProcTable);
typedef int32_t(WSPAPI *LPWSPSTARTUP)(WORD wVersionRequested, LPWSPDATA lpWSPData,
                                      LPWSAPROTOCOL_INFOW lpProtocolInfo,
                                      WSPUPCALLTABLE UpcallTable, LPWSPPROC_TABLE lpProcTable);

/* Install (NULL: remove) the hook that completes overlapped operations naming neither an event
 * nor a completion routine (WPUCompleteOverlappedRequest's part). */
void WSPAPI LingerstackSetCompletionHook(LPLINGERSTACK_COMPLETION_HOOK hook);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LINGERSTACK_WS2SPI_H */
