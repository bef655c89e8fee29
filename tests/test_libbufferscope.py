"""libbufferscope from C and C++ alone (SPEC §3, §5 Capture): `make libbufferscope`
builds the shared library, header and pkg-config file; the example builds
through pkg-config and runs; its BUFFERSCOPE_TRACE trace replays bit for bit to
the front it saw; the trace writer survives AddressSanitizer and ThreadSanitizer.
Every program runs in a subprocess with a timeout."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import replay_epochs

from app.trace import SyncMarker, read_trace

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "c_backend" / "src"
BUILD = ROOT / "build"
PC_DIR = BUILD / "lib" / "pkgconfig"
EXAMPLE = ROOT / "examples" / "racing_producers.c"
CC = os.environ.get("CC", "gcc")


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def lib():
    """`make libbufferscope`, once for this module."""
    for tool in ("make", CC, "pkg-config"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: `make deps` installs it")
    r = run(["make", "-s", "libbufferscope"], cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return BUILD


def pkg_config(*args):
    r = run(["pkg-config", *args, "bufferscope"], env={**os.environ, "PKG_CONFIG_PATH": str(PC_DIR)})
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def build_with_pkg_config(src, exe, compiler=CC, std="-std=c11"):
    cmd = [compiler, std, "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", str(src), "-o", str(exe),
           *pkg_config("--cflags", "--libs")]
    r = run(cmd)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return exe


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def assert_same_floats(actual, expected):
    """Bit for bit, except that a NaN's sign and payload are not kept: the trace
    format writes every NaN as "nan" (SPEC §5)."""
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan)
    np.testing.assert_array_equal(bits(actual)[~nan], bits(expected)[~nan])


# ----------------------------------------------------------------- the build

def test_make_libbufferscope_builds_the_library_header_and_pkg_config(lib):
    so = lib / "lib" / "libbufferscope.so"
    assert so.is_symlink() and os.readlink(so) == "libbufferscope.so.1"
    assert (lib / "include" / "bufferscope.h").read_text() == (SRC / "bufferscope.h").read_text()
    r = run(["readelf", "-d", str(so)])
    assert "Library soname: [libbufferscope.so.1]" in r.stdout
    # Only the bs_* API is exported.
    r = run(["nm", "-D", "--defined-only", str(so)])
    names = [line.split()[-1] for line in r.stdout.splitlines() if line.strip()]
    assert "bs_create" in names and "bs_trace_start" in names and "bs_trace_stop" in names
    assert [n for n in names if not n.startswith("bs_")] == []
    # The pkg-config prefix is the absolute build folder.
    assert pkg_config("--variable=prefix") == [str(lib)]
    # Nothing is rebuilt when nothing changed.
    r = run(["make", "-q", "libbufferscope"], cwd=ROOT)
    assert r.returncode == 0, "make libbufferscope would rebuild with no source changed"


def test_header_compiles_as_cpp_and_links_the_library(lib, tmp_path):
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "use.cpp"
    src.write_text(r"""
#include <bufferscope.h>
#include <cstdio>
int main() {
    bs_config cfg = {};
    cfg.ndim = 1; cfg.shape[0] = 4; cfg.fill = 2.5f; cfg.max_pending = 16;
    bs_manager *m = nullptr;
    if (bs_create(&cfg, &m) != BS_OK) return 1;
    if (bs_trace_start(m, "") != BS_EINVAL) return 2;
    if (bs_enqueue_set(m, 1, 0, 0, 7.0, 1, 1, nullptr) != BS_OK) return 3;
    uint64_t epoch = 0;
    if (bs_synchronize(m, 5.0, &epoch) != BS_OK || epoch != 1) return 4;
    const float *f = nullptr;
    if (bs_front(m, &f, nullptr) != BS_OK || f[1] != 7.0f || f[0] != 2.5f) return 5;
    bs_destroy(m);
    std::puts("c++ ok");
    return bs_abi_version() == BS_ABI_VERSION ? 0 : 6;
}
""")
    exe = build_with_pkg_config(src, tmp_path / "use", compiler="g++", std="-std=c++17")
    r = run([str(exe)], timeout=60)
    assert r.returncode == 0 and "c++ ok" in r.stdout, r.stdout + r.stderr


# ----------------------------------------------------------------- the example

def test_example_races_and_its_trace_replays_bit_for_bit(lib, tmp_path):
    exe = build_with_pkg_config(EXAMPLE, tmp_path / "racing_producers")
    trace_path = tmp_path / "run.jsonl"
    front_path = tmp_path / "front.npy"
    env = {**os.environ, "BUFFERSCOPE_TRACE": str(trace_path)}
    env.pop("LD_LIBRARY_PATH", None)   # the rpath from the .pc file finds the library
    r = run([str(exe), str(front_path)], env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("epoch 6 checksum "), r.stdout
    seen = np.load(front_path)
    assert seen.shape == (64, 64) and seen.dtype == np.float32

    lines = trace_path.read_text().splitlines()
    assert json.loads(lines[0]) == {"format": "bufferscope-trace", "version": 1, "shape": [64, 64],
                                    "dtype": "float32", "fill": 0.0, "features": ["set_many"]}
    trace, fronts, _ = replay_epochs(trace_path, final_sync=True)
    updates = [rec for rec in trace.records if not isinstance(rec.item, SyncMarker)]
    assert [rec.seq for rec in updates] == list(range(1, len(updates) + 1)), "not in sequence order"
    assert sum(isinstance(rec.item, SyncMarker) for rec in trace.records) == 6
    producers = [rec.producer for rec in updates]
    assert set(producers) == {"thread-1", "thread-2"}
    switches = sum(a != b for a, b in zip(producers, producers[1:]))
    assert switches >= 2, "the producers did not interleave"
    ts = [rec.t for rec in trace.records if rec.t is not None]
    assert ts == sorted(ts), "timestamps go backwards"
    # The last sync line is the program's last synchronize: its front is the one it saw.
    np.testing.assert_array_equal(bits(fronts[-2]), bits(seen))
    np.testing.assert_array_equal(bits(fronts[-1]), bits(seen))

    # And through the command line.
    out = tmp_path / "replay.npy"
    r = run([sys.executable, "-m", "app", "replay", str(trace_path), "--backend", "c", "--out", str(out)],
            cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(bits(np.load(out)), bits(seen))


# ----------------------------------------------------------------- values, shapes, errors

TRACE_PROGRAM = r"""
#define _POSIX_C_SOURCE 200809L
#include <bufferscope.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call) do { \
        int rc_ = (call); \
        if (rc_) { fprintf(stderr, "%s: %s\n", #call, bs_last_error()); return 10; } \
    } while (0)

/* argv: ndim, shape..., output raw floats. Deterministic updates of every op with
 * every kind of value (NaN, +-Inf, -0.0, subnormals, extremes, random bits). */
int main(int argc, char **argv)
{
    if (argc < 4) return 12;
    bs_config cfg = {0};
    cfg.ndim = atoi(argv[1]);
    size_t n = 1;
    for (int d = 0; d < cfg.ndim; d++) { cfg.shape[d] = atoll(argv[2 + d]); n *= (size_t)cfg.shape[d]; }
    cfg.fill = -0.0f;
    cfg.max_pending = 1000;
    bs_manager *m;
    CHECK(bs_create(&cfg, &m));
    float special[] = {NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 1e-45f, -1.17549435e-38f, 3.40282347e38f,
                       0.1f, 1.0f / 3.0f, 123456789.0f, 1e-5f, -2.5f};
    size_t ns = sizeof special / sizeof *special;
    float *vals = malloc(n * sizeof(float));
    int64_t *idx = malloc(n * 3 * sizeof(int64_t));
    unsigned x = 12345;
    for (int round = 0; round < 3; round++) {
        /* set_many over every element, with random float bits */
        for (size_t i = 0; i < n; i++) {
            size_t r = i;
            for (int d = cfg.ndim - 1; d >= 0; d--) {
                idx[i * cfg.ndim + d] = (int64_t)(r % (size_t)cfg.shape[d]);
                r /= (size_t)cfg.shape[d];
            }
            x = x * 1103515245u + 12345u;
            uint32_t b = x ^ (x << 7);
            memcpy(&vals[i], &b, 4);
            if (i < ns) vals[i] = special[(i + (size_t)round) % ns];
        }
        CHECK(bs_set_many(m, idx, vals, n, 7, 1, NULL, NULL));
        bs_update u = {0};
        for (int d = 0; d < cfg.ndim; d++) { u.start[d] = 0; u.stop[d] = cfg.shape[d]; }
        u.op = BS_OP_SCALE; u.value = 0.5;
        CHECK(bs_enqueue(m, &u, 7, 1, NULL));
        u.op = BS_OP_ADD; u.value = 1e-40;
        CHECK(bs_enqueue(m, &u, 7, 1, NULL));
        for (int d = 0; d < cfg.ndim; d++) u.stop[d] = cfg.shape[d] > 1 ? cfg.shape[d] - 1 : 1;
        u.op = BS_OP_WRITE; u.data = vals + round;
        CHECK(bs_enqueue(m, &u, 8, 1, NULL));
        u.op = BS_OP_FILL; u.value = special[round]; u.start[0] = u.stop[0];   /* empty region */
        CHECK(bs_enqueue(m, &u, 8, 1, NULL));
        u.start[0] = 0; u.stop[0] = 1; u.value = (double)special[round + 5];
        CHECK(bs_enqueue(m, &u, 8, 1, NULL));
        CHECK(bs_enqueue_set(m, 0, 0, 0, (double)special[round + 1], 9, 1, NULL));
        CHECK(bs_synchronize(m, 10.0, NULL));
    }
    const float *front;
    CHECK(bs_front(m, &front, NULL));
    FILE *f = fopen(argv[2 + cfg.ndim], "wb");
    if (!f || fwrite(front, sizeof(float), n, f) != n || fclose(f)) return 11;
    CHECK(bs_destroy(m));
    free(vals);
    free(idx);
    return 0;
}
"""


@pytest.mark.parametrize("shape", [(37,), (9, 13), (3, 5, 7)])
def test_every_op_and_value_replays_bit_for_bit(lib, tmp_path, shape):
    src = tmp_path / "values.c"
    src.write_text(TRACE_PROGRAM)
    exe = build_with_pkg_config(src, tmp_path / "values")
    trace_path, raw = tmp_path / "t.jsonl", tmp_path / "front.f32"
    r = run([str(exe), str(len(shape)), *map(str, shape), str(raw)],
            env={**os.environ, "BUFFERSCOPE_TRACE": str(trace_path)}, timeout=60)
    assert r.returncode == 0, r.stderr
    seen = np.fromfile(raw, dtype=np.float32).reshape(shape)
    text = trace_path.read_text()
    assert '"value": "nan"' in text and '"inf"' in text and '"-inf"' in text and "e-45" in text
    header = json.loads(trace_path.read_text().splitlines()[0])
    assert header["shape"] == list(shape) and header["fill"] == 0.0
    assert trace_path.read_text().splitlines()[0].endswith('"fill": -0.0, "features": ["set_many"]}')
    _, fronts, _ = replay_epochs(trace_path, final_sync=True)
    assert len(fronts) == 4
    assert_same_floats(fronts[-1], seen)


ERRORS_PROGRAM = r"""
#include <bufferscope.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
    (void)argc;
    bs_config cfg = {0};
    cfg.ndim = 1; cfg.shape[0] = 4; cfg.max_pending = 8;
    bs_manager *a, *b;
    if (bs_create(&cfg, &a) || bs_create(&cfg, &b)) return 1;   /* BUFFERSCOPE_TRACE unwritable */
    if (bs_trace_start(NULL, argv[1]) != BS_EINVAL) return 2;
    if (bs_trace_start(a, NULL) != BS_EINVAL) return 3;
    if (bs_trace_start(a, argv[1]) != BS_EIO) return 4;          /* unwritable */
    if (!strstr(bs_last_error(), argv[1])) return 5;
    printf("%s\n", bs_last_error());
    if (bs_trace_stop(a) != BS_OK) return 6;                     /* none running: fine */
    if (bs_enqueue_set(a, 1, 0, 0, 1.0, 1, 1, NULL)) return 7;
    if (bs_trace_start(a, argv[2]) != BS_EINVAL) return 8;       /* after the first update */
    printf("%s\n", bs_last_error());
    if (bs_trace_start(b, argv[2]) != BS_OK) return 9;
    if (bs_enqueue_set(b, 2, 0, 0, 3.0, 1, 1, NULL) || bs_synchronize(b, 5.0, NULL)) return 10;
    if (bs_trace_stop(b) != BS_OK) return 11;                    /* complete now */
    if (bs_enqueue_set(b, 3, 0, 0, 4.0, 1, 1, NULL)) return 12;  /* not traced */
    if (bs_close(b) || bs_trace_start(b, argv[2]) != BS_ECLOSED) return 13;
    bs_destroy(a);
    bs_destroy(b);
    puts("errors ok");
    return 0;
}
"""


def test_trace_errors_are_reported_and_never_stop_the_program(lib, tmp_path):
    src = tmp_path / "errors.c"
    src.write_text(ERRORS_PROGRAM)
    exe = build_with_pkg_config(src, tmp_path / "errors")
    bad = tmp_path / "no-such-dir" / "x.jsonl"
    good = tmp_path / "good.jsonl"
    r = run([str(exe), str(bad), str(good)],
            env={**os.environ, "BUFFERSCOPE_TRACE": str(tmp_path / "missing" / "run.jsonl")}, timeout=60)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}{r.stderr}"
    assert "errors ok" in r.stdout
    assert f"cannot write the trace {bad}: No such file or directory" in r.stdout
    assert "a trace starts before the first update" in r.stdout
    # The unwritable BUFFERSCOPE_TRACE is reported once, for two managers.
    lines = [ln for ln in r.stderr.splitlines() if "BUFFERSCOPE_TRACE" in ln]
    assert len(lines) == 1 and "continuing without a trace" in lines[0], r.stderr
    trace = read_trace(good)
    assert [(rec.item.op, rec.seq) for rec in trace.records] == [("set", 1), ("sync", None)]


def test_special_file_is_refused_not_blocked_on(lib, tmp_path):
    src = tmp_path / "errors.c"
    src.write_text(ERRORS_PROGRAM)
    exe = build_with_pkg_config(src, tmp_path / "errors")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = run([str(exe), str(fifo), str(tmp_path / "good.jsonl")], timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"cannot write the trace {fifo}: not a regular file" in r.stdout


# ----------------------------------------------------------------- sanitizers

SANITIZERS = {
    "asan-ubsan": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"],
    "tsan": ["-fsanitize=thread"],
}


@pytest.mark.parametrize("small", [False, True], ids=["", "tiny-backlog"])
@pytest.mark.parametrize("sanitizer", list(SANITIZERS))
def test_tracing_under_sanitizer(tmp_path, sanitizer, small):
    """The example with tracing on, library compiled in, under ASan+UBSan / TSan;
    with a tiny backlog bound and blocks, recorders wait for the writer, records
    outgrow blocks and blocks are reused."""
    exe = tmp_path / "racing"
    sizes = ["-DTW_BACKLOG_MAX=6000", "-DTW_BLOCK_BYTES=1024"] if small else []
    cmd = [CC, "-std=c11", "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-pthread",
           *SANITIZERS[sanitizer], *sizes, f"-I{SRC}", str(EXAMPLE), str(SRC / "bufferscope.c"),
           "-o", str(exe)]
    r = run(cmd)
    assert r.returncode == 0, r.stderr
    trace_path = tmp_path / "run.jsonl"
    env = {**os.environ, "BUFFERSCOPE_TRACE": str(trace_path),
           "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1", "TSAN_OPTIONS": "halt_on_error=1"}
    r = run([str(exe), str(tmp_path / "front.npy")], env=env, timeout=300)
    report = r.stdout + r.stderr
    assert r.returncode == 0, report[-6000:]
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer"):
        assert marker not in report, report[-6000:]
    _, fronts, _ = replay_epochs(trace_path, final_sync=True)
    np.testing.assert_array_equal(bits(fronts[-1]), bits(np.load(tmp_path / "front.npy")))


SYNC_STRESS_PROGRAM = r"""
#define _POSIX_C_SOURCE 200809L
#include <bufferscope.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
static bs_manager *mgr;
static volatile int stop_now;
static void *producer(void *arg)
{
    uint64_t id = (uint64_t)(size_t)arg;
    int64_t idx[2 * 64];
    float val[64];
    for (int r = 0; r < 300 && !stop_now; r++) {
        for (int k = 0; k < 64; k++) {
            idx[2 * k] = (r * 7 + k * (int)id) % 32;
            idx[2 * k + 1] = (r * 3 + k) % 32;
            val[k] = (float)(r * 64 + k) * (id == 1 ? 1.0f : -1.0f);
        }
        if (bs_set_many(mgr, idx, val, 64, id, 1, NULL, NULL)) return (void *)1;
        if (bs_enqueue_set(mgr, r % 32, (r * 5) % 32, 0, (double)r, id, 1, NULL)) return (void *)1;
    }
    return NULL;
}
int main(int argc, char **argv)
{
    (void)argc;
    bs_config cfg = {0};
    cfg.ndim = 2; cfg.shape[0] = 32; cfg.shape[1] = 32; cfg.max_pending = 512;
    if (bs_create(&cfg, &mgr)) return 1;
    /* One synchronize that must time out (paused, an update queued), whatever the
     * racing loop below happens to meet: the test is about timed-out syncs. */
    int timeouts = 0;
    bs_set_paused(mgr, 1);
    if (bs_enqueue_set(mgr, 0, 0, 0, 1.0, 3, 1, NULL)) return 4;
    if (bs_synchronize(mgr, 0.001, NULL) != BS_ETIMEDOUT) return 5;
    timeouts++;
    bs_set_paused(mgr, 0);
    pthread_t a, b;
    pthread_create(&a, NULL, producer, (void *)(size_t)1);
    pthread_create(&b, NULL, producer, (void *)(size_t)2);
    for (int i = 0; i < 400; i++) {
        if (i % 7 == 0) bs_set_paused(mgr, 1);
        if (i % 7 == 3) bs_set_paused(mgr, 0);
        int rc = bs_synchronize(mgr, i % 3 == 0 ? 0.0 : 0.0005, NULL);
        if (rc == BS_ETIMEDOUT) timeouts++;
        else if (rc) return 2;
    }
    bs_set_paused(mgr, 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    uint64_t epoch;
    if (bs_synchronize(mgr, -1.0, &epoch)) return 3;
    const float *front;
    bs_front(mgr, &front, NULL);
    FILE *f = fopen(argv[1], "wb");
    fwrite(front, sizeof(float), 32 * 32, f);
    fclose(f);
    printf("%llu %d\n", (unsigned long long)epoch, timeouts);
    bs_destroy(mgr);
    return 0;
}
"""


@pytest.mark.parametrize("small", [False, True], ids=["", "tiny-backlog"])
@pytest.mark.parametrize("sanitizer", list(SANITIZERS))
def test_sync_lines_are_swaps_under_timeouts_and_pauses(tmp_path, sanitizer, small):
    """Racing set_many producers, synchronize calls that time out while paused or busy,
    under a sanitizer: the trace has one sync line per epoch the program made, and
    replays to its front."""
    src = tmp_path / "stress.c"
    src.write_text(SYNC_STRESS_PROGRAM)
    exe = tmp_path / "stress"
    sizes = ["-DTW_BACKLOG_MAX=6000", "-DTW_BLOCK_BYTES=1024"] if small else []
    r = run([CC, "-std=c11", "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-pthread",
             *SANITIZERS[sanitizer], *sizes, f"-I{SRC}", str(src), str(SRC / "bufferscope.c"),
             "-o", str(exe)])
    assert r.returncode == 0, r.stderr
    trace_path = tmp_path / "run.jsonl"
    env = {**os.environ, "BUFFERSCOPE_TRACE": str(trace_path),
           "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1", "TSAN_OPTIONS": "halt_on_error=1"}
    r = run([str(exe), str(tmp_path / "front.f32")], env=env, timeout=300)
    report = r.stdout + r.stderr
    assert r.returncode == 0, report[-6000:]
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer"):
        assert marker not in report, report[-6000:]
    epoch, timeouts = map(int, r.stdout.split())
    assert timeouts > 0, "no synchronize timed out: the test did not test that"   # (>= 1 by design)
    trace, fronts, trailing = replay_epochs(trace_path)
    assert sum(isinstance(rec.item, SyncMarker) for rec in trace.records) == epoch == len(fronts)
    assert trailing == 0
    seen = np.fromfile(tmp_path / "front.f32", dtype=np.float32).reshape(32, 32)
    np.testing.assert_array_equal(bits(fronts[-1]), bits(seen))
