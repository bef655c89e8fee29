/*
 * capture_overhead.c — what recording a trace costs (SPEC §8: "recording a
 * trace ≤ 2× the unrecorded run for set_many batches").
 *
 * One producer sends BATCHES bs_set_many batches of 4096 random elements into a
 * 1024x1024 buffer, synchronizing every 64 batches, with and without a trace
 * (bs_trace_start), in the same process, alternating, best of REPEATS. Two times
 * per run: until the last synchronize returns ("producer"), and until
 * bs_destroy has returned ("complete": the trace is then written and closed).
 *
 *   usage: capture_overhead [TRACE_PATH [BATCHES]]   (default /tmp/capture_overhead.jsonl, 256)
 */
#define _POSIX_C_SOURCE 200809L
#include <bufferscope.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N 4096
#define REPEATS 3

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int run(const char *trace, int batches, const int64_t *idx, const float *val,
               double *producer_s, double *complete_s)
{
    bs_config cfg = {0};
    cfg.ndim = 2;
    cfg.shape[0] = cfg.shape[1] = 1024;
    cfg.max_pending = 1 << 18;
    bs_manager *m;
    if (bs_create(&cfg, &m)) return 1;
    if (trace && bs_trace_start(m, trace)) {
        fprintf(stderr, "%s\n", bs_last_error());
        return 1;
    }
    double t0 = now();
    for (int b = 0; b < batches; b++) {
        if (bs_set_many(m, idx + (size_t)(b % 16) * N * 2, val + (size_t)(b % 16) * N, N, 1, 1, NULL, NULL))
            return 1;
        if (b % 64 == 63 && bs_synchronize(m, -1, NULL)) return 1;
    }
    if (bs_synchronize(m, -1, NULL)) return 1;
    *producer_s = now() - t0;
    if (bs_destroy(m)) return 1;
    *complete_s = now() - t0;
    return 0;
}

int main(int argc, char **argv)
{
    const char *trace = argc > 1 ? argv[1] : "/tmp/capture_overhead.jsonl";
    int batches = argc > 2 ? atoi(argv[2]) : 256;
    int64_t *idx = malloc(sizeof(int64_t) * 2 * N * 16);
    float *val = malloc(sizeof(float) * N * 16);
    if (!idx || !val) return 1;
    unsigned x = 1;
    for (int i = 0; i < N * 16; i++) {
        x = x * 1103515245u + 12345u;
        idx[2 * i] = (x >> 8) % 1024;
        idx[2 * i + 1] = (x >> 3) % 1024;
        val[i] = (float)(x % 100000) * 0.37f;
    }
    double best[2][2] = {{1e9, 1e9}, {1e9, 1e9}};
    for (int r = 0; r < REPEATS; r++) {
        for (int traced = 0; traced < 2; traced++) {
            double p, c;
            if (run(traced ? trace : NULL, batches, idx, val, &p, &c)) return 1;
            if (p < best[traced][0]) best[traced][0] = p;
            if (c < best[traced][1]) best[traced][1] = c;
        }
    }
    double n = (double)batches * N;
    printf("set_many, %d batches of %d, best of %d\n", batches, N, REPEATS);
    printf("%-12s %14s %14s\n", "", "producer", "complete");
    printf("%-12s %11.1f M/s %11.1f M/s\n", "untraced", n / best[0][0] / 1e6, n / best[0][1] / 1e6);
    printf("%-12s %11.1f M/s %11.1f M/s\n", "traced", n / best[1][0] / 1e6, n / best[1][1] / 1e6);
    printf("%-12s %13.2fx %13.2fx\n", "ratio", best[1][0] / best[0][0], best[1][1] / best[0][1]);
    free(idx);
    free(val);
    return 0;
}
