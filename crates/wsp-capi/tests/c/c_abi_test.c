/* The provider driven from C through its proc table only (crates/wsp-capi/tests/c_abi.rs builds and
 * runs this). Modes:
 *   c_abi_test layout            sizes and offsets of every shape
 *   c_abi_test mem               everything over the in-memory loopback network
 *   c_abi_test startup           WSPStartup only (the caller sets a bad environment)
 *   c_abi_test tap KERNEL_IP P   linger rows against a kernel peer on ports P+3.. (over a TAP)
 */
#define _POSIX_C_SOURCE 200809L
#include "layout.h"
#include "ws2.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static WSPPROC_TABLE P;
static int failures;

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); failures++; exit(1); } } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static WSAPROTOCOL_INFOW tcp_info(void) {
    WSAPROTOCOL_INFOW info;
    memset(&info, 0, sizeof info);
    info.iAddressFamily = WSA_AF_INET;
    info.iSocketType = SOCK_STREAM_WIN;
    info.iProtocol = IPPROTO_TCP_WIN;
    info.dwCatalogEntryId = 1001;
    return info;
}

static int startup_with(WSPUPCALLTABLE up) {
    WSPDATA data;
    WSAPROTOCOL_INFOW info = tcp_info();
    int rc = WSPStartup(WSP_VERSION_2_2, &data, &info, up, &P);
    if (rc == 0) {
        CHECK(data.wVersion == 0x0202);
        CHECK(info.dwServiceFlags1 != 0);
    }
    return rc;
}

static WSASOCKADDR_IN addr4(const char *ip, uint16_t port) {
    WSASOCKADDR_IN a;
    memset(&a, 0, sizeof a);
    a.sin_family = WSA_AF_INET;
    a.sin_port = htons(port);
    CHECK(inet_pton(AF_INET, ip, a.sin_addr) == 1);
    return a;
}

static SOCKET new_socket(void) {
    int32_t err = 0;
    SOCKET s = P.lpWSPSocket(WSA_AF_INET, SOCK_STREAM_WIN, IPPROTO_TCP_WIN, NULL, 0, WSA_FLAG_OVERLAPPED, &err);
    CHECK(s != INVALID_SOCKET);
    return s;
}

static SOCKET listener(const char *ip, uint16_t port, int rcvbuf) {
    int32_t err = 0;
    SOCKET l = new_socket();
    WSASOCKADDR_IN a = addr4(ip, port);
    if (rcvbuf) CHECK(P.lpWSPSetSockOpt(l, SOL_SOCKET_WIN, SO_RCVBUF_WIN, (const char *)&rcvbuf, 4, &err) == 0);
    CHECK(P.lpWSPBind(l, (const WSASOCKADDR *)&a, sizeof a, &err) == 0);
    CHECK(P.lpWSPListen(l, 8, &err) == 0);
    return l;
}

static SOCKET connect_to(const char *ip, uint16_t port) {
    int32_t err = 0;
    SOCKET c = new_socket();
    WSASOCKADDR_IN a = addr4(ip, port);
    if (P.lpWSPConnect(c, (const WSASOCKADDR *)&a, sizeof a, NULL, NULL, NULL, NULL, &err) != 0) {
        fprintf(stderr, "connect %s:%u: error %d\n", ip, port, err);
        CHECK(0);
    }
    return c;
}

static SOCKET accept_one(SOCKET l) {
    int32_t err = 0, len = sizeof(WSASOCKADDR_IN);
    WSASOCKADDR_IN peer;
    SOCKET a = P.lpWSPAccept(l, (WSASOCKADDR *)&peer, &len, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK(len == 16 && peer.sin_family == WSA_AF_INET);
    return a;
}

static int send_all(SOCKET s, const char *buf, size_t len, int32_t *err) {
    WSABUF b = {(ULONG)len, (char *)buf};
    DWORD n = 0;
    int rc = P.lpWSPSend(s, &b, 1, &n, 0, NULL, NULL, NULL, err);
    if (rc == 0) CHECK(n == len);
    return rc;
}

/* recv; returns bytes, 0 at end of stream, -1 with *err on failure. */
static long recv_some(SOCKET s, char *buf, size_t len, int32_t *err) {
    WSABUF b = {(ULONG)len, buf};
    DWORD n = 0, flags = 0;
    if (P.lpWSPRecv(s, &b, 1, &n, &flags, NULL, NULL, NULL, err) != 0) return -1;
    return (long)n;
}

/* Read until end of stream or error; returns bytes, *err = 0 or the error. */
static long drain(SOCKET s, int32_t *err) {
    static char buf[65536];
    long total = 0, n;
    *err = 0;
    while ((n = recv_some(s, buf, sizeof buf, err)) > 0) total += n;
    if (n == 0) *err = 0;
    return total;
}

static void set_linger(SOCKET s, uint16_t onoff, uint16_t secs) {
    int32_t err = 0;
    LINGER l = {onoff, secs};
    CHECK(P.lpWSPSetSockOpt(s, SOL_SOCKET_WIN, SO_LINGER_WIN, (const char *)&l, sizeof l, &err) == 0);
}

static void set_nonblocking(SOCKET s, uint32_t on) {
    int32_t err = 0;
    DWORD ret = 0;
    CHECK(P.lpWSPIoctl(s, FIONBIO_WIN, &on, 4, NULL, 0, &ret, NULL, NULL, NULL, &err) == 0);
}

static char *pattern(size_t len) {
    char *p = (char *)malloc(len);
    size_t i;
    for (i = 0; i < len; i++) p[i] = (char)(i % 251);
    return p;
}

/* ---- In-memory rows ---- */

static const char *ME = "127.0.0.1";

static void pair(SOCKET l, uint16_t port, SOCKET *c, SOCKET *a) {
    *c = connect_to(ME, port);
    *a = accept_one(l);
}

static void spi_surface(void) {
    int32_t err = 0;
    WSASOCKADDR_IN a = addr4(ME, 1);
    SOCKET s = new_socket();
    int32_t len = 2;
    char opt[8];
    DWORD flags = 0, n = 0;
    WSABUF b = {4, opt};
    /* every entry is a real function */
    void **slots = (void **)&P;
    unsigned i;
    for (i = 0; i < sizeof P / sizeof(void *); i++) CHECK(slots[i] != NULL);
    CHECK(P.lpWSPCancelBlockingCall(&err) == SOCKET_ERROR && err == WSAEINVAL);
    CHECK(P.lpWSPJoinLeaf(s, (const WSASOCKADDR *)&a, sizeof a, NULL, NULL, NULL, NULL, 0, &err) == INVALID_SOCKET && err == WSAEOPNOTSUPP);
    CHECK(P.lpWSPGetQOSByName(s, NULL, NULL, &err) == FALSE && err == WSAEOPNOTSUPP);
    CHECK(P.lpWSPRecvDisconnect(s, NULL, &err) == SOCKET_ERROR && err == WSAEOPNOTSUPP);
    CHECK(P.lpWSPSendDisconnect(s, NULL, &err) == SOCKET_ERROR && err == WSAEOPNOTSUPP);
    /* C01 */
    CHECK(P.lpWSPCloseSocket((SOCKET)0x4242, &err) == SOCKET_ERROR && err == WSAENOTSOCK);
    CHECK(P.lpWSPCloseSocket(INVALID_SOCKET, &err) == SOCKET_ERROR && err == WSAENOTSOCK);
    /* NULL pointers and short buffers: WSAEFAULT */
    CHECK(P.lpWSPBind(s, NULL, 16, &err) == SOCKET_ERROR && err == WSAEFAULT);
    CHECK(P.lpWSPBind(s, (const WSASOCKADDR *)&a, 8, &err) == SOCKET_ERROR && err == WSAEFAULT);
    CHECK(P.lpWSPGetSockOpt(s, SOL_SOCKET_WIN, SO_LINGER_WIN, opt, NULL, &err) == SOCKET_ERROR && err == WSAEFAULT);
    CHECK(P.lpWSPGetSockOpt(s, SOL_SOCKET_WIN, SO_LINGER_WIN, opt, &len, &err) == SOCKET_ERROR && err == WSAEFAULT);
    CHECK(P.lpWSPSetSockOpt(s, SOL_SOCKET_WIN, SO_LINGER_WIN, opt, 2, &err) == SOCKET_ERROR && err == WSAEFAULT);
    CHECK(P.lpWSPSetSockOpt(s, SOL_SOCKET_WIN, SO_LINGER_WIN, NULL, 4, &err) == SOCKET_ERROR && err == WSAEFAULT);
    CHECK(P.lpWSPRecv(s, &b, 1, &n, NULL, NULL, NULL, NULL, &err) == SOCKET_ERROR && err == WSAEFAULT);
    CHECK(P.lpWSPRecv(s, NULL, 1, &n, &flags, NULL, NULL, NULL, &err) == SOCKET_ERROR && err == WSAEFAULT);
    CHECK(P.lpWSPDuplicateSocket(s, 1, NULL, &err) == SOCKET_ERROR && err == WSAEFAULT);
    CHECK(P.lpWSPEnumNetworkEvents(s, NULL, NULL, &err) == SOCKET_ERROR && err == WSAEFAULT);
    len = 4;
    CHECK(P.lpWSPGetSockName(s, (WSASOCKADDR *)&a, &len, &err) == SOCKET_ERROR);
    /* a NULL lpErrno does not crash */
    CHECK(P.lpWSPCloseSocket((SOCKET)0x4242, NULL) == SOCKET_ERROR);
    CHECK(P.lpWSPCloseSocket(s, &err) == 0);
    printf("ok spi surface\n");
}

static void addresses(SOCKET l) {
    int32_t err = 0, len = sizeof(WSASOCKADDR_IN);
    WSASOCKADDR_IN name;
    WCHAR text[64];
    DWORD tlen = 64;
    WCHAR in[] = {'1', '2', '7', '.', '0', '.', '0', '.', '1', ':', '8', '0', 0};
    CHECK(P.lpWSPGetSockName(l, (WSASOCKADDR *)&name, &len, &err) == 0);
    CHECK(len == 16 && name.sin_family == WSA_AF_INET && ntohs(name.sin_port) == 7000);
    CHECK(P.lpWSPAddressToString((WSASOCKADDR *)&name, 16, NULL, text, &tlen, &err) == 0);
    CHECK(tlen == 15 && text[0] == '1' && text[9] == ':' && text[14] == 0); /* 127.0.0.1:7000 */
    tlen = 3;
    CHECK(P.lpWSPAddressToString((WSASOCKADDR *)&name, 16, NULL, text, &tlen, &err) == SOCKET_ERROR && err == WSAEFAULT && tlen == 15);
    len = sizeof name;
    CHECK(P.lpWSPStringToAddress(in, WSA_AF_INET, NULL, (WSASOCKADDR *)&name, &len, &err) == 0);
    CHECK(ntohs(name.sin_port) == 80 && name.sin_addr[0] == 127 && name.sin_addr[3] == 1);
    printf("ok addresses\n");
}

static void echo(SOCKET l) {
    int32_t err = 0;
    SOCKET c, a;
    char buf[16];
    int32_t len = sizeof(WSASOCKADDR_IN);
    WSASOCKADDR_IN peer;
    pair(l, 7000, &c, &a);
    CHECK(send_all(c, "hello", 5, &err) == 0);
    CHECK(recv_some(a, buf, sizeof buf, &err) == 5 && memcmp(buf, "hello", 5) == 0);
    CHECK(send_all(a, "world", 5, &err) == 0);
    CHECK(recv_some(c, buf, sizeof buf, &err) == 5 && memcmp(buf, "world", 5) == 0);
    CHECK(P.lpWSPGetPeerName(a, (WSASOCKADDR *)&peer, &len, &err) == 0 && peer.sin_addr[0] == 127);
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(recv_some(a, buf, sizeof buf, &err) == 0);
    CHECK(P.lpWSPCloseSocket(a, &err) == 0);
    printf("ok echo\n");
}

/* C03 default linger; C04 {1,0}; C05 {1,N} blocking, peer reading. */
static void linger_modes(SOCKET l) {
    int32_t err = 0;
    SOCKET c, a;
    size_t len = 100000;
    char *data = pattern(len);
    long got;
    double t;

    pair(l, 7000, &c, &a);
    CHECK(send_all(c, data, len, &err) == 0);
    t = now_s();
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(now_s() - t < 1.0);
    got = drain(a, &err);
    CHECK(got == (long)len && err == 0);
    CHECK(P.lpWSPCloseSocket(a, &err) == 0);
    printf("ok c03 default linger: %ld bytes then end of stream\n", got);

    pair(l, 7000, &c, &a);
    set_linger(c, 1, 0);
    CHECK(send_all(c, data, len, &err) == 0);
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    got = drain(a, &err);
    CHECK(err == WSAECONNRESET);
    CHECK(P.lpWSPCloseSocket(a, &err) == 0);
    printf("ok c04 linger {1,0}: reset after %ld bytes\n", got);

    pair(l, 7000, &c, &a);
    set_linger(c, 1, 5);
    CHECK(send_all(c, data, 1000, &err) == 0);
    t = now_s();
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(now_s() - t < 2.0);
    got = drain(a, &err);
    CHECK(got == 1000 && err == 0);
    CHECK(P.lpWSPCloseSocket(a, &err) == 0);
    printf("ok c05 linger {1,5} blocking: closed in %.3f s\n", now_s() - t);
    free(data);
}

/* C07 then C08: non-blocking lingering close with unacknowledged data, retried. */
static void c07(void) {
    int32_t err = 0, optlen = 4;
    SOCKET l = listener(ME, 7001, 4096), c, a;
    size_t len = 64 * 1024;
    char *data = pattern(len);
    static char buf[8192];
    int wouldblock = 0;
    long got = 0, n;
    LINGER lg;
    pair(l, 7001, &c, &a);
    CHECK(send_all(c, data, len, &err) == 0);
    set_nonblocking(c, 1);
    set_linger(c, 1, 10);
    sleep_ms(200);
    for (;;) {
        int rc = P.lpWSPCloseSocket(c, &err);
        if (rc == 0) break;
        CHECK(err == WSAEWOULDBLOCK);
        wouldblock++;
        if (wouldblock == 1) {
            /* the descriptor stays valid */
            CHECK(P.lpWSPGetSockOpt(c, SOL_SOCKET_WIN, SO_LINGER_WIN, (char *)&lg, &optlen, &err) == 0 && lg.l_onoff == 1);
            CHECK(send_all(c, "!", 1, &err) == 0);
            len += 1;
        }
        if (got < (long)len) {
            n = recv_some(a, buf, sizeof buf, &err);
            CHECK(n > 0);
            got += n;
        } else {
            sleep_ms(10); /* every byte read: its acknowledgment is on the way */
        }
        CHECK(wouldblock < 10000);
    }
    CHECK(wouldblock >= 1);
    n = drain(a, &err);
    CHECK(err == 0);
    got += n;
    CHECK(got == (long)len);
    CHECK(P.lpWSPCloseSocket(a, &err) == 0);
    CHECK(P.lpWSPCloseSocket(l, &err) == 0);
    free(data);
    printf("ok c07 WSAEWOULDBLOCK %d times, then c08 closed; peer read %ld bytes and end of stream\n", wouldblock, got);
}

/* C17: a pending overlapped recv aborted by close, through event, routine and hook. */
static LPWSAOVERLAPPED routine_ov;
static DWORD routine_err = 1, routine_bytes = 99;
static int routine_runs;
static void WSPAPI routine(DWORD error, DWORD bytes, LPWSAOVERLAPPED ov, DWORD flags) {
    (void)flags;
    routine_ov = ov;
    routine_err = error;
    routine_bytes = bytes;
    routine_runs++;
}

static void overlapped(SOCKET l) {
    int32_t err = 0;
    SOCKET c, a;
    char buf[64];
    WSABUF b = {sizeof buf, buf};
    DWORD flags = 0, n = 0;
    WSAOVERLAPPED ov;
    WSAEVENT ev = ev_create();
    WSATHREADID me = ws2_thread();
    Packet pk;

    /* success through the event, and WSPGetOverlappedResult */
    pair(l, 7000, &c, &a);
    memset(&ov, 0, sizeof ov);
    ov.hEvent = ev;
    CHECK(P.lpWSPRecv(c, &b, 1, NULL, &flags, &ov, NULL, NULL, &err) == SOCKET_ERROR && err == WSA_IO_PENDING);
    CHECK(ov.Internal == WSA_IO_PENDING);
    CHECK(P.lpWSPGetOverlappedResult(c, &ov, &n, FALSE, &flags, &err) == FALSE && err == WSA_IO_INCOMPLETE);
    CHECK(send_all(a, "xyz", 3, &err) == 0);
    CHECK(ev_wait(ev, 5000));
    CHECK(ov.Internal == 0 && ov.InternalHigh == 3 && memcmp(buf, "xyz", 3) == 0);
    CHECK(P.lpWSPGetOverlappedResult(c, &ov, &n, TRUE, &flags, &err) == TRUE && n == 3);

    /* aborted by close: event */
    memset(&ov, 0, sizeof ov);
    ov.hEvent = ev;
    CHECK(P.lpWSPRecv(c, &b, 1, NULL, &flags, &ov, NULL, NULL, &err) == SOCKET_ERROR && err == WSA_IO_PENDING);
    CHECK(!ev_is_set(ev));
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(ev_wait(ev, 5000));
    CHECK(ov.Internal == WSA_OPERATION_ABORTED && ov.InternalHigh == 0);
    CHECK(P.lpWSPCloseSocket(a, &err) == 0);
    printf("ok c17 event: 995\n");

    /* aborted by close: completion routine, queued with WPUQueueApc on this thread */
    pair(l, 7000, &c, &a);
    memset(&ov, 0, sizeof ov);
    CHECK(P.lpWSPRecv(c, &b, 1, NULL, &flags, &ov, routine, &me, &err) == SOCKET_ERROR && err == WSA_IO_PENDING);
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(apc_wait(5000) == 1);
    CHECK(routine_runs == 1 && routine_err == WSA_OPERATION_ABORTED && routine_bytes == 0 && routine_ov == &ov);
    CHECK(ov.Internal == WSA_OPERATION_ABORTED);
    CHECK(apc_wait(200) == 0); /* exactly once */
    CHECK(P.lpWSPCloseSocket(a, &err) == 0);
    printf("ok c17 routine: 995\n");

    /* aborted by close: the completion hook (a completion port) */
    port_install();
    pair(l, 7000, &c, &a);
    memset(&ov, 0, sizeof ov);
    CHECK(P.lpWSPRecv(c, &b, 1, NULL, &flags, &ov, NULL, NULL, &err) == SOCKET_ERROR && err == WSA_IO_PENDING);
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(port_get(&pk, 5000));
    CHECK(pk.s == c && pk.ov == &ov && pk.error == WSA_OPERATION_ABORTED && pk.bytes == 0);
    CHECK(ov.Internal == WSA_OPERATION_ABORTED);
    CHECK(!port_get(&pk, 200));
    CHECK(P.lpWSPCloseSocket(a, &err) == 0);
    LingerstackSetCompletionHook(NULL);
    printf("ok c17 hook: 995\n");
    ev_close(ev);
}

/* C18: no event after close; enumerate then fails. Async select messages. */
static void events(SOCKET l) {
    int32_t err = 0;
    SOCKET c, a;
    char buf[8];
    WSAEVENT ev = ev_create();
    WSANETWORKEVENTS ne;
    Msg m;
    HWND wnd = (HWND)(uintptr_t)0x77;

    pair(l, 7000, &c, &a);
    CHECK(P.lpWSPEventSelect(c, ev, FD_READ | FD_CLOSE, &err) == 0);
    CHECK(send_all(a, "x", 1, &err) == 0);
    CHECK(ev_wait(ev, 5000));
    CHECK(P.lpWSPEnumNetworkEvents(c, ev, &ne, &err) == 0 && ne.lNetworkEvents == FD_READ);
    CHECK(!ev_is_set(ev));
    CHECK(recv_some(c, buf, sizeof buf, &err) == 1);
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(P.lpWSPCloseSocket(a, &err) == 0); /* the peer's FIN reaches a closed socket */
    sleep_ms(300);
    CHECK(!ev_is_set(ev));
    CHECK(P.lpWSPEnumNetworkEvents(c, ev, &ne, &err) == SOCKET_ERROR && err == WSAENOTSOCK);
    printf("ok c18 event select: no FD_CLOSE after close\n");

    pair(l, 7000, &c, &a);
    CHECK(P.lpWSPAsyncSelect(c, wnd, 0x401, FD_READ | FD_CLOSE, &err) == 0);
    CHECK(send_all(a, "y", 1, &err) == 0);
    CHECK(msg_get(&m, 5000));
    CHECK(m.hwnd == wnd && m.msg == 0x401 && m.wparam == c && WSAGETSELECTEVENT(m.lparam) == FD_READ && WSAGETSELECTERROR(m.lparam) == 0);
    CHECK(recv_some(c, buf, sizeof buf, &err) == 1);
    CHECK(P.lpWSPCloseSocket(a, &err) == 0);
    CHECK(msg_get(&m, 5000));
    CHECK(m.wparam == c && WSAGETSELECTEVENT(m.lparam) == FD_CLOSE && WSAGETSELECTERROR(m.lparam) == 0);
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(!msg_get(&m, 300));
    printf("ok p01 async select: FD_READ, FD_CLOSE, nothing after close\n");
    ev_close(ev);
}

/* C19: duplicated descriptors are references. */
static void duplicate(SOCKET l) {
    int32_t err = 0;
    SOCKET c, a, d;
    char buf[8];
    WSAPROTOCOL_INFOW info;
    int live = ws2_live_handles();
    pair(l, 7000, &c, &a);
    CHECK(ws2_live_handles() == live + 2);
    CHECK(P.lpWSPDuplicateSocket(c, (DWORD)getpid(), &info, &err) == 0 && info.dwProviderReserved != 0);
    d = P.lpWSPSocket(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0, WSA_FLAG_OVERLAPPED, &err);
    CHECK(d != INVALID_SOCKET && d != c);
    CHECK(ws2_live_handles() == live + 3);
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(send_all(d, "dup", 3, &err) == 0);
    CHECK(recv_some(a, buf, sizeof buf, &err) == 3);
    CHECK(send_all(c, "x", 1, &err) == SOCKET_ERROR && err == WSAENOTSOCK);
    CHECK(P.lpWSPCloseSocket(d, &err) == 0);
    CHECK(recv_some(a, buf, sizeof buf, &err) == 0); /* FIN only on the last close */
    CHECK(P.lpWSPCloseSocket(a, &err) == 0);
    CHECK(ws2_live_handles() == live);
    printf("ok c19 duplicate: one reference each\n");
}

/* C02: every call on a closed descriptor. */
static void closed(SOCKET l) {
    int32_t err = 0, len = 4;
    SOCKET c, a;
    char buf[8];
    DWORD arg = 1, ret;
    pair(l, 7000, &c, &a);
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(P.lpWSPCloseSocket(c, &err) == SOCKET_ERROR && err == WSAENOTSOCK);
    CHECK(send_all(c, "x", 1, &err) == SOCKET_ERROR && err == WSAENOTSOCK);
    CHECK(recv_some(c, buf, 8, &err) == -1 && err == WSAENOTSOCK);
    CHECK(P.lpWSPSetSockOpt(c, SOL_SOCKET_WIN, SO_LINGER_WIN, buf, 4, &err) == SOCKET_ERROR && err == WSAENOTSOCK);
    CHECK(P.lpWSPGetSockOpt(c, SOL_SOCKET_WIN, SO_LINGER_WIN, buf, &len, &err) == SOCKET_ERROR && err == WSAENOTSOCK);
    CHECK(P.lpWSPIoctl(c, FIONBIO_WIN, &arg, 4, NULL, 0, &ret, NULL, NULL, NULL, &err) == SOCKET_ERROR && err == WSAENOTSOCK);
    CHECK(P.lpWSPShutdown(c, SD_BOTH, &err) == SOCKET_ERROR && err == WSAENOTSOCK);
    CHECK(P.lpWSPCloseSocket(a, &err) == 0);
    printf("ok c02 closed descriptor: WSAENOTSOCK everywhere\n");
}

/* SO_KEEPALIVE and SIO_KEEPALIVE_VALS: bad buffers, get and set, inheritance by accept. */
static int keepalive_on(SOCKET s) {
    int32_t err = 0, on = -1, len = 4;
    CHECK(P.lpWSPGetSockOpt(s, SOL_SOCKET_WIN, SO_KEEPALIVE_WIN, (char *)&on, &len, &err) == 0);
    CHECK(len == 4);
    return on;
}

static int keepalive_vals(SOCKET s, const void *in, DWORD len, int32_t *err) {
    DWORD ret = 99;
    return P.lpWSPIoctl(s, SIO_KEEPALIVE_VALS_WIN, (void *)in, len, NULL, 0, &ret, NULL, NULL, NULL, err);
}

static void keepalive(void) {
    int32_t err = 0, on = 1;
    TCPKEEPALIVE vals = {1, 1000, 250}, zero = {1, 0, 250}, off = {0, 0, 0};
    SOCKET s = new_socket(), l, c, a;
    CHECK(keepalive_on(s) == 0);
    CHECK(keepalive_vals(s, NULL, sizeof vals, &err) == SOCKET_ERROR && err == WSAEFAULT);
    CHECK(keepalive_vals(s, &vals, 8, &err) == SOCKET_ERROR && err == WSAEFAULT);
    CHECK(keepalive_vals(s, &zero, sizeof zero, &err) == SOCKET_ERROR && err == WSAEINVAL);
    CHECK(keepalive_vals((SOCKET)0x4242, &vals, sizeof vals, &err) == SOCKET_ERROR && err == WSAENOTSOCK);
    CHECK(keepalive_on(s) == 0);
    CHECK(keepalive_vals(s, &vals, sizeof vals, &err) == 0);
    CHECK(keepalive_on(s) == 1);
    CHECK(keepalive_vals(s, &off, sizeof off, &err) == 0);
    CHECK(keepalive_on(s) == 0);
    CHECK(P.lpWSPSetSockOpt(s, SOL_SOCKET_WIN, SO_KEEPALIVE_WIN, (const char *)&on, 4, &err) == 0);
    CHECK(keepalive_on(s) == 1);
    CHECK(P.lpWSPSetSockOpt(s, SOL_SOCKET_WIN, SO_KEEPALIVE_WIN, NULL, 4, &err) == SOCKET_ERROR && err == WSAEFAULT);
    CHECK(P.lpWSPCloseSocket(s, &err) == 0);
    /* a listener's keep-alive goes to the connections it accepts */
    l = listener(ME, 7100, 0);
    CHECK(keepalive_vals(l, &vals, sizeof vals, &err) == 0);
    pair(l, 7100, &c, &a);
    CHECK(keepalive_on(a) == 1);
    CHECK(keepalive_on(c) == 0);
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(P.lpWSPCloseSocket(a, &err) == 0);
    CHECK(P.lpWSPCloseSocket(l, &err) == 0);
    printf("ok keep-alive: SO_KEEPALIVE, SIO_KEEPALIVE_VALS, inherited by accept\n");
}

static void selecting(SOCKET l) {
    int32_t err = 0;
    SOCKET c, a;
    WSAFDSET rd, wr;
    TIMEVAL tv = {2, 0};
    char buf[8];
    pair(l, 7000, &c, &a);
    memset(&rd, 0, sizeof rd);
    memset(&wr, 0, sizeof wr);
    rd.fd_count = 1;
    rd.fd_array[0] = c;
    tv.tv_sec = 0;
    tv.tv_usec = 100000;
    CHECK(P.lpWSPSelect(0, &rd, NULL, NULL, &tv, &err) == 0 && rd.fd_count == 0);
    CHECK(send_all(a, "s", 1, &err) == 0);
    rd.fd_count = 1;
    rd.fd_array[0] = c;
    tv.tv_sec = 2;
    CHECK(P.lpWSPSelect(0, &rd, NULL, NULL, &tv, &err) == 1 && rd.fd_count == 1 && rd.fd_array[0] == c);
    wr.fd_count = 1;
    wr.fd_array[0] = c;
    CHECK(P.lpWSPSelect(0, NULL, &wr, NULL, &tv, &err) == 1 && wr.fd_count == 1);
    CHECK(recv_some(c, buf, 8, &err) == 1);
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(P.lpWSPCloseSocket(a, &err) == 0);
    printf("ok select\n");
}

static int mem(void) {
    int32_t err = 0;
    SOCKET l, old;
    WSPUPCALLTABLE up = ws2_upcalls(), bare;
    WSPDATA data;
    WSAPROTOCOL_INFOW info = tcp_info();

    CHECK(WSPStartup(0x0101, &data, &info, up, &P) == WSAVERNOTSUPPORTED);
    CHECK(WSPStartup(WSP_VERSION_2_2, NULL, &info, up, &P) == WSAEFAULT);
    CHECK(startup_with(up) == 0);
    spi_surface();
    l = listener(ME, 7000, 0);
    addresses(l);
    echo(l);
    linger_modes(l);
    c07();
    overlapped(l);
    events(l);
    duplicate(l);
    closed(l);
    selecting(l);
    keepalive();
    /* nesting: a second startup needs a second cleanup */
    CHECK(startup_with(up) == 0);
    CHECK(P.lpWSPCleanup(&err) == 0);
    CHECK(P.lpWSPCloseSocket(l, &err) == 0);
    old = new_socket();
    CHECK(P.lpWSPCleanup(&err) == 0);
    CHECK(ws2_live_handles() == 0);
    printf("ok c23 cleanup: every handle returned (%d created)\n", ws2_created_handles());
    CHECK(P.lpWSPSocket(WSA_AF_INET, SOCK_STREAM_WIN, 0, NULL, 0, 0, &err) == INVALID_SOCKET && err == WSANOTINITIALISED);
    CHECK(P.lpWSPCleanup(&err) == SOCKET_ERROR && err == WSANOTINITIALISED);

    /* a run that numbers its own descriptors: a descriptor of another run is not a socket */
    memset(&bare, 0, sizeof bare);
    CHECK(startup_with(bare) == 0);
    CHECK(P.lpWSPCloseSocket(old, &err) == SOCKET_ERROR && err == WSAENOTSOCK);
    old = new_socket();
    CHECK(old != 0 && old != INVALID_SOCKET);
    CHECK(P.lpWSPCleanup(&err) == 0);
    CHECK(startup_with(bare) == 0);
    CHECK(P.lpWSPCloseSocket(old, &err) == SOCKET_ERROR && err == WSAENOTSOCK);
    /* a call needing an upcall the client left NULL: WSAEINVAL */
    old = new_socket();
    CHECK(P.lpWSPEventSelect(old, (WSAEVENT)&err, FD_READ, &err) == SOCKET_ERROR && err == WSAEINVAL);
    CHECK(P.lpWSPCleanup(&err) == 0);
    printf("ok other run: WSAENOTSOCK\n");
    printf("PASS mem\n");
    return 0;
}

/* ---- TAP rows against a kernel peer ---- */
static int tap(const char *kernel, int base) {
    int32_t err = 0;
    SOCKET c;
    char line[64];
    size_t big = 200 * 1024; /* fits the 256 KiB send buffer: a blocking send returns at once */
    char *data = pattern(big);
    double t;
    int wouldblock = 0;

    CHECK(startup_with(ws2_upcalls()) == 0);
    printf("READY\n");
    fflush(stdout);
    CHECK(fgets(line, sizeof line, stdin) != NULL);

    /* C03: default linger, 100 KB queued: 0 at once; data then FIN */
    c = connect_to(kernel, (uint16_t)(base + 3));
    CHECK(send_all(c, data, 100000, &err) == 0);
    t = now_s();
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(now_s() - t < 0.5);
    printf("ok c03 closed in %.3f s\n", now_s() - t);

    /* C04: {1,0} with data queued behind a shut window: RST */
    c = connect_to(kernel, (uint16_t)(base + 4));
    CHECK(send_all(c, data, big, &err) == 0);
    sleep_ms(300);
    set_linger(c, 1, 0);
    t = now_s();
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(now_s() - t < 0.5);
    printf("ok c04 closed in %.3f s\n", now_s() - t);

    /* C05: {1,5} blocking, the kernel reads: 0 well before 5 s */
    c = connect_to(kernel, (uint16_t)(base + 5));
    set_linger(c, 1, 5);
    CHECK(send_all(c, data, 100000, &err) == 0);
    t = now_s();
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    CHECK(now_s() - t < 3.0);
    printf("ok c05 closed in %.3f s\n", now_s() - t);

    /* C06: {1,1} blocking, the kernel does not read: 0 after 1 s, RST */
    c = connect_to(kernel, (uint16_t)(base + 6));
    set_linger(c, 1, 1);
    CHECK(send_all(c, data, big, &err) == 0);
    t = now_s();
    CHECK(P.lpWSPCloseSocket(c, &err) == 0);
    t = now_s() - t;
    CHECK(t >= 1.0 && t < 1.5);
    printf("ok c06 closed in %.3f s\n", t);

    /* C07: {1,10} non-blocking, the kernel reads only after 2 s: WSAEWOULDBLOCK, retried until
     * every byte is acknowledged (C08), then FIN */
    c = connect_to(kernel, (uint16_t)(base + 7));
    CHECK(send_all(c, data, big, &err) == 0);
    set_nonblocking(c, 1);
    set_linger(c, 1, 10);
    t = now_s();
    for (;;) {
        if (P.lpWSPCloseSocket(c, &err) == 0) break;
        CHECK(err == WSAEWOULDBLOCK);
        wouldblock++;
        CHECK(now_s() - t < 20.0);
        sleep_ms(50);
    }
    CHECK(wouldblock >= 10);
    printf("ok c07 WSAEWOULDBLOCK %d times over %.3f s, then 0\n", wouldblock, now_s() - t);
    CHECK(P.lpWSPCleanup(&err) == 0);
    free(data);
    printf("PASS tap\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "layout") == 0) {
        int bad = check_layout();
        printf(bad ? "FAIL layout\n" : "PASS layout\n");
        return bad ? 1 : 0;
    }
    if (argc >= 2 && strcmp(argv[1], "mem") == 0) return mem();
    if (argc >= 2 && strcmp(argv[1], "startup") == 0) {
        int rc = startup_with(ws2_upcalls());
        printf("WSPStartup %d\n", rc);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "tap") == 0) return tap(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: %s layout|mem|startup|tap KERNEL_IP BASE_PORT\n", argv[0]);
    return 2;
}
