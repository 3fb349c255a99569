/* An echo server and its client in one C program, through the lingerstack Winsock provider's
 * proc table. With no LINGERSTACK_IFACE it runs on the in-memory loopback network (127.0.0.1),
 * so it needs no privileges: `just c-example`.
 *
 *   cargo build -p lingerstack-wsp-capi
 *   cc -std=c99 -Wall -Wextra -Werror -I include examples/c/echo.c \
 *      -L target/debug -llingerstack_wsp -Wl,-rpath,target/debug -o echo */
#include <lingerstack/ws2spi.h>

#include <stdio.h>
#include <string.h>

static WSPPROC_TABLE P;

static int fail(const char *what, int32_t err) {
    fprintf(stderr, "%s failed: Winsock error %d\n", what, err);
    return 1;
}

int main(void) {
    WSPDATA data;
    WSAPROTOCOL_INFOW info;
    WSPUPCALLTABLE upcalls; /* all NULL: the provider numbers descriptors itself */
    WSASOCKADDR_IN addr;
    int32_t err = 0, len = sizeof addr;
    SOCKET listener, client, server;
    const char *msg = "hello, lingerstack";
    char buf[64];
    WSABUF wb;
    DWORD n = 0, flags = 0;
    int rc;

    memset(&info, 0, sizeof info);
    info.iAddressFamily = WSA_AF_INET;
    info.iSocketType = SOCK_STREAM_WIN;
    info.iProtocol = IPPROTO_TCP_WIN;
    memset(&upcalls, 0, sizeof upcalls);
    rc = WSPStartup(WSP_VERSION_2_2, &data, &info, upcalls, &P);
    if (rc != 0) return fail("WSPStartup", rc);

    memset(&addr, 0, sizeof addr);
    addr.sin_family = WSA_AF_INET;
    addr.sin_port = (uint16_t)((7 << 8) | 0); /* port 7 in network order */
    addr.sin_addr[0] = 127;
    addr.sin_addr[3] = 1;

    listener = P.lpWSPSocket(WSA_AF_INET, SOCK_STREAM_WIN, IPPROTO_TCP_WIN, NULL, 0, 0, &err);
    if (listener == INVALID_SOCKET) return fail("WSPSocket", err);
    if (P.lpWSPBind(listener, (WSASOCKADDR *)&addr, sizeof addr, &err)) return fail("WSPBind", err);
    if (P.lpWSPListen(listener, 4, &err)) return fail("WSPListen", err);

    client = P.lpWSPSocket(WSA_AF_INET, SOCK_STREAM_WIN, IPPROTO_TCP_WIN, NULL, 0, 0, &err);
    if (client == INVALID_SOCKET) return fail("WSPSocket", err);
    if (P.lpWSPConnect(client, (WSASOCKADDR *)&addr, sizeof addr, NULL, NULL, NULL, NULL, &err))
        return fail("WSPConnect", err);
    server = P.lpWSPAccept(listener, (WSASOCKADDR *)&addr, &len, NULL, 0, &err);
    if (server == INVALID_SOCKET) return fail("WSPAccept", err);

    wb.len = (ULONG)strlen(msg);
    wb.buf = (char *)msg;
    if (P.lpWSPSend(client, &wb, 1, &n, 0, NULL, NULL, NULL, &err)) return fail("WSPSend", err);

    /* the server echoes what it reads */
    wb.len = sizeof buf;
    wb.buf = buf;
    if (P.lpWSPRecv(server, &wb, 1, &n, &flags, NULL, NULL, NULL, &err)) return fail("WSPRecv", err);
    wb.len = n;
    if (P.lpWSPSend(server, &wb, 1, &n, 0, NULL, NULL, NULL, &err)) return fail("WSPSend", err);

    wb.len = sizeof buf - 1;
    if (P.lpWSPRecv(client, &wb, 1, &n, &flags, NULL, NULL, NULL, &err)) return fail("WSPRecv", err);
    buf[n] = 0;
    printf("echoed from 127.0.0.1:%u: \"%s\"\n", (unsigned)(((addr.sin_port & 0xff) << 8) | (addr.sin_port >> 8)), buf);

    /* graceful closes (default linger), then the last cleanup */
    if (P.lpWSPCloseSocket(client, &err)) return fail("WSPCloseSocket", err);
    if (P.lpWSPCloseSocket(server, &err)) return fail("WSPCloseSocket", err);
    if (P.lpWSPCloseSocket(listener, &err)) return fail("WSPCloseSocket", err);
    if (P.lpWSPCleanup(&err)) return fail("WSPCleanup", err);
    return strcmp(buf, msg) == 0 ? 0 : 1;
}
