/* See ws2.h. */
#define _POSIX_C_SOURCE 200809L
#include "ws2.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void deadline_in(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec += 1;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- Events ---- */
typedef struct Event {
    pthread_mutex_t m;
    pthread_cond_t c;
    int set;
} Event;

WSAEVENT ev_create(void) {
    Event *e = (Event *)calloc(1, sizeof *e);
    pthread_mutex_init(&e->m, NULL);
    pthread_cond_init(&e->c, NULL);
    return e;
}

int ev_wait(WSAEVENT h, int ms) {
    Event *e = (Event *)h;
    struct timespec ts;
    int rc = 0, set;
    deadline_in(&ts, ms);
    pthread_mutex_lock(&e->m);
    while (!e->set && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&e->c, &e->m, &ts);
    set = e->set;
    pthread_mutex_unlock(&e->m);
    return set;
}

int ev_is_set(WSAEVENT h) {
    Event *e = (Event *)h;
    int set;
    pthread_mutex_lock(&e->m);
    set = e->set;
    pthread_mutex_unlock(&e->m);
    return set;
}

void ev_close(WSAEVENT h) {
    Event *e = (Event *)h;
    pthread_mutex_destroy(&e->m);
    pthread_cond_destroy(&e->c);
    free(e);
}

static BOOL WSPAPI up_set_event(WSAEVENT h, int32_t *err) {
    Event *e = (Event *)h;
    (void)err;
    pthread_mutex_lock(&e->m);
    e->set = 1;
    pthread_cond_broadcast(&e->c);
    pthread_mutex_unlock(&e->m);
    return TRUE;
}

static BOOL WSPAPI up_reset_event(WSAEVENT h, int32_t *err) {
    Event *e = (Event *)h;
    (void)err;
    pthread_mutex_lock(&e->m);
    e->set = 0;
    pthread_mutex_unlock(&e->m);
    return TRUE;
}

static WSAEVENT WSPAPI up_create_event(int32_t *err) {
    (void)err;
    return ev_create();
}

static BOOL WSPAPI up_close_event(WSAEVENT h, int32_t *err) {
    (void)err;
    ev_close(h);
    return TRUE;
}

/* ---- APC queues, one per thread ---- */
typedef struct Apc {
    LPWSAUSERAPC fn;
    DWORD_PTR ctx;
    struct Apc *next;
} Apc;

typedef struct ApcQueue {
    pthread_mutex_t m;
    pthread_cond_t c;
    Apc *head, *tail;
} ApcQueue;

static __thread ApcQueue *my_queue;

static void queue_free(void *p) {
    ApcQueue *q = (ApcQueue *)p;
    pthread_mutex_destroy(&q->m);
    pthread_cond_destroy(&q->c);
    free(q);
}

static pthread_key_t queue_key;
static pthread_once_t queue_once = PTHREAD_ONCE_INIT;
static void queue_key_init(void) { pthread_key_create(&queue_key, queue_free); }

static ApcQueue *current_queue(void) {
    if (!my_queue) {
        pthread_once(&queue_once, queue_key_init);
        my_queue = (ApcQueue *)calloc(1, sizeof *my_queue);
        pthread_mutex_init(&my_queue->m, NULL);
        pthread_cond_init(&my_queue->c, NULL);
        pthread_setspecific(queue_key, my_queue);
    }
    return my_queue;
}

static int32_t WSPAPI up_open_thread(LPWSATHREADID id, int32_t *err) {
    (void)err;
    id->ThreadHandle = current_queue();
    id->Reserved = 0;
    return 0;
}

static int32_t WSPAPI up_close_thread(LPWSATHREADID id, int32_t *err) {
    (void)id;
    (void)err;
    return 0;
}

WSATHREADID ws2_thread(void) {
    WSATHREADID id;
    int32_t err = 0;
    up_open_thread(&id, &err);
    return id;
}

static int32_t WSPAPI up_queue_apc(LPWSATHREADID id, LPWSAUSERAPC fn, DWORD_PTR ctx,
                                   int32_t *err) {
    ApcQueue *q = (ApcQueue *)id->ThreadHandle;
    Apc *a = (Apc *)calloc(1, sizeof *a);
    (void)err;
    a->fn = fn;
    a->ctx = ctx;
    pthread_mutex_lock(&q->m);
    if (q->tail) q->tail->next = a; else q->head = a;
    q->tail = a;
    pthread_cond_broadcast(&q->c);
    pthread_mutex_unlock(&q->m);
    return 0;
}

int apc_wait(int ms) {
    ApcQueue *q = current_queue();
    struct timespec ts;
    int rc = 0, ran = 0;
    deadline_in(&ts, ms);
    pthread_mutex_lock(&q->m);
    while (!q->head && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&q->c, &q->m, &ts);
    for (;;) {
        Apc *a = q->head;
        if (!a) break;
        q->head = a->next;
        if (!q->head) q->tail = NULL;
        pthread_mutex_unlock(&q->m);
        a->fn(a->ctx); /* outside the lock: the routine may call the provider */
        free(a);
        ran++;
        pthread_mutex_lock(&q->m);
    }
    pthread_mutex_unlock(&q->m);
    return ran;
}

/* ---- Messages ---- */
#define MAXQ 256
static pthread_mutex_t msg_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t msg_c = PTHREAD_COND_INITIALIZER;
static Msg msgs[MAXQ];
static int msg_head, msg_count;

static BOOL WSPAPI up_post_message(HWND hwnd, UINT msg, WPARAM wparam, LPARAM lparam) {
    pthread_mutex_lock(&msg_m);
    if (msg_count == MAXQ) {
        pthread_mutex_unlock(&msg_m);
        return FALSE;
    }
    msgs[(msg_head + msg_count) % MAXQ] = (Msg){hwnd, msg, wparam, lparam};
    msg_count++;
    pthread_cond_broadcast(&msg_c);
    pthread_mutex_unlock(&msg_m);
    return TRUE;
}

int msg_get(Msg *out, int ms) {
    struct timespec ts;
    int rc = 0, got = 0;
    deadline_in(&ts, ms);
    pthread_mutex_lock(&msg_m);
    while (msg_count == 0 && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&msg_c, &msg_m, &ts);
    if (msg_count > 0) {
        *out = msgs[msg_head];
        msg_head = (msg_head + 1) % MAXQ;
        msg_count--;
        got = 1;
    }
    pthread_mutex_unlock(&msg_m);
    return got;
}

/* ---- Completion port on the hook ---- */
static pthread_mutex_t port_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t port_c = PTHREAD_COND_INITIALIZER;
static Packet packets[MAXQ];
static int port_head, port_count;

static void WSPAPI port_hook(SOCKET s, LPWSAOVERLAPPED ov, DWORD error, DWORD bytes) {
    pthread_mutex_lock(&port_m);
    if (port_count < MAXQ) {
        packets[(port_head + port_count) % MAXQ] = (Packet){s, ov, error, bytes};
        port_count++;
    }
    pthread_cond_broadcast(&port_c);
    pthread_mutex_unlock(&port_m);
}

void port_install(void) { LingerstackSetCompletionHook(port_hook); }

int port_get(Packet *out, int ms) {
    struct timespec ts;
    int rc = 0, got = 0;
    deadline_in(&ts, ms);
    pthread_mutex_lock(&port_m);
    while (port_count == 0 && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&port_c, &port_m, &ts);
    if (port_count > 0) {
        *out = packets[port_head];
        port_head = (port_head + 1) % MAXQ;
        port_count--;
        got = 1;
    }
    pthread_mutex_unlock(&port_m);
    return got;
}

/* ---- Socket handles ---- */
static pthread_mutex_t handle_m = PTHREAD_MUTEX_INITIALIZER;
static SOCKET next_handle = 0x5000;
static int live_handles, created_handles;
#define MAXH 4096
static SOCKET handle_list[MAXH];
static DWORD_PTR handle_ctx[MAXH];

static SOCKET WSPAPI up_create_handle(DWORD catalog, DWORD_PTR ctx, int32_t *err) {
    SOCKET s;
    (void)catalog;
    pthread_mutex_lock(&handle_m);
    if (created_handles == MAXH) {
        pthread_mutex_unlock(&handle_m);
        *err = WSAEMFILE;
        return INVALID_SOCKET;
    }
    s = next_handle;
    next_handle += 8;
    handle_list[created_handles] = s;
    handle_ctx[created_handles] = ctx;
    created_handles++;
    live_handles++;
    pthread_mutex_unlock(&handle_m);
    return s;
}

static int32_t WSPAPI up_close_handle(SOCKET s, int32_t *err) {
    int i, found = 0;
    pthread_mutex_lock(&handle_m);
    for (i = 0; i < created_handles; i++) {
        if (handle_list[i] == s) {
            handle_list[i] = 0;
            found = 1;
            live_handles--;
            break;
        }
    }
    pthread_mutex_unlock(&handle_m);
    if (!found) {
        *err = WSAENOTSOCK;
        return SOCKET_ERROR;
    }
    return 0;
}

static int32_t WSPAPI up_query_context(SOCKET s, DWORD_PTR *ctx, int32_t *err) {
    int i;
    pthread_mutex_lock(&handle_m);
    for (i = 0; i < created_handles; i++) {
        if (handle_list[i] == s) {
            *ctx = handle_ctx[i];
            pthread_mutex_unlock(&handle_m);
            return 0;
        }
    }
    pthread_mutex_unlock(&handle_m);
    *err = WSAENOTSOCK;
    return SOCKET_ERROR;
}

int ws2_live_handles(void) {
    int n;
    pthread_mutex_lock(&handle_m);
    n = live_handles;
    pthread_mutex_unlock(&handle_m);
    return n;
}

int ws2_created_handles(void) {
    int n;
    pthread_mutex_lock(&handle_m);
    n = created_handles;
    pthread_mutex_unlock(&handle_m);
    return n;
}

WSPUPCALLTABLE ws2_upcalls(void) {
    WSPUPCALLTABLE t;
    memset(&t, 0, sizeof t);
    t.lpWPUCloseEvent = up_close_event;
    t.lpWPUCloseSocketHandle = up_close_handle;
    t.lpWPUCreateEvent = up_create_event;
    t.lpWPUCreateSocketHandle = up_create_handle;
    t.lpWPUPostMessage = up_post_message;
    t.lpWPUQuerySocketHandleContext = up_query_context;
    t.lpWPUQueueApc = up_queue_apc;
    t.lpWPUResetEvent = up_reset_event;
    t.lpWPUSetEvent = up_set_event;
    t.lpWPUOpenCurrentThread = up_open_thread;
    t.lpWPUCloseThread = up_close_thread;
    return t;
}
