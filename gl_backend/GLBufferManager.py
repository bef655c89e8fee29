"""``GLBufferManager``: the buffer-manager contract (SPEC §3) on the GPU through OpenGL.

DESIGN
A persistent Python worker thread owns an OpenGL 4.3 core context of its own
(Qt's ``QOpenGLContext`` on a ``QOffscreenSurface``, both created on the GUI
thread; the context is moved to the worker, which alone makes it current, and
moved back when the worker ends). Front and back are two ``R32UI`` textures
holding float32 bit patterns, with ``R32F`` views for viewers (see ``_gpu``).

One lock guards all shared state: the FIFO queue, the counters, the event ring,
pause/step credits and the front read-back cache. Three conditions hang off it
and every wait re-checks a predicate in a loop (no bare signals):
  work_cv   the worker waits for "something to apply, a sync or a read-back";
  space_cv  producers wait for "room in the bounded queue";
  sync_cv   synchronizers wait for "tickets_done >= my ticket", ``front()`` for
            "reads.done >= my request", ``front_range()`` for "ranges.done >=
            my request", ``__init__`` for the worker's start.

Queue entries are one update, a chunk of element sets (``set_many``) or a sync
marker with a ticket; the bound counts element updates, markers are free. Every
element update has its own sequence number, starting at 1.

The worker takes a chunk of entries under the lock, drops it and applies them
on the GPU, merging neighbours into few GL calls: a run of sets (``Set`` and
``set_many`` alike) becomes one upload of (offset, bits) pairs and one compute
scatter — repeated offsets are resolved on the CPU first, keeping the last
one, so no two invocations write the same texel; a run of Fill/Add/Scale (and Writes that are not plain
rectangles of the texture) becomes one compute dispatch per group of pairwise
disjoint boxes (a box overlapping an earlier one of the group starts a new
group, so read-modify-write never races); a Write that is a rectangle of the
texture is uploaded with ``glTexSubImage2D``. Then it records the ``apply``
events under the lock.

At a sync marker the worker waits for the GPU (a fence), swaps the two slots
(O(1)), bumps the epoch, wakes the synchronizers, and only then brings the new
back up to date: it replays the GL operations it applied since the previous
swap (their set and box buffers are kept for this, left-right style), or,
when those touched more elements than the buffer holds, copies the whole front
with ``glCopyImageSubData`` (the kept operations are dropped as soon as that
happens, so memory stays bounded). The catch-up completes before any later
update is applied, so the back is never stale.

``front()`` asks the worker to read the front texture back (``glGetTexImage``)
once per epoch and caches the read-only copy. ``front_texture()`` gives a viewer
in a context that shares objects with ours the front's ``R32F`` view, without
any read-back. ``front_range()`` asks the worker for the exact min and max of
the front's finite values, reduced on the GPU (``gl_range.comp.glsl``: each
float's bits mapped to an order-preserving uint, a work-group reduction in
shared memory, then ``atomicMin``/``atomicMax`` into a two-uint buffer; 8 bytes
come back), also once per epoch, so a viewer sampling the texture gets levels
of exactly the epoch it draws without reading the buffer back.

Ordering guarantee: updates are applied in the order they entered the queue,
whichever thread enqueued them; a swap happens exactly at each sync marker.
Not promised: fairness between blocked producers, or which of several
concurrent synchronize() callers sees a worker failure (exactly one does).
The semantics mirror the C backend (``c_backend/src/bufferscope.c``) line for line.
"""

from __future__ import annotations

import collections
import itertools
import queue
import struct
import threading
import time
import weakref

import numpy as np

from app.errors import BackendError, BackendUnavailableError, ManagerClosedError
from app.manager import (
    DEFAULT_EVENT_CAPACITY,
    DEFAULT_MAX_PENDING,
    BufferManager,
    Capabilities,
    Event,
    ManagerStats,
    check_event_capacity,
)
from app.updates import Set, Shape, Update, Write

from . import _context

_UPDATE, _SETS, _SYNC = 0, 1, 2


class _Requests:
    """Counters of requests to the worker (read-backs, reductions): it serves
    them while ``requested > done``; waiters wait for ``done >= their number``."""

    __slots__ = ("requested", "done")

    def __init__(self) -> None:
        self.requested = self.done = 0

    @property
    def waiting(self) -> bool:
        return self.requested > self.done
_F32, _U32 = struct.Struct("<f"), struct.Struct("<I")
_OP_CODES = {"fill": 1, "add": 2, "scale": 3, "write": 4}

WORK_CHUNK = 1024            # entries taken by the worker at a time
WORK_ELEMENTS = 1 << 21      # element updates taken at a time (whole entries beyond the first)
SETS_CHUNK = 65536           # element sets per queue entry
GROUP_BOXES = 4096           # boxes per compute dispatch
GROUP_TOTAL = (1 << 31) - 1  # elements per compute dispatch (uint arithmetic in the shader)
RECT_SLICES = 16             # a Write of more slices than this goes through the compute path
GATHER_ELEMENTS = 4096      # fewer queued than this and no sync waiting: gather a moment
GATHER_S = 0.0005           # ... this long, so trickling updates share GL calls
START_TIMEOUT_S = 60.0


class _Entry:
    """One queue entry. ``pairs`` (n, 2) uint32 (flat offset, value bits) for set_many,
    an ``(offset, bits)`` tuple for one Set;
    ``start``/``stop`` (padded to 3-d), ``bits`` (value bits) and ``data`` (a Write's
    uint32 block) for region updates; ``ticket`` for a sync marker."""

    __slots__ = ("kind", "op", "seq", "count", "producer", "ticket", "cancelled", "touched",
                 "pairs", "start", "stop", "bits", "data")

    def __init__(self, kind: int, op: str, count: int, producer: int) -> None:
        self.kind = kind
        self.op = op
        self.seq = 0
        self.count = count
        self.producer = producer
        self.ticket = 0
        self.cancelled = False  # a sync marker whose synchronize() timed out: no swap for it
        self.touched = 0
        self.pairs = None
        self.start = self.stop = None
        self.bits = 0
        self.data = None


def _float_bits(value: float) -> int:
    """The float32 bit pattern of ``value`` (rounded as numpy rounds; overflow gives ±inf)."""
    try:
        return _U32.unpack(_F32.pack(value))[0]
    except OverflowError:
        pass
    with np.errstate(over="ignore", invalid="ignore"):
        return int(np.array([value], dtype=np.float64).astype(np.float32).view(np.uint32)[0])


class _BoxGroup:
    """Disjoint boxes collected for one compute dispatch."""

    def __init__(self) -> None:
        self.starts = np.empty((GROUP_BOXES, 3), dtype=np.int64)
        self.stops = np.empty((GROUP_BOXES, 3), dtype=np.int64)
        self.records = np.empty((GROUP_BOXES, 8), dtype=np.uint32)
        self.clear()

    def clear(self) -> None:
        self.k = 0
        self.total = 0
        self.payload: list[np.ndarray] = []
        self.payload_len = 0

    def fits(self, start: tuple, stop: tuple, volume: int) -> bool:
        k = self.k
        if k == 0:
            return True
        if k == GROUP_BOXES or self.total + volume > GROUP_TOTAL:
            return False
        if k <= 8:  # a few boxes: plain Python is quicker than numpy
            for j in range(k):
                s, t = self.starts[j], self.stops[j]
                if (s[0] < stop[0] and start[0] < t[0] and s[1] < stop[1] and start[1] < t[1]
                        and s[2] < stop[2] and start[2] < t[2]):
                    return False
            return True
        hit = (self.starts[:k] < stop) & (self.stops[:k] > start)
        return not bool(np.any(np.all(hit, axis=1)))

    def add(self, e: _Entry, volume: int) -> None:
        k = self.k
        self.starts[k] = e.start
        self.stops[k] = e.stop
        if e.op == "write":
            arg = self.payload_len
            block = e.data.reshape(-1)
            self.payload.append(block)
            self.payload_len += block.size
        else:
            arg = e.bits
        self.records[k] = (self.total, e.start[0], e.start[1], e.start[2],
                           e.stop[1] - e.start[1], e.stop[2] - e.start[2], _OP_CODES[e.op], arg)
        self.total += volume
        self.k = k + 1


class _Core:
    """The shared state and the worker of one GL manager (no reference to the manager,
    so that a forgotten manager is collected and its finalizer closes this)."""

    def __init__(self, shape: Shape, fill: float, max_pending: int, event_capacity: int,
                 share_context) -> None:
        from PyQt6.QtCore import QThread

        self.shape = shape
        self.shape3 = (1,) * (3 - len(shape)) + tuple(shape)
        self.nelem = int(np.prod(shape, dtype=np.int64))
        self.fill = fill
        self.max_pending = max_pending

        self.lock = threading.Lock()
        self.work_cv = threading.Condition(self.lock)
        self.space_cv = threading.Condition(self.lock)
        self.sync_cv = threading.Condition(self.lock)

        self.queue: collections.deque[_Entry] = collections.deque()
        self.pending = 0
        self.markers_queued = 0
        self.closed = False
        self.close_done = False
        self.front_slot = 0
        self.last_seq = self.applied_seq = self.visible_seq = self.epoch = 0
        self.tickets_issued = self.tickets_done = 0
        self.paused = False
        self.worker_idle = False   # waiting on work_cv: only then is a notify needed
        self.step_credits = 0
        self.fault_countdown = 0
        self.worker_err = False
        self.worker_err_seq = 0
        self.worker_msg = ""
        self.dead: str | None = None
        self.reads = _Requests()      # front() read-backs
        self.front_cache: tuple[int, np.ndarray] | None = None
        self.ranges = _Requests()     # front_range() reductions
        self.range_cache: tuple[int, tuple[float, float] | None] | None = None

        self.ev_cap = event_capacity
        self.ev: collections.deque = collections.deque(maxlen=max(1, event_capacity))
        self.ev_count = 0

        # worker-private
        self.cur: _Entry | None = None
        self.cur_done = 0
        self.batch_ops: list = []
        self.batch_entries = 0
        self.batch_touched = 0
        self.batch_overflow = False
        self.gpu = None
        self.group = _BoxGroup()

        # start-up hand-shake (guarded by lock, waited on with sync_cv)
        self.worker_qthread = None
        self.moved = False
        self.ready = False
        self.init_error: BaseException | None = None
        self.gl_info: dict[str, object] = {}
        self.object_names: dict[str, list[int]] = {}

        self.home_thread = QThread.currentThread()
        self.surface, self.ctx = _context.create_offscreen(share_context)
        self.shared = self.ctx.shareContext() is not None
        self.thread = threading.Thread(target=self._run, name="bufferscope-gl-worker",
                                       daemon=True)
        try:
            self.thread.start()
            self._hand_over_context()
        except BaseException:
            self.close()
            raise

    # -- start-up --------------------------------------------------------------------
    def _hand_over_context(self) -> None:
        """On the creating thread: move the context to the worker, wait until it is ready."""
        deadline = time.monotonic() + START_TIMEOUT_S
        with self.lock:
            while self.worker_qthread is None and self.init_error is None:
                if not self.sync_cv.wait(max(0.0, deadline - time.monotonic())):
                    raise BackendUnavailableError("the GL worker thread did not start")
            if self.init_error is None:
                self.ctx.moveToThread(self.worker_qthread)
            self.moved = True
            self.sync_cv.notify_all()
            while not self.ready and self.init_error is None:
                if not self.sync_cv.wait(max(0.0, deadline - time.monotonic())):
                    raise BackendUnavailableError(
                        f"the GL worker did not set up its buffers within {START_TIMEOUT_S:.0f} s"
                    )
            err = self.init_error
        if err is not None:
            self.close()
            raise err

    def _run(self) -> None:
        from PyQt6.QtCore import QThread

        with self.lock:
            self.worker_qthread = QThread.currentThread()
            self.sync_cv.notify_all()
            while not self.moved and not self.closed:
                self.sync_cv.wait()
            if not self.moved:
                return  # closed before the context was handed over: it is not ours
        current = False
        try:
            if not self.ctx.makeCurrent(self.surface):
                raise BackendUnavailableError(
                    "cannot make the OpenGL context current on the GL worker thread"
                )
            current = True
            from OpenGL import GL

            from ._gpu import Gpu

            self.gpu = Gpu(self.shape3, self.fill)
            self.gl_info = {
                "vendor": GL.glGetString(GL.GL_VENDOR).decode(),
                "renderer": GL.glGetString(GL.GL_RENDERER).decode(),
                "version": GL.glGetString(GL.GL_VERSION).decode(),
                "max_texture_size": self.gpu.max_texture_size,
            }
        except BaseException as exc:
            self._finish(current)
            with self.lock:
                self.init_error = exc
                self.sync_cv.notify_all()
            return
        with self.lock:
            self.ready = True
            self.sync_cv.notify_all()
        try:
            self._loop()
        except BaseException as exc:  # a bug, not a GL error: no more work can be done
            with self.lock:
                self.dead = f"the GL worker stopped: {type(exc).__name__}: {exc}"
                self.sync_cv.notify_all()
                self.space_cv.notify_all()
        finally:
            self._finish(current)

    def _finish(self, current: bool) -> None:
        """On the worker: free every GL object, release the context, hand it back."""
        try:
            if current:
                if self.gpu is not None:
                    self._drop_batch()
                    if self.cur is not None:
                        self.cur = None
                    self.gpu.delete()
                    from OpenGL import GL

                    GL.glFinish()
                    self.object_names = {}
                self.ctx.doneCurrent()
        finally:
            self.gpu = None
            self.ctx.moveToThread(self.home_thread)

    # -- events ------------------------------------------------------------------------
    def ev_record(self, kind: str, seq: int, count: int, producer: int, slot: int, op: str) -> None:
        """Caller holds the lock."""
        if not self.ev_cap:
            return
        self.ev.append((self.ev_count, time.monotonic_ns(), kind, seq, count, self.epoch,
                        producer, slot, op))
        self.ev_count += 1

    # -- producers ----------------------------------------------------------------------
    def wait_for_room(self, units: int, block: bool) -> None:
        """Caller holds the lock."""
        while True:
            if self.closed:
                raise ManagerClosedError("manager is closed")
            if self.dead:
                raise BackendError(self.dead)
            if self.pending + units <= self.max_pending:
                return
            if not block:
                raise queue.Full(
                    f"queue full: {self.pending} of {self.max_pending} element updates pending"
                )
            self.space_cv.wait()

    def push(self, e: _Entry) -> int:
        """Caller holds the lock and has room."""
        e.seq = self.last_seq + 1
        self.queue.append(e)
        self.last_seq += e.count
        self.pending += e.count
        self.ev_record("enqueue", e.seq, e.count, e.producer, 1 - self.front_slot, e.op)
        if self.worker_idle:
            self.work_cv.notify()
        return e.seq

    # -- worker --------------------------------------------------------------------------
    def _has_work(self) -> bool:
        if self.reads.waiting or self.ranges.waiting:
            return True
        may_apply = not self.paused or self.step_credits > 0
        if self.cur is not None:
            return may_apply
        if not self.queue:
            return False
        if self.queue[0].kind == _SYNC:
            return True
        return may_apply

    def _loop(self) -> None:
        gathered = False
        self.lock.acquire()
        try:
            while True:
                while not self.closed and not self._has_work():
                    self.worker_idle = True
                    self.work_cv.wait()
                    self.worker_idle = False
                if self.closed:
                    return
                if self.reads.waiting:
                    self._serve_read()
                elif self.ranges.waiting:
                    self._serve_range()
                elif self.cur is None and self.queue[0].kind == _SYNC:
                    self._swap()
                elif (not gathered and not self.paused and not self.markers_queued
                      and self.pending < GATHER_ELEMENTS):
                    # Updates trickle in one by one: let a few more arrive so they
                    # share GL calls. A sync, read-back, pause or close cuts it short.
                    gathered = True
                    self.work_cv.wait(GATHER_S)
                else:
                    gathered = False
                    self._apply_chunk()
        finally:
            self.lock.release()

    def _unlocked(self, work):
        """Lock held on entry and exit: run ``work()`` with it dropped (GPU work
        must not block producers); returns ``(result, None)`` or ``(None, exc)``."""
        self.lock.release()
        try:
            return work(), None
        except Exception as exc:
            return None, exc
        finally:
            self.lock.acquire()

    def _serve_read(self) -> None:
        """Lock held on entry and exit; dropped while reading."""
        want, slot, epoch = self.reads.requested, self.front_slot, self.epoch
        arr, err = self._unlocked(lambda: self.gpu.read(slot, self.shape))
        if arr is not None:
            arr.flags.writeable = False
            self.front_cache = (epoch, arr)
        elif not self.worker_err:
            self._set_error(self.visible_seq, f"reading the front back failed: {err}")
        self.reads.done = want
        self.sync_cv.notify_all()

    def _serve_range(self) -> None:
        """Lock held on entry and exit; dropped while the GPU reduces the front."""
        want, slot, epoch = self.ranges.requested, self.front_slot, self.epoch
        cached = self.range_cache
        if cached is not None and cached[0] == epoch:
            self.ranges.done = want   # asked twice in one epoch: already known
            self.sync_cv.notify_all()
            return
        rng, err = self._unlocked(lambda: self.gpu.finite_range(slot))
        if err is None:
            self.range_cache = (epoch, rng)
        elif not self.worker_err:
            self._set_error(self.visible_seq, f"reducing the front to its range failed: {err}")
        self.ranges.done = want
        self.sync_cv.notify_all()

    def _swap(self) -> None:
        """Lock held on entry and exit. Consecutive markers share one swap; markers
        whose callers gave up (timed out, even while we waited for the GPU) do not
        swap: the front they were shown stays valid until a synchronize completes."""
        markers = []
        while self.queue and self.queue[0].kind == _SYNC:
            markers.append(self.queue.popleft())
            self.markers_queued -= 1
        _, err = self._unlocked(self.gpu.wait)
        if err is not None and not self.worker_err:
            self._set_error(self.applied_seq, f"waiting for the GPU failed: {err}")
        live = [mk.ticket for mk in markers if not mk.cancelled]
        if not live:
            return
        ticket = max(live)
        self.front_slot = 1 - self.front_slot
        self.epoch += 1
        self.visible_seq = self.applied_seq
        self.tickets_done = ticket
        self.ev_record("swap", self.visible_seq, 0, 0, self.front_slot, "")
        self.ev_record("visible", self.visible_seq, 0, 0, self.front_slot, "")
        self.sync_cv.notify_all()
        front, back = self.front_slot, 1 - self.front_slot
        replayed, err = self._unlocked(lambda: self._catch_up(front, back))
        replayed = replayed or 0
        if err is not None and not self.worker_err:
            self._set_error(self.visible_seq, f"bringing the new back up to date failed: {err}")
        self.ev_record("catch-up", self.visible_seq, replayed, 0, back, "")

    def _catch_up(self, front: int, back: int) -> int:
        """Lock not held: make the new back equal the front."""
        try:
            if self.batch_overflow:
                self.gpu.copy(front, back)
                return 0
            for op in self.batch_ops:
                op.apply(self.gpu, back)
            return self.batch_entries
        except Exception:
            # The back may now be half replayed: copy the front over it.
            self.gpu.copy(front, back)
            raise
        finally:
            self._drop_batch()

    def _drop_batch(self) -> None:
        names = [b for op in self.batch_ops for b in op.buffers()]
        self.batch_ops = []
        self.batch_entries = 0
        self.batch_touched = 0
        self.batch_overflow = False
        self.gpu.delete_buffers(names)

    def _apply_chunk(self) -> None:
        """Lock held on entry and exit; dropped while the GPU work is issued."""
        items: list[tuple[_Entry, int, int, bool]] = []
        budget = self.step_credits if self.paused else -1   # -1: unlimited
        freed = 0
        taken = 0
        while len(items) < WORK_CHUNK and budget != 0:
            if self.cur is None:
                if not self.queue or self.queue[0].kind == _SYNC:
                    break
                if items and taken + self.queue[0].count > WORK_ELEMENTS:
                    break
                self.cur = self.queue.popleft()
                self.cur_done = 0
                freed += self.cur.count
            cur = self.cur
            left = cur.count - self.cur_done
            take = left if budget < 0 else min(left, budget)
            failed = False
            if self.cur_done == 0 and self.fault_countdown:
                self.fault_countdown -= 1
                failed = self.fault_countdown == 0
            items.append((cur, self.cur_done, take, failed))
            taken += take
            self.cur_done += take
            if budget > 0:
                budget -= take
            if self.cur_done == cur.count:
                self.cur = None
            else:
                break  # a partial entry (paused stepping) ends the chunk
        if self.paused:
            self.step_credits = max(budget, 0)
        if freed:
            self.pending -= freed
            self.space_cv.notify_all()
        back = 1 - self.front_slot
        self.lock.release()
        try:
            err = self._apply_items(items, back)
        finally:
            self.lock.acquire()
        for e, frm, n, failed in items:
            first = e.seq + frm
            if failed:
                if not self.worker_err:
                    self._set_error(first, f"update seq {first} failed in the worker "
                                           "(injected fault); it was not applied")
            else:
                self.ev_record("apply", first, n, e.producer, back, e.op)
            self.applied_seq = first + n - 1
        if err is not None and not self.worker_err:
            first = items[0][0].seq + items[0][1]
            self._set_error(first, f"updates from seq {first} on failed on the GPU: {err}")

    def _set_error(self, seq: int, msg: str) -> None:
        """Caller holds the lock."""
        self.worker_err = True
        self.worker_err_seq = seq
        self.worker_msg = msg

    def _apply_items(self, items, slot: int) -> Exception | None:
        """Lock not held: issue the GL work of ``items`` on texture ``slot``, merged."""
        from ._gpu import SCATTER_MAX, BoxesOp, RectsOp, SetsOp, last_writes

        gpu = self.gpu
        ops: list = []
        sets: list[np.ndarray] = []
        group = self.group
        group.clear()
        done_entries = 0

        def flush_sets() -> None:
            if sets:
                parts, singles = [], []
                for p in sets:
                    if type(p) is tuple:
                        singles.append(p)
                        continue
                    if singles:
                        parts.append(np.array(singles, dtype=np.uint32))
                        singles = []
                    parts.append(p)
                if singles:
                    parts.append(np.array(singles, dtype=np.uint32))
                pairs = parts[0] if len(parts) == 1 else np.concatenate(parts)
                sets.clear()
                # Slices are dispatched in order, so a later slice wins over an earlier one.
                for lo in range(0, len(pairs), SCATTER_MAX):
                    part = last_writes(pairs[lo: lo + SCATTER_MAX], gpu.stamps)
                    op = SetsOp(gpu, part)
                    ops.append((op, len(part)))
                    op.apply(gpu, slot)

        def flush_group() -> None:
            if group.k:
                op = BoxesOp(gpu, group.records[: group.k].copy(), group.payload, group.total)
                ops.append((op, group.total))
                group.clear()
                op.apply(gpu, slot)

        try:
            for e, frm, n, failed in items:
                if failed:
                    continue
                if frm + n == e.count:
                    done_entries += 1
                if e.pairs is not None:
                    flush_group()
                    sets.append(e.pairs if n == e.count else e.pairs[frm: frm + n])
                    continue
                flush_sets()
                volume = e.touched
                if volume == 0:
                    continue
                rects = self._rects(e) if e.op == "write" else None
                if rects is not None:
                    flush_group()
                    op = RectsOp(rects)
                    ops.append((op, volume))
                    op.apply(gpu, slot)
                    continue
                if not group.fits(e.start, e.stop, volume):
                    flush_group()
                group.add(e, volume)
            flush_sets()
            flush_group()
            err = None
        except Exception as exc:
            err = exc
        self._keep(ops, done_entries, failed=err is not None)
        return err

    def _rects(self, e: _Entry):
        """A Write as texture rectangles ``(x, y, w, h, bits)``, or None for the compute path."""
        gpu = self.gpu
        if not gpu.natural:
            return None
        (d0, r0, c0), (d1, r1, c1) = e.start, e.stop
        rows = self.shape3[1]
        w = c1 - c0
        if r0 == 0 and r1 == rows:
            return [(c0, d0 * rows, w, (d1 - d0) * rows, e.data.reshape(-1, w))]
        if d1 - d0 > RECT_SLICES:
            return None
        return [(c0, d * rows + r0, w, r1 - r0, e.data[d - d0]) for d in range(d0, d1)]

    def _keep(self, ops, entries: int, failed: bool) -> None:
        """Worker-private: remember applied operations for the catch-up replay."""
        if failed:
            self.batch_overflow = True
        if not self.batch_overflow:
            self.batch_touched += sum(t for _, t in ops)
            if self.batch_touched > self.nelem:
                # Replaying would cost more than copying the buffer: drop the batch.
                self.batch_overflow = True
        self.batch_ops.extend(op for op, _ in ops)
        self.batch_entries += entries
        if self.batch_overflow:
            overflow = True
            self._drop_batch()
            self.batch_overflow = overflow

    # -- closing ------------------------------------------------------------------------
    def close(self) -> None:
        """Idempotent: stop and join the worker (it frees the GL objects), then drop Qt's."""
        on_worker = self.thread is threading.current_thread()
        with self.lock:
            already = self.closed
            self.closed = True
            self.work_cv.notify_all()
            self.space_cv.notify_all()
            self.sync_cv.notify_all()
            if already:
                # Another thread is closing: return when it is done.
                while not self.close_done and not on_worker:
                    self.sync_cv.wait()
                return
        try:
            if self.thread.ident is not None and not on_worker:
                self.thread.join()
            if not on_worker:
                _context.dispose(self.surface, self.ctx)
        finally:
            with self.lock:
                self.front_cache = None
                self.range_cache = None
                self.queue.clear()
                self.pending = 0
                self.close_done = True
                self.sync_cv.notify_all()


class GLBufferManager(BufferManager):
    """The GL backend's buffer manager. See the module docstring for the design.

    Parameters
    ----------
    shape, fill, max_pending
        As for ``app.open_manager``.
    event_capacity
        Size of the ring of ordering events (0 keeps none).
    share_context
        A ``QOpenGLContext`` (a viewer's) to share textures with; without it the
        application's global share context is used when there is one.
    """

    backend = "gl"
    capabilities = Capabilities(front_texture=True, gpu_range=True, gl_info=True)

    def __init__(
        self,
        shape: Shape,
        fill: float = 0.0,
        max_pending: int = DEFAULT_MAX_PENDING,
        event_capacity: int = DEFAULT_EVENT_CAPACITY,
        share_context=None,
    ) -> None:
        super().__init__(shape, fill, max_pending)
        event_capacity = check_event_capacity(event_capacity)
        if share_context is not None:
            from PyQt6.QtGui import QOpenGLContext

            if not isinstance(share_context, QOpenGLContext):
                raise ValueError(f"share_context must be a QOpenGLContext, got {share_context!r}")
        self._strides = np.array(
            [int(np.prod(self.shape[d + 1:], dtype=np.int64)) for d in range(self.ndim)],
            dtype=np.int64,
        )
        self._core = _Core(self.shape, self.fill, self.max_pending, event_capacity, share_context)
        self._finalizer = weakref.finalize(self, self._core.close)

    # -- building entries -----------------------------------------------------------------
    def _entry(self, u: Update, producer: int) -> _Entry:
        t = type(u)
        if t is Set:
            off = 0
            for i, s in zip(u.index, self._strides):
                off += i * int(s)
            e = _Entry(_UPDATE, "set", 1, producer)
            e.pairs = (off, _float_bits(u.value))
            e.touched = 1
            return e
        e = _Entry(_UPDATE, u.op, 1, producer)
        pad = 3 - self.ndim
        e.start = (0,) * pad + tuple(a for a, _ in u.region)
        e.stop = (1,) * pad + tuple(b for _, b in u.region)
        e.touched = int(np.prod([b - a for a, b in zip(e.start, e.stop)], dtype=np.int64))
        if t is Write:
            ext = tuple(b - a for a, b in zip(e.start, e.stop))
            e.data = u.data.view(np.uint32).reshape(ext)
        else:
            e.bits = _float_bits(u.value)
        return e

    # -- the contract ---------------------------------------------------------------------
    def _enqueue(self, update: Update, block: bool) -> int:
        e = self._entry(update, self._producer_id())
        core = self._core
        with core.lock:
            core.wait_for_room(1, block)
            return core.push(e)

    def _enqueue_many(self, valid: list[Update], block: bool) -> list[int]:
        n = len(valid)
        pid = self._producer_id()
        entries = [self._entry(u, pid) for u in valid]
        core = self._core
        seqs: list[int] = []
        with core.lock:
            if not block and n > core.max_pending:
                raise queue.Full(f"batch of {n} exceeds the queue bound")
            # The whole batch at once when it fits the bound; otherwise in order as room appears.
            whole = n if n <= core.max_pending else 1
            pushed = 0
            while pushed < n:
                want = whole if pushed == 0 else 1
                core.wait_for_room(want, block)
                for _ in range(want):
                    seqs.append(core.push(entries[pushed]))
                    pushed += 1
        return seqs

    def _set_many(self, idx: np.ndarray, vals: np.ndarray, block: bool) -> np.ndarray:
        n = len(vals)
        seqs = np.empty(n, dtype=np.uint64)
        core = self._core
        if not block and n > core.max_pending:
            raise queue.Full(f"{n} sets exceed the queue bound of {core.max_pending}")
        pairs = np.empty((n, 2), dtype=np.uint32)
        if self.ndim == 1:
            pairs[:, 0] = idx[:, 0]
        else:
            flat = idx[:, -1] + idx[:, -2] * self._strides[-2]
            if self.ndim == 3:
                flat += idx[:, 0] * self._strides[0]
            pairs[:, 0] = flat
        pairs[:, 1] = vals.view(np.uint32)
        chunk = min(core.max_pending, SETS_CHUNK)
        pid = self._producer_id()
        entries = []
        for lo in range(0, n, chunk):
            part = pairs[lo: lo + chunk]
            e = _Entry(_SETS, "set", len(part), pid)
            e.pairs = part
            e.touched = len(part)
            entries.append(e)
        whole = n <= core.max_pending
        with core.lock:
            pos = 0
            for k, e in enumerate(entries):
                # When the whole call fits the bound it goes in at once, unsplit by others.
                if k == 0:
                    core.wait_for_room(n if whole else e.count, block)
                elif not whole:
                    core.wait_for_room(e.count, block)
                first = core.push(e)
                seqs[pos: pos + e.count] = np.arange(first, first + e.count, dtype=np.uint64)
                pos += e.count
        return seqs

    def _synchronize(self, t: float | None) -> int:
        core = self._core
        deadline = None if t is None else time.monotonic() + min(t, 1e9)
        with core.lock:
            if core.closed:
                raise ManagerClosedError("manager is closed")
            marker = _Entry(_SYNC, "", 0, 0)
            core.tickets_issued += 1
            marker.ticket = ticket = core.tickets_issued
            marker.seq = core.last_seq
            core.queue.append(marker)
            core.markers_queued += 1
            core.ev_record("sync-begin", core.last_seq, 0, 0, core.front_slot, "")
            core.work_cv.notify()
            while not core.closed and core.tickets_done < ticket:
                if core.dead:
                    raise BackendError(core.dead)
                if deadline is None:
                    core.sync_cv.wait()
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    marker.cancelled = True  # not swapped yet: it will not be
                    raise TimeoutError(
                        f"synchronize timed out after {t:.3f} s ({core.pending} updates still "
                        f"pending{', worker paused' if core.paused else ''}); nothing was swapped"
                    )
                core.sync_cv.wait(left)
            if core.tickets_done < ticket:
                raise ManagerClosedError("manager was closed during synchronize")
            epoch = core.epoch
            if core.worker_err and core.worker_err_seq <= core.visible_seq:
                core.worker_err = False
                raise BackendError(core.worker_msg)
            return epoch

    def _ask_worker(self, requests: _Requests, what: str) -> None:
        """Lock held: ask the worker for one more of ``requests`` (read-backs or
        reductions) and wait (on a predicate) until it has served it."""
        core = self._core
        requests.requested += 1
        want = requests.requested
        core.work_cv.notify()
        while not core.closed and core.dead is None and requests.done < want:
            core.sync_cv.wait()
        if core.closed:
            raise ManagerClosedError(f"manager was closed while {what}")
        if core.dead:
            raise BackendError(core.dead)

    def _front(self) -> np.ndarray:
        core = self._core
        with core.lock:
            cached = core.front_cache
            if cached is not None and cached[0] == core.epoch:
                return cached[1]
            self._ask_worker(core.reads, "reading the front")
            if core.front_cache is None:
                raise BackendError(core.worker_msg or "reading the front back failed")
            return core.front_cache[1]

    def front_range(self) -> tuple[float, float, int] | tuple[None, None, int]:
        """``(min, max, epoch)`` of the finite values of the front; ``(None, None, epoch)``
        when it holds no finite value (all NaN/±Inf).

        Computed on the GPU by the worker (no read-back of the buffer: 8 bytes come
        back) once per epoch and cached, so further calls in the same epoch cost
        nothing. ``epoch`` is the epoch the values belong to — the one whose
        texture ``front_texture()`` returns while no synchronize intervenes.

        Exact: min and max are float32 values of the buffer, bit for bit. Zeros
        are ordered by their bits, -0.0 < +0.0: a front holding both has min -0.0
        and max +0.0 (where numpy's min/max may return either zero).
        """
        self._check_open()
        core = self._core
        with core.lock:
            cached = core.range_cache
            if cached is not None and cached[0] == core.epoch:
                return self._range_result(cached)
            asked_epoch = core.epoch
            self._ask_worker(core.ranges, "reducing the front")
            cached = core.range_cache
            if cached is None or cached[0] < asked_epoch:
                raise BackendError(core.worker_msg or "reducing the front to its range failed")
            return self._range_result(cached)

    def request_front_range(self):
        """Never blocks: the newest ``(min, max, epoch)`` known (as ``front_range``),
        or None when none is known yet. When it is not the current epoch's, the
        worker is asked to reduce the current front; a later call returns that.
        For a GUI thread that must not wait on the worker."""
        self._check_open()
        core = self._core
        with core.lock:
            cached = core.range_cache
            if (cached is None or cached[0] != core.epoch) and not core.ranges.waiting:
                core.ranges.requested += 1
                core.work_cv.notify()
            return None if cached is None else self._range_result(cached)

    @staticmethod
    def _range_result(cached) -> tuple[float, float, int] | tuple[None, None, int]:
        epoch, rng = cached
        if rng is None:
            return None, None, epoch
        return rng[0], rng[1], epoch

    def front_texture(self) -> tuple[int, int]:
        """``(texture, epoch)``: the front as a ``GL_TEXTURE_2D`` with ``GL_R32F`` format.

        For a viewer whose context shares objects with this manager's
        (``share_context`` or the global share context). Texel ``(x, y)`` holds
        flat element ``y * width + x`` where ``(width, height) = texture_size``;
        sample it with ``texelFetch(sampler2D, ivec2(x, y), 0).r``. Like ``front()``
        it is valid until the next ``synchronize()``.
        """
        self._check_open()
        core = self._core
        with core.lock:
            return core.gpu.views[core.front_slot], core.epoch

    @property
    def texture_size(self) -> tuple[int, int]:
        """``(width, height)`` of the buffer textures (see ``front_texture``)."""
        self._check_open()
        return self._core.gpu.width, self._core.gpu.height

    @property
    def shares_context(self) -> bool:
        """Whether this manager's context shares objects with another (a viewer's)."""
        return self._core.shared

    def gl_info(self) -> dict[str, object]:
        """Vendor, renderer, version and the texture size limit of this manager's context."""
        return dict(self._core.gl_info)

    def gl_objects(self) -> dict[str, list[int]]:
        """Names of the GL objects this manager holds (all freed by ``close()``)."""
        self._check_open()
        core = self._core
        with core.lock:
            gpu = core.gpu
            return {**gpu.object_names(), "buffers_live": [gpu.buffers_live]}

    def close(self) -> None:
        self._closed = True
        self._finalizer()   # the first call closes the core; later ones do nothing
        self._core.close()  # returns once the core is closed, whoever closed it

    def _stats(self) -> ManagerStats:
        core = self._core
        with core.lock:
            return ManagerStats.read(core, core.ev_count)

    def _events(self, since: int) -> tuple[list[Event], int]:
        core = self._core
        with core.lock:
            oldest = core.ev_count - len(core.ev) if core.ev_cap else core.ev_count
            start = max(int(since), oldest)
            raw = list(itertools.islice(core.ev, start - oldest, None)) if core.ev_cap else []
            nxt = max(start, core.ev_count)
        out = [
            Event(index=i, t_ns=t, kind=k, seq=s, count=c, epoch=ep,
                  producer=self.producer_name(p), slot=sl, op=op)
            for (i, t, k, s, c, ep, p, sl, op) in raw
        ]
        return out, nxt

    def _set_paused(self, paused: bool) -> None:
        core = self._core
        with core.lock:
            if core.closed:
                raise ManagerClosedError("manager is closed")
            core.paused = paused
            core.step_credits = 0
            core.work_cv.notify()

    def _step(self, n: int) -> None:
        core = self._core
        with core.lock:
            if core.closed:
                raise ManagerClosedError("manager is closed")
            if not core.paused:
                raise ValueError("step needs a paused worker")
            core.step_credits += n
            core.work_cv.notify()

    def _inject_worker_fault(self, after: int) -> None:
        with self._core.lock:
            self._core.fault_countdown = after
