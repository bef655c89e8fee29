/*
 * test_alloc_failures.c — every allocation failure path of the C library.
 *
 * Built with -DBS_FAULT_INJECTION (the library then fails its N-th allocation
 * after bs_testing_fail_alloc(N)) and -fsanitize=address (LeakSanitizer), by
 * tests/test_c_reliability.py. A workload that touches every allocation (create,
 * the event ring, write payloads, batches, set_many chunks, sync markers, queue
 * growth, the worker's catch-up list, the payloads events share, a watch) runs once to count its allocations, then
 * once for every N from 1 to that count with the N-th failing. Each run checks:
 * a call returns BS_OK or BS_ENOMEM (never anything else, never a crash), a
 * refused call changed nothing (the final front equals a model that skipped
 * exactly the refused calls), the manager stays usable, and nothing leaks.
 * A failed pthread_create is checked the same way (BS_ETHREAD).
 */
#define _POSIX_C_SOURCE 200809L
#include "bufferscope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bs_testing_fail_alloc(uint64_t n);
uint64_t bs_testing_alloc_count(void);
void bs_testing_fail_thread(int fail);

static int failures = 0;
#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "CHECK FAILED %s:%d: %s (N=%llu, last error: %s)\n", __FILE__, __LINE__, #cond, \
            (unsigned long long)g_n, bs_last_error()); \
    failures++; } } while (0)

#define H 256
#define W 256
static uint64_t g_n;
static float model[H * W];
static int refused;   /* calls that returned BS_ENOMEM in this run */

/* rc must be OK or ENOMEM; returns 1 when the call took effect. */
static int took(int rc)
{
    CHECK(rc == BS_OK || rc == BS_ENOMEM);
    if (rc == BS_ENOMEM) {
        refused++;
        CHECK(bs_last_error()[0] != '\0');
    }
    return rc == BS_OK;
}

static int sync_until_done(bs_manager *m)
{
    for (int tries = 0; tries < 3; tries++) {
        int rc = bs_synchronize(m, 10.0, NULL);
        if (took(rc)) return 1;
    }
    return 0;
}

static void workload(void)
{
    bs_config c;
    memset(&c, 0, sizeof c);
    c.ndim = 2;
    c.shape[0] = H;
    c.shape[1] = W;
    c.fill = 1.0f;
    c.max_pending = 512;
    c.event_capacity = 128;
    bs_manager *m = NULL;
    int rc = bs_create(&c, &m);
    if (!took(rc)) {
        CHECK(m == NULL);
        return;
    }
    for (int i = 0; i < H * W; i++) model[i] = 1.0f;

    /* a whole-buffer write into an idle manager: copied straight into the back,
     * and for its events (a failed copy drops their payload, never the write) */
    static float full[H * W];
    for (int i = 0; i < H * W; i++) full[i] = (float)(i % 7);
    bs_update whole;
    memset(&whole, 0, sizeof whole);
    whole.op = BS_OP_WRITE;
    whole.stop[0] = H;
    whole.stop[1] = W;
    whole.data = full;
    if (took(bs_enqueue(m, &whole, 0, 1, NULL))) memcpy(model, full, sizeof model);

    /* single updates of each kind, a write's payload copy among them */
    if (took(bs_enqueue_set(m, 1, 2, 0, 5.0, 0, 1, NULL))) model[1 * W + 2] = 5.0f;
    bs_update u;
    memset(&u, 0, sizeof u);
    u.op = BS_OP_ADD;
    u.start[0] = 0; u.stop[0] = 2; u.start[1] = 0; u.stop[1] = 4; u.value = 2.0;
    if (took(bs_enqueue(m, &u, 0, 1, NULL)))
        for (int i = 0; i < 2; i++) for (int j = 0; j < 4; j++) model[i * W + j] += 2.0f;
    float block[3 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    u.op = BS_OP_WRITE;
    u.start[0] = 4; u.stop[0] = 7; u.start[1] = 4; u.stop[1] = 7; u.data = block;
    if (took(bs_enqueue(m, &u, 0, 1, NULL)))
        for (int i = 0; i < 3; i++) for (int j = 0; j < 3; j++) model[(4 + i) * W + 4 + j] = block[i * 3 + j];
    took(bs_synchronize(m, 10.0, NULL));   /* a refused marker: the next sync covers it */

    /* a batch with a payload, and set_many in several chunks of the bound */
    bs_update batch[3];
    memset(batch, 0, sizeof batch);
    batch[0].op = BS_OP_FILL;
    batch[0].start[0] = 10; batch[0].stop[0] = 11; batch[0].start[1] = 0; batch[0].stop[1] = 8;
    batch[0].value = 3.0;
    batch[1] = u;
    batch[1].start[0] = 20; batch[1].stop[0] = 23;
    batch[2].op = BS_OP_SCALE;
    batch[2].start[0] = 10; batch[2].stop[0] = 11; batch[2].start[1] = 0; batch[2].stop[1] = 2;
    batch[2].value = -2.0;
    if (took(bs_enqueue_batch(m, batch, 3, 0, 1, NULL, NULL))) {
        for (int j = 0; j < 8; j++) model[10 * W + j] = 3.0f;
        for (int i = 0; i < 3; i++) for (int j = 0; j < 3; j++) model[(20 + i) * W + 4 + j] = block[i * 3 + j];
        for (int j = 0; j < 2; j++) model[10 * W + j] *= -2.0f;
    }
    enum { NSETS = 300 };
    static int64_t idx[NSETS * 2];
    static float vals[NSETS];
    for (int k = 0; k < NSETS; k++) {
        idx[2 * k] = 100 + k / W;
        idx[2 * k + 1] = k % W;
        vals[k] = (float)k;
    }
    if (took(bs_set_many(m, idx, vals, NSETS, 0, 1, NULL, NULL)))
        for (int k = 0; k < NSETS; k++) model[(100 + k / W) * W + k % W] = (float)k;

    /* a watch (its copies) on elements and a producer nothing writes, cleared again */
    int64_t watched[2] = {5, 7};
    uint64_t watched_producer = 3;
    took(bs_set_watch(m, watched, 2, 0, &watched_producer, 1));
    CHECK(bs_set_watch(m, NULL, 0, 0, NULL, 0) == BS_OK);

    /* paused: enough entries and timed-out syncs to grow the queue's ring */
    CHECK(bs_set_paused(m, 1) == BS_OK);
    static float back[H * W];
    CHECK(bs_back(m, back, H * W) == BS_OK);   /* allocates nothing */
    for (int k = 0; k < 150; k++) {
        if (took(bs_enqueue_set(m, 200, k, 0, (double)k, 0, 0, NULL))) model[200 * W + k] = (float)k;
        if (k % 10 == 0) {
            rc = bs_synchronize(m, 0.0, NULL);
            CHECK(rc == BS_ETIMEDOUT || rc == BS_ENOMEM);
            if (rc == BS_ENOMEM) refused++;
        }
    }
    CHECK(bs_set_paused(m, 0) == BS_OK);
    /* many single sets between two syncs: the worker's catch-up list grows */
    for (int k = 0; k < 1200; k++)
        if (took(bs_enqueue_set(m, 150 + k / W, k % W, 0, 0.5 * k, 0, 1, NULL)))
            model[(150 + k / W) * W + k % W] = (float)(0.5 * k);
    CHECK(sync_until_done(m));
    CHECK(sync_until_done(m));   /* the back caught up after the failure too */

    const float *f;
    CHECK(bs_front(m, &f, NULL) == BS_OK);
    CHECK(memcmp(f, model, sizeof model) == 0);
    bs_stats s;
    CHECK(bs_stats_get(m, &s) == BS_OK);
    CHECK(s.pending == 0 && s.visible_seq == s.last_seq);
    CHECK(bs_destroy(m) == BS_OK);
}

int main(void)
{
    bs_testing_fail_alloc(0);
    workload();
    uint64_t total = bs_testing_alloc_count();
    CHECK(total >= 12 && refused == 0);
    uint64_t with_refusals = 0;
    for (g_n = 1; g_n <= total + 10; g_n++) {
        refused = 0;
        bs_testing_fail_alloc(g_n);
        workload();
        if (refused) with_refusals++;
    }
    bs_testing_fail_alloc(0);
    g_n = 0;

    /* the event ring's failure names it (not "two buffers") */
    bs_config c;
    memset(&c, 0, sizeof c);
    c.ndim = 1;
    c.shape[0] = 4;
    c.max_pending = 1;
    c.event_capacity = 100;
    bs_manager *m = NULL;
    bs_testing_fail_alloc(4);   /* manager, two buffers, then the event ring */
    CHECK(bs_create(&c, &m) == BS_ENOMEM && m == NULL);
    CHECK(strstr(bs_last_error(), "event ring of 100 events") != NULL);
    bs_testing_fail_alloc(2);
    CHECK(bs_create(&c, &m) == BS_ENOMEM && strstr(bs_last_error(), "two buffers") != NULL);
    bs_testing_fail_alloc(0);

    /* a failed pthread_create: BS_ETHREAD, nothing leaked */
    bs_testing_fail_thread(1);
    CHECK(bs_create(&c, &m) == BS_ETHREAD && m == NULL);
    CHECK(strstr(bs_last_error(), "pthread_create") != NULL);
    bs_testing_fail_thread(0);
    CHECK(bs_create(&c, &m) == BS_OK);
    bs_destroy(m);

    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("allocation failures checked: N = 1..%llu (%llu runs saw BS_ENOMEM) + pthread_create\n",
           (unsigned long long)total + 10, (unsigned long long)with_refusals);
    return 0;
}
