"""``bufferscope bench``: the figures of SPEC §8, each set against a limit measured
in the same run, so that ratios hold on a noisy machine.

The limits: the *Python call floor* (building the same ``Set`` and calling a
no-op method, in the same loop: what any per-call API costs at least), numpy's
own scatter ``buf[idx] = v`` into a buffer of the same shape, the machine's
memcpy bandwidth, and for the sync round trip the pure-Python version of the
original sketch (``queue.Queue`` + one shared ``threading.Event``), which also
stays in the table as a reference: it swings between runs, so no throughput
target is set against it. A benchmark is a program: nothing here asserts a
time; the table says how each figure compares to its target. The table and JSON
are ``app.bench_report``'s, the sketch ``app.bench_sketch``'s, the viewer rows
``app.bench_viewer``'s.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time

import numpy as np

from .bench_report import Figure, as_json, main, table  # noqa: F401 (the bench's API)
from .bench_sketch import SketchManager, bench_sketch_updates, bench_sync_latency_sketch  # noqa: F401
from .updates import Fill, Set, Write

SHAPE = (1024, 1024)


def _rate(n, seconds):
    return n / seconds if seconds > 0 else float("inf")


def _indices(n, shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s, n) for s in shape], axis=1).astype(np.int64)


class _Noop:
    def enqueue(self, update):
        return None


def bench_python_floor(n):
    """Building the same Set and calling a no-op method in the same loop."""
    idx = [tuple(map(int, r)) for r in _indices(n)]
    sink = _Noop()
    enqueue = sink.enqueue
    t0 = time.perf_counter()
    for i, ix in enumerate(idx):
        enqueue(Set(ix, float(i)))
    return _rate(n, time.perf_counter() - t0)


def bench_per_call(backend, n):
    """One ``enqueue(Set)`` per update (the Set built in the loop), then a sync."""
    from .backends import open_manager

    idx = [tuple(map(int, r)) for r in _indices(n)]
    with open_manager(backend, SHAPE) as m:
        m.enqueue(Set((0, 0), 0.0))
        m.synchronize(timeout=120)
        enqueue = m.enqueue
        t0 = time.perf_counter()
        for i, ix in enumerate(idx):
            enqueue(Set(ix, float(i)))
        m.synchronize(timeout=120)
        return _rate(n, time.perf_counter() - t0)


def _spin(stop):
    while not stop.is_set():
        pass


def bench_per_call_busy(backend, n):
    """The same with a busy process on every other core (started here)."""
    others = max(1, (os.cpu_count() or 2) - 1)
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=_spin, args=(stop,), daemon=True) for _ in range(others)]
    for p in procs:
        p.start()
    try:
        time.sleep(0.2)
        return bench_per_call(backend, n)
    finally:
        stop.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()


def bench_set_many(backend, n, batch=4096, trace=None):
    """``set_many`` in batches; returns (updates/s until the last sync, until closed)."""
    from .backends import open_manager

    idx = _indices(n)
    vals = np.arange(n, dtype=np.float32)
    opts = {} if trace is None else {"trace": trace}
    m = open_manager(backend, SHAPE, **opts)
    try:
        m.set_many(idx[:batch], vals[:batch])  # warm up (GL: compile, first upload)
        m.synchronize(timeout=120)
        t0 = time.perf_counter()
        for k in range(0, n, batch):
            m.set_many(idx[k:k + batch], vals[k:k + batch])
        m.synchronize(timeout=120)
        synced = time.perf_counter() - t0
    finally:
        m.close()
    closed = time.perf_counter() - t0
    return _rate(n, synced), _rate(n, closed)


def bench_numpy_scatter(n, batch=4096):
    buf = np.zeros(SHAPE, np.float32)
    idx = _indices(n)
    vals = np.arange(n, dtype=np.float32)
    t0 = time.perf_counter()
    for k in range(0, n, batch):
        b = idx[k:k + batch]
        buf[b[:, 0], b[:, 1]] = vals[k:k + batch]
    return _rate(n, time.perf_counter() - t0)


def bench_sync_latency(backend, n):
    from .backends import open_manager

    with open_manager(backend, SHAPE) as m:
        m.synchronize(timeout=60)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            m.synchronize(timeout=60)
            times.append(time.perf_counter() - t0)
        return times


def bench_sync_batch_cost(backend, shape, reps):
    """Median time of (100 small updates + synchronize)."""
    from .backends import open_manager

    with open_manager(backend, shape) as m:
        rng = np.random.default_rng(1)
        times = []
        for _ in range(reps):
            ups = [Fill(((int(r), int(r) + 2), (int(c), int(c) + 2)), 1.0)
                   for r, c in rng.integers(0, min(shape) - 2, size=(100, 2))]
            t0 = time.perf_counter()
            m.enqueue_many(ups)
            m.synchronize(timeout=60)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)


def bench_write(backend, reps):
    from .backends import open_manager

    block = np.random.default_rng(2).standard_normal((2048, 2048)).astype(np.float32)  # 16 MiB
    with open_manager(backend, (2048, 2048)) as m:
        region = ((0, 2048), (0, 2048))
        m.enqueue(Write(region, block))
        m.synchronize(timeout=60)
        t0 = time.perf_counter()
        for _ in range(reps):
            m.enqueue(Write(region, block))
            m.synchronize(timeout=60)
        return reps * block.nbytes / (time.perf_counter() - t0)


def bench_memcpy(reps):
    src = np.ones(16 << 20, np.float32)  # 64 MiB
    dst = np.empty_like(src)
    np.copyto(dst, src)
    t0 = time.perf_counter()
    for _ in range(reps):
        np.copyto(dst, src)
    return reps * src.nbytes / (time.perf_counter() - t0)


_PEAK_SCRIPT = """
import sys, numpy as np
import app
from app import Write
def status(key):  # /proc: ru_maxrss would carry the parent's peak across fork+exec
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
backend, max_pending = sys.argv[1], int(sys.argv[2])
base = status("VmRSS:")
m = app.open_manager(backend, (4096, 4096), max_pending=max_pending)
rng = np.random.default_rng(0)
for k in range(8):
    m.set_many(rng.integers(0, 4096, (65536, 2)), rng.random(65536))
    m.enqueue(Write(((k * 512, k * 512 + 512), (0, 4096)), np.ones((512, 4096))))
    m.synchronize(timeout=120)
m.front()
peak = status("VmHWM:")
m.close()
print(peak - base)
"""


def bench_peak_memory(backend, max_pending=1 << 18):
    """Peak RSS growth (bytes) of a process that opens a 64 MiB buffer and works it."""
    import subprocess

    r = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, backend, str(max_pending)],
                       capture_output=True, text=True, timeout=600,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed")
    return int(r.stdout.strip().splitlines()[-1])


def bench_update_log(rows: int) -> dict:
    """The update log taking in ``rows`` while it follows the tail (``ui.log_bench``,
    run by name in a child: the core never imports the UI)."""
    import subprocess

    r = subprocess.run([sys.executable, "-m", "ui.log_bench", str(rows)], capture_output=True,
                       text=True, timeout=600,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if r.returncode != 0:
        raise RuntimeError((r.stderr.strip().splitlines() or ["failed"])[-1])
    return json.loads(r.stdout.strip().splitlines()[-1])


def _pct(times, q):
    return float(np.percentile(np.asarray(times), q))


PER_CALL_TARGET = {"c": 0.5, "gl": 0.25}
SET_MANY_TARGET = {"c": 1.5, "gl": 0.5}


def recording_figure(backend, n) -> Figure:
    """set_many recorded to a trace against the same unrecorded, until closed."""
    with tempfile.TemporaryDirectory() as tmp:
        rec_sync, rec_done = bench_set_many(backend, n, trace=os.path.join(tmp, "t.jsonl"))
    plain_sync, plain_done = bench_set_many(backend, n)
    fig = Figure("recording a trace: set_many until the trace is complete", backend,
                 plain_done / rec_done, "x slower", "", None, "<= 2x",
                 note=f"until the last sync: {plain_sync / rec_sync:.2f}x slower")
    fig.limit, fig.target_ratio, fig.higher_is_better = 1.0, 2.0, False
    return fig


#: The figure groups ``--only`` can pick.
ONLY = ("recording",)


def run(backends=("c", "gl"), quick=False, log=print,
        viewer_shape=(1024, 1024), only: str | None = None) -> list[Figure]:
    """Measure everything (or only the group ``only``, one of ``ONLY``); the figures
    in table order. ``log`` gets progress lines."""
    from .backends import why_not

    k = 1 if quick else 4
    n_calls, n_many, n_sync = 50_000 * k, 1_000_000 * k, 500 * k
    if only == "recording":
        figs = []
        for b in backends:
            reason = why_not(b)
            if reason:
                figs.append(Figure(f"unavailable: {reason[:70]}", b, float("nan"), ""))
                continue
            log(f"{b}: set_many while recording a trace...")
            figs.append(recording_figure(b, n_many // 4))
        return figs
    figs: list[Figure] = []
    per_backend = 9   # the step() calls in the loop below, one per figure group
    steps = 4 + per_backend * len(backends)
    done = [0]

    def step(what):
        done[0] += 1
        log(f"[{done[0]:2d}/{steps}] {what}...")

    step("the limits: the Python call floor, numpy's scatter, memcpy")
    floor = bench_python_floor(n_calls)
    scatter = bench_numpy_scatter(n_many)
    memcpy = bench_memcpy(5 * k)
    step("the reference: the original sketch in pure Python")
    sketch_rate = bench_sketch_updates(n_calls)
    sketch_lat = bench_sync_latency_sketch(n_sync)
    sketch_med = statistics.median(sketch_lat)
    step("figures per backend")
    try:
        log_fig = bench_update_log(25_000 if quick else 100_000)
        log_row = Figure(f"update log: {log_fig['rows']:,} rows appended while following the tail",
                         "ui", log_fig["rows_per_s"], "rows/s",
                         note=f"slowest batch of {log_fig['batch']}: {log_fig['worst_batch_ms']:.0f} ms")
    except Exception as exc:   # no Qt here: say why, measure the rest
        log_row = Figure(f"update log: {exc}"[:80], "ui", float("nan"), "")
    figs += [
        log_row,
        Figure("Python call floor (build a Set, call a no-op)", "", floor, "updates/s",
               note="the limit of every per-call figure"),
        Figure("numpy scatter buf[idx] = v, batches of 4096", "", scatter, "elements/s",
               note="the limit of set_many"),
        Figure("memcpy (np.copyto of 64 MiB)", "", memcpy, "bytes/s", note="the limit of Write"),
        Figure("sketch (reference): enqueue(tuple)", "", sketch_rate, "updates/s",
               note="no target: it swings 77k-730k/s between runs"),
        Figure("sketch (reference): sync round trip, median", "", sketch_med * 1e6, "us",
               note=f"p99 {_pct(sketch_lat, 99) * 1e6:.1f} us"),
    ]
    for b in backends:
        reason = why_not(b)
        if reason:
            figs.append(Figure(f"unavailable: {reason[:70]}", b, float("nan"), ""))
            done[0] += per_backend
            log(f"skipping backend {b}: {reason}")
            continue
        step(f"{b}: one enqueue(Set) per update")
        pc = bench_per_call(b, n_calls)
        figs.append(Figure("enqueue(Set), one call per update", b, pc, "updates/s",
                           "Python call floor", floor, f">= {PER_CALL_TARGET[b]}x",
                           PER_CALL_TARGET[b]))
        step(f"{b}: the same with a busy process on every other core")
        busy = bench_per_call_busy(b, n_calls)
        figs.append(Figure("enqueue(Set), busy process on every other core", b, busy, "updates/s",
                           "the quiet figure", pc, ">= 0.5x", 0.5))
        step(f"{b}: set_many, batches of 4096")
        sm, _ = bench_set_many(b, n_many)
        figs.append(Figure("set_many, batches of 4096", b, sm, "updates/s",
                           "numpy scatter", scatter, f">= {SET_MANY_TARGET[b]}x", SET_MANY_TARGET[b]))
        step(f"{b}: set_many while recording a trace")
        figs.append(recording_figure(b, n_many // 4))
        step(f"{b}: a program publishing live, with and without a viewer attached")
        figs.append(bench_attach_figure(b, quick))
        step(f"{b}: sync round trip, empty queue, idle worker")
        lat = bench_sync_latency(b, n_sync)
        figs.append(Figure("sync round trip, empty queue, median", b,
                           statistics.median(lat) * 1e6, "us", "the sketch's median",
                           sketch_med * 1e6, "<= 0.6x", 0.6, higher_is_better=False,
                           note=f"p99 {_pct(lat, 99) * 1e6:.1f} us"))
        step(f"{b}: 100 updates + sync on 1 MiB and 64 MiB buffers")
        small = bench_sync_batch_cost(b, (512, 512), 20 * k)
        large = bench_sync_batch_cost(b, (4096, 4096), 20 * k)
        figs.append(Figure("100 updates + sync, 64 MiB buffer", b, large * 1e6, "us",
                           "the same on 1 MiB", small * 1e6, "<= 1.5x", 1.5, higher_is_better=False))
        step(f"{b}: Write of a 16 MiB block")
        w = bench_write(b, 3 * k)
        figs.append(Figure("Write of 16 MiB + sync", b, w, "bytes/s", "memcpy", memcpy,
                           ">= 0.5x", 0.5))
        step(f"{b}: peak memory with a 64 MiB buffer (a child process)")
        try:
            peak = bench_peak_memory(b)
            bound = 2 * (64 << 20) + (1 << 18) * 12 + (100 << 20)
            figs.append(Figure("peak memory growth, 64 MiB buffer", b, peak, "bytes",
                               "2 buffers + queue bound + 100 MiB", bound, "<= 1x", 1.0,
                               higher_is_better=False))
        except Exception as exc:
            figs.append(Figure(f"peak memory: {exc}"[:80], b, float("nan"), ""))
    step("the viewer: stress at --shape and 4096x4096 against an empty QOpenGLWidget")
    from .bench_viewer import bench_viewer

    figs += bench_viewer(backends, tuple(viewer_shape), 2.0 if quick else 4.0)
    return figs


def bench_attach_figure(backend: str, quick: bool) -> Figure:
    """The live attach row: how much slower a publishing program runs with a viewer
    reading everything than unpublished (median of alternating rounds)."""
    from .bench_attach import measure

    try:
        r = measure(backend, seconds=1.0 if quick else 2.5, rounds=1 if quick else 3)
    except Exception as exc:
        return Figure(f"live attach: {exc}"[:80], backend, float("nan"), "")
    med = r["median"]
    fig = Figure("live attach: set_many + sync with a viewer reading everything", backend,
                 med["off"] / med["viewer"], "x slower", "unpublished", None, "<= 1.1x",
                 note=f"published, no viewer: {med['off'] / med['idle']:.2f}x; CPU per update "
                      f"with a viewer {r['viewer_cpu_ratio']:.2f}x; median of {r['rounds']}")
    fig.limit, fig.target_ratio, fig.higher_is_better = 1.0, 1.1, False
    return fig
