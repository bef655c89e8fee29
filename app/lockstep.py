"""Lockstep: one stream of updates run on two backends side by side, compared bit for bit.

``run_lockstep(source, ("c", "gl"))`` opens a manager per backend with the trace's
shape and fill, enqueues every update on both in order, synchronizes both at each
sync line (and once more after trailing updates, as ``replay`` does) and compares
the two fronts of every epoch with ``app.reference.same_bits``: NaN equals NaN
(payloads are not compared) and, with ``flush_subnormals`` (the default), a
subnormal on either side equals a zero of its sign — GPUs may flush them (SPEC §2).
Nothing else is tolerated.

On the first epoch that differs it stops and names the first differing element
(row-major order), both values, how many elements differ, and the update that last
wrote that element up to that epoch (seq, op, producer, line), found by reading the
stream again. With no difference the result proves it: "epochs 1–57 identical on c
and gl". ``source`` is a trace file (streamed, never whole in memory) or anything
with ``shape``, ``fill`` and ``records()`` (an ``app.recording.Recording``).
``progress(done, total)`` and ``cancel()`` (raising ``app.keyframes.Cancelled``)
are called between records. Qt-free; both managers are closed however it ends.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .keyframes import CHECK_EVERY, Cancelled
from .reference import _flush, same_bits
from .trace import SyncMarker, TraceRecord, open_trace
from .updates import Set

TOLERANCE = ("bit for bit; NaN equals NaN (payloads not compared); "
             "subnormals flushed to zero are tolerated")
TOLERANCE_STRICT = "bit for bit; NaN equals NaN (payloads not compared)"


@dataclass(frozen=True)
class Difference:
    """The first difference between the two backends."""

    epoch: int
    index: tuple[int, ...]
    a: float
    b: float
    count: int                         # elements that differ at that epoch
    writer: TraceRecord | None         # the update that last wrote ``index`` up to ``epoch``

    def describe(self, names: tuple[str, str]) -> str:
        text = (f"epoch {self.epoch}: {self.count} element(s) differ; first at {self.index}: "
                f"{names[0]} {str(np.float32(self.a))} vs {names[1]} {str(np.float32(self.b))}")
        w = self.writer
        if w is None:
            return text + "; no update wrote it (the initial fill)"
        seq = "?" if w.seq is None else w.seq
        line = f", line {w.line}" if w.line else ""
        return (text + f"; last written by seq {seq} ({w.item.op} by {w.producer or '?'}"
                f"{line})")


@dataclass
class LockstepResult:
    backends: tuple[str, str]
    epochs: int                      # epochs compared (1 … epochs)
    updates: int
    difference: Difference | None
    front_a: np.ndarray | None       # the last fronts compared (the differing epoch's)
    front_b: np.ndarray | None
    flush_subnormals: bool = True

    @property
    def identical(self) -> bool:
        return self.difference is None

    @property
    def tolerance(self) -> str:
        return TOLERANCE if self.flush_subnormals else TOLERANCE_STRICT

    def summary(self) -> str:
        a, b = self.backends
        if self.difference is not None:
            same = (f"epochs 1–{self.difference.epoch - 1} identical; "
                    if self.difference.epoch > 1 else "")
            return f"{a} and {b} differ: {same}{self.difference.describe(self.backends)}"
        if not self.epochs:
            return f"no epochs to compare on {a} and {b}"
        return (f"epochs 1–{self.epochs} identical on {a} and {b} "
                f"({self.updates} updates; {self.tolerance})")

    def abs_difference(self) -> np.ndarray | None:
        """|a − b| per element of the last compared epoch (NaN where exactly one is NaN;
        0 where both are NaN or the same infinity)."""
        if self.front_a is None or self.front_b is None:
            return None
        a = self.front_a.astype(np.float64)
        b = self.front_b.astype(np.float64)
        with np.errstate(all="ignore"):
            d = np.abs(a - b)
        d[differing(self.front_a, self.front_b, self.flush_subnormals) == 0] = 0.0
        return d


def differing(a: np.ndarray, b: np.ndarray, flush_subnormals: bool = True) -> np.ndarray:
    """A boolean mask of the elements that differ under the lockstep's rule."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if flush_subnormals:
        a, b = _flush(a), _flush(b)
    return (a.view(np.uint32) != b.view(np.uint32)) & ~(np.isnan(a) & np.isnan(b))


class _Source:
    """A stream of trace records that can be read more than once."""

    def __init__(self, source) -> None:
        if isinstance(source, (str, os.PathLike)):
            self.path: str | None = os.fspath(source)
            with open_trace(self.path, check_memory=False) as r:
                self.shape, self.fill = tuple(r.shape), float(r.fill)
        else:
            self.path = None
            self.shape, self.fill = tuple(source.shape), float(source.fill)
            self._source = source
        self._reader = None

    def records(self) -> Iterator[TraceRecord]:
        if self.path is None:
            yield from self._source.records()
            return
        with open_trace(self.path) as reader:
            self._reader = reader
            yield from reader

    def position(self) -> tuple[int, int]:
        r = self._reader
        return (r.bytes_read, r.size) if r is not None else (0, 0)


def _touches(rec: TraceRecord, index: tuple[int, ...]) -> bool:
    u = rec.item
    if isinstance(u, SyncMarker):
        return False
    if isinstance(u, Set):
        return tuple(int(i) for i in u.index) == index
    return all(a <= i < b for i, (a, b) in zip(index, u.region))


def _last_writer(src: _Source, index: tuple[int, ...], epoch: int) -> TraceRecord | None:
    """The last update that wrote ``index`` among the updates visible at ``epoch``."""
    last = None
    syncs = 0
    for rec in src.records():
        if isinstance(rec.item, SyncMarker):
            syncs += 1
            if syncs >= epoch:
                break
            continue
        if _touches(rec, index):
            last = rec
    return last


def run_lockstep(source, backends: tuple[str, str] = ("c", "gl"),
                 progress: Callable[[int, int], None] | None = None,
                 cancel: Callable[[], bool] | None = None,
                 opener: Callable | None = None,
                 flush_subnormals: bool = True, timeout: float | None = 60.0,
                 batch_size: int = 1024) -> LockstepResult:
    """Run ``source`` on both backends in lockstep; see the module docstring.
    ``opener(backend, shape, fill=...)`` opens a manager (default ``app.open_manager``;
    tests pass one that plants a difference)."""
    if opener is None:
        from .backends import open_manager as opener
    src = _Source(source)
    names = (str(backends[0]), str(backends[1]))
    managers: list = []
    try:
        for name in names:
            managers.append(opener(name, src.shape, fill=src.fill))
        ma, mb = managers
        batch: list = []
        epoch = updates = 0
        pending = 0
        fa = fb = None

        def sync_and_compare() -> Difference | None:
            nonlocal epoch, fa, fb, batch
            if batch:
                ma.enqueue_many(batch)
                mb.enqueue_many(batch)
                batch = []
            ma.synchronize(timeout=timeout)
            mb.synchronize(timeout=timeout)
            epoch += 1
            fa = np.array(ma.front(), copy=True)
            fb = np.array(mb.front(), copy=True)
            if same_bits(fa, fb, flush_subnormals=flush_subnormals):
                return None
            mask = differing(fa, fb, flush_subnormals)
            where = np.argwhere(mask)
            index = tuple(int(x) for x in where[0])
            return Difference(epoch, index, float(fa[index]), float(fb[index]), int(len(where)),
                              _last_writer(src, index, epoch))

        diff = None
        for k, rec in enumerate(src.records()):
            if k % CHECK_EVERY == 0:
                if cancel is not None and cancel():
                    raise Cancelled("lockstep was cancelled")
                if progress is not None:
                    progress(*src.position())
            if isinstance(rec.item, SyncMarker):
                pending = 0
                diff = sync_and_compare()
                if diff is not None:
                    break
                continue
            batch.append(rec.item)
            updates += 1
            pending += 1
            if len(batch) >= batch_size:
                ma.enqueue_many(batch)
                mb.enqueue_many(batch)
                batch = []
        if diff is None and pending:
            diff = sync_and_compare()
        return LockstepResult(names, epoch if diff is None else diff.epoch, updates, diff, fa, fb,
                              flush_subnormals)
    finally:
        for m in managers:
            m.close()


def records_of(trace_records: Iterable[TraceRecord], shape, fill: float = 0.0):
    """An in-memory source for ``run_lockstep`` (a list of records, read as often as needed)."""
    records = list(trace_records)

    class _InMemory:
        pass

    src = _InMemory()
    src.shape, src.fill, src.records = tuple(shape), float(fill), lambda: iter(records)
    return src


__all__ = ["run_lockstep", "LockstepResult", "Difference", "differing", "records_of", "TOLERANCE"]
