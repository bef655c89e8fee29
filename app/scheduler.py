"""The queue protocol of the Python-side backends: one ``Scheduler``, any ``Executor``.

DESIGN
A ``Scheduler`` owns everything about *when* updates are applied and become
visible — sequence numbers, the bounded FIFO queue, sync markers and their
tickets, pause and step credits, fault injection, the ordering events of SPEC §4
— and one persistent worker thread. An ``Executor`` owns *how*: the two buffers
and the work of applying a chunk of queue entries to the back, waiting for
device work, bringing the new back up to date after a swap (catch-up), reading
the front, and reducing it to its finite range. The GL backend is an executor on
the GPU (``gl_backend``); ``NumpyExecutor`` (``app.numpy_executor``) does the
same on two numpy arrays, so the whole protocol is tested without OpenGL. The C
library implements the same protocol in C (``c_backend/src/bufferscope.c``).

One lock guards all shared state. Three conditions hang off it, and every wait
re-checks a predicate in a loop (no bare signals):
  work_cv   the worker waits for "something to apply, a sync or a request";
  space_cv  producers wait for "room in the bounded queue";
  sync_cv   synchronizers wait for "tickets_done >= my ticket", readers for
            "requests.done >= my request", the creator for the worker's start.

Queue entries are one update, a chunk of element sets (``set_many``) or a sync
marker with a ticket. Every element update has its own sequence number (from 1).
The bound counts element units: a Set counts 1, a Write counts its elements (a
Write larger than the bound is admitted alone into an empty queue), a chunk of
n sets counts n; markers are free. A marker whose ``synchronize`` gave up (timed
out or interrupted) is cancelled: no swap happens for it. A cancelled marker at
the tail is dropped at once and a new marker replaces a cancelled tail, so
cancelled markers never outnumber the update entries between them.

Per-call Sets (``push_set``, the fast path of ``ScheduledManager.enqueue``): a
producer's consecutive Sets join one open *run* at the tail of the queue, a
SETS entry growing by a list append under the lock (no Entry, event or encoding
per call), each with its own sequence number and enqueue time. The run is
sealed (arrays, encoding, its one ring record) before anything else is recorded,
before the worker takes it and before anyone reads the events; the manager's
``events()`` gives one event per Set of it, as each would have had alone. A
watch, a trace being recorded, a full queue or another producer's update ends
or bypasses the run.

The worker takes a chunk of entries under the lock, drops the lock while the
executor applies them, and records the ``apply`` events under the lock. At a
sync marker it waits for the executor's device work, swaps the slots (O(1)),
bumps the epoch, wakes the synchronizers, and only then lets the executor bring
the new back up to date before it applies anything else: the back is never stale.

Fast path: a ``synchronize`` that finds nothing queued and the back already
equal to the front (caught up, nothing applied since) swaps in the caller: the
two slots hold the same values, so exchanging them is the whole swap.

Pause: the worker applies nothing unless given step credits; a step of n lets
it apply exactly n more element updates, and credits never exceed the element
updates queued and not yet taken (no credit is banked on an empty queue). Swaps
of already applied work still happen while paused.

Ordering guarantee: updates are applied in the order they entered the queue,
whichever thread enqueued them; a swap happens exactly at each live marker.
Not promised: fairness between blocked producers, or which of several
concurrent ``synchronize`` callers sees a worker failure (exactly one does).
"""

from __future__ import annotations

import collections
import itertools
import math
import queue
import threading
import time
from typing import Protocol

import numpy as np

from .errors import BackendError, BackendUnavailableError, ManagerClosedError
from .updates import Set, Shape, Update, Write

UPDATE, SETS, SYNC = 0, 1, 2

WORK_CHUNK = 1024            # entries taken by the worker at a time
WORK_ELEMENTS = 1 << 21      # element units taken at a time (whole entries beyond the first)
SETS_CHUNK = 65536           # element sets per queue entry
GATHER_UNITS = 4096          # fewer queued than this and no sync waiting: gather a moment
GATHER_S = 0.0005            # ... this long, so trickling updates share executor calls
EVENT_PAYLOAD_UNITS = 1 << 22  # payload elements the event ring may keep alive (~48 MiB)
START_TIMEOUT_S = 60.0
WAIT_SLICE_S = 0.05          # blocking waits return to Python this often (Ctrl+C)
_now_ns = time.monotonic_ns


class Entry:
    """One queue entry. ``update`` is the validated update of an UPDATE entry;
    ``flat`` (int64 flat offsets) and ``values`` (float32) a SETS chunk; ``ticket``
    a SYNC marker. ``enc`` is whatever the executor's ``encode`` made of it."""

    __slots__ = ("kind", "op", "seq", "count", "units", "producer", "ticket", "cancelled",
                 "outcome", "update", "flat", "values", "enc", "run")

    def __init__(self, kind: int, op: str, count: int, units: int, producer: int) -> None:
        self.kind = kind
        self.op = op
        self.seq = 0
        self.count = count
        self.units = units
        self.producer = producer
        self.ticket = 0
        self.cancelled = False
        self.outcome: bool | None = None   # a marker: did it swap? (None: not yet known)
        self.update: Update | None = None
        self.flat: np.ndarray | None = None
        self.values: np.ndarray | None = None
        self.enc = None
        # A SETS entry made of per-call Sets (Scheduler.push_set): each one's enqueue
        # time (int64 ns), for its own events.
        self.run: np.ndarray | None = None


# One item of a chunk: (entry, first element index in it, element count, failed).
Item = tuple[Entry, int, int, bool]


class Executor(Protocol):
    """How the updates are applied. All methods but ``encode`` and ``hand_over``
    run on the worker thread, with the scheduler's lock *not* held."""

    #: where the work happens, for error messages ("on the GPU")
    where: str

    def encode(self, entry: Entry) -> None:
        """On the producer's thread: prepare ``entry.enc`` (may do nothing)."""

    def hand_over(self, deadline: float) -> None:
        """On the creating thread, once the worker thread exists (e.g. move a GL context)."""

    def start(self) -> dict:
        """Worker thread: allocate both buffers (filled); returns facts for ``info``."""

    def finish(self) -> None:
        """Worker thread: free everything ``start`` made."""

    def dispose(self) -> None:
        """The closing thread, after the worker has ended: free what lives there."""

    def apply(self, items: list[Item], slot: int) -> Exception | None:
        """Apply ``items`` in order to buffer ``slot``; the error of a failed chunk."""

    def wait(self) -> None:
        """Block until every applied update has landed (a GPU fence)."""

    def catch_up(self, front: int, back: int) -> int:
        """Make ``back`` equal ``front``; the number of entries replayed (0: copied whole)."""

    def read(self, slot: int) -> np.ndarray:
        """A private copy of buffer ``slot`` in the buffer's shape."""

    def read_front(self, slot: int) -> np.ndarray:
        """Buffer ``slot``, the front, for ``front()``: may share memory with the
        previous ``read_front``'s array (valid until the next swap, as ``front()``)."""

    def finite_range(self, slot: int) -> tuple[float, float] | None:
        """Exact min and max of the finite values of ``slot`` (None: none)."""


class Watch:
    """What the worker pauses before: writes to ``flat`` (flat element offsets),
    ``ops``, and updates from the producers named in ``producer_names``."""

    def __init__(self, flat: set[int], shape: Shape, ops: frozenset, producer_names: frozenset) -> None:
        self.flat = flat
        self.flat_array = np.fromiter(flat, dtype=np.int64, count=len(flat))
        self.shape = tuple(shape)
        self.ops = ops
        self.producer_names = producer_names
        self._ids: frozenset[int] = frozenset()
        self._seen = -1

    def producer_ids(self, producers: dict[int, str]) -> frozenset[int]:
        if len(producers) != self._seen:   # new threads: look their names up again
            self._seen = len(producers)
            self._ids = frozenset(p for p, n in list(producers.items()) if n in self.producer_names)
        return self._ids

    def writes(self, u: Update) -> bool:
        if type(u) is Set:
            return int(np.ravel_multi_index(u.index, self.shape)) in self.flat
        for off in self.flat:
            idx = np.unravel_index(off, self.shape)
            if all(a <= i < b for i, (a, b) in zip(idx, u.region)):
                return True
        return False


class Requests:
    """Counters of requests to the worker (read-backs, reductions): it serves
    them while ``requested > done``; waiters wait for ``done >= their number``."""

    __slots__ = ("requested", "done")

    def __init__(self) -> None:
        self.requested = self.done = 0

    @property
    def waiting(self) -> bool:
        return self.requested > self.done


def readonly(arr: np.ndarray) -> np.ndarray:
    """A view of ``arr`` that can never be made writable (its base is a read-only buffer)."""
    view = np.frombuffer(memoryview(np.ascontiguousarray(arr)).toreadonly(), dtype=arr.dtype)
    return view.reshape(arr.shape)


class Scheduler:
    """The shared state and the worker of one manager (it holds no reference to the
    manager, so that a forgotten manager is collected and its finalizer closes this)."""

    def __init__(self, executor: Executor, shape: Shape, fill: float, max_pending: int,
                 event_capacity: int, thread_name: str) -> None:
        self.executor = executor
        self.shape = tuple(shape)
        self.nelem = math.prod(self.shape)
        self.fill = fill
        self.max_pending = max_pending

        self.lock = threading.Lock()
        self._acquire, self._release = self.lock.acquire, self.lock.release
        self.work_cv = threading.Condition(self.lock)
        self.space_cv = threading.Condition(self.lock)
        self.sync_cv = threading.Condition(self.lock)

        self.queue: collections.deque[Entry] = collections.deque()
        self.pending = 0            # element units queued (the bound counts these)
        self.markers_queued = 0
        self.closed = False
        self.close_done = False
        self.front_slot = 0
        self.last_seq = self.taken_seq = self.applied_seq = self.visible_seq = self.epoch = 0
        self.tickets_issued = self.tickets_done = 0
        self.back_current = False    # back == front: caught up, nothing applied since
        self.paused = False
        self.worker_idle = False     # waiting on work_cv: only then is a notify needed
        self.step_credits = 0
        self.fault_countdown = 0
        self.worker_err = False
        self.worker_err_seq = 0
        self.worker_msg = ""
        self.dead: str | None = None
        self.reads = Requests()      # front() read-backs
        self.back_reads = Requests() # back() read-backs (while paused)
        self.back_copy: np.ndarray | None = None
        self.front_cache: tuple[int, np.ndarray] | None = None
        self.ranges = Requests()     # front_range() reductions
        self.range_cache: tuple[int, tuple[float, float] | None] | None = None

        self.producers: dict[int, str] = {}   # the manager's producer names (shared)
        self.ev_cap = event_capacity
        self.ev: collections.deque = collections.deque(maxlen=max(1, event_capacity))
        self.ev_count = 0
        self.ev_payload = 0       # payload units the ring references (see EVENT_PAYLOAD_UNITS)
        self.ev_stripped = 0      # events before this index hold no payload

        self.capture = None   # an app.capture.Capture while the queue is recorded
        self.watch: Watch | None = None
        self.break_passed = 0   # the seq the worker last stopped before: stepping passes it
        self.breaking: tuple[Entry, int] | None = None   # a stop whose event is not recorded yet
        self.cur: Entry | None = None   # worker-private: an entry taken in part (stepping)
        self.cur_done = 0
        self.run: Entry | None = None   # the open run of one producer's Sets (see push_set)
        self.run_flat: list[int] = []
        self.run_vals: list[float] = []
        self.run_t: list[int] = []

        self.ready = False
        self.init_error: BaseException | None = None
        self.info: dict = {}

        self.thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        try:
            self.thread.start()
            deadline = time.monotonic() + START_TIMEOUT_S
            executor.hand_over(deadline)
            with self.lock:
                while not self.ready and self.init_error is None:
                    if not self.sync_cv.wait(max(0.0, deadline - time.monotonic())):
                        raise BackendUnavailableError(
                            f"the worker did not set up its buffers within {START_TIMEOUT_S:.0f} s")
                err = self.init_error
            if err is not None:
                raise err
        except BaseException:
            self.close()
            raise

    # -- the worker's life -------------------------------------------------------------
    def _run(self) -> None:
        try:
            info = self.executor.start()
        except BaseException as exc:
            with self.lock:
                self.init_error = exc
                self.sync_cv.notify_all()
            return
        with self.lock:
            self.info = dict(info or {})
            self.ready = True
            self.sync_cv.notify_all()
        try:
            self._loop()
        except BaseException as exc:  # a bug, not an executor error: no more work can be done
            with self.lock:
                self.dead = f"the worker stopped: {type(exc).__name__}: {exc}"
                self.run = None   # no more Sets join it: enqueue names the failure
                self.sync_cv.notify_all()
                self.space_cv.notify_all()
        finally:
            self.cur = None
            self.executor.finish()

    # -- events ------------------------------------------------------------------------
    def ev_record(self, kind: str, seq: int, count: int, producer: int, slot: int, op: str,
                  entry: Entry | None = None, frm: int = 0, t: int = 0) -> None:
        """Caller holds the lock. ``entry`` (and the first element ``frm`` of it the
        event concerns) says what an enqueue/apply event's updates wrote. An open
        run is sealed first: its enqueue event comes before any later one."""
        if self.run is not None:
            self._seal_run()
        if not self.ev_cap:
            return
        ev = self.ev
        if len(ev) == ev.maxlen:                      # the oldest is about to go
            gone = ev[0][9]
            if type(gone) is Entry:
                self.ev_payload -= _payload_units(gone)
            self.ev_stripped = max(self.ev_stripped, self.ev_count - len(ev) + 1)
        ev.append((self.ev_count, t or time.monotonic_ns(), kind, seq, count, self.epoch,
                   producer, slot, op, entry, frm))
        self.ev_count += 1
        if entry is not None:
            self.ev_payload += _payload_units(entry)
            if self.ev_payload > EVENT_PAYLOAD_UNITS:
                self._strip_payloads()

    def _strip_payloads(self) -> None:
        """Let go of the payloads of the oldest events until the budget holds again."""
        ev = self.ev
        oldest = self.ev_count - len(ev)
        pos = max(0, self.ev_stripped - oldest)
        while self.ev_payload > EVENT_PAYLOAD_UNITS // 2 and pos < len(ev):
            rec = ev[pos]
            e = rec[9]
            if type(e) is Entry and _payload_units(e):
                self.ev_payload -= _payload_units(e)
                ev[pos] = rec[:9] + (StrippedEntry(e), rec[10])
            pos += 1
        self.ev_stripped = oldest + pos

    def events(self, since: int) -> tuple[list[tuple], int]:
        with self.lock:
            if self.run is not None:
                self._seal_run()   # a reader sees the run whole; later Sets open a new one
            oldest = self.ev_count - len(self.ev) if self.ev_cap else self.ev_count
            start = max(since, oldest)
            raw = list(itertools.islice(self.ev, start - oldest, None)) if self.ev_cap else []
            return raw, max(start, self.ev_count)

    # -- producers ---------------------------------------------------------------------
    def _wait_for_room(self, units: int, block: bool) -> None:
        """Caller holds the lock. ``units`` beyond the bound wait for an empty queue."""
        while True:
            if self.closed:
                raise ManagerClosedError("manager is closed")
            if self.dead:
                raise BackendError(self.dead)
            if self.pending + units <= self.max_pending or (self.pending == 0 and not self.queue):
                return
            if not block:
                raise queue.Full(
                    f"queue full: {self.pending} of {self.max_pending} element units pending "
                    f"(this call needs {units})"
                )
            self.space_cv.wait(WAIT_SLICE_S)

    def _push(self, e: Entry) -> int:
        """Caller holds the lock and has room."""
        e.seq = self.last_seq + 1
        self.queue.append(e)
        self.last_seq += e.count
        self.pending += e.units
        self.ev_record("enqueue", e.seq, e.count, e.producer, 1 - self.front_slot, e.op, e)
        if self.capture is not None:
            self.capture.record(e)
        if self.worker_idle:
            self.work_cv.notify()
        return e.seq

    def push(self, e: Entry, block: bool) -> int:
        with self.lock:
            self._wait_for_room(e.units, block)
            return self._push(e)

    def push_set(self, flat: int, value: float, producer: int) -> int:
        """The per-call fast path: one validated Set (its flat offset, a float) joins
        the open run of this producer's Sets at the tail of the queue, or opens one.
        Returns its sequence number, or 0 when the caller must take the general path
        (``push``): no room, closed, a failed worker, or the queue being recorded."""
        self._acquire()   # not `with`: this is the hot path, and this is cheaper
        try:
            run = self.run
            if run is not None and run.producer == producer and self.pending < self.max_pending:
                offsets = self.run_flat
                if len(offsets) < SETS_CHUNK:   # the run's count and units: set when sealed
                    offsets.append(flat)
                    self.run_vals.append(value)
                    self.run_t.append(_now_ns())
                    self.pending += 1
                    self.last_seq = seq = self.last_seq + 1
                    return seq
            return self._open_run(flat, value, producer)
        finally:
            self._release()

    def _open_run(self, flat: int, value: float, producer: int) -> int:
        """Lock held: a new run of one Set at the tail (0: take the general path)."""
        if (self.closed or self.dead or self.capture is not None or self.watch is not None
                or self.pending >= self.max_pending):
            return 0
        if self.run is not None:
            self._seal_run()
        e = Entry(SETS, "set", 1, 1, producer)
        e.seq = self.last_seq + 1
        self.queue.append(e)
        self.last_seq += 1
        self.pending += 1
        self.run = e
        self.run_flat = [flat]
        self.run_vals = [value]
        self.run_t = [_now_ns()]
        if self.worker_idle:
            self.work_cv.notify()
        return e.seq

    def _seal_run(self) -> None:
        """Lock held: the open run becomes an ordinary chunk of sets (its arrays,
        its encoding, its one ``enqueue`` event, stamped when the run opened). Done
        before anything else is recorded, taken by the worker or read, so the ring
        keeps its order and nobody sees a run grow."""
        e, self.run = self.run, None
        e.count = e.units = len(self.run_flat)
        e.flat = np.array(self.run_flat, dtype=np.int64)
        with np.errstate(over="ignore", invalid="ignore"):
            e.values = np.array(self.run_vals, dtype=np.float64).astype(np.float32)
        e.run = np.array(self.run_t, dtype=np.int64)
        self.run_flat = []
        self.run_vals = []
        self.run_t = []
        self.executor.encode(e)
        self.ev_record("enqueue", e.seq, e.count, e.producer, 1 - self.front_slot, e.op, e,
                       t=int(e.run[0]))

    def push_many(self, entries: list[Entry], block: bool) -> list[int]:
        """All at once when they fit the bound together; otherwise in order as room appears."""
        total = sum(e.units for e in entries)
        with self.lock:
            if total <= self.max_pending or len(entries) == 1:
                self._wait_for_room(total, block)
                return [self._push(e) for e in entries]
            if not block:
                raise queue.Full(f"a batch of {total} element units exceeds the queue bound "
                                 f"({self.max_pending})")
            seqs = []
            for e in entries:
                self._wait_for_room(e.units, block)
                seqs.append(self._push(e))
            return seqs

    # -- synchronizers -----------------------------------------------------------------
    def synchronize(self, timeout: float | None) -> int:
        deadline = None if timeout is None else time.monotonic() + min(timeout, 1e9)
        with self.lock:
            if self.closed:
                raise ManagerClosedError("manager is closed")
            if self.dead:
                raise BackendError(self.dead)
            idle = not self.queue and self.cur is None
            if idle and self.back_current:
                return self._swap_in_caller()
            if timeout == 0 and (not idle or self.paused):
                raise TimeoutError(
                    f"synchronize(timeout=0): {self.pending} element units still pending"
                    f"{', worker paused' if self.paused else ''}; nothing was swapped")
            if timeout == 0:
                # Nothing queued, worker running: only the swap of applied work is left.
                deadline = time.monotonic() + START_TIMEOUT_S
            marker = self._push_marker()
            try:
                while not self.closed and self.tickets_done < marker.ticket:
                    if self.dead:
                        raise BackendError(self.dead)
                    left = WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(
                            f"synchronize timed out after {timeout:.3f} s ({self.pending} element "
                            f"units still pending{', worker paused' if self.paused else ''}); "
                            "nothing was swapped")
                    self.sync_cv.wait(min(left, WAIT_SLICE_S))
            except BaseException:
                if self.tickets_done < marker.ticket:
                    self._cancel(marker)
                raise
            if self.tickets_done < marker.ticket:
                raise ManagerClosedError("manager was closed during synchronize")
            return self._epoch_or_error()

    def _push_marker(self) -> Entry:
        """Caller holds the lock."""
        if self.queue and self.queue[-1].kind == SYNC and self.queue[-1].cancelled:
            self.queue.pop()                 # a new marker replaces a cancelled tail
            self.markers_queued -= 1
        marker = Entry(SYNC, "", 0, 0, 0)
        self.tickets_issued += 1
        marker.ticket = self.tickets_issued
        marker.seq = self.last_seq
        self.queue.append(marker)
        self.markers_queued += 1
        self.ev_record("sync-begin", self.last_seq, 0, 0, self.front_slot, "")
        if self.capture is not None:
            self.capture.record(marker)
        self.work_cv.notify()
        return marker

    def _cancel(self, marker: Entry) -> None:
        """Caller holds the lock: no swap for ``marker``; dropped at once at the tail."""
        marker.cancelled = True
        marker.outcome = False
        if self.queue and self.queue[-1] is marker:
            self.queue.pop()
            self.markers_queued -= 1
        if self.capture is not None:
            self.capture.wake()

    def _swap_in_caller(self) -> int:
        """Caller holds the lock; nothing queued and back == front: exchange the slots."""
        self.ev_record("sync-begin", self.last_seq, 0, 0, self.front_slot, "")
        self.tickets_issued += 1
        self._publish(self.tickets_issued)
        if self.capture is not None:
            self.capture.record_swap()
        rng = self.range_cache      # same values, new epoch (a read-back may be a view: not it)
        if rng is not None and rng[0] == self.epoch - 1:
            self.range_cache = (self.epoch, rng[1])
        self.ev_record("catch-up", self.visible_seq, 0, 0, 1 - self.front_slot, "")
        return self._epoch_or_error()

    def _publish(self, ticket: int) -> None:
        """Caller holds the lock: the swap itself."""
        self.front_slot = 1 - self.front_slot
        self.epoch += 1
        self.visible_seq = self.applied_seq
        self.tickets_done = ticket
        self.ev_record("swap", self.visible_seq, 0, 0, self.front_slot, "")
        self.ev_record("visible", self.visible_seq, 0, 0, self.front_slot, "")
        self.sync_cv.notify_all()

    def _epoch_or_error(self) -> int:
        if self.worker_err and self.worker_err_seq <= self.visible_seq:
            self.worker_err = False
            raise BackendError(self.worker_msg)
        return self.epoch

    # -- requests to the worker ----------------------------------------------------------
    def ask(self, requests: Requests, what: str) -> None:
        """Lock held: ask the worker for one more of ``requests`` and wait until served."""
        requests.requested += 1
        want = requests.requested
        self.work_cv.notify()
        while not self.closed and self.dead is None and requests.done < want:
            self.sync_cv.wait(WAIT_SLICE_S)
        if self.closed:
            raise ManagerClosedError(f"manager was closed while {what}")
        if self.dead:
            raise BackendError(self.dead)

    def front(self) -> np.ndarray:
        with self.lock:
            cached = self.front_cache
            if cached is not None and cached[0] == self.epoch:
                return cached[1]
            self.ask(self.reads, "reading the front")
            if self.front_cache is None:
                raise BackendError(self.worker_msg or "reading the front back failed")
            return self.front_cache[1]

    def front_range(self, block: bool):
        """``(epoch, range)`` of the current epoch (block) or the newest known (None if none)."""
        with self.lock:
            cached = self.range_cache
            if cached is not None and cached[0] == self.epoch:
                return cached
            if not block:
                if not self.ranges.waiting:
                    self.ranges.requested += 1
                    self.work_cv.notify()
                return cached
            asked = self.epoch
            self.ask(self.ranges, "reducing the front")
            cached = self.range_cache
            if cached is None or cached[0] < asked:
                raise BackendError(self.worker_msg or "reducing the front to its range failed")
            return cached

    # -- pause, step, faults -------------------------------------------------------------
    def set_paused(self, paused: bool) -> None:
        with self.lock:
            if self.closed:
                raise ManagerClosedError("manager is closed")
            self.paused = paused
            self.step_credits = 0
            self.work_cv.notify()

    def step(self, n: int) -> None:
        with self.lock:
            if self.closed:
                raise ManagerClosedError("manager is closed")
            if not self.paused:
                raise ValueError("step needs a paused worker")
            untaken = self.last_seq - self.taken_seq
            self.step_credits = min(self.step_credits + n, untaken)
            self.work_cv.notify()

    def set_watch(self, watch: Watch | None) -> None:
        with self.lock:
            if self.run is not None:
                self._seal_run()   # while a watch is set, each Set is an entry of its own
            self.watch = watch
            self.break_passed = 0
            self.work_cv.notify()

    def _watch_hit(self, e: Entry, frm: int) -> int | None:
        """Lock held: the first element position >= ``frm`` of ``e`` that a watch
        matches (not the one the worker already stopped before), or None."""
        w = self.watch
        passed = self.break_passed - e.seq
        if frm == 0 and passed != 0 and (e.op in w.ops or w.producer_ids(self.producers) & {e.producer}):
            return 0
        if not w.flat:
            return None
        if e.kind == SETS:
            hits = np.flatnonzero(np.isin(e.flat[frm:], w.flat_array)) + frm
            hits = hits[hits != passed]
            return int(hits[0]) if len(hits) else None
        if frm == 0 and passed != 0 and w.writes(e.update):
            return 0
        return None

    def _break(self, e: Entry, k: int) -> None:
        """Lock held: pause before element ``k`` of ``e`` (no credit left over); the
        ``break`` event is recorded once the updates taken before it are applied."""
        self.paused = True
        self.step_credits = 0
        self.break_passed = e.seq + k
        self.breaking = (e, k)

    def _record_break(self) -> None:
        e, k = self.breaking
        self.breaking = None
        self.ev_record("break", e.seq + k, 1, e.producer, 1 - self.front_slot, e.op, e, k)
        self.sync_cv.notify_all()

    def inject_fault(self, after: int) -> None:
        with self.lock:
            self.fault_countdown = after

    # -- the worker loop ---------------------------------------------------------------
    def _has_work(self) -> bool:
        if self.reads.waiting or self.ranges.waiting or self.back_reads.waiting:
            return True
        may_apply = not self.paused or self.step_credits > 0
        if self.cur is not None:
            return may_apply
        if not self.queue:
            return False
        if self.queue[0].kind == SYNC:
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
                elif self.back_reads.waiting:
                    self._serve_back_read()
                elif self.ranges.waiting:
                    self._serve_range()
                elif self.cur is None and self.queue[0].kind == SYNC:
                    self._swap()
                elif (not gathered and not self.paused and not self.markers_queued
                      and self.pending < GATHER_UNITS):
                    # Updates trickle in one by one: let a few more arrive so they
                    # share executor calls. A sync, request, pause or close cuts it short.
                    gathered = True
                    self.work_cv.wait(GATHER_S)
                else:
                    gathered = False
                    self._apply_chunk()
        finally:
            self.lock.release()

    def _unlocked(self, work):
        """Lock held on entry and exit: run ``work()`` with it dropped (device work
        must not block producers); returns ``(result, None)`` or ``(None, exc)``."""
        self.lock.release()
        try:
            return work(), None
        except Exception as exc:
            return None, exc
        finally:
            self.lock.acquire()

    def _set_error(self, seq: int, msg: str) -> None:
        """Caller holds the lock: the first failure is reported by the next synchronize."""
        if not self.worker_err:
            self.worker_err = True
            self.worker_err_seq = seq
            self.worker_msg = msg

    def _serve_read(self) -> None:
        want, slot, epoch = self.reads.requested, self.front_slot, self.epoch
        arr, err = self._unlocked(lambda: readonly(self.executor.read_front(slot)))
        if arr is not None:
            self.front_cache = (epoch, arr)
        else:
            self._set_error(self.visible_seq, f"reading the front back failed: {err}")
        self.reads.done = want
        self.sync_cv.notify_all()

    def _serve_back_read(self) -> None:
        want, slot = self.back_reads.requested, 1 - self.front_slot
        arr, err = self._unlocked(lambda: readonly(np.array(self.executor.read(slot))))
        self.back_copy = arr
        if err is not None:
            self._set_error(self.applied_seq, f"reading the back buffer failed: {err}")
        self.back_reads.done = want
        self.sync_cv.notify_all()

    def back(self) -> np.ndarray:
        with self.lock:
            self.ask(self.back_reads, "reading the back")
            arr, self.back_copy = self.back_copy, None
            if arr is None:
                raise BackendError(self.worker_msg or "reading the back buffer failed")
            return arr

    def _serve_range(self) -> None:
        want, slot, epoch = self.ranges.requested, self.front_slot, self.epoch
        cached = self.range_cache
        if cached is None or cached[0] != epoch:
            rng, err = self._unlocked(lambda: self.executor.finite_range(slot))
            if err is None:
                self.range_cache = (epoch, rng)
            else:
                self._set_error(self.visible_seq, f"reducing the front to its range failed: {err}")
        self.ranges.done = want
        self.sync_cv.notify_all()

    def _swap(self) -> None:
        """Consecutive markers share one swap; cancelled ones swap nothing, even if
        they were cancelled while we waited for the device."""
        markers = []
        while self.queue and self.queue[0].kind == SYNC:
            markers.append(self.queue.popleft())
            self.markers_queued -= 1
        _, err = self._unlocked(self.executor.wait)
        if err is not None:
            self._set_error(self.applied_seq, f"waiting {self.executor.where} failed: {err}")
        live = [mk.ticket for mk in markers if not mk.cancelled]
        for mk in markers:   # one swap for the group: the last live marker's
            mk.outcome = bool(live) and mk.ticket == max(live)
        if self.capture is not None:
            self.capture.wake()
        if not live:
            return
        self.back_current = False
        self._publish(max(live))
        front, back = self.front_slot, 1 - self.front_slot
        replayed, err = self._unlocked(lambda: self.executor.catch_up(front, back))
        if err is not None:
            self._set_error(self.visible_seq, f"bringing the new back up to date failed: {err}")
        self.back_current = err is None
        self.ev_record("catch-up", self.visible_seq, replayed or 0, 0, back, "")

    def _apply_chunk(self) -> None:
        """Lock held on entry and exit; dropped while the executor applies."""
        if self.run is not None:
            self._seal_run()
        items: list[Item] = []
        budget = self.step_credits if self.paused else -1   # -1: unlimited
        freed = 0
        taken = 0
        while len(items) < WORK_CHUNK and budget != 0:
            if self.cur is None:
                if not self.queue or self.queue[0].kind == SYNC:
                    break
                if items and taken + self.queue[0].units > WORK_ELEMENTS:
                    break
                if self.watch is not None and self._watch_hit(self.queue[0], 0) == 0:
                    self._break(self.queue[0], 0)
                    break
                self.cur = self.queue.popleft()
                self.cur_done = 0
                freed += self.cur.units
            cur = self.cur
            left = cur.count - self.cur_done
            if self.watch is not None:
                hit = self._watch_hit(cur, self.cur_done)
                if hit == self.cur_done:
                    self._break(cur, hit)
                    break
                if hit is not None:
                    left = hit - self.cur_done     # up to the watched element, not past it
            take = left if budget < 0 else min(left, budget)
            failed = False
            if self.cur_done == 0 and self.fault_countdown:
                self.fault_countdown -= 1
                failed = self.fault_countdown == 0
            items.append((cur, self.cur_done, take, failed))
            taken += cur.units if take == cur.count else take
            self.cur_done += take
            if budget > 0:
                budget -= take
            if self.cur_done == cur.count:
                self.cur = None
            else:
                break  # a partial entry (stepping, or a watch ahead) ends the chunk
        if not items:
            if self.breaking is not None:
                self._record_break()
            return
        if self.paused and self.breaking is None:
            self.step_credits = max(budget, 0)
        last = items[-1]
        self.taken_seq = last[0].seq + last[1] + last[2] - 1
        if freed:
            self.pending -= freed
            self.space_cv.notify_all()
        self.back_current = False
        back = 1 - self.front_slot
        self.lock.release()
        try:
            err = self.executor.apply(items, back)
        finally:
            self.lock.acquire()
        for e, frm, n, failed in items:
            first = e.seq + frm
            if failed:
                self._set_error(first, f"update seq {first} failed in the worker "
                                       "(injected fault); it was not applied")
            else:
                self.ev_record("apply", first, n, e.producer, back, e.op, e, frm)
            self.applied_seq = first + n - 1
        if err is not None:
            first = items[0][0].seq + items[0][1]
            self._set_error(first, f"updates from seq {first} on failed {self.executor.where}: {err}")
        if self.breaking is not None:
            self._record_break()

    # -- closing ---------------------------------------------------------------------
    def close(self) -> None:
        """Idempotent: stop and join the worker (it frees the executor's buffers),
        then finish the trace being recorded."""
        on_worker = self.thread is threading.current_thread()
        with self.lock:
            already = self.closed
            self.closed = True
            if self.run is not None:
                self._seal_run()   # its enqueue event is recorded; no more Sets join it
            self.work_cv.notify_all()
            self.space_cv.notify_all()
            self.sync_cv.notify_all()
            if already:
                # Another thread is closing: return when it is done.
                while not self.close_done and not on_worker:
                    self.sync_cv.wait(WAIT_SLICE_S)
                return
        try:
            if self.thread.ident is not None and not on_worker:
                self.thread.join()
            if not on_worker:
                self.executor.dispose()
        finally:
            with self.lock:
                self.front_cache = None
                self.range_cache = None
                self.queue.clear()
                self.run = None
                self.pending = 0
                capture, self.capture = self.capture, None
                self.close_done = True
                self.sync_cv.notify_all()
            if capture is not None:
                capture.close()


class StrippedEntry:
    """What an event keeps of an entry whose payload it let go: its region."""

    __slots__ = ("kind", "region", "run")

    def __init__(self, e: Entry) -> None:
        self.kind = e.kind
        self.region = None if e.update is None else e.update.region
        self.run = None if e.run is None else True   # per-call Sets: still one event each


def _payload_units(e: Entry) -> int:
    """The elements of payload an entry holds beyond its fixed size."""
    if e.kind == SETS:
        return e.count
    if type(e.update) is Write:
        return e.units
    return 0


def write_units(u: Update) -> int:
    """Element units an update counts against the queue bound."""
    if type(u) is Write:
        return max(1, int(u.data.size))
    return 1
