"""The manager contract (SPEC §3) shared by every backend, and its ordering events (§4).

A backend subclasses ``BufferManager`` and implements the abstract methods; the
shared contract test suite checks every guarantee against the reference model.
``open_manager`` (in ``app.backends``) picks the backend by name.
"""

from __future__ import annotations

import abc
import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .errors import ManagerClosedError
from .updates import Shape, Update, _as_int, validate, validate_all, validate_set_many

DEFAULT_MAX_PENDING = 1 << 18
DEFAULT_EVENT_CAPACITY = 1 << 16

EVENT_KINDS = ("enqueue", "apply", "sync-begin", "swap", "visible", "catch-up", "break")
# "break": the worker paused itself before update ``seq`` (a watch matched; see set_watch)
OP_NAMES = ("set", "fill", "add", "scale", "write")


class Event(NamedTuple):
    """One ordering event (SPEC §4). ``seq..seq+count-1`` are the updates it concerns.

    ``enqueue`` and ``apply`` events also say what those updates wrote: ``region``
    (one ``(start, stop)`` per dimension; a Set's index as a one-element box) and
    ``value`` for Set/Fill/Add/Scale; ``region`` and ``values`` (the data, in the
    region's shape, referenced not copied) for a Write; ``indices`` ((count, ndim)
    int64) and ``values`` ((count,) float32) for a run of ``set_many`` elements.
    A backend keeps payloads within a memory budget: an old event whose payload
    was let go has ``payload_dropped`` set and its arrays are None.
    """

    index: int      # position in the stream of all events of this manager
    t_ns: int       # time.monotonic_ns() clock
    kind: str       # one of EVENT_KINDS
    seq: int
    count: int
    epoch: int      # the epoch when it was recorded (the new epoch for swap/visible)
    producer: str   # thread name of the enqueuing thread ("" when not applicable)
    slot: int       # buffer written (apply), new front (swap/visible)
    op: str         # update type of enqueue/apply events, "" otherwise
    region: tuple[tuple[int, int], ...] | None = None
    value: float | None = None
    indices: np.ndarray | None = None
    values: np.ndarray | None = None
    payload_dropped: bool = False


@dataclass(frozen=True)
class ManagerStats:
    epoch: int
    last_seq: int
    applied_seq: int
    visible_seq: int
    pending: int
    max_pending: int
    paused: bool
    events_recorded: int

    @classmethod
    def read(cls, counters: object, events_recorded: int) -> ManagerStats:
        """From any object with the counters as attributes (a backend's state, a C struct)."""
        return cls(
            epoch=int(counters.epoch),
            last_seq=int(counters.last_seq),
            applied_seq=int(counters.applied_seq),
            visible_seq=int(counters.visible_seq),
            pending=int(counters.pending),
            max_pending=int(counters.max_pending),
            paused=bool(counters.paused),
            events_recorded=int(events_recorded),
        )


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers beyond the contract, declared (never probed with ``hasattr``).

    front_texture
        ``front_texture()`` and ``texture_size``: the front as a GL texture that a
        viewer whose context shares objects with the manager's can sample.
    gpu_range
        ``front_range()``/``request_front_range()``: the front's finite min/max reduced
        by the backend itself, once per epoch, without reading the buffer back.
    gl_info
        ``gl_info()``: vendor, renderer and version of the backend's own context.
    back
        ``back()``: a copy of the back buffer while the worker is paused (the
        buffer being built, for stepping that shows).
    watch
        ``set_watch()``: the worker pauses itself before an update that writes a
        watched element, has a watched op or comes from a watched producer.
    read_only
        It mirrors another program's manager (live attach): nothing can be
        enqueued from here, and the program's own producers are its scenario.
    """

    front_texture: bool = False
    gpu_range: bool = False
    gl_info: bool = False
    back: bool = False
    watch: bool = False
    read_only: bool = False


MAX_COUNT = (1 << 63) - 1   # step/fault/events arguments: anything larger is refused


class BufferManager(abc.ABC):
    """An asynchronous double-buffered float32 buffer (SPEC §3).

    Producers ``enqueue`` updates from any thread; one persistent worker applies
    them to the back buffer in FIFO order; ``synchronize`` waits until everything
    queued before it is applied, then swaps, and the new front is what
    ``front()`` returns until the next synchronize.

    The public methods are template methods: they check that the manager is open
    and validate every argument here, once, for every backend (so all backends
    accept and refuse exactly the same input), then call the backend's ``_name``
    method with normalized arguments. A backend may override a public method only
    for a fast path that accepts and refuses exactly what the base would.
    """

    backend: str = ""
    capabilities: Capabilities = Capabilities()
    #: Why a manager that mirrors another program stopped following it (the program
    #: ended, or it was detached); "" while it follows, and always for a local one.
    ended: str = ""
    #: ``validate`` copies Write payloads unless the backend copies them itself.
    _copies_payload: bool = False
    #: ``set_many`` bounds are checked by the backend itself (with the same message).
    _checks_set_bounds: bool = False

    def __init__(self, shape: Shape, fill: float, max_pending: int) -> None:
        self.shape: Shape = tuple(shape)
        self.ndim = len(self.shape)
        self.fill = float(fill)
        self.max_pending = int(max_pending)
        self.dtype = np.dtype(np.float32)
        self._producers: dict[int, str] = {}
        self._producer_numbers = itertools.count(1)
        self._producer_tls = threading.local()
        self._closed = False

    # -- the contract: validation here, the work in the backend ------------------------
    def enqueue(self, update: Update, block: bool = True) -> int:
        """Queue one update; returns its sequence number. Raises ValueError when invalid."""
        self._check_open()
        u = validate(update, self.shape, copy=not self._copies_payload)
        return self._enqueue(u, bool(block))

    def enqueue_many(self, updates: Iterable[Update], block: bool = True) -> list[int]:
        """Queue several updates in one call (all validated first: all or nothing)."""
        self._check_open()
        valid = validate_all(updates, self.shape, copy=not self._copies_payload)
        if not valid:
            return []
        return self._enqueue_many(valid, bool(block))

    def set_many(self, indices: object, values: object, block: bool = True) -> np.ndarray:
        """Vectorized sets, ``(n, ndim)`` ints and ``(n,)`` floats, in array order."""
        self._check_open()
        idx, vals = validate_set_many(indices, values, self.shape,
                                      check_bounds=not self._checks_set_bounds)
        if len(vals) == 0:
            return np.empty(0, dtype=np.uint64)
        return self._set_many(idx, vals, bool(block))

    def synchronize(self, timeout: float | None = None) -> int:
        """Wait until everything queued before the call is visible; returns the epoch."""
        self._check_open()
        return self._synchronize(check_timeout(timeout))

    def front(self) -> np.ndarray:
        """The front buffer, read-only, valid until the next synchronize()."""
        self._check_open()
        return self._front()

    def stats(self) -> ManagerStats:
        """Counters: epoch, sequence numbers, queue depth."""
        self._check_open()
        return self._stats()

    def events(self, since: int = 0) -> tuple[list[Event], int]:
        """Ordering events with index >= since, and the index to ask for next."""
        self._check_open()
        return self._events(check_count(since, "since", minimum=0))

    def pause(self) -> None:
        """Stop applying updates (syncs of already applied work still complete)."""
        self._check_open()
        self._set_paused(True)

    def resume(self) -> None:
        """Apply updates again."""
        self._check_open()
        self._set_paused(False)

    def step(self, n: int = 1) -> None:
        """While paused: let the worker apply exactly n more element updates."""
        self._check_open()
        n = check_count(n, "step count", minimum=0)
        if not self._stats().paused:
            raise ValueError("step needs a paused worker")
        self._step(n)

    def back(self) -> np.ndarray:
        """A read-only copy of the back buffer — what the worker has built since the
        last swap — while the worker is paused (``capabilities.back``)."""
        self._check_open()
        if not self.capabilities.back:
            raise NotImplementedError(f"the {self.backend} backend cannot show its back buffer")
        if not self._stats().paused:
            raise ValueError("back() needs a paused worker (the back changes while it runs)")
        return self._back()

    def set_watch(self, elements: object = (), ops: object = (), producers: object = ()) -> None:
        """Watchpoints (``capabilities.watch``): the worker pauses itself *before*
        applying an update that writes one of ``elements`` (indices), has one of
        ``ops`` or comes from one of ``producers`` (thread names), and records a
        ``break`` event naming it; ``step(1)`` then applies exactly that update.
        Called with nothing, clears every watch."""
        self._check_open()
        if not self.capabilities.watch:
            raise NotImplementedError(f"the {self.backend} backend has no watchpoints")
        from .updates import validate_index

        ops_known = OP_NAMES

        elems = tuple(validate_index(i, self.shape) for i in elements)   # type: ignore[union-attr]
        op_set = frozenset(ops)   # type: ignore[arg-type]
        bad = op_set - set(ops_known)
        if bad:
            raise ValueError(f"unknown op(s) {sorted(bad)}; choose from {', '.join(ops_known)}")
        names = frozenset(str(p) for p in producers)   # type: ignore[union-attr]
        self._set_watch(elems, op_set, names)

    def _back(self) -> np.ndarray:
        raise NotImplementedError

    def _set_watch(self, elements: tuple, ops: frozenset, producers: frozenset) -> None:
        raise NotImplementedError

    def inject_worker_fault(self, after: int = 1) -> None:
        """Testing aid: the ``after``-th queue entry the worker applies from now on (one
        update, or one chunk of a ``set_many``) fails: it is skipped, and the next
        synchronize() raises BackendError naming its sequence numbers."""
        self._check_open()
        self._inject_worker_fault(check_count(after, "after", minimum=1))

    @abc.abstractmethod
    def close(self) -> None:
        """Stop and join the worker and free the buffers. Idempotent."""

    # -- what a backend implements (arguments already validated) ------------------------
    @abc.abstractmethod
    def _enqueue(self, update: Update, block: bool) -> int: ...

    @abc.abstractmethod
    def _enqueue_many(self, updates: list[Update], block: bool) -> list[int]: ...

    @abc.abstractmethod
    def _set_many(self, indices: np.ndarray, values: np.ndarray, block: bool) -> np.ndarray: ...

    @abc.abstractmethod
    def _synchronize(self, timeout: float | None) -> int: ...

    @abc.abstractmethod
    def _front(self) -> np.ndarray: ...

    @abc.abstractmethod
    def _stats(self) -> ManagerStats: ...

    @abc.abstractmethod
    def _events(self, since: int) -> tuple[list[Event], int]: ...

    @abc.abstractmethod
    def _set_paused(self, paused: bool) -> None: ...

    @abc.abstractmethod
    def _step(self, n: int) -> None: ...

    @abc.abstractmethod
    def _inject_worker_fault(self, after: int) -> None: ...

    # -- shared conveniences ------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def epoch(self) -> int:
        return self.stats().epoch

    def _check_open(self) -> None:
        if self._closed:
            raise ManagerClosedError(f"the {self.backend} manager is closed")

    def _producer_id(self) -> int:
        """A number for the calling thread, unique for this manager (thread idents
        are reused once a thread ends; these are not), remembering its name for
        the event log."""
        try:
            return self._producer_tls.pid
        except AttributeError:
            pid = next(self._producer_numbers)
            self._producers[pid] = threading.current_thread().name
            self._producer_tls.pid = pid
            return pid

    def producer_name(self, producer: int) -> str:
        return self._producers.get(producer, "" if producer == 0 else f"thread-{producer}")

    def __enter__(self) -> BufferManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.backend} shape={self.shape} {state}>"


def check_count(n: object, what: str, minimum: int = 0) -> int:
    """An integer argument in ``[minimum, MAX_COUNT]`` (ValueError naming it otherwise)."""
    n = _as_int(n, what)
    if n < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {n}")
    if n > MAX_COUNT:
        raise ValueError(f"{what} must be < 2**63, got {n}")
    return n


def check_open_args(shape: object, fill: object, max_pending: object) -> tuple[Shape, float, int]:
    """Shared validation of ``open_manager`` arguments (ValueError naming the problem)."""
    from .updates import as_value, validate_shape

    shp = validate_shape(shape)
    f = as_value(fill, "fill")
    mp = _as_int(max_pending, "max_pending")
    if mp < 1:
        raise ValueError(f"max_pending must be >= 1, got {mp}")
    if mp > MAX_COUNT:
        raise ValueError(f"max_pending must be < 2**63, got {mp}")
    return shp, f, mp


MAX_EVENT_CAPACITY = 1 << 26


def check_event_capacity(event_capacity: object) -> int:
    """The size of a manager's event ring: 0 (none kept) to ``MAX_EVENT_CAPACITY``."""
    n = _as_int(event_capacity, "event_capacity")
    if not 0 <= n <= MAX_EVENT_CAPACITY:
        raise ValueError(f"event_capacity must be between 0 and {MAX_EVENT_CAPACITY}, got {n}")
    return n


def check_timeout(timeout: object) -> float | None:
    """A ``synchronize`` timeout: None (wait forever) or seconds >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValueError(f"timeout must be a number of seconds or None, got {timeout!r}")
    t = float(timeout)
    if not t >= 0:
        raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")
    return t
