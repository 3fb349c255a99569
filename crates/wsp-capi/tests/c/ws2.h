/* A small client-side "ws2_32" for the provider's C tests: the upcalls (events on a pthread
 * condition, an APC queue per thread, a message queue for async select, socket handles) and a
 * completion port built on LingerstackSetCompletionHook. */
#ifndef LS_TEST_WS2_H
#define LS_TEST_WS2_H

#include <lingerstack/ws2spi.h>

/* The upcall table with every entry filled. */
WSPUPCALLTABLE ws2_upcalls(void);

/* Events. */
WSAEVENT ev_create(void);
int ev_wait(WSAEVENT ev, int ms); /* 1 when signalled within ms */
int ev_is_set(WSAEVENT ev);
void ev_close(WSAEVENT ev);

/* The calling thread's APC queue: run what is queued, waiting up to ms for the first. */
int apc_wait(int ms);
/* WPUOpenCurrentThread for this thread. */
WSATHREADID ws2_thread(void);

/* Async-select messages. */
typedef struct Msg {
    HWND hwnd;
    UINT msg;
    WPARAM wparam;
    LPARAM lparam;
} Msg;
int msg_get(Msg *out, int ms); /* 1 when a message arrived within ms */

/* The completion port on the hook. */
typedef struct Packet {
    SOCKET s;
    LPWSAOVERLAPPED ov;
    DWORD error;
    DWORD bytes;
} Packet;
void port_install(void);
int port_get(Packet *out, int ms);

/* Socket handles the provider created through WPUCreateSocketHandle and not yet closed. */
int ws2_live_handles(void);
int ws2_created_handles(void);

#endif
