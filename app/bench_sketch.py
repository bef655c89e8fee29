"""The original sketch in pure Python (``queue.Queue`` + one ``threading.Event``):
the reference rows of ``bufferscope bench`` and the limit of the sync round trip."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np

SHAPE = (1024, 1024)


class SketchManager:
    """The original sketch in pure Python: the reference row (flaws included)."""

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


def bench_sync_latency_sketch(n):
    m = SketchManager(SHAPE)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        m.synchronize()
        times.append(time.perf_counter() - t0)
    m.close()
    return times


def bench_sketch_updates(n):
    from .bench import _indices, _rate

    m = SketchManager(SHAPE)
    idx = [tuple(map(int, r)) for r in _indices(n)]
    t0 = time.perf_counter()
    for i, ix in enumerate(idx):
        m.enqueue(("set", ix, float(i)))
    m.synchronize()
    dt = time.perf_counter() - t0
    m.close()
    return _rate(n, dt)
