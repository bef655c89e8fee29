"""``ScheduledManager``: the manager contract over the Python ``Scheduler``.

A thin front, like ``c_backend/manager.py`` is over the C library: it turns
validated updates into queue entries and forwards every call to the scheduler
(``app.scheduler``), which drives a backend's executor. The GL backend and the
numpy reference backend are both this front with a different executor.
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from . import capture
from .manager import (
    DEFAULT_EVENT_CAPACITY,
    BufferManager,
    Event,
    ManagerStats,
    check_event_capacity,
)
from .scheduler import (
    SETS,
    SETS_CHUNK,
    UPDATE,
    Entry,
    Executor,
    Scheduler,
    StrippedEntry,
    Watch,
    readonly,
    write_units,
)
from .updates import Set, Shape, Update, Write


class ScheduledManager(BufferManager):
    """A manager whose queue protocol is ``app.scheduler.Scheduler``.

    Offers ``back()`` and ``set_watch()`` (``capabilities.back``/``watch``) on every
    executor: both are the scheduler's.

    Parameters
    ----------
    shape, fill, max_pending
        As for ``app.open_manager``.
    event_capacity
        Size of the ring of ordering events (0 keeps none).
    trace
        A path: record every update and swap there as a trace (SPEC §5) while the
        program runs. Default: ``BUFFERSCOPE_TRACE`` when set (see ``app.capture``).
    executor
        Applies the updates (see ``app.scheduler.Executor``); it must not hold a
        reference to this manager.
    """

    def __init__(self, shape: Shape, fill: float, max_pending: int,
                 event_capacity: int = DEFAULT_EVENT_CAPACITY, trace: str | None = None, *,
                 executor: Executor, thread_name: str) -> None:
        super().__init__(shape, fill, max_pending)
        event_capacity = check_event_capacity(event_capacity)
        # Python ints first: a shape beyond int64 is refused by the executor, not here.
        strides = [math.prod(self.shape[d + 1:]) for d in range(self.ndim)]
        self._strides = np.array(strides if math.prod(self.shape) < 1 << 62 else [0] * self.ndim,
                                 dtype=np.int64)
        self._executor = executor
        self._flat_of = _flat_offset_fn(self.shape)
        self._sched = Scheduler(executor, self.shape, self.fill, self.max_pending,
                                event_capacity, thread_name)
        self._sched.producers = self._producers
        self._push_set = self._sched.push_set
        self._finalizer = weakref.finalize(self, self._sched.close)
        from_env = trace is None
        if from_env:
            trace = capture.path_from_environment()
        if trace is not None:
            try:
                self._sched.capture = capture.Capture(trace, self.shape, self.fill, self._producers)
            except OSError as exc:
                if not from_env:
                    self.close()
                    raise
                capture.env_trace_failed(trace, exc)
            except BaseException:
                self.close()
                raise

    # -- the per-call fast path -----------------------------------------------------------
    def enqueue(self, update: Update, block: bool = True) -> int:
        """A Set of a tuple of in-bounds plain ints and a float joins its producer's
        open run of Sets (``Scheduler.push_set``): no Entry, no event and no
        encoding per call. Anything else, and any Set the fast path cannot take
        (no room, closed, a watch set, recording), takes the general path, with
        its errors and messages. Each line here costs every per-call producer:
        measure (``bufferscope bench``) before adding one."""
        if type(update) is Set and type(update.value) is float:
            off = self._flat_of(update.index)
            if off >= 0:
                try:
                    pid = self._producer_tls.pid
                except AttributeError:
                    pid = self._producer_id()
                seq = self._push_set(off, update.value, pid)
                if seq:
                    return seq
        return super().enqueue(update, block)

    # -- building entries ---------------------------------------------------------------
    def _entry(self, u: Update, producer: int) -> Entry:
        e = Entry(UPDATE, u.op, 1, write_units(u), producer)
        e.update = u
        self._executor.encode(e)
        return e

    def _enqueue(self, update: Update, block: bool) -> int:
        seq = self._sched.push(self._entry(update, self._producer_id()), block)
        if self._sched.capture is not None:
            self._sched.capture.throttle()
        return seq

    def _enqueue_many(self, valid: list[Update], block: bool) -> list[int]:
        pid = self._producer_id()
        seqs = self._sched.push_many([self._entry(u, pid) for u in valid], block)
        if self._sched.capture is not None:
            self._sched.capture.throttle()
        return seqs

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
        if self._sched.capture is not None:
            self._sched.capture.throttle()
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
        out = []
        names = self._producers
        for (i, t, k, sq, c, ep, p, sl, op, entry, frm) in raw:
            who = names.get(p) or name(p)
            if entry is not None and entry.run is not None:
                self._run_events(out, (i, t, k, sq, c, ep, who, sl, op), entry, frm)
            elif entry is None:
                out.append(Event(i, t, k, sq, c, ep, who, sl, op))
            elif type(entry) is Entry and entry.kind == UPDATE and type(entry.update) is not Write:
                u = entry.update   # the common case, without building a dict
                region = tuple((x, x + 1) for x in u.index) if type(u) is Set else u.region
                out.append(Event(i, t, k, sq, c, ep, who, sl, op, region, u.value))
            else:
                out.append(Event(i, t, k, sq, c, ep, who, sl, op, **self._detail(entry, frm, c)))
        return out, nxt

    def _run_events(self, out: list, head: tuple, e, frm: int) -> None:
        """The events of a run of per-call Sets (one ring record, ``Scheduler.push_set``):
        one per Set, as each would have had alone (its time of enqueue, its index, the
        value written, as the C library reports it); an apply keeps its own time."""
        i, t, k, sq, c, ep, who, sl, op = head
        if isinstance(e, StrippedEntry):
            out.extend(Event(i, t, k, sq + j, 1, ep, who, sl, op, payload_dropped=True)
                       for j in range(c))
            return
        idx = np.stack(np.unravel_index(e.flat[frm: frm + c], self.shape), axis=1).tolist()
        vals = e.values[frm: frm + c].tolist()
        ts = e.run[frm: frm + c].tolist() if k == "enqueue" else [t] * c
        for j in range(c):
            out.append(Event(i, ts[j], k, sq + j, 1, ep, who, sl, op,
                             tuple((x, x + 1) for x in idx[j]), vals[j]))

    def _detail(self, e, frm: int, n: int) -> dict:
        """What elements ``frm..frm+n-1`` of queue entry ``e`` wrote (Event fields)."""
        if isinstance(e, StrippedEntry):
            return {"region": e.region, "payload_dropped": True}
        if e.kind == SETS:
            flat = e.flat[frm: frm + n]
            return {"indices": np.stack(np.unravel_index(flat, self.shape), axis=1),
                    "values": readonly(e.values[frm: frm + n])}
        u = e.update
        if type(u) is Set:
            return {"region": tuple((i, i + 1) for i in u.index), "value": u.value}
        if type(u) is Write:
            return {"region": u.region, "values": readonly(u.data)}
        return {"region": u.region, "value": u.value}

    def _set_paused(self, paused: bool) -> None:
        self._sched.set_paused(paused)

    def _step(self, n: int) -> None:
        self._sched.step(n)

    def _back(self) -> np.ndarray:
        return self._sched.back()

    def _set_watch(self, elements: tuple, ops: frozenset, producers: frozenset) -> None:
        if not elements and not ops and not producers:
            self._sched.set_watch(None)
            return
        flat = {int(np.ravel_multi_index(i, self.shape)) for i in elements}
        self._sched.set_watch(Watch(flat, self.shape, ops, producers))

    def _inject_worker_fault(self, after: int) -> None:
        self._sched.inject_fault(after)

    def close(self) -> None:
        self._closed = True
        self._finalizer()     # the first call closes the scheduler; later ones do nothing
        self._sched.close()   # returns once it is closed, whoever closed it


def _flat_offset_fn(shape: Shape):
    """``flat(index)``: the flat offset of a tuple of in-bounds plain ints, else -1."""
    if len(shape) == 1:
        (n0,) = shape

        def flat(index) -> int:
            if type(index) is tuple and len(index) == 1:
                i = index[0]
                if type(i) is int and 0 <= i < n0:
                    return i
            return -1
    elif len(shape) == 2:
        n0, n1 = shape

        def flat(index) -> int:
            if type(index) is tuple and len(index) == 2:
                i, j = index
                if type(i) is int and type(j) is int and 0 <= i < n0 and 0 <= j < n1:
                    return i * n1 + j
            return -1
    else:
        n0, n1, n2 = shape

        def flat(index) -> int:
            if type(index) is tuple and len(index) == 3:
                i, j, k = index
                if (type(i) is int and type(j) is int and type(k) is int
                        and 0 <= i < n0 and 0 <= j < n1 and 0 <= k < n2):
                    return (i * n1 + j) * n2 + k
            return -1
    return flat
