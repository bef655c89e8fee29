/*
 * test_bufferscope.c — drives the C library from C alone, with several producer
 * threads, under AddressSanitizer + UBSan and again under ThreadSanitizer
 * (built and run by tests/test_c_library.py). Exit status 0 means every check
 * passed; each failed check prints the line and the expression.
 */
#define _POSIX_C_SOURCE 200809L
#include "bufferscope.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures = 0;
#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "CHECK FAILED %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, #cond, bs_last_error()); \
    failures++; } } while (0)

#define N_PRODUCERS 4
#define PER_PRODUCER 2000
#define H 16
#define W 16

static bs_manager *make(int ndim, int64_t a, int64_t b, uint64_t max_pending)
{
    bs_config c;
    memset(&c, 0, sizeof c);
    c.ndim = ndim;
    c.shape[0] = a;
    c.shape[1] = b;
    c.shape[2] = 1;
    c.fill = 0.0f;
    c.max_pending = max_pending;
    c.event_capacity = 1024;
    bs_manager *m = NULL;
    CHECK(bs_create(&c, &m) == BS_OK && m != NULL);
    return m;
}

static bs_update region_update(int op, int64_t r0, int64_t r1, int64_t c0, int64_t c1, double v)
{
    bs_update u;
    memset(&u, 0, sizeof u);
    u.op = op;
    u.start[0] = r0; u.stop[0] = r1;
    u.start[1] = c0; u.stop[1] = c1;
    u.value = v;
    return u;
}

typedef struct { bs_manager *m; int id; } producer_arg;

/* Each producer adds 1 to the whole buffer PER_PRODUCER times, mixing the
 * per-call, batch and set_many paths; the result must be exact. */
static void *producer(void *p)
{
    producer_arg *a = p;
    for (int i = 0; i < PER_PRODUCER; i++) {
        uint64_t seq;
        if (i % 3 == 0) {
            bs_update u = region_update(BS_OP_ADD, 0, H, 0, W, 1.0);
            CHECK(bs_enqueue(a->m, &u, (uint64_t)a->id, 1, &seq) == BS_OK);
        } else if (i % 3 == 1) {
            bs_update us[2] = {region_update(BS_OP_ADD, 0, H / 2, 0, W, 1.0),
                               region_update(BS_OP_ADD, H / 2, H, 0, W, 1.0)};
            uint64_t seqs[2];
            size_t bad;
            CHECK(bs_enqueue_batch(a->m, us, 2, (uint64_t)a->id, 1, seqs, &bad) == BS_OK);
            CHECK(seqs[1] > seqs[0]);
        } else {
            /* the non-blocking path: retry while the queue is full */
            bs_update u = region_update(BS_OP_ADD, 0, H, 0, W, 1.0);
            int rc;
            while ((rc = bs_enqueue(a->m, &u, (uint64_t)a->id, 0, &seq)) == BS_EFULL) sched_yield();
            CHECK(rc == BS_OK);
        }
    }
    return NULL;
}

static void *syncer(void *p)
{
    bs_manager *m = p;
    uint64_t last = 0;
    for (int i = 0; i < 200; i++) {
        uint64_t epoch = 0;
        CHECK(bs_synchronize(m, 10.0, &epoch) == BS_OK);
        CHECK(epoch >= last);
        last = epoch;
    }
    return NULL;
}

static void test_producers_and_syncers(void)
{
    bs_manager *m = make(2, H, W, 64);
    pthread_t t[N_PRODUCERS + 2];
    producer_arg args[N_PRODUCERS];
    for (int i = 0; i < N_PRODUCERS; i++) {
        args[i].m = m;
        args[i].id = i + 1;
        pthread_create(&t[i], NULL, producer, &args[i]);
    }
    pthread_create(&t[N_PRODUCERS], NULL, syncer, m);
    pthread_create(&t[N_PRODUCERS + 1], NULL, syncer, m);
    for (int i = 0; i < N_PRODUCERS + 2; i++) pthread_join(t[i], NULL);
    uint64_t epoch;
    CHECK(bs_synchronize(m, 10.0, &epoch) == BS_OK);
    const float *front;
    CHECK(bs_front(m, &front, NULL) == BS_OK);
    for (int i = 0; i < H * W; i++) CHECK(front[i] == (float)(N_PRODUCERS * PER_PRODUCER));
    bs_stats s;
    CHECK(bs_stats_get(m, &s) == BS_OK);
    CHECK(s.visible_seq == s.last_seq && s.pending == 0);
    bs_event ev[64];
    size_t n;
    uint64_t next;
    CHECK(bs_events_read(m, 0, ev, 64, &n, &next) == BS_OK);
    CHECK(n == 64 && ev[0].index >= s.events_recorded - 1024);
    CHECK(bs_destroy(m) == BS_OK);
}

static void test_set_many_and_write(void)
{
    bs_manager *m = make(2, 4, 5, 3); /* a bound smaller than the batch: chunked */
    int64_t idx[6 * 2] = {0, 0, 1, 1, 2, 2, 3, 4, 0, 0, 3, 4};
    float vals[6] = {1, 2, 3, 4, 5, 6};
    uint64_t seqs[6];
    size_t bad = 99;
    CHECK(bs_set_many(m, idx, vals, 6, 0, 1, seqs, &bad) == BS_OK);
    for (int i = 1; i < 6; i++) CHECK(seqs[i] > seqs[i - 1]);
    float block[2 * 3] = {10, 11, 12, 13, 14, 15};
    bs_update w = region_update(BS_OP_WRITE, 2, 4, 1, 4, 0.0);
    w.data = block;
    CHECK(bs_enqueue(m, &w, 0, 1, NULL) == BS_OK);
    memset(block, 0, sizeof block); /* the library copied it */
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    const float *f;
    bs_front(m, &f, NULL);
    CHECK(f[0] == 5.0f && f[1 * 5 + 1] == 2.0f && f[3 * 5 + 4] == 6.0f);
    CHECK(f[2 * 5 + 1] == 10.0f && f[3 * 5 + 3] == 15.0f);
    /* an out-of-bounds element: nothing queued, the index named */
    int64_t badidx[2 * 2] = {0, 0, 4, 0};
    bs_stats before, after;
    bs_stats_get(m, &before);
    CHECK(bs_set_many(m, badidx, vals, 2, 0, 1, NULL, &bad) == BS_EINVAL && bad == 1);
    CHECK(strstr(bs_last_error(), "out of bounds") != NULL);
    bs_stats_get(m, &after);
    CHECK(after.last_seq == before.last_seq);
    bs_destroy(m);
}

static void test_bad_arguments(void)
{
    bs_manager *m = NULL;
    bs_config c;
    memset(&c, 0, sizeof c);
    CHECK(bs_create(NULL, &m) == BS_EINVAL);
    CHECK(bs_create(&c, NULL) == BS_EINVAL);
    c.ndim = 4; c.max_pending = 1;
    CHECK(bs_create(&c, &m) == BS_EINVAL && m == NULL);
    c.ndim = 2; c.shape[0] = 0; c.shape[1] = 3;
    CHECK(bs_create(&c, &m) == BS_EINVAL);
    c.shape[0] = (int64_t)1 << 40; c.shape[1] = (int64_t)1 << 40;
    CHECK(bs_create(&c, &m) == BS_ENOMEM);
    c.shape[0] = 4; c.shape[1] = 4; c.max_pending = 0;
    CHECK(bs_create(&c, &m) == BS_EINVAL);

    m = make(2, 4, 4, 8);
    bs_update u = region_update(BS_OP_FILL, 3, 1, 0, 1, 1.0);
    CHECK(bs_enqueue(m, &u, 0, 1, NULL) == BS_EINVAL);
    CHECK(strstr(bs_last_error(), "start 3 > stop 1") != NULL);
    u = region_update(BS_OP_FILL, 0, 5, 0, 1, 1.0);
    CHECK(bs_enqueue(m, &u, 0, 1, NULL) == BS_EINVAL);
    u = region_update(BS_OP_FILL, -1, 1, 0, 1, 1.0);
    CHECK(bs_enqueue(m, &u, 0, 1, NULL) == BS_EINVAL);
    u = region_update(99, 0, 1, 0, 1, 1.0);
    CHECK(bs_enqueue(m, &u, 0, 1, NULL) == BS_EINVAL);
    u = region_update(BS_OP_WRITE, 0, 1, 0, 1, 1.0); /* data NULL */
    CHECK(bs_enqueue(m, &u, 0, 1, NULL) == BS_EINVAL);
    CHECK(bs_enqueue(m, NULL, 0, 1, NULL) == BS_EINVAL);
    CHECK(bs_enqueue(NULL, &u, 0, 1, NULL) == BS_EINVAL);
    CHECK(bs_enqueue_set(m, 4, 0, 0, 1.0, 0, 1, NULL) == BS_EINVAL);
    CHECK(bs_synchronize(m, NAN, NULL) == BS_EINVAL);
    CHECK(bs_synchronize(NULL, 1.0, NULL) == BS_EINVAL);
    CHECK(bs_front(m, NULL, NULL) == BS_EINVAL);
    bs_update batch[3] = {region_update(BS_OP_FILL, 0, 1, 0, 1, 1.0),
                          region_update(BS_OP_FILL, 0, 9, 0, 1, 1.0),
                          region_update(BS_OP_FILL, 0, 1, 0, 1, 1.0)};
    size_t bad = 0;
    CHECK(bs_enqueue_batch(m, batch, 3, 0, 1, NULL, &bad) == BS_EINVAL && bad == 1);
    CHECK(strncmp(bs_last_error(), "update 1:", 9) == 0);
    bs_stats s;
    bs_stats_get(m, &s);
    CHECK(s.last_seq == 0);
    /* still usable */
    u = region_update(BS_OP_FILL, 0, 4, 0, 4, 2.0);
    CHECK(bs_enqueue(m, &u, 0, 1, NULL) == BS_OK);
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    CHECK(strcmp(bs_strerror(BS_ETIMEDOUT), "timed out") == 0);
    CHECK(bs_abi_version() == BS_ABI_VERSION);
    bs_destroy(m);
    CHECK(bs_destroy(NULL) == BS_OK);
}

static void test_pause_timeout_full_and_fault(void)
{
    bs_manager *m = make(1, 8, 1, 2);
    CHECK(bs_set_paused(m, 1) == BS_OK);
    CHECK(bs_enqueue_set(m, 0, 0, 0, 1.0, 0, 1, NULL) == BS_OK);
    CHECK(bs_enqueue_set(m, 1, 0, 0, 1.0, 0, 1, NULL) == BS_OK);
    CHECK(bs_enqueue_set(m, 2, 0, 0, 1.0, 0, 0, NULL) == BS_EFULL);
    CHECK(bs_synchronize(m, 0.02, NULL) == BS_ETIMEDOUT);
    CHECK(bs_step(m, 1) == BS_OK);
    CHECK(bs_set_paused(m, 0) == BS_OK);
    CHECK(bs_step(m, 1) == BS_EINVAL); /* not paused */
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    CHECK(bs_inject_worker_fault(m, 1) == BS_OK);
    CHECK(bs_enqueue_set(m, 3, 0, 0, 7.0, 0, 1, NULL) == BS_OK);
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_EWORKER);
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    const float *f;
    bs_front(m, &f, NULL);
    CHECK(f[0] == 1.0f && f[1] == 1.0f && f[3] == 0.0f);
    bs_destroy(m);
}

/* The bound counts elements: a write of n elements counts n; one larger than the
 * bound is admitted alone into an empty queue. */
static void test_bound_counts_elements(void)
{
    bs_manager *m = make(2, 8, 8, 10);
    float block[64];
    for (int i = 0; i < 64; i++) block[i] = (float)i;
    CHECK(bs_set_paused(m, 1) == BS_OK);
    bs_update w = region_update(BS_OP_WRITE, 0, 2, 0, 3, 0.0);   /* 6 elements */
    w.data = block;
    CHECK(bs_enqueue(m, &w, 0, 0, NULL) == BS_OK);
    CHECK(bs_enqueue(m, &w, 0, 0, NULL) == BS_EFULL);           /* 6 + 6 > 10 */
    CHECK(bs_enqueue_set(m, 7, 7, 0, 1.0, 0, 0, NULL) == BS_OK); /* 7 */
    bs_update big = region_update(BS_OP_WRITE, 0, 8, 0, 8, 0.0); /* 64 > the bound */
    big.data = block;
    CHECK(bs_enqueue(m, &big, 0, 0, NULL) == BS_EFULL);
    CHECK(bs_enqueue_batch(m, &big, 1, 0, 0, NULL, NULL) == BS_EFULL);
    bs_stats s;
    CHECK(bs_stats_get(m, &s) == BS_OK && s.pending == 7);
    CHECK(bs_set_paused(m, 0) == BS_OK);
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    CHECK(bs_set_paused(m, 1) == BS_OK);
    CHECK(bs_enqueue(m, &big, 0, 0, NULL) == BS_OK);             /* alone, into the empty queue */
    CHECK(bs_stats_get(m, &s) == BS_OK && s.pending == 64);
    CHECK(bs_enqueue_set(m, 0, 0, 0, 1.0, 0, 0, NULL) == BS_EFULL);
    CHECK(bs_set_paused(m, 0) == BS_OK);
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    const float *f;
    bs_front(m, &f, NULL);
    CHECK(f[0] == 0.0f && f[63] == 63.0f);
    bs_destroy(m);
}

/* Timed-out syncs leave no pile of markers; synchronize(0) never fails idle;
 * the ticket calls. */
static void test_sync_markers_and_zero_timeout(void)
{
    bs_manager *m = make(1, 8, 1, 100);
    for (int i = 0; i < 100; i++) {
        uint64_t epoch = 0;
        CHECK(bs_synchronize(m, 0.0, &epoch) == BS_OK && epoch == (uint64_t)i + 1);
    }
    CHECK(bs_set_paused(m, 1) == BS_OK);
    CHECK(bs_enqueue_set(m, 1, 0, 0, 1.0, 0, 0, NULL) == BS_OK);
    uint64_t entries, markers;
    for (int i = 0; i < 10000; i++) CHECK(bs_synchronize(m, 0.0, NULL) == BS_ETIMEDOUT);
    CHECK(bs_queue_counts(m, &entries, &markers) == BS_OK && entries == 1 && markers == 0);
    /* two waiters share one marker; one gives up, the other still gets its swap */
    uint64_t t1, t2, epoch = 0;
    CHECK(bs_sync_begin(m, &t1) == BS_OK && bs_sync_begin(m, &t2) == BS_OK && t1 == t2);
    CHECK(bs_queue_counts(m, &entries, &markers) == BS_OK && entries == 2 && markers == 1);
    CHECK(bs_sync_wait(m, t1, 0.0, NULL) == BS_ETIMEDOUT);
    CHECK(bs_sync_cancel(m, t1, NULL) == BS_ETIMEDOUT);
    CHECK(bs_queue_counts(m, &entries, &markers) == BS_OK && markers == 1);
    CHECK(bs_sync_wait(m, (uint64_t)1 << 62, 0.0, NULL) == BS_EINVAL);
    CHECK(bs_set_paused(m, 0) == BS_OK);
    CHECK(bs_sync_wait(m, t2, 10.0, &epoch) == BS_OK && epoch == 101);
    /* a marker cancelled in the middle of the queue does not swap */
    CHECK(bs_set_paused(m, 1) == BS_OK);
    CHECK(bs_enqueue_set(m, 2, 0, 0, 2.0, 0, 0, NULL) == BS_OK);
    CHECK(bs_sync_begin(m, &t1) == BS_OK);
    CHECK(bs_enqueue_set(m, 3, 0, 0, 3.0, 0, 0, NULL) == BS_OK);
    CHECK(bs_sync_cancel(m, t1, NULL) == BS_ETIMEDOUT);
    CHECK(bs_queue_counts(m, &entries, &markers) == BS_OK && entries == 3 && markers == 1);
    CHECK(bs_set_paused(m, 0) == BS_OK);
    CHECK(bs_wait_room(m, 100, 10.0) == BS_OK);   /* everything applied */
    bs_stats s;
    CHECK(bs_stats_get(m, &s) == BS_OK && s.epoch == 101);
    CHECK(bs_synchronize(m, 10.0, &epoch) == BS_OK && epoch == 102);
    const float *f;
    bs_front(m, &f, NULL);
    CHECK(f[1] == 1.0f && f[2] == 2.0f && f[3] == 3.0f);
    bs_destroy(m);
}

static void *blocked_sync(void *p)
{
    int *rc = p;
    extern bs_manager *g_closing;
    *rc = bs_synchronize(g_closing, 10.0, NULL);
    return NULL;
}

bs_manager *g_closing;

static void test_close_wakes_waiters(void)
{
    g_closing = make(1, 4, 1, 1);
    bs_set_paused(g_closing, 1);
    bs_enqueue_set(g_closing, 0, 0, 0, 1.0, 0, 1, NULL);
    int rc = -1;
    pthread_t t;
    pthread_create(&t, NULL, blocked_sync, &rc);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK(bs_close(g_closing) == BS_OK);
    pthread_join(t, NULL);
    CHECK(rc == BS_ECLOSED);
    CHECK(bs_close(g_closing) == BS_OK);
    CHECK(bs_enqueue_set(g_closing, 0, 0, 0, 1.0, 0, 1, NULL) == BS_ECLOSED);
    CHECK(bs_synchronize(g_closing, 1.0, NULL) == BS_ECLOSED);
    bs_destroy(g_closing);
}

#define BIG 512
typedef struct { bs_manager *m; int64_t r0; float v; float *block; } writer_arg;

/* Large writes (copied by the producer straight into the back when the worker
 * is idle) racing with small updates elsewhere and with synchronizers. */
static void *big_writer(void *p)
{
    writer_arg *a = p;
    for (int i = 0; i < 40; i++) {
        for (size_t k = 0; k < (size_t)(BIG / 2) * BIG; k++) a->block[k] = a->v + (float)i;
        bs_update u = region_update(BS_OP_WRITE, a->r0, a->r0 + BIG / 2, 0, BIG, 0.0);
        u.data = a->block;
        CHECK(bs_enqueue(a->m, &u, 1, 1, NULL) == BS_OK);
        memset(a->block, 0xff, (size_t)(BIG / 2) * BIG * sizeof(float)); /* copied already */
        bs_update add = region_update(BS_OP_ADD, a->r0, a->r0 + 1, 0, 1, 0.5);
        CHECK(bs_enqueue(a->m, &add, 1, 1, NULL) == BS_OK);
    }
    return NULL;
}

static void test_large_writes(void)
{
    bs_manager *m = make(2, BIG, BIG, 1024);
    writer_arg a[2] = {{m, 0, 100.0f, malloc((size_t)(BIG / 2) * BIG * sizeof(float))},
                       {m, BIG / 2, 200.0f, malloc((size_t)(BIG / 2) * BIG * sizeof(float))}};
    pthread_t t[3];
    pthread_create(&t[0], NULL, big_writer, &a[0]);
    pthread_create(&t[1], NULL, big_writer, &a[1]);
    pthread_create(&t[2], NULL, syncer, m);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    const float *f;
    bs_front(m, &f, NULL);
    /* last write of each half is v + 39, then its add of 0.5 on element (r0, 0) */
    CHECK(f[0] == 139.5f && f[1] == 139.0f && f[BIG * BIG / 2 - 1] == 139.0f);
    CHECK(f[(BIG / 2) * BIG] == 239.5f && f[BIG * BIG - 1] == 239.0f);
    /* the back caught up: one more small update and sync keeps both halves */
    bs_update add = region_update(BS_OP_ADD, 0, BIG, 1, 2, 1.0);
    CHECK(bs_enqueue(m, &add, 0, 1, NULL) == BS_OK);
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    bs_front(m, &f, NULL);
    CHECK(f[1] == 140.0f && f[2] == 139.0f && f[(BIG / 2) * BIG + 1] == 240.0f);
    free(a[0].block);
    free(a[1].block);
    bs_destroy(m);
}

static void test_create_destroy_cycles(void)
{
    for (int i = 0; i < 200; i++) {
        bs_manager *m = make(3, 4, 4, 16);
        bs_enqueue_set(m, 1, 1, 0, 1.0, 0, 1, NULL);
        CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
        bs_destroy(m);
    }
}

/* Polls the stats until pred holds (10 s at most). */
static int wait_stats(bs_manager *m, int (*pred)(const bs_stats *, uint64_t), uint64_t arg)
{
    for (int i = 0; i < 10000; i++) {
        bs_stats s;
        if (bs_stats_get(m, &s) == BS_OK && pred(&s, arg)) return 1;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}
static int applied_is(const bs_stats *s, uint64_t seq) { return s->applied_seq == seq; }
static int paused_at(const bs_stats *s, uint64_t seq) { return s->paused && s->applied_seq == seq; }

/* All events so far, with their details. */
static size_t read_all(bs_manager *m, bs_event *ev, bs_event_detail *d, size_t cap)
{
    size_t n = 0;
    uint64_t next = 0;
    CHECK(bs_events_read_detail(m, 0, ev, d, cap, &n, &next) == BS_OK);
    return n;
}

/* SPEC §4: enqueue and apply events say what each update wrote. */
static void test_event_details(void)
{
    bs_manager *m = make(2, 4, 5, 100);
    bs_update fill = region_update(BS_OP_FILL, 0, 2, 1, 3, 1.5);
    float data[4] = {0, 1, 2, 3};
    bs_update write = region_update(BS_OP_WRITE, 2, 4, 0, 2, 0.0);
    write.data = data;
    int64_t idx[6] = {0, 0, 3, 4, 0, 0};
    float vals[3] = {1, 2, 3};
    CHECK(bs_enqueue_set(m, 1, 2, 0, 3.0, 7, 1, NULL) == BS_OK);
    CHECK(bs_enqueue(m, &fill, 7, 1, NULL) == BS_OK);
    CHECK(bs_set_many(m, idx, vals, 3, 7, 1, NULL, NULL) == BS_OK);
    CHECK(bs_enqueue(m, &write, 7, 1, NULL) == BS_OK);
    data[0] = -1;   /* the events hold the manager's copy */
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    bs_event ev[64];
    bs_event_detail d[64];
    size_t n = read_all(m, ev, d, 64);
    int seen[2] = {0, 0};
    for (size_t k = 0; k < n; k++) {
        if (ev[k].kind != BS_EV_ENQUEUE && ev[k].kind != BS_EV_APPLY) {
            CHECK(d[k].what == BS_DETAIL_NONE);
            continue;
        }
        CHECK(d[k].index == ev[k].index && !d[k].payload_dropped);
        seen[ev[k].kind]++;
        float v[8];
        int64_t ix[16];
        size_t got = 99;
        switch (ev[k].seq) {
        case 1:
            CHECK(d[k].what == BS_DETAIL_REGION && d[k].start[0] == 1 && d[k].stop[0] == 2 &&
                  d[k].start[1] == 2 && d[k].stop[1] == 3 && d[k].value == 3.0);
            CHECK(bs_event_payload(m, ev[k].index, ix, v, 8, &got) == BS_OK && got == 0);
            break;
        case 2:
            CHECK(d[k].what == BS_DETAIL_REGION && d[k].start[1] == 1 && d[k].stop[1] == 3 &&
                  d[k].value == 1.5 && d[k].payload_count == 0);
            break;
        case 3:
            CHECK(d[k].what == BS_DETAIL_SETS && d[k].payload_count == 3 && ev[k].count == 3);
            CHECK(bs_event_payload(m, ev[k].index, ix, v, 2, &got) == BS_EINVAL && got == 3);
            CHECK(bs_event_payload(m, ev[k].index, ix, v, 8, &got) == BS_OK && got == 3);
            CHECK(memcmp(ix, idx, sizeof idx) == 0 && v[0] == 1 && v[1] == 2 && v[2] == 3);
            break;
        case 6:
            CHECK(d[k].what == BS_DETAIL_WRITE && d[k].payload_count == 4 &&
                  d[k].start[0] == 2 && d[k].stop[0] == 4 && d[k].stop[1] == 2);
            CHECK(bs_event_payload(m, ev[k].index, NULL, v, 8, &got) == BS_OK && got == 4);
            CHECK(v[0] == 0 && v[1] == 1 && v[2] == 2 && v[3] == 3);
            break;
        default:
            CHECK(!"unexpected seq");
        }
    }
    CHECK(seen[0] == 4 && seen[1] == 4);
    /* bad arguments are refused, never abort */
    size_t got;
    uint64_t next;
    CHECK(bs_events_read_detail(m, 0, ev, NULL, 64, &got, &next) == BS_EINVAL);
    CHECK(bs_events_read_detail(NULL, 0, ev, d, 64, &got, &next) == BS_EINVAL);
    CHECK(bs_event_payload(m, 0, NULL, NULL, 0, NULL) == BS_EINVAL);
    CHECK(bs_event_payload(m, 0, NULL, NULL, 4, &got) == BS_EINVAL);
    CHECK(bs_event_payload(m, 1u << 30, NULL, data, 4, &got) == BS_OK && got == 0);
    CHECK(bs_event_payload(NULL, 0, NULL, data, 4, &got) == BS_EINVAL);
    CHECK(bs_payload_in_use(m, NULL) == BS_EINVAL);
    CHECK(bs_set_payload_budget(NULL, 1) == BS_EINVAL);
    bs_destroy(m);
}

/* Payloads are kept within the budget: the oldest events let go of theirs. */
static void test_payload_budget(void)
{
    bs_manager *m = make(2, 64, 64, 1 << 16);
    CHECK(bs_set_payload_budget(m, 1000) == BS_OK);
    int64_t idx[200];
    float vals[100], block[100];
    memset(idx, 0, sizeof idx);
    for (int i = 0; i < 100; i++) vals[i] = block[i] = 1.0f;
    bs_update w = region_update(BS_OP_WRITE, 0, 10, 0, 10, 0.0);
    w.data = block;
    for (int i = 0; i < 40; i++) {
        CHECK(bs_set_many(m, idx, vals, 100, 0, 1, NULL, NULL) == BS_OK);
        CHECK(bs_enqueue(m, &w, 0, 1, NULL) == BS_OK);
        uint64_t used;
        CHECK(bs_payload_in_use(m, &used) == BS_OK && used <= 1000);
    }
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    static bs_event ev[1024];
    static bs_event_detail d[1024];
    size_t n = read_all(m, ev, d, 1024);
    uint64_t last_dropped = 0, first_kept = UINT64_MAX;
    int dropped = 0, kept = 0;
    for (size_t k = 0; k < n; k++) {
        if (d[k].what != BS_DETAIL_SETS && d[k].what != BS_DETAIL_WRITE) continue;
        size_t got = 99;
        CHECK(bs_event_payload(m, ev[k].index, NULL, vals, 100, &got) == BS_OK);
        if (d[k].payload_dropped) {
            dropped++;
            last_dropped = ev[k].index;
            CHECK(got == 0);
            if (d[k].what == BS_DETAIL_WRITE) CHECK(d[k].stop[0] == 10 && d[k].stop[1] == 10);
        } else {
            kept++;
            if (ev[k].index < first_kept) first_kept = ev[k].index;
            CHECK(got == 100);
        }
    }
    CHECK(dropped > 0 && kept > 0 && last_dropped < first_kept);
    /* budget 0 keeps none */
    CHECK(bs_set_payload_budget(m, 0) == BS_OK);
    uint64_t used = 1;
    CHECK(bs_payload_in_use(m, &used) == BS_OK && used == 0);
    bs_destroy(m);
}

/* A large write copied by the producer straight into the back keeps its data
 * for the events too (it fits a quarter of the budget). */
static void test_direct_write_payload(void)
{
    bs_manager *m = make(2, 256, 256, 1 << 18);
    float *block = malloc(256 * 256 * sizeof *block);
    for (int i = 0; i < 256 * 256; i++) block[i] = (float)i;
    bs_update w = region_update(BS_OP_WRITE, 0, 256, 0, 256, 0.0);
    w.data = block;
    CHECK(bs_enqueue(m, &w, 0, 1, NULL) == BS_OK);
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    bs_event ev[16];
    bs_event_detail d[16];
    size_t n = read_all(m, ev, d, 16), writes = 0;
    float *got_vals = malloc(256 * 256 * sizeof *got_vals);
    for (size_t k = 0; k < n; k++) {
        if (d[k].what != BS_DETAIL_WRITE) continue;
        writes++;
        size_t got = 0;
        CHECK(bs_event_payload(m, ev[k].index, NULL, got_vals, 256 * 256, &got) == BS_OK);
        CHECK(got == 256 * 256 && !d[k].payload_dropped);
        CHECK(memcmp(got_vals, block, 256 * 256 * sizeof *block) == 0);
    }
    CHECK(writes == 2);
    free(got_vals);
    free(block);
    bs_destroy(m);
}

/* back() while paused shows the buffer being built; refused when running. */
static void test_back_while_paused(void)
{
    bs_manager *m = make(2, 2, 3, 100);
    bs_update f = region_update(BS_OP_FILL, 0, 2, 0, 3, 1.0);
    CHECK(bs_enqueue(m, &f, 0, 1, NULL) == BS_OK);
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    float b[6];
    CHECK(bs_back(m, b, 6) == BS_EINVAL && strstr(bs_last_error(), "paused") != NULL);
    CHECK(bs_set_paused(m, 1) == BS_OK);
    CHECK(bs_back(m, b, 5) == BS_EINVAL);
    CHECK(bs_back(m, NULL, 6) == BS_EINVAL);
    CHECK(bs_back(NULL, b, 6) == BS_EINVAL);
    CHECK(bs_enqueue_set(m, 0, 0, 0, 5.0, 0, 1, NULL) == BS_OK);
    CHECK(bs_enqueue_set(m, 1, 2, 0, 6.0, 0, 1, NULL) == BS_OK);
    CHECK(bs_step(m, 1) == BS_OK);
    CHECK(wait_stats(m, applied_is, 2));
    CHECK(bs_back(m, b, 6) == BS_OK);
    CHECK(b[0] == 5 && b[1] == 1 && b[5] == 1);
    const float *front;
    bs_front(m, &front, NULL);
    CHECK(front[0] == 1);
    CHECK(bs_step(m, 1) == BS_OK);
    CHECK(wait_stats(m, applied_is, 3));
    CHECK(bs_back(m, b, 6) == BS_OK && b[0] == 5 && b[5] == 6);
    /* a sync while paused swaps the applied work; back() waits out the catch-up */
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    CHECK(bs_back(m, b, 6) == BS_OK && b[0] == 5 && b[5] == 6 && b[1] == 1);
    bs_close(m);
    CHECK(bs_back(m, b, 6) == BS_ECLOSED);
    bs_destroy(m);
}

/* Step credit is capped at the updates queued and not yet taken. */
static void test_step_credit_not_banked(void)
{
    bs_manager *m = make(1, 8, 1, 100);
    CHECK(bs_set_paused(m, 1) == BS_OK);
    CHECK(bs_step(m, 5) == BS_OK);   /* nothing queued: nothing kept */
    for (int i = 0; i < 3; i++) CHECK(bs_enqueue_set(m, i, 0, 0, 1.0, 0, 1, NULL) == BS_OK);
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL);
    bs_stats s;
    CHECK(bs_stats_get(m, &s) == BS_OK && s.applied_seq == 0);
    CHECK(bs_step(m, 10) == BS_OK);  /* three left: three kept */
    CHECK(wait_stats(m, applied_is, 3));
    CHECK(bs_enqueue_set(m, 3, 0, 0, 1.0, 0, 1, NULL) == BS_OK);
    nanosleep(&ts, NULL);
    CHECK(bs_stats_get(m, &s) == BS_OK && s.applied_seq == 3);
    CHECK(bs_step(m, UINT64_MAX) == BS_OK);
    CHECK(wait_stats(m, applied_is, 4));
    bs_destroy(m);
}

/* Count the break events and return the seq of the last one (0: none). */
static uint64_t last_break(bs_manager *m, int *count, bs_event_detail *det)
{
    static bs_event ev[1024];
    static bs_event_detail d[1024];
    size_t n = read_all(m, ev, d, 1024);
    uint64_t seq = 0;
    *count = 0;
    for (size_t k = 0; k < n; k++)
        if (ev[k].kind == BS_EV_BREAK) {
            (*count)++;
            seq = ev[k].seq;
            if (det) *det = d[k];
        }
    return seq;
}

/* A watch pauses the worker before the update that writes the element, inside a
 * set_many run too; a step applies exactly it; resume runs on to the next. */
static void test_watch_and_step(void)
{
    bs_manager *m = make(2, 4, 4, 100);
    int64_t watch[2] = {2 * 4 + 2, 2 * 4 + 2};   /* (2, 2), twice: one watch */
    CHECK(bs_set_watch(m, watch, 2, 0, NULL, 0) == BS_OK);
    bs_update f = region_update(BS_OP_FILL, 0, 2, 0, 2, 1.0);
    CHECK(bs_enqueue(m, &f, 0, 1, NULL) == BS_OK);                  /* seq 1 */
    int64_t idx[8] = {0, 0, 1, 1, 2, 2, 3, 3};
    float vals[4] = {1, 2, 3, 4};
    CHECK(bs_set_many(m, idx, vals, 4, 0, 1, NULL, NULL) == BS_OK);  /* seqs 2..5: 4 writes (2,2) */
    bs_update a = region_update(BS_OP_ADD, 2, 4, 2, 4, 10.0);
    CHECK(bs_enqueue(m, &a, 0, 1, NULL) == BS_OK);                  /* seq 6 writes it too */
    CHECK(wait_stats(m, paused_at, 3));
    int count;
    bs_event_detail d;
    CHECK(last_break(m, &count, &d) == 4 && count == 1 && d.what == BS_DETAIL_SETS);
    CHECK(bs_synchronize(m, 0.05, NULL) == BS_ETIMEDOUT);            /* stopped: not visible */
    CHECK(bs_step(m, 1) == BS_OK);
    CHECK(wait_stats(m, applied_is, 4));
    float b[16];
    CHECK(bs_back(m, b, 16) == BS_OK && b[10] == 3.0f);
    CHECK(bs_set_paused(m, 0) == BS_OK);
    CHECK(wait_stats(m, paused_at, 5));
    CHECK(last_break(m, &count, &d) == 6 && count == 2 && d.what == BS_DETAIL_REGION && d.value == 10.0);
    CHECK(bs_set_watch(m, NULL, 0, 0, NULL, 0) == BS_OK);           /* cleared */
    CHECK(bs_set_paused(m, 0) == BS_OK);
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    const float *front;
    bs_front(m, &front, NULL);
    CHECK(front[10] == 13.0f);
    /* bad arguments: refused, nothing changes */
    int64_t bad = 16, neg = -1;
    CHECK(bs_set_watch(m, &bad, 1, 0, NULL, 0) == BS_EINVAL && strstr(bs_last_error(), "out of bounds"));
    CHECK(bs_set_watch(m, &neg, 1, 0, NULL, 0) == BS_EINVAL);
    CHECK(bs_set_watch(m, NULL, 1, 0, NULL, 0) == BS_EINVAL);
    CHECK(bs_set_watch(m, NULL, 0, 1u << 5, NULL, 0) == BS_EINVAL);
    CHECK(bs_set_watch(m, NULL, 0, 0, NULL, 2) == BS_EINVAL);
    CHECK(bs_set_watch(NULL, NULL, 0, 0, NULL, 0) == BS_EINVAL);
    bs_close(m);
    CHECK(bs_set_watch(m, NULL, 0, 0, NULL, 0) == BS_ECLOSED);
    bs_destroy(m);
}

/* Watch by op and by producer; a stepping worker stops at a watch too. */
static void test_watch_op_and_producer(void)
{
    bs_manager *m = make(1, 4, 1, 100);
    uint64_t painter = 42;
    CHECK(bs_set_watch(m, NULL, 0, 1u << BS_OP_SCALE, &painter, 1) == BS_OK);
    CHECK(bs_enqueue_set(m, 0, 0, 0, 1.0, 1, 1, NULL) == BS_OK);    /* seq 1 */
    bs_update sc = region_update(BS_OP_SCALE, 0, 4, 0, 0, 2.0);
    CHECK(bs_enqueue(m, &sc, 1, 1, NULL) == BS_OK);                 /* seq 2: op watch */
    CHECK(wait_stats(m, paused_at, 1));
    CHECK(bs_set_paused(m, 0) == BS_OK);
    bs_update fl = region_update(BS_OP_FILL, 1, 2, 0, 0, 7.0);
    CHECK(bs_enqueue(m, &fl, painter, 1, NULL) == BS_OK);           /* seq 3: producer watch */
    CHECK(wait_stats(m, paused_at, 2));
    int count;
    CHECK(last_break(m, &count, NULL) == 3 && count == 2);
    /* a step of several stops at the next match, its leftover credit gone */
    CHECK(bs_enqueue_set(m, 2, 0, 0, 1.0, 1, 1, NULL) == BS_OK);    /* seq 4 */
    CHECK(bs_enqueue(m, &sc, 1, 1, NULL) == BS_OK);                 /* seq 5: op watch */
    CHECK(bs_enqueue_set(m, 3, 0, 0, 1.0, 1, 1, NULL) == BS_OK);    /* seq 6 */
    CHECK(bs_step(m, 10) == BS_OK);
    CHECK(wait_stats(m, paused_at, 4));
    CHECK(last_break(m, &count, NULL) == 5 && count == 3);
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL);
    bs_stats s;
    CHECK(bs_stats_get(m, &s) == BS_OK && s.applied_seq == 4);
    CHECK(bs_step(m, 1) == BS_OK);
    CHECK(wait_stats(m, applied_is, 5));
    CHECK(bs_set_paused(m, 0) == BS_OK);
    CHECK(bs_synchronize(m, 10.0, NULL) == BS_OK);
    const float *front;
    bs_front(m, &front, NULL);
    CHECK(front[0] == 4.0f && front[1] == 14.0f && front[3] == 1.0f);
    bs_destroy(m);
}

/* A marker cancelled in the middle of the queue, with several updates after it,
 * is found (tickets sorted along the ring) and does not swap. */
static void test_cancel_marker_in_the_middle(void)
{
    bs_manager *m = make(1, 8, 1, 100);
    CHECK(bs_set_paused(m, 1) == BS_OK);
    uint64_t t;
    CHECK(bs_enqueue_set(m, 0, 0, 0, 1.0, 0, 1, NULL) == BS_OK);
    CHECK(bs_sync_begin(m, &t) == BS_OK);
    for (int i = 1; i < 6; i++) CHECK(bs_enqueue_set(m, i, 0, 0, 1.0, 0, 1, NULL) == BS_OK);
    CHECK(bs_sync_cancel(m, t, NULL) == BS_ETIMEDOUT);
    CHECK(bs_set_paused(m, 0) == BS_OK);
    CHECK(bs_wait_room(m, 100, 10.0) == BS_OK);
    CHECK(wait_stats(m, applied_is, 6));
    bs_stats s;
    CHECK(bs_stats_get(m, &s) == BS_OK && s.epoch == 0);
    bs_destroy(m);
}

int main(void)
{
    test_bad_arguments();
    test_set_many_and_write();
    test_pause_timeout_full_and_fault();
    test_bound_counts_elements();
    test_sync_markers_and_zero_timeout();
    test_close_wakes_waiters();
    test_producers_and_syncers();
    test_large_writes();
    test_create_destroy_cycles();
    test_event_details();
    test_payload_budget();
    test_direct_write_payload();
    test_back_while_paused();
    test_step_credit_not_banked();
    test_watch_and_step();
    test_watch_op_and_producer();
    test_cancel_marker_in_the_middle();
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("all C checks passed\n");
    return 0;
}
