/* The layout of every ws2spi.h shape, checked from C: the same numbers that
 * crates/wsp-capi/src/types.rs pins with static assertions. */
#include "layout.h"

#include <stddef.h>
#include <stdio.h>

#define SIZE(t, n) do { if (sizeof(t) != (n)) { fprintf(stderr, "sizeof(" #t ") = %u, want %u\n", (unsigned)sizeof(t), (unsigned)(n)); bad++; } } while (0)
#define OFF(t, f, n) do { if (offsetof(t, f) != (n)) { fprintf(stderr, "offsetof(" #t ", " #f ") = %u, want %u\n", (unsigned)offsetof(t, f), (unsigned)(n)); bad++; } } while (0)

int check_layout(void) {
    int bad = 0;
    SIZE(SOCKET, 8); SIZE(DWORD, 4); SIZE(WORD, 2); SIZE(WCHAR, 2); SIZE(BOOL, 4); SIZE(LPARAM, 8);
    SIZE(WSABUF, 16); OFF(WSABUF, len, 0); OFF(WSABUF, buf, 8);
    SIZE(WSAOVERLAPPED, 32); OFF(WSAOVERLAPPED, Internal, 0); OFF(WSAOVERLAPPED, InternalHigh, 8);
    OFF(WSAOVERLAPPED, Offset, 16); OFF(WSAOVERLAPPED, OffsetHigh, 20); OFF(WSAOVERLAPPED, hEvent, 24);
    SIZE(WSANETWORKEVENTS, 44); OFF(WSANETWORKEVENTS, lNetworkEvents, 0); OFF(WSANETWORKEVENTS, iErrorCode, 4);
    SIZE(WSATHREADID, 16); OFF(WSATHREADID, ThreadHandle, 0); OFF(WSATHREADID, Reserved, 8);
    SIZE(LINGER, 4); OFF(LINGER, l_onoff, 0); OFF(LINGER, l_linger, 2);
    SIZE(TCPKEEPALIVE, 12); OFF(TCPKEEPALIVE, onoff, 0); OFF(TCPKEEPALIVE, keepalivetime, 4);
    OFF(TCPKEEPALIVE, keepaliveinterval, 8);
    SIZE(WSAFDSET, 520); OFF(WSAFDSET, fd_count, 0); OFF(WSAFDSET, fd_array, 8);
    SIZE(TIMEVAL, 8); OFF(TIMEVAL, tv_sec, 0); OFF(TIMEVAL, tv_usec, 4);
    SIZE(WSASOCKADDR, 16); OFF(WSASOCKADDR, sa_family, 0); OFF(WSASOCKADDR, sa_data, 2);
    SIZE(WSASOCKADDR_IN, 16); OFF(WSASOCKADDR_IN, sin_family, 0); OFF(WSASOCKADDR_IN, sin_port, 2);
    OFF(WSASOCKADDR_IN, sin_addr, 4); OFF(WSASOCKADDR_IN, sin_zero, 8);
    SIZE(WSASOCKADDR_IN6, 28); OFF(WSASOCKADDR_IN6, sin6_family, 0); OFF(WSASOCKADDR_IN6, sin6_port, 2);
    OFF(WSASOCKADDR_IN6, sin6_flowinfo, 4); OFF(WSASOCKADDR_IN6, sin6_addr, 8); OFF(WSASOCKADDR_IN6, sin6_scope_id, 24);
    SIZE(GUID, 16); OFF(GUID, Data1, 0); OFF(GUID, Data2, 4); OFF(GUID, Data3, 6); OFF(GUID, Data4, 8);
    SIZE(WSAPROTOCOLCHAIN, 32); OFF(WSAPROTOCOLCHAIN, ChainLen, 0); OFF(WSAPROTOCOLCHAIN, ChainEntries, 4);
    SIZE(WSAPROTOCOL_INFOW, 628);
    OFF(WSAPROTOCOL_INFOW, dwServiceFlags1, 0); OFF(WSAPROTOCOL_INFOW, dwServiceFlags2, 4);
    OFF(WSAPROTOCOL_INFOW, dwServiceFlags3, 8); OFF(WSAPROTOCOL_INFOW, dwServiceFlags4, 12);
    OFF(WSAPROTOCOL_INFOW, dwProviderFlags, 16); OFF(WSAPROTOCOL_INFOW, ProviderId, 20);
    OFF(WSAPROTOCOL_INFOW, dwCatalogEntryId, 36); OFF(WSAPROTOCOL_INFOW, ProtocolChain, 40);
    OFF(WSAPROTOCOL_INFOW, iVersion, 72); OFF(WSAPROTOCOL_INFOW, iAddressFamily, 76);
    OFF(WSAPROTOCOL_INFOW, iMaxSockAddr, 80); OFF(WSAPROTOCOL_INFOW, iMinSockAddr, 84);
    OFF(WSAPROTOCOL_INFOW, iSocketType, 88); OFF(WSAPROTOCOL_INFOW, iProtocol, 92);
    OFF(WSAPROTOCOL_INFOW, iProtocolMaxOffset, 96); OFF(WSAPROTOCOL_INFOW, iNetworkByteOrder, 100);
    OFF(WSAPROTOCOL_INFOW, iSecurityScheme, 104); OFF(WSAPROTOCOL_INFOW, dwMessageSize, 108);
    OFF(WSAPROTOCOL_INFOW, dwProviderReserved, 112); OFF(WSAPROTOCOL_INFOW, szProtocol, 116);
    SIZE(WSPDATA, 516); OFF(WSPDATA, wVersion, 0); OFF(WSPDATA, wHighVersion, 2); OFF(WSPDATA, szDescription, 4);
    SIZE(WSPPROC_TABLE, 240);
    OFF(WSPPROC_TABLE, lpWSPAccept, 0); OFF(WSPPROC_TABLE, lpWSPAddressToString, 8);
    OFF(WSPPROC_TABLE, lpWSPAsyncSelect, 16); OFF(WSPPROC_TABLE, lpWSPBind, 24);
    OFF(WSPPROC_TABLE, lpWSPCancelBlockingCall, 32); OFF(WSPPROC_TABLE, lpWSPCleanup, 40);
    OFF(WSPPROC_TABLE, lpWSPCloseSocket, 48); OFF(WSPPROC_TABLE, lpWSPConnect, 56);
    OFF(WSPPROC_TABLE, lpWSPDuplicateSocket, 64); OFF(WSPPROC_TABLE, lpWSPEnumNetworkEvents, 72);
    OFF(WSPPROC_TABLE, lpWSPEventSelect, 80); OFF(WSPPROC_TABLE, lpWSPGetOverlappedResult, 88);
    OFF(WSPPROC_TABLE, lpWSPGetPeerName, 96); OFF(WSPPROC_TABLE, lpWSPGetSockName, 104);
    OFF(WSPPROC_TABLE, lpWSPGetSockOpt, 112); OFF(WSPPROC_TABLE, lpWSPGetQOSByName, 120);
    OFF(WSPPROC_TABLE, lpWSPIoctl, 128); OFF(WSPPROC_TABLE, lpWSPJoinLeaf, 136);
    OFF(WSPPROC_TABLE, lpWSPListen, 144); OFF(WSPPROC_TABLE, lpWSPRecv, 152);
    OFF(WSPPROC_TABLE, lpWSPRecvDisconnect, 160); OFF(WSPPROC_TABLE, lpWSPRecvFrom, 168);
    OFF(WSPPROC_TABLE, lpWSPSelect, 176); OFF(WSPPROC_TABLE, lpWSPSend, 184);
    OFF(WSPPROC_TABLE, lpWSPSendDisconnect, 192); OFF(WSPPROC_TABLE, lpWSPSendTo, 200);
    OFF(WSPPROC_TABLE, lpWSPSetSockOpt, 208); OFF(WSPPROC_TABLE, lpWSPShutdown, 216);
    OFF(WSPPROC_TABLE, lpWSPSocket, 224); OFF(WSPPROC_TABLE, lpWSPStringToAddress, 232);
    SIZE(WSPUPCALLTABLE, 120);
    OFF(WSPUPCALLTABLE, lpWPUCloseEvent, 0); OFF(WSPUPCALLTABLE, lpWPUCloseSocketHandle, 8);
    OFF(WSPUPCALLTABLE, lpWPUCreateEvent, 16); OFF(WSPUPCALLTABLE, lpWPUCreateSocketHandle, 24);
    OFF(WSPUPCALLTABLE, lpWPUFDIsSet, 32); OFF(WSPUPCALLTABLE, lpWPUGetProviderPath, 40);
    OFF(WSPUPCALLTABLE, lpWPUModifyIFSHandle, 48); OFF(WSPUPCALLTABLE, lpWPUPostMessage, 56);
    OFF(WSPUPCALLTABLE, lpWPUQueryBlockingCallback, 64); OFF(WSPUPCALLTABLE, lpWPUQuerySocketHandleContext, 72);
    OFF(WSPUPCALLTABLE, lpWPUQueueApc, 80); OFF(WSPUPCALLTABLE, lpWPUResetEvent, 88);
    OFF(WSPUPCALLTABLE, lpWPUSetEvent, 96); OFF(WSPUPCALLTABLE, lpWPUOpenCurrentThread, 104);
    OFF(WSPUPCALLTABLE, lpWPUCloseThread, 112);
    return bad;
}
