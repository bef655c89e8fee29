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
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("all C checks passed\n");
    return 0;
}
