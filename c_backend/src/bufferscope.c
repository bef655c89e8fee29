/*
 * bufferscope.c — the C buffer manager behind bufferscope.h.
 *
 * DESIGN
 * One mutex (mu) guards all shared state: the queue, the counters, the event
 * ring, the pause/step credits and the watch. Three condition variables hang off it, and
 * every wait on them re-checks a predicate in a loop (no bare signals, so a
 * signal sent before a wait is never lost and spurious wakeups are harmless):
 *   work_cv   the worker waits for "something to apply or a sync to honour";
 *   space_cv  producers wait for "room in the bounded queue";
 *   sync_cv   synchronizers wait for "tickets_done >= my ticket".
 *
 * The queue is a growable ring of entries in FIFO order. An entry is one
 * update, a chunk of element sets (from bs_set_many), or a sync marker. The
 * bound counts elements, what the queue holds in memory: a write of n elements
 * counts n, a chunk of n sets n, any other update 1; one entry larger than the
 * bound is admitted alone into an empty queue. Each element update gets its own
 * sequence number.
 *
 * Sync markers carry a ticket and do not count against the bound. A
 * synchronize() is begun (ticket), waited for (in slices, if the caller likes:
 * the Python wrapper returns to the interpreter every 50 ms so Ctrl+C works)
 * and, on a timeout or an interrupt, cancelled: its marker will not swap.
 * Markers stay bounded: a new synchronize() shares a marker at the queue's tail
 * (reviving a cancelled one), a cancelled marker at the tail is removed, so at
 * most one marker sits between two updates. Every entry records the tickets
 * issued when it was queued, so tickets are sorted along the ring and a cancel
 * finds its marker by binary search.
 *
 * The worker always holds mu except while it applies updates to the back
 * buffer or catches up; it never spins (on a machine without a free core a
 * spinning worker takes the producers' time). When only a few updates are
 * queued and nobody waits (no sync marker, no blocked producer, no step), it
 * sleeps until gather_min units are queued or GATHER_NS pass (a timed wait:
 * a trickle is still applied), so it takes many updates per lock round trip
 * and producers signal work_cv once per gather_min updates, not per update:
 * only when the worker sleeps idle (worker_waiting == WAIT_IDLE), or gathers
 * and enough is queued. Whoever needs the worker (a sync, a producer blocked
 * for room, a step, close) bumps `urgent`, which ends a gather at once.
 * It takes up to WORK_CHUNK entries at a time, applies them with the lock
 * dropped, then records them.
 *
 * Reaching a sync marker it swaps (pointer exchange, O(1)), bumps the epoch and
 * wakes the synchronizers; then, before it applies anything else, it brings the
 * new back (the old front) up to date. It remembers where the batch applied
 * since the previous swap wrote (regions, element offsets: no payloads) and
 * copies just those elements from the new front, left-right style; when the
 * batch touched more elements than the buffer holds it copies the whole buffer
 * instead (and stops remembering, so memory stays bounded). Both buffers are
 * equal after every catch-up, so the back is never stale. A swap after an
 * empty batch is caught up at once. With nothing queued the worker waits up to
 * CATCHUP_DELAY_NS before it catches up, once per swap (anything queued, a sync, bs_back or
 * close ends the wait): a large write that overwrites everything the catch-up
 * would copy (covers_catch_up) makes it unnecessary, so a stream of whole-frame
 * writes costs one copy each, not two.
 *
 * A large write enqueued while the worker is idle and nothing is queued is
 * copied by the producer itself straight into the back (try_direct_write): the
 * same order, one copy fewer. It claims the back with direct_busy, which holds
 * off the worker and every swap until the copy is recorded.
 *
 * A synchronize() that finds the worker idle and everything applied swaps by
 * itself under the lock (no round trip through the worker) and leaves the
 * catch-up to the worker, which does it before anything else. A second swap
 * waits for that catch-up (catchup_pending), so the front is always complete;
 * that wait is bounded work the worker does even when paused, so a
 * synchronize(timeout 0) with nothing queued always succeeds.
 *
 * Ordering guarantee: updates are applied in the order they entered the queue,
 * whichever thread enqueued them; a swap happens exactly at each sync marker.
 * Not promised: fairness between blocked producers, or which of several
 * concurrent synchronize() callers sees a worker failure (exactly one does).
 *
 * Events (SPEC §4) go into a bounded ring (bs_event) with a parallel ring of
 * fixed-size details (ev_rec): an update's op, region (a set's index as a
 * one-element box) and value are copied into it, so the per-call path
 * (bs_enqueue_set) only writes a few more words under mu. Payloads (a write's
 * data, a set chunk's offsets and values) are referenced, not copied: a queued
 * entry's payload is one refcounted block (header, values, offsets) that its
 * enqueue, apply and break events share with the entry (refs is atomic: the
 * catch-up frees entries with the lock dropped; ev_refs, under mu, counts the
 * events). Blocks are carved from reused 2 MiB pieces (payload_pool.c): fresh
 * pages cost a fault each, as much as the rest of a set_many call. The events may keep at most pay_budget payload elements alive
 * (each block counted once, default 4 M elements); beyond that the oldest
 * events let go of theirs (payload_dropped, op and region kept) until they
 * hold at most half, so dropped events are always a prefix. A direct write
 * borrows the caller's data, so its events get a copy, made with the lock
 * dropped, when it is at most a quarter of the budget (else dropped at once).
 *
 * Watchpoints: before it takes an entry (or the rest of a partly applied set
 * chunk), the worker asks whether a watch matches it (an op, a producer id, a
 * watched element it writes: inside a set chunk, element by element). On a
 * match it takes only what comes before, sets paused, zeroes its step credit,
 * remembers the seq it stopped before (break_passed: the next step or resume
 * passes it) and, after recording the applies before it, records a break
 * event. A direct write never runs while a watch is set. Step credit is capped
 * at the updates queued and not yet taken (last_seq - taken_seq), so none is
 * banked on an empty queue. bs_back copies the back buffer while paused with mu
 * held, after waiting (on sync_cv, a predicate: the worker and a direct writer
 * broadcast when they finish while back_waiters > 0) until nothing writes it:
 * no apply, catch-up or direct write in flight.
 *
 * Payloads (write data, element sets) are copied at enqueue; the caller may
 * reuse its memory at once. No function aborts: bad arguments return BS_EINVAL
 * with a per-thread message, a failed allocation BS_ENOMEM with nothing queued
 * and nothing leaked (tests/c/test_alloc_failures.c fails every allocation of a
 * workload in turn, built with -DBS_FAULT_INJECTION).
 *
 * Capture (trace_writer.c, SPEC §5): when a trace runs (BUFFERSCOPE_TRACE at
 * bs_create, or bs_trace_start), every update is recorded under mu where it
 * gets its sequence number, and every synchronize call where its marker is
 * queued, so the trace lists them in the order the worker applies them and a
 * replay gives each epoch's front. Recording copies bytes under mu; a writer
 * thread of the trace's own formats and writes them. Promised: the trace is
 * complete when bs_trace_stop/bs_close/bs_destroy return. Not promised: a
 * synchronize that timed out (and so swapped nothing) still has its sync line.
 *
 * fork(): the child gets a copy of the manager but not its worker, and the
 * locks may name threads that do not exist there. A pthread_atfork handler
 * bumps a generation counter; in the child every call on an older manager
 * returns BS_ECLOSED and bs_destroy frees the buffers without touching a lock.
 *
 * Live attach (live_publisher.c, #included at the end, SPEC §5): with
 * BUFFERSCOPE_LISTEN set, bs_create starts a "bs-publish" thread that serves the
 * front, stats and events to one viewer at a time (app/live.py's protocol). It
 * reads the manager through the same calls as any thread (stats, events under
 * mu) and copies the front in chunks under mu with the epoch checked; it never
 * blocks on a viewer. bs_close stops it first, while the manager still works.
 */
#define _GNU_SOURCE
#pragma GCC visibility push(default)   /* the bs_* API is exported even under -fvisibility=hidden */
#include "bufferscope.h"
#pragma GCC visibility pop

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef BS_FAULT_INJECTION
/* Test builds only: the N-th allocation (counted from bs_testing_fail_alloc)
 * fails, and so does pthread_create while bs_testing_fail_thread is set, so a
 * test can walk every failure path of a workload (tests/c/test_alloc_failures.c). */
static uint64_t g_alloc_count, g_alloc_fail_at;
static int g_thread_fail;

void bs_testing_fail_alloc(uint64_t n);
uint64_t bs_testing_alloc_count(void);
void bs_testing_fail_thread(int fail);

void bs_testing_fail_alloc(uint64_t n)
{
    __atomic_store_n(&g_alloc_count, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&g_alloc_fail_at, n, __ATOMIC_SEQ_CST);
}
uint64_t bs_testing_alloc_count(void) { return __atomic_load_n(&g_alloc_count, __ATOMIC_SEQ_CST); }
void bs_testing_fail_thread(int fail) { __atomic_store_n(&g_thread_fail, fail, __ATOMIC_SEQ_CST); }

static int alloc_fails(void)
{
    uint64_t n = __atomic_add_fetch(&g_alloc_count, 1, __ATOMIC_SEQ_CST);
    return n == __atomic_load_n(&g_alloc_fail_at, __ATOMIC_SEQ_CST);
}
static void *fi_malloc(size_t n) { return alloc_fails() ? NULL : malloc(n); }
static void *fi_calloc(size_t k, size_t n) { return alloc_fails() ? NULL : calloc(k, n); }
static void *fi_realloc(void *p, size_t n) { return alloc_fails() ? NULL : realloc(p, n); }
static int fi_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*f)(void *), void *arg)
{
    return __atomic_load_n(&g_thread_fail, __ATOMIC_SEQ_CST) ? EAGAIN : pthread_create(t, a, f, arg);
}
static int fi_posix_memalign(void **p, size_t align, size_t n)
{
    return alloc_fails() ? ENOMEM : posix_memalign(p, align, n);
}
#define malloc fi_malloc
#define posix_memalign fi_posix_memalign
#define calloc fi_calloc
#define realloc fi_realloc
#define pthread_create fi_pthread_create
#endif

#include "trace_writer.c"   /* capture (SPEC §5): static tw_* functions, this unit only */
#include "payload_pool.c"   /* payload blocks carved from reused pieces: static pl_* functions */

#define WORK_CHUNK 64
/* The worker sleeps until GATHER_MIN units are queued (or something urgent, or
 * GATHER_NS passes): producers signal it once per GATHER_MIN, not per update. */
#define GATHER_NS 1000000
#define GATHER_MIN 1024
/* With nothing queued, the worker waits this long before a catch-up: a large
 * write that overwrites everything it would copy makes it unnecessary. */
#define CATCHUP_DELAY_NS 5000000
enum { WAIT_NONE = 0, WAIT_IDLE = 1, WAIT_GATHER = 2, WAIT_CATCHUP = 3 };
/* A write of at least this many elements, enqueued while the worker is idle with
 * nothing queued, is copied by the producer straight into the back buffer. */
#define DIRECT_MIN (1 << 16)
/* What remembering one entry for the catch-up costs, in buffer elements. */
#define ENTRY_COST ((sizeof(entry) + sizeof(float) - 1) / sizeof(float))
/* What catching up one scattered element costs, in elements of a row copy. */
#define SCATTER_COST 4
/* How far ahead of its scattered stores the worker prefetches. */
#ifndef SCATTER_AHEAD
#define SCATTER_AHEAD 32
#endif
#define SETS_CHUNK 65536
/* Buffers of at most this many elements keep a set chunk's flat offsets in 4
 * bytes, not 8: a third less memory to fill and read per element (tests build
 * with -DBS_OFF32_MAX=0 to run the 8-byte path on small buffers too). */
#ifndef BS_OFF32_MAX
#define BS_OFF32_MAX ((uint64_t)1 << 32)
#endif

enum { ENTRY_UPDATE = 0, ENTRY_SETS = 1, ENTRY_SYNC = 2 };

/* A write's data or a set chunk's offsets and values, shared by its queue entry
 * and the events that describe it (SPEC §4: referenced, not copied). One block:
 * this header, the values, then the offsets (payload_new). */
typedef struct payload {
    uint64_t refs;      /* atomic: the entry (until it is freed) + each event holding it */
    uint64_t ev_refs;   /* under mu: events holding it (it counts against the budget while > 0) */
    uint64_t n;         /* elements */
    float *values;
    void *offsets;      /* a set chunk's flat offsets (offset_t: see off32); NULL for a write */
    pl_piece *piece;    /* the pool piece it was carved from; NULL: allocated on its own */
} payload;

static void payload_unref(payload *p)
{
    if (p && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0) pl_free(p, p->piece);
}

/* A block for n values (and n flat offsets of off_size bytes each, 0 for none),
 * one reference held by the caller; NULL when there is no memory. */
static payload *payload_new(pl_pool *pool, uint64_t n, size_t off_size)
{
    size_t vbytes = ((size_t)n * sizeof(float) + 7) & ~(size_t)7;
    pl_piece *pc;
    payload *p = pl_alloc(pool, sizeof *p + vbytes + (size_t)n * off_size, &pc);
    if (!p) return NULL;
    p->refs = 1;
    p->ev_refs = 0;
    p->n = n;
    p->values = (float *)(p + 1);
    p->offsets = off_size ? (char *)(p + 1) + vbytes : NULL;
    p->piece = pc;
    return p;
}

/* What an enqueue/apply/break event's updates wrote (parallel to the event ring). */
typedef struct ev_rec {
    int64_t start[3], stop[3];  /* region, normalized to 3-d */
    float value;
    int8_t what;                /* bs_detail_kind */
    int8_t dropped;             /* its payload was let go (budget) */
    payload *pl;                /* held payload, or NULL */
    uint64_t from;              /* first element of pl this event concerns (a set run) */
} ev_rec;

#define NO_HIT UINT64_MAX

typedef struct entry {
    int32_t kind;
    int32_t op;
    uint64_t seq;       /* first sequence number */
    uint64_t count;     /* element updates (1 for a plain update) */
    uint64_t producer;
    uint64_t ticket;    /* ENTRY_SYNC: its ticket; others: tickets_issued when queued
                         * (so tickets never decrease along the ring: binary search) */
    uint64_t waiters;   /* ENTRY_SYNC: synchronize() calls waiting on it; 0 = cancelled */
    uint64_t cost;      /* what it counts against the bound: elements for a write
                         * or a set chunk, 1 for another update, 0 for a marker */
    uint64_t touched;   /* elements written: the cost of catching up on it */
    int64_t start[3], stop[3];  /* region, normalized to 3-d */
    uint64_t offset;    /* BS_OP_SET: flat element offset */
    float value;
    float *data;        /* BS_OP_WRITE payload, or ENTRY_SETS values (in pl) */
    void *offsets;      /* ENTRY_SETS flat offsets (in pl; uint32_t or uint64_t: off32) */
    payload *pl;        /* owns data and offsets; shared with the events describing it */
} entry;

typedef struct work_item {
    entry e;
    uint64_t from, n;   /* element range of e applied by this item */
    int failed;
} work_item;

struct bs_manager {
    int32_t ndim;
    int64_t shape[BS_MAX_NDIM];   /* as given */
    int64_t shape3[3];            /* padded to 3-d with leading 1s */
    size_t nelem;
    int off32;                    /* set chunks keep flat offsets as uint32_t (else uint64_t):
                                   * nelem <= BS_OFF32_MAX (2^32; a test build lowers it) */
    float *buf[2];
    int front_slot;

    pthread_mutex_t mu;
    pthread_cond_t work_cv, space_cv, sync_cv;
    pthread_t worker;
    int worker_started;
    int closed;
    int close_done;               /* bs_close finished: the worker is joined, the queue freed */
    int close_started;            /* a bs_close is under way (the publisher stops first) */
    struct lp *pub;               /* live attach (live_publisher.c): NULL when not publishing */

    entry *ring;
    size_t ring_cap, ring_head, ring_len;
    uint64_t pending, max_pending;

    uint64_t last_seq, applied_seq, visible_seq, epoch;
    uint64_t taken_seq;           /* every update up to here was taken by the worker (or written directly) */
    uint64_t tickets_issued, tickets_done;

    int paused;
    uint64_t step_credits;

    int worker_waiting;           /* the worker sleeps on work_cv (WAIT_IDLE, WAIT_GATHER) */
    int worker_busy;              /* the worker applies a chunk with the lock dropped */
    int catchup_pending;          /* a swap happened; the new back is not caught up yet */
    int direct_busy;              /* a producer copies a large write straight into the back */
    uint64_t urgent;              /* bumped when the worker must not gather */
    uint64_t markers_queued;      /* sync markers in the ring */
    uint64_t space_waiters;       /* producers blocked for room */

    uint64_t fault_countdown;     /* 0: no fault armed */
    int worker_err;
    uint64_t worker_err_seq;
    char worker_msg[256];

    /* worker-private */
    entry cur;
    int has_cur;
    uint64_t cur_done;
    entry *batch;
    size_t batch_len, batch_cap;
    uint64_t batch_touched;
    int batch_overflow;

    bs_event *ev;
    ev_rec *evd;                  /* what each event's updates wrote (same positions as ev) */
    uint64_t ev_cap, ev_count;
    uint64_t pay_budget;          /* payload elements events may hold (atomic reads outside mu) */
    uint64_t ev_payload;          /* payload elements events hold (each payload once) */
    uint64_t ev_stripped;         /* events before this index hold no payload */

    /* watchpoints (under mu) */
    int watch_on;
    uint64_t *watch_elems;        /* sorted flat offsets */
    size_t watch_n;
    uint32_t watch_ops;           /* bit 1 << bs_op */
    uint64_t *watch_prod;
    size_t watch_nprod;
    uint64_t break_passed;        /* the seq the worker last stopped before: stepping passes it */
    uint64_t back_waiters;        /* bs_back calls waiting for the worker to be still */
    uint64_t fork_generation;     /* g_fork_generation when created */

    pl_pool pool;                 /* payload blocks (payload_pool.c) */
    float fill;                   /* the initial value, for a trace's header */
    tw *trace;                    /* capture: NULL when not tracing; set and read under mu */
};

static void trace_entry(bs_manager *m, const entry *e, const float *data);
static void trace_from_env(bs_manager *m);

/* ---------------------------------------------------------------- errors */

static __thread char tl_err[320];

static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_err, sizeof tl_err, fmt, ap);
    va_end(ap);
    return code;
}

uint32_t bs_abi_version(void) { return BS_ABI_VERSION; }

const char *bs_strerror(int status)
{
    switch (status) {
    case BS_OK: return "ok";
    case BS_EINVAL: return "invalid argument";
    case BS_ENOMEM: return "out of memory";
    case BS_ETIMEDOUT: return "timed out";
    case BS_EFULL: return "queue full";
    case BS_ECLOSED: return "manager closed";
    case BS_EWORKER: return "update failed in the worker";
    case BS_ETHREAD: return "cannot start the worker thread";
    case BS_EIO: return "cannot write the trace file";
    default: return "unknown status";
    }
}

const char *bs_last_error(void) { return tl_err; }

/* Bumped in the child of every fork(): a manager made before it belongs to the
 * parent (its worker thread was not copied), so the child may only free it. */
static uint64_t g_fork_generation;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void) { __atomic_add_fetch(&g_fork_generation, 1, __ATOMIC_RELAXED); }
static void register_atfork(void) { pthread_atfork(NULL, NULL, on_fork_child); }

static int forked_away(const bs_manager *m)
{
    return m->fork_generation != __atomic_load_n(&g_fork_generation, __ATOMIC_RELAXED);
}

#define CHECK_M(m) do { \
        if (!(m)) return fail(BS_EINVAL, "manager is NULL"); \
        if (forked_away(m)) \
            return fail(BS_ECLOSED, "manager belongs to the parent process: it cannot be used " \
                        "in a child made by fork() (only destroyed)"); \
    } while (0)

/* ---------------------------------------------------------------- helpers */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Caller holds mu: event record d gives up its payload. */
static void ev_let_go(bs_manager *m, ev_rec *d)
{
    payload *p = d->pl;
    d->pl = NULL;
    if (--p->ev_refs == 0) m->ev_payload -= p->n;
    payload_unref(p);
}

/* Caller holds mu: the oldest events let go of their payloads until the events
 * hold at most half the budget (each payload is counted once, however many
 * events share it, so the dropped events are always the oldest ones). */
static void ev_strip(bs_manager *m)
{
    uint64_t oldest = m->ev_count > m->ev_cap ? m->ev_count - m->ev_cap : 0;
    uint64_t i = m->ev_stripped > oldest ? m->ev_stripped : oldest;
    for (; m->ev_payload > m->pay_budget / 2 && i < m->ev_count; i++) {
        ev_rec *d = &m->evd[i % m->ev_cap];
        if (d->pl) {
            ev_let_go(m, d);
            d->dropped = 1;
        }
    }
    m->ev_stripped = i;
}

/* Caller holds mu: event record d holds payload p (or says it has none left). */
static void ev_hold(bs_manager *m, ev_rec *d, payload *p)
{
    if (!p || m->pay_budget == 0) {
        d->dropped = 1;
        return;
    }
    __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
    d->pl = p;
    if (p->ev_refs++ == 0) m->ev_payload += p->n;
    if (m->ev_payload > m->pay_budget) ev_strip(m);
}

/* Caller holds mu: what elements [from, ...) of entry src wrote, into d. */
static void ev_describe(bs_manager *m, ev_rec *d, const entry *src, uint64_t from)
{
    if (src->kind == ENTRY_SETS) {
        d->what = BS_DETAIL_SETS;
        d->from = from;
        ev_hold(m, d, src->pl);
        return;
    }
    memcpy(d->start, src->start, sizeof d->start);
    memcpy(d->stop, src->stop, sizeof d->stop);
    d->value = src->value;
    d->what = src->op == BS_OP_WRITE ? BS_DETAIL_WRITE : BS_DETAIL_REGION;
    if (src->op == BS_OP_WRITE && src->touched > 0) ev_hold(m, d, src->pl);
}

/* Caller holds mu. src (or NULL): the entry an enqueue/apply/break event
 * concerns, from its element `from` on. */
static void ev_record_at(bs_manager *m, int64_t t, int kind, uint64_t seq, uint64_t count,
                         uint64_t producer, int slot, int op, const entry *src, uint64_t from)
{
    if (!m->ev_cap) return;
    uint64_t at = m->ev_count % m->ev_cap;
    bs_event *e = &m->ev[at];
    ev_rec *d = &m->evd[at];
    if (d->pl) ev_let_go(m, d);   /* the event it replaces leaves the ring */
    e->index = m->ev_count++;
    e->t_ns = t;
    e->seq = seq;
    e->count = count;
    e->epoch = m->epoch;
    e->producer = producer;
    e->kind = kind;
    e->slot = slot;
    e->op = op;
    d->what = BS_DETAIL_NONE;
    d->dropped = 0;
    if (src) ev_describe(m, d, src, from);
}

static void ev_record(bs_manager *m, int kind, uint64_t seq, uint64_t count,
                      uint64_t producer, int slot, int op)
{
    if (m->ev_cap) ev_record_at(m, now_ns(), kind, seq, count, producer, slot, op, NULL, 0);
}

/* An update's event: what it wrote comes with it. */
static void ev_record_entry(bs_manager *m, int64_t t, int kind, uint64_t seq, uint64_t count,
                            int slot, const entry *src, uint64_t from)
{
    if (m->ev_cap)
        ev_record_at(m, t, kind, seq, count, src->producer, slot,
                     src->kind == ENTRY_SETS ? BS_OP_SET : src->op, src, from);
}

static void entry_free(entry *e)
{
    payload_unref(e->pl);   /* events may still hold it */
    e->pl = NULL;
    e->data = NULL;
    e->offsets = NULL;
}

/* Caller holds mu: what the worker gathers before it takes work that nobody
 * waits for (never more than half the bound, so a producer never blocks on it). */
static uint64_t gather_min(const bs_manager *m)
{
    uint64_t half = m->max_pending / 2;
    return half < GATHER_MIN ? (half ? half : 1) : GATHER_MIN;
}

/* Caller holds mu: there may be new work for the worker. A sleeping worker is
 * woken once enough is queued (its timed wait picks up a trickle), so a stream
 * of producers pays one wakeup per gather_min updates, not one per update. */
static void wake_worker(bs_manager *m)
{
    if (m->paused && !m->step_credits) return;  /* nothing it may do until resumed or stepped */
    if (m->worker_waiting == WAIT_IDLE || m->worker_waiting == WAIT_CATCHUP ||
        (m->worker_waiting == WAIT_GATHER && m->pending >= gather_min(m)))
        pthread_cond_signal(&m->work_cv);
}

/* Caller holds mu: someone waits on the worker; it must not gather. */
static void wake_worker_now(bs_manager *m)
{
    m->urgent++;
    if (m->worker_waiting) pthread_cond_signal(&m->work_cv);
}

static void set_pending(bs_manager *m, uint64_t pending) { m->pending = pending; }

/* Caller holds mu. Makes room in the ring for `more` entries (grows it). */
static int ring_reserve(bs_manager *m, size_t more)
{
    if (more <= m->ring_cap - m->ring_len) return BS_OK;
    size_t ncap = m->ring_cap ? m->ring_cap : 64;
    while (ncap - m->ring_len < more) {
        if (ncap > SIZE_MAX / 2 / sizeof(entry))
            return fail(BS_ENOMEM, "cannot grow the update queue beyond %zu entries", ncap);
        ncap *= 2;
    }
    entry *nr = malloc(ncap * sizeof *nr);
    if (!nr) return fail(BS_ENOMEM, "cannot grow the update queue to %zu entries", ncap);
    for (size_t i = 0; i < m->ring_len; i++)
        nr[i] = m->ring[(m->ring_head + i) % m->ring_cap];
    free(m->ring);
    m->ring = nr;
    m->ring_cap = ncap;
    m->ring_head = 0;
    return BS_OK;
}

/* Caller holds mu. Grows the ring when full. */
static int ring_push(bs_manager *m, const entry *e)
{
    int rc = ring_reserve(m, 1);
    if (rc) return rc;
    m->ring[(m->ring_head + m->ring_len) % m->ring_cap] = *e;
    m->ring_len++;
    return BS_OK;
}

static entry *ring_peek(bs_manager *m) { return &m->ring[m->ring_head]; }

static entry ring_pop(bs_manager *m)
{
    entry e = m->ring[m->ring_head];
    m->ring_head = (m->ring_head + 1) % m->ring_cap;
    m->ring_len--;
    return e;
}

static uint64_t region_volume(const entry *e)
{
    uint64_t v = 1;
    for (int d = 0; d < 3; d++) v *= (uint64_t)(e->stop[d] - e->start[d]);
    return v;
}

/* Validates u against the manager's shape and fills e (no payload copy yet). */
static int validate_update(const bs_manager *m, const bs_update *u, entry *e)
{
    if (!u) return fail(BS_EINVAL, "update is NULL");
    memset(e, 0, sizeof *e);
    e->kind = ENTRY_UPDATE;
    e->op = u->op;
    e->count = 1;
    e->cost = 1;
    e->value = (float)u->value;
    int pad = 3 - m->ndim;
    for (int d = 0; d < pad; d++) { e->start[d] = 0; e->stop[d] = 1; }
    switch (u->op) {
    case BS_OP_SET: {
        uint64_t off = 0;
        for (int d = 0; d < m->ndim; d++) {
            int64_t i = u->start[d];
            if (i < 0 || i >= m->shape[d])
                return fail(BS_EINVAL, "set: index %lld in dimension %d is out of bounds for size %lld",
                            (long long)i, d, (long long)m->shape[d]);
            e->start[pad + d] = i;
            e->stop[pad + d] = i + 1;
            off = off * (uint64_t)m->shape[d] + (uint64_t)i;
        }
        e->offset = off;
        e->touched = 1;
        return BS_OK;
    }
    case BS_OP_FILL:
    case BS_OP_ADD:
    case BS_OP_SCALE:
    case BS_OP_WRITE: {
        static const char *names[] = {"set", "fill", "add", "scale", "write"};
        for (int d = 0; d < m->ndim; d++) {
            int64_t a = u->start[d], b = u->stop[d];
            if (a < 0)
                return fail(BS_EINVAL, "%s: region start %lld in dimension %d is negative",
                            names[u->op], (long long)a, d);
            if (a > b)
                return fail(BS_EINVAL, "%s: region start %lld > stop %lld in dimension %d",
                            names[u->op], (long long)a, (long long)b, d);
            if (b > m->shape[d])
                return fail(BS_EINVAL, "%s: region stop %lld in dimension %d is beyond the size %lld",
                            names[u->op], (long long)b, d, (long long)m->shape[d]);
            e->start[pad + d] = a;
            e->stop[pad + d] = b;
        }
        e->touched = region_volume(e);
        if (u->op == BS_OP_WRITE && e->touched > 0 && !u->data)
            return fail(BS_EINVAL, "write: data is NULL for a non-empty region");
        /* A write's payload is memory: it counts its elements against the bound. */
        if (u->op == BS_OP_WRITE && e->touched > 1) e->cost = e->touched;
        return BS_OK;
    }
    default:
        return fail(BS_EINVAL, "unknown update op %d", (int)u->op);
    }
}

/* Copies a write payload into e (after validate_update). */
static int copy_payload(bs_manager *m, entry *e, const bs_update *u)
{
    if (e->op != BS_OP_WRITE || e->touched == 0) return BS_OK;
    e->pl = payload_new(&m->pool, e->touched, 0);
    if (!e->pl)
        return fail(BS_ENOMEM, "write: cannot copy %llu elements",
                    (unsigned long long)e->touched);
    e->data = e->pl->values;
    memcpy(e->data, u->data, e->touched * sizeof(float));
    return BS_OK;
}

/* ---------------------------------------------------------------- apply */

/* Flat offset j of a set chunk's offsets (their width: m->off32). */
static inline uint64_t offset_at(const bs_manager *m, const void *offsets, uint64_t j)
{
    return m->off32 ? ((const uint32_t *)offsets)[j] : ((const uint64_t *)offsets)[j];
}

static void apply_region(const bs_manager *m, float *b, const entry *e)
{
    const int64_t s1 = m->shape3[1], s2 = m->shape3[2];
    const int64_t w = e->stop[2] - e->start[2];
    const float v = e->value;
    const float *src = e->data;
    if (w <= 0) return;
    for (int64_t i0 = e->start[0]; i0 < e->stop[0]; i0++) {
        for (int64_t i1 = e->start[1]; i1 < e->stop[1]; i1++) {
            float *row = b + (i0 * s1 + i1) * s2 + e->start[2];
            switch (e->op) {
            case BS_OP_FILL:
                for (int64_t k = 0; k < w; k++) row[k] = v;
                break;
            case BS_OP_ADD:
                for (int64_t k = 0; k < w; k++) row[k] = row[k] + v;
                break;
            case BS_OP_SCALE:
                for (int64_t k = 0; k < w; k++) row[k] = row[k] * v;
                break;
            case BS_OP_WRITE:
                memcpy(row, src, (size_t)w * sizeof(float));
                src += w;
                break;
            }
        }
    }
}

/* Applies elements [from, from+n) of e to buffer b. */
static void apply_entry(const bs_manager *m, float *b, const entry *e, uint64_t from, uint64_t n)
{
    if (e->kind == ENTRY_SETS) {
        const float *val = e->data;
        /* Scattered stores miss the cache: prefetch for writing SCATTER_AHEAD
         * elements ahead, so that several misses are in flight at once. */
        const uint64_t end = from + n;
#define SCATTER(T) do { \
            const T *off = e->offsets; \
            uint64_t j = from; \
            for (; j + SCATTER_AHEAD < end; j++) { \
                __builtin_prefetch(b + off[j + SCATTER_AHEAD], 1, 3); \
                b[off[j]] = val[j]; \
            } \
            for (; j < end; j++) b[off[j]] = val[j]; \
        } while (0)
        if (m->off32) SCATTER(uint32_t);
        else SCATTER(uint64_t);
#undef SCATTER
    } else if (e->op == BS_OP_SET) {
        b[e->offset] = e->value;
    } else {
        apply_region(m, b, e);
    }
}

/* ---------------------------------------------------------------- watchpoints */

/* Caller holds mu: is flat element `off` watched? (binary search) */
static int watched(const bs_manager *m, uint64_t off)
{
    size_t lo = 0, hi = m->watch_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->watch_elems[mid] < off) lo = mid + 1;
        else hi = mid;
    }
    return lo < m->watch_n && m->watch_elems[lo] == off;
}

/* Caller holds mu: does region update e write a watched element? */
static int writes_watched(const bs_manager *m, const entry *e)
{
    if (e->op == BS_OP_SET) return watched(m, e->offset);
    const uint64_t s1 = (uint64_t)m->shape3[1], s2 = (uint64_t)m->shape3[2];
    for (size_t k = 0; k < m->watch_n; k++) {
        uint64_t off = m->watch_elems[k];
        int64_t i[3] = {(int64_t)(off / (s1 * s2)), (int64_t)(off / s2 % s1), (int64_t)(off % s2)};
        if (i[0] >= e->start[0] && i[0] < e->stop[0] && i[1] >= e->start[1] &&
            i[1] < e->stop[1] && i[2] >= e->start[2] && i[2] < e->stop[2])
            return 1;
    }
    return 0;
}

/* Caller holds mu, a watch is set: the first element position >= frm of e that
 * the watch matches, not counting the one the worker already stopped before
 * (break_passed); NO_HIT when none. An op or producer match is at position 0. */
static uint64_t watch_hit(const bs_manager *m, const entry *e, uint64_t frm)
{
    uint64_t passed = m->break_passed - e->seq;   /* e's element it stopped before, if any */
    if (frm == 0 && passed != 0) {
        if (m->watch_ops & (1u << e->op)) return 0;
        for (size_t k = 0; k < m->watch_nprod; k++)
            if (m->watch_prod[k] == e->producer) return 0;
    }
    if (!m->watch_n) return NO_HIT;
    if (e->kind == ENTRY_SETS) {
        for (uint64_t j = frm; j < e->count; j++)
            if (j != passed && watched(m, offset_at(m, e->offsets, j))) return j;
        return NO_HIT;
    }
    if (frm == 0 && passed != 0 && writes_watched(m, e)) return 0;
    return NO_HIT;
}

/* ---------------------------------------------------------------- worker */

/* Caller holds mu: is there anything the worker may do now? */
static int worker_has_work(const bs_manager *m)
{
    if (m->direct_busy) return 0;   /* a producer writes the back; everything waits */
    if (m->catchup_pending) return 1;
    int may_apply = !m->paused || m->step_credits > 0;
    if (m->has_cur) return may_apply;
    if (m->ring_len == 0) return 0;
    if (m->ring[m->ring_head].kind == ENTRY_SYNC) return 1;
    return may_apply;
}

/* Worker-private: remember where a fully applied entry wrote, for the catch-up.
 * Its payload is no longer needed: the catch-up copies from the front. */
static void batch_keep(bs_manager *m, entry *e)
{
    /* No data is needed any more: the catch-up copies from the front. A write
     * lets go of its block now (events, or a bs_event_payload copying it, may
     * still hold it); a set chunk keeps its block for the offsets. */
    if (e->kind != ENTRY_SETS) entry_free(e);
    e->data = NULL;
    if (e->touched == 0 || m->batch_overflow) {   /* nothing to copy, or a full copy anyway */
        entry_free(e);
        return;
    }
    /* Each remembered entry costs its elements (a scattered one SCATTER_COST: a
     * cache miss each, where a row is one memcpy) plus its own bookkeeping; when
     * the batch costs more than the buffer, copy the buffer instead (faster, and
     * memory stays bounded by about one buffer). */
    uint64_t scattered = e->kind == ENTRY_SETS || e->op == BS_OP_SET;
    m->batch_touched += e->touched * (scattered ? SCATTER_COST : 1) + ENTRY_COST;
    if (m->batch_touched > m->nelem) {
        for (size_t i = 0; i < m->batch_len; i++) entry_free(&m->batch[i]);
        m->batch_len = 0;
        m->batch_overflow = 1;
        entry_free(e);
        return;
    }
    if (m->batch_len == m->batch_cap) {
        size_t ncap = m->batch_cap ? m->batch_cap * 2 : 256;
        entry *nb = realloc(m->batch, ncap * sizeof *nb);
        if (!nb) {   /* fall back to a full copy */
            for (size_t i = 0; i < m->batch_len; i++) entry_free(&m->batch[i]);
            m->batch_len = 0;
            m->batch_overflow = 1;
            entry_free(e);
            return;
        }
        m->batch = nb;
        m->batch_cap = ncap;
    }
    m->batch[m->batch_len++] = *e;
}

/* Copies the elements entry e wrote from src to dst. */
static void copy_written(const bs_manager *m, float *dst, const float *src, const entry *e)
{
    if (e->kind == ENTRY_SETS) {
#define COPY_SETS(T) do { \
            const T *off = e->offsets; \
            for (uint64_t j = 0; j < e->count; j++) dst[off[j]] = src[off[j]]; \
        } while (0)
        if (m->off32) COPY_SETS(uint32_t);
        else COPY_SETS(uint64_t);
#undef COPY_SETS
        return;
    }
    if (e->op == BS_OP_SET) {
        dst[e->offset] = src[e->offset];
        return;
    }
    const int64_t s1 = m->shape3[1], s2 = m->shape3[2];
    const int64_t w = e->stop[2] - e->start[2];
    if (w <= 0) return;
    for (int64_t i0 = e->start[0]; i0 < e->stop[0]; i0++)
        for (int64_t i1 = e->start[1]; i1 < e->stop[1]; i1++) {
            int64_t at = (i0 * s1 + i1) * s2 + e->start[2];
            memcpy(dst + at, src + at, (size_t)w * sizeof(float));
        }
}

/* Worker-private, lock not held: bring the back (old front) up to date by
 * copying what the last batch wrote from the front. *pieces gets the number of
 * entries copied, 0 for a whole-buffer copy. */
static void catch_up(bs_manager *m, uint64_t *pieces)
{
    float *back = m->buf[1 - m->front_slot];
    const float *front = m->buf[m->front_slot];
    if (m->batch_overflow) {
        memcpy(back, front, m->nelem * sizeof(float));
        *pieces = 0;
    } else {
        for (size_t i = 0; i < m->batch_len; i++) {
            copy_written(m, back, front, &m->batch[i]);
            entry_free(&m->batch[i]);
        }
        *pieces = m->batch_len;
    }
    m->batch_len = 0;
    m->batch_touched = 0;
    m->batch_overflow = 0;
    if (m->batch_cap > 4096) {   /* do not keep a large list for good */
        free(m->batch);
        m->batch = NULL;
        m->batch_cap = 0;
    }
}

/* Caller holds mu; everything up to applied_seq is applied and caught up. */
static void swap_buffers(bs_manager *m, uint64_t ticket)
{
    m->front_slot = 1 - m->front_slot;
    m->epoch++;
    m->visible_seq = m->applied_seq;
    if (ticket > m->tickets_done) m->tickets_done = ticket;
    if (m->trace) tw_swapped(m->trace, m->visible_seq);   /* one sync line per swap */
    ev_record(m, BS_EV_SWAP, m->visible_seq, 0, 0, m->front_slot, -1);
    ev_record(m, BS_EV_VISIBLE, m->visible_seq, 0, 0, m->front_slot, -1);
    if (m->batch_len == 0 && !m->batch_overflow)   /* nothing written since the last swap */
        ev_record(m, BS_EV_CATCHUP, m->visible_seq, 0, 0, 1 - m->front_slot, -1);
    else
        m->catchup_pending = 1;
    pthread_cond_broadcast(&m->sync_cv);
}

static struct timespec deadline_after(double timeout_s);

/* Caller holds mu, no catch-up running (worker_busy clear): does writing e's
 * region overwrite everything the pending catch-up would copy? */
static int covers_catch_up(const bs_manager *m, const entry *e)
{
    if (m->batch_overflow) return region_volume(e) == m->nelem;
    for (size_t i = 0; i < m->batch_len; i++) {
        const entry *b = &m->batch[i];
        if (b->kind == ENTRY_SETS) return 0;   /* (its offsets are not looked at) */
        for (int d = 0; d < 3; d++)
            if (b->start[d] < e->start[d] || b->stop[d] > e->stop[d]) return 0;
    }
    return 1;
}

/* Caller holds mu, no catch-up running: the pending catch-up is not needed (a
 * write about to be applied overwrites all of it): forget it. */
static void skip_catch_up(bs_manager *m)
{
    for (size_t i = 0; i < m->batch_len; i++) entry_free(&m->batch[i]);
    m->batch_len = 0;
    m->batch_touched = 0;
    m->batch_overflow = 0;
    m->catchup_pending = 0;
    ev_record(m, BS_EV_CATCHUP, m->visible_seq, 0, 0, 1 - m->front_slot, -1);
    pthread_cond_broadcast(&m->sync_cv);
}

/* Worker, holds mu, a catch-up pending and nothing queued: wait up to
 * CATCHUP_DELAY_NS for a write that makes it unnecessary (try_direct_write);
 * anything queued, anyone waiting (a sync, bs_back) or close ends the wait. */
static void delay_catch_up(bs_manager *m)
{
    uint64_t urgent_seen = m->urgent;
    struct timespec deadline = deadline_after(CATCHUP_DELAY_NS * 1e-9);
    m->worker_waiting = WAIT_CATCHUP;
    while (!m->closed && m->urgent == urgent_seen && m->catchup_pending && m->ring_len == 0 &&
           !m->back_waiters)
        if (pthread_cond_timedwait(&m->work_cv, &m->mu, &deadline) == ETIMEDOUT) break;
    m->worker_waiting = WAIT_NONE;
}

/* Worker, holds mu: sleep until gather_min units are queued, something urgent
 * comes up (a sync, a blocked producer, a step, close) or GATHER_NS pass. It
 * sleeps rather than spins: on a machine without a free core a spinning worker
 * takes the producers' time. */
static void gather(bs_manager *m)
{
    uint64_t urgent_seen = m->urgent;
    struct timespec deadline = deadline_after(GATHER_NS * 1e-9);
    m->worker_waiting = WAIT_GATHER;
    while (!m->closed && m->urgent == urgent_seen && m->pending < gather_min(m))
        if (pthread_cond_timedwait(&m->work_cv, &m->mu, &deadline) == ETIMEDOUT) break;
    m->worker_waiting = WAIT_NONE;
}

static void *worker_main(void *arg)
{
    bs_manager *m = arg;
    work_item work[WORK_CHUNK];
    int gathered = 0;
    /* The epoch whose catch-up the worker waited for already (it waits once per
     * swap): not a flag, since a wakeup that ends the wait may come after the
     * next swap (a direct write's wake_worker_now, then a synchronize that swaps
     * before the worker runs), whose catch-up must wait too. */
    uint64_t delayed_epoch = UINT64_MAX;
    pthread_setname_np(pthread_self(), "bs-worker");   /* named for debuggers and tests */

    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (!m->closed && !worker_has_work(m)) {
            m->worker_waiting = WAIT_IDLE;
            pthread_cond_wait(&m->work_cv, &m->mu);
            m->worker_waiting = WAIT_NONE;
        }
        if (m->closed) break;

        if (m->catchup_pending) {
            if (delayed_epoch != m->epoch && m->ring_len == 0 && !m->has_cur && !m->back_waiters) {
                delayed_epoch = m->epoch;
                delay_catch_up(m);
                continue;
            }
            m->worker_busy = 1;
            pthread_mutex_unlock(&m->mu);
            uint64_t pieces;
            catch_up(m, &pieces);
            pthread_mutex_lock(&m->mu);
            m->worker_busy = 0;
            m->catchup_pending = 0;
            ev_record(m, BS_EV_CATCHUP, m->visible_seq, pieces, 0, 1 - m->front_slot, -1);
            pthread_cond_broadcast(&m->sync_cv);   /* a direct write may wait for this */
            continue;
        }

        if (!m->has_cur && ring_peek(m)->kind == ENTRY_SYNC) {
            /* Consecutive markers share one swap. Everything before them is applied. */
            uint64_t ticket = 0;
            while (m->ring_len && ring_peek(m)->kind == ENTRY_SYNC) {
                entry mk = ring_pop(m);
                m->markers_queued--;
                /* A marker whose ticket a synchronize() by itself already covered
                 * (the idle swap) needs no second swap. */
                if (mk.waiters && mk.ticket > m->tickets_done) ticket = mk.ticket;
            }
            /* Markers whose callers gave up (timed out) do not swap: the front
             * they were shown stays valid until a synchronize() completes. */
            if (ticket) swap_buffers(m, ticket);
            continue;   /* the catch-up comes first on the next turn */
        }

        if (!gathered && !m->paused && !m->has_cur && m->pending < gather_min(m) &&
            m->markers_queued == 0 && m->space_waiters == 0) {
            gather(m);
            gathered = 1;
            continue;
        }
        gathered = 0;

        /* Take up to WORK_CHUNK pieces of work (stopping at a marker, or
         * before an update a watch matches). */
        size_t k = 0;
        uint64_t budget = m->paused ? m->step_credits : UINT64_MAX;
        uint64_t freed = 0;
        entry brk;              /* the update a watch stopped before ... */
        uint64_t brk_at = NO_HIT;   /* ... and its element (NO_HIT: none) */
        while (k < WORK_CHUNK && budget > 0) {
            uint64_t hit = NO_HIT;
            if (!m->has_cur) {
                if (m->ring_len == 0 || ring_peek(m)->kind == ENTRY_SYNC) break;
                if (m->watch_on && (hit = watch_hit(m, ring_peek(m), 0)) == 0) {
                    brk = *ring_peek(m);   /* stays queued: its event is recorded below */
                    brk_at = 0;
                    break;
                }
                m->cur = ring_pop(m);
                m->has_cur = 1;
                m->cur_done = 0;
                freed += m->cur.cost;
            } else if (m->watch_on) {
                hit = watch_hit(m, &m->cur, m->cur_done);
                if (hit == m->cur_done) {
                    brk = m->cur;
                    brk_at = hit;
                    break;
                }
            }
            uint64_t left = m->cur.count - m->cur_done;
            if (hit != NO_HIT) left = hit - m->cur_done;   /* up to the watched element */
            uint64_t take = left < budget ? left : budget;
            work_item *w = &work[k++];
            w->e = m->cur;
            w->from = m->cur_done;
            w->n = take;
            w->failed = 0;
            if (w->from == 0 && m->fault_countdown && --m->fault_countdown == 0) w->failed = 1;
            m->cur_done += take;
            m->taken_seq = w->e.seq + m->cur_done - 1;
            if (budget != UINT64_MAX) budget -= take;
            if (m->cur_done == m->cur.count) m->has_cur = 0;
            else break;   /* a partial entry (stepping, or a watch ahead) ends the chunk */
        }
        if (brk_at != NO_HIT) {
            /* A watch matched: pause before it; the next step applies exactly it. */
            m->paused = 1;
            budget = 0;
            m->break_passed = brk.seq + brk_at;
        }
        if (m->paused) m->step_credits = budget;
        if (freed) {
            set_pending(m, m->pending - freed);
            if (m->space_waiters) pthread_cond_broadcast(&m->space_cv);
        }
        int back_slot = 1 - m->front_slot;
        float *back = m->buf[back_slot];
        m->worker_busy = 1;
        pthread_mutex_unlock(&m->mu);

        for (size_t i = 0; i < k; i++)
            if (!work[i].failed) apply_entry(m, back, &work[i].e, work[i].from, work[i].n);
        pl_prepare(&m->pool);   /* the next payload piece, faulted in here, not by a producer */

        int64_t t_applied = now_ns();
        pthread_mutex_lock(&m->mu);
        m->worker_busy = 0;
        for (size_t i = 0; i < k; i++) {
            work_item *w = &work[i];
            uint64_t first = w->e.seq + w->from;
            if (w->failed) {
                if (!m->worker_err) {
                    m->worker_err = 1;
                    m->worker_err_seq = first;
                    if (w->n > 1)
                        snprintf(m->worker_msg, sizeof m->worker_msg,
                                 "updates seq %llu..%llu failed in the worker (injected fault); "
                                 "they were not applied",
                                 (unsigned long long)first, (unsigned long long)(first + w->n - 1));
                    else
                        snprintf(m->worker_msg, sizeof m->worker_msg,
                                 "update seq %llu failed in the worker (injected fault); it was not applied",
                                 (unsigned long long)first);
                }
            } else {
                ev_record_entry(m, t_applied, BS_EV_APPLY, first, w->n, back_slot, &w->e, w->from);
            }
            m->applied_seq = first + w->n - 1;
            if (w->from + w->n == w->e.count) {
                if (w->failed) entry_free(&w->e);
                else batch_keep(m, &w->e);
            }
        }
        if (m->trace) tw_progress(m->trace, m->applied_seq);
        if (brk_at != NO_HIT)   /* after the applies before it, so the log reads in order */
            ev_record_entry(m, now_ns(), BS_EV_BREAK, brk.seq + brk_at, 1, back_slot, &brk, brk_at);
        if (m->back_waiters) pthread_cond_broadcast(&m->sync_cv);   /* bs_back waits for a still worker */
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---------------------------------------------------------------- create/close */

/* Live attach (live_publisher.c, #included at the end): BUFFERSCOPE_LISTEN. */
static void lp_from_env(bs_manager *m);
static void lp_stop(bs_manager *m);

int bs_create(const bs_config *c, bs_manager **out)
{
    if (!out) return fail(BS_EINVAL, "out is NULL");
    *out = NULL;
    if (!c) return fail(BS_EINVAL, "config is NULL");
    if (c->ndim < 1 || c->ndim > BS_MAX_NDIM)
        return fail(BS_EINVAL, "ndim must be 1, 2 or 3, got %d", (int)c->ndim);
    if (c->max_pending < 1) return fail(BS_EINVAL, "max_pending must be >= 1");
    uint64_t nelem = 1;
    for (int d = 0; d < c->ndim; d++) {
        if (c->shape[d] < 1)
            return fail(BS_EINVAL, "shape[%d] must be >= 1, got %lld", d, (long long)c->shape[d]);
        if ((uint64_t)c->shape[d] > (SIZE_MAX / 16) / nelem)
            return fail(BS_ENOMEM, "shape is too large: the element count overflows");
        nelem *= (uint64_t)c->shape[d];
    }
    if (c->event_capacity > ((uint64_t)1 << 26))
        return fail(BS_EINVAL, "event_capacity must be <= %llu", 1ULL << 26);

    bs_manager *m = calloc(1, sizeof *m);
    if (!m) return fail(BS_ENOMEM, "cannot allocate the manager");
    m->ndim = c->ndim;
    for (int d = 0; d < 3; d++) m->shape3[d] = 1;
    for (int d = 0; d < c->ndim; d++) {
        m->shape[d] = c->shape[d];
        m->shape3[3 - c->ndim + d] = c->shape[d];
    }
    m->nelem = (size_t)nelem;
    m->off32 = nelem <= BS_OFF32_MAX;
    m->max_pending = c->max_pending;
    m->fill = c->fill;
    m->buf[0] = malloc(m->nelem * sizeof(float));
    m->buf[1] = m->buf[0] ? malloc(m->nelem * sizeof(float)) : NULL;
    if (!m->buf[1]) {
        free(m->buf[0]);
        free(m);
        return fail(BS_ENOMEM, "cannot allocate two buffers of %llu bytes",
                    (unsigned long long)(nelem * sizeof(float)));
    }
    m->ev_cap = c->event_capacity;
    m->pay_budget = BS_DEFAULT_PAYLOAD_BUDGET;
    if (m->ev_cap && (!(m->ev = calloc(m->ev_cap, sizeof *m->ev)) ||
                      !(m->evd = calloc(m->ev_cap, sizeof *m->evd)))) {
        free(m->ev);
        free(m->buf[0]);
        free(m->buf[1]);
        free(m);
        return fail(BS_ENOMEM, "cannot allocate the event ring of %llu events (%llu bytes)",
                    (unsigned long long)c->event_capacity,
                    (unsigned long long)(c->event_capacity * (sizeof(bs_event) + sizeof(ev_rec))));
    }
    pthread_once(&g_atfork_once, register_atfork);
    m->fork_generation = __atomic_load_n(&g_fork_generation, __ATOMIC_RELAXED);
    for (size_t i = 0; i < m->nelem; i++) m->buf[0][i] = c->fill;
    memcpy(m->buf[1], m->buf[0], m->nelem * sizeof(float));

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    /* Adaptive: critical sections are short, so a contended lock spins a
     * little before it sleeps in the kernel. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    pthread_mutex_init(&m->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    pl_init(&m->pool);
    pthread_cond_init(&m->work_cv, &ca);    /* timed waits too (gather) */
    pthread_cond_init(&m->space_cv, &ca);   /* timed waits too (bs_wait_room) */
    pthread_cond_init(&m->sync_cv, &ca);
    pthread_condattr_destroy(&ca);

    int rc = pthread_create(&m->worker, NULL, worker_main, m);
    if (rc != 0) {
        bs_destroy(m);   /* no worker to join (worker_started is 0) */
        return fail(BS_ETHREAD, "pthread_create failed: %s", strerror(rc));
    }
    m->worker_started = 1;
    trace_from_env(m);
    lp_from_env(m);   /* live attach: never fails bs_create */
    *out = m;
    return BS_OK;
}

int bs_close(bs_manager *m)
{
    if (m && forked_away(m)) return BS_OK;   /* closed in this process; bs_destroy frees it */
    CHECK_M(m);
    pthread_mutex_lock(&m->mu);
    if (m->close_started) {
        /* Closed, or being closed by another thread (perhaps still stopping the
         * publisher, which reads m): return once that close is done. */
        while (!m->close_done) pthread_cond_wait(&m->sync_cv, &m->mu);
        pthread_mutex_unlock(&m->mu);
        return BS_OK;
    }
    m->close_started = 1;
    pthread_mutex_unlock(&m->mu);
    lp_stop(m);   /* live attach: the viewer gets the last epoch and bye while m still works */
    pthread_mutex_lock(&m->mu);
    m->closed = 1;
    m->urgent++;
    pthread_cond_broadcast(&m->work_cv);
    pthread_cond_broadcast(&m->space_cv);
    pthread_cond_broadcast(&m->sync_cv);
    int join = m->worker_started;
    m->worker_started = 0;
    pthread_mutex_unlock(&m->mu);
    if (join) pthread_join(m->worker, NULL);
    bs_trace_stop(m);   /* everything recorded is written before close returns */

    /* The worker is gone: free what it and the queue held. */
    pthread_mutex_lock(&m->mu);
    while (m->ring_len) {
        entry e = ring_pop(m);
        entry_free(&e);
    }
    m->markers_queued = 0;
    set_pending(m, 0);
    if (m->has_cur) entry_free(&m->cur);
    m->has_cur = 0;
    for (size_t i = 0; i < m->batch_len; i++) entry_free(&m->batch[i]);
    m->batch_len = 0;
    for (uint64_t i = 0; i < m->ev_cap; i++)   /* events are not read after close */
        if (m->evd[i].pl) {
            ev_let_go(m, &m->evd[i]);
            m->evd[i].dropped = 1;
        }
    m->close_done = 1;
    pthread_cond_broadcast(&m->sync_cv);
    pthread_mutex_unlock(&m->mu);
    return BS_OK;
}

int bs_destroy(bs_manager *m)
{
    if (!m) return BS_OK;
    if (forked_away(m)) {
        /* In a fork()ed child: the worker, and any thread that held the lock,
         * exist only in the parent. Touch no lock or condition variable (their
         * state names the parent's threads) and no queue (another thread may
         * have been changing it); free the buffers and the event ring, whose
         * pointers never change, and the manager. The queue's memory is left. */
        free(m->ev);
        free(m->evd);
        free(m->buf[0]);
        free(m->buf[1]);
        free(m);
        return BS_OK;
    }
    bs_close(m);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->work_cv);
    pthread_cond_destroy(&m->space_cv);
    pthread_cond_destroy(&m->sync_cv);
    free(m->ring);
    free(m->batch);
    free(m->ev);
    free(m->evd);
    free(m->watch_elems);
    free(m->watch_prod);
    pl_destroy(&m->pool);   /* bs_close released every block */
    free(m->buf[0]);
    free(m->buf[1]);
    free(m);
    return BS_OK;
}

/* ---------------------------------------------------------------- enqueue */

/* Caller holds mu: do `units` fit now? More than the bound fit an empty queue. */
static int has_room(const bs_manager *m, uint64_t units)
{
    if (units > m->max_pending) return m->pending == 0;
    return m->pending <= m->max_pending - units;
}

/* Caller holds mu: wait until `units` fit (or closed). */
static int wait_for_room(bs_manager *m, uint64_t units, int block)
{
    for (;;) {
        if (m->closed) return fail(BS_ECLOSED, "manager is closed");
        if (has_room(m, units)) return BS_OK;
        if (!block)
            return fail(BS_EFULL, "queue full: %llu of %llu element units pending, %llu more elements do not fit",
                        (unsigned long long)m->pending, (unsigned long long)m->max_pending,
                        (unsigned long long)units);
        m->space_waiters++;
        wake_worker_now(m);
        pthread_cond_wait(&m->space_cv, &m->mu);
        m->space_waiters--;
    }
}

/* Caller holds mu and has room: push e with fresh sequence numbers. */
static int push_entry(bs_manager *m, entry *e)
{
    e->seq = m->last_seq + 1;
    e->ticket = m->tickets_issued;   /* keeps tickets sorted along the ring (set before the copy) */
    int rc = ring_push(m, e);
    if (rc) return rc;
    m->last_seq += e->count;
    set_pending(m, m->pending + e->cost);
    if (m->trace) trace_entry(m, e, e->data);
    ev_record_entry(m, now_ns(), BS_EV_ENQUEUE, e->seq, e->count, 1 - m->front_slot, e, 0);
    wake_worker(m);
    return BS_OK;
}

/* Caller holds mu: may a producer apply an update itself, right now? Only when
 * that cannot change the order: nothing queued or half applied, the worker idle,
 * the back caught up, nothing paused, no other direct write. */
/* Caller holds mu: a direct write could go ahead but for a pending catch-up. */
static int direct_write_allowed_but_catch_up(const bs_manager *m)
{
    return !m->closed && m->ring_len == 0 && !m->has_cur && !m->worker_busy &&
           !m->paused && !m->direct_busy && !m->watch_on &&
           m->applied_seq == m->last_seq && m->fault_countdown == 0;
}

static int direct_write_allowed(const bs_manager *m)
{
    return direct_write_allowed_but_catch_up(m) && !m->catchup_pending;
}

/* A block of its own holding a copy of n elements of data (NULL: no memory). */
static payload *payload_copy(bs_manager *m, const float *data, uint64_t n)
{
    payload *p = payload_new(&m->pool, n, 0);
    if (p) memcpy(p->values, data, n * sizeof(float));
    return p;
}

/* Caller holds mu: event `index` (an enqueue event recorded before its data was
 * copied) holds p now, when it is still in the ring; else it reports it dropped. */
static void ev_attach(bs_manager *m, uint64_t index, payload *p)
{
    if (!m->ev_cap || index >= m->ev_count || m->ev_count - index > m->ev_cap) return;
    ev_rec *d = &m->evd[index % m->ev_cap];
    if (d->pl || index < m->ev_stripped) return;   /* stripped events stay a prefix */
    d->dropped = 0;
    ev_hold(m, d, p);
}

/* A large write with an idle worker: the producer copies the caller's data
 * straight into the back buffer (one copy instead of two: no payload copy for
 * the worker to apply). The back is claimed with direct_busy, which stops the
 * worker and every swap until the copy is recorded, so the order is the queue's.
 * Returns 1 when it did the write, 0 when the normal path must. */
static int try_direct_write(bs_manager *m, entry *e, const float *data, uint64_t *seq_out)
{
    pthread_mutex_lock(&m->mu);
    /* The worker only catching up after a swap, nothing queued: waiting for it
     * is cheaper than a payload copy the worker would copy again. */
    while (!m->closed && m->ring_len == 0 && !m->has_cur && !m->paused && m->catchup_pending) {
        /* This write overwrites it all, and nothing else stops the direct write (a
         * catch-up skipped for a write that then went through the queue would leave
         * the back stale until that write is applied: a swap could show it). */
        if (direct_write_allowed_but_catch_up(m) && covers_catch_up(m, e)) {
            skip_catch_up(m);
            break;
        }
        wake_worker_now(m);
        pthread_cond_wait(&m->sync_cv, &m->mu);   /* the worker broadcasts when caught up */
    }
    if (!direct_write_allowed(m)) {
        pthread_mutex_unlock(&m->mu);
        return 0;
    }
    m->direct_busy = 1;
    e->seq = ++m->last_seq;
    m->taken_seq = e->seq;
    if (m->trace) trace_entry(m, e, data);
    int back_slot = 1 - m->front_slot;
    float *back = m->buf[back_slot];
    uint64_t enq_index = m->ev_count;
    ev_record_entry(m, now_ns(), BS_EV_ENQUEUE, e->seq, 1, back_slot, e, 0);
    /* Its events get a copy of the data when it fits a quarter of the budget
     * (else they report it dropped); made with the lock dropped, as the write. */
    uint64_t budget = __atomic_load_n(&m->pay_budget, __ATOMIC_RELAXED);
    int keep = m->ev_cap && e->touched <= budget / 4;
    pthread_mutex_unlock(&m->mu);

    e->data = (float *)data;   /* borrowed for the copy, never freed here */
    apply_region(m, back, e);
    e->data = NULL;
    payload *pl = keep ? payload_copy(m, data, e->touched) : NULL;

    pthread_mutex_lock(&m->mu);
    m->direct_busy = 0;
    m->applied_seq = e->seq;
    if (m->trace) tw_progress(m->trace, m->applied_seq);
    e->pl = pl;   /* for the events only: the entry never owned the caller's data */
    ev_record_entry(m, now_ns(), BS_EV_APPLY, e->seq, 1, back_slot, e, 0);
    ev_attach(m, enq_index, pl);
    e->pl = NULL;
    payload_unref(pl);   /* the events hold it now (or nothing does) */
    batch_keep(m, e);
    if (m->back_waiters) pthread_cond_broadcast(&m->sync_cv);
    wake_worker_now(m);   /* it may have work (or a sync) that waited for us */
    if (seq_out) *seq_out = e->seq;
    pthread_mutex_unlock(&m->mu);
    return 1;
}

int bs_enqueue(bs_manager *m, const bs_update *u, uint64_t producer, int block, uint64_t *seq_out)
{
    CHECK_M(m);
    entry e;
    int rc = validate_update(m, u, &e);
    if (rc) return rc;
    e.producer = producer;
    /* The direct path needs no room in the queue, so block = 0 may take it too. */
    if (e.op == BS_OP_WRITE && e.touched >= DIRECT_MIN && try_direct_write(m, &e, u->data, seq_out))
        return BS_OK;
    if (!block && e.op == BS_OP_WRITE && e.touched) {   /* refuse a full queue before copying the payload */
        pthread_mutex_lock(&m->mu);
        rc = wait_for_room(m, e.cost, 0);
        pthread_mutex_unlock(&m->mu);
        if (rc) return rc;
    }
    if ((rc = copy_payload(m, &e, u))) return rc;
    pthread_mutex_lock(&m->mu);
    rc = wait_for_room(m, e.cost, block);
    if (!rc) rc = push_entry(m, &e);
    if (!rc && seq_out) *seq_out = e.seq;
    pthread_mutex_unlock(&m->mu);
    if (rc) entry_free(&e);
    return rc;
}

int bs_enqueue_set(bs_manager *m, int64_t i0, int64_t i1, int64_t i2, double value,
                   uint64_t producer, int block, uint64_t *seq_out)
{
    bs_update u;
    u.op = BS_OP_SET;
    u.start[0] = i0;
    u.start[1] = i1;
    u.start[2] = i2;
    u.value = value;
    u.data = NULL;
    return bs_enqueue(m, &u, producer, block, seq_out);
}

int64_t bs_enqueue_set_seq(bs_manager *m, int64_t i0, int64_t i1, int64_t i2, double value,
                           uint64_t producer)
{
    uint64_t seq = 0;
    int rc = bs_enqueue_set(m, i0, i1, i2, value, producer, 0, &seq);
    return rc ? -(int64_t)rc : (int64_t)seq;
}

int bs_enqueue_batch(bs_manager *m, const bs_update *u, size_t n, uint64_t producer,
                     int block, uint64_t *seqs_out, size_t *bad_index_out)
{
    CHECK_M(m);
    if (n == 0) return BS_OK;
    if (!u) return fail(BS_EINVAL, "updates is NULL");
    if (n > SIZE_MAX / sizeof(entry)) return fail(BS_EINVAL, "a batch of %zu updates is too many", n);
    entry *es = malloc(n * sizeof *es);
    if (!es) return fail(BS_ENOMEM, "cannot allocate %zu updates", n);
    int rc = BS_OK;
    size_t i;
    for (i = 0; i < n; i++) {
        if ((rc = validate_update(m, &u[i], &es[i]))) break;
        es[i].producer = producer;
    }
    if (!rc) {
        for (i = 0; i < n; i++)
            if ((rc = copy_payload(m, &es[i], &u[i]))) break;
        if (rc) {
            for (size_t j = 0; j < i; j++) entry_free(&es[j]);
        }
    }
    if (rc) {
        if (bad_index_out) *bad_index_out = i;
        char msg[sizeof tl_err];
        snprintf(msg, sizeof msg, "update %zu: %.280s", i, tl_err);
        free(es);
        return fail(rc, "%s", msg);
    }
    uint64_t total = 0;   /* cannot overflow: each cost is at most one buffer */
    for (size_t j = 0; j < n; j++) total += es[j].cost;
    pthread_mutex_lock(&m->mu);
    /* Whole batch at once when it fits the bound (or is one entry); otherwise in
     * order as room appears. */
    int whole = total <= m->max_pending || n == 1;
    if (!block && !whole)
        rc = fail(BS_EFULL, "a batch of %llu elements exceeds the queue bound of %llu",
                  (unsigned long long)total, (unsigned long long)m->max_pending);
    size_t pushed = 0;
    if (!rc && whole && !(rc = wait_for_room(m, total, block)) && !(rc = ring_reserve(m, n))) {
        for (; pushed < n; pushed++) {
            push_entry(m, &es[pushed]);   /* cannot fail: room reserved */
            if (seqs_out) seqs_out[pushed] = es[pushed].seq;
        }
    }
    while (!rc && pushed < n) {
        if ((rc = wait_for_room(m, es[pushed].cost, block))) break;
        if ((rc = push_entry(m, &es[pushed]))) break;
        if (seqs_out) seqs_out[pushed] = es[pushed].seq;
        pushed++;
    }
    pthread_mutex_unlock(&m->mu);
    for (size_t j = pushed; j < n; j++) entry_free(&es[j]);
    free(es);
    return rc;
}

/* Flat offsets of cnt n-d indices into out (m->off32 wide each); returns 0
 * when any is out of bounds. One pass without branches (a negative index wraps
 * to a huge unsigned one); a bad index leaves garbage that is never used. */
static int flat_offsets(const bs_manager *m, const int64_t *ix, size_t cnt, void *out)
{
    const int nd = m->ndim;
    const uint64_t s0 = (uint64_t)m->shape[0];
    const uint64_t s1 = nd > 1 ? (uint64_t)m->shape[1] : 1;
    const uint64_t s2 = nd > 2 ? (uint64_t)m->shape[2] : 1;
    uint64_t bad = 0;
#define FLAT(T) do { \
        T *o = out; \
        if (nd == 1) { \
            for (size_t j = 0; j < cnt; j++) { \
                uint64_t a = (uint64_t)ix[j]; \
                bad |= a >= s0; \
                o[j] = (T)a; \
            } \
        } else if (nd == 2) { \
            for (size_t j = 0; j < cnt; j++) { \
                uint64_t a = (uint64_t)ix[2 * j], b = (uint64_t)ix[2 * j + 1]; \
                bad |= (a >= s0) | (b >= s1); \
                o[j] = (T)(a * s1 + b); \
            } \
        } else { \
            for (size_t j = 0; j < cnt; j++) { \
                uint64_t a = (uint64_t)ix[3 * j], b = (uint64_t)ix[3 * j + 1], c = (uint64_t)ix[3 * j + 2]; \
                bad |= (a >= s0) | (b >= s1) | (c >= s2); \
                o[j] = (T)((a * s1 + b) * s2 + c); \
            } \
        } \
    } while (0)
    if (m->off32) FLAT(uint32_t);
    else FLAT(uint64_t);
#undef FLAT
    return !bad;
}

int bs_set_many(bs_manager *m, const int64_t *indices, const float *values, size_t n,
                uint64_t producer, int block, uint64_t *seqs_out, size_t *bad_index_out)
{
    CHECK_M(m);
    if (n == 0) return BS_OK;
    if (!indices || !values) return fail(BS_EINVAL, "indices or values is NULL");
    const int nd = m->ndim;
    uint64_t chunk = m->max_pending < SETS_CHUNK ? m->max_pending : SETS_CHUNK;
    if (n > SIZE_MAX / 16) return fail(BS_EINVAL, "set_many: %zu elements is too many", n);
    size_t nchunks = (n + chunk - 1) / chunk;
    entry one;   /* the common case, one chunk: no allocation */
    memset(&one, 0, sizeof one);
    entry *es = nchunks == 1 ? &one : calloc(nchunks, sizeof *es);
    if (!es) return fail(BS_ENOMEM, "cannot allocate %zu chunks", nchunks);
    int rc = BS_OK;
    size_t c;
    /* Validate and copy every chunk before anything is queued. */
    for (c = 0; c < nchunks && !rc; c++) {
        size_t lo = c * chunk, cnt = (n - lo) < chunk ? (n - lo) : chunk;
        entry *e = &es[c];
        e->kind = ENTRY_SETS;
        e->op = BS_OP_SET;
        e->count = cnt;
        e->cost = cnt;
        e->touched = cnt;
        e->producer = producer;
        e->pl = payload_new(&m->pool, cnt, m->off32 ? sizeof(uint32_t) : sizeof(uint64_t));
        if (!e->pl) {
            rc = fail(BS_ENOMEM, "cannot copy %zu element sets", cnt);
            break;
        }
        e->data = e->pl->values;
        e->offsets = e->pl->offsets;
        const int64_t *ix = indices + lo * nd;
        /* Fast pass without branches (a negative index wraps to a huge unsigned
         * one); only when it finds a bad index does the checked pass name it. */
        if (!flat_offsets(m, ix, cnt, e->offsets)) {
            for (size_t j = 0; j < cnt && !rc; j++, ix += nd) {
                for (int d = 0; d < nd; d++) {
                    int64_t i = ix[d];
                    if (i < 0 || i >= m->shape[d]) {
                        if (bad_index_out) *bad_index_out = lo + j;
                        rc = fail(BS_EINVAL,
                                  "set_many: element %zu has index %lld in dimension %d, out of bounds for size %lld",
                                  lo + j, (long long)i, d, (long long)m->shape[d]);
                        break;
                    }
                }
            }
        }
        if (!rc) memcpy(e->data, values + lo, cnt * sizeof(float));
    }
    if (!rc && !block && n > m->max_pending)   /* valid, but it can never fit at once */
        rc = fail(BS_EFULL, "%zu sets exceed the queue bound of %llu", n,
                  (unsigned long long)m->max_pending);
    size_t pushed = 0;
    if (!rc) {
        pthread_mutex_lock(&m->mu);
        uint64_t total = n;
        int whole = total <= m->max_pending;
        if (whole && (rc = wait_for_room(m, total, block)) == BS_OK) rc = ring_reserve(m, nchunks);
        for (; !rc && pushed < nchunks; pushed++) {
            /* When the whole call fits the bound it goes in at once, unsplit by others. */
            uint64_t want = (whole && pushed == 0) ? total : es[pushed].count;
            if (!whole && (rc = wait_for_room(m, want, block))) break;
            if ((rc = push_entry(m, &es[pushed]))) break;
        }
        pthread_mutex_unlock(&m->mu);
    }
    for (size_t c2 = 0; seqs_out && c2 < pushed; c2++) {   /* (es keeps each pushed chunk's seq) */
        uint64_t *so = seqs_out + c2 * chunk;
        const uint64_t first = es[c2].seq, cnt = es[c2].count;
        for (uint64_t j = 0; j < cnt; j++) so[j] = first + j;
    }
    for (size_t j = pushed; j < nchunks; j++) entry_free(&es[j]);
    if (es != &one) free(es);
    return rc;
}

/* ---------------------------------------------------------------- sync & front */

/* Caller holds mu: the ring position of the marker of `ticket`, or ring_len
 * when it is not queued. Tickets never decrease along the ring (every entry
 * records the tickets issued when it was queued), so this is a binary search. */
static size_t find_marker(const bs_manager *m, uint64_t ticket)
{
    size_t lo = 0, hi = m->ring_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->ring[(m->ring_head + mid) % m->ring_cap].ticket < ticket) lo = mid + 1;
        else hi = mid;
    }
    if (lo < m->ring_len) {
        const entry *e = &m->ring[(m->ring_head + lo) % m->ring_cap];
        if (e->kind == ENTRY_SYNC && e->ticket == ticket) return lo;
    }
    return m->ring_len;
}

/* Caller holds mu, which this releases: the end of a completed synchronize. */
static int sync_done(bs_manager *m, uint64_t *epoch_out)
{
    if (epoch_out) *epoch_out = m->epoch;
    if (m->worker_err && m->worker_err_seq <= m->visible_seq) {
        m->worker_err = 0;
        char msg[sizeof m->worker_msg];
        memcpy(msg, m->worker_msg, sizeof msg);
        pthread_mutex_unlock(&m->mu);
        return fail(BS_EWORKER, "%s", msg);
    }
    pthread_mutex_unlock(&m->mu);
    return BS_OK;
}

/* Caller holds mu: a marker was queued. Wake the worker unless it is paused
 * behind an update it may not apply (it could do nothing but go back to sleep:
 * a paused manager polled with synchronize(timeout=0) stays cheap). */
static void wake_for_marker(bs_manager *m)
{
    if (m->paused && !m->step_credits && (m->has_cur || ring_peek(m)->kind != ENTRY_SYNC)) return;
    wake_worker_now(m);
}

/* Caller holds mu: nothing queued (cancelled markers aside), nothing half
 * applied, no direct write: the front can show everything with one swap. */
static int all_applied(const bs_manager *m)
{
    return m->pending == 0 && !m->has_cur && !m->direct_busy && m->applied_seq == m->last_seq;
}

int bs_sync_begin(bs_manager *m, uint64_t *ticket_out)
{
    CHECK_M(m);
    if (!ticket_out) return fail(BS_EINVAL, "ticket_out is NULL");
    *ticket_out = 0;
    pthread_mutex_lock(&m->mu);
    if (m->closed) {
        pthread_mutex_unlock(&m->mu);
        return fail(BS_ECLOSED, "manager is closed");
    }
    /* Everything applied: swap here, no round trip through the worker. A
     * catch-up still running (the last swap's) is waited for: it is bounded
     * work the worker does even when paused, never queued updates. */
    while (!m->closed && all_applied(m) && m->catchup_pending) {
        wake_worker_now(m);   /* it may be waiting before the catch-up (delay_catch_up) */
        pthread_cond_wait(&m->sync_cv, &m->mu);   /* the worker broadcasts when caught up */
    }
    if (m->closed) {
        pthread_mutex_unlock(&m->mu);
        return fail(BS_ECLOSED, "manager is closed");
    }
    /* From here mu is held until the marker is placed: the event and the trace's
     * sync line sit after exactly the updates this call covers. */
    ev_record(m, BS_EV_SYNC_BEGIN, m->last_seq, 0, 0, m->front_slot, -1);
    if (m->trace) tw_sync(m->trace, m->last_seq);
    if (all_applied(m)) {
        uint64_t ticket = ++m->tickets_issued;
        swap_buffers(m, ticket);
        if (m->catchup_pending) wake_worker_now(m);   /* it catches up even when paused */
        *ticket_out = ticket;
        pthread_mutex_unlock(&m->mu);
        return BS_OK;
    }
    /* A marker at the tail of the queue already covers everything this call
     * must: share it (a cancelled one is revived with a fresh ticket), so
     * consecutive markers never pile up. */
    entry *tail = m->ring_len ? &m->ring[(m->ring_head + m->ring_len - 1) % m->ring_cap] : NULL;
    if (tail && tail->kind == ENTRY_SYNC) {
        if (tail->waiters == 0) tail->ticket = ++m->tickets_issued;
        tail->waiters++;
        tail->seq = m->last_seq;
        *ticket_out = tail->ticket;
        wake_for_marker(m);
        pthread_mutex_unlock(&m->mu);
        return BS_OK;
    }
    entry marker;
    memset(&marker, 0, sizeof marker);
    marker.kind = ENTRY_SYNC;
    marker.op = -1;
    marker.ticket = m->tickets_issued + 1;
    marker.waiters = 1;
    marker.seq = m->last_seq;
    int rc = ring_push(m, &marker);
    if (rc) {
        pthread_mutex_unlock(&m->mu);
        return rc;
    }
    m->tickets_issued++;
    m->markers_queued++;
    wake_for_marker(m);
    *ticket_out = marker.ticket;
    pthread_mutex_unlock(&m->mu);
    return BS_OK;
}

/* An absolute CLOCK_MONOTONIC time timeout_s (>= 0) from now. */
static struct timespec deadline_after(double timeout_s)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    double secs = timeout_s > 1e9 ? 1e9 : timeout_s;
    time_t whole = (time_t)secs;
    long nsec = (long)((secs - (double)whole) * 1e9);
    deadline.tv_sec += whole;
    deadline.tv_nsec += nsec;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    return deadline;
}

int bs_sync_wait(bs_manager *m, uint64_t ticket, double timeout_s, uint64_t *epoch_out)
{
    CHECK_M(m);
    if (timeout_s != timeout_s) return fail(BS_EINVAL, "timeout is NaN");
    int timed = timeout_s >= 0;
    struct timespec deadline;
    if (timed) deadline = deadline_after(timeout_s);
    pthread_mutex_lock(&m->mu);
    if (ticket == 0 || ticket > m->tickets_issued) {
        pthread_mutex_unlock(&m->mu);
        return fail(BS_EINVAL, "sync ticket %llu was never issued", (unsigned long long)ticket);
    }
    while (!m->closed && m->tickets_done < ticket) {
        /* A zero timeout only looks: no wait, no lock hand-over. */
        int w = timeout_s == 0 ? ETIMEDOUT
              : timed ? pthread_cond_timedwait(&m->sync_cv, &m->mu, &deadline)
                      : pthread_cond_wait(&m->sync_cv, &m->mu);
        if (w == ETIMEDOUT && m->tickets_done < ticket) {
            pthread_mutex_unlock(&m->mu);
            return fail(BS_ETIMEDOUT, "sync ticket %llu not done yet", (unsigned long long)ticket);
        }
    }
    if (m->tickets_done < ticket) {
        pthread_mutex_unlock(&m->mu);
        return fail(BS_ECLOSED, "manager was closed during synchronize");
    }
    return sync_done(m, epoch_out);
}

int bs_sync_cancel(bs_manager *m, uint64_t ticket, uint64_t *epoch_out)
{
    CHECK_M(m);
    pthread_mutex_lock(&m->mu);
    if (ticket == 0 || ticket > m->tickets_issued) {
        pthread_mutex_unlock(&m->mu);
        return fail(BS_EINVAL, "sync ticket %llu was never issued", (unsigned long long)ticket);
    }
    if (m->tickets_done >= ticket) {
        /* It swapped after all. A worker failure stays for bs_sync_wait (or the
         * next synchronize): a caller that gives up does not swallow it. */
        if (epoch_out) *epoch_out = m->epoch;
        pthread_mutex_unlock(&m->mu);
        return BS_OK;
    }
    if (m->closed) {
        pthread_mutex_unlock(&m->mu);
        return fail(BS_ECLOSED, "manager was closed during synchronize");
    }
    size_t at = find_marker(m, ticket);
    if (at < m->ring_len) {
        entry *mk = &m->ring[(m->ring_head + at) % m->ring_cap];
        if (mk->waiters) mk->waiters--;
        if (mk->waiters == 0 && at == m->ring_len - 1) {
            /* A cancelled marker at the tail guards nothing: drop it. One in the
             * middle stays until the worker reaches it (it does not swap), and a
             * later synchronize() revives a cancelled one at the tail instead of
             * queueing another, so at most one marker sits between two updates. */
            m->ring_len--;
            m->markers_queued--;
        }
    }
    uint64_t pend = m->pending;
    int paused = m->paused;
    pthread_mutex_unlock(&m->mu);
    return fail(BS_ETIMEDOUT, "%llu updates still pending%s; nothing was swapped",
                (unsigned long long)pend, paused ? ", worker paused" : "");
}

int bs_synchronize(bs_manager *m, double timeout_s, uint64_t *epoch_out)
{
    CHECK_M(m);
    if (timeout_s != timeout_s) return fail(BS_EINVAL, "timeout is NaN");
    uint64_t ticket;
    int rc = bs_sync_begin(m, &ticket);
    if (rc) return rc;
    rc = bs_sync_wait(m, ticket, timeout_s < 0 ? -1.0 : timeout_s, epoch_out);
    if (rc != BS_ETIMEDOUT) return rc;
    rc = bs_sync_cancel(m, ticket, epoch_out);
    if (rc == BS_OK) return bs_sync_wait(m, ticket, 0.0, epoch_out);   /* swapped after all */
    if (rc == BS_ETIMEDOUT) {
        char msg[sizeof tl_err];
        snprintf(msg, sizeof msg, "%.280s", tl_err);
        return fail(BS_ETIMEDOUT, "synchronize timed out after %.3f s (%s)", timeout_s, msg);
    }
    return rc;
}

int bs_wait_room(bs_manager *m, uint64_t units, double timeout_s)
{
    CHECK_M(m);
    if (timeout_s != timeout_s) return fail(BS_EINVAL, "timeout is NaN");
    int timed = timeout_s >= 0;
    struct timespec deadline;
    if (timed) deadline = deadline_after(timeout_s);
    pthread_mutex_lock(&m->mu);
    int rc = BS_OK;
    m->space_waiters++;
    while (!m->closed && !has_room(m, units)) {
        wake_worker_now(m);
        int w = timed ? pthread_cond_timedwait(&m->space_cv, &m->mu, &deadline)
                      : pthread_cond_wait(&m->space_cv, &m->mu);
        if (w == ETIMEDOUT && !m->closed && !has_room(m, units)) {
            rc = fail(BS_ETIMEDOUT, "no room for %llu elements yet (%llu of %llu pending)",
                      (unsigned long long)units, (unsigned long long)m->pending,
                      (unsigned long long)m->max_pending);
            break;
        }
    }
    m->space_waiters--;
    if (!rc && m->closed) rc = fail(BS_ECLOSED, "manager is closed");
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int bs_queue_counts(bs_manager *m, uint64_t *entries_out, uint64_t *markers_out)
{
    CHECK_M(m);
    if (!entries_out || !markers_out) return fail(BS_EINVAL, "NULL output argument");
    pthread_mutex_lock(&m->mu);
    *entries_out = m->ring_len;
    *markers_out = m->markers_queued;
    pthread_mutex_unlock(&m->mu);
    return BS_OK;
}

int bs_front(bs_manager *m, const float **data_out, uint64_t *epoch_out)
{
    CHECK_M(m);
    if (!data_out) return fail(BS_EINVAL, "data_out is NULL");
    pthread_mutex_lock(&m->mu);
    *data_out = m->buf[m->front_slot];
    if (epoch_out) *epoch_out = m->epoch;
    pthread_mutex_unlock(&m->mu);
    return BS_OK;
}

int bs_stats_get(bs_manager *m, bs_stats *out)
{
    CHECK_M(m);
    if (!out) return fail(BS_EINVAL, "out is NULL");
    pthread_mutex_lock(&m->mu);
    out->epoch = m->epoch;
    out->last_seq = m->last_seq;
    out->applied_seq = m->applied_seq;
    out->visible_seq = m->visible_seq;
    out->pending = m->pending;
    out->max_pending = m->max_pending;
    out->events_recorded = m->ev_count;
    out->paused = m->paused;
    out->front_slot = m->front_slot;
    pthread_mutex_unlock(&m->mu);
    return BS_OK;
}

int bs_set_paused(bs_manager *m, int paused)
{
    CHECK_M(m);
    pthread_mutex_lock(&m->mu);
    int closed = m->closed;
    if (!closed) {
        m->paused = paused ? 1 : 0;
        m->step_credits = 0;
        wake_worker_now(m);
    }
    pthread_mutex_unlock(&m->mu);
    return closed ? fail(BS_ECLOSED, "manager is closed") : BS_OK;
}

int bs_step(bs_manager *m, uint64_t n)
{
    CHECK_M(m);
    pthread_mutex_lock(&m->mu);
    int closed = m->closed;
    if (!closed && m->paused) {
        /* At most what is queued and not yet taken: no credit is banked on an
         * empty queue for updates that come later. */
        uint64_t untaken = m->last_seq - m->taken_seq;
        uint64_t want = n > UINT64_MAX - m->step_credits ? UINT64_MAX : m->step_credits + n;
        m->step_credits = want < untaken ? want : untaken;
        wake_worker_now(m);
    }
    int paused = m->paused;
    pthread_mutex_unlock(&m->mu);
    if (closed) return fail(BS_ECLOSED, "manager is closed");
    if (!paused) return fail(BS_EINVAL, "step needs a paused worker");
    return BS_OK;
}

int bs_events_read(bs_manager *m, uint64_t since, bs_event *out, size_t cap,
                   size_t *n_out, uint64_t *next_out)
{
    CHECK_M(m);
    if (!n_out || !next_out || (cap && !out)) return fail(BS_EINVAL, "NULL output argument");
    pthread_mutex_lock(&m->mu);
    uint64_t oldest = m->ev_count > m->ev_cap ? m->ev_count - m->ev_cap : 0;
    uint64_t i = since < oldest ? oldest : since;
    size_t n = 0;
    for (; i < m->ev_count && n < cap; i++, n++) out[n] = m->ev[i % m->ev_cap];
    *n_out = n;
    *next_out = i;
    pthread_mutex_unlock(&m->mu);
    return BS_OK;
}

/* Caller holds mu: the detail of event record d of event e, for the caller. */
static void detail_out(const bs_manager *m, const bs_event *e, const ev_rec *d, bs_event_detail *o)
{
    memset(o, 0, sizeof *o);
    o->index = e->index;
    o->what = d->what;
    o->payload_dropped = d->dropped;
    int pad = 3 - m->ndim;
    if (d->what == BS_DETAIL_REGION || d->what == BS_DETAIL_WRITE) {
        for (int k = 0; k < m->ndim; k++) {
            o->start[k] = d->start[pad + k];
            o->stop[k] = d->stop[pad + k];
        }
        o->value = d->value;
    }
    if (d->what == BS_DETAIL_SETS) o->payload_count = e->count;
    else if (d->what == BS_DETAIL_WRITE) {
        uint64_t v = 1;
        for (int k = 0; k < 3; k++) v *= (uint64_t)(d->stop[k] - d->start[k]);
        o->payload_count = v;
    }
}

int bs_events_read_detail(bs_manager *m, uint64_t since, bs_event *out,
                          bs_event_detail *details, size_t cap, size_t *n_out,
                          uint64_t *next_out)
{
    CHECK_M(m);
    if (!n_out || !next_out || (cap && (!out || !details)))
        return fail(BS_EINVAL, "NULL output argument");
    pthread_mutex_lock(&m->mu);
    uint64_t oldest = m->ev_count > m->ev_cap ? m->ev_count - m->ev_cap : 0;
    uint64_t i = since < oldest ? oldest : since;
    size_t n = 0;
    for (; i < m->ev_count && n < cap; i++, n++) {
        out[n] = m->ev[i % m->ev_cap];
        detail_out(m, &out[n], &m->evd[i % m->ev_cap], &details[n]);
    }
    *n_out = n;
    *next_out = i;
    pthread_mutex_unlock(&m->mu);
    return BS_OK;
}

int bs_event_payload(bs_manager *m, uint64_t event_index, int64_t *indices_out,
                     float *values_out, size_t cap, size_t *n_out)
{
    CHECK_M(m);
    if (!n_out) return fail(BS_EINVAL, "n_out is NULL");
    *n_out = 0;
    if (cap && !values_out) return fail(BS_EINVAL, "values_out is NULL");
    pthread_mutex_lock(&m->mu);
    if (!m->ev_cap || event_index >= m->ev_count || m->ev_count - event_index > m->ev_cap) {
        pthread_mutex_unlock(&m->mu);
        return BS_OK;   /* not (or no longer) in the ring */
    }
    const ev_rec *d = &m->evd[event_index % m->ev_cap];
    payload *p = d->pl;
    uint64_t from = d->from;
    uint64_t n = p ? (d->what == BS_DETAIL_SETS ? m->ev[event_index % m->ev_cap].count : p->n) : 0;
    if (n > cap) {
        pthread_mutex_unlock(&m->mu);
        *n_out = (size_t)n;
        return fail(BS_EINVAL, "event %llu has %llu payload elements, more than cap %zu",
                    (unsigned long long)event_index, (unsigned long long)n, cap);
    }
    if (p) __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);   /* copied with the lock dropped */
    pthread_mutex_unlock(&m->mu);
    if (!p || n == 0) {
        payload_unref(p);
        return BS_OK;
    }
    memcpy(values_out, p->values + from, n * sizeof(float));
    if (indices_out && p->offsets) {
        const int nd = m->ndim;
        for (uint64_t j = 0; j < n; j++) {
            uint64_t off = offset_at(m, p->offsets, from + j);
            for (int k = nd - 1; k >= 0; k--) {
                indices_out[j * nd + k] = (int64_t)(off % (uint64_t)m->shape[k]);
                off /= (uint64_t)m->shape[k];
            }
        }
    }
    payload_unref(p);
    *n_out = (size_t)n;
    return BS_OK;
}

int bs_set_payload_budget(bs_manager *m, uint64_t elements)
{
    CHECK_M(m);
    pthread_mutex_lock(&m->mu);
    int closed = m->closed;
    if (!closed) {
        __atomic_store_n(&m->pay_budget, elements, __ATOMIC_RELAXED);
        if (m->ev_payload > elements) ev_strip(m);
    }
    pthread_mutex_unlock(&m->mu);
    return closed ? fail(BS_ECLOSED, "manager is closed") : BS_OK;
}

int bs_payload_in_use(bs_manager *m, uint64_t *elements_out)
{
    CHECK_M(m);
    if (!elements_out) return fail(BS_EINVAL, "elements_out is NULL");
    pthread_mutex_lock(&m->mu);
    *elements_out = m->ev_payload;
    pthread_mutex_unlock(&m->mu);
    return BS_OK;
}

/* Caller holds mu: nothing writes the back buffer right now. */
static int back_still(const bs_manager *m)
{
    return !m->worker_busy && !m->direct_busy && !m->catchup_pending;
}

int bs_back(bs_manager *m, float *out, size_t n)
{
    CHECK_M(m);
    if (!out) return fail(BS_EINVAL, "out is NULL");
    if (n != m->nelem)
        return fail(BS_EINVAL, "back: out holds %zu elements, the buffer %zu", n, m->nelem);
    pthread_mutex_lock(&m->mu);
    if (!m->closed && !m->paused) {
        pthread_mutex_unlock(&m->mu);
        return fail(BS_EINVAL, "back() needs a paused worker (the back changes while it runs)");
    }
    /* An apply, catch-up or direct write in flight is bounded work (a paused
     * worker takes no more than its step credits): wait for it, then copy with
     * the lock held, so nothing can start writing the back meanwhile. */
    m->back_waiters++;
    while (!m->closed && !back_still(m)) {
        wake_worker_now(m);   /* a pending catch-up is done even when paused */
        pthread_cond_wait(&m->sync_cv, &m->mu);
    }
    m->back_waiters--;
    if (m->closed) {
        pthread_mutex_unlock(&m->mu);
        return fail(BS_ECLOSED, "manager is closed");
    }
    memcpy(out, m->buf[1 - m->front_slot], m->nelem * sizeof(float));
    pthread_mutex_unlock(&m->mu);
    return BS_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int bs_set_watch(bs_manager *m, const int64_t *flat_elements, size_t n, uint32_t op_mask,
                 const uint64_t *producer_ids, size_t n_producers)
{
    CHECK_M(m);
    if (n && !flat_elements) return fail(BS_EINVAL, "flat_elements is NULL");
    if (n_producers && !producer_ids) return fail(BS_EINVAL, "producer_ids is NULL");
    if (op_mask >> (BS_OP_WRITE + 1))
        return fail(BS_EINVAL, "op_mask 0x%x names an unknown op (bits 0..%d)", op_mask, BS_OP_WRITE);
    if (n > SIZE_MAX / sizeof(uint64_t) || n_producers > SIZE_MAX / sizeof(uint64_t))
        return fail(BS_EINVAL, "too many watched elements or producers");
    for (size_t k = 0; k < n; k++)
        if (flat_elements[k] < 0 || (uint64_t)flat_elements[k] >= m->nelem)
            return fail(BS_EINVAL, "watched element %zu: flat offset %lld is out of bounds for "
                        "%zu elements", k, (long long)flat_elements[k], m->nelem);
    uint64_t *elems = n ? malloc(n * sizeof *elems) : NULL;
    uint64_t *prod = n_producers ? malloc(n_producers * sizeof *prod) : NULL;
    if ((n && !elems) || (n_producers && !prod)) {
        free(elems);
        free(prod);
        return fail(BS_ENOMEM, "cannot copy %zu watched elements", n);
    }
    for (size_t k = 0; k < n; k++) elems[k] = (uint64_t)flat_elements[k];
    if (n) qsort(elems, n, sizeof *elems, cmp_u64);
    size_t kept = 0;   /* without duplicates */
    for (size_t k = 0; k < n; k++)
        if (!kept || elems[kept - 1] != elems[k]) elems[kept++] = elems[k];
    if (n_producers) memcpy(prod, producer_ids, n_producers * sizeof *prod);
    pthread_mutex_lock(&m->mu);
    if (m->closed) {
        pthread_mutex_unlock(&m->mu);
        free(elems);
        free(prod);
        return fail(BS_ECLOSED, "manager is closed");
    }
    uint64_t *old_elems = m->watch_elems, *old_prod = m->watch_prod;
    m->watch_elems = elems;
    m->watch_n = kept;
    m->watch_ops = op_mask;
    m->watch_prod = prod;
    m->watch_nprod = n_producers;
    m->watch_on = kept || op_mask || n_producers;
    wake_worker_now(m);
    pthread_mutex_unlock(&m->mu);
    free(old_elems);
    free(old_prod);
    return BS_OK;
}

int bs_inject_worker_fault(bs_manager *m, uint64_t after)
{
    CHECK_M(m);
    pthread_mutex_lock(&m->mu);
    m->fault_countdown = after;
    pthread_mutex_unlock(&m->mu);
    return BS_OK;
}

/* ---------------------------------------------------------------- tracing (SPEC §5 Capture) */

/* Caller holds mu: record a queued entry (data: a write's payload). */
static void trace_entry(bs_manager *m, const entry *e, const float *data)
{
    if (e->kind == ENTRY_SETS)
        tw_sets(m->trace, e->offsets, m->off32, e->data, e->count, e->seq, e->producer);
    else
        tw_update(m->trace, e->op, e->start, e->stop, e->value, data, e->seq, e->producer);
}

static const char *trace_strerror(int err)
{
    return err == TW_ENOTREG ? "not a regular file" : strerror(err);
}

/* bs_create: BUFFERSCOPE_TRACE names the trace of every manager the process
 * creates (numbered after the first: see tw_numbered_path). A trace that cannot
 * be opened is reported once per process on stderr; the manager runs untraced. */
static int g_env_trace_enabled = 1;

int bs_trace_env_enable(int enabled)
{
    return __atomic_exchange_n(&g_env_trace_enabled, enabled ? 1 : 0, __ATOMIC_SEQ_CST);
}

static void trace_from_env(bs_manager *m)
{
    static unsigned long managers;
    static int reported;
    if (!__atomic_load_n(&g_env_trace_enabled, __ATOMIC_SEQ_CST)) return;
    const char *env = getenv("BUFFERSCOPE_TRACE");
    if (!env || !*env) return;
    unsigned long n = __atomic_fetch_add(&managers, 1, __ATOMIC_RELAXED);
    char *path = tw_numbered_path(env, n);
    int err = path ? tw_open(&m->trace, path, m->ndim, m->shape, m->fill) : ENOMEM;
    if (err && !__atomic_exchange_n(&reported, 1, __ATOMIC_RELAXED))
        fprintf(stderr, "bufferscope: cannot write the trace %s (BUFFERSCOPE_TRACE): %s; "
                "continuing without a trace\n", path ? path : env, trace_strerror(err));
    free(path);
}

/* Caller holds mu: why a trace cannot start now (an error code), or 0. */
static int trace_refused(bs_manager *m, const char *path)
{
    if (m->closed) return fail(BS_ECLOSED, "manager is closed");
    if (m->last_seq)
        return fail(BS_EINVAL, "trace %s: %llu updates were enqueued already; a trace "
                    "starts before the first update so that it replays", path,
                    (unsigned long long)m->last_seq);
    return BS_OK;
}

int bs_trace_start(bs_manager *m, const char *path)
{
    CHECK_M(m);
    if (!path || !*path) return fail(BS_EINVAL, "trace path is NULL or empty");
    pthread_mutex_lock(&m->mu);
    int rc = trace_refused(m, path);   /* before the file is touched */
    pthread_mutex_unlock(&m->mu);
    if (rc) return rc;
    tw *t;
    int err = tw_open(&t, path, m->ndim, m->shape, m->fill);
    if (err)
        return fail(err == ENOMEM ? BS_ENOMEM : BS_EIO, "cannot write the trace %s: %s",
                    path, trace_strerror(err));
    tw *old = NULL;
    pthread_mutex_lock(&m->mu);
    rc = trace_refused(m, path);       /* and again: a producer may have come first */
    if (!rc) {
        old = m->trace;   /* a trace already running (BUFFERSCOPE_TRACE) ends here */
        m->trace = t;
        t = NULL;
    }
    pthread_mutex_unlock(&m->mu);
    tw_close(old);
    tw_close(t);
    return rc;
}

int bs_trace_stop(bs_manager *m)
{
    CHECK_M(m);
    pthread_mutex_lock(&m->mu);
    tw *t = m->trace;
    m->trace = NULL;
    pthread_mutex_unlock(&m->mu);
    if (!t) return BS_OK;
    char path[256];
    snprintf(path, sizeof path, "%s", t->path);
    int err = tw_close(t);
    if (err)
        return fail(BS_EIO, "the trace %s is incomplete: %s", path, trace_strerror(err));
    return BS_OK;
}

/* ---------------------------------------------------------------- live attach */

#include "live_publisher.c"   /* BUFFERSCOPE_LISTEN: static lp_* functions, this unit only */
