/*
 * trace_writer.c — capture: a manager's updates as a JSON Lines trace (SPEC §5).
 *
 * This file is #included by bufferscope.c (one translation unit, SQLite-style),
 * so every build of bufferscope.c — the cffi extension, the C tests,
 * libbufferscope.so — has tracing without naming another source file. Everything
 * here is static and named tw_*; it knows nothing of the manager's internals:
 * bufferscope.c hands it plain values (op, region, value, payload, seq, producer).
 *
 * DESIGN
 * Recording must keep sequence order with racing producers and stay cheap, so
 * the work is split in two:
 *   - the recorder (tw_update, tw_sets, tw_sync) runs on the producer's thread
 *     under the manager's lock, the same lock that hands out sequence numbers,
 *     so records are appended in sequence order. It only copies a small binary
 *     record and its payload (write data; the flat offsets and values of a
 *     bs_set_many chunk) into a list of blocks: one memcpy, no formatting;
 *   - one writer thread per trace takes the whole list under the trace's own
 *     lock (tw->mu, always taken inside the manager's lock, never the other way
 *     round), formats it into JSON text outside any lock and write()s it.
 * The writer wakes when a block fills up and at least every TW_FLUSH_MS, so the
 * file grows while the program runs. The backlog of unformatted records is
 * bounded (TW_BACKLOG_MAX bytes): a recorder that would exceed it waits for the
 * writer (a record larger than the bound is admitted alone into an empty backlog).
 * tw_close stops the writer after it has written everything, then closes the
 * file: the trace is complete when bs_trace_stop / bs_close / bs_destroy return.
 *
 * Format: the header line, one line per update in sequence order with
 * "seq", "producer" ("thread-<producer id>") and "t" (CLOCK_MONOTONIC seconds,
 * the clock of Python's time.monotonic) — a bs_set_many chunk as "set_many"
 * lines (its flat offsets and values in base64, at most TW_SET_MANY_LINE
 * elements a line) — and {"op": "sync", "t": ...} at each
 * synchronize call that made an epoch visible, where its marker entered the
 * queue (see "Sync lines" below). Floats are printed with
 * 9 significant digits (enough for any float32 to read back as itself); NaN and
 * ±Inf as "nan", "inf", "-inf"; -0.0 keeps its sign.
 *
 * Sync lines: a sync line stands for a swap (a visible epoch), as the Python
 * backends write them, so a replay gives exactly the program's epochs. A
 * synchronize call is recorded where it happens (TW_SYNC, with its position: the
 * last seq queued before it); the manager reports each swap (tw_swapped, the
 * position it made visible) and how far the worker has applied (tw_progress).
 * The writer formats in sequence order and, at a recorded call, writes a sync
 * line when a swap at that position is still unmatched, none once the worker
 * has applied past that position (the call timed out, or shared its swap with
 * another call) or the trace is closing — and until then waits there. While it
 * waits, recorders are not held to the backlog bound (the records behind the
 * call are queued updates, bounded by the manager's own queue bound).
 *
 * Errors never abort and never stop the program: a trace that cannot be written
 * reports one line on stderr, drops what it holds and records nothing more.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Overridable so that the tests can run the bounded-backlog paths with tiny sizes. */
#ifndef TW_BLOCK_BYTES
#define TW_BLOCK_BYTES ((size_t)1 << 20)
#endif
#ifndef TW_BACKLOG_MAX
#define TW_BACKLOG_MAX ((uint64_t)64 << 20)
#endif
#define TW_OUT_BYTES (1u << 20)
#define TW_FLUSH_MS 100
#define TW_SPARE_BLOCKS 8   /* written blocks kept for reuse: no fresh pages to fault in */
#define TW_ENOTREG (-1)   /* tw_open: the path is not a regular file */

enum { TW_UPDATE = 0, TW_SETS = 1, TW_SYNC = 2 };

/* One record; its payload follows it in the block (8-byte aligned). */
typedef struct tw_rec {
    int32_t kind;
    int32_t op;
    uint64_t seq, count, producer;
    int64_t t_ns;
    int64_t start[3], stop[3];   /* normalized to 3-d */
    float value;
    uint64_t payload;            /* bytes after the record */
} tw_rec;

typedef struct tw_block {
    struct tw_block *next;
    size_t len, cap;
    unsigned char *bytes;
} tw_block;

typedef struct tw {
    int fd;
    char *path;
    int ndim;
    int64_t shape3[3];

    pthread_mutex_t mu;
    pthread_cond_t work_cv;      /* the writer: a full block, or stop */
    pthread_cond_t room_cv;      /* recorders: the backlog fell below the bound */
    tw_block *head, *tail;       /* records not yet taken by the writer */
    uint64_t backlog;            /* bytes recorded and not yet formatted */
    int full_blocks;             /* blocks in head..tail that are full */
    int room_waiters;            /* recorders waiting on room_cv: the writer must not dawdle */
    tw_block *spare;             /* written blocks of TW_BLOCK_BYTES, for reuse */
    int n_spare;
    int stop;
    int failed;                  /* a write failed: record nothing more */
    int writer_started;
    pthread_t writer;

    /* Which synchronize calls made an epoch visible (see "Sync lines" above). */
    uint64_t *swaps;             /* the positions (visible seq) of the swaps not yet matched */
    size_t swaps_head, swaps_len, swaps_cap;
    uint64_t applied;            /* the manager's applied seq, as tw_progress last said */
    int holding;                 /* the writer waits at a sync call not yet resolved */
    int resolve_kick;            /* a swap or progress since: the writer looks again */

    /* writer-private */
    tw_block *held, *held_tail;  /* records taken from the list, not yet formatted */
    size_t held_at;              /* where in the first held block formatting resumes */
    char *out;
    size_t out_len, out_cap;
} tw;

static int64_t tw_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---------------------------------------------------------------- text */

static const char tw_digits2[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static int tw_ndigits(uint64_t v)
{
    int n = 1;
    while (v >= 10000) { v /= 10000; n += 4; }
    if (v >= 100) { v /= 100; n += 2; }
    return n + (v >= 10);
}

/* v in decimal, written backwards straight into place (no copy). */
static char *tw_u64(char *p, uint64_t v)
{
    char *end = p + tw_ndigits(v), *q = end;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        q -= 2;
        q[0] = tw_digits2[2 * r];
        q[1] = tw_digits2[2 * r + 1];
    }
    if (v >= 10) {
        q[-2] = tw_digits2[2 * v];
        q[-1] = tw_digits2[2 * v + 1];
    } else {
        q[-1] = (char)('0' + v);
    }
    return end;
}

static char *tw_str(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define TW_LIT(p, s) tw_str((p), (s), sizeof(s) - 1)

/* 10^k as doubles for k in [-32, 55]: what 9 significant digits of any float32 need. */
static const double tw_p10[] = {
    1e-32, 1e-31, 1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25,
    1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17,
    1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9,
    1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1,
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
    1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23,
    1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31,
    1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39,
    1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47,
    1e48, 1e49, 1e50, 1e51, 1e52, 1e53, 1e54, 1e55
};
#define TW_P10(k) (tw_p10[(k) + 32])

/* A float32 as JSON: 9 significant digits, trailing zeros dropped (it reads back
 * as the same float32: 9 digits resolve 1e-8 of the value, a float32's half
 * step is at least 3e-8 of it). The digits come from the value as a double
 * times an exact-to-half-an-ulp power of ten, rounded once. */
static char *tw_f32(char *p, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint32_t ex = (bits >> 23) & 0xff, man = bits & 0x7fffff;
    if (ex == 0xff) {
        if (man) return TW_LIT(p, "\"nan\"");
        return (bits >> 31) ? TW_LIT(p, "\"-inf\"") : TW_LIT(p, "\"inf\"");
    }
    if (bits >> 31) *p++ = '-';
    if (ex == 0 && man == 0) return TW_LIT(p, "0.0");
    double d = (double)f;
    if (d < 0) d = -d;
    int e2 = ex ? (int)ex - 127 : -149 + (31 - __builtin_clz(man));
    int e10 = (e2 * 78913) >> 18;   /* floor(e2 * log10(2)) */
    uint64_t n = 0;
    for (int tries = 0; tries < 4; tries++) {
        double x = d * TW_P10(8 - e10);
        if (x >= 999999999.5) { e10++; continue; }
        if (x < 99999999.5) { e10--; continue; }
        n = (uint64_t)(x + 0.5);
        break;
    }
    char dig[10];
    uint32_t u = (uint32_t)n;   /* 9 digits: u32 arithmetic, two digits at a time */
    dig[0] = (char)('0' + u / 100000000u);
    u %= 100000000u;
    for (int i = 7; i >= 1; i -= 2) {
        unsigned r = u % 100;
        u /= 100;
        dig[i] = tw_digits2[2 * r];
        dig[i + 1] = tw_digits2[2 * r + 1];
    }
    int k = 9;
    while (k > 1 && dig[k - 1] == '0') k--;
    if (e10 >= 0 && e10 < 9) {             /* ddd.ddd */
        int whole = e10 + 1;
        for (int i = 0; i < whole; i++) *p++ = i < k ? dig[i] : '0';
        *p++ = '.';
        if (k > whole) p = tw_str(p, dig + whole, (size_t)(k - whole));
        else *p++ = '0';
    } else if (e10 < 0 && e10 >= -5) {     /* 0.000ddd */
        p = TW_LIT(p, "0.");
        for (int i = 0; i < -e10 - 1; i++) *p++ = '0';
        p = tw_str(p, dig, (size_t)k);
    } else {                               /* d.ddde-XX */
        *p++ = dig[0];
        *p++ = '.';
        if (k > 1) p = tw_str(p, dig + 1, (size_t)(k - 1));
        else *p++ = '0';
        *p++ = 'e';
        if (e10 < 0) { *p++ = '-'; e10 = -e10; }
        p = tw_u64(p, (uint64_t)e10);
    }
    return p;
}

/* ---------------------------------------------------------------- base64 */

/* A set_many line carries at most this many elements (readers take up to 2^23). */
#define TW_SET_MANY_LINE ((uint64_t)1 << 20)

static const char tw_b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static uint16_t tw_b64_pairs[4096];   /* 12 bits -> two characters */
static pthread_once_t tw_b64_once = PTHREAD_ONCE_INIT;

static void tw_b64_init(void)
{
    for (unsigned v = 0; v < 4096; v++) {
        unsigned char two[2] = {(unsigned char)tw_b64_chars[v >> 6],
                                (unsigned char)tw_b64_chars[v & 63]};
        memcpy(&tw_b64_pairs[v], two, 2);
    }
}

static size_t tw_b64_len(uint64_t bytes) { return (size_t)(4 * ((bytes + 2) / 3)); }

/* Standard base64 (with padding) of `len` bytes. */
static char *tw_b64(char *p, const unsigned char *s, size_t len)
{
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8) | s[i + 2];
        memcpy(p, &tw_b64_pairs[v >> 12], 2);
        memcpy(p + 2, &tw_b64_pairs[v & 4095], 2);
        p += 4;
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        p[0] = tw_b64_chars[v >> 18];
        p[1] = tw_b64_chars[(v >> 12) & 63];
        p[2] = p[3] = '=';
        p += 4;
    } else if (len - i == 2) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8);
        p[0] = tw_b64_chars[v >> 18];
        p[1] = tw_b64_chars[(v >> 12) & 63];
        p[2] = tw_b64_chars[(v >> 6) & 63];
        p[3] = '=';
        p += 4;
    }
    return p;
}

/* base64 of n items of `size` bytes (4 or 8) as little-endian, whatever the host. */
static char *tw_b64_le(char *p, const void *items, uint64_t n, size_t size)
{
    pthread_once(&tw_b64_once, tw_b64_init);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    unsigned char tmp[768 * 8];   /* 768 items: a multiple of 3 bytes per piece */
    const unsigned char *src = items;
    for (uint64_t a = 0; a < n; a += 768) {
        uint64_t k = n - a < 768 ? n - a : 768;
        for (uint64_t j = 0; j < k; j++)
            for (size_t b = 0; b < size; b++)
                tmp[j * size + b] = src[(a + j) * size + size - 1 - b];
        p = tw_b64(p, tmp, (size_t)(k * size));
    }
    return p;
#else
    return tw_b64(p, items, (size_t)(n * size));
#endif
}

/* ---------------------------------------------------------------- writer */

/* Writer, no lock held: write the text buffer out. Returns errno or 0. */
static int tw_write_out(tw *t)
{
    size_t done = 0;
    while (done < t->out_len) {
        ssize_t w = write(t->fd, t->out + done, t->out_len - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (w == 0) return EIO;
        done += (size_t)w;
    }
    t->out_len = 0;
    return 0;
}

/* Writer: room for `need` more bytes of text (writing out what is there when
 * that is cheaper than growing). Returns errno or 0. */
static int tw_reserve_out(tw *t, size_t need)
{
    if (t->out_len + need <= t->out_cap) return 0;
    if (t->out_len) {
        int err = tw_write_out(t);
        if (err) return err;
    }
    if (need > t->out_cap) {
        char *o = realloc(t->out, need);
        if (!o) return ENOMEM;
        t->out = o;
        t->out_cap = need;
    }
    return 0;
}

/* Seconds with 9 decimals. */
static char *tw_time(char *p, int64_t t_ns)
{
    uint64_t t = t_ns < 0 ? 0 : (uint64_t)t_ns;
    p = tw_u64(p, t / 1000000000u);
    *p++ = '.';
    uint32_t frac = (uint32_t)(t % 1000000000u);
    p[0] = (char)('0' + frac / 100000000u);
    frac %= 100000000u;
    for (int i = 7; i >= 1; i -= 2) {
        unsigned r = frac % 100;
        frac /= 100;
        p[i] = tw_digits2[2 * r];
        p[i + 1] = tw_digits2[2 * r + 1];
    }
    return p + 9;
}

/* The keys every update line ends with, up to the value of "seq", which comes
 * last: the same for every element of a bs_set_many chunk, so made once. */
#define TW_MID_MAX 96
static size_t tw_mid(char *mid, uint64_t producer, int64_t t_ns)
{
    char *p = mid;
    p = TW_LIT(p, ", \"producer\": \"thread-");
    p = tw_u64(p, producer);
    p = TW_LIT(p, "\", \"t\": ");
    p = tw_time(p, t_ns);
    p = TW_LIT(p, ", \"seq\": ");
    return (size_t)(p - mid);
}

/* Appends mid (copied whole: a fixed-size copy is a few vector moves), seq, "}\n". */
static char *tw_end_line(char *p, const char *mid, size_t mid_len, uint64_t seq)
{
    memcpy(p, mid, TW_MID_MAX);
    p = tw_u64(p + mid_len, seq);
    return TW_LIT(p, "}\n");
}

static char *tw_tail(char *p, uint64_t seq, uint64_t producer, int64_t t_ns)
{
    char mid[TW_MID_MAX];
    size_t n = tw_mid(mid, producer, t_ns);
    return tw_end_line(p, mid, n, seq);
}

#define TW_LINE_MAX 512   /* a line without write data, with room to spare */

static const char *const tw_op_names[] = {"set", "fill", "add", "scale", "write"};

/* Writer: the text of one record. Returns errno or 0. */
static int tw_format(tw *t, const tw_rec *r)
{
    const int nd = t->ndim, pad = 3 - nd;
    int err;
    char *p;
    if (r->kind == TW_SYNC) {
        if ((err = tw_reserve_out(t, TW_LINE_MAX))) return err;
        p = t->out + t->out_len;
        p = TW_LIT(p, "{\"op\": \"sync\", \"t\": ");
        p = tw_time(p, r->t_ns);
        p = TW_LIT(p, "}\n");
        t->out_len = (size_t)(p - t->out);
        return 0;
    }
    if (r->kind == TW_SETS) {   /* set_many lines: the arrays in base64, no per-element text */
        const uint64_t *off = (const uint64_t *)(r + 1);
        const float *val = (const float *)(off + r->count);
        char mid[TW_MID_MAX];
        size_t mid_len = tw_mid(mid, r->producer, r->t_ns);
        for (uint64_t j = 0; j < r->count; j += TW_SET_MANY_LINE) {
            uint64_t n = r->count - j < TW_SET_MANY_LINE ? r->count - j : TW_SET_MANY_LINE;
            if ((err = tw_reserve_out(t, TW_LINE_MAX + tw_b64_len(n * 8) + tw_b64_len(n * 4))))
                return err;
            p = t->out + t->out_len;
            p = TW_LIT(p, "{\"op\": \"set_many\", \"n\": ");
            p = tw_u64(p, n);
            p = TW_LIT(p, ", \"flat\": \"");
            p = tw_b64_le(p, off + j, n, sizeof *off);
            p = TW_LIT(p, "\", \"values\": \"");
            p = tw_b64_le(p, val + j, n, sizeof *val);
            *p++ = '"';
            p = tw_end_line(p, mid, mid_len, r->seq + j);
            t->out_len = (size_t)(p - t->out);
        }
        return 0;
    }
    if ((err = tw_reserve_out(t, TW_LINE_MAX))) return err;
    p = t->out + t->out_len;
    p = TW_LIT(p, "{\"op\": \"");
    const char *name = tw_op_names[r->op];
    p = tw_str(p, name, strlen(name));
    if (r->op == BS_OP_SET) {
        p = TW_LIT(p, "\", \"index\": [");
        for (int d = pad; d < 3; d++) {
            if (d > pad) p = TW_LIT(p, ", ");
            p = tw_u64(p, (uint64_t)r->start[d]);
        }
        p = TW_LIT(p, "]");
    } else {
        p = TW_LIT(p, "\", \"region\": [");
        for (int d = pad; d < 3; d++) {
            if (d > pad) p = TW_LIT(p, ", ");
            *p++ = '[';
            p = tw_u64(p, (uint64_t)r->start[d]);
            p = TW_LIT(p, ", ");
            p = tw_u64(p, (uint64_t)r->stop[d]);
            *p++ = ']';
        }
        *p++ = ']';
    }
    if (r->op != BS_OP_WRITE) {
        p = TW_LIT(p, ", \"value\": ");
        p = tw_f32(p, r->value);
        p = tw_tail(p, r->seq, r->producer, r->t_ns);
        t->out_len = (size_t)(p - t->out);
        return 0;
    }
    /* Write: the data as nested lists of the region's shape (ndim levels). */
    p = TW_LIT(p, ", \"data\": ");
    t->out_len = (size_t)(p - t->out);
    const float *data = (const float *)(r + 1);
    int64_t len[3], i[3] = {0, 0, 0};
    for (int d = 0; d < 3; d++) len[d] = r->stop[d] - r->start[d];
    int64_t n0 = nd > 2 ? len[0] : 1, n1 = nd > 1 ? len[1] : 1, n2 = len[2];
    if (nd > 2) t->out[t->out_len++] = '[';
    for (i[0] = 0; i[0] < n0; i[0]++) {
        if ((err = tw_reserve_out(t, 8))) return err;
        if (nd > 2 && i[0]) { memcpy(t->out + t->out_len, ", ", 2); t->out_len += 2; }
        if (nd > 1) t->out[t->out_len++] = '[';
        for (i[1] = 0; i[1] < n1; i[1]++) {
            if ((err = tw_reserve_out(t, 8))) return err;
            if (nd > 1 && i[1]) { memcpy(t->out + t->out_len, ", ", 2); t->out_len += 2; }
            t->out[t->out_len++] = '[';
            for (i[2] = 0; i[2] < n2; i[2]++) {
                if ((err = tw_reserve_out(t, 32))) return err;
                p = t->out + t->out_len;
                if (i[2]) p = TW_LIT(p, ", ");
                p = tw_f32(p, *data++);
                t->out_len = (size_t)(p - t->out);
            }
            if ((err = tw_reserve_out(t, 8))) return err;
            t->out[t->out_len++] = ']';
        }
        if (nd > 1) t->out[t->out_len++] = ']';
    }
    if ((err = tw_reserve_out(t, TW_LINE_MAX))) return err;
    if (nd > 2) t->out[t->out_len++] = ']';
    p = tw_tail(t->out + t->out_len, r->seq, r->producer, r->t_ns);
    t->out_len = (size_t)(p - t->out);
    return 0;
}

static void tw_free_blocks(tw_block *b)
{
    while (b) {
        tw_block *next = b->next;
        free(b->bytes);
        free(b);
        b = next;
    }
}

/* t->mu held: the sync line of a synchronize call recorded at position pos:
 * 1 write one (a swap at pos is unmatched), 0 none, -1 not known yet. */
static int tw_sync_outcome(tw *t, uint64_t pos, int final)
{
    while (t->swaps_len > t->swaps_head && t->swaps[t->swaps_head] < pos) t->swaps_head++;
    if (t->swaps_len > t->swaps_head && t->swaps[t->swaps_head] == pos) {
        t->swaps_head++;
        return 1;
    }
    return (final || t->applied > pos) ? 0 : -1;
}

/* Writer, no lock held: format the held records in order, up to a synchronize
 * call whose outcome is not known yet (*blocked; never when final). Blocks done
 * with go to *done (their bytes added to *freed). Returns errno or 0. */
static int tw_format_held(tw *t, int final, int *blocked, tw_block **done, uint64_t *freed)
{
    int err = 0;
    tw_block **done_tail = done;
    while (t->held) {
        tw_block *b = t->held;
        while (t->held_at < b->len) {
            const tw_rec *r = (const tw_rec *)(b->bytes + t->held_at);
            if (r->kind == TW_SYNC) {
                pthread_mutex_lock(&t->mu);
                int out = tw_sync_outcome(t, r->seq, final);
                pthread_mutex_unlock(&t->mu);
                if (out < 0) {
                    *blocked = 1;
                    return 0;
                }
                if (out > 0) err = tw_format(t, r);
            } else {
                err = tw_format(t, r);
            }
            if (err) return err;
            t->held_at += sizeof *r + r->payload;
        }
        t->held = b->next;
        if (!t->held) t->held_tail = NULL;
        t->held_at = 0;
        b->next = NULL;
        *done_tail = b;
        done_tail = &b->next;
        *freed += b->len;
    }
    return 0;
}

/* Writer, t->mu held: anything to do before the next periodic flush? */
static int tw_writer_has_work(const tw *t)
{
    return t->stop || t->full_blocks || (t->room_waiters && t->head) || t->resolve_kick;
}

static void *tw_writer_main(void *arg)
{
    tw *t = arg;
    pthread_setname_np(pthread_self(), "bs-trace");    /* named for debuggers and tests */
    pthread_mutex_lock(&t->mu);
    for (;;) {
        if (!tw_writer_has_work(t)) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += TW_FLUSH_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            while (!tw_writer_has_work(t) &&
                   pthread_cond_timedwait(&t->work_cv, &t->mu, &ts) != ETIMEDOUT) {}
        }
        if (t->head) {   /* the new records go behind those held back */
            if (t->held_tail) t->held_tail->next = t->head;
            else t->held = t->head;
            t->held_tail = t->tail;
        }
        t->head = t->tail = NULL;
        t->full_blocks = 0;
        t->resolve_kick = 0;
        int stopping = t->stop, failed = t->failed;
        pthread_mutex_unlock(&t->mu);

        int err = 0, blocked = 0;
        tw_block *list = NULL;
        uint64_t taken = 0;
        if (!failed) {
            err = tw_format_held(t, stopping, &blocked, &list, &taken);
            if (!err) err = tw_write_out(t);
        }
        if (failed || err) {   /* drop what is held: nothing more is written */
            tw_block **end = &list;
            while (*end) end = &(*end)->next;
            *end = t->held;
            for (tw_block *b = t->held; b; b = b->next) taken += b->len;
            t->held = t->held_tail = NULL;
            t->held_at = 0;
            blocked = 0;
        }

        pthread_mutex_lock(&t->mu);
        t->backlog -= taken;
        t->holding = blocked;
        while (list) {   /* keep a few standard blocks for reuse, free the rest */
            tw_block *b = list;
            list = b->next;
            if (b->cap == TW_BLOCK_BYTES && t->n_spare < TW_SPARE_BLOCKS) {
                b->next = t->spare;
                t->spare = b;
                t->n_spare++;
            } else {
                b->next = NULL;
                tw_free_blocks(b);
            }
        }
        if (err && !t->failed) {
            t->failed = 1;
            fprintf(stderr, "bufferscope: cannot write the trace %s: %s; tracing stopped\n",
                    t->path, strerror(err));
        }
        pthread_cond_broadcast(&t->room_cv);
        if (stopping && !t->head) break;
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* ---------------------------------------------------------------- recording */

/* Caller holds the manager's lock. Room for a record of `payload` bytes at the
 * tail of the backlog (waiting for the writer when it is over the bound), its
 * header filled in; NULL when the trace failed or memory ran out (the trace is
 * then marked failed: a trace with a hole would replay to the wrong front). */
static tw_rec *tw_begin(tw *t, int kind, uint64_t payload)
{
    payload = (payload + 7) & ~(uint64_t)7;
    uint64_t size = sizeof(tw_rec) + payload;
    pthread_mutex_lock(&t->mu);
    while (!t->failed && !t->holding && t->backlog > 0 && t->backlog + size > TW_BACKLOG_MAX) {
        t->room_waiters++;
        pthread_cond_signal(&t->work_cv);
        pthread_cond_wait(&t->room_cv, &t->mu);
        t->room_waiters--;
    }
    if (t->failed) {
        pthread_mutex_unlock(&t->mu);
        return NULL;
    }
    tw_block *b = t->tail;
    if (!b || b->cap - b->len < size) {
        if (b) {   /* a full block: the writer may take it */
            t->full_blocks++;
            pthread_cond_signal(&t->work_cv);
        }
        size_t cap = size > TW_BLOCK_BYTES ? (size_t)size : TW_BLOCK_BYTES;
        unsigned char *bytes = NULL;
        if (cap == TW_BLOCK_BYTES && t->spare) {
            b = t->spare;
            t->spare = b->next;
            t->n_spare--;
            bytes = b->bytes;
        } else {
            b = malloc(sizeof *b);
            bytes = b ? malloc(cap) : NULL;
        }
        if (!bytes) {
            free(b);
            t->failed = 1;
            fprintf(stderr, "bufferscope: out of memory recording the trace %s; tracing stopped\n",
                    t->path);
            pthread_mutex_unlock(&t->mu);
            return NULL;
        }
        b->next = NULL;
        b->len = 0;
        b->cap = cap;
        b->bytes = bytes;
        if (t->tail) t->tail->next = b;
        else t->head = b;
        t->tail = b;
    }
    tw_rec *r = (tw_rec *)(b->bytes + b->len);
    b->len += size;
    t->backlog += size;
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->payload = payload;
    r->t_ns = tw_now_ns();
    return r;   /* tw_end unlocks */
}

static void tw_end(tw *t) { pthread_mutex_unlock(&t->mu); }

/* Caller holds the manager's lock: one update (region normalized to 3-d; for a
 * set, start[] is the index). `data` is a write's payload (region volume floats). */
static void tw_update(tw *t, int op, const int64_t *start, const int64_t *stop, float value,
                      const float *data, uint64_t seq, uint64_t producer)
{
    uint64_t n = 0;
    if (op == BS_OP_WRITE) {
        n = 1;
        for (int d = 0; d < 3; d++) n *= (uint64_t)(stop[d] - start[d]);
    }
    tw_rec *r = tw_begin(t, TW_UPDATE, n * sizeof(float));
    if (!r) return;
    r->op = op;
    r->seq = seq;
    r->count = 1;
    r->producer = producer;
    r->value = value;
    memcpy(r->start, start, sizeof r->start);
    memcpy(r->stop, stop, sizeof r->stop);
    if (n) memcpy(r + 1, data, n * sizeof(float));
    tw_end(t);
}

/* Caller holds the manager's lock: n element sets seq..seq+n-1 (flat offsets,
 * uint32_t when off32, else uint64_t; recorded as uint64_t either way). */
static void tw_sets(tw *t, const void *offsets, int off32, const float *values, uint64_t n,
                    uint64_t seq, uint64_t producer)
{
    tw_rec *r = tw_begin(t, TW_SETS, n * (sizeof(uint64_t) + sizeof(float)));
    if (!r) return;
    r->op = BS_OP_SET;
    r->seq = seq;
    r->count = n;
    r->producer = producer;
    uint64_t *off = (uint64_t *)(r + 1);
    if (off32) {
        const uint32_t *o32 = offsets;
        for (uint64_t j = 0; j < n; j++) off[j] = o32[j];
    } else {
        memcpy(off, offsets, n * sizeof(uint64_t));
    }
    memcpy(off + n, values, n * sizeof(float));
    tw_end(t);
}

/* Caller holds the manager's lock: a synchronize call, after the updates up to
 * seq `pos` (its sync line is written if a swap at pos matches it). */
static void tw_sync(tw *t, uint64_t pos)
{
    tw_rec *r = tw_begin(t, TW_SYNC, 0);
    if (!r) return;
    r->seq = pos;
    tw_end(t);
}

/* Caller holds the manager's lock: a swap made everything up to seq pos visible. */
static void tw_swapped(tw *t, uint64_t pos)
{
    pthread_mutex_lock(&t->mu);
    if (!t->failed && t->swaps_len == t->swaps_cap) {
        if (t->swaps_head) {   /* reuse the matched front of the array */
            memmove(t->swaps, t->swaps + t->swaps_head,
                    (t->swaps_len - t->swaps_head) * sizeof *t->swaps);
            t->swaps_len -= t->swaps_head;
            t->swaps_head = 0;
        } else {
            size_t cap = t->swaps_cap ? 2 * t->swaps_cap : 64;
            uint64_t *s = realloc(t->swaps, cap * sizeof *s);
            if (!s) {
                t->failed = 1;
                fprintf(stderr, "bufferscope: out of memory recording the trace %s; tracing "
                        "stopped\n", t->path);
            } else {
                t->swaps = s;
                t->swaps_cap = cap;
            }
        }
    }
    if (!t->failed) t->swaps[t->swaps_len++] = pos;
    t->resolve_kick = 1;
    if (t->holding) pthread_cond_signal(&t->work_cv);
    pthread_mutex_unlock(&t->mu);
}

/* Caller holds the manager's lock: the worker has applied every update up to seq applied. */
static void tw_progress(tw *t, uint64_t applied)
{
    pthread_mutex_lock(&t->mu);
    t->applied = applied;
    if (t->holding) {
        t->resolve_kick = 1;
        pthread_cond_signal(&t->work_cv);
    }
    pthread_mutex_unlock(&t->mu);
}

/* ---------------------------------------------------------------- open/close */

/* Opens `path` (truncated; a FIFO, device or other special file is refused, so
 * opening never blocks and never replaces one), writes the header and starts
 * the writer. On failure returns an errno (TW_ENOTREG for a special file) and
 * leaves nothing open. */
static int tw_open(tw **out, const char *path, int ndim, const int64_t *shape, float fill)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) return TW_ENOTREG;   /* the clear reason */
    int fd = open(path, O_WRONLY | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0666);
    if (fd < 0) return errno;
    int serr = fstat(fd, &st) != 0 ? errno : !S_ISREG(st.st_mode) ? TW_ENOTREG : 0;
    if (serr) {
        close(fd);
        return serr;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 || ftruncate(fd, 0) != 0) {
        int err = errno;
        close(fd);
        return err;
    }
    tw *t = calloc(1, sizeof *t);
    char *p = t ? strdup(path) : NULL;
    char *o = p ? malloc(TW_OUT_BYTES) : NULL;
    if (!o) {
        free(p);
        free(t);
        close(fd);
        return ENOMEM;
    }
    t->fd = fd;
    t->path = p;
    t->out = o;
    t->out_cap = TW_OUT_BYTES;
    t->ndim = ndim;
    for (int d = 0; d < 3; d++) t->shape3[d] = 1;
    for (int d = 0; d < ndim; d++) t->shape3[3 - ndim + d] = shape[d];

    char *q = t->out;
    q = TW_LIT(q, "{\"format\": \"bufferscope-trace\", \"version\": 1, \"shape\": [");
    for (int d = 0; d < ndim; d++) {
        if (d) q = TW_LIT(q, ", ");
        q = tw_u64(q, (uint64_t)shape[d]);
    }
    q = TW_LIT(q, "], \"dtype\": \"float32\", \"fill\": ");
    q = tw_f32(q, fill);
    q = TW_LIT(q, ", \"features\": [\"set_many\"]}\n");
    t->out_len = (size_t)(q - t->out);
    int err = tw_write_out(t);

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->work_cv, &ca);
    pthread_cond_init(&t->room_cv, NULL);
    pthread_condattr_destroy(&ca);
    if (!err) {
        err = pthread_create(&t->writer, NULL, tw_writer_main, t);
        t->writer_started = !err;
    }
    if (err) {
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->work_cv);
        pthread_cond_destroy(&t->room_cv);
        close(fd);
        free(t->out);
        free(t->path);
        free(t);
        return err;
    }
    *out = t;
    return 0;
}

/* Writes everything recorded, stops the writer, closes the file and frees t.
 * Returns 0, or an errno when any of the trace could not be written. */
static int tw_close(tw *t)
{
    if (!t) return 0;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_signal(&t->work_cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->writer, NULL);
    int err = t->failed ? EIO : 0;
    if (close(t->fd) != 0 && !err) err = errno;
    tw_free_blocks(t->head);
    tw_free_blocks(t->held);
    tw_free_blocks(t->spare);
    free(t->swaps);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->work_cv);
    pthread_cond_destroy(&t->room_cv);
    free(t->out);
    free(t->path);
    free(t);
    return err;
}

/* The file name of the n-th manager that traces through BUFFERSCOPE_TRACE:
 * n = 0 uses `path` itself; n >= 1 inserts ".n" before the extension of the
 * last path component ("run.jsonl" -> "run.1.jsonl"), or appends it when there
 * is none ("run" -> "run.1"). Returns a malloc'd string, NULL without memory. */
static char *tw_numbered_path(const char *path, unsigned long n)
{
    size_t len = strlen(path);
    char *s = malloc(len + 24);
    if (!s) return NULL;
    if (n == 0) {
        memcpy(s, path, len + 1);
        return s;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) dot = path + len;   /* no extension (or a dot file) */
    size_t stem = (size_t)(dot - path);
    memcpy(s, path, stem);
    int k = sprintf(s + stem, ".%lu", n);
    memcpy(s + stem + (size_t)k, dot, len - stem + 1);
    return s;
}
