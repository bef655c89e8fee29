"""The numpy executor: the scheduler's protocol on two numpy arrays, no OpenGL.

It is the reference backend ``"numpy"`` (``open_manager("numpy", ...)``, not listed
in the app's backend toggle): the contract suite and the Hypothesis state machine
run the scheduler through it without a GL context, so the queue protocol the GL
backend shares is tested everywhere. Catch-up is left-right style: the entries
applied since the last swap are replayed onto the new back, or the front is
copied whole when they touched more elements than the buffer holds.
"""

from __future__ import annotations

import math

import numpy as np

from .manager import DEFAULT_EVENT_CAPACITY, Capabilities
from .scheduled import ScheduledManager
from .scheduler import SETS, Entry, Item
from .updates import Add, Fill, Scale, Set, Shape, Write, region_slices


def last_write_wins(flat: np.ndarray, values: np.ndarray, target: np.ndarray) -> None:
    """``target[flat] = values`` in array order: for a repeated offset the last value wins."""
    if len(flat) > 1:
        rev_unique, first_in_rev = np.unique(flat[::-1], return_index=True)
        target[rev_unique] = values[len(flat) - 1 - first_in_rev]
    elif len(flat):
        target[flat] = values


def apply_entry(buf: np.ndarray, e: Entry, frm: int, n: int) -> int:
    """Apply element updates ``frm..frm+n-1`` of ``e`` to ``buf``; the elements touched."""
    if e.kind == SETS:
        last_write_wins(e.flat[frm: frm + n], e.values[frm: frm + n], buf.reshape(-1))
        return n
    u = e.update
    t = type(u)
    with np.errstate(all="ignore"):
        if t is Set:
            buf[u.index] = np.float32(u.value)
            return 1
        sl = region_slices(u.region)
        if t is Write:
            buf[sl] = u.data
        elif t is Fill:
            buf[sl] = np.float32(u.value)
        elif t is Add:
            buf[sl] += np.float32(u.value)
        elif t is Scale:
            buf[sl] *= np.float32(u.value)
        return int(np.prod([b - a for a, b in u.region], dtype=np.int64))


class NumpyExecutor:
    """Front and back as two numpy arrays (see ``app.scheduler.Executor``)."""

    where = "in the numpy worker"

    def __init__(self, shape: Shape, fill: float) -> None:
        self.shape = tuple(shape)
        self.fill = fill
        self.nelem = math.prod(self.shape)
        self.bufs: list[np.ndarray] = []
        self.batch: list[tuple[Entry, int, int]] = []   # applied since the last swap
        self.batch_touched = 0
        self.overflow = False

    def encode(self, entry: Entry) -> None:
        pass

    def hand_over(self, deadline: float) -> None:
        pass

    def start(self) -> dict:
        with np.errstate(over="ignore"):
            first = np.full(self.shape, np.float32(self.fill), dtype=np.float32)
        self.bufs = [first, first.copy()]
        return {"executor": "numpy"}

    def finish(self) -> None:
        self.batch = []

    def dispose(self) -> None:
        pass

    def apply(self, items: list[Item], slot: int) -> Exception | None:
        buf = self.bufs[slot]
        try:
            for e, frm, n, failed in items:
                if failed:
                    continue
                touched = apply_entry(buf, e, frm, n)
                self._keep(e, frm, n, touched)
        except Exception as exc:
            self.overflow = True
            self.batch = []
            return exc
        return None

    def _keep(self, e: Entry, frm: int, n: int, touched: int) -> None:
        if self.overflow:
            return
        self.batch_touched += touched
        if self.batch_touched > self.nelem:
            self.overflow = True   # replaying would cost more than a copy
            self.batch = []
        else:
            self.batch.append((e, frm, n))

    def wait(self) -> None:
        pass

    def catch_up(self, front: int, back: int) -> int:
        try:
            if self.overflow:
                np.copyto(self.bufs[back], self.bufs[front])
                return 0
            for e, frm, n in self.batch:
                apply_entry(self.bufs[back], e, frm, n)
            return len(self.batch)
        finally:
            self.batch = []
            self.batch_touched = 0
            self.overflow = False

    def read(self, slot: int) -> np.ndarray:
        return self.bufs[slot]      # not written until the next swap makes it the back

    read_front = read

    def finite_range(self, slot: int) -> tuple[float, float] | None:
        a = self.bufs[slot]
        finite = a[np.isfinite(a)]
        if not finite.size:
            return None
        return float(finite.min()), float(finite.max())


class NumpyBufferManager(ScheduledManager):
    """The scheduler with the numpy executor: the reference backend."""

    backend = "numpy"
    capabilities = Capabilities(back=True, watch=True)

    def __init__(self, shape: Shape, fill: float = 0.0, max_pending: int = 1 << 18,
                 event_capacity: int = DEFAULT_EVENT_CAPACITY, trace: str | None = None) -> None:
        from .sysmem import check_buffers_fit

        check_buffers_fit(tuple(shape))
        super().__init__(shape, fill, max_pending, event_capacity, trace,
                         executor=NumpyExecutor(shape, float(fill)),
                         thread_name="bufferscope-numpy-worker")


def why_not() -> str | None:
    return None


def open_manager(shape, fill, max_pending, **options) -> NumpyBufferManager:
    return NumpyBufferManager(shape, fill, max_pending, **options)
