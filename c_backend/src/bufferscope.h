/*
 * bufferscope.h — the stable C interface of the bufferscope buffer manager.
 *
 * A manager owns two float32 buffers (front and back) of the same N-d shape
 * (1 <= ndim <= 3) and one persistent worker thread. Producers enqueue updates
 * (set, fill, add, scale, write, and batches of sets); the worker applies them to
 * the back buffer in FIFO order (a large write enqueued while the worker is idle
 * and nothing is queued is copied straight into the back by the enqueuing
 * thread instead: the same order, one copy fewer). bs_synchronize() waits until everything queued
 * before the call is applied, then front and back are swapped (a pointer
 * exchange) and the worker brings the new back up to date by copying from the
 * front just the elements the last batch wrote (the whole buffer when the batch
 * touched more than that) before it applies anything else.
 *
 * Every function returns a bs_status code; none aborts on bad input. After a
 * non-zero return, bs_last_error() gives a message for the calling thread.
 *
 * This header is the ABI: bump BS_ABI_VERSION on any incompatible change.
 */
#ifndef BUFFERSCOPE_H
#define BUFFERSCOPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BS_ABI_VERSION 1
#define BS_MAX_NDIM 3

typedef enum bs_status {
    BS_OK = 0,
    BS_EINVAL = 1,      /* a bad argument: the message names it */
    BS_ENOMEM = 2,      /* allocation failed */
    BS_ETIMEDOUT = 3,   /* synchronize() did not finish in time; nothing is lost */
    BS_EFULL = 4,       /* queue full and the call asked not to block */
    BS_ECLOSED = 5,     /* the manager was closed */
    BS_EWORKER = 6,     /* an update failed inside the worker (reported once) */
    BS_ETHREAD = 7,     /* a thread could not be created */
    BS_EIO = 8          /* the trace file could not be opened or written */
} bs_status;

typedef enum bs_op {
    BS_OP_SET = 0,
    BS_OP_FILL = 1,
    BS_OP_ADD = 2,
    BS_OP_SCALE = 3,
    BS_OP_WRITE = 4
} bs_op;

/* One update. Regions are half-open boxes [start, stop) per dimension; for
 * BS_OP_SET only start[] is read (the index). For BS_OP_WRITE, data points to
 * the region's elements in C order; it is copied before bs_enqueue returns. */
typedef struct bs_update {
    int32_t op;
    int64_t start[BS_MAX_NDIM];
    int64_t stop[BS_MAX_NDIM];
    double value;
    const float *data;
} bs_update;

typedef struct bs_config {
    int32_t ndim;
    int64_t shape[BS_MAX_NDIM];
    float fill;
    uint64_t max_pending;      /* queue bound, in elements (>= 1): a write of n
                                * elements counts n, a set_many of n counts n,
                                * any other update 1 */
    uint64_t event_capacity;   /* ring of ordering events (0: none kept) */
} bs_config;

typedef enum bs_event_kind {
    BS_EV_ENQUEUE = 0,     /* seq..seq+count-1 entered the queue */
    BS_EV_APPLY = 1,       /* seq..seq+count-1 applied to buffer `slot` */
    BS_EV_SYNC_BEGIN = 2,  /* a synchronize() call; seq = last seq it covers */
    BS_EV_SWAP = 3,        /* front/back exchanged; slot = new front, epoch = new epoch */
    BS_EV_VISIBLE = 4,     /* updates up to seq visible at epoch */
    BS_EV_CATCHUP = 5,     /* new back brought up to date (count = entries copied, 0 = whole buffer) */
    BS_EV_BREAK = 6        /* a watch paused the worker before update seq (see bs_set_watch) */
} bs_event_kind;

typedef struct bs_event {
    uint64_t index;        /* position in the stream of all events ever recorded */
    int64_t t_ns;          /* CLOCK_MONOTONIC */
    uint64_t seq;
    uint64_t count;
    uint64_t epoch;
    uint64_t producer;
    int32_t kind;
    int32_t slot;          /* which of the two buffers (0 or 1) */
    int32_t op;            /* bs_op of an enqueue/apply event, -1 otherwise */
} bs_event;

typedef struct bs_stats {
    uint64_t epoch;
    uint64_t last_seq;      /* last sequence number handed out */
    uint64_t applied_seq;   /* every update up to here has been applied to the back */
    uint64_t visible_seq;   /* every update up to here is in the front */
    uint64_t pending;       /* elements in the queue (as counted against max_pending) */
    uint64_t max_pending;
    uint64_t events_recorded;
    int32_t paused;
    int32_t front_slot;
} bs_stats;

typedef struct bs_manager bs_manager;

uint32_t bs_abi_version(void);
const char *bs_strerror(int status);
/* The message of the calling thread's last error (never NULL). */
const char *bs_last_error(void);

int bs_create(const bs_config *config, bs_manager **out);
/* Stops and joins the worker; pending updates are dropped. Idempotent, and a
 * concurrent second call returns only once the first has finished. Every
 * later call that would change the manager or wait on its worker returns
 * BS_ECLOSED; what reads what is left still works after close: bs_front,
 * bs_stats_get, bs_queue_counts, bs_events_read, bs_events_read_detail,
 * bs_event_payload, bs_payload_in_use (the final front and events), and
 * bs_trace_stop (a no-op once close has completed the trace), then bs_destroy. */
int bs_close(bs_manager *m);
/* Closes if needed and frees everything. No other call may be in flight.
 * In a child made by fork() (where the manager's worker does not exist) every
 * other call returns BS_ECLOSED, bs_close does nothing, and bs_destroy frees the
 * buffers without touching the parent's threads or locks. */
int bs_destroy(bs_manager *m);

/* block = 0: return BS_EFULL instead of waiting for room in the queue. The
 * bound counts elements (see bs_config); an update larger than the bound is
 * admitted alone, into an empty queue. */
int bs_enqueue(bs_manager *m, const bs_update *u, uint64_t producer, int block,
               uint64_t *seq_out);
/* All n updates are validated first: on an invalid one nothing is queued and
 * *bad_index_out names it. They get consecutive sequence numbers when the queue
 * has room for them all (the bound counts elements); larger batches are queued
 * in order as room appears. A batch that fits the bound goes in whole or not at
 * all (BS_ENOMEM included); in a larger one, an error after part of it went in
 * (BS_ECLOSED, BS_ENOMEM) leaves that part queued.
 * seqs_out (n entries, may be NULL) receives each one's sequence number. */
int bs_enqueue_batch(bs_manager *m, const bs_update *u, size_t n, uint64_t producer,
                     int block, uint64_t *seqs_out, size_t *bad_index_out);
/* Shorthand for bs_enqueue with BS_OP_SET (the common per-element call). */
int bs_enqueue_set(bs_manager *m, int64_t i0, int64_t i1, int64_t i2, double value,
                   uint64_t producer, int block, uint64_t *seq_out);
/* n element sets: indices is n x ndim (C order), values n floats. Copied.
 * Every index is checked before anything is queued; queued whole when n fits
 * the bound, else in chunks of the bound as room appears (as bs_enqueue_batch).
 * seqs_out (n entries, may be NULL) receives each one's sequence number. */
int bs_set_many(bs_manager *m, const int64_t *indices, const float *values, size_t n,
                uint64_t producer, int block, uint64_t *seqs_out, size_t *bad_index_out);

/* Waits until everything enqueued before the call is applied and swapped into
 * the front. timeout_s < 0 waits forever. On BS_ETIMEDOUT nothing is swapped
 * for this call (the front stays as it was); the updates stay queued. */
int bs_synchronize(bs_manager *m, double timeout_s, uint64_t *epoch_out);

/* bs_synchronize in steps, for callers that must stay responsive (a Python
 * wrapper waits in short slices so Ctrl+C can interrupt it):
 *   bs_sync_begin   starts a synchronize and gives its ticket (> 0). When
 *                   everything queued is applied it swaps at once (the ticket
 *                   is then done); otherwise it queues a sync marker.
 *   bs_sync_wait    waits up to timeout_s (< 0: forever; 0: just look) for the
 *                   ticket: BS_OK (or BS_EWORKER) once swapped, BS_ETIMEDOUT
 *                   while not yet, which cancels nothing.
 *   bs_sync_cancel  gives the ticket up: BS_ETIMEDOUT, and its marker will not
 *                   swap (the front stays as it was); or BS_OK when it had
 *                   swapped already (bs_sync_wait then completes it, reporting
 *                   a worker failure; uncollected, the next synchronize does).
 *                   Every begun ticket ends in a completed wait or a cancel.
 * Cancelled markers are bounded: one at the tail of the queue is removed, and
 * a marker never follows another, so at most one sits between two updates. */
int bs_sync_begin(bs_manager *m, uint64_t *ticket_out);
int bs_sync_wait(bs_manager *m, uint64_t ticket, double timeout_s, uint64_t *epoch_out);
int bs_sync_cancel(bs_manager *m, uint64_t ticket, uint64_t *epoch_out);

/* Waits up to timeout_s (< 0: forever) until `units` elements fit in the
 * queue (more than the bound fit an empty queue): BS_OK, or BS_ETIMEDOUT. Room
 * is not reserved: a call with block = 0 then takes it, or finds it taken by
 * another producer and waits again. */
int bs_wait_room(bs_manager *m, uint64_t units, double timeout_s);

/* Testing aid: entries in the queue (updates, set chunks, sync markers) and how
 * many of them are sync markers (live or cancelled). */
int bs_queue_counts(bs_manager *m, uint64_t *entries_out, uint64_t *markers_out);
/* The front buffer (valid until the next synchronize) and its epoch. */
int bs_front(bs_manager *m, const float **data_out, uint64_t *epoch_out);
int bs_stats_get(bs_manager *m, bs_stats *out);

/* Pause: the worker applies nothing until resumed or stepped; swaps of already
 * applied work still happen. bs_step lets it apply n more element updates; the
 * credit is capped at the element updates queued and not yet taken by the
 * worker (none is banked on an empty queue). */
int bs_set_paused(bs_manager *m, int paused);
int bs_step(bs_manager *m, uint64_t n);

/* Copies events with index >= since into out (at most cap). *n_out gets the
 * number copied, *next_out the index to ask for next time. Events older than the
 * ring's capacity are gone: the first copied index then exceeds `since`. */
int bs_events_read(bs_manager *m, uint64_t since, bs_event *out, size_t cap,
                   size_t *n_out, uint64_t *next_out);

/* What the updates of an enqueue, apply or break event wrote (SPEC §4), read
 * with bs_events_read_detail. `what` says which fields hold:
 *   BS_DETAIL_NONE    nothing (sync-begin, swap, visible, catch-up events)
 *   BS_DETAIL_REGION  region and value: fill/add/scale, and a set (its index as
 *                     a one-element box start[d] = index, stop[d] = index + 1)
 *   BS_DETAIL_WRITE   region; the data (payload_count elements, the region's
 *                     elements in C order) from bs_event_payload
 *   BS_DETAIL_SETS    a run of bs_set_many elements (the event's count of them):
 *                     indices and values from bs_event_payload
 * start/stop have the manager's ndim entries (the rest are 0). Payloads are kept
 * within a budget (bs_set_payload_budget): an older event whose payload was let
 * go keeps its op (and a write its region) but has payload_dropped = 1
 * (payload_count stays what it was). */
typedef enum bs_detail_kind {
    BS_DETAIL_NONE = 0,
    BS_DETAIL_REGION = 1,
    BS_DETAIL_WRITE = 2,
    BS_DETAIL_SETS = 3
} bs_detail_kind;

typedef struct bs_event_detail {
    uint64_t index;            /* the event's index (as bs_event.index) */
    int32_t what;              /* bs_detail_kind */
    int32_t payload_dropped;
    int64_t start[BS_MAX_NDIM];
    int64_t stop[BS_MAX_NDIM];
    double value;
    uint64_t payload_count;    /* elements of payload (WRITE, SETS), 0 otherwise */
} bs_event_detail;

/* bs_events_read, and each event's detail into details[k] (cap entries). */
int bs_events_read_detail(bs_manager *m, uint64_t since, bs_event *out,
                          bs_event_detail *details, size_t cap, size_t *n_out,
                          uint64_t *next_out);
/* Copies the payload of event `event_index`: values_out gets the values (a
 * write's data in C order, or a run's set values), indices_out (may be NULL)
 * the n x ndim indices of a run's elements (a write has none). *n_out gets the
 * number of elements copied: 0 when the event has no payload or no longer has
 * one (let go for the budget, or the event left the ring since it was read).
 * BS_EINVAL when cap is too small; *n_out then says how many are needed. */
int bs_event_payload(bs_manager *m, uint64_t event_index, int64_t *indices_out,
                     float *values_out, size_t cap, size_t *n_out);

#define BS_DEFAULT_PAYLOAD_BUDGET ((uint64_t)1 << 22)
/* The payload elements the event ring may keep alive (default
 * BS_DEFAULT_PAYLOAD_BUDGET; 0 keeps none). A payload is referenced, not copied:
 * events share the write data or set chunk their update was queued with. When
 * the events hold more than the budget, the oldest events let go of theirs
 * until they hold at most half of it. A write the producer copies straight into
 * the back (bs_enqueue) is copied for its events when it is at most a quarter
 * of the budget, else its payload is dropped at once. */
int bs_set_payload_budget(bs_manager *m, uint64_t elements);
/* Payload elements the events hold now (each shared payload counted once). */
int bs_payload_in_use(bs_manager *m, uint64_t *elements_out);

/* A copy of the back buffer (n = its element count) while the worker is
 * paused: the buffer being built. It waits for an apply or catch-up in flight
 * to finish, so the copy is consistent. BS_EINVAL when not paused. */
int bs_back(bs_manager *m, float *out, size_t n);

/* Watchpoints: the worker pauses itself (as bs_set_paused(m, 1)) *before* it
 * applies an update that writes one of the n flat element offsets (C order;
 * inside a set_many run it applies up to that element and stops before it),
 * whose op is in op_mask (bit 1 << bs_op), or whose producer is one of
 * producer_ids; it records a BS_EV_BREAK event with that update's seq (and
 * detail). The update it stopped before is passed on: bs_step(m, 1) applies
 * exactly it, and resuming runs on to the next match. An op or producer match
 * stops once before an update (or before a set_many chunk); an element match
 * before each element update. Replaces the previous watch; n = 0, op_mask = 0
 * and n_producers = 0 clear it. The update stopped before stays passed across
 * calls (a new watch that matches it does not stop there again). */
int bs_set_watch(bs_manager *m, const int64_t *flat_elements, size_t n, uint32_t op_mask,
                 const uint64_t *producer_ids, size_t n_producers);

/* Testing aid: the `after`-th queue entry the worker applies from now on (one
 * update, or one chunk of a bs_set_many) fails: it is skipped, and the next
 * bs_synchronize reports BS_EWORKER naming its sequence numbers. */
int bs_inject_worker_fault(bs_manager *m, uint64_t after);

/* Capture (SPEC §5): the JSON Lines trace of every update, in sequence order,
 * and of every synchronize call, written while the program runs (by a thread of
 * the trace's own) and complete when bs_trace_stop, bs_close or bs_destroy
 * returns. The environment variable BUFFERSCOPE_TRACE=path starts one at
 * bs_create for every manager the process creates: the first writes `path`,
 * the n-th after it inserts ".n" before the file's extension (run.jsonl,
 * run.1.jsonl, run.2.jsonl, ...; run -> run.1); a path that cannot be written is
 * reported once on stderr and the program goes on untraced.
 *
 * bs_trace_start traces to `path` (created or truncated; a special file is
 * refused). It must come before the first update, so that the trace replays
 * from the fill; it replaces a trace already running. BS_EIO when the file
 * cannot be opened (the message names it and why), BS_EINVAL after updates.
 * bs_trace_stop writes what is left and closes the file; BS_EIO when any of
 * the trace could not be written (tracing then stopped at the first failure,
 * reported once on stderr). No trace running is not an error. */
int bs_trace_start(bs_manager *m, const char *path);
int bs_trace_stop(bs_manager *m);
/* Whether bs_create honours BUFFERSCOPE_TRACE (1, the default) or leaves it to a
 * host that numbers the traces of all its managers itself (0: the Python package
 * does, so that its C and GL managers share one numbering). Returns the previous
 * setting. Process-wide; thread-safe. */
int bs_trace_env_enable(int enabled);

/* Live attach (docs/live-attach.md): when BUFFERSCOPE_LISTEN is set, bs_create
 * starts a thread ("bs-publish") that publishes the manager's front, stats and
 * events on a local socket for `bufferscope attach`: the value as given for the
 * first manager, PATH.1, PATH.2, ... (or the next ports) for later ones. A path
 * is a Unix socket created with mode 0600; digits are a TCP port on 127.0.0.1
 * only. Read-only unless BUFFERSCOPE_LISTEN_CONTROL=1, and then only for a
 * viewer presenting this run's token (written to PATH.token, mode 0600). A
 * socket that cannot be made is reported on stderr and the manager runs
 * unpublished (bs_create does not fail for it); no viewer can block, slow or
 * change the program beyond that. bs_close/bs_destroy send the viewer the last
 * epoch and "bye" (waiting at most 1 s for a slow viewer) and remove the files.
 * bs_listen_env_enable(0) leaves BUFFERSCOPE_LISTEN to a host that publishes
 * its managers itself (the Python package does). Returns the previous setting.
 * Process-wide; thread-safe. */
int bs_listen_env_enable(int enabled);

#ifdef __cplusplus
}
#endif
#endif /* BUFFERSCOPE_H */
