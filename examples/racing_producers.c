/*
 * racing_producers.c — two producer threads race on overlapping regions of one
 * bufferscope manager while the main thread synchronizes now and then.
 *
 * Which producer wins each element depends on the scheduling, so every run ends
 * with a different front. Run it with BUFFERSCOPE_TRACE=run.jsonl and the trace
 * records the updates in the order the manager applied them: replaying it
 * (`bufferscope replay run.jsonl --backend c --out replay.npy`) gives back
 * exactly the front this run saw, which it writes to FRONT.npy.
 *
 *   usage: racing_producers [--syncs N] [--delay-ms MS] [--events N] [FRONT.npy]
 *
 * By default it synchronizes 5 times, 2 ms apart, while the producers race
 * flat out, and keeps no events. --syncs/--delay-ms make a longer run (the
 * producers then pace their rounds to last about as long: something to watch
 * with BUFFERSCOPE_LISTEN=PATH and `bufferscope attach PATH`); --events keeps
 * that many ordering events for a viewer.
 *
 * Prints the final epoch and an FNV-1a checksum of the front's bytes.
 */
#define _POSIX_C_SOURCE 200809L   /* pthread barriers, nanosleep */
#include <bufferscope.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define H 64
#define W 64
#define ROUNDS 1000

static bs_manager *mgr;
static long syncs = 5, delay_ms = 2;
static long round_pause_us;            /* 0: the producers race flat out (the default) */
static pthread_barrier_t start_line;   /* both producers start together */

/* Between two rounds: yield (the default) or sleep a paced run's share. */
static void between_rounds(void)
{
    if (!round_pause_us) {
        sched_yield();   /* give the other producer its turn: a race, not two runs in a row */
        return;
    }
    struct timespec t = {round_pause_us / 1000000, (round_pause_us % 1000000) * 1000};
    nanosleep(&t, NULL);
}

static int check(int rc, const char *what)
{
    if (rc != BS_OK)
        fprintf(stderr, "racing_producers: %s: %s (%s)\n", what, bs_last_error(), bs_strerror(rc));
    return rc;
}

/* Producer 1: fills and adds on the top-left 40x40, plus scattered sets. */
static void *producer_fill(void *arg)
{
    (void)arg;
    int64_t idx[2 * 16];
    float val[16];
    pthread_barrier_wait(&start_line);
    for (int r = 0; r < ROUNDS; r++) {
        bs_update u = {0};
        u.op = r % 3 == 0 ? BS_OP_FILL : BS_OP_ADD;
        u.start[0] = r % 8;
        u.start[1] = (r * 3) % 8;
        u.stop[0] = 40;
        u.stop[1] = 40;
        u.value = u.op == BS_OP_FILL ? 1.0 + r * 0.25 : 0.1;
        if (check(bs_enqueue(mgr, &u, 1, 1, NULL), "enqueue")) return (void *)1;
        for (int k = 0; k < 16; k++) {
            idx[2 * k] = (r * 7 + k * 5) % H;
            idx[2 * k + 1] = (r * 11 + k * 3) % W;
            val[k] = (float)r / (float)(k + 1);
        }
        if (check(bs_set_many(mgr, idx, val, 16, 1, 1, NULL, NULL), "set_many")) return (void *)1;
        between_rounds();
    }
    return NULL;
}

/* Producer 2: writes 24x24 blocks and scales rows across producer 1's square. */
static void *producer_write(void *arg)
{
    (void)arg;
    static float block[24 * 24];
    pthread_barrier_wait(&start_line);
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < 24 * 24; k++) block[k] = (float)(r + k) * -0.5f;
        bs_update u = {0};
        u.op = BS_OP_WRITE;
        u.start[0] = 20 + r % 16;
        u.start[1] = 20 + (r * 5) % 16;
        u.stop[0] = u.start[0] + 24;
        u.stop[1] = u.start[1] + 24;
        u.data = block;   /* copied by bs_enqueue: reusable at once */
        if (check(bs_enqueue(mgr, &u, 2, 1, NULL), "enqueue")) return (void *)1;
        u.op = BS_OP_SCALE;
        u.start[0] = 10 + r % 10;
        u.start[1] = 0;
        u.stop[0] = 50;
        u.stop[1] = 64;
        u.value = r % 2 ? 1.5 : 0.75;
        u.data = NULL;
        if (check(bs_enqueue(mgr, &u, 2, 1, NULL), "enqueue")) return (void *)1;
        between_rounds();
    }
    return NULL;
}

/* The front as a .npy file: a 128-byte header, then little-endian float32. */
static int write_npy(const char *path, const float *data)
{
    char header[128];
    int n = snprintf(header, sizeof header,
                     "\x93NUMPY\x01%c%c%c{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }",
                     0, 0, 0, H, W);
    memset(header + n, ' ', sizeof header - (size_t)n);
    header[127] = '\n';
    header[8] = (char)(sizeof header - 10);   /* header length, little-endian u16 */
    header[9] = 0;
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return 1;
    }
    int bad = fwrite(header, 1, sizeof header, f) != sizeof header ||
              fwrite(data, sizeof(float), H * W, f) != H * W;
    bad |= fclose(f) != 0;
    if (bad) perror(path);
    return bad;
}

static long number(const char *opt, const char *text, long lo, long hi)
{
    char *end;
    long v = text ? strtol(text, &end, 10) : 0;
    if (!text || *end || end == text || v < lo || v > hi) {
        fprintf(stderr, "racing_producers: %s needs a number from %ld to %ld\n", opt, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *npy = NULL;
    long events = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--syncs")) syncs = number("--syncs", i + 1 < argc ? argv[++i] : NULL, 1, 1000000);
        else if (!strcmp(argv[i], "--delay-ms")) delay_ms = number("--delay-ms", i + 1 < argc ? argv[++i] : NULL, 0, 60000);
        else if (!strcmp(argv[i], "--events")) events = number("--events", i + 1 < argc ? argv[++i] : NULL, 0, 1 << 26);
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "usage: racing_producers [--syncs N] [--delay-ms MS] [--events N] [FRONT.npy]\n");
            return 2;
        } else npy = argv[i];
    }
    if (syncs != 5 || delay_ms != 2) round_pause_us = syncs * delay_ms * 1000 / ROUNDS;
    bs_config cfg = {0};
    cfg.ndim = 2;
    cfg.shape[0] = H;
    cfg.shape[1] = W;
    cfg.fill = 0.0f;
    cfg.max_pending = 1 << 16;
    cfg.event_capacity = (uint64_t)events;
    if (check(bs_create(&cfg, &mgr), "create")) return 1;

    pthread_t a, b;
    pthread_barrier_init(&start_line, NULL, 2);
    if (pthread_create(&a, NULL, producer_fill, NULL) || pthread_create(&b, NULL, producer_write, NULL)) {
        fprintf(stderr, "racing_producers: cannot start the producers\n");
        return 1;
    }
    uint64_t epoch = 0;
    int rc = 0;
    for (long s = 0; s < syncs && !rc; s++) {
        struct timespec pause = {delay_ms / 1000, (delay_ms % 1000) * 1000000};   /* let the producers race */
        nanosleep(&pause, NULL);
        rc = check(bs_synchronize(mgr, 10.0, &epoch), "synchronize");
    }
    void *ra, *rb;
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    if (!rc && !ra && !rb) rc = check(bs_synchronize(mgr, 10.0, &epoch), "synchronize");

    const float *front = NULL;
    if (!rc) rc = check(bs_front(mgr, &front, &epoch), "front");
    if (!rc) {
        uint32_t h = 2166136261u;   /* FNV-1a over the front's bytes */
        const unsigned char *p = (const unsigned char *)front;
        for (size_t i = 0; i < sizeof(float) * H * W; i++) h = (h ^ p[i]) * 16777619u;
        printf("epoch %llu checksum %08x\n", (unsigned long long)epoch, h);
        if (npy) rc = write_npy(npy, front);
    }
    pthread_barrier_destroy(&start_line);
    bs_destroy(mgr);   /* also completes the trace, when BUFFERSCOPE_TRACE is set */
    return rc || ra || rb ? 1 : 0;
}
