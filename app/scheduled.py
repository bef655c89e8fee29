"""``ScheduledManager``: the manager contract over the Python ``Scheduler``.

A thin front, like ``c_backend/manager.py`` is over the C library: it turns
validated updates into queue entries and forwards every call to the scheduler
(``app.scheduler``), which drives a backend's executor. The GL backend and the
numpy reference backend are both this front with a different executor.
"""

from __future__ import annotations

import weakref

import numpy as np

from .manager import (
    DEFAULT_EVENT_CAPACITY,
    BufferManager,
    Event,
    ManagerStats,
    check_event_capacity,
)
from .scheduler import SETS, SETS_CHUNK, UPDATE, Entry, Executor, Scheduler, write_units
from .updates import Shape, Update


class ScheduledManager(BufferManager):
    """A manager whose queue protocol is ``app.scheduler.Scheduler``.

    Parameters
    ----------
    shape, fill, max_pending
        As for ``app.open_manager``.
    event_capacity
        Size of the ring of ordering events (0 keeps none).
    executor
        Applies the updates (see ``app.scheduler.Executor``); it must not hold a
        reference to this manager.
    """

    def __init__(self, shape: Shape, fill: float, max_pending: int,
                 event_capacity: int = DEFAULT_EVENT_CAPACITY, *,
                 executor: Executor, thread_name: str) -> None:
        super().__init__(shape, fill, max_pending)
        event_capacity = check_event_capacity(event_capacity)
        self._strides = np.array(
            [int(np.prod(self.shape[d + 1:], dtype=np.int64)) for d in range(self.ndim)],
            dtype=np.int64,
        )
        self._executor = executor
        self._sched = Scheduler(executor, self.shape, self.fill, self.max_pending,
                                event_capacity, thread_name)
        self._finalizer = weakref.finalize(self, self._sched.close)

    # -- building entries ---------------------------------------------------------------
    def _entry(self, u: Update, producer: int) -> Entry:
        e = Entry(UPDATE, u.op, 1, write_units(u), producer)
        e.update = u
        self._executor.encode(e)
        return e

    def _enqueue(self, update: Update, block: bool) -> int:
        return self._sched.push(self._entry(update, self._producer_id()), block)

    def _enqueue_many(self, valid: list[Update], block: bool) -> list[int]:
        pid = self._producer_id()
        return self._sched.push_many([self._entry(u, pid) for u in valid], block)

    def _set_many(self, idx: np.ndarray, vals: np.ndarray, block: bool) -> np.ndarray:
        n = len(vals)
        vals = vals.copy()   # the caller may change its array once we return
        if self.ndim == 1:
            flat = idx[:, 0].copy()
        else:
            flat = idx[:, -1] + idx[:, -2] * self._strides[-2]
            if self.ndim == 3:
                flat += idx[:, 0] * self._strides[0]
        chunk = min(self.max_pending, SETS_CHUNK)
        pid = self._producer_id()
        entries = []
        for lo in range(0, n, chunk):
            e = Entry(SETS, "set", min(chunk, n - lo), min(chunk, n - lo), pid)
            e.flat = flat[lo: lo + chunk]
            e.values = vals[lo: lo + chunk]
            self._executor.encode(e)
            entries.append(e)
        seqs = np.empty(n, dtype=np.uint64)
        pos = 0
        for e, first in zip(entries, self._sched.push_many(entries, block)):
            seqs[pos: pos + e.count] = np.arange(first, first + e.count, dtype=np.uint64)
            pos += e.count
        return seqs

    # -- the rest of the contract ---------------------------------------------------------
    def _synchronize(self, timeout: float | None) -> int:
        return self._sched.synchronize(timeout)

    def _front(self) -> np.ndarray:
        return self._sched.front()

    def _stats(self) -> ManagerStats:
        s = self._sched
        with s.lock:
            return ManagerStats.read(s, s.ev_count)

    def _events(self, since: int) -> tuple[list[Event], int]:
        raw, nxt = self._sched.events(since)
        name = self.producer_name
        return [Event(index=i, t_ns=t, kind=k, seq=sq, count=c, epoch=ep, producer=name(p),
                      slot=sl, op=op) for (i, t, k, sq, c, ep, p, sl, op) in raw], nxt

    def _set_paused(self, paused: bool) -> None:
        self._sched.set_paused(paused)

    def _step(self, n: int) -> None:
        self._sched.step(n)

    def _inject_worker_fault(self, after: int) -> None:
        self._sched.inject_fault(after)

    def close(self) -> None:
        self._closed = True
        self._finalizer()     # the first call closes the scheduler; later ones do nothing
        self._sched.close()   # returns once it is closed, whoever closed it
