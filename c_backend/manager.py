"""``CBufferManager``: the Python face of the C library (``src/bufferscope.h``).

A thin wrapper: every return code is checked and mapped to the exceptions of
SPEC §3.7, using the message the library left for the calling thread. cffi
releases the GIL during each call, so producers, the worker and synchronizers run
in parallel; the GIL protects nothing in the C state, the library's own mutex does.

No C call blocks for long: a blocking enqueue tries without blocking and then
waits for room in slices of at most ``_SLICE_S``, and ``synchronize`` begins a
sync, waits for its ticket in slices and cancels it on a timeout or an
exception, so Ctrl+C raises KeyboardInterrupt within a slice (SPEC §3.10) and a
cancelled sync never swaps later.

Debugging (SPEC §4, §7): events carry what each update wrote (read with
``bs_events_read_detail``; payloads, which the library keeps within a budget,
with ``bs_event_payload``); ``back()`` copies the back buffer while paused;
watchpoints go to ``bs_set_watch`` as flat offsets, an op mask and producer ids
(names are kept here: a thread that starts later with a watched name has its id
sent before its first update).

The front buffer is exposed without a copy: ``front()`` is a read-only numpy view
of the C memory. The view keeps this wrapper (and so the C buffers) alive, so a
view outliving ``close()`` still reads valid memory.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time

import numpy as np

from app import capture
from app.errors import BackendError, ManagerClosedError
from app.manager import (
    DEFAULT_EVENT_CAPACITY,
    EVENT_KINDS,
    OP_NAMES,
    BufferManager,
    Capabilities,
    Event,
    ManagerStats,
    check_event_capacity,
)
from app.scheduler import readonly
from app.sysmem import check_buffers_fit
from app.updates import Set, Shape, Update, Write

from ._bufferscope_c import ffi, lib

_ERRORS = {
    lib.BS_EINVAL: ValueError,
    lib.BS_ENOMEM: MemoryError,
    lib.BS_ETIMEDOUT: TimeoutError,
    lib.BS_EFULL: queue.Full,
    lib.BS_ECLOSED: ManagerClosedError,
    lib.BS_EWORKER: BackendError,
    lib.BS_ETHREAD: RuntimeError,
}
_OPS = {"set": lib.BS_OP_SET, "fill": lib.BS_OP_FILL, "add": lib.BS_OP_ADD,
        "scale": lib.BS_OP_SCALE, "write": lib.BS_OP_WRITE}


_enqueue_set = lib.bs_enqueue_set
# BUFFERSCOPE_TRACE is numbered by app.capture for every manager of this process
# (C and GL alike), so the library leaves it alone here.
lib.bs_trace_env_enable(0)
lib.bs_listen_env_enable(0)   # app.live publishes the managers this package opens (one publisher each)
_SLICE_S = 0.05   # the longest one C call waits: the interpreter handles Ctrl+C between calls
_EFULL = lib.BS_EFULL
_ETIMEDOUT = lib.BS_ETIMEDOUT
_EVENTS_AT_ONCE = 4096
_DETAIL_REGION = lib.BS_DETAIL_REGION
_DETAIL_WRITE = lib.BS_DETAIL_WRITE
_DETAIL_SETS = lib.BS_DETAIL_SETS


def _struct_dtype(ctype: str, fields: dict[str, object]) -> np.dtype:
    """A numpy dtype laid out exactly as the C struct (offsets from cffi, not by hand)."""
    return np.dtype({"names": list(fields), "formats": list(fields.values()),
                     "offsets": [ffi.offsetof(ctype, f) for f in fields],
                     "itemsize": ffi.sizeof(ctype)})


_EVENT_DTYPE = _struct_dtype("bs_event", {
    "index": np.uint64, "t_ns": np.int64, "seq": np.uint64, "count": np.uint64,
    "epoch": np.uint64, "producer": np.uint64, "kind": np.int32, "slot": np.int32, "op": np.int32})
_DETAIL_DTYPE = _struct_dtype("bs_event_detail", {
    "index": np.uint64, "what": np.int32, "payload_dropped": np.int32,
    "start": (np.int64, (lib.BS_MAX_NDIM,)), "stop": (np.int64, (lib.BS_MAX_NDIM,)),
    "value": np.float64, "payload_count": np.uint64})
_EVENT_SIZE, _DETAIL_SIZE = ffi.sizeof("bs_event"), ffi.sizeof("bs_event_detail")


def _cost(u: Update) -> int:
    """What an update counts against the queue bound (the library's rule)."""
    if type(u) is Write:
        return max(1, math.prod(b - a for a, b in u.region))
    return 1


def _raise(rc: int) -> None:
    msg = ffi.string(lib.bs_last_error()).decode("utf-8", "replace")
    raise _ERRORS.get(rc, RuntimeError)(msg or ffi.string(lib.bs_strerror(rc)).decode())


class _FrontView:
    """Keeps the C buffers alive for as long as a numpy view of the front exists.

    It holds the library handle (whose destructor is ``bs_destroy``), not the
    manager: a manager that caches its front view would otherwise form a cycle
    through the ndarray, which the garbage collector does not track, and never
    be freed."""

    def __init__(self, handle, ptr: int, shape: Shape) -> None:
        self.handle = handle
        self.__array_interface__ = {
            "shape": shape,
            "typestr": "<f4",
            "data": (ptr, True),  # read-only
            "version": 3,
        }


class CBufferManager(BufferManager):
    backend = "c"
    capabilities = Capabilities(back=True, watch=True)
    _copies_payload = True      # bs_enqueue copies Write data before it returns
    _checks_set_bounds = True   # bs_set_many checks bounds with the same message

    def __init__(
        self,
        shape: Shape,
        fill: float = 0.0,
        max_pending: int = 1 << 18,
        event_capacity: int = DEFAULT_EVENT_CAPACITY,
        trace: str | os.PathLike | None = None,
    ) -> None:
        super().__init__(shape, fill, max_pending)
        event_capacity = check_event_capacity(event_capacity)
        from_env = trace is None
        if from_env:   # numbered together with the process's other managers (app.capture)
            trace = capture.path_from_environment()
        trace_path = None if trace is None else os.fsencode(trace)
        check_buffers_fit(self.shape)
        cfg = ffi.new("bs_config *")
        cfg.ndim = self.ndim
        for d, n in enumerate(self.shape):
            cfg.shape[d] = n
        cfg.fill = self.fill
        cfg.max_pending = self.max_pending
        cfg.event_capacity = event_capacity
        out = ffi.new("bs_manager **")
        rc = lib.bs_create(cfg, out)
        if rc:
            _raise(rc)
        # bs_destroy frees the buffers when the last reference (views included) is gone.
        self._h = ffi.gc(out[0], lib.bs_destroy)
        if trace_path is not None:
            try:
                self._start_trace(trace_path, fatal=not from_env)
            except (OSError, ValueError) as exc:
                if not from_env:
                    raise
                capture.env_trace_failed(trace, exc)
        self._close_lock = threading.Lock()
        self._watch_lock = threading.Lock()   # orders sends of the watch to the library
        # (flat offsets, op mask, producer names) of the watch set, or None
        self._watch: tuple[np.ndarray, int, frozenset] | None = None
        self._tls = threading.local()
        self._front_cache: tuple[int, int, np.ndarray] | None = None

    # -- helpers -------------------------------------------------------------------
    def _start_trace(self, path: bytes, fatal: bool = True) -> None:
        """Capture (SPEC §5) into ``path``; on failure the manager is closed (its
        worker joined) before the error is raised: never left half-open — unless
        not ``fatal`` (a trace from the environment), when it runs on untraced."""
        if rc := lib.bs_trace_start(self._h, path):
            msg = ffi.string(lib.bs_last_error()).decode("utf-8", "replace")
            if fatal:
                self._closed = True
                lib.bs_close(self._h)
            raise (OSError if rc == lib.BS_EIO else _ERRORS.get(rc, RuntimeError))(msg)

    def _thread_state(self):
        """Per-thread (seq out-pointer, producer id), made once per thread. A new
        thread whose name a watch names has its id sent to the library before
        its first update (the id is registered before the watch is looked at, and
        set_watch looks the ids up after it stores the watch: one of the two sees
        the other)."""
        try:
            return self._tls.state
        except AttributeError:
            pid = self._producer_id()
            self._tls.state = (ffi.new("uint64_t *"), pid)
            watch = self._watch
            if watch is not None and self._producers.get(pid) in watch[2]:
                with self._watch_lock:
                    self._send_watch()
            return self._tls.state

    def _fill_update(self, cu, u: Update, keep: list) -> None:
        cu.op = _OPS[u.op]
        if type(u) is Set:
            for d, i in enumerate(u.index):
                cu.start[d] = i
            cu.value = u.value
            return
        for d, (a, b) in enumerate(u.region):
            cu.start[d] = a
            cu.stop[d] = b
        if type(u) is Write:
            buf = ffi.from_buffer("float[]", u.data)
            keep.append(buf)
            cu.data = buf
        else:
            cu.value = u.value

    # -- the contract ---------------------------------------------------------------
    def enqueue(self, update: Update, block: bool = True) -> int:
        """The per-call fast path: a Set of plain ints and a plain number goes
        straight to C, which checks its bounds with the same message as
        ``validate``; anything else takes the validated path of the base."""
        try:
            seqp, pid = self._tls.state
        except AttributeError:
            seqp, pid = self._thread_state()
        self._check_open()
        # Fast path: a Set of plain ints and a plain number goes straight to C,
        # which checks the bounds itself; anything else is validated here.
        if type(update) is Set:
            idx, v = update.index, update.value
            if type(idx) is tuple and len(idx) == self.ndim and (type(v) is float or type(v) is int):
                i = idx + (0, 0)
                if type(i[0]) is int and type(i[1]) is int and type(i[2]) is int:
                    try:
                        rc = _enqueue_set(self._h, i[0], i[1], i[2], v, pid, 0, seqp)
                    except OverflowError:
                        rc = None  # beyond int64 or float: the general path names it
                    if rc == 0:
                        return seqp[0]
                    if rc is not None and not (rc == _EFULL and block):
                        _raise(rc)
                    # a full queue and block: the general path waits in slices
        return super().enqueue(update, block)

    def _wait_room(self, units: int) -> None:
        """Wait until ``units`` elements fit, in slices (interruptible)."""
        while (rc := lib.bs_wait_room(self._h, units, _SLICE_S)) == _ETIMEDOUT:
            pass
        if rc:
            _raise(rc)

    def _retry_when_full(self, call, units: int, block: bool) -> None:
        """Run ``call()`` (a non-blocking library call); while the queue is full
        and ``block``, wait for ``units`` of room in slices and try again."""
        while (rc := call()) == _EFULL and block:
            self._wait_room(units)
        if rc:
            _raise(rc)

    def _enqueue(self, u: Update, block: bool) -> int:
        seqp, pid = self._thread_state()
        cu = ffi.new("bs_update *")
        keep: list = []
        self._fill_update(cu, u, keep)
        self._retry_when_full(lambda: lib.bs_enqueue(self._h, cu, pid, 0, seqp), _cost(u), block)
        return seqp[0]

    def _enqueue_many(self, valid: list[Update], block: bool) -> list[int]:
        n = len(valid)
        cus = ffi.new("bs_update[]", n)
        keep: list = []
        for k, u in enumerate(valid):
            self._fill_update(cus[k], u, keep)
        seqs = ffi.new("uint64_t[]", n)
        bad = ffi.new("size_t *")
        pid = self._thread_state()[1]
        costs = [_cost(u) for u in valid]
        # Runs of updates that fit the bound (one larger update alone) go in whole;
        # a batch larger than the bound goes in as room appears, in order.
        start = 0
        while start < n:
            stop, units = start + 1, costs[start]
            while stop < n and units + costs[stop] <= self.max_pending:
                units += costs[stop]
                stop += 1
            if start == 0 and stop < n and not block:
                stop, units = n, sum(costs)   # the library refuses it with its message

            def call(a=start, b=stop):
                return lib.bs_enqueue_batch(self._h, cus + a, b - a, pid, 0, seqs + a, bad)

            self._retry_when_full(call, units, block)
            start = stop
        return list(seqs)

    def _set_many(self, idx: np.ndarray, vals: np.ndarray, block: bool) -> np.ndarray:
        n = len(vals)
        seqs = np.empty(n, dtype=np.uint64)
        bad = ffi.new("size_t *")
        pid = self._thread_state()[1]
        c_idx = ffi.from_buffer("int64_t[]", idx)
        c_vals = ffi.from_buffer("float[]", vals)
        c_seqs = ffi.from_buffer("uint64_t[]", seqs)
        nd = self.ndim

        def call(a: int, b: int) -> int:
            return lib.bs_set_many(self._h, c_idx + a * nd, c_vals + a, b - a, pid, 0,
                                   c_seqs + a, bad)

        step = self.max_pending
        if n > step:
            # Larger than the bound: the library checks every index first (and
            # refuses the whole call when it may not block); then chunks of the
            # bound go in as room appears, in order.
            rc = call(0, n)
            if rc == 0:
                return seqs
            if rc != _EFULL or not block:
                _raise(rc)
        for a in range(0, n, step):
            b = min(n, a + step)
            self._retry_when_full(lambda a=a, b=b: call(a, b), b - a, block)
        return seqs

    def _synchronize(self, t: float | None) -> int:
        """Begin a sync, wait for its ticket in slices, cancel it on a timeout or
        an exception (KeyboardInterrupt): a cancelled sync never swaps later."""
        h = self._h
        if t == 0:
            # SPEC §3.11: a paused worker refuses a zero timeout at once, even with
            # nothing queued (the library itself would swap the applied work).
            s = self._stats()
            if s.paused:
                raise TimeoutError(f"synchronize(timeout=0): {s.pending} element units still "
                                   "pending, worker paused; nothing was swapped")
        ticket = ffi.new("uint64_t *")   # per call: a signal handler may synchronize too
        epoch = ffi.new("uint64_t *")
        deadline = None if t is None else time.monotonic() + t
        finished = False
        try:
            if rc := lib.bs_sync_begin(h, ticket):
                finished = True
                _raise(rc)
            while True:
                left = _SLICE_S if deadline is None else max(0.0, min(_SLICE_S, deadline - time.monotonic()))
                rc = lib.bs_sync_wait(h, ticket[0], left, epoch)
                if rc == _ETIMEDOUT and deadline is not None and time.monotonic() >= deadline:
                    finished = True
                    rc = lib.bs_sync_cancel(h, ticket[0], epoch)
                    if rc == 0:   # it swapped after all: complete it (a worker failure too)
                        rc = lib.bs_sync_wait(h, ticket[0], 0.0, epoch)
                    elif rc == _ETIMEDOUT:
                        msg = ffi.string(lib.bs_last_error()).decode("utf-8", "replace")
                        raise TimeoutError(f"synchronize timed out after {t:.3f} s ({msg})")
                if rc != _ETIMEDOUT:
                    finished = True
                    if rc:
                        _raise(rc)
                    return int(epoch[0])
        finally:
            if not finished and ticket[0]:
                lib.bs_sync_cancel(h, ticket[0], epoch)

    def _front(self) -> np.ndarray:
        data = ffi.new("const float **")
        epoch = ffi.new("uint64_t *")
        if rc := lib.bs_front(self._h, data, epoch):
            _raise(rc)
        ptr = int(ffi.cast("uintptr_t", data[0]))
        cached = self._front_cache
        if cached is not None and cached[0] == ptr and cached[1] == epoch[0]:
            return cached[2]
        arr = np.asarray(_FrontView(self._h, ptr, self.shape))
        self._front_cache = (ptr, int(epoch[0]), arr)
        return arr

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._front_cache = None
            if rc := lib.bs_close(self._h):
                _raise(rc)

    def _stats(self) -> ManagerStats:
        s = ffi.new("bs_stats *")
        if rc := lib.bs_stats_get(self._h, s):
            _raise(rc)
        return ManagerStats.read(s, s.events_recorded)

    def _events(self, since: int) -> tuple[list[Event], int]:
        """The library's events as ``Event``s: each batch is read as numpy columns
        (one pass per field, not one cffi access per field and event)."""
        out: list[Event] = []
        buf = ffi.new("bs_event[]", _EVENTS_AT_ONCE)
        det = ffi.new("bs_event_detail[]", _EVENTS_AT_ONCE)
        n = ffi.new("size_t *")
        nxt = ffi.new("uint64_t *")
        cursor = since
        kinds, ops, nd = EVENT_KINDS, OP_NAMES, self.ndim
        names = self._producers
        while True:
            if rc := lib.bs_events_read_detail(self._h, cursor, buf, det, _EVENTS_AT_ONCE, n, nxt):
                _raise(rc)
            count = n[0]
            if count:
                ev = np.frombuffer(ffi.buffer(buf, count * _EVENT_SIZE), _EVENT_DTYPE)
                dt = np.frombuffer(ffi.buffer(det, count * _DETAIL_SIZE), _DETAIL_DTYPE)
                what = dt["what"].tolist()
                starts = dt["start"][:, :nd].tolist()
                stops = dt["stop"][:, :nd].tolist()
                values = dt["value"].tolist()
                rows = zip(ev["index"].tolist(), ev["t_ns"].tolist(), ev["kind"].tolist(),
                           ev["seq"].tolist(), ev["count"].tolist(), ev["epoch"].tolist(),
                           ev["producer"].tolist(), ev["slot"].tolist(), ev["op"].tolist())
                for k, (i, t, kind, seq, c, epoch, prod, slot, op) in enumerate(rows):
                    name = names.get(prod) or self.producer_name(prod)
                    opname = ops[op] if op >= 0 else ""
                    w = what[k]
                    if w == _DETAIL_REGION:
                        out.append(Event(i, t, kinds[kind], seq, c, epoch, name, slot, opname,
                                         tuple(zip(starts[k], stops[k])), values[k]))
                    elif w:
                        out.append(Event(i, t, kinds[kind], seq, c, epoch, name, slot, opname)
                                   ._replace(**self._detail(det[k])))
                    else:
                        out.append(Event(i, t, kinds[kind], seq, c, epoch, name, slot, opname))
            cursor = nxt[0]
            if count < _EVENTS_AT_ONCE:
                return out, cursor

    def _detail(self, d) -> dict:
        """The Event fields saying what an event's updates wrote (as
        ``app.scheduled.ScheduledManager._detail``): region and value, a Write's
        region and data (in the region's shape), a set_many run's indices and
        values; arrays are read-only copies of the library's record."""
        if d.what == _DETAIL_REGION:
            return {"region": tuple((d.start[k], d.stop[k]) for k in range(self.ndim)),
                    "value": d.value}
        region = (tuple((d.start[k], d.stop[k]) for k in range(self.ndim))
                  if d.what == _DETAIL_WRITE else None)
        count = d.payload_count
        if d.payload_dropped:
            return {"region": region, "payload_dropped": True}
        values = np.empty(count, dtype=np.float32)
        indices = np.empty((count, self.ndim), dtype=np.int64) if d.what == _DETAIL_SETS else None
        if count:
            got = ffi.new("size_t *")
            rc = lib.bs_event_payload(self._h, d.index,
                                      ffi.NULL if indices is None else ffi.from_buffer("int64_t[]", indices),
                                      ffi.from_buffer("float[]", values), count, got)
            if rc:
                _raise(rc)
            if got[0] != count:   # let go since the event was read (budget, or the ring wrapped)
                return {"region": region, "payload_dropped": True}
        if d.what == _DETAIL_WRITE:
            return {"region": region,
                    "values": readonly(values.reshape(tuple(b - a for a, b in region)))}
        return {"indices": readonly(indices), "values": readonly(values)}

    def _back(self) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.float32)
        if rc := lib.bs_back(self._h, ffi.from_buffer("float[]", out), out.size):
            _raise(rc)
        return readonly(out)

    def _set_watch(self, elements: tuple, ops: frozenset, producers: frozenset) -> None:
        flat = np.array([np.ravel_multi_index(i, self.shape) for i in elements], dtype=np.int64)
        mask = 0
        for op in ops:
            mask |= 1 << _OPS[op]
        with self._watch_lock:
            self._watch = (flat, mask, producers) if (len(flat) or mask or producers) else None
            self._send_watch()

    def _send_watch(self) -> None:
        """Caller holds ``_watch_lock``: the watch, with the ids of the producers
        seen so far under its names, to the library (replacing the one there)."""
        flat, mask, names = self._watch if self._watch is not None else (np.empty(0, np.int64), 0, ())
        ids = [p for p, name in list(self._producers.items()) if name in names]
        rc = lib.bs_set_watch(self._h, ffi.from_buffer("int64_t[]", flat) if len(flat) else ffi.NULL,
                              len(flat), mask, ffi.new("uint64_t[]", ids) if ids else ffi.NULL, len(ids))
        if rc:
            _raise(rc)

    def _set_payload_budget(self, elements: int) -> None:
        """Testing aid: the payload elements the event ring may keep alive."""
        if rc := lib.bs_set_payload_budget(self._h, elements):
            _raise(rc)

    def _payload_in_use(self) -> int:
        """Testing aid: the payload elements the events hold now."""
        n = ffi.new("uint64_t *")
        if rc := lib.bs_payload_in_use(self._h, n):
            _raise(rc)
        return int(n[0])

    def _set_paused(self, paused: bool) -> None:
        if rc := lib.bs_set_paused(self._h, int(paused)):
            _raise(rc)

    def _step(self, n: int) -> None:
        if rc := lib.bs_step(self._h, n):
            _raise(rc)

    def _inject_worker_fault(self, after: int) -> None:
        if rc := lib.bs_inject_worker_fault(self._h, after):
            _raise(rc)

    def _queue_counts(self) -> tuple[int, int]:
        """Testing aid: (entries in the queue, sync markers among them)."""
        entries = ffi.new("uint64_t *")
        markers = ffi.new("uint64_t *")
        if rc := lib.bs_queue_counts(self._h, entries, markers):
            _raise(rc)
        return int(entries[0]), int(markers[0])
