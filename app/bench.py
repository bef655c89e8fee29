"""``bufferscope bench``: the figures of SPEC §8, measured in one process run so
the ratios hold on a noisy machine.

The baseline is a faithful pure-Python version of the original sketch
(``queue.Queue`` + one shared ``threading.Event``, tuples applied to a numpy
buffer by a worker thread), flaws included. The limit is the machine's own
memcpy bandwidth (``np.copyto`` of 64 MiB). A benchmark is a program: nothing
here asserts a time; the table says how each figure compares to its target.
"""

from __future__ import annotations

import json
import queue
import statistics
import sys
import threading
import time

import numpy as np

from .updates import Fill, Set, Write

SHAPE = (1024, 1024)


class SketchManager:
    """The original sketch in pure Python: the performance baseline."""

    def __init__(self, shape):
        self.front = np.zeros(shape, np.float32)
        self.back = np.zeros(shape, np.float32)
        self.update_queue: queue.Queue = queue.Queue()
        self.sync_event = threading.Event()
        self.thread = threading.Thread(target=self._worker_loop, daemon=True, name="sketch-worker")
        self.thread.start()

    def enqueue(self, update):
        self.update_queue.put(update)

    def synchronize(self):
        self.update_queue.put(None)
        self.sync_event.wait()
        self.sync_event.clear()

    def close(self):
        self.update_queue.put(StopIteration)
        self.thread.join(10)

    def _worker_loop(self):
        while True:
            update = self.update_queue.get()
            if update is None:
                self.front, self.back = self.back, self.front
                self.sync_event.set()
                continue
            if update is StopIteration:
                return
            _, index, value = update
            self.back[index] = value


def _rate(n, seconds):
    return n / seconds if seconds > 0 else float("inf")


def _indices(n, shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s, n) for s in shape], axis=1).astype(np.int64)


def bench_baseline_updates(n):
    m = SketchManager(SHAPE)
    idx = [tuple(map(int, r)) for r in _indices(n)]
    t0 = time.perf_counter()
    for i, ix in enumerate(idx):
        m.enqueue(("set", ix, float(i)))
    m.synchronize()
    dt = time.perf_counter() - t0
    m.close()
    return _rate(n, dt)


def bench_sync_latency_baseline(n):
    m = SketchManager(SHAPE)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        m.synchronize()
        times.append(time.perf_counter() - t0)
    m.close()
    return times


def bench_manager_per_call(backend, n):
    from .backends import open_manager

    idx = [tuple(map(int, r)) for r in _indices(n)]
    with open_manager(backend, SHAPE) as m:
        ups = [Set(ix, float(i)) for i, ix in enumerate(idx)]
        t0 = time.perf_counter()
        enqueue = m.enqueue
        for u in ups:
            enqueue(u)
        m.synchronize(timeout=120)
        return _rate(n, time.perf_counter() - t0)


def bench_manager_set_many(backend, n, batch=4096):
    from .backends import open_manager

    idx = _indices(n)
    vals = np.arange(n, dtype=np.float32)
    with open_manager(backend, SHAPE) as m:
        m.set_many(idx[:batch], vals[:batch])  # warm up (GL: compile, first upload)
        m.synchronize(timeout=120)
        t0 = time.perf_counter()
        for k in range(0, n, batch):
            m.set_many(idx[k:k + batch], vals[k:k + batch])
        m.synchronize(timeout=120)
        return _rate(n, time.perf_counter() - t0)


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


def _pct(times, q):
    return float(np.percentile(np.asarray(times), q))


def run(backends=("c", "gl"), quick=False, log=print):
    """Measure everything; returns a dict of figures."""
    from .backends import why_not

    k = 1 if quick else 4
    n_calls = 50_000 * k
    n_many = 1_000_000 * k
    n_sync = 500 * k
    fig: dict = {"shape": list(SHAPE), "quick": quick}
    log("measuring the pure-Python baseline (the original sketch)...")
    fig["baseline_updates_per_s"] = bench_baseline_updates(n_calls)
    lat = bench_sync_latency_baseline(n_sync)
    fig["baseline_sync_median_us"] = statistics.median(lat) * 1e6
    fig["baseline_sync_p99_us"] = _pct(lat, 99) * 1e6
    log("measuring numpy scatter and memcpy...")
    fig["numpy_scatter_per_s"] = bench_numpy_scatter(n_many)
    fig["memcpy_bytes_per_s"] = bench_memcpy(5 * k)
    for b in backends:
        reason = why_not(b)
        if reason:
            fig[f"{b}_unavailable"] = reason
            log(f"skipping backend {b}: {reason}")
            continue
        log(f"measuring backend {b}...")
        fig[f"{b}_per_call_per_s"] = bench_manager_per_call(b, n_calls)
        fig[f"{b}_set_many_per_s"] = bench_manager_set_many(b, n_many)
        lat = bench_sync_latency(b, n_sync)
        fig[f"{b}_sync_median_us"] = statistics.median(lat) * 1e6
        fig[f"{b}_sync_p99_us"] = _pct(lat, 99) * 1e6
        small = bench_sync_batch_cost(b, (512, 512), 20 * k)
        large = bench_sync_batch_cost(b, (4096, 4096), 20 * k)
        fig[f"{b}_sync100_1mib_us"] = small * 1e6
        fig[f"{b}_sync100_64mib_us"] = large * 1e6
        fig[f"{b}_write16mib_bytes_per_s"] = bench_write(b, 3 * k)
    return fig


def table(fig) -> str:
    base = fig["baseline_updates_per_s"]
    rows = [("figure", "value", "ratio", "target", "")]

    def row(name, value, ratio=None, target="", ok=None):
        mark = "" if ok is None else ("ok" if ok else "MISSED")
        rows.append((name, value, "" if ratio is None else f"{ratio:,.1f}x", target, mark))

    row("baseline: enqueue(tuple) updates/s", f"{base:,.0f}")
    row("baseline: sync round trip median / p99",
        f"{fig['baseline_sync_median_us']:.1f} / {fig['baseline_sync_p99_us']:.1f} us")
    row("numpy scatter buf[idx] = v, elements/s", f"{fig['numpy_scatter_per_s']:,.0f}")
    row("memcpy (np.copyto 64 MiB)", f"{fig['memcpy_bytes_per_s'] / 2**30:.2f} GiB/s")
    for b in ("c", "gl"):
        if f"{b}_per_call_per_s" not in fig:
            if f"{b}_unavailable" in fig:
                row(f"{b}: unavailable", fig[f"{b}_unavailable"][:60])
            continue
        pc = fig[f"{b}_per_call_per_s"]
        sm = fig[f"{b}_set_many_per_s"]
        if b == "c":
            row("c: enqueue(Set) updates/s", f"{pc:,.0f}", pc / base, ">= 10x baseline", pc >= 10 * base)
            row("c: set_many(4096) updates/s", f"{sm:,.0f}", sm / base, ">= 1000x baseline",
                sm >= 1000 * base)
            sc = fig["numpy_scatter_per_s"]
            row("c: set_many vs numpy scatter", f"{100 * sm / sc:.0f}%", None, ">= 50%", sm >= 0.5 * sc)
        else:
            row(f"{b}: enqueue(Set) updates/s", f"{pc:,.0f}", pc / base)
            row(f"{b}: set_many(4096) updates/s", f"{sm:,.0f}", sm / base, ">= 100x baseline",
                sm >= 100 * base)
        med, p99 = fig[f"{b}_sync_median_us"], fig[f"{b}_sync_p99_us"]
        ratio = med / fig["baseline_sync_median_us"]
        row(f"{b}: sync round trip median / p99", f"{med:.1f} / {p99:.1f} us", ratio,
            "<= 0.6x baseline" if b == "c" else "", (ratio <= 0.6) if b == "c" else None)
        s1, s64 = fig[f"{b}_sync100_1mib_us"], fig[f"{b}_sync100_64mib_us"]
        row(f"{b}: 100 updates + sync, 64 MiB vs 1 MiB", f"{s64:.0f} vs {s1:.0f} us", s64 / s1,
            "<= 1.5x", s64 / s1 <= 1.5)
        w = fig[f"{b}_write16mib_bytes_per_s"]
        row(f"{b}: Write 16 MiB + sync", f"{w / 2**30:.2f} GiB/s", w / fig["memcpy_bytes_per_s"],
            ">= 0.5x memcpy", w >= 0.5 * fig["memcpy_bytes_per_s"])
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(args) -> int:
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    to_stdout_json = args.json_out == "-"
    log = (lambda s: print(s, file=sys.stderr)) if to_stdout_json else (
        lambda s: print(s, file=sys.stderr, flush=True))
    fig = run(backends, quick=args.quick, log=log)
    if to_stdout_json:
        print(json.dumps(fig, indent=2))
        return 0
    print(table(fig))
    if args.json_out:
        from .atomic import write_text

        write_text(args.json_out, json.dumps(fig, indent=2) + "\n")
        print(f"figures written to {args.json_out}")
    return 0
