/*
 * fuzz_c_api.c — a libFuzzer harness for the C library (bufferscope.h).
 *
 * Each input is a program: a manager configuration, then a sequence of calls
 * (enqueue of every kind, batches, set_many, synchronize with small timeouts,
 * the sync ticket calls, pause/resume/step, wait_room, stats, events, close)
 * with hostile arguments: bad ops, negative/huge/reversed regions, out-of-
 * bounds indices, NULL pointers where the API must refuse them, NaN/Inf/
 * subnormal values, NaN timeouts, bounds of 1 and huge. The harness keeps a
 * reference model (the buffer with every accepted update applied, in order:
 * it enqueues from one thread) and checks after every call what the contract
 * promises: a refused argument returns BS_EINVAL and changes nothing; a
 * completed synchronize shows exactly the model, bit for bit, and bumps the
 * epoch by one; a timed-out one leaves the front as it was; counters stay
 * ordered; cancelled sync markers stay bounded. A violation aborts (a crash
 * for libFuzzer); sanitizers catch the rest.
 *
 * Each input stays short in time: small shapes (one 1-d shape large enough for
 * the direct-write path), at most 64 calls, timeouts of at most 1 s, blocking
 * only while the worker is not paused (so a full queue always drains).
 *
 * Build and run (make fuzz does this for 10 minutes):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ic_backend/src \
 *       fuzz/fuzz_c_api.c c_backend/src/bufferscope.c -lpthread -o fuzz_c_api
 *   ./fuzz_c_api -max_total_time=600 fuzz/corpus
 */
#include "bufferscope.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond) do { if (!(cond)) { \
    fprintf(stderr, "fuzz_c_api: %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
            bs_last_error()); \
    abort(); } } while (0)

typedef struct { const uint8_t *p; size_t n, at; } reader;

static uint32_t get(reader *r, int bytes)
{
    uint32_t v = 0;
    for (int i = 0; i < bytes; i++) v = (v << 8) | (r->at < r->n ? r->p[r->at++] : 0);
    return v;
}

static double get_value(reader *r)
{
    static const double table[] = {0.0, -0.0, 1.0, -1.5, 2.0, 0.5, 1e-45, 1e-40, 3.4e38, 1e300,
                                   -1e300, INFINITY, -INFINITY, NAN, 1234.5678, -7.0};
    uint32_t k = get(r, 1);
    if (k < 200) return table[k % 16];
    uint32_t bits = get(r, 4);   /* any float32, NaN payloads included */
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* An index in dimension of size n: mostly valid, sometimes hostile. */
static int64_t get_index(reader *r, int64_t n)
{
    uint32_t k = get(r, 1);
    switch (k >> 5) {
    case 0: return -1 - (int64_t)(k & 3);
    case 1: return n + (int64_t)(k & 3);
    case 2: return (k & 1) ? INT64_MAX : INT64_MIN;
    default: return (int64_t)(k % (uint32_t)(n + 1));   /* 0..n: a stop may be n */
    }
}

typedef struct {
    bs_manager *m;
    int ndim;
    int64_t shape[3], shape3[3];
    size_t nelem;
    uint64_t max_pending;
    float *model;      /* every accepted update applied, in order */
    float *front;      /* the model when the last synchronize completed */
    uint64_t epoch, enqueued;
    int paused, closed;
} state;

static int region_ok(const state *s, const bs_update *u, uint64_t *volume)
{
    uint64_t v = 1;
    for (int d = 0; d < s->ndim; d++) {
        if (u->start[d] < 0 || u->start[d] > u->stop[d] || u->stop[d] > s->shape[d]) return 0;
        v *= (uint64_t)(u->stop[d] - u->start[d]);
    }
    *volume = v;
    return 1;
}

static int update_ok(const state *s, const bs_update *u)
{
    uint64_t vol;
    if (u->op == BS_OP_SET) {
        for (int d = 0; d < s->ndim; d++)
            if (u->start[d] < 0 || u->start[d] >= s->shape[d]) return 0;
        return 1;
    }
    if (u->op < BS_OP_FILL || u->op > BS_OP_WRITE) return 0;
    if (!region_ok(s, u, &vol)) return 0;
    return !(u->op == BS_OP_WRITE && vol > 0 && !u->data);
}

/* The reference: u applied to the model (float32 arithmetic, like numpy). */
static void model_apply(state *s, const bs_update *u)
{
    int pad = 3 - s->ndim;
    int64_t a[3] = {0, 0, 0}, b[3] = {1, 1, 1};
    for (int d = 0; d < s->ndim; d++) {
        a[pad + d] = u->start[d];
        b[pad + d] = u->op == BS_OP_SET ? u->start[d] + 1 : u->stop[d];
    }
    const float v = (float)u->value;
    const float *src = u->data;
    for (int64_t i = a[0]; i < b[0]; i++)
        for (int64_t j = a[1]; j < b[1]; j++)
            for (int64_t k = a[2]; k < b[2]; k++) {
                float *x = &s->model[(i * s->shape3[1] + j) * s->shape3[2] + k];
                switch (u->op) {
                case BS_OP_SET: case BS_OP_FILL: *x = v; break;
                case BS_OP_ADD: *x = *x + v; break;
                case BS_OP_SCALE: *x = *x * v; break;
                case BS_OP_WRITE: *x = *src++; break;
                }
            }
}

static uint64_t cost_of(const state *s, const bs_update *u)
{
    uint64_t vol = 1;
    if (u->op == BS_OP_WRITE && region_ok(s, u, &vol) && vol > 1) return vol;
    return 1;
}

/* A random update (valid most of the time). data is the caller's scratch. */
static void make_update(reader *r, const state *s, bs_update *u, float *data, size_t cap)
{
    memset(u, 0, sizeof *u);
    uint32_t k = get(r, 1);
    u->op = k < 250 ? (int32_t)(k % 5) : (int32_t)(k - 250) * 1000 - 1;   /* bad ops too */
    for (int d = 0; d < s->ndim; d++) {
        if (get(r, 1) < 230) {   /* a valid region or index */
            int64_t a = (int64_t)(get(r, 1) % (uint32_t)s->shape[d]);
            int64_t len = (int64_t)(get(r, 1) % (uint32_t)(s->shape[d] - a + 1));
            if (get(r, 1) == 255) { a = 0; len = s->shape[d]; }   /* the whole dimension */
            u->start[d] = a;
            u->stop[d] = a + len;
        } else {
            u->start[d] = get_index(r, s->shape[d]);
            u->stop[d] = get_index(r, s->shape[d]);
        }
    }
    u->value = get_value(r);
    uint64_t vol;
    if (u->op == BS_OP_WRITE && region_ok(s, u, &vol) && vol <= cap && get(r, 1) != 7) {
        float seed = (float)get_value(r);
        for (uint64_t i = 0; i < vol; i++) data[i] = seed + (float)i;
        u->data = data;
    }
}

static void check_front(state *s)
{
    const float *f;
    uint64_t epoch;
    REQUIRE(bs_front(s->m, &f, &epoch) == BS_OK);
    REQUIRE(epoch == s->epoch);
    REQUIRE(memcmp(f, s->front, s->nelem * sizeof(float)) == 0);
}

static void check_stats(state *s)
{
    bs_stats st;
    REQUIRE(bs_stats_get(s->m, &st) == BS_OK);
    REQUIRE(st.visible_seq <= st.applied_seq && st.applied_seq <= st.last_seq);
    REQUIRE(st.last_seq == s->enqueued && st.epoch == s->epoch);
    REQUIRE(st.paused == s->paused && st.max_pending == s->max_pending);
    uint64_t entries, markers;
    REQUIRE(bs_queue_counts(s->m, &entries, &markers) == BS_OK);
    REQUIRE(markers <= entries && markers <= (entries - markers) + 1);
}

/* After a synchronize-like call: OK shows the model; a timeout changes nothing. */
static void after_sync(state *s, int rc)
{
    REQUIRE(rc == BS_OK || rc == BS_ETIMEDOUT);
    if (rc == BS_OK) {
        s->epoch++;
        memcpy(s->front, s->model, s->nelem * sizeof(float));
    }   /* a timeout (paused, or a busy worker) leaves the front as it was */
    check_front(s);
}

static void hostile_creates(reader *r)
{
    bs_config c;
    memset(&c, 0, sizeof c);
    bs_manager *m = (bs_manager *)1;
    uint32_t k = get(r, 1) % 6;
    c.ndim = 2;
    c.shape[0] = c.shape[1] = 4;
    c.max_pending = 4;
    switch (k) {
    case 0: c.ndim = (int32_t)get(r, 1) - 128; if (c.ndim >= 1 && c.ndim <= 3) c.ndim = 0; break;
    case 1: c.shape[1] = -(int64_t)get(r, 1); break;
    case 2: c.shape[0] = c.shape[1] = (int64_t)1 << 40; break;
    case 3: c.max_pending = 0; break;
    case 4: c.event_capacity = ((uint64_t)1 << 26) + 1 + get(r, 2); break;
    default: REQUIRE(bs_create(NULL, &m) == BS_EINVAL); REQUIRE(bs_create(&c, NULL) == BS_EINVAL); return;
    }
    int rc = bs_create(&c, &m);
    REQUIRE(rc == BS_EINVAL || rc == BS_ENOMEM);
    REQUIRE(m == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size, 0};
    static const int64_t dims[] = {1, 2, 3, 4, 5, 7, 8, 16};
    state s;
    memset(&s, 0, sizeof s);
    uint32_t h = get(&r, 1);
    if (h >= 250) {   /* a 1-d buffer large enough for the direct-write path */
        s.ndim = 1;
        s.shape[0] = 70000;
    } else {
        s.ndim = 1 + (int)(h % 3);
        for (int d = 0; d < s.ndim; d++) s.shape[d] = dims[get(&r, 1) % 8];
    }
    static const uint64_t bounds[] = {1, 2, 3, 7, 64, 1000, 1 << 18, UINT64_MAX};
    s.max_pending = bounds[get(&r, 1) % 8];
    bs_config c;
    memset(&c, 0, sizeof c);
    c.ndim = s.ndim;
    s.nelem = 1;
    for (int d = 0; d < 3; d++) s.shape3[d] = 1;
    for (int d = 0; d < s.ndim; d++) {
        c.shape[d] = s.shape[d];
        s.shape3[3 - s.ndim + d] = s.shape[d];
        s.nelem *= (size_t)s.shape[d];
    }
    c.fill = (float)get_value(&r);
    c.max_pending = s.max_pending;
    c.event_capacity = get(&r, 1) % 3 == 0 ? 0 : 1 + get(&r, 1);
    REQUIRE(bs_create(&c, &s.m) == BS_OK);
    s.model = malloc(s.nelem * sizeof(float));
    s.front = malloc(s.nelem * sizeof(float));
    float *scratch = malloc(s.nelem * sizeof(float));
    REQUIRE(s.model && s.front && scratch);
    for (size_t i = 0; i < s.nelem; i++) s.model[i] = c.fill;
    memcpy(s.front, s.model, s.nelem * sizeof(float));
    check_front(&s);

    for (int call = 0; call < 64 && r.at < r.n && !s.closed; call++) {
        uint32_t op = get(&r, 1) % 16;
        int block = !s.paused && (get(&r, 1) & 1);
        switch (op) {
        case 0: case 1: case 2: {   /* bs_enqueue */
            bs_update u;
            make_update(&r, &s, &u, scratch, s.nelem);
            int ok = update_ok(&s, &u);
            uint64_t seq = 0;
            int rc = bs_enqueue(s.m, &u, 7, block, &seq);
            if (!ok) { REQUIRE(rc == BS_EINVAL); break; }
            REQUIRE(rc == BS_OK || (!block && rc == BS_EFULL));
            if (rc == BS_OK) {
                REQUIRE(seq == s.enqueued + 1);
                s.enqueued++;
                model_apply(&s, &u);
            }
            break;
        }
        case 3: {   /* bs_enqueue_batch, maybe with a bad update in it */
            bs_update us[4];
            size_t n = get(&r, 1) % 5;
            float *payload = scratch;
            size_t left = s.nelem;
            int ok = 1;
            uint64_t total = 0;
            for (size_t i = 0; i < n; i++) {
                make_update(&r, &s, &us[i], payload, left);
                ok &= update_ok(&s, &us[i]);
                total += cost_of(&s, &us[i]);
                uint64_t vol;
                if (us[i].data && region_ok(&s, &us[i], &vol)) { payload += vol; left -= vol; }
            }
            uint64_t seqs[4];
            size_t bad = 99;
            int rc = bs_enqueue_batch(s.m, n ? us : NULL, n, 3, block, seqs, &bad);
            if (!ok) { REQUIRE(rc == BS_EINVAL && bad < n); break; }
            REQUIRE(rc == BS_OK || (!block && rc == BS_EFULL));
            if (rc == BS_OK) {
                for (size_t i = 0; i < n; i++) {
                    REQUIRE(seqs[i] == s.enqueued + 1);
                    s.enqueued++;
                    model_apply(&s, &us[i]);
                }
            }
            (void)total;
            break;
        }
        case 4: {   /* bs_set_many */
            size_t n = get(&r, 1) % 9;
            int64_t idx[8 * 3];
            float vals[8];
            int ok = 1;
            for (size_t i = 0; i < n; i++) {
                for (int d = 0; d < s.ndim; d++) {
                    idx[i * s.ndim + d] = get(&r, 1) < 240 ? (int64_t)(get(&r, 1) % (uint32_t)s.shape[d])
                                                          : get_index(&r, s.shape[d]);
                    int64_t x = idx[i * s.ndim + d];
                    ok &= x >= 0 && x < s.shape[d];
                }
                vals[i] = (float)get_value(&r);
            }
            uint64_t seqs[8];
            size_t bad = 99;
            int null_args = get(&r, 1) == 3;
            int rc = bs_set_many(s.m, null_args ? NULL : idx, vals, n, 5, block, seqs, &bad);
            if (n == 0) { REQUIRE(rc == BS_OK); break; }
            if (null_args || !ok) { REQUIRE(rc == BS_EINVAL); break; }
            REQUIRE(rc == BS_OK || (!block && rc == BS_EFULL));
            if (rc == BS_OK) {
                for (size_t i = 0; i < n; i++) {
                    REQUIRE(seqs[i] == s.enqueued + 1);
                    s.enqueued++;
                    bs_update u;
                    memset(&u, 0, sizeof u);
                    u.op = BS_OP_SET;
                    for (int d = 0; d < s.ndim; d++) u.start[d] = idx[i * s.ndim + d];
                    u.value = vals[i];
                    model_apply(&s, &u);
                }
            }
            break;
        }
        case 5: case 6: {   /* bs_synchronize with a small timeout (forever only unpaused) */
            static const double timeouts[] = {0.0, 0.0, 0.001, 0.01, 1.0, NAN, -1.0, 1e-9};
            double t = timeouts[get(&r, 1) % 8];
            if (s.paused && (t < 0 || t > 0.01)) t = 0.0;   /* paused: it may never finish */
            uint64_t epoch = 0;
            int rc = bs_synchronize(s.m, t, &epoch);
            if (t != t) { REQUIRE(rc == BS_EINVAL); break; }
            after_sync(&s, rc);
            if (rc == BS_OK) REQUIRE(epoch == s.epoch);
            if (t < 0) REQUIRE(rc == BS_OK);
            break;
        }
        case 7: {   /* the ticket calls, with hostile tickets too */
            uint64_t ticket = 0, epoch = 0;
            REQUIRE(bs_sync_begin(s.m, NULL) == BS_EINVAL);
            REQUIRE(bs_sync_wait(s.m, ticket + 1000000, 0, NULL) == BS_EINVAL);
            REQUIRE(bs_sync_cancel(s.m, 0, NULL) == BS_EINVAL);
            REQUIRE(bs_sync_begin(s.m, &ticket) == BS_OK && ticket > 0);
            int rc = bs_sync_wait(s.m, ticket, (get(&r, 1) % 3) * 0.001, &epoch);
            if (rc == BS_ETIMEDOUT) rc = bs_sync_cancel(s.m, ticket, &epoch);
            after_sync(&s, rc);
            break;
        }
        case 8:
            REQUIRE(bs_set_paused(s.m, 1) == BS_OK);
            s.paused = 1;
            break;
        case 9:
            REQUIRE(bs_set_paused(s.m, 0) == BS_OK);
            s.paused = 0;
            break;
        case 10: {
            uint64_t n = get(&r, 1) == 255 ? UINT64_MAX : get(&r, 1) % 8;
            int rc = bs_step(s.m, n);
            REQUIRE(rc == (s.paused ? BS_OK : BS_EINVAL));
            break;
        }
        case 11: {   /* wait for room: only a short wait */
            uint64_t units = get(&r, 1) == 255 ? UINT64_MAX : get(&r, 1);
            int rc = bs_wait_room(s.m, units, (get(&r, 1) % 3) * 0.001);
            REQUIRE(rc == BS_OK || rc == BS_ETIMEDOUT);
            REQUIRE(bs_wait_room(s.m, 1, NAN) == BS_EINVAL);
            break;
        }
        case 12: {   /* events: random cursors and capacities */
            bs_event ev[8];
            size_t n = 99;
            uint64_t next = 0;
            uint64_t since = get(&r, 1) == 255 ? UINT64_MAX : get(&r, 1);
            size_t cap = get(&r, 1) % 9;
            REQUIRE(bs_events_read(s.m, since, ev, cap, NULL, &next) == BS_EINVAL);
            REQUIRE(bs_events_read(s.m, since, cap ? NULL : ev, 1, &n, &next) == (cap ? BS_EINVAL : BS_OK));
            REQUIRE(bs_events_read(s.m, since, ev, cap, &n, &next) == BS_OK);
            REQUIRE(n <= cap);
            for (size_t i = 1; i < n; i++) REQUIRE(ev[i].index == ev[i - 1].index + 1);
            if (n) REQUIRE(ev[0].index >= since && next == ev[n - 1].index + 1);
            break;
        }
        case 13:
            check_stats(&s);
            REQUIRE(bs_stats_get(s.m, NULL) == BS_EINVAL);
            REQUIRE(bs_front(s.m, NULL, NULL) == BS_EINVAL);
            REQUIRE(bs_enqueue(s.m, NULL, 0, 0, NULL) == BS_EINVAL);
            REQUIRE(bs_enqueue(NULL, NULL, 0, 0, NULL) == BS_EINVAL);
            REQUIRE(bs_synchronize(NULL, 0, NULL) == BS_EINVAL);
            break;
        case 14:
            hostile_creates(&r);
            break;
        case 15:
            if (get(&r, 1) < 16) {   /* close early: everything after is BS_ECLOSED */
                REQUIRE(bs_close(s.m) == BS_OK);
                REQUIRE(bs_close(s.m) == BS_OK);
                REQUIRE(bs_enqueue_set(s.m, 0, 0, 0, 1.0, 0, 0, NULL) == BS_ECLOSED);
                REQUIRE(bs_synchronize(s.m, 0, NULL) == BS_ECLOSED);
                REQUIRE(bs_sync_begin(s.m, &(uint64_t){0}) == BS_ECLOSED);
                REQUIRE(bs_set_paused(s.m, 0) == BS_ECLOSED);
                s.closed = 1;
            } else {
                check_front(&s);
            }
            break;
        }
    }
    if (!s.closed) {
        check_stats(&s);
        /* Drain: resume, sync until it completes; the front is the whole model. */
        REQUIRE(bs_set_paused(s.m, 0) == BS_OK);
        s.paused = 0;
        after_sync(&s, bs_synchronize(s.m, 10.0, NULL));
        REQUIRE(memcmp(s.front, s.model, s.nelem * sizeof(float)) == 0);
    }
    REQUIRE(bs_destroy(s.m) == BS_OK);
    free(s.model);
    free(s.front);
    free(scratch);
    return 0;
}
