/* Fuzzing the C ABI (crates/wsp/tests/fuzz_c_abi.rs builds and runs this):
 *   c_abi_fuzz SEED CASES
 * Case i (seed SEED+i) starts the provider through WSPStartup on the in-memory loopback
 * network, makes random calls through the proc table with NULL pointers, short, negative and
 * oversized lengths (never longer than the memory really passed: that would be the caller's
 * fault, not the provider's), bad families, addresses, strings, options, fd_sets, timeouts,
 * overlapped structures and handles, then closes everything and checks: every overlapped
 * operation completed, no socket handle left (WPUCreateSocketHandle vs WPUCloseSocketHandle),
 * WSPCleanup succeeds and every call afterwards fails with WSANOTINITIALISED.
 * Every socket is kept non-blocking, so no call may wait: a hang is a failure (the Rust side
 * bounds the run). Prints "case N seed S" before each case and "PASS fuzz" at the end. */
#define _POSIX_C_SOURCE 200809L
#include "ws2.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static WSPPROC_TABLE P;
static uint64_t rng;

#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); exit(1); } while (0)

static uint64_t next64(void) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int below(int n) { return n > 0 ? (int)(next64() % (uint64_t)n) : 0; }
static int chance(int pct) { return below(100) < pct; }
#define PICK(arr) ((arr)[below((int)(sizeof(arr) / sizeof((arr)[0])))])

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- What a case has made ---- */
#define MAXS 64
#define MAXOPS 64
static SOCKET socks[MAXS];
static int nsocks;
static WSAEVENT events[4];

/* An overlapped operation that went pending: its structure and buffers must stay untouched
 * until it completes, so each has its own slot for the whole case. */
typedef struct Op {
    WSAOVERLAPPED ov;
    WSABUF bufs[2];
    char data[2][512];
} Op;
static Op *ops[MAXOPS];
static int nops;

static int32_t err;
/* The errno pointer: mostly real, sometimes NULL (the provider must not write through it). */
static int32_t *E(void) { return chance(5) ? NULL : &err; }

static SOCKET some_socket(void) {
    static const SOCKET bogus[] = {0, 1, INVALID_SOCKET, 0x12345, (SOCKET)-8};
    if (nsocks == 0 || chance(10)) return PICK(bogus);
    return socks[below(nsocks)];
}

static void keep(SOCKET s) {
    uint32_t one = 1;
    DWORD got;
    if (s == INVALID_SOCKET || nsocks == MAXS) return;
    socks[nsocks++] = s;
    /* Non-blocking, so that no call in the case can wait. */
    P.lpWSPIoctl(s, FIONBIO_WIN, &one, 4, NULL, 0, &got, NULL, NULL, NULL, &err);
}

/* The provider's IPv6 address (LINGERSTACK_ADDR, set by the Rust side): fd00:c::1. */
static void own_v6(uint8_t *addr) {
    memset(addr, 0, 16);
    addr[0] = 0xfd;
    addr[3] = 0x0c;
    addr[15] = 1;
}

/* A sockaddr in `buf` (which is 128 bytes): IPv4 to ourselves, IPv6, random bytes; and a
 * length from -1 to the buffer's size. */
static int32_t address(unsigned char *buf) {
    static const uint16_t ports[] = {0, 5000, 5001, 5002, 65535};
    static const int32_t lens[] = {-1, 0, 8, 15, 16, 16, 16, 27, 28, 128};
    memset(buf, 0, 128);
    switch (below(4)) {
    case 0:
    case 1: {
        WSASOCKADDR_IN *a = (WSASOCKADDR_IN *)buf;
        a->sin_family = WSA_AF_INET;
        a->sin_port = htons(PICK(ports));
        a->sin_addr[0] = (unsigned char)(chance(80) ? 127 : below(256));
        a->sin_addr[3] = (unsigned char)(chance(80) ? 1 : below(256));
        break;
    }
    case 2: {
        WSASOCKADDR_IN6 *a = (WSASOCKADDR_IN6 *)buf;
        a->sin6_family = WSA_AF_INET6;
        a->sin6_port = htons(PICK(ports));
        if (chance(80)) own_v6(a->sin6_addr);
        else a->sin6_addr[15] = 1;
        break;
    }
    default: {
        int i;
        for (i = 0; i < 128; i++) buf[i] = (unsigned char)below(256);
        if (chance(50)) ((WSASOCKADDR *)buf)->sa_family = (uint16_t)PICK(lens);
    }
    }
    return PICK(lens);
}

static void do_socket(void) {
    static const int32_t afs[] = {WSA_AF_INET, WSA_AF_INET, WSA_AF_INET6, 0, 10, FROM_PROTOCOL_INFO};
    static const int32_t types[] = {SOCK_STREAM_WIN, SOCK_STREAM_WIN, 2, 0, FROM_PROTOCOL_INFO};
    static const int32_t protos[] = {0, IPPROTO_TCP_WIN, 17, FROM_PROTOCOL_INFO};
    WSAPROTOCOL_INFOW info;
    unsigned char *raw = (unsigned char *)&info;
    size_t i;
    for (i = 0; i < sizeof info; i++) raw[i] = (unsigned char)below(256);
    if (chance(50)) info.dwProviderReserved = (DWORD)below(40);
    keep(P.lpWSPSocket(PICK(afs), PICK(types), PICK(protos), chance(60) ? NULL : &info,
                       (GROUP)(chance(90) ? 0 : 1), WSA_FLAG_OVERLAPPED, E()));
}

static void do_accept(SOCKET s);

/* A listener on our own address (IPv4 or IPv6) and a connection to it, accepted: real states
 * to call into. */
static void do_pair(void) {
    uint16_t port = (uint16_t)(5000 + below(3));
    unsigned char buf[128];
    int32_t len;
    int v6 = chance(10);
    int32_t af = v6 ? WSA_AF_INET6 : WSA_AF_INET;
    SOCKET l = P.lpWSPSocket(af, SOCK_STREAM_WIN, 0, NULL, 0, WSA_FLAG_OVERLAPPED, &err);
    SOCKET c = P.lpWSPSocket(af, SOCK_STREAM_WIN, 0, NULL, 0, WSA_FLAG_OVERLAPPED, &err);
    keep(l);
    keep(c);
    memset(buf, 0, sizeof buf);
    if (v6) {
        WSASOCKADDR_IN6 *a = (WSASOCKADDR_IN6 *)buf;
        a->sin6_family = WSA_AF_INET6;
        a->sin6_port = htons(port);
        own_v6(a->sin6_addr);
        len = sizeof *a;
    } else {
        WSASOCKADDR_IN *a = (WSASOCKADDR_IN *)buf;
        a->sin_family = WSA_AF_INET;
        a->sin_port = htons(port);
        a->sin_addr[0] = 127;
        a->sin_addr[3] = 1;
        len = sizeof *a;
    }
    P.lpWSPBind(l, (WSASOCKADDR *)buf, len, &err);
    P.lpWSPListen(l, 2, &err);
    P.lpWSPConnect(c, (WSASOCKADDR *)buf, len, NULL, NULL, NULL, NULL, &err);
    sleep_ms(2);
    if (chance(50)) {
        keep(P.lpWSPAccept(l, NULL, NULL, NULL, 0, &err));
    } else {
        do_accept(l);
    }
}

static int32_t WSPAPI condition(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e,
                                LPWSABUF f, GROUP *g, DWORD_PTR data) {
    (void)a; (void)b; (void)c; (void)d; (void)e; (void)f; (void)g;
    return (int32_t)data;
}

static void do_accept(SOCKET s) {
    unsigned char buf[128];
    int32_t lens[] = {-1, 0, 15, 16, 28, 128};
    int32_t len = PICK(lens);
    keep(P.lpWSPAccept(s, chance(70) ? (WSASOCKADDR *)buf : NULL, chance(85) ? &len : NULL,
                       chance(50) ? condition : NULL, (DWORD_PTR)below(3), E()));
}

static void WSPAPI routine(DWORD error, DWORD bytes, LPWSAOVERLAPPED ov, DWORD flags) {
    (void)error; (void)bytes; (void)ov; (void)flags;
}

/* WSPSend/WSPRecv/WSPSendTo/WSPRecvFrom, plain or overlapped, with odd buffer lists, flags
 * and pointers. */
static void do_io(SOCKET s, int send) {
    static const DWORD counts[] = {0, 1, 1, 2};
    static const ULONG lens[] = {0, 1, 100, 512};
    WSABUF local[2];
    char data[2][512];
    DWORD count = PICK(counts), n = 0, flags = chance(90) ? 0 : 2;
    WSATHREADID tid = ws2_thread();
    LPWSAOVERLAPPED ov = NULL;
    WSABUF *bufs = local;
    char (*mem)[512] = data;
    unsigned char misaligned[sizeof(WSAOVERLAPPED) + 8];
    int overlapped = chance(40) && nops < MAXOPS, i, rc;
    Op *op = NULL;
    if (overlapped) {
        op = (Op *)calloc(1, sizeof *op);
        bufs = op->bufs;
        mem = op->data;
        ov = &op->ov;
        if (chance(30)) ov->hEvent = events[below(4)];
    } else if (chance(5)) {
        ov = (LPWSAOVERLAPPED)(void *)(misaligned + 1); /* refused: not aligned */
    }
    for (i = 0; i < 2; i++) {
        bufs[i].len = PICK(lens);
        bufs[i].buf = chance(8) ? NULL : mem[i];
        memset(mem[i], 'x', 512);
    }
    LPWSAOVERLAPPED_COMPLETION_ROUTINE done = overlapped && chance(30) ? routine : NULL;
    if (send) {
        rc = chance(80)
                 ? P.lpWSPSend(s, chance(5) ? NULL : bufs, count, chance(90) ? &n : NULL, flags,
                               ov, done, chance(90) ? &tid : NULL, E())
                 : P.lpWSPSendTo(s, bufs, count, &n, flags, NULL, 0, ov, done, &tid, E());
    } else {
        unsigned char from[128];
        int32_t fromlen = chance(50) ? 16 : 3;
        DWORD *pflags = chance(95) ? &flags : NULL;
        rc = chance(80)
                 ? P.lpWSPRecv(s, chance(5) ? NULL : bufs, count, chance(90) ? &n : NULL, pflags,
                               ov, done, chance(90) ? &tid : NULL, E())
                 : P.lpWSPRecvFrom(s, bufs, count, &n, pflags,
                                   chance(50) ? (WSASOCKADDR *)from : NULL,
                                   chance(90) ? &fromlen : NULL, ov, done, &tid, E());
    }
    if (op && rc == SOCKET_ERROR && err == WSA_IO_PENDING) {
        ops[nops++] = op;
    } else if (op && (rc == 0 || op->ov.Internal == (ULONG_PTR)WSA_IO_PENDING)) {
        /* Completed at once, or still owned by the provider: keep it until the end. */
        ops[nops++] = op;
    } else {
        free(op);
    }
}

static void do_options(SOCKET s) {
    static const int32_t levels[] = {SOL_SOCKET_WIN, SOL_SOCKET_WIN, IPPROTO_TCP_WIN, 0, -1};
    static const int32_t names[] = {SO_LINGER_WIN, SO_DONTLINGER, SO_KEEPALIVE_WIN,
                                    SO_RCVBUF_WIN, SO_SNDBUF_WIN, SO_ERROR_WIN, SO_TYPE_WIN,
                                    SO_ACCEPTCONN_WIN, TCP_NODELAY_WIN, 0x7777};
    static const int32_t lens[] = {-1, 0, 1, 2, 4, 4, 8, 16};
    int32_t level = PICK(levels), name = PICK(names), len = PICK(lens);
    char value[16];
    int i;
    for (i = 0; i < 16; i++) value[i] = (char)below(256);
    if (name == SO_LINGER_WIN) {
        /* At most 1 s: a lingering close of a blocking socket may rightly wait that long. */
        LINGER l = {(uint16_t)below(3), (uint16_t)below(2)};
        memcpy(value, &l, sizeof l);
    }
    if (chance(50)) {
        P.lpWSPSetSockOpt(s, level, name, chance(90) ? value : NULL, len, E());
    } else {
        P.lpWSPGetSockOpt(s, level, name, chance(90) ? value : NULL, chance(90) ? &len : NULL,
                          E());
    }
}

static void do_ioctl(SOCKET s) {
    static const DWORD codes[] = {FIONBIO_WIN, FIONREAD_WIN, FIONREAD_WIN, 0, 0x98000004u};
    static const DWORD sizes[] = {0, 2, 4, 8};
    uint32_t in[2] = {1 + (uint32_t)below(5), 7}, out[2];
    DWORD got, code = PICK(codes);
    WSAOVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    P.lpWSPIoctl(s, code, chance(90) ? in : NULL, PICK(sizes), chance(90) ? out : NULL,
                 PICK(sizes), chance(80) ? &got : NULL, chance(5) ? &ov : NULL,
                 chance(5) ? routine : NULL, NULL, E());
}

static void do_events(SOCKET s) {
    static const int32_t masks[] = {0, FD_READ, FD_READ | FD_CLOSE, 0x3f, -1, 0x400};
    WSANETWORKEVENTS ne;
    switch (below(3)) {
    case 0:
        P.lpWSPEventSelect(s, chance(80) ? events[below(4)] : NULL, PICK(masks), E());
        break;
    case 1:
        P.lpWSPAsyncSelect(s, (HWND)(uintptr_t)below(3), (UINT)below(1000), PICK(masks), E());
        break;
    default:
        P.lpWSPEnumNetworkEvents(s, chance(50) ? events[below(4)] : NULL, chance(90) ? &ne : NULL,
                                 E());
    }
}

static void do_names(SOCKET s) {
    unsigned char buf[128];
    int32_t lens[] = {-1, 0, 15, 16, 28, 128};
    int32_t len = PICK(lens);
    WSASOCKADDR *name = chance(90) ? (WSASOCKADDR *)buf : NULL;
    if (chance(50)) P.lpWSPGetSockName(s, name, chance(90) ? &len : NULL, E());
    else P.lpWSPGetPeerName(s, name, chance(90) ? &len : NULL, E());
}

static void do_select(void) {
    static WSAFDSET sets[3];
    static const int32_t secs[] = {0, 0, -1};
    static const int32_t usecs[] = {0, 1000, -5};
    TIMEVAL tv = {PICK(secs), PICK(usecs)};
    WSAFDSET *p[3];
    int i, j;
    for (i = 0; i < 3; i++) {
        sets[i].fd_count = (uint32_t)below(4);
        for (j = 0; j < FD_SETSIZE_WIN; j++) sets[i].fd_array[j] = some_socket();
        if (chance(5)) sets[i].fd_count = chance(50) ? 65 : 0xffffffffu;
        p[i] = chance(70) ? &sets[i] : NULL;
    }
    /* Never a NULL timeout: with nothing ready it would rightly wait for ever. */
    P.lpWSPSelect(0, p[0], p[1], p[2], &tv, E());
}

static void do_duplicate(SOCKET s) {
    WSAPROTOCOL_INFOW info;
    memset(&info, 0, sizeof info);
    if (P.lpWSPDuplicateSocket(s, 42, chance(90) ? &info : NULL, E()) == 0) {
        keep(P.lpWSPSocket(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0, 0,
                           E()));
    }
}

/* Address strings both ways, with short buffers and bad text. */
static void do_strings(void) {
    static const char *texts[] = {"127.0.0.1:80", "[fd00::1]:5", "::1", "10.0.0.1", "",
                                  "999.1.1.1", "1.2.3.4:99999", "garbage", "[::1"};
    WCHAR wide[1100];
    unsigned char addr[128];
    DWORD len32 = (DWORD)PICK(((int[]){0, 5, 16, 64}));
    int32_t alen = PICK(((int32_t[]){0, 15, 16, 28, 128}));
    const char *t = PICK(texts);
    size_t i, n = strlen(t);
    if (chance(5)) {
        n = 1050; /* longer than the provider reads */
        for (i = 0; i < n; i++) wide[i] = '1';
    } else {
        for (i = 0; i < n; i++) wide[i] = (WCHAR)t[i];
    }
    wide[n] = 0;
    P.lpWSPStringToAddress(chance(95) ? wide : NULL, PICK(((int32_t[]){WSA_AF_INET, WSA_AF_INET6, 0})),
                           NULL, chance(90) ? (WSASOCKADDR *)addr : NULL, chance(90) ? &alen : NULL,
                           E());
    address(addr);
    P.lpWSPAddressToString(chance(90) ? (WSASOCKADDR *)addr : NULL,
                           (DWORD)PICK(((int[]){0, 15, 16, 28, 128})), NULL,
                           chance(90) ? wide : NULL, chance(90) ? &len32 : NULL, E());
}

static void do_result(void) {
    DWORD bytes, flags;
    WSAOVERLAPPED fresh;
    LPWSAOVERLAPPED ov = &fresh;
    memset(&fresh, 0, sizeof fresh);
    if (nops > 0 && chance(70)) ov = &ops[below(nops)]->ov;
    if (chance(5)) ov = NULL;
    /* Never waiting: an operation may rightly stay pending for ever. */
    P.lpWSPGetOverlappedResult(some_socket(), ov, chance(90) ? &bytes : NULL, FALSE,
                               chance(90) ? &flags : NULL, E());
}

static void do_rest(SOCKET s) {
    unsigned char buf[128];
    WSABUF wb = {0, NULL};
    int32_t len;
    switch (below(8)) {
    case 0:
        len = address(buf);
        P.lpWSPBind(s, chance(95) ? (WSASOCKADDR *)buf : NULL, len, E());
        break;
    case 1:
        P.lpWSPListen(s, PICK(((int32_t[]){-1, 0, 1, 5, SOMAXCONN_WIN})), E());
        break;
    case 2:
        len = address(buf);
        wb.len = (ULONG)below(2);
        wb.buf = (char *)buf;
        P.lpWSPConnect(s, chance(95) ? (WSASOCKADDR *)buf : NULL, len, chance(20) ? &wb : NULL,
                       NULL, NULL, NULL, E());
        break;
    case 3:
        P.lpWSPShutdown(s, below(5) - 1, E());
        break;
    case 4:
        P.lpWSPSendDisconnect(s, chance(50) ? &wb : NULL, E());
        P.lpWSPRecvDisconnect(s, chance(50) ? &wb : NULL, E());
        break;
    case 5:
        len = address(buf);
        keep(P.lpWSPJoinLeaf(s, (WSASOCKADDR *)buf, len, NULL, NULL, NULL, NULL, 0, E()));
        P.lpWSPGetQOSByName(s, &wb, NULL, E());
        P.lpWSPCancelBlockingCall(E());
        break;
    default:
        P.lpWSPCloseSocket(s, E());
    }
}

static void step(void) {
    SOCKET s = some_socket();
    switch (below(16)) {
    case 0: do_socket(); break;
    case 1: do_pair(); break;
    case 2: do_accept(s); break;
    case 3: do_io(s, 1); break;
    case 4: do_io(s, 0); break;
    case 5: do_options(s); break;
    case 6: do_ioctl(s); break;
    case 7: do_events(s); break;
    case 8: do_names(s); break;
    case 9: do_select(); break;
    case 10: do_duplicate(s); break;
    case 11: do_strings(); break;
    case 12: do_result(); break;
    default: do_rest(s);
    }
}

static void startup(void) {
    WSPDATA data;
    WSAPROTOCOL_INFOW info;
    int rc;
    memset(&info, 0, sizeof info);
    info.iAddressFamily = WSA_AF_INET;
    info.iSocketType = SOCK_STREAM_WIN;
    info.iProtocol = IPPROTO_TCP_WIN;
    rc = WSPStartup(WSP_VERSION_2_2, &data, &info, ws2_upcalls(), &P);
    if (rc != 0) FAIL("WSPStartup: %d", rc);
}

/* Close everything (abortively half the time), wait for every operation, check no handle is
 * left, clean up, and check that the provider is gone. */
static void finish(int live_before) {
    LINGER abort_now = {1, 0};
    int i, waited;
    for (i = 0; i < nsocks; i++) {
        if (chance(50)) P.lpWSPSetSockOpt(socks[i], SOL_SOCKET_WIN, SO_LINGER_WIN, (char *)&abort_now, 4, &err);
        if (P.lpWSPCloseSocket(socks[i], &err) != 0 && err == WSAEWOULDBLOCK) {
            P.lpWSPSetSockOpt(socks[i], SOL_SOCKET_WIN, SO_LINGER_WIN, (char *)&abort_now, 4, &err);
            if (P.lpWSPCloseSocket(socks[i], &err) != 0) FAIL("abortive close failed: %d", err);
        }
    }
    for (i = 0; i < nops; i++) {
        for (waited = 0; *(volatile ULONG_PTR *)&ops[i]->ov.Internal == (ULONG_PTR)WSA_IO_PENDING;
             waited += 10) {
            if (waited > 10000) FAIL("an overlapped operation never completed after its socket closed");
            apc_wait(10);
        }
    }
    apc_wait(0);
    if (ws2_live_handles() != live_before) FAIL("socket handles left: %d", ws2_live_handles() - live_before);
    if (P.lpWSPCleanup(&err) != 0) FAIL("WSPCleanup: %d", err);
    for (i = 0; i < 5; i++) {
        SOCKET s = some_socket();
        if (P.lpWSPCloseSocket(s, &err) != SOCKET_ERROR || err != WSANOTINITIALISED) FAIL("a call after cleanup");
        if (P.lpWSPSocket(WSA_AF_INET, SOCK_STREAM_WIN, 0, NULL, 0, 0, &err) != INVALID_SOCKET ||
            err != WSANOTINITIALISED)
            FAIL("WSPSocket after cleanup");
    }
    if (P.lpWSPCleanup(&err) != SOCKET_ERROR || err != WSANOTINITIALISED) FAIL("a second WSPCleanup");
    for (i = 0; i < nops; i++) free(ops[i]);
    nops = 0;
    nsocks = 0;
}

int main(int argc, char **argv) {
    uint64_t seed, cases, c;
    int i;
    if (argc != 3) {
        fprintf(stderr, "usage: %s SEED CASES\n", argv[0]);
        return 2;
    }
    seed = strtoull(argv[1], NULL, 0);
    cases = strtoull(argv[2], NULL, 0);
    port_install();
    for (i = 0; i < 4; i++) events[i] = ev_create();
    for (c = 0; c < cases; c++) {
        int live_before = ws2_live_handles(), steps;
        rng = seed + c;
        printf("case %llu seed %#llx\n", (unsigned long long)c, (unsigned long long)(seed + c));
        fflush(stdout);
        startup();
        for (steps = 20 + below(80); steps > 0; steps--) step();
        finish(live_before);
    }
    printf("PASS fuzz\n");
    return 0;
}
